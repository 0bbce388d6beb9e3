/*
 * core/refresh.c - refresh-token families (RFC 6749 6, 10.4; Security BCP
 * 4.13): insert, get, consume, successor, atomic rotation, sticky revoke.
 *
 * A token entry is keyed by its hash; its family is a separate entry keyed
 * by family id (family.c) holding the one revoked flag every read consults.
 * Tokens of one family live in any shard; revocation touches only the
 * family entry, so it is O(1) in the family's size.
 *
 * A token reads as live only if the family entry it points at (live_token)
 * is neither retired nor revoked.  Every insert holds the family before
 * committing the token, extending its life to the token's expiry, so a
 * family is swept only after all its tokens expired: a retired family
 * means an expired token, which fails closed as NOT_FOUND rather than
 * reading as live.
 *
 * Consumption is a pointer, installed by one CAS from NULL: THE single-use
 * decision.  It carries consumed_at and the sealed successor, so a rotation
 * that wins the CAS makes "consumed" and "its successor" visible at once,
 * and every loser reads the winner's successor.
 *
 * Invariants (tests/test_refresh.c and test_race.c check each):
 *   R1. Of concurrent consumes / rotations of one token exactly one gets OK.
 *   R2. From the moment once_refresh_revoke_family returns, no token of the
 *       family reads as live, and no insert or rotation that starts later
 *       gets OK.
 *   R3. A rotation is all or nothing: on any status but OK the parent is
 *       as it was and no child exists.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "internal.h"
#include "persist.h"

/* ---- validation ---- */

/* A new record: required fields, nothing that claims it was used. */
static bool record_valid(const once_refresh *r)
{
	return r != NULL && once__text_present(r->family_id) && once__text_present(r->subject) &&
	       once__time_valid(r->expires_at) && !r->consumed && !r->revoked &&
	       r->consumed_at == 0 && r->successor == NULL && r->successor_len == 0 &&
	       (r->claims_len == 0 || r->claims != NULL) && once__list_ok(r->scope, r->scope_count) &&
	       once__list_ok(r->resource, r->resource_count);
}

/* ---- building a token entry ---- */

static int cmp_str_ptr(const void *a, const void *b)
{
	int c = strcmp(**(const char *const *const *)a, **(const char *const *const *)b);
	/* Equal strings: the earlier position first, so it is the one kept. */
	return c ? c : (*(const char *const *const *)a > *(const char *const *const *)b) -
	                       (*(const char *const *const *)a < *(const char *const *const *)b);
}

/* Scopes this short (every real one) are deduplicated by comparing each
 * pair, into the caller's array: no allocation, no sort. */
#define SHORT_SCOPE 16

/*
 * Scope with duplicates removed, first occurrences kept in their order.
 * A short list goes into `small` (SHORT_SCOPE slots); a longer one is
 * sorted by pointers to its slots, which finds duplicates in O(n log n)
 * however long a hostile list is, into a block the caller frees when it
 * is not `small`.  *out is NULL when n == 0; false on allocation failure.
 */
static bool dedupe_scope(const char *const *scope, size_t n, const char **small, const char ***out,
                         size_t *out_n)
{
	*out = NULL;
	*out_n = 0;
	if (n == 0)
		return true;
	if (n <= SHORT_SCOPE) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			bool dup = false;
			for (size_t j = 0; j < m && !dup; j++)
				dup = strcmp(small[j], scope[i]) == 0;
			if (!dup)
				small[m++] = scope[i];
		}
		*out = small;
		*out_n = m;
		return true;
	}
	if (n > SIZE_MAX / sizeof(const char *const *))
		return false;
	const char *const **slots = malloc(n * sizeof *slots);
	bool *dup = calloc(n, sizeof *dup);
	const char **kept = malloc(n * sizeof *kept);
	if (slots == NULL || dup == NULL || kept == NULL) {
		free(slots), free(dup), free(kept);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		slots[i] = &scope[i];
	qsort(slots, n, sizeof *slots, cmp_str_ptr);
	for (size_t i = 1; i < n; i++)
		if (strcmp(*slots[i], *slots[i - 1]) == 0)
			dup[slots[i] - scope] = true;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!dup[i])
			kept[m++] = scope[i];
	free(slots);
	free(dup);
	*out = kept;
	*out_n = m;
	return true;
}

