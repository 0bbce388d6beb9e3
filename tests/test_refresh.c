/*
 * tests/test_refresh.c - refresh-token families, single-threaded outcomes
 * (SPEC.md section 2, "Refresh tokens"; oncestore.h; core/refresh.c R1-R3).
 *
 * Covers: once_refresh_insert (OK, EXISTS with the original untouched,
 * REVOKED with nothing stored, every INVALID case with nothing stored, FULL
 * with nothing evicted, key and family-id length limits), a round trip of
 * every field with scope deduplication, get, consume (OK as it stood, then
 * SPENT with family and successor), remember_successor (OK, replace,
 * NOT_FOUND, NO_KEY, INVALID), sticky family revocation (known and unknown
 * families, revocation_ttl, a long-lived token keeping the mark across
 * sweeps), expiry by once_sweep, atomic rotation (every outcome, and on any
 * status but OK nothing changed), the op counters, and the successor at rest:
 * sealed (no plaintext anywhere in the entry), bound to its key, tampering
 * and a different key read as absent.
 *
 * The at-rest tests include core/internal.h to reach the stored entry.  The
 * library's internal functions are hidden in the shared library, so they
 * find the entry by walking the shards' expiry wheels (every published
 * entry is on exactly one wheel stack, W1 in core/expiry.c); they run single
 * threaded with no sweep, so nothing moves meanwhile.
 */
#include "harness.h"

#include "../core/internal.h"

#define KEY_LEN ONCE_SECRET_LEN
#define NOW 1000

static const unsigned char SUCC_KEY[ONCE_SUCCESSOR_KEY_LEN] = {
	0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87, 0x98, 0xa9, 0xba,
	0xcb, 0xdc, 0xed, 0xfe, 0x0f, 0x01, 0x12, 0x23, 0x34, 0x45, 0x56,
	0x67, 0x78, 0x89, 0x9a, 0xab, 0xbc, 0xcd, 0xde, 0xef, 0xf0,
};

struct fixture {
	struct test_clock clk;
	once_options o;
	once_store *s;
	char h[KEY_LEN + 1];  /* a parent / first token */
	char h2[KEY_LEN + 1]; /* a child / second token */
	char h3[KEY_LEN + 1];
};

/* Options on a clock at NOW with a successor key; the caller may change
 * f->o before fx_open. */
static void fx_opts(struct fixture *f)
{
	atomic_init(&f->clk.now, NOW);
	f->o = test_options(&f->clk);
	f->o.successor_key = SUCC_KEY;
	test_key(f->h, "rt", 1);
	test_key(f->h2, "rt", 2);
	test_key(f->h3, "rt", 3);
}

static void fx_open(struct fixture *f)
{
	f->s = test_open(&f->o);
}

static void fx_init(struct fixture *f)
{
	fx_opts(f);
	fx_open(f);
}

static void fx_close(struct fixture *f)
{
	ASSERT_ST(once_close(f->s), ONCE_OK);
	ASSERT_NO_LEAKS();
}

static void set_now(struct fixture *f, int64_t t)
{
	atomic_store(&f->clk.now, t);
}

/* A minimal valid token of family `fam` expiring at exp. */
static once_refresh rec(const char *fam, int64_t exp)
{
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = fam;
	r.subject = "user-1";
	r.expires_at = exp;
	return r;
}

static uint64_t refresh_entries(once_store *s)
{
	return test_entries(s, "refresh");
}

static uint64_t op_count(once_store *s, once_op op, once_status st)
{
	struct once_stats x;
	once_stats(s, &x);
	return x.ops[op][st];
}

static void assert_bytes(const void *got, size_t got_len, const void *want, size_t want_len)
{
	ASSERT(got != NULL);
	ASSERT_EQ_U64(got_len, want_len);
	ASSERT(memcmp(got, want, want_len) == 0);
}

/* The token under h reads as live and unconsumed. */
static void expect_unconsumed(once_store *s, const char *h)
{
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(s, h, KEY_LEN, &g), ONCE_OK);
	ASSERT(!g->consumed);
	ASSERT_EQ_INT(g->consumed_at, 0);
	ASSERT(g->successor == NULL);
	ASSERT_EQ_U64(g->successor_len, 0);
	once_free(g);
}

