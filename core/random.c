/*
 * core/random.c - once__random: a per-thread ChaCha20 generator with fast
 * key erasure, seeded from the kernel, safe across fork.
 *
 * Every nonce, secret, store seed and seal prefix comes from here.  It used
 * to be libsodium's randombytes_buf, one getrandom system call per call
 * (about a quarter of once_nonce_issue's time); now a call is a copy out of
 * a per-thread buffer, and the kernel is asked once per reseed.
 *
 * Construction (Bernstein's "fast-key-erasure RNG", as in OpenBSD's
 * arc4random and Linux's own get_random_bytes)
 * --------------------------------------------------------------------------
 * Each thread holds a 32-byte ChaCha20 key k.  A refill computes
 * ChaCha20-IETF(k, nonce 0) over RNG_BUF (1024) bytes; the first 32 bytes
 * become the next k and are never handed out, the other 992 are handed out
 * in order, and each handed-out byte is zeroed in the buffer as it leaves.
 * A key is used for exactly one refill, so the constant nonce never repeats
 * under one key.
 *
 *   R1  Output is CSPRNG output.  Every byte handed out is ChaCha20
 *       keystream under a key that is either kernel randomness or earlier
 *       keystream never revealed; distinguishing it from uniform bytes is
 *       breaking ChaCha20 as a PRF.  A 32-byte nonce is 32 such bytes.
 *   R2  Backtracking resistance.  At any moment memory holds only the
 *       current key and bytes not yet handed out: earlier keys were
 *       overwritten, earlier output zeroed.  Reading a thread's state (a
 *       core dump, a memory disclosure) reveals nothing about output it
 *       already returned, since getting an earlier key from a later one means
 *       inverting ChaCha20.
 *   R3  Reseed.  After RNG_RESEED (1 MiB) of output since its last seed, a
 *       thread replaces its key with 32 fresh bytes from the kernel
 *       (randombytes_buf, i.e. getrandom) and discards its buffer; the
 *       check runs before each refill, so no seed yields more than 1 MiB
 *       (1,056 refills, about 32,000 nonces).  A thread whose state leaked
 *       is unpredictable again after at most 1 MiB more output, and even
 *       a thread that draws without pause asks the kernel only once per
 *       1 MiB.  Why 1 MiB: a getrandom costs about one refill (both about
 *       0.6 us on the machine measured), so reseeding once per 1,056
 *       refills costs about 0.1% of the generator's time; a shorter bound
 *       buys little, since between reseeds the output is already as strong
 *       as ChaCha20 (R1).  The bound is in bytes, not time: a thread that
 *       draws rarely keeps its key longer, which R2 makes harmless for
 *       the output it has already returned.
 *   R4  Threads never share a stream.  Each thread seeds its own key from
 *       the kernel on its first call; two threads repeat each other only if
 *       two 256-bit kernel seeds collide.  No state is shared, so the fast
 *       path takes no lock and does no atomic read-modify-write.
 *   R5  Fork.  A child must never repeat its parent's stream, which a copied
 *       key and buffer would do byte for byte.  Two independent guards:
 *       a) each thread's state lies alone on pages of its own (mmap) marked
 *          MADV_WIPEONFORK (Linux >= 4.14): the child sees them zeroed, and
 *          a zeroed state reads as "unseeded" (generation 0), so the
 *          child's first call seeds a fresh key from the kernel.  This also
 *          holds for a fork that runs no atfork handlers (_Fork, a raw
 *          clone).
 *       b) a pthread_atfork child handler bumps the process-wide
 *          `generation`; a thread's state remembers the generation it was
 *          seeded in and reseeds (dropping its buffered bytes) when they
 *          differ.  This covers kernels where madvise fails (EINVAL).
 *       Either alone suffices; tests/test_random.c fails with both off.
 *   R6  Lifetime.  A thread's pages are wiped and unmapped by a pthread key
 *       destructor when it exits.  When the pages cannot be had (mmap or
 *       pthread_key_create failed) a call falls back to randombytes_buf, so
 *       once__random never fails.
 *
 * Not async-signal-safe: a signal handler that calls into the library
 * while its thread is inside once__random may see a refill half done.  The
 * pages of threads other than the forking one stay mapped in a child (wiped
 * or never used again): a page per such thread, not reclaimed.
 */
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18 /* Linux 4.14; older kernels answer EINVAL */
#endif

#define RNG_KEY 32u
#define RNG_BUF 1024u            /* bytes per refill, the next key included */
#define RNG_RESEED (1024u * 1024u) /* output bytes per kernel seed (R3) */

/* One thread's generator; all zero means unseeded (R5 a). */
struct rng_state {
	uint64_t generation; /* `generation` when seeded; 0: not seeded */
	uint64_t since_seed; /* bytes made available since the last seed */
	uint32_t avail;      /* unread bytes at the end of buf */
	unsigned char key[RNG_KEY];
	unsigned char buf[RNG_BUF];
};

