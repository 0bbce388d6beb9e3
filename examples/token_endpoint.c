/*
 * examples/token_endpoint.c - a threaded OAuth 2.0 token endpoint on oncestore.
 *
 * A threaded server (one request per worker thread) must hold the single-use
 * rules however its requests interleave.  Here N threads play N clients that
 * all present the same credentials at once, and the program checks what
 * each got:
 *
 *   1. grant_type=authorization_code.  Every thread redeems every code.
 *      once_code_take lets exactly one presentation win per code; the winner
 *      mints an access token (recorded in the code's family) and a refresh
 *      token, then finalizes the code.  A loser gets ONCE_NOT_FOUND while the
 *      winner has not finalized (invalid_grant) or ONCE_SPENT after: that is
 *      a replay of a redeemed code, so it revokes everything the code minted
 *      (RFC 6749 section 4.1.2): the family's access tokens and its refresh
 *      family.  A replay presented after the race does the same, always.
 *
 *   2. grant_type=refresh_token, on fresh logins.  Every thread rotates the
 *      same refresh token at once.  once_refresh_rotate lets exactly one
 *      rotation win; it stores the child token as the parent's successor
 *      (the payload is the child token itself and the child's key is
 *      once_secret_hash(child token): the form both engines accept).  Every
 *      loser gets ONCE_SPENT with that successor, and the grace rule
 *      decides: within GRACE seconds of the rotation it is an honest retry
 *      (a response lost on the way), answered with the same child token, so
 *      all N clients end up holding one token; after GRACE seconds (the
 *      clock is moved on), or with no successor, it is reuse of a rotated
 *      token (RFC 9700 section 4.14): the whole family is revoked and every
 *      token of it, the newest included, stops working.
 *
 * A real endpoint checks more before answering (client authentication,
 * PKCE and redirect_uri as in examples/quickstart.c, the DPoP binding, and
 * that a retry within the grace window comes from the same client).
 *
 * Usage:
 *   token_endpoint [--threads N] [--logins N] [--postgres CONNINFO] [DIR]
 * A memory-only store by default; DIR: a data directory; --postgres: the
 * PostgreSQL engine (options.postgres; the tables: `oncestore schema`).
 * Defaults: 8 threads, 64 logins per phase.  Exit status 0 only when every
 * check passed; 1 otherwise; 2 usage error.  CI runs it with its defaults
 * on the embedded engine (examples/meson.build).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oncestore.h>

#define LEN ONCE_SECRET_LEN /* every secret, hash and id here is 43 characters */
#define GRACE 60            /* seconds a rotated token's retry gets its successor */
#define CODE_TTL 60
#define ACCESS_TTL 3600
#define REFRESH_TTL 86400

/* ---- the store's clock: real time, moved on by the demo ---- */

static _Atomic int64_t clock_skew;

static int64_t demo_clock(void *ctx)
{
	(void)ctx;
	return (int64_t)time(NULL) + atomic_load(&clock_skew);
}

static int64_t now(void)
{
	return demo_clock(NULL);
}

/* ---- checks ---- */

static atomic_int failed_checks; /* expect() may run on worker threads */

