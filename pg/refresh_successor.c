/*
 * pg/refresh_successor.c - the `successor` column of a rotated refresh
 * token, as AttestoPhoenix 3.5.1 writes and reads it (ATTESTO-PG 2.2.3 -
 * 2.2.6): sealing at rotation, recovery with the lineage check, and the
 * sweeper's redaction.
 *
 * On this engine a successor is the child's refresh token itself (the
 * plaintext handed to the client), sealed with its context so that a
 * retry after a lost response gets the same child whichever node, C or
 * Elixir, rotated.  The envelope's bytes are pg/envelope.c's; this file
 * decides what goes in and whether what comes out may be believed.
 *
 * Fail closed: anything short of a successor that opens, binds to its
 * rows and whose child still exists unchanged reads as no successor, and
 * the caller then treats the retry as reuse.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "envelope.h"
#include "refresh.h"

/* ---- sealing ---- */

/* A row's data as a successor context (ATTESTO-PG 2.2.1: exactly the
 * core's data keys; family_expires_at and attestation_jkt when set). */
static void context_of(const struct once__pg_row *r, struct once__pg_successor_context *ctx)
{
	*ctx = (struct once__pg_successor_context){
		.subject = r->subject,
		.scope = (const char *const *)r->scope,
		.nscope = r->scope_count,
		.resource = (const char *const *)r->resource,
		.nresource = r->resource_count,
		.client_id = r->client_id,
		.dpop_jkt = r->dpop_jkt,
		.acr = r->acr,
		.has_auth_time = r->has_auth_time,
		.auth_time = r->auth_time,
		.claims = r->claims_json,
		.has_family_expires_at = r->has_family_expires_at,
		.family_expires_at = r->family_expires_at,
		.attestation_jkt = r->attestation_jkt,
	};
}

/* min(rotated_at + grace, child_expires_at - 1), without overflow: core's
 * successor_state/4 (ATTESTO-PG 2.2.4). */
static int64_t retry_deadline(int64_t rotated_at, int64_t grace, int64_t child_expires_at)
{
	int64_t until = grace > INT64_MAX - rotated_at ? INT64_MAX : rotated_at + grace;
	return child_expires_at - 1 < until ? child_expires_at - 1 : until;
}

static once_status tombstone(int64_t retry_until, char **out)
{
	char text[ONCE_PG_TOMBSTONE_MAX];
	once__pg_successor_tombstone(retry_until, text);
	*out = strdup(text);
	return *out ? ONCE_OK : ONCE_NOMEM;
}

once_status once__pg_refresh_seal(struct once__pg *p, const struct once__pg_row *parent,
                                  const struct once__pg_row *child, const char *token,
                                  size_t token_len, int64_t rotated_at, char **out)
{
	int64_t grace = p->opt.pg_rotation_grace;
	if (p->successor_secret == NULL || grace <= 0 || token == NULL)
		return tombstone(rotated_at, out);
	struct once__pg_successor_row binding = {
		.parent_hash = parent->token_hash,
		.family_id = parent->family_id,
		.parent_generation = parent->generation,
	};
	struct once__pg_successor succ = {
		.token = token,
		.token_len = token_len,
		.generation = child->generation,
		.has_retry_until = true,
		.retry_until = retry_deadline(rotated_at, grace, child->expires_at),
	};
	context_of(child, &succ.context);
	once_status st = once__pg_successor_seal(p->successor_secret, p->successor_secret_len,
	                                         &binding, &succ, out);
	/* A secret AttestoPhoenix would refuse (under 32 bytes) seals
	 * nothing: the strict tombstone, as with no secret. */
	return st == ONCE_NO_KEY ? tombstone(rotated_at, out) : st;
}

/* ---- recovery ---- */

/* Statement text of the lineage read (core's get/1 child lookup). */
static const struct once__pg_sql get_child = {
	ONCE_PG_REFRESH_GET_CHILD, ONCE_PG_REFRESH_GET_CHILD_SQL, 3};

