/*
 * pg/code.c - authorization codes and the access tokens minted from them,
 * on attesto_authorization_codes (ATTESTO-PG 2.1, EctoCodeStore).
 *
 * One row per code, keyed by code_hash.  The single-use decision is the
 * server's: take is one UPDATE ... WHERE consumed_at IS NULL RETURNING,
 * and of any number of concurrent ones exactly one sees the row (the
 * others wait on its row lock, re-check consumed_at and find it set).
 *
 * Columns as AttestoPhoenix writes them: the OIDC nonce inside
 * claims["nonce"] (the nonce column NULL), cnf exactly {"jkt": ...} or
 * NULL, code_challenge_method 'S256' with a challenge and NULL without,
 * whole UTC seconds.  Read back, a legacy non-NULL nonce column wins over
 * claims["nonce"], and the string claims["nonce"] is returned as the
 * record's nonce, not inside its claims.
 *
 * Access tokens live on the code rows of their family (the 2.x
 * record_access_token path, the only one the API's (family, jti) call
 * maps to): recording sets access_token_jti / _expires_at on every row of
 * the family, so a family tracks one token, the latest recorded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pg.h"

#define CODE_COLUMNS                                                                               \
	"client_id, subject, scope, resource, redirect_uri, code_challenge, code_challenge_method, " \
	"cnf->>'jkt', "                                                                            \
	"COALESCE(nonce, CASE WHEN jsonb_typeof(claims->'nonce') = 'string' "                      \
	"THEN claims->>'nonce' END), "                                                             \
	"CASE WHEN jsonb_typeof(claims->'nonce') = 'string' THEN claims - 'nonce' ELSE claims END, " \
	"family_id, expires_at, inserted_at, consumed_at, consumed_success"

enum code_column {
	COL_CLIENT_ID,
	COL_SUBJECT,
	COL_SCOPE,
	COL_RESOURCE,
	COL_REDIRECT_URI,
	COL_CHALLENGE,
	COL_METHOD,
	COL_JKT,
	COL_NONCE,
	COL_CLAIMS,
	COL_FAMILY_ID,
	COL_EXPIRES_AT,
	COL_INSERTED_AT,
	COL_CONSUMED_AT,
	COL_CONSUMED_SUCCESS,
};

static const struct once__pg_sql code_put_sql = {
	ONCE_PG_CODE_PUT,
	"INSERT INTO {codes} (code_hash, client_id, subject, scope, resource, redirect_uri, "
	"code_challenge, code_challenge_method, cnf, nonce, claims, family_id, access_token_jti, "
	"access_token_expires_at, access_token_revoked_at, expires_at, consumed_at, consumed_success, "
	"inserted_at) VALUES ($1, $2, $3, $4::varchar[], $5::varchar[], $6, $7, $8, $9::jsonb, NULL, "
	"$10::jsonb, $11, NULL, NULL, NULL, $12::timestamp, NULL, false, $13::timestamp) "
	"ON CONFLICT (code_hash) DO NOTHING",
	13,
};

static const struct once__pg_sql code_get_sql = {
	ONCE_PG_CODE_GET,
	"SELECT " CODE_COLUMNS " FROM {codes} WHERE code_hash = $1 AND consumed_at IS NULL",
	1,
};

static const struct once__pg_sql code_take_sql = {
	ONCE_PG_CODE_TAKE,
	"UPDATE {codes} SET consumed_at = $2::timestamp WHERE code_hash = $1 AND consumed_at IS NULL "
	"RETURNING " CODE_COLUMNS,
	2,
};

static const struct once__pg_sql code_take_loser_sql = {
	ONCE_PG_CODE_TAKE_LOSER,
	"SELECT family_id, subject, consumed_success FROM {codes} WHERE code_hash = $1",
	1,
};

/* mark_consumed without its family argument: family_id stays as it is. */
static const struct once__pg_sql code_finalize_sql = {
	ONCE_PG_CODE_FINALIZE,
	"UPDATE {codes} SET consumed_success = true WHERE code_hash = $1 AND consumed_at IS NOT NULL",
	1,
};

static const struct once__pg_sql access_exists_sql = {
	ONCE_PG_ACCESS_RECORD_EXISTS,
	"SELECT TRUE FROM {codes} WHERE access_token_jti = $1 LIMIT 1",
	1,
};

static const struct once__pg_sql access_record_sql = {
	ONCE_PG_ACCESS_RECORD,
	"UPDATE {codes} SET access_token_jti = $2, access_token_expires_at = $3::timestamp "
	"WHERE family_id = $1",
	3,
};

