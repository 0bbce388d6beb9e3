/*
 * examples/dpop_check.c - the single-use checks of a DPoP-protected resource
 * (RFC 9449).
 *
 * A resource server (or a token endpoint) that accepts DPoP proofs must
 * refuse a proof it has seen before, and may require each proof to carry a
 * nonce it issued (the DPoP-Nonce header).  oncestore holds both:
 *
 *   replay   once_dpop_replay_key(jkt, jti) = base64url(SHA-256(jkt ":" jti)),
 *            recorded by once_replay_check with a ttl of 121 s (the proof's
 *            max age 60 + future clock skew 60 + 1: as long as its iat can
 *            pass the freshness check).  Keyed by the proof key's thumbprint,
 *            so one client cannot burn another's jti; the raw jti is never
 *            stored; the same key as AttestoPhoenix, so C and Elixir nodes
 *            sharing PostgreSQL see each other's proofs.  Of any number of
 *            concurrent presentations of one proof exactly one is accepted.
 *   nonce    once_nonce_issue mints one for each response; once_nonce_accept
 *            takes it once, within its freshness window (300 s here).
 *
 * check_proof() below runs after the proof's signature, typ, htm, htu, iat
 * and ath were checked (a JOSE library's job, not shown).  The program
 * plays a few clients against it, checks each verdict, and exits 0 only
 * when every verdict was the expected one; 1 otherwise; 2 usage error.
 *
 * Usage:
 *   dpop_check [--postgres CONNINFO] [DIR]
 * A memory-only store by default; DIR: a data directory; --postgres: the
 * PostgreSQL engine (options.postgres).  Keys and jti are fresh at every
 * run.  CI runs it on the embedded engine (examples/meson.build).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <oncestore.h>

#define REPLAY_TTL 121 /* proof max age 60 + clock skew 60 + 1 */
#define NONCE_TTL 300  /* a nonce's lifetime and freshness window */
#define RACERS 8

/* The store's clock: real time, moved on by the demo. */
static _Atomic int64_t clock_skew;

static int64_t demo_clock(void *ctx)
{
	(void)ctx;
	return (int64_t)time(NULL) + atomic_load(&clock_skew);
}

/* What check_proof needs of a verified proof. */
struct proof {
	const char *jkt;   /* RFC 7638 thumbprint of the proof's public key */
	const char *jti;   /* the proof's unique id, chosen by the client */
	const char *nonce; /* the proof's nonce claim, NULL when absent */
};

enum verdict {
	ACCEPT,         /* serve the request */
	USE_DPOP_NONCE, /* 401 error="use_dpop_nonce": retry with the new nonce */
	REPLAY,         /* 401 invalid_dpop_proof: this proof was used before */
	REFUSE          /* 401 / 503: refuse, fail closed (FULL, IO, ...) */
};
static const char *const verdict_names[] = {"accepted", "use_dpop_nonce", "replay refused",
                                            "refused"};

/* The one-time checks of a proof.  *next_nonce (may be NULL) receives a
 * fresh nonce for the response's DPoP-Nonce header, "" if none could be
 * issued. */
static enum verdict check_proof(once_store *s, const struct proof *p,
                                char next_nonce[ONCE_NONCE_LEN + 1])
{
	if (next_nonce != NULL && once_nonce_issue(s, NONCE_TTL, next_nonce) != ONCE_OK)
		next_nonce[0] = '\0';

	/* 1. The replay cache, under the recommended key. */
	char key[ONCE_SECRET_LEN + 1];
	if (once_dpop_replay_key(p->jkt, strlen(p->jkt), p->jti, strlen(p->jti), key) != ONCE_OK)
		return REFUSE;
	once_status st = once_replay_check(s, key, ONCE_SECRET_LEN, REPLAY_TTL);
	if (st == ONCE_SPENT)
		return REPLAY;
	if (st != ONCE_OK)
		return REFUSE; /* FULL, IO, NOMEM, INVALID: never accept unrecorded */

	/* 2. The server nonce, taken once. */
	if (p->nonce == NULL)
		return USE_DPOP_NONCE;
	st = once_nonce_accept(s, p->nonce, strlen(p->nonce), NONCE_TTL);
	if (st == ONCE_SPENT || st == ONCE_EXPIRED || st == ONCE_NOT_FOUND)
		return USE_DPOP_NONCE;
	return st == ONCE_OK ? ACCEPT : REFUSE;
}

/* ---- the demo ---- */

static once_store *store;
static int failed_checks;

