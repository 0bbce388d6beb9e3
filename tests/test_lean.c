/*
 * tests/test_lean.c - issue 10: tables that grow with their contents,
 * entries from the slab, and what an empty store costs (white-box).
 *
 *   - an empty store maps no slab chunk, and its tables have the smallest
 *     size; presize_tables gives them their full size;
 *   - tables grow while several threads insert, up to the size a presized
 *     table has, and no key inserted during a resize is lost;
 *   - recovery sizes the tables before replaying;
 *   - the slab: blocks are aligned, reused after free, and sized by class;
 *     the store's byte accounting is exact; a large slab carves its chunks
 *     out of huge spans, only out of the part faulted in ahead, and a
 *     small one never;
 *   - a refresh family outlives its tokens (the tokens point at it) through
 *     sweeps in every order, and once_close with entries still retired
 *     (under ASan, a use after free or a leak fails the test).
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "durable.h"
#include "fields.h"

static uint64_t per_shard(once_store *s, enum once__table t)
{
	return atomic_load(&s->cap[t].table_buckets);
}

static uint64_t max_per_shard(once_store *s, enum once__table t)
{
	return s->cap[t].buckets / s->nshards;
}

static void test_empty_store_is_small(void)
{
	once_store *s = test_open(NULL); /* the defaults: 1 Mi of each kind */
	for (int t = 0; t < ONCE_TBL_COUNT; t++) {
		ASSERT_EQ_U64(per_shard(s, (enum once__table)t), ONCE_TABLE_MIN_BUCKETS);
		ASSERT(max_per_shard(s, (enum once__table)t) > ONCE_TABLE_MIN_BUCKETS);
	}
	/* The same capacity, twice the buckets at most for refresh tokens
	 * (two per token, store.c kind_spread). */
	ASSERT_EQ_U64(max_per_shard(s, ONCE_TBL_REFRESH), 2 * max_per_shard(s, ONCE_TBL_CODE));
	ASSERT_EQ_U64(atomic_load(&s->slab.mapped), 0);
	ASSERT(s->slab.spans == NULL);
	ASSERT(!s->grower.running); /* started only when a table must grow */
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_presize_tables_option(void)
{
	once_options o;
	once_options_init(&o);
	o.presize_tables = true;
	o.max_codes = 5000;
	once_store *s = test_open(&o);
	for (int t = 0; t < ONCE_TBL_COUNT; t++)
		ASSERT_EQ_U64(per_shard(s, (enum once__table)t), max_per_shard(s, (enum once__table)t));
	ASSERT_EQ_U64(atomic_load(&s->cap[ONCE_TBL_CODE].grow_at), UINT64_MAX);
	ASSERT_ST(once_close(s), ONCE_OK);
}

struct filler {
	once_store *s;
	uint64_t from, to;
};

static void *fill_replays(void *arg)
{
	struct filler *f = arg;
	char jti[64];
	for (uint64_t i = f->from; i < f->to; i++) {
		int n = snprintf(jti, sizeof jti, "jkt-thumbprint-%020" PRIu64 ":uuid", i);
		if (once_replay_check(f->s, jti, (size_t)n, 600) != ONCE_OK)
			FAIL_AT("first sight of jti %" PRIu64 " was not OK", i);
	}
	return NULL;
}

/* Waits (bounded) until the grower thread has caught up with the count. */
static void wait_grown(once_store *s, enum once__table t, uint64_t want)
{
	for (int i = 0; i < 1000 && per_shard(s, t) < want; i++)
		usleep(10000);
	ASSERT_EQ_U64(per_shard(s, t), want);
}

