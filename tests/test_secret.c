/* tests/test_secret.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_secret(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_secret));
TEST_MAIN()
