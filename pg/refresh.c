/*
 * pg/refresh.c - refresh tokens on PostgreSQL: AttestoPhoenix 3.5.1's
 * EctoRefreshStore statements and transactions (ATTESTO-PG 2.2), behind
 * the public API's refresh calls.
 *
 * Invariants, as the embedded engine states them (core/refresh.c) and
 * how they hold here:
 *   R1. Of concurrent consumes / rotations of one token exactly one gets
 *       OK: consume is one UPDATE ... WHERE NOT consumed, rotation a
 *       SELECT ... FOR UPDATE then an UPDATE in one transaction; the row
 *       lock orders them, and each re-reads `consumed` after the lock
 *       (READ COMMITTED re-checks an UPDATE's WHERE on the newest row).
 *   R2. From the moment revoke_family returns, no token of the family
 *       reads as live and no insert or rotation that starts later gets OK:
 *       revocation writes a tombstone (never deleted) and deletes the
 *       rows under the family's advisory lock; insert and rotation take
 *       the same lock and check the tombstone after it; reads join it.
 *   R3. A rotation is all or nothing: one transaction.
 *
 * Every writer of these tables - this engine and AttestoPhoenix nodes -
 * serialises a family on pg_advisory_xact_lock(1096045126::int4,
 * hashtext(family_id)), taken server-side inside the writing transaction
 * (ATTESTO-PG 2.2.2, 6.7), and rotation takes it before the parent's row
 * lock, as AttestoPhoenix does, so the two can never deadlock each other.
 *
 * Where the semantics differ from the embedded engine (the header
 * documents each under "PostgreSQL"):
 *   - scope keeps duplicates (AttestoPhoenix 3.x does not deduplicate);
 *   - claims come back compacted, with the issuer claim when pg_issuer is
 *     set, and NULL for {}; auth_time 0 is stored as NULL;
 *   - dpop_jkt must be a 43-character thumbprint and x5t_s256 is refused
 *     (the layout has cnf = {"jkt":...} only);
 *   - a successor is the child's token: rotate's payload must be the
 *     child token (its Secret.hash is the child key), remember's the
 *     token of the consumed token's child;
 *   - rotate answers ONCE_EXPIRED for an expired parent, ONCE_REVOKED
 *     when the child generation is already taken (the family is revoked:
 *     AttestoPhoenix's family_integrity_error); a payload with grace > 0
 *     and no secret is NO_KEY (AttestoPhoenix's retry_state_unavailable,
 *     nothing changed), with grace 0 the strict tombstone is written;
 *   - every call may answer ONCE_IO (the server), and a consume's
 *     ONCE_NOMEM may come after the row was consumed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "envelope.h"
#include "refresh.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- statements (ATTESTO-PG 2.2.3) ---- */

static const struct once__pg_sql family_lock = {
	ONCE_PG_FAMILY_LOCK,
	"SELECT pg_advisory_xact_lock(" STR(ONCE_PG_ADVISORY_NAMESPACE) "::int4, hashtext($1))",
	1,
};
static const struct once__pg_sql family_tombstoned = {
	ONCE_PG_FAMILY_TOMBSTONED,
	"SELECT TRUE FROM {revocations} WHERE family_id = $1 LIMIT 1",
	1,
};
static const struct once__pg_sql family_flagged = {
	ONCE_PG_FAMILY_FLAGGED,
	"SELECT TRUE FROM {refresh} WHERE family_id = $1 AND family_revoked LIMIT 1",
	1,
};
static const struct once__pg_sql generation_taken = {
	ONCE_PG_GENERATION_TAKEN,
	"SELECT TRUE FROM {refresh} WHERE family_id = $1 AND generation = $2::integer LIMIT 1",
	2,
};
static const struct once__pg_sql token_taken = {
	ONCE_PG_REFRESH_TOKEN_TAKEN,
	"SELECT TRUE FROM {refresh} WHERE token_hash = $1 LIMIT 1",
	1,
};

/* Every column, explicitly (an upgraded 2.x table orders them otherwise,
 * ATTESTO-PG 6.17).  consumed false, no successor, family_revoked false:
 * a 3.x writer never sets the flag.  ON CONFLICT (token_hash): a taken
 * hash changes nothing and the caller sees 0 rows. */
#define INSERT_TOKEN                                                                               \
	"INSERT INTO {refresh} (id, token_hash, family_id, generation, client_id, subject, "        \
	"scope, resource, acr, auth_time, family_expires_at, attestation_jkt, cnf, claims, "       \
	"consumed, consumed_at, successor, family_revoked, expires_at, parent_hash, inserted_at)"  \
	" VALUES ($1::uuid, $2, $3, $4::integer, $5, $6, $7::varchar[], $8::varchar[], $9, "       \
	"$10::bigint, $11::bigint, $12, $13::jsonb, $14::jsonb, false, NULL, NULL, false, "        \
	"$15::timestamp, $16, $17::timestamp) ON CONFLICT (token_hash) DO NOTHING"
static const struct once__pg_sql insert_token = {ONCE_PG_REFRESH_INSERT, INSERT_TOKEN, 17};
static const struct once__pg_sql insert_child = {ONCE_PG_REFRESH_INSERT_CHILD, INSERT_TOKEN, 17};

/* get/1: a live token.  A tombstone or the legacy flag hides it, and so
 * does another issuer's binding ($2, ATTESTO-PG 2.2.7). */
#define GET_TOKEN                                                                                  \
	"SELECT " ONCE_PG_REFRESH_COLUMNS " FROM {refresh} r LEFT JOIN {revocations} v"            \
	" ON v.family_id = r.family_id WHERE r.token_hash = $1 AND r.family_revoked = false"       \
	" AND v.family_id IS NULL AND " ONCE_PG_ISSUER_MATCHES("$2")
