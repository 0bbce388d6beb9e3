/*
 * tests/test_crash_async.c - kill -9 loop over the non-blocking path
 * (issue 11; SPEC 1.2 "durable before acknowledged" for the _async forms).
 *
 * Each cycle:
 *   1. a writer process opens the store (ONCE_SYNC_ALWAYS, automatic
 *      checkpoints every 64 KiB of log, so segments rotate and their
 *      preallocated zeros are cut) and sets up this cycle's codes and
 *      refresh tokens with the _async forms, waiting for the last ticket;
 *   2. SUBMITTERS threads submit _async operations as fast as they can
 *      (replay checks of new jtis, puts of new codes, takes of the set-up
 *      codes, consumes of the set-up tokens), up to WINDOW outstanding
 *      tickets each, thousands in all;
 *   3. one acknowledger thread does what an event loop does: poll() on
 *      once_ticket_fd, once_tickets_drain, and only then reports ACK for
 *      every operation whose ticket is at or below the durable position
 *      (a pipe to the parent);
 *   4. the writer dies by SIGKILL, from the parent 2-60 ms after it is
 *      ready, or by its own hand right after its Nth ACK (1 cycle in 3);
 *   5. a verifier process (forked from the parent, which never opens the
 *      store itself) opens the directory and checks every acknowledged
 *      effect: the jti is recorded (a replay check answers SPENT), the put
 *      code is there and untaken, the taken code is gone, the consumed
 *      token reads consumed.
 * An operation submitted but not acknowledged may go either way.  A new
 * data directory every 10 cycles keeps recovery short.
 *
 * Environment: ONCE_CRASH_ASYNC_CYCLES (default 200; CI runs the default),
 * ONCE_CRASH_SEED.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "durable.h"

enum { SUBMITTERS = 4, WINDOW = 1024, CODES = 256, TOKENS = 128, PER_DIR = 10 };
enum { K_JTI, K_PUT, K_TAKE, K_CONS };

static const int64_t FAR = INT64_C(1) << 40;

struct ack {
	uint8_t kind, thread;
	uint16_t pad;
	uint32_t index;
};

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t key_of(char *out, int kind, uint32_t cycle, uint32_t thread, uint32_t index)
{
	static const char tag[] = {'j', 'p', 'c', 'r'};
	return (size_t)sprintf(out, "%c%u-%u-%u", tag[kind], cycle, thread, index);
}

static once_options cycle_options(const char *dir)
{
	once_options o;
	once_options_init(&o);
	o.dir = dir;
	o.shards = 2;
	o.sweep_interval_ms = 0;
	o.checkpoint_bytes = 64u << 10;
	o.max_codes = o.max_replays = o.max_refresh = 1u << 20; /* 10 cycles of puts */
	return o;
}

/* ======================================================================== */
/* The writer                                                               */
/* ======================================================================== */

struct slot {
	once_ticket ticket;
	struct ack what;
};

struct ring {
	struct slot slots[WINDOW];
	_Atomic uint64_t head, tail; /* submitter writes head, acknowledger tail */
};

static struct {
	once_store *s;
	uint32_t cycle;
	int fd;
	uint32_t kill_after; /* SIGKILL itself after this many ACKs; 0: never */
	uint32_t acks;
	struct ring rings[SUBMITTERS];
} W;

static _Noreturn void die(const char *what, once_status st)
{
	fprintf(stderr, "# writer: %s: %s\n", what, once_status_name(st));
	_exit(2);
}

static void send_acks(const struct ack *a, size_t n)
{
	const char *p = (const char *)a;
	size_t left = n * sizeof *a;
	while (left > 0) {
		ssize_t w = write(W.fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(4); /* the parent is gone */
		p += w;
		left -= (size_t)w;
	}
	W.acks += (uint32_t)n;
	if (W.kill_after != 0 && W.acks >= W.kill_after)
		kill(getpid(), SIGKILL); /* right after acknowledging, others in flight */
}

static void *acknowledger(void *arg)
{
	(void)arg;
	int fd = once_ticket_fd(W.s);
	if (fd < 0)
		die("once_ticket_fd", ONCE_IO);
	static struct ack out[SUBMITTERS * WINDOW];
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, 100);
		once_ticket upto;
		once_status st = once_tickets_drain(W.s, fd, &upto);
		if (st != ONCE_OK)
			die("once_tickets_drain", st);
		size_t n = 0;
		for (int t = 0; t < SUBMITTERS; t++) {
			struct ring *r = &W.rings[t];
			uint64_t tail = atomic_load(&r->tail), head = atomic_load_explicit(&r->head, memory_order_acquire);
			while (tail < head && r->slots[tail % WINDOW].ticket <= upto)
				out[n++] = r->slots[tail++ % WINDOW].what;
			atomic_store_explicit(&r->tail, tail, memory_order_release);
		}
		if (n > 0)
			send_acks(out, n);
	}
	return NULL;
}

