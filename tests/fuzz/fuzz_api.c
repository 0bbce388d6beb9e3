/*
 * tests/fuzz/fuzz_api.c - libFuzzer target over every public call, checked
 * against a reference model.
 *
 * The input is a small configuration (capacities 1..8, shards, max_key_len,
 * revocation_ttl, successor key or not, memory-only or with a data
 * directory, the starting clock) followed by a sequence of operations.
 * Every operation is one public call with arguments decoded from the
 * input: a small key space (seven valid keys, plus NULL, empty and
 * over-long ones) so that collisions happen, a fake clock (options.clock)
 * that an operation can set to any int64_t (INT64_MIN and INT64_MAX
 * included), and any ttl, expires_at and revocation_ttl.
 *
 * The model (plain arrays of structs) computes the documented outcome of
 * each call from include/oncestore.h before the call, the harness checks
 * the returned status and the returned record, and applies the change only
 * when the store made it.  A mismatch prints the operation and abort()s.
 * What it checks: every status, exactly-once (take / consume / accept /
 * replay / rotate), finalize, revocation (sticky, incarnations of families
 * swept and created again, the access token's own expiry), nonce EXPIRED vs
 * SPENT vs NOT_FOUND, capacities (FULL vs EXISTS), records returned
 * (fields, scope without duplicates, successors), "out untouched on
 * failure" for nonces, sweep counts, once_stats entries / capacity / swept
 * / per-operation counts, the number of entries once__dump reports,
 * checkpoints, and, with a data directory, close + reopen bringing back
 * exactly the model (minus what expired).
 *
 * Data-directory variant: a fresh store under one temporary directory per
 * process (ONCE_SYNC_NONE; close syncs).  Its clock only moves forward: a
 * sweep is not logged, so a clock that went back would resurrect swept
 * entries at reopen, which the model does not follow.
 *
 * Time ranges: when the header defines ONCE_TIME_MIN / ONCE_TIME_MAX, a
 * clock or an expiry outside them must be ONCE_INVALID with nothing
 * stored (see time_rule below); without them, ONCE_INVALID is accepted
 * for such times in place of the normal outcome.
 *
 * Environment:
 *   FUZZ_TRACE=1            print every operation (to study a reproducer)
 *   FUZZ_AVOID_KNOWN=1      keep the clock within +-2^61 (steps around the
 *                           known overflow bugs near the int64 ends, to
 *                           look for other findings while those stand)
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <pthread.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "oncestore.h"
#include "internal.h" /* once__dump */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* ---- input ---- */

struct in {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

static uint16_t u16(struct in *in)
{
	return (uint16_t)(u8(in) | u8(in) << 8);
}

static uint64_t u64(struct in *in)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8(in) << (8 * i);
	return v;
}

static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* The valid time range, when the header has one. */
#if defined(ONCE_TIME_MIN) && defined(ONCE_TIME_MAX)
#define HAVE_TIME_RANGE 1
#define T_MIN ((int64_t)ONCE_TIME_MIN)
#define T_MAX ((int64_t)ONCE_TIME_MAX)
#else
#define HAVE_TIME_RANGE 0
/* Only to steer the fuzzer towards the edges of a plausible range. */
#define T_MIN ((int64_t)0)
#define T_MAX ((int64_t)1 << 40)
#endif

/* Any int64: the ends, 0 and +-1, the range edges, near `base`, raw. */
static int64_t pick_time(struct in *in, int64_t base)
{
	uint8_t sel = u8(in);
	int8_t d = (int8_t)u8(in);
	switch (sel % 16) {
	case 0: return INT64_MIN;
	case 1: return INT64_MIN + 1 + (d & 3);
	case 2: return INT64_MAX;
	case 3: return INT64_MAX - 1 - (d & 3);
	case 4: return 0;
	case 5: return -1 - (d & 3);
	case 6: return 1 + (d & 3);
	case 7: return sat_add(base, d);
	case 8: return (int64_t)u64(in);
	case 9: return (int64_t)u16(in);
	case 10: return sat_add(T_MIN, d);
	case 11: return sat_add(T_MAX, d);
	case 12: return sat_add((int64_t)INT32_MAX, d);
	case 13: return sat_add((int64_t)UINT32_MAX, d);
	default: return sat_add(base, (int64_t)u16(in) - 256);
	}
}

/* A ttl: mostly small positive, sometimes anything. */
static int64_t pick_ttl(struct in *in, int64_t now)
{
	uint8_t sel = u8(in);
	if (sel < 160)
		return 1 + sel % 64;
	if (sel < 176)
		return 0 - (sel & 3);
	if (sel < 192)
		return INT64_MAX - (sel & 3);
	if (sel < 208 && now > 0)
		return INT64_MAX - now - (sel & 3); /* now + ttl at the end */
	return pick_time(in, 100);
}

/* ---- the store under test ---- */

static int64_t g_now;
static int g_avoid_known;
static int g_trace;
static char g_tmp[256]; /* per-process temporary directory */
static char g_dir[300]; /* the data directory of the dir variant */

static int64_t fake_clock(void *ctx)
{
	(void)ctx;
	return g_now;
}

static const unsigned char succ_key[ONCE_SUCCESSOR_KEY_LEN] = "fuzz-successor-key-32-bytes-long";

struct cfg {
	once_options o;
	bool dir;
	bool has_key;
	uint64_t max_codes, max_access, max_refresh, max_nonces, max_replays;
	uint32_t max_key_len;
	uint32_t max_record_len;
	int64_t revocation_ttl;
};

static struct cfg C;
static once_store *S;
static unsigned g_opi; /* operation index, for messages */
static void close_later(once_store *s);
static const char *g_op = "setup";

