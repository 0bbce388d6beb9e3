/*
 * tests/test_times.c - clocks, ttls and expiries at the ends of int64_t
 * (oncestore.h, "Times"; issue 9 item 4):
 *   - a revocation with revocation_ttl 0 and the clock at INT64_MIN returns
 *     (the family's expiry once became ONCE_FAMILY_DEAD: a hang);
 *   - a sweep after the clock jumps from -2^62 to 2^62 + 2^61 visits one
 *     wheel turn, not 2^63 seconds;
 *   - no signed overflow (UBSan in the ASan build): `now - 1` at open,
 *     the sweep's distance, nonce accept's `now - issued_at`;
 *   - callers' expires_at and ttls outside the range are ONCE_INVALID with
 *     nothing stored; sums saturate at ONCE_TIME_MAX; the clock is clamped;
 *   - every call that reads the clock, at extreme clock readings, with and
 *     without a data directory (checkpoint, recovery).
 * A hang must fail, not stall CI: every test arms alarm(), and SIGALRM
 * kills its child (the harness reports the signal).
 * White-box (core/internal.h) where a test checks one layer of the fix on
 * its own: the saturating helpers, the family hold, the sweep's distance,
 * a recovered nonce's issued_at; each says so.
 */
#include <signal.h>

#include "durable.h"

#define WATCHDOG() alarm(20)

static const int64_t extreme_clocks[] = {
	INT64_MIN, INT64_MIN + 1, -(INT64_C(1) << 62), -1, 0, ONCE_TIME_MIN,
	ONCE_TIME_MAX, ONCE_TIME_MAX + 1, INT64_MAX - 1, INT64_MAX,
};
#define N_CLOCKS (sizeof extreme_clocks / sizeof extreme_clocks[0])

/* Caller expiries outside [ONCE_TIME_MIN, ONCE_TIME_MAX]. */
static const int64_t bad_expiries[] = {INT64_MIN, INT64_MIN + 1, -1, 0, ONCE_TIME_MAX + 1,
                                       INT64_MAX - 1, INT64_MAX};
#define N_BAD_EXPIRIES (sizeof bad_expiries / sizeof bad_expiries[0])

/* ttls outside [1, ONCE_TTL_MAX]. */
static const int64_t bad_ttls[] = {INT64_MIN, -1, 0, ONCE_TTL_MAX + 1, INT64_MAX - 1, INT64_MAX};
#define N_BAD_TTLS (sizeof bad_ttls / sizeof bad_ttls[0])

static const unsigned char SUCC_KEY[ONCE_SUCCESSOR_KEY_LEN] = {7};

static once_options opts(struct test_clock *clk, int64_t revocation_ttl)
{
	once_options o = test_options(clk);
	o.revocation_ttl = revocation_ttl;
	o.successor_key = SUCC_KEY;
	return o;
}

/* White-box: the entry of table t under key, or NULL; the caller holds
 * the read lock. */
static struct once__entry *entry_of(once_store *s, enum once__table t, const void *key, size_t len)
{
	struct once__key k;
	if (once__key_make(s, t, key, len, &k) != ONCE_OK)
		FAIL_AT("bad key");
	return once__table_lookup(s, &k);
}

static int64_t expiry_of(once_store *s, enum once__table t, const void *key, size_t len)
{
	urcu_bp_read_lock();
	struct once__entry *e = entry_of(s, t, key, len);
	int64_t exp = e ? atomic_load(&e->expires_at) : 0;
	once__read_unlock();
	if (e == NULL)
		FAIL_AT("no entry for %.*s", (int)len, (const char *)key);
	return exp;
}

/* ---- the three holes ---- */

/* Hole 1: the family's expiry was now + 0 = INT64_MIN = ONCE_FAMILY_DEAD,
 * and once__family_hold waited for the "dead" family forever. */
