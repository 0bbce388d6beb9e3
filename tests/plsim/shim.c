/*
 * tests/plsim/shim.c - LD_PRELOAD library of the power-loss simulator:
 * journals every file-system call that changes a file or directory under
 * $PLSIM_ROOT into $PLSIM_JOURNAL (format: journal.h), then lets it
 * through.  Without both variables it only passes calls through.
 *
 * Intercepted (every spelling glibc exports): open, openat, creat (and
 * their 64 and fortified __*_2 forms), mkdir, mkdirat, rename, renameat,
 * renameat2, unlink, unlinkat, rmdir, write, pwrite, writev, pwritev,
 * pwritev2, ftruncate, truncate, fsync, fdatasync.  fallocate,
 * sync_file_range, link, linkat, syncfs and sync on anything under the
 * root are journaled as PL_UNSUPPORTED (the simulator then fails: its
 * model would be wrong), not modelled.  Not seen at all: calls glibc makes
 * internally (stdio, closedir), mmap'd writes, io_uring, raw syscall().
 * The library uses open64, openat64, mkdir, renameat, unlinkat, write,
 * pwrite64, ftruncate64, fsync, fdatasync (nm -D on liboncestore.so); the
 * rest are here so that a change in the library cannot slip past the
 * journal unseen.
 *
 * The real calls are made with syscall(2), so the shim never calls itself.
 * Plain builds only: an ASan or TSan binary refuses a preloaded library
 * ahead of its runtime.
 */
#undef _FILE_OFFSET_BITS /* define open and open64 as two symbols */
#undef _FORTIFY_SOURCE
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "journal.h"

/* Prototypes of glibc's fortified entry points (bits/fcntl2.h declares
 * them only under _FORTIFY_SOURCE). */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool active;
static int jfd = -1;
static char root[PATH_MAX];
static size_t root_len;
static uint64_t sync_ids;

/* What an fd number was last seen to be (fstat's dev and ino): under the
 * root or not.  Checked against fstat on every use, so a reused number is
 * looked up again. */
#define FD_CACHE 4096
static struct {
	uint64_t dev, ino;
	int8_t state; /* 0 unknown, 1 under the root, 2 elsewhere */
} fdc[FD_CACHE];

static void init(void)
{
	const char *r = getenv("PLSIM_ROOT"), *j = getenv("PLSIM_JOURNAL");
	if (r == NULL || j == NULL || realpath(r, root) == NULL)
		return;
	root_len = strlen(root);
	jfd = (int)syscall(SYS_openat, AT_FDCWD, j, O_WRONLY | O_APPEND | O_CLOEXEC);
	active = jfd >= 0;
}

static bool on(void)
{
	pthread_once(&init_once, init);
	return active;
}

static bool under_root(const char *path)
{
	return strncmp(path, root, root_len) == 0 && (path[root_len] == '\0' || path[root_len] == '/');
}

static bool fd_under_root(int fd)
{
	char link[64], path[PATH_MAX + 16];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof path - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return under_root(path);
}

/* Appends one record (caller holds the lock). */
static void jrec(uint16_t op, uint16_t flags, uint64_t ino, uint64_t dir, uint64_t dir2, uint64_t ino2,
                 uint64_t off, const char *name, const char *name2, const void *data, size_t len)
{
	struct pl_rec h;
	memset(&h, 0, sizeof h);
	h.op = op;
	h.flags = flags;
	h.ino = ino;
	h.dir = dir;
	h.dir2 = dir2;
	h.ino2 = ino2;
	h.off = off;
	h.len = len;
	h.name_len = (uint16_t)(name ? strlen(name) : 0);
	h.name2_len = (uint16_t)(name2 ? strlen(name2) : 0);
	h.size = (uint32_t)(sizeof h + h.name_len + h.name2_len + len);
	struct iovec iov[4] = {{&h, sizeof h},
	                       {(void *)(uintptr_t)name, h.name_len},
	                       {(void *)(uintptr_t)name2, h.name2_len},
	                       {(void *)(uintptr_t)data, len}};
	int i = 0;
	while (i < 4) {
		ssize_t n = syscall(SYS_writev, jfd, iov + i, 4 - i);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			abort(); /* the journal is the test's evidence: never lose it silently */
		while (i < 4 && (size_t)n >= iov[i].iov_len)
			n -= (ssize_t)iov[i++].iov_len;
		if (i < 4) {
			iov[i].iov_base = (char *)iov[i].iov_base + n;
			iov[i].iov_len -= (size_t)n;
		}
	}
}

