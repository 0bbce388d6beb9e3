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
 *
 * PostgreSQL (suite pg, test_on_postgres()): the same tests on the
 * server.  Setups are neutral where they can be (tokens of one family
 * take distinct generations, as (family_id, generation) is unique there;
 * rotation payloads are the child's token, "rt-2" for f.h2 and so on, on
 * that engine); where the engines differ by design (oncestore.h
 * "PostgreSQL", pg/refresh.c) the test asserts the server's behaviour in
 * an else branch: claims must be JSON and come back re-encoded, no
 * x5t_s256, scope keeps duplicates, no capacity, a successor is the
 * child's token (rotate and remember), revocation deletes the rows and
 * its tombstone lasts forever, once_stats has no bytes, swept or
 * capacity, and the at-rest tests read the successor column with psql.
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

/* pg_successor_secret on PostgreSQL (at least 32 bytes). */
static const char PG_SECRET[] = "oncestore test_refresh successor secret, >= 32 bytes";

/* The token whose hash is f->h, f->h2, f->h3 (test_key("rt", n)): a
 * rotation payload on PostgreSQL, where a successor is the child token. */
#define T1 "rt-1"
#define T2 "rt-2"
#define T3 "rt-3"

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
	if (test_on_postgres()) {
		f->o.pg_successor_secret = PG_SECRET;
		f->o.pg_successor_secret_len = sizeof PG_SECRET - 1;
	}
	test_key(f->h, "rt", 1);
	test_key(f->h2, "rt", 2);
	test_key(f->h3, "rt", 3);
}

