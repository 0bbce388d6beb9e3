/*
 * pg/successor.c - the successor payload inside the ciphertext: the map
 * term_to_binary writes and binary_to_term(…, [safe]) reads (ATTESTO-PG
 * 2.2.5 "Plaintext"), to and from struct once__pg_successor.
 *
 * The map has exactly token, generation, context and retry_until (v1: no
 * retry_until); context has exactly the eight data keys plus
 * family_expires_at and attestation_jkt when set.  Elixir writes atom
 * keys; AttestoPhoenix also reads all-binary keys (exact_successor_keys?,
 * valid_context?(…, :either)), which is what this side writes, so it never
 * needs to make atoms.  Each map must use one kind of key throughout.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "envelope.h"
#include "etf.h"

/* The outer map's keys, in the order of struct once__pg_successor. */
enum { P_TOKEN, P_GENERATION, P_CONTEXT, P_RETRY_UNTIL, P_COUNT };
static const char *const payload_keys[P_COUNT] = {"token", "generation", "context",
                                                  "retry_until"};

/* The context's keys; the last two are written only when set. */
enum {
	C_SUBJECT,
	C_SCOPE,
	C_RESOURCE,
	C_CLIENT_ID,
	C_DPOP_JKT,
	C_ACR,
	C_AUTH_TIME,
	C_CLAIMS,
	C_FAMILY_EXPIRES_AT,
	C_ATTESTATION_JKT,
	C_COUNT
};
static const char *const context_keys[C_COUNT] = {
    "subject",  "scope",     "resource", "client_id",         "dpop_jkt",
    "acr",      "auth_time", "claims",   "family_expires_at", "attestation_jkt"};
#define C_REQUIRED C_FAMILY_EXPIRES_AT /* keys before this one are required */

/* payload (1), context (2), claims (3) ... scalars one below the deepest
 * container. */
_Static_assert(ONCE_PG_CLAIMS_MAX_DEPTH == ONCE_ETF_MAX_DEPTH - 3,
               "claims nest inside the payload and the context");

/* ================================================================
 * Writing
 * ================================================================ */

/* A binary for s, or nil for NULL. */
static void string_or_nil(struct once__etf *t, const char *s)
{
	if (s != NULL)
		once__etf_string(t, s);
	else
		once__etf_atom(t, "nil");
}

static bool string_list(struct once__etf *t, const char *const *v, size_t n)
{
	if (!once__etf_list(t, n))
		return false;
	for (size_t i = 0; i < n; i++)
		once__etf_string(&t->items[i], v[i]);
	return true;
}

/* Claims text -> a term borrowing from *json (kept for the caller to
 * release after encoding).  ONCE_INVALID unless a portable JSON object. */
static once_status claims_term(const char *text, json_t **json, struct once__etf *t)
{
	*json = json_loads(text != NULL ? text : "{}", JSON_REJECT_DUPLICATES, NULL);
	if (*json == NULL || !json_is_object(*json))
		return ONCE_INVALID;
	return once__etf_from_json(*json, t);
}

static bool context_strings_present(const struct once__pg_successor_context *c)
{
	if (c->subject == NULL || (c->nscope > 0 && c->scope == NULL) ||
	    (c->nresource > 0 && c->resource == NULL))
		return false;
	for (size_t i = 0; i < c->nscope; i++)
		if (c->scope[i] == NULL)
			return false;
	for (size_t i = 0; i < c->nresource; i++)
		if (c->resource[i] == NULL)
			return false;
	return true;
}

/* The context map into t (a zeroed term); *claims_json is the parsed
 * claims its binaries borrow from. */
static once_status context_term(const struct once__pg_successor_context *c, json_t **claims_json,
                                struct once__etf *t)
{
	if (!context_strings_present(c))
		return ONCE_INVALID;
	size_t n = C_REQUIRED + c->has_family_expires_at + (c->attestation_jkt != NULL);
	if (!once__etf_map(t, n))
		return ONCE_NOMEM;
	/* Pairs in any order: the encoder sorts them as Erlang does. */
	struct once__etf *kv = t->items;
	for (size_t i = 0; i < C_REQUIRED; i++)
		once__etf_string(&kv[2 * i], context_keys[i]);
	once__etf_string(&kv[2 * C_SUBJECT + 1], c->subject);
	if (!string_list(&kv[2 * C_SCOPE + 1], c->scope, c->nscope) ||
	    !string_list(&kv[2 * C_RESOURCE + 1], c->resource, c->nresource))
		return ONCE_NOMEM;
	string_or_nil(&kv[2 * C_CLIENT_ID + 1], c->client_id);
	string_or_nil(&kv[2 * C_DPOP_JKT + 1], c->dpop_jkt);
	string_or_nil(&kv[2 * C_ACR + 1], c->acr);
	if (c->has_auth_time)
		once__etf_integer(&kv[2 * C_AUTH_TIME + 1], c->auth_time);
	else
		once__etf_atom(&kv[2 * C_AUTH_TIME + 1], "nil");
	once_status st = claims_term(c->claims, claims_json, &kv[2 * C_CLAIMS + 1]);
	if (st != ONCE_OK)
		return st;
	size_t at = C_REQUIRED;
	if (c->has_family_expires_at) {
		once__etf_string(&kv[2 * at], context_keys[C_FAMILY_EXPIRES_AT]);
		once__etf_integer(&kv[2 * at + 1], c->family_expires_at);
		at++;
	}
	if (c->attestation_jkt != NULL) {
		once__etf_string(&kv[2 * at], context_keys[C_ATTESTATION_JKT]);
		once__etf_string(&kv[2 * at + 1], c->attestation_jkt);
	}
	return ONCE_OK;
}

