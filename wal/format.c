/*
 * wal/format.c - encoding and checking segment headers and log records by
 * the rules in wal/format.h.
 */
#define XXH_INLINE_ALL
#include <string.h>
#include <xxhash.h>

#include "format.h"

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* ---- segment header ---- */

void once__wal_segment_encode(unsigned char out[ONCE_WAL_SEGMENT_HEADER],
                              const struct once__wal_segment *seg)
{
	memset(out, 0, ONCE_WAL_SEGMENT_HEADER);
	memcpy(out, ONCE_WAL_MAGIC, 8);
	put_u32(out + 8, ONCE_WAL_VERSION);
	put_u32(out + 12, ONCE_WAL_SEGMENT_HEADER);
	memcpy(out + 16, seg->uid, 16);
	put_u64(out + 32, seg->number);
	put_u64(out + 40, seg->first_seq);
	put_u32(out + 48, seg->kind);
	put_u32(out + 52, seg->part);
	put_u64(out + 56, XXH3_64bits(out, 56));
}

bool once__wal_segment_decode(const unsigned char *in, size_t avail, struct once__wal_segment *out)
{
	if (avail < ONCE_WAL_SEGMENT_HEADER || memcmp(in, ONCE_WAL_MAGIC, 8) != 0 ||
	    get_u32(in + 8) != ONCE_WAL_VERSION || get_u32(in + 12) != ONCE_WAL_SEGMENT_HEADER ||
	    get_u32(in + 48) > ONCE_WAL_KIND_SNAPSHOT ||
	    (get_u32(in + 48) == ONCE_WAL_KIND_LOG && get_u32(in + 52) != 0) ||
	    get_u64(in + 56) != XXH3_64bits(in, 56))
		return false;
	memcpy(out->uid, in + 16, 16);
	out->number = get_u64(in + 32);
	out->first_seq = get_u64(in + 40);
	out->kind = get_u32(in + 48);
	out->part = get_u32(in + 52);
	return true;
}

uint64_t once__wal_salt(const struct once__wal_segment *seg)
{
	unsigned char material[32];
	memcpy(material, seg->uid, 16);
	put_u64(material + 16, seg->number);
	put_u32(material + 24, seg->kind);
	put_u32(material + 28, seg->part);
	return XXH3_64bits(material, sizeof material);
}

/* ---- records ---- */

static size_t padding(uint32_t len)
{
	return (8 - len % 8) % 8;
}

size_t once__wal_record_size(uint32_t len)
{
	return ONCE_WAL_RECORD_HEADER + (size_t)len + padding(len);
}

void once__wal_record_frame(void *out, uint8_t type, uint64_t seq, const void *payload, uint32_t len)
{
	unsigned char *p = out;
	put_u64(p, 0);
	put_u32(p + 8, len);
	p[12] = type;
	memset(p + 13, 0, 3);
	put_u64(p + 16, seq);
	put_u64(p + 24, 0);
	if (len > 0)
		memcpy(p + ONCE_WAL_RECORD_HEADER, payload, len);
	memset(p + ONCE_WAL_RECORD_HEADER + len, 0, padding(len));
}

size_t once__wal_record_seal(void *out, uint64_t salt, uint64_t synced_below)
{
	unsigned char *p = out;
	size_t size = once__wal_record_size(get_u32(p + 8));
	put_u64(p + 24, synced_below);
	put_u64(p, XXH3_64bits_withSeed(p + 8, size - 8, salt));
	return size;
}

void once__wal_record_encode(void *out, uint64_t salt, uint8_t type, uint64_t seq, uint64_t synced_below,
                             const void *payload, uint32_t len)
{
	once__wal_record_frame(out, type, seq, payload, len);
	once__wal_record_seal(out, salt, synced_below);
}

/*
 * Every check but the sequence number, in the order that touches the
 * fewest bytes first: lengths against what is there (before anything
 * would be allocated), fixed fields, then the checksum.
 */
