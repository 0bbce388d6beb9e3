/*
 * pg/envelope.c - the successor column's jsonb shapes and the cipher
 * around the payload (ATTESTO-PG 2.2.4 - 2.2.6; layout at the top of
 * pg/envelope.h).  pg/successor.c writes and reads the payload itself.
 *
 * plug_crypto's XChaCha20-Poly1305 is libsodium's
 * crypto_aead_xchacha20poly1305_ietf_*_detached (checked equal in
 * ATTESTO-PG 0); Plug puts the tag before the ciphertext on the wire.
 *
 * Everything that fails to open is "no successor" with a reason, never a
 * partly filled result: a retry then finds nothing and the caller revokes
 * (fail closed), as an Elixir node would.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "envelope.h"
#include "etf.h"

#define WIRE_PREFIX "XCP."
#define WIRE_PREFIX_LEN 4
#define IV_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES   /* 16 */
#define KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES /* 32 */
#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* The AAD tag of v2 (first tuple element) and the whole AAD of v1. */
static const char aad_label[] = "attesto_phoenix:refresh_successor:v1";
#define AAD_LABEL_LEN (sizeof aad_label - 1) /* 36 */

_Static_assert(KEY_LEN == crypto_hash_sha256_BYTES, "the key is a SHA-256 digest");
_Static_assert(ONCE_PG_SECRET_HASH_LEN + 1 == sodium_base64_ENCODED_LEN(32, B64),
               "43 characters and a NUL encode a digest");

/* ================================================================
 * Hashes (Attesto Secret.hash, ATTESTO-PG 3; the DPoP replay key is the
 * public once_dpop_replay_key, core/crypto.c)
 * ================================================================ */

static void digest_text(const unsigned char digest[32], char out[ONCE_PG_SECRET_HASH_LEN + 1])
{
	sodium_bin2base64(out, ONCE_PG_SECRET_HASH_LEN + 1, digest, 32, B64);
}

void once__pg_secret_hash(const void *s, size_t len, char out[ONCE_PG_SECRET_HASH_LEN + 1])
{
	static const unsigned char empty[1];
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(digest, len > 0 ? s : empty, len);
	digest_text(digest, out);
}

/* enc_key = SHA-256("refresh-successor:enc:" || secret).  (The sign key
 * AttestoPhoenix also derives only reads legacy A128GCM tokens it never
 * writes: ATTESTO-PG 2.2.5.) */
static void derive_key(const void *secret, size_t len, unsigned char key[KEY_LEN])
{
	static const char label[] = "refresh-successor:enc:";
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)label, sizeof label - 1);
	crypto_hash_sha256_update(&st, secret, len);
	crypto_hash_sha256_final(&st, key);
	sodium_memzero(&st, sizeof st);
}

static bool secret_usable(const void *secret, size_t len)
{
	/* sodium_init: picks the implementations and seeds randombytes;
	 * thread-safe and idempotent. */
	return secret != NULL && len >= ONCE_PG_SUCCESSOR_SECRET_MIN && sodium_init() >= 0;
}

/* ================================================================
 * The v2 AAD
 * ================================================================ */

once_status once__pg_successor_aad(const struct once__pg_successor_row *row,
                                   const char *child_hash, int64_t retry_until,
                                   unsigned char **aad, size_t *len)
{
	if (row == NULL || row->parent_hash == NULL || row->family_id == NULL ||
	    child_hash == NULL || aad == NULL || len == NULL)
		return ONCE_INVALID;
	struct once__etf t;
	if (!once__etf_tuple(&t, 6))
		return ONCE_NOMEM;
	once__etf_binary(&t.items[0], aad_label, AAD_LABEL_LEN);
	once__etf_string(&t.items[1], row->parent_hash);
	once__etf_string(&t.items[2], row->family_id);
	once__etf_integer(&t.items[3], row->parent_generation);
	once__etf_string(&t.items[4], child_hash);
	once__etf_integer(&t.items[5], retry_until);
	once_status st = once__etf_encode(&t, aad, len);
	once__etf_free(&t);
	return st;
}

/* ================================================================
 * Sealing
 * ================================================================ */

/* "XCP." + base64url_nopad(iv || tag || ciphertext), malloc'd. */
static char *wire_text(const unsigned char *raw, size_t raw_len)
{
	size_t b64_len = sodium_base64_ENCODED_LEN(raw_len, B64);
	char *w = malloc(WIRE_PREFIX_LEN + b64_len);
	if (w == NULL)
		return NULL;
	memcpy(w, WIRE_PREFIX, WIRE_PREFIX_LEN);
	sodium_bin2base64(w + WIRE_PREFIX_LEN, b64_len, raw, raw_len, B64);
	return w;
}

