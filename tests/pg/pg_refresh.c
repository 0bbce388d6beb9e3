/*
 * tests/pg/pg_refresh.c - refresh tokens on PostgreSQL (pg/refresh.c),
 * shared with AttestoPhoenix 3.5.1 (ATTESTO-PG 2.2, 6.7 - 6.10).
 *
 * Covers every status of insert, get, consume, remember_successor, rotate
 * and revoke_family on this engine; sticky revocation (tombstones, rows
 * a tombstone hides, legacy family_revoked rows); rotation atomicity
 * (8 threads, one winner, two rows) and revocation racing rotation (R1 -
 * R3 of pg/refresh.c); rows written the way AttestoPhoenix writes them
 * served here, rows written here read with AttestoPhoenix's SELECT; the
 * v2 successor recovered, and every tampering making it absent; issuer
 * binding both ways; bad input refused with nothing written; a C
 * rotation racing an AttestoPhoenix-style transaction on one family; the
 * sweeper's redaction with adversarial values.
 *
 * Suite pg: ONCE_TEST_POSTGRES is the server (tests/pg/cluster.sh).  Each
 * test makes the schema below from ATTESTO-PG 1.2's DDL and drops it.
 */
#include <pthread.h>
#include <stdarg.h>

#include <libpq-fe.h>

#include <sodium.h>

#include "../harness.h"
#include "pgdb.h"
#include "envelope.h"
#include "pg.h"

#define SCHEMA "once_test_pg_refresh"
#define T_REFRESH SCHEMA ".attesto_refresh_tokens"
#define T_REVOKED SCHEMA ".attesto_refresh_family_revocations"
#define NOW 1900000000
#define ISSUER_CLAIM "urn:attesto:refresh-token:issuer"
#define SECRET PGDB_SECRET


/* A record's claims (bytes, no NUL) are exactly want. */
#define ASSERT_CLAIMS(rec, want)                                                                  \
	do {                                                                                      \
		char got_[1024];                                                                  \
		ASSERT((rec)->claims_len < sizeof got_);                                          \
		memcpy(got_, (rec)->claims, (rec)->claims_len);                                   \
		got_[(rec)->claims_len] = '\0';                                                   \
		ASSERT_STR(got_, want);                                                           \
	} while (0)

/* ---- the store ---- */

static void fx_init(struct fx *f, struct store_opts so)
{
	fx_start(f, SCHEMA, NOW, so);
}

static const char *const scope3[] = {"openid", "offline_access", "openid"};
static const char *const resource1[] = {"https://api.example"};
#define JKT "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

static once_refresh record(const char *family, int64_t exp)
{
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = family;
	r.subject = "user-1";
	r.client_id = "client-1";
	r.expires_at = exp;
	r.scope = scope3;
	r.scope_count = 3;
	r.resource = resource1;
	r.resource_count = 1;
	return r;
}

static uint64_t rows(struct fx *f)
{
	return (uint64_t)sql_int(f->db, "SELECT count(*) FROM " T_REFRESH);
}

static uint64_t family_rows(struct fx *f, const char *family)
{
	return (uint64_t)sql_int(f->db, "SELECT count(*) FROM " T_REFRESH " WHERE family_id = '%s'",
	                         family);
}

static bool tombstoned(struct fx *f, const char *family)
{
	return sql_int(f->db, "SELECT count(*) FROM " T_REVOKED " WHERE family_id = '%s'", family) == 1;
}

static uint64_t op_count(once_store *s, once_op op, once_status st)
{
	struct once_stats stats;
	once_stats(s, &stats);
	return stats.ops[op][st];
}

/* Inserts a token the way AttestoPhoenix's insert/1 does (ATTESTO-PG
 * 2.2.3), from SQL: the lock, both revocation checks, the generation
 * check, the INSERT with every column. */
static void ap_insert(PGconn *c, const char *key, const char *family, int gen, const char *parent,
                      int64_t exp, const char *claims)
{
	sql(c, "BEGIN");
	sql(c, "SELECT pg_advisory_xact_lock(1096045126::int4, hashtext('%s'))", family);
	ASSERT_STR(sql_text(c, "SELECT TRUE FROM " T_REVOKED " WHERE family_id='%s' LIMIT 1", family), "NONE");
	ASSERT_STR(sql_text(c, "SELECT TRUE FROM " T_REFRESH " WHERE family_id='%s' AND family_revoked LIMIT 1", family), "NONE");
	ASSERT_STR(sql_text(c, "SELECT TRUE FROM " T_REFRESH " WHERE family_id='%s' AND generation=%d LIMIT 1", family, gen), "NONE");
	char parent_sql[128];
	snprintf(parent_sql, sizeof parent_sql, parent ? "'%s'" : "NULL", parent);
	sql(c, "INSERT INTO " T_REFRESH " (id, token_hash, family_id, generation, client_id, subject, scope, resource, acr, auth_time, family_expires_at, attestation_jkt, cnf, claims, consumed, consumed_at, successor, family_revoked, expires_at, parent_hash, inserted_at) VALUES (gen_random_uuid(), '%s', '%s', %d, 'client-1', 'user-1', ARRAY['openid','openid']::varchar[], ARRAY[]::varchar[], 'urn:acr:1', 1899999000, NULL, NULL, '{\"jkt\":\"" JKT "\"}', '%s', false, NULL, NULL, false, to_timestamp(%lld) AT TIME ZONE 'UTC', %s, to_timestamp(%d) AT TIME ZONE 'UTC')",
	    key, family, gen, claims, (long long)exp, parent_sql, NOW);
	sql(c, "COMMIT");
}

/* ---- insert and get ---- */

/* Every field round-trips; the row is what AttestoPhoenix writes and its
 * get/1 SELECT serves it. */