static void expect(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void expect(bool ok, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("  %s ", ok ? "ok:    " : "FAILED:");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	if (!ok)
		failed_checks++;
}

/* ---- the endpoint ---- */

/* One login: what /authorize stored, and what the code's winner minted. */
struct login {
	char code[LEN + 1];   /* the code as the client presents it */
	char family[LEN + 1]; /* the code's family: its access and refresh tokens */
	char access_jti[LEN + 1];
	char refresh[LEN + 1]; /* the refresh token as the client presents it */
	atomic_int won, not_found, spent, other; /* answers to the presentations */
};

static once_store *store;

/* /authorize: a code for a fresh family. */
static bool authorize(struct login *l)
{
	char key[LEN + 1];
	once_secret_generate(l->code);
	once_secret_hash(l->code, LEN, key);
	once_secret_generate(l->family);
	once_code c = {
		.client_id = "app", .subject = "alice", .redirect_uri = "https://app.example/cb",
		.family_id = l->family, .expires_at = now() + CODE_TTL,
	};
	return once_code_put(store, key, LEN, &c) == ONCE_OK;
}

/* Revokes everything a code minted: its access tokens and refresh family. */
static void revoke_code_family(const char *family)
{
	once_status a = once_code_revoke_family_access_tokens(store, family, strlen(family));
	once_status r = once_refresh_revoke_family(store, family, strlen(family));
	if (a != ONCE_OK || r != ONCE_OK)
		expect(false, "revoking family %.8s...: access tokens %s, refresh %s", family,
		       once_status_name(a), once_status_name(r));
}

/* grant_type=authorization_code: the code presented for login l. */
static once_status code_grant(struct login *l)
{
	char key[LEN + 1];
	once_secret_hash(l->code, strlen(l->code), key);
	once_code *rec = NULL;
	once_code_meta *replayed = NULL;
	once_status st = once_code_take(store, key, LEN, &rec, &replayed);
	if (st == ONCE_OK) {
		/* The one winner: mint the tokens, then finalize, so that a
		 * loser seeing SPENT knows there is something to revoke. */
		char jti[LEN + 1], rt[LEN + 1], rt_key[LEN + 1];
		once_secret_generate(jti);
		once_secret_generate(rt);
		once_secret_hash(rt, LEN, rt_key);
		once_refresh r = {
			.family_id = rec->family_id, .subject = rec->subject, .client_id = rec->client_id,
			.generation = 1, .expires_at = now() + REFRESH_TTL,
		};
		once_status a = once_code_record_access_token(store, rec->family_id,
		                                              strlen(rec->family_id), jti, LEN,
		                                              now() + ACCESS_TTL);
		once_status i = once_refresh_insert(store, rt_key, LEN, &r);
		once_status f = once_code_finalize(store, key, LEN);
		once_free(rec);
		if (a != ONCE_OK || i != ONCE_OK || f != ONCE_OK) {
			expect(false, "minting for code %.8s...: access token %s, refresh insert %s, "
			       "finalize %s", l->code, once_status_name(a), once_status_name(i),
			       once_status_name(f));
			return ONCE_INVALID;
		}
		memcpy(l->access_jti, jti, sizeof jti);
		memcpy(l->refresh, rt, sizeof rt);
		atomic_fetch_add(&l->won, 1);
	} else if (st == ONCE_SPENT) {
		/* A replay of a redeemed code: answer invalid_grant and revoke
		 * what it minted. */
		if (replayed->family_id != NULL)
			revoke_code_family(replayed->family_id);
		once_free(replayed);
		atomic_fetch_add(&l->spent, 1);
	} else if (st == ONCE_NOT_FOUND) {
		atomic_fetch_add(&l->not_found, 1); /* invalid_grant */
	} else {
		atomic_fetch_add(&l->other, 1);
	}
	return st;
}

enum grant {
	GRANT_NEW,    /* this request rotated the token: a new one */
	GRANT_RETRY,  /* rotated already, within GRACE: the same new one again */
	GRANT_REUSE,  /* rotated already, past GRACE: reuse, family revoked */
	GRANT_INVALID /* unknown, expired or revoked: invalid_grant */
};
static const char *const grant_names[] = {"new token", "retry (same token)",
                                          "reuse (family revoked)", "invalid_grant"};

/* grant_type=refresh_token: rotates `presented`; *out receives the token to
 * hand back (GRANT_NEW, GRANT_RETRY). */
static enum grant refresh_grant(const char *presented, char out[LEN + 1])
{
	char parent[LEN + 1], child_token[LEN + 1], child[LEN + 1];
	once_secret_hash(presented, strlen(presented), parent);
	once_refresh *cur = NULL;
	if (once_refresh_get(store, parent, LEN, &cur) != ONCE_OK)
		return GRANT_INVALID; /* unknown, or its family is revoked */
	if (cur->expires_at < now()) {
		once_free(cur);
		return GRANT_INVALID;
	}
	/* The child: a fresh token, stored under its hash, in the same family;
	 * the token itself is the parent's successor (sealed at rest). */
	once_secret_generate(child_token);
	once_secret_hash(child_token, LEN, child);
	once_refresh succ = {
		.family_id = cur->family_id, .subject = cur->subject, .client_id = cur->client_id,
		.generation = cur->generation + 1, .expires_at = now() + REFRESH_TTL,
	};
	once_refresh *was = NULL;
	once_status st = once_refresh_rotate(store, parent, LEN, child, LEN, &succ, child_token,
	                                     LEN, &was);
	enum grant g = GRANT_INVALID;
	if (st == ONCE_OK) {
		memcpy(out, child_token, sizeof child_token);
		g = GRANT_NEW;
	} else if (st == ONCE_SPENT) {
		/* Rotated already.  The grace rule: a retry soon after the rotation
		 * gets the successor the winner stored; anything else is reuse. */
		if (was->successor != NULL && was->successor_len == LEN &&
		    now() <= was->consumed_at + GRACE) {
			memcpy(out, was->successor, LEN);
			out[LEN] = '\0';
			g = GRANT_RETRY;
		} else {
			once_status r = once_refresh_revoke_family(store, cur->family_id,
			                                           strlen(cur->family_id));
			if (r != ONCE_OK)
				expect(false, "revoking a reused token's family: %s", once_status_name(r));
			g = GRANT_REUSE;
		}
	}
	/* NOT_FOUND, REVOKED (revoked meanwhile), EXPIRED, IO...: invalid_grant */
	once_free(was);
	once_free(cur);
	return g;
}

/* ---- the threads ---- */

static int nthreads = 8, nlogins = 64;
static struct login *race, *fresh; /* phase 1's logins, phase 2's */
static pthread_barrier_t start;
static enum grant *grants;        /* phase 2: [thread * nlogins + login] */
static char (*tokens)[LEN + 1];   /* phase 2: the token each got */

static void *phase1(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&start);
	for (int i = 0; i < nlogins; i++)
		code_grant(&race[i]);
	return NULL;
}

