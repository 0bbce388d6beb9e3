/*
 * tools/repair_log.c - the fix for a damaged log segment (tools/repair.h;
 * the rules are in repair.c's design comment).
 *
 * In order: read the segment; if only its header is damaged and its first
 * record checks out, rewrite the header and stop there.  Otherwise find
 * the cut (the damage, or the whole segment when its header is bad or the
 * damage is a gap before it), decide whether the later segments continue
 * exactly where the cut one ends (then they stay), report what is dropped
 * from the damaged segment and from each later one, and with --yes write:
 * the damaged segment replaced whole first, then the later ones removed,
 * newest first.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repair.h"

/* A damaged log segment and what is decided about it. */
struct log_fix {
	const struct cli_dir *d;
	const char *name;
	uint64_t number;
	unsigned char *p; /* its bytes */
	size_t len;
	struct once__wal_segment seg; /* its header, or the one it should have */
	bool header_ok;
	uint64_t salt;
	uint64_t cut;       /* the damage's offset */
	bool whole;         /* the whole segment goes (bad header, or a gap before it) */
	uint64_t kept;      /* records kept before the cut */
	uint64_t next;      /* the sequence number after them */
	bool next_known;    /* they end exactly at the cut */
	uint64_t first_new; /* the first sequence number of what is written after them */
	uint64_t *later;    /* the segments after it, sorted */
	size_t nlater;
	bool keep_later;    /* the next one starts at `next`: nothing is missing */
};

static void log_fix_free(struct log_fix *f)
{
	free(f->p);
	free(f->later);
}

/* Reads the segment and its header; a damaged header is replaced by the
 * one it must have had, but for the first sequence number. */
static bool log_read(const struct cli_dir *d, const char *name, struct log_fix *f)
{
	memset(f, 0, sizeof *f);
	f->d = d;
	f->name = name;
	if (!once__parse_log_name(name, &f->number)) {
		cli_err("repair", "%s/%s: not a log segment name", d->path, name);
		return false;
	}
	if (cli_read_file(d->fd, name, &f->p, &f->len) != ONCE_OK) {
		cli_err("repair", "%s/%s: %s", d->path, name, strerror(errno));
		return false;
	}
	f->header_ok = log_header(d, f->p, f->len, f->number, &f->seg);
	if (!f->header_ok) {
		memset(&f->seg, 0, sizeof f->seg);
		memcpy(f->seg.uid, d->uid, 16);
		f->seg.number = f->number;
		f->seg.kind = ONCE_WAL_KIND_LOG;
	}
	f->salt = once__wal_salt(&f->seg);
	return true;
}

/* Every header field is known but the first sequence number, and the
 * first record tells it: its checksum is seeded with the salt of this
 * store, segment number and kind (not the header's bytes), so a record
 * that checks out is this segment's.  Sets *first when it does. */
static bool header_rebuildable(const struct log_fix *f, uint64_t *first)
{
	if (f->header_ok || f->len <= ONCE_WAL_SEGMENT_HEADER + ONCE_WAL_RECORD_HEADER)
		return false;
	struct once__wal_record rec;
	*first = le64(f->p + ONCE_WAL_SEGMENT_HEADER + 16);
	return *first > 0 && once__wal_record_check(f->p + ONCE_WAL_SEGMENT_HEADER,
	                                            f->len - ONCE_WAL_SEGMENT_HEADER, f->salt, *first,
	                                            &rec) == ONCE_WAL_VALID;
}

/* Writes a fresh header over a damaged one (nothing else changes). */
static enum fix_result rebuild_log_header(struct log_fix *f, uint64_t first, bool yes)
{
	f->seg.first_seq = first;
	printf("  rewrite the header of %s/%s (bytes 0..63): its records check out under this store's "
	       "and segment's checksum seed, the first is sequence %" PRIu64 "; no record is dropped\n",
	       f->d->path, f->name, first);
	if (!yes)
		return FIX_PLANNED;
	once__wal_segment_encode(f->p, &f->seg);
	return replace_file(f->d, f->name, f->p, f->len) ? FIX_DONE : FIX_FAILED;
}

/* Where the segment is cut, the records kept before it and the sequence
 * number after them. */
