/*
 * tests/test_replay.c - the DPoP proof `jti` replay cache (RFC 9449 11.1).
 *
 * Covers once_replay_check: OK the first time and SPENT after, argument
 * checks (each one storing nothing), the max_key_len boundary, a
 * present-but-expired entry staying SPENT until swept, keys as byte strings
 * (embedded NULs, binary, prefixes, last-byte differences), exact capacity
 * (FULL, and SPENT rather than FULL for a replay in a full cache) and
 * expires_at overflow.  On PostgreSQL (suite pg) a jti is a varchar(255)
 * key: valid UTF-8 without NUL, at most 255 characters, else INVALID with
 * nothing stored; and there is no capacity (never FULL).
 */
#include "harness.h"

static once_store *open_at(struct test_clock *clk, uint64_t max_replays, uint32_t max_key_len)
{
	once_options o = test_options(clk);
	if (max_replays != 0)
		o.max_replays = max_replays;
	if (max_key_len != 0)
		o.max_key_len = max_key_len;
	return test_open(&o);
}

static void test_first_ok_then_spent(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 60), ONCE_SPENT);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 600), ONCE_SPENT); /* another ttl: same key */
	ASSERT_ST(once_replay_check(s, "jti-2", 5, 60), ONCE_OK);
	ASSERT_EQ_U64(test_entries(s, "replays"), 2);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_invalid_ttl_stores_nothing(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 0), ONCE_INVALID);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, -1), ONCE_INVALID);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, INT64_MIN), ONCE_INVALID);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 60), ONCE_OK); /* not recorded before */
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_invalid_key_stores_nothing(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 32);
	char big[33];
	memset(big, 'k', sizeof big);
	ASSERT_ST(once_replay_check(s, NULL, 5, 60), ONCE_INVALID);
	ASSERT_ST(once_replay_check(s, NULL, 0, 60), ONCE_INVALID);
	ASSERT_ST(once_replay_check(s, "jti-1", 0, 60), ONCE_INVALID);
	ASSERT_ST(once_replay_check(s, big, sizeof big, 60), ONCE_INVALID);
	ASSERT_ST(once_replay_check(s, big, SIZE_MAX, 60), ONCE_INVALID);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	/* The over-long key was not recorded under a truncated form either. */
	ASSERT_ST(once_replay_check(s, big, 32, 60), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_null_store_invalid(void)
{
	ASSERT_ST(once_replay_check(NULL, "jti-1", 5, 60), ONCE_INVALID);
}

static void test_max_key_len_exact(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 100);
	char k[101];
	memset(k, 'q', sizeof k);
	ASSERT_ST(once_replay_check(s, k, 100, 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, k, 100, 60), ONCE_SPENT);
	ASSERT_ST(once_replay_check(s, k, 101, 60), ONCE_INVALID);
	ASSERT_EQ_U64(test_entries(s, "replays"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Past expires_at but not swept: still a replay. */
static void test_expired_unswept_still_spent(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 10), ONCE_OK); /* expires_at 1010 */
	atomic_store(&clk.now, 1011);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 10), ONCE_SPENT);
	atomic_store(&clk.now, 999999);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 10), ONCE_SPENT);
	ASSERT_EQ_U64(test_entries(s, "replays"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_ok_again_after_sweep(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 10), ONCE_OK);
	atomic_store(&clk.now, 1011);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.replays, 1);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 10), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "jti-1", 5, 10), ONCE_SPENT);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_embedded_nul_keys(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	if (!test_on_postgres()) {
		ASSERT_ST(once_replay_check(s, "a\0b", 3, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "a\0c", 3, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "a", 1, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "a\0", 2, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "\0", 1, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "\0\0", 2, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "a\0b", 3, 60), ONCE_SPENT);
		ASSERT_ST(once_replay_check(s, "a\0c", 3, 60), ONCE_SPENT);
		ASSERT_ST(once_replay_check(s, "\0", 1, 60), ONCE_SPENT);
		ASSERT_EQ_U64(test_entries(s, "replays"), 6);
	} else {
		/* PostgreSQL: a jti is text, and text holds no NUL: every key
		 * with one is INVALID and stores nothing (not even its prefix
		 * before the NUL), the key "a" itself is an ordinary one. */
		ASSERT_ST(once_replay_check(s, "a\0b", 3, 60), ONCE_INVALID);
		ASSERT_ST(once_replay_check(s, "a\0c", 3, 60), ONCE_INVALID);
		ASSERT_ST(once_replay_check(s, "a\0", 2, 60), ONCE_INVALID);
		ASSERT_ST(once_replay_check(s, "\0", 1, 60), ONCE_INVALID);
		ASSERT_ST(once_replay_check(s, "\0\0", 2, 60), ONCE_INVALID);
		ASSERT_EQ_U64(test_entries(s, "replays"), 0);
		ASSERT_ST(once_replay_check(s, "a", 1, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "a", 1, 60), ONCE_SPENT);
		ASSERT_ST(once_replay_check(s, "a\0b", 3, 60), ONCE_INVALID);
		ASSERT_EQ_U64(test_entries(s, "replays"), 1);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Every single-byte key 0x00..0xff and 2-byte keys {i, 255-i}. */
static void test_binary_keys(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	if (test_on_postgres()) {
		/* PostgreSQL: keys are UTF-8 text.  Of the single bytes only
		 * 0x01..0x7f are (NUL and lone bytes >= 0x80 are INVALID); no
		 * {i, 255-i} is (one byte >= 0x80 that starts no valid
		 * sequence with the other).  Every two-byte sequence that is
		 * UTF-8 (U+0080..U+07FF) is a key of its own. */
		for (int i = 0; i < 256; i++) {
			unsigned char one = (unsigned char)i, two[2] = {(unsigned char)i, (unsigned char)(255 - i)};
			ASSERT_ST(once_replay_check(s, &one, 1, 60), i >= 1 && i <= 0x7f ? ONCE_OK : ONCE_INVALID);
			ASSERT_ST(once_replay_check(s, two, 2, 60), ONCE_INVALID);
		}
		for (unsigned cp = 0x80; cp < 0x800; cp++) {
			unsigned char u[2] = {(unsigned char)(0xC0 | (cp >> 6)), (unsigned char)(0x80 | (cp & 0x3F))};
			ASSERT_ST(once_replay_check(s, u, 2, 60), ONCE_OK);
		}
		for (int i = 1; i <= 0x7f; i++) {
			unsigned char one = (unsigned char)i;
			ASSERT_ST(once_replay_check(s, &one, 1, 60), ONCE_SPENT);
		}
		for (unsigned cp = 0x80; cp < 0x800; cp++) {
			unsigned char u[2] = {(unsigned char)(0xC0 | (cp >> 6)), (unsigned char)(0x80 | (cp & 0x3F))};
			ASSERT_ST(once_replay_check(s, u, 2, 60), ONCE_SPENT);
		}
		ASSERT_EQ_U64(test_entries(s, "replays"), 0x7f + (0x800 - 0x80));
		ASSERT_ST(once_close(s), ONCE_OK);
		return;
	}
	for (int i = 0; i < 256; i++) {
		unsigned char one = (unsigned char)i, two[2] = {(unsigned char)i, (unsigned char)(255 - i)};
		ASSERT_ST(once_replay_check(s, &one, 1, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, two, 2, 60), ONCE_OK);
	}
	for (int i = 0; i < 256; i++) {
		unsigned char one = (unsigned char)i, two[2] = {(unsigned char)i, (unsigned char)(255 - i)};
		ASSERT_ST(once_replay_check(s, &one, 1, 60), ONCE_SPENT);
		ASSERT_ST(once_replay_check(s, two, 2, 60), ONCE_SPENT);
	}
	ASSERT_EQ_U64(test_entries(s, "replays"), 512);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_keys_differing_in_last_byte(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	unsigned char k[200];
	memset(k, 0x5a, sizeof k);
	/* PostgreSQL: the key is UTF-8 text, so a last byte of 0 or >= 0x80
	 * makes it INVALID (nothing stored); the 127 others are all keys. */
	const bool pg = test_on_postgres();
	for (int i = 0; i < 256; i++) {
		k[sizeof k - 1] = (unsigned char)i;
		ASSERT_ST(once_replay_check(s, k, sizeof k, 60),
		          !pg || (i >= 1 && i <= 0x7f) ? ONCE_OK : ONCE_INVALID);
	}
	k[sizeof k - 1] = 7;
	ASSERT_ST(once_replay_check(s, k, sizeof k, 60), ONCE_SPENT);
	k[sizeof k - 1] = 0x7f;
	ASSERT_ST(once_replay_check(s, k, sizeof k, 60), ONCE_SPENT);
	ASSERT_EQ_U64(test_entries(s, "replays"), pg ? 0x7f : 256);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Keys up to max_key_len (default 512 bytes) on the embedded engine.
 * PostgreSQL: dpop_replays.jti is varchar(255), counted in characters: 255
 * two-byte characters (510 bytes) fit, a 256th character is INVALID. */
static void test_long_keys(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	char ascii[512], wide[512];
	memset(ascii, 'r', sizeof ascii);
	for (size_t i = 0; i < sizeof wide; i += 2) {
		wide[i] = (char)0xC3; /* U+00E9 */
		wide[i + 1] = (char)0xA9;
	}
	ASSERT_ST(once_replay_check(s, ascii, 255, 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, wide, 510, 60), ONCE_OK);
	if (!test_on_postgres()) {
		ASSERT_ST(once_replay_check(s, ascii, 256, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, ascii, 512, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, wide, 512, 60), ONCE_OK);
		ASSERT_EQ_U64(test_entries(s, "replays"), 5);
	} else {
		ASSERT_ST(once_replay_check(s, ascii, 256, 60), ONCE_INVALID);
		ASSERT_ST(once_replay_check(s, ascii, 512, 60), ONCE_INVALID);
		ASSERT_ST(once_replay_check(s, wide, 512, 60), ONCE_INVALID);
		ASSERT_EQ_U64(test_entries(s, "replays"), 2);
	}
	ASSERT_ST(once_replay_check(s, ascii, 513, 60), ONCE_INVALID); /* over max_key_len */
	ASSERT_ST(once_replay_check(s, ascii, 255, 60), ONCE_SPENT);
	ASSERT_ST(once_replay_check(s, wide, 510, 60), ONCE_SPENT);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Exactly max_replays entries fit (over several shards); the next is FULL. */
static void test_full_at_exact_capacity(void)
{
	enum { CAP = 37 };
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, CAP, 0);
	char k[32];
	for (int i = 0; i < CAP; i++) {
		int n = snprintf(k, sizeof k, "jti-%d", i);
		ASSERT_ST(once_replay_check(s, k, (size_t)n, 60), ONCE_OK);
	}
	ASSERT_EQ_U64(test_entries(s, "replays"), CAP);
	if (!test_on_postgres()) {
		for (int i = CAP; i < CAP + 10; i++) {
			int n = snprintf(k, sizeof k, "jti-%d", i);
			ASSERT_ST(once_replay_check(s, k, (size_t)n, 60), ONCE_FULL);
		}
		ASSERT_EQ_U64(test_entries(s, "replays"), CAP);
	} else {
		/* PostgreSQL has no capacity (max_replays is ignored, never
		 * FULL): the checks past it record their jti like any other. */
		for (int i = CAP; i < CAP + 10; i++) {
			int n = snprintf(k, sizeof k, "jti-%d", i);
			ASSERT_ST(once_replay_check(s, k, (size_t)n, 60), ONCE_OK);
		}
		ASSERT_EQ_U64(test_entries(s, "replays"), CAP + 10);
		for (int i = CAP; i < CAP + 10; i++) {
			int n = snprintf(k, sizeof k, "jti-%d", i);
			ASSERT_ST(once_replay_check(s, k, (size_t)n, 60), ONCE_SPENT);
		}
	}
	/* Nothing was evicted: every recorded jti is still a replay. */
	for (int i = 0; i < CAP; i++) {
		int n = snprintf(k, sizeof k, "jti-%d", i);
		ASSERT_ST(once_replay_check(s, k, (size_t)n, 60), ONCE_SPENT);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* In a full cache a replay is still reported as SPENT, never FULL. */
static void test_replay_in_full_cache_is_spent(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 2, 0);
	ASSERT_ST(once_replay_check(s, "a", 1, 60), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "b", 1, 60), ONCE_OK);
	if (!test_on_postgres()) {
		ASSERT_ST(once_replay_check(s, "c", 1, 60), ONCE_FULL);
		ASSERT_ST(once_replay_check(s, "a", 1, 60), ONCE_SPENT);
		ASSERT_ST(once_replay_check(s, "b", 1, 60), ONCE_SPENT);
		ASSERT_ST(once_replay_check(s, "c", 1, 60), ONCE_FULL); /* FULL recorded nothing */
		ASSERT_EQ_U64(test_entries(s, "replays"), 2);
	} else {
		/* PostgreSQL: never FULL; past max_replays a new jti is recorded
		 * (OK) and a replay is SPENT. */
		ASSERT_ST(once_replay_check(s, "c", 1, 60), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "a", 1, 60), ONCE_SPENT);
		ASSERT_ST(once_replay_check(s, "b", 1, 60), ONCE_SPENT);
		ASSERT_ST(once_replay_check(s, "c", 1, 60), ONCE_SPENT);
		ASSERT_EQ_U64(test_entries(s, "replays"), 3);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* A ttl above ONCE_TTL_MAX: INVALID, nothing stored; ONCE_TTL_MAX is
 * accepted and now + ttl saturates at ONCE_TIME_MAX (tests/test_times.c). */
static void test_ttl_overflow_invalid(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_at(&clk, 0, 0);
	ASSERT_ST(once_replay_check(s, "big", 3, INT64_MAX), ONCE_INVALID);
	ASSERT_ST(once_replay_check(s, "big", 3, ONCE_TTL_MAX + 1), ONCE_INVALID);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	ASSERT_ST(once_replay_check(s, "big", 3, ONCE_TTL_MAX), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "big", 3, 60), ONCE_SPENT);
	/* And a sweep far in the future keeps it (expires_at == ONCE_TIME_MAX). */
	atomic_store(&clk.now, INT64_MAX / 2);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.replays, 0);
	ASSERT_EQ_U64(test_entries(s, "replays"), 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

TESTS(TEST(test_first_ok_then_spent), TEST(test_invalid_ttl_stores_nothing),
      TEST(test_invalid_key_stores_nothing), TEST(test_null_store_invalid),
      TEST(test_max_key_len_exact), TEST(test_expired_unswept_still_spent),
      TEST(test_ok_again_after_sweep), TEST(test_embedded_nul_keys), TEST(test_binary_keys),
      TEST(test_keys_differing_in_last_byte), TEST(test_long_keys),
      TEST(test_full_at_exact_capacity),
      TEST(test_replay_in_full_cache_is_spent), TEST(test_ttl_overflow_invalid));
TEST_MAIN()
