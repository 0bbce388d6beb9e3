/*
 * tests/test_async.c - the non-blocking durable writes (oncestore.h,
 * "Non-blocking durable writes"; issue 11): tickets in log order from many
 * threads, the descriptor, failure of every outstanding ticket on an
 * injected fdatasync EIO or pwrite ENOSPC, close with tickets outstanding,
 * the bound on what waits in memory, and a store without a directory.
 * The kill -9 loop over the non-blocking path is tests/test_crash_async.c.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "durable.h"
#include "io.h"

static const int64_t FAR = INT64_C(1) << 40;

static bool readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Waits (bounded: 10 s) until the descriptor fires. */
static bool fires(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 10000) == 1 && (p.revents & POLLIN);
}

/* What an event loop does: wait for the descriptor, drain, until ticket t
 * is covered (bounded: 10 s per wait).  The position drain returned. */
static once_ticket loop_until_durable(once_store *s, int fd, once_ticket t)
{
	once_ticket upto = 0;
	for (int i = 0; i < 1000; i++) {
		if (!fires(fd))
			FAIL_AT("the descriptor did not fire");
		ASSERT_ST(once_tickets_drain(s, fd, &upto), ONCE_OK);
		if (upto >= t)
			return upto;
	}
	FAIL_AT("ticket %" PRIu64 " not durable", t);
}

static once_store *open_dir(const char *dir, struct test_clock *clk)
{
	once_options o = test_durable_options(clk, dir);
	return test_open(&o);
}

/* A store on a new temporary directory, its clock at 1000. */
static once_store *open_fresh(char dir[256], struct test_clock *clk)
{
	test_tmpdir(dir);
	atomic_init(&clk->now, 1000);
	return open_dir(dir, clk);
}

/* ---- tickets from many threads ---- */

enum { THREADS = 6, EACH = 2000 };

struct submitter {
	once_store *s;
	int t;
	once_ticket tickets[EACH];
};

static void *submit_main(void *arg)
{
	struct submitter *w = arg;
	for (int i = 0; i < EACH; i++) {
		char jti[64];
		snprintf(jti, sizeof jti, "jti-%d-%d", w->t, i);
		if (once_replay_check_async(w->s, jti, strlen(jti), 300, &w->tickets[i]) != ONCE_OK)
			w->tickets[i] = 0; /* checked below */
	}
	return NULL;
}

struct watcher {
	once_store *s;
	_Atomic bool stop;
	_Atomic bool went_back; /* the position ever decreased */
	uint64_t observations;
};

static void *watch_main(void *arg)
{
	struct watcher *w = arg;
	once_ticket last = 0;
	while (!atomic_load(&w->stop)) {
		once_ticket upto;
		if (once_tickets_durable(w->s, &upto) != ONCE_OK || upto < last)
			atomic_store(&w->went_back, true);
		last = upto;
		w->observations++;
	}
	return NULL;
}

/* Tickets from 6 threads: all distinct and > 0, increasing within each
 * thread (log order), the durable position never goes back, once_ticket_wait
 * on each returns only when the position covers it, and a reopen finds
 * every jti. */
