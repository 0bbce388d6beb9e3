/*
 * tests/test_checkpoint.c - checkpoints at the committed checkpoint's start
 * sequence (issue 13) and the previous release's file names.
 *
 * test_crash_at_every_step: a store checkpointed with A shards, then opened
 * with B shards and checkpointed again with nothing written in between (so
 * at the same start sequence: `oncestore checkpoint` with the tool's shard
 * count does exactly this), for (A, B) = (2, 8), (8, 2) and (4, 4).  The
 * second checkpoint's process dies by SIGKILL before or after each system
 * call it makes through wal/io.h's table (every write, data sync and
 * directory sync; the renames and removals lie between them), every one
 * in turn.  Each death leaves two images:
 *   - the directory as the process left it (kill -9: the page cache
 *     survives), and
 *   - the directory as of the last directory fsync that completed, with
 *     each file's content as it was then (a power cut: renames and
 *     removals not yet made durable are undone; the files renamed were
 *     synced before their rename).
 * For each image: while CHECKPOINT is still the committed one, every file
 * it names is byte for byte the committed file (no checkpoint replaces or
 * changes one); the store opens, with A shards or B, and holds exactly
 * the state before the checkpoint (compared by dump); and after that open
 * the only snapshot files left are the ones CHECKPOINT names.
 *
 * test_previous_release_directory: a directory in the previous release's
 * form (CHECKPOINT version 1, written here byte by byte, snapshots named
 * snap-S-<shard>), plus the orphans issue 13's bug left (parts past the
 * count, same start): it opens and recovers exactly, the orphans are
 * removed, and the next checkpoint at the same start with as many shards
 * moves it to the current form without touching the committed files first.
 *
 * Each store is opened in a forked child; this process never opens one
 * (liburcu's threads do not survive a fork: tests/test_recovery.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "durable.h"
#include "io.h"
#include "recover.h"

static const unsigned char SUCC_KEY[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 5, 4,
                                           3, 2, 1, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 9, 8};

static once_options opts(struct test_clock *clk, const char *dir, uint32_t shards)
{
	once_options o = test_durable_options(clk, dir);
	o.successor_key = SUCC_KEY;
	o.shards = shards;
	return o;
}

/* ---- a directory's files in memory ---- */

#define IMG_MAX 128
struct image {
	size_t n;
	char name[IMG_MAX][ONCE_FILE_NAME_MAX + 8];
	unsigned char *data[IMG_MAX];
	size_t len[IMG_MAX];
};

static void image_free(struct image *im)
{
	for (size_t i = 0; i < im->n; i++)
		free(im->data[i]);
	im->n = 0;
}

static void image_read(const char *dir, struct image *im)
{
	im->n = 0;
	DIR *d = opendir(dir);
	ASSERT(d != NULL);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		ASSERT(im->n < IMG_MAX && strlen(de->d_name) < sizeof im->name[0]);
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		snprintf(im->name[im->n], sizeof im->name[0], "%s", de->d_name);
		im->data[im->n] = test_slurp(path, &im->len[im->n]);
		im->n++;
	}
	closedir(d);
}

/* Removes directory dir and the files in it (and its parent with
 * `parent_too`, when empty). */
static void rm_dir(const char *dir, bool parent_too)
{
	DIR *d = opendir(dir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			char f[1024];
			snprintf(f, sizeof f, "%s/%s", dir, de->d_name);
			if (de->d_name[0] != '.')
				unlink(f);
		}
		closedir(d);
	}
	rmdir(dir);
	char parent[1024];
	snprintf(parent, sizeof parent, "%s", dir);
	if (parent_too && strrchr(parent, '/') != NULL) {
		*strrchr(parent, '/') = '\0';
		rmdir(parent);
	}
}

/* Makes dir hold exactly the image's files (its parent is created when
 * missing). */
