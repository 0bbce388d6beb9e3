/* tests/test_smoke.c - one pass over every kind: the store opens, each call
 * answers its basic outcome, and close frees everything. */
#include "harness.h"

static void test_smoke_all_kinds(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char h[44];
	test_key(h, "code", 1);
	once_code c = test_code(2000);
	ASSERT_ST(once_code_put(s, h, 43, &c), ONCE_OK);
	once_code *got = NULL;
	ASSERT_ST(once_code_get(s, h, 43, &got), ONCE_OK);
	ASSERT_STR(got->client_id, "client-1");
	once_free(got);
	ASSERT_ST(once_code_take(s, h, 43, &got, NULL), ONCE_OK);
	ASSERT_EQ_INT(got->consumed_at, 1000);
	once_free(got);
	ASSERT_ST(once_code_take(s, h, 43, NULL, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_code_finalize(s, h, 43), ONCE_OK);
	once_code_meta *m = NULL;
	ASSERT_ST(once_code_take(s, h, 43, NULL, &m), ONCE_SPENT);
	ASSERT_STR(m->subject, "user-1");
	once_free(m);

	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_OK);
	ASSERT_EQ_INT(strlen(n), 43);
	ASSERT(once_nonce_valid(s, n, 43));
	ASSERT_ST(once_nonce_accept(s, n, 43, 60), ONCE_OK);
	ASSERT_ST(once_nonce_accept(s, n, 43, 60), ONCE_SPENT);

	ASSERT_ST(once_replay_check(s, "jti-1", 5, 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 60), ONCE_SPENT);

	ASSERT_ST(once_code_record_access_token(s, "fam", 3, "at-1", 4, 3000), ONCE_OK);
	ASSERT(!once_access_token_revoked(s, "at-1", 4));
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "fam", 3), ONCE_OK);
	ASSERT(once_access_token_revoked(s, "at-1", 4));

	atomic_store(&clk.now, 5000);
	once_sweep_counts sc;
	ASSERT_ST(once_sweep(s, &sc), ONCE_OK);
	ASSERT_EQ_U64(sc.codes, 1);
	ASSERT_EQ_U64(sc.nonces, 1);
	ASSERT_EQ_U64(sc.replays, 1);
	ASSERT_EQ_U64(sc.access_tokens, 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* The header, the library and the build agree on the version: the soname
 * follows it (meson.build), so a header left at an old number would let a
 * layout change ship under the old soname. */
static void test_versions_agree(void)
{
	ASSERT_EQ_INT(once_version(), ONCE_VERSION_NUMBER);
	ASSERT_EQ_INT(ONCE_VERSION_NUMBER,
	              ONCE_VERSION_MAJOR * 1000000 + ONCE_VERSION_MINOR * 1000 + ONCE_VERSION_PATCH);
	char header[32];
	snprintf(header, sizeof header, "%d.%d.%d", ONCE_VERSION_MAJOR, ONCE_VERSION_MINOR,
	         ONCE_VERSION_PATCH);
	ASSERT_STR(header, ONCE_MESON_VERSION);
}

TESTS(TEST(test_smoke_all_kinds), TEST(test_versions_agree));
TEST_MAIN()