static const struct once__pg_sql get_token = {ONCE_PG_REFRESH_GET, GET_TOKEN, 2};
static const struct once__pg_sql consume_loser = {ONCE_PG_REFRESH_CONSUME_LOSER, GET_TOKEN, 2};

/* The one statement of a consume: $1 hash, $2 now, $3 issuer. */
static const struct once__pg_sql consume_token = {
	ONCE_PG_REFRESH_CONSUME,
	"UPDATE {refresh} r SET consumed = true, consumed_at = $2::timestamp"
	" WHERE r.token_hash = $1 AND NOT r.consumed AND NOT r.family_revoked"
	" AND NOT EXISTS (SELECT 1 FROM {revocations} v WHERE v.family_id = r.family_id)"
	" AND " ONCE_PG_ISSUER_MATCHES("$3") " RETURNING " ONCE_PG_REFRESH_COLUMNS,
	3,
};

/* rotate/4's first read: the family, from the row, never from the child
 * (and the generation, so the checks under the lock go in one flight). */
static const struct once__pg_sql parent_family = {
	ONCE_PG_REFRESH_PARENT,
	"SELECT r.family_id, r.generation FROM {refresh} r WHERE r.token_hash = $1",
	1,
};
static const struct once__pg_sql parent_for_update = {
	ONCE_PG_REFRESH_PARENT_FOR_UPDATE,
	"SELECT " ONCE_PG_REFRESH_COLUMNS " FROM {refresh} r WHERE r.token_hash = $1 AND "
	ONCE_PG_ISSUER_MATCHES("$2") " FOR UPDATE",
	2,
};
static const struct once__pg_sql mark_rotated = {
	ONCE_PG_REFRESH_MARK_ROTATED,
	"UPDATE {refresh} SET consumed = true, consumed_at = $2::timestamp, successor = $3::jsonb"
	" WHERE id = $1::uuid",
	3,
};
static const struct once__pg_sql set_successor = {
	ONCE_PG_REFRESH_SET_SUCCESSOR,
	"UPDATE {refresh} SET successor = $2::jsonb WHERE token_hash = $1 AND consumed",
	2,
};
/* A tombstone is never deleted; revoking twice keeps the first. */
static const struct once__pg_sql tombstone_insert = {
	ONCE_PG_TOMBSTONE_INSERT,
	"INSERT INTO {revocations} (family_id, revoked_at) VALUES ($1, $2::timestamp)"
	" ON CONFLICT (family_id) DO NOTHING",
	2,
};
static const struct once__pg_sql family_delete = {
	ONCE_PG_FAMILY_DELETE,
	"DELETE FROM {refresh} WHERE family_id = $1",
	1,
};

/* ---- one operation on one connection ---- */

/*
 * A transaction's statements go to the server in flights (pg/pool.c
 * once__pg_flight: libpq's pipeline mode, one round trip each), grouped
 * where no statement needs an earlier one's result; each flight below
 * says why its statements are independent.  The statements, their order
 * and their locks are AttestoPhoenix's (ATTESTO-PG 2.2.3): within a flight
 * the server runs them one after the other, each READ COMMITTED statement
 * with a fresh snapshot, so a read sent behind the family lock still runs
 * after the lock is granted.  What a flight changes is a failure's shape:
 * a statement error aborts the transaction and the rest of the flight is
 * skipped, a COMMIT included, so nothing commits; op_end then rolls back.
 */
struct op {
	struct once__pg *p;
	struct once__pg_conn *c;
	bool in_tx;       /* a BEGIN went out and no COMMIT or ROLLBACK ended it */
	char sqlstate[6]; /* of the last failed statement */
};

static once_status op_start(struct op *o, struct once__pg *p)
{
	*o = (struct op){.p = p};
	return once__pg_acquire(p, &o->c);
}

/* Ends the operation: COMMIT when commit (a failed COMMIT makes st
 * ONCE_IO: whether it landed is unknown, and the caller must not act on
 * it), else ROLLBACK; then the connection goes back.  A transaction a
 * flight already committed has nothing left to end. */
static once_status op_end(struct op *o, bool commit, once_status st)
{
	if (o->in_tx) {
		if (commit && !once__pg_simple(o->p, o->c, "COMMIT"))
			st = ONCE_IO;
		else if (!commit)
			(void)once__pg_simple(o->p, o->c, "ROLLBACK"); /* failed: the pool drops it */
	}
	once__pg_release(o->p, o->c);
	return st;
}

/* The status a failed statement means: the server out of memory is
 * ONCE_NOMEM, anything else ONCE_IO (P2 in pg/pool.c: never retried). */
static once_status failure_status(const struct op *o)
{
	return strcmp(o->sqlstate, "53200") == 0 ? ONCE_NOMEM : ONCE_IO;
}

/* Runs a statement; NULL on failure, with *st the status it means. */
static PGresult *op_run(struct op *o, const struct once__pg_sql *sql, const char *const *params,
                        once_status *st)
{
	o->sqlstate[0] = '\0';
	PGresult *r = once__pg_run(o->p, o->c, sql, params, o->sqlstate);
	if (r == NULL)
		*st = failure_status(o);
	return r;
}

#define STEP(sql_, params_) ((struct once__pg_step){.sql = (sql_), .params = (params_)})
#define COMMAND(command_) ((struct once__pg_step){.command = (command_)})
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool is_command(const struct once__pg_step *s, const char *command)
{
	return s->sql == NULL && strcmp(s->command, command) == 0;
}

/* Runs a flight.  ONCE_OK when every step succeeded (the caller clears
 * the results); else the status of the first failure, *failed_at (may be
 * NULL) its index.  A flight that opens with BEGIN opens o's transaction,
 * one that closes with a COMMIT that committed closes it. */
