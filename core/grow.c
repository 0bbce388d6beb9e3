/*
 * core/grow.c - tables that grow with their contents.
 *
 * Every table starts with ONCE_TABLE_MIN_BUCKETS buckets (table.c) and is
 * doubled, by cds_lfht_resize, when its kind holds more than one entry per
 * bucket on average (refresh tokens: one per two buckets, store.c
 * kind_spread), up to the size a presized table would have had
 * (once__capacity.buckets: 0.5 to 1 bucket per unit of capacity, 1 to 2
 * for refresh tokens).  So bucket memory is 16-32 bytes per live entry
 * while a table grows (32-64 for refresh tokens), never more than the
 * presized table's, and an empty store has almost none.
 * Doubling at one entry per bucket rather than two: a resize of a large
 * table takes a while, and inserts meanwhile walk longer chains (at 10^7
 * code puts, 1 thread, growing at two per bucket ran at 0.52x of presized
 * tables, at one per bucket 0.67x; bench --workload growth).  The count is the kind's exact live count over all shards (keys
 * spread evenly over shards: the hash picks the shard), so an insert
 * decides with one comparison against grow_at, on the cache line it has
 * just updated.
 *
 * Who resizes: one background thread per store, started the first time a
 * table needs to grow or the slab wants a chunk faulted in, with every
 * signal blocked.  Not the inserting
 * thread: a resize of a large table takes milliseconds and waits for RCU
 * grace periods, and no caller should pay that.  Not liburcu's own
 * CDS_LFHT_AUTO_RESIZE either: its worker thread unblocks SIGUSR1 (for
 * liburcu's signal flavour), and a host that waits for SIGUSR1 with
 * sigwait or a signalfd, blocked in all its own threads, would have the
 * signal land on that thread and kill the process (tests/test_store.c
 * test_sweeper_thread_blocks_signals asserts every library thread blocks
 * it).  cds_lfht_resize runs the resize in the calling thread (and helper
 * threads it creates, which inherit our mask) while lookups and inserts
 * go on lock-free.
 *
 * The same thread faults in slab chunks ahead of the inserts that will
 * fill them (slab.h, "Prefault").
 *
 * Recovery sizes the tables before it replays (once__grow_reserve), from
 * the number of records of each kind, so a large log is not replayed into
 * a 16-bucket table.
 */
#include <signal.h>
#include <stdlib.h>

#include "internal.h"

/* Buckets per shard for n entries of a kind over nshards shards: at
 * least 2^spread per entry, capped at max (the presized table's size). */
static uint64_t buckets_for(uint64_t n, uint32_t nshards, unsigned spread, uint64_t max)
{
	uint64_t share = (n + nshards - 1) / nshards;
	uint64_t b = 1;
	while ((b >> spread) < share && b < max)
		b <<= 1;
	return b > max ? max : b;
}

static void set_size(once_store *s, enum once__table t, uint64_t per_shard)
{
	struct once__capacity *c = &s->cap[t];
	uint64_t max = c->buckets / s->nshards;
	/* One entry per bucket on average (one per two buckets for a kind
	 * spread 1): double now, so the table has doubled before chains reach
	 * two (a resize of a large table takes a while, and inserts meanwhile
	 * walk the longer chains). */
	uint64_t at = per_shard >= max ? UINT64_MAX : (per_shard * s->nshards) >> c->spread;
	atomic_store_explicit(&c->grow_at, at, memory_order_relaxed);
	/* Release: whoever reads the new size (stats, tests) reads its
	 * threshold too. */
	atomic_store_explicit(&c->table_buckets, per_shard, memory_order_release);
}

void once__grow_init(once_store *s, enum once__table t, uint64_t per_shard)
{
	set_size(s, t, per_shard);
}

/* Resizes every shard's table of kind t for `live` entries, if that is
 * larger than it is.  Outside any read-side section.  table_buckets is
 * the tables' size because only this function resizes them, and only
 * upward (cds_lfht_resize would shrink to a smaller size): recovery's
 * reserve runs before any insert can ask the thread. */
static void grow_kind(once_store *s, enum once__table t, uint64_t live)
{
	struct once__capacity *c = &s->cap[t];
	uint64_t want = buckets_for(live, s->nshards, c->spread, c->buckets / s->nshards);
	if (want <= atomic_load_explicit(&c->table_buckets, memory_order_relaxed))
		return;
	for (uint32_t i = 0; i < s->nshards; i++)
		cds_lfht_resize(s->shards[i].table[t], (unsigned long)want);
	set_size(s, t, want);
}

