/*
 * core/crypto.c - libsodium: SHA-256 secret hashes, base64url, secrets
 * (drawn from once__random, core/random.c).
 *
 * once_secret_hash is byte-for-byte AttestoPhoenix's Secret.hash:
 * Base.url_encode64(:crypto.hash(:sha256, secret), padding: false), so a C
 * gateway and an Elixir node derive the same table keys from one secret.
 */
#include <sodium.h>

#include "internal.h"

_Static_assert(ONCE_SECRET_LEN + 1 == sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
               "43 characters + NUL encode 32 bytes");

bool once__crypto_init(void)
{
	/* Thread-safe and idempotent: 0 the first time, 1 afterwards. */
	return sodium_init() >= 0;
}

void once__b64url32(const unsigned char in[32], char out[ONCE_SECRET_LEN + 1])
{
	sodium_bin2base64(out, ONCE_SECRET_LEN + 1, in, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/*
 * The same encoding by table lookup, for bytes that are public once
 * encoded (a nonce goes to the client as it is): libsodium's encoder is
 * constant-time, which a secret needs and a nonce does not, and it was
 * 17% of once_nonce_issue.  tests/test_nonce.c checks both agree.
 */
void once__b64url32_public(const unsigned char in[32], char out[ONCE_SECRET_LEN + 1])
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *o = out;
	size_t i = 0;
	for (; i + 3 <= 32; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = alphabet[v & 63];
	}
	/* 32 = 3 * 10 + 2: two bytes left, three characters. */
	uint32_t v = (uint32_t)in[30] << 16 | (uint32_t)in[31] << 8;
	*o++ = alphabet[v >> 18];
	*o++ = alphabet[(v >> 12) & 63];
	*o++ = alphabet[(v >> 6) & 63];
	*o = '\0';
}

ONCE_API once_status once_secret_generate(char out[ONCE_SECRET_LEN + 1])
{
	if (out == NULL || !once__crypto_init())
		return ONCE_INVALID;
	unsigned char raw[32];
	once__random(raw, sizeof raw);
	once__b64url32(raw, out);
	sodium_memzero(raw, sizeof raw);
	return ONCE_OK;
}

ONCE_API once_status once_secret_hash(const void *secret, size_t len, char out[ONCE_SECRET_LEN + 1])
{
	if (out == NULL || (secret == NULL && len > 0) || !once__crypto_init())
		return ONCE_INVALID;
	static const unsigned char empty[1];
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(digest, len > 0 ? secret : empty, len);
	once__b64url32(digest, out);
	return ONCE_OK;
}

/*
 * AttestoPhoenix's DPoP replay key (ATTESTO-PG 3; Attesto.DPoP.replay_key):
 * base64url(SHA-256(jkt ":" jti)).  Keyed by the proof key's thumbprint,
 * one client cannot burn another's jti, and the raw jti (up to 256 bytes,
 * client-chosen) is never stored.  The same key on both engines lets C
 * gateways and AttestoPhoenix nodes see each other's proofs.
 */
ONCE_API once_status once_dpop_replay_key(const char *jkt, size_t jkt_len, const void *jti,
                                          size_t jti_len, char out[ONCE_SECRET_LEN + 1])
{
	if (out == NULL || jkt == NULL || jkt_len == 0 || jti == NULL || jti_len == 0 ||
	    !once__crypto_init())
		return ONCE_INVALID;
	unsigned char digest[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state st;
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)jkt, jkt_len);
	crypto_hash_sha256_update(&st, (const unsigned char *)":", 1);
	crypto_hash_sha256_update(&st, jti, jti_len);
	crypto_hash_sha256_final(&st, digest);
	once__b64url32(digest, out);
	return ONCE_OK;
}
