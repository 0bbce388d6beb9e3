/*
 * tests/test_powercut.c - deterministic regressions for the holes a
 * power-loss simulation found (issue 9), each driven through the system
 * call table of wal/io.h so it needs no real power cut:
 *
 *   1. a checkpoint whose snapshot holds a rotation whose record never
 *      reached the disk (the writer's pwrite is held back while the walk
 *      runs, then the process dies): recovery must never show the child
 *      live while its parent is unconsumed (wal/snapshot.c);
 *   2. directory entries are made durable with fsync, never fdatasync, and
 *      the data directory's parent is synced at open (wal/dir.h);
 *   3. a group write whose sync never returned, kept with an earlier record
 *      damaged and later ones intact (a subset of its sectors), is a torn
 *      tail: the store opens with everything acknowledged (wal/format.h);
 *   5. a FIFO, directory or symbolic link named like a store file is
 *      refused as foreign (ONCE_CORRUPT) instead of blocking the open.
 * (Item 4, extreme times, is tests/test_times.c; the simulator itself is
 * tests/plsim/.)
 *
 * Each case forks before it opens a store where it needs a process to die
 * (liburcu's threads do not survive a fork; tests/test_recovery.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "durable.h"
#include "format.h"
#include "io.h"

static const unsigned char SUCC_KEY[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                           17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static once_options opts(struct test_clock *clk, const char *dir)
{
	once_options o = test_durable_options(clk, dir);
	o.successor_key = SUCC_KEY;
	o.shards = 2;
	return o;
}

static void wait_child_killed(pid_t pid)
{
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		FAIL_AT("the writer did not reach its kill (status %d)", status);
}

/* ------------------------------------------------------------------------ */
/* 1. A snapshot holding a rotation whose record never became durable        */
/* ------------------------------------------------------------------------ */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool go, hold_log_writes, held, checkpoint_waited;
	once_store *s;
	char k8[64], k9[64], k10[64];
	char (*chosen)[64]; /* shared with the parent: the three keys */
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* Holds back a write to the log while hold_log_writes is set, for at most
 * 1.5 s: the writer's record stays in memory while the checkpoint runs.  A
 * checkpoint that (rightly) waits for that record is let through by the
 * time limit. */
static ssize_t held_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (test_fd_named(fd, "log-")) {
		pthread_mutex_lock(&R.mu);
		if (R.hold_log_writes) {
			R.held = true;
			pthread_cond_broadcast(&R.cv);
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1;
			until.tv_nsec += 500000000;
			if (until.tv_nsec >= 1000000000)
				until.tv_sec++, until.tv_nsec -= 1000000000;
			while (R.hold_log_writes &&
			       pthread_cond_timedwait(&R.cv, &R.mu, &until) != ETIMEDOUT) {
			}
			R.hold_log_writes = false;
		}
		pthread_mutex_unlock(&R.mu);
	}
	return pwrite(fd, buf, n, off);
}

/* The rotations 8 -> 9 (durable) and 9 -> 10 (its write held back). */
static void *rotator(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&R.mu);
	while (!R.go)
		pthread_cond_wait(&R.cv, &R.mu);
	pthread_mutex_unlock(&R.mu);
	once_refresh r9 = test_refresh("fam", 5000), r10 = test_refresh("fam", 5000);
	r9.generation = 9, r10.generation = 10;
	if (once_refresh_rotate(R.s, R.k8, strlen(R.k8), R.k9, strlen(R.k9), &r9, "to-9", 4, NULL) !=
	    ONCE_OK)
		abort();
	pthread_mutex_lock(&R.mu);
	R.hold_log_writes = true;
	pthread_mutex_unlock(&R.mu);
	once_refresh_rotate(R.s, R.k9, strlen(R.k9), R.k10, strlen(R.k10), &r10, "to-10", 5, NULL);
	return NULL;
}

/* After shard 0's snapshot is written and before shard 1 is walked: the two
 * rotations run, the second one's record held in memory. */
