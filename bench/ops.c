/*
 * bench/ops.c - the single operations each workload times, and the two
 * in-memory limits over the same code keys: a bare cds_lfht lookup + CAS
 * (for the operations that find an entry) and a bare cds_lfht insert into
 * a table that grows, of nodes from the store's own slab allocator (for the
 * operations that add one).
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <urcu-bp.h>
#include <urcu/rculfhash.h>
#include <xxhash.h>

#include "bench.h"
#include "slab.h"

int64_t bench_expires_at = INT64_MAX / 2;

static once_code bench_code(void)
{
	return (once_code){
		.client_id = "bench-client",
		.subject = "user-0001",
		.redirect_uri = "https://app.example/callback",
		.code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		.expires_at = bench_expires_at,
	};
}

void op_put(struct phase *p, uint64_t i)
{
	once_code c = bench_code();
	fail_unless(p, once_code_put(p->s, code_keys[i], KEY_LEN, &c), ONCE_OK);
}

static void op_get(struct phase *p, uint64_t i)
{
	once_code *c = NULL;
	fail_unless(p, once_code_get(p->s, code_keys[i], KEY_LEN, &c), ONCE_OK);
	once_free(c);
}

void op_take(struct phase *p, uint64_t i)
{
	once_code *c = NULL;
	fail_unless(p, once_code_take(p->s, code_keys[i], KEY_LEN, &c, NULL), ONCE_OK);
	once_free(c);
}

void op_nonce_issue(struct phase *p, uint64_t i)
{
	fail_unless(p, once_nonce_issue(p->s, 300, p->nonces[i]), ONCE_OK);
}

static void op_nonce_accept(struct phase *p, uint64_t i)
{
	fail_unless(p, once_nonce_accept(p->s, p->nonces[i], ONCE_NONCE_LEN, 300), ONCE_OK);
}

void op_replay(struct phase *p, uint64_t i)
{
	fail_unless(p, once_replay_check(p->s, jti_keys[i], JTI_LEN, 300), ONCE_OK);
}

/* One refresh token per family, as after a login. */
static once_refresh bench_refresh(uint64_t i)
{
	static const char *const scope[] = {"openid", "profile", "offline_access"};
	return (once_refresh){
		.family_id = family_ids[i],
		.subject = "user-0001",
		.client_id = "bench-client",
		.scope = scope,
		.scope_count = 3,
		.expires_at = bench_expires_at,
		.generation = 1,
	};
}

static void op_refresh_insert(struct phase *p, uint64_t i)
{
	once_refresh r = bench_refresh(i);
	fail_unless(p, once_refresh_insert(p->s, code_keys[i], KEY_LEN, &r), ONCE_OK);
}

static void op_refresh_consume(struct phase *p, uint64_t i)
{
	once_refresh *r = NULL;
	fail_unless(p, once_refresh_consume(p->s, code_keys[i], KEY_LEN, &r), ONCE_OK);
	once_free(r);
}

static void op_refresh_rotate(struct phase *p, uint64_t i)
{
	once_refresh child = bench_refresh(i);
	child.generation = 2;
	child.parent_hash = code_keys[i];
	once_refresh *parent = NULL;
	/* The payload a gateway remembers: the successor token itself, the
	 * child keyed by its hash (keys.c). */
	fail_unless(p, once_refresh_rotate(p->s, code_keys[i], KEY_LEN, child_keys[i], KEY_LEN, &child,
	                                   child_tokens[i], KEY_LEN, &parent),
	            ONCE_OK);
	once_free(parent);
}

static void op_refresh_revoke(struct phase *p, uint64_t i)
{
	fail_unless(p, once_refresh_revoke_family(p->s, family_ids[i], FAMILY_LEN), ONCE_OK);
}

/* ---- the _async forms (--inflight): same arguments, plus the ticket ---- */

#if ONCEBENCH_ASYNC
void op_put_async(struct phase *p, uint64_t i, once_ticket *t)
{
	once_code c = bench_code();
	fail_unless(p, once_code_put_async(p->s, code_keys[i], KEY_LEN, &c, t), ONCE_OK);
}

void op_take_async(struct phase *p, uint64_t i, once_ticket *t)
{
	once_code *c = NULL;
	fail_unless(p, once_code_take_async(p->s, code_keys[i], KEY_LEN, &c, NULL, t), ONCE_OK);
	once_free(c);
}

void op_nonce_issue_async(struct phase *p, uint64_t i, once_ticket *t)
{
	fail_unless(p, once_nonce_issue_async(p->s, 300, p->nonces[i], t), ONCE_OK);
}

