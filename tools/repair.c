/*
 * tools/repair.c - `oncestore repair [--yes] [--truncate-only] DIR`:
 * explicit truncation at the first damage, with a report of what is
 * dropped (SPEC 1.3: only an explicit repair truncates).
 *
 * Design.  Repair takes the directory's lock exclusively, then loops: run
 * the library's verification (once__recover with no store, exactly what
 * verify and once_open use), and if it names damage, fix that one file and
 * verify again, until the directory verifies clean.  Each fix:
 *
 *   log segment, damage at offset O (a bad record, a record that does not
 *   parse, a torn tail in a segment that is not the newest): the segment
 *   is cut at O (the bad record and everything after it), and every later
 *   segment is removed, because its records follow the gap - unless the
 *   next segment starts exactly at the sequence number the cut one now
 *   ends at (a torn tail left in an older segment: nothing is missing, so
 *   the later ones stay).  A damaged segment header is rewritten when the
 *   first record checks out (its checksum seed is made of the store uid,
 *   segment number and kind, all known, and it names the first sequence
 *   number); otherwise, or when the damage is a gap before the segment,
 *   the whole segment goes.
 *
 *   snapshot: rewritten with a fresh header, its valid prefix of records
 *   copied unchanged and a new SNAPSHOT_END counting them.  When the
 *   damage is not just the end mark, the last kept record is dropped as
 *   well if it is an insert (code_put, refresh_insert, nonce_issue): the
 *   lost record after it may have been that entry's take / consume /
 *   accept, and an entry that is unknown fails closed where one brought
 *   back unspent would not.  A missing snapshot is not repaired.
 *
 *   Re-assertion (unless --truncate-only).  Among the records dropped
 *   after the damage, those that only ever make a credential more spent
 *   or more revoked - code_take, code_finalize, refresh_consume,
 *   nonce_accept, replay_record, access_revoke, refresh_revoke, a revoked
 *   family image, and a refresh_rotate as the consume of its parent (its
 *   child is dropped) - pass their checksums, so they are authentic; they
 *   are written again after the kept records, renumbered.  Replay is
 *   idempotent and monotone (core/restore.c): applied without the records
 *   that preceded them they spend or revoke what is there and do nothing
 *   to what is not.  So truncation never un-spends or un-revokes a
 *   credential whose record survived (SPEC 1.2); only the damaged record
 *   itself is unknown.
 *
 *   Every file is replaced whole: written to <name>.tmp, fsynced, renamed
 *   over the damaged one, the directory fsynced.  The damaged file first,
 *   then the later segments newest first: a crash in between leaves a gap
 *   that the next repair finds and finishes (re-asserting again, which is
 *   harmless).
 *
 *   CHECKPOINT that does not parse: rewritten (once__checkpoint_write)
 *   only when the snapshots of exactly one start S are present, numbered
 *   0..P-1 without a gap, each one clean, and a log segment starting at S
 *   exists (the checkpoint's rotation made it); otherwise repair refuses
 *   and tells the operator what it found.  CHECKPOINT naming a start the
 *   log never reaches: the log segments are wholly covered by the
 *   snapshots, so they are removed (no record is lost).
 *
 * What is dropped is reported per file: the offset, the bytes, and the
 * records after the damage that still pass their checksums, by type.
 * Without --yes nothing changes: repair prints the first fix it would
 * make and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "codec.h"
#include "format.h"
#include "io.h"
#include "recover.h"

static const char repair_usage[] = "oncestore repair [--yes] [--truncate-only] DIR";
static const char repair_help[] =
	"Makes a damaged data directory open again by explicit truncation at the\n"
	"first damage, and reports what it drops.  Without --yes it changes\n"
	"nothing: it prints the first fix it would make and exits 1.  With --yes\n"
	"it fixes, verifies again, and repeats until DIR verifies clean.  It takes\n"
	"the directory's lock: a running store (ONCE_LOCKED) is never repaired.\n"
	"\n"
	"  --yes             make the changes\n"
	"  --truncate-only   do not re-assert dropped spends and revocations (below)\n"
	"\n"
	"Damage in a log segment at offset O: the segment is cut at O (the bad\n"
	"  record and everything after it; the whole segment when the damage is a\n"
	"  gap before it) and every later segment is removed, since its records\n"
	"  follow the gap (unless the next segment starts exactly where the cut\n"
	"  one now ends).  A damaged segment header is rewritten when the first\n"
	"  record checks out under the segment's checksum seed (store uid, segment\n"
	"  number: all known), else the whole segment goes.\n"
	"Damage in a snapshot: it is rewritten with a fresh header, its valid\n"
	"  prefix of records and a new end mark.  If the last kept record is an\n"
	"  insert (code_put, refresh_insert, nonce_issue) it is dropped too: the\n"
	"  lost record after it may have spent that entry, and an unknown entry\n"
	"  fails closed.  A missing snapshot is not repaired.\n"
	"Re-assertion: of the records dropped after the damage, those that only\n"
	"  spend or revoke (code_take, code_finalize, refresh_consume, nonce_accept,\n"
	"  replay_record, access_revoke, refresh_revoke, revoked family images, and\n"
	"  refresh_rotate as the consume of its parent) still pass their checksums,\n"
	"  so they are written again after the kept records: truncation does not\n"
	"  make a spent or revoked credential usable again.  Only the damaged\n"
	"  record itself is unknown.  --truncate-only leaves them out and lists\n"
	"  their keys instead.\n"
	"A CHECKPOINT that does not parse: rewritten only if the snapshots of\n"
	"  exactly one start S exist (parts 0..P-1, each clean) and a log segment\n"
	"  starting at S exists; otherwise repair refuses (exit 1) and says what it\n"
	"  found: restore CHECKPOINT from a backup.  (If the store had more shards\n"
	"  than snapshot files are present, those shards' snapshots are lost.)\n"
	"A CHECKPOINT whose start the log never reaches: the log segments, wholly\n"
	"  covered by the snapshots, are removed (no record is lost).\n"
	"\n"
	"Files are replaced whole (tmp file, fsync, rename, fsync the directory).\n"
	"The report gives, for each file, the offset, the bytes dropped and the\n"
	"records dropped that still pass their checksums, by type.  A torn tail\n"
	"of the newest segment is not damage (the next open cuts it).  Zero bytes\n"
	"after a segment's last record are preallocated space, not damage: they\n"
	"are reported as \"N bytes preallocated\" and never counted as dropped.\n"
	"\n"
	"Exit status: 0 clean (repaired, or nothing to repair); 1 dry run with\n"
	"something to repair, damage repair cannot fix, locked, or I/O failure;\n"
	"2 usage error.\n";

enum fix_result { FIX_DONE, FIX_PLANNED, FIX_FAILED };

struct repair_opts {
	bool yes;
	bool truncate_only;
};

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- what is dropped, and what is re-asserted ---- */

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

