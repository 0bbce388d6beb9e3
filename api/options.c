/*
 * api/options.c - the options' defaults (documented in include/oncestore.h)
 * and the log line both engines write through options.log.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

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
	o->log = once_log_stderr;
}

ONCE_API void once_log_stderr(void *ctx, once_log_level level, const char *message)
{
	(void)ctx;
	const char *tag = level == ONCE_LOG_ERROR ? "error" : level == ONCE_LOG_WARN ? "warning" : "info";
	/* One fprintf, so lines of concurrent threads do not interleave
	 * (stdio locks the stream for the call). */
	fprintf(stderr, "oncestore: %s: %s\n", tag, message != NULL ? message : "");
}

void once__logv(const once_options *o, once_log_level level, const char *fmt, va_list ap)
{
	if (o == NULL || o->log == NULL)
		return;
	/* A line about a failure is written before its status is returned,
	 * and once_open's caller reads errno (include/oncestore.h). */
	int saved = errno;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	o->log(o->log_ctx, level, line);
	errno = saved;
}

void once__logf(const once_options *o, once_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	once__logv(o, level, fmt, ap);
	va_end(ap);
}

ONCE_API int once_version(void)
{
	return ONCE_VERSION_NUMBER;
}
