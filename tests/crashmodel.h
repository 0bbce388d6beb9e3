/*
 * tests/crashmodel.h - the writer, the model and the verifier shared by the
 * kill -9 loop (tests/test_crash.c, whose header comment describes them)
 * and the power-loss simulator (tests/plsim/test_powerloss.c).
 *
 * The writer: NTHREADS threads doing random operations of every kind on
 * the keys of one cycle, each state-changing call reported TRY before and
 * ACK after an ONCE_OK through a pipe (writer_main; crash_mix picks the
 * operation mix).  The model: what each cycle tried and acknowledged
 * (struct cyc_m, apply, pump).  The verifier: opens a data directory and
 * checks the model against it (verifier_main).  run_writer runs one
 * writer, started by a caller-supplied spawn function, and kills it.
 * White-box (once__dump): the including test links oncestore_internal_dep.
 */
#ifndef ONCE_TEST_CRASHMODEL_H
#define ONCE_TEST_CRASHMODEL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "durable.h"

#define NTHREADS 4
#define NAF 8           /* access-token families per cycle */
#define NRF 8           /* refresh families per cycle */
#define MAX_IDS 64      /* keys per kind per cycle (capacity: see crash_options) */
#define RECENT 16       /* contended ops pick among the newest RECENT keys */
#define FAR 1000000000  /* every expiry and ttl: nothing expires */
#define NOW 1000        /* the fixed store clock */
#define MIN_CYCLES 200
#define PROBES 8        /* never-used ids probed past the highest used one */
#define DUMP_EVERY 10   /* full dump check after every 10th cycle (it walks every bucket) */

static const unsigned char SUCC_KEY[32] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3,
                                           2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7, 9, 5};

/* ---- reports (writer -> parent) ---- */

enum report_kind {
	R_READY = 1, /* the writer's store is open */
	R_ERROR,     /* a = op, b = status, c = line: an unexpected status */
	R_CKPT,      /* a = checkpoints completed by this writer so far */
	R_CODE_PUT,  /* a = id */
	R_CODE_TAKE,
	R_CODE_FIN,
	R_AT_REC, /* a = id, b = family */
	R_AT_REV, /* b = family */
	R_RT_INS, /* a = id, b = family */
	R_RT_CONS,
	R_RT_REM,
	R_RT_ROT, /* a = parent, b = child, c = family */
	R_RT_REV, /* b = family */
	R_N_ISSUE, /* ACK: a = index, nonce */
	R_N_ACC,   /* a = index */
	R_RP,      /* a = id */
	R_BURST,   /* test_kill9_after_shared_ok: a = trial, b = burst kind */
	R_KINDS
};
enum { TRY = 0, ACK = 1 };

struct report {
	uint8_t kind, phase;
	uint16_t thread;
	uint32_t a, b, c;
	char nonce[ONCE_NONCE_LEN + 1];
	char pad[4];
};
_Static_assert(sizeof(struct report) == 64, "report size");
_Static_assert(sizeof(struct report) <= PIPE_BUF, "reports must be written atomically");

/* ---- keys ---- */

static size_t key_code(char *b, uint32_t cy, uint32_t id) { return (size_t)sprintf(b, "code:c%u:%u", cy, id); }
static size_t key_at(char *b, uint32_t cy, uint32_t id) { return (size_t)sprintf(b, "at:c%u:%u", cy, id); }
static size_t key_af(char *b, uint32_t cy, uint32_t f) { return (size_t)sprintf(b, "af:c%u:%u", cy, f); }
static size_t key_rt(char *b, uint32_t cy, uint32_t id) { return (size_t)sprintf(b, "rt:c%u:%u", cy, id); }
static size_t key_rf(char *b, uint32_t cy, uint32_t f) { return (size_t)sprintf(b, "rf:c%u:%u", cy, f); }
static size_t key_rp(char *b, uint32_t cy, uint32_t id) { return (size_t)sprintf(b, "jti:c%u:%u", cy, id); }
static size_t pay_rem(char *b, uint32_t cy, uint32_t id) { return (size_t)sprintf(b, "rem:c%u:%u", cy, id); }
static size_t pay_rot(char *b, uint32_t cy, uint32_t p, uint32_t c)
{
	return (size_t)sprintf(b, "rot:c%u:%u:%u", cy, p, c);
}

/* ---- random numbers ---- */

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t rnd(uint64_t *s, uint32_t n)
{
	return (uint32_t)((rng_next(s) >> 11) % n);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct test_clock the_clock = {NOW};
/* The writer's operation mix: MIX_DEFAULT, or MIX_ROTATIONS where 40 of
 * every 140 operations are one more refresh rotation. */
enum { MIX_DEFAULT, MIX_ROTATIONS };
static int crash_mix = MIX_DEFAULT;
static uint64_t capacity = 1u << 12; /* per kind: room for every cycle's keys */

static once_options crash_options(const char *dir)
{
	once_options o = test_durable_options(&the_clock, dir);
	o.sync = ONCE_SYNC_ALWAYS;
	/* Tables are sized from the capacities at every open, so they are
	 * kept just large enough (an open of a 512 Ki store costs 30 ms). */
	o.max_codes = o.max_access_tokens = o.max_refresh = o.max_nonces = o.max_replays = capacity;
	o.successor_key = SUCC_KEY;
	o.sweep_interval_ms = 0;
	return o;
}

/* ======================================================================== */
/* The writer (a child process that is SIGKILLed)                           */
/* ======================================================================== */

static struct writer {
	once_store *s;
	int fd;
	uint32_t cycle;
	uint64_t seed;
	uint32_t kill_after;   /* SIGKILL itself right after this many ACKs; 0: never */
	_Atomic uint32_t acks; /* ACK reports written */
	_Atomic uint32_t n_code, n_at, n_rt, n_rp;
	_Atomic uint32_t taken[4], n_taken; /* the codes taken last, for finalize */
	_Atomic int8_t rt_fam[MAX_IDS]; /* -1: not chosen yet */
	pthread_mutex_t nonce_lock;
	uint32_t n_nonce;
	char nonces[MAX_IDS][ONCE_NONCE_LEN + 1];
} W;

static void send_report(uint16_t thread, uint8_t kind, uint8_t phase, uint32_t a, uint32_t b,
                        uint32_t c, const char *nonce)
{
	struct report r;
	memset(&r, 0, sizeof r);
	r.kind = kind;
	r.phase = phase;
	r.thread = thread;
	r.a = a;
	r.b = b;
	r.c = c;
	if (nonce != NULL)
		memcpy(r.nonce, nonce, ONCE_NONCE_LEN);
	ssize_t n;
	do
		n = write(W.fd, &r, sizeof r);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof r)
		_exit(4); /* the parent is gone */
	/* A crash just after an acknowledgment, while other threads' records
	 * are in flight: any answer given before its record is durable is
	 * caught here. */
	if (phase == ACK && kind >= R_CODE_PUT && W.kill_after != 0 &&
	    atomic_fetch_add(&W.acks, 1) + 1 == W.kill_after)
		kill(getpid(), SIGKILL);
}

#define M(st) (1u << ONCE_##st)

/* Any status outside `allowed` stops the writer with an R_ERROR report. */
static void expect_in(uint16_t t, uint32_t op, once_status st, unsigned allowed, int line)
{
	if ((1u << st) & allowed)
		return;
	send_report(t, R_ERROR, TRY, op, (uint32_t)st, (uint32_t)line, NULL);
	_exit(2);
}
#define EXPECT_IN(op, st, allowed) expect_in(t, op, st, allowed, __LINE__)

