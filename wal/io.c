/*
 * wal/io.c - the system-call table of wal/io.h, filled with the real calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

struct once__io once__io = {.pwrite = pwrite, .fdatasync = fdatasync, .fsync = fsync};

void once__io_reset(void)
{
	once__io.pwrite = pwrite;
	once__io.fdatasync = fdatasync;
	once__io.fsync = fsync;
}

bool once__io_sync_data(int fd)
{
	int rc;
	do
		rc = once__io_fdatasync(fd);
	while (rc != 0 && errno == EINTR);
	return rc == 0;
}

bool once__io_sync_dir(int dirfd)
{
	int rc;
	do
		rc = once__io_fsync(dirfd);
	while (rc != 0 && errno == EINTR);
	return rc == 0;
}

bool once__io_write_all(int fd, const void *buf, size_t len, off_t at)
{
	return once__io_write_all_at(fd, buf, len, at, NULL);
}

bool once__io_write_all_at(int fd, const void *buf, size_t len, off_t at, off_t *failed_at)
{
	const unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = once__io_pwrite(fd, p, len, at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC; /* no progress: the device took nothing */
			if (failed_at != NULL)
				*failed_at = at;
			return false;
		}
		p += n;
		len -= (size_t)n;
		at += n;
	}
	return true;
}

once_status once__io_open_regular(int dirfd, const char *name, int *fd)
{
	*fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
	if (*fd < 0) {
		if (errno == ENOENT)
			return ONCE_NOT_FOUND;
		return errno == ELOOP || errno == ENXIO || errno == ENODEV ? ONCE_CORRUPT : ONCE_IO;
	}
	struct stat st;
	once_status verdict = ONCE_OK;
	if (fstat(*fd, &st) != 0)
		verdict = ONCE_IO;
	else if (!S_ISREG(st.st_mode))
		verdict = ONCE_CORRUPT;
	if (verdict != ONCE_OK) {
		int err = errno;
		close(*fd);
		*fd = -1;
		errno = err;
	}
	return verdict;
}

int once__io_create_tmp(int dirfd, const char *name)
{
	unlinkat(dirfd, name, 0);
	return openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}
