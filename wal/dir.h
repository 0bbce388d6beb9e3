/*
 * wal/dir.h - the data directory: created 0700 with a FORMAT file that
 * names the format version and the store's uid, and locked with flock by
 * the one store that has it open (SPEC 1.4, 1.5).
 *
 * Status: built and tested standalone (tests/test_wal_dir.c); once_open
 * does not use it yet (persistence is not wired in, see README).
 *
 * FORMAT file (mode 0600), one line:
 *   "oncestore <version> <32 hex digits of the uid>\n"
 * written to FORMAT.tmp, fsynced, renamed over FORMAT, and the directory
 * fsynced, so a crash leaves either no FORMAT or a whole one.
 */
#ifndef ONCE_WAL_DIR_H
#define ONCE_WAL_DIR_H

#include <stdbool.h>
#include <stddef.h>

#include "oncestore.h"

struct once__dir {
	int fd;                 /* the directory, open; flock'd exclusively */
	unsigned char uid[16];  /* the store's identity, from FORMAT */
};

/*
 * Opens (creating if absent: mode 0700, a fresh random uid) and locks the
 * data directory at path.  Returns ONCE_OK | ONCE_LOCKED (another store,
 * in this process or another, holds it) | ONCE_CORRUPT (FORMAT missing from
 * a non-empty directory, unreadable, or of another format version) |
 * ONCE_IO (the directory could not be made or opened).
 */
once_status once__dir_open(const char *path, struct once__dir *out);

/* Parses FORMAT's text ("oncestore <version> <32 hex>\n", exactly this
 * version) into the uid; false when it is anything else. */
bool once__dir_parse_format(const char *text, size_t len, unsigned char uid[16]);

/* Unlocks and closes. */
void once__dir_close(struct once__dir *d);

#endif /* ONCE_WAL_DIR_H */
