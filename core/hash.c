/*
 * core/hash.c - from a key to (shard, bucket hash).
 *
 * Two hash functions, chosen by who picks the key (SPEC 1.6):
 *  - keys the server generated (code and refresh hashes, family ids, access
 *    token ids) hash with XXH3 under a random per-store seed: 2-3 ns for a
 *    43-byte key, and an attacker cannot place entries it does not create;
 *  - keys a client chooses (DPoP jti, presented nonces) hash with
 *    SipHash-2-4 (libsodium crypto_shorthash) under a random per-store key.
 *    A random XXH3 seed is not a proven defence against crafted collisions
 *    (xxHash issue #1127, PR #1146), a keyed PRF is.
 * The hash never stands for the key: match() compares the full key bytes.
 */
#define XXH_INLINE_ALL
#include <sodium.h>
#include <string.h>
#include <xxhash.h>

#include "internal.h"

_Static_assert(crypto_shorthash_KEYBYTES == sizeof(((once_store *)0)->prf_key), "SipHash key size");

static bool client_chosen(enum once__table t)
{
	return t == ONCE_TBL_NONCE || t == ONCE_TBL_REPLAY;
}

static uint64_t prf64(const once_store *s, const void *data, size_t len)
{
	unsigned char out[crypto_shorthash_BYTES];
	crypto_shorthash(out, data, len, s->prf_key);
	uint64_t h;
	memcpy(&h, out, sizeof h);
	return h;
}

once_status once__key_make(const once_store *s, enum once__table t, const void *data, size_t len,
                           struct once__key *k)
{
	if (data == NULL || len == 0 || len > s->opt.max_key_len)
		return ONCE_INVALID;
	return once__key_make_stored(s, t, data, len, k);
}

once_status once__key_make_stored(const once_store *s, enum once__table t, const void *data, size_t len,
                                  struct once__key *k)
{
	if (data == NULL || len == 0 || len > UINT16_MAX)
		return ONCE_INVALID;
	uint64_t h = client_chosen(t) ? prf64(s, data, len) : XXH3_64bits_withSeed(data, len, s->xxh_seed);
	k->data = data;
	k->len = len;
	k->hash = h;
	k->table = t;
	/* High 32 bits choose the shard (multiply-shift, no modulo bias worth
	 * noting); cds_lfht takes its bucket from the low bits. */
	k->shard = (uint32_t)(((h >> 32) * (uint64_t)s->nshards) >> 32);
	return ONCE_OK;
}
