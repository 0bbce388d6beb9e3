/*
 * pg/etf.c - encoder and bounded decoder for the Erlang term format subset
 * of successors (ATTESTO-PG 2.2.5; the tags and rules are listed at the
 * top of pg/etf.h).
 *
 * The encoder runs the same walk twice: once counting bytes, once writing
 * into a buffer of exactly that size, so it never reallocates and never
 * writes past the end.  The decoder reads through a cursor whose every
 * read checks the bytes left first.
 */
#include <stdlib.h>
#include <string.h>

#include "etf.h"

/* Tag bytes (erts external.h names). */
enum {
	VERSION_MAGIC = 131,
	SMALL_INTEGER_EXT = 97, /* 61 */
	INTEGER_EXT = 98,       /* 62 */
	ATOM_EXT = 100,         /* 64 */
	SMALL_TUPLE_EXT = 104,  /* 68 */
	NIL_EXT = 106,          /* 6A */
	STRING_EXT = 107,       /* 6B */
	LIST_EXT = 108,         /* 6C */
	BINARY_EXT = 109,       /* 6D */
	SMALL_BIG_EXT = 110,    /* 6E */
	SMALL_ATOM_EXT = 115,   /* 73 */
	MAP_EXT = 116,          /* 74 */
	ATOM_UTF8_EXT = 118,    /* 76 */
	SMALL_ATOM_UTF8_EXT = 119 /* 77 */
};

/* Erlang writes a list of byte-sized integers as STRING_EXT when it has at
 * most this many (a u16 length); longer ones are LIST_EXT. */
#define STRING_EXT_MAX 65535u

/* ================================================================
 * Building and freeing terms
 * ================================================================ */

void once__etf_integer(struct once__etf *t, int64_t v)
{
	*t = (struct once__etf){.type = ONCE_ETF_INTEGER, .integer = v};
}

void once__etf_binary(struct once__etf *t, const void *bytes, size_t len)
{
	*t = (struct once__etf){.type = ONCE_ETF_BINARY, .bytes = bytes, .len = len};
}

void once__etf_string(struct once__etf *t, const char *s)
{
	once__etf_binary(t, s, strlen(s));
}

void once__etf_atom(struct once__etf *t, const char *name)
{
	*t = (struct once__etf){
	    .type = ONCE_ETF_ATOM, .bytes = (const unsigned char *)name, .len = strlen(name)};
}

/* A container of n elements taking `slots` items (2n for a map). */
static bool container(struct once__etf *t, enum once__etf_type type, size_t n, size_t slots)
{
	*t = (struct once__etf){.type = ONCE_ETF_LIST};
	struct once__etf *items = NULL;
	if (slots > 0 && (items = calloc(slots, sizeof *items)) == NULL)
		return false;
	*t = (struct once__etf){.type = type, .items = items, .n = n};
	return true;
}

bool once__etf_list(struct once__etf *t, size_t n)
{
	return container(t, ONCE_ETF_LIST, n, n);
}

bool once__etf_tuple(struct once__etf *t, size_t n)
{
	return container(t, ONCE_ETF_TUPLE, n, n);
}

bool once__etf_map(struct once__etf *t, size_t n)
{
	if (n > SIZE_MAX / 2) {
		*t = (struct once__etf){.type = ONCE_ETF_LIST};
		return false;
	}
	return container(t, ONCE_ETF_MAP, n, 2 * n);
}

static size_t slots_of(const struct once__etf *t)
{
	switch (t->type) {
	case ONCE_ETF_LIST:
	case ONCE_ETF_TUPLE:
		return t->n;
	case ONCE_ETF_MAP:
		return 2 * t->n;
	default:
		return 0;
	}
}

void once__etf_free(struct once__etf *t)
{
	if (t->items != NULL) {
		size_t slots = slots_of(t);
		for (size_t i = 0; i < slots; i++)
			once__etf_free(&t->items[i]);
		free(t->items);
	}
	*t = (struct once__etf){.type = ONCE_ETF_LIST};
}

bool once__etf_is_atom(const struct once__etf *t, const char *name)
{
	size_t n = strlen(name);
	return t->type == ONCE_ETF_ATOM && t->len == n && memcmp(t->bytes, name, n) == 0;
}

