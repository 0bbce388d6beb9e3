/*
 * tests/plsim/test_powerloss.c - power-loss simulation (SPEC 1.2 "durable
 * before acknowledged ... after kill -9 or power loss", 1.3, 3): what a
 * kill -9 loop cannot see, because the page cache outlives the process.
 *
 * test_powerloss_loop.  Chains of cycles (ONCE_PLSIM_CHAIN, default 6),
 * each chain starting from an empty root directory in which the library
 * itself creates the data directory (so a mkdir whose parent is never
 * fsynced is seen).  Each cycle:
 *   1. the writer of tests/crashmodel.h (NTHREADS threads, every kind of
 *      operation, ONCE_SYNC_ALWAYS, checkpoint_bytes 16 KiB plus explicit
 *      checkpoints; one cycle in three the rotation-heavy mix) runs as a
 *      separate program (this binary, re-executed) with shim.c preloaded:
 *      every write, truncate, create, mkdir, rename, unlink and sync under
 *      the root is journaled (journal.h); TRY/ACK reports go to the parent
 *      as in test_crash.c;
 *   2. it dies by SIGKILL as in test_crash.c (during its open, right after
 *      its Nth acknowledgment, or 5-40 ms in);
 *   3. the journal is replayed onto the tree as it was at the writer's
 *      start (fsmodel.h: durable content and pending operations per file,
 *      durable entries and pending entry operations per directory, where
 *      fdatasync of a directory is not a directory sync), and up to
 *      ONCE_PLSIM_IMAGES (default 10) distinct "after power loss" images
 *      are built: the durable state only, everything kept, data kept with
 *      entries undone, entries kept with data lost, then random choices
 *      (each pending write kept, dropped, torn at any byte or at a 512-byte
 *      boundary, kept as a random subset of its sectors, or lost with the
 *      size grown over it; each directory a random in-order prefix of its
 *      pending entry operations);
 *   4. each image is written to a fresh directory and checked by the
 *      verifier of tests/crashmodel.h in its own process: once_open must
 *      succeed (a pure power-loss image must always open: ONCE_CORRUPT or
 *      any failure is a violation), every acknowledged effect of every
 *      cycle of the chain is in force, nothing no call tried appears
 *      (counts and a full dump), and every rotation is atomic, whether it
 *      was acknowledged or not: a rotation's child is never live while its
 *      parent is unconsumed, and a parent whose successor names a rotation
 *      has that rotation's child;
 *   5. the next cycle starts from one of the images that passed, chosen at
 *      random, as the new durable state (so what earlier cycles had
 *      acknowledged must survive later power losses); when none passed,
 *      or the chain is full, a new chain starts.
 * Any violation fails the test; the first ones are printed with the
 * image's choices (what was lost or undone).
 *
 * test_powerloss_model: the simulator checked against known cases: a
 * program under the shim writes files with and without fsync, creates,
 * renames and unlinks with and without a directory fsync, and syncs a
 * directory with fdatasync; the images must lose exactly what was not
 * durable, and the sector choices must tear a multi-sector write.
 *
 * What the model covers: the order of effects within the process (every
 * mutating call is journaled under one lock, after it succeeded), the
 * durability that fsync/fdatasync of a file gives its data and size, and
 * that fsync of a directory gives its entries; losses at byte and 512-byte
 * granularity within a write, independent across writes and files; an
 * in-order prefix of each directory's entry operations.
 * What it does not cover: reordering within a directory beyond a prefix
 * (a later entry operation durable while an earlier one is not) and
 * across directories other than independently; sector tears finer than
 * 512 bytes within a sector other than the "torn after any byte" choice;
 * a file's size and data journaled separately except through the "size
 * kept" choices (garbage rather than zeros in unwritten blocks is not
 * modelled); the extra durability specific file systems give (ext4's
 * fsync committing the directory entry of a new file, XFS's or ext4's
 * fdatasync of a directory); a sync that failed (EIO: the library must
 * not retry it, which test_recovery.c's fault injection covers);
 * O_DIRECT, mmap'd writes, io_uring, and calls glibc makes internally
 * (stdio, closedir): the shim sees only the libc entry points it wraps
 * (shim.c lists them; the ones it cannot model fail the test).
 * Power loss during the verifier's own open (a recovery's repairs) is seen
 * from the next cycle's writer, whose open runs under the shim.
 *
 * Environment: ONCE_PLSIM_SEED (printed), ONCE_PLSIM_CYCLES (most cycles,
 * default 200), ONCE_PLSIM_SECONDS (the loop stops after this wall time,
 * never before ONCE_PLSIM_MIN_CYCLES (default 60) cycles; default 60),
 * ONCE_PLSIM_IMAGES, ONCE_PLSIM_CHAIN, ONCE_PLSIM_SHOW (violations
 * printed, default 12), ONCE_PLSIM_SHIM (the shim's path; meson sets it).
 * Plain builds only (tests/plsim/meson.build): an ASan or TSan binary
 * refuses a preloaded library.
 */
