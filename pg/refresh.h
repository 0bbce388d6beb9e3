/*
 * pg/refresh.h - what the refresh-token files of pg/ share:
 *
 *   pg/refresh.c            the operations (insert, get, consume, remember,
 *                           rotate, revoke) and their transactions
 *   pg/refresh_row.c        checking a caller's record against the layout;
 *                           decoding a token row; building the caller's copy
 *   pg/refresh_successor.c  sealing a rotation's successor and recovering
 *                           one from a row (with AttestoPhoenix's lineage
 *                           check); the sweeper's redaction
 *
 * A token row is attesto_refresh_tokens (ATTESTO-PG 1.2, 2.2.1).  Every
 * read selects ONCE_PG_REFRESH_COLUMNS, in the order of enum
 * once__pg_refresh_col, so one decoder serves every statement.
 */
#ifndef ONCE_PG_REFRESH_H
#define ONCE_PG_REFRESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pg.h"

/* The columns every read of a token row selects (alias r). */
#define ONCE_PG_REFRESH_COLUMNS                                                                    \
	"r.id, r.token_hash, r.family_id, r.generation, r.client_id, r.subject, r.scope, "         \
	"r.resource, r.acr, r.auth_time, r.family_expires_at, r.attestation_jkt, r.cnf, "          \
	"r.claims, r.consumed, r.consumed_at, r.successor, r.family_revoked, r.expires_at, "       \
	"r.parent_hash, r.inserted_at"

enum once__pg_refresh_col {
	ONCE_PG_COL_ID = 0,
	ONCE_PG_COL_TOKEN_HASH,
	ONCE_PG_COL_FAMILY_ID,
	ONCE_PG_COL_GENERATION,
	ONCE_PG_COL_CLIENT_ID,
	ONCE_PG_COL_SUBJECT,
	ONCE_PG_COL_SCOPE,
	ONCE_PG_COL_RESOURCE,
	ONCE_PG_COL_ACR,
	ONCE_PG_COL_AUTH_TIME,
	ONCE_PG_COL_FAMILY_EXPIRES_AT,
	ONCE_PG_COL_ATTESTATION_JKT,
	ONCE_PG_COL_CNF,
	ONCE_PG_COL_CLAIMS,
	ONCE_PG_COL_CONSUMED,
	ONCE_PG_COL_CONSUMED_AT,
	ONCE_PG_COL_SUCCESSOR,
	ONCE_PG_COL_FAMILY_REVOKED,
	ONCE_PG_COL_EXPIRES_AT,
	ONCE_PG_COL_PARENT_HASH,
	ONCE_PG_COL_INSERTED_AT,
	ONCE_PG_COL_COUNT
};

/* The lineage read (core's get/1 child lookup, ATTESTO-PG 2.2.3): $1 the
 * child's hash, $2 the family, $3 the generation. */
#define ONCE_PG_REFRESH_GET_CHILD_SQL                                                              \
	"SELECT " ONCE_PG_REFRESH_COLUMNS " FROM {refresh} r"                                      \
	" WHERE r.token_hash = $1 AND r.family_id = $2 AND r.generation = $3::integer"

/* The issuer condition every read that serves a token adds (ATTESTO-PG
 * 2.2.7): with pg_issuer set ($n not NULL), a family bound to another
 * issuer, or to none, is not selected.  jsonb equality with to_jsonb: a
 * claim that is a number or an object never equals the issuer string. */
#define ONCE_PG_ISSUER_MATCHES(n)                                                                  \
	"(" n "::text IS NULL OR r.claims -> 'urn:attesto:refresh-token:issuer' = "                \
	"to_jsonb(" n "::text))"

/*
 * A token row decoded.  Text fields point into the PGresult it came from
 * (which must outlive the row); lists, dpop_jkt and claims are owned and
 * released by once__pg_row_free.
 */
struct once__pg_row {
	const char *id;          /* uuid */
	const char *token_hash;  /* the key */
	const char *family_id;
	int64_t generation;
	const char *client_id;   /* NULL when NULL */
	const char *subject;
	char **scope;            /* duplicates as stored (AttestoPhoenix keeps them) */
	size_t scope_count;
	char **resource;
	size_t resource_count;
	const char *acr;
	bool has_auth_time;      /* auth_time is not NULL */
	int64_t auth_time;       /* 0 when NULL */
	bool has_family_expires_at;
	int64_t family_expires_at;
	const char *attestation_jkt; /* NULL when NULL */
	char *dpop_jkt;          /* cnf.jkt; NULL when cnf is NULL */
	const char *claims_json; /* the jsonb as the server printed it */
	char *claims;            /* compact, for the caller; NULL when {} */
	size_t claims_len;
	bool consumed;
	int64_t consumed_at;     /* 0 when NULL */
	const char *successor;   /* the jsonb as printed, NULL when NULL */
	bool family_revoked;     /* the legacy flag (read as revoked) */
	int64_t expires_at;
	const char *parent_hash; /* NULL when NULL */
	int64_t inserted_at;
};