static void trace(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void trace(const char *fmt, ...)
{
	if (!g_trace)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[%u now=%" PRId64 "] ", g_opi, g_now);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_api: MISMATCH at op %u (%s), now=%" PRId64 ": ", g_opi, g_op, g_now);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

#define CHECK(cond, ...)                 \
	do {                             \
		if (!(cond))             \
			fail(__VA_ARGS__); \
	} while (0)

/* Times outside the valid range: with a range in the header, the call
 * must answer INVALID; without, INVALID is one acceptable answer. */
static bool t_out(int64_t t)
{
	return t < T_MIN || t > T_MAX;
}

enum rule { R_NORMAL, R_MUST_INVALID, R_MAY_INVALID };

static enum rule time_rule(bool out)
{
	if (!out || HAVE_TIME_RANGE) /* with a range the model is exact */
		return R_NORMAL;
	return HAVE_TIME_RANGE ? R_MUST_INVALID : R_MAY_INVALID;
}

/* The store's "now": the fake clock, clamped into the range when there
 * is one. */
static int64_t now_(void)
{
	if (HAVE_TIME_RANGE)
		return g_now < T_MIN ? T_MIN : g_now > T_MAX ? T_MAX : g_now;
	return g_now;
}
#define NOW now_()

#if HAVE_TIME_RANGE && defined(ONCE_TTL_MAX)
#define TTL_MAX ((int64_t)ONCE_TTL_MAX)
#else
#define TTL_MAX T_MAX
#endif

/* An expires_at a caller gives that must be refused. */
static bool exp_bad(int64_t e)
{
	return HAVE_TIME_RANGE ? e < T_MIN || e > T_MAX : e <= 0;
}

/* A ttl that must be refused (nonce issue/accept, replay). */
static bool ttl_bad(int64_t t)
{
	return HAVE_TIME_RANGE ? t < 1 || t > TTL_MAX : t <= 0;
}

/* now + ttl that must be refused (without a range: it overflows). */
static bool add_bad(int64_t ttl)
{
	return HAVE_TIME_RANGE ? false : NOW > INT64_MAX - ttl;
}

/* now + ttl (with a range: saturating at its end). */
static int64_t add_ttl(int64_t ttl)
{
	if (HAVE_TIME_RANGE)
		return ttl > T_MAX - NOW ? T_MAX : NOW + ttl;
	return NOW + ttl;
}

static const char *sname(once_status st)
{
	return once_status_name(st);
}

/* Checks got against want under rule r; true when the model should apply
 * the change `want` describes (got == want). */
static bool expect(once_status got, once_status want, enum rule r)
{
	if (r == R_MUST_INVALID && want != ONCE_INVALID)
		want = ONCE_INVALID;
	if (got == want)
		return true;
	if (r == R_MAY_INVALID && got == ONCE_INVALID)
		return false;
	fail("got %s, want %s", sname(got), sname(want));
}

/* ---- model ---- */

#define NK 7  /* valid key slots */
#define NF 5  /* valid family slots */
#define NN 32 /* tracked nonces */

enum { C_LIVE = 1, C_TAKEN, C_FINAL };

struct m_code {
	bool present;
	int state;
	int64_t exp, inserted_at, consumed_at;
	int subj, chal, nscope, claims_len;
	const char *scope[4];
	const char *family_id;
};

struct m_fam {
	bool present, revoked;
	int64_t exp;
	uint64_t inc;
};

struct m_access {
	bool present;
	int fam;
	uint64_t inc;
	int64_t exp;
};

struct m_refresh {
	bool present;
	int fam;
	uint64_t inc;
	int64_t exp, inserted_at, generation;
	int subj, claims_len;
	size_t nscope;
	const char *scope[6]; /* deduplicated */
	bool consumed;
	int64_t consumed_at;
	bool has_succ;
	size_t succ_len;
	unsigned char succ[64];
};

struct m_nonce {
	bool tracked, present, used;
	char text[ONCE_NONCE_LEN + 1];
	int64_t issued, exp;
};

struct m_replay {
	bool present;
	int64_t exp;
};

static struct model {
	struct m_code code[NK];
	struct m_fam afam[NF], rfam[NF];
	struct m_access acc[NK];
	struct m_refresh ref[NK];
	struct m_nonce nonce[NN];
	struct m_replay rep[NK];
	uint64_t next_inc;
	uint64_t ops[ONCE_OP_COUNT][ONCE_STATUS_COUNT];
	uint64_t swept[5]; /* codes, access, refresh, nonces, replays */
	uint64_t sweeps;
} M;

/* Operations whose per-status counts the model cannot tell (a boolean
 * call answered false for a clock outside the time range). */
static bool g_ops_fuzzy[ONCE_OP_COUNT];

static void count(once_op op, once_status st)
{
	M.ops[op][st]++;
}

static uint64_t n_codes(void)
{
	uint64_t n = 0;
	for (int i = 0; i < NK; i++)
		n += M.code[i].present;
	return n;
}
static uint64_t n_access(void)
{
	uint64_t n = 0;
	for (int i = 0; i < NK; i++)
		n += M.acc[i].present;
	return n;
}
static uint64_t n_refresh(void)
{
	uint64_t n = 0;
	for (int i = 0; i < NK; i++)
		n += M.ref[i].present;
	return n;
}
static uint64_t n_fams(const struct m_fam *f)
{
	uint64_t n = 0;
	for (int i = 0; i < NF; i++)
		n += f[i].present;
	return n;
}
static uint64_t n_nonces(void)
{
	uint64_t n = 0;
	for (int i = 0; i < NN; i++)
		n += M.nonce[i].present;
	return n;
}
static uint64_t n_replays(void)
{
	uint64_t n = 0;
	for (int i = 0; i < NK; i++)
		n += M.rep[i].present;
	return n;
}

/* ---- keys ---- */

static unsigned char keybytes[NK][72];
static size_t keylen[NK];
static char famtext[NF + 1][72]; /* slot NF: one byte too long */

struct key {
	const void *p;
	size_t len;
	int slot; /* -1: invalid */
};

static void keys_init(void)
{
	for (int i = 0; i < NK; i++) {
		keylen[i] = i < NK - 1 ? (size_t)(1 + 3 * i) : C.max_key_len;
		memset(keybytes[i], 'a' + i, sizeof keybytes[i]);
	}
	for (int i = 0; i < 4; i++)
		snprintf(famtext[i], sizeof famtext[i], "fam%d", i);
	memset(famtext[4], 'F', C.max_key_len);
	famtext[4][C.max_key_len] = '\0';
	memset(famtext[5], 'F', C.max_key_len + 1);
	famtext[5][C.max_key_len + 1] = '\0';
}

static const unsigned char toolong[80] = {'z'};

static struct key pick_key(struct in *in)
{
	uint8_t sel = u8(in) % 10;
	if (sel < NK)
		return (struct key){keybytes[sel], keylen[sel], sel};
	if (sel == 7)
		return (struct key){NULL, 5, -1};
	if (sel == 8)
		return (struct key){keybytes[0], 0, -1};
	return (struct key){toolong, C.max_key_len + 1, -1};
}

/* A family id as text: slots 0..NF-1 valid, else "" / NULL / too long. */
struct fam {
	const char *text;
	int slot;
};

static struct fam pick_fam(struct in *in)
{
	uint8_t sel = u8(in) % 8;
	if (sel < NF)
		return (struct fam){famtext[sel], sel};
	if (sel == 5)
		return (struct fam){famtext[5], -1};
	if (sel == 6)
		return (struct fam){"", -1};
	return (struct fam){NULL, -1};
}

static size_t fam_len(const struct fam *f)
{
	return f->text ? strlen(f->text) : 3;
}

static const char *subjects[4] = {"alice", "bob", "carol", "dave"};
static const char *scope_pool[6] = {"openid", "email", "openid", "profile", "email", "x"};
static unsigned char pattern[256];
static unsigned char huge[(64u << 10) + 16];

static bool str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* ---- store lifecycle ---- */

static void rm_dir_files(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

static void store_open(void)
{
	once_status st = once_open(&C.o, &S);
	CHECK(st == ONCE_OK && S != NULL, "once_open: %s", sname(st));
}

/* The model after a reopen: what expired is dropped (not counted as
 * swept), counters start again at zero. */
static void model_reopen(void)
{
	int64_t now = NOW;
	for (int i = 0; i < NK; i++) {
		if (M.code[i].present && M.code[i].exp < now)
			M.code[i].present = false;
		if (M.acc[i].present && M.acc[i].exp < now)
			M.acc[i].present = false;
		if (M.ref[i].present && M.ref[i].exp < now)
			M.ref[i].present = false;
		if (M.rep[i].present && M.rep[i].exp < now)
			M.rep[i].present = false;
	}
	for (int i = 0; i < NF; i++) {
		if (M.afam[i].present && M.afam[i].exp < now)
			M.afam[i].present = false;
		if (M.rfam[i].present && M.rfam[i].exp < now)
			M.rfam[i].present = false;
	}
	for (int i = 0; i < NN; i++)
		if (M.nonce[i].present && M.nonce[i].exp < now)
			M.nonce[i].present = false;
	memset(M.ops, 0, sizeof M.ops);
	memset(M.swept, 0, sizeof M.swept);
	M.sweeps = 0;
}

/* ---- checks of returned records ---- */

static void check_code(const once_code *c, const struct m_code *m, bool taken)
{
	CHECK(c != NULL, "no record");
	CHECK(strcmp(c->client_id, "client") == 0 && strcmp(c->subject, subjects[m->subj]) == 0 &&
	              strcmp(c->redirect_uri, "https://rp.example/cb") == 0,
	      "code text fields");
	CHECK(c->expires_at == m->exp, "code expires_at %" PRId64 " != %" PRId64, c->expires_at, m->exp);
	CHECK(c->inserted_at == m->inserted_at, "code inserted_at %" PRId64 " != %" PRId64,
	      c->inserted_at, m->inserted_at);
	CHECK(c->consumed_at == (taken ? NOW : 0) && !c->consumed_success, "code consumed fields");
	CHECK(m->chal ? (str_eq(c->code_challenge, "chal") && str_eq(c->code_challenge_method, "S256"))
	              : (c->code_challenge == NULL && c->code_challenge_method == NULL),
	      "code challenge / method");
	CHECK(c->scope_count == (size_t)m->nscope, "code scope count");
	for (int i = 0; i < m->nscope; i++)
		CHECK(strcmp(c->scope[i], m->scope[i]) == 0, "code scope[%d]", i);
	CHECK(c->claims_len == (size_t)m->claims_len &&
	              (m->claims_len == 0 || memcmp(c->claims, pattern, (size_t)m->claims_len) == 0),
	      "code claims");
	CHECK(str_eq(c->family_id, m->family_id), "code family_id");
}

static void check_refresh(const once_refresh *r, const struct m_refresh *m, bool as_stood)
{
	CHECK(r != NULL, "no record");
	CHECK(strcmp(r->family_id, famtext[m->fam]) == 0 && strcmp(r->subject, subjects[m->subj]) == 0,
	      "refresh text fields");
	CHECK(r->expires_at == m->exp && r->generation == m->generation &&
	              r->inserted_at == m->inserted_at,
	      "refresh expires_at/generation/inserted_at");
	CHECK(!r->revoked, "refresh revoked flag");
	CHECK(r->scope_count == m->nscope, "refresh scope count %zu != %zu", r->scope_count, m->nscope);
	for (size_t i = 0; i < m->nscope; i++)
		CHECK(strcmp(r->scope[i], m->scope[i]) == 0, "refresh scope[%zu]", i);
	CHECK(r->claims_len == (size_t)m->claims_len &&
	              (m->claims_len == 0 || memcmp(r->claims, pattern, (size_t)m->claims_len) == 0),
	      "refresh claims");
	bool consumed = as_stood ? false : m->consumed;
	CHECK(r->consumed == consumed, "refresh consumed %d != %d", r->consumed, consumed);
	CHECK(r->consumed_at == (consumed ? m->consumed_at : 0), "refresh consumed_at %" PRId64,
	      r->consumed_at);
	bool succ = consumed && m->has_succ;
	if (succ) {
		CHECK(r->successor_len == m->succ_len &&
		              (m->succ_len == 0 || memcmp(r->successor, m->succ, m->succ_len) == 0),
		      "refresh successor bytes (len %zu, want %zu)", r->successor_len, m->succ_len);
	} else {
		CHECK(r->successor == NULL && r->successor_len == 0, "refresh successor present");
	}
}

/* ---- operations ---- */

static bool live_refresh(int slot)
{
	const struct m_refresh *t = &M.ref[slot];
	if (!t->present)
		return false;
	const struct m_fam *f = &M.rfam[t->fam];
	return f->present && f->inc == t->inc && !f->revoked;
}

/* Holds family f (created if absent) to at least exp; false: FULL. */
static bool fam_hold_ok(const struct m_fam *fams, int slot, uint64_t cap)
{
	return fams[slot].present || n_fams(fams) < cap;
}

static void fam_hold(struct m_fam *fams, int slot, int64_t exp)
{
	struct m_fam *f = &fams[slot];
	if (!f->present) {
		f->present = true;
		f->revoked = false;
		f->exp = exp;
		f->inc = ++M.next_inc;
	} else if (f->exp < exp) {
		f->exp = exp;
	}
}

static void op_code_put(struct in *in)
{
	g_op = "code_put";
	struct key k = pick_key(in);
	uint8_t v = u8(in), f = u8(in);
	int64_t exp = pick_time(in, sat_add(g_now, 60));
	struct fam fam = pick_fam(in);
	once_code c = {0};
	c.client_id = "client";
	c.subject = subjects[f & 3];
	c.redirect_uri = "https://rp.example/cb";
	int chal = (f >> 2) & 1;
	if (chal) {
		c.code_challenge = "chal";
		c.code_challenge_method = (f & 8) ? "S256" : NULL;
	}
	const char *scope[4];
	int nscope = (f >> 4) & 3;
	for (int i = 0; i < nscope; i++)
		scope[i] = scope_pool[i];
	c.scope = nscope ? scope : NULL;
	c.scope_count = (size_t)nscope;
	int claims = (f >> 6) * 7;
	c.claims = claims ? pattern : NULL;
	c.claims_len = (size_t)claims;
	c.family_id = (v & 0x10) ? fam.text : NULL;
	c.expires_at = exp;
	c.inserted_at = (int64_t)u64(in); /* ignored */
	const char *bad_scope[2] = {"openid", NULL};
	bool bad = true;
	switch (v % 16) {
	case 5: c.code_challenge_method = "plain"; break;
	case 6: c.code_challenge = NULL; c.code_challenge_method = "S256"; break;
	case 7: c.code_challenge = ""; break;
	case 8: c.client_id = NULL; break;
	case 9: c.subject = ""; break;
	case 10: c.consumed_at = 1; break;
	case 11: c.consumed_success = true; break;
	case 12: c.claims = NULL; c.claims_len = 3; break;
	case 13: c.scope = bad_scope; c.scope_count = 2; break;
	case 14: c.claims = huge; c.claims_len = C.max_record_len + 1; break;
	case 15: c.redirect_uri = NULL; break;
	default: bad = false; break;
	}
	bool nullrec = (v & 0xe0) == 0xe0;
	once_status want;
	if (k.slot < 0 || bad || exp_bad(exp) || nullrec)
		want = ONCE_INVALID;
	else if (M.code[k.slot].present)
		want = ONCE_EXISTS;
	else if (n_codes() >= C.max_codes)
		want = ONCE_FULL;
	else
		want = ONCE_OK;
	enum rule r = time_rule(want != ONCE_INVALID && (t_out(g_now) || t_out(exp)));
	trace("code_put key=%d variant=%u exp=%" PRId64 " -> want %s", k.slot, v % 16, exp, sname(want));
	once_status st = once_code_put(S, k.p, k.len, nullrec ? NULL : &c);
	count(ONCE_OP_CODE_PUT, st);
	if (expect(st, want, r) && want == ONCE_OK) {
		struct m_code *m = &M.code[k.slot];
		*m = (struct m_code){.present = true, .state = C_LIVE, .exp = exp, .inserted_at = NOW,
		                     .subj = f & 3, .chal = chal, .nscope = nscope, .claims_len = claims,
		                     .family_id = c.family_id};
		for (int i = 0; i < nscope; i++)
			m->scope[i] = scope[i];
	}
}

static void op_code_get(struct in *in)
{
	g_op = "code_get";
	struct key k = pick_key(in);
	bool want_out = u8(in) & 1;
	once_status want = k.slot < 0 ? ONCE_INVALID
	                   : M.code[k.slot].present && M.code[k.slot].state == C_LIVE ? ONCE_OK
	                                                                             : ONCE_NOT_FOUND;
	trace("code_get key=%d -> want %s", k.slot, sname(want));
	once_code *out = NULL;
	once_status st = once_code_get(S, k.p, k.len, want_out ? &out : NULL);
	count(ONCE_OP_CODE_GET, st);
	if (expect(st, want, time_rule(t_out(g_now))) && want == ONCE_OK && want_out)
		check_code(out, &M.code[k.slot], false);
	else
		CHECK(out == NULL, "code_get: out set on %s", sname(st));
	once_free(out);
}

static void op_code_take(struct in *in)
{
	g_op = "code_take";
	struct key k = pick_key(in);
	uint8_t b = u8(in);
	bool want_out = b & 1, want_meta = b & 2;
	struct m_code *m = k.slot >= 0 ? &M.code[k.slot] : NULL;
	once_status want = !m                                    ? ONCE_INVALID
	                   : !m->present                          ? ONCE_NOT_FOUND
	                   : m->state == C_LIVE                   ? ONCE_OK
	                   : m->state == C_TAKEN                  ? ONCE_NOT_FOUND
	                                                          : ONCE_SPENT;
	trace("code_take key=%d -> want %s", k.slot, sname(want));
	once_code *out = NULL;
	once_code_meta *meta = NULL;
	once_status st = once_code_take(S, k.p, k.len, want_out ? &out : NULL, want_meta ? &meta : NULL);
	count(ONCE_OP_CODE_TAKE, st);
	if (expect(st, want, time_rule(t_out(g_now)))) {
		if (want == ONCE_OK) {
			if (want_out)
				check_code(out, m, true);
			m->state = C_TAKEN;
			m->consumed_at = NOW;
		} else if (want == ONCE_SPENT && want_meta) {
			CHECK(meta != NULL && strcmp(meta->subject, subjects[m->subj]) == 0 &&
			              str_eq(meta->family_id, m->family_id),
			      "code_take: meta");
		}
	}
	if (st != ONCE_OK)
		CHECK(out == NULL, "code_take: out set on %s", sname(st));
	if (st != ONCE_SPENT)
		CHECK(meta == NULL, "code_take: meta set on %s", sname(st));
	once_free(out);
	once_free(meta);
}

static void op_code_finalize(struct in *in)
{
	g_op = "code_finalize";
	struct key k = pick_key(in);
	struct m_code *m = k.slot >= 0 ? &M.code[k.slot] : NULL;
	once_status want = !m ? ONCE_INVALID
	                   : m->present && (m->state == C_TAKEN || m->state == C_FINAL) ? ONCE_OK
	                                                                                : ONCE_NOT_FOUND;
	trace("code_finalize key=%d -> want %s", k.slot, sname(want));
	once_status st = once_code_finalize(S, k.p, k.len);
	count(ONCE_OP_CODE_FINALIZE, st);
	if (expect(st, want, time_rule(t_out(g_now))) && want == ONCE_OK)
		m->state = C_FINAL;
}

static void op_access_record(struct in *in)
{
	g_op = "access_record";
	struct fam f = pick_fam(in);
	struct key k = pick_key(in);
	int64_t exp = pick_time(in, sat_add(g_now, 60));
	once_status want;
	if (f.slot < 0 || k.slot < 0 || exp_bad(exp))
		want = ONCE_INVALID;
	else if (M.acc[k.slot].present)
		want = ONCE_EXISTS;
	else if (n_access() >= C.max_access || !fam_hold_ok(M.afam, f.slot, 2 * C.max_access))
		want = ONCE_FULL;
	else
		want = ONCE_OK;
	enum rule r = time_rule(want != ONCE_INVALID && (t_out(g_now) || t_out(exp)));
	trace("access_record fam=%d jti=%d exp=%" PRId64 " -> want %s", f.slot, k.slot, exp, sname(want));
	once_status st = once_code_record_access_token(S, f.text, fam_len(&f), k.p, k.len, exp);
	count(ONCE_OP_ACCESS_RECORD, st);
	if (expect(st, want, r) && want == ONCE_OK) {
		fam_hold(M.afam, f.slot, exp);
		M.acc[k.slot] = (struct m_access){true, f.slot, M.afam[f.slot].inc, exp};
	}
}

static int64_t revoke_until(void)
{
	int64_t ttl = C.revocation_ttl;
	if (HAVE_TIME_RANGE)
		return ttl > T_MAX - NOW ? T_MAX : NOW + ttl;
	return NOW > INT64_MAX - ttl ? INT64_MAX : NOW + ttl;
}

static void op_revoke(struct in *in, bool refresh)
{
	g_op = refresh ? "refresh_revoke_family" : "access_revoke";
	struct fam f = pick_fam(in);
	struct m_fam *fams = refresh ? M.rfam : M.afam;
	uint64_t cap = 2 * (refresh ? C.max_refresh : C.max_access);
	once_status want = f.slot < 0 ? ONCE_INVALID : fam_hold_ok(fams, f.slot, cap) ? ONCE_OK : ONCE_FULL;
	int64_t until = revoke_until();
	enum rule r = time_rule(want != ONCE_INVALID && t_out(g_now));
	trace("%s fam=%d until=%" PRId64 " -> want %s", g_op, f.slot, until, sname(want));
	once_status st = refresh ? once_refresh_revoke_family(S, f.text, fam_len(&f))
	                         : once_code_revoke_family_access_tokens(S, f.text, fam_len(&f));
	count(refresh ? ONCE_OP_REFRESH_REVOKE : ONCE_OP_ACCESS_REVOKE, st);
	if (expect(st, want, r) && want == ONCE_OK) {
		fam_hold(fams, f.slot, until);
		fams[f.slot].revoked = true;
	}
}

static void op_access_revoked(struct in *in)
{
	g_op = "access_token_revoked";
	struct key k = pick_key(in);
	bool want = false;
	if (k.slot >= 0 && M.acc[k.slot].present) {
		const struct m_access *a = &M.acc[k.slot];
		const struct m_fam *f = &M.afam[a->fam];
		want = f->present && f->inc == a->inc && f->revoked && NOW <= a->exp;
	}
	trace("access_token_revoked jti=%d -> want %d", k.slot, want);
	bool got = once_access_token_revoked(S, k.p, k.len);
	count(ONCE_OP_ACCESS_REVOKED, k.slot < 0 ? ONCE_INVALID : got ? ONCE_OK : ONCE_NOT_FOUND);
	if (got != want) {
		/* With a time range: a clock outside it may answer false. */
		CHECK(!HAVE_TIME_RANGE && !got && t_out(g_now), "got %d, want %d", got, want);
		g_ops_fuzzy[ONCE_OP_ACCESS_REVOKED] = true; /* how it counted is open */
	}
}

/* A refresh record from the input; *bad: fails record_valid; *huge: too
 * large (refused after the argument checks). */
struct rrec {
	once_refresh r;
	const char *scope[6];
	const char *dedup[6];
	size_t ndedup;
	struct fam fam;
	bool bad, huge, null;
};

static void pick_refresh(struct in *in, struct rrec *x)
{
	uint8_t v = u8(in), f = u8(in);
	x->fam = pick_fam(in);
	once_refresh *r = &x->r;
	memset(r, 0, sizeof *r);
	r->family_id = x->fam.text;
	r->subject = subjects[f & 3];
	r->expires_at = pick_time(in, sat_add(g_now, 600));
	r->generation = (int8_t)u8(in);
	r->client_id = (f & 4) ? "client" : NULL;
	size_t n = (f >> 3) % 7;
	for (size_t i = 0; i < n; i++)
		x->scope[i] = scope_pool[(i + (f >> 6)) % 6];
	r->scope = n ? x->scope : NULL;
	r->scope_count = n;
	x->ndedup = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < x->ndedup; j++)
			dup |= strcmp(x->dedup[j], x->scope[i]) == 0;
		if (!dup)
			x->dedup[x->ndedup++] = x->scope[i];
	}
	int claims = (v >> 4) & 3;
	r->claims = claims ? pattern : NULL;
	r->claims_len = (size_t)claims * 5;
	r->inserted_at = (int64_t)v * 1000003; /* ignored */
	x->bad = true;
	x->huge = false;
	x->null = false;
	switch (v % 16) {
	case 7: r->consumed = true; break;
	case 8: r->revoked = true; break;
	case 9: r->consumed_at = 1; break;
	case 10: r->successor = pattern; r->successor_len = 1; break;
	case 11: r->successor_len = 3; break;
	case 12: r->claims = NULL; r->claims_len = 2; break;
	case 13: r->subject = NULL; break;
	case 14: r->scope = NULL; r->scope_count = 2; break;
	case 15:
		r->claims = huge;
		r->claims_len = C.max_record_len + 1;
		x->bad = false;
		x->huge = true;
		break;
	default: x->bad = (v & 0xc0) == 0xc0 && (v % 16) == 0; x->null = x->bad; break;
	}
	if (x->fam.slot < 0 || exp_bad(r->expires_at))
		x->bad = true;
}

