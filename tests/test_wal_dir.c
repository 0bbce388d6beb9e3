/*
 * tests/test_wal_dir.c - the data directory (wal/dir.h): created 0700 with
 * a 0600 FORMAT file carrying a stable uid; a second opener is LOCKED, in
 * this process and in another; a damaged FORMAT, one of another version, or
 * foreign files without a FORMAT are CORRUPT.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "dir.h"
#include "format.h"
#include "harness.h"

static void make_root(char root[64])
{
	const char *base = getenv("TMPDIR");
	snprintf(root, 64, "%s/oncedir-XXXXXX", base ? base : "/tmp");
	ASSERT(mkdtemp(root) != NULL);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[160];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	ASSERT(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void cleanup(const char *root, const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	(void)dir;
	ASSERT(system(cmd) == 0);
}

static void test_created_with_modes_and_stable_uid(void)
{
	char root[64], dir[96];
	make_root(root);
	snprintf(dir, sizeof dir, "%s/data", root);
	struct once__dir d;
	ASSERT_ST(once__dir_open(dir, &d), ONCE_OK);
	struct stat st;
	ASSERT(stat(dir, &st) == 0);
	ASSERT_EQ_INT(st.st_mode & 0777, 0700);
	char format[128];
	snprintf(format, sizeof format, "%s/FORMAT", dir);
	ASSERT(stat(format, &st) == 0);
	ASSERT_EQ_INT(st.st_mode & 0777, 0600);
	unsigned char uid[16];
	memcpy(uid, d.uid, 16);
	once__dir_close(&d);
	ASSERT_ST(once__dir_open(dir, &d), ONCE_OK); /* reopened: same store */
	ASSERT(memcmp(uid, d.uid, 16) == 0);
	once__dir_close(&d);
	cleanup(root, dir);
}

static void test_second_opener_locked_in_process_and_other_process(void)
{
	char root[64];
	make_root(root);
	struct once__dir d, d2;
	ASSERT_ST(once__dir_open(root, &d), ONCE_OK);
	ASSERT_ST(once__dir_open(root, &d2), ONCE_LOCKED);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		/* The child inherited d's descriptor, but a fresh open is a new
		 * open file description: it must be refused. */
		struct once__dir c;
		_exit(once__dir_open(root, &c) == ONCE_LOCKED ? 0 : 1);
	}
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	once__dir_close(&d);
	ASSERT_ST(once__dir_open(root, &d2), ONCE_OK); /* released by close */
	once__dir_close(&d2);
	cleanup(root, root);
}

static void test_bad_format_corrupt(void)
{
	char root[64];
	make_root(root);
	struct once__dir d;
	write_file(root, "FORMAT", "oncestore 1 not-hex-at-all-not-hex-at-all-xx\n");
	ASSERT_ST(once__dir_open(root, &d), ONCE_CORRUPT);
	write_file(root, "FORMAT", "oncestore 99 00112233445566778899aabbccddeeff\n");
	ASSERT_ST(once__dir_open(root, &d), ONCE_CORRUPT); /* another version */
	write_file(root, "FORMAT", "oncestore 1 00112233445566778899aabbccddeeff\n");
	ASSERT_ST(once__dir_open(root, &d), ONCE_CORRUPT); /* version 1: no synced-below marks */
	char text[80];
	snprintf(text, sizeof text, "oncestore %u 00112233445566778899aabbccddeeff\n", ONCE_WAL_VERSION);
	write_file(root, "FORMAT", text);
	ASSERT_ST(once__dir_open(root, &d), ONCE_OK);
	ASSERT_EQ_INT(d.uid[15], 0xff);
	once__dir_close(&d);
	cleanup(root, root);
}

static void test_foreign_files_without_format_corrupt(void)
{
	char root[64];
	make_root(root);
	write_file(root, "log-1.wal", "something");
	struct once__dir d;
	ASSERT_ST(once__dir_open(root, &d), ONCE_CORRUPT);
	char format[128];
	snprintf(format, sizeof format, "%s/FORMAT", root);
	ASSERT(access(format, F_OK) != 0); /* nothing was written */
	cleanup(root, root);
}

TESTS(TEST(test_created_with_modes_and_stable_uid),
      TEST(test_second_opener_locked_in_process_and_other_process), TEST(test_bad_format_corrupt),
      TEST(test_foreign_files_without_format_corrupt));
TEST_MAIN()
