/*
 * core/engine.c - the embedded engine's table (api/engine.h): the
 * in-memory store of core/ with the write-ahead log of wal/.
 */
#include "internal.h"
#include "persist.h"

const struct once__engine once__mem_engine = {
	.name = "embedded",
	.close = once__mem_close,
	.checkpoint = once__mem_checkpoint,
	.sweep = once__mem_sweep,
	.stats = once__mem_stats,
	.code_put = once__mem_code_put,
	.code_get = once__mem_code_get,
	.code_take = once__mem_code_take,
	.code_finalize = once__mem_code_finalize,
	.access_record = once__mem_access_record,
	.access_revoke = once__mem_access_revoke,
	.access_revoked = once__mem_access_revoked,
	.refresh_insert = once__mem_refresh_insert,
	.refresh_get = once__mem_refresh_get,
	.refresh_consume = once__mem_refresh_consume,
	.refresh_remember = once__mem_refresh_remember,
	.refresh_rotate = once__mem_refresh_rotate,
	.refresh_revoke = once__mem_refresh_revoke,
	.nonce_issue = once__mem_nonce_issue,
	.nonce_valid = once__mem_nonce_valid,
	.nonce_accept = once__mem_nonce_accept,
	.replay_check = once__mem_replay_check,
	.ticket_fd = once__mem_ticket_fd,
	.tickets_durable = once__mem_tickets_durable,
	.tickets_drain = once__mem_tickets_drain,
	.ticket_wait = once__mem_ticket_wait,
};

/* ---- a read-only store (options.read_only) ---- */

/*
 * A read-only store is a picture of its directory, and nothing may change
 * it: its table is the one above with a refusal in every slot that would
 * (every write, the checkpoint and the sweep).  The refusal happens before
 * any argument is looked at, so no write path is entered at all: nothing
 * changes in memory or on disk, out-pointers are left untouched, and the
 * call counts as ONCE_INVALID in once_stats.ops.  The first refusal of a
 * store logs one warning (wal/persist.c).
 */
static once_status refuse(once_store *s, const char *call, int op)
{
	once__persist_refused(s, call);
	return op < 0 ? ONCE_INVALID : once__count(s, (once_op)op, ONCE_INVALID);
}

static once_status ro_checkpoint(once_store *s)
{
	return refuse(s, "once_checkpoint", -1);
}

/* The sweep too: expired entries stay in the picture (recovery already
 * dropped those expired at open, and reads answer by the clock anyway). */
static once_status ro_sweep(once_store *s, once_sweep_counts *out)
{
	(void)out;
	return refuse(s, "once_sweep", -1);
}

static once_status ro_code_put(once_store *s, const void *hash, size_t hlen, const once_code *c,
                               once_ticket *ticket)
{
	(void)hash, (void)hlen, (void)c, (void)ticket;
	return refuse(s, "once_code_put", ONCE_OP_CODE_PUT);
}

static once_status ro_code_take(once_store *s, const void *hash, size_t hlen, once_code **out,
                                once_code_meta **meta, once_ticket *ticket)
{
	(void)hash, (void)hlen, (void)out, (void)meta, (void)ticket;
	return refuse(s, "once_code_take", ONCE_OP_CODE_TAKE);
}

static once_status ro_code_finalize(once_store *s, const void *hash, size_t hlen, once_ticket *ticket)
{
	(void)hash, (void)hlen, (void)ticket;
	return refuse(s, "once_code_finalize", ONCE_OP_CODE_FINALIZE);
}

static once_status ro_access_record(once_store *s, const void *family_id, size_t flen,
                                    const void *jti, size_t jlen, int64_t expires_at,
                                    once_ticket *ticket)
{
	(void)family_id, (void)flen, (void)jti, (void)jlen, (void)expires_at, (void)ticket;
	return refuse(s, "once_code_record_access_token", ONCE_OP_ACCESS_RECORD);
}

static once_status ro_access_revoke(once_store *s, const void *family_id, size_t flen,
                                    once_ticket *ticket)
{
	(void)family_id, (void)flen, (void)ticket;
	return refuse(s, "once_code_revoke_family_access_tokens", ONCE_OP_ACCESS_REVOKE);
}