static bool fresh_id(_Atomic uint32_t *ctr, uint32_t *id)
{
	uint32_t v = atomic_fetch_add(ctr, 1);
	if (v >= MAX_IDS)
		return false;
	*id = v;
	return true;
}

static bool recent_id(_Atomic uint32_t *ctr, uint64_t *rs, uint32_t *id)
{
	uint32_t n = atomic_load(ctr);
	if (n > MAX_IDS)
		n = MAX_IDS;
	if (n == 0)
		return false;
	*id = n - 1 - rnd(rs, n < RECENT ? n : RECENT);
	return true;
}

static void op_code_put(uint16_t t)
{
	uint32_t id;
	if (!fresh_id(&W.n_code, &id))
		return;
	char key[64], sub[64], fam[64];
	size_t kl = key_code(key, W.cycle, id);
	sprintf(sub, "sub:c%u:%u", W.cycle, id);
	key_af(fam, W.cycle, id % NAF);
	once_code c = test_code(FAR);
	c.subject = sub;
	c.family_id = fam;
	send_report(t, R_CODE_PUT, TRY, id, 0, 0, NULL);
	once_status st = once_code_put(W.s, key, kl, &c);
	EXPECT_IN(R_CODE_PUT, st, M(OK));
	send_report(t, R_CODE_PUT, ACK, id, 0, 0, NULL);
}

static void op_code_take(uint16_t t, uint64_t *rs)
{
	uint32_t id;
	if (!recent_id(&W.n_code, rs, &id))
		return;
	char key[64];
	size_t kl = key_code(key, W.cycle, id);
	once_code *out = NULL;
	once_code_meta *meta = NULL;
	send_report(t, R_CODE_TAKE, TRY, id, 0, 0, NULL);
	once_status st = once_code_take(W.s, key, kl, &out, &meta);
	once_free(out);
	once_free(meta);
	EXPECT_IN(R_CODE_TAKE, st, M(OK) | M(NOT_FOUND) | M(SPENT));
	if (st == ONCE_OK) {
		send_report(t, R_CODE_TAKE, ACK, id, 0, 0, NULL);
		atomic_store(&W.taken[atomic_fetch_add(&W.n_taken, 1) % 4], id);
	}
}

static void op_code_finalize(uint16_t t, uint64_t *rs)
{
	uint32_t id, nt = atomic_load(&W.n_taken);
	/* Mostly one of the codes taken last, so that threads often finalize
	 * the same code at once (a second finalize answers OK too). */
	if (nt > 0 && rnd(rs, 4) != 0)
		id = atomic_load(&W.taken[(nt - 1 - rnd(rs, nt < 4 ? nt : 4)) % 4]);
	else if (!recent_id(&W.n_code, rs, &id))
		return;
	char key[64];
	size_t kl = key_code(key, W.cycle, id);
	send_report(t, R_CODE_FIN, TRY, id, 0, 0, NULL);
	once_status st = once_code_finalize(W.s, key, kl);
	EXPECT_IN(R_CODE_FIN, st, M(OK) | M(NOT_FOUND));
	if (st == ONCE_OK)
		send_report(t, R_CODE_FIN, ACK, id, 0, 0, NULL);
}

static void op_code_get(uint16_t t, uint64_t *rs)
{
	uint32_t id;
	if (!recent_id(&W.n_code, rs, &id))
		return;
	char key[64];
	size_t kl = key_code(key, W.cycle, id);
	once_code *out = NULL;
	once_status st = once_code_get(W.s, key, kl, &out);
	once_free(out);
	EXPECT_IN(R_CODE_PUT, st, M(OK) | M(NOT_FOUND));
}

static void op_at_record(uint16_t t, uint64_t *rs)
{
	uint32_t id;
	if (!fresh_id(&W.n_at, &id))
		return;
	uint32_t f = rnd(rs, NAF);
	char key[64], fam[64];
	size_t kl = key_at(key, W.cycle, id), fl = key_af(fam, W.cycle, f);
	send_report(t, R_AT_REC, TRY, id, f, 0, NULL);
	once_status st = once_code_record_access_token(W.s, fam, fl, key, kl, FAR);
	EXPECT_IN(R_AT_REC, st, M(OK));
	send_report(t, R_AT_REC, ACK, id, f, 0, NULL);
}

static void op_at_revoke(uint16_t t, uint64_t *rs)
{
	uint32_t f = rnd(rs, NAF);
	char fam[64];
	size_t fl = key_af(fam, W.cycle, f);
	send_report(t, R_AT_REV, TRY, 0, f, 0, NULL);
	once_status st = once_code_revoke_family_access_tokens(W.s, fam, fl);
	EXPECT_IN(R_AT_REV, st, M(OK));
	send_report(t, R_AT_REV, ACK, 0, f, 0, NULL);
}

static void op_at_revoked(uint64_t *rs)
{
	uint32_t id;
	if (!recent_id(&W.n_at, rs, &id))
		return;
	char key[64];
	size_t kl = key_at(key, W.cycle, id);
	(void)once_access_token_revoked(W.s, key, kl);
}

static once_refresh refresh_record(uint32_t id, const char *fam, char *sub, const char *parent)
{
	once_refresh r;
	memset(&r, 0, sizeof r);
	sprintf(sub, "rsub:c%u:%u", W.cycle, id);
	r.family_id = fam;
	r.subject = sub;
	r.client_id = "client-1";
	r.expires_at = FAR;
	r.generation = id;
	r.parent_hash = parent;
	return r;
}

static void op_rt_insert(uint16_t t, uint64_t *rs)
{
	uint32_t id;
	if (!fresh_id(&W.n_rt, &id))
		return;
	uint32_t f = rnd(rs, NRF);
	atomic_store(&W.rt_fam[id], (int8_t)f);
	char key[64], fam[64], sub[64];
	size_t kl = key_rt(key, W.cycle, id);
	key_rf(fam, W.cycle, f);
	once_refresh r = refresh_record(id, fam, sub, NULL);
	send_report(t, R_RT_INS, TRY, id, f, 0, NULL);
	once_status st = once_refresh_insert(W.s, key, kl, &r);
	EXPECT_IN(R_RT_INS, st, M(OK) | M(REVOKED));
	if (st == ONCE_OK)
		send_report(t, R_RT_INS, ACK, id, f, 0, NULL);
}

static void op_rt_consume(uint16_t t, uint64_t *rs)
{
	uint32_t id;
	if (!recent_id(&W.n_rt, rs, &id))
		return;
	char key[64];
	size_t kl = key_rt(key, W.cycle, id);
	once_refresh *out = NULL;
	send_report(t, R_RT_CONS, TRY, id, 0, 0, NULL);
	once_status st = once_refresh_consume(W.s, key, kl, &out);
	once_free(out);
	EXPECT_IN(R_RT_CONS, st, M(OK) | M(SPENT) | M(NOT_FOUND));
	if (st == ONCE_OK)
		send_report(t, R_RT_CONS, ACK, id, 0, 0, NULL);
}

static void op_rt_remember(uint16_t t, uint64_t *rs)
{
	uint32_t id;
	if (!recent_id(&W.n_rt, rs, &id))
		return;
	char key[64], pay[64];
	size_t kl = key_rt(key, W.cycle, id), pl = pay_rem(pay, W.cycle, id);
	send_report(t, R_RT_REM, TRY, id, 0, 0, NULL);
	once_status st = once_refresh_remember_successor(W.s, key, kl, pay, pl);
	EXPECT_IN(R_RT_REM, st, M(OK) | M(NOT_FOUND));
	if (st == ONCE_OK)
		send_report(t, R_RT_REM, ACK, id, 0, 0, NULL);
}

