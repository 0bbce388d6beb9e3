/*
 * pg/layout.c - the five tables of AttestoPhoenix 3.5.1 (ATTESTO-PG 1.2),
 * described once, and what is made from that description:
 *
 *   once__pg_ddl            the DDL `oncestore schema` prints, byte for byte
 *                           what Ecto emits for the generated migration
 *   once__pg_layout_check   the check once_open makes on a connection: the
 *                           tables, columns, types, nullability and unique
 *                           keys the engine's statements rely on
 *   once__pg_table_name     the quoted, qualified name statements use
 *
 * What may differ from a fresh install and still pass the check: extra
 * columns and column order (an upgraded 2.x database appends the 3.4
 * columns, ATTESTO-PG 1.4 and 6.17), index names (the engine names
 * columns in ON CONFLICT, never constraints), and non-unique indexes.
 * Defaults are not checked: the engine writes every column it inserts.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layout.h"
#include "pg.h"

/* ---- the description ---- */

struct column {
	const char *name;
	const char *type;     /* as Ecto writes it (ATTESTO-PG 1.1) */
	const char *fallback; /* the DEFAULT expression, or NULL */
	bool not_null;        /* NOT NULL in the DDL; a primary key is NOT NULL anyway */
	const char *origin;   /* for a missing column: which upgrade adds it, or NULL */
};

struct index {
	const char *cols[3]; /* NULL-terminated */
	const char *label;   /* the name's middle part when not the columns ("unused") */
	bool unique;
	const char *where; /* partial index predicate, or NULL */
};

struct table {
	const char *name; /* without the prefix */
	const struct column *cols;
	size_t ncols;
	const char *pkey; /* PRIMARY KEY ("pkey") */
	const struct index *idx;
	size_t nidx;
	const char *origin; /* for a missing table: which upgrade creates it, or NULL */
};

#define ARRAY_ARRAY "ARRAY[]::varchar[]"
#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct column codes_cols[] = {
	{"code_hash", "varchar(88)", NULL, true, NULL},
	{"client_id", "varchar(255)", NULL, true, NULL},
	{"subject", "varchar(255)", NULL, true, NULL},
	{"scope", "varchar(255)[]", ARRAY_ARRAY, true, NULL},
	{"resource", "varchar(255)[]", ARRAY_ARRAY, true, NULL},
	{"redirect_uri", "text", NULL, true, NULL},
	{"code_challenge", "varchar(255)", NULL, false, NULL},
	{"code_challenge_method", "varchar(16)", NULL, false, NULL},
	{"cnf", "jsonb", NULL, false, NULL},
	{"nonce", "varchar(255)", NULL, false, NULL},
	{"claims", "jsonb", "'{}'", true, NULL},
	{"family_id", "varchar(255)", NULL, false, NULL},
	{"access_token_jti", "varchar(255)", NULL, false, NULL},
	{"access_token_expires_at", "timestamp(0)", NULL, false, NULL},
	{"access_token_revoked_at", "timestamp(0)", NULL, false, NULL},
	{"expires_at", "timestamp(0)", NULL, true, NULL},
	{"consumed_at", "timestamp(0)", NULL, false, NULL},
	{"consumed_success", "boolean", "false", true, NULL},
	{"inserted_at", "timestamp(0)", NULL, true, NULL},
};
static const struct index codes_idx[] = {
	{{"expires_at"}, NULL, false, NULL},
	{{"family_id"}, NULL, false, NULL},
	{{"access_token_jti"}, NULL, false, NULL},
};

