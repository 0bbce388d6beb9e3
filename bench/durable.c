/*
 * bench/durable.c - how fast records become durable through wal/log.c, and
 * how many each fdatasync carries, at several thread counts.
 *
 * Each thread appends 64-byte records (the size of a take or replay record)
 * and commits each one before the next, as a store's writers do.  With
 * --logs N the threads are spread over N segment files, each with its own
 * group commit: the comparison between one log per store and one per shard.
 * Files go to a fresh directory under $TMPDIR (default /tmp), removed after.
 *
 * Also the raw limit of group commit at a given batch size, without the
 * log: one thread pwrite-ing a batch of records, then fdatasync, batch
 * after batch, to a file that grows (each sync also commits the new size)
 * or into one written full of zeros and synced before (the data alone):
 * what any log writer that syncs that many records at a time can reach on
 * this disk (durable_raw_batches).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "durable.h"
#include "format.h"
#include "log.h"

#define RECORD_HEADER ONCE_WAL_RECORD_HEADER
#define RECORD_PAYLOAD (64 - RECORD_HEADER) /* 64 bytes on disk */
#define RECORD_PAYLOAD_MAX 4096

struct run {
	struct once__log **logs;
	uint32_t nlogs, threads;
	uint64_t per_thread;
	uint32_t payload; /* bytes per record after the header */
	pthread_barrier_t start;
	_Atomic uint64_t failures;
};

struct writer {
	struct run *r;
	uint32_t id;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct once__log *log = w->r->logs[w->id % w->r->nlogs];
	unsigned char payload[RECORD_PAYLOAD_MAX];
	memset(payload, 'r', w->r->payload);
	pthread_barrier_wait(&w->r->start);
	for (uint64_t i = 0; i < w->r->per_thread; i++) {
		uint64_t seq;
		if (once__log_append(log, ONCE_WAL_REPLAY_RECORD, payload, w->r->payload, &seq) != ONCE_OK ||
		    once__log_commit(log, seq) != ONCE_OK)
			atomic_fetch_add(&w->r->failures, 1);
	}
	return NULL;
}