static void refresh_store(int slot, const struct rrec *x, uint64_t inc)
{
	struct m_refresh *m = &M.ref[slot];
	memset(m, 0, sizeof *m);
	m->present = true;
	m->fam = x->fam.slot;
	m->inc = inc;
	m->exp = x->r.expires_at;
	m->inserted_at = NOW;
	m->generation = x->r.generation;
	for (int i = 0; i < 4; i++)
		if (x->r.subject == subjects[i])
			m->subj = i;
	m->claims_len = (int)x->r.claims_len;
	m->nscope = x->ndedup;
	for (size_t i = 0; i < x->ndedup; i++)
		m->scope[i] = x->dedup[i];
}

static void op_refresh_insert(struct in *in)
{
	g_op = "refresh_insert";
	struct key k = pick_key(in);
	struct rrec x;
	pick_refresh(in, &x);
	once_status want;
	if (k.slot < 0 || x.bad || x.huge)
		want = ONCE_INVALID;
	else if (M.rfam[x.fam.slot].present && M.rfam[x.fam.slot].revoked)
		want = ONCE_REVOKED;
	else if (M.ref[k.slot].present)
		want = ONCE_EXISTS;
	else if (n_refresh() >= C.max_refresh || !fam_hold_ok(M.rfam, x.fam.slot, 2 * C.max_refresh))
		want = ONCE_FULL;
	else
		want = ONCE_OK;
	enum rule r = time_rule(want != ONCE_INVALID && (t_out(g_now) || t_out(x.r.expires_at)));
	trace("refresh_insert key=%d fam=%d exp=%" PRId64 " -> want %s", k.slot, x.fam.slot,
	      x.r.expires_at, sname(want));
	once_status st = once_refresh_insert(S, k.p, k.len, x.null ? NULL : &x.r);
	count(ONCE_OP_REFRESH_INSERT, st);
	if (expect(st, want, r) && want == ONCE_OK) {
		fam_hold(M.rfam, x.fam.slot, x.r.expires_at);
		refresh_store(k.slot, &x, M.rfam[x.fam.slot].inc);
	}
}

