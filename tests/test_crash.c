/*
 * tests/test_crash.c - kill -9 tests (SPEC 1.2 "durable before
 * acknowledged", 1.3 torn tails, 3 recovery).  Two test cases.
 *
 * test_kill9_loop: one data directory lives across every cycle.  Each
 * cycle:
 *   1. a writer process opens the store (ONCE_SYNC_ALWAYS, a successor key,
 *      no sweeper, checkpoint_bytes 16 KiB so automatic checkpoints happen,
 *      plus explicit once_checkpoint calls from one thread) and runs
 *      NTHREADS threads doing random operations of every kind on keys of
 *      this cycle, several threads on the same recent keys (contention);
 *   2. before every state-changing call a thread writes a TRY report to a
 *      pipe, and after a call that returned ONCE_OK an ACK report (one
 *      write() of 64 bytes each: atomic, PIPE_BUF);
 *   3. the writer dies by SIGKILL: from the parent 5-40 ms after its open
 *      (6 cycles in 10), from the parent 0-4 ms after the fork, i.e. during
 *      its recovery (1 in 10), or by its own hand right after writing its
 *      Nth ACK, N random (3 in 10), while other threads' records are in
 *      flight; the parent drains the pipe and reaps it;
 *   4. a verifier process opens the directory and checks the model:
 *      every acknowledged put / insert / record is present, every
 *      acknowledged take / finalize / consume / rotation / successor /
 *      accept / replay record / revocation is still in force, and nothing
 *      appears that no call ever tried to write (keys never tried, states
 *      never tried, per-kind entry counts between "acknowledged" and
 *      "tried", and every line of a full dump accounted for).  An
 *      operation that was in flight at the kill (TRY without ACK) may go
 *      either way and is not asserted on.
 * Each verification checks the cycle just run and one random earlier
 * cycle (whose keys no later cycle touches: their state must survive later
 * checkpoints and recoveries unchanged); the last one checks every cycle.
 * The verifier only makes probes whose expected outcome changes nothing
 * (a take of a taken code, an accept of a used nonce, a replay check of a
 * recorded jti, an insert into a revoked family, a re-record of a present
 * access token), so the model stays exact across cycles.
 *
 * test_kill9_after_shared_ok: calls that tell several callers OK for one
 * change (see there), each trial crashing right after the first OK.
 *
 * What kill -9 cannot show: a missing fdatasync (the page cache outlives
 * the process); that needs power-loss simulation.
 *
 * Environment: ONCE_CRASH_SEED (the loop's random seed, printed),
 * ONCE_CRASH_CYCLES (most cycles, default 300), ONCE_CRASH_SECONDS (after
 * this wall time the loop stops, but never before 200 cycles; default 20),
 * ONCE_CRASH_BURSTS (trials of the second test, default 120).
 */
#include "crashmodel.h"

static struct vresult run_verifier(const char *dir, uint32_t which, uint32_t pick)
{
	int p[2];
	ASSERT(pipe(p) == 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		verifier_main(dir, which, pick, p[1]);
		exit(0); /* LeakSanitizer checks the verifier here */
	}
	close(p[1]);
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL_AT("verification after cycle %u failed (%s %d)", which,
		        WIFEXITED(status) ? "exit" : "signal",
		        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	struct vresult r;
	ASSERT(read(p[0], &r, sizeof r) == (ssize_t)sizeof r);
	close(p[0]);
	return r;
}

static pid_t spawn_forked(const int p[2], const char *dir, uint32_t cy, uint64_t seed, uint32_t kill_after)
{
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		writer_main(p[1], dir, cy, seed, kill_after);
	}
	return pid;
}

