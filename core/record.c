/*
 * core/record.c - records returned to callers: one heap block each.
 *
 * A packed record is the public struct followed, in the same allocation, by
 * its list pointer arrays, its opaque bytes and its strings; every pointer
 * in the struct points inside the block, so once_free (free) releases all
 * of it.  The store keeps codes in this same packed form, and a read packs
 * the stored record again into the caller's copy: one code path for both.
 *
 * Packing runs twice over the same walk: first to measure (base == NULL),
 * then to copy into a block of exactly that size.  The store's inserts pack
 * in one walk instead (once__T_prepare, once__T_place): into a buffer on
 * the stack, then one memcpy into the block and every pointer moved.  The
 * two walks, each measuring every string, were a sixth of a code put
 * (issue 10).  A record too large for the buffer is measured to its end by
 * that same walk, and packed in place by a second.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "internal.h"

bool once__text_present(const char *s)
{
	return s != NULL && s[0] != '\0';
}

bool once__list_ok(const char *const *list, size_t n)
{
	if (n == 0)
		return true;
	if (list == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (list[i] == NULL)
			return false;
	return true;
}

/* A code either engine may store: the required fields, PKCE S256 only,
 * and nothing that claims it is consumed already.  Refused whole, so
 * nothing is stored (core/code.c; pg/code.c adds its columns' limits). */
bool once__code_valid(const once_code *c)
{
	if (!once__text_present(c->client_id) || !once__text_present(c->subject) ||
	    !once__text_present(c->redirect_uri))
		return false;
	if (!once__time_valid(c->expires_at) || c->consumed_at != 0 || c->consumed_success)
		return false;
	if (c->code_challenge_method != NULL &&
	    (strcmp(c->code_challenge_method, "S256") != 0 || c->code_challenge == NULL))
		return false; /* "plain" and unknown methods; a method needs a challenge */
	if (c->code_challenge != NULL && c->code_challenge[0] == '\0')
		return false;
	if (c->claims_len > 0 && c->claims == NULL)
		return false;
	return once__list_ok(c->scope, c->scope_count) && once__list_ok(c->resource, c->resource_count);
}

struct packer {
	char *base;   /* NULL while measuring */
	size_t room;  /* bytes at base; past them the walk only measures */
	size_t off;   /* bytes used so far */
	size_t limit; /* refuse records larger than this */
	bool over;    /* the record exceeded limit */
};

static void *take(struct packer *p, size_t n, size_t align)
{
	size_t at = (p->off + align - 1) & ~(align - 1);
	if (p->over || at < p->off || n > p->limit || at > p->limit - n) {
		p->over = true;
		return NULL;
	}
	p->off = at + n;
	if (p->base != NULL && p->off > p->room)
		p->base = NULL; /* the buffer is full: measure the rest */
	return p->base ? p->base + at : NULL;
}

static const char *pack_str(struct packer *p, const char *src)
{
	if (src == NULL)
		return NULL;
	size_t n = strlen(src) + 1;
	char *dst = take(p, n, 1);
	if (dst != NULL) {
		memcpy(dst, src, n);
		dst[n - 1] = '\0'; /* a string the caller changes meanwhile stays a string */
	}
	return dst;
}

static const void *pack_bytes(struct packer *p, const void *src, size_t n)
{
	if (src == NULL || n == 0)
		return NULL;
	void *dst = take(p, n, alignof(max_align_t));
	if (dst != NULL)
		memcpy(dst, src, n);
	return dst;
}

static const char *const *pack_list(struct packer *p, const char *const *src, size_t n)
{
	if (src == NULL || n == 0)
		return NULL;
	if (n > SIZE_MAX / sizeof(char *)) {
		p->over = true;
		return NULL;
	}
	const char **dst = take(p, n * sizeof(char *), alignof(char *));
	for (size_t i = 0; i < n; i++) {
		const char *s = pack_str(p, src[i]);
		if (dst != NULL)
			dst[i] = s;
	}
	return dst;
}

/* Each sets dst's field when copying (dst != NULL), only measures when not. */
#define PACK_TEXT(f)                                                                               \
	{                                                                                          \
		const char *packed_ = pack_str(p, src->f);                                         \
		if (dst != NULL)                                                                   \
			dst->f = packed_;                                                          \
	}
