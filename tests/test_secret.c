/*
 * tests/test_secret.c - the helpers once_secret_hash (base64url SHA-256,
 * AttestoPhoenix's Secret.hash) and once_secret_generate (32 CSPRNG bytes,
 * base64url): known-answer vectors, output shape, argument checks.
 *
 * Vectors were computed independently with
 *   printf '%s' "$s" | openssl dgst -sha256 -binary | basenc --base64url
 * and Python's hashlib + base64.urlsafe_b64encode (padding stripped).
 */
#include "harness.h"

/* 43 characters, NUL at [43], every character in [A-Za-z0-9_-]. */
static void assert_b64url43(const char *s)
{
	ASSERT_EQ_INT(s[ONCE_SECRET_LEN], '\0');
	ASSERT_EQ_INT(strlen(s), ONCE_SECRET_LEN);
	for (size_t i = 0; i < ONCE_SECRET_LEN; i++) {
		char c = s[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		          c == '_' || c == '-';
		if (!ok)
			FAIL_AT("character %zu of \"%s\" is not base64url", i, s);
	}
}

static void check_hash(const void *secret, size_t len, const char *want)
{
	char out[ONCE_SECRET_LEN + 1];
	memset(out, 'X', sizeof out);
	ASSERT_ST(once_secret_hash(secret, len, out), ONCE_OK);
	assert_b64url43(out);
	ASSERT_STR(out, want);
}

static void test_hash_empty_vector(void)
{
	check_hash("", 0, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
}

static void test_hash_empty_null_secret_ok(void)
{
	/* NULL with length 0 is the empty string, not an error. */
	check_hash(NULL, 0, "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
}

static void test_hash_abc_vector(void)
{
	check_hash("abc", 3, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

static void test_hash_fox_vector(void)
{
	const char *s = "The quick brown fox jumps over the lazy dog";
	check_hash(s, strlen(s), "16j7swfXgJRpypq8sAguT41WUeRtPNt2LQLQvzfJ5ZI");
}

static void test_hash_binary_vector_with_zero_bytes(void)
{
	/* bytes 0x00..0xff: the length counts, not a NUL terminator. */
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	check_hash(all, sizeof all, "QK_y6dLYki5Hr9RkjmlnSXFYeF-9Hahw5xECZr-USIA");
}

static void test_hash_uses_only_len_bytes(void)
{
	/* "abcdef" hashed with len 3 is the hash of "abc". */
	check_hash("abcdef", 3, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

static void test_hash_null_out_invalid(void)
{
	ASSERT_ST(once_secret_hash("abc", 3, NULL), ONCE_INVALID);
}

static void test_hash_null_secret_with_len_invalid(void)
{
	char out[ONCE_SECRET_LEN + 1];
	memset(out, 'X', sizeof out);
	ASSERT_ST(once_secret_hash(NULL, 5, out), ONCE_INVALID);
	for (size_t i = 0; i < sizeof out; i++)
		ASSERT_EQ_INT(out[i], 'X'); /* untouched on failure */
}

static void test_generate_shape(void)
{
	char out[ONCE_SECRET_LEN + 1];
	memset(out, 'X', sizeof out);
	ASSERT_ST(once_secret_generate(out), ONCE_OK);
	assert_b64url43(out);
}

static int cmp_secret(const void *a, const void *b)
{
	return memcmp(a, b, ONCE_SECRET_LEN + 1);
}

static void test_generate_1000_distinct(void)
{
	enum { N = 1000 };
	static char all[N][ONCE_SECRET_LEN + 1];
	for (int i = 0; i < N; i++) {
		ASSERT_ST(once_secret_generate(all[i]), ONCE_OK);
		assert_b64url43(all[i]);
	}
	qsort(all, N, sizeof all[0], cmp_secret);
	for (int i = 1; i < N; i++)
		if (strcmp(all[i - 1], all[i]) == 0)
			FAIL_AT("generated the same secret twice: %s", all[i]);
}

static void test_generate_null_invalid(void)
{
	ASSERT_ST(once_secret_generate(NULL), ONCE_INVALID);
}

/* AttestoPhoenix's replay key for a DPoP proof: base64url(SHA-256(jkt ":"
 * jti)); the expected value is Python's hashlib over the same bytes. */
static void test_dpop_replay_key_vector(void)
{
	const char *jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
	const char *jti = "e1j3V_bKic8-LAEB";
	char out[ONCE_SECRET_LEN + 1];
	ASSERT_ST(once_dpop_replay_key(jkt, strlen(jkt), jti, strlen(jti), out), ONCE_OK);
	ASSERT_STR(out, "1Y44floOcNjf93Di2msDXh9JS0GQzp7ZFDVNphUUpPw");
	/* The separator matters: "ab" ":" "c" is not "a" ":" "bc". */
	char other[ONCE_SECRET_LEN + 1];
	ASSERT_ST(once_dpop_replay_key("a", 1, "b:c", 3, out), ONCE_OK);
	ASSERT_ST(once_dpop_replay_key("a:b", 3, "c", 1, other), ONCE_OK);
	ASSERT(strcmp(out, other) == 0); /* same bytes "a:b:c": documented, not a bug */
	ASSERT_ST(once_dpop_replay_key("ab", 2, "c", 1, other), ONCE_OK);
	ASSERT(strcmp(out, other) != 0);
}

static void test_dpop_replay_key_invalid(void)
{
	char out[ONCE_SECRET_LEN + 1];
	ASSERT_ST(once_dpop_replay_key(NULL, 1, "j", 1, out), ONCE_INVALID);
	ASSERT_ST(once_dpop_replay_key("k", 0, "j", 1, out), ONCE_INVALID);
	ASSERT_ST(once_dpop_replay_key("k", 1, NULL, 1, out), ONCE_INVALID);
	ASSERT_ST(once_dpop_replay_key("k", 1, "j", 0, out), ONCE_INVALID);
	ASSERT_ST(once_dpop_replay_key("k", 1, "j", 1, NULL), ONCE_INVALID);
}

TESTS(TEST(test_dpop_replay_key_vector), TEST(test_dpop_replay_key_invalid),
      TEST(test_hash_empty_vector), TEST(test_hash_empty_null_secret_ok),
      TEST(test_hash_abc_vector), TEST(test_hash_fox_vector),
      TEST(test_hash_binary_vector_with_zero_bytes), TEST(test_hash_uses_only_len_bytes),
      TEST(test_hash_null_out_invalid), TEST(test_hash_null_secret_with_len_invalid),
      TEST(test_generate_shape), TEST(test_generate_1000_distinct),
      TEST(test_generate_null_invalid));
TEST_MAIN()