_Static_assert(sizeof(struct rng_state) <= 4096, "one page per thread");

/* Bumped in every fork child (R5 b); starts at 1 so a zeroed state differs. */
static _Atomic uint64_t generation = 1;
static pthread_once_t rng_once = PTHREAD_ONCE_INIT;
static pthread_key_t rng_key;
static bool rng_key_ok;
static size_t rng_map_len;

/* initial-exec: one load from %fs instead of a __tls_get_addr call in the
 * shared library; 8 bytes of static TLS, which glibc keeps spare room for
 * even when the library is dlopen'ed. */
static __thread struct rng_state *rng_tls __attribute__((tls_model("initial-exec")));

/* Zeroes n bytes so that the stores stay: memset, then an empty asm that
 * may read them, as explicit_bzero does - but inline, about 1 ns for the
 * 32 bytes of a nonce where the sodium_memzero call costs about 7. */
static inline void wipe(void *p, size_t n)
{
	memset(p, 0, n);
	__asm__ __volatile__("" : : "r"(p) : "memory");
}

static void rng_after_fork_child(void)
{
	atomic_fetch_add_explicit(&generation, 1, memory_order_relaxed);
}

/* pthread key destructor: the thread is exiting (R6). */
static void rng_thread_exit(void *p)
{
	sodium_memzero(p, sizeof(struct rng_state));
	munmap(p, rng_map_len);
	rng_tls = NULL;
}

static void rng_global_init(void)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t len = page > 0 ? (size_t)page : 4096;
	while (len < sizeof(struct rng_state))
		len *= 2;
	rng_map_len = len;
	rng_key_ok = pthread_key_create(&rng_key, rng_thread_exit) == 0;
	pthread_atfork(NULL, NULL, rng_after_fork_child);
}

/* This thread's state, mapped on first use; NULL when it cannot be. */
static struct rng_state *rng_map(void)
{
	pthread_once(&rng_once, rng_global_init);
	if (!rng_key_ok)
		return NULL;
	void *p = mmap(NULL, rng_map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* EINVAL before Linux 4.14: guard R5 b) alone then.  DONTDUMP keeps
	 * the key out of core files; failing it changes nothing else. */
	(void)madvise(p, rng_map_len, MADV_WIPEONFORK);
	(void)madvise(p, rng_map_len, MADV_DONTDUMP);
	if (pthread_setspecific(rng_key, p) != 0) {
		munmap(p, rng_map_len);
		return NULL;
	}
	rng_tls = p;
	return p;
}

/* A fresh key from the kernel; buffered bytes of the old one are dropped
 * (after a fork they are the parent's too). */
static void rng_seed(struct rng_state *st, uint64_t gen)
{
	randombytes_buf(st->key, sizeof st->key);
	sodium_memzero(st->buf, sizeof st->buf);
	st->avail = 0;
	st->since_seed = 0;
	st->generation = gen;
}

/* Fast key erasure: one keystream block run, its head the next key. */
static void rng_refill(struct rng_state *st)
{
	static const unsigned char nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
	/* R3: no seed yields more than RNG_RESEED bytes. */
	if (st->since_seed + (RNG_BUF - RNG_KEY) > RNG_RESEED)
		rng_seed(st, st->generation);
	crypto_stream_chacha20_ietf(st->buf, sizeof st->buf, nonce, st->key);
	memcpy(st->key, st->buf, RNG_KEY);
	wipe(st->buf, RNG_KEY);
	st->avail = RNG_BUF - RNG_KEY;
	st->since_seed += st->avail;
}

/* The slow path: first call of a thread, or first after a fork. */
static struct rng_state *rng_prepare(uint64_t gen)
{
	struct rng_state *st = rng_tls != NULL ? rng_tls : rng_map();
	if (st != NULL)
		rng_seed(st, gen);
	return st;
}

void once__random(void *buf, size_t len)
{
	uint64_t gen = atomic_load_explicit(&generation, memory_order_relaxed);
	struct rng_state *st = rng_tls;
	if (__builtin_expect(st == NULL || st->generation != gen, 0)) {
		st = rng_prepare(gen);
		if (st == NULL) {
			randombytes_buf(buf, len);
			return;
		}
	}
	unsigned char *out = buf;
	while (len > 0) {
		if (st->avail == 0)
			rng_refill(st);
		size_t n = len < st->avail ? len : st->avail;
		unsigned char *src = st->buf + (RNG_BUF - st->avail);
		st->avail -= (uint32_t)n; /* claimed before it is copied */
		memcpy(out, src, n);
		wipe(src, n); /* R2: handed-out bytes leave memory */
		out += n;
		len -= n;
	}
}