static void test_insert_get_roundtrip(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.issuer = "https://issuer.example"});
	struct tok t = tok("rt", 1);
	once_refresh r = record("fam-rt", NOW + 3600);
	r.acr = "urn:acr:2";
	r.auth_time = 1899990000;
	r.dpop_jkt = JKT;
	r.claims = "{\"b\": [1, 2], \"a\": {\"x\": null}}";
	r.claims_len = strlen(r.claims);
	ASSERT_ST(once_refresh_insert(f.s, t.key, ONCE_SECRET_LEN, &r), ONCE_OK);

	once_refresh *got = NULL;
	ASSERT_ST(once_refresh_get(f.s, t.key, ONCE_SECRET_LEN, &got), ONCE_OK);
	ASSERT_STR(got->family_id, "fam-rt");
	ASSERT_STR(got->subject, "user-1");
	ASSERT_STR(got->client_id, "client-1");
	ASSERT_STR(got->acr, "urn:acr:2");
	ASSERT_STR(got->dpop_jkt, JKT);
	ASSERT_EQ_INT(got->auth_time, 1899990000);
	ASSERT_EQ_INT(got->expires_at, NOW + 3600);
	ASSERT_EQ_INT(got->inserted_at, NOW);
	ASSERT_EQ_INT(got->generation, 0);
	/* Duplicates kept, as AttestoPhoenix 3.x keeps them. */
	ASSERT_EQ_INT(got->scope_count, 3);
	ASSERT_STR(got->scope[2], "openid");
	ASSERT_EQ_INT(got->resource_count, 1);
	ASSERT(!got->consumed && !got->revoked && got->successor == NULL);
	ASSERT_EQ_INT(got->consumed_at, 0);
	/* Compacted, the issuer claim added. */
	ASSERT_CLAIMS(got, "{\"a\":{\"x\":null},\"b\":[1,2],\"" ISSUER_CLAIM "\":\"https://issuer.example\"}");
	once_free(got);

	/* AttestoPhoenix's get/1, column by column. */
	char q[1024];
	snprintf(q, sizeof q,
	         "SELECT r.id IS NOT NULL, r.cnf::text, r.claims->>'" ISSUER_CLAIM "', r.family_revoked,"
	         " r.consumed, r.successor IS NULL, r.parent_hash IS NULL, r.auth_time,"
	         " r.family_expires_at IS NULL, r.attestation_jkt IS NULL, r.inserted_at::text,"
	         " r.expires_at::text, array_length(r.scope, 1)"
	         " FROM " T_REFRESH " r LEFT JOIN " T_REVOKED " v ON v.family_id = r.family_id"
	         " WHERE r.token_hash = '%s' AND r.family_revoked = false AND v.family_id IS NULL",
	         t.key);
	PGresult *res = PQexec(f.db, q);
	ASSERT_EQ_INT(PQresultStatus(res), PGRES_TUPLES_OK);
	ASSERT_EQ_INT(PQntuples(res), 1);
	ASSERT_STR(PQgetvalue(res, 0, 0), "t");
	ASSERT_STR(PQgetvalue(res, 0, 1), "{\"jkt\": \"" JKT "\"}");
	ASSERT_STR(PQgetvalue(res, 0, 2), "https://issuer.example");
	ASSERT_STR(PQgetvalue(res, 0, 3), "f");
	ASSERT_STR(PQgetvalue(res, 0, 4), "f");
	ASSERT_STR(PQgetvalue(res, 0, 5), "t");
	ASSERT_STR(PQgetvalue(res, 0, 6), "t");
	ASSERT_STR(PQgetvalue(res, 0, 7), "1899990000");
	ASSERT_STR(PQgetvalue(res, 0, 8), "t");
	ASSERT_STR(PQgetvalue(res, 0, 9), "t");
	ASSERT_STR(PQgetvalue(res, 0, 10), "2030-03-17 17:46:40"); /* NOW, UTC */
	ASSERT_STR(PQgetvalue(res, 0, 11), "2030-03-17 18:46:40");
	ASSERT_STR(PQgetvalue(res, 0, 12), "3");
	PQclear(res);

	/* auth_time 0 (not given) is NULL, and reads back as 0. */
	struct tok t2 = tok("rt", 2);
	once_refresh r2 = record("fam-rt2", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, t2.key, ONCE_SECRET_LEN, &r2), ONCE_OK);
	ASSERT_STR(sql_text(f.db, "SELECT auth_time FROM " T_REFRESH " WHERE token_hash='%s'", t2.key), "NULL");
	ASSERT_STR(sql_text(f.db, "SELECT cnf FROM " T_REFRESH " WHERE token_hash='%s'", t2.key), "NULL");
	ASSERT_ST(once_refresh_get(f.s, t2.key, ONCE_SECRET_LEN, &got), ONCE_OK);
	ASSERT_EQ_INT(got->auth_time, 0);
	ASSERT(got->dpop_jkt == NULL);
	once_free(got);
	ASSERT_ST(once_refresh_get(f.s, "unknown", 7, &got), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_INSERT, ONCE_OK), 2);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_GET, ONCE_OK), 2);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_GET, ONCE_NOT_FOUND), 1);
	fx_close(&f);
}

static void test_insert_exists(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){0});
	struct tok t = tok("ex", 1), t2 = tok("ex", 2);
	once_refresh r = record("fam-ex", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, t.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	once_refresh other = record("fam-other", NOW + 99);
	ASSERT_ST(once_refresh_insert(f.s, t.key, ONCE_SECRET_LEN, &other), ONCE_EXISTS);
	/* (family, generation) is unique too. */
	ASSERT_ST(once_refresh_insert(f.s, t2.key, ONCE_SECRET_LEN, &r), ONCE_EXISTS);
	r.generation = 1;
	ASSERT_ST(once_refresh_insert(f.s, t2.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	ASSERT_EQ_U64(rows(&f), 2);
	once_refresh *got;
	ASSERT_ST(once_refresh_get(f.s, t.key, ONCE_SECRET_LEN, &got), ONCE_OK);
	ASSERT_STR(got->family_id, "fam-ex");
	ASSERT_EQ_INT(got->expires_at, NOW + 60);
	once_free(got);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_INSERT, ONCE_EXISTS), 2);
	fx_close(&f);
}

/* Bad input: ONCE_INVALID, nothing written. */
static void test_insert_invalid(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){0});
	struct tok t = tok("inv", 1);
	char long_key[90], long_scope[300], long_family[300];
	memset(long_key, 'k', 89);
	long_key[89] = '\0';
	memset(long_scope, 's', 256);
	long_scope[256] = '\0';
	memset(long_family, 'f', 256);
	long_family[256] = '\0';
	const char *bad_scope[] = {"openid", long_scope};
	const char *null_scope[] = {"openid", NULL};

	once_refresh r = record("fam-inv", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, long_key, 89, &r), ONCE_INVALID);
	ASSERT_ST(once_refresh_insert(f.s, "a\0b", 3, &r), ONCE_INVALID);
	ASSERT_ST(once_refresh_insert(f.s, "\xff\xfe", 2, &r), ONCE_INVALID);
	ASSERT_ST(once_refresh_insert(f.s, t.key, 0, &r), ONCE_INVALID);
	ASSERT_ST(once_refresh_insert(f.s, t.key, ONCE_SECRET_LEN, NULL), ONCE_INVALID);
	struct {
		const char *what;
		once_refresh r;
	} bad[16];
	int n = 0;
	for (int i = 0; i < 14; i++)
		bad[i].r = r;
	bad[n].what = "claims array", bad[n].r.claims = "[1]", bad[n++].r.claims_len = 3;
	bad[n].what = "claims float", bad[n].r.claims = "{\"a\":1.5}", bad[n++].r.claims_len = 9;
	bad[n].what = "claims not json", bad[n].r.claims = "{", bad[n++].r.claims_len = 1;
	bad[n].what = "scope 256", bad[n].r.scope = bad_scope, bad[n++].r.scope_count = 2;
	bad[n].what = "scope NULL entry", bad[n].r.scope = null_scope, bad[n++].r.scope_count = 2;
	bad[n].what = "family 256", bad[n++].r.family_id = long_family;
	bad[n].what = "family empty", bad[n++].r.family_id = "";
	bad[n].what = "subject NULL", bad[n++].r.subject = NULL;
	bad[n].what = "x5t_s256", bad[n++].r.x5t_s256 = "x5t";
	bad[n].what = "jkt not a thumbprint", bad[n++].r.dpop_jkt = "short";
	bad[n].what = "generation < 0", bad[n++].r.generation = -1;
	bad[n].what = "generation > int", bad[n++].r.generation = (int64_t)INT32_MAX + 1;
	bad[n].what = "consumed", bad[n++].r.consumed = true;
	bad[n].what = "expires_at 0", bad[n++].r.expires_at = 0;
	for (int i = 0; i < n; i++) {
		once_status st = once_refresh_insert(f.s, t.key, ONCE_SECRET_LEN, &bad[i].r);
		if (st != ONCE_INVALID)
			FAIL_AT("%s: %s", bad[i].what, once_status_name(st));
	}
	ASSERT_EQ_U64(rows(&f), 0);
	ASSERT_EQ_INT(sql_int(f.db, "SELECT count(*) FROM " T_REVOKED), 0);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_INSERT, ONCE_INVALID), (uint64_t)n + 5);
	fx_close(&f);
}

/* ---- revocation ---- */

