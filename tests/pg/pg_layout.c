/*
 * tests/pg/pg_layout.c - the layout check once_open makes (pg/layout.c,
 * ATTESTO-PG 1.2-1.4) against real tables, and the table names the
 * statements use.  Suite pg: ONCE_TEST_POSTGRES names the server
 * (tests/pg/cluster.sh starts one).
 *
 * Each test runs in a database of its own, created from the DDL
 * `oncestore schema` prints (once__pg_ddl) and dropped when the test
 * process exits; then it damages the tables the way a drifted or
 * half-upgraded database would be, and asserts the exact ERROR lines.
 */
#include <libpq-fe.h>

#include "../harness.h"
#include "layout.h"
#include "pg.h"

/* ---- fixture ---- */

static PGconn *admin; /* to ONCE_TEST_POSTGRES's database: creates and drops ours */
static PGconn *conn;  /* to our database */
static char dbname[64];

#define MAX_LINES 32
static char lines[MAX_LINES][1024];
static int nlines;

static void capture(void *ctx, once_log_level level, const char *message)
{
	(void)ctx;
	if (level != ONCE_LOG_ERROR)
		FAIL_AT("a layout problem logged at level %d: %s", (int)level, message);
	if (nlines == MAX_LINES)
		FAIL_AT("more than %d lines logged", MAX_LINES);
	snprintf(lines[nlines++], sizeof lines[0], "%s", message);
}