#define UPGRADE_3_4 "AttestoPhoenix 3.4's upgrade adds it"
static const struct column refresh_cols[] = {
	{"id", "uuid", NULL, false, NULL},
	{"token_hash", "varchar(88)", NULL, true, NULL},
	{"family_id", "varchar(255)", NULL, true, NULL},
	{"generation", "integer", "0", true, NULL},
	{"client_id", "varchar(255)", NULL, false, NULL},
	{"subject", "varchar(255)", NULL, true, NULL},
	{"scope", "varchar(255)[]", ARRAY_ARRAY, true, NULL},
	{"resource", "varchar(255)[]", ARRAY_ARRAY, true, NULL},
	{"acr", "varchar(255)", NULL, false, NULL},
	{"auth_time", "bigint", NULL, false, NULL},
	{"family_expires_at", "bigint", NULL, false, UPGRADE_3_4},
	{"attestation_jkt", "varchar(43)", NULL, false, UPGRADE_3_4},
	{"cnf", "jsonb", NULL, false, NULL},
	{"claims", "jsonb", "'{}'", true, NULL},
	{"consumed", "boolean", "false", true, NULL},
	{"consumed_at", "timestamp(0)", NULL, false, NULL},
	{"successor", "jsonb", NULL, false, NULL},
	{"family_revoked", "boolean", "false", true, NULL},
	{"expires_at", "timestamp(0)", NULL, true, NULL},
	{"parent_hash", "varchar(88)", NULL, false, NULL},
	{"inserted_at", "timestamp(0)", NULL, true, NULL},
};
static const struct index refresh_idx[] = {
	{{"token_hash"}, NULL, true, NULL},
	{{"family_id", "generation"}, NULL, true, NULL},
	{{"family_id"}, NULL, false, NULL},
	{{"expires_at"}, NULL, false, NULL},
};

static const struct column revocations_cols[] = {
	{"family_id", "varchar(255)", NULL, true, NULL},
	{"revoked_at", "timestamp(0)", NULL, true, NULL},
};

static const struct column nonces_cols[] = {
	{"id", "uuid", NULL, false, NULL},
	{"nonce", "varchar(255)", NULL, true, NULL},
	{"issued_at", "timestamp(0)", NULL, true, NULL},
	{"expires_at", "timestamp(0)", NULL, true, NULL},
	{"used_at", "timestamp(0)", NULL, false, NULL},
};
/* No expires_at index, although the sweeper deletes by it (ATTESTO-PG 1.2). */
static const struct index nonces_idx[] = {
	{{"nonce"}, NULL, true, NULL},
	{{"used_at"}, "unused", false, "used_at IS NULL"},
};

/* Microsecond timestamps here only (Ecto's :utc_datetime_usec). */
static const struct column replays_cols[] = {
	{"jti", "varchar(255)", NULL, true, NULL},
	{"expires_at", "timestamp", NULL, true, NULL},
	{"inserted_at", "timestamp", NULL, true, NULL},
};
static const struct index replays_idx[] = {
	{{"expires_at"}, NULL, false, NULL},
};

/* Indexed by enum once__pg_table, in the order the migration creates them. */
static const struct table layout[ONCE_PG_TABLE_COUNT] = {
	[ONCE_PG_CODES] = {"attesto_authorization_codes", codes_cols, N(codes_cols), "code_hash",
	                   codes_idx, N(codes_idx), NULL},
	[ONCE_PG_REFRESH] = {"attesto_refresh_tokens", refresh_cols, N(refresh_cols), "id", refresh_idx,
	                     N(refresh_idx), NULL},
	[ONCE_PG_REVOCATIONS] = {"attesto_refresh_family_revocations", revocations_cols,
	                         N(revocations_cols), "family_id", NULL, 0,
	                         "AttestoPhoenix 3.0's upgrade creates it"},
	[ONCE_PG_NONCES] = {"dpop_nonces", nonces_cols, N(nonces_cols), "id", nonces_idx, N(nonces_idx),
	                    NULL},
	[ONCE_PG_REPLAYS] = {"dpop_replays", replays_cols, N(replays_cols), "jti", replays_idx,
	                     N(replays_idx), NULL},
};

/*
 * The unique keys the engine's statements rely on: ON CONFLICT (cols)
 * infers a unique index from its columns (any name, but not partial and
 * not deferrable), and a unique violation on them reads as a conflict.
 * Columns are sorted by name, as the key query below lists them.  The
 * uuid primary keys are left out: the writer's random id never collides.
 */