static int rotating_fdatasync(int fd)
{
	if (test_fd_named(fd, "snap-") && test_fd_named(fd, "-0000.tmp")) {
		pthread_mutex_lock(&R.mu);
		if (!R.go) {
			R.go = true;
			pthread_cond_broadcast(&R.cv);
			while (!R.held)
				pthread_cond_wait(&R.cv, &R.mu);
		}
		pthread_mutex_unlock(&R.mu);
	}
	return fdatasync(fd);
}

/* A key of the refresh table that lives in shard 1 (walked second). */
static void key_in_shard1(once_store *s, char out[64], const char *tag)
{
	for (int i = 0;; i++) {
		snprintf(out, 64, "rt-%s-%d", tag, i);
		struct once__key k;
		ASSERT_ST(once__key_make_stored(s, ONCE_TBL_REFRESH, out, strlen(out), &k), ONCE_OK);
		if (k.shard == 1)
			return;
	}
}

static _Noreturn void rotation_writer(const once_options *o)
{
	R.s = test_open(o);
	key_in_shard1(R.s, R.k8, "8");
	key_in_shard1(R.s, R.k9, "9");
	key_in_shard1(R.s, R.k10, "10");
	memcpy(R.chosen[0], R.k8, 64);
	memcpy(R.chosen[1], R.k9, 64);
	memcpy(R.chosen[2], R.k10, 64);
	once_refresh r8 = test_refresh("fam", 5000);
	ASSERT_ST(once_refresh_insert(R.s, R.k8, strlen(R.k8), &r8), ONCE_OK);
	pthread_t t;
	ASSERT(pthread_create(&t, NULL, rotator, NULL) == 0);
	once__io.pwrite = held_pwrite;
	once__io.fdatasync = rotating_fdatasync;
	ASSERT_ST(once_checkpoint(R.s), ONCE_OK);
	/* The power cut (or kill -9) right after the checkpoint committed:
	 * whatever of the held record was not written is lost. */
	kill(getpid(), SIGKILL);
	abort();
}

static void test_snapshot_never_holds_an_undurable_rotation(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_options o = opts(&clk, dir);
	/* The shard of a key depends on the store's random hash seed, so the
	 * writer picks the keys and passes them back. */
	R.chosen = mmap(NULL, 3 * 64, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(R.chosen != MAP_FAILED);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0)
		rotation_writer(&o);
	wait_child_killed(pid);

	once_store *s = test_open(&o);
	char k8[64], k9[64], k10[64];
	memcpy(k8, R.chosen[0], 64);
	memcpy(k9, R.chosen[1], 64);
	memcpy(k10, R.chosen[2], 64);
	munmap(R.chosen, 3 * 64);
	once_refresh *p8 = NULL, *p9 = NULL, *p10 = NULL;
	ASSERT_ST(once_refresh_get(s, k8, strlen(k8), &p8), ONCE_OK);
	ASSERT(p8->consumed); /* 8 -> 9 was acknowledged */
	ASSERT_ST(once_refresh_get(s, k9, strlen(k9), &p9), ONCE_OK);
	once_status st10 = once_refresh_get(s, k10, strlen(k10), &p10);
	/* 9 -> 10 was never acknowledged: all of it or none of it. */
	if (st10 == ONCE_OK && !p9->consumed)
		FAIL_AT("half a rotation: child %s live while its parent %s is unconsumed", k10, k9);
	if (st10 != ONCE_OK && p9->consumed)
		FAIL_AT("half a rotation: parent %s consumed, child %s absent (%s)", k9, k10,
		        once_status_name(st10));
	once_free(p8);
	once_free(p9);
	once_free(p10);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* 2. Directory entries: fsync, never fdatasync; the parent synced at open   */
/* ------------------------------------------------------------------------ */

static _Atomic int dir_fdatasyncs;
static _Atomic ino_t fsynced[64];
static _Atomic int n_fsynced;

static bool is_dir(int fd, ino_t *ino)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return false;
	*ino = st.st_ino;
	return S_ISDIR(st.st_mode);
}

