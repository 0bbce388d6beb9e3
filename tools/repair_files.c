/*
 * tools/repair_files.c - the file operations `oncestore repair` shares
 * among its fixes (tools/repair.h): replacing a file whole (so a crash
 * leaves the old file or the new one, never half of each), listing the
 * log segments after one, and checking that a log segment's header is
 * this directory's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "repair.h"

bool replace_file(const struct cli_dir *d, const char *name, const unsigned char *p, size_t len)
{
	char tmp[ONCE_FILE_NAME_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	int fd = once__io_create_tmp(d->fd, tmp);
	bool ok = fd >= 0 && once__io_write_all(fd, p, len, 0) && fsync(fd) == 0;
	int err = errno;
	if (fd >= 0 && close(fd) != 0 && ok) {
		ok = false;
		err = errno;
	}
	if (ok && renameat(d->fd, tmp, d->fd, name) != 0) {
		ok = false;
		err = errno;
	}
	if (!ok) {
		unlinkat(d->fd, tmp, 0);
		cli_err("repair", "%s/%s: rewriting: %s", d->path, name, strerror(err));
		return false;
	}
	return cli_fsync_dir("repair", d);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

bool later_segments(const struct cli_dir *d, uint64_t above, uint64_t **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	struct cli_files fs;
	if (cli_list(d->fd, &fs) != ONCE_OK)
		return false;
	*out = malloc((fs.n + 1) * sizeof **out);
	if (*out == NULL) {
		cli_files_free(&fs);
		return false;
	}
	for (size_t i = 0; i < fs.n; i++) {
		uint64_t num;
		if (once__parse_log_name(fs.f[i].name, &num) && num > above)
			(*out)[(*n)++] = num;
	}
	cli_files_free(&fs);
	qsort(*out, *n, sizeof **out, cmp_u64);
	return true;
}

bool log_header(const struct cli_dir *d, const unsigned char *p, size_t len, uint64_t number,
                struct once__wal_segment *seg)
{
	return once__wal_segment_decode(p, len, seg) && seg->kind == ONCE_WAL_KIND_LOG &&
	       seg->number == number && memcmp(seg->uid, d->uid, 16) == 0;
}
