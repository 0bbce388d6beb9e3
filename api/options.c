/*
 * api/options.c - the options' defaults (documented in include/oncestore.h),
 * shared by both engines.
 */
#include <string.h>

#include "oncestore.h"

#define DEFAULT_CAPACITY (UINT64_C(1) << 20)

ONCE_API void once_options_init(once_options *o)
{
	if (o == NULL)
		return;
	memset(o, 0, sizeof *o);
	o->sync = ONCE_SYNC_ALWAYS;
	o->sync_interval_ms = 10;
	o->checkpoint_bytes = UINT64_C(64) << 20;
	o->log_buffer_bytes = UINT64_C(64) << 20;
	o->max_codes = DEFAULT_CAPACITY;
	o->max_access_tokens = DEFAULT_CAPACITY;
	o->max_refresh = DEFAULT_CAPACITY;
	o->max_nonces = DEFAULT_CAPACITY;
	o->max_replays = DEFAULT_CAPACITY;
	o->max_key_len = 512;
	o->max_record_len = 64u << 10;
	o->sweep_interval_ms = 1000;
	o->revocation_ttl = 86400;
	o->pg_pool_size = 8;
	o->pg_statement_timeout_ms = 5000;
	o->pg_rotation_grace = 60; /* AttestoPhoenix's default (ATTESTO-PG 2.2.4) */
}
