/*
 * core/signals.h - every thread the library starts blocks every signal, so
 * a host's signals land on its own threads (a host that waits for them with
 * sigwait or a signalfd, blocked in all its threads, keeps them).  A new
 * thread inherits its creator's mask: the creator blocks everything around
 * pthread_create (or a liburcu call that may create threads), then puts
 * the caller's mask back.
 */
#ifndef ONCE_SIGNALS_H
#define ONCE_SIGNALS_H

#include <pthread.h>
#include <signal.h>

static inline void once__signals_block_all(sigset_t *callers)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, callers);
}

static inline void once__signals_restore(const sigset_t *callers)
{
	pthread_sigmask(SIG_SETMASK, callers, NULL);
}

#endif
