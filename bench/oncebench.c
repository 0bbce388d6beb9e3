/*
 * bench/oncebench.c - the oncestore bench harness: command line, runs,
 * medians and the report.
 *
 * Measures operations per second and latency percentiles of each
 * single-use operation (and of a gateway mix of them) at several thread
 * counts, on a memory-only store or one with a data directory, against the
 * physical limit it works against, measured in the same run: a raw cds_lfht
 * lookup + CAS and a raw cds_lfht insert over the same keys (in memory),
 * and raw log records of the same size through the same group commit +
 * fdatasync on the same disk (durable, sync always).  Every figure is the
 * median of --runs runs; each run uses a fresh store.  Also: the cost of an
 * empty store (--workload empty) and insert latency while the tables grow
 * against presized ones (--workload growth).  With --inflight, durable
 * writes through the _async calls: each thread an event loop keeping N
 * tickets outstanding, against the raw group-commit limit at the batch
 * size it reached (pwrite + fdatasync, appending and preallocated).  With
 * --postgres, the same workloads on the PostgreSQL engine against a server
 * (pg.c).  The parts: keys.c (key material), phase.c (one timed phase),
 * ops.c (the operations, the raw tables), mix.c (the gateway mix),
 * selftest.c (the latency histogram, core/histogram.c), durable.c (the raw
 * log), svg.c (--svg), pg.c (--postgres).
 */
#include <dirent.h>
#include <inttypes.h>
#include <sys/resource.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "durable.h"
#include "svg.h"

struct config {
	const char *workload;
	uint32_t threads[16];
	int nthreads;
	bool threads_set;    /* --threads given */
	uint32_t inflight[16]; /* --inflight: outstanding tickets per thread */
	int ninflight;
	uint64_t keys;
	int runs;
	uint32_t shards;
	bool json;
	uint32_t logs;       /* --workload log: segment files */
	once_sync_mode sync; /* --workload log, --durable: sync mode */
	bool durable;        /* the store gets a data directory (a fresh temporary one per run) */
	bool checkpoint_off; /* no automatic checkpoints (the recovery bench) */
	bool no_reopen;      /* --no-reopen: remove the last durable run's data unread */
	bool presize;        /* --workload growth: o.presize_tables = true */
	double duration;     /* > 0: each timed phase runs at most this long */
	const char *dir;     /* base of the temporary data directories */
	const char *svg;     /* --svg FILE */
	struct mix_config mix;
	struct pg_target pg; /* --postgres, --pg-schema, --pg-pool */
};

static const double quantiles[SVG_QUANTILES] = {0.50, 0.90, 0.99, 0.999, 1.0};

/* ---- data directories ---- */

/* A fresh data directory under base: "<base>/oncebench-XXXXXX/data". */
static void make_data_dir(const struct config *c, char out[256])
{
	const char *base = c->dir ? c->dir : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char tmpl[200];
	snprintf(tmpl, sizeof tmpl, "%s/oncebench-XXXXXX", base);
	if (mkdtemp(tmpl) == NULL) {
		perror("oncebench: mkdtemp");
		exit(1);
	}
	snprintf(out, 256, "%s/data", tmpl);
}

static void remove_data_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			char f[512];
			snprintf(f, sizeof f, "%s/%s", dir, de->d_name);
			if (de->d_name[0] != '.')
				unlink(f);
		}
		closedir(d);
	}
	rmdir(dir);
	char parent[256];
	snprintf(parent, sizeof parent, "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash != NULL) {
		*slash = '\0';
		rmdir(parent);
	}
}

/* The data directory of the last durable run, kept for the reopen at the
 * end; each new durable run removes the one before. */
static char last_dir[256];
static const struct workload *last_workload;

static void keep_data_dir(const char *dir, const struct workload *w)
{
	if (last_dir[0] != '\0')
		remove_data_dir(last_dir);
	snprintf(last_dir, sizeof last_dir, "%s", dir);
	last_workload = w;
}

/* The stores' log: warnings and errors on stderr, as once_log_stderr
 * writes them; the INFO lines (each open's recovery, each checkpoint)
 * would cut through the tables. */
static void bench_log(void *ctx, once_log_level level, const char *message)
{
	if (level != ONCE_LOG_INFO)
		once_log_stderr(ctx, level, message);
}

static once_store *open_store(const struct config *c, enum kind kind, const char *dir)
{
	once_options o;
	once_options_init(&o);
	o.log = bench_log;
	o.shards = c->shards;
	o.dir = dir;
	o.sync = c->sync;
	uint64_t cap = c->keys + 1;
	bool mix = kind == KIND_MIX;
	o.max_codes = kind == KIND_CODE || mix ? cap : 1024;
	o.max_nonces = kind == KIND_NONCE || mix ? cap : 1024;
	o.max_replays = kind == KIND_REPLAY || mix ? cap : 1024;
	o.max_refresh = kind == KIND_REFRESH || mix ? 2 * cap : 1024; /* rotation adds a child per parent */
	o.max_access_tokens = 1024;
	static const unsigned char successor_key[ONCE_SUCCESSOR_KEY_LEN] = "oncebench successor key 32 bytes";
	o.successor_key = successor_key;
	o.sweep_interval_ms = 0;
	if (c->checkpoint_off)
		o.checkpoint_bytes = UINT64_MAX;
	if (c->presize)
		o.presize_tables = true;
	once_store *s;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK)
		die("once_open", st);
	return s;
}

/* A store on the PostgreSQL engine for a phase of `threads` threads. */
static once_store *open_pg_store(const struct config *c, uint32_t threads)
{
	once_options o;
	once_options_init(&o);
	o.log = bench_log;
	pg_options(&c->pg, threads, &o);
	o.sweep_interval_ms = 0;
	once_store *s;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK)
		die("once_open (--postgres)", st);
	return s;
}

/*
 * Fills the tables for a timed phase on PostgreSQL (pg.c says how): a
 * store of its own on PG_PREFILL_THREADS connections that commit
 * asynchronously, then VACUUM ANALYZE and CHECKPOINT, all untimed.
 */
static void pg_prefill(const struct config *c, const struct workload *w, const struct phase *p)
{
	struct phase fill = *p;
	fill.inflight = 0;
	fill.op = w->prefill;
	fill.batch = NULL;
	fill.duration = 0;
	fill.label = "prefill";
	fill.threads = PG_PREFILL_THREADS;
	atomic_init(&fill.failures, 0);
	pg_prefill_commit_mode(true);
	fill.s = open_pg_store(c, fill.threads);
	run_phase(&fill);
	if (once_close(fill.s) != ONCE_OK)
		die("once_close (--postgres prefill)", ONCE_IO);
	pg_prefill_commit_mode(false);
	pg_settle(&c->pg, w->kind);
}

/* Resident set size in bytes (/proc/self/statm). */
static double rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

/* ---- one figure ---- */

/* The in-memory limits: no store. */
static bool is_baseline(const struct workload *w)
{
	return w->kind == KIND_RAW || w->kind == KIND_RAW_INSERT;
}

struct figure {
	double ops_per_s;
	uint64_t ops;            /* store calls timed */
	double seconds;          /* the slowest thread's time */
	double lat_ns[SVG_QUANTILES];
	double bytes_per_entry;  /* RSS growth over the run / live entries */
	double records_per_sync; /* --durable: group commit over the timed phase */
	double syncs_per_s;
	double log_bytes_per_op;
	double disk_records_per_s; /* the durable limit at this record size, or 0 */
	double call_ns[SVG_QUANTILES]; /* --inflight: the _async call itself */
	double cpu_us_per_op;    /* user + system CPU of the process over the phase */
	double csw_per_op;       /* voluntary + involuntary context switches */
	double poll_waits_per_op;  /* --inflight */
	double poll_timeouts;
	double disk_append_per_s;  /* --inflight: raw batches, appending file */
	double disk_prealloc_per_s; /* --inflight: raw batches, preallocated file */
	double pg_statements_per_op; /* --postgres: statements the engine ran, per call */
	double pg_statement_us_per_op; /* ... and their time, round trips included */
};

/* CPU time (user + system, every thread of the process) in seconds and
 * context switches (voluntary + involuntary) so far. */
static void usage_now(double *cpu_s, double *csw)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	*cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	         (double)ru.ru_stime.tv_usec / 1e6;
	*csw = (double)ru.ru_nvcsw + (double)ru.ru_nivcsw;
}