static const struct once__pg_sql access_revoke_sql = {
	ONCE_PG_ACCESS_REVOKE,
	"UPDATE {codes} SET access_token_revoked_at = $2::timestamp "
	"WHERE family_id = $1 AND access_token_jti IS NOT NULL",
	2,
};

static const struct once__pg_sql access_revoked_sql = {
	ONCE_PG_ACCESS_REVOKED,
	"SELECT TRUE FROM {codes} WHERE access_token_jti = $1 AND access_token_revoked_at IS NOT NULL "
	"AND access_token_expires_at > $2::timestamp LIMIT 1",
	2,
};

/* ---- input ---- */

/*
 * A key of this engine: 1..max_key_len bytes as everywhere (else
 * ONCE_INVALID), and text its varchar column takes.  A key that does not
 * fit is ONCE_INVALID for a write (nothing could store it) and `absent`
 * for a read (nothing can have stored it).  *out is malloc'd.
 */
static once_status key_param(const struct once__pg *p, const void *key, size_t len,
                             size_t column_chars, once_status absent, char **out)
{
	if (key == NULL || len == 0 || len > p->opt.max_key_len)
		return ONCE_INVALID;
	if (!once__pg_text_fits(key, len, column_chars))
		return absent;
	*out = once__pg_key_text(key, len, column_chars);
	return *out ? ONCE_OK : ONCE_NOMEM;
}

static bool fits(const char *s, size_t column_chars)
{
	return s == NULL || once__pg_text_fits(s, strlen(s), column_chars);
}

static bool list_fits(const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!fits(v[i], ONCE_PG_IDENT_MAX))
			return false;
	return true;
}

/* cnf must be exactly {"jkt": <RFC 7638 thumbprint>} (ATTESTO-PG 2.1):
 * AttestoPhoenix raises reading anything else, so only the canonical 43
 * base64url characters are written. */
static bool jkt_ok(const char *jkt)
{
	return jkt == NULL ||
	       (strlen(jkt) == ONCE_PG_JKT_MAX &&
	        strspn(jkt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
	                ONCE_PG_JKT_MAX);
}

/* The embedded engine's rules (once__code_valid) plus the columns'. */
static bool code_valid(const struct once__pg *p, const once_code *c)
{
	if (!once__code_valid(c))
		return false;
	/* The layout: no column for an RFC 8705 binding (cnf is exactly
	 * {"jkt":...}), varchar(255) fields, text that is UTF-8. */
	if (c->x5t_s256 != NULL || !jkt_ok(c->dpop_jkt))
		return false;
	if (!fits(c->client_id, ONCE_PG_IDENT_MAX) || !fits(c->subject, ONCE_PG_IDENT_MAX) ||
	    !fits(c->redirect_uri, SIZE_MAX) || !fits(c->code_challenge, ONCE_PG_IDENT_MAX) ||
	    !fits(c->family_id, ONCE_PG_IDENT_MAX) || !fits(c->nonce, SIZE_MAX))
		return false;
	if (!list_fits(c->scope, c->scope_count) || !list_fits(c->resource, c->resource_count))
		return false;
	/* The embedded engine's record size limit, on the record it stores. */
	once_code norm = *c;
	if (norm.code_challenge != NULL)
		norm.code_challenge_method = "S256";
	return once__code_size(&norm, p->opt.max_record_len) != 0;
}

/* ---- put ---- */

/* The statement's text parameters, each malloc'd (or NULL = SQL NULL). */
struct put_params {
	char *scope, *resource, *cnf, *claims;
	char expires[32], now[32];
};

static void put_params_free(struct put_params *pp)
{
	free(pp->scope);
	free(pp->resource);
	free(pp->cnf);
	free(pp->claims);
}

static once_status put_params_make(struct once__pg *p, const once_code *c, struct put_params *pp)
{
	pp->scope = once__pg_array_text(c->scope, c->scope_count);
	pp->resource = once__pg_array_text(c->resource, c->resource_count);
	if (pp->scope == NULL || pp->resource == NULL)
		return ONCE_NOMEM;
	if (c->dpop_jkt != NULL) {
		size_t n = sizeof "{\"jkt\":\"\"}" + ONCE_PG_JKT_MAX;
		pp->cnf = malloc(n);
		if (pp->cnf == NULL)
			return ONCE_NOMEM;
		snprintf(pp->cnf, n, "{\"jkt\":\"%s\"}", c->dpop_jkt); /* base64url: nothing to escape */
	}
	once_status st = once__pg_claims_encode(c->claims, c->claims_len, c->nonce, NULL, &pp->claims);
	if (st != ONCE_OK)
		return st;
	once__pg_time_text(c->expires_at, pp->expires);
	once__pg_time_text(once__pg_now(p), pp->now);
	return ONCE_OK;
}

static once_status put(struct once__pg *p, const void *hash, size_t hlen, const once_code *c)
{
	if (c == NULL || !code_valid(p, c))
		return ONCE_INVALID;
	char *key = NULL;
	once_status st = key_param(p, hash, hlen, ONCE_PG_HASH_MAX, ONCE_INVALID, &key);
	struct put_params pp = {0};
	if (st == ONCE_OK)
		st = put_params_make(p, c, &pp);
	if (st == ONCE_OK) {
		const char *method = c->code_challenge ? "S256" : NULL;
		const char *params[13] = {key,        c->client_id,      c->subject, pp.scope,
		                          pp.resource, c->redirect_uri,   c->code_challenge,
		                          method,      pp.cnf,            pp.claims,  c->family_id,
		                          pp.expires,  pp.now};
		PGresult *r;
		st = once__pg_exec(p, &code_put_sql, params, &r);
		if (st == ONCE_OK) {
			st = once__pg_rows(r) == 1 ? ONCE_OK : ONCE_EXISTS; /* no upsert */
			PQclear(r);
		}
	}
	put_params_free(&pp);
	free(key);
	return st;
}

once_status once__pg_code_put(once_store *s, const void *hash, size_t hlen, const once_code *c,
                              once_ticket *ticket)
{
	(void)ticket; /* committed when it returns: tickets stay 0 */
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_CODE_PUT, put(p, hash, hlen, c));
}