static void op_refresh_get(struct in *in, bool consume)
{
	g_op = consume ? "refresh_consume" : "refresh_get";
	struct key k = pick_key(in);
	bool want_out = u8(in) & 1;
	once_status want;
	if (k.slot < 0)
		want = ONCE_INVALID;
	else if (!live_refresh(k.slot))
		want = ONCE_NOT_FOUND;
	else if (consume && M.ref[k.slot].consumed)
		want = ONCE_SPENT;
	else
		want = ONCE_OK;
	trace("%s key=%d -> want %s", g_op, k.slot, sname(want));
	once_refresh *out = NULL;
	once_status st = consume ? once_refresh_consume(S, k.p, k.len, want_out ? &out : NULL)
	                         : once_refresh_get(S, k.p, k.len, want_out ? &out : NULL);
	count(consume ? ONCE_OP_REFRESH_CONSUME : ONCE_OP_REFRESH_GET, st);
	if (expect(st, want, time_rule(t_out(g_now))) && (want == ONCE_OK || want == ONCE_SPENT)) {
		struct m_refresh *m = &M.ref[k.slot];
		if (want_out)
			check_refresh(out, m, consume && want == ONCE_OK);
		if (consume && want == ONCE_OK) {
			m->consumed = true;
			m->consumed_at = NOW;
			m->has_succ = false;
		}
	} else {
		CHECK(out == NULL, "%s: out set on %s", g_op, sname(st));
	}
	once_free(out);
}

