/*
 * tests/test_random.c - the per-thread CSPRNG (core/random.c R1-R6) and the
 * counter-nonce seal (core/seal.c S1-S3).
 *
 * Covers: a fork child never repeats its parent's stream (R5) - from the
 * main thread and from another thread, at every position in the buffer,
 * right after seeding with nothing drawn, and a grandchild; threads draw
 * distinct output concurrently (R4, also the TSan build's race check);
 * output that looks random (bit and byte balance, no zero draws), draws of
 * odd lengths across refills that never repeat a 32-byte window, output
 * past the reseed bound (R3); the seal is XChaCha20-Poly1305 byte for byte
 * (S1), its counter advances and wraps without repeating (S2), stores
 * sharing a key open each other's blobs (also through a log and a reopen,
 * with the public API), older random-nonce blobs still open, tampering
 * fails, and the subkey is wiped.
 *
 * White-box: once__random, once__seal and struct once_store's sealing state.
 * The fork tests fail when both fork guards of random.c are removed (each
 * one alone suffices); that was checked by disabling them.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>

#include "durable.h"
#include "harness.h"
#include "internal.h"

/* ---- helpers ---- */

static void read_all(int fd, void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		ASSERT(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

/* True when some 32-byte window of a (alen bytes) equals one of b. */
static bool share_window(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
	if (alen < 32 || blen < 32)
		return false;
	for (size_t i = 0; i + 32 <= alen; i++)
		for (size_t j = 0; j + 32 <= blen; j++)
			if (a[i] == b[j] && memcmp(a + i, b + j, 32) == 0)
				return true;
	return false;
}

static int cmp32(const void *x, const void *y)
{
	return memcmp(x, y, 32);
}

/* All n 32-byte records of v are distinct (sorts v). */
static bool all_distinct32(unsigned char *v, size_t n)
{
	qsort(v, n, 32, cmp32);
	for (size_t i = 1; i < n; i++)
		if (memcmp(v + 32 * (i - 1), v + 32 * i, 32) == 0)
			return false;
	return true;
}

/* ---- fork (R5) ---- */

#define CHILD_BYTES 64
#define PARENT_LOOK 2048

/* Forks from the calling thread.  The child draws CHILD_BYTES and sends
 * them; the parent draws its next PARENT_LOOK bytes.  Without a fork guard
 * the child's bytes are the parent's first CHILD_BYTES exactly. */
static void fork_and_compare(void)
{
	int fd[2];
	ASSERT(pipe(fd) == 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		unsigned char c[CHILD_BYTES];
		once__random(c, sizeof c);
		_exit(write(fd[1], c, sizeof c) == (ssize_t)sizeof c ? 0 : 1);
	}
	close(fd[1]);
	unsigned char p[PARENT_LOOK], c[CHILD_BYTES];
	once__random(p, sizeof p);
	read_all(fd[0], c, sizeof c);
	close(fd[0]);
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT(memcmp(c, p, CHILD_BYTES) != 0);
	ASSERT(!share_window(c, sizeof c, p, sizeof p));
}

/* Bytes drawn before a fork: every position in a 992-byte refill's output
 * is reached (0 right after seeding; the sums cross refill boundaries). */
static const size_t PRE[] = {0, 1, 31, 32, 33, 500, 991, 992, 993, 1024, 5000, 0, 7};

static void test_fork_main_thread_differs(void)
{
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof PRE / sizeof PRE[0]; i++) {
			unsigned char pre[5000];
			once__random(pre, PRE[i]);
			fork_and_compare();
		}
	}
}

/* Seeded by a zero-byte draw, nothing drawn: parent and child would both
 * refill from the same key. */
static void test_fork_seeded_nothing_drawn_differs(void)
{
	once__random(NULL, 0);
	fork_and_compare();
}

static void *fork_from_thread(void *arg)
{
	size_t pre_len = *(const size_t *)arg;
	unsigned char pre[5000];
	once__random(pre, pre_len); /* seeds this thread's state */
	fork_and_compare();
	return NULL;
}

/* The forking thread is not the main one; the main thread has drawn too.
 * A failed assertion inside the thread exits the test process. */
