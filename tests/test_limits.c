/*
 * tests/test_limits.c - capacity and key-length limits at scale (suite
 * 'limits', up to about a minute).
 *
 * Covers: millions of keys in a store configured small (one shard, and the
 * default shard count): 3,000,000 distinct jti all OK, all SPENT after, the
 * next one FULL; 2,000,000 codes in one shard, all present, a sample taken,
 * the next one FULL; max_key_len honoured exactly for every kind that takes
 * keys; capacities per kind independent of each other.
 * Progress and elapsed times are printed as TAP comments; no time is
 * asserted.
 */
#include <time.h>

#include "harness.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t jti_of(char *buf, size_t cap, const char *prefix, uint64_t i)
{
	return (size_t)snprintf(buf, cap, "%s-%" PRIu64, prefix, i);
}

/* Fills a replay cache of exactly `n` entries, reads every one back as
 * SPENT, and checks the (n+1)th distinct jti is FULL. */
static void fill_replays(uint32_t shards, uint64_t n)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.shards = shards;
	o.max_replays = n;
	once_store *s = test_open(&o);
	struct once_stats st;
	once_stats(s, &st);
	printf("# replays: %u shard(s), %" PRIu64 " keys\n", st.shards, n);
	char k[64];
	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		once_status r = once_replay_check(s, k, jti_of(k, sizeof k, "jti", i), 3600);
		if (r != ONCE_OK)
			FAIL_AT("insert %" PRIu64 ": %s", i, once_status_name(r));
		if ((i + 1) % 1000000 == 0)
			printf("# inserted %" PRIu64 " (%.1f s)\n", i + 1, now_s() - t0);
	}
	ASSERT_EQ_U64(test_entries(s, "replays"), n);
	for (uint64_t i = 0; i < n; i++) {
		once_status r = once_replay_check(s, k, jti_of(k, sizeof k, "jti", i), 3600);
		if (r != ONCE_SPENT)
			FAIL_AT("replay %" PRIu64 ": %s", i, once_status_name(r));
	}
	printf("# all %" PRIu64 " read SPENT (%.1f s)\n", n, now_s() - t0);
	ASSERT_ST(once_replay_check(s, k, jti_of(k, sizeof k, "jti", n), 3600), ONCE_FULL);
	ASSERT_ST(once_replay_check(s, k, jti_of(k, sizeof k, "other", 0), 3600), ONCE_FULL);
	ASSERT_EQ_U64(test_entries(s, "replays"), n);
	once_stats(s, &st);
	ASSERT_EQ_U64(st.ops[ONCE_OP_REPLAY_CHECK][ONCE_OK], n);
	ASSERT_EQ_U64(st.ops[ONCE_OP_REPLAY_CHECK][ONCE_SPENT], n);
	ASSERT_EQ_U64(st.ops[ONCE_OP_REPLAY_CHECK][ONCE_FULL], 2);
	ASSERT_ST(once_close(s), ONCE_OK);
	printf("# done in %.1f s\n", now_s() - t0);
}

static void test_three_million_replays_one_shard(void)
{
	fill_replays(1, 3000000);
}

static void test_three_million_replays_default_shards(void)
{
	fill_replays(0, 3000000);
}

/* 2,000,000 codes in one shard: all stored, every 1000th taken. */
static void test_two_million_codes_one_shard(void)
{
	const uint64_t n = 2000000;
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.shards = 1;
	o.max_codes = n;
	once_store *s = test_open(&o);
	once_code c = test_code(100000);
	char h[44];
	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		test_key(h, "code", i);
		once_status r = once_code_put(s, h, 43, &c);
		if (r != ONCE_OK)
			FAIL_AT("put %" PRIu64 ": %s", i, once_status_name(r));
		if ((i + 1) % 500000 == 0)
			printf("# put %" PRIu64 " codes (%.1f s)\n", i + 1, now_s() - t0);
	}
	ASSERT_EQ_U64(test_entries(s, "codes"), n);
	test_key(h, "code", n);
	ASSERT_ST(once_code_put(s, h, 43, &c), ONCE_FULL);
	uint64_t taken = 0;
	for (uint64_t i = 0; i < n; i += 1000) {
		test_key(h, "code", i);
		once_code *got = NULL;
		ASSERT_ST(once_code_take(s, h, 43, &got, NULL), ONCE_OK);
		ASSERT_STR(got->subject, "user-1");
		once_free(got);
		ASSERT_ST(once_code_take(s, h, 43, NULL, NULL), ONCE_NOT_FOUND);
		taken++;
	}
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.codes.entries, n); /* taken codes count until swept */
	ASSERT_EQ_U64(st.ops[ONCE_OP_CODE_PUT][ONCE_OK], n);
	ASSERT_EQ_U64(st.ops[ONCE_OP_CODE_TAKE][ONCE_OK], taken);
	ASSERT_EQ_U64(taken, n / 1000);
	/* The untaken ones in between are still there, unconsumed. */
	test_key(h, "code", 1);
	ASSERT_ST(once_code_get(s, h, 43, NULL), ONCE_OK);
	test_key(h, "code", n - 1);
	ASSERT_ST(once_code_get(s, h, 43, NULL), ONCE_OK);
	printf("# %" PRIu64 " codes put, %" PRIu64 " taken in %.1f s\n", n, taken, now_s() - t0);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- max_key_len, exactly, per kind ---- */

