/*
 * tests/test_wal_log.c - the log writer of wal/log.h, on real files in a
 * temporary directory: records land in the file in sequence order and read
 * back valid (wal/format.h); ONCE_SYNC_ALWAYS syncs before a commit returns
 * and concurrent committers share syncs; NONE never syncs; injected I/O
 * faults (failing fdatasync, ENOSPC, short writes) through wal/io.h: a
 * failure answers ONCE_IO then and to every later call, while what was
 * committed before it stays readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include "format.h"
#include "harness.h"
#include "io.h"
#include "log.h"

static const unsigned char UID[16] = "0123456789abcdef";

struct tmp {
	char dir[64];
	char path[128];
};

static void tmp_make(struct tmp *t)
{
	const char *base = getenv("TMPDIR");
	snprintf(t->dir, sizeof t->dir, "%s/oncewal-XXXXXX", base ? base : "/tmp");
	ASSERT(mkdtemp(t->dir) != NULL);
	snprintf(t->path, sizeof t->path, "%s/log-1.wal", t->dir);
}

static void tmp_remove(struct tmp *t)
{
	unlink(t->path);
	rmdir(t->dir);
}

/* Reads the segment back and scans it. */
static struct once__wal_scan scan_file(const char *path, struct once__wal_segment *seg)
{
	int fd = open(path, O_RDONLY);
	ASSERT(fd >= 0);
	struct stat st;
	ASSERT(fstat(fd, &st) == 0);
	unsigned char *buf = malloc((size_t)st.st_size + 1);
	ASSERT(buf != NULL && read(fd, buf, (size_t)st.st_size) == st.st_size);
	close(fd);
	ASSERT(once__wal_segment_decode(buf, (size_t)st.st_size, seg));
	struct once__wal_scan sc;
	once__wal_scan(buf + ONCE_WAL_SEGMENT_HEADER, (size_t)st.st_size - ONCE_WAL_SEGMENT_HEADER,
	               once__wal_salt(seg), seg->first_seq, &sc);
	free(buf);
	return sc;
}

static void test_append_commit_reads_back(void)
{
	struct tmp t;
	tmp_make(&t);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 500, &(struct once__log_config){ONCE_SYNC_ALWAYS, 0, 0}, &log, AT_FDCWD), ONCE_OK);
	struct stat st;
	ASSERT(stat(t.path, &st) == 0);
	ASSERT_EQ_INT(st.st_mode & 0777, 0600);
	for (int i = 0; i < 100; i++) {
		uint64_t seq;
		ASSERT_ST(once__log_append(log, ONCE_WAL_REPLAY_RECORD, "jti-value", (uint32_t)(i % 9), &seq),
		          ONCE_OK);
		ASSERT_EQ_U64(seq, 500 + (uint64_t)i);
		ASSERT_ST(once__log_commit(log, seq), ONCE_OK);
	}
	struct once__log_stats ls;
	once__log_stats(log, &ls);
	ASSERT_EQ_U64(ls.records, 100);
	ASSERT_EQ_U64(ls.synced_records, 100);
	ASSERT(ls.syncs >= 1 && ls.syncs <= 100);
	/* Committing a record that was never appended is refused. */
	ASSERT_ST(once__log_commit(log, 600), ONCE_INVALID);
	ASSERT_ST(once__log_close(log), ONCE_OK);
	struct once__wal_segment seg;
	struct once__wal_scan sc = scan_file(t.path, &seg);
	ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
	ASSERT_EQ_U64(sc.records, 100);
	ASSERT_EQ_U64(seg.first_seq, 500);
	ASSERT(memcmp(seg.uid, UID, 16) == 0);
	tmp_remove(&t);
}

/* Counts fdatasync calls made while the test's hook is installed. */
static _Atomic int syncs_seen;
static int counting_fdatasync(int fd)
{
	atomic_fetch_add(&syncs_seen, 1);
	return fdatasync(fd);
}

struct writer {
	struct once__log *log;
	int records;
	_Atomic int *failures;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	for (int i = 0; i < w->records; i++) {
		uint64_t seq;
		if (once__log_append(w->log, ONCE_WAL_CODE_TAKE, "0123456789abcdef0123456789abcdef0123456789a",
		                     43, &seq) != ONCE_OK ||
		    once__log_commit(w->log, seq) != ONCE_OK)
			atomic_fetch_add(w->failures, 1);
	}
	return NULL;
}