static void test_fork_from_thread_differs(void)
{
	unsigned char x[100];
	once__random(x, sizeof x);
	for (size_t i = 0; i < sizeof PRE / sizeof PRE[0]; i++) {
		pthread_t t;
		ASSERT(pthread_create(&t, NULL, fork_from_thread, (void *)&PRE[i]) == 0);
		ASSERT(pthread_join(t, NULL) == 0);
	}
}

/* Parent, child and grandchild: three different streams. */
static void test_fork_grandchild_differs(void)
{
	unsigned char p[CHILD_BYTES], c[CHILD_BYTES], g[CHILD_BYTES];
	once__random(p, 10);
	int fd[2];
	ASSERT(pipe(fd) == 0);
	fflush(NULL);
	pid_t pid = fork();
	ASSERT(pid >= 0);
	if (pid == 0) {
		pid_t gpid = fork();
		if (gpid < 0)
			_exit(1);
		unsigned char b[CHILD_BYTES];
		once__random(b, sizeof b);
		if (gpid == 0)
			_exit(write(fd[1], b, sizeof b) == (ssize_t)sizeof b ? 0 : 1);
		int st;
		if (waitpid(gpid, &st, 0) != gpid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			_exit(1);
		_exit(write(fd[1], b, sizeof b) == (ssize_t)sizeof b ? 0 : 1);
	}
	close(fd[1]);
	once__random(p, sizeof p);
	read_all(fd[0], g, sizeof g); /* the grandchild writes first */
	read_all(fd[0], c, sizeof c);
	close(fd[0]);
	int status;
	ASSERT(waitpid(pid, &status, 0) == pid);
	ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT(memcmp(p, c, sizeof p) != 0);
	ASSERT(memcmp(p, g, sizeof p) != 0);
	ASSERT(memcmp(c, g, sizeof c) != 0);
}

/* ---- threads (R4) ---- */

#define THREADS 4
#define DRAWS 10000

static void *draw_many(void *arg)
{
	unsigned char *out = arg;
	for (size_t i = 0; i < DRAWS; i++)
		once__random(out + 32 * i, 32);
	return NULL;
}

static void test_threads_draw_distinct(void)
{
	unsigned char *all = malloc((size_t)THREADS * DRAWS * 32);
	ASSERT(all != NULL);
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		ASSERT(pthread_create(&t[i], NULL, draw_many, all + (size_t)i * DRAWS * 32) == 0);
	for (int i = 0; i < THREADS; i++)
		ASSERT(pthread_join(t[i], NULL) == 0);
	ASSERT(all_distinct32(all, (size_t)THREADS * DRAWS));
	free(all);
}

/* Threads come and go (their state is freed by the key destructor); the
 * ones that follow still draw distinct output. */
static void *draw_once(void *arg)
{
	once__random(arg, 32);
	return NULL;
}

static void test_short_lived_threads(void)
{
	enum { N = 64 };
	unsigned char out[N * 32];
	for (int i = 0; i < N; i++) {
		pthread_t t;
		ASSERT(pthread_create(&t, NULL, draw_once, out + 32 * i) == 0);
		ASSERT(pthread_join(t, NULL) == 0);
	}
	ASSERT(all_distinct32(out, N));
}

/* ---- output (R1, R3) ---- */

static void test_output_statistics(void)
{
	enum { LEN = 1 << 20 };
	unsigned char *buf = malloc(LEN);
	ASSERT(buf != NULL);
	/* Mixed draw sizes, as callers make them. */
	static const size_t sizes[] = {32, 16, 8, 43, 1, 100};
	size_t off = 0;
	for (size_t i = 0; off < LEN; i++) {
		size_t n = sizes[i % 6];
		if (n > LEN - off)
			n = LEN - off;
		once__random(buf + off, n);
		off += n;
	}
	uint64_t ones = 0, hist[256] = {0};
	for (size_t i = 0; i < LEN; i++) {
		ones += (uint64_t)__builtin_popcount(buf[i]);
		hist[buf[i]]++;
	}
	/* 2^23 bits: mean 2^22, sd 1448; allow 10 sd. */
	int64_t dev = (int64_t)ones - (1 << 22);
	if (dev < -14480 || dev > 14480)
		FAIL_AT("bit balance off by %" PRId64, dev);
	/* Each byte value: mean 4096, sd 64; allow 10 sd. */
	for (int v = 0; v < 256; v++)
		if (hist[v] < 4096 - 640 || hist[v] > 4096 + 640)
			FAIL_AT("byte %d seen %" PRIu64 " times", v, hist[v]);
	static const unsigned char zero[32];
	for (int i = 0; i < 1000; i++) {
		unsigned char d[32];
		once__random(d, sizeof d);
		ASSERT(memcmp(d, zero, 32) != 0);
	}
	free(buf);
}

/* Draws of odd lengths span refills; consecutive draws share no 32-byte
 * window (a refill handing out bytes twice, or the key, would). */
static void test_odd_lengths(void)
{
	static const size_t lens[] = {0, 1, 31, 33, 1000, 5000, 992, 991, 2, 4000, 33};
	unsigned char prev[5000], cur[5000];
	size_t prev_len = 0;
	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
			memset(cur, 0xa5, sizeof cur);
			once__random(cur, lens[i]);
			/* Nothing beyond len is written. */
			for (size_t j = lens[i]; j < sizeof cur; j++)
				ASSERT_EQ_INT(cur[j], 0xa5);
			ASSERT(!share_window(prev, prev_len, cur, lens[i]));
			ASSERT(!share_window(cur, lens[i] / 2, cur + lens[i] / 2, lens[i] - lens[i] / 2));
			memcpy(prev, cur, lens[i]);
			prev_len = lens[i];
		}
	}
}