static void find_cut(struct log_fix *f, const struct once__recovery *r)
{
	f->cut = r->bad_at;
	f->whole = !f->header_ok || f->cut < ONCE_WAL_SEGMENT_HEADER || f->cut > f->len;
	if (!f->whole) {
		size_t off = ONCE_WAL_SEGMENT_HEADER;
		uint64_t seq = f->seg.first_seq;
		struct once__wal_record rec;
		while (off < f->cut &&
		       once__wal_record_check(f->p + off, f->len - off, f->salt, seq, &rec) == ONCE_WAL_VALID)
			off += rec.size, seq++, f->kept++;
		f->next = seq;
		f->next_known = off == f->cut;
	}
	/* A whole segment dropped is replaced by one that starts where the
	 * log before it ended (recovery's next_seq when it stopped here). */
	f->first_new = f->whole ? r->next_seq : f->next;
}

/* Lists the later segments; they are kept only if the next one continues
 * exactly where this one now ends: then no record is missing. */
static bool find_later(struct log_fix *f)
{
	if (!later_segments(f->d, f->number, &f->later, &f->nlater)) {
		cli_err("repair", "%s: could not list the directory", f->d->path);
		return false;
	}
	if (f->nlater == 0 || f->whole || !f->next_known)
		return true;
	char name[ONCE_FILE_NAME_MAX];
	once__log_name(name, f->later[0]);
	unsigned char *q;
	size_t qlen;
	struct once__wal_segment nseg;
	if (cli_read_file(f->d->fd, name, &q, &qlen) == ONCE_OK) {
		f->keep_later = log_header(f->d, q, qlen, f->later[0], &nseg) && nseg.first_seq == f->next;
		free(q);
	}
	return true;
}

/* Counts and prints what the damaged segment loses. */
static void report_damaged(const struct log_fix *f, struct reassert *rap, struct lost *total)
{
	const struct cli_dir *d = f->d;
	struct lost here = {0};
	count_lost(f->p, f->whole ? ONCE_WAL_SEGMENT_HEADER : (size_t)f->cut, f->len, f->salt,
	           f->whole ? 0 : f->next, &here, rap);
	if (f->whole) {
		here.bytes = once__wal_zero_tail(f->p, 0, f->len);
		here.zeros = f->len - here.bytes;
		printf("  %s %s/%s (%" PRIu64 " bytes): %s; dropped: ", rap ? "rewrite" : "remove", d->path,
		       f->name, here.bytes, f->header_ok ? "its records follow the gap" : "its header is damaged");
	} else {
		printf("  truncate %s/%s at offset %" PRIu64 " (keeping %" PRIu64 " records, %s%" PRIu64
		       "): drop %" PRIu64 " bytes from the damaged record on: ",
		       d->path, f->name, f->cut, f->kept, f->kept ? "sequence numbers up to " : "next sequence ",
		       f->kept ? f->next - 1 : f->next, here.bytes);
	}
	print_records(&here);
	print_zeros(&here);
	printf("\n");
	if (rap == NULL)
		print_notable(&here);
	add_lost(total, &here);
}

/* What one later segment loses: all of it. */
static void count_later(const struct cli_dir *d, uint64_t number, struct reassert *rap, struct lost *l)
{
	char name[ONCE_FILE_NAME_MAX];
	once__log_name(name, number);
	unsigned char *q;
	size_t qlen;
	if (cli_read_file(d->fd, name, &q, &qlen) != ONCE_OK)
		return;
	struct once__wal_segment s2;
	if (log_header(d, q, qlen, number, &s2))
		count_lost(q, ONCE_WAL_SEGMENT_HEADER, qlen, once__wal_salt(&s2), 0, l, rap);
	l->bytes = once__wal_zero_tail(q, 0, qlen);
	l->zeros = qlen - l->bytes;
	free(q);
}

/* Counts and prints what the later segments lose; those holding no
 * record (a header, then nothing or only zeros) on one line. */