static once_status op_flight(struct op *o, struct once__pg_step *steps, size_t n,
                             size_t *failed_at)
{
	if (is_command(&steps[0], "BEGIN"))
		o->in_tx = true;
	size_t done = once__pg_flight(o->p, o->c, steps, n, o->sqlstate);
	if (failed_at != NULL)
		*failed_at = done;
	if (done < n)
		return failure_status(o);
	if (is_command(&steps[n - 1], "COMMIT"))
		o->in_tx = false;
	return ONCE_OK;
}

/* A SELECT TRUE ... LIMIT 1 step's answer. */
static bool found(const struct once__pg_step *s)
{
	return PQntuples(s->result) > 0;
}

/* revoke_family/1's two statements under the family lock (the caller
 * took it), in steps[0..2): neither reads anything the other returns.
 * now and params must outlive the flight. */
static void revoke_steps(struct once__pg *p, const char *family_id, char now[32],
                         const char *tomb_params[2], const char *fam_params[1],
                         struct once__pg_step steps[2])
{
	once__pg_time_text(once__pg_now(p), now);
	tomb_params[0] = family_id;
	tomb_params[1] = now;
	fam_params[0] = family_id;
	steps[0] = STEP(&tombstone_insert, tomb_params);
	steps[1] = STEP(&family_delete, fam_params);
}

/* A new row's 17 INSERT parameters, in the statement's order. */
static void row_params(const struct once__pg_new_row *nr, const char *hash, const once_refresh *r,
                       const char *parent_hash, const char *family_expires_at,
                       const char *attestation_jkt, const char *params[17])
{
	const char *v[17] = {
		nr->id, hash, r->family_id, nr->generation, r->client_id, r->subject, nr->scope,
		nr->resource, r->acr, nr->auth_time[0] ? nr->auth_time : NULL, family_expires_at,
		attestation_jkt, nr->cnf, nr->claims, nr->expires_at, parent_hash, nr->inserted_at,
	};
	memcpy(params, v, sizeof v);
}

/* Whether an INSERT step landed its row: 1 row, or not (0 rows: the hash
 * was taken, ON CONFLICT DO NOTHING).  A unique violation (sqlstate
 * 23505: (family_id, generation) raced by a writer that does not lock,
 * or the uuid) is not landed either, and no failure: *st stays ONCE_OK
 * (the transaction is aborted; the caller rolls back). */
static bool insert_landed(const struct op *o, const struct once__pg_step *insert, once_status *st)
{
	if (*st == ONCE_OK)
		return once__pg_rows(insert->result) == 1;
	if (strcmp(o->sqlstate, "23505") == 0)
		*st = ONCE_OK;
	return false;
}

/* Frees a copy of a refresh token (a live credential) after wiping it. */
static void wipe_free(char *token, size_t len)
{
	if (token != NULL)
		sodium_memzero(token, len);
	free(token);
}

/* ---- checking keys ---- */

/* A token hash as a parameter: 1..max_key_len bytes as on every engine
 * (the header's "Keys"), and token_hash is varchar(88): a key the column
 * cannot hold could never have been stored. */
static bool key_param(const struct once__pg *p, const void *key, size_t len,
                      char out[ONCE_PG_HASH_MAX + 1])
{
	if (key == NULL || len == 0 || len > p->opt.max_key_len || len > ONCE_PG_HASH_MAX ||
	    !once__pg_text_fits(key, len, ONCE_PG_HASH_MAX))
		return false;
	memcpy(out, key, len);
	out[len] = '\0';
	return true;
}

/* ---- insert (ATTESTO-PG 2.2.3 insert/1) ---- */

static once_status insert(struct once__pg *p, const void *hash, size_t hlen, const once_refresh *r)
{
	char key[ONCE_PG_HASH_MAX + 1];
	struct once__pg_new_row nr;
	if (!key_param(p, hash, hlen, key))
		return ONCE_INVALID;
	once_status st = once__pg_new_row_make(p, r, &nr);
	if (st != ONCE_OK)
		return st;
	struct op o;
	if ((st = op_start(&o, p)) != ONCE_OK) {
		once__pg_new_row_free(&nr);
		return st;
	}
	/* Flight 1: BEGIN, the family lock, and insert/1's three reads under
	 * it.  Every parameter is the caller's (family, generation): nothing
	 * waits for an answer.  The legacy flag is read even when a tombstone
	 * is found (a read: same answer, same round trip). */
	const char *fam[] = {r->family_id}, *gen[] = {r->family_id, nr.generation};
	struct once__pg_step checks[] = {
		COMMAND("BEGIN"),                 STEP(&family_lock, fam),
		STEP(&family_tombstoned, fam),    STEP(&family_flagged, fam),
		STEP(&generation_taken, gen),
	};
	bool revoked = false, taken = false, landed = false;
	st = op_flight(&o, checks, COUNT(checks), NULL);
	if (st == ONCE_OK) {
		revoked = found(&checks[2]) || found(&checks[3]);
		taken = found(&checks[4]);
	}
	once__pg_steps_clear(checks, COUNT(checks));
	if (st == ONCE_OK && !revoked && !taken) {
		/* Flight 2: the INSERT and the COMMIT.  The INSERT's answer
		 * decides only the status: 0 rows (the hash is taken) wrote
		 * nothing, so the COMMIT ends the transaction as the ROLLBACK
		 * would; a unique violation aborts it, the server skips the
		 * COMMIT, and op_end rolls back. */
		const char *params[17];
		row_params(&nr, key, r, r->parent_hash, NULL, NULL, params);
		struct once__pg_step write[] = {STEP(&insert_token, params), COMMAND("COMMIT")};
		size_t failed_at;
		st = op_flight(&o, write, COUNT(write), &failed_at);
		if (st == ONCE_OK || failed_at == 0)
			landed = insert_landed(&o, &write[0], &st);
		once__pg_steps_clear(write, COUNT(write));
	}
	once__pg_new_row_free(&nr);
	if (st != ONCE_OK)
		return op_end(&o, false, st);
	if (revoked)
		return op_end(&o, false, ONCE_REVOKED);
	if (!landed)
		return op_end(&o, false, ONCE_EXISTS);
	return op_end(&o, true, ONCE_OK);
}

