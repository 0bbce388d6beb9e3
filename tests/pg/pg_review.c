/*
 * tests/pg/pg_review.c - what a review against a real server found in
 * the PostgreSQL engine, each pinned by a test that failed before its fix:
 *
 *   - the sweep's successor redaction (ATTESTO-PG 2.2.6) runs in batches
 *     of 1000, leaves exact tombstones alone, and a redaction that fails
 *     (statement_timeout on a large refresh table) no longer stops the
 *     sweep of codes, nonces and replays: only the refresh delete waits
 *     for it (pg/refresh_successor.c, pg/sweep.c);
 *   - a successor is handed out only inside core's retry_window
 *     (ATTESTO-PG 2.2.4): parent unexpired, now <= retry_until, child
 *     unconsumed and unexpired (pg/refresh_successor.c).
 *
 * Suite pg: ONCE_TEST_POSTGRES is the server (tests/pg/cluster.sh).  Each
 * test makes the schema below from ATTESTO-PG 1.2's DDL and drops it.
 */
#include <stdarg.h>

#include <libpq-fe.h>

#include "../harness.h"
#include "pgdb.h"
#include "pg.h"

#define SCHEMA "once_test_pg_review"
#define T_REFRESH SCHEMA ".attesto_refresh_tokens"
#define T_REPLAYS SCHEMA ".dpop_replays"
#define T_NONCES SCHEMA ".dpop_nonces"
#define NOW 1900000000
#define SECRET PGDB_SECRET


/* ---- the store ---- */

static void fx_init(struct fx *f, struct store_opts so)
{
	fx_start(f, SCHEMA, NOW, so);
}

static once_refresh record(const char *family, int64_t exp)
{
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = family;
	r.subject = "user-1";
	r.client_id = "client-1";
	r.expires_at = exp;
	return r;
}

/* ---- the sweep's redaction ---- */

/* n refresh rows of family prefix, each with successor `succ` (jsonb
 * text), expiring at NOW + 3600 (not swept). */
static void rows_with_successor(struct fx *f, const char *prefix, int n, const char *succ)
{
	sql(f->db,
	    "INSERT INTO " T_REFRESH " (id, token_hash, family_id, generation, subject, consumed,"
	    " consumed_at, successor, expires_at, inserted_at) SELECT gen_random_uuid(),"
	    " '%s-' || g, '%s-' || g, 0, 'user-1', true, to_timestamp(%d) AT TIME ZONE 'UTC',"
	    " '%s'::jsonb, to_timestamp(%d) AT TIME ZONE 'UTC', to_timestamp(%d) AT TIME ZONE 'UTC'"
	    " FROM generate_series(1, %d) g",
	    prefix, prefix, NOW - 100, succ, NOW + 3600, NOW - 200, n);
}

/* n replay entries that expired before NOW. */
static void expired_replays(struct fx *f, int n)
{
	sql(f->db,
	    "INSERT INTO " T_REPLAYS " (jti, expires_at, inserted_at) SELECT 'jti-' || g,"
	    " to_timestamp(%d) AT TIME ZONE 'UTC', to_timestamp(%d) AT TIME ZONE 'UTC'"
	    " FROM generate_series(1, %d) g",
	    NOW - 10, NOW - 100, n);
}

#define EXACT_TOMBSTONE(retry)                                                                     \
	"{\"v\": 1, \"retry_until\": " retry ", \"recoverable\": false}"

/*
 * 2500 malformed successors (a tombstone with a fourth key: it contains
 * the tombstone's keys, and must still be redacted) among 3000 exact
 * tombstones: every malformed one becomes an exact tombstone, in three
 * UPDATE statements of at most 1000 rows (a statement-level trigger counts
 * them), and no exact tombstone is rewritten (a row-level one counts
 * those).
 */
