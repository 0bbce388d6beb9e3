/*
 * wal/io.c - the system-call table of wal/io.h, filled with the real calls.
 */
#include <errno.h>
#include <unistd.h>

#include "io.h"

struct once__io once__io = {.pwrite = pwrite, .fdatasync = fdatasync};

void once__io_reset(void)
{
	once__io.pwrite = pwrite;
	once__io.fdatasync = fdatasync;
}

bool once__io_write_all(int fd, const void *buf, size_t len, off_t at)
{
	const unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = once__io.pwrite(fd, p, len, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
		at += n;
	}
	return true;
}