once_status once__pg_refresh_insert(once_store *s, const void *hash, size_t hlen,
                                    const once_refresh *r, once_ticket *ticket)
{
	(void)ticket; /* committed when it returns: tickets stay 0 */
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_REFRESH_INSERT, insert(p, hash, hlen, r));
}

/* ---- reading ---- */

/*
 * The caller's copy of row 0 of res, with its successor token when one
 * can be recovered (reading the child on o's connection), and consumed
 * as `consumed` says (a consume's winner hands back the row as it stood).
 * ONCE_NOT_FOUND when the row does not hold what the layout says: served
 * to nobody.
 */
static once_status copy_row(struct op *o, const PGresult *res, bool with_successor,
                            bool as_unconsumed, once_refresh **out)
{
	struct once__pg_row row;
	once_status st = once__pg_row_read(res, 0, &row);
	char *token = NULL;
	size_t token_len = 0;
	if (st == ONCE_OK && with_successor)
		st = once__pg_refresh_successor(o->p, o->c, &row, &token, &token_len);
	if (st == ONCE_OK && out != NULL) {
		if (as_unconsumed)
			row.consumed = false;
		*out = once__pg_row_record(&row, token, token_len);
		if (*out == NULL)
			st = ONCE_NOMEM;
	}
	if (token != NULL) /* a successor token: a live credential */
		sodium_memzero(token, token_len);
	free(token);
	once__pg_row_free(&row);
	return st == ONCE_INVALID ? ONCE_NOT_FOUND : st;
}

static once_status get(struct once__pg *p, const void *hash, size_t hlen, once_refresh **out)
{
	char key[ONCE_PG_HASH_MAX + 1];
	if (!key_param(p, hash, hlen, key))
		return ONCE_INVALID;
	struct op o;
	once_status st = op_start(&o, p);
	if (st != ONCE_OK)
		return st;
	const char *params[] = {key, p->issuer};
	PGresult *res = op_run(&o, &get_token, params, &st);
	if (res != NULL) {
		once_refresh *copy = NULL;
		st = PQntuples(res) == 1 ? copy_row(&o, res, out != NULL, false, out ? &copy : NULL)
		                          : ONCE_NOT_FOUND;
		PQclear(res);
		if (st == ONCE_OK && out != NULL)
			*out = copy;
	}
	return op_end(&o, false, st);
}

once_status once__pg_refresh_get(once_store *s, const void *hash, size_t hlen,
                                 once_refresh **out)
{
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_REFRESH_GET, get(p, hash, hlen, out));
}

/* ---- consume ---- */

/*
 * One autocommit UPDATE decides (R1).  Why it is safe against the other
 * writers, none of which it locks out:
 *   - against revoke_family: revocation inserts the tombstone and then
 *     DELETEs the rows, which takes their row locks.  If this UPDATE
 *     locks the row first, the DELETE waits for it and removes the
 *     consumed row afterwards: the consume came first.  If the DELETE
 *     locks it first, this UPDATE waits, finds the row gone when the
 *     revocation commits and changes nothing: NOT_FOUND.  A revocation
 *     that committed before this statement began is seen by NOT EXISTS
 *     (and its rows are gone anyway).
 *   - against a rotation (this engine's or AttestoPhoenix's rotate/4,
 *     which locks the parent FOR UPDATE and re-reads `consumed`): whoever
 *     locks the row first wins; the other re-reads it after the winner
 *     commits (READ COMMITTED re-evaluates this WHERE on the newest
 *     version) and sees it consumed.
 *   - a family bound to another issuer is not matched, so it is never
 *     consumed (AttestoPhoenix: issuer_mismatch without consuming).
 * The loser reads the row again: consumed means SPENT, with the
 * successor the winner wrote; absent or hidden means NOT_FOUND.
 */
static once_status consume(struct once__pg *p, const void *hash, size_t hlen, once_refresh **out)
{
	char key[ONCE_PG_HASH_MAX + 1], now[32];
	if (!key_param(p, hash, hlen, key))
		return ONCE_INVALID;
	once__pg_time_text(once__pg_now(p), now);
	struct op o;
	once_status st = op_start(&o, p);
	if (st != ONCE_OK)
		return st;
	const char *params[] = {key, now, p->issuer}, *loser_params[] = {key, p->issuer};
	once_refresh *copy = NULL;
	PGresult *res = op_run(&o, &consume_token, params, &st);
	if (res != NULL && PQntuples(res) == 1) {
		/* Won.  The row as it stood: unconsumed, no successor.  A row the
		 * layout does not allow is consumed now all the same: ONCE_IO (the
		 * outcome the caller cannot use; refuse), never NOT_FOUND. */
		st = copy_row(&o, res, false, true, out ? &copy : NULL);
		if (st == ONCE_NOT_FOUND)
			st = ONCE_IO;
	} else if (res != NULL) {
		PQclear(res);
		res = op_run(&o, &consume_loser, loser_params, &st);
		if (res != NULL && PQntuples(res) == 1 && PQgetvalue(res, 0, ONCE_PG_COL_CONSUMED)[0] == 't') {
			st = copy_row(&o, res, out != NULL, false, out ? &copy : NULL);
			if (st == ONCE_OK)
				st = ONCE_SPENT;
		} else if (res != NULL) {
			st = ONCE_NOT_FOUND;
		}
	}
	PQclear(res);
	if ((st == ONCE_OK || st == ONCE_SPENT) && out != NULL)
		*out = copy;
	return op_end(&o, false, st);
}

