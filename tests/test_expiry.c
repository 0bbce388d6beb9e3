/*
 * tests/test_expiry.c - once_sweep and the timing wheel behind it.
 *
 * Covers: the strict boundary (expires_at == now kept, now - 1 removed) for
 * codes, access tokens, nonces and replays, with exact per-kind counts and
 * matching stats.swept; the injected clock; clock jumps longer than the
 * wheel (ONCE_WHEEL_SLOTS = 4096 one-second slots); entries several wheel
 * turns ahead; the clock going backwards and forwards again; entries
 * inserted already expired; the cost property (a sweep examines the expired
 * entries, not the table); a second sweep finding nothing; argument checks.
 */
#include <time.h>

#include "harness.h"

#define WHEEL 4096 /* ONCE_WHEEL_SLOTS in core/internal.h */

static once_sweep_counts sweep_at(once_store *s, struct test_clock *clk, int64_t now)
{
	once_sweep_counts c;
	memset(&c, 0xff, sizeof c); /* every field must be written */
	atomic_store(&clk->now, now);
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	return c;
}

static void replay_ttl(once_store *s, const char *prefix, int i, int64_t ttl)
{
	char k[64];
	int n = snprintf(k, sizeof k, "%s-%d", prefix, i);
	ASSERT_ST(once_replay_check(s, k, (size_t)n, ttl), ONCE_OK);
}

/* SPENT while present, OK (and recorded anew) once swept. */
static bool replay_present(once_store *s, const char *prefix, int i)
{
	char k[64];
	int n = snprintf(k, sizeof k, "%s-%d", prefix, i);
	once_status st = once_replay_check(s, k, (size_t)n, 1);
	if (st != ONCE_SPENT && st != ONCE_OK)
		FAIL_AT("replay %s: %s", k, once_status_name(st));
	return st == ONCE_SPENT;
}

static void put_code(once_store *s, const char *prefix, int i, int64_t exp)
{
	char h[44];
	test_key(h, prefix, (uint64_t)i);
	once_code c = test_code(exp);
	ASSERT_ST(once_code_put(s, h, 43, &c), ONCE_OK);
}

static bool code_present(once_store *s, const char *prefix, int i)
{
	char h[44];
	test_key(h, prefix, (uint64_t)i);
	return once_code_get(s, h, 43, NULL) == ONCE_OK;
}

static void record_token(once_store *s, const char *prefix, int i, int64_t exp)
{
	char jti[44];
	test_key(jti, prefix, (uint64_t)i);
	ASSERT_ST(once_code_record_access_token(s, "fam", 3, jti, 43, exp), ONCE_OK);
}

static bool token_revoked(once_store *s, const char *prefix, int i)
{
	char jti[44];
	test_key(jti, prefix, (uint64_t)i);
	return once_access_token_revoked(s, jti, 43);
}

/*
 * At now = 1000 insert, for each kind, entries expiring at 1499 ("old") and
 * at 1500 ("edge"), a different number per kind so that a count landing in
 * the wrong field shows.  Sweep at 1500: exactly the old ones go.
 */
static void test_sweep_strict_boundary_every_kind(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char old_n[4][ONCE_NONCE_LEN + 1], edge_n[ONCE_NONCE_LEN + 1];
	for (int i = 0; i < 3; i++)
		put_code(s, "old-code", i, 1499);
	put_code(s, "edge-code", 0, 1500);
	for (int i = 0; i < 2; i++)
		record_token(s, "old-at", i, 1499);
	record_token(s, "edge-at", 0, 1500);
	for (int i = 0; i < 4; i++)
		ASSERT_ST(once_nonce_issue(s, 499, old_n[i]), ONCE_OK);
	ASSERT_ST(once_nonce_issue(s, 500, edge_n), ONCE_OK);
	for (int i = 0; i < 5; i++)
		replay_ttl(s, "old-jti", i, 499);
	replay_ttl(s, "edge-jti", 0, 500);
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "fam", 3), ONCE_OK);

	once_sweep_counts c = sweep_at(s, &clk, 1500);
	ASSERT_EQ_U64(c.codes, 3);
	ASSERT_EQ_U64(c.access_tokens, 2);
	ASSERT_EQ_U64(c.nonces, 4);
	ASSERT_EQ_U64(c.replays, 5);
	ASSERT_EQ_U64(c.refresh, 0);
	ASSERT_EQ_U64(test_entries(s, "codes"), 1);
	ASSERT_EQ_U64(test_entries(s, "access_tokens"), 1);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1);
	ASSERT_EQ_U64(test_entries(s, "replays"), 1);
	/* The edge entries are still there, the old ones are gone. */
	ASSERT(code_present(s, "edge-code", 0));
	ASSERT(!code_present(s, "old-code", 0));
	ASSERT(token_revoked(s, "edge-at", 0)); /* now <= expires_at, family mark kept */
	ASSERT(!token_revoked(s, "old-at", 0));
	ASSERT_ST(once_nonce_accept(s, old_n[0], ONCE_NONCE_LEN, 1000), ONCE_NOT_FOUND);
	ASSERT(replay_present(s, "edge-jti", 0));

	c = sweep_at(s, &clk, 1501);
	ASSERT_EQ_U64(c.codes, 1);
	ASSERT_EQ_U64(c.access_tokens, 1);
	ASSERT_EQ_U64(c.nonces, 1);
	ASSERT_EQ_U64(c.replays, 1);
	ASSERT(!code_present(s, "edge-code", 0));
	ASSERT_ST(once_nonce_accept(s, edge_n, ONCE_NONCE_LEN, 1000), ONCE_NOT_FOUND);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* stats.<kind>.swept adds up what the sweeps reported. */
