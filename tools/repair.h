/*
 * tools/repair.h - what the files of `oncestore repair` share (only
 * repair*.c include it; the other commands see cli_repair in cli.h).
 *
 * The command's files, one job each:
 *   repair.c             the command line: options, the verify-and-fix
 *                        loop, the closing summary (and the design)
 *   repair_lost.c        what a fix drops: the records after the damage
 *                        that still pass their checksums, and the spends
 *                        and revocations among them kept for re-assertion
 *   repair_report.c      printing what is dropped and re-asserted
 *   repair_files.c       replacing a file whole, listing log segments,
 *                        checking a log segment's header
 *   repair_log.c         the fix for a damaged log segment
 *   repair_snapshot.c    the fix for a damaged snapshot
 *   repair_checkpoint.c  the fixes for CHECKPOINT
 *   repair_format.c      --format: rebuilding a lost or damaged FORMAT
 *   repair_uid.c         what the files' headers say of their store (for
 *                        --format)
 */
#ifndef ONCE_TOOLS_REPAIR_H
#define ONCE_TOOLS_REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"
#include "format.h"
#include "recover.h"

/* What one fix did: changed the files, only printed what it would change
 * (no --yes), or failed (the reason printed). */
enum fix_result { FIX_DONE, FIX_PLANNED, FIX_FAILED };

struct repair_opts {
	bool yes;
	bool truncate_only;
};

static inline uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- what is dropped, and what is re-asserted (repair_lost.c) ---- */

/* Spends and revocations among the dropped records: their keys are listed
 * with --truncate-only, so the operator can act on them. */
#define NOTABLE_MAX 20

struct notable {
	uint8_t type;
	char key[100];
};

struct lost {
	uint64_t bytes;   /* dropped: from the damage to the last non-zero byte */
	uint64_t zeros;   /* zero bytes after those: preallocated space, nothing in them is lost */
	uint64_t records; /* that still pass their checksums */
	uint64_t by_type[ONCE_WAL_TYPE_END];
	struct notable notable[NOTABLE_MAX];
	uint64_t notables; /* found; the first NOTABLE_MAX are kept */
};

/* Records to write again after the kept ones (payloads copied). */
struct reassert {
	struct {
		uint8_t type;
		uint32_t len;
		unsigned char *payload;
	} *v;
	size_t n, cap;
	bool oom;
	uint64_t by_type[ONCE_WAL_TYPE_END];
};

void reassert_free(struct reassert *ra);
/* Bytes the re-asserted records take. */
size_t reassert_size(const struct reassert *ra);
/* Encodes them at out, numbered from seq on; returns the bytes written. */
size_t reassert_encode(const struct reassert *ra, unsigned char *out, uint64_t salt, uint64_t seq);

/* Counts into l the records at 8-aligned offsets of p[from, len) that pass
 * the validity rule with sequence numbers from min_seq on, increasing, and
 * the bytes and trailing zeros; the spends and revocations among them are
 * noted, and (ra not NULL) kept for re-assertion. */
void count_lost(const unsigned char *p, size_t from, size_t len, uint64_t salt, uint64_t min_seq,
                struct lost *l, struct reassert *ra);
void add_lost(struct lost *sum, const struct lost *l);

/* ---- printing them (repair_report.c) ---- */

/* "N records that still pass their checksums (code_put 2, code_take 1)" */
void print_records(const struct lost *l);
/* "; and N bytes preallocated (...)" when there are zeros */
void print_zeros(const struct lost *l);
/* With --truncate-only: the keys of dropped spends and revocations. */
void print_notable(const struct lost *l);
/* "  re-assert N spends and revocations ... (sequence numbers A..B): ..." */
void print_reassert(const struct reassert *ra, uint64_t first_seq);

/* ---- files (repair_files.c) ---- */

/* name.tmp (0600), fsync, rename over name, fsync the directory. */
bool replace_file(const struct cli_dir *d, const char *name, const unsigned char *p, size_t len);
/* Log segment numbers in the directory above `above`, sorted. */
bool later_segments(const struct cli_dir *d, uint64_t above, uint64_t **out, size_t *n);
/* Decodes a log segment's header and checks it belongs here. */
bool log_header(const struct cli_dir *d, const unsigned char *p, size_t len, uint64_t number,
                struct once__wal_segment *seg);

/* ---- the fixes, one per kind of damaged file ---- */

/* repair_log.c: cut at the damage, drop what follows the gap. */
enum fix_result fix_log(const struct cli_dir *d, const struct once__recovery *r,
                        const struct repair_opts *o, struct lost *total, uint64_t *reasserted);
/* repair_snapshot.c: the valid prefix under a new end mark. */
enum fix_result fix_snapshot(const struct cli_dir *d, const struct once__recovery *r,
                             const struct repair_opts *o, struct lost *total, uint64_t *reasserted);

/* repair_snapshot.c: a snapshot's longest valid prefix, as recovery reads it. */
struct snap_scan {
	bool header_ok;
	uint64_t salt;
	size_t keep_end;   /* just past the last record kept */
	uint64_t kept;     /* records kept (end mark not counted) */
	bool ended;        /* a valid end mark with the right count follows them */
	size_t end_at;     /* where the scan stopped (the end mark or the damage) */
	uint8_t last_type; /* of the last record kept */
	size_t last_off;
};
void snap_scan(const struct cli_dir *d, const unsigned char *p, size_t len, uint64_t start, uint32_t part,
               struct snap_scan *sc);

/* repair_checkpoint.c: a CHECKPOINT naming a start the log never reaches
 * (the covered segments go), and one that does not parse (rewritten from
 * the one checkpoint whose snapshots are present). */
enum fix_result fix_short_log(const struct cli_dir *d, const struct once__recovery *r, bool yes);
enum fix_result fix_checkpoint(const struct cli_dir *d, bool yes);

/* ---- --format (repair_format.c, repair_uid.c) ---- */

/* `repair --format [--yes] DIR`; returns the exit code. */
int repair_format(const char *path, bool yes);

/* What one data file's header says of the store. */
struct header_uid {
	char name[256];
	bool intact; /* magic, length and checksum right: the fields below are read */
	uint32_t version;
	unsigned char uid[16];
};

/* The headers of every log segment and snapshot in the directory. */
struct uid_survey {
	struct header_uid *f; /* by name */
	size_t n;
	size_t intact; /* of them, with an intact header */
	bool agree;    /* every intact header names the same uid and version... */
	unsigned char uid[16]; /* ... these (when intact > 0) */
	uint32_t version;
};

/* Reads the headers; false (the reason printed) when the directory or a
 * file could not be read. */
bool survey_uids(const struct cli_dir *d, struct uid_survey *sv);
void survey_uids_free(struct uid_survey *sv);
/* On stderr, one line per uid and version found: the files naming them. */
void print_uid_groups(const struct uid_survey *sv);
/* The names of the files whose intact header names uid and version (uid
 * NULL: of those whose header is damaged), a few, then "and N more". */
void print_store_files(FILE *out, const struct uid_survey *sv, const unsigned char uid[16], uint32_t version);
/* 32 lowercase hex digits, as FORMAT writes a uid. */
void uid_hex(char out[33], const unsigned char uid[16]);

#endif /* ONCE_TOOLS_REPAIR_H */
