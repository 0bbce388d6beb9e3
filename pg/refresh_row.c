/*
 * pg/refresh_row.c - a refresh token as a row of attesto_refresh_tokens
 * (ATTESTO-PG 2.2.1): the caller's record checked and turned into
 * statement parameters, and a row read back into the caller's copy.
 *
 * The layout is stricter than the embedded store and AttestoPhoenix
 * refuses to read what it does not expect, so everything is checked here,
 * before any statement runs: bad input is ONCE_INVALID with nothing
 * written (guarantee 3), never a server error halfway through a
 * transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h" /* once__refresh_size, once__refresh_pack_at (core/record.c) */
#include "refresh.h"

/* ---- text the layout can hold ---- */

/* A C string for a varchar(max) column: NULL is fine unless required. */
static bool varchar_ok(const char *s, size_t max, bool required)
{
	if (s == NULL)
		return !required;
	size_t len = strlen(s);
	return (len > 0 || !required) && once__pg_text_fits(s, len, max);
}

static bool list_ok(const char *const *v, size_t n)
{
	if (n > 0 && v == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] == NULL || !varchar_ok(v[i], ONCE_PG_IDENT_MAX, false))
			return false;
	return true;
}

/* A JWK thumbprint as AttestoPhoenix accepts it in cnf.jkt (ATTESTO-PG
 * 2.1): 43 characters of base64url. */
static bool thumbprint_ok(const char *s)
{
	if (strlen(s) != 43)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '-' || *c == '_'))
			return false;
	return true;
}

/* ---- a new row ---- */

/* What once_refresh_insert checks on every engine, plus the layout. */
static bool record_fits_layout(const once_refresh *r)
{
	return r != NULL && varchar_ok(r->family_id, ONCE_PG_IDENT_MAX, true) &&
	       varchar_ok(r->subject, ONCE_PG_IDENT_MAX, true) &&
	       r->expires_at >= ONCE_TIME_MIN && r->expires_at <= ONCE_TIME_MAX &&
	       r->generation >= 0 && r->generation <= INT32_MAX && !r->consumed && !r->revoked &&
	       r->consumed_at == 0 && r->successor == NULL && r->successor_len == 0 &&
	       (r->claims_len == 0 || r->claims != NULL) &&
	       varchar_ok(r->client_id, ONCE_PG_IDENT_MAX, false) &&
	       varchar_ok(r->acr, ONCE_PG_IDENT_MAX, false) &&
	       (r->dpop_jkt == NULL || thumbprint_ok(r->dpop_jkt)) && r->x5t_s256 == NULL &&
	       (r->parent_hash == NULL || (strlen(r->parent_hash) <= ONCE_PG_HASH_MAX &&
	                                   varchar_ok(r->parent_hash, ONCE_PG_HASH_MAX, true))) &&
	       list_ok(r->scope, r->scope_count) && list_ok(r->resource, r->resource_count);
}

once_status once__pg_new_row_make(struct once__pg *p, const once_refresh *r,
                                  struct once__pg_new_row *out)
{
	memset(out, 0, sizeof *out);
	if (!record_fits_layout(r))
		return ONCE_INVALID;
	/* The embedded engine's limits, on every engine (once_refresh_insert):
	 * family_id at most max_key_len bytes, the record (as given: this
	 * engine keeps scope's duplicates) at most max_record_len. */
	if (strlen(r->family_id) > p->opt.max_key_len ||
	    r->scope_count > p->opt.max_record_len / sizeof(char *) ||
	    once__refresh_size(r, p->opt.max_record_len) == 0)
		return ONCE_INVALID;
	int64_t now = once__pg_now(p);
	once__pg_uuid(out->id);
	snprintf(out->generation, sizeof out->generation, "%lld", (long long)r->generation);
	/* auth_time 0 is the API's "not given": NULL, as AttestoPhoenix
	 * writes an absent auth_time (ATTESTO-PG 2.2.1). */
	if (r->auth_time != 0)
		snprintf(out->auth_time, sizeof out->auth_time, "%lld", (long long)r->auth_time);
	once__pg_time_text(r->expires_at, out->expires_at);
	once__pg_time_text(now, out->inserted_at);
	once_status st = once__pg_claims_encode(r->claims, r->claims_len, NULL, p->issuer, &out->claims);
	if (st != ONCE_OK)
		return st;
	out->scope = once__pg_array_text(r->scope_count ? r->scope : NULL, r->scope_count);
	out->resource = once__pg_array_text(r->resource_count ? r->resource : NULL, r->resource_count);
	if (out->scope == NULL || out->resource == NULL) {
		once__pg_new_row_free(out);
		return ONCE_NOMEM;
	}
	if (r->dpop_jkt != NULL) {
		/* cnf is exactly {"jkt":...} (ATTESTO-PG 6.6); the thumbprint is
		 * base64url, so it needs no escaping. */
		size_t n = strlen(r->dpop_jkt) + sizeof "{\"jkt\":\"\"}";
		if ((out->cnf = malloc(n)) == NULL) {
			once__pg_new_row_free(out);
			return ONCE_NOMEM;
		}
		snprintf(out->cnf, n, "{\"jkt\":\"%s\"}", r->dpop_jkt);
	}
	return ONCE_OK;
}

