/*
 * tests/test_failures.c - every failure of the embedded engine says what,
 * where and why (issue 13): the log callback gets one line naming the
 * system call, the file, the byte offset and strerror(errno); the log's
 * first failure is one ERROR line and the writes refused after it log
 * nothing more (once_stats keeps the failure); a failed checkpoint is one
 * ERROR line; once_open tells its failures apart by status, errno and
 * line; recovery and checkpoints are one INFO line each.  Faults are
 * injected through the wal/io.h table.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <grp.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "durable.h"
#include "format.h"
#include "harness.h"
#include "io.h"

/* ---- the captured log ---- */

#define MAX_LINES 64
static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;
static char lines[MAX_LINES][512];
static once_log_level levels[MAX_LINES];
static int n_lines;

/* The store's writer thread calls it too: a lock. */
static void capture(void *ctx, once_log_level level, const char *message)
{
	(void)ctx;
	pthread_mutex_lock(&lines_lock);
	if (n_lines < MAX_LINES) {
		snprintf(lines[n_lines], sizeof lines[n_lines], "%s", message);
		levels[n_lines++] = level;
	}
	pthread_mutex_unlock(&lines_lock);
	printf("# log %d: %s\n", (int)level, message);
}

static void lines_clear(void)
{
	pthread_mutex_lock(&lines_lock);
	n_lines = 0;
	pthread_mutex_unlock(&lines_lock);
}

static int count_level(once_log_level level)
{
	pthread_mutex_lock(&lines_lock);
	int n = 0;
	for (int i = 0; i < n_lines; i++)
		n += levels[i] == level;
	pthread_mutex_unlock(&lines_lock);
	return n;
}

/* The one line at `level` that contains every string given (NULL-ended);
 * fails the test unless exactly one does. */
static const char *line_with(once_log_level level, ...)
{
	static char found[512];
	int matches = 0;
	pthread_mutex_lock(&lines_lock);
	for (int i = 0; i < n_lines; i++) {
		if (levels[i] != level)
			continue;
		va_list ap;
		va_start(ap, level);
		bool all = true;
		for (const char *want; (want = va_arg(ap, const char *)) != NULL;)
			all = all && strstr(lines[i], want) != NULL;
		va_end(ap);
		if (all) {
			matches++;
			memcpy(found, lines[i], sizeof found); /* same size, NUL-terminated */
		}
	}
	pthread_mutex_unlock(&lines_lock);
	if (matches != 1)
		FAIL_AT("%d log lines at level %d match, want 1", matches, (int)level);
	return found;
}

static struct test_clock clk = {1000};

static once_options dir_options(const char *dir)
{
	once_options o = test_options(&clk);
	o.dir = dir;
	o.log = capture;
	return o;
}

/* ---- injected faults ---- */

static int eio_fdatasync(int fd)
{
	(void)fd;
	errno = EIO;
	return -1;
}

static ssize_t enospc_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	(void)fd, (void)buf, (void)n, (void)off;
	errno = ENOSPC;
	return -1;
}

/* ENOSPC for snapshot files only (by the name the descriptor has). */
static ssize_t enospc_snapshot_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (test_fd_named(fd, "snap-")) {
		errno = ENOSPC;
		return -1;
	}
	return pwrite(fd, buf, n, off);
}

/* ---- the log's failure ---- */

