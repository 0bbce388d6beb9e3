/*
 * wal/dir.h - the data directory: created 0700 with a FORMAT file that
 * names the format version and the store's uid, and locked with flock by
 * the one store that has it open (SPEC 1.4, 1.5).
 *
 * FORMAT file (mode 0600), one line:
 *   "oncestore <version> <32 hex digits of the uid>\n"
 * written to FORMAT.tmp, fsynced, renamed over FORMAT, and the directory
 * fsynced, so a crash leaves either no FORMAT or a whole one.
 *
 * Power loss: every open fsyncs the data directory's parent, so the
 * directory's own name is durable before anything in it is acknowledged
 * (skipped only when the parent cannot be opened for lack of read
 * permission, as PostgreSQL's fsync_fname does);
 * every entry made, renamed or removed inside it is made durable with
 * fsync of the directory (once__io_sync_dir), never fdatasync.
 */
#ifndef ONCE_WAL_DIR_H
#define ONCE_WAL_DIR_H

#include <stdbool.h>
#include <stddef.h>

#include "oncestore.h"

struct once__dir {
	int fd;                 /* the directory, open; flock'd exclusively
	                         * (not by a read-only store: once__dir_open_ro) */
	unsigned char uid[16];  /* the store's identity, from FORMAT */
};

/*
 * Opens (creating if absent: mode 0700, a fresh random uid) and locks the
 * data directory at path.  Returns ONCE_OK | ONCE_LOCKED (another store,
 * in this process or another, holds it) | ONCE_CORRUPT (FORMAT missing from
 * a non-empty directory, not a regular file, unreadable, or of another
 * format version) | ONCE_IO (the directory could not be made, opened or
 * synced, its parent included).
 */
once_status once__dir_open(const char *path, struct once__dir *out);

/* The same, but while another store holds the directory, retries its lock
 * every 5 ms for up to wait_ms (options.lock_wait_ms) before answering
 * ONCE_LOCKED: a new process can take over from one that is closing.
 * Every failure is one ERROR line through opt's log callback (NULL:
 * silent) saying which case it is: the parent missing, a plain file, no
 * permission, FORMAT missing beside store files or damaged (the byte and
 * what is wrong), a foreign directory.  ONCE_IO leaves errno set to the
 * failing call's; an empty path is ONCE_INVALID (errno EINVAL). */
once_status once__dir_open_wait(const char *path, uint32_t wait_ms, const once_options *opt,
                                struct once__dir *out);

/*
 * Opens the data directory at path for options.read_only: never creates,
 * locks, writes or syncs anything.  ONCE_OK | ONCE_NOT_FOUND (an empty
 * directory, or one whose FORMAT is still being written: *out is open, its
 * uid unset; the store is empty) | ONCE_CORRUPT (as once__dir_open, with
 * the same line through opt's log: FORMAT missing, damaged or foreign) |
 * ONCE_IO (errno set: ENOENT when path does not exist; no line).
 */
once_status once__dir_open_ro(const char *path, const once_options *opt, struct once__dir *out);

/* Parses FORMAT's text ("oncestore <version> <32 hex>\n", exactly this
 * version) into the uid; false when it is anything else. */
bool once__dir_parse_format(const char *text, size_t len, unsigned char uid[16]);

/* Writes FORMAT naming this format version and uid atomically (FORMAT.tmp,
 * fsync, rename over FORMAT, fsync the directory).  ONCE_OK | ONCE_IO.
 * For a new directory, and for `oncestore repair --format`, which rebuilds
 * a lost or damaged FORMAT from the files' headers. */
once_status once__dir_write_format(int dir_fd, const unsigned char uid[16]);

/* Unlocks and closes. */
void once__dir_close(struct once__dir *d);

#endif /* ONCE_WAL_DIR_H */