static void test_redaction_runs_in_batches_and_skips_tombstones(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60});
	rows_with_successor(&f, "tomb", 3000, EXACT_TOMBSTONE("1899999900"));
	rows_with_successor(&f, "bad", 2500,
	                    "{\"v\": 1, \"retry_until\": 1899999900, \"recoverable\": false, \"x\": 1}");
	sql(f.db, "CREATE TABLE " SCHEMA ".counts (what text PRIMARY KEY, n integer NOT NULL)");
	sql(f.db, "INSERT INTO " SCHEMA ".counts VALUES ('statements', 0), ('rows', 0)");
	sql(f.db, "CREATE FUNCTION " SCHEMA ".count_statement() RETURNS trigger LANGUAGE plpgsql AS"
	          " $$BEGIN UPDATE " SCHEMA ".counts SET n = n + 1 WHERE what = 'statements';"
	          " RETURN NULL; END$$");
	sql(f.db, "CREATE FUNCTION " SCHEMA ".count_row() RETURNS trigger LANGUAGE plpgsql AS"
	          " $$BEGIN UPDATE " SCHEMA ".counts SET n = n + 1 WHERE what = 'rows';"
	          " RETURN NEW; END$$");
	sql(f.db, "CREATE TRIGGER s AFTER UPDATE ON " T_REFRESH
	          " FOR EACH STATEMENT EXECUTE FUNCTION " SCHEMA ".count_statement()");
	sql(f.db, "CREATE TRIGGER r BEFORE UPDATE ON " T_REFRESH
	          " FOR EACH ROW EXECUTE FUNCTION " SCHEMA ".count_row()");
	once_sweep_counts counts;
	ASSERT_ST(once_sweep(f.s, &counts), ONCE_OK);
	ASSERT_EQ_INT(sql_int(f.db, "SELECT count(*) FROM " T_REFRESH " WHERE successor = '"
	                            EXACT_TOMBSTONE("1899999900") "'::jsonb"),
	              3000);
	/* Redacted: min(consumed_at + grace, P) = NOW - 100 + 60. */
	ASSERT_EQ_INT(sql_int(f.db, "SELECT count(*) FROM " T_REFRESH " WHERE successor = '"
	                            EXACT_TOMBSTONE("1899999960") "'::jsonb"),
	              2500);
	ASSERT_EQ_INT(sql_int(f.db, "SELECT n FROM " SCHEMA ".counts WHERE what = 'rows'"), 2500);
	/* v2: one statement (nothing due); the others: 1000, 1000, 500. */
	ASSERT_EQ_INT(sql_int(f.db, "SELECT n FROM " SCHEMA ".counts WHERE what = 'statements'"), 4);
	ASSERT_EQ_INT(counts.refresh, 0);
	/* A second sweep finds nothing to redact: no row is touched. */
	ASSERT_ST(once_sweep(f.s, &counts), ONCE_OK);
	ASSERT_EQ_INT(sql_int(f.db, "SELECT n FROM " SCHEMA ".counts WHERE what = 'rows'"), 2500);
	fx_close(&f);
}

/*
 * A redaction that cannot finish within statement_timeout (here a row
 * trigger that sleeps, standing for a refresh table too large to scan in
 * time) fails the sweep (ONCE_IO) but no longer stops it: the expired
 * replays and nonces are deleted, and only the refresh delete, which must
 * follow redaction (ATTESTO-PG 4), is skipped: the expired refresh row
 * stays until a sweep whose redaction succeeds.
 */
static void test_failed_redaction_still_sweeps_replays_and_nonces(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60, .timeout_ms = 200});
	rows_with_successor(&f, "tomb", 2000, EXACT_TOMBSTONE("1899999900"));
	rows_with_successor(&f, "bad", 1, "\"malformed\"");
	sql(f.db, "INSERT INTO " T_REFRESH " (id, token_hash, family_id, subject, expires_at,"
	          " inserted_at) VALUES (gen_random_uuid(), 'old', 'fam-old', 'user-1',"
	          " to_timestamp(1899999000) AT TIME ZONE 'UTC', to_timestamp(1899990000) AT TIME ZONE 'UTC')");
	expired_replays(&f, 1500);
	sql(f.db, "INSERT INTO " T_NONCES " (id, nonce, issued_at, expires_at) SELECT"
	          " gen_random_uuid(), 'nonce-' || g, to_timestamp(1899999000) AT TIME ZONE 'UTC',"
	          " to_timestamp(1899999500) AT TIME ZONE 'UTC' FROM generate_series(1, 30) g");
	sql(f.db, "CREATE FUNCTION " SCHEMA ".slow() RETURNS trigger LANGUAGE plpgsql AS"
	          " $$BEGIN PERFORM pg_sleep(2); RETURN NEW; END$$");
	sql(f.db, "CREATE TRIGGER slow BEFORE UPDATE ON " T_REFRESH
	          " FOR EACH ROW EXECUTE FUNCTION " SCHEMA ".slow()");
	once_sweep_counts counts;
	ASSERT_ST(once_sweep(f.s, &counts), ONCE_IO);
	ASSERT_EQ_INT(counts.replays, 1500);
	ASSERT_EQ_INT(counts.nonces, 30);
	ASSERT_EQ_INT(counts.refresh, 0);
	ASSERT_EQ_INT(sql_int(f.db, "SELECT count(*) FROM " T_REPLAYS), 0);
	ASSERT_EQ_INT(sql_int(f.db, "SELECT count(*) FROM " T_NONCES), 0);
	ASSERT_EQ_INT(sql_int(f.db, "SELECT count(*) FROM " T_REFRESH " WHERE token_hash = 'old'"), 1);
	ASSERT_STR(sql_text(f.db, "SELECT successor FROM " T_REFRESH " WHERE token_hash = 'bad-1'"),
	           "\"malformed\"");
	/* Redaction possible again: it runs, then the refresh delete. */
	sql(f.db, "DROP TRIGGER slow ON " T_REFRESH);
	ASSERT_ST(once_sweep(f.s, &counts), ONCE_OK);
	ASSERT_EQ_INT(counts.refresh, 1);
	ASSERT_EQ_INT(sql_int(f.db, "SELECT count(*) FROM " T_REFRESH " WHERE token_hash = 'old'"), 0);
	ASSERT_STR(sql_text(f.db, "SELECT successor->>'recoverable' FROM " T_REFRESH
	                          " WHERE token_hash = 'bad-1'"),
	           "false");
	fx_close(&f);
}

