/*
 * core/dump.c - every entry of a store as one JSON line (the `oncestore
 * dump` tool, and the round-trip tests that compare a store before and
 * after a reopen).
 *
 * Hashes and metadata only: codes and refresh tokens are keyed by hashes
 * already, and a refresh successor appears only as its sealed length and a
 * checksum of the ciphertext, never decrypted.  Lines come in table order;
 * callers that compare dumps sort them.
 */
#define XXH_INLINE_ALL
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "internal.h"

struct line {
	char *p;
	size_t len, cap;
	bool over;
};

static void add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct line *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l->p + l->len, l->cap - l->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= l->cap - l->len)
		l->over = true;
	else
		l->len += (size_t)n;
}

/* A JSON string of arbitrary bytes: printable ASCII as is, the rest as
 * \u00XX escapes. */
static void add_json(struct line *l, const char *name, const void *bytes, size_t n)
{
	const unsigned char *b = bytes;
	add(l, ",\"%s\":\"", name);
	for (size_t i = 0; i < n && !l->over; i++) {
		if (b[i] == '"' || b[i] == '\\')
			add(l, "\\%c", b[i]);
		else if (b[i] >= 0x20 && b[i] < 0x7f)
			add(l, "%c", b[i]);
		else
			add(l, "\\u%04x", b[i]);
	}
	add(l, "\"");
}

static void add_text(struct line *l, const char *name, const char *s)
{
	if (s != NULL)
		add_json(l, name, s, strlen(s));
}

static const char *kind_name(enum once__table t)
{
	static const char *const names[ONCE_TBL_COUNT] = {
		[ONCE_TBL_CODE] = "code", [ONCE_TBL_ACCESS] = "access_token",
		[ONCE_TBL_ACCESS_FAMILY] = "access_family", [ONCE_TBL_REFRESH] = "refresh",
		[ONCE_TBL_REFRESH_FAMILY] = "refresh_family", [ONCE_TBL_NONCE] = "nonce",
		[ONCE_TBL_REPLAY] = "replay",
	};
	return names[t];
}

static void describe(struct line *l, struct once__entry *e, uint32_t state)
{
	add(l, "{\"kind\":\"%s\"", kind_name((enum once__table)e->table));
	add_json(l, "key", e->key, e->key_len);
	add(l, ",\"expires_at\":%" PRId64, atomic_load(&e->expires_at));
	switch (e->table) {
	case ONCE_TBL_CODE: {
		const once_code *c = e->u.code.record;
		add(l, ",\"state\":\"%s\",\"inserted_at\":%" PRId64 ",\"consumed_at\":%" PRId64,
		    state == ONCE_CODE_LIVE ? "live" : state == ONCE_CODE_TAKEN ? "taken" : "finalized",
		    c->inserted_at, atomic_load(&e->u.code.consumed_at));
		add_text(l, "client_id", c->client_id);
		add_text(l, "subject", c->subject);
		add_text(l, "family_id", c->family_id);
		add(l, ",\"scopes\":%zu", c->scope_count);
		break;
	}
	case ONCE_TBL_ACCESS:
		add_json(l, "family_id", e->u.access.family, e->u.access.family_len);
		add(l, ",\"family_incarnation\":%" PRIu64, e->u.access.family_incarnation);
		break;
	case ONCE_TBL_ACCESS_FAMILY:
	case ONCE_TBL_REFRESH_FAMILY:
		add(l, ",\"incarnation\":%" PRIu64 ",\"revoked\":%s", e->u.family.incarnation,
		    state == ONCE_FAMILY_REVOKED ? "true" : "false");
		break;
	case ONCE_TBL_REFRESH: {
		const once_refresh *r = e->u.refresh.record;
		struct once__consumption *c = atomic_load(&e->u.refresh.consumed);
		add_text(l, "family_id", r->family_id);
		add_text(l, "subject", r->subject);
		add_text(l, "client_id", r->client_id);
		add(l, ",\"family_incarnation\":%" PRIu64 ",\"generation\":%" PRId64
		       ",\"inserted_at\":%" PRId64 ",\"consumed\":%s,\"consumed_at\":%" PRId64,
		    e->u.refresh.family->u.family.incarnation, r->generation, r->inserted_at, c ? "true" : "false",
		    c ? c->consumed_at : 0);
		if (c != NULL && c->successor != NULL)
			add(l, ",\"successor_sealed_bytes\":%" PRIu32 ",\"successor_sealed_xxh3\":\"%016" PRIx64 "\"",
			    c->successor->len, (uint64_t)XXH3_64bits(c->successor->ct, c->successor->len));
		break;
	}
	case ONCE_TBL_NONCE:
		add(l, ",\"state\":\"%s\",\"issued_at\":%" PRId64, state == ONCE_NONCE_USED ? "used" : "fresh",
		    e->u.nonce.issued_at);
		break;
	default:
		break;
	}
	add(l, "}");
}

struct dump_ctx {
	void (*emit)(void *ctx, const char *line);
	void *ctx;
	uint64_t lines;
};

static void dump_entry(struct once__entry *e, void *arg)
{
	struct dump_ctx *d = arg;
	uint32_t state = atomic_load_explicit(&e->state, memory_order_acquire);
	if (state == 0 || state == ONCE_PENDING)
		return; /* not committed: not part of the state */
	if (once__is_family_table((enum once__table)e->table) &&
	    atomic_load(&e->expires_at) == ONCE_FAMILY_DEAD)
		return;
	char buf[2048];
	struct line l = {.p = buf, .cap = sizeof buf};
	describe(&l, e, state);
	if (l.over) /* a very long key: the line says so rather than lying */
		snprintf(buf, sizeof buf, "{\"kind\":\"%s\",\"truncated\":true}",
		         kind_name((enum once__table)e->table));
	d->emit(d->ctx, buf);
	d->lines++;
}

uint64_t once__dump(once_store *s, void (*emit)(void *ctx, const char *line), void *ctx)
{
	struct dump_ctx d = {.emit = emit, .ctx = ctx};
	for (uint32_t i = 0; i < s->nshards; i++)
		for (int t = 0; t < ONCE_TBL_COUNT; t++)
			once__table_each(s, i, (enum once__table)t, dump_entry, &d);
	return d.lines;
}
