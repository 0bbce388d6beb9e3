/* tests/test_store.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_store(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_store));
TEST_MAIN()
