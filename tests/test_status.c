/* tests/test_status.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_status(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_status));
TEST_MAIN()
