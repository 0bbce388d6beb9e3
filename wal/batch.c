/*
 * wal/batch.c - collecting, sorting and applying recovery's records (why:
 * wal/batch.h).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "batch.h"
#include "codec.h"
#include "format.h"
#include "internal.h"

#define PREFETCH_AHEAD 32

struct item {
	const unsigned char *payload;
	uint32_t len;
	uint32_t order; /* once__restore_order */
	uint8_t type;
	uint8_t part; /* ONCE_RESTORE_* */
};

struct mapping {
	const void *p;
	size_t len;
};

struct once__batch {
	once_store *s;
	struct item *items;
	size_t n, cap;
	struct mapping *maps;
	size_t nmaps, mapcap;
};

struct once__batch *once__batch_new(once_store *s)
{
	struct once__batch *b = calloc(1, sizeof *b);
	if (b != NULL)
		b->s = s;
	return b;
}

static bool grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t c = *cap ? *cap * 2 : 1024;
	void *q = realloc(*p, c * size);
	if (q == NULL)
		return false;
	*p = q;
	*cap = c;
	return true;
}

static once_status push(struct once__batch *b, const struct once__wal_record *rec,
                        const struct once__wal_op *op, int part)
{
	uint32_t order;
	if (!once__restore_order(b->s, op, part, &order))
		return ONCE_CORRUPT;
	if (!grow((void **)&b->items, &b->cap, b->n, sizeof *b->items))
		return ONCE_NOMEM;
	b->items[b->n++] = (struct item){.payload = rec->payload, .len = rec->len, .order = order,
	                                 .type = rec->type, .part = (uint8_t)part};
	return ONCE_OK;
}

once_status once__batch_add(struct once__batch *b, const struct once__wal_record *rec,
                            const struct once__wal_op *op)
{
	if (rec->type != ONCE_WAL_REFRESH_ROTATE)
		return push(b, rec, op, ONCE_RESTORE_WHOLE);
	once_status st = push(b, rec, op, ONCE_RESTORE_ROTATE_PARENT);
	return st == ONCE_OK ? push(b, rec, op, ONCE_RESTORE_ROTATE_CHILD) : st;
}

once_status once__batch_keep(struct once__batch *b, const void *map, size_t len)
{
	if (!grow((void **)&b->maps, &b->mapcap, b->nmaps, sizeof *b->maps))
		return ONCE_NOMEM;
	b->maps[b->nmaps++] = (struct mapping){map, len};
	return ONCE_OK;
}

/* Stable LSD radix sort on the 32-bit order, two 16-bit passes. */
static bool sort(struct once__batch *b)
{
	struct item *tmp = malloc(b->n * sizeof *tmp);
	size_t *count = malloc(65536 * sizeof *count);
	if (tmp == NULL || count == NULL) {
		free(tmp);
		free(count);
		return false;
	}
	struct item *from = b->items, *to = tmp;
	for (int shift = 0; shift < 32; shift += 16) {
		memset(count, 0, 65536 * sizeof *count);
		for (size_t i = 0; i < b->n; i++)
			count[(from[i].order >> shift) & 0xffff]++;
		size_t sum = 0;
		for (size_t d = 0; d < 65536; d++) {
			size_t c = count[d];
			count[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < b->n; i++)
			to[count[(from[i].order >> shift) & 0xffff]++] = from[i];
		struct item *t = from;
		from = to;
		to = t;
	}
	/* Two passes: the sorted items are back in b->items. */
	free(tmp);
	free(count);
	return true;
}

void once__batch_reserve(struct once__batch *b)
{
	uint64_t per_table[ONCE_TBL_COUNT] = {0};
	for (size_t i = 0; i < b->n; i++) {
		const struct item *it = &b->items[i];
		per_table[(it->order >> 29) % ONCE_TBL_COUNT]++;
		/* A token record may create its family too (restore.c): a log
		 * of logins is mostly one new family per token. */
		if (it->type == ONCE_WAL_REFRESH_INSERT ||
		    (it->type == ONCE_WAL_REFRESH_ROTATE && it->part == ONCE_RESTORE_ROTATE_CHILD))
			per_table[ONCE_TBL_REFRESH_FAMILY]++;
		else if (it->type == ONCE_WAL_ACCESS_RECORD)
			per_table[ONCE_TBL_ACCESS_FAMILY]++;
	}
	for (int t = 0; t < ONCE_TBL_COUNT; t++)
		if (per_table[t] > 0)
			once__grow_reserve(b->s, (enum once__table)t, per_table[t]);
}

once_status once__batch_apply(struct once__batch *b)
{
	if (b->n > 1 && !sort(b))
		return ONCE_NOMEM;
	struct once__scratch sc = {0};
	once_status st = ONCE_OK;
	for (size_t i = 0; i < b->n && st == ONCE_OK; i++) {
		const struct item *it = &b->items[i];
		/* Sorted by table, records come from all over the mapped files:
		 * fetch a few ahead so the misses overlap. */
		if (i + PREFETCH_AHEAD < b->n) {
			const struct item *ahead = &b->items[i + PREFETCH_AHEAD];
			__builtin_prefetch(ahead->payload);
			__builtin_prefetch(ahead->payload + 64);
		}
		struct once__wal_op op;
		/* It decoded when it was added; only memory can fail now. */
		if (!once__wal_decode(it->type, it->payload, it->len, &op, &sc))
			st = ONCE_NOMEM;
		else
			st = once__restore_apply(b->s, &op, it->part);
	}
	once__scratch_free(&sc);
	return st;
}

void once__batch_free(struct once__batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->nmaps; i++)
		munmap((void *)b->maps[i].p, b->maps[i].len);
	free(b->maps);
	free(b->items);
	free(b);
}