/* Is fd a regular file or directory under the root?  *ino, *dir receive
 * its inode and type.  Caller holds the lock. */
static bool fd_tracked(int fd, uint64_t *ino, bool *dir)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
		return false;
	*ino = st.st_ino;
	*dir = S_ISDIR(st.st_mode);
	if (fd >= 0 && fd < FD_CACHE && fdc[fd].state != 0 && fdc[fd].dev == st.st_dev &&
	    fdc[fd].ino == st.st_ino)
		return fdc[fd].state == 1;
	bool t = fd_under_root(fd);
	if (fd >= 0 && fd < FD_CACHE) {
		fdc[fd].dev = st.st_dev;
		fdc[fd].ino = st.st_ino;
		fdc[fd].state = t ? 1 : 2;
	}
	return t;
}

/* Regular files and directories only: pipes, sockets and ttys skip the
 * lock (the writer's report pipe). */
static bool maybe_file(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode));
}

/* The directory that (dirfd, path) names an entry of, if it is under the
 * root: its inode in *dir and the entry's name in base.  Caller holds
 * the lock. */
static bool parent_of(int dirfd, const char *path, uint64_t *dir, char base[NAME_MAX + 1])
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf)
		return false;
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	char *slash = strrchr(buf, '/');
	const char *dpart = ".", *b = buf;
	if (slash != NULL) {
		b = slash + 1;
		if (slash == buf) {
			dpart = "/";
		} else {
			*slash = '\0';
			dpart = buf;
		}
	}
	if (strlen(b) > NAME_MAX || *b == '\0' || strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
		return false;
	snprintf(base, NAME_MAX + 1, "%s", b);
	int pfd = (int)syscall(SYS_openat, dirfd, dpart, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return false;
	struct stat st;
	bool ok = fd_under_root(pfd) && fstat(pfd, &st) == 0;
	if (ok)
		*dir = st.st_ino;
	syscall(SYS_close, pfd);
	return ok;
}

static uint64_t ino_at(int dirfd, const char *path)
{
	struct stat st;
	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_ino : 0;
}

static void unsupported(const char *call)
{
	jrec(PL_UNSUPPORTED, 0, 0, 0, 0, 0, 0, call, NULL, NULL, 0);
}

/* ---- open ---- */

static int do_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	if (!on() || !(flags & (O_CREAT | O_TRUNC)))
		return (int)syscall(SYS_openat, dirfd, path, flags, mode);
	pthread_mutex_lock(&lock);
	uint64_t dir = 0;
	char base[NAME_MAX + 1];
	bool t = parent_of(dirfd, path, &dir, base);
	bool existed = !t || !(flags & O_CREAT) || ino_at(dirfd, path) != 0;
	if (t && (flags & O_TMPFILE) == O_TMPFILE)
		unsupported("open(O_TMPFILE)");
	int fd = (int)syscall(SYS_openat, dirfd, path, flags, mode);
	int e = errno;
	struct stat st;
	if (fd >= 0 && t && fstat(fd, &st) == 0) {
		if (fd < FD_CACHE) {
			fdc[fd].dev = st.st_dev;
			fdc[fd].ino = st.st_ino;
			fdc[fd].state = 1;
		}
		if (!existed)
			jrec(PL_CREATE, 0, st.st_ino, dir, 0, 0, 0, base, NULL, NULL, 0);
		else if ((flags & O_TRUNC) && S_ISREG(st.st_mode) && (flags & O_ACCMODE) != O_RDONLY)
			jrec(PL_TRUNC, 0, st.st_ino, 0, 0, 0, 0, NULL, NULL, NULL, 0);
	}
	pthread_mutex_unlock(&lock);
	errno = e;
	return fd;
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(AT_FDCWD, path, flags, m);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(AT_FDCWD, path, flags | O_LARGEFILE, m);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(dirfd, path, flags, m);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t m = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(dirfd, path, flags | O_LARGEFILE, m);
}

