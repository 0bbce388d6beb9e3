/*
 * bench/mix.c - the gateway mix: what an OAuth gateway asks of the store.
 *
 * Per simulated login: code put (the code's 43-character hash), code take,
 * code finalize, refresh insert (a new family, 22-character id).  Then the
 * login's K API calls (--mix-calls-per-login), each a replay check of the
 * DPoP proof's jti (jkt ':' UUIDv4); every N-th call overall
 * (--mix-nonce-every) also a nonce issue + accept, every M-th
 * (--mix-rotate-every) a rotation of the login's current refresh token.
 * --keys counts API calls; logins are --keys / K.  Each store call is timed
 * on its own and counted as one operation.
 */
#include <stdio.h>

#include "bench.h"

uint64_t mix_logins(const struct mix_config *m, uint64_t calls)
{
	if (m->calls_per_login < 2 || m->nonce_every < 1 || m->rotate_every < 2) {
		fprintf(stderr, "oncebench: --mix-calls-per-login >= 2, --mix-nonce-every >= 1, "
		                "--mix-rotate-every >= 2\n");
		return 0;
	}
	uint64_t logins = calls / m->calls_per_login;
	if (logins == 0)
		fprintf(stderr, "oncebench: --keys (API calls) below --mix-calls-per-login\n");
	return logins;
}

#define TIMED(call)                                                                                \
	do {                                                                                       \
		call;                                                                              \
		uint64_t t1_ = now_ns();                                                           \
		once__hist_record(h, t1_ - t);                                                           \
		t = t1_;                                                                           \
		n++;                                                                               \
	} while (0)

uint64_t mix_login(struct phase *p, struct once__hist *h, uint64_t login)
{
	static const char *const scope[] = {"openid", "profile", "offline_access"};
	const struct mix_config *m = &p->mix;
	uint64_t logins = p->keys, n = 0, t = now_ns();
	const once_code mix_code = {
		.client_id = "bench-client",
		.subject = "user-0001",
		.redirect_uri = "https://app.example/callback",
		.code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		.expires_at = bench_expires_at,
	};
	once_code *c = NULL;
	TIMED(fail_unless(p, once_code_put(p->s, code_keys[login], KEY_LEN, &mix_code), ONCE_OK));
	TIMED(fail_unless(p, once_code_take(p->s, code_keys[login], KEY_LEN, &c, NULL), ONCE_OK));
	once_free(c);
	t = now_ns(); /* the free is the caller's, not the store's */
	TIMED(fail_unless(p, once_code_finalize(p->s, code_keys[login], KEY_LEN), ONCE_OK));
	once_refresh r = {
		.family_id = family_ids[login],
		.subject = "user-0001",
		.client_id = "bench-client",
		.scope = scope,
		.scope_count = 3,
		.expires_at = bench_expires_at,
		.generation = 1,
	};
	const char *current = child_keys[login];
	TIMED(fail_unless(p, once_refresh_insert(p->s, current, KEY_LEN, &r), ONCE_OK));
	for (uint64_t call = login * m->calls_per_login; call < (login + 1) * m->calls_per_login; call++) {
		TIMED(fail_unless(p, once_replay_check(p->s, jti_keys[call], JTI_LEN, 300), ONCE_OK));
		if ((call + 1) % m->nonce_every == 0) {
			char nonce[ONCE_NONCE_LEN + 1];
			TIMED(fail_unless(p, once_nonce_issue(p->s, 300, nonce), ONCE_OK));
			TIMED(fail_unless(p, once_nonce_accept(p->s, nonce, ONCE_NONCE_LEN, 300), ONCE_OK));
		}
		if ((call + 1) % m->rotate_every == 0) {
			uint64_t k = logins + call / m->rotate_every;
			const char *next = child_keys[k];
			once_refresh child = r;
			child.generation = ++r.generation;
			child.parent_hash = current;
			once_refresh *parent = NULL;
			TIMED(fail_unless(p, once_refresh_rotate(p->s, current, KEY_LEN, next, KEY_LEN, &child,
			                                         child_tokens[k], KEY_LEN, &parent),
			                  ONCE_OK));
			once_free(parent);
			t = now_ns();
			current = next;
		}
	}
	return n;
}