static void test_revoke_sticky(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){0});
	struct tok t = tok("rv", 1), t2 = tok("rv", 2), t3 = tok("rv", 3);
	once_refresh r = record("fam-rv", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, t.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-rv", 6), ONCE_OK);
	ASSERT_EQ_U64(family_rows(&f, "fam-rv"), 0);
	ASSERT(tombstoned(&f, "fam-rv"));
	ASSERT_ST(once_refresh_get(f.s, t.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_consume(f.s, t.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	/* Insert after revoke: REVOKED, nothing written. */
	ASSERT_ST(once_refresh_insert(f.s, t2.key, ONCE_SECRET_LEN, &r), ONCE_REVOKED);
	ASSERT_EQ_U64(rows(&f), 0);
	/* Idempotent; the first revoked_at stays. */
	atomic_store(&f.clk.now, NOW + 10);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-rv", 6), ONCE_OK);
	ASSERT_STR(sql_text(f.db, "SELECT revoked_at FROM " T_REVOKED " WHERE family_id='fam-rv'"),
	           "2030-03-17 17:46:40");
	/* An unknown family gets a tombstone too. */
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-unknown", 11), ONCE_OK);
	ASSERT(tombstoned(&f, "fam-unknown"));
	/* A residual row (written by a writer that ignored the tombstone) is
	 * hidden by it: get, consume and rotate all miss it. */
	ap_insert(f.db, t3.key, "fam-other", 0, NULL, NOW + 60, "{}");
	sql(f.db, "INSERT INTO " T_REVOKED " VALUES ('fam-other', now())");
	ASSERT_ST(once_refresh_get(f.s, t3.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_consume(f.s, t3.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	struct tok c = tok("rv", 4);
	once_refresh child = record("fam-other", NOW + 120);
	ASSERT_ST(once_refresh_rotate(f.s, t3.key, ONCE_SECRET_LEN, c.key, ONCE_SECRET_LEN, &child,
	                              NULL, 0, NULL),
	          ONCE_NOT_FOUND);
	ASSERT_STR(sql_text(f.db, "SELECT consumed FROM " T_REFRESH " WHERE token_hash='%s'", t3.key), "f");
	/* A legacy (2.x) revoked row: the flag alone hides the family. */
	struct tok l1 = tok("legacy", 1), l2 = tok("legacy", 2);
	ap_insert(f.db, l1.key, "fam-legacy", 0, NULL, NOW + 60, "{}");
	sql(f.db, "UPDATE " T_REFRESH " SET family_revoked = true WHERE family_id = 'fam-legacy'");
	ASSERT_ST(once_refresh_get(f.s, l1.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_consume(f.s, l1.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	once_refresh lr = record("fam-legacy", NOW + 60);
	lr.generation = 1;
	ASSERT_ST(once_refresh_insert(f.s, l2.key, ONCE_SECRET_LEN, &lr), ONCE_REVOKED);
	ASSERT_ST(once_refresh_rotate(f.s, l1.key, ONCE_SECRET_LEN, l2.key, ONCE_SECRET_LEN, &lr,
	                              NULL, 0, NULL),
	          ONCE_NOT_FOUND);
	ASSERT_EQ_U64(family_rows(&f, "fam-legacy"), 1);
	/* Bad family ids. */
	ASSERT_ST(once_refresh_revoke_family(f.s, "", 0), ONCE_INVALID);
	ASSERT_ST(once_refresh_revoke_family(f.s, NULL, 3), ONCE_INVALID);
	ASSERT_ST(once_refresh_revoke_family(f.s, "a\0b", 3), ONCE_INVALID);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_REVOKE, ONCE_OK), 3);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_INSERT, ONCE_REVOKED), 2);
	fx_close(&f);
}

/* ---- consume ---- */

static void test_consume(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){0});
	struct tok t = tok("cs", 1);
	once_refresh r = record("fam-cs", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, t.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	atomic_store(&f.clk.now, NOW + 5);
	once_refresh *got = NULL;
	ASSERT_ST(once_refresh_consume(f.s, t.key, ONCE_SECRET_LEN, &got), ONCE_OK);
	ASSERT(!got->consumed);
	ASSERT_EQ_INT(got->consumed_at, 0);
	ASSERT_STR(got->family_id, "fam-cs");
	once_free(got);
	ASSERT_STR(sql_text(f.db, "SELECT consumed_at FROM " T_REFRESH " WHERE token_hash='%s'", t.key),
	           "2030-03-17 17:46:45");
	ASSERT_ST(once_refresh_consume(f.s, t.key, ONCE_SECRET_LEN, &got), ONCE_SPENT);
	ASSERT(got->consumed);
	ASSERT_EQ_INT(got->consumed_at, NOW + 5);
	ASSERT(got->successor == NULL);
	once_free(got);
	ASSERT_ST(once_refresh_consume(f.s, t.key, ONCE_SECRET_LEN, NULL), ONCE_SPENT);
	ASSERT_ST(once_refresh_consume(f.s, "nope", 4, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_consume(f.s, NULL, 4, NULL), ONCE_INVALID);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_CONSUME, ONCE_OK), 1);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_CONSUME, ONCE_SPENT), 2);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_CONSUME, ONCE_NOT_FOUND), 1);
	fx_close(&f);
}

/* ---- rotate ---- */

static void test_rotate_statuses(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){0});
	struct tok p = tok("rot", 0), c1 = tok("rot", 1), c2 = tok("rot", 2);
	once_refresh r = record("fam-rot", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	once_refresh child = record("fam-rot", NOW + 120);
	once_refresh *out = NULL;
	/* Refused before anything runs: parent unchanged. */
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, p.key, ONCE_SECRET_LEN, &child,
	                              NULL, 0, &out), ONCE_INVALID);
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c1.key, ONCE_SECRET_LEN, &child,
	                              c2.token, strlen(c2.token), &out), ONCE_INVALID); /* payload != child */
	once_refresh wrong = record("fam-elsewhere", NOW + 120);
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c1.key, ONCE_SECRET_LEN, &wrong,
	                              NULL, 0, &out), ONCE_INVALID);
	wrong = child;
	wrong.generation = 5;
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c1.key, ONCE_SECRET_LEN, &wrong,
	                              NULL, 0, &out), ONCE_INVALID);
	ASSERT_ST(once_refresh_rotate(f.s, "nope", 4, c1.key, ONCE_SECRET_LEN, &child, NULL, 0, &out),
	          ONCE_NOT_FOUND);
	/* Child hash taken (by a token of another family). */
	once_refresh elsewhere = record("fam-x", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, c2.key, ONCE_SECRET_LEN, &elsewhere), ONCE_OK);
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c2.key, ONCE_SECRET_LEN, &child,
	                              NULL, 0, &out), ONCE_EXISTS);
	/* Expired parent (this engine checks; the embedded one does not). */
	atomic_store(&f.clk.now, NOW + 60);
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c1.key, ONCE_SECRET_LEN, &child,
	                              NULL, 0, &out), ONCE_EXPIRED);
	atomic_store(&f.clk.now, NOW + 7);
	ASSERT(out == NULL);
	ASSERT_STR(sql_text(f.db, "SELECT consumed FROM " T_REFRESH " WHERE token_hash='%s'", p.key), "f");
	ASSERT_EQ_U64(family_rows(&f, "fam-rot"), 1);

	child.generation = 1;
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c1.key, ONCE_SECRET_LEN, &child,
	                              c1.token, strlen(c1.token), &out), ONCE_OK);
	ASSERT(!out->consumed);
	ASSERT_EQ_INT(out->generation, 0);
	once_free(out);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_INVALID), 4);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_EXPIRED), 1);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_EXISTS), 1);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_NOT_FOUND), 1);
	fx_close(&f);
}

