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
 * then to copy into a block of exactly that size.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

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

struct packer {
	char *base;   /* NULL while measuring */
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
	return p->base ? p->base + at : NULL;
}

static const char *pack_str(struct packer *p, const char *src)
{
	if (src == NULL)
		return NULL;
	size_t n = strlen(src) + 1;
	char *dst = take(p, n, 1);
	if (dst != NULL)
		memcpy(dst, src, n);
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

/* One walk over a code; fills *dst only when p->base is set. */
static void walk_code(struct packer *p, once_code *dst, const once_code *src)
{
	once_code tmp = *src;
	tmp.scope = pack_list(p, src->scope, src->scope_count);
	tmp.scope_count = src->scope ? src->scope_count : 0;
	tmp.resource = pack_list(p, src->resource, src->resource_count);
	tmp.resource_count = src->resource ? src->resource_count : 0;
	tmp.claims = pack_bytes(p, src->claims, src->claims_len);
	tmp.claims_len = src->claims ? src->claims_len : 0;
	tmp.client_id = pack_str(p, src->client_id);
	tmp.subject = pack_str(p, src->subject);
	tmp.redirect_uri = pack_str(p, src->redirect_uri);
	tmp.code_challenge = pack_str(p, src->code_challenge);
	tmp.code_challenge_method = pack_str(p, src->code_challenge_method);
	tmp.dpop_jkt = pack_str(p, src->dpop_jkt);
	tmp.x5t_s256 = pack_str(p, src->x5t_s256);
	tmp.nonce = pack_str(p, src->nonce);
	tmp.family_id = pack_str(p, src->family_id);
	if (p->base != NULL)
		*dst = tmp;
}

size_t once__code_size(const once_code *src, size_t max_len)
{
	struct packer p = {.base = NULL, .off = sizeof(once_code), .limit = max_len};
	walk_code(&p, NULL, src);
	return p.over || p.off > max_len ? 0 : p.off;
}

once_code *once__code_pack_at(void *block, size_t size, const once_code *src)
{
	struct packer p = {.base = block, .off = sizeof(once_code), .limit = size};
	walk_code(&p, block, src);
	return block;
}

/* One walk over a refresh record; fills *dst only when p->base is set.
 * The successor is not part of the stored record (it is sealed apart). */
static void walk_refresh(struct packer *p, once_refresh *dst, const once_refresh *src)
{
	once_refresh tmp = *src;
	tmp.scope = pack_list(p, src->scope, src->scope_count);
	tmp.scope_count = src->scope ? src->scope_count : 0;
	tmp.resource = pack_list(p, src->resource, src->resource_count);
	tmp.resource_count = src->resource ? src->resource_count : 0;
	tmp.claims = pack_bytes(p, src->claims, src->claims_len);
	tmp.claims_len = src->claims ? src->claims_len : 0;
	tmp.family_id = pack_str(p, src->family_id);
	tmp.subject = pack_str(p, src->subject);
	tmp.client_id = pack_str(p, src->client_id);
	tmp.acr = pack_str(p, src->acr);
	tmp.dpop_jkt = pack_str(p, src->dpop_jkt);
	tmp.x5t_s256 = pack_str(p, src->x5t_s256);
	tmp.parent_hash = pack_str(p, src->parent_hash);
	tmp.successor = NULL;
	tmp.successor_len = 0;
	if (p->base != NULL)
		*dst = tmp;
}

size_t once__refresh_size(const once_refresh *src, size_t max_len)
{
	struct packer p = {.base = NULL, .off = sizeof(once_refresh), .limit = max_len};
	walk_refresh(&p, NULL, src);
	return p.over || p.off > max_len ? 0 : p.off;
}

once_refresh *once__refresh_pack_at(void *block, size_t size, const once_refresh *src)
{
	struct packer p = {.base = block, .off = sizeof(once_refresh), .limit = size};
	walk_refresh(&p, block, src);
	return block;
}

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
	const char *from = (const char *)packed;
	once_code *c = (once_code *)to;
	c->scope = rebase_list(c->scope, c->scope_count, from, to);
	c->resource = rebase_list(c->resource, c->resource_count, from, to);
	c->claims = rebase(c->claims, from, to);
	c->client_id = rebase(c->client_id, from, to);
	c->subject = rebase(c->subject, from, to);
	c->redirect_uri = rebase(c->redirect_uri, from, to);
	c->code_challenge = rebase(c->code_challenge, from, to);
	c->code_challenge_method = rebase(c->code_challenge_method, from, to);
	c->dpop_jkt = rebase(c->dpop_jkt, from, to);
	c->x5t_s256 = rebase(c->x5t_s256, from, to);
	c->nonce = rebase(c->nonce, from, to);
	c->family_id = rebase(c->family_id, from, to);
	return c;
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
	const char *from = (const char *)packed;
	once_refresh *r = (once_refresh *)to;
	r->scope = rebase_list(r->scope, r->scope_count, from, to);
	r->resource = rebase_list(r->resource, r->resource_count, from, to);
	r->claims = rebase(r->claims, from, to);
	r->family_id = rebase(r->family_id, from, to);
	r->subject = rebase(r->subject, from, to);
	r->client_id = rebase(r->client_id, from, to);
	r->acr = rebase(r->acr, from, to);
	r->dpop_jkt = rebase(r->dpop_jkt, from, to);
	r->x5t_s256 = rebase(r->x5t_s256, from, to);
	r->parent_hash = rebase(r->parent_hash, from, to);
	*tail = to + size;
	return r;
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
