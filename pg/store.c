/*
 * pg/store.c - the PostgreSQL engine's store: once__pg_open, close, stats,
 * the store clock and the call counters, and the engine table
 * (api/engine.h) that lists the operations of pg/'s other files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "internal.h"
#include "layout.h"
#include "pg.h"

#define MAX_POOL 1024u

int64_t once__pg_now(const struct once__pg *p)
{
	/* Read and clamped as the embedded store's clock is (core/clock.c). */
	int64_t t = p->opt.clock != NULL ? p->opt.clock(p->opt.clock_ctx) : (int64_t)time(NULL);
	return once__time_clamp(t);
}

once_status once__pg_count(struct once__pg *p, once_op op, once_status st)
{
	if ((unsigned)op < ONCE_OP_COUNT && (unsigned)st < ONCE_STATUS_COUNT)
		atomic_fetch_add_explicit(&p->ops[op][st], 1, memory_order_relaxed);
	return st;
}

/* A line naming the refused option, before a store exists. */
static void refuse(const once_options *o, const char *what, const char *why)
{
	once__logf(o, ONCE_LOG_ERROR, "postgres: %s: %s", what, why);
}

/* Each refusal says which option and why: the status alone (ONCE_INVALID)
 * would leave an operator guessing. */
static bool options_valid(const once_options *o)
{
	char why[ONCE_PG_NAME_PROBLEM_MAX];
	if (o->pg_pool_size < 1 || o->pg_pool_size > MAX_POOL) {
		refuse(o, "pg_pool_size", "must be 1 to 1024");
		return false;
	}
	if (o->pg_rotation_grace < 0 || o->pg_rotation_grace > ONCE_TTL_MAX) {
		refuse(o, "pg_rotation_grace", "must be 0 to ONCE_TTL_MAX seconds");
		return false;
	}
	/* Both are spliced into statements (quoted), so they are held to
	 * AttestoPhoenix's own rules (ATTESTO-PG 1.3, pg/layout.c). */
	if (o->pg_schema != NULL && !once__pg_schema_valid(o->pg_schema, why)) {
		refuse(o, "pg_schema", why);
		return false;
	}
	if (o->pg_table_prefix != NULL && o->pg_table_prefix[0] != '\0' &&
	    !once__pg_table_prefix_valid(o->pg_table_prefix, why)) {
		refuse(o, "pg_table_prefix", why);
		return false;
	}
	if (o->pg_issuer != NULL &&
	    (o->pg_issuer[0] == '\0' || !once__pg_text_fits(o->pg_issuer, strlen(o->pg_issuer), SIZE_MAX))) {
		/* Written into every family's claims: one that could not be
		 * would make every refresh insert and rotation INVALID. */
		refuse(o, "pg_issuer", "must be non-empty UTF-8 without NUL (NULL: no issuer binding)");
		return false;
	}
	/* AttestoPhoenix refuses a secret under 32 bytes (ATTESTO-PG 2.2.5). */
	if ((o->pg_successor_secret != NULL && o->pg_successor_secret_len < 32) ||
	    (o->pg_successor_secret == NULL && o->pg_successor_secret_len != 0)) {
		refuse(o, "pg_successor_secret", "must be at least 32 bytes (NULL: none)");
		return false;
	}
	if (o->max_key_len < 1 || o->max_key_len > UINT16_MAX || o->max_record_len < sizeof(once_refresh) ||
	    o->max_record_len > (16u << 20)) {
		refuse(o, "max_key_len or max_record_len", "out of range");
		return false;
	}
	return true;
}

static void store_free(struct once__pg *p)
{
	for (int t = 0; t < ONCE_PG_TABLE_COUNT; t++)
		free(p->table[t]);
	if (p->conninfo != NULL) /* it may hold a password */
		sodium_memzero(p->conninfo, strlen(p->conninfo));
	free(p->conninfo);
	free(p->schema);
	free(p->table_prefix);
	free(p->issuer);
	if (p->successor_secret != NULL) {
		sodium_memzero(p->successor_secret, p->successor_secret_len);
		free(p->successor_secret);
	}
	free(p);
}

