/*
 * bench/keys.c - realistic key material: 43-character base64url SHA-256
 * hashes for codes and refresh tokens, 22-character family ids, and `jti`
 * values shaped like a client's UUIDv4 prefixed with the proof's jkt, as
 * SPEC section 6 advises.  A rotation's child is a token (child_tokens,
 * the successor payload a gateway remembers) keyed by its hash
 * (child_keys = once_secret_hash(token)), as both engines key tokens and
 * as the PostgreSQL engine requires of a rotation (its successor binds
 * the child's hash).  A salt makes another set of keys of the same shape:
 * each run on PostgreSQL, whose tables outlive the run, gets its own.
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
char (*child_tokens)[KEY_LEN + 1];
char (*family_ids)[FAMILY_LEN + 1];
char (*jti_keys)[JTI_LEN + 1];

void die(const char *what, once_status st)
{
	fprintf(stderr, "oncebench: %s: %s\n", what, once_strerror(st));
	exit(1);
}

/* "bench-<what>-<i>", or "bench-<what>-<salt>-<i>" with a salt. */
static size_t key_secret(char out[64], const char *what, uint64_t salt, uint64_t i)
{
	int len = salt ? snprintf(out, 64, "bench-%s-%016" PRIx64 "-%" PRIu64, what, salt, i)
	               : snprintf(out, 64, "bench-%s-%" PRIu64, what, i);
	return (size_t)len;
}

void build_keys(uint64_t n, uint64_t salt)
{
	code_keys = malloc(n * sizeof *code_keys);
	child_keys = malloc(n * sizeof *child_keys);
	child_tokens = malloc(n * sizeof *child_tokens);
	family_ids = malloc(n * sizeof *family_ids);
	jti_keys = malloc(n * sizeof *jti_keys);
	if (code_keys == NULL || child_keys == NULL || child_tokens == NULL || family_ids == NULL ||
	    jti_keys == NULL)
		die("allocating keys", ONCE_NOMEM);
	char jkt[KEY_LEN + 1];
	once_secret_hash("bench-client-key", 16, jkt);
	for (uint64_t i = 0; i < n; i++) {
		char secret[64];
		size_t len = key_secret(secret, "code", salt, i);
		once_secret_hash(secret, len, code_keys[i]);
		len = key_secret(secret, "child", salt, i);
		once_secret_hash(secret, len, child_tokens[i]);
		once_secret_hash(child_tokens[i], KEY_LEN, child_keys[i]);
		char fam[KEY_LEN + 1];
		len = key_secret(secret, "family", salt, i);
		once_secret_hash(secret, len, fam);
		memcpy(family_ids[i], fam, FAMILY_LEN);
		family_ids[i][FAMILY_LEN] = '\0';
		/* Seed 0 is XXH3_64bits itself: salt 0 keeps the jti of old. */
		uint64_t a = XXH3_64bits_withSeed(&i, sizeof i, salt),
		         b = XXH3_64bits_withSeed(&i, sizeof i, 7 + salt);
		snprintf(jti_keys[i], JTI_LEN + 1, "%s:%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-a%03" PRIx32 "-%012" PRIx64,
		         jkt, (uint32_t)a, (uint32_t)(a >> 32) & 0xffff, (uint32_t)(a >> 48) & 0xfff,
		         (uint32_t)b & 0xfff, (uint64_t)((b >> 12) & 0xffffffffffffu));
	}
}

void free_keys(void)
{
	free(code_keys);
	free(child_keys);
	free(child_tokens);
	free(family_ids);
	free(jti_keys);
}
