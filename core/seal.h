/*
 * core/seal.h - a store's sealing state: the nonce prefix and subkey that
 * let once__seal produce XChaCha20-Poly1305 without an HChaCha20 or a
 * kernel call per seal (the argument is at the top of core/seal.c).
 */
#ifndef ONCE_CORE_SEAL_H
#define ONCE_CORE_SEAL_H

#include <stdatomic.h>
#include <stdint.h>

struct once__sealing {
	/* P: the first 16 bytes of every nonce this store (this open) seals
	 * with; random, drawn at open. */
	unsigned char prefix[16];
	/* K' = HChaCha20(successor_key, P), the key XChaCha20 would derive for
	 * any nonce starting with P.  Wiped at close. */
	unsigned char subkey[32];
	/* C: the last 8 bytes (little-endian) of the next seal's nonce;
	 * starts random, wraps mod 2^64.  Own cache line: concurrent seals of
	 * one store share only it. */
	_Alignas(64) _Atomic uint64_t counter;
};

#endif /* ONCE_CORE_SEAL_H */
