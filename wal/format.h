/*
 * wal/format.h - the write-ahead log's on-disk format and its validity rule.
 *
 * All integers are little-endian.  A log is a sequence of segment files;
 * each segment is a 64-byte header followed by records, each record aligned
 * to 8 bytes so that no length field straddles an 8-byte boundary.  A
 * snapshot file (wal/snapshot.c) has the same header (kind 1) and the
 * same records, numbered from 1.
 *
 * Segment header (64 bytes)
 *   off len
 *     0   8  magic "ONCEWAL1"
 *     8   4  format version (ONCE_WAL_VERSION)
 *    12   4  header length (64)
 *    16  16  store uid: random at `init`, in every file of one data directory
 *    32   8  segment number (1, 2, ...); snapshots: the checkpoint's
 *            start sequence number
 *    40   8  sequence number of the segment's first record
 *    48   4  kind: 0 log segment, 1 snapshot
 *    52   4  part: the snapshot's shard index (0 for a log segment)
 *    56   8  XXH3-64 of bytes 0..55 (seed 0)
 *
 * Record (32-byte header + payload + zero padding to a multiple of 8)
 *   off len
 *     0   8  checksum: XXH3-64 of bytes 8 .. end of padding, seeded with the
 *            segment salt (XXH3-64 of store uid || number || kind || part)
 *     8   4  payload length L (at most ONCE_WAL_MAX_PAYLOAD)
 *    12   1  record type (enum once__wal_type, never 0)
 *    13   3  reserved, zero
 *    16   8  sequence number
 *    24   8  synced below D: when the write that carried this record was
 *            issued, every record numbered below D was already on stable
 *            storage (the log's durable mark; D <= the sequence number).
 *            Snapshot records carry 0.
 *    32   L  payload
 *  32+L   p  zero padding, p = (8 - L % 8) % 8
 *
 * Why XXH3-64 and not CRC32C: xxHash is already a dependency, it runs at a
 * few ns for these sizes (FIELD-NOTES B2, same order as CRC32C), and its 64
 * bits leave 2^-64 of random damage undetected instead of 2^-32.  CRC32C's
 * burst guarantees matter for long frames on a wire; a log record here is
 * tens to hundreds of bytes.  Seeding with the segment salt makes a record
 * copied from another segment or another store fail its checksum.
 *
 * Validity rule.  A record at offset o is valid iff
 *   - o + 32 <= file length, and L <= ONCE_WAL_MAX_PAYLOAD, and
 *     o + 32 + L + padding <= file length (checked before anything is
 *     allocated for the payload),
 *   - type != 0, reserved and padding bytes are zero, D <= its sequence
 *     number,
 *   - its sequence number is the previous record's plus one (the first
 *     record's is the header's first sequence number), and
 *   - its checksum matches.
 * A segment's records are its longest valid prefix; let q be the sequence
 * number the next record would have.  What follows the prefix is
 *   - nothing, or only zero bytes (any number, aligned or not): the
 *     segment is clean, and the zeros are unused preallocated space (see
 *     "Zero bytes" below), neither dropped nor damage;
 *   - a torn tail when every valid record found at an 8-aligned offset
 *     after it with a number >= q (there may be none) carries D <= q: the
 *     bytes from the damage on were written by writes that were never
 *     followed by a completed sync of record q, so none of them was ever
 *     acknowledged as durable (argument below); dropped;
 *   - corruption otherwise: some later record was written after record q
 *     was known to be on stable storage, so q's bytes were durable and
 *     are now damaged (or lost): the store refuses to open, naming the
 *     file and the offset.
 * A torn tail is tolerated only in the newest segment; in an older one it
 * is corruption too (the caller decides, it knows which segment is newest):
 * a segment is synced whole before the log moves on to the next one.
 *
 * Why D tells a power cut from corruption.  The log writes a group of
 * records with one pwrite and makes them durable with one fdatasync
 * (wal/log.c); its writer stamps every record of the group with the
 * durable mark D as it stood when the group was handed to the kernel.  A
 * power cut can leave any part of the writes issued since the last
 * completed fdatasync in any state: dropped, torn, or a subset of their
 * sectors (an earlier record damaged, a later one intact).  Those are
 * exactly the records written with D <= the first record they cover,
 * because D only moves past a record once a sync covering it has
 * returned, and every write issued after that carries the larger D.  So:
 *   - if the prefix ends at q and some later record carries D > q, record
 *     q was on stable storage before that record was written: q was
 *     damaged after it was durable, which no power cut does.  Corruption.
 *   - if every later record carries D <= q, no sync covering q had
 *     returned when any byte after the prefix was written.  Under
 *     ONCE_SYNC_ALWAYS groups are written and synced one after another,
 *     so every intact record after the damage belongs to q's own group.
 *     A call is acknowledged only after the sync of its group returns; if
 *     that sync never returned (a power cut), nothing from q on was
 *     acknowledged and dropping it is exact.  If it did return, the bytes
 *     were durable and went bad afterwards: media corruption inside the
 *     final group, with nothing written after it surviving.  No rule can
 *     tell that from a power cut (a checksum cannot say when bytes went
 *     bad); it is SPEC 1.3's torn final record widened to the final
 *     group.  Everything before the final group stays checked.
 * Under ONCE_SYNC_INTERVAL and ONCE_SYNC_NONE, D is the mark of the last
 * sync, so every write since it may be torn: a power cut there loses what
 * the mode allows to be lost, and the store still opens.
 *
 * Zero bytes.  The log preallocates a segment: before a group would pass
 * the file's end it extends the file with zero bytes (a few MiB at a
 * time), and groups then overwrite those zeros in place, so a segment may
 * end in any number of zero bytes after its last record, after a torn
 * group, or around the parts of a group a power cut let through.  Zeros
 * are never a record (type 0 is invalid), so the rule above reads them as
 * follows; the zero bytes that end the file start at the first offset Z
 * (>= the prefix's end) from which every byte is zero:
 *   - prefix, then only zeros (Z is the prefix's end): clean.  A group
 *     that a power cut lost whole over preallocated zeros leaves exactly
 *     this; it was never acknowledged, and nothing of it is there to drop.
 *     A segment that is all zeros after its header is clean and empty.
 *   - prefix, then non-zero bytes before Z (zeros before, among or after
 *     them): torn or corruption as above, decided by the valid records at
 *     8-aligned offsets below Z (a record's type byte is never zero, so
 *     none starts at or after Z).  The torn bytes are those from the
 *     prefix's end to Z; the zeros after Z are preallocated space.
 *   - synced records that went to zeros (media damage) with a later record
 *     carrying D > q: corruption, as for any damage; in an older segment
 *     the next segment's first sequence number shows the gap.
 * Zero bytes are not records, so they never hide damage from the rule:
 * every non-zero byte after the prefix is either part of a torn tail or
 * proof of corruption.  Scanning is linear: Z is found once, from the end,
 * a word at a time, and the search for later records stops at Z.
 */