static void op_rt_rotate(uint16_t t, uint64_t *rs)
{
	uint32_t p, c;
	if (!recent_id(&W.n_rt, rs, &p))
		return;
	int8_t f = atomic_load(&W.rt_fam[p]);
	if (f < 0 || !fresh_id(&W.n_rt, &c))
		return;
	atomic_store(&W.rt_fam[c], f);
	char pkey[64], ckey[64], fam[64], sub[64], pay[64];
	size_t pl = key_rt(pkey, W.cycle, p), cl = key_rt(ckey, W.cycle, c);
	size_t payl = pay_rot(pay, W.cycle, p, c);
	key_rf(fam, W.cycle, (uint32_t)f);
	once_refresh r = refresh_record(c, fam, sub, pkey);
	once_refresh *out = NULL;
	send_report(t, R_RT_ROT, TRY, p, c, (uint32_t)f, NULL);
	once_status st = once_refresh_rotate(W.s, pkey, pl, ckey, cl, &r, pay, payl, &out);
	once_free(out);
	EXPECT_IN(R_RT_ROT, st, M(OK) | M(SPENT) | M(NOT_FOUND) | M(REVOKED));
	if (st == ONCE_OK)
		send_report(t, R_RT_ROT, ACK, p, c, (uint32_t)f, NULL);
}

static void op_rt_revoke(uint16_t t, uint64_t *rs)
{
	uint32_t f = rnd(rs, NRF);
	char fam[64];
	size_t fl = key_rf(fam, W.cycle, f);
	send_report(t, R_RT_REV, TRY, 0, f, 0, NULL);
	once_status st = once_refresh_revoke_family(W.s, fam, fl);
	EXPECT_IN(R_RT_REV, st, M(OK));
	send_report(t, R_RT_REV, ACK, 0, f, 0, NULL);
}

static void op_rt_get(uint16_t t, uint64_t *rs)
{
	uint32_t id;
	if (!recent_id(&W.n_rt, rs, &id))
		return;
	char key[64];
	size_t kl = key_rt(key, W.cycle, id);
	once_refresh *out = NULL;
	once_status st = once_refresh_get(W.s, key, kl, &out);
	once_free(out);
	EXPECT_IN(R_RT_INS, st, M(OK) | M(NOT_FOUND));
}

static void op_nonce_issue(uint16_t t)
{
	pthread_mutex_lock(&W.nonce_lock);
	bool room = W.n_nonce < MAX_IDS;
	pthread_mutex_unlock(&W.nonce_lock);
	if (!room)
		return;
	char n[ONCE_NONCE_LEN + 1];
	send_report(t, R_N_ISSUE, TRY, 0, 0, 0, NULL);
	once_status st = once_nonce_issue(W.s, FAR, n);
	EXPECT_IN(R_N_ISSUE, st, M(OK));
	/* Listed and reported under one lock: the parent's index is ours. */
	pthread_mutex_lock(&W.nonce_lock);
	uint32_t i = W.n_nonce;
	if (i < MAX_IDS) { /* else: as if unacknowledged (a race at the limit) */
		memcpy(W.nonces[i], n, sizeof n);
		W.n_nonce++;
		send_report(t, R_N_ISSUE, ACK, i, 0, 0, n);
	}
	pthread_mutex_unlock(&W.nonce_lock);
}

static void op_nonce_accept(uint16_t t, uint64_t *rs, bool valid_only)
{
	char n[ONCE_NONCE_LEN + 1];
	pthread_mutex_lock(&W.nonce_lock);
	uint32_t count = W.n_nonce;
	uint32_t i = count ? count - 1 - rnd(rs, count < RECENT ? count : RECENT) : 0;
	if (count > 0)
		memcpy(n, W.nonces[i], sizeof n);
	pthread_mutex_unlock(&W.nonce_lock);
	if (count == 0)
		return;
	if (valid_only) {
		(void)once_nonce_valid(W.s, n, ONCE_NONCE_LEN);
		return;
	}
	send_report(t, R_N_ACC, TRY, i, 0, 0, NULL);
	once_status st = once_nonce_accept(W.s, n, ONCE_NONCE_LEN, FAR);
	EXPECT_IN(R_N_ACC, st, M(OK) | M(SPENT));
	if (st == ONCE_OK)
		send_report(t, R_N_ACC, ACK, i, 0, 0, NULL);
}

static void op_replay(uint16_t t, uint64_t *rs)
{
	uint32_t id;
	if (rnd(rs, 4) == 0 ? !recent_id(&W.n_rp, rs, &id) : !fresh_id(&W.n_rp, &id))
		return;
	char key[64];
	size_t kl = key_rp(key, W.cycle, id);
	send_report(t, R_RP, TRY, id, 0, 0, NULL);
	once_status st = once_replay_check(W.s, key, kl, FAR);
	EXPECT_IN(R_RP, st, M(OK) | M(SPENT));
	if (st == ONCE_OK)
		send_report(t, R_RP, ACK, id, 0, 0, NULL);
}

static void report_checkpoints(uint16_t t)
{
	struct once_stats st;
	once_stats(W.s, &st);
	send_report(t, R_CKPT, ACK, (uint32_t)st.checkpoints, 0, 0, NULL);
}

static void *writer_thread(void *arg)
{
	uint16_t t = (uint16_t)(uintptr_t)arg;
	uint64_t rs = W.seed ^ (0x9E3779B97F4A7C15ull * (t + 1));
	if (rs == 0)
		rs = 1;
	for (uint64_t n = 0;; n++) {
		uint32_t r = rnd(&rs, crash_mix == MIX_ROTATIONS ? 140 : 100);
		if (r >= 100) op_rt_rotate(t, &rs);
		else if (r < 9) op_code_put(t);
		else if (r < 16) op_code_take(t, &rs);
		else if (r < 22) op_code_finalize(t, &rs);
		else if (r < 24) op_code_get(t, &rs);
		else if (r < 30) op_at_record(t, &rs);
		else if (r < 31) op_at_revoke(t, &rs);
		else if (r < 32) op_at_revoked(&rs);
		else if (r < 40) op_rt_insert(t, &rs);
		else if (r < 46) op_rt_consume(t, &rs);
		else if (r < 50) op_rt_remember(t, &rs);
		else if (r < 58) op_rt_rotate(t, &rs);
		else if (r < 59) op_rt_revoke(t, &rs);
		else if (r < 61) op_rt_get(t, &rs);
		else if (r < 69) op_nonce_issue(t);
		else if (r < 76) op_nonce_accept(t, &rs, false);
		else if (r < 78) op_nonce_accept(t, &rs, true);
		else op_replay(t, &rs);
		if (t == 0 && rnd(&rs, 32) == 0) {
			once_status st = once_checkpoint(W.s);
			EXPECT_IN(R_CKPT, st, M(OK));
			report_checkpoints(t);
		} else if (t == 0 && n % 16 == 0) {
			report_checkpoints(t);
		}
	}
	return NULL;
}

static _Noreturn void writer_main(int fd, const char *dir, uint32_t cycle, uint64_t seed,
                                  uint32_t kill_after)
{
	memset(&W, 0, sizeof W);
	W.fd = fd;
	W.cycle = cycle;
	W.seed = seed;
	W.kill_after = kill_after;
	for (uint32_t i = 0; i < MAX_IDS; i++)
		atomic_init(&W.rt_fam[i], -1);
	pthread_mutex_init(&W.nonce_lock, NULL);
	once_options o = crash_options(dir);
	o.checkpoint_bytes = 16u << 10; /* automatic checkpoints during the loop */
	once_status st = once_open(&o, &W.s);
	if (st != ONCE_OK) {
		send_report(0, R_ERROR, TRY, 0, (uint32_t)st, __LINE__, NULL);
		_exit(2);
	}
	send_report(0, R_READY, ACK, 0, 0, 0, NULL);
	pthread_t th[NTHREADS];
	for (uintptr_t i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, writer_thread, (void *)i) != 0)
			_exit(3);
	sleep(60); /* the parent kills us long before */
	_exit(5);
}