static char *copy_text(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

static once_status copy_options(struct once__pg *p, const once_options *o)
{
	p->opt = *o;
	p->conninfo = copy_text(o->postgres);
	p->schema = copy_text(o->pg_schema);
	p->table_prefix = copy_text(o->pg_table_prefix != NULL ? o->pg_table_prefix : "");
	p->issuer = copy_text(o->pg_issuer);
	if (p->conninfo == NULL || p->table_prefix == NULL ||
	    (o->pg_schema != NULL && p->schema == NULL) || (o->pg_issuer != NULL && p->issuer == NULL))
		return ONCE_NOMEM;
	if (o->pg_successor_secret != NULL) {
		p->successor_secret = malloc(o->pg_successor_secret_len);
		if (p->successor_secret == NULL)
			return ONCE_NOMEM;
		memcpy(p->successor_secret, o->pg_successor_secret, o->pg_successor_secret_len);
		p->successor_secret_len = o->pg_successor_secret_len;
	}
	/* The copy's pointers are the store's own, never the caller's. */
	p->opt.postgres = p->conninfo;
	p->opt.pg_schema = p->schema;
	p->opt.pg_table_prefix = p->table_prefix;
	p->opt.pg_issuer = p->issuer;
	p->opt.pg_successor_secret = p->successor_secret;
	p->opt.dir = NULL;
	p->opt.successor_key = NULL;
	for (int t = 0; t < ONCE_PG_TABLE_COUNT; t++) {
		p->table[t] = once__pg_table_name(p->schema, p->table_prefix, (enum once__pg_table)t);
		if (p->table[t] == NULL)
			return ONCE_NOMEM;
	}
	return ONCE_OK;
}

static const struct once__engine pg_engine;

once_status once__pg_open(const once_options *o, once_store **out)
{
	if (!options_valid(o))
		return ONCE_INVALID;
	if (sodium_init() < 0)
		return ONCE_NOMEM;
	struct once__pg *p = calloc(1, sizeof *p);
	if (p == NULL)
		return ONCE_NOMEM;
	p->engine = &pg_engine;
	once_status st = copy_options(p, o);
	if (st == ONCE_OK)
		st = once__pg_pool_open(p); /* connects and checks the tables */
	if (st != ONCE_OK) {
		store_free(p);
		return st;
	}
	*out = (once_store *)(void *)p;
	return ONCE_OK;
}

static once_status pg_close(once_store *s)
{
	struct once__pg *p = once__pg_of(s);
	once__pg_pool_close(p);
	store_free(p);
	return ONCE_OK;
}

/* Nothing to checkpoint: the server keeps its own log (as for a
 * memory-only store, ONCE_INVALID). */
static once_status pg_checkpoint(once_store *s)
{
	(void)s;
	return ONCE_INVALID;
}

static uint64_t load(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/* Rows per kind, for the entries figures: one statement that counts every
 * table (a scan of each: once_stats is for operators and tests, not for a
 * hot path).  Access tokens are the code rows that carry one. */
static const struct once__pg_sql stats_rows = {
	ONCE_PG_STATS_ROWS,
	"SELECT (SELECT count(*) FROM {codes}),"
	" (SELECT count(*) FROM {codes} WHERE access_token_jti IS NOT NULL),"
	" (SELECT count(*) FROM {refresh}), (SELECT count(*) FROM {nonces}),"
	" (SELECT count(*) FROM {replays})",
	0,
};

static void count_rows(struct once__pg *p, struct once_stats *out)
{
	struct once__pg_conn *c;
	if (once__pg_acquire(p, &c) != ONCE_OK)
		return; /* the figures stay 0; the failure is counted in pg_errors */
	PGresult *r = once__pg_run(p, c, &stats_rows, NULL, NULL);
	if (r != NULL && PQntuples(r) == 1 && PQnfields(r) == 5) {
		once_kind_stats *kinds[5] = {&out->codes, &out->access_tokens, &out->refresh,
		                             &out->nonces, &out->replays};
		for (int k = 0; k < 5; k++)
			kinds[k]->entries = strtoull(PQgetvalue(r, 0, k), NULL, 10);
	}
	PQclear(r);
	once__pg_release(p, c);
}

static void pg_stats(once_store *s, struct once_stats *out)
{
	struct once__pg *p = once__pg_of(s);
	memset(out, 0, sizeof *out);
	count_rows(p, out);
	for (int op = 0; op < ONCE_OP_COUNT; op++)
		for (int st = 0; st < ONCE_STATUS_COUNT; st++)
			out->ops[op][st] = load(&p->ops[op][st]);
	out->sweeps = load(&p->sweeps);
	once__pg_pool_figures(p, &out->pg_connections, &out->pg_pool_size);
	out->pg_connects = load(&p->counters.connects);
	out->pg_reconnects = load(&p->counters.reconnects);
	out->pg_errors = load(&p->counters.errors);
	out->pg_statements = load(&p->counters.statements);
	out->pg_statement_ns_total = load(&p->counters.statement_ns_total);
	out->pg_statement_ns_max = load(&p->counters.statement_ns_max);
}

/* Tickets: every write is committed when it returns, so every ticket is 0
 * and there is nothing to wait for (as on a memory-only store). */
static int pg_ticket_fd(once_store *s)
{
	(void)s;
	errno = EINVAL;
	return -1;
}

static once_status pg_tickets_durable(once_store *s, once_ticket *upto)
{
	(void)s;
	*upto = 0;
	return ONCE_OK;
}

static once_status pg_tickets_drain(once_store *s, int fd, once_ticket *upto)
{
	if (fd >= 0)
		return ONCE_INVALID; /* no descriptor was ever handed out */
	return pg_tickets_durable(s, upto);
}

static once_status pg_ticket_wait(once_store *s, once_ticket t)
{
	(void)s;
	return t == 0 ? ONCE_OK : ONCE_INVALID;
}

static const struct once__engine pg_engine = {
	.name = "postgres",
	.close = pg_close,
	.checkpoint = pg_checkpoint,
	.sweep = once__pg_sweep,
	.stats = pg_stats,
	.code_put = once__pg_code_put,
	.code_get = once__pg_code_get,
	.code_take = once__pg_code_take,
	.code_finalize = once__pg_code_finalize,
	.access_record = once__pg_access_record,
	.access_revoke = once__pg_access_revoke,
	.access_revoked = once__pg_access_revoked,
	.refresh_insert = once__pg_refresh_insert,
	.refresh_get = once__pg_refresh_get,
	.refresh_consume = once__pg_refresh_consume,
	.refresh_remember = once__pg_refresh_remember,
	.refresh_rotate = once__pg_refresh_rotate,
	.refresh_revoke = once__pg_refresh_revoke,
	.nonce_issue = once__pg_nonce_issue,
	.nonce_valid = once__pg_nonce_valid,
	.nonce_accept = once__pg_nonce_accept,
	.replay_check = once__pg_replay_check,
	.ticket_fd = pg_ticket_fd,
	.tickets_durable = pg_tickets_durable,
	.tickets_drain = pg_tickets_drain,
	.ticket_wait = pg_ticket_wait,
};