static bool same_text(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

static bool same_list(const char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Two JSON texts hold equal values (jsonb prints its own key order). */
static bool same_json(const char *a, const char *b)
{
	json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
	bool eq = ja != NULL && jb != NULL && json_equal(ja, jb);
	json_decref(ja);
	json_decref(jb);
	return eq;
}

/* The child's data equals the sealed context (ATTESTO-PG 2.2.3 get/1). */
static bool context_matches(const struct once__pg_successor_context *c,
                            const struct once__pg_row *child)
{
	return same_text(c->subject, child->subject) &&
	       same_list(c->scope, c->nscope, child->scope, child->scope_count) &&
	       same_list(c->resource, c->nresource, child->resource, child->resource_count) &&
	       same_text(c->client_id, child->client_id) && same_text(c->dpop_jkt, child->dpop_jkt) &&
	       same_text(c->acr, child->acr) && c->has_auth_time == child->has_auth_time &&
	       (!c->has_auth_time || c->auth_time == child->auth_time) && c->claims != NULL &&
	       same_json(c->claims, child->claims_json) &&
	       c->has_family_expires_at == child->has_family_expires_at &&
	       (!c->has_family_expires_at || c->family_expires_at == child->family_expires_at) &&
	       same_text(c->attestation_jkt, child->attestation_jkt);
}

/*
 * The lineage check and the child's half of core's retry_window
 * (ATTESTO-PG 2.2.3 get/1, 2.2.4): the child row named by the successor
 * exists in this family at generation + 1, names this row as its parent
 * (v1, which binds no rows, also a child written by 2.x with no
 * parent_hash), holds exactly the sealed data, and is unconsumed and
 * unexpired at now (a child the client has already used or let expire is
 * no retry's answer: core revokes the family).  *ok false otherwise.
 */
static once_status lineage_holds(struct once__pg *p, struct once__pg_conn *c,
                                 const struct once__pg_row *row,
                                 const struct once__pg_successor *succ, bool v1, int64_t now,
                                 bool *ok)
{
	*ok = false;
	if (row->generation >= INT32_MAX || succ->generation != row->generation + 1)
		return ONCE_OK;
	char child_hash[ONCE_PG_SECRET_HASH_LEN + 1], gen[24];
	once__pg_secret_hash(succ->token, succ->token_len, child_hash);
	snprintf(gen, sizeof gen, "%lld", (long long)(row->generation + 1));
	const char *params[] = {child_hash, row->family_id, gen};
	char sqlstate[6];
	PGresult *res = once__pg_run(p, c, &get_child, params, sqlstate);
	if (res == NULL)
		return strcmp(sqlstate, "53200") == 0 ? ONCE_NOMEM : ONCE_IO;
	if (PQntuples(res) == 1) {
		struct once__pg_row child;
		once_status st = once__pg_row_read(res, 0, &child);
		if (st == ONCE_OK)
			*ok = (child.parent_hash != NULL ? strcmp(child.parent_hash, row->token_hash) == 0
			                                 : v1) &&
			      !child.consumed && child.expires_at > now &&
			      context_matches(&succ->context, &child);
		once__pg_row_free(&child);
		if (st == ONCE_NOMEM) {
			PQclear(res);
			return st;
		}
	}
	PQclear(res);
	return ONCE_OK;
}

/*
 * The parent's half of core's retry_window (ATTESTO-PG 2.2.4), at now
 * (the store clock): the parent has not expired (now < expires_at) and
 * now <= retry_until: the envelope's for v2, for v1 (which carries none)
 * the derived min(consumed_at + grace, expires_at - 1) (refresh_token.ex
 * derive_legacy_retry_deadline; a v1 row with no consumed_at has none),
 * with this store's pg_rotation_grace as core uses its configuration's.
 *
 * Core also requires now - consumed_at <= grace.  For a row an
 * AttestoPhoenix node rotated that adds nothing (retry_until <=
 * consumed_at + grace, the two written together), and this engine's
 * remember_successor seals at the time it is called, after the consume:
 * its retry_until, not the consume, bounds the retry here.
 */
static bool retry_window_open(const struct once__pg *p, const struct once__pg_row *row,
                              const struct once__pg_successor *succ, bool v1, int64_t now)
{
	if (now >= row->expires_at)
		return false;
	if (v1)
		return row->consumed_at > 0 &&
		       now <= retry_deadline(row->consumed_at, p->opt.pg_rotation_grace,
		                             row->expires_at);
	return succ->has_retry_until && now <= succ->retry_until;
}

once_status once__pg_refresh_successor(struct once__pg *p, struct once__pg_conn *c,
                                       const struct once__pg_row *row, char **token,
                                       size_t *len)
{
	*token = NULL;
	*len = 0;
	if (row->successor == NULL || !row->consumed)
		return ONCE_OK;
	struct once__pg_successor_row binding = {
		.parent_hash = row->token_hash,
		.family_id = row->family_id,
		.parent_generation = row->generation,
	};
	struct once__pg_successor succ;
	enum once__pg_open how =
	        once__pg_successor_open(p->successor_secret, p->successor_secret_len, &binding,
	                                row->successor, strlen(row->successor), &succ);
	if (how == ONCE_PG_OPEN_NOMEM)
		return ONCE_NOMEM;
	if (how != ONCE_PG_OPEN_V2 && how != ONCE_PG_OPEN_V1)
		return ONCE_OK; /* tombstone, malformed, no secret, tampered: none */
	bool v1 = how == ONCE_PG_OPEN_V1, ok = false;
	int64_t now = once__pg_now(p);
	once_status st = ONCE_OK;
	if (retry_window_open(p, row, &succ, v1, now))
		st = lineage_holds(p, c, row, &succ, v1, now, &ok);
	if (st == ONCE_OK && ok) {
		if ((*token = malloc(succ.token_len + 1)) == NULL) {
			st = ONCE_NOMEM;
		} else {
			memcpy(*token, succ.token, succ.token_len);
			(*token)[succ.token_len] = '\0';
			*len = succ.token_len;
		}
	}
	once__pg_successor_free(&succ);
	return st;
}

/* ---- the sweeper's redaction (ATTESTO-PG 2.2.6) ---- */

/*
 * Shapes, written so that no value makes a statement fail: PostgreSQL
 * does not promise to evaluate AND's operands in order, so every cast
 * and every object operator sits inside a CASE that has checked the type
 * first (a scalar successor would make `-` or jsonb_object_keys raise).
 * Numbers stay jsonb/numeric throughout: 2^63, -1 or 1.5 compare fine
 * where a bigint cast would raise.
 */
#define SUCC "r.successor"
/* retry_until as numeric when it is a JSON number, else NULL. */
#define RETRY_NUMERIC                                                                              \
	"(CASE WHEN jsonb_typeof(" SUCC "->'retry_until') = 'number'"                              \
	" THEN (" SUCC "->>'retry_until')::numeric END)"
/* An object with exactly these keys (a text[] literal). */
#define EXACT_KEYS(keys)                                                                           \
	"(CASE WHEN jsonb_typeof(" SUCC ") = 'object' THEN " SUCC " ?& " keys " AND (" SUCC        \
	" - " keys ") = '{}'::jsonb ELSE false END)"
#define INTEGRAL(num) "(COALESCE(" num " = trunc(" num "), false))"
#define IS_V2                                                                                      \
	"(" EXACT_KEYS("ARRAY['v','ciphertext','retry_until','child_hash']") " AND " SUCC          \
	"->'v' = '2'::jsonb AND jsonb_typeof(" SUCC "->'ciphertext') = 'string' AND "              \
	"jsonb_typeof(" SUCC "->'child_hash') = 'string' AND " INTEGRAL(RETRY_NUMERIC) ")"
/* The exact strict tombstone.  The sweep meets it on nearly every rotated
 * row, so it is the cheapest exact test: containment first (it implies an
 * object, v = 1 and recoverable = false), then no other key, then a
 * retry_until that is an integral number, cast once. */
#define IS_TOMBSTONE                                                                               \
	"(CASE WHEN " SUCC " @> '{\"v\": 1, \"recoverable\": false}'::jsonb THEN (" SUCC           \
	" - ARRAY['v','retry_until','recoverable']) = '{}'::jsonb AND jsonb_typeof(" SUCC          \
	"->'retry_until') = 'number' AND mod((" SUCC "->'retry_until')::numeric, 1) = 0"           \
	" ELSE false END)"
#define IS_V1                                                                                      \
	"(" EXACT_KEYS("ARRAY['v','ciphertext']") " AND " SUCC "->'v' = '1'::jsonb AND "           \
	"jsonb_typeof(" SUCC "->'ciphertext') = 'string')"
/* P: the last second a retry may use the parent, clamped to [0, 2^63-1]. */
#define LAST_SECOND                                                                                \
	"GREATEST(LEAST(floor(extract(epoch FROM r.expires_at)) - 1, 9223372036854775807), 0)"
/* v1's derived deadline, min(consumed_at + grace, P) (refresh_token.ex
 * derive_legacy_retry_deadline); now when either time is missing. */
#define V1_DEADLINE                                                                                \
	"(CASE WHEN r.consumed_at IS NOT NULL AND r.expires_at IS NOT NULL THEN "                  \
	"LEAST(GREATEST(LEAST(floor(extract(epoch FROM r.consumed_at)) + $3::numeric, "            \
	"9223372036854775807), 0), " LAST_SECOND ") ELSE $1::numeric END)"

/* A cheap first test for v2 (one containment per row), so that a sweep
 * over a table of a million rotated rows, nearly all of them tombstones
 * redacted long ago, does not evaluate IS_V2 on each; IS_V2 still decides. */
#define MAY_BE_V2 "(" SUCC " @> '{\"v\": 2}'::jsonb)"

/* $1 now (unix seconds), $2 now (timestamp). */
#define V2_DUE                                                                                     \
	SUCC " IS NOT NULL AND " MAY_BE_V2 " AND " IS_V2 " AND (" RETRY_NUMERIC " < $1::numeric"   \
	" OR r.expires_at <= $2::timestamp)"
/* $1 now (unix seconds), $2 now (timestamp), $3 grace (seconds).  v1
 * envelopes once their derived deadline has passed (or the parent has
 * expired); anything malformed at once. */
#define OTHER_DUE                                                                                  \
	SUCC " IS NOT NULL AND NOT " IS_TOMBSTONE " AND NOT (" MAY_BE_V2 " AND " IS_V2 ")"    \
	" AND (NOT " IS_V1 " OR " V1_DEADLINE " < $1::numeric OR r.expires_at <= $2::timestamp)"

/*
 * Like the sweep's deletes (pg/sweep.c), at most REDACT_BATCH rows per
 * statement, chosen by ctid in a sub-select, the condition repeated on
 * the row's newest version.  A redacted row is an exact tombstone, which
 * neither condition selects again, so the batches end.
 */
#define REDACT_BATCH 1000
#define REDACT_BATCH_TEXT "1000"
#define BATCHED_REDACT(value, cond)                                                                \
	"UPDATE {refresh} r SET successor = " value " WHERE r.ctid = ANY (ARRAY(SELECT r.ctid"     \
	" FROM {refresh} r WHERE " cond " LIMIT " REDACT_BATCH_TEXT ")) AND " cond

static const struct once__pg_sql redact_v2 = {
	ONCE_PG_SWEEP_REDACT_V2,
	BATCHED_REDACT("jsonb_build_object('v', 1, 'retry_until', LEAST(" RETRY_NUMERIC ", "
	               LAST_SECOND "), 'recoverable', false)",
	               V2_DUE),
	2,
};

static const struct once__pg_sql redact_other = {
	ONCE_PG_SWEEP_REDACT_OTHER,
	BATCHED_REDACT("jsonb_build_object('v', 1, 'retry_until', " V1_DEADLINE
	               ", 'recoverable', false)",
	               OTHER_DUE),
	3,
};

/* Runs one redaction until a batch comes back short; *redacted counts. */
static once_status redact_all(struct once__pg *p, struct once__pg_conn *c,
                              const struct once__pg_sql *sql, const char *const *params,
                              uint64_t *redacted)
{
	uint64_t rows;
	do {
		PGresult *res = once__pg_run(p, c, sql, params, NULL);
		if (res == NULL)
			return ONCE_IO;
		rows = once__pg_rows(res);
		PQclear(res);
		*redacted += rows;
	} while (rows >= REDACT_BATCH);
	return ONCE_OK;
}

once_status once__pg_sweep_redact(struct once__pg *p, struct once__pg_conn *c, int64_t now)
{
	char now_num[24], now_ts[32], grace[24];
	snprintf(now_num, sizeof now_num, "%lld", (long long)now);
	snprintf(grace, sizeof grace, "%lld", (long long)p->opt.pg_rotation_grace);
	once__pg_time_text(now, now_ts);
	const char *v2_params[] = {now_num, now_ts};
	const char *other_params[] = {now_num, now_ts, grace};
	uint64_t redacted = 0;
	once_status st = redact_all(p, c, &redact_v2, v2_params, &redacted);
	if (st == ONCE_OK)
		st = redact_all(p, c, &redact_other, other_params, &redacted);
	return st;
}