/* ---- reading a row into a record ---- */

static const char *text_at(const PGresult *r, int col)
{
	return PQgetisnull(r, 0, col) ? NULL : PQgetvalue(r, 0, col);
}

/* A time column; false when it is NULL or unreadable. */
static bool time_at(const PGresult *r, int col, int64_t *t)
{
	return once__pg_time_parse(text_at(r, col), t);
}

/* A malformed row (a value no writer of the layout produces) is reported
 * as ONCE_IO: the engine cannot tell what it holds. */
static once_status code_from_row(const PGresult *r, once_code **out)
{
	once_code c = {0};
	char **scope = NULL, **resource = NULL;
	size_t nscope = 0, nresource = 0;
	char *compact = NULL;
	once_status st = ONCE_IO;
	if (!once__pg_array_parse(text_at(r, COL_SCOPE), &scope, &nscope) ||
	    !once__pg_array_parse(text_at(r, COL_RESOURCE), &resource, &nresource))
		goto done;
	c.scope = (const char *const *)scope;
	c.scope_count = nscope;
	c.resource = (const char *const *)resource;
	c.resource_count = nresource;
	c.client_id = text_at(r, COL_CLIENT_ID);
	c.subject = text_at(r, COL_SUBJECT);
	c.redirect_uri = text_at(r, COL_REDIRECT_URI);
	c.code_challenge = text_at(r, COL_CHALLENGE);
	c.code_challenge_method = text_at(r, COL_METHOD);
	c.dpop_jkt = text_at(r, COL_JKT);
	c.nonce = text_at(r, COL_NONCE);
	c.family_id = text_at(r, COL_FAMILY_ID);
	/* Claims compacted, as the header promises and refresh tokens have them
	 * (pg/refresh_row.c read_claims): the server prints jsonb with spaces.
	 * One the encoder refuses (a float another writer stored) is handed
	 * over as the server printed it. */
	const char *claims = text_at(r, COL_CLAIMS);
	if (claims != NULL && strcmp(claims, "{}") != 0) { /* {} is what "no claims" wrote */
		once_status cst = once__pg_claims_encode(claims, strlen(claims), NULL, NULL, &compact);
		if (cst == ONCE_NOMEM) {
			st = ONCE_NOMEM;
			goto done;
		}
		c.claims = cst == ONCE_OK ? compact : claims;
		c.claims_len = strlen(c.claims);
	}
	if (!time_at(r, COL_EXPIRES_AT, &c.expires_at) || !time_at(r, COL_INSERTED_AT, &c.inserted_at))
		goto done;
	if (!PQgetisnull(r, 0, COL_CONSUMED_AT) && !time_at(r, COL_CONSUMED_AT, &c.consumed_at))
		goto done;
	c.consumed_success = strcmp(PQgetvalue(r, 0, COL_CONSUMED_SUCCESS), "t") == 0;
	st = ONCE_NOMEM;
	size_t size = once__code_size(&c, SIZE_MAX);
	void *block = size ? malloc(size) : NULL;
	if (block != NULL) {
		*out = once__code_pack_at(block, size, &c);
		st = ONCE_OK;
	}
done:
	free(compact);
	once__pg_array_free(scope, nscope);
	once__pg_array_free(resource, nresource);
	return st;
}