static void test_rotate_statuses_2(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){0});
	struct tok p = tok("rot", 0), c1 = tok("rot", 1), c2 = tok("rot", 2);
	once_refresh r = record("fam-rot", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	once_refresh child = record("fam-rot", NOW + 120);
	once_refresh *out = NULL;
	atomic_store(&f.clk.now, NOW + 7);
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c1.key, ONCE_SECRET_LEN, &child,
	                              c1.token, strlen(c1.token), &out), ONCE_OK);
	once_free(out);
	char want[256];
	snprintf(want, sizeof want, "1 %s false", p.key);
	ASSERT_STR(sql_text(f.db, "SELECT generation || ' ' || parent_hash || ' ' || consumed FROM " T_REFRESH
	                    " WHERE token_hash='%s'", c1.key), want);
	/* No secret: the parent holds the strict tombstone, retry_until = now. */
	ASSERT_STR(sql_text(f.db, "SELECT successor::text || ' ' || consumed_at FROM " T_REFRESH
	                    " WHERE token_hash='%s'", p.key),
	           "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1900000007} 2030-03-17 17:46:47");
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c2.key, ONCE_SECRET_LEN, &child,
	                              NULL, 0, &out), ONCE_SPENT);
	ASSERT(out->consumed);
	ASSERT_EQ_INT(out->consumed_at, NOW + 7);
	ASSERT(out->successor == NULL);
	once_free(out);
	ASSERT_EQ_U64(family_rows(&f, "fam-rot"), 2);
	/* The child's generation is already taken (a forked family): the
	 * family is revoked (AttestoPhoenix's family_integrity_error). */
	struct tok g = tok("gen", 1);
	sql(f.db, "UPDATE " T_REFRESH " SET token_hash = '%s', consumed = false WHERE token_hash = '%s'",
	    g.key, p.key); /* a second unconsumed gen-0 stand-in, child gen 1 exists */
	ASSERT_ST(once_refresh_rotate(f.s, g.key, ONCE_SECRET_LEN, c2.key, ONCE_SECRET_LEN, &child,
	                              NULL, 0, &out), ONCE_REVOKED);
	ASSERT_EQ_U64(family_rows(&f, "fam-rot"), 0);
	ASSERT(tombstoned(&f, "fam-rot"));
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_OK), 1);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_SPENT), 1);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_ROTATE, ONCE_REVOKED), 1);
	fx_close(&f);
}

/* ---- successors: the v2 envelope ---- */

/* Rotates p -> c with the child token as payload on a store with a
 * secret; returns nothing, asserts OK. */
static void rotate_ok(struct fx *f, const struct tok *p, const struct tok *c, const char *family,
                      int64_t child_exp)
{
	once_refresh child = record(family, child_exp);
	ASSERT_ST(once_refresh_rotate(f->s, p->key, ONCE_SECRET_LEN, c->key, ONCE_SECRET_LEN, &child,
	                              c->token, strlen(c->token), NULL), ONCE_OK);
}

static void expect_successor(struct fx *f, const struct tok *p, const char *token)
{
	once_refresh *out = NULL;
	ASSERT_ST(once_refresh_get(f->s, p->key, ONCE_SECRET_LEN, &out), ONCE_OK);
	if (token == NULL) {
		ASSERT(out->successor == NULL);
	} else {
		ASSERT_EQ_INT(out->successor_len, strlen(token));
		ASSERT(memcmp(out->successor, token, strlen(token)) == 0);
	}
	once_free(out);
	ASSERT_ST(once_refresh_consume(f->s, p->key, ONCE_SECRET_LEN, &out), ONCE_SPENT);
	ASSERT((out->successor != NULL) == (token != NULL));
	once_free(out);
}

static void test_successor_v2(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60, .issuer = "https://i"});
	struct tok p = tok("v2", 0), c = tok("v2", 1), c2 = tok("v2", 2);
	once_refresh r = record("fam-v2", NOW + 3600);
	r.claims = "{\"n\":[1,2,300]}";
	r.claims_len = strlen(r.claims);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	rotate_ok(&f, &p, &c, "fam-v2", NOW + 30); /* child expires first: retry_until = exp - 1 */
	/* The envelope as AttestoPhoenix reads it. */
	ASSERT_STR(sql_text(f.db, "SELECT (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(successor) k)"
	                    " || ' ' || (successor->>'v') || ' ' || (successor->>'retry_until') || ' ' ||"
	                    " left(successor->>'ciphertext', 4) FROM " T_REFRESH " WHERE token_hash='%s'", p.key),
	           "child_hash,ciphertext,retry_until,v 2 1900000029 XCP.");
	ASSERT_STR(sql_text(f.db, "SELECT successor->>'child_hash' FROM " T_REFRESH " WHERE token_hash='%s'", p.key),
	           c.key);
	/* The retry path: the SPENT parent carries the child token. */
	expect_successor(&f, &p, c.token);
	once_refresh child = record("fam-v2", NOW + 30);
	once_refresh *out = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c2.key, ONCE_SECRET_LEN, &child,
	                              c2.token, strlen(c2.token), &out), ONCE_SPENT);
	ASSERT_EQ_INT(out->successor_len, strlen(c.token));
	ASSERT(memcmp(out->successor, c.token, out->successor_len) == 0);
	once_free(out);
	/* Another secret opens nothing. */
	once_options o;
	once_options_init(&o);
	o.postgres = getenv("ONCE_TEST_POSTGRES");
	o.pg_schema = SCHEMA;
	o.pg_issuer = "https://i";
	o.pg_successor_secret = "another secret of thirty-two bytes or more";
	o.pg_successor_secret_len = strlen(o.pg_successor_secret);
	once_store *s2;
	ASSERT_ST(once_open(&o, &s2), ONCE_OK);
	ASSERT_ST(once_refresh_get(s2, p.key, ONCE_SECRET_LEN, &out), ONCE_OK);
	ASSERT(out->successor == NULL);
	once_free(out);
	ASSERT_ST(once_close(s2), ONCE_OK);
	fx_close(&f);
}

/* Each tampering makes the successor absent. */
static void tamper_case(const char *update_fmt, int which)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60});
	struct tok p = tok("tp", 0), c = tok("tp", 1);
	once_refresh r = record("fam-tp", NOW + 3600);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	rotate_ok(&f, &p, &c, "fam-tp", NOW + 3600);
	expect_successor(&f, &p, c.token);
	switch (which) {
	case 0: /* flip a ciphertext character */
	case 1: /* retry_until outside */
	case 2: /* child_hash */
		sql(f.db, update_fmt, p.key);
		break;
	case 3: { /* the envelope moved to another parent of the family */
		struct tok q = tok("tp", 9);
		once_refresh other = record("fam-tp", NOW + 3600);
		other.generation = 7;
		ASSERT_ST(once_refresh_insert(f.s, q.key, ONCE_SECRET_LEN, &other), ONCE_OK);
		sql(f.db, "UPDATE " T_REFRESH " SET consumed = true, consumed_at = '2030-03-17 17:46:40',"
		          " successor = (SELECT successor FROM " T_REFRESH " WHERE token_hash = '%s')"
		          " WHERE token_hash = '%s'", p.key, q.key);
		expect_successor(&f, &q, NULL);
		sql(f.db, "UPDATE " T_REFRESH " SET parent_hash = '%s' WHERE token_hash = '%s'", q.key, c.key);
		break;
	}
	case 4: /* the child's data changed */
		sql(f.db, update_fmt, c.key);
		break;
	case 5: /* the child is gone */
		sql(f.db, "DELETE FROM " T_REFRESH " WHERE token_hash = '%s'", c.key);
		break;
	}
	expect_successor(&f, &p, NULL);
	fx_close(&f);
}