static void op_nonce_accept_async(struct phase *p, uint64_t i, once_ticket *t)
{
	fail_unless(p, once_nonce_accept_async(p->s, p->nonces[i], ONCE_NONCE_LEN, 300, t), ONCE_OK);
}

void op_replay_async(struct phase *p, uint64_t i, once_ticket *t)
{
	fail_unless(p, once_replay_check_async(p->s, jti_keys[i], JTI_LEN, 300, t), ONCE_OK);
}

static void op_refresh_insert_async(struct phase *p, uint64_t i, once_ticket *t)
{
	once_refresh r = bench_refresh(i);
	fail_unless(p, once_refresh_insert_async(p->s, code_keys[i], KEY_LEN, &r, t), ONCE_OK);
}

static void op_refresh_consume_async(struct phase *p, uint64_t i, once_ticket *t)
{
	once_refresh *r = NULL;
	fail_unless(p, once_refresh_consume_async(p->s, code_keys[i], KEY_LEN, &r, t), ONCE_OK);
	once_free(r);
}

static void op_refresh_rotate_async(struct phase *p, uint64_t i, once_ticket *t)
{
	once_refresh child = bench_refresh(i);
	child.generation = 2;
	child.parent_hash = code_keys[i];
	once_refresh *parent = NULL;
	fail_unless(p, once_refresh_rotate_async(p->s, code_keys[i], KEY_LEN, child_keys[i], KEY_LEN, &child,
	                                         child_tokens[i], KEY_LEN, &parent, t),
	            ONCE_OK);
	once_free(parent);
}

static void op_refresh_revoke_async(struct phase *p, uint64_t i, once_ticket *t)
{
	fail_unless(p, once_refresh_revoke_family_async(p->s, family_ids[i], FAMILY_LEN, t), ONCE_OK);
}
/* The _async forms of an operation and of its prefill, in the workload table. */
#define ASYNC(op, prefill) , op, prefill
#else
#define ASYNC(op, prefill)
#endif

/* ---- the in-memory limit: a bare cds_lfht lookup + CAS ---- */

struct raw_node {
	struct cds_lfht_node node;
	_Atomic uint32_t state;
	unsigned char key[KEY_LEN];
};

struct raw_table {
	struct cds_lfht *ht;
	uint64_t seed;
	struct raw_node **nodes;
};

static int raw_match(struct cds_lfht_node *node, const void *key)
{
	struct raw_node *n = caa_container_of(node, struct raw_node, node);
	return memcmp(n->key, key, KEY_LEN) == 0;
}

void *raw_build(uint64_t keys)
{
	struct raw_table *r = calloc(1, sizeof *r);
	uint64_t buckets = 1;
	while (buckets < keys)
		buckets <<= 1;
	buckets /= 2; /* the store's sizing: chains of 1-2 at capacity */
	if (buckets < 1)
		buckets = 1;
	r->ht = cds_lfht_new_flavor(buckets, buckets, buckets, 0, &urcu_bp_flavor, NULL);
	r->seed = 0x9e3779b97f4a7c15u;
	r->nodes = calloc(keys, sizeof *r->nodes);
	urcu_bp_read_lock();
	for (uint64_t i = 0; i < keys; i++) {
		/* One allocation per node, in key order, as the store allocates. */
		struct raw_node *n = r->nodes[i] = calloc(1, sizeof *n);
		memcpy(n->key, code_keys[i], KEY_LEN);
		atomic_init(&n->state, 1);
		cds_lfht_add_unique(r->ht, XXH3_64bits_withSeed(code_keys[i], KEY_LEN, r->seed), raw_match,
		                    code_keys[i], &n->node);
	}
	urcu_bp_read_unlock();
	return r;
}

void raw_free(void *raw, uint64_t keys)
{
	struct raw_table *r = raw;
	urcu_bp_read_lock();
	for (uint64_t i = 0; i < keys; i++)
		cds_lfht_del(r->ht, &r->nodes[i]->node);
	urcu_bp_read_unlock();
	urcu_bp_synchronize_rcu();
	for (uint64_t i = 0; i < keys; i++)
		free(r->nodes[i]);
	cds_lfht_destroy(r->ht, NULL);
	free(r->nodes);
	free(r);
}

static void op_raw(struct phase *p, uint64_t i)
{
	struct raw_table *r = p->raw;
	struct cds_lfht_iter it;
	urcu_bp_read_lock();
	cds_lfht_lookup(r->ht, XXH3_64bits_withSeed(code_keys[i], KEY_LEN, r->seed), raw_match,
	                code_keys[i], &it);
	struct cds_lfht_node *node = cds_lfht_iter_get_node(&it);
	uint32_t live = 1;
	if (node == NULL ||
	    !atomic_compare_exchange_strong(&caa_container_of(node, struct raw_node, node)->state, &live, 2))
		atomic_fetch_add_explicit(&p->failures, 1, memory_order_relaxed);
	urcu_bp_read_unlock();
}