#if ONCEBENCH_ASYNC
/* Fills a durable store with the _async form of the prefill: one thread,
 * up to 4096 tickets outstanding (far faster than blocking callers, whose
 * rate the disk bounds), then waits for the last. */
static void prefill_async(struct phase *p, async_fn fill)
{
	once_ticket last = 0, upto = 0;
	for (uint64_t i = 0; i < p->keys; i++) {
		once_ticket t = 0;
		fill(p, i, &t);
		if (t > last)
			last = t;
		if ((i & 4095) == 4095 && once_ticket_wait(p->s, last) != ONCE_OK)
			die("once_ticket_wait", ONCE_IO);
	}
	if (once_ticket_wait(p->s, last) != ONCE_OK || once_tickets_durable(p->s, &upto) != ONCE_OK)
		die("once_ticket_wait", ONCE_IO);
	if (atomic_load(&p->failures) != 0) {
		fprintf(stderr, "oncebench: %" PRIu64 " prefill operations failed\n", atomic_load(&p->failures));
		exit(1);
	}
}
#endif

static struct figure measure(const struct config *c, const struct workload *w, uint32_t threads,
                             uint32_t inflight)
{
	/* Hand freed memory of earlier runs back to the kernel, so that this
	 * run's allocations show up as RSS growth instead of reusing it. */
	malloc_trim(0);
	double rss0 = rss_bytes();
	bool raw = is_baseline(w), mix = w->kind == KIND_MIX;
	struct phase p = {.keys = c->keys, .threads = threads, .op = w->op, .batch = w->batch,
	                  .label = w->name, .mix = c->mix, .mix_calls = c->keys};
	if (mix)
		p.keys = mix_logins(&c->mix, c->keys);
	if (p.keys < threads)
		p.threads = threads = (uint32_t)(p.keys ? p.keys : 1);
	atomic_init(&p.failures, 0);
	p.nonces = malloc(c->keys * sizeof *p.nonces);
	p.inflight = inflight;
#if ONCEBENCH_ASYNC
	p.async = w->async;
#endif
	bool durable = c->durable && !raw, pg = c->pg.conninfo != NULL;
	if (durable)
		make_data_dir(c, p.dir);
	if (pg) {
		/* The tables keep every run's rows: this run's keys are its own. */
		free_keys();
		build_keys(c->keys, pg_run_salt());
		if (w->prefill != NULL)
			pg_prefill(c, w, &p);
		p.s = open_pg_store(c, threads);
	} else if (w->kind == KIND_RAW) {
		p.raw = raw_build(c->keys);
	} else if (w->kind == KIND_RAW_INSERT) {
		p.raw = raw_insert_new(c->keys);
	} else {
		p.s = open_store(c, w->kind, durable ? p.dir : NULL);
	}
#if ONCEBENCH_ASYNC
	if (w->prefill != NULL && durable && w->prefill_async != NULL) {
		prefill_async(&p, w->prefill_async);
	} else
#endif
	if (w->prefill != NULL && !pg) {
		struct phase fill = p;
		fill.inflight = 0;
		fill.op = w->prefill;
		fill.batch = NULL;
		fill.duration = 0;
		fill.label = "prefill";
		/* One thread fills a memory-only store; a durable one waits on
		 * the disk per call, so it fills with many callers. */
		fill.threads = durable ? 32 : 1;
		atomic_init(&fill.failures, 0);
		run_phase(&fill);
	}
	/* The prefill's log is checkpointed before the clock starts (untimed,
	 * as pgbench vacuums first), so the timed phase pays for the
	 * checkpoints its own writes cause, not for the prefill's. */
	if (durable && w->prefill != NULL && !c->checkpoint_off) {
		once_status cst = once_checkpoint(p.s);
		if (cst != ONCE_OK)
			die("once_checkpoint after the prefill", cst);
	}
	struct once_stats before, after;
	if (p.s != NULL)
		once_stats(p.s, &before);
	p.duration = c->duration;
	double cpu0, csw0, cpu1, csw1;
	usage_now(&cpu0, &csw0);
	struct figure fig = {.ops_per_s = run_phase(&p)};
	usage_now(&cpu1, &csw1);
	fig.ops = p.ops;
	double nops = (double)(p.ops ? p.ops : 1);
	fig.cpu_us_per_op = (cpu1 - cpu0) * 1e6 / nops;
	fig.csw_per_op = (csw1 - csw0) / nops;
	fig.poll_waits_per_op = (double)p.poll_waits / nops;
	fig.poll_timeouts = (double)p.poll_timeouts;
	for (int q = 0; q < SVG_QUANTILES; q++)
		fig.call_ns[q] = inflight ? once__hist_quantile(&p.call_lat, quantiles[q]) : 0;
	fig.seconds = p.elapsed;
	for (int q = 0; q < SVG_QUANTILES; q++)
		fig.lat_ns[q] = once__hist_quantile(&p.lat, quantiles[q]);
	uint64_t entries = w->prefill != NULL || w->kind == KIND_RAW ? c->keys : p.ops;
	fig.bytes_per_entry = (rss_bytes() - rss0) / (double)(entries ? entries : 1);
	if (p.s != NULL) {
		once_stats(p.s, &after);
		uint64_t syncs = after.syncs - before.syncs;
		fig.records_per_sync = syncs ? (double)(after.synced_records - before.synced_records) / (double)syncs : 0;
		fig.syncs_per_s = (double)syncs / p.elapsed;
		fig.log_bytes_per_op = (double)(after.log_bytes - before.log_bytes) / (double)(p.ops ? p.ops : 1);
		fig.pg_statements_per_op = (double)(after.pg_statements - before.pg_statements) / nops;
		fig.pg_statement_us_per_op =
		        (double)(after.pg_statement_ns_total - before.pg_statement_ns_total) / 1e3 / nops;
	}
	if (w->kind == KIND_RAW)
		raw_free(p.raw, c->keys);
	else if (w->kind == KIND_RAW_INSERT)
		raw_insert_free(p.raw);
	else if (once_close(p.s) != ONCE_OK)
		die("once_close", ONCE_IO);
	if (durable)
		keep_data_dir(p.dir, w);
	free(p.nonces);
	return fig;
}

static int cmp_figure(const void *a, const void *b)
{
	double x = ((const struct figure *)a)->ops_per_s, y = ((const struct figure *)b)->ops_per_s;
	return (x > y) - (x < y);
}

/* The run with the median operations/s (its other figures come along);
 * with --durable --sync always, also the durable limit at its record size
 * and thread count. */
static struct figure median_of_runs(const struct config *c, const struct workload *w, uint32_t threads,
                                    uint32_t inflight)
{
	struct figure v[32];
	for (int r = 0; r < c->runs; r++)
		v[r] = measure(c, w, threads, inflight);
	qsort(v, (size_t)c->runs, sizeof v[0], cmp_figure);
	struct figure m = v[c->runs / 2];
	if (c->durable && c->sync == ONCE_SYNC_ALWAYS && !is_baseline(w) && m.log_bytes_per_op > 0) {
		/* As many records as the store wrote calls, but at most about a
		 * second's worth at the store's rate (at least 1000): the batch
		 * sizes depend on the callers, not on how long the loop runs. */
		uint64_t records = m.ops;
		double second = m.ops_per_s < 1000 ? 1000 : m.ops_per_s;
		if ((double)records > second)
			records = (uint64_t)second;
		struct durable_result d;
		if (inflight > 0) {
			/* The raw limit at the batch the store's writer reached,
			 * on a growing file and on a preallocated one. */
			if (durable_raw_batches(c->dir, m.records_per_sync, m.log_bytes_per_op, records, false,
			                        c->runs, &d) != 0)
				exit(1);
			m.disk_append_per_s = d.records_per_s;
			if (durable_raw_batches(c->dir, m.records_per_sync, m.log_bytes_per_op, records, true,
			                        c->runs, &d) != 0)
				exit(1);
			m.disk_prealloc_per_s = d.records_per_s;
			return m;
		}
		if (durable_limit(c->dir, threads, records, m.log_bytes_per_op, c->sync, c->runs, &d) != 0)
			exit(1);
		m.disk_records_per_s = d.records_per_s;
	}
	return m;
}

