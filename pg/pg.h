/*
 * pg/pg.h - the PostgreSQL engine's internals, shared by the files of pg/.
 *
 * The engine keeps the five tables of AttestoPhoenix 3.5.1 (ATTESTO-PG
 * section 1.2) and issues AttestoPhoenix's statements (section 2), so C
 * gateways and AttestoPhoenix nodes share one database and one guarantee.
 *
 *   pg/store.c     once__pg_open, close, stats; the engine table
 *   pg/pool.c      the connection pool, prepared statements, failures
 *   pg/layout.c    the tables' columns: DDL for `oncestore schema` and the
 *                  check once_open makes
 *   pg/code.c      authorization codes and their access-token columns
 *   pg/refresh.c   refresh tokens, families, tombstones, rotation
 *   pg/nonce.c     DPoP nonces; pg/replay.c: the replay cache
 *   pg/sweep.c     the sweeper's statements, redaction, in batches
 *   pg/etf.c       the Erlang term format subset successors use
 *   pg/envelope.c  successor envelopes (v2 "XCP.", v1, strict tombstones)
 *   pg/json.c      claims: portable JSON objects (jansson)
 *   pg/text.c      times, arrays and uuids as statement parameters
 *
 * Nothing here calls the public API: the dispatcher (api/) calls in.
 */
#ifndef ONCE_PG_H
#define ONCE_PG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "engine.h"
#include "oncestore.h"

/* The five tables, in the order ATTESTO-PG 1.2 creates them. */
enum once__pg_table {
	ONCE_PG_CODES = 0,   /* attesto_authorization_codes */
	ONCE_PG_REFRESH,     /* attesto_refresh_tokens */
	ONCE_PG_REVOCATIONS, /* attesto_refresh_family_revocations */
	ONCE_PG_NONCES,      /* dpop_nonces */
	ONCE_PG_REPLAYS,     /* dpop_replays */
	ONCE_PG_TABLE_COUNT
};

/* Column size limits of the layout (ATTESTO-PG 1, "Size constants"). */
#define ONCE_PG_HASH_MAX 88         /* code_hash, token_hash, parent_hash */
#define ONCE_PG_IDENT_MAX 255       /* varchar(255): ids, jti, nonce, list elements */
#define ONCE_PG_JKT_MAX 43          /* attestation_jkt varchar(43) */
#define ONCE_PG_METHOD_MAX 16       /* code_challenge_method varchar(16) */
#define ONCE_PG_ADVISORY_NAMESPACE 1096045126 /* 0x41545246 "ATRF" */
#define ONCE_PG_ISSUER_CLAIM "urn:attesto:refresh-token:issuer"

/* Every prepared statement of the engine.  Each file of pg/ defines the
 * text of its own (struct once__pg_sql); the pool prepares a statement on
 * a connection the first time it runs there. */
enum once__pg_stmt {
	/* pg/code.c */
	ONCE_PG_CODE_PUT = 0,
	ONCE_PG_CODE_GET,
	ONCE_PG_CODE_TAKE,
	ONCE_PG_CODE_TAKE_LOSER,
	ONCE_PG_CODE_FINALIZE,
	ONCE_PG_ACCESS_RECORD,
	ONCE_PG_ACCESS_RECORD_EXISTS,
	ONCE_PG_ACCESS_REVOKE,
	ONCE_PG_ACCESS_REVOKED,
	/* pg/nonce.c, pg/replay.c */
	ONCE_PG_NONCE_ISSUE,
	ONCE_PG_NONCE_VALID,
	ONCE_PG_NONCE_ACCEPT,
	ONCE_PG_NONCE_ACCEPT_LOSER,
	ONCE_PG_REPLAY_CHECK,
	/* pg/refresh.c (transactions run BEGIN/COMMIT/ROLLBACK unprepared) */
	ONCE_PG_FAMILY_LOCK,
	ONCE_PG_FAMILY_TOMBSTONED,
	ONCE_PG_FAMILY_FLAGGED,
	ONCE_PG_GENERATION_TAKEN,
	ONCE_PG_REFRESH_INSERT,
	ONCE_PG_REFRESH_GET,
	ONCE_PG_REFRESH_GET_CHILD,
	ONCE_PG_REFRESH_PARENT,
	ONCE_PG_REFRESH_PARENT_FOR_UPDATE,
	ONCE_PG_REFRESH_CONSUME,
	ONCE_PG_REFRESH_CONSUME_LOSER,
	ONCE_PG_REFRESH_SET_SUCCESSOR,
	ONCE_PG_REFRESH_TOKEN_TAKEN,
	ONCE_PG_REFRESH_MARK_ROTATED,
	ONCE_PG_REFRESH_INSERT_CHILD,
	ONCE_PG_TOMBSTONE_INSERT,
	ONCE_PG_FAMILY_DELETE,
	/* pg/sweep.c */
	ONCE_PG_SWEEP_REDACT_V2,
	ONCE_PG_SWEEP_REDACT_OTHER,
	ONCE_PG_SWEEP_CODES,
	ONCE_PG_SWEEP_REFRESH,
	ONCE_PG_SWEEP_NONCES,
	ONCE_PG_SWEEP_REPLAYS,
	/* pg/store.c */
	ONCE_PG_STATS_ROWS,
	ONCE_PG_STMT_COUNT
};