static void test_tamper_ciphertext(void)
{
	tamper_case("UPDATE " T_REFRESH " SET successor = jsonb_set(successor, '{ciphertext}',"
	            " to_jsonb(overlay(successor->>'ciphertext' placing"
	            " (CASE WHEN substr(successor->>'ciphertext', 30, 1) = 'A' THEN 'B' ELSE 'A' END)"
	            " from 30 for 1))) WHERE token_hash = '%s'", 0);
}

static void test_tamper_retry_until(void)
{
	tamper_case("UPDATE " T_REFRESH " SET successor = jsonb_set(successor, '{retry_until}',"
	            " to_jsonb((successor->>'retry_until')::bigint + 1)) WHERE token_hash = '%s'", 1);
}

static void test_tamper_child_hash(void)
{
	tamper_case("UPDATE " T_REFRESH " SET successor = jsonb_set(successor, '{child_hash}',"
	            " '\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"') WHERE token_hash = '%s'", 2);
}

static void test_tamper_parent_hash(void)
{
	tamper_case(NULL, 3);
}

static void test_tamper_child_data(void)
{
	tamper_case("UPDATE " T_REFRESH " SET scope = ARRAY['openid']::varchar[] WHERE token_hash = '%s'", 4);
}

static void test_tamper_child_gone(void)
{
	tamper_case(NULL, 5);
}

/* ---- remember_successor ---- */

static void test_remember(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60});
	struct tok p = tok("rm", 0), c = tok("rm", 1), x = tok("rm", 2);
	once_refresh r = record("fam-rm", NOW + 3600);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	once_refresh child = record("fam-rm", NOW + 3600);
	child.generation = 1;
	child.parent_hash = p.key;
	ASSERT_ST(once_refresh_insert(f.s, c.key, ONCE_SECRET_LEN, &child), ONCE_OK);
	/* Unconsumed, unknown: NOT_FOUND. */
	ASSERT_ST(once_refresh_remember_successor(f.s, p.key, ONCE_SECRET_LEN, c.token, strlen(c.token)),
	          ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_remember_successor(f.s, "nope", 4, c.token, strlen(c.token)),
	          ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_consume(f.s, p.key, ONCE_SECRET_LEN, NULL), ONCE_OK);
	/* Not this token's child: INVALID; empty: INVALID. */
	ASSERT_ST(once_refresh_remember_successor(f.s, p.key, ONCE_SECRET_LEN, x.token, strlen(x.token)),
	          ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, p.key, ONCE_SECRET_LEN, "", 0), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(f.s, p.key, ONCE_SECRET_LEN, c.token, strlen(c.token)),
	          ONCE_OK);
	expect_successor(&f, &p, c.token);
	ASSERT_STR(sql_text(f.db, "SELECT successor->>'v' FROM " T_REFRESH " WHERE token_hash='%s'", p.key), "2");
	/* No secret: NO_KEY (after the arguments). */
	once_options o;
	once_options_init(&o);
	o.postgres = getenv("ONCE_TEST_POSTGRES");
	o.pg_schema = SCHEMA;
	once_store *s2;
	ASSERT_ST(once_open(&o, &s2), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(s2, p.key, ONCE_SECRET_LEN, c.token, strlen(c.token)),
	          ONCE_NO_KEY);
	ASSERT_ST(once_refresh_remember_successor(s2, p.key, ONCE_SECRET_LEN, NULL, 3), ONCE_INVALID);
	ASSERT_ST(once_close(s2), ONCE_OK);
	/* Revoked: NOT_FOUND. */
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-rm", 6), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(f.s, p.key, ONCE_SECRET_LEN, c.token, strlen(c.token)),
	          ONCE_NOT_FOUND);
	ASSERT_EQ_U64(op_count(f.s, ONCE_OP_REFRESH_SUCCESSOR, ONCE_OK), 1);
	fx_close(&f);
}

/* ---- issuer binding (ATTESTO-PG 2.2.7) ---- */

static void test_issuer_binding(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.issuer = "https://a"});
	struct tok t = tok("is", 1), u = tok("is", 2), c = tok("is", 3);
	once_refresh r = record("fam-a", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, t.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	ASSERT_STR(sql_text(f.db, "SELECT claims->>'" ISSUER_CLAIM "' FROM " T_REFRESH), "https://a");
	/* A store for another issuer sees nothing, and consumes nothing. */
	once_options o;
	once_options_init(&o);
	o.postgres = getenv("ONCE_TEST_POSTGRES");
	o.pg_schema = SCHEMA;
	o.clock = test_clock_read;
	o.clock_ctx = &f.clk;
	o.pg_issuer = "https://b";
	once_store *b;
	ASSERT_ST(once_open(&o, &b), ONCE_OK);
	ASSERT_ST(once_refresh_get(b, t.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_consume(b, t.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	once_refresh child = record("fam-a", NOW + 60);
	ASSERT_ST(once_refresh_rotate(b, t.key, ONCE_SECRET_LEN, c.key, ONCE_SECRET_LEN, &child, NULL,
	                              0, NULL), ONCE_NOT_FOUND);
	ASSERT_STR(sql_text(f.db, "SELECT consumed FROM " T_REFRESH " WHERE token_hash='%s'", t.key), "f");
	/* A claim that is not a string never matches. */
	ap_insert(f.db, u.key, "fam-n", 0, NULL, NOW + 60, "{\"" ISSUER_CLAIM "\": 5}");
	ASSERT_ST(once_refresh_get(f.s, u.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_consume(f.s, u.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_close(b), ONCE_OK);
	/* A store without an issuer reads both; an unbound family is absent
	 * for a store with one. */
	o.pg_issuer = NULL;
	once_store *none;
	ASSERT_ST(once_open(&o, &none), ONCE_OK);
	ASSERT_ST(once_refresh_get(none, t.key, ONCE_SECRET_LEN, NULL), ONCE_OK);
	struct tok w = tok("is", 4);
	once_refresh unbound = record("fam-unbound", NOW + 60);
	ASSERT_ST(once_refresh_insert(none, w.key, ONCE_SECRET_LEN, &unbound), ONCE_OK);
	ASSERT_STR(sql_text(f.db, "SELECT claims::text FROM " T_REFRESH " WHERE token_hash='%s'", w.key), "{}");
	ASSERT_ST(once_refresh_get(f.s, w.key, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_close(none), ONCE_OK);
	ASSERT_ST(once_refresh_consume(f.s, t.key, ONCE_SECRET_LEN, NULL), ONCE_OK);
	fx_close(&f);
}

/* ---- AttestoPhoenix's rows served here ---- */

static void test_ap_rows_served(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.issuer = "https://i", .secret = true, .grace = 60});
	struct tok p = tok("ap", 0), c = tok("ap", 1);
	ap_insert(f.db, p.key, "fam-ap", 0, NULL, NOW + 600,
	          "{\"" ISSUER_CLAIM "\": \"https://i\", \"nonce\": \"n-1\"}");
	once_refresh *out = NULL;
	ASSERT_ST(once_refresh_get(f.s, p.key, ONCE_SECRET_LEN, &out), ONCE_OK);
	ASSERT_STR(out->dpop_jkt, JKT);
	ASSERT_STR(out->acr, "urn:acr:1");
	ASSERT_EQ_INT(out->auth_time, 1899999000);
	ASSERT_EQ_INT(out->scope_count, 2);
	ASSERT_EQ_INT(out->resource_count, 0);
	ASSERT_CLAIMS(out, "{\"nonce\":\"n-1\",\"" ISSUER_CLAIM "\":\"https://i\"}");
	once_free(out);
	once_refresh child = record("fam-ap", NOW + 600);
	child.dpop_jkt = JKT;
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c.key, ONCE_SECRET_LEN, &child,
	                              c.token, strlen(c.token), &out), ONCE_OK);
	ASSERT_EQ_INT(out->auth_time, 1899999000);
	once_free(out);
	expect_successor(&f, &p, c.token);
	ASSERT_ST(once_refresh_consume(f.s, c.key, ONCE_SECRET_LEN, &out), ONCE_OK);
	ASSERT_EQ_INT(out->generation, 1);
	ASSERT_STR(out->parent_hash, p.key);
	once_free(out);
	fx_close(&f);
}

/* ---- races ---- */

struct racer {
	once_store *s;
	const struct tok *parent;
	struct tok child;
	const char *family;
	_Atomic int *go;
	once_status st;
};

static void *rotate_racer(void *arg)
{
	struct racer *r = arg;
	once_refresh child = record(r->family, NOW + 600);
	while (!atomic_load(r->go))
		;
	r->st = once_refresh_rotate(r->s, r->parent->key, ONCE_SECRET_LEN, r->child.key,
	                            ONCE_SECRET_LEN, &child, r->child.token, strlen(r->child.token), NULL);
	return NULL;
}

static void *revoke_racer(void *arg)
{
	struct racer *r = arg;
	while (!atomic_load(r->go))
		;
	r->st = once_refresh_revoke_family(r->s, r->family, strlen(r->family));
	return NULL;
}

/* R1, R3: 8 rotations of one parent, 1 OK and 7 SPENT, 2 rows. */
static void test_race_rotate_8(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60, .pool = 8});
	for (int round = 0; round < 5; round++) {
		char family[32];
		snprintf(family, sizeof family, "fam-race-%d", round);
		struct tok p = tok(family, 0);
		once_refresh r = record(family, NOW + 600);
		ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
		_Atomic int go = 0;
		struct racer rs[8];
		pthread_t th[8];
		for (int i = 0; i < 8; i++) {
			rs[i] = (struct racer){.s = f.s, .parent = &p, .child = tok(family, i + 1),
			                       .family = family, .go = &go};
			pthread_create(&th[i], NULL, rotate_racer, &rs[i]);
		}
		atomic_store(&go, 1);
		int ok = 0, spent = 0, winner = -1;
		for (int i = 0; i < 8; i++) {
			pthread_join(th[i], NULL);
			ok += rs[i].st == ONCE_OK;
			spent += rs[i].st == ONCE_SPENT;
			if (rs[i].st == ONCE_OK)
				winner = i;
		}
		ASSERT_EQ_INT(ok, 1);
		ASSERT_EQ_INT(spent, 7);
		ASSERT_EQ_U64(family_rows(&f, family), 2);
		expect_successor(&f, &p, rs[winner].child.token);
	}
	fx_close(&f);
}

