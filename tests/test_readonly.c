/*
 * tests/test_readonly.c - options.read_only (include/oncestore.h): a store
 * opened for inspection of a data directory that another store holds, or
 * that a stopped one left.
 *
 * Invariants checked:
 *   R1  a read-only open takes no lock: it succeeds on a directory another
 *       store holds open, and sees that store's acknowledged writes;
 *   R2  it changes nothing in the directory: every file's name, size,
 *       modification time and bytes, and the directory's own, are the same
 *       before and after (a torn tail included: it is left in place, and
 *       only a normal open cuts it);
 *   R3  every write, the checkpoint and the sweep answer ONCE_INVALID and
 *       change nothing;
 *   R4  a missing directory is ONCE_IO with errno ENOENT, and is not made;
 *       damage no writer explains is ONCE_CORRUPT, as for a normal open;
 *   R5  with a live writer appending and checkpointing meanwhile, every
 *       open succeeds and shows every write acknowledged before it began
 *       (a code put is there; a code taken is not readable as untaken).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "harness.h"

/* ---- a data directory's state, for R2 ---- */

struct file_state {
	char name[64];
	off_t size;
	struct timespec mtime;
	uint64_t digest; /* FNV-1a of the bytes */
};

struct dir_state {
	struct timespec mtime; /* the directory's own: entries made or removed */
	struct file_state f[64];
	size_t n;
};

static uint64_t digest_file(const char *path)
{
	uint64_t h = 1469598103934665603u;
	FILE *f = fopen(path, "rb");
	ASSERT(f != NULL);
	int c;
	while ((c = getc(f)) != EOF)
		h = (h ^ (uint64_t)c) * 1099511628211u;
	fclose(f);
	return h;
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct file_state *)a)->name, ((const struct file_state *)b)->name);
}

static void dir_state(const char *dir, struct dir_state *out)
{
	memset(out, 0, sizeof *out);
	struct stat st;
	ASSERT(stat(dir, &st) == 0);
	out->mtime = st.st_mtim;
	DIR *d = opendir(dir);
	ASSERT(d != NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		ASSERT(out->n < 64);
		struct file_state *f = &out->f[out->n++];
		char path[512];
		snprintf(f->name, sizeof f->name, "%.63s", de->d_name);
		snprintf(path, sizeof path, "%.200s/%.255s", dir, de->d_name);
		ASSERT(stat(path, &st) == 0);
		f->size = st.st_size;
		f->mtime = st.st_mtim;
		f->digest = digest_file(path);
	}
	closedir(d);
	qsort(out->f, out->n, sizeof out->f[0], cmp_file);
}

static void assert_same_state(const struct dir_state *a, const struct dir_state *b)
{
	ASSERT_EQ_U64(a->n, b->n);
	ASSERT_EQ_INT(a->mtime.tv_sec, b->mtime.tv_sec);
	ASSERT_EQ_INT(a->mtime.tv_nsec, b->mtime.tv_nsec);
	for (size_t i = 0; i < a->n; i++) {
		ASSERT_STR(a->f[i].name, b->f[i].name);
		ASSERT_EQ_INT(a->f[i].size, b->f[i].size);
		ASSERT_EQ_INT(a->f[i].mtime.tv_sec, b->f[i].mtime.tv_sec);
		ASSERT_EQ_INT(a->f[i].mtime.tv_nsec, b->f[i].mtime.tv_nsec);
		ASSERT_EQ_U64(a->f[i].digest, b->f[i].digest);
	}
}

/* ---- fixtures ---- */

static void make_dir(char dir[96])
{
	const char *base = getenv("TMPDIR");
	char root[64];
	snprintf(root, sizeof root, "%s/oncero-XXXXXX", base ? base : "/tmp");
	ASSERT(mkdtemp(root) != NULL);
	snprintf(dir, 96, "%s/data", root);
}

static void remove_dir(const char *dir)
{
	char cmd[256];
	int root = (int)(strrchr(dir, '/') - dir); /* make_dir's "<root>/data" */
	snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", root, dir);
	ASSERT(system(cmd) == 0);
}

/* Library lines are expected here (the refusal warning, the torn tail):
 * keep the TAP output clean. */