/* A successor payload: bytes, NULL with a length, empty, or too long. */
struct payload {
	const void *p;
	size_t n;
	bool bad;
};

static struct payload pick_payload(struct in *in, bool optional)
{
	uint8_t sel = u8(in);
	if (optional && sel < 64)
		return (struct payload){NULL, 0, false};
	switch (sel % 8) {
	case 0: return (struct payload){NULL, 4, true};
	case 1: return (struct payload){pattern + 1, 0, !optional};
	case 2: return (struct payload){huge, C.max_record_len + 1, true};
	default: return (struct payload){pattern + (sel & 15), 1 + sel % 48, false};
	}
}

static void op_refresh_successor(struct in *in)
{
	g_op = "refresh_remember_successor";
	struct key k = pick_key(in);
	struct payload p = pick_payload(in, false);
	once_status want;
	if (k.slot < 0 || p.bad)
		want = ONCE_INVALID;
	else if (!C.has_key)
		want = ONCE_NO_KEY;
	else if (!live_refresh(k.slot) || !M.ref[k.slot].consumed)
		want = ONCE_NOT_FOUND;
	else
		want = ONCE_OK;
	trace("remember_successor key=%d n=%zu -> want %s", k.slot, p.n, sname(want));
	once_status st = once_refresh_remember_successor(S, k.p, k.len, p.p, p.n);
	count(ONCE_OP_REFRESH_SUCCESSOR, st);
	if (expect(st, want, time_rule(want != ONCE_INVALID && t_out(g_now))) && want == ONCE_OK) {
		struct m_refresh *m = &M.ref[k.slot];
		m->has_succ = true;
		m->succ_len = p.n;
		memcpy(m->succ, p.p, p.n);
	}
}

static void op_refresh_rotate(struct in *in)
{
	g_op = "refresh_rotate";
	struct key pk = pick_key(in), ck = pick_key(in);
	struct rrec x;
	pick_refresh(in, &x);
	struct payload p = pick_payload(in, true);
	bool want_out = u8(in) & 1;
	bool has_payload = p.p != NULL || p.n > 0;
	once_status want;
	struct m_refresh *par = pk.slot >= 0 ? &M.ref[pk.slot] : NULL;
	if (pk.slot < 0 || ck.slot < 0 || x.bad || x.null || p.bad || pk.slot == ck.slot)
		want = ONCE_INVALID;
	else if (has_payload && !C.has_key)
		want = ONCE_NO_KEY;
	else if (x.huge)
		want = ONCE_INVALID;
	else if (!live_refresh(pk.slot))
		want = ONCE_NOT_FOUND;
	else if (par->fam != x.fam.slot)
		want = ONCE_INVALID;
	else if (par->consumed)
		want = ONCE_SPENT;
	else if (M.ref[ck.slot].present)
		want = ONCE_EXISTS;
	else if (n_refresh() >= C.max_refresh)
		want = ONCE_FULL;
	else
		want = ONCE_OK;
	enum rule r = time_rule(want != ONCE_INVALID && (t_out(g_now) || t_out(x.r.expires_at)));
	trace("refresh_rotate parent=%d child=%d fam=%d exp=%" PRId64 " payload=%zu -> want %s", pk.slot,
	      ck.slot, x.fam.slot, x.r.expires_at, p.n, sname(want));
	once_refresh *out = NULL;
	once_status st = once_refresh_rotate(S, pk.p, pk.len, ck.p, ck.len, x.null ? NULL : &x.r, p.p,
	                                     p.n, want_out ? &out : NULL);
	count(ONCE_OP_REFRESH_ROTATE, st);
	if (expect(st, want, r) && (want == ONCE_OK || want == ONCE_SPENT)) {
		if (want_out)
			check_refresh(out, par, want == ONCE_OK);
		if (want == ONCE_OK) {
			uint64_t inc = par->inc;
			fam_hold(M.rfam, x.fam.slot, x.r.expires_at);
			par->consumed = true;
			par->consumed_at = NOW;
			par->has_succ = has_payload;
			par->succ_len = p.n;
			if (p.n)
				memcpy(par->succ, p.p, p.n);
			refresh_store(ck.slot, &x, inc);
		}
	} else {
		CHECK(out == NULL, "rotate: out set on %s", sname(st));
	}
	once_free(out);
}

static bool b64url(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			return false;
	}
	return s[n] == '\0';
}

static void op_nonce_issue(struct in *in)
{
	g_op = "nonce_issue";
	int64_t ttl = pick_ttl(in, g_now);
	bool null_out = u8(in) == 0xff;
	once_status want;
	if (null_out || ttl_bad(ttl) || add_bad(ttl) || C.max_key_len < ONCE_NONCE_LEN)
		want = ONCE_INVALID;
	else if (n_nonces() >= C.max_nonces)
		want = ONCE_FULL;
	else
		want = ONCE_OK;
	int64_t exp = want == ONCE_OK ? add_ttl(ttl) : 0;
	enum rule r = time_rule(want != ONCE_INVALID && (t_out(g_now) || t_out(exp)));
	trace("nonce_issue ttl=%" PRId64 " -> want %s", ttl, sname(want));
	char out[ONCE_NONCE_LEN + 1];
	memset(out, 0x5a, sizeof out);
	once_status st = once_nonce_issue(S, ttl, null_out ? NULL : out);
	count(ONCE_OP_NONCE_ISSUE, st);
	if (expect(st, want, r) && want == ONCE_OK) {
		CHECK(b64url(out, ONCE_NONCE_LEN), "nonce_issue: not 43 base64url characters");
		int slot = -1;
		for (int i = 0; i < NN && slot < 0; i++)
			if (!M.nonce[i].tracked || !M.nonce[i].present)
				slot = i;
		CHECK(slot >= 0, "nonce model full");
		M.nonce[slot] = (struct m_nonce){.tracked = true, .present = true, .issued = NOW, .exp = exp};
		memcpy(M.nonce[slot].text, out, sizeof out);
	} else if (!null_out) {
		for (size_t i = 0; i < sizeof out; i++)
			CHECK(out[i] == 0x5a, "nonce_issue: out touched on %s", sname(st));
	}
}

/* A nonce to present: a tracked one (present or gone), a made-up one, a
 * shortened one, or a bad key. */
struct nkey {
	const void *p;
	size_t len;
	int slot;  /* tracked slot, or -1 */
	bool bad;  /* key invalid */
};

static struct nkey pick_nonce(struct in *in)
{
	static char madeup[ONCE_NONCE_LEN + 1] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	uint8_t sel = u8(in);
	int i = sel % NN;
	bool bad_len = ONCE_NONCE_LEN > C.max_key_len;
	if (sel < 192) {
		for (int j = 0; j < NN; j++) {
			int t = (i + j) % NN;
			if (M.nonce[t].tracked)
				return (struct nkey){M.nonce[t].text, ONCE_NONCE_LEN, t, bad_len};
		}
	}
	if (sel < 224)
		return (struct nkey){madeup, ONCE_NONCE_LEN, -1, bad_len};
	if (sel < 240 && M.nonce[i].tracked)
		return (struct nkey){M.nonce[i].text, ONCE_NONCE_LEN - 1, -1, ONCE_NONCE_LEN - 1 > C.max_key_len};
	struct key k = pick_key(in);
	return (struct nkey){k.p, k.len, -1, k.slot < 0};
}

