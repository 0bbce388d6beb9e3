/*
 * tests/pg/pg_processes.c - several gateways, one store: processes x
 * threads, each process with its own store and connections (as replicas
 * behind a load balancer, or nginx workers, would be), race take, nonce
 * accept, replay check, refresh consume and rotate on thousands of keys
 * of one PostgreSQL database.  Exactly one winner per key, across all of
 * them; every loser gets the documented answer; nothing fails.
 *
 * Suite pg: needs ONCE_TEST_POSTGRES (tests/pg/cluster.sh), and
 * ONCE_TEST_PG_SCHEMA / ONCE_TEST_TOOL (set by meson) for the schema.
 */
#include <pthread.h>
#include <sys/mman.h>

#include "../harness.h"

#define PROCESSES 4
#define THREADS 4
#define KEYS 1000    /* codes, nonces, replay keys, refresh tokens each */
#define ROTATIONS 200 /* parents every thread tries to rotate */

/* Wins per key, shared by every process (MAP_SHARED). */
struct board {
	_Atomic uint32_t take[KEYS], accept[KEYS], replay[KEYS], consume[KEYS], rotate[ROTATIONS];
	_Atomic uint32_t unexpected; /* a status outside the documented ones */
	char nonces[KEYS][ONCE_NONCE_LEN + 1];
};

static struct board *board;
static struct test_clock clk = {1700000000};

static once_options pg_options(uint32_t pool)
{
	once_options o = test_options(&clk);
	o.postgres = getenv("ONCE_TEST_POSTGRES");
	o.pg_schema = getenv("ONCE_TEST_PG_SCHEMA");
	o.pg_pool_size = pool;
	/* Rotations seal the successor (AttestoPhoenix's v2 envelope). */
	o.pg_successor_secret = "a successor secret shared by every gateway process";
	o.pg_successor_secret_len = strlen(o.pg_successor_secret);
	return o;
}

static once_refresh token_record(const char *family)
{
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = family;
	r.subject = "user-1";
	r.client_id = "client-1";
	r.expires_at = clk.now + 3600;
	return r;
}

/* The token string a rotation hands out, and its key (the PostgreSQL
 * engine stores the successor token itself: the child key is its hash). */
static void child_token(char out[64], int parent, int process, int thread)
{
	snprintf(out, 64, "child-%d-%d-%d", parent, process, thread);
}

static void prefill(once_store *s)
{
	for (int i = 0; i < KEYS; i++) {
		char k[ONCE_SECRET_LEN + 1], fam[32];
		test_key(k, "code", (uint64_t)i);
		once_code c = test_code(clk.now + 600);
		ASSERT_ST(once_code_put(s, k, strlen(k), &c), ONCE_OK);
		ASSERT_ST(once_nonce_issue(s, 300, board->nonces[i]), ONCE_OK);
		test_key(k, "refresh", (uint64_t)i);
		snprintf(fam, sizeof fam, "fam-%d", i);
		once_refresh r = token_record(fam);
		ASSERT_ST(once_refresh_insert(s, k, strlen(k), &r), ONCE_OK);
	}
	for (int i = 0; i < ROTATIONS; i++) {
		char k[ONCE_SECRET_LEN + 1], fam[32];
		test_key(k, "parent", (uint64_t)i);
		snprintf(fam, sizeof fam, "rot-%d", i);
		once_refresh r = token_record(fam);
		ASSERT_ST(once_refresh_insert(s, k, strlen(k), &r), ONCE_OK);
	}
}

struct worker {
	once_store *s;
	int process, thread;
};

static void tally(_Atomic uint32_t *wins, once_status st, once_status loser)
{
	if (st == ONCE_OK)
		atomic_fetch_add(wins, 1);
	else if (st != loser && atomic_fetch_add(&board->unexpected, 1) == 0)
		fprintf(stderr, "# first unexpected status: %s (wanted OK or %s)\n",
		        once_status_name(st), once_status_name(loser));
}

