/*
 * tests/pg/pg_text.c - the PostgreSQL engine's parameter texts, without a
 * server: times (whole UTC seconds, the clamp at 9999-12-31), varchar[]
 * literals, uuids, column-sized UTF-8, and portable claims (pg/text.c,
 * pg/json.c).
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "internal.h"
#include "envelope.h"
#include "pg.h"

static void assert_time_text(int64_t t, const char *want)
{
	char buf[32];
	once__pg_time_text(t, buf);
	ASSERT_STR(buf, want);
}

static void times_format_as_utc_seconds(void)
{
	assert_time_text(1, "1970-01-01 00:00:01");
	assert_time_text(951827696, "2000-02-29 12:34:56");
	assert_time_text(1709164800, "2024-02-29 00:00:00");
	assert_time_text(INT64_C(2147483648), "2038-01-19 03:14:08");
	assert_time_text(INT64_C(4107542399), "2100-02-28 23:59:59");
	assert_time_text(INT64_C(253402300799), "9999-12-31 23:59:59");
	/* Below the range: the first second; above what Elixir and the
	 * column can hold: the last second written. */
	assert_time_text(0, "1970-01-01 00:00:01");
	assert_time_text(-5, "1970-01-01 00:00:01");
	assert_time_text(INT64_MIN, "1970-01-01 00:00:01");
	assert_time_text(INT64_C(253402300800), "9999-12-31 23:59:59");
	assert_time_text(ONCE_TIME_MAX, "9999-12-31 23:59:59");
	assert_time_text(INT64_MAX, "9999-12-31 23:59:59");
}

static int64_t parsed(const char *text)
{
	int64_t t = -1;
	if (!once__pg_time_parse(text, &t))
		FAIL_AT("\"%s\" did not parse", text);
	return t;
}

static void times_parse_and_round_trip(void)
{
	ASSERT_EQ_INT(parsed("2000-02-29 12:34:56"), 951827696);
	ASSERT_EQ_INT(parsed("2000-02-29 12:34:56.999999"), 951827696); /* truncated */
	ASSERT_EQ_INT(parsed("2000-02-29 12:34:56.5"), 951827696);
	ASSERT_EQ_INT(parsed("1970-01-01 00:00:00"), ONCE_TIME_MIN); /* clamped into the range */
	ASSERT_EQ_INT(parsed("1900-06-01 00:00:00"), ONCE_TIME_MIN);
	ASSERT_EQ_INT(parsed("0044-03-15 12:00:00 BC"), ONCE_TIME_MIN);
	ASSERT_EQ_INT(parsed("-infinity"), ONCE_TIME_MIN);
	/* The last second written, and anything later, is "never". */
	ASSERT_EQ_INT(parsed("9999-12-31 23:59:59"), ONCE_TIME_MAX);
	ASSERT_EQ_INT(parsed("10000-01-01 00:00:00"), ONCE_TIME_MAX);
	ASSERT_EQ_INT(parsed("294276-12-31 23:59:59"), ONCE_TIME_MAX);
	ASSERT_EQ_INT(parsed("infinity"), ONCE_TIME_MAX);
	ASSERT_EQ_INT(parsed("9999-12-31 23:59:58"), INT64_C(253402300798));

	/* Every second below the clamp round-trips; walk the range with a
	 * stride that visits every time of day and leap-year boundaries. */
	for (int64_t t = 1; t < INT64_C(253402300799); t += INT64_C(9876543) + (t % 7919)) {
		char buf[32];
		once__pg_time_text(t, buf);
		ASSERT_EQ_INT(parsed(buf), t);
	}

	const char *bad[] = {
		"",
		"2024-13-01 00:00:00",
		"2023-02-29 00:00:00",
		"2100-02-29 00:00:00",
		"2024-04-31 00:00:00",
		"2024-01-01 24:00:00",
		"2024-01-01 00:60:00",
		"2024-01-01T00:00:00",
		"2024-01-01 00:00:00+00",
		"2024-01-01 00:00:00.",
		"2024-01-01 00:00:00.1234567",
		"2024-01-01 00:00",
		"224-01-01 00:00:00",
		"1234567-01-01 00:00:00",
		"294278-01-01 00:00:00",
		"2024-1-01 00:00:00",
		" 2024-01-01 00:00:00",
		"Infinity",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t t = 42;
		if (once__pg_time_parse(bad[i], &t))
			FAIL_AT("\"%s\" parsed", bad[i]);
		ASSERT_EQ_INT(t, 42);
	}
	ASSERT(!once__pg_time_parse(NULL, &(int64_t){0}));
}