static void reassert_free(struct reassert *ra)
{
	for (size_t i = 0; i < ra->n; i++)
		free(ra->v[i].payload);
	free(ra->v);
	memset(ra, 0, sizeof *ra);
}

static void reassert_push(struct reassert *ra, uint8_t type, const void *payload, uint32_t len)
{
	if (ra->oom)
		return;
	if (ra->n == ra->cap) {
		size_t cap = ra->cap ? 2 * ra->cap : 64;
		void *g = realloc(ra->v, cap * sizeof *ra->v);
		if (g == NULL) {
			ra->oom = true;
			return;
		}
		ra->v = g;
		ra->cap = cap;
	}
	unsigned char *copy = malloc(len ? len : 1);
	if (copy == NULL) {
		ra->oom = true;
		return;
	}
	memcpy(copy, payload, len);
	ra->v[ra->n].type = type;
	ra->v[ra->n].len = len;
	ra->v[ra->n].payload = copy;
	ra->n++;
	ra->by_type[type]++;
}

/* Bytes the re-asserted records take. */
static size_t reassert_size(const struct reassert *ra)
{
	size_t n = 0;
	for (size_t i = 0; i < ra->n; i++)
		n += once__wal_record_size(ra->v[i].len);
	return n;
}

/* Encodes them at out, numbered from seq on; returns the bytes written.
 * The repaired file is written whole and synced before anything reads it,
 * so every record carries its own number as its synced-below mark: damage
 * before a later record is corruption (wal/format.h). */
static size_t reassert_encode(const struct reassert *ra, unsigned char *out, uint64_t salt, uint64_t seq)
{
	size_t o = 0;
	for (size_t i = 0; i < ra->n; i++) {
		once__wal_record_encode(out + o, salt, ra->v[i].type, seq + i, seq + i, ra->v[i].payload,
		                        ra->v[i].len);
		o += once__wal_record_size(ra->v[i].len);
	}
	return o;
}

