/*
 * wal/log.h - appending records to one log segment, with group commit.
 *
 * The store keeps one log (wal/persist.c), rotated to a new segment file at
 * every checkpoint.
 *
 * Writers append a record: it gets the next sequence number (its ticket,
 * in the store's API) and waits in memory, in a buffer of at most
 * buffer_max bytes.  A writer thread owned by the log takes everything
 * queued whenever anything is, writes it with one pwrite and (under
 * ONCE_SYNC_ALWAYS) makes it durable with one fdatasync: a group is
 * whatever arrived while the previous one was on its way to the disk, so
 * its size follows what is in flight.  A record is done when it is
 *   - on stable storage (ONCE_SYNC_ALWAYS: write + fdatasync), or
 *   - in the kernel (ONCE_SYNC_INTERVAL, ONCE_SYNC_NONE: write; a process
 *     crash cannot lose it, a power failure can until the next sync; the
 *     writer syncs every interval_ms under ONCE_SYNC_INTERVAL).
 * Records are done in sequence order.  once__log_position says how far
 * (never blocks); once__log_commit blocks until one record is done: the
 * writer wakes exactly the committers its group covered, each on its own
 * semaphore, so a group of n records costs n wake-ups, not n broadcasts
 * and n contenders for one mutex.  Appending never does disk I/O; a
 * blocking commit does only under ONCE_SYNC_INTERVAL and NONE, where it
 * writes the queue itself when no one else is writing (a pwrite, no sync),
 * and rotations and checkpoints write what they flush.
 *
 * Segments are preallocated: the file grows by ONCE_WAL_PREALLOC_STEP
 * bytes of zeros at a time, ahead of the records, so an fdatasync of a
 * group inside the file commits no size change (wal/format.h: zeros after
 * the last record are unused space).
 *
 * Failure is sticky.  If a write or a sync fails, the log answers ONCE_IO
 * to that commit and to every later append and commit (one ERROR line
 * through cfg->fail when it fails, none for the refusals after it;
 * once__log_stats keeps the call, file, offset and errno): after a failed
 * fdatasync the kernel may have dropped the dirty pages and marked them
 * clean, so retrying and believing a later success would lose
 * acknowledged records (PostgreSQL's "fsyncgate").  Only reopening (and
 * recovering from what is on disk) clears it.
 */
#ifndef ONCE_WAL_LOG_H
#define ONCE_WAL_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "fail.h"
#include "oncestore.h"

struct once__log;

struct once__log_stats {
	uint64_t records;     /* appended */
	uint64_t bytes;       /* written, segment header included */
	uint64_t flushes;     /* group writes (pwrite of a group) */
	uint64_t syncs;       /* fdatasync calls */
	uint64_t synced_records; /* records made durable by those syncs */
	uint64_t sync_ns_total;
	uint64_t sync_ns_max;
	/* Failed calls on the log's files (each counted once, whatever
	 * follows it). */
	uint64_t write_failures; /* pwrite (records, preallocation, headers) */
	uint64_t sync_failures;  /* fdatasync, fsync */
	/* The failure that stopped the log (err 0: none), and the store
	 * clock then (once__fail_now). */
	struct once__syserr failure;
	int64_t failure_at;
	/* Sync latency: once_stats.sync_buckets' power-of-two counts, and
	 * percentiles from the fine histogram (core/histogram.h). */
	uint64_t sync_buckets[ONCE_SYNC_BUCKETS];
	uint64_t sync_ns_p50, sync_ns_p99, sync_ns_p999;
};

/* Preallocation step of a segment file (see above), at most; the store
 * uses less when its checkpoints come more often (wal/persist.c). */
#define ONCE_WAL_PREALLOC_STEP ((off_t)4 << 20)
/* The smallest buffer bound: larger than any group worth syncing alone. */
#define ONCE_LOG_BUFFER_MIN ((uint64_t)1 << 20)

