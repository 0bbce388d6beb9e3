/*
 * tests/pg/pg_core.c - the PostgreSQL engine's pool, codes, access tokens,
 * nonces, replays and sweep against a real server (suite pg; the server
 * is ONCE_TEST_POSTGRES, see tests/pg/cluster.sh).
 *
 * Each test makes the schema once_test_pg_core afresh with the layout's
 * DDL (once__pg_ddl) and fills a struct once__pg by hand, calling the
 * engine's functions directly; the checks read the rows back with SQL, as
 * an AttestoPhoenix node would see them.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../harness.h"
#include "internal.h"
#include "layout.h"
#include "pg.h"

#define SCHEMA "once_test_pg_core"
#define T0 INT64_C(1767225600) /* 2026-01-01 00:00:00 UTC */
#define HASH "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
#define JKT "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

/* The store clock and call counters live in pg/store.c; these stand in
 * for a library built without it (a linked store.o wins). */
__attribute__((weak)) int64_t once__pg_now(const struct once__pg *p)
{
	int64_t t = p->opt.clock(p->opt.clock_ctx);
	return t < ONCE_TIME_MIN ? ONCE_TIME_MIN : t > ONCE_TIME_MAX ? ONCE_TIME_MAX : t;
}

__attribute__((weak)) once_status once__pg_count(struct once__pg *p, once_op op, once_status st)
{
	atomic_fetch_add(&p->ops[op][st], 1);
	return st;
}

/* The refresh redaction is pg/refresh.c's; without it the sweep's first
 * step does nothing. */
__attribute__((weak)) once_status once__pg_sweep_redact(struct once__pg *p, struct once__pg_conn *c,
                                                        int64_t now)
{
	(void)p;
	(void)c;
	(void)now;
	return ONCE_OK;
}

/* ---- fixture ---- */

static struct test_clock clk = {T0};
static PGconn *admin; /* the tests' own connection, for checks */

static const char *conninfo(void)
{
	const char *c = getenv("ONCE_TEST_POSTGRES");
	if (c == NULL)
		FAIL_AT("ONCE_TEST_POSTGRES is not set (tests/pg/cluster.sh starts a server)");
	return c;
}

static void sql(const char *command)
{
	PGresult *r = PQexec(admin, command);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		FAIL_AT("%s: %s", command, PQerrorMessage(admin));
	PQclear(r);
}

/* The first column of the first row of a query, as text ("" for NULL,
 * "(none)" for no row); a static buffer. */
