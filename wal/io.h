/*
 * wal/io.h - every system call the log makes goes through this table, so
 * tests can make the n-th fdatasync fail with EIO, a write hit ENOSPC, or
 * a write come back short (SQLite's aSyscall idea).  The library never
 * changes it; production code sees the real calls.
 */
#ifndef ONCE_WAL_IO_H
#define ONCE_WAL_IO_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "oncestore.h"

/* Atomic members: the log's writer thread calls through the table while a
 * test swaps an entry (stores and loads are plain moves on x86-64; the
 * atomics make the exchange defined, and visible to ThreadSanitizer). */
struct once__io {
	ssize_t (*_Atomic pwrite)(int fd, const void *buf, size_t n, off_t offset);
	int (*_Atomic fdatasync)(int fd);
	int (*_Atomic fsync)(int fd); /* directories: fdatasync need not write entries */
};

extern struct once__io once__io;

/* Calls through the table.  (GCC reads an _Atomic function pointer with a
 * plain load when it is called directly, so the load is spelled out.) */
static inline ssize_t once__io_pwrite(int fd, const void *buf, size_t n, off_t offset)
{
	return atomic_load_explicit(&once__io.pwrite, memory_order_acquire)(fd, buf, n, offset);
}

static inline int once__io_fdatasync(int fd)
{
	return atomic_load_explicit(&once__io.fdatasync, memory_order_acquire)(fd);
}

static inline int once__io_fsync(int fd)
{
	return atomic_load_explicit(&once__io.fsync, memory_order_acquire)(fd);
}

/* Restores the real calls (tests call it between cases). */
void once__io_reset(void);

/* pwrite (through the table) until all len bytes are at offset `at`: a
 * short write is not an error, the rest follows; EINTR is retried; any
 * other error (or a write of 0 bytes) returns false with errno set. */
bool once__io_write_all(int fd, const void *buf, size_t len, off_t at);
/* The same; on failure *failed_at (if not NULL) receives the offset of the
 * pwrite that failed (after a short write, past `at`).  A pwrite that
 * writes nothing fails with ENOSPC. */
bool once__io_write_all_at(int fd, const void *buf, size_t len, off_t at, off_t *failed_at);

/* fdatasync through the table, EINTR retried: a file's data durable.
 * false with errno set on failure. */
bool once__io_sync_data(int fd);

/* Makes a directory's entries (files created, renamed, removed in it)
 * durable: fsync through the table, EINTR retried.  fdatasync is not
 * enough on a directory.  false with errno set on failure. */
bool once__io_sync_dir(int dirfd);

/*
 * Opens file `name` in directory dirfd for reading, only if it is a
 * regular file: a data directory holds nothing else, and opening a FIFO
 * named like a log segment would block forever.  The open itself never
 * blocks (O_NONBLOCK) and never follows a symbolic link (O_NOFOLLOW).
 * ONCE_OK (*fd open) | ONCE_NOT_FOUND (no such file) | ONCE_CORRUPT (a
 * FIFO, directory, device, socket or symbolic link: foreign) | ONCE_IO
 * (errno set).
 */
once_status once__io_open_regular(int dirfd, const char *name, int *fd);

/*
 * Creates temporary file `name` (mode 0600, for writing) in dirfd, after
 * removing a leftover of that name whatever its type (a FIFO left there
 * would block an open for writing): O_CREAT | O_EXCL | O_NOFOLLOW, so the
 * file written is always a new regular file.  The fd, or -1 with errno.
 */
int once__io_create_tmp(int dirfd, const char *name);

#endif /* ONCE_WAL_IO_H */
