/*
 * core/internal.h - types and once__ functions shared inside the library.
 *
 * Nothing here is part of the public API (include/oncestore.h is).
 *
 * Shape of a store
 * ----------------
 * A store is split into `nshards` shards.  A key's 64-bit hash picks its
 * shard (high 32 bits) and its bucket inside that shard's table (low bits,
 * which cds_lfht uses), so the two choices are independent.  Each shard owns
 * one cds_lfht per table kind (codes, access tokens and their families,
 * refresh tokens and their families, nonces, replays) and one expiry wheel
 * for all of them.
 *
 * Entry lifecycle
 * ---------------
 *   allocate -> fill every field -> reserve capacity -> store `state` with
 *   release -> cds_lfht_add_unique (publishes) -> push on the expiry wheel
 *   ... single-use transitions are CAS on `state` (or, for refresh tokens,
 *   on the consumption pointer) ...
 *   sweep: cds_lfht_del -> release capacity -> call_rcu(free)
 * Two-phase inserts (refresh and access tokens) publish ONCE_PENDING first
 * and commit later (entry.c).  A committed entry leaves its table only
 * through the sweep (or once_close), after it is popped from the wheel, so
 * it is on the wheel exactly once and freed exactly once (expiry.c W1, W2).
 *
 * Readers load `state` with acquire before reading any other field of an
 * entry (see table.c match()).  That pairs with the release store above and
 * makes publication visible to ThreadSanitizer too, which cannot see
 * liburcu's inline-assembly barriers.
 */
#ifndef ONCE_CORE_INTERNAL_H
#define ONCE_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urcu-bp.h>
#include <urcu/rculfhash.h>

#include "../api/engine.h"
#include "oncestore.h"
#include "seal.h"
#include "slab.h"

/*
 * RCU read-side sections end with once__read_unlock, not urcu_bp_read_unlock.
 * Under ThreadSanitizer it first releases a sync object that every RCU
 * callback acquires before it frees (entry.c): TSan cannot see a grace
 * period (liburcu's barriers are inline assembly, membarrier and futexes),
 * so without this it reports each free in the call_rcu thread against the
 * readers' earlier accesses; those reports are suppressed (tests/tsan.supp)
 * but still cost TSan a search over every address it reported before,
 * which made a sweep-heavy race test take minutes now and then.  The model
 * is exact for RCU: every section that could see a block ended, and so
 * released, before the grace period that precedes its callback.
 */
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
extern char once__tsan_grace_period;
#define ONCE_TSAN_RELEASE() __tsan_release(&once__tsan_grace_period)
#define ONCE_TSAN_ACQUIRE() __tsan_acquire(&once__tsan_grace_period)
#else
#define ONCE_TSAN_RELEASE() ((void)0)
#define ONCE_TSAN_ACQUIRE() ((void)0)
#endif

static inline void once__read_unlock(void)
{
	ONCE_TSAN_RELEASE();
	urcu_bp_read_unlock();
}

/* One hash table per kind in every shard. */
enum once__table {
	ONCE_TBL_CODE = 0,
	ONCE_TBL_ACCESS,        /* access tokens minted from code families */
	ONCE_TBL_ACCESS_FAMILY, /* their families: one revoked flag each */
	ONCE_TBL_REFRESH,        /* refresh tokens, by token hash */
	ONCE_TBL_REFRESH_FAMILY, /* refresh families: one revoked flag each */
	ONCE_TBL_NONCE,
	ONCE_TBL_REPLAY,
	ONCE_TBL_COUNT
};

/* Entry states. 0 is never a published state. */
enum {
	ONCE_CODE_LIVE = 1,      /* put, not presented yet */
	ONCE_CODE_TAKEN = 2,     /* claimed by exactly one take */
	ONCE_CODE_FINALIZED = 3, /* redeemed: a later take is a replay */

	ONCE_NONCE_FRESH = 1,
	ONCE_NONCE_USED = 2,

	ONCE_PRESENT = 1, /* replay-cache and access-token entries */

	ONCE_FAMILY_LIVE = 1,
	ONCE_FAMILY_REVOKED = 2, /* sticky: never goes back to LIVE */

