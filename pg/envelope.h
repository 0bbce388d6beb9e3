/*
 * pg/envelope.h - the refresh `successor` column of AttestoPhoenix 3.5.1,
 * byte for byte (ATTESTO-PG 2.2.4 - 2.2.6), so a retry after a lost
 * response is honoured whichever node, C or Elixir, rotated the parent.
 *
 * The column holds one of three jsonb shapes, with exact key sets:
 *
 *   v2         {"v":2,"ciphertext":"XCP.…","retry_until":N,"child_hash":H}
 *   tombstone  {"v":1,"retry_until":N,"recoverable":false}
 *   v1         {"v":1,"ciphertext":"XCP.…"}    (2.x; read, never written)
 *
 * Anything else, a plaintext map included, is malformed: no successor.
 *
 * The ciphertext (plug_crypto MessageEncryptor, XChaCha20-Poly1305) is
 *   "XCP." || base64url_nopad(iv(24) || tag(16) || ciphertext)
 * under key SHA-256("refresh-successor:enc:" || secret), the secret being
 * AttestoPhoenix's refresh_successor_secret (at least 32 bytes).  The
 * additional data binds a v2 ciphertext to its rows:
 *   term_to_binary({"attesto_phoenix:refresh_successor:v1", parent_hash,
 *                   family_id, parent_generation, child_hash, retry_until})
 * and is the 36 ASCII bytes "attesto_phoenix:refresh_successor:v1" for v1.
 * The plaintext is term_to_binary of the payload map
 *   token, generation, context, retry_until (v1: no retry_until)
 * where context has exactly subject, scope, resource, client_id, dpop_jkt,
 * acr, auth_time, claims, and family_expires_at and attestation_jkt only
 * when set.  This side writes binary keys (AttestoPhoenix reads either
 * all-atom or all-binary keys) and reads both, in any order.
 */
#ifndef ONCE_PG_ENVELOPE_H
#define ONCE_PG_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oncestore.h"

/* The shortest refresh_successor_secret AttestoPhoenix accepts. */
#define ONCE_PG_SUCCESSOR_SECRET_MIN 32
/* Attesto Secret.hash: base64url_nopad(SHA-256), 43 characters. */
#define ONCE_PG_SECRET_HASH_LEN 43
/* The deepest claims a successor can carry: objects and arrays nested at
 * most this deep, the claims object itself counting 1 (the payload map,
 * the context and the innermost scalars take the rest of
 * ONCE_ETF_MAX_DEPTH).  Claims a writer accepts must stay within it, or
 * their rotation cannot be sealed. */
#define ONCE_PG_CLAIMS_MAX_DEPTH 61
/* Room for the tombstone text with any int64 retry_until, and its NUL. */
#define ONCE_PG_TOMBSTONE_MAX 80

/* The parent row a v2 successor is stored on, as the AAD names it. */
struct once__pg_successor_row {
	const char *parent_hash; /* the parent's token_hash */
	const char *family_id;
	int64_t parent_generation;
};

/* The child's data: the core's record contract (ATTESTO-PG 2.2.1). */
struct once__pg_successor_context {
	const char *subject;
	const char *const *scope; /* nscope strings */
	size_t nscope;
	const char *const *resource; /* nresource strings */
	size_t nresource;
	const char *client_id; /* NULL: nil */
	const char *dpop_jkt;  /* NULL: nil (the child's cnf.jkt) */
	const char *acr;       /* NULL: nil */
	bool has_auth_time;    /* false: nil */
	int64_t auth_time;
	const char *claims; /* a JSON object's text; NULL when building: {} */
	bool has_family_expires_at; /* false: the key is absent */
	int64_t family_expires_at;
	const char *attestation_jkt; /* NULL: the key is absent */
};

/*
 * A successor.  Built by the caller for once__pg_successor_seal (pointers
 * borrowed); filled by once__pg_successor_open / _decode with malloc'd
 * copies that once__pg_successor_free releases.  When decoded: token is
 * NUL-terminated as well (token_len excludes the NUL), strings hold no
 * NUL, claims is compact JSON with sorted keys, and an optional context
 * key written as nil reads as absent.
 */
struct once__pg_successor {
	const char *token; /* the child token as handed to the client */
	size_t token_len;
	int64_t generation; /* the child's: 0 .. INT32_MAX (an integer column) */
	bool has_retry_until; /* true in v2, false in v1 */
	int64_t retry_until;
	struct once__pg_successor_context context;
};

void once__pg_successor_free(struct once__pg_successor *s);

/* ---- sealing ---- */

/*
 * The v2 column text for succ stored on row: the jsonb object above, with
 * child_hash = Secret.hash(succ->token) and retry_until from succ, in *out
 * (malloc'd, NUL-terminated).
 * ONCE_NO_KEY: secret NULL or shorter than ONCE_PG_SUCCESSOR_SECRET_MIN
 *   (AttestoPhoenix then answers retry_state_unavailable and mutates
 *   nothing).
 * ONCE_INVALID: succ has no retry_until, claims that are not a portable
 *   JSON object, a NULL where a string is required, nesting too deep.
 * ONCE_NOMEM.  *out untouched on failure.
 */
