/*
 * wal/codec.c - record payloads (the layout is in wal/codec.h).
 *
 * Encoding reads entries that are published and immutable in the fields
 * it reads (key, packed record, family incarnation, issued_at), plus the
 * one value the caller just decided (consumed_at, the consumption).
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fields.h"
#include "format.h"
#include "internal.h"

/* ---- writing ---- */

void once__buf_init(struct once__buf *b)
{
	b->p = b->small;
	b->len = 0;
	b->cap = sizeof b->small;
	b->oom = false;
}

void once__buf_free(struct once__buf *b)
{
	if (b->p != b->small)
		free(b->p);
	once__buf_init(b);
}

static void put(struct once__buf *b, const void *src, size_t n)
{
	if (b->oom)
		return;
	if (n > b->cap - b->len) {
		size_t cap = b->cap;
		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2) {
				b->oom = true;
				return;
			}
			cap *= 2;
		}
		unsigned char *p = b->p == b->small ? malloc(cap) : realloc(b->p, cap);
		if (p == NULL) {
			b->oom = true;
			return;
		}
		if (b->p == b->small)
			memcpy(p, b->small, b->len);
		b->p = p;
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void put_uint(struct once__buf *b, uint64_t v, int bytes)
{
	unsigned char le[8];
	for (int i = 0; i < bytes; i++)
		le[i] = (unsigned char)(v >> (8 * i));
	put(b, le, (size_t)bytes);
}

void once__enc_u64(struct once__buf *b, uint64_t v)
{
	put_uint(b, v, 8);
}

static void put_i64(struct once__buf *b, int64_t v)
{
	put_uint(b, (uint64_t)v, 8);
}

static void put_key(struct once__buf *b, const unsigned char *key, size_t len)
{
	put_uint(b, len, 2); /* key_len <= 65535 (max_key_len) */
	put(b, key, len);
}

static void put_bytes(struct once__buf *b, const void *p, size_t n)
{
	if (n > UINT32_MAX) { /* max_record_len keeps every field far below */
		b->oom = true;
		return;
	}
	put_uint(b, p ? n : 0, 4);
	if (p != NULL)
		put(b, p, n);
}

static void put_text(struct once__buf *b, const char *s)
{
	if (s == NULL) {
		put_uint(b, 0, 4);
		return;
	}
	put_bytes(b, s, strlen(s) + 1);
}

static void put_list(struct once__buf *b, const char *const *list, size_t n)
{
	put_uint(b, list ? n : 0, 4);
	for (size_t i = 0; list != NULL && i < n; i++)
		put_text(b, list[i]);
}

#define ENC_TEXT(f) put_text(b, r->f);
#define ENC_LIST(f) put_list(b, r->f, r->f##_count);
#define ENC_BYTES(f) put_bytes(b, r->f, r->f##_len);
#define ENC_I64(f) put_i64(b, r->f);

static void put_code(struct once__buf *b, const once_code *r)
{
	CODE_SCALARS(ENC_I64)
	CODE_FIELDS(ENC_TEXT, ENC_LIST, ENC_BYTES)
}

static void put_refresh(struct once__buf *b, const struct once__entry *e)
{
	const once_refresh *r = e->u.refresh.record;
	put_key(b, e->key, e->key_len);
	once__enc_u64(b, e->u.refresh.family->u.family.incarnation);
	REFRESH_SCALARS(ENC_I64)
	REFRESH_FIELDS(ENC_TEXT, ENC_LIST, ENC_BYTES)
}

static void put_sealed(struct once__buf *b, const struct once__consumption *c)
{
	const struct once__sealed *s = c ? c->successor : NULL;
	if (s == NULL) {
		put_uint(b, 0, 4);
		return;
	}
	put_uint(b, sizeof s->nonce + s->len, 4);
	put(b, s->nonce, sizeof s->nonce);
	put(b, s->ct, s->len);
}

void once__enc_code_put(struct once__buf *b, const struct once__entry *e)
{
	put_key(b, e->key, e->key_len);
	put_code(b, e->u.code.record);
}

void once__enc_key(struct once__buf *b, const struct once__entry *e, bool with_at, int64_t at)
{
	put_key(b, e->key, e->key_len);
	if (with_at)
		put_i64(b, at);
}

void once__enc_family(struct once__buf *b, const struct once__entry *f)
{
	put_key(b, f->key, f->key_len);
	once__enc_u64(b, f->u.family.incarnation);
	put_i64(b, atomic_load_explicit(&f->expires_at, memory_order_relaxed));
	put_uint(b, atomic_load(&f->state) == ONCE_FAMILY_REVOKED, 1);
}