/* A key as printable text: bytes outside printable ASCII as \xNN. */
static void printable(char *out, size_t cap, const unsigned char *key, size_t len)
{
	size_t o = 0, i;
	for (i = 0; i < len && o + 5 < cap; i++) {
		if (key[i] >= 0x20 && key[i] < 0x7f && key[i] != '\\' && key[i] != '"')
			out[o++] = (char)key[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", key[i]);
	}
	if (i < len && o >= 3) /* cut short */
		memcpy(out + o - 3, "...", 3);
	out[o] = '\0';
}

/* A dropped record that spends or revokes: listed, and (ra not NULL)
 * kept for re-assertion.  A rotation becomes the consume of its parent. */
static void note_record(struct lost *l, struct reassert *ra, const struct once__wal_record *r,
                        struct once__scratch *sc)
{
	struct once__wal_op op;
	if (!once__wal_decode(r->type, r->payload, r->len, &op, sc))
		return;
	switch (r->type) {
	case ONCE_WAL_CODE_TAKE:
	case ONCE_WAL_CODE_FINALIZE:
	case ONCE_WAL_REFRESH_CONSUME:
	case ONCE_WAL_NONCE_ACCEPT:
	case ONCE_WAL_REPLAY_RECORD:
	case ONCE_WAL_ACCESS_REVOKE:
	case ONCE_WAL_REFRESH_REVOKE:
		break;
	case ONCE_WAL_ACCESS_FAMILY:
	case ONCE_WAL_REFRESH_FAMILY:
		if (!op.revoked)
			return;
		break;
	case ONCE_WAL_REFRESH_ROTATE:
		break;
	default:
		return;
	}
	if (l->notables < NOTABLE_MAX) {
		struct notable *n = &l->notable[l->notables];
		n->type = r->type;
		printable(n->key, sizeof n->key, op.key, op.key_len);
	}
	l->notables++;
	if (ra == NULL)
		return;
	if (r->type != ONCE_WAL_REFRESH_ROTATE) {
		reassert_push(ra, r->type, r->payload, r->len);
		return;
	}
	/* REFRESH_CONSUME: key (u16 length + bytes), consumed_at (i64). */
	unsigned char buf[2 + UINT16_MAX + 8];
	size_t n = 0;
	buf[n++] = (unsigned char)(op.key_len & 0xff);
	buf[n++] = (unsigned char)(op.key_len >> 8);
	memcpy(buf + n, op.key, op.key_len);
	n += op.key_len;
	for (int i = 0; i < 8; i++)
		buf[n++] = (unsigned char)((uint64_t)op.at >> (8 * i));
	reassert_push(ra, ONCE_WAL_REFRESH_CONSUME, buf, (uint32_t)n);
}

/* Records at 8-aligned offsets of p[from, len) that pass the validity
 * rule with sequence numbers from min_seq on, increasing. */
static void count_lost(const unsigned char *p, size_t from, size_t len, uint64_t salt, uint64_t min_seq,
                       struct lost *l, struct reassert *ra)
{
	if (from >= len)
		return;
	/* Zero bytes that end the file are preallocated space the log never
	 * wrote (wal/format.h): cut with the damage, but nothing is lost in
	 * them, and no record starts there (a record's type is never 0). */
	size_t end = once__wal_zero_tail(p, from, len);
	l->bytes += end - from;
	l->zeros += len - end;
	struct once__scratch sc = {0};
	size_t o = (from + 7) & ~(size_t)7;
	while (o + ONCE_WAL_RECORD_HEADER <= len) {
		uint64_t seq = le64(p + o + 16);
		struct once__wal_record r;
		if (seq >= min_seq && once__wal_record_check(p + o, len - o, salt, seq, &r) == ONCE_WAL_VALID) {
			l->records++;
			l->by_type[r.type]++;
			note_record(l, ra, &r, &sc);
			min_seq = seq + 1;
			o += r.size;
		} else {
			o += 8;
		}
	}
	once__scratch_free(&sc);
}

static void add_lost(struct lost *sum, const struct lost *l)
{
	sum->bytes += l->bytes;
	sum->zeros += l->zeros;
	sum->records += l->records;
	for (int t = 0; t < ONCE_WAL_TYPE_END; t++)
		sum->by_type[t] += l->by_type[t];
	sum->notables += l->notables;
}

static void print_types(const uint64_t by_type[ONCE_WAL_TYPE_END])
{
	bool first = true;
	for (int t = 0; t < ONCE_WAL_TYPE_END; t++) {
		if (by_type[t] == 0)
			continue;
		char buf[16];
		printf("%s%s %" PRIu64, first ? "" : ", ", cli_type_name((unsigned)t, buf), by_type[t]);
		first = false;
	}
}

/* "N records that still pass their checksums (code_put 2, code_take 1)" */
static void print_records(const struct lost *l)
{
	printf("%" PRIu64 " record%s that still pass%s their checksums", l->records,
	       l->records == 1 ? "" : "s", l->records == 1 ? "es" : "");
	if (l->records == 0)
		return;
	printf(" (");
	print_types(l->by_type);
	printf(")");
}

/* ", and N bytes preallocated (zeros: nothing lost)" */
static void print_zeros(const struct lost *l)
{
	if (l->zeros > 0)
		printf("; and %" PRIu64 " bytes preallocated (zeros after them: unused space, nothing lost)",
		       l->zeros);
}

/* With --truncate-only: the keys of dropped spends and revocations. */
static void print_notable(const struct lost *l)
{
	for (uint64_t i = 0; i < l->notables && i < NOTABLE_MAX; i++) {
		char buf[16];
		uint8_t t = l->notable[i].type;
		printf("    dropped %s of \"%s\": %s\n", cli_type_name(t, buf), l->notable[i].key,
		       t == ONCE_WAL_REPLAY_RECORD ? "this jti is no longer recorded"
		       : t == ONCE_WAL_ACCESS_REVOKE || t == ONCE_WAL_REFRESH_REVOKE ||
		               t == ONCE_WAL_ACCESS_FAMILY || t == ONCE_WAL_REFRESH_FAMILY
		           ? "tokens of this family that remain read as live: revoke it again"
		           : "if the store still holds this key, it reads as unspent");
	}
	if (l->notables > NOTABLE_MAX)
		printf("    ... and %" PRIu64 " more spends or revocations\n", l->notables - NOTABLE_MAX);
}

static void print_reassert(const struct reassert *ra, uint64_t first_seq)
{
	if (ra->n == 0)
		return;
	printf("  re-assert %zu spend%s and revocation%s found intact after the damage, as new records "
	       "(sequence numbers %" PRIu64 "..%" PRIu64 "): ",
	       ra->n, ra->n == 1 ? "" : "s", ra->n == 1 ? "" : "s", first_seq, first_seq + ra->n - 1);
	print_types(ra->by_type);
	printf("\n");
}

/* ---- writing a file whole ---- */

/* name.tmp (0600), fsync, rename over name, fsync the directory. */
static bool replace_file(const struct cli_dir *d, const char *name, const unsigned char *p, size_t len)
{
	char tmp[ONCE_FILE_NAME_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	int fd = once__io_create_tmp(d->fd, tmp);
	bool ok = fd >= 0 && once__io_write_all(fd, p, len, 0) && fsync(fd) == 0;
	int err = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		err = errno;
	}
	if (ok && renameat(d->fd, tmp, d->fd, name) != 0) {
		ok = false;
		err = errno;
	}
	if (!ok) {
		unlinkat(d->fd, tmp, 0);
		cli_err("repair", "%s/%s: rewriting: %s", d->path, name, strerror(err));
		return false;
	}
	return cli_fsync_dir("repair", d);
}

/* ---- log segments ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Log segment numbers in the directory above `above`, sorted. */
static bool later_segments(const struct cli_dir *d, uint64_t above, uint64_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct cli_files fs;
	if (cli_list(d->fd, &fs) != ONCE_OK)
		return false;
	*out = malloc((fs.n + 1) * sizeof **out);
	if (*out == NULL) {
		cli_files_free(&fs);
		return false;
	}
	for (size_t i = 0; i < fs.n; i++) {
		uint64_t num;
		if (once__parse_log_name(fs.f[i].name, &num) && num > above)
			(*out)[(*n)++] = num;
	}
	cli_files_free(&fs);
	qsort(*out, *n, sizeof **out, cmp_u64);
	return true;
}

/* Decodes a log segment's header and checks it belongs here. */
static bool log_header(const struct cli_dir *d, const unsigned char *p, size_t len, uint64_t number,
                       struct once__wal_segment *seg)
{
	return once__wal_segment_decode(p, len, seg) && seg->kind == ONCE_WAL_KIND_LOG &&
	       seg->number == number && memcmp(seg->uid, d->uid, 16) == 0;
}

/* Writes a fresh header over a damaged one (nothing else changes). */
static enum fix_result rebuild_log_header(const struct cli_dir *d, const char *name,
                                          struct once__wal_segment *seg, uint64_t first,
                                          unsigned char *p, size_t len, bool yes)
{
	seg->first_seq = first;
	printf("  rewrite the header of %s/%s (bytes 0..63): its records check out under this store's "
	       "and segment's checksum seed, the first is sequence %" PRIu64 "; no record is dropped\n",
	       d->path, name, first);
	if (!yes)
		return FIX_PLANNED;
	once__wal_segment_encode(p, seg);
	return replace_file(d, name, p, len) ? FIX_DONE : FIX_FAILED;
}

static enum fix_result fix_log(const struct cli_dir *d, const struct once__recovery *r,
                               const struct repair_opts *o, struct lost *total, uint64_t *reasserted)
{
	const char *cmd = "repair";
	uint64_t number;
	if (!once__parse_log_name(r->bad_file, &number)) {
		cli_err(cmd, "%s/%s: not a log segment name", d->path, r->bad_file);
		return FIX_FAILED;
	}
	unsigned char *p;
	size_t len;
	if (cli_read_file(d->fd, r->bad_file, &p, &len) != ONCE_OK) {
		cli_err(cmd, "%s/%s: %s", d->path, r->bad_file, strerror(errno));
		return FIX_FAILED;
	}
	struct once__wal_segment seg;
	bool header_ok = log_header(d, p, len, number, &seg);
	if (!header_ok) {
		memset(&seg, 0, sizeof seg);
		memcpy(seg.uid, d->uid, 16);
		seg.number = number;
		seg.kind = ONCE_WAL_KIND_LOG;
	}
	uint64_t salt = once__wal_salt(&seg);
	if (!header_ok && len > ONCE_WAL_SEGMENT_HEADER + ONCE_WAL_RECORD_HEADER) {
		/* Every header field is known but the first sequence number, and
		 * the first record tells it: its checksum is seeded with the
		 * salt of this store, segment number and kind (not the header's
		 * bytes), so a record that checks out is this segment's. */
		struct once__wal_record rec;
		uint64_t first = le64(p + ONCE_WAL_SEGMENT_HEADER + 16);
		if (first > 0 && once__wal_record_check(p + ONCE_WAL_SEGMENT_HEADER,
		                                        len - ONCE_WAL_SEGMENT_HEADER, salt, first,
		                                        &rec) == ONCE_WAL_VALID) {
			enum fix_result fr = rebuild_log_header(d, r->bad_file, &seg, first, p, len, o->yes);
			free(p);
			return fr;
		}
	}
	uint64_t cut = r->bad_at;
	bool whole = !header_ok || cut < ONCE_WAL_SEGMENT_HEADER || cut > len;
	/* The records kept before the cut, and the sequence number after them. */
	uint64_t next = 0, kept = 0;
	bool next_known = false;
	if (!whole) {
		size_t off = ONCE_WAL_SEGMENT_HEADER;
		uint64_t seq = seg.first_seq;
		struct once__wal_record rec;
		while (off < cut &&
		       once__wal_record_check(p + off, len - off, salt, seq, &rec) == ONCE_WAL_VALID)
			off += rec.size, seq++, kept++;
		next = seq;
		next_known = off == cut;
	}
	/* A whole segment dropped is replaced by one that starts where the
	 * log before it ended (recovery's next_seq when it stopped here). */
	uint64_t first_new = whole ? r->next_seq : next;

	uint64_t *later;
	size_t nlater;
	if (!later_segments(d, number, &later, &nlater)) {
		cli_err(cmd, "%s: could not list the directory", d->path);
		free(p);
		return FIX_FAILED;
	}
	/* Later segments are kept only if the next one continues exactly
	 * where this one now ends: then no record is missing. */
	bool keep_later = false;
	if (nlater > 0 && !whole && next_known) {
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, later[0]);
		unsigned char *q;
		size_t qlen;
		struct once__wal_segment nseg;
		if (cli_read_file(d->fd, name, &q, &qlen) == ONCE_OK) {
			keep_later = log_header(d, q, qlen, later[0], &nseg) && nseg.first_seq == next;
			free(q);
		}
	}
	/* Nothing can be appended before kept later segments. */
	struct reassert ra = {0};
	struct reassert *rap = o->truncate_only || keep_later ? NULL : &ra;

	struct lost here = {0};
	count_lost(p, whole ? ONCE_WAL_SEGMENT_HEADER : (size_t)cut, len, salt, whole ? 0 : next, &here, rap);
	if (whole) {
		here.bytes = once__wal_zero_tail(p, 0, len);
		here.zeros = len - here.bytes;
	}
	if (whole)
		printf("  %s %s/%s (%" PRIu64 " bytes): %s; dropped: ", rap ? "rewrite" : "remove", d->path,
		       r->bad_file, here.bytes,
		       header_ok ? "its records follow the gap" : "its header is damaged");
	else
		printf("  truncate %s/%s at offset %" PRIu64 " (keeping %" PRIu64 " records, %s%" PRIu64
		       "): drop %" PRIu64 " bytes from the damaged record on: ",
		       d->path, r->bad_file, cut, kept, kept ? "sequence numbers up to " : "next sequence ",
		       kept ? next - 1 : next, here.bytes);
	print_records(&here);
	print_zeros(&here);
	printf("\n");
	if (rap == NULL)
		print_notable(&here);
	add_lost(total, &here);

	if (keep_later)
		printf("  keep the %zu later segment(s): the next one starts at sequence %" PRIu64
		       ", where the truncated one ends\n",
		       nlater, next);
	uint64_t empties = 0, first_empty = 0, last_empty = 0;
	for (size_t i = 0; i < nlater && !keep_later; i++) {
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, later[i]);
		unsigned char *q;
		size_t qlen;
		struct lost l = {0};
		if (cli_read_file(d->fd, name, &q, &qlen) == ONCE_OK) {
			struct once__wal_segment s2;
			if (log_header(d, q, qlen, later[i], &s2))
				count_lost(q, ONCE_WAL_SEGMENT_HEADER, qlen, once__wal_salt(&s2), 0, &l, rap);
			l.bytes = once__wal_zero_tail(q, 0, qlen);
			l.zeros = qlen - l.bytes;
			free(q);
		}
		add_lost(total, &l);
		/* A header, then nothing or only preallocated zeros. */
		if (l.records == 0 && l.bytes <= ONCE_WAL_SEGMENT_HEADER) {
			if (empties++ == 0)
				first_empty = later[i];
			last_empty = later[i];
			continue;
		}
		printf("  remove %s/%s (%" PRIu64 " bytes): its records follow the gap; dropped: ", d->path,
		       name, l.bytes);
		print_records(&l);
		print_zeros(&l);
		printf("\n");
		if (rap == NULL)
			print_notable(&l);
	}
	if (empties > 0) {
		char a[ONCE_FILE_NAME_MAX], b[ONCE_FILE_NAME_MAX];
		once__log_name(a, first_empty);
		once__log_name(b, last_empty);
		printf("  remove %" PRIu64 " later segment(s) holding no records (a header only), %s .. %s\n",
		       empties, a, b);
	}
	print_reassert(&ra, first_new);
	if (whole && ra.n > 0)
		printf("  (%s/%s is written anew: a header starting at sequence %" PRIu64
		       ", then those records)\n",
		       d->path, r->bad_file, first_new);

	bool ok = !ra.oom;
	if (ra.oom)
		cli_err(cmd, "out of memory");
	if (!o->yes || !ok) {
		free(p);
		free(later);
		reassert_free(&ra);
		return ok ? FIX_PLANNED : FIX_FAILED;
	}
	/* The damaged segment first (replaced whole), then the later ones,
	 * newest first: a crash in between leaves a gap the next repair
	 * finds, never a re-assertion lost with nothing to show for it. */
	size_t keep_bytes = whole ? ONCE_WAL_SEGMENT_HEADER : (size_t)cut;
	if (whole && ra.n == 0) {
		if (unlinkat(d->fd, r->bad_file, 0) != 0) {
			cli_err(cmd, "%s/%s: unlink: %s", d->path, r->bad_file, strerror(errno));
			ok = false;
		}
		ok = ok && cli_fsync_dir(cmd, d);
	} else {
		size_t out_len = keep_bytes + reassert_size(&ra);
		unsigned char *out = malloc(out_len);
		if (out == NULL) {
			cli_err(cmd, "out of memory");
			ok = false;
		} else {
			if (whole) {
				seg.first_seq = first_new;
				once__wal_segment_encode(out, &seg);
			} else {
				memcpy(out, p, keep_bytes);
			}
			reassert_encode(&ra, out + keep_bytes, salt, first_new);
			ok = replace_file(d, r->bad_file, out, out_len);
			free(out);
		}
	}
	*reasserted += ra.n;
	for (size_t i = nlater; i-- > 0 && !keep_later && ok;) {
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, later[i]);
		if (unlinkat(d->fd, name, 0) != 0 && errno != ENOENT) {
			cli_err(cmd, "%s/%s: unlink: %s", d->path, name, strerror(errno));
			ok = false;
		}
	}
	ok = ok && cli_fsync_dir(cmd, d);
	free(p);
	free(later);
	reassert_free(&ra);
	return ok ? FIX_DONE : FIX_FAILED;
}