once_status once__pg_successor_seal(const void *secret, size_t secret_len,
                                    const struct once__pg_successor_row *row,
                                    const struct once__pg_successor *succ, char **out);

/* The strict tombstone, {"v":1,"retry_until":N,"recoverable":false}: what
 * a rotation writes with grace 0 or no secret, and what redaction leaves. */
void once__pg_successor_tombstone(int64_t retry_until, char out[ONCE_PG_TOMBSTONE_MAX]);

/* ---- opening ---- */

/* What a column holds, by shape alone. */
enum once__pg_envelope_kind {
	ONCE_PG_ENVELOPE_MALFORMED = 0,
	ONCE_PG_ENVELOPE_TOMBSTONE,
	ONCE_PG_ENVELOPE_V1,
	ONCE_PG_ENVELOPE_V2
};

/* Classifies the column's text (len bytes, jsonb as the server prints it
 * or as written).  *retry_until (may be NULL) receives the outer
 * retry_until for V2 and TOMBSTONE. */
enum once__pg_envelope_kind once__pg_envelope_classify(const char *text, size_t len,
                                                       int64_t *retry_until);

/* The outcome of once__pg_successor_open.  Only V2 and V1 give a
 * successor; every other value means "no successor", and says why. */
enum once__pg_open {
	ONCE_PG_OPEN_V2 = 0,   /* *out filled; retry_until checked inside and out */
	ONCE_PG_OPEN_V1,       /* *out filled, no retry_until: the caller derives
	                        * min(consumed_at + grace, expires_at - 1) and must
	                        * check lineage first (v1 binds no rows; 2.2.4) */
	ONCE_PG_OPEN_TOMBSTONE,      /* a strict tombstone */
	ONCE_PG_OPEN_MALFORMED,      /* none of the three shapes */
	ONCE_PG_OPEN_NO_SECRET,      /* secret NULL or under 32 bytes */
	ONCE_PG_OPEN_BAD_WIRE,       /* not "XCP." + base64url of iv, tag, ciphertext */
	ONCE_PG_OPEN_AUTH,           /* did not decrypt: another secret, another row
	                              * (parent hash, family, generation), another
	                              * child_hash or retry_until, or tampered bytes */
	ONCE_PG_OPEN_PAYLOAD,        /* decrypted, but not a payload of exact shape */
	ONCE_PG_OPEN_RETRY_MISMATCH, /* inner retry_until differs from the outer */
	ONCE_PG_OPEN_CHILD_HASH,     /* child_hash is not Secret.hash(token) */
	ONCE_PG_OPEN_NOMEM
};

/*
 * Opens the successor column text (len bytes) of the parent row `row`
 * (parent_hash = its token_hash, its family_id and generation).  On V2
 * and V1, *out receives the successor (free with once__pg_successor_free);
 * otherwise *out is untouched.  The caller still checks the lineage
 * (ATTESTO-PG 2.2.3 get/1): the child row with Secret.hash(token), the
 * family, generation + 1, and data equal to the context.
 */
enum once__pg_open once__pg_successor_open(const void *secret, size_t secret_len,
                                           const struct once__pg_successor_row *row,
                                           const char *text, size_t len,
                                           struct once__pg_successor *out);

/* ---- the pieces, for tests and the lead ---- */

/* term_to_binary(payload) with binary keys: retry_until is written when
 * succ->has_retry_until (v2).  *etf malloc'd.  ONCE_INVALID, ONCE_NOMEM
 * as for seal; *etf untouched on failure. */
once_status once__pg_successor_encode(const struct once__pg_successor *succ, unsigned char **etf,
                                      size_t *len);
/* binary_to_term(etf, [safe]) as a payload of exact shape: v2 demands
 * retry_until, v1 refuses it.  ONCE_INVALID, ONCE_NOMEM; *out untouched
 * on failure. */
once_status once__pg_successor_decode(const uint8_t *etf, size_t len, bool v2,
                                      struct once__pg_successor *out);
/* The v2 additional data (*aad malloc'd).  ONCE_INVALID (a NULL string),
 * ONCE_NOMEM. */
once_status once__pg_successor_aad(const struct once__pg_successor_row *row,
                                   const char *child_hash, int64_t retry_until,
                                   unsigned char **aad, size_t *len);

/* Attesto Secret.hash(s): base64url_nopad(SHA-256(s)), 43 characters. */
void once__pg_secret_hash(const void *s, size_t len, char out[ONCE_PG_SECRET_HASH_LEN + 1]);

#endif /* ONCE_PG_ENVELOPE_H */
