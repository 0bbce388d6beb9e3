/*
 * wal/recover.c - verifying and replaying a data directory (rules in
 * wal/recover.h; record bytes in wal/format.h and wal/codec.h).
 *
 * Files are mapped read-only and checked record by record; a record's
 * length is checked against the file before anything is done with it
 * (once__wal_record_check), and the payload is decoded in place.
 */
#define XXH_INLINE_ALL
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "batch.h"
#include "codec.h"
#include "format.h"
#include "internal.h"
#include "io.h"
#include "recover.h"

void once__log_name(char out[ONCE_FILE_NAME_MAX], uint64_t number)
{
	snprintf(out, ONCE_FILE_NAME_MAX, "log-%016" PRIx64, number);
}

void once__snap_name(char out[ONCE_FILE_NAME_MAX], uint64_t start, uint32_t parts, uint32_t part)
{
	snprintf(out, ONCE_FILE_NAME_MAX, "snap-%016" PRIx64 "-%04" PRIx32 "-%04" PRIx32, start, parts, part);
}

void once__checkpoint_snap_name(char out[ONCE_FILE_NAME_MAX], uint32_t version, uint64_t start,
                                uint32_t parts, uint32_t part)
{
	if (version == ONCE_CHECKPOINT_V1)
		snprintf(out, ONCE_FILE_NAME_MAX, "snap-%016" PRIx64 "-%04" PRIx32, start, part);
	else
		once__snap_name(out, start, parts, part);
}