static void test_fdatasync_eio_one_line_then_silence(void)
{
	char dir[256];
	test_tmpdir(dir);
	once_options o = dir_options(dir);
	once_store *s = test_open(&o);
	ASSERT_ST(once_replay_check(s, "before", 6, 60), ONCE_OK);
	lines_clear();
	atomic_store(&clk.now, 1234);
	once__io.fdatasync = eio_fdatasync;
	ASSERT_ST(once_replay_check(s, "fails", 5, 60), ONCE_IO);
	const char *l = line_with(ONCE_LOG_ERROR, "log: fdatasync log-", " at offset ", ": Input/output error",
	                          "writes are refused until the store is reopened", NULL);
	ASSERT(strncmp(l, "log: fdatasync log-", 19) == 0);
	/* Refused later writes: ONCE_IO, and no second line. */
	for (int i = 0; i < 5; i++) {
		char jti[16];
		snprintf(jti, sizeof jti, "later-%d", i);
		ASSERT_ST(once_replay_check(s, jti, strlen(jti), 60), ONCE_IO);
	}
	ASSERT_EQ_INT(count_level(ONCE_LOG_ERROR), 1);
	ASSERT_EQ_INT(count_level(ONCE_LOG_WARN), 0);

	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.sync_failures, 1);
	ASSERT_EQ_U64(st.write_failures, 0);
	ASSERT_EQ_INT(st.failure_errno, EIO);
	ASSERT(strncmp(st.failure_op, "fdatasync log-", 14) == 0);
	ASSERT(strstr(l, st.failure_op) != NULL); /* the line names the same call and file */
	char at[40];
	snprintf(at, sizeof at, " at offset %" PRIu64 ":", st.failure_offset);
	ASSERT(strstr(l, at) != NULL);
	ASSERT(st.failure_offset > ONCE_WAL_SEGMENT_HEADER); /* after the records written */
	ASSERT_EQ_U64((uint64_t)st.failure_at, 1234);

	/* A checkpoint is refused: one line of its own, naming the failure. */
	lines_clear();
	ASSERT_ST(once_checkpoint(s), ONCE_IO);
	line_with(ONCE_LOG_ERROR, "checkpoint failed: fdatasync log-", "Input/output error",
	          "the log has failed", NULL);
	ASSERT_EQ_INT(count_level(ONCE_LOG_ERROR), 1);
	lines_clear();
	ASSERT_ST(once_close(s), ONCE_IO);
	line_with(ONCE_LOG_ERROR, "close: ", dir, "the log had failed", NULL);
	ASSERT_EQ_INT(count_level(ONCE_LOG_ERROR), 1);
	once__io_reset();
	test_rmdir(dir);
}

static void test_pwrite_enospc_names_the_offset(void)
{
	char dir[256];
	test_tmpdir(dir);
	once_options o = dir_options(dir);
	once_store *s = test_open(&o);
	lines_clear();
	once__io.pwrite = enospc_pwrite;
	ASSERT_ST(once_replay_check(s, "fails", 5, 60), ONCE_IO);
	once__io_reset();
	/* The preallocation's zeros failed first: a warning (the log goes
	 * on); then the records themselves: the one error. */
	line_with(ONCE_LOG_WARN, "log: pwrite log-", "at offset 64: No space left on device", "preallocating",
	          NULL);
	line_with(ONCE_LOG_ERROR, "log: pwrite log-", "at offset 64: No space left on device",
	          "writes are refused", NULL);
	ASSERT_ST(once_replay_check(s, "later", 5, 60), ONCE_IO);
	ASSERT_EQ_INT(count_level(ONCE_LOG_ERROR), 1);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.write_failures, 2); /* the zeros and the records */
	ASSERT_EQ_U64(st.sync_failures, 0);
	ASSERT_EQ_INT(st.failure_errno, ENOSPC);
	ASSERT(strncmp(st.failure_op, "pwrite log-", 11) == 0);
	ASSERT_EQ_U64(st.failure_offset, ONCE_WAL_SEGMENT_HEADER);
	ASSERT_ST(once_close(s), ONCE_IO);
	test_rmdir(dir);
}

/* ---- checkpoints ---- */

static void test_failed_checkpoint_one_line_log_goes_on(void)
{
	char dir[256];
	test_tmpdir(dir);
	once_options o = dir_options(dir);
	once_store *s = test_open(&o);
	ASSERT_ST(once_replay_check(s, "kept", 4, 60), ONCE_OK);
	lines_clear();
	once__io.pwrite = enospc_snapshot_pwrite;
	ASSERT_ST(once_checkpoint(s), ONCE_IO);
	once__io_reset();
	line_with(ONCE_LOG_ERROR, "checkpoint ", " failed: pwrite snap-", ".tmp at offset 0: No space left on device",
	          "the previous checkpoint stays in force", NULL);
	ASSERT_EQ_INT(count_level(ONCE_LOG_ERROR), 1);
	ASSERT_EQ_INT(count_level(ONCE_LOG_INFO), 0);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.write_failures, 1);
	ASSERT_EQ_INT(st.failure_errno, 0); /* the log did not fail */
	ASSERT_EQ_INT(st.failure_op[0], '\0');
	/* Writes go on, and the next checkpoint is one INFO line. */
	ASSERT_ST(once_replay_check(s, "after", 5, 60), ONCE_OK);
	lines_clear();
	ASSERT_ST(once_checkpoint(s), ONCE_OK);
	line_with(ONCE_LOG_INFO, "checkpoint ", ": 2 entries in 4 snapshots, log from sequence ", " ms", NULL);
	ASSERT_EQ_INT(n_lines, 1);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* ENOSPC for the header of a new log segment (offset 0 of a log-* file):
 * a checkpoint cannot start its segment. */