	ONCE_REFRESH_LIVE = 1, /* consumed or not: see u.refresh.consumed */

	/* Linked but not committed (refresh tokens, access tokens): the key is
	 * taken, so a concurrent insert of it gets EXISTS, but reads skip it. */
	ONCE_PENDING = 4,
};

/* A refresh successor payload, sealed (seal.c). */
struct once__sealed {
	uint32_t len; /* ciphertext bytes, tag included */
	unsigned char nonce[24];
	unsigned char ct[];
};

/* How a refresh token was consumed.  Installed by one CAS from NULL (the
 * single-use decision), replaced whole by remember_successor; a replaced
 * one is freed after a grace period. */
struct once__consumption {
	struct rcu_head rcu;
	int64_t consumed_at;
	struct once__sealed *successor; /* NULL when none was remembered */
};

/* A family whose expires_at holds this is being swept: writers must not
 * extend it and must wait for it to leave the table (family.c). */
#define ONCE_FAMILY_DEAD INT64_MIN

/*
 * Times (oncestore.h, "Times").  Every time inside the store lies in
 * [ONCE_TIME_MIN, ONCE_TIME_MAX]: the clock's reading is clamped into it
 * (once__now), a caller's expiry or ttl outside it is refused, sums
 * saturate at ONCE_TIME_MAX, and every entry's expiry is clamped once more
 * where it is created (once__entry_new), recovery included.  So the
 * difference of two times and a time plus or minus one second fit in
 * int64_t, a time plus a ttl goes through once__time_add (saturating), and
 * no expiry can equal ONCE_FAMILY_DEAD or 0 (the records' "never").
 */
_Static_assert(ONCE_TIME_MIN > 0 && ONCE_FAMILY_DEAD < ONCE_TIME_MIN,
               "times must not collide with 0 (never) or ONCE_FAMILY_DEAD");
_Static_assert(ONCE_TIME_MAX < INT64_MAX && ONCE_TTL_MAX <= ONCE_TIME_MAX,
               "a time plus one second must fit in int64_t");

static inline int64_t once__time_clamp(int64_t t)
{
	return t < ONCE_TIME_MIN ? ONCE_TIME_MIN : t > ONCE_TIME_MAX ? ONCE_TIME_MAX : t;
}

/* An expiry a caller may give: [ONCE_TIME_MIN, ONCE_TIME_MAX]. */
static inline bool once__time_valid(int64_t t)
{
	return t >= ONCE_TIME_MIN && t <= ONCE_TIME_MAX;
}

/* A ttl a caller may give: [1, ONCE_TTL_MAX]. */
static inline bool once__ttl_valid(int64_t ttl)
{
	return ttl >= 1 && ttl <= ONCE_TTL_MAX;
}

/* t + d, saturated at ONCE_TIME_MAX; t is clamped into the range and d
 * into [0, ONCE_TTL_MAX] first, so it is defined for any arguments. */
static inline int64_t once__time_add(int64_t t, int64_t d)
{
	t = once__time_clamp(t);
	d = d < 0 ? 0 : d > ONCE_TTL_MAX ? ONCE_TTL_MAX : d;
	return d > ONCE_TIME_MAX - t ? ONCE_TIME_MAX : t + d;
}

/*
 * A table entry: what a lookup touches, small, from the store's slab
 * (slab.h).  A code's or refresh token's record is a separate slab block,
 * reached only when the record is read or written out.  80 bytes and the
 * key: a 43-byte key takes a 128-byte block (nonces), an 80-byte jti a
 * 160-byte one (replays).
 *
 * Freeing: an unlinked entry is retired with call_rcu (once__entry_retire);
 * the callback needs no store: slab blocks find their slab through their
 * chunk (slab.h), larger ones are malloc'd.
 */
