/*
 * bench/oncebench.c - the oncestore bench harness.
 *
 * Measures operations per second of each single-use operation on an
 * embedded, memory-only store, at several thread counts, and the physical
 * limit the in-memory store works against: a raw cds_lfht lookup + CAS loop
 * over the same keys, in the same run.  Every figure is the median of
 * --runs runs; each run uses a fresh store holding --keys live entries.
 *
 *   oncebench [--workload all|put|take|get|nonce_issue|nonce_accept|replay|raw]
 *             [--threads 1,2] [--keys 1000000] [--runs 3] [--shards 0] [--json]
 *
 * Keys are realistic: 43-character base64url SHA-256 hashes for codes,
 * 43-character nonces from the store itself, and `jti` values shaped like a
 * client's UUIDv4 prefixed with the proof's jkt, as SPEC section 6 advises.
 */
#include <dirent.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <urcu-bp.h>
#include <urcu/rculfhash.h>
#include <xxhash.h>

#include "durable.h"
#include "oncestore.h"

#define KEY_LEN 43
#define JTI_LEN 80 /* 43-char jkt + ':' + 36-char UUID */

struct config {
	const char *workload;
	uint32_t threads[16];
	int nthreads;
	uint64_t keys;
	int runs;
	uint32_t shards;
	bool json;
	uint32_t logs;       /* --workload log: segment files */
	once_sync_mode sync; /* --workload log, --durable: sync mode */
	bool durable;        /* the store gets a data directory (a fresh temporary one per run) */
	bool checkpoint_off; /* no automatic checkpoints (the recovery bench) */
};

#define FAMILY_LEN 22 /* 16 random bytes in base64url */

/* Key material, built once and shared by every run. */
static char (*code_keys)[KEY_LEN + 1];
static char (*child_keys)[KEY_LEN + 1];
static char (*family_ids)[FAMILY_LEN + 1];
static char (*jti_keys)[JTI_LEN + 1];

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, once_status st)
{
	fprintf(stderr, "oncebench: %s: %s\n", what, once_strerror(st));
	exit(1);
}

static void build_keys(uint64_t n)
{
	code_keys = malloc(n * sizeof *code_keys);
	child_keys = malloc(n * sizeof *child_keys);
	family_ids = malloc(n * sizeof *family_ids);
	jti_keys = malloc(n * sizeof *jti_keys);
	if (code_keys == NULL || child_keys == NULL || family_ids == NULL || jti_keys == NULL)
		die("allocating keys", ONCE_NOMEM);
	char jkt[KEY_LEN + 1];
	once_secret_hash("bench-client-key", 16, jkt);
	for (uint64_t i = 0; i < n; i++) {
		char secret[32];
		int len = snprintf(secret, sizeof secret, "bench-code-%" PRIu64, i);
		once_secret_hash(secret, (size_t)len, code_keys[i]);
		len = snprintf(secret, sizeof secret, "bench-child-%" PRIu64, i);
		once_secret_hash(secret, (size_t)len, child_keys[i]);
		char fam[KEY_LEN + 1];
		len = snprintf(secret, sizeof secret, "bench-family-%" PRIu64, i);
		once_secret_hash(secret, (size_t)len, fam);
		memcpy(family_ids[i], fam, FAMILY_LEN);
		family_ids[i][FAMILY_LEN] = '\0';
		uint64_t a = XXH3_64bits(&i, sizeof i), b = XXH3_64bits_withSeed(&i, sizeof i, 7);
		snprintf(jti_keys[i], JTI_LEN + 1, "%s:%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-a%03" PRIx32 "-%012" PRIx64,
		         jkt, (uint32_t)a, (uint32_t)(a >> 32) & 0xffff, (uint32_t)(a >> 48) & 0xfff,
		         (uint32_t)b & 0xfff, (uint64_t)((b >> 12) & 0xffffffffffffu));
	}
}

/* ---- one timed phase: T threads share [0, keys) in contiguous slices ---- */

struct phase;
typedef void (*op_fn)(struct phase *p, uint64_t i);