static void assert_array_round_trip(const char *const *v, size_t n)
{
	char *text = once__pg_array_text(v, n);
	ASSERT(text != NULL);
	char **back = NULL;
	size_t m = 99;
	ASSERT(once__pg_array_parse(text, &back, &m));
	ASSERT_EQ_INT(m, n);
	for (size_t i = 0; i < n; i++)
		ASSERT_STR(back[i], v[i]);
	once__pg_array_free(back, m);
	free(text);
}

static void arrays_escape_and_round_trip(void)
{
	const char *tricky[] = {"openid", "a\"b", "back\\slash", "\\\"", "comma,brace}{", "two words",
	                        "NULL", "null", "", "caf\xc3\xa9", "\"", "\\"};
	assert_array_round_trip(tricky, sizeof tricky / sizeof tricky[0]);
	assert_array_round_trip(NULL, 0);
	const char *one[] = {"x"};
	assert_array_round_trip(one, 1);

	char *text = once__pg_array_text(tricky, 3);
	ASSERT_STR(text, "{\"openid\",\"a\\\"b\",\"back\\\\slash\"}");
	free(text);
	text = once__pg_array_text(NULL, 0);
	ASSERT_STR(text, "{}");
	free(text);

	/* What the server prints: quotes only where needed. */
	char **v;
	size_t n;
	ASSERT(once__pg_array_parse("{openid,profile,\"two words\",\"NULL\",\"\",\"a\\\"b\"}", &v, &n));
	ASSERT_EQ_INT(n, 6);
	ASSERT_STR(v[0], "openid");
	ASSERT_STR(v[2], "two words");
	ASSERT_STR(v[3], "NULL");
	ASSERT_STR(v[4], "");
	ASSERT_STR(v[5], "a\"b");
	once__pg_array_free(v, n);

	const char *bad[] = {"", "openid", "{", "{a", "{a,}", "{,a}", "{a,NULL}", "{null}",
	                     "{\"a}", "{a}x", "[1:1]={a}", "{{a}}", "{\"a\"b}", "{a b}"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = (char **)&n; /* untouched on failure */
		if (once__pg_array_parse(bad[i], &v, &n))
			FAIL_AT("\"%s\" parsed", bad[i]);
		ASSERT(v == (char **)&n);
	}
}

/* pg/text.c's caps on an array read from a row: 16 MiB of element bytes,
 * 16 MiB / sizeof(char *) elements. */
#define ARRAY_CAP_BYTES ((size_t)16 << 20)
#define ARRAY_CAP_ELEMENTS (ARRAY_CAP_BYTES / sizeof(char *))

/* "{e,e,...}" with n copies of the element text e (malloc'd). */
static char *array_literal(const char *e, size_t n)
{
	size_t elen = strlen(e), size = 2 + n * (elen + 1) + 1;
	char *text = malloc(size), *o = text;
	ASSERT(text != NULL);
	*o++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			*o++ = ',';
		memcpy(o, e, elen);
		o += elen;
	}
	*o++ = '}';
	*o = '\0';
	return text;
}

/* Parses n copies of e and checks that every allocation is the size of
 * what it holds: an element's block is no larger than its text needs (the
 * old parser gave each element a block the size of the rest of the
 * literal: quadratic memory and time), the list at most twice n pointers. */
static void assert_parse_costs_its_size(const char *e, const char *want, size_t n)
{
	char *text = array_literal(e, n);
	char **v = NULL;
	size_t m = 0;
	ASSERT(once__pg_array_parse(text, &v, &m));
	ASSERT_EQ_INT(m, n);
	size_t need = strlen(want) + 1;
	for (size_t i = 0; i < m; i++) {
		if (strcmp(v[i], want) != 0)
			FAIL_AT("element %zu is \"%s\"", i, v[i]);
		/* malloc rounds up, and may hand back a larger free chunk:
		 * 64 bytes of slack. */
		if (malloc_usable_size(v[i]) > need + 64)
			FAIL_AT("element %zu of %zu holds %zu bytes in a block of %zu", i, n, need,
			        malloc_usable_size(v[i]));
	}
	ASSERT(malloc_usable_size(v) <= 2 * n * sizeof *v + 64);
	once__pg_array_free(v, m);
	free(text);
}

