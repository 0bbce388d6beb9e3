/*
 * bench/selftest.c - a self-check of the latency histogram's percentile
 * math (core/histogram.c, which the library's sync figures and the bench
 * share): oncebench --selftest.
 */
#include <math.h>
#include <stdio.h>

#include "bench.h"
#include "histogram.h"

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
	static struct once__hist h;
	bool ok = true;
	/* Every bucket's range starts where the previous one ends. */
	double prev_hi = 0;
	for (uint32_t i = 0; i < ONCE_HIST_BUCKETS; i++) {
		double lo, hi;
		once__hist_bucket_range(i, &lo, &hi);
		if (lo != prev_hi || once__hist_index((uint64_t)lo) != i || once__hist_index((uint64_t)hi - 1) != i) {
			fprintf(stderr, "histogram selftest: bucket %u is [%.0f, %.0f)\n", i, lo, hi);
			ok = false;
			break;
		}
		prev_hi = hi;
	}
	/* Uniform 1..100000 ns: the q-quantile is q * 100000. */
	once__hist_reset(&h);
	for (uint64_t v = 1; v <= 100000; v++)
		once__hist_record(&h, v);
	ok &= near("uniform p50", once__hist_quantile(&h, 0.50), 50000, 1.0 / 16);
	ok &= near("uniform p99", once__hist_quantile(&h, 0.99), 99000, 1.0 / 16);
	ok &= near("uniform p999", once__hist_quantile(&h, 0.999), 99900, 1.0 / 16);
	ok &= near("uniform max", once__hist_quantile(&h, 1.0), 100000, 0);
	/* Small exact values: 1000 x 5 ns, then 10 x 1 ms, 1 x 2 s. */
	once__hist_reset(&h);
	for (int k = 0; k < 1000; k++)
		once__hist_record(&h, 5);
	for (int k = 0; k < 10; k++)
		once__hist_record(&h, 1000000);
	once__hist_record(&h, 2000000000);
	ok &= near("exact p50", once__hist_quantile(&h, 0.50), 5, 0);
	ok &= near("tail p99.9", once__hist_quantile(&h, 0.999), 1000000, 1.0 / 16);
	ok &= near("tail max", once__hist_quantile(&h, 1.0), 2000000000, 0);
	/* Merging two halves gives the whole. */
	static struct once__hist a, b;
	once__hist_reset(&a);
	once__hist_reset(&b);
	for (uint64_t v = 1; v <= 100000; v++)
		once__hist_record(v % 2 ? &a : &b, v * 10);
	once__hist_merge(&a, &b);
	ok &= near("merged count", (double)a.count, 100000, 0);
	ok &= near("merged p50", once__hist_quantile(&a, 0.50), 500000, 1.0 / 16);
	ok &= near("merged p99", once__hist_quantile(&a, 0.99), 990000, 1.0 / 16);
	/* The coarse power-of-two buckets (once_stats.sync_buckets): bound
	 * inclusive, from 2^10 ns, the last one open. */
	static const struct {
		uint64_t v;
		uint32_t want;
	} pow2[] = {{0, 0}, {1024, 0}, {1025, 1}, {2048, 1}, {2049, 2}, {(uint64_t)1 << 34, 24},
	            {((uint64_t)1 << 34) + 1, 25}, {UINT64_MAX, 25}};
	for (size_t k = 0; k < sizeof pow2 / sizeof pow2[0]; k++) {
		uint32_t got = once__pow2_bucket(pow2[k].v, 10, 26);
		if (got != pow2[k].want) {
			fprintf(stderr, "histogram selftest: %llu ns in power-of-two bucket %u, want %u\n",
			        (unsigned long long)pow2[k].v, got, pow2[k].want);
			ok = false;
		}
	}
	/* TAP, as tests/run.sh counts it. */
	printf("1..1\n%s 1 - latency histogram: buckets, percentiles, merge, power-of-two bounds\n", ok ? "ok" : "not ok");
	return ok;
}