struct phase {
	once_store *s;
	op_fn op;
	uint64_t keys;
	uint32_t threads;
	pthread_barrier_t start;
	char (*nonces)[ONCE_NONCE_LEN + 1];
	void *raw; /* raw-table baseline */
	_Atomic uint64_t failures;
	char dir[256]; /* --durable: the run's data directory */
};

struct worker {
	struct phase *p;
	uint32_t index;
	double elapsed;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct phase *p = w->p;
	uint64_t from = p->keys * w->index / p->threads, to = p->keys * (w->index + 1) / p->threads;
	pthread_barrier_wait(&p->start);
	double t0 = now_s();
	for (uint64_t i = from; i < to; i++)
		p->op(p, i);
	w->elapsed = now_s() - t0;
	return NULL;
}

/* Runs p->op over every key on p->threads threads; returns operations/s
 * (all keys over the slowest thread's time). */
static double run_phase(struct phase *p)
{
	pthread_t tid[64];
	struct worker w[64];
	pthread_barrier_init(&p->start, NULL, p->threads);
	for (uint32_t t = 0; t < p->threads; t++) {
		w[t] = (struct worker){.p = p, .index = t};
		pthread_create(&tid[t], NULL, worker_main, &w[t]);
	}
	double slowest = 0;
	for (uint32_t t = 0; t < p->threads; t++) {
		pthread_join(tid[t], NULL);
		if (w[t].elapsed > slowest)
			slowest = w[t].elapsed;
	}
	pthread_barrier_destroy(&p->start);
	if (atomic_load(&p->failures) != 0) {
		fprintf(stderr, "oncebench: %" PRIu64 " operations failed\n", atomic_load(&p->failures));
		exit(1);
	}
	return (double)p->keys / slowest;
}

static void fail_unless(struct phase *p, once_status st, once_status want)
{
	if (st != want)
		atomic_fetch_add_explicit(&p->failures, 1, memory_order_relaxed);
}

static const once_code bench_code = {
	.client_id = "bench-client",
	.subject = "user-0001",
	.redirect_uri = "https://app.example/callback",
	.code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
	.expires_at = INT64_MAX / 2,
};

static void op_put(struct phase *p, uint64_t i)
{
	fail_unless(p, once_code_put(p->s, code_keys[i], KEY_LEN, &bench_code), ONCE_OK);
}

static void op_get(struct phase *p, uint64_t i)
{
	once_code *c = NULL;
	fail_unless(p, once_code_get(p->s, code_keys[i], KEY_LEN, &c), ONCE_OK);
	once_free(c);
}

static void op_take(struct phase *p, uint64_t i)
{
	once_code *c = NULL;
	fail_unless(p, once_code_take(p->s, code_keys[i], KEY_LEN, &c, NULL), ONCE_OK);
	once_free(c);
}

static void op_nonce_issue(struct phase *p, uint64_t i)
{
	fail_unless(p, once_nonce_issue(p->s, 300, p->nonces[i]), ONCE_OK);
}

static void op_nonce_accept(struct phase *p, uint64_t i)
{
	fail_unless(p, once_nonce_accept(p->s, p->nonces[i], ONCE_NONCE_LEN, 300), ONCE_OK);
}

static void op_replay(struct phase *p, uint64_t i)
{
	fail_unless(p, once_replay_check(p->s, jti_keys[i], JTI_LEN, 300), ONCE_OK);
}

/* One refresh token per family, as after a login. */
static once_refresh bench_refresh(uint64_t i)
{
	static const char *const scope[] = {"openid", "profile", "offline_access"};
	return (once_refresh){
		.family_id = family_ids[i],
		.subject = "user-0001",
		.client_id = "bench-client",
		.scope = scope,
		.scope_count = 3,
		.expires_at = INT64_MAX / 2,
		.generation = 1,
	};
}

static void op_refresh_insert(struct phase *p, uint64_t i)
{
	once_refresh r = bench_refresh(i);
	fail_unless(p, once_refresh_insert(p->s, code_keys[i], KEY_LEN, &r), ONCE_OK);
}