static void image_write(const struct image *im, const char *dir)
{
	rm_dir(dir, false);
	char parent[1024];
	snprintf(parent, sizeof parent, "%s", dir);
	*strrchr(parent, '/') = '\0';
	ASSERT(mkdir(parent, 0700) == 0 || errno == EEXIST);
	ASSERT(mkdir(dir, 0700) == 0);
	for (size_t i = 0; i < im->n; i++) {
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, im->name[i]);
		test_spit(path, im->data[i], im->len[i]);
	}
}

static long image_find(const struct image *im, const char *name)
{
	for (size_t i = 0; i < im->n; i++)
		if (strcmp(im->name[i], name) == 0)
			return (long)i;
	return -1;
}

/* The checkpoint the image's CHECKPOINT names (false: none). */
static bool image_checkpoint(const struct image *im, uint32_t *version, uint64_t *start, uint32_t *parts)
{
	long c = image_find(im, ONCE_CHECKPOINT_FILE);
	if (c < 0)
		return false;
	char text[128];
	size_t n = im->len[c] < sizeof text - 1 ? im->len[c] : sizeof text - 1;
	memcpy(text, im->data[c], n);
	text[n] = '\0';
	unsigned v, p;
	ASSERT(sscanf(text, "oncestore-checkpoint %u %16" SCNx64 " %u", &v, start, &p) == 3);
	*version = v;
	*parts = p;
	return true;
}

/* Every snapshot file of the image is one its CHECKPOINT names, and every
 * one it names is there. */
static void assert_only_named(const struct image *im, const char *when)
{
	uint32_t version, parts, named = 0;
	uint64_t start;
	ASSERT(image_checkpoint(im, &version, &start, &parts));
	for (size_t i = 0; i < im->n; i++) {
		if (strncmp(im->name[i], "snap-", 5) != 0 && strstr(im->name[i], ".tmp") == NULL)
			continue;
		if (!once__checkpoint_names(version, start, parts, im->name[i]))
			FAIL_AT("%s: %s is left over (CHECKPOINT: version %u, start %" PRIx64 ", %u parts)", when,
			        im->name[i], version, start, parts);
		named++;
	}
	ASSERT_EQ_INT(named, parts);
}

/* ---- stores, in children ---- */

static void wait_ok(pid_t pid, const char *what)
{
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL_AT("%s failed (status %d)", what, status);
}

/* Content of every kind, spread over the shards. */
static void fill(once_store *s)
{
	char k[ONCE_SECRET_LEN + 1], k2[ONCE_SECRET_LEN + 1], nonce[ONCE_NONCE_LEN + 1], jti[32];
	for (int i = 0; i < 24; i++) {
		once_code c = test_code(5000);
		test_key(k, "code", (uint64_t)i);
		ASSERT_ST(once_code_put(s, k, ONCE_SECRET_LEN, &c), ONCE_OK);
		if (i % 3 != 0) {
			once_code *got = NULL;
			ASSERT_ST(once_code_take(s, k, ONCE_SECRET_LEN, &got, NULL), ONCE_OK);
			once_free(got);
		}
		once_refresh r = test_refresh("fam", 7000);
		test_key(k, "rt", (uint64_t)i);
		ASSERT_ST(once_refresh_insert(s, k, ONCE_SECRET_LEN, &r), ONCE_OK);
		if (i % 2 == 0) {
			test_key(k2, "rt-child", (uint64_t)i);
			ASSERT_ST(once_refresh_rotate(s, k, ONCE_SECRET_LEN, k2, ONCE_SECRET_LEN, &r, NULL, 0, NULL),
			          ONCE_OK);
		}
		ASSERT_ST(once_nonce_issue(s, 300, nonce), ONCE_OK);
		if (i % 2 == 1)
			ASSERT_ST(once_nonce_accept(s, nonce, ONCE_NONCE_LEN, 300), ONCE_OK);
		snprintf(jti, sizeof jti, "jti-%d", i);
		ASSERT_ST(once_replay_check(s, jti, strlen(jti), 300), ONCE_OK);
	}
}