struct once__entry {
	/* Hot: what every lookup reads. */
	struct cds_lfht_node node;  /* table linkage (first: container_of) */
	_Atomic uint32_t state;     /* per-kind state word; THE single-use CAS */
	uint16_t key_len;
	uint8_t table;              /* enum once__table */
	uint8_t flags;              /* ONCE_ENTRY_* */
	_Atomic int64_t expires_at; /* unix seconds; families: see DEAD */
	uint16_t shard;             /* index of the shard that holds it (< 4096) */
	uint16_t tail_len;          /* bytes after the key (access: family id) */
	uint32_t record_size;       /* bytes of u.code.record / u.refresh.record */
	union {
		struct {
			/* Packed at put in a block of its own (record.c);
			 * immutable after. */
			once_code *record;
			_Atomic int64_t consumed_at;
		} code;
		struct {
			once_refresh *record; /* packed, like codes */
			_Atomic(struct once__consumption *) consumed; /* NULL: unconsumed */
			/* The family it joined (family.c): the token holds a
			 * reference, so the family entry outlives it.  During
			 * recovery, until once__restore_finish links it, this
			 * holds the family's incarnation instead. */
			union {
				struct once__entry *family;
				uint64_t restored_incarnation;
			};
		} refresh;
		struct {
			int64_t issued_at;
		} nonce;
		struct {
			const unsigned char *family; /* points into key[] tail */
			uint64_t family_incarnation; /* of the family it joined */
			uint16_t family_len;
		} access;
		struct {
			/* Unique per store: a family id swept and created again is
			 * another family, and tokens of the old one never join it. */
			uint64_t incarnation;
			/* Refresh families: one reference for the table (dropped
			 * when the sweep retires it) and one per token that joined
			 * it; the last one frees it. */
			_Atomic uint64_t refs; /* tokens may number 2^36 */
		} family;
	} u;
	union {
		/* While published: the expiry-wheel link, owned by the wheel. */
		struct once__entry *wheel_next;
		/* Once unlinked and popped from the wheel: the deferred free. */
		struct rcu_head rcu;
	} link;
	unsigned char key[]; /* key_len bytes, then the kind-specific tail */
};
/* A refresh token holds a reference to u.refresh.family (family.c). */
#define ONCE_ENTRY_HOLDS_FAMILY 1u
_Static_assert(sizeof(struct once__entry) == 80, "entry header: keep it small (issue 10)");

/* A key prepared for lookups: validated, hashed, shard chosen. */
struct once__key {
	const void *data;
	size_t len;
	uint64_t hash;
	uint32_t shard;
	enum once__table table;
};

/* Timing wheel of one-second slots (expiry.c). */
#define ONCE_WHEEL_SLOTS 4096u

struct once__wheel {
	_Atomic(struct once__entry *) slot[ONCE_WHEEL_SLOTS];
	/* Entries that were already due when pushed (expires_at <= swept_upto). */
	_Atomic(struct once__entry *) overdue;
	/* Every slot for seconds <= swept_upto has been swept. */
	_Atomic int64_t swept_upto;
};

struct once__shard {
	struct cds_lfht *table[ONCE_TBL_COUNT];
	struct once__wheel wheel;
};

/* Exact live-entry count of one table kind, checked against its capacity
 * on every insert. Own cache line: inserts of one kind share it. */
struct once__capacity {
	_Alignas(64) _Atomic uint64_t live;
	/* live above this: the kind's tables should double (grow.c). */
	_Atomic uint64_t grow_at;
	uint64_t max;
	/* Buckets per entry the kind's tables keep, as a power of two: 0, at
	 * most one entry per bucket; 1 (refresh tokens), at most one per two
	 * buckets (store.c, kind_spread). */
	unsigned spread;
	uint64_t buckets;       /* the most buckets of this kind, over all shards */
	_Atomic uint64_t table_buckets; /* buckets per shard table now (grow.c) */
};

/* The thread that grows tables (grow.c). */
struct once__grower {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running, failed, stop;
	_Atomic bool requested[ONCE_TBL_COUNT];
	_Atomic bool prefault; /* the slab asked for chunks ahead */
};

/* Counters striped per CPU so that hot paths on different cores do not
 * share a cache line; summed by once_stats. */