static void op_refresh_consume(struct phase *p, uint64_t i)
{
	once_refresh *r = NULL;
	fail_unless(p, once_refresh_consume(p->s, code_keys[i], KEY_LEN, &r), ONCE_OK);
	once_free(r);
}

static void op_refresh_rotate(struct phase *p, uint64_t i)
{
	once_refresh child = bench_refresh(i);
	child.generation = 2;
	child.parent_hash = code_keys[i];
	once_refresh *parent = NULL;
	/* The payload a gateway remembers: the successor token itself. */
	fail_unless(p, once_refresh_rotate(p->s, code_keys[i], KEY_LEN, child_keys[i], KEY_LEN, &child,
	                                   child_keys[i], KEY_LEN, &parent),
	            ONCE_OK);
	once_free(parent);
}

static void op_refresh_revoke(struct phase *p, uint64_t i)
{
	fail_unless(p, once_refresh_revoke_family(p->s, family_ids[i], FAMILY_LEN), ONCE_OK);
}

/* ---- the in-memory limit: a bare cds_lfht lookup + CAS ---- */

struct raw_node {
	struct cds_lfht_node node;
	_Atomic uint32_t state;
	unsigned char key[KEY_LEN];
};

struct raw_table {
	struct cds_lfht *ht;
	uint64_t seed;
	struct raw_node **nodes;
};

static int raw_match(struct cds_lfht_node *node, const void *key)
{
	struct raw_node *n = caa_container_of(node, struct raw_node, node);
	return memcmp(n->key, key, KEY_LEN) == 0;
}

static struct raw_table *raw_build(uint64_t keys, uint32_t shards_hint)
{
	(void)shards_hint;
	struct raw_table *r = calloc(1, sizeof *r);
	uint64_t buckets = 1;
	while (buckets < keys)
		buckets <<= 1;
	buckets /= 2; /* the store's sizing: chains of 1-2 at capacity */
	r->ht = cds_lfht_new_flavor(buckets, buckets, buckets, 0, &urcu_bp_flavor, NULL);
	r->seed = 0x9e3779b97f4a7c15u;
	r->nodes = calloc(keys, sizeof *r->nodes);
	urcu_bp_read_lock();
	for (uint64_t i = 0; i < keys; i++) {
		/* One allocation per node, in key order, as the store allocates. */
		struct raw_node *n = r->nodes[i] = calloc(1, sizeof *n);
		memcpy(n->key, code_keys[i], KEY_LEN);
		atomic_init(&n->state, 1);
		cds_lfht_add_unique(r->ht, XXH3_64bits_withSeed(code_keys[i], KEY_LEN, r->seed), raw_match,
		                    code_keys[i], &n->node);
	}
	urcu_bp_read_unlock();
	return r;
}

static void raw_free(struct raw_table *r, uint64_t keys)
{
	urcu_bp_read_lock();
	for (uint64_t i = 0; i < keys; i++)
		cds_lfht_del(r->ht, &r->nodes[i]->node);
	urcu_bp_read_unlock();
	urcu_bp_synchronize_rcu();
	for (uint64_t i = 0; i < keys; i++)
		free(r->nodes[i]);
	cds_lfht_destroy(r->ht, NULL);
	free(r->nodes);
	free(r);
}