/* A store on dir with `shards`, filled and checkpointed. */
static void make_store(const char *dir, uint32_t shards)
{
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		struct test_clock clk = {.now = 1000};
		once_options o = opts(&clk, dir, shards);
		once_store *s;
		ASSERT_ST(once_open(&o, &s), ONCE_OK);
		fill(s);
		ASSERT_ST(once_checkpoint(s), ONCE_OK);
		ASSERT_ST(once_close(s), ONCE_OK);
		exit(0);
	}
	wait_ok(pid, "making the store");
}

/* Opens dir with `shards` (it must open), writes its sorted dump to
 * `out`, closes it. */
static void dump_store(const char *dir, uint32_t shards, const char *out)
{
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		struct test_clock clk = {.now = 1000};
		once_options o = opts(&clk, dir, shards);
		once_store *s;
		ASSERT_ST(once_open(&o, &s), ONCE_OK);
		struct test_dump d = test_dump_of(s);
		FILE *f = fopen(out, "w");
		ASSERT(f != NULL);
		for (size_t i = 0; i < d.n; i++)
			fprintf(f, "%s\n", d.lines[i]);
		ASSERT(fclose(f) == 0);
		test_dump_free(&d);
		ASSERT_ST(once_close(s), ONCE_OK);
		exit(0);
	}
	wait_ok(pid, "opening the store");
}

static void assert_same_file(const char *a, const char *b, const char *when)
{
	size_t la, lb;
	unsigned char *pa = test_slurp(a, &la), *pb = test_slurp(b, &lb);
	if (la != lb || memcmp(pa, pb, la) != 0)
		FAIL_AT("%s: the store does not hold what it held (%s vs %s)", when, a, b);
	free(pa);
	free(pb);
}

/* ---- the crashing checkpoint ---- */

/* Shared with the parent (MAP_SHARED): calls counted, the call to die at. */
static struct crash_ctl {
	_Atomic long calls;
	long kill_at; /* 2k: before call k, 2k + 1: after it; 0: never */
} *ctl;
static bool counting;
static const char *durable_copy; /* the directory as of the last directory fsync */
static const char *crash_dir;

static void step(bool after)
{
	if (!counting)
		return;
	long k = after ? atomic_load(&ctl->calls) : atomic_fetch_add(&ctl->calls, 1) + 1;
	if (ctl->kill_at == 2 * k + (after ? 1 : 0))
		kill(getpid(), SIGKILL);
}

static ssize_t crash_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	step(false);
	ssize_t r = pwrite(fd, buf, n, off);
	step(true);
	return r;
}

static int crash_fdatasync(int fd)
{
	step(false);
	int r = fdatasync(fd);
	step(true);
	return r;
}

static int crash_fsync(int fd)
{
	step(false);
	int r = fsync(fd);
	struct stat st;
	if (r == 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* Every entry of the data directory is durable now, each file
		 * with the content it has (written and synced before its
		 * rename or at its creation). */
		struct image im;
		image_read(crash_dir, &im);
		image_write(&im, durable_copy);
		image_free(&im);
	}
	step(true);
	return r;
}

/* Opens dir with `shards` and checkpoints, dying at ctl->kill_at. */
static void crash_checkpoint(const char *dir, const char *durable, uint32_t shards)
{
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		crash_dir = dir;
		durable_copy = durable;
		atomic_store(&once__io.pwrite, crash_pwrite);
		atomic_store(&once__io.fdatasync, crash_fdatasync);
		atomic_store(&once__io.fsync, crash_fsync);
		struct test_clock clk = {.now = 1000};
		once_options o = opts(&clk, dir, shards);
		once_store *s;
		ASSERT_ST(once_open(&o, &s), ONCE_OK);
		counting = true;
		ASSERT_ST(once_checkpoint(s), ONCE_OK);
		counting = false;
		ASSERT_ST(once_close(s), ONCE_OK);
		exit(0);
	}
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	bool killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	if (!killed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		FAIL_AT("the checkpoint's process failed (status %d)", status);
}

/* While an image's CHECKPOINT is the committed one, its files are the
 * committed files, byte for byte. */