enum { KEYMAX = 100 };

static once_store *open_keymax(struct test_clock *clk)
{
	once_options o = test_options(clk);
	o.max_key_len = KEYMAX;
	return test_open(&o);
}

static void test_max_key_len_codes(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_keymax(&clk);
	char k[KEYMAX + 1];
	memset(k, 'c', sizeof k);
	once_code c = test_code(5000);
	ASSERT_ST(once_code_put(s, k, KEYMAX + 1, &c), ONCE_INVALID);
	ASSERT_EQ_U64(test_entries(s, "codes"), 0);
	ASSERT_ST(once_code_put(s, k, KEYMAX, &c), ONCE_OK);
	ASSERT_EQ_U64(test_entries(s, "codes"), 1);
	ASSERT_ST(once_code_get(s, k, KEYMAX + 1, NULL), ONCE_INVALID);
	ASSERT_ST(once_code_get(s, k, KEYMAX, NULL), ONCE_OK);
	ASSERT_ST(once_code_take(s, k, KEYMAX + 1, NULL, NULL), ONCE_INVALID);
	ASSERT_ST(once_code_take(s, k, KEYMAX, NULL, NULL), ONCE_OK);
	ASSERT_ST(once_code_finalize(s, k, KEYMAX + 1), ONCE_INVALID);
	ASSERT_ST(once_code_finalize(s, k, KEYMAX), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_max_key_len_access_tokens(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_keymax(&clk);
	char k[KEYMAX + 1], f[KEYMAX + 1];
	memset(k, 'j', sizeof k);
	memset(f, 'f', sizeof f);
	ASSERT_ST(once_code_record_access_token(s, f, KEYMAX, k, KEYMAX + 1, 5000), ONCE_INVALID);
	ASSERT_ST(once_code_record_access_token(s, f, KEYMAX + 1, k, KEYMAX, 5000), ONCE_INVALID);
	ASSERT_EQ_U64(test_entries(s, "access_tokens"), 0);
	ASSERT_ST(once_code_record_access_token(s, f, KEYMAX, k, KEYMAX, 5000), ONCE_OK);
	ASSERT_EQ_U64(test_entries(s, "access_tokens"), 1);
	ASSERT_ST(once_code_revoke_family_access_tokens(s, f, KEYMAX + 1), ONCE_INVALID);
	ASSERT(!once_access_token_revoked(s, k, KEYMAX));
	ASSERT_ST(once_code_revoke_family_access_tokens(s, f, KEYMAX), ONCE_OK);
	ASSERT(!once_access_token_revoked(s, k, KEYMAX + 1));
	ASSERT(once_access_token_revoked(s, k, KEYMAX));
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_max_key_len_nonces(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_keymax(&clk);
	char n[KEYMAX + 1];
	memset(n, 'n', sizeof n);
	ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_OK); /* 43 <= KEYMAX */
	n[ONCE_NONCE_LEN] = 'n';                        /* the tail stays filler */
	ASSERT_ST(once_nonce_accept(s, n, KEYMAX + 1, 60), ONCE_INVALID);
	ASSERT(!once_nonce_valid(s, n, KEYMAX + 1));
	/* len == max is a well-formed key that was never issued. */
	ASSERT_ST(once_nonce_accept(s, n, KEYMAX, 60), ONCE_NOT_FOUND);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_OK);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_max_key_len_replays(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_keymax(&clk);
	char k[KEYMAX + 1];
	memset(k, 'r', sizeof k);
	ASSERT_ST(once_replay_check(s, k, KEYMAX + 1, 60), ONCE_INVALID);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	ASSERT_ST(once_replay_check(s, k, KEYMAX, 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, k, KEYMAX, 60), ONCE_SPENT);
	ASSERT_EQ_U64(test_entries(s, "replays"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* The largest allowed max_key_len (65535) works end to end. */
static void test_max_key_len_at_its_ceiling(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_key_len = 65535;
	once_store *s = test_open(&o);
	unsigned char *k = malloc(65536);
	ASSERT(k != NULL);
	memset(k, 0xab, 65536);
	ASSERT_ST(once_replay_check(s, k, 65536, 60), ONCE_INVALID);
	ASSERT_ST(once_replay_check(s, k, 65535, 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, k, 65535, 60), ONCE_SPENT);
	ASSERT_ST(once_replay_check(s, k, 65534, 60), ONCE_OK); /* a prefix is another key */
	ASSERT_EQ_U64(test_entries(s, "replays"), 2);
	free(k);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- capacity per kind is independent ---- */

static void test_capacity_per_kind_independent(void)
{
	enum { CAP = 50 };
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_replays = CAP;
	o.max_nonces = CAP;
	o.max_codes = CAP;
	o.max_access_tokens = CAP;
	once_store *s = test_open(&o);
	char k[64], n[ONCE_NONCE_LEN + 1], h[44];
	for (uint64_t i = 0; i < CAP; i++)
		ASSERT_ST(once_replay_check(s, k, jti_of(k, sizeof k, "jti", i), 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, k, jti_of(k, sizeof k, "jti", CAP), 60), ONCE_FULL);
	/* Replays are full; every other kind still takes exactly CAP. */
	once_code c = test_code(5000);
	for (uint64_t i = 0; i < CAP; i++) {
		test_key(h, "code", i);
		ASSERT_ST(once_code_put(s, h, 43, &c), ONCE_OK);
	}
	test_key(h, "code", CAP);
	ASSERT_ST(once_code_put(s, h, 43, &c), ONCE_FULL);
	for (uint64_t i = 0; i < CAP; i++)
		ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_OK);
	ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_FULL);
	for (uint64_t i = 0; i < CAP; i++) {
		test_key(h, "at", i);
		ASSERT_ST(once_code_record_access_token(s, "fam", 3, h, 43, 5000), ONCE_OK);
	}
	test_key(h, "at", CAP);
	ASSERT_ST(once_code_record_access_token(s, "fam", 3, h, 43, 5000), ONCE_FULL);
	ASSERT_EQ_U64(test_entries(s, "replays"), CAP);
	ASSERT_EQ_U64(test_entries(s, "codes"), CAP);
	ASSERT_EQ_U64(test_entries(s, "nonces"), CAP);
	ASSERT_EQ_U64(test_entries(s, "access_tokens"), CAP);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* A kind with capacity 1 next to kinds with room: only it is FULL. */
static void test_capacity_one(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_codes = 1;
	once_store *s = test_open(&o);
	once_code c = test_code(5000);
	ASSERT_ST(once_code_put(s, "a", 1, &c), ONCE_OK);
	ASSERT_ST(once_code_put(s, "b", 1, &c), ONCE_FULL);
	ASSERT_ST(once_code_put(s, "a", 1, &c), ONCE_EXISTS); /* a duplicate stays a duplicate */
	ASSERT_ST(once_replay_check(s, "a", 1, 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "b", 1, 60), ONCE_OK);
	ASSERT_EQ_U64(test_entries(s, "codes"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

TESTS(TEST(test_three_million_replays_one_shard), TEST(test_three_million_replays_default_shards),
      TEST(test_two_million_codes_one_shard), TEST(test_max_key_len_codes),
      TEST(test_max_key_len_access_tokens), TEST(test_max_key_len_nonces),
      TEST(test_max_key_len_replays), TEST(test_max_key_len_at_its_ceiling),
      TEST(test_capacity_per_kind_independent), TEST(test_capacity_one));
TEST_MAIN()