static void quiet(void *ctx, once_log_level level, const char *message)
{
	(void)ctx, (void)level, (void)message;
}

static once_options dir_options(const char *dir, bool read_only)
{
	once_options o;
	once_options_init(&o);
	o.dir = dir;
	o.read_only = read_only;
	o.shards = 4;
	o.max_codes = o.max_access_tokens = o.max_refresh = o.max_nonces = o.max_replays = 1u << 16;
	o.sweep_interval_ms = 0;
	o.sync = ONCE_SYNC_NONE; /* acknowledged = in the kernel: what a reader reads */
	o.log = quiet;
	return o;
}

static const int64_t FAR = INT64_C(4000000000); /* 2096: never expires here */

static void put_code(once_store *s, uint64_t i)
{
	char key[ONCE_SECRET_LEN + 1];
	test_key(key, "code", i);
	once_code c = test_code(FAR);
	ASSERT_ST(once_code_put(s, key, strlen(key), &c), ONCE_OK);
}

static void take_code(once_store *s, uint64_t i)
{
	char key[ONCE_SECRET_LEN + 1];
	test_key(key, "code", i);
	once_code *out = NULL;
	ASSERT_ST(once_code_take(s, key, strlen(key), &out, NULL), ONCE_OK);
	once_free(out);
}

/* ONCE_OK: there and untaken; ONCE_NOT_FOUND: taken (or missing). */
static once_status get_code(once_store *s, uint64_t i)
{
	char key[ONCE_SECRET_LEN + 1];
	test_key(key, "code", i);
	once_code *out = NULL;
	once_status st = once_code_get(s, key, strlen(key), &out);
	once_free(out);
	return st;
}

/* Codes 0..n-1; the even ones taken.  A checkpoint after the first half,
 * so the directory holds snapshots and a log after them. */
static void fill(once_store *s, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		put_code(s, i);
		if (i % 2 == 0)
			take_code(s, i);
		if (i == n / 2)
			ASSERT_ST(once_checkpoint(s), ONCE_OK);
	}
}

static void check_codes(once_store *s, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		ASSERT_ST(get_code(s, i), i % 2 == 0 ? ONCE_NOT_FOUND : ONCE_OK);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.codes.entries, n); /* a taken code stays, spent */
}

/* The newest log segment's name in dir. */
static void newest_segment(const char *dir, char out[256])
{
	DIR *d = opendir(dir);
	ASSERT(d != NULL);
	char best[64] = "";
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "log-", 4) == 0 && strcmp(de->d_name, best) > 0)
			snprintf(best, sizeof best, "%.63s", de->d_name);
	closedir(d);
	ASSERT(best[0] != '\0');
	snprintf(out, 256, "%s/%s", dir, best);
}

static off_t file_size(const char *path)
{
	struct stat st;
	ASSERT(stat(path, &st) == 0);
	return st.st_size;
}

/* ---- R1, R2 ---- */

static void test_reads_a_held_directory_changing_nothing(void)
{
	char dir[96];
	make_dir(dir);
	once_options wo = dir_options(dir, false);
	once_store *w = test_open(&wo);
	fill(w, 200);

	/* The holder keeps the directory locked: a normal open is refused. */
	once_store *other = NULL;
	ASSERT_ST(once_open(&wo, &other), ONCE_LOCKED);

	struct dir_state before, after;
	dir_state(dir, &before);
	once_options ro = dir_options(dir, true);
	once_store *r = NULL;
	ASSERT_ST(once_open(&ro, &r), ONCE_OK);
	check_codes(r, 200);
	struct once_stats st;
	once_stats(r, &st);
	ASSERT_EQ_INT(st.read_only, 1);
	ASSERT(st.recovered_snapshot_records > 0 && st.recovered_records > 0);
	dir_state(dir, &after);
	assert_same_state(&before, &after);
	ASSERT_ST(once_close(r), ONCE_OK);
	dir_state(dir, &after);
	assert_same_state(&before, &after);

	/* Two read-only stores at once, and the holder goes on writing. */
	ASSERT_ST(once_open(&ro, &r), ONCE_OK);
	once_store *r2 = NULL;
	ASSERT_ST(once_open(&ro, &r2), ONCE_OK);
	put_code(w, 1000);
	ASSERT_ST(once_close(r2), ONCE_OK);
	ASSERT_ST(once_close(r), ONCE_OK);
	ASSERT_ST(once_close(w), ONCE_OK);
	remove_dir(dir);
}

