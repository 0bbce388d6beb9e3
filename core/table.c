/*
 * core/table.c - the only file that talks to cds_lfht (and grow.c, which
 * resizes).
 *
 * Tables grow with their contents (grow.c): each starts with
 * ONCE_TABLE_MIN_BUCKETS buckets and may grow up to the size it would have
 * been given up front, its shard's share of the capacity rounded up to a
 * power of two and halved (chains of 1 to 2 at full capacity; refresh
 * tokens keep twice as many, store.c kind_spread).  Buckets
 * come from liburcu's mmap allocator, which reserves that maximum as
 * address space and touches only what the table grew into, so an empty
 * store costs a few KiB, and close, checkpoint and dump walk buckets in
 * proportion to the most entries the table held, not to capacity.  Tables
 * do not shrink.  options.presize_tables creates every table at its
 * maximum instead.
 *
 * FIELD-NOTES G saw liburcu's own auto-resize stall (inserts ~50x slower
 * in 2 of 6 runs of 10^7 keys); growth here is explicit cds_lfht_resize
 * calls, and the bench's growth workload compares growing with presized
 * tables in one run.
 *
 * Every lookup, add and del runs inside an RCU read-side section of the
 * bulletproof flavour, which registers the calling thread on first use.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "signals.h"

/* Buckets per table past which close shrinks it before destroying it. */
#define SHRINK_BEFORE_DESTROY 4096

struct cds_lfht *once__table_new(uint64_t start_buckets, uint64_t max_buckets)
{
	/* No CDS_LFHT_AUTO_RESIZE (grow.c resizes), no ACCOUNTING (we count
	 * ourselves, exactly, in struct once__capacity). */
	return cds_lfht_new_flavor(start_buckets, start_buckets, max_buckets, 0, &urcu_bp_flavor, NULL);
}

/*
 * The acquire load of `state` comes first: it pairs with the release store
 * that published the entry, so every field read after it (the key here, the
 * record in callers) is the initialized one, and ThreadSanitizer sees the
 * ordering that liburcu's assembly barriers give.
 */
static int match(struct cds_lfht_node *node, const void *arg)
{
	const struct once__key *k = arg;
	struct once__entry *e = caa_container_of(node, struct once__entry, node);
	if (atomic_load_explicit(&e->state, memory_order_acquire) == 0)
		return 0;
	return e->key_len == k->len && memcmp(e->key, k->data, k->len) == 0;
}

static struct cds_lfht *table_of(once_store *s, const struct once__key *k)
{
	return s->shards[k->shard].table[k->table];
}

struct once__entry *once__table_lookup(once_store *s, const struct once__key *k)
{
	struct cds_lfht_iter it;
	cds_lfht_lookup(table_of(s, k), k->hash, match, k, &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	return node ? caa_container_of(node, struct once__entry, node) : NULL;
}

struct once__entry *once__table_add_unique(once_store *s, const struct once__key *k, struct once__entry *e)
{
	struct cds_lfht_node *got = cds_lfht_add_unique(table_of(s, k), k->hash, match, k, &e->node);
	return caa_container_of(got, struct once__entry, node);
}

bool once__table_del(once_store *s, struct once__entry *e)
{
	/* cds_lfht_del has exactly one winner among concurrent deleters. */
	return cds_lfht_del(s->shards[e->shard].table[e->table], &e->node) == 0;
}

/*
 * Frees a table that holds no entries any more.  cds_lfht_destroy first
 * checks that it is empty by walking the list through every bucket node,
 * in split (bit-reversed) order: a cache miss per bucket, about 0.5 s of a
 * close at 2^21 buckets.  A large table is shrunk first: the shrink
 * unlinks bucket nodes in index order, a sequential walk and one grace
 * period per halving (no reader is left: once_close), and destroy then
 * walks 16.  Small tables are not worth those grace periods.  Closing a
 * store of 10^6 refresh tokens, a family each, took 1.72-1.79 s with the
 * shrink and 2.38 s without (two rounds of a driver timing once_close).
 */
static void destroy_empty_table(struct cds_lfht *ht, uint64_t buckets)
{
	if (buckets > SHRINK_BEFORE_DESTROY)
		cds_lfht_resize(ht, ONCE_TABLE_MIN_BUCKETS);
	cds_lfht_destroy(ht, NULL);
}

/*
 * Single-threaded teardown (once_close): unlink every entry, wait one grace
 * period so no reader can hold any of them, then free what each holds
 * (once__entry_free_now: back to the slab, malloc'd blocks, consumptions,
 * family references), and destroy the (now empty: destroy refuses
 * otherwise) tables outside any read-side section.  The slab's chunks are
 * unmapped after (store.c).  Entries retired earlier by
 * sweeps are flushed by the caller's rcu_barrier.
 */
void once__tables_destroy(once_store *s)
{
	struct once__entry *doomed = NULL;
	urcu_bp_read_lock();
	for (uint32_t i = 0; i < s->nshards; i++) {
		for (int t = 0; t < ONCE_TBL_COUNT; t++) {
			struct cds_lfht *ht = s->shards[i].table[t];
			if (ht == NULL)
				continue;
			struct cds_lfht_iter it;
			struct cds_lfht_node *node;
			cds_lfht_for_each(ht, &it, node) {
				struct once__entry *e = caa_container_of(node, struct once__entry, node);
				if (cds_lfht_del(ht, node) == 0) {
					e->link.wheel_next = doomed;
					doomed = e;
				}
			}
		}
	}
	once__read_unlock();
	urcu_bp_synchronize_rcu();
	while (doomed != NULL) {
		struct once__entry *next = doomed->link.wheel_next;
		if (once__is_family_table((enum once__table)doomed->table))
			once__family_unref(doomed); /* the table's reference */
		else
			once__entry_free_now(doomed);
		doomed = next;
	}
	/* A shrink's helper threads (liburcu starts them for large tables)
	 * inherit this thread's mask: every signal blocked, as in every
	 * thread of the store's own (grow.c). */
	sigset_t host;
	once__signals_block_all(&host);
	for (uint32_t i = 0; i < s->nshards; i++) {
		for (int t = 0; t < ONCE_TBL_COUNT; t++) {
			if (s->shards[i].table[t] != NULL)
				destroy_empty_table(s->shards[i].table[t],
				                    atomic_load_explicit(&s->cap[t].table_buckets, memory_order_relaxed));
			s->shards[i].table[t] = NULL;
		}
	}
	once__signals_restore(&host);
}

void once__table_each(once_store *s, uint32_t shard, enum once__table t,
                      void (*fn)(struct once__entry *e, void *ctx), void *ctx)
{
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	urcu_bp_read_lock();
	cds_lfht_for_each(s->shards[shard].table[t], &it, node)
		fn(caa_container_of(node, struct once__entry, node), ctx);
	once__read_unlock();
}

bool once__table_is_deleted(struct once__entry *e)
{
	return cds_lfht_is_node_deleted(&e->node);
}

struct once__entry *once__table_add_replace(once_store *s, const struct once__key *k, struct once__entry *e)
{
	struct cds_lfht_node *old = cds_lfht_add_replace(table_of(s, k), k->hash, match, k, &e->node);
	return old ? caa_container_of(old, struct once__entry, node) : NULL;
}
