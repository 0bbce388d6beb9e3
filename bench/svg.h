/*
 * bench/svg.h - draws the figures of a run as one self-contained SVG file
 * (no plotting dependency): operations/s against threads, one line per
 * workload and sync mode, and latency percentile curves at the highest
 * thread count of each.
 */
#ifndef ONCE_BENCH_SVG_H
#define ONCE_BENCH_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SVG_QUANTILES 5 /* p50 p90 p99 p99.9 max */

struct svg_figure {
	const char *series; /* e.g. "code take (sync always)" */
	uint32_t threads;
	double ops_per_s;
	double lat_ns[SVG_QUANTILES]; /* all 0: a limit, drawn dashed, ops/s only */
};

/* Writes the SVG; returns 0, or -1 (with errno) when the file could not be
 * written. */
int svg_write(const char *path, const char *title, const struct svg_figure *f, size_t n);

#endif
