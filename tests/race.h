/*
 * tests/race.h - what the race suites share: how many threads and keys a
 * race uses (at least 8 threads and 1000 keys, always), and CHECK, which
 * counts a failed check inside a worker thread (printing the first few)
 * for the main thread to assert zero after the join.
 *
 * ONCE_RACE_THREADS and ONCE_RACE_KEYS override the defaults.  Under
 * ThreadSanitizer (~10x slower) the default key counts shrink.
 */
#ifndef ONCE_TEST_RACE_H
#define ONCE_TEST_RACE_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

#if defined(__SANITIZE_THREAD__)
#define RACE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RACE_TSAN 1
#endif
#endif
#ifndef RACE_TSAN
#define RACE_TSAN 0
#endif

#if RACE_TSAN
/* TSan sleeps a second at every exit while another thread lives (the
 * call_rcu worker always does); TSAN_OPTIONS from the environment wins. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "atexit_sleep_ms=0";
}
#endif

#define MIN_THREADS 8
#define MAX_THREADS 64
#define MIN_KEYS 1000

static inline int race_threads(void)
{
	const char *e = getenv("ONCE_RACE_THREADS");
	int n = e ? atoi(e) : MIN_THREADS;
	if (n < MIN_THREADS)
		n = MIN_THREADS;
	return n > MAX_THREADS ? MAX_THREADS : n;
}

/* `normal` keys without TSan, `under_tsan` with it, never below MIN_KEYS. */
static inline size_t race_keys(size_t normal, size_t under_tsan)
{
	const char *e = getenv("ONCE_RACE_KEYS");
	size_t n = e ? (size_t)strtoull(e, NULL, 10) : (RACE_TSAN ? under_tsan : normal);
	return n < MIN_KEYS ? MIN_KEYS : n;
}

/* r is any struct with an `_Atomic uint64_t bad` counter. */
#define CHECK(r, cond, ...)                                                                        \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			if (atomic_fetch_add(&(r)->bad, 1) < 5) {                                  \
				fprintf(stderr, "# %s:%d: check failed: %s: ", __FILE__, __LINE__, \
				        #cond);                                                    \
				fprintf(stderr, __VA_ARGS__);                                      \
				fprintf(stderr, "\n");                                             \
			}                                                                          \
		}                                                                                  \
	} while (0)

/* The totals of a race: `ok` outcomes OK, `rest` of status `other`, and
 * nothing else.  count[] is indexed by status. */
static inline void race_assert_totals(_Atomic uint64_t *count, uint64_t ok, once_status other,
                                      uint64_t rest)
{
	for (int st = 0; st < ONCE_STATUS_COUNT; st++) {
		uint64_t want = st == ONCE_OK ? ok : st == (int)other ? rest : 0;
		uint64_t got = atomic_load(&count[st]);
		if (got != want)
			FAIL_AT("status %s: %" PRIu64 " outcomes, expected %" PRIu64,
			        once_status_name((once_status)st), got, want);
	}
}

/* Exactly one OK per key: ok[i] counts the OK outcomes of key i. */
static inline void race_assert_one_winner(_Atomic uint32_t *ok, size_t keys)
{
	for (size_t i = 0; i < keys; i++)
		if (atomic_load(&ok[i]) != 1)
			FAIL_AT("key %zu: %u winners, expected exactly 1", i, atomic_load(&ok[i]));
}

#endif /* ONCE_TEST_RACE_H */