static void test_stats_swept_counters_match(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	for (int i = 0; i < 7; i++)
		put_code(s, "code", i, 1010 + i);
	for (int i = 0; i < 5; i++)
		record_token(s, "at", i, 1010 + i);
	for (int i = 0; i < 6; i++)
		ASSERT_ST(once_nonce_issue(s, 10 + i, n), ONCE_OK);
	for (int i = 0; i < 9; i++)
		replay_ttl(s, "jti", i, 10 + i);
	once_sweep_counts a = sweep_at(s, &clk, 1013); /* removes expiry 1010..1012 */
	once_sweep_counts b = sweep_at(s, &clk, 2000); /* the rest */
	ASSERT_EQ_U64(a.codes, 3);
	ASSERT_EQ_U64(a.replays, 3);
	ASSERT_EQ_U64(a.codes + b.codes, 7);
	ASSERT_EQ_U64(a.access_tokens + b.access_tokens, 5);
	ASSERT_EQ_U64(a.nonces + b.nonces, 6);
	ASSERT_EQ_U64(a.replays + b.replays, 9);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.codes.swept, 7);
	ASSERT_EQ_U64(st.access_tokens.swept, 5);
	ASSERT_EQ_U64(st.nonces.swept, 6);
	ASSERT_EQ_U64(st.replays.swept, 9);
	ASSERT_EQ_U64(st.codes.entries + st.access_tokens.entries + st.nonces.entries +
	                      st.replays.entries,
	              0);
	ASSERT(st.sweeps >= 2);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* The store reads time only from the injected clock: at 1970 + 1000 s,
 * entries with a 1-second ttl are long dead by the real clock, yet nothing
 * goes until the test clock passes their expiry. */
