/*
 * tests/pg/pg_pipeline.c - the refresh transactions sent in flights
 * (pg/pool.c once__pg_flight, libpq's pipeline mode; pg/refresh.c says
 * which statements go together) fail the way one statement at a time
 * failed, and leave the pool usable.
 *
 *   - a flight whose statement errors (a unique violation on a rotation's
 *     or an insert's INSERT, made by a trigger that stands for a writer
 *     that does not lock) answers ONCE_EXISTS, commits nothing, and the
 *     same connection (pool of 1, no reconnect) serves the next call;
 *   - a rotation whose child INSERT lands 0 rows (its hash taken under
 *     it) is rolled back, never committed: the parent stays unconsumed;
 *   - a backend terminated (pg_terminate_backend) while a flight waits on
 *     the family lock - rotate's second flight, insert's first, revoke's
 *     only one with its COMMIT already sent - answers ONCE_IO, nothing of
 *     the transaction is committed, and the next call succeeds on a new
 *     connection;
 *   - a statement timeout inside a flight (the lock held elsewhere) is
 *     ONCE_IO and the next call succeeds.
 *
 * Suite pg: ONCE_TEST_POSTGRES is the server (tests/pg/cluster.sh).  Each
 * test makes the tables in the schema below (once__pg_ddl) and drops it.
 */
#include <pthread.h>
#include <stdarg.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "../harness.h"
#include "pgdb.h"
#include "layout.h"
#include "pg.h"

#define SCHEMA "once_test_pg_pipeline"
#define T_REFRESH SCHEMA ".attesto_refresh_tokens"
#define T_REVOKED SCHEMA ".attesto_refresh_family_revocations"
#define NOW 1900000000
#define LOCK_NS "1096045126" /* ATTESTO-PG 2.2.2 */

/* ---- the store (tests/pg/pgdb.h) ---- */

/* One pooled connection, so "the next call" runs on the connection the
 * failed one used (or on its replacement, counted in pg_reconnects);
 * grace 60 and no secret, as once_options_init leaves them. */
static void fx_init(struct fx *f, uint32_t statement_timeout_ms)
{
	fx_start(f, SCHEMA, NOW,
	         (struct store_opts){.pool = 1, .grace = 60, .timeout_ms = statement_timeout_ms});
}

static uint64_t reconnects(struct fx *f)
{
	struct once_stats st;
	once_stats(f->s, &st);
	return st.pg_reconnects;
}

static once_refresh record(const char *family, int64_t generation)
{
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = family;
	r.generation = generation;
	r.subject = "user-1";
	r.client_id = "client-1";
	r.expires_at = NOW + 3600;
	return r;
}

static once_status insert(struct fx *f, const struct tok *t, const char *family)
{
	once_refresh r = record(family, 0);
	return once_refresh_insert(f->s, t->key, ONCE_SECRET_LEN, &r);
}

/* Rotates parent to child (no successor token kept: no secret). */
static once_status rotate(once_store *s, const struct tok *parent, const struct tok *child,
                          const char *family)
{
	once_refresh c = record(family, 1);
	return once_refresh_rotate(s, parent->key, ONCE_SECRET_LEN, child->key, ONCE_SECRET_LEN, &c,
	                           NULL, 0, NULL);
}

static long long family_rows(struct fx *f, const char *family)
{
	return sql_int(f->db, "SELECT count(*) FROM " T_REFRESH " WHERE family_id = '%s'", family);
}

static bool consumed(struct fx *f, const struct tok *t)
{
	return sql_int(f->db, "SELECT count(*) FROM " T_REFRESH " WHERE token_hash = '%s' AND consumed",
	               t->key) == 1;
}

static bool tombstoned(struct fx *f, const char *family)
{
	return sql_int(f->db, "SELECT count(*) FROM " T_REVOKED " WHERE family_id = '%s'", family) == 1;
}

/* ---- a statement error inside a flight ---- */

/* A writer that does not lock, standing in the rotation's way: when the
 * parent of family 'fam-race' is marked consumed (the rotation's
 * UPDATE, in the same flight as its INSERT), a trigger inserts a row at
 * the child's generation (what = 'generation': the child INSERT then
 * violates (family_id, generation), SQLSTATE 23505) or with the child's
 * hash in another family (what = 'hash': the INSERT lands 0 rows). */
