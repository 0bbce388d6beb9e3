/*
 * tests/metrics_dump.c - for tests/check_prometheus.py: opens a store on
 * DIR (ONCE_SYNC_ALWAYS), writes to every kind (codes put and taken, one
 * finalized and taken again for a SPENT, access tokens, refresh tokens in two families,
 * nonces, replays), checkpoints, writes a little more, and prints
 * once_stats_prometheus's text.  Public API only.
 *
 *   metrics_dump DIR    exit 0, or 1 naming the call that failed
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oncestore.h"

#define CHECK(call, want)                                                                         \
	do {                                                                                      \
		once_status st_ = (call);                                                         \
		if (st_ != (want)) {                                                              \
			fprintf(stderr, "metrics_dump: %s: %s\n", #call, once_status_name(st_));  \
			exit(1);                                                                  \
		}                                                                                 \
	} while (0)

static void key(char out[ONCE_SECRET_LEN + 1], const char *prefix, int i)
{
	char secret[64];
	int n = snprintf(secret, sizeof secret, "%s-%d", prefix, i);
	CHECK(once_secret_hash(secret, (size_t)n, out), ONCE_OK);
}

static void codes(once_store *s)
{
	for (int i = 0; i < 12; i++) {
		char k[ONCE_SECRET_LEN + 1];
		key(k, "code", i);
		once_code c = {.client_id = "client-1", .subject = "user-1",
		               .redirect_uri = "https://app.example/cb", .expires_at = 4000000000};
		CHECK(once_code_put(s, k, strlen(k), &c), ONCE_OK);
		if (i < 4) {
			once_code *out = NULL;
			CHECK(once_code_take(s, k, strlen(k), &out, NULL), ONCE_OK);
			once_free(out);
		}
	}
	char k[ONCE_SECRET_LEN + 1];
	key(k, "code", 0);
	CHECK(once_code_finalize(s, k, strlen(k)), ONCE_OK);
	once_code *out = NULL;
	once_code_meta *meta = NULL;
	CHECK(once_code_take(s, k, strlen(k), &out, &meta), ONCE_SPENT);
	once_free(meta);
	CHECK(once_code_record_access_token(s, "code-fam-1", 10, "jti-1", 5, 4000000000), ONCE_OK);
	CHECK(once_code_record_access_token(s, "code-fam-1", 10, "jti-2", 5, 4000000000), ONCE_OK);
}

static void refresh(once_store *s)
{
	const char *fams[] = {"rt-a", "rt-a", "rt-b"};
	for (int i = 0; i < 3; i++) {
		char k[ONCE_SECRET_LEN + 1];
		key(k, "refresh", i);
		once_refresh r = {.family_id = fams[i], .subject = "user-1", .client_id = "client-1",
		                  .expires_at = 4000000000};
		CHECK(once_refresh_insert(s, k, strlen(k), &r), ONCE_OK);
	}
}

static void short_lived(once_store *s)
{
	char nonce[ONCE_NONCE_LEN + 1];
	for (int i = 0; i < 3; i++)
		CHECK(once_nonce_issue(s, 300, nonce), ONCE_OK);
	for (int i = 0; i < 4; i++) {
		char jti[32];
		int n = snprintf(jti, sizeof jti, "jkt|https://api/|jti-%d", i);
		CHECK(once_replay_check(s, jti, (size_t)n, 300), ONCE_OK);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: metrics_dump DIR\n");
		return 2;
	}
	once_options o;
	once_options_init(&o);
	o.dir = argv[1];
	o.sync = ONCE_SYNC_ALWAYS;
	o.sweep_interval_ms = 0;
	once_store *s = NULL;
	CHECK(once_open(&o, &s), ONCE_OK);
	codes(s);
	refresh(s);
	CHECK(once_checkpoint(s), ONCE_OK);
	short_lived(s);
	size_t n = once_stats_prometheus(s, NULL, 0);
	char *text = malloc(n + 1);
	if (text == NULL || once_stats_prometheus(s, text, n + 1) != n) {
		fprintf(stderr, "metrics_dump: once_stats_prometheus: no text of the size it said\n");
		return 1;
	}
	fputs(text, stdout);
	free(text);
	CHECK(once_close(s), ONCE_OK);
	return 0;
}