static const struct unique_key {
	enum once__pg_table table;
	const char *cols; /* sorted, comma-separated */
	const char *origin;
} engine_keys[] = {
	{ONCE_PG_CODES, "code_hash", NULL},
	{ONCE_PG_REFRESH, "token_hash", NULL},
	{ONCE_PG_REFRESH, "family_id,generation", "AttestoPhoenix 3.0's upgrade adds it"},
	{ONCE_PG_REVOCATIONS, "family_id", NULL},
	{ONCE_PG_NONCES, "nonce", NULL},
	{ONCE_PG_REPLAYS, "jti", NULL},
};

/* ---- names ---- */

/* Writes "a" followed by b (NULL: nothing) as one quoted identifier. */
static void put_ident(FILE *f, const char *a, const char *b)
{
	fputc('"', f);
	for (int part = 0; part < 2; part++)
		for (const char *s = part ? b : a; s != NULL && *s != '\0'; s++) {
			if (*s == '"')
				fputc('"', f); /* "" inside a quoted identifier */
			fputc(*s, f);
		}
	fputc('"', f);
}

static void put_table(FILE *f, const char *schema, const char *prefix, const char *name)
{
	if (schema != NULL) {
		put_ident(f, schema, NULL);
		fputc('.', f);
	}
	put_ident(f, prefix, name);
}

/* Closes a stream from open_memstream(buf, ...); its text, or NULL (and
 * the buffer freed) when a write failed.  *buf is only final after fclose. */
static char *stream_text(FILE *f, char **buf)
{
	bool failed = ferror(f) != 0;
	failed = fclose(f) != 0 || failed;
	if (failed) {
		free(*buf);
		return NULL;
	}
	return *buf;
}

char *once__pg_table_name(const char *schema, const char *prefix, enum once__pg_table t)
{
	if ((unsigned)t >= ONCE_PG_TABLE_COUNT)
		return NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return NULL;
	put_table(f, schema, prefix, layout[t].name);
	return stream_text(f, &buf);
}

/* The name Ecto's default_index_name gives (ATTESTO-PG 1.1), built from
 * the prefixed table name (1.4).  Returns its length; out holds it when it
 * is at most ONCE_PG_IDENTIFIER_MAX bytes. */
static size_t index_name(char out[ONCE_PG_IDENTIFIER_MAX + 1], const char *prefix,
                         const struct table *t, const struct index *ix)
{
	char middle[128];
	if (ix->label != NULL)
		snprintf(middle, sizeof middle, "%s", ix->label);
	else if (ix->cols[1] != NULL)
		snprintf(middle, sizeof middle, "%s_%s", ix->cols[0], ix->cols[1]);
	else
		snprintf(middle, sizeof middle, "%s", ix->cols[0]);
	/* Built whole, then copied only when it fits: a name PostgreSQL would
	 * truncate is refused by the caller, never cut here. */
	char whole[3 * 128];
	int n = snprintf(whole, sizeof whole, "%s%s_%s_index", prefix, t->name, middle);
	if (n < 0 || (size_t)n >= sizeof whole)
		return SIZE_MAX;
	if ((size_t)n <= ONCE_PG_IDENTIFIER_MAX)
		memcpy(out, whole, (size_t)n + 1);
	return (size_t)n;
}

/* ---- name rules ---- */