static int run_once(const struct durable_config *c, uint32_t threads, uint32_t payload,
                    struct durable_result *out)
{
	const char *base = c->dir != NULL ? c->dir : getenv("TMPDIR");
	char dir[256];
	snprintf(dir, sizeof dir, "%s/oncebench-XXXXXX", base ? base : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("oncebench: mkdtemp");
		return 1;
	}
	struct run r = {.nlogs = c->logs, .threads = threads, .per_thread = c->records / threads,
	                .payload = payload};
	if (r.per_thread == 0)
		r.per_thread = 1;
	atomic_init(&r.failures, 0);
	r.logs = calloc(c->logs, sizeof *r.logs);
	unsigned char uid[16] = "oncebench-uid-16";
	char path[300];
	for (uint32_t i = 0; i < c->logs; i++) {
		snprintf(path, sizeof path, "%s/log-%u.wal", dir, i);
#if ONCEBENCH_LOG_CONFIG
		struct once__log_config cfg = {.mode = c->sync, .interval_ms = 10};
		once_status st = once__log_create(path, uid, i + 1, 1, &cfg, &r.logs[i], AT_FDCWD);
#else
		once_status st = once__log_create(path, uid, i + 1, 1, c->sync, 10, &r.logs[i], AT_FDCWD);
#endif
		if (st != ONCE_OK) {
			fprintf(stderr, "oncebench: cannot create %s\n", path);
			return 1;
		}
	}
	pthread_t *tid = calloc(threads, sizeof *tid);
	struct writer *w = calloc(threads, sizeof *w);
	if (tid == NULL || w == NULL) {
		fprintf(stderr, "oncebench: out of memory\n");
		return 1;
	}
	pthread_barrier_init(&r.start, NULL, threads + 1);
	for (uint32_t t = 0; t < threads; t++) {
		w[t] = (struct writer){&r, t};
		pthread_create(&tid[t], NULL, writer_main, &w[t]);
	}
	pthread_barrier_wait(&r.start);
	double t0 = now_s();
	for (uint32_t t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	double elapsed = now_s() - t0;
	free(tid);
	free(w);
	uint64_t syncs = 0, synced = 0;
	for (uint32_t i = 0; i < c->logs; i++) {
		struct once__log_stats ls;
		once__log_stats(r.logs[i], &ls);
		syncs += ls.syncs;
		synced += ls.synced_records;
		once__log_close(r.logs[i]);
		snprintf(path, sizeof path, "%s/log-%u.wal", dir, i);
		unlink(path);
	}
	rmdir(dir);
	pthread_barrier_destroy(&r.start);
	free(r.logs);
	if (atomic_load(&r.failures) != 0) {
		fprintf(stderr, "oncebench: %" PRIu64 " log writes failed\n", atomic_load(&r.failures));
		return 1;
	}
	uint64_t total = r.per_thread * threads;
	out->records_per_s = (double)total / elapsed;
	out->records_per_sync = syncs ? (double)synced / (double)syncs : 0;
	out->syncs_per_s = (double)syncs / elapsed;
	return 0;
}

static int cmp_result(const void *a, const void *b)
{
	double x = ((const struct durable_result *)a)->records_per_s, y = ((const struct durable_result *)b)->records_per_s;
	return (x > y) - (x < y);
}

static const char *sync_name(once_sync_mode m)
{
	return m == ONCE_SYNC_ALWAYS ? "always" : m == ONCE_SYNC_INTERVAL ? "interval" : "none";
}

int durable_bench(const struct durable_config *c)
{
	if (!c->json)
		printf("durable log (wal/log.c): %" PRIu64 " records of 64 bytes per run, sync %s, "
		       "%u log file(s), median of %d runs\n\n%8s %14s %14s %10s\n",
		       c->records, sync_name(c->sync), c->logs, c->runs, "threads", "records/s",
		       "records/sync", "syncs/s");
	for (int t = 0; t < c->nthreads; t++) {
		struct durable_result v[32];
		for (int k = 0; k < c->runs; k++)
			if (run_once(c, c->threads[t], RECORD_PAYLOAD, &v[k]) != 0)
				return 1;
		qsort(v, (size_t)c->runs, sizeof v[0], cmp_result);
		struct durable_result m = v[c->runs / 2];
		if (c->json)
			printf("{\"workload\":\"log\",\"sync\":\"%s\",\"logs\":%u,\"threads\":%u,"
			       "\"records_per_s\":%.0f,\"records_per_sync\":%.2f,\"syncs_per_s\":%.0f}\n",
			       sync_name(c->sync), c->logs, c->threads[t], m.records_per_s, m.records_per_sync,
			       m.syncs_per_s);
		else
			printf("%8u %14.0f %14.2f %10.0f\n", c->threads[t], m.records_per_s, m.records_per_sync,
			       m.syncs_per_s);
		fflush(stdout);
	}
	return 0;
}

int durable_limit(const char *dir, uint32_t threads, uint64_t records, double record_bytes,
                  once_sync_mode sync, int runs, struct durable_result *out)
{
	struct durable_config c = {.logs = 1, .records = records, .sync = sync, .dir = dir};
	double payload = record_bytes - RECORD_HEADER;
	uint32_t pl = payload < 1 ? 1 : payload > RECORD_PAYLOAD_MAX ? RECORD_PAYLOAD_MAX : (uint32_t)(payload + 0.5);
	struct durable_result v[32];
	for (int k = 0; k < runs; k++)
		if (run_once(&c, threads, pl, &v[k]) != 0)
			return 1;
	qsort(v, (size_t)runs, sizeof v[0], cmp_result);
	*out = v[runs / 2];
	return 0;
}

/* ---- the raw limit at a batch size: pwrite + fdatasync, no log ---- */

static int raw_batches_once(const char *base, uint32_t batch, uint32_t record_bytes, uint64_t nbatches,
                            bool prealloc, struct durable_result *out)
{
	char dir[256], path[300];
	snprintf(dir, sizeof dir, "%s/oncebench-XXXXXX", base ? base : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("oncebench: mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/raw.wal", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	size_t bytes = (size_t)batch * record_bytes;
	unsigned char *buf = malloc(bytes > (1u << 20) ? bytes : (1u << 20));
	int rc = 1;
	if (fd < 0 || buf == NULL) {
		perror("oncebench: raw log file");
		goto out;
	}
	/* As a segment starts: a header, synced with the file's metadata. */
	off_t off = ONCE_WAL_SEGMENT_HEADER, size = off + (off_t)(bytes * nbatches);
	memset(buf, 0, bytes > (1u << 20) ? bytes : (1u << 20));
	if (prealloc) {
		for (off_t o = 0; o < size; o += 1 << 20) {
			size_t n = size - o < (1 << 20) ? (size_t)(size - o) : (1u << 20);
			if (pwrite(fd, buf, n, o) != (ssize_t)n)
				goto io;
		}
	} else if (pwrite(fd, buf, (size_t)off, 0) != (ssize_t)off) {
		goto io;
	}
	if (fsync(fd) != 0)
		goto io;
	memset(buf, 'r', bytes);
	double t0 = now_s();
	for (uint64_t b = 0; b < nbatches; b++, off += (off_t)bytes)
		if (pwrite(fd, buf, bytes, off) != (ssize_t)bytes || fdatasync(fd) != 0)
			goto io;
	double elapsed = now_s() - t0;
	out->records_per_s = (double)(nbatches * batch) / elapsed;
	out->records_per_sync = batch;
	out->syncs_per_s = (double)nbatches / elapsed;
	rc = 0;
	goto out;
io:
	perror("oncebench: raw log write");
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	unlink(path);
	rmdir(dir);
	return rc;
}

int durable_raw_batches(const char *dir, double batch, double record_bytes, uint64_t records, bool prealloc,
                        int runs, struct durable_result *out)
{
	uint32_t b = batch < 1 ? 1 : (uint32_t)(batch + 0.5);
	/* Whole records of 8-byte multiples, as the log pads them. */
	uint32_t rb = (uint32_t)(record_bytes + 0.5);
	rb = rb < RECORD_HEADER + 8 ? RECORD_HEADER + 8 : (rb + 7) / 8 * 8;
	uint64_t nbatches = (records + b - 1) / b;
	if (nbatches < 50)
		nbatches = 50;
	struct durable_result v[32];
	for (int k = 0; k < runs; k++)
		if (raw_batches_once(dir, b, rb, nbatches, prealloc, &v[k]) != 0)
			return 1;
	qsort(v, (size_t)runs, sizeof v[0], cmp_result);
	*out = v[runs / 2];
	return 0;
}