/* ======================================================================== */
/* The model (the parent's record of what was tried and acknowledged)       */
/* ======================================================================== */

enum {
	F_T = 1, F_A = 2,                 /* tried / acknowledged (put, insert, record) */
	F_TAKE_T = 4, F_TAKE_A = 8,       /* codes */
	F_FIN_T = 16, F_FIN_A = 32,
	F_CONS_T = 4, F_CONS_A = 8,       /* refresh: consume or rotation (as parent) */
	F_REM_T = 16, F_REM_A = 32,       /* refresh: remember_successor */
	F_ACC_T = 4, F_ACC_A = 8,         /* nonces */
	F_USED = 1, F_REV_T = 2, F_REV_A = 4, /* families */
};

struct at_m { uint8_t f, fam; };
struct rt_m {
	uint8_t f;
	int8_t fam;
	int32_t rot_parent;      /* created by a rotation of this parent; -1 */
	int32_t rot_child_acked; /* the child of its acknowledged rotation; -1 */
};
struct nonce_m { char s[ONCE_NONCE_LEN + 1]; uint8_t f; };

struct cyc_m {
	uint8_t *code;
	uint32_t n_code;
	struct at_m *at;
	uint32_t n_at;
	struct rt_m *rt;
	uint32_t n_rt;
	struct nonce_m *nonce;
	uint32_t n_nonce;
	uint8_t *rp;
	uint32_t n_rp;
	uint8_t af[NAF], rf[NRF];
	uint32_t issue_try;
	uint64_t acks, tries;
	uint32_t checkpoints;
};

static struct cyc_m *cycles;
static uint32_t n_cycles;

/* Grows *arr to hold index id (n entries of size sz), new ones set by init. */
static void *grow(void *arr, uint32_t *n, uint32_t id, size_t sz, void (*init)(void *))
{
	if (id >= MAX_IDS)
		FAIL_AT("id %u out of range", id);
	if (id < *n)
		return arr;
	uint32_t nn = id + 1;
	char *p = realloc(arr, (size_t)nn * sz);
	if (p == NULL)
		FAIL_AT("out of memory");
	memset(p + (size_t)*n * sz, 0, (size_t)(nn - *n) * sz);
	if (init != NULL)
		for (uint32_t i = *n; i < nn; i++)
			init(p + (size_t)i * sz);
	*n = nn;
	return p;
}

static void rt_init(void *p)
{
	struct rt_m *r = p;
	r->fam = -1;
	r->rot_parent = -1;
	r->rot_child_acked = -1;
}

static uint8_t *code_m(struct cyc_m *m, uint32_t id)
{
	m->code = grow(m->code, &m->n_code, id, 1, NULL);
	return &m->code[id];
}
static struct at_m *at_m(struct cyc_m *m, uint32_t id)
{
	m->at = grow(m->at, &m->n_at, id, sizeof *m->at, NULL);
	return &m->at[id];
}
static struct rt_m *rt_m(struct cyc_m *m, uint32_t id)
{
	m->rt = grow(m->rt, &m->n_rt, id, sizeof *m->rt, rt_init);
	return &m->rt[id];
}
static struct nonce_m *nonce_m(struct cyc_m *m, uint32_t id)
{
	m->nonce = grow(m->nonce, &m->n_nonce, id, sizeof *m->nonce, NULL);
	return &m->nonce[id];
}
static uint8_t *rp_m(struct cyc_m *m, uint32_t id)
{
	m->rp = grow(m->rp, &m->n_rp, id, 1, NULL);
	return &m->rp[id];
}

static const char *kind_name(unsigned k)
{
	static const char *const names[R_KINDS] = {
		[R_READY] = "open", [R_ERROR] = "error", [R_CKPT] = "checkpoint",
		[R_CODE_PUT] = "code_put", [R_CODE_TAKE] = "code_take", [R_CODE_FIN] = "code_finalize",
		[R_AT_REC] = "access_record", [R_AT_REV] = "access_revoke",
		[R_RT_INS] = "refresh_insert", [R_RT_CONS] = "refresh_consume",
		[R_RT_REM] = "refresh_remember_successor", [R_RT_ROT] = "refresh_rotate",
		[R_RT_REV] = "refresh_revoke_family", [R_N_ISSUE] = "nonce_issue",
		[R_N_ACC] = "nonce_accept", [R_RP] = "replay_check", [R_BURST] = "burst",
	};
	return k < R_KINDS && names[k] ? names[k] : "?";
}

/* Applies one report to the model; returns false for R_ERROR. */
static bool apply(struct cyc_m *m, const struct report *r)
{
	bool ack = r->phase == ACK;
	uint8_t t = ack ? F_A : F_T;
	if (r->kind >= R_CODE_PUT) {
		if (ack)
			m->acks++;
		else
			m->tries++;
	}
	switch (r->kind) {
	case R_READY: break;
	case R_ERROR:
		fprintf(stderr, "# writer: %s returned %s (crashmodel.h:%u)\n", kind_name(r->a),
		        once_status_name((once_status)r->b), r->c);
		return false;
	case R_CKPT:
		if (r->a > m->checkpoints)
			m->checkpoints = r->a;
		break;
	case R_CODE_PUT: *code_m(m, r->a) |= t; break;
	case R_CODE_TAKE: *code_m(m, r->a) |= ack ? F_TAKE_A : F_TAKE_T; break;
	case R_CODE_FIN: *code_m(m, r->a) |= ack ? F_FIN_A : F_FIN_T; break;
	case R_AT_REC: {
		struct at_m *a = at_m(m, r->a);
		a->f |= t;
		a->fam = (uint8_t)r->b;
		m->af[r->b] |= F_USED;
		break;
	}
	case R_AT_REV: m->af[r->b] |= F_USED | (ack ? F_REV_A : F_REV_T); break;
	case R_RT_INS: {
		struct rt_m *x = rt_m(m, r->a);
		x->f |= t;
		x->fam = (int8_t)r->b;
		m->rf[r->b] |= F_USED;
		break;
	}
	case R_RT_CONS: rt_m(m, r->a)->f |= ack ? F_CONS_A : F_CONS_T; break;
	case R_RT_REM: rt_m(m, r->a)->f |= ack ? F_REM_A : F_REM_T; break;
	case R_RT_ROT: {
		struct rt_m *c = rt_m(m, r->b); /* first: rt_m may move the array */
		c->f |= t;
		c->fam = (int8_t)r->c;
		c->rot_parent = (int32_t)r->a;
		struct rt_m *p = rt_m(m, r->a);
		p->f |= ack ? F_CONS_A : F_CONS_T;
		if (ack)
			p->rot_child_acked = (int32_t)r->b;
		m->rf[r->c] |= F_USED;
		break;
	}
	case R_RT_REV: m->rf[r->b] |= F_USED | (ack ? F_REV_A : F_REV_T); break;
	case R_N_ISSUE:
		if (!ack) {
			m->issue_try++;
		} else if (r->a < MAX_IDS) {
			struct nonce_m *n = nonce_m(m, r->a);
			memcpy(n->s, r->nonce, sizeof n->s);
			n->s[ONCE_NONCE_LEN] = '\0';
		}
		break;
	case R_N_ACC: nonce_m(m, r->a)->f |= ack ? F_ACC_A : F_ACC_T; break;
	case R_RP: *rp_m(m, r->a) |= t; break;
	default: FAIL_AT("bad report kind %u", r->kind);
	}
	return true;
}

