/*
 * bench/pg.c - oncebench --postgres: the same workloads on the PostgreSQL
 * engine (once_options.postgres), against a server the caller runs.
 *
 * What differs from the embedded runs, and why:
 *   - the tables outlive a run, so each run makes keys of its own (a new
 *     salt, keys.c) and leaves its rows behind: point it at a scratch
 *     database (bench/compare/run.sh empties its tables between runs);
 *   - expiries are real times (now + a day): PostgreSQL's timestamps end
 *     in the year 294276, long before the embedded runs' INT64_MAX / 2;
 *   - the prefill runs on PG_PREFILL_THREADS connections of a store of
 *     its own, with synchronous_commit=off (it is not what is measured,
 *     and pgbench's prefill is one bulk INSERT), then the table is
 *     vacuumed and analyzed and the server checkpoints, untimed, as
 *     bench/compare/reset.sql does before each pgbench run;
 *   - families are bound to PG_BENCH_ISSUER and rotations seal their
 *     successor under a secret (AttestoPhoenix 3.5.1's v2 envelope), as a
 *     deployment shared with AttestoPhoenix nodes must (ATTESTO-PG 2.2.4,
 *     2.2.7).
 * Nothing here logs a statement or a parameter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bench.h"

/* At least 32 bytes, as AttestoPhoenix requires of refresh_successor_secret. */
static const char successor_secret[] = "oncebench refresh successor secret, 48 bytes long";

void pg_bench_times(void)
{
	bench_expires_at = (int64_t)time(NULL) + 86400;
}

void pg_options(const struct pg_target *t, uint32_t threads, once_options *o)
{
	o->postgres = t->conninfo;
	o->pg_schema = t->schema;
	o->pg_pool_size = t->pool ? t->pool : threads;
	o->pg_issuer = PG_BENCH_ISSUER;
	o->pg_successor_secret = successor_secret;
	o->pg_successor_secret_len = sizeof successor_secret - 1;
}

uint64_t pg_run_salt(void)
{
	uint64_t salt = 0;
	while (salt == 0) /* 0 is the unsalted keys */
		if (getrandom(&salt, sizeof salt, 0) != (ssize_t)sizeof salt)
			salt = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	return salt;
}

/* PGOPTIONS as it was before the prefill (NULL: unset). */
static char *saved_pgoptions;
static bool pgoptions_was_set;

void pg_prefill_commit_mode(bool on)
{
	if (on) {
		const char *v = getenv("PGOPTIONS");
		pgoptions_was_set = v != NULL;
		saved_pgoptions = v ? strdup(v) : NULL;
		char buf[512];
		snprintf(buf, sizeof buf, "%s -c synchronous_commit=off", v ? v : "");
		setenv("PGOPTIONS", buf, 1);
	} else {
		if (pgoptions_was_set && saved_pgoptions != NULL)
			setenv("PGOPTIONS", saved_pgoptions, 1);
		else
			unsetenv("PGOPTIONS");
		free(saved_pgoptions);
		saved_pgoptions = NULL;
	}
}

/* The table a workload fills, as the engine names it (no table prefix). */
static const char *kind_table(enum kind kind)
{
	switch (kind) {
	case KIND_CODE: return "attesto_authorization_codes";
	case KIND_NONCE: return "dpop_nonces";
	case KIND_REFRESH: return "attesto_refresh_tokens";
	case KIND_REPLAY: return "dpop_replays";
	default: return NULL;
	}
}

static bool run_command(PGconn *conn, const char *sql)
{
	PGresult *r = PQexec(conn, sql);
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	return ok;
}

void pg_settle(const struct pg_target *t, enum kind kind)
{
	static bool warned;
	const char *table = kind_table(kind);
	PGconn *conn = PQconnectdb(t->conninfo);
	if (PQstatus(conn) != CONNECTION_OK) {
		fprintf(stderr, "oncebench: --postgres: cannot connect to settle the prefill\n");
		PQfinish(conn);
		exit(1);
	}
	bool ok = true;
	if (table != NULL) {
		char sql[512];
		if (t->schema != NULL) {
			char *schema = PQescapeIdentifier(conn, t->schema, strlen(t->schema));
			snprintf(sql, sizeof sql, "VACUUM ANALYZE %s.%s", schema ? schema : "\"\"", table);
			PQfreemem(schema);
		} else {
			snprintf(sql, sizeof sql, "VACUUM ANALYZE %s", table);
		}
		ok = run_command(conn, sql);
	}
	ok = run_command(conn, "CHECKPOINT") && ok;
	if (!ok && !warned) {
		warned = true;
		fprintf(stderr, "oncebench: --postgres: VACUUM ANALYZE or CHECKPOINT after the prefill "
		                "failed (this role may not run them): the timed phases start unsettled\n");
	}
	PQfinish(conn);
}
