/*
 * tests/fuzz/fuzz_datadir.c - libFuzzer target: a valid data directory,
 * damaged as the input says, then opened.
 *
 * Once per process two "golden" data directories are made with the public
 * API (every kind of entry, codes taken and finalized, revoked families,
 * consumed and rotated refresh tokens with sealed successors, used
 * nonces): A with ONCE_SYNC_ALWAYS, a checkpoint and writes after it, B
 * with ONCE_SYNC_NONE and no checkpoint; and one more store, "foreign"
 * (another uid), to copy files from.  Their files are kept in memory.
 *
 * Each input picks A or B, writes its files to a fresh directory, and
 * applies up to 12 mutations: bit flips and byte overwrites at offsets,
 * truncations, extensions with zeros or garbage, a record's length, type,
 * reserved bytes, sequence number, synced-below mark or payload rewritten
 * (with the record's checksum recomputed, or not: so that damaged but
 * checksummed payloads reach the decoder), a segment header field
 * rewritten (re-encoded with a valid checksum, or not), CHECKPOINT and
 * FORMAT rewritten (valid checksum, other start / parts / version / uid),
 * files swapped, deleted, renamed, duplicated under another segment or
 * snapshot name, copied from the foreign store, leftover .tmp files, and
 * FIFOs, directories and symlinks named like a segment, a snapshot,
 * CHECKPOINT or FORMAT.
 *
 * The oracle:
 *   - the verify path (once__recover without a store, what `oncestore
 *     verify` runs) and once_open return without crashing or hanging
 *     (libFuzzer's -timeout), once_open with ONCE_OK, ONCE_CORRUPT or
 *     ONCE_IO only, and both agree on ONCE_CORRUPT;
 *   - on ONCE_OK: every read and a few writes of every kind work, stats,
 *     dump, sweep and a checkpoint work, once_close is ONCE_OK, and the
 *     directory then opens again with ONCE_OK and closes with ONCE_OK;
 *   - without mutations the store holds exactly what the golden one held
 *     (its dump, line for line);
 *   - a torn tail: when every mutation only appended bytes to the newest
 *     log segment, truncated it, or damaged bytes of its last record,
 *     once_open must answer ONCE_OK.
 *
 * A failed verdict also writes the damaged directory, as it was before
 * once_open, to ./datadir-failure-<pid>-<n>/ (an input does not always
 * replay in another process: see save_failure).
 *
 * Environment: FUZZ_KEEP=DIR copies the damaged directory to DIR before
 * once_open touches it (to study one input); FUZZ_NO_SPECIAL=1 leaves out FIFOs, directories and
 * symlinks (a FIFO named like a segment hung once_open before the wal fix
 * of item 5); FUZZ_TRACE=1 prints each mutation and the verdicts.
 */
#define XXH_INLINE_ALL
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "oncestore.h"
#include "internal.h" /* once__dump */
#include "format.h"
#include "recover.h"
#include "dir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int g_trace, g_no_special, g_keep, g_inline;
static char g_tmp[256];
static unsigned long g_seq;
static int64_t g_now = 1700000000;

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return g_now;
}

static const unsigned char succ_key[ONCE_SUCCESSOR_KEY_LEN] = "fuzz-successor-key-32-bytes-long";

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_datadir: FAILED: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
	if (!g_trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[datadir] ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- files in memory ---- */

struct file {
	char name[64];
	unsigned char *p;
	size_t n;
};

struct golden {
	struct file f[64];
	size_t n;
	char **dump; /* sorted dump lines of the store when reopened */
	size_t ndump;
	char nonces[4][ONCE_NONCE_LEN + 1];
};

static struct golden G[2], FOREIGN;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct lines {
	char **v;
	size_t n, cap;
};

static void add_line(void *ctx, const char *line)
{
	struct lines *l = ctx;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = realloc(l->v, l->cap * sizeof *l->v);
	}
	l->v[l->n++] = strdup(line);
}

static struct lines dump_sorted(once_store *s)
{
	struct lines l = {0};
	once__dump(s, add_line, &l);
	if (l.n)
		qsort(l.v, l.n, sizeof *l.v, cmp_str);
	return l;
}

static void free_lines(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) != 0 && errno == EISDIR)
				unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
		}
		closedir(d);
	}
	rmdir(path);
}

static void load_dir(const char *path, struct golden *g)
{
	DIR *d = opendir(path);
	if (d == NULL)
		fail("opendir %s", path);
	struct dirent *de;
	g->n = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		struct file *f = &g->f[g->n++];
		snprintf(f->name, sizeof f->name, "%s", de->d_name);
		char p[512];
		snprintf(p, sizeof p, "%s/%s", path, de->d_name);
		FILE *fp = fopen(p, "rb");
		if (fp == NULL)
			fail("fopen %s", p);
		fseek(fp, 0, SEEK_END);
		f->n = (size_t)ftell(fp);
		fseek(fp, 0, SEEK_SET);
		f->p = malloc(f->n + 1);
		if (fread(f->p, 1, f->n, fp) != f->n)
			fail("fread %s", p);
		fclose(fp);
	}
	closedir(d);
	/* By name, so that a file index in an input means the same file in
	 * every run. */
	for (size_t i = 1; i < g->n; i++)
		for (size_t j = i; j > 0 && strcmp(g->f[j - 1].name, g->f[j].name) > 0; j--) {
			struct file t = g->f[j];
			g->f[j] = g->f[j - 1];
			g->f[j - 1] = t;
		}
}