/* ---- snapshots ---- */

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

/* Reads a snapshot's longest valid prefix, as recovery reads it. */
static void snap_scan(const struct cli_dir *d, const unsigned char *p, size_t len, uint64_t start,
                      uint32_t part, struct snap_scan *sc)
{
	memset(sc, 0, sizeof *sc);
	struct once__wal_segment seg = {.number = start, .first_seq = 1, .kind = ONCE_WAL_KIND_SNAPSHOT,
	                                .part = part};
	memcpy(seg.uid, d->uid, 16);
	struct once__wal_segment got;
	sc->header_ok = once__wal_segment_decode(p, len, &got) && got.kind == ONCE_WAL_KIND_SNAPSHOT &&
	                got.number == start && got.part == part && got.first_seq == 1 &&
	                memcmp(got.uid, d->uid, 16) == 0;
	/* The records' checksums are seeded by uid, start and shard, all known
	 * from the file name: a damaged header does not hide the records. */
	sc->salt = once__wal_salt(&seg);
	struct once__scratch scratch = {0};
	size_t off = ONCE_WAL_SEGMENT_HEADER;
	uint64_t seq = 1;
	while (off < len) {
		struct once__wal_record rec;
		if (once__wal_record_check(p + off, len - off, sc->salt, seq, &rec) != ONCE_WAL_VALID)
			break;
		struct once__wal_op op;
		bool parses = once__wal_decode(rec.type, rec.payload, rec.len, &op, &scratch);
		if (rec.type == ONCE_WAL_SNAPSHOT_END) {
			sc->ended = parses && op.count == seq - 1;
			break;
		}
		if (!parses)
			break;
		sc->last_type = rec.type;
		sc->last_off = off;
		off += rec.size;
		seq++;
	}
	once__scratch_free(&scratch);
	sc->keep_end = off < len ? off : len;
	sc->end_at = sc->keep_end;
	sc->kept = seq - 1;
}

