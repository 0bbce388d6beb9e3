/*
 * core/seal.c - refresh successor payloads, sealed at rest (SPEC 1.4).
 *
 * A successor payload holds a plaintext refresh token, so the store keeps
 * it only as XChaCha20-Poly1305-IETF ciphertext under
 * options.successor_key, with the parent token's hash as associated data,
 * so a sealed payload moved onto another token does not open.  A payload
 * that fails to open (a different key after a restart, tampering) reads as
 * absent: the caller then has no successor to hand out and must treat the
 * retry as reuse, which fails closed.
 *
 * The seal without a per-call HChaCha20 or kernel call
 * ----------------------------------------------------
 * XChaCha20-Poly1305 with key K and 24-byte nonce N is, by definition (and
 * in libsodium's code), ChaCha20-Poly1305-IETF under the subkey
 * HChaCha20(K, N[0..16)) with the 12-byte nonce 0x00000000 || N[16..24).
 * At open (once__sealing_init) a store draws a random 16-byte prefix P and
 * a random 64-bit counter start C (once__random, core/random.c), and
 * computes K' = HChaCha20(K, P) once.  A seal takes c = C++ (one relaxed
 * atomic fetch-add, wrapping mod 2^64) and uses N = P || le64(c): it
 * encrypts with ChaCha20-Poly1305-IETF under K' and the nonce
 * 0x00000000 || le64(c), and stores N.  So
 *
 *   S1  The blob is XChaCha20-Poly1305 under (K, N), byte for byte: the
 *       format is unchanged, crypto_aead_xchacha20poly1305_ietf_decrypt
 *       opens it, and blobs sealed before this scheme (random N) open the
 *       same way, from memory or from a log being recovered.
 *       tests/test_random.c compares the bytes with libsodium's own
 *       XChaCha20 encryption under the same N.
 *   S2  Nonces never repeat within an open: c takes 2^64 distinct values
 *       before it comes back to its start (centuries at a billion seals a
 *       second).  Across opens - reopening, several stores sharing a key in
 *       one process, several processes - two seals share N only if two
 *       opens drew the same 128-bit prefix AND their counter ranges
 *       overlap.  With q opens under one key the prefixes alone collide
 *       with probability at most q^2 / 2^129: about 2^-65 for q = 2^32
 *       opens, whatever the number of seals.  Counting the random start
 *       too, opens i and j (m_i, m_j seals) collide with probability at
 *       most 2^-128 * (m_i + m_j) / 2^64, so s seals in all collide with
 *       probability at most about q * s / 2^192 <= s^2 / 2^192: within a
 *       factor of 2 of random 192-bit nonces per seal (s^2 / 2^193), and
 *       never weaker than a random 128-bit nonce per seal (q <= s,
 *       counting only opens that seal).
 *   S3  The subkey is derived exactly as XChaCha20 derives it, so K' for
 *       one P reveals nothing about K or about the subkey for another
 *       prefix (HChaCha20 is a PRF of K).  K' lives in the store as K does
 *       and is wiped with it at close (once__sealing_wipe).
 *   S4  A seal draws no randomness (no getrandom, no HChaCha20): P and
 *       the start of C are drawn once, at open.
 *
 * Unseal is plain XChaCha20-Poly1305 decryption under K, for blobs of
 * every open alike.  (Using K' for blobs with this open's prefix would save
 * an HChaCha20 per unseal, but unseal is not on a hot path, and
 * tests/test_refresh.c simulates "another key" by changing successor_key
 * in place, which a cached K' would not see.)
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

_Static_assert(ONCE_SUCCESSOR_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(sizeof(((struct once__sealed *)0)->nonce) == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
               "a sealed blob carries the whole XChaCha20 nonce");
_Static_assert(sizeof(((struct once__sealing *)0)->prefix) == crypto_core_hchacha20_INPUTBYTES &&
                       sizeof(((struct once__sealing *)0)->subkey) == crypto_core_hchacha20_OUTPUTBYTES,
               "prefix and subkey are HChaCha20's input and output");
_Static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "IETF nonce: 4 zero bytes + 8");

void once__sealing_init(once_store *s)
{
	struct once__sealing *z = &s->sealing;
	uint64_t start = 0;
	if (s->has_successor_key) {
		once__random(z->prefix, sizeof z->prefix);
		once__random(&start, sizeof start);
		crypto_core_hchacha20(z->subkey, z->prefix, s->successor_key, NULL);
	}
	atomic_init(&z->counter, start);
}

void once__sealing_wipe(once_store *s)
{
	sodium_memzero(s->sealing.subkey, sizeof s->sealing.subkey);
	sodium_memzero(s->sealing.prefix, sizeof s->sealing.prefix);
}

/* The IETF nonce XChaCha20 uses after HChaCha20: 4 zero bytes, then the
 * last 8 bytes of the 24-byte nonce. */
static void inner_nonce(unsigned char out[12], const unsigned char nonce[24])
{
	memset(out, 0, 4);
	memcpy(out + 4, nonce + 16, 8);
}

static void le64(unsigned char out[8], uint64_t v)
{
	for (int i = 0; i < 8; i++)
		out[i] = (unsigned char)(v >> (8 * i));
}

struct once__sealed *once__seal(once_store *s, const void *ad, size_t adlen, const void *msg, size_t n)
{
	size_t ct_len = n + crypto_aead_xchacha20poly1305_ietf_ABYTES;
	struct once__sealed *b = once__sealed_new(s, ct_len); /* n <= max_record_len (16 MiB) */
	if (b == NULL)
		return NULL;
	unsigned long long written;
	/* S2: relaxed is enough, only distinctness of c matters. */
	uint64_t c = atomic_fetch_add_explicit(&s->sealing.counter, 1, memory_order_relaxed);
	memcpy(b->nonce, s->sealing.prefix, sizeof s->sealing.prefix);
	le64(b->nonce + 16, c);
	unsigned char nonce12[12];
	inner_nonce(nonce12, b->nonce);
	crypto_aead_chacha20poly1305_ietf_encrypt(b->ct, &written, msg, n, ad, adlen, NULL, nonce12,
	                                          s->sealing.subkey);
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