#include <inttypes.h>
#include <limits.h>
#include <sys/stat.h>

#include "../crashmodel.h"
#include "fsmodel.h"

#define SHOW_DEFAULT 12

static const char *shim_path;
static char self_exe[PATH_MAX];
static char work[256], root_dir[320], data_dir[340], journal_path[320], image_root[320],
	image_data[340];

static void set_shim_env(const char *root, const char *journal)
{
	setenv("LD_PRELOAD", shim_path, 1);
	setenv("PLSIM_ROOT", root, 1);
	setenv("PLSIM_JOURNAL", journal, 1);
}

static void truncate_journal(void)
{
	int fd = open(journal_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT(fd >= 0);
	close(fd);
}

/* ---- the writer: this binary again, with the shim preloaded ---- */

static pid_t spawn_exec(const int p[2], const char *dir, uint32_t cy, uint64_t seed, uint32_t kill_after)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	close(p[0]);
	char a[6][32];
	snprintf(a[0], sizeof a[0], "%d", p[1]);
	snprintf(a[1], sizeof a[1], "%u", cy);
	snprintf(a[2], sizeof a[2], "%" PRIu64, seed);
	snprintf(a[3], sizeof a[3], "%u", kill_after);
	snprintf(a[4], sizeof a[4], "%d", crash_mix);
	snprintf(a[5], sizeof a[5], "%" PRIu64, capacity);
	set_shim_env(root_dir, journal_path);
	execl(self_exe, self_exe, "--plsim-writer", a[0], dir, a[1], a[2], a[3], a[4], a[5], (char *)NULL);
	_exit(6);
}

static _Noreturn void writer_exec_main(char **argv)
{
	crash_mix = atoi(argv[7]);
	capacity = strtoull(argv[8], NULL, 10);
	writer_main(atoi(argv[2]), argv[3], (uint32_t)strtoul(argv[4], NULL, 10),
	            strtoull(argv[5], NULL, 10), (uint32_t)strtoul(argv[6], NULL, 10));
}

/* ---- one image, verified in its own process ---- */

enum { V_PASS, V_OPEN, V_ROTATION, V_EFFECT, V_CRASH, V_CLASSES };
static const char *const class_name[V_CLASSES] = {
	"passed", "once_open failed", "rotation not atomic", "acknowledged effect lost or untried effect present",
	"verifier crashed"};

/* Verifies the image at image_data against the model; *msg receives what
 * the verifier printed (stderr). */
