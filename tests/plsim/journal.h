/*
 * tests/plsim/journal.h - the journal the power-loss shim (shim.c) writes
 * and the simulator (fsmodel.c) replays: one record per file-system call
 * of the writer process on a file or directory under PLSIM_ROOT, in the
 * order the calls took effect.
 *
 * Each record is appended with one write() to a file opened O_APPEND,
 * AFTER the real call succeeded, under the shim's one lock (which is held
 * across the real call for every mutating call), so journal order is the
 * order of effects.  A sync is two records: PL_SYNC_START before the real
 * call (under the lock: every write journaled before it completed before
 * it began) and PL_SYNC_DONE after it returned 0.  A record cut short by
 * the SIGKILL is ignored by the reader: the call it describes never
 * returned to the program, so the program acted on nothing it did.
 *
 * Files and directories are named by inode number (st_ino): the inode of
 * a name is fixed from its creation until its last unlink, and the reader
 * starts a new model file on each PL_CREATE / PL_MKDIR, so inode reuse is
 * harmless.
 */
#ifndef ONCE_PLSIM_JOURNAL_H
#define ONCE_PLSIM_JOURNAL_H

#include <stdint.h>

enum pl_op {
	PL_CREATE = 1, /* dir, name -> new regular file ino (open with O_CREAT made it) */
	PL_MKDIR,      /* dir, name -> new directory ino */
	PL_WRITE,      /* ino, off, len bytes of data follow the names */
	PL_TRUNC,      /* ino, off = new size (ftruncate, O_TRUNC) */
	PL_RENAME,     /* dir, name -> dir2, name2; ino moved, ino2 replaced (0: none) */
	PL_UNLINK,     /* dir, name; ino removed (flags PL_F_DIR: rmdir) */
	PL_SYNC_START, /* ino; off = sync id; flags PL_F_DATASYNC for fdatasync */
	PL_SYNC_DONE,  /* off = the id of the PL_SYNC_START it completes */
	PL_UNSUPPORTED /* name = the call: one the model cannot represent */
};

enum { PL_F_DIR = 1, PL_F_DATASYNC = 2 };

struct pl_rec {
	uint32_t size; /* the whole record: header, names, data */
	uint16_t op;
	uint16_t flags;
	uint64_t ino, dir, dir2, ino2;
	uint64_t off, len;
	uint16_t name_len, name2_len; /* names follow the header, no NUL */
	uint32_t pad;
};

#endif /* ONCE_PLSIM_JOURNAL_H */
