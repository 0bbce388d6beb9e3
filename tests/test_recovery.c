/* placeholder: being written */
#include "durable.h"
static void test_placeholder(void) {}
TESTS(TEST(test_placeholder));
TEST_MAIN()
