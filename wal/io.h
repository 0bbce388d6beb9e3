/*
 * wal/io.h - every system call the log makes goes through this table, so
 * tests can make the n-th fdatasync fail with EIO, a write hit ENOSPC, or
 * a write come back short (SQLite's aSyscall idea).  The library never
 * changes it; production code sees the real calls.
 */
#ifndef ONCE_WAL_IO_H
#define ONCE_WAL_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct once__io {
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t offset);
	int (*fdatasync)(int fd);
};

extern struct once__io once__io;

/* Restores the real calls (tests call it between cases). */
void once__io_reset(void);

/* pwrite (through the table) until all len bytes are at offset `at`: a
 * short write is not an error, the rest follows; EINTR is retried; any
 * other error (or a write of 0 bytes) returns false with errno set. */
bool once__io_write_all(int fd, const void *buf, size_t len, off_t at);

#endif /* ONCE_WAL_IO_H */