/* ---- the insert limit: a bare cds_lfht add_unique into a growing table ---- */

/*
 * The table starts small, as the store's do (16 buckets), and grows with
 * its contents up to the bucket count raw_build presizes for the same keys,
 * the way the store's tables grow (core/grow.c): an insert that takes the
 * count past two entries per bucket asks a background thread, which calls
 * cds_lfht_resize to the size for the count, so no insert waits for a
 * resize.  Not liburcu's CDS_LFHT_AUTO_RESIZE: in liburcu 0.13.2 a resize
 * can finish on its worker thread before the inserting thread that queued
 * it marks it as started (__cds_lfht_resize_lazy_launch queues the work,
 * then sets resize_initiated = 1), and the late mark then blocks every
 * later resize of that table.  Here that left a 200,000-key table near 16
 * buckets in about a third of all processes (mostly the first table of a
 * process), at 40-90 k inserts/s instead of 2-4 M.  Nodes (raw_node: the
 * lfht node, a 32-bit state and the 43-byte key, 64 bytes) come from the
 * store's slab allocator (core/slab.h), as its entries do.
 */
#define RAW_INSERT_MIN_BUCKETS 16

struct raw_insert {
	struct cds_lfht *ht;
	uint64_t seed;
	uint64_t max_buckets;
	struct once__slab slab;
	_Alignas(64) _Atomic uint64_t count; /* entries inserted */
	_Atomic uint64_t grow_at;            /* ask for a resize past this count */
	_Atomic bool requested;
	_Atomic bool prefault; /* the slab asked for chunks ahead (slab.h) */
	_Alignas(64) pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
	uint64_t buckets; /* the grower's */
	pthread_t grower;
};

/* Buckets for n entries: as raw_build sizes a table for n, capped. */
static uint64_t raw_buckets_for(uint64_t n, uint64_t max)
{
	uint64_t b = 1;
	while (b < n)
		b <<= 1;
	b = b / 2 < 1 ? 1 : b / 2;
	return b > max ? max : b;
}

static void raw_set_size(struct raw_insert *r, uint64_t buckets)
{
	r->buckets = buckets;
	atomic_store(&r->grow_at, buckets >= r->max_buckets ? UINT64_MAX : 2 * buckets);
}

