/*
 * tests/consumer.c - a program built the way a user builds one:
 *   cc consumer.c $(pkg-config --cflags --libs oncestore)
 * against an installed copy (tests/run.sh installs into a scratch prefix).
 * It walks the README's example: a code taken once, a DPoP proof once.
 */
#include <oncestore.h>
#include <stdio.h>
#include <string.h>

#define CHECK(expr, want)                                                                          \
	do {                                                                                       \
		once_status st_ = (expr);                                                          \
		if (st_ != (want)) {                                                               \
			fprintf(stderr, "%s: %s\n", #expr, once_status_name(st_));                 \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

int main(void)
{
	once_options opt;
	once_options_init(&opt);
	opt.max_codes = opt.max_access_tokens = opt.max_refresh = opt.max_nonces = opt.max_replays = 1024;
	once_store *store;
	CHECK(once_open(&opt, &store), ONCE_OK);

	char code[ONCE_SECRET_LEN + 1], key[ONCE_SECRET_LEN + 1];
	CHECK(once_secret_generate(code), ONCE_OK);
	CHECK(once_secret_hash(code, ONCE_SECRET_LEN, key), ONCE_OK);
	once_code c = {.client_id = "app", .subject = "alice", .redirect_uri = "https://app.example/cb",
	               .family_id = "fam-1", .expires_at = 4102444800};
	CHECK(once_code_put(store, key, ONCE_SECRET_LEN, &c), ONCE_OK);
	once_code *rec = NULL;
	CHECK(once_code_take(store, key, ONCE_SECRET_LEN, &rec, NULL), ONCE_OK);
	once_free(rec);
	CHECK(once_code_finalize(store, key, ONCE_SECRET_LEN), ONCE_OK);
	once_code_meta *meta = NULL;
	CHECK(once_code_take(store, key, ONCE_SECRET_LEN, NULL, &meta), ONCE_SPENT);
	if (meta->family_id == NULL || strcmp(meta->family_id, "fam-1") != 0)
		return 1;
	once_free(meta);

	CHECK(once_replay_check(store, "jkt|https://api.example/x|jti-1", 31, 330), ONCE_OK);
	CHECK(once_replay_check(store, "jkt|https://api.example/x|jti-1", 31, 330), ONCE_SPENT);
	char nonce[ONCE_NONCE_LEN + 1];
	CHECK(once_nonce_issue(store, 300, nonce), ONCE_OK);
	CHECK(once_nonce_accept(store, nonce, strlen(nonce), 300), ONCE_OK);
	CHECK(once_close(store), ONCE_OK);
	puts("consumer: ok");
	return 0;
}
