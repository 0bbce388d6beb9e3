/*
 * tests/pg/pg_envelope.c - the refresh successor envelope and the Erlang
 * term format subset under it (pg/etf.h, pg/envelope.h; ATTESTO-PG 2.2.4 -
 * 2.2.6, 3).  No server needed.
 *
 * The term format is checked against Erlang itself: the tests run `erl`
 * and compare bytes with term_to_binary, have binary_to_term(…, [safe])
 * read a payload this side wrote, and read payloads Erlang wrote with atom
 * keys.  Without `erl` those tests FAIL (install erlang-base).  The
 * installed OTP may predate 26, whose term_to_binary/1 writes atoms as
 * SMALL_ATOM_UTF8_EXT (77); {minor_version, 2} asks any OTP since 20 for
 * exactly that, so it is what this side is compared with, and terms
 * without atoms are compared with term_to_binary/1 as well.
 *
 * The cipher is checked against an independent construction in this file
 * (libsodium calls written from ATTESTO-PG 2.2.5), every binding field is
 * tampered with, and the decoders are run over every truncation and every
 * single-bit flip of real input (run under ASan: no read out of bounds).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "envelope.h"
#include "etf.h"
#include "../harness.h"

/* ---- helpers ---- */

/* printf into a new string. */
__attribute__((format(printf, 1, 2))) static char *text_of(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	ASSERT(n >= 0 && s != NULL);
	return s;
}

static char *hex_of(const unsigned char *b, size_t n)
{
	char *h = malloc(2 * n + 1);
	ASSERT(h != NULL);
	for (size_t i = 0; i < n; i++)
		snprintf(h + 2 * i, 3, "%02X", b[i]);
	h[2 * n] = '\0';
	return h;
}

static unsigned char *bytes_of_hex(const char *hex, size_t *n)
{
	size_t len = strlen(hex);
	ASSERT(len % 2 == 0);
	unsigned char *b = malloc(len / 2 + 1);
	ASSERT(b != NULL);
	ASSERT(sodium_hex2bin(b, len / 2 + 1, hex, len, NULL, n, NULL) == 0);
	return b;
}

static char *encode_hex(const struct once__etf *t)
{
	unsigned char *b;
	size_t n;
	ASSERT_ST(once__etf_encode(t, &b, &n), ONCE_OK);
	char *h = hex_of(b, n);
	free(b);
	return h;
}

/* ---- running Erlang ---- */

/*
 * Runs an Erlang program (expressions separated by commas, ending with
 * halt(0)) and returns what it printed.  The program travels in a file,
 * so no shell quoting applies to it.
 */
static char *erl_run(const char *program)
{
	fflush(NULL);
	if (system("command -v erl >/dev/null 2>&1") != 0)
		FAIL_AT("`erl` not found: these checks compare bytes with Erlang itself; install "
		        "erlang-base (apt-get install erlang-base) and add it to tests/run.sh");
	char path[] = "/tmp/pg_envelope_erl_XXXXXX";
	int fd = mkstemp(path);
	ASSERT(fd >= 0);
	size_t len = strlen(program);
	ASSERT(write(fd, program, len) == (ssize_t)len);
	close(fd);
	char cmd[512];
	snprintf(cmd, sizeof cmd,
	         "erl -noshell -eval '{ok,B}=file:read_file(\"%s\"), "
	         "{ok,Ts,_}=erl_scan:string(binary_to_list(B)), "
	         "{ok,Es}=erl_parse:parse_exprs(Ts), erl_eval:exprs(Es,[])' -s init stop 2>&1",
	         path);
	FILE *f = popen(cmd, "r");
	ASSERT(f != NULL);
	size_t cap = 1 << 16, used = 0;
	char *out = malloc(cap);
	ASSERT(out != NULL);
	size_t got;
	while ((got = fread(out + used, 1, cap - used - 1, f)) > 0) {
		used += got;
		if (cap - used < 4096) {
			cap *= 2;
			out = realloc(out, cap);
			ASSERT(out != NULL);
		}
	}
	out[used] = '\0';
	int rc = pclose(f);
	unlink(path);
	if (rc != 0 || strstr(out, "done\n") == NULL)
		FAIL_AT("erl failed (%d):\n%s", rc, out);
	return out;
}

/* The rest of the output line that starts with `key `, malloc'd. */
static char *erl_line(const char *out, const char *key)
{
	size_t klen = strlen(key);
	for (const char *l = out; l != NULL && *l != '\0';) {
		const char *nl = strchr(l, '\n');
		size_t n = nl != NULL ? (size_t)(nl - l) : strlen(l);
		if (n > klen && strncmp(l, key, klen) == 0 && l[klen] == ' ') {
			char *v = strndup(l + klen + 1, n - klen - 1);
			ASSERT(v != NULL);
			return v;
		}
		l = nl != NULL ? nl + 1 : NULL;
	}
	FAIL_AT("erl printed no line \"%s\":\n%s", key, out);
}

static void assert_erl_line(const char *out, const char *key, const char *want)
{
	char *got = erl_line(out, key);
	if (strcmp(got, want) != 0)
		FAIL_AT("erl %s: got %s, want %s", key, got, want);
	free(got);
}

/* ---- a successor with every kind of field ---- */

static const char *const sample_scope[] = {"openid", "profile", "openid"};
static const char *const sample_resource[] = {"https://api.example/"};
static const char sample_claims[] =
    "{\"urn:attesto:refresh-token:issuer\":\"https://issuer.example\","
    "\"n\":[1,2,300],\"o\":{\"b\":true,\"z\":null},\"e\":[],\"neg\":-7}";
#define SAMPLE_TOKEN "tok-Zm9vYmFyYmF6cXV4"
#define SAMPLE_JKT "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
#define SECRET "a refresh_successor_secret of 40 bytes!!"

static struct once__pg_successor sample(void)
{
	return (struct once__pg_successor){
	    .token = SAMPLE_TOKEN,
	    .token_len = strlen(SAMPLE_TOKEN),
	    .generation = 4,
	    .has_retry_until = true,
	    .retry_until = 1900000010,
	    .context = {.subject = "alice",
	                .scope = sample_scope,
	                .nscope = 3,
	                .resource = sample_resource,
	                .nresource = 1,
	                .client_id = "client-1",
	                .dpop_jkt = NULL,
	                .acr = "urn:acr:2",
	                .has_auth_time = true,
	                .auth_time = 1700000000,
	                .claims = sample_claims,
	                .has_family_expires_at = true,
	                .family_expires_at = 4102444800,
	                .attestation_jkt = SAMPLE_JKT}};
}

static const struct once__pg_successor_row sample_row = {
    .parent_hash = "PARENTHASHPARENTHASHPARENTHASHPARENTHASH123",
    .family_id = "fam-0123456789abcdefgh",
    .parent_generation = 3};

static void assert_same_json(const char *a, const char *b)
{
	json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
	ASSERT(ja != NULL && jb != NULL);
	if (!json_equal(ja, jb))
		FAIL_AT("claims differ: %s vs %s", a, b);
	json_decref(ja);
	json_decref(jb);
}

static void assert_same_list(const char *const *a, size_t na, const char *const *b, size_t nb)
{
	ASSERT_EQ_U64(na, nb);
	for (size_t i = 0; i < na; i++)
		ASSERT_STR(a[i], b[i]);
}

static void assert_same_successor(const struct once__pg_successor *got,
                                  const struct once__pg_successor *want)
{
	ASSERT_EQ_U64(got->token_len, want->token_len);
	ASSERT(memcmp(got->token, want->token, want->token_len) == 0);
	ASSERT_EQ_INT(got->token[got->token_len], '\0');
	ASSERT_EQ_INT(got->generation, want->generation);
	ASSERT_EQ_INT(got->has_retry_until, want->has_retry_until);
	if (want->has_retry_until)
		ASSERT_EQ_INT(got->retry_until, want->retry_until);
	const struct once__pg_successor_context *g = &got->context, *w = &want->context;
	ASSERT_STR(g->subject, w->subject);
	assert_same_list(g->scope, g->nscope, w->scope, w->nscope);
	assert_same_list(g->resource, g->nresource, w->resource, w->nresource);
	ASSERT_STR(g->client_id, w->client_id);
	ASSERT_STR(g->dpop_jkt, w->dpop_jkt);
	ASSERT_STR(g->acr, w->acr);
	ASSERT_EQ_INT(g->has_auth_time, w->has_auth_time);
	if (w->has_auth_time)
		ASSERT_EQ_INT(g->auth_time, w->auth_time);
	assert_same_json(g->claims, w->claims != NULL ? w->claims : "{}");
	ASSERT_EQ_INT(g->has_family_expires_at, w->has_family_expires_at);
	if (w->has_family_expires_at)
		ASSERT_EQ_INT(g->family_expires_at, w->family_expires_at);
	ASSERT_STR(g->attestation_jkt, w->attestation_jkt);
}