once_status once__pg_refresh_consume(once_store *s, const void *hash, size_t hlen,
                                     once_refresh **out, once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_REFRESH_CONSUME, consume(p, hash, hlen, out));
}

/* ---- the locked parent (rotate/4's first three statements) ---- */

/* The parent row, locked, and what the reads under the family lock saw. */
struct locked_parent {
	PGresult *res;           /* the locked row (NULL when none) */
	struct once__pg_row row; /* decoded from res, points into it */
	bool revoked;            /* a tombstone, or the legacy flag */
	bool generation_taken;   /* rotation: a row holds the child's generation */
	bool child_taken;        /* rotation: a row holds the child's hash */
};

static void locked_parent_free(struct locked_parent *lp)
{
	if (lp->res != NULL) {
		once__pg_row_free(&lp->row);
		PQclear(lp->res);
		lp->res = NULL;
	}
}

/* The reads made under the family lock for family fam (fam_params), into
 * steps (which must hold 4): the tombstone and the legacy flag, and for a
 * rotation (child_params not NULL) whether the child's generation
 * (gen_params: fam, parent generation + 1) and the child's hash are
 * taken.  Each takes only those parameters: none needs another's answer.
 * Returns how many steps it wrote. */
static size_t locked_reads(const char *const *fam_params, const char *const *gen_params,
                           const char *const *child_params, struct once__pg_step *steps)
{
	size_t n = 0;
	steps[n++] = STEP(&family_tombstoned, fam_params);
	steps[n++] = STEP(&family_flagged, fam_params);
	if (child_params != NULL) {
		steps[n++] = STEP(&generation_taken, gen_params);
		steps[n++] = STEP(&token_taken, child_params);
	}
	return n;
}

static void locked_answers(struct locked_parent *lp, const struct once__pg_step *reads,
                           bool rotation)
{
	lp->revoked = found(&reads[0]) || found(&reads[1]);
	lp->generation_taken = rotation && found(&reads[2]);
	lp->child_taken = rotation && found(&reads[3]);
}

/* The child's generation as a parameter: parent generation + 1 ("0"
 * past the integer range, where child_fits_parent refuses anyway). */
static void next_generation(long long generation, char out[24])
{
	snprintf(out, 24, "%lld", generation < INT32_MAX ? generation + 1 : 0);
}

/* The reads under the lock again, for the locked row's own family and
 * generation (lock_parent: the row changed between its two flights). */
static once_status reread_locked(struct op *o, struct locked_parent *lp, const char *child)
{
	char gen[24];
	next_generation(lp->row.generation, gen);
	const char *fam[] = {lp->row.family_id}, *gen_params[] = {lp->row.family_id, gen};
	const char *child_params[] = {child};
	struct once__pg_step reads[4];
	size_t n = locked_reads(fam, gen_params, child ? child_params : NULL, reads);
	once_status st = op_flight(o, reads, n, NULL);
	if (st == ONCE_OK)
		locked_answers(lp, reads, child != NULL);
	once__pg_steps_clear(reads, n);
	return st;
}

/*
 * Begins the transaction, reads the parent's family from its row, takes
 * the family lock, then locks the row itself (ATTESTO-PG 2.2.3: advisory
 * lock, then FOR UPDATE), and reads under the lock whether the family is
 * revoked and, for a rotation to child (not NULL), whether the child's
 * generation and hash are taken.  On ONCE_OK lp->res holds the locked row
 * (decoded into lp->row).  ONCE_NOT_FOUND: no such row, or bound to
 * another issuer, or unreadable.  Two flights in all:
 *   1. BEGIN and the unlocked read of the family: the lock's argument is
 *      its answer, so the lock cannot go with it.
 *   2. the lock, the row FOR UPDATE and the reads: their parameters are
 *      the family and generation flight 1 read, the caller's keys and the
 *      issuer; none waits for another's answer.  The rotation's two reads
 *      run even where rotate/4 stops before them (a consumed, expired or
 *      invalid rotation): reads, which change nothing.
 * Between the two flights the row may have been revoked away (deleted)
 * and a row with the same hash written in another family or generation:
 * then the reads are made again for the locked row's family (a third
 * flight), as one statement at a time they were made for it.
 */
static once_status lock_parent(struct op *o, const char *key, const char *child,
                               struct locked_parent *lp)
{
	memset(lp, 0, sizeof *lp);
	const char *key_params[] = {key}, *locked_params[] = {key, o->p->issuer};
	struct once__pg_step first[] = {COMMAND("BEGIN"), STEP(&parent_family, key_params)};
	once_status st = op_flight(o, first, COUNT(first), NULL);
	if (st != ONCE_OK)
		return st;
	const PGresult *fam_res = first[1].result;
	if (PQntuples(fam_res) != 1 || PQnfields(fam_res) != 2) {
		once__pg_steps_clear(first, COUNT(first));
		return ONCE_NOT_FOUND;
	}
	const char *fam = PQgetvalue(fam_res, 0, 0);
	char gen[24];
	long long generation = strtoll(PQgetvalue(fam_res, 0, 1), NULL, 10);
	next_generation(generation, gen);
	const char *fam_params[] = {fam}, *gen_params[] = {fam, gen}, *child_params[] = {child};
	struct once__pg_step second[6] = {STEP(&family_lock, fam_params),
	                                  STEP(&parent_for_update, locked_params)};
	const char *const *child_reads = child ? child_params : NULL;
	size_t n = 2 + locked_reads(fam_params, gen_params, child_reads, &second[2]);
	st = op_flight(o, second, n, NULL);
	if (st == ONCE_OK && PQntuples(second[1].result) != 1)
		st = ONCE_NOT_FOUND;
	if (st == ONCE_OK) {
		lp->res = second[1].result;
		second[1].result = NULL; /* kept: lp->row points into it */
		st = once__pg_row_read(lp->res, 0, &lp->row);
	}
	if (st == ONCE_OK) {
		locked_answers(lp, &second[2], child != NULL);
		if (strcmp(lp->row.family_id, fam) != 0 || lp->row.generation != generation)
			st = reread_locked(o, lp, child); /* not the row flight 1 read */
	}
	once__pg_steps_clear(second, n);
	once__pg_steps_clear(first, COUNT(first));
	if (st == ONCE_OK) {
		lp->revoked = lp->revoked || lp->row.family_revoked;
		return ONCE_OK;
	}
	locked_parent_free(lp);
	return st == ONCE_INVALID ? ONCE_NOT_FOUND : st;
}