/* insert must answer INVALID and store nothing. */
static void expect_insert_invalid(struct fixture *f, const void *h, size_t hlen, const once_refresh *r)
{
	uint64_t before = refresh_entries(f->s);
	ASSERT_ST(once_refresh_insert(f->s, h, hlen, r), ONCE_INVALID);
	ASSERT_EQ_U64(refresh_entries(f->s), before);
	if (h != NULL && hlen == KEY_LEN) {
		ASSERT_ST(once_refresh_get(f->s, h, KEY_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_ST(once_refresh_consume(f->s, h, KEY_LEN, NULL), ONCE_NOT_FOUND);
	}
}

/* ---- insert, get ---- */

static void test_insert_get_roundtrip_every_field(void)
{
	struct fixture f;
	fx_init(&f);
	const char *scope[] = {"openid", "profile", "openid", "email", "profile", "offline_access"};
	const char *resource[] = {"https://api.example/", "https://api.example/", "urn:r2"};
	const unsigned char claims[] = {0x00, 0x01, 0xff, 0x00, 'c', 0x7f};
	once_refresh r = rec("fam-all", 5000);
	r.subject = "user-42";
	r.generation = 7;
	r.client_id = "client-9";
	r.scope = scope;
	r.scope_count = 6;
	r.resource = resource;
	r.resource_count = 3;
	r.acr = "urn:mace:incommon:iap:silver";
	r.auth_time = 987;
	r.dpop_jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
	r.x5t_s256 = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2";
	r.claims = claims;
	r.claims_len = sizeof claims;
	r.parent_hash = "parent-hash-value";
	set_now(&f, 1234);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_EQ_U64(refresh_entries(f.s), 1);
	set_now(&f, 1300);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT(g != NULL);
	ASSERT_STR(g->family_id, "fam-all");
	ASSERT_STR(g->subject, "user-42");
	ASSERT_EQ_INT(g->expires_at, 5000);
	ASSERT_EQ_INT(g->generation, 7);
	ASSERT_STR(g->client_id, "client-9");
	ASSERT_EQ_U64(g->scope_count, 4);
	ASSERT_STR(g->scope[0], "openid");
	ASSERT_STR(g->scope[1], "profile");
	ASSERT_STR(g->scope[2], "email");
	ASSERT_STR(g->scope[3], "offline_access");
	/* resource is not deduplicated: exactly as given */
	ASSERT_EQ_U64(g->resource_count, 3);
	ASSERT_STR(g->resource[0], "https://api.example/");
	ASSERT_STR(g->resource[1], "https://api.example/");
	ASSERT_STR(g->resource[2], "urn:r2");
	ASSERT_STR(g->acr, "urn:mace:incommon:iap:silver");
	ASSERT_EQ_INT(g->auth_time, 987);
	ASSERT_STR(g->dpop_jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
	ASSERT_STR(g->x5t_s256, "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2");
	assert_bytes(g->claims, g->claims_len, claims, sizeof claims);
	ASSERT_STR(g->parent_hash, "parent-hash-value");
	ASSERT(!g->consumed);
	ASSERT(!g->revoked);
	ASSERT_EQ_INT(g->consumed_at, 0);
	ASSERT_EQ_INT(g->inserted_at, 1234);
	ASSERT(g->successor == NULL);
	ASSERT_EQ_U64(g->successor_len, 0);
	/* The caller's copy is its own: the store's record is untouched by
	 * writes into it, and the caller's inputs were copied. */
	((char *)g->subject)[0] = 'X';
	once_free(g);
	scope[0] = "changed";
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT_STR(g->subject, "user-42");
	ASSERT_STR(g->scope[0], "openid");
	once_free(g);
	fx_close(&f);
}

static void test_insert_minimal_record_optional_fields_absent(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-min", 2000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT_STR(g->family_id, "fam-min");
	ASSERT_STR(g->subject, "user-1");
	ASSERT_STR(g->client_id, NULL);
	ASSERT_STR(g->acr, NULL);
	ASSERT_STR(g->dpop_jkt, NULL);
	ASSERT_STR(g->x5t_s256, NULL);
	ASSERT_STR(g->parent_hash, NULL);
	ASSERT_EQ_U64(g->scope_count, 0);
	ASSERT_EQ_U64(g->resource_count, 0);
	ASSERT_EQ_U64(g->claims_len, 0);
	ASSERT_EQ_INT(g->generation, 0);
	ASSERT_EQ_INT(g->inserted_at, NOW);
	once_free(g);
	/* A NULL out-pointer is allowed. */
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	fx_close(&f);
}

static void test_scope_dedupe_first_occurrences_in_order(void)
{
	struct fixture f;
	fx_init(&f);
	/* Equal strings at different addresses are duplicates too. */
	char x2[] = "x", a2[] = "a";
	const char *scope[] = {"x", "a", x2, "b", a2, "x", "", "b", ""};
	once_refresh r = rec("fam-s", 2000);
	r.scope = scope;
	r.scope_count = 9;
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT_EQ_U64(g->scope_count, 4);
	ASSERT_STR(g->scope[0], "x");
	ASSERT_STR(g->scope[1], "a");
	ASSERT_STR(g->scope[2], "b");
	ASSERT_STR(g->scope[3], "");
	once_free(g);

	/* A long hostile list: 3000 entries, 10 distinct values. */
	enum { N = 3000 };
	static char buf[N][8];
	static const char *big[N];
	for (int i = 0; i < N; i++) {
		snprintf(buf[i], sizeof buf[i], "s%d", (i * 7) % 10);
		big[i] = buf[i];
	}
	r.scope = big;
	r.scope_count = N;
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, &g), ONCE_OK);
	ASSERT_EQ_U64(g->scope_count, 10);
	for (int i = 0; i < 10; i++) {
		char want[8];
		snprintf(want, sizeof want, "s%d", (i * 7) % 10);
		ASSERT_STR(g->scope[i], want);
	}
	once_free(g);

	/* No duplicates: unchanged, order kept. */
	const char *plain[] = {"c", "b", "a"};
	r.scope = plain;
	r.scope_count = 3;
	ASSERT_ST(once_refresh_insert(f.s, f.h3, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, f.h3, KEY_LEN, &g), ONCE_OK);
	ASSERT_EQ_U64(g->scope_count, 3);
	ASSERT_STR(g->scope[0], "c");
	ASSERT_STR(g->scope[1], "b");
	ASSERT_STR(g->scope[2], "a");
	once_free(g);
	fx_close(&f);
}

static void test_insert_exists_keeps_original(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-1", 2000);
	r.client_id = "client-1";
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	once_refresh other = rec("fam-2", 9000);
	other.subject = "attacker";
	other.client_id = "client-2";
	set_now(&f, 1500);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &other), ONCE_EXISTS);
	ASSERT_EQ_U64(refresh_entries(f.s), 1);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT_STR(g->family_id, "fam-1");
	ASSERT_STR(g->subject, "user-1");
	ASSERT_STR(g->client_id, "client-1");
	ASSERT_EQ_INT(g->expires_at, 2000);
	ASSERT_EQ_INT(g->inserted_at, NOW);
	once_free(g);
	/* Consumed, then a re-insert: still EXISTS, still consumed (no upsert). */
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_EXISTS);
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_SPENT);
	/* Expired but not swept: still EXISTS. */
	set_now(&f, 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &other), ONCE_EXISTS);
	ASSERT_EQ_U64(refresh_entries(f.s), 1);
	fx_close(&f);
}

static void test_insert_invalid_arguments(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-1", 2000);
	ASSERT_ST(once_refresh_insert(NULL, f.h, KEY_LEN, &r), ONCE_INVALID);
	expect_insert_invalid(&f, NULL, KEY_LEN, &r);
	expect_insert_invalid(&f, f.h, 0, &r);
	expect_insert_invalid(&f, f.h, KEY_LEN, NULL);
	ASSERT_EQ_U64(refresh_entries(f.s), 0);
	fx_close(&f);
}

static void test_insert_invalid_missing_required(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-1", 2000);
	r.family_id = NULL;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r.family_id = "";
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.subject = NULL;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r.subject = "";
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 0);
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r.expires_at = -1;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r.expires_at = INT64_MIN;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	/* The valid record then goes in: nothing half-stored blocked it. */
	r = rec("fam-1", 2000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	fx_close(&f);
}

static void test_insert_invalid_claims_to_be_used(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-1", 2000);
	r.consumed = true;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.revoked = true;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.consumed_at = 900;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.successor = "plain-successor";
	r.successor_len = 15;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.successor = "plain-successor";
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.successor_len = 4;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	fx_close(&f);
}

static void test_insert_invalid_lists_and_claims(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-1", 2000);
	r.scope_count = 2; /* scope NULL */
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.resource_count = 1;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.claims_len = 3;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	const char *holes[] = {"openid", NULL};
	r = rec("fam-1", 2000);
	r.scope = holes;
	r.scope_count = 2;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.resource = holes;
	r.resource_count = 2;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	/* Non-NULL lists with count 0 are fine (and read back empty). */
	r = rec("fam-1", 2000);
	r.scope = holes;
	r.resource = holes;
	r.claims = "x";
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT_EQ_U64(g->scope_count, 0);
	ASSERT_EQ_U64(g->resource_count, 0);
	ASSERT_EQ_U64(g->claims_len, 0);
	once_free(g);
	fx_close(&f);
}

static void test_insert_invalid_record_too_large(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.max_record_len = 1024;
	fx_open(&f);
	static char big[2048];
	memset(big, 'a', sizeof big - 1);
	once_refresh r = rec("fam-1", 2000);
	r.claims = big;
	r.claims_len = sizeof big;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	r = rec("fam-1", 2000);
	r.client_id = big;
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	/* Just under the limit goes in. */
	r = rec("fam-1", 2000);
	r.claims = big;
	r.claims_len = 1024 - sizeof(once_refresh) - 64;
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	fx_close(&f);
}