/* ---- an independent cipher, written from ATTESTO-PG 2.2.5 ---- */

static void test_key_of(const char *secret, unsigned char key[32])
{
	size_t n = strlen("refresh-successor:enc:") + strlen(secret);
	char *m = malloc(n + 1);
	ASSERT(m != NULL);
	snprintf(m, n + 1, "refresh-successor:enc:%s", secret);
	crypto_hash_sha256(key, (const unsigned char *)m, n);
	free(m);
}

/* "XCP." + b64url(iv || tag || c), malloc'd. */
static char *test_encrypt(const char *secret, const unsigned char *aad, size_t aad_len,
                          const unsigned char *m, size_t m_len)
{
	unsigned char key[32];
	test_key_of(secret, key);
	size_t raw_len = 24 + 16 + m_len;
	unsigned char *raw = malloc(raw_len);
	ASSERT(raw != NULL);
	randombytes_buf(raw, 24);
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(raw + 40, raw + 24, NULL, m, m_len, aad,
	                                                    aad_len, NULL, raw, key);
	size_t b64 = sodium_base64_ENCODED_LEN(raw_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *w = malloc(4 + b64);
	ASSERT(w != NULL);
	memcpy(w, "XCP.", 4);
	sodium_bin2base64(w + 4, b64, raw, raw_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	free(raw);
	return w;
}

/* Decrypts a wire text; NULL when it does not open. */
static unsigned char *test_decrypt(const char *secret, const char *wire, const unsigned char *aad,
                                   size_t aad_len, size_t *m_len)
{
	unsigned char key[32];
	test_key_of(secret, key);
	ASSERT(strncmp(wire, "XCP.", 4) == 0);
	size_t cap = strlen(wire), raw_len;
	unsigned char *raw = malloc(cap);
	ASSERT(raw != NULL);
	ASSERT(sodium_base642bin(raw, cap, wire + 4, strlen(wire + 4), NULL, &raw_len, NULL,
	                         sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
	ASSERT(raw_len >= 40);
	unsigned char *m = malloc(raw_len - 40 + 1);
	ASSERT(m != NULL);
	int rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
	    m, NULL, raw + 40, raw_len - 40, raw + 24, aad, aad_len, raw, key);
	free(raw);
	if (rc != 0) {
		free(m);
		return NULL;
	}
	*m_len = raw_len - 40;
	return m;
}

/* A v2 column text around a wire text. */
static char *v2_text(const char *wire, int64_t retry_until, const char *child_hash)
{
	return text_of("{\"v\":2,\"ciphertext\":\"%s\",\"retry_until\":%" PRId64
	               ",\"child_hash\":\"%s\"}",
	               wire, retry_until, child_hash);
}

/* The "ciphertext" member of a column text, malloc'd. */
static char *wire_of(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	ASSERT(j != NULL);
	char *w = strdup(json_string_value(json_object_get(j, "ciphertext")));
	json_decref(j);
	ASSERT(w != NULL);
	return w;
}

static char *seal_sample(const struct once__pg_successor *s)
{
	char *text = NULL;
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, s, &text), ONCE_OK);
	return text;
}

/* open must find no successor for this reason, and leave *out alone. */
static void expect_no_successor(const struct once__pg_successor_row *row, const char *text,
                                enum once__pg_open why)
{
	struct once__pg_successor out;
	memset(&out, 0xA5, sizeof out);
	enum once__pg_open r = once__pg_successor_open(SECRET, strlen(SECRET), row, text,
	                                               text != NULL ? strlen(text) : 0, &out);
	if (r != why)
		FAIL_AT("open %s: got reason %d, want %d", text != NULL ? text : "(null)", (int)r,
		        (int)why);
	const unsigned char *b = (const unsigned char *)&out;
	for (size_t i = 0; i < sizeof out; i++)
		ASSERT_EQ_INT(b[i], 0xA5);
}

/* ================================================================
 * The term format against Erlang
 * ================================================================ */

/* The AAD example of ATTESTO-PG 2.2.5 (its elided middle filled in: the
 * 36 label bytes), which Erlang also printed for the same tuple. */
static const char example_aad_hex[] =
    "8368066D000000246174746573746F5F70686F656E69783A726566726573685F737563636573736F723A76316D"
    "0000000A504152454E54484153486D0000000366616D61006D000000094348494C444841534862713FB30A";

static void test_aad_example(void)
{
	struct once__pg_successor_row row = {"PARENTHASH", "fam", 0};
	unsigned char *aad;
	size_t n;
	ASSERT_ST(once__pg_successor_aad(&row, "CHILDHASH", 1900000010, &aad, &n), ONCE_OK);
	char *h = hex_of(aad, n);
	ASSERT_STR(h, example_aad_hex);
	/* The note's own text: "8368066d000000246174746573746f5f…3a76316d0000000a…b30a". */
	ASSERT(strncasecmp(h, "8368066d000000246174746573746f5f", 32) == 0);
	ASSERT(strstr(h, "3A76316D0000000A504152454E54484153486D0000000366616D61006D000000094348494C4"
	                 "44841534862713FB30A") != NULL);
	free(h);
	free(aad);
}

/* One term, written three ways: Erlang source, and for this side either
 * JSON (through once__etf_from_json) or a builder. */
struct etf_case {
	const char *erl;
	const char *json;
	void (*build)(struct once__etf *t);
	bool has_atoms;
};

static void build_empty_tuple(struct once__etf *t)
{
	ASSERT(once__etf_tuple(t, 0));
}

static void build_tuple(struct once__etf *t)
{
	ASSERT(once__etf_tuple(t, 4));
	once__etf_integer(&t->items[0], 1);
	once__etf_string(&t->items[1], "x");
	once__etf_atom(&t->items[2], "nil");
	ASSERT(once__etf_list(&t->items[3], 0));
}

static void build_bytes(struct once__etf *t, size_t n)
{
	ASSERT(once__etf_list(t, n));
	for (size_t i = 0; i < n; i++)
		once__etf_integer(&t->items[i], 7);
}

static void build_65535(struct once__etf *t)
{
	build_bytes(t, 65535);
}

static void build_65536(struct once__etf *t)
{
	build_bytes(t, 65536);
}

static void build_aad_big(struct once__etf *t)
{
	ASSERT(once__etf_tuple(t, 6));
	once__etf_string(&t->items[0], "attesto_phoenix:refresh_successor:v1");
	once__etf_string(&t->items[1], "p");
	once__etf_string(&t->items[2], "f");
	once__etf_integer(&t->items[3], 300);
	once__etf_string(&t->items[4], "c");
	once__etf_integer(&t->items[5], 2147483648);
}

static const struct etf_case etf_cases[] = {
    /* integers at every boundary of the three forms */
    {"0", "0", NULL, false},
    {"255", "255", NULL, false},
    {"256", "256", NULL, false},
    {"-1", "-1", NULL, false},
    {"2147483647", "2147483647", NULL, false},
    {"2147483648", "2147483648", NULL, false},
    {"-2147483648", "-2147483648", NULL, false},
    {"-2147483649", "-2147483649", NULL, false},
    {"4294967296", "4294967296", NULL, false},
    {"1900000010", "1900000010", NULL, false},
    {"9223372036854775807", "9223372036854775807", NULL, false},
    {"-9223372036854775808", "-9223372036854775808", NULL, false},
    /* binaries */
    {"<<>>", "\"\"", NULL, false},
    {"<<\"abc\">>", "\"abc\"", NULL, false},
    {"<<\"caf\\x{e9}\"/utf8>>", "\"caf\\u00e9\"", NULL, false},
    /* lists: STRING_EXT for byte-sized integers, LIST_EXT otherwise */
    {"[]", "[]", NULL, false},
    {"[1,2,3]", "[1,2,3]", NULL, false},
    {"[0,255]", "[0,255]", NULL, false},
    {"[256]", "[256]", NULL, false},
    {"[1,-1]", "[1,-1]", NULL, false},
    {"[<<\"a\">>,<<\"b\">>]", "[\"a\",\"b\"]", NULL, false},
    {"[[1],[2,[]],[[]]]", "[[1],[2,[]],[[]]]", NULL, false},
    {"[1,<<\"x\">>]", "[1,\"x\"]", NULL, false},
    {"lists:duplicate(65535, 7)", NULL, build_65535, false},
    {"lists:duplicate(65536, 7)", NULL, build_65536, false},
    /* the three atoms */
    {"nil", "null", NULL, true},
    {"true", "true", NULL, true},
    {"false", "false", NULL, true},
    {"[nil,true,false]", "[null,true,false]", NULL, true},
    /* tuples */
    {"{}", NULL, build_empty_tuple, false},
    {"{1,<<\"x\">>,nil,[]}", NULL, build_tuple, true},
    {"{<<\"attesto_phoenix:refresh_successor:v1\">>,<<\"p\">>,<<\"f\">>,300,<<\"c\">>,2147483648}",
     NULL, build_aad_big, false},
    /* maps with binary keys; Erlang keeps small maps sorted */
    {"#{}", "{}", NULL, false},
    {"#{<<\"k\">> => <<\"v\">>}", "{\"k\":\"v\"}", NULL, false},
    {"#{<<\"b\">> => 1, <<\"a\">> => true, <<\"aa\">> => [1,2], <<\"B\">> => nil, <<>> => -1}",
     "{\"b\":1,\"a\":true,\"aa\":[1,2],\"B\":null,\"\":-1}", NULL, true},
    {"#{<<\"claims\">> => #{<<\"x\">> => [<<\"a\">>, 1, nil, #{}]}}",
     "{\"claims\":{\"x\":[\"a\",1,null,{}]}}", NULL, true},
};

static void test_etf_matches_erlang(void)
{
	size_t n = sizeof etf_cases / sizeof etf_cases[0];
	size_t cap = 1 << 14, used = 0;
	char *prog = malloc(cap);
	ASSERT(prog != NULL);
	used += (size_t)snprintf(prog + used, cap - used,
	                         "H = fun(T) -> binary:encode_hex(term_to_binary(T, [{minor_version, "
	                         "2}])) end,\nD = fun(T) -> binary:encode_hex(term_to_binary(T)) end,\n");
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(prog + used, cap - used,
		                         "io:format(\"t~b ~s ~s~n\", [%zu, H(%s), D(%s)]),\n", i,
		                         etf_cases[i].erl, etf_cases[i].erl);
	snprintf(prog + used, cap - used, "io:format(\"done~n\"), halt(0).");
	ASSERT(used < cap - 64);
	char *out = erl_run(prog);
	for (size_t i = 0; i < n; i++) {
		const struct etf_case *c = &etf_cases[i];
		struct once__etf t = {.type = ONCE_ETF_LIST};
		json_t *j = NULL;
		if (c->json != NULL) {
			j = json_loads(c->json, JSON_DECODE_ANY, NULL);
			ASSERT(j != NULL);
			ASSERT_ST(once__etf_from_json(j, &t), ONCE_OK);
		} else {
			c->build(&t);
		}
		char *mine = encode_hex(&t);
		char key[16];
		snprintf(key, sizeof key, "t%zu", i);
		char *line = erl_line(out, key);
		char *space = strchr(line, ' ');
		ASSERT(space != NULL);
		*space = '\0';
		if (strcmp(mine, line) != 0)
			FAIL_AT("%s: ours %.200s, Erlang's %.200s", c->erl, mine, line);
		/* Without atoms, term_to_binary/1 of any OTP writes the same bytes. */
		if (!c->has_atoms && strcmp(mine, space + 1) != 0)
			FAIL_AT("%s: ours %.200s, term_to_binary/1 %.200s", c->erl, mine, space + 1);

		/* And the decoder reads Erlang's bytes back to the same term. */
		size_t blen;
		unsigned char *bytes = bytes_of_hex(line, &blen);
		struct once__etf back;
		ASSERT_ST(once__etf_decode(bytes, blen, &back), ONCE_OK);
		char *again = encode_hex(&back);
		ASSERT_STR(again, mine);
		if (j != NULL) {
			json_t *jb = NULL;
			ASSERT_ST(once__etf_to_json(&back, &jb), ONCE_OK);
			ASSERT(json_equal(j, jb));
			json_decref(jb);
		}
		once__etf_free(&back);
		free(again);
		free(bytes);
		free(line);
		free(mine);
		once__etf_free(&t);
		json_decref(j);
	}
	free(out);
	free(prog);
}

/* The old atom forms and the wide UTF-8 form decode to the same atoms in
 * Erlang and here. */
static void test_old_atom_forms(void)
{
	static const char *const forms[][2] = {
	    {"8373036E696C", "nil"},         /* SMALL_ATOM_EXT */
	    {"836400047472756500", NULL},    /* ATOM_EXT with a trailing byte: refused */
	    {"8364000474727565", "true"},    /* ATOM_EXT */
	    {"8376000566616C7365", "false"}, /* ATOM_UTF8_EXT */
	    {"83770574727565", NULL},        /* length past the end */
	};
	char prog[1024];
	size_t used = 0;
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
		if (forms[i][1] != NULL)
			used += (size_t)snprintf(
			    prog + used, sizeof prog - used,
			    "io:format(\"f%zu ~p~n\", [binary_to_term(binary:decode_hex(<<\"%s\">>), [safe])]),\n",
			    i, forms[i][0]);
	snprintf(prog + used, sizeof prog - used, "io:format(\"done~n\"), halt(0).");
	char *out = erl_run(prog);
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		size_t n;
		unsigned char *b = bytes_of_hex(forms[i][0], &n);
		struct once__etf t;
		if (forms[i][1] == NULL) {
			ASSERT_ST(once__etf_decode(b, n, &t), ONCE_INVALID);
		} else {
			char key[8];
			snprintf(key, sizeof key, "f%zu", i);
			assert_erl_line(out, key, forms[i][1]);
			ASSERT_ST(once__etf_decode(b, n, &t), ONCE_OK);
			ASSERT(once__etf_is_atom(&t, forms[i][1]));
			once__etf_free(&t);
		}
		free(b);
	}
	free(out);
}