static enum fix_result fix_snapshot(const struct cli_dir *d, const struct once__recovery *r,
                                    const struct repair_opts *o, struct lost *total,
                                    uint64_t *reasserted)
{
	const char *cmd = "repair";
	uint64_t start;
	uint32_t part;
	if (!once__parse_snap_name(r->bad_file, &start, &part)) {
		cli_err(cmd, "%s/%s: not a snapshot name", d->path, r->bad_file);
		return FIX_FAILED;
	}
	unsigned char *p;
	size_t len;
	if (cli_read_file(d->fd, r->bad_file, &p, &len) != ONCE_OK) {
		if (errno == ENOENT)
			cli_err(cmd, "%s/%s: the snapshot CHECKPOINT names is missing: repair cannot rebuild "
			        "it (restore it from a backup); nothing changed",
			        d->path, r->bad_file);
		else
			cli_err(cmd, "%s/%s: %s", d->path, r->bad_file, strerror(errno));
		return FIX_FAILED;
	}
	struct snap_scan sc;
	snap_scan(d, p, len, start, part, &sc);
	/* Only the end mark is damaged (or bytes follow a good one): every
	 * entry's records are there.  A damaged end mark is the last 32 bytes,
	 * with its type and length still readable. */
	size_t end_size = once__wal_record_size(8);
	bool only_end = sc.ended ||
	                (sc.keep_end + end_size == len && p[sc.keep_end + 12] == ONCE_WAL_SNAPSHOT_END &&
	                 le32(p + sc.keep_end + 8) == 8);
	bool drop_insert = !only_end && sc.kept > 0 &&
	                   (sc.last_type == ONCE_WAL_CODE_PUT || sc.last_type == ONCE_WAL_REFRESH_INSERT ||
	                    sc.last_type == ONCE_WAL_NONCE_ISSUE);
	uint8_t dropped_type = sc.last_type;
	if (drop_insert) {
		sc.keep_end = sc.last_off;
		sc.kept--;
	}
	struct reassert ra = {0};
	struct reassert *rap = o->truncate_only ? NULL : &ra;
	struct lost l = {0};
	count_lost(p, sc.keep_end, len, sc.salt, sc.kept + 1, &l, rap);
	/* The old end mark is not an entry's record: count it apart. */
	uint64_t end_marks = l.by_type[ONCE_WAL_SNAPSHOT_END];
	l.records -= end_marks;
	l.by_type[ONCE_WAL_SNAPSHOT_END] = 0;
	uint64_t count = sc.kept + ra.n;

	printf("  rewrite %s/%s: keep its first %" PRIu64 " records (bytes %u..%zu)%s, drop %" PRIu64
	       " bytes from offset %zu: ",
	       d->path, r->bad_file, sc.kept, ONCE_WAL_SEGMENT_HEADER, sc.keep_end,
	       sc.header_ok ? "" : " under a new header", l.bytes, sc.keep_end);
	print_records(&l);
	printf("%s\n", end_marks ? " and the old end mark" : "");
	if (rap == NULL)
		print_notable(&l);
	if (drop_insert) {
		char buf[16];
		printf("  (the last record before the damage, a %s, is dropped too: the lost record after it "
		       "may have spent that entry, and an unknown entry fails closed)\n",
		       cli_type_name(dropped_type, buf));
	}
	print_reassert(&ra, sc.kept + 1);
	printf("  write a new end mark counting %" PRIu64 "\n", count);
	add_lost(total, &l);
	if (!o->yes || ra.oom) {
		if (ra.oom)
			cli_err(cmd, "out of memory");
		free(p);
		reassert_free(&ra);
		return ra.oom ? FIX_FAILED : FIX_PLANNED;
	}

	size_t out_len = sc.keep_end + reassert_size(&ra) + end_size;
	unsigned char *out = malloc(out_len);
	if (out == NULL) {
		free(p);
		reassert_free(&ra);
		cli_err(cmd, "out of memory");
		return FIX_FAILED;
	}
	struct once__wal_segment seg = {.number = start, .first_seq = 1, .kind = ONCE_WAL_KIND_SNAPSHOT,
	                                .part = part};
	memcpy(seg.uid, d->uid, 16);
	once__wal_segment_encode(out, &seg);
	memcpy(out + ONCE_WAL_SEGMENT_HEADER, p + ONCE_WAL_SEGMENT_HEADER,
	       sc.keep_end - ONCE_WAL_SEGMENT_HEADER);
	free(p);
	size_t at = sc.keep_end + reassert_encode(&ra, out + sc.keep_end, sc.salt, sc.kept + 1);
	*reasserted += ra.n;
	reassert_free(&ra);
	struct once__buf payload;
	once__buf_init(&payload);
	once__enc_u64(&payload, count);
	once__wal_record_encode(out + at, sc.salt, ONCE_WAL_SNAPSHOT_END, count + 1, 0, payload.p,
	                        (uint32_t)payload.len);
	once__buf_free(&payload);
	bool ok = replace_file(d, r->bad_file, out, out_len);
	free(out);
	return ok ? FIX_DONE : FIX_FAILED;
}