/* ---- --workload recover, and the reopen at the end of a durable run ---- */

/*
 * --workload recover: fills a durable store with --keys records (a mix of
 * code put, code take, replay check and nonce issue, from 4 threads, sync
 * none: the fill is not what is measured), closes it, and times once_open
 * recovering it (log replay only: no checkpoint is taken).
 */
static void op_fill_mix(struct phase *p, uint64_t i)
{
	switch (i % 4) {
	case 0: op_put(p, i / 4 * 2); break;
	case 1: op_replay(p, i); break;
	case 2: op_take(p, i / 4 * 2); break; /* the code put three records ago */
	default: op_nonce_issue(p, i); break;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int recover_bench(const struct config *c)
{
	struct config fill_cfg = *c;
	fill_cfg.sync = ONCE_SYNC_NONE;
	fill_cfg.checkpoint_off = true;
	double opens[32], rates[32];
	uint64_t records = 0;
	for (int r = 0; r < c->runs; r++) {
		char dir[256];
		make_data_dir(c, dir);
		struct phase p = {.keys = c->keys, .threads = 4, .op = op_fill_mix, .label = "fill"};
		atomic_init(&p.failures, 0);
		p.nonces = malloc(c->keys * sizeof *p.nonces);
		p.s = open_store(&fill_cfg, KIND_MIX, dir);
		run_phase(&p);
		if (once_close(p.s) != ONCE_OK)
			die("once_close", ONCE_IO);
		free(p.nonces);
		malloc_trim(0);
		double t0 = now_s();
		once_store *s = open_store(&fill_cfg, KIND_MIX, dir);
		opens[r] = now_s() - t0;
		struct once_stats st;
		once_stats(s, &st);
		records = st.recovered_records;
		rates[r] = (double)st.recovered_records / ((double)st.recovery_ns / 1e9);
		once_close(s);
		remove_data_dir(dir);
	}
	qsort(opens, (size_t)c->runs, sizeof opens[0], cmp_double);
	qsort(rates, (size_t)c->runs, sizeof rates[0], cmp_double);
	if (c->json)
		printf("{\"workload\":\"recover\",\"records\":%" PRIu64 ",\"open_s\":%.3f"
		       ",\"records_per_s\":%.0f}\n", records, opens[c->runs / 2], rates[c->runs / 2]);
	else
		printf("recovery: %" PRIu64 " log records replayed in %.3f s (once_open), "
		       "%.0f records/s (median of %d runs)\n", records, opens[c->runs / 2],
		       rates[c->runs / 2], c->runs);
	return 0;
}

/* Reopens the data directory the last durable run wrote, timed. */
static void reopen_last(const struct config *c)
{
	if (last_dir[0] == '\0')
		return;
	if (c->no_reopen) {
		remove_data_dir(last_dir);
		last_dir[0] = '\0';
		return;
	}
	malloc_trim(0);
	double t0 = now_s();
	once_store *s = open_store(c, last_workload->kind, last_dir);
	double open_s = now_s() - t0;
	struct once_stats st;
	once_stats(s, &st);
	uint64_t records = st.recovered_records + st.recovered_snapshot_records;
	double rate = st.recovery_ns ? (double)records / ((double)st.recovery_ns / 1e9) : 0;
	if (c->json)
		printf("{\"workload\":\"reopen\",\"of\":\"%s\",\"open_s\":%.4f,\"recovery_s\":%.4f"
		       ",\"log_records\":%" PRIu64 ",\"snapshot_records\":%" PRIu64 ",\"records_per_s\":%.0f}\n",
		       last_workload->name, open_s, (double)st.recovery_ns / 1e9, st.recovered_records,
		       st.recovered_snapshot_records, rate);
	else
		printf("\nreopen of the last run's data (%s): once_open %.4f s, recovery %.4f s, "
		       "%" PRIu64 " log + %" PRIu64 " snapshot records, %.0f records/s\n",
		       last_workload->what, open_s, (double)st.recovery_ns / 1e9, st.recovered_records,
		       st.recovered_snapshot_records, rate);
	if (once_close(s) != ONCE_OK)
		die("once_close", ONCE_IO);
	remove_data_dir(last_dir);
	last_dir[0] = '\0';
}

/* ---- the report ---- */

static const char *sync_name(once_sync_mode m)
{
	return m == ONCE_SYNC_ALWAYS ? "always" : m == ONCE_SYNC_INTERVAL ? "interval" : "none";
}

/* A latency in 7 columns: "850ns", "12.3us", "4.1ms", "2.05s". */
static const char *fmt_ns(char buf[16], double ns)
{
	if (ns < 1e3)
		snprintf(buf, 16, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(buf, 16, "%.1fus", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, 16, "%.1fms", ns / 1e6);
	else
		snprintf(buf, 16, "%.2fs", ns / 1e9);
	return buf;
}

static void print_header(const struct config *c)
{
	if (c->json)
		return;
	char limit[64] = "";
	if (c->duration > 0)
		snprintf(limit, sizeof limit, ", phases of at most %.1f s", c->duration);
	char pool[64] = "one pooled connection per thread";
	if (c->pg.pool != 0)
		snprintf(pool, sizeof pool, "a pool of %u connections (--pg-pool)", c->pg.pool);
	if (c->pg.conninfo != NULL)
		printf("oncestore on PostgreSQL (--postgres): %" PRIu64 " keys per run%s, median of %d runs;\n"
		       "%s; the in-memory limits ('of raw', 'of ins')\n"
		       "do not apply to a server and are not measured;\n"
		       "latency: per call, HDR-style histogram; 'stmt/op': statements the engine ran per\n"
		       "  call, 'stmt us/op' their time (round trips included); 'CPU us/op', 'csw/op':\n"
		       "  user + system CPU and context switches of this process (not the server's)\n\n"
		       "%-24s %7s %12s %8s %8s %8s %8s %8s %9s %9s %7s\n",
		       c->keys, limit, c->runs, pool, "operation", "threads",
		       "ops/s", "p50", "p99", "p999", "max", "stmt/op", "stmt us/op", "CPU us/op", "csw/op");
	else if (c->durable)
		printf("oncestore with a data directory (sync %s): %" PRIu64 " keys%s, median of %d runs\n"
		       "'of disk': ops/s as a fraction of raw log records of the same size (log B/op)\n"
		       "  through the same group commit + fdatasync on the same disk (sync always only);\n"
		       "latency: per call, HDR-style histogram; 'rec/sync': log records per fdatasync;\n"
		       "'CPU us/op', 'csw/op': user + system CPU and context switches (voluntary +\n"
		       "  involuntary) of the whole process over the timed phase, per operation\n\n"
		       "%-24s %7s %12s %7s %8s %8s %8s %8s %9s %8s %8s %8s %9s %7s\n",
		       sync_name(c->sync), c->keys, limit, c->runs, "operation", "threads", "ops/s", "of disk", "p50",
		       "p99", "p999", "max", "rec/sync", "syncs/s", "log B/op", "B/entry", "CPU us/op", "csw/op");
	else
		printf("oncestore in memory: %" PRIu64 " live keys%s, median of %d runs\n"
		       "ops/s as a fraction of two limits measured on the same keys in this run:\n"
		       "  'of raw': a bare cds_lfht lookup+CAS (the limit for get, take, nonce accept,\n"
		       "    refresh consume, rotate, revoke);\n"
		       "  'of ins': a bare cds_lfht insert, table growing from 16 buckets, nodes from\n"
		       "    the store's slab allocator (the limit for put, nonce issue, replay check,\n"
		       "    refresh insert);\n"
		       "latency: per call, HDR-style histogram; 'B/entry': RSS growth per live entry\n\n"
		       "%-24s %7s %12s %7s %7s %8s %8s %8s %8s %8s\n",
		       c->keys, limit, c->runs, "operation", "threads", "ops/s", "of raw", "of ins", "p50", "p99", "p999",
		       "max", "B/entry");
}

/* A figure of a run on PostgreSQL: no limits, no disk figures of ours. */
static void print_pg_figure(const struct config *c, const struct workload *w, uint32_t threads,
                            const struct figure *f)
{
	uint32_t pool = c->pg.pool ? c->pg.pool : threads;
	if (c->json) {
		printf("{\"workload\":\"%s\",\"engine\":\"postgres\",\"threads\":%u,\"pool\":%u"
		       ",\"keys\":%" PRIu64 ",\"ops\":%" PRIu64 ",\"seconds\":%.4f,\"ops_per_s\":%.0f"
		       ",\"p50_ns\":%.0f,\"p90_ns\":%.0f,\"p99_ns\":%.0f,\"p999_ns\":%.0f,\"max_ns\":%.0f"
		       ",\"statements_per_op\":%.2f,\"statement_us_per_op\":%.1f"
		       ",\"cpu_us_per_op\":%.3f,\"csw_per_op\":%.4f}\n",
		       w->name, threads, pool, c->keys, f->ops, f->seconds, f->ops_per_s, f->lat_ns[0],
		       f->lat_ns[1], f->lat_ns[2], f->lat_ns[3], f->lat_ns[4], f->pg_statements_per_op,
		       f->pg_statement_us_per_op, f->cpu_us_per_op, f->csw_per_op);
	} else {
		char b[4][16];
		printf("%-24s %7u %12.0f %8s %8s %8s %8s %8.2f %9.1f %9.2f %7.3f\n", w->what, threads, f->ops_per_s,
		       fmt_ns(b[0], f->lat_ns[0]), fmt_ns(b[1], f->lat_ns[2]), fmt_ns(b[2], f->lat_ns[3]),
		       fmt_ns(b[3], f->lat_ns[4]), f->pg_statements_per_op, f->pg_statement_us_per_op,
		       f->cpu_us_per_op, f->csw_per_op);
	}
	fflush(stdout);
}

static void print_figure(const struct config *c, const struct workload *w, uint32_t threads,
                         const struct figure *f, const struct figure *raw, const struct figure *ins)
{
	double frac_raw = raw ? f->ops_per_s / raw->ops_per_s : 0;
	double frac_ins = ins ? f->ops_per_s / ins->ops_per_s : 0;
	double frac_disk = f->disk_records_per_s > 0 ? f->ops_per_s / f->disk_records_per_s : 0;
	if (c->pg.conninfo != NULL) {
		print_pg_figure(c, w, threads, f);
		return;
	}
	if (c->json) {
		printf("{\"workload\":\"%s\",\"threads\":%u,\"keys\":%" PRIu64 ",\"ops\":%" PRIu64 ",\"seconds\":%.4f"
		       ",\"ops_per_s\":%.0f,\"p50_ns\":%.0f,\"p90_ns\":%.0f,\"p99_ns\":%.0f,\"p999_ns\":%.0f"
		       ",\"max_ns\":%.0f,\"bytes_per_entry\":%.0f,\"durable\":%s,\"sync\":\"%s\"",
		       w->name, threads, c->keys, f->ops, f->seconds, f->ops_per_s, f->lat_ns[0], f->lat_ns[1],
		       f->lat_ns[2], f->lat_ns[3], f->lat_ns[4], f->bytes_per_entry, c->durable ? "true" : "false",
		       sync_name(c->sync));
		if (raw)
			printf(",\"raw_ops_per_s\":%.0f,\"fraction_of_raw\":%.3f", raw->ops_per_s, frac_raw);
		if (ins)
			printf(",\"raw_insert_ops_per_s\":%.0f,\"fraction_of_raw_insert\":%.3f", ins->ops_per_s,
			       frac_ins);
		if (c->durable)
			printf(",\"records_per_sync\":%.2f,\"syncs_per_s\":%.0f,\"log_bytes_per_op\":%.1f",
			       f->records_per_sync, f->syncs_per_s, f->log_bytes_per_op);
		printf(",\"cpu_us_per_op\":%.3f,\"csw_per_op\":%.4f", f->cpu_us_per_op, f->csw_per_op);
		if (f->disk_records_per_s > 0)
			printf(",\"disk_records_per_s\":%.0f,\"fraction_of_disk\":%.3f", f->disk_records_per_s, frac_disk);
		if (w->kind == KIND_MIX)
			printf(",\"mix_calls_per_login\":%u,\"mix_nonce_every\":%u,\"mix_rotate_every\":%u",
			       c->mix.calls_per_login, c->mix.nonce_every, c->mix.rotate_every);
		printf("}\n");
	} else {
		char b[4][16], frac[16] = "-", frac2[16] = "-";
		if (c->durable) {
			if (f->disk_records_per_s > 0)
				snprintf(frac, sizeof frac, "%.0f%%", 100 * frac_disk);
			printf("%-24s %7u %12.0f %7s %8s %8s %8s %8s %9.2f %8.0f %8.1f %8.0f %9.2f %7.3f\n", w->what,
			       threads, f->ops_per_s, frac, fmt_ns(b[0], f->lat_ns[0]), fmt_ns(b[1], f->lat_ns[2]),
			       fmt_ns(b[2], f->lat_ns[3]), fmt_ns(b[3], f->lat_ns[4]), f->records_per_sync,
			       f->syncs_per_s, f->log_bytes_per_op, f->bytes_per_entry, f->cpu_us_per_op, f->csw_per_op);
		} else {
			if (raw)
				snprintf(frac, sizeof frac, "%.0f%%", 100 * frac_raw);
			if (ins)
				snprintf(frac2, sizeof frac2, "%.0f%%", 100 * frac_ins);
			printf("%-24s %7u %12.0f %7s %7s %8s %8s %8s %8s %8.0f\n", w->what, threads, f->ops_per_s, frac,
			       frac2, fmt_ns(b[0], f->lat_ns[0]), fmt_ns(b[1], f->lat_ns[2]), fmt_ns(b[2], f->lat_ns[3]),
			       fmt_ns(b[3], f->lat_ns[4]), f->bytes_per_entry);
		}
	}
	fflush(stdout);
}

/* ---- --inflight: the _async calls, N tickets outstanding per thread ---- */

#if ONCEBENCH_ASYNC
static void print_inflight_header(const struct config *c)
{
	if (c->json)
		return;
	char limit[64] = "";
	if (c->duration > 0)
		snprintf(limit, sizeof limit, ", phases of at most %.1f s", c->duration);
	printf("oncestore with a data directory (sync %s), _async calls, each thread an event loop\n"
	       "keeping N tickets outstanding (poll on once_ticket_fd, once_tickets_drain):\n"
	       "%" PRIu64 " keys%s, median of %d runs\n"
	       "'durable': latency from the call to the loop seeing its ticket durable; 'call': the\n"
	       "  _async call itself (the bar: p99 <= 10 us); HDR-style histograms;\n"
	       "'of disk': ops/s as a fraction of the raw group-commit limit at the same batch\n"
	       "  (rec/sync records of log B/op bytes per pwrite, then fdatasync, one thread, same\n"
	       "  disk, this run) on a growing file ('app') and a preallocated zero-filled one\n"
	       "  ('pre'); 'CPU us/op', 'csw/op': user + system CPU and context switches of the whole\n"
	       "  process over the timed phase, per operation\n\n"
	       "%-16s %4s %6s %10s %6s %6s %8s %8s %8s %7s %7s %7s %8s %8s %9s %7s\n",
	       sync_name(c->sync), c->keys, limit, c->runs, "operation", "thr", "inflt", "ops/s", "app", "pre",
	       "dur p50", "dur p99", "dur p999", "call50", "call99", "call999", "rec/sync", "log B/op",
	       "CPU us/op", "csw/op");
}

static void print_inflight(const struct config *c, const struct workload *w, uint32_t threads,
                           uint32_t inflight, const struct figure *f)
{
	double fa = f->disk_append_per_s > 0 ? f->ops_per_s / f->disk_append_per_s : 0;
	double fp = f->disk_prealloc_per_s > 0 ? f->ops_per_s / f->disk_prealloc_per_s : 0;
	if (c->json) {
		printf("{\"workload\":\"%s\",\"mode\":\"inflight\",\"threads\":%u,\"inflight\":%u"
		       ",\"keys\":%" PRIu64 ",\"ops\":%" PRIu64 ",\"seconds\":%.4f,\"ops_per_s\":%.0f"
		       ",\"durable_p50_ns\":%.0f,\"durable_p90_ns\":%.0f,\"durable_p99_ns\":%.0f"
		       ",\"durable_p999_ns\":%.0f,\"durable_max_ns\":%.0f"
		       ",\"call_p50_ns\":%.0f,\"call_p90_ns\":%.0f,\"call_p99_ns\":%.0f,\"call_p999_ns\":%.0f"
		       ",\"call_max_ns\":%.0f,\"p99_ns\":%.0f,\"durable\":true,\"sync\":\"%s\""
		       ",\"records_per_sync\":%.2f,\"syncs_per_s\":%.0f,\"log_bytes_per_op\":%.1f"
		       ",\"cpu_us_per_op\":%.3f,\"csw_per_op\":%.4f,\"polls_per_op\":%.4f,\"poll_timeouts\":%.0f",
		       w->name, threads, inflight, c->keys, f->ops, f->seconds, f->ops_per_s, f->lat_ns[0],
		       f->lat_ns[1], f->lat_ns[2], f->lat_ns[3], f->lat_ns[4], f->call_ns[0], f->call_ns[1],
		       f->call_ns[2], f->call_ns[3], f->call_ns[4], f->lat_ns[2], sync_name(c->sync),
		       f->records_per_sync, f->syncs_per_s, f->log_bytes_per_op, f->cpu_us_per_op, f->csw_per_op,
		       f->poll_waits_per_op, f->poll_timeouts);
		if (f->disk_append_per_s > 0)
			printf(",\"disk_append_records_per_s\":%.0f,\"fraction_of_disk_append\":%.3f"
			       ",\"disk_prealloc_records_per_s\":%.0f,\"fraction_of_disk_prealloc\":%.3f",
			       f->disk_append_per_s, fa, f->disk_prealloc_per_s, fp);
		printf("}\n");
	} else {
		char b[6][16], app[16] = "-", pre[16] = "-";
		if (f->disk_append_per_s > 0) {
			snprintf(app, sizeof app, "%.0f%%", 100 * fa);
			snprintf(pre, sizeof pre, "%.0f%%", 100 * fp);
		}
		printf("%-16s %4u %6u %10.0f %6s %6s %8s %8s %8s %7s %7s %7s %8.1f %8.1f %9.2f %7.3f\n", w->what,
		       threads, inflight, f->ops_per_s, app, pre, fmt_ns(b[0], f->lat_ns[0]),
		       fmt_ns(b[1], f->lat_ns[2]), fmt_ns(b[2], f->lat_ns[3]), fmt_ns(b[3], f->call_ns[0]),
		       fmt_ns(b[4], f->call_ns[2]), fmt_ns(b[5], f->call_ns[3]), f->records_per_sync,
		       f->log_bytes_per_op, f->cpu_us_per_op, f->csw_per_op);
	}
	fflush(stdout);
}

static int inflight_bench(struct config *c)
{
	bool all = strcmp(c->workload, "all") == 0;
	const struct workload *list[16];
	size_t nlist = 0;
	for (size_t k = 0; k < nworkloads; k++)
		if (workloads[k].async != NULL && (all || strcmp(c->workload, workloads[k].name) == 0))
			list[nlist++] = &workloads[k];
	if (nlist == 0) {
		fprintf(stderr, "oncebench: --inflight: workload %s has no _async form\n", c->workload);
		return 2;
	}
	print_inflight_header(c);
	for (size_t k = 0; k < nlist; k++)
		for (int t = 0; t < c->nthreads; t++)
			for (int n = 0; n < c->ninflight; n++) {
				struct figure f = median_of_runs(c, list[k], c->threads[t], c->inflight[n]);
				print_inflight(c, list[k], c->threads[t], c->inflight[n], &f);
			}
	reopen_last(c);
	return 0;
}
#endif

/* ---- --workload empty: what an empty store costs ---- */

/*
 * once_options_init defaults (1 Mi capacity per kind, one shard per CPU, a
 * sweeper thread) and nothing else, opened and closed EMPTY_OPENS times per
 * run: memory-only; with a fresh data directory (created by once_open); a
 * reopen of an empty data directory (formatted by one open + close before,
 * not timed); and once_checkpoint of an empty store with a data directory.
 * Each run's figure is the median of its EMPTY_OPENS (fewer when a case has
 * taken EMPTY_CASE_S in the run: a store whose empty open costs seconds
 * would otherwise hold bench/run.sh for many minutes), the report the
 * median of the runs, each column on its own; 'worst' is the slowest of
 * all.  RSS growth: RSS after once_open minus RSS before it (after
 * malloc_trim).  The bars of issue 10 are printed beside the figures; the
 * bench does not fail on them.
 */
#define EMPTY_OPENS 20
#define EMPTY_CASE_S 1.0
#define EMPTY_BAR_MS 10.0
#define EMPTY_BAR_MIB 4.0

enum empty_case { EMPTY_MEMORY, EMPTY_FRESH_DIR, EMPTY_REOPEN, EMPTY_CHECKPOINT, EMPTY_CASES };

static const char *const empty_names[EMPTY_CASES] = {"memory", "fresh_dir", "reopen", "checkpoint"};
static const char *const empty_what[EMPTY_CASES] = {
	"memory-only", "fresh data directory", "reopen of an empty data dir", "checkpoint of an empty store"};

struct empty_sample {
	double open_ms, close_ms, both_ms, rss_mib, checkpoint_ms;
};

static once_store *open_defaults(const char *dir)
{
	once_options o;
	once_options_init(&o);
	o.log = bench_log;
	o.dir = dir;
	once_store *s;
	once_status st = once_open(&o, &s);
	if (st != ONCE_OK)
		die("once_open", st);
	return s;
}

static struct empty_sample empty_once(const struct config *c, enum empty_case ec)
{
	struct empty_sample e = {0};
	char dir[256] = "";
	if (ec != EMPTY_MEMORY)
		make_data_dir(c, dir);
	if (ec == EMPTY_REOPEN && once_close(open_defaults(dir)) != ONCE_OK)
		die("once_close", ONCE_IO);
	malloc_trim(0);
	double rss0 = rss_bytes();
	uint64_t t0 = now_ns();
	once_options o;
	once_options_init(&o);
	o.log = bench_log;
	o.dir = dir[0] ? dir : NULL;
	once_store *s;
	once_status st = once_open(&o, &s);
	uint64_t t1 = now_ns();
	if (st != ONCE_OK)
		die("once_open", st);
	e.rss_mib = (rss_bytes() - rss0) / (1024.0 * 1024.0);
	if (ec == EMPTY_CHECKPOINT) {
		uint64_t c0 = now_ns();
		st = once_checkpoint(s);
		e.checkpoint_ms = (double)(now_ns() - c0) / 1e6;
		if (st != ONCE_OK)
			die("once_checkpoint", st);
	}
	uint64_t t2 = now_ns();
	st = once_close(s);
	uint64_t t3 = now_ns();
	if (st != ONCE_OK)
		die("once_close", st);
	e.open_ms = (double)(t1 - t0) / 1e6;
	e.close_ms = (double)(t3 - t2) / 1e6;
	e.both_ms = e.open_ms + e.close_ms;
	if (dir[0])
		remove_data_dir(dir);
	return e;
}

static double median_of(double *v, int n)
{
	qsort(v, (size_t)n, sizeof v[0], cmp_double);
	return v[n / 2];
}

/* The median of each field of v[0..n) on its own. */
static struct empty_sample empty_median(const struct empty_sample *v, int n)
{
	double x[5][EMPTY_OPENS > 32 ? EMPTY_OPENS : 32];
	for (int i = 0; i < n; i++) {
		x[0][i] = v[i].open_ms;
		x[1][i] = v[i].close_ms;
		x[2][i] = v[i].both_ms;
		x[3][i] = v[i].rss_mib;
		x[4][i] = v[i].checkpoint_ms;
	}
	return (struct empty_sample){median_of(x[0], n), median_of(x[1], n), median_of(x[2], n),
	                             median_of(x[3], n), median_of(x[4], n)};
}

static const char *met(bool ok)
{
	return ok ? "met" : "MISSED";
}

static int empty_bench(const struct config *c)
{
	struct empty_sample med[EMPTY_CASES][32], worst[EMPTY_CASES] = {{0}};
	int samples[EMPTY_CASES] = {0};
	for (int r = 0; r < c->runs; r++)
		for (int ec = 0; ec < EMPTY_CASES; ec++) {
			struct empty_sample v[EMPTY_OPENS];
			double t0 = now_s();
			int n = 0;
			for (int i = 0; i < EMPTY_OPENS && (i == 0 || now_s() - t0 < EMPTY_CASE_S); i++, n++) {
				v[i] = empty_once(c, (enum empty_case)ec);
				struct empty_sample *w = &worst[ec];
				w->open_ms = v[i].open_ms > w->open_ms ? v[i].open_ms : w->open_ms;
				w->close_ms = v[i].close_ms > w->close_ms ? v[i].close_ms : w->close_ms;
				w->both_ms = v[i].both_ms > w->both_ms ? v[i].both_ms : w->both_ms;
				w->rss_mib = v[i].rss_mib > w->rss_mib ? v[i].rss_mib : w->rss_mib;
				if (v[i].checkpoint_ms > w->checkpoint_ms)
					w->checkpoint_ms = v[i].checkpoint_ms;
			}
			med[ec][r] = empty_median(v, n);
			samples[ec] += n;
		}
	const char *base = c->dir ? c->dir : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	if (!c->json)
		printf("empty store: once_options_init defaults (1 Mi capacity per kind, one shard per CPU,\n"
		       "sweeper on, sync always), data directories under %s; up to %d opens per case\n"
		       "and run ('n': in all), median of each run, median of %d runs, each column on its\n"
		       "own; 'worst': the slowest of all; RSS: growth from before once_open to after it\n\n"
		       "%-30s %4s %8s %8s %10s %9s %8s  %s\n",
		       base, EMPTY_OPENS, c->runs, "case", "n", "open ms", "close ms", "open+close", "worst o+c",
		       "RSS MiB", "bars (issue 10)");
	for (int ec = 0; ec < EMPTY_CASES; ec++) {
		struct empty_sample m = empty_median(med[ec], c->runs), *w = &worst[ec];
		if (c->json) {
			printf("{\"workload\":\"empty\",\"case\":\"%s\",\"runs\":%d,\"opens\":%d"
			       ",\"open_ms\":%.3f,\"close_ms\":%.3f,\"open_close_ms\":%.3f,\"worst_open_close_ms\":%.3f"
			       ",\"rss_growth_mib\":%.2f,\"worst_rss_growth_mib\":%.2f",
			       empty_names[ec], c->runs, samples[ec], m.open_ms, m.close_ms, m.both_ms, w->both_ms,
			       m.rss_mib, w->rss_mib);
			if (ec == EMPTY_CHECKPOINT)
				printf(",\"checkpoint_ms\":%.3f,\"worst_checkpoint_ms\":%.3f", m.checkpoint_ms,
				       w->checkpoint_ms);
			printf("}\n");
		} else if (ec == EMPTY_CHECKPOINT) {
			printf("%s (fresh data directory, n %d): once_checkpoint %.3f ms, worst %.3f ms  "
			       "bar: < %.0f ms (%s)\n",
			       empty_what[ec], samples[ec], m.checkpoint_ms, w->checkpoint_ms, EMPTY_BAR_MS,
			       met(m.checkpoint_ms < EMPTY_BAR_MS));
		} else {
			printf("%-30s %4d %8.3f %8.3f %10.3f %9.3f %8.2f  "
			       "bar: open+close < %.0f ms (%s), RSS < %.0f MiB (%s)\n",
			       empty_what[ec], samples[ec], m.open_ms, m.close_ms, m.both_ms, w->both_ms, m.rss_mib,
			       EMPTY_BAR_MS, met(m.both_ms < EMPTY_BAR_MS), EMPTY_BAR_MIB, met(m.rss_mib < EMPTY_BAR_MIB));
		}
	}
	return 0;
}

/* ---- --workload growth: inserts while the tables grow, against presized ---- */

/*
 * Code put and replay check from an empty store up to --keys live entries
 * (capacity --keys + 1 for the kind), on a store with default options
 * (tables start small and grow) and on one with o.presize_tables = true,
 * runs interleaved (grow, presized, grow, ...) so that both see the same
 * machine.  Each figure is the median of the runs, field by field (ops/s,
 * each percentile, B/entry on its own); 'worst' is the largest max of any
 * run.  Latency covers every call of the whole fill, so a stall while a
 * table grows shows in p999 and max.
 */
static struct figure figure_median(const struct figure *v, int n, double *worst_max)
{
	double x[SVG_QUANTILES + 2][32];
	*worst_max = 0;
	for (int i = 0; i < n; i++) {
		x[0][i] = v[i].ops_per_s;
		x[1][i] = v[i].bytes_per_entry;
		for (int q = 0; q < SVG_QUANTILES; q++)
			x[2 + q][i] = v[i].lat_ns[q];
		if (v[i].lat_ns[SVG_QUANTILES - 1] > *worst_max)
			*worst_max = v[i].lat_ns[SVG_QUANTILES - 1];
	}
	struct figure m = {.ops_per_s = median_of(x[0], n), .bytes_per_entry = median_of(x[1], n)};
	for (int q = 0; q < SVG_QUANTILES; q++)
		m.lat_ns[q] = median_of(x[2 + q], n);
	return m;
}

static void print_growth_row(const struct config *c, const struct workload *w, uint32_t threads,
                             const char *tables, const struct figure *f, double worst)
{
	if (c->json) {
		printf("{\"workload\":\"growth\",\"operation\":\"%s\",\"threads\":%u,\"keys\":%" PRIu64
		       ",\"tables\":\"%s\",\"runs\":%d,\"ops_per_s\":%.0f,\"p50_ns\":%.0f,\"p90_ns\":%.0f"
		       ",\"p99_ns\":%.0f,\"p999_ns\":%.0f,\"max_ns\":%.0f,\"worst_max_ns\":%.0f"
		       ",\"bytes_per_entry\":%.0f}\n",
		       w->name, threads, c->keys, tables, c->runs, f->ops_per_s, f->lat_ns[0], f->lat_ns[1],
		       f->lat_ns[2], f->lat_ns[3], f->lat_ns[4], worst, f->bytes_per_entry);
		return;
	}
	char b[5][16];
	printf("%-16s %7u %-14s %12.0f %8s %8s %8s %8s %8s %8.0f\n", w->what, threads, tables, f->ops_per_s,
	       fmt_ns(b[0], f->lat_ns[0]), fmt_ns(b[1], f->lat_ns[2]), fmt_ns(b[2], f->lat_ns[3]),
	       fmt_ns(b[3], f->lat_ns[4]), fmt_ns(b[4], worst), f->bytes_per_entry);
}

static int growth_bench(struct config *c)
{
	static const char *const names[] = {"put", "replay"};
	if (!c->json)
		printf("growth: inserts from an empty store to %" PRIu64 " live entries (capacity %" PRIu64 "),\n"
		       "default options (tables grow) against o.presize_tables = true, runs interleaved;\n"
		       "each figure the median of %d runs; latency per call over the whole fill;\n"
		       "'worst': the largest max of any run; 'B/entry': RSS growth per live entry\n\n"
		       "%-16s %7s %-14s %12s %8s %8s %8s %8s %8s %8s\n",
		       c->keys, c->keys + 1, c->runs, "operation", "threads", "tables", "ops/s", "p50", "p99", "p999",
		       "max", "worst", "B/entry");
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		const struct workload *w = find_workload(names[k]);
		for (int t = 0; t < c->nthreads; t++) {
			struct figure grow[32], pre[32];
			for (int r = 0; r < c->runs; r++) {
				c->presize = false;
				grow[r] = measure(c, w, c->threads[t], 0);
				c->presize = true;
				pre[r] = measure(c, w, c->threads[t], 0);
			}
			c->presize = false;
			double gw, pw;
			struct figure g = figure_median(grow, c->runs, &gw), p = figure_median(pre, c->runs, &pw);
			print_growth_row(c, w, c->threads[t], "grow", &g, gw);
			print_growth_row(c, w, c->threads[t], "presized", &p, pw);
			double r_ops = g.ops_per_s / p.ops_per_s, r_p99 = g.lat_ns[2] / p.lat_ns[2],
			       r_p999 = g.lat_ns[3] / p.lat_ns[3], r_max = g.lat_ns[4] / p.lat_ns[4];
			if (c->json)
				printf("{\"workload\":\"growth\",\"operation\":\"%s\",\"threads\":%u,\"keys\":%" PRIu64
				       ",\"ratio\":\"grow/presized\",\"ops_per_s\":%.3f,\"p99\":%.3f,\"p999\":%.3f"
				       ",\"max\":%.3f,\"worst_max\":%.3f}\n",
				       w->name, c->threads[t], c->keys, r_ops, r_p99, r_p999, r_max, gw / pw);
			else
				printf("%-16s %7u %-14s %11.2fx %8s %7.2fx %7.2fx %7.2fx %7.2fx %8s\n", w->what, c->threads[t],
				       "grow/presized", r_ops, "", r_p99, r_p999, r_max, gw / pw, "");
			fflush(stdout);
		}
	}
	return 0;
}

/* ---- command line ---- */

static void usage(void)
{
	printf("usage: oncebench [options]\n"
	       "  --workload W   all (default: every single operation), put, get, take,\n"
	       "                 nonce_issue, nonce_accept, replay, refresh_insert,\n"
	       "                 refresh_consume, refresh_rotate, refresh_revoke,\n"
	       "                 raw (bare cds_lfht lookup+CAS: the in-memory limit of\n"
	       "                 lookups), raw_insert (bare cds_lfht insert into a growing\n"
	       "                 table, slab-allocated nodes: the limit of inserts),\n"
	       "                 mix (the gateway mix, below), log, recover, empty,\n"
	       "                 growth (below); in memory, raw and raw_insert are always\n"
	       "                 measured first ('of raw', 'of ins' columns)\n"
	       "  --threads L    comma-separated thread counts, 1..1024 (default 1,2; with\n"
	       "                 --inflight 1)\n"
	       "  --keys N       live entries per run (default 200000); for mix, API calls\n"
	       "  --runs N       runs per figure; the median is reported (default 3)\n"
	       "  --duration S   run each timed phase for at most S seconds: single-use keys\n"
	       "                 cannot be used twice, so a thread stops at the deadline or\n"
	       "                 at the end of its slice of --keys, whichever comes first\n"
	       "                 (raise --keys to make the time the limit)\n"
	       "  --shards N     store shards (default 0 = one per CPU)\n"
	       "  --durable      give each run's store a fresh data directory (with --sync);\n"
	       "                 adds records per sync, syncs/s, log bytes per op, with sync\n"
	       "                 always the durable limit ('of disk': raw log records of the\n"
	       "                 same size, same threads, same disk), and at the end the\n"
	       "                 time to reopen (recover) the last run's data; with every\n"
	       "                 store figure: CPU us and context switches per op\n"
	       "  --inflight L   comma-separated outstanding tickets per thread (implies\n"
	       "                 --durable): each thread an event loop making the _async\n"
	       "                 calls (the workload's op; every write workload has one)\n"
	       "                 until L are outstanding, then poll(once_ticket_fd) and\n"
	       "                 once_tickets_drain, retiring every durable ticket: ops/s,\n"
	       "                 latency submit->durable and of the call itself, records\n"
	       "                 per sync, CPU us and context switches per op, and 'of\n"
	       "                 disk' (sync always): the raw group-commit limit at the\n"
	       "                 same batch (pwrite of rec/sync records + fdatasync, one\n"
	       "                 thread) on a growing and on a preallocated file\n"
	       "  --sync M       always (default), interval or none\n"
	       "  --no-reopen    with --durable or --inflight: skip the timed reopen at the end\n"
	       "  --dir DIR      base of the temporary data directories (default $TMPDIR or /tmp)\n"
	       "  --json         one JSON object per figure instead of the table\n"
	       "  --svg FILE     also draw the figures as a self-contained SVG: ops/s against\n"
	       "                 threads, latency percentiles at the highest thread count\n"
	       "  --selftest     check the latency histogram's percentile math and exit\n"
	       "  --postgres CONNINFO  run the workloads on the PostgreSQL engine\n"
	       "                 (once_options.postgres: a libpq connection string or URI) against\n"
	       "                 a server with AttestoPhoenix 3.5.1's tables (`oncestore schema`);\n"
	       "                 each run makes keys of its own and leaves its rows: use a scratch\n"
	       "                 database.  Prefills run on 16 connections of a store of their own\n"
	       "                 with synchronous_commit=off (PGOPTIONS; a connection string's own\n"
	       "                 options win), then VACUUM ANALYZE + CHECKPOINT, untimed.  Expiries\n"
	       "                 are now + 1 day, families are bound to an issuer claim, rotations\n"
	       "                 seal their successor (the child token, keyed by its hash).  No\n"
	       "                 'of raw' / 'of ins' columns: the in-memory limits say nothing about a\n"
	       "                 server; instead statements per call and their time.  Not with\n"
	       "                 --dir, --durable, --inflight, or the workloads log, recover, empty,\n"
	       "                 growth\n"
	       "  --pg-schema S  the tables' PostgreSQL schema (once_options.pg_schema)\n"
	       "  --pg-pool N    connections in the pool (once_options.pg_pool_size; default:\n"
	       "                 the phase's thread count)\n"
	       "gateway mix (--workload mix): per simulated login code put, take, finalize\n"
	       "  and refresh insert; per API call a replay check (jkt:UUIDv4 jti), every\n"
	       "  N-th call a nonce issue + accept, every M-th a refresh rotation; every\n"
	       "  store call counts as one operation and is timed\n"
	       "  --mix-calls-per-login K  (default 20)\n"
	       "  --mix-nonce-every N      (default 10)\n"
	       "  --mix-rotate-every M     (default 50)\n"
	       "--workload log: the durable log alone (wal/log.c group commit): --keys\n"
	       "  records of 64 bytes in a temporary directory, with --sync and\n"
	       "  --logs N       segment files the threads are spread over (default 1)\n"
	       "--workload recover: fill a data directory with --keys log records, then\n"
	       "  time once_open recovering it (records/s)\n"
	       "--workload empty: once_open + once_close of an empty store with default\n"
	       "  options (memory-only, fresh data directory, reopen of an empty one) and\n"
	       "  once_checkpoint of an empty store, up to 20 times per run: open, close and\n"
	       "  open+close ms, RSS growth while open, beside issue 10's bars (open+close\n"
	       "  < 10 ms, RSS < 4 MiB, checkpoint < 10 ms)\n"
	       "--workload growth: code put and replay check from an empty store to --keys\n"
	       "  live entries at each --threads, default options (tables grow) against\n"
	       "  o.presize_tables = true, runs interleaved: ops/s, p50/p99/p999/max over\n"
	       "  the whole fill, and the ratios grow/presized (in memory only)\n");
}

/* A comma-separated list of at most 16 numbers in [1, max] into v. */
static int parse_list(uint32_t v[16], const char *list, long max, const char *what)
{
	int n = 0;
	char *copy = strdup(list), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save)) {
		long x = strtol(t, NULL, 10);
		if (x < 1 || x > max) {
			fprintf(stderr, "oncebench: %s are 1..%ld\n", what, max);
			exit(2);
		}
		v[n++] = (uint32_t)x;
	}
	free(copy);
	return n;
}