/* ======================================================================== */
/* The verifier (a child process that opens the directory and checks)        */
/* ======================================================================== */

struct vresult {
	uint64_t checks;          /* assertions made against the store */
	uint64_t recovered;       /* log records replayed by this open */
	uint64_t snapshot;        /* snapshot records loaded by this open */
	uint64_t dump_lines;      /* dump lines accounted for */
	uint64_t torn;            /* torn tails the open cut */
	uint64_t recovery_ns;
	uint64_t rotations;       /* rotation atomicity checks (child <=> parent) */
};

static struct vresult V;
static uint32_t v_cycle; /* the cycle being checked, for messages */

#define VFAIL(fmt, ...) FAIL_AT("cycle %u: " fmt, v_cycle, __VA_ARGS__)

/* What the model says about the key in a failure message: the flags of
 * the kind being checked (v_kind), low byte the key's, next byte its
 * family's. */
enum { K_NONE, K_CODE, K_AT, K_RT, K_FAM, K_NONCE, K_RP };
static int v_kind;

static const char *model_text(unsigned f)
{
	static char buf[256];
	static const char *const names[][6] = {
		[K_CODE] = {"put", "put", "take", "take", "finalize", "finalize"},
		[K_AT] = {"record", "record"},
		[K_RT] = {"insert", "insert", "consume/rotate", "consume/rotate", "remember_successor",
		          "remember_successor"},
		[K_FAM] = {"used", "revoke", "revoke"},
		[K_NONCE] = {"issue", "issue", "accept", "accept"},
		[K_RP] = {"record", "record"},
	};
	size_t n = 0;
	buf[0] = '\0';
	if (v_kind == K_NONE)
		return "a key no call used";
	for (int half = 0; half < 2; half++) {
		unsigned bits = half ? f >> 8 & 0xff : f & 0xff;
		int kind = half ? K_FAM : v_kind;
		if (half && (v_kind == K_CODE || v_kind == K_NONCE || v_kind == K_RP || v_kind == K_FAM))
			break;
		n += (size_t)snprintf(buf + n, sizeof buf - n, "%s", half ? "; its family:" : "model:");
		if (kind == K_FAM) {
			n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s%s",
			                      bits & F_USED ? " used" : " unused",
			                      bits & F_REV_T ? ", revoke tried" : "",
			                      bits & F_REV_A ? ", revoke acknowledged" : "");
			continue;
		}
		bool any = false;
		for (int b = 0; b < 6; b++) {
			if (!(bits & (1u << b)) || names[kind][b] == NULL)
				continue;
			n += (size_t)snprintf(buf + n, sizeof buf - n, "%s %s %s", any ? "," : "",
			                      names[kind][b], b % 2 ? "acknowledged" : "tried");
			any = true;
		}
		if (!any)
			n += (size_t)snprintf(buf + n, sizeof buf - n, " never tried");
	}
	return buf;
}

static void check_st_at(int line, once_status got, unsigned allowed, const char *what, const char *key,
                        unsigned f)
{
	V.checks++;
	if (!((1u << got) & allowed))
		VFAIL("%s %s: got %s (%s; checked at line %d)", what, key, once_status_name(got),
		      model_text(f), line);
}

static void check_at(int line, bool ok, const char *what, const char *key, unsigned f)
{
	V.checks++;
	if (!ok)
		VFAIL("%s %s (%s; checked at line %d)", what, key, model_text(f), line);
}

#define check_st(...) check_st_at(__LINE__, __VA_ARGS__)
#define check(...) check_at(__LINE__, __VA_ARGS__)

static void verifier_log(void *ctx, once_log_level level, const char *line)
{
	(void)ctx;
	if (strstr(line, "torn") != NULL)
		V.torn++;
	if (level == ONCE_LOG_ERROR)
		fprintf(stderr, "# verifier log: %s\n", line);
}

static void verify_codes(once_store *s, uint32_t cy, const struct cyc_m *m)
{
	v_kind = K_CODE;
	char key[64], want[64];
	for (uint32_t id = 0; id < m->n_code + PROBES; id++) {
		unsigned f = id < m->n_code ? m->code[id] : 0;
		size_t kl = key_code(key, cy, id);
		once_code *got = NULL;
		once_status st = once_code_get(s, key, kl, &got);
		if (!(f & F_T)) { /* never put */
			check_st(st, M(NOT_FOUND), "code never put: get", key, f);
			continue;
		}
		bool taken = f & (F_TAKE_A | F_FIN_A);
		if (taken)
			check_st(st, M(NOT_FOUND), "acknowledged take/finalize: get", key, f);
		else if ((f & F_A) && !(f & F_TAKE_T))
			check_st(st, M(OK), "acknowledged put, never taken: get", key, f);
		else
			check_st(st, M(OK) | M(NOT_FOUND), "code: get", key, f);
		if (st == ONCE_OK) {
			sprintf(want, "sub:c%u:%u", cy, id);
			check(strcmp(got->subject, want) == 0 && got->consumed_at == 0 &&
			      !got->consumed_success, "code record wrong:", key, f);
			once_free(got);
			continue;
		}
		if (!(f & F_TAKE_T))
			continue; /* a put in flight at the kill: absent */
		/* Taken, finalized or absent: a take changes nothing now. */
		once_code_meta *meta = NULL;
		st = once_code_take(s, key, kl, NULL, &meta);
		if (f & F_FIN_A)
			check_st(st, M(SPENT), "acknowledged finalize: take", key, f);
		else if (f & F_FIN_T)
			check_st(st, M(SPENT) | M(NOT_FOUND), "code: take", key, f);
		else
			check_st(st, M(NOT_FOUND), "never finalized: take", key, f);
		if (st == ONCE_SPENT) {
			key_af(want, cy, id % NAF);
			check(meta != NULL && meta->family_id != NULL && strcmp(meta->family_id, want) == 0,
			      "replayed code: meta family wrong:", key, f);
			once_free(meta);
		}
	}
}

static void verify_access(once_store *s, uint32_t cy, const struct cyc_m *m)
{
	v_kind = K_AT;
	char key[64], fam[64];
	for (uint32_t id = 0; id < m->n_at + PROBES; id++) {
		struct at_m a = id < m->n_at ? m->at[id] : (struct at_m){0, 0};
		size_t kl = key_at(key, cy, id);
		bool revoked = once_access_token_revoked(s, key, kl);
		if (!(a.f & F_T)) {
			check(!revoked, "access token never recorded reads revoked:", key, a.f);
			continue;
		}
		unsigned ff = m->af[a.fam];
		if (!(ff & F_REV_T))
			check(!revoked, "access token of a family never revoked reads revoked:", key, a.f);
		else if ((ff & F_REV_A) && (a.f & F_A))
			check(revoked, "acknowledged token of an acknowledged revocation not revoked:", key,
			      a.f | ff << 8);
		if (a.f & F_A) {
			size_t fl = key_af(fam, cy, a.fam);
			check_st(once_code_record_access_token(s, fam, fl, key, kl, FAR), M(EXISTS),
			         "acknowledged access token: record again", key, a.f);
		}
	}
}

static bool same(const once_refresh *r, const char *want, size_t wl)
{
	return r->successor_len == wl && memcmp(r->successor, want, wl) == 0;
}