/* 8 threads committing at once: every record durable and in order in the
 * file, every sync counted; records per sync is printed (machines differ
 * in how much they batch, so it is reported, not asserted). */
static void test_group_commit_many_writers(void)
{
	struct tmp t;
	tmp_make(&t);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_ALWAYS, 0, 0}, &log, AT_FDCWD), ONCE_OK);
	once__io.fdatasync = counting_fdatasync;
	enum { THREADS = 8, EACH = 300 };
	_Atomic int failures = 0;
	pthread_t tid[THREADS];
	struct writer w = {log, EACH, &failures};
	for (int i = 0; i < THREADS; i++)
		ASSERT(pthread_create(&tid[i], NULL, writer_main, &w) == 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	ASSERT_EQ_INT(atomic_load(&failures), 0);
	struct once__log_stats ls;
	once__log_stats(log, &ls);
	once__io_reset();
	ASSERT_EQ_U64(ls.synced_records, THREADS * EACH);
	ASSERT_EQ_U64(ls.syncs, (uint64_t)atomic_load(&syncs_seen));
	printf("# %d records, %" PRIu64 " syncs: %.1f records per sync\n", THREADS * EACH, ls.syncs,
	       (double)ls.synced_records / (double)ls.syncs);
	ASSERT_ST(once__log_close(log), ONCE_OK);
	struct once__wal_segment seg;
	struct once__wal_scan sc = scan_file(t.path, &seg);
	ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
	ASSERT_EQ_U64(sc.records, THREADS * EACH);
	tmp_remove(&t);
}

static void test_sync_none_writes_without_syncing(void)
{
	struct tmp t;
	tmp_make(&t);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_NONE, 0, 0}, &log, AT_FDCWD), ONCE_OK);
	once__io.fdatasync = counting_fdatasync;
	atomic_store(&syncs_seen, 0);
	for (int i = 0; i < 50; i++) {
		uint64_t seq;
		ASSERT_ST(once__log_append(log, ONCE_WAL_NONCE_ISSUE, "n", 1, &seq), ONCE_OK);
		ASSERT_ST(once__log_commit(log, seq), ONCE_OK);
	}
	ASSERT_EQ_INT(atomic_load(&syncs_seen), 0);
	/* Committed means written to the kernel: readable before close. */
	struct once__wal_segment seg;
	struct once__wal_scan sc = scan_file(t.path, &seg);
	ASSERT_EQ_U64(sc.records, 50);
	once__io_reset();
	ASSERT_ST(once__log_close(log), ONCE_OK);
	tmp_remove(&t);
}

static void test_sync_interval_syncs_in_background(void)
{
	struct tmp t;
	tmp_make(&t);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_INTERVAL, 5, 0}, &log, AT_FDCWD), ONCE_OK);
	uint64_t seq;
	ASSERT_ST(once__log_append(log, ONCE_WAL_NONCE_ISSUE, "n", 1, &seq), ONCE_OK);
	ASSERT_ST(once__log_commit(log, seq), ONCE_OK);
	struct once__log_stats ls = {0};
	for (int i = 0; i < 500 && ls.synced_records < 1; i++) { /* bounded: up to 5 s */
		usleep(10000);
		once__log_stats(log, &ls);
	}
	ASSERT_EQ_U64(ls.synced_records, 1);
	ASSERT_ST(once__log_close(log), ONCE_OK);
	tmp_remove(&t);
}

/* ---- injected faults ---- */

static _Atomic int calls_left; /* the call that fails is the one that reaches 0 */
static int fail_errno;

static int failing_fdatasync(int fd)
{
	if (atomic_fetch_sub(&calls_left, 1) <= 0) {
		errno = fail_errno;
		return -1;
	}
	return fdatasync(fd);
}

static ssize_t failing_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (atomic_fetch_sub(&calls_left, 1) <= 0) {
		errno = fail_errno;
		return -1;
	}
	return pwrite(fd, buf, n, off);
}

/* Writes one byte at a time: the log must finish the record itself. */
static ssize_t short_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n > 0 ? 1 : 0, off);
}