/* A token entry holding a packed copy of r (scope deduplicated). */
static once_status build_token(once_store *s, const struct once__key *k, const once_refresh *r,
                               struct once__entry **out)
{
	/* A list longer than a record can hold is refused before any work. */
	if (r->scope_count > s->opt.max_record_len / sizeof(char *))
		return ONCE_INVALID;
	once_refresh norm = *r;
	const char **scope, *small[SHORT_SCOPE];
	if (!dedupe_scope(r->scope, r->scope_count, small, &scope, &norm.scope_count))
		return ONCE_NOMEM;
	norm.scope = scope;
	norm.inserted_at = once__now(s);
	once_status st = ONCE_OK;
	struct once__packing pk;
	size_t size = once__refresh_prepare(&pk, &norm, s->opt.max_record_len);
	void *block;
	struct once__entry *e = NULL;
	if (size == 0)
		st = ONCE_INVALID; /* larger than max_record_len */
	else if ((e = once__entry_with_record(s, k, r->expires_at, size, &block)) == NULL)
		st = ONCE_NOMEM;
	if (e != NULL) {
		e->u.refresh.record = once__refresh_place(block, &pk, &norm);
		atomic_init(&e->u.refresh.consumed, NULL);
		*out = e;
	}
	if (scope != small)
		free(scope);
	return st;
}

static once_status family_key(const once_store *s, const char *family_id, struct once__key *fam)
{
	return once__key_make(s, ONCE_TBL_REFRESH_FAMILY, family_id, strlen(family_id), fam);
}

/* ---- reading a token ---- */

/* The token under k if it reads as live: committed, and the family it
 * joined not retired (then the token has expired with it) and not
 * revoked.  One table walk: the token points at its family (family.c).
 * Inside a read-side section. */
static struct once__entry *live_token(once_store *s, const struct once__key *k)
{
	struct once__entry *e = once__table_lookup(s, k);
	if (e == NULL || atomic_load_explicit(&e->state, memory_order_acquire) != ONCE_REFRESH_LIVE)
		return NULL;
	/* Every caller reads the record next: its miss overlaps the
	 * family's. */
	__builtin_prefetch(e->u.refresh.record);
	struct once__entry *f = e->u.refresh.family;
	return !once__family_gone(f) && !once__family_is_revoked(f) ? e : NULL;
}

/* Token e (pending) joins family f, which the caller holds (extended past
 * e's expiry, inside its read-side section): e takes a reference, so f
 * outlives it. */
static void join(struct once__entry *e, struct once__entry *f)
{
	once__family_ref(f);
	e->u.refresh.family = f;
	e->flags |= ONCE_ENTRY_HOLDS_FAMILY;
}

/* The caller's copy of a token as `c` describes its consumption (NULL:
 * unconsumed), with the successor decrypted; a successor that fails to
 * open reads as absent, never as garbage. */
static once_status copy_out(once_store *s, const struct once__entry *e,
                            const struct once__consumption *c, once_refresh **out)
{
	if (out == NULL)
		return ONCE_OK;
	const struct once__sealed *sealed = c ? c->successor : NULL;
	size_t plain = sealed ? once__sealed_plain_len(sealed) : 0;
	void *tail;
	once_refresh *r = once__refresh_copy(e->u.refresh.record, e->record_size, plain, &tail);
	if (r == NULL)
		return ONCE_NOMEM;
	r->consumed = c != NULL;
	r->consumed_at = c ? c->consumed_at : 0;
	r->revoked = false;
	if (sealed != NULL && once__unseal(s, sealed, e->key, e->key_len, tail)) {
		r->successor = tail;
		r->successor_len = plain;
	}
	*out = r;
	return ONCE_OK;
}