struct once__stripe {
	_Alignas(64) _Atomic uint64_t ops[ONCE_OP_COUNT][ONCE_STATUS_COUNT];
	_Atomic int64_t bytes[ONCE_TBL_COUNT];
	_Atomic uint64_t swept[ONCE_TBL_COUNT];
};

struct once_store {
	const struct once__engine *engine; /* first: api/engine.h */
	once_options opt; /* validated copy; opt.successor_key points at successor_key */
	uint32_t nshards;
	struct once__shard *shards;
	struct once__capacity cap[ONCE_TBL_COUNT];
	struct once__stripe *stripes;
	uint32_t stripe_mask; /* stripes - 1 (a power of two) */

	uint64_t xxh_seed;            /* XXH3 seed for server-generated keys */
	unsigned char prf_key[16];    /* SipHash-2-4 key for client-chosen keys */
	unsigned char successor_key[ONCE_SUCCESSOR_KEY_LEN];
	bool has_successor_key;
	struct once__sealing sealing; /* nonce prefix, subkey, counter (seal.h) */

	struct once__slab slab;            /* entries and records (slab.h) */
	struct once__grower grower;
	/* Blocks handed to call_rcu, ever: once_close waits for the call_rcu
	 * worker (urcu_bp_barrier, >= 10 ms) only when this is not 0. */
	_Atomic uint64_t retired;
	_Atomic uint64_t next_incarnation; /* family incarnations (family.c) */
	struct once__persist *persist; /* NULL: memory only (wal/persist.h) */
	_Atomic bool wal_failed;       /* the log failed: writes answer ONCE_IO */
	struct once__entry *restored;  /* recovery: every entry placed (restore.c) */
	pthread_mutex_t sweep_lock; /* serializes sweeps */
	_Atomic uint64_t sweeps;

	/* Background sweeper (sweep_interval_ms > 0). */
	pthread_t sweeper;
	bool sweeper_running;
	pthread_mutex_t sweeper_lock;
	pthread_cond_t sweeper_wake;
	bool sweeper_stop;
};

/* ---- clock.c ---- */
/* The store clock's reading, clamped into [ONCE_TIME_MIN, ONCE_TIME_MAX]. */
int64_t once__now(const once_store *s);

/* ---- hash.c ---- */
/* Validates key length against max_key_len and fills *k.
 * Returns ONCE_OK or ONCE_INVALID. */
once_status once__key_make(const once_store *s, enum once__table t, const void *data, size_t len,
                           struct once__key *k);
/* The same for a key already stored (recovery): a max_key_len lowered
 * since must not lose it, so only the 16-bit bound of key_len applies. */
once_status once__key_make_stored(const once_store *s, enum once__table t, const void *data, size_t len,
                                  struct once__key *k);

/* ---- table.c (the only file that talks to cds_lfht) ---- */
/* The smallest table: what every table of a new store starts with. */
#define ONCE_TABLE_MIN_BUCKETS 16u
/* A table of start_buckets that grow.c may resize up to max_buckets (both
 * powers of two).  NULL on allocation failure. */
struct cds_lfht *once__table_new(uint64_t start_buckets, uint64_t max_buckets);
/* Caller holds the RCU read lock; the result stays valid until it drops it. */
struct once__entry *once__table_lookup(once_store *s, const struct once__key *k);
/* Publishes e unless the key exists; returns e or the existing entry. */
struct once__entry *once__table_add_unique(once_store *s, const struct once__key *k,
                                           struct once__entry *e);
/* Publishes e, replacing (unlinking) the entry with its key, which it
 * returns (NULL: none).  Recovery only.  Caller holds the read lock. */
struct once__entry *once__table_add_replace(once_store *s, const struct once__key *k,
                                            struct once__entry *e);
/* Unlinks e; true if this caller removed it. Caller holds the read lock. */
bool once__table_del(once_store *s, struct once__entry *e);
/* Calls fn on every entry of table t in one shard, inside a read-side
 * section it takes; fn may unlink the entry it is given (not free it). */
void once__table_each(once_store *s, uint32_t shard, enum once__table t,
                      void (*fn)(struct once__entry *e, void *ctx), void *ctx);
