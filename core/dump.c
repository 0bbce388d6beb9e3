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

/* Length of the RFC 3629 UTF-8 sequence at b (n bytes left), 0 when it is
 * not one: no overlong forms, no surrogates (U+D800..DFFF), nothing past
 * U+10FFFF. */
static size_t utf8_seq(const unsigned char *b, size_t n)
{
	unsigned char c = b[0];
	if (c < 0x80)
		return 1;
	size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	/* The second byte's range depends on the first (overlongs, surrogates,
	 * the top of the code space); later ones are plain continuations. */
	unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
	unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
	if (b[1] < lo || b[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (b[i] < 0x80 || b[i] > 0xbf)
			return 0;
	return len;
}

static bool utf8_valid(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(b + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/*
 * A field of arbitrary bytes.  Valid UTF-8 is a JSON string: the text as
 * is, escaping only what JSON requires (the quote, the backslash and the
 * control characters U+0000..U+001F; U+007F too, to keep lines printable).
 * Bytes that are not valid UTF-8 are the object {"b64":"..."}: the bytes
 * in standard base64 (RFC 4648 section 4, with padding), so every line is
 * valid UTF-8 JSON and every field gives back exactly the bytes stored
 * (`oncestore dump --help` documents this).
 */
static void add_json(struct line *l, const char *name, const void *bytes, size_t n)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *b = bytes;
	if (!utf8_valid(b, n)) {
		add(l, ",\"%s\":{\"b64\":\"", name);
		for (size_t i = 0; i < n && !l->over; i += 3) {
			uint32_t v = ((uint32_t)b[i] << 16) | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0) |
			             (i + 2 < n ? b[i + 2] : 0);
			add(l, "%c%c%c%c", b64[(v >> 18) & 63], b64[(v >> 12) & 63],
			    i + 1 < n ? b64[(v >> 6) & 63] : '=', i + 2 < n ? b64[v & 63] : '=');
		}
		add(l, "\"}");
		return;
	}
	add(l, ",\"%s\":\"", name);
	for (size_t i = 0; i < n && !l->over; i++) {
		if (b[i] == '"' || b[i] == '\\')
			add(l, "\\%c", b[i]);
		else if (b[i] < 0x20 || b[i] == 0x7f)
			add(l, "\\u%04x", b[i]);
		else
			add(l, "%c", b[i]); /* ASCII, or a byte of a valid UTF-8 sequence */
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

/* Whether the family an access token joined (its id and incarnation) is
 * revoked, as once_access_revoked reads it (expiry aside: the line shows
 * expires_at).  Under the read lock of the table walk. */
static bool access_revoked(once_store *s, struct once__entry *e)
{
	struct once__key fam;
	if (once__key_make(s, ONCE_TBL_ACCESS_FAMILY, e->u.access.family, e->u.access.family_len, &fam) !=
	    ONCE_OK)
		return false;
	struct once__entry *f = once__family_of(s, &fam, e->u.access.family_incarnation);
	return f != NULL && once__family_is_revoked(f);
}

static void describe(once_store *s, struct line *l, struct once__entry *e, uint32_t state)
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
		add(l, ",\"family_incarnation\":%" PRIu64 ",\"revoked\":%s", e->u.access.family_incarnation,
		    access_revoked(s, e) ? "true" : "false");
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
		/* Revoked with its family, as every read of the token answers. */
		add(l, ",\"revoked\":%s", once__family_is_revoked(e->u.refresh.family) ? "true" : "false");
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
	once_store *s;
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
	describe(d->s, &l, e, state);
	if (l.over) /* a very long key: the line says so rather than lying */
		snprintf(buf, sizeof buf, "{\"kind\":\"%s\",\"truncated\":true}",
		         kind_name((enum once__table)e->table));
	d->emit(d->ctx, buf);
	d->lines++;
}

uint64_t once__dump(once_store *s, void (*emit)(void *ctx, const char *line), void *ctx)
{
	struct dump_ctx d = {.s = s, .emit = emit, .ctx = ctx};
	for (uint32_t i = 0; i < s->nshards; i++)
		for (int t = 0; t < ONCE_TBL_COUNT; t++)
			once__table_each(s, i, (enum once__table)t, dump_entry, &d);
	return d.lines;
}