/* ---- the retry window ---- */

/* A family `family` whose parent (expiring at NOW + 3600) was rotated at
 * NOW to child (expiring at NOW + 7200), grace 60: retry_until NOW + 60. */
static void rotated_family(struct fx *f, const char *family, struct tok *parent, struct tok *child)
{
	*parent = tok(family, 0);
	*child = tok(family, 1);
	atomic_store(&f->clk.now, NOW);
	once_refresh r = record(family, NOW + 3600);
	ASSERT_ST(once_refresh_insert(f->s, parent->key, ONCE_SECRET_LEN, &r), ONCE_OK);
	once_refresh c = record(family, NOW + 7200);
	c.generation = 1;
	ASSERT_ST(once_refresh_rotate(f->s, parent->key, ONCE_SECRET_LEN, child->key, ONCE_SECRET_LEN,
	                              &c, child->token, strlen(child->token), NULL),
	          ONCE_OK);
}

/* What get, consume (SPENT) and rotate (SPENT) hand back as the parent's
 * successor at `now`: every path must agree.  Returns true when it is
 * `child`'s token, false when there is none. */
static bool successor_served(struct fx *f, const struct tok *parent, const struct tok *child,
                             int64_t now, const char *family)
{
	atomic_store(&f->clk.now, now);
	once_refresh *g = NULL;
	ASSERT_ST(once_refresh_get(f->s, parent->key, ONCE_SECRET_LEN, &g), ONCE_OK);
	bool served = g->successor != NULL;
	if (served) {
		ASSERT_EQ_INT(g->successor_len, strlen(child->token));
		ASSERT(memcmp(g->successor, child->token, g->successor_len) == 0);
	}
	once_free(g);
	g = NULL;
	ASSERT_ST(once_refresh_consume(f->s, parent->key, ONCE_SECRET_LEN, &g), ONCE_SPENT);
	ASSERT((g->successor != NULL) == served);
	once_free(g);
	struct tok other = tok(family, 9);
	once_refresh c = record(family, now + 7200);
	c.generation = 1;
	g = NULL;
	once_status st = once_refresh_rotate(f->s, parent->key, ONCE_SECRET_LEN, other.key,
	                                     ONCE_SECRET_LEN, &c, other.token, strlen(other.token), &g);
	/* An expired parent is EXPIRED on rotate, before any successor. */
	if (st == ONCE_SPENT) {
		ASSERT((g->successor != NULL) == served);
		once_free(g);
	} else {
		ASSERT_ST(st, ONCE_EXPIRED);
	}
	return served;
}

/*
 * core's retry_window (ATTESTO-PG 2.2.4), each condition violated in turn
 * on a family of its own; with all of them holding the child's token is
 * served.  The reviewer's case: rotate at T with grace 60, the client
 * consumes the child, and get(parent) at T + 5 h handed out the child.
 */