static void test_clock_injection(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	for (int i = 0; i < 10; i++)
		replay_ttl(s, "jti", i, 1);
	put_code(s, "code", 0, 1001);
	for (int round = 0; round < 3; round++) {
		once_sweep_counts c = sweep_at(s, &clk, 1000);
		ASSERT_EQ_U64(c.replays + c.codes, 0);
	}
	once_sweep_counts c = sweep_at(s, &clk, 1001);
	ASSERT_EQ_U64(c.replays + c.codes, 0);
	c = sweep_at(s, &clk, 1002);
	ASSERT_EQ_U64(c.replays, 10);
	ASSERT_EQ_U64(c.codes, 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/*
 * A jump of 100000 s (24 wheel turns) in one sweep: entries spread over
 * every slot, some due and some not, some far beyond the jump.
 */
static void test_clock_jump_longer_than_wheel(void)
{
	enum { SPREAD = 2 * WHEEL };
	struct test_clock clk = {10000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	for (int i = 0; i < SPREAD; i++)
		replay_ttl(s, "spread", i, 1 + i); /* every slot, twice: all due */
	replay_ttl(s, "edge", 0, 100000);      /* expires exactly at the new now: kept */
	replay_ttl(s, "late", 0, 100001);
	replay_ttl(s, "later", 0, 250000);
	replay_ttl(s, "due", 0, 99999);
	once_sweep_counts c = sweep_at(s, &clk, 110000);
	ASSERT_EQ_U64(c.replays, SPREAD + 1);
	ASSERT_EQ_U64(test_entries(s, "replays"), 3);
	ASSERT(replay_present(s, "edge", 0));
	ASSERT(replay_present(s, "late", 0));
	ASSERT(replay_present(s, "later", 0));
	ASSERT(!replay_present(s, "due", 0)); /* re-recorded with ttl 1: expires 110001 */
	ASSERT(!replay_present(s, "spread", 17));

	c = sweep_at(s, &clk, 110001);
	ASSERT_EQ_U64(c.replays, 1); /* edge */
	c = sweep_at(s, &clk, 110002);
	ASSERT_EQ_U64(c.replays, 3); /* late + the two re-recorded with ttl 1 */
	ASSERT(replay_present(s, "later", 0));
	ASSERT_EQ_U64(sweep_at(s, &clk, 260000).replays, 0); /* expires_at == now: kept */
	ASSERT_EQ_U64(sweep_at(s, &clk, 260001).replays, 1);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/*
 * Entries sharing one wheel slot but due on different turns (ttl 100,
 * 100 + 4096, 100 + 2 * 4096, 100 + 3 * 4096), swept every 1000 s: each is
 * kept by every sweep before its expiry and removed by the first one after.
 */
static void test_entries_survive_several_wheel_turns(void)
{
	const int64_t t0 = 50000;
	struct test_clock clk = {t0};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	for (int k = 0; k < 4; k++)
		replay_ttl(s, "turn", k, 100 + (int64_t)k * WHEEL);
	uint64_t removed = 0;
	for (int64_t now = t0 + 1000; now <= t0 + 5 * WHEEL; now += 1000) {
		once_sweep_counts c = sweep_at(s, &clk, now);
		removed += c.replays;
		uint64_t due = 0;
		for (int k = 0; k < 4; k++)
			due += t0 + 100 + (int64_t)k * WHEEL < now;
		ASSERT_EQ_U64(removed, due);
		ASSERT_EQ_U64(test_entries(s, "replays"), 4 - due);
	}
	ASSERT_EQ_U64(removed, 4);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* The exact second on a later turn: kept at expires_at, gone at +1. */
static void test_far_entry_removed_exactly_when_due(void)
{
	const int64_t t0 = 50000, exp = t0 + 3 * WHEEL + 7;
	struct test_clock clk = {t0};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	put_code(s, "far", 0, exp);
	for (int64_t now = t0 + 500; now < exp; now += 500)
		ASSERT_EQ_U64(sweep_at(s, &clk, now).codes, 0);
	ASSERT_EQ_U64(sweep_at(s, &clk, exp).codes, 0);
	ASSERT(code_present(s, "far", 0));
	ASSERT_EQ_U64(sweep_at(s, &clk, exp + 1).codes, 1);
	ASSERT(!code_present(s, "far", 0));
	ASSERT_ST(once_close(s), ONCE_OK);
}

/*
 * Sweep at 20000, then the clock goes back to 5000: entries inserted now
 * expire at seconds the wheel has already passed, and must still go when
 * the clock comes forward again, and not before.
 */
static void test_clock_backwards_then_forwards(void)
{
	struct test_clock clk = {10000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	replay_ttl(s, "first", 0, 100);
	ASSERT_EQ_U64(sweep_at(s, &clk, 20000).replays, 1);

	atomic_store(&clk.now, 5000);
	replay_ttl(s, "back", 0, 50);     /* 5050: long swept second */
	replay_ttl(s, "back", 1, 10000);  /* 15000: also already swept */
	replay_ttl(s, "back", 2, 15000);  /* 20000: the last second not yet swept */
	replay_ttl(s, "back", 3, 20000);  /* 25000: ahead of the wheel */
	put_code(s, "back-code", 0, 5050);
	ASSERT_EQ_U64(sweep_at(s, &clk, 5000).replays, 0);
	ASSERT_EQ_U64(sweep_at(s, &clk, 5050).replays, 0);
	once_sweep_counts c = sweep_at(s, &clk, 5051);
	ASSERT_EQ_U64(c.replays, 1);
	ASSERT_EQ_U64(c.codes, 1);
	ASSERT_EQ_U64(sweep_at(s, &clk, 15000).replays, 0);
	ASSERT_EQ_U64(sweep_at(s, &clk, 15001).replays, 1);
	ASSERT_EQ_U64(sweep_at(s, &clk, 20000).replays, 0);
	ASSERT_EQ_U64(sweep_at(s, &clk, 20001).replays, 1);
	ASSERT(replay_present(s, "back", 3));
	ASSERT_EQ_U64(sweep_at(s, &clk, 25000).replays, 0);
	ASSERT_EQ_U64(sweep_at(s, &clk, 25001).replays, 1);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* expires_at already in the past at insert: the next sweep removes it,
 * both before any sweep ran and after the wheel has moved on. */
static void test_inserted_already_expired(void)
{
	struct test_clock clk = {10000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	put_code(s, "past", 0, 10000 - 100);
	record_token(s, "past-at", 0, 10000 - 100);
	ASSERT(code_present(s, "past", 0)); /* get does not check expiry */
	once_sweep_counts c = sweep_at(s, &clk, 10000);
	ASSERT_EQ_U64(c.codes, 1);
	ASSERT_EQ_U64(c.access_tokens, 1);
	ASSERT(!code_present(s, "past", 0));

	/* The clock moves on without a sweep; then codes land in the unswept
	 * stretch, in the swept past, and at second 1. */
	atomic_store(&clk.now, 30000);
	put_code(s, "past", 1, 29000);
	put_code(s, "past", 2, 9000);
	put_code(s, "past", 3, 1);
	put_code(s, "keep", 0, 30000);
	c = sweep_at(s, &clk, 30000);
	ASSERT_EQ_U64(c.codes, 3);
	ASSERT(code_present(s, "keep", 0));
	ASSERT_EQ_U64(test_entries(s, "codes"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/*
 * The cost property: 1,000,000 replay entries, 1% with a short ttl.  The
 * sweep that removes the 10,000 short ones examines about 10,000 entries,
 * not 1,000,000; a second sweep examines (almost) nothing.
 */
static void test_sweep_cost_follows_expired_not_table(void)
{
	enum { TOTAL = 1000000, SHORT = 10000 };
	struct test_clock clk = {100000};
	once_options o = test_options(&clk);
	o.max_replays = 2000000;
	once_store *s = test_open(&o);
	char k[32];
	for (int i = 0; i < TOTAL; i++) {
		int n = snprintf(k, sizeof k, "cost-%d", i);
		once_status st = once_replay_check(s, k, (size_t)n, i % 100 == 0 ? 5 : 3600);
		if (st != ONCE_OK)
			FAIL_AT("insert %d: %s", i, once_status_name(st));
	}
	ASSERT_EQ_U64(test_entries(s, "replays"), TOTAL);

	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	once_sweep_counts c = sweep_at(s, &clk, 100000 + 6);
	printf("# sweep of %d expired among %d entries: examined %" PRIu64 " in %.3f s\n", SHORT,
	       TOTAL, c.examined, seconds_since(&t0));
	ASSERT_EQ_U64(c.replays, SHORT);
	ASSERT(c.examined >= SHORT);
	ASSERT(c.examined < 2 * SHORT);
	ASSERT_EQ_U64(test_entries(s, "replays"), TOTAL - SHORT);

	c = sweep_at(s, &clk, 100000 + 6);
	ASSERT_EQ_U64(c.replays, 0);
	ASSERT(c.examined < 100);
	c = sweep_at(s, &clk, 100000 + 60);
	ASSERT_EQ_U64(c.replays, 0);
	ASSERT(c.examined < 100);
	ASSERT_EQ_U64(test_entries(s, "replays"), TOTAL - SHORT);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_sweep_twice_removes_nothing_second_time(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	for (int i = 0; i < 100; i++)
		replay_ttl(s, "jti", i, 10);
	for (int i = 0; i < 100; i++)
		replay_ttl(s, "long", i, 100000);
	once_sweep_counts c = sweep_at(s, &clk, 2000);
	ASSERT_EQ_U64(c.replays, 100);
	ASSERT(c.examined >= 100);
	c = sweep_at(s, &clk, 2000);
	ASSERT_EQ_U64(c.replays, 0);
	ASSERT(c.examined < 100);
	ASSERT_EQ_U64(test_entries(s, "replays"), 100);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_sweep_null_store_invalid(void)
{
	once_sweep_counts c = {0};
	ASSERT_ST(once_sweep(NULL, &c), ONCE_INVALID);
	ASSERT_ST(once_sweep(NULL, NULL), ONCE_INVALID);
}

static void test_sweep_null_out_still_sweeps(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	replay_ttl(s, "jti", 0, 10);
	replay_ttl(s, "jti", 1, 1000);
	atomic_store(&clk.now, 1011);
	ASSERT_ST(once_sweep(s, NULL), ONCE_OK);
	ASSERT_EQ_U64(test_entries(s, "replays"), 1);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.replays.swept, 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

TESTS(TEST(test_sweep_strict_boundary_every_kind), TEST(test_stats_swept_counters_match),
      TEST(test_clock_injection), TEST(test_clock_jump_longer_than_wheel),
      TEST(test_entries_survive_several_wheel_turns),
      TEST(test_far_entry_removed_exactly_when_due), TEST(test_clock_backwards_then_forwards),
      TEST(test_inserted_already_expired), TEST(test_sweep_cost_follows_expired_not_table),
      TEST(test_sweep_twice_removes_nothing_second_time), TEST(test_sweep_null_store_invalid),
      TEST(test_sweep_null_out_still_sweeps));
TEST_MAIN()