/* ---- remember_successor ---- */

/* The child row of `parent` whose token is `token`: same family,
 * generation + 1, parent_hash = the parent's hash.  *res NULL when none. */
static once_status find_child(struct op *o, const struct once__pg_row *parent, const char *child_hash,
                              PGresult **res, struct once__pg_row *child)
{
	static const struct once__pg_sql child_sql = {
		ONCE_PG_REFRESH_GET_CHILD, ONCE_PG_REFRESH_GET_CHILD_SQL, 3};
	*res = NULL;
	memset(child, 0, sizeof *child);
	if (parent->generation >= INT32_MAX) /* no child generation fits the column */
		return ONCE_OK;
	char gen[24];
	snprintf(gen, sizeof gen, "%lld", (long long)parent->generation + 1);
	const char *params[] = {child_hash, parent->family_id, gen};
	once_status st = ONCE_OK;
	PGresult *r = op_run(o, &child_sql, params, &st);
	if (r == NULL)
		return st;
	if (PQntuples(r) == 1 && (st = once__pg_row_read(r, 0, child)) == ONCE_OK &&
	    child->parent_hash != NULL && strcmp(child->parent_hash, parent->token_hash) == 0) {
		*res = r;
		return ONCE_OK;
	}
	once__pg_row_free(child);
	PQclear(r);
	return st == ONCE_NOMEM ? st : ONCE_OK;
}

/*
 * On this engine a remembered successor is the child's token: the store
 * finds that child (it must be this token's child, else ONCE_INVALID) and
 * seals the token with it as rotate does, under the family lock, so an
 * AttestoPhoenix node can honour the retry too.  The deadline counts from
 * the consume: min(consumed_at + grace, child expires_at - 1).
 */
static once_status remember(struct once__pg *p, const void *hash, size_t hlen, const void *succ,
                            size_t n)
{
	char key[ONCE_PG_HASH_MAX + 1], child_hash[ONCE_PG_SECRET_HASH_LEN + 1];
	if (!key_param(p, hash, hlen, key) || succ == NULL || n == 0 || n > p->opt.max_record_len)
		return ONCE_INVALID;
	if (p->successor_secret == NULL || p->opt.pg_rotation_grace <= 0)
		return ONCE_NO_KEY;
	once__pg_secret_hash(succ, n, child_hash);
	struct op o;
	once_status st = op_start(&o, p);
	if (st != ONCE_OK)
		return st;
	PGresult *cres = NULL;
	struct locked_parent lp;
	struct once__pg_row child;
	const struct once__pg_row *parent = &lp.row;
	char *sealed = NULL;
	memset(&child, 0, sizeof child);
	st = lock_parent(&o, key, NULL, &lp);
	if (st == ONCE_OK && (lp.revoked || !parent->consumed))
		st = ONCE_NOT_FOUND;
	if (st == ONCE_OK)
		st = find_child(&o, parent, child_hash, &cres, &child);
	if (st == ONCE_OK && cres == NULL)
		st = ONCE_INVALID; /* succ is not the token of this token's child */
	if (st == ONCE_OK) {
		char *token = malloc(n + 1);
		if (token == NULL) {
			st = ONCE_NOMEM;
		} else {
			memcpy(token, succ, n);
			token[n] = '\0';
			st = once__pg_refresh_seal(p, parent, &child, token, n, parent->consumed_at, &sealed);
			wipe_free(token, n);
		}
	}
	if (st == ONCE_OK) {
		const char *params[] = {key, sealed};
		PGresult *r = op_run(&o, &set_successor, params, &st);
		PQclear(r);
	}
	free(sealed);
	once__pg_row_free(&child);
	PQclear(cres);
	locked_parent_free(&lp);
	return op_end(&o, st == ONCE_OK, st);
}

once_status once__pg_refresh_remember(once_store *s, const void *hash, size_t hlen,
                                      const void *succ, size_t n, once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_REFRESH_SUCCESSOR, remember(p, hash, hlen, succ, n));
}

/* ---- rotate (ATTESTO-PG 2.2.3 rotate/4) ---- */

/* What a rotation was asked, checked before any statement. */
struct rotation {
	char parent[ONCE_PG_HASH_MAX + 1];
	char child[ONCE_PG_HASH_MAX + 1];
	const once_refresh *succ;
	struct once__pg_new_row nr; /* the child row's parameters */
	char *token;                /* the child token (payload), or NULL */
	size_t token_len;
	int64_t now;
};

