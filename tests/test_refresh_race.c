/*
 * tests/test_refresh_race.c - refresh-token families under real contention
 * (SPEC 1.1 "exactly one winner", section 2 "sticky, no window";
 * core/refresh.c invariants R1-R3).
 *
 *   rotate_one_parent      every worker rotates the same parent to its own
 *                          child: one OK, the rest SPENT carrying the
 *                          winner's successor payload; losers' children
 *                          never exist.
 *   consume_one_token      every worker consumes the same token: one OK, the
 *                          rest SPENT; the winner remembers a successor, and
 *                          a loser sees none or exactly the winner's.
 *   insert_vs_revoke       consumes, successor inserts and rotations into a
 *                          family while another worker revokes it: no
 *                          operation that started after the revocation
 *                          returned gets OK, and every token of the family
 *                          reads as revoked from then on.
 *   revoke_vs_sweep        revocations and inserts while the clock advances
 *                          and a sweeper thread removes expired tokens and
 *                          families: a revoked mark is never lost while a
 *                          token it covers is unexpired, and a live family
 *                          being retired by the sweep never swallows a
 *                          token inserted into it.
 *
 * Workers start behind a barrier and walk the same families in the same
 * order, in chunks separated by a barrier, so they collide on one family at
 * a time.  A failed check inside a worker is counted (the first few
 * printed); the main thread asserts the count is zero after the join.
 *
 * "Started after the revocation returned" is observed with a per-family
 * sequence number: the revoker stores the value of a global atomic counter
 * (incremented when once_refresh_revoke_family returns) into the family's
 * slot, and every operation loads that slot before it starts (seq_cst).
 *
 * Scale: at least 8 threads and 1000 families always.  ONCE_RACE_THREADS
 * and ONCE_RACE_KEYS override the defaults; under ThreadSanitizer the
 * default counts are divided by 4 (never below 1000).
 *
 * PostgreSQL (suite pg, test_on_postgres()): the same races on the
 * server, with the engine's documented differences (oncestore.h,
 * pg/refresh.c): a successor is the child token itself (rotate's payload
 * is the child's token, child key = once_secret_hash(token); the winner of
 * a consume inserts its child before remembering it), the options carry a
 * pg_successor_secret, tokens of one family take distinct generations
 * ((family_id, generation) is unique), revocation deletes the family's
 * rows (tombstone forever) and once_stats reports no swept count.  Every
 * operation is a round trip (a rotation a transaction of about seven), so
 * the default family count is PG_KEYS there: 8 threads still collide on
 * every family.
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "harness.h"
#include "race.h"

#define KEY_LEN ONCE_SECRET_LEN
#define CHUNK 32 /* families between two round barriers */
#define NOW 1000
/* Families per race on PostgreSQL (see above); ONCE_RACE_KEYS still wins. */
#define PG_KEYS 1000

static const char PG_SECRET[] = "oncestore test refresh_race successor secret, >= 32 bytes";

/* The default family count: `normal` (`under_tsan`) on the embedded
 * engine, PG_KEYS on PostgreSQL. */
static size_t keys_for(size_t normal, size_t under_tsan)
{
	return test_on_postgres() ? race_keys(PG_KEYS, PG_KEYS) : race_keys(normal, under_tsan);
}

static const unsigned char SUCC_KEY[ONCE_SUCCESSOR_KEY_LEN] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

/* ---- the runner ---- */

struct race;
typedef void (*race_op)(struct race *r, int id, size_t fam);

struct race {
	once_store *s;
	struct test_clock clk;
	int threads;
	size_t keys; /* families (or tokens) */
	race_op op;
	pthread_barrier_t start, round;
	char (*root)[KEY_LEN + 1]; /* one token per family, inserted before */
	_Atomic uint64_t count[ONCE_STATUS_COUNT];
	_Atomic uint32_t *ok;       /* OK outcomes per family */
	_Atomic int32_t *winner;    /* the worker that won family i */
	_Atomic int32_t *seen;      /* [fam * threads + id]: winner a loser saw */
	_Atomic uint64_t *revoked;  /* 0, or the sequence its revocation returned at */
	_Atomic uint64_t revokes_done;
	_Atomic uint64_t bad;
	_Atomic uint64_t extra[4]; /* test-specific counters */
	_Atomic size_t progress;   /* index of the round being run */
	_Atomic bool stop;         /* helpers (clock, sweeper) end */
};

struct worker {
	struct race *r;
	int id;
};

static void tally(struct race *r, size_t fam, once_status st)
{
	if ((unsigned)st < ONCE_STATUS_COUNT)
		atomic_fetch_add_explicit(&r->count[st], 1, memory_order_relaxed);
	if (st == ONCE_OK)
		atomic_fetch_add_explicit(&r->ok[fam], 1, memory_order_relaxed);
}

