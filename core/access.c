/*
 * core/access.c - access tokens minted from an authorization-code family.
 *
 * When a code is replayed, everything its first redemption minted must stop
 * working: once_code_revoke_family_access_tokens flips the family's revoked
 * flag (family.c), and once_access_token_revoked reads the flag of the
 * family (incarnation) the token joined.  A token entry is keyed by jti and
 * carries its family id in the same allocation, after the key.
 *
 * Recording is two-phase: the token is linked pending first, so a duplicate
 * jti or a full table is decided before the family is touched; then the
 * family is held (created or made to last at least as long as the token)
 * and the token committed.
 */
#include <string.h>

#include "format.h"
#include "internal.h"
#include "persist.h"

static once_status record(once_store *s, const void *family_id, size_t flen, const void *jti,
                          size_t jlen, int64_t expires_at, once_ticket *ticket)
{
	struct once__key tok, fam;
	if (!once__time_valid(expires_at) ||
	    once__key_make(s, ONCE_TBL_ACCESS, jti, jlen, &tok) != ONCE_OK ||
	    once__key_make(s, ONCE_TBL_ACCESS_FAMILY, family_id, flen, &fam) != ONCE_OK)
		return ONCE_INVALID;
	struct once__entry *e = once__entry_new(s, &tok, expires_at, flen);
	if (e == NULL)
		return ONCE_NOMEM;
	memcpy(e->key + jlen, family_id, flen);
	e->u.access.family = e->key + jlen;
	e->u.access.family_len = (uint16_t)flen;

	once_status st = once__wal_gate(s);
	if (st != ONCE_OK) {
		once__entry_free_now(e);
		return st;
	}
	uint64_t seq = 0;
	urcu_bp_read_lock();
	st = once__insert_pending(s, &tok, e); /* frees e unless OK */
	if (st == ONCE_OK) {
		struct once__entry *f;
		st = once__family_hold(s, &fam, expires_at, &f);
		if (st == ONCE_OK) {
			e->u.access.family_incarnation = f->u.family.incarnation;
			st = once__wal_log(s, ONCE_WAL_ACCESS_RECORD, e, NULL, &seq);
		}
		if (st == ONCE_OK)
			once__pending_commit(s, e, ONCE_PRESENT);
		else
			once__pending_abort(s, e);
	}
	once__read_unlock();
	return st == ONCE_OK ? once__wal_finish(s, seq, ticket) : st;
}

once_status once__mem_access_record(once_store *s, const void *family_id, size_t flen,
                                                   const void *jti, size_t jlen, int64_t expires_at, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_ACCESS_RECORD, record(s, family_id, flen, jti, jlen, expires_at, ticket));
}

static once_status revoke(once_store *s, const void *family_id, size_t flen, once_ticket *ticket)
{
	struct once__key fam;
	if (once__key_make(s, ONCE_TBL_ACCESS_FAMILY, family_id, flen, &fam) != ONCE_OK)
		return ONCE_INVALID;
	return once__family_revoke_logged(s, &fam, ONCE_WAL_ACCESS_REVOKE, ticket);
}

once_status once__mem_access_revoke(once_store *s, const void *family_id,
                                                           size_t flen, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_ACCESS_REVOKE, revoke(s, family_id, flen, ticket));
}

static bool revoked(once_store *s, const struct once__key *tok)
{
	struct once__key fam;
	struct once__entry *e = once__table_lookup(s, tok);
	if (e == NULL || atomic_load_explicit(&e->state, memory_order_acquire) != ONCE_PRESENT ||
	    once__key_make(s, ONCE_TBL_ACCESS_FAMILY, e->u.access.family, e->u.access.family_len,
	                   &fam) != ONCE_OK)
		return false;
	struct once__entry *f = once__family_of(s, &fam, e->u.access.family_incarnation);
	/* Read the clock after the lookups: a family that a concurrent sweep
	 * removed had expired before this `now`, and so had the token. */
	int64_t now = once__now(s);
	return f != NULL && once__family_is_revoked(f) &&
	       now <= atomic_load_explicit(&e->expires_at, memory_order_relaxed);
}

bool once__mem_access_revoked(once_store *s, const void *jti, size_t jlen)
{
	struct once__key tok;
	if (s == NULL)
		return false;
	if (once__key_make(s, ONCE_TBL_ACCESS, jti, jlen, &tok) != ONCE_OK) {
		once__count(s, ONCE_OP_ACCESS_REVOKED, ONCE_INVALID);
		return false;
	}
	urcu_bp_read_lock();
	bool r = revoked(s, &tok);
	once__read_unlock();
	once__count(s, ONCE_OP_ACCESS_REVOKED, r ? ONCE_OK : ONCE_NOT_FOUND);
	return r;
}