void once__enc_access(struct once__buf *b, const struct once__entry *e)
{
	put_key(b, e->key, e->key_len);
	put_bytes(b, e->u.access.family, e->u.access.family_len);
	once__enc_u64(b, e->u.access.family_incarnation);
	put_i64(b, atomic_load_explicit(&e->expires_at, memory_order_relaxed));
}

void once__enc_refresh_insert(struct once__buf *b, const struct once__entry *e)
{
	put_refresh(b, e);
}

void once__enc_successor(struct once__buf *b, const struct once__entry *e,
                         const struct once__consumption *c)
{
	put_key(b, e->key, e->key_len);
	put_sealed(b, c);
}

void once__enc_rotate(struct once__buf *b, const struct once__entry *parent,
                      const struct once__consumption *c, const struct once__entry *child)
{
	put_key(b, parent->key, parent->key_len);
	put_i64(b, c->consumed_at);
	put_sealed(b, c);
	put_refresh(b, child);
}

void once__enc_nonce(struct once__buf *b, const struct once__entry *e)
{
	put_key(b, e->key, e->key_len);
	put_i64(b, e->u.nonce.issued_at);
	put_i64(b, atomic_load_explicit(&e->expires_at, memory_order_relaxed));
}

void once__enc_replay(struct once__buf *b, const struct once__entry *e)
{
	put_key(b, e->key, e->key_len);
	put_i64(b, atomic_load_explicit(&e->expires_at, memory_order_relaxed));
}

/* ---- reading ---- */

struct reader {
	const unsigned char *p;
	size_t left;
	bool bad;
	struct once__scratch *sc;
};

static const unsigned char *get(struct reader *r, size_t n)
{
	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	const unsigned char *at = r->p;
	r->p += n;
	r->left -= n;
	return at;
}

