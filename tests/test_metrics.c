/*
 * tests/test_metrics.c - the 0.3 figures of once_stats move as they say
 * (include/oncestore.h, struct once_stats), once_stats_read grows without
 * an ABI break, and once_stats_prometheus keeps snprintf's contract:
 *   - sync_buckets add up to syncs, the percentiles are ordered and at
 *     most the maximum;
 *   - a checkpoint sets its duration, a failed one counts and leaves it;
 *   - log_bytes_since_checkpoint grows with writes and a checkpoint
 *     resets it;
 *   - the family tables' fill: entries, bytes, capacity;
 *   - recovery figures: segments read, a torn tail's bytes;
 *   - a smaller caller struct is filled only up to its size, a larger one
 *     zeroed past the library's.
 * White-box: the checkpoint failure comes from wal/io.h's fsync.
 */
#include <errno.h>
#include <stddef.h>

#include "durable.h"
#include "io.h"

static void put_codes(once_store *s, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		char key[ONCE_SECRET_LEN + 1];
		test_key(key, prefix, (uint64_t)i);
		once_code c = test_code(100000);
		ASSERT_ST(once_code_put(s, key, strlen(key), &c), ONCE_OK);
	}
}

static once_store *open_dir(struct test_clock *clk, const char *dir)
{
	once_options o = test_durable_options(clk, dir);
	o.sync = ONCE_SYNC_ALWAYS;
	return test_open(&o);
}

/* Under ONCE_SYNC_ALWAYS every write syncs (one writer: one sync each). */
static void test_sync_histogram_adds_up_to_syncs(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_store *s = open_dir(&clk, dir);
	put_codes(s, "sync", 20);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT(st.syncs >= 20);
	uint64_t sum = 0;
	int highest = -1;
	for (int i = 0; i < ONCE_SYNC_BUCKETS; i++) {
		sum += st.sync_buckets[i];
		if (st.sync_buckets[i] != 0)
			highest = i;
	}
	ASSERT_EQ_U64(sum, st.syncs);
	/* The slowest sync lies in the highest bucket used: above the bound
	 * below it, at most its own (the last one is open). */
	ASSERT(highest >= 0);
	if (highest > 0)
		ASSERT(st.sync_ns_max > (uint64_t)1 << (10 + highest - 1));
	if (highest < ONCE_SYNC_BUCKETS - 1)
		ASSERT(st.sync_ns_max <= (uint64_t)1 << (10 + highest));
	ASSERT(st.sync_ns_p50 > 0);
	ASSERT(st.sync_ns_p50 <= st.sync_ns_p99);
	ASSERT(st.sync_ns_p99 <= st.sync_ns_p999);
	ASSERT(st.sync_ns_p999 <= st.sync_ns_max);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

static void test_checkpoint_duration_and_log_since_checkpoint(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_store *s = open_dir(&clk, dir);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.checkpoint_ns_last, 0);
	ASSERT_EQ_U64(st.log_bytes_since_checkpoint, 0);

	put_codes(s, "before", 5);
	once_stats(s, &st);
	uint64_t after5 = st.log_bytes_since_checkpoint;
	ASSERT(after5 > 0);
	put_codes(s, "more", 5);
	once_stats(s, &st);
	ASSERT(st.log_bytes_since_checkpoint > after5);

	ASSERT_ST(once_checkpoint(s), ONCE_OK);
	once_stats(s, &st);
	ASSERT_EQ_U64(st.checkpoints, 1);
	ASSERT_EQ_U64(st.checkpoint_failures, 0);
	ASSERT(st.checkpoint_ns_last > 0);
	ASSERT(st.checkpoint_ns_max >= st.checkpoint_ns_last);
	ASSERT_EQ_U64(st.log_bytes_since_checkpoint, 0);

	put_codes(s, "after", 1);
	once_stats(s, &st);
	ASSERT(st.log_bytes_since_checkpoint > 0);
	ASSERT(st.log_bytes_since_checkpoint < after5);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

static int eio_fsync(int fd)
{
	(void)fd;
	errno = EIO;
	return -1;
}

/* A checkpoint whose directory sync fails counts as a failure, keeps the
 * last good duration, and does not reset what the next recovery replays. */
static void test_failed_checkpoint_counts(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_store *s = open_dir(&clk, dir);
	put_codes(s, "cp", 3);
	ASSERT_ST(once_checkpoint(s), ONCE_OK);
	struct once_stats good;
	once_stats(s, &good);
	put_codes(s, "cp2", 3);
	once__io.fsync = eio_fsync;
	ASSERT(once_checkpoint(s) != ONCE_OK);
	once__io_reset();
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.checkpoint_failures, 1);
	ASSERT_EQ_U64(st.checkpoints, 1);
	ASSERT_EQ_U64(st.checkpoint_ns_last, good.checkpoint_ns_last);
	ASSERT(st.log_bytes_since_checkpoint > 0);
	once_close(s);
	test_rmdir(dir);
}

