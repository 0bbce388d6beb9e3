/*
 * core/histogram.c - percentiles of the log-linear latency histogram
 * (core/histogram.h).  No libm: the library does not link it, and the
 * bounds are powers of two that shifts give exactly.
 */
#include "histogram.h"

#include <string.h>

void once__hist_reset(struct once__hist *h)
{
	memset(h, 0, sizeof *h);
}

void once__hist_merge(struct once__hist *into, const struct once__hist *from)
{
	for (uint32_t i = 0; i < ONCE_HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}

void once__hist_bucket_range(uint32_t i, double *lo, double *hi)
{
	if (i < ONCE_HIST_SUB) {
		*lo = i;
		*hi = i + 1;
		return;
	}
	uint32_t e = i / ONCE_HIST_SUB + ONCE_HIST_SUB_BITS - 1, sub = i % ONCE_HIST_SUB;
	double width = (double)((uint64_t)1 << (e - ONCE_HIST_SUB_BITS));
	*lo = (double)((uint64_t)1 << e) + sub * width;
	*hi = *lo + width;
}

double once__hist_quantile(const struct once__hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q >= 1.0)
		return (double)h->max;
	/* ceil(q * count), at least 1. */
	double want = q * (double)h->count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < ONCE_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			double lo, hi;
			once__hist_bucket_range(i, &lo, &hi);
			double mid = i < ONCE_HIST_SUB ? lo : (lo + hi) / 2;
			return mid > (double)h->max ? (double)h->max : mid;
		}
	}
	return (double)h->max;
}