static void trigger_on_consume(struct fx *f, const char *what, const char *child_hash)
{
	sql(f->db,
	    "CREATE FUNCTION " SCHEMA ".in_the_way() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
	    "INSERT INTO " T_REFRESH " (id, token_hash, family_id, generation, subject, expires_at,"
	    " inserted_at) VALUES (gen_random_uuid(), %s, %s, 1, 'x', now(), now()); "
	    "RETURN NEW; END $$",
	    strcmp(what, "hash") == 0 ? "TG_ARGV[0]" : "'another-hash'",
	    strcmp(what, "hash") == 0 ? "'another-family'" : "NEW.family_id");
	sql(f->db,
	    "CREATE TRIGGER in_the_way AFTER UPDATE ON " T_REFRESH " FOR EACH ROW WHEN"
	    " (NEW.consumed AND NOT OLD.consumed AND NEW.family_id = 'fam-race')"
	    " EXECUTE FUNCTION " SCHEMA ".in_the_way('%s')",
	    child_hash);
}

static void drop_trigger(struct fx *f)
{
	sql(f->db, "DROP TRIGGER in_the_way ON " T_REFRESH);
	sql(f->db, "DROP FUNCTION " SCHEMA ".in_the_way()");
}

/* The child INSERT violates (family_id, generation) in the flight after
 * the UPDATE: EXISTS, the UPDATE rolled back, no reconnect, and the same
 * connection then rotates. */
static void test_rotate_insert_unique_violation(void)
{
	struct fx f;
	fx_init(&f, 0);
	struct tok p = tok("fam-race", 0), c = tok("fam-race", 1);
	ASSERT_ST(insert(&f, &p, "fam-race"), ONCE_OK);
	trigger_on_consume(&f, "generation", c.key);
	ASSERT_ST(rotate(f.s, &p, &c, "fam-race"), ONCE_EXISTS);
	ASSERT(!consumed(&f, &p));
	ASSERT_EQ_INT(family_rows(&f, "fam-race"), 1);
	ASSERT_EQ_U64(reconnects(&f), 0);
	drop_trigger(&f);
	ASSERT_ST(rotate(f.s, &p, &c, "fam-race"), ONCE_OK);
	ASSERT(consumed(&f, &p));
	ASSERT_EQ_INT(family_rows(&f, "fam-race"), 2);
	ASSERT_EQ_U64(reconnects(&f), 0);
	fx_close(&f);
}

/* The child's hash is taken under the rotation (0 rows, no error): the
 * transaction must roll back, not commit the parent's UPDATE alone. */
static void test_rotate_insert_lands_nothing(void)
{
	struct fx f;
	fx_init(&f, 0);
	struct tok p = tok("fam-race", 0), c = tok("fam-race", 1), c2 = tok("fam-race", 2);
	ASSERT_ST(insert(&f, &p, "fam-race"), ONCE_OK);
	trigger_on_consume(&f, "hash", c.key);
	ASSERT_ST(rotate(f.s, &p, &c, "fam-race"), ONCE_EXISTS);
	ASSERT(!consumed(&f, &p));
	ASSERT_EQ_INT(family_rows(&f, "fam-race"), 1);
	ASSERT_EQ_INT(family_rows(&f, "another-family"), 0); /* the trigger's row rolled back too */
	drop_trigger(&f);
	ASSERT_ST(rotate(f.s, &p, &c2, "fam-race"), ONCE_OK);
	ASSERT(consumed(&f, &p));
	ASSERT_EQ_U64(reconnects(&f), 0);
	fx_close(&f);
}

/* insert's second flight is [INSERT, COMMIT]: a unique violation on the
 * INSERT (a trigger writes the generation first) skips the COMMIT; the
 * status is EXISTS, nothing is committed, the connection serves on. */