/* Queues an OK operation's ticket for the acknowledger (waits while the
 * thread's window is full). */
static void outstanding(int t, once_ticket ticket, struct ack what)
{
	struct ring *r = &W.rings[t];
	uint64_t head = atomic_load(&r->head);
	while (head - atomic_load_explicit(&r->tail, memory_order_acquire) >= WINDOW)
		sched_yield();
	r->slots[head % WINDOW] = (struct slot){ticket, what};
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

static void *submitter(void *arg)
{
	int t = (int)(intptr_t)arg;
	uint64_t rs = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1) ^ W.cycle;
	uint32_t next_jti = 0, next_put = 0, next_take = (uint32_t)t, next_cons = (uint32_t)t;
	char key[64];
	for (;;) {
		once_ticket ticket;
		once_status st;
		struct ack a = {.thread = (uint8_t)t};
		switch (rnd(&rs) % 8) {
		case 0: case 1: case 2:
			a.kind = K_JTI;
			a.index = next_jti++;
			st = once_replay_check_async(W.s, key, key_of(key, K_JTI, W.cycle, (uint32_t)t, a.index), 300,
			                             &ticket);
			break;
		case 3: case 4: {
			a.kind = K_PUT;
			a.index = next_put++;
			once_code c = test_code(FAR);
			st = once_code_put_async(W.s, key, key_of(key, K_PUT, W.cycle, (uint32_t)t, a.index), &c,
			                         &ticket);
			break;
		}
		case 5: case 6:
			if (next_take >= CODES)
				continue;
			a.kind = K_TAKE;
			a.index = next_take;
			next_take += SUBMITTERS;
			st = once_code_take_async(W.s, key, key_of(key, K_TAKE, W.cycle, 0, a.index), NULL, NULL,
			                          &ticket);
			break;
		default:
			if (next_cons >= TOKENS)
				continue;
			a.kind = K_CONS;
			a.index = next_cons;
			next_cons += SUBMITTERS;
			st = once_refresh_consume_async(W.s, key, key_of(key, K_CONS, W.cycle, 0, a.index), NULL,
			                                &ticket);
			break;
		}
		if (st != ONCE_OK)
			die("an _async call", st);
		outstanding(t, ticket, a);
	}
	return NULL;
}

static _Noreturn void writer_main(int fd, const char *dir, uint32_t cycle, uint32_t kill_after)
{
	memset(&W, 0, sizeof W);
	W.fd = fd;
	W.cycle = cycle;
	W.kill_after = kill_after;
	once_options o = cycle_options(dir);
	once_status st = once_open(&o, &W.s);
	if (st != ONCE_OK)
		die("once_open", st);
	/* This cycle's codes and tokens, durable before anything else. */
	once_ticket last = 0;
	char key[64], fam[64];
	for (uint32_t i = 0; i < CODES; i++) {
		once_code c = test_code(FAR);
		if ((st = once_code_put_async(W.s, key, key_of(key, K_TAKE, cycle, 0, i), &c, &last)) != ONCE_OK)
			die("set-up put", st);
	}
	for (uint32_t i = 0; i < TOKENS; i++) {
		sprintf(fam, "fam-%u-%u", cycle, i);
		once_refresh r = test_refresh(fam, FAR);
		if ((st = once_refresh_insert_async(W.s, key, key_of(key, K_CONS, cycle, 0, i), &r, &last)) != ONCE_OK)
			die("set-up insert", st);
	}
	if ((st = once_ticket_wait(W.s, last)) != ONCE_OK)
		die("set-up wait", st);
	char ready = 'R';
	if (write(fd, &ready, 1) != 1)
		_exit(4);
	pthread_t th;
	if (pthread_create(&th, NULL, acknowledger, NULL) != 0)
		_exit(3);
	for (intptr_t t = 0; t < SUBMITTERS; t++)
		if (pthread_create(&th, NULL, submitter, (void *)t) != 0)
			_exit(3);
	sleep(60); /* killed long before */
	_exit(5);
}

/* ======================================================================== */
/* The parent and the verifier                                              */
/* ======================================================================== */

static struct ack *acks;
static size_t n_acks, cap_acks;

static void take_acks(const unsigned char *buf, size_t n)
{
	for (size_t o = 0; o + sizeof(struct ack) <= n; o += sizeof(struct ack)) {
		if (n_acks == cap_acks) {
			cap_acks = cap_acks ? cap_acks * 2 : 4096;
			acks = realloc(acks, cap_acks * sizeof *acks);
			ASSERT(acks != NULL);
		}
		memcpy(&acks[n_acks++], buf + o, sizeof(struct ack));
	}
}

