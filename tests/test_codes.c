/* tests/test_codes.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_codes(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_codes));
TEST_MAIN()