static void *phase2(void *arg)
{
	int t = (int)(intptr_t)arg;
	pthread_barrier_wait(&start);
	for (int i = 0; i < nlogins; i++) {
		size_t k = (size_t)t * (size_t)nlogins + (size_t)i;
		tokens[k][0] = '\0';
		grants[k] = refresh_grant(fresh[i].refresh, tokens[k]);
	}
	return NULL;
}

static bool run_threads(void *(*fn)(void *))
{
	pthread_t *th = calloc((size_t)nthreads, sizeof *th);
	if (th == NULL || pthread_barrier_init(&start, NULL, (unsigned)nthreads) != 0) {
		free(th);
		return false;
	}
	int started = 0;
	for (; started < nthreads; started++)
		if (pthread_create(&th[started], NULL, fn, (void *)(intptr_t)started) != 0)
			break;
	if (started < nthreads) {
		fprintf(stderr, "pthread_create failed\n");
		exit(1); /* the others wait on the barrier for ever */
	}
	for (int t = 0; t < nthreads; t++)
		pthread_join(th[t], NULL);
	pthread_barrier_destroy(&start);
	free(th);
	return true;
}

/* ---- main ---- */

static bool live_refresh(const char *token)
{
	char key[LEN + 1];
	once_secret_hash(token, strlen(token), key);
	once_refresh *r = NULL;
	once_status st = once_refresh_get(store, key, LEN, &r);
	bool live = st == ONCE_OK && !r->consumed;
	once_free(r);
	return live;
}