static void test_revoke_clock_min_ttl0_returns(void)
{
	WATCHDOG();
	struct test_clock clk = {INT64_MIN};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "afam", 4), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(s, "rfam", 4), ONCE_OK);
	/* Idempotent, and the marks work (sticky). */
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "afam", 4), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(s, "rfam", 4), ONCE_OK);
	ASSERT_ST(once_code_record_access_token(s, "afam", 4, "jti-1", 5, 1000), ONCE_OK);
	ASSERT(once_access_token_revoked(s, "jti-1", 5));
	char h[ONCE_SECRET_LEN + 1];
	test_key(h, "tok", 1);
	once_refresh r = test_refresh("rfam", 1000);
	ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_REVOKED);
	/* A family with tokens, revoked at the same clock. */
	r.family_id = "rfam-2";
	ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(s, "rfam-2", 6), ONCE_OK);
	ASSERT_ST(once_refresh_get(s, h, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	/* A sweep at the same clock keeps what has not expired. */
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT(once_access_token_revoked(s, "jti-1", 5));
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* White-box, the family layer alone: holding a family "until" the DEAD
 * sentinel must not create or extend a family to DEAD. */
static void test_family_hold_never_dead(void)
{
	WATCHDOG();
	struct test_clock clk = {1000};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	const enum once__table kinds[] = {ONCE_TBL_ACCESS_FAMILY, ONCE_TBL_REFRESH_FAMILY};
	for (size_t i = 0; i < 2; i++) {
		struct once__key k;
		ASSERT_ST(once__key_make(s, kinds[i], "fam", 3, &k), ONCE_OK);
		urcu_bp_read_lock();
		struct once__entry *f = NULL;
		ASSERT_ST(once__family_hold(s, &k, ONCE_FAMILY_DEAD, &f), ONCE_OK); /* creates */
		ASSERT(f != NULL);
		ASSERT(atomic_load(&f->expires_at) >= ONCE_TIME_MIN);
		ASSERT_ST(once__family_hold(s, &k, ONCE_FAMILY_DEAD, &f), ONCE_OK); /* finds */
		ASSERT(atomic_load(&f->expires_at) >= ONCE_TIME_MIN);
		ASSERT_ST(once__family_hold(s, &k, INT64_MAX, &f), ONCE_OK); /* extends, clamped */
		ASSERT_EQ_INT(atomic_load(&f->expires_at), ONCE_TIME_MAX);
		once__read_unlock();
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Hole 2: last - first overflowed and skipped the one-turn clamp. */
static void test_sweep_after_huge_jump_walks_one_turn(void)
{
	WATCHDOG();
	struct test_clock clk = {-(INT64_C(1) << 62)};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	char h[ONCE_SECRET_LEN + 1];
	for (uint64_t i = 0; i < 10; i++) {
		test_key(h, "code", i);
		once_code c = test_code(1000 + (int64_t)i);
		ASSERT_ST(once_code_put(s, h, ONCE_SECRET_LEN, &c), ONCE_OK);
	}
	ASSERT_ST(once_replay_check(s, "jti", 3, 60), ONCE_OK);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.codes + c.replays, 0);
	atomic_store(&clk.now, (INT64_C(1) << 62) + (INT64_C(1) << 61));
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.codes, 10);
	ASSERT_EQ_U64(c.replays, 1);
	ASSERT_EQ_U64(c.examined, 11);
	/* And back, and to both ends. */
	const int64_t then[] = {INT64_MIN, INT64_MAX, INT64_MIN, -(INT64_C(1) << 62), INT64_MAX};
	for (size_t i = 0; i < sizeof then / sizeof then[0]; i++) {
		atomic_store(&clk.now, then[i]);
		ASSERT_ST(once_sweep(s, &c), ONCE_OK);
		ASSERT_EQ_U64(c.examined, 0);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* White-box, the sweep layer alone: a wheel whose swept_upto is as far
 * behind as int64_t allows is walked one turn (each slot once). */
static void test_sweep_distance_cannot_overflow(void)
{
	WATCHDOG();
	struct test_clock clk = {1000};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	ASSERT_ST(once_replay_check(s, "a", 1, 10), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "b", 1, 5000), ONCE_OK);
	for (uint32_t i = 0; i < o.shards; i++)
		atomic_store(&s->shards[i].wheel.swept_upto, INT64_MIN);
	atomic_store(&clk.now, INT64_MAX); /* reads as ONCE_TIME_MAX */
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.replays, 2);
	ASSERT_EQ_U64(c.examined, 2);
	for (uint32_t i = 0; i < o.shards; i++)
		ASSERT_EQ_INT(atomic_load(&s->shards[i].wheel.swept_upto), ONCE_TIME_MAX - 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Hole 3a: `now - 1` at open with the clock at INT64_MIN. */
static void test_open_clock_min(void)
{
	WATCHDOG();
	struct test_clock clk = {INT64_MIN};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	char h[ONCE_SECRET_LEN + 1];
	test_key(h, "code", 1);
	once_code c = test_code(100);
	ASSERT_ST(once_code_put(s, h, ONCE_SECRET_LEN, &c), ONCE_OK);
	once_sweep_counts n;
	ASSERT_ST(once_sweep(s, &n), ONCE_OK); /* clock reads ONCE_TIME_MIN: not due */
	ASSERT_EQ_U64(n.codes, 0);
	atomic_store(&clk.now, 101);
	ASSERT_ST(once_sweep(s, &n), ONCE_OK);
	ASSERT_EQ_U64(n.codes, 1);
	ASSERT_ST(once_close(s), ONCE_OK);

	/* White-box, the wheel layer alone. */
	struct once__wheel *w = malloc(sizeof *w);
	ASSERT(w != NULL);
	once__wheel_init(w, INT64_MIN);
	ASSERT_EQ_INT(atomic_load(&w->swept_upto), ONCE_TIME_MIN - 1);
	free(w);
}

/* Hole 3c: `now - issued` in accept; issued at the bottom of the clock,
 * accepted at the top. */
static void test_nonce_accept_across_the_range(void)
{
	WATCHDOG();
	struct test_clock clk = {INT64_MIN};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	char n1[ONCE_NONCE_LEN + 1], n2[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once_nonce_issue(s, ONCE_TTL_MAX, n1), ONCE_OK);
	ASSERT_ST(once_nonce_issue(s, ONCE_TTL_MAX, n2), ONCE_OK);
	atomic_store(&clk.now, INT64_MAX);
	/* Issued at ONCE_TIME_MIN, now ONCE_TIME_MAX: age 2^62 - 1. */
	ASSERT_ST(once_nonce_accept(s, n1, ONCE_NONCE_LEN, 60), ONCE_EXPIRED);
	ASSERT_ST(once_nonce_accept(s, n1, ONCE_NONCE_LEN, ONCE_TTL_MAX), ONCE_OK);
	ASSERT_ST(once_nonce_accept(s, n1, ONCE_NONCE_LEN, ONCE_TTL_MAX), ONCE_SPENT);
	ASSERT_ST(once_nonce_accept(s, n2, ONCE_NONCE_LEN, INT64_MAX), ONCE_INVALID);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* White-box, the nonce layer alone: an issued_at outside the range (as a
 * log could hold) must not overflow the age. */
static void test_nonce_age_cannot_overflow(void)
{
	WATCHDOG();
	struct test_clock clk = {1000};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once_nonce_issue(s, ONCE_TTL_MAX, n), ONCE_OK);
	urcu_bp_read_lock();
	entry_of(s, ONCE_TBL_NONCE, n, ONCE_NONCE_LEN)->u.nonce.issued_at = INT64_MIN;
	once__read_unlock();
	atomic_store(&clk.now, INT64_MAX);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, ONCE_TTL_MAX), ONCE_EXPIRED);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- the range ---- */

/* White-box: the helpers every time goes through. */
static void test_time_helpers(void)
{
	ASSERT_EQ_INT(once__time_clamp(INT64_MIN), ONCE_TIME_MIN);
	ASSERT_EQ_INT(once__time_clamp(0), ONCE_TIME_MIN);
	ASSERT_EQ_INT(once__time_clamp(ONCE_TIME_MIN), ONCE_TIME_MIN);
	ASSERT_EQ_INT(once__time_clamp(12345), 12345);
	ASSERT_EQ_INT(once__time_clamp(ONCE_TIME_MAX), ONCE_TIME_MAX);
	ASSERT_EQ_INT(once__time_clamp(INT64_MAX), ONCE_TIME_MAX);
	ASSERT_EQ_INT(once__time_add(1000, 60), 1060);
	ASSERT_EQ_INT(once__time_add(1000, 0), 1000);
	ASSERT_EQ_INT(once__time_add(INT64_MIN, 0), ONCE_TIME_MIN);
	ASSERT_EQ_INT(once__time_add(INT64_MIN, INT64_MIN), ONCE_TIME_MIN);
	ASSERT_EQ_INT(once__time_add(ONCE_TIME_MAX, ONCE_TTL_MAX), ONCE_TIME_MAX);
	ASSERT_EQ_INT(once__time_add(ONCE_TIME_MAX - 1, 1), ONCE_TIME_MAX);
	ASSERT_EQ_INT(once__time_add(ONCE_TIME_MAX - 1, 2), ONCE_TIME_MAX);
	ASSERT_EQ_INT(once__time_add(INT64_MAX, INT64_MAX), ONCE_TIME_MAX);
	ASSERT_EQ_INT(once__time_add(1, ONCE_TTL_MAX), ONCE_TIME_MAX);
	ASSERT(!once__time_valid(0) && !once__time_valid(-1) && !once__time_valid(INT64_MIN));
	ASSERT(!once__time_valid(ONCE_TIME_MAX + 1) && !once__time_valid(INT64_MAX));
	ASSERT(once__time_valid(ONCE_TIME_MIN) && once__time_valid(ONCE_TIME_MAX));
	ASSERT(!once__ttl_valid(0) && !once__ttl_valid(-1) && !once__ttl_valid(INT64_MIN));
	ASSERT(!once__ttl_valid(ONCE_TTL_MAX + 1) && !once__ttl_valid(INT64_MAX));
	ASSERT(once__ttl_valid(1) && once__ttl_valid(ONCE_TTL_MAX));
}

/* Caller expiries outside the range: INVALID, nothing stored; both ends
 * of the range are accepted. */
static void test_expiry_range(void)
{
	WATCHDOG();
	struct test_clock clk = {1000};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	char h[ONCE_SECRET_LEN + 1], p[ONCE_SECRET_LEN + 1];
	test_key(h, "h", 1);
	test_key(p, "parent", 1);
	once_refresh parent = test_refresh("fam", 5000);
	ASSERT_ST(once_refresh_insert(s, p, ONCE_SECRET_LEN, &parent), ONCE_OK);
	for (size_t i = 0; i < N_BAD_EXPIRIES; i++) {
		int64_t exp = bad_expiries[i];
		once_code c = test_code(exp);
		ASSERT_ST(once_code_put(s, h, ONCE_SECRET_LEN, &c), ONCE_INVALID);
		once_refresh r = test_refresh("fam", exp);
		ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_INVALID);
		ASSERT_ST(once_refresh_rotate(s, p, ONCE_SECRET_LEN, h, ONCE_SECRET_LEN, &r, NULL,
		                              0, NULL),
		          ONCE_INVALID);
		ASSERT_ST(once_code_record_access_token(s, "afam", 4, "jti", 3, exp), ONCE_INVALID);
	}
	ASSERT_EQ_U64(test_entries(s, "codes"), 0);
	ASSERT_EQ_U64(test_entries(s, "refresh"), 1);
	ASSERT_EQ_U64(test_entries(s, "access_tokens"), 0);
	ASSERT_ST(once_refresh_get(s, p, ONCE_SECRET_LEN, NULL), ONCE_OK); /* unconsumed */

	/* The ends of the range. */
	const int64_t good[] = {ONCE_TIME_MIN, ONCE_TIME_MAX};
	for (uint64_t i = 0; i < 2; i++) {
		test_key(h, "good", i);
		once_code c = test_code(good[i]);
		ASSERT_ST(once_code_put(s, h, ONCE_SECRET_LEN, &c), ONCE_OK);
		once_refresh r = test_refresh("fam-good", good[i]);
		ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_OK);
		char jti[8];
		snprintf(jti, sizeof jti, "jti-%d", (int)i);
		ASSERT_ST(once_code_record_access_token(s, "afam", 4, jti, 5, good[i]), ONCE_OK);
	}
	test_key(h, "child", 1);
	once_refresh r = test_refresh("fam", ONCE_TIME_MAX);
	ASSERT_ST(once_refresh_rotate(s, p, ONCE_SECRET_LEN, h, ONCE_SECRET_LEN, &r, NULL, 0, NULL),
	          ONCE_OK);
	/* The family lasts as long as its latest token, ONCE_TIME_MAX. */
	ASSERT_EQ_INT(expiry_of(s, ONCE_TBL_REFRESH_FAMILY, "fam", 3), ONCE_TIME_MAX);
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "afam", 4), ONCE_OK);
	atomic_store(&clk.now, INT64_MAX); /* reads as ONCE_TIME_MAX: nothing expired yet */
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.codes, 1);
	ASSERT_EQ_U64(c.access_tokens, 1);
	ASSERT(once_access_token_revoked(s, "jti-1", 5));
	ASSERT_ST(once_refresh_get(s, h, ONCE_SECRET_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ttls outside [1, ONCE_TTL_MAX]: INVALID, nothing stored; ONCE_TTL_MAX
 * saturates at ONCE_TIME_MAX from any clock. */
static void test_ttl_range(void)
{
	WATCHDOG();
	struct test_clock clk = {1000};
	once_options o = opts(&clk, 0);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_OK);
	for (size_t i = 0; i < N_BAD_TTLS; i++) {
		char m[ONCE_NONCE_LEN + 1];
		ASSERT_ST(once_nonce_issue(s, bad_ttls[i], m), ONCE_INVALID);
		ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, bad_ttls[i]), ONCE_INVALID);
		ASSERT_ST(once_replay_check(s, "jti", 3, bad_ttls[i]), ONCE_INVALID);
	}
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN)); /* still unused */

	const int64_t clocks[] = {1000, ONCE_TIME_MAX - 1, INT64_MAX};
	for (size_t i = 0; i < 3; i++) {
		atomic_store(&clk.now, clocks[i]);
		char jti[8];
		snprintf(jti, sizeof jti, "max-%d", (int)i);
		ASSERT_ST(once_replay_check(s, jti, 5, ONCE_TTL_MAX), ONCE_OK);
		ASSERT_EQ_INT(expiry_of(s, ONCE_TBL_REPLAY, jti, 5), ONCE_TIME_MAX);
		char m[ONCE_NONCE_LEN + 1];
		ASSERT_ST(once_nonce_issue(s, ONCE_TTL_MAX, m), ONCE_OK);
		ASSERT_EQ_INT(expiry_of(s, ONCE_TBL_NONCE, m, ONCE_NONCE_LEN), ONCE_TIME_MAX);
		ASSERT_ST(once_nonce_accept(s, m, ONCE_NONCE_LEN, ONCE_TTL_MAX), ONCE_OK);
	}
	/* Nothing expiring at ONCE_TIME_MAX is ever swept: no clock passes it. */
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.replays, 0);
	ASSERT_EQ_U64(c.nonces, 1); /* the 60 s one */
	ASSERT_ST(once_replay_check(s, "max-0", 5, 1), ONCE_SPENT);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_revocation_ttl_range(void)
{
	WATCHDOG();
	struct test_clock clk = {1000};
	const int64_t bad[] = {INT64_MIN, -1, ONCE_TTL_MAX + 1, INT64_MAX};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		once_options o = opts(&clk, bad[i]);
		once_store *s = NULL;
		ASSERT_ST(once_open(&o, &s), ONCE_INVALID);
		ASSERT(s == NULL);
	}
	const int64_t good[] = {0, 1, ONCE_TTL_MAX};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		for (size_t j = 0; j < N_CLOCKS; j++) {
			atomic_store(&clk.now, extreme_clocks[j]);
			once_options o = opts(&clk, good[i]);
			once_store *s = test_open(&o);
			ASSERT_ST(once_refresh_revoke_family(s, "rfam", 4), ONCE_OK);
			ASSERT_ST(once_code_revoke_family_access_tokens(s, "afam", 4), ONCE_OK);
			int64_t now = once__time_clamp(extreme_clocks[j]);
			int64_t want = once__time_add(now, good[i]);
			ASSERT_EQ_INT(expiry_of(s, ONCE_TBL_REFRESH_FAMILY, "rfam", 4), want);
			ASSERT_EQ_INT(expiry_of(s, ONCE_TBL_ACCESS_FAMILY, "afam", 4), want);
			char h[ONCE_SECRET_LEN + 1];
			test_key(h, "tok", 1);
			once_refresh r = test_refresh("rfam", ONCE_TIME_MAX);
			ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_REVOKED);
			ASSERT_ST(once_close(s), ONCE_OK);
		}
	}
	/* A mark of ONCE_TTL_MAX outlives any clock. */
	atomic_store(&clk.now, 1000);
	once_options o = opts(&clk, ONCE_TTL_MAX);
	once_store *s = test_open(&o);
	ASSERT_ST(once_refresh_revoke_family(s, "rfam", 4), ONCE_OK);
	atomic_store(&clk.now, INT64_MAX);
	ASSERT_ST(once_sweep(s, NULL), ONCE_OK);
	char h[ONCE_SECRET_LEN + 1];
	test_key(h, "tok", 2);
	once_refresh r = test_refresh("rfam", ONCE_TIME_MAX);
	ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_REVOKED);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- every call that reads the clock, at every extreme reading ---- */