/* ---- insert ---- */

/*
 * Two-phase: the token is linked pending first, so EXISTS and FULL are
 * decided before the family is touched; then the family is held (found or
 * created by one add-or-get, and made to last at least as long as the
 * token), its flag checked, and the token committed.  Two table walks in
 * all.  A revoked family answers REVOKED before EXISTS and FULL: those
 * answers look the family up once more, off the common path.
 */
static once_status insert(once_store *s, const void *hash, size_t hlen, const once_refresh *r,
                          once_ticket *ticket)
{
	struct once__key k, fam;
	if (!record_valid(r) || once__key_make(s, ONCE_TBL_REFRESH, hash, hlen, &k) != ONCE_OK ||
	    family_key(s, r->family_id, &fam) != ONCE_OK)
		return ONCE_INVALID;
	once_status st = once__wal_gate(s);
	if (st != ONCE_OK)
		return st;
	struct once__entry *e;
	st = build_token(s, &k, r, &e);
	if (st != ONCE_OK)
		return st;
	uint64_t seq = 0;
	urcu_bp_read_lock();
	st = once__insert_pending(s, &k, e); /* frees e unless OK */
	if (st != ONCE_OK) {
		struct once__entry *known = once__table_lookup(s, &fam);
		if (known != NULL && once__family_is_revoked(known))
			st = ONCE_REVOKED;
	} else {
		struct once__entry *f;
		st = once__family_hold(s, &fam, r->expires_at, &f);
		/* R2: checked after holding the family.  A revocation that lands
		 * after this check still covers the token: every read consults
		 * the flag of the family it joins here. */
		if (st == ONCE_OK && once__family_is_revoked(f))
			st = ONCE_REVOKED;
		if (st == ONCE_OK) {
			join(e, f);
			st = once__wal_log(s, ONCE_WAL_REFRESH_INSERT, e, NULL, &seq);
		}
		if (st == ONCE_OK)
			once__pending_commit(s, e, ONCE_REFRESH_LIVE);
		else
			once__pending_abort(s, e);
	}
	once__read_unlock();
	return st == ONCE_OK ? once__wal_finish(s, seq, ticket) : st;
}

once_status once__mem_refresh_insert(once_store *s, const void *hash, size_t hlen,
                                         const once_refresh *r, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_REFRESH_INSERT, insert(s, hash, hlen, r, ticket));
}

/* ---- get, consume ---- */

static once_status get(once_store *s, const void *hash, size_t hlen, once_refresh **out)
{
	struct once__key k;
	if (once__key_make(s, ONCE_TBL_REFRESH, hash, hlen, &k) != ONCE_OK)
		return ONCE_INVALID;
	once_status st = ONCE_NOT_FOUND;
	urcu_bp_read_lock();
	struct once__entry *e = live_token(s, &k);
	if (e != NULL)
		st = copy_out(s, e, atomic_load_explicit(&e->u.refresh.consumed, memory_order_acquire), out);
	once__read_unlock();
	return st;
}

once_status once__mem_refresh_get(once_store *s, const void *hash, size_t hlen, once_refresh **out)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_REFRESH_GET, get(s, hash, hlen, out));
}

/*
 * Consumes a live token e, inside a read-side section.  The winner's copy
 * (the record as it stood) is made before the CAS, so a winner never fails
 * after consuming: NOMEM means nothing changed.  On OK *mine belongs to
 * the token and is set to NULL.
 */
