/*
 * tests/harness.h - a small TAP harness: each test is a named function run
 * in its own child process (a crash fails that test alone), results are TAP
 * lines that meson reads, and every assertion prints both sides.
 *
 * A test file lists its tests with TESTS(...) and gets a main() from
 * TEST_MAIN().  Set ONCE_TEST_NOFORK=1 to run in one process (debuggers).
 */
#ifndef ONCE_TEST_HARNESS_H
#define ONCE_TEST_HARNESS_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oncestore.h"

#define FAIL_AT(...)                                                                              \
	do {                                                                                      \
		fprintf(stderr, "# %s:%d: ", __FILE__, __LINE__);                                 \
		fprintf(stderr, __VA_ARGS__);                                                     \
		fprintf(stderr, "\n");                                                            \
		exit(1);                                                                          \
	} while (0)

#define ASSERT(cond)                                                                              \
	do {                                                                                      \
		if (!(cond))                                                                      \
			FAIL_AT("assertion failed: %s", #cond);                                   \
	} while (0)

#define ASSERT_EQ_INT(a, b)                                                                       \
	do {                                                                                      \
		long long a_ = (long long)(a), b_ = (long long)(b);                               \
		if (a_ != b_)                                                                     \
			FAIL_AT("%s == %s: %lld != %lld", #a, #b, a_, b_);                        \
	} while (0)

#define ASSERT_EQ_U64(a, b)                                                                       \
	do {                                                                                      \
		uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                                  \
		if (a_ != b_)                                                                     \
			FAIL_AT("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, a_, b_);             \
	} while (0)

/* Statuses print by name: "expected SPENT, got NOT_FOUND". */
#define ASSERT_ST(expr, want)                                                                     \
	do {                                                                                      \
		once_status got_ = (expr), want_ = (want);                                        \
		if (got_ != want_)                                                                \
			FAIL_AT("%s: expected %s, got %s", #expr, once_status_name(want_),        \
			        once_status_name(got_));                                          \
	} while (0)

#define ASSERT_STR(a, b)                                                                          \
	do {                                                                                      \
		const char *a_ = (a), *b_ = (b);                                                  \
		if ((a_ == NULL) != (b_ == NULL) || (a_ && strcmp(a_, b_) != 0))                  \
			FAIL_AT("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",         \
			        b_ ? b_ : "(null)");                                              \
	} while (0)

/* A leak check at a chosen point (after once_close, say) under ASan; the
 * exit-time check of every forked test catches the rest. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define ASSERT_NO_LEAKS() ASSERT_EQ_INT(__lsan_do_recoverable_leak_check(), 0)
#else
#define ASSERT_NO_LEAKS() ((void)0)
#endif

struct test_case {
	const char *name;
	void (*fn)(void);
};

#define TEST(fn) {#fn, fn}
#define TESTS(...) static const struct test_case test_cases[] = {__VA_ARGS__}

static inline int run_one(const struct test_case *t)
{
	if (getenv("ONCE_TEST_NOFORK") != NULL) {
		t->fn();
		return 0;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		t->fn();
		/* exit, not _exit: LeakSanitizer checks at exit, and a test that
		 * leaks must fail under the ASan build. */
		exit(0);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return 1;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "# %s: killed by signal %d\n", t->name, WTERMSIG(status));
		return 1;
	}
	return WEXITSTATUS(status);
}

#define TEST_MAIN()                                                                               \
	int main(int argc, char **argv)                                                           \
	{                                                                                         \
		size_t n = sizeof test_cases / sizeof test_cases[0];                              \
		int failed = 0;                                                                   \
		printf("1..%zu\n", n);                                                            \
		for (size_t i = 0; i < n; i++) {                                                  \
			if (argc > 1 && strcmp(argv[1], test_cases[i].name) != 0) {               \
				printf("ok %zu - %s # SKIP not selected\n", i + 1,                \
				       test_cases[i].name);                                       \
				continue;                                                         \
			}                                                                         \
			int rc = run_one(&test_cases[i]);                                         \
			failed += rc != 0;                                                        \
			printf("%sok %zu - %s\n", rc ? "not " : "", i + 1, test_cases[i].name);   \
			fflush(stdout);                                                           \
		}                                                                                 \
		return failed ? 1 : 0;                                                            \
	}

/* ---- shared fixtures ---- */

/* A clock tests move by hand. */
struct test_clock {
	_Atomic int64_t now;
};

static inline int64_t test_clock_read(void *ctx)
{
	return atomic_load(&((struct test_clock *)ctx)->now);
}

/*
 * Backends.  The behavioural suites run from one source against both
 * engines: meson registers each of them a second time in suite pg with
 * ONCE_TEST_BACKEND=postgres, ONCE_TEST_PG_SCHEMA (a schema of that
 * suite's own, so suites running at once never share rows) and
 * ONCE_TEST_TOOL (the oncestore tool, whose `schema` command creates the
 * tables); ONCE_TEST_POSTGRES, the libpq connection string, comes from
 * the environment (tests/pg/cluster.sh starts a throwaway server).  test_open then empties the tables before every test.  A test
 * checks an embedded-only behaviour under `if (!test_on_postgres())`, and
 * a behaviour where the engines differ by design (include/oncestore.h,
 * "PostgreSQL" in each function's comment) with test_on_postgres().
 */
static inline bool test_on_postgres(void)
{
	const char *b = getenv("ONCE_TEST_BACKEND");
	return b != NULL && strcmp(b, "postgres") == 0;
}

/* Runs a shell command for the fixtures; fails the test if it fails. */
static inline void test_shell(const char *cmd)
{
	fflush(NULL);
	int rc = system(cmd);
	if (rc != 0)
		FAIL_AT("command failed (%d): %s", rc, cmd);
}

/* Creates this suite's schema and tables if they are missing, then empties
 * the tables: every test starts from an empty store, as on the embedded
 * engine. */
static inline void test_pg_reset(void)
{
	const char *conn = getenv("ONCE_TEST_POSTGRES");
	const char *schema = getenv("ONCE_TEST_PG_SCHEMA");
	const char *tool = getenv("ONCE_TEST_TOOL");
	if (conn == NULL || schema == NULL || tool == NULL)
		FAIL_AT("suite pg needs ONCE_TEST_POSTGRES (tests/pg/cluster.sh), ONCE_TEST_PG_SCHEMA "
		        "and ONCE_TEST_TOOL");
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
	         "psql -qAtX -d '%s' -c \"SELECT 1 FROM pg_namespace WHERE nspname = '%s'\" | grep -q 1 || "
	         "'%s' schema --schema-prefix %s | psql -qX -v ON_ERROR_STOP=1 -d '%s' >/dev/null",
	         conn, schema, tool, schema, conn);
	test_shell(cmd);
	snprintf(cmd, sizeof cmd,
	         "psql -qX -v ON_ERROR_STOP=1 -d '%s' -c 'TRUNCATE %s.attesto_authorization_codes, "
	         "%s.attesto_refresh_tokens, %s.attesto_refresh_family_revocations, %s.dpop_nonces, "
	         "%s.dpop_replays'",
	         conn, schema, schema, schema, schema, schema);
	test_shell(cmd);
}