#define OK(call)                                                         \
	do {                                                             \
		once_status st_ = (call);                                \
		if (st_ != ONCE_OK)                                      \
			fail("%s: %s", #call, once_status_name(st_));   \
	} while (0)

static void log_line(void *ctx, once_log_level level, const char *message)
{
	(void)ctx;
	if (g_trace)
		fprintf(stderr, "[datadir] store log %d: %s\n", (int)level, message);
}

static void options(once_options *o, const char *dir, once_sync_mode sync)
{
	once_options_init(o);
	o->dir = dir;
	o->shards = 2;
	o->sync = sync;
	o->checkpoint_bytes = UINT64_MAX;
	o->max_codes = o->max_access_tokens = o->max_refresh = o->max_nonces = o->max_replays = 64;
	o->sweep_interval_ms = 0;
	o->successor_key = succ_key;
	o->clock = fake_clock;
	o->log = log_line;
}

static const char *codes[6] = {"code-0", "code-1", "code-2", "code-3", "code-4", "code-5"};
static const char *refresh[6] = {"rt-0", "rt-1", "rt-2", "rt-3", "rt-4", "rt-5"};
static const char *jtis[4] = {"jti-0", "jti-1", "jti-2", "jti-3"};

static void put_code(once_store *s, int i)
{
	once_code c = {.client_id = "client", .subject = "alice", .redirect_uri = "https://rp/cb",
	               .code_challenge = "chal", .family_id = "cfam", .expires_at = g_now + 600};
	OK(once_code_put(s, codes[i], strlen(codes[i]), &c));
}

static void insert_rt(once_store *s, int i, const char *fam)
{
	const char *scope[] = {"openid", "email", "openid"};
	once_refresh r = {.family_id = fam, .subject = "bob", .expires_at = g_now + 3600,
	                  .scope = scope, .scope_count = 3, .claims = "cl", .claims_len = 2};
	OK(once_refresh_insert(s, refresh[i], strlen(refresh[i]), &r));
}

/* A golden store: content of every kind; with `checkpoint`, a checkpoint
 * and more writes after it. */
static void make_golden(const char *path, once_sync_mode sync, bool checkpoint, struct golden *g)
{
	once_options o;
	options(&o, path, sync);
	once_store *s;
	OK(once_open(&o, &s));
	for (int i = 0; i < 4; i++)
		put_code(s, i);
	OK(once_code_take(s, codes[1], 6, NULL, NULL));
	OK(once_code_take(s, codes[2], 6, NULL, NULL));
	OK(once_code_finalize(s, codes[2], 6));
	OK(once_code_record_access_token(s, "afam", 4, "at-0", 4, g_now + 300));
	OK(once_code_record_access_token(s, "afam", 4, "at-1", 4, g_now + 300));
	OK(once_code_revoke_family_access_tokens(s, "afam", 4));
	OK(once_code_record_access_token(s, "bfam", 4, "at-2", 4, g_now + 300));
	insert_rt(s, 0, "rfam");
	insert_rt(s, 1, "rfam");
	OK(once_refresh_consume(s, refresh[0], 4, NULL));
	OK(once_refresh_remember_successor(s, refresh[0], 4, "successor-0", 11));
	const char *scope[] = {"openid"};
	once_refresh child = {.family_id = "rfam", .subject = "bob", .expires_at = g_now + 7200,
	                      .scope = scope, .scope_count = 1};
	OK(once_refresh_rotate(s, refresh[1], 4, refresh[2], 4, &child, "successor-1", 11, NULL));
	insert_rt(s, 3, "gone");
	OK(once_refresh_revoke_family(s, "gone", 4));
	for (int i = 0; i < 3; i++)
		OK(once_nonce_issue(s, 120, g->nonces[i]));
	OK(once_nonce_accept(s, g->nonces[0], ONCE_NONCE_LEN, 120));
	OK(once_replay_check(s, jtis[0], 5, 300));
	OK(once_replay_check(s, jtis[1], 5, 300));
	if (checkpoint) {
		OK(once_checkpoint(s));
		put_code(s, 4);
		OK(once_code_take(s, codes[3], 6, NULL, NULL));
		insert_rt(s, 4, "rfam");
		OK(once_refresh_consume(s, refresh[2], 4, NULL));
		OK(once_replay_check(s, jtis[2], 5, 300));
		OK(once_nonce_issue(s, 120, g->nonces[3]));
		OK(once_nonce_accept(s, g->nonces[1], ONCE_NONCE_LEN, 120));
		OK(once_code_revoke_family_access_tokens(s, "bfam", 4));
	}
	OK(once_close(s));
	OK(once_open(&o, &s));
	struct lines l = dump_sorted(s);
	g->dump = l.v;
	g->ndump = l.n;
	OK(once_close(s));
	load_dir(path, g);
}

/* ---- mutations ---- */

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static uint32_t u32(struct in *in)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)u8(in) << (8 * i);
	return v;
}