#define PACK_LIST(f)                                                                               \
	{                                                                                          \
		const char *const *packed_ = pack_list(p, src->f, src->f##_count);                 \
		if (dst != NULL) {                                                                 \
			dst->f = packed_;                                                          \
			dst->f##_count = src->f ? src->f##_count : 0;                              \
		}                                                                                  \
	}
#define PACK_BYTES(f)                                                                              \
	{                                                                                          \
		const void *packed_ = pack_bytes(p, src->f, src->f##_len);                         \
		if (dst != NULL) {                                                                 \
			dst->f = packed_;                                                          \
			dst->f##_len = src->f ? src->f##_len : 0;                                  \
		}                                                                                  \
	}

#define MOVE_TEXT(f) r->f = rebase(r->f, from, to);
#define MOVE_LIST(f) r->f = rebase_list(r->f, r->f##_count, from, to);
#define MOVE_BYTES(f) r->f = rebase(r->f, from, to);

/* Moves a pointer that pointed into the block at `from` to the block at `to`. */
static const void *rebase(const void *ptr, const char *from, char *to)
{
	return ptr ? to + ((const char *)ptr - from) : NULL;
}

static const char *const *rebase_list(const char *const *list, size_t n, const char *from, char *to)
{
	if (list == NULL)
		return NULL;
	const char **moved = (const char **)rebase(list, from, to);
	for (size_t i = 0; i < n; i++)
		moved[i] = rebase(moved[i], from, to);
	return moved;
}

/*
 * For a record type T with field list FIELDS, defines
 *   walk_T:       one pass over the fields (measures, or copies into *dst);
 *   once__T_size: bytes a packed copy needs, 0 when over max_len;
 *   once__T_pack_at: packs into a block of exactly that size;
 *   move_T:       after a memcpy of a packed block from `from` to `to`,
 *                 moves every internal pointer by the distance;
 *   once__T_prepare, once__T_place: the one-walk packing (internal.h).
 */
#define DEFINE_RECORD(T, FIELDS)                                                                   \
	static void walk_##T(struct packer *p, once_##T *dst, const once_##T *src)                 \
	{                                                                                          \
		/* Into dst directly: a copy on the stack, stored whole at the     \
		 * end, made its loads wait on its own stores (store forwarding). */ \
		if (dst != NULL)                                                                   \
			memcpy(dst, src, sizeof *dst); /* the scalars; pointers below */           \
		FIELDS(PACK_TEXT, PACK_LIST, PACK_BYTES)                                           \
	}                                                                                          \
	size_t once__##T##_size(const once_##T *src, size_t max_len)                               \
	{                                                                                          \
		struct packer p = {.base = NULL, .off = sizeof(once_##T), .limit = max_len};       \
		walk_##T(&p, NULL, src);                                                           \
		return p.over || p.off > max_len ? 0 : p.off;                                      \
	}                                                                                          \
	once_##T *once__##T##_pack_at(void *block, size_t size, const once_##T *src)               \
	{                                                                                          \
		struct packer p = {.base = block, .room = size, .off = sizeof(once_##T), .limit = size}; \
		walk_##T(&p, block, src);                                                          \
		return block;                                                                      \
	}                                                                                          \
	static void move_##T(once_##T *r, const char *from, char *to)                              \
	{                                                                                          \
		FIELDS(MOVE_TEXT, MOVE_LIST, MOVE_BYTES)                                           \
	}                                                                                          \
	size_t once__##T##_prepare(struct once__packing *pk, const once_##T *src, size_t max_len)  \
	{                                                                                          \
		/* One walk: packs into the buffer while the record fits there, \
		 * and measures it against max_len to its end either way. */        \
		_Static_assert(sizeof(once_##T) <= sizeof pk->scratch, "the struct fits");     \
		struct packer p = {.base = pk->scratch.bytes,                                      \
		                   .room = sizeof pk->scratch,                                     \
		                   .off = sizeof(once_##T),                                        \
		                   .limit = max_len};                                              \
		walk_##T(&p, &pk->scratch.T, src);                                                 \
		pk->size = p.over || p.off > max_len ? 0 : p.off;                                  \
		pk->in_scratch = pk->size != 0 && p.base != NULL;                                  \
		return pk->size;                                                                   \
	}                                                                                          \
	once_##T *once__##T##_place(void *block, const struct once__packing *pk, const once_##T *src) \
	{                                                                                          \
		if (!pk->in_scratch)                                                               \
			return once__##T##_pack_at(block, pk->size, src);                          \
		memcpy(block, pk->scratch.bytes, pk->size);                                        \
		move_##T(block, pk->scratch.bytes, block);                                         \
		return block;                                                                      \
	}

DEFINE_RECORD(code, CODE_FIELDS)
DEFINE_RECORD(refresh, REFRESH_FIELDS)

/*
 * A caller's copy of a packed code: one memcpy of the block, then every
 * internal pointer moved by the distance between the blocks.  This is the
 * take / get hot path, so it avoids walking the strings again.
 */
once_code *once__code_copy(const once_code *packed, size_t size)
{
	char *to = malloc(size);
	if (to == NULL)
		return NULL;
	memcpy(to, packed, size);
	move_code((once_code *)to, (const char *)packed, to);
	return (once_code *)to;
}

/*
 * A caller's copy of a packed refresh record with room for `extra` more
 * bytes at its end (for the decrypted successor); *tail receives where.
 */
once_refresh *once__refresh_copy(const once_refresh *packed, size_t size, size_t extra, void **tail)
{
	if (extra > SIZE_MAX - size)
		return NULL;
	char *to = malloc(size + extra);
	if (to == NULL)
		return NULL;
	memcpy(to, packed, size);
	move_refresh((once_refresh *)to, (const char *)packed, to);
	*tail = to + size;
	return (once_refresh *)to;
}

once_code_meta *once__code_meta_pack(const once_code *src)
{
	size_t fam = src->family_id ? strlen(src->family_id) + 1 : 0;
	size_t sub = src->subject ? strlen(src->subject) + 1 : 0;
	once_code_meta *m = malloc(sizeof *m + fam + sub);
	if (m == NULL)
		return NULL;
	char *tail = (char *)(m + 1);
	m->family_id = fam ? memcpy(tail, src->family_id, fam) : NULL;
	m->subject = sub ? memcpy(tail + fam, src->subject, sub) : NULL;
	return m;
}

ONCE_API void once_free(void *record)
{
	free(record);
}