/* binary_to_term(…, [safe]) reads the payload this side writes, field by
 * field, and term_to_binary of what it read gives back the same bytes. */
static void test_erlang_reads_our_payload(void)
{
	struct once__pg_successor s = sample();
	unsigned char *etf;
	size_t n;
	ASSERT_ST(once__pg_successor_encode(&s, &etf, &n), ONCE_OK);
	char *hex = hex_of(etf, n);
	size_t cap = strlen(hex) + 4096;
	char *prog = malloc(cap);
	ASSERT(prog != NULL);
	snprintf(prog, cap,
	         "B = binary:decode_hex(<<\"%s\">>),\n"
	         "M = binary_to_term(B, [safe]),\n"
	         "#{<<\"token\">> := T, <<\"generation\">> := G, <<\"retry_until\">> := R,\n"
	         "  <<\"context\">> := C} = M,\n"
	         "P = fun(K, V) -> io:format(\"~s ~s~n\", [K, io_lib:print(V, 1, 100000, -1)]) end,\n"
	         "P(outer_keys, lists:sort(maps:keys(M))),\n"
	         "P(context_keys, lists:sort(maps:keys(C))),\n"
	         "P(token, T), P(generation, G), P(retry_until, R),\n"
	         "[P(K, maps:get(atom_to_binary(K), C)) || K <- [subject, scope, resource, client_id,\n"
	         "   dpop_jkt, acr, auth_time, claims, family_expires_at, attestation_jkt]],\n"
	         "P(reencodes, term_to_binary(M, [{minor_version, 2}]) =:= B),\n"
	         "io:format(\"done~n\"), halt(0).",
	         hex);
	char *out = erl_run(prog);
	assert_erl_line(out, "outer_keys",
	                "[<<\"context\">>,<<\"generation\">>,<<\"retry_until\">>,<<\"token\">>]");
	assert_erl_line(out, "context_keys",
	                "[<<\"acr\">>,<<\"attestation_jkt\">>,<<\"auth_time\">>,<<\"claims\">>,"
	                "<<\"client_id\">>,<<\"dpop_jkt\">>,<<\"family_expires_at\">>,"
	                "<<\"resource\">>,<<\"scope\">>,<<\"subject\">>]");
	assert_erl_line(out, "token", "<<\"" SAMPLE_TOKEN "\">>");
	assert_erl_line(out, "generation", "4");
	assert_erl_line(out, "retry_until", "1900000010");
	assert_erl_line(out, "subject", "<<\"alice\">>");
	assert_erl_line(out, "scope", "[<<\"openid\">>,<<\"profile\">>,<<\"openid\">>]");
	assert_erl_line(out, "resource", "[<<\"https://api.example/\">>]");
	assert_erl_line(out, "client_id", "<<\"client-1\">>");
	assert_erl_line(out, "dpop_jkt", "nil");
	assert_erl_line(out, "acr", "<<\"urn:acr:2\">>");
	assert_erl_line(out, "auth_time", "1700000000");
	assert_erl_line(out, "claims",
	                "#{<<\"e\">> => [],<<\"n\">> => [1,2,300],<<\"neg\">> => -7,"
	                "<<\"o\">> => #{<<\"b\">> => true,<<\"z\">> => nil},"
	                "<<\"urn:attesto:refresh-token:issuer\">> => <<\"https://issuer.example\">>}");
	assert_erl_line(out, "family_expires_at", "4102444800");
	assert_erl_line(out, "attestation_jkt", "<<\"" SAMPLE_JKT "\">>");
	assert_erl_line(out, "reencodes", "true");
	free(out);
	free(prog);
	free(hex);
	free(etf);
}