static once_status ro_refresh_insert(once_store *s, const void *hash, size_t hlen,
                                     const once_refresh *r, once_ticket *ticket)
{
	(void)hash, (void)hlen, (void)r, (void)ticket;
	return refuse(s, "once_refresh_insert", ONCE_OP_REFRESH_INSERT);
}

static once_status ro_refresh_consume(once_store *s, const void *hash, size_t hlen,
                                      once_refresh **out, once_ticket *ticket)
{
	(void)hash, (void)hlen, (void)out, (void)ticket;
	return refuse(s, "once_refresh_consume", ONCE_OP_REFRESH_CONSUME);
}

static once_status ro_refresh_remember(once_store *s, const void *hash, size_t hlen,
                                       const void *succ, size_t n, once_ticket *ticket)
{
	(void)hash, (void)hlen, (void)succ, (void)n, (void)ticket;
	return refuse(s, "once_refresh_remember_successor", ONCE_OP_REFRESH_SUCCESSOR);
}

static once_status ro_refresh_rotate(once_store *s, const void *parent, size_t plen,
                                     const void *child, size_t clen, const once_refresh *succ,
                                     const void *payload, size_t n, once_refresh **parent_out,
                                     once_ticket *ticket)
{
	(void)parent, (void)plen, (void)child, (void)clen, (void)succ, (void)payload, (void)n;
	(void)parent_out, (void)ticket;
	return refuse(s, "once_refresh_rotate", ONCE_OP_REFRESH_ROTATE);
}

static once_status ro_refresh_revoke(once_store *s, const void *family_id, size_t flen,
                                     once_ticket *ticket)
{
	(void)family_id, (void)flen, (void)ticket;
	return refuse(s, "once_refresh_revoke_family", ONCE_OP_REFRESH_REVOKE);
}

static once_status ro_nonce_issue(once_store *s, int64_t ttl_seconds, char out[ONCE_NONCE_LEN + 1],
                                  once_ticket *ticket)
{
	(void)ttl_seconds, (void)out, (void)ticket;
	return refuse(s, "once_nonce_issue", ONCE_OP_NONCE_ISSUE);
}

static once_status ro_nonce_accept(once_store *s, const void *nonce, size_t len, int64_t ttl_seconds,
                                   once_ticket *ticket)
{
	(void)nonce, (void)len, (void)ttl_seconds, (void)ticket;
	return refuse(s, "once_nonce_accept", ONCE_OP_NONCE_ACCEPT);
}

static once_status ro_replay_check(once_store *s, const void *jti, size_t len, int64_t ttl_seconds,
                                   once_ticket *ticket)
{
	(void)jti, (void)len, (void)ttl_seconds, (void)ticket;
	return refuse(s, "once_replay_check", ONCE_OP_REPLAY_CHECK);
}

const struct once__engine once__mem_ro_engine = {
	.name = "embedded (read-only)",
	.close = once__mem_close,
	.checkpoint = ro_checkpoint,
	.sweep = ro_sweep,
	.stats = once__mem_stats,
	.code_put = ro_code_put,
	.code_get = once__mem_code_get,
	.code_take = ro_code_take,
	.code_finalize = ro_code_finalize,
	.access_record = ro_access_record,
	.access_revoke = ro_access_revoke,
	.access_revoked = once__mem_access_revoked,
	.refresh_insert = ro_refresh_insert,
	.refresh_get = once__mem_refresh_get,
	.refresh_consume = ro_refresh_consume,
	.refresh_remember = ro_refresh_remember,
	.refresh_rotate = ro_refresh_rotate,
	.refresh_revoke = ro_refresh_revoke,
	.nonce_issue = ro_nonce_issue,
	.nonce_valid = once__mem_nonce_valid,
	.nonce_accept = ro_nonce_accept,
	.replay_check = ro_replay_check,
	/* No log: no ticket is ever handed out (wal/persist.c). */
	.ticket_fd = once__mem_ticket_fd,
	.tickets_durable = once__mem_tickets_durable,
	.tickets_drain = once__mem_tickets_drain,
	.ticket_wait = once__mem_ticket_wait,
};
