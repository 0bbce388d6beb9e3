/*
 * tools/repair_snapshot.c - the fix for a damaged snapshot (tools/repair.h;
 * the rules are in repair.c's design comment): the snapshot is rewritten
 * with a fresh header, its valid prefix of records copied unchanged, the
 * re-asserted records after them and a new end mark counting them all.
 * The last kept record goes too when it is an insert whose spend may have
 * been the lost record after it.  Also the scan of a snapshot's valid
 * prefix, which the CHECKPOINT fix uses to tell a clean snapshot.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "repair.h"

void snap_scan(const struct cli_dir *d, const unsigned char *p, size_t len, uint64_t start, uint32_t part,
               struct snap_scan *sc)
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

/* A damaged snapshot and what its rewrite keeps and drops. */
struct snap_fix {
	const struct cli_dir *d;
	const char *name;
	uint64_t start;
	uint32_t part;
	unsigned char *p; /* its bytes */
	size_t len;
	struct snap_scan sc;
	bool drop_insert;     /* the last record before the damage goes too */
	uint8_t dropped_type; /* its type */
	struct lost l;        /* entries' records dropped */
	uint64_t end_marks;   /* old end marks among the dropped records */
	uint64_t count;       /* records the new end mark counts */
};

static bool snap_read(const struct cli_dir *d, const char *name, struct snap_fix *f)
{
	memset(f, 0, sizeof *f);
	f->d = d;
	f->name = name;
	if (!once__parse_snap_name(name, &f->start, &f->part)) {
		cli_err("repair", "%s/%s: not a snapshot name", d->path, name);
		return false;
	}
	if (cli_read_file(d->fd, name, &f->p, &f->len) == ONCE_OK)
		return true;
	if (errno == ENOENT)
		cli_err("repair", "%s/%s: the snapshot CHECKPOINT names is missing: repair cannot rebuild "
		        "it (restore it from a backup); nothing changed",
		        d->path, name);
	else
		cli_err("repair", "%s/%s: %s", d->path, name, strerror(errno));
	return false;
}

/* Where the kept prefix ends, and what is dropped after it. */
static void snap_plan(struct snap_fix *f, struct reassert *rap, const struct reassert *ra)
{
	struct snap_scan *sc = &f->sc;
	snap_scan(f->d, f->p, f->len, f->start, f->part, sc);
	/* Only the end mark is damaged (or bytes follow a good one): every
	 * entry's records are there.  A damaged end mark is the last 32 bytes,
	 * with its type and length still readable. */
	size_t end_size = once__wal_record_size(8);
	bool only_end = sc->ended || (sc->keep_end + end_size == f->len &&
	                              f->p[sc->keep_end + 12] == ONCE_WAL_SNAPSHOT_END &&
	                              le32(f->p + sc->keep_end + 8) == 8);
	f->drop_insert = !only_end && sc->kept > 0 &&
	                 (sc->last_type == ONCE_WAL_CODE_PUT || sc->last_type == ONCE_WAL_REFRESH_INSERT ||
	                  sc->last_type == ONCE_WAL_NONCE_ISSUE);
	f->dropped_type = sc->last_type;
	if (f->drop_insert) {
		sc->keep_end = sc->last_off;
		sc->kept--;
	}
	count_lost(f->p, sc->keep_end, f->len, sc->salt, sc->kept + 1, &f->l, rap);
	/* The old end mark is not an entry's record: count it apart. */
	f->end_marks = f->l.by_type[ONCE_WAL_SNAPSHOT_END];
	f->l.records -= f->end_marks;
	f->l.by_type[ONCE_WAL_SNAPSHOT_END] = 0;
	f->count = sc->kept + ra->n;
}

static void snap_report(const struct snap_fix *f, const struct reassert *ra, bool truncate_only)
{
	const struct snap_scan *sc = &f->sc;
	printf("  rewrite %s/%s: keep its first %" PRIu64 " records (bytes %u..%zu)%s, drop %" PRIu64
	       " bytes from offset %zu: ",
	       f->d->path, f->name, sc->kept, ONCE_WAL_SEGMENT_HEADER, sc->keep_end,
	       sc->header_ok ? "" : " under a new header", f->l.bytes, sc->keep_end);
	print_records(&f->l);
	printf("%s\n", f->end_marks ? " and the old end mark" : "");
	if (truncate_only)
		print_notable(&f->l);
	if (f->drop_insert) {
		char buf[16];
		printf("  (the last record before the damage, a %s, is dropped too: the lost record after it "
		       "may have spent that entry, and an unknown entry fails closed)\n",
		       cli_type_name(f->dropped_type, buf));
	}
	print_reassert(ra, sc->kept + 1);
	printf("  write a new end mark counting %" PRIu64 "\n", f->count);
}

/* A fresh header, the kept records, the re-asserted ones, the end mark. */
static bool snap_write(const struct snap_fix *f, const struct reassert *ra)
{
	const struct snap_scan *sc = &f->sc;
	size_t out_len = sc->keep_end + reassert_size(ra) + once__wal_record_size(8);
	unsigned char *out = malloc(out_len);
	if (out == NULL) {
		cli_err("repair", "out of memory");
		return false;
	}
	struct once__wal_segment seg = {.number = f->start, .first_seq = 1, .kind = ONCE_WAL_KIND_SNAPSHOT,
	                                .part = f->part};
	memcpy(seg.uid, f->d->uid, 16);
	once__wal_segment_encode(out, &seg);
	memcpy(out + ONCE_WAL_SEGMENT_HEADER, f->p + ONCE_WAL_SEGMENT_HEADER,
	       sc->keep_end - ONCE_WAL_SEGMENT_HEADER);
	size_t at = sc->keep_end + reassert_encode(ra, out + sc->keep_end, sc->salt, sc->kept + 1);
	struct once__buf payload;
	once__buf_init(&payload);
	once__enc_u64(&payload, f->count);
	once__wal_record_encode(out + at, sc->salt, ONCE_WAL_SNAPSHOT_END, f->count + 1, 0, payload.p,
	                        (uint32_t)payload.len);
	once__buf_free(&payload);
	bool ok = replace_file(f->d, f->name, out, out_len);
	free(out);
	return ok;
}

enum fix_result fix_snapshot(const struct cli_dir *d, const struct once__recovery *r,
                             const struct repair_opts *o, struct lost *total, uint64_t *reasserted)
{
	struct snap_fix f;
	if (!snap_read(d, r->bad_file, &f))
		return FIX_FAILED;
	struct reassert ra = {0};
	snap_plan(&f, o->truncate_only ? NULL : &ra, &ra);
	snap_report(&f, &ra, o->truncate_only);
	add_lost(total, &f.l);
	enum fix_result fr;
	if (ra.oom) {
		cli_err("repair", "out of memory");
		fr = FIX_FAILED;
	} else if (!o->yes) {
		fr = FIX_PLANNED;
	} else {
		fr = snap_write(&f, &ra) ? FIX_DONE : FIX_FAILED;
		*reasserted += ra.n;
	}
	free(f.p);
	reassert_free(&ra);
	return fr;
}