static once_status consume_live(once_store *s, struct once__entry *e, struct once__consumption **mine,
                                once_refresh **out)
{
	struct once__consumption *seen = atomic_load_explicit(&e->u.refresh.consumed, memory_order_acquire);
	if (seen == NULL) {
		once_refresh *copy = NULL;
		once_status st = copy_out(s, e, NULL, out ? &copy : NULL);
		if (st != ONCE_OK)
			return st;
		/* R1: THE single-use decision. */
		if (atomic_compare_exchange_strong(&e->u.refresh.consumed, &seen, *mine)) {
			*mine = NULL;
			if (out != NULL)
				*out = copy;
			return ONCE_OK;
		}
		once_free(copy); /* lost: seen is now the winner's consumption */
	}
	once_status st = copy_out(s, e, seen, out);
	return st == ONCE_OK ? ONCE_SPENT : st;
}

static once_status consume(once_store *s, const void *hash, size_t hlen, once_refresh **out,
                           once_ticket *ticket)
{
	struct once__key k;
	if (once__key_make(s, ONCE_TBL_REFRESH, hash, hlen, &k) != ONCE_OK)
		return ONCE_INVALID;
	once_status st = once__wal_gate(s);
	if (st != ONCE_OK)
		return st;
	struct once__consumption *mine = once__consumption_new(s, once__now(s), NULL);
	if (mine == NULL)
		return ONCE_NOMEM;
	uint64_t seq = 0;
	urcu_bp_read_lock();
	struct once__entry *e = live_token(s, &k);
	st = e ? consume_live(s, e, &mine, out) : ONCE_NOT_FOUND;
	bool won = st == ONCE_OK;
	if (won)
		st = once__wal_log(s, ONCE_WAL_REFRESH_CONSUME, e,
		                   atomic_load_explicit(&e->u.refresh.consumed, memory_order_acquire), &seq);
	once__read_unlock();
	once__consumption_free(mine);
	if (st == ONCE_OK)
		st = once__wal_finish(s, seq, ticket);
	if (won && st != ONCE_OK && out != NULL) {
		once_free(*out); /* consumed in memory (fail closed), not acknowledged */
		*out = NULL;
	}
	return st;
}

once_status once__mem_refresh_consume(once_store *s, const void *hash, size_t hlen,
                                          once_refresh **out, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_REFRESH_CONSUME, consume(s, hash, hlen, out, ticket));
}

/* ---- successor ---- */

static bool payload_ok(const once_store *s, const void *payload, size_t n)
{
	return (payload != NULL || n == 0) && n <= s->opt.max_record_len;
}

static once_status remember(once_store *s, const void *hash, size_t hlen, const void *succ, size_t n,
                            once_ticket *ticket)
{
	struct once__key k;
	/* An empty successor would read back as "a successor of no bytes"; the
	 * caller has nothing to remember, so it is refused like rotate's
	 * absent payload is simply absent. */
	if (n == 0 || !payload_ok(s, succ, n) ||
	    once__key_make(s, ONCE_TBL_REFRESH, hash, hlen, &k) != ONCE_OK)
		return ONCE_INVALID;
	if (!s->has_successor_key)
		return ONCE_NO_KEY;
	once_status st = once__wal_gate(s);
	if (st != ONCE_OK)
		return st;
	struct once__sealed *sealed = once__seal(s, hash, hlen, succ, n);
	if (sealed == NULL)
		return ONCE_NOMEM;
	st = ONCE_NOT_FOUND;
	uint64_t seq = 0;
	urcu_bp_read_lock();
	struct once__entry *e = live_token(s, &k);
	struct once__consumption *cur =
		e ? atomic_load_explicit(&e->u.refresh.consumed, memory_order_acquire) : NULL;
	/* Only a consumed parent takes a successor; replace the whole
	 * consumption record so readers see old or new, never a mix. */
	while (cur != NULL) {
		struct once__consumption *next = once__consumption_new(s, cur->consumed_at, sealed);
		if (next == NULL) {
			st = ONCE_NOMEM;
			break;
		}
		if (atomic_compare_exchange_strong(&e->u.refresh.consumed, &cur, next)) {
			once__consumption_retire(s, cur);
			sealed = NULL;
			st = once__wal_log(s, ONCE_WAL_REFRESH_SUCCESSOR, e, next, &seq);
			break;
		}
		next->successor = NULL; /* kept for the next try */
		once__consumption_free(next);
	}
	once__read_unlock();
	once__sealed_free(sealed);
	return st == ONCE_OK ? once__wal_finish(s, seq, ticket) : st;
}