static int verify_image(struct vresult *out, char *msg, size_t cap)
{
	int res[2], err[2];
	ASSERT(pipe(res) == 0 && pipe(err) == 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(res[0]);
		close(err[0]);
		dup2(err[1], 2);
		close(err[1]);
		verifier_main(image_data, UINT32_MAX, 0, res[1]);
		exit(0);
	}
	close(res[1]);
	close(err[1]);
	size_t n = 0;
	for (;;) {
		char buf[1024];
		ssize_t k = read(err[0], buf, sizeof buf);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		size_t c = (size_t)k < cap - 1 - n ? (size_t)k : cap - 1 - n;
		memcpy(msg + n, buf, c);
		n += c;
	}
	msg[n] = '\0';
	close(err[0]);
	memset(out, 0, sizeof *out);
	ssize_t got = read(res[0], out, sizeof *out);
	close(res[0]);
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && got == (ssize_t)sizeof *out)
		return V_PASS;
	if (!WIFEXITED(status))
		return V_CRASH;
	if (strstr(msg, "verifier: once_open") != NULL)
		return V_OPEN;
	if (strstr(msg, "rotation child present") != NULL || strstr(msg, "parent rotated to it") != NULL)
		return V_ROTATION;
	return V_EFFECT;
}

/* ---- the loop ---- */

static void reset_model(void)
{
	for (uint32_t c = 0; c < n_cycles; c++) {
		free(cycles[c].code);
		free(cycles[c].at);
		free(cycles[c].rt);
		free(cycles[c].nonce);
		free(cycles[c].rp);
		memset(&cycles[c], 0, sizeof cycles[c]);
	}
	n_cycles = 0;
}

struct pl_totals {
	uint64_t cycles, chains, images, dup_images, rotations, violations;
	uint64_t per_class[V_CLASSES], sim_errors, journal_records, pending_file_ops, pending_dir_ops;
	uint64_t kills_with_pending, dir_fdatasyncs, dir_fsyncs, file_syncs, torn_opens, restarts;
	uint64_t rotation_cycles;
};

static void print_violation(uint64_t nth, uint32_t chain, uint32_t cy, uint64_t img, int cls,
                            const struct pl_image *image, const char *msg)
{
	char more[64] = "";
	if (image->desc_omitted)
		snprintf(more, sizeof more, "; and %zu more", image->desc_omitted);
	printf("# violation %" PRIu64 " (chain %u, cycle %u, image %" PRIu64 "): %s\n#   image: %s%s\n", nth,
	       chain, cy, img, class_name[cls], image->desc, more);
	const char *p = msg;
	int lines = 0;
	while (*p && lines < 4) {
		const char *e = strchr(p, '\n');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		size_t skip = l >= 2 && p[0] == '#' && p[1] == ' ' ? 2 : 0;
		printf("#   %.*s\n", (int)(l - skip > 400 ? 400 : l - skip), p + skip);
		p += l + (e != NULL);
		lines++;
	}
	fflush(stdout);
}

