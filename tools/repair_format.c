/*
 * tools/repair_format.c - `oncestore repair --format [--yes] DIR`: rebuilds
 * a lost or damaged FORMAT from the data files' headers.
 *
 * Without FORMAT a data directory cannot be opened, verified or repaired:
 * FORMAT names the store uid that seeds every checksum.  Every log
 * segment and snapshot header carries that uid and the format version too
 * (repair_uid.c), so FORMAT is written again when all the intact headers
 * agree on both, and the version is this tool's.  Otherwise nothing is
 * written and the message names the files and what each says: guessing
 * between two stores' uids would make one store's files the other's.
 *
 * FORMAT missing, or present but not parsing, or naming a uid no header
 * names while they all agree on another: rebuilt.  FORMAT valid and in
 * agreement with the headers (or no header to contradict it): nothing to
 * do, refused.  It takes the directory's lock exclusively, as repair does,
 * writes FORMAT as the store does (once__dir_write_format: FORMAT.tmp,
 * fsync, rename, fsync the directory), then verifies the directory.
 * Without --yes it prints what it would write and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "dir.h"
#include "io.h"
#include "repair.h"

/* FORMAT as it is now. */
struct format_now {
	enum { FORMAT_MISSING, FORMAT_NOT_REGULAR, FORMAT_DAMAGED, FORMAT_VALID } state;
	unsigned char uid[16]; /* FORMAT_VALID */
	char why[128];         /* FORMAT_DAMAGED: what is wrong with it */
};

/* The directory, opened (never created) and flock'd exclusively, as
 * cli_dir_open does but without reading FORMAT, which may be gone. */
static bool lock_dir(const char *path, struct cli_dir *d)
{
	memset(d, 0, sizeof *d);
	d->path = path;
	d->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		cli_err("repair", "%s: %s (nothing created)", path, strerror(errno));
		return false;
	}
	if (flock(d->fd, LOCK_EX | LOCK_NB) == 0)
		return true;
	if (errno == EWOULDBLOCK)
		cli_err("repair", "%s: ONCE_LOCKED: %s (a running store has it open; stop it first)", path,
		        once_strerror(ONCE_LOCKED));
	else
		cli_err("repair", "%s: flock: %s", path, strerror(errno));
	cli_dir_close(d);
	return false;
}

/* What is wrong with FORMAT text that once__dir_parse_format refused. */
static void diagnose(const char *text, size_t len, char *why, size_t cap)
{
	unsigned version = 0;
	int n = 0;
	if (len == 0)
		snprintf(why, cap, "is empty");
	else if (sscanf(text, "oncestore %u %n", &version, &n) != 1 || n == 0)
		snprintf(why, cap, "does not parse at offset 0");
	else if (version != ONCE_WAL_VERSION)
		snprintf(why, cap, "names format version %u", version);
	else
		snprintf(why, cap, "has a bad store uid at offset %d", n);
}

static bool read_format_now(const struct cli_dir *d, struct format_now *fn)
{
	memset(fn, 0, sizeof *fn);
	int fd;
	once_status st = once__io_open_regular(d->fd, "FORMAT", &fd);
	if (st == ONCE_NOT_FOUND || st == ONCE_CORRUPT) {
		fn->state = st == ONCE_NOT_FOUND ? FORMAT_MISSING : FORMAT_NOT_REGULAR;
		return true;
	}
	char text[128];
	ssize_t got = st == ONCE_OK ? read(fd, text, sizeof text - 1) : -1;
	int err = errno;
	if (st == ONCE_OK)
		close(fd);
	if (got < 0) {
		cli_err("repair", "%s/FORMAT: %s", d->path, strerror(err));
		return false;
	}
	text[got] = '\0';
	if (once__dir_parse_format(text, (size_t)got, fn->uid)) {
		fn->state = FORMAT_VALID;
		return true;
	}
	fn->state = FORMAT_DAMAGED;
	diagnose(text, (size_t)got, fn->why, sizeof fn->why);
	return true;
}

/* Refusals: the headers do not name one store of this version. */
static bool headers_refuse(const struct cli_dir *d, const struct uid_survey *sv)
{
	if (sv->intact == 0) {
		cli_err("repair", "%s: no log segment or snapshot header carries the store uid (%zu such "
		        "file(s), every header damaged): cannot rebuild FORMAT; nothing written",
		        d->path, sv->n);
	} else if (!sv->agree) {
		cli_err("repair", "%s: the log segment and snapshot headers disagree on the store: cannot "
		        "tell which FORMAT to write; nothing written.  Move away the files that are not "
		        "this store's, then run this again:", d->path);
		print_uid_groups(sv);
	} else if (sv->version != ONCE_WAL_VERSION) {
		cli_err("repair", "%s: the files' headers are of format version %u; this tool writes "
		        "version %u: nothing written (use the oncestore release that wrote them)",
		        d->path, sv->version, ONCE_WAL_VERSION);
	} else {
		return false;
	}
	return true;
}

