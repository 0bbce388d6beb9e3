/* tests/test_refresh.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_refresh(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_refresh));
TEST_MAIN()
