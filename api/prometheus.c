/*
 * api/prometheus.c - once_stats_prometheus: the store's figures
 * (once_stats_read) in the Prometheus text exposition format 0.0.4.
 *
 * Choices an operator relies on (README "Metrics" has the list):
 *   - every family has HELP and TYPE lines, names carry their unit
 *     (_seconds, _bytes) and counters end in _total;
 *   - series are stable: each family is written on every scrape, with
 *     the same label sets, so rate() and absent() behave.  The one
 *     exception is oncestore_operations_total: status="OK" is written
 *     for every operation (0 from open), any other status from its first
 *     occurrence (17 operations x 13 statuses would be 221 series, most
 *     of them 0 forever);
 *   - the embedded engine writes its log, sync, checkpoint, failure and
 *     recovery families whether or not it has a data directory (they read
 *     0 without one); the PostgreSQL engine writes entries per kind, the
 *     operations and its pool's figures instead (its other figures are
 *     the server's to export);
 *   - durations are exact decimals of whole nanoseconds, in seconds.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "oncestore.h"

/* Both engines' stores begin with the engine pointer (api/engine.h). */
static const struct once__engine *engine_of(once_store *s)
{
	return *(const struct once__engine *const *)(const void *)s;
}

/* The text so far: snprintf semantics over several calls.  len counts
 * every byte the whole text needs; buf holds the first cap - 1 of them. */
struct text {
	char *buf;
	size_t cap, len;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
	size_t room = t->len < t->cap ? t->cap - t->len : 0;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(room > 0 ? t->buf + t->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->len += (size_t)n;
}

/* A label value, escaped as the format wants: backslash, double quote
 * and line feed. */
static void put_label_value(struct text *t, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\')
			put(t, "\\\\");
		else if (*v == '"')
			put(t, "\\\"");
		else if (*v == '\n')
			put(t, "\\n");
		else
			put(t, "%c", *v);
	}
}

/* ns as seconds, an exact decimal without trailing zeros ("0.000001024",
 * "17.179869184", "3"). */
