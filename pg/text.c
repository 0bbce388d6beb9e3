/*
 * pg/text.c - times, arrays, uuids and column-sized text as the engine's
 * statement parameters (all parameters travel as text).
 *
 * Times.  Every time column of the layout is `timestamp without time zone`
 * holding UTC wall-clock time (ATTESTO-PG 6.4), and AttestoPhoenix writes
 * whole seconds.  We write 'YYYY-MM-DD HH:MM:SS' computed here from the
 * store clock (never the server's now()), so a row is the same whichever
 * node wrote it and the session TimeZone never matters.
 *
 * The store's range of times reaches 2^62 seconds (oncestore.h "Times"),
 * far past PostgreSQL's timestamp range (294276 AD) and past what Elixir's
 * calendar reads (year 9999).  So a time is written clamped to
 * [1970-01-01 00:00:01, 9999-12-31 23:59:59], and the upper bound (or
 * anything later, 'infinity' included) reads back as ONCE_TIME_MAX: the
 * "never" of a saturated expiry survives the round trip, and a row an
 * AttestoPhoenix node reads always holds a year it can decode.  Between
 * 9999-12-31 and ONCE_TIME_MAX times are not distinguished; no clock in
 * the store's range reaches them in practice.
 *
 * Arrays.  varchar[] parameters are written as literals with every
 * element double-quoted and '"' and '\' backslash-escaped, so no element
 * can change the array's shape; the parser reads what the server prints
 * (elements quoted only when needed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "pg.h"

/* 9999-12-31 23:59:59 UTC: the last second written (see above). */
#define TEXT_TIME_MAX INT64_C(253402300799)
/* PostgreSQL's last timestamp year; a longer year is not a timestamp. */
#define PARSE_YEAR_MAX 294277

