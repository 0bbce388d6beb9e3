/*
 * pg/json.c - claims as AttestoPhoenix stores them: a "portable JSON
 * object" in a jsonb column (ATTESTO-PG 2.1, 6.6).
 *
 * Portable means: an object at the top; string keys (JSON has no other);
 * values null, true, false, strings, integers, arrays and objects; no
 * floats (an AttestoPhoenix node refuses them).  We parse strictly with
 * jansson and refuse, before any SQL runs:
 *   - anything but an object at the top;
 *   - a key that appears twice in one object (JSON_REJECT_DUPLICATES: two
 *     readers could otherwise keep different ones);
 *   - real numbers (1.0, 1e3: jansson reads them as reals);
 *   - integers outside int64 (jansson's json_int_t; it refuses to parse
 *     larger ones);
 *   - invalid UTF-8, and NUL inside strings or keys (jansson refuses both
 *     unless told otherwise; jsonb cannot hold \u0000 either).
 * The result is re-encoded compactly, with the OIDC nonce and the refresh
 * issuer claim set where the caller asked.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "pg.h"

/* No reals anywhere in the tree, and no deeper nesting than a successor
 * envelope can carry (ONCE_PG_CLAIMS_MAX_DEPTH objects and arrays, the
 * claims object counted): a token whose claims could be stored but never
 * sealed would make every rotation of it fail. */
static bool portable(const json_t *v, int depth)
{
	if (json_is_real(v))
		return false;
	if ((json_is_object(v) || json_is_array(v)) && depth > ONCE_PG_CLAIMS_MAX_DEPTH)
		return false;
	if (json_is_object(v)) {
		const char *key;
		json_t *member;
		json_object_foreach((json_t *)v, key, member)
			if (!portable(member, depth + 1))
				return false;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *member;
		json_array_foreach(v, i, member)
			if (!portable(member, depth + 1))
				return false;
	}
	return true;
}

/* Sets obj[key] = text.  ONCE_INVALID when text is not valid UTF-8. */
static once_status set_text(json_t *obj, const char *key, const char *text)
{
	if (!once__pg_text_fits(text, strlen(text), SIZE_MAX))
		return ONCE_INVALID;
	json_t *str = json_string(text);
	if (str == NULL || json_object_set_new(obj, key, str) != 0)
		return ONCE_NOMEM;
	return ONCE_OK;
}

once_status once__pg_claims_encode(const void *claims, size_t len, const char *nonce,
                                   const char *issuer, char **out)
{
	if (len > 0 && claims == NULL)
		return ONCE_INVALID;
	json_t *root = len == 0 ? json_object()
	                        : json_loadb(claims, len, JSON_REJECT_DUPLICATES, NULL);
	if (root == NULL)
		return len == 0 ? ONCE_NOMEM : ONCE_INVALID; /* jansson does not tell OOM apart */
	once_status st = json_is_object(root) && portable(root, 1) ? ONCE_OK : ONCE_INVALID;
	if (st == ONCE_OK && nonce != NULL)
		st = set_text(root, "nonce", nonce);
	if (st == ONCE_OK && issuer != NULL)
		st = set_text(root, ONCE_PG_ISSUER_CLAIM, issuer);
	if (st == ONCE_OK) {
		*out = json_dumps(root, JSON_COMPACT);
		if (*out == NULL)
			st = ONCE_NOMEM;
	}
	json_decref(root);
	return st;
}
