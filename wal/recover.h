/*
 * wal/recover.h - reading a data directory back: the committed checkpoint's
 * snapshots, then the log after the checkpoint's start (SPEC section 3).
 *
 * Files of a data directory (all 0600, directory 0700):
 *   FORMAT                 format version and store uid (wal/dir.h)
 *   log-<16 hex>           log segments, numbered 1, 2, ... in file order
 *   snap-<16 hex>-<4 hex>-<4 hex>
 *                          snapshot of one shard: checkpoint start sequence
 *                          number S, part count P (the checkpoint's shard
 *                          count), shard index
 *   CHECKPOINT             the committed checkpoint, one line:
 *     "oncestore-checkpoint 2 <start, 16 hex> <parts> <XXH3-64 of the text
 *      before it, 16 hex>\n"
 *   *.tmp                  a write interrupted by a crash; removed at open
 * A checkpoint is committed by renaming CHECKPOINT into place.  CHECKPOINT
 * names exactly its P snapshot files, snap-S-P-0 .. snap-S-P-(P-1); every
 * other snap-* file (another start, another part count, a part number of
 * P or more, the other naming form) is a leftover of an interrupted
 * checkpoint or cleanup: recovery never reads it, the next open or
 * committed checkpoint removes it, `oncestore verify` lists it.  Log
 * segments that end before the start are leftovers too.
 *
 * Why S and P in the name (issue 13).  With snap-S-<shard> alone, two
 * checkpoints at the same start (nothing logged in between: two in a
 * row, or `oncestore checkpoint` with another shard count) wrote the same
 * names, and renaming a new snapshot over a committed one changed the
 * committed checkpoint before its successor was committed: a crash
 * between the renames left CHECKPOINT naming a mix of two checkpoints
 * (entries lost when the new one has more shards), and a checkpoint with
 * fewer shards left the higher parts behind unnamed.  Now a new
 * checkpoint's names equal the committed one's only when S and P are both
 * equal, and then the committed checkpoint already is that checkpoint (no
 * record numbered S or later exists, so it holds exactly the live state):
 * once__persist_checkpoint writes nothing then (wal/persist.c).  So no
 * checkpoint ever replaces or changes a file of the committed one.  The
 * names stay a function of what CHECKPOINT holds, so `oncestore repair`
 * can rebuild CHECKPOINT from the snapshot files present.
 *
 * The previous release's form (CHECKPOINT version 1, snapshots
 * snap-<16 hex>-<4 hex> named by start and shard only) is still read: a
 * version 1 CHECKPOINT names snap-S-0000 .. snap-S-(P-1).  Every new
 * checkpoint is written in version 2, so the first one after an upgrade
 * moves the directory over (the version 1 files are then leftovers and
 * removed).  A release before this one refuses a version 2 CHECKPOINT
 * ("does not parse", ONCE_CORRUPT) instead of misreading it.
 *
 * What is corruption (ONCE_CORRUPT, naming the file and byte offset):
 * a CHECKPOINT that does not parse or fails its checksum; a snapshot it
 * names that is missing, has a bad header, a bad record or no end mark; a
 * log segment with a bad header (unless it is the newest, at most 64 bytes
 * long: a crash while creating it), damaged bytes followed by a valid
 * record, a torn tail in any segment but the newest, or a gap in the
 * sequence numbers between segments or after the snapshot's start.  A torn
 * tail of the newest segment is a crash mid-append: its records were never
 * acknowledged, and recovery drops them.  Zero bytes that end a segment
 * (any segment) after its records are preallocated space: the segment is
 * clean (wal/format.h, "Zero bytes").  The newest segment with a header
 * that does not decode and nothing but zeros after its first 64 bytes is
 * a crash while it was created, like one of at most 64 bytes.
 */
#ifndef ONCE_WAL_RECOVER_H
#define ONCE_WAL_RECOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "fail.h"
#include "oncestore.h"

#define ONCE_CHECKPOINT_FILE "CHECKPOINT"
#define ONCE_FILE_NAME_MAX 64

struct once__recovery {
	/* The committed checkpoint, if any. */
	bool has_checkpoint;
	uint64_t checkpoint_start;
	uint32_t checkpoint_parts;
	uint32_t checkpoint_version; /* ONCE_CHECKPOINT_V1 or _V2: how its snapshots are named */
	/* What was read. */
	uint64_t snapshot_records, log_records, segments;
	uint64_t next_seq;     /* the sequence number the next record gets */
	uint64_t last_segment; /* highest segment number present (0: none) */
	uint64_t first_segment; /* the first one read: older ones are covered */
	/* The newest segment's torn tail, cut at open (never acknowledged):
	 * from torn_at, torn_bytes of damaged (non-zero) bytes; zero bytes
	 * after them are counted below, not here. */
	bool torn;
	char torn_file[ONCE_FILE_NAME_MAX];
	uint64_t torn_at, torn_bytes;
	/* Zero bytes that end log segments: preallocated space the log never
	 * wrote records into (wal/format.h, "Zero bytes").  Not records, not
	 * damage, not a torn tail: nothing in them is dropped.  Over every
	 * segment read, and for the newest one: its zeros run from zeros_at
	 * (after its records, or after its torn tail) to its end, zeros_bytes
	 * of them (0: it does not end in zeros).  Cutting them off loses
	 * nothing. */
	uint64_t zeros_total, zeros_segments;
	char zeros_file[ONCE_FILE_NAME_MAX];
	uint64_t zeros_at, zeros_bytes;
	/* How many times the files were read (once__recover_live reads again
	 * what a live store changed under it; once__recover: 1). */
	uint32_t attempts;
	/* The first damage, when the result is ONCE_CORRUPT. */
	char bad_file[ONCE_FILE_NAME_MAX];
	uint64_t bad_at;
	bool bad_is_snapshot;
	const char *why;
	/* The call that failed, when the result is ONCE_IO: its name ("open",
	 * "fstat", "mmap", "pread", "read", "opendir"), the file in the data
	 * directory, the offset and errno (wal/fail.h). */
	struct once__syserr io;
};