/* Presents a proof and checks the verdict. */
static void present(const char *what, const struct proof *p, enum verdict want,
                    char next_nonce[ONCE_NONCE_LEN + 1])
{
	enum verdict v = check_proof(store, p, next_nonce);
	printf("  %-58s %s\n", what, verdict_names[v]);
	if (v != want) {
		printf("  ^ FAILED: wanted %s\n", verdict_names[want]);
		failed_checks++;
	}
}

static struct proof racing;
static atomic_int race_verdicts[4];
static pthread_barrier_t start;

static void *racer(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&start);
	atomic_fetch_add(&race_verdicts[check_proof(store, &racing, NULL)], 1);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *postgres = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--postgres") == 0 && i + 1 < argc)
			postgres = argv[++i];
		else if (argv[i][0] != '-' && dir == NULL)
			dir = argv[i];
		else {
			fprintf(stderr, "usage: dpop_check [--postgres CONNINFO] [DIR]\n");
			return 2;
		}
	}
	once_options opt;
	once_options_init(&opt);
	opt.dir = dir;
	opt.postgres = postgres;
	opt.clock = demo_clock;
	once_status st = once_open(&opt, &store);
	if (st != ONCE_OK) {
		fprintf(stderr, "once_open: ONCE_%s: %s\n", once_status_name(st), once_strerror(st));
		return 1;
	}
	printf("DPoP checks: %s\n", postgres ? "PostgreSQL" : dir ? dir : "memory only");

	/* Two clients' keys and a few jti, fresh at every run. */
	char jkt_a[ONCE_SECRET_LEN + 1], jkt_b[ONCE_SECRET_LEN + 1], jkt_c[ONCE_SECRET_LEN + 1];
	char jti[5][ONCE_SECRET_LEN + 1];
	once_secret_generate(jkt_a);
	once_secret_generate(jkt_b);
	once_secret_generate(jkt_c);
	for (int i = 0; i < 5; i++)
		once_secret_generate(jti[i]);
	char n1[ONCE_NONCE_LEN + 1], n2[ONCE_NONCE_LEN + 1], n3[ONCE_NONCE_LEN + 1];
	char n4[ONCE_NONCE_LEN + 1], n5[ONCE_NONCE_LEN + 1];

	struct proof a0 = {jkt_a, jti[0], NULL};
	present("client A, no nonce yet (response: DPoP-Nonce n1)", &a0, USE_DPOP_NONCE, n1);
	struct proof a1 = {jkt_a, jti[1], n1};
	present("client A, new proof with n1 (response: n2)", &a1, ACCEPT, n2);
	present("the same proof again (an attacker replays it)", &a1, REPLAY, NULL);
	struct proof b1 = {jkt_b, jti[1], n2};
	present("client B, the same jti under its own key, nonce n2", &b1, ACCEPT, n3);
	struct proof a2 = {jkt_a, jti[2], n1};
	present("client A, new proof reusing the spent nonce n1", &a2, USE_DPOP_NONCE, n4);

	atomic_fetch_add(&clock_skew, NONCE_TTL + 1);
	printf("  (clock moved on %d s)\n", NONCE_TTL + 1);
	struct proof a3 = {jkt_a, jti[3], n4};
	present("client A, new proof with n4, now stale", &a3, USE_DPOP_NONCE, n5);

	/* One proof presented by RACERS threads at once: exactly one wins. */
	racing = (struct proof){jkt_c, jti[4], n5};
	pthread_t th[RACERS];
	if (pthread_barrier_init(&start, NULL, RACERS) != 0)
		return 1;
	for (int i = 0; i < RACERS; i++)
		if (pthread_create(&th[i], NULL, racer, NULL) != 0)
			return 1;
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	int acc = atomic_load(&race_verdicts[ACCEPT]), rep = atomic_load(&race_verdicts[REPLAY]);
	bool race_ok = acc == 1 && rep == RACERS - 1;
	printf("  %d threads present one proof at once: %d %s, %d %s%s\n", RACERS, acc,
	       verdict_names[ACCEPT], rep, verdict_names[REPLAY], race_ok ? "" : "  ^ FAILED");
	failed_checks += !race_ok;

	st = once_close(store);
	if (st != ONCE_OK) {
		printf("  once_close: %s  ^ FAILED\n", once_status_name(st));
		failed_checks++;
	}
	printf("%s: %d failed check(s)\n", failed_checks ? "FAILED" : "passed", failed_checks);
	return failed_checks == 0 ? 0 : 1;
}