/* No key to seal successors with, on either engine. */
static void fx_no_key(struct fixture *f)
{
	f->o.successor_key = NULL;
	f->o.pg_successor_secret = NULL;
	f->o.pg_successor_secret_len = 0;
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
	/* PostgreSQL: claims must be a JSON object and there is no column for
	 * x5t_s256: each is refused with nothing stored; then the record goes
	 * in with JSON claims and no x5t_s256. */
	const char json_claims[] = "{\"b\": [1, \"x\"], \"a\": {\"c\": null}}";
	if (test_on_postgres()) {
		expect_insert_invalid(&f, f.h, KEY_LEN, &r);
		r.claims = json_claims;
		r.claims_len = sizeof json_claims - 1;
		expect_insert_invalid(&f, f.h, KEY_LEN, &r);
		r.x5t_s256 = NULL;
	}
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
	if (!test_on_postgres()) {
		ASSERT_EQ_U64(g->scope_count, 4);
		ASSERT_STR(g->scope[0], "openid");
		ASSERT_STR(g->scope[1], "profile");
		ASSERT_STR(g->scope[2], "email");
		ASSERT_STR(g->scope[3], "offline_access");
	} else { /* scope keeps its duplicates */
		ASSERT_EQ_U64(g->scope_count, 6);
		for (int i = 0; i < 6; i++)
			ASSERT_STR(g->scope[i], scope[i]);
	}
	/* resource is not deduplicated: exactly as given */
	ASSERT_EQ_U64(g->resource_count, 3);
	ASSERT_STR(g->resource[0], "https://api.example/");
	ASSERT_STR(g->resource[1], "https://api.example/");
	ASSERT_STR(g->resource[2], "urn:r2");
	ASSERT_STR(g->acr, "urn:mace:incommon:iap:silver");
	ASSERT_EQ_INT(g->auth_time, 987);
	ASSERT_STR(g->dpop_jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
	if (!test_on_postgres()) {
		ASSERT_STR(g->x5t_s256, "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2");
		assert_bytes(g->claims, g->claims_len, claims, sizeof claims);
	} else { /* re-encoded as the server prints jsonb */
		ASSERT_STR(g->x5t_s256, NULL);
		const char want[] = "{\"a\":{\"c\":null},\"b\":[1,\"x\"]}";
		assert_bytes(g->claims, g->claims_len, want, sizeof want - 1);
	}
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
	if (!test_on_postgres()) {
		ASSERT_EQ_U64(g->scope_count, 4);
		ASSERT_STR(g->scope[0], "x");
		ASSERT_STR(g->scope[1], "a");
		ASSERT_STR(g->scope[2], "b");
		ASSERT_STR(g->scope[3], "");
	} else { /* PostgreSQL keeps duplicates: exactly as given */
		ASSERT_EQ_U64(g->scope_count, 9);
		for (int i = 0; i < 9; i++)
			ASSERT_STR(g->scope[i], scope[i]);
	}
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
	r.generation = 1; /* distinct in the family (PostgreSQL) */
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, &g), ONCE_OK);
	if (!test_on_postgres()) {
		ASSERT_EQ_U64(g->scope_count, 10);
		for (int i = 0; i < 10; i++) {
			char want[8];
			snprintf(want, sizeof want, "s%d", (i * 7) % 10);
			ASSERT_STR(g->scope[i], want);
		}
	} else {
		ASSERT_EQ_U64(g->scope_count, N);
		for (int i = 0; i < N; i++)
			ASSERT_STR(g->scope[i], big[i]);
	}
	once_free(g);

	/* No duplicates: unchanged, order kept. */
	const char *plain[] = {"c", "b", "a"};
	r.scope = plain;
	r.scope_count = 3;
	r.generation = 2;
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
	if (!test_on_postgres()) {
		ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
	} else {
		/* Claims must be a JSON object there: the same sizes as one
		 * {"k":"aaa..."}, over the limit and just under it. */
		static char json[2048];
		size_t len[] = {sizeof json, 1024 - sizeof(once_refresh) - 64};
		for (int i = 0; i < 2; i++) {
			memset(json, 'a', len[i]);
			memcpy(json, "{\"k\":\"", 6);
			memcpy(json + len[i] - 2, "\"}", 2);
			r.claims = json;
			r.claims_len = len[i];
			if (i == 0)
				expect_insert_invalid(&f, f.h, KEY_LEN, &r);
			else
				ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
		}
	}
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
	const char opaque[] = "new-refresh-token-plaintext\0with-nul";
	const char *succ = opaque;
	size_t succ_len = sizeof opaque;
	if (test_on_postgres()) {
		/* A successor is the child's token: its row (generation 1, this
		 * token its parent) exists first; opaque bytes are no token. */
		ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, opaque, sizeof opaque),
		          ONCE_INVALID);
		once_refresh c = rec("fam-s", 5000);
		c.generation = 1;
		c.parent_hash = f.h;
		ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &c), ONCE_OK);
		succ = T2;
		succ_len = strlen(T2);
	}
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, succ, succ_len), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_SPENT);
	ASSERT_STR(g->family_id, "fam-s");
	ASSERT(g->consumed);
	assert_bytes(g->successor, g->successor_len, succ, succ_len);
	once_free(g);
	g = NULL;
	ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
	assert_bytes(g->successor, g->successor_len, succ, succ_len);
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
	once_refresh *g = NULL;
	if (!test_on_postgres()) {
		ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "first", 5), ONCE_OK);
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
	} else {
		/* The successor is the token of this token's child: none yet,
		 * so any payload is INVALID; then the child (generation 1,
		 * parent f.h) is inserted and its token remembered, and
		 * remembered again (the one child there can be: (family_id,
		 * generation) is unique).  Within the retry window: the
		 * successor is sealed with retry_until = consumed_at + grace
		 * (1111 + 60), and a get after it is past the window, where
		 * AttestoPhoenix revokes the family, reads no successor
		 * (ATTESTO-PG 2.2.4 retry_window; this test used to read it at
		 * 1222). */
		set_now(&f, 1141);
		ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, T2, strlen(T2)), ONCE_INVALID);
		once_refresh c = rec("fam-r", 5000);
		c.generation = 1;
		c.parent_hash = f.h;
		ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &c), ONCE_OK);
		ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, "first", 5), ONCE_INVALID);
		for (int i = 0; i < 2; i++) {
			ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, T2, strlen(T2)), ONCE_OK);
			g = NULL;
			ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
			assert_bytes(g->successor, g->successor_len, T2, strlen(T2));
			ASSERT_EQ_INT(g->consumed_at, 1111); /* remembering keeps consumed_at */
			once_free(g);
		}
		/* A token that is not f.h's child (another family's) is INVALID. */
		once_refresh o = rec("fam-other", 5000);
		o.generation = 1;
		o.parent_hash = f.h;
		ASSERT_ST(once_refresh_insert(f.s, f.h3, KEY_LEN, &o), ONCE_OK);
		ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, T3, strlen(T3)), ONCE_INVALID);
	}
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
	/* max_record_len itself is accepted.  PostgreSQL: it passes the
	 * size check and is then no child's token: INVALID, and the
	 * remembered child token stays. */
	if (!test_on_postgres()) {
		ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, huge, f.o.max_record_len),
		          ONCE_OK);
		g = NULL;
		ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
		assert_bytes(g->successor, g->successor_len, huge, f.o.max_record_len);
		once_free(g);
	} else {
		ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, huge, f.o.max_record_len),
		          ONCE_INVALID);
		g = NULL;
		ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, &g), ONCE_OK);
		assert_bytes(g->successor, g->successor_len, T2, strlen(T2));
		once_free(g);
	}
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
	fx_no_key(&f);
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
		/* A chain of generations (distinct on PostgreSQL, where h[1]
		 * is h[0]'s child for the successor below). */
		r.generation = i;
		r.parent_hash = i > 0 ? h[i - 1] : NULL;
		ASSERT_ST(once_refresh_insert(f.s, h[i], KEY_LEN, &r), ONCE_OK);
	}
	/* Some consumed, one with a successor (PostgreSQL: h[1]'s token). */
	for (int i = 0; i < N; i += 3)
		ASSERT_ST(once_refresh_consume(f.s, h[i], KEY_LEN, NULL), ONCE_OK);
	if (!test_on_postgres())
		ASSERT_ST(once_refresh_remember_successor(f.s, h[0], KEY_LEN, "s", 1), ONCE_OK);
	else
		ASSERT_ST(once_refresh_remember_successor(f.s, h[0], KEY_LEN, "big-1", 5), ONCE_OK);
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
	 * token's hash is REVOKED rather than an upsert.  PostgreSQL:
	 * revocation deleted the family's rows (the tombstone remains). */
	if (!test_on_postgres())
		ASSERT_EQ_U64(refresh_entries(f.s), N + 1);
	else
		ASSERT_EQ_U64(refresh_entries(f.s), 1);
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
	/* PostgreSQL: the revocation deleted the family's row. */
	ASSERT_EQ_U64(refresh_entries(f.s), test_on_postgres() ? 0 : 1);
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
	if (!test_on_postgres()) {
		ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_OK);
		ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	} else {
		/* The tombstone is kept forever (revocation_ttl is the
		 * embedded store's): still REVOKED, nothing stored. */
		ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), ONCE_REVOKED);
		ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_EQ_U64(refresh_entries(f.s), 0);
	}
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
	/* PostgreSQL: the tombstone is kept forever. */
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &r), test_on_postgres() ? ONCE_REVOKED : ONCE_OK);
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
	shorter.generation = 1; /* distinct in the family (PostgreSQL) */
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &shorter), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-l", 5), ONCE_OK);
	once_refresh probe = rec("fam-l", NOW + 1);
	int64_t steps[] = {NOW + 51, NOW + 101, NOW + 2000, NOW + 4200, NOW + 8999, token_exp};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		set_now(&f, steps[i]);
		once_sweep_counts c;
		ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
		/* only the shorter token; PostgreSQL: the revocation deleted both */
		ASSERT_EQ_U64(c.refresh, i == 0 && !test_on_postgres() ? 1 : 0);
		ASSERT_ST(once_refresh_get(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_ST(once_refresh_insert(f.s, f.h3, KEY_LEN, &probe), ONCE_REVOKED);
	}
	ASSERT_EQ_U64(refresh_entries(f.s), test_on_postgres() ? 0 : 1);
	set_now(&f, token_exp + 1);
	once_sweep_counts c;
	ASSERT_ST(once_sweep(f.s, &c), ONCE_OK);
	ASSERT_EQ_U64(c.refresh, test_on_postgres() ? 0 : 1);
	ASSERT_EQ_U64(refresh_entries(f.s), 0);
	once_refresh fresh = rec("fam-l", token_exp + 5000);
	if (!test_on_postgres()) {
		/* Every token it covered has expired: the family may start afresh. */
		ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &fresh), ONCE_OK);
		ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_OK);
	} else {
		/* The tombstone is kept forever: the family never restarts. */
		ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &fresh), ONCE_REVOKED);
		ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, NULL), ONCE_NOT_FOUND);
	}
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
		/* Distinct generations per family (PostgreSQL), each token the
		 * child of the family's previous one: h[3] is h[0]'s. */
		r.generation = i / 3;
		r.parent_hash = i >= 3 ? h[i - 3] : NULL;
		ASSERT_ST(once_refresh_insert(f.s, h[i], KEY_LEN, &r), ONCE_OK);
	}
	ASSERT_ST(once_refresh_consume(f.s, h[0], KEY_LEN, NULL), ONCE_OK);
	/* PostgreSQL: the successor is the child's token, h[3]'s. */
	if (!test_on_postgres())
		ASSERT_ST(once_refresh_remember_successor(f.s, h[0], KEY_LEN, "succ", 4), ONCE_OK);
	else
		ASSERT_ST(once_refresh_remember_successor(f.s, h[0], KEY_LEN, "exp-3", 5), ONCE_OK);
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
	ASSERT_EQ_U64(st.refresh.swept, test_on_postgres() ? 0 : 5); /* PostgreSQL: no count */
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
	ASSERT_EQ_U64(st.refresh.swept, test_on_postgres() ? 0 : 8);
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
		r.generation = i; /* distinct in the family (PostgreSQL) */
		ASSERT_ST(once_refresh_insert(f.s, h[i], KEY_LEN, &r), ONCE_OK);
	}
	once_refresh r = rec("fam-one", NOW + 1000);
	if (test_on_postgres()) {
		r.generation = 8;
		/* No capacity there: the inserts past max_refresh succeed, a
		 * duplicate is EXISTS, and a rotation is never FULL. */
		ASSERT_ST(once_refresh_insert(f.s, h[8], KEY_LEN, &r), ONCE_OK);
		once_refresh other = rec("fam-other", NOW + 1000);
		ASSERT_ST(once_refresh_insert(f.s, h[9], KEY_LEN, &other), ONCE_OK);
		ASSERT_ST(once_refresh_insert(f.s, h[0], KEY_LEN, &r), ONCE_EXISTS);
		ASSERT_EQ_U64(refresh_entries(f.s), 10);
		for (int i = 0; i < 10; i++)
			ASSERT_ST(once_refresh_get(f.s, h[i], KEY_LEN, NULL), ONCE_OK);
		char ck[KEY_LEN + 1];
		test_key(ck, "full", 10);
		once_refresh c = rec("fam-one", NOW + 1000); /* generation 0: the next, 9 */
		ASSERT_ST(once_refresh_rotate(f.s, h[8], KEY_LEN, ck, KEY_LEN, &c, "full-10", 7, NULL), ONCE_OK);
		ASSERT_EQ_U64(refresh_entries(f.s), 11);
		set_now(&f, NOW + 11);
		once_sweep_counts c4;
		ASSERT_ST(once_sweep(f.s, &c4), ONCE_OK);
		ASSERT_EQ_U64(c4.refresh, 4);
		ASSERT_EQ_U64(refresh_entries(f.s), 7);
		struct once_stats st;
		once_stats(f.s, &st);
		ASSERT_EQ_U64(st.refresh.capacity, 0);
		ASSERT_EQ_U64(st.ops[ONCE_OP_REFRESH_INSERT][ONCE_FULL], 0);
		fx_close(&f);
		return;
	}
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

