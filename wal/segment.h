/*
 * wal/segment.h - creating a log segment file.
 *
 * wal/log.c appends to the segment; this file makes it: the header (store
 * uid, segment number, first sequence number), written and synced, and the
 * directory entry synced, before the log appends a record to it.
 */
#ifndef ONCE_WAL_SEGMENT_H
#define ONCE_WAL_SEGMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "fail.h"

/* Creates segment file `path` (relative to dirfd, or AT_FDCWD; it must not
 * exist; mode 0600) with its header written and synced and the directory
 * synced.  *fd receives the file (open for writing), *salt the checksum
 * seed of its records.  false when any step fails: then nothing is left
 * behind, and *e (if not NULL) names the call that failed. */
bool once__segment_create(int dirfd, const char *path, const unsigned char uid[16], uint64_t number,
                          uint64_t first_seq, int *fd, uint64_t *salt, struct once__syserr *e);

#endif /* ONCE_WAL_SEGMENT_H */