/* ---- CHECKPOINT ---- */

/* Removes every log segment: the CHECKPOINT's start lies past the log's
 * end, so the snapshots hold everything the segments do. */
static enum fix_result fix_short_log(const struct cli_dir *d, const struct once__recovery *r, bool yes)
{
	uint64_t *segs;
	size_t n;
	if (!later_segments(d, 0, &segs, &n)) {
		cli_err("repair", "%s: could not list the directory", d->path);
		return FIX_FAILED;
	}
	char seq[CLI_START_SEQ_MAX];
	printf("  the log ends at sequence %" PRIu64 ", before the checkpoint's start %s"
	       ": the snapshots hold all it has; remove its %zu segment(s) (no record is lost)\n",
	       r->next_seq ? r->next_seq - 1 : 0, cli_start_seq(seq, r->checkpoint_start), n);
	bool ok = true;
	for (size_t i = n; i-- > 0;) {
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, segs[i]);
		printf("  remove %s/%s\n", d->path, name);
		if (yes && unlinkat(d->fd, name, 0) != 0 && errno != ENOENT) {
			cli_err("repair", "%s/%s: unlink: %s", d->path, name, strerror(errno));
			ok = false;
		}
	}
	free(segs);
	if (!yes)
		return FIX_PLANNED;
	return ok && cli_fsync_dir("repair", d) ? FIX_DONE : FIX_FAILED;
}