static bool parse_hex(const char *s, size_t digits, uint64_t *out)
{
	uint64_t v = 0;
	for (size_t i = 0; i < digits; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return true;
}

bool once__parse_log_name(const char *name, uint64_t *number)
{
	return strlen(name) == 20 && strncmp(name, "log-", 4) == 0 && parse_hex(name + 4, 16, number);
}

bool once__parse_snap_file(const char *name, uint64_t *start, uint32_t *parts, uint32_t *part)
{
	uint64_t n, p;
	size_t len = strlen(name);
	if (strncmp(name, "snap-", 5) != 0 || !parse_hex(name + 5, 16, start) || name[21] != '-')
		return false;
	if (len == 26 && parse_hex(name + 22, 4, &p)) { /* version 1: snap-S-<part> */
		*parts = 0;
		*part = (uint32_t)p;
		return true;
	}
	if (len == 31 && parse_hex(name + 22, 4, &n) && name[26] == '-' && parse_hex(name + 27, 4, &p)) {
		*parts = (uint32_t)n;
		*part = (uint32_t)p;
		return true;
	}
	return false;
}

bool once__parse_snap_name(const char *name, uint64_t *start, uint32_t *part)
{
	uint32_t parts;
	return once__parse_snap_file(name, start, &parts, part) && parts != 0;
}

bool once__checkpoint_names(uint32_t version, uint64_t start, uint32_t parts, const char *name)
{
	uint64_t s;
	uint32_t n, p;
	if (!once__parse_snap_file(name, &s, &n, &p) || s != start || p >= parts)
		return false;
	return version == ONCE_CHECKPOINT_V1 ? n == 0 : n == parts;
}

/* ---- CHECKPOINT ---- */

static void checkpoint_text(char *out, size_t cap, uint32_t version, uint64_t start, uint32_t parts)
{
	char body[64];
	int n = snprintf(body, sizeof body, "oncestore-checkpoint %" PRIu32 " %016" PRIx64 " %" PRIu32,
	                 version, start, parts);
	snprintf(out, cap, "%s %016" PRIx64 "\n", body, (uint64_t)XXH3_64bits(body, (size_t)n));
}

once_status once__checkpoint_read_version(int dirfd, bool *present, uint64_t *start, uint32_t *parts,
                                          uint32_t *version, const char **why, struct once__syserr *io)
{
	struct once__syserr ignored;
	if (io == NULL)
		io = &ignored;
	*present = false;
	if (why != NULL)
		*why = "CHECKPOINT does not parse";
	int fd;
	once_status opened = once__io_open_regular(dirfd, ONCE_CHECKPOINT_FILE, &fd);
	if (opened == ONCE_IO)
		once__syserr_set(io, "open", ONCE_CHECKPOINT_FILE, 0); /* or its fstat: io.c */
	if (opened == ONCE_CORRUPT && why != NULL)
		*why = "not a regular file (foreign)";
	if (opened != ONCE_OK)
		return opened == ONCE_NOT_FOUND ? ONCE_OK : opened;
	char text[128];
	ssize_t got = read(fd, text, sizeof text - 1);
	if (got < 0)
		once__syserr_set(io, "read", ONCE_CHECKPOINT_FILE, 0);
	close(fd);
	if (got < 0) {
		errno = io->err;
		return ONCE_IO;
	}
	text[got] = '\0';
	uint64_t s;
	unsigned v, p;
	/* Version 1 is the previous release's (snapshots named without the
	 * part count, wal/recover.h); both are checked the same way. */
	if (sscanf(text, "oncestore-checkpoint %u %16" SCNx64 " %u", &v, &s, &p) != 3 ||
	    (v != ONCE_CHECKPOINT_V1 && v != ONCE_CHECKPOINT_V2) || p == 0 || p > 65535 || s == 0 ||
	    s >= ONCE_WAL_NUMBER_MAX)
		return ONCE_CORRUPT;
	char want[128];
	checkpoint_text(want, sizeof want, v, s, p);
	if (strcmp(want, text) != 0)
		return ONCE_CORRUPT;
	*present = true;
	*start = s;
	*parts = p;
	if (version != NULL)
		*version = v;
	return ONCE_OK;
}

once_status once__checkpoint_read(int dirfd, bool *present, uint64_t *start, uint32_t *parts,
                                  const char **why)
{
	return once__checkpoint_read_version(dirfd, present, start, parts, NULL, why, NULL);
}

once_status once__checkpoint_write(int dirfd, uint64_t start, uint32_t parts)
{
	struct once__syserr e;
	return once__checkpoint_write_e(dirfd, start, parts, &e);
}

once_status once__checkpoint_write_e(int dirfd, uint64_t start, uint32_t parts, struct once__syserr *e)
{
	static const char tmp[] = ONCE_CHECKPOINT_FILE ".tmp";
	char text[128];
	checkpoint_text(text, sizeof text, ONCE_CHECKPOINT_V2, start, parts);
	size_t n = strlen(text);
	memset(e, 0, sizeof *e);
	int fd = once__io_create_tmp(dirfd, tmp);
	if (fd < 0) {
		once__syserr_set(e, "open", tmp, 0);
		return ONCE_IO;
	}
	off_t bad = 0;
	bool ok = once__io_write_all_at(fd, text, n, 0, &bad);
	if (!ok)
		once__syserr_set(e, "pwrite", tmp, (uint64_t)bad);
	else if (!(ok = once__io_fdatasync(fd) == 0))
		once__syserr_set(e, "fdatasync", tmp, n);
	close(fd);
	if (ok && !(ok = renameat(dirfd, tmp, dirfd, ONCE_CHECKPOINT_FILE) == 0))
		once__syserr_set(e, "rename", tmp, 0);
	if (ok && !(ok = once__io_sync_dir(dirfd)))
		once__syserr_set(e, "fsync", ".", 0);
	return ok ? ONCE_OK : ONCE_IO;
}

/* ---- mapped files ---- */

struct mapped {
	const unsigned char *p;
	size_t len;
};

/* Opens regular file `name` (*fd) and sets m->len to its size, m->p to
 * NULL.  Same statuses as map_file; on ONCE_IO *io names the call. */
static once_status open_sized(int dirfd, const char *name, struct mapped *m, int *fd, struct once__syserr *io)
{
	m->p = NULL;
	m->len = 0;
	once_status opened = once__io_open_regular(dirfd, name, fd);
	if (opened == ONCE_IO)
		once__syserr_set(io, "open", name, 0);
	if (opened != ONCE_OK)
		return opened;
	struct stat st;
	if (fstat(*fd, &st) != 0) {
		once__syserr_set(io, "fstat", name, 0);
		close(*fd);
		errno = io->err;
		return ONCE_IO;
	}
	m->len = (size_t)st.st_size;
	return ONCE_OK;
}

/* ONCE_OK | ONCE_NOT_FOUND | ONCE_CORRUPT (not a regular file: foreign) |
 * ONCE_IO (*io names the call). */
static once_status map_file(int dirfd, const char *name, struct mapped *m, struct once__syserr *io)
{
	int fd;
	once_status opened = open_sized(dirfd, name, m, &fd, io);
	if (opened != ONCE_OK)
		return opened;
	if (m->len > 0) {
		void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			once__syserr_set(io, "mmap", name, 0);
			close(fd);
			errno = io->err;
			return ONCE_IO;
		}
		madvise(p, m->len, MADV_SEQUENTIAL);
		m->p = p;
	}
	close(fd);
	return ONCE_OK;
}