static void test_successor_only_inside_the_retry_window(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){.secret = true, .grace = 60});
	struct tok p, c;

	/* All hold: served, up to and including retry_until. */
	rotated_family(&f, "fam-ok", &p, &c);
	ASSERT(successor_served(&f, &p, &c, NOW + 10, "fam-ok"));
	ASSERT(successor_served(&f, &p, &c, NOW + 60, "fam-ok"));
	/* now > retry_until. */
	ASSERT(!successor_served(&f, &p, &c, NOW + 61, "fam-ok"));

	/* The child was consumed (the client used it): withheld even inside
	 * the window, and 5 hours later. */
	rotated_family(&f, "fam-used", &p, &c);
	ASSERT_ST(once_refresh_consume(f.s, c.key, ONCE_SECRET_LEN, NULL), ONCE_OK);
	ASSERT(!successor_served(&f, &p, &c, NOW + 10, "fam-used"));
	ASSERT(!successor_served(&f, &p, &c, NOW + 5 * 3600, "fam-used"));

	/* The child has expired (child.expires_at <= now). */
	rotated_family(&f, "fam-child-exp", &p, &c);
	sql(f.db, "UPDATE " T_REFRESH " SET expires_at = to_timestamp(%d) AT TIME ZONE 'UTC'"
	          " WHERE token_hash = '%s'", NOW + 10, c.key);
	ASSERT(successor_served(&f, &p, &c, NOW + 9, "fam-child-exp"));
	ASSERT(!successor_served(&f, &p, &c, NOW + 10, "fam-child-exp"));

	/* The parent has expired (now >= parent.expires_at). */
	rotated_family(&f, "fam-parent-exp", &p, &c);
	sql(f.db, "UPDATE " T_REFRESH " SET expires_at = to_timestamp(%d) AT TIME ZONE 'UTC'"
	          " WHERE token_hash = '%s'", NOW + 20, p.key);
	ASSERT(successor_served(&f, &p, &c, NOW + 19, "fam-parent-exp"));
	ASSERT(!successor_served(&f, &p, &c, NOW + 20, "fam-parent-exp"));

	/* The child's context changed (lineage, as before). */
	rotated_family(&f, "fam-ctx", &p, &c);
	sql(f.db, "UPDATE " T_REFRESH " SET subject = 'someone-else' WHERE token_hash = '%s'", c.key);
	ASSERT(!successor_served(&f, &p, &c, NOW + 10, "fam-ctx"));

	/* The child is gone. */
	rotated_family(&f, "fam-gone", &p, &c);
	sql(f.db, "DELETE FROM " T_REFRESH " WHERE token_hash = '%s'", c.key);
	ASSERT(!successor_served(&f, &p, &c, NOW + 10, "fam-gone"));
	fx_close(&f);
}

/* A row another writer left in a shape the layout does not allow (cnf with
 * two members): the consume that wins it has consumed it, so its answer is
 * ONCE_IO (refuse; the outcome is not one the caller can use), never
 * NOT_FOUND, which would read as "no such token"; a second consume finds
 * it consumed and unreadable: NOT_FOUND, served to nobody. */
static void test_consume_of_an_unreadable_row_is_io(void)
{
	struct fx f;
	fx_init(&f, (struct store_opts){0});
	struct tok p = tok("bad", 0);
	once_refresh r = record("fam-bad", NOW + 3600);
	ASSERT_ST(once_refresh_insert(f.s, p.key, ONCE_SECRET_LEN, &r), ONCE_OK);
	sql(f.db, "UPDATE " T_REFRESH " SET cnf = '{\"jkt\": \"a\", \"x\": 1}' WHERE token_hash = '%s'",
	    p.key);
	once_refresh *out = NULL;
	ASSERT_ST(once_refresh_consume(f.s, p.key, ONCE_SECRET_LEN, &out), ONCE_IO);
	ASSERT(out == NULL);
	ASSERT_STR(sql_text(f.db, "SELECT consumed::text FROM " T_REFRESH " WHERE token_hash = '%s'",
	                    p.key),
	           "true");
	ASSERT_ST(once_refresh_consume(f.s, p.key, ONCE_SECRET_LEN, &out), ONCE_NOT_FOUND);
	fx_close(&f);
}

TESTS(TEST(test_consume_of_an_unreadable_row_is_io),
      TEST(test_redaction_runs_in_batches_and_skips_tombstones),
      TEST(test_failed_redaction_still_sweeps_replays_and_nonces),
      TEST(test_successor_only_inside_the_retry_window));
TEST_MAIN()
