/*
 * pg/etf_json.c - portable JSON (jansson) to and from terms, as an Elixir
 * node holds claims: Jason decodes JSON into nil/true/false, binaries,
 * integers, lists and maps with binary keys, and term_to_binary writes
 * those (ATTESTO-PG 2.2.5, "Values still need the atoms nil, true and
 * false"; claims are portable JSON, 2.1).
 */
#include <string.h>

#include "etf.h"

/* ---- JSON -> term ---- */

static once_status from_json(const json_t *j, struct once__etf *t, unsigned depth);

static once_status array_from_json(const json_t *j, struct once__etf *t, unsigned depth)
{
	if (!once__etf_list(t, json_array_size(j)))
		return ONCE_NOMEM;
	for (size_t i = 0; i < t->n; i++) {
		once_status st = from_json(json_array_get(j, i), &t->items[i], depth + 1);
		if (st != ONCE_OK)
			return st;
	}
	return ONCE_OK;
}

static once_status object_from_json(const json_t *j, struct once__etf *t, unsigned depth)
{
	/* jansson's iterator takes a non-const object; it does not change it. */
	json_t *obj = (json_t *)j;
	if (!once__etf_map(t, json_object_size(obj)))
		return ONCE_NOMEM;
	size_t i = 0;
	for (void *it = json_object_iter(obj); it != NULL && i < t->n;
	     it = json_object_iter_next(obj, it), i++) {
		once__etf_binary(&t->items[2 * i], json_object_iter_key(it),
		                 json_object_iter_key_len(it));
		once_status st = from_json(json_object_iter_value(it), &t->items[2 * i + 1], depth + 1);
		if (st != ONCE_OK)
			return st;
	}
	return ONCE_OK;
}

static once_status from_json(const json_t *j, struct once__etf *t, unsigned depth)
{
	if (depth > ONCE_ETF_MAX_DEPTH)
		return ONCE_INVALID;
	switch (json_typeof(j)) {
	case JSON_NULL:
		once__etf_atom(t, "nil");
		return ONCE_OK;
	case JSON_TRUE:
		once__etf_atom(t, "true");
		return ONCE_OK;
	case JSON_FALSE:
		once__etf_atom(t, "false");
		return ONCE_OK;
	case JSON_STRING:
		once__etf_binary(t, json_string_value(j), json_string_length(j));
		return ONCE_OK;
	case JSON_INTEGER:
		once__etf_integer(t, (int64_t)json_integer_value(j));
		return ONCE_OK;
	case JSON_ARRAY:
		return array_from_json(j, t, depth);
	case JSON_OBJECT:
		return object_from_json(j, t, depth);
	case JSON_REAL: /* not portable JSON */
	default:
		return ONCE_INVALID;
	}
}

once_status once__etf_from_json(const json_t *j, struct once__etf *out)
{
	if (out == NULL)
		return ONCE_INVALID;
	*out = (struct once__etf){.type = ONCE_ETF_LIST};
	if (j == NULL)
		return ONCE_INVALID;
	once_status st = from_json(j, out, 1);
	if (st != ONCE_OK)
		once__etf_free(out);
	return st;
}

/* ---- term -> JSON ---- */

/* A binary JSON can hold: UTF-8, and no NUL (jsonb refuses \u0000, so
 * none can come from the database). */
static bool json_text(const struct once__etf *t)
{
	return t->type == ONCE_ETF_BINARY && once__etf_utf8_valid(t->bytes, t->len) &&
	       (t->len == 0 || memchr(t->bytes, '\0', t->len) == NULL);
}

static once_status to_json(const struct once__etf *t, json_t **out, unsigned depth);

static once_status array_to_json(const struct once__etf *t, json_t **out, unsigned depth)
{
	json_t *a = json_array();
	if (a == NULL)
		return ONCE_NOMEM;
	for (size_t i = 0; i < t->n; i++) {
		json_t *v;
		once_status st = to_json(&t->items[i], &v, depth + 1);
		if (st == ONCE_OK && json_array_append_new(a, v) != 0)
			st = ONCE_NOMEM;
		if (st != ONCE_OK) {
			json_decref(a);
			return st;
		}
	}
	*out = a;
	return ONCE_OK;
}

static once_status object_to_json(const struct once__etf *t, json_t **out, unsigned depth)
{
	json_t *o = json_object();
	if (o == NULL)
		return ONCE_NOMEM;
	for (size_t i = 0; i < t->n; i++) {
		const struct once__etf *k = &t->items[2 * i];
		const char *key = (const char *)k->bytes;
		json_t *v;
		once_status st = ONCE_INVALID;
		/* String keys only, each once (a built term could repeat one). */
		if (json_text(k) && json_object_getn(o, key, k->len) == NULL)
			st = to_json(&t->items[2 * i + 1], &v, depth + 1);
		if (st == ONCE_OK && json_object_setn_new_nocheck(o, key, k->len, v) != 0)
			st = ONCE_NOMEM;
		if (st != ONCE_OK) {
			json_decref(o);
			return st;
		}
	}
	*out = o;
	return ONCE_OK;
}

static once_status leaf_to_json(const struct once__etf *t, json_t **out)
{
	json_t *v;
	if (t->type == ONCE_ETF_INTEGER)
		v = json_integer((json_int_t)t->integer);
	else if (once__etf_is_atom(t, "nil"))
		v = json_null();
	else if (once__etf_is_atom(t, "true"))
		v = json_true();
	else if (once__etf_is_atom(t, "false"))
		v = json_false();
	else if (json_text(t))
		v = json_stringn_nocheck((const char *)t->bytes, t->len);
	else
		return ONCE_INVALID;
	if (v == NULL)
		return ONCE_NOMEM;
	*out = v;
	return ONCE_OK;
}

static once_status to_json(const struct once__etf *t, json_t **out, unsigned depth)
{
	if (depth > ONCE_ETF_MAX_DEPTH)
		return ONCE_INVALID;
	switch (t->type) {
	case ONCE_ETF_LIST:
		return array_to_json(t, out, depth);
	case ONCE_ETF_MAP:
		return object_to_json(t, out, depth);
	case ONCE_ETF_TUPLE:
		return ONCE_INVALID;
	default:
		return leaf_to_json(t, out);
	}
}

once_status once__etf_to_json(const struct once__etf *t, json_t **out)
{
	if (t == NULL || out == NULL)
		return ONCE_INVALID;
	return to_json(t, out, 1);
}
