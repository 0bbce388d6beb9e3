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

/* rotate/4's first read: the family, from the row, never from the child. */
static const struct once__pg_sql parent_family = {
	ONCE_PG_REFRESH_PARENT,
	"SELECT r.family_id FROM {refresh} r WHERE r.token_hash = $1",
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

struct op {
	struct once__pg *p;
	struct once__pg_conn *c;
	bool in_tx;
	char sqlstate[6]; /* of the last failed statement */
};

static once_status op_start(struct op *o, struct once__pg *p, bool transaction)
{
	*o = (struct op){.p = p};
	once_status st = once__pg_acquire(p, &o->c);
	if (st != ONCE_OK)
		return st;
	if (transaction) {
		if (!once__pg_simple(p, o->c, "BEGIN")) {
			once__pg_release(p, o->c);
			return ONCE_IO;
		}
		o->in_tx = true;
	}
	return ONCE_OK;
}

/* Ends the operation: COMMIT when commit (a failed COMMIT makes st
 * ONCE_IO: whether it landed is unknown, and the caller must not act on
 * it), else ROLLBACK; then the connection goes back. */
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

/* Runs a statement; NULL on failure, with *st the status it means. */
static PGresult *op_run(struct op *o, const struct once__pg_sql *sql, const char *const *params,
                        once_status *st)
{
	o->sqlstate[0] = '\0';
	PGresult *r = once__pg_run(o->p, o->c, sql, params, o->sqlstate);
	if (r == NULL)
		*st = strcmp(o->sqlstate, "53200") == 0 ? ONCE_NOMEM : ONCE_IO;
	return r;
}

/* A SELECT TRUE ... LIMIT 1: *found says whether it returned a row. */
static once_status op_exists(struct op *o, const struct once__pg_sql *sql,
                             const char *const *params, bool *found)
{
	once_status st = ONCE_OK;
	PGresult *r = op_run(o, sql, params, &st);
	if (r != NULL) {
		*found = PQntuples(r) > 0;
		PQclear(r);
	}
	return st;
}

/* Takes the family lock for the rest of the transaction. */
static once_status lock_family(struct op *o, const char *family_id)
{
	once_status st = ONCE_OK;
	const char *params[] = {family_id};
	PGresult *r = op_run(o, &family_lock, params, &st);
	PQclear(r);
	return st;
}

/* Under the family lock: the family is revoked (a tombstone, or a legacy
 * row with family_revoked, ATTESTO-PG 6.8). */
static once_status family_revoked(struct op *o, const char *family_id, bool *revoked)
{
	const char *params[] = {family_id};
	once_status st = op_exists(o, &family_tombstoned, params, revoked);
	if (st == ONCE_OK && !*revoked)
		st = op_exists(o, &family_flagged, params, revoked);
	return st;
}

/* Under the family lock: revoke_family/1's two statements. */
static once_status revoke_locked(struct op *o, const char *family_id)
{
	char now[32];
	once__pg_time_text(once__pg_now(o->p), now);
	const char *tomb[] = {family_id, now}, *fam[] = {family_id};
	once_status st = ONCE_OK;
	PGresult *r = op_run(o, &tombstone_insert, tomb, &st);
	if (r != NULL) {
		PQclear(r);
		r = op_run(o, &family_delete, fam, &st);
		PQclear(r);
	}
	return st;
}

/* Inserts a prepared row; *landed false when the hash was taken (0 rows,
 * or a unique violation: (family_id, generation) raced by a writer that
 * does not lock, or the uuid). */
static once_status insert_row(struct op *o, const struct once__pg_sql *sql,
                              const struct once__pg_new_row *nr, const char *hash,
                              const once_refresh *r, const char *parent_hash,
                              const char *family_expires_at, const char *attestation_jkt,
                              bool *landed)
{
	const char *params[] = {
		nr->id, hash, r->family_id, nr->generation, r->client_id, r->subject, nr->scope,
		nr->resource, r->acr, nr->auth_time[0] ? nr->auth_time : NULL, family_expires_at,
		attestation_jkt, nr->cnf, nr->claims, nr->expires_at, parent_hash, nr->inserted_at,
	};
	once_status st = ONCE_OK;
	*landed = false;
	PGresult *res = op_run(o, sql, params, &st);
	if (res != NULL) {
		*landed = once__pg_rows(res) == 1;
		PQclear(res);
	} else if (strcmp(o->sqlstate, "23505") == 0) {
		st = ONCE_OK;
	}
	return st;
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
	if ((st = op_start(&o, p, true)) != ONCE_OK) {
		once__pg_new_row_free(&nr);
		return st;
	}
	bool revoked = false, taken = false, landed = false;
	const char *gen_params[] = {r->family_id, nr.generation};
	st = lock_family(&o, r->family_id);
	if (st == ONCE_OK)
		st = family_revoked(&o, r->family_id, &revoked);
	if (st == ONCE_OK && !revoked)
		st = op_exists(&o, &generation_taken, gen_params, &taken);
	if (st == ONCE_OK && !revoked && !taken)
		st = insert_row(&o, &insert_token, &nr, key, r, r->parent_hash, NULL, NULL, &landed);
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
	once_status st = op_start(&o, p, false);
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
	once_status st = op_start(&o, p, false);
	if (st != ONCE_OK)
		return st;
	const char *params[] = {key, now, p->issuer}, *loser_params[] = {key, p->issuer};
	once_refresh *copy = NULL;
	PGresult *res = op_run(&o, &consume_token, params, &st);
	if (res != NULL && PQntuples(res) == 1) {
		/* Won.  The row as it stood: unconsumed, no successor. */
		st = copy_row(&o, res, false, true, out ? &copy : NULL);
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

/*
 * Reads the parent's family from its row, takes the family lock, then
 * locks the row itself (ATTESTO-PG 2.2.3: advisory lock, then FOR
 * UPDATE).  On ONCE_OK *res holds the locked row (decoded into *row,
 * which points into it) and *revoked says whether its family is.
 * ONCE_NOT_FOUND: no such row, or bound to another issuer, or unreadable.
 */
static once_status lock_parent(struct op *o, const char *key, PGresult **res,
                               struct once__pg_row *row, bool *revoked)
{
	once_status st = ONCE_OK;
	const char *key_params[] = {key}, *locked_params[] = {key, o->p->issuer};
	*res = NULL;
	memset(row, 0, sizeof *row);
	PGresult *fam = op_run(o, &parent_family, key_params, &st);
	if (fam == NULL)
		return st;
	if (PQntuples(fam) != 1) {
		PQclear(fam);
		return ONCE_NOT_FOUND;
	}
	st = lock_family(o, PQgetvalue(fam, 0, 0));
	PQclear(fam);
	if (st != ONCE_OK)
		return st;
	/* Between the read and the lock the row may have been revoked away
	 * (deleted): read it again, locked. */
	PGresult *r = op_run(o, &parent_for_update, locked_params, &st);
	if (r == NULL)
		return st;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return ONCE_NOT_FOUND;
	}
	st = once__pg_row_read(r, 0, row);
	if (st == ONCE_OK)
		st = family_revoked(o, row->family_id, revoked);
	if (st == ONCE_OK)
		*revoked = *revoked || row->family_revoked;
	if (st != ONCE_OK) {
		once__pg_row_free(row);
		PQclear(r);
		return st == ONCE_INVALID ? ONCE_NOT_FOUND : st;
	}
	*res = r;
	return ONCE_OK;
}

/* ---- remember_successor ---- */

/* The child row of `parent` whose token is `token`: same family,
 * generation + 1, parent_hash = the parent's hash.  *res NULL when none. */
static once_status find_child(struct op *o, const struct once__pg_row *parent, const char *child_hash,
                              PGresult **res, struct once__pg_row *child)
{
	static const struct once__pg_sql child_sql = {
		ONCE_PG_REFRESH_GET_CHILD, ONCE_PG_REFRESH_GET_CHILD_SQL, 3};
	char gen[24];
	snprintf(gen, sizeof gen, "%lld", (long long)parent->generation + 1);
	const char *params[] = {child_hash, parent->family_id, gen};
	once_status st = ONCE_OK;
	*res = NULL;
	memset(child, 0, sizeof *child);
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
	once_status st = op_start(&o, p, true);
	if (st != ONCE_OK)
		return st;
	PGresult *pres = NULL, *cres = NULL;
	struct once__pg_row parent, child;
	bool revoked = false;
	char *sealed = NULL;
	memset(&child, 0, sizeof child);
	st = lock_parent(&o, key, &pres, &parent, &revoked);
	if (st == ONCE_OK && (revoked || !parent.consumed))
		st = ONCE_NOT_FOUND;
	if (st == ONCE_OK)
		st = find_child(&o, &parent, child_hash, &cres, &child);
	if (st == ONCE_OK && cres == NULL)
		st = ONCE_INVALID; /* succ is not the token of this token's child */
	if (st == ONCE_OK) {
		char *token = malloc(n + 1);
		if (token == NULL) {
			st = ONCE_NOMEM;
		} else {
			memcpy(token, succ, n);
			token[n] = '\0';
			st = once__pg_refresh_seal(p, &parent, &child, token, n, parent.consumed_at, &sealed);
			free(token);
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
	if (pres != NULL) {
		once__pg_row_free(&parent);
		PQclear(pres);
	}
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
			free(rot->token);
			rot->token = NULL;
			return ONCE_NO_KEY;
		}
	}
	rot->succ = succ;
	rot->now = once__pg_now(p);
	once_status st = once__pg_new_row_make(p, succ, &rot->nr);
	if (st != ONCE_OK) {
		free(rot->token);
		rot->token = NULL;
	}
	return st;
}

static void rotation_free(struct rotation *rot)
{
	once__pg_new_row_free(&rot->nr);
	free(rot->token);
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

/* The parent's update and the child's insert.  *landed false: the child
 * hash was taken after all (a writer that does not lock). */
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
	PGresult *r = op_run(o, &mark_rotated, mark, &st);
	free(sealed);
	if (r == NULL)
		return st;
	PQclear(r);
	struct once__pg_new_row nr = rot->nr; /* borrowed: freed by rotation_free */
	snprintf(gen, sizeof gen, "%lld", (long long)child.generation);
	memcpy(nr.generation, gen, sizeof gen);
	snprintf(fexp, sizeof fexp, "%lld", (long long)parent->family_expires_at);
	once_refresh as_stored = *rot->succ;
	as_stored.family_id = parent->family_id;
	return insert_row(o, &insert_child, &nr, rot->child, &as_stored, parent->token_hash,
	                  parent->has_family_expires_at ? fexp : NULL, parent->attestation_jkt,
	                  landed);
}

/*
 * The transaction after the parent is locked, in rotate/4's order:
 * revoked, consumed (reuse: COMMIT, SPENT with the winner's successor),
 * invalid child, expired parent, generation taken (family integrity:
 * revoke, COMMIT), child hash taken, then the writes.  *commit says
 * whether the transaction's outcome is to be committed.
 */
static once_status rotate_locked(struct op *o, const struct rotation *rot,
                                 const PGresult *pres, const struct once__pg_row *parent,
                                 bool revoked, bool *commit, once_refresh **parent_out)
{
	*commit = false;
	if (revoked)
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
	char gen[24];
	snprintf(gen, sizeof gen, "%lld", (long long)parent->generation + 1);
	const char *gen_params[] = {parent->family_id, gen}, *child_params[] = {rot->child};
	bool taken = false, landed = false;
	if ((st = op_exists(o, &generation_taken, gen_params, &taken)) != ONCE_OK)
		return st;
	if (taken) {
		/* Two children of one generation: the family's history forked,
		 * which only a replay can cause.  Revoke it and keep that. */
		st = revoke_locked(o, parent->family_id);
		*commit = st == ONCE_OK;
		return st == ONCE_OK ? ONCE_REVOKED : st;
	}
	if ((st = op_exists(o, &token_taken, child_params, &taken)) != ONCE_OK)
		return st;
	if (taken)
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
	if ((st = op_start(&o, p, true)) != ONCE_OK) {
		rotation_free(&rot);
		return st;
	}
	PGresult *pres;
	struct once__pg_row row;
	bool revoked = false, commit = false;
	once_refresh *copy = NULL;
	st = lock_parent(&o, rot.parent, &pres, &row, &revoked);
	if (st == ONCE_OK) {
		st = rotate_locked(&o, &rot, pres, &row, revoked, &commit, parent_out ? &copy : NULL);
		once__pg_row_free(&row);
		PQclear(pres);
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
	once_status st = op_start(&o, p, true);
	if (st != ONCE_OK)
		return st;
	st = lock_family(&o, fam);
	if (st == ONCE_OK)
		st = revoke_locked(&o, fam);
	return op_end(&o, st == ONCE_OK, st);
}

once_status once__pg_refresh_revoke(once_store *s, const void *family_id, size_t flen,
                                    once_ticket *ticket)
{
	(void)ticket;
	struct once__pg *p = once__pg_of(s);
	return once__pg_count(p, ONCE_OP_REFRESH_REVOKE, revoke(p, family_id, flen));
}