static void test_torn_tail_is_left_in_place(void)
{
	char dir[96];
	make_dir(dir);
	once_options wo = dir_options(dir, false);
	once_store *w = test_open(&wo);
	fill(w, 50);
	ASSERT_ST(once_close(w), ONCE_OK);

	/* A crash mid-append: bytes that are no complete record. */
	char seg[256];
	newest_segment(dir, seg);
	off_t clean = file_size(seg);
	int fd = open(seg, O_WRONLY | O_APPEND);
	ASSERT(fd >= 0);
	unsigned char junk[100];
	memset(junk, 0xa5, sizeof junk);
	ASSERT_EQ_INT(write(fd, junk, sizeof junk), (long long)sizeof junk);
	close(fd);

	struct dir_state before, after;
	dir_state(dir, &before);
	once_options ro = dir_options(dir, true);
	once_store *r = NULL;
	ASSERT_ST(once_open(&ro, &r), ONCE_OK);
	check_codes(r, 50);
	ASSERT_ST(once_close(r), ONCE_OK);
	dir_state(dir, &after);
	assert_same_state(&before, &after);
	ASSERT_EQ_INT(file_size(seg), clean + (off_t)sizeof junk);

	/* A normal open cuts it (and starts a segment of its own). */
	w = test_open(&wo);
	check_codes(w, 50);
	ASSERT_ST(once_close(w), ONCE_OK);
	ASSERT_EQ_INT(file_size(seg), clean);
	remove_dir(dir);
}

/* Damage that no writer explains is still damage: the rereading is
 * bounded, and the open answers ONCE_CORRUPT as a normal one does. */
static void test_damage_is_still_corrupt(void)
{
	char dir[96];
	make_dir(dir);
	once_options wo = dir_options(dir, false);
	once_store *w = test_open(&wo);
	fill(w, 50);
	ASSERT_ST(once_close(w), ONCE_OK);

	DIR *d = opendir(dir);
	ASSERT(d != NULL);
	char snap[256] = "";
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "snap-", 5) == 0)
			snprintf(snap, sizeof snap, "%.95s/%.63s", dir, de->d_name);
	closedir(d);
	ASSERT(snap[0] != '\0');
	int fd = open(snap, O_RDWR);
	ASSERT(fd >= 0);
	unsigned char b;
	off_t at = file_size(snap) / 2;
	ASSERT_EQ_INT(pread(fd, &b, 1, at), 1);
	b ^= 0xff;
	ASSERT_EQ_INT(pwrite(fd, &b, 1, at), 1);
	close(fd);

	struct dir_state before, after;
	dir_state(dir, &before);
	once_options ro = dir_options(dir, true);
	once_store *r = NULL;
	ASSERT_ST(once_open(&ro, &r), ONCE_CORRUPT);
	ASSERT(r == NULL);
	ASSERT_ST(once_open(&wo, &r), ONCE_CORRUPT); /* the two agree */
	dir_state(dir, &after);
	assert_same_state(&before, &after);
	remove_dir(dir);
}

/* ---- R3 ---- */

