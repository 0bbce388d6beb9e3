/*
 * tools/fill.c - test helper for tools/test_cli.sh (not installed): opens a
 * store on DIR and gives it real content of every kind, so the tool has
 * something to verify, dump, checkpoint and repair.
 *
 *   fill DIR [--tag T] [--none | --spend | --text HEX...] [--shards N] [--checkpoint]
 *        [--hold SECONDS [--until FILE]]
 *
 * With tag T (default "a"; another tag makes other keys) it writes:
 *   codes        6 put (keys: hashes of "code-secret-T-<i>"), 3 taken, 2
 *                finalized; 2 access tokens recorded in their family, the
 *                family revoked
 *   refresh      4 inserted into family "rt-T"; one consumed with a
 *                remembered successor, one rotated to a child with a
 *                payload (both payloads hold the text
 *                "SUCCESSOR-PLAINTEXT-T", which must never reach the disk
 *                or a dump); a token in family "rt-rev-T", then that family
 *                revoked
 *   nonces       3 issued, 1 accepted
 *   replays      4 recorded, one of them twice
 * With --spend instead, it spends what an earlier run with the same tag
 * wrote: takes codes 3 and 4 and finalizes 3, rotates refresh token 2 (to
 * a child keyed by "refresh-secret-T-child-2"), consumes refresh token 3,
 * and records the replay jti "jkt|https://api.example/|jti-T-spend".
 * With --text HEX (repeatable; instead of the content above) it stores the
 * bytes HEX spells, not necessarily UTF-8, where the dump prints text: as
 * the replay key, and, without a NUL, as the subject and client_id of a
 * code keyed by the hash of "text-code-<i>" (i counts the --text options
 * from 0) and the subject of a refresh token keyed by the hash of
 * "text-refresh-<i>" in family "rt-text".
 * The store has 4 shards, or N with --shards N (a checkpoint writes one
 * snapshot per shard).
 * Then it checkpoints (--checkpoint), prints "entries N" (the number of dump
 * lines), and with --hold prints "holding" and keeps the store (and its
 * lock) open for SECONDS before closing, or until the file named by
 * --until exists.  --none writes nothing.
 * Exit 0, or 1 naming the call that failed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int failures;

static void check(once_status got, once_status want, const char *what, int line)
{
	if (got != want) {
		fprintf(stderr, "fill: line %d: %s: ONCE_%s, expected ONCE_%s\n", line, what,
		        once_status_name(got), once_status_name(want));
		failures++;
	}
}
#define CHECK(call, want) check((call), (want), #call, __LINE__)

static void key_of(char out[ONCE_SECRET_LEN + 1], const char *fmt, const char *tag, int i)
{
	char secret[128];
	snprintf(secret, sizeof secret, fmt, tag, i);
	once_secret_hash(secret, strlen(secret), out);
}

static void count_line(void *ctx, const char *line)
{
	(void)line;
	(*(uint64_t *)ctx)++;
}

static void fill(once_store *s, const char *tag)
{
	int64_t exp = (int64_t)time(NULL) + 3600;
	char key[ONCE_SECRET_LEN + 1], fam[64], jti[64], plain[128];
	const char *scope[] = {"openid", "profile"};

	/* Authorization codes and the access tokens minted from them. */
	snprintf(fam, sizeof fam, "code-fam-%s", tag);
	for (int i = 0; i < 6; i++) {
		key_of(key, "code-secret-%s-%d", tag, i);
		once_code c = {.client_id = "app", .subject = "alice", .redirect_uri = "https://app.example/cb",
		               .scope = scope, .scope_count = 2, .family_id = fam, .expires_at = exp};
		CHECK(once_code_put(s, key, ONCE_SECRET_LEN, &c), ONCE_OK);
		if (i < 3) {
			once_code *rec = NULL;
			CHECK(once_code_take(s, key, ONCE_SECRET_LEN, &rec, NULL), ONCE_OK);
			once_free(rec);
		}
		if (i < 2)
			CHECK(once_code_finalize(s, key, ONCE_SECRET_LEN), ONCE_OK);
	}
	for (int i = 0; i < 2; i++) {
		snprintf(jti, sizeof jti, "at-%s-%d", tag, i);
		CHECK(once_code_record_access_token(s, fam, strlen(fam), jti, strlen(jti), exp), ONCE_OK);
	}
	CHECK(once_code_revoke_family_access_tokens(s, fam, strlen(fam)), ONCE_OK);

	/* Refresh tokens. */
	snprintf(fam, sizeof fam, "rt-%s", tag);
	for (int i = 0; i < 4; i++) {
		key_of(key, "refresh-secret-%s-%d", tag, i);
		once_refresh r = {.family_id = fam, .subject = "alice", .expires_at = exp, .client_id = "app",
		                  .scope = scope, .scope_count = 2, .generation = i};
		CHECK(once_refresh_insert(s, key, ONCE_SECRET_LEN, &r), ONCE_OK);
	}
	key_of(key, "refresh-secret-%s-%d", tag, 0);
	once_refresh *out = NULL;
	CHECK(once_refresh_consume(s, key, ONCE_SECRET_LEN, &out), ONCE_OK);
	once_free(out);
	snprintf(plain, sizeof plain, "SUCCESSOR-PLAINTEXT-%s remembered", tag);
	CHECK(once_refresh_remember_successor(s, key, ONCE_SECRET_LEN, plain, strlen(plain)), ONCE_OK);

	char child[ONCE_SECRET_LEN + 1];
	key_of(key, "refresh-secret-%s-%d", tag, 1);
	key_of(child, "refresh-secret-%s-child-%d", tag, 1);
	once_refresh succ = {.family_id = fam, .subject = "alice", .expires_at = exp, .generation = 5};
	snprintf(plain, sizeof plain, "SUCCESSOR-PLAINTEXT-%s rotated", tag);
	out = NULL;
	CHECK(once_refresh_rotate(s, key, ONCE_SECRET_LEN, child, ONCE_SECRET_LEN, &succ, plain,
	                          strlen(plain), &out),
	      ONCE_OK);
	once_free(out);

	snprintf(fam, sizeof fam, "rt-rev-%s", tag);
	key_of(key, "refresh-secret-%s-revoked-%d", tag, 0);
	once_refresh rv = {.family_id = fam, .subject = "bob", .expires_at = exp};
	CHECK(once_refresh_insert(s, key, ONCE_SECRET_LEN, &rv), ONCE_OK);
	CHECK(once_refresh_revoke_family(s, fam, strlen(fam)), ONCE_OK);

	/* DPoP nonces. */
	char nonce[ONCE_NONCE_LEN + 1];
	for (int i = 0; i < 3; i++) {
		CHECK(once_nonce_issue(s, 600, nonce), ONCE_OK);
		if (i == 0)
			CHECK(once_nonce_accept(s, nonce, ONCE_NONCE_LEN, 600), ONCE_OK);
	}

	/* DPoP replay cache. */
	for (int i = 0; i < 4; i++) {
		snprintf(jti, sizeof jti, "jkt|https://api.example/|jti-%s-%d", tag, i);
		CHECK(once_replay_check(s, jti, strlen(jti), 600), ONCE_OK);
	}
	snprintf(jti, sizeof jti, "jkt|https://api.example/|jti-%s-%d", tag, 0);
	CHECK(once_replay_check(s, jti, strlen(jti), 600), ONCE_SPENT);
}

