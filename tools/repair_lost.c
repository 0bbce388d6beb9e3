/*
 * tools/repair_lost.c - what a repair drops (tools/repair.h): the records
 * after the damage that still pass their checksums, counted by type, and
 * the spends and revocations among them, listed and kept to be written
 * again after the kept records (re-assertion, described in repair.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "repair.h"

void reassert_free(struct reassert *ra)
{
	for (size_t i = 0; i < ra->n; i++)
		free(ra->v[i].payload);
	free(ra->v);
	memset(ra, 0, sizeof *ra);
}

static void reassert_push(struct reassert *ra, uint8_t type, const void *payload, uint32_t len)
{
	if (ra->oom)
		return;
	if (ra->n == ra->cap) {
		size_t cap = ra->cap ? 2 * ra->cap : 64;
		void *g = realloc(ra->v, cap * sizeof *ra->v);
		if (g == NULL) {
			ra->oom = true;
			return;
		}
		ra->v = g;
		ra->cap = cap;
	}
	unsigned char *copy = malloc(len ? len : 1);
	if (copy == NULL) {
		ra->oom = true;
		return;
	}
	memcpy(copy, payload, len);
	ra->v[ra->n].type = type;
	ra->v[ra->n].len = len;
	ra->v[ra->n].payload = copy;
	ra->n++;
	ra->by_type[type]++;
}

size_t reassert_size(const struct reassert *ra)
{
	size_t n = 0;
	for (size_t i = 0; i < ra->n; i++)
		n += once__wal_record_size(ra->v[i].len);
	return n;
}

/* The repaired file is written whole and synced before anything reads it,
 * so every record carries its own number as its synced-below mark: damage
 * before a later record is corruption (wal/format.h). */
size_t reassert_encode(const struct reassert *ra, unsigned char *out, uint64_t salt, uint64_t seq)
{
	size_t o = 0;
	for (size_t i = 0; i < ra->n; i++) {
		once__wal_record_encode(out + o, salt, ra->v[i].type, seq + i, seq + i, ra->v[i].payload,
		                        ra->v[i].len);
		o += once__wal_record_size(ra->v[i].len);
	}
	return o;
}

/* A key as printable text: bytes outside printable ASCII as \xNN. */
static void printable(char *out, size_t cap, const unsigned char *key, size_t len)
{
	size_t o = 0, i;
	for (i = 0; i < len && o + 5 < cap; i++) {
		if (key[i] >= 0x20 && key[i] < 0x7f && key[i] != '\\' && key[i] != '"')
			out[o++] = (char)key[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", key[i]);
	}
	if (i < len && o >= 3) /* cut short */
		memcpy(out + o - 3, "...", 3);
	out[o] = '\0';
}

/* Whether a record only ever makes a credential more spent or more
 * revoked: those are listed and re-asserted. */
static bool spends_or_revokes(uint8_t type, const struct once__wal_op *op)
{
	switch (type) {
	case ONCE_WAL_CODE_TAKE:
	case ONCE_WAL_CODE_FINALIZE:
	case ONCE_WAL_REFRESH_CONSUME:
	case ONCE_WAL_NONCE_ACCEPT:
	case ONCE_WAL_REPLAY_RECORD:
	case ONCE_WAL_ACCESS_REVOKE:
	case ONCE_WAL_REFRESH_REVOKE:
	case ONCE_WAL_REFRESH_ROTATE: /* as the consume of its parent */
		return true;
	case ONCE_WAL_ACCESS_FAMILY:
	case ONCE_WAL_REFRESH_FAMILY:
		return op->revoked;
	default:
		return false;
	}
}

/* A rotation re-asserted as the consume of its parent (its child is
 * dropped).  REFRESH_CONSUME: key (u16 length + bytes), consumed_at (i64). */
static void push_parent_consume(struct reassert *ra, const struct once__wal_op *op)
{
	unsigned char buf[2 + UINT16_MAX + 8];
	size_t n = 0;
	buf[n++] = (unsigned char)(op->key_len & 0xff);
	buf[n++] = (unsigned char)(op->key_len >> 8);
	memcpy(buf + n, op->key, op->key_len);
	n += op->key_len;
	for (int i = 0; i < 8; i++)
		buf[n++] = (unsigned char)((uint64_t)op->at >> (8 * i));
	reassert_push(ra, ONCE_WAL_REFRESH_CONSUME, buf, (uint32_t)n);
}

/* A dropped record that spends or revokes: listed, and (ra not NULL)
 * kept for re-assertion. */
static void note_record(struct lost *l, struct reassert *ra, const struct once__wal_record *r,
                        struct once__scratch *sc)
{
	struct once__wal_op op;
	if (!once__wal_decode(r->type, r->payload, r->len, &op, sc) || !spends_or_revokes(r->type, &op))
		return;
	if (l->notables < NOTABLE_MAX) {
		struct notable *n = &l->notable[l->notables];
		n->type = r->type;
		printable(n->key, sizeof n->key, op.key, op.key_len);
	}
	l->notables++;
	if (ra == NULL)
		return;
	if (r->type == ONCE_WAL_REFRESH_ROTATE)
		push_parent_consume(ra, &op);
	else
		reassert_push(ra, r->type, r->payload, r->len);
}

void count_lost(const unsigned char *p, size_t from, size_t len, uint64_t salt, uint64_t min_seq,
                struct lost *l, struct reassert *ra)
{
	if (from >= len)
		return;
	/* Zero bytes that end the file are preallocated space the log never
	 * wrote (wal/format.h): cut with the damage, but nothing is lost in
	 * them, and no record starts there (a record's type is never 0). */
	size_t end = once__wal_zero_tail(p, from, len);
	l->bytes += end - from;
	l->zeros += len - end;
	struct once__scratch sc = {0};
	size_t o = (from + 7) & ~(size_t)7;
	while (o + ONCE_WAL_RECORD_HEADER <= len) {
		uint64_t seq = le64(p + o + 16);
		struct once__wal_record r;
		if (seq >= min_seq && once__wal_record_check(p + o, len - o, salt, seq, &r) == ONCE_WAL_VALID) {
			l->records++;
			l->by_type[r.type]++;
			note_record(l, ra, &r, &sc);
			min_seq = seq + 1;
			o += r.size;
		} else {
			o += 8;
		}
	}
	once__scratch_free(&sc);
}

void add_lost(struct lost *sum, const struct lost *l)
{
	sum->bytes += l->bytes;
	sum->zeros += l->zeros;
	sum->records += l->records;
	for (int t = 0; t < ONCE_WAL_TYPE_END; t++)
		sum->by_type[t] += l->by_type[t];
	sum->notables += l->notables;
}