static void test_writes_are_refused(void)
{
	char dir[96];
	make_dir(dir);
	once_options wo = dir_options(dir, false);
	once_store *w = test_open(&wo);
	fill(w, 20);
	ASSERT_ST(once_close(w), ONCE_OK);

	struct dir_state before, after;
	dir_state(dir, &before);
	once_options ro = dir_options(dir, true);
	once_store *r = NULL;
	ASSERT_ST(once_open(&ro, &r), ONCE_OK);

	char key[ONCE_SECRET_LEN + 1];
	test_key(key, "code", 1); /* present and untaken */
	size_t kl = strlen(key);
	once_code c = test_code(FAR);
	ASSERT_ST(once_code_put(r, "fresh", 5, &c), ONCE_INVALID);
	once_code *out = (once_code *)&c; /* must stay untouched */
	once_code_meta *meta = NULL;
	ASSERT_ST(once_code_take(r, key, kl, &out, &meta), ONCE_INVALID);
	ASSERT(out == (once_code *)&c && meta == NULL);
	ASSERT_ST(once_code_finalize(r, key, kl), ONCE_INVALID);
	ASSERT_ST(once_code_record_access_token(r, "fam", 3, "jti", 3, FAR), ONCE_INVALID);
	ASSERT_ST(once_code_revoke_family_access_tokens(r, "fam", 3), ONCE_INVALID);
	once_refresh rt;
	memset(&rt, 0, sizeof rt);
	rt.client_id = "client-1";
	rt.subject = "user-1";
	rt.family_id = "fam";
	rt.expires_at = FAR;
	ASSERT_ST(once_refresh_insert(r, "rt", 2, &rt), ONCE_INVALID);
	once_refresh *rout = NULL;
	ASSERT_ST(once_refresh_consume(r, "rt", 2, &rout), ONCE_INVALID);
	ASSERT_ST(once_refresh_remember_successor(r, "rt", 2, "x", 1), ONCE_INVALID);
	ASSERT_ST(once_refresh_rotate(r, "rt", 2, "rt2", 3, &rt, "x", 1, &rout), ONCE_INVALID);
	ASSERT(rout == NULL);
	ASSERT_ST(once_refresh_revoke_family(r, "fam", 3), ONCE_INVALID);
	char nonce[ONCE_NONCE_LEN + 1] = "";
	ASSERT_ST(once_nonce_issue(r, 60, nonce), ONCE_INVALID);
	ASSERT_STR(nonce, "");
	ASSERT_ST(once_nonce_accept(r, "nonce", 5, 60), ONCE_INVALID);
	ASSERT_ST(once_replay_check(r, "jti", 3, 60), ONCE_INVALID);
	once_ticket t = 7;
	ASSERT_ST(once_code_put_async(r, "fresh", 5, &c, &t), ONCE_INVALID);
	ASSERT_EQ_U64(t, 0);
	ASSERT_ST(once_checkpoint(r), ONCE_INVALID);
	once_sweep_counts sc = {.examined = 99};
	ASSERT_ST(once_sweep(r, &sc), ONCE_INVALID);
	ASSERT_EQ_U64(sc.examined, 99);

	/* No log: no ticket was handed out, and none is pending. */
	once_ticket upto = 5;
	ASSERT_ST(once_tickets_durable(r, &upto), ONCE_OK);
	ASSERT_EQ_U64(upto, 0);
	ASSERT_ST(once_ticket_wait(r, 0), ONCE_OK);
	ASSERT_ST(once_ticket_wait(r, 1), ONCE_INVALID);
	ASSERT_EQ_INT(once_ticket_fd(r), -1);

	/* Reads work, and show nothing changed. */
	check_codes(r, 20);
	ASSERT(!once_nonce_valid(r, "nonce", 5));
	ASSERT(!once_access_token_revoked(r, "jti", 3));
	ASSERT_ST(once_refresh_get(r, "rt", 2, &rout), ONCE_NOT_FOUND);
	struct once_stats st;
	once_stats(r, &st);
	ASSERT_EQ_U64(st.ops[ONCE_OP_CODE_PUT][ONCE_INVALID], 2);
	ASSERT_EQ_U64(st.refresh.entries + st.nonces.entries + st.replays.entries + st.access_tokens.entries, 0);
	ASSERT_ST(once_close(r), ONCE_OK);
	dir_state(dir, &after);
	assert_same_state(&before, &after);
	remove_dir(dir);
}

/* ---- R4, and the options ---- */

