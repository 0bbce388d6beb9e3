/*
 * tests/test_wal_format.c - the log format of wal/format.h: round trips of
 * segment headers and records, the validity rule field by field, every
 * single-bit flip rejected, every truncation read as a valid prefix plus a
 * torn tail, damage with valid records after it read as corruption, and
 * damage inside the final unsynced group read as a torn tail (issue 9);
 * preallocated segments (issue 11): zero bytes after the records are a
 * clean end, a torn tail followed by zeros stays torn, damage to synced
 * records stays corruption with zeros between or after, and megabytes of
 * zeros scan in linear time.
 */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "format.h"

static struct once__wal_segment segment(uint64_t number)
{
	struct once__wal_segment seg = {.number = number, .first_seq = 100};
	for (int i = 0; i < 16; i++)
		seg.uid[i] = (unsigned char)(0xa0 + i);
	return seg;
}

/* A segment body of n records with payloads of lengths 0, 1, 2, ... so
 * every padding length occurs.  Records numbered below `group` were each
 * synced alone (synced-below mark: their own number); those from `group`
 * on were written as one group after that (mark: `group`). */
static unsigned char *build_log_grouped(int n, uint64_t salt, uint64_t group, size_t *len_out,
                                        size_t *offsets)
{
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += once__wal_record_size((uint32_t)(i % 20));
	unsigned char *buf = calloc(1, len + 1);
	ASSERT(buf != NULL);
	size_t o = 0;
	for (int i = 0; i < n; i++) {
		unsigned char payload[20];
		for (int k = 0; k < 20; k++)
			payload[k] = (unsigned char)(i * 7 + k);
		uint32_t l = (uint32_t)(i % 20);
		if (offsets != NULL)
			offsets[i] = o;
		uint64_t seq = 100 + (uint64_t)i;
		once__wal_record_encode(buf + o, salt, (uint8_t)(1 + i % (ONCE_WAL_TYPE_END - 1)), seq,
		                        seq < group ? seq : group, payload, l);
		o += once__wal_record_size(l);
	}
	*len_out = len;
	return buf;
}

/* Every record synced alone before the next was written. */
static unsigned char *build_log(int n, uint64_t salt, size_t *len_out, size_t *offsets)
{
	return build_log_grouped(n, salt, UINT64_MAX, len_out, offsets);
}

