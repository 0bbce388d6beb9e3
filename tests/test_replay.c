/* tests/test_replay.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_replay(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_replay));
TEST_MAIN()
