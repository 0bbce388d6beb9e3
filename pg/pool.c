/*
 * pg/pool.c - the connection pool: pg_pool_size libpq connections, the
 * statements prepared on each, and what a failure does to a connection.
 *
 * Invariants:
 *   P1. A connection is used by one call at a time: acquire takes it off
 *       the free list under the pool lock, release puts it back.  libpq
 *       needs nothing more (one PGconn, one thread at a time).
 *   P2. Nothing is ever retried.  A statement that fails because the
 *       connection was lost, the server restarted or failed over, or the
 *       statement timed out answers ONCE_IO to its caller: the outcome of
 *       a write in flight (a take, a consume) is unknown, and only the
 *       caller can decide to refuse.  The connection is dropped; a later
 *       acquire makes a new one (counters.reconnects).
 *   P3. A connection is returned only outside any transaction and out of
 *       pipeline mode: one still inside (a caller's error path that did
 *       not reach COMMIT or ROLLBACK, a flight cut short) is closed, never
 *       handed to the next caller.
 *   P4. No statement text with values and no parameter is ever logged
 *       (they carry hashes, claims and ciphertext: ATTESTO-PG 6.15): the
 *       log callback hears the statement's number and SQLSTATE only.
 *       libpq tracing is never turned on.
 *
 * Each connection runs with the session settings AttestoPhoenix's rows
 * assume: TimeZone UTC (timestamps are UTC wall-clock, 6.4), ISO dates
 * (what once__pg_time_parse reads), UTF8, and statement_timeout from
 * the options.  Statements are prepared on a connection the first time
 * they run there, under the name "once_<id>".
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "pg.h"

struct once__pg_conn {
	PGconn *pg;                           /* NULL: not connected (yet, or any more) */
	bool broken;                          /* failed: closed on release (P2) */
	bool had_connection;                  /* a new connection here is a reconnect */
	bool prepared[ONCE_PG_STMT_COUNT];    /* statements prepared on pg */
	struct once__pg_conn *next_free;
};

struct once__pg_pool {
	pthread_mutex_t lock;
	pthread_cond_t returned;          /* a connection came back to the free list */
	struct once__pg_conn *free_list;  /* under lock */
	_Atomic uint64_t open_now;        /* connections now open */
	size_t size;
	struct once__pg_conn conns[];
};

/* ---- logging (P4) ---- */

#define pg_log(p, level, ...) once__logf(&(p)->opt, level, __VA_ARGS__)

/* ---- connecting ---- */

/* The session settings every statement of the engine relies on. */
static bool session_setup(const struct once__pg *p, PGconn *pg)
{
	char sql[160];
	snprintf(sql, sizeof sql,
	         "SET statement_timeout = %" PRIu32 "; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'",
	         p->opt.pg_statement_timeout_ms);
	if (PQsetClientEncoding(pg, "UTF8") != 0)
		return false;
	PGresult *r = PQexec(pg, sql);
	bool ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	return ok;
}

/* Opens c's connection.  ONCE_IO (logged) when the server cannot be
 * reached or refuses us. */