/* R2: a revocation racing a rotation leaves no row. */
static void test_race_revoke_rotate(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.pool = 4});
	for (int round = 0; round < 20; round++) {
		char family[32];
		snprintf(family, sizeof family, "fam-rr-%d", round);
		struct tok p = tok(family, 0);
		once_refresh r = record(family, NOW + 600);
		ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
		_Atomic int go = 0;
		struct racer rot = {.s = f.s, .parent = &p, .child = tok(family, 1), .family = family, .go = &go};
		struct racer rev = {.s = f.s, .family = family, .go = &go};
		pthread_t a, b;
		pthread_create(&a, NULL, rotate_racer, &rot);
		pthread_create(&b, NULL, revoke_racer, &rev);
		atomic_store(&go, 1);
		pthread_join(a, NULL);
		pthread_join(b, NULL);
		ASSERT_ST(rev.st, ONCE_OK);
		ASSERT(rot.st == ONCE_OK || rot.st == ONCE_NOT_FOUND);
		ASSERT_EQ_U64(family_rows(&f, family), 0);
		ASSERT(tombstoned(&f, family));
	}
	fx_close(&f);
}

/* AttestoPhoenix's rotate/4, statement by statement, on its own
 * connection.  Returns 1 when it rotated, 0 on reuse (parent consumed). */
struct ap_racer {
	const struct tok *parent;
	struct tok child;
	const char *family;
	_Atomic int *go;
	int rotated;
};

static void *ap_rotate_racer(void *arg)
{
	struct ap_racer *a = arg;
	PGconn *c = db();
	while (!atomic_load(a->go))
		;
	sql(c, "BEGIN");
	const char *fam = sql_text(c, "SELECT family_id FROM " T_REFRESH " WHERE token_hash='%s'", a->parent->key);
	char family[64];
	snprintf(family, sizeof family, "%s", fam);
	sql(c, "SELECT pg_advisory_xact_lock(1096045126::int4, hashtext('%s'))", family);
	const char *consumed = sql_text(c, "SELECT consumed FROM " T_REFRESH " WHERE token_hash='%s' FOR UPDATE",
	                                a->parent->key);
	if (strcmp(consumed, "t") == 0) {
		sql(c, "COMMIT");
		a->rotated = 0;
	} else {
		ASSERT_STR(sql_text(c, "SELECT TRUE FROM " T_REFRESH " WHERE family_id='%s' AND generation=1", family), "NONE");
		sql(c, "UPDATE " T_REFRESH " SET consumed = true, consumed_at = to_timestamp(%d) AT TIME ZONE 'UTC',"
		       " successor = '{\"v\":1,\"retry_until\":%d,\"recoverable\":false}' WHERE token_hash = '%s'",
		    NOW, NOW, a->parent->key);
		sql(c, "INSERT INTO " T_REFRESH " (id, token_hash, family_id, generation, client_id, subject, scope,"
		       " resource, claims, expires_at, parent_hash, inserted_at) VALUES (gen_random_uuid(), '%s', '%s',"
		       " 1, 'client-1', 'user-1', ARRAY['openid']::varchar[], ARRAY[]::varchar[], '{}',"
		       " to_timestamp(%d) AT TIME ZONE 'UTC', '%s', to_timestamp(%d) AT TIME ZONE 'UTC')",
		    a->child.key, family, NOW + 600, a->parent->key, NOW);
		sql(c, "COMMIT");
		a->rotated = 1;
	}
	PQfinish(c);
	return NULL;
}

static void test_race_ap_rotate(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.pool = 2});
	for (int round = 0; round < 20; round++) {
		char family[32];
		snprintf(family, sizeof family, "fam-ap-%d", round);
		struct tok p = tok(family, 0);
		once_refresh r = record(family, NOW + 600);
		ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
		_Atomic int go = 0;
		struct racer mine = {.s = f.s, .parent = &p, .child = tok(family, 1), .family = family, .go = &go};
		struct ap_racer theirs = {.parent = &p, .child = tok(family, 2), .family = family, .go = &go};
		pthread_t a, b;
		pthread_create(&a, NULL, rotate_racer, &mine);
		pthread_create(&b, NULL, ap_rotate_racer, &theirs);
		atomic_store(&go, 1);
		pthread_join(a, NULL);
		pthread_join(b, NULL);
		/* Exactly one rotated; two rows; the family is consistent. */
		ASSERT_EQ_INT((mine.st == ONCE_OK) + theirs.rotated, 1);
		ASSERT(mine.st == ONCE_OK || mine.st == ONCE_SPENT);
		ASSERT_EQ_U64(family_rows(&f, family), 2);
		ASSERT_EQ_INT(sql_int(f.db, "SELECT count(*) FROM " T_REFRESH " WHERE family_id='%s' AND"
		                      " generation = 1 AND parent_hash = '%s' AND NOT consumed", family, p.key), 1);
		ASSERT_STR(sql_text(f.db, "SELECT consumed FROM " T_REFRESH " WHERE token_hash='%s'", p.key), "t");
	}
	fx_close(&f);
}

/* ---- the sweeper's redaction (ATTESTO-PG 2.2.6) ---- */