static bool lowercase_identifier(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

#define IDENT_RULE "must match ^[a-z_][a-z0-9_]*$ (lowercase letters, digits, underscores; not a digit first)"

bool once__pg_schema_valid(const char *schema, char why[ONCE_PG_NAME_PROBLEM_MAX])
{
	const char *problem = NULL;
	if (schema == NULL || !lowercase_identifier(schema))
		problem = IDENT_RULE;
	else if (strlen(schema) > ONCE_PG_IDENTIFIER_MAX)
		problem = "is longer than 63 bytes (PostgreSQL would truncate it)";
	else if (strcmp(schema, "information_schema") == 0)
		problem = "is information_schema, which PostgreSQL reserves";
	else if (strncmp(schema, "pg_", 3) == 0)
		problem = "begins with pg_, which PostgreSQL reserves for system schemas";
	if (problem != NULL)
		snprintf(why, ONCE_PG_NAME_PROBLEM_MAX, "%s", problem);
	return problem == NULL;
}

bool once__pg_table_prefix_valid(const char *prefix, char why[ONCE_PG_NAME_PROBLEM_MAX])
{
	if (prefix == NULL || !lowercase_identifier(prefix)) {
		snprintf(why, ONCE_PG_NAME_PROBLEM_MAX, "%s", IDENT_RULE);
		return false;
	}
	/* The longest name it makes: an index name (the primary keys'
	 * "<table>_pkey" are shorter than any of its table's index names,
	 * and the revocations table, without indexes, is checked too). */
	size_t longest = 0, prefix_len = strlen(prefix);
	for (size_t t = 0; t < ONCE_PG_TABLE_COUNT; t++) {
		size_t pkey = prefix_len + strlen(layout[t].name) + strlen("_pkey");
		longest = pkey > longest ? pkey : longest;
		for (size_t i = 0; i < layout[t].nidx; i++) {
			char name[ONCE_PG_IDENTIFIER_MAX + 1];
			size_t n = index_name(name, prefix, &layout[t], &layout[t].idx[i]);
			longest = n > longest ? n : longest;
		}
	}
	if (longest > ONCE_PG_IDENTIFIER_MAX) {
		snprintf(why, ONCE_PG_NAME_PROBLEM_MAX,
		         "makes a %zu-byte index name; PostgreSQL truncates names past 63 bytes "
		         "(at most %zu bytes of prefix)",
		         longest, prefix_len - (longest - ONCE_PG_IDENTIFIER_MAX));
		return false;
	}
	return true;
}

/* ---- DDL (ATTESTO-PG 1.2 and 1.3) ---- */

static void put_create(FILE *f, const char *schema, const char *prefix, const struct table *t)
{
	fputs("CREATE TABLE ", f);
	put_table(f, schema, prefix, t->name);
	fputs(" (", f);
	for (size_t i = 0; i < t->ncols; i++) {
		const struct column *c = &t->cols[i];
		fprintf(f, "%s\"%s\" %s", i > 0 ? ", " : "", c->name, c->type);
		if (c->fallback != NULL)
			fprintf(f, " DEFAULT %s", c->fallback);
		if (c->not_null)
			fputs(" NOT NULL", f);
	}
	fprintf(f, ", PRIMARY KEY (\"%s\"));\n", t->pkey);
	for (size_t i = 0; i < t->nidx; i++) {
		const struct index *ix = &t->idx[i];
		char name[ONCE_PG_IDENTIFIER_MAX + 1];
		index_name(name, prefix, t, ix); /* fits: the prefix was checked */
		fprintf(f, "CREATE %sINDEX \"%s\" ON ", ix->unique ? "UNIQUE " : "", name);
		put_table(f, schema, prefix, t->name);
		fputs(" (", f);
		for (size_t k = 0; ix->cols[k] != NULL; k++)
			fprintf(f, "%s\"%s\"", k > 0 ? ", " : "", ix->cols[k]);
		fputc(')', f);
		if (ix->where != NULL)
			fprintf(f, " WHERE %s", ix->where);
		fputs(";\n", f);
	}
}

once_status once__pg_ddl(const char *schema, const char *prefix, bool down, char **out)
{
	char why[ONCE_PG_NAME_PROBLEM_MAX];
	if (prefix == NULL)
		prefix = "";
	if ((schema != NULL && !once__pg_schema_valid(schema, why)) ||
	    (prefix[0] != '\0' && !once__pg_table_prefix_valid(prefix, why)))
		return ONCE_INVALID;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return ONCE_NOMEM;
	fputs("BEGIN;\n", f);
	if (down) {
		/* Reverse order; the schema is never dropped (1.3). */
		for (size_t t = ONCE_PG_TABLE_COUNT; t-- > 0;) {
			fputs("DROP TABLE ", f);
			put_table(f, schema, prefix, layout[t].name);
			fputs(";\n", f);
		}
	} else {
		if (schema != NULL) {
			fputs("CREATE SCHEMA IF NOT EXISTS ", f);
			put_ident(f, schema, NULL);
			fputs(";\n", f);
		}
		for (size_t t = 0; t < ONCE_PG_TABLE_COUNT; t++)
			put_create(f, schema, prefix, &layout[t]);
	}
	fputs("COMMIT;\n", f);
	char *text = stream_text(f, &buf);
	if (text == NULL)
		return ONCE_NOMEM;
	*out = text;
	return ONCE_OK;
}

/* ---- the check once_open makes ---- */

/* The table's kind and every live column with its type as format_type()
 * prints it; no row when the name resolves to nothing (to_regclass
 * follows search_path for an unqualified name, as the statements will). */
static const char columns_sql[] =
	"SELECT c.relkind, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull "
	"FROM pg_catalog.pg_class c "
	"LEFT JOIN pg_catalog.pg_attribute a "
	"ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
	"WHERE c.oid = pg_catalog.to_regclass($1)";

/* The key columns (sorted, comma-separated) of each unique index that ON
 * CONFLICT can infer as its arbiter: valid, immediate, not partial, no
 * expressions.  INCLUDE columns (past indnkeyatts) are not key columns. */
static const char keys_sql[] =
	"SELECT (SELECT pg_catalog.string_agg(a.attname::text, ',' ORDER BY a.attname) "
	"FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) "
	"JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
	"WHERE k.n <= i.indnkeyatts) "
	"FROM pg_catalog.pg_index i "
	"WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique AND i.indimmediate "
	"AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL";

struct checker {
	const struct once__pg *p;
	PGconn *conn;
	const char *prefix; /* "" when none */
	unsigned problems;
};

/* One ERROR line through the log callback.  Only names and types are ever
 * formatted into it. */
__attribute__((format(printf, 2, 3))) static void problem(struct checker *c, const char *fmt, ...)
{
	c->problems++;
	if (c->p->opt.log == NULL)
		return;
	char line[1024];
	int n = snprintf(line, sizeof line, "postgres: ");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	c->p->opt.log(c->p->opt.log_ctx, ONCE_LOG_ERROR, line);
}

static PGresult *query(struct checker *c, const char *sql, const char *param)
{
	const char *params[1] = {param};
	return PQexecParams(c->conn, sql, 1, NULL, params, NULL, NULL, 0);
}

/* The catalog query failed: the connection, not the layout.  The SQLSTATE
 * and the server's one-line message (about the catalog, never data). */
static once_status query_failed(struct checker *c, const PGresult *r)
{
	if (c->p->opt.log != NULL) {
		const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
		char line[512];
		snprintf(line, sizeof line, "postgres: checking the tables' layout failed: %s%s%s%s",
		         state != NULL ? "SQLSTATE " : "", state != NULL ? state : "",
		         state != NULL ? ": " : "",
		         msg != NULL ? msg : "the connection failed");
		c->p->opt.log(c->p->opt.log_ctx, ONCE_LOG_ERROR, line);
	}
	return ONCE_IO;
}

static once_status table_missing(struct checker *c, enum once__pg_table t)
{
	const char *origin = layout[t].origin;
	if (c->p->schema != NULL) {
		problem(c, "table \"%s%s\" is missing (expected in schema \"%s\"%s%s)", c->prefix,
		        layout[t].name, c->p->schema, origin ? "; " : "", origin ? origin : "");
		return ONCE_OK;
	}
	PGresult *r = PQexecParams(c->conn, "SELECT pg_catalog.current_setting('search_path')", 0,
	                           NULL, NULL, NULL, NULL, 0);
	once_status st = ONCE_OK;
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		st = query_failed(c, r);
	else
		problem(c, "table \"%s%s\" is missing (not found through search_path %s%s%s)", c->prefix,
		        layout[t].name, PQgetvalue(r, 0, 0), origin ? "; " : "", origin ? origin : "");
	PQclear(r);
	return st;
}

/* How format_type() prints a type Ecto wrote: "varchar(88)" is
 * "character varying(88)", "timestamp(0)" "timestamp(0) without time zone". */
static void catalog_type(const char *ddl, char out[64])
{
	if (strncmp(ddl, "varchar", 7) == 0)
		snprintf(out, 64, "character varying%s", ddl + 7);
	else if (strncmp(ddl, "timestamp", 9) == 0)
		snprintf(out, 64, "%s without time zone", ddl);
	else
		snprintf(out, 64, "%s", ddl);
}

static bool type_matches(const char *ddl, const char *found)
{
	char want[64];
	catalog_type(ddl, want);
	if (strcmp(want, found) == 0)
		return true;
	/* Ecto's bare timestamp keeps microseconds, as timestamp(6) does. */
	return strcmp(ddl, "timestamp") == 0 && strcmp(found, "timestamp(6) without time zone") == 0;
}

/* Column order does not matter and extra columns are fine (1.4). */
static void check_columns(struct checker *c, enum once__pg_table t, const char *table,
                          const PGresult *r)
{
	const struct table *def = &layout[t];
	int rows = PQntuples(r);
	for (size_t i = 0; i < def->ncols; i++) {
		const struct column *col = &def->cols[i];
		int row = -1;
		for (int k = 0; k < rows && row < 0; k++)
			if (!PQgetisnull(r, k, 1) && strcmp(PQgetvalue(r, k, 1), col->name) == 0)
				row = k;
		char want[64];
		catalog_type(col->type, want);
		if (row < 0) {
			problem(c, "%s.\"%s\" is missing (%s%s%s)", table, col->name, want,
			        col->origin ? "; " : "", col->origin ? col->origin : "");
			continue;
		}
		const char *found = PQgetvalue(r, row, 2);
		if (!type_matches(col->type, found))
			problem(c, "%s.\"%s\" has type %s, expected %s", table, col->name, found, want);
		bool not_null = strcmp(PQgetvalue(r, row, 3), "t") == 0;
		bool want_not_null = col->not_null || strcmp(col->name, def->pkey) == 0;
		if (want_not_null && !not_null)
			problem(c, "%s.\"%s\" allows NULL, expected NOT NULL", table, col->name);
		else if (!want_not_null && not_null)
			problem(c, "%s.\"%s\" is NOT NULL, expected to allow NULL (oncestore writes NULL there)",
			        table, col->name);
	}
}

static once_status check_keys(struct checker *c, enum once__pg_table t, const char *table)
{
	PGresult *r = query(c, keys_sql, table);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		once_status st = query_failed(c, r);
		PQclear(r);
		return st;
	}
	for (size_t i = 0; i < N(engine_keys); i++) {
		const struct unique_key *key = &engine_keys[i];
		if (key->table != t)
			continue;
		bool found = false;
		for (int k = 0; k < PQntuples(r) && !found; k++)
			found = !PQgetisnull(r, k, 0) && strcmp(PQgetvalue(r, k, 0), key->cols) == 0;
		if (!found)
			problem(c, "%s has no unique index on (%s) that ON CONFLICT can use "
			        "(not partial, not deferrable)%s%s",
			        table, key->cols, key->origin ? "; " : "", key->origin ? key->origin : "");
	}
	PQclear(r);
	return ONCE_OK;
}