/* 3 MiB from one thread: past the reseed bound (1 MiB) twice, every
 * 32-byte draw distinct. */
static void test_past_reseed_bound(void)
{
	size_t n = (3u << 20) / 32;
	unsigned char *v = malloc(n * 32);
	ASSERT(v != NULL);
	for (size_t i = 0; i < n; i++)
		once__random(v + 32 * i, 32);
	ASSERT(all_distinct32(v, n));
	free(v);
}

/* ---- seal (S1-S3) ---- */

static const unsigned char KEY[ONCE_SUCCESSOR_KEY_LEN] = {
	0x42, 0x13, 0x07, 0x99, 0xe1, 0x5c, 0x3a, 0x70, 0x01, 0x02, 0x03,
	0x04, 0x05, 0x06, 0x07, 0x08, 0x80, 0x91, 0xa2, 0xb3, 0xc4, 0xd5,
	0xe6, 0xf7, 0x18, 0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f,
};
static const char AD[] = "parent-token-hash";

static once_store *open_keyed(const unsigned char *key)
{
	once_options o = test_options(NULL);
	o.successor_key = key;
	return test_open(&o);
}

static uint64_t nonce_counter(const struct once__sealed *b)
{
	uint64_t c = 0;
	for (int i = 7; i >= 0; i--)
		c = c << 8 | b->nonce[16 + i];
	return c;
}

/* b is XChaCha20-Poly1305 of msg under KEY and b's nonce: libsodium opens
 * it, and its own encryption under the same nonce gives the same bytes. */
static void assert_is_xchacha(const struct once__sealed *b, const void *msg, size_t n)
{
	ASSERT_EQ_U64(b->len, n + crypto_aead_xchacha20poly1305_ietf_ABYTES);
	unsigned char *plain = malloc(n + 1), *ref = malloc(b->len);
	ASSERT(plain != NULL && ref != NULL);
	unsigned long long got;
	ASSERT(crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &got, NULL, b->ct, b->len,
	                                                  (const unsigned char *)AD, sizeof AD, b->nonce,
	                                                  KEY) == 0);
	ASSERT_EQ_U64(got, n);
	ASSERT(memcmp(plain, msg, n) == 0);
	ASSERT(crypto_aead_xchacha20poly1305_ietf_encrypt(ref, &got, msg, n, (const unsigned char *)AD,
	                                                  sizeof AD, NULL, b->nonce, KEY) == 0);
	ASSERT_EQ_U64(got, b->len);
	ASSERT(memcmp(ref, b->ct, b->len) == 0);
	free(plain);
	free(ref);
}

