/*
 * tests/test_race.c - SPEC 1.1 "exactly one winner", under real contention.
 *
 * Every test starts its threads behind a barrier and walks the same keys in
 * the same order, in chunks separated by a barrier, so threads that run at
 * the same time really collide on one key.  Outcomes are counted per status
 * with atomics and the totals are asserted exactly, in the main thread,
 * after the workers have been joined.
 *
 * Scale: at least 8 threads and 1000 keys always.  ONCE_RACE_THREADS and
 * ONCE_RACE_KEYS override the defaults; under ThreadSanitizer (about 10x
 * slower) the default key counts are divided by 10 (never below 1000).
 * On PostgreSQL (suite pg) the counts are smaller: see keys_for.
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "harness.h"
#include "race.h"

#define CHUNK 64 /* keys between two round barriers */
#define NOW 1000 /* the test clock's start */
#define PG_KEYS 2000 /* keys of a one-operation race on PostgreSQL: keys_for */

/*
 * PostgreSQL: every operation is a statement, one round trip to the server
 * (a few thousand a second from 8 threads on a 2-core machine, where the
 * embedded store does millions), so the embedded defaults - 50000 keys x 8
 * threads, 400000 operations per race - took minutes per test (the first
 * run of race_pg: 367 s).  There a race runs on `pg` keys (half of them
 * under ThreadSanitizer, never below 1000): the same race, every thread on
 * every key in the same order, one winner per key, just fewer keys.
 * ONCE_RACE_KEYS still overrides both.
 */
static size_t keys_for(size_t normal, size_t under_tsan, size_t pg)
{
	if (test_on_postgres())
		return race_keys(pg, pg / 2);
	return race_keys(normal, under_tsan);
}

/* ---- the race runner ---- */

struct race;
/* One operation of worker `id` on key number `key`. */
typedef void (*race_op)(struct race *r, int id, size_t key);

struct race {
	once_store *s;
	struct test_clock *clk;
	int threads;
	size_t keys;
	race_op op;
	pthread_barrier_t start, round;
	char (*key)[ONCE_SECRET_LEN + 1]; /* keys[i], prepared before the race */
	_Atomic uint64_t count[ONCE_STATUS_COUNT];
	_Atomic uint32_t *ok;     /* OK outcomes per key */
	_Atomic int32_t *winner;  /* id of the worker that won key i */
	_Atomic uint64_t bad;     /* checks that failed inside a worker */
	_Atomic uint64_t extra;   /* test-specific counter */
	void *ctx;                /* test-specific data */
};

struct worker {
	struct race *r;
	int id;
};


static void tally(struct race *r, size_t key, once_status st)
{
	if ((unsigned)st < ONCE_STATUS_COUNT)
		atomic_fetch_add_explicit(&r->count[st], 1, memory_order_relaxed);
	if (st == ONCE_OK && r->ok != NULL)
		atomic_fetch_add_explicit(&r->ok[key], 1, memory_order_relaxed);
}

static void race_init(struct race *r, once_store *s, struct test_clock *clk, size_t keys,
                      const char *prefix)
{
	memset(r, 0, sizeof *r);
	r->s = s;
	r->clk = clk;
	r->threads = race_threads();
	r->keys = keys;
	r->key = calloc(keys, sizeof *r->key);
	r->ok = calloc(keys, sizeof *r->ok);
	r->winner = calloc(keys, sizeof *r->winner);
	ASSERT(r->key != NULL && r->ok != NULL && r->winner != NULL);
	for (size_t i = 0; i < keys; i++) {
		if (prefix != NULL)
			test_key(r->key[i], prefix, i);
		atomic_init(&r->ok[i], 0);
		atomic_init(&r->winner[i], -1);
	}
	for (int i = 0; i < ONCE_STATUS_COUNT; i++)
		atomic_init(&r->count[i], 0);
	atomic_init(&r->bad, 0);
	atomic_init(&r->extra, 0);
}

static void race_reset(struct race *r)
{
	for (size_t i = 0; i < r->keys; i++) {
		if (r->ok != NULL)
			atomic_store(&r->ok[i], 0);
		atomic_store(&r->winner[i], -1);
	}
	for (int i = 0; i < ONCE_STATUS_COUNT; i++)
		atomic_store(&r->count[i], 0);
	atomic_store(&r->extra, 0);
}

static void race_free(struct race *r)
{
	free(r->key);
	free((void *)r->ok);
	free((void *)r->winner);
}