/* The successor payload of token id must be one that some call tried to
 * store on it: "rem:..." (remember_successor) or "rot:...:<child>" (a
 * rotation to that child). */
static bool successor_possible(const struct cyc_m *m, uint32_t cy, uint32_t id, const once_refresh *r)
{
	char want[64];
	size_t wl = pay_rem(want, cy, id);
	if ((m->rt[id].f & F_REM_T) && same(r, want, wl))
		return true;
	unsigned pc, pp, child;
	char buf[64];
	if (r->successor_len >= sizeof buf)
		return false;
	memcpy(buf, r->successor, r->successor_len);
	buf[r->successor_len] = '\0';
	if (sscanf(buf, "rot:c%u:%u:%u", &pc, &pp, &child) != 3 || pc != cy || pp != id ||
	    child >= m->n_rt)
		return false;
	wl = pay_rot(want, cy, id, child);
	return m->rt[child].rot_parent == (int32_t)id && same(r, want, wl);
}

static void verify_refresh(once_store *s, uint32_t cy, const struct cyc_m *m)
{
	v_kind = K_FAM;
	char key[64], want[64], fam[64];
	for (uint32_t f = 0; f < NRF; f++) {
		if (!(m->rf[f] & F_REV_A))
			continue;
		/* Sticky: an insert into an acknowledged-revoked family is refused. */
		size_t kl = (size_t)sprintf(key, "rtprobe:c%u:%u", cy, f);
		key_rf(fam, cy, f);
		once_refresh r;
		memset(&r, 0, sizeof r);
		r.family_id = fam;
		r.subject = "probe";
		r.expires_at = FAR;
		check_st(once_refresh_insert(s, key, kl, &r), M(REVOKED),
		         "insert into an acknowledged-revoked family", fam, m->rf[f]);
	}
	v_kind = K_RT;
	for (uint32_t id = 0; id < m->n_rt + PROBES; id++) {
		struct rt_m x = id < m->n_rt ? m->rt[id] : (struct rt_m){0, -1, -1, -1};
		size_t kl = key_rt(key, cy, id);
		once_refresh *got = NULL;
		once_status st = once_refresh_get(s, key, kl, &got);
		if (!(x.f & F_T)) {
			check_st(st, M(NOT_FOUND), "refresh token never inserted: get", key, x.f);
			continue;
		}
		if (x.fam < 0)
			VFAIL("model: token %s without a family", key);
		unsigned ff = m->rf[x.fam];
		unsigned fl = x.f | ff << 8;
		if (ff & F_REV_A) {
			check_st(st, M(NOT_FOUND), "token of an acknowledged-revoked family: get", key, fl);
			once_free(got);
			continue;
		}
		if ((x.f & F_A) && !(ff & F_REV_T))
			check_st(st, M(OK), "acknowledged token, family never revoked: get", key, fl);
		else
			check_st(st, M(OK) | M(NOT_FOUND), "refresh: get", key, fl);
		if (st != ONCE_OK)
			continue;
		key_rf(fam, cy, (uint32_t)x.fam);
		sprintf(want, "rsub:c%u:%u", cy, id);
		check(strcmp(got->family_id, fam) == 0 && strcmp(got->subject, want) == 0 &&
		      got->generation == (int64_t)id && !got->revoked, "refresh record wrong:", key, fl);
		if (x.f & F_CONS_A)
			check(got->consumed, "acknowledged consume/rotation not in force:", key, fl);
		if (!(x.f & F_CONS_T))
			check(!got->consumed, "token never consumed reads consumed:", key, fl);
		if (!got->consumed)
			check(got->successor == NULL, "unconsumed token with a successor:", key, fl);
		if ((x.f & F_REM_A) || x.rot_child_acked >= 0)
			check(got->successor != NULL, "acknowledged successor missing:", key, fl);
		if (got->successor != NULL)
			check(successor_possible(m, cy, id, got), "successor nobody stored:", key, fl);
		if (x.rot_child_acked >= 0 && !(x.f & F_REM_T)) {
			size_t wl = pay_rot(want, cy, id, (uint32_t)x.rot_child_acked);
			check(got->successor != NULL && same(got, want, wl),
			      "acknowledged rotation: successor is not its payload:", key, fl);
		}
		/* One record, both effects: a child from a rotation means its
		 * parent is consumed with this rotation's successor, and the
		 * reverse. */
		if (x.rot_parent >= 0) {
			V.rotations++;
			char pkey[64];
			size_t pl = key_rt(pkey, cy, (uint32_t)x.rot_parent);
			once_refresh *par = NULL;
			check_st(once_refresh_get(s, pkey, pl, &par), M(OK), "rotation child present, parent",
			         pkey, fl);
			size_t wl = pay_rot(want, cy, (uint32_t)x.rot_parent, id);
			check(par->consumed && par->successor != NULL &&
			      (same(par, want, wl) ||
			       ((m->rt[x.rot_parent].f & F_REM_T) &&
			        successor_possible(m, cy, (uint32_t)x.rot_parent, par))),
			      "rotation child present but parent not rotated to it:", key, fl);
			once_free(par);
		}
		unsigned pc, pp, child;
		char buf[64];
		if (got->successor != NULL && got->successor_len < sizeof buf) {
			memcpy(buf, got->successor, got->successor_len);
			buf[got->successor_len] = '\0';
			if (sscanf(buf, "rot:c%u:%u:%u", &pc, &pp, &child) == 3) {
				V.rotations++;
				char ckey[64];
				size_t cl = key_rt(ckey, cy, child);
				once_refresh *ch = NULL;
				check_st(once_refresh_get(s, ckey, cl, &ch), M(OK),
				         "parent rotated to it, but child", ckey,
				         child < m->n_rt ? m->rt[child].f | ff << 8 : 0);
				once_free(ch);
			}
		}
		once_free(got);
	}
}

static void verify_nonces(once_store *s, const struct cyc_m *m)
{
	v_kind = K_NONCE;
	for (uint32_t i = 0; i < m->n_nonce; i++) {
		const struct nonce_m *n = &m->nonce[i];
		if (n->s[0] == '\0')
			VFAIL("model: nonce %u never reported", i);
		bool valid = once_nonce_valid(s, n->s, ONCE_NONCE_LEN);
		if (n->f & F_ACC_A)
			check(!valid, "acknowledged accept: nonce still valid:", n->s, n->f | F_T | F_A);
		else if (!(n->f & F_ACC_T))
			check(valid, "acknowledged issue, never accepted: nonce not valid:", n->s, n->f | F_T | F_A);
		if (!valid)
			check_st(once_nonce_accept(s, n->s, ONCE_NONCE_LEN, FAR), M(SPENT),
			         "used nonce: accept again", n->s, n->f | F_T | F_A);
	}
}

static void verify_replays(once_store *s, uint32_t cy, const struct cyc_m *m)
{
	v_kind = K_RP;
	char key[64];
	for (uint32_t id = 0; id < m->n_rp; id++) {
		if (!(m->rp[id] & F_A))
			continue;
		size_t kl = key_rp(key, cy, id);
		check_st(once_replay_check(s, key, kl, FAR), M(SPENT), "acknowledged replay record: check",
		         key, m->rp[id]);
	}
}

static void verify_cycle(once_store *s, uint32_t cy)
{
	const struct cyc_m *m = &cycles[cy];
	v_cycle = cy;
	verify_codes(s, cy, m);
	verify_access(s, cy, m);
	verify_refresh(s, cy, m);
	verify_nonces(s, m);
	verify_replays(s, cy, m);
}