static void assert_unseals(const once_store *s, const struct once__sealed *b, const void *msg, size_t n)
{
	unsigned char *out = malloc(n + 1);
	ASSERT(out != NULL);
	ASSERT_EQ_U64(once__sealed_plain_len(b), n);
	ASSERT(once__unseal(s, b, AD, sizeof AD, out));
	ASSERT(memcmp(out, msg, n) == 0);
	free(out);
}

static void test_seal_is_xchacha20poly1305(void)
{
	once_store *s = open_keyed(KEY);
	static const size_t sizes[] = {1, 43, 64, 1000, 70000};
	unsigned char *msg = malloc(70000);
	ASSERT(msg != NULL);
	once__random(msg, 70000);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct once__sealed *b = once__seal(s, AD, sizeof AD, msg, sizes[i]);
		ASSERT(b != NULL);
		ASSERT(memcmp(b->nonce, s->sealing.prefix, 16) == 0);
		assert_is_xchacha(b, msg, sizes[i]);
		assert_unseals(s, b, msg, sizes[i]);
		once__sealed_free(b);
	}
	free(msg);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_seal_counter_advances_and_wraps(void)
{
	once_store *s = open_keyed(KEY);
	const char msg[] = "a-43-byte-refresh-token-xxxxxxxxxxxxxxxxxxx";
	struct once__sealed *b[4];
	for (int i = 0; i < 3; i++) {
		b[i] = once__seal(s, AD, sizeof AD, msg, 43);
		ASSERT(b[i] != NULL);
	}
	ASSERT_EQ_U64(nonce_counter(b[1]), nonce_counter(b[0]) + 1);
	ASSERT_EQ_U64(nonce_counter(b[2]), nonce_counter(b[0]) + 2);
	ASSERT_EQ_U64(atomic_load(&s->sealing.counter), nonce_counter(b[0]) + 3);
	for (int i = 0; i < 3; i++)
		once__sealed_free(b[i]);
	/* The counter wraps mod 2^64 and stays XChaCha20 under its nonce. */
	atomic_store(&s->sealing.counter, UINT64_MAX);
	b[0] = once__seal(s, AD, sizeof AD, msg, 43);
	b[1] = once__seal(s, AD, sizeof AD, msg, 43);
	ASSERT_EQ_U64(nonce_counter(b[0]), UINT64_MAX);
	ASSERT_EQ_U64(nonce_counter(b[1]), 0);
	for (int i = 0; i < 2; i++) {
		assert_is_xchacha(b[i], msg, 43);
		assert_unseals(s, b[i], msg, 43);
		once__sealed_free(b[i]);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

#define SEALERS 4
#define SEALS 2000

struct sealer {
	once_store *s;
	unsigned char (*nonces)[32]; /* SEALS of them; 24 bytes used */
};

static void *seal_many(void *arg)
{
	struct sealer *z = arg;
	for (int i = 0; i < SEALS; i++) {
		struct once__sealed *b = once__seal(z->s, AD, sizeof AD, "payload", 7);
		if (b == NULL)
			return NULL;
		memcpy(z->nonces[i], b->nonce, 24);
		once__sealed_free(b);
	}
	return z;
}

static void test_seal_concurrent_nonces_distinct(void)
{
	once_store *s = open_keyed(KEY);
	unsigned char(*all)[32] = calloc((size_t)SEALERS * SEALS, 32);
	ASSERT(all != NULL);
	struct sealer z[SEALERS];
	pthread_t t[SEALERS];
	for (int i = 0; i < SEALERS; i++) {
		z[i].s = s;
		z[i].nonces = all + (size_t)i * SEALS;
		ASSERT(pthread_create(&t[i], NULL, seal_many, &z[i]) == 0);
	}
	for (int i = 0; i < SEALERS; i++) {
		void *r;
		ASSERT(pthread_join(t[i], &r) == 0);
		ASSERT(r != NULL);
	}
	ASSERT(all_distinct32(&all[0][0], (size_t)SEALERS * SEALS));
	free(all);
	ASSERT_ST(once_close(s), ONCE_OK);
}

static void test_seal_across_stores(void)
{
	once_store *a = open_keyed(KEY), *b = open_keyed(KEY);
	ASSERT(memcmp(a->sealing.prefix, b->sealing.prefix, 16) != 0);
	const char msg[] = "successor-refresh-token";
	struct once__sealed *x = once__seal(a, AD, sizeof AD, msg, sizeof msg);
	ASSERT(x != NULL);
	assert_unseals(a, x, msg, sizeof msg);
	assert_unseals(b, x, msg, sizeof msg); /* sealed under another prefix */
	/* Tampering fails: ciphertext, nonce suffix, associated data, prefix. */
	unsigned char out[sizeof msg];
	x->ct[3] ^= 1;
	ASSERT(!once__unseal(a, x, AD, sizeof AD, out));
	ASSERT(!once__unseal(b, x, AD, sizeof AD, out));
	x->ct[3] ^= 1;
	x->nonce[20] ^= 1;
	ASSERT(!once__unseal(a, x, AD, sizeof AD, out));
	ASSERT(!once__unseal(b, x, AD, sizeof AD, out));
	x->nonce[20] ^= 1;
	ASSERT(!once__unseal(a, x, "other-token", 11, out));
	x->nonce[0] ^= 1;
	ASSERT(!once__unseal(a, x, AD, sizeof AD, out));
	x->nonce[0] ^= 1;
	assert_unseals(a, x, msg, sizeof msg);
	once__sealed_free(x);
	/* Another key never opens it, whatever the prefix. */
	unsigned char other_key[ONCE_SUCCESSOR_KEY_LEN];
	memcpy(other_key, KEY, sizeof other_key);
	other_key[0] ^= 0x80;
	once_store *c = open_keyed(other_key);
	x = once__seal(a, AD, sizeof AD, msg, sizeof msg);
	ASSERT(x != NULL);
	ASSERT(!once__unseal(c, x, AD, sizeof AD, out));
	memcpy(x->nonce, c->sealing.prefix, 16); /* c's prefix, a's key: fails */
	ASSERT(!once__unseal(c, x, AD, sizeof AD, out));
	once__sealed_free(x);
	ASSERT_ST(once_close(a), ONCE_OK);
	ASSERT_ST(once_close(b), ONCE_OK);
	ASSERT_ST(once_close(c), ONCE_OK);
}

/* Blobs of the old scheme (a random 24-byte nonce, libsodium's own
 * encryption), also one that happens to carry this open's prefix, open. */
static void test_unseal_reference_blobs(void)
{
	once_store *s = open_keyed(KEY);
	const char msg[] = "an older successor";
	for (int prefixed = 0; prefixed < 2; prefixed++) {
		struct once__sealed *b = malloc(sizeof *b + sizeof msg + crypto_aead_xchacha20poly1305_ietf_ABYTES);
		ASSERT(b != NULL);
		randombytes_buf(b->nonce, sizeof b->nonce);
		if (prefixed)
			memcpy(b->nonce, s->sealing.prefix, 16);
		unsigned long long len;
		crypto_aead_xchacha20poly1305_ietf_encrypt(b->ct, &len, (const unsigned char *)msg, sizeof msg,
		                                           (const unsigned char *)AD, sizeof AD, NULL, b->nonce,
		                                           KEY);
		b->len = (uint32_t)len;
		assert_unseals(s, b, msg, sizeof msg);
		free(b);
	}
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* Public API: a successor remembered by a rotation in one open is handed
 * out by a consume retry in the next open of the same directory and key
 * (sealed under one prefix, opened under another, through the log). */
static void test_successor_opens_in_next_store(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk;
	atomic_init(&clk.now, 1000);
	once_options o = test_durable_options(&clk, dir);
	o.successor_key = KEY;
	char parent[ONCE_SECRET_LEN + 1], child[ONCE_SECRET_LEN + 1], next[ONCE_SECRET_LEN + 1];
	test_key(parent, "rt", 1);
	test_key(child, "rt", 2);
	test_key(next, "rt", 3);
	const char payload[] = "plaintext-refresh-token-of-the-child";
	once_refresh r = test_refresh("fam-1", 5000);

	once_store *a = test_open(&o);
	ASSERT_ST(once_refresh_insert(a, parent, ONCE_SECRET_LEN, &r), ONCE_OK);
	once_refresh *got = NULL;
	ASSERT_ST(once_refresh_rotate(a, parent, ONCE_SECRET_LEN, child, ONCE_SECRET_LEN, &r, payload,
	                              sizeof payload, &got),
	          ONCE_OK);
	once_free(got);
	unsigned char prefix_a[16];
	memcpy(prefix_a, a->sealing.prefix, 16);
	ASSERT_ST(once_close(a), ONCE_OK);

	once_store *b = test_open(&o);
	ASSERT(memcmp(prefix_a, b->sealing.prefix, 16) != 0);
	got = NULL;
	ASSERT_ST(once_refresh_consume(b, parent, ONCE_SECRET_LEN, &got), ONCE_SPENT);
	ASSERT(got->successor != NULL);
	ASSERT_EQ_U64(got->successor_len, sizeof payload);
	ASSERT(memcmp(got->successor, payload, sizeof payload) == 0);
	once_free(got);
	/* b seals the next successor itself; a third open reads both. */
	ASSERT_ST(once_refresh_rotate(b, child, ONCE_SECRET_LEN, next, ONCE_SECRET_LEN, &r, "second", 6,
	                              NULL),
	          ONCE_OK);
	got = NULL;
	ASSERT_ST(once_refresh_consume(b, child, ONCE_SECRET_LEN, &got), ONCE_SPENT);
	ASSERT_EQ_U64(got->successor_len, 6);
	ASSERT(memcmp(got->successor, "second", 6) == 0);
	once_free(got);
	ASSERT_ST(once_close(b), ONCE_OK);

	once_store *c = test_open(&o);
	got = NULL;
	ASSERT_ST(once_refresh_consume(c, parent, ONCE_SECRET_LEN, &got), ONCE_SPENT);
	ASSERT_EQ_U64(got->successor_len, sizeof payload);
	ASSERT(memcmp(got->successor, payload, sizeof payload) == 0);
	once_free(got);
	got = NULL;
	ASSERT_ST(once_refresh_consume(c, child, ONCE_SECRET_LEN, &got), ONCE_SPENT);
	ASSERT_EQ_U64(got->successor_len, 6);
	once_free(got);
	ASSERT_ST(once_close(c), ONCE_OK);
	test_rmdir(dir);
	ASSERT_NO_LEAKS();
}

static void test_sealing_wipe(void)
{
	ASSERT(sodium_init() >= 0);
	/* once_store is 64-byte aligned (its cache-line members). */
	once_store *s = aligned_alloc(64, sizeof *s);
	ASSERT(s != NULL);
	memset(s, 0, sizeof *s);
	static const unsigned char zero[32];
	once__sealing_init(s); /* no key: nothing derived */
	ASSERT(memcmp(s->sealing.subkey, zero, 32) == 0);
	memcpy(s->successor_key, KEY, sizeof KEY);
	s->has_successor_key = true;
	once__sealing_init(s);
	unsigned char want[32];
	crypto_core_hchacha20(want, s->sealing.prefix, KEY, NULL);
	ASSERT(memcmp(s->sealing.subkey, want, 32) == 0);
	once__sealing_wipe(s);
	ASSERT(memcmp(s->sealing.subkey, zero, 32) == 0);
	ASSERT(memcmp(s->sealing.prefix, zero, 16) == 0);
	free(s);
}

TESTS(TEST(test_fork_main_thread_differs), TEST(test_fork_seeded_nothing_drawn_differs),
      TEST(test_fork_from_thread_differs), TEST(test_fork_grandchild_differs),
      TEST(test_threads_draw_distinct), TEST(test_short_lived_threads), TEST(test_output_statistics),
      TEST(test_odd_lengths), TEST(test_past_reseed_bound), TEST(test_seal_is_xchacha20poly1305),
      TEST(test_seal_counter_advances_and_wraps), TEST(test_seal_concurrent_nonces_distinct),
      TEST(test_seal_across_stores), TEST(test_unseal_reference_blobs),
      TEST(test_successor_opens_in_next_store), TEST(test_sealing_wipe));

TEST_MAIN()