/* A rotation payload: the embedded test's bytes, or on PostgreSQL the
 * child's token (whose hash is the child key). */
static const char *pay(const char *embedded, const char *token)
{
	return test_on_postgres() ? token : embedded;
}

static size_t pay_len(size_t embedded_len, const char *token)
{
	return test_on_postgres() ? strlen(token) : embedded_len;
}

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
	const char payload_bytes[] = "child-token-plaintext";
	const char *payload = pay(payload_bytes, T2);
	size_t payload_len = pay_len(sizeof payload_bytes, T2);
	set_now(&f, 1500);
	once_refresh *po = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &c, payload, payload_len, &po),
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
	assert_bytes(g->successor, g->successor_len, payload, payload_len);
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
	if (!test_on_postgres()) {
		ASSERT_EQ_U64(g->scope_count, 2);
		ASSERT_STR(g->scope[0], "a");
		ASSERT_STR(g->scope[1], "b");
	} else { /* scope keeps its duplicates */
		ASSERT_EQ_U64(g->scope_count, 3);
		for (int i = 0; i < 3; i++)
			ASSERT_STR(g->scope[i], scope[i]);
	}
	once_free(g);
	ASSERT_EQ_U64(refresh_entries(f.s), 2);
	/* The child can be rotated in turn. */
	once_refresh gc = rec("fam-rot", 7000);
	ASSERT_ST(once_refresh_rotate(f.s, f.h2, KEY_LEN, f.h3, KEY_LEN, &gc, pay("g3", T3), pay_len(2, T3), NULL),
	          ONCE_OK);
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
	fx_no_key(&f); /* no payload needs no key */
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
	const char *winner = pay("winner", T2);
	size_t winner_len = pay_len(6, T2);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, winner, winner_len, NULL), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h3, KEY_LEN, &p, pay("loser", T3), pay_len(5, T3), &g),
	          ONCE_SPENT);
	ASSERT(g != NULL);
	ASSERT(g->consumed);
	ASSERT_STR(g->family_id, "fam-sp");
	assert_bytes(g->successor, g->successor_len, winner, winner_len);
	once_free(g);
	ASSERT_ST(once_refresh_get(f.s, f.h3, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(refresh_entries(f.s), 2);
	/* A consume after rotation is SPENT with the successor too. */
	g = NULL;
	ASSERT_ST(once_refresh_consume(f.s, f.h, KEY_LEN, &g), ONCE_SPENT);
	assert_bytes(g->successor, g->successor_len, winner, winner_len);
	once_free(g);
	/* A parent consumed by consume (no successor): rotate is SPENT and
	 * changes nothing (no child). */
	char h4[KEY_LEN + 1], h5[KEY_LEN + 1];
	test_key(h4, "rt", 4);
	test_key(h5, "rt", 5);
	once_refresh p4 = p;
	p4.generation = 2; /* distinct in the family (PostgreSQL) */
	ASSERT_ST(once_refresh_insert(f.s, h4, KEY_LEN, &p4), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, h4, KEY_LEN, NULL), ONCE_OK);
	g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, h4, KEY_LEN, h5, KEY_LEN, &p, pay("late", "rt-5"), pay_len(4, "rt-5"), &g),
	          ONCE_SPENT);
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
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &c, pay("p", T2), pay_len(1, T2), &g),
	          ONCE_NOT_FOUND);
	ASSERT(g == NULL);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(refresh_entries(f.s), 0);
	/* Parent of a revoked family: NOT_FOUND, no child. */
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &c), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-nf", 6), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &c, pay("p", T2), pay_len(1, T2), &g),
	          ONCE_NOT_FOUND);
	ASSERT(g == NULL);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	/* PostgreSQL: the revocation deleted the family's row. */
	ASSERT_EQ_U64(refresh_entries(f.s), test_on_postgres() ? 0 : 1);
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
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, pay("pay", T2), pay_len(3, T2), &g),
	          ONCE_EXISTS);
	ASSERT(g == NULL);
	expect_unconsumed(f.s, f.h);
	ASSERT_EQ_U64(refresh_entries(f.s), 2);
	/* The token that held the child hash is untouched. */
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, &g), ONCE_OK);
	ASSERT_STR(g->family_id, "fam-elsewhere");
	ASSERT_STR(g->subject, "someone-else");
	ASSERT(!g->consumed);
	once_free(g);
	/* A child hash held by a token of the same family: EXISTS too.  (Its
	 * generation 2 is distinct and not the rotation's, 1: PostgreSQL.) */
	once_refresh p3 = p;
	p3.generation = 2;
	ASSERT_ST(once_refresh_insert(f.s, f.h3, KEY_LEN, &p3), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h3, KEY_LEN, &p, pay("pay", T3), pay_len(3, T3), NULL),
	          ONCE_EXISTS);
	expect_unconsumed(f.s, f.h);
	expect_unconsumed(f.s, f.h3);
	/* The parent still rotates afterwards. */
	char h4[KEY_LEN + 1];
	test_key(h4, "rt", 4);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, h4, KEY_LEN, &p, pay("pay", "rt-4"), pay_len(3, "rt-4"),
	                              NULL),
	          ONCE_OK);
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
	/* The payload: on PostgreSQL the child's token, so that each INVALID
	 * below comes from the case it tests, not from the payload. */
	const char *p2 = pay("p", T2);
	size_t p2_len = pay_len(1, T2);

	/* A successor in another family. */
	once_refresh other = rec("fam-other", 5000);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &other, p2, p2_len, &g), ONCE_INVALID);
	ASSERT(g == NULL);
	expect_nothing_changed(&f, f.h, f.h2, n);
	/* child == parent */
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h, KEY_LEN, &p, p2, p2_len, &g), ONCE_INVALID);
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
		ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &bad[i], p2, p2_len, &g),
		          ONCE_INVALID);
		ASSERT(g == NULL);
		expect_nothing_changed(&f, f.h, f.h2, n);
	}
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, NULL, p2, p2_len, &g), ONCE_INVALID);
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
	ASSERT_ST(once_refresh_rotate(NULL, f.h, KEY_LEN, f.h2, KEY_LEN, &p, p2, p2_len, &g), ONCE_INVALID);
	expect_nothing_changed(&f, f.h, f.h2, n);
	/* And then the real rotation works. */
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, p2, p2_len, NULL), ONCE_OK);
	fx_close(&f);
}

