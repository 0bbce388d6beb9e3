/*
 * core/family.c - families: one sticky revoked flag shared by many tokens.
 *
 * Revoking a family must not walk its tokens (they live in other shards), so
 * a family is an entry of its own, keyed by family id, whose state word is
 * the revoked flag (LIVE -> REVOKED, never back).  Tokens keep the family id
 * and consult the flag on every read, so revocation is O(1) and every token
 * of the family reads as revoked the moment it returns.
 *
 * Lifetime: a family's expires_at is the latest expires_at of any token that
 * was ever recorded in it, so the sweep cannot drop a revoked mark while a
 * token it covers is still live.  Writers extend expires_at and the sweep
 * retires the family with CAS on the same word (the sweep writes
 * ONCE_FAMILY_DEAD), so exactly one of "extend" and "retire" wins:
 *   - extend won: the family stays, later than the token being recorded;
 *   - retire won: the writer waits for the dead entry to leave the table and
 *     creates a fresh family.  Every token the dead one covered has expired
 *     (their expiry <= the family's < now), so nothing live loses a mark.
 *
 * A refresh token points at the family entry it joined (no second lookup
 * on its reads) and holds a reference to it, so the entry's memory lasts
 * as long as any token can reach it, even after the sweep unlinked it: a
 * token whose family is DEAD (unlinked, or about to be) has expired with
 * it and reads as absent, as a token of a family created again would.
 */
#include <sched.h>

#include "internal.h"
#include "persist.h"

/* Raises *exp to at least want unless the family is DEAD. */
static bool extend(struct once__entry *fam, int64_t want)
{
	int64_t cur = atomic_load_explicit(&fam->expires_at, memory_order_acquire);
	while (cur != ONCE_FAMILY_DEAD) {
		if (cur >= want)
			return true;
		if (atomic_compare_exchange_weak(&fam->expires_at, &cur, want))
			return true;
	}
	return false;
}

/*
 * One add-or-get: a new family entry is built up front and offered with
 * cds_lfht_add_unique, which either links it or returns the family already
 * there (the built one is then freed: nobody ever saw it).  Building costs
 * a slab block; a lookup first and an insert after would walk the table
 * twice for every new family, the common case (one per login).
 */
once_status once__family_hold(once_store *s, const struct once__key *fam, int64_t expires_at,
                              struct once__entry **out)
{
	/* Never ONCE_FAMILY_DEAD: a family created or extended to it would be
	 * waited for forever (callers pass times in range already). */
	expires_at = once__time_clamp(expires_at);
	for (;;) {
		struct once__entry *n = once__entry_new(s, fam, expires_at, 0), *f = NULL;
		if (n == NULL)
			return ONCE_NOMEM;
		n->u.family.incarnation = atomic_fetch_add(&s->next_incarnation, 1) + 1;
		atomic_init(&n->u.family.refs, 1); /* the table's */
		/* once__insert_or_get takes its own read lock; nesting is
		 * allowed. */
		once_status st = once__insert_or_get(s, fam, n, ONCE_FAMILY_LIVE, &f);
		if (st == ONCE_OK) {
			*out = n;
			return ONCE_OK;
		}
		if (st != ONCE_EXISTS)
			return st; /* FULL */
		if (f != NULL && once__family_extend(f, expires_at)) {
			*out = f;
			return ONCE_OK;
		}
		/* Being retired by the sweep right now (or gone between the
		 * full table's answer and here): it unlinks it shortly. */
		sched_yield();
	}
}

bool once__family_extend(struct once__entry *f, int64_t expires_at)
{
	return extend(f, once__time_clamp(expires_at));
}

bool once__family_gone(struct once__entry *f)
{
	return atomic_load_explicit(&f->expires_at, memory_order_acquire) == ONCE_FAMILY_DEAD;
}

void once__family_ref(struct once__entry *f)
{
	atomic_fetch_add_explicit(&f->u.family.refs, 1, memory_order_relaxed);
}

/* The last reference frees the family: the table's was dropped after a
 * grace period (its retire callback), a token's when the token itself is
 * freed after one, so no reader can still reach it. */
void once__family_unref(struct once__entry *f)
{
	if (atomic_fetch_sub_explicit(&f->u.family.refs, 1, memory_order_acq_rel) == 1)
		once__entry_free_now(f);
}

bool once__is_family_table(enum once__table t)
{
	return t == ONCE_TBL_ACCESS_FAMILY || t == ONCE_TBL_REFRESH_FAMILY;
}

struct once__entry *once__family_of(once_store *s, const struct once__key *fam, uint64_t inc)
{
	struct once__entry *f = once__table_lookup(s, fam);
	return f != NULL && f->u.family.incarnation == inc ? f : NULL;
}

bool once__family_is_revoked(struct once__entry *f)
{
	/* seq_cst, pairing with the store in once__family_revoke. */
	return atomic_load(&f->state) == ONCE_FAMILY_REVOKED;
}

/*
 * Sticky revocation, with no window.  Revoke and insert both go through
 * once__family_hold, which converges on the one family entry of that id
 * (add_unique; a DEAD one is waited out).  Then:
 *   - an insert that reads the flag after this store sees REVOKED and
 *     refuses;
 *   - an insert that read it before publishes a token whose every read
 *     consults this same flag, so the token reads as revoked from the
 *     moment this function returns.
 * The seq_cst store and the seq_cst loads in readers make "returns, then a
 * read starts" imply "the read sees REVOKED".  The mark lasts at least
 * revocation_ttl, and at least as long as any token recorded in the family.
 */
once_status once__family_revoke(once_store *s, const struct once__key *fam, struct once__entry **out)
{
	/* In range and saturated (revocation_ttl is checked at open): never
	 * ONCE_FAMILY_DEAD, even for a clock at INT64_MIN and a ttl of 0. */
	int64_t until = once__time_add(once__now(s), s->opt.revocation_ttl);
	/* Most revocations name a family that exists: a lookup, and the
	 * add-or-get only for an unknown (or retiring) one. */
	struct once__entry *f = once__table_lookup(s, fam);
	if (f == NULL || !once__family_extend(f, until)) {
		once_status st = once__family_hold(s, fam, until, &f);
		if (st != ONCE_OK)
			return st;
	}
	atomic_store(&f->state, ONCE_FAMILY_REVOKED);
	*out = f;
	return ONCE_OK;
}

once_status once__family_revoke_logged(once_store *s, const struct once__key *fam, uint8_t type,
                                       once_ticket *ticket)
{
	once_status st = once__wal_gate(s);
	if (st != ONCE_OK)
		return st;
	uint64_t seq = 0;
	struct once__entry *f;
	urcu_bp_read_lock();
	st = once__family_revoke(s, fam, &f);
	/* One record, whatever the family's size: its id, incarnation and
	 * mark expiry.  Logged even when it was revoked already: the caller
	 * must not hear OK before a revocation is durable. */
	if (st == ONCE_OK)
		st = once__wal_log(s, type, f, NULL, &seq);
	once__read_unlock();
	return st == ONCE_OK ? once__wal_finish(s, seq, ticket) : st;
}
