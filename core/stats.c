/*
 * core/stats.c - capacity accounting and operation counters.
 *
 * Capacity is exact: one atomic counter per table kind, reserved before an
 * insert and released by a failed insert or a sweep, so "capacity N" means
 * exactly N live entries fit and the (N+1)th gets ONCE_FULL.
 *
 * Operation counters and byte counts are striped per CPU (sched_getcpu reads
 * the rseq area, ~1 ns): a shared counter would put every core's hot path on
 * one cache line.  They are relaxed atomics; once_stats sums the stripes.
 */
#include <sched.h>
#include <string.h>

#include "internal.h"
#include "persist.h"

static struct once__stripe *my_stripe(once_store *s)
{
	int cpu = sched_getcpu();
	return &s->stripes[(uint32_t)(cpu < 0 ? 0 : cpu) & s->stripe_mask];
}

once_status once__count(once_store *s, once_op op, once_status st)
{
	atomic_fetch_add_explicit(&my_stripe(s)->ops[op][st], 1, memory_order_relaxed);
	return st;
}

void once__bytes_add(once_store *s, enum once__table t, int64_t delta)
{
	atomic_fetch_add_explicit(&my_stripe(s)->bytes[t], delta, memory_order_relaxed);
}

void once__swept_add(once_store *s, enum once__table t, uint64_t n)
{
	atomic_fetch_add_explicit(&my_stripe(s)->swept[t], n, memory_order_relaxed);
}

uint64_t once__capacity_reserve(once_store *s, enum once__table t)
{
	struct once__capacity *c = &s->cap[t];
	uint64_t before = atomic_fetch_add_explicit(&c->live, 1, memory_order_relaxed);
	if (before < c->max)
		return before + 1;
	atomic_fetch_sub_explicit(&c->live, 1, memory_order_relaxed);
	return 0;
}

void once__capacity_release(once_store *s, enum once__table t)
{
	atomic_fetch_sub_explicit(&s->cap[t].live, 1, memory_order_relaxed);
}

static void kind_stats(once_store *s, enum once__table t, once_kind_stats *k)
{
	int64_t bytes = 0;
	uint64_t swept = 0;
	for (uint32_t i = 0; i <= s->stripe_mask; i++) {
		bytes += atomic_load_explicit(&s->stripes[i].bytes[t], memory_order_relaxed);
		swept += atomic_load_explicit(&s->stripes[i].swept[t], memory_order_relaxed);
	}
	k->entries = atomic_load_explicit(&s->cap[t].live, memory_order_relaxed);
	k->bytes = bytes > 0 ? (uint64_t)bytes : 0;
	k->capacity = s->cap[t].max;
	k->swept = swept;
}

void once__mem_stats(once_store *s, struct once_stats *out)
{
	if (s == NULL || out == NULL)
		return;
	memset(out, 0, sizeof *out);
	kind_stats(s, ONCE_TBL_CODE, &out->codes);
	kind_stats(s, ONCE_TBL_ACCESS, &out->access_tokens);
	kind_stats(s, ONCE_TBL_NONCE, &out->nonces);
	kind_stats(s, ONCE_TBL_REPLAY, &out->replays);
	kind_stats(s, ONCE_TBL_REFRESH, &out->refresh);
	kind_stats(s, ONCE_TBL_REFRESH_FAMILY, &out->refresh_families);
	kind_stats(s, ONCE_TBL_ACCESS_FAMILY, &out->access_families);
	for (uint32_t i = 0; i <= s->stripe_mask; i++)
		for (int op = 0; op < ONCE_OP_COUNT; op++)
			for (int st = 0; st < ONCE_STATUS_COUNT; st++)
				out->ops[op][st] += atomic_load_explicit(&s->stripes[i].ops[op][st],
				                                         memory_order_relaxed);
	out->shards = s->nshards;
	out->sweeps = atomic_load_explicit(&s->sweeps, memory_order_relaxed);
	for (int t = 0; t < ONCE_TBL_COUNT; t++)
		out->table_bytes += atomic_load_explicit(&s->cap[t].table_buckets, memory_order_relaxed) *
		                    s->nshards * sizeof(struct cds_lfht_node);
	out->read_only = s->opt.read_only;
	once__persist_stats(s, out);
}