/*
 * A row's arrays are read from whatever the table holds: a hostile scope
 * of 400,000 elements (an 800 KB literal) took 11 s and 1.6 GB in one
 * once_code_get.  Each element now costs its own size, and an array past
 * the caps (more elements, or more bytes, than any record the store can
 * hold) is refused: the row is unreadable.
 */
static void hostile_arrays_cost_their_size_and_over_caps_are_refused(void)
{
	assert_parse_costs_its_size("\"a\\\"b\"", "a\"b", 2000);
	assert_parse_costs_its_size("a", "a", 400000);

	char **v = NULL;
	size_t m = 0;
	char *text = array_literal("a", ARRAY_CAP_ELEMENTS);
	ASSERT(once__pg_array_parse(text, &v, &m));
	ASSERT_EQ_INT(m, ARRAY_CAP_ELEMENTS);
	once__pg_array_free(v, m);
	free(text);
	text = array_literal("a", ARRAY_CAP_ELEMENTS + 1);
	v = (char **)&m; /* untouched on failure */
	ASSERT(!once__pg_array_parse(text, &v, &m));
	ASSERT(v == (char **)&m);
	free(text);

	/* Bytes: one element of exactly the cap, then one byte more in a
	 * second element. */
	size_t big = ARRAY_CAP_BYTES;
	text = malloc(big + 8);
	ASSERT(text != NULL);
	text[0] = '{';
	memset(text + 1, 'x', big);
	strcpy(text + 1 + big, "}");
	ASSERT(once__pg_array_parse(text, &v, &m));
	ASSERT_EQ_INT(m, 1);
	ASSERT_EQ_INT(strlen(v[0]), big);
	once__pg_array_free(v, m);
	strcpy(text + 1 + big, ",y}");
	ASSERT(!once__pg_array_parse(text, &v, &m));
	/* The same over-cap bytes quoted, and one element over the cap. */
	text[0] = '{';
	memset(text + 1, 'x', big);
	strcpy(text + 1 + big, "x}");
	ASSERT(!once__pg_array_parse(text, &v, &m));
	free(text);
}

static bool uuid_shape(const char *u)
{
	if (strlen(u) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? u[i] != '-' : strchr("0123456789abcdef", u[i]) == NULL)
			return false;
	}
	return u[14] == '4' && strchr("89ab", u[19]) != NULL; /* version 4, RFC 4122 variant */
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void uuids_are_version_4_and_distinct(void)
{
	ASSERT(once__crypto_init());
	enum { N = 2000 };
	static char ids[N][37];
	for (int i = 0; i < N; i++) {
		once__pg_uuid(ids[i]);
		if (!uuid_shape(ids[i]))
			FAIL_AT("bad uuid %s", ids[i]);
	}
	qsort(ids, N, sizeof ids[0], compare_strings);
	for (int i = 1; i < N; i++)
		ASSERT(strcmp(ids[i - 1], ids[i]) != 0);
}

static void text_fits_counts_characters_of_valid_utf8(void)
{
	char buf[1024];
	memset(buf, 'a', 255);
	ASSERT(once__pg_text_fits(buf, 255, 255));
	ASSERT(!once__pg_text_fits(buf, 256, 255));
	/* 255 two-byte characters fit a varchar(255); 256 do not. */
	for (int i = 0; i < 256; i++)
		memcpy(buf + 2 * i, "\xc3\xa9", 2);
	ASSERT(once__pg_text_fits(buf, 510, 255));
	ASSERT(!once__pg_text_fits(buf, 512, 255));
	ASSERT(once__pg_text_fits("", 0, 0));
	ASSERT(once__pg_text_fits("\xf0\x9f\x98\x80", 4, 1)); /* U+1F600 */
	ASSERT(once__pg_text_fits("\xf4\x8f\xbf\xbf", 4, 1)); /* U+10FFFF */
	const char *bad[] = {"a\0b", "\x80", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
	                     "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xc3", "\xe2\x82", "\xff"};
	size_t len[] = {3, 1, 2, 2, 3, 3, 4, 4, 1, 2, 1};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (once__pg_text_fits(bad[i], len[i], 100))
			FAIL_AT("bad text %zu fits", i);
	char *k = once__pg_key_text("abc", 3, 3);
	ASSERT_STR(k, "abc");
	free(k);
	ASSERT(once__pg_key_text("abcd", 4, 3) == NULL);
}

