/*
 * bench/histogram.h - an HDR-style log-linear latency histogram: 16
 * sub-buckets per power of two (relative error under 1/16 = 6.25%), exact
 * below 16 ns, up to 2^40 ns (about 18 minutes).  One per thread, merged
 * after the phase; recording is an index computation and an increment.
 */
#ifndef ONCE_BENCH_HISTOGRAM_H
#define ONCE_BENCH_HISTOGRAM_H

#include <stdbool.h>
#include <stdint.h>

#define HIST_SUB_BITS 4
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_EXP 40
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};

static inline uint32_t hist_index(uint64_t v)
{
	if (v < HIST_SUB)
		return (uint32_t)v;
	uint32_t e = 63u - (uint32_t)__builtin_clzll(v); /* >= HIST_SUB_BITS */
	if (e >= HIST_MAX_EXP)
		return HIST_BUCKETS - 1;
	uint32_t sub = (uint32_t)(v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1);
	return (e - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

static inline void hist_record(struct hist *h, uint64_t ns)
{
	h->b[hist_index(ns)]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

void hist_reset(struct hist *h);
void hist_merge(struct hist *into, const struct hist *from);
/* The value at quantile q (0..1) in ns: the midpoint of the bucket holding
 * the ceil(q * count)-th smallest value (q = 1: the exact maximum). */
double hist_quantile(const struct hist *h, double q);
/* Checks the percentile math against known distributions; prints what is
 * off and returns false. */
bool hist_selftest(void);

#endif