static void test_key_length_limits(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.max_key_len = 64;
	fx_open(&f);
	char key[66];
	memset(key, 'k', sizeof key);
	once_refresh r = rec("fam-1", 2000);
	ASSERT_ST(once_refresh_insert(f.s, key, 65, &r), ONCE_INVALID);
	ASSERT_EQ_U64(refresh_entries(f.s), 0);
	ASSERT_ST(once_refresh_get(f.s, key, 65, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_consume(f.s, key, 65, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, key, 65, "x", 1), ONCE_INVALID);
	ASSERT_ST(once_refresh_get(f.s, key, 0, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_get(f.s, NULL, 10, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_consume(f.s, key, 0, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_consume(f.s, NULL, 10, NULL), ONCE_INVALID);
	/* Exactly max_key_len is a key. */
	ASSERT_ST(once_refresh_insert(f.s, key, 64, &r), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, key, 64, NULL), ONCE_OK);
	/* A prefix is another key. */
	ASSERT_ST(once_refresh_get(f.s, key, 63, NULL), ONCE_NOT_FOUND);
	/* Rotation with an over-long parent or child. */
	once_refresh c = rec("fam-1", 2000);
	char key2[64];
	memset(key2, 'z', sizeof key2);
	ASSERT_ST(once_refresh_rotate(f.s, key, 65, key2, 64, &c, NULL, 0, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_rotate(f.s, key, 64, key, 65, &c, NULL, 0, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_rotate(f.s, key, 64, key2, 0, &c, NULL, 0, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_rotate(f.s, NULL, 64, key2, 64, &c, NULL, 0, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_rotate(f.s, key, 64, NULL, 64, &c, NULL, 0, NULL), ONCE_INVALID);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, key, 64, &g), ONCE_OK);
	ASSERT(!g->consumed);
	once_free(g);
	ASSERT_ST(once_refresh_get(f.s, key2, 64, NULL), ONCE_NOT_FOUND);
	/* A 64-byte parent and child rotate. */
	ASSERT_ST(once_refresh_rotate(f.s, key, 64, key2, 64, &c, NULL, 0, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, key2, 64, NULL), ONCE_OK);
	ASSERT_EQ_U64(refresh_entries(f.s), 2);
	fx_close(&f);
}

static void test_family_id_length_limits(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.max_key_len = 64;
	fx_open(&f);
	char fam[66];
	memset(fam, 'f', 65);
	fam[65] = '\0'; /* 65 bytes: one over */
	once_refresh r = rec(fam, 2000);
	expect_insert_invalid(&f, f.h, KEY_LEN, &r);
	ASSERT_ST(once_refresh_revoke_family(f.s, fam, 65), ONCE_INVALID);
	ASSERT_ST(once_refresh_revoke_family(f.s, fam, 0), ONCE_INVALID);
	ASSERT_ST(once_refresh_revoke_family(f.s, NULL, 3), ONCE_INVALID);
	ASSERT_ST(once_refresh_revoke_family(NULL, "fam", 3), ONCE_INVALID);
	fam[64] = '\0'; /* exactly max_key_len */
	r = rec(fam, 2000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, fam, 64), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
	/* A rotation whose successor names an over-long family. */
	once_refresh p = rec("fam-p", 2000);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &p), ONCE_OK);
	memset(fam, 'f', 65);
	fam[65] = '\0';
	once_refresh c = rec(fam, 2000);
	ASSERT_ST(once_refresh_rotate(f.s, f.h2, KEY_LEN, f.h3, KEY_LEN, &c, NULL, 0, NULL), ONCE_INVALID);
	expect_unconsumed(f.s, f.h2);
	ASSERT_ST(once_refresh_get(f.s, f.h3, KEY_LEN, NULL), ONCE_NOT_FOUND);
	fx_close(&f);
}

static void test_get_unknown_not_found(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh *g = (once_refresh *)&f; /* must stay untouched */
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_NOT_FOUND);
	ASSERT(g == (once_refresh *)&f);
	ASSERT_ST(once_refresh_get(NULL, f.h, KEY_LEN, NULL), ONCE_INVALID);
	fx_close(&f);
}

/* ---- consume ---- */

static void test_consume_ok_then_spent(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-c", 5000);
	r.client_id = "client-c";
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	set_now(&f, 1234);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	/* As it stood: unconsumed. */
	ASSERT(g != NULL);
	ASSERT(!g->consumed);
	ASSERT_EQ_INT(g->consumed_at, 0);
	ASSERT_STR(g->family_id, "fam-c");
	ASSERT_STR(g->client_id, "client-c");
	ASSERT(g->successor == NULL);
	once_free(g);
	/* get: consumed now, still OK. */
	set_now(&f, 1300);
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT(g->consumed);
	ASSERT_EQ_INT(g->consumed_at, 1234);
	ASSERT(g->successor == NULL);
	once_free(g);
	/* Every later consume: SPENT with the record and its family. */
	for (int i = 0; i < 3; i++) {
		g = NULL;
		ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_SPENT);
		ASSERT(g != NULL);
		ASSERT(g->consumed);
		ASSERT(!g->revoked);
		ASSERT_EQ_INT(g->consumed_at, 1234);
		ASSERT_STR(g->family_id, "fam-c");
		ASSERT_STR(g->subject, "user-1");
		ASSERT(g->successor == NULL);
		ASSERT_EQ_U64(g->successor_len, 0);
		once_free(g);
	}
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_SPENT);
	ASSERT_EQ_U64(refresh_entries(f.s), 1);
	fx_close(&f);
}

static void test_consume_unknown_not_found(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_NOT_FOUND);
	ASSERT(g == NULL);
	ASSERT_ST(once_refresh_consume(NULL, f.h, KEY_LEN, NULL), ONCE_INVALID);
	/* Consume with a NULL out-pointer still decides. */
	once_refresh r = rec("fam-c", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	g = NULL;
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_SPENT);
	ASSERT(g != NULL && g->consumed);
	once_free(g);
	fx_close(&f);
}

static void test_consume_spent_returns_successor(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-s", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	const char succ[] = "new-refresh-token-plaintext\0with-nul";
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, succ, sizeof succ), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_SPENT);
	ASSERT_STR(g->family_id, "fam-s");
	ASSERT(g->consumed);
	assert_bytes(g->successor, g->successor_len, succ, sizeof succ);
	once_free(g);
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	assert_bytes(g->successor, g->successor_len, succ, sizeof succ);
	ASSERT_EQ_INT(g->consumed_at, NOW);
	once_free(g);
	fx_close(&f);
}

/* ---- remember_successor ---- */

static void test_remember_outcomes(void)
{
	struct fixture f;
	fx_init(&f);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "a", 1), ONCE_NOT_FOUND);
	once_refresh r = rec("fam-r", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	/* Unconsumed parent: refused, and it stays unconsumed. */
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "a", 1), ONCE_NOT_FOUND);
	expect_unconsumed(f.s, f.h);
	set_now(&f, 1111);
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	set_now(&f, 1222);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "first", 5), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	assert_bytes(g->successor, g->successor_len, "first", 5);
	ASSERT_EQ_INT(g->consumed_at, 1111); /* remembering keeps consumed_at */
	once_free(g);
	/* A later call replaces it. */
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "second-longer", 13), ONCE_OK);
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	assert_bytes(g->successor, g->successor_len, "second-longer", 13);
	ASSERT_EQ_INT(g->consumed_at, 1111);
	once_free(g);
	/* Invalid arguments. */
	ASSERT_ST(once_refresh_remember_successor(NULL, f.h, KEY_LEN, "a", 1), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, NULL, KEY_LEN, "a", 1), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, 0, "a", 1), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, NULL, 1), ONCE_INVALID);
	/* An empty successor is refused, not stored as zero bytes. */
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, NULL, 0), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "a", 0), ONCE_INVALID);
	void *huge = calloc(1, (size_t)f.o.max_record_len + 1);
	ASSERT(huge != NULL);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, huge, (size_t)f.o.max_record_len + 1),
	          ONCE_INVALID);
	/* max_record_len itself is accepted. */
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, huge, f.o.max_record_len), ONCE_OK);
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	assert_bytes(g->successor, g->successor_len, huge, f.o.max_record_len);
	once_free(g);
	free(huge);
	/* Revoked family: NOT_FOUND, nothing remembered. */
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-r", 5), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "third", 5), ONCE_NOT_FOUND);
	fx_close(&f);
}

static void test_remember_without_key_no_key(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.successor_key = NULL;
	fx_open(&f);
	/* Checked after the arguments: invalid ones are still INVALID. */
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, 0, "a", 1), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, NULL, 1), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "a", 1), ONCE_NO_KEY);
	once_refresh r = rec("fam-r", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "a", 1), ONCE_NO_KEY);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_SPENT);
	ASSERT(g->successor == NULL);
	once_free(g);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_SUCCESSOR, ONCE_NO_KEY), 2);
	fx_close(&f);
}

