/*
 * bench/phase.c - one timed phase: T threads share [0, keys) in contiguous
 * slices; each times every store call into its own latency histogram (one
 * CLOCK_MONOTONIC read per call: the end of one call is the start of the
 * next), merged after the phase.  With a duration, each thread stops at the
 * deadline or at the end of its slice, whichever comes first.  Phases
 * longer than 2 s draw a progress line on stderr.
 *
 * With p->inflight (--inflight), each thread is an event loop instead: it
 * makes _async calls until p->inflight tickets are outstanding, then waits
 * for the durable position to move (poll on once_ticket_fd, then
 * once_tickets_drain) and retires every ticket at or below it.  Two
 * histograms: the call itself (p->call_lat) and submit to durable, as the
 * loop saw it (p->lat).  At the deadline or the end of its slice it stops
 * submitting and retires what is outstanding.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"

struct worker {
	struct phase *p;
	uint32_t index;
	double elapsed;
	uint64_t ops;
	_Atomic uint64_t progress;
	_Atomic bool done;
	sem_t *finished;
	struct once__hist h;
	struct once__hist call;      /* inflight: the _async calls */
	uint64_t poll_waits, poll_timeouts;
};

#if ONCEBENCH_ASYNC
/*
 * One event loop with p->inflight tickets outstanding; returns the time the
 * last one was retired.  Tickets of one thread grow in submission order
 * (the log numbers them in its order), so the outstanding ones are a FIFO
 * and become durable from its head.  Each thread has a descriptor of its
 * own (once_ticket_fd per loop), so it waits as long as it takes; a poll
 * that returns without readiness is counted in poll_timeouts (never, when
 * the store keeps its promise).
 */
struct pending {
	once_ticket t;
	uint64_t at;
};

static uint64_t inflight_loop(struct worker *w, uint64_t from, uint64_t to, uint64_t t0, uint64_t deadline)
{
	struct phase *p = w->p;
	uint32_t n = p->inflight;
	struct pending *ring = malloc(n * sizeof *ring);
	if (ring == NULL)
		die("allocating the tickets", ONCE_NOMEM);
	int fd = once_ticket_fd(p->s);
	if (fd < 0)
		die("once_ticket_fd", ONCE_IO);
	uint32_t head = 0, count = 0;
	uint64_t i = from, ops = 0, t = t0;
	bool submitting = true;
	for (;;) {
		while (submitting && count < n) {
			if (i >= to || t >= deadline) {
				submitting = false;
				break;
			}
			once_ticket k = 0;
			p->async(p, i++, &k);
			uint64_t t1 = now_ns();
			once__hist_record(&w->call, t1 - t);
			if (k == 0) { /* nothing logged: done at once */
				once__hist_record(&w->h, t1 - t);
				ops++;
			} else {
				ring[(head + count++) % n] = (struct pending){k, t};
			}
			t = t1;
		}
		if (count == 0 && !submitting)
			break;
		once_ticket upto = 0;
		if (count > 0) {
			once_status st = once_tickets_durable(p->s, &upto);
			if (st == ONCE_OK && ring[head].t > upto) {
				struct pollfd pfd = {.fd = fd, .events = POLLIN};
				w->poll_waits++;
				if (poll(&pfd, 1, 10000) == 0)
					w->poll_timeouts++;
				st = once_tickets_drain(p->s, fd, &upto);
			}
			if (st != ONCE_OK)
				die("once_tickets_durable", st);
		}
		t = now_ns();
		while (count > 0 && ring[head].t <= upto) {
			once__hist_record(&w->h, t - ring[head].at);
			head = (head + 1) % n;
			count--;
			ops++;
		}
		atomic_store_explicit(&w->progress, ops, memory_order_relaxed);
	}
	free(ring);
	w->ops = ops;
	return t;
}
#endif

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct phase *p = w->p;
	uint64_t from = p->keys * w->index / p->threads, to = p->keys * (w->index + 1) / p->threads;
	uint64_t ops = 0;
	pthread_barrier_wait(&p->start);
	uint64_t t0 = now_ns(), t = t0;
	uint64_t deadline = p->duration > 0 ? t0 + (uint64_t)(p->duration * 1e9) : UINT64_MAX;
	if (p->inflight > 0) {
#if ONCEBENCH_ASYNC
		t = inflight_loop(w, from, to, t0, deadline);
		ops = w->ops;
#endif
	} else if (p->batch != NULL) {
		for (uint64_t i = from; i < to; i++) {
			ops += p->batch(p, &w->h, i);
			atomic_store_explicit(&w->progress, ops, memory_order_relaxed);
			if (p->duration > 0 && now_ns() >= deadline)
				break;
		}
		t = now_ns();
	} else {
		for (uint64_t i = from; i < to; i++) {
			p->op(p, i);
			uint64_t t1 = now_ns();
			once__hist_record(&w->h, t1 - t);
			t = t1;
			ops++;
			if ((ops & 255) == 0)
				atomic_store_explicit(&w->progress, ops, memory_order_relaxed);
			if (t1 >= deadline)
				break;
		}
	}
	w->elapsed = (double)(t - t0) / 1e9;
	w->ops = ops;
	atomic_store(&w->done, true);
	sem_post(w->finished);
	return NULL;
}