static void op_nonce_valid(struct in *in)
{
	g_op = "nonce_valid";
	struct nkey k = pick_nonce(in);
	bool want = false;
	if (!k.bad && k.slot >= 0) {
		const struct m_nonce *n = &M.nonce[k.slot];
		want = n->present && !n->used && n->exp > NOW;
	}
	trace("nonce_valid slot=%d -> want %d", k.slot, want);
	bool got = once_nonce_valid(S, k.p, k.len);
	count(ONCE_OP_NONCE_VALID, k.bad ? ONCE_INVALID : got ? ONCE_OK : ONCE_NOT_FOUND);
	if (got != want) {
		CHECK(!HAVE_TIME_RANGE && !got && t_out(g_now), "got %d, want %d", got, want);
		g_ops_fuzzy[ONCE_OP_NONCE_VALID] = true;
	}
}

static void op_nonce_accept(struct in *in)
{
	g_op = "nonce_accept";
	struct nkey k = pick_nonce(in);
	int64_t ttl = pick_ttl(in, g_now);
	once_status want;
	struct m_nonce *n = k.slot >= 0 ? &M.nonce[k.slot] : NULL;
	if (ttl_bad(ttl) || k.bad)
		want = ONCE_INVALID;
	else if (!n || !n->present)
		want = ONCE_NOT_FOUND;
	else if (n->used)
		want = ONCE_SPENT;
	else if ((NOW > n->issued && (uint64_t)NOW - (uint64_t)n->issued > (uint64_t)ttl) ||
	         n->exp < NOW)
		want = ONCE_EXPIRED;
	else
		want = ONCE_OK;
	trace("nonce_accept slot=%d ttl=%" PRId64 " -> want %s", k.slot, ttl, sname(want));
	once_status st = once_nonce_accept(S, k.p, k.len, ttl);
	count(ONCE_OP_NONCE_ACCEPT, st);
	if (expect(st, want, time_rule(want != ONCE_INVALID && t_out(g_now))) && want == ONCE_OK)
		n->used = true;
}

/* async: the _async form, whose ticket must be > 0 exactly when the call
 * logged something (OK with a data directory) and then become durable;
 * the ticket calls are poked with hostile values on the way. */
static void op_replay(struct in *in, bool async)
{
	g_op = async ? "replay_check_async" : "replay_check";
	struct key k = pick_key(in);
	int64_t ttl = pick_ttl(in, g_now);
	once_status want;
	if (ttl_bad(ttl) || k.slot < 0 || add_bad(ttl))
		want = ONCE_INVALID;
	else if (M.rep[k.slot].present)
		want = ONCE_SPENT;
	else if (n_replays() >= C.max_replays)
		want = ONCE_FULL;
	else
		want = ONCE_OK;
	int64_t exp = want == ONCE_OK ? add_ttl(ttl) : 0;
	enum rule r = time_rule(want != ONCE_INVALID && (t_out(g_now) || t_out(exp)));
	trace("replay_check jti=%d ttl=%" PRId64 " -> want %s", k.slot, ttl, sname(want));
	once_ticket t = 77;
	once_status st = async ? once_replay_check_async(S, k.p, k.len, ttl, &t)
	                       : once_replay_check(S, k.p, k.len, ttl);
	if (async) {
		bool logged = st == ONCE_OK && C.dir;
		CHECK(logged ? t > 0 : t == 0, "replay_check_async: %s with ticket %" PRIu64, sname(st), t);
		once_ticket upto = 0;
		CHECK(once_tickets_durable(S, &upto) == ONCE_OK, "once_tickets_durable");
		if (logged)
			CHECK(once_ticket_wait(S, t) == ONCE_OK, "once_ticket_wait(%" PRIu64 ")", t);
		CHECK(once_ticket_wait(S, 0) == ONCE_OK, "once_ticket_wait(0)");
		CHECK(once_ticket_wait(S, t + (1u << 30)) == ONCE_INVALID, "once_ticket_wait of a ticket never handed out");
		CHECK(once_ticket_wait(S, UINT64_MAX) == ONCE_INVALID, "once_ticket_wait(UINT64_MAX)");
		int fd = (int)(u16(in) % 4096) - 1; /* -1 .. 4094: never one of the store's */
		once_status dst = once_tickets_drain(S, fd, &upto);
		CHECK(dst == (fd < 0 ? ONCE_OK : ONCE_INVALID), "once_tickets_drain(fd %d): %s", fd, sname(dst));
		CHECK(once_replay_check_async(S, k.p, k.len, ttl, NULL) == ONCE_INVALID, "a NULL ticket");
	}
	count(ONCE_OP_REPLAY_CHECK, st);
	if (expect(st, want, r) && want == ONCE_OK)
		M.rep[k.slot] = (struct m_replay){true, exp};
}

static void op_sweep(struct in *in)
{
	g_op = "sweep";
	bool with_out = u8(in) & 1;
	uint64_t want[5] = {0};
	int64_t now = NOW;
	for (int i = 0; i < NK; i++) {
		if (M.code[i].present && M.code[i].exp < now)
			M.code[i].present = false, want[0]++;
		if (M.acc[i].present && M.acc[i].exp < now)
			M.acc[i].present = false, want[1]++;
		if (M.ref[i].present && M.ref[i].exp < now)
			M.ref[i].present = false, want[2]++;
		if (M.rep[i].present && M.rep[i].exp < now)
			M.rep[i].present = false, want[4]++;
	}
	for (int i = 0; i < NN; i++)
		if (M.nonce[i].present && M.nonce[i].exp < now)
			M.nonce[i].present = false, want[3]++;
	for (int i = 0; i < NF; i++) {
		if (M.afam[i].present && M.afam[i].exp < now)
			M.afam[i].present = false;
		if (M.rfam[i].present && M.rfam[i].exp < now)
			M.rfam[i].present = false;
	}
	trace("sweep -> want %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, want[0], want[1],
	      want[2], want[3], want[4]);
	once_sweep_counts c;
	memset(&c, 0xa5, sizeof c);
	once_status st = once_sweep(S, with_out ? &c : NULL);
	CHECK(st == ONCE_OK, "sweep: %s", sname(st));
	M.sweeps++;
	for (int i = 0; i < 5; i++)
		M.swept[i] += want[i];
	if (with_out) {
		CHECK(c.codes == want[0] && c.access_tokens == want[1] && c.refresh == want[2] &&
		              c.nonces == want[3] && c.replays == want[4],
		      "sweep counts %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, c.codes,
		      c.access_tokens, c.refresh, c.nonces, c.replays);
		CHECK(c.examined >= c.codes + c.access_tokens + c.refresh + c.nonces + c.replays,
		      "sweep examined");
	}
}

static void check_kind(const char *name, const once_kind_stats *k, uint64_t entries, uint64_t cap,
                       uint64_t swept)
{
	CHECK(k->entries == entries && k->capacity == cap && k->swept == swept,
	      "stats %s: entries %" PRIu64 "/%" PRIu64 " capacity %" PRIu64 "/%" PRIu64 " swept %" PRIu64
	      "/%" PRIu64,
	      name, k->entries, entries, k->capacity, cap, k->swept, swept);
}

static void dump_line(void *ctx, const char *line)
{
	(void)line;
	++*(uint64_t *)ctx;
}

static void op_stats(void)
{
	g_op = "stats";
	struct once_stats st;
	once_stats(S, &st);
	check_kind("codes", &st.codes, n_codes(), C.max_codes, M.swept[0]);
	check_kind("access_tokens", &st.access_tokens, n_access(), C.max_access, M.swept[1]);
	check_kind("refresh", &st.refresh, n_refresh(), C.max_refresh, M.swept[2]);
	check_kind("nonces", &st.nonces, n_nonces(), C.max_nonces, M.swept[3]);
	check_kind("replays", &st.replays, n_replays(), C.max_replays, M.swept[4]);
	CHECK(st.sweeps == M.sweeps, "stats sweeps");
	for (int op = 0; op < ONCE_OP_COUNT; op++)
		for (int s = 0; s < ONCE_STATUS_COUNT && !g_ops_fuzzy[op]; s++)
			CHECK(st.ops[op][s] == M.ops[op][s], "stats ops[%s][%s] %" PRIu64 " != %" PRIu64,
			      once_op_name((once_op)op), sname((once_status)s), st.ops[op][s], M.ops[op][s]);
	/* Every committed entry, families included, is one dump line. */
	uint64_t lines = 0;
	uint64_t n = once__dump(S, dump_line, &lines);
	uint64_t want = n_codes() + n_access() + n_refresh() + n_nonces() + n_replays() +
	                n_fams(M.afam) + n_fams(M.rfam);
	CHECK(n == lines && n == want, "dump: %" PRIu64 " lines, want %" PRIu64, n, want);
}

