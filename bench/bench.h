/*
 * bench/bench.h - what the parts of the oncebench harness share: the key
 * material, one timed phase, and the operations it runs.
 */
#ifndef ONCE_BENCH_BENCH_H
#define ONCE_BENCH_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "histogram.h" /* core/histogram.h: the library's own */
#include "oncestore.h"

#define KEY_LEN 43    /* base64url SHA-256 */
#define JTI_LEN 80    /* 43-char jkt + ':' + 36-char UUID */
#define FAMILY_LEN 22 /* 16 random bytes in base64url */

/* Key material, built once (keys.c) and shared by every run; on
 * PostgreSQL rebuilt with a new salt for each run (its rows stay). */
extern char (*code_keys)[KEY_LEN + 1];
extern char (*child_keys)[KEY_LEN + 1];   /* once_secret_hash(child_tokens[i]) */
extern char (*child_tokens)[KEY_LEN + 1]; /* a rotation's child token: its payload */
extern char (*family_ids)[FAMILY_LEN + 1];
extern char (*jti_keys)[JTI_LEN + 1];
void build_keys(uint64_t n, uint64_t salt); /* salt 0: the keys of every older oncebench */
void free_keys(void);

/* The expiry of the codes and refresh tokens the workloads write: far in
 * the future on the embedded store (nothing expires during a run); on
 * PostgreSQL, whose timestamp columns end in the year 294276, now + a day
 * (set by pg_bench_times). */
extern int64_t bench_expires_at;

_Noreturn void die(const char *what, once_status st);

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double now_s(void)
{
	return (double)now_ns() / 1e9;
}

struct phase;
/* One operation on key i; the phase times it. */
typedef void (*op_fn)(struct phase *p, uint64_t i);
/* Several store calls for unit i, each timed into h by the function
 * itself; returns how many calls it made. */
typedef uint64_t (*batch_fn)(struct phase *p, struct once__hist *h, uint64_t i);
#if ONCEBENCH_ASYNC
/* The _async form of an operation on key i: the call's status (checked by
 * the function itself), *t its ticket (0: nothing to wait for). */
typedef void (*async_fn)(struct phase *p, uint64_t i, once_ticket *t);
#endif

struct mix_config {
	uint32_t calls_per_login; /* API calls per simulated login */
	uint32_t nonce_every;     /* a nonce issue + accept every N calls */
	uint32_t rotate_every;    /* a refresh rotation every M calls */
};

struct phase {
	once_store *s;
	op_fn op;
	batch_fn batch;      /* instead of op */
#if ONCEBENCH_ASYNC
	async_fn async;      /* with inflight: instead of op */
#endif
	uint32_t inflight;   /* > 0: each thread keeps this many _async calls outstanding */
	uint64_t keys;       /* units [0, keys), split in contiguous slices */
	uint32_t threads;
	double duration;     /* > 0: stop each thread after this many seconds */
	const char *label;   /* for the progress line */
	char (*nonces)[ONCE_NONCE_LEN + 1];
	void *raw;           /* raw-table baselines */
	struct mix_config mix;
	uint64_t mix_calls;  /* mix: API calls in all (the size of the jti pool) */
	pthread_barrier_t start;
	_Atomic uint64_t failures;
	_Atomic int failed_status; /* the status of the last failure, for the message */
	/* Results of run_phase: */
	uint64_t ops;        /* store calls made */
	double elapsed;      /* the slowest thread's time */
	struct once__hist lat;     /* every call's latency, merged; with inflight:
	                      * from submit until the thread saw it durable */
	struct once__hist call_lat; /* with inflight: the _async call itself */
	uint64_t poll_waits; /* with inflight: poll()s on once_ticket_fd */
	uint64_t poll_timeouts; /* ... that timed out (another thread drained it) */
	char dir[256];       /* --durable: the run's data directory */
};