static once_status connect_one(struct once__pg *p, struct once__pg_conn *c)
{
	/* Client-side limits the caller's string may override (it is expanded
	 * after these defaults: expand_dbname): a server host that vanished
	 * without a reset must not hold a call, and its pool slot, for the
	 * kernel's 15-minute retransmission timeout.  TCP options do not
	 * apply to a Unix socket and libpq ignores them there. */
	char user_timeout[24];
	snprintf(user_timeout, sizeof user_timeout, "%u",
	         p->opt.pg_statement_timeout_ms ? p->opt.pg_statement_timeout_ms + 5000u : 30000u);
	const char *const keys[] = {"connect_timeout", "keepalives",    "keepalives_idle",
	                            "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	                            "dbname",          NULL};
	const char *const values[] = {"10", "1", "10", "5", "3", user_timeout, p->conninfo, NULL};
	PGconn *pg = PQconnectdbParams(keys, values, 1);
	if (pg == NULL)
		return ONCE_NOMEM;
	if (PQstatus(pg) != CONNECTION_OK || !session_setup(p, pg)) {
		/* libpq's message names the server and the reason, never a value
		 * of ours; the password is not in it. */
		const char *why = PQerrorMessage(pg);
		size_t n = strcspn(why, "\n");
		pg_log(p, ONCE_LOG_ERROR, "postgres: cannot connect: %.*s", (int)n, why);
		PQfinish(pg);
		atomic_fetch_add(&p->counters.errors, 1);
		return ONCE_IO;
	}
	c->pg = pg;
	c->broken = false;
	memset(c->prepared, 0, sizeof c->prepared);
	atomic_fetch_add(&p->counters.connects, 1);
	if (c->had_connection)
		atomic_fetch_add(&p->counters.reconnects, 1);
	c->had_connection = true;
	atomic_fetch_add(&p->pool->open_now, 1);
	return ONCE_OK;
}

static void disconnect(struct once__pg *p, struct once__pg_conn *c)
{
	if (c->pg == NULL)
		return;
	PQfinish(c->pg);
	c->pg = NULL;
	c->broken = false;
	atomic_fetch_sub(&p->pool->open_now, 1);
}

/* ---- acquire and release (P1, P3) ---- */

static void put_back(struct once__pg_pool *pool, struct once__pg_conn *c)
{
	pthread_mutex_lock(&pool->lock);
	c->next_free = pool->free_list;
	pool->free_list = c;
	pthread_cond_signal(&pool->returned);
	pthread_mutex_unlock(&pool->lock);
}

once_status once__pg_acquire(struct once__pg *p, struct once__pg_conn **out)
{
	struct once__pg_pool *pool = p->pool;
	pthread_mutex_lock(&pool->lock);
	while (pool->free_list == NULL)
		pthread_cond_wait(&pool->returned, &pool->lock);
	struct once__pg_conn *c = pool->free_list;
	pool->free_list = c->next_free;
	pthread_mutex_unlock(&pool->lock);
	if (c->pg == NULL) { /* connect outside the lock: it takes a round trip or more */
		once_status st = connect_one(p, c);
		if (st != ONCE_OK) {
			put_back(pool, c);
			return st;
		}
	}
	*out = c;
	return ONCE_OK;
}

void once__pg_release(struct once__pg *p, struct once__pg_conn *c)
{
	if (c == NULL)
		return;
	if (c->pg != NULL && (c->broken || PQtransactionStatus(c->pg) != PQTRANS_IDLE ||
	                      PQpipelineStatus(c->pg) != PQ_PIPELINE_OFF))
		disconnect(p, c);
	put_back(p->pool, c);
}

/* ---- statements ---- */

/* The text with {codes}, {refresh}, ... replaced by the quoted table
 * names (malloc'd; NULL on NOMEM). */
static char *expand(const struct once__pg *p, const char *text)
{
	static const char *const names[ONCE_PG_TABLE_COUNT] = {
		[ONCE_PG_CODES] = "{codes}",           [ONCE_PG_REFRESH] = "{refresh}",
		[ONCE_PG_REVOCATIONS] = "{revocations}", [ONCE_PG_NONCES] = "{nonces}",
		[ONCE_PG_REPLAYS] = "{replays}",
	};
	size_t size = strlen(text) + 1;
	for (int t = 0; t < ONCE_PG_TABLE_COUNT; t++)
		for (const char *at = strstr(text, names[t]); at; at = strstr(at + 1, names[t]))
			size += strlen(p->table[t]);
	char *out = malloc(size), *o = out;
	if (out == NULL)
		return NULL;
	while (*text) {
		int t = 0;
		while (t < ONCE_PG_TABLE_COUNT && strncmp(text, names[t], strlen(names[t])) != 0)
			t++;
		if (t < ONCE_PG_TABLE_COUNT) {
			o = stpcpy(o, p->table[t]);
			text += strlen(names[t]);
		} else {
			*o++ = *text++;
		}
	}
	*o = '\0';
	return out;
}

/* A statement error that leaves the connection as it was (a constraint,
 * a bad value, a missing table, a transaction the server rolled back):
 * every other failure (connection classes 08, operator intervention 57
 * (statement timeout, terminated backend, shutdown), resources 53, system
 * 58 and XX, a read-only standby after failover 25006) drops it (P2). */
static bool plain_error(const char *sqlstate)
{
	static const char *const classes[] = {"22", "23", "40", "42", "44", "P0"};
	for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++)
		if (strncmp(sqlstate, classes[i], 2) == 0)
			return true;
	return false;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static void count_time(struct once__pg *p, uint64_t ns)
{
	atomic_fetch_add(&p->counters.statements, 1);
	atomic_fetch_add(&p->counters.statement_ns_total, ns);
	uint64_t max = atomic_load(&p->counters.statement_ns_max);
	while (ns > max && !atomic_compare_exchange_weak(&p->counters.statement_ns_max, &max, ns))
		;
}

/* What a statement does, for log lines: an operator reads "code take
 * failed", not a number (the statement's text and parameters are never
 * logged: they carry hashes, claims and ciphertext, ATTESTO-PG 6.15). */
static const char *const statement_names[ONCE_PG_STMT_COUNT] = {
	[ONCE_PG_CODE_PUT] = "code put",
	[ONCE_PG_CODE_GET] = "code get",
	[ONCE_PG_CODE_TAKE] = "code take",
	[ONCE_PG_CODE_TAKE_LOSER] = "code take loser",
	[ONCE_PG_CODE_FINALIZE] = "code finalize",
	[ONCE_PG_ACCESS_RECORD] = "access record",
	[ONCE_PG_ACCESS_RECORD_EXISTS] = "access record exists",
	[ONCE_PG_ACCESS_REVOKE] = "access revoke",
	[ONCE_PG_ACCESS_REVOKED] = "access revoked",
	[ONCE_PG_NONCE_ISSUE] = "nonce issue",
	[ONCE_PG_NONCE_VALID] = "nonce valid",
	[ONCE_PG_NONCE_ACCEPT] = "nonce accept",
	[ONCE_PG_NONCE_ACCEPT_LOSER] = "nonce accept loser",
	[ONCE_PG_REPLAY_CHECK] = "replay check",
	[ONCE_PG_FAMILY_LOCK] = "family lock",
	[ONCE_PG_FAMILY_TOMBSTONED] = "family tombstoned",
	[ONCE_PG_FAMILY_FLAGGED] = "family flagged",
	[ONCE_PG_GENERATION_TAKEN] = "generation taken",
	[ONCE_PG_REFRESH_INSERT] = "refresh insert",
	[ONCE_PG_REFRESH_GET] = "refresh get",
	[ONCE_PG_REFRESH_GET_CHILD] = "refresh get child",
	[ONCE_PG_REFRESH_PARENT] = "refresh parent",
	[ONCE_PG_REFRESH_PARENT_FOR_UPDATE] = "refresh parent for update",
	[ONCE_PG_REFRESH_CONSUME] = "refresh consume",
	[ONCE_PG_REFRESH_CONSUME_LOSER] = "refresh consume loser",
	[ONCE_PG_REFRESH_SET_SUCCESSOR] = "refresh set successor",
	[ONCE_PG_REFRESH_TOKEN_TAKEN] = "refresh token taken",
	[ONCE_PG_REFRESH_MARK_ROTATED] = "refresh mark rotated",
	[ONCE_PG_REFRESH_INSERT_CHILD] = "refresh insert child",
	[ONCE_PG_TOMBSTONE_INSERT] = "tombstone insert",
	[ONCE_PG_FAMILY_DELETE] = "family delete",
	[ONCE_PG_SWEEP_REDACT_V2] = "sweep redact v2",
	[ONCE_PG_SWEEP_REDACT_OTHER] = "sweep redact other",
	[ONCE_PG_SWEEP_CODES] = "sweep codes",
	[ONCE_PG_SWEEP_REFRESH] = "sweep refresh",
	[ONCE_PG_SWEEP_NONCES] = "sweep nonces",
	[ONCE_PG_SWEEP_REPLAYS] = "sweep replays",
	[ONCE_PG_STATS_ROWS] = "stats rows",
};

static const char *statement_name(enum once__pg_stmt id)
{
	return (unsigned)id < ONCE_PG_STMT_COUNT && statement_names[id] ? statement_names[id] : "?";
}

/* The meaning of the SQLSTATEs a call can end with (PostgreSQL's
 * appendix A), so the line says why without the server's message, which
 * may quote a value. */
static const char *sqlstate_meaning(const char *state)
{
	if (state[0] == '\0')
		return "connection lost";
	if (strcmp(state, "57014") == 0)
		return "statement timeout or cancel";
	if (strncmp(state, "57P", 3) == 0)
		return "server shutting down or restarting";
	if (strncmp(state, "08", 2) == 0)
		return "connection failure";
	if (strcmp(state, "53300") == 0)
		return "too many connections";
	if (strncmp(state, "53", 2) == 0)
		return "server out of resources";
	if (strcmp(state, "40P01") == 0)
		return "deadlock";
	if (strncmp(state, "40", 2) == 0)
		return "transaction rolled back";
	if (strcmp(state, "25006") == 0)
		return "read-only transaction (a standby?)";
	if (strncmp(state, "42", 2) == 0)
		return "syntax error or missing object (the tables changed?)";
	return "see PostgreSQL's error codes";
}

/* Classifies a failed result r (may be NULL) of statement `what`: fills
 * sqlstate, marks c broken unless it was a plain error, logs, frees r. */
static void failed(struct once__pg *p, struct once__pg_conn *c, const char *what, PGresult *r,
                   char sqlstate[6])
{
	const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char state[6] = "";
	if (code != NULL && PQstatus(c->pg) == CONNECTION_OK)
		snprintf(state, sizeof state, "%s", code);
	if (state[0] == '\0' || !plain_error(state)) {
		c->broken = true;
		pg_log(p, ONCE_LOG_ERROR, "postgres: %s failed (SQLSTATE %s: %s); connection dropped",
		       what, state[0] ? state : "none", sqlstate_meaning(state));
	}
	atomic_fetch_add(&p->counters.errors, 1);
	if (sqlstate != NULL)
		memcpy(sqlstate, state, sizeof state);
	PQclear(r);
}

static bool prepare(struct once__pg *p, struct once__pg_conn *c, const struct once__pg_sql *sql,
                    const char *name, char sqlstate[6])
{
	char *text = expand(p, sql->text);
	if (text == NULL) {
		if (sqlstate != NULL)
			sqlstate[0] = '\0'; /* out of memory here: reported as a failure */
		return false;
	}
	PGresult *r = PQprepare(c->pg, name, text, sql->nparams, NULL);
	free(text);
	if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
		char what[48];
		snprintf(what, sizeof what, "preparing %s", statement_name(sql->id));
		failed(p, c, what, r, sqlstate);
		return false;
	}
	PQclear(r);
	c->prepared[sql->id] = true;
	return true;
}

