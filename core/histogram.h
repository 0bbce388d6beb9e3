/*
 * core/histogram.h - an HDR-style log-linear latency histogram: 16
 * sub-buckets per power of two (relative error under 1/16 = 6.25%), exact
 * below 16 ns, up to 2^40 ns (about 18 minutes).  Recording is an index
 * computation and an increment; the caller provides any locking.
 *
 * Two users, one code: the log's sync latency (wal/log.c, for once_stats'
 * sync percentiles) and the bench (bench/, one per thread, merged after a
 * phase; `oncebench --selftest` checks the percentile math).
 */
#ifndef ONCE_CORE_HISTOGRAM_H
#define ONCE_CORE_HISTOGRAM_H

#include <stdint.h>

#define ONCE_HIST_SUB_BITS 4
#define ONCE_HIST_SUB (1u << ONCE_HIST_SUB_BITS)
#define ONCE_HIST_MAX_EXP 40
#define ONCE_HIST_BUCKETS ((ONCE_HIST_MAX_EXP - ONCE_HIST_SUB_BITS + 1) * ONCE_HIST_SUB)

struct once__hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[ONCE_HIST_BUCKETS];
};

static inline uint32_t once__hist_index(uint64_t v)
{
	if (v < ONCE_HIST_SUB)
		return (uint32_t)v;
	uint32_t e = 63u - (uint32_t)__builtin_clzll(v); /* >= ONCE_HIST_SUB_BITS */
	if (e >= ONCE_HIST_MAX_EXP)
		return ONCE_HIST_BUCKETS - 1;
	uint32_t sub = (uint32_t)(v >> (e - ONCE_HIST_SUB_BITS)) & (ONCE_HIST_SUB - 1);
	return (e - ONCE_HIST_SUB_BITS + 1) * ONCE_HIST_SUB + sub;
}

static inline void once__hist_record(struct once__hist *h, uint64_t ns)
{
	h->b[once__hist_index(ns)]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

/*
 * The coarse power-of-two bucket of v among n: i such that
 * v <= 2^(first_exp + i), the smallest such i; n - 1 for anything larger
 * (once_stats.sync_buckets: first_exp 10, n ONCE_SYNC_BUCKETS).  Exact,
 * from v itself: the fine buckets above straddle no power of two, but
 * their upper bounds are exclusive where these are inclusive.
 */
static inline uint32_t once__pow2_bucket(uint64_t v, uint32_t first_exp, uint32_t n)
{
	if (v <= ((uint64_t)1 << first_exp))
		return 0;
	uint32_t ceil_log2 = 64u - (uint32_t)__builtin_clzll(v - 1); /* v <= 2^ceil_log2 */
	uint32_t i = ceil_log2 - first_exp;
	return i < n ? i : n - 1;
}

void once__hist_reset(struct once__hist *h);
void once__hist_merge(struct once__hist *into, const struct once__hist *from);
/* [lo, hi) of bucket i, in ns. */
void once__hist_bucket_range(uint32_t i, double *lo, double *hi);
/* The value at quantile q (0..1) in ns: the midpoint of the bucket holding
 * the ceil(q * count)-th smallest value, at most the maximum (q = 1: the
 * exact maximum); 0 when empty. */
double once__hist_quantile(const struct once__hist *h, double q);

#endif
