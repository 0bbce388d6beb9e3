/*
 * core/restore.c - rebuilding the tables from decoded log and snapshot
 * records (recovery, in once_open, before any caller can see the store).
 *
 * Recovery is single-threaded, so it writes states directly instead of
 * racing with CAS; it never evicts and never answers FULL (what was
 * acknowledged comes back even if the capacities were lowered since).
 *
 * Applying is idempotent and monotone, which is what makes a fuzzy
 * snapshot exact (wal/snapshot.c): a snapshot may already hold the
 * effect of records logged after its start, and replaying them again
 * changes nothing.
 *   - An insert record (CODE_PUT, REFRESH_INSERT, NONCE_ISSUE,
 *     REPLAY_RECORD, ACCESS_RECORD, a rotation's child) replaces whatever
 *     entry has its key: the store logs an insert only when the key was
 *     free, so an older entry under it had been swept, and every later
 *     change of the new entry follows in the log.
 *   - State changes only move forward (LIVE < TAKEN < FINALIZED, FRESH <
 *     USED, unconsumed < consumed); one for a missing key is a no-op (the
 *     entry expired and was swept).
 *   - Families carry incarnations (family.c): a record for an older
 *     incarnation than the one present is about a family that was swept
 *     and created again, and leaves the newer one alone; a newer one
 *     replaces it.
 * Entries are linked without the expiry wheel; once__restore_finish then
 * drops every entry already expired and puts the rest on the wheel.
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "format.h"
#include "internal.h"

#define RESTORE_MAX_RECORD (32u << 20) /* beyond any max_record_len */

static once_status key_of(once_store *s, enum once__table t, const void *key, size_t len,
                          struct once__key *k)
{
	return once__key_make_stored(s, t, key, len, k) == ONCE_OK ? ONCE_OK : ONCE_CORRUPT;
}

/* Recovery holds one read-side section throughout (wal/recover.c), and
 * nothing else runs: an entry found stays valid. */
static struct once__entry *find(once_store *s, const struct once__key *k)
{
	return once__table_lookup(s, k);
}

/*
 * Links e in `state`, replacing any entry under its key (one table walk).
 * Every placed entry goes on s->restored; a replaced one gets state 0 there
 * (no lookup matches state 0), and once__restore_finish frees it.
 */
static once_status place(once_store *s, const struct once__key *k, struct once__entry *e, uint32_t state)
{
	atomic_fetch_add_explicit(&s->cap[k->table].live, 1, memory_order_relaxed);
	once__bytes_add(s, k->table, (int64_t)once__entry_bytes(e));
	atomic_store_explicit(&e->state, state, memory_order_release);
	e->link.wheel_next = s->restored;
	s->restored = e;
	struct once__entry *old = once__table_add_replace(s, k, e);
	if (old != NULL) {
		atomic_store_explicit(&old->state, 0, memory_order_relaxed);
		once__capacity_release(s, k->table);
		once__bytes_add(s, k->table, -(int64_t)once__entry_bytes(old));
	}
	return ONCE_OK;
}

static void note_incarnation(once_store *s, uint64_t inc)
{
	if (inc >= atomic_load(&s->next_incarnation))
		atomic_store(&s->next_incarnation, inc);
}

/* The family of table t with this id and incarnation, created or updated
 * (expiry raised, revoked flag set) as the record says; NULL when a newer
 * incarnation is present. */
static once_status family(once_store *s, enum once__table t, const void *id, size_t len, uint64_t inc,
                          int64_t expires_at, bool revoked)
{
	struct once__key k;
	if (key_of(s, t, id, len, &k) != ONCE_OK || inc == 0)
		return ONCE_CORRUPT;
	note_incarnation(s, inc);
	struct once__entry *f = find(s, &k);
	if (f != NULL && f->u.family.incarnation > inc)
		return ONCE_OK;
	if (f != NULL && f->u.family.incarnation == inc) {
		expires_at = once__time_clamp(expires_at); /* as once__entry_new does */
		if (atomic_load(&f->expires_at) < expires_at)
			atomic_store(&f->expires_at, expires_at);
		if (revoked)
			atomic_store(&f->state, ONCE_FAMILY_REVOKED);
		return ONCE_OK;
	}
	struct once__entry *n = once__entry_new(s, &k, expires_at, 0);
	if (n == NULL)
		return ONCE_NOMEM;
	n->u.family.incarnation = inc;
	atomic_init(&n->u.family.refs, 1); /* the table's */
	return place(s, &k, n, revoked ? ONCE_FAMILY_REVOKED : ONCE_FAMILY_LIVE);
}

