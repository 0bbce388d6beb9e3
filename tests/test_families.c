/*
 * tests/test_families.c - family lifetimes, marks and capacity, for refresh
 * and access-token families (core/family.c):
 *   - a revocation never reports OK without storing its mark (FULL instead);
 *   - a failed insert (EXISTS) creates no family and uses no family room;
 *   - a family id that is swept and created again is a new family
 *     (incarnation): tokens of the old one never read as live through it;
 *   - nonce accept honours the expires_at the nonce was issued with.
 * One test reaches into core/internal.h to age a family entry; it says so.
 */
#include "harness.h"
#include "../core/internal.h"

static once_store *open_small(struct test_clock *clk, uint64_t max_refresh)
{
	once_options o = test_options(clk);
	o.max_refresh = max_refresh;
	o.max_access_tokens = max_refresh;
	o.revocation_ttl = 1000;
	return test_open(&o);
}

static once_refresh token(const char *family, int64_t exp)
{
	return (once_refresh){.family_id = family, .subject = "user-1", .expires_at = exp};
}

static void test_revoke_without_room_is_full_not_ok(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_small(&clk, 1); /* room for 2 families */
	char h[44];
	test_key(h, "t", 1);
	once_refresh r = token("fam-a", 5000);
	ASSERT_ST(once_refresh_insert(s, h, 43, &r), ONCE_OK);     /* family 1 */
	ASSERT_ST(once_refresh_revoke_family(s, "fam-x", 5), ONCE_OK); /* mark: family 2 */
	/* No room for a third family's mark: the caller must hear it. */
	ASSERT_ST(once_refresh_revoke_family(s, "fam-y", 5), ONCE_FULL);
	/* Known families are revoked without needing room. */
	ASSERT_ST(once_refresh_revoke_family(s, "fam-a", 5), ONCE_OK);
	ASSERT_ST(once_refresh_get(s, h, 43, NULL), ONCE_NOT_FOUND);
	/* Same for access-token families. */
	ASSERT_ST(once_code_record_access_token(s, "afam-a", 6, "jti-1", 5, 5000), ONCE_OK);
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "afam-x", 6), ONCE_OK);
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "afam-y", 6), ONCE_FULL);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.ops[ONCE_OP_REFRESH_REVOKE][ONCE_FULL], 1);
	ASSERT_EQ_U64(st.ops[ONCE_OP_ACCESS_REVOKE][ONCE_FULL], 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_failed_insert_creates_no_family(void)
{
	struct test_clock clk = {1000};
	once_store *s = open_small(&clk, 1); /* room for 2 families */
	char h[44];
	test_key(h, "t", 1);
	once_refresh r = token("fam-a", 5000);
	ASSERT_ST(once_refresh_insert(s, h, 43, &r), ONCE_OK);
	/* Re-inserting the same hash into five other families: EXISTS each
	 * time, and none of those families may take room. */
	const char *others[] = {"fam-1", "fam-2", "fam-3", "fam-4", "fam-5"};
	for (int i = 0; i < 5; i++) {
		once_refresh dup = token(others[i], 5000);
		ASSERT_ST(once_refresh_insert(s, h, 43, &dup), ONCE_EXISTS);
	}
	/* So the second family slot is still free for a revocation mark. */
	ASSERT_ST(once_refresh_revoke_family(s, "fam-x", 5), ONCE_OK);
	/* Access tokens: a duplicate jti creates no family either. */
	ASSERT_ST(once_code_record_access_token(s, "afam-a", 6, "jti-1", 5, 5000), ONCE_OK);
	for (int i = 0; i < 5; i++)
		ASSERT_ST(once_code_record_access_token(s, others[i], 5, "jti-1", 5, 5000), ONCE_EXISTS);
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "afam-x", 6), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* White box: age the family entry of `family` so the next sweep removes it
 * while its tokens (which expire later) stay. */
static void age_family(once_store *s, enum once__table t, const char *family, int64_t exp)
{
	struct once__key k;
	ASSERT_ST(once__key_make(s, t, family, strlen(family), &k), ONCE_OK);
	urcu_bp_read_lock();
	struct once__entry *f = once__table_lookup(s, &k);
	ASSERT(f != NULL);
	atomic_store(&f->expires_at, exp);
	once__read_unlock();
}

/*
 * Tokens expire at 100000, far ahead; their family entry is aged so that a
 * sweep visiting its wheel slot (second 100000 % 4096 = 1696, due at 1696
 * and again every 4096 s) removes it while the tokens stay.
 */
static void test_recreated_family_does_not_revive_old_tokens(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.revocation_ttl = 0;
	once_store *s = test_open(&o);
	char old_tok[44], new_tok[44];
	test_key(old_tok, "old", 1);
	test_key(new_tok, "new", 1);
	once_refresh r = token("fam-a", 100000);
	ASSERT_ST(once_refresh_insert(s, old_tok, 43, &r), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(s, "fam-a", 5), ONCE_OK);
	ASSERT_ST(once_refresh_get(s, old_tok, 43, NULL), ONCE_NOT_FOUND);

	/* The family's revoked mark goes (as if swept early); the token stays. */
	age_family(s, ONCE_TBL_REFRESH_FAMILY, "fam-a", 1100);
	atomic_store(&clk.now, 1800);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.refresh, 0);
	ASSERT_EQ_U64(test_entries(s, "refresh"), 1);
	/* The id is used again: a new family, not the revoked one. */
	ASSERT_ST(once_refresh_insert(s, new_tok, 43, &r), ONCE_OK);
	ASSERT_ST(once_refresh_get(s, new_tok, 43, NULL), ONCE_OK);
	/* The old token belonged to the revoked incarnation: still not live. */
	ASSERT_ST(once_refresh_get(s, old_tok, 43, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_consume(s, old_tok, 43, NULL), ONCE_NOT_FOUND);
	/* Nor can it be rotated into the new family. */
	char child[44];
	test_key(child, "child", 1);
	ASSERT_ST(once_refresh_rotate(s, old_tok, 43, child, 43, &r, NULL, 0, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_get(s, child, 43, NULL), ONCE_NOT_FOUND);

	/* Access tokens likewise (next visit of slot 1696: second 5792). */
	ASSERT_ST(once_code_record_access_token(s, "afam", 4, "jti-old", 7, 100000), ONCE_OK);
	ASSERT_ST(once_code_revoke_family_access_tokens(s, "afam", 4), ONCE_OK);
	ASSERT(once_access_token_revoked(s, "jti-old", 7));
	age_family(s, ONCE_TBL_ACCESS_FAMILY, "afam", 1850);
	atomic_store(&clk.now, 5800);
	ASSERT_ST(once_sweep(s, NULL), ONCE_OK);
	ASSERT_ST(once_code_record_access_token(s, "afam", 4, "jti-new", 7, 100000), ONCE_OK);
	ASSERT(!once_access_token_revoked(s, "jti-new", 7));
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_nonce_accept_honours_issue_expiry(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once_nonce_issue(s, 10, n), ONCE_OK); /* expires_at 1010 */
	atomic_store(&clk.now, 1010);
	ASSERT_ST(once_nonce_accept(s, n, 43, 300), ONCE_OK); /* 1010 is not < 1010 */
	ASSERT_ST(once_nonce_issue(s, 10, n), ONCE_OK);       /* expires_at 1020 */
	atomic_store(&clk.now, 1021);
	/* Inside the caller's 300 s window, but past its own expiry: the
	 * same answer before and after a sweep would remove it. */
	ASSERT_ST(once_nonce_accept(s, n, 43, 300), ONCE_EXPIRED);
	ASSERT(!once_nonce_valid(s, n, 43));
	ASSERT_ST(once_sweep(s, NULL), ONCE_OK);
	ASSERT_ST(once_nonce_accept(s, n, 43, 300), ONCE_NOT_FOUND);
	ASSERT_ST(once_close(s), ONCE_OK);
}

TESTS(TEST(test_revoke_without_room_is_full_not_ok), TEST(test_failed_insert_creates_no_family),
      TEST(test_recreated_family_does_not_revive_old_tokens),
      TEST(test_nonce_accept_honours_issue_expiry));
TEST_MAIN()