static ssize_t enospc_new_segment_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (off == 0 && test_fd_named(fd, "log-")) {
		errno = ENOSPC;
		return -1;
	}
	return pwrite(fd, buf, n, off);
}

/* While no new segment can be made, the automatic checkpointer tries once
 * per interval of log (checkpoint_bytes here), not once per write: it
 * used to try again after every write that found the interval passed, and
 * log an ERROR line each time. */
static void test_failed_automatic_checkpoint_waits_an_interval(void)
{
	char dir[256];
	test_tmpdir(dir);
	once_options o = dir_options(dir);
	o.checkpoint_bytes = 8192;
	once_store *s = test_open(&o);
	struct once_stats st;
	once_stats(s, &st);
	uint64_t log0 = st.log_bytes_since_checkpoint;
	once__io.pwrite = enospc_new_segment_pwrite;
	lines_clear();
	for (int i = 0; i < 400; i++) { /* about 2.5 intervals of records */
		char jti[32];
		snprintf(jti, sizeof jti, "interval-%d", i);
		ASSERT_ST(once_replay_check(s, jti, strlen(jti), 60), ONCE_OK);
		usleep(500); /* time for the checkpointer between writes */
	}
	once_stats(s, &st);
	uint64_t logged = st.log_bytes_since_checkpoint - log0;
	for (int i = 0; i < 100; i++) { /* an attempt still running ends */
		usleep(10000);
		once_stats(s, &st);
	}
	once__io_reset();
	printf("# %" PRIu64 " log bytes over %" PRIu64 "-byte intervals: %" PRIu64 " failed checkpoints, %d error lines\n",
	       logged, o.checkpoint_bytes, st.checkpoint_failures, count_level(ONCE_LOG_ERROR));
	ASSERT(logged > 2 * o.checkpoint_bytes);
	ASSERT(st.checkpoint_failures >= 1);
	ASSERT(st.checkpoint_failures <= logged / o.checkpoint_bytes + 1);
	ASSERT_EQ_INT(count_level(ONCE_LOG_ERROR), (int)st.checkpoint_failures);
	for (int i = 0; i < n_lines; i++)
		if (levels[i] == ONCE_LOG_ERROR && strstr(lines[i], " at offset 0: No space left on device") == NULL)
			FAIL_AT("unexpected line: %s", lines[i]);
	ASSERT_ST(once_checkpoint(s), ONCE_OK); /* room again */
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* EIO from the directory fsync that follows CHECKPOINT's rename (the
 * first one with CHECKPOINT present: the store had none before): the new
 * CHECKPOINT may be durable, and is in place, whatever fsync said. */
