/*
 * bench/keys.c - realistic key material: 43-character base64url SHA-256
 * hashes for codes and refresh tokens, 22-character family ids, and `jti`
 * values shaped like a client's UUIDv4 prefixed with the proof's jkt, as
 * SPEC section 6 advises.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench.h"

char (*code_keys)[KEY_LEN + 1];
char (*child_keys)[KEY_LEN + 1];
char (*family_ids)[FAMILY_LEN + 1];
char (*jti_keys)[JTI_LEN + 1];

void die(const char *what, once_status st)
{
	fprintf(stderr, "oncebench: %s: %s\n", what, once_strerror(st));
	exit(1);
}

void build_keys(uint64_t n)
{
	code_keys = malloc(n * sizeof *code_keys);
	child_keys = malloc(n * sizeof *child_keys);
	family_ids = malloc(n * sizeof *family_ids);
	jti_keys = malloc(n * sizeof *jti_keys);
	if (code_keys == NULL || child_keys == NULL || family_ids == NULL || jti_keys == NULL)
		die("allocating keys", ONCE_NOMEM);
	char jkt[KEY_LEN + 1];
	once_secret_hash("bench-client-key", 16, jkt);
	for (uint64_t i = 0; i < n; i++) {
		char secret[32];
		int len = snprintf(secret, sizeof secret, "bench-code-%" PRIu64, i);
		once_secret_hash(secret, (size_t)len, code_keys[i]);
		len = snprintf(secret, sizeof secret, "bench-child-%" PRIu64, i);
		once_secret_hash(secret, (size_t)len, child_keys[i]);
		char fam[KEY_LEN + 1];
		len = snprintf(secret, sizeof secret, "bench-family-%" PRIu64, i);
		once_secret_hash(secret, (size_t)len, fam);
		memcpy(family_ids[i], fam, FAMILY_LEN);
		family_ids[i][FAMILY_LEN] = '\0';
		uint64_t a = XXH3_64bits(&i, sizeof i), b = XXH3_64bits_withSeed(&i, sizeof i, 7);
		snprintf(jti_keys[i], JTI_LEN + 1, "%s:%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-a%03" PRIx32 "-%012" PRIx64,
		         jkt, (uint32_t)a, (uint32_t)(a >> 32) & 0xffff, (uint32_t)(a >> 48) & 0xfff,
		         (uint32_t)b & 0xfff, (uint64_t)((b >> 12) & 0xffffffffffffu));
	}
}

void free_keys(void)
{
	free(code_keys);
	free(child_keys);
	free(family_ids);
	free(jti_keys);
}