static void test_tickets_many_threads_in_log_order(void)
{
	char dir[256];
	struct test_clock clk;
	once_store *s = open_fresh(dir, &clk);
	static struct submitter w[THREADS];
	pthread_t tid[THREADS], wt;
	struct watcher watch = {.s = s};
	ASSERT(pthread_create(&wt, NULL, watch_main, &watch) == 0);
	for (int t = 0; t < THREADS; t++) {
		w[t].s = s;
		w[t].t = t;
		ASSERT(pthread_create(&tid[t], NULL, submit_main, &w[t]) == 0);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(tid[t], NULL);
	once_ticket max = 0;
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < EACH; i++) {
			once_ticket k = w[t].tickets[i];
			ASSERT(k > 0);
			if (i > 0)
				ASSERT(k > w[t].tickets[i - 1]);
			if (k > max)
				max = k;
		}
	/* Distinct: THREADS * EACH tickets, all below max + 1, none twice. */
	uint8_t *seen = calloc(max + 1, 1);
	ASSERT(seen != NULL);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < EACH; i++) {
			ASSERT(seen[w[t].tickets[i]] == 0);
			seen[w[t].tickets[i]] = 1;
		}
	free(seen);
	for (int t = 0; t < THREADS; t++)
		for (int i = EACH - 1; i >= 0; i -= 97) {
			ASSERT_ST(once_ticket_wait(s, w[t].tickets[i]), ONCE_OK);
			once_ticket upto;
			ASSERT_ST(once_tickets_durable(s, &upto), ONCE_OK);
			ASSERT(upto >= w[t].tickets[i]);
		}
	ASSERT_ST(once_ticket_wait(s, max), ONCE_OK);
	ASSERT_ST(once_ticket_wait(s, max + 1), ONCE_INVALID); /* never handed out */
	ASSERT_ST(once_ticket_wait(s, 0), ONCE_OK);
	atomic_store(&watch.stop, true);
	pthread_join(wt, NULL);
	ASSERT(!atomic_load(&watch.went_back));
	struct once_stats st;
	once_stats(s, &st);
	printf("# %d tickets, %" PRIu64 " syncs: %.1f records per sync\n", THREADS * EACH, st.syncs,
	       st.syncs ? (double)st.synced_records / (double)st.syncs : 0.0);
	ASSERT_ST(once_close(s), ONCE_OK);
	s = open_dir(dir, &clk);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < EACH; i += 7) {
			char jti[64];
			snprintf(jti, sizeof jti, "jti-%d-%d", t, i);
			ASSERT_ST(once_replay_check(s, jti, strlen(jti), 300), ONCE_SPENT);
		}
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* The descriptor fires when a ticket becomes durable; drain rearms it; the
 * _async forms decide as the blocking ones do. */