static uint64_t get_uint(struct reader *r, int bytes)
{
	const unsigned char *p = get(r, (size_t)bytes);
	uint64_t v = 0;
	for (int i = bytes - 1; p != NULL && i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int64_t get_i64(struct reader *r)
{
	return (int64_t)get_uint(r, 8);
}

static const unsigned char *get_key(struct reader *r, size_t *len)
{
	*len = (size_t)get_uint(r, 2);
	const unsigned char *k = get(r, *len);
	if (*len == 0)
		r->bad = true; /* the store never keeps an empty key */
	return k;
}

static const void *get_bytes(struct reader *r, size_t *len)
{
	*len = (size_t)get_uint(r, 4);
	return *len ? get(r, *len) : NULL;
}

static const char *get_text(struct reader *r)
{
	size_t n;
	const char *s = get_bytes(r, &n);
	if (s == NULL)
		return NULL;
	if (s[n - 1] != '\0' || memchr(s, '\0', n - 1) != NULL) {
		r->bad = true;
		return NULL;
	}
	return s;
}

static const char *const *get_list(struct reader *r, size_t *count)
{
	size_t n = (size_t)get_uint(r, 4);
	*count = n;
	if (n == 0 || r->bad)
		return NULL;
	if (n > r->left / 4) { /* each text takes 4 bytes at least */
		r->bad = true;
		return NULL;
	}
	struct once__scratch *sc = r->sc; /* sized for len / 4 texts by the caller */
	if (n > sc->cap - sc->used) {
		r->bad = true;
		return NULL;
	}
	const char **list = sc->slots + sc->used;
	sc->used += n;
	for (size_t i = 0; i < n; i++) {
		list[i] = get_text(r);
		if (list[i] == NULL)
			r->bad = true;
	}
	return list;
}

#define DEC_TEXT(f) o->f = get_text(r);
#define DEC_LIST(f) o->f = get_list(r, &o->f##_count);
#define DEC_BYTES(f) o->f = get_bytes(r, &o->f##_len);
#define DEC_I64(f) o->f = get_i64(r);

static void get_code(struct reader *r, once_code *o)
{
	memset(o, 0, sizeof *o);
	CODE_SCALARS(DEC_I64)
	CODE_FIELDS(DEC_TEXT, DEC_LIST, DEC_BYTES)
}

/* A family incarnation (core/family.c numbers families from 1, one number
 * per family created).  0 names no family, and recovery (core/restore.c)
 * refuses it; one at ONCE_WAL_NUMBER_MAX or above is damage too: recovery
 * raises the store's counter to it, and the next family created would
 * wrap around to 0.  Refused here, so that verify (which only decodes)
 * and once_open (which applies) agree on every record. */
static uint64_t get_incarnation(struct reader *r)
{
	uint64_t inc = get_uint(r, 8);
	if (inc == 0 || inc >= ONCE_WAL_NUMBER_MAX)
		r->bad = true;
	return inc;
}

static void get_refresh(struct reader *r, struct once__wal_op *op, const unsigned char **key,
                        size_t *key_len)
{
	once_refresh *o = &op->refresh;
	memset(o, 0, sizeof *o);
	*key = get_key(r, key_len);
	op->incarnation = get_incarnation(r);
	REFRESH_SCALARS(DEC_I64)
	REFRESH_FIELDS(DEC_TEXT, DEC_LIST, DEC_BYTES)
	/* The family id is the family's key (core/restore.c looks it up):
	 * never empty, at most a key's length. */
	if (o->family_id == NULL || o->family_id[0] == '\0' || strlen(o->family_id) > UINT16_MAX)
		r->bad = true;
}

static void get_sealed(struct reader *r, struct once__wal_op *op)
{
	op->sealed = get_bytes(r, &op->sealed_len);
	if (op->sealed != NULL && op->sealed_len <= 24)
		r->bad = true; /* a nonce and a tag at least */
}

bool once__wal_decode(uint8_t type, const unsigned char *p, size_t len, struct once__wal_op *op,
                      struct once__scratch *scratch)
{
	struct reader rd = {.p = p, .left = len, .sc = scratch}, *r = &rd;
	memset(op, 0, sizeof *op);
	op->type = type;
	/* Every listed text takes 4 bytes at least, so len / 4 slots hold all
	 * of a record's lists; grown here, before any pointer is handed out. */
	scratch->used = 0;
	if (scratch->cap < len / 4 + 1) {
		size_t cap = len / 4 + 64;
		const char **slots = realloc(scratch->slots, cap * sizeof *slots);
		if (slots == NULL)
			return false;
		scratch->slots = slots;
		scratch->cap = cap;
	}
	switch (type) {
	case ONCE_WAL_CODE_PUT:
		op->key = get_key(r, &op->key_len);
		get_code(r, &op->code);
		op->expires_at = op->code.expires_at;
		break;
	case ONCE_WAL_CODE_TAKE:
	case ONCE_WAL_REFRESH_CONSUME:
		op->key = get_key(r, &op->key_len);
		op->at = get_i64(r);
		break;
	case ONCE_WAL_CODE_FINALIZE:
	case ONCE_WAL_NONCE_ACCEPT:
		op->key = get_key(r, &op->key_len);
		break;
	case ONCE_WAL_ACCESS_RECORD:
		op->key = get_key(r, &op->key_len);
		op->family = get_bytes(r, &op->family_len);
		if (op->family == NULL || op->family_len > UINT16_MAX)
			r->bad = true;
		op->incarnation = get_incarnation(r);
		op->expires_at = get_i64(r);
		break;
	case ONCE_WAL_ACCESS_REVOKE:
	case ONCE_WAL_REFRESH_REVOKE:
	case ONCE_WAL_ACCESS_FAMILY:
	case ONCE_WAL_REFRESH_FAMILY:
		op->key = get_key(r, &op->key_len);
		op->incarnation = get_incarnation(r);
		op->expires_at = get_i64(r);
		op->revoked = get_uint(r, 1) != 0;
		break;
	case ONCE_WAL_REFRESH_INSERT:
		get_refresh(r, op, &op->key, &op->key_len);
		op->expires_at = op->refresh.expires_at;
		break;
	case ONCE_WAL_REFRESH_SUCCESSOR:
		op->key = get_key(r, &op->key_len);
		get_sealed(r, op);
		if (op->sealed == NULL)
			r->bad = true;
		break;
	case ONCE_WAL_REFRESH_ROTATE:
		op->key = get_key(r, &op->key_len);
		op->at = get_i64(r);
		get_sealed(r, op);
		get_refresh(r, op, &op->child, &op->child_len);
		op->expires_at = op->refresh.expires_at;
		break;
	case ONCE_WAL_NONCE_ISSUE:
		op->key = get_key(r, &op->key_len);
		op->at = get_i64(r);
		op->expires_at = get_i64(r);
		break;
	case ONCE_WAL_REPLAY_RECORD:
		op->key = get_key(r, &op->key_len);
		op->expires_at = get_i64(r);
		break;
	case ONCE_WAL_SNAPSHOT_END:
		op->count = get_uint(r, 8);
		break;
	default:
		return false;
	}
	return !rd.bad && rd.left == 0;
}

void once__scratch_free(struct once__scratch *sc)
{
	free(sc->slots);
	sc->slots = NULL;
	sc->cap = sc->used = 0;
}