/* What an Elixir node writes: atom keys (77 on OTP 26+, 64 before),
 * claims with a STRING_EXT list, optional keys partly absent. */
static void test_we_read_erlang_payload(void)
{
	static const char prog[] =
	    "Ctx = #{subject => <<\"bob\">>, scope => [<<\"openid\">>], resource => [],\n"
	    "  client_id => nil, dpop_jkt => <<\"" SAMPLE_JKT "\">>, acr => nil, auth_time => nil,\n"
	    "  claims => #{<<\"n\">> => [1,2], <<\"big\">> => 9007199254740993, <<\"neg\">> => -5,\n"
	    "    <<\"s\">> => <<\"x\">>, <<\"t\">> => true, <<\"l\">> => [<<\"a\">>, [], #{}]},\n"
	    "  family_expires_at => 4102444800},\n"
	    "V2 = #{token => <<\"tok-erl\">>, generation => 7, retry_until => 1900000010, context => Ctx},\n"
	    "V1 = maps:remove(retry_until, V2),\n"
	    "E = fun(K, T, O) -> io:format(\"~s ~s~n\", [K, binary:encode_hex(term_to_binary(T, O))]) end,\n"
	    "E(v2_utf8, V2, [{minor_version, 2}]), E(v2_latin1, V2, [{minor_version, 1}]),\n"
	    "E(v1, V1, [{minor_version, 2}]),\n"
	    "io:format(\"done~n\"), halt(0).";
	char *out = erl_run(prog);
	static const char *const scope[] = {"openid"};
	struct once__pg_successor want = {
	    .token = "tok-erl",
	    .token_len = 7,
	    .generation = 7,
	    .has_retry_until = true,
	    .retry_until = 1900000010,
	    .context = {.subject = "bob",
	                .scope = scope,
	                .nscope = 1,
	                .dpop_jkt = SAMPLE_JKT,
	                .claims = "{\"n\":[1,2],\"big\":9007199254740993,\"neg\":-5,\"s\":\"x\","
	                          "\"t\":true,\"l\":[\"a\",[],{}]}",
	                .has_family_expires_at = true,
	                .family_expires_at = 4102444800}};
	static const struct {
		const char *key;
		uint8_t atom_tag;
		bool v2;
	} forms[] = {{"v2_utf8", 0x77, true}, {"v2_latin1", 0x64, true}, {"v1", 0x77, false}};
	for (size_t i = 0; i < 3; i++) {
		char *hex = erl_line(out, forms[i].key);
		size_t n;
		unsigned char *b = bytes_of_hex(hex, &n);
		ASSERT_EQ_INT(b[6], forms[i].atom_tag); /* 83 74 <u32> then the first key */
		struct once__pg_successor got;
		ASSERT_ST(once__pg_successor_decode(b, n, forms[i].v2, &got), ONCE_OK);
		want.has_retry_until = forms[i].v2;
		assert_same_successor(&got, &want);
		once__pg_successor_free(&got);
		/* v2 demands retry_until and v1 refuses it. */
		ASSERT_ST(once__pg_successor_decode(b, n, !forms[i].v2, &got), ONCE_INVALID);
		free(b);
		free(hex);
	}
	free(out);
}

/* ================================================================
 * The decoder's limits
 * ================================================================ */

static void expect_decode(const char *hex, once_status want)
{
	size_t n;
	unsigned char *b = bytes_of_hex(hex, &n);
	struct once__etf t;
	once_status got = once__etf_decode(b, n, &t);
	if (got != want)
		FAIL_AT("decode %s: expected %s, got %s", hex, once_status_name(want),
		        once_status_name(got));
	if (got == ONCE_OK)
		once__etf_free(&t);
	free(b);
}

static void test_decoder_refuses_outside_subset(void)
{
	expect_decode("", ONCE_INVALID);
	expect_decode("83", ONCE_INVALID);
	expect_decode("8361", ONCE_INVALID);
	expect_decode("836101", ONCE_OK);
	expect_decode("82610101", ONCE_INVALID);   /* version */
	expect_decode("83610100", ONCE_INVALID);   /* trailing byte */
	expect_decode("836A6A", ONCE_INVALID);     /* two terms */
	expect_decode("8346400921FB54442D18", ONCE_INVALID); /* NEW_FLOAT_EXT */
	expect_decode("836F00000001000100", ONCE_INVALID);   /* LARGE_BIG_EXT */
	expect_decode("83690000000100", ONCE_INVALID);       /* LARGE_TUPLE_EXT */
	/* lengths past the end */
	expect_decode("836DFFFFFFFF", ONCE_INVALID);
	expect_decode("836D0000000261", ONCE_INVALID);
	expect_decode("836CFFFFFFFF", ONCE_INVALID);
	expect_decode("8374FFFFFFFF", ONCE_INVALID);
	expect_decode("836BFFFF", ONCE_INVALID);
	expect_decode("8368FF", ONCE_INVALID);
	expect_decode("836E08000102", ONCE_INVALID);
	/* lists: proper only */
	expect_decode("836C00000001610161", ONCE_INVALID); /* [1|1] */
	expect_decode("836C0000000161016A", ONCE_OK);
	expect_decode("836C000000006A", ONCE_OK);           /* LIST_EXT of none: [] */
	/* integers: int64 only */
	expect_decode("836E08000000000000000080", ONCE_INVALID); /* 2^63 */
	expect_decode("836E08010000000000000080", ONCE_OK);      /* -2^63 */
	expect_decode("836E08010100000000000080", ONCE_INVALID); /* -2^63-1 */
	expect_decode("836E080000000000000080", ONCE_INVALID);   /* 7 of 8 bytes */
	expect_decode("836E0900" "010000000000000001", ONCE_INVALID); /* 2^64 + 1 */
	expect_decode("836E0900" "010000000000000000", ONCE_OK);      /* 1, a zero ninth byte */
	expect_decode("836E0900" "0100000000000000", ONCE_INVALID);   /* 8 of 9 bytes */
	expect_decode("836E01020A", ONCE_INVALID);                   /* sign 2 */
	/* atoms: values only nil/true/false, names valid text */
	expect_decode("837703666F6F", ONCE_INVALID);                  /* foo */
	expect_decode("8374000000017703666F6F6101", ONCE_OK);          /* #{foo => 1} */
	expect_decode("83740000000177026869770366666F", ONCE_INVALID); /* value atom */
	expect_decode("837400000001730263E96101", ONCE_INVALID);       /* Latin-1 é */
	expect_decode("837400000001770263E96101", ONCE_INVALID);       /* bad UTF-8 */
	expect_decode("83740000000177046361C3A96101", ONCE_OK);        /* "caé" UTF-8 */
	expect_decode("8374000000017702C0AF6101", ONCE_INVALID);       /* overlong */
	expect_decode("8374000000017703EDA0806101", ONCE_INVALID);     /* surrogate */
	/* maps: atom or binary keys, each once */
	expect_decode("83740000000161016101", ONCE_INVALID);
	expect_decode("8374000000026D00000001616101" "6D00000001616102", ONCE_INVALID);
	expect_decode("8374000000026D00000001616101" "7701616102", ONCE_OK); /* <<"a">>, a */
	expect_decode("83740000000261", ONCE_INVALID);
}