static void parse_args(struct config *c, int argc, char **argv)
{
	*c = (struct config){.workload = "all", .keys = 200000, .runs = 3, .nthreads = 2, .threads = {1, 2},
	                     .logs = 1, .sync = ONCE_SYNC_ALWAYS,
	                     .mix = {.calls_per_login = 20, .nonce_every = 10, .rotate_every = 50}};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage();
			exit(0);
		} else if (strcmp(a, "--selftest") == 0) {
			exit(hist_selftest() ? 0 : 1);
		} else if (strcmp(a, "--json") == 0) {
			c->json = true;
		} else if (strcmp(a, "--durable") == 0) {
			c->durable = true;
		} else if (strcmp(a, "--no-reopen") == 0) {
			c->no_reopen = true;
		} else if (v == NULL) {
			usage();
			exit(2);
		} else if (strcmp(a, "--workload") == 0) {
			c->workload = argv[++i];
		} else if (strcmp(a, "--threads") == 0) {
			c->nthreads = parse_list(c->threads, argv[++i], 1024, "thread counts");
			c->threads_set = true;
		} else if (strcmp(a, "--inflight") == 0) {
			c->ninflight = parse_list(c->inflight, argv[++i], 1 << 20, "tickets in flight");
			c->durable = true;
		} else if (strcmp(a, "--keys") == 0) {
			c->keys = strtoull(argv[++i], NULL, 10);
		} else if (strcmp(a, "--runs") == 0) {
			c->runs = atoi(argv[++i]);
		} else if (strcmp(a, "--duration") == 0) {
			c->duration = strtod(argv[++i], NULL);
		} else if (strcmp(a, "--dir") == 0) {
			c->dir = argv[++i];
		} else if (strcmp(a, "--svg") == 0) {
			c->svg = argv[++i];
		} else if (strcmp(a, "--mix-calls-per-login") == 0) {
			c->mix.calls_per_login = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--mix-nonce-every") == 0) {
			c->mix.nonce_every = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--mix-rotate-every") == 0) {
			c->mix.rotate_every = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--postgres") == 0) {
			c->pg.conninfo = argv[++i];
		} else if (strcmp(a, "--pg-schema") == 0) {
			c->pg.schema = argv[++i];
		} else if (strcmp(a, "--pg-pool") == 0) {
			long n = strtol(argv[++i], NULL, 10);
			if (n < 1 || n > 1024) {
				fprintf(stderr, "oncebench: --pg-pool is 1..1024\n");
				exit(2);
			}
			c->pg.pool = (uint32_t)n;
		} else if (strcmp(a, "--shards") == 0) {
			c->shards = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--logs") == 0) {
			c->logs = (uint32_t)strtoul(argv[++i], NULL, 10);
		} else if (strcmp(a, "--sync") == 0) {
			const char *m = argv[++i];
			c->sync = strcmp(m, "always") == 0     ? ONCE_SYNC_ALWAYS
			          : strcmp(m, "interval") == 0 ? ONCE_SYNC_INTERVAL
			          : strcmp(m, "none") == 0     ? ONCE_SYNC_NONE
			                                       : (once_sync_mode)-1;
		} else {
			usage();
			exit(2);
		}
	}
	if (c->keys < 1 || c->runs < 1 || c->runs > 31 || c->logs < 1 || c->logs > 64 ||
	    (unsigned)c->sync > ONCE_SYNC_NONE || c->duration < 0) {
		fprintf(stderr, "oncebench: --keys >= 1, --runs 1..31, --logs 1..64, "
		                "--sync always|interval|none, --duration >= 0\n");
		exit(2);
	}
	if (c->pg.conninfo == NULL && (c->pg.schema != NULL || c->pg.pool != 0)) {
		fprintf(stderr, "oncebench: --pg-schema and --pg-pool need --postgres\n");
		exit(2);
	}
	if (c->pg.conninfo != NULL) {
		/* A server keeps the data: no data directory, no log of ours. */
		const char *w = c->workload;
		if (c->dir != NULL || c->durable || c->ninflight > 0) {
			fprintf(stderr, "oncebench: --postgres goes with none of --dir, --durable, --inflight\n");
			exit(2);
		}
		if (strcmp(w, "log") == 0 || strcmp(w, "recover") == 0 || strcmp(w, "empty") == 0 ||
		    strcmp(w, "growth") == 0 || strcmp(w, "raw") == 0 || strcmp(w, "raw_insert") == 0) {
			fprintf(stderr, "oncebench: --workload %s is for the embedded store only\n", w);
			exit(2);
		}
		pg_bench_times();
	}
}