/* Decodes row i of res (ONCE_PG_REFRESH_COLUMNS).  ONCE_INVALID when the
 * row does not hold what the layout says (a cnf other than {"jkt":...},
 * claims that are not an object, an unreadable time or array): such a row
 * is served to nobody.  ONCE_NOMEM.  *row is freeable on every status. */
once_status once__pg_row_read(const PGresult *res, int i, struct once__pg_row *row);
void once__pg_row_free(struct once__pg_row *row);

/* The caller's copy of a row: one heap block (once_free), consumed and
 * consumed_at as the row holds them, revoked false, and successor (len
 * bytes, may be NULL) appended.  NULL on NOMEM. */
once_refresh *once__pg_row_record(const struct once__pg_row *row, const void *successor,
                                  size_t successor_len);

/* ---- a new row (pg/refresh_row.c) ---- */

/*
 * The statement parameters of a new token row, checked: everything
 * once_refresh_insert's ONCE_INVALID lists, plus what the layout refuses
 * (ATTESTO-PG 6.6: text over varchar(255), a key over 88 bytes, claims
 * that are not a portable JSON object, a generation outside integer,
 * x5t_s256 which the layout cannot hold, a dpop_jkt that is not a 43
 * character thumbprint, which AttestoPhoenix refuses to read).
 */
struct once__pg_new_row {
	char id[37];
	char generation[24];
	char auth_time[24];  /* "" stands for NULL */
	char expires_at[32];
	char inserted_at[32];
	char *scope;         /* varchar[] literals (malloc'd) */
	char *resource;
	char *cnf;           /* {"jkt":...} or NULL (malloc'd) */
	char *claims;        /* compact JSON with the issuer claim (malloc'd) */
};
once_status once__pg_new_row_make(struct once__pg *p, const once_refresh *r,
                                  struct once__pg_new_row *out);
void once__pg_new_row_free(struct once__pg_new_row *nr);

/* ---- successors (pg/refresh_successor.c) ---- */

/*
 * The successor jsonb that rotating `parent` (the locked row) at
 * rotated_at writes into it, in *out (malloc'd): AttestoPhoenix's v2
 * envelope sealing `token` (the child's plaintext, whose Secret.hash is
 * child->token_hash) with context = the child's data and retry_until =
 * min(rotated_at + grace, child expires_at - 1), when the store has a
 * secret, a positive grace and a token; otherwise the strict tombstone
 * {"v":1,"retry_until":rotated_at,"recoverable":false} (ATTESTO-PG
 * 2.2.4).  `child` is the child's row as it is (or is about to be)
 * stored.  ONCE_NOMEM; ONCE_INVALID when the child's data cannot be
 * sealed (it was checked before: a bug guard).
 */
once_status once__pg_refresh_seal(struct once__pg *p, const struct once__pg_row *parent,
                                  const struct once__pg_row *child, const char *token,
                                  size_t token_len, int64_t rotated_at, char **out);

/*
 * The successor token that `row`'s successor column holds, when it can be
 * recovered: a v2 envelope that opens under the store's secret with this
 * row's binding, or a v1 one, and AttestoPhoenix's lineage check holds
 * (ATTESTO-PG 2.2.3 get/1: the child row with token_hash =
 * Secret.hash(token) exists in the same family at generation + 1, its
 * parent_hash is this row's hash (v1: or NULL), and its data equals the
 * sealed context).  *token (malloc'd, NUL-terminated; *len without the
 * NUL) is NULL otherwise: a successor that fails any check reads as
 * absent, never as garbage.  ONCE_IO when the lineage read failed (in a
 * transaction, the caller rolls back); ONCE_NOMEM.
 */
once_status once__pg_refresh_successor(struct once__pg *p, struct once__pg_conn *c,
                                       const struct once__pg_row *row, char **token,
                                       size_t *len);

#endif /* ONCE_PG_REFRESH_H */