static void op_raw(struct phase *p, uint64_t i)
{
	struct raw_table *r = p->raw;
	struct cds_lfht_iter it;
	urcu_bp_read_lock();
	cds_lfht_lookup(r->ht, XXH3_64bits_withSeed(code_keys[i], KEY_LEN, r->seed), raw_match,
	                code_keys[i], &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	uint32_t live = 1;
	if (node == NULL ||
	    !atomic_compare_exchange_strong(&caa_container_of(node, struct raw_node, node)->state, &live, 2))
		atomic_fetch_add_explicit(&p->failures, 1, memory_order_relaxed);
	urcu_bp_read_unlock();
}

/* ---- workloads ---- */

enum kind { KIND_CODE, KIND_NONCE, KIND_REPLAY, KIND_REFRESH, KIND_RAW, KIND_MIX };

struct workload {
	const char *name;
	const char *what;
	op_fn op;
	op_fn prefill; /* run single-threaded before timing, or NULL */
	enum kind kind; /* the one kind sized for --keys; the others stay small */
};

static const struct workload workloads[] = {
	{"put", "code put", op_put, NULL, KIND_CODE},
	{"get", "code get", op_get, op_put, KIND_CODE},
	{"take", "code take", op_take, op_put, KIND_CODE},
	{"nonce_issue", "nonce issue", op_nonce_issue, NULL, KIND_NONCE},
	{"nonce_accept", "nonce accept", op_nonce_accept, op_nonce_issue, KIND_NONCE},
	{"replay", "replay check", op_replay, NULL, KIND_REPLAY},
	{"refresh_insert", "refresh insert", op_refresh_insert, NULL, KIND_REFRESH},
	{"refresh_consume", "refresh consume", op_refresh_consume, op_refresh_insert, KIND_REFRESH},
	{"refresh_rotate", "refresh rotate", op_refresh_rotate, op_refresh_insert, KIND_REFRESH},
	{"refresh_revoke", "refresh revoke family", op_refresh_revoke, op_refresh_insert, KIND_REFRESH},
	{"raw", "raw cds_lfht lookup+CAS", op_raw, NULL, KIND_RAW},
};
#define NWORKLOADS (sizeof workloads / sizeof workloads[0])

/* A fresh data directory under $TMPDIR (or /tmp): "<tmp>/oncebench-XXXXXX/data". */
static void make_data_dir(char out[256])
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char tmpl[200];
	snprintf(tmpl, sizeof tmpl, "%s/oncebench-XXXXXX", base);
	if (mkdtemp(tmpl) == NULL) {
		perror("oncebench: mkdtemp");
		exit(1);
	}
	snprintf(out, 256, "%s/data", tmpl);
}

static void remove_data_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			char f[512];
			snprintf(f, sizeof f, "%s/%s", dir, de->d_name);
			if (de->d_name[0] != '.')
				unlink(f);
		}
		closedir(d);
	}
	rmdir(dir);
	char parent[256];
	snprintf(parent, sizeof parent, "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash != NULL) {
		*slash = '\0';
		rmdir(parent);
	}
}

static once_store *open_store(const struct config *c, enum kind kind, const char *dir)
{
	once_options o;
	once_options_init(&o);
	o.shards = c->shards;
	o.dir = dir;
	o.sync = c->sync;
	uint64_t cap = c->keys + 1;
	bool mix = kind == KIND_MIX;
	o.max_codes = kind == KIND_CODE || mix ? cap : 1024;
	o.max_nonces = kind == KIND_NONCE || mix ? cap : 1024;
	o.max_replays = kind == KIND_REPLAY || mix ? cap : 1024;
	o.max_refresh = kind == KIND_REFRESH ? 2 * cap : 1024; /* rotation adds a child per parent */
	o.max_access_tokens = 1024;
	static const unsigned char successor_key[ONCE_SUCCESSOR_KEY_LEN] = "oncebench successor key 32 bytes";
	o.successor_key = successor_key;
	o.sweep_interval_ms = 0;
	if (c->checkpoint_off)
		o.checkpoint_bytes = UINT64_MAX;
	once_store *s;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK)
		die("once_open", st);
	return s;
}

/* Resident set size in bytes (/proc/self/statm). */
static double rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

struct figure {
	double ops_per_s;
	double bytes_per_entry; /* RSS growth over the run / live entries */
	double records_per_sync; /* --durable: group commit over the timed phase */
	double log_bytes_per_op;
};

