/* tests/test_race.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_race(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_race));
TEST_MAIN()