static int watching_fdatasync(int fd)
{
	ino_t ino;
	if (is_dir(fd, &ino))
		atomic_fetch_add(&dir_fdatasyncs, 1);
	return fdatasync(fd);
}

static int watching_fsync(int fd)
{
	ino_t ino;
	if (is_dir(fd, &ino)) {
		int i = atomic_fetch_add(&n_fsynced, 1);
		if (i < 64)
			atomic_store(&fsynced[i], ino);
	}
	return fsync(fd);
}

static int times_fsynced(const char *path)
{
	struct stat st;
	ASSERT(stat(path, &st) == 0);
	int n = 0;
	for (int i = 0; i < atomic_load(&n_fsynced) && i < 64; i++)
		n += atomic_load(&fsynced[i]) == st.st_ino;
	return n;
}

static void test_directory_entries_synced_with_fsync(void)
{
	char dir[256], parent[256];
	test_tmpdir(dir);
	snprintf(parent, sizeof parent, "%s", dir);
	*strrchr(parent, '/') = '\0';
	once__io.fdatasync = watching_fdatasync;
	once__io.fsync = watching_fsync;
	struct test_clock clk = {1000};
	once_options o = opts(&clk, dir);
	once_store *s = test_open(&o);
	ASSERT(times_fsynced(parent) >= 1); /* the new data directory's name */
	int before = times_fsynced(dir);
	ASSERT(before >= 2); /* FORMAT, the first segment */
	char k[ONCE_SECRET_LEN + 1];
	test_key(k, "dirsync", 1);
	once_code c = test_code(5000);
	ASSERT_ST(once_code_put(s, k, ONCE_SECRET_LEN, &c), ONCE_OK);
	ASSERT_ST(once_checkpoint(s), ONCE_OK);
	/* At least: the new segment, the snapshots' renames, CHECKPOINT's. */
	ASSERT(times_fsynced(dir) >= before + 3);
	ASSERT_ST(once_close(s), ONCE_OK);
	int parent_syncs = times_fsynced(parent);
	s = test_open(&o); /* a reopen syncs the parent again (wal/dir.c) */
	ASSERT(times_fsynced(parent) == parent_syncs + 1);
	ASSERT_ST(once_close(s), ONCE_OK);
	ASSERT_EQ_INT(atomic_load(&dir_fdatasyncs), 0);
	once__io_reset();
	test_rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* 3. A torn group write: an earlier record damaged, later ones intact       */
/* ------------------------------------------------------------------------ */

enum { GROUP_THREADS = 6 };

static _Atomic int log_pwrites, log_syncs;

/* The first log write after arming waits, so the other writers queue up
 * into the next group; that group's fdatasync fails: it is written but
 * never synced, like a group in flight at a power cut. */
static ssize_t slow_first_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (test_fd_named(fd, "log-") && atomic_fetch_add(&log_pwrites, 1) == 0)
		usleep(200 * 1000);
	return pwrite(fd, buf, n, off);
}

static int second_sync_fails(int fd)
{
	if (test_fd_named(fd, "log-") && atomic_fetch_add(&log_syncs, 1) == 1) {
		errno = EIO;
		return -1;
	}
	return fdatasync(fd);
}

struct group_writer {
	once_store *s;
	int i;
	once_status st;
};

