/*
 * wal/snapshot.h - one shard's snapshot file (rules in wal/snapshot.c).
 */
#ifndef ONCE_WAL_SNAPSHOT_H
#define ONCE_WAL_SNAPSHOT_H

#include <stdint.h>

#include "fail.h"
#include "oncestore.h"

/* Writes snap-<start>-<parts>-<shard> (through a .tmp file, synced,
 * renamed; the directory is not synced here).  The caller guarantees the
 * name is not one of the committed checkpoint's (wal/recover.h).
 * *records: images written.  ONCE_OK | ONCE_IO (*e names the call, file
 * and offset; nothing logged: the checkpoint's one line says it) |
 * ONCE_NOMEM. */
once_status once__snapshot_write(once_store *s, int dirfd, const unsigned char uid[16], uint64_t start,
                                 uint32_t parts, uint32_t shard, uint64_t *records, uint64_t *bytes,
                                 struct once__syserr *e);

#endif /* ONCE_WAL_SNAPSHOT_H */