static void test_segment_header_round_trip_and_checks(void)
{
	struct once__wal_segment seg = segment(7), back;
	unsigned char h[ONCE_WAL_SEGMENT_HEADER];
	once__wal_segment_encode(h, &seg);
	ASSERT(once__wal_segment_decode(h, sizeof h, &back));
	ASSERT_EQ_U64(back.number, 7);
	ASSERT_EQ_U64(back.first_seq, 100);
	ASSERT(memcmp(back.uid, seg.uid, 16) == 0);
	ASSERT(!once__wal_segment_decode(h, sizeof h - 1, &back)); /* short */
	for (size_t bit = 0; bit < 8 * sizeof h; bit++) {
		h[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		ASSERT(!once__wal_segment_decode(h, sizeof h, &back));
		h[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	/* Segments differ in salt, so their records do not mix. */
	struct once__wal_segment other = segment(8);
	ASSERT(once__wal_salt(&seg) != once__wal_salt(&other));
}

static void test_record_round_trip(void)
{
	uint64_t salt = 42;
	for (uint32_t len = 0; len < 40; len++) {
		unsigned char payload[40], buf[128];
		for (uint32_t k = 0; k < len; k++)
			payload[k] = (unsigned char)(k * 31 + len);
		size_t size = once__wal_record_size(len);
		ASSERT_EQ_U64(size % 8, 0);
		ASSERT(size >= ONCE_WAL_RECORD_HEADER + len && size < ONCE_WAL_RECORD_HEADER + len + 8);
		once__wal_record_encode(buf, salt, ONCE_WAL_CODE_TAKE, 9, 7, payload, len);
		struct once__wal_record r;
		ASSERT_EQ_INT(once__wal_record_check(buf, size, salt, 9, &r), ONCE_WAL_VALID);
		ASSERT_EQ_INT(r.type, ONCE_WAL_CODE_TAKE);
		ASSERT_EQ_U64(r.seq, 9);
		ASSERT_EQ_U64(r.synced_below, 7);
		ASSERT_EQ_U64(r.len, len);
		ASSERT_EQ_U64(r.size, size);
		ASSERT(len == 0 || memcmp(r.payload, payload, len) == 0);
		/* Wrong sequence number, wrong salt. */
		ASSERT_EQ_INT(once__wal_record_check(buf, size, salt, 10, &r), ONCE_WAL_BAD);
		ASSERT_EQ_INT(once__wal_record_check(buf, size, salt + 1, 9, &r), ONCE_WAL_BAD);
		/* Every prefix is short, never valid. */
		for (size_t cut = 0; cut < size; cut++)
			ASSERT_EQ_INT(once__wal_record_check(buf, cut, salt, 9, &r), ONCE_WAL_SHORT);
	}
}

/* A length field larger than the rest of the file is refused before any
 * allocation could be sized from it; one beyond the maximum is BAD. */
static void test_record_length_checked_against_file(void)
{
	unsigned char buf[64];
	once__wal_record_encode(buf, 1, ONCE_WAL_REPLAY_RECORD, 1, 1, "abcdefgh", 8);
	struct once__wal_record r;
	buf[8] = 0xff, buf[9] = 0xff, buf[10] = 0x0f, buf[11] = 0; /* ~1 MiB */
	ASSERT_EQ_INT(once__wal_record_check(buf, 32, 1, 1, &r), ONCE_WAL_SHORT);
	buf[8] = 0xff, buf[9] = 0xff, buf[10] = 0xff, buf[11] = 0xff; /* 4 GiB */
	ASSERT_EQ_INT(once__wal_record_check(buf, 32, 1, 1, &r), ONCE_WAL_BAD);
}

static void test_every_bit_flip_rejected(void)
{
	uint64_t salt = 77;
	unsigned char buf[64];
	size_t size = once__wal_record_size(13);
	once__wal_record_encode(buf, salt, ONCE_WAL_NONCE_ACCEPT, 5, 3, "thirteen-byte", 13);
	struct once__wal_record r;
	for (size_t bit = 0; bit < 8 * size; bit++) {
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		ASSERT(once__wal_record_check(buf, size, salt, 5, &r) != ONCE_WAL_VALID);
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	ASSERT_EQ_INT(once__wal_record_check(buf, size, salt, 5, &r), ONCE_WAL_VALID);
}

static void test_scan_clean(void)
{
	size_t len;
	unsigned char *log = build_log(50, 3, &len, NULL);
	struct once__wal_scan sc;
	once__wal_scan(log, len, 3, 100, &sc);
	ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
	ASSERT_EQ_U64(sc.records, 50);
	ASSERT_EQ_U64(sc.valid_end, len);
	ASSERT_EQ_U64(sc.next_seq, 150);
	once__wal_scan(log, 0, 3, 100, &sc); /* an empty segment */
	ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
	ASSERT_EQ_U64(sc.records, 0);
	free(log);
}

/* A crash mid-append: cut the log at every byte offset inside its last
 * records; the scan keeps exactly the whole records before the cut. */
static void test_scan_every_truncation_is_a_torn_tail(void)
{
	enum { N = 30 };
	size_t len, offsets[N];
	unsigned char *log = build_log(N, 3, &len, offsets);
	for (size_t cut = offsets[N - 6]; cut <= len; cut++) {
		struct once__wal_scan sc;
		once__wal_scan(log, cut, 3, 100, &sc);
		size_t whole = 0;
		while (whole < N && offsets[whole] + once__wal_record_size((uint32_t)(whole % 20)) <= cut)
			whole++;
		ASSERT_EQ_U64(sc.records, whole);
		ASSERT_EQ_U64(sc.valid_end, whole == 0 ? 0 : offsets[whole - 1] + once__wal_record_size((uint32_t)((whole - 1) % 20)));
		ASSERT_EQ_INT(sc.tail, sc.valid_end == cut ? ONCE_WAL_CLEAN : ONCE_WAL_TORN);
	}
	free(log);
}

/* Damage in the middle with valid records after it is corruption, named at
 * the damaged record; the same damage in the last record is a torn tail. */
static void test_scan_damage_before_valid_records_is_corrupt(void)
{
	enum { N = 30 };
	size_t len, offsets[N];
	unsigned char *log = build_log(N, 3, &len, offsets);
	for (int victim = 0; victim < N; victim++) {
		size_t victim_size = once__wal_record_size((uint32_t)(victim % 20));
		for (size_t at = 0; at < victim_size; at += 3) {
			size_t byte = offsets[victim] + at;
			log[byte] ^= 0x10;
			struct once__wal_scan sc;
			once__wal_scan(log, len, 3, 100, &sc);
			ASSERT_EQ_U64(sc.records, (uint64_t)victim);
			ASSERT_EQ_U64(sc.bad_offset, offsets[victim]);
			ASSERT_EQ_INT(sc.tail, victim == N - 1 ? ONCE_WAL_TORN : ONCE_WAL_CORRUPT);
			log[byte] ^= 0x10;
		}
	}
	free(log);
}

/* A record missing from the middle (its neighbours intact) is corruption:
 * the later records carry later sequence numbers. */
static void test_scan_gap_in_sequence_is_corrupt(void)
{
	enum { N = 10 };
	size_t len, offsets[N];
	unsigned char *log = build_log(N, 3, &len, offsets);
	size_t cut_from = offsets[4], cut_to = offsets[5];
	memmove(log + cut_from, log + cut_to, len - cut_to);
	size_t shorter = len - (cut_to - cut_from);
	struct once__wal_scan sc;
	once__wal_scan(log, shorter, 3, 100, &sc);
	ASSERT_EQ_U64(sc.records, 4);
	ASSERT_EQ_INT(sc.tail, ONCE_WAL_CORRUPT);
	free(log);
}

/* A synced-below mark past the record's own number is impossible: BAD. */
static void test_synced_below_past_own_number_is_bad(void)
{
	unsigned char buf[64];
	struct once__wal_record r;
	once__wal_record_encode(buf, 5, ONCE_WAL_REPLAY_RECORD, 9, 9, "abcdefgh", 8);
	ASSERT_EQ_INT(once__wal_record_check(buf, sizeof buf, 5, 9, &r), ONCE_WAL_VALID);
	once__wal_record_encode(buf, 5, ONCE_WAL_REPLAY_RECORD, 9, 10, "abcdefgh", 8);
	ASSERT_EQ_INT(once__wal_record_check(buf, sizeof buf, 5, 9, &r), ONCE_WAL_BAD);
}

/*
 * Issue 9, hole 3: a power cut in the middle of a group's write can keep a
 * subset of its sectors (an earlier record damaged, a later one intact).
 * None of the group was acknowledged, so that is a torn tail, not
 * corruption; the same damage in a record synced before the group was
 * written stays corruption.  Records 100..119 synced one by one, then
 * 120..129 written as one group that was never synced.
 */
static void test_scan_damage_inside_final_group_is_torn(void)
{
	enum { N = 30, GROUP = 120 };
	size_t len, offsets[N];
	unsigned char *log = build_log_grouped(N, 3, GROUP, &len, offsets);
	for (int victim = 15; victim < N; victim++) {
		/* Zero the victim's first 8 bytes: a lost sector's worth. */
		unsigned char keep[8];
		memcpy(keep, log + offsets[victim], 8);
		memset(log + offsets[victim], 0, 8);
		struct once__wal_scan sc;
		once__wal_scan(log, len, 3, 100, &sc);
		ASSERT_EQ_U64(sc.records, (uint64_t)victim);
		ASSERT_EQ_U64(sc.bad_offset, offsets[victim]);
		/* Damage to a record of the group, or to the group's first one,
		 * is torn; to one synced before it (with the group after), not. */
		ASSERT_EQ_INT(sc.tail, 100 + victim >= GROUP ? ONCE_WAL_TORN : ONCE_WAL_CORRUPT);
		memcpy(log + offsets[victim], keep, 8);
	}
	/* Sector subsets of the group: any set of its records damaged, the
	 * rest intact, is torn at the first damaged one. */
	for (unsigned mask = 1; mask < 1u << 10; mask += 37) {
		unsigned char *copy = malloc(len);
		ASSERT(copy != NULL);
		memcpy(copy, log, len);
		int first = -1;
		for (int k = 0; k < 10; k++)
			if (mask & 1u << k) {
				copy[offsets[20 + k] + 16] ^= 0xff; /* its sequence number */
				if (first < 0)
					first = 20 + k;
			}
		struct once__wal_scan sc;
		once__wal_scan(copy, len, 3, 100, &sc);
		ASSERT_EQ_U64(sc.records, (uint64_t)first);
		ASSERT_EQ_INT(sc.tail, ONCE_WAL_TORN);
		free(copy);
	}
	free(log);
}

/* ONCE_SYNC_INTERVAL / NONE: nothing synced since the segment began (every
 * mark is the segment's first number), so damage anywhere is torn. */
static void test_scan_nothing_synced_is_torn_anywhere(void)
{
	enum { N = 12 };
	size_t len, offsets[N];
	unsigned char *log = build_log_grouped(N, 3, 100, &len, offsets);
	for (int victim = 0; victim < N; victim++) {
		log[offsets[victim] + 1] ^= 0x40;
		struct once__wal_scan sc;
		once__wal_scan(log, len, 3, 100, &sc);
		ASSERT_EQ_U64(sc.records, (uint64_t)victim);
		ASSERT_EQ_INT(sc.tail, ONCE_WAL_TORN);
		log[offsets[victim] + 1] ^= 0x40;
	}
	free(log);
}

/* ---- preallocated segments: zero bytes after the records (issue 11) ---- */

/* The log with `zeros` zero bytes after its first `cut` bytes. */
static unsigned char *with_zeros(const unsigned char *log, size_t cut, size_t zeros)
{
	unsigned char *b = calloc(1, cut + zeros + 1);
	ASSERT(b != NULL);
	memcpy(b, log, cut);
	return b;
}

static bool nonzero_in(const unsigned char *p, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		if (p[i] != 0)
			return true;
	return false;
}

/* (a) Records followed only by zeros (1 byte, unaligned, a sector, a
 * preallocation step) are a clean end, the zeros named as such; (d) a
 * segment that is all zeros after its header is clean and empty. */
static void test_scan_zero_tail_is_clean(void)
{
	enum { N = 40 };
	size_t len, offsets[N];
	unsigned char *log = build_log_grouped(N, 3, 130, &len, offsets);
	const size_t zeros[] = {1, 5, 8, 512, 4096, 4u << 20};
	for (size_t z = 0; z < sizeof zeros / sizeof zeros[0]; z++) {
		unsigned char *b = with_zeros(log, len, zeros[z]);
		struct once__wal_scan sc;
		once__wal_scan(b, len + zeros[z], 3, 100, &sc);
		if (sc.tail != ONCE_WAL_CLEAN)
			FAIL_AT("%zu zero bytes after the records: tail %d, want CLEAN", zeros[z], (int)sc.tail);
		ASSERT_EQ_U64(sc.records, N);
		ASSERT_EQ_U64(sc.valid_end, len);
		ASSERT_EQ_U64(sc.next_seq, 100 + N);
		ASSERT_EQ_U64(sc.zero_from, len);
		/* The same, classified after a prefix the caller checked. */
		struct once__wal_scan tail;
		once__wal_scan_tail(b, len + zeros[z], 3, len, 100 + N, &tail);
		ASSERT_EQ_INT(tail.tail, ONCE_WAL_CLEAN);
		ASSERT_EQ_U64(tail.zero_from, len);
		/* Nothing but zeros: an empty segment. */
		once__wal_scan(b + len, zeros[z], 3, 100, &sc);
		ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
		ASSERT_EQ_U64(sc.records, 0);
		ASSERT_EQ_U64(sc.valid_end, 0);
		ASSERT_EQ_U64(sc.zero_from, 0);
		free(b);
	}
	/* No zeros: zero_from is the end. */
	struct once__wal_scan sc;
	once__wal_scan(log, len, 3, 100, &sc);
	ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
	ASSERT_EQ_U64(sc.zero_from, len);
	free(log);
}

/* (b) A crash mid-append into a preallocated segment: the log cut at every
 * byte offset of its last records, zeros after the cut.  The scan keeps
 * the whole records before the cut; what follows is clean when it is all
 * zeros, else a torn tail ending where the zeros begin - never corruption.
 * Then the same over a final group written as one (synced-below marks of
 * the group): its records torn by zeros (lost sectors over preallocated
 * space) with later ones intact, and zeros after. */
static void test_scan_torn_tail_with_zero_tail(void)
{
	enum { N = 30 };
	size_t len, offsets[N];
	unsigned char *log = build_log(N, 3, &len, offsets);
	const size_t zeros[] = {1, 4096};
	int torn = 0, clean = 0;
	for (size_t z = 0; z < sizeof zeros / sizeof zeros[0]; z++) {
		for (size_t cut = offsets[N - 6]; cut <= len; cut++) {
			unsigned char *b = with_zeros(log, cut, zeros[z]);
			struct once__wal_scan sc;
			once__wal_scan(b, cut + zeros[z], 3, 100, &sc);
			/* Whole: within the cut, or cut in its trailing zeros
			 * (payload or padding), which the zeros after complete. */
			size_t whole = 0;
			while (whole < N) {
				size_t rec_end = offsets[whole] + once__wal_record_size((uint32_t)(whole % 20));
				if (rec_end > cut + zeros[z] || (rec_end > cut && nonzero_in(log, cut, rec_end)))
					break;
				whole++;
			}
			ASSERT_EQ_U64(sc.records, whole);
			size_t end = whole == N ? len : offsets[whole];
			ASSERT_EQ_U64(sc.valid_end, end);
			bool damaged = nonzero_in(b, end, cut);
			if (sc.tail != (damaged ? ONCE_WAL_TORN : ONCE_WAL_CLEAN))
				FAIL_AT("cut at %zu + %zu zeros: tail %d, want %s", cut, zeros[z], (int)sc.tail,
				        damaged ? "TORN" : "CLEAN");
			/* The torn bytes end at the last non-zero byte. */
			size_t last = cut;
			while (last > end && b[last - 1] == 0)
				last--;
			ASSERT_EQ_U64(sc.zero_from, last > end ? last : end);
			torn += damaged;
			clean += !damaged;
			free(b);
		}
	}
	ASSERT(torn > 100 && clean >= 10);
	free(log);

	/* Records 100..119 synced one by one, 120..129 one group never synced,
	 * then 4 KiB of preallocated zeros. */
	enum { GROUP = 120, Z = 4096 };
	unsigned char *g = build_log_grouped(N, 3, GROUP, &len, offsets);
	unsigned char *b = with_zeros(g, len, Z);
	for (unsigned mask = 1; mask < 1u << 10; mask += 23) {
		unsigned char *copy = malloc(len + Z);
		ASSERT(copy != NULL);
		memcpy(copy, b, len + Z);
		int first = -1;
		for (int k = 0; k < 10; k++)
			if (mask & 1u << k) {
				int v = 20 + k;
				size_t size = once__wal_record_size((uint32_t)(v % 20));
				memset(copy + offsets[v], 0, size); /* never reached the disk */
				if (first < 0)
					first = v;
			}
		struct once__wal_scan sc;
		once__wal_scan(copy, len + Z, 3, 100, &sc);
		ASSERT_EQ_U64(sc.records, (uint64_t)first);
		ASSERT_EQ_U64(sc.valid_end, offsets[first]);
		/* The group's records after the first lost one: torn if any is
		 * left, clean (nothing written) if all are zeros. */
		bool any_left = nonzero_in(copy, offsets[first], len);
		if (sc.tail != (any_left ? ONCE_WAL_TORN : ONCE_WAL_CLEAN))
			FAIL_AT("group mask %#x: tail %d, want %s", mask, (int)sc.tail, any_left ? "TORN" : "CLEAN");
		free(copy);
	}
	free(b);
	free(g);
}

/* (c) Damage to a record synced before later ones were written stays
 * corruption with zeros after the log, and when the damaged record itself
 * is zeros (a synced record lost: zeros between it and the later records),
 * with or without zeros after. */
static void test_scan_durable_damage_with_zeros_is_corrupt(void)
{
	enum { N = 30 };
	size_t len, offsets[N];
	unsigned char *log = build_log(N, 3, &len, offsets);
	const size_t zeros[] = {0, 1, 4096, 4u << 20};
	for (size_t z = 0; z < sizeof zeros / sizeof zeros[0]; z++) {
		unsigned char *b = with_zeros(log, len, zeros[z]);
		for (int victim = 0; victim < N - 1; victim += 4) {
			size_t size = once__wal_record_size((uint32_t)(victim % 20));
			unsigned char keep[64];
			memcpy(keep, b + offsets[victim], size);
			for (int how = 0; how < 3; how++) {
				if (how == 0)
					b[offsets[victim] + 5] ^= 0x20; /* a flipped bit */
				else if (how == 1)
					memset(b + offsets[victim], 0, size); /* the record zeroed */
				else /* it and the next one zeroed */
					memset(b + offsets[victim], 0, offsets[victim + 1] - offsets[victim] +
					       once__wal_record_size((uint32_t)((victim + 1) % 20)));
				struct once__wal_scan sc;
				once__wal_scan(b, len + zeros[z], 3, 100, &sc);
				ASSERT_EQ_U64(sc.records, (uint64_t)victim);
				ASSERT_EQ_U64(sc.bad_offset, offsets[victim]);
				/* The last two records zeroed leave no trace of them:
				 * as if they had never been written (the limit
				 * format.h names: nothing written after survives). */
				bool later = how < 2 || victim + 2 < N;
				if (sc.tail != (later ? ONCE_WAL_CORRUPT : ONCE_WAL_CLEAN))
					FAIL_AT("record %d damaged (%d), %zu zeros after: tail %d, want %s", victim, how,
					        zeros[z], (int)sc.tail, later ? "CORRUPT" : "CLEAN");
				memcpy(b + offsets[victim], keep, size);
				if (how == 2)
					memcpy(b + offsets[victim + 1], log + offsets[victim + 1],
					       once__wal_record_size((uint32_t)((victim + 1) % 20)));
			}
		}
		free(b);
	}
	free(log);
}

/* (d) Megabytes of zeros are scanned in linear time: 64 MiB after a torn
 * record, after a clean end and as a whole empty segment, each within a
 * bound a rescan from every offset would miss by orders of magnitude. */
static void test_scan_zeros_linear(void)
{
	enum { N = 10 };
	const size_t Z = 64u << 20;
	size_t len, offsets[N];
	unsigned char *log = build_log(N, 3, &len, offsets);
	unsigned char *b = with_zeros(log, len, Z);
	alarm(20); /* a quadratic scan would take hours: fail instead of hanging */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct once__wal_scan sc;
	for (int round = 0; round < 3; round++) {
		once__wal_scan(b, len + Z, 3, 100, &sc);
		ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
		once__wal_scan(b + len, Z, 3, 100, &sc);
		ASSERT_EQ_INT(sc.tail, ONCE_WAL_CLEAN);
		ASSERT_EQ_U64(sc.records, 0);
		b[offsets[N - 1] + 3] ^= 1; /* the last record torn, then zeros */
		once__wal_scan(b, len + Z, 3, 100, &sc);
		ASSERT_EQ_INT(sc.tail, ONCE_WAL_TORN);
		ASSERT(sc.zero_from > offsets[N - 1] + 3 && sc.zero_from <= len);
		b[offsets[N - 1] + 3] ^= 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	alarm(0);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("# 9 scans over 64 MiB of zeros: %.1f ms\n", ms);
	ASSERT(ms < 5000);
	free(b);
	free(log);
}

TESTS(TEST(test_segment_header_round_trip_and_checks), TEST(test_record_round_trip),
      TEST(test_record_length_checked_against_file), TEST(test_every_bit_flip_rejected),
      TEST(test_scan_clean), TEST(test_scan_every_truncation_is_a_torn_tail),
      TEST(test_scan_damage_before_valid_records_is_corrupt),
      TEST(test_scan_gap_in_sequence_is_corrupt), TEST(test_synced_below_past_own_number_is_bad),
      TEST(test_scan_damage_inside_final_group_is_torn),
      TEST(test_scan_nothing_synced_is_torn_anywhere), TEST(test_scan_zero_tail_is_clean),
      TEST(test_scan_torn_tail_with_zero_tail), TEST(test_scan_durable_damage_with_zeros_is_corrupt),
      TEST(test_scan_zeros_linear));
TEST_MAIN()