static void fam_name(char out[32], size_t i)
{
	snprintf(out, 32, "fam-%zu", i);
}

static once_refresh token(const char *fam, int64_t exp)
{
	once_refresh t;
	memset(&t, 0, sizeof t);
	t.family_id = fam;
	t.subject = "user-1";
	t.expires_at = exp;
	return t;
}

static void race_open(struct race *r, size_t keys, int64_t revocation_ttl)
{
	memset(r, 0, sizeof *r);
	atomic_init(&r->clk.now, NOW);
	once_options o = test_options(&r->clk);
	o.successor_key = SUCC_KEY;
	o.revocation_ttl = revocation_ttl;
	if (test_on_postgres()) {
		o.pg_successor_secret = PG_SECRET;
		o.pg_successor_secret_len = sizeof PG_SECRET - 1;
	}
	r->threads = race_threads();
	/* Room for every token a test can insert: nothing here is FULL. */
	o.max_refresh = (uint64_t)keys * (uint64_t)(2 * r->threads + 4);
	r->s = test_open(&o);
	r->keys = keys;
	r->root = calloc(keys, sizeof *r->root);
	r->ok = calloc(keys, sizeof *r->ok);
	r->winner = calloc(keys, sizeof *r->winner);
	r->seen = calloc(keys * (size_t)r->threads, sizeof *r->seen);
	r->revoked = calloc(keys, sizeof *r->revoked);
	ASSERT(r->root && r->ok && r->winner && r->seen && r->revoked);
	for (size_t i = 0; i < keys; i++) {
		test_key(r->root[i], "root", i);
		atomic_init(&r->ok[i], 0);
		atomic_init(&r->winner[i], -1);
		atomic_init(&r->revoked[i], 0);
	}
	for (size_t i = 0; i < keys * (size_t)r->threads; i++)
		atomic_init(&r->seen[i], -1);
}

/* Inserts every family's root token, expiring at exp(i). */
static void insert_roots(struct race *r, int64_t (*exp)(size_t))
{
	for (size_t i = 0; i < r->keys; i++) {
		char fam[32];
		fam_name(fam, i);
		once_refresh t = token(fam, exp(i));
		ASSERT_ST(once_refresh_insert(r->s, r->root[i], KEY_LEN, &t), ONCE_OK);
	}
}

static void race_close(struct race *r)
{
	ASSERT_ST(once_close(r->s), ONCE_OK);
	free(r->root);
	free((void *)r->ok);
	free((void *)r->winner);
	free((void *)r->seen);
	free((void *)r->revoked);
	ASSERT_NO_LEAKS();
}