static void test_rotate_no_key_changes_nothing(void)
{
	struct fixture f;
	fx_opts(&f);
	fx_no_key(&f);
	fx_open(&f);
	once_refresh p = rec("fam-nk", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h, KEY_LEN, &p), ONCE_OK);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, pay("payload", T2), pay_len(7, T2), &g),
	          ONCE_NO_KEY);
	ASSERT(g == NULL);
	expect_nothing_changed(&f, f.h, f.h2, 1);
	/* A payload pointer with n == 0 is still "a payload given".
	 * PostgreSQL: an empty payload is no child's token (the payload must
	 * hash to the child key), INVALID before the key is asked for. */
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, "payload", 0, &g),
	          test_on_postgres() ? ONCE_INVALID : ONCE_NO_KEY);
	expect_nothing_changed(&f, f.h, f.h2, 1);
	/* Unknown parent with a payload: NO_KEY too (checked before the
	 * lookup); invalid arguments are still INVALID. */
	ASSERT_ST(once_refresh_rotate(f.s, f.h3, KEY_LEN, f.h2, KEY_LEN, &p, pay("x", T2), pay_len(1, T2), NULL),
	          ONCE_NO_KEY);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h, KEY_LEN, &p, "x", 1, NULL), ONCE_INVALID);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_NO_KEY), test_on_postgres() ? 2 : 3);
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
	once_status st = once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &p, pay("p", T2), pay_len(1, T2), NULL);
	ASSERT(st == ONCE_NOT_FOUND || st == ONCE_REVOKED);
	ASSERT_ST(once_refresh_get(f.s, f.h2, KEY_LEN, NULL), ONCE_NOT_FOUND);
	/* PostgreSQL: the revocation deleted the parent's row. */
	ASSERT_EQ_U64(refresh_entries(f.s), test_on_postgres() ? 0 : 1);
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
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h2, KEY_LEN, &r, pay("s", T2), pay_len(1, T2), NULL),
	          ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h, KEY_LEN, f.h3, KEY_LEN, &r, pay("s", T3), pay_len(1, T3), NULL),
	          ONCE_SPENT);
	/* PostgreSQL: the successor remembered is the child's token. */
	ASSERT_ST(once_refresh_remember_successor(f.s, f.h, KEY_LEN, pay("t", T2), pay_len(1, T2)), ONCE_OK);
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
	if (!test_on_postgres()) {
		ASSERT_EQ_U64(st.refresh.entries, 2);
		ASSERT(st.refresh.bytes > 0);
	} else { /* the revocation deleted the rows; no bytes there */
		ASSERT_EQ_U64(st.refresh.entries, 0);
		ASSERT_EQ_U64(st.refresh.bytes, 0);
	}
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