/* Commits `good` records, then installs the fault; the next commit must
 * fail with ONCE_IO and every later call too; the good ones stay. */
static void fault_case(bool on_sync, int err)
{
	struct tmp t;
	tmp_make(&t);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_ALWAYS, 0, 0}, &log, AT_FDCWD), ONCE_OK);
	uint64_t seq;
	for (int i = 0; i < 10; i++) {
		ASSERT_ST(once__log_append(log, ONCE_WAL_CODE_PUT, "record", 6, &seq), ONCE_OK);
		ASSERT_ST(once__log_commit(log, seq), ONCE_OK);
	}
	atomic_store(&calls_left, 0);
	fail_errno = err;
	if (on_sync)
		once__io.fdatasync = failing_fdatasync;
	else
		once__io.pwrite = failing_pwrite;
	ASSERT_ST(once__log_append(log, ONCE_WAL_CODE_TAKE, "take", 4, &seq), ONCE_OK);
	ASSERT_ST(once__log_commit(log, seq), ONCE_IO);
	once__io_reset(); /* the disk is fine again: the log must stay failed */
	ASSERT_ST(once__log_append(log, ONCE_WAL_CODE_TAKE, "take", 4, &seq), ONCE_IO);
	ASSERT_ST(once__log_commit(log, seq), ONCE_IO);
	ASSERT_ST(once__log_close(log), ONCE_IO);
	struct once__wal_segment seg;
	struct once__wal_scan sc = scan_file(t.path, &seg);
	ASSERT(sc.records >= 10); /* every committed record survives */
	tmp_remove(&t);
}

static void test_fdatasync_eio_is_sticky(void)
{
	fault_case(true, EIO);
}

static void test_write_enospc_is_sticky(void)
{
	fault_case(false, ENOSPC);
}

static void test_short_writes_complete(void)
{
	struct tmp t;
	tmp_make(&t);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_ALWAYS, 0, 0}, &log, AT_FDCWD), ONCE_OK);
	once__io.pwrite = short_pwrite;
	for (int i = 0; i < 5; i++) {
		uint64_t seq;
		ASSERT_ST(once__log_append(log, ONCE_WAL_REFRESH_ROTATE, "a longer payload", 16, &seq), ONCE_OK);
		ASSERT_ST(once__log_commit(log, seq), ONCE_OK);
	}
	once__io_reset();
	ASSERT_ST(once__log_close(log), ONCE_OK);
	struct once__wal_segment seg;
	struct once__wal_scan sc = scan_file(t.path, &seg);
	ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
	ASSERT_EQ_U64(sc.records, 5);
	tmp_remove(&t);
}

static void test_create_refuses_existing_file(void)
{
	struct tmp t;
	tmp_make(&t);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_ALWAYS, 0, 0}, &log, AT_FDCWD), ONCE_OK);
	ASSERT_ST(once__log_close(log), ONCE_OK);
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_ALWAYS, 0, 0}, &log, AT_FDCWD), ONCE_IO);
	tmp_remove(&t);
}

/* ---- preallocation on a nearly full disk; rotation beside appenders ---- */

static off_t disk_limit; /* writes reaching past it fail with ENOSPC */

static ssize_t limited_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (off + (off_t)n > disk_limit) {
		errno = ENOSPC;
		return -1;
	}
	return pwrite(fd, buf, n, off);
}

/* A disk with 64 KiB left cannot take a 4 MiB step of zeros, but it can
 * take the records: the log goes on (the step's failure is no failure of
 * the log), and fails only when the records themselves do not fit. */