static enum once__wal_verdict check_frame(const unsigned char *p, size_t avail, uint64_t salt,
                                          struct once__wal_record *out)
{
	if (avail < ONCE_WAL_RECORD_HEADER)
		return ONCE_WAL_SHORT;
	uint32_t len = get_u32(p + 8);
	if (len > ONCE_WAL_MAX_PAYLOAD)
		return ONCE_WAL_BAD;
	size_t size = once__wal_record_size(len);
	if (size > avail)
		return ONCE_WAL_SHORT;
	if (p[12] == 0 || p[12] >= ONCE_WAL_TYPE_END || !all_zero(p + 13, 3) ||
	    get_u64(p + 24) > get_u64(p + 16) ||
	    !all_zero(p + ONCE_WAL_RECORD_HEADER + len, padding(len)) ||
	    get_u64(p) != XXH3_64bits_withSeed(p + 8, size - 8, salt))
		return ONCE_WAL_BAD;
	out->type = p[12];
	out->seq = get_u64(p + 16);
	out->synced_below = get_u64(p + 24);
	out->payload = p + ONCE_WAL_RECORD_HEADER;
	out->len = len;
	out->size = size;
	return ONCE_WAL_VALID;
}

enum once__wal_verdict once__wal_record_check(const void *buf, size_t avail, uint64_t salt,
                                              uint64_t expect_seq, struct once__wal_record *out)
{
	struct once__wal_record r;
	enum once__wal_verdict v = check_frame(buf, avail, salt, &r);
	if (v != ONCE_WAL_VALID)
		return v;
	if (r.seq != expect_seq)
		return ONCE_WAL_BAD;
	*out = r;
	return ONCE_WAL_VALID;
}

size_t once__wal_zero_tail(const void *buf, size_t from, size_t len)
{
	const unsigned char *p = buf;
	size_t z = len;
	/* Byte by byte down to an 8-aligned end, then a word at a time: a
	 * preallocation step of a few MiB costs a fraction of a millisecond. */
	while (z > from && z % 8 != 0 && p[z - 1] == 0)
		z--;
	if (z % 8 == 0) {
		while (z >= from + 8) {
			uint64_t w;
			memcpy(&w, p + z - 8, 8);
			if (w != 0)
				break;
			z -= 8;
		}
	}
	while (z > from && p[z - 1] == 0)
		z--;
	return z;
}

/* Was any record found after the damage written once record q (the one
 * the damage replaced) was already on stable storage?  That is a valid
 * frame at an 8-aligned offset in [from, nonzero_end) numbered q or later
 * whose synced-below mark is past q (the validity rule in format.h).
 * Valid frames with D <= q came from the same unsynced writes as the
 * damage.  A frame's type byte (offset 12) is never zero, so none starts
 * in the zero bytes that end the segment (from nonzero_end on); a frame
 * may still reach into them (zero payload bytes and padding), so each is
 * checked against the whole length. */
static bool durable_damage(const unsigned char *p, size_t from, size_t nonzero_end, size_t len,
                           uint64_t salt, uint64_t q)
{
	struct once__wal_record r;
	for (size_t o = from; o < nonzero_end && o + ONCE_WAL_RECORD_HEADER <= len; o += 8)
		if (check_frame(p + o, len - o, salt, &r) == ONCE_WAL_VALID && r.seq >= q &&
		    r.synced_below > q)
			return true;
	return false;
}

void once__wal_scan_tail(const void *buf, size_t len, uint64_t salt, size_t valid_end, uint64_t next_seq,
                         struct once__wal_scan *out)
{
	const unsigned char *p = buf;
	out->valid_end = valid_end;
	out->next_seq = next_seq;
	out->bad_offset = valid_end;
	out->zero_from = once__wal_zero_tail(p, valid_end, len);
	if (out->zero_from == valid_end)
		out->tail = ONCE_WAL_CLEAN; /* nothing, or only zeros: unused preallocated space */
	else
		out->tail = durable_damage(p, valid_end, out->zero_from, len, salt, next_seq) ? ONCE_WAL_CORRUPT
		                                                                               : ONCE_WAL_TORN;
}

void once__wal_scan(const void *buf, size_t len, uint64_t salt, uint64_t first_seq,
                    struct once__wal_scan *out)
{
	const unsigned char *p = buf;
	size_t o = 0;
	uint64_t seq = first_seq, records = 0;
	struct once__wal_record r;
	while (o < len && once__wal_record_check(p + o, len - o, salt, seq, &r) == ONCE_WAL_VALID) {
		o += r.size;
		seq++;
		records++;
	}
	once__wal_scan_tail(p, len, salt, o, seq, out);
	out->records = records;
}
