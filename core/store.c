/*
 * core/store.c - options, once_open, once_close, once_checkpoint, logging.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "internal.h"
#include "signals.h"
#include "persist.h"

#define MAX_SHARDS 4096u
#define DEFAULT_MAX_SHARDS 256u
#define MAX_CAPACITY (UINT64_C(1) << 36) /* 64 Gi entries: beyond any machine */
#define MAX_RECORD_LEN (16u << 20)

void once__log(const once_store *s, once_log_level level, const char *fmt, ...)
{
	if (s == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	once__logv(&s->opt, level, fmt, ap);
	va_end(ap);
}

static uint64_t pow2_ceil(uint64_t x)
{
	uint64_t p = 1;
	while (p < x)
		p <<= 1;
	return p;
}

static uint32_t default_shards(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t n = pow2_ceil(cpus > 0 ? (uint64_t)cpus : 1);
	return n > DEFAULT_MAX_SHARDS ? DEFAULT_MAX_SHARDS : (uint32_t)n;
}

static bool capacity_ok(uint64_t c)
{
	return c >= 1 && c <= MAX_CAPACITY;
}

static bool options_valid(const once_options *o)
{
	return o->shards <= MAX_SHARDS && (unsigned)o->sync <= ONCE_SYNC_NONE &&
	       capacity_ok(o->max_codes) && capacity_ok(o->max_access_tokens) &&
	       capacity_ok(o->max_refresh) && capacity_ok(o->max_nonces) &&
	       capacity_ok(o->max_replays) && o->max_key_len >= 1 && o->max_key_len <= UINT16_MAX &&
	       o->max_record_len >= sizeof(once_refresh) && o->max_record_len <= MAX_RECORD_LEN &&
	       o->revocation_ttl >= 0 && o->revocation_ttl <= ONCE_TTL_MAX;
}

static uint64_t capacity_of(const once_options *o, enum once__table t)
{
	switch (t) {
	case ONCE_TBL_CODE: return o->max_codes;
	case ONCE_TBL_ACCESS: return o->max_access_tokens;
	/* Families: one per token at most, plus revocation marks of families
	 * that have no token (yet): room for as many again. */
	case ONCE_TBL_ACCESS_FAMILY: return 2 * o->max_access_tokens;
	case ONCE_TBL_REFRESH: return o->max_refresh;
	case ONCE_TBL_REFRESH_FAMILY: return 2 * o->max_refresh;
	case ONCE_TBL_NONCE: return o->max_nonces;
	case ONCE_TBL_REPLAY: return o->max_replays;
	default: return 0;
	}
}

/*
 * Buckets per entry a kind keeps, as a power of two (once__capacity.spread).
 * A lookup walks its bucket's chain up to its entry, one cache miss per
 * entry passed, and at one entry per bucket it passes half an entry on
 * average.  Refresh tokens keep two buckets per entry: a consume, get or
 * rotate is a lookup and a copy of a ~450-byte record, so half a miss is
 * much of its time (at 10^6 tokens consume ran 1.12x faster, the median
 * of ten alternated rounds, and rotate 1.17-1.30x: bench --workload
 * refresh_consume, refresh_rotate), while 16 more bytes per token are 3%
 * of its footprint.  Four buckets per token gained nothing more.  The
 * small kinds keep one: there 16 bytes would be 4-9% of an entry, and
 * their lookups meet their bars without it.
 */
static unsigned kind_spread(enum once__table t)
{
	return t == ONCE_TBL_REFRESH ? 1 : 0;
}

/* Buckets per shard: the shard's share of the capacity, rounded up to a
 * power of two and halved (chains of 1-2 at full capacity; table.c), then
 * doubled per step of the kind's spread. */
static uint64_t buckets_per_shard(uint64_t capacity, uint32_t nshards, unsigned spread)
{
	uint64_t share = (capacity + nshards - 1) / nshards;
	uint64_t b = pow2_ceil(share) << spread >> 1;
	return b < 1 ? 1 : b;
}

static once_status build_tables(once_store *s, int64_t now)
{
	s->shards = calloc(s->nshards, sizeof *s->shards);
	if (s->shards == NULL)
		return ONCE_NOMEM;
	for (int t = 0; t < ONCE_TBL_COUNT; t++) {
		uint64_t max = capacity_of(&s->opt, (enum once__table)t);
		unsigned spread = kind_spread((enum once__table)t);
		uint64_t b = buckets_per_shard(max, s->nshards, spread);
		atomic_init(&s->cap[t].live, 0);
		s->cap[t].max = max;
		s->cap[t].spread = spread;
		s->cap[t].buckets = b * s->nshards;
		uint64_t start = s->opt.presize_tables || b < ONCE_TABLE_MIN_BUCKETS ? b : ONCE_TABLE_MIN_BUCKETS;
		once__grow_init(s, (enum once__table)t, start);
	}
	for (uint32_t i = 0; i < s->nshards; i++) {
		once__wheel_init(&s->shards[i].wheel, now);
		for (int t = 0; t < ONCE_TBL_COUNT; t++) {
			s->shards[i].table[t] =
				once__table_new(atomic_load(&s->cap[t].table_buckets), s->cap[t].buckets / s->nshards);
			if (s->shards[i].table[t] == NULL)
				return ONCE_NOMEM;
		}
	}
	return ONCE_OK;
}

static once_status build_stripes(once_store *s)
{
	long cpus = sysconf(_SC_NPROCESSORS_CONF);
	uint64_t n = pow2_ceil(cpus > 0 ? (uint64_t)cpus : 1);
	if (n > 1024)
		n = 1024;
	s->stripes = aligned_alloc(64, n * sizeof *s->stripes);
	if (s->stripes == NULL)
		return ONCE_NOMEM;
	memset(s->stripes, 0, n * sizeof *s->stripes);
	s->stripe_mask = (uint32_t)n - 1;
	return ONCE_OK;
}

/*
 * liburcu 0.13 starts its call_rcu worker lazily, inheriting the signal mask
 * of whichever thread first calls call_rcu (FIELD-NOTES A3).  Start it here
 * with every signal blocked, so the host's signals never land on it.
 */
/*
 * A process that forks after liburcu started its call_rcu worker has no
 * worker in the child, and the child's next rcu_barrier (in once_close, or
 * a failed once_open) would wait forever.  liburcu's fork hooks stop the
 * worker around fork and recreate it in the child; registered once.  (A
 * store itself is not usable in a child: its threads are not there.  The
 * child may open stores of its own.)
 */
static void register_fork_hooks(void)
{
	pthread_atfork(urcu_bp_call_rcu_before_fork, urcu_bp_call_rcu_after_fork_parent,
	               urcu_bp_call_rcu_after_fork_child);
}

static void start_call_rcu_worker(void)
{
	static pthread_once_t hooks = PTHREAD_ONCE_INIT;
	pthread_once(&hooks, register_fork_hooks);
	sigset_t old;
	once__signals_block_all(&old);
	(void)urcu_bp_get_default_call_rcu_data();
	once__signals_restore(&old);
}

static void store_free(once_store *s)
{
	/* No resize may run while the tables are torn down. */
	once__grower_stop(s);
	if (s->shards != NULL)
		once__tables_destroy(s);
	/* Blocks retired by sweeps and rotations may still be queued for
	 * call_rcu: wait for them, so nothing of this store outlives
	 * once_close and no callback touches the slab after it is gone.  The
	 * wait costs at least 10 ms (liburcu's worker naps that long before
	 * each batch), so a store that never retired anything skips it. */
	if (atomic_load_explicit(&s->retired, memory_order_relaxed) > 0)
		urcu_bp_barrier();
	once__slab_destroy(&s->slab);
	once__grower_destroy(s);
	free(s->shards);
	free(s->stripes);
	pthread_mutex_destroy(&s->sweep_lock);
	sodium_memzero(s->successor_key, sizeof s->successor_key);
	once__sealing_wipe(s);
	free(s);
}

once_status once__mem_open(const once_options *o, once_store **out)
{
	if (!options_valid(o))
		return ONCE_INVALID;
	if (!once__crypto_init())
		return ONCE_NOMEM;
	once_store *s = calloc(1, sizeof *s);
	if (s == NULL)
		return ONCE_NOMEM;
	s->engine = o->read_only ? &once__mem_ro_engine : &once__mem_engine;
	s->opt = *o;
	/* A read-only store runs no thread that could change it: no sweeper
	 * (and wal/persist.c starts no log writer, no checkpointer). */
	if (o->read_only)
		s->opt.sweep_interval_ms = 0;
	s->nshards = o->shards ? o->shards : default_shards();
	if (once__slab_init(&s->slab) != 0) {
		free(s);
		return ONCE_NOMEM;
	}
	pthread_mutex_init(&s->sweep_lock, NULL);
	once__grower_init(s);
	atomic_init(&s->sweeps, 0);
	if (o->successor_key != NULL) {
		memcpy(s->successor_key, o->successor_key, sizeof s->successor_key);
		s->has_successor_key = true;
		s->opt.successor_key = s->successor_key;
	}
	once__sealing_init(s);
	once__random(&s->xxh_seed, sizeof s->xxh_seed);
	once__random(s->prf_key, sizeof s->prf_key);
	start_call_rcu_worker();

	once_status st = build_stripes(s);
	if (st == ONCE_OK)
		st = build_tables(s, once__now(s));
	/* Recovery fills the tables before any other thread can see them. */
	if (st == ONCE_OK && o->dir != NULL)
		st = once__persist_open(s);
	if (st == ONCE_OK)
		st = once__sweeper_start(s);
	if (st != ONCE_OK) {
		/* The failing call's errno outlives the cleanup: once_open's
		 * caller branches on it (include/oncestore.h). */
		int err = errno;
		once__persist_close(s);
		store_free(s);
		errno = err;
		return st;
	}
	*out = s;
	return ONCE_OK;
}

once_status once__mem_close(once_store *s)
{
	if (s == NULL)
		return ONCE_INVALID;
	once__sweeper_stop(s);
	once_status st = once__persist_close(s);
	store_free(s);
	return st;
}

once_status once__mem_checkpoint(once_store *s)
{
	/* Memory-only: there is no log to cut and no file to write. */
	if (s == NULL || s->persist == NULL)
		return ONCE_INVALID;
	return once__persist_checkpoint(s);
}
