/*
 * core/status.c - names and messages of statuses and operations.
 *
 * Both tables are generated from ONCE_STATUS_MAP in oncestore.h, so a status
 * added there gets its name and message here without a second edit.
 */
#include "internal.h"

#define STATUS_MESSAGE(name, msg) msg,
static const char *const status_messages[] = {ONCE_STATUS_MAP(STATUS_MESSAGE)};
#undef STATUS_MESSAGE

#define STATUS_NAME(name, msg) #name,
static const char *const status_names[] = {ONCE_STATUS_MAP(STATUS_NAME)};
#undef STATUS_NAME

_Static_assert(sizeof(status_messages) / sizeof(status_messages[0]) == ONCE_STATUS_COUNT,
               "every status has a message");

static const char *const op_names[ONCE_OP_COUNT] = {
	[ONCE_OP_CODE_PUT] = "code_put",
	[ONCE_OP_CODE_GET] = "code_get",
	[ONCE_OP_CODE_TAKE] = "code_take",
	[ONCE_OP_CODE_FINALIZE] = "code_finalize",
	[ONCE_OP_ACCESS_RECORD] = "access_record",
	[ONCE_OP_ACCESS_REVOKE] = "access_revoke",
	[ONCE_OP_ACCESS_REVOKED] = "access_revoked",
	[ONCE_OP_REFRESH_INSERT] = "refresh_insert",
	[ONCE_OP_REFRESH_GET] = "refresh_get",
	[ONCE_OP_REFRESH_CONSUME] = "refresh_consume",
	[ONCE_OP_REFRESH_SUCCESSOR] = "refresh_successor",
	[ONCE_OP_REFRESH_ROTATE] = "refresh_rotate",
	[ONCE_OP_REFRESH_REVOKE] = "refresh_revoke",
	[ONCE_OP_NONCE_ISSUE] = "nonce_issue",
	[ONCE_OP_NONCE_VALID] = "nonce_valid",
	[ONCE_OP_NONCE_ACCEPT] = "nonce_accept",
	[ONCE_OP_REPLAY_CHECK] = "replay_check",
};

ONCE_API const char *once_strerror(once_status st)
{
	if ((unsigned)st >= ONCE_STATUS_COUNT)
		return "unknown status";
	return status_messages[st];
}

ONCE_API const char *once_status_name(once_status st)
{
	if ((unsigned)st >= ONCE_STATUS_COUNT)
		return "UNKNOWN";
	return status_names[st];
}

ONCE_API const char *once_op_name(once_op op)
{
	if ((unsigned)op >= ONCE_OP_COUNT || op_names[op] == NULL)
		return "unknown";
	return op_names[op];
}