/* Options for a small store on a test clock, no sweeper: memory-only, or
 * on this suite's PostgreSQL schema (see test_on_postgres). */
static inline once_options test_options(struct test_clock *clk)
{
	once_options o;
	once_options_init(&o);
	o.shards = 4;
	o.max_codes = o.max_access_tokens = o.max_refresh = o.max_nonces = o.max_replays = 1u << 16;
	o.sweep_interval_ms = 0;
	if (clk != NULL) {
		o.clock = test_clock_read;
		o.clock_ctx = clk;
	}
	if (test_on_postgres()) {
		o.postgres = getenv("ONCE_TEST_POSTGRES");
		o.pg_schema = getenv("ONCE_TEST_PG_SCHEMA");
	}
	return o;
}

static inline once_store *test_open(const once_options *o)
{
	if (o != NULL && o->postgres != NULL)
		test_pg_reset();
	once_store *s = NULL;
	once_status st = once_open(o, &s);
	if (st != ONCE_OK)
		FAIL_AT("once_open: %s", once_status_name(st));
	return s;
}

/* A key like the ones a gateway uses: base64url SHA-256 of "prefix-i". */
static inline void test_key(char out[ONCE_SECRET_LEN + 1], const char *prefix, uint64_t i)
{
	char secret[64];
	int n = snprintf(secret, sizeof secret, "%s-%" PRIu64, prefix, i);
	if (once_secret_hash(secret, (size_t)n, out) != ONCE_OK)
		FAIL_AT("once_secret_hash failed");
}

/* A minimal valid code expiring at `exp`. */
static inline once_code test_code(int64_t exp)
{
	once_code c;
	memset(&c, 0, sizeof c);
	c.client_id = "client-1";
	c.subject = "user-1";
	c.redirect_uri = "https://app.example/cb";
	c.expires_at = exp;
	return c;
}

static inline uint64_t test_entries(once_store *s, const char *kind)
{
	struct once_stats st;
	once_stats(s, &st);
	if (strcmp(kind, "codes") == 0) return st.codes.entries;
	if (strcmp(kind, "access_tokens") == 0) return st.access_tokens.entries;
	if (strcmp(kind, "nonces") == 0) return st.nonces.entries;
	if (strcmp(kind, "replays") == 0) return st.replays.entries;
	if (strcmp(kind, "refresh") == 0) return st.refresh.entries;
	FAIL_AT("unknown kind %s", kind);
}

#endif /* ONCE_TEST_HARNESS_H */