/* ---- get, take, finalize ---- */

static once_status get(struct once__pg *p, const void *hash, size_t hlen, once_code **out)
{
	char *key = NULL;
	once_status st = key_param(p, hash, hlen, ONCE_PG_HASH_MAX, ONCE_NOT_FOUND, &key);
	if (st != ONCE_OK)
		return st;
	PGresult *r;
	st = once__pg_exec(p, &code_get_sql, (const char *const[]){key}, &r);
	free(key);
	if (st != ONCE_OK)
		return st;
	st = once__pg_rows(r) == 0 ? ONCE_NOT_FOUND : out ? code_from_row(r, out) : ONCE_OK;
	PQclear(r);
	return st;
}

once_status once__pg_code_get(once_store *s, const void *hash, size_t hlen, once_code **out)
{
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_CODE_GET, get(p, hash, hlen, out));
}

/* The take found no unconsumed row: a replay of a finalized code (SPENT,
 * with what it reveals) or nothing to report (NOT_FOUND). */
static once_status take_lost(struct once__pg *p, struct once__pg_conn *c, const char *key,
                             once_code_meta **meta)
{
	PGresult *r = once__pg_run(p, c, &code_take_loser_sql, (const char *const[]){key}, NULL);
	if (r == NULL)
		return ONCE_IO;
	once_status st = ONCE_NOT_FOUND;
	if (once__pg_rows(r) == 1 && strcmp(PQgetvalue(r, 0, 2), "t") == 0) {
		st = ONCE_SPENT;
		if (meta != NULL) {
			once_code row = {.family_id = text_at(r, 0), .subject = text_at(r, 1)};
			once_code_meta *m = once__code_meta_pack(&row);
			if (m == NULL)
				st = ONCE_NOMEM;
			else
				*meta = m;
		}
	}
	PQclear(r);
	return st;
}

/*
 * The claim is committed when the UPDATE returns, before the copy is made:
 * unlike the embedded engine, ONCE_NOMEM or ONCE_IO from a take may come
 * after the code was spent (the caller refuses either way).
 */
static once_status take(struct once__pg *p, const void *hash, size_t hlen, once_code **out,
                        once_code_meta **meta)
{
	char *key = NULL;
	once_status st = key_param(p, hash, hlen, ONCE_PG_HASH_MAX, ONCE_NOT_FOUND, &key);
	if (st != ONCE_OK)
		return st;
	struct once__pg_conn *c;
	st = once__pg_acquire(p, &c);
	if (st == ONCE_OK) {
		char now[32];
		once__pg_time_text(once__pg_now(p), now);
		PGresult *r = once__pg_run(p, c, &code_take_sql, (const char *const[]){key, now}, NULL);
		if (r == NULL)
			st = ONCE_IO; /* the claim may or may not have happened */
		else if (once__pg_rows(r) == 1)
			st = out ? code_from_row(r, out) : ONCE_OK;
		else
			st = take_lost(p, c, key, meta);
		PQclear(r);
		once__pg_release(p, c);
	}
	free(key);
	return st;
}

once_status once__pg_code_take(once_store *s, const void *hash, size_t hlen, once_code **out,
                               once_code_meta **meta, once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_CODE_TAKE, take(p, hash, hlen, out, meta));
}

static once_status finalize(struct once__pg *p, const void *hash, size_t hlen)
{
	char *key = NULL;
	once_status st = key_param(p, hash, hlen, ONCE_PG_HASH_MAX, ONCE_NOT_FOUND, &key);
	if (st != ONCE_OK)
		return st;
	PGresult *r;
	st = once__pg_exec(p, &code_finalize_sql, (const char *const[]){key}, &r);
	free(key);
	if (st != ONCE_OK)
		return st;
	st = once__pg_rows(r) == 1 ? ONCE_OK : ONCE_NOT_FOUND; /* OK again when already final */
	PQclear(r);
	return st;
}

