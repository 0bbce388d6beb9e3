/*
 * core/ticket.c - what an event-loop host asks about its tickets
 * (oncestore.h, "Non-blocking durable writes").  A ticket is a log
 * sequence number; the log (wal/log.c) says how far records are durable.
 */
#include <errno.h>

#include "internal.h"
#include "persist.h"

int once__mem_ticket_fd(once_store *s)
{
	if (s == NULL || s->persist == NULL) {
		errno = EINVAL;
		return -1;
	}
	return once__wal_event_fd(s);
}

once_status once__mem_tickets_durable(once_store *s, once_ticket *upto)
{
	if (s == NULL || upto == NULL)
		return ONCE_INVALID;
	if (s->persist == NULL) {
		*upto = 0; /* every ticket is 0 */
		return ONCE_OK;
	}
	return once__wal_position(s, upto);
}

once_status once__mem_tickets_drain(once_store *s, int fd, once_ticket *upto)
{
	if (s == NULL || upto == NULL)
		return ONCE_INVALID;
	/* Cleared before the position is read: an advance after the read
	 * makes the descriptor readable again, so none is missed. */
	if (fd >= 0 && (s->persist == NULL || !once__wal_event_clear(s, fd)))
		return ONCE_INVALID; /* not a descriptor of this store's */
	return once__mem_tickets_durable(s, upto);
}

once_status once__mem_ticket_wait(once_store *s, once_ticket t)
{
	if (s == NULL)
		return ONCE_INVALID;
	if (t == 0)
		return ONCE_OK;
	if (s->persist == NULL || t >= once__wal_next_ticket(s))
		return ONCE_INVALID; /* never handed out */
	return once__wal_wait(s, t);
}