/* Runs the phase on p->threads threads; fills ops, elapsed and lat and
 * returns operations/s.  Exits when an operation failed. */
double run_phase(struct phase *p);

static inline void fail_unless(struct phase *p, once_status st, once_status want)
{
	if (st != want) {
		atomic_fetch_add_explicit(&p->failures, 1, memory_order_relaxed);
		atomic_store_explicit(&p->failed_status, (int)st, memory_order_relaxed);
	}
}

/* ops.c */
/* KIND_RAW and KIND_RAW_INSERT are the two in-memory limits (no store). */
enum kind { KIND_CODE, KIND_NONCE, KIND_REPLAY, KIND_REFRESH, KIND_RAW, KIND_RAW_INSERT, KIND_MIX };

struct workload {
	const char *name;
	const char *what;
	op_fn op;
	op_fn prefill; /* run before timing, or NULL */
	enum kind kind; /* the one kind sized for --keys; the others stay small */
	batch_fn batch; /* instead of op */
#if ONCEBENCH_ASYNC
	async_fn async; /* the _async form of op, or NULL (none: get, mix) */
	async_fn prefill_async; /* the _async form of prefill */
#endif
};

extern const struct workload workloads[];
extern const size_t nworkloads;
const struct workload *find_workload(const char *name);
extern const struct workload raw_workload, raw_insert_workload;
void op_put(struct phase *p, uint64_t i);
void op_take(struct phase *p, uint64_t i);
void op_replay(struct phase *p, uint64_t i);
void op_nonce_issue(struct phase *p, uint64_t i);
#if ONCEBENCH_ASYNC
void op_put_async(struct phase *p, uint64_t i, once_ticket *t);
void op_take_async(struct phase *p, uint64_t i, once_ticket *t);
void op_replay_async(struct phase *p, uint64_t i, once_ticket *t);
void op_nonce_issue_async(struct phase *p, uint64_t i, once_ticket *t);
#endif
void *raw_build(uint64_t keys);
void raw_free(void *raw, uint64_t keys);
void *raw_insert_new(uint64_t keys);
void raw_insert_free(void *raw);

/* mix.c: one simulated login and its API calls. */
uint64_t mix_login(struct phase *p, struct once__hist *h, uint64_t login);
/* Checks the mix settings against --keys; returns logins, or 0 (and says
 * why) when they do not fit. */
uint64_t mix_logins(const struct mix_config *m, uint64_t calls);

/* pg.c: oncebench --postgres (the store on the PostgreSQL engine). */
struct pg_target {
	const char *conninfo; /* NULL: the embedded store */
	const char *schema;   /* --pg-schema, or NULL */
	uint32_t pool;        /* --pg-pool, or 0: one connection per thread */
};
/* Threads (and connections) that fill the tables before a timed phase. */
#define PG_PREFILL_THREADS 16
/* The issuer and successor secret the runs use (bench/compare writes its
 * pgbench rows with the same issuer claim). */
#define PG_BENCH_ISSUER "https://issuer.oncebench.example"
void pg_bench_times(void);
/* Sets the PostgreSQL options of o for a phase of `threads` threads. */
void pg_options(const struct pg_target *t, uint32_t threads, once_options *o);
/* A fresh salt for a run's keys. */
uint64_t pg_run_salt(void);
/* Prefill connections commit asynchronously: sets PGOPTIONS to
 * synchronous_commit=off (a connection string's own options win) and
 * restores it after (on = false). */
void pg_prefill_commit_mode(bool on);
/* After a prefill, untimed: VACUUM ANALYZE of the table the workload fills
 * and a CHECKPOINT, as bench/compare's reset does before each pgbench run,
 * so the timed phase starts from the same state.  Best effort: a role that
 * may not do them gets one warning. */
void pg_settle(const struct pg_target *t, enum kind kind);

/* Checks the latency histogram's percentile math (bench/selftest.c);
 * prints what is off and returns false. */
bool hist_selftest(void);

#endif