/* FORMAT valid: refused, unless every intact header names one other uid
 * (then it is damaged in a way that still parses: a flipped hex digit). */
static const char *check_valid(const struct cli_dir *d, const struct format_now *fn,
                               const struct uid_survey *sv, char *buf, size_t cap)
{
	char hex[33], want[33];
	uid_hex(hex, fn->uid);
	if (sv->intact > 0 && sv->agree && memcmp(fn->uid, sv->uid, 16) != 0) {
		uid_hex(want, sv->uid);
		snprintf(buf, cap, "FORMAT names store uid %s, every file's header %s", hex, want);
		return buf;
	}
	cli_err("repair", "%s/FORMAT: valid (store uid %s, format version %u)%s: nothing to rebuild; "
	        "nothing written (`oncestore verify %s` names any other damage)", d->path, hex,
	        ONCE_WAL_VERSION, sv->intact > 0 && sv->agree ? ", as the files' headers say" : "", d->path);
	return NULL;
}

/* What is wrong with FORMAT, or NULL (the refusal printed) when nothing
 * is to be written. */
static const char *decide(const struct cli_dir *d, const struct format_now *fn, const struct uid_survey *sv,
                          char *buf, size_t cap)
{
	const char *wrong = NULL;
	switch (fn->state) {
	case FORMAT_NOT_REGULAR:
		cli_err("repair", "%s/FORMAT: not a regular file: move it away, then run this again; "
		        "nothing written", d->path);
		return NULL;
	case FORMAT_VALID:
		wrong = check_valid(d, fn, sv, buf, cap);
		break;
	case FORMAT_MISSING:
		wrong = "FORMAT is missing";
		break;
	case FORMAT_DAMAGED:
		snprintf(buf, cap, "FORMAT %s", fn->why);
		wrong = buf;
		break;
	}
	return wrong == NULL || headers_refuse(d, sv) ? NULL : wrong;
}

static void print_plan(const struct cli_dir *d, const char *wrong, const struct uid_survey *sv)
{
	char hex[33];
	uid_hex(hex, sv->uid);
	printf("damage: %s/FORMAT: %s\n", d->path, wrong);
	printf("  rebuild %s/FORMAT: store uid %s, format version %u, as the headers of all %zu "
	       "log segment(s) and snapshot(s) with an intact header say (", d->path, hex, sv->version,
	       sv->intact);
	print_store_files(stdout, sv, sv->uid, sv->version);
	printf(")\n");
	if (sv->intact < sv->n) {
		printf("  (%zu file(s) with a damaged header do not count: ", sv->n - sv->intact);
		print_store_files(stdout, sv, NULL, 0);
		printf("; `oncestore repair` deals with them once FORMAT is back)\n");
	}
}

/* Writes FORMAT, then verifies the directory under it. */
static int write_and_verify(struct cli_dir *d, const unsigned char uid[16])
{
	once_status st = once__dir_write_format(d->fd, uid);
	if (st != ONCE_OK) {
		cli_err("repair", "%s/FORMAT: writing: %s", d->path, strerror(errno));
		return CLI_FAIL;
	}
	memcpy(d->uid, uid, 16);
	struct once__recovery r;
	st = once__recover(d->fd, d->uid, NULL, &r);
	if (st == ONCE_OK) {
		printf("%s: FORMAT rebuilt; it verifies clean now.\n", d->path);
		return CLI_OK;
	}
	if (st == ONCE_CORRUPT)
		printf("%s: FORMAT rebuilt; the directory still has damage: %s/%s: offset %" PRIu64
		       ": %s (`oncestore repair %s` shows the fix)\n",
		       d->path, d->path, r.bad_file, r.bad_at, r.why, d->path);
	else {
		printf("%s: FORMAT rebuilt, but the files could not be read to verify it:\n", d->path);
		fflush(stdout); /* before the reason, on stderr */
		cli_read_failed("repair", d->path, st, &r);
	}
	return CLI_FAIL;
}

static int rebuild(struct cli_dir *d, bool yes)
{
	struct format_now fn;
	struct uid_survey sv;
	if (!read_format_now(d, &fn) || !survey_uids(d, &sv))
		return CLI_FAIL;
	char buf[160];
	const char *wrong = decide(d, &fn, &sv, buf, sizeof buf);
	int rc = CLI_FAIL;
	if (wrong != NULL) {
		print_plan(d, wrong, &sv);
		if (yes)
			rc = write_and_verify(d, sv.uid);
		else
			printf("dry run: nothing changed.  Run `oncestore repair --format --yes %s` to write "
			       "FORMAT.\n", d->path);
	}
	survey_uids_free(&sv);
	return rc;
}

int repair_format(const char *path, bool yes)
{
	struct cli_dir d;
	if (!lock_dir(path, &d))
		return CLI_FAIL;
	int rc = rebuild(&d, yes);
	cli_dir_close(&d);
	return rc;
}
