/*
 * examples/quickstart.c - the README's "Using it" flow as a complete program.
 *
 * An authorization server's single-use state, end to end: /authorize stores
 * an authorization code; /token redeems it (exactly one presentation wins;
 * a second one, after the first was finalized, is ONCE_SPENT: a replay, so
 * the access token minted from the code is revoked); a DPoP-protected
 * request records its proof under the recommended replay key, so the same
 * proof is refused the second time; a DPoP server nonce is issued and
 * accepted once.  The README quotes the part between the "README: begin"
 * and "README: end" comments (examples/check_readme.py keeps the two
 * equal: edit here, then run `examples/check_readme.py --write`).
 *
 * Every call's answer is printed and compared with the one expected; the
 * program exits 0 only when every call answered as expected (CI runs it:
 * examples/meson.build).  Every secret, family and jti is fresh at each run,
 * so it may run again on the same data directory or database.
 *
 * Usage:
 *   quickstart                      a memory-only store (the default)
 *   quickstart DIR                  a data directory (created 0700 if absent)
 *   quickstart --postgres CONNINFO  the PostgreSQL engine (options.postgres;
 *                                   the tables: `oncestore schema | psql`)
 *
 * Build it against an installed oncestore:
 *   cc -o quickstart quickstart.c $(pkg-config --cflags --libs oncestore)
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <oncestore.h>

static int surprises; /* calls that did not answer as expected */

/* Prints a step and the store's answer; counts it when it is not `want`. */
static once_status check(const char *step, once_status got, once_status want)
{
	printf("  %-50s %s\n", step, once_status_name(got));
	if (got != want) {
		printf("  ^ unexpected: wanted %s\n", once_status_name(want));
		surprises++;
	}
	return got;
}

/* The same for the calls that answer true or false. */
static void check_bool(const char *step, bool got, bool want)
{
	printf("  %-50s %s\n", step, got ? "true" : "false");
	if (got != want) {
		printf("  ^ unexpected: wanted %s\n", want ? "true" : "false");
		surprises++;
	}
}

/* argv: nothing, DIR, or --postgres CONNINFO. */
static bool parse_args(int argc, char **argv, const char **dir, const char **postgres)
{
	*dir = NULL;
	*postgres = NULL;
	if (argc == 2 && argv[1][0] != '-')
		*dir = argv[1];
	else if (argc == 3 && strcmp(argv[1], "--postgres") == 0)
		*postgres = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: quickstart [DIR | --postgres CONNINFO]\n");
		return false;
	}
	return true;
}

/* README: begin */
/* /token, grant_type=authorization_code.  Hash what the client presents
 * and take the code: of any number of concurrent presentations, one wins.
 * Anything but ONCE_OK is answered with invalid_grant. */
static once_status redeem(once_store *store, const char *presented_code,
                          const char *presented_verifier, char at_jti[ONCE_SECRET_LEN + 1])
{
	char key[ONCE_SECRET_LEN + 1], challenge[ONCE_SECRET_LEN + 1];
	once_secret_hash(presented_code, strlen(presented_code), key);
	once_code *rec = NULL;
	once_code_meta *replayed = NULL;
	once_status st = once_code_take(store, key, ONCE_SECRET_LEN, &rec, &replayed);
	switch (st) {
	case ONCE_OK: /* the one winner; the code is spent for everyone else */
		/* PKCE S256: the challenge is base64url(SHA-256(verifier)). */
		once_secret_hash(presented_verifier, strlen(presented_verifier), challenge);
		if (rec->expires_at < time(NULL) || strcmp(rec->code_challenge, challenge) != 0) {
			once_free(rec); /* taken, never finalized: later takes get NOT_FOUND */
			return ONCE_INVALID;
		}
		/* Mint the tokens, and record the access token in the code's family. */
		once_secret_generate(at_jti);
		check("record the access token minted from it",
		      once_code_record_access_token(store, rec->family_id, strlen(rec->family_id),
		                                    at_jti, strlen(at_jti), time(NULL) + 3600),
		      ONCE_OK);
		/* Redeemed: from now on a take of this code is ONCE_SPENT. */
		check("finalize the code", once_code_finalize(store, key, ONCE_SECRET_LEN), ONCE_OK);
		once_free(rec);
		return ONCE_OK;
	case ONCE_SPENT: /* a replay of a redeemed code: revoke what it minted */
		if (replayed->family_id != NULL)
			check("replay: revoke the family's access tokens",
			      once_code_revoke_family_access_tokens(store, replayed->family_id,
			                                            strlen(replayed->family_id)),
			      ONCE_OK);
		once_free(replayed);
		return ONCE_SPENT;
	default: /* NOT_FOUND: unknown, or a first presentation that failed */
		return st;
	}
}