static void test_missing_dir_is_not_made(void)
{
	char dir[96];
	make_dir(dir); /* its parent exists; dir itself does not */
	once_options ro = dir_options(dir, true);
	once_store *r = NULL;
	errno = 0;
	ASSERT_ST(once_open(&ro, &r), ONCE_IO);
	ASSERT_EQ_INT(errno, ENOENT);
	ASSERT(r == NULL);
	struct stat st;
	ASSERT(stat(dir, &st) != 0 && errno == ENOENT);

	/* An empty directory (a store not made yet): an empty store, and
	 * still no FORMAT written. */
	ASSERT(mkdir(dir, 0700) == 0);
	ASSERT_ST(once_open(&ro, &r), ONCE_OK);
	ASSERT_EQ_U64(test_entries(r, "codes"), 0);
	ASSERT_ST(once_close(r), ONCE_OK);
	struct dir_state empty;
	dir_state(dir, &empty);
	ASSERT_EQ_U64(empty.n, 0);

	/* read_only reads a directory: not without one, not on PostgreSQL. */
	ro.dir = NULL;
	ASSERT_ST(once_open(&ro, &r), ONCE_INVALID);
	ro.postgres = "host=/nonexistent";
	ASSERT_ST(once_open(&ro, &r), ONCE_INVALID);
	remove_dir(dir);
}

/* ---- R5: a live writer ---- */

#define LIVE_OPENS 500

struct live {
	once_store *w;
	_Atomic uint64_t acked; /* codes 0..acked-1 put, the even ones taken: acknowledged */
	_Atomic bool stop;
	uint64_t checkpoints;
};

static void *live_writer(void *arg)
{
	struct live *l = arg;
	uint64_t i = 0;
	while (!atomic_load(&l->stop) && i < 60000) {
		put_code(l->w, i);
		if (i % 2 == 0)
			take_code(l->w, i);
		atomic_store(&l->acked, i + 1);
		/* Checkpoints often: each one renames CHECKPOINT and removes
		 * the segments and snapshots it covers under the readers. */
		if (i % 8 == 7) {
			ASSERT_ST(once_checkpoint(l->w), ONCE_OK);
			l->checkpoints++;
		}
		i++;
	}
	return NULL;
}

/* A sample of 0..acked-1: the newest 32, and a stride over the rest. */
static void check_live(once_store *r, uint64_t acked)
{
	uint64_t stride = acked / 128 + 1;
	for (uint64_t i = 0; i < acked; i += (acked - i <= 32 ? 1 : stride)) {
		once_status st = get_code(r, i);
		if (st != (i % 2 == 0 ? ONCE_NOT_FOUND : ONCE_OK))
			FAIL_AT("code %" PRIu64 " of %" PRIu64 " acknowledged: %s", i, acked,
			        once_status_name(st));
	}
	struct once_stats st;
	once_stats(r, &st);
	if (st.codes.entries < acked) /* a put lost (taken codes stay, spent) */
		FAIL_AT("%" PRIu64 " codes, %" PRIu64 " acknowledged", st.codes.entries, acked);
}

static void test_live_writer(void)
{
	char dir[96];
	make_dir(dir);
	once_options wo = dir_options(dir, false);
	wo.checkpoint_bytes = 4096; /* and the store's own checkpointer too */
	wo.shards = 64;             /* 64 snapshots a checkpoint: a longer read */
	struct live l = {.w = test_open(&wo)};
	pthread_t t;
	ASSERT(pthread_create(&t, NULL, live_writer, &l) == 0);
	once_options ro = dir_options(dir, true);
	for (int n = 0; n < LIVE_OPENS; n++) {
		uint64_t acked = atomic_load(&l.acked);
		once_store *r = NULL;
		once_status st = once_open(&ro, &r);
		if (st != ONCE_OK)
			FAIL_AT("read-only open %d: %s", n, once_status_name(st));
		check_live(r, acked);
		ASSERT_ST(once_close(r), ONCE_OK);
	}
	atomic_store(&l.stop, true);
	ASSERT(pthread_join(t, NULL) == 0);
	ASSERT(l.checkpoints > 0);
	ASSERT_ST(once_close(l.w), ONCE_OK);
	remove_dir(dir);
}

TESTS(TEST(test_reads_a_held_directory_changing_nothing), TEST(test_torn_tail_is_left_in_place),
      TEST(test_damage_is_still_corrupt), TEST(test_writes_are_refused), TEST(test_missing_dir_is_not_made), TEST(test_live_writer));
TEST_MAIN()