static int eio_fsync_after_checkpoint_rename(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
	    fstatat(fd, "CHECKPOINT", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstatat(fd, "CHECKPOINT.tmp", &st, AT_SYMLINK_NOFOLLOW) != 0) {
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

/* A checkpoint that fails after its CHECKPOINT was renamed into place must
 * not remove the snapshots that CHECKPOINT names: the store reopens with
 * every entry (it used to remove them, and the next open was
 * ONCE_CORRUPT "snapshot named by CHECKPOINT is missing"). */
static void test_failed_checkpoint_after_rename_keeps_its_snapshots(void)
{
	char dir[256];
	test_tmpdir(dir);
	once_options o = dir_options(dir);
	once_store *s = test_open(&o);
	ASSERT_ST(once_replay_check(s, "kept", 4, 60), ONCE_OK);
	once__io.fsync = eio_fsync_after_checkpoint_rename;
	ASSERT_ST(once_checkpoint(s), ONCE_IO);
	once__io_reset();
	line_with(ONCE_LOG_ERROR, "checkpoint ", " failed: fsync .", "Input/output error", NULL);
	ASSERT_ST(once_close(s), ONCE_OK);
	once_store *again = NULL;
	ASSERT_ST(once_open(&o, &again), ONCE_OK);
	ASSERT_ST(once_replay_check(again, "kept", 4, 60), ONCE_SPENT);
	ASSERT_ST(once_close(again), ONCE_OK);
	test_rmdir(dir);
}

/* ---- recovery ---- */

static void test_recovery_info_line(void)
{
	char dir[256];
	test_tmpdir(dir);
	once_options o = dir_options(dir);
	once_store *s = test_open(&o);
	for (int i = 0; i < 3; i++) {
		char jti[16];
		snprintf(jti, sizeof jti, "r-%d", i);
		ASSERT_ST(once_replay_check(s, jti, strlen(jti), 60), ONCE_OK);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
	lines_clear();
	s = test_open(&o);
	line_with(ONCE_LOG_INFO, "open: ", dir, ": recovered 0 snapshot records and 3 log records, cut 0 torn bytes",
	          " ms", NULL);
	ASSERT_EQ_INT(n_lines, 1);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* ---- once_open's failures: status, errno and line ---- */

static once_status open_dir(const char *dir, int *err)
{
	once_options o = dir_options(dir);
	once_store *s = NULL;
	lines_clear();
	errno = 0;
	once_status st = once_open(&o, &s);
	*err = errno;
	if (st == ONCE_OK)
		once_close(s);
	return st;
}

static void test_open_missing_parent(void)
{
	char dir[256], deep[300], parent[280];
	test_tmpdir(dir);
	snprintf(parent, sizeof parent, "%s/missing", dir);
	snprintf(deep, sizeof deep, "%s/oncestore", parent);
	int err;
	ASSERT_ST(open_dir(deep, &err), ONCE_IO);
	ASSERT_EQ_INT(err, ENOENT);
	char want[700];
	snprintf(want, sizeof want, "open: %s: mkdir: No such file or directory (the parent directory %s does not exist",
	         deep, parent);
	line_with(ONCE_LOG_ERROR, want, NULL);
	ASSERT_EQ_INT(n_lines, 1);
	test_rmdir(dir);
}

static void test_open_plain_file(void)
{
	char dir[256];
	test_tmpdir(dir);
	int fd = open(dir, O_WRONLY | O_CREAT, 0600); /* "data" as a plain file */
	ASSERT(fd >= 0);
	close(fd);
	int err;
	ASSERT_ST(open_dir(dir, &err), ONCE_IO);
	ASSERT_EQ_INT(err, ENOTDIR);
	line_with(ONCE_LOG_ERROR, dir, ": open: Not a directory", "exists and is not a directory", NULL);
	unlink(dir);
	test_rmdir(dir);
}

static void test_open_empty_string(void)
{
	int err;
	ASSERT_ST(open_dir("", &err), ONCE_INVALID);
	line_with(ONCE_LOG_ERROR, "dir is empty", NULL);
}

/* Lets nobody pass through (not list) the parent of dir: mode 0711. */
static void let_nobody_through_parent(const char *dir)
{
	char parent[256];
	snprintf(parent, sizeof parent, "%s", dir);
	*strrchr(parent, '/') = '\0';
	ASSERT(chmod(parent, 0711) == 0);
}

/* Runs check(a, b) in a child that has dropped to nobody (65534), for
 * whom file modes hold (root reads any file), and fails unless it passed. */
static void as_nobody(void (*check)(const char *, const char *), const char *a, const char *b)
{
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
			_exit(2);
		check(a, b);
		_exit(0);
	}
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status));
	ASSERT_EQ_INT(WEXITSTATUS(status), 0);
}

/* The checks of a directory the caller may not enter; exits 1 (FAIL_AT)
 * on a mismatch. */
static void check_permission_denied(const char *dir, const char *unused)
{
	(void)unused;
	int err;
	ASSERT_ST(open_dir(dir, &err), ONCE_IO);
	ASSERT_EQ_INT(err, EACCES);
	line_with(ONCE_LOG_ERROR, dir, ": open: Permission denied", "may not read", NULL);
}

static void test_open_permission_denied(void)
{
	char dir[256];
	test_tmpdir(dir);
	ASSERT(mkdir(dir, 0000) == 0);
	if (geteuid() != 0) {
		check_permission_denied(dir, NULL);
	} else {
		/* Root reads any directory: the checks run in a child that
		 * has dropped to nobody (65534), for whom mode 0000 holds.
		 * Nobody may pass through the parent (0711), not list it. */
		let_nobody_through_parent(dir);
		as_nobody(check_permission_denied, dir, NULL);
	}
	chmod(dir, 0700);
	test_rmdir(dir);
}

static void test_open_missing_format_beside_store_files(void)
{
	char dir[256], format[300];
	test_tmpdir(dir);
	once_options o = dir_options(dir);
	once_store *s = test_open(&o);
	ASSERT_ST(once_replay_check(s, "x", 1, 60), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
	snprintf(format, sizeof format, "%s/FORMAT", dir);
	ASSERT(unlink(format) == 0);
	int err;
	ASSERT_ST(open_dir(dir, &err), ONCE_CORRUPT);
	char repair[300];
	snprintf(repair, sizeof repair, "`oncestore repair --format --yes %s`", dir);
	line_with(ONCE_LOG_ERROR, "FORMAT is missing", "store files (e.g. 'log-", repair, NULL);
	ASSERT(access(format, F_OK) != 0); /* nothing was written */
	test_rmdir(dir);
}

static void test_open_damaged_format(void)
{
	char dir[256], format[300];
	test_tmpdir(dir);
	ASSERT(mkdir(dir, 0700) == 0);
	snprintf(format, sizeof format, "%s/FORMAT", dir);
	FILE *f = fopen(format, "w");
	ASSERT(f != NULL);
	/* "oncestore 2 " is 12 bytes: the uid's 5th digit, at 16, is bad. */
	fprintf(f, "oncestore %u 0011zz33445566778899aabbccddeeff\n", ONCE_WAL_VERSION);
	fclose(f);
	int err;
	ASSERT_ST(open_dir(dir, &err), ONCE_CORRUPT);
	line_with(ONCE_LOG_ERROR, "/FORMAT at offset 16: ", "not a lowercase hex digit", "repair --format", NULL);
	f = fopen(format, "w");
	fprintf(f, "oncestore %u 00112233445566778899aabbccddeeff\n", ONCE_WAL_VERSION + 1);
	fclose(f);
	ASSERT_ST(open_dir(dir, &err), ONCE_CORRUPT);
	line_with(ONCE_LOG_ERROR, "/FORMAT at offset 10: a newer format version", NULL);
	f = fopen(format, "w");
	fclose(f);
	ASSERT_ST(open_dir(dir, &err), ONCE_CORRUPT);
	line_with(ONCE_LOG_ERROR, "/FORMAT at offset 0: the file is empty", NULL);
	test_rmdir(dir);
}

static void test_open_foreign_directory(void)
{
	char dir[256], file[300];
	test_tmpdir(dir);
	ASSERT(mkdir(dir, 0700) == 0);
	snprintf(file, sizeof file, "%s/notes.txt", dir);
	FILE *f = fopen(file, "w");
	ASSERT(f != NULL);
	fclose(f);
	int err;
	ASSERT_ST(open_dir(dir, &err), ONCE_CORRUPT);
	line_with(ONCE_LOG_ERROR, "not an oncestore data directory (no FORMAT; 1 other files, e.g. 'notes.txt')",
	          NULL);
	test_rmdir(dir);
}

/* Opens dir, normally and read-only, with a file (a log segment, or
 * CHECKPOINT) it may not read: each open answers ONCE_IO with errno EACCES
 * and one line naming the call, the file and the offset (it used to say
 * only "reading the store's files: Permission denied").  Exits 1
 * (FAIL_AT) on a mismatch. */
static void check_unreadable_file(const char *dir, const char *file)
{
	for (int ro = 0; ro < 2; ro++) {
		once_options o = dir_options(dir);
		o.read_only = ro == 1;
		once_store *s = NULL;
		lines_clear();
		errno = 0;
		ASSERT_ST(once_open(&o, &s), ONCE_IO);
		ASSERT_EQ_INT(errno, EACCES);
		ASSERT(s == NULL);
		char want[128];
		snprintf(want, sizeof want, ": open %s at offset 0: Permission denied (reading the store's files%s;",
		         file, ro ? " (read-only)" : "");
		line_with(ONCE_LOG_ERROR, "open: ", dir, want, "must be able to read every file", NULL);
		ASSERT_EQ_INT(count_level(ONCE_LOG_ERROR), 1);
	}
}

/* Writes a store in dir from a child process (this one opens none: the
 * check may fork): a checkpoint (CHECKPOINT, snapshots) and a log segment
 * after it, whose name goes to seg. */
static void make_store_in_child(const char *dir, char *seg, size_t n)
{
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		once_options o = dir_options(dir);
		once_store *s = test_open(&o);
		ASSERT_ST(once_replay_check(s, "jti-1", 5, 60), ONCE_OK);
		ASSERT_ST(once_checkpoint(s), ONCE_OK);
		ASSERT_ST(once_replay_check(s, "jti-2", 5, 60), ONCE_OK);
		ASSERT_ST(once_close(s), ONCE_OK);
		_exit(0);
	}
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	DIR *d = opendir(dir);
	ASSERT(d != NULL);
	struct dirent *de;
	seg[0] = '\0';
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "log-", 4) == 0 && strlen(de->d_name) < n)
			memcpy(seg, de->d_name, strlen(de->d_name) + 1);
	closedir(d);
	ASSERT(seg[0] != '\0');
}

