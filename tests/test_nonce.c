/*
 * tests/test_nonce.c - DPoP server nonces (RFC 9449 section 8).
 *
 * Covers once_nonce_issue (format, uniqueness, argument checks, out left
 * untouched on failure, capacity), once_nonce_valid (expires_at > now,
 * unused, bad arguments) and once_nonce_accept (single use, the freshness
 * window issued_at >= now - ttl with its exact boundary, EXPIRED vs SPENT,
 * NOT_FOUND for unknown and swept nonces, bad arguments).  On PostgreSQL
 * (suite pg) the same rules hold (AttestoPhoenix's strict expires_at > now
 * included), except capacity: dpop_nonces has none, never FULL.
 */
#include "harness.h"

#define SENTINEL 'Z'

static void fill_sentinel(char out[ONCE_NONCE_LEN + 1])
{
	memset(out, SENTINEL, ONCE_NONCE_LEN + 1);
}

static void assert_untouched(const char out[ONCE_NONCE_LEN + 1])
{
	for (int i = 0; i <= ONCE_NONCE_LEN; i++)
		if (out[i] != SENTINEL)
			FAIL_AT("out[%d] was written on failure (0x%02x)", i, (unsigned char)out[i]);
}

static bool b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static int cmp_nonce(const void *a, const void *b)
{
	return memcmp(a, b, ONCE_NONCE_LEN + 1);
}

/* Issues one nonce with `ttl` at the current test time, asserting OK. */
static void issue_ok(once_store *s, int64_t ttl, char out[ONCE_NONCE_LEN + 1])
{
	ASSERT_ST(once_nonce_issue(s, ttl, out), ONCE_OK);
}

static void test_issue_format(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	fill_sentinel(n);
	issue_ok(s, 60, n);
	ASSERT_EQ_INT(n[ONCE_NONCE_LEN], '\0');
	ASSERT_EQ_INT(strlen(n), 43);
	for (int i = 0; i < ONCE_NONCE_LEN; i++)
		if (!b64url_char(n[i]))
			FAIL_AT("nonce char %d is not base64url: 0x%02x", i, (unsigned char)n[i]);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_issue_distinct_10k(void)
{
	enum { N = 10000 };
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char (*all)[ONCE_NONCE_LEN + 1] = malloc(N * sizeof *all);
	ASSERT(all != NULL);
	for (int i = 0; i < N; i++)
		issue_ok(s, 60, all[i]);
	qsort(all, N, sizeof *all, cmp_nonce);
	for (int i = 1; i < N; i++)
		if (memcmp(all[i - 1], all[i], sizeof all[i]) == 0)
			FAIL_AT("duplicate nonce %s", all[i]);
	ASSERT_EQ_U64(test_entries(s, "nonces"), N);
	free(all);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_issue_invalid_args(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	const int64_t bad_ttls[] = {0, -1, -60, INT64_MIN};
	for (size_t i = 0; i < sizeof bad_ttls / sizeof bad_ttls[0]; i++) {
		fill_sentinel(n);
		ASSERT_ST(once_nonce_issue(s, bad_ttls[i], n), ONCE_INVALID);
		assert_untouched(n);
	}
	ASSERT_ST(once_nonce_issue(s, 60, NULL), ONCE_INVALID);
	fill_sentinel(n);
	ASSERT_ST(once_nonce_issue(NULL, 60, n), ONCE_INVALID);
	assert_untouched(n);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 0);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* A ttl above ONCE_TTL_MAX is refused; ONCE_TTL_MAX itself is accepted
 * and expires_at = now + ttl saturates at ONCE_TIME_MAX (tests/test_times.c
 * covers the range). */
static void test_issue_ttl_overflow_invalid(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	fill_sentinel(n);
	ASSERT_ST(once_nonce_issue(s, INT64_MAX, n), ONCE_INVALID);
	assert_untouched(n);
	ASSERT_ST(once_nonce_issue(s, ONCE_TTL_MAX + 1, n), ONCE_INVALID);
	assert_untouched(n);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 0);
	issue_ok(s, ONCE_TTL_MAX, n); /* expires_at == ONCE_TIME_MAX */
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN));
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* A store whose max_key_len is shorter than a nonce cannot accept its own
 * nonces, so issuing one must fail closed rather than mint a dead nonce. */