static const char *sql_text(const char *query)
{
	static char buf[4096];
	PGresult *r = PQexec(admin, query);
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		FAIL_AT("%s: %s", query, PQerrorMessage(admin));
	snprintf(buf, sizeof buf, "%s", PQntuples(r) == 0 ? "(none)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return buf;
}

static long long sql_int(const char *query)
{
	return atoll(sql_text(query));
}

static void fresh_schema(void)
{
	admin = PQconnectdb(conninfo());
	if (PQstatus(admin) != CONNECTION_OK)
		FAIL_AT("cannot connect: %s", PQerrorMessage(admin));
	sql("SET client_min_messages = warning");
	sql("DROP SCHEMA IF EXISTS " SCHEMA " CASCADE");
	char *ddl;
	ASSERT_ST(once__pg_ddl(SCHEMA, "", false, &ddl), ONCE_OK);
	sql(ddl);
	free(ddl);
}

static struct once__pg *store_with(uint32_t pool_size, uint32_t timeout_ms)
{
	struct once__pg *p = calloc(1, sizeof *p);
	ASSERT(p != NULL);
	once_options_init(&p->opt);
	p->conninfo = strdup(conninfo());
	p->schema = strdup(SCHEMA);
	p->table_prefix = strdup("");
	p->opt.postgres = p->conninfo;
	p->opt.pg_schema = p->schema;
	p->opt.pg_pool_size = pool_size;
	p->opt.pg_statement_timeout_ms = timeout_ms;
	p->opt.clock = test_clock_read;
	p->opt.clock_ctx = &clk;
	for (int t = 0; t < ONCE_PG_TABLE_COUNT; t++)
		p->table[t] = once__pg_table_name(SCHEMA, "", (enum once__pg_table)t);
	return p;
}

static void store_free(struct once__pg *p)
{
	once__pg_pool_close(p);
	for (int t = 0; t < ONCE_PG_TABLE_COUNT; t++)
		free(p->table[t]);
	free(p->conninfo);
	free(p->schema);
	free(p->table_prefix);
	free(p);
}

static struct once__pg *open_store(uint32_t pool_size, uint32_t timeout_ms)
{
	fresh_schema();
	struct once__pg *p = store_with(pool_size, timeout_ms);
	ASSERT_ST(once__pg_pool_open(p), ONCE_OK);
	return p;
}

static void finish(struct once__pg *p)
{
	store_free(p);
	PQfinish(admin);
}

#define S(p) ((once_store *)(void *)(p))
#define CODES SCHEMA ".attesto_authorization_codes"
#define NONCES SCHEMA ".dpop_nonces"
#define REPLAYS SCHEMA ".dpop_replays"
#define REFRESH SCHEMA ".attesto_refresh_tokens"

static const char *const scopes[] = {"openid", "a\"quote", "back\\slash", "comma,{brace}",
                                     "caf\xc3\xa9"};
static const char *const resources[] = {"https://api.example/"};

static once_code sample_code(void)
{
	return (once_code){
		.client_id = "client-1",
		.subject = "alice",
		.redirect_uri = "https://app.example/cb",
		.scope = scopes,
		.scope_count = 5,
		.resource = resources,
		.resource_count = 1,
		.code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		.dpop_jkt = JKT,
		.nonce = "n-0S6_WzA2Mj",
		.claims = "{\"acr\":\"urn:mace:incommon:iap:silver\",\"n\":[1,2]}",
		.claims_len = strlen("{\"acr\":\"urn:mace:incommon:iap:silver\",\"n\":[1,2]}"),
		.family_id = "fam-1",
		.expires_at = T0 + 60,
	};
}

static once_status put(struct once__pg *p, const char *hash, const once_code *c)
{
	return once__pg_code_put(S(p), hash, strlen(hash), c, NULL);
}

static once_status take(struct once__pg *p, const char *hash, once_code **out,
                        once_code_meta **meta)
{
	return once__pg_code_take(S(p), hash, strlen(hash), out, meta, NULL);
}

/* ---- codes ---- */

static void assert_sample(const once_code *c)
{
	ASSERT_STR(c->client_id, "client-1");
	ASSERT_STR(c->subject, "alice");
	ASSERT_STR(c->redirect_uri, "https://app.example/cb");
	ASSERT_EQ_INT(c->scope_count, 5);
	for (size_t i = 0; i < 5; i++)
		ASSERT_STR(c->scope[i], scopes[i]);
	ASSERT_EQ_INT(c->resource_count, 1);
	ASSERT_STR(c->resource[0], resources[0]);
	ASSERT_STR(c->code_challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
	ASSERT_STR(c->code_challenge_method, "S256"); /* defaulted, as the embedded engine does */
	ASSERT_STR(c->dpop_jkt, JKT);
	ASSERT(c->x5t_s256 == NULL);
	ASSERT_STR(c->nonce, "n-0S6_WzA2Mj");
	/* jsonb's key order, compacted; the nonce member returned apart. */
	ASSERT_EQ_INT(c->claims_len, strlen("{\"n\":[1,2],\"acr\":\"urn:mace:incommon:iap:silver\"}"));
	ASSERT(memcmp(c->claims, "{\"n\":[1,2],\"acr\":\"urn:mace:incommon:iap:silver\"}",
	              c->claims_len) == 0);
	ASSERT_STR(c->family_id, "fam-1");
	ASSERT_EQ_INT(c->expires_at, T0 + 60);
	ASSERT_EQ_INT(c->inserted_at, T0);
}

static void codes_put_get_take_finalize(void)
{
	struct once__pg *p = open_store(2, 5000);
	once_code c = sample_code();
	ASSERT_ST(put(p, HASH, &c), ONCE_OK);
	once_code other = sample_code();
	other.subject = "mallory";
	ASSERT_ST(put(p, HASH, &other), ONCE_EXISTS); /* no upsert */
	ASSERT_STR(sql_text("SELECT subject FROM " CODES), "alice");

	once_code *got = NULL;
	ASSERT_ST(once__pg_code_get(S(p), HASH, strlen(HASH), &got), ONCE_OK);
	assert_sample(got);
	ASSERT_EQ_INT(got->consumed_at, 0);
	once_free(got);

	/* Not claimed yet: finalize has nothing to finalize. */
	ASSERT_ST(once__pg_code_finalize(S(p), HASH, strlen(HASH), NULL), ONCE_NOT_FOUND);

	atomic_store(&clk.now, T0 + 5);
	once_code *won = NULL;
	once_code_meta *meta = NULL;
	ASSERT_ST(take(p, HASH, &won, &meta), ONCE_OK);
	assert_sample(won);
	ASSERT_EQ_INT(won->consumed_at, T0 + 5);
	ASSERT(!won->consumed_success);
	ASSERT(meta == NULL);
	once_free(won);

	/* Claimed, not finalized: not reuse evidence. */
	ASSERT_ST(take(p, HASH, &won, &meta), ONCE_NOT_FOUND);
	ASSERT_ST(once__pg_code_get(S(p), HASH, strlen(HASH), &got), ONCE_NOT_FOUND);
	ASSERT_ST(once__pg_code_finalize(S(p), HASH, strlen(HASH), NULL), ONCE_OK);
	ASSERT_ST(once__pg_code_finalize(S(p), HASH, strlen(HASH), NULL), ONCE_OK); /* idempotent */
	ASSERT_ST(take(p, HASH, &won, &meta), ONCE_SPENT);
	ASSERT(meta != NULL);
	ASSERT_STR(meta->family_id, "fam-1");
	ASSERT_STR(meta->subject, "alice");
	once_free(meta);
	ASSERT_ST(take(p, HASH, NULL, NULL), ONCE_SPENT);
	ASSERT_STR(sql_text("SELECT family_id FROM " CODES), "fam-1"); /* finalize keeps it */

	/* An expired code is still spent by its first presentation. */
	once_code old = sample_code();
	old.expires_at = T0 - 100;
	ASSERT_ST(put(p, "expired-hash", &old), ONCE_OK);
	ASSERT_ST(take(p, "expired-hash", NULL, NULL), ONCE_OK);

	ASSERT_ST(take(p, "unknown", &won, &meta), ONCE_NOT_FOUND);
	ASSERT_ST(once__pg_code_finalize(S(p), "unknown", 7, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once__pg_code_get(S(p), NULL, 3, &got), ONCE_INVALID);
	ASSERT_ST(once__pg_code_get(S(p), HASH, 0, &got), ONCE_INVALID);
	/* Keys no row can hold are simply unknown to reads. */
	ASSERT_ST(once__pg_code_get(S(p), "\xff\xfe", 2, &got), ONCE_NOT_FOUND);
	ASSERT_ST(take(p, "\xc3", NULL, NULL), ONCE_NOT_FOUND);

	ASSERT_EQ_U64(p->ops[ONCE_OP_CODE_PUT][ONCE_OK], 2);
	ASSERT_EQ_U64(p->ops[ONCE_OP_CODE_PUT][ONCE_EXISTS], 1);
	ASSERT_EQ_U64(p->ops[ONCE_OP_CODE_TAKE][ONCE_SPENT], 2);
	finish(p);
}

static void codes_rows_as_attestophoenix_writes_them(void)
{
	struct once__pg *p = open_store(1, 5000);
	once_code c = sample_code();
	ASSERT_ST(put(p, HASH, &c), ONCE_OK);
	once_code bare = {.client_id = "c", .subject = "s", .redirect_uri = "r", .expires_at = T0 + 1};
	ASSERT_ST(put(p, "bare", &bare), ONCE_OK);

	ASSERT_STR(sql_text("SELECT nonce IS NULL FROM " CODES " WHERE code_hash = '" HASH "'"), "t");
	ASSERT_STR(sql_text("SELECT claims->>'nonce' FROM " CODES " WHERE code_hash = '" HASH "'"),
	           "n-0S6_WzA2Mj");
	ASSERT_STR(sql_text("SELECT cnf::text FROM " CODES " WHERE code_hash = '" HASH "'"),
	           "{\"jkt\": \"" JKT "\"}");
	ASSERT_STR(sql_text("SELECT code_challenge_method FROM " CODES " WHERE code_hash = '" HASH "'"),
	           "S256");
	ASSERT_STR(sql_text("SELECT scope[2] || '|' || scope[3] || '|' || array_length(scope, 1) FROM " CODES
	                    " WHERE code_hash = '" HASH "'"),
	           "a\"quote|back\\slash|5");
	/* Whole UTC seconds from the store clock. */
	ASSERT_STR(sql_text("SELECT expires_at::text || ' ' || inserted_at::text FROM " CODES
	                    " WHERE code_hash = '" HASH "'"),
	           "2026-01-01 00:01:00 2026-01-01 00:00:00");
	ASSERT_STR(sql_text("SELECT consumed_success::text || (consumed_at IS NULL)::text FROM " CODES
	                    " WHERE code_hash = '" HASH "'"),
	           "falsetrue");
	/* Without a challenge, binding, nonce or claims. */
	ASSERT_STR(sql_text("SELECT (code_challenge_method IS NULL)::text || (cnf IS NULL)::text || "
	                    "claims::text || scope::text FROM " CODES " WHERE code_hash = 'bare'"),
	           "truetrue{}{}");
	once_code *got;
	ASSERT_ST(once__pg_code_get(S(p), "bare", 4, &got), ONCE_OK);
	ASSERT(got->claims == NULL && got->claims_len == 0 && got->nonce == NULL);
	ASSERT(got->code_challenge_method == NULL && got->dpop_jkt == NULL);
	ASSERT_EQ_INT(got->scope_count, 0);
	once_free(got);

	/* "Never": a saturated expiry reads back as ONCE_TIME_MAX. */
	bare.expires_at = ONCE_TIME_MAX;
	ASSERT_ST(put(p, "never", &bare), ONCE_OK);
	ASSERT_STR(sql_text("SELECT expires_at::text FROM " CODES " WHERE code_hash = 'never'"),
	           "9999-12-31 23:59:59");
	ASSERT_ST(once__pg_code_get(S(p), "never", 5, &got), ONCE_OK);
	ASSERT_EQ_INT(got->expires_at, ONCE_TIME_MAX);
	once_free(got);

	atomic_store(&clk.now, T0 + 7);
	ASSERT_ST(take(p, HASH, NULL, NULL), ONCE_OK);
	ASSERT_STR(sql_text("SELECT consumed_at::text FROM " CODES " WHERE code_hash = '" HASH "'"),
	           "2026-01-01 00:00:07");
	finish(p);
}

static void codes_bad_input_writes_nothing(void)
{
	struct once__pg *p = open_store(1, 5000);
	char long_text[300];
	memset(long_text, 'x', 256);
	long_text[256] = '\0';
	const char *long_list[] = {"openid", long_text};
	const char *null_inside[] = {"a", "b", "c", "d", "e", NULL};
	char long_hash[90];
	memset(long_hash, 'h', 89);
	long_hash[89] = '\0';

	for (int i = 0;; i++) {
		once_code c = sample_code();
		const char *hash = HASH;
		switch (i) {
		case 0: c.client_id = NULL; break;
		case 1: c.subject = ""; break;
		case 2: c.redirect_uri = NULL; break;
		case 3: c.code_challenge_method = "plain"; break;
		case 4: c.code_challenge = NULL; c.code_challenge_method = "S256"; break; /* a method without a challenge */
		case 5: c.expires_at = 0; break;
		case 6: c.expires_at = ONCE_TIME_MAX + 1; break;
		case 7: c.consumed_at = T0; break;
		case 8: c.consumed_success = true; break;
		case 9: c.x5t_s256 = "x5t"; break; /* no column for it */
		case 10: c.dpop_jkt = "short"; break;
		case 11: c.dpop_jkt = JKT "A"; break;
		case 12: c.scope = long_list; c.scope_count = 2; break;
		case 13: c.client_id = long_text; break;
		case 14: c.family_id = long_text; break;
		case 15: c.code_challenge = long_text; break;
		case 16: hash = long_hash; break;
		case 17: hash = "bad\xff"; break;
		case 18: c.claims = "[1]"; c.claims_len = 3; break;
		case 19: c.claims = "{\"f\":1.5}"; c.claims_len = 9; break;
		case 20: c.claims = "{\"a\":1,\"a\":2}"; c.claims_len = 13; break;
		case 21: c.claims = "not json"; c.claims_len = 8; break;
		case 22: c.claims = NULL; c.claims_len = 4; break;
		case 23: c.subject = "bad\xc3"; break;
		case 24: c.redirect_uri = "bad\xed\xa0\x80"; break;
		case 25: c.nonce = "\xff"; break;
		case 26: c.scope = NULL; c.scope_count = 1; break;
		case 27: c.scope = null_inside; c.scope_count = 6; break;
		case 28: hash = ""; break;
		default: goto done;
		}
		once_status st = once__pg_code_put(S(p), hash, strlen(hash), &c, NULL);
		if (st != ONCE_INVALID)
			FAIL_AT("case %d: expected INVALID, got %s", i, once_status_name(st));
	}
done:
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " CODES), 0);
	/* The limits themselves are allowed: 255 characters, 88 for the hash. */
	long_text[255] = '\0';
	long_hash[88] = '\0';
	once_code c = sample_code();
	c.client_id = long_text;
	ASSERT_ST(put(p, long_hash, &c), ONCE_OK);
	/* A record over max_record_len, as in the embedded engine. */
	p->opt.max_record_len = 256;
	c = sample_code();
	ASSERT_ST(put(p, "small-limit", &c), ONCE_INVALID);
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " CODES), 1);
	finish(p);
}

static void codes_legacy_nonce_column_wins(void)
{
	struct once__pg *p = open_store(1, 5000);
	sql("INSERT INTO " CODES " (code_hash, client_id, subject, redirect_uri, nonce, claims, "
	    "expires_at, inserted_at) VALUES ('legacy', 'c', 's', 'r', 'column-nonce', "
	    "'{\"nonce\": \"claims-nonce\", \"x\": 1}', '2026-01-01 00:01:00', '2026-01-01 00:00:00')");
	sql("INSERT INTO " CODES " (code_hash, client_id, subject, redirect_uri, claims, "
	    "expires_at, inserted_at) VALUES ('numeric', 'c', 's', 'r', '{\"nonce\": 5}', "
	    "'2026-01-01 00:01:00', '2026-01-01 00:00:00')");
	once_code *got;
	ASSERT_ST(once__pg_code_get(S(p), "legacy", 6, &got), ONCE_OK);
	ASSERT_STR(got->nonce, "column-nonce");
	ASSERT_EQ_INT(got->claims_len, strlen("{\"x\":1}"));
	once_free(got);
	/* A nonce member that is not a string is not a nonce: it stays. */
	ASSERT_ST(once__pg_code_get(S(p), "numeric", 7, &got), ONCE_OK);
	ASSERT(got->nonce == NULL);
	ASSERT_EQ_INT(got->claims_len, strlen("{\"nonce\":5}"));
	once_free(got);
	finish(p);
}

/* ---- races (guarantee 1: exactly one winner) ---- */

enum { RACERS = 8 };

struct race {
	struct once__pg *p;
	pthread_barrier_t start;
	const char *key;
	int kind; /* 0 take, 1 nonce accept, 2 replay check */
	once_status got[RACERS];
};

struct racer {
	struct race *race;
	int i;
};

static void *race_one(void *arg)
{
	struct racer *r = arg;
	struct race *race = r->race;
	const char *k = race->key;
	pthread_barrier_wait(&race->start);
	once_status st;
	if (race->kind == 0) {
		once_code *out = NULL;
		st = once__pg_code_take(S(race->p), k, strlen(k), &out, NULL, NULL);
		once_free(out);
	} else if (race->kind == 1) {
		st = once__pg_nonce_accept(S(race->p), k, strlen(k), 300, NULL);
	} else {
		st = once__pg_replay_check(S(race->p), k, strlen(k), 121, NULL);
	}
	race->got[r->i] = st;
	return NULL;
}

/* Runs RACERS threads on one key; asserts one OK and `loser` for the rest. */
static void race_key(struct once__pg *p, int kind, const char *key, once_status loser)
{
	struct race race = {.p = p, .key = key, .kind = kind};
	pthread_barrier_init(&race.start, NULL, RACERS);
	pthread_t t[RACERS];
	struct racer r[RACERS];
	for (int i = 0; i < RACERS; i++) {
		r[i] = (struct racer){&race, i};
		ASSERT_EQ_INT(pthread_create(&t[i], NULL, race_one, &r[i]), 0);
	}
	int wins = 0;
	for (int i = 0; i < RACERS; i++) {
		pthread_join(t[i], NULL);
		if (race.got[i] == ONCE_OK)
			wins++;
		else
			ASSERT_ST(race.got[i], loser);
	}
	ASSERT_EQ_INT(wins, 1);
	pthread_barrier_destroy(&race.start);
}

static void codes_take_race_one_winner(void)
{
	struct once__pg *p = open_store(RACERS, 5000);
	for (int k = 0; k < 20; k++) {
		char key[32];
		snprintf(key, sizeof key, "race-%d", k);
		once_code c = sample_code();
		ASSERT_ST(put(p, key, &c), ONCE_OK);
		race_key(p, 0, key, ONCE_NOT_FOUND);
	}
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " CODES " WHERE consumed_at IS NOT NULL"), 20);
	finish(p);
}

static void nonces_accept_race_one_winner(void)
{
	struct once__pg *p = open_store(RACERS, 5000);
	for (int k = 0; k < 20; k++) {
		char n[ONCE_NONCE_LEN + 1];
		ASSERT_ST(once__pg_nonce_issue(S(p), 300, n, NULL), ONCE_OK);
		race_key(p, 1, n, ONCE_SPENT);
	}
	finish(p);
}

static void replays_race_one_winner(void)
{
	struct once__pg *p = open_store(RACERS, 5000);
	for (int k = 0; k < 20; k++) {
		char key[32];
		snprintf(key, sizeof key, "jti-race-%d", k);
		race_key(p, 2, key, ONCE_SPENT);
	}
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " REPLAYS), 20);
	finish(p);
}

/* ---- access tokens ---- */

static once_status record(struct once__pg *p, const char *fam, const char *jti, int64_t exp)
{
	return once__pg_access_record(S(p), fam, strlen(fam), jti, strlen(jti), exp, NULL);
}

static bool revoked(struct once__pg *p, const char *jti)
{
	return once__pg_access_revoked(S(p), jti, strlen(jti));
}

static void access_tokens_record_and_revoke(void)
{
	struct once__pg *p = open_store(1, 5000);
	/* No code row of the family: nowhere to keep the token. */
	ASSERT_ST(record(p, "fam-1", "jti-1", T0 + 300), ONCE_NOT_FOUND);
	once_code c = sample_code();
	ASSERT_ST(put(p, "code-a", &c), ONCE_OK);
	ASSERT_ST(put(p, "code-b", &c), ONCE_OK);
	ASSERT_ST(record(p, "fam-1", "jti-1", T0 + 300), ONCE_OK);
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " CODES " WHERE access_token_jti = 'jti-1' AND "
	                      "access_token_expires_at = '2026-01-01 00:05:00'"),
	              2);
	ASSERT_ST(record(p, "fam-1", "jti-1", T0 + 300), ONCE_EXISTS);
	ASSERT_ST(record(p, "fam-2", "jti-1", T0 + 300), ONCE_EXISTS);
	ASSERT_ST(record(p, "fam-1", "jti-2", 0), ONCE_INVALID);
	ASSERT_ST(record(p, "fam-1", "jti-2", ONCE_TIME_MAX + 1), ONCE_INVALID);
	ASSERT_ST(record(p, "", "jti-2", T0 + 1), ONCE_INVALID);
	ASSERT_ST(record(p, "fam-1", "bad\xff", T0 + 1), ONCE_INVALID);
	ASSERT(!revoked(p, "jti-1"));

	ASSERT_ST(once__pg_access_revoke(S(p), "fam-1", 5, NULL), ONCE_OK);
	ASSERT(revoked(p, "jti-1"));
	ASSERT_ST(once__pg_access_revoke(S(p), "fam-1", 5, NULL), ONCE_OK); /* idempotent */
	ASSERT_ST(once__pg_access_revoke(S(p), "unknown", 7, NULL), ONCE_OK);
	ASSERT_ST(once__pg_access_revoke(S(p), NULL, 1, NULL), ONCE_INVALID);
	ASSERT(!revoked(p, "unknown"));
	ASSERT(!revoked(p, ""));

	/* A token recorded later on the same (revoked) rows reads revoked too. */
	ASSERT_ST(record(p, "fam-1", "jti-2", T0 + 600), ONCE_OK);
	ASSERT(revoked(p, "jti-2"));
	ASSERT(!revoked(p, "jti-1")); /* a family keeps one token: jti-2 replaced it */

	/* Revoked while access_token_expires_at > now (strict). */
	atomic_store(&clk.now, T0 + 599);
	ASSERT(revoked(p, "jti-2"));
	atomic_store(&clk.now, T0 + 600);
	ASSERT(!revoked(p, "jti-2"));

	/* A family revoked before any token was recorded holds no mark. */
	c.family_id = "fam-3";
	ASSERT_ST(put(p, "code-c", &c), ONCE_OK);
	ASSERT_ST(once__pg_access_revoke(S(p), "fam-3", 5, NULL), ONCE_OK);
	ASSERT_ST(record(p, "fam-3", "jti-3", T0 + 900), ONCE_OK);
	ASSERT(!revoked(p, "jti-3"));
	ASSERT_EQ_U64(p->ops[ONCE_OP_ACCESS_REVOKED][ONCE_OK], 3);
	finish(p);
}

/* ---- nonces ---- */

static void nonces_issue_valid_accept(void)
{
	struct once__pg *p = open_store(1, 5000);
	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once__pg_nonce_issue(S(p), 300, n, NULL), ONCE_OK);
	ASSERT_EQ_INT(strlen(n), ONCE_NONCE_LEN);
	ASSERT_EQ_INT(strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
	              ONCE_NONCE_LEN);
	char q[256];
	snprintf(q, sizeof q,
	         "SELECT issued_at::text || '|' || expires_at::text || '|' || (used_at IS NULL)::text "
	         "FROM " NONCES " WHERE nonce = '%s'",
	         n);
	ASSERT_STR(sql_text(q), "2026-01-01 00:00:00|2026-01-01 00:05:00|true");
	ASSERT(once__pg_nonce_valid(S(p), n, strlen(n)));
	ASSERT(once__pg_nonce_valid(S(p), n, strlen(n))); /* read-only */
	ASSERT_ST(once__pg_nonce_accept(S(p), n, strlen(n), 60, NULL), ONCE_OK);
	ASSERT_ST(once__pg_nonce_accept(S(p), n, strlen(n), 60, NULL), ONCE_SPENT);
	ASSERT(!once__pg_nonce_valid(S(p), n, strlen(n)));
	ASSERT_ST(once__pg_nonce_accept(S(p), "never-issued", 12, 60, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once__pg_nonce_accept(S(p), "\xff", 1, 60, NULL), ONCE_NOT_FOUND);
	ASSERT(!once__pg_nonce_valid(S(p), "\xff", 1));

	/* Freshness: issued_at >= now - ttl. */
	ASSERT_ST(once__pg_nonce_issue(S(p), 300, n, NULL), ONCE_OK);
	atomic_store(&clk.now, T0 + 5);
	ASSERT_ST(once__pg_nonce_accept(S(p), n, strlen(n), 4, NULL), ONCE_EXPIRED);
	ASSERT_ST(once__pg_nonce_accept(S(p), n, strlen(n), 5, NULL), ONCE_OK);

	/* Expiry: expires_at > now, strict (at expires_at it is over). */
	ASSERT_ST(once__pg_nonce_issue(S(p), 10, n, NULL), ONCE_OK);
	atomic_store(&clk.now, T0 + 14);
	ASSERT(once__pg_nonce_valid(S(p), n, strlen(n)));
	atomic_store(&clk.now, T0 + 15);
	ASSERT(!once__pg_nonce_valid(S(p), n, strlen(n)));
	ASSERT_ST(once__pg_nonce_accept(S(p), n, strlen(n), 300, NULL), ONCE_EXPIRED);
	ASSERT_STR(sql_text("SELECT count(*) FILTER (WHERE used_at IS NULL) FROM " NONCES), "1");

	/* Bad arguments: nothing written. */
	long long rows = sql_int("SELECT count(*) FROM " NONCES);
	ASSERT_ST(once__pg_nonce_issue(S(p), 0, n, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_nonce_issue(S(p), ONCE_TTL_MAX + 1, n, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_nonce_issue(S(p), 10, NULL, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_nonce_accept(S(p), n, strlen(n), 0, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_nonce_accept(S(p), n, 0, 10, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_nonce_accept(S(p), NULL, 5, 10, NULL), ONCE_INVALID);
	p->opt.max_key_len = ONCE_NONCE_LEN - 1;
	ASSERT_ST(once__pg_nonce_issue(S(p), 10, n, NULL), ONCE_INVALID);
	p->opt.max_key_len = 512;
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " NONCES), rows);

	/* now + ttl saturates: "never" is the last second written. */
	ASSERT_ST(once__pg_nonce_issue(S(p), ONCE_TTL_MAX, n, NULL), ONCE_OK);
	snprintf(q, sizeof q, "SELECT expires_at::text FROM " NONCES " WHERE nonce = '%s'", n);
	ASSERT_STR(sql_text(q), "9999-12-31 23:59:59");
	ASSERT(once__pg_nonce_valid(S(p), n, strlen(n)));
	ASSERT_STR(sql_text("SELECT count(DISTINCT id) = count(*) FROM " NONCES), "t");
	finish(p);
}

/* ---- replays ---- */

static void replays_check(void)
{
	struct once__pg *p = open_store(1, 5000);
	ASSERT_ST(once__pg_replay_check(S(p), "jti-1", 5, 121, NULL), ONCE_OK);
	ASSERT_ST(once__pg_replay_check(S(p), "jti-1", 5, 121, NULL), ONCE_SPENT);
	/* timestamp(6) columns, whole seconds written. */
	ASSERT_STR(sql_text("SELECT expires_at::text || '|' || inserted_at::text FROM " REPLAYS),
	           "2026-01-01 00:02:01|2026-01-01 00:00:00");
	/* Present but expired: still a replay until swept. */
	atomic_store(&clk.now, T0 + 1000);
	ASSERT_ST(once__pg_replay_check(S(p), "jti-1", 5, 121, NULL), ONCE_SPENT);

	char jti[300];
	memset(jti, 'j', 256);
	ASSERT_ST(once__pg_replay_check(S(p), jti, 256, 121, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_replay_check(S(p), "bad\xff", 4, 121, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_replay_check(S(p), "a\0b", 3, 121, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_replay_check(S(p), "jti-2", 5, 0, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_replay_check(S(p), "jti-2", 5, ONCE_TTL_MAX + 1, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_replay_check(S(p), "jti-2", 0, 121, NULL), ONCE_INVALID);
	ASSERT_ST(once__pg_replay_check(S(p), NULL, 3, 121, NULL), ONCE_INVALID);
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " REPLAYS), 1);
	ASSERT_ST(once__pg_replay_check(S(p), jti, 255, 121, NULL), ONCE_OK);
	ASSERT_EQ_U64(p->ops[ONCE_OP_REPLAY_CHECK][ONCE_INVALID], 7);
	finish(p);
}

/* ---- sweep ---- */

static void sweep_deletes_expired_rows_in_batches(void)
{
	struct once__pg *p = open_store(1, 5000);
	/* At now = T0 + 100: expired means expires_at < now, strictly. */
	for (int i = 0; i < 2500; i++) { /* several batches of replays */
		char key[32];
		snprintf(key, sizeof key, "old-%d", i);
		ASSERT_ST(once__pg_replay_check(S(p), key, strlen(key), 50, NULL), ONCE_OK);
	}
	ASSERT_ST(once__pg_replay_check(S(p), "at-now", 6, 100, NULL), ONCE_OK);
	ASSERT_ST(once__pg_replay_check(S(p), "later", 5, 101, NULL), ONCE_OK);

	once_code c = sample_code();
	c.expires_at = T0 + 99;
	ASSERT_ST(put(p, "code-expired", &c), ONCE_OK);
	c.expires_at = T0 + 100;
	ASSERT_ST(put(p, "code-at-now", &c), ONCE_OK);
	/* Expired codes whose access token still lives are kept (3.x). */
	c.expires_at = T0 + 10;
	c.family_id = "fam-live";
	ASSERT_ST(put(p, "code-live-token", &c), ONCE_OK);
	ASSERT_ST(record(p, "fam-live", "jti-live", T0 + 101), ONCE_OK);
	c.family_id = "fam-dead";
	ASSERT_ST(put(p, "code-dead-token", &c), ONCE_OK);
	ASSERT_ST(record(p, "fam-dead", "jti-dead", T0 + 100), ONCE_OK);

	char n[ONCE_NONCE_LEN + 1];
	ASSERT_ST(once__pg_nonce_issue(S(p), 99, n, NULL), ONCE_OK);
	ASSERT_ST(once__pg_nonce_issue(S(p), 100, n, NULL), ONCE_OK);

	sql("INSERT INTO " REFRESH " (id, token_hash, family_id, generation, subject, expires_at, inserted_at) "
	    "VALUES (gen_random_uuid(), 'r1', 'f', 0, 's', '2026-01-01 00:01:39', '2026-01-01 00:00:00'), "
	    "(gen_random_uuid(), 'r2', 'f', 1, 's', '2026-01-01 00:01:40', '2026-01-01 00:00:00')");
	sql("INSERT INTO " SCHEMA ".attesto_refresh_family_revocations VALUES ('f-gone', '2000-01-01')");

	atomic_store(&clk.now, T0 + 100);
	once_sweep_counts counts;
	memset(&counts, 0xff, sizeof counts);
	ASSERT_ST(once__pg_sweep(S(p), &counts), ONCE_OK);
	ASSERT_EQ_U64(counts.replays, 2500);
	ASSERT_EQ_U64(counts.codes, 2);
	ASSERT_EQ_U64(counts.nonces, 1);
	ASSERT_EQ_U64(counts.refresh, 1);
	ASSERT_EQ_U64(counts.access_tokens, 0);
	ASSERT_EQ_U64(counts.examined, 2504);
	ASSERT_STR(sql_text("SELECT string_agg(jti, ',' ORDER BY jti) FROM " REPLAYS), "at-now,later");
	ASSERT_STR(sql_text("SELECT string_agg(code_hash, ',' ORDER BY code_hash) FROM " CODES),
	           "code-at-now,code-live-token");
	ASSERT_STR(sql_text("SELECT string_agg(token_hash, ',') FROM " REFRESH), "r2");
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " NONCES), 1);
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " SCHEMA ".attesto_refresh_family_revocations"), 1);
	/* A swept jti can be recorded again. */
	ASSERT_ST(once__pg_replay_check(S(p), "old-7", 5, 50, NULL), ONCE_OK);

	ASSERT_ST(once__pg_sweep(S(p), NULL), ONCE_OK);
	ASSERT_EQ_U64(p->sweeps, 2);
	finish(p);
}

/* ---- failures: timeouts, lost connections (P2) ---- */

static void statement_timeout_is_io_then_recovers(void)
{
	struct once__pg *p = open_store(1, 200);
	once_code c = sample_code();
	ASSERT_ST(put(p, HASH, &c), ONCE_OK);
	/* Another session holds the row: the take waits past the timeout. */
	sql("BEGIN");
	sql("SELECT 1 FROM " CODES " WHERE code_hash = '" HASH "' FOR UPDATE");
	ASSERT_ST(take(p, HASH, NULL, NULL), ONCE_IO);
	sql("COMMIT");
	ASSERT_EQ_U64(p->counters.errors, 1);
	/* The timed-out statement changed nothing; the pool reconnects. */
	ASSERT_ST(take(p, HASH, NULL, NULL), ONCE_OK);
	ASSERT_EQ_U64(p->counters.reconnects, 1);
	ASSERT_EQ_U64(p->ops[ONCE_OP_CODE_TAKE][ONCE_IO], 1);
	finish(p);
}

static void killed_backend_is_io_then_reconnects(void)
{
	struct once__pg *p = open_store(1, 5000);
	ASSERT_ST(once__pg_replay_check(S(p), "before", 6, 60, NULL), ONCE_OK);
	/* Our pool's backend is the one whose last statement names our schema. */
	const char *who = "FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND query LIKE "
	                  "'%" SCHEMA "%dpop_replays%'";
	char q[512];
	snprintf(q, sizeof q, "SELECT count(pg_terminate_backend(pid)) %s", who);
	ASSERT_EQ_INT(sql_int(q), 1);
	snprintf(q, sizeof q, "SELECT count(*) %s", who);
	for (int i = 0; i < 500 && sql_int(q) > 0; i++)
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	ASSERT_ST(once__pg_replay_check(S(p), "during", 6, 60, NULL), ONCE_IO);
	ASSERT_ST(once__pg_replay_check(S(p), "after", 5, 60, NULL), ONCE_OK);
	ASSERT_EQ_U64(p->counters.reconnects, 1);
	ASSERT_EQ_U64(p->counters.connects, 2);
	uint64_t open_now, size;
	once__pg_pool_figures(p, &open_now, &size);
	ASSERT_EQ_U64(open_now, 1);
	ASSERT_EQ_U64(size, 1);
	finish(p);
}

struct worker {
	struct once__pg *p;
	int id;
	int ok;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 50; i++) {
		char key[32];
		snprintf(key, sizeof key, "w%d-%d", w->id, i);
		w->ok += once__pg_replay_check(S(w->p), key, strlen(key), 60, NULL) == ONCE_OK;
	}
	return NULL;
}

static void pool_serves_more_threads_than_connections(void)
{
	struct once__pg *p = open_store(3, 5000);
	enum { THREADS = 12 };
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){p, i, 0};
		ASSERT_EQ_INT(pthread_create(&t[i], NULL, work, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		ASSERT_EQ_INT(w[i].ok, 50);
	}
	ASSERT_EQ_INT(sql_int("SELECT count(*) FROM " REPLAYS), THREADS * 50);
	uint64_t open_now, size;
	once__pg_pool_figures(p, &open_now, &size);
	ASSERT(open_now >= 1 && open_now <= 3);
	ASSERT_EQ_U64(p->counters.connects, open_now);
	ASSERT_EQ_U64(p->counters.statements, THREADS * 50);
	ASSERT(p->counters.statement_ns_total >= p->counters.statement_ns_max);
	ASSERT(p->counters.statement_ns_max > 0);
	finish(p);
}

static void open_fails_io_without_server_invalid_without_tables(void)
{
	fresh_schema();
	struct once__pg *p = store_with(2, 5000);
	free(p->conninfo);
	p->conninfo = strdup("host=/nonexistent/socket/dir dbname=postgres connect_timeout=2");
	p->opt.postgres = p->conninfo;
	ASSERT_ST(once__pg_pool_open(p), ONCE_IO);
	ASSERT(p->pool == NULL);
	store_free(p);

	sql("ALTER TABLE " NONCES " DROP COLUMN used_at");
	p = store_with(2, 5000);
	ASSERT_ST(once__pg_pool_open(p), ONCE_INVALID);
	ASSERT(p->pool == NULL);
	finish(p);
}

TESTS(TEST(codes_put_get_take_finalize), TEST(codes_rows_as_attestophoenix_writes_them),
      TEST(codes_bad_input_writes_nothing), TEST(codes_legacy_nonce_column_wins),
      TEST(codes_take_race_one_winner), TEST(access_tokens_record_and_revoke),
      TEST(nonces_issue_valid_accept), TEST(nonces_accept_race_one_winner), TEST(replays_check),
      TEST(replays_race_one_winner), TEST(sweep_deletes_expired_rows_in_batches),
      TEST(statement_timeout_is_io_then_recovers), TEST(killed_backend_is_io_then_reconnects),
      TEST(pool_serves_more_threads_than_connections),
      TEST(open_fails_io_without_server_invalid_without_tables));
TEST_MAIN()