/* Makes `file` of dir unreadable to the checks and runs them: mode 0000,
 * or, for root (who reads any file), the directory and its other files go
 * to nobody (65534), `file` stays root's, mode 0600, and the checks run in
 * a child that has dropped to nobody. */
static void check_with_unreadable(const char *dir, const char *file)
{
	char path[400];
	snprintf(path, sizeof path, "%s/%s", dir, file);
	if (geteuid() != 0) {
		ASSERT(chmod(path, 0000) == 0);
		check_unreadable_file(dir, file);
	} else {
		let_nobody_through_parent(dir);
		ASSERT(chown(dir, 65534, 65534) == 0);
		DIR *d = opendir(dir);
		ASSERT(d != NULL);
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				ASSERT(fchownat(dirfd(d), de->d_name, strcmp(de->d_name, file) == 0 ? 0 : 65534,
				                strcmp(de->d_name, file) == 0 ? 0 : 65534, AT_SYMLINK_NOFOLLOW) == 0);
		closedir(d);
		as_nobody(check_unreadable_file, dir, file);
	}
	ASSERT(chmod(path, 0600) == 0);
}

static void test_open_unreadable_file(void)
{
	char dir[256], seg[64];
	test_tmpdir(dir);
	make_store_in_child(dir, seg, sizeof seg);
	check_with_unreadable(dir, seg);
	check_with_unreadable(dir, "CHECKPOINT");
	test_rmdir(dir);
}