static void assert_committed_intact(const struct image *base, const struct image *im, const char *when)
{
	long cb = image_find(base, ONCE_CHECKPOINT_FILE), ci = image_find(im, ONCE_CHECKPOINT_FILE);
	ASSERT(cb >= 0 && ci >= 0);
	if (im->len[ci] != base->len[cb] || memcmp(im->data[ci], base->data[cb], base->len[cb]) != 0)
		return; /* the new checkpoint is committed */
	uint32_t version, parts;
	uint64_t start;
	ASSERT(image_checkpoint(base, &version, &start, &parts));
	for (size_t i = 0; i < base->n; i++) {
		if (!once__checkpoint_names(version, start, parts, base->name[i]))
			continue;
		long j = image_find(im, base->name[i]);
		if (j < 0 || im->len[j] != base->len[i] || memcmp(im->data[j], base->data[i], base->len[i]) != 0)
			FAIL_AT("%s: committed snapshot %s was %s before the new CHECKPOINT committed", when,
			        base->name[i], j < 0 ? "removed" : "changed");
	}
}

static void recover_image(const struct image *base, const char *dir, uint32_t shards, const char *ref,
                          const char *out, const char *when)
{
	struct image im;
	image_read(dir, &im);
	assert_committed_intact(base, &im, when);
	image_free(&im);
	dump_store(dir, shards, out);
	assert_same_file(ref, out, when);
	image_read(dir, &im);
	assert_only_named(&im, when);
	image_free(&im);
}

static void crash_case(uint32_t a, uint32_t b)
{
	char root[256], dir[300], durable[300], ref[300], out[300];
	test_tmpdir(root); /* <tmp>/data */
	*strrchr(root, '/') = '\0';
	snprintf(dir, sizeof dir, "%s/data", root);
	snprintf(durable, sizeof durable, "%s/durable/data", root);
	snprintf(ref, sizeof ref, "%s/ref.dump", root);
	snprintf(out, sizeof out, "%s/out.dump", root);

	make_store(dir, a);
	struct image base;
	image_read(dir, &base);
	dump_store(dir, a, ref); /* the state every crash must recover */
	image_write(&base, dir);

	/* Count the calls of a checkpoint that completes. */
	ctl->calls = 0;
	ctl->kill_at = 0;
	crash_checkpoint(dir, durable, b);
	long calls = ctl->calls;
	ASSERT(calls > 0);
	struct image im;
	image_read(dir, &im);
	uint32_t version, parts;
	uint64_t start, base_start;
	ASSERT(image_checkpoint(&im, &version, &start, &parts));
	ASSERT(image_checkpoint(&base, &version, &base_start, &parts) && start == base_start);
	image_free(&im);

	for (long k = 2; k <= 2 * calls + 1; k++) {
		char when[96];
		image_write(&base, dir);
		image_write(&base, durable);
		ctl->calls = 0;
		ctl->kill_at = k;
		crash_checkpoint(dir, durable, b);
		snprintf(when, sizeof when, "%u -> %u shards, killed %s call %ld", a, b,
		         k % 2 ? "after" : "before", k / 2);
		struct image pc;
		image_read(durable, &pc); /* before the kill image is opened */
		recover_image(&base, dir, k % 4 < 2 ? a : b, ref, out, when);
		char pwhen[128];
		snprintf(pwhen, sizeof pwhen, "%s, power cut", when);
		image_write(&pc, durable);
		image_free(&pc);
		recover_image(&base, durable, k % 4 < 2 ? b : a, ref, out, pwhen);
	}
	printf("# %u -> %u shards: %ld calls, %ld crash points, two images each\n", a, b, calls, 2 * calls);
	image_free(&base);
	rm_dir(durable, true);
	unlink(ref);
	unlink(out);
	rm_dir(dir, true);
}

static void test_crash_at_every_step(void)
{
	ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(ctl != MAP_FAILED);
	crash_case(2, 8);
	crash_case(8, 2);
	crash_case(4, 4);
	munmap(ctl, sizeof *ctl);
}

/* ---- the previous release's form ---- */