/*
 * A copy of the file as read(2) finds it, in anonymous pages (so that
 * unmap and the batch free it as they free a mapping).  For a directory a
 * live store writes: that store cuts a segment's preallocated zeros with
 * ftruncate when it moves to the next one (wal/log.c), and touching a
 * mapped page past the new end would raise SIGBUS.  A file that shrinks
 * while it is copied yields what was there; one that grows, its first
 * st_size bytes.  Same statuses as map_file.
 */
static once_status copy_file(int dirfd, const char *name, struct mapped *m, struct once__syserr *io)
{
	int fd;
	once_status opened = open_sized(dirfd, name, m, &fd, io);
	if (opened != ONCE_OK)
		return opened;
	size_t size = m->len, got = 0;
	m->len = 0;
	unsigned char *p = NULL;
	if (size > 0) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			close(fd);
			return ONCE_NOMEM;
		}
	}
	while (got < size) {
		ssize_t n = pread(fd, p + got, size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			once__syserr_set(io, "pread", name, got);
			close(fd);
			munmap(p, size);
			errno = io->err;
			return ONCE_IO;
		}
		if (n == 0)
			break; /* cut meanwhile */
		got += (size_t)n;
	}
	close(fd);
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t kept = (got + page - 1) / page * page, mapped = (size + page - 1) / page * page;
	if (kept < mapped)
		munmap(p + kept, mapped - kept);
	if (got > 0) {
		mprotect(p, got, PROT_READ);
		m->p = p;
		m->len = got;
	}
	return ONCE_OK;
}

static void unmap(struct mapped *m)
{
	if (m->len > 0)
		munmap((void *)m->p, m->len);
}

static once_status damage(struct once__recovery *r, const char *file, uint64_t at, bool snapshot,
                          const char *why)
{
	snprintf(r->bad_file, sizeof r->bad_file, "%s", file);
	r->bad_at = at;
	r->bad_is_snapshot = snapshot;
	r->why = why;
	return ONCE_CORRUPT;
}

/* What recovery does with the records it checks: with a store, collect
 * them (applied in table order at the end: wal/batch.h); without one
 * (verify), only decode them. */
struct replay {
	struct once__batch *batch; /* NULL: verify only */
	struct once__scratch sc;
	/* once__recover_live: files are copied, not mapped (copy_file); a
	 * file listed or named a moment ago that is gone sets `vanished`;
	 * `newest` names the newest segment read. */
	bool live, vanished;
	char newest[ONCE_FILE_NAME_MAX];
	struct once__syserr *io; /* where a failed call is named (the reading's r->io) */
};

/* map_file, or copy_file for a directory a live store may be writing. */
static once_status read_file(struct replay *rp, int dirfd, const char *name, struct mapped *m)
{
	once_status st = rp->live ? copy_file(dirfd, name, m, rp->io) : map_file(dirfd, name, m, rp->io);
	if (st == ONCE_NOT_FOUND)
		rp->vanished = true;
	return st;
}

static once_status take_record(struct replay *rp, const struct once__wal_record *rec)
{
	struct once__wal_op op;
	if (!once__wal_decode(rec->type, rec->payload, rec->len, &op, &rp->sc))
		return ONCE_CORRUPT;
	return rp->batch != NULL ? once__batch_add(rp->batch, rec, &op) : ONCE_OK;
}

