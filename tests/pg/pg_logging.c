/*
 * tests/pg/pg_logging.c - failures speak, secrets do not.  Every line the
 * PostgreSQL engine sends to the log callback while its calls fail in
 * every way a call can (lost connections, a statement timeout, refused
 * input, conflicts) and succeed (rotations with sealed successors) is
 * kept and searched for what the statements carried: hashes, subjects,
 * claims, successor tokens.  None may appear (ATTESTO-PG 6.15: parameters
 * are secrets); the failures themselves must be logged.
 *
 * Suite pg: ONCE_TEST_POSTGRES, ONCE_TEST_PG_SCHEMA, ONCE_TEST_TOOL.
 */
#include <pthread.h>

#include "../harness.h"

#define MAX_LINES 4096

static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;
static char *lines[MAX_LINES];
static int nlines;

static void keep_line(void *ctx, once_log_level level, const char *message)
{
	(void)ctx;
	(void)level;
	pthread_mutex_lock(&lines_lock);
	if (nlines < MAX_LINES)
		lines[nlines++] = strdup(message);
	pthread_mutex_unlock(&lines_lock);
}

static void forget_lines(void)
{
	for (int i = 0; i < nlines; i++)
		free(lines[i]);
	nlines = 0;
}

static void assert_never_logged(const char *secret)
{
	for (int i = 0; i < nlines; i++)
		if (strstr(lines[i], secret) != NULL)
			FAIL_AT("logged \"%s\" in: %s", secret, lines[i]);
}

static bool logged(const char *part)
{
	for (int i = 0; i < nlines; i++)
		if (strstr(lines[i], part) != NULL)
			return true;
	return false;
}

/* Ends every other session of the database (the store's connections). */
static void terminate_store_connections(void)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "psql -qAtX -d '%s' -c 'SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
	         "WHERE datname = current_database() AND pid <> pg_backend_pid()' >/dev/null",
	         getenv("ONCE_TEST_POSTGRES"));
	test_shell(cmd);
}

static struct test_clock clk = {1900000000};

static void test_failures_are_logged_and_parameters_never(void)
{
	once_options o = test_options(&clk);
	o.log = keep_line;
	o.pg_pool_size = 1; /* one connection: the one the termination hits */
	o.pg_statement_timeout_ms = 200;
	o.pg_successor_secret = "thirty-two bytes of shared successor secret";
	o.pg_successor_secret_len = strlen(o.pg_successor_secret);
	once_store *s = test_open(&o);

	char code_key[ONCE_SECRET_LEN + 1], parent[ONCE_SECRET_LEN + 1], child[ONCE_SECRET_LEN + 1];
	test_key(code_key, "logging-code", 1);
	test_key(parent, "logging-parent", 1);
	const char *child_token = "the-child-refresh-token-handed-to-the-client";
	ASSERT_ST(once_secret_hash(child_token, strlen(child_token), child), ONCE_OK);
	const char *claims = "{\"email\":\"alice-private@example.org\"}";

	once_code c = test_code(clk.now + 60);
	c.subject = "subject-alice-4711";
	c.claims = claims;
	c.claims_len = strlen(claims);
	ASSERT_ST(once_code_put(s, code_key, strlen(code_key), &c), ONCE_OK);
	ASSERT_ST(once_code_put(s, code_key, strlen(code_key), &c), ONCE_EXISTS);
	c.claims = "not json";
	c.claims_len = 8;
	ASSERT_ST(once_code_put(s, "another-key", 11, &c), ONCE_INVALID);

	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = "family-secretish-22chr";
	r.subject = "subject-alice-4711";
	r.expires_at = clk.now + 3600;
	ASSERT_ST(once_refresh_insert(s, parent, strlen(parent), &r), ONCE_OK);
	once_refresh *out = NULL;
	ASSERT_ST(once_refresh_rotate(s, parent, strlen(parent), child, strlen(child), &r, child_token,
	                              strlen(child_token), &out),
	          ONCE_OK);
	once_free(out);

	/* The server ends the store's session: the next call fails with IO,
	 * and the pool reconnects on the one after. */
	terminate_store_connections();
	ASSERT_ST(once_replay_check(s, "replay-key-after-kill", 21, 121), ONCE_IO);
	ASSERT_ST(once_replay_check(s, "replay-key-after-kill", 21, 121), ONCE_OK);

	/* A statement past pg_statement_timeout_ms: pg_sleep through a
	 * statement of our own is not possible, so hold the row lock from
	 * another session while the store tries to take the code. */
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
	         "psql -qX -d '%s' -c \"BEGIN; SELECT 1 FROM %s.attesto_authorization_codes WHERE "
	         "code_hash = '%s' FOR UPDATE; SELECT pg_sleep(1); COMMIT;\" >/dev/null &",
	         getenv("ONCE_TEST_POSTGRES"), getenv("ONCE_TEST_PG_SCHEMA"), code_key);
	test_shell(cmd);
	struct timespec wait = {0, 300 * 1000000L};
	nanosleep(&wait, NULL);
	ASSERT_ST(once_code_take(s, code_key, strlen(code_key), NULL, NULL), ONCE_IO);
	ASSERT_ST(once_close(s), ONCE_OK);

	/* The failures spoke... */
	ASSERT(nlines >= 2);
	for (int i = 0; i < nlines; i++)
		printf("# logged: %s\n", lines[i]);
	ASSERT(logged("postgres"));
	/* ...and nothing the statements carried was said. */
	assert_never_logged(code_key);
	assert_never_logged(parent);
	assert_never_logged(child);
	assert_never_logged(child_token);
	assert_never_logged("subject-alice-4711");
	assert_never_logged("alice-private@example.org");
	assert_never_logged("family-secretish-22chr");
	assert_never_logged("replay-key-after-kill");
	assert_never_logged("XCP.");
	forget_lines();
}

/* A refused option at open says which and why, and opens nothing. */
static void expect_refused(once_options o, const char *option)
{
	forget_lines();
	once_store *s = NULL;
	ASSERT_ST(once_open(&o, &s), ONCE_INVALID);
	ASSERT(s == NULL);
	if (!logged(option))
		FAIL_AT("no log line names %s", option);
}

static void test_refused_options_are_named(void)
{
	once_options base = test_options(&clk);
	base.log = keep_line;
	once_options o = base;
	o.pg_issuer = "\xff\xfe not UTF-8";
	expect_refused(o, "pg_issuer");
	o = base;
	o.pg_issuer = "";
	expect_refused(o, "pg_issuer");
	o = base;
	o.pg_schema = "Auth";
	expect_refused(o, "pg_schema");
	o = base;
	o.pg_schema = "pg_catalog";
	expect_refused(o, "pg_schema");
	o = base;
	o.pg_table_prefix = "way_too_long_prefix_";
	expect_refused(o, "pg_table_prefix");
	o = base;
	o.pg_successor_secret = "short";
	o.pg_successor_secret_len = 5;
	expect_refused(o, "pg_successor_secret");
	o = base;
	o.pg_pool_size = 0;
	expect_refused(o, "pg_pool_size");
	o = base;
	o.dir = "/tmp/never-created-by-this-test";
	expect_refused(o, "dir and postgres");
	forget_lines();
}

TESTS(TEST(test_failures_are_logged_and_parameters_never), TEST(test_refused_options_are_named));
TEST_MAIN()