/* ---- revocation ---- */

static void test_revoke_family_hides_every_token(void)
{
	struct fixture f;
	fx_init(&f);
	enum { N = 200 };
	char h[N][KEY_LEN + 1];
	once_refresh r = rec("fam-big", 5000);
	once_refresh o = rec("fam-big2", 5000); /* a prefix-sharing neighbour */
	char oh[KEY_LEN + 1];
	test_key(oh, "other", 0);
	ASSERT_ST(once_refresh_insert(f.s, oh, KEY_LEN, &o), ONCE_OK);
	for (int i = 0; i < N; i++) {
		test_key(h[i], "big", (uint64_t)i);
		ASSERT_ST(once_refresh_insert(f.s, h[i], KEY_LEN, &r), ONCE_OK);
	}
	/* Some consumed, one with a successor. */
	for (int i = 0; i < N; i += 3)
		ASSERT_ST(once_refresh_consume(f.s, h[i], KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f.s, h[0], KEY_LEN, "s", 1), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-big", 7), ONCE_OK);
	for (int i = 0; i < N; i++) {
		once_refresh *g = NULL;
		ASSERT_ST(once_refresh_get(f.s, h[i], KEY_LEN, &g), ONCE_NOT_FOUND);
		ASSERT(g == NULL);
		/* Never SPENT, consumed or not: there is no family left to revoke. */
		ASSERT_ST(once_refresh_consume(f.s, h[i], KEY_LEN, &g), ONCE_NOT_FOUND);
		ASSERT(g == NULL);
		ASSERT_ST(once_refresh_remember_successor(f.s, h[i], KEY_LEN, "x", 1), ONCE_NOT_FOUND);
	}
	/* Still held (entries count until swept), and a re-insert of a revoked
	 * token's hash is REVOKED rather than an upsert. */
	ASSERT_EQ_U64(refresh_entries(f.s), N + 1);
	ASSERT_ST(once_refresh_insert(f.s, h[1], KEY_LEN, &r), ONCE_REVOKED);
	/* The neighbour family is untouched. */
	ASSERT_ST(once_refresh_get(f.s, oh, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, oh, KEY_LEN, NULL), ONCE_OK);
	/* Idempotent. */
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-big", 7), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-big", 7), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, h[2], KEY_LEN, NULL), ONCE_NOT_FOUND);
	fx_close(&f);
}

static void test_insert_into_revoked_family_revoked(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-x", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-x", 5), ONCE_OK);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &r), ONCE_REVOKED);
	ASSERT_EQ_U64(refresh_entries(f.s), 1);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	/* Another family is fine. */
	once_refresh o = rec("fam-y", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &o), ONCE_OK);
	fx_close(&f);
}

static void test_revoke_unknown_family_then_insert_revoked(void)
{
	struct fixture f;
	fx_init(&f);
	ASSERT_ST(once_refresh_revoke_family(f.s, "never-seen", 10), ONCE_OK);
	once_refresh r = rec("never-seen", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_REVOKED);
	ASSERT_EQ_U64(refresh_entries(f.s), 0);
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
	/* Family ids are bytes: a revocation of "never-seen" does not touch
	 * "never-see" (its prefix). */
	once_refresh p = rec("never-see", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &p), ONCE_OK);
	fx_close(&f);
}

static void test_revocation_ttl_mark_expires(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.revocation_ttl = 100;
	fx_open(&f);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-t", 5), ONCE_OK); /* mark until 1100 */
	/* Probes use tokens that expire before the mark, so they do not make
	 * it last longer. */
	once_refresh probe = rec("fam-t", NOW + 1);
	set_now(&f, NOW + 50);
	ASSERT_ST(once_sweep(f.s, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &probe), ONCE_REVOKED);
	set_now(&f, NOW + 100); /* strict: expiring at `now` is kept */
	ASSERT_ST(once_sweep(f.s, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &probe), ONCE_REVOKED);
	set_now(&f, NOW + 101);
	ASSERT_ST(once_sweep(f.s, NULL), ONCE_OK);
	once_refresh r = rec("fam-t", 9000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	fx_close(&f);
}

static void test_revocation_ttl_zero_unknown_family(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.revocation_ttl = 0;
	fx_open(&f);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-0", 5), ONCE_OK); /* mark until NOW */
	once_refresh probe = rec("fam-0", 1);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &probe), ONCE_REVOKED);
	set_now(&f, NOW + 1);
	ASSERT_ST(once_sweep(f.s, NULL), ONCE_OK);
	once_refresh r = rec("fam-0", 9000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	fx_close(&f);
}

static void test_revoked_mark_outlives_ttl_with_long_lived_token(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.revocation_ttl = 100;
	fx_open(&f);
	const int64_t token_exp = NOW + 9000; /* more than one wheel turn away */
	once_refresh r = rec("fam-l", token_exp);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	once_refresh shorter = rec("fam-l", NOW + 50);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &shorter), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-l", 5), ONCE_OK);
	once_refresh probe = rec("fam-l", NOW + 1);
	int64_t steps[] = {NOW + 51, NOW + 101, NOW + 2000, NOW + 4200, NOW + 8999, token_exp};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		set_now(&f, steps[i]);
		once_sweep_counts c;
		ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
		ASSERT_EQ_U64(c.refresh, i == 0 ? 1 : 0); /* only the shorter token */
		ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_ST(once_refresh_insert(f.s, f.h3, KEY_LEN, &probe), ONCE_REVOKED);
	}
	ASSERT_EQ_U64(refresh_entries(f.s), 1);
	set_now(&f, token_exp + 1);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.refresh, 1);
	ASSERT_EQ_U64(refresh_entries(f.s), 0);
	/* Every token it covered has expired: the family may start afresh. */
	once_refresh fresh = rec("fam-l", token_exp + 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &fresh), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	fx_close(&f);
}

/* ---- expiry ---- */

static void test_expired_tokens_swept_and_counted(void)
{
	struct fixture f;
	fx_init(&f);
	char h[8][KEY_LEN + 1];
	for (int i = 0; i < 8; i++) {
		test_key(h[i], "exp", (uint64_t)i);
		char fam[16];
		snprintf(fam, sizeof fam, "fam-%d", i % 3);
		once_refresh r = rec(fam, i < 5 ? NOW + 100 : NOW + 200);
		ASSERT_ST(once_refresh_insert(f.s, h[i], KEY_LEN, &r), ONCE_OK);
	}
	ASSERT_ST(once_refresh_consume(f.s, h[0], KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f.s, h[0], KEY_LEN, "succ", 4), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, h[6], KEY_LEN, NULL), ONCE_OK);
	once_sweep_counts c;
	set_now(&f, NOW + 100);
	ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.refresh, 0);
	/* Expired, not swept: get still answers (the caller checks expiry). */
	ASSERT_ST(once_refresh_get(f.s, h[1], KEY_LEN, NULL), ONCE_OK);
	set_now(&f, NOW + 101);
	ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.refresh, 5);
	ASSERT_EQ_U64(c.codes + c.nonces + c.replays + c.access_tokens, 0);
	struct once_stats st;
	once_stats(f.s, &st);
	ASSERT_EQ_U64(st.refresh.entries, 3);
	ASSERT_EQ_U64(st.refresh.swept, 5);
	for (int i = 0; i < 5; i++) {
		ASSERT_ST(once_refresh_get(f.s, h[i], KEY_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_ST(once_refresh_consume(f.s, h[i], KEY_LEN, NULL), ONCE_NOT_FOUND);
	}
	for (int i = 5; i < 8; i++)
		ASSERT_ST(once_refresh_get(f.s, h[i], KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, h[6], KEY_LEN, NULL), ONCE_SPENT);
	set_now(&f, NOW + 201);
	ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.refresh, 3);
	once_stats(f.s, &st);
	ASSERT_EQ_U64(st.refresh.entries, 0);
	ASSERT_EQ_U64(st.refresh.swept, 8);
	ASSERT_EQ_U64(st.refresh.bytes, 0);
	/* A swept hash is unknown: it may be inserted again. */
	once_refresh r = rec("fam-0", NOW + 5000);
	ASSERT_ST(once_refresh_insert(f.s, h[0], KEY_LEN, &r), ONCE_OK);
	expect_unconsumed(f.s, h[0]);
	fx_close(&f);
}

