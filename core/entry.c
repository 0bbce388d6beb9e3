/*
 * core/entry.c - allocating, publishing and freeing table entries.
 *
 * once__insert is the one way an entry enters a table, so capacity, the
 * expiry wheel and byte accounting cannot be forgotten by a kind.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "persist.h"

/* Bytes of the entry's own block: header, key and the kind's tail. */
static size_t entry_size(const struct once__entry *e)
{
	return sizeof *e + e->key_len + e->tail_len;
}

/* Bytes of the block of an entry with key k and a tail of `tail` bytes. */
static size_t entry_bytes_for(const struct once__key *k, size_t tail)
{
	return sizeof(struct once__entry) + k->len + tail;
}

/* Fills in a fresh entry block: unpublished, with its key. */
static struct once__entry *entry_init(void *block, const struct once__key *k, int64_t expires_at, size_t tail)
{
	struct once__entry *e = block;
	memset(e, 0, sizeof *e);
	cds_lfht_node_init(&e->node);
	/* Every entry's expiry starts in [ONCE_TIME_MIN, ONCE_TIME_MAX], the
	 * recovered ones too (a log may hold older or odd values): never
	 * ONCE_FAMILY_DEAD (internal.h, "Times"). */
	atomic_init(&e->expires_at, once__time_clamp(expires_at));
	atomic_init(&e->state, 0); /* unpublished: match() skips it */
	e->table = (uint8_t)k->table;
	e->key_len = (uint16_t)k->len; /* max_key_len <= 65535, checked at open */
	e->shard = (uint16_t)k->shard;  /* nshards <= 4096, checked at open */
	e->tail_len = (uint16_t)tail;
	memcpy(e->key, k->data, k->len);
	return e;
}

struct once__entry *once__entry_new(once_store *s, const struct once__key *k, int64_t expires_at,
                                    size_t tail)
{
	if (tail > UINT16_MAX)
		return NULL;
	void *block = once__slab_alloc(&s->slab, entry_bytes_for(k, tail));
	return block != NULL ? entry_init(block, k, expires_at, tail) : NULL;
}

struct once__consumption *once__consumption_new(once_store *s, int64_t at, struct once__sealed *successor)
{
	struct once__consumption *c = once__slab_alloc(&s->slab, sizeof *c);
	if (c != NULL) {
		c->consumed_at = at;
		c->successor = successor;
	}
	return c;
}

struct once__sealed *once__sealed_new(once_store *s, size_t ct_len)
{
	if (ct_len > UINT32_MAX - sizeof(struct once__sealed))
		return NULL;
	struct once__sealed *b = once__slab_alloc(&s->slab, sizeof *b + ct_len);
	if (b != NULL)
		b->len = (uint32_t)ct_len;
	return b;
}

void once__sealed_free(struct once__sealed *b)
{
	if (b != NULL)
		once__slab_free(b, sizeof *b + b->len);
}

void once__consumption_free(struct once__consumption *c)
{
	if (c == NULL)
		return;
	once__sealed_free(c->successor);
	once__slab_free(c, sizeof *c);
}

struct once__entry *once__entry_with_record(once_store *s, const struct once__key *k, int64_t expires_at,
                                            size_t size, void **block)
{
	/* Records are packed for max_align_t (record.c); slab blocks are
	 * 16-byte aligned, as malloc's are. */
	_Static_assert(alignof(max_align_t) <= ONCE_SLAB_GRAIN, "slab blocks hold any struct");
	if (size > UINT32_MAX)
		return NULL;
	/* Both blocks under one slab lock, before either is written: a
	 * locked instruction waits for the stores before it, and stores to
	 * fresh memory miss.  So nothing waits until the table's own atomics,
	 * and the stores to both blocks miss in parallel. */
	void *entry, *r;
	if (once__slab_alloc_pair(&s->slab, entry_bytes_for(k, 0), &entry, size, &r) != 0)
		return NULL;
	struct once__entry *e = entry_init(entry, k, expires_at, 0);
	e->record_size = (uint32_t)size;
	*block = r;
	return e;
}

size_t once__entry_bytes(const struct once__entry *e)
{
	return once__slab_block_size(entry_size(e)) +
	       (e->record_size ? once__slab_block_size(e->record_size) : 0);
}

static void *record_of(struct once__entry *e)
{
	switch (e->table) {
	case ONCE_TBL_CODE: return e->u.code.record;
	case ONCE_TBL_REFRESH: return e->u.refresh.record;
	default: return NULL;
	}
}

void once__entry_free_now(struct once__entry *e)
{
	/* A refresh token's consumption (and sealed successor) is its own;
	 * its family reference is dropped, which may free the family. */
	if (e->table == ONCE_TBL_REFRESH) {
		once__consumption_free(atomic_load_explicit(&e->u.refresh.consumed, memory_order_relaxed));
		/* Committed tokens and pending ones that joined hold a family
		 * reference; the others (and recovered ones not linked yet)
		 * hold none, and have no family pointer. */
		if (e->flags & ONCE_ENTRY_HOLDS_FAMILY)
			once__family_unref(e->u.refresh.family);
	}
	/* In one slab lock when both came from one arena, as a pair does. */
	once__slab_free_pair(e->record_size ? record_of(e) : NULL, e->record_size, e, entry_size(e));
}

#if defined(__SANITIZE_THREAD__)
char once__tsan_grace_period; /* internal.h, once__read_unlock */
#endif

static void consumption_after_grace_period(struct rcu_head *head)
{
	ONCE_TSAN_ACQUIRE();
	once__consumption_free(caa_container_of(head, struct once__consumption, rcu));
}

