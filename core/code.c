/*
 * core/code.c - authorization codes (RFC 6749 4.1.2, RFC 7636).
 *
 * State machine of a code entry (the state word, changed only by CAS):
 *
 *     put            take (one winner)        finalize
 *   ------> LIVE --------------------> TAKEN ----------> FINALIZED
 *
 *   take on LIVE       -> OK + record (the CAS winner)
 *   take on TAKEN      -> NOT_FOUND   (a failed first presentation is not
 *                                      reuse evidence)
 *   take on FINALIZED  -> SPENT + meta (replay: revoke the family)
 *
 * Validation fails closed: a record that is missing a required field, asks
 * for any PKCE method but S256, or claims to be consumed already is refused
 * whole, and nothing is stored.
 */
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "internal.h"
#include "persist.h"


static once_status put(once_store *s, const void *hash, size_t hlen, const once_code *c,
                       once_ticket *ticket)
{
	struct once__key k;
	if (c == NULL || !once__code_valid(c) ||
	    once__key_make(s, ONCE_TBL_CODE, hash, hlen, &k) != ONCE_OK)
		return ONCE_INVALID;
	int64_t now = once__now(s);
	once_code norm = *c;
	if (norm.code_challenge != NULL && norm.code_challenge_method == NULL)
		norm.code_challenge_method = "S256";
	norm.inserted_at = now;
	struct once__packing pk;
	size_t size = once__code_prepare(&pk, &norm, s->opt.max_record_len);
	if (size == 0)
		return ONCE_INVALID; /* larger than max_record_len */
	void *block;
	struct once__entry *e = once__entry_with_record(s, &k, c->expires_at, size, &block);
	if (e == NULL)
		return ONCE_NOMEM;
	e->u.code.record = once__code_place(block, &pk, &norm);
	return once__insert_logged(s, &k, e, ONCE_CODE_LIVE, ONCE_WAL_CODE_PUT, ticket);
}

once_status once__mem_code_put(once_store *s, const void *hash, size_t hlen, const once_code *c, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_CODE_PUT, put(s, hash, hlen, c, ticket));
}

/* A caller's copy of a stored code, with the current consumption fields. */
/* A caller's copy of a stored code (NULL out: nothing to copy). */
static once_status copy_out(const struct once__entry *e, once_code **out)
{
	if (out == NULL)
		return ONCE_OK;
	*out = once__code_copy(e->u.code.record, e->record_size);
	return *out ? ONCE_OK : ONCE_NOMEM;
}

static once_status get(once_store *s, const void *hash, size_t hlen, once_code **out)
{
	struct once__key k;
	if (once__key_make(s, ONCE_TBL_CODE, hash, hlen, &k) != ONCE_OK)
		return ONCE_INVALID;
	once_status st = ONCE_NOT_FOUND;
	urcu_bp_read_lock();
	struct once__entry *e = once__table_lookup(s, &k);
	if (e != NULL && atomic_load_explicit(&e->state, memory_order_acquire) == ONCE_CODE_LIVE)
		st = copy_out(e, out);
	once__read_unlock();
	return st;
}

once_status once__mem_code_get(once_store *s, const void *hash, size_t hlen, once_code **out)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_CODE_GET, get(s, hash, hlen, out));
}

static once_status spent(const struct once__entry *e, once_code_meta **meta)
{
	if (meta == NULL)
		return ONCE_SPENT;
	once_code_meta *m = once__code_meta_pack(e->u.code.record);
	if (m == NULL)
		return ONCE_NOMEM;
	*meta = m;
	return ONCE_SPENT;
}

/*
 * The caller's copy is made before the CAS, so a winner never fails after
 * the claim: NOMEM means nothing changed (the code is still there).
 */
static once_status take(once_store *s, const void *hash, size_t hlen, once_code **out,
                        once_code_meta **meta, once_ticket *ticket)
{
	struct once__key k;
	if (once__key_make(s, ONCE_TBL_CODE, hash, hlen, &k) != ONCE_OK)
		return ONCE_INVALID;
	once_status st = once__wal_gate(s);
	if (st != ONCE_OK)
		return st;
	st = ONCE_NOT_FOUND;
	uint64_t seq = 0;
	once_code *copy = NULL;
	urcu_bp_read_lock();
	struct once__entry *e = once__table_lookup(s, &k);
	uint32_t seen = e ? atomic_load_explicit(&e->state, memory_order_acquire) : 0;
	if (seen == ONCE_CODE_LIVE) {
		__builtin_prefetch(e->u.code.record); /* copied out next */
		st = copy_out(e, out ? &copy : NULL);
		/* THE single-use decision: exactly one CAS from LIVE succeeds. */
		if (st == ONCE_OK && atomic_compare_exchange_strong(&e->state, &seen, ONCE_CODE_TAKEN)) {
			int64_t now = once__now(s);
			atomic_store_explicit(&e->u.code.consumed_at, now, memory_order_relaxed);
			st = once__wal_log(s, ONCE_WAL_CODE_TAKE, e, NULL, &seq);
			if (copy != NULL) {
				copy->consumed_at = now;
				copy->consumed_success = false;
			}
		} else {
			once_free(copy);
			copy = NULL;
			if (st == ONCE_OK) /* lost the race; seen holds the winner's state */
				st = seen == ONCE_CODE_FINALIZED ? spent(e, meta) : ONCE_NOT_FOUND;
		}
	} else if (seen == ONCE_CODE_FINALIZED) {
		st = spent(e, meta);
	}
	once__read_unlock();
	if (st == ONCE_OK)
		st = once__wal_finish(s, seq, ticket); /* durable before acknowledged */
	if (st == ONCE_OK && copy != NULL)
		*out = copy;
	else
		once_free(copy); /* ONCE_IO: the code stays taken (fail closed) */
	return st;
}

once_status once__mem_code_take(once_store *s, const void *hash, size_t hlen, once_code **out,
                                    once_code_meta **meta, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_CODE_TAKE, take(s, hash, hlen, out, meta, ticket));
}

static once_status finalize(once_store *s, const void *hash, size_t hlen, once_ticket *ticket)
{
	struct once__key k;
	if (once__key_make(s, ONCE_TBL_CODE, hash, hlen, &k) != ONCE_OK)
		return ONCE_INVALID;
	once_status st = once__wal_gate(s);
	if (st != ONCE_OK)
		return st;
	st = ONCE_NOT_FOUND;
	uint64_t seq = 0;
	urcu_bp_read_lock();
	struct once__entry *e = once__table_lookup(s, &k);
	if (e != NULL) {
		uint32_t seen = ONCE_CODE_TAKEN;
		/* Idempotent, and logged again when already finalized: the
		 * first finalize's record may not be durable yet, and this
		 * caller must not hear OK before it is (SPEC 1.2). */
		if (atomic_compare_exchange_strong(&e->state, &seen, ONCE_CODE_FINALIZED) ||
		    seen == ONCE_CODE_FINALIZED)
			st = once__wal_log(s, ONCE_WAL_CODE_FINALIZE, e, NULL, &seq);
	}
	once__read_unlock();
	return st == ONCE_OK ? once__wal_finish(s, seq, ticket) : st;
}

once_status once__mem_code_finalize(once_store *s, const void *hash, size_t hlen, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_CODE_FINALIZE, finalize(s, hash, hlen, ticket));
}

