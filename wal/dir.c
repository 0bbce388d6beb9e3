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
#include "recover.h"

#define FORMAT_NAME "FORMAT"
#define FORMAT_TMP "FORMAT.tmp"

/* What a directory without FORMAT holds (a leftover FORMAT.tmp aside):
 * store files (log-*, snap-*, CHECKPOINT) and others, with an example of
 * each, so the open can say which case it is.  false: it could not be
 * read (errno set). */
struct contents {
	unsigned store, other;
	char store_example[64], other_example[64];
};

static bool is_store_file(const char *n)
{
	return strncmp(n, "log-", 4) == 0 || strncmp(n, "snap-", 5) == 0 ||
	       strncmp(n, ONCE_CHECKPOINT_FILE, strlen(ONCE_CHECKPOINT_FILE)) == 0;
}

static bool scan_contents(int fd, struct contents *c)
{
	memset(c, 0, sizeof *c);
	int dup_fd = dup(fd);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (d == NULL) {
		int err = errno;
		if (dup_fd >= 0)
			close(dup_fd);
		errno = err;
		return false;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0 || strcmp(n, FORMAT_TMP) == 0)
			continue;
		bool ours = is_store_file(n);
		char *example = ours ? c->store_example : c->other_example;
		if ((ours ? c->store++ : c->other++) == 0)
			snprintf(example, sizeof c->store_example, "%.63s", n);
	}
	closedir(d);
	return true;
}

/* Writes FORMAT atomically: temp file, fsync, rename, fsync directory.
 * On ONCE_IO *call names the call that failed (errno set). */
static once_status write_format(int dir_fd, const unsigned char uid[16], const char **call)
{
	char line[80];
	int n = snprintf(line, sizeof line, "oncestore %u ", ONCE_WAL_VERSION);
	for (int i = 0; i < 16; i++)
		n += snprintf(line + n, sizeof line - (size_t)n, "%02x", uid[i]);
	n += snprintf(line + n, sizeof line - (size_t)n, "\n");
	*call = "open " FORMAT_TMP;
	int fd = once__io_create_tmp(dir_fd, FORMAT_TMP);
	if (fd < 0)
		return ONCE_IO;
	ssize_t wrote = write(fd, line, (size_t)n);
	bool ok = wrote == n;
	if (!ok && wrote >= 0)
		errno = ENOSPC;
	*call = "write " FORMAT_TMP;
	if (ok && !(ok = fsync(fd) == 0))
		*call = "fsync " FORMAT_TMP;
	int err = errno;
	if (close(fd) != 0 && ok) {
		ok = false;
		*call = "close " FORMAT_TMP;
		err = errno;
	}
	errno = err;
	if (ok && !(ok = renameat(dir_fd, FORMAT_TMP, dir_fd, FORMAT_NAME) == 0))
		*call = "rename " FORMAT_TMP;
	if (ok && !(ok = once__io_sync_dir(dir_fd)))
		*call = "fsync";
	return ok ? ONCE_OK : ONCE_IO;
}