/* A statement's text.  Table names are written {codes}, {refresh},
 * {revocations}, {nonces}, {replays}; the pool replaces them with the
 * quoted, schema-qualified, prefixed names before preparing. */
struct once__pg_sql {
	enum once__pg_stmt id;
	const char *text;
	int nparams;
};

struct once__pg_conn; /* one libpq connection and what it has prepared */

/* Pool and statement figures for once_stats (pg/pool.c). */
struct once__pg_counters {
	_Atomic uint64_t connects;   /* connections made, the first ones included */
	_Atomic uint64_t reconnects; /* connections made to replace a lost one */
	_Atomic uint64_t errors;     /* statements failed, connections not made (ONCE_IO) */
	_Atomic uint64_t statements; /* statements run */
	_Atomic uint64_t statement_ns_total;
	_Atomic uint64_t statement_ns_max;
};

struct once__pg_pool;

struct once__pg {
	const struct once__engine *engine; /* first: see api/engine.h */
	once_options opt;                  /* copy; its strings point at the copies below */
	char *conninfo;
	char *schema;       /* NULL: search_path decides */
	char *table_prefix; /* "" when none */
	char *issuer;       /* NULL: families are not bound to an issuer */
	unsigned char *successor_secret; /* NULL: successors are strict tombstones */
	size_t successor_secret_len;
	/* "\"schema\".\"prefix" "name\"" for each table, quoted for SQL. */
	char *table[ONCE_PG_TABLE_COUNT];
	struct once__pg_pool *pool;
	struct once__pg_counters counters;
	_Atomic uint64_t ops[ONCE_OP_COUNT][ONCE_STATUS_COUNT];
	_Atomic uint64_t sweeps;
};

static inline struct once__pg *once__pg_of(once_store *s)
{
	return (struct once__pg *)(void *)s;
}

/* Counts a call's outcome in once_stats.ops and returns it. */
once_status once__pg_count(struct once__pg *p, once_op op, once_status st);

/* The store clock (options.clock), clamped like the embedded store's. */
int64_t once__pg_now(const struct once__pg *p);

/* ---- pool (pg/pool.c) ---- */

/* Takes a connection, connecting (or reconnecting) if needed; blocks while
 * all pool_size are in use.  ONCE_IO when no connection can be made. */
once_status once__pg_acquire(struct once__pg *p, struct once__pg_conn **out);
/* Returns a connection.  One that failed (lost, timed out, in an aborted
 * transaction) is closed and replaced on a later acquire. */
void once__pg_release(struct once__pg *p, struct once__pg_conn *c);

/* Runs a statement with text parameters (NULL = SQL NULL), preparing it on
 * this connection first if needed.  Returns the result when it is
 * PGRES_COMMAND_OK or PGRES_TUPLES_OK; otherwise NULL, with *sqlstate (may
 * be NULL) set to the five-character SQLSTATE or "" when the connection
 * failed, and the connection marked broken unless the error was a plain
 * statement error (a constraint, a bad value).  Never logs parameters. */
PGresult *once__pg_run(struct once__pg *p, struct once__pg_conn *c, const struct once__pg_sql *sql,
                       const char *const *params, char sqlstate[6]);
/* BEGIN, COMMIT, ROLLBACK (unprepared).  false: the connection failed,
 * or had failed before (a broken connection runs nothing more). */
