/* tests/test_limits.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_limits(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_limits));
TEST_MAIN()
