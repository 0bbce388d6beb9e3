/*
 * tests/pg/pgdb.h - a test's own libpq connection to the server of suite
 * pg (ONCE_TEST_POSTGRES, from tests/pg/cluster.sh), for setting up rows
 * the way AttestoPhoenix writes them and reading back what the engine
 * wrote.  Every statement must succeed, or the test fails with the
 * statement and the server's message.  Include after ../harness.h.
 */
#ifndef ONCE_TEST_PGDB_H
#define ONCE_TEST_PGDB_H

#include <stdarg.h>

#include <libpq-fe.h>

#include "layout.h"

/* A connection in UTC, quiet about NOTICEs. */
static inline PGconn *db(void)
{
	const char *conn = getenv("ONCE_TEST_POSTGRES");
	if (conn == NULL)
		FAIL_AT("suite pg needs ONCE_TEST_POSTGRES (tests/pg/cluster.sh)");
	PGconn *c = PQconnectdb(conn);
	if (PQstatus(c) != CONNECTION_OK)
		FAIL_AT("connect: %s", PQerrorMessage(c));
	PQclear(PQexec(c, "SET TimeZone = 'UTC'; SET client_min_messages = warning"));
	return c;
}

static inline PGresult *sqlv(PGconn *c, const char *fmt, va_list ap)
{
	char q[8192];
	vsnprintf(q, sizeof q, fmt, ap);
	PGresult *r = PQexec(c, q);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		FAIL_AT("%s: %s", q, PQerrorMessage(c));
	return r;
}

__attribute__((format(printf, 2, 3))) static inline PGresult *sql_res(PGconn *c, const char *fmt,
                                                                       ...)
{
	va_list ap;
	va_start(ap, fmt);
	PGresult *r = sqlv(c, fmt, ap);
	va_end(ap);
	return r;
}

#define sql(c, ...) PQclear(sql_res(c, __VA_ARGS__))

/* The first column of the first row as text (a static buffer), "NULL"
 * for NULL, "NONE" for no row. */
__attribute__((format(printf, 2, 3))) static inline const char *sql_text(PGconn *c,
                                                                         const char *fmt, ...)
{
	static char out[4096];
	va_list ap;
	va_start(ap, fmt);
	PGresult *r = sqlv(c, fmt, ap);
	va_end(ap);
	snprintf(out, sizeof out, "%s",
	         PQntuples(r) == 0 ? "NONE" : PQgetisnull(r, 0, 0) ? "NULL" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return out;
}

/* The first column of the first row as an integer (0 for no row). */
#define sql_int(c, ...) atoll(sql_text(c, __VA_ARGS__))

/* A fresh schema holding the five tables, from the same DDL `oncestore
 * schema --schema-prefix` prints (tests/pg/test_schema.sh checks that DDL
 * against ATTESTO-PG 1.2). */
static inline void make_schema_named(PGconn *c, const char *schema)
{
	char *ddl = NULL;
	sql(c, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	ASSERT_ST(once__pg_ddl(schema, NULL, false, &ddl), ONCE_OK);
	PGresult *r = PQexec(c, ddl);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		FAIL_AT("DDL: %s", PQerrorMessage(c));
	PQclear(r);
	free(ddl);
}

/* ---- a store on a schema of the test's own ---- */

/* The successor secret the fixture's stores share (>= 32 bytes, as
 * AttestoPhoenix requires). */
#define PGDB_SECRET "an AttestoPhoenix successor secret, >= 32 bytes"

struct fx {
	struct test_clock clk;
	PGconn *db;
	once_store *s;
	const char *schema;
};

struct store_opts {
	const char *issuer;
	bool secret;        /* pg_successor_secret = PGDB_SECRET */
	int64_t grace;
	uint32_t pool;      /* 0: 4 */
	uint32_t timeout_ms; /* 0: the default */
};

static inline once_store *open_store(struct fx *f, struct store_opts so)
{
	once_options o;
	once_options_init(&o);
	o.postgres = getenv("ONCE_TEST_POSTGRES");
	o.pg_schema = f->schema;
	o.clock = test_clock_read;
	o.clock_ctx = &f->clk;
	o.pg_issuer = so.issuer;
	o.pg_pool_size = so.pool ? so.pool : 4;
	o.pg_rotation_grace = so.grace;
	if (so.timeout_ms)
		o.pg_statement_timeout_ms = so.timeout_ms;
	if (so.secret) {
		o.pg_successor_secret = PGDB_SECRET;
		o.pg_successor_secret_len = strlen(PGDB_SECRET);
	}
	once_store *s = NULL;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK)
		FAIL_AT("once_open: %s", once_status_name(st));
	return s;
}

/* A fresh schema, a connection to look at it, and a store on it at now. */
static inline void fx_start(struct fx *f, const char *schema, int64_t now, struct store_opts so)
{
	atomic_init(&f->clk.now, now);
	f->schema = schema;
	f->db = db();
	make_schema_named(f->db, schema);
	f->s = open_store(f, so);
}

static inline void fx_close(struct fx *f)
{
	ASSERT_ST(once_close(f->s), ONCE_OK);
	sql(f->db, "DROP SCHEMA %s CASCADE", f->schema);
	PQfinish(f->db);
}

/* Token n and its key (Secret.hash of the token string). */
struct tok {
	char token[48];
	char key[ONCE_SECRET_LEN + 1];
};

static inline struct tok tok(const char *prefix, int n)
{
	struct tok t;
	snprintf(t.token, sizeof t.token, "%s-token-%d", prefix, n);
	ASSERT_ST(once_secret_hash(t.token, strlen(t.token), t.key), ONCE_OK);
	return t;
}

#endif /* ONCE_TEST_PGDB_H */