/* The family tables: a family entry per family id with tokens, plus a
 * revocation mark for an unknown family; room for twice the tokens. */
static void test_family_fill(void)
{
	struct test_clock clk = {1000};
	once_options o = test_options(&clk);
	o.max_refresh = 100;
	o.max_access_tokens = 50;
	once_store *s = test_open(&o);
	const char *fams[] = {"fam-a", "fam-a", "fam-b", "fam-c"};
	for (int i = 0; i < 4; i++) {
		char key[ONCE_SECRET_LEN + 1];
		test_key(key, "rt", (uint64_t)i);
		once_refresh r = test_refresh(fams[i], 5000);
		ASSERT_ST(once_refresh_insert(s, key, strlen(key), &r), ONCE_OK);
	}
	ASSERT_ST(once_refresh_revoke_family(s, "fam-unknown", 11), ONCE_OK);
	ASSERT_ST(once_code_record_access_token(s, "code-fam-1", 10, "jti-1", 5, 5000), ONCE_OK);
	ASSERT_ST(once_code_record_access_token(s, "code-fam-1", 10, "jti-2", 5, 5000), ONCE_OK);
	ASSERT_ST(once_code_record_access_token(s, "code-fam-2", 10, "jti-3", 5, 5000), ONCE_OK);

	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.refresh.entries, 4);
	ASSERT_EQ_U64(st.refresh_families.entries, 4); /* a, b, c and the mark */
	ASSERT(st.refresh_families.bytes > 0);
	ASSERT_EQ_U64(st.refresh_families.capacity, 200);
	ASSERT_EQ_U64(st.access_tokens.entries, 3);
	ASSERT_EQ_U64(st.access_families.entries, 2);
	ASSERT(st.access_families.bytes > 0);
	ASSERT_EQ_U64(st.access_families.capacity, 100);
	ASSERT_EQ_U64(st.read_only, 0);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* The newest log segment's file name in dir. */
static void newest_segment(const char *dir, char out[512])
{
	DIR *d = opendir(dir);
	ASSERT(d != NULL);
	char best[256] = "";
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, "log-", 4) == 0 && strcmp(de->d_name, best) > 0)
			snprintf(best, sizeof best, "%s", de->d_name);
	closedir(d);
	ASSERT(best[0] != '\0');
	snprintf(out, 512, "%s/%s", dir, best);
}

static void test_recovery_figures(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_store *s = open_dir(&clk, dir);
	put_codes(s, "rec", 7);
	ASSERT_ST(once_close(s), ONCE_OK);

	/* A torn tail: bytes that are no record after the last one. */
	char seg[512];
	newest_segment(dir, seg);
	size_t len;
	unsigned char *bytes = test_slurp(seg, &len);
	unsigned char *torn = malloc(len + 13);
	ASSERT(torn != NULL);
	memcpy(torn, bytes, len);
	memset(torn + len, 0xa7, 13);
	test_spit(seg, torn, len + 13);
	free(torn);
	free(bytes);

	s = open_dir(&clk, dir);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.recovered_records, 7);
	ASSERT_EQ_U64(st.recovery_segments, 1);
	ASSERT_EQ_U64(st.recovery_torn_bytes, 13);
	ASSERT(st.recovery_ns > 0);
	ASSERT_ST(once_close(s), ONCE_OK);

	s = open_dir(&clk, dir);
	once_stats(s, &st);
	ASSERT_EQ_U64(st.recovery_torn_bytes, 0);
	ASSERT_EQ_U64(st.recovery_segments, 2);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* An older program's smaller struct: filled up to its size, not a byte
 * further; a newer program's larger one: zeros past the library's. */
