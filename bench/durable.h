/*
 * bench/durable.h - the durable-log part of the harness: records/s and
 * records per fdatasync of wal/log.c's group commit, with one log or one
 * log per shard, in a temporary data directory.
 */
#ifndef ONCE_BENCH_DURABLE_H
#define ONCE_BENCH_DURABLE_H

#include <stdbool.h>
#include <stdint.h>

#include "oncestore.h"

struct durable_config {
	const uint32_t *threads; /* thread counts to run */
	int nthreads;
	uint32_t logs;           /* independent segment files; threads spread over them */
	uint64_t records;        /* records per run, over all threads */
	once_sync_mode sync;
	int runs;                /* the median is reported */
	bool json;
	const char *dir;         /* base for the temporary directory; NULL: $TMPDIR or /tmp */
};

struct durable_result {
	double records_per_s;
	double records_per_sync;
	double syncs_per_s;
};

/* Runs the log benchmark; returns 0, or 1 when the log failed. */
int durable_bench(const struct durable_config *c);

/*
 * The durable limit of a store run: `records` records of about record_bytes
 * on disk each (header included), committed one at a time by `threads`
 * threads through one log's group commit, in a fresh directory under dir
 * (NULL: $TMPDIR or /tmp); the median of `runs` runs.  Returns 0, or 1 when
 * the log failed.
 */
int durable_limit(const char *dir, uint32_t threads, uint64_t records, double record_bytes,
                  once_sync_mode sync, int runs, struct durable_result *out);

/*
 * The raw limit of group commit at `batch` records per fdatasync (rounded,
 * at least 1) of record_bytes each (rounded up to 8, as the log pads):
 * one thread, pwrite of a batch then fdatasync, about `records` records
 * (at least 50 batches), to a new file under dir (NULL: $TMPDIR or /tmp)
 * that grows with each batch, or, with prealloc, into a file written full
 * of zeros and fsynced first; the median of `runs` runs.  Returns 0, or 1
 * when a write or sync failed.
 */
int durable_raw_batches(const char *dir, double batch, double record_bytes, uint64_t records, bool prealloc,
                        int runs, struct durable_result *out);

#endif