static once_status rotation_make(struct once__pg *p, const void *parent, size_t plen,
                                 const void *child, size_t clen, const once_refresh *succ,
                                 const void *payload, size_t n, struct rotation *rot)
{
	memset(rot, 0, sizeof *rot);
	if (!key_param(p, parent, plen, rot->parent) || !key_param(p, child, clen, rot->child) ||
	    strcmp(rot->parent, rot->child) == 0 || (payload == NULL && n != 0) ||
	    n > p->opt.max_record_len)
		return ONCE_INVALID;
	if (payload != NULL) {
		/* The payload is the child token: its Secret.hash is the child
		 * key, which the envelope's child_hash and the lineage check
		 * bind (ATTESTO-PG 2.2.4).  A payload pointer with n == 0 is a
		 * payload given, as on the embedded engine ("NULL and 0 for
		 * none"): empty, it is no child's token. */
		char h[ONCE_PG_SECRET_HASH_LEN + 1];
		once__pg_secret_hash(payload, n, h);
		if (strcmp(h, rot->child) != 0)
			return ONCE_INVALID;
		if ((rot->token = malloc(n + 1)) == NULL)
			return ONCE_NOMEM;
		memcpy(rot->token, payload, n);
		rot->token[n] = '\0';
		rot->token_len = n;
		/* A successor to keep and no secret to seal it with: AttestoPhoenix
		 * answers retry_state_unavailable and mutates nothing (ATTESTO-PG
		 * 2.2.5), as the embedded engine answers NO_KEY.  With grace 0
		 * there is nothing to keep: the strict tombstone is written. */
		if (p->successor_secret == NULL && p->opt.pg_rotation_grace > 0) {
			wipe_free(rot->token, rot->token_len);
			rot->token = NULL;
			return ONCE_NO_KEY;
		}
	}
	rot->succ = succ;
	rot->now = once__pg_now(p);
	once_status st = once__pg_new_row_make(p, succ, &rot->nr);
	if (st != ONCE_OK) {
		wipe_free(rot->token, rot->token_len);
		rot->token = NULL;
	}
	return st;
}

static void rotation_free(struct rotation *rot)
{
	once__pg_new_row_free(&rot->nr);
	wipe_free(rot->token, rot->token_len);
}

/* The child's row as it will be stored: the caller's data (claims as
 * encoded, with the issuer claim), generation parent + 1, and the
 * family's immutable fields inherited from the parent. */
static void child_view(const struct rotation *rot, const struct once__pg_row *parent,
                       struct once__pg_row *child)
{
	const once_refresh *s = rot->succ;
	*child = (struct once__pg_row){
		.token_hash = rot->child,
		.family_id = parent->family_id,
		.generation = parent->generation + 1,
		.client_id = s->client_id,
		.subject = s->subject,
		.scope = (char **)s->scope,
		.scope_count = s->scope_count,
		.resource = (char **)s->resource,
		.resource_count = s->resource_count,
		.acr = s->acr,
		.has_auth_time = s->auth_time != 0,
		.auth_time = s->auth_time,
		.has_family_expires_at = parent->has_family_expires_at,
		.family_expires_at = parent->family_expires_at,
		.attestation_jkt = parent->attestation_jkt,
		.dpop_jkt = (char *)s->dpop_jkt,
		.claims_json = rot->nr.claims,
		.expires_at = s->expires_at,
		.parent_hash = parent->token_hash,
	};
}

/* The validation rotate/4 leaves to core (ATTESTO-PG 2.2.3): the child
 * joins the parent's family at the next generation (the caller may leave
 * the generation 0 for "the next"), within the family's lifetime. */
static bool child_fits_parent(const once_refresh *succ, const struct once__pg_row *parent)
{
	return strcmp(succ->family_id, parent->family_id) == 0 && parent->generation < INT32_MAX &&
	       (succ->generation == 0 || succ->generation == parent->generation + 1) &&
	       (!parent->has_family_expires_at || succ->expires_at <= parent->family_expires_at);
}

/* The parent's update and the child's insert, in one flight: the
 * INSERT's parameters are the caller's and the locked parent's, none the
 * UPDATE's answer.  *landed false: the child hash was taken after all (a
 * writer that does not lock).  The COMMIT is not in this flight: an
 * INSERT that lands 0 rows (ON CONFLICT DO NOTHING) fails no statement,
 * and a COMMIT sent behind it would keep the parent's UPDATE without its
 * child; the caller commits or rolls back once the INSERT has answered. */
static once_status rotate_write(struct op *o, const struct rotation *rot,
                                const struct once__pg_row *parent, bool *landed)
{
	struct once__pg_row child;
	child_view(rot, parent, &child);
	char *sealed = NULL, now[32], gen[24], fexp[24];
	once_status st =
	        once__pg_refresh_seal(o->p, parent, &child, rot->token, rot->token_len, rot->now, &sealed);
	if (st != ONCE_OK)
		return st;
	once__pg_time_text(rot->now, now);
	const char *mark[] = {parent->id, now, sealed};
	struct once__pg_new_row nr = rot->nr; /* borrowed: freed by rotation_free */
	snprintf(gen, sizeof gen, "%lld", (long long)child.generation);
	memcpy(nr.generation, gen, sizeof gen);
	snprintf(fexp, sizeof fexp, "%lld", (long long)parent->family_expires_at);
	once_refresh as_stored = *rot->succ;
	as_stored.family_id = parent->family_id;
	const char *params[17];
	row_params(&nr, rot->child, &as_stored, parent->token_hash,
	           parent->has_family_expires_at ? fexp : NULL, parent->attestation_jkt, params);
	struct once__pg_step write[] = {STEP(&mark_rotated, mark), STEP(&insert_child, params)};
	size_t failed_at;
	st = op_flight(o, write, COUNT(write), &failed_at);
	*landed = false;
	/* The parent row is locked (FOR UPDATE) and unconsumed, so its UPDATE
	 * changes exactly one row; anything else (an id that is not unique,
	 * say) must not commit a child beside a parent left live. */
	if (st == ONCE_OK && once__pg_rows(write[0].result) != 1)
		st = ONCE_IO;
	else if (st == ONCE_OK || failed_at == 1)
		*landed = insert_landed(o, &write[1], &st);
	once__pg_steps_clear(write, COUNT(write));
	free(sealed);
	return st;
}