static void test_stats_read_respects_the_callers_size(void)
{
	once_store *s = test_open(NULL);
	char key[ONCE_SECRET_LEN + 1];
	test_key(key, "abi", 1);
	once_code c = test_code(4000000000);
	ASSERT_ST(once_code_put(s, key, strlen(key), &c), ONCE_OK);

	size_t old_size = offsetof(struct once_stats, refresh_families);
	unsigned char small[sizeof(struct once_stats)];
	memset(small, 0xa5, sizeof small);
	once_stats_read(s, (struct once_stats *)(void *)small, old_size);
	struct once_stats got;
	memcpy(&got, small, sizeof got);
	ASSERT_EQ_U64(got.codes.entries, 1);
	ASSERT_EQ_U64(got.ops[ONCE_OP_CODE_PUT][ONCE_OK], 1);
	for (size_t i = old_size; i < sizeof small; i++)
		if (small[i] != 0xa5)
			FAIL_AT("byte %zu past the caller's %zu was written", i, old_size);

	size_t extra = 64;
	unsigned char *large = malloc(sizeof(struct once_stats) + extra);
	ASSERT(large != NULL);
	memset(large, 0xa5, sizeof(struct once_stats) + extra);
	once_stats_read(s, (struct once_stats *)(void *)large, sizeof(struct once_stats) + extra);
	memcpy(&got, large, sizeof got);
	ASSERT_EQ_U64(got.codes.entries, 1);
	for (size_t i = sizeof(struct once_stats); i < sizeof(struct once_stats) + extra; i++)
		if (large[i] != 0)
			FAIL_AT("byte %zu past the library's struct is %#x, not 0", i, large[i]);
	free(large);
	ASSERT_ST(once_close(s), ONCE_OK);
}

/* snprintf's contract: the whole length whatever the buffer, at most cap
 * bytes written, NUL-terminated; the same text in a buffer large enough. */
static void test_prometheus_is_snprintf_like(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_store *s = open_dir(&clk, dir);
	put_codes(s, "prom", 3);

	size_t n = once_stats_prometheus(s, NULL, 0);
	ASSERT(n > 1000);
	char *full = malloc(n + 1);
	ASSERT(full != NULL);
	ASSERT_EQ_U64(once_stats_prometheus(s, full, n + 1), n);
	ASSERT_EQ_U64(strlen(full), n);
	ASSERT(strncmp(full, "# HELP ", 7) == 0);
	ASSERT(full[n - 1] == '\n');
	ASSERT(strstr(full, "\noncestore_entries{kind=\"code\"} 3\n") != NULL);
	ASSERT(strstr(full, "\noncestore_operations_total{op=\"code_put\",status=\"OK\"} 3\n") != NULL);
	ASSERT(strstr(full, "\noncestore_entries{kind=\"refresh_family\"} 0\n") != NULL);
	ASSERT(strstr(full, "\noncestore_log_failed 0\n") != NULL);

	char small[32];
	memset(small, 'x', sizeof small);
	ASSERT_EQ_U64(once_stats_prometheus(s, small, 16), n);
	ASSERT_EQ_U64(strlen(small), 15);
	ASSERT(strncmp(small, full, 15) == 0);
	ASSERT(small[16] == 'x'); /* nothing past cap */

	char one = 'x';
	ASSERT_EQ_U64(once_stats_prometheus(s, &one, 1), n);
	ASSERT(one == '\0');
	ASSERT_EQ_U64(once_stats_prometheus(NULL, &one, 1), 0);
	free(full);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

TESTS(TEST(test_sync_histogram_adds_up_to_syncs), TEST(test_checkpoint_duration_and_log_since_checkpoint),
      TEST(test_failed_checkpoint_counts), TEST(test_family_fill), TEST(test_recovery_figures),
      TEST(test_stats_read_respects_the_callers_size), TEST(test_prometheus_is_snprintf_like));
TEST_MAIN()