static struct figure measure(const struct config *c, const struct workload *w, uint32_t threads)
{
	/* Hand freed memory of earlier runs back to the kernel, so that this
	 * run's allocations show up as RSS growth instead of reusing it. */
	malloc_trim(0);
	double rss0 = rss_bytes();
	struct phase p = {.keys = c->keys, .threads = threads, .op = w->op};
	atomic_init(&p.failures, 0);
	p.nonces = malloc(c->keys * sizeof *p.nonces);
	bool durable = c->durable && w->op != op_raw;
	if (durable)
		make_data_dir(p.dir);
	if (w->op == op_raw)
		p.raw = raw_build(c->keys, c->shards);
	else
		p.s = open_store(c, w->kind, durable ? p.dir : NULL);
	if (w->prefill != NULL) {
		struct phase fill = p;
		fill.op = w->prefill;
		/* One thread fills a memory-only store; a durable one waits on
		 * the disk per call, so it fills with many callers. */
		fill.threads = durable ? 32 : 1;
		atomic_init(&fill.failures, 0);
		run_phase(&fill);
	}
	struct once_stats before, after;
	if (p.s != NULL)
		once_stats(p.s, &before);
	struct figure fig = {.ops_per_s = run_phase(&p)};
	fig.bytes_per_entry = (rss_bytes() - rss0) / (double)c->keys;
	if (p.s != NULL) {
		once_stats(p.s, &after);
		uint64_t syncs = after.syncs - before.syncs;
		fig.records_per_sync = syncs ? (double)(after.synced_records - before.synced_records) / (double)syncs : 0;
		fig.log_bytes_per_op = (double)(after.log_bytes - before.log_bytes) / (double)c->keys;
	}
	if (p.raw != NULL)
		raw_free(p.raw, c->keys);
	else if (once_close(p.s) != ONCE_OK)
		die("once_close", ONCE_IO);
	if (durable)
		remove_data_dir(p.dir);
	free(p.nonces);
	return fig;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int cmp_figure(const void *a, const void *b)
{
	double x = ((const struct figure *)a)->ops_per_s, y = ((const struct figure *)b)->ops_per_s;
	return (x > y) - (x < y);
}

/* The run with the median operations/s (its memory figure comes along). */
static struct figure median_of_runs(const struct config *c, const struct workload *w, uint32_t threads)
{
	struct figure v[32];
	for (int r = 0; r < c->runs; r++)
		v[r] = measure(c, w, threads);
	qsort(v, (size_t)c->runs, sizeof v[0], cmp_figure);
	return v[c->runs / 2];
}

/*
 * --workload recover: fills a durable store with --keys records (a mix of
 * code put, code take, replay check and nonce issue, from 4 threads, sync
 * none: the fill is not what is measured), closes it, and times once_open
 * recovering it (log replay only: no checkpoint is taken).
 */
static void op_fill_mix(struct phase *p, uint64_t i)
{
	switch (i % 4) {
	case 0: op_put(p, i / 4 * 2); break;
	case 1: op_replay(p, i); break;
	case 2: op_take(p, i / 4 * 2); break; /* the code put three records ago */
	default: op_nonce_issue(p, i); break;
	}
}

static int recover_bench(const struct config *c)
{
	struct config fill_cfg = *c;
	fill_cfg.sync = ONCE_SYNC_NONE;
	fill_cfg.checkpoint_off = true;
	double opens[32], rates[32];
	uint64_t records = 0;
	for (int r = 0; r < c->runs; r++) {
		char dir[256];
		make_data_dir(dir);
		struct phase p = {.keys = c->keys, .threads = 4, .op = op_fill_mix};
		atomic_init(&p.failures, 0);
		p.nonces = malloc(c->keys * sizeof *p.nonces);
		p.s = open_store(&fill_cfg, KIND_MIX, dir);
		run_phase(&p);
		if (once_close(p.s) != ONCE_OK)
			die("once_close", ONCE_IO);
		free(p.nonces);
		malloc_trim(0);
		double t0 = now_s();
		once_store *s = open_store(&fill_cfg, KIND_MIX, dir);
		opens[r] = now_s() - t0;
		struct once_stats st;
		once_stats(s, &st);
		records = st.recovered_records;
		rates[r] = (double)st.recovered_records / ((double)st.recovery_ns / 1e9);
		once_close(s);
		remove_data_dir(dir);
	}
	qsort(opens, (size_t)c->runs, sizeof opens[0], cmp_double);
	qsort(rates, (size_t)c->runs, sizeof rates[0], cmp_double);
	if (c->json)
		printf("{\"workload\":\"recover\",\"records\":%" PRIu64 ",\"open_s\":%.3f"
		       ",\"records_per_s\":%.0f}\n", records, opens[c->runs / 2], rates[c->runs / 2]);
	else
		printf("recovery: %" PRIu64 " log records replayed in %.3f s (once_open), "
		       "%.0f records/s (median of %d runs)\n", records, opens[c->runs / 2],
		       rates[c->runs / 2], c->runs);
	return 0;
}

static const char *sync_name(once_sync_mode m)
{
	return m == ONCE_SYNC_ALWAYS ? "always" : m == ONCE_SYNC_INTERVAL ? "interval" : "none";
}

static void usage(void)
{
	printf("usage: oncebench [options]\n"
	       "  --workload W   all (default), put, get, take, nonce_issue, nonce_accept,\n"
	       "                 replay, refresh_insert, refresh_consume, refresh_rotate,\n"
	       "                 refresh_revoke, raw (bare cds_lfht lookup+CAS: the in-memory limit)\n"
	       "  --threads L    comma-separated thread counts (default 1,2)\n"
	       "  --keys N       live entries per run (default 200000)\n"
	       "  --runs N       runs per figure; the median is reported (default 3)\n"
	       "  --shards N     store shards (default 0 = one per CPU)\n"
	       "  --workload log the durable log alone (wal/log.c group commit): --keys\n"
	       "                 records of 64 bytes in a temporary directory, with\n"
	       "  --logs N       segment files the threads are spread over (default 1)\n"
	       "  --sync M       always (default), interval or none\n"
	       "  --durable      give each run's store a fresh data directory under $TMPDIR\n"
	       "                 (with --sync); adds records per sync and log bytes per op\n"
	       "  --workload recover  fill a data directory with --keys log records, then\n"
	       "                 time once_open recovering it (records/s)\n"
	       "  --json         one JSON object per figure instead of the table\n");
}

static void parse_threads(struct config *c, const char *list)
{
	c->nthreads = 0;
	char *copy = strdup(list), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t && c->nthreads < 16; t = strtok_r(NULL, ",", &save)) {
		long n = strtol(t, NULL, 10);
		if (n < 1 || n > 64) {
			fprintf(stderr, "oncebench: thread counts are 1..64\n");
			exit(2);
		}
		c->threads[c->nthreads++] = (uint32_t)n;
	}
	free(copy);
}

