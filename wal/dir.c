/*
 * wal/dir.c - opening, creating and locking a data directory (wal/dir.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/internal.h"
#include "dir.h"
#include "format.h"
#include "io.h"

#define FORMAT_NAME "FORMAT"
#define FORMAT_TMP "FORMAT.tmp"

/* True if the directory holds nothing but a leftover FORMAT.tmp. */
static bool dir_empty(int fd)
{
	int dup_fd = dup(fd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (d == NULL) {
		if (dup_fd >= 0)
			close(dup_fd);
		return false;
	}
	bool empty = true;
	struct dirent *de;
	while (empty && (de = readdir(d)) != NULL)
		empty = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		        strcmp(de->d_name, FORMAT_TMP) == 0;
	closedir(d);
	return empty;
}

/* Writes FORMAT atomically: temp file, fsync, rename, fsync directory. */
static once_status write_format(int dir_fd, const unsigned char uid[16])
{
	char line[80];
	int n = snprintf(line, sizeof line, "oncestore %u ", ONCE_WAL_VERSION);
	for (int i = 0; i < 16; i++)
		n += snprintf(line + n, sizeof line - (size_t)n, "%02x", uid[i]);
	n += snprintf(line + n, sizeof line - (size_t)n, "\n");
	int fd = once__io_create_tmp(dir_fd, FORMAT_TMP);
	if (fd < 0)
		return ONCE_IO;
	bool ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	ok = ok && renameat(dir_fd, FORMAT_TMP, dir_fd, FORMAT_NAME) == 0 && once__io_sync_dir(dir_fd);
	return ok ? ONCE_OK : ONCE_IO;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool once__dir_parse_format(const char *text, size_t len, unsigned char uid[16])
{
	char expect[32];
	int n = snprintf(expect, sizeof expect, "oncestore %u ", ONCE_WAL_VERSION);
	if (len != (size_t)n + 33 || memcmp(text, expect, (size_t)n) != 0 || text[len - 1] != '\n')
		return false;
	for (int i = 0; i < 16; i++) {
		int hi = hex_digit(text[n + 2 * i]), lo = hex_digit(text[n + 2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		uid[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static once_status read_or_make_format(int dir_fd, unsigned char uid[16])
{
	int fd;
	once_status st = once__io_open_regular(dir_fd, FORMAT_NAME, &fd);
	if (st == ONCE_NOT_FOUND) {
		if (!dir_empty(dir_fd))
			return ONCE_CORRUPT; /* files without a FORMAT: not ours to use */
		if (!once__crypto_init())
			return ONCE_NOMEM;
		once__random(uid, 16);
		return write_format(dir_fd, uid);
	}
	if (st != ONCE_OK)
		return st; /* ONCE_CORRUPT: FORMAT is not a regular file */
	char text[128];
	ssize_t got = read(fd, text, sizeof text);
	close(fd);
	if (got < 0)
		return ONCE_IO;
	return once__dir_parse_format(text, (size_t)got, uid) ? ONCE_OK : ONCE_CORRUPT;
}

/*
 * Makes the data directory's own entry in its parent durable: fsync of the
 * parent, as PostgreSQL's initdb does.  Done at every open, not only when
 * mkdir made it: a store that crashed between its mkdir and this sync
 * finds the directory present at the next open, but its name may still
 * live only in the page cache.
 */
static bool sync_parent(const char *path)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--; /* "a/b/" names b */
	size_t cut = len;
	while (cut > 0 && path[cut - 1] != '/')
		cut--;
	char *parent = cut == 0 ? strdup(".") : strndup(path, cut);
	if (parent == NULL)
		return false;
	int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(parent);
	/* A parent the store may search but not read (mode 0711, say) cannot
	 * be opened to sync it; PostgreSQL's fsync_fname goes on in that case
	 * too.  Whoever made the data directory there synced it (`oncestore
	 * init` run by its owner, or a package's install step). */
	if (fd < 0)
		return errno == EACCES;
	bool ok = once__io_sync_dir(fd);
	close(fd);
	return ok;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Takes the directory's lock, retrying while another store holds it for
 * up to wait_ms.  Polling, not a blocking flock with a timer: a signal
 * handler or an alarm in the host must not be needed, and the holder's
 * close releases the lock within one poll (5 ms). */
static int lock_waiting(int fd, uint32_t wait_ms)
{
	uint64_t deadline = monotonic_ms() + wait_ms;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK || monotonic_ms() >= deadline)
			return -1;
		struct timespec nap = {0, 5 * 1000000L};
		nanosleep(&nap, NULL);
	}
}

once_status once__dir_open(const char *path, struct once__dir *out)
{
	return once__dir_open_wait(path, 0, out);
}

once_status once__dir_open_wait(const char *path, uint32_t wait_ms, struct once__dir *out)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return ONCE_IO;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ONCE_IO;
	if (!sync_parent(path)) {
		close(fd);
		return ONCE_IO;
	}
	/* flock locks belong to the open file description, so a second open
	 * of the same directory is refused in this process as in another. */
	if (lock_waiting(fd, wait_ms) != 0) {
		once_status st = errno == EWOULDBLOCK ? ONCE_LOCKED : ONCE_IO;
		close(fd);
		return st;
	}
	once_status st = read_or_make_format(fd, out->uid);
	if (st != ONCE_OK) {
		close(fd); /* closing drops the lock */
		return st;
	}
	out->fd = fd;
	return ONCE_OK;
}

/*
 * options.read_only: the directory as it is.  No mkdir, no flock (a live
 * store holds it exclusively), no sync of the parent, no FORMAT written:
 * a read-only open changes nothing, so it has nothing to make durable.
 */
once_status once__dir_open_ro(const char *path, struct once__dir *out)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ONCE_IO; /* errno kept: ENOENT for a missing directory */
	int ffd;
	once_status st = once__io_open_regular(fd, FORMAT_NAME, &ffd);
	if (st == ONCE_NOT_FOUND) {
		/* Empty (a store being created has only FORMAT.tmp): an empty
		 * store.  Files without a FORMAT: not ours, as for a normal open. */
		st = dir_empty(fd) ? ONCE_NOT_FOUND : ONCE_CORRUPT;
	} else if (st == ONCE_OK) {
		char text[128];
		ssize_t got = read(ffd, text, sizeof text);
		close(ffd);
		st = got < 0 ? ONCE_IO
		     : once__dir_parse_format(text, (size_t)got, out->uid) ? ONCE_OK : ONCE_CORRUPT;
	}
	if (st != ONCE_OK && st != ONCE_NOT_FOUND) {
		int err = errno;
		close(fd);
		errno = err;
		return st;
	}
	out->fd = fd;
	return st;
}

void once__dir_close(struct once__dir *d)
{
	close(d->fd);
	d->fd = -1;
}