once_status once__mem_refresh_remember(once_store *s, const void *hash, size_t hlen,
                                                     const void *succ, size_t n, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_REFRESH_SUCCESSOR, remember(s, hash, hlen, succ, n, ticket));
}

/* ---- rotation ---- */

struct rotation {
	struct once__key parent, child, fam;
	struct once__entry *child_entry;       /* owned until linked */
	bool child_linked;                     /* pending in the table */
	struct once__consumption *consumption; /* the parent's, if we win */
	once_refresh *parent_copy;             /* *parent_out if we win */
	uint64_t seq;                          /* the rotation's log record */
};

static once_status rotate_prepare(once_store *s, struct rotation *rt, const void *parent, size_t plen,
                                  const void *child, size_t clen, const once_refresh *succ,
                                  const void *payload, size_t n)
{
	if (!record_valid(succ) || !payload_ok(s, payload, n) ||
	    once__key_make(s, ONCE_TBL_REFRESH, parent, plen, &rt->parent) != ONCE_OK ||
	    once__key_make(s, ONCE_TBL_REFRESH, child, clen, &rt->child) != ONCE_OK ||
	    family_key(s, succ->family_id, &rt->fam) != ONCE_OK ||
	    (plen == clen && memcmp(parent, child, plen) == 0))
		return ONCE_INVALID;
	bool has_payload = payload != NULL || n > 0;
	if (has_payload && !s->has_successor_key)
		return ONCE_NO_KEY;
	once_status st = build_token(s, &rt->child, succ, &rt->child_entry);
	if (st != ONCE_OK)
		return st;
	struct once__sealed *sealed = has_payload ? once__seal(s, parent, plen, payload, n) : NULL;
	rt->consumption = once__consumption_new(s, once__now(s), sealed);
	if ((has_payload && sealed == NULL) || rt->consumption == NULL) {
		once__sealed_free(sealed);
		return ONCE_NOMEM; /* rotate_finish frees the rest */
	}
	return ONCE_OK;
}

/*
 * Inside one read-side section:
 *   1. the parent must read as live and be unconsumed, in the child's
 *      family; the caller's copy of it is made now, so nothing can fail
 *      after the CAS;
 *   2. the child is linked PENDING (key taken, invisible to reads), then
 *      the family the parent joined (its pointer: no lookup) is made to
 *      last for the child's lifetime, unless it is being retired;
 *   3. the family must still be unrevoked (R2);
 *   4. the CAS on the parent's consumption decides (R1); it installs the
 *      consumption that carries the sealed successor;
 *   5. only the winner commits the child.
 * Any exit before 5 leaves the pending child to rotate_finish, which
 * unlinks it (R3).
 */