PGresult *once__pg_run(struct once__pg *p, struct once__pg_conn *c, const struct once__pg_sql *sql,
                       const char *const *params, char sqlstate[6])
{
	char name[24];
	snprintf(name, sizeof name, "once_%d", (int)sql->id);
	if (!c->prepared[sql->id] && !prepare(p, c, sql, name, sqlstate))
		return NULL;
	uint64_t t0 = mono_ns();
	PGresult *r = PQexecPrepared(c->pg, name, sql->nparams, params, NULL, NULL, 0);
	count_time(p, mono_ns() - t0);
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	char what[48];
	snprintf(what, sizeof what, "%s", statement_name(sql->id));
	failed(p, c, what, r, sqlstate);
	return NULL;
}

bool once__pg_simple(struct once__pg *p, struct once__pg_conn *c, const char *command)
{
	if (c->broken) /* nothing more runs on a failed connection: release closes it (P2) */
		return false;
	uint64_t t0 = mono_ns();
	PGresult *r = PQexec(c->pg, command);
	count_time(p, mono_ns() - t0);
	/* COMMIT in an aborted transaction answers COMMAND_OK with the tag
	 * ROLLBACK: a commit is trusted only when its tag says COMMIT. */
	if (r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK &&
	    (strcmp(command, "COMMIT") != 0 || strcmp(PQcmdStatus(r), "COMMIT") == 0)) {
		PQclear(r);
		return true;
	}
	failed(p, c, command, r, NULL);
	c->broken = true; /* a failed BEGIN/COMMIT/ROLLBACK leaves nothing to trust */
	return false;
}