static void test_issue_refused_when_max_key_len_below_nonce_len(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_key_len = ONCE_NONCE_LEN - 1;
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	fill_sentinel(n);
	ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_INVALID);
	assert_untouched(n);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 0);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_valid_after_issue_not_after_accept(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 60, n);
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN));
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN)); /* read-only: still valid */
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_OK);
	ASSERT(!once_nonce_valid(s, n, ONCE_NONCE_LEN));
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_valid_false_for_bad_or_unknown(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_key_len = 64;
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1], other[ONCE_NONCE_LEN + 1];
	issue_ok(s, 60, n);
	ASSERT_ST(once_secret_generate(other), ONCE_OK); /* same shape, never issued */
	ASSERT(!once_nonce_valid(s, other, ONCE_NONCE_LEN));
	ASSERT(!once_nonce_valid(s, NULL, ONCE_NONCE_LEN));
	ASSERT(!once_nonce_valid(s, n, 0));
	ASSERT(!once_nonce_valid(s, n, ONCE_NONCE_LEN - 1)); /* a prefix is another key */
	char longer[65];
	memset(longer, 'A', sizeof longer);
	memcpy(longer, n, ONCE_NONCE_LEN);
	ASSERT(!once_nonce_valid(s, longer, sizeof longer)); /* over max_key_len */
	ASSERT(!once_nonce_valid(NULL, n, ONCE_NONCE_LEN));
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN)); /* and the real one still is */
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* valid() needs expires_at > now: true at expires_at - 1, false at expires_at. */
static void test_valid_boundary_at_expires_at(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 60, n); /* expires_at = 1060 */
	atomic_store(&clk.now, 1059);
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN));
	atomic_store(&clk.now, 1060);
	ASSERT(!once_nonce_valid(s, n, ONCE_NONCE_LEN));
	atomic_store(&clk.now, 5000);
	ASSERT(!once_nonce_valid(s, n, ONCE_NONCE_LEN));
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_accept_once_then_spent(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 60, n);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_OK);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_SPENT);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_SPENT);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1); /* a used nonce stays until swept */
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_accept_unknown_not_found(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1], other[ONCE_NONCE_LEN + 1];
	issue_ok(s, 60, n);
	ASSERT_ST(once_secret_generate(other), ONCE_OK);
	ASSERT_ST(once_nonce_accept(s, other, ONCE_NONCE_LEN, 60), ONCE_NOT_FOUND);
	ASSERT_ST(once_nonce_accept(s, "x", 1, 60), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_accept_swept_not_found(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 10, n); /* expires_at = 1010 */
	atomic_store(&clk.now, 1011);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.nonces, 1);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 0);
	/* A wide freshness window would accept it if it were still there. */
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 1000000), ONCE_NOT_FOUND);
	ASSERT(!once_nonce_valid(s, n, ONCE_NONCE_LEN));
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Fresh while issued_at >= now - ttl: OK at now == issued_at + ttl. */
static void test_accept_boundary_ok_at_issued_plus_ttl(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 300, n);
	atomic_store(&clk.now, 1060);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* One second past the window: EXPIRED. */
static void test_accept_boundary_expired_one_second_later(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 300, n);
	atomic_store(&clk.now, 1061);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_EXPIRED);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* EXPIRED does not consume: the nonce stays unused, so EXPIRED repeats and
 * an accept with a wider window still wins it (then SPENT). */