static struct once__sealed *sealed_from(once_store *s, const struct once__wal_op *op)
{
	if (op->sealed == NULL)
		return NULL;
	size_t ct = op->sealed_len - 24;
	struct once__sealed *b = once__sealed_new(s, ct);
	if (b != NULL) {
		memcpy(b->nonce, op->sealed, 24);
		memcpy(b->ct, op->sealed + 24, ct);
	}
	return b;
}

static once_status code_put(once_store *s, const struct once__wal_op *op)
{
	struct once__key k;
	if (key_of(s, ONCE_TBL_CODE, op->key, op->key_len, &k) != ONCE_OK)
		return ONCE_CORRUPT;
	struct once__packing pk;
	size_t size = once__code_prepare(&pk, &op->code, RESTORE_MAX_RECORD);
	if (size == 0)
		return ONCE_CORRUPT;
	void *block;
	struct once__entry *e = once__entry_with_record(s, &k, op->code.expires_at, size, &block);
	if (e == NULL)
		return ONCE_NOMEM;
	e->u.code.record = once__code_place(block, &pk, &op->code);
	return place(s, &k, e, ONCE_CODE_LIVE);
}

/* Moves entry e of table t under op->key forward to at least `state`. */
static struct once__entry *advance(once_store *s, enum once__table t, const struct once__wal_op *op,
                                   uint32_t state)
{
	struct once__key k;
	if (key_of(s, t, op->key, op->key_len, &k) != ONCE_OK)
		return NULL;
	struct once__entry *e = find(s, &k);
	if (e != NULL && atomic_load(&e->state) < state)
		atomic_store(&e->state, state);
	return e;
}

static once_status refresh_token(once_store *s, const unsigned char *key, size_t key_len,
                                 const struct once__wal_op *op)
{
	struct once__key k;
	const once_refresh *r = &op->refresh;
	if (key_of(s, ONCE_TBL_REFRESH, key, key_len, &k) != ONCE_OK)
		return ONCE_CORRUPT;
	once_status st = family(s, ONCE_TBL_REFRESH_FAMILY, r->family_id, strlen(r->family_id),
	                        op->incarnation, r->expires_at, false);
	if (st != ONCE_OK)
		return st;
	struct once__packing pk;
	size_t size = once__refresh_prepare(&pk, r, RESTORE_MAX_RECORD);
	if (size == 0)
		return ONCE_CORRUPT;
	void *block;
	struct once__entry *e = once__entry_with_record(s, &k, r->expires_at, size, &block);
	if (e == NULL)
		return ONCE_NOMEM;
	e->u.refresh.record = once__refresh_place(block, &pk, r);
	/* Linked to its family by once__restore_finish, once every record
	 * is applied (a newer incarnation may still replace the family). */
	e->u.refresh.restored_incarnation = op->incarnation;
	atomic_init(&e->u.refresh.consumed, NULL);
	return place(s, &k, e, ONCE_REFRESH_LIVE);
}

/* Consumes the token under key (if present): a first consumption sets
 * consumed_at and the successor; a later one (REFRESH_SUCCESSOR) replaces
 * only the successor.  `replace_successor` false: keep what is there. */
static once_status consume(once_store *s, const unsigned char *key, size_t key_len, int64_t at,
                           const struct once__wal_op *op, bool replace_successor)
{
	struct once__key k;
	if (key_of(s, ONCE_TBL_REFRESH, key, key_len, &k) != ONCE_OK)
		return ONCE_CORRUPT;
	struct once__entry *e = find(s, &k);
	if (e == NULL)
		return ONCE_OK;
	struct once__consumption *cur = atomic_load(&e->u.refresh.consumed);
	if (cur != NULL && !replace_successor) {
		/* Already consumed: idempotent, but for the time.  A successor
		 * remembered by another thread right behind the consume's CAS
		 * can be logged before the consume record (refresh.c,
		 * remember), and carries no time: the consumption it made
		 * here has consumed_at 0 until this record comes.  Nothing
		 * reads the tables yet, so it is set in place.  (A crash after
		 * the successor record was durable and before the consume
		 * record was written leaves consumed_at 0: the token stays
		 * spent, which is all that matters, with no time.) */
		if (cur->consumed_at == 0)
			cur->consumed_at = at;
		return ONCE_OK;
	}
	struct once__sealed *successor = sealed_from(s, op);
	struct once__consumption *c =
		op->sealed == NULL || successor != NULL
			? once__consumption_new(s, cur ? cur->consumed_at : at, successor)
			: NULL;
	if (c == NULL) {
		once__sealed_free(successor);
		return ONCE_NOMEM;
	}
	atomic_store(&e->u.refresh.consumed, c);
	if (cur != NULL)
		once__consumption_retire(s, cur);
	return ONCE_OK;
}