static void op_checkpoint(void)
{
	g_op = "checkpoint";
	once_status st = once_checkpoint(S);
	trace("checkpoint -> %s", sname(st));
	CHECK(st == (C.dir ? ONCE_OK : ONCE_INVALID), "checkpoint: %s", sname(st));
}

static void op_reopen(void)
{
	g_op = "reopen";
	trace("reopen");
	once_status st = once_close(S);
	S = NULL;
	CHECK(st == ONCE_OK, "close: %s", sname(st));
	store_open();
	model_reopen();
	op_stats();
}

static void op_clock(struct in *in)
{
	int64_t t = pick_time(in, g_now);
	if (g_avoid_known) {
		const int64_t lim = INT64_C(1) << 61;
		t = t < -lim ? -lim : t > lim ? lim : t;
	}
	if (C.dir && t < g_now)
		t = g_now; /* see the header comment: forward only */
	g_now = t;
	trace("clock");
}

static const char *const status_names[] = {
#define N(name, msg) #name,
	ONCE_STATUS_MAP(N)
#undef N
};
static const char *const status_msgs[] = {
#define N(name, msg) msg,
	ONCE_STATUS_MAP(N)
#undef N
};

static void b64url_encode32(const unsigned char in[32], char out[ONCE_SECRET_LEN + 1])
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (int i = 0; i < 32; i++) {
		acc = acc << 8 | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = al[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = al[(acc << (6 - bits)) & 63];
	out[o] = '\0';
}

static void op_helpers(struct in *in)
{
	g_op = "helpers";
	uint8_t sel = u8(in);
	int v = (int)(int32_t)(u16(in) | (uint32_t)u16(in) << 16);
	if (sel & 1)
		v = (int)(sel >> 1) - 20; /* near the enum */
	const char *e = once_strerror((once_status)v), *n = once_status_name((once_status)v);
	const char *o = once_op_name((once_op)v);
	CHECK(e && n && o, "helpers: NULL string");
	if (v >= 0 && v < ONCE_STATUS_COUNT)
		CHECK(strcmp(n, status_names[v]) == 0 && strcmp(e, status_msgs[v]) == 0, "status %d", v);
	else
		CHECK(strcmp(n, "UNKNOWN") == 0 && strcmp(e, "unknown status") == 0, "status %d", v);
	if (v < 0 || v >= ONCE_OP_COUNT)
		CHECK(strcmp(o, "unknown") == 0, "op name %d", v);
	else
		CHECK(strcmp(o, "unknown") != 0, "op name %d", v);

	char out[ONCE_SECRET_LEN + 1];
	CHECK(once_secret_generate(NULL) == ONCE_INVALID, "secret_generate(NULL)");
	CHECK(once_secret_generate(out) == ONCE_OK && b64url(out, ONCE_SECRET_LEN), "secret_generate");
	size_t len = u8(in);
	const unsigned char *secret = len > in->n ? pattern : in->p;
	if (sel & 2)
		secret = NULL;
	once_status st = once_secret_hash(secret, len, out);
	if (secret == NULL && len > 0) {
		CHECK(st == ONCE_INVALID, "secret_hash(NULL, %zu)", len);
	} else {
		unsigned char h[32];
		crypto_hash_sha256(h, secret ? secret : (const unsigned char *)"", len);
		char ref[ONCE_SECRET_LEN + 1];
		b64url_encode32(h, ref);
		CHECK(st == ONCE_OK && strcmp(out, ref) == 0, "secret_hash: %s vs %s", out, ref);
	}
	CHECK(once_secret_hash(pattern, 3, NULL) == ONCE_INVALID, "secret_hash out NULL");
}

/* Every call with a NULL store: INVALID, false, nothing. */
static void op_null_store(void)
{
	g_op = "null store";
	once_code c = {0};
	once_refresh r = {0};
	char nonce[ONCE_NONCE_LEN + 1];
	struct once_stats st;
	once_sweep_counts sc;
	CHECK(once_code_put(NULL, "k", 1, &c) == ONCE_INVALID, "put");
	CHECK(once_code_get(NULL, "k", 1, NULL) == ONCE_INVALID, "get");
	CHECK(once_code_take(NULL, "k", 1, NULL, NULL) == ONCE_INVALID, "take");
	CHECK(once_code_finalize(NULL, "k", 1) == ONCE_INVALID, "finalize");
	CHECK(once_code_record_access_token(NULL, "f", 1, "j", 1, 5) == ONCE_INVALID, "record");
	CHECK(once_code_revoke_family_access_tokens(NULL, "f", 1) == ONCE_INVALID, "revoke");
	CHECK(!once_access_token_revoked(NULL, "j", 1), "revoked");
	CHECK(once_refresh_insert(NULL, "k", 1, &r) == ONCE_INVALID, "insert");
	CHECK(once_refresh_get(NULL, "k", 1, NULL) == ONCE_INVALID, "rget");
	CHECK(once_refresh_consume(NULL, "k", 1, NULL) == ONCE_INVALID, "consume");
	CHECK(once_refresh_remember_successor(NULL, "k", 1, "x", 1) == ONCE_INVALID, "succ");
	CHECK(once_refresh_rotate(NULL, "k", 1, "l", 1, &r, NULL, 0, NULL) == ONCE_INVALID, "rotate");
	CHECK(once_refresh_revoke_family(NULL, "f", 1) == ONCE_INVALID, "rrevoke");
	CHECK(once_nonce_issue(NULL, 5, nonce) == ONCE_INVALID, "issue");
	CHECK(!once_nonce_valid(NULL, "n", 1), "valid");
	CHECK(once_nonce_accept(NULL, "n", 1, 5) == ONCE_INVALID, "accept");
	CHECK(once_replay_check(NULL, "j", 1, 5) == ONCE_INVALID, "replay");
	CHECK(once_sweep(NULL, &sc) == ONCE_INVALID, "sweep");
	CHECK(once_checkpoint(NULL) == ONCE_INVALID, "checkpoint");
	CHECK(once_close(NULL) == ONCE_INVALID, "close");
	once_stats(NULL, &st);
	once_stats(S, NULL);
	once_free(NULL);
	once_options_init(NULL);
	CHECK(once_open(NULL, NULL) == ONCE_INVALID && once_open(&C.o, NULL) == ONCE_INVALID, "open NULL");
}

/* Options with one field at a boundary: INVALID exactly when out of range
 * (a valid one is opened and closed: small capacities only). */
static void op_options(struct in *in)
{
	g_op = "options";
	once_options o;
	once_options_init(&o);
	o.max_codes = o.max_access_tokens = o.max_refresh = o.max_nonces = o.max_replays = 4;
	o.shards = 1;
	o.sweep_interval_ms = (u8(in) & 1) ? 0 : 1000;
	o.clock = fake_clock;
	uint8_t field = u8(in), which = u8(in);
	bool ok = true;
	switch (field % 8) {
	case 0: {
		uint32_t v[] = {0, 1, 3, 4097, UINT32_MAX};
		o.shards = v[which % 5];
		ok = o.shards <= 4096;
		break;
	}
	case 1: {
		uint64_t v[] = {0, 1, (UINT64_C(1) << 36) + 1, UINT64_MAX};
		uint64_t *f[] = {&o.max_codes, &o.max_access_tokens, &o.max_refresh, &o.max_nonces,
		                 &o.max_replays};
		*f[(which >> 2) % 5] = v[which & 3];
		ok = v[which & 3] == 1;
		break;
	}
	case 2: {
		uint32_t v[] = {0, 1, 65535, 65536, UINT32_MAX};
		o.max_key_len = v[which % 5];
		ok = o.max_key_len >= 1 && o.max_key_len <= 65535;
		break;
	}
	case 3: {
		uint32_t v[] = {0, (uint32_t)sizeof(once_refresh) - 1, (uint32_t)sizeof(once_refresh),
		                16u << 20, (16u << 20) + 1};
		o.max_record_len = v[which % 5];
		ok = o.max_record_len >= sizeof(once_refresh) && o.max_record_len <= (16u << 20);
		break;
	}
	case 4:
		o.revocation_ttl = pick_time(in, 0);
		ok = o.revocation_ttl >= 0 && (!HAVE_TIME_RANGE || o.revocation_ttl <= TTL_MAX);
		break;
	case 5:
		o.sync = (once_sync_mode)(which % 5);
		ok = which % 5 <= ONCE_SYNC_NONE;
		break;
	case 6:
		o.successor_key = succ_key;
		break;
	default:
		break;
	}
	once_store *s = NULL;
	once_status st = once_open(&o, &s);
	trace("options field=%u which=%u -> %s", field % 8, which, sname(st));
	CHECK(st == (ok ? ONCE_OK : ONCE_INVALID), "once_open: %s, want %s", sname(st),
	      ok ? "OK" : "INVALID");
	if (s != NULL)
		close_later(s);
}

/* ---- closing memory-only stores in the background ----
 *
 * once_close waits for liburcu's grace periods (urcu_bp_barrier), about
 * 10 ms each; closing every input's store inline would cap the fuzzer at
 * ~100 inputs/s.  A memory-only store is handed to a pool of closer
 * threads instead (the harness never touches it again, as the API asks),
 * whose barriers overlap: ~3000 inputs/s.  Its close status is still
 * checked.  Stores with a data directory are closed inline (the next
 * input reuses the directory).
 */
#define CLOSERS 32
#define CLOSE_QUEUE 128
static once_store *close_q[CLOSE_QUEUE];
static unsigned close_head, close_tail;
static pthread_mutex_t close_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t close_more = PTHREAD_COND_INITIALIZER, close_room = PTHREAD_COND_INITIALIZER;

static void *closer_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&close_lock);
		while (close_head == close_tail)
			pthread_cond_wait(&close_more, &close_lock);
		once_store *s = close_q[close_head++ % CLOSE_QUEUE];
		pthread_cond_signal(&close_room);
		pthread_mutex_unlock(&close_lock);
		once_status st = once_close(s);
		if (st != ONCE_OK) {
			fprintf(stderr, "fuzz_api: MISMATCH: background once_close: %s\n", sname(st));
			abort();
		}
	}
	return NULL;
}