/* ---- nothing that was never written: counts and a full dump ---- */

/* Acknowledged nonces of every cycle with their flags, sorted, for the
 * dump's nonce lines. */
static struct nonce_m *nonce_set;
static size_t nonce_set_n;

/* Compares the first ONCE_NONCE_LEN bytes: a key, or a struct nonce_m (s first). */
static int nonce_cmp(const void *a, const void *b)
{
	return memcmp(a, b, ONCE_NONCE_LEN);
}

struct dump_check {
	uint64_t unknown_nonces;
};

/* The value of "name":"..." in a dump line, copied to out (our keys have
 * no escapes). */
static bool field(const char *line, const char *name, char *out, size_t cap)
{
	char pat[32];
	snprintf(pat, sizeof pat, "\"%s\":\"", name);
	const char *p = strstr(line, pat);
	if (p == NULL)
		return false;
	p += strlen(pat);
	const char *q = strchr(p, '"');
	if (q == NULL || (size_t)(q - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return true;
}

static void dump_line(void *ctx, const char *line)
{
	struct dump_check *d = ctx;
	char kind[32], key[128], state[32];
	unsigned cy, id;
	V.dump_lines++;
	if (!field(line, "kind", kind, sizeof kind) || !field(line, "key", key, sizeof key))
		FAIL_AT("dump line unparsed: %s", line);
	bool has_state = field(line, "state", state, sizeof state);
	const struct cyc_m *m = NULL;
	if (strcmp(kind, "nonce") == 0) {
		const struct nonce_m *n = strlen(key) != ONCE_NONCE_LEN ? NULL
			: bsearch(key, nonce_set, nonce_set_n, sizeof *nonce_set, nonce_cmp);
		d->unknown_nonces += n == NULL;
		/* Only acknowledged nonces were ever presented to accept. */
		if (!has_state || (strcmp(state, "fresh") != 0 && (n == NULL || !(n->f & F_ACC_T))))
			FAIL_AT("dump: a nonce state no call ever tried to write (flags 0x%x): %s",
			        n ? n->f : 0, line);
		return;
	}
	char prefix[16];
	if (sscanf(key, "%15[a-z]:c%u:%u", prefix, &cy, &id) != 3 || cy >= n_cycles)
		FAIL_AT("dump: a key no call ever wrote: %s", line);
	m = &cycles[cy];
	unsigned f = 0;
	bool tried = false;
	if (strcmp(kind, "code") == 0 && strcmp(prefix, "code") == 0) {
		f = id < m->n_code ? m->code[id] : 0;
		tried = (f & F_T) && (!has_state || strcmp(state, "live") == 0 ||
		                      (strcmp(state, "taken") == 0 && (f & F_TAKE_T)) ||
		                      (strcmp(state, "finalized") == 0 && (f & F_FIN_T)));
	} else if (strcmp(kind, "access_token") == 0 && strcmp(prefix, "at") == 0) {
		tried = id < m->n_at && (m->at[id].f & F_T);
	} else if (strcmp(kind, "access_family") == 0 && strcmp(prefix, "af") == 0) {
		f = id < NAF ? m->af[id] : 0;
		tried = (f & F_USED) && (strstr(line, "\"revoked\":true") == NULL || (f & F_REV_T));
	} else if (strcmp(kind, "refresh") == 0 && strcmp(prefix, "rt") == 0) {
		f = id < m->n_rt ? m->rt[id].f : 0;
		tried = (f & F_T) && (strstr(line, "\"consumed\":true") == NULL || (f & F_CONS_T));
	} else if (strcmp(kind, "refresh_family") == 0 && strcmp(prefix, "rf") == 0) {
		f = id < NRF ? m->rf[id] : 0;
		tried = (f & F_USED) && (strstr(line, "\"revoked\":true") == NULL || (f & F_REV_T));
	} else if (strcmp(kind, "replay") == 0 && strcmp(prefix, "jti") == 0) {
		tried = id < m->n_rp && (m->rp[id] & F_T);
	}
	if (!tried)
		FAIL_AT("dump: an entry or state no call ever tried to write (flags 0x%x): %s", f, line);
}

/* Entries per kind lie between what was acknowledged and what was tried. */
static void verify_counts(once_store *s)
{
	uint64_t lo[5] = {0}, hi[5] = {0}; /* codes, access, refresh, nonces, replays */
	for (uint32_t c = 0; c < n_cycles; c++) {
		const struct cyc_m *m = &cycles[c];
		for (uint32_t i = 0; i < m->n_code; i++)
			lo[0] += !!(m->code[i] & F_A), hi[0] += !!(m->code[i] & F_T);
		for (uint32_t i = 0; i < m->n_at; i++)
			lo[1] += !!(m->at[i].f & F_A), hi[1] += !!(m->at[i].f & F_T);
		for (uint32_t i = 0; i < m->n_rt; i++)
			lo[2] += !!(m->rt[i].f & F_A), hi[2] += !!(m->rt[i].f & F_T);
		lo[3] += m->n_nonce;
		hi[3] += m->issue_try;
		for (uint32_t i = 0; i < m->n_rp; i++)
			lo[4] += !!(m->rp[i] & F_A), hi[4] += !!(m->rp[i] & F_T);
	}
	struct once_stats st;
	once_stats(s, &st);
	const uint64_t got[5] = {st.codes.entries, st.access_tokens.entries, st.refresh.entries,
	                         st.nonces.entries, st.replays.entries};
	static const char *const names[5] = {"codes", "access tokens", "refresh tokens", "nonces",
	                                     "replays"};
	for (int k = 0; k < 5; k++) {
		V.checks++;
		if (got[k] < lo[k] || got[k] > hi[k])
			VFAIL("%s: %" PRIu64 " entries after recovery, but %" PRIu64
			      " were acknowledged and %" PRIu64 " tried",
			      names[k], got[k], lo[k], hi[k]);
	}
}

/* Every entry (and every state) in a full dump was tried by some call. */
static void verify_dump(once_store *s)
{
	size_t total_nonces = 0;
	uint64_t unacked_issues = 0;
	for (uint32_t c = 0; c < n_cycles; c++) {
		total_nonces += cycles[c].n_nonce;
		unacked_issues += cycles[c].issue_try - cycles[c].n_nonce;
	}
	nonce_set = malloc((total_nonces ? total_nonces : 1) * sizeof *nonce_set);
	if (nonce_set == NULL)
		FAIL_AT("out of memory");
	nonce_set_n = 0;
	for (uint32_t c = 0; c < n_cycles; c++)
		for (uint32_t i = 0; i < cycles[c].n_nonce; i++)
			nonce_set[nonce_set_n++] = cycles[c].nonce[i];
	qsort(nonce_set, nonce_set_n, sizeof *nonce_set, nonce_cmp);
	struct dump_check d = {0};
	once__dump(s, dump_line, &d);
	V.checks++;
	if (d.unknown_nonces > unacked_issues)
		VFAIL("dump: %" PRIu64 " unknown nonces, but only %" PRIu64 " issues were unacknowledged",
		      d.unknown_nonces, unacked_issues);
	free(nonce_set);
	nonce_set = NULL;
}

/* Keys nobody used: a far cycle, random nonces. */
static void verify_never_used(once_store *s)
{
	v_kind = K_NONE;
	char key[64];
	uint32_t cy = n_cycles + 1000000;
	for (uint32_t id = 0; id < 4; id++) {
		size_t kl = key_code(key, cy, id);
		check_st(once_code_get(s, key, kl, NULL), M(NOT_FOUND), "never-used code", key, 0);
		check_st(once_code_take(s, key, kl, NULL, NULL), M(NOT_FOUND), "never-used code take", key, 0);
		kl = key_rt(key, cy, id);
		check_st(once_refresh_get(s, key, kl, NULL), M(NOT_FOUND), "never-used refresh", key, 0);
		check_st(once_refresh_consume(s, key, kl, NULL), M(NOT_FOUND), "never-used consume", key, 0);
		kl = key_at(key, cy, id);
		check(!once_access_token_revoked(s, key, kl), "never-used access token revoked:", key, 0);
		char n[ONCE_SECRET_LEN + 1];
		ASSERT_ST(once_secret_generate(n), ONCE_OK);
		check(!once_nonce_valid(s, n, ONCE_NONCE_LEN), "random nonce valid:", n, 0);
		check_st(once_nonce_accept(s, n, ONCE_NONCE_LEN, FAR), M(NOT_FOUND), "random nonce accept",
		         n, 0);
	}
}

/* Runs in the verifier process. which: the cycle to check (and one random
 * earlier one, chosen by pick), or UINT32_MAX for every cycle. */
static void verifier_main(const char *dir, uint32_t which, uint32_t pick, int fd)
{
	once_options o = crash_options(dir);
	o.log = verifier_log;
	once_store *s = NULL;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK)
		FAIL_AT("verifier: once_open after cycle %u: %s", which, once_status_name(st));
	struct once_stats stats;
	once_stats(s, &stats);
	V.recovered = stats.recovered_records;
	V.snapshot = stats.recovered_snapshot_records;
	V.recovery_ns = stats.recovery_ns;
	if (which == UINT32_MAX) {
		for (uint32_t c = 0; c < n_cycles; c++)
			verify_cycle(s, c);
	} else {
		verify_cycle(s, which);
		if (which > 0)
			verify_cycle(s, pick % which);
	}
	verify_counts(s);
	if (which == UINT32_MAX || which % DUMP_EVERY == DUMP_EVERY - 1)
		verify_dump(s);
	verify_never_used(s);
	ASSERT_ST(once_close(s), ONCE_OK);
	if (write(fd, &V, sizeof V) != (ssize_t)sizeof V)
		FAIL_AT("verifier: write failed");
	close(fd);
}

/* ======================================================================== */
/* Running a writer                                                         */
/* ======================================================================== */

struct totals {
	uint64_t acks, tries, checks, recovered, snapshot, checkpoints, torn, dump_lines;
	uint64_t early_kills, killed_before_ready, snapshot_recoveries, max_recovery_ns;
	uint64_t writer_ns, verifier_ns, self_kills;
};

/* Reads whole reports from fd into the model until `deadline_ns` (0: until
 * EOF, blocking) or until one with kind `until` arrives.  Returns false on
 * an R_ERROR report; *eof is set at end of file. */
static bool pump(int fd, struct cyc_m *m, uint64_t deadline_ns, int until, bool *eof, bool *seen)
{
	static unsigned char buf[64 * 1024];
	static size_t have;
	for (;;) {
		if (deadline_ns != 0) {
			uint64_t now = mono_ns();
			if (now >= deadline_ns)
				return true;
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			uint64_t left = deadline_ns - now;
			struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
			                      .tv_nsec = (long)(left % 1000000000u)};
			int rc = ppoll(&pfd, 1, &ts, NULL);
			if (rc < 0 && errno == EINTR)
				continue;
			ASSERT(rc >= 0);
			if (rc == 0)
				return true;
		}
		ssize_t n = read(fd, buf + have, sizeof buf - have);
		if (n < 0 && errno == EINTR)
			continue;
		ASSERT(n >= 0);
		if (n == 0) {
			*eof = true;
			if (have != 0)
				FAIL_AT("a partial report (%zu bytes) in the pipe", have);
			return true;
		}
		have += (size_t)n;
		size_t whole = have / sizeof(struct report) * sizeof(struct report);
		bool ok = true, stop = false;
		for (size_t off = 0; off < whole; off += sizeof(struct report)) {
			struct report r;
			memcpy(&r, buf + off, sizeof r);
			if (!apply(m, &r))
				ok = false;
			if (r.kind == until) {
				*seen = true;
				stop = true;
			}
		}
		memmove(buf, buf + whole, have - whole);
		have -= whole;
		if (!ok || stop)
			return ok;
	}
}