/* Nesting: 64 levels decode, 65 do not, here and in the encoder. */
static void test_depth_bound(void)
{
	for (unsigned depth = ONCE_ETF_MAX_DEPTH; depth <= ONCE_ETF_MAX_DEPTH + 1; depth++) {
		/* depth - 1 one-element lists around 300 (not a byte: a byte
		 * list would be written as STRING_EXT) */
		size_t n = 1 + 6 * (depth - 1) + 5;
		unsigned char *b = malloc(n), *p = b;
		ASSERT(b != NULL);
		*p++ = 0x83;
		for (unsigned i = 0; i + 1 < depth; i++) {
			memcpy(p, "\x6C\x00\x00\x00\x01", 5);
			p += 5;
		}
		memcpy(p, "\x62\x00\x00\x01\x2C", 5);
		p += 5;
		for (unsigned i = 0; i + 1 < depth; i++)
			*p++ = 0x6A;
		n = (size_t)(p - b);
		struct once__etf t;
		once_status want = depth <= ONCE_ETF_MAX_DEPTH ? ONCE_OK : ONCE_INVALID;
		ASSERT_ST(once__etf_decode(b, n, &t), want);
		if (want == ONCE_OK) {
			unsigned char *again;
			size_t alen;
			ASSERT_ST(once__etf_encode(&t, &again, &alen), ONCE_OK);
			ASSERT_EQ_U64(alen, n);
			ASSERT(memcmp(again, b, n) == 0);
			free(again);
			/* One more level around it is refused by the encoder too. */
			struct once__etf outer;
			ASSERT(once__etf_list(&outer, 1));
			outer.items[0] = t;
			ASSERT_ST(once__etf_encode(&outer, &again, &alen), ONCE_INVALID);
			once__etf_free(&outer);
		}
		free(b);
	}
}

/* Every truncation and every single-bit flip of a real payload: decoding
 * never crashes or reads outside the buffer (ASan), truncations are
 * always refused, and whatever decodes re-encodes. */
static void test_truncations_and_bit_flips(void)
{
	struct once__pg_successor s = sample();
	unsigned char *etf;
	size_t n;
	ASSERT_ST(once__pg_successor_encode(&s, &etf, &n), ONCE_OK);
	for (size_t len = 0; len < n; len++) {
		/* A copy of exactly len bytes, so ASan sees any read past it. */
		unsigned char *cut = malloc(len > 0 ? len : 1);
		ASSERT(cut != NULL);
		memcpy(cut, etf, len);
		struct once__etf t;
		struct once__pg_successor got;
		ASSERT_ST(once__etf_decode(cut, len, &t), ONCE_INVALID);
		ASSERT_ST(once__pg_successor_decode(cut, len, true, &got), ONCE_INVALID);
		free(cut);
	}
	unsigned char *flip = malloc(n);
	ASSERT(flip != NULL);
	size_t decoded = 0;
	for (size_t i = 0; i < n; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(flip, etf, n);
			flip[i] ^= (unsigned char)(1u << bit);
			struct once__etf t;
			if (once__etf_decode(flip, n, &t) == ONCE_OK) {
				unsigned char *again;
				size_t alen;
				ASSERT_ST(once__etf_encode(&t, &again, &alen), ONCE_OK);
				free(again);
				once__etf_free(&t);
				decoded++;
			}
			struct once__pg_successor got;
			if (once__pg_successor_decode(flip, n, true, &got) == ONCE_OK)
				once__pg_successor_free(&got);
		}
	}
	/* Flips inside strings leave a valid term: the loop did reach the
	 * decoder's success path, not only its first check. */
	ASSERT(decoded > 0);
	free(flip);
	free(etf);
}

/* ================================================================
 * JSON <-> terms
 * ================================================================ */

static void test_json_mapping(void)
{
	json_t *j = json_loads(sample_claims, 0, NULL);
	ASSERT(j != NULL);
	struct once__etf t;
	ASSERT_ST(once__etf_from_json(j, &t), ONCE_OK);
	json_t *back = NULL;
	ASSERT_ST(once__etf_to_json(&t, &back), ONCE_OK);
	ASSERT(json_equal(j, back));
	json_decref(back);
	once__etf_free(&t);
	json_decref(j);

	/* floats have no mapping */
	j = json_loads("{\"a\":[1,2.5]}", 0, NULL);
	ASSERT_ST(once__etf_from_json(j, &t), ONCE_INVALID);
	once__etf_free(&t); /* left freeable */
	json_decref(j);

	/* terms JSON cannot hold */
	struct once__etf bad;
	json_t *out = NULL;
	ASSERT(once__etf_tuple(&bad, 0));
	ASSERT_ST(once__etf_to_json(&bad, &out), ONCE_INVALID);
	once__etf_free(&bad);
	once__etf_atom(&bad, "undefined");
	ASSERT_ST(once__etf_to_json(&bad, &out), ONCE_INVALID);
	once__etf_binary(&bad, "\xC3\x28", 2); /* not UTF-8 */
	ASSERT_ST(once__etf_to_json(&bad, &out), ONCE_INVALID);
	once__etf_binary(&bad, "a\0b", 3); /* jsonb has no \u0000 */
	ASSERT_ST(once__etf_to_json(&bad, &out), ONCE_INVALID);
	ASSERT(once__etf_map(&bad, 1)); /* an atom key */
	once__etf_atom(&bad.items[0], "k");
	once__etf_integer(&bad.items[1], 1);
	ASSERT_ST(once__etf_to_json(&bad, &out), ONCE_INVALID);
	once__etf_free(&bad);
	ASSERT(once__etf_map(&bad, 2)); /* a repeated key */
	once__etf_string(&bad.items[0], "k");
	once__etf_integer(&bad.items[1], 1);
	once__etf_string(&bad.items[2], "k");
	once__etf_integer(&bad.items[3], 2);
	ASSERT_ST(once__etf_to_json(&bad, &out), ONCE_INVALID);
	unsigned char *bytes;
	size_t blen;
	ASSERT_ST(once__etf_encode(&bad, &bytes, &blen), ONCE_INVALID);
	once__etf_free(&bad);
	ASSERT(out == NULL);
}

/* ================================================================
 * The payload's shape
 * ================================================================ */

/* A payload map built by hand: the sample's fields with binary keys, for
 * the test to break one at a time. */
struct hand_payload {
	struct once__etf outer;
	struct once__etf *context; /* inside outer */
	json_t *claims;
};

static void hand_payload(struct hand_payload *h, size_t extra_outer, size_t extra_context)
{
	ASSERT(once__etf_map(&h->outer, 4 + extra_outer));
	struct once__etf *o = h->outer.items;
	once__etf_string(&o[0], "token");
	once__etf_string(&o[1], "tok");
	once__etf_string(&o[2], "generation");
	once__etf_integer(&o[3], 1);
	once__etf_string(&o[4], "retry_until");
	once__etf_integer(&o[5], 99);
	once__etf_string(&o[6], "context");
	h->context = &o[7];
	ASSERT(once__etf_map(h->context, 8 + extra_context));
	struct once__etf *c = h->context->items;
	static const char *const keys[] = {"subject", "scope",     "resource", "client_id",
	                                   "dpop_jkt", "acr",      "auth_time", "claims"};
	for (size_t i = 0; i < 8; i++)
		once__etf_string(&c[2 * i], keys[i]);
	once__etf_string(&c[1], "sub");
	ASSERT(once__etf_list(&c[3], 1));
	once__etf_string(&c[3].items[0], "openid");
	ASSERT(once__etf_list(&c[5], 0));
	once__etf_atom(&c[7], "nil");
	once__etf_atom(&c[9], "nil");
	once__etf_atom(&c[11], "nil");
	once__etf_atom(&c[13], "nil");
	h->claims = json_loads("{\"k\":[1]}", 0, NULL);
	ASSERT_ST(once__etf_from_json(h->claims, &c[15]), ONCE_OK);
}

static once_status decode_hand(struct hand_payload *h, bool v2)
{
	unsigned char *b;
	size_t n;
	once_status st = once__etf_encode(&h->outer, &b, &n);
	if (st == ONCE_OK) {
		struct once__pg_successor got;
		st = once__pg_successor_decode(b, n, v2, &got);
		if (st == ONCE_OK)
			once__pg_successor_free(&got);
		free(b);
	}
	once__etf_free(&h->outer);
	json_decref(h->claims);
	return st;
}