/* ---- flights: several statements in one round trip (libpq pipeline mode) ---- */

/*
 * Why a flight is safe to send blind: the caller puts in one flight only
 * statements none of which needs an earlier one's result to be chosen or
 * parameterised, so the server runs exactly the statements, in exactly the
 * order, that one round trip each would have run.  What pipeline mode
 * changes is what happens after a failure inside a flight:
 *   - a statement error aborts the transaction and the server skips every
 *     later statement of the flight up to its Sync (each reads
 *     PGRES_PIPELINE_ABORTED), the COMMIT included: nothing was committed,
 *     and the transaction stays open in the aborted state for the
 *     caller's ROLLBACK (or the pool closes the connection, P3);
 *   - a lost connection or a non-plain error marks the connection broken
 *     exactly as once__pg_run does (P2): a COMMIT sent and unanswered has
 *     an unknown outcome, which the caller reports as ONCE_IO.
 * A flight ends with one Sync and leaves pipeline mode before it returns,
 * so between flights the connection is an ordinary one.  Flights are a
 * handful of statements: what one sends and what comes back fit the
 * socket buffers, so sending it whole (blocking) before reading never
 * waits on a server that waits on us.
 */

static const char *step_name(const struct once__pg_step *s)
{
	return s->sql != NULL ? statement_name(s->sql->id) : s->command;
}