bool once__pg_simple(struct once__pg *p, struct once__pg_conn *c, const char *command);
/*
 * A flight: several statements sent in one round trip (libpq's pipeline
 * mode) and their results read in order.  Only for statements none of
 * which depends on an earlier one's result; the server runs the same
 * statements in the same order as one round trip each would.
 */
struct once__pg_step {
	const struct once__pg_sql *sql; /* a statement of the engine, or NULL: */
	const char *command;            /* "BEGIN", "COMMIT" or "ROLLBACK" */
	const char *const *params;      /* sql's parameters (text; NULL = SQL NULL) */
	PGresult *result;               /* out: the result when the step succeeded (a COMMIT:
	                                 * when it committed); else NULL */
};
/* Runs steps[0..n) as one flight on c.  Returns n when every step
 * succeeded (then PQclear each result, once__pg_steps_clear).  Otherwise
 * the index of the first step that failed, with *sqlstate (may be NULL)
 * as once__pg_run sets it ("" = the connection failed) and the steps
 * after it not run (result NULL): a statement error has aborted the
 * transaction (the caller rolls back), and the connection is marked
 * broken exactly as once__pg_run and once__pg_simple mark it (lost,
 * timed out, a failed BEGIN/COMMIT/ROLLBACK: a COMMIT's outcome is then
 * unknown).  A broken connection runs nothing: 0, sqlstate "". */
size_t once__pg_flight(struct once__pg *p, struct once__pg_conn *c, struct once__pg_step *steps,
                       size_t n, char sqlstate[6]);
/* PQclears the steps' results. */
void once__pg_steps_clear(struct once__pg_step *steps, size_t n);
/* Rows a statement's result changed (INSERT, UPDATE, DELETE) or returned. */
uint64_t once__pg_rows(const PGresult *r);
/* One statement on a pooled connection (acquire, run, release), for the
 * operations made of single autocommit statements.  *res receives the
 * result on ONCE_OK (PQclear it).  ONCE_IO when no connection could be
 * had or the statement failed in any way (the operations' statements have
 * no error they expect: they check their input first). */
once_status once__pg_exec(struct once__pg *p, const struct once__pg_sql *sql,
                          const char *const *params, PGresult **res);

/* ---- layout (pg/layout.c) ---- */

/* The quoted, qualified name of a table: "schema"."<prefix>name", or
 * "<prefix>name" without a schema (malloc'd; NULL on NOMEM). */
char *once__pg_table_name(const char *schema, const char *prefix, enum once__pg_table t);

/* Checks on conn that the five tables exist with the expected columns and
 * types.  ONCE_OK, or ONCE_INVALID with an error line through the log
 * callback naming what is missing (it never creates or alters anything);
 * ONCE_IO when the check itself could not run. */
once_status once__pg_layout_check(const struct once__pg *p, PGconn *conn);

/* ---- parameters and values (pg/text.c) ---- */

/* "YYYY-MM-DD HH:MM:SS": unix seconds as a UTC timestamp without time zone,
 * the way AttestoPhoenix writes whole seconds. */
void once__pg_time_text(int64_t unix_seconds, char out[32]);
/* Parses a timestamp as the server prints it (fractions allowed and
 * truncated, as Elixir truncates).  false when it is not one. */
bool once__pg_time_parse(const char *text, int64_t *unix_seconds);
/* A varchar[] literal of n strings ('{"a","b"}', each quoted and escaped);
 * malloc'd, NULL on NOMEM. */
char *once__pg_array_text(const char *const *v, size_t n);
/* Parses a varchar[] as the server prints it into n malloc'd strings
 * (*v malloc'd too; free with once__pg_array_free).  false when malformed
 * or on NOMEM, and for an array over 16 MiB of element bytes or 2 Mi
 * elements (an unreadable row); memory and time follow the literal's size. */
bool once__pg_array_parse(const char *text, char ***v, size_t *n);
void once__pg_array_free(char **v, size_t n);
/* A random (version 4) uuid, as the writer must supply `id` (ATTESTO-PG 1.1). */
void once__pg_uuid(char out[37]);
/* True when len bytes at s are text a varchar(max_chars) column takes:
 * valid UTF-8 (PostgreSQL's UTF8 check), no NUL, at most max_chars
 * characters.  Callers refuse anything else before any SQL runs. */
bool once__pg_text_fits(const void *s, size_t len, size_t max_chars);
/* A key (len bytes) as a NUL-terminated parameter (malloc'd), or NULL when
 * it does not fit (once__pg_text_fits) or on NOMEM; callers that must tell
 * the two apart check once__pg_text_fits first. */