static void test_payload_shape(void)
{
	struct hand_payload h;
	hand_payload(&h, 0, 0);
	ASSERT_ST(decode_hand(&h, true), ONCE_OK);

	/* optional context keys: set, or nil (read as absent) */
	hand_payload(&h, 0, 2);
	once__etf_string(&h.context->items[16], "family_expires_at");
	once__etf_atom(&h.context->items[17], "nil");
	once__etf_string(&h.context->items[18], "attestation_jkt");
	once__etf_string(&h.context->items[19], SAMPLE_JKT);
	ASSERT_ST(decode_hand(&h, true), ONCE_OK);

	/* an extra outer key, an extra context key */
	hand_payload(&h, 1, 0);
	once__etf_string(&h.outer.items[8], "extra");
	once__etf_integer(&h.outer.items[9], 1);
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 1);
	once__etf_string(&h.context->items[16], "cnf");
	once__etf_atom(&h.context->items[17], "nil");
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);

	/* a misspelt context key; a missing one (claims, the last pair) */
	hand_payload(&h, 0, 0);
	once__etf_string(&h.context->items[10], "acrr");
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_free(&h.context->items[15]);
	h.context->n = 7;
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);

	/* mixed key kinds, outer and context */
	hand_payload(&h, 0, 0);
	once__etf_atom(&h.outer.items[0], "token");
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_atom(&h.context->items[0], "subject");
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);

	/* wrong value types */
	hand_payload(&h, 0, 0);
	once__etf_string(&h.outer.items[3], "1"); /* generation */
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_integer(&h.outer.items[3], -1);
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_integer(&h.outer.items[3], (int64_t)INT32_MAX + 1);
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_atom(&h.outer.items[1], "nil"); /* token */
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_atom(&h.context->items[1], "nil"); /* subject */
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_integer(&h.context->items[3].items[0], 5); /* scope element */
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_binary(&h.context->items[7], "a\0b", 3); /* client_id with NUL */
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_string(&h.context->items[13], "1700000000"); /* auth_time */
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);
	hand_payload(&h, 0, 0);
	once__etf_free(&h.context->items[15]);
	once__etf_atom(&h.context->items[15], "nil"); /* claims */
	ASSERT_ST(decode_hand(&h, true), ONCE_INVALID);

	/* v1 refuses retry_until; the outer map is not a list */
	hand_payload(&h, 0, 0);
	ASSERT_ST(decode_hand(&h, false), ONCE_INVALID);
	struct once__pg_successor got;
	ASSERT_ST(once__pg_successor_decode((const uint8_t *)"\x83\x6A", 2, true, &got),
	          ONCE_INVALID);
}

/* ================================================================
 * Sealing and opening
 * ================================================================ */

static void test_seal_open_round_trip(void)
{
	struct once__pg_successor s = sample();
	char *text = seal_sample(&s);

	/* Exactly the four keys, child_hash = Secret.hash(token). */
	json_t *j = json_loads(text, 0, NULL);
	ASSERT(j != NULL);
	ASSERT_EQ_U64(json_object_size(j), 4);
	ASSERT_EQ_INT(json_integer_value(json_object_get(j, "v")), 2);
	ASSERT(json_is_integer(json_object_get(j, "v")));
	ASSERT_EQ_INT(json_integer_value(json_object_get(j, "retry_until")), 1900000010);
	char child_hash[ONCE_PG_SECRET_HASH_LEN + 1];
	once__pg_secret_hash(SAMPLE_TOKEN, strlen(SAMPLE_TOKEN), child_hash);
	ASSERT_STR(json_string_value(json_object_get(j, "child_hash")), child_hash);
	const char *wire = json_string_value(json_object_get(j, "ciphertext"));
	ASSERT(wire != NULL && strncmp(wire, "XCP.", 4) == 0);

	/* The independent construction opens it: key, AAD, iv || tag || c. */
	unsigned char *aad, *payload;
	size_t aad_len, payload_len, m_len;
	ASSERT_ST(once__pg_successor_aad(&sample_row, child_hash, 1900000010, &aad, &aad_len),
	          ONCE_OK);
	ASSERT_ST(once__pg_successor_encode(&s, &payload, &payload_len), ONCE_OK);
	unsigned char *m = test_decrypt(SECRET, wire, aad, aad_len, &m_len);
	ASSERT(m != NULL);
	ASSERT_EQ_U64(m_len, payload_len);
	ASSERT(memcmp(m, payload, m_len) == 0);
	ASSERT_EQ_U64(strlen(wire), 4 + sodium_base64_ENCODED_LEN(40 + payload_len,
	                                                         sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1);
	free(m);
	free(payload);
	free(aad);
	json_decref(j);

	int64_t retry = 0;
	ASSERT_EQ_INT(once__pg_envelope_classify(text, strlen(text), &retry), ONCE_PG_ENVELOPE_V2);
	ASSERT_EQ_INT(retry, 1900000010);
	struct once__pg_successor got;
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, text,
	                                      strlen(text), &got),
	              ONCE_PG_OPEN_V2);
	assert_same_successor(&got, &s);
	once__pg_successor_free(&got);

	/* As PostgreSQL prints jsonb: keys reordered, spaces after : and , */
	char *child = strdup(child_hash), *w = wire_of(text);
	char *printed = text_of(
	    "{\"v\": 2, \"child_hash\": \"%s\", \"ciphertext\": \"%s\", \"retry_until\": %d}", child,
	    w, 1900000010);
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, printed,
	                                      strlen(printed), &got),
	              ONCE_PG_OPEN_V2);
	once__pg_successor_free(&got);
	free(printed);
	free(child);
	free(w);

	/* Two seals of one successor differ (a fresh iv each). */
	char *again = seal_sample(&s);
	ASSERT(strcmp(again, text) != 0);
	free(again);

	/* Minimal context: nils, no optional keys, claims NULL = {}. */
	struct once__pg_successor bare = {.token = "t", .token_len = 1, .generation = 1,
	                                  .has_retry_until = true, .retry_until = -5,
	                                  .context = {.subject = "s"}};
	char *bare_text = seal_sample(&bare);
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, bare_text,
	                                      strlen(bare_text), &got),
	              ONCE_PG_OPEN_V2);
	assert_same_successor(&got, &bare);
	ASSERT_STR(got.context.claims, "{}");
	once__pg_successor_free(&got);
	free(bare_text);
	free(text);
}

/* Claims nested ONCE_PG_CLAIMS_MAX_DEPTH deep seal and open; one
 * more level does not seal. */
static void test_claims_depth(void)
{
	for (int depth = ONCE_PG_CLAIMS_MAX_DEPTH; depth <= ONCE_PG_CLAIMS_MAX_DEPTH + 1; depth++) {
		/* {"a":[{"a":[ ... "x" ... ]}]}: depth containers around a scalar
		 * (a string: [1] would travel as STRING_EXT, one term) */
		char claims[512];
		size_t n = 0;
		for (int i = 0; i < depth; i++)
			n += (size_t)snprintf(claims + n, sizeof claims - n, "%s",
			                      i % 2 == 0 ? "{\"a\":" : "[");
		n += (size_t)snprintf(claims + n, sizeof claims - n, "\"x\"");
		for (int i = depth - 1; i >= 0; i--)
			n += (size_t)snprintf(claims + n, sizeof claims - n, "%s", i % 2 == 0 ? "}" : "]");
		ASSERT(n < sizeof claims);
		struct once__pg_successor s = sample();
		s.context.claims = claims;
		char *text = NULL;
		once_status want = depth <= ONCE_PG_CLAIMS_MAX_DEPTH ? ONCE_OK : ONCE_INVALID;
		ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, &s, &text), want);
		if (want != ONCE_OK)
			continue;
		struct once__pg_successor got;
		ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, text,
		                                      strlen(text), &got),
		              ONCE_PG_OPEN_V2);
		assert_same_successor(&got, &s);
		once__pg_successor_free(&got);
		free(text);
	}
}

static void test_seal_refusals(void)
{
	struct once__pg_successor s = sample();
	char *text = (char *)"untouched";
	ASSERT_ST(once__pg_successor_seal(NULL, 0, &sample_row, &s, &text), ONCE_NO_KEY);
	ASSERT_ST(once__pg_successor_seal(SECRET, 31, &sample_row, &s, &text), ONCE_NO_KEY);
	s.has_retry_until = false; /* v2 always carries one */
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, &s, &text),
	          ONCE_INVALID);
	s = sample();
	s.context.claims = "{\"f\":1.5}";
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, &s, &text),
	          ONCE_INVALID);
	s.context.claims = "[1]";
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, &s, &text),
	          ONCE_INVALID);
	s.context.claims = "{\"a\":1,\"a\":2}";
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, &s, &text),
	          ONCE_INVALID);
	s = sample();
	s.context.subject = NULL;
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, &s, &text),
	          ONCE_INVALID);
	s = sample();
	static const char *const holey[] = {"a", NULL};
	s.context.scope = holey;
	s.context.nscope = 2;
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, &s, &text),
	          ONCE_INVALID);
	s = sample();
	s.generation = -1;
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &sample_row, &s, &text),
	          ONCE_INVALID);
	s = sample();
	struct once__pg_successor_row no_family = sample_row;
	no_family.family_id = NULL;
	ASSERT_ST(once__pg_successor_seal(SECRET, strlen(SECRET), &no_family, &s, &text),
	          ONCE_INVALID);
	ASSERT_STR(text, "untouched");

	/* Opening without a usable secret: no successor. */
	text = seal_sample(&s);
	struct once__pg_successor got;
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, 31, &sample_row, text, strlen(text), &got),
	              ONCE_PG_OPEN_NO_SECRET);
	ASSERT_EQ_INT(once__pg_successor_open(NULL, 0, &sample_row, text, strlen(text), &got),
	              ONCE_PG_OPEN_NO_SECRET);
	free(text);
}