static void test_accept_expired_stays_unused(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 300, n);
	atomic_store(&clk.now, 1100);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_EXPIRED);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_EXPIRED);
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN)); /* expires_at 1300 > 1100, unused */
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 100), ONCE_OK);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 100), ONCE_SPENT);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* At now == expires_at, inside the freshness window: the embedded engine
 * takes the nonce (EXPIRED only past expires_at, the sweep's rule);
 * PostgreSQL answers EXPIRED (AttestoPhoenix's expires_at > now) and the
 * nonce stays unused.  One second earlier both take it. */
static void test_accept_at_expires_at(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char a[ONCE_NONCE_LEN + 1], b[ONCE_NONCE_LEN + 1];
	issue_ok(s, 60, a); /* expires_at = 1060 */
	issue_ok(s, 60, b);
	atomic_store(&clk.now, 1059);
	ASSERT_ST(once_nonce_accept(s, a, ONCE_NONCE_LEN, 600), ONCE_OK);
	atomic_store(&clk.now, 1060);
	if (!test_on_postgres()) {
		ASSERT_ST(once_nonce_accept(s, b, ONCE_NONCE_LEN, 600), ONCE_OK);
	} else {
		ASSERT_ST(once_nonce_accept(s, b, ONCE_NONCE_LEN, 600), ONCE_EXPIRED);
		ASSERT_ST(once_nonce_accept(s, b, ONCE_NONCE_LEN, 600), ONCE_EXPIRED); /* unused */
	}
	ASSERT_ST(once_nonce_accept(s, a, ONCE_NONCE_LEN, 600), ONCE_SPENT);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 2);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* SPENT is checked first: a used nonce outside the window is still SPENT. */
static void test_accept_used_and_expired_is_spent(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 60, n);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_OK);
	atomic_store(&clk.now, 1500); /* past the window and past expires_at, not swept */
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_SPENT);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_accept_invalid_args(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_key_len = 64;
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	issue_ok(s, 60, n);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 0), ONCE_INVALID);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, -1), ONCE_INVALID);
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, INT64_MIN), ONCE_INVALID);
	ASSERT_ST(once_nonce_accept(s, NULL, ONCE_NONCE_LEN, 60), ONCE_INVALID);
	ASSERT_ST(once_nonce_accept(s, n, 0, 60), ONCE_INVALID);
	char longer[65];
	memset(longer, 'A', sizeof longer);
	ASSERT_ST(once_nonce_accept(s, longer, sizeof longer, 60), ONCE_INVALID);
	ASSERT_ST(once_nonce_accept(NULL, n, ONCE_NONCE_LEN, 60), ONCE_INVALID);
	/* None of that consumed or stored anything. */
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1);
	ASSERT(once_nonce_valid(s, n, ONCE_NONCE_LEN));
	ASSERT_ST(once_nonce_accept(s, n, ONCE_NONCE_LEN, 60), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* At max_nonces: FULL, out untouched, nothing evicted. */
static void test_issue_full_evicts_nothing(void)
{
	enum { CAP = 8 };
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_nonces = CAP;
	once_store *s = test_open(&o);
	char n[CAP][ONCE_NONCE_LEN + 1], extra[ONCE_NONCE_LEN + 1];
	for (int i = 0; i < CAP; i++)
		issue_ok(s, 60, n[i]);
	fill_sentinel(extra);
	if (!test_on_postgres()) {
		ASSERT_ST(once_nonce_issue(s, 60, extra), ONCE_FULL);
		assert_untouched(extra);
		ASSERT_EQ_U64(test_entries(s, "nonces"), CAP);
		for (int i = 0; i < CAP; i++)
			ASSERT(once_nonce_valid(s, n[i], ONCE_NONCE_LEN));
		/* Used nonces still count until swept. */
		ASSERT_ST(once_nonce_accept(s, n[0], ONCE_NONCE_LEN, 60), ONCE_OK);
		ASSERT_ST(once_nonce_issue(s, 60, extra), ONCE_FULL);
	} else {
		/* PostgreSQL has no capacity (max_nonces is ignored, never
		 * FULL): the issue past it mints a nonce like any other. */
		ASSERT_ST(once_nonce_issue(s, 60, extra), ONCE_OK);
		ASSERT_EQ_INT(strlen(extra), ONCE_NONCE_LEN);
		ASSERT_EQ_U64(test_entries(s, "nonces"), CAP + 1);
		for (int i = 0; i < CAP; i++)
			ASSERT(once_nonce_valid(s, n[i], ONCE_NONCE_LEN));
		ASSERT(once_nonce_valid(s, extra, ONCE_NONCE_LEN));
		ASSERT_ST(once_nonce_accept(s, n[0], ONCE_NONCE_LEN, 60), ONCE_OK);
		ASSERT_ST(once_nonce_issue(s, 60, extra), ONCE_OK);
		ASSERT_EQ_U64(test_entries(s, "nonces"), CAP + 2); /* the used one counts */
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_issue_works_again_after_sweep(void)
{
	enum { CAP = 8 };
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_nonces = CAP;
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1], keep[ONCE_NONCE_LEN + 1];
	issue_ok(s, 1000, keep); /* outlives the sweep */
	for (int i = 1; i < CAP; i++)
		issue_ok(s, 10, n);
	/* PostgreSQL has no capacity: never FULL, so each "full" issue
	 * below mints one more nonce there (ttl 10: swept with the others). */
	const bool pg = test_on_postgres();
	if (!pg)
		ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_FULL);
	else
		ASSERT_ST(once_nonce_issue(s, 10, n), ONCE_OK);
	atomic_store(&clk.now, 1011);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.nonces, pg ? CAP : CAP - 1);
	ASSERT_EQ_U64(test_entries(s, "nonces"), 1);
	for (int i = 1; i < CAP; i++)
		issue_ok(s, 60, n);
	if (!pg) {
		ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_FULL);
	} else {
		ASSERT_ST(once_nonce_issue(s, 60, n), ONCE_OK);
		ASSERT_EQ_U64(test_entries(s, "nonces"), CAP + 1);
	}
	ASSERT(once_nonce_valid(s, keep, ONCE_NONCE_LEN));
	ASSERT_ST(once_close(s), ONCE_OK);
}

TESTS(TEST(test_issue_format), TEST(test_issue_distinct_10k), TEST(test_issue_invalid_args),
      TEST(test_issue_ttl_overflow_invalid),
      TEST(test_issue_refused_when_max_key_len_below_nonce_len),
      TEST(test_valid_after_issue_not_after_accept), TEST(test_valid_false_for_bad_or_unknown),
      TEST(test_valid_boundary_at_expires_at), TEST(test_accept_once_then_spent),
      TEST(test_accept_unknown_not_found), TEST(test_accept_swept_not_found),
      TEST(test_accept_boundary_ok_at_issued_plus_ttl),
      TEST(test_accept_boundary_expired_one_second_later), TEST(test_accept_expired_stays_unused),
      TEST(test_accept_at_expires_at), TEST(test_accept_used_and_expired_is_spent), TEST(test_accept_invalid_args),
      TEST(test_issue_full_evicts_nothing), TEST(test_issue_works_again_after_sweep));
TEST_MAIN()