static void *group_put(void *arg)
{
	struct group_writer *w = arg;
	char k[ONCE_SECRET_LEN + 1];
	test_key(k, "group", (uint64_t)w->i);
	once_code c = test_code(5000);
	w->st = once_code_put(w->s, k, ONCE_SECRET_LEN, &c);
	return NULL;
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* One attempt; false when the writers did not form a group of two or more
 * records after the acknowledged ones (timing), so there is nothing to
 * tear and the caller tries again. */
static bool torn_group_attempt(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_options o = opts(&clk, dir);
	once_store *s = test_open(&o);
	char k0[ONCE_SECRET_LEN + 1];
	test_key(k0, "before", 0);
	once_code c = test_code(5000);
	ASSERT_ST(once_code_put(s, k0, ONCE_SECRET_LEN, &c), ONCE_OK);
	atomic_store(&log_pwrites, 0);
	atomic_store(&log_syncs, 0);
	once__io.pwrite = slow_first_pwrite;
	once__io.fdatasync = second_sync_fails;
	pthread_t t[GROUP_THREADS];
	struct group_writer w[GROUP_THREADS];
	for (int i = 0; i < GROUP_THREADS; i++) {
		w[i] = (struct group_writer){s, i, ONCE_OK};
		ASSERT(pthread_create(&t[i], NULL, group_put, &w[i]) == 0);
	}
	for (int i = 0; i < GROUP_THREADS; i++)
		pthread_join(t[i], NULL);
	once__io_reset();
	once_status closed = once_close(s);
	if (closed == ONCE_OK) {
		/* Every writer's record went in the first group (the log's
		 * writer thread took the queue after all six had appended):
		 * no second sync, nothing to tear; try again. */
		test_rmdir(dir);
		return false;
	}
	ASSERT_ST(closed, ONCE_IO);

	/* The segment: find the last group (the records sharing the last
	 * record's synced-below mark) and damage its first record. */
	char seg[512];
	snprintf(seg, sizeof seg, "%s/log-0000000000000001", dir);
	int fd = open(seg, O_RDWR);
	ASSERT(fd >= 0);
	struct stat st;
	ASSERT(fstat(fd, &st) == 0);
	size_t len = (size_t)st.st_size;
	unsigned char *b = malloc(len);
	ASSERT(b != NULL && pread(fd, b, len, 0) == (ssize_t)len);
	size_t offs[64];
	int n = 0;
	static const unsigned char zero_header[ONCE_WAL_RECORD_HEADER];
	for (size_t at = ONCE_WAL_SEGMENT_HEADER; at + ONCE_WAL_RECORD_HEADER <= len && n < 64; n++) {
		/* The records end where the preallocated zeros begin (issue 11):
		 * a zero header is no record. */
		if (memcmp(b + at, zero_header, sizeof zero_header) == 0)
			break;
		offs[n] = at;
		uint32_t l = (uint32_t)le64(b + at + 8) & 0xffffffffu;
		at += once__wal_record_size(l);
	}
	uint64_t last_mark = le64(b + offs[n - 1] + 24);
	int first = n - 1;
	while (first > 0 && le64(b + offs[first - 1] + 24) == last_mark)
		first--;
	bool tearable = n - first >= 2;
	if (tearable) {
		b[offs[first] + ONCE_WAL_RECORD_HEADER] ^= 0x5a; /* its payload's first byte */
		ASSERT(pwrite(fd, b + offs[first] + ONCE_WAL_RECORD_HEADER, 1,
		              (off_t)(offs[first] + ONCE_WAL_RECORD_HEADER)) == 1);
	}
	close(fd);
	free(b);
	if (tearable) {
		s = NULL;
		once_status got = once_open(&o, &s);
		if (got != ONCE_OK)
			FAIL_AT("a torn group whose sync never returned: once_open says %s, want OK",
			        once_status_name(got));
		ASSERT_ST(once_code_get(s, k0, ONCE_SECRET_LEN, NULL), ONCE_OK);
		for (int i = 0; i < GROUP_THREADS; i++) {
			char k[ONCE_SECRET_LEN + 1];
			test_key(k, "group", (uint64_t)i);
			if (w[i].st == ONCE_OK) /* acknowledged: must be there */
				ASSERT_ST(once_code_get(s, k, ONCE_SECRET_LEN, NULL), ONCE_OK);
		}
		ASSERT_ST(once_close(s), ONCE_OK);
	}
	test_rmdir(dir);
	return tearable;
}

static void test_torn_group_write_is_a_torn_tail(void)
{
	for (int attempt = 0; attempt < 20; attempt++)
		if (torn_group_attempt())
			return;
	FAIL_AT("20 attempts never formed a group of two records");
}

/* ------------------------------------------------------------------------ */
/* 5. Foreign file types named like store files                              */
/* ------------------------------------------------------------------------ */

/* What the open says, in a child that an alarm kills if the open blocks. */
static int open_in_child(const once_options *o)
{
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		alarm(20);
		once_store *s = NULL;
		once_status st = once_open(o, &s);
		if (st == ONCE_OK)
			once_close(s);
		_exit((int)st);
	}
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	if (WIFSIGNALED(status))
		FAIL_AT("once_open did not return (signal %d): it blocked", WTERMSIG(status));
	return WEXITSTATUS(status);
}