static void test_kill9_loop(void)
{
	uint64_t seed = env_u64("ONCE_CRASH_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
	uint64_t max_cycles = env_u64("ONCE_CRASH_CYCLES", 300);
	uint64_t budget_s = env_u64("ONCE_CRASH_SECONDS", 20);
	uint64_t min_cycles = max_cycles < MIN_CYCLES ? max_cycles : MIN_CYCLES;
	while (capacity < max_cycles * MAX_IDS + 64)
		capacity *= 2;
	printf("# crash loop: seed %" PRIu64 " (ONCE_CRASH_SEED), %" PRIu64 " to %" PRIu64
	       " cycles, %" PRIu64 " s budget\n", seed, min_cycles, max_cycles, budget_s);
	fflush(stdout);
	uint64_t rs = seed ? seed : 1;
	char dir[256];
	test_tmpdir(dir);
	cycles = calloc(max_cycles ? max_cycles : 1, sizeof *cycles);
	ASSERT(cycles != NULL);
	struct totals tot = {0};
	uint64_t t0 = mono_ns();
	while (n_cycles < max_cycles) {
		if (n_cycles >= min_cycles && mono_ns() - t0 > budget_s * 1000000000u)
			break;
		uint32_t cy = n_cycles++;
		uint64_t a = mono_ns();
		run_writer(dir, cy, &rs, &tot, spawn_forked);
		uint64_t b = mono_ns();
		struct vresult r = run_verifier(dir, cy, (uint32_t)rng_next(&rs));
		tot.verifier_ns += mono_ns() - b;
		tot.writer_ns += b - a;
		add_vresult(&tot, &r);
	}
	/* Every cycle once more, from one more recovery. */
	struct vresult r = run_verifier(dir, UINT32_MAX, 0);
	add_vresult(&tot, &r);
	double secs = (double)(mono_ns() - t0) / 1e9;
	printf("# crash loop: %u cycles in %.1f s, %" PRIu64 " acknowledged operations verified (of %" PRIu64
	       " tried), %" PRIu64 " checks, %" PRIu64 " checkpoints seen (writers %.1f s, verifiers %.1f s)\n",
	       n_cycles, secs, tot.acks, tot.tries, tot.checks, tot.checkpoints,
	       (double)tot.writer_ns / 1e9, (double)tot.verifier_ns / 1e9);
	printf("# crash loop: recovery replayed %" PRIu64 " log records and loaded %" PRIu64
	       " snapshot records (%" PRIu64 " recoveries from a snapshot, slowest %.1f ms), cut %" PRIu64
	       " torn tails; %" PRIu64 " kills before the writer's open finished, %" PRIu64
	       " right after an acknowledgment; %" PRIu64 " dump lines checked\n",
	       tot.recovered, tot.snapshot, tot.snapshot_recoveries, (double)tot.max_recovery_ns / 1e6,
	       tot.torn, tot.killed_before_ready, tot.self_kills, tot.dump_lines);
	fflush(stdout);
	ASSERT(n_cycles >= min_cycles);
	if (max_cycles >= MIN_CYCLES)
		ASSERT(n_cycles >= MIN_CYCLES);
	ASSERT(tot.acks > 0);
	if (n_cycles >= MIN_CYCLES) {
		/* The loop exercised what it is for. */
		ASSERT(tot.checkpoints > 0);
		ASSERT(tot.snapshot_recoveries > 0);
		ASSERT(tot.recovered > 0);
	}
	for (uint32_t c = 0; c < n_cycles; c++) {
		free(cycles[c].code);
		free(cycles[c].at);
		free(cycles[c].rt);
		free(cycles[c].nonce);
		free(cycles[c].rp);
	}
	free(cycles);
	test_rmdir(dir);
}

/* ======================================================================== */
/* One change, several callers told OK: a crash right after the first       */
/* ======================================================================== */

/*
 * Some calls answer OK to every caller, not only to the one that made the
 * change: a second finalize of a finalized code, a second revocation of a
 * family, a second remember_successor.  Each of those OKs is an
 * acknowledgment too (SPEC 1.2), so it must not come before the change is
 * durable, even when another thread made the change and is still waiting
 * for its sync.  Each trial sets one key up (durably), keeps the log busy
 * with a thread of replay checks, releases BURST_THREADS threads at once
 * on the same call, and the first thread that hears OK reports it and
 * SIGKILLs its own process; a verifier then checks that the change is in
 * force.  The random kills of test_kill9_loop rarely land in that window.
 */

enum { B_FIN, B_AT_REV, B_RT_REV, B_RT_REM, B_KINDS };
static const char *const burst_names[B_KINDS] = {"code_finalize", "access_revoke",
                                                 "refresh_revoke_family",
                                                 "refresh_remember_successor"};
#define BURST_THREADS 3
#define BURST_NOISE 64 /* most replay checks of the noise thread per trial */

static struct {
	int kind;
	uint32_t trial;
	pthread_barrier_t go;
} B;

static void burst_keys(uint32_t trial, char *key, size_t *kl, char *fam, size_t *fl, char *pay,
                       size_t *pl)
{
	*kl = (size_t)sprintf(key, "burst:%u", trial);
	*fl = (size_t)sprintf(fam, "bfam:%u", trial);
	*pl = (size_t)sprintf(pay, "succ:%u", trial);
}

static void *burst_noise(void *arg)
{
	(void)arg;
	char key[64];
	for (uint32_t i = 0; i < BURST_NOISE; i++) {
		size_t kl = (size_t)sprintf(key, "noise:%u:%u", B.trial, i);
		expect_in(9, R_RP, once_replay_check(W.s, key, kl, FAR), M(OK), __LINE__);
	}
	return NULL;
}

static void *burst_thread(void *arg)
{
	uint16_t t = (uint16_t)(uintptr_t)arg;
	char key[64], fam[64], pay[64];
	size_t kl, fl, pl;
	burst_keys(B.trial, key, &kl, fam, &fl, pay, &pl);
	pthread_barrier_wait(&B.go);
	once_status st;
	switch (B.kind) {
	case B_FIN: st = once_code_finalize(W.s, key, kl); break;
	case B_AT_REV: st = once_code_revoke_family_access_tokens(W.s, fam, fl); break;
	case B_RT_REV: st = once_refresh_revoke_family(W.s, fam, fl); break;
	default: st = once_refresh_remember_successor(W.s, key, kl, pay, pl); break;
	}
	if (st == ONCE_OK) {
		send_report(t, R_BURST, ACK, B.trial, (uint32_t)B.kind, 0, NULL);
		kill(getpid(), SIGKILL);
	}
	expect_in(t, R_BURST, st, M(OK), __LINE__); /* every caller is told OK */
	return NULL;
}

static _Noreturn void burst_writer(int fd, const char *dir, uint32_t trial, int kind)
{
	memset(&W, 0, sizeof W);
	W.fd = fd;
	B.kind = kind;
	B.trial = trial;
	once_options o = crash_options(dir);
	once_status st = once_open(&o, &W.s);
	expect_in(0, R_READY, st, M(OK), __LINE__);
	char key[64], fam[64], pay[64], jti[64];
	size_t kl, fl, pl;
	burst_keys(trial, key, &kl, fam, &fl, pay, &pl);
	once_code c = test_code(FAR);
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = fam;
	r.subject = "user-1";
	r.expires_at = FAR;
	switch (kind) {
	case B_FIN:
		expect_in(0, R_CODE_PUT, once_code_put(W.s, key, kl, &c), M(OK), __LINE__);
		expect_in(0, R_CODE_TAKE, once_code_take(W.s, key, kl, NULL, NULL), M(OK), __LINE__);
		break;
	case B_AT_REV: {
		size_t jl = (size_t)sprintf(jti, "bjti:%u", trial);
		expect_in(0, R_AT_REC, once_code_record_access_token(W.s, fam, fl, jti, jl, FAR), M(OK),
		          __LINE__);
		break;
	}
	case B_RT_REV:
		expect_in(0, R_RT_INS, once_refresh_insert(W.s, key, kl, &r), M(OK), __LINE__);
		break;
	default:
		expect_in(0, R_RT_INS, once_refresh_insert(W.s, key, kl, &r), M(OK), __LINE__);
		expect_in(0, R_RT_CONS, once_refresh_consume(W.s, key, kl, NULL), M(OK), __LINE__);
		break;
	}
	pthread_t noise, th[BURST_THREADS];
	if (pthread_create(&noise, NULL, burst_noise, NULL) != 0)
		_exit(3);
	usleep(500); /* the log is busy: a record appended now waits for a sync */
	pthread_barrier_init(&B.go, NULL, BURST_THREADS);
	for (uintptr_t i = 0; i < BURST_THREADS; i++)
		if (pthread_create(&th[i], NULL, burst_thread, (void *)i) != 0)
			_exit(3);
	sleep(60); /* the first OK kills us */
	_exit(5);
}

static void burst_verifier(const char *dir, uint32_t trial, int kind)
{
	once_options o = crash_options(dir);
	once_store *s = NULL;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK)
		FAIL_AT("trial %u: once_open: %s", trial, once_status_name(st));
	char key[64], fam[64], pay[64], jti[64];
	size_t kl, fl, pl;
	burst_keys(trial, key, &kl, fam, &fl, pay, &pl);
	switch (kind) {
	case B_FIN: {
		once_status got = once_code_take(s, key, kl, NULL, NULL);
		if (got != ONCE_SPENT)
			FAIL_AT("trial %u: a finalize was acknowledged, but after recovery a take of the code "
			        "answers %s, not SPENT",
			        trial, once_status_name(got));
		break;
	}
	case B_AT_REV: {
		size_t jl = (size_t)sprintf(jti, "bjti:%u", trial);
		if (!once_access_token_revoked(s, jti, jl))
			FAIL_AT("trial %u: an access-token revocation was acknowledged, but after recovery "
			        "the token is not revoked", trial);
		break;
	}
	case B_RT_REV: {
		once_status got = once_refresh_get(s, key, kl, NULL);
		if (got != ONCE_NOT_FOUND)
			FAIL_AT("trial %u: a family revocation was acknowledged, but after recovery its "
			        "token reads %s", trial, once_status_name(got));
		char probe[64];
		size_t prl = (size_t)sprintf(probe, "bprobe:%u", trial);
		once_refresh r;
		memset(&r, 0, sizeof r);
		r.family_id = fam;
		r.subject = "user-1";
		r.expires_at = FAR;
		ASSERT_ST(once_refresh_insert(s, probe, prl, &r), ONCE_REVOKED);
		break;
	}
	default: {
		once_refresh *got = NULL;
		ASSERT_ST(once_refresh_get(s, key, kl, &got), ONCE_OK);
		if (!got->consumed || got->successor == NULL || got->successor_len != pl ||
		    memcmp(got->successor, pay, pl) != 0)
			FAIL_AT("trial %u: remember_successor was acknowledged, but after recovery the token "
			        "has %s", trial, got->successor ? "another successor" : "no successor");
		once_free(got);
		break;
	}
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_kill9_after_shared_ok(void)
{
	uint64_t trials = env_u64("ONCE_CRASH_BURSTS", 120);
	while (capacity < trials * (BURST_NOISE + 1) + 64)
		capacity *= 2;
	char dir[256];
	test_tmpdir(dir);
	uint64_t t0 = mono_ns();
	uint64_t acks = 0, per_kind[B_KINDS] = {0};
	for (uint32_t trial = 0; trial < trials; trial++) {
		int kind = (int)(trial % B_KINDS);
		int p[2];
		ASSERT(pipe(p) == 0);
		fflush(NULL);
		pid_t pid = fork();
		ASSERT(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			burst_writer(p[1], dir, trial, kind);
		}
		close(p[1]);
		struct report r;
		bool acked = false, error = false;
		uint64_t deadline = mono_ns() + 60ull * 1000000000u;
		for (;;) {
			struct pollfd pfd = {.fd = p[0], .events = POLLIN};
			int rc = poll(&pfd, 1, 100);
			if (rc < 0 && errno == EINTR)
				continue;
			ASSERT(rc >= 0);
			if (rc == 0) {
				if (mono_ns() > deadline) {
					kill(pid, SIGKILL);
					FAIL_AT("trial %u: the writer neither finished nor reported", trial);
				}
				continue;
			}
			ssize_t n = read(p[0], &r, sizeof r);
			if (n < 0 && errno == EINTR)
				continue;
			if (n == 0)
				break;
			ASSERT(n == (ssize_t)sizeof r);
			if (r.kind == R_ERROR) {
				fprintf(stderr, "# trial %u: %s returned %s (test_crash.c:%u)\n", trial,
				        kind_name(r.a), once_status_name((once_status)r.b), r.c);
				error = true;
			} else if (r.kind == R_BURST) {
				acked = true;
				acks++;
			}
		}
		close(p[0]);
		kill(pid, SIGKILL); /* after an error report */
		int status;
		ASSERT(waitpid(pid, &status, 0) == pid);
		if (error || !acked)
			FAIL_AT("trial %u (%s): the writer failed", trial, burst_names[kind]);
		per_kind[kind]++;
		fflush(NULL);
		pid_t v = fork();
		ASSERT(v >= 0);
		if (v == 0) {
			burst_verifier(dir, trial, kind);
			exit(0);
		}
		ASSERT(waitpid(v, &status, 0) == v);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL_AT("trial %u (%s): verification failed", trial, burst_names[kind]);
	}
	printf("# shared OK: %" PRIu64 " trials in %.1f s (%" PRIu64 " finalize, %" PRIu64
	       " access revoke, %" PRIu64 " refresh revoke, %" PRIu64
	       " remember_successor), %" PRIu64 " acknowledgments checked\n",
	       trials, (double)(mono_ns() - t0) / 1e9, per_kind[B_FIN], per_kind[B_AT_REV],
	       per_kind[B_RT_REV], per_kind[B_RT_REM], acks);
	fflush(stdout);
	test_rmdir(dir);
}

TESTS(TEST(test_kill9_loop), TEST(test_kill9_after_shared_ok));
TEST_MAIN()