static void test_sweep_redact(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.grace = 60});
	/* Rows, each consumed at NOW - 100, with a successor value. */
	static const struct {
		const char *successor;
		int64_t exp;
		const char *want; /* the successor after redaction */
	} cases[] = {
		/* v2 past retry_until -> tombstone with LEAST(old, P) */
		{"{\"v\":2,\"ciphertext\":\"XCP.x\",\"retry_until\":1899999990,\"child_hash\":\"h\"}", NOW + 600,
		 "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999990}"},
		/* v2 still live: kept */
		{"{\"v\":2,\"ciphertext\":\"XCP.x\",\"retry_until\":1900000010,\"child_hash\":\"h\"}", NOW + 600,
		 "{\"v\": 2, \"child_hash\": \"h\", \"ciphertext\": \"XCP.x\", \"retry_until\": 1900000010}"},
		/* v2 with a huge retry_until, parent expired: P */
		{"{\"v\":2,\"ciphertext\":\"XCP.x\",\"retry_until\":9223372036854775808,\"child_hash\":\"h\"}", NOW,
		 "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999999}"},
		/* v2 with -1 */
		{"{\"v\":2,\"ciphertext\":\"XCP.x\",\"retry_until\":-1,\"child_hash\":\"h\"}", NOW + 600,
		 "{\"v\": 1, \"recoverable\": false, \"retry_until\": -1}"},
		/* malformed at once: a string, 1.5, null retry_until, a plaintext map, null */
		{"{\"v\":2,\"ciphertext\":\"XCP.x\",\"retry_until\":\"1900000010\",\"child_hash\":\"h\"}", NOW + 600,
		 "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999960}"},
		{"{\"v\":2,\"ciphertext\":\"XCP.x\",\"retry_until\":1.5,\"child_hash\":\"h\"}", NOW + 600,
		 "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999960}"},
		{"{\"v\":2,\"ciphertext\":\"XCP.x\",\"retry_until\":null,\"child_hash\":\"h\"}", NOW + 600,
		 "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999960}"},
		{"{\"token\":\"plain\"}", NOW + 600, "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999960}"},
		{"null", NOW + 600, "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999960}"},
		{"\"text\"", NOW + 600, "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999960}"},
		/* v1: consumed_at + 60 = NOW - 40 < NOW: redacted */
		{"{\"v\":1,\"ciphertext\":\"XCP.x\"}", NOW + 600,
		 "{\"v\": 1, \"recoverable\": false, \"retry_until\": 1899999960}"},
		/* the exact tombstone is left alone */
		{"{\"v\":1,\"retry_until\":5,\"recoverable\":false}", NOW + 600,
		 "{\"v\": 1, \"recoverable\": false, \"retry_until\": 5}"},
	};
	size_t n = sizeof cases / sizeof cases[0];
	for (size_t i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof key, "sweep-%zu", i);
		PGresult *res;
		const char *params[] = {key, cases[i].successor};
		char q[512];
		snprintf(q, sizeof q,
		         "INSERT INTO " T_REFRESH " (id, token_hash, family_id, subject, consumed, consumed_at,"
		         " successor, expires_at, inserted_at) VALUES (gen_random_uuid(), $1::varchar, 'fam-sw-' || $1::varchar,"
		         " 'u', true, to_timestamp(%d) AT TIME ZONE 'UTC', $2::jsonb,"
		         " to_timestamp(%lld) AT TIME ZONE 'UTC', to_timestamp(%d) AT TIME ZONE 'UTC')",
		         NOW - 100, (long long)cases[i].exp, NOW - 100);
		res = PQexecParams(f.db, q, 2, NULL, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			FAIL_AT("%s", PQerrorMessage(f.db));
		PQclear(res);
	}
	/* A v1 still within its derived deadline stays. */
	sql(f.db, "INSERT INTO " T_REFRESH " (id, token_hash, family_id, subject, consumed, consumed_at,"
	          " successor, expires_at, inserted_at) VALUES (gen_random_uuid(), 'sweep-v1-live', 'fam-v1l',"
	          " 'u', true, to_timestamp(%d) AT TIME ZONE 'UTC', '{\"v\":1,\"ciphertext\":\"XCP.y\"}',"
	          " to_timestamp(%d) AT TIME ZONE 'UTC', to_timestamp(%d) AT TIME ZONE 'UTC')",
	    NOW - 10, NOW + 600, NOW - 10);
	struct once__pg *p = once__pg_of(f.s);
	struct once__pg_conn *c;
	ASSERT_ST(once__pg_acquire(p, &c), ONCE_OK);
	ASSERT_ST(once__pg_sweep_redact(p, c, NOW), ONCE_OK);
	ASSERT_ST(once__pg_sweep_redact(p, c, NOW), ONCE_OK); /* idempotent */
	once__pg_release(p, c);
	for (size_t i = 0; i < n; i++) {
		const char *got = sql_text(f.db, "SELECT successor::text FROM " T_REFRESH " WHERE token_hash='sweep-%zu'", i);
		if (strcmp(got, cases[i].want) != 0)
			FAIL_AT("case %zu: %s, want %s", i, got, cases[i].want);
	}
	ASSERT_STR(sql_text(f.db, "SELECT successor->>'ciphertext' FROM " T_REFRESH " WHERE token_hash='sweep-v1-live'"),
	           "XCP.y");
	fx_close(&f);
}

/* A successor to keep, grace > 0 and no secret to seal it with:
 * AttestoPhoenix's retry_state_unavailable, the embedded engine's NO_KEY,
 * and nothing changed (the parent unconsumed, no child). */
static void test_rotate_no_secret_with_grace_is_no_key(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.grace = 60});
	struct tok p = tok("nk", 0), c = tok("nk", 1);
	once_refresh r = record("fam-nk", NOW + 60);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	once_refresh child = record("fam-nk", NOW + 120);
	once_refresh *out = NULL;
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c.key, ONCE_SECRET_LEN, &child,
	                              c.token, strlen(c.token), &out), ONCE_NO_KEY);
	ASSERT(out == NULL);
	ASSERT_EQ_U64(family_rows(&f, "fam-nk"), 1);
	ASSERT_STR(sql_text(f.db, "SELECT consumed::text FROM " T_REFRESH " WHERE token_hash='%s'", p.key),
	           "false");
	/* Without a payload there is nothing to seal: the strict tombstone. */
	ASSERT_ST(once_refresh_rotate(f.s, p.key, ONCE_SECRET_LEN, c.key, ONCE_SECRET_LEN, &child,
	                              NULL, 0, &out), ONCE_OK);
	once_free(out);
	ASSERT_EQ_U64(family_rows(&f, "fam-nk"), 2);
	fx_close(&f);
}

/*
 * A v1 envelope, as AttestoPhoenix 2.x wrote it (ATTESTO-PG 2.2.4-2.2.5):
 * {"v":1,"ciphertext":"XCP..."} sealed with the 36-byte ASCII AAD, its
 * payload without retry_until, and a child whose parent_hash is NULL.  It
 * is read (3.x reads v1) after the lineage check; moved to a row of
 * another family, where that check fails, it yields nothing (v1 has no
 * binding of its own).
 */
