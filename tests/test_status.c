/*
 * tests/test_status.c - status and operation names: once_strerror,
 * once_status_name and once_op_name give a distinct, non-empty string for
 * every value, match the enum, and answer out-of-range values safely.
 */
#include "harness.h"

static void test_ok_is_zero(void)
{
	ASSERT_EQ_INT(ONCE_OK, 0);
	ASSERT_STR(once_status_name(ONCE_OK), "OK");
	ASSERT_STR(once_strerror(ONCE_OK), "success");
}

static void test_every_status_has_distinct_name(void)
{
	for (int i = 0; i < ONCE_STATUS_COUNT; i++) {
		const char *a = once_status_name((once_status)i);
		ASSERT(a != NULL);
		ASSERT(a[0] != '\0');
		ASSERT(strcmp(a, "UNKNOWN") != 0);
		for (int j = 0; j < i; j++)
			if (strcmp(a, once_status_name((once_status)j)) == 0)
				FAIL_AT("statuses %d and %d share the name %s", j, i, a);
	}
}

static void test_every_status_has_distinct_message(void)
{
	for (int i = 0; i < ONCE_STATUS_COUNT; i++) {
		const char *a = once_strerror((once_status)i);
		ASSERT(a != NULL);
		ASSERT(a[0] != '\0');
		ASSERT(strcmp(a, "unknown status") != 0);
		ASSERT(strchr(a, '\n') == NULL); /* one line */
		for (int j = 0; j < i; j++)
			if (strcmp(a, once_strerror((once_status)j)) == 0)
				FAIL_AT("statuses %d and %d share the message \"%s\"", j, i, a);
	}
}

static void test_status_names_match_enum(void)
{
	static const struct {
		once_status st;
		const char *name;
	} want[] = {
		{ONCE_OK, "OK"},           {ONCE_NOT_FOUND, "NOT_FOUND"}, {ONCE_SPENT, "SPENT"},
		{ONCE_EXPIRED, "EXPIRED"}, {ONCE_EXISTS, "EXISTS"},       {ONCE_REVOKED, "REVOKED"},
		{ONCE_INVALID, "INVALID"}, {ONCE_FULL, "FULL"},           {ONCE_NO_KEY, "NO_KEY"},
		{ONCE_IO, "IO"},           {ONCE_CORRUPT, "CORRUPT"},     {ONCE_LOCKED, "LOCKED"},
		{ONCE_NOMEM, "NOMEM"},
	};
	ASSERT_EQ_INT(sizeof want / sizeof want[0], ONCE_STATUS_COUNT);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		ASSERT_STR(once_status_name(want[i].st), want[i].name);
}

static void test_out_of_range_status(void)
{
	ASSERT_STR(once_strerror(ONCE_STATUS_COUNT), "unknown status");
	ASSERT_STR(once_strerror((once_status)999), "unknown status");
	ASSERT_STR(once_strerror((once_status)-1), "unknown status");
	ASSERT_STR(once_status_name(ONCE_STATUS_COUNT), "UNKNOWN");
	ASSERT_STR(once_status_name((once_status)999), "UNKNOWN");
	ASSERT_STR(once_status_name((once_status)-1), "UNKNOWN");
}

static void test_every_op_has_distinct_name(void)
{
	for (int i = 0; i < ONCE_OP_COUNT; i++) {
		const char *a = once_op_name((once_op)i);
		ASSERT(a != NULL);
		ASSERT(a[0] != '\0');
		ASSERT(strcmp(a, "unknown") != 0);
		for (int j = 0; j < i; j++)
			if (strcmp(a, once_op_name((once_op)j)) == 0)
				FAIL_AT("ops %d and %d share the name %s", j, i, a);
	}
}

static void test_op_names_match_enum(void)
{
	ASSERT_STR(once_op_name(ONCE_OP_CODE_PUT), "code_put");
	ASSERT_STR(once_op_name(ONCE_OP_CODE_TAKE), "code_take");
	ASSERT_STR(once_op_name(ONCE_OP_CODE_FINALIZE), "code_finalize");
	ASSERT_STR(once_op_name(ONCE_OP_ACCESS_REVOKED), "access_revoked");
	ASSERT_STR(once_op_name(ONCE_OP_REFRESH_ROTATE), "refresh_rotate");
	ASSERT_STR(once_op_name(ONCE_OP_NONCE_ACCEPT), "nonce_accept");
	ASSERT_STR(once_op_name(ONCE_OP_REPLAY_CHECK), "replay_check");
}

static void test_out_of_range_op(void)
{
	ASSERT_STR(once_op_name(ONCE_OP_COUNT), "unknown");
	ASSERT_STR(once_op_name((once_op)-1), "unknown");
	ASSERT_STR(once_op_name((once_op)12345), "unknown");
}

TESTS(TEST(test_ok_is_zero), TEST(test_every_status_has_distinct_name),
      TEST(test_every_status_has_distinct_message), TEST(test_status_names_match_enum),
      TEST(test_out_of_range_status), TEST(test_every_op_has_distinct_name),
      TEST(test_op_names_match_enum), TEST(test_out_of_range_op));
TEST_MAIN()