static uint64_t u64(struct in *in)
{
	return u32(in) | (uint64_t)u32(in) << 32;
}

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)get_u64((const unsigned char[8]){p[0], p[1], p[2], p[3]});
}

/* The working directory's regular files, in memory while mutating. */
struct work {
	char path[320];
	struct file f[80];
	size_t n;
	bool torn_only; /* every mutation so far kept "a torn tail of the newest segment" */
	bool header_cut; /* the newest segment was cut inside its header */
	int mutations;
};

static int find(struct work *w, const char *name)
{
	for (size_t i = 0; i < w->n; i++)
		if (strcmp(w->f[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void set_file(struct work *w, const char *name, const unsigned char *p, size_t n)
{
	int i = find(w, name);
	if (i < 0) {
		if (w->n == sizeof w->f / sizeof w->f[0])
			return;
		i = (int)w->n++;
		snprintf(w->f[i].name, sizeof w->f[i].name, "%s", name);
		w->f[i].p = NULL;
	}
	unsigned char *c = malloc(n + 1);
	memcpy(c, p, n);
	free(w->f[i].p);
	w->f[i].p = c;
	w->f[i].n = n;
}

static void del_file(struct work *w, int i)
{
	free(w->f[i].p);
	w->f[i] = w->f[--w->n];
}

static void resize(struct file *f, size_t n, unsigned char fill)
{
	f->p = realloc(f->p, n + 1);
	if (n > f->n)
		memset(f->p + f->n, fill, n - f->n);
	f->n = n;
}

/* The newest log segment (highest number), or -1. */
static int newest_log(struct work *w)
{
	int best = -1;
	uint64_t bn = 0, num;
	for (size_t i = 0; i < w->n; i++)
		if (once__parse_log_name(w->f[i].name, &num) && (best < 0 || num > bn))
			best = (int)i, bn = num;
	return best;
}

/* Valid records of a segment or snapshot (sequence numbers as found):
 * offsets into starts[], count returned; *salt from the header. */
static size_t records(const struct file *f, size_t starts[], size_t max, uint64_t *salt)
{
	struct once__wal_segment seg;
	if (!once__wal_segment_decode(f->p, f->n, &seg))
		return 0;
	*salt = once__wal_salt(&seg);
	size_t off = ONCE_WAL_SEGMENT_HEADER, k = 0;
	while (k < max && off + ONCE_WAL_RECORD_HEADER <= f->n) {
		struct once__wal_record r;
		uint64_t seq = get_u64(f->p + off + 16);
		if (once__wal_record_check(f->p + off, f->n - off, *salt, seq, &r) != ONCE_WAL_VALID)
			break;
		starts[k++] = off;
		off += r.size;
	}
	return k;
}

/* Start of the last valid record of file f (its header end when none). */
static size_t last_record_start(const struct file *f)
{
	size_t starts[4096];
	uint64_t salt;
	size_t k = records(f, starts, 4096, &salt);
	return k ? starts[k - 1] : ONCE_WAL_SEGMENT_HEADER;
}

/* A file name of a kind the store reads. */
static void pick_name(struct in *in, struct work *w, char out[64])
{
	uint8_t sel = u8(in);
	uint64_t num = 1;
	int nl = newest_log(w);
	if (nl >= 0)
		once__parse_log_name(w->f[nl].name, &num);
	bool has_cp = false;
	uint64_t start = 1;
	uint32_t parts = 2;
	for (size_t i = 0; i < w->n; i++) {
		uint64_t st;
		uint32_t pt;
		if (once__parse_snap_name(w->f[i].name, &st, &pt))
			has_cp = true, start = st;
	}
	(void)has_cp;
	switch (sel % 12) {
	case 0: once__log_name(out, num + 1); break;
	case 1: once__log_name(out, num); break;
	case 2: once__log_name(out, num > 1 ? num - 1 : 0); break;
	case 3: once__snap_name(out, start, parts, parts); break;
	case 4: once__snap_name(out, start, parts, sel >> 7); break;
	case 5: snprintf(out, 64, "%s", ONCE_CHECKPOINT_FILE); break;
	case 6: snprintf(out, 64, "FORMAT"); break;
	case 7: once__log_name(out, 0); break;
	case 8: once__log_name(out, UINT64_MAX); break;
	case 9: snprintf(out, 64, "%s.tmp", (sel & 0x80) ? ONCE_CHECKPOINT_FILE : "snap-0000000000000001-0000"); break;
	case 10: snprintf(out, 64, "log-%016" PRIx64 "x", num); break;
	default: snprintf(out, 64, "FORMAT.tmp"); break;
	}
}

/* Special files made after the regular ones are written. */
struct special {
	char name[64];
	int kind; /* 0 FIFO, 1 directory, 2 symlink to a file, 3 dangling symlink, 4 symlink to /dev/zero */
	char target[64];
};

static int64_t value_near(struct in *in, uint64_t cur)
{
	switch (u8(in) % 10) {
	case 0: return 0;
	case 1: return (int64_t)(cur + 1);
	case 2: return (int64_t)(cur - 1);
	case 3: return (int64_t)UINT64_MAX;
	case 4: return (int64_t)(cur + 8);
	case 5: return (int64_t)(cur - 8);
	case 6: return (int64_t)ONCE_WAL_MAX_PAYLOAD;
	case 7: return (int64_t)ONCE_WAL_MAX_PAYLOAD + 1;
	case 8: return (int64_t)(cur + (u8(in) << 3));
	default: return (int64_t)u64(in);
	}
}

static void mutate(struct in *in, struct work *w, struct special *sp, int *nsp)
{
	uint8_t op = u8(in);
	if (w->n == 0 && op % 20 < 12)
		return;
	int fi = w->n ? (int)(u8(in) % w->n) : -1;
	struct file *f = fi >= 0 ? &w->f[fi] : NULL;
	int nl = newest_log(w);
	bool on_newest = fi >= 0 && fi == nl;
	w->mutations++;
	switch (op % 20) {
	case 0: { /* bit flip */
		if (f->n == 0)
			return;
		size_t off = u32(in) % f->n;
		if (on_newest && off < last_record_start(f))
			w->torn_only = false;
		else if (!on_newest)
			w->torn_only = false;
		f->p[off] ^= (unsigned char)(1u << (u8(in) & 7));
		trace("flip %s @%zu", f->name, off);
		break;
	}
	case 1: { /* truncate */
		size_t n = u32(in) % (f->n + 1);
		if (!on_newest)
			w->torn_only = false;
		else if (n < ONCE_WAL_SEGMENT_HEADER)
			w->header_cut = true; /* a cut header: bytes after it are no tail */
		resize(f, n, 0);
		trace("truncate %s to %zu", f->name, n);
		break;
	}
	case 2:
	case 3: { /* extend with zeros or garbage */
		size_t add = 1 + u8(in) * (size_t)(1 + (u8(in) & 15)), old = f->n;
		if (!on_newest || w->header_cut)
			w->torn_only = false;
		resize(f, old + add, 0);
		if (op % 20 == 3)
			for (size_t i = old; i < f->n; i++)
				f->p[i] = u8(in);
		trace("extend %s by %zu (%s)", f->name, add, op % 20 == 3 ? "garbage" : "zeros");
		break;
	}
	case 4: { /* overwrite up to 16 bytes */
		if (f->n == 0)
			return;
		size_t off = u32(in) % f->n, len = 1 + u8(in) % 16;
		if (!on_newest || off < last_record_start(f))
			w->torn_only = false;
		for (size_t i = 0; i < len && off + i < f->n; i++)
			f->p[off + i] = u8(in);
		trace("overwrite %s @%zu", f->name, off);
		break;
	}
	case 5:
	case 6:
	case 7: { /* a record field, resealed or not */
		size_t starts[4096];
		uint64_t salt = 0;
		size_t k = records(f, starts, 4096, &salt);
		w->torn_only = false;
		if (k == 0)
			return;
		size_t idx = u8(in) % k;
		unsigned char *p = f->p + starts[idx];
		uint8_t field = u8(in) % 7;
		bool reseal = op % 20 != 5;
		uint32_t len = get_u32(p + 8);
		switch (field) {
		case 0: put_u32(p + 8, (uint32_t)value_near(in, len)); break;
		case 1: p[12] = (u8(in) & 1) ? (uint8_t)(1 + u8(in) % (ONCE_WAL_TYPE_END - 1)) : u8(in); break;
		case 2: p[13 + u8(in) % 3] = u8(in) | 1; break;
		case 3: put_u64(p + 16, (uint64_t)value_near(in, get_u64(p + 16))); break;
		case 4:
#if ONCE_WAL_RECORD_HEADER >= 32
			put_u64(p + 24, (uint64_t)value_near(in, get_u64(p + 16)));
#endif
			break;
		default: { /* payload bytes */
			if (len == 0)
				break;
			int nflip = 1 + u8(in) % 4;
			for (int i = 0; i < nflip; i++)
				p[ONCE_WAL_RECORD_HEADER + u32(in) % len] ^= u8(in) | 1;
			break;
		}
		}
		uint32_t nlen = get_u32(p + 8);
		size_t size = once__wal_record_size(nlen);
		if (reseal && nlen <= ONCE_WAL_MAX_PAYLOAD && starts[idx] + size <= f->n)
			put_u64(p, XXH3_64bits_withSeed(p + 8, size - 8, salt));
		trace("record %zu of %s: field %u%s", idx, f->name, field, reseal ? " (resealed)" : "");
		break;
	}
	case 8: { /* segment header field, re-encoded or not */
		struct once__wal_segment seg;
		w->torn_only = false;
		if (!once__wal_segment_decode(f->p, f->n, &seg))
			return;
		uint8_t field = u8(in) % 5;
		switch (field) {
		case 0: seg.number = (uint64_t)value_near(in, seg.number); break;
		case 1: seg.first_seq = (uint64_t)value_near(in, seg.first_seq); break;
		case 2: seg.kind = u8(in) % 3; break;
		case 3: seg.part = (uint32_t)value_near(in, seg.part); break;
		default: {
			struct once__wal_segment other;
			bool copied = false;
			for (size_t i = 0; i < FOREIGN.n && !copied; i++)
				if (once__wal_segment_decode(FOREIGN.f[i].p, FOREIGN.f[i].n, &other))
					memcpy(seg.uid, other.uid, sizeof seg.uid), copied = true;
			if (!copied || (u8(in) & 1))
				seg.uid[u8(in) % 16] ^= 1;
			break;
		}
		}
		unsigned char hdr[ONCE_WAL_SEGMENT_HEADER];
		once__wal_segment_encode(hdr, &seg);
		if (u8(in) & 1)
			memset(hdr + 56, 0, 8); /* checksum left wrong */
		memcpy(f->p, hdr, sizeof hdr);
		trace("header field %u of %s", field, f->name);
		break;
	}
	case 9: { /* CHECKPOINT with a valid checksum */
		uint64_t start = 1;
		unsigned parts = 2, version = 2;
		int c = find(w, ONCE_CHECKPOINT_FILE);
		if (c >= 0)
			sscanf((const char *)w->f[c].p, "oncestore-checkpoint %u %16" SCNx64 " %u", &version, &start,
			       &parts);
		w->torn_only = false;
		if (u8(in) & 1)
			start = (uint64_t)value_near(in, start);
		else
			parts = (unsigned)value_near(in, parts);
		char body[96], text[128];
		int n = snprintf(body, sizeof body, "oncestore-checkpoint %u %016" PRIx64 " %u", version, start,
		                 parts);
		snprintf(text, sizeof text, "%s %016" PRIx64 "\n", body, (uint64_t)XXH3_64bits(body, (size_t)n));
		set_file(w, ONCE_CHECKPOINT_FILE, (const unsigned char *)text, strlen(text));
		trace("CHECKPOINT start %" PRIx64 " parts %u", start, parts);
		break;
	}
	case 10: { /* FORMAT variants */
		static const char *const formats[] = {
			"oncestore 1 00112233445566778899aabbccddeeff\n",
			"oncestore 3 00112233445566778899aabbccddeeff\n",
			"oncestore 2 00112233445566778899aabbccddeefg\n",
			"oncestore 2 00112233445566778899aabbccddeeff",
			"oncestore 2 00112233445566778899aabbccddeeff\n",
			"",
		};
		w->torn_only = false;
		uint8_t v = u8(in) % 7;
		if (v == 6) {
			int g = find(w, "FORMAT");
			for (size_t i = 0; i < FOREIGN.n; i++)
				if (strcmp(FOREIGN.f[i].name, "FORMAT") == 0 && g >= 0)
					set_file(w, "FORMAT", FOREIGN.f[i].p, FOREIGN.f[i].n);
		} else {
			set_file(w, "FORMAT", (const unsigned char *)formats[v], strlen(formats[v]));
		}
		trace("FORMAT variant %u", v);
		break;
	}
	case 11: { /* swap two files' contents */
		int fj = (int)(u8(in) % w->n);
		w->torn_only = false;
		struct file t = w->f[fi];
		w->f[fi].p = w->f[fj].p, w->f[fi].n = w->f[fj].n;
		w->f[fj].p = t.p, w->f[fj].n = t.n;
		trace("swap %s %s", w->f[fi].name, w->f[fj].name);
		break;
	}
	case 12: { /* a foreign file, under its own name or another */
		w->torn_only = false;
		if (FOREIGN.n == 0)
			return;
		const struct file *src = &FOREIGN.f[u8(in) % FOREIGN.n];
		char name[64];
		if (u8(in) & 1)
			snprintf(name, sizeof name, "%s", src->name);
		else
			pick_name(in, w, name);
		set_file(w, name, src->p, src->n);
		trace("foreign %s as %s", src->name, name);
		break;
	}
	case 13: /* delete */
		if (w->n == 0)
			return;
		w->torn_only = false;
		trace("delete %s", w->f[fi].name);
		del_file(w, fi);
		break;
	case 14:
	case 15: { /* rename or duplicate under a store file name */
		if (w->n == 0)
			return;
		char name[64];
		pick_name(in, w, name);
		w->torn_only = false;
		struct file copy = w->f[fi];
		trace("%s %s as %s", op % 20 == 14 ? "rename" : "duplicate", copy.name, name);
		set_file(w, name, copy.p, copy.n);
		if (op % 20 == 14 && strcmp(copy.name, name) != 0)
			del_file(w, find(w, copy.name));
		break;
	}
	case 16: { /* leftover .tmp */
		char name[64];
		static const char *const tmps[] = {"CHECKPOINT.tmp", "FORMAT.tmp", "snap-0000000000000001-0000.tmp",
		                                  "log-0000000000000009.tmp"};
		snprintf(name, sizeof name, "%s", tmps[u8(in) % 4]);
		w->torn_only = false;
		unsigned char junk[32];
		for (size_t i = 0; i < sizeof junk; i++)
			junk[i] = u8(in);
		set_file(w, name, junk, sizeof junk);
		trace("tmp %s", name);
		break;
	}
	default: { /* FIFO, directory, symlink named like a store file */
		if (g_no_special || *nsp >= 4)
			return;
		w->torn_only = false;
		struct special *s = &sp[(*nsp)++];
		pick_name(in, w, s->name);
		s->kind = u8(in) % 5;
		s->target[0] = '\0';
		if (s->kind == 2 && w->n)
			snprintf(s->target, sizeof s->target, "%s", w->f[u8(in) % w->n].name);
		int e = find(w, s->name);
		if (e >= 0)
			del_file(w, e);
		trace("special %d named %s", s->kind, s->name);
		break;
	}
	}
}

/* Writes w's files and the special files into a new directory `path`:
 * NULL, or what failed. */
static const char *write_dir(const char *path, const struct work *w, const struct special *sp, int nsp)
{
	if (mkdir(path, 0700) != 0)
		return "mkdir";
	int dfd = open(path, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return "open";
	for (size_t i = 0; i < w->n; i++) {
		int fd = openat(dfd, w->f[i].name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		bool ok = fd >= 0 && (w->f[i].n == 0 || write(fd, w->f[i].p, w->f[i].n) == (ssize_t)w->f[i].n);
		if (fd >= 0)
			close(fd);
		if (!ok) {
			close(dfd);
			return w->f[i].name;
		}
	}
	for (int i = 0; i < nsp; i++) {
		const struct special *s = &sp[i];
		unlinkat(dfd, s->name, 0);
		unlinkat(dfd, s->name, AT_REMOVEDIR);
		switch (s->kind) {
		case 0: mkfifoat(dfd, s->name, 0600); break;
		case 1: mkdirat(dfd, s->name, 0700); break;
		case 2: symlinkat(s->target[0] ? s->target : "FORMAT", dfd, s->name); break;
		case 3: symlinkat("no-such-file", dfd, s->name); break;
		default: symlinkat("/dev/zero", dfd, s->name); break;
		}
	}
	close(dfd);
	return NULL;
}

static void write_work(struct work *w, const struct special *sp, int nsp)
{
	const char *what = write_dir(w->path, w, sp, nsp);
	if (what != NULL)
		fail("write %s (%s): %s", w->path, what, strerror(errno));
}

static void free_work(struct work *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->f[i].p);
	w->n = 0;
}

/*
 * A verdict on the directory failed: the damaged directory as it was
 * before once_open touched it (w's files and the special files, still in
 * memory) is written to ./datadir-failure-<pid>-<n>/, next to the input
 * libFuzzer saves.  The input alone need not replay: each process makes
 * its golden stores anew, with random nonces and a random hash seed that
 * decides which snapshot part holds which entry in which order, and the
 * mutations pick files, records and offsets by index (an input that
 * damaged a family incarnation failed in only a few processes out of a
 * hundred).  The directory is the exact reproducer: `oncestore verify
 * DIR`, or once_open on a copy of it.
 */
static void save_failure(const struct work *w, const struct special *sp, int nsp)
{
	char name[128];
	snprintf(name, sizeof name, "datadir-failure-%d-%lu", (int)getpid(), g_seq);
	const char *what = write_dir(name, w, sp, nsp);
	if (what != NULL)
		fprintf(stderr, "fuzz_datadir: could not save the damaged directory as %s (%s: %s)\n", name, what,
		        strerror(errno));
	else
		fprintf(stderr, "fuzz_datadir: the damaged directory (before once_open) is saved as %s\n", name);
}

#define VERDICT_FAIL(...)                                                                          \
	do {                                                                                       \
		save_failure(&w, sp, nsp);                                                        \
		fail(__VA_ARGS__);                                                                 \
	} while (0)

/* ---- checks on a store that opened ---- */

static void dump_line(void *ctx, const char *line)
{
	(void)line;
	++*(uint64_t *)ctx;
}

static void exercise(once_store *s, const struct golden *g)
{
	struct once_stats st;
	once_stats(s, &st);
	uint64_t lines = 0;
	once__dump(s, dump_line, &lines);
	for (int i = 0; i < 6; i++) {
		once_code *c = NULL;
		once_code_meta *m = NULL;
		once_status a = once_code_get(s, codes[i], 6, &c);
		once_free(c);
		c = NULL;
		once_status b = once_code_take(s, codes[i], 6, &c, &m);
		once_free(c);
		once_free(m);
		once_status f = once_code_finalize(s, codes[i], 6);
		if (a > ONCE_NOT_FOUND || (b > ONCE_SPENT && b != ONCE_IO) || (f > ONCE_NOT_FOUND && f != ONCE_IO))
			fail("code reads: %s %s %s", once_status_name(a), once_status_name(b), once_status_name(f));
		once_refresh *r = NULL;
		a = once_refresh_get(s, refresh[i], 4, &r);
		once_free(r);
		r = NULL;
		b = once_refresh_consume(s, refresh[i], 4, &r);
		once_free(r);
		if (a > ONCE_NOT_FOUND || (b > ONCE_SPENT && b != ONCE_IO))
			fail("refresh reads: %s %s", once_status_name(a), once_status_name(b));
	}
	for (int i = 0; i < 4; i++) {
		once_nonce_valid(s, g->nonces[i], ONCE_NONCE_LEN);
		once_status a = once_nonce_accept(s, g->nonces[i], ONCE_NONCE_LEN, 120);
		once_status b = once_replay_check(s, jtis[i], 5, 300);
		if (a > ONCE_EXPIRED && a != ONCE_IO)
			fail("nonce accept: %s", once_status_name(a));
		if (b != ONCE_OK && b != ONCE_SPENT && b != ONCE_IO && b != ONCE_FULL)
			fail("replay: %s", once_status_name(b));
	}
	once_access_token_revoked(s, "at-0", 4);
	once_access_token_revoked(s, "at-2", 4);
	once_status a = once_refresh_revoke_family(s, "rfam", 4);
	once_status b = once_code_revoke_family_access_tokens(s, "bfam", 4);
	once_code c = {.client_id = "c", .subject = "s", .redirect_uri = "r", .expires_at = g_now + 5};
	once_status d = once_code_put(s, "fresh", 5, &c);
	if ((a != ONCE_OK && a != ONCE_IO) || (b != ONCE_OK && b != ONCE_IO) ||
	    (d != ONCE_OK && d != ONCE_EXISTS && d != ONCE_IO))
		fail("writes: %s %s %s", once_status_name(a), once_status_name(b), once_status_name(d));
	once_sweep_counts sc;
	if (once_sweep(s, &sc) != ONCE_OK)
		fail("sweep");
	once_status cp = once_checkpoint(s);
	if (cp != ONCE_OK && cp != ONCE_IO)
		fail("checkpoint: %s", once_status_name(cp));
}

/* ---- closing (and reopening) in the background ----
 *
 * once_close waits ~10 ms for liburcu grace periods; a store that opened
 * is closed, opened again (it must: the store accepted and closed it),
 * closed again and its directory removed by a pool of threads.  A failure
 * there writes the input that made the directory to
 * ./datadir-bg-failure-<pid>-<n> before aborting, since libFuzzer would
 * blame whichever input runs at that moment.
 */
#define CLOSERS 16
#define QUEUE 64
struct job {
	once_store *s;
	char path[320];
	uint8_t *input;
	size_t input_n;
};
static struct job q[QUEUE];
static unsigned qh, qt;
static unsigned running; /* jobs a closer has taken and not finished */
static pthread_mutex_t ql = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qmore = PTHREAD_COND_INITIALIZER, qroom = PTHREAD_COND_INITIALIZER;

static void bg_fail(const struct job *j, const char *what, once_status st)
{
	char name[128];
	snprintf(name, sizeof name, "datadir-bg-failure-%d-%lu", (int)getpid(), (unsigned long)g_seq);
	FILE *fp = fopen(name, "wb");
	if (fp) {
		fwrite(j->input, 1, j->input_n, fp);
		fclose(fp);
	}
	fail("%s: %s (%s; input saved as %s)", what, once_status_name(st), j->path, name);
}

static void finish(struct job *j)
{
	once_status st = once_close(j->s);
	if (st != ONCE_OK)
		bg_fail(j, "once_close after a successful open", st);
	once_options o;
	options(&o, j->path, ONCE_SYNC_NONE);
	once_store *s = NULL;
	st = once_open(&o, &s);
	if (st != ONCE_OK)
		bg_fail(j, "reopen of a directory the store had opened and closed", st);
	st = once_close(s);
	if (st != ONCE_OK)
		bg_fail(j, "second once_close", st);
	rm_rf(j->path);
	free(j->input);
}

static void *closer(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&ql);
		while (qh == qt)
			pthread_cond_wait(&qmore, &ql);
		struct job j = q[qh++ % QUEUE];
		running++;
		pthread_cond_signal(&qroom);
		pthread_mutex_unlock(&ql);
		finish(&j);
		pthread_mutex_lock(&ql);
		running--;
		pthread_cond_broadcast(&qroom); /* cleanup waits for the last one */
		pthread_mutex_unlock(&ql);
	}
	return NULL;
}

static void close_later(once_store *s, const char *path, const uint8_t *data, size_t size)
{
	struct job j = {.s = s, .input = malloc(size + 1), .input_n = size};
	snprintf(j.path, sizeof j.path, "%s", path);
	memcpy(j.input, data, size);
	if (g_inline) { /* running given inputs: no background, exact blame */
		finish(&j);
		return;
	}
	pthread_mutex_lock(&ql);
	while (qt - qh >= QUEUE)
		pthread_cond_wait(&qroom, &ql);
	q[qt++ % QUEUE] = j;
	pthread_cond_signal(&qmore);
	pthread_mutex_unlock(&ql);
}

/* ---- the target ---- */

/* True when libFuzzer was given files to run (not a corpus directory to
 * fuzz): then everything runs inline, so a failure names its input. */
static bool running_files(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		if (argv[i][0] != '-' && stat(argv[i], &sb) == 0 && S_ISREG(sb.st_mode))
			return true;
	}
	return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_inline = running_files(*argc, *argv);
	g_trace = getenv("FUZZ_TRACE") && atoi(getenv("FUZZ_TRACE"));
	g_no_special = getenv("FUZZ_NO_SPECIAL") && atoi(getenv("FUZZ_NO_SPECIAL"));
	g_keep = getenv("FUZZ_KEEP") != NULL;
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(g_tmp, sizeof g_tmp, "%s/fuzz_datadir.XXXXXX", base ? base : "/tmp");
	if (mkdtemp(g_tmp) == NULL)
		fail("mkdtemp");
	char p[320];
	snprintf(p, sizeof p, "%s/golden-a", g_tmp);
	make_golden(p, ONCE_SYNC_ALWAYS, true, &G[0]);
	rm_rf(p);
	snprintf(p, sizeof p, "%s/golden-b", g_tmp);
	make_golden(p, ONCE_SYNC_NONE, false, &G[1]);
	rm_rf(p);
	snprintf(p, sizeof p, "%s/foreign", g_tmp);
	make_golden(p, ONCE_SYNC_ALWAYS, true, &FOREIGN);
	rm_rf(p);
	for (int i = 0; i < CLOSERS; i++) {
		pthread_t t;
		pthread_create(&t, NULL, closer, NULL);
		pthread_detach(t);
	}
	return 0;
}

__attribute__((destructor)) static void cleanup(void)
{
	/* The closers may still be reopening directories when libFuzzer's
	 * time is up: let them finish before their directories go (removing
	 * them under a reopen made it report CORRUPT or IO). */
	pthread_mutex_lock(&ql);
	while (qh != qt || running > 0)
		pthread_cond_wait(&qroom, &ql);
	pthread_mutex_unlock(&ql);
	if (g_tmp[0]) {
		DIR *d = opendir(g_tmp);
		if (d != NULL) {
			struct dirent *de;
			char p[600];
			while ((de = readdir(d)) != NULL) {
				if (de->d_name[0] == '.')
					continue;
				snprintf(p, sizeof p, "%s/%s", g_tmp, de->d_name);
				rm_rf(p);
			}
			closedir(d);
		}
		rmdir(g_tmp);
	}
}

/* The verify path: FORMAT read safely, then once__recover without a store. */
static bool verify(const char *path, once_status *out)
{
	int dfd = open(path, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return false;
	int fd = openat(dfd, "FORMAT", O_RDONLY | O_NONBLOCK | O_NOFOLLOW);
	struct stat sb;
	char text[256];
	ssize_t got = -1;
	if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
		got = read(fd, text, sizeof text);
	if (fd >= 0)
		close(fd);
	unsigned char uid[16];
	if (got < 0 || !once__dir_parse_format(text, (size_t)got, uid)) {
		close(dfd);
		return false;
	}
	struct once__recovery r;
	*out = once__recover(dfd, uid, NULL, &r);
	close(dfd);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	g_seq++;
	const struct golden *g = &G[u8(&in) & 1];
	static struct work w;
	memset(&w, 0, sizeof w);
	snprintf(w.path, sizeof w.path, "%s/w%lu", g_tmp, g_seq);
	for (size_t i = 0; i < g->n; i++)
		set_file(&w, g->f[i].name, g->f[i].p, g->f[i].n);
	w.torn_only = true;
	struct special sp[4];
	int nsp = 0;
	int n = u8(&in) % 13;
	for (int i = 0; i < n && in.n > 0; i++)
		mutate(&in, &w, sp, &nsp);
	write_work(&w, sp, nsp);

	once_status v = ONCE_OK;
	bool verified = verify(w.path, &v);
	once_options o;
	options(&o, w.path, ONCE_SYNC_NONE);
	once_store *s = NULL;
	if (g_keep) {
		char cmd[800];
		snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", getenv("FUZZ_KEEP"), w.path,
		         getenv("FUZZ_KEEP"));
		if (system(cmd) != 0)
			fail("%s", cmd);
	}
	once_status st = once_open(&o, &s);
	trace("%d mutations%s: verify %s, open %s", w.mutations, w.torn_only ? " (torn tail only)" : "",
	      verified ? once_status_name(v) : "-", once_status_name(st));
	if (st != ONCE_OK && st != ONCE_CORRUPT && st != ONCE_IO)
		VERDICT_FAIL("once_open: %s", once_status_name(st));
	if (verified && v != ONCE_IO && st != ONCE_IO && (v == ONCE_CORRUPT) != (st == ONCE_CORRUPT))
		VERDICT_FAIL("verify says %s, once_open says %s", once_status_name(v), once_status_name(st));
	if (w.torn_only && st != ONCE_OK)
		VERDICT_FAIL("only a torn tail of the newest segment, yet once_open: %s", once_status_name(st));
	if (st != ONCE_OK) {
		free_work(&w);
		rm_rf(w.path);
		return 0;
	}
	if (w.mutations == 0) {
		struct lines l = dump_sorted(s);
		bool same = l.n == g->ndump;
		for (size_t i = 0; same && i < l.n; i++)
			same = strcmp(l.v[i], g->dump[i]) == 0;
		if (!same)
			VERDICT_FAIL("an undamaged directory does not hold what the golden store held (%zu vs %zu lines)",
			             l.n, g->ndump);
		free_lines(&l);
	}
	free_work(&w);
	if (g_keep) { /* FUZZ_KEEP: the copy is made; no more checks */
		once_close(s);
		rm_rf(w.path);
		return 0;
	}
	exercise(s, g);
	close_later(s, w.path, data, size);
	return 0;
}