static once_status payload_term(const struct once__pg_successor *s, json_t **claims_json,
                                struct once__etf *t)
{
	if (s->token == NULL || s->generation < 0 || s->generation > INT32_MAX)
		return ONCE_INVALID;
	size_t n = s->has_retry_until ? 4 : 3;
	if (!once__etf_map(t, n))
		return ONCE_NOMEM;
	struct once__etf *kv = t->items;
	for (size_t i = 0; i < n; i++)
		once__etf_string(&kv[2 * i], payload_keys[i]);
	once__etf_binary(&kv[2 * P_TOKEN + 1], s->token, s->token_len);
	once__etf_integer(&kv[2 * P_GENERATION + 1], s->generation);
	if (s->has_retry_until)
		once__etf_integer(&kv[2 * P_RETRY_UNTIL + 1], s->retry_until);
	return context_term(&s->context, claims_json, &kv[2 * P_CONTEXT + 1]);
}

once_status once__pg_successor_encode(const struct once__pg_successor *succ, unsigned char **etf,
                                      size_t *len)
{
	if (succ == NULL || etf == NULL || len == NULL)
		return ONCE_INVALID;
	json_t *claims_json = NULL;
	struct once__etf t = {.type = ONCE_ETF_LIST};
	once_status st = payload_term(succ, &claims_json, &t);
	if (st == ONCE_OK)
		st = once__etf_encode(&t, etf, len);
	once__etf_free(&t);
	json_decref(claims_json);
	return st;
}

/* ================================================================
 * Reading
 * ================================================================ */

/*
 * Looks up the values of map m under names[0..count): vals[i] receives the
 * value or NULL when absent.  false when m is not a map, mixes atom and
 * binary keys, or has a key outside names (duplicates: the decoder already
 * refused them).
 */
static bool map_fields(const struct once__etf *m, const char *const names[], size_t count,
                       const struct once__etf *vals[])
{
	if (m->type != ONCE_ETF_MAP)
		return false;
	for (size_t i = 0; i < count; i++)
		vals[i] = NULL;
	for (size_t k = 0; k < m->n; k++) {
		const struct once__etf *key = &m->items[2 * k];
		if (key->type != m->items[0].type)
			return false; /* all atom or all binary */
		size_t i = 0;
		while (i < count && !(key->len == strlen(names[i]) &&
		                      memcmp(key->bytes, names[i], key->len) == 0))
			i++;
		if (i == count || vals[i] != NULL)
			return false;
		vals[i] = &m->items[2 * k + 1];
	}
	return true;
}

/* A malloc'd C string copy of a binary without NUL bytes; *ok false when t
 * is no such binary, or on NOMEM (then *nomem). */
static char *copy_string(const struct once__etf *t, bool *ok, bool *nomem)
{
	if (!*ok)
		return NULL;
	if (t->type != ONCE_ETF_BINARY || (t->len > 0 && memchr(t->bytes, '\0', t->len) != NULL)) {
		*ok = false;
		return NULL;
	}
	char *s = malloc(t->len + 1);
	if (s == NULL) {
		*ok = false;
		*nomem = true;
		return NULL;
	}
	if (t->len > 0)
		memcpy(s, t->bytes, t->len);
	s[t->len] = '\0';
	return s;
}

/* A binary, or nil -> NULL. */
static char *copy_string_or_nil(const struct once__etf *t, bool *ok, bool *nomem)
{
	return once__etf_is_atom(t, "nil") ? NULL : copy_string(t, ok, nomem);
}

static const char *const *copy_string_list(const struct once__etf *t, size_t *n, bool *ok,
                                           bool *nomem)
{
	*n = 0;
	if (!*ok)
		return NULL;
	if (t->type != ONCE_ETF_LIST) {
		*ok = false;
		return NULL;
	}
	char **v = calloc(t->n > 0 ? t->n : 1, sizeof *v);
	if (v == NULL) {
		*ok = false;
		*nomem = true;
		return NULL;
	}
	*n = t->n; /* so that a failure part-way frees what was copied */
	for (size_t i = 0; i < t->n && *ok; i++)
		v[i] = copy_string(&t->items[i], ok, nomem);
	return (const char *const *)v;
}

/* An integer, or (when nil_ok) nil -> *has false. */
static void read_integer(const struct once__etf *t, bool nil_ok, bool *has, int64_t *v, bool *ok)
{
	*has = false;
	if (!*ok)
		return;
	if (t->type == ONCE_ETF_INTEGER) {
		*has = true;
		*v = t->integer;
	} else if (!(nil_ok && once__etf_is_atom(t, "nil"))) {
		*ok = false;
	}
}