static once_status claims(const char *json, const char *nonce, const char *issuer, char **out)
{
	return once__pg_claims_encode(json, json ? strlen(json) : 0, nonce, issuer, out);
}

static void claims_are_portable_json_objects(void)
{
	char *out = NULL;
	ASSERT_ST(claims(NULL, NULL, NULL, &out), ONCE_OK);
	ASSERT_STR(out, "{}");
	free(out);
	ASSERT_ST(claims("{\"a\": [1, -9223372036854775808, \"x\", null, true, {\"b\": false}]}", NULL,
	                 NULL, &out),
	          ONCE_OK);
	ASSERT_STR(out, "{\"a\":[1,-9223372036854775808,\"x\",null,true,{\"b\":false}]}");
	free(out);
	ASSERT_ST(claims("{\"acr\":\"1\"}", "n-0", "https://issuer", &out), ONCE_OK);
	ASSERT_STR(out, "{\"acr\":\"1\",\"nonce\":\"n-0\",\"urn:attesto:refresh-token:issuer\":"
	                "\"https://issuer\"}");
	free(out);
	/* The caller's nonce argument wins over a "nonce" member. */
	ASSERT_ST(claims("{\"nonce\":\"old\"}", "new", NULL, &out), ONCE_OK);
	ASSERT_STR(out, "{\"nonce\":\"new\"}");
	free(out);

	const char *bad[] = {
		" ",
		"[]",
		"\"text\"",
		"7",
		"{\"a\":1.0}",
		"{\"a\":1e3}",
		"{\"a\":[0.5]}",
		"{\"a\":{\"b\":-2.5}}",
		"{\"a\":9223372036854775808}",
		"{\"a\":1,\"a\":2}",
		"{\"o\":{\"k\":1,\"k\":1}}",
		"{\"a\":\"x\\u0000y\"}",
		"{\"a\\u0000\":1}",
		"{\"a\":\"\xc3\"}",
		"{\"a\":1} {}",
		"{\"a\":1",
		"{a:1}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		out = (char *)"untouched";
		if (claims(bad[i], NULL, NULL, &out) != ONCE_INVALID)
			FAIL_AT("claims \"%s\" accepted", bad[i]);
		ASSERT_STR(out, "untouched");
	}
	ASSERT_ST(claims("{}", "\xff", NULL, &out), ONCE_INVALID);
	ASSERT_ST(once__pg_claims_encode(NULL, 3, NULL, NULL, &out), ONCE_INVALID);
}

/* Claims nested deeper than a successor envelope can seal are refused at
 * the door (ONCE_PG_CLAIMS_MAX_DEPTH objects and arrays, the claims object
 * itself counted), so no token is stored that could never be rotated. */
static void claims_deeper_than_an_envelope_can_seal_are_refused(void)
{
	char deep[2 * ONCE_PG_CLAIMS_MAX_DEPTH + 16];
	for (int depth = ONCE_PG_CLAIMS_MAX_DEPTH; depth <= ONCE_PG_CLAIMS_MAX_DEPTH + 1; depth++) {
		/* {"a":[[...[]...]]}: one object and depth - 1 arrays. */
		size_t n = 0;
		n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"a\":");
		for (int i = 1; i < depth; i++)
			deep[n++] = '[';
		for (int i = 1; i < depth; i++)
			deep[n++] = ']';
		deep[n++] = '}';
		deep[n] = '\0';
		char *out = NULL;
		once_status st = once__pg_claims_encode(deep, n, NULL, NULL, &out);
		ASSERT_ST(st, depth <= ONCE_PG_CLAIMS_MAX_DEPTH ? ONCE_OK : ONCE_INVALID);
		free(out);
	}
}

TESTS(TEST(claims_deeper_than_an_envelope_can_seal_are_refused), TEST(times_format_as_utc_seconds), TEST(times_parse_and_round_trip),
      TEST(arrays_escape_and_round_trip),
      TEST(hostile_arrays_cost_their_size_and_over_caps_are_refused), TEST(uuids_are_version_4_and_distinct),
      TEST(text_fits_counts_characters_of_valid_utf8), TEST(claims_are_portable_json_objects));
TEST_MAIN()