static enum fix_result fix_checkpoint(const struct cli_dir *d, bool yes)
{
	const char *cmd = "repair";
	struct cli_files fs;
	if (cli_list(d->fd, &fs) != ONCE_OK) {
		cli_err(cmd, "%s: could not list the directory", d->path);
		return FIX_FAILED;
	}
	uint64_t start = 0, num;
	uint32_t parts = 0, part, max_part = 0;
	bool one_start = true, any = false, log_at_start = false;
	for (size_t i = 0; i < fs.n; i++) {
		uint64_t s;
		if (once__parse_snap_name(fs.f[i].name, &s, &part)) {
			if (any && s != start)
				one_start = false;
			start = s;
			any = true;
			parts++;
			if (part > max_part)
				max_part = part;
		}
	}
	bool ok = any && one_start && parts == max_part + 1;
	/* Each snapshot clean, and the checkpoint's segment (starting at S). */
	for (size_t i = 0; ok && i < fs.n; i++) {
		unsigned char *p;
		size_t len;
		uint64_t s;
		if (once__parse_snap_name(fs.f[i].name, &s, &part)) {
			if (cli_read_file(d->fd, fs.f[i].name, &p, &len) != ONCE_OK) {
				ok = false;
				break;
			}
			struct snap_scan sc;
			snap_scan(d, p, len, s, part, &sc);
			ok = sc.header_ok && sc.ended && sc.end_at + once__wal_record_size(8) == len;
			if (!ok)
				printf("  %s/%s is not clean (damage at offset %zu)\n", d->path, fs.f[i].name,
				       sc.end_at);
			free(p);
		} else if (once__parse_log_name(fs.f[i].name, &num)) {
			if (cli_read_file(d->fd, fs.f[i].name, &p, &len) == ONCE_OK) {
				struct once__wal_segment seg;
				if (log_header(d, p, len, num, &seg) && seg.first_seq == start)
					log_at_start = true;
				free(p);
			}
		}
	}
	cli_files_free(&fs);
	if (!any) {
		cli_err(cmd, "%s/CHECKPOINT: no snapshot files are present: cannot tell which checkpoint "
		        "it committed; restore CHECKPOINT from a backup (nothing changed)", d->path);
		return FIX_FAILED;
	}
	if (!one_start || parts != max_part + 1) {
		cli_err(cmd, "%s/CHECKPOINT: the snapshot files present do not name one checkpoint "
		        "(several starts, or shards missing): restore CHECKPOINT from a backup (nothing "
		        "changed)", d->path);
		return FIX_FAILED;
	}
	if (!ok) {
		cli_err(cmd, "%s/CHECKPOINT: a snapshot of start %016" PRIx64 " is damaged too: restore "
		        "CHECKPOINT from a backup (nothing changed)", d->path, start);
		return FIX_FAILED;
	}
	if (!log_at_start) {
		char seq[CLI_START_SEQ_MAX];
		cli_err(cmd, "%s/CHECKPOINT: no log segment starts at sequence %s, where the "
		        "snapshots' checkpoint began: restore CHECKPOINT from a backup (nothing changed)",
		        d->path, cli_start_seq(seq, start));
		return FIX_FAILED;
	}
	char seq[CLI_START_SEQ_MAX];
	printf("  rewrite %s/CHECKPOINT naming start sequence %s and %" PRIu32
	       " snapshot(s): the only checkpoint whose snapshots are present, all clean\n",
	       d->path, cli_start_seq(seq, start), parts);
	if (!yes)
		return FIX_PLANNED;
	once_status st = once__checkpoint_write(d->fd, start, parts);
	if (st != ONCE_OK) {
		cli_err(cmd, "%s/CHECKPOINT: writing: ONCE_%s", d->path, once_status_name(st));
		return FIX_FAILED;
	}
	return FIX_DONE;
}