/* A file whose records were taken: the batch keeps its mapping. */
static once_status done_with(struct replay *rp, struct mapped *m)
{
	if (rp->batch == NULL || m->len == 0) {
		unmap(m);
		return ONCE_OK;
	}
	once_status st = once__batch_keep(rp->batch, m->p, m->len);
	if (st != ONCE_OK)
		unmap(m);
	return st;
}

/* ---- snapshots ---- */

static once_status load_snapshot(int dirfd, const unsigned char uid[16], struct replay *rp, uint64_t start,
                                 uint32_t part, struct once__recovery *r)
{
	char name[ONCE_FILE_NAME_MAX];
	once__checkpoint_snap_name(name, r->checkpoint_version, start, r->checkpoint_parts, part);
	struct mapped m;
	once_status st = read_file(rp, dirfd, name, &m);
	if (st == ONCE_NOT_FOUND)
		return damage(r, name, 0, true, "snapshot named by CHECKPOINT is missing");
	if (st == ONCE_CORRUPT)
		return damage(r, name, 0, true, "not a regular file (foreign)");
	if (st != ONCE_OK)
		return st;
	struct once__wal_segment seg;
	if (!once__wal_segment_decode(m.p, m.len, &seg) || seg.kind != ONCE_WAL_KIND_SNAPSHOT ||
	    seg.number != start || seg.part != part || seg.first_seq != 1 ||
	    memcmp(seg.uid, uid, 16) != 0) {
		unmap(&m);
		return damage(r, name, 0, true, "bad snapshot header");
	}
	uint64_t salt = once__wal_salt(&seg);
	size_t off = ONCE_WAL_SEGMENT_HEADER;
	uint64_t seq = 1;
	bool ended = false;
	st = ONCE_OK;
	while (st == ONCE_OK && off < m.len && !ended) {
		struct once__wal_record rec;
		if (once__wal_record_check(m.p + off, m.len - off, salt, seq, &rec) != ONCE_WAL_VALID) {
			st = damage(r, name, off, true, "bad snapshot record");
			break;
		}
		if (rec.type == ONCE_WAL_SNAPSHOT_END) {
			struct once__wal_op op;
			if (!once__wal_decode(rec.type, rec.payload, rec.len, &op, &rp->sc) || op.count != seq - 1)
				st = damage(r, name, off, true, "bad snapshot end mark");
			ended = true;
		} else {
			st = take_record(rp, &rec);
			if (st == ONCE_CORRUPT)
				st = damage(r, name, off, true, "snapshot record does not parse");
			r->snapshot_records++;
		}
		off += rec.size;
		seq++;
	}
	if (st == ONCE_OK && (!ended || off != m.len))
		st = damage(r, name, off, true, ended ? "bytes after the snapshot end mark"
		                                      : "snapshot ends without its end mark");
	if (st != ONCE_OK) {
		unmap(&m);
		return st;
	}
	return done_with(rp, &m);
}

/* ---- log segments ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* The log segment numbers present, sorted.  *out is malloc'd. */
static once_status list_segments(int dirfd, uint64_t **out, size_t *n, struct once__syserr *io)
{
	*out = NULL;
	*n = 0;
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		once__syserr_set(io, fd >= 0 ? "opendir" : "dup", ".", 0);
		if (fd >= 0)
			close(fd);
		errno = io->err;
		return ONCE_IO;
	}
	rewinddir(d);
	size_t cap = 0;
	struct dirent *de;
	once_status st = ONCE_OK;
	while ((de = readdir(d)) != NULL) {
		uint64_t num;
		if (!once__parse_log_name(de->d_name, &num))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *grown = realloc(*out, cap * sizeof *grown);
			if (grown == NULL) {
				st = ONCE_NOMEM;
				break;
			}
			*out = grown;
		}
		(*out)[(*n)++] = num;
	}
	closedir(d);
	if (st == ONCE_OK && *n > 0)
		qsort(*out, *n, sizeof **out, cmp_u64);
	return st;
}

/* Zero bytes from `at` to the end (`len`) of segment `name`: preallocated
 * space, counted (and named, for the newest segment), never dropped. */