/* A ciphertext sealed for one row, child or deadline opens for no other. */
static void test_binding_tampered(void)
{
	struct once__pg_successor s = sample();
	char *text = seal_sample(&s);
	char *wire = wire_of(text);
	char child_hash[ONCE_PG_SECRET_HASH_LEN + 1];
	once__pg_secret_hash(SAMPLE_TOKEN, strlen(SAMPLE_TOKEN), child_hash);

	struct once__pg_successor_row row = sample_row;
	row.parent_hash = "PARENTHASHPARENTHASHPARENTHASHPARENTHASH124";
	expect_no_successor(&row, text, ONCE_PG_OPEN_AUTH);
	row = sample_row;
	row.family_id = "fam-0123456789abcdefgX";
	expect_no_successor(&row, text, ONCE_PG_OPEN_AUTH);
	row = sample_row;
	row.parent_generation = 4;
	expect_no_successor(&row, text, ONCE_PG_OPEN_AUTH);
	row.parent_generation = 3 + 256; /* same low byte, other form */
	expect_no_successor(&row, text, ONCE_PG_OPEN_AUTH);

	/* the envelope's own child_hash and retry_until */
	char other_hash[ONCE_PG_SECRET_HASH_LEN + 1];
	once__pg_secret_hash("another token", 13, other_hash);
	char *t = v2_text(wire, 1900000010, other_hash);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_AUTH);
	free(t);
	t = v2_text(wire, 1900000011, child_hash);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_AUTH);
	free(t);
	t = v2_text(wire, 1900000010, child_hash); /* untouched: opens */
	struct once__pg_successor got;
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, t, strlen(t), &got),
	              ONCE_PG_OPEN_V2);
	once__pg_successor_free(&got);
	free(t);

	/* another secret */
	static const char other_secret[] = "another secret, also at least 32 bytes";
	ASSERT_EQ_INT(once__pg_successor_open(other_secret, strlen(other_secret), &sample_row, text,
	                                      strlen(text), &got),
	              ONCE_PG_OPEN_AUTH);

	/* the wire itself: a changed character, a cut, no prefix, not base64 */
	char *w = strdup(wire);
	w[20] = w[20] == 'A' ? 'B' : 'A';
	t = v2_text(w, 1900000010, child_hash);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_AUTH);
	free(t);
	strcpy(w, wire);
	w[4 + 50] = '\0'; /* 50 base64 characters: 37 bytes, under iv + tag */
	t = v2_text(w, 1900000010, child_hash);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_BAD_WIRE);
	free(t);
	strcpy(w, wire);
	w[strlen(w) - 1] = '\0'; /* a cut inside the tag-protected bytes */
	t = v2_text(w, 1900000010, child_hash);
	enum once__pg_open r = once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, t,
	                                               strlen(t), &got);
	ASSERT(r == ONCE_PG_OPEN_AUTH || r == ONCE_PG_OPEN_BAD_WIRE);
	free(t);
	t = v2_text(wire + 4, 1900000010, child_hash);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_BAD_WIRE);
	free(t);
	strcpy(w, wire);
	w[10] = '=';
	t = v2_text(w, 1900000010, child_hash);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_BAD_WIRE);
	free(t);
	free(w);

	/* A v2 envelope needs its row. */
	expect_no_successor(NULL, text, ONCE_PG_OPEN_MALFORMED);
	free(wire);
	free(text);
}

/* Sealed consistently, but the inside disagrees with the outside. */
static void test_inner_bindings(void)
{
	struct once__pg_successor s = sample();
	unsigned char *payload, *aad;
	size_t payload_len, aad_len;
	char child_hash[ONCE_PG_SECRET_HASH_LEN + 1];
	once__pg_secret_hash(SAMPLE_TOKEN, strlen(SAMPLE_TOKEN), child_hash);

	/* inner retry_until 1900000010, outer (and AAD) 1900000000 */
	ASSERT_ST(once__pg_successor_encode(&s, &payload, &payload_len), ONCE_OK);
	ASSERT_ST(once__pg_successor_aad(&sample_row, child_hash, 1900000000, &aad, &aad_len), ONCE_OK);
	char *wire = test_encrypt(SECRET, aad, aad_len, payload, payload_len);
	char *t = v2_text(wire, 1900000000, child_hash);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_RETRY_MISMATCH);
	free(t);
	free(wire);
	free(aad);

	/* child_hash consistent with the AAD but not the token's hash */
	char other[ONCE_PG_SECRET_HASH_LEN + 1];
	once__pg_secret_hash("another token", 13, other);
	ASSERT_ST(once__pg_successor_aad(&sample_row, other, 1900000010, &aad, &aad_len), ONCE_OK);
	wire = test_encrypt(SECRET, aad, aad_len, payload, payload_len);
	t = v2_text(wire, 1900000010, other);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_CHILD_HASH);
	free(t);
	free(wire);

	/* the right AAD around a plaintext that is not a payload */
	free(aad);
	ASSERT_ST(once__pg_successor_aad(&sample_row, child_hash, 1900000010, &aad, &aad_len), ONCE_OK);
	wire = test_encrypt(SECRET, aad, aad_len, (const unsigned char *)"\x83\x6A", 2);
	t = v2_text(wire, 1900000010, child_hash);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_PAYLOAD);
	free(t);
	free(wire);
	/* ... and the right payload: opens (the construction above is sound) */
	wire = test_encrypt(SECRET, aad, aad_len, payload, payload_len);
	t = v2_text(wire, 1900000010, child_hash);
	struct once__pg_successor got;
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, t, strlen(t), &got),
	              ONCE_PG_OPEN_V2);
	once__pg_successor_free(&got);
	free(t);
	free(wire);
	free(aad);
	free(payload);
}

static void test_v1_opens_with_ascii_aad(void)
{
	struct once__pg_successor s = sample();
	s.has_retry_until = false;
	unsigned char *payload;
	size_t payload_len;
	ASSERT_ST(once__pg_successor_encode(&s, &payload, &payload_len), ONCE_OK);
	static const char label[] = "attesto_phoenix:refresh_successor:v1";
	ASSERT_EQ_U64(strlen(label), 36);
	char *wire = test_encrypt(SECRET, (const unsigned char *)label, 36, payload, payload_len);
	char *text = text_of("{\"v\":1,\"ciphertext\":\"%s\"}", wire);
	ASSERT_EQ_INT(once__pg_envelope_classify(text, strlen(text), NULL), ONCE_PG_ENVELOPE_V1);
	struct once__pg_successor got;
	/* v1 binds no row: any row (or none) opens it; lineage is the caller's */
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, text, strlen(text),
	                                      &got),
	              ONCE_PG_OPEN_V1);
	ASSERT(!got.has_retry_until);
	assert_same_successor(&got, &s);
	once__pg_successor_free(&got);
	ASSERT_EQ_INT(once__pg_successor_open(SECRET, strlen(SECRET), NULL, text, strlen(text), &got),
	              ONCE_PG_OPEN_V1);
	once__pg_successor_free(&got);
	free(text);
	free(wire);

	/* v1 sealed with a v2 AAD, or with a payload carrying retry_until */
	unsigned char *aad;
	size_t aad_len;
	ASSERT_ST(once__pg_successor_aad(&sample_row, "x", 1, &aad, &aad_len), ONCE_OK);
	wire = test_encrypt(SECRET, aad, aad_len, payload, payload_len);
	text = text_of("{\"v\":1,\"ciphertext\":\"%s\"}", wire);
	expect_no_successor(&sample_row, text, ONCE_PG_OPEN_AUTH);
	free(text);
	free(wire);
	free(aad);
	free(payload);
	s = sample();
	ASSERT_ST(once__pg_successor_encode(&s, &payload, &payload_len), ONCE_OK);
	wire = test_encrypt(SECRET, (const unsigned char *)label, 36, payload, payload_len);
	text = text_of("{\"v\":1,\"ciphertext\":\"%s\"}", wire);
	expect_no_successor(&sample_row, text, ONCE_PG_OPEN_PAYLOAD);
	free(text);
	free(wire);
	free(payload);
}