static void test_previous_release_directory(void)
{
	char dir[256], ref[300], out[300];
	test_tmpdir(dir);
	snprintf(ref, sizeof ref, "%s.ref", dir);
	snprintf(out, sizeof out, "%s.out", dir);
	make_store(dir, 4);
	dump_store(dir, 4, ref);

	/* Rename snap-S-0004-<i> to snap-S-<i>, and write CHECKPOINT version 1
	 * as the previous release did. */
	struct image im;
	image_read(dir, &im);
	uint32_t version, parts;
	uint64_t start;
	ASSERT(image_checkpoint(&im, &version, &start, &parts));
	ASSERT_EQ_INT(version, 2);
	ASSERT_EQ_INT(parts, 4);
	char body[64], text[128], from[512], to[512];
	for (uint32_t i = 0; i < parts; i++) {
		snprintf(from, sizeof from, "%s/snap-%016" PRIx64 "-0004-%04x", dir, start, i);
		snprintf(to, sizeof to, "%s/snap-%016" PRIx64 "-%04x", dir, start, i);
		ASSERT(rename(from, to) == 0);
	}
	int n = snprintf(body, sizeof body, "oncestore-checkpoint 1 %016" PRIx64 " 4", start);
	snprintf(text, sizeof text, "%s %016" PRIx64 "\n", body, (uint64_t)XXH3_64bits(body, (size_t)n));
	snprintf(to, sizeof to, "%s/CHECKPOINT", dir);
	test_spit(to, text, strlen(text));
	/* The orphans issue 13's bug left: parts past the count, same start
	 * (a copy of part 0: recovery must not read them). */
	snprintf(from, sizeof from, "%s/snap-%016" PRIx64 "-0000", dir, start);
	size_t len;
	unsigned char *p0 = test_slurp(from, &len);
	for (uint32_t i = parts; i < parts + 3; i++) {
		snprintf(to, sizeof to, "%s/snap-%016" PRIx64 "-%04x", dir, start, i);
		test_spit(to, p0, len);
	}
	free(p0);
	image_free(&im);

	/* It opens (with another shard count too) and holds what it held; the
	 * orphans are gone, the committed version 1 files stay. */
	dump_store(dir, 2, out);
	assert_same_file(ref, out, "version 1 directory");
	image_read(dir, &im);
	assert_only_named(&im, "version 1 directory, after open");
	ASSERT(image_checkpoint(&im, &version, &start, &parts) && version == 1 && parts == 4);
	struct image v1;
	image_read(dir, &v1);

	/* A checkpoint at the same start with as many shards: the version 1
	 * names differ from the current ones, so it is written; every crash
	 * point keeps the version 1 files intact until it commits. */
	ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT(ctl != MAP_FAILED);
	char durable[300];
	snprintf(durable, sizeof durable, "%s.durable/data", dir);
	ctl->calls = 0;
	ctl->kill_at = 0;
	crash_checkpoint(dir, durable, 4);
	long calls = ctl->calls;
	image_free(&im);
	image_read(dir, &im);
	ASSERT(image_checkpoint(&im, &version, &start, &parts) && version == 2 && parts == 4);
	assert_only_named(&im, "after the first checkpoint since the upgrade");
	image_free(&im);
	dump_store(dir, 4, out);
	assert_same_file(ref, out, "after the first checkpoint since the upgrade");
	for (long k = 2; k <= 2 * calls + 1; k++) {
		char when[96];
		image_write(&v1, dir);
		image_write(&v1, durable);
		ctl->calls = 0;
		ctl->kill_at = k;
		crash_checkpoint(dir, durable, 4);
		snprintf(when, sizeof when, "version 1 -> 2, killed %s call %ld", k % 2 ? "after" : "before", k / 2);
		recover_image(&v1, dir, 4, ref, out, when);
		recover_image(&v1, durable, 4, ref, out, when);
	}
	munmap(ctl, sizeof *ctl);
	image_free(&v1);
	rm_dir(durable, true);
	unlink(ref);
	unlink(out);
	rm_dir(dir, true);
}

TESTS(TEST(test_crash_at_every_step), TEST(test_previous_release_directory));
TEST_MAIN()