#ifndef ONCE_WAL_FORMAT_H
#define ONCE_WAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ONCE_WAL_MAGIC "ONCEWAL1"
/* 2: records carry the synced-below mark D (version 1 had a 24-byte
 * record header without it). */
#define ONCE_WAL_VERSION 2u
#define ONCE_WAL_SEGMENT_HEADER 64u
#define ONCE_WAL_RECORD_HEADER 32u
/* Segment numbers, sequence numbers and checkpoint starts stay below this
 * (at ten million records a second that is 14,000 years): a file naming a
 * larger one is damaged or foreign, and nothing computed from one (the
 * next segment, the next record) can wrap around. */
#define ONCE_WAL_NUMBER_MAX (UINT64_C(1) << 62)

/* The largest record payload: a record of max_record_len (16 MiB at most)
 * plus keys and fixed fields. */
#define ONCE_WAL_MAX_PAYLOAD ((16u << 20) + (1u << 20))

/* One record per state change (SPEC section 3); a rotation is one record. */
enum once__wal_type {
	ONCE_WAL_CODE_PUT = 1,
	ONCE_WAL_CODE_TAKE,
	ONCE_WAL_CODE_FINALIZE,
	ONCE_WAL_ACCESS_RECORD,
	ONCE_WAL_ACCESS_REVOKE,
	ONCE_WAL_REFRESH_INSERT,
	ONCE_WAL_REFRESH_CONSUME,
	ONCE_WAL_REFRESH_SUCCESSOR,
	ONCE_WAL_REFRESH_ROTATE,
	ONCE_WAL_REFRESH_REVOKE,
	ONCE_WAL_NONCE_ISSUE,
	ONCE_WAL_NONCE_ACCEPT,
	ONCE_WAL_REPLAY_RECORD,
	/* Snapshot files only (wal/codec.h): family images and the end mark. */
	ONCE_WAL_ACCESS_FAMILY,
	ONCE_WAL_REFRESH_FAMILY,
	ONCE_WAL_SNAPSHOT_END,
	ONCE_WAL_TYPE_END /* one past the last type */
};