static void *raw_grower_main(void *arg)
{
	struct raw_insert *r = arg;
	urcu_bp_read_lock(); /* registers the thread, as cds_lfht_resize requires */
	urcu_bp_read_unlock();
	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		if (atomic_exchange(&r->prefault, false)) {
			/* As the store's grower does: fault the next chunks in. */
			pthread_mutex_unlock(&r->lock);
			once__slab_prefault(&r->slab);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (!atomic_exchange(&r->requested, false)) {
			pthread_cond_wait(&r->wake, &r->lock);
			continue;
		}
		pthread_mutex_unlock(&r->lock);
		uint64_t want = raw_buckets_for(atomic_load(&r->count), r->max_buckets);
		if (want > r->buckets) {
			cds_lfht_resize(r->ht, (unsigned long)want);
			raw_set_size(r, want);
		}
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void raw_ask_prefault(void *ctx)
{
	struct raw_insert *r = ctx;
	if (atomic_exchange(&r->prefault, true))
		return;
	pthread_mutex_lock(&r->lock);
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

void *raw_insert_new(uint64_t keys)
{
	struct raw_insert *r = aligned_alloc(64, sizeof *r);
	if (r == NULL || once__slab_init(&r->slab) != 0)
		die("allocating the raw insert table", ONCE_NOMEM);
	r->max_buckets = raw_buckets_for(keys, UINT64_MAX);
	uint64_t init = r->max_buckets < RAW_INSERT_MIN_BUCKETS ? r->max_buckets : RAW_INSERT_MIN_BUCKETS;
	r->ht = cds_lfht_new_flavor(init, init, r->max_buckets, 0, &urcu_bp_flavor, NULL);
	if (r->ht == NULL)
		die("creating the raw insert table", ONCE_NOMEM);
	r->seed = 0x9e3779b97f4a7c15u;
	atomic_init(&r->count, 0);
	atomic_init(&r->grow_at, UINT64_MAX);
	atomic_init(&r->requested, false);
	atomic_init(&r->prefault, false);
	r->slab.ask = raw_ask_prefault;
	r->slab.ask_ctx = r;
	raw_set_size(r, init);
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->wake, NULL);
	r->stop = false;
	if (pthread_create(&r->grower, NULL, raw_grower_main, r) != 0)
		die("starting the raw insert table's grower", ONCE_NOMEM);
	return r;
}

void raw_insert_free(void *raw)
{
	struct raw_insert *r = raw;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->grower, NULL);
	struct cds_lfht_iter it;
	struct cds_lfht_node *node;
	urcu_bp_read_lock();
	cds_lfht_for_each(r->ht, &it, node)
		cds_lfht_del(r->ht, node);
	urcu_bp_read_unlock();
	urcu_bp_synchronize_rcu();
	if (cds_lfht_destroy(r->ht, NULL) != 0)
		die("destroying the raw insert table", ONCE_INVALID);
	once__slab_destroy(&r->slab); /* every node at once, as the store's close */
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static void raw_grow_request(struct raw_insert *r)
{
	if (atomic_exchange(&r->requested, true))
		return; /* asked already, not served yet */
	pthread_mutex_lock(&r->lock);
	pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
}

static void op_raw_insert(struct phase *p, uint64_t i)
{
	struct raw_insert *r = p->raw;
	struct raw_node *n = once__slab_alloc(&r->slab, sizeof *n);
	if (n == NULL) {
		atomic_fetch_add_explicit(&p->failures, 1, memory_order_relaxed);
		return;
	}
	memcpy(n->key, code_keys[i], KEY_LEN);
	atomic_init(&n->state, 1);
	urcu_bp_read_lock();
	struct cds_lfht_node *got = cds_lfht_add_unique(r->ht, XXH3_64bits_withSeed(code_keys[i], KEY_LEN, r->seed),
	                                                raw_match, code_keys[i], &n->node);
	urcu_bp_read_unlock();
	if (got != &n->node) {
		atomic_fetch_add_explicit(&p->failures, 1, memory_order_relaxed);
		return;
	}
	if (atomic_fetch_add(&r->count, 1) + 1 > atomic_load(&r->grow_at))
		raw_grow_request(r);
}

/* ---- the workload table ---- */

const struct workload raw_workload = {"raw", "raw cds_lfht lookup+CAS", op_raw, NULL, KIND_RAW, NULL};
const struct workload raw_insert_workload = {"raw_insert", "raw cds_lfht insert", op_raw_insert, NULL,
                                             KIND_RAW_INSERT, NULL};

/* The order of --workload all; mix is only run when named. */
const struct workload workloads[] = {
	{"put", "code put", op_put, NULL, KIND_CODE, NULL ASYNC(op_put_async, NULL)},
	{"get", "code get", op_get, op_put, KIND_CODE, NULL ASYNC(NULL, op_put_async)},
	{"take", "code take", op_take, op_put, KIND_CODE, NULL ASYNC(op_take_async, op_put_async)},
	{"nonce_issue", "nonce issue", op_nonce_issue, NULL, KIND_NONCE, NULL ASYNC(op_nonce_issue_async, NULL)},
	{"nonce_accept", "nonce accept", op_nonce_accept, op_nonce_issue, KIND_NONCE,
	 NULL ASYNC(op_nonce_accept_async, op_nonce_issue_async)},
	{"replay", "replay check", op_replay, NULL, KIND_REPLAY, NULL ASYNC(op_replay_async, NULL)},
	{"refresh_insert", "refresh insert", op_refresh_insert, NULL, KIND_REFRESH,
	 NULL ASYNC(op_refresh_insert_async, NULL)},
	{"refresh_consume", "refresh consume", op_refresh_consume, op_refresh_insert, KIND_REFRESH,
	 NULL ASYNC(op_refresh_consume_async, op_refresh_insert_async)},
	{"refresh_rotate", "refresh rotate", op_refresh_rotate, op_refresh_insert, KIND_REFRESH,
	 NULL ASYNC(op_refresh_rotate_async, op_refresh_insert_async)},
	{"refresh_revoke", "refresh revoke family", op_refresh_revoke, op_refresh_insert, KIND_REFRESH,
	 NULL ASYNC(op_refresh_revoke_async, op_refresh_insert_async)},
	{"mix", "gateway mix", NULL, NULL, KIND_MIX, mix_login ASYNC(NULL, NULL)},
};
const size_t nworkloads = sizeof workloads / sizeof workloads[0];

const struct workload *find_workload(const char *name)
{
	if (strcmp(name, "raw") == 0)
		return &raw_workload;
	if (strcmp(name, "raw_insert") == 0)
		return &raw_insert_workload;
	for (size_t w = 0; w < nworkloads; w++)
		if (strcmp(name, workloads[w].name) == 0)
			return &workloads[w];
	return NULL;
}