static void parse_args(struct config *c, int argc, char **argv)
{
	*c = (struct config){.workload = "all", .keys = 200000, .runs = 3, .nthreads = 2, .threads = {1, 2},
	                     .logs = 1, .sync = ONCE_SYNC_ALWAYS};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage();
			exit(0);
		} else if (strcmp(a, "--json") == 0) {
			c->json = true;
		} else if (strcmp(a, "--durable") == 0) {
			c->durable = true;
		} else if (v == NULL) {
			usage();
			exit(2);
		} else if (strcmp(a, "--workload") == 0) {
			c->workload = argv[++i];
		} else if (strcmp(a, "--threads") == 0) {
			parse_threads(c, argv[++i]);
		} else if (strcmp(a, "--keys") == 0) {
			c->keys = strtoull(argv[++i], NULL, 10);
		} else if (strcmp(a, "--runs") == 0) {
			c->runs = atoi(argv[++i]);
		} else if (strcmp(a, "--shards") == 0) {
			c->shards = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--logs") == 0) {
			c->logs = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--sync") == 0) {
			const char *m = argv[++i];
			c->sync = strcmp(m, "always") == 0     ? ONCE_SYNC_ALWAYS
			          : strcmp(m, "interval") == 0 ? ONCE_SYNC_INTERVAL
			          : strcmp(m, "none") == 0     ? ONCE_SYNC_NONE
			                                       : (once_sync_mode)-1;
		} else {
			usage();
			exit(2);
		}
	}
	if (c->keys < 1 || c->runs < 1 || c->runs > 31 || c->logs < 1 || c->logs > 64 ||
	    (unsigned)c->sync > ONCE_SYNC_NONE) {
		fprintf(stderr, "oncebench: --keys >= 1, --runs 1..31, --logs 1..64, "
		                "--sync always|interval|none\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct config c;
	parse_args(&c, argc, argv);
	if (strcmp(c.workload, "log") == 0) {
		struct durable_config d = {.threads = c.threads, .nthreads = c.nthreads, .logs = c.logs,
		                           .records = c.keys, .sync = c.sync, .runs = c.runs, .json = c.json};
		return durable_bench(&d);
	}
	if (strcmp(c.workload, "recover") == 0) {
		build_keys(c.keys);
		return recover_bench(&c);
	}
	bool all = strcmp(c.workload, "all") == 0;
	bool known = all;
	for (size_t w = 0; w < NWORKLOADS; w++)
		known |= strcmp(c.workload, workloads[w].name) == 0;
	if (!known) {
		fprintf(stderr, "oncebench: unknown workload %s\n", c.workload);
		return 2;
	}
	build_keys(c.keys);
	/* The raw baseline first, so every oncestore figure can be printed as a
	 * fraction of it. */
	struct figure raw[16];
	for (int t = 0; t < c.nthreads; t++)
		raw[t] = median_of_runs(&c, &workloads[NWORKLOADS - 1], c.threads[t]);
	if (!c.json && c.durable)
		printf("oncestore with a data directory (sync %s): %" PRIu64 " keys, median of %d runs\n"
		       "'rec/sync': log records per fdatasync (group commit); 'log B/op': log bytes per call;\n"
		       "the durable limit: --workload log (raw records + fdatasync on the same disk)\n\n"
		       "%-26s %8s %14s %10s %12s %10s\n", sync_name(c.sync), c.keys, c.runs, "operation",
		       "threads", "ops/s", "B/entry", "rec/sync", "log B/op");
	else if (!c.json)
		printf("oncestore in memory: %" PRIu64 " live keys, median of %d runs\n"
		       "'of raw': ops/s as a fraction of a bare cds_lfht lookup+CAS on the same keys;\n"
		       "'B/entry': RSS growth over the run per live entry (tables, entries, records)\n\n"
		       "%-26s %8s %14s %10s %10s\n", c.keys, c.runs, "operation", "threads", "ops/s", "of raw",
		       "B/entry");
	for (size_t w = 0; w < NWORKLOADS; w++) {
		if (!all && strcmp(c.workload, workloads[w].name) != 0)
			continue;
		for (int t = 0; t < c.nthreads; t++) {
			struct figure f = w == NWORKLOADS - 1 ? raw[t] : median_of_runs(&c, &workloads[w], c.threads[t]);
			double frac = f.ops_per_s / raw[t].ops_per_s;
			if (c.json)
				printf("{\"workload\":\"%s\",\"threads\":%u,\"keys\":%" PRIu64
				       ",\"ops_per_s\":%.0f,\"raw_ops_per_s\":%.0f,\"fraction_of_raw\":%.3f"
				       ",\"bytes_per_entry\":%.0f,\"durable\":%s,\"sync\":\"%s\""
				       ",\"records_per_sync\":%.2f,\"log_bytes_per_op\":%.1f}\n",
				       workloads[w].name, c.threads[t], c.keys, f.ops_per_s, raw[t].ops_per_s, frac,
				       f.bytes_per_entry, c.durable ? "true" : "false", sync_name(c.sync),
				       f.records_per_sync, f.log_bytes_per_op);
			else if (c.durable && w != NWORKLOADS - 1)
				printf("%-26s %8u %14.0f %10.0f %12.2f %10.1f\n", workloads[w].what, c.threads[t],
				       f.ops_per_s, f.bytes_per_entry, f.records_per_sync, f.log_bytes_per_op);
			else if (c.durable)
				continue; /* the in-memory limit says nothing about a disk-bound run */
			else
				printf("%-26s %8u %14.0f %9.0f%% %10.0f\n", workloads[w].what, c.threads[t],
				       f.ops_per_s, 100.0 * frac, f.bytes_per_entry);
			fflush(stdout);
		}
	}
	free(code_keys);
	free(child_keys);
	free(family_ids);
	free(jti_keys);
	return 0;
}