static void test_successor_sealed_at_rest_embedded(void)
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

static void test_successor_wrong_key_reads_absent_embedded(void)
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

static void test_successor_tampered_reads_absent_embedded(void)
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

static void test_successor_bound_to_its_token_embedded(void)
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

/* ---- the successor at rest on PostgreSQL (the row, read with psql) ---- */

/* Runs one SQL statement on this suite's schema with psql; returns the
 * output (first column, rows joined by newlines, trailing newline cut)
 * in a static buffer.  {t} in sql names the refresh table. */
static const char *pg_sql(const char *sql)
{
	static char out[65536];
	char path[] = "/tmp/once-test-refresh-sqlXXXXXX";
	int fd = mkstemp(path);
	ASSERT(fd >= 0);
	FILE *f = fdopen(fd, "w");
	ASSERT(f != NULL);
	const char *schema = getenv("ONCE_TEST_PG_SCHEMA");
	for (const char *c = sql; *c; c++) {
		if (strncmp(c, "{t}", 3) == 0) {
			fprintf(f, "%s.attesto_refresh_tokens", schema);
			c += 2;
		} else {
			fputc(*c, f);
		}
	}
	ASSERT(fclose(f) == 0);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "psql -qAtX -v ON_ERROR_STOP=1 -d '%s' -f '%s'", getenv("ONCE_TEST_POSTGRES"),
	         path);
	fflush(NULL);
	FILE *pp = popen(cmd, "r");
	ASSERT(pp != NULL);
	size_t n = fread(out, 1, sizeof out - 1, pp);
	out[n] = '\0';
	int rc = pclose(pp);
	unlink(path);
	if (rc != 0)
		FAIL_AT("psql failed (%d): %s", rc, sql);
	while (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
	return out;
}