/* The bytes a hex string spells (2 digits a byte); false if it is not one. */
static bool unhex(const char *hex, unsigned char *out, size_t cap, size_t *len)
{
	size_t n = strlen(hex);
	if (n % 2 != 0 || n / 2 > cap)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return false;
		out[i] = (unsigned char)v;
	}
	*len = n / 2;
	return true;
}

static void text(once_store *s, int i, const unsigned char *b, size_t n)
{
	int64_t exp = (int64_t)time(NULL) + 3600;
	char key[ONCE_SECRET_LEN + 1], str[512];
	CHECK(once_replay_check(s, b, n, 600), ONCE_OK);
	if (memchr(b, 0, n) != NULL)
		return; /* not a C string */
	memcpy(str, b, n);
	str[n] = '\0';
	key_of(key, "text-%s-%d", "code", i);
	once_code c = {.client_id = str, .subject = str, .redirect_uri = "https://app.example/cb",
	               .expires_at = exp};
	CHECK(once_code_put(s, key, ONCE_SECRET_LEN, &c), ONCE_OK);
	key_of(key, "text-%s-%d", "refresh", i);
	once_refresh r = {.family_id = "rt-text", .subject = str, .expires_at = exp};
	CHECK(once_refresh_insert(s, key, ONCE_SECRET_LEN, &r), ONCE_OK);
}

