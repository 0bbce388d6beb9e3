/*
 * tools/cli.h - what the `oncestore` command line tool's files share: exit
 * codes, messages, argument parsing, opening a data directory without
 * creating it, opening the store with the tool's options, listing files.
 *
 * The tool links the static library with the internal headers (core/,
 * wal/): verify and repair read the files with the log's own checking
 * functions (wal/format.h, wal/recover.h) instead of a second copy of the
 * format.
 */
#ifndef ONCE_TOOLS_CLI_H
#define ONCE_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "oncestore.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* The commands in files of their own: argv[0] is the command's name. */
int cli_verify(int argc, char **argv); /* verify.c */
int cli_repair(int argc, char **argv); /* repair.c */
int cli_schema(int argc, char **argv); /* schema.c: PostgreSQL DDL, no DIR */

/* "oncestore <cmd>: <message>\n" on stderr. */
void cli_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "<path>: could not read the files: " and, for ONCE_IO, the call, file,
 * offset and strerror recovery named (wal/recover.h); else the status. */
struct once__recovery;
void cli_read_failed(const char *cmd, const char *path, once_status st, const struct once__recovery *r);

/*
 * Parses `cmd [options] DIR`.  Options are the flags named in `flags`
 * (NULL-terminated; each sets the bool at the same index of `set`), plus
 * -h/--help.  Returns -1 when parsing succeeded (*dir set), else the exit
 * code to return: CLI_OK after printing help to stdout, CLI_USAGE after
 * printing the problem and the usage line to stderr.
 */
int cli_parse(int argc, char **argv, const char *usage, const char *help,
              const char *const *flags, bool *set, const char **dir);

/* An existing data directory, opened (never created) and flock'd. */
struct cli_dir {
	const char *path;
	int fd;
	unsigned char uid[16];
};

/*
 * Opens the data directory at path without creating it, takes its flock
 * (shared for reading, exclusive for changing it; never waiting: a store
 * that has it open holds it exclusively, so either way that is
 * ONCE_LOCKED) and reads the store uid from FORMAT.  On failure prints why
 * (naming the file) and returns false.
 */
bool cli_dir_open(const char *cmd, const char *path, bool exclusive, struct cli_dir *d);
/* The same without any lock, for a command that only reads (verify):
 * a running store may write DIR meanwhile, so the reading must be one
 * that copes (once__recover_live). */
bool cli_dir_open_unlocked(const char *cmd, const char *path, struct cli_dir *d);
void cli_dir_close(struct cli_dir *d);

/*
 * True if path is a directory with a FORMAT file; otherwise prints why
 * not (a missing directory is never created) and returns false.  For the
 * commands that open the store, which would otherwise create one.
 */
bool cli_is_data_dir(const char *cmd, const char *path);

/* The tool's store options: dir, ONCE_SYNC_ALWAYS, default shards, no
 * sweeper, no automatic checkpoint, the library's log lines to stderr. */
void cli_options(once_options *o, const char *dir);

/* once_open with cli_options; prints the status on failure.  Takes the
 * directory's lock (ONCE_LOCKED while a running store holds it), recovers
 * as the application would (cuts a torn tail, starts a log segment): for
 * the commands that change the store (checkpoint). */
once_status cli_store_open(const char *cmd, const char *dir, once_store **out);
/* The same with options.read_only (stats, dump): no lock, nothing in dir
 * created, written or cut, so it works while a running store holds dir. */
once_status cli_store_inspect(const char *cmd, const char *dir, once_store **out);

/*
 * The log callback: "oncestore: [warning: ]message" on stderr.  Error lines
 * are held for the tool's report of the call that failed (cli_fail), so
 * that a failure is printed once; cli_log_flush prints any left over as
 * "oncestore: error: message" (cli_err does first, and so does exit).
 */
void cli_log(void *ctx, once_log_level level, const char *message);
void cli_log_flush(void);
/* Forgets the held error lines: for a report that says more than they do. */
void cli_log_drop(void);

/*
 * Reports a library call that failed, on one line of stderr:
 * "oncestore CMD: DIR: CALL: ONCE_<status>: DETAIL", where DETAIL is the
 * error line the library logged during the call (held by cli_log), or
 * else once_strerror(st) followed by hint (NULL: none).
 */
void cli_fail(const char *cmd, const char *dir, const char *call, once_status st, const char *hint);

/* Files of a directory (regular files and others, "." and ".." left out),
 * sorted by name. */
struct cli_file {
	char name[256];
	uint64_t size;
	mode_t mode;
	bool regular;
};
struct cli_files {
	struct cli_file *f;
	size_t n;
};
/* ONCE_OK | ONCE_IO | ONCE_NOMEM. */
once_status cli_list(int dirfd, struct cli_files *out);
void cli_files_free(struct cli_files *fs);
/* Index of name in fs, or -1. */
long cli_files_find(const struct cli_files *fs, const char *name);

/* A whole file read into memory (malloc'd; *len bytes). ONCE_OK |
 * ONCE_IO | ONCE_NOMEM; errno is kept for ONCE_IO. */
once_status cli_read_file(int dirfd, const char *name, unsigned char **p, size_t *len);

/* fsyncs the directory; false (with the message printed) on failure. */
bool cli_fsync_dir(const char *cmd, const struct cli_dir *d);

/* Writes s to stdout as a JSON string (with quotes) when it is valid
 * UTF-8, else as {"b64":"<its bytes in base64>"}, as dump writes fields. */
void cli_json_string(const char *s);

/*
 * A checkpoint's start sequence as the tool prints it: decimal, as every
 * sequence number, then the hex form its snapshot files carry in their
 * names, "32 (hex 20, as in snap-0000000000000020-*)", so that an operator
 * finds the files the number names.
 */
#define CLI_START_SEQ_MAX 96
const char *cli_start_seq(char buf[CLI_START_SEQ_MAX], uint64_t start);

/* The record type's name ("code_put", ...), or "type <n>". */
const char *cli_type_name(unsigned type, char buf[16]);

#endif /* ONCE_TOOLS_CLI_H */
