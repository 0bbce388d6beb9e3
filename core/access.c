/*
 * core/access.c - access tokens minted from an authorization-code family.
 *
 * When a code is replayed, everything its first redemption minted must stop
 * working: once_code_revoke_family_access_tokens flips the family's revoked
 * flag (family.c), and once_access_token_revoked reads the token's family
 * flag.  A token entry is keyed by jti and carries its family id in the
 * same allocation, after the key.
 */
#include <string.h>

#include "internal.h"

static once_status record(once_store *s, const void *family_id, size_t flen, const void *jti,
                          size_t jlen, int64_t expires_at)
{
	struct once__key tok, fam;
	if (expires_at <= 0 || once__key_make(s, ONCE_TBL_ACCESS, jti, jlen, &tok) != ONCE_OK ||
	    once__key_make(s, ONCE_TBL_ACCESS_FAMILY, family_id, flen, &fam) != ONCE_OK)
		return ONCE_INVALID;
	struct once__entry *e = once__entry_new(&tok, expires_at, flen);
	if (e == NULL)
		return ONCE_NOMEM;
	memcpy(e->key + jlen, family_id, flen);
	e->u.access.family = e->key + jlen;
	e->u.access.family_len = (uint16_t)flen;

	/* The family first, lasting at least as long as this token, so the
	 * token can never outlive its family's revoked mark. */
	urcu_bp_read_lock();
	struct once__entry *f;
	once_status st = once__family_hold(s, &fam, expires_at, &f);
	urcu_bp_read_unlock();
	if (st != ONCE_OK) {
		once__entry_free_now(e);
		return st;
	}
	return once__insert(s, &tok, e, ONCE_PRESENT);
}

ONCE_API once_status once_code_record_access_token(once_store *s, const void *family_id, size_t flen,
                                                   const void *jti, size_t jlen, int64_t expires_at)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_ACCESS_RECORD, record(s, family_id, flen, jti, jlen, expires_at));
}

ONCE_API once_status once_code_revoke_family_access_tokens(once_store *s, const void *family_id,
                                                           size_t flen)
{
	struct once__key fam;
	if (s == NULL)
		return ONCE_INVALID;
	if (once__key_make(s, ONCE_TBL_ACCESS_FAMILY, family_id, flen, &fam) != ONCE_OK)
		return once__count(s, ONCE_OP_ACCESS_REVOKE, ONCE_INVALID);
	urcu_bp_read_lock();
	once_status st = once__family_revoke(s, &fam);
	urcu_bp_read_unlock();
	/* FULL: an unknown family and no room for its mark; it has no token
	 * to revoke and none can be recorded into it, so revocation holds. */
	return once__count(s, ONCE_OP_ACCESS_REVOKE, st == ONCE_FULL ? ONCE_OK : st);
}

ONCE_API bool once_access_token_revoked(once_store *s, const void *jti, size_t jlen)
{
	struct once__key tok, fam;
	if (s == NULL)
		return false;
	if (once__key_make(s, ONCE_TBL_ACCESS, jti, jlen, &tok) != ONCE_OK) {
		once__count(s, ONCE_OP_ACCESS_REVOKED, ONCE_INVALID);
		return false;
	}
	bool revoked = false;
	int64_t now = once__now(s);
	urcu_bp_read_lock();
	struct once__entry *e = once__table_lookup(s, &tok);
	if (e != NULL && now <= atomic_load_explicit(&e->expires_at, memory_order_relaxed) &&
	    once__key_make(s, ONCE_TBL_ACCESS_FAMILY, e->u.access.family, e->u.access.family_len,
	                   &fam) == ONCE_OK)
		revoked = once__family_revoked(s, &fam);
	urcu_bp_read_unlock();
	once__count(s, ONCE_OP_ACCESS_REVOKED, revoked ? ONCE_OK : ONCE_NOT_FOUND);
	return revoked;
}