/* ---- the command ---- */

int cli_repair(int argc, char **argv)
{
	const char *path;
	static const char *const flags[] = {"--yes", "--truncate-only", NULL};
	bool set[2] = {false, false};
	int rc = cli_parse(argc, argv, repair_usage, repair_help, flags, set, &path);
	if (rc >= 0)
		return rc;
	struct repair_opts o = {.yes = set[0], .truncate_only = set[1]};
	bool yes = o.yes;
	struct cli_dir d;
	if (!cli_dir_open("repair", path, true, &d))
		return CLI_FAIL;
	struct lost total = {0};
	uint64_t reasserted = 0;
	unsigned fixes = 0;
	char last_file[ONCE_FILE_NAME_MAX] = "";
	uint64_t last_at = UINT64_MAX;
	const char *last_why = NULL;
	rc = CLI_FAIL;
	for (;;) {
		struct once__recovery r;
		once_status st = once__recover(d.fd, d.uid, NULL, &r);
		if (st == ONCE_OK) {
			if (fixes == 0) {
				printf("%s: clean, nothing to repair\n", path);
			} else {
				printf("%s: repaired (%u fix%s); it verifies clean now.  ", path, fixes,
				       fixes == 1 ? "" : "es");
				if (total.bytes == 0)
					printf("Nothing was dropped");
				else
					printf("Dropped in all: %" PRIu64 " bytes, ", total.bytes);
				if (total.bytes > 0)
					print_records(&total);
				print_zeros(&total);
				if (reasserted > 0)
					printf("; %" PRIu64 " spends and revocations among them re-asserted",
					       reasserted);
				else if (total.notables > 0)
					printf("; %" PRIu64 " of them spent or revoked something (listed above)",
					       total.notables);
				printf(".\n");
			}
			if (r.torn)
				printf("note: %s/%s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
				       " (never acknowledged): the next open cuts it\n",
				       path, r.torn_file, r.torn_bytes, r.torn_at);
			if (r.zeros_total > 0)
				printf("note: %s: %" PRIu64 " bytes preallocated (zeros after the last record) in %"
				       PRIu64 " segment(s): unused space, not damage; nothing to drop\n",
				       path, r.zeros_total, r.zeros_segments);
			rc = CLI_OK;
			break;
		}
		if (st != ONCE_CORRUPT) {
			cli_err("repair", "%s: could not read the files: ONCE_%s: %s", path, once_status_name(st),
			        once_strerror(st));
			break;
		}
		if (strcmp(r.bad_file, last_file) == 0 && r.bad_at == last_at && r.why == last_why) {
			cli_err("repair", "%s/%s: offset %" PRIu64 ": %s: still there after repairing it; "
			        "giving up", path, r.bad_file, r.bad_at, r.why);
			break;
		}
		snprintf(last_file, sizeof last_file, "%s", r.bad_file);
		last_at = r.bad_at;
		last_why = r.why;
		printf("damage: %s/%s: offset %" PRIu64 ": %s\n", path, r.bad_file, r.bad_at, r.why);
		enum fix_result fr;
		if (strcmp(r.bad_file, ONCE_CHECKPOINT_FILE) == 0)
			/* It parsed (has_checkpoint) and names a start the log
			 * never reaches, or it does not parse. */
			fr = r.has_checkpoint ? fix_short_log(&d, &r, yes) : fix_checkpoint(&d, yes);
		else if (r.bad_is_snapshot)
			fr = fix_snapshot(&d, &r, &o, &total, &reasserted);
		else
			fr = fix_log(&d, &r, &o, &total, &reasserted);
		if (fr == FIX_FAILED)
			break;
		if (fr == FIX_PLANNED) {
			printf("dry run: nothing changed.  Run `oncestore repair --yes%s %s` to make this "
			       "change (repair then verifies again and fixes any later damage too).\n",
			       o.truncate_only ? " --truncate-only" : "", path);
			break;
		}
		fixes++;
	}
	cli_dir_close(&d);
	return rc;
}