void once__consumption_retire(once_store *s, struct once__consumption *c)
{
	atomic_fetch_add_explicit(&s->retired, 1, memory_order_relaxed);
	urcu_bp_call_rcu(&c->rcu, consumption_after_grace_period);
}

/* Families go through their reference count (the table's reference); the
 * rest are freed. */
static void free_after_grace_period(struct rcu_head *head)
{
	ONCE_TSAN_ACQUIRE();
	struct once__entry *e = caa_container_of(head, struct once__entry, link.rcu);
	if (once__is_family_table((enum once__table)e->table))
		once__family_unref(e);
	else
		once__entry_free_now(e);
}

void once__entry_retire(once_store *s, struct once__entry *e)
{
	atomic_fetch_add_explicit(&s->retired, 1, memory_order_relaxed);
	urcu_bp_call_rcu(&e->link.rcu, free_after_grace_period);
}

/* On a full table, tell a duplicate (EXISTS) from real fullness: the
 * duplicate is the more precise answer and the caller acts on it. */
static once_status full_or_exists(once_store *s, const struct once__key *k, struct once__entry **existing)
{
	urcu_bp_read_lock();
	struct once__entry *got = once__table_lookup(s, k);
	once__read_unlock();
	if (existing != NULL)
		*existing = got; /* valid: the caller's own section covers it */
	return got != NULL ? ONCE_EXISTS : ONCE_FULL;
}

/* Reserves capacity and links e into its table in `state`; on success the
 * caller is inside a read-side section it must end.  On any other status
 * the entry is freed and the section already ended. */
static once_status link_entry(once_store *s, const struct once__key *k, struct once__entry *e,
                              uint32_t state, struct once__entry **existing)
{
	uint64_t live = once__capacity_reserve(s, k->table);
	if (live == 0) {
		once__entry_free_now(e);
		return full_or_exists(s, k, existing);
	}
	/* Release: every field written above becomes visible to a reader whose
	 * match() acquire-loads this state (see table.c). */
	atomic_store_explicit(&e->state, state, memory_order_release);

	urcu_bp_read_lock();
	struct once__entry *got = once__table_add_unique(s, k, e);
	if (got != e) {
		once__read_unlock();
		once__capacity_release(s, k->table);
		/* Never visible to anyone: add_unique failed, so no grace period. */
		once__entry_free_now(e);
		if (existing != NULL)
			*existing = got; /* valid: the caller's own section covers it */
		return ONCE_EXISTS;
	}
	once__bytes_add(s, k->table, (int64_t)once__entry_bytes(e));
	/* More than one entry per bucket: the kind's tables should grow
	 * (grow.c; grow_at shares the line the reservation just wrote). */
	if (live > atomic_load_explicit(&s->cap[k->table].grow_at, memory_order_relaxed))
		once__grow_request(s, k->table);
	return ONCE_OK;
}

once_status once__insert(once_store *s, const struct once__key *k, struct once__entry *e,
                         uint32_t initial_state)
{
	once_status st = link_entry(s, k, e, initial_state, NULL);
	if (st != ONCE_OK)
		return st;
	once__wheel_push(&s->shards[k->shard].wheel, e);
	once__read_unlock();
	return ONCE_OK;
}

once_status once__insert_or_get(once_store *s, const struct once__key *k, struct once__entry *e,
                                uint32_t state, struct once__entry **existing)
{
	*existing = NULL;
	once_status st = link_entry(s, k, e, state, existing);
	if (st != ONCE_OK)
		return st;
	once__wheel_push(&s->shards[k->shard].wheel, e);
	once__read_unlock();
	return ONCE_OK;
}

once_status once__insert_pending(once_store *s, const struct once__key *k, struct once__entry *e)
{
	once_status st = link_entry(s, k, e, ONCE_PENDING, NULL);
	if (st == ONCE_OK)
		once__read_unlock(); /* the caller's own section still covers e */
	return st;
}

void once__pending_commit(once_store *s, struct once__entry *e, uint32_t state)
{
	atomic_store_explicit(&e->state, state, memory_order_release);
	once__wheel_push(&s->shards[e->shard].wheel, e);
}

bool once__unlink(once_store *s, struct once__entry *e)
{
	if (!once__table_del(s, e))
		return false;
	once__capacity_release(s, (enum once__table)e->table);
	once__bytes_add(s, (enum once__table)e->table, -(int64_t)once__entry_bytes(e));
	/* Readers may have found it: freed after a grace period. */
	once__entry_retire(s, e);
	return true;
}

void once__pending_abort(once_store *s, struct once__entry *e)
{
	once__unlink(s, e);
}

once_status once__insert_logged(once_store *s, const struct once__key *k, struct once__entry *e,
                                uint32_t state, uint8_t type, once_ticket *ticket)
{
	if (s->persist == NULL)
		return once__insert(s, k, e, state);
	once_status st = once__wal_gate(s);
	if (st != ONCE_OK) {
		once__entry_free_now(e);
		return st;
	}
	uint64_t seq = 0;
	urcu_bp_read_lock();
	st = once__insert_pending(s, k, e); /* frees e unless OK */
	if (st == ONCE_OK) {
		/* Appended while pending, committed after: a snapshot waits for
		 * the commit, and no later change of e can precede this record. */
		st = once__wal_log(s, type, e, NULL, &seq);
		if (st == ONCE_OK)
			once__pending_commit(s, e, state);
		else
			once__pending_abort(s, e);
	}
	once__read_unlock();
	return st == ONCE_OK ? once__wal_finish(s, seq, ticket) : st;
}
