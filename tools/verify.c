/*
 * tools/verify.c - `oncestore verify DIR`: checks every file the store
 * would read, changing nothing.
 *
 * The check is the library's own recovery run without a store
 * (once__recover with s == NULL, wal/recover.h): CHECKPOINT's checksum,
 * each snapshot it names (header, every record's checksum, sequence and
 * payload, the end mark and its count), and every log segment after the
 * checkpoint (header, records, sequence continuity within and between
 * segments and from the checkpoint's start).  So verify and once_open
 * cannot disagree about what is corruption.  Files recovery ignores
 * (interrupted writes, every snapshot file CHECKPOINT does not name,
 * segments the checkpoint covers, foreign files) are listed as notes, one
 * per file: the next open removes all but the foreign ones.
 * Zero bytes ending a segment are preallocated space (wal/format.h):
 * counted as such, never as damage or a torn tail.  It takes no lock and
 * reads as a read-only open does (once__recover_live), so it also checks
 * a directory a running store is writing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "recover.h"

static const char verify_usage[] = "oncestore verify DIR";
static const char verify_help[] =
	"Checks every file of the data directory DIR without changing anything:\n"
	"FORMAT, CHECKPOINT, the snapshots it names (header, each record's checksum,\n"
	"sequence number and payload, the end mark) and every log segment after it\n"
	"(header, records, sequence continuity).  It uses the library's recovery\n"
	"code, so it calls corrupt exactly what once_open refuses.\n"
	"\n"
	"It never creates DIR and takes no lock, so it also checks a directory a\n"
	"running store holds: what it reads is the committed checkpoint and the log\n"
	"up to its last complete record.  When a file vanishes or changes while it\n"
	"is read (the store checkpointed, or appended to the newest segment), it\n"
	"reads everything again, up to 10 times; damage that stays is reported.\n"
	"\n"
	"A torn tail of the newest log segment (a crash mid-append, or a record a\n"
	"running store is appending: never acknowledged) is not corruption: it is\n"
	"printed as a note and the next open cuts it.  Leftover files that recovery\n"
	"ignores are notes too.\n"
	"Zero bytes after a segment's last record (or after a torn tail) are space\n"
	"the log preallocated and never wrote: printed as \"N bytes preallocated\",\n"
	"neither damage nor a torn tail, and nothing in them is dropped.\n"
	"\n"
	"Exit status: 0 clean; 1 damaged (the first bad file, its byte offset and\n"
	"why go to stderr), locked, missing or unreadable; 2 usage error.\n";

/* Notes about files recovery does not read, and about modes. */
static void notes(const struct cli_dir *d, const struct once__recovery *r)
{
	struct stat st;
	if (fstat(d->fd, &st) == 0 && (st.st_mode & 0777) != 0700)
		printf("warning: %s: mode %03o, expected 0700\n", d->path, (unsigned)(st.st_mode & 0777));
	struct cli_files fs;
	if (cli_list(d->fd, &fs) != ONCE_OK)
		return;
	for (size_t i = 0; i < fs.n; i++) {
		const struct cli_file *f = &fs.f[i];
		size_t len = strlen(f->name);
		uint64_t num, start;
		uint32_t parts, part;
		if (f->regular && (f->mode & 0077) != 0)
			printf("warning: %s/%s: mode %03o, expected 0600\n", d->path, f->name,
			       (unsigned)(f->mode & 0777));
		if (len > 4 && strcmp(f->name + len - 4, ".tmp") == 0)
			printf("note: %s/%s: an interrupted write (ignored; the next open removes it)\n",
			       d->path, f->name);
		else if (once__parse_snap_file(f->name, &start, &parts, &part) &&
		         (!r->has_checkpoint || !once__checkpoint_names(r->checkpoint_version, r->checkpoint_start,
		                                                        r->checkpoint_parts, f->name)))
			/* The same rule recovery and the open's cleanup apply
			 * (wal/recover.h): a snapshot of the committed start with
			 * another part count, a part number past its count or the
			 * other naming form is a leftover too (issue 13). */
			printf("note: %s/%s: snapshot that CHECKPOINT does not name (ignored by recovery: "
			       "a leftover of an interrupted checkpoint or cleanup; the next open removes it)\n",
			       d->path, f->name);
		else if (once__parse_log_name(f->name, &num) && r->first_segment != 0 &&
		         num < r->first_segment)
			printf("note: %s/%s: covered by the checkpoint (ignored; the next open removes it)\n",
			       d->path, f->name);
		else if (strcmp(f->name, "FORMAT") != 0 && strcmp(f->name, ONCE_CHECKPOINT_FILE) != 0 &&
		         !once__parse_snap_file(f->name, &start, &parts, &part) &&
		         !once__parse_log_name(f->name, &num))
			printf("note: %s/%s: not an oncestore file (ignored)\n", d->path, f->name);
	}
	cli_files_free(&fs);
}

int cli_verify(int argc, char **argv)
{
	const char *path;
	int rc = cli_parse(argc, argv, verify_usage, verify_help, NULL, NULL, &path);
	if (rc >= 0)
		return rc;
	struct cli_dir d;
	if (!cli_dir_open_unlocked("verify", path, &d))
		return CLI_FAIL;
	struct once__recovery r;
	once_status st = once__recover_live(d.fd, d.uid, NULL, &r);
	if (st == ONCE_CORRUPT) {
		cli_err("verify", "%s/%s: offset %" PRIu64 ": %s", path, r.bad_file, r.bad_at, r.why);
		cli_err("verify", "%s: corrupt; once_open refuses it (`oncestore repair %s` shows what a "
		        "repair would drop)", path, path);
		cli_dir_close(&d);
		return CLI_FAIL;
	}
	if (st != ONCE_OK) {
		cli_read_failed("verify", path, st, &r);
		cli_dir_close(&d);
		return CLI_FAIL;
	}
	printf("%s: clean\n", path);
	if (r.attempts > 1)
		printf("  read %" PRIu32 " times: the files changed while they were read (a running store)\n",
		       r.attempts);
	char seq[CLI_START_SEQ_MAX];
	if (r.has_checkpoint)
		printf("  checkpoint: start sequence %s, %" PRIu32 " snapshot(s), %" PRIu64
		       " snapshot records\n",
		       cli_start_seq(seq, r.checkpoint_start), r.checkpoint_parts, r.snapshot_records);
	else
		printf("  checkpoint: none (the log is read from sequence 1)\n");
	if (r.segments > 0) {
		char first[ONCE_FILE_NAME_MAX], last[ONCE_FILE_NAME_MAX];
		once__log_name(first, r.first_segment);
		once__log_name(last, r.last_segment);
		printf("  log: %" PRIu64 " segment(s), %s .. %s, %" PRIu64
		       " records after the checkpoint, next sequence number %" PRIu64 "\n",
		       r.segments, first, last, r.log_records, r.next_seq);
	} else {
		printf("  log: no segments, next sequence number %" PRIu64 "\n", r.next_seq);
	}
	if (r.zeros_total > 0)
		printf("  preallocated: %" PRIu64 " bytes preallocated (zeros after the last record) in %" PRIu64
		       " segment(s): unused space, not damage; nothing is dropped\n",
		       r.zeros_total, r.zeros_segments);
	if (r.torn)
		printf("note: %s/%s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
		       " (a crash mid-append, or a record being appended; never acknowledged): not corruption, "
		       "the next open cuts it\n",
		       path, r.torn_file, r.torn_bytes, r.torn_at);
	notes(&d, &r);
	cli_dir_close(&d);
	return CLI_OK;
}
