/*
 * wal/fail.h - what the embedded engine says when a system call on its
 * data directory fails: one line through options.log naming the call, the
 * file (its name in the data directory), the byte offset and
 * strerror(errno); counts of failed writes and syncs; and the failure that
 * stopped the log (sticky until reopen: wal/log.h), for once_stats.
 *
 * One line per failure, not per refusal: the log's first failure is one
 * ERROR line (wal/log.c); the writes refused after it answer ONCE_IO
 * silently, and once_stats carries the failure.  A step that fails
 * without failing the log (a checkpoint, a preallocation) is one line of
 * its own, written by whoever decides what the failure means.
 *
 * Lines are written from the thread that met the failure (the log's
 * writer thread included), so options.log must be thread-safe (it is
 * documented so in include/oncestore.h).
 */
#ifndef ONCE_WAL_FAIL_H
#define ONCE_WAL_FAIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "oncestore.h"

/* One failed call: filled where it failed, reported by whoever decides
 * what it means.  err 0: nothing failed. */
struct once__syserr {
	const char *call;  /* "pwrite", "fdatasync", "fsync", "open", "rename", ... */
	char file[64];     /* its name in the data directory (or a path) */
	uint64_t offset;   /* the byte where it applies (writes: where the
	                    * failed pwrite began; syncs: the file's length) */
	int err;           /* errno */
};

/* Captures errno (call it right after the failure). */
void once__syserr_set(struct once__syserr *e, const char *call, const char *file, uint64_t offset);

struct once__fail {
	const once_options *opt;   /* options.log (once__logf); NULL: silent */
	int64_t (*now)(void *ctx); /* the store clock, for failure_at; NULL: 0 */
	void *now_ctx;
	/* Failed calls outside the log (checkpoints, directory syncs); the
	 * log counts its own (wal/log.h, struct once__log_stats). */
	_Atomic uint64_t write_failures; /* pwrite, write */
	_Atomic uint64_t sync_failures;  /* fdatasync, fsync */
};

void once__fail_init(struct once__fail *f, const once_options *opt, int64_t (*now)(void *ctx),
                     void *now_ctx);

/* The store clock (0 without one). */
int64_t once__fail_now(const struct once__fail *f);

/* True when e's call is a write (pwrite, write) or a sync (fdatasync,
 * fsync): what the failure counters count. */
bool once__syserr_is_write(const struct once__syserr *e);
bool once__syserr_is_sync(const struct once__syserr *e);

/* Writes one line at `level` (f may be NULL: nothing happens):
 *     "<what>: <call> <file> at offset <offset>: <strerror><tail>"
 * errno is left as it was. */
void once__fail_line(const struct once__fail *f, once_log_level level, const char *what,
                     const struct once__syserr *e, const char *tail);

/* The same, and counts e in f's counters. */
void once__fail_note(struct once__fail *f, once_log_level level, const char *what,
                     const struct once__syserr *e, const char *tail);

#endif /* ONCE_WAL_FAIL_H */
