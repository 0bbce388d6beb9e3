/*
 * core/engine.c - the embedded engine's table (api/engine.h): the
 * in-memory store of core/ with the write-ahead log of wal/.
 */
#include "internal.h"

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