static void test_fifo_and_foreign_types_refused(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_options o = opts(&clk, dir);
	ASSERT_EQ_INT(open_in_child(&o), ONCE_OK); /* makes the store */
	char path[512], aside[512];
	/* A FIFO named like the next log segment. */
	snprintf(path, sizeof path, "%s/log-00000000000000ff", dir);
	ASSERT(mkfifo(path, 0600) == 0);
	ASSERT_EQ_INT(open_in_child(&o), ONCE_CORRUPT);
	ASSERT(unlink(path) == 0);
	/* A directory, and a symbolic link to a real segment. */
	ASSERT(mkdir(path, 0700) == 0);
	ASSERT_EQ_INT(open_in_child(&o), ONCE_CORRUPT);
	ASSERT(rmdir(path) == 0);
	ASSERT(symlink("log-0000000000000001", path) == 0);
	ASSERT_EQ_INT(open_in_child(&o), ONCE_CORRUPT);
	ASSERT(unlink(path) == 0);
	/* A whole segment header under another segment's name: foreign, even
	 * when it is only the 64 header bytes (a crash mid-creation leaves a
	 * header that does not decode); and a number with no successor (the
	 * next segment would wrap to 0: found by tests/fuzz/fuzz_datadir). */
	const char *names[] = {"log-00000000000000fe", "log-ffffffffffffffff", "log-4000000000000000"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char first[512];
		snprintf(first, sizeof first, "%s/log-0000000000000001", dir);
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		size_t len;
		unsigned char *b = test_slurp(first, &len);
		ASSERT(len >= ONCE_WAL_SEGMENT_HEADER);
		test_spit(path, b, ONCE_WAL_SEGMENT_HEADER);
		free(b);
		ASSERT_EQ_INT(open_in_child(&o), ONCE_CORRUPT);
		ASSERT(unlink(path) == 0);
	}
	ASSERT_EQ_INT(open_in_child(&o), ONCE_OK);
	/* FORMAT and CHECKPOINT as FIFOs. */
	snprintf(path, sizeof path, "%s/FORMAT", dir);
	snprintf(aside, sizeof aside, "%s/FORMAT.keep", dir);
	ASSERT(rename(path, aside) == 0);
	ASSERT(mkfifo(path, 0600) == 0);
	ASSERT_EQ_INT(open_in_child(&o), ONCE_CORRUPT);
	ASSERT(unlink(path) == 0 && rename(aside, path) == 0);
	snprintf(path, sizeof path, "%s/CHECKPOINT", dir);
	ASSERT(mkfifo(path, 0600) == 0);
	ASSERT_EQ_INT(open_in_child(&o), ONCE_CORRUPT);
	ASSERT(unlink(path) == 0);
	/* Leftover temporaries of any type are removed, never opened. */
	snprintf(path, sizeof path, "%s/CHECKPOINT.tmp", dir);
	ASSERT(mkfifo(path, 0600) == 0);
	ASSERT_EQ_INT(open_in_child(&o), ONCE_OK);
	ASSERT(access(path, F_OK) != 0);
	test_rmdir(dir);
}

TESTS(TEST(test_snapshot_never_holds_an_undurable_rotation),
      TEST(test_directory_entries_synced_with_fsync), TEST(test_torn_group_write_is_a_torn_tail),
      TEST(test_fifo_and_foreign_types_refused));
TEST_MAIN()
