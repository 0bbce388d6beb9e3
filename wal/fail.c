/*
 * wal/fail.c - reporting failed system calls (wal/fail.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "fail.h"

void once__syserr_set(struct once__syserr *e, const char *call, const char *file, uint64_t offset)
{
	e->err = errno != 0 ? errno : EIO; /* a write of 0 bytes sets none */
	e->call = call;
	snprintf(e->file, sizeof e->file, "%s", file != NULL ? file : "");
	e->offset = offset;
}

void once__fail_init(struct once__fail *f, const once_options *opt, int64_t (*now)(void *ctx),
                     void *now_ctx)
{
	f->opt = opt;
	f->now = now;
	f->now_ctx = now_ctx;
	atomic_init(&f->write_failures, 0);
	atomic_init(&f->sync_failures, 0);
}

int64_t once__fail_now(const struct once__fail *f)
{
	return f != NULL && f->now != NULL ? f->now(f->now_ctx) : 0;
}

bool once__syserr_is_write(const struct once__syserr *e)
{
	return strcmp(e->call, "pwrite") == 0 || strcmp(e->call, "write") == 0;
}

bool once__syserr_is_sync(const struct once__syserr *e)
{
	return strcmp(e->call, "fdatasync") == 0 || strcmp(e->call, "fsync") == 0;
}

void once__fail_line(const struct once__fail *f, once_log_level level, const char *what,
                     const struct once__syserr *e, const char *tail)
{
	if (f == NULL)
		return;
	int saved = errno;
	once__logf(f->opt, level, "%s: %s %s at offset %" PRIu64 ": %s%s", what, e->call, e->file, e->offset,
	           strerror(e->err), tail != NULL ? tail : "");
	errno = saved;
}

void once__fail_note(struct once__fail *f, once_log_level level, const char *what,
                     const struct once__syserr *e, const char *tail)
{
	if (f == NULL)
		return;
	if (once__syserr_is_write(e))
		atomic_fetch_add(&f->write_failures, 1);
	else if (once__syserr_is_sync(e))
		atomic_fetch_add(&f->sync_failures, 1);
	once__fail_line(f, level, what, e, tail);
}