static void note_zeros(struct once__recovery *r, const char *name, uint64_t at, uint64_t len, bool newest)
{
	if (at >= len)
		return;
	r->zeros_total += len - at;
	r->zeros_segments++;
	if (newest) {
		snprintf(r->zeros_file, sizeof r->zeros_file, "%s", name);
		r->zeros_at = at;
		r->zeros_bytes = len - at;
	}
}

/* Reads segment `number` (the newest when `newest`); *next is the sequence
 * number expected next, updated. */
static once_status read_segment(int dirfd, const unsigned char uid[16], struct replay *rp, uint64_t number,
                                bool newest, bool first, uint64_t *next, struct once__recovery *r)
{
	char name[ONCE_FILE_NAME_MAX];
	once__log_name(name, number);
	if (newest)
		snprintf(rp->newest, sizeof rp->newest, "%s", name);
	struct mapped m;
	once_status st = read_file(rp, dirfd, name, &m);
	if (st == ONCE_CORRUPT)
		return damage(r, name, 0, false, "not a regular file (foreign)");
	if (st == ONCE_NOT_FOUND) { /* it was listed a moment ago */
		errno = ENOENT;
		once__syserr_set(&r->io, "open", name, 0);
		return ONCE_IO;
	}
	if (st != ONCE_OK)
		return st;
	struct once__wal_segment seg;
	bool decoded = once__wal_segment_decode(m.p, m.len, &seg);
	if (!decoded || seg.kind != ONCE_WAL_KIND_LOG || seg.number != number ||
	    memcmp(seg.uid, uid, 16) != 0 || seg.first_seq == 0 || seg.first_seq >= ONCE_WAL_NUMBER_MAX) {
		/* A crash while a segment is created leaves at most its header
		 * bytes, unsynced, so a header that does not decode; a whole
		 * header naming another segment or store is a foreign file.
		 * A segment preallocated as it is created may be longer, but
		 * holds nothing but zeros after the header's 64 bytes. */
		size_t nonzero = once__wal_zero_tail(m.p, 0, m.len);
		bool creating = newest && !decoded && nonzero <= ONCE_WAL_SEGMENT_HEADER;
		unmap(&m);
		if (!creating)
			return damage(r, name, 0, false, "bad log segment header");
		/* A crash while the segment was being created: nothing in it. */
		r->torn = true;
		snprintf(r->torn_file, sizeof r->torn_file, "%s", name);
		r->torn_at = 0;
		r->torn_bytes = nonzero;
		note_zeros(r, name, nonzero, m.len, true);
		return ONCE_OK;
	}
	r->segments++;
	uint64_t start = r->has_checkpoint ? r->checkpoint_start : 1;
	if (first ? seg.first_seq > start : seg.first_seq != *next) {
		unmap(&m);
		return damage(r, name, 0, false, "log records are missing before this segment");
	}
	uint64_t salt = once__wal_salt(&seg), seq = seg.first_seq;
	size_t off = ONCE_WAL_SEGMENT_HEADER;
	while (off < m.len) {
		struct once__wal_record rec;
		if (once__wal_record_check(m.p + off, m.len - off, salt, seq, &rec) != ONCE_WAL_VALID)
			break;
		if (rec.type == ONCE_WAL_SNAPSHOT_END) {
			unmap(&m);
			return damage(r, name, off, false, "snapshot end mark in a log segment");
		}
		if (seq >= start) {
			st = take_record(rp, &rec);
			if (st != ONCE_OK) {
				unmap(&m);
				return st == ONCE_CORRUPT ? damage(r, name, off, false, "log record does not parse")
				                          : st;
			}
			r->log_records++;
		}
		off += rec.size;
		seq++;
	}
	/* What follows the records (wal/format.h): nothing or only zeros
	 * (preallocated space: clean), a torn tail, or corruption.  The
	 * prefix is not checked again. */
	struct once__wal_scan scan;
	once__wal_scan_tail(m.p + ONCE_WAL_SEGMENT_HEADER, m.len - ONCE_WAL_SEGMENT_HEADER, salt,
	                    off - ONCE_WAL_SEGMENT_HEADER, seq, &scan);
	uint64_t zeros_at = ONCE_WAL_SEGMENT_HEADER + scan.zero_from;
	if (scan.tail != ONCE_WAL_CLEAN) {
		uint64_t bad = ONCE_WAL_SEGMENT_HEADER + scan.bad_offset;
		if (scan.tail == ONCE_WAL_CORRUPT || !newest) {
			unmap(&m);
			return damage(r, name, bad, false,
			              scan.tail == ONCE_WAL_CORRUPT ? "damaged record followed by valid records"
			                                             : "torn tail in a segment that is not the newest");
		}
		r->torn = true;
		snprintf(r->torn_file, sizeof r->torn_file, "%s", name);
		r->torn_at = off;
		r->torn_bytes = zeros_at - off;
	}
	note_zeros(r, name, zeros_at, m.len, newest);
	*next = seq;
	return done_with(rp, &m);
}