double run_phase(struct phase *p)
{
	pthread_t *tid = calloc(p->threads, sizeof *tid);
	struct worker *w = calloc(p->threads, sizeof *w);
	if (w == NULL || tid == NULL)
		die("allocating workers", ONCE_NOMEM);
	sem_t finished;
	sem_init(&finished, 0, 0);
	pthread_barrier_init(&p->start, NULL, p->threads);
	for (uint32_t t = 0; t < p->threads; t++) {
		w[t].finished = &finished;
		w[t].p = p;
		w[t].index = t;
		pthread_create(&tid[t], NULL, worker_main, &w[t]);
	}
	/* Watch the workers: a progress line once the phase runs past 2 s
	 * (updated in place on a terminal, a line every 5 s otherwise). */
	double t0 = now_s(), last = 0;
	bool tty = isatty(STDERR_FILENO), shown = false;
	for (;;) {
		uint32_t done = 0;
		uint64_t ops = 0;
		for (uint32_t t = 0; t < p->threads; t++) {
			done += atomic_load(&w[t].done);
			ops += atomic_load_explicit(&w[t].progress, memory_order_relaxed);
		}
		if (done == p->threads)
			break;
		double el = now_s() - t0;
		if (el > 2 && el - last >= (tty ? 0.5 : 5)) {
			fprintf(stderr, "%s  %s, %u threads: %.1f s, %" PRIu64 " ops, %.0f ops/s%s",
			        tty ? "\r" : "", p->label ? p->label : "phase", p->threads, el, ops,
			        (double)ops / el, tty ? "\033[K" : "\n");
			last = el;
			shown = true;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 100000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		/* Wakes as soon as a worker finishes. */
		while (sem_timedwait(&finished, &until) != 0 && errno == EINTR)
			;
	}
	if (shown && tty)
		fprintf(stderr, "\r\033[K");
	double slowest = 0;
	p->ops = 0;
	p->poll_waits = p->poll_timeouts = 0;
	once__hist_reset(&p->lat);
	once__hist_reset(&p->call_lat);
	for (uint32_t t = 0; t < p->threads; t++) {
		pthread_join(tid[t], NULL);
		if (w[t].elapsed > slowest)
			slowest = w[t].elapsed;
		p->ops += w[t].ops;
		once__hist_merge(&p->lat, &w[t].h);
		once__hist_merge(&p->call_lat, &w[t].call);
		p->poll_waits += w[t].poll_waits;
		p->poll_timeouts += w[t].poll_timeouts;
	}
	free(w);
	free(tid);
	sem_destroy(&finished);
	pthread_barrier_destroy(&p->start);
	if (atomic_load(&p->failures) != 0) {
		fprintf(stderr, "oncebench: %" PRIu64 " operations failed (the last with %s)\n",
		        atomic_load(&p->failures), once_status_name((once_status)atomic_load(&p->failed_status)));
		exit(1);
	}
	p->elapsed = slowest;
	return (double)p->ops / slowest;
}