static void test_insert_unique_violation(void)
{
	struct fx f;
	fx_init(&f, 0);
	struct tok t = tok("fam-ins", 0), t2 = tok("fam-ins", 1);
	sql(f.db, "CREATE FUNCTION " SCHEMA ".in_the_way() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
	          "IF NEW.subject <> 'x' THEN INSERT INTO " T_REFRESH " (id, token_hash, family_id, "
	          "generation, subject, expires_at, inserted_at) VALUES (gen_random_uuid(), "
	          "'another-hash', NEW.family_id, NEW.generation, 'x', now(), now()); END IF; "
	          "RETURN NEW; END $$");
	sql(f.db, "CREATE TRIGGER in_the_way BEFORE INSERT ON " T_REFRESH
	          " FOR EACH ROW EXECUTE FUNCTION " SCHEMA ".in_the_way()");
	ASSERT_ST(insert(&f, &t, "fam-ins"), ONCE_EXISTS);
	ASSERT_EQ_INT(family_rows(&f, "fam-ins"), 0);
	ASSERT_EQ_U64(reconnects(&f), 0);
	drop_trigger(&f);
	ASSERT_ST(insert(&f, &t2, "fam-ins"), ONCE_OK);
	ASSERT_EQ_INT(family_rows(&f, "fam-ins"), 1);
	ASSERT_EQ_U64(reconnects(&f), 0);
	fx_close(&f);
}

/* ---- the backend killed under a flight ---- */

enum call { CALL_INSERT, CALL_ROTATE, CALL_REVOKE };

struct caller {
	once_store *s;
	enum call call;
	const struct tok *a, *b;
	const char *family;
	once_status st;
};

static void *call_thread(void *arg)
{
	struct caller *c = arg;
	switch (c->call) {
	case CALL_INSERT: {
		once_refresh r = record(c->family, 0);
		c->st = once_refresh_insert(c->s, c->a->key, ONCE_SECRET_LEN, &r);
		break;
	}
	case CALL_ROTATE:
		c->st = rotate(c->s, c->a, c->b, c->family);
		break;
	case CALL_REVOKE:
		c->st = once_refresh_revoke_family(c->s, c->family, strlen(c->family));
		break;
	}
	return NULL;
}

/* Holds the family's lock on the test's connection, runs the call in a
 * thread, waits until the store's backend waits for that lock (inside
 * a flight: the BEGIN and what precedes the lock already ran), kills
 * that backend, releases the lock, and returns the call's status. */
static once_status kill_while_waiting(struct fx *f, struct caller *c)
{
	sql(f->db, "BEGIN");
	sql(f->db, "SELECT pg_advisory_xact_lock(" LOCK_NS "::int4, hashtext('%s'))", c->family);
	pthread_t th;
	c->s = f->s;
	ASSERT_EQ_INT(pthread_create(&th, NULL, call_thread, c), 0);
	PGconn *watch = db(); /* outside the test's transaction: sees the wait now */
	long long pid = 0;
	for (int i = 0; i < 1000 && pid == 0; i++) {
		pid = sql_int(watch,
		              "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid"
		              " WHERE l.locktype = 'advisory' AND NOT l.granted AND a.pid <> %d",
		              PQbackendPID(f->db));
		if (pid == 0)
			usleep(10000);
	}
	ASSERT(pid != 0);
	ASSERT_EQ_INT(sql_int(watch, "SELECT pg_terminate_backend(%lld)::int", pid), 1);
	PQfinish(watch);
	pthread_join(th, NULL);
	sql(f->db, "COMMIT");
	return c->st;
}

/* rotate: flight 1 (BEGIN, the parent's family) answered, flight 2 (the
 * lock ...) waits: killed, ONCE_IO, nothing changed; the next rotation
 * succeeds on a new connection. */
static void test_rotate_killed_between_flights(void)
{
	struct fx f;
	fx_init(&f, 0);
	struct tok p = tok("fam-kill", 0), c = tok("fam-kill", 1);
	ASSERT_ST(insert(&f, &p, "fam-kill"), ONCE_OK);
	struct caller call = {.call = CALL_ROTATE, .a = &p, .b = &c, .family = "fam-kill"};
	ASSERT_ST(kill_while_waiting(&f, &call), ONCE_IO);
	ASSERT(!consumed(&f, &p));
	ASSERT_EQ_INT(family_rows(&f, "fam-kill"), 1);
	ASSERT_ST(rotate(f.s, &p, &c, "fam-kill"), ONCE_OK);
	ASSERT(consumed(&f, &p));
	ASSERT_EQ_U64(reconnects(&f), 1);
	fx_close(&f);
}