/* True once e has been unlinked.  Caller holds the read lock. */
bool once__table_is_deleted(struct once__entry *e);
/* Frees every entry and the tables of every shard. Single-threaded. */
void once__tables_destroy(once_store *s);

/* ---- grow.c ---- */
void once__grower_init(once_store *s);
/* Tables of kind t have per_shard buckets each now. */
void once__grow_init(once_store *s, enum once__table t, uint64_t per_shard);
/* Asks the grower thread to grow kind t's tables (live passed grow_at). */
void once__grow_request(once_store *s, enum once__table t);
/* Grows kind t's tables for `entries` now, in this thread (recovery,
 * before replay; outside any read-side section). */
void once__grow_reserve(once_store *s, enum once__table t, uint64_t entries);
void once__grower_stop(once_store *s);
void once__grower_destroy(once_store *s);

/* ---- entry.c ---- */
/* Allocates an entry (from the store's slab) with room for `tail` bytes
 * after the key; state is published later by once__insert.  NULL on
 * allocation failure. */
struct once__entry *once__entry_new(once_store *s, const struct once__key *k, int64_t expires_at,
                                    size_t tail);
/* An entry with a `size`-byte record block of its own (slab.h), aligned as
 * a struct needs; *block receives it, e->record_size its size.  NULL on
 * OOM. */
struct once__entry *once__entry_with_record(once_store *s, const struct once__key *k, int64_t expires_at,
                                            size_t size, void **block);
/* The bytes an entry holds (its slab block and its record's), for stats. */
size_t once__entry_bytes(const struct once__entry *e);
/* Frees an entry that no reader can hold: never published, or after a
 * grace period.  A refresh token drops its family reference. */
void once__entry_free_now(struct once__entry *e);
/* Frees an unlinked entry after a grace period (call_rcu). */
void once__entry_retire(once_store *s, struct once__entry *e);
/* A refresh family reference: taken by a token that joins it; dropping the
 * last one (the table's, or a token's) frees the family. */
void once__family_ref(struct once__entry *f);
void once__family_unref(struct once__entry *f);
/*
 * Publishes a fully built entry with its initial state: reserves capacity,
 * adds it to its table and to the expiry wheel.
 * Returns ONCE_OK | ONCE_EXISTS (*existing set when not NULL: the caller
 * must be inside an RCU read-side section to use it) | ONCE_FULL.  On any
 * status but OK the entry has been freed.
 */
once_status once__insert(once_store *s, const struct once__key *k, struct once__entry *e,
                         uint32_t initial_state);
/*
 * Two-phase insert, for inserts that must first know the key is theirs
 * (then hold a family, check revocation, win a CAS).  once__insert_pending
 * links e in state ONCE_PENDING (its key is taken, reads skip it) without
 * putting it on the wheel: same statuses as once__insert.  Then exactly
 * one of: once__pending_commit publishes `state` (release) and puts it on
 * the wheel; once__pending_abort unlinks it and frees it after a grace
 * period.  All three run inside the caller's read-side section.
 */
once_status once__insert_pending(once_store *s, const struct once__key *k, struct once__entry *e);
/* once__insert for callers inside a read-side section that want the entry
 * already under the key on EXISTS (*existing; NULL when a full table's
 * answer found it gone again): OK | EXISTS | FULL, e freed unless OK. */
once_status once__insert_or_get(once_store *s, const struct once__key *k, struct once__entry *e,
                                uint32_t state, struct once__entry **existing);
void once__pending_commit(once_store *s, struct once__entry *e, uint32_t state);
void once__pending_abort(once_store *s, struct once__entry *e);
/* Unlinks e from its table, gives back its capacity and bytes, and frees it
 * after a grace period; false (nothing done) when someone else unlinked
 * it first.  Inside a read-side section. */
bool once__unlink(once_store *s, struct once__entry *e);
/*
 * once__insert with its log record (type, wal/format.h) when the store has
 * a data directory: linked pending, record appended, committed, then the
 * record waited for outside the read-side section (wal/persist.h).  Same
 * statuses as once__insert, plus ONCE_IO; on ONCE_IO after the commit the
 * entry stays (fail closed: a replay jti stays recorded).
 */
