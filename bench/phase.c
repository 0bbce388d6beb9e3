/*
 * bench/phase.c - one timed phase: T threads share [0, keys) in contiguous
 * slices; each times every store call into its own latency histogram (one
 * CLOCK_MONOTONIC read per call: the end of one call is the start of the
 * next), merged after the phase.  With a duration, each thread stops at the
 * deadline or at the end of its slice, whichever comes first.  Phases
 * longer than 2 s draw a progress line on stderr.
 */
#include <errno.h>
#include <inttypes.h>
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
	struct hist h;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct phase *p = w->p;
	uint64_t from = p->keys * w->index / p->threads, to = p->keys * (w->index + 1) / p->threads;
	uint64_t ops = 0;
	pthread_barrier_wait(&p->start);
	uint64_t t0 = now_ns(), t = t0;
	uint64_t deadline = p->duration > 0 ? t0 + (uint64_t)(p->duration * 1e9) : UINT64_MAX;
	if (p->batch != NULL) {
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
			hist_record(&w->h, t1 - t);
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
	pthread_t tid[64];
	struct worker *w = calloc(p->threads, sizeof *w);
	if (w == NULL)
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
	hist_reset(&p->lat);
	for (uint32_t t = 0; t < p->threads; t++) {
		pthread_join(tid[t], NULL);
		if (w[t].elapsed > slowest)
			slowest = w[t].elapsed;
		p->ops += w[t].ops;
		hist_merge(&p->lat, &w[t].h);
	}
	free(w);
	sem_destroy(&finished);
	pthread_barrier_destroy(&p->start);
	if (atomic_load(&p->failures) != 0) {
		fprintf(stderr, "oncebench: %" PRIu64 " operations failed\n", atomic_load(&p->failures));
		exit(1);
	}
	p->elapsed = slowest;
	return (double)p->ops / slowest;
}