/* ================================================================
 * Map keys in Erlang's term order (atoms < binaries; same kind: bytewise,
 * a prefix first), used for writing order and the duplicate check.
 * ================================================================ */

static bool is_key(const struct once__etf *t)
{
	return t->type == ONCE_ETF_ATOM || t->type == ONCE_ETF_BINARY;
}

static int key_cmp(const void *a, const void *b)
{
	const struct once__etf *x = *(const struct once__etf *const *)a;
	const struct once__etf *y = *(const struct once__etf *const *)b;
	if (x->type != y->type)
		return x->type == ONCE_ETF_ATOM ? -1 : 1;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n > 0 ? memcmp(x->bytes, y->bytes, n) : 0;
	if (c != 0)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/* *sorted (malloc'd, n entries) receives pointers to m's keys in term
 * order; each key's value follows it in items.  ONCE_INVALID when a key is
 * neither atom nor binary or two keys are equal. */
static once_status sort_keys(const struct once__etf *m, const struct once__etf ***sorted)
{
	*sorted = NULL;
	if (m->n == 0)
		return ONCE_OK;
	const struct once__etf **keys = malloc(m->n * sizeof *keys);
	if (keys == NULL)
		return ONCE_NOMEM;
	for (size_t i = 0; i < m->n; i++) {
		keys[i] = &m->items[2 * i];
		if (!is_key(keys[i])) {
			free(keys);
			return ONCE_INVALID;
		}
	}
	qsort(keys, m->n, sizeof *keys, key_cmp);
	for (size_t i = 1; i < m->n; i++) {
		if (key_cmp(&keys[i - 1], &keys[i]) == 0) {
			free(keys);
			return ONCE_INVALID;
		}
	}
	*sorted = keys;
	return ONCE_OK;
}

/* ================================================================
 * Encoder
 * ================================================================ */

/* Counts (out == NULL) or writes bytes. */
struct writer {
	unsigned char *out;
	size_t len;
};

static void put(struct writer *w, const void *bytes, size_t n)
{
	if (w->out != NULL && n > 0)
		memcpy(w->out + w->len, bytes, n);
	w->len += n;
}

static void put_u8(struct writer *w, unsigned v)
{
	unsigned char b = (unsigned char)v;
	put(w, &b, 1);
}

static void put_u16(struct writer *w, uint32_t v)
{
	unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
	put(w, b, 2);
}

static void put_u32(struct writer *w, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	                      (unsigned char)(v >> 8), (unsigned char)v};
	put(w, b, 4);
}

/* The smallest form, as erts enc_term does: 61 for 0..255, 62 for the rest
 * of the signed 32-bit range, SMALL_BIG_EXT with the fewest magnitude
 * bytes beyond it. */
static void put_integer(struct writer *w, int64_t v)
{
	if (v >= 0 && v <= 255) {
		put_u8(w, SMALL_INTEGER_EXT);
		put_u8(w, (unsigned)v);
		return;
	}
	if (v >= INT32_MIN && v <= INT32_MAX) {
		put_u8(w, INTEGER_EXT);
		put_u32(w, (uint32_t)v); /* two's complement, as BE bytes */
		return;
	}
	/* |v| without overflow: INT64_MIN's magnitude is 2^63. */
	uint64_t mag = v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v;
	unsigned char le[8];
	unsigned n = 0;
	for (uint64_t m = mag; m != 0; m >>= 8)
		le[n++] = (unsigned char)m;
	put_u8(w, SMALL_BIG_EXT);
	put_u8(w, n);
	put_u8(w, v < 0);
	put(w, le, n);
}

/* Erlang's is_external_string: 1..65535 integers, each 0..255. */
static bool is_byte_string(const struct once__etf *t)
{
	if (t->n == 0 || t->n > STRING_EXT_MAX)
		return false;
	for (size_t i = 0; i < t->n; i++) {
		const struct once__etf *e = &t->items[i];
		if (e->type != ONCE_ETF_INTEGER || e->integer < 0 || e->integer > 255)
			return false;
	}
	return true;
}

static once_status encode_term(struct writer *w, const struct once__etf *t, unsigned depth);

