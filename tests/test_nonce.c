/* tests/test_nonce.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_nonce(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_nonce));
TEST_MAIN()