static _Noreturn void verifier_main(const char *dir, uint32_t cycle)
{
	once_options o = cycle_options(dir);
	once_store *s = NULL;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK) {
		fprintf(stderr, "# verifier: once_open after cycle %u: %s\n", cycle, once_status_name(st));
		_exit(1);
	}
	char key[64];
	int bad = 0;
	for (size_t i = 0; i < n_acks && bad < 5; i++) {
		const struct ack *a = &acks[i];
		size_t kl = key_of(key, a->kind, cycle, a->kind == K_JTI || a->kind == K_PUT ? a->thread : 0, a->index);
		once_status got, want;
		switch (a->kind) {
		case K_JTI:
			got = once_replay_check(s, key, kl, 300), want = ONCE_SPENT;
			break;
		case K_PUT:
			got = once_code_get(s, key, kl, NULL), want = ONCE_OK;
			break;
		case K_TAKE:
			got = once_code_get(s, key, kl, NULL), want = ONCE_NOT_FOUND;
			break;
		default: {
			once_refresh *r = NULL;
			got = once_refresh_get(s, key, kl, &r);
			want = ONCE_OK;
			if (got == ONCE_OK && !r->consumed)
				got = ONCE_STATUS_COUNT; /* live but unconsumed */
			once_free(r);
		}
		}
		if (got != want) {
			fprintf(stderr, "# cycle %u: acknowledged %s %s reads %s after the crash\n", cycle,
			        (const char *[]){"jti", "put", "take", "consume"}[a->kind], key,
			        got == ONCE_STATUS_COUNT ? "unconsumed" : once_status_name(got));
			bad++;
		}
	}
	st = once_close(s);
	_exit(bad == 0 && st == ONCE_OK ? 0 : 1);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void test_kill9_async_loop(void)
{
	uint64_t cycles = env_u64("ONCE_CRASH_ASYNC_CYCLES", 200);
	uint64_t seed = env_u64("ONCE_CRASH_SEED", (uint64_t)time(NULL));
	uint64_t rs = seed ? seed : 1;
	printf("# seed %" PRIu64 " (ONCE_CRASH_SEED), %" PRIu64 " cycles\n", seed, cycles);
	char dir[256] = "";
	uint64_t total_acks = 0, self_kills = 0, t0 = mono_ms();
	for (uint32_t cy = 0; cy < cycles; cy++) {
		if (cy % PER_DIR == 0) {
			if (dir[0])
				test_rmdir(dir);
			test_tmpdir(dir);
		}
		uint32_t kill_after = rnd(&rs) % 3 == 0 ? 1 + (uint32_t)(rnd(&rs) % 4000) : 0;
		int p[2];
		ASSERT(pipe(p) == 0);
		fflush(NULL);
		pid_t pid = fork();
		ASSERT(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			writer_main(p[1], dir, cy, kill_after);
		}
		close(p[1]);
		char ready;
		ssize_t r = read(p[0], &ready, 1);
		if (r != 1) {
			int status;
			waitpid(pid, &status, 0);
			FAIL_AT("cycle %u: the writer died before it was ready", cy);
		}
		if (kill_after == 0) {
			usleep((useconds_t)(2000 + rnd(&rs) % 58000));
			kill(pid, SIGKILL);
		} else {
			/* The writer kills itself after its Nth ACK; after 3 s of
			 * silence (it never got there), the parent does. */
			self_kills++;
		}
		n_acks = 0;
		static unsigned char buf[1 << 16];
		size_t have = 0;
		uint64_t started = mono_ms();
		for (;;) {
			struct pollfd pf = {.fd = p[0], .events = POLLIN};
			int rc = poll(&pf, 1, 100);
			if (rc == 0) {
				if (mono_ms() - started > 3000)
					kill(pid, SIGKILL);
				continue;
			}
			ssize_t n = read(p[0], buf + have, sizeof buf - have);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			have += (size_t)n;
			size_t whole = have / sizeof(struct ack) * sizeof(struct ack);
			take_acks(buf, whole);
			memmove(buf, buf + whole, have - whole);
			have -= whole;
		}
		close(p[0]);
		int status;
		ASSERT(waitpid(pid, &status, 0) == pid);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			FAIL_AT("cycle %u: the writer ended by %s %d, not SIGKILL", cy,
			        WIFEXITED(status) ? "exit" : "signal",
			        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		total_acks += n_acks;
		fflush(NULL);
		pid_t v = fork();
		ASSERT(v >= 0);
		if (v == 0)
			verifier_main(dir, cy);
		ASSERT(waitpid(v, &status, 0) == v);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL_AT("verification after cycle %u failed (seed %" PRIu64 ")", cy, seed);
	}
	test_rmdir(dir);
	free(acks);
	printf("# %" PRIu64 " cycles (%" PRIu64 " ended by the writer right after an ACK) in %.1f s, "
	       "%" PRIu64 " acknowledged operations verified\n",
	       cycles, self_kills, (double)(mono_ms() - t0) / 1000.0, total_acks);
	ASSERT(total_acks > cycles); /* the loop acknowledged work, not only crashed */
}

TESTS(TEST(test_kill9_async_loop));
TEST_MAIN()