/* options.read_only (what `oncestore stats` and `dump` open with) names
 * what is wrong with FORMAT as the normal open does, and writes nothing:
 * it used to say only "data files fail verification". */
static void test_read_only_open_names_format(void)
{
	char dir[256], format[300];
	test_tmpdir(dir);
	once_options o = dir_options(dir);
	once_store *s = test_open(&o);
	ASSERT_ST(once_replay_check(s, "x", 1, 60), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
	o.read_only = true;
	snprintf(format, sizeof format, "%s/FORMAT", dir);
	FILE *f = fopen(format, "w");
	ASSERT(f != NULL);
	fprintf(f, "oncestore %u 0011zz33445566778899aabbccddeeff\n", ONCE_WAL_VERSION);
	fclose(f);
	lines_clear();
	ASSERT_ST(once_open(&o, &s), ONCE_CORRUPT);
	line_with(ONCE_LOG_ERROR, "/FORMAT at offset 16: ", "not a lowercase hex digit", "repair --format", NULL);
	ASSERT_EQ_INT(n_lines, 1);
	ASSERT(unlink(format) == 0);
	lines_clear();
	ASSERT_ST(once_open(&o, &s), ONCE_CORRUPT);
	line_with(ONCE_LOG_ERROR, "FORMAT is missing", "store files (e.g. '", "repair --format", NULL);
	ASSERT_EQ_INT(n_lines, 1);
	ASSERT(access(format, F_OK) != 0); /* nothing was written */
	ASSERT(mkdir(format, 0700) == 0);
	lines_clear();
	ASSERT_ST(once_open(&o, &s), ONCE_CORRUPT);
	line_with(ONCE_LOG_ERROR, "/FORMAT: not a regular file", NULL);
	ASSERT_EQ_INT(n_lines, 1);
	ASSERT(rmdir(format) == 0);
	test_rmdir(dir);
}

TESTS(TEST(test_fdatasync_eio_one_line_then_silence), TEST(test_pwrite_enospc_names_the_offset),
      TEST(test_failed_checkpoint_one_line_log_goes_on), TEST(test_failed_automatic_checkpoint_waits_an_interval),
      TEST(test_failed_checkpoint_after_rename_keeps_its_snapshots), TEST(test_recovery_info_line),
      TEST(test_open_missing_parent), TEST(test_open_plain_file), TEST(test_open_empty_string),
      TEST(test_open_permission_denied), TEST(test_open_missing_format_beside_store_files),
      TEST(test_open_damaged_format), TEST(test_open_foreign_directory),
      TEST(test_read_only_open_names_format), TEST(test_open_unreadable_file));
TEST_MAIN()