static int usage(void)
{
	fprintf(stderr, "usage: token_endpoint [--threads N] [--logins N] [--postgres CONNINFO] [DIR]\n");
	return 2;
}

static void phase1_report(void)
{
	int bad_winners = 0, spent = 0, not_found = 0, other = 0;
	for (int i = 0; i < nlogins; i++) {
		bad_winners += atomic_load(&race[i].won) != 1;
		spent += atomic_load(&race[i].spent);
		not_found += atomic_load(&race[i].not_found);
		other += atomic_load(&race[i].other);
	}
	expect(bad_winners == 0, "exactly one winner per code (%d codes had another count)",
	       bad_winners);
	expect(not_found + spent == nlogins * (nthreads - 1) && other == 0,
	       "every other presentation refused: %d NOT_FOUND (before the winner finalized), "
	       "%d SPENT (after: family revoked), %d other", not_found, spent, other);

	/* A replay after the race: always SPENT now, and it revokes. */
	int replays = 0, revoked = 0, refresh_gone = 0;
	for (int i = 0; i < nlogins; i++) {
		replays += code_grant(&race[i]) == ONCE_SPENT;
		revoked += once_access_token_revoked(store, race[i].access_jti, LEN);
		refresh_gone += !live_refresh(race[i].refresh);
	}
	expect(replays == nlogins, "a replay of each redeemed code: SPENT (%d of %d)", replays,
	       nlogins);
	expect(revoked == nlogins, "after a replay the access token reads revoked (%d of %d)",
	       revoked, nlogins);
	expect(refresh_gone == nlogins, "after a replay the refresh token is dead (%d of %d)",
	       refresh_gone, nlogins);
}