static void test_tables_grow_under_concurrent_inserts(void)
{
	enum { THREADS = 4, N = 200000 };
	once_options o;
	once_options_init(&o);
	o.shards = 2;
	o.max_replays = 1u << 20; /* max 2^18 buckets per shard */
	o.sweep_interval_ms = 0;
	once_store *s = test_open(&o);
	struct once_stats before, after;
	once_stats(s, &before);
	/* 7 kinds x 2 shards x 16 buckets x 16 bytes. */
	ASSERT_EQ_U64(before.table_bytes, 7 * 2 * ONCE_TABLE_MIN_BUCKETS * 16);
	pthread_t th[THREADS];
	struct filler f[THREADS];
	for (int i = 0; i < THREADS; i++) {
		f[i] = (struct filler){s, (uint64_t)i * N / THREADS, (uint64_t)(i + 1) * N / THREADS};
		pthread_create(&th[i], NULL, fill_replays, &f[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	ASSERT(s->grower.running);
	/* 100000 per shard: at least a bucket per entry, 2^17 (below the
	 * 2^18 of a table presized for the capacity). */
	wait_grown(s, ONCE_TBL_REPLAY, 1u << 17);
	/* The kinds nobody used did not grow. */
	ASSERT_EQ_U64(per_shard(s, ONCE_TBL_CODE), ONCE_TABLE_MIN_BUCKETS);
	once_stats(s, &after);
	ASSERT_EQ_U64(after.table_bytes, before.table_bytes + 2 * ((1u << 17) - ONCE_TABLE_MIN_BUCKETS) * 16);
	/* Every jti inserted while tables were resized is found. */
	char jti[64];
	for (uint64_t i = 0; i < N; i++) {
		int n = snprintf(jti, sizeof jti, "jkt-thumbprint-%020" PRIu64 ":uuid", i);
		ASSERT_ST(once_replay_check(s, jti, (size_t)n, 600), ONCE_SPENT);
	}
	ASSERT_EQ_U64(test_entries(s, "replays"), N);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* The defaults, one shard, no sweeper: table sizes are then exact. */
static void one_shard_options(once_options *o)
{
	once_options_init(o);
	o->shards = 1;
	o->sweep_interval_ms = 0;
}

/* A refresh token with hash test_key(prefix, i), in family `family`. */
static void insert_refresh(once_store *s, const char *prefix, uint64_t i, const char *family)
{
	char h[ONCE_SECRET_LEN + 1];
	test_key(h, prefix, i);
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = family;
	r.subject = "user";
	r.expires_at = ONCE_TIME_MAX / 2;
	ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_OK);
}

static void test_growth_stops_at_the_presized_size(void)
{
	once_options o;
	one_shard_options(&o);
	o.max_replays = 4096; /* at most 2^11 buckets */
	once_store *s = test_open(&o);
	struct filler f = {s, 0, 4096};
	fill_replays(&f);
	wait_grown(s, ONCE_TBL_REPLAY, 1u << 11);
	ASSERT_EQ_U64(atomic_load(&s->cap[ONCE_TBL_REPLAY].grow_at), UINT64_MAX);
	ASSERT_ST(once_replay_check(s, "one-more", 8, 600), ONCE_FULL);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Refresh tokens keep two buckets per token as they grow (store.c,
 * kind_spread): a consume's lookup passes a quarter of an entry on
 * average, not half. */
static void test_refresh_tokens_grow_two_buckets_each(void)
{
	once_options o;
	one_shard_options(&o);
	once_store *s = test_open(&o);
	for (uint64_t i = 0; i < 4096; i++)
		insert_refresh(s, "grow", i, "one family");
	wait_grown(s, ONCE_TBL_REFRESH, 1u << 13);
	ASSERT_EQ_U64(atomic_load(&s->cap[ONCE_TBL_REFRESH].grow_at), 1u << 12);
	ASSERT_EQ_U64(per_shard(s, ONCE_TBL_REFRESH_FAMILY), ONCE_TABLE_MIN_BUCKETS);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Close shrinks a large table before destroying it (table.c), with every
 * signal blocked meanwhile; the caller's signal mask is as it was, and
 * every entry is freed (the sanitizer builds check the frees). */
static void test_close_shrinks_large_tables_and_keeps_the_mask(void)
{
	once_options o;
	one_shard_options(&o);
	once_store *s = test_open(&o);
	struct filler f = {s, 0, 20000};
	fill_replays(&f);
	wait_grown(s, ONCE_TBL_REPLAY, 1u << 15); /* past the shrink's 4096 */
	sigset_t mine, after;
	sigemptyset(&mine);
	sigaddset(&mine, SIGUSR2);
	ASSERT_EQ_INT(pthread_sigmask(SIG_SETMASK, &mine, NULL), 0);
	ASSERT_ST(once_close(s), ONCE_OK);
	ASSERT_EQ_INT(pthread_sigmask(SIG_SETMASK, NULL, &after), 0);
	for (int sig = 1; sig < SIGRTMIN; sig++)
		ASSERT_EQ_INT(sigismember(&after, sig), sig == SIGUSR2);
	sigemptyset(&mine);
	ASSERT_EQ_INT(pthread_sigmask(SIG_SETMASK, &mine, NULL), 0);
}

static void test_recovery_sizes_tables_before_replay(void)
{
	char dir[256];
	test_tmpdir(dir);
	once_options o;
	once_options_init(&o);
	o.dir = dir;
	o.shards = 2;
	o.sync = ONCE_SYNC_NONE;
	o.sweep_interval_ms = 0;
	once_store *s = test_open(&o);
	struct filler f = {s, 0, 20000};
	fill_replays(&f);
	/* Logins: a refresh token in a family of its own each. */
	char fam[32];
	for (int i = 0; i < 4000; i++) {
		snprintf(fam, sizeof fam, "family-%d", i);
		insert_refresh(s, "login", (uint64_t)i, fam);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
	s = test_open(&o);
	/* Sized at open, from the log, before any insert: 10000 per shard. */
	ASSERT_EQ_U64(per_shard(s, ONCE_TBL_REPLAY), 1u << 14);
	/* Refresh tokens keep two buckets per token (store.c, kind_spread):
	 * 2000 per shard, 2^12 buckets. */
	ASSERT_EQ_U64(per_shard(s, ONCE_TBL_REFRESH), 1u << 12);
	/* The families the token records create, too: 2000 per shard, one
	 * bucket each. */
	ASSERT_EQ_U64(per_shard(s, ONCE_TBL_REFRESH_FAMILY), 1u << 11);
	ASSERT_EQ_U64(test_entries(s, "refresh"), 4000);
	ASSERT_EQ_U64(test_entries(s, "replays"), 20000);
	ASSERT_ST(once_replay_check(s, "jkt-thumbprint-00000000000000000007:uuid", 40, 600), ONCE_SPENT);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

static void test_slab_blocks(void)
{
	struct once__slab slab;
	ASSERT_EQ_INT(once__slab_init(&slab), 0);
	void *a = once__slab_alloc(&slab, 120);
	void *b = once__slab_alloc(&slab, 120);
	ASSERT(a != NULL && b != NULL && a != b);
	ASSERT_EQ_U64((uintptr_t)a % ONCE_SLAB_GRAIN, 0);
	ASSERT_EQ_U64((uintptr_t)b % alignof(max_align_t), 0);
	ASSERT_EQ_U64(once__slab_block_size(120), 128);
	ASSERT_EQ_U64(once__slab_block_size(1), 16);
	ASSERT_EQ_U64(once__slab_block_size(ONCE_SLAB_MAX + 1), ONCE_SLAB_MAX + 1);
	memset(a, 0xa5, 120);
	memset(b, 0x5a, 120);
#if !defined(__SANITIZE_THREAD__) /* TSan builds use malloc (slab.c) */
	once__slab_free(a, 120);
	ASSERT(once__slab_alloc(&slab, 128) == a); /* same class: reused */
	ASSERT(atomic_load(&slab.mapped) > 0);
#endif
	void *big = once__slab_alloc(&slab, 5000); /* malloc'd */
	ASSERT(big != NULL);
	memset(big, 1, 5000);
	once__slab_free(big, 5000);
	once__slab_free(NULL, 10);
	once__slab_destroy(&slab); /* a and b go with their chunk */
#if defined(__SANITIZE_THREAD__)
	free(a);
	free(b);
#endif
}

#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__) /* its only callers' condition */
/* Limits this process's address space to what it maps now plus `extra`
 * bytes; returns the old limit, for the caller to put back. */
static struct rlimit limit_address_space(size_t extra)
{
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	ASSERT(f != NULL);
	ASSERT_EQ_INT(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	struct rlimit old, lim;
	ASSERT_EQ_INT(getrlimit(RLIMIT_AS, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + extra;
	ASSERT_EQ_INT(setrlimit(RLIMIT_AS, &lim), 0);
	return old;
}
#endif

/* Pins the calling thread to the CPU it runs on, so that every slab call
 * of a test uses one arena (a test runs in a process of its own). */
static void pin_to_this_cpu(void)
{
	int cpu = sched_getcpu();
	ASSERT(cpu >= 0);
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	ASSERT_EQ_INT(sched_setaffinity(0, sizeof one, &one), 0);
}

/* An entry and its record come as a pair, under one lock: both blocks of
 * the sizes asked, from one arena, and a pair freed goes back to its two
 * classes (each block is the next of its class again); a size past
 * ONCE_SLAB_MAX comes from malloc either way. */
static void test_slab_pair(void)
{
	pin_to_this_cpu();
	struct once__slab slab;
	ASSERT_EQ_INT(once__slab_init(&slab), 0);
	void *a, *b;
	ASSERT_EQ_INT(once__slab_alloc_pair(&slab, 120, &a, 250, &b), 0);
	ASSERT(a != NULL && b != NULL && a != b);
	memset(a, 0xa5, 120);
	memset(b, 0x5a, 250);
#if !defined(__SANITIZE_THREAD__) /* TSan builds use malloc (slab.c) */
	ASSERT_EQ_U64((uintptr_t)a % 128, 0); /* the 128-byte class's lines */
	/* One arena: both chunks name the same one in their headers. */
	void *const *ha = (void *const *)((uintptr_t)a & ~(uintptr_t)(ONCE_SLAB_CHUNK - 1));
	void *const *hb = (void *const *)((uintptr_t)b & ~(uintptr_t)(ONCE_SLAB_CHUNK - 1));
	ASSERT(ha != hb && ha[1] == hb[1]);
	once__slab_free_pair(a, 120, b, 250);
	ASSERT(once__slab_alloc(&slab, 128) == a);
	ASSERT(once__slab_alloc(&slab, 256) == b);
#else
	once__slab_free_pair(a, 120, b, 250);
#endif
	void *big, *small;
	ASSERT_EQ_INT(once__slab_alloc_pair(&slab, 5000, &big, 64, &small), 0);
	memset(big, 1, 5000);
	memset(small, 2, 64);
	once__slab_free_pair(big, 5000, small, 64);
	once__slab_free_pair(NULL, 0, NULL, 0);
	once__slab_destroy(&slab);
}

/* A pair is both blocks or neither: when the second cannot be had (no
 * address space for its class's first chunk), the first goes back to its
 * class.  Not under the sanitizers (ASan's mappings need the room; TSan
 * builds use malloc). */
static void test_slab_pair_both_or_neither(void)
{
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
	pin_to_this_cpu();
	struct once__slab slab;
	ASSERT_EQ_INT(once__slab_init(&slab), 0);
	slab.span_len = ONCE_SLAB_CHUNK; /* a span per chunk, so a chunk needs a mapping */
	void *first = once__slab_alloc(&slab, 128);
	ASSERT(first != NULL);
	once__slab_free(first, 128); /* the class's next block again */
	struct rlimit old = limit_address_space(0); /* no new mapping */
	void *a = (void *)1, *b = (void *)1;
	int got = once__slab_alloc_pair(&slab, 128, &a, 512, &b);
	ASSERT_EQ_INT(setrlimit(RLIMIT_AS, &old), 0);
	ASSERT_EQ_INT(got, -1);
	ASSERT(a == NULL && b == NULL);
	ASSERT(once__slab_alloc(&slab, 128) == first); /* given back */
	ASSERT(once__slab_alloc(&slab, 512) != NULL); /* with room again */
	once__slab_destroy(&slab);
#endif
}

/*
 * Inserts pack a record in one walk, into a 512-byte buffer on the stack,
 * and pack in place when it does not fit there (core/record.c).  Either
 * way the size is the one once__T_size gives, 0 past max_len at exactly
 * the same point, and the record placed is the one once__T_pack_at makes:
 * every field equal to the source, at the same offset in its block, and
 * inside it.  Records of 511, 512 and 513 bytes (the buffer's edge) and
 * others from the smallest to 1,399, each with max_len from 2 below its
 * size to 2 above, and unlimited.
 */
struct packed_pair {
	const char *one, *two; /* the blocks */
	size_t size;
};

static void same_text(const struct packed_pair *b, const char *x, const char *y, const char *src)
{
	ASSERT((x == NULL) == (src == NULL) && (y == NULL) == (src == NULL));
	if (x == NULL || y == NULL || src == NULL)
		return;
	ASSERT(strcmp(x, src) == 0 && strcmp(y, src) == 0);
	ASSERT_EQ_U64((uintptr_t)(x - b->one), (uintptr_t)(y - b->two));
	ASSERT(x > b->one && x + strlen(x) < b->one + b->size);
}

static void same_list(const struct packed_pair *b, const char *const *x, size_t nx, const char *const *y,
                      size_t ny, const char *const *src, size_t n)
{
	ASSERT_EQ_U64(nx, src ? n : 0);
	ASSERT_EQ_U64(ny, src ? n : 0);
	ASSERT((x == NULL) == (src == NULL || n == 0) && (y == NULL) == (x == NULL));
	if (x == NULL || y == NULL || src == NULL)
		return;
	ASSERT_EQ_U64((uintptr_t)((const char *)x - b->one), (uintptr_t)((const char *)y - b->two));
	for (size_t i = 0; i < n; i++)
		same_text(b, x[i], y[i], src[i]);
}

static void same_bytes(const struct packed_pair *b, const void *x, size_t nx, const void *y, size_t ny,
                       const void *src, size_t n)
{
	ASSERT_EQ_U64(nx, src ? n : 0);
	ASSERT_EQ_U64(ny, nx);
	if (src == NULL || n == 0)
		return;
	ASSERT(x != NULL && y != NULL);
	ASSERT(memcmp(x, src, n) == 0 && memcmp(y, src, n) == 0);
	ASSERT_EQ_U64((uintptr_t)((const char *)x - b->one), (uintptr_t)((const char *)y - b->two));
	ASSERT_EQ_U64((uintptr_t)((const char *)x - b->one) % alignof(max_align_t), 0);
	ASSERT((const char *)x + n <= b->one + b->size);
}

#define SAME_TEXT(f) same_text(&b, x->f, y->f, from->f);
#define SAME_LIST(f) same_list(&b, x->f, x->f##_count, y->f, y->f##_count, from->f, from->f##_count);
#define SAME_BYTES(f) same_bytes(&b, x->f, x->f##_len, y->f, y->f##_len, from->f, from->f##_len);
#define SAME_I64(f) ASSERT_EQ_INT(x->f, from->f); ASSERT_EQ_INT(y->f, from->f);

/* Packs src both ways under max_len and compares (T: code or refresh). */
#define CHECK_PACKING(T, FIELDS, SCALARS, src, max_len)                                            \
	do {                                                                                       \
		const once_##T *from = (src);                                                      \
		struct once__packing pk;                                                           \
		size_t size = once__##T##_prepare(&pk, from, max_len);                             \
		ASSERT_EQ_U64(size, once__##T##_size(from, max_len));                              \
		if (size == 0)                                                                     \
			break;                                                                     \
		struct packed_pair b = {aligned_alloc(alignof(max_align_t), (size + 15) / 16 * 16), \
		                        aligned_alloc(alignof(max_align_t), (size + 15) / 16 * 16), size}; \
		ASSERT(b.one != NULL && b.two != NULL);                                            \
		const once_##T *x = once__##T##_place((void *)b.one, &pk, from);                   \
		const once_##T *y = once__##T##_pack_at((void *)b.two, size, from);                \
		ASSERT((const char *)x == b.one && (const char *)y == b.two);                      \
		FIELDS(SAME_TEXT, SAME_LIST, SAME_BYTES)                                           \
		SCALARS(SAME_I64)                                                                  \
		free((void *)b.one);                                                               \
		free((void *)b.two);                                                               \
	} while (0)

/* The text that makes a record of `size` bytes, when the record with an
 * empty text is `base` bytes (a text at alignment 1: each byte of it is a
 * byte of the record). */
static const char *text_for_size(char *buf, size_t cap, size_t base, size_t size)
{
	ASSERT(size > base && size - base < cap);
	memset(buf, 't', size - base);
	buf[size - base] = '\0';
	return buf;
}

static void check_code_packing(const once_code *src)
{
	size_t full = once__code_size(src, SIZE_MAX);
	ASSERT(full > 0);
	for (size_t max = full - 2; max <= full + 2; max++) {
		CHECK_PACKING(code, CODE_FIELDS, CODE_SCALARS, src, max);
		struct once__packing pk;
		ASSERT_EQ_U64(once__code_prepare(&pk, src, max), max >= full ? full : 0);
	}
	CHECK_PACKING(code, CODE_FIELDS, CODE_SCALARS, src, SIZE_MAX);
}

static void test_one_walk_packing_matches_two(void)
{
	const char *scope[] = {"openid", "profile", "email", "offline_access"};
	const char *const resource[] = {"https://api.example/a", "https://api.example/b"};
	once_code c = {.client_id = "client", .subject = "subject", .redirect_uri = "", .scope = scope,
	               .scope_count = 4, .resource = resource, .resource_count = 2,
	               .code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
	               .code_challenge_method = "S256", .x5t_s256 = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2",
	               .nonce = "n-0S6", .claims = "\0\1\2", .claims_len = 3, .family_id = "fam",
	               .expires_at = 2000, .inserted_at = 1000};
	size_t base = once__code_size(&c, SIZE_MAX);
	ASSERT(base < 511);
	const size_t sizes[] = {base + 1, 511, 512, 513, 700, 1399};
	char uri[1400];
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		c.redirect_uri = text_for_size(uri, sizeof uri, base, sizes[i]);
		ASSERT_EQ_U64(once__code_size(&c, SIZE_MAX), sizes[i]);
		check_code_packing(&c);
	}
	/* A max_len below the struct itself: nothing fits. */
	once_code small = {.client_id = "c", .subject = "s", .redirect_uri = "r", .expires_at = 2000};
	struct once__packing pk;
	ASSERT_EQ_U64(once__code_prepare(&pk, &small, sizeof(once_code) - 1), 0);
	ASSERT_EQ_U64(once__code_prepare(&pk, &small, sizeof(once_code) + 6), sizeof(once_code) + 6);
	ASSERT(pk.in_scratch);
}

/* The same for refresh records, across the buffer's edge. */
static void test_one_walk_packing_refresh(void)
{
	const char *scope[] = {"openid", "offline_access"};
	const char *const resource[] = {"https://api.example/a"};
	once_refresh r = {.family_id = "fam", .subject = "sub", .client_id = "cl", .acr = "",
	                  .scope = scope, .scope_count = 2, .resource = resource, .resource_count = 1,
	                  .dpop_jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", .claims = "{}", .claims_len = 2,
	                  .parent_hash = "parent", .expires_at = 5000, .generation = 3, .auth_time = 900,
	                  .inserted_at = 1000};
	size_t base = once__refresh_size(&r, SIZE_MAX);
	ASSERT(base < 511);
	const size_t sizes[] = {base + 1, 511, 512, 513, 900};
	char acr[1000];
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		r.acr = text_for_size(acr, sizeof acr, base, sizes[i]);
		size_t full = once__refresh_size(&r, SIZE_MAX);
		ASSERT_EQ_U64(full, sizes[i]);
		for (size_t max = full - 2; max <= full + 2; max++)
			CHECK_PACKING(refresh, REFRESH_FIELDS, REFRESH_SCALARS, &r, max);
		CHECK_PACKING(refresh, REFRESH_FIELDS, REFRESH_SCALARS, &r, SIZE_MAX);
	}
}

/* Blocks of 64 or 128 bytes (a code's or refresh token's entry is 128)
 * sit on their own cache lines, so a lookup, which reads an entry's node
 * at its start and its key from byte 80, touches two lines, not three;
 * other sizes start at the largest power of two dividing them.  Checked
 * over three chunks of each class, so every refill keeps to it. */
static void test_slab_blocks_keep_to_cache_lines(void)
{
#if !defined(__SANITIZE_THREAD__) /* TSan builds use malloc (slab.c) */
	static const struct {
		size_t size, align;
	} cases[] = {{64, 64}, {128, 128}, {192, 64}, {256, 128}, {512, 128}, {112, 16}, {80, 16}, {48, 16}};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct once__slab slab;
		ASSERT_EQ_INT(once__slab_init(&slab), 0);
		size_t size = cases[c].size, n = 3 * (ONCE_SLAB_CHUNK / size);
		for (size_t i = 0; i < n; i++) {
			uintptr_t b = (uintptr_t)once__slab_alloc(&slab, size);
			ASSERT(b != 0);
			ASSERT_EQ_U64(b % cases[c].align, 0);
			/* inside its chunk, past the chunk's header */
			ASSERT(b % ONCE_SLAB_CHUNK >= ONCE_SLAB_GRAIN);
			ASSERT(b % ONCE_SLAB_CHUNK + size <= ONCE_SLAB_CHUNK);
			if (size == 128)
				ASSERT_EQ_U64((b + size - 1) / 64 - b / 64, 1); /* two lines */
		}
		once__slab_destroy(&slab);
	}
#endif
}

static uint64_t sum_bytes(once_store *s)
{
	struct once_stats st;
	once_stats(s, &st);
	return st.codes.bytes + st.nonces.bytes + st.replays.bytes + st.refresh.bytes + st.access_tokens.bytes;
}

static void test_bytes_are_the_blocks_held(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	once_store *s = test_open(&o);
	ASSERT_EQ_U64(sum_bytes(s), 0);
	once_code c = test_code(5000);
	char h[ONCE_SECRET_LEN + 1];
	test_key(h, "code", 1);
	ASSERT_ST(once_code_put(s, h, ONCE_SECRET_LEN, &c), ONCE_OK);
	struct once__key k;
	ASSERT_ST(once__key_make(s, ONCE_TBL_CODE, h, ONCE_SECRET_LEN, &k), ONCE_OK);
	urcu_bp_read_lock();
	struct once__entry *e = once__table_lookup(s, &k);
	ASSERT(e != NULL);
	/* 80-byte header + 43-byte key in a 128-byte block, the record apart. */
	ASSERT_EQ_U64(sizeof *e, 80);
	ASSERT(e->record_size > 0);
	ASSERT((void *)e->u.code.record < (void *)e || (void *)e->u.code.record >= (void *)(e->key + e->key_len));
	uint64_t want = 128 + once__slab_block_size(e->record_size);
	once__read_unlock();
	ASSERT_EQ_U64(once__entry_bytes(e), want);
	ASSERT_EQ_U64(sum_bytes(s), want);
	ASSERT_ST(once_replay_check(s, "j", 1, 10), ONCE_OK); /* 81 bytes: 96 */
	ASSERT_EQ_U64(sum_bytes(s), want + 96);
	atomic_store(&clk.now, 100000);
	ASSERT_ST(once_sweep(s, NULL), ONCE_OK);
	ASSERT_EQ_U64(sum_bytes(s), 0);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static once_refresh token_rec(const char *family, int64_t exp)
{
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = family;
	r.subject = "user-1";
	r.expires_at = exp;
	return r;
}

/*
 * Tokens and their family expire together and are swept in one pass, in
 * whatever order the shards' wheels give; tokens of a family that expired
 * and was created again keep pointing at the old one.  The family's memory
 * must outlive every token that points at it: under ASan any read of a
 * freed family fails here.
 */
static void test_family_outlives_its_tokens(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.revocation_ttl = 0;
	once_store *s = test_open(&o);
	char h[ONCE_SECRET_LEN + 1], c[ONCE_SECRET_LEN + 1];
	for (int round = 0; round < 3; round++) {
		once_refresh r = token_rec("fam-life", 1010 + 100 * round);
		for (int i = 0; i < 64; i++) {
			test_key(h, "tok", (uint64_t)(round * 1000 + i));
			ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_OK);
		}
		test_key(h, "tok", (uint64_t)(round * 1000));
		test_key(c, "child", (uint64_t)round);
		ASSERT_ST(once_refresh_rotate(s, h, ONCE_SECRET_LEN, c, ONCE_SECRET_LEN, &r, NULL, 0, NULL), ONCE_OK);
		atomic_store(&clk.now, 1011 + 100 * round); /* all of them expired */
		ASSERT_ST(once_refresh_get(s, c, ONCE_SECRET_LEN, NULL), ONCE_OK); /* not swept yet */
		ASSERT_ST(once_sweep(s, NULL), ONCE_OK);
		ASSERT_ST(once_refresh_get(s, c, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
		ASSERT_EQ_U64(test_entries(s, "refresh"), 0);
	}
	/* A token whose family is revoked, swept later than the family could
	 * be: the family's mark lasts as long as the token. */
	once_refresh r = token_rec("fam-rev", 5000);
	test_key(h, "late", 1);
	ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(s, "fam-rev", 7), ONCE_OK);
	atomic_store(&clk.now, 4000);
	ASSERT_ST(once_sweep(s, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_get(s, h, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	ASSERT_ST(once_refresh_insert(s, h, ONCE_SECRET_LEN, &r), ONCE_REVOKED);
	/* Close with tokens and retired entries still queued. */
	ASSERT_ST(once_close(s), ONCE_OK);
	ASSERT_NO_LEAKS();
}

/* The nonce's table encoder writes what libsodium's constant-time one
 * writes, for edge bytes and many random ones. */
static void test_public_b64url_matches_sodium(void)
{
	unsigned char in[32];
	char a[ONCE_SECRET_LEN + 1], b[ONCE_SECRET_LEN + 1];
	for (int round = 0; round < 10000; round++) {
		if (round == 0)
			memset(in, 0, sizeof in);
		else if (round == 1)
			memset(in, 0xff, sizeof in);
		else if (round == 2)
			for (int i = 0; i < 32; i++)
				in[i] = (unsigned char)(i * 8 + 3);
		else
			once__random(in, sizeof in);
		memset(a, 'X', sizeof a);
		memset(b, 'Y', sizeof b);
		once__b64url32(in, a);
		once__b64url32_public(in, b);
		ASSERT_STR(b, a);
	}
}

#if !defined(__SANITIZE_THREAD__) /* its users are the slab's tests */
/* A memory-only store with the defaults but no background sweeper. */
static once_store *open_unswept(void)
{
	once_options o;
	once_options_init(&o);
	o.sweep_interval_ms = 0;
	return test_open(&o);
}
#endif

/* A class half through its chunk gets the next one faulted in ahead by
 * the store's background thread (slab.h, "Prefault"). */
static void test_slab_prefaults_ahead(void)
{
#if defined(__SANITIZE_THREAD__)
	return; /* TSan builds allocate with malloc (slab.c) */
#else
	/* One CPU, so every block comes from one arena. */
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(0, &one);
	ASSERT_EQ_INT(sched_setaffinity(0, sizeof one, &one), 0);
	once_store *s = open_unswept();
	/* 80 + 40-byte jti: 120 bytes, the 128-byte class; 2047 per chunk. */
	char jti[64];
	for (int i = 0; i < 1500; i++) {
		int n = snprintf(jti, sizeof jti, "jkt-thumbprint-%020d:uuid", i);
		ASSERT_EQ_INT(n, 40);
		ASSERT_ST(once_replay_check(s, jti, (size_t)n, 600), ONCE_OK);
	}
	bool ready = false;
	for (int wait = 0; wait < 500 && !ready; wait++) {
		for (uint32_t a = 0; a <= s->slab.arena_mask && !ready; a++) {
			struct once__slab_arena *arena = &s->slab.arenas[a];
			pthread_mutex_lock(&arena->lock);
			ready = arena->cls[128 / ONCE_SLAB_GRAIN - 1].ready != NULL;
			pthread_mutex_unlock(&arena->lock);
		}
		if (!ready)
			usleep(10000);
	}
	ASSERT(ready);
	ASSERT(s->grower.running);
	ASSERT_ST(once_close(s), ONCE_OK);
#endif
}

/* Past ONCE_SLAB_HUGE_AFTER bytes of chunks, chunks come from a huge span
 * that the store's thread faulted in ahead: every chunk carved from it is
 * resident when handed out, and holds its entries like any other. */
static void test_large_slab_carves_huge_spans(void)
{
#if defined(__SANITIZE_THREAD__)
	return; /* TSan builds allocate with malloc (slab.c) */
#else
	once_store *s = open_unswept();
	/* A small slab maps no huge span (slab.h, "Huge pages"). */
	char jti[64];
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(jti, sizeof jti, "small-%d", i);
		ASSERT_ST(once_replay_check(s, jti, (size_t)n, 600), ONCE_OK);
	}
	pthread_mutex_lock(&s->slab.reserve_lock);
	ASSERT(s->slab.huge.end == NULL && s->slab.huge.spare == NULL);
	ASSERT(s->slab.small.next != NULL);
	pthread_mutex_unlock(&s->slab.reserve_lock);
	/* 128-byte blocks: 24 MiB of them is past a 16 MiB mark (lowered
	 * from ONCE_SLAB_HUGE_AFTER, to keep the test short). */
	pthread_mutex_lock(&s->slab.reserve_lock);
	s->slab.huge_after = 16u << 20;
	pthread_mutex_unlock(&s->slab.reserve_lock);
	enum { N = 24 * 8192 };
	for (int i = 0; i < N; i++) {
		int n = snprintf(jti, sizeof jti, "jkt-thumbprint-%020d:uuid", i);
		ASSERT_ST(once_replay_check(s, jti, (size_t)n, 600), ONCE_OK);
	}
	ASSERT(atomic_load(&s->slab.mapped) > s->slab.huge_after);
	/* Under vm.overcommit_memory = 2 the slab never uses huge spans
	 * (slab.h): then the entries must simply all be there (below). */
	bool carved = s->slab.huge_off;
	if (carved)
		fprintf(stderr, "# strict overcommit: huge spans are off\n");
	for (int wait = 0; wait < 500 && !carved; wait++) {
		pthread_mutex_lock(&s->slab.reserve_lock);
		struct once__slab_reserve *h = &s->slab.huge;
		char *span = h->end == NULL ? NULL : h->end - ONCE_SLAB_HUGE_SPAN;
		carved = span != NULL && h->next > span;
		if (carved) {
			/* Aligned to 2 MiB, carved in whole chunks, only out of
			 * the part faulted in, which is resident. */
			ASSERT_EQ_U64((uintptr_t)span % ONCE_SLAB_HUGE_PAGE, 0);
			ASSERT_EQ_U64((uintptr_t)h->next % ONCE_SLAB_CHUNK, 0);
			ASSERT(h->next <= h->faulted && h->faulted <= h->end);
			size_t pages = (size_t)(h->next - span) / 4096;
			unsigned char *in = malloc(pages);
			ASSERT(in != NULL);
			ASSERT_EQ_INT(mincore(span, (size_t)(h->next - span), in), 0);
			for (size_t p = 0; p < pages; p++)
				ASSERT((in[p] & 1) != 0);
			free(in);
		}
		pthread_mutex_unlock(&s->slab.reserve_lock);
		if (!carved) {
			/* Keep inserting: the shortfall asks again. */
			for (int i = 0; i < 4096; i++) {
				int n = snprintf(jti, sizeof jti, "extra-%d-%d", wait, i);
				ASSERT_ST(once_replay_check(s, jti, (size_t)n, 600), ONCE_OK);
			}
			usleep(10000);
		}
	}
	ASSERT(carved);
	for (int i = 0; i < N; i++) {
		int n = snprintf(jti, sizeof jti, "jkt-thumbprint-%020d:uuid", i);
		ASSERT_ST(once_replay_check(s, jti, (size_t)n, 600), ONCE_SPENT);
	}
	ASSERT_ST(once_close(s), ONCE_OK); /* unmaps every span */
#endif
}

/* Without an owner a slab never uses huge pages, and carves chunk after
 * chunk out of its 4 KiB-page spans, each chunk aligned to its size. */
static void test_slab_without_owner_carves_small_spans(void)
{
#if !defined(__SANITIZE_THREAD__) /* TSan builds use malloc (slab.c) */
	struct once__slab slab;
	ASSERT_EQ_INT(once__slab_init(&slab), 0);
	slab.huge_after = 4u << 20; /* past it twice over, below */
	enum { BLOCKS = ((4u << 20) / 512) * 2 };
	char *first = NULL;
	for (int i = 0; i < BLOCKS; i++) {
		char *b = once__slab_alloc(&slab, 512);
		ASSERT(b != NULL);
		if (first == NULL)
			first = b;
		memset(b, 0x5a, 512); /* writable (ASan: and not poisoned) */
	}
	ASSERT(atomic_load(&slab.mapped) >= 2 * slab.huge_after);
	ASSERT(slab.huge.end == NULL && slab.huge.spare == NULL && !slab.huge.asked);
	ASSERT(slab.small.next != NULL);
	ASSERT_EQ_U64((uintptr_t)slab.small.next % ONCE_SLAB_CHUNK, 0);
	ASSERT_EQ_INT(first[0], 0x5a);
	once__slab_destroy(&slab);
#endif
}

#if !defined(__SANITIZE_THREAD__) /* the slab's own tests: TSan builds use malloc */
static size_t span_bytes_of(const char *from, const char *to)
{
	return (size_t)(to - from);
}

/* The slab's side of the owner, run by the test itself: asks are counted,
 * and the test runs once__slab_prefault when it chooses. */
static int slab_asks;
static void count_ask(void *ctx)
{
	(void)ctx;
	slab_asks++;
}

static int populate_refused(void *addr, size_t len)
{
	(void)addr;
	(void)len;
	errno = ENOMEM;
	return -1;
}

static bool in_huge_span(const struct once__slab *s, const void *b)
{
	const char *p = b;
	return s->huge.end != NULL && p >= s->huge.end - ONCE_SLAB_HUGE_SPAN && p < s->huge.end;
}

#endif

/* Step by step: past huge_after the slab asks; the owner maps a huge span
 * and faults ONCE_SLAB_HUGE_AHEAD of it in; blocks then come from it, and
 * only out of its faulted part.  When the kernel refuses to fault pages
 * in, the slab stops using huge pages and every block still comes. */
static void test_slab_huge_span_steps(void)
{
#if !defined(__SANITIZE_THREAD__) /* TSan builds use malloc (slab.c) */
	for (int refuse = 0; refuse <= 1; refuse++) {
		struct once__slab slab;
		ASSERT_EQ_INT(once__slab_init(&slab), 0);
		slab.huge_after = 1u << 20;
		slab.ask = count_ask;
		slab.ask_ctx = NULL;
		if (refuse)
			slab.populate = populate_refused;
		slab_asks = 0;
		/* 512-byte blocks, two chunks of them (and one ready ahead):
		 * still below the mark. */
		for (int i = 0; i < 1000; i++)
			ASSERT(once__slab_alloc(&slab, 512) != NULL);
		ASSERT(slab.huge.end == NULL);
		/* The owner runs (asked: the classes want ready chunks). */
		once__slab_prefault(&slab);
		ASSERT(slab.huge.end == NULL); /* nothing asked for huge pages yet */
		/* The next chunks are past the mark: the huge reserve asks. */
		int before = slab_asks;
		for (int i = 0; i < 4096; i++)
			ASSERT(once__slab_alloc(&slab, 512) != NULL);
		ASSERT(slab_asks > before);
		ASSERT(slab.huge.asked);
		once__slab_prefault(&slab);
		ASSERT(!slab.huge.asked);
		if (refuse) {
			ASSERT(slab.huge_off);
			ASSERT(slab.huge.faulted == slab.huge.next); /* none carved */
		} else {
			ASSERT(!slab.huge_off);
			ASSERT(slab.huge.end != NULL);
			ASSERT_EQ_U64((uintptr_t)slab.huge.next % ONCE_SLAB_HUGE_PAGE, 0);
			ASSERT(span_bytes_of(slab.huge.next, slab.huge.faulted) >= ONCE_SLAB_HUGE_AHEAD);
		}
		/* Three times the faulted part, with no owner run meanwhile:
		 * blocks come from the huge span until its faulted part is used
		 * up, never past it, then from small spans. */
		char *faulted = slab.huge.faulted;
		bool from_huge = false, then_small = false;
		for (int i = 0; i < 3 * (int)(ONCE_SLAB_HUGE_AHEAD / 512); i++) {
			char *b = once__slab_alloc(&slab, 512);
			ASSERT(b != NULL);
			memset(b, 0x11, 512);
			if (in_huge_span(&slab, b)) {
				from_huge = true;
				ASSERT(!then_small); /* in order: huge, then small */
				ASSERT(b + 512 <= faulted);
			} else if (from_huge) {
				then_small = true;
			}
		}
		ASSERT(slab.huge.faulted == faulted); /* nobody faulted more */
		ASSERT(then_small == !refuse);
		if (!refuse) /* the faulted part was used up, to the chunk */
			ASSERT(span_bytes_of(slab.huge.next, faulted) < ONCE_SLAB_CHUNK);
		ASSERT(from_huge == !refuse);
		once__slab_destroy(&slab);
	}
#endif
}

/* Short of address space (RLIMIT_AS leaves 64 MiB, less than a span), a
 * slab maps spans of one chunk from then on, and every block still comes.
 * Each test runs in a process of its own (harness.h), and the limit is
 * put back.  Not under AddressSanitizer, whose own mappings need the room. */
static void test_slab_short_of_address_space(void)
{
#if !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
	struct once__slab slab;
	ASSERT_EQ_INT(once__slab_init(&slab), 0);
	struct rlimit old = limit_address_space(64u << 20);
	for (int i = 0; i < 8 * 511; i++) /* eight chunks of 512-byte blocks */
		ASSERT(once__slab_alloc(&slab, 512) != NULL);
	ASSERT_EQ_U64(slab.span_len, ONCE_SLAB_CHUNK);
	ASSERT(atomic_load(&slab.mapped) >= 8u * ONCE_SLAB_CHUNK);
	ASSERT_EQ_INT(setrlimit(RLIMIT_AS, &old), 0);
	once__slab_destroy(&slab);
#endif
}

TESTS(TEST(test_empty_store_is_small), TEST(test_large_slab_carves_huge_spans),
      TEST(test_slab_without_owner_carves_small_spans), TEST(test_slab_huge_span_steps),
      TEST(test_slab_short_of_address_space), TEST(test_public_b64url_matches_sodium), TEST(test_slab_prefaults_ahead), TEST(test_presize_tables_option),
      TEST(test_tables_grow_under_concurrent_inserts), TEST(test_growth_stops_at_the_presized_size),
      TEST(test_refresh_tokens_grow_two_buckets_each), TEST(test_close_shrinks_large_tables_and_keeps_the_mask),
      TEST(test_recovery_sizes_tables_before_replay), TEST(test_slab_blocks),
      TEST(test_slab_blocks_keep_to_cache_lines), TEST(test_slab_pair), TEST(test_slab_pair_both_or_neither),
      TEST(test_one_walk_packing_matches_two), TEST(test_one_walk_packing_refresh),
      TEST(test_bytes_are_the_blocks_held), TEST(test_family_outlives_its_tokens));
TEST_MAIN()