static once_status access_token(once_store *s, const struct once__wal_op *op)
{
	struct once__key k;
	if (key_of(s, ONCE_TBL_ACCESS, op->key, op->key_len, &k) != ONCE_OK)
		return ONCE_CORRUPT;
	once_status st = family(s, ONCE_TBL_ACCESS_FAMILY, op->family, op->family_len, op->incarnation,
	                        op->expires_at, false);
	if (st != ONCE_OK)
		return st;
	struct once__entry *e = once__entry_new(s, &k, op->expires_at, op->family_len);
	if (e == NULL)
		return ONCE_NOMEM;
	memcpy(e->key + op->key_len, op->family, op->family_len);
	e->u.access.family = e->key + op->key_len;
	e->u.access.family_len = (uint16_t)op->family_len;
	e->u.access.family_incarnation = op->incarnation;
	return place(s, &k, e, ONCE_PRESENT);
}

static once_status simple(once_store *s, enum once__table t, const struct once__wal_op *op,
                          uint32_t state)
{
	struct once__key k;
	if (key_of(s, t, op->key, op->key_len, &k) != ONCE_OK)
		return ONCE_CORRUPT;
	struct once__entry *e = once__entry_new(s, &k, op->expires_at, 0);
	if (e == NULL)
		return ONCE_NOMEM;
	if (t == ONCE_TBL_NONCE)
		e->u.nonce.issued_at = op->at;
	return place(s, &k, e, state);
}

once_status once__restore_apply(once_store *s, const struct once__wal_op *op, int part)
{
	struct once__entry *e;
	switch (op->type) {
	case ONCE_WAL_CODE_PUT:
		return code_put(s, op);
	case ONCE_WAL_CODE_TAKE:
		e = advance(s, ONCE_TBL_CODE, op, ONCE_CODE_TAKEN);
		if (e != NULL && atomic_load(&e->u.code.consumed_at) == 0)
			atomic_store(&e->u.code.consumed_at, op->at);
		return ONCE_OK;
	case ONCE_WAL_CODE_FINALIZE:
		advance(s, ONCE_TBL_CODE, op, ONCE_CODE_FINALIZED);
		return ONCE_OK;
	case ONCE_WAL_ACCESS_RECORD:
		return access_token(s, op);
	case ONCE_WAL_ACCESS_REVOKE:
	case ONCE_WAL_ACCESS_FAMILY:
		return family(s, ONCE_TBL_ACCESS_FAMILY, op->key, op->key_len, op->incarnation,
		              op->expires_at, op->revoked || op->type == ONCE_WAL_ACCESS_REVOKE);
	case ONCE_WAL_REFRESH_REVOKE:
	case ONCE_WAL_REFRESH_FAMILY:
		return family(s, ONCE_TBL_REFRESH_FAMILY, op->key, op->key_len, op->incarnation,
		              op->expires_at, op->revoked || op->type == ONCE_WAL_REFRESH_REVOKE);
	case ONCE_WAL_REFRESH_INSERT:
		return refresh_token(s, op->key, op->key_len, op);
	case ONCE_WAL_REFRESH_CONSUME:
		return consume(s, op->key, op->key_len, op->at, op, false);
	case ONCE_WAL_REFRESH_SUCCESSOR:
		return consume(s, op->key, op->key_len, 0, op, true);
	case ONCE_WAL_REFRESH_ROTATE: {
		/* One record, both effects: the parent consumed with its
		 * successor, and the child in the family (applied apart when
		 * recovery orders by key: wal/batch.h). */
		once_status st = ONCE_OK;
		if (part != ONCE_RESTORE_ROTATE_CHILD)
			st = consume(s, op->key, op->key_len, op->at, op, false);
		if (st == ONCE_OK && part != ONCE_RESTORE_ROTATE_PARENT)
			st = refresh_token(s, op->child, op->child_len, op);
		return st;
	}
	case ONCE_WAL_NONCE_ISSUE:
		return simple(s, ONCE_TBL_NONCE, op, ONCE_NONCE_FRESH);
	case ONCE_WAL_NONCE_ACCEPT:
		advance(s, ONCE_TBL_NONCE, op, ONCE_NONCE_USED);
		return ONCE_OK;
	case ONCE_WAL_REPLAY_RECORD:
		return simple(s, ONCE_TBL_REPLAY, op, ONCE_PRESENT);
	default:
		return ONCE_CORRUPT;
	}
}