/* Decodes the header of segment `name` from its first bytes: all the
 * covered-segment test needs, without reading (or copying) the rest. */
static bool segment_head(int dirfd, const char *name, struct once__wal_segment *seg)
{
	unsigned char head[ONCE_WAL_SEGMENT_HEADER];
	int fd;
	if (once__io_open_regular(dirfd, name, &fd) != ONCE_OK)
		return false;
	ssize_t n = pread(fd, head, sizeof head, 0);
	close(fd);
	return n == (ssize_t)sizeof head && once__wal_segment_decode(head, sizeof head, seg);
}

/*
 * One reading of every file (the rules are in wal/recover.h): records go
 * to rp->batch, when there is one, and are applied only by apply_records.
 */
static once_status read_files(int dirfd, const unsigned char uid[16], struct replay *rp,
                              struct once__recovery *r)
{
	memset(r, 0, sizeof *r);
	rp->io = &r->io;
	const char *why;
	once_status st = once__checkpoint_read_version(dirfd, &r->has_checkpoint, &r->checkpoint_start,
	                                               &r->checkpoint_parts, &r->checkpoint_version, &why, &r->io);
	if (st == ONCE_CORRUPT)
		return damage(r, ONCE_CHECKPOINT_FILE, 0, true, why);
	if (st != ONCE_OK)
		return st;
	for (uint32_t part = 0; st == ONCE_OK && r->has_checkpoint && part < r->checkpoint_parts; part++)
		st = load_snapshot(dirfd, uid, rp, r->checkpoint_start, part, r);

	uint64_t *nums = NULL;
	size_t n = 0;
	if (st == ONCE_OK)
		st = list_segments(dirfd, &nums, &n, &r->io);
	uint64_t next = r->has_checkpoint ? r->checkpoint_start : 1;
	bool first = true;
	if (st == ONCE_OK && n > 0 && nums[n - 1] >= ONCE_WAL_NUMBER_MAX) {
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, nums[n - 1]);
		st = damage(r, name, 0, false, "segment number out of range (foreign file)");
	}
	for (size_t i = 0; st == ONCE_OK && i < n; i++) {
		r->last_segment = nums[i];
		/* Segments wholly before the checkpoint's start are covered by
		 * it: a cleanup that a crash interrupted left them. */
		if (r->has_checkpoint && i + 1 < n) {
			char name[ONCE_FILE_NAME_MAX];
			once__log_name(name, nums[i + 1]);
			struct once__wal_segment seg;
			if (segment_head(dirfd, name, &seg) && seg.first_seq <= r->checkpoint_start)
				continue;
		}
		if (first)
			r->first_segment = nums[i];
		st = read_segment(dirfd, uid, rp, nums[i], i + 1 == n, first, &next, r);
		first = false;
	}
	free(nums);
	if (st == ONCE_OK && next < (r->has_checkpoint ? r->checkpoint_start : 1))
		st = damage(r, ONCE_CHECKPOINT_FILE, 0, false, "log ends before the checkpoint's start");
	r->next_seq = next;
	return st;
}

/* Applies what a successful reading collected (st: its result), and frees
 * the reading's memory. */
static once_status apply_records(struct replay *rp, once_status st, struct once__recovery *r)
{
	once__scratch_free(&rp->sc);
	if (st == ONCE_OK && rp->batch != NULL) {
		once__batch_reserve(rp->batch);
		/* One read-side section for the whole replay (core/restore.c). */
		urcu_bp_read_lock();
		st = once__batch_apply(rp->batch);
		once__read_unlock();
		if (st == ONCE_CORRUPT)
			st = damage(r, "(records)", 0, false, "a record cannot be applied");
	}
	once__batch_free(rp->batch);
	return st;
}