static once_status encode_list(struct writer *w, const struct once__etf *t, unsigned depth)
{
	if (t->n == 0) {
		put_u8(w, NIL_EXT);
		return ONCE_OK;
	}
	if (is_byte_string(t)) {
		put_u8(w, STRING_EXT);
		put_u16(w, (uint32_t)t->n);
		for (size_t i = 0; i < t->n; i++)
			put_u8(w, (unsigned)t->items[i].integer);
		return ONCE_OK;
	}
	if (t->n > UINT32_MAX)
		return ONCE_INVALID;
	put_u8(w, LIST_EXT);
	put_u32(w, (uint32_t)t->n);
	for (size_t i = 0; i < t->n; i++) {
		once_status st = encode_term(w, &t->items[i], depth + 1);
		if (st != ONCE_OK)
			return st;
	}
	put_u8(w, NIL_EXT); /* a proper list's tail */
	return ONCE_OK;
}

static once_status encode_map(struct writer *w, const struct once__etf *t, unsigned depth)
{
	if (t->n > UINT32_MAX)
		return ONCE_INVALID;
	const struct once__etf **keys;
	once_status st = sort_keys(t, &keys);
	if (st != ONCE_OK)
		return st;
	put_u8(w, MAP_EXT);
	put_u32(w, (uint32_t)t->n);
	for (size_t i = 0; i < t->n && st == ONCE_OK; i++) {
		st = encode_term(w, keys[i], depth + 1);
		if (st == ONCE_OK)
			st = encode_term(w, keys[i] + 1, depth + 1);
	}
	free(keys);
	return st;
}

static once_status encode_term(struct writer *w, const struct once__etf *t, unsigned depth)
{
	if (depth > ONCE_ETF_MAX_DEPTH)
		return ONCE_INVALID;
	switch (t->type) {
	case ONCE_ETF_INTEGER:
		put_integer(w, t->integer);
		return ONCE_OK;
	case ONCE_ETF_ATOM:
		if (t->len > 255)
			return ONCE_INVALID;
		put_u8(w, SMALL_ATOM_UTF8_EXT);
		put_u8(w, (unsigned)t->len);
		put(w, t->bytes, t->len);
		return ONCE_OK;
	case ONCE_ETF_BINARY:
		if (t->len > UINT32_MAX)
			return ONCE_INVALID;
		put_u8(w, BINARY_EXT);
		put_u32(w, (uint32_t)t->len);
		put(w, t->bytes, t->len);
		return ONCE_OK;
	case ONCE_ETF_LIST:
		return encode_list(w, t, depth);
	case ONCE_ETF_TUPLE:
		if (t->n > 255)
			return ONCE_INVALID;
		put_u8(w, SMALL_TUPLE_EXT);
		put_u8(w, (unsigned)t->n);
		for (size_t i = 0; i < t->n; i++) {
			once_status st = encode_term(w, &t->items[i], depth + 1);
			if (st != ONCE_OK)
				return st;
		}
		return ONCE_OK;
	case ONCE_ETF_MAP:
		return encode_map(w, t, depth);
	}
	return ONCE_INVALID;
}

once_status once__etf_encode(const struct once__etf *t, unsigned char **out, size_t *len)
{
	if (t == NULL || out == NULL || len == NULL)
		return ONCE_INVALID;
	struct writer count = {NULL, 1};
	once_status st = encode_term(&count, t, 1);
	if (st != ONCE_OK)
		return st;
	struct writer w = {malloc(count.len), 0};
	if (w.out == NULL)
		return ONCE_NOMEM;
	put_u8(&w, VERSION_MAGIC);
	st = encode_term(&w, t, 1);
	if (st != ONCE_OK) { /* only NOMEM can differ from the counting pass */
		free(w.out);
		return st;
	}
	*out = w.out;
	*len = w.len;
	return ONCE_OK;
}

/* ================================================================
 * Decoder
 * ================================================================ */

struct reader {
	const uint8_t *p;
	size_t left;
};

/* The next n bytes, or NULL when fewer are left. */
static const uint8_t *take(struct reader *r, size_t n)
{
	if (n > r->left)
		return NULL;
	const uint8_t *at = r->p;
	r->p += n;
	r->left -= n;
	return at;
}