/* One of everything, at the clock's current reading; the store's clock
 * reads `now` (clamped).  Expiries are ONCE_TIME_MAX so that nothing is
 * stale at any clock. */
static void exercise(once_store *s, int64_t now, int round)
{
	char h[ONCE_SECRET_LEN + 1], child[ONCE_SECRET_LEN + 1], tag[32];
	snprintf(tag, sizeof tag, "r%d", round);

	test_key(h, tag, 1);
	once_code c = test_code(ONCE_TIME_MAX);
	ASSERT_ST(once_code_put(s, h, ONCE_SECRET_LEN, &c), ONCE_OK);
	once_code *got = NULL;
	ASSERT_ST(once_code_get(s, h, ONCE_SECRET_LEN, &got), ONCE_OK);
	ASSERT_EQ_INT(got->inserted_at, now);
	once_free(got);
	got = NULL;
	ASSERT_ST(once_code_take(s, h, ONCE_SECRET_LEN, &got, NULL), ONCE_OK);
	ASSERT_EQ_INT(got->consumed_at, now);
	once_free(got);
	ASSERT_ST(once_code_finalize(s, h, ONCE_SECRET_LEN), ONCE_OK);
	once_code_meta *meta = NULL;
	ASSERT_ST(once_code_take(s, h, ONCE_SECRET_LEN, NULL, &meta), ONCE_SPENT);
	once_free(meta);

	char fam[32], jti[32];
	snprintf(fam, sizeof fam, "afam-%d", round);
	snprintf(jti, sizeof jti, "jti-%d", round);
	ASSERT_ST(once_code_record_access_token(s, fam, strlen(fam), jti, strlen(jti),
	                                        ONCE_TIME_MAX),
	          ONCE_OK);
	ASSERT(!once_access_token_revoked(s, jti, strlen(jti)));
	ASSERT_ST(once_code_revoke_family_access_tokens(s, fam, strlen(fam)), ONCE_OK);
	ASSERT(once_access_token_revoked(s, jti, strlen(jti)));

	snprintf(fam, sizeof fam, "rfam-%d", round);
	test_key(h, tag, 2);
	test_key(child, tag, 3);
	once_refresh r = test_refresh(fam, ONCE_TIME_MAX);
	ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_OK);
	once_refresh *rg = NULL;
	ASSERT_ST(once_refresh_get(s, h, ONCE_SECRET_LEN, &rg), ONCE_OK);
	ASSERT_EQ_INT(rg->inserted_at, now);
	once_free(rg);
	rg = NULL;
	ASSERT_ST(once_refresh_rotate(s, h, ONCE_SECRET_LEN, child, ONCE_SECRET_LEN, &r, "next", 4,
	                              &rg),
	          ONCE_OK);
	once_free(rg);
	rg = NULL;
	ASSERT_ST(once_refresh_consume(s, h, ONCE_SECRET_LEN, &rg), ONCE_SPENT);
	ASSERT_EQ_INT(rg->consumed_at, now);
	once_free(rg);
	ASSERT_ST(once_refresh_consume(s, child, ONCE_SECRET_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(s, child, ONCE_SECRET_LEN, "s", 1), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(s, fam, strlen(fam)), ONCE_OK);
	ASSERT_ST(once_refresh_get(s, child, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);

	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once_nonce_issue(s, ONCE_TTL_MAX, n), ONCE_OK);
	ASSERT_ST(once_nonce_issue(s, 1, n), ONCE_OK);
	/* False at ONCE_TIME_MAX (expires_at == now, and valid is strict). */
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN) == (now < ONCE_TIME_MAX));
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 1), ONCE_OK);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 1), ONCE_SPENT);

	ASSERT_ST(once_replay_check(s, jti, strlen(jti), 1), ONCE_OK);
	ASSERT_ST(once_replay_check(s, jti, strlen(jti), ONCE_TTL_MAX), ONCE_SPENT);

	once_sweep_counts sc;
	ASSERT_ST(once_sweep(s, &sc), ONCE_OK);
	struct once_stats st;
	once_stats(s, &st);
}