char *once__pg_key_text(const void *key, size_t len, size_t max_chars);

/* ---- claims (pg/json.c, jansson) ---- */

/* Checks that claims (len bytes; NULL/0 = {}) are a portable JSON object
 * (ATTESTO-PG 2.1: string keys, values null, booleans, strings, integers
 * in the exact range, arrays, objects; no floats) and returns it encoded
 * compactly in *out (malloc'd, NUL-terminated), with "nonce" set to nonce
 * and the issuer claim set to issuer when those are not NULL.
 * ONCE_INVALID when they are not; ONCE_NOMEM. */
once_status once__pg_claims_encode(const void *claims, size_t len, const char *nonce,
                                   const char *issuer, char **out);

/* ---- the engine's operations, one file each (see api/engine.h) ---- */

/* pg/code.c */
once_status once__pg_code_put(once_store *s, const void *hash, size_t hlen, const once_code *c,
                              once_ticket *ticket);
once_status once__pg_code_get(once_store *s, const void *hash, size_t hlen, once_code **out);
once_status once__pg_code_take(once_store *s, const void *hash, size_t hlen, once_code **out,
                               once_code_meta **meta, once_ticket *ticket);
once_status once__pg_code_finalize(once_store *s, const void *hash, size_t hlen,
                                   once_ticket *ticket);
once_status once__pg_access_record(once_store *s, const void *family_id, size_t flen,
                                   const void *jti, size_t jlen, int64_t expires_at,
                                   once_ticket *ticket);
once_status once__pg_access_revoke(once_store *s, const void *family_id, size_t flen,
                                   once_ticket *ticket);
bool once__pg_access_revoked(once_store *s, const void *jti, size_t jlen);

/* pg/refresh.c */
once_status once__pg_refresh_insert(once_store *s, const void *hash, size_t hlen,
                                    const once_refresh *r, once_ticket *ticket);
once_status once__pg_refresh_get(once_store *s, const void *hash, size_t hlen,
                                 once_refresh **out);
once_status once__pg_refresh_consume(once_store *s, const void *hash, size_t hlen,
                                     once_refresh **out, once_ticket *ticket);
once_status once__pg_refresh_remember(once_store *s, const void *hash, size_t hlen,
                                      const void *succ, size_t n, once_ticket *ticket);
once_status once__pg_refresh_rotate(once_store *s, const void *parent, size_t plen,
                                    const void *child, size_t clen, const once_refresh *succ,
                                    const void *payload, size_t n, once_refresh **parent_out,
                                    once_ticket *ticket);
once_status once__pg_refresh_revoke(once_store *s, const void *family_id, size_t flen,
                                    once_ticket *ticket);

/* pg/nonce.c, pg/replay.c */
once_status once__pg_nonce_issue(once_store *s, int64_t ttl_seconds,
                                 char out[ONCE_NONCE_LEN + 1], once_ticket *ticket);
bool once__pg_nonce_valid(once_store *s, const void *nonce, size_t len);
once_status once__pg_nonce_accept(once_store *s, const void *nonce, size_t len,
                                  int64_t ttl_seconds, once_ticket *ticket);
once_status once__pg_replay_check(once_store *s, const void *jti, size_t len,
                                  int64_t ttl_seconds, once_ticket *ticket);

/* pg/sweep.c */
once_status once__pg_sweep(once_store *s, once_sweep_counts *out);
/* The sweep's first step (ATTESTO-PG 2.2.6, 4): redacts expired refresh
 * successors on c at `now` (unix seconds, the sweep's one now).  pg/sweep.c
 * calls it before any delete; pg/refresh_successor.c implements it, in
 * batches of 1000 rows.  ONCE_OK, or ONCE_IO: the sweep then skips only
 * the refresh delete (a successor is redacted before its row goes); codes,
 * nonces and replays are still swept. */
once_status once__pg_sweep_redact(struct once__pg *p, struct once__pg_conn *c, int64_t now);

/* pg/pool.c: opening and closing the pool (pg/store.c calls these). */
once_status once__pg_pool_open(struct once__pg *p);
void once__pg_pool_close(struct once__pg *p);
/* Connections now open and the pool size, for once_stats. */
void once__pg_pool_figures(struct once__pg *p, uint64_t *open_now, uint64_t *size);

#endif /* ONCE_PG_H */