static void test_powerloss_loop(void)
{
	uint64_t seed = env_u64("ONCE_PLSIM_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	uint64_t max_cycles = env_u64("ONCE_PLSIM_CYCLES", 200);
	uint64_t min_cycles = env_u64("ONCE_PLSIM_MIN_CYCLES", 60);
	uint64_t budget_s = env_u64("ONCE_PLSIM_SECONDS", 60);
	uint64_t n_images = env_u64("ONCE_PLSIM_IMAGES", 10);
	uint64_t chain_len = env_u64("ONCE_PLSIM_CHAIN", 6);
	uint64_t show = env_u64("ONCE_PLSIM_SHOW", SHOW_DEFAULT);
	if (min_cycles > max_cycles)
		min_cycles = max_cycles;
	if (chain_len == 0)
		chain_len = 1;
	if (n_images < PL_POLICIES)
		n_images = PL_POLICIES;
	while (capacity < chain_len * MAX_IDS + 64)
		capacity *= 2;
	printf("# powerloss: seed %" PRIu64 " (ONCE_PLSIM_SEED), %" PRIu64 " to %" PRIu64 " cycles, %" PRIu64
	       " s budget, up to %" PRIu64 " images per kill, chains of %" PRIu64 " cycles\n",
	       seed, min_cycles, max_cycles, budget_s, n_images, chain_len);
	fflush(stdout);
	uint64_t rs = seed ? seed : 1;
	cycles = calloc(chain_len, sizeof *cycles);
	ASSERT(cycles != NULL);
	struct totals tot = {0};
	struct pl_totals pt = {0};
	struct pl_image next = {0};
	bool have_next = false;
	uint32_t chain = 0;
	uint64_t t0 = mono_ns();
	while (pt.cycles < max_cycles) {
		if (pt.cycles >= min_cycles && mono_ns() - t0 > budget_s * 1000000000u)
			break;
		if (!have_next || n_cycles == chain_len) {
			reset_model();
			pl_rmtree(root_dir);
			ASSERT(mkdir(root_dir, 0700) == 0);
			pt.chains++;
			chain++;
		} else {
			ASSERT(pl_image_write(&next, root_dir));
		}
		pl_image_free(&next);
		have_next = false;
		crash_mix = rnd(&rs, 3) == 0 ? MIX_ROTATIONS : MIX_DEFAULT;
		pt.rotation_cycles += crash_mix == MIX_ROTATIONS;
		struct pl_fs fs;
		ASSERT(pl_fs_scan(&fs, root_dir));
		truncate_journal();
		uint32_t cy = n_cycles++;
		pt.cycles++;
		run_writer(data_dir, cy, &rs, &tot, spawn_exec);
		ASSERT(pl_fs_replay(&fs, journal_path));
		pt.journal_records += fs.st.records;
		pt.dir_fdatasyncs += fs.st.dir_fdatasyncs;
		pt.dir_fsyncs += fs.st.dir_fsyncs;
		pt.file_syncs += fs.st.file_syncs;
		if (fs.st.errors) {
			pt.sim_errors += fs.st.errors;
			printf("# simulator: cycle %u: %" PRIu64 " journal records not modelled; first: %s\n", cy,
			       fs.st.errors, fs.st.first_error);
		}
		uint64_t fo, dop;
		pl_fs_pending(&fs, &fo, &dop);
		pt.pending_file_ops += fo;
		pt.pending_dir_ops += dop;
		pt.kills_with_pending += fo + dop > 0;
		/* The images: the four fixed policies, then random ones; the same
		 * image twice is checked once. */
		uint64_t hashes[64];
		unsigned n_hash = 0, passed = 0;
		struct pl_image *pass = calloc(n_images, sizeof *pass);
		ASSERT(pass != NULL);
		for (unsigned i = 0, tries = 0; i < n_images && tries < 4 * n_images && n_hash < 64; tries++) {
			enum pl_policy pol = tries < PL_RANDOM ? (enum pl_policy)tries : PL_RANDOM;
			uint64_t irng = rng_next(&rs);
			struct pl_image img;
			pl_image_build(&fs, pol, &irng, &img);
			bool dup = false;
			for (unsigned h = 0; h < n_hash; h++)
				dup |= hashes[h] == img.hash;
			if (dup) {
				pt.dup_images++;
				pl_image_free(&img);
				continue;
			}
			hashes[n_hash++] = img.hash;
			i++;
			ASSERT(pl_image_write(&img, image_root));
			struct vresult vr;
			char msg[4096];
			int cls = verify_image(&vr, msg, sizeof msg);
			pt.images++;
			pt.per_class[cls]++;
			if (cls == V_PASS) {
				add_vresult(&tot, &vr);
				pt.rotations += vr.rotations;
				pt.torn_opens += vr.torn > 0;
				pass[passed++] = img;
				continue;
			}
			pt.violations++;
			if (pt.violations <= show)
				print_violation(pt.violations, chain, cy, pt.images, cls, &img, msg);
			pl_image_free(&img);
		}
		if (passed > 0) {
			unsigned k = rnd(&rs, passed);
			next = pass[k];
			have_next = true;
			for (unsigned i = 0; i < passed; i++)
				if (i != k)
					pl_image_free(&pass[i]);
		} else {
			pt.restarts++;
		}
		free(pass);
		pl_fs_free(&fs);
	}
	pl_image_free(&next);
	reset_model();
	free(cycles);
	cycles = NULL;
	double secs = (double)(mono_ns() - t0) / 1e9;
	printf("# powerloss: %" PRIu64 " cycles (%" PRIu64 " chains, %" PRIu64 " rotation-heavy) in %.1f s: %" PRIu64
	       " images checked (%" PRIu64 " duplicates skipped), %" PRIu64 " checks (%" PRIu64
	       " rotation atomicity checks, %" PRIu64 " dump lines), %" PRIu64 " violations\n",
	       pt.cycles, pt.chains, pt.rotation_cycles, secs, pt.images, pt.dup_images, tot.checks,
	       pt.rotations, tot.dump_lines, pt.violations);
	for (int c = V_OPEN; c < V_CLASSES; c++)
		if (pt.per_class[c])
			printf("# powerloss:   %" PRIu64 " images: %s\n", pt.per_class[c], class_name[c]);
	printf("# powerloss: writers: %" PRIu64 " acknowledged operations (of %" PRIu64 " tried), %" PRIu64
	       " checkpoints seen, %" PRIu64 " kills before the open finished, %" PRIu64
	       " right after an acknowledgment\n",
	       tot.acks, tot.tries, tot.checkpoints, tot.killed_before_ready, tot.self_kills);
	printf("# powerloss: journal: %" PRIu64 " records, %" PRIu64 " file syncs, %" PRIu64
	       " directory fsyncs, %" PRIu64 " directory fdatasyncs (not a directory sync); at the kills: %" PRIu64
	       " pending file operations, %" PRIu64 " pending directory operations (%" PRIu64
	       " kills with something pending); %" PRIu64 " passing images recovered from a snapshot, %" PRIu64
	       " cut a torn tail; %" PRIu64 " chains ended with no passing image; %" PRIu64
	       " simulator errors\n",
	       pt.journal_records, pt.file_syncs, pt.dir_fsyncs, pt.dir_fdatasyncs, pt.pending_file_ops,
	       pt.pending_dir_ops, pt.kills_with_pending, tot.snapshot_recoveries, pt.torn_opens, pt.restarts,
	       pt.sim_errors);
	fflush(stdout);
	ASSERT(pt.sim_errors == 0);
	ASSERT(pt.images > 0 && tot.acks > 0);
	if (pt.violations > 0)
		FAIL_AT("%" PRIu64 " of %" PRIu64 " power-loss images violate the guarantees (see above)",
		        pt.violations, pt.images);
}

/* ======================================================================== */
/* The simulator against known cases                                        */
/* ======================================================================== */

/*
 * Under the shim, in root:
 *   c      created, written, fsync'd; the directory fsync'd: durable
 *   d      created before that directory fsync; 1400 bytes at offset 100
 *          fdatasync'd, then 1400 at 2000 (4 sector pieces) not synced
 *   a      created after it, written, never synced
 *   b      created after it, written, fdatasync'd; the directory
 *          fdatasync'd (not a directory sync)
 *   e.tmp  created after it, written, fsync'd, renamed over e (durable
 *          before the child ran): the rename is not durable
 *   f      durable before the child ran, unlinked without a dir sync
 *   sub/   mkdir'd without a sync of the root
 */
static void model_child(const char *root)
{
	char p[512], q[512];
	int dfd = open(root, O_RDONLY | O_DIRECTORY);
	ASSERT(dfd >= 0);
	unsigned char big[1400];
	memset(big, 'D', sizeof big);
	int fc = openat(dfd, "c", O_WRONLY | O_CREAT | O_EXCL, 0600);
	int fd = openat(dfd, "d", O_WRONLY | O_CREAT | O_EXCL, 0600);
	ASSERT(fc >= 0 && fd >= 0);
	ASSERT(write(fc, "CCCC", 4) == 4 && fsync(fc) == 0 && fsync(dfd) == 0);
	ASSERT(pwrite(fd, big, sizeof big, 100) == (ssize_t)sizeof big && fdatasync(fd) == 0);
	ASSERT(pwrite(fd, big, sizeof big, 2000) == (ssize_t)sizeof big); /* pending: 4 pieces */
	int fa = openat(dfd, "a", O_WRONLY | O_CREAT | O_EXCL, 0600);
	int fb = openat(dfd, "b", O_WRONLY | O_CREAT | O_EXCL, 0600);
	int ft = openat(dfd, "e.tmp", O_WRONLY | O_CREAT | O_EXCL, 0600);
	ASSERT(fa >= 0 && fb >= 0 && ft >= 0);
	ASSERT(write(fa, "AAAA", 4) == 4);
	ASSERT(pwrite(fb, "BBBB", 4, 0) == 4 && fdatasync(fb) == 0 && fdatasync(dfd) == 0);
	ASSERT(write(ft, "NEW", 3) == 3 && fsync(ft) == 0);
	snprintf(p, sizeof p, "%s/e.tmp", root);
	snprintf(q, sizeof q, "%s/e", root);
	ASSERT(rename(p, q) == 0);
	ASSERT(unlinkat(dfd, "f", 0) == 0);
	snprintf(p, sizeof p, "%s/sub", root);
	ASSERT(mkdir(p, 0700) == 0);
	_exit(0);
}

static const struct pl_ifile *image_file(const struct pl_image *img, const char *path)
{
	for (size_t i = 0; i < img->n; i++)
		if (strcmp(img->f[i].path, path) == 0)
			return &img->f[i];
	return NULL;
}

static bool file_is(const struct pl_image *img, const char *path, const char *want)
{
	const struct pl_ifile *f = image_file(img, path);
	return f != NULL && f->size == strlen(want) && memcmp(f->data, want, f->size) == 0;
}

static void test_powerloss_model(void)
{
	char dir[256];
	test_tmpdir(dir); /* "<tmp>/data": the root is <tmp>/data */
	ASSERT(mkdir(dir, 0700) == 0);
	char jp[300], p[320];
	snprintf(jp, sizeof jp, "%s.journal", dir);
	/* e and f exist, durable, before the child starts */
	snprintf(p, sizeof p, "%s/e", dir);
	int fd = open(p, O_WRONLY | O_CREAT, 0600);
	ASSERT(fd >= 0 && write(fd, "OLD", 3) == 3);
	close(fd);
	snprintf(p, sizeof p, "%s/f", dir);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	ASSERT(fd >= 0 && write(fd, "FFF", 3) == 3);
	close(fd);
	struct pl_fs fs;
	ASSERT(pl_fs_scan(&fs, dir));
	fd = open(jp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT(fd >= 0);
	close(fd);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		set_shim_env(dir, jp);
		execl(self_exe, self_exe, "--plsim-model-child", dir, (char *)NULL);
		_exit(6);
	}
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT(pl_fs_replay(&fs, jp));
	ASSERT_EQ_U64(fs.st.errors, 0);
	ASSERT_EQ_U64(fs.st.dir_fdatasyncs, 1);
	ASSERT_EQ_U64(fs.st.dir_fsyncs, 1);
	uint64_t rng = 42;
	struct pl_image img;

	/* The durable state: c and d's first write; e still OLD; f back; no a, b, sub. */
	pl_image_build(&fs, PL_DURABLE, &rng, &img);
	ASSERT(image_file(&img, "a") == NULL);
	ASSERT(image_file(&img, "b") == NULL); /* fdatasync of the directory is not a dir sync */
	ASSERT(file_is(&img, "c", "CCCC"));
	ASSERT(file_is(&img, "e", "OLD"));
	ASSERT(file_is(&img, "f", "FFF"));
	ASSERT(image_file(&img, "e.tmp") == NULL); /* created after the dir sync: gone */
	ASSERT(image_file(&img, "sub") == NULL);
	const struct pl_ifile *d = image_file(&img, "d");
	ASSERT(d != NULL && d->size == 1500 && d->data[99] == 0 && d->data[100] == 'D');
	pl_image_free(&img);

	/* Everything kept: what the directory holds now. */
	pl_image_build(&fs, PL_ALL, &rng, &img);
	ASSERT(file_is(&img, "a", "AAAA") && file_is(&img, "b", "BBBB") && file_is(&img, "e", "NEW"));
	ASSERT(image_file(&img, "f") == NULL && image_file(&img, "e.tmp") == NULL);
	ASSERT(image_file(&img, "sub") != NULL && image_file(&img, "sub")->dir);
	d = image_file(&img, "d");
	ASSERT(d != NULL && d->size == 3400);
	pl_image_free(&img);

	/* Entries kept, data lost: b's data was synced, a's was not. */
	pl_image_build(&fs, PL_DIRS_ONLY, &rng, &img);
	ASSERT(file_is(&img, "a", "") && file_is(&img, "b", "BBBB") && file_is(&img, "e", "NEW"));
	pl_image_free(&img);

	/* Random images: d's pending 4-piece write comes back in pieces,
	 * some with a hole before a kept later sector. */
	unsigned holes = 0, whole = 0, none = 0;
	for (int i = 0; i < 400; i++) {
		pl_image_build(&fs, PL_RANDOM, &rng, &img);
		d = image_file(&img, "d");
		ASSERT(d != NULL);
		unsigned kept = 0, gap_then_kept = 0;
		bool gap = false;
		static const size_t piece[4] = {2000, 2048, 2560, 3072};
		for (int k = 0; k < 4; k++) {
			bool in = piece[k] < d->size && d->data[piece[k]] == 'D';
			kept += in;
			gap_then_kept += gap && in;
			gap |= !in;
		}
		holes += gap_then_kept > 0;
		whole += kept == 4;
		none += kept == 0;
		pl_image_free(&img);
	}
	printf("# model: 400 random images: d's pending write whole in %u, lost in %u, with a hole before a "
	       "kept sector in %u\n", whole, none, holes);
	ASSERT(holes > 0 && whole > 0 && none > 0);
	pl_fs_free(&fs);
	pl_rmtree(dir);
	unlink(jp);
	char parent[256];
	snprintf(parent, sizeof parent, "%s", dir);
	*strrchr(parent, '/') = '\0';
	rmdir(parent);
}

TESTS(TEST(test_powerloss_model), TEST(test_powerloss_loop));

static int harness_main(int argc, char **argv)
{
	size_t n = sizeof test_cases / sizeof test_cases[0];
	int failed = 0;
	printf("1..%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		if (argc > 1 && strcmp(argv[1], test_cases[i].name) != 0) {
			printf("ok %zu - %s # SKIP not selected\n", i + 1, test_cases[i].name);
			continue;
		}
		int rc = run_one(&test_cases[i]);
		failed += rc != 0;
		printf("%sok %zu - %s\n", rc ? "not " : "", i + 1, test_cases[i].name);
		fflush(stdout);
	}
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 9 && strcmp(argv[1], "--plsim-writer") == 0)
		writer_exec_main(argv);
	if (argc >= 3 && strcmp(argv[1], "--plsim-model-child") == 0)
		model_child(argv[2]);
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	ASSERT(n > 0);
	self_exe[n] = '\0';
	shim_path = getenv("ONCE_PLSIM_SHIM");
	if (shim_path == NULL || *shim_path == '\0') {
		printf("1..0 # SKIP ONCE_PLSIM_SHIM (the preload library's path) is not set\n");
		return 0;
	}
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(work, sizeof work, "%s/oncestore-plsim-XXXXXX", base);
	ASSERT(mkdtemp(work) != NULL);
	snprintf(root_dir, sizeof root_dir, "%s/root", work);
	snprintf(data_dir, sizeof data_dir, "%s/data", root_dir);
	snprintf(journal_path, sizeof journal_path, "%s/journal", work);
	snprintf(image_root, sizeof image_root, "%s/image", work);
	snprintf(image_data, sizeof image_data, "%s/data", image_root);
	int rc = harness_main(argc, argv);
	if (getenv("ONCE_PLSIM_KEEP") == NULL)
		pl_rmtree(work);
	else
		printf("# kept %s\n", work);
	return rc;
}