static void test_every_call_at_extreme_clocks(void)
{
	WATCHDOG();
	for (size_t i = 0; i < N_CLOCKS; i++) {
		struct test_clock clk = {extreme_clocks[i]};
		once_options o = opts(&clk, 0);
		once_store *s = test_open(&o);
		exercise(s, once__time_clamp(extreme_clocks[i]), 0);
		/* The clock moves to every other extreme, sweeping each time. */
		for (size_t j = 0; j < N_CLOCKS; j++) {
			atomic_store(&clk.now, extreme_clocks[j]);
			exercise(s, once__time_clamp(extreme_clocks[j]), 1 + (int)j);
		}
		ASSERT_ST(once_checkpoint(s), ONCE_INVALID); /* memory only */
		ASSERT_ST(once_close(s), ONCE_OK);
	}
	/* The real-time clock reads inside the range. */
	once_options o = opts(NULL, 0);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once_nonce_issue(s, ONCE_TTL_MAX, n), ONCE_OK);
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN));
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* With a data directory: open (recovery), writes, checkpoint and reopen at
 * extreme clocks; what recovery keeps is what the clamped clock says. */
static void test_durable_extreme_clocks(void)
{
	WATCHDOG();
	for (size_t i = 0; i < N_CLOCKS; i += 3) {
		char dir[256];
		test_tmpdir(dir);
		struct test_clock clk = {extreme_clocks[i]};
		once_options o = opts(&clk, 0);
		o.dir = dir;
		o.checkpoint_bytes = UINT64_MAX;
		o.sync = ONCE_SYNC_NONE; /* durability is not what this checks */
		once_store *s = test_open(&o);
		exercise(s, once__time_clamp(extreme_clocks[i]), 0);
		ASSERT_ST(once_checkpoint(s), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "short", 5, 1), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "long", 4, ONCE_TTL_MAX), ONCE_OK);
		ASSERT_ST(once_close(s), ONCE_OK);
		for (size_t j = 0; j < N_CLOCKS; j++) {
			atomic_store(&clk.now, extreme_clocks[j]);
			s = test_open(&o);
			ASSERT_ST(once_replay_check(s, "long", 4, 1), ONCE_SPENT);
			exercise(s, once__time_clamp(extreme_clocks[j]), 1 + (int)j);
			ASSERT_ST(once_checkpoint(s), ONCE_OK);
			struct once_stats st;
			once_stats(s, &st);
			ASSERT_EQ_INT(st.last_checkpoint_at, once__time_clamp(extreme_clocks[j]));
			ASSERT_ST(once_close(s), ONCE_OK);
		}
		test_rmdir(dir);
	}
}