static char *v1_envelope(const struct once__pg_successor *succ)
{
	unsigned char *pt;
	size_t ptlen;
	struct once__pg_successor v1 = *succ;
	v1.has_retry_until = false;
	ASSERT_ST(once__pg_successor_encode(&v1, &pt, &ptlen), ONCE_OK);
	unsigned char key[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, (const unsigned char *)"refresh-successor:enc:", 22);
	crypto_hash_sha256_update(&h, (const unsigned char *)SECRET, strlen(SECRET));
	crypto_hash_sha256_final(&h, key);
	static const char aad[] = "attesto_phoenix:refresh_successor:v1";
	size_t wire_len = 24 + 16 + ptlen;
	unsigned char *wire = malloc(wire_len);
	ASSERT(wire != NULL);
	randombytes_buf(wire, 24);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(wire + 40, wire + 24, NULL, pt, ptlen,
	                                                    (const unsigned char *)aad, 36, NULL,
	                                                    wire, key);
	size_t b64_len = sodium_base64_ENCODED_LEN(wire_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *b64 = malloc(b64_len);
	ASSERT(b64 != NULL);
	sodium_bin2base64(b64, b64_len, wire, wire_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *json = malloc(b64_len + 64);
	ASSERT(json != NULL);
	snprintf(json, b64_len + 64, "{\"v\":1,\"ciphertext\":\"XCP.%s\"}", b64);
	free(b64);
	free(wire);
	free(pt);
	return json;
}

static void test_successor_v1_read_after_lineage_check(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60});
	struct tok p = tok("v1", 0), c = tok("v1", 1);
	once_refresh r = record("fam-v1", NOW + 3600);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	rotate_ok(&f, &p, &c, "fam-v1", NOW + 3600);
	/* The payload as this engine sealed it (v2), to write it again as v1. */
	const char *v2 = sql_text(f.db, "SELECT successor::text FROM " T_REFRESH " WHERE token_hash='%s'",
	                          p.key);
	struct once__pg_successor_row row = {.parent_hash = p.key, .family_id = "fam-v1",
	                                     .parent_generation = 0};
	struct once__pg_successor succ;
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), &row, v2, strlen(v2), &succ),
	              ONCE_PG_OPEN_V2);
	char *v1 = v1_envelope(&succ);
	once__pg_successor_free(&succ);
	sql(f.db, "UPDATE " T_REFRESH " SET successor = '%s'::jsonb WHERE token_hash = '%s'", v1, p.key);
	sql(f.db, "UPDATE " T_REFRESH " SET parent_hash = NULL WHERE token_hash = '%s'", c.key);
	ASSERT_STR(sql_text(f.db, "SELECT successor->>'v' FROM " T_REFRESH " WHERE token_hash='%s'", p.key),
	           "1");
	expect_successor(&f, &p, c.token);

	/* The same v1 envelope on a consumed token of another family: the
	 * child it names is not that family's next generation. */
	struct tok q = tok("v1other", 0);
	once_refresh other = record("fam-v1-other", NOW + 3600);
	ASSERT_ST(once_refresh_insert(f.s, q.key, ONCE_SECRET_LEN, &other), ONCE_OK);
	sql(f.db, "UPDATE " T_REFRESH " SET consumed = true, consumed_at = '2030-03-17 17:46:40', "
	    "successor = '%s'::jsonb WHERE token_hash = '%s'", v1, q.key);
	expect_successor(&f, &q, NULL);
	free(v1);
	fx_close(&f);
}

/*
 * A successor sealed the way an Elixir node seals it (ATTESTO-PG 2.2.5):
 * the payload is Erlang's own term_to_binary of a map with ATOM keys (as
 * Elixir writes, in OTP 26's SMALL_ATOM_UTF8 form), encrypted under the
 * key derived from the shared secret with the v2 AAD, stored as the v2
 * envelope.  A C node serves it: the retry gets the child token.
 */
static char *erlang_payload_hex(const struct tok *c)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
	         "erl -noshell -eval 'T = #{token => <<\"%s\">>, generation => 1, "
	         "retry_until => %d, context => #{subject => <<\"user-1\">>, "
	         "scope => [<<\"openid\">>, <<\"offline_access\">>, <<\"openid\">>], "
	         "resource => [<<\"https://api.example\">>], client_id => <<\"client-1\">>, "
	         "dpop_jkt => nil, acr => nil, auth_time => nil, claims => #{}}}, "
	         "io:format(\"~s~n\", [binary:encode_hex(term_to_binary(T, [{minor_version, 2}]))]), "
	         "halt(0).' 2>&1",
	         c->token, NOW + 60);
	fflush(NULL);
	if (system("command -v erl >/dev/null 2>&1") != 0)
		FAIL_AT("`erl` not found: install erlang-base (tests/run.sh does)");
	FILE *f = popen(cmd, "r");
	ASSERT(f != NULL);
	static char line[8192];
	ASSERT(fgets(line, sizeof line, f) != NULL);
	ASSERT(pclose(f) == 0);
	line[strcspn(line, "\n")] = '\0';
	return line;
}

static void test_successor_sealed_by_an_elixir_node_is_served(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60});
	struct tok p = tok("ex", 0), c = tok("ex", 1);
	once_refresh r = record("fam-ex", NOW + 3600);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	rotate_ok(&f, &p, &c, "fam-ex", NOW + 3600); /* the child row, as any node writes it */

	const char *hex = erlang_payload_hex(&c);
	size_t ptlen = strlen(hex) / 2;
	unsigned char *pt = malloc(ptlen);
	ASSERT(pt != NULL);
	ASSERT(sodium_hex2bin(pt, ptlen, hex, strlen(hex), NULL, NULL, NULL) == 0);
	ASSERT_EQ_INT(pt[0], 131); /* the term format's version byte */

	struct once__pg_successor_row row = {.parent_hash = p.key, .family_id = "fam-ex",
	                                     .parent_generation = 0};
	unsigned char *aad;
	size_t aadlen;
	ASSERT_ST(once__pg_successor_aad(&row, c.key, NOW + 60, &aad, &aadlen), ONCE_OK);
	unsigned char key[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state h;
	crypto_hash_sha256_init(&h);
	crypto_hash_sha256_update(&h, (const unsigned char *)"refresh-successor:enc:", 22);
	crypto_hash_sha256_update(&h, (const unsigned char *)SECRET, strlen(SECRET));
	crypto_hash_sha256_final(&h, key);
	size_t wire_len = 24 + 16 + ptlen; /* iv || tag || ciphertext */
	unsigned char *wire = malloc(wire_len);
	ASSERT(wire != NULL);
	randombytes_buf(wire, 24);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(wire + 40, wire + 24, NULL, pt, ptlen, aad,
	                                                    aadlen, NULL, wire, key);
	size_t b64_len = sodium_base64_ENCODED_LEN(wire_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *b64 = malloc(b64_len);
	ASSERT(b64 != NULL);
	sodium_bin2base64(b64, b64_len, wire, wire_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sql(f.db, "UPDATE " T_REFRESH " SET successor = jsonb_build_object('v', 2, 'ciphertext', "
	    "'XCP.%s', 'retry_until', %d, 'child_hash', '%s') WHERE token_hash = '%s'",
	    b64, NOW + 60, c.key, p.key);
	expect_successor(&f, &p, c.token);
	free(b64);
	free(wire);
	free(aad);
	free(pt);
	fx_close(&f);
}

TESTS(TEST(test_successor_sealed_by_an_elixir_node_is_served), TEST(test_successor_v1_read_after_lineage_check), TEST(test_rotate_no_secret_with_grace_is_no_key), TEST(test_insert_get_roundtrip), TEST(test_insert_exists), TEST(test_insert_invalid),
      TEST(test_revoke_sticky), TEST(test_consume), TEST(test_rotate_statuses),
      TEST(test_rotate_statuses_2), TEST(test_successor_v2), TEST(test_tamper_ciphertext),
      TEST(test_tamper_retry_until), TEST(test_tamper_child_hash), TEST(test_tamper_parent_hash),
      TEST(test_tamper_child_data), TEST(test_tamper_child_gone), TEST(test_remember),
      TEST(test_issuer_binding), TEST(test_ap_rows_served), TEST(test_race_rotate_8),
      TEST(test_race_revoke_rotate), TEST(test_race_ap_rotate), TEST(test_sweep_redact));
TEST_MAIN()