void once__grow_reserve(once_store *s, enum once__table t, uint64_t entries)
{
	grow_kind(s, t, entries);
}

static void *grower_main(void *arg)
{
	once_store *s = arg;
	struct once__grower *g = &s->grower;
	/* Registers this thread with RCU (bulletproof: on first use), as
	 * cds_lfht_resize requires. */
	urcu_bp_read_lock();
	once__read_unlock();
	/* Normal priority, on purpose: at nice 19 a grower starved by busy
	 * callers on every core let chains grow long, and inserts at 2
	 * threads on 2 cores ran at 0.27x of presized tables (0.7-0.9x at
	 * nice 0). */
	pthread_mutex_lock(&g->lock);
	while (!g->stop) {
		bool any = false;
		if (atomic_exchange(&g->prefault, false)) {
			any = true;
			pthread_mutex_unlock(&g->lock);
			once__slab_prefault(&s->slab);
			pthread_mutex_lock(&g->lock);
		}
		for (int t = 0; t < ONCE_TBL_COUNT; t++) {
			if (!atomic_exchange(&g->requested[t], false))
				continue;
			any = true;
			pthread_mutex_unlock(&g->lock);
			grow_kind(s, (enum once__table)t,
			          atomic_load_explicit(&s->cap[t].live, memory_order_relaxed));
			pthread_mutex_lock(&g->lock);
		}
		if (!any && !g->stop)
			pthread_cond_wait(&g->wake, &g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

/* Starts the thread; the caller holds g->lock.  A failure leaves the
 * tables at their size (slower, never wrong), says so once, and is tried
 * again at the next request (the callers clear their request). */
static bool start_locked(once_store *s)
{
	struct once__grower *g = &s->grower;
	if (g->running)
		return true;
	pthread_attr_t attr;
	sigset_t all;
	sigfillset(&all);
	int rc = pthread_attr_init(&attr);
	if (rc == 0) {
		rc = pthread_attr_setsigmask_np(&attr, &all);
		if (rc == 0)
			rc = pthread_create(&g->thread, &attr, grower_main, s);
		pthread_attr_destroy(&attr);
	}
	if (rc != 0) {
		if (!g->failed)
			once__log(s, ONCE_LOG_WARN,
			          "tables cannot grow yet: no thread to resize them (error %d); will retry", rc);
		g->failed = true;
		return false;
	}
	g->running = true;
	return true;
}

/* Raises one of the thread's request flags and wakes it (starting it the
 * first time); a failed start lowers the flag again, so the next request
 * retries. */
static void ask(once_store *s, _Atomic bool *flag)
{
	struct once__grower *g = &s->grower;
	if (atomic_exchange(flag, true))
		return; /* asked already, not served yet */
	pthread_mutex_lock(&g->lock);
	if (!g->stop) {
		if (start_locked(s))
			pthread_cond_signal(&g->wake);
		else
			atomic_store(flag, false);
	}
	pthread_mutex_unlock(&g->lock);
}

void once__grow_request(once_store *s, enum once__table t)
{
	ask(s, &s->grower.requested[t]);
}

/* The slab's ask: a class wants its next chunk faulted in ahead. */
static void ask_prefault(void *ctx)
{
	once_store *s = ctx;
	ask(s, &s->grower.prefault);
}

void once__grower_init(once_store *s)
{
	struct once__grower *g = &s->grower;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->wake, NULL);
	for (int t = 0; t < ONCE_TBL_COUNT; t++)
		atomic_init(&g->requested[t], false);
	atomic_init(&g->prefault, false);
	s->slab.ask = ask_prefault;
	s->slab.ask_ctx = s;
}

void once__grower_stop(once_store *s)
{
	struct once__grower *g = &s->grower;
	pthread_mutex_lock(&g->lock);
	g->stop = true;
	pthread_cond_signal(&g->wake);
	bool running = g->running;
	pthread_mutex_unlock(&g->lock);
	if (running)
		pthread_join(g->thread, NULL);
	g->running = false;
}

void once__grower_destroy(once_store *s)
{
	pthread_cond_destroy(&s->grower.wake);
	pthread_mutex_destroy(&s->grower.lock);
}