static bool take_u8(struct reader *r, uint32_t *v)
{
	const uint8_t *b = take(r, 1);
	if (b == NULL)
		return false;
	*v = b[0];
	return true;
}

static bool take_u16(struct reader *r, uint32_t *v)
{
	const uint8_t *b = take(r, 2);
	if (b == NULL)
		return false;
	*v = (uint32_t)b[0] << 8 | b[1];
	return true;
}

static bool take_u32(struct reader *r, uint32_t *v)
{
	const uint8_t *b = take(r, 4);
	if (b == NULL)
		return false;
	*v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	return true;
}

bool once__etf_utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		size_t more;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			more = 1, cp = c & 0x1F, min = 0x80;
		} else if (c >= 0xE0 && c <= 0xEF) {
			more = 2, cp = c & 0x0F, min = 0x800;
		} else if (c >= 0xF0 && c <= 0xF4) {
			more = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (more >= n - i)
			return false;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += more + 1;
	}
	return true;
}

static bool ascii(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return false;
	return true;
}

/* SMALL_BIG_EXT after its tag: accepted only within int64 (magnitude bytes
 * past the eighth must be zero; Erlang also writes no such zeros). */
static bool decode_big(struct reader *r, int64_t *v)
{
	uint32_t n, sign;
	if (!take_u8(r, &n) || !take_u8(r, &sign) || sign > 1)
		return false;
	const uint8_t *le = take(r, n);
	if (le == NULL)
		return false;
	uint64_t mag = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (i >= 8) {
			if (le[i] != 0)
				return false;
		} else {
			mag |= (uint64_t)le[i] << (8 * i);
		}
	}
	const uint64_t min_mag = (uint64_t)INT64_MAX + 1; /* |INT64_MIN| */
	if (sign == 0) {
		if (mag > (uint64_t)INT64_MAX)
			return false;
		*v = (int64_t)mag;
	} else {
		if (mag > min_mag)
			return false;
		*v = mag == min_mag ? INT64_MIN : -(int64_t)mag;
	}
	return true;
}

/* An atom after its tag; utf8 tells the form, wide a u16 length. */
static bool decode_atom(struct reader *r, bool wide, bool utf8, bool as_key,
                        struct once__etf *t)
{
	uint32_t n;
	if (!(wide ? take_u16(r, &n) : take_u8(r, &n)))
		return false;
	const uint8_t *name = take(r, n);
	if (name == NULL || !(utf8 ? once__etf_utf8_valid(name, n) : ascii(name, n)))
		return false;
	*t = (struct once__etf){.type = ONCE_ETF_ATOM, .bytes = name, .len = n};
	/* Values may only be the three atoms JSON needs; keys may be any. */
	return as_key || once__etf_is_atom(t, "nil") || once__etf_is_atom(t, "true") ||
	       once__etf_is_atom(t, "false");
}

static once_status decode_term(struct reader *r, struct once__etf *t, unsigned depth,
                               bool as_key);

/* n elements follow; each takes at least one byte, so a count past the
 * bytes left is refused before anything is allocated. */
static once_status decode_items(struct reader *r, struct once__etf *t, size_t slots,
                                unsigned depth, bool map)
{
	for (size_t i = 0; i < slots; i++) {
		once_status st = decode_term(r, &t->items[i], depth + 1, map && i % 2 == 0);
		if (st != ONCE_OK)
			return st;
		if (map && i % 2 == 0 && !is_key(&t->items[i]))
			return ONCE_INVALID;
	}
	return ONCE_OK;
}

static once_status decode_list(struct reader *r, struct once__etf *t, unsigned depth)
{
	uint32_t n, tail;
	if (!take_u32(r, &n) || n >= r->left) /* n elements and the tail */
		return ONCE_INVALID;
	if (!once__etf_list(t, n))
		return ONCE_NOMEM;
	once_status st = decode_items(r, t, n, depth, false);
	if (st != ONCE_OK)
		return st;
	/* Only proper lists: the tail is [] */
	return take_u8(r, &tail) && tail == NIL_EXT ? ONCE_OK : ONCE_INVALID;
}