static void phase2_report(void)
{
	int one_new = 0, all_same = 0, retries = 0, live = 0;
	int kinds[4] = {0, 0, 0, 0};
	for (size_t k = 0; k < (size_t)nthreads * (size_t)nlogins; k++)
		kinds[grants[k]]++;
	printf("  answers: %d %s, %d %s, %d %s, %d %s\n", kinds[0], grant_names[0], kinds[1],
	       grant_names[1], kinds[2], grant_names[2], kinds[3], grant_names[3]);
	for (int i = 0; i < nlogins; i++) {
		int news = 0, same = 0;
		const char *first = tokens[i]; /* thread 0's */
		for (int t = 0; t < nthreads; t++) {
			size_t k = (size_t)t * (size_t)nlogins + (size_t)i;
			news += grants[k] == GRANT_NEW;
			retries += grants[k] == GRANT_RETRY;
			same += (grants[k] == GRANT_NEW || grants[k] == GRANT_RETRY) &&
			        strcmp(tokens[k], first) == 0;
		}
		one_new += news == 1;
		all_same += same == nthreads;
		live += same == nthreads && live_refresh(first);
	}
	expect(one_new == nlogins, "exactly one rotation wins per token (%d of %d)", one_new, nlogins);
	expect(retries == nlogins * (nthreads - 1),
	       "every other rotation is a retry within %d s: %d of %d", GRACE, retries,
	       nlogins * (nthreads - 1));
	expect(all_same == nlogins, "all %d clients hold the same new token (%d of %d tokens)",
	       nthreads, all_same, nlogins);
	expect(live == nlogins, "that token is live (%d of %d)", live, nlogins);

	/* The client goes on: the new token rotates once more. */
	char (*next)[LEN + 1] = calloc((size_t)nlogins, sizeof *next);
	if (next == NULL) {
		expect(false, "out of memory");
		return;
	}
	int rotated = 0;
	for (int i = 0; i < nlogins; i++)
		rotated += refresh_grant(tokens[i], next[i]) == GRANT_NEW;
	expect(rotated == nlogins, "the new token rotates again (%d of %d)", rotated, nlogins);

	/* Past the grace window, the first token shows up again: reuse. */
	atomic_fetch_add(&clock_skew, GRACE + 1);
	printf("  (clock moved on %d s)\n", GRACE + 1);
	int reuse = 0, dead = 0, refused = 0;
	for (int i = 0; i < nlogins; i++) {
		char out[LEN + 1];
		reuse += refresh_grant(fresh[i].refresh, out) == GRANT_REUSE;
		dead += !live_refresh(tokens[i]) && !live_refresh(next[i]);
		refused += refresh_grant(next[i], out) == GRANT_INVALID;
	}
	expect(reuse == nlogins, "the first token again: reuse, family revoked (%d of %d)", reuse,
	       nlogins);
	expect(dead == nlogins, "every token of the family is dead, the newest too (%d of %d)",
	       dead, nlogins);
	expect(refused == nlogins, "the newest token is refused: invalid_grant (%d of %d)", refused,
	       nlogins);
	free(next);
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *postgres = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			nthreads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--logins") == 0 && i + 1 < argc)
			nlogins = atoi(argv[++i]);
		else if (strcmp(argv[i], "--postgres") == 0 && i + 1 < argc)
			postgres = argv[++i];
		else if (argv[i][0] != '-' && dir == NULL)
			dir = argv[i];
		else
			return usage();
	}
	if (nthreads < 2 || nthreads > 1024 || nlogins < 1 || nlogins > 1000000)
		return usage();

	/* Demo keys: a real server loads them from its secret storage, and
	 * every node serving a family uses the same ones. */
	static const unsigned char successor_key[ONCE_SUCCESSOR_KEY_LEN] = "demo key: load a real one!!!!!!";
	static const char pg_secret[] = "demo secret: load a real one, 32 bytes or more";
	once_options opt;
	once_options_init(&opt);
	opt.dir = dir;
	opt.postgres = postgres;
	opt.clock = demo_clock;
	opt.successor_key = successor_key;             /* embedded: seals successors */
	opt.pg_successor_secret = pg_secret;           /* PostgreSQL: the same */
	opt.pg_successor_secret_len = sizeof pg_secret - 1;
	opt.pg_rotation_grace = GRACE;                 /* PostgreSQL keeps successors this long */
	once_status st = once_open(&opt, &store);
	if (st != ONCE_OK) {
		fprintf(stderr, "once_open: ONCE_%s: %s\n", once_status_name(st), once_strerror(st));
		return 1;
	}
	printf("token endpoint: %d threads, %d logins per phase, %s\n", nthreads, nlogins,
	       postgres ? "PostgreSQL" : dir ? dir : "memory only");

	race = calloc((size_t)nlogins, sizeof *race);
	fresh = calloc((size_t)nlogins, sizeof *fresh);
	grants = calloc((size_t)nthreads * (size_t)nlogins, sizeof *grants);
	tokens = calloc((size_t)nthreads * (size_t)nlogins, sizeof *tokens);
	if (race == NULL || fresh == NULL || grants == NULL || tokens == NULL) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}

	printf("1. every thread redeems every authorization code\n");
	int stored = 0;
	for (int i = 0; i < nlogins; i++)
		stored += authorize(&race[i]);
	expect(stored == nlogins, "/authorize stored %d codes", stored);
	if (!run_threads(phase1))
		return 1;
	phase1_report();

	printf("2. every thread rotates the same refresh tokens\n");
	int logged_in = 0;
	for (int i = 0; i < nlogins; i++)
		logged_in += authorize(&fresh[i]) && code_grant(&fresh[i]) == ONCE_OK;
	expect(logged_in == nlogins, "fresh logins, one refresh token each: %d", logged_in);
	if (!run_threads(phase2))
		return 1;
	phase2_report();

	st = once_close(store);
	expect(st == ONCE_OK, "once_close: %s", once_status_name(st));
	free(race);
	free(fresh);
	free(grants);
	free(tokens);
	printf("%s: %d failed check(s)\n", failed_checks ? "FAILED" : "passed", failed_checks);
	return failed_checks == 0 ? 0 : 1;
}
