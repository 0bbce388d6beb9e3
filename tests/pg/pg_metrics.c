/*
 * tests/pg/pg_metrics.c - once_stats_prometheus on the PostgreSQL engine:
 * after codes, replays and a refresh rotation, the text names the engine,
 * counts the calls per outcome and the pool's figures, leaves out the
 * embedded store's log, checkpoint and recovery families, and is read
 * without complaint by a real Prometheus parser (python3-prometheus-client,
 * as tests/check_prometheus.py reads the embedded store's).
 *
 * Suite pg: ONCE_TEST_POSTGRES, ONCE_TEST_PG_SCHEMA, ONCE_TEST_TOOL.
 */
#include <stdio.h>
#include <sys/wait.h>

#include "../harness.h"

static struct test_clock clk = {1900000000};

/* Feeds text to the system python's Prometheus parser; its exit status:
 * 0 when every family parses and the sample `want` has value `value`. */
static int parse_with_prometheus_client(const char *text, const char *want, double value)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd,
	         "/usr/bin/python3 -c '"
	         "import sys\n"
	         "from prometheus_client.parser import text_string_to_metric_families as parse\n"
	         "fams = list(parse(sys.stdin.read()))\n"
	         "got = [s.value for f in fams for s in f.samples if s.name == \"%s\"]\n"
	         "print(\"# parsed %%d families; %s = %%s\" %% (len(fams), got))\n"
	         "sys.exit(0 if got and got[0] == %.1f else 1)'",
	         want, want, value);
	FILE *p = popen(cmd, "w");
	ASSERT(p != NULL);
	fputs(text, p);
	int status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_prometheus_text_of_the_postgres_engine(void)
{
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	char k[ONCE_SECRET_LEN + 1];
	for (int i = 0; i < 3; i++) {
		test_key(k, "metrics-code", i);
		once_code c = test_code(clk.now + 60);
		ASSERT_ST(once_code_put(s, k, strlen(k), &c), ONCE_OK);
		ASSERT_ST(once_code_take(s, k, strlen(k), NULL, NULL), ONCE_OK);
	}
	ASSERT_ST(once_replay_check(s, "metrics-jti", 11, 121), ONCE_OK);
	ASSERT_ST(once_replay_check(s, "metrics-jti", 11, 121), ONCE_SPENT);

	/* As the header says: every call runs statements (which it counts),
	 * so the text can grow between two calls; size with room, loop. */
	size_t cap = 0, n = once_stats_prometheus(s, NULL, 0);
	ASSERT(n > 0);
	char *text = NULL;
	while (n >= cap) {
		cap = n + 1024;
		text = realloc(text, cap);
		ASSERT(text != NULL);
		n = once_stats_prometheus(s, text, cap);
	}
	ASSERT_EQ_INT(strlen(text), n);

	ASSERT(strstr(text, "engine=\"postgres\"") != NULL);
	ASSERT(strstr(text, "oncestore_operations_total{op=\"code_take\",status=\"OK\"} 3\n") != NULL);
	ASSERT(strstr(text, "oncestore_operations_total{op=\"replay_check\",status=\"SPENT\"} 1\n") != NULL);
	ASSERT(strstr(text, "# TYPE oncestore_pg_statements_total counter\n") != NULL);
	ASSERT(strstr(text, "oncestore_pg_connections ") != NULL);
	/* The server keeps its own log: no embedded log or checkpoint
	 * families that would read 0 and page nobody. */
	ASSERT(strstr(text, "oncestore_log_sync_seconds") == NULL);
	ASSERT(strstr(text, "oncestore_checkpoints_total") == NULL);
	ASSERT(strstr(text, "oncestore_entries{kind=\"code\"} 3\n") != NULL); /* rows */
	ASSERT_EQ_INT(parse_with_prometheus_client(text, "oncestore_pg_pool_size", (double)o.pg_pool_size), 0);
	free(text);
	ASSERT_ST(once_close(s), ONCE_OK);
}

TESTS(TEST(test_prometheus_text_of_the_postgres_engine));
TEST_MAIN()