static once_status rotate_locked(once_store *s, struct rotation *rt, once_refresh **parent_out)
{
	struct once__entry *p = live_token(s, &rt->parent);
	if (p == NULL)
		return ONCE_NOT_FOUND;
	if (strcmp(p->u.refresh.record->family_id, rt->child_entry->u.refresh.record->family_id) != 0)
		return ONCE_INVALID; /* a successor joins its parent's family */
	struct once__consumption *seen = atomic_load_explicit(&p->u.refresh.consumed, memory_order_acquire);
	if (seen != NULL)
		goto spent;
	once_status st = copy_out(s, p, NULL, parent_out ? &rt->parent_copy : NULL);
	if (st != ONCE_OK)
		return st;

	struct once__entry *c = rt->child_entry, *f;
	st = once__insert_pending(s, &rt->child, c); /* frees c unless OK */
	rt->child_entry = NULL;
	if (st != ONCE_OK)
		return st;
	rt->child_entry = c;
	rt->child_linked = true;
	/* The parent's family, without a lookup: made to last as long as the
	 * child, unless the sweep is retiring it (then the parent expired). */
	f = p->u.refresh.family;
	if (!once__family_extend(f, atomic_load(&c->expires_at)))
		return ONCE_NOT_FOUND;
	if (once__family_is_revoked(f))
		return ONCE_REVOKED;
	join(c, f);
	if (!atomic_compare_exchange_strong(&p->u.refresh.consumed, &seen, rt->consumption))
		goto spent; /* lost: report the winner's successor */
	struct once__wal_rotation record = {.consumption = rt->consumption, .child = c};
	rt->consumption = NULL; /* the parent owns it now */
	/* One record for both effects.  If it cannot be logged, the parent
	 * stays consumed (fail closed) and rotate_finish unlinks the child. */
	st = once__wal_log(s, ONCE_WAL_REFRESH_ROTATE, p, &record, &rt->seq);
	if (st != ONCE_OK)
		return st;
	once__pending_commit(s, c, ONCE_REFRESH_LIVE);
	rt->child_entry = NULL;
	rt->child_linked = false;
	if (parent_out != NULL)
		*parent_out = rt->parent_copy;
	rt->parent_copy = NULL;
	return ONCE_OK;

spent:
	st = copy_out(s, p, seen, parent_out);
	return st == ONCE_OK ? ONCE_SPENT : st;
}

/* Releases whatever the rotation still owns (all of it, unless it won). */
static void rotate_finish(once_store *s, struct rotation *rt)
{
	if (rt->child_linked)
		once__pending_abort(s, rt->child_entry);
	else if (rt->child_entry != NULL)
		once__entry_free_now(rt->child_entry);
	once__consumption_free(rt->consumption);
	once_free(rt->parent_copy);
}

static once_status rotate(once_store *s, const void *parent, size_t plen, const void *child, size_t clen,
                          const once_refresh *succ, const void *payload, size_t n,
                          once_refresh **parent_out, once_ticket *ticket)
{
	struct rotation rt = {0};
	once_status st = once__wal_gate(s);
	if (st == ONCE_OK)
		st = rotate_prepare(s, &rt, parent, plen, child, clen, succ, payload, n);
	urcu_bp_read_lock();
	if (st == ONCE_OK)
		st = rotate_locked(s, &rt, parent_out);
	rotate_finish(s, &rt); /* a pending child is unlinked inside the section */
	once__read_unlock();
	if (st == ONCE_OK && (st = once__wal_finish(s, rt.seq, ticket)) != ONCE_OK && parent_out != NULL) {
		once_free(*parent_out); /* rotated in memory (fail closed), not acknowledged */
		*parent_out = NULL;
	}
	return st;
}

once_status once__mem_refresh_rotate(once_store *s, const void *parent, size_t plen,
                                         const void *child, size_t clen, const once_refresh *succ,
                                         const void *payload, size_t n, once_refresh **parent_out, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_REFRESH_ROTATE,
	                   rotate(s, parent, plen, child, clen, succ, payload, n, parent_out, ticket));
}

/* ---- revocation ---- */

static once_status revoke(once_store *s, const void *family_id, size_t flen, once_ticket *ticket)
{
	struct once__key fam;
	if (once__key_make(s, ONCE_TBL_REFRESH_FAMILY, family_id, flen, &fam) != ONCE_OK)
		return ONCE_INVALID;
	return once__family_revoke_logged(s, &fam, ONCE_WAL_REFRESH_REVOKE, ticket);
}

once_status once__mem_refresh_revoke(once_store *s, const void *family_id, size_t flen, once_ticket *ticket)
{
	if (s == NULL)
		return ONCE_INVALID;
	return once__count(s, ONCE_OP_REFRESH_REVOKE, revoke(s, family_id, flen, ticket));
}