static bool step_send(struct once__pg_conn *c, const struct once__pg_step *s)
{
	if (s->sql == NULL) /* BEGIN, COMMIT, ROLLBACK: the extended protocol, no parameters */
		return PQsendQueryParams(c->pg, s->command, 0, NULL, NULL, NULL, NULL, 0) == 1;
	char name[24];
	snprintf(name, sizeof name, "once_%d", (int)s->sql->id);
	return PQsendQueryPrepared(c->pg, name, s->sql->nparams, s->params, NULL, NULL, 0) == 1;
}

/* A step's result is a success: the statement ran, and a COMMIT
 * committed (a COMMIT in an aborted transaction answers "ROLLBACK"). */
static bool step_ok(const struct once__pg_step *s, const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		return false;
	return s->sql != NULL || strcmp(s->command, "COMMIT") != 0 ||
	       strcmp(PQcmdStatus((PGresult *)r), "COMMIT") == 0;
}

/* The connection failed under a flight: broken; counted and logged
 * unless a step had already failed (that failure is the one reported). */
static void flight_lost(struct once__pg *p, struct once__pg_conn *c, const char *what,
                        bool reported, char sqlstate[6])
{
	if (!reported)
		failed(p, c, what, NULL, sqlstate);
	c->broken = true;
}

size_t once__pg_flight(struct once__pg *p, struct once__pg_conn *c, struct once__pg_step *steps,
                       size_t n, char sqlstate[6])
{
	if (sqlstate != NULL)
		sqlstate[0] = '\0';
	for (size_t i = 0; i < n; i++)
		steps[i].result = NULL;
	if (n == 0 || c->broken) /* as once__pg_simple: nothing more runs on a broken one */
		return 0;
	/* Statements new to this connection are prepared first, one round
	 * trip each, once per connection (as once__pg_run prepares them). */
	for (size_t i = 0; i < n; i++) {
		const struct once__pg_sql *sql = steps[i].sql;
		char name[24];
		if (sql == NULL || c->prepared[sql->id])
			continue;
		snprintf(name, sizeof name, "once_%d", (int)sql->id);
		if (!prepare(p, c, sql, name, sqlstate))
			return i;
	}
	if (PQenterPipelineMode(c->pg) != 1) {
		flight_lost(p, c, "entering pipeline mode", false, sqlstate);
		return 0;
	}
	uint64_t t0 = mono_ns();
	for (size_t i = 0; i < n; i++)
		if (!step_send(c, &steps[i])) {
			flight_lost(p, c, step_name(&steps[i]), false, sqlstate);
			return i;
		}
	if (PQpipelineSync(c->pg) != 1) { /* sends the Sync and flushes the flight */
		flight_lost(p, c, "pipeline sync", false, sqlstate);
		return 0;
	}
	size_t first_failed = n; /* n: none yet */
	for (size_t i = 0; i < n; i++) {
		PGresult *r = PQgetResult(c->pg);
		uint64_t t1 = mono_ns();
		if (r == NULL) { /* the connection went away before this result */
			flight_lost(p, c, step_name(&steps[i]), first_failed < n, sqlstate);
			return first_failed < n ? first_failed : i;
		}
		if (PQresultStatus(r) != PGRES_PIPELINE_ABORTED)
			count_time(p, t1 - t0); /* it ran: its share is the wait for it */
		t0 = t1;
		if (first_failed < n) {
			PQclear(r); /* skipped after the failure (PGRES_PIPELINE_ABORTED) */
		} else if (step_ok(&steps[i], r)) {
			steps[i].result = r;
		} else {
			first_failed = i;
			failed(p, c, step_name(&steps[i]), r, sqlstate);
			if (steps[i].sql == NULL) /* a failed BEGIN/COMMIT/ROLLBACK: */
				c->broken = true; /* as once__pg_simple */
		}
		if (c->broken)
			return first_failed; /* lost, or nothing to trust: the pool closes it */
		if ((r = PQgetResult(c->pg)) != NULL) { /* each statement's results end with NULL */
			PQclear(r);
			flight_lost(p, c, "pipeline", first_failed < n, sqlstate);
			return first_failed < n ? first_failed : i;
		}
	}
	PGresult *sync = PQgetResult(c->pg);
	bool synced = sync != NULL && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
	PQclear(sync);
	if (!synced || PQexitPipelineMode(c->pg) != 1) {
		/* Every statement answered, but the connection is not back to
		 * normal: drop it.  A COMMIT that answered did commit. */
		flight_lost(p, c, "pipeline sync", first_failed < n, sqlstate);
	}
	return first_failed;
}