once_status once__recover(int dirfd, const unsigned char uid[16], once_store *s, struct once__recovery *r)
{
	struct replay rp = {0};
	if (s != NULL && (rp.batch = once__batch_new(s)) == NULL) {
		memset(r, 0, sizeof *r);
		return ONCE_NOMEM;
	}
	once_status st = read_files(dirfd, uid, &rp, r);
	r->attempts = 1;
	return apply_records(&rp, st, r);
}

/* ---- a directory a live store writes ---- */

#define LIVE_ATTEMPTS 10
#define LIVE_NEWEST_RETRIES 2

/*
 * A digest of what a live store changes in its directory: the name, inode,
 * size and modification time of CHECKPOINT, every log segment and every
 * snapshot.  A sum, so readdir's order does not matter.  0 when the
 * directory cannot be listed.
 */
static uint64_t dir_fingerprint(int dirfd)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	rewinddir(d);
	uint64_t sum = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t num, start;
		uint32_t part;
		struct stat st;
		if ((strcmp(de->d_name, ONCE_CHECKPOINT_FILE) != 0 && !once__parse_log_name(de->d_name, &num) &&
		     !once__parse_snap_name(de->d_name, &start, &part)) ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		uint64_t f[4] = {(uint64_t)st.st_ino, (uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
		                 (uint64_t)st.st_mtim.tv_nsec};
		sum += XXH3_64bits_withSeed(f, sizeof f, XXH3_64bits(de->d_name, strlen(de->d_name)));
	}
	closedir(d);
	return sum;
}

/*
 * Whether a reading that failed with st may be a live store's doing rather
 * than damage: a file it needed was removed (a checkpoint committed and
 * cleaned up), or the directory changed while it was read (`before`: the
 * digest when the reading began), or the damage is in the newest segment,
 * which the store appends to: a record it was writing may have been copied
 * half old, half new, and a write within the file system's timestamp
 * granularity changes no digest, so such damage is read again, twice at
 * most (*newest_retries counts), even when nothing seemed to change.
 */
static bool writer_explains(const struct replay *rp, once_status st, const struct once__recovery *r,
                            int dirfd, uint64_t before, unsigned *newest_retries)
{
	if (st != ONCE_CORRUPT && st != ONCE_IO)
		return false;
	if (rp->vanished || dir_fingerprint(dirfd) != before)
		return true;
	return st == ONCE_CORRUPT && !r->bad_is_snapshot && rp->newest[0] != '\0' &&
	       strcmp(r->bad_file, rp->newest) == 0 && (*newest_retries)++ < LIVE_NEWEST_RETRIES;
}

once_status once__recover_live(int dirfd, const unsigned char uid[16], once_store *s,
                               struct once__recovery *r)
{
	struct replay rp = {.live = true};
	unsigned newest_retries = 0;
	once_status st;
	for (uint32_t attempt = 1;; attempt++) {
		uint64_t before = dir_fingerprint(dirfd);
		rp.vanished = false;
		rp.newest[0] = '\0';
		if (s != NULL && (rp.batch = once__batch_new(s)) == NULL) {
			memset(r, 0, sizeof *r);
			st = ONCE_NOMEM;
			break;
		}
		st = read_files(dirfd, uid, &rp, r);
		r->attempts = attempt;
		if (st == ONCE_OK || attempt == LIVE_ATTEMPTS ||
		    !writer_explains(&rp, st, r, dirfd, before, &newest_retries))
			break;
		/* Nothing was applied: read everything again, after a nap that
		 * grows (1, 2, 4 .. 64 ms) so a checkpoint in progress can end. */
		once__batch_free(rp.batch);
		rp.batch = NULL;
		struct timespec nap = {0, (1L << (attempt < 6 ? attempt : 6)) * 1000000L / 2};
		nanosleep(&nap, NULL);
	}
	return apply_records(&rp, st, r);
}