once_status once__dir_write_format(int dir_fd, const unsigned char uid[16])
{
	const char *call;
	return write_format(dir_fd, uid, &call);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* What is wrong with FORMAT's text, and at which byte (*at); NULL when
 * it is right (uid filled). */
static const char *format_problem(const char *text, size_t len, unsigned char uid[16], size_t *at)
{
	static const char magic[] = "oncestore ";
	size_t m = sizeof magic - 1;
	*at = 0;
	if (len == 0)
		return "the file is empty";
	for (size_t i = 0; i < m; i++)
		if (i >= len || text[i] != magic[i]) {
			*at = i;
			return "it does not begin with \"oncestore \"";
		}
	size_t i = m;
	unsigned version = 0;
	while (i < len && text[i] >= '0' && text[i] <= '9' && version < 100000)
		version = version * 10 + (unsigned)(text[i++] - '0');
	*at = m;
	if (i == m)
		return "no format version number";
	if (version != ONCE_WAL_VERSION)
		return version < ONCE_WAL_VERSION ? "an older format version than this library reads"
		                                  : "a newer format version than this library reads";
	if (i >= len || text[i] != ' ') {
		*at = i;
		return "no space after the version";
	}
	i++;
	for (int k = 0; k < 32; k++, i++) {
		*at = i;
		if (i >= len || text[i] == '\n')
			return "the uid has fewer than 32 hex digits";
		if (hex_digit(text[i]) < 0)
			return "the uid holds a character that is not a lowercase hex digit";
	}
	*at = i;
	if (i >= len || text[i] != '\n')
		return "no newline after the uid's 32 hex digits";
	if (i + 1 != len) {
		*at = i + 1;
		return "bytes after the line";
	}
	for (int k = 0; k < 16; k++) {
		size_t h = i - 32 + 2 * (size_t)k;
		uid[k] = (unsigned char)(hex_digit(text[h]) << 4 | hex_digit(text[h + 1]));
	}
	return NULL;
}

bool once__dir_parse_format(const char *text, size_t len, unsigned char uid[16])
{
	size_t at;
	return format_problem(text, len, uid, &at) == NULL;
}

/* How `oncestore repair --format` is named in lines. */
#define REPAIR_HINT "`oncestore repair --format --yes %s` rebuilds it from the files' headers (without --yes it shows what it would write)"

/* A directory without FORMAT that holds files (c: what): ONCE_CORRUPT,
 * with the line that says which case it is (a read-only open too). */
static once_status no_format(const once_options *opt, const char *path, const struct contents *c)
{
	if (c->store > 0)
		once__logf(opt, ONCE_LOG_ERROR,
		           "open: %s: FORMAT is missing, but the directory holds %u store files (e.g. '%s'); "
		           REPAIR_HINT,
		           path, c->store, c->store_example, path);
	else /* Files without a FORMAT: not ours to use. */
		once__logf(opt, ONCE_LOG_ERROR,
		           "open: %s: not an oncestore data directory (no FORMAT; %u other files, e.g. '%s'); "
		           "point dir at an empty or new directory",
		           path, c->other, c->other_example);
	return ONCE_CORRUPT;
}

/* FORMAT's text (len bytes): ONCE_OK (uid filled), or ONCE_CORRUPT with
 * the line naming the byte and what is wrong (a read-only open too). */
static once_status check_format(const once_options *opt, const char *path, const char *text, size_t len,
                                unsigned char uid[16])
{
	size_t at;
	const char *why = format_problem(text, len, uid, &at);
	if (why == NULL)
		return ONCE_OK;
	if (strstr(why, "format version") != NULL) /* rebuilding would relabel another format */
		once__logf(opt, ONCE_LOG_ERROR,
		           "open: %s/FORMAT at offset %zu: %s (version %u); open it with the oncestore that wrote it",
		           path, at, why, ONCE_WAL_VERSION);
	else
		once__logf(opt, ONCE_LOG_ERROR,
		           "open: %s/FORMAT at offset %zu: %s (expected \"oncestore %u <32 hex digits>\\n\"); "
		           REPAIR_HINT,
		           path, at, why, ONCE_WAL_VERSION, path);
	return ONCE_CORRUPT;
}

static once_status read_or_make_format(int dir_fd, const char *path, const once_options *opt,
                                       unsigned char uid[16])
{
	int fd;
	once_status st = once__io_open_regular(dir_fd, FORMAT_NAME, &fd);
	if (st == ONCE_NOT_FOUND) {
		struct contents c;
		if (!scan_contents(dir_fd, &c)) {
			int err = errno;
			once__logf(opt, ONCE_LOG_ERROR, "open: %s: reading the directory: %s", path, strerror(err));
			errno = err;
			return ONCE_IO;
		}
		if (c.store + c.other > 0)
			return no_format(opt, path, &c);
		if (!once__crypto_init())
			return ONCE_NOMEM;
		once__random(uid, 16);
		const char *call;
		st = write_format(dir_fd, uid, &call);
		if (st == ONCE_IO) {
			int err = errno;
			once__logf(opt, ONCE_LOG_ERROR, "open: %s: creating FORMAT: %s: %s", path, call, strerror(err));
			errno = err;
		}
		return st;
	}
	if (st == ONCE_CORRUPT) {
		once__logf(opt, ONCE_LOG_ERROR, "open: %s/FORMAT: not a regular file; " REPAIR_HINT, path, path);
		return st;
	}
	if (st != ONCE_OK) {
		int err = errno;
		once__logf(opt, ONCE_LOG_ERROR, "open: %s/FORMAT: open: %s", path, strerror(err));
		errno = err;
		return st;
	}
	char text[128];
	ssize_t got = read(fd, text, sizeof text);
	int err = errno;
	close(fd);
	if (got < 0) {
		once__logf(opt, ONCE_LOG_ERROR, "open: %s/FORMAT: read: %s", path, strerror(err));
		errno = err;
		return ONCE_IO;
	}
	return check_format(opt, path, text, (size_t)got, uid);
}

/* The directory that holds path's last component (malloc'd), or NULL. */
static char *parent_of(const char *path)
{
	size_t len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--; /* "a/b/" names b */
	size_t cut = len;
	while (cut > 0 && path[cut - 1] != '/')
		cut--;
	while (cut > 1 && path[cut - 1] == '/')
		cut--; /* "a//b": the parent is "a" */
	return cut == 0 ? strdup(".") : strndup(path, cut);
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
	char *parent = parent_of(path);
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
	return once__dir_open_wait(path, 0, NULL, out);
}

/* Why a call on the directory itself failed, in an operator's words
 * (into buf), for the errors a configuration causes. */
static const char *hint(char *buf, size_t cap, const char *call, const char *path, int err)
{
	char *parent = parent_of(path);
	const char *p = parent != NULL ? parent : "its parent";
	buf[0] = '\0';
	if (strcmp(call, "mkdir") == 0 && err == ENOENT)
		snprintf(buf, cap, " (the parent directory %s does not exist; create it, or point dir at an existing one)", p);
	else if (strcmp(call, "mkdir") == 0 && err == ENOTDIR)
		snprintf(buf, cap, " (a component of %s is not a directory)", p);
	else if (strcmp(call, "mkdir") == 0 && (err == EACCES || err == EPERM))
		snprintf(buf, cap, " (this user may not create a directory in %s; create %s for it, mode 0700)", p, path);
	else if (err == ENOTDIR)
		snprintf(buf, cap, " (%s exists and is not a directory; point dir at a directory)", path);
	else if (err == ELOOP)
		snprintf(buf, cap, " (%s is a symbolic link; name the directory it points to)", path);
	else if (err == EACCES || err == EPERM)
		snprintf(buf, cap, " (this user may not read %s; the store's user should own it, mode 0700)", path);
	else if (err == EROFS)
		snprintf(buf, cap, " (the file system is read-only)");
	else if (err == ENOSPC || err == EDQUOT)
		snprintf(buf, cap, " (the disk is full)");
	free(parent);
	return buf;
}

/* One ERROR line for a failed call on the directory; errno stays err. */
static once_status dir_failed(const once_options *opt, const char *path, const char *call, int err)
{
	char h[512];
	once__logf(opt, ONCE_LOG_ERROR, "open: %s: %s: %s%s", path, call, strerror(err),
	           hint(h, sizeof h, call, path, err));
	errno = err;
	return ONCE_IO;
}

once_status once__dir_open_wait(const char *path, uint32_t wait_ms, const once_options *opt,
                                struct once__dir *out)
{
	if (path[0] == '\0') {
		once__logf(opt, ONCE_LOG_ERROR, "open: dir is empty (NULL: a memory-only store; else name a directory)");
		errno = EINVAL;
		return ONCE_INVALID;
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return dir_failed(opt, path, "mkdir", errno);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dir_failed(opt, path, "open", errno);
	if (!sync_parent(path)) {
		int err = errno;
		close(fd);
		return dir_failed(opt, path, "fsync of its parent directory", err);
	}
	/* flock locks belong to the open file description, so a second open
	 * of the same directory is refused in this process as in another. */
	if (lock_waiting(fd, wait_ms) != 0) {
		int err = errno;
		close(fd);
		if (err != EWOULDBLOCK)
			return dir_failed(opt, path, "flock", err);
		once__logf(opt, ONCE_LOG_ERROR,
		           "open: %s: held by another store (flock), after waiting %" PRIu32
		           " ms (options.lock_wait_ms)",
		           path, wait_ms);
		errno = err;
		return ONCE_LOCKED;
	}
	once_status st = read_or_make_format(fd, path, opt, out->uid);
	if (st != ONCE_OK) {
		int err = errno;
		close(fd); /* closing drops the lock */
		errno = err;
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
once_status once__dir_open_ro(const char *path, const once_options *opt, struct once__dir *out)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ONCE_IO; /* errno kept: ENOENT for a missing directory */
	int ffd;
	once_status st = once__io_open_regular(fd, FORMAT_NAME, &ffd);
	if (st == ONCE_NOT_FOUND) {
		/* Empty (a store being created has only FORMAT.tmp): an empty
		 * store.  Files without a FORMAT: not ours, as for a normal open
		 * (and the same line). */
		struct contents c;
		if (!scan_contents(fd, &c))
			st = ONCE_IO;
		else
			st = c.store + c.other == 0 ? ONCE_NOT_FOUND : no_format(opt, path, &c);
	} else if (st == ONCE_CORRUPT) {
		once__logf(opt, ONCE_LOG_ERROR, "open: %s/FORMAT: not a regular file; " REPAIR_HINT, path, path);
	} else if (st == ONCE_OK) {
		char text[128];
		ssize_t got = read(ffd, text, sizeof text);
		int err = errno;
		close(ffd);
		errno = err;
		st = got < 0 ? ONCE_IO : check_format(opt, path, text, (size_t)got, out->uid);
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