/* insert: its first flight (BEGIN, the lock, the reads) waits: killed,
 * ONCE_IO, no row; the same insert then succeeds. */
static void test_insert_killed_in_flight(void)
{
	struct fx f;
	fx_init(&f, 0);
	struct tok t = tok("fam-kill", 0);
	struct caller call = {.call = CALL_INSERT, .a = &t, .family = "fam-kill"};
	ASSERT_ST(kill_while_waiting(&f, &call), ONCE_IO);
	ASSERT_EQ_INT(family_rows(&f, "fam-kill"), 0);
	ASSERT_ST(insert(&f, &t, "fam-kill"), ONCE_OK);
	ASSERT_EQ_INT(family_rows(&f, "fam-kill"), 1);
	ASSERT_EQ_U64(reconnects(&f), 1);
	fx_close(&f);
}

/* revoke: one flight, its COMMIT sent behind the waiting lock and never
 * answered: ONCE_IO (the outcome is unknown to the caller; here nothing
 * committed), then the revocation succeeds. */
static void test_revoke_killed_with_commit_in_flight(void)
{
	struct fx f;
	fx_init(&f, 0);
	struct tok t = tok("fam-kill", 0);
	ASSERT_ST(insert(&f, &t, "fam-kill"), ONCE_OK);
	struct caller call = {.call = CALL_REVOKE, .family = "fam-kill"};
	ASSERT_ST(kill_while_waiting(&f, &call), ONCE_IO);
	ASSERT(!tombstoned(&f, "fam-kill"));
	ASSERT_EQ_INT(family_rows(&f, "fam-kill"), 1);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-kill", 8), ONCE_OK);
	ASSERT(tombstoned(&f, "fam-kill"));
	ASSERT_EQ_INT(family_rows(&f, "fam-kill"), 0);
	ASSERT_EQ_U64(reconnects(&f), 1);
	fx_close(&f);
}

/* A statement timeout inside a flight (the lock held elsewhere, 200 ms):
 * ONCE_IO for insert, rotate and revoke, nothing written, and each next
 * call succeeds once the lock is free. */
static void test_statement_timeout_in_flight(void)
{
	struct fx f;
	fx_init(&f, 200);
	struct tok p = tok("fam-slow", 0), c = tok("fam-slow", 1), q = tok("fam-slow2", 0);
	ASSERT_ST(insert(&f, &p, "fam-slow"), ONCE_OK);
	PGconn *holder = db();
	sql(holder, "BEGIN");
	sql(holder, "SELECT pg_advisory_xact_lock(" LOCK_NS "::int4, hashtext('fam-slow'))");
	sql(holder, "SELECT pg_advisory_xact_lock(" LOCK_NS "::int4, hashtext('fam-slow2'))");
	ASSERT_ST(insert(&f, &q, "fam-slow2"), ONCE_IO);
	ASSERT_ST(rotate(f.s, &p, &c, "fam-slow"), ONCE_IO);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-slow", 8), ONCE_IO);
	sql(holder, "COMMIT");
	PQfinish(holder);
	ASSERT(!consumed(&f, &p));
	ASSERT(!tombstoned(&f, "fam-slow"));
	ASSERT_EQ_INT(family_rows(&f, "fam-slow2"), 0);
	ASSERT_ST(insert(&f, &q, "fam-slow2"), ONCE_OK);
	ASSERT_ST(rotate(f.s, &p, &c, "fam-slow"), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(f.s, "fam-slow", 8), ONCE_OK);
	ASSERT(tombstoned(&f, "fam-slow"));
	fx_close(&f);
}

TESTS(TEST(test_rotate_insert_unique_violation), TEST(test_rotate_insert_lands_nothing),
      TEST(test_insert_unique_violation), TEST(test_rotate_killed_between_flights),
      TEST(test_insert_killed_in_flight), TEST(test_revoke_killed_with_commit_in_flight),
      TEST(test_statement_timeout_in_flight));
TEST_MAIN()