int main(int argc, char **argv)
{
	struct config c;
	parse_args(&c, argc, argv);
	if (c.ninflight > 0) {
#if ONCEBENCH_ASYNC
		if (!c.threads_set)
			c.nthreads = 1, c.threads[0] = 1;
		build_keys(c.keys, 0);
		int rc = inflight_bench(&c);
		free_keys();
		return rc;
#else
		fprintf(stderr, "oncebench: --inflight: built against a oncestore.h without the _async calls\n");
		return 2;
#endif
	}
	if (strcmp(c.workload, "log") == 0) {
		struct durable_config d = {.threads = c.threads, .nthreads = c.nthreads, .logs = c.logs,
		                           .records = c.keys, .sync = c.sync, .runs = c.runs, .json = c.json,
		                           .dir = c.dir};
		return durable_bench(&d);
	}
	if (strcmp(c.workload, "recover") == 0) {
		build_keys(c.keys, 0);
		return recover_bench(&c);
	}
	if (strcmp(c.workload, "empty") == 0)
		return empty_bench(&c);
	if (strcmp(c.workload, "growth") == 0) {
		if (c.durable) {
			fprintf(stderr, "oncebench: --workload growth is in memory only\n");
			return 2;
		}
		build_keys(c.keys, 0);
		int rc = growth_bench(&c);
		free_keys();
		return rc;
	}
	bool all = strcmp(c.workload, "all") == 0;
	const struct workload *only = all ? NULL : find_workload(c.workload);
	if (!all && only == NULL) {
		fprintf(stderr, "oncebench: unknown workload %s\n", c.workload);
		return 2;
	}
	if (only != NULL && only->kind == KIND_MIX && mix_logins(&c.mix, c.keys) == 0)
		return 2;
	build_keys(c.keys, 0);
	static struct svg_figure drawn[2 * 16 * 16];
	static char series[32][96];
	size_t ndrawn = 0, nseries = 0;
	/* In memory, the two raw baselines first, so every oncestore figure
	 * can be printed as a fraction of them. */
	struct figure raw[16], ins[16];
	bool with_raw = !c.durable && c.pg.conninfo == NULL;
	if (with_raw)
		for (int t = 0; t < c.nthreads; t++) {
			raw[t] = median_of_runs(&c, &raw_workload, c.threads[t], 0);
			ins[t] = median_of_runs(&c, &raw_insert_workload, c.threads[t], 0);
		}
	print_header(&c);
	const struct workload *list[16];
	size_t nlist = 0;
	if (all) {
		for (size_t w = 0; w < nworkloads; w++)
			if (workloads[w].kind != KIND_MIX)
				list[nlist++] = &workloads[w];
		if (with_raw) {
			list[nlist++] = &raw_workload;
			list[nlist++] = &raw_insert_workload;
		}
	} else {
		list[nlist++] = only;
	}
	for (size_t k = 0; k < nlist; k++) {
		const struct workload *w = list[k];
		bool is_raw = is_baseline(w);
		if (is_raw && !with_raw)
			continue; /* the in-memory limits say nothing about a disk-bound run or a server */
		snprintf(series[nseries], sizeof series[0], "%s%s%s", w->what, c.durable ? ", sync " : "",
		         c.durable ? sync_name(c.sync) : "");
		/* The durable limit, when measured, is drawn as a dashed series. */
		snprintf(series[nseries + 1], sizeof series[0], "%s: disk limit (raw log, same record size)", w->what);
		bool limit = false;
		for (int t = 0; t < c.nthreads; t++) {
			struct figure f = !is_raw || !with_raw ? median_of_runs(&c, w, c.threads[t], 0)
			                  : w->kind == KIND_RAW ? raw[t]
			                                        : ins[t];
			print_figure(&c, w, c.threads[t], &f, with_raw ? &raw[t] : NULL, with_raw ? &ins[t] : NULL);
			drawn[ndrawn] = (struct svg_figure){.series = series[nseries], .threads = c.threads[t],
			                                    .ops_per_s = f.ops_per_s};
			memcpy(drawn[ndrawn].lat_ns, f.lat_ns, sizeof f.lat_ns);
			ndrawn++;
			if (f.disk_records_per_s > 0) {
				drawn[ndrawn++] = (struct svg_figure){.series = series[nseries + 1],
				                                      .threads = c.threads[t],
				                                      .ops_per_s = f.disk_records_per_s};
				limit = true;
			}
		}
		nseries += limit ? 2 : 1;
	}
	reopen_last(&c);
	if (c.svg != NULL) {
		char title[160];
		snprintf(title, sizeof title, "oncebench: %s, %" PRIu64 " keys, %s, median of %d runs", c.workload,
		         c.keys, c.pg.conninfo != NULL ? "on PostgreSQL" : c.durable ? (c.sync == ONCE_SYNC_ALWAYS ? "sync always" : c.sync == ONCE_SYNC_INTERVAL ? "sync interval" : "sync none") : "in memory", c.runs);
		if (svg_write(c.svg, title, drawn, ndrawn) != 0) {
			perror("oncebench: --svg");
			return 1;
		}
	}
	free_keys();
	return 0;
}
