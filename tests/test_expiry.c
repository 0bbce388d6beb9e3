/* tests/test_expiry.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_expiry(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_expiry));
TEST_MAIN()