static const char *pg_sqlf(const char *fmt, const char *a, const char *b)
{
	char sql[8192];
	snprintf(sql, sizeof sql, fmt, a, b);
	return pg_sql(sql);
}

/* The successor column of token h, as text ("" for NULL). */
static const char *pg_successor_column(const char *h)
{
	return pg_sqlf("SELECT successor::text FROM {t} WHERE token_hash = '%s'%s", h, "");
}

/* Neither the successor column nor the whole row of h holds plain, nor
 * any 8-character piece of it. */
static void pg_expect_sealed(const char *h, const char *plain)
{
	char col[65536], row[65536];
	snprintf(col, sizeof col, "%s", pg_successor_column(h));
	snprintf(row, sizeof row, "%s", pg_sqlf("SELECT r::text FROM {t} r WHERE token_hash = '%s'%s", h, ""));
	ASSERT(col[0] != '\0');
	ASSERT(row[0] != '\0');
	size_t n = strlen(plain);
	for (size_t i = 0; i + 8 <= n; i++) {
		ASSERT(!contains(col, strlen(col), plain + i, 8));
		ASSERT(!contains(row, strlen(row), plain + i, 8));
	}
}

/* Parent h (family fam, generation 0) consumed, with its child under
 * once_secret_hash(token) remembered as its successor. */
static void pg_remembered(struct fixture *f, const char *h, const char *fam, const char *token)
{
	char ck[KEY_LEN + 1];
	ASSERT_ST(once_secret_hash(token, strlen(token), ck), ONCE_OK);
	once_refresh r = rec(fam, 5000);
	ASSERT_ST(once_refresh_insert(f->s, h, KEY_LEN, &r), ONCE_OK);
	once_refresh c = rec(fam, 5000);
	c.generation = 1;
	c.parent_hash = h;
	ASSERT_ST(once_refresh_insert(f->s, ck, KEY_LEN, &c), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f->s, h, KEY_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f->s, h, KEY_LEN, token, strlen(token)), ONCE_OK);
}