/* ---- capacity ---- */

static void test_full_at_max_refresh(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.max_refresh = 8;
	fx_open(&f);
	char h[10][KEY_LEN + 1];
	for (int i = 0; i < 10; i++)
		test_key(h[i], "full", (uint64_t)i);
	for (int i = 0; i < 8; i++) {
		once_refresh r = rec("fam-one", i < 4 ? NOW + 10 : NOW + 1000);
		ASSERT_ST(once_refresh_insert(f.s, h[i], KEY_LEN, &r), ONCE_OK);
	}
	once_refresh r = rec("fam-one", NOW + 1000);
	ASSERT_ST(once_refresh_insert(f.s, h[8], KEY_LEN, &r), ONCE_FULL);
	once_refresh other = rec("fam-other", NOW + 1000);
	ASSERT_ST(once_refresh_insert(f.s, h[9], KEY_LEN, &other), ONCE_FULL);
	/* A duplicate at capacity is still EXISTS, the precise answer. */
	ASSERT_ST(once_refresh_insert(f.s, h[0], KEY_LEN, &r), ONCE_EXISTS);
	ASSERT_EQ_U64(refresh_entries(f.s), 8);
	ASSERT_ST(once_refresh_get(f.s, h[8], KEY_LEN, NULL), ONCE_NOT_FOUND);
	/* Nothing evicted. */
	for (int i = 0; i < 8; i++)
		ASSERT_ST(once_refresh_get(f.s, h[i], KEY_LEN, NULL), ONCE_OK);
	/* A rotation at capacity: FULL, and nothing changed. */
	ASSERT_ST(once_refresh_rotate(f.s, h[7], KEY_LEN, h[8], KEY_LEN, &r, "p", 1, NULL), ONCE_FULL);
	expect_unconsumed(f.s, h[7]);
	ASSERT_ST(once_refresh_get(f.s, h[8], KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(refresh_entries(f.s), 8);
	/* Sweeping expired tokens makes room. */
	set_now(&f, NOW + 11);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.refresh, 4);
	ASSERT_ST(once_refresh_insert(f.s, h[8], KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, h[7], KEY_LEN, h[9], KEY_LEN, &r, "p", 1, NULL), ONCE_OK);
	ASSERT_EQ_U64(refresh_entries(f.s), 6);
	struct once_stats st;
	once_stats(f.s, &st);
	ASSERT_EQ_U64(st.refresh.capacity, 8);
	fx_close(&f);
}

/* ---- rotation ---- */

/* The rotation of parent -> child changed nothing. */
static void expect_nothing_changed(struct fixture *f, const char *parent, const char *child,
                                   uint64_t entries)
{
	expect_unconsumed(f->s, parent);
	ASSERT_ST(once_refresh_get(f->s, child, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(refresh_entries(f->s), entries);
}

static void test_rotate_ok(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh p = rec("fam-rot", 5000);
	p.client_id = "client-r";
	p.generation = 1;
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &p), ONCE_OK);
	const char *scope[] = {"a", "b", "a"};
	once_refresh c = rec("fam-rot", 6000);
	c.generation = 2;
	c.client_id = "client-r";
	c.parent_hash = f.h;
	c.scope = scope;
	c.scope_count = 3;
	const char payload[] = "child-token-plaintext";
	set_now(&f, 1500);
	once_refresh *po = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &c, payload, sizeof payload, &po),
	          ONCE_OK);
	/* The parent as it stood. */
	ASSERT(po != NULL);
	ASSERT(!po->consumed);
	ASSERT_EQ_INT(po->consumed_at, 0);
	ASSERT(po->successor == NULL);
	ASSERT_EQ_INT(po->generation, 1);
	ASSERT_STR(po->family_id, "fam-rot");
	once_free(po);
	/* Parent: consumed, with the successor. */
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT(g->consumed);
	ASSERT_EQ_INT(g->consumed_at, 1500);
	assert_bytes(g->successor, g->successor_len, payload, sizeof payload);
	once_free(g);
	/* Child: live, unconsumed, every field. */
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, &g), ONCE_OK);
	ASSERT(!g->consumed);
	ASSERT_STR(g->family_id, "fam-rot");
	ASSERT_EQ_INT(g->generation, 2);
	ASSERT_EQ_INT(g->expires_at, 6000);
	ASSERT_EQ_INT(g->inserted_at, 1500);
	ASSERT_STR(g->parent_hash, f.h);
	ASSERT_EQ_U64(g->scope_count, 2);
	ASSERT_STR(g->scope[0], "a");
	ASSERT_STR(g->scope[1], "b");
	once_free(g);
	ASSERT_EQ_U64(refresh_entries(f.s), 2);
	/* The child can be rotated in turn. */
	once_refresh gc = rec("fam-rot", 7000);
	ASSERT_ST(once_refresh_rotate(f.s, f.h2, KEY_LEN, f.h3, KEY_LEN, &gc, "g3", 2, NULL), ONCE_OK);
	ASSERT_EQ_U64(refresh_entries(f.s), 3);
	/* Revoking the family hides the whole chain. */
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-rot", 7), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_get(f.s, f.h3, KEY_LEN, NULL), ONCE_NOT_FOUND);
	fx_close(&f);
}

static void test_rotate_without_payload(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.successor_key = NULL; /* no payload needs no key */
	fx_open(&f);
	once_refresh p = rec("fam-np", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &p), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, NULL, 0, NULL), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	ASSERT(g->consumed);
	ASSERT(g->successor == NULL);
	once_free(g);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_OK);
	g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h3, KEY_LEN, &p, NULL, 0, &g), ONCE_SPENT);
	ASSERT(g != NULL && g->consumed && g->successor == NULL);
	once_free(g);
	fx_close(&f);
}

static void test_rotate_spent_returns_winners_successor(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh p = rec("fam-sp", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &p), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, "winner", 6, NULL), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h3, KEY_LEN, &p, "loser", 5, &g), ONCE_SPENT);
	ASSERT(g != NULL);
	ASSERT(g->consumed);
	ASSERT_STR(g->family_id, "fam-sp");
	assert_bytes(g->successor, g->successor_len, "winner", 6);
	once_free(g);
	ASSERT_ST(once_refresh_get(f.s, f.h3, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(refresh_entries(f.s), 2);
	/* A consume after rotation is SPENT with the successor too. */
	g = NULL;
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_SPENT);
	assert_bytes(g->successor, g->successor_len, "winner", 6);
	once_free(g);
	/* A parent consumed by consume (no successor): rotate is SPENT and
	 * changes nothing (no child). */
	char h4[KEY_LEN + 1], h5[KEY_LEN + 1];
	test_key(h4, "rt", 4);
	test_key(h5, "rt", 5);
	ASSERT_ST(once_refresh_insert(f.s, h4, KEY_LEN, &p), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, h4, KEY_LEN, NULL), ONCE_OK);
	g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, h4, KEY_LEN, h5, KEY_LEN, &p, "late", 4, &g), ONCE_SPENT);
	ASSERT(g->consumed && g->successor == NULL);
	once_free(g);
	ASSERT_ST(once_refresh_get(f.s, h5, KEY_LEN, NULL), ONCE_NOT_FOUND);
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, h4, KEY_LEN, &g), ONCE_OK);
	ASSERT(g->successor == NULL); /* the loser's payload was not remembered */
	once_free(g);
	fx_close(&f);
}

