/*
 * wal/log.h - appending records to one log segment, with group commit.
 *
 * The store keeps one log (wal/persist.c), rotated to a new segment file at
 * every checkpoint.
 *
 * Writers append a record (it gets the next sequence number and waits in
 * memory), then commit it.  A commit returns when the record is
 *   - on stable storage (ONCE_SYNC_ALWAYS: write + fdatasync), or
 *   - in the kernel (ONCE_SYNC_INTERVAL, ONCE_SYNC_NONE: write; a process
 *     crash cannot lose it, a power failure can until the next sync).
 * Group commit: the first committer that finds no flush under way becomes
 * the leader; it takes everything appended so far, writes it with one
 * pwrite and syncs once, while later committers wait for it (or lead the
 * next flush).  So concurrent writers share one fdatasync.
 *
 * Failure is sticky.  If a write or a sync fails, the log answers ONCE_IO
 * to that commit and to every later append and commit: after a failed
 * fdatasync the kernel may have dropped the dirty pages and marked them
 * clean, so retrying and believing a later success would lose
 * acknowledged records (PostgreSQL's "fsyncgate").  Only reopening (and
 * recovering from what is on disk) clears it.
 */
#ifndef ONCE_WAL_LOG_H
#define ONCE_WAL_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "oncestore.h"

struct once__log;

struct once__log_stats {
	uint64_t records;     /* appended */
	uint64_t bytes;       /* written, segment header included */
	uint64_t flushes;     /* leader writes */
	uint64_t syncs;       /* fdatasync calls */
	uint64_t synced_records; /* records made durable by those syncs */
	uint64_t sync_ns_total;
	uint64_t sync_ns_max;
};

/*
 * Creates segment file `path` (relative to dirfd, or AT_FDCWD; it must not
 * exist; mode 0600) with a header for store uid, segment number and first
 * sequence number, written and synced (and the directory synced) before
 * this returns.  interval_ms is the ONCE_SYNC_INTERVAL period.
 * Returns ONCE_OK | ONCE_IO (the file could not be made) | ONCE_NOMEM.
 */
once_status once__log_create(const char *path, const unsigned char uid[16], uint64_t number,
                             uint64_t first_seq, once_sync_mode mode, uint32_t interval_ms,
                             struct once__log **out, int dirfd);

/* Queues a record; *seq receives its sequence number.  ONCE_OK | ONCE_IO
 * (the log has failed) | ONCE_NOMEM | ONCE_INVALID (len too large). */
once_status once__log_append(struct once__log *log, uint8_t type, const void *payload, uint32_t len,
                             uint64_t *seq);

/* Waits until record seq is as durable as the sync mode promises.
 * ONCE_OK | ONCE_IO (this flush or an earlier one failed) | ONCE_INVALID
 * (seq was never appended). */
once_status once__log_commit(struct once__log *log, uint64_t seq);

/*
 * Makes everything appended so far durable in the current segment, then
 * continues in a new segment file `path` (number `number`) whose first
 * record will be *first_seq.  ONCE_OK | ONCE_IO: either the old segment
 * could not be flushed (the log has failed, sticky) or the new file could
 * not be made (the log goes on in the old segment).
 */
once_status once__log_rotate(struct once__log *log, const char *path, uint64_t number,
                             uint64_t *first_seq);

/*
 * Writes everything appended so far and makes it durable with one
 * fdatasync, whatever the sync mode (checkpoints: wal/snapshot.c).
 * ONCE_OK | ONCE_IO (the log has failed, sticky).
 */
once_status once__log_sync_all(struct once__log *log);

/* True once a write or sync has failed (sticky). */
bool once__log_failed(struct once__log *log);

void once__log_stats(struct once__log *log, struct once__log_stats *out);

/* Flushes what is queued (as a commit would), stops the interval thread,
 * closes the file and frees the log.  Returns the flush's status. */
once_status once__log_close(struct once__log *log);

#endif /* ONCE_WAL_LOG_H */