/* Claims map -> compact JSON text with sorted keys. */
static char *claims_text(const struct once__etf *t, bool *ok, bool *nomem)
{
	if (!*ok)
		return NULL;
	json_t *j = NULL;
	once_status st = t->type == ONCE_ETF_MAP ? once__etf_to_json(t, &j) : ONCE_INVALID;
	char *text = NULL;
	if (st == ONCE_OK && (text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		st = ONCE_NOMEM;
	json_decref(j);
	*ok = st == ONCE_OK;
	*nomem = st == ONCE_NOMEM;
	return text;
}

static bool read_context(const struct once__etf *m, struct once__pg_successor_context *c,
                         bool *nomem)
{
	const struct once__etf *f[C_COUNT];
	if (!map_fields(m, context_keys, C_COUNT, f))
		return false;
	for (size_t i = 0; i < C_REQUIRED; i++)
		if (f[i] == NULL)
			return false;
	bool ok = true;
	c->subject = copy_string(f[C_SUBJECT], &ok, nomem);
	c->scope = copy_string_list(f[C_SCOPE], &c->nscope, &ok, nomem);
	c->resource = copy_string_list(f[C_RESOURCE], &c->nresource, &ok, nomem);
	c->client_id = copy_string_or_nil(f[C_CLIENT_ID], &ok, nomem);
	c->dpop_jkt = copy_string_or_nil(f[C_DPOP_JKT], &ok, nomem);
	c->acr = copy_string_or_nil(f[C_ACR], &ok, nomem);
	read_integer(f[C_AUTH_TIME], true, &c->has_auth_time, &c->auth_time, &ok);
	c->claims = claims_text(f[C_CLAIMS], &ok, nomem);
	/* Optional keys: absent, or (as an Elixir writer may leave them) nil. */
	if (f[C_FAMILY_EXPIRES_AT] != NULL)
		read_integer(f[C_FAMILY_EXPIRES_AT], true, &c->has_family_expires_at,
		             &c->family_expires_at, &ok);
	if (f[C_ATTESTATION_JKT] != NULL)
		c->attestation_jkt = copy_string_or_nil(f[C_ATTESTATION_JKT], &ok, nomem);
	return ok;
}

static bool read_payload(const struct once__etf *m, bool v2, struct once__pg_successor *s,
                         bool *nomem)
{
	const struct once__etf *f[P_COUNT];
	if (!map_fields(m, payload_keys, P_COUNT, f) || f[P_TOKEN] == NULL ||
	    f[P_GENERATION] == NULL || f[P_CONTEXT] == NULL || (f[P_RETRY_UNTIL] != NULL) != v2)
		return false;
	bool ok = f[P_TOKEN]->type == ONCE_ETF_BINARY;
	if (ok) {
		/* The token may be any bytes; a NUL is added after them. */
		struct once__etf token = *f[P_TOKEN];
		char *copy = malloc(token.len + 1);
		if (copy == NULL) {
			*nomem = true;
			return false;
		}
		if (token.len > 0)
			memcpy(copy, token.bytes, token.len);
		copy[token.len] = '\0';
		s->token = copy;
		s->token_len = token.len;
	}
	bool has_generation;
	read_integer(f[P_GENERATION], false, &has_generation, &s->generation, &ok);
	if (ok && (s->generation < 0 || s->generation > INT32_MAX))
		ok = false;
	if (v2)
		read_integer(f[P_RETRY_UNTIL], false, &s->has_retry_until, &s->retry_until, &ok);
	return ok && read_context(f[P_CONTEXT], &s->context, nomem);
}

once_status once__pg_successor_decode(const uint8_t *etf, size_t len, bool v2,
                                      struct once__pg_successor *out)
{
	if (out == NULL)
		return ONCE_INVALID;
	struct once__etf t;
	once_status st = once__etf_decode(etf, len, &t);
	if (st != ONCE_OK)
		return st;
	struct once__pg_successor s = {0};
	bool nomem = false;
	bool ok = read_payload(&t, v2, &s, &nomem);
	once__etf_free(&t);
	if (!ok) {
		once__pg_successor_free(&s);
		return nomem ? ONCE_NOMEM : ONCE_INVALID;
	}
	*out = s;
	return ONCE_OK;
}

/* ================================================================
 * Freeing
 * ================================================================ */

static void free_list(const char *const *v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free((void *)v[i]);
	free((void *)v);
}

void once__pg_successor_free(struct once__pg_successor *s)
{
	if (s == NULL)
		return;
	struct once__pg_successor_context *c = &s->context;
	if (s->token != NULL)
		sodium_memzero((void *)s->token, s->token_len); /* a live credential */
	free((void *)s->token);
	free((void *)c->subject);
	free_list(c->scope, c->nscope);
	free_list(c->resource, c->nresource);
	free((void *)c->client_id);
	free((void *)c->dpop_jkt);
	free((void *)c->acr);
	free((void *)c->claims);
	free((void *)c->attestation_jkt);
	*s = (struct once__pg_successor){0};
}