/* Starts a writer for cycle cy on dir: a child process that closes p[0]
 * and reports through p[1] (writer_main); returns its pid. */
typedef pid_t writer_spawn_fn(const int p[2], const char *dir, uint32_t cy, uint64_t seed,
                              uint32_t kill_after);

/* Runs the writer of cycle cy (started by spawn) into the model and kills
 * it with SIGKILL at a random moment (see the kill modes below). */
static void run_writer(const char *dir, uint32_t cy, uint64_t *rs, struct totals *tot,
                       writer_spawn_fn *spawn)
{
	struct cyc_m *m = &cycles[cy];
	int p[2];
	ASSERT(pipe(p) == 0);
	(void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20); /* fewer stalls; not needed */
	uint64_t seed = rng_next(rs);
	/* How it dies: 1 in 10 during its open (recovery), 3 in 10 by its own
	 * hand right after its Nth acknowledgment, the rest 5-40 ms in. */
	uint32_t mode = rnd(rs, 10);
	bool early = mode == 0;
	uint32_t kill_after = mode >= 1 && mode <= 3 ? 1 + rnd(rs, 200) : 0;
	uint64_t delay_ns = early ? rnd(rs, 4000) * 1000ull
	                          : (kill_after ? 100000 : 5000 + rnd(rs, 35000)) * 1000ull;
	fflush(NULL);
	pid_t pid = spawn(p, dir, cy, seed, kill_after);
	ASSERT(pid > 0);
	close(p[1]);
	bool eof = false, ready = false, ok = true;
	uint64_t start = mono_ns();
	if (!early) {
		/* Wait for the open (recovery can take a while under ASan). */
		ok = pump(p[0], m, start + 60ull * 1000000000u, R_READY, &eof, &ready);
		if (ok && !ready && !eof)
			FAIL_AT("cycle %u: the writer did not open its store within 60 s", cy);
		start = mono_ns();
	}
	if (ok && !eof)
		ok = pump(p[0], m, start + delay_ns, -1, &eof, &ready);
	kill(pid, SIGKILL);
	while (!eof)
		if (!pump(p[0], m, 0, -1, &eof, &ready))
			ok = false;
	close(p[0]);
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	if (!ok)
		FAIL_AT("cycle %u: the writer got an unexpected status (above)", cy);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		FAIL_AT("cycle %u: the writer ended by itself (%s %d)", cy,
		        WIFEXITED(status) ? "exit" : "signal",
		        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	tot->early_kills += early;
	tot->self_kills += kill_after != 0 && m->acks >= kill_after;
	tot->killed_before_ready += !ready;
	tot->acks += m->acks;
	tot->tries += m->tries;
	tot->checkpoints += m->checkpoints;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);
	return v != NULL && *v != '\0' ? strtoull(v, NULL, 0) : def;
}

static void add_vresult(struct totals *tot, const struct vresult *r)
{
	tot->checks += r->checks;
	tot->recovered += r->recovered;
	tot->snapshot += r->snapshot;
	tot->snapshot_recoveries += r->snapshot > 0;
	tot->torn += r->torn;
	tot->dump_lines += r->dump_lines;
	if (r->recovery_ns > tot->max_recovery_ns)
		tot->max_recovery_ns = r->recovery_ns;
}

#endif /* ONCE_TEST_CRASHMODEL_H */