once_status once__insert_logged(once_store *s, const struct once__key *k, struct once__entry *e,
                                uint32_t state, uint8_t type, once_ticket *ticket);
/* A consumption record, and a sealed successor of ct_len ciphertext bytes,
 * from the store's slab like the entries they belong to (no malloc on a
 * consume or rotate; freed without the store, as entries are).  NULL on
 * ENOMEM. */
struct once__consumption *once__consumption_new(once_store *s, int64_t at, struct once__sealed *successor);
struct once__sealed *once__sealed_new(once_store *s, size_t ct_len);
void once__sealed_free(struct once__sealed *b);
/* Frees a consumption record and its sealed successor now (never
 * published, or unreachable after a grace period). */
void once__consumption_free(struct once__consumption *c);
/* Frees a consumption record and its sealed successor after a grace period. */
void once__consumption_retire(once_store *s, struct once__consumption *c);

/* ---- expiry.c ---- */
void once__wheel_init(struct once__wheel *w, int64_t now);
void once__wheel_push(struct once__wheel *w, struct once__entry *e);
once_status once__sweeper_start(once_store *s);
void once__sweeper_stop(once_store *s);

/* ---- stats.c ---- */
once_status once__count(once_store *s, once_op op, once_status st);

/* The _async forms' entry: *ticket starts at 0 (nothing to wait for);
 * false (the call answers ONCE_INVALID) without a store or a ticket. */
void once__bytes_add(once_store *s, enum once__table t, int64_t delta);
void once__swept_add(once_store *s, enum once__table t, uint64_t n);
/* Reserves room for one entry of kind t: the live count with it, or 0
 * when the kind is full (nothing reserved). */
uint64_t once__capacity_reserve(once_store *s, enum once__table t);
void once__capacity_release(once_store *s, enum once__table t);

/* ---- record.c ---- */
/* Validation shared by the record kinds: a required text field is present
 * and non-empty; a list has no NULL entry and a pointer when n > 0. */
bool once__text_present(const char *s);
bool once__list_ok(const char *const *list, size_t n);
bool once__code_valid(const once_code *c);
size_t once__refresh_size(const once_refresh *src, size_t max_len);
once_refresh *once__refresh_pack_at(void *block, size_t size, const once_refresh *src);
once_refresh *once__refresh_copy(const once_refresh *packed, size_t size, size_t extra, void **tail);
/* Bytes a packed copy of src needs, or 0 when it exceeds max_len. */
size_t once__code_size(const once_code *src, size_t max_len);
/* Packs src into block (exactly once__code_size bytes, max_align_t
 * aligned); every pointer of the result points inside the block. */
once_code *once__code_pack_at(void *block, size_t size, const once_code *src);
/*
 * A record packed in one walk, for an insert: prepare packs src into the
 * scratch buffer when it fits there (else only measures it) and returns
 * its size, 0 when over max_len; place then puts it into a block of that
 * size (a memcpy and the pointers moved, or packed there from src, which
 * must be the same record: a second walk).  Records rarely pass 512 bytes,
 * and blocks past ONCE_SLAB_MAX come from malloc anyway.
 */
struct once__packing {
	union {
		max_align_t align;
		once_code code;
		once_refresh refresh;
		char bytes[512];
	} scratch;
	size_t size;
	bool in_scratch;
};
size_t once__code_prepare(struct once__packing *pk, const once_code *src, size_t max_len);
once_code *once__code_place(void *block, const struct once__packing *pk, const once_code *src);
size_t once__refresh_prepare(struct once__packing *pk, const once_refresh *src, size_t max_len);
once_refresh *once__refresh_place(void *block, const struct once__packing *pk, const once_refresh *src);
/* Copies a packed code (size bytes) into a new block. NULL on OOM. */
once_code *once__code_copy(const once_code *packed, size_t size);
once_code_meta *once__code_meta_pack(const once_code *src);

/* ---- family.c ---- */
/*
 * Finds the family `fam` (table kind k->table) or creates it, and extends
 * its expires_at to at least `expires_at`.  Called inside a read-side
 * section; the returned family stays valid until it ends.
 * Returns ONCE_OK | ONCE_FULL | ONCE_NOMEM.
 */