static void test_rotate_not_found(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh c = rec("fam-nf", 5000);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &c, "p", 1, &g), ONCE_NOT_FOUND);
	ASSERT(g == NULL);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(refresh_entries(f.s), 0);
	/* Parent of a revoked family: NOT_FOUND, no child. */
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &c), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-nf", 6), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &c, "p", 1, &g), ONCE_NOT_FOUND);
	ASSERT(g == NULL);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(refresh_entries(f.s), 1);
	/* Swept parent: NOT_FOUND. */
	char h4[KEY_LEN + 1];
	test_key(h4, "rt", 4);
	once_refresh s = rec("fam-sw", NOW + 5);
	ASSERT_ST(once_refresh_insert(f.s, h4, KEY_LEN, &s), ONCE_OK);
	set_now(&f, NOW + 6);
	ASSERT_ST(once_sweep(f.s, NULL), ONCE_OK);
	s.expires_at = NOW + 500;
	ASSERT_ST(once_refresh_rotate(f.s, h4, KEY_LEN, f.h3, KEY_LEN, &s, NULL, 0, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_get(f.s, f.h3, KEY_LEN, NULL), ONCE_NOT_FOUND);
	fx_close(&f);
}

static void test_rotate_exists_changes_nothing(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh p = rec("fam-ex", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &p), ONCE_OK);
	once_refresh taken = rec("fam-elsewhere", 5000);
	taken.subject = "someone-else";
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &taken), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, "pay", 3, &g), ONCE_EXISTS);
	ASSERT(g == NULL);
	expect_unconsumed(f.s, f.h);
	ASSERT_EQ_U64(refresh_entries(f.s), 2);
	/* The token that held the child hash is untouched. */
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, &g), ONCE_OK);
	ASSERT_STR(g->family_id, "fam-elsewhere");
	ASSERT_STR(g->subject, "someone-else");
	ASSERT(!g->consumed);
	once_free(g);
	/* A child hash held by a token of the same family: EXISTS too. */
	ASSERT_ST(once_refresh_insert(f.s, f.h3, KEY_LEN, &p), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h3, KEY_LEN, &p, "pay", 3, NULL), ONCE_EXISTS);
	expect_unconsumed(f.s, f.h);
	expect_unconsumed(f.s, f.h3);
	/* The parent still rotates afterwards. */
	char h4[KEY_LEN + 1];
	test_key(h4, "rt", 4);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, h4, KEY_LEN, &p, "pay", 3, NULL), ONCE_OK);
	fx_close(&f);
}

static void test_rotate_invalid_changes_nothing(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh p = rec("fam-inv", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &p), ONCE_OK);
	uint64_t n = refresh_entries(f.s);
	once_refresh *g = NULL;

	/* A successor in another family. */
	once_refresh other = rec("fam-other", 5000);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &other, "p", 1, &g), ONCE_INVALID);
	ASSERT(g == NULL);
	expect_nothing_changed(&f, f.h, f.h2, n);
	/* child == parent */
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h, KEY_LEN, &p, "p", 1, &g), ONCE_INVALID);
	expect_unconsumed(f.s, f.h);
	/* Same bytes from another buffer are still the same key. */
	char copy[KEY_LEN + 1];
	memcpy(copy, f.h, sizeof copy);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, copy, KEY_LEN, &p, NULL, 0, &g), ONCE_INVALID);
	expect_unconsumed(f.s, f.h);
	ASSERT_EQ_U64(refresh_entries(f.s), n);

	/* The successor record as for insert. */
	once_refresh bad[12];
	int nb = 0;
	bad[nb] = p, bad[nb++].subject = NULL;
	bad[nb] = p, bad[nb++].subject = "";
	bad[nb] = p, bad[nb++].family_id = NULL;
	bad[nb] = p, bad[nb++].family_id = "";
	bad[nb] = p, bad[nb++].expires_at = 0;
	bad[nb] = p, bad[nb++].consumed = true;
	bad[nb] = p, bad[nb++].revoked = true;
	bad[nb] = p, bad[nb++].consumed_at = 1;
	bad[nb] = p, bad[nb].successor = "s", bad[nb++].successor_len = 1;
	bad[nb] = p, bad[nb++].scope_count = 1;
	bad[nb] = p, bad[nb++].resource_count = 1;
	bad[nb] = p, bad[nb++].claims_len = 1;
	for (int i = 0; i < nb; i++) {
		ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &bad[i], "p", 1, &g),
		          ONCE_INVALID);
		ASSERT(g == NULL);
		expect_nothing_changed(&f, f.h, f.h2, n);
	}
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, NULL, "p", 1, &g), ONCE_INVALID);
	expect_nothing_changed(&f, f.h, f.h2, n);
	/* A bad payload. */
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, NULL, 5, &g), ONCE_INVALID);
	expect_nothing_changed(&f, f.h, f.h2, n);
	size_t big = (size_t)f.o.max_record_len + 1;
	void *huge = calloc(1, big);
	ASSERT(huge != NULL);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, huge, big, &g), ONCE_INVALID);
	free(huge);
	expect_nothing_changed(&f, f.h, f.h2, n);
	ASSERT_ST(once_refresh_rotate(NULL, f.h, KEY_LEN, f.h2, KEY_LEN, &p, "p", 1, &g), ONCE_INVALID);
	expect_nothing_changed(&f, f.h, f.h2, n);
	/* And then the real rotation works. */
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, "p", 1, NULL), ONCE_OK);
	fx_close(&f);
}

static void test_rotate_no_key_changes_nothing(void)
{
	struct fixture f;
	fx_opts(&f);
	f.o.successor_key = NULL;
	fx_open(&f);
	once_refresh p = rec("fam-nk", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &p), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, "payload", 7, &g), ONCE_NO_KEY);
	ASSERT(g == NULL);
	expect_nothing_changed(&f, f.h, f.h2, 1);
	/* A payload pointer with n == 0 is still "a payload given". */
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, "payload", 0, &g), ONCE_NO_KEY);
	expect_nothing_changed(&f, f.h, f.h2, 1);
	/* Unknown parent with a payload: NO_KEY too (checked before the
	 * lookup); invalid arguments are still INVALID. */
	ASSERT_ST(once_refresh_rotate(f.s, f.h3, KEY_LEN, f.h2, KEY_LEN, &p, "x", 1, NULL), ONCE_NO_KEY);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h, KEY_LEN, &p, "x", 1, NULL), ONCE_INVALID);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_NO_KEY), 3);
	fx_close(&f);
}

static void test_rotate_revoked_family_child_not_created(void)
{
	struct fixture f;
	fx_init(&f);
	/* The family is revoked between the parent's insert and the rotation;
	 * whichever of NOT_FOUND / REVOKED it reports, no child exists and the
	 * family gains no live token. */
	once_refresh p = rec("fam-rv", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &p), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-rv", 6), ONCE_OK);
	once_status st = once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, "p", 1, NULL);
	ASSERT(st == ONCE_NOT_FOUND || st == ONCE_REVOKED);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(refresh_entries(f.s), 1);
	/* A child hash free again: inserting it into another family works, so
	 * the failed rotation left no pending entry behind. */
	once_refresh o = rec("fam-ok", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &o), ONCE_OK);
	fx_close(&f);
}