void once__pg_steps_clear(struct once__pg_step *steps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		PQclear(steps[i].result);
		steps[i].result = NULL;
	}
}

uint64_t once__pg_rows(const PGresult *r)
{
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return (uint64_t)PQntuples(r);
	return strtoull(PQcmdTuples((PGresult *)r), NULL, 10);
}

/* ---- opening and closing ---- */

/* Opens the pool and its first connection, on which the layout is checked
 * (once_open: ONCE_IO when the server cannot be reached, ONCE_INVALID when
 * the tables are not AttestoPhoenix's).  The other connections open on
 * first use. */
once_status once__pg_pool_open(struct once__pg *p)
{
	size_t n = p->opt.pg_pool_size;
	if (n == 0 || n > 1024 || p->conninfo == NULL)
		return ONCE_INVALID;
	if (!once__crypto_init()) /* nonces and uuids draw from once__random */
		return ONCE_IO;
	struct once__pg_pool *pool = calloc(1, sizeof *pool + n * sizeof pool->conns[0]);
	if (pool == NULL)
		return ONCE_NOMEM;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->returned, NULL);
	pool->size = n;
	for (size_t i = n; i-- > 0;) {
		pool->conns[i].next_free = pool->free_list;
		pool->free_list = &pool->conns[i];
	}
	p->pool = pool;
	struct once__pg_conn *c;
	once_status st = once__pg_acquire(p, &c);
	if (st == ONCE_OK) {
		st = once__pg_layout_check(p, c->pg);
		once__pg_release(p, c);
	}
	if (st != ONCE_OK)
		once__pg_pool_close(p);
	return st;
}

void once__pg_pool_close(struct once__pg *p)
{
	struct once__pg_pool *pool = p->pool;
	if (pool == NULL)
		return;
	for (size_t i = 0; i < pool->size; i++)
		disconnect(p, &pool->conns[i]);
	pthread_cond_destroy(&pool->returned);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
	p->pool = NULL;
}

void once__pg_pool_figures(struct once__pg *p, uint64_t *open_now, uint64_t *size)
{
	*open_now = p->pool ? atomic_load(&p->pool->open_now) : 0;
	*size = p->pool ? p->pool->size : 0;
}

once_status once__pg_exec(struct once__pg *p, const struct once__pg_sql *sql,
                          const char *const *params, PGresult **res)
{
	struct once__pg_conn *c;
	once_status st = once__pg_acquire(p, &c);
	if (st != ONCE_OK)
		return st;
	*res = once__pg_run(p, c, sql, params, NULL);
	once__pg_release(p, c);
	return *res != NULL ? ONCE_OK : ONCE_IO;
}