static void report_later(const struct log_fix *f, struct reassert *rap, struct lost *total)
{
	if (f->keep_later) {
		printf("  keep the %zu later segment(s): the next one starts at sequence %" PRIu64
		       ", where the truncated one ends\n",
		       f->nlater, f->next);
		return;
	}
	uint64_t empties = 0, first_empty = 0, last_empty = 0;
	for (size_t i = 0; i < f->nlater; i++) {
		struct lost l = {0};
		count_later(f->d, f->later[i], rap, &l);
		add_lost(total, &l);
		if (l.records == 0 && l.bytes <= ONCE_WAL_SEGMENT_HEADER) {
			if (empties++ == 0)
				first_empty = f->later[i];
			last_empty = f->later[i];
			continue;
		}
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, f->later[i]);
		printf("  remove %s/%s (%" PRIu64 " bytes): its records follow the gap; dropped: ", f->d->path,
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
}

/* Replaces the damaged segment: its kept bytes (or a fresh header when
 * all of it goes), then the re-asserted records; removed instead when
 * all of it goes and nothing is re-asserted. */
static bool write_damaged(struct log_fix *f, const struct reassert *ra)
{
	const struct cli_dir *d = f->d;
	size_t keep_bytes = f->whole ? ONCE_WAL_SEGMENT_HEADER : (size_t)f->cut;
	if (f->whole && ra->n == 0) {
		bool ok = true;
		if (unlinkat(d->fd, f->name, 0) != 0) {
			cli_err("repair", "%s/%s: unlink: %s", d->path, f->name, strerror(errno));
			ok = false;
		}
		return ok && cli_fsync_dir("repair", d);
	}
	size_t out_len = keep_bytes + reassert_size(ra);
	unsigned char *out = malloc(out_len);
	if (out == NULL) {
		cli_err("repair", "out of memory");
		return false;
	}
	if (f->whole) {
		f->seg.first_seq = f->first_new;
		once__wal_segment_encode(out, &f->seg);
	} else {
		memcpy(out, f->p, keep_bytes);
	}
	reassert_encode(ra, out + keep_bytes, f->salt, f->first_new);
	bool ok = replace_file(d, f->name, out, out_len);
	free(out);
	return ok;
}

/* Removes the later segments, newest first: a crash in between leaves a
 * gap the next repair finds. */
static bool remove_later(const struct log_fix *f)
{
	for (size_t i = f->nlater; i-- > 0 && !f->keep_later;) {
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, f->later[i]);
		if (unlinkat(f->d->fd, name, 0) != 0 && errno != ENOENT) {
			cli_err("repair", "%s/%s: unlink: %s", f->d->path, name, strerror(errno));
			return false;
		}
	}
	return true;
}

/* Reports the cut and, with --yes, makes it. */
static enum fix_result cut_segment(struct log_fix *f, const struct repair_opts *o, struct lost *total,
                                   uint64_t *reasserted)
{
	/* Nothing can be appended before kept later segments. */
	struct reassert ra = {0};
	struct reassert *rap = o->truncate_only || f->keep_later ? NULL : &ra;
	report_damaged(f, rap, total);
	report_later(f, rap, total);
	print_reassert(&ra, f->first_new);
	if (f->whole && ra.n > 0)
		printf("  (%s/%s is written anew: a header starting at sequence %" PRIu64 ", then those records)\n",
		       f->d->path, f->name, f->first_new);
	if (ra.oom)
		cli_err("repair", "out of memory");
	if (!o->yes || ra.oom) {
		bool oom = ra.oom;
		reassert_free(&ra);
		return oom ? FIX_FAILED : FIX_PLANNED;
	}
	/* The damaged segment first (replaced whole), then the later ones:
	 * never a re-assertion lost with nothing to show for it. */
	bool ok = write_damaged(f, &ra);
	*reasserted += ra.n;
	reassert_free(&ra);
	ok = ok && remove_later(f);
	return ok && cli_fsync_dir("repair", f->d) ? FIX_DONE : FIX_FAILED;
}

enum fix_result fix_log(const struct cli_dir *d, const struct once__recovery *r,
                        const struct repair_opts *o, struct lost *total, uint64_t *reasserted)
{
	struct log_fix f;
	enum fix_result fr = FIX_FAILED;
	uint64_t first;
	if (log_read(d, r->bad_file, &f)) {
		if (header_rebuildable(&f, &first)) {
			fr = rebuild_log_header(&f, first, o->yes);
		} else {
			find_cut(&f, r);
			if (find_later(&f))
				fr = cut_segment(&f, o, total, reasserted);
		}
	}
	log_fix_free(&f);
	return fr;
}