int main(int argc, char **argv)
{
	const char *dir, *postgres;
	if (!parse_args(argc, argv, &dir, &postgres))
		return 2;

	once_options opt;
	once_options_init(&opt);   /* defaults: 1 Mi entries per kind, one shard per CPU */
	opt.dir = dir;             /* NULL: memory only */
	opt.postgres = postgres;   /* NULL: the embedded engine */
	once_store *store;
	once_status st = once_open(&opt, &store); /* recovers what a crash left */
	if (st != ONCE_OK) { /* CORRUPT: see `oncestore verify` */
		fprintf(stderr, "once_open: ONCE_%s: %s\n", once_status_name(st), once_strerror(st));
		return 1;
	}
	printf("store open: %s\n", postgres ? "PostgreSQL" : dir ? dir : "memory only");

	/* /authorize: store the code under the hash of its secret, never the
	 * secret itself.  The code and the PKCE verifier go to the client. */
	char code[ONCE_SECRET_LEN + 1], key[ONCE_SECRET_LEN + 1];
	char verifier[ONCE_SECRET_LEN + 1], challenge[ONCE_SECRET_LEN + 1];
	char family[ONCE_SECRET_LEN + 1]; /* links the code to what it mints */
	once_secret_generate(code);
	once_secret_hash(code, strlen(code), key);
	once_secret_generate(verifier); /* the client's; it sends the challenge */
	once_secret_hash(verifier, strlen(verifier), challenge);
	once_secret_generate(family);
	once_code c = {
		.client_id = "app", .subject = "alice", .redirect_uri = "https://app.example/cb",
		.code_challenge = challenge, /* S256 */ .family_id = family,
		.expires_at = time(NULL) + 60,
	};
	printf("/authorize\n");
	check("store the code", once_code_put(store, key, ONCE_SECRET_LEN, &c), ONCE_OK);

	/* /token: the first presentation wins; a second one is a replay. */
	char at_jti[ONCE_SECRET_LEN + 1];
	printf("/token\n");
	check("redeem the code", redeem(store, code, verifier, at_jti), ONCE_OK);
	check_bool("its access token is revoked", once_access_token_revoked(store, at_jti,
	                                                                    strlen(at_jti)), false);
	check("redeem the same code again", redeem(store, code, verifier, at_jti), ONCE_SPENT);
	check_bool("its access token is revoked", once_access_token_revoked(store, at_jti,
	                                                                    strlen(at_jti)), true);

	/* Any DPoP-protected request: record the proof under the recommended
	 * key, base64url(SHA-256(jkt ":" jti)), so one client cannot burn
	 * another's jti; ttl at least 121 s (proof max age + clock skew + 1). */
	const char *jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"; /* RFC 7638 thumbprint */
	char jti[ONCE_SECRET_LEN + 1], replay_key[ONCE_SECRET_LEN + 1];
	once_secret_generate(jti); /* chosen by the client, in the proof */
	once_dpop_replay_key(jkt, strlen(jkt), jti, strlen(jti), replay_key);
	printf("DPoP proof\n");
	check("first use of the proof",
	      once_replay_check(store, replay_key, ONCE_SECRET_LEN, 121), ONCE_OK);
	check("the same proof again: refused",
	      once_replay_check(store, replay_key, ONCE_SECRET_LEN, 121), ONCE_SPENT);

	/* Server nonces: issue one in DPoP-Nonce, accept it once. */
	char nonce[ONCE_NONCE_LEN + 1];
	printf("DPoP nonce\n");
	check("issue a nonce", once_nonce_issue(store, 300, nonce), ONCE_OK);
	check("accept it", once_nonce_accept(store, nonce, strlen(nonce), 300), ONCE_OK);
	check("accept it again: refused",
	      once_nonce_accept(store, nonce, strlen(nonce), 300), ONCE_SPENT);

	/* Writes and syncs what the log still holds, stops the threads. */
	check("close the store", once_close(store), ONCE_OK);
	printf("%d unexpected answer(s)\n", surprises);
	return surprises == 0 ? 0 : 1;
}
/* README: end */