int __open_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags, 0); }
int __open64_2(const char *path, int flags) { return do_openat(AT_FDCWD, path, flags | O_LARGEFILE, 0); }
int __openat_2(int dirfd, const char *path, int flags) { return do_openat(dirfd, path, flags, 0); }
int __openat64_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags | O_LARGEFILE, 0);
}

int creat(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int creat64(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC | O_LARGEFILE, mode);
}

/* ---- directory entries ---- */

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	if (!on())
		return (int)syscall(SYS_mkdirat, dirfd, path, mode);
	pthread_mutex_lock(&lock);
	uint64_t dir = 0;
	char base[NAME_MAX + 1];
	bool t = parent_of(dirfd, path, &dir, base);
	int rc = (int)syscall(SYS_mkdirat, dirfd, path, mode);
	int e = errno;
	if (rc == 0 && t)
		jrec(PL_MKDIR, 0, ino_at(dirfd, path), dir, 0, 0, 0, base, NULL, NULL, 0);
	pthread_mutex_unlock(&lock);
	errno = e;
	return rc;
}

int mkdir(const char *path, mode_t mode) { return mkdirat(AT_FDCWD, path, mode); }

int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)
{
	if (!on())
		return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
	pthread_mutex_lock(&lock);
	uint64_t d1 = 0, d2 = 0;
	char b1[NAME_MAX + 1], b2[NAME_MAX + 1];
	bool t1 = parent_of(olddirfd, oldpath, &d1, b1), t2 = parent_of(newdirfd, newpath, &d2, b2);
	uint64_t moved = t1 ? ino_at(olddirfd, oldpath) : 0, replaced = t2 ? ino_at(newdirfd, newpath) : 0;
	int rc = (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, flags);
	int e = errno;
	if (rc == 0 && (t1 || t2)) {
		if (t1 != t2 || flags != 0)
			unsupported(flags != 0 ? "renameat2 with flags" : "rename across the root");
		else
			jrec(PL_RENAME, 0, moved, d1, d2, replaced, 0, b1, b2, NULL, 0);
	}
	pthread_mutex_unlock(&lock);
	errno = e;
	return rc;
}

int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	return renameat2(olddirfd, oldpath, newdirfd, newpath, 0);
}

int rename(const char *oldpath, const char *newpath)
{
	return renameat2(AT_FDCWD, oldpath, AT_FDCWD, newpath, 0);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	if (!on())
		return (int)syscall(SYS_unlinkat, dirfd, path, flags);
	pthread_mutex_lock(&lock);
	uint64_t dir = 0;
	char base[NAME_MAX + 1];
	bool t = parent_of(dirfd, path, &dir, base);
	uint64_t ino = t ? ino_at(dirfd, path) : 0;
	int rc = (int)syscall(SYS_unlinkat, dirfd, path, flags);
	int e = errno;
	if (rc == 0 && t)
		jrec(PL_UNLINK, (flags & AT_REMOVEDIR) ? PL_F_DIR : 0, ino, dir, 0, 0, 0, base, NULL, NULL, 0);
	pthread_mutex_unlock(&lock);
	errno = e;
	return rc;
}

int unlink(const char *path) { return unlinkat(AT_FDCWD, path, 0); }
int rmdir(const char *path) { return unlinkat(AT_FDCWD, path, AT_REMOVEDIR); }