static void test_preallocation_on_a_full_disk(void)
{
	struct tmp t;
	tmp_make(&t);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_ALWAYS, 0, 0, 0}, &log,
	                           AT_FDCWD),
	          ONCE_OK);
	disk_limit = 64 << 10;
	once__io.pwrite = limited_pwrite;
	uint64_t seq;
	int ok = 0;
	for (int i = 0; i < 100; i++) {
		ASSERT_ST(once__log_append(log, ONCE_WAL_REPLAY_RECORD, "0123456789abcdef", 16, &seq), ONCE_OK);
		ASSERT_ST(once__log_commit(log, seq), ONCE_OK);
		ok++;
	}
	/* Now fill it: 1 KiB records until one does not fit. */
	static const char big[1024];
	once_status st = ONCE_OK;
	for (int i = 0; i < 200 && st == ONCE_OK; i++) {
		ASSERT_ST(once__log_append(log, ONCE_WAL_REPLAY_RECORD, big, sizeof big, &seq), ONCE_OK);
		st = once__log_commit(log, seq);
		ok += st == ONCE_OK;
	}
	ASSERT_ST(st, ONCE_IO);
	once__io_reset();
	ASSERT_ST(once__log_close(log), ONCE_IO);
	struct once__wal_segment seg;
	struct once__wal_scan sc = scan_file(t.path, &seg);
	ASSERT_EQ_U64(sc.records, (uint64_t)ok); /* every committed record */
	tmp_remove(&t);
}

static _Atomic bool rot_held, rot_release;

static int held_fdatasync(int fd)
{
	atomic_store(&rot_held, true);
	while (!atomic_load(&rot_release))
		usleep(1000);
	return fdatasync(fd);
}

struct rotator {
	struct once__log *log;
	const char *path;
	uint64_t first;
	once_status st;
};

static void *rotate_main(void *arg)
{
	struct rotator *r = arg;
	r->st = once__log_rotate(r->log, r->path, 2, &r->first);
	return NULL;
}

/* While a rotation waits on the disk (its new segment's fdatasync held),
 * appenders are not held: an append returns, and its record lands in the
 * new segment, whose first record it is. */
static void test_rotation_does_not_hold_appenders(void)
{
	struct tmp t;
	tmp_make(&t);
	char path2[160];
	snprintf(path2, sizeof path2, "%s/log-2.wal", t.dir);
	struct once__log *log;
	ASSERT_ST(once__log_create(t.path, UID, 1, 1, &(struct once__log_config){ONCE_SYNC_ALWAYS, 0, 0, 0}, &log,
	                           AT_FDCWD),
	          ONCE_OK);
	uint64_t seq;
	for (int i = 0; i < 5; i++) {
		ASSERT_ST(once__log_append(log, ONCE_WAL_REPLAY_RECORD, "before", 6, &seq), ONCE_OK);
		ASSERT_ST(once__log_commit(log, seq), ONCE_OK);
	}
	atomic_store(&rot_held, false);
	atomic_store(&rot_release, false);
	once__io.fdatasync = held_fdatasync;
	struct rotator r = {log, path2, 0, ONCE_IO};
	pthread_t tid;
	ASSERT(pthread_create(&tid, NULL, rotate_main, &r) == 0);
	for (int i = 0; i < 10000 && !atomic_load(&rot_held); i++)
		usleep(1000);
	ASSERT(atomic_load(&rot_held));
	ASSERT_ST(once__log_append(log, ONCE_WAL_REPLAY_RECORD, "during", 6, &seq), ONCE_OK);
	ASSERT(!atomic_load(&rot_release)); /* it returned while the rotation waits */
	atomic_store(&rot_release, true);
	pthread_join(tid, NULL);
	once__io_reset();
	ASSERT_ST(r.st, ONCE_OK);
	ASSERT_EQ_U64(r.first, 6);
	ASSERT_EQ_U64(seq, 6);
	ASSERT_ST(once__log_commit(log, seq), ONCE_OK);
	ASSERT_ST(once__log_close(log), ONCE_OK);
	struct once__wal_segment seg;
	struct once__wal_scan sc = scan_file(t.path, &seg);
	ASSERT_EQ_U64(sc.records, 5);
	ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
	sc = scan_file(path2, &seg);
	ASSERT_EQ_U64(seg.first_seq, 6);
	ASSERT_EQ_U64(sc.records, 1);
	unlink(path2);
	tmp_remove(&t);
}

TESTS(TEST(test_append_commit_reads_back), TEST(test_group_commit_many_writers),
      TEST(test_sync_none_writes_without_syncing), TEST(test_sync_interval_syncs_in_background),
      TEST(test_fdatasync_eio_is_sticky), TEST(test_write_enospc_is_sticky),
      TEST(test_short_writes_complete), TEST(test_create_refuses_existing_file),
      TEST(test_preallocation_on_a_full_disk), TEST(test_rotation_does_not_hold_appenders));
TEST_MAIN()