static void *race_worker(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	pthread_barrier_wait(&r->start);
	for (size_t base = 0; base < r->keys; base += CHUNK) {
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

/* Runs r->op on every key from every worker, all released at once. */
static void race_run(struct race *r, race_op op, const char *what)
{
	pthread_t tid[MAX_THREADS];
	struct worker w[MAX_THREADS];
	struct timespec t0;
	r->op = op;
	ASSERT(pthread_barrier_init(&r->start, NULL, (unsigned)r->threads) == 0);
	ASSERT(pthread_barrier_init(&r->round, NULL, (unsigned)r->threads) == 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < r->threads; i++) {
		w[i] = (struct worker){r, i};
		ASSERT(pthread_create(&tid[i], NULL, race_worker, &w[i]) == 0);
	}
	for (int i = 0; i < r->threads; i++)
		ASSERT(pthread_join(tid[i], NULL) == 0);
	pthread_barrier_destroy(&r->start);
	pthread_barrier_destroy(&r->round);
	printf("# %s: %d threads x %zu keys in %.3f s; OK %" PRIu64 " NOT_FOUND %" PRIu64
	       " SPENT %" PRIu64 " EXISTS %" PRIu64 " FULL %" PRIu64 "\n",
	       what, r->threads, r->keys, seconds_since(&t0), atomic_load(&r->count[ONCE_OK]),
	       atomic_load(&r->count[ONCE_NOT_FOUND]), atomic_load(&r->count[ONCE_SPENT]),
	       atomic_load(&r->count[ONCE_EXISTS]), atomic_load(&r->count[ONCE_FULL]));
	fflush(stdout);
	ASSERT_EQ_U64(atomic_load(&r->bad), 0);
}

/* Exactly one OK per key. */
static void assert_one_winner_per_key(struct race *r)
{
	race_assert_one_winner(r->ok, r->keys);
}

/* The totals: `ok` OK, `rest` of status `other`, nothing else. */
static void assert_totals(struct race *r, uint64_t ok, once_status other, uint64_t rest)
{
	race_assert_totals(r->count, ok, other, rest);
}

static void subject_of(char out[32], const char *prefix, size_t i)
{
	snprintf(out, 32, "%s-%zu", prefix, i);
}

/* Puts code i with subject "user-i" and family "fam-i". */
static void put_codes(struct race *r)
{
	for (size_t i = 0; i < r->keys; i++) {
		char sub[32], fam[32];
		subject_of(sub, "user", i);
		subject_of(fam, "fam", i);
		once_code c = test_code(NOW + 3600);
		c.subject = sub;
		c.family_id = fam;
		ASSERT_ST(once_code_put(r->s, r->key[i], ONCE_SECRET_LEN, &c), ONCE_OK);
	}
}

/* ---- authorization codes: take ---- */

static void op_code_take(struct race *r, int id, size_t i)
{
	once_code *rec = NULL;
	once_code_meta *meta = NULL;
	once_status st = once_code_take(r->s, r->key[i], ONCE_SECRET_LEN, &rec, &meta);
	tally(r, i, st);
	if (st == ONCE_OK) {
		char sub[32];
		subject_of(sub, "user", i);
		CHECK(r, rec != NULL && strcmp(rec->subject, sub) == 0, "key %zu", i);
		CHECK(r, rec != NULL && rec->consumed_at == NOW && !rec->consumed_success,
		      "key %zu", i);
		atomic_store(&r->winner[i], id);
	}
	CHECK(r, meta == NULL, "key %zu: meta filled on %s", i, once_status_name(st));
	once_free(rec);
	once_free(meta);
}

static void test_race_code_take(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	struct race r;
	race_init(&r, s, &clk, keys_for(50000, 50000 / 10, PG_KEYS), "take");
	put_codes(&r);
	race_run(&r, op_code_take, "code take");
	assert_one_winner_per_key(&r);
	assert_totals(&r, r.keys, ONCE_NOT_FOUND, (uint64_t)r.keys * (uint64_t)(r.threads - 1));
	/* Claimed, not finalized: still NOT_FOUND for everyone, get too. */
	for (size_t i = 0; i < r.keys; i++) {
		ASSERT_ST(once_code_take(s, r.key[i], ONCE_SECRET_LEN, NULL, NULL), ONCE_NOT_FOUND);
		ASSERT_ST(once_code_get(s, r.key[i], ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	}
	ASSERT_EQ_U64(test_entries(s, "codes"), r.keys);
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- authorization codes: take racing with finalize ---- */

/*
 * Every worker takes; the winner finalizes at once, and worker 0 also
 * finalizes every key right after its own take, whoever won it (finalize
 * racing with take and with the winner's finalize).  Losers see NOT_FOUND
 * before the finalize and SPENT + meta after it.
 */
static void op_code_take_finalize(struct race *r, int id, size_t i)
{
	once_code *rec = NULL;
	once_code_meta *meta = NULL;
	char sub[32], fam[32];
	subject_of(sub, "user", i);
	subject_of(fam, "fam", i);
	once_status st = once_code_take(r->s, r->key[i], ONCE_SECRET_LEN, &rec, &meta);
	tally(r, i, st);
	switch (st) {
	case ONCE_OK:
		CHECK(r, rec != NULL && strcmp(rec->subject, sub) == 0, "key %zu", i);
		CHECK(r, meta == NULL, "key %zu", i);
		atomic_store(&r->winner[i], id);
		{
			once_status f = once_code_finalize(r->s, r->key[i], ONCE_SECRET_LEN);
			CHECK(r, f == ONCE_OK, "key %zu: winner's finalize got %s", i,
			      once_status_name(f));
		}
		break;
	case ONCE_SPENT:
		CHECK(r, meta != NULL && meta->subject != NULL && strcmp(meta->subject, sub) == 0,
		      "key %zu: SPENT meta subject %s", i,
		      meta && meta->subject ? meta->subject : "(none)");
		CHECK(r, meta != NULL && meta->family_id != NULL && strcmp(meta->family_id, fam) == 0,
		      "key %zu: SPENT meta family", i);
		CHECK(r, rec == NULL, "key %zu: record filled on SPENT", i);
		break;
	case ONCE_NOT_FOUND:
		CHECK(r, rec == NULL && meta == NULL, "key %zu: out filled on NOT_FOUND", i);
		break;
	default:
		break; /* counted; the totals fail */
	}
	once_free(rec);
	once_free(meta);
	if (id == 0) {
		/* OK when some worker has claimed it, NOT_FOUND while still live. */
		once_status f = once_code_finalize(r->s, r->key[i], ONCE_SECRET_LEN);
		CHECK(r, f == ONCE_OK || f == ONCE_NOT_FOUND, "key %zu: finalize got %s", i,
		      once_status_name(f));
		if (f == ONCE_OK)
			atomic_fetch_add(&r->extra, 1);
	}
}

static void test_race_code_take_finalize(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	struct race r;
	race_init(&r, s, &clk, keys_for(50000, 50000 / 10, PG_KEYS), "takefin");
	put_codes(&r);
	race_run(&r, op_code_take_finalize, "code take + finalize");
	assert_one_winner_per_key(&r);
	uint64_t total = (uint64_t)r.keys * (uint64_t)r.threads;
	uint64_t nf = atomic_load(&r.count[ONCE_NOT_FOUND]), sp = atomic_load(&r.count[ONCE_SPENT]);
	ASSERT_EQ_U64(atomic_load(&r.count[ONCE_OK]), r.keys);
	ASSERT_EQ_U64(nf + sp, total - r.keys);
	printf("# worker 0's extra finalize found the code claimed %" PRIu64 " times\n",
	       atomic_load(&r.extra));
	/* Every code is now claimed and finalized: a replay for everyone. */
	for (size_t i = 0; i < r.keys; i++) {
		once_code_meta *m = NULL;
		char sub[32];
		subject_of(sub, "user", i);
		ASSERT_ST(once_code_take(s, r.key[i], ONCE_SECRET_LEN, NULL, &m), ONCE_SPENT);
		ASSERT_STR(m->subject, sub);
		once_free(m);
	}
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.ops[ONCE_OP_CODE_TAKE][ONCE_OK], r.keys);
	ASSERT_EQ_U64(st.ops[ONCE_OP_CODE_TAKE][ONCE_SPENT], sp + r.keys);
	ASSERT_EQ_U64(st.ops[ONCE_OP_CODE_TAKE][ONCE_NOT_FOUND], nf);
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- authorization codes: put racing on one hash ---- */

static void op_code_put(struct race *r, int id, size_t i)
{
	char sub[32];
	subject_of(sub, "winner", (size_t)id);
	once_code c = test_code(NOW + 3600);
	c.subject = sub;
	once_status st = once_code_put(r->s, r->key[i], ONCE_SECRET_LEN, &c);
	tally(r, i, st);
	if (st == ONCE_OK)
		atomic_store(&r->winner[i], id);
}

static void test_race_code_put(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	struct race r;
	race_init(&r, s, &clk, keys_for(50000, 50000 / 10, PG_KEYS), "put");
	race_run(&r, op_code_put, "code put");
	assert_one_winner_per_key(&r);
	assert_totals(&r, r.keys, ONCE_EXISTS, (uint64_t)r.keys * (uint64_t)(r.threads - 1));
	ASSERT_EQ_U64(test_entries(s, "codes"), r.keys);
	/* The stored record is the winner's, untouched by the losers. */
	for (size_t i = 0; i < r.keys; i++) {
		char sub[32];
		int w = atomic_load(&r.winner[i]);
		ASSERT(w >= 0);
		subject_of(sub, "winner", (size_t)w);
		once_code *got = NULL;
		ASSERT_ST(once_code_get(s, r.key[i], ONCE_SECRET_LEN, &got), ONCE_OK);
		ASSERT_STR(got->subject, sub);
		ASSERT_EQ_INT(got->consumed_at, 0);
		once_free(got);
	}
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- DPoP nonces ---- */

static void op_nonce_accept(struct race *r, int id, size_t i)
{
	(void)id;
	once_status st = once_nonce_accept(r->s, r->key[i], ONCE_NONCE_LEN, 60);
	tally(r, i, st);
}

static void test_race_nonce_accept(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	struct race r;
	race_init(&r, s, &clk, keys_for(50000, 50000 / 10, PG_KEYS), NULL);
	for (size_t i = 0; i < r.keys; i++)
		ASSERT_ST(once_nonce_issue(s, 60, r.key[i]), ONCE_OK);
	race_run(&r, op_nonce_accept, "nonce accept");
	assert_one_winner_per_key(&r);
	assert_totals(&r, r.keys, ONCE_SPENT, (uint64_t)r.keys * (uint64_t)(r.threads - 1));
	for (size_t i = 0; i < r.keys; i++) {
		ASSERT(!once_nonce_valid(s, r.key[i], ONCE_NONCE_LEN));
		ASSERT_ST(once_nonce_accept(s, r.key[i], ONCE_NONCE_LEN, 60), ONCE_SPENT);
	}
	ASSERT_EQ_U64(test_entries(s, "nonces"), r.keys);
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- DPoP replay cache ---- */

static size_t jti_of(char out[48], const char *prefix, int id, size_t i)
{
	int n = id < 0 ? snprintf(out, 48, "%s-%zu", prefix, i)
	               : snprintf(out, 48, "%s-%d-%zu", prefix, id, i);
	return (size_t)n;
}

static void op_replay_same(struct race *r, int id, size_t i)
{
	(void)id;
	char jti[48];
	size_t n = jti_of(jti, "jti", -1, i);
	tally(r, i, once_replay_check(r->s, jti, n, 60));
}

static void test_race_replay_same_jti(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	struct race r;
	race_init(&r, s, &clk, keys_for(50000, 50000 / 10, PG_KEYS), NULL);
	race_run(&r, op_replay_same, "replay check, same jti");
	assert_one_winner_per_key(&r);
	assert_totals(&r, r.keys, ONCE_SPENT, (uint64_t)r.keys * (uint64_t)(r.threads - 1));
	ASSERT_EQ_U64(test_entries(s, "replays"), r.keys);
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Shared jti i (raced by everyone), then this worker's own jti (id, i). */
static void op_replay_interleaved(struct race *r, int id, size_t i)
{
	char jti[48];
	size_t n = jti_of(jti, "shared", -1, i);
	tally(r, i, once_replay_check(r->s, jti, n, 60));
	n = jti_of(jti, "own", id, i);
	once_status st = once_replay_check(r->s, jti, n, 60);
	CHECK(r, st == ONCE_OK, "own jti %d-%zu: %s", id, i, once_status_name(st));
	if (st == ONCE_OK)
		atomic_fetch_add(&r->extra, 1);
}

static void test_race_replay_interleaved(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	o.max_replays = 1u << 20;
	once_store *s = test_open(&o);
	struct race r;
	race_init(&r, s, &clk, keys_for(20000, 20000 / 10, PG_KEYS), NULL);
	race_run(&r, op_replay_interleaved, "replay check, shared + distinct jti");
	assert_one_winner_per_key(&r);
	assert_totals(&r, r.keys, ONCE_SPENT, (uint64_t)r.keys * (uint64_t)(r.threads - 1));
	uint64_t own = (uint64_t)r.keys * (uint64_t)r.threads;
	ASSERT_EQ_U64(atomic_load(&r.extra), own);
	/* No lost insert: every key is there, and the count is exact. */
	ASSERT_EQ_U64(test_entries(s, "replays"), r.keys + own);
	for (size_t i = 0; i < r.keys; i++) {
		char jti[48];
		size_t n = jti_of(jti, "shared", -1, i);
		ASSERT_ST(once_replay_check(s, jti, n, 60), ONCE_SPENT);
		for (int id = 0; id < r.threads; id++) {
			n = jti_of(jti, "own", id, i);
			ASSERT_ST(once_replay_check(s, jti, n, 60), ONCE_SPENT);
		}
	}
	ASSERT_EQ_U64(test_entries(s, "replays"), r.keys + own);
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- capacity ---- */

static void op_replay_capacity(struct race *r, int id, size_t i)
{
	char jti[48];
	size_t n = jti_of(jti, "cap", id, i);
	once_status st = once_replay_check(r->s, jti, n, 60);
	tally(r, i, st);
	/* winner[] records per (id, i) whether it was stored: bit per worker. */
	if (st == ONCE_OK)
		atomic_fetch_or((_Atomic uint64_t *)r->ctx + i, (uint64_t)1 << id);
}

/* Second pass: a stored key is a replay (SPENT, not FULL); a refused one
 * is still refused (FULL). */
static void op_replay_capacity_again(struct race *r, int id, size_t i)
{
	char jti[48];
	size_t n = jti_of(jti, "cap", id, i);
	once_status st = once_replay_check(r->s, jti, n, 60);
	tally(r, i, st);
	bool stored = atomic_load((_Atomic uint64_t *)r->ctx + i) & ((uint64_t)1 << id);
	CHECK(r, st == (stored ? ONCE_SPENT : ONCE_FULL), "jti %d-%zu (stored %d): %s", id, i,
	      stored, once_status_name(st));
}

static void test_race_capacity(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	const uint64_t cap = 1000;
	o.max_replays = cap;
	once_store *s = test_open(&o);
	struct race r;
	/* Every worker inserts its own keys: threads x keys distinct jti,
	 * several times the capacity. */
	race_init(&r, s, &clk, race_keys(1000, 1000 / 10), NULL);
	free((void *)r.ok);
	r.ok = NULL; /* keys are per worker here; per-key tallies don't apply */
	_Atomic uint64_t *stored = calloc(r.keys, sizeof *stored);
	ASSERT(stored != NULL);
	r.ctx = (void *)stored;
	uint64_t total = (uint64_t)r.keys * (uint64_t)r.threads;
	ASSERT(total > 2 * cap);
	/* PostgreSQL has no capacity (max_replays is an embedded option; the
	 * header: never ONCE_FULL): every insert past it succeeds, and every
	 * jti is a replay on the second pass. */
	uint64_t kept = test_on_postgres() ? total : cap;
	race_run(&r, op_replay_capacity, "replay insert at capacity");
	if (!test_on_postgres())
		assert_totals(&r, cap, ONCE_FULL, total - cap);
	else
		assert_totals(&r, total, ONCE_FULL, 0);
	ASSERT_EQ_U64(test_entries(s, "replays"), kept);
	uint64_t bits = 0;
	for (size_t i = 0; i < r.keys; i++)
		bits += (uint64_t)__builtin_popcountll(atomic_load(&stored[i]));
	ASSERT_EQ_U64(bits, kept);

	race_reset(&r);
	race_run(&r, op_replay_capacity_again, "replay re-check at capacity");
	ASSERT_EQ_U64(atomic_load(&r.count[ONCE_SPENT]), kept);
	ASSERT_EQ_U64(atomic_load(&r.count[ONCE_FULL]), total - kept);
	ASSERT_EQ_U64(atomic_load(&r.count[ONCE_OK]), 0);
	ASSERT_EQ_U64(test_entries(s, "replays"), kept);
	free((void *)stored);
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- access tokens vs family revocation ---- */

/*
 * PostgreSQL (include/oncestore.h, once_code_record_access_token and
 * once_code_revoke_family_access_tokens; pg/code.c): AttestoPhoenix keeps
 * an access token on the code rows of its family, so every family gets a
 * code first (neutral: the embedded engine does not need it), and a family
 * keeps one token, the latest recorded: each record replaces the one
 * before.  The revocation marks the rows that carry a token; a later
 * record leaves the mark, so the token on the rows reads revoked, and the
 * tokens it replaced read as unknown.  The race there: of the tokens all
 * recorders wrote into a family while it was revoked mid-stream, exactly
 * one reads revoked when they are done - the last one recorded.
 */
#define AT_ROUNDS_NORMAL 200
#define AT_PER_WORKER 32
#define AT_PER_WORKER_PG 8 /* more families (revocation races) per token on PG */
#define AT_TOKENS_PG 2048  /* tokens in all on PostgreSQL: see keys_for */

struct at_ctx {
	size_t rounds;
	size_t per_worker;
	_Atomic size_t recorded[MAX_THREADS]; /* this round's tokens published */
	_Atomic size_t round_ok;              /* tokens recorded this round */
	_Atomic int finished;                 /* recorders done with this round */
	_Atomic bool revoked;                 /* revocation of this round returned */
	pthread_barrier_t round;
	size_t *kept; /* PostgreSQL: per round, the token (id x per_worker + j)
	               * that read revoked when the round ended */
};

static size_t at_jti(char out[48], size_t round, int id, size_t j)
{
	return (size_t)snprintf(out, 48, "at-%zu-%d-%zu", round, id, j);
}

static size_t at_family(char out[32], size_t round)
{
	return (size_t)snprintf(out, 32, "family-%zu", round);
}

/* PostgreSQL: how many of the round's tokens read revoked; *which gets the
 * last one that did. */
static size_t at_count_revoked(struct race *r, struct at_ctx *c, size_t round, size_t *which)
{
	size_t n = 0;
	for (int id = 0; id < r->threads; id++)
		for (size_t j = 0; j < c->per_worker; j++) {
			char jti[48];
			size_t jl = at_jti(jti, round, id, j);
			if (once_access_token_revoked(r->s, jti, jl)) {
				n++;
				*which = (size_t)id * c->per_worker + j;
			}
		}
	return n;
}

struct at_worker {
	struct race *r;
	int id; /* r->threads = the revoker */
};

static void *at_main(void *arg)
{
	struct at_worker *w = arg;
	struct race *r = w->r;
	struct at_ctx *c = r->ctx;
	bool pg = test_on_postgres();
	pthread_barrier_wait(&r->start);
	for (size_t round = 0; round < c->rounds; round++) {
		char fam[32], jti[48];
		size_t flen = at_family(fam, round);
		if (w->id == r->threads) {
			/* The revoker: let some tokens in (so the family exists and the
			 * revocation has something to mark), then revoke mid-stream. */
			size_t want = 1 + (round * 7919) % (size_t)(r->threads * (int)c->per_worker / 2);
			while (atomic_load(&c->round_ok) < want &&
			       atomic_load(&c->finished) < r->threads)
				sched_yield();
			once_status st = once_code_revoke_family_access_tokens(r->s, fam, flen);
			CHECK(r, st == ONCE_OK, "revoke round %zu: %s", round, once_status_name(st));
			atomic_store(&c->revoked, true);
			if (!pg) {
				/* Every token recorded before the revocation reads revoked now. */
				for (int id = 0; id < r->threads; id++) {
					size_t n = atomic_load(&c->recorded[id]);
					for (size_t j = 0; j < n; j++) {
						size_t jl = at_jti(jti, round, id, j);
						CHECK(r, once_access_token_revoked(r->s, jti, jl),
						      "round %zu: token %d-%zu recorded before the "
						      "revocation is not revoked",
						      round, id, j);
					}
				}
			} else {
				/* The family's rows carried a token when the revocation ran
				 * (want >= 1 were recorded): once the recorders are done,
				 * the one token left on them, the last recorded, reads
				 * revoked, and no other token of the round does. */
				while (atomic_load(&c->finished) < r->threads)
					sched_yield();
				size_t which = 0;
				size_t n = at_count_revoked(r, c, round, &which);
				CHECK(r, n == 1, "round %zu: %zu tokens read revoked, expected exactly 1",
				      round, n);
				c->kept[round] = which;
			}
		} else {
			for (size_t j = 0; j < c->per_worker; j++) {
				bool after = atomic_load(&c->revoked);
				size_t jl = at_jti(jti, round, w->id, j);
				once_status st = once_code_record_access_token(r->s, fam, flen, jti, jl,
				                                               NOW + 3600);
				tally(r, 0, st);
				if (st != ONCE_OK)
					continue;
				atomic_store(&c->recorded[w->id], j + 1);
				atomic_fetch_add(&c->round_ok, 1);
				/* Recorded after the revocation returned: revoked at once.
				 * (PostgreSQL: only while no other recorder has replaced it;
				 * the revoker checks the round once all are done.) */
				if (after && !pg)
					CHECK(r, once_access_token_revoked(r->s, jti, jl),
					      "round %zu: token %d-%zu recorded after the revocation "
					      "is not revoked",
					      round, w->id, j);
				if (after)
					atomic_fetch_add(&r->extra, 1);
			}
			atomic_fetch_add(&c->finished, 1);
		}
		/* Between rounds: reset the round's state, then start together. */
		if (pthread_barrier_wait(&c->round) == PTHREAD_BARRIER_SERIAL_THREAD) {
			for (int id = 0; id < r->threads; id++)
				atomic_store(&c->recorded[id], 0);
			atomic_store(&c->round_ok, 0);
			atomic_store(&c->finished, 0);
			atomic_store(&c->revoked, false);
		}
		pthread_barrier_wait(&c->round);
	}
	return NULL;
}

static void test_race_access_revoke(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	bool pg = test_on_postgres();
	struct race r;
	struct at_ctx c;
	race_init(&r, s, &clk, 1, NULL);
	free((void *)r.ok);
	r.ok = NULL;
	memset(&c, 0, sizeof c);
	c.per_worker = pg ? AT_PER_WORKER_PG : AT_PER_WORKER;
	/* rounds x threads x per_worker tokens: >= MIN_KEYS. */
	size_t planned = (size_t)AT_ROUNDS_NORMAL * MIN_THREADS * AT_PER_WORKER;
	c.rounds = keys_for(planned, planned / 10, AT_TOKENS_PG) / ((size_t)r.threads * c.per_worker);
	if (c.rounds * (size_t)r.threads * c.per_worker < MIN_KEYS)
		c.rounds++;
	c.kept = calloc(c.rounds, sizeof *c.kept);
	ASSERT(c.kept != NULL);
	r.ctx = &c;
	/* One code per family, before the race (PostgreSQL keeps the tokens on
	 * it; see above). */
	for (size_t round = 0; round < c.rounds; round++) {
		char key[ONCE_SECRET_LEN + 1], fam[32];
		test_key(key, "atcode", round);
		at_family(fam, round);
		once_code code = test_code(NOW + 3600);
		code.family_id = fam;
		ASSERT_ST(once_code_put(s, key, ONCE_SECRET_LEN, &code), ONCE_OK);
	}
	int n = r.threads + 1;
	ASSERT(pthread_barrier_init(&r.start, NULL, (unsigned)n) == 0);
	ASSERT(pthread_barrier_init(&c.round, NULL, (unsigned)n) == 0);
	pthread_t tid[MAX_THREADS + 1];
	struct at_worker w[MAX_THREADS + 1];
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		w[i] = (struct at_worker){&r, i};
		ASSERT(pthread_create(&tid[i], NULL, at_main, &w[i]) == 0);
	}
	for (int i = 0; i < n; i++)
		ASSERT(pthread_join(tid[i], NULL) == 0);
	pthread_barrier_destroy(&r.start);
	pthread_barrier_destroy(&c.round);
	uint64_t tokens = (uint64_t)c.rounds * (uint64_t)r.threads * c.per_worker;
	printf("# access tokens: %d recorders + 1 revoker, %zu families, %" PRIu64
	       " tokens in %.3f s; %" PRIu64 " recorded after their family's revocation\n",
	       r.threads, c.rounds, tokens, seconds_since(&t0), atomic_load(&r.extra));
	ASSERT_EQ_U64(atomic_load(&r.bad), 0);
	assert_totals(&r, tokens, ONCE_OK, 0);
	if (!pg) {
		ASSERT_EQ_U64(test_entries(s, "access_tokens"), tokens);
		/* Afterwards: every token of every family reads revoked (unexpired)... */
		for (size_t round = 0; round < c.rounds; round++)
			for (int id = 0; id < r.threads; id++)
				for (size_t j = 0; j < c.per_worker; j++) {
					char jti[48];
					size_t jl = at_jti(jti, round, id, j);
					if (!once_access_token_revoked(s, jti, jl))
						FAIL_AT("token %zu-%d-%zu not revoked", round, id, j);
				}
		/* ...and no longer once expired. */
		atomic_store(&clk.now, NOW + 3601);
		char jti[48];
		size_t jl = at_jti(jti, 0, 0, 0);
		ASSERT(!once_access_token_revoked(s, jti, jl));
	} else {
		/* One token per family (entries: the code rows carrying one), and
		 * afterwards still exactly the one of each family that read
		 * revoked when its round ended... */
		ASSERT_EQ_U64(test_entries(s, "access_tokens"), c.rounds);
		for (size_t round = 0; round < c.rounds; round++) {
			size_t which = 0;
			ASSERT_EQ_U64(at_count_revoked(&r, &c, round, &which), 1);
			ASSERT_EQ_U64(which, c.kept[round]);
		}
		/* ...and no longer at its expiry second (strict expires_at > now). */
		atomic_store(&clk.now, NOW + 3600);
		for (size_t round = 0; round < c.rounds; round++) {
			char jti[48];
			size_t k = c.kept[round];
			size_t jl = at_jti(jti, round, (int)(k / c.per_worker), k % c.per_worker);
			ASSERT(!once_access_token_revoked(s, jti, jl));
		}
	}
	free(c.kept);
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- sweeping while everything else runs ---- */

/*
 * Workers insert and consume every kind with lifetimes of 1-2 seconds while
 * a sweeper thread advances the clock one second at a time and sweeps.
 * Afterwards, per kind: entries + swept == inserted, the sweeps' own counts
 * add up to the stats, and a final sweep far in the future empties the
 * store.  ASan runs of this test catch a double free or a use after free of
 * a swept entry.
 *
 * PostgreSQL: access tokens live on the code rows of their family, so each
 * of the SWEEP_FAMILIES families gets an anchor code that outlives the race
 * (recording needs a row; it holds the family's latest token, and the
 * sweep keeps it while that token lives).  once_stats' swept stays 0 there
 * (the header), so the sweeps' own counts stand in for it; access tokens
 * go with their code rows and are never counted apart; the tokens' entries
 * are the anchors carrying one; and the final sweep jumps past the
 * anchors' expiry instead of a wheel turn.
 */
#define SWEEP_FAMILIES 16
#define SWEEP_SHARED 256
#define SWEEP_PG_KEYS 1000         /* iterations per worker on PostgreSQL: keys_for */
#define SWEEP_ANCHOR_EXP 1000000000 /* PostgreSQL anchors: far past the race's clock */

struct sweep_ctx {
	_Atomic bool done;
	_Atomic uint64_t replays, codes, access, nonces; /* inserted (OK) */
	_Atomic uint64_t take_ok, nonce_ok;
	once_sweep_counts swept; /* summed by the sweeper thread */
	uint64_t sweeps;
	int64_t clock_end;
};

static void op_sweep_mix(struct race *r, int id, size_t i)
{
	struct sweep_ctx *c = r->ctx;
	once_store *s = r->s;
	int64_t now = atomic_load(&r->clk->now);
	char buf[48];
	size_t n;

	/* Replay: a jti shared by all (re-recorded once swept), and an own one. */
	n = jti_of(buf, "sw", -1, i % SWEEP_SHARED);
	once_status st = once_replay_check(s, buf, n, 1 + (int64_t)(i % 2));
	CHECK(r, st == ONCE_OK || st == ONCE_SPENT, "shared replay: %s", once_status_name(st));
	if (st == ONCE_OK)
		atomic_fetch_add(&c->replays, 1);
	n = jti_of(buf, "sw", id, i);
	st = once_replay_check(s, buf, n, 1);
	CHECK(r, st == ONCE_OK, "own replay: %s", once_status_name(st));
	if (st == ONCE_OK)
		atomic_fetch_add(&c->replays, 1);

	/* Codes: put this worker's code i, take the neighbour's code i - 1 (it
	 * may be taken by nobody yet, already swept, or not put yet). */
	size_t mine = (size_t)id * r->keys + i;
	once_code code = test_code(now + 1 + (int64_t)(i % 2));
	st = once_code_put(s, r->key[mine], ONCE_SECRET_LEN, &code);
	CHECK(r, st == ONCE_OK, "code put: %s", once_status_name(st));
	if (st == ONCE_OK)
		atomic_fetch_add(&c->codes, 1);
	if (i > 0) {
		size_t other = (size_t)((id + 1) % r->threads) * r->keys + i - 1;
		once_code *rec = NULL;
		st = once_code_take(s, r->key[other], ONCE_SECRET_LEN, &rec, NULL);
		CHECK(r, st == ONCE_OK || st == ONCE_NOT_FOUND, "take: %s", once_status_name(st));
		if (st == ONCE_OK) {
			CHECK(r, strcmp(rec->subject, "user-1") == 0, "take: subject");
			atomic_fetch_add(&r->ok[other], 1);
			atomic_fetch_add(&c->take_ok, 1);
			once_code_finalize(s, r->key[other], ONCE_SECRET_LEN);
		}
		once_free(rec);
		/* And present this worker's own code again: a loser of nothing,
		 * but racing the neighbour's take and the sweep. */
		st = once_code_take(s, r->key[mine], ONCE_SECRET_LEN, NULL, NULL);
		if (st == ONCE_OK) {
			atomic_fetch_add(&r->ok[mine], 1);
			atomic_fetch_add(&c->take_ok, 1);
		}
	}

	/* Access tokens into a few shared families that keep expiring. */
	char fam[32];
	size_t flen = at_family(fam, i % SWEEP_FAMILIES);
	n = jti_of(buf, "swat", id, i);
	st = once_code_record_access_token(s, fam, flen, buf, n, now + 1 + (int64_t)(i % 2));
	CHECK(r, st == ONCE_OK, "record access token: %s", once_status_name(st));
	if (st == ONCE_OK)
		atomic_fetch_add(&c->access, 1);
	if (i % 97 == 0)
		once_code_revoke_family_access_tokens(s, fam, flen);
	(void)once_access_token_revoked(s, buf, n);

	/* Nonces: issue and accept at once (the accept may find it expired or
	 * swept if the clock moved on meanwhile). */
	char nonce[ONCE_NONCE_LEN + 1];
	st = once_nonce_issue(s, 1, nonce);
	CHECK(r, st == ONCE_OK, "nonce issue: %s", once_status_name(st));
	if (st == ONCE_OK) {
		atomic_fetch_add(&c->nonces, 1);
		st = once_nonce_accept(s, nonce, ONCE_NONCE_LEN, 1);
		CHECK(r, st == ONCE_OK || st == ONCE_EXPIRED || st == ONCE_NOT_FOUND,
		      "nonce accept: %s", once_status_name(st));
		if (st == ONCE_OK)
			atomic_fetch_add(&c->nonce_ok, 1);
	}
}

static void *sweeper_main(void *arg)
{
	struct race *r = arg;
	struct sweep_ctx *c = r->ctx;
	pthread_barrier_wait(&r->start);
	while (!atomic_load(&c->done)) {
		atomic_fetch_add(&r->clk->now, 1);
		once_sweep_counts got;
		ASSERT_ST(once_sweep(r->s, &got), ONCE_OK);
		c->swept.codes += got.codes;
		c->swept.access_tokens += got.access_tokens;
		c->swept.nonces += got.nonces;
		c->swept.replays += got.replays;
		c->swept.examined += got.examined;
		c->sweeps++;
		struct once_stats st;
		once_stats(r->s, &st); /* racing readers of the counters, too */
		struct timespec pause = {0, 200 * 1000};
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static void *sweep_worker(void *arg)
{
	struct worker *w = arg;
	struct race *r = w->r;
	pthread_barrier_wait(&r->start);
	for (size_t i = 0; i < r->keys; i++) {
		r->op(r, w->id, i);
		if (i % CHUNK == CHUNK - 1)
			pthread_barrier_wait(&r->round);
	}
	return NULL;
}

static void assert_kind(struct race *r, const char *kind, const once_kind_stats *k,
                        uint64_t inserted, uint64_t swept_by_calls)
{
	(void)r;
	printf("# %s: inserted %" PRIu64 ", live %" PRIu64 ", swept %" PRIu64 "\n", kind,
	       inserted, k->entries, test_on_postgres() ? swept_by_calls : k->swept);
	if (test_on_postgres()) {
		/* Stats' swept is 0 on PostgreSQL: the sweeps' counts add up. */
		if (k->swept != 0)
			FAIL_AT("%s: stats swept %" PRIu64 " on PostgreSQL, expected 0", kind,
			        k->swept);
		if (k->entries + swept_by_calls != inserted)
			FAIL_AT("%s: entries %" PRIu64 " + swept by the calls %" PRIu64
			        " != inserted %" PRIu64,
			        kind, k->entries, swept_by_calls, inserted);
		return;
	}
	if (k->entries + k->swept != inserted)
		FAIL_AT("%s: entries %" PRIu64 " + swept %" PRIu64 " != inserted %" PRIu64, kind,
		        k->entries, k->swept, inserted);
	if (k->swept != swept_by_calls)
		FAIL_AT("%s: stats swept %" PRIu64 " != sum of once_sweep counts %" PRIu64, kind,
		        k->swept, swept_by_calls);
}

static void test_race_sweep(void)
{
	struct test_clock clk = {NOW};
	once_options o = test_options(&clk);
	struct race r;
	o.max_codes = o.max_access_tokens = o.max_nonces = o.max_replays = 1u << 18;
	once_store *s = test_open(&o);
	struct sweep_ctx c;
	memset(&c, 0, sizeof c);
	bool pg = test_on_postgres();
	size_t per_worker = keys_for(20000, 20000 / 10, SWEEP_PG_KEYS);
	uint64_t anchors = 0;
	if (pg) {
		for (size_t f = 0; f < SWEEP_FAMILIES; f++) {
			char key[ONCE_SECRET_LEN + 1], fam[32];
			test_key(key, "anchor", f);
			at_family(fam, f);
			once_code code = test_code(SWEEP_ANCHOR_EXP);
			code.family_id = fam;
			ASSERT_ST(once_code_put(s, key, ONCE_SECRET_LEN, &code), ONCE_OK);
			anchors++;
		}
	}
	race_init(&r, s, &clk, (size_t)race_threads() * per_worker, "sweep");
	r.keys = per_worker; /* the key array holds threads x per_worker codes */
	r.ctx = &c;
	r.op = op_sweep_mix;
	ASSERT(pthread_barrier_init(&r.start, NULL, (unsigned)r.threads + 1) == 0);
	ASSERT(pthread_barrier_init(&r.round, NULL, (unsigned)r.threads) == 0);
	pthread_t tid[MAX_THREADS], sw;
	struct worker w[MAX_THREADS];
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT(pthread_create(&sw, NULL, sweeper_main, &r) == 0);
	for (int i = 0; i < r.threads; i++) {
		w[i] = (struct worker){&r, i};
		ASSERT(pthread_create(&tid[i], NULL, sweep_worker, &w[i]) == 0);
	}
	for (int i = 0; i < r.threads; i++)
		ASSERT(pthread_join(tid[i], NULL) == 0);
	atomic_store(&c.done, true);
	ASSERT(pthread_join(sw, NULL) == 0);
	pthread_barrier_destroy(&r.start);
	pthread_barrier_destroy(&r.round);
	printf("# sweep race: %d workers x %zu iterations + sweeper in %.3f s: %" PRIu64
	       " sweeps, clock +%" PRId64 " s, %" PRIu64 " entries examined, %" PRIu64
	       " takes OK, %" PRIu64 " nonces accepted\n",
	       r.threads, per_worker, seconds_since(&t0), c.sweeps, atomic_load(&clk.now) - NOW,
	       c.swept.examined, atomic_load(&c.take_ok), atomic_load(&c.nonce_ok));
	ASSERT_EQ_U64(atomic_load(&r.bad), 0);
	ASSERT(c.sweeps > 0);

	/* No code was won twice. */
	for (size_t i = 0; i < (size_t)r.threads * per_worker; i++)
		if (atomic_load(&r.ok[i]) > 1)
			FAIL_AT("code %zu taken %u times", i, atomic_load(&r.ok[i]));

	struct once_stats st;
	once_stats(s, &st);
	assert_kind(&r, "codes", &st.codes, c.codes + anchors, c.swept.codes);
	assert_kind(&r, "replays", &st.replays, c.replays, c.swept.replays);
	assert_kind(&r, "nonces", &st.nonces, c.nonces, c.swept.nonces);
	if (!pg) {
		assert_kind(&r, "access_tokens", &st.access_tokens, c.access,
		            c.swept.access_tokens);
	} else {
		/* Each family's anchor carries its latest token; none swept apart. */
		printf("# access_tokens: recorded %" PRIu64 ", on code rows %" PRIu64 "\n",
		       atomic_load(&c.access), st.access_tokens.entries);
		ASSERT_EQ_U64(st.access_tokens.entries, SWEEP_FAMILIES);
		ASSERT_EQ_U64(c.swept.access_tokens, 0);
		ASSERT_EQ_U64(st.access_tokens.swept, 0);
	}
	ASSERT_EQ_U64(st.ops[ONCE_OP_CODE_TAKE][ONCE_OK], atomic_load(&c.take_ok));

	/* More than one wheel turn later: everything is due and goes.
	 * (PostgreSQL: past the anchors' expiry, their tokens long dead.) */
	if (!pg)
		atomic_fetch_add(&clk.now, 10000);
	else
		atomic_store(&clk.now, SWEEP_ANCHOR_EXP + 1);
	once_sweep_counts last;
	ASSERT_ST(once_sweep(s, &last), ONCE_OK);
	once_stats(s, &st);
	ASSERT_EQ_U64(st.codes.entries, 0);
	ASSERT_EQ_U64(st.replays.entries, 0);
	ASSERT_EQ_U64(st.nonces.entries, 0);
	ASSERT_EQ_U64(st.access_tokens.entries, 0);
	assert_kind(&r, "codes", &st.codes, c.codes + anchors, c.swept.codes + last.codes);
	assert_kind(&r, "replays", &st.replays, c.replays, c.swept.replays + last.replays);
	assert_kind(&r, "nonces", &st.nonces, c.nonces, c.swept.nonces + last.nonces);
	if (!pg)
		assert_kind(&r, "access_tokens", &st.access_tokens, c.access,
		            c.swept.access_tokens + last.access_tokens);
	else
		ASSERT_EQ_U64(last.access_tokens, 0);
	ASSERT_EQ_U64(st.codes.bytes, 0);
	ASSERT_EQ_U64(st.replays.bytes, 0);
	race_free(&r);
	ASSERT_ST(once_close(s), ONCE_OK);
}

TESTS(TEST(test_race_code_take),
      TEST(test_race_code_take_finalize),
      TEST(test_race_code_put),
      TEST(test_race_nonce_accept),
      TEST(test_race_replay_same_jti),
      TEST(test_race_replay_interleaved),
      TEST(test_race_capacity),
      TEST(test_race_access_revoke),
      TEST(test_race_sweep));
TEST_MAIN()