static void *race_worker(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	pthread_barrier_wait(&r->start);
	for (size_t base = 0, round = 0; base < r->keys; base += CHUNK, round++) {
		if (w->id == 0)
			atomic_store(&r->progress, round);
		size_t end = base + CHUNK < r->keys ? base + CHUNK : r->keys;
		for (size_t k = base; k < end; k++)
			r->op(r, w->id, k);
		pthread_barrier_wait(&r->round);
	}
	return NULL;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Runs op on every family from every worker, plus `helpers` extra threads
 * (clock, sweeper) that run until the workers are done. */
static void race_run(struct race *r, race_op op, const char *what, void *(*helper[])(void *),
                     int helpers)
{
	pthread_t tid[MAX_THREADS], hid[4];
	struct worker w[MAX_THREADS];
	struct timespec t0;
	r->op = op;
	atomic_store(&r->stop, false);
	ASSERT(pthread_barrier_init(&r->start, NULL, (unsigned)r->threads) == 0);
	ASSERT(pthread_barrier_init(&r->round, NULL, (unsigned)r->threads) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < helpers; i++)
		ASSERT(pthread_create(&hid[i], NULL, helper[i], r) == 0);
	for (int i = 0; i < r->threads; i++) {
		w[i] = (struct worker){r, i};
		ASSERT(pthread_create(&tid[i], NULL, race_worker, &w[i]) == 0);
	}
	for (int i = 0; i < r->threads; i++)
		ASSERT(pthread_join(tid[i], NULL) == 0);
	atomic_store(&r->stop, true);
	for (int i = 0; i < helpers; i++)
		ASSERT(pthread_join(hid[i], NULL) == 0);
	pthread_barrier_destroy(&r->start);
	pthread_barrier_destroy(&r->round);
	printf("# %s: %d threads x %zu families in %.3f s; OK %" PRIu64 " SPENT %" PRIu64
	       " NOT_FOUND %" PRIu64 " REVOKED %" PRIu64 " EXISTS %" PRIu64 "\n",
	       what, r->threads, r->keys, seconds_since(&t0), atomic_load(&r->count[ONCE_OK]),
	       atomic_load(&r->count[ONCE_SPENT]), atomic_load(&r->count[ONCE_NOT_FOUND]),
	       atomic_load(&r->count[ONCE_REVOKED]), atomic_load(&r->count[ONCE_EXISTS]));
	fflush(stdout);
	ASSERT_EQ_U64(atomic_load(&r->bad), 0);
}

static void assert_one_winner(struct race *r)
{
	race_assert_one_winner(r->ok, r->keys);
}

static void assert_totals(struct race *r, uint64_t ok, once_status other, uint64_t rest)
{
	race_assert_totals(r->count, ok, other, rest);
}

static int64_t far_expiry(size_t i)
{
	(void)i;
	return NOW + 100000;
}

/* The payload worker `id` hands out when its rotation of family i wins;
 * returns its length.  Embedded: 32 bytes.  PostgreSQL: the token of
 * that worker's child, "child-<id>-<i>" (child_key below is its hash). */
#define PAYLOAD_LEN 32
#define PAYLOAD_MAX 64
static size_t payload_of(char out[PAYLOAD_MAX], size_t i, int id)
{
	char head[64]; /* room for any size_t and int: nothing truncates */
	memset(out, 0, PAYLOAD_MAX);
	if (test_on_postgres()) {
		int n = snprintf(head, sizeof head, "child-%d-%zu", id, i);
		ASSERT(n > 0 && n < PAYLOAD_MAX);
		memcpy(out, head, (size_t)n);
		return (size_t)n;
	}
	int n = snprintf(head, sizeof head, "succ-%zu-%d-", i, id);
	ASSERT(n > 0 && n < PAYLOAD_LEN);
	memcpy(out, head, (size_t)n);
	for (size_t k = (size_t)n; k < PAYLOAD_LEN; k++)
		out[k] = (char)('a' + (k + i + (size_t)id) % 26); /* distinct bytes to the end */
	return PAYLOAD_LEN;
}

/* Which worker's payload this is for family i, or -1 if it is none. */
static int payload_owner(const once_refresh *rec, size_t i, int threads)
{
	if (rec == NULL || rec->successor == NULL)
		return -1;
	for (int id = 0; id < threads; id++) {
		char want[PAYLOAD_MAX];
		size_t n = payload_of(want, i, id);
		if (rec->successor_len == n && memcmp(rec->successor, want, n) == 0)
			return id;
	}
	return -1;
}

static void child_key(char out[KEY_LEN + 1], size_t i, int id)
{
	char p[32];
	snprintf(p, sizeof p, "child-%d", id);
	test_key(out, p, i);
}

/* ---- rotations of one parent ---- */

static void op_rotate(struct race *r, int id, size_t i)
{
	char fam[32], child[KEY_LEN + 1], pay[PAYLOAD_MAX];
	fam_name(fam, i);
	child_key(child, i, id);
	size_t pay_len = payload_of(pay, i, id);
	once_refresh c = token(fam, NOW + 200000);
	c.parent_hash = r->root[i];
	once_refresh *po = NULL;
	once_status st = once_refresh_rotate(r->s, r->root[i], KEY_LEN, child, KEY_LEN, &c, pay,
	                                     pay_len, &po);
	tally(r, i, st);
	if (st == ONCE_OK) {
		atomic_store(&r->winner[i], id);
		CHECK(r, po != NULL && !po->consumed && po->successor == NULL, "fam %zu: OK record", i);
	} else if (st == ONCE_SPENT) {
		CHECK(r, po != NULL && po->consumed, "fam %zu: SPENT record", i);
		CHECK(r, po != NULL && strcmp(po->family_id, fam) == 0, "fam %zu: SPENT family", i);
		int owner = payload_owner(po, i, r->threads);
		CHECK(r, owner >= 0 && owner != id, "fam %zu: SPENT successor is no winner's payload", i);
		atomic_store(&r->seen[i * (size_t)r->threads + (size_t)id], owner);
	} else {
		CHECK(r, po == NULL, "fam %zu: record filled on %s", i, once_status_name(st));
	}
	once_free(po);
}

static void test_race_rotate_one_parent(void)
{
	struct race r;
	race_open(&r, keys_for(20000, 20000 / 4), 86400);
	insert_roots(&r, far_expiry);
	race_run(&r, op_rotate, "rotate one parent", NULL, 0);
	assert_one_winner(&r);
	uint64_t n = r.keys, t = (uint64_t)r.threads;
	assert_totals(&r, n, ONCE_SPENT, n * (t - 1));
	for (size_t i = 0; i < r.keys; i++) {
		int win = atomic_load(&r.winner[i]);
		ASSERT(win >= 0);
		for (int id = 0; id < r.threads; id++) {
			char child[KEY_LEN + 1];
			child_key(child, i, id);
			once_refresh *g = NULL;
			if (id == win) {
				ASSERT_ST(once_refresh_get(r.s, child, KEY_LEN, &g), ONCE_OK);
				ASSERT(!g->consumed);
				ASSERT_STR(g->parent_hash, r.root[i]);
				once_free(g);
				continue;
			}
			/* Every loser saw the winner's payload, and made no child. */
			int seen = atomic_load(&r.seen[i * (size_t)r.threads + (size_t)id]);
			if (seen != win)
				FAIL_AT("family %zu: worker %d saw worker %d's successor, winner %d", i, id,
				        seen, win);
			ASSERT_ST(once_refresh_get(r.s, child, KEY_LEN, NULL), ONCE_NOT_FOUND);
		}
		once_refresh *g = NULL;
		ASSERT_ST(once_refresh_get(r.s, r.root[i], KEY_LEN, &g), ONCE_OK);
		ASSERT(g->consumed);
		ASSERT_EQ_INT(payload_owner(g, i, r.threads), win);
		once_free(g);
	}
	ASSERT_EQ_U64(test_entries(r.s, "refresh"), 2 * n);
	struct once_stats st;
	once_stats(r.s, &st);
	ASSERT_EQ_U64(st.ops[ONCE_OP_REFRESH_ROTATE][ONCE_OK], n);
	ASSERT_EQ_U64(st.ops[ONCE_OP_REFRESH_ROTATE][ONCE_SPENT], n * (t - 1));
	race_close(&r);
}

/* ---- consumes of one token ---- */

static void op_consume(struct race *r, int id, size_t i)
{
	char fam[32];
	fam_name(fam, i);
	once_refresh *g = NULL;
	once_status st = once_refresh_consume(r->s, r->root[i], KEY_LEN, &g);
	tally(r, i, st);
	if (st == ONCE_OK) {
		atomic_store(&r->winner[i], id);
		CHECK(r, g != NULL && !g->consumed && g->consumed_at == 0, "fam %zu: OK record", i);
		char pay[PAYLOAD_MAX];
		size_t pay_len = payload_of(pay, i, id);
		if (test_on_postgres()) {
			/* A successor is the child token: the winner makes its
			 * child (generation 1, this token its parent) first. */
			char child[KEY_LEN + 1];
			child_key(child, i, id);
			once_refresh c = token(fam, NOW + 200000);
			c.generation = 1;
			c.parent_hash = r->root[i];
			once_status ci = once_refresh_insert(r->s, child, KEY_LEN, &c);
			CHECK(r, ci == ONCE_OK, "fam %zu: child insert got %s", i, once_status_name(ci));
		}
		once_status m = once_refresh_remember_successor(r->s, r->root[i], KEY_LEN, pay, pay_len);
		CHECK(r, m == ONCE_OK, "fam %zu: remember got %s", i, once_status_name(m));
	} else if (st == ONCE_SPENT) {
		CHECK(r, g != NULL && g->consumed && g->consumed_at == NOW, "fam %zu: SPENT record", i);
		CHECK(r, g != NULL && strcmp(g->family_id, fam) == 0, "fam %zu: SPENT family", i);
		/* None yet, or exactly the winner's: never garbage. */
		int owner = payload_owner(g, i, r->threads);
		CHECK(r, g == NULL || g->successor == NULL || owner >= 0,
		      "fam %zu: SPENT successor is no worker's payload", i);
		if (g != NULL && g->successor != NULL)
			atomic_store(&r->seen[i * (size_t)r->threads + (size_t)id], owner);
	}
	once_free(g);
}

static void test_race_consume_one_token(void)
{
	struct race r;
	race_open(&r, keys_for(20000, 20000 / 4), 86400);
	insert_roots(&r, far_expiry);
	race_run(&r, op_consume, "consume one token", NULL, 0);
	assert_one_winner(&r);
	uint64_t n = r.keys, t = (uint64_t)r.threads;
	assert_totals(&r, n, ONCE_SPENT, n * (t - 1));
	for (size_t i = 0; i < r.keys; i++) {
		int win = atomic_load(&r.winner[i]);
		for (int id = 0; id < r.threads; id++) {
			int seen = atomic_load(&r.seen[i * (size_t)r.threads + (size_t)id]);
			if (seen != -1 && seen != win)
				FAIL_AT("family %zu: worker %d saw worker %d's successor, winner %d", i, id,
				        seen, win);
		}
		once_refresh *g = NULL;
		ASSERT_ST(once_refresh_consume(r.s, r.root[i], KEY_LEN, &g), ONCE_SPENT);
		ASSERT_EQ_INT(payload_owner(g, i, r.threads), win);
		once_free(g);
	}
	/* PostgreSQL: each winner's child row too. */
	ASSERT_EQ_U64(test_entries(r.s, "refresh"), test_on_postgres() ? 2 * n : n);
	race_close(&r);
}

/* ---- inserts, consumes and rotations racing with revocation ---- */

enum { EX_INSERT_OK, EX_INSERT_REVOKED, EX_ROTATE_OK, EX_ROTATE_REVOKED };

/* Family i is revoked and that revocation has returned. */
static bool revoked_now(struct race *r, size_t i)
{
	return atomic_load(&r->revoked[i]) != 0;
}

/* Once the revocation has returned, no token of the family reads as live. */
static void check_dead(struct race *r, size_t i, const char *child)
{
	if (!revoked_now(r, i))
		return;
	once_status a = once_refresh_get(r->s, r->root[i], KEY_LEN, NULL);
	CHECK(r, a == ONCE_NOT_FOUND, "fam %zu: root reads %s after the revocation", i,
	      once_status_name(a));
	if (child != NULL) {
		once_status b = once_refresh_get(r->s, child, KEY_LEN, NULL);
		CHECK(r, b == ONCE_NOT_FOUND, "fam %zu: child reads %s after the revocation", i,
		      once_status_name(b));
		b = once_refresh_consume(r->s, child, KEY_LEN, NULL);
		CHECK(r, b == ONCE_NOT_FOUND, "fam %zu: child consume %s after the revocation", i,
		      once_status_name(b));
	}
}

static void insert_child(struct race *r, size_t i, int id, const char *fam, const char *child)
{
	once_refresh c = token(fam, NOW + 100000);
	c.parent_hash = r->root[i];
	/* A generation of this worker's own, never 1 (a rotation's child):
	 * (family_id, generation) is unique on PostgreSQL. */
	c.generation = 100 + id;
	bool after = revoked_now(r, i); /* read before it starts */
	once_status st = once_refresh_insert(r->s, child, KEY_LEN, &c);
	CHECK(r, st == ONCE_OK || st == ONCE_REVOKED, "fam %zu: insert got %s", i, once_status_name(st));
	CHECK(r, !after || st == ONCE_REVOKED,
	      "fam %zu: insert started after the revocation returned got %s", i, once_status_name(st));
	atomic_fetch_add(&r->extra[st == ONCE_OK ? EX_INSERT_OK : EX_INSERT_REVOKED], 1);
	check_dead(r, i, child);
}

static void op_insert_vs_revoke(struct race *r, int id, size_t i)
{
	char fam[32], child[KEY_LEN + 1];
	fam_name(fam, i);
	int role = (id - (int)(i % (size_t)r->threads) + r->threads) % r->threads;
	if (role == 0) { /* the revoker */
		ASSERT_ST(once_refresh_revoke_family(r->s, fam, strlen(fam)), ONCE_OK);
		uint64_t seq = atomic_fetch_add(&r->revokes_done, 1) + 1;
		atomic_store(&r->revoked[i], seq);
		check_dead(r, i, NULL);
		return;
	}
	child_key(child, i, id);
	if (role % 3 == 1) { /* consume, then insert the successor */
		bool after = revoked_now(r, i);
		once_status st = once_refresh_consume(r->s, r->root[i], KEY_LEN, NULL);
		CHECK(r, st == ONCE_OK || st == ONCE_SPENT || st == ONCE_NOT_FOUND, "fam %zu: consume %s", i,
		      once_status_name(st));
		CHECK(r, !after || st == ONCE_NOT_FOUND,
		      "fam %zu: consume started after the revocation got %s", i, once_status_name(st));
		if (st == ONCE_OK)
			atomic_fetch_add(&r->ok[i], 1);
		if (st == ONCE_OK || st == ONCE_SPENT)
			insert_child(r, i, id, fam, child);
		else
			check_dead(r, i, NULL);
	} else if (role % 3 == 2) { /* rotate */
		char pay[PAYLOAD_MAX];
		size_t pay_len = payload_of(pay, i, id);
		once_refresh c = token(fam, NOW + 100000);
		bool after = revoked_now(r, i);
		once_status st = once_refresh_rotate(r->s, r->root[i], KEY_LEN, child, KEY_LEN, &c, pay,
		                                     pay_len, NULL);
		CHECK(r, st == ONCE_OK || st == ONCE_SPENT || st == ONCE_NOT_FOUND || st == ONCE_REVOKED,
		      "fam %zu: rotate %s", i, once_status_name(st));
		CHECK(r, !after || st == ONCE_NOT_FOUND || st == ONCE_REVOKED,
		      "fam %zu: rotation started after the revocation got %s", i, once_status_name(st));
		if (st == ONCE_OK) {
			atomic_fetch_add(&r->ok[i], 1);
			atomic_fetch_add(&r->extra[EX_ROTATE_OK], 1);
		}
		if (st == ONCE_REVOKED)
			atomic_fetch_add(&r->extra[EX_ROTATE_REVOKED], 1);
		if (st != ONCE_OK) { /* R3: a failed rotation made no child */
			once_status g = once_refresh_get(r->s, child, KEY_LEN, NULL);
			CHECK(r, g == ONCE_NOT_FOUND, "fam %zu: child of a %s rotation reads %s", i,
			      once_status_name(st), once_status_name(g));
		}
		check_dead(r, i, child);
	} else { /* a sibling insert, no consume */
		insert_child(r, i, id, fam, child);
	}
}

static void test_race_insert_vs_revoke(void)
{
	struct race r;
	race_open(&r, keys_for(20000, 20000 / 4), 86400);
	insert_roots(&r, far_expiry);
	race_run(&r, op_insert_vs_revoke, "insert vs revoke", NULL, 0);
	printf("# inserts OK %" PRIu64 " REVOKED %" PRIu64 "; rotations OK %" PRIu64 " REVOKED %" PRIu64
	       "; revocations %" PRIu64 "\n",
	       atomic_load(&r.extra[EX_INSERT_OK]), atomic_load(&r.extra[EX_INSERT_REVOKED]),
	       atomic_load(&r.extra[EX_ROTATE_OK]), atomic_load(&r.extra[EX_ROTATE_REVOKED]),
	       atomic_load(&r.revokes_done));
	ASSERT_EQ_U64(atomic_load(&r.revokes_done), r.keys);
	/* Afterwards: nothing of any family reads as live, nothing joins one. */
	for (size_t i = 0; i < r.keys; i++) {
		if (atomic_load(&r.ok[i]) > 1)
			FAIL_AT("family %zu: root consumed %u times", i, atomic_load(&r.ok[i]));
		char fam[32];
		fam_name(fam, i);
		ASSERT_ST(once_refresh_get(r.s, r.root[i], KEY_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_ST(once_refresh_consume(r.s, r.root[i], KEY_LEN, NULL), ONCE_NOT_FOUND);
		for (int id = 0; id < r.threads; id++) {
			char child[KEY_LEN + 1];
			child_key(child, i, id);
			ASSERT_ST(once_refresh_get(r.s, child, KEY_LEN, NULL), ONCE_NOT_FOUND);
			ASSERT_ST(once_refresh_consume(r.s, child, KEY_LEN, NULL), ONCE_NOT_FOUND);
		}
		char late[KEY_LEN + 1];
		test_key(late, "late", i);
		once_refresh t = token(fam, NOW + 100000);
		ASSERT_ST(once_refresh_insert(r.s, late, KEY_LEN, &t), ONCE_REVOKED);
	}
	/* Every token that got in is held (until swept), nothing else.
	 * PostgreSQL: revocation deleted every family's rows. */
	if (!test_on_postgres())
		ASSERT_EQ_U64(test_entries(r.s, "refresh"),
		              r.keys + atomic_load(&r.extra[EX_INSERT_OK]) +
		                      atomic_load(&r.extra[EX_ROTATE_OK]));
	else
		ASSERT_EQ_U64(test_entries(r.s, "refresh"), 0);
	race_close(&r);
}

/* ---- revocation racing with the sweep, the clock advancing ---- */

/*
 * revocation_ttl is 0, so a family's mark lives exactly as long as its
 * latest-expiring token.  Family i's root expires at NOW + 1 + i / GROUP:
 * the clock starts at the first group's expiry, and the revoker of each
 * group's middle family moves it one second on (only forward), so families
 * expire while workers still revoke and insert into them, and a sweeper
 * thread sweeping without pause retires them meanwhile.  Inserts into the
 * families nobody revokes use short expiries (now + 1) too, so those
 * families are retired and re-created over and over.
 *
 * Checks: an operation whose clock reading AFTER it returned is still <=
 * the family's expiry ran entirely while no sweep could retire the family
 * (sweeps read the same forward-only clock), so after the revocation
 * returned it must see the mark: insert REVOKED, get NOT_FOUND.  And an
 * insert into a family nobody revokes must land a token that reads live,
 * even while the sweep retires the family's previous incarnation.
 */
#define GROUP 8 /* families per second of the test clock */

static int64_t round_expiry(size_t i)
{
	return NOW + 1 + (int64_t)(i / GROUP);
}

static int64_t now_of(struct race *r)
{
	return atomic_load(&r->clk.now);
}

enum { SW_INSERT_OK, SW_LIVE_OK, SW_SHORT_OK, SW_SWEPT, SW_PASSES };
/* Under TSan every entry the sweep retires costs a suppressed report when
 * the call_rcu worker frees it (tsan.supp): keep that number modest. */
#define SHORT_INSERTS (RACE_TSAN ? 1 : 3)
/* Checks that applied (the clock had not passed the family's expiry). */
static _Atomic uint64_t armed_checks;

static void *sweeper_thread(void *arg)
{
	struct race *r = arg;
	uint64_t swept = 0, passes = 0;
	while (!atomic_load(&r->stop)) {
		once_sweep_counts c;
		if (once_sweep(r->s, &c) != ONCE_OK)
			atomic_fetch_add(&r->bad, 1);
		swept += c.refresh;
		passes++;
		sched_yield();
	}
	atomic_fetch_add(&r->extra[SW_SWEPT], swept);
	atomic_fetch_add(&r->extra[SW_PASSES], passes);
	return NULL;
}

static void op_revoke_vs_sweep(struct race *r, int id, size_t i)
{
	char fam[32], key[KEY_LEN + 1];
	fam_name(fam, i);
	int64_t exp = round_expiry(i);
	int role = (id - (int)(i % (size_t)r->threads) + r->threads) % r->threads;
	if (role == 0) { /* revoke */
		if (i % GROUP == GROUP / 2)
			atomic_fetch_add(&r->clk.now, 1); /* the group's families expire */
		ASSERT_ST(once_refresh_revoke_family(r->s, fam, strlen(fam)), ONCE_OK);
		atomic_store(&r->revoked[i], atomic_fetch_add(&r->revokes_done, 1) + 1);
		once_status g = once_refresh_get(r->s, r->root[i], KEY_LEN, NULL);
		int64_t after = now_of(r);
		CHECK(r, after > exp || g == ONCE_NOT_FOUND, "fam %zu: root %s after revoke at t=%" PRId64,
		      i, once_status_name(g), after);
		if (after <= exp)
			atomic_fetch_add(&armed_checks, 1);
	} else if (role <= 3) { /* insert into the family being revoked */
		child_key(key, i, id);
		once_refresh t = token(fam, exp); /* does not lengthen the mark */
		t.generation = id + 1;            /* distinct in the family (PostgreSQL) */
		bool revoked = revoked_now(r, i);
		once_status st = once_refresh_insert(r->s, key, KEY_LEN, &t);
		int64_t after = now_of(r);
		CHECK(r, st == ONCE_OK || st == ONCE_REVOKED, "fam %zu: insert %s", i, once_status_name(st));
		CHECK(r, !revoked || after > exp || st == ONCE_REVOKED,
		      "fam %zu: insert after the revocation got %s at t=%" PRId64 " <= %" PRId64, i,
		      once_status_name(st), after, exp);
		if (st == ONCE_OK)
			atomic_fetch_add(&r->extra[SW_INSERT_OK], 1);
		if (revoked && after <= exp)
			atomic_fetch_add(&armed_checks, 1);
		if (revoked_now(r, i)) {
			once_status g = once_refresh_get(r->s, r->root[i], KEY_LEN, NULL);
			after = now_of(r);
			CHECK(r, after > exp || g == ONCE_NOT_FOUND,
			      "fam %zu: root %s after the revocation at t=%" PRId64, i, once_status_name(g),
			      after);
		}
	} else { /* insert tokens into a family nobody revokes */
		char live[32];
		snprintf(live, sizeof live, "live-%zu", i);
		/* Short-lived ones first: each keeps the family alive only to
		 * the next second, so the sweep keeps retiring it meanwhile. */
		for (int k = 0; k < SHORT_INSERTS; k++) {
			char p[32];
			snprintf(p, sizeof p, "short-%d-%d", id, k);
			test_key(key, p, i);
			int64_t exp_s = now_of(r) + 1;
			once_refresh t = token(live, exp_s);
			t.generation = 1 + id * (SHORT_INSERTS + 1) + k; /* distinct (PostgreSQL) */
			once_status st = once_refresh_insert(r->s, key, KEY_LEN, &t);
			CHECK(r, st == ONCE_OK, "fam %zu: short live insert %s", i, once_status_name(st));
			if (st != ONCE_OK)
				continue;
			atomic_fetch_add(&r->extra[SW_SHORT_OK], 1);
			once_status g = once_refresh_get(r->s, key, KEY_LEN, NULL);
			int64_t after = now_of(r);
			CHECK(r, after > exp_s || g == ONCE_OK,
			      "fam %zu: an unexpired token just inserted into a live family reads %s", i,
			      once_status_name(g));
			if (after <= exp_s)
				atomic_fetch_add(&armed_checks, 1);
		}
		child_key(key, i + r->keys, id);
		once_refresh t = token(live, NOW + 100000);
		t.generation = 1 + id * (SHORT_INSERTS + 1) + SHORT_INSERTS;
		once_status st = once_refresh_insert(r->s, key, KEY_LEN, &t);
		CHECK(r, st == ONCE_OK, "fam %zu: live insert %s", i, once_status_name(st));
		if (st == ONCE_OK) {
			atomic_fetch_add(&r->extra[SW_LIVE_OK], 1);
			once_status g = once_refresh_get(r->s, key, KEY_LEN, NULL);
			CHECK(r, g == ONCE_OK, "fam %zu: a token just inserted into a live family reads %s",
			      i, once_status_name(g));
		}
	}
}

static void test_race_revoke_vs_sweep(void)
{
	struct race r;
	race_open(&r, keys_for(30000, 2000), 0);
	insert_roots(&r, round_expiry);
	/* The families nobody revokes: one short-lived token each, expiring
	 * like the revoked ones, so the sweep retires them mid-race. */
	for (size_t i = 0; i < r.keys; i++) {
		char live[32], key[KEY_LEN + 1];
		snprintf(live, sizeof live, "live-%zu", i);
		test_key(key, "live-root", i);
		once_refresh t = token(live, round_expiry(i));
		ASSERT_ST(once_refresh_insert(r.s, key, KEY_LEN, &t), ONCE_OK);
	}
	atomic_store(&r.clk.now, round_expiry(0));
	void *(*helpers[])(void *) = {sweeper_thread};
	race_run(&r, op_revoke_vs_sweep, "revoke vs sweep", helpers, 1);
	uint64_t ins_ok = atomic_load(&r.extra[SW_INSERT_OK]);
	uint64_t live_ok = atomic_load(&r.extra[SW_LIVE_OK]);
	printf("# clock at %" PRId64 "; inserts into revoked families OK %" PRIu64
	       " (after expiry); live inserts %" PRIu64 "; swept %" PRIu64 " in %" PRIu64 " passes\n",
	       now_of(&r), ins_ok, live_ok, atomic_load(&r.extra[SW_SWEPT]),
	       atomic_load(&r.extra[SW_PASSES]));
	printf("# checks made while the family was unexpired: %" PRIu64 "\n", atomic_load(&armed_checks));
	/* The live families kept every token inserted into them. */
	ASSERT_EQ_U64(live_ok, (uint64_t)r.keys * (uint64_t)(r.threads - 4));
	for (size_t i = 0; i < r.keys; i++) {
		for (int id = 0; id < r.threads; id++) {
			int role = (id - (int)(i % (size_t)r.threads) + r.threads) % r.threads;
			if (role <= 3)
				continue;
			char key[KEY_LEN + 1];
			child_key(key, i + r.keys, id);
			ASSERT_ST(once_refresh_get(r.s, key, KEY_LEN, NULL), ONCE_OK);
		}
	}
	/* Everything short-lived expires and is swept, and only that.  A push
	 * onto the expiry wheel that raced with a sweep of its slot is found
	 * one wheel turn (4096 s, core/expiry.c) later, so jump past a whole
	 * turn: the sweep then visits every slot once. */
	atomic_store(&r.clk.now, round_expiry(r.keys) + 5000);
	once_sweep_counts last;
	memset(&last, 0, sizeof last);
	ASSERT_ST(once_sweep(r.s, test_on_postgres() ? &last : NULL), ONCE_OK);
	struct once_stats st;
	once_stats(r.s, &st);
	ASSERT_EQ_U64(st.refresh.entries, live_ok);
	uint64_t short_ok = atomic_load(&r.extra[SW_SHORT_OK]);
	if (!test_on_postgres()) {
		ASSERT_EQ_U64(st.refresh.swept, 2 * (uint64_t)r.keys + ins_ok + short_ok);
	} else {
		/* No swept count in once_stats, and a revocation deletes its
		 * family's rows, racing the sweep for the expired ones: the
		 * sweeps removed every live family's root and short-lived token
		 * (never revoked), and at most what was ever inserted besides
		 * the long-lived tokens still held. */
		uint64_t swept = atomic_load(&r.extra[SW_SWEPT]) + last.refresh;
		ASSERT_EQ_U64(st.refresh.swept, 0);
		if (swept < (uint64_t)r.keys + short_ok || swept > 2 * (uint64_t)r.keys + ins_ok + short_ok)
			FAIL_AT("swept %" PRIu64 ", expected %" PRIu64 " .. %" PRIu64, swept,
			        (uint64_t)r.keys + short_ok, 2 * (uint64_t)r.keys + ins_ok + short_ok);
	}
	race_close(&r);
}

TESTS(TEST(test_race_rotate_one_parent), TEST(test_race_consume_one_token),
      TEST(test_race_insert_vs_revoke), TEST(test_race_revoke_vs_sweep));
TEST_MAIN()
