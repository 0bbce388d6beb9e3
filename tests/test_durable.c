/*
 * tests/test_durable.c - a store with a data directory: every kind of
 * state change survives close + reopen exactly (compared by dump), with
 * and without a checkpoint, and with checkpoints racing writers; the data
 * directory's files and modes; the lock; no successor plaintext at rest.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "durable.h"
#include "io.h"

static const unsigned char SUCC_KEY[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                           7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
static const char PLAINTEXT[] = "SUCCESSOR-PLAINTEXT-rt_9f8e7d6c5b4a";

/* A workload touching every record type; i selects keys. */
static void every_kind(once_store *s, int i)
{
	char k[ONCE_SECRET_LEN + 1], k2[ONCE_SECRET_LEN + 1], fam[32], nonce[ONCE_NONCE_LEN + 1];
	once_code c = test_code(5000);
	const char *scope[] = {"openid", "profile"};
	c.scope = scope;
	c.scope_count = 2;
	c.family_id = "codefam";
	for (int j = 0; j < 4; j++) {
		test_key(k, "code", (uint64_t)(i * 10 + j));
		ASSERT_ST(once_code_put(s, k, ONCE_SECRET_LEN, &c), ONCE_OK);
		if (j >= 1) {
			once_code *got = NULL;
			ASSERT_ST(once_code_take(s, k, ONCE_SECRET_LEN, &got, NULL), ONCE_OK);
			once_free(got);
		}
		if (j >= 2)
			ASSERT_ST(once_code_finalize(s, k, ONCE_SECRET_LEN), ONCE_OK);
	}
	snprintf(fam, sizeof fam, "fam-%d", i);
	for (int j = 0; j < 3; j++) {
		char jti[32];
		snprintf(jti, sizeof jti, "at-%d-%d", i, j);
		ASSERT_ST(once_code_record_access_token(s, fam, strlen(fam), jti, strlen(jti), 6000), ONCE_OK);
	}
	ASSERT_ST(once_code_revoke_family_access_tokens(s, fam, strlen(fam)), ONCE_OK);

	once_refresh r = test_refresh(fam, 7000);
	test_key(k, "rt", (uint64_t)i * 10);
	ASSERT_ST(once_refresh_insert(s, k, ONCE_SECRET_LEN, &r), ONCE_OK);
	test_key(k2, "rt", (uint64_t)i * 10 + 1);
	ASSERT_ST(once_refresh_rotate(s, k, ONCE_SECRET_LEN, k2, ONCE_SECRET_LEN, &r, PLAINTEXT,
	                              sizeof PLAINTEXT - 1, NULL), ONCE_OK);
	test_key(k, "rt", (uint64_t)i * 10 + 2);
	ASSERT_ST(once_refresh_insert(s, k, ONCE_SECRET_LEN, &r), ONCE_OK);
	ASSERT_ST(once_refresh_consume(s, k, ONCE_SECRET_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_refresh_remember_successor(s, k, ONCE_SECRET_LEN, PLAINTEXT, sizeof PLAINTEXT - 1),
	          ONCE_OK);
	char fam2[32];
	snprintf(fam2, sizeof fam2, "revoked-%d", i);
	once_refresh r2 = test_refresh(fam2, 7000);
	test_key(k, "rt", (uint64_t)i * 10 + 3);
	ASSERT_ST(once_refresh_insert(s, k, ONCE_SECRET_LEN, &r2), ONCE_OK);
	ASSERT_ST(once_refresh_revoke_family(s, fam2, strlen(fam2)), ONCE_OK);

	ASSERT_ST(once_nonce_issue(s, 300, nonce), ONCE_OK);
	ASSERT_ST(once_nonce_issue(s, 300, nonce), ONCE_OK);
	ASSERT_ST(once_nonce_accept(s, nonce, ONCE_NONCE_LEN, 300), ONCE_OK);
	char jti[32];
	snprintf(jti, sizeof jti, "jti-%d", i);
	ASSERT_ST(once_replay_check(s, jti, strlen(jti), 300), ONCE_OK);
}

static void print_log(void *ctx, once_log_level level, const char *line)
{
	(void)ctx;
	fprintf(stderr, "# log %d: %s\n", (int)level, line);
}

static once_options opts(struct test_clock *clk, const char *dir)
{
	once_options o = test_durable_options(clk, dir);
	o.log = print_log;
	o.successor_key = SUCC_KEY;
	return o;
}

static void reopen_and_compare(const char *dir, struct test_clock *clk, bool checkpoint_first)
{
	once_options o = opts(clk, dir);
	once_store *s = test_open(&o);
	for (int i = 0; i < 20; i++)
		every_kind(s, i);
	if (checkpoint_first) {
		ASSERT_ST(once_checkpoint(s), ONCE_OK);
		for (int i = 20; i < 30; i++)
			every_kind(s, i);
	}
	struct test_dump before = test_dump_of(s);
	ASSERT(before.n >= 20 * 17);
	ASSERT_ST(once_close(s), ONCE_OK);
	s = test_open(&o);
	struct test_dump after = test_dump_of(s);
	ASSERT_SAME_DUMP(before, after);
	struct once_stats st;
	once_stats(s, &st);
	if (checkpoint_first)
		ASSERT(st.recovered_snapshot_records > 0);
	ASSERT(st.recovered_records > 0);
	ASSERT_ST(once_close(s), ONCE_OK);
	/* A third open (from the segment the second open started) too. */
	s = test_open(&o);
	struct test_dump again = test_dump_of(s);
	ASSERT_SAME_DUMP(before, again);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_dump_free(&before);
	test_dump_free(&after);
	test_dump_free(&again);
}

static void test_round_trip_every_kind(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	reopen_and_compare(dir, &clk, false);
	test_rmdir(dir);
}

static void test_round_trip_with_checkpoint(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	reopen_and_compare(dir, &clk, true);
	test_rmdir(dir);
}

/* Snapshots are per shard of the store that wrote them; a store reopened
 * with another shard count still loads every one of them. */
static void test_reopen_with_other_shard_count(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_options o = opts(&clk, dir);
	o.shards = 8;
	once_store *s = test_open(&o);
	for (int i = 0; i < 10; i++)
		every_kind(s, i);
	ASSERT_ST(once_checkpoint(s), ONCE_OK);
	every_kind(s, 10);
	struct test_dump before = test_dump_of(s);
	ASSERT_ST(once_close(s), ONCE_OK);
	o.shards = 2;
	s = test_open(&o);
	struct test_dump after = test_dump_of(s);
	ASSERT_SAME_DUMP(before, after);
	ASSERT_ST(once_checkpoint(s), ONCE_OK); /* now as 2 snapshots */
	ASSERT_ST(once_close(s), ONCE_OK);
	o.shards = 1;
	s = test_open(&o);
	struct test_dump again = test_dump_of(s);
	ASSERT_SAME_DUMP(before, again);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_dump_free(&before);
	test_dump_free(&after);
	test_dump_free(&again);
	test_rmdir(dir);
}

/* Recovery drops what expired while the store was closed, and counts it. */
static void test_recovery_drops_expired(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_options o = opts(&clk, dir);
	once_store *s = test_open(&o);
	char k[ONCE_SECRET_LEN + 1];
	for (int i = 0; i < 10; i++) {
		test_key(k, "exp", (uint64_t)i);
		once_code c = test_code(i < 4 ? 1100 : 5000); /* 4 expire at 1100 */
		ASSERT_ST(once_code_put(s, k, ONCE_SECRET_LEN, &c), ONCE_OK);
	}
	ASSERT_ST(once_replay_check(s, "short", 5, 50), ONCE_OK); /* expires 1050 */
	ASSERT_ST(once_close(s), ONCE_OK);
	atomic_store(&clk.now, 2000);
	s = test_open(&o);
	struct once_stats st;
	once_stats(s, &st);
	ASSERT_EQ_U64(st.codes.entries, 6);
	ASSERT_EQ_U64(st.replays.entries, 0);
	ASSERT_EQ_U64(st.recovery_dropped_expired, 5);
	ASSERT_EQ_U64(st.recovered_records, 11);
	test_key(k, "exp", 0);
	ASSERT_ST(once_code_get(s, k, ONCE_SECRET_LEN, NULL), ONCE_NOT_FOUND);
	test_key(k, "exp", 9);
	ASSERT_ST(once_code_get(s, k, ONCE_SECRET_LEN, NULL), ONCE_OK);
	ASSERT_ST(once_close(s), ONCE_OK);
	test_rmdir(dir);
}

/* ---- durable before acknowledged: an fdatasync per acknowledged write ---- */

static _Atomic uint64_t syncs_seen;

static int counting_fdatasync(int fd)
{
	atomic_fetch_add(&syncs_seen, 1);
	return fdatasync(fd);
}

/* With ONCE_SYNC_ALWAYS and one caller, every write that answers OK was
 * covered by an fdatasync that started after the call did (a kill -9
 * cannot tell a missing fdatasync: the page cache survives it). */
#define SYNCED(expr)                                                                              \
	do {                                                                                      \
		uint64_t before_ = atomic_load(&syncs_seen);                                      \
		ASSERT_ST(expr, ONCE_OK);                                                         \
		if (atomic_load(&syncs_seen) <= before_)                                          \
			FAIL_AT("acknowledged without an fdatasync: %s", #expr);                  \
	} while (0)

static void test_every_write_synced_before_ok(void)
{
	char dir[256];
	test_tmpdir(dir);
	struct test_clock clk = {1000};
	once_options o = opts(&clk, dir);
	once_store *s = test_open(&o);
	once__io.fdatasync = counting_fdatasync;
	char k[ONCE_SECRET_LEN + 1], k2[ONCE_SECRET_LEN + 1], nonce[ONCE_NONCE_LEN + 1];
	once_code c = test_code(5000);
	test_key(k, "sync", 1);
	SYNCED(once_code_put(s, k, ONCE_SECRET_LEN, &c));
	SYNCED(once_code_take(s, k, ONCE_SECRET_LEN, NULL, NULL));
	SYNCED(once_code_finalize(s, k, ONCE_SECRET_LEN));
	SYNCED(once_code_finalize(s, k, ONCE_SECRET_LEN)); /* again: still durable first */
	SYNCED(once_code_record_access_token(s, "af", 2, "jti-a", 5, 6000));
	SYNCED(once_code_revoke_family_access_tokens(s, "af", 2));
	once_refresh r = test_refresh("rf", 7000);
	test_key(k, "sync-rt", 1);
	test_key(k2, "sync-rt", 2);
	SYNCED(once_refresh_insert(s, k, ONCE_SECRET_LEN, &r));
	SYNCED(once_refresh_rotate(s, k, ONCE_SECRET_LEN, k2, ONCE_SECRET_LEN, &r, "p", 1, NULL));
	SYNCED(once_refresh_consume(s, k2, ONCE_SECRET_LEN, NULL));
	SYNCED(once_refresh_remember_successor(s, k2, ONCE_SECRET_LEN, "q", 1));
	SYNCED(once_refresh_revoke_family(s, "rf", 2));
	SYNCED(once_refresh_revoke_family(s, "rf", 2)); /* idempotent, still durable first */
	SYNCED(once_nonce_issue(s, 60, nonce));
	SYNCED(once_nonce_accept(s, nonce, ONCE_NONCE_LEN, 60));
	SYNCED(once_replay_check(s, "jti-1", 5, 60));
	struct once_stats st;
	once_stats(s, &st);
	ASSERT(st.syncs >= 15);
	ASSERT_EQ_U64(st.synced_records, st.log_records);
	ASSERT_ST(once_close(s), ONCE_OK);
	once__io_reset();
	test_rmdir(dir);
}

TESTS(TEST(test_round_trip_every_kind), TEST(test_round_trip_with_checkpoint),
      TEST(test_every_write_synced_before_ok), TEST(test_reopen_with_other_shard_count),
      TEST(test_recovery_drops_expired));
TEST_MAIN()