static void test_tombstones(void)
{
	char t[ONCE_PG_TOMBSTONE_MAX];
	once__pg_successor_tombstone(1900000010, t);
	ASSERT_STR(t, "{\"v\":1,\"retry_until\":1900000010,\"recoverable\":false}");
	int64_t retry = 0;
	ASSERT_EQ_INT(once__pg_envelope_classify(t, strlen(t), &retry), ONCE_PG_ENVELOPE_TOMBSTONE);
	ASSERT_EQ_INT(retry, 1900000010);
	expect_no_successor(&sample_row, t, ONCE_PG_OPEN_TOMBSTONE);
	once__pg_successor_tombstone(INT64_MIN, t);
	ASSERT_STR(t, "{\"v\":1,\"retry_until\":-9223372036854775808,\"recoverable\":false}");
	ASSERT_EQ_INT(once__pg_envelope_classify(t, strlen(t), &retry), ONCE_PG_ENVELOPE_TOMBSTONE);
	ASSERT(retry == INT64_MIN);
	once__pg_successor_tombstone(INT64_MAX, t);
	ASSERT_EQ_INT(once__pg_envelope_classify(t, strlen(t), &retry), ONCE_PG_ENVELOPE_TOMBSTONE);
	ASSERT(retry == INT64_MAX);
	/* as PostgreSQL prints it */
	const char *printed = "{\"v\": 1, \"retry_until\": 5, \"recoverable\": false}";
	ASSERT_EQ_INT(once__pg_envelope_classify(printed, strlen(printed), &retry),
	              ONCE_PG_ENVELOPE_TOMBSTONE);
	ASSERT_EQ_INT(retry, 5);
}

/* Everything that is not exactly one of the three shapes. */
static void test_malformed_refused(void)
{
	static const char *const bad[] = {
	    "",
	    "null",
	    "[]",
	    "\"XCP.abc\"",
	    "{not json",
	    "{}",
	    /* a plaintext map (2.13.0 accepted one; 3.x never does) */
	    "{\"token\":\"t\",\"generation\":1,\"context\":{}}",
	    /* tombstone variants */
	    "{\"v\":1,\"retry_until\":5,\"recoverable\":true}",
	    "{\"v\":1,\"retry_until\":5,\"recoverable\":null}",
	    "{\"v\":1,\"retry_until\":5}",
	    "{\"v\":1,\"retry_until\":5,\"recoverable\":false,\"x\":1}",
	    "{\"v\":1,\"retry_until\":1.5,\"recoverable\":false}",
	    "{\"v\":1,\"retry_until\":\"1900000010\",\"recoverable\":false}",
	    "{\"v\":1,\"retry_until\":null,\"recoverable\":false}",
	    "{\"v\":1,\"retry_until\":9223372036854775808,\"recoverable\":false}",
	    "{\"v\":1.0,\"retry_until\":5,\"recoverable\":false}",
	    "{\"v\":\"1\",\"retry_until\":5,\"recoverable\":false}",
	    "{\"v\":2,\"retry_until\":5,\"recoverable\":false}",
	    "{\"v\":1,\"retry_until\":5,\"recoverable\":false,\"retry_until\":6}",
	    /* v1 variants */
	    "{\"v\":1,\"ciphertext\":5}",
	    "{\"v\":1,\"ciphertext\":\"XCP.a\",\"retry_until\":5}",
	    "{\"v\":1}",
	    /* v2 variants */
	    "{\"v\":2,\"ciphertext\":\"XCP.a\",\"retry_until\":5}",
	    "{\"v\":2,\"ciphertext\":\"XCP.a\",\"child_hash\":\"h\"}",
	    "{\"v\":2,\"ciphertext\":\"XCP.a\",\"retry_until\":5,\"child_hash\":\"h\",\"x\":0}",
	    "{\"v\":2,\"ciphertext\":\"XCP.a\",\"retry_until\":5.0,\"child_hash\":\"h\"}",
	    "{\"v\":2,\"ciphertext\":\"XCP.a\",\"retry_until\":5,\"child_hash\":7}",
	    "{\"v\":2,\"ciphertext\":[],\"retry_until\":5,\"child_hash\":\"h\"}",
	    "{\"v\":3,\"ciphertext\":\"XCP.a\",\"retry_until\":5,\"child_hash\":\"h\"}",
	    "{\"v\":2,\"ciphertext\":\"XCP.a\",\"retry_until\":5,\"child_hash\":\"h\"} x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t retry = 12345;
		if (once__pg_envelope_classify(bad[i], strlen(bad[i]), &retry) !=
		    ONCE_PG_ENVELOPE_MALFORMED)
			FAIL_AT("classified as a shape: %s", bad[i]);
		ASSERT_EQ_INT(retry, 12345);
		expect_no_successor(&sample_row, bad[i], ONCE_PG_OPEN_MALFORMED);
	}
	ASSERT_EQ_INT(once__pg_envelope_classify(NULL, 0, NULL), ONCE_PG_ENVELOPE_MALFORMED);
	expect_no_successor(&sample_row, NULL, ONCE_PG_OPEN_MALFORMED);
	/* a length that stops short of the text */
	char t[ONCE_PG_TOMBSTONE_MAX];
	once__pg_successor_tombstone(5, t);
	ASSERT_EQ_INT(once__pg_envelope_classify(t, strlen(t) - 1, NULL), ONCE_PG_ENVELOPE_MALFORMED);
}

/* No single-bit flip of a sealed column text opens, and none crashes. */
static void test_envelope_bit_flips(void)
{
	struct once__pg_successor s = sample();
	char *text = seal_sample(&s);
	size_t n = strlen(text);
	char *flip = malloc(n + 1);
	ASSERT(flip != NULL);
	for (size_t i = 0; i < n; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(flip, text, n + 1);
			flip[i] ^= (char)(1u << bit);
			struct once__pg_successor got;
			enum once__pg_open r =
			    once__pg_successor_open(SECRET, strlen(SECRET), &sample_row, flip, n, &got);
			if (r == ONCE_PG_OPEN_V2 || r == ONCE_PG_OPEN_V1)
				FAIL_AT("byte %zu bit %u flipped still opens", i, bit);
		}
	}
	free(flip);
	free(text);
}

/* ================================================================
 * Hashes (ATTESTO-PG 3)
 * ================================================================ */

static void test_hashes(void)
{
	char h[ONCE_PG_SECRET_HASH_LEN + 1];
	/* base64url_nopad(SHA-256("")), computed with Python's hashlib */
	once__pg_secret_hash("", 0, h);
	ASSERT_STR(h, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
	/* replay_key(jkt, jti) = Secret.hash(jkt ":" jti): the public helper
	 * both engines' callers use (core/crypto.c) */
#define JKT "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
#define JTI "e1j3V_bKic8-LTEB"
	static const char jkt[] = JKT, jti[] = JTI;
	ASSERT_ST(once_dpop_replay_key(jkt, strlen(jkt), jti, strlen(jti), h), ONCE_OK);
	ASSERT_STR(h, "5JeFa_TFewWm5vhk4_uUELMqO0290sKWBHW5UoGlygo");
	char joined[ONCE_PG_SECRET_HASH_LEN + 1];
	once__pg_secret_hash(JKT ":" JTI, strlen(JKT ":" JTI), joined);
	ASSERT_STR(h, joined);
	/* Erlang agrees on both (crypto ships with erlang-base) */
	char prog[512];
	snprintf(prog, sizeof prog,
	         "H = fun(B) -> binary:encode_hex(crypto:hash(sha256, B)) end,\n"
	         "io:format(\"empty ~s~nreplay ~s~n\", [H(<<>>), H(<<\"%s:%s\">>)]),\n"
	         "io:format(\"done~n\"), halt(0).",
	         jkt, jti);
	char *out = erl_run(prog);
	unsigned char digest[32];
	crypto_hash_sha256(digest, (const unsigned char *)"", 0);
	char *hex = hex_of(digest, 32);
	assert_erl_line(out, "empty", hex);
	free(hex);
	size_t dlen;
	char *line = erl_line(out, "replay");
	unsigned char *d = bytes_of_hex(line, &dlen);
	ASSERT_EQ_U64(dlen, 32);
	sodium_bin2base64(joined, sizeof joined, d, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	ASSERT_STR(joined, h);
	free(d);
	free(line);
	free(out);
}

TESTS(TEST(test_aad_example), TEST(test_etf_matches_erlang), TEST(test_old_atom_forms),
      TEST(test_erlang_reads_our_payload), TEST(test_we_read_erlang_payload),
      TEST(test_decoder_refuses_outside_subset), TEST(test_depth_bound),
      TEST(test_truncations_and_bit_flips), TEST(test_json_mapping), TEST(test_payload_shape),
      TEST(test_seal_open_round_trip), TEST(test_claims_depth), TEST(test_seal_refusals), TEST(test_binding_tampered),
      TEST(test_inner_bindings), TEST(test_v1_opens_with_ascii_aad), TEST(test_tombstones),
      TEST(test_malformed_refused), TEST(test_envelope_bit_flips), TEST(test_hashes));
TEST_MAIN()