enum { ONCE_WAL_KIND_LOG = 0, ONCE_WAL_KIND_SNAPSHOT = 1 };

struct once__wal_segment {
	unsigned char uid[16];
	uint64_t number;
	uint64_t first_seq;
	uint32_t kind; /* ONCE_WAL_KIND_* */
	uint32_t part;
};

struct once__wal_record {
	uint8_t type;
	uint64_t seq;
	uint64_t synced_below; /* D */
	const unsigned char *payload; /* points into the checked buffer */
	uint32_t len;
	size_t size; /* header + payload + padding */
};

enum once__wal_verdict {
	ONCE_WAL_VALID,
	ONCE_WAL_SHORT, /* the bytes end inside the record (or its header) */
	ONCE_WAL_BAD    /* a field, the sequence or the checksum is wrong */
};

enum once__wal_tail {
	ONCE_WAL_CLEAN,   /* the valid records end at the end, or only zero bytes follow them */
	ONCE_WAL_TORN,    /* damage after them, and every valid record in it has D <= q */
	ONCE_WAL_CORRUPT  /* a record written after q was synced follows the damage */
};

struct once__wal_scan {
	size_t valid_end;   /* offset just past the last valid record */
	uint64_t records;   /* valid records */
	uint64_t next_seq;  /* the sequence number the next record must have */
	enum once__wal_tail tail;
	size_t bad_offset;  /* first damaged byte offset (TORN, CORRUPT) */
	size_t zero_from;   /* where the zero bytes that end the buffer begin (>= valid_end;
	                     * len when it does not end in zeros): [zero_from, len) is
	                     * preallocated space, [valid_end, zero_from) the damage */
};

void once__wal_segment_encode(unsigned char out[ONCE_WAL_SEGMENT_HEADER],
                              const struct once__wal_segment *seg);
/* Decodes and checks a segment header; false if any field or the checksum
 * is wrong, or fewer than 64 bytes are available. */
bool once__wal_segment_decode(const unsigned char *in, size_t avail, struct once__wal_segment *out);
/* The checksum seed of a segment's records. */
uint64_t once__wal_salt(const struct once__wal_segment *seg);

/* Bytes a record with this payload takes (header, payload, padding). */
size_t once__wal_record_size(uint32_t len);
/* Encodes a record into out (once__wal_record_size(len) bytes) with the
 * synced-below mark D. */
void once__wal_record_encode(void *out, uint64_t salt, uint8_t type, uint64_t seq, uint64_t synced_below,
                             const void *payload, uint32_t len);
/* The two halves of once__wal_record_encode, for the log: the record is
 * framed when it is appended (all but D and the checksum), and sealed by
 * whoever writes the group (the log's writer thread, or a rotation or
 * checkpoint holding the log's io lock), outside the appenders' lock, when
 * the group's D is known. */
void once__wal_record_frame(void *out, uint8_t type, uint64_t seq, const void *payload, uint32_t len);
/* Returns the record's size (header, payload, padding). */
size_t once__wal_record_seal(void *out, uint64_t salt, uint64_t synced_below);
/* Checks the record at buf (avail bytes to the end of the file) against
 * the validity rule, expecting sequence number expect_seq. */
enum once__wal_verdict once__wal_record_check(const void *buf, size_t avail, uint64_t salt,
                                              uint64_t expect_seq, struct once__wal_record *out);
/* Scans a segment's records (buf: the bytes after the segment header, len
 * of them) and classifies what follows the valid prefix. */
void once__wal_scan(const void *buf, size_t len, uint64_t salt, uint64_t first_seq,
                    struct once__wal_scan *out);
/* Classifies what follows a valid prefix already checked by the caller
 * (it ends at valid_end, the next record would be next_seq): fills every
 * field of out but records.  Does not check the prefix again. */
void once__wal_scan_tail(const void *buf, size_t len, uint64_t salt, size_t valid_end, uint64_t next_seq,
                         struct once__wal_scan *out);
/* The offset, at least `from`, from which buf[.. len) is all zero bytes
 * (len when buf[len - 1] is not zero). */
size_t once__wal_zero_tail(const void *buf, size_t from, size_t len);

#endif /* ONCE_WAL_FORMAT_H */