static int g_inline; /* running given files: close inline */

static void close_later(once_store *s)
{
	if (g_inline) {
		once_status st = once_close(s);
		CHECK(st == ONCE_OK, "once_close: %s", sname(st));
		return;
	}
	pthread_mutex_lock(&close_lock);
	while (close_tail - close_head >= CLOSE_QUEUE)
		pthread_cond_wait(&close_room, &close_lock);
	close_q[close_tail++ % CLOSE_QUEUE] = s;
	pthread_cond_signal(&close_more);
	pthread_mutex_unlock(&close_lock);
}

static void closers_start(void)
{
	for (int i = 0; i < CLOSERS; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, closer_main, NULL) != 0) {
			perror("pthread_create");
			abort();
		}
		pthread_detach(t);
	}
}

/* ---- the target ---- */

/* True when libFuzzer was given files to run (not a corpus directory). */
static bool running_files(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		struct stat sb;
		if (argv[i][0] != '-' && stat(argv[i], &sb) == 0 && S_ISREG(sb.st_mode))
			return true;
	}
	return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_inline = running_files(*argc, *argv);
	g_trace = getenv("FUZZ_TRACE") != NULL && atoi(getenv("FUZZ_TRACE")) != 0;
	g_avoid_known = getenv("FUZZ_AVOID_KNOWN") != NULL && atoi(getenv("FUZZ_AVOID_KNOWN")) != 0;
	for (size_t i = 0; i < sizeof pattern; i++)
		pattern[i] = (unsigned char)(i * 37 + 11);
	memset(huge, 'h', sizeof huge);
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(g_tmp, sizeof g_tmp, "%s/fuzz_api.XXXXXX", base ? base : "/tmp");
	if (mkdtemp(g_tmp) == NULL) {
		perror("mkdtemp");
		abort();
	}
	snprintf(g_dir, sizeof g_dir, "%s/store", g_tmp);
	closers_start();
	return 0;
}

__attribute__((destructor)) static void cleanup(void)
{
	if (g_dir[0]) {
		rm_dir_files(g_dir);
		rmdir(g_dir);
		rmdir(g_tmp);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = {data, size};
	memset(&M, 0, sizeof M);
	memset(&C, 0, sizeof C);
	memset(g_ops_fuzzy, 0, sizeof g_ops_fuzzy);
	g_opi = 0;
	g_op = "setup";

	uint8_t a = u8(&in), b = u8(&in);
	C.dir = (a & 15) == 15;
	C.has_key = ((a >> 4) & 3) != 3;
	C.max_codes = 1 + (b & 7);
	C.max_access = 1 + ((b >> 3) & 3);
	C.max_refresh = 1 + ((b >> 5) & 7);
	C.max_nonces = 1 + (a >> 5);
	C.max_replays = 1 + ((a >> 4) & 1) * 5 + (b & 1);
	static const uint32_t klen[4] = {43, 16, 64, 42};
	C.max_key_len = klen[(a >> 6) & 3];
	C.max_record_len = 1024;
	uint8_t ttl_sel = u8(&in);
	C.revocation_ttl = ttl_sel < 128 ? ttl_sel * 100 : ttl_sel < 192 ? 86400 : pick_time(&in, 86400);
	bool ttl_ok = C.revocation_ttl >= 0 && (!HAVE_TIME_RANGE || C.revocation_ttl <= TTL_MAX);
	g_now = 1700000000;
	if (u8(&in) & 1)
		op_clock(&in);

	once_options_init(&C.o);
	C.o.dir = C.dir ? g_dir : NULL;
	C.o.shards = 1 + (b >> 6);
	C.o.sync = ONCE_SYNC_NONE;
	C.o.checkpoint_bytes = UINT64_MAX;
	C.o.max_codes = C.max_codes;
	C.o.max_access_tokens = C.max_access;
	C.o.max_refresh = C.max_refresh;
	C.o.max_nonces = C.max_nonces;
	C.o.max_replays = C.max_replays;
	C.o.max_key_len = C.max_key_len;
	C.o.max_record_len = C.max_record_len;
	C.o.sweep_interval_ms = 0;
	C.o.revocation_ttl = C.revocation_ttl;
	C.o.successor_key = C.has_key ? succ_key : NULL;
	C.o.clock = fake_clock;
	keys_init();
	if (C.dir)
		rm_dir_files(g_dir);
	trace("open dir=%d key=%d caps=%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
	      " max_key_len=%u shards=%u revocation_ttl=%" PRId64,
	      C.dir, C.has_key, C.max_codes, C.max_access, C.max_refresh, C.max_nonces, C.max_replays,
	      C.max_key_len, C.o.shards, C.revocation_ttl);
	once_status st = once_open(&C.o, &S);
	if (!ttl_ok) {
		CHECK(st == ONCE_INVALID, "once_open with revocation_ttl %" PRId64 ": %s", C.revocation_ttl,
		      sname(st));
		if (S != NULL)
			once_close(S);
		S = NULL;
		return 0;
	}
	CHECK(st == ONCE_OK, "once_open: %s", sname(st));

	unsigned reopens = 0;
	while (in.n > 0 && g_opi < 400) {
		g_opi++;
		uint8_t op = u8(&in);
		switch (op % 25) {
		case 0: op_code_put(&in); break;
		case 1: op_code_get(&in); break;
		case 2: op_code_take(&in); break;
		case 3: op_code_finalize(&in); break;
		case 4: op_access_record(&in); break;
		case 5: op_revoke(&in, false); break;
		case 6: op_access_revoked(&in); break;
		case 7: op_refresh_insert(&in); break;
		case 8: op_refresh_get(&in, false); break;
		case 9: op_refresh_get(&in, true); break;
		case 10: op_refresh_successor(&in); break;
		case 11: op_refresh_rotate(&in); break;
		case 12: op_revoke(&in, true); break;
		case 13: op_nonce_issue(&in); break;
		case 14: op_nonce_valid(&in); break;
		case 15: op_nonce_accept(&in); break;
		case 16: op_replay(&in, false); break;
		case 17: op_sweep(&in); break;
		case 18: op_clock(&in); break;
		case 19: op_stats(); break;
		case 20: op_checkpoint(); break;
		case 21:
			if (C.dir && reopens < 4) {
				reopens++;
				op_reopen();
			} else {
				op_helpers(&in);
			}
			break;
		case 22: op_options(&in); break;
		case 23: op_replay(&in, true); break;
		default: op_null_store(); break;
		}
	}
	op_stats();
	g_op = "close";
	if (C.dir) {
		st = once_close(S);
		CHECK(st == ONCE_OK, "once_close: %s", sname(st));
	} else {
		close_later(S);
	}
	S = NULL;
	return 0;
}