static once_status decode_string(struct reader *r, struct once__etf *t)
{
	uint32_t n;
	if (!take_u16(r, &n) || n > r->left)
		return ONCE_INVALID;
	const uint8_t *bytes = take(r, n);
	if (!once__etf_list(t, n))
		return ONCE_NOMEM;
	for (uint32_t i = 0; i < n; i++)
		once__etf_integer(&t->items[i], bytes[i]);
	return ONCE_OK;
}

static once_status decode_tuple(struct reader *r, struct once__etf *t, unsigned depth)
{
	uint32_t n;
	if (!take_u8(r, &n) || n > r->left)
		return ONCE_INVALID;
	if (!once__etf_tuple(t, n))
		return ONCE_NOMEM;
	return decode_items(r, t, n, depth, false);
}

static once_status decode_map(struct reader *r, struct once__etf *t, unsigned depth)
{
	uint32_t n;
	if (!take_u32(r, &n) || n > r->left / 2)
		return ONCE_INVALID;
	if (!once__etf_map(t, n))
		return ONCE_NOMEM;
	once_status st = decode_items(r, t, 2 * (size_t)n, depth, true);
	if (st != ONCE_OK)
		return st;
	/* binary_to_term refuses a map with a repeated key; so do we. */
	const struct once__etf **keys;
	st = sort_keys(t, &keys);
	free(keys);
	return st;
}

static once_status decode_term(struct reader *r, struct once__etf *t, unsigned depth,
                               bool as_key)
{
	uint32_t tag, u;
	if (depth > ONCE_ETF_MAX_DEPTH || !take_u8(r, &tag))
		return ONCE_INVALID;
	switch (tag) {
	case SMALL_INTEGER_EXT:
		if (!take_u8(r, &u))
			return ONCE_INVALID;
		once__etf_integer(t, u);
		return ONCE_OK;
	case INTEGER_EXT:
		if (!take_u32(r, &u))
			return ONCE_INVALID;
		/* Two's complement without an implementation-defined cast. */
		once__etf_integer(t, u < 0x80000000u ? (int64_t)u : (int64_t)u - 0x100000000);
		return ONCE_OK;
	case SMALL_BIG_EXT: {
		int64_t v;
		if (!decode_big(r, &v))
			return ONCE_INVALID;
		once__etf_integer(t, v);
		return ONCE_OK;
	}
	case BINARY_EXT: {
		const uint8_t *bytes;
		if (!take_u32(r, &u) || (bytes = take(r, u)) == NULL)
			return ONCE_INVALID;
		once__etf_binary(t, bytes, u);
		return ONCE_OK;
	}
	case SMALL_ATOM_UTF8_EXT:
		return decode_atom(r, false, true, as_key, t) ? ONCE_OK : ONCE_INVALID;
	case ATOM_UTF8_EXT:
		return decode_atom(r, true, true, as_key, t) ? ONCE_OK : ONCE_INVALID;
	case SMALL_ATOM_EXT:
		return decode_atom(r, false, false, as_key, t) ? ONCE_OK : ONCE_INVALID;
	case ATOM_EXT:
		return decode_atom(r, true, false, as_key, t) ? ONCE_OK : ONCE_INVALID;
	case NIL_EXT:
		*t = (struct once__etf){.type = ONCE_ETF_LIST};
		return ONCE_OK;
	case LIST_EXT:
		return decode_list(r, t, depth);
	case STRING_EXT:
		return decode_string(r, t);
	case SMALL_TUPLE_EXT:
		return decode_tuple(r, t, depth);
	case MAP_EXT:
		return decode_map(r, t, depth);
	default:
		return ONCE_INVALID;
	}
}

once_status once__etf_decode(const uint8_t *buf, size_t len, struct once__etf *out)
{
	if (out == NULL || (buf == NULL && len > 0))
		return ONCE_INVALID;
	struct reader r = {buf, len};
	uint32_t version;
	if (!take_u8(&r, &version) || version != VERSION_MAGIC)
		return ONCE_INVALID;
	struct once__etf t = {.type = ONCE_ETF_LIST};
	once_status st = decode_term(&r, &t, 1, false);
	if (st == ONCE_OK && r.left != 0) /* exactly one term, nothing after it */
		st = ONCE_INVALID;
	if (st != ONCE_OK) {
		once__etf_free(&t);
		return st;
	}
	*out = t;
	return ONCE_OK;
}