/* White-box: times a log may hold that this version never writes (an
 * expiry past ONCE_TIME_MAX, as older versions allowed; an issued_at of
 * INT64_MIN) come back clamped or harmless. */
static void test_recovered_odd_times(void)
{
	WATCHDOG();
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_options o = opts(&clk, 0);
	o.dir = dir;
	o.checkpoint_bytes = UINT64_MAX;
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "jti", 3, 60), ONCE_OK);
	urcu_bp_read_lock();
	entry_of(s, ONCE_TBL_NONCE, n, ONCE_NONCE_LEN)->u.nonce.issued_at = INT64_MIN;
	atomic_store(&entry_of(s, ONCE_TBL_REPLAY, "jti", 3)->expires_at, INT64_MAX);
	once__read_unlock();
	ASSERT_ST(once_checkpoint(s), ONCE_OK); /* the snapshot holds them */
	ASSERT_ST(once_close(s), ONCE_OK);
	s = test_open(&o);
	ASSERT_EQ_INT(expiry_of(s, ONCE_TBL_REPLAY, "jti", 3), ONCE_TIME_MAX);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_EXPIRED);
	atomic_store(&clk.now, INT64_MAX);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, ONCE_TTL_MAX), ONCE_EXPIRED);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

TESTS(TEST(test_revoke_clock_min_ttl0_returns), TEST(test_family_hold_never_dead),
      TEST(test_sweep_after_huge_jump_walks_one_turn), TEST(test_sweep_distance_cannot_overflow),
      TEST(test_open_clock_min), TEST(test_nonce_accept_across_the_range),
      TEST(test_nonce_age_cannot_overflow), TEST(test_time_helpers), TEST(test_expiry_range),
      TEST(test_ttl_range), TEST(test_revocation_ttl_range),
      TEST(test_every_call_at_extreme_clocks), TEST(test_durable_extreme_clocks),
      TEST(test_recovered_odd_times));

TEST_MAIN()