once_status once__family_hold(once_store *s, const struct once__key *fam, int64_t expires_at,
                              struct once__entry **out);
/* The family a token joined (incarnation inc), or NULL when it is gone: a
 * token whose family was swept has expired with it (family.c).  Inside a
 * read-side section. */
struct once__entry *once__family_of(once_store *s, const struct once__key *fam, uint64_t inc);
/* Raises f's expiry to at least expires_at; false when f is being retired
 * (DEAD), then it must not be joined. */
bool once__family_extend(struct once__entry *f, int64_t expires_at);
/* True once the sweep retired f (DEAD): its tokens have expired. */
bool once__family_gone(struct once__entry *f);
bool once__family_is_revoked(struct once__entry *f);
/* Sets the sticky revoked flag, creating the family's mark if needed; the
 * mark lasts at least revocation_ttl from now.  Inside a read-side section.
 * ONCE_OK | ONCE_FULL (unknown family and no room for its mark: nothing
 * is revoked, the caller must hear it) | ONCE_NOMEM. */
once_status once__family_revoke(once_store *s, const struct once__key *fam, struct once__entry **out);
/* Revokes family `fam` and logs `type` (ACCESS_REVOKE, REFRESH_REVOKE) as
 * a public revoke call does: takes its own read-side section, waits for
 * the record.  ONCE_OK | ONCE_FULL | ONCE_NOMEM | ONCE_IO. */
once_status once__family_revoke_logged(once_store *s, const struct once__key *fam, uint8_t type,
                                       once_ticket *ticket);
bool once__is_family_table(enum once__table t);

/* ---- seal.c ---- */
/* Draws s->sealing's prefix and counter start and derives its subkey from
 * successor_key (nothing when there is none).  once_open, after the key is
 * copied. */
void once__sealing_init(once_store *s);
/* Wipes the subkey and prefix (store_free). */
void once__sealing_wipe(once_store *s);
/* Seals msg (n <= max_record_len) under the successor key, which the
 * caller has checked is configured; thread-safe (one atomic fetch-add, no
 * system call).  NULL on OOM. */
struct once__sealed *once__seal(once_store *s, const void *ad, size_t adlen, const void *msg,
                                size_t n);
size_t once__sealed_plain_len(const struct once__sealed *b);
/* Opens b into out (once__sealed_plain_len bytes); false if it fails to
 * authenticate (wrong key, tampering) or no key is configured. */
bool once__unseal(const once_store *s, const struct once__sealed *b, const void *ad, size_t adlen,
                  void *out);

/* ---- crypto.c, random.c ---- */
bool once__crypto_init(void);
/* len CSPRNG bytes (random.c: per-thread ChaCha20 with fast key erasure,
 * kernel-seeded, fork-safe).  Never fails; no system call on most calls;
 * not async-signal-safe.  The store's code calls it after
 * once__crypto_init. */
void once__random(void *buf, size_t len);
/* base64url, no padding, of 32 bytes: 43 chars + NUL. */
void once__b64url32(const unsigned char in[32], char out[ONCE_SECRET_LEN + 1]);
/* The same, not constant-time: only for bytes that are public once
 * encoded (nonces). */
void once__b64url32_public(const unsigned char in[32], char out[ONCE_SECRET_LEN + 1]);

/* ---- restore.c (recovery; single-threaded, inside once_open) ---- */
struct once__wal_op;
/* Which effects of a record to apply: all, or one side of a rotation. */
enum { ONCE_RESTORE_WHOLE = 0, ONCE_RESTORE_ROTATE_PARENT, ONCE_RESTORE_ROTATE_CHILD };
/* Applies one decoded record (or `part` of it); the caller holds the RCU
 * read lock.  ONCE_OK | ONCE_CORRUPT (it cannot be applied: a bad key) |
 * ONCE_NOMEM. */
once_status once__restore_apply(once_store *s, const struct once__wal_op *op, int part);
/* The order key recovery sorts records by (wal/batch.h): table, shard,
 * bucket of the key that `part` of op touches.  false: a key the store
 * cannot hold. */