static void *race(void *arg)
{
	struct worker *w = arg;
	/* Each thread walks the keys from its own starting point, so every
	 * key is contended at some moment by several processes. */
	int start = (w->process * THREADS + w->thread) * (KEYS / (PROCESSES * THREADS));
	for (int n = 0; n < KEYS; n++) {
		int i = (start + n) % KEYS;
		char k[ONCE_SECRET_LEN + 1], rk[64];
		test_key(k, "code", (uint64_t)i);
		/* Losers: NOT_FOUND (taken, not finalized: include/oncestore.h). */
		tally(&board->take[i], once_code_take(w->s, k, strlen(k), NULL, NULL), ONCE_NOT_FOUND);
		tally(&board->accept[i],
		      once_nonce_accept(w->s, board->nonces[i], ONCE_NONCE_LEN, 300), ONCE_SPENT);
		snprintf(rk, sizeof rk, "replay-%d", i);
		tally(&board->replay[i], once_replay_check(w->s, rk, strlen(rk), 121), ONCE_SPENT);
		test_key(k, "refresh", (uint64_t)i);
		once_refresh *out = NULL;
		tally(&board->consume[i], once_refresh_consume(w->s, k, strlen(k), &out), ONCE_SPENT);
		once_free(out);
	}
	for (int n = 0; n < ROTATIONS; n++) {
		int i = (start + n) % ROTATIONS;
		char parent[ONCE_SECRET_LEN + 1], child[ONCE_SECRET_LEN + 1], token[64], fam[32];
		test_key(parent, "parent", (uint64_t)i);
		child_token(token, i, w->process, w->thread);
		ASSERT_ST(once_secret_hash(token, strlen(token), child), ONCE_OK);
		snprintf(fam, sizeof fam, "rot-%d", i);
		once_refresh succ = token_record(fam);
		once_refresh *out = NULL;
		tally(&board->rotate[i],
		      once_refresh_rotate(w->s, parent, strlen(parent), child, strlen(child), &succ, token,
		                          strlen(token), &out),
		      ONCE_SPENT);
		once_free(out);
	}
	return NULL;
}

static void run_process(int process)
{
	once_options o = pg_options(THREADS);
	once_store *s = NULL;
	if (once_open(&o, &s) != ONCE_OK)
		_exit(3);
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){s, process, i};
		if (pthread_create(&t[i], NULL, race, &w[i]) != 0)
			_exit(4);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	_exit(once_close(s) == ONCE_OK ? 0 : 5);
}

static void check_one_winner(const char *what, _Atomic uint32_t *wins, int n)
{
	for (int i = 0; i < n; i++)
		if (atomic_load(&wins[i]) != 1)
			FAIL_AT("%s key %d: %u winners, want exactly 1", what, i, atomic_load(&wins[i]));
}

static void test_processes_race_one_winner_each(void)
{
	board = mmap(NULL, sizeof *board, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(board != MAP_FAILED);
	once_options o = pg_options(2);
	once_store *s = test_open(&o); /* empties the tables */
	prefill(s);

	pid_t pids[PROCESSES];
	fflush(NULL);
	for (int p = 0; p < PROCESSES; p++) {
		pids[p] = fork();
		ASSERT(pids[p] >= 0);
		if (pids[p] == 0)
			run_process(p);
	}
	for (int p = 0; p < PROCESSES; p++) {
		int status;
		ASSERT(waitpid(pids[p], &status, 0) == pids[p]);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL_AT("process %d ended with status 0x%x", p, status);
	}
	ASSERT_EQ_INT(atomic_load(&board->unexpected), 0);
	check_one_winner("code take", board->take, KEYS);
	check_one_winner("nonce accept", board->accept, KEYS);
	check_one_winner("replay check", board->replay, KEYS);
	check_one_winner("refresh consume", board->consume, KEYS);
	check_one_winner("refresh rotate", board->rotate, ROTATIONS);
	/* Exactly one child per rotated parent was inserted: the losers'
	 * children never were (rotation is one transaction). */
	ASSERT_EQ_U64(test_entries(s, "refresh"), KEYS + 2 * ROTATIONS);
	ASSERT_EQ_U64(test_entries(s, "replays"), KEYS);
	ASSERT_ST(once_close(s), ONCE_OK);
	munmap(board, sizeof *board);
}

TESTS(TEST(test_processes_race_one_winner_each));
TEST_MAIN()
