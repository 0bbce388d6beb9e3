/*
 * core/expiry.c - once_sweep and the background sweeper.
 *
 * The cost of a sweep grows with the number of expired entries, not with
 * the table size.  Each shard keeps a timing wheel of ONCE_WHEEL_SLOTS
 * one-second slots; an entry expiring at second t sits on the lock-free
 * stack of slot t % ONCE_WHEEL_SLOTS.  A sweep at `now` visits only the
 * slots of the seconds that came due since the last sweep (swept_upto + 1
 * .. now - 1), takes each slot's whole stack with one atomic exchange, and
 *   - deletes the entries with expires_at < now (strict: expiring at `now`
 *     is kept), and
 *   - pushes back the others: they belong to a later turn of the wheel
 *     (more than ONCE_WHEEL_SLOTS seconds away), so each long-lived entry
 *     is looked at once per turn (68 minutes), not once per sweep.
 * An entry pushed when its second was already swept goes on the shard's
 * `overdue` stack, which every sweep visits.
 *
 * Invariants:
 *   W1. Every committed entry is on exactly one stack of its shard's wheel,
 *       or held by the one running sweep (sweeps are serialized).
 *   W2. Before once_close, a committed entry leaves its table only through
 *       a sweep (a pending one only through once__pending_abort, and it
 *       is never on the wheel), so every entry is freed exactly once.
 * A push that races with a sweep of the same slot can land behind the
 * sweep; the entry is then found one wheel turn later.  Expired entries
 * still answer correctly until swept (a replay is SPENT, a nonce EXPIRED),
 * so lateness costs memory, never correctness.
 */
#include <errno.h>
#include <time.h>

#include "internal.h"
#include "signals.h"

void once__wheel_init(struct once__wheel *w, int64_t now)
{
	for (unsigned i = 0; i < ONCE_WHEEL_SLOTS; i++)
		atomic_init(&w->slot[i], NULL);
	atomic_init(&w->overdue, NULL);
	/* now is once__now's, >= ONCE_TIME_MIN: now - 1 cannot overflow. */
	atomic_init(&w->swept_upto, once__time_clamp(now) - 1);
}

static void stack_push(_Atomic(struct once__entry *) *top, struct once__entry *e)
{
	struct once__entry *old = atomic_load_explicit(top, memory_order_relaxed);
	do {
		e->link.wheel_next = old;
	} while (!atomic_compare_exchange_weak_explicit(top, &old, e, memory_order_release,
	                                                memory_order_relaxed));
}

static unsigned slot_of(int64_t t)
{
	return (unsigned)((uint64_t)t % ONCE_WHEEL_SLOTS);
}

void once__wheel_push(struct once__wheel *w, struct once__entry *e)
{
	int64_t t = atomic_load_explicit(&e->expires_at, memory_order_relaxed);
	if (t <= atomic_load_explicit(&w->swept_upto, memory_order_acquire))
		stack_push(&w->overdue, e);
	else
		stack_push(&w->slot[slot_of(t)], e);
}

static void count_removed(once_sweep_counts *c, enum once__table t)
{
	switch (t) {
	case ONCE_TBL_CODE: c->codes++; break;
	case ONCE_TBL_ACCESS: c->access_tokens++; break;
	case ONCE_TBL_REFRESH: c->refresh++; break;
	case ONCE_TBL_NONCE: c->nonces++; break;
	case ONCE_TBL_REPLAY: c->replays++; break;
	default: break; /* families are not a public kind */
	}
}

enum fate { KEEP, REMOVED, GONE };

/*
 * Decides one popped entry's fate: KEEP (not due: back on the wheel),
 * REMOVED (unlinked and retired by this sweep), GONE (due, but unlinked by
 * someone else; W2 says it cannot happen, and the entry is dropped from
 * the wheel either way, never pushed back).  Families use a CAS on
 * expires_at to DEAD, so a writer extending the family's life and the
 * sweep cannot both win (family.c).
 */
static enum fate expire_entry(once_store *s, struct once__entry *e, int64_t now)
{
	int64_t exp = atomic_load_explicit(&e->expires_at, memory_order_acquire);
	if (exp >= now)
		return KEEP;
	if (once__is_family_table((enum once__table)e->table) &&
	    !atomic_compare_exchange_strong(&e->expires_at, &exp, ONCE_FAMILY_DEAD))
		return KEEP; /* extended meanwhile: lives on */
	enum once__table t = (enum once__table)e->table;
	if (!once__unlink(s, e))
		return GONE;
	once__swept_add(s, t, 1);
	return REMOVED;
}

static void sweep_stack(once_store *s, struct once__wheel *w, _Atomic(struct once__entry *) *top,
                        int64_t now, once_sweep_counts *c, uint64_t *examined)
{
	struct once__entry *e = atomic_exchange_explicit(top, NULL, memory_order_acquire);
	while (e != NULL) {
		struct once__entry *next = e->link.wheel_next;
		(*examined)++;
		enum once__table t = (enum once__table)e->table; /* read before it may be retired */
		enum fate f = expire_entry(s, e, now);
		if (f == REMOVED)
			count_removed(c, t);
		else if (f == KEEP)
			once__wheel_push(w, e);
		e = next;
	}
}