static once_status check_table(struct checker *c, enum once__pg_table t)
{
	char *table = once__pg_table_name(c->p->schema, c->prefix, t);
	if (table == NULL)
		return ONCE_NOMEM;
	once_status st = ONCE_OK;
	PGresult *r = query(c, columns_sql, table);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		st = query_failed(c, r);
	} else if (PQntuples(r) == 0) {
		st = table_missing(c, t);
	} else {
		/* r: ordinary table, p: partitioned table; a view or an index
		 * of the same name cannot take the engine's writes. */
		const char *kind = PQgetvalue(r, 0, 0);
		if (strcmp(kind, "r") != 0 && strcmp(kind, "p") != 0) {
			problem(c, "%s is not a table (pg_class.relkind '%s')", table, kind);
		} else {
			check_columns(c, t, table, r);
			st = check_keys(c, t, table);
		}
	}
	PQclear(r);
	free(table);
	return st;
}

once_status once__pg_layout_check(const struct once__pg *p, PGconn *conn)
{
	struct checker c = {
		.p = p,
		.conn = conn,
		.prefix = p->table_prefix != NULL ? p->table_prefix : "",
		.problems = 0,
	};
	for (int t = 0; t < ONCE_PG_TABLE_COUNT; t++) {
		once_status st = check_table(&c, (enum once__pg_table)t);
		if (st != ONCE_OK)
			return st;
	}
	return c.problems > 0 ? ONCE_INVALID : ONCE_OK;
}
