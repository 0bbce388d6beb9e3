/* tests/test_refresh_race.c - placeholder, being written. */
#include "harness.h"

static void test_placeholder_refresh_race(void)
{
	ASSERT(once_strerror(ONCE_OK) != NULL);
}

TESTS(TEST(test_placeholder_refresh_race));
TEST_MAIN()