/* ---- data ---- */

/* A write of n bytes at off (-1: the file offset, read here) through
 * `call`, journaled with the bytes it wrote. */
static ssize_t journaled_write(int fd, off_t off, const struct iovec *iov, int cnt,
                               ssize_t (*call)(int, const struct iovec *, int, off_t))
{
	if (!on() || !maybe_file(fd))
		return call(fd, iov, cnt, off);
	pthread_mutex_lock(&lock);
	uint64_t ino = 0;
	bool dir = false;
	bool t = fd_tracked(fd, &ino, &dir);
	off_t at = off;
	if (t && off < 0) {
		struct stat st;
		int fl = (int)syscall(SYS_fcntl, fd, F_GETFL);
		at = fl >= 0 && (fl & O_APPEND) && fstat(fd, &st) == 0 ? st.st_size
		                                                         : lseek(fd, 0, SEEK_CUR);
	}
	ssize_t n = call(fd, iov, cnt, off);
	int e = errno;
	if (n > 0 && t) {
		char *data = malloc((size_t)n);
		if (data == NULL)
			abort();
		size_t k = 0;
		for (int i = 0; i < cnt && k < (size_t)n; i++) {
			size_t c = iov[i].iov_len < (size_t)n - k ? iov[i].iov_len : (size_t)n - k;
			memcpy(data + k, iov[i].iov_base, c);
			k += c;
		}
		jrec(PL_WRITE, 0, ino, 0, 0, 0, (uint64_t)at, NULL, NULL, data, (size_t)n);
		free(data);
	}
	pthread_mutex_unlock(&lock);
	errno = e;
	return n;
}

static ssize_t sys_writev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return off < 0 ? syscall(SYS_writev, fd, iov, cnt)
	               : syscall(SYS_pwritev, fd, iov, cnt, (unsigned long)off, 0ul);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	struct iovec v = {(void *)(uintptr_t)buf, n};
	return journaled_write(fd, -1, &v, 1, sys_writev);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	struct iovec v = {(void *)(uintptr_t)buf, n};
	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	return journaled_write(fd, off, &v, 1, sys_writev);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) { return pwrite(fd, buf, n, (off_t)off); }

ssize_t writev(int fd, const struct iovec *iov, int cnt) { return journaled_write(fd, -1, iov, cnt, sys_writev); }

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (off < 0) {
		errno = EINVAL;
		return -1;
	}
	return journaled_write(fd, off, iov, cnt, sys_writev);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off64_t off)
{
	return pwritev(fd, iov, cnt, (off_t)off);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (flags != 0 && on() && maybe_file(fd)) {
		uint64_t ino;
		bool dir;
		pthread_mutex_lock(&lock);
		if (fd_tracked(fd, &ino, &dir))
			unsupported("pwritev2 with flags");
		pthread_mutex_unlock(&lock);
	}
	return off < 0 ? writev(fd, iov, cnt) : pwritev(fd, iov, cnt, off);
}

int ftruncate(int fd, off_t len)
{
	if (!on() || !maybe_file(fd))
		return (int)syscall(SYS_ftruncate, fd, len);
	pthread_mutex_lock(&lock);
	uint64_t ino = 0;
	bool dir = false;
	bool t = fd_tracked(fd, &ino, &dir);
	int rc = (int)syscall(SYS_ftruncate, fd, len);
	int e = errno;
	if (rc == 0 && t)
		jrec(PL_TRUNC, 0, ino, 0, 0, 0, (uint64_t)len, NULL, NULL, NULL, 0);
	pthread_mutex_unlock(&lock);
	errno = e;
	return rc;
}

int ftruncate64(int fd, off64_t len) { return ftruncate(fd, (off_t)len); }