/* get and consume on s: the successor of h is token, or none. */
static void pg_expect_successor(once_store *s, const char *h, const char *fam, const char *token)
{
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(s, h, KEY_LEN, &g), ONCE_OK);
	ASSERT(g->consumed);
	if (token != NULL) {
		assert_bytes(g->successor, g->successor_len, token, strlen(token));
	} else {
		ASSERT(g->successor == NULL);
		ASSERT_EQ_U64(g->successor_len, 0);
	}
	once_free(g);
	g = NULL;
	ASSERT_ST(once_refresh_consume(s, h, KEY_LEN, &g), ONCE_SPENT);
	ASSERT(token != NULL ? g->successor != NULL : g->successor == NULL);
	ASSERT_STR(g->family_id, fam);
	once_free(g);
}

/* Sealed: the token is nowhere in the rows, through remember and rotate,
 * nor the secret; the API opens both. */
static void test_successor_sealed_at_rest_pg(void)
{
	struct fixture f;
	fx_init(&f);
	char secret[ONCE_SECRET_LEN + 1], secret2[ONCE_SECRET_LEN + 1], ck2[KEY_LEN + 1];
	ASSERT_ST(once_secret_generate(secret), ONCE_OK);
	pg_remembered(&f, f.h, "fam-seal", secret);
	pg_expect_sealed(f.h, secret);
	ASSERT_ST(once_secret_generate(secret2), ONCE_OK);
	ASSERT_ST(once_secret_hash(secret2, ONCE_SECRET_LEN, ck2), ONCE_OK);
	once_refresh r = rec("fam-seal2", 5000);
	ASSERT_ST(once_refresh_insert(f.s, f.h2, KEY_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, f.h2, KEY_LEN, ck2, KEY_LEN, &r, secret2, ONCE_SECRET_LEN, NULL),
	          ONCE_OK);
	pg_expect_sealed(f.h2, secret2);
	/* The child row does not hold its parent's successor either, and no
	 * row holds the successor secret. */
	ASSERT(strstr(pg_sqlf("SELECT r::text FROM {t} r WHERE token_hash = '%s'%s", ck2, ""), secret2) == NULL);
	ASSERT_STR(pg_sqlf("SELECT count(*) FROM {t} r WHERE strpos(r::text, '%s') > 0%s", PG_SECRET, ""), "0");
	pg_expect_successor(f.s, f.h, "fam-seal", secret);
	pg_expect_successor(f.s, f.h2, "fam-seal2", secret2);
	fx_close(&f);
}

/* Another pg_successor_secret (or none) reads the successor as absent;
 * the right one still opens it. */
static void test_successor_wrong_key_reads_absent_pg(void)
{
	struct fixture f;
	fx_init(&f);
	pg_remembered(&f, f.h, "fam-k", "successor-one");
	pg_expect_successor(f.s, f.h, "fam-k", "successor-one");
	static const char other[] = "another successor secret, also >= 32 bytes long";
	for (int i = 0; i < 2; i++) {
		once_options o = f.o;
		o.pg_successor_secret = i == 0 ? (const void *)other : NULL;
		o.pg_successor_secret_len = i == 0 ? sizeof other - 1 : 0;
		once_store *s2 = NULL;
		ASSERT_ST(once_open(&o, &s2), ONCE_OK); /* the same tables, not emptied */
		pg_expect_successor(s2, f.h, "fam-k", NULL);
		ASSERT_ST(once_close(s2), ONCE_OK);
	}
	pg_expect_successor(f.s, f.h, "fam-k", "successor-one");
	fx_close(&f);
}

/* Sets the successor's ciphertext of h to ct. */
static void pg_set_ciphertext(const char *h, const char *ct)
{
	pg_sqlf("UPDATE {t} SET successor = jsonb_set(successor, '{ciphertext}', to_jsonb('%s'::text))"
	        " WHERE token_hash = '%s'",
	        ct, h);
}

/* Any character of the ciphertext changed: absent. */
static void test_successor_tampered_reads_absent_pg(void)
{
	struct fixture f;
	fx_init(&f);
	pg_remembered(&f, f.h, "fam-k", "successor-one");
	char ct[8192];
	snprintf(ct, sizeof ct, "%s", pg_sqlf("SELECT successor->>'ciphertext' FROM {t} WHERE token_hash = '%s'%s",
	                                      f.h, ""));
	size_t n = strlen(ct);
	ASSERT(n > 16);
	size_t at[] = {0, 6, n / 2, n - 1};
	for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
		char was = ct[at[i]];
		ct[at[i]] = was == 'A' ? 'B' : 'A';
		pg_set_ciphertext(f.h, ct);
		pg_expect_successor(f.s, f.h, "fam-k", NULL);
		ct[at[i]] = was;
		pg_set_ciphertext(f.h, ct);
		pg_expect_successor(f.s, f.h, "fam-k", "successor-one");
	}
	fx_close(&f);
}