/* The table a record's key (part: of a rotation) belongs to. */
static enum once__table table_of_record(uint8_t type, int part)
{
	switch (type) {
	case ONCE_WAL_CODE_PUT:
	case ONCE_WAL_CODE_TAKE:
	case ONCE_WAL_CODE_FINALIZE: return ONCE_TBL_CODE;
	case ONCE_WAL_ACCESS_RECORD: return ONCE_TBL_ACCESS;
	case ONCE_WAL_ACCESS_REVOKE:
	case ONCE_WAL_ACCESS_FAMILY: return ONCE_TBL_ACCESS_FAMILY;
	case ONCE_WAL_REFRESH_REVOKE:
	case ONCE_WAL_REFRESH_FAMILY: return ONCE_TBL_REFRESH_FAMILY;
	case ONCE_WAL_NONCE_ISSUE:
	case ONCE_WAL_NONCE_ACCEPT: return ONCE_TBL_NONCE;
	case ONCE_WAL_REPLAY_RECORD: return ONCE_TBL_REPLAY;
	default: (void)part; return ONCE_TBL_REFRESH; /* insert, consume, successor, rotate */
	}
}

static unsigned bits_for(uint64_t n)
{
	unsigned b = 0;
	while ((UINT64_C(1) << b) < n)
		b++;
	return b;
}

/*
 * (table, shard, bucket) in 32 bits: 3 bits of table, then the shard, then
 * as many of the bucket index's bits as fit (its high ones: neighbours
 * stay together).  cds_lfht's bucket is the hash's low bits (table.c).
 */
bool once__restore_order(once_store *s, const struct once__wal_op *op, int part, uint32_t *order)
{
	enum once__table t = table_of_record(op->type, part);
	const unsigned char *key = part == ONCE_RESTORE_ROTATE_CHILD ? op->child : op->key;
	size_t len = part == ONCE_RESTORE_ROTATE_CHILD ? op->child_len : op->key_len;
	struct once__key k;
	if (op->type == ONCE_WAL_SNAPSHOT_END || key_of(s, t, key, len, &k) != ONCE_OK)
		return false;
	unsigned shard_bits = bits_for(s->nshards);
	unsigned room = 29 - shard_bits; /* nshards <= 4096: room >= 17 */
	uint64_t per_shard = s->cap[t].buckets / s->nshards;
	unsigned bucket_bits = bits_for(per_shard);
	uint64_t bucket = k.hash & (per_shard - 1);
	if (bucket_bits > room)
		bucket >>= bucket_bits - room;
	*order = (uint32_t)t << 29 | k.shard << room | (uint32_t)bucket;
	return true;
}

/*
 * A recovered refresh token joins the family its record names (id and
 * incarnation), as a live insert does: a reference, and the family's
 * expiry raised to the token's, so the family outlives it.  false: that
 * family is not there (swept, or replaced by a newer incarnation): the
 * token expired with it.
 */
static bool link_token(once_store *s, struct once__entry *e)
{
	struct once__key fk;
	const char *id = e->u.refresh.record->family_id;
	if (once__key_make_stored(s, ONCE_TBL_REFRESH_FAMILY, id, strlen(id), &fk) != ONCE_OK)
		return false;
	struct once__entry *f = find(s, &fk);
	if (f == NULL || f->u.family.incarnation != e->u.refresh.restored_incarnation)
		return false;
	int64_t exp = atomic_load(&e->expires_at);
	if (atomic_load(&f->expires_at) < exp)
		atomic_store(&f->expires_at, exp);
	once__family_ref(f);
	e->u.refresh.family = f;
	e->flags |= ONCE_ENTRY_HOLDS_FAMILY;
	return true;
}

/*
 * Two passes over the entries placed (not over the tables: their buckets
 * can outnumber the entries): refresh tokens join their families first,
 * so a family's expiry covers its tokens before any expiry is judged.
 */
uint64_t once__restore_finish(once_store *s, int64_t now)
{
	uint64_t dropped = 0;
	struct once__entry *e = s->restored;
	s->restored = NULL;
	urcu_bp_read_lock();
	struct once__entry *keep = NULL;
	while (e != NULL) {
		struct once__entry *next = e->link.wheel_next;
		if (atomic_load_explicit(&e->state, memory_order_relaxed) == 0) {
			once__entry_retire(s, e); /* replaced: already unlinked and uncounted */
		} else if (e->table == ONCE_TBL_REFRESH && !link_token(s, e)) {
			dropped += once__unlink(s, e);
		} else {
			e->link.wheel_next = keep;
			keep = e;
		}
		e = next;
	}
	for (e = keep; e != NULL;) {
		struct once__entry *next = e->link.wheel_next;
		if (atomic_load(&e->expires_at) < now)
			dropped += once__unlink(s, e);
		else
			once__wheel_push(&s->shards[e->shard].wheel, e);
		e = next;
	}
	once__read_unlock();
	return dropped;
}

void once__restore_abort(once_store *s)
{
	struct once__entry *e = s->restored;
	s->restored = NULL;
	while (e != NULL) {
		struct once__entry *next = e->link.wheel_next;
		if (atomic_load_explicit(&e->state, memory_order_relaxed) == 0)
			once__entry_retire(s, e); /* unlinked: the table teardown will not see it */
		e = next;
	}
}