struct once__log_config {
	once_sync_mode mode;
	uint32_t interval_ms; /* ONCE_SYNC_INTERVAL period; 0: 10 ms */
	uint64_t buffer_max;  /* bytes queued at most; raised to ONCE_LOG_BUFFER_MIN */
	uint64_t prealloc_step; /* 0: ONCE_WAL_PREALLOC_STEP; else rounded up to 4 KiB */
	/* Where failures are told (wal/fail.h): the log's first failure is
	 * one ERROR line, from the thread that met it (the writer's
	 * included); NULL: silent.  Must outlive the log. */
	struct once__fail *fail;
};

/*
 * Creates segment file `path` (relative to dirfd, or AT_FDCWD; it must not
 * exist; mode 0600) with a header for store uid, segment number and first
 * sequence number, written and synced (and the directory synced) before
 * this returns, and starts the writer thread (every signal blocked).
 * Returns ONCE_OK | ONCE_IO (the file could not be made) | ONCE_NOMEM.
 */
once_status once__log_create(const char *path, const unsigned char uid[16], uint64_t number,
                             uint64_t first_seq, const struct once__log_config *cfg,
                             struct once__log **out, int dirfd);

/* Queues a record; *seq receives its sequence number.  Waits only while
 * the buffer holds buffer_max bytes (the disk is that far behind).
 * ONCE_OK | ONCE_IO (the log has failed, or is closing) | ONCE_NOMEM |
 * ONCE_INVALID (len too large). */
once_status once__log_append(struct once__log *log, uint8_t type, const void *payload, uint32_t len,
                             uint64_t *seq);

/* Waits until record seq is as durable as the sync mode promises.
 * ONCE_OK | ONCE_IO (this flush or an earlier one failed) | ONCE_INVALID
 * (seq was never appended). */
once_status once__log_commit(struct once__log *log, uint64_t seq);

/* *upto receives the last record that is done (every record <= it is; the
 * first sequence number - 1 when none).  ONCE_OK | ONCE_IO (the log has
 * failed: no record above *upto will ever be done).  Never blocks. */
once_status once__log_position(struct once__log *log, uint64_t *upto);

/* The next sequence number an append will get. */
uint64_t once__log_next_seq(struct once__log *log);

/* Most event descriptors one log keeps (one per consumer). */
#define ONCE_LOG_EVENT_FDS 256

/* A new eventfd the writer makes readable whenever the position advances
 * or the log fails, readable at once; one per consumer (a read clears only
 * its own); closed by once__log_close.  -1 with errno (EMFILE past
 * ONCE_LOG_EVENT_FDS) when it cannot be made. */
int once__log_event_fd(struct once__log *log);
/* Clears fd's readiness (one non-blocking read); false when fd is not one
 * of this log's descriptors. */
bool once__log_event_clear(struct once__log *log, int fd);

/*
 * Makes everything appended so far durable in the current segment, then
 * continues in a new segment file `path` (number `number`) whose first
 * record will be *first_seq.  ONCE_OK | ONCE_IO: either the old segment
 * could not be flushed (the log has failed, sticky) or the new file could
 * not be made (the log goes on in the old segment; once__log_rotate_error
 * names the call, and nothing is logged: the caller's line says it).
 */
once_status once__log_rotate(struct once__log *log, const char *path, uint64_t number,
                             uint64_t *first_seq);

/*
 * Writes everything appended so far and makes it durable with one
 * fdatasync, whatever the sync mode (checkpoints: wal/snapshot.c).
 * ONCE_OK | ONCE_IO (the log has failed, sticky).
 */
once_status once__log_sync_all(struct once__log *log);

/* The call that made the last once__log_rotate fail to create its new
 * segment (err 0: none). */
void once__log_rotate_error(struct once__log *log, struct once__syserr *out);

/* True once a write or sync has failed (sticky). */
bool once__log_failed(struct once__log *log);

void once__log_stats(struct once__log *log, struct once__log_stats *out);

/* Stops the writer (it writes what is queued first), then writes and
 * syncs everything appended whatever the mode, wakes every committer
 * (done or failed), closes the file and frees the log.  ONCE_OK when every
 * record appended is durable; ONCE_IO otherwise. */
once_status once__log_close(struct once__log *log);

#endif /* ONCE_WAL_LOG_H */