/* Encrypts m under key with aad and a fresh random iv; the wire text. */
static char *encrypt_to_wire(const unsigned char key[KEY_LEN], const unsigned char *m,
                             size_t m_len, const unsigned char *aad, size_t aad_len)
{
	unsigned char *raw = malloc(IV_LEN + TAG_LEN + m_len);
	if (raw == NULL)
		return NULL;
	unsigned char *iv = raw, *tag = raw + IV_LEN, *c = raw + IV_LEN + TAG_LEN;
	randombytes_buf(iv, IV_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(c, tag, NULL, m, m_len, aad, aad_len,
	                                                    NULL, iv, key);
	char *w = wire_text(raw, IV_LEN + TAG_LEN + m_len);
	free(raw);
	return w;
}

/* The v2 column text around a wire ciphertext. */
static char *v2_text(const char *wire, int64_t retry_until, const char *child_hash)
{
	/* Both strings are base64url (plus "XCP."): nothing to escape. */
	static const char fmt[] =
	    "{\"v\":2,\"ciphertext\":\"%s\",\"retry_until\":%" PRId64 ",\"child_hash\":\"%s\"}";
	int n = snprintf(NULL, 0, fmt, wire, retry_until, child_hash);
	if (n < 0)
		return NULL;
	char *text = malloc((size_t)n + 1);
	if (text != NULL)
		snprintf(text, (size_t)n + 1, fmt, wire, retry_until, child_hash);
	return text;
}

once_status once__pg_successor_seal(const void *secret, size_t secret_len,
                                    const struct once__pg_successor_row *row,
                                    const struct once__pg_successor *succ, char **out)
{
	if (row == NULL || succ == NULL || out == NULL || succ->token == NULL ||
	    !succ->has_retry_until)
		return ONCE_INVALID;
	if (!secret_usable(secret, secret_len))
		return ONCE_NO_KEY;
	char child_hash[ONCE_PG_SECRET_HASH_LEN + 1];
	once__pg_secret_hash(succ->token, succ->token_len, child_hash);

	unsigned char *payload = NULL, *aad = NULL;
	size_t payload_len = 0, aad_len = 0;
	once_status st = once__pg_successor_encode(succ, &payload, &payload_len);
	if (st == ONCE_OK)
		st = once__pg_successor_aad(row, child_hash, succ->retry_until, &aad, &aad_len);
	char *wire = NULL, *text = NULL;
	if (st == ONCE_OK) {
		unsigned char key[KEY_LEN];
		derive_key(secret, secret_len, key);
		wire = encrypt_to_wire(key, payload, payload_len, aad, aad_len);
		sodium_memzero(key, sizeof key);
		if (wire == NULL || (text = v2_text(wire, succ->retry_until, child_hash)) == NULL)
			st = ONCE_NOMEM;
	}
	if (payload != NULL)
		sodium_memzero(payload, payload_len); /* holds the child token */
	free(payload);
	free(aad);
	free(wire);
	if (st == ONCE_OK)
		*out = text;
	return st;
}

void once__pg_successor_tombstone(int64_t retry_until, char out[ONCE_PG_TOMBSTONE_MAX])
{
	snprintf(out, ONCE_PG_TOMBSTONE_MAX,
	         "{\"v\":1,\"retry_until\":%" PRId64 ",\"recoverable\":false}", retry_until);
}

/* ================================================================
 * Classifying (exact key sets, ATTESTO-PG 2.2.4)
 * ================================================================ */

/* The parsed column: what each shape carries. */
struct envelope {
	enum once__pg_envelope_kind kind;
	int64_t retry_until;    /* V2, TOMBSTONE */
	const char *ciphertext; /* V1, V2: borrowed from the parsed JSON */
	const char *child_hash; /* V2 */
	size_t child_hash_len;
};

static bool has_exactly(json_t *o, size_t n, const char *const keys[])
{
	if (json_object_size(o) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (json_object_get(o, keys[i]) == NULL)
			return false;
	return true; /* n distinct names present and n keys in all */
}

static enum once__pg_envelope_kind shape(json_t *o, struct envelope *e)
{
	static const char *const v2_keys[] = {"v", "ciphertext", "retry_until", "child_hash"};
	static const char *const v1_keys[] = {"v", "ciphertext"};
	static const char *const tomb_keys[] = {"v", "retry_until", "recoverable"};
	json_t *v = json_object_get(o, "v");
	json_t *ct = json_object_get(o, "ciphertext");
	json_t *retry = json_object_get(o, "retry_until");
	/* JSON integers only: 2.0 or "2" are not 2 to Elixir either. */
	if (!json_is_integer(v))
		return ONCE_PG_ENVELOPE_MALFORMED;
	json_int_t version = json_integer_value(v);
	if (version == 2 && has_exactly(o, 4, v2_keys) && json_is_string(ct) &&
	    json_is_integer(retry) && json_is_string(json_object_get(o, "child_hash"))) {
		json_t *child = json_object_get(o, "child_hash");
		e->ciphertext = json_string_value(ct);
		e->retry_until = (int64_t)json_integer_value(retry);
		e->child_hash = json_string_value(child);
		e->child_hash_len = json_string_length(child);
		return ONCE_PG_ENVELOPE_V2;
	}
	if (version == 1 && has_exactly(o, 2, v1_keys) && json_is_string(ct)) {
		e->ciphertext = json_string_value(ct);
		return ONCE_PG_ENVELOPE_V1;
	}
	if (version == 1 && has_exactly(o, 3, tomb_keys) && json_is_integer(retry) &&
	    json_is_false(json_object_get(o, "recoverable"))) {
		e->retry_until = (int64_t)json_integer_value(retry);
		return ONCE_PG_ENVELOPE_TOMBSTONE;
	}
	return ONCE_PG_ENVELOPE_MALFORMED;
}

/* Parses text into *json (release it after using e's strings). */
static void parse_envelope(const char *text, size_t len, json_t **json, struct envelope *e)
{
	*e = (struct envelope){.kind = ONCE_PG_ENVELOPE_MALFORMED};
	*json = text != NULL ? json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	if (*json != NULL && json_is_object(*json))
		e->kind = shape(*json, e);
}

enum once__pg_envelope_kind once__pg_envelope_classify(const char *text, size_t len,
                                                       int64_t *retry_until)
{
	json_t *json;
	struct envelope e;
	parse_envelope(text, len, &json, &e);
	json_decref(json);
	if (retry_until != NULL &&
	    (e.kind == ONCE_PG_ENVELOPE_V2 || e.kind == ONCE_PG_ENVELOPE_TOMBSTONE))
		*retry_until = e.retry_until;
	return e.kind;
}

/* ================================================================
 * Opening
 * ================================================================ */

/* What the steps below answer when their step succeeded; any other value
 * is the reason there is no successor. */
#define PROCEED ONCE_PG_OPEN_V2

/* Decrypts a wire text into *m (malloc'd, *m_len bytes). */
static enum once__pg_open decrypt_wire(const unsigned char key[KEY_LEN], const char *wire,
                                       const unsigned char *aad, size_t aad_len,
                                       unsigned char **m, size_t *m_len)
{
	size_t wire_len = strlen(wire);
	if (wire_len < WIRE_PREFIX_LEN || memcmp(wire, WIRE_PREFIX, WIRE_PREFIX_LEN) != 0)
		return ONCE_PG_OPEN_BAD_WIRE;
	const char *b64 = wire + WIRE_PREFIX_LEN;
	size_t b64_len = wire_len - WIRE_PREFIX_LEN;
	size_t cap = b64_len / 4 * 3 + 3, raw_len;
	unsigned char *raw = malloc(cap);
	if (raw == NULL)
		return ONCE_PG_OPEN_NOMEM;
	const char *end;
	if (sodium_base642bin(raw, cap, b64, b64_len, NULL, &raw_len, &end, B64) != 0 ||
	    end != b64 + b64_len || raw_len < IV_LEN + TAG_LEN) {
		free(raw);
		return ONCE_PG_OPEN_BAD_WIRE;
	}
	size_t c_len = raw_len - IV_LEN - TAG_LEN;
	unsigned char *plain = malloc(c_len > 0 ? c_len : 1);
	if (plain == NULL) {
		free(raw);
		return ONCE_PG_OPEN_NOMEM;
	}
	int rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
	    plain, NULL, raw + IV_LEN + TAG_LEN, c_len, raw + IV_LEN, aad, aad_len, raw, key);
	free(raw);
	if (rc != 0) {
		free(plain);
		return ONCE_PG_OPEN_AUTH;
	}
	*m = plain;
	*m_len = c_len;
	return PROCEED;
}

/* The AAD for e: the 6-tuple for v2, the bare label for v1. */
static enum once__pg_open envelope_aad(const struct envelope *e,
                                       const struct once__pg_successor_row *row,
                                       unsigned char **aad, size_t *aad_len)
{
	if (e->kind == ONCE_PG_ENVELOPE_V1) {
		*aad = malloc(AAD_LABEL_LEN);
		if (*aad == NULL)
			return ONCE_PG_OPEN_NOMEM;
		memcpy(*aad, aad_label, AAD_LABEL_LEN);
		*aad_len = AAD_LABEL_LEN;
		return PROCEED;
	}
	/* A child_hash with a NUL cannot be a hash (and would cut the AAD). */
	if (strlen(e->child_hash) != e->child_hash_len)
		return ONCE_PG_OPEN_CHILD_HASH;
	once_status st = once__pg_successor_aad(row, e->child_hash, e->retry_until, aad, aad_len);
	if (st == ONCE_NOMEM)
		return ONCE_PG_OPEN_NOMEM;
	return st == ONCE_OK ? PROCEED : ONCE_PG_OPEN_MALFORMED;
}

/* After decryption: the payload's shape, and for v2 its bindings. */
static enum once__pg_open read_plaintext(const struct envelope *e, const unsigned char *m,
                                         size_t m_len, struct once__pg_successor *out)
{
	bool v2 = e->kind == ONCE_PG_ENVELOPE_V2;
	struct once__pg_successor s;
	once_status st = once__pg_successor_decode(m, m_len, v2, &s);
	if (st != ONCE_OK)
		return st == ONCE_NOMEM ? ONCE_PG_OPEN_NOMEM : ONCE_PG_OPEN_PAYLOAD;
	if (v2) {
		char want[ONCE_PG_SECRET_HASH_LEN + 1];
		once__pg_secret_hash(s.token, s.token_len, want);
		enum once__pg_open why = ONCE_PG_OPEN_V2;
		if (s.retry_until != e->retry_until)
			why = ONCE_PG_OPEN_RETRY_MISMATCH;
		else if (strcmp(want, e->child_hash) != 0)
			why = ONCE_PG_OPEN_CHILD_HASH;
		if (why != ONCE_PG_OPEN_V2) {
			once__pg_successor_free(&s);
			return why;
		}
	}
	*out = s;
	return v2 ? ONCE_PG_OPEN_V2 : ONCE_PG_OPEN_V1;
}

static enum once__pg_open open_envelope(const void *secret, size_t secret_len,
                                        const struct once__pg_successor_row *row,
                                        const struct envelope *e,
                                        struct once__pg_successor *out)
{
	if (e->kind == ONCE_PG_ENVELOPE_TOMBSTONE)
		return ONCE_PG_OPEN_TOMBSTONE;
	if (e->kind == ONCE_PG_ENVELOPE_MALFORMED)
		return ONCE_PG_OPEN_MALFORMED;
	if (!secret_usable(secret, secret_len))
		return ONCE_PG_OPEN_NO_SECRET;
	unsigned char *aad = NULL, *m = NULL;
	size_t aad_len = 0, m_len = 0;
	enum once__pg_open r = envelope_aad(e, row, &aad, &aad_len);
	if (r == PROCEED) {
		unsigned char key[KEY_LEN];
		derive_key(secret, secret_len, key);
		r = decrypt_wire(key, e->ciphertext, aad, aad_len, &m, &m_len);
		sodium_memzero(key, sizeof key);
	}
	free(aad);
	if (r != PROCEED)
		return r;
	r = read_plaintext(e, m, m_len, out);
	sodium_memzero(m, m_len); /* holds the child token */
	free(m);
	return r;
}

enum once__pg_open once__pg_successor_open(const void *secret, size_t secret_len,
                                           const struct once__pg_successor_row *row,
                                           const char *text, size_t len,
                                           struct once__pg_successor *out)
{
	if (out == NULL)
		return ONCE_PG_OPEN_MALFORMED;
	json_t *json;
	struct envelope e;
	parse_envelope(text, len, &json, &e);
	/* A v2 envelope needs its row; without one it cannot be bound. */
	if (e.kind == ONCE_PG_ENVELOPE_V2 && row == NULL)
		e.kind = ONCE_PG_ENVELOPE_MALFORMED;
	enum once__pg_open r = open_envelope(secret, secret_len, row, &e, out);
	json_decref(json);
	return r;
}
