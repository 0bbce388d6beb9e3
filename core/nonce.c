/*
 * core/nonce.c - DPoP server nonces (RFC 9449 section 8).
 *
 * A nonce is 32 CSPRNG bytes in base64url (43 characters); the server
 * generates it, but clients present it, so its table hashes with the keyed
 * PRF (hash.c).  State: FRESH --(one CAS)--> USED.
 *
 * accept(ttl) decides in this order:
 *   unknown -> NOT_FOUND; used -> SPENT; issued_at < now - ttl, or
 *   expires_at < now -> EXPIRED (the nonce stays unused); otherwise the
 *   CAS: its one winner gets OK, a loser sees USED -> SPENT.
 */
#include <string.h>

#include "format.h"
#include "internal.h"
#include "persist.h"

static once_status issue(once_store *s, int64_t ttl, char out[ONCE_NONCE_LEN + 1], once_ticket *ticket)
{
	if (out == NULL || !once__ttl_valid(ttl))
		return ONCE_INVALID;
	int64_t now = once__now(s);
	for (;;) {
		unsigned char raw[32];
		char text[ONCE_NONCE_LEN + 1];
		once__random(raw, sizeof raw);
		once__b64url32_public(raw, text);
		struct once__key k;
		/* max_key_len below ONCE_NONCE_LEN: this store could never accept
		 * the nonce, so refuse to mint it (and never use an unset key). */
		if (once__key_make(s, ONCE_TBL_NONCE, text, ONCE_NONCE_LEN, &k) != ONCE_OK)
			return ONCE_INVALID;
		struct once__entry *e = once__entry_new(s, &k, once__time_add(now, ttl), 0);
		if (e == NULL)
			return ONCE_NOMEM;
		e->u.nonce.issued_at = now;
		once_status st = once__insert_logged(s, &k, e, ONCE_NONCE_FRESH, ONCE_WAL_NONCE_ISSUE, ticket);
		if (st == ONCE_EXISTS)
			continue; /* a 2^-256 event; draw again rather than fail */
		if (st == ONCE_OK)
			memcpy(out, text, sizeof text);
		return st;
	}
}

once_status once__mem_nonce_issue(once_store *s, int64_t ttl_seconds, char out[ONCE_NONCE_LEN + 1], once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_NONCE_ISSUE, issue(s, ttl_seconds, out, ticket));
}

bool once__mem_nonce_valid(once_store *s, const void *nonce, size_t len)
{
	struct once__key k;
	if (s == NULL)
		return false;
	if (once__key_make(s, ONCE_TBL_NONCE, nonce, len, &k) != ONCE_OK) {
		once__count(s, ONCE_OP_NONCE_VALID, ONCE_INVALID);
		return false;
	}
	int64_t now = once__now(s);
	urcu_bp_read_lock();
	struct once__entry *e = once__table_lookup(s, &k);
	bool valid = e != NULL &&
	             atomic_load_explicit(&e->state, memory_order_acquire) == ONCE_NONCE_FRESH &&
	             atomic_load_explicit(&e->expires_at, memory_order_relaxed) > now;
	once__read_unlock();
	once__count(s, ONCE_OP_NONCE_VALID, valid ? ONCE_OK : ONCE_NOT_FOUND);
	return valid;
}

/*
 * Too old to accept: issued before now - ttl (the caller's freshness
 * window), or past the expires_at it was issued with (then the sweep would
 * remove it: without this, the answer would depend on sweep timing).
 * Written without `now - ttl`, and with the age in uint64_t: now > issued
 * makes it exact whatever issued_at holds (a recovered one is not clamped).
 */
static bool stale(struct once__entry *e, int64_t now, int64_t ttl)
{
	int64_t issued = e->u.nonce.issued_at;
	return (now > issued && (uint64_t)now - (uint64_t)issued > (uint64_t)ttl) ||
	       atomic_load_explicit(&e->expires_at, memory_order_relaxed) < now;
}

static once_status accept(once_store *s, const void *nonce, size_t len, int64_t ttl, once_ticket *ticket)
{
	struct once__key k;
	if (!once__ttl_valid(ttl) || once__key_make(s, ONCE_TBL_NONCE, nonce, len, &k) != ONCE_OK)
		return ONCE_INVALID;
	once_status st = once__wal_gate(s);
	if (st != ONCE_OK)
		return st;
	int64_t now = once__now(s);
	uint64_t seq = 0;
	st = ONCE_NOT_FOUND;
	urcu_bp_read_lock();
	struct once__entry *e = once__table_lookup(s, &k);
	if (e != NULL) {
		uint32_t seen = atomic_load_explicit(&e->state, memory_order_acquire);
		if (seen == ONCE_NONCE_USED)
			st = ONCE_SPENT;
		else if (seen != ONCE_NONCE_FRESH)
			st = ONCE_NOT_FOUND; /* being issued: not handed out yet */
		else if (stale(e, now, ttl))
			st = ONCE_EXPIRED;
		else if (atomic_compare_exchange_strong(&e->state, &seen, ONCE_NONCE_USED))
			st = once__wal_log(s, ONCE_WAL_NONCE_ACCEPT, e, NULL, &seq); /* THE decision */
		else
			st = ONCE_SPENT;
	}
	once__read_unlock();
	return st == ONCE_OK ? once__wal_finish(s, seq, ticket) : st;
}

once_status once__mem_nonce_accept(once_store *s, const void *nonce, size_t len, int64_t ttl_seconds, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_NONCE_ACCEPT, accept(s, nonce, len, ttl_seconds, ticket));
}