static void drop_database(void)
{
	if (conn != NULL)
		PQfinish(conn);
	conn = NULL;
	if (admin != NULL) {
		char q[128];
		snprintf(q, sizeof q, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", dbname);
		PQclear(PQexec(admin, q));
		PQfinish(admin);
		admin = NULL;
	}
}

static PGresult *exec_ok(PGconn *c, const char *q)
{
	PGresult *r = PQexec(c, q);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		FAIL_AT("%s: %s", q, PQerrorMessage(c));
	return r;
}

static void sql(const char *q)
{
	PQclear(exec_ok(conn, q));
}

/* A fresh empty database for this test process, dropped at exit. */
static void open_database(void)
{
	const char *info = getenv("ONCE_TEST_POSTGRES");
	if (info == NULL || info[0] == '\0')
		FAIL_AT("ONCE_TEST_POSTGRES is not set (eval \"$(tests/pg/cluster.sh start)\" sets it)");
	admin = PQconnectdb(info);
	if (PQstatus(admin) != CONNECTION_OK)
		FAIL_AT("connecting to ONCE_TEST_POSTGRES: %s", PQerrorMessage(admin));
	PQclear(exec_ok(admin, "SET client_min_messages = warning"));
	snprintf(dbname, sizeof dbname, "once_layout_%ld", (long)getpid());
	atexit(drop_database);
	char q[128];
	snprintf(q, sizeof q, "DROP DATABASE IF EXISTS \"%s\"", dbname);
	PQclear(exec_ok(admin, q));
	snprintf(q, sizeof q, "CREATE DATABASE \"%s\"", dbname);
	PQclear(exec_ok(admin, q));
	/* The second dbname overrides the one inside the connection string. */
	const char *const keys[] = {"dbname", "dbname", NULL};
	const char *const values[] = {info, dbname, NULL};
	conn = PQconnectdbParams(keys, values, 1);
	if (PQstatus(conn) != CONNECTION_OK)
		FAIL_AT("connecting to %s: %s", dbname, PQerrorMessage(conn));
	PQclear(exec_ok(conn, "SET client_min_messages = warning"));
}

/* A database holding the tables as `oncestore schema` creates them. */
static void open_with_tables(const char *schema, const char *prefix)
{
	open_database();
	char *ddl = NULL;
	ASSERT_ST(once__pg_ddl(schema, prefix, false, &ddl), ONCE_OK);
	sql(ddl);
	free(ddl);
}

/* Runs the check as once_open would, with these options; lines[] holds
 * what it logged. */
static once_status check_with(const char *schema, const char *prefix, bool log)
{
	static struct once__pg p;
	memset(&p, 0, sizeof p);
	p.schema = (char *)schema;
	p.table_prefix = (char *)(prefix != NULL ? prefix : "");
	if (log)
		p.opt.log = capture;
	nlines = 0;
	return once__pg_layout_check(&p, conn);
}

static once_status check(const char *schema, const char *prefix)
{
	return check_with(schema, prefix, true);
}

/* Exactly these lines were logged, in this order. */
#define ASSERT_LINES(...)                                                                         \
	do {                                                                                      \
		const char *want_[] = {__VA_ARGS__};                                              \
		int n_ = (int)(sizeof want_ / sizeof want_[0]);                                   \
		for (int i_ = 0; i_ < nlines || i_ < n_; i_++)                                    \
			ASSERT_STR(i_ < nlines ? lines[i_] : "(no line)",                         \
			           i_ < n_ ? want_[i_] : "(no line)");                            \
	} while (0)

/* ---- the tables as created pass ---- */

static void test_fresh_tables_pass(void)
{
	open_with_tables(NULL, NULL);
	ASSERT_ST(check(NULL, NULL), ONCE_OK);
	ASSERT_EQ_INT(nlines, 0);
}

static void test_schema_and_prefix_pass(void)
{
	open_with_tables("auth", "oauth_");
	ASSERT_ST(check("auth", "oauth_"), ONCE_OK);
	ASSERT_EQ_INT(nlines, 0);
	/* The same tables under other names are not these. */
	ASSERT_ST(check("auth", NULL), ONCE_INVALID);
	ASSERT_EQ_INT(nlines, 5);
	ASSERT_STR(lines[4], "postgres: table \"dpop_replays\" is missing (expected in schema \"auth\")");
	ASSERT_ST(check(NULL, "oauth_"), ONCE_INVALID);
	ASSERT_EQ_INT(nlines, 5);
	ASSERT_STR(lines[3], "postgres: table \"oauth_dpop_nonces\" is missing (not found through "
	                     "search_path \"$user\", public)");
}

/* Without a schema the tables are found the way the statements find
 * them: through the connection's search_path. */
static void test_search_path_finds_tables(void)
{
	open_with_tables("auth", NULL);
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_EQ_INT(nlines, 5);
	sql("SET search_path = auth");
	ASSERT_ST(check(NULL, NULL), ONCE_OK);
	ASSERT_EQ_INT(nlines, 0);
}

/* A 2.x database upgraded to 3.x: the 3.4 columns appended, an extra
 * column, code_hash unique through an index instead of the primary key
 * (before 3.1), other index names.  ATTESTO-PG 1.4, 6.17. */
static void test_upgraded_layout_passes(void)
{
	open_with_tables(NULL, NULL);
	sql("ALTER TABLE attesto_refresh_tokens DROP COLUMN family_expires_at, "
	    "DROP COLUMN attestation_jkt");
	sql("ALTER TABLE attesto_refresh_tokens ADD legacy_note text, ADD family_expires_at bigint, "
	    "ADD attestation_jkt varchar(43)");
	sql("ALTER TABLE attesto_authorization_codes DROP CONSTRAINT attesto_authorization_codes_pkey");
	sql("ALTER TABLE attesto_authorization_codes ALTER code_hash SET NOT NULL");
	sql("CREATE UNIQUE INDEX attesto_authorization_codes_code_hash_index "
	    "ON attesto_authorization_codes (code_hash)");
	sql("ALTER INDEX dpop_nonces_nonce_index RENAME TO some_other_name");
	/* Ecto's timestamp and timestamp(6) both keep microseconds. */
	sql("ALTER TABLE dpop_replays ALTER expires_at TYPE timestamp(6)");
	ASSERT_ST(check(NULL, NULL), ONCE_OK);
	ASSERT_EQ_INT(nlines, 0);
	/* The column really moved (the check did not pass by position). */
	PGresult *r = exec_ok(conn, "SELECT attnum FROM pg_attribute WHERE attrelid = "
	                            "'attesto_refresh_tokens'::regclass AND attname = 'attestation_jkt'");
	ASSERT(atoi(PQgetvalue(r, 0, 0)) > 21);
	PQclear(r);
}

/* ---- each kind of drift is named ---- */

static void test_dropped_column_named(void)
{
	open_with_tables(NULL, NULL);
	sql("ALTER TABLE attesto_refresh_tokens DROP COLUMN family_expires_at");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES("postgres: \"attesto_refresh_tokens\".\"family_expires_at\" is missing (bigint; "
	             "AttestoPhoenix 3.4's upgrade adds it)");
	sql("ALTER TABLE dpop_nonces DROP COLUMN used_at");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES("postgres: \"attesto_refresh_tokens\".\"family_expires_at\" is missing (bigint; "
	             "AttestoPhoenix 3.4's upgrade adds it)",
	             "postgres: \"dpop_nonces\".\"used_at\" is missing (timestamp(0) without time zone)");
}

static void test_retyped_column_named(void)
{
	open_with_tables("auth", "oauth_");
	sql("ALTER TABLE auth.oauth_dpop_replays ALTER expires_at TYPE timestamp(0)");
	sql("ALTER TABLE auth.oauth_attesto_authorization_codes ALTER code_hash TYPE varchar(255)");
	sql("ALTER TABLE auth.oauth_attesto_authorization_codes ALTER scope TYPE text[]");
	sql("ALTER TABLE auth.oauth_attesto_refresh_tokens ALTER auth_time TYPE integer");
	sql("ALTER TABLE auth.oauth_attesto_refresh_tokens ALTER successor TYPE json");
	sql("ALTER TABLE auth.oauth_dpop_nonces ALTER issued_at TYPE timestamptz(0)");
	ASSERT_ST(check("auth", "oauth_"), ONCE_INVALID);
	ASSERT_LINES(
		"postgres: \"auth\".\"oauth_attesto_authorization_codes\".\"code_hash\" has type "
		"character varying(255), expected character varying(88)",
		"postgres: \"auth\".\"oauth_attesto_authorization_codes\".\"scope\" has type text[], "
		"expected character varying(255)[]",
		"postgres: \"auth\".\"oauth_attesto_refresh_tokens\".\"auth_time\" has type integer, "
		"expected bigint",
		"postgres: \"auth\".\"oauth_attesto_refresh_tokens\".\"successor\" has type json, expected "
		"jsonb",
		"postgres: \"auth\".\"oauth_dpop_nonces\".\"issued_at\" has type timestamp(0) with time "
		"zone, expected timestamp(0) without time zone",
		"postgres: \"auth\".\"oauth_dpop_replays\".\"expires_at\" has type timestamp(0) without "
		"time zone, expected timestamp without time zone");
}

static void test_missing_table_named(void)
{
	open_with_tables(NULL, NULL);
	sql("DROP TABLE dpop_replays");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES("postgres: table \"dpop_replays\" is missing (not found through search_path "
	             "\"$user\", public)");
	sql("DROP TABLE attesto_refresh_family_revocations");
	sql("CREATE SCHEMA auth");
	sql("ALTER TABLE attesto_authorization_codes SET SCHEMA auth");
	sql("ALTER TABLE attesto_refresh_tokens SET SCHEMA auth");
	sql("ALTER TABLE dpop_nonces SET SCHEMA auth");
	ASSERT_ST(check("auth", NULL), ONCE_INVALID);
	ASSERT_LINES("postgres: table \"attesto_refresh_family_revocations\" is missing (expected in "
	             "schema \"auth\"; AttestoPhoenix 3.0's upgrade creates it)",
	             "postgres: table \"dpop_replays\" is missing (expected in schema \"auth\")");
}

static void test_nullability_named(void)
{
	open_with_tables(NULL, NULL);
	sql("ALTER TABLE attesto_authorization_codes ALTER expires_at DROP NOT NULL");
	sql("ALTER TABLE attesto_authorization_codes ALTER nonce SET NOT NULL");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES("postgres: \"attesto_authorization_codes\".\"nonce\" is NOT NULL, expected to "
	             "allow NULL (oncestore writes NULL there)",
	             "postgres: \"attesto_authorization_codes\".\"expires_at\" allows NULL, expected "
	             "NOT NULL");
}

/* ON CONFLICT (cols) needs a unique index it can infer: any name, but not
 * partial and not deferrable. */
static void test_unique_keys_named(void)
{
	open_with_tables(NULL, NULL);
	const char *nonce_line = "postgres: \"dpop_nonces\" has no unique index on (nonce) that ON "
	                         "CONFLICT can use (not partial, not deferrable)";
	sql("DROP INDEX dpop_nonces_nonce_index");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES(nonce_line);
	sql("CREATE UNIQUE INDEX partial_nonce ON dpop_nonces (nonce) WHERE used_at IS NULL");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES(nonce_line);
	sql("ALTER TABLE dpop_nonces ADD CONSTRAINT deferred_nonce UNIQUE (nonce) DEFERRABLE");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES(nonce_line);
	sql("CREATE UNIQUE INDEX nonce_with_include ON dpop_nonces (nonce) INCLUDE (expires_at)");
	ASSERT_ST(check(NULL, NULL), ONCE_OK);
	/* A unique index on more columns does not make one column unique. */
	sql("DROP INDEX attesto_refresh_tokens_family_id_generation_index");
	sql("ALTER TABLE attesto_refresh_family_revocations DROP CONSTRAINT "
	    "attesto_refresh_family_revocations_pkey");
	sql("CREATE UNIQUE INDEX wider ON attesto_refresh_family_revocations (family_id, revoked_at)");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES("postgres: \"attesto_refresh_tokens\" has no unique index on "
	             "(family_id,generation) that ON CONFLICT can use (not partial, not deferrable); "
	             "AttestoPhoenix 3.0's upgrade adds it",
	             "postgres: \"attesto_refresh_family_revocations\" has no unique index on "
	             "(family_id) that ON CONFLICT can use (not partial, not deferrable)");
}

static void test_view_is_not_a_table(void)
{
	open_with_tables(NULL, NULL);
	sql("ALTER TABLE dpop_replays RENAME TO replays_elsewhere");
	sql("CREATE VIEW dpop_replays AS SELECT * FROM replays_elsewhere");
	ASSERT_ST(check(NULL, NULL), ONCE_INVALID);
	ASSERT_LINES("postgres: \"dpop_replays\" is not a table (pg_class.relkind 'v')");
}

/* Without a log callback the answer is the same and nothing is called. */
static void test_no_log_callback(void)
{
	open_with_tables(NULL, NULL);
	sql("DROP TABLE dpop_nonces");
	ASSERT_ST(check_with(NULL, NULL, false), ONCE_INVALID);
	ASSERT_EQ_INT(nlines, 0);
}

/* A check that cannot run says so (ONCE_IO), not "the layout is wrong". */
static void test_failed_query_is_io(void)
{
	open_with_tables(NULL, NULL);
	sql("BEGIN");
	PQclear(PQexec(conn, "SELECT 1/0"));
	ASSERT_ST(check(NULL, NULL), ONCE_IO);
	ASSERT_LINES("postgres: checking the tables' layout failed: SQLSTATE 25P02: current "
	             "transaction is aborted, commands ignored until end of transaction block");
	sql("ROLLBACK");
	ASSERT_ST(check(NULL, NULL), ONCE_OK);
	/* A connection the server ended. */
	PQclear(PQexec(conn, "SELECT pg_terminate_backend(pg_backend_pid())"));
	ASSERT_ST(check(NULL, NULL), ONCE_IO);
	ASSERT_EQ_INT(nlines, 1);
	ASSERT(strncmp(lines[0], "postgres: checking the tables' layout failed: ", 46) == 0);
}

/* ---- names ---- */

static void test_table_names(void)
{
	char *n = once__pg_table_name("auth", "oauth_", ONCE_PG_REPLAYS);
	ASSERT_STR(n, "\"auth\".\"oauth_dpop_replays\"");
	free(n);
	n = once__pg_table_name(NULL, "", ONCE_PG_REVOCATIONS);
	ASSERT_STR(n, "\"attesto_refresh_family_revocations\"");
	free(n);
	n = once__pg_table_name(NULL, NULL, ONCE_PG_CODES);
	ASSERT_STR(n, "\"attesto_authorization_codes\"");
	free(n);
	/* Quotes inside are doubled, whatever the options hold. */
	n = once__pg_table_name("a\"b", "x\"", ONCE_PG_NONCES);
	ASSERT_STR(n, "\"a\"\"b\".\"x\"\"dpop_nonces\"");
	free(n);
	ASSERT(once__pg_table_name(NULL, NULL, ONCE_PG_TABLE_COUNT) == NULL);
	ASSERT(once__pg_table_name(NULL, NULL, (enum once__pg_table)-1) == NULL);
}

/* The names once_open would be given are checked by the same rules as
 * `oncestore schema`'s, and nothing is made from a refused one. */
static void test_name_rules(void)
{
	char why[ONCE_PG_NAME_PROBLEM_MAX];
	ASSERT(once__pg_schema_valid("auth", why));
	ASSERT(once__pg_schema_valid("_a9", why));
	const char *bad_schemas[] = {"", "Auth", "9a", "a-b", "a b", "information_schema", "pg_x",
	                             "pg_"};
	for (size_t i = 0; i < sizeof bad_schemas / sizeof bad_schemas[0]; i++) {
		why[0] = '\0';
		ASSERT(!once__pg_schema_valid(bad_schemas[i], why));
		ASSERT(why[0] != '\0');
	}
	ASSERT(!once__pg_schema_valid(NULL, why));
	char name[80];
	memset(name, 'a', 63);
	name[63] = '\0';
	ASSERT(once__pg_schema_valid(name, why));
	strcat(name, "a");
	ASSERT(!once__pg_schema_valid(name, why));
	ASSERT_STR(why, "is longer than 63 bytes (PostgreSQL would truncate it)");

	/* The longest name a prefix makes is
	 * <prefix>attesto_authorization_codes_access_token_jti_index: 50 bytes. */
	ASSERT(once__pg_table_prefix_valid("abcdefghijklm", why));
	ASSERT(!once__pg_table_prefix_valid("abcdefghijklmn", why));
	ASSERT_STR(why, "makes a 64-byte index name; PostgreSQL truncates names past 63 bytes (at "
	                "most 13 bytes of prefix)");
	ASSERT(!once__pg_table_prefix_valid("", why));
	ASSERT(!once__pg_table_prefix_valid("Oauth_", why));
	ASSERT(!once__pg_table_prefix_valid(NULL, why));

	char *out = (char *)"untouched";
	ASSERT_ST(once__pg_ddl("pg_catalog", NULL, false, &out), ONCE_INVALID);
	ASSERT_ST(once__pg_ddl(NULL, "x\"", true, &out), ONCE_INVALID);
	ASSERT_STR(out, "untouched");
}

TESTS(TEST(test_fresh_tables_pass), TEST(test_schema_and_prefix_pass),
      TEST(test_search_path_finds_tables), TEST(test_upgraded_layout_passes),
      TEST(test_dropped_column_named), TEST(test_retyped_column_named),
      TEST(test_missing_table_named), TEST(test_nullability_named), TEST(test_unique_keys_named),
      TEST(test_view_is_not_a_table), TEST(test_no_log_callback), TEST(test_failed_query_is_io),
      TEST(test_table_names), TEST(test_name_rules));
TEST_MAIN()