void once__pg_new_row_free(struct once__pg_new_row *nr)
{
	free(nr->scope);
	free(nr->resource);
	free(nr->cnf);
	free(nr->claims);
	nr->scope = nr->resource = nr->cnf = nr->claims = NULL;
}

/* ---- reading a row ---- */

static const char *text_or_null(const PGresult *res, int i, int col)
{
	return PQgetisnull(res, i, col) ? NULL : PQgetvalue(res, i, col);
}

static bool int_value(const char *text, int64_t *v)
{
	char *end;
	errno = 0;
	long long x = strtoll(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return false;
	*v = x;
	return true;
}

static bool time_or_zero(const PGresult *res, int i, int col, int64_t *v)
{
	*v = 0;
	const char *t = text_or_null(res, i, col);
	return t == NULL || once__pg_time_parse(t, v);
}

/* cnf: NULL, or exactly {"jkt": "<thumbprint>"}; anything else makes the
 * row unreadable, as AttestoPhoenix marks it invalid (ATTESTO-PG 2.2.1). */
static once_status read_cnf(const char *cnf, char **jkt)
{
	*jkt = NULL;
	if (cnf == NULL)
		return ONCE_OK;
	json_t *j = json_loads(cnf, JSON_REJECT_DUPLICATES, NULL);
	json_t *v = j ? json_object_get(j, "jkt") : NULL;
	once_status st = ONCE_INVALID;
	if (json_is_object(j) && json_object_size(j) == 1 && json_is_string(v) &&
	    thumbprint_ok(json_string_value(v))) {
		*jkt = strdup(json_string_value(v));
		st = *jkt ? ONCE_OK : ONCE_NOMEM;
	}
	json_decref(j);
	return st;
}

/* The caller's claims: the object compacted (the server prints jsonb with
 * spaces and its own key order), NULL for {}.  An object AttestoPhoenix
 * would not have written (a float) is handed over as the server printed
 * it: it is the caller's data, and nothing here interprets it. */
static once_status read_claims(const char *json, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	json_t *j = json_loads(json, 0, NULL);
	bool object = json_is_object(j), empty = object && json_object_size(j) == 0;
	json_decref(j);
	if (!object)
		return ONCE_INVALID;
	if (empty)
		return ONCE_OK;
	once_status st = once__pg_claims_encode(json, strlen(json), NULL, NULL, out);
	if (st == ONCE_INVALID)
		*out = strdup(json), st = *out ? ONCE_OK : ONCE_NOMEM;
	if (st == ONCE_OK)
		*len = strlen(*out);
	return st;
}

static bool read_list(const PGresult *res, int i, int col, char ***v, size_t *n)
{
	const char *t = text_or_null(res, i, col);
	*v = NULL;
	*n = 0;
	return t != NULL && once__pg_array_parse(t, v, n);
}

once_status once__pg_row_read(const PGresult *res, int i, struct once__pg_row *row)
{
	memset(row, 0, sizeof *row);
	if (PQnfields(res) != ONCE_PG_COL_COUNT)
		return ONCE_INVALID;
	row->id = PQgetvalue(res, i, ONCE_PG_COL_ID);
	row->token_hash = PQgetvalue(res, i, ONCE_PG_COL_TOKEN_HASH);
	row->family_id = PQgetvalue(res, i, ONCE_PG_COL_FAMILY_ID);
	row->client_id = text_or_null(res, i, ONCE_PG_COL_CLIENT_ID);
	row->subject = PQgetvalue(res, i, ONCE_PG_COL_SUBJECT);
	row->acr = text_or_null(res, i, ONCE_PG_COL_ACR);
	row->attestation_jkt = text_or_null(res, i, ONCE_PG_COL_ATTESTATION_JKT);
	row->claims_json = PQgetvalue(res, i, ONCE_PG_COL_CLAIMS);
	row->successor = text_or_null(res, i, ONCE_PG_COL_SUCCESSOR);
	row->parent_hash = text_or_null(res, i, ONCE_PG_COL_PARENT_HASH);
	row->consumed = PQgetvalue(res, i, ONCE_PG_COL_CONSUMED)[0] == 't';
	row->family_revoked = PQgetvalue(res, i, ONCE_PG_COL_FAMILY_REVOKED)[0] == 't';
	const char *fexp = text_or_null(res, i, ONCE_PG_COL_FAMILY_EXPIRES_AT);
	const char *auth = text_or_null(res, i, ONCE_PG_COL_AUTH_TIME);
	row->has_family_expires_at = fexp != NULL;
	row->has_auth_time = auth != NULL;
	if (!int_value(PQgetvalue(res, i, ONCE_PG_COL_GENERATION), &row->generation) ||
	    (auth != NULL && !int_value(auth, &row->auth_time)) ||
	    (fexp != NULL && !int_value(fexp, &row->family_expires_at)) ||
	    !time_or_zero(res, i, ONCE_PG_COL_CONSUMED_AT, &row->consumed_at) ||
	    !time_or_zero(res, i, ONCE_PG_COL_EXPIRES_AT, &row->expires_at) ||
	    !time_or_zero(res, i, ONCE_PG_COL_INSERTED_AT, &row->inserted_at))
		return ONCE_INVALID;
	if (!read_list(res, i, ONCE_PG_COL_SCOPE, &row->scope, &row->scope_count) ||
	    !read_list(res, i, ONCE_PG_COL_RESOURCE, &row->resource, &row->resource_count))
		return ONCE_INVALID; /* malformed or NOMEM: either way not served */
	once_status st = read_cnf(text_or_null(res, i, ONCE_PG_COL_CNF), &row->dpop_jkt);
	if (st == ONCE_OK)
		st = read_claims(row->claims_json, &row->claims, &row->claims_len);
	return st;
}

void once__pg_row_free(struct once__pg_row *row)
{
	if (row->scope != NULL)
		once__pg_array_free(row->scope, row->scope_count);
	if (row->resource != NULL)
		once__pg_array_free(row->resource, row->resource_count);
	free(row->dpop_jkt);
	free(row->claims);
	memset(row, 0, sizeof *row);
}

once_refresh *once__pg_row_record(const struct once__pg_row *row, const void *successor,
                                  size_t successor_len)
{
	once_refresh r = {
		.family_id = row->family_id,
		.subject = row->subject,
		.expires_at = row->expires_at,
		.generation = row->generation,
		.client_id = row->client_id,
		.scope = (const char *const *)row->scope,
		.scope_count = row->scope_count,
		.resource = (const char *const *)row->resource,
		.resource_count = row->resource_count,
		.acr = row->acr,
		.auth_time = row->auth_time,
		.dpop_jkt = row->dpop_jkt,
		.claims = row->claims,
		.claims_len = row->claims_len,
		.parent_hash = row->parent_hash,
		.consumed = row->consumed,
		.consumed_at = row->consumed ? row->consumed_at : 0,
		.inserted_at = row->inserted_at,
	};
	size_t size = once__refresh_size(&r, SIZE_MAX);
	if (size == 0 || successor_len > SIZE_MAX - size)
		return NULL;
	char *block = malloc(size + successor_len);
	if (block == NULL)
		return NULL;
	once_refresh *out = once__refresh_pack_at(block, size, &r);
	if (successor != NULL && successor_len > 0) {
		memcpy(block + size, successor, successor_len);
		out->successor = block + size;
		out->successor_len = successor_len;
	}
	return out;
}