/* ---- stats ---- */

static void test_op_counters(void)
{
	struct fixture f;
	fx_init(&f);
	once_refresh r = rec("fam-st", 5000);
	once_refresh bad = rec("fam-st", 0);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_EXISTS);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &bad), ONCE_INVALID);
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_get(f.s, f.h2, 0, NULL), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "s", 1), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &r, "s", 1, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h3, KEY_LEN, &r, "s", 1, NULL), ONCE_SPENT);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "t", 1), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, f.h2, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, f.h2, KEY_LEN, NULL), ONCE_SPENT);
	ASSERT_ST(once_refresh_consume(f.s, f.h3, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-st", 6), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-st", 0), ONCE_INVALID);
	ASSERT_ST(once_refresh_insert(f.s, f.h3, KEY_LEN, &r), ONCE_REVOKED);
	ASSERT_ST(once_refresh_consume(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);

	struct once_stats st;
	once_stats(f.s, &st);
	uint64_t want[ONCE_OP_COUNT][ONCE_STATUS_COUNT];
	memset(want, 0, sizeof want);
	want[ONCE_OP_REFRESH_INSERT][ONCE_OK] = 1;
	want[ONCE_OP_REFRESH_INSERT][ONCE_EXISTS] = 1;
	want[ONCE_OP_REFRESH_INSERT][ONCE_INVALID] = 1;
	want[ONCE_OP_REFRESH_INSERT][ONCE_REVOKED] = 1;
	want[ONCE_OP_REFRESH_GET][ONCE_OK] = 1;
	want[ONCE_OP_REFRESH_GET][ONCE_NOT_FOUND] = 1;
	want[ONCE_OP_REFRESH_GET][ONCE_INVALID] = 1;
	want[ONCE_OP_REFRESH_SUCCESSOR][ONCE_NOT_FOUND] = 1;
	want[ONCE_OP_REFRESH_SUCCESSOR][ONCE_OK] = 1;
	want[ONCE_OP_REFRESH_ROTATE][ONCE_OK] = 1;
	want[ONCE_OP_REFRESH_ROTATE][ONCE_SPENT] = 1;
	want[ONCE_OP_REFRESH_CONSUME][ONCE_OK] = 1;
	want[ONCE_OP_REFRESH_CONSUME][ONCE_SPENT] = 1;
	want[ONCE_OP_REFRESH_CONSUME][ONCE_NOT_FOUND] = 2;
	want[ONCE_OP_REFRESH_REVOKE][ONCE_OK] = 1;
	want[ONCE_OP_REFRESH_REVOKE][ONCE_INVALID] = 1;
	for (int op = 0; op < ONCE_OP_COUNT; op++)
		for (int s = 0; s < ONCE_STATUS_COUNT; s++)
			if (st.ops[op][s] != want[op][s])
				FAIL_AT("ops[%s][%s] = %" PRIu64 ", expected %" PRIu64,
				        once_op_name((once_op)op), once_status_name((once_status)s),
				        st.ops[op][s], want[op][s]);
	ASSERT_EQ_U64(st.refresh.entries, 2);
	ASSERT(st.refresh.bytes > 0);
	fx_close(&f);
}

/* ---- the successor at rest (reaches into the store through internal.h) ---- */

/* The stored refresh entry under key, found on the expiry wheels. */
static struct once__entry *stored_entry(once_store *s, const void *key, size_t len)
{
	struct once__entry *found = NULL;
	for (uint32_t i = 0; i < s->nshards; i++) {
		struct once__wheel *w = &s->shards[i].wheel;
		for (unsigned j = 0; j <= ONCE_WHEEL_SLOTS; j++) {
			struct once__entry *e =
				atomic_load(j < ONCE_WHEEL_SLOTS ? &w->slot[j] : &w->overdue);
			for (; e != NULL; e = e->link.wheel_next) {
				if (e->table == ONCE_TBL_REFRESH && e->key_len == len &&
				    memcmp(e->key, key, len) == 0) {
					ASSERT(found == NULL); /* on exactly one stack */
					found = e;
				}
			}
		}
	}
	ASSERT(found != NULL);
	return found;
}

static bool contains(const void *hay, size_t n, const void *needle, size_t m)
{
	const unsigned char *h = hay;
	for (size_t i = 0; m <= n && i <= n - m; i++)
		if (memcmp(h + i, needle, m) == 0)
			return true;
	return false;
}

/* Any byte of the entry's own block or of its record's holds needle. */
static bool entry_contains(const struct once__entry *e, const void *needle, size_t m)
{
	return contains(e, sizeof *e + e->key_len + e->tail_len, needle, m) ||
	       contains(e->u.refresh.record, e->record_size, needle, m);
}

/* No byte the store keeps for this token holds the plaintext. */
static void expect_sealed(once_store *s, const char *h, const void *plain, size_t n)
{
	struct once__entry *e = stored_entry(s, h, KEY_LEN);
	struct once__consumption *c = atomic_load(&e->u.refresh.consumed);
	ASSERT(c != NULL);
	ASSERT(c->successor != NULL);
	ASSERT_EQ_U64(c->successor->len, n + 16); /* Poly1305 tag */
	ASSERT(!contains(c->successor->ct, c->successor->len, plain, n));
	ASSERT(!contains(c->successor, sizeof *c->successor + c->successor->len, plain, n));
	ASSERT(!contains(c, sizeof *c, plain, n));
	ASSERT(!entry_contains(e, plain, n));
	/* Nor any long piece of it. */
	ASSERT(!contains(c->successor->ct, c->successor->len, plain, 8));
}

static void test_successor_sealed_at_rest(void)
{
	struct fixture f;
	fx_init(&f);
	char secret[ONCE_SECRET_LEN + 1];
	ASSERT_ST(once_secret_generate(secret), ONCE_OK);
	once_refresh r = rec("fam-seal", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, secret, ONCE_SECRET_LEN), ONCE_OK);
	expect_sealed(f.s, f.h, secret, ONCE_SECRET_LEN);
	/* And through rotation. */
	char secret2[ONCE_SECRET_LEN + 1];
	ASSERT_ST(once_secret_generate(secret2), ONCE_OK);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h2, KEY_LEN, f.h3, KEY_LEN, &r, secret2, ONCE_SECRET_LEN, NULL),
	          ONCE_OK);
	expect_sealed(f.s, f.h2, secret2, ONCE_SECRET_LEN);
	/* The child entry does not hold its parent's successor either. */
	struct once__entry *child = stored_entry(f.s, f.h3, KEY_LEN);
	ASSERT(!entry_contains(child, secret2, ONCE_SECRET_LEN));
	/* The key itself is not kept in the clear next to the entries' data
	 * (it lives in the store struct only). */
	ASSERT(!entry_contains(stored_entry(f.s, f.h, KEY_LEN), SUCC_KEY, sizeof SUCC_KEY));
	/* ... and the API still opens both. */
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	assert_bytes(g->successor, g->successor_len, secret, ONCE_SECRET_LEN);
	once_free(g);
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, &g), ONCE_OK);
	assert_bytes(g->successor, g->successor_len, secret2, ONCE_SECRET_LEN);
	once_free(g);
	fx_close(&f);
}

/* Remembered "successor-one" on a consumed token h; returns its entry. */
static struct once__entry *remembered(struct fixture *f, const char *h)
{
	once_refresh r = rec("fam-k", 5000);
	ASSERT_ST(once_refresh_insert(f->s, h, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f->s, h, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f->s, h, KEY_LEN, "successor-one", 13), ONCE_OK);
	return stored_entry(f->s, h, KEY_LEN);
}

