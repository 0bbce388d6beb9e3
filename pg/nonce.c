/*
 * pg/nonce.c - DPoP server nonces on dpop_nonces (ATTESTO-PG 2.3,
 * EctoNonceStore).
 *
 * A nonce is 32 CSPRNG bytes in base64url (43 characters), stored in
 * plaintext and unique, with issued_at = now and expires_at = now + ttl
 * (saturating at ONCE_TIME_MAX), in whole UTC seconds.
 *
 * valid is AttestoPhoenix's read-only check: unused and expires_at > now.
 * accept is its consuming UPDATE (with the 3.x expires_at clause): one
 * statement, so of concurrent accepts exactly one changes the row.  Note
 * that AttestoPhoenix's own DPoP path calls valid, never accept (6.12).
 *
 * expires_at is compared strictly (expires_at > now), as AttestoPhoenix
 * does: at now == expires_at a nonce is no longer valid here, where the
 * embedded engine still takes it.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pg.h"

static const struct once__pg_sql nonce_issue_sql = {
	ONCE_PG_NONCE_ISSUE,
	"INSERT INTO {nonces} (id, nonce, issued_at, expires_at, used_at) "
	"VALUES ($1::uuid, $2, $3::timestamp, $4::timestamp, NULL) ON CONFLICT DO NOTHING",
	4,
};

static const struct once__pg_sql nonce_valid_sql = {
	ONCE_PG_NONCE_VALID,
	"SELECT TRUE FROM {nonces} WHERE nonce = $1 AND used_at IS NULL AND expires_at > $2::timestamp "
	"LIMIT 1",
	2,
};

static const struct once__pg_sql nonce_accept_sql = {
	ONCE_PG_NONCE_ACCEPT,
	"UPDATE {nonces} SET used_at = $2::timestamp WHERE nonce = $1 AND used_at IS NULL "
	"AND issued_at >= $3::timestamp AND expires_at > $2::timestamp",
	3,
};

static const struct once__pg_sql nonce_accept_loser_sql = {
	ONCE_PG_NONCE_ACCEPT_LOSER,
	"SELECT used_at IS NOT NULL FROM {nonces} WHERE nonce = $1",
	1,
};

/* Draws a fresh nonce and id until one inserts: a collision (2^-256 for
 * the nonce, 2^-122 for the uuid) inserted nothing, so trying again
 * cannot apply twice. */
static once_status issue(struct once__pg *p, int64_t ttl, char out[ONCE_NONCE_LEN + 1])
{
	if (!once__ttl_valid(ttl) || p->opt.max_key_len < ONCE_NONCE_LEN)
		return ONCE_INVALID;
	int64_t now = once__pg_now(p);
	char issued[32], expires[32];
	once__pg_time_text(now, issued);
	once__pg_time_text(once__time_add(now, ttl), expires);
	for (int attempt = 0; attempt < 3; attempt++) {
		unsigned char raw[32];
		char nonce[ONCE_NONCE_LEN + 1], id[37];
		once__random(raw, sizeof raw);
		once__b64url32_public(raw, nonce);
		once__pg_uuid(id);
		PGresult *r;
		once_status st = once__pg_exec(p, &nonce_issue_sql,
		                               (const char *const[]){id, nonce, issued, expires}, &r);
		if (st != ONCE_OK)
			return st;
		uint64_t rows = once__pg_rows(r);
		PQclear(r);
		if (rows == 1) {
			memcpy(out, nonce, sizeof nonce);
			return ONCE_OK;
		}
	}
	return ONCE_IO; /* three collisions: the generator is broken */
}

once_status once__pg_nonce_issue(once_store *s, int64_t ttl_seconds,
                                 char out[ONCE_NONCE_LEN + 1], once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	if (out == NULL)
		return once__pg_count(p, ONCE_OP_NONCE_ISSUE, ONCE_INVALID);
	return once__pg_count(p, ONCE_OP_NONCE_ISSUE, issue(p, ttl_seconds, out));
}

/* A presented nonce as a parameter.  One that no row can hold (not
 * UTF-8, a NUL, longer than the column) was never issued: `absent`. */
static once_status nonce_param(const struct once__pg *p, const void *nonce, size_t len,
                               once_status absent, char **out)
{
	if (nonce == NULL || len == 0 || len > p->opt.max_key_len)
		return ONCE_INVALID;
	if (!once__pg_text_fits(nonce, len, ONCE_PG_IDENT_MAX))
		return absent;
	*out = once__pg_key_text(nonce, len, ONCE_PG_IDENT_MAX);
	return *out ? ONCE_OK : ONCE_NOMEM;
}

static once_status valid(struct once__pg *p, const void *nonce, size_t len)
{
	char *n = NULL;
	once_status st = nonce_param(p, nonce, len, ONCE_NOT_FOUND, &n);
	if (st != ONCE_OK)
		return st;
	char now[32];
	once__pg_time_text(once__pg_now(p), now);
	PGresult *r;
	st = once__pg_exec(p, &nonce_valid_sql, (const char *const[]){n, now}, &r);
	free(n);
	if (st != ONCE_OK)
		return st;
	st = once__pg_rows(r) > 0 ? ONCE_OK : ONCE_NOT_FOUND;
	PQclear(r);
	return st;
}

/* False on every failure (fail closed: the proof is refused). */
bool once__pg_nonce_valid(once_store *s, const void *nonce, size_t len)
{
	struct once__pg *p = once__pg_of(s);
	once_status st = valid(p, nonce, len);
	once__pg_count(p, ONCE_OP_NONCE_VALID, st == ONCE_INVALID ? ONCE_NOT_FOUND : st);
	return st == ONCE_OK;
}

/* The accept changed nothing: used (SPENT, checked first), present but
 * stale or past its expiry (EXPIRED), or unknown (NOT_FOUND). */
static once_status accept_lost(struct once__pg *p, struct once__pg_conn *c, const char *n)
{
	PGresult *r = once__pg_run(p, c, &nonce_accept_loser_sql, (const char *const[]){n}, NULL);
	if (r == NULL)
		return ONCE_IO;
	once_status st = once__pg_rows(r) == 0                      ? ONCE_NOT_FOUND
	                 : strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? ONCE_SPENT
	                                                          : ONCE_EXPIRED;
	PQclear(r);
	return st;
}

static once_status accept(struct once__pg *p, const void *nonce, size_t len, int64_t ttl)
{
	if (!once__ttl_valid(ttl))
		return ONCE_INVALID;
	char *n = NULL;
	once_status st = nonce_param(p, nonce, len, ONCE_NOT_FOUND, &n);
	if (st != ONCE_OK)
		return st;
	struct once__pg_conn *c;
	st = once__pg_acquire(p, &c);
	if (st == ONCE_OK) {
		int64_t now = once__pg_now(p); /* >= ONCE_TIME_MIN: now - ttl cannot overflow */
		char now_text[32], fresh_from[32];
		once__pg_time_text(now, now_text);
		once__pg_time_text(now - ttl, fresh_from); /* before 1970 reads as 1970 */
		PGresult *r = once__pg_run(p, c, &nonce_accept_sql,
		                           (const char *const[]){n, now_text, fresh_from}, NULL);
		if (r == NULL)
			st = ONCE_IO;
		else if (once__pg_rows(r) != 1)
			st = accept_lost(p, c, n);
		PQclear(r);
		once__pg_release(p, c);
	}
	free(n);
	return st;
}

once_status once__pg_nonce_accept(once_store *s, const void *nonce, size_t len,
                                  int64_t ttl_seconds, once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_NONCE_ACCEPT, accept(p, nonce, len, ttl_seconds));
}