static void spend(once_store *s, const char *tag)
{
	char key[ONCE_SECRET_LEN + 1], jti[64];
	for (int i = 3; i <= 4; i++) {
		key_of(key, "code-secret-%s-%d", tag, i);
		once_code *rec = NULL;
		CHECK(once_code_take(s, key, ONCE_SECRET_LEN, &rec, NULL), ONCE_OK);
		once_free(rec);
		if (i == 3)
			CHECK(once_code_finalize(s, key, ONCE_SECRET_LEN), ONCE_OK);
	}
	char child[ONCE_SECRET_LEN + 1], fam[64];
	snprintf(fam, sizeof fam, "rt-%s", tag);
	key_of(key, "refresh-secret-%s-%d", tag, 2);
	key_of(child, "refresh-secret-%s-child-%d", tag, 2);
	once_refresh succ = {.family_id = fam, .subject = "alice",
	                     .expires_at = (int64_t)time(NULL) + 3600, .generation = 6};
	once_refresh *out = NULL;
	CHECK(once_refresh_rotate(s, key, ONCE_SECRET_LEN, child, ONCE_SECRET_LEN, &succ, NULL, 0, &out),
	      ONCE_OK);
	once_free(out);
	key_of(key, "refresh-secret-%s-%d", tag, 3);
	out = NULL;
	CHECK(once_refresh_consume(s, key, ONCE_SECRET_LEN, &out), ONCE_OK);
	once_free(out);
	snprintf(jti, sizeof jti, "jkt|https://api.example/|jti-%s-spend", tag);
	CHECK(once_replay_check(s, jti, strlen(jti), 600), ONCE_OK);
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *tag = "a", *until = NULL;
	bool none = false, checkpoint = false, spending = false;
	int hold = 0, texts = 0, shards = 4;
	const char *text_hex[16];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--text") == 0 && i + 1 < argc && texts < 16)
			text_hex[texts++] = argv[++i];
		else if (strcmp(argv[i], "--tag") == 0 && i + 1 < argc)
			tag = argv[++i];
		else if (strcmp(argv[i], "--hold") == 0 && i + 1 < argc)
			hold = atoi(argv[++i]);
		else if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc)
			shards = atoi(argv[++i]);
		else if (strcmp(argv[i], "--until") == 0 && i + 1 < argc)
			until = argv[++i];
		else if (strcmp(argv[i], "--none") == 0)
			none = true;
		else if (strcmp(argv[i], "--spend") == 0)
			spending = true;
		else if (strcmp(argv[i], "--checkpoint") == 0)
			checkpoint = true;
		else if (dir == NULL && argv[i][0] != '-')
			dir = argv[i];
		else {
			fprintf(stderr, "usage: fill DIR [--tag T] [--none | --spend | --text HEX...] [--shards N] [--checkpoint] [--hold SECONDS [--until FILE]]\n");
			return 2;
		}
	}
	if (dir == NULL) {
		fprintf(stderr, "usage: fill DIR [--tag T] [--none | --spend | --text HEX...] [--shards N] [--checkpoint] [--hold SECONDS [--until FILE]]\n");
		return 2;
	}
	static const unsigned char successor_key[ONCE_SUCCESSOR_KEY_LEN] = "fill: test successor key 32 b.";
	once_options o;
	once_options_init(&o);
	o.dir = dir;
	o.shards = (uint32_t)shards;
	o.sync = ONCE_SYNC_ALWAYS;
	o.sweep_interval_ms = 0;
	o.checkpoint_bytes = UINT64_MAX;
	o.successor_key = successor_key;
	once_store *s;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK) {
		fprintf(stderr, "fill: once_open(%s): ONCE_%s\n", dir, once_status_name(st));
		return 1;
	}
	for (int i = 0; i < texts; i++) {
		unsigned char b[256];
		size_t n;
		if (unhex(text_hex[i], b, sizeof b, &n))
			text(s, i, b, n);
		else
			check(ONCE_INVALID, ONCE_OK, "--text: not a hex string", __LINE__);
	}
	if (texts == 0 && spending)
		spend(s, tag);
	else if (texts == 0 && !none)
		fill(s, tag);
	if (checkpoint)
		CHECK(once_checkpoint(s), ONCE_OK);
	uint64_t lines = 0;
	once__dump(s, count_line, &lines);
	printf("entries %" PRIu64 "\n", lines);
	if (hold > 0) {
		printf("holding\n");
		fflush(stdout);
		for (int i = 0; i < hold * 20 && (until == NULL || access(until, F_OK) != 0); i++)
			usleep(50000);
	}
	fflush(stdout);
	CHECK(once_close(s), ONCE_OK);
	return failures ? 1 : 0;
}
