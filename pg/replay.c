/*
 * pg/replay.c - the DPoP proof replay cache on dpop_replays (ATTESTO-PG
 * 2.4, EctoReplayCheck).
 *
 * One INSERT ... ON CONFLICT (jti) DO NOTHING: the primary key decides,
 * so of concurrent checks of one key exactly one inserts (OK) and the
 * others change nothing (SPENT).  A present row is a replay whether or not
 * it has expired; only the sweep removes it.
 *
 * The table is shared with AttestoPhoenix's other writers (client
 * assertions, ID-JAG, CIBA: section 3): the key is stored as the caller
 * gives it; for DPoP interop the caller passes AttestoPhoenix's replay_key
 * (base64url(SHA-256(jkt ":" jti))) with a ttl of at least 121 s (6.11).
 * The columns are timestamp(6); we write whole seconds.
 */
#include <stdlib.h>

#include "internal.h"
#include "pg.h"

static const struct once__pg_sql replay_check_sql = {
	ONCE_PG_REPLAY_CHECK,
	"INSERT INTO {replays} (jti, expires_at, inserted_at) "
	"VALUES ($1, $2::timestamp, $3::timestamp) ON CONFLICT (jti) DO NOTHING",
	3,
};

static once_status check(struct once__pg *p, const void *jti, size_t len, int64_t ttl)
{
	if (!once__ttl_valid(ttl) || jti == NULL || len == 0 || len > p->opt.max_key_len ||
	    !once__pg_text_fits(jti, len, ONCE_PG_IDENT_MAX))
		return ONCE_INVALID;
	char *key = once__pg_key_text(jti, len, ONCE_PG_IDENT_MAX);
	if (key == NULL)
		return ONCE_NOMEM;
	int64_t now = once__pg_now(p);
	char inserted[32], expires[32];
	once__pg_time_text(now, inserted);
	once__pg_time_text(once__time_add(now, ttl), expires);
	PGresult *r;
	once_status st = once__pg_exec(p, &replay_check_sql,
	                               (const char *const[]){key, expires, inserted}, &r);
	free(key);
	if (st != ONCE_OK)
		return st;
	st = once__pg_rows(r) == 1 ? ONCE_OK : ONCE_SPENT;
	PQclear(r);
	return st;
}

once_status once__pg_replay_check(once_store *s, const void *jti, size_t len,
                                  int64_t ttl_seconds, once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_REPLAY_CHECK, check(p, jti, len, ttl_seconds));
}
