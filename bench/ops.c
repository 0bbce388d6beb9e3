/*
 * bench/ops.c - the single operations each workload times, and the
 * in-memory limit: a bare cds_lfht lookup + CAS over the same code keys.
 */
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <urcu-bp.h>
#include <urcu/rculfhash.h>
#include <xxhash.h>

#include "bench.h"

static const once_code bench_code = {
	.client_id = "bench-client",
	.subject = "user-0001",
	.redirect_uri = "https://app.example/callback",
	.code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
	.expires_at = INT64_MAX / 2,
};

void op_put(struct phase *p, uint64_t i)
{
	fail_unless(p, once_code_put(p->s, code_keys[i], KEY_LEN, &bench_code), ONCE_OK);
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
		.expires_at = INT64_MAX / 2,
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
	/* The payload a gateway remembers: the successor token itself. */
	fail_unless(p, once_refresh_rotate(p->s, code_keys[i], KEY_LEN, child_keys[i], KEY_LEN, &child,
	                                   child_keys[i], KEY_LEN, &parent),
	            ONCE_OK);
	once_free(parent);
}

static void op_refresh_revoke(struct phase *p, uint64_t i)
{
	fail_unless(p, once_refresh_revoke_family(p->s, family_ids[i], FAMILY_LEN), ONCE_OK);
}

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

/* ---- the workload table ---- */

const struct workload raw_workload = {"raw", "raw cds_lfht lookup+CAS", op_raw, NULL, KIND_RAW, NULL};

/* The order of --workload all; mix is only run when named. */
const struct workload workloads[] = {
	{"put", "code put", op_put, NULL, KIND_CODE, NULL},
	{"get", "code get", op_get, op_put, KIND_CODE, NULL},
	{"take", "code take", op_take, op_put, KIND_CODE, NULL},
	{"nonce_issue", "nonce issue", op_nonce_issue, NULL, KIND_NONCE, NULL},
	{"nonce_accept", "nonce accept", op_nonce_accept, op_nonce_issue, KIND_NONCE, NULL},
	{"replay", "replay check", op_replay, NULL, KIND_REPLAY, NULL},
	{"refresh_insert", "refresh insert", op_refresh_insert, NULL, KIND_REFRESH, NULL},
	{"refresh_consume", "refresh consume", op_refresh_consume, op_refresh_insert, KIND_REFRESH, NULL},
	{"refresh_rotate", "refresh rotate", op_refresh_rotate, op_refresh_insert, KIND_REFRESH, NULL},
	{"refresh_revoke", "refresh revoke family", op_refresh_revoke, op_refresh_insert, KIND_REFRESH, NULL},
	{"mix", "gateway mix", NULL, NULL, KIND_MIX, mix_login},
};
const size_t nworkloads = sizeof workloads / sizeof workloads[0];

const struct workload *find_workload(const char *name)
{
	if (strcmp(name, "raw") == 0)
		return &raw_workload;
	for (size_t w = 0; w < nworkloads; w++)
		if (strcmp(name, workloads[w].name) == 0)
			return &workloads[w];
	return NULL;
}