/*
 * The transaction after the parent is locked, in rotate/4's order:
 * revoked, consumed (reuse: COMMIT, SPENT with the winner's successor),
 * invalid child, expired parent, generation taken (family integrity:
 * revoke, COMMIT), child hash taken, then the writes.  *commit says
 * whether the transaction's outcome is to be committed.
 */
static once_status rotate_locked(struct op *o, const struct rotation *rot,
                                 const struct locked_parent *lp, bool *commit,
                                 once_refresh **parent_out)
{
	const PGresult *pres = lp->res;
	const struct once__pg_row *parent = &lp->row;
	*commit = false;
	if (lp->revoked)
		return ONCE_NOT_FOUND;
	once_status st;
	if (parent->consumed) {
		once_refresh *copy = NULL;
		st = copy_row(o, pres, parent_out != NULL, false, parent_out ? &copy : NULL);
		if (st != ONCE_OK)
			return st;
		if (parent_out != NULL)
			*parent_out = copy;
		*commit = true;
		return ONCE_SPENT;
	}
	if (!child_fits_parent(rot->succ, parent))
		return ONCE_INVALID;
	if (parent->expires_at <= rot->now)
		return ONCE_EXPIRED;
	bool landed = false;
	if (lp->generation_taken) {
		/* Two children of one generation: the family's history forked,
		 * which only a replay can cause.  Revoke it and keep that: one
		 * flight, the revocation's two statements (independent) and the
		 * COMMIT; a failure in it skips the COMMIT, and op_end rolls
		 * back. */
		char now[32];
		const char *tomb[2], *fam[1];
		struct once__pg_step revocation[3];
		revoke_steps(o->p, parent->family_id, now, tomb, fam, revocation);
		revocation[2] = COMMAND("COMMIT");
		st = op_flight(o, revocation, COUNT(revocation), NULL);
		once__pg_steps_clear(revocation, COUNT(revocation));
		return st == ONCE_OK ? ONCE_REVOKED : st;
	}
	if (lp->child_taken)
		return ONCE_EXISTS;
	/* The copy is made before the writes, so a NOMEM changes nothing. */
	once_refresh *copy = NULL;
	st = copy_row(o, pres, false, false, parent_out ? &copy : NULL);
	if (st == ONCE_OK)
		st = rotate_write(o, rot, parent, &landed);
	if (st == ONCE_OK && !landed)
		st = ONCE_EXISTS;
	if (st != ONCE_OK) {
		free(copy);
		return st;
	}
	if (parent_out != NULL)
		*parent_out = copy;
	*commit = true;
	return ONCE_OK;
}

static once_status rotate(struct once__pg *p, const void *parent, size_t plen, const void *child,
                          size_t clen, const once_refresh *succ, const void *payload, size_t n,
                          once_refresh **parent_out)
{
	struct rotation rot;
	once_status st = rotation_make(p, parent, plen, child, clen, succ, payload, n, &rot);
	if (st != ONCE_OK)
		return st;
	struct op o;
	if ((st = op_start(&o, p)) != ONCE_OK) {
		rotation_free(&rot);
		return st;
	}
	struct locked_parent lp;
	bool commit = false;
	once_refresh *copy = NULL;
	st = lock_parent(&o, rot.parent, rot.child, &lp);
	if (st == ONCE_OK) {
		st = rotate_locked(&o, &rot, &lp, &commit, parent_out ? &copy : NULL);
		locked_parent_free(&lp);
	}
	rotation_free(&rot);
	st = op_end(&o, commit, st);
	if (copy != NULL && parent_out != NULL && (st == ONCE_OK || st == ONCE_SPENT))
		*parent_out = copy;
	else
		free(copy);
	return st;
}

once_status once__pg_refresh_rotate(once_store *s, const void *parent, size_t plen,
                                    const void *child, size_t clen, const once_refresh *succ,
                                    const void *payload, size_t n, once_refresh **parent_out,
                                    once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_REFRESH_ROTATE,
	                      rotate(p, parent, plen, child, clen, succ, payload, n, parent_out));
}

/* ---- revoke_family (ATTESTO-PG 2.2.3 revoke_family/1) ---- */

static once_status revoke(struct once__pg *p, const void *family_id, size_t flen)
{
	/* family_id is varchar(255): 255 characters of at most 4 bytes. */
	char fam[4 * ONCE_PG_IDENT_MAX + 1];
	if (family_id == NULL || flen == 0 || flen > p->opt.max_key_len ||
	    flen > 4 * ONCE_PG_IDENT_MAX ||
	    !once__pg_text_fits(family_id, flen, ONCE_PG_IDENT_MAX))
		return ONCE_INVALID;
	memcpy(fam, family_id, flen);
	fam[flen] = '\0';
	struct op o;
	once_status st = op_start(&o, p);
	if (st != ONCE_OK)
		return st;
	/* One flight: revoke_family/1 whole.  Every parameter is the
	 * caller's family and the time: no statement waits for an answer.
	 * A failure skips the rest, the COMMIT included; op_end rolls back. */
	char now[32];
	const char *fam_params[] = {fam}, *tomb[2], *fam2[1];
	struct once__pg_step steps[5] = {COMMAND("BEGIN"), STEP(&family_lock, fam_params)};
	revoke_steps(p, fam, now, tomb, fam2, &steps[2]);
	steps[4] = COMMAND("COMMIT");
	st = op_flight(&o, steps, COUNT(steps), NULL);
	once__pg_steps_clear(steps, COUNT(steps));
	return op_end(&o, false, st);
}

once_status once__pg_refresh_revoke(once_store *s, const void *family_id, size_t flen,
                                    once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_REFRESH_REVOKE, revoke(p, family_id, flen));
}