static void sweep_shard(once_store *s, struct once__shard *sh, int64_t now, once_sweep_counts *c,
                        uint64_t *examined)
{
	struct once__wheel *w = &sh->wheel;
	sweep_stack(s, w, &w->overdue, now, c, examined);
	int64_t upto = atomic_load_explicit(&w->swept_upto, memory_order_relaxed);
	int64_t last = now - 1; /* strict: second `now` is not due yet (now >= ONCE_TIME_MIN) */
	if (last <= upto)
		return; /* nothing new came due (or the clock went back) */
	int64_t first = upto + 1;
	/* last > upto, so first <= last and the distance is exact in uint64_t
	 * whatever the two are (a signed last - first could overflow and skip
	 * this clamp: a sweep walking 2^63 seconds). */
	if ((uint64_t)last - (uint64_t)first >= ONCE_WHEEL_SLOTS)
		first = last - ONCE_WHEEL_SLOTS + 1; /* a jump longer than one turn: each slot once */
	/* Publish progress first: pushes for these seconds now go to `overdue`,
	 * which this sweep has visited, or the next one will. */
	atomic_store_explicit(&w->swept_upto, last, memory_order_release);
	for (int64_t t = first; t <= last; t++)
		sweep_stack(s, w, &w->slot[slot_of(t)], now, c, examined);
}

static void sweep_all(once_store *s, once_sweep_counts *c)
{
	int64_t now = once__now(s);
	uint64_t examined = 0;
	pthread_mutex_lock(&s->sweep_lock);
	/* One read-side section per shard: a long one would hold back every
	 * grace period, and with it the freeing of what this sweep retires. */
	for (uint32_t i = 0; i < s->nshards; i++) {
		urcu_bp_read_lock();
		sweep_shard(s, &s->shards[i], now, c, &examined);
		once__read_unlock();
	}
	pthread_mutex_unlock(&s->sweep_lock);
	c->examined = examined;
	atomic_fetch_add_explicit(&s->sweeps, 1, memory_order_relaxed);
}

once_status once__mem_sweep(once_store *s, once_sweep_counts *out)
{
	if (s == NULL)
		return ONCE_INVALID;
	once_sweep_counts c = {0};
	sweep_all(s, &c);
	if (out != NULL)
		*out = c;
	return ONCE_OK;
}

/* ---- background sweeper ---- */

static void *sweeper_main(void *arg)
{
	once_store *s = arg;
	pthread_mutex_lock(&s->sweeper_lock);
	while (!s->sweeper_stop) {
		struct timespec deadline;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		uint64_t ns = (uint64_t)deadline.tv_nsec + (uint64_t)s->opt.sweep_interval_ms * 1000000u;
		deadline.tv_sec += (time_t)(ns / 1000000000u);
		deadline.tv_nsec = (long)(ns % 1000000000u);
		int rc = 0;
		while (!s->sweeper_stop && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&s->sweeper_wake, &s->sweeper_lock, &deadline);
		if (s->sweeper_stop)
			break;
		pthread_mutex_unlock(&s->sweeper_lock);
		once_sweep_counts c = {0};
		sweep_all(s, &c);
		pthread_mutex_lock(&s->sweeper_lock);
	}
	pthread_mutex_unlock(&s->sweeper_lock);
	return NULL;
}

/* On failure nothing is left to undo; on success once__sweeper_stop must
 * run before the store is freed. */
once_status once__sweeper_start(once_store *s)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&s->sweeper_wake, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		return ONCE_NOMEM;
	pthread_mutex_init(&s->sweeper_lock, NULL);
	s->sweeper_stop = false;
	if (s->opt.sweep_interval_ms == 0)
		return ONCE_OK;
	/* The thread inherits this mask: every signal blocked, so the host's
	 * signals never land on a library thread (signalfd/sigwait hosts). */
	sigset_t old;
	once__signals_block_all(&old);
	rc = pthread_create(&s->sweeper, NULL, sweeper_main, s);
	once__signals_restore(&old);
	if (rc != 0) {
		pthread_cond_destroy(&s->sweeper_wake);
		pthread_mutex_destroy(&s->sweeper_lock);
		return ONCE_NOMEM;
	}
	s->sweeper_running = true;
	return ONCE_OK;
}

void once__sweeper_stop(once_store *s)
{
	if (s->sweeper_running) {
		pthread_mutex_lock(&s->sweeper_lock);
		s->sweeper_stop = true;
		pthread_cond_signal(&s->sweeper_wake);
		pthread_mutex_unlock(&s->sweeper_lock);
		pthread_join(s->sweeper, NULL);
		s->sweeper_running = false;
	}
	pthread_cond_destroy(&s->sweeper_wake);
	pthread_mutex_destroy(&s->sweeper_lock);
}