once_status once__pg_code_finalize(once_store *s, const void *hash, size_t hlen,
                                   once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_CODE_FINALIZE, finalize(p, hash, hlen));
}

/* ---- access tokens ---- */

/*
 * EXISTS is checked by a read before the UPDATE: the layout has no unique
 * index on access_token_jti, so two concurrent records of one jti can
 * both succeed (jti values are minted by the server, unique in practice).
 * A family with no code row has nowhere to keep the token: ONCE_NOT_FOUND.
 */
static once_status record(struct once__pg *p, const void *family_id, size_t flen, const void *jti,
                          size_t jlen, int64_t expires_at)
{
	if (!once__time_valid(expires_at))
		return ONCE_INVALID;
	char *fam = NULL, *tok = NULL;
	once_status st = key_param(p, family_id, flen, ONCE_PG_IDENT_MAX, ONCE_INVALID, &fam);
	if (st == ONCE_OK)
		st = key_param(p, jti, jlen, ONCE_PG_IDENT_MAX, ONCE_INVALID, &tok);
	struct once__pg_conn *c = NULL;
	if (st == ONCE_OK)
		st = once__pg_acquire(p, &c);
	if (st == ONCE_OK) {
		PGresult *r = once__pg_run(p, c, &access_exists_sql, (const char *const[]){tok}, NULL);
		st = r == NULL ? ONCE_IO : once__pg_rows(r) > 0 ? ONCE_EXISTS : ONCE_OK;
		PQclear(r);
		if (st == ONCE_OK) {
			char exp[32];
			once__pg_time_text(expires_at, exp);
			r = once__pg_run(p, c, &access_record_sql, (const char *const[]){fam, tok, exp}, NULL);
			st = r == NULL ? ONCE_IO : once__pg_rows(r) > 0 ? ONCE_OK : ONCE_NOT_FOUND;
			PQclear(r);
		}
		once__pg_release(p, c);
	}
	free(fam);
	free(tok);
	return st;
}

once_status once__pg_access_record(once_store *s, const void *family_id, size_t flen,
                                   const void *jti, size_t jlen, int64_t expires_at,
                                   once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_ACCESS_RECORD,
	                      record(p, family_id, flen, jti, jlen, expires_at));
}

/* Marks the tokens recorded on the family's rows now; a token recorded on
 * rows that had none at this moment is not covered (no family mark). */
static once_status revoke(struct once__pg *p, const void *family_id, size_t flen)
{
	char *fam = NULL;
	once_status st = key_param(p, family_id, flen, ONCE_PG_IDENT_MAX, ONCE_OK, &fam);
	if (st != ONCE_OK || fam == NULL)
		return st; /* a family no row can hold: nothing to revoke */
	char now[32];
	once__pg_time_text(once__pg_now(p), now);
	PGresult *r;
	st = once__pg_exec(p, &access_revoke_sql, (const char *const[]){fam, now}, &r);
	if (st == ONCE_OK)
		PQclear(r);
	free(fam);
	return st;
}

once_status once__pg_access_revoke(once_store *s, const void *family_id, size_t flen,
                                   once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_ACCESS_REVOKE, revoke(p, family_id, flen));
}

/*
 * Revoked while access_token_expires_at > now (AttestoPhoenix's strict
 * comparison).  When the server cannot answer, the token reads as revoked
 * (fail closed: a resource server must not let it through), counted as
 * ONCE_IO.
 */
static once_status revoked(struct once__pg *p, const void *jti, size_t jlen)
{
	char *tok = NULL;
	once_status st = key_param(p, jti, jlen, ONCE_PG_IDENT_MAX, ONCE_NOT_FOUND, &tok);
	if (st != ONCE_OK)
		return st == ONCE_INVALID ? ONCE_NOT_FOUND : st;
	char now[32];
	once__pg_time_text(once__pg_now(p), now);
	PGresult *r;
	st = once__pg_exec(p, &access_revoked_sql, (const char *const[]){tok, now}, &r);
	free(tok);
	if (st != ONCE_OK)
		return st;
	st = once__pg_rows(r) > 0 ? ONCE_OK : ONCE_NOT_FOUND;
	PQclear(r);
	return st;
}

bool once__pg_access_revoked(once_store *s, const void *jti, size_t jlen)
{
	struct once__pg *p = once__pg_of(s);
	once_status st = once__pg_count(p, ONCE_OP_ACCESS_REVOKED, revoked(p, jti, jlen));
	return st != ONCE_NOT_FOUND;
}
