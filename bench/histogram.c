/*
 * bench/histogram.c - percentiles of the log-linear latency histogram, and
 * a self-check of them (oncebench --selftest).
 */
#include "histogram.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof *h);
}

void hist_merge(struct hist *into, const struct hist *from)
{
	for (uint32_t i = 0; i < HIST_BUCKETS; i++)
		into->b[i] += from->b[i];
	into->count += from->count;
	if (from->max > into->max)
		into->max = from->max;
}

/* [lo, hi) of bucket i. */
static void bucket_range(uint32_t i, double *lo, double *hi)
{
	if (i < HIST_SUB) {
		*lo = i;
		*hi = i + 1;
		return;
	}
	uint32_t e = i / HIST_SUB + HIST_SUB_BITS - 1, sub = i % HIST_SUB;
	double width = ldexp(1.0, (int)(e - HIST_SUB_BITS));
	*lo = ldexp(1.0, (int)e) + sub * width;
	*hi = *lo + width;
}

double hist_quantile(const struct hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q >= 1.0)
		return (double)h->max;
	uint64_t rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			double lo, hi;
			bucket_range(i, &lo, &hi);
			double mid = i < HIST_SUB ? lo : (lo + hi) / 2;
			return mid > (double)h->max ? (double)h->max : mid;
		}
	}
	return (double)h->max;
}

static bool near(const char *what, double got, double want, double rel)
{
	if (fabs(got - want) <= rel * want)
		return true;
	fprintf(stderr, "histogram selftest: %s = %.1f, want %.1f (within %.1f%%)\n", what, got, want,
	        rel * 100);
	return false;
}

bool hist_selftest(void)
{
	static struct hist h;
	bool ok = true;
	/* Every bucket's range starts where the previous one ends. */
	double prev_hi = 0;
	for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
		double lo, hi;
		bucket_range(i, &lo, &hi);
		if (lo != prev_hi || hist_index((uint64_t)lo) != i || hist_index((uint64_t)hi - 1) != i) {
			fprintf(stderr, "histogram selftest: bucket %u is [%.0f, %.0f)\n", i, lo, hi);
			ok = false;
			break;
		}
		prev_hi = hi;
	}
	/* Uniform 1..100000 ns: the q-quantile is q * 100000. */
	hist_reset(&h);
	for (uint64_t v = 1; v <= 100000; v++)
		hist_record(&h, v);
	ok &= near("uniform p50", hist_quantile(&h, 0.50), 50000, 1.0 / 16);
	ok &= near("uniform p99", hist_quantile(&h, 0.99), 99000, 1.0 / 16);
	ok &= near("uniform p999", hist_quantile(&h, 0.999), 99900, 1.0 / 16);
	ok &= near("uniform max", hist_quantile(&h, 1.0), 100000, 0);
	/* Small exact values: 1000 x 5 ns, then 10 x 1 ms, 1 x 2 s. */
	hist_reset(&h);
	for (int k = 0; k < 1000; k++)
		hist_record(&h, 5);
	for (int k = 0; k < 10; k++)
		hist_record(&h, 1000000);
	hist_record(&h, 2000000000);
	ok &= near("exact p50", hist_quantile(&h, 0.50), 5, 0);
	ok &= near("tail p99.9", hist_quantile(&h, 0.999), 1000000, 1.0 / 16);
	ok &= near("tail max", hist_quantile(&h, 1.0), 2000000000, 0);
	/* Merging two halves gives the whole. */
	static struct hist a, b;
	hist_reset(&a);
	hist_reset(&b);
	for (uint64_t v = 1; v <= 100000; v++)
		hist_record(v % 2 ? &a : &b, v * 10);
	hist_merge(&a, &b);
	ok &= near("merged count", (double)a.count, 100000, 0);
	ok &= near("merged p50", hist_quantile(&a, 0.50), 500000, 1.0 / 16);
	ok &= near("merged p99", hist_quantile(&a, 0.99), 990000, 1.0 / 16);
	/* TAP, as tests/run.sh counts it. */
	printf("1..1\n%s 1 - latency histogram: buckets, percentiles, merge\n", ok ? "ok" : "not ok");
	return ok;
}