/* ---- calendar (proleptic Gregorian, H. Hinnant's algorithms) ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static unsigned days_in_month(int64_t y, unsigned m)
{
	static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : days[m - 1];
}

void once__pg_time_text(int64_t unix_seconds, char out[32])
{
	int64_t t = unix_seconds < ONCE_TIME_MIN  ? ONCE_TIME_MIN
	            : unix_seconds > TEXT_TIME_MAX ? TEXT_TIME_MAX
	                                           : unix_seconds;
	int64_t days = t / 86400, secs = t % 86400; /* t > 0: no negative remainder */
	int64_t y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	snprintf(out, 32, "%04d-%02u-%02u %02u:%02u:%02u", (int)y, m, d, (unsigned)(secs / 3600),
	         (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
}

/* Reads exactly n digits (n <= 9) at *s into *v and advances *s. */
static bool digits(const char **s, int n, unsigned *v)
{
	unsigned x = 0;
	for (int i = 0; i < n; i++) {
		char c = (*s)[i];
		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (unsigned)(c - '0');
	}
	*s += n;
	*v = x;
	return true;
}

bool once__pg_time_parse(const char *text, int64_t *unix_seconds)
{
	if (text == NULL)
		return false;
	if (strcmp(text, "infinity") == 0 || strcmp(text, "-infinity") == 0) {
		*unix_seconds = text[0] == '-' ? ONCE_TIME_MIN : ONCE_TIME_MAX;
		return true;
	}
	const char *s = text;
	size_t ylen = strspn(s, "0123456789");
	unsigned y, mo, d, h, mi, se;
	if (ylen < 4 || ylen > 6 || !digits(&s, (int)ylen, &y) || y > PARSE_YEAR_MAX)
		return false;
	if (*s++ != '-' || !digits(&s, 2, &mo) || *s++ != '-' || !digits(&s, 2, &d) ||
	    *s++ != ' ' || !digits(&s, 2, &h) || *s++ != ':' || !digits(&s, 2, &mi) ||
	    *s++ != ':' || !digits(&s, 2, &se))
		return false;
	if (*s == '.') { /* fractions are truncated, as Elixir truncates */
		size_t f = strspn(s + 1, "0123456789");
		if (f == 0 || f > 6)
			return false;
		s += 1 + f;
	}
	bool bc = strcmp(s, " BC") == 0;
	if (*s != '\0' && !bc)
		return false;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59)
		return false;
	int64_t t = days_from_civil(bc ? 1 - (int64_t)y : y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	*unix_seconds = t < ONCE_TIME_MIN ? ONCE_TIME_MIN : t >= TEXT_TIME_MAX ? ONCE_TIME_MAX : t;
	return true;
}

/* ---- text that fits a column ---- */

/* Length of the UTF-8 sequence at s (n bytes left), 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF are invalid, as
 * PostgreSQL's UTF8 encoding check has them. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return c != 0;
	size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
	    (c == 0xF4 && s[1] >= 0x90))
		return 0;
	return len;
}

bool once__pg_text_fits(const void *s, size_t len, size_t max_chars)
{
	const unsigned char *b = s;
	size_t chars = 0;
	for (size_t i = 0; i < len; chars++) {
		size_t n = utf8_seq(b + i, len - i);
		if (n == 0 || chars == max_chars)
			return false;
		i += n;
	}
	return true;
}

char *once__pg_key_text(const void *key, size_t len, size_t max_chars)
{
	if (!once__pg_text_fits(key, len, max_chars))
		return NULL;
	char *t = malloc(len + 1);
	if (t != NULL) {
		memcpy(t, key, len);
		t[len] = '\0';
	}
	return t;
}

/* ---- varchar[] literals ---- */

char *once__pg_array_text(const char *const *v, size_t n)
{
	size_t size = 3; /* "{", "}", NUL */
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i]);
		if (len > (SIZE_MAX - size) / 2 - 3)
			return NULL;
		size += 2 * len + 3; /* quotes, a comma, every byte escaped at worst */
	}
	char *out = malloc(size), *o = out;
	if (out == NULL)
		return NULL;
	*o++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			*o++ = ',';
		*o++ = '"';
		for (const char *c = v[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				*o++ = '\\';
			*o++ = *c;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	return out;
}

void once__pg_array_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * A row's arrays come from the server, and a row may have been written by
 * anyone with access to the table: a hostile scope of 400,000 elements
 * must cost memory and time in proportion to its size, and one too large
 * for any record the store could hold is an unreadable row, not an
 * allocation of whatever size it names.  The caps are the largest a
 * record within max_record_len's ceiling (16 MiB, pg/store.c) could need:
 * ARRAY_MAX_BYTES of element bytes and one pointer per element
 * (pg/refresh_row.c holds a new row's scope to max_record_len /
 * sizeof(char *) elements).
 */
#define ARRAY_MAX_BYTES ((size_t)16 << 20)
#define ARRAY_MAX_ELEMENTS (ARRAY_MAX_BYTES / sizeof(char *))

/*
 * Measures the element at p (quoted or bare) without copying it: *len is
 * its unescaped length and *end where it ends (past the closing quote).
 * false when malformed: an unterminated quote, a bare element with a
 * character the server would have quoted, an empty bare element, or an
 * unquoted NULL (our columns hold none).  Each byte is visited once.
 */
static bool element_measure(const char *p, size_t *len, const char **end)
{
	size_t n = 0;
	if (*p == '"') {
		for (p++; *p != '"'; p++, n++) {
			if (*p == '\\')
				p++;
			if (*p == '\0')
				return false;
		}
		p++;
	} else {
		const char *start = p;
		for (; *p != ',' && *p != '}'; p++, n++)
			if (*p == '\0' || *p == '"' || *p == '\\' || *p == '{' || *p == ' ')
				return false;
		if (n == 0 || (n == 4 && strncasecmp(start, "NULL", 4) == 0))
			return false;
	}
	*len = n;
	*end = p;
	return true;
}

/* Copies the element at p, measured as len bytes, unescaping. */
static void element_copy(const char *p, size_t len, char *out)
{
	if (*p == '"')
		p++;
	for (size_t i = 0; i < len; i++, p++) {
		if (*p == '\\')
			p++;
		out[i] = *p;
	}
	out[len] = '\0';
}

bool once__pg_array_parse(const char *text, char ***v, size_t *n)
{
	if (text == NULL || text[0] != '{')
		return false;
	const char *s = text + 1;
	size_t count = 0, cap = 0, bytes = 0;
	char **list = NULL;
	if (*s == '}')
		goto done;
	for (;;) {
		size_t len;
		const char *end;
		if (!element_measure(s, &len, &end) || count == ARRAY_MAX_ELEMENTS ||
		    len > ARRAY_MAX_BYTES - bytes)
			goto bad;
		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			if (ncap > ARRAY_MAX_ELEMENTS)
				ncap = ARRAY_MAX_ELEMENTS;
			char **grown = realloc(list, ncap * sizeof *grown);
			if (grown == NULL)
				goto bad;
			list = grown;
			cap = ncap;
		}
		char *e = malloc(len + 1);
		if (e == NULL)
			goto bad;
		element_copy(s, len, e);
		list[count++] = e;
		bytes += len;
		s = end;
		if (*s == '}')
			break;
		if (*s++ != ',')
			goto bad;
	}
done:
	if (s[1] != '\0')
		goto bad;
	*v = list;
	*n = count;
	return true;
bad:
	once__pg_array_free(list, count);
	return false;
}

/* ---- uuids ---- */

void once__pg_uuid(char out[37])
{
	unsigned char b[16];
	once__random(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
	static const char hex[] = "0123456789abcdef";
	char *o = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = hex[b[i] >> 4];
		*o++ = hex[b[i] & 15];
	}
	*o = '\0';
}
