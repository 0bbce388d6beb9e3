/*
 * core/replay.c - the DPoP proof `jti` replay cache (RFC 9449 section 11.1).
 *
 * Record-on-first-sight: the insert itself is the single-use decision, since
 * cds_lfht_add_unique lets exactly one of concurrent inserts of one key
 * succeed.  The entry is a tombstone until the sweep removes it after
 * expires_at; it is never deleted on use, because deleting it would let the
 * same jti be accepted again (FIELD-NOTES A8).
 */
#include "format.h"
#include "internal.h"
#include "persist.h"

static once_status check(once_store *s, const void *jti, size_t len, int64_t ttl, once_ticket *ticket)
{
	struct once__key k;
	if (!once__ttl_valid(ttl) || once__key_make(s, ONCE_TBL_REPLAY, jti, len, &k) != ONCE_OK)
		return ONCE_INVALID;
	struct once__entry *e = once__entry_new(s, &k, once__time_add(once__now(s), ttl), 0);
	if (e == NULL)
		return ONCE_NOMEM;
	once_status st = once__insert_logged(s, &k, e, ONCE_PRESENT, ONCE_WAL_REPLAY_RECORD, ticket);
	return st == ONCE_EXISTS ? ONCE_SPENT : st;
}

once_status once__mem_replay_check(once_store *s, const void *jti, size_t len, int64_t ttl_seconds, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_REPLAY_CHECK, check(s, jti, len, ttl_seconds, ticket));
}