bool once__restore_order(once_store *s, const struct once__wal_op *op, int part, uint32_t *order);
/* Drops every entry expired at `now` and puts the rest on the expiry
 * wheels; returns how many were dropped. */
uint64_t once__restore_finish(once_store *s, int64_t now);
/* After a failed recovery: frees the replaced entries (the table teardown
 * frees the rest). */
void once__restore_abort(once_store *s);

/* ---- dump.c ---- */
/* Calls emit with one JSON line per committed entry (hashes and metadata,
 * never a successor's plaintext); returns the number of lines. */
uint64_t once__dump(once_store *s, void (*emit)(void *ctx, const char *line), void *ctx);

/* ---- store.c ---- */
void once__log(const once_store *s, once_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));


/* ---- the embedded engine's operations (core/engine.c lists them in its
 * table; api/dispatch.c calls them through it) ---- */
extern const struct once__engine once__mem_engine;
/* The same with every slot that would change the store refusing
 * (options.read_only). */
extern const struct once__engine once__mem_ro_engine;
once_status once__mem_close(once_store *s);
once_status once__mem_checkpoint(once_store *s);
once_status once__mem_sweep(once_store *s, once_sweep_counts *out);
void once__mem_stats(once_store *s, struct once_stats *out);
once_status once__mem_code_put(once_store *s, const void *hash, size_t hlen, const once_code *c,
                               once_ticket *ticket);
once_status once__mem_code_get(once_store *s, const void *hash, size_t hlen, once_code **out);
once_status once__mem_code_take(once_store *s, const void *hash, size_t hlen, once_code **out,
                                once_code_meta **meta, once_ticket *ticket);
once_status once__mem_code_finalize(once_store *s, const void *hash, size_t hlen,
                                    once_ticket *ticket);
once_status once__mem_access_record(once_store *s, const void *family_id, size_t flen,
                                    const void *jti, size_t jlen, int64_t expires_at,
                                    once_ticket *ticket);
once_status once__mem_access_revoke(once_store *s, const void *family_id, size_t flen,
                                    once_ticket *ticket);
bool once__mem_access_revoked(once_store *s, const void *jti, size_t jlen);
once_status once__mem_refresh_insert(once_store *s, const void *hash, size_t hlen,
                                     const once_refresh *r, once_ticket *ticket);
once_status once__mem_refresh_get(once_store *s, const void *hash, size_t hlen,
                                  once_refresh **out);
once_status once__mem_refresh_consume(once_store *s, const void *hash, size_t hlen,
                                      once_refresh **out, once_ticket *ticket);
once_status once__mem_refresh_remember(once_store *s, const void *hash, size_t hlen,
                                       const void *succ, size_t n, once_ticket *ticket);
once_status once__mem_refresh_rotate(once_store *s, const void *parent, size_t plen,
                                     const void *child, size_t clen, const once_refresh *succ,
                                     const void *payload, size_t n, once_refresh **parent_out,
                                     once_ticket *ticket);
once_status once__mem_refresh_revoke(once_store *s, const void *family_id, size_t flen,
                                     once_ticket *ticket);
once_status once__mem_nonce_issue(once_store *s, int64_t ttl_seconds,
                                  char out[ONCE_NONCE_LEN + 1], once_ticket *ticket);
bool once__mem_nonce_valid(once_store *s, const void *nonce, size_t len);
once_status once__mem_nonce_accept(once_store *s, const void *nonce, size_t len,
                                   int64_t ttl_seconds, once_ticket *ticket);
once_status once__mem_replay_check(once_store *s, const void *jti, size_t len,
                                   int64_t ttl_seconds, once_ticket *ticket);
int once__mem_ticket_fd(once_store *s);
once_status once__mem_tickets_durable(once_store *s, once_ticket *upto);
once_status once__mem_tickets_drain(once_store *s, int fd, once_ticket *upto);
once_status once__mem_ticket_wait(once_store *s, once_ticket t);

#endif /* ONCE_CORE_INTERNAL_H */