int truncate(const char *path, off_t len)
{
	if (!on())
		return (int)syscall(SYS_truncate, path, len);
	pthread_mutex_lock(&lock);
	uint64_t dir = 0;
	char base[NAME_MAX + 1];
	bool t = parent_of(AT_FDCWD, path, &dir, base);
	uint64_t ino = t ? ino_at(AT_FDCWD, path) : 0;
	int rc = (int)syscall(SYS_truncate, path, len);
	int e = errno;
	if (rc == 0 && t)
		jrec(PL_TRUNC, 0, ino, 0, 0, 0, (uint64_t)len, NULL, NULL, NULL, 0);
	pthread_mutex_unlock(&lock);
	errno = e;
	return rc;
}

int truncate64(const char *path, off64_t len) { return truncate(path, (off_t)len); }

/* ---- syncs ---- */

static int journaled_sync(int fd, bool data_only)
{
	long nr = data_only ? SYS_fdatasync : SYS_fsync;
	if (!on() || !maybe_file(fd))
		return (int)syscall(nr, fd);
	pthread_mutex_lock(&lock);
	uint64_t ino = 0, id = ++sync_ids;
	bool dir = false;
	bool t = fd_tracked(fd, &ino, &dir);
	if (t)
		jrec(PL_SYNC_START, data_only ? PL_F_DATASYNC : 0, ino, 0, 0, 0, id, NULL, NULL, NULL, 0);
	pthread_mutex_unlock(&lock);
	int rc = (int)syscall(nr, fd);
	int e = errno;
	if (rc == 0 && t) {
		pthread_mutex_lock(&lock);
		jrec(PL_SYNC_DONE, 0, ino, 0, 0, 0, id, NULL, NULL, NULL, 0);
		pthread_mutex_unlock(&lock);
	}
	errno = e;
	return rc;
}

int fsync(int fd) { return journaled_sync(fd, false); }
int fdatasync(int fd) { return journaled_sync(fd, true); }

/* ---- calls the model does not represent: flagged, then passed on ---- */

static void *next(const char *name)
{
	void *f = dlsym(RTLD_NEXT, name);
	if (f == NULL)
		abort();
	return f;
}

static void flag_fd(int fd, const char *call)
{
	if (!on() || !maybe_file(fd))
		return;
	uint64_t ino;
	bool dir;
	pthread_mutex_lock(&lock);
	if (fd_tracked(fd, &ino, &dir))
		unsupported(call);
	pthread_mutex_unlock(&lock);
}

static void flag_path(int dirfd, const char *path, const char *call)
{
	if (!on())
		return;
	uint64_t dir;
	char base[NAME_MAX + 1];
	pthread_mutex_lock(&lock);
	if (parent_of(dirfd, path, &dir, base))
		unsupported(call);
	pthread_mutex_unlock(&lock);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	flag_fd(fd, "fallocate");
	return ((int (*)(int, int, off_t, off_t))next("fallocate"))(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	flag_fd(fd, "fallocate");
	return ((int (*)(int, int, off64_t, off64_t))next("fallocate64"))(fd, mode, off, len);
}

int sync_file_range(int fd, off64_t off, off64_t n, unsigned int flags)
{
	flag_fd(fd, "sync_file_range");
	return ((int (*)(int, off64_t, off64_t, unsigned int))next("sync_file_range"))(fd, off, n, flags);
}

int syncfs(int fd)
{
	flag_fd(fd, "syncfs");
	return ((int (*)(int))next("syncfs"))(fd);
}

void sync(void)
{
	if (on()) {
		pthread_mutex_lock(&lock);
		unsupported("sync");
		pthread_mutex_unlock(&lock);
	}
	((void (*)(void))next("sync"))();
}

int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)
{
	flag_path(newdirfd, newpath, "link");
	return ((int (*)(int, const char *, int, const char *, int))next("linkat"))(olddirfd, oldpath, newdirfd,
	                                                                           newpath, flags);
}

int link(const char *oldpath, const char *newpath)
{
	flag_path(AT_FDCWD, newpath, "link");
	return ((int (*)(const char *, const char *))next("link"))(oldpath, newpath);
}
