/*
 * core/seal.c - refresh successor payloads, sealed at rest (SPEC 1.4).
 *
 * A successor payload holds a plaintext refresh token, so the store keeps
 * it only as XChaCha20-Poly1305 ciphertext under options.successor_key:
 * a fresh random 24-byte nonce per seal (random nonces are safe at this
 * size), and the parent token's hash as associated data, so a sealed
 * payload moved onto another token does not open.  A payload that fails to
 * open (a different key after a restart, tampering) reads as absent: the
 * caller then has no successor to hand out and must treat the retry as
 * reuse, which fails closed.
 */
#include <sodium.h>
#include <stdlib.h>

#include "internal.h"

_Static_assert(ONCE_SUCCESSOR_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");

struct once__sealed *once__seal(const once_store *s, const void *ad, size_t adlen, const void *msg,
                                size_t n)
{
	size_t ct_len = n + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	struct once__sealed *b = malloc(sizeof *b + ct_len);
	if (b == NULL)
		return NULL;
	b->len = (uint32_t)ct_len; /* n <= max_record_len (16 MiB), checked by callers */
	randombytes_buf(b->nonce, sizeof b->nonce);
	unsigned long long written;
	crypto_aead_xchacha20poly1305_ietf_encrypt(b->ct, &written, msg, n, ad, adlen, NULL, b->nonce,
	                                           s->successor_key);
	return b;
}

size_t once__sealed_plain_len(const struct once__sealed *b)
{
	return b->len - crypto_aead_xchacha20poly1305_ietf_ABYTES;
}

bool once__unseal(const once_store *s, const struct once__sealed *b, const void *ad, size_t adlen,
                  void *out)
{
	if (!s->has_successor_key)
		return false;
	unsigned long long n;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(out, &n, NULL, b->ct, b->len, ad, adlen,
	                                                  b->nonce, s->successor_key) == 0;
}