/*
 * Checks every file of the data directory open at dirfd (store uid `uid`)
 * and, when s is not NULL, applies snapshot and log records to s
 * (core/restore.c); with s NULL it only verifies (the `verify` tool).
 * Returns ONCE_OK | ONCE_CORRUPT (r names the file and offset) | ONCE_IO
 * (a file could not be read) | ONCE_NOMEM.
 */
once_status once__recover(int dirfd, const unsigned char uid[16], once_store *s,
                          struct once__recovery *r);

/*
 * once__recover for a directory that a live store may be writing while it
 * is read (options.read_only, `oncestore verify`): it takes no lock and
 * changes nothing, and
 *   - copies each file with read(2) instead of mapping it: the live store
 *     cuts a segment's preallocated zeros when it moves to the next one,
 *     and a mapped page past the new end would raise SIGBUS;
 *   - reads "up to the last complete record": what follows the last valid
 *     record of the newest segment (a record being appended, or a torn
 *     tail) is reported in r->torn as once__recover does, never cut;
 *   - when a reading fails in a way a live store explains (a file named
 *     by CHECKPOINT or listed a moment ago is gone; CHECKPOINT, a segment
 *     or a snapshot changed while it was read; damage in the newest
 *     segment), it discards that reading, applies nothing, and reads
 *     every file again from CHECKPOINT on: up to 10 readings in all, with
 *     naps of 1 to 32 ms between them (r->attempts says how many).  Damage
 *     that stays when nothing changes is ONCE_CORRUPT as for once__recover,
 *     after at most two more readings when it is in the newest segment.
 * The result is a state the directory held: the committed checkpoint of
 * one reading plus every complete record after its start.  Same statuses
 * as once__recover.
 */
once_status once__recover_live(int dirfd, const unsigned char uid[16], once_store *s,
                               struct once__recovery *r);

/* File names. */
void once__log_name(char out[ONCE_FILE_NAME_MAX], uint64_t number);
/* The snapshot of shard `part` of a checkpoint at `start` with `parts`
 * snapshots: snap-S-P-<part> (CHECKPOINT version 2, every new one). */
void once__snap_name(char out[ONCE_FILE_NAME_MAX], uint64_t start, uint32_t parts, uint32_t part);
/* The snapshot of shard `part` of the committed checkpoint, in the form
 * its CHECKPOINT version names (version 1: snap-S-<part>). */
void once__checkpoint_snap_name(char out[ONCE_FILE_NAME_MAX], uint32_t version, uint64_t start,
                                uint32_t parts, uint32_t part);
/* Parses a file name; false when it is not of that kind. */
bool once__parse_log_name(const char *name, uint64_t *number);
/* A snapshot name of the current form (snap-S-P-<part>): its start and
 * part; the part count is what the name's part count says.  (The form
 * `oncestore repair` rebuilds a CHECKPOINT from: once__checkpoint_write
 * names these files.) */
bool once__parse_snap_name(const char *name, uint64_t *start, uint32_t *part);
/* A snapshot name of either form: start, part count (0 for the version 1
 * form, which does not carry it) and part. */
bool once__parse_snap_file(const char *name, uint64_t *start, uint32_t *parts, uint32_t *part);
/* Whether file `name` is one of the snapshots the checkpoint (version,
 * start, parts) names: recovery reads exactly these. */
bool once__checkpoint_names(uint32_t version, uint64_t start, uint32_t parts, const char *name);

/* CHECKPOINT's versions: 1 names snap-S-<part> (the previous release,
 * read only), 2 names snap-S-P-<part> (written). */
#define ONCE_CHECKPOINT_V1 1u
#define ONCE_CHECKPOINT_V2 2u

/* Reads CHECKPOINT: ONCE_OK (*present false when there is none) |
 * ONCE_CORRUPT (*why, when not NULL, says what is wrong) | ONCE_IO (*io,
 * when not NULL, names the call: open, fstat or read).  *version (when
 * not NULL) receives its version. */
once_status once__checkpoint_read_version(int dirfd, bool *present, uint64_t *start, uint32_t *parts,
                                          uint32_t *version, const char **why, struct once__syserr *io);
/* As above without the version. */
once_status once__checkpoint_read(int dirfd, bool *present, uint64_t *start, uint32_t *parts,
                                  const char **why);
/* Writes CHECKPOINT (version 2) atomically (tmp, fsync, rename, fsync
 * directory). */
once_status once__checkpoint_write(int dirfd, uint64_t start, uint32_t parts);
/* The same; on ONCE_IO *e names the call that failed. */
once_status once__checkpoint_write_e(int dirfd, uint64_t start, uint32_t parts, struct once__syserr *e);

#endif /* ONCE_WAL_RECOVER_H */