/* Swapped between two tokens, each sealed successor opens only on its
 * own row. */
static void test_successor_bound_to_its_token_pg(void)
{
	struct fixture f;
	fx_init(&f);
	pg_remembered(&f, f.h, "fam-k", "successor-one");
	pg_remembered(&f, f.h2, "fam-k2", "other-succ");
	const char *swap = "UPDATE {t} a SET successor = b.successor FROM {t} b WHERE"
	                   " (a.token_hash, b.token_hash) IN (('%s', '%s'), ('%s', '%s'))";
	char sql[1024];
	snprintf(sql, sizeof sql, swap, f.h, f.h2, f.h2, f.h);
	pg_sql(sql);
	pg_expect_successor(f.s, f.h, "fam-k", NULL);
	pg_expect_successor(f.s, f.h2, "fam-k2", NULL);
	pg_sql(sql);
	pg_expect_successor(f.s, f.h, "fam-k", "successor-one");
	pg_expect_successor(f.s, f.h2, "fam-k2", "other-succ");
	fx_close(&f);
}

/* The at-rest tests: the embedded store's entries, or the server's rows. */
static void test_successor_sealed_at_rest(void)
{
	if (!test_on_postgres())
		test_successor_sealed_at_rest_embedded();
	else
		test_successor_sealed_at_rest_pg();
}

static void test_successor_wrong_key_reads_absent(void)
{
	if (!test_on_postgres())
		test_successor_wrong_key_reads_absent_embedded();
	else
		test_successor_wrong_key_reads_absent_pg();
}

static void test_successor_tampered_reads_absent(void)
{
	if (!test_on_postgres())
		test_successor_tampered_reads_absent_embedded();
	else
		test_successor_tampered_reads_absent_pg();
}

static void test_successor_bound_to_its_token(void)
{
	if (!test_on_postgres())
		test_successor_bound_to_its_token_embedded();
	else
		test_successor_bound_to_its_token_pg();
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
		/* Generations 2i (parents) and 2i + 1 (their children):
		 * distinct in each family (PostgreSQL). */
		once_refresh r = rec(i % 2 ? "fam-a" : "fam-b", 5000);
		r.generation = 2 * i;
		once_refresh cr = r;
		cr.generation = 2 * i + 1;
		char ctok[32]; /* the child's token on PostgreSQL: c is its hash */
		snprintf(ctok, sizeof ctok, "leak-c-%d", i);
		ASSERT_ST(once_refresh_insert(f.s, h, KEY_LEN, &r), ONCE_OK);
		switch (i % 4) {
		case 0: /* rotated, with a payload */
			ASSERT_ST(once_refresh_rotate(f.s, h, KEY_LEN, c, KEY_LEN, &cr, pay("pay", ctok),
			                              pay_len(3, ctok), NULL),
			          ONCE_OK);
			break;
		case 1: /* consumed, successor remembered twice (one replaced) */
			ASSERT_ST(once_refresh_consume(f.s, h, KEY_LEN, NULL), ONCE_OK);
			if (!test_on_postgres()) {
				ASSERT_ST(once_refresh_remember_successor(f.s, h, KEY_LEN, "one", 3), ONCE_OK);
				ASSERT_ST(once_refresh_remember_successor(f.s, h, KEY_LEN, "two", 3), ONCE_OK);
			} else { /* the child's token, twice (its one child) */
				cr.parent_hash = h;
				ASSERT_ST(once_refresh_insert(f.s, c, KEY_LEN, &cr), ONCE_OK);
				for (int k = 0; k < 2; k++)
					ASSERT_ST(once_refresh_remember_successor(f.s, h, KEY_LEN, ctok, strlen(ctok)),
					          ONCE_OK);
			}
			break;
		case 2: /* consumed only */
			ASSERT_ST(once_refresh_consume(f.s, h, KEY_LEN, NULL), ONCE_OK);
			break;
		default: /* a failed rotation (EXISTS): its pending child freed */
			ASSERT_ST(once_refresh_rotate(f.s, h, KEY_LEN, f.h, KEY_LEN, &cr, pay("p", T1), pay_len(1, T1),
			                              NULL),
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
	ASSERT_ST(once_refresh_rotate(f.s, sp, KEY_LEN, sc, KEY_LEN, &short_lived, pay("pp", "leak-sc-0"),
	                              pay_len(2, "leak-sc-0"), NULL),
	          ONCE_OK);
	/* PostgreSQL: the successor remembered again is the child's token. */
	ASSERT_ST(once_refresh_remember_successor(f.s, sp, KEY_LEN, pay("pp2", "leak-sc-0"), pay_len(3, "leak-sc-0")),
	          ONCE_OK);
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
