/*
 * pg/sweep.c - AttestoPhoenix's sweeper (ATTESTO-PG 4), in bounded
 * batches.
 *
 * One `now` (whole seconds from the store clock) for every table and a
 * strict `<`: a row whose expires_at equals now is kept, as the embedded
 * engine keeps it.  Order as AttestoPhoenix's: first the refresh
 * successor redaction (2.2.6, once__pg_sweep_redact in
 * pg/refresh_successor.c: an expired successor's ciphertext must not
 * outlive it), then codes, refresh tokens, nonces, replays.  Family
 * tombstones are never swept.  A failed step stops only what depends on
 * it: the refresh delete waits for a redaction that succeeded.
 *
 * A code row is kept past its expiry while the access token recorded on it
 * lives (the 3.x clause): revocation of that token still has to work.
 *
 * Each statement deletes at most BATCH rows, chosen by ctid in a
 * sub-select, and the sweep repeats it until a batch comes back short, so
 * no statement holds row locks on a large set or runs long enough to meet
 * statement_timeout.  The outer DELETE repeats the condition: a row
 * updated between the sub-select and the delete is re-checked on its
 * newest version and kept unless it still qualifies.
 */
#include "internal.h"
#include "pg.h"

#define BATCH "1000"
#define BATCH_ROWS 1000

#define BATCHED_DELETE(table, cond)                                                                \
	"DELETE FROM " table " WHERE ctid = ANY (ARRAY(SELECT ctid FROM " table " WHERE " cond      \
	" LIMIT " BATCH ")) AND " cond

#define CODE_EXPIRED                                                                               \
	"expires_at < $1::timestamp AND (access_token_jti IS NULL OR access_token_jti = '' "       \
	"OR access_token_expires_at IS NULL OR access_token_expires_at <= $1::timestamp)"
#define EXPIRED "expires_at < $1::timestamp"

static const struct once__pg_sql sweep_codes_sql = {
	ONCE_PG_SWEEP_CODES, BATCHED_DELETE("{codes}", CODE_EXPIRED), 1};
static const struct once__pg_sql sweep_refresh_sql = {
	ONCE_PG_SWEEP_REFRESH, BATCHED_DELETE("{refresh}", EXPIRED), 1};
static const struct once__pg_sql sweep_nonces_sql = {
	ONCE_PG_SWEEP_NONCES, BATCHED_DELETE("{nonces}", EXPIRED), 1};
static const struct once__pg_sql sweep_replays_sql = {
	ONCE_PG_SWEEP_REPLAYS, BATCHED_DELETE("{replays}", EXPIRED), 1};

/* Deletes in batches until one comes back short; *removed counts them. */
static once_status sweep_table(struct once__pg *p, const struct once__pg_sql *sql,
                               const char *now, uint64_t *removed)
{
	struct once__pg_conn *c;
	once_status st = once__pg_acquire(p, &c);
	if (st != ONCE_OK)
		return st;
	uint64_t rows;
	do {
		PGresult *r = once__pg_run(p, c, sql, (const char *const[]){now}, NULL);
		if (r == NULL) {
			st = ONCE_IO;
			break;
		}
		rows = once__pg_rows(r);
		PQclear(r);
		*removed += rows;
	} while (rows >= BATCH_ROWS);
	once__pg_release(p, c);
	return st;
}

static once_status redact(struct once__pg *p, int64_t now)
{
	struct once__pg_conn *c;
	once_status st = once__pg_acquire(p, &c);
	if (st != ONCE_OK)
		return st;
	st = once__pg_sweep_redact(p, c, now);
	once__pg_release(p, c);
	return st;
}

static once_status first_failure(once_status a, once_status b)
{
	return a != ONCE_OK ? a : b;
}

/*
 * Each step takes its own connection: a step that failed (a statement
 * timeout drops the connection, pg/pool.c P2) does not fail the next.
 * Only the refresh delete depends on redaction (a successor is redacted
 * before its row may go, ATTESTO-PG 4); codes, nonces and replays are
 * swept whatever happened to the refresh table, so a refresh table too
 * large to redact within statement_timeout cannot keep expired codes,
 * nonces and replays forever.
 */
static once_status sweep(struct once__pg *p, once_sweep_counts *counts)
{
	int64_t now = once__pg_now(p);
	char now_text[32];
	once__pg_time_text(now, now_text);
	once_status redacted = redact(p, now);
	once_status st = redacted;
	st = first_failure(st, sweep_table(p, &sweep_codes_sql, now_text, &counts->codes));
	if (redacted == ONCE_OK)
		st = first_failure(st, sweep_table(p, &sweep_refresh_sql, now_text, &counts->refresh));
	st = first_failure(st, sweep_table(p, &sweep_nonces_sql, now_text, &counts->nonces));
	st = first_failure(st, sweep_table(p, &sweep_replays_sql, now_text, &counts->replays));
	/* Access tokens live on code rows and go with them: not counted apart.
	 * The sub-selects visit the rows they delete (by index, but for
	 * dpop_nonces, which has no expires_at index: 1.2). */
	counts->examined = counts->codes + counts->refresh + counts->nonces + counts->replays;
	return st;
}

/* Returns ONCE_OK, or ONCE_IO when a step failed (the other steps still
 * ran, but the refresh delete after a failed redaction; what was deleted
 * stays deleted and is counted in *out). */
once_status once__pg_sweep(once_store *s, once_sweep_counts *out)
{
	struct once__pg *p = once__pg_of(s);
	once_sweep_counts counts = {0};
	once_status st = sweep(p, &counts);
	atomic_fetch_add(&p->sweeps, 1);
	if (out != NULL)
		*out = counts;
	return st;
}
