/*
 * wal/persist.h - what the store (core/) calls to be durable.
 *
 * A store with a data directory owns one `struct once__persist`: the
 * locked directory, one log (one per store, not per shard: README
 * "Durability" has the measurement), checkpoint state and recovery
 * figures.  A memory-only store has none, and every call below is then a
 * no-op that costs one pointer test.
 *
 * Order of effects on every write path (SPEC 1.2, 1.3):
 *   1. the in-memory CAS (or the pending insert) decides the winner;
 *   2. the winner appends its one record (once__wal_log) while still in
 *      its read-side section, so a record is always appended after the
 *      change it describes is visible, and an insert's record before the
 *      entry is committed (the snapshot rule, wal/snapshot.c);
 *   3. outside the section it waits for the record to be durable
 *      (once__wal_wait) and only then reports success.
 * If 2 or 3 fails, the caller returns ONCE_IO, the change stays in memory
 * (a spent credential stays spent), and once__wal_gate refuses every
 * later write until the store is reopened.
 */
#ifndef ONCE_WAL_PERSIST_H
#define ONCE_WAL_PERSIST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"
#include "oncestore.h"

struct once__entry;
struct once__consumption;

/* The auxiliary data of a REFRESH_ROTATE record. */
struct once__wal_rotation {
	const struct once__consumption *consumption; /* the parent's, just installed */
	const struct once__entry *child;
};

/* Recovers the store from s->opt.dir (creating it if new) and opens its
 * log.  ONCE_OK | ONCE_LOCKED | ONCE_CORRUPT | ONCE_IO | ONCE_NOMEM.
 * With s->opt.read_only: recovers only (once__recover_live), without a
 * lock, a log or a thread, changing nothing in the directory; ONCE_IO
 * keeps errno (ENOENT: no such directory, none made). */
once_status once__persist_open(once_store *s);
/* A write refused on a read-only store: one warning line per store. */
void once__persist_refused(once_store *s, const char *call);
/* Flushes and syncs the log, stops the checkpointer, unlocks the
 * directory.  ONCE_IO when the final flush failed. */
once_status once__persist_close(once_store *s);
once_status once__persist_checkpoint(once_store *s);
void once__persist_stats(once_store *s, struct once_stats *out);

/* The out-of-line halves of once__wal_log and once__wal_wait below. */
once_status once__wal_append(once_store *s, uint8_t type, const struct once__entry *e, const void *aux,
                             uint64_t *seq);
once_status once__wal_commit(once_store *s, uint64_t seq);

/* The three hooks of every write path are inline, so that a memory-only
 * store pays one pointer test for each and no call. */

/* ONCE_IO once the log has failed; ONCE_OK otherwise (and always without
 * a data directory).  Every write path asks first. */
static inline once_status once__wal_gate(once_store *s)
{
	return s->persist != NULL && atomic_load_explicit(&s->wal_failed, memory_order_relaxed)
		? ONCE_IO
		: ONCE_OK;
}

/*
 * Appends the record of `type` about entry e (aux: the consumption for
 * REFRESH_CONSUME and REFRESH_SUCCESSOR, a struct once__wal_rotation for
 * REFRESH_ROTATE, else NULL).  *seq receives the number to wait for, 0
 * without a data directory.  ONCE_OK | ONCE_IO | ONCE_NOMEM.
 */
static inline once_status once__wal_log(once_store *s, uint8_t type, const struct once__entry *e,
                                        const void *aux, uint64_t *seq)
{
	*seq = 0;
	return s->persist == NULL ? ONCE_OK : once__wal_append(s, type, e, aux, seq);
}

/* Waits until record seq is as durable as the sync mode promises (no-op
 * for seq 0).  ONCE_OK | ONCE_IO. */
static inline once_status once__wal_wait(once_store *s, uint64_t seq)
{
	return seq == 0 ? ONCE_OK : once__wal_commit(s, seq);
}

/*
 * The end of every write path, outside the read-side section: the blocking
 * form (ticket NULL) waits for record seq as once__wal_wait does; the
 * _async form hands seq out as the caller's ticket and returns at once
 * (oncestore.h, "Non-blocking durable writes").
 */
static inline once_status once__wal_finish(once_store *s, uint64_t seq, once_ticket *ticket)
{
	if (ticket == NULL)
		return once__wal_wait(s, seq);
	*ticket = seq;
	return ONCE_OK;
}

/* The durable position for tickets (once_tickets_durable). */
once_status once__wal_position(once_store *s, once_ticket *upto);
/* The ticket descriptor (once_ticket_fd) and its rearming. */
int once__wal_event_fd(once_store *s);
bool once__wal_event_clear(once_store *s, int fd);
/* The next ticket the log will hand out (tickets below it exist). */
uint64_t once__wal_next_ticket(once_store *s);

#endif /* ONCE_WAL_PERSIST_H */