static void put_seconds(struct text *t, uint64_t ns)
{
	uint64_t sec = ns / 1000000000u, frac = ns % 1000000000u;
	if (frac == 0) {
		put(t, "%" PRIu64, sec);
		return;
	}
	int digits = 9;
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	put(t, "%" PRIu64 ".%0*" PRIu64, sec, digits, frac);
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u64(struct text *t, const char *name, uint64_t v)
{
	put(t, "%s %" PRIu64 "\n", name, v);
}

static void sample_seconds(struct text *t, const char *name, uint64_t ns)
{
	put(t, "%s ", name);
	put_seconds(t, ns);
	put(t, "\n");
}

/* One family with one sample, no labels. */
static void one(struct text *t, const char *name, const char *type, const char *help, uint64_t v)
{
	family(t, name, type, help);
	sample_u64(t, name, v);
}

static void one_seconds(struct text *t, const char *name, const char *type, const char *help,
                        uint64_t ns)
{
	family(t, name, type, help);
	sample_seconds(t, name, ns);
}

/* A timestamp of the store clock (unix seconds; 0 = never). */
static void one_time(struct text *t, const char *name, const char *help, int64_t at)
{
	family(t, name, "gauge", help);
	put(t, "%s %" PRId64 "\n", name, at);
}

/* ---- per kind ---- */

struct kind {
	const char *label;
	const once_kind_stats *k;
};

static size_t kinds_of(const struct once_stats *st, bool families, struct kind out[7])
{
	size_t n = 0;
	out[n++] = (struct kind){"code", &st->codes};
	out[n++] = (struct kind){"access_token", &st->access_tokens};
	out[n++] = (struct kind){"refresh", &st->refresh};
	out[n++] = (struct kind){"nonce", &st->nonces};
	out[n++] = (struct kind){"replay", &st->replays};
	if (families) {
		out[n++] = (struct kind){"refresh_family", &st->refresh_families};
		out[n++] = (struct kind){"access_family", &st->access_families};
	}
	return n;
}

enum kind_field { KF_ENTRIES, KF_BYTES, KF_CAPACITY, KF_SWEPT };

static void per_kind(struct text *t, const struct kind *ks, size_t n, const char *name,
                     const char *type, const char *help, enum kind_field f)
{
	family(t, name, type, help);
	for (size_t i = 0; i < n; i++) {
		const once_kind_stats *k = ks[i].k;
		uint64_t v = f == KF_ENTRIES ? k->entries
		             : f == KF_BYTES ? k->bytes
		             : f == KF_CAPACITY ? k->capacity
		                                : k->swept;
		put(t, "%s{kind=\"%s\"} %" PRIu64 "\n", name, ks[i].label, v);
	}
}

static void kinds(struct text *t, const struct once_stats *st, bool pg)
{
	struct kind ks[7];
	size_t n = kinds_of(st, !pg, ks);
	per_kind(t, ks, n, "oncestore_entries", "gauge",
	         "Live entries per kind, consumed ones included until swept.", KF_ENTRIES);
	if (pg)
		return; /* the server's tables: rows only (include/oncestore.h) */
	per_kind(t, ks, n, "oncestore_heap_bytes", "gauge", "Heap bytes of the live entries per kind.",
	         KF_BYTES);
	/* A read-only open (`oncestore stats`) has the inspecting tool's
	 * capacities, not the application's: left out rather than wrong. */
	if (!st->read_only)
		per_kind(t, ks, n, "oncestore_capacity", "gauge",
		         "Configured maximum of live entries per kind (the next insert past it is FULL).",
		         KF_CAPACITY);
	per_kind(t, ks, n, "oncestore_swept_total", "counter", "Entries removed by sweeps since open.",
	         KF_SWEPT);
}

static void operations(struct text *t, const struct once_stats *st)
{
	static const char name[] = "oncestore_operations_total";
	family(t, name, "counter",
	       "Calls per operation and outcome since open (status OK always written, others once seen).");
	for (int op = 0; op < ONCE_OP_COUNT; op++)
		for (int s = 0; s < ONCE_STATUS_COUNT; s++)
			if (s == ONCE_OK || st->ops[op][s] != 0)
				put(t, "%s{op=\"%s\",status=\"%s\"} %" PRIu64 "\n", name,
				    once_op_name((once_op)op), once_status_name((once_status)s), st->ops[op][s]);
}

/* ---- the embedded engine's log ---- */

/* Cumulative buckets with le in seconds: sync_buckets[i] counts syncs of
 * at most 2^(10 + i) ns, the last one the slower ones (+Inf). */
static void sync_histogram(struct text *t, const struct once_stats *st)
{
	static const char name[] = "oncestore_log_sync_seconds";
	family(t, name, "histogram", "Latency of the log's fdatasync calls since open.");
	uint64_t cumulative = 0;
	for (int i = 0; i < ONCE_SYNC_BUCKETS - 1; i++) {
		cumulative += st->sync_buckets[i];
		put(t, "%s_bucket{le=\"", name);
		put_seconds(t, (uint64_t)1 << (10 + i));
		put(t, "\"} %" PRIu64 "\n", cumulative);
	}
	/* +Inf and _count: every sync (the buckets add up to `syncs`; both
	 * come from one read under the log's lock). */
	cumulative += st->sync_buckets[ONCE_SYNC_BUCKETS - 1];
	put(t, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
	sample_seconds(t, "oncestore_log_sync_seconds_sum", st->sync_ns_total);
	sample_u64(t, "oncestore_log_sync_seconds_count", cumulative);

	static const char q[] = "oncestore_log_sync_quantile_seconds";
	family(t, q, "gauge",
	       "Log sync latency percentiles since open (within 6.25%); histogram_quantile over "
	       "oncestore_log_sync_seconds gives them per window.");
	const struct {
		const char *label;
		uint64_t ns;
	} qs[] = {{"0.5", st->sync_ns_p50}, {"0.99", st->sync_ns_p99}, {"0.999", st->sync_ns_p999}};
	for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
		put(t, "%s{quantile=\"%s\"} ", q, qs[i].label);
		put_seconds(t, qs[i].ns);
		put(t, "\n");
	}
	one_seconds(t, "oncestore_log_sync_max_seconds", "gauge", "The longest log sync since open.",
	            st->sync_ns_max);
}

static const char *errno_name(int e)
{
	const char *n = strerrorname_np(e);
	return n != NULL ? n : "unknown";
}

static void failure(struct text *t, const struct once_stats *st)
{
	one(t, "oncestore_log_write_failures_total", "counter",
	    "Failed writes to the log and the data directory since open.", st->write_failures);
	one(t, "oncestore_log_sync_failures_total", "counter",
	    "Failed fdatasync/fsync calls on the log and the data directory since open.",
	    st->sync_failures);
	one(t, "oncestore_log_failed", "gauge",
	    "1 when a log failure stopped writes (every write answers IO until the store is reopened).",
	    st->failure_errno != 0);
	one(t, "oncestore_log_failure_errno", "gauge", "errno of the failure that stopped writes; 0 = none.",
	    (uint64_t)(st->failure_errno < 0 ? 0 : st->failure_errno));
	one_time(t, "oncestore_log_failure_timestamp_seconds",
	         "When the failure that stopped writes happened (store clock, unix seconds; 0 = none).",
	         st->failure_at);
	static const char info[] = "oncestore_log_failure_info";
	family(t, info, "gauge",
	       "The failure that stopped writes: call and file, errno, byte offset (no sample while none).");
	if (st->failure_errno == 0)
		return;
	char op[sizeof st->failure_op + 1];
	memcpy(op, st->failure_op, sizeof st->failure_op);
	op[sizeof st->failure_op] = '\0';
	put(t, "%s{op=\"", info);
	put_label_value(t, op);
	put(t, "\",errno=\"%s\",offset=\"%" PRIu64 "\"} 1\n", errno_name(st->failure_errno),
	    st->failure_offset);
}

static void log_figures(struct text *t, const struct once_stats *st)
{
	one(t, "oncestore_log_bytes_total", "counter", "Bytes appended to the log since open.", st->log_bytes);
	one(t, "oncestore_log_records_total", "counter", "Records appended to the log since open.",
	    st->log_records);
	one(t, "oncestore_log_syncs_total", "counter", "fdatasync calls on the log since open.", st->syncs);
	one(t, "oncestore_log_synced_records_total", "counter",
	    "Records those syncs made durable (per sync: group commit).", st->synced_records);
	sync_histogram(t, st);
	failure(t, st);
	one(t, "oncestore_log_since_checkpoint_bytes", "gauge",
	    "Log bytes appended since the last checkpoint (or open): what the next recovery replays.",
	    st->log_bytes_since_checkpoint);
}

static void checkpoint_figures(struct text *t, const struct once_stats *st)
{
	one(t, "oncestore_checkpoints_total", "counter", "Checkpoints completed since open.", st->checkpoints);
	one(t, "oncestore_checkpoint_failures_total", "counter", "Checkpoints that failed since open.",
	    st->checkpoint_failures);
	one_time(t, "oncestore_checkpoint_last_timestamp_seconds",
	         "When the last checkpoint completed (store clock, unix seconds; 0 = none since open).",
	         st->last_checkpoint_at);
	one_seconds(t, "oncestore_checkpoint_last_duration_seconds", "gauge",
	            "How long the last successful checkpoint took.", st->checkpoint_ns_last);
	one_seconds(t, "oncestore_checkpoint_max_duration_seconds", "gauge",
	            "How long the longest successful checkpoint since open took.", st->checkpoint_ns_max);
}

static void recovery_figures(struct text *t, const struct once_stats *st)
{
	one_seconds(t, "oncestore_recovery_duration_seconds", "gauge",
	            "Time the last open spent recovering the data directory.", st->recovery_ns);
	static const char rec[] = "oncestore_recovered_records_total";
	family(t, rec, "counter", "Records read back at open, by source.");
	put(t, "%s{source=\"snapshot\"} %" PRIu64 "\n", rec, st->recovered_snapshot_records);
	put(t, "%s{source=\"log\"} %" PRIu64 "\n", rec, st->recovered_records);
	one(t, "oncestore_recovery_dropped_expired_total", "counter",
	    "Entries dropped at open because they had expired.", st->recovery_dropped_expired);
	one(t, "oncestore_recovery_torn_bytes", "gauge",
	    "Bytes of a torn log tail at open (a crash mid-append; never acknowledged): cut, or left "
	    "in place by a read-only open.",
	    st->recovery_torn_bytes);
	one(t, "oncestore_recovery_segments", "gauge", "Log segments read at open.", st->recovery_segments);
}

static void pg_figures(struct text *t, const struct once_stats *st)
{
	one(t, "oncestore_pg_pool_size", "gauge", "Connections the pool may hold.", st->pg_pool_size);
	one(t, "oncestore_pg_connections", "gauge", "Connections open now.", st->pg_connections);
	one(t, "oncestore_pg_connects_total", "counter", "Connections made since open.", st->pg_connects);
	one(t, "oncestore_pg_reconnects_total", "counter", "Connections made to replace a lost one.",
	    st->pg_reconnects);
	one(t, "oncestore_pg_errors_total", "counter",
	    "Statements that failed and connections that could not be made (each an IO).", st->pg_errors);
	one(t, "oncestore_pg_statements_total", "counter", "Statements run since open.", st->pg_statements);
	one_seconds(t, "oncestore_pg_statement_seconds_total", "counter",
	            "Time in statements since open, round trips included.", st->pg_statement_ns_total);
	one_seconds(t, "oncestore_pg_statement_max_seconds", "gauge", "The longest statement since open.",
	            st->pg_statement_ns_max);
}

ONCE_API size_t once_stats_prometheus(once_store *s, char *buf, size_t cap)
{
	if (buf == NULL)
		cap = 0;
	if (cap > 0)
		buf[0] = '\0';
	if (s == NULL)
		return 0;
	struct once_stats st;
	once_stats_read(s, &st, sizeof st);
	bool pg = strcmp(engine_of(s)->name, "postgres") == 0;
	struct text t = {buf, cap, 0};

	int v = once_version();
	family(&t, "oncestore_info", "gauge", "The library's version and the store's engine.");
	put(&t, "oncestore_info{version=\"%d.%d.%d\",engine=\"%s\"} 1\n", v / 1000000, v / 1000 % 1000,
	    v % 1000, pg ? "postgres" : "embedded");
	kinds(&t, &st, pg);
	operations(&t, &st);
	one(&t, "oncestore_sweeps_total", "counter", "Sweep passes run since open.", st.sweeps);
	if (pg) {
		pg_figures(&t, &st);
		return t.len;
	}
	one(&t, "oncestore_shards", "gauge", "Shards of the store.", st.shards);
	one(&t, "oncestore_table_bytes", "gauge", "Bytes of hash-table buckets now (tables grow).",
	    st.table_bytes);
	one(&t, "oncestore_read_only", "gauge", "1 when the store was opened read-only.", st.read_only);
	/* A read-only open writes nothing: its log, checkpoint and failure
	 * figures would be zeros that look like a running store's (those
	 * come from the running store's own text). */
	if (!st.read_only) {
		log_figures(&t, &st);
		checkpoint_figures(&t, &st);
	}
	recovery_figures(&t, &st);
	return t.len;
}