static void test_descriptor_and_outcomes(void)
{
	char dir[256];
	struct test_clock clk;
	once_store *s = open_fresh(dir, &clk);
	int fd = once_ticket_fd(s);
	ASSERT(fd >= 0);
	/* A second loop gets a descriptor of its own, readable at once. */
	int fd2 = once_ticket_fd(s);
	ASSERT(fd2 >= 0 && fd2 != fd);
	ASSERT(readable(fd2));
	once_ticket upto, t1, t2, t3;
	ASSERT_ST(once_tickets_drain(s, 0, &upto), ONCE_INVALID); /* not the store's */
	ASSERT_ST(once_tickets_drain(s, fd, &upto), ONCE_OK);
	ASSERT_ST(once_tickets_drain(s, fd2, &upto), ONCE_OK);
	ASSERT(!readable(fd));
	ASSERT(!readable(fd2));

	char key[ONCE_SECRET_LEN + 1];
	test_key(key, "code", 1);
	once_code c = test_code(FAR);
	ASSERT_ST(once_code_put_async(s, key, strlen(key), &c, &t1), ONCE_OK);
	ASSERT(t1 > upto);
	upto = loop_until_durable(s, fd, t1);
	ASSERT(!readable(fd)); /* nothing else pending */
	/* The first loop's drain did not eat the second loop's wake-up (the
	 * writer tells the descriptors one after the other: wait for it). */
	ASSERT(fires(fd2));
	ASSERT_ST(once_tickets_drain(s, fd2, &upto), ONCE_OK);
	ASSERT(upto >= t1);

	/* The take is decided at the call: the second one loses at once, and
	 * logs nothing (ticket 0). */
	once_code *got = NULL;
	ASSERT_ST(once_code_take_async(s, key, strlen(key), &got, NULL, &t2), ONCE_OK);
	ASSERT(got != NULL && got->consumed_at == 1000);
	once_free(got);
	ASSERT(t2 > t1);
	ASSERT_ST(once_code_take_async(s, key, strlen(key), NULL, NULL, &t3), ONCE_NOT_FOUND);
	ASSERT_EQ_U64(t3, 0);
	ASSERT_ST(once_code_finalize_async(s, key, strlen(key), &t3), ONCE_OK);
	ASSERT(t3 > t2);
	loop_until_durable(s, fd, t3);

	/* Bad input: INVALID, nothing stored, *ticket 0. */
	t1 = 77;
	ASSERT_ST(once_replay_check_async(s, "", 0, 300, &t1), ONCE_INVALID);
	ASSERT_EQ_U64(t1, 0);
	ASSERT_ST(once_replay_check_async(s, "j", 1, 300, NULL), ONCE_INVALID);
	ASSERT_ST(once_replay_check_async(NULL, "j", 1, 300, &t1), ONCE_INVALID);
	ASSERT_EQ_U64(test_entries(s, "replays"), 0);
	ASSERT_ST(once_tickets_durable(s, NULL), ONCE_INVALID);
	ASSERT_ST(once_tickets_durable(NULL, &upto), ONCE_INVALID);

	/* Every other write has its form, and each hands out a ticket. */
	once_refresh r = test_refresh("fam-a", FAR);
	char rt[ONCE_SECRET_LEN + 1], rt2[ONCE_SECRET_LEN + 1], rt3[ONCE_SECRET_LEN + 1];
	test_key(rt, "rt", 1);
	test_key(rt2, "rt", 2);
	test_key(rt3, "rt", 3);
	once_ticket last = t3, t;
#define NEXT_TICKET(call)                   \
	do {                                \
		ASSERT_ST(call, ONCE_OK);   \
		ASSERT(t > last);           \
		last = t;                   \
	} while (0)
	NEXT_TICKET(once_refresh_insert_async(s, rt, strlen(rt), &r, &t));
	NEXT_TICKET(once_refresh_insert_async(s, rt3, strlen(rt3), &r, &t));
	NEXT_TICKET(once_refresh_consume_async(s, rt3, strlen(rt3), NULL, &t));
	once_refresh child = test_refresh("fam-a", FAR);
	NEXT_TICKET(once_refresh_rotate_async(s, rt, strlen(rt), rt2, strlen(rt2), &child, NULL, 0, NULL, &t));
	NEXT_TICKET(once_refresh_revoke_family_async(s, "fam-a", 5, &t));
	NEXT_TICKET(once_code_record_access_token_async(s, "fam-b", 5, "jti-at", 6, FAR, &t));
	NEXT_TICKET(once_code_revoke_family_access_tokens_async(s, "fam-b", 5, &t));
	char nonce[ONCE_NONCE_LEN + 1];
	NEXT_TICKET(once_nonce_issue_async(s, 300, nonce, &t));
	NEXT_TICKET(once_nonce_accept_async(s, nonce, ONCE_NONCE_LEN, 300, &t));
	NEXT_TICKET(once_replay_check_async(s, "jti-x", 5, 300, &t));
	ASSERT_ST(once_refresh_remember_successor_async(s, rt3, strlen(rt3), "succ", 4, &t), ONCE_NO_KEY);
#undef NEXT_TICKET
	ASSERT_ST(once_ticket_wait(s, last), ONCE_OK);
	struct test_dump before = test_dump_of(s);
	ASSERT_ST(once_close(s), ONCE_OK);
	s = open_dir(dir, &clk);
	struct test_dump after = test_dump_of(s);
	ASSERT_SAME_DUMP(before, after);
	test_dump_free(&before);
	test_dump_free(&after);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* A memory-only store: every ticket is 0, no descriptor, position 0. */
static void test_memory_only_tickets(void)
{
	once_options o = test_options(NULL);
	once_store *s = test_open(&o);
	once_ticket t = 5, upto = 5;
	ASSERT_ST(once_replay_check_async(s, "j", 1, 300, &t), ONCE_OK);
	ASSERT_EQ_U64(t, 0);
	ASSERT_ST(once_replay_check_async(s, "j", 1, 300, &t), ONCE_SPENT);
	ASSERT_EQ_INT(once_ticket_fd(s), -1);
	ASSERT_ST(once_tickets_durable(s, &upto), ONCE_OK);
	ASSERT_EQ_U64(upto, 0);
	ASSERT_ST(once_tickets_drain(s, -1, &upto), ONCE_OK);
	ASSERT_ST(once_ticket_wait(s, 0), ONCE_OK);
	ASSERT_ST(once_ticket_wait(s, 1), ONCE_INVALID);
	ASSERT_EQ_INT(once_ticket_fd(NULL), -1);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* ---- injected failures with tickets outstanding ---- */

/* The writer is held inside its next fdatasync (or pwrite) until released;
 * then that call fails with fail_errno. */
static _Atomic bool held, release;
static int fail_errno;

static void hold_until_released(void)
{
	atomic_store(&held, true);
	while (!atomic_load(&release))
		usleep(1000);
}

static int held_fdatasync(int fd)
{
	(void)fd;
	hold_until_released();
	errno = fail_errno;
	return -1;
}

static ssize_t held_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	(void)fd, (void)buf, (void)n, (void)off;
	hold_until_released();
	errno = fail_errno;
	return -1;
}

struct burst {
	once_store *s;
	int t, n;
	once_ticket last;
	_Atomic int io; /* submissions answered ONCE_IO */
};

static void *burst_main(void *arg)
{
	struct burst *b = arg;
	for (int i = 0; i < b->n; i++) {
		char jti[64];
		once_ticket t;
		snprintf(jti, sizeof jti, "burst-%d-%d", b->t, i);
		once_status st = once_replay_check_async(b->s, jti, strlen(jti), 300, &t);
		if (st == ONCE_OK)
			b->last = t;
		else if (st == ONCE_IO)
			atomic_fetch_add(&b->io, 1);
	}
	return NULL;
}

/*
 * 200 durable records, then the writer is held in the next sync (or
 * write) while 4 threads submit 1500 records each; released, that call
 * fails: every ticket above the durable position fails (once_tickets_durable
 * answers ONCE_IO and never moves again, once_ticket_wait answers ONCE_IO),
 * the descriptor fires, later writes get ONCE_IO, close answers ONCE_IO, and
 * a reopen has every record reported durable.
 */
static void failure_case(bool on_sync, int err)
{
	char dir[256];
	struct test_clock clk;
	once_store *s = open_fresh(dir, &clk);
	int fd = once_ticket_fd(s);
	ASSERT(fd >= 0);
	once_ticket t = 0, upto;
	for (int i = 0; i < 200; i++) {
		char jti[32];
		snprintf(jti, sizeof jti, "good-%d", i);
		ASSERT_ST(once_replay_check_async(s, jti, strlen(jti), 300, &t), ONCE_OK);
	}
	ASSERT_ST(once_ticket_wait(s, t), ONCE_OK);
	ASSERT_ST(once_tickets_drain(s, fd, &upto), ONCE_OK);
	ASSERT(upto >= t);
	once_ticket durable_before = upto;

	atomic_store(&held, false);
	atomic_store(&release, false);
	fail_errno = err;
	if (on_sync)
		once__io.fdatasync = held_fdatasync;
	else
		once__io.pwrite = held_pwrite;
	enum { B = 4, N = 1500 };
	struct burst b[B];
	pthread_t tid[B];
	for (int i = 0; i < B; i++) {
		b[i] = (struct burst){.s = s, .t = i, .n = N};
		ASSERT(pthread_create(&tid[i], NULL, burst_main, &b[i]) == 0);
	}
	for (int i = 0; i < 10000 && !atomic_load(&held); i++)
		usleep(1000);
	ASSERT(atomic_load(&held)); /* the writer is inside the failing call */
	for (int i = 0; i < B; i++)
		pthread_join(tid[i], NULL);
	/* Everything submitted is outstanding: none is durable yet. */
	ASSERT_ST(once_tickets_drain(s, fd, &upto), ONCE_OK);
	ASSERT_EQ_U64(upto, durable_before);
	once_ticket last = 0;
	for (int i = 0; i < B; i++) {
		ASSERT_EQ_INT(atomic_load(&b[i].io), 0);
		if (b[i].last > last)
			last = b[i].last;
	}
	ASSERT(last > durable_before + (B * N) - 1);
	atomic_store(&release, true);
	ASSERT(fires(fd));
	ASSERT_ST(once_tickets_drain(s, fd, &upto), ONCE_IO);
	ASSERT_EQ_U64(upto, durable_before); /* none reported durable */
	ASSERT_ST(once_ticket_wait(s, last), ONCE_IO);
	ASSERT_ST(once_ticket_wait(s, durable_before + 1), ONCE_IO);
	ASSERT_ST(once_ticket_wait(s, durable_before), ONCE_OK);
	once__io_reset(); /* the disk is fine again: the store stays failed */
	ASSERT_ST(once_replay_check_async(s, "later", 5, 300, &t), ONCE_IO);
	ASSERT_ST(once_replay_check(s, "later", 5, 300), ONCE_IO);
	ASSERT_ST(once_tickets_durable(s, &upto), ONCE_IO);
	ASSERT_EQ_U64(upto, durable_before);
	ASSERT_ST(once_close(s), ONCE_IO);
	s = open_dir(dir, &clk);
	for (int i = 0; i < 200; i++) {
		char jti[32];
		snprintf(jti, sizeof jti, "good-%d", i);
		ASSERT_ST(once_replay_check(s, jti, strlen(jti), 300), ONCE_SPENT);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

static void test_fdatasync_eio_fails_outstanding_tickets(void)
{
	failure_case(true, EIO);
}

static void test_pwrite_enospc_fails_outstanding_tickets(void)
{
	failure_case(false, ENOSPC);
}

/* ---- close, and the bound ---- */

/* Close with thousands of tickets outstanding: OK means all durable; a
 * reopen has every one. */
static void test_close_with_tickets_outstanding(void)
{
	char dir[256];
	struct test_clock clk;
	once_store *s = open_fresh(dir, &clk);
	enum { N = 5000 };
	once_ticket t = 0, upto;
	for (int i = 0; i < N; i++) {
		char jti[32];
		snprintf(jti, sizeof jti, "close-%d", i);
		ASSERT_ST(once_replay_check_async(s, jti, strlen(jti), 300, &t), ONCE_OK);
	}
	ASSERT_ST(once_tickets_durable(s, &upto), ONCE_OK);
	printf("# %" PRIu64 " of %d tickets durable when close began\n", upto >= t - N + 1 ? upto - (t - N) : 0, N);
	ASSERT_ST(once_close(s), ONCE_OK);
	s = open_dir(dir, &clk);
	ASSERT_EQ_U64(test_entries(s, "replays"), N);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

struct filler {
	once_store *s;
	_Atomic uint64_t submitted;
	_Atomic bool done;
};

static void *fill_main(void *arg)
{
	struct filler *f = arg;
	for (uint64_t i = 0; i < 200000; i++) {
		char jti[32];
		once_ticket t;
		snprintf(jti, sizeof jti, "fill-%" PRIu64, i);
		if (once_replay_check_async(f->s, jti, strlen(jti), 300, &t) != ONCE_OK)
			break;
		atomic_fetch_add(&f->submitted, 1);
	}
	atomic_store(&f->done, true);
	return NULL;
}

static int slow_fdatasync(int fd)
{
	hold_until_released();
	return fdatasync(fd);
}

/*
 * A host that never polls, and a disk that stops: with log_buffer_bytes at
 * its 1 MiB minimum, a submitter queues about 1 MiB of records beyond the
 * group the writer holds, then waits; once the disk moves again, everything
 * completes.  (Without the bound it would queue all 200,000.)
 */
static void test_buffer_is_bounded(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk;
	atomic_init(&clk.now, 1000);
	once_options o = test_durable_options(&clk, dir);
	o.log_buffer_bytes = 1; /* raised to the 1 MiB minimum */
	o.max_replays = 1u << 18;
	once_store *s = test_open(&o);
	atomic_store(&held, false);
	atomic_store(&release, false);
	once__io.fdatasync = slow_fdatasync;
	struct filler f = {.s = s};
	pthread_t tid;
	ASSERT(pthread_create(&tid, NULL, fill_main, &f) == 0);
	for (int i = 0; i < 10000 && !atomic_load(&held); i++)
		usleep(1000);
	ASSERT(atomic_load(&held));
	/* Let the submitter run into the bound, then check it stays there. */
	uint64_t a = 0, b = 1;
	for (int i = 0; i < 100 && a != b; i++) {
		a = atomic_load(&f.submitted);
		usleep(50000);
		b = atomic_load(&f.submitted);
	}
	ASSERT_EQ_U64(a, b);
	ASSERT(!atomic_load(&f.done));
	/* Records of "fill-NNNNN" are under 100 bytes framed: the held group
	 * plus 1 MiB is at most 2 MiB, i.e. well under 200,000 records. */
	printf("# %" PRIu64 " records queued while the disk was stopped\n", b);
	ASSERT(b > 1000 && b < 2 * (1u << 20) / 48);
	atomic_store(&release, true);
	pthread_join(tid, NULL);
	ASSERT_EQ_U64(atomic_load(&f.submitted), 200000);
	once__io_reset();
	ASSERT_ST(once_close(s), ONCE_OK);
	s = test_open(&o);
	ASSERT_EQ_U64(test_entries(s, "replays"), 200000);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* ---- single use through the _async forms ---- */

enum { RACERS = 8 };

struct racer {
	once_store *s;
	const char *key;
	_Atomic int *wins;
	pthread_barrier_t *go;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;
	pthread_barrier_wait(r->go);
	once_ticket t;
	if (once_code_take_async(r->s, r->key, strlen(r->key), NULL, NULL, &t) == ONCE_OK) {
		atomic_fetch_add(r->wins, 1);
		if (once_ticket_wait(r->s, t) != ONCE_OK)
			atomic_fetch_add(r->wins, 100);
	}
	return NULL;
}

/* 8 threads take the same code with the _async form, 200 rounds: exactly
 * one wins each. */
static void test_async_take_single_use(void)
{
	char dir[256];
	struct test_clock clk;
	once_store *s = open_fresh(dir, &clk);
	for (int round = 0; round < 200; round++) {
		char key[ONCE_SECRET_LEN + 1];
		test_key(key, "race", (uint64_t)round);
		once_code c = test_code(FAR);
		once_ticket t;
		ASSERT_ST(once_code_put_async(s, key, strlen(key), &c, &t), ONCE_OK);
		_Atomic int wins = 0;
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, RACERS);
		struct racer r[RACERS];
		pthread_t tid[RACERS];
		for (int i = 0; i < RACERS; i++) {
			r[i] = (struct racer){s, key, &wins, &go};
			ASSERT(pthread_create(&tid[i], NULL, race_main, &r[i]) == 0);
		}
		for (int i = 0; i < RACERS; i++)
			pthread_join(tid[i], NULL);
		pthread_barrier_destroy(&go);
		ASSERT_EQ_INT(atomic_load(&wins), 1);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

TESTS(TEST(test_tickets_many_threads_in_log_order), TEST(test_descriptor_and_outcomes),
      TEST(test_memory_only_tickets), TEST(test_fdatasync_eio_fails_outstanding_tickets),
      TEST(test_pwrite_enospc_fails_outstanding_tickets), TEST(test_close_with_tickets_outstanding),
      TEST(test_buffer_is_bounded), TEST(test_async_take_single_use));
TEST_MAIN()
