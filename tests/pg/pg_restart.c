/*
 * tests/pg/pg_restart.c - the server restarts under load (pg_ctl restart
 * -m immediate: a crash and recovery, as in a failover).  The calls in
 * flight get ONCE_IO (their outcome is unknown, so the caller refuses),
 * nothing is retried behind the caller's back, later calls succeed on new
 * connections, and every write acknowledged with ONCE_OK is there after
 * the restart.
 *
 * Suite pg: needs the throwaway server of tests/pg/cluster.sh
 * (ONCE_TEST_POSTGRES, ONCE_TEST_PGDIR) and ONCE_TEST_CLUSTER, the path of
 * that script, to restart it.  The test's connections commit
 * synchronously, so an acknowledged commit is in the server's log before
 * the crash (the throwaway server defaults to synchronous_commit=off).
 */
#include <pthread.h>
#include <time.h>

#include "../harness.h"

#define WRITERS 4
#define MAX_WRITES 200000

struct writer {
	once_store *s;
	int id;
	_Atomic bool *stop;
	_Atomic int *phase; /* 0 before the restart, 1 after it returned */
	/* Keys acknowledged with ONCE_OK; outcomes after the restart. */
	int acked[MAX_WRITES];
	int nacked;
	int io_errors, ok_after_restart, other;
};

static void replay_key(char out[64], int writer, int n)
{
	snprintf(out, 64, "restart-%d-%d", writer, n);
}

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	for (int n = 0; n < MAX_WRITES && !atomic_load(w->stop); n++) {
		char k[64];
		replay_key(k, w->id, n);
		once_status st = once_replay_check(w->s, k, strlen(k), 3600);
		if (st == ONCE_OK) {
			w->acked[w->nacked++] = n;
			if (atomic_load(w->phase) == 1)
				w->ok_after_restart++;
		} else if (st == ONCE_IO) {
			w->io_errors++;
		} else {
			w->other++; /* SPENT would mean a retry applied a write twice */
		}
	}
	return NULL;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void test_restart_in_flight_io_then_recovers_and_keeps_acknowledged(void)
{
	const char *conn = getenv("ONCE_TEST_POSTGRES");
	const char *dir = getenv("ONCE_TEST_PGDIR");
	const char *cluster = getenv("ONCE_TEST_CLUSTER");
	if (conn == NULL || dir == NULL || cluster == NULL)
		FAIL_AT("needs ONCE_TEST_POSTGRES, ONCE_TEST_PGDIR (tests/pg/cluster.sh) and ONCE_TEST_CLUSTER");
	char conninfo[1024];
	snprintf(conninfo, sizeof conninfo, "%s options='-c synchronous_commit=on'", conn);
	once_options o = test_options(NULL);
	o.postgres = conninfo;
	o.pg_schema = getenv("ONCE_TEST_PG_SCHEMA");
	o.pg_pool_size = WRITERS;
	once_store *s = test_open(&o);

	static struct writer w[WRITERS];
	_Atomic bool stop = false;
	_Atomic int phase = 0;
	pthread_t t[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){.s = s, .id = i, .stop = &stop, .phase = &phase};
		ASSERT(pthread_create(&t[i], NULL, write_loop, &w[i]) == 0);
	}
	sleep_ms(300);
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "bash '%s' restart '%s' >/dev/null", cluster, dir);
	test_shell(cmd);
	atomic_store(&phase, 1);
	sleep_ms(1000);
	atomic_store(&stop, true);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);

	int io = 0, after = 0, acked = 0;
	for (int i = 0; i < WRITERS; i++) {
		io += w[i].io_errors;
		after += w[i].ok_after_restart;
		acked += w[i].nacked;
		ASSERT_EQ_INT(w[i].other, 0);
	}
	printf("# %d writes acknowledged, %d ONCE_IO at the restart, %d OK after it\n", acked, io,
	       after);
	/* Every pooled connection died with the server: its next call failed. */
	ASSERT(io >= 1);
	ASSERT(after >= 1);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT(st.pg_reconnects >= 1);
	ASSERT(st.pg_errors >= (uint64_t)io);
	/* Every acknowledged write survived: checking it again is a replay. */
	for (int i = 0; i < WRITERS; i++)
		for (int j = 0; j < w[i].nacked; j++) {
			char k[64];
			replay_key(k, i, w[i].acked[j]);
			ASSERT_ST(once_replay_check(s, k, strlen(k), 3600), ONCE_SPENT);
		}
	ASSERT_EQ_U64(test_entries(s, "replays") >= (uint64_t)acked, 1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

TESTS(TEST(test_restart_in_flight_io_then_recovers_and_keeps_acknowledged));
TEST_MAIN()