static void expect_successor(struct fixture *f, const char *h, bool present)
{
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f->s, h, KEY_LEN, &g), ONCE_OK);
	ASSERT(g->consumed);
	if (present) {
		assert_bytes(g->successor, g->successor_len, "successor-one", 13);
	} else {
		ASSERT(g->successor == NULL);
		ASSERT_EQ_U64(g->successor_len, 0);
	}
	once_free(g);
	g = NULL;
	ASSERT_ST(once_refresh_consume(f->s, h, KEY_LEN, &g), ONCE_SPENT);
	ASSERT(present ? g->successor != NULL : g->successor == NULL);
	ASSERT_STR(g->family_id, "fam-k");
	once_free(g);
}

static void test_successor_wrong_key_reads_absent(void)
{
	struct fixture f;
	fx_init(&f);
	(void)remembered(&f, f.h);
	expect_successor(&f, f.h, true);
	/* As after a restart with another successor_key. */
	f.s->successor_key[0] ^= 0x01;
	expect_successor(&f, f.h, false);
	f.s->successor_key[31] ^= 0x80;
	expect_successor(&f, f.h, false);
	f.s->successor_key[0] ^= 0x01;
	f.s->successor_key[31] ^= 0x80;
	expect_successor(&f, f.h, true);
	fx_close(&f);
}

static void test_successor_tampered_reads_absent(void)
{
	struct fixture f;
	fx_init(&f);
	struct once__entry *e = remembered(&f, f.h);
	struct once__sealed *sl = atomic_load(&e->u.refresh.consumed)->successor;
	ASSERT(sl != NULL);
	/* Ciphertext, tag and nonce: each flip reads as absent. */
	size_t at[] = {0, 6, sl->len - 1};
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		sl->ct[at[i]] ^= 0x20;
		expect_successor(&f, f.h, false);
		sl->ct[at[i]] ^= 0x20;
		expect_successor(&f, f.h, true);
	}
	sl->nonce[3] ^= 0x01;
	expect_successor(&f, f.h, false);
	sl->nonce[3] ^= 0x01;
	expect_successor(&f, f.h, true);
	fx_close(&f);
}

static void test_successor_bound_to_its_token(void)
{
	struct fixture f;
	fx_init(&f);
	struct once__entry *a = remembered(&f, f.h);
	once_refresh r = rec("fam-k", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, f.h2, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h2, KEY_LEN, "other-succ", 10), ONCE_OK);
	struct once__entry *b = stored_entry(f.s, f.h2, KEY_LEN);
	/* Swap the sealed payloads: each opens only on its own token. */
	struct once__consumption *ca = atomic_load(&a->u.refresh.consumed);
	struct once__consumption *cb = atomic_load(&b->u.refresh.consumed);
	struct once__sealed *t = ca->successor;
	ca->successor = cb->successor;
	cb->successor = t;
	expect_successor(&f, f.h, false);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, &g), ONCE_OK);
	ASSERT(g->successor == NULL);
	once_free(g);
	cb->successor = ca->successor;
	ca->successor = t;
	expect_successor(&f, f.h, true);
	fx_close(&f);
}

/* ---- teardown ---- */

static void test_close_with_successors_leak_free(void)
{
	struct fixture f;
	fx_init(&f);
	enum { N = 64 };
	once_refresh x = rec("fam-x", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &x), ONCE_OK);
	for (int i = 0; i < N; i++) {
		char h[KEY_LEN + 1], c[KEY_LEN + 1];
		test_key(h, "leak-p", (uint64_t)i);
		test_key(c, "leak-c", (uint64_t)i);
		once_refresh r = rec(i % 2 ? "fam-a" : "fam-b", 5000);
		ASSERT_ST(once_refresh_insert(f.s, h, KEY_LEN, &r), ONCE_OK);
		switch (i % 4) {
		case 0: /* rotated, with a payload */
			ASSERT_ST(once_refresh_rotate(f.s, h, KEY_LEN, c, KEY_LEN, &r, "pay", 3, NULL), ONCE_OK);
			break;
		case 1: /* consumed, successor remembered twice (one replaced) */
			ASSERT_ST(once_refresh_consume(f.s, h, KEY_LEN, NULL), ONCE_OK);
			ASSERT_ST(once_refresh_remember_successor(f.s, h, KEY_LEN, "one", 3), ONCE_OK);
			ASSERT_ST(once_refresh_remember_successor(f.s, h, KEY_LEN, "two", 3), ONCE_OK);
			break;
		case 2: /* consumed only */
			ASSERT_ST(once_refresh_consume(f.s, h, KEY_LEN, NULL), ONCE_OK);
			break;
		default: /* a failed rotation (EXISTS): its pending child freed */
			ASSERT_ST(once_refresh_rotate(f.s, h, KEY_LEN, f.h, KEY_LEN, &r, "p", 1, NULL),
			          ONCE_EXISTS);
			break;
		}
	}
	/* One family revoked; a short-lived rotated token swept with its
	 * successor (freed after a grace period, flushed by close). */
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-a", 5), ONCE_OK);
	char sp[KEY_LEN + 1], sc[KEY_LEN + 1];
	test_key(sp, "leak-sp", 0);
	test_key(sc, "leak-sc", 0);
	once_refresh short_lived = rec("fam-s", NOW + 1);
	ASSERT_ST(once_refresh_insert(f.s, sp, KEY_LEN, &short_lived), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, sp, KEY_LEN, sc, KEY_LEN, &short_lived, "pp", 2, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f.s, sp, KEY_LEN, "pp2", 3), ONCE_OK);
	set_now(&f, NOW + 2);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.refresh, 2);
	fx_close(&f);
}

TESTS(TEST(test_insert_get_roundtrip_every_field), TEST(test_insert_minimal_record_optional_fields_absent),
      TEST(test_scope_dedupe_first_occurrences_in_order), TEST(test_insert_exists_keeps_original),
      TEST(test_insert_invalid_arguments), TEST(test_insert_invalid_missing_required),
      TEST(test_insert_invalid_claims_to_be_used), TEST(test_insert_invalid_lists_and_claims),
      TEST(test_insert_invalid_record_too_large), TEST(test_key_length_limits),
      TEST(test_family_id_length_limits), TEST(test_get_unknown_not_found),
      TEST(test_consume_ok_then_spent), TEST(test_consume_unknown_not_found),
      TEST(test_consume_spent_returns_successor), TEST(test_remember_outcomes),
      TEST(test_remember_without_key_no_key), TEST(test_revoke_family_hides_every_token),
      TEST(test_insert_into_revoked_family_revoked), TEST(test_revoke_unknown_family_then_insert_revoked),
      TEST(test_revocation_ttl_mark_expires), TEST(test_revocation_ttl_zero_unknown_family),
      TEST(test_revoked_mark_outlives_ttl_with_long_lived_token), TEST(test_expired_tokens_swept_and_counted),
      TEST(test_full_at_max_refresh), TEST(test_rotate_ok), TEST(test_rotate_without_payload),
      TEST(test_rotate_spent_returns_winners_successor), TEST(test_rotate_not_found),
      TEST(test_rotate_exists_changes_nothing), TEST(test_rotate_invalid_changes_nothing),
      TEST(test_rotate_no_key_changes_nothing), TEST(test_rotate_revoked_family_child_not_created),
      TEST(test_op_counters), TEST(test_successor_sealed_at_rest), TEST(test_successor_wrong_key_reads_absent),
      TEST(test_successor_tampered_reads_absent), TEST(test_successor_bound_to_its_token),
      TEST(test_close_with_successors_leak_free));
TEST_MAIN()
