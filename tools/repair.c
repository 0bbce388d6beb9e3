/*
 * tools/repair.c - `oncestore repair [--yes] [--truncate-only] DIR`:
 * explicit truncation at the first damage, with a report of what is
 * dropped (SPEC 1.3: only an explicit repair truncates).  This file is the
 * command: its options, the verify-and-fix loop and the closing summary;
 * each fix, the counting and the printing live in the files tools/repair.h
 * lists; `repair --format`, which rebuilds a lost FORMAT, in repair_format.c.
 *
 * Design.  Repair takes the directory's lock exclusively, then loops: run
 * the library's verification (once__recover with no store, exactly what
 * verify and once_open use), and if it names damage, fix that one file and
 * verify again, until the directory verifies clean.  Each fix:
 *
 *   log segment, damage at offset O (a bad record, a record that does not
 *   parse, a torn tail in a segment that is not the newest): the segment
 *   is cut at O (the bad record and everything after it), and every later
 *   segment is removed, because its records follow the gap - unless the
 *   next segment starts exactly at the sequence number the cut one now
 *   ends at (a torn tail left in an older segment: nothing is missing, so
 *   the later ones stay).  A damaged segment header is rewritten when the
 *   first record checks out (its checksum seed is made of the store uid,
 *   segment number and kind, all known, and it names the first sequence
 *   number); otherwise, or when the damage is a gap before the segment,
 *   the whole segment goes.
 *
 *   snapshot: rewritten with a fresh header, its valid prefix of records
 *   copied unchanged and a new SNAPSHOT_END counting them.  When the
 *   damage is not just the end mark, the last kept record is dropped as
 *   well if it is an insert (code_put, refresh_insert, nonce_issue): the
 *   lost record after it may have been that entry's take / consume /
 *   accept, and an entry that is unknown fails closed where one brought
 *   back unspent would not.  A missing snapshot is not repaired.
 *
 *   Re-assertion (unless --truncate-only).  Among the records dropped
 *   after the damage, those that only ever make a credential more spent
 *   or more revoked - code_take, code_finalize, refresh_consume,
 *   nonce_accept, replay_record, access_revoke, refresh_revoke, a revoked
 *   family image, and a refresh_rotate as the consume of its parent (its
 *   child is dropped) - pass their checksums, so they are authentic; they
 *   are written again after the kept records, renumbered.  Replay is
 *   idempotent and monotone (core/restore.c): applied without the records
 *   that preceded them they spend or revoke what is there and do nothing
 *   to what is not.  So truncation never un-spends or un-revokes a
 *   credential whose record survived (SPEC 1.2); only the damaged record
 *   itself is unknown.
 *
 *   Every file is replaced whole: written to <name>.tmp, fsynced, renamed
 *   over the damaged one, the directory fsynced.  The damaged file first,
 *   then the later segments newest first: a crash in between leaves a gap
 *   that the next repair finds and finishes (re-asserting again, which is
 *   harmless).
 *
 *   CHECKPOINT that does not parse: rewritten (once__checkpoint_write)
 *   only when the snapshots of exactly one start S are present, numbered
 *   0..P-1 without a gap, each one clean, and a log segment starting at S
 *   exists (the checkpoint's rotation made it); otherwise repair refuses
 *   and tells the operator what it found.  CHECKPOINT naming a start the
 *   log never reaches: the log segments are wholly covered by the
 *   snapshots, so they are removed (no record is lost).
 *
 * What is dropped is reported per file: the offset, the bytes, and the
 * records after the damage that still pass their checksums, by type.
 * Without --yes nothing changes: repair prints the first fix it would
 * make and exits 1.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "repair.h"

static const char repair_usage[] = "oncestore repair [--yes] [--truncate-only | --format] DIR";
static const char repair_help[] =
	"Makes a damaged data directory open again by explicit truncation at the\n"
	"first damage, and reports what it drops.  Without --yes it changes\n"
	"nothing: it prints the first fix it would make and exits 1.  With --yes\n"
	"it fixes, verifies again, and repeats until DIR verifies clean.  It takes\n"
	"the directory's lock: a running store (ONCE_LOCKED) is never repaired.\n"
	"\n"
	"  --yes             make the changes\n"
	"  --truncate-only   do not re-assert dropped spends and revocations (below)\n"
	"  --format          rebuild a lost or damaged FORMAT file, and nothing else\n"
	"                    (below)\n"
	"\n"
	"Damage in a log segment at offset O: the segment is cut at O (the bad\n"
	"  record and everything after it; the whole segment when the damage is a\n"
	"  gap before it) and every later segment is removed, since its records\n"
	"  follow the gap (unless the next segment starts exactly where the cut\n"
	"  one now ends).  A damaged segment header is rewritten when the first\n"
	"  record checks out under the segment's checksum seed (store uid, segment\n"
	"  number: all known), else the whole segment goes.\n"
	"Damage in a snapshot: it is rewritten with a fresh header, its valid\n"
	"  prefix of records and a new end mark.  If the last kept record is an\n"
	"  insert (code_put, refresh_insert, nonce_issue) it is dropped too: the\n"
	"  lost record after it may have spent that entry, and an unknown entry\n"
	"  fails closed.  A missing snapshot is not repaired.\n"
	"Re-assertion: of the records dropped after the damage, those that only\n"
	"  spend or revoke (code_take, code_finalize, refresh_consume, nonce_accept,\n"
	"  replay_record, access_revoke, refresh_revoke, revoked family images, and\n"
	"  refresh_rotate as the consume of its parent) still pass their checksums,\n"
	"  so they are written again after the kept records: truncation does not\n"
	"  make a spent or revoked credential usable again.  Only the damaged\n"
	"  record itself is unknown.  --truncate-only leaves them out and lists\n"
	"  their keys instead.\n"
	"A CHECKPOINT that does not parse: rewritten only if the snapshots of\n"
	"  exactly one start S exist (parts 0..P-1, each clean) and a log segment\n"
	"  starting at S exists; otherwise repair refuses (exit 1) and says what it\n"
	"  found: restore CHECKPOINT from a backup.  (If the store had more shards\n"
	"  than snapshot files are present, those shards' snapshots are lost.)\n"
	"A CHECKPOINT whose start the log never reaches: the log segments, wholly\n"
	"  covered by the snapshots, are removed (no record is lost).\n"
	"\n"
	"--format: FORMAT names the store uid that seeds every checksum; without it\n"
	"  the directory cannot be opened, verified or repaired.  Every log segment\n"
	"  and snapshot header carries the uid and the format version too, so\n"
	"  FORMAT is written again from them when it is missing, does not parse, or\n"
	"  names a uid while every header names another, and only when all the\n"
	"  intact headers name one uid and this tool's version.  If they disagree\n"
	"  (a file copied from another store) or none is intact, nothing is written\n"
	"  and the files and the uid each names are listed.  A valid FORMAT is left\n"
	"  alone (exit 1: nothing to rebuild).  Then the directory is verified.\n"
	"\n"
	"Files are replaced whole (tmp file, fsync, rename, fsync the directory).\n"
	"The report gives, for each file, the offset, the bytes dropped and the\n"
	"records dropped that still pass their checksums, by type.  A torn tail\n"
	"of the newest segment is not damage (the next open cuts it).  Zero bytes\n"
	"after a segment's last record are preallocated space, not damage: they\n"
	"are reported as \"N bytes preallocated\" and never counted as dropped.\n"
	"\n"
	"Exit status: 0 clean (repaired, or nothing to repair); 1 dry run with\n"
	"something to repair, damage repair cannot fix, locked, or I/O failure;\n"
	"2 usage error.\n";

/* The loop's state: what the fixes so far dropped and re-asserted, and the
 * last damage seen (the same damage twice means a fix did not take). */
struct repair_run {
	struct cli_dir d;
	struct repair_opts o;
	struct lost total;
	uint64_t reasserted;
	unsigned fixes;
	char last_file[ONCE_FILE_NAME_MAX];
	uint64_t last_at;
	const char *last_why;
};

/* "DIR: clean, nothing to repair" or what the fixes did in all. */
static void print_summary(const struct repair_run *run)
{
	const char *path = run->d.path;
	const struct lost *total = &run->total;
	if (run->fixes == 0) {
		printf("%s: clean, nothing to repair\n", path);
		return;
	}
	printf("%s: repaired (%u fix%s); it verifies clean now.  ", path, run->fixes,
	       run->fixes == 1 ? "" : "es");
	if (total->bytes == 0)
		printf("Nothing was dropped");
	else
		printf("Dropped in all: %" PRIu64 " bytes, ", total->bytes);
	if (total->bytes > 0)
		print_records(total);
	print_zeros(total);
	if (run->reasserted > 0)
		printf("; %" PRIu64 " spends and revocations among them re-asserted", run->reasserted);
	else if (total->notables > 0)
		printf("; %" PRIu64 " of them spent or revoked something (listed above)", total->notables);
	printf(".\n");
}

/* What a clean directory still has that is not damage. */
static void print_notes(const char *path, const struct once__recovery *r)
{
	if (r->torn)
		printf("note: %s/%s: torn tail of %" PRIu64 " bytes at offset %" PRIu64
		       " (never acknowledged): the next open cuts it\n",
		       path, r->torn_file, r->torn_bytes, r->torn_at);
	if (r->zeros_total > 0)
		printf("note: %s: %" PRIu64 " bytes preallocated (zeros after the last record) in %" PRIu64
		       " segment(s): unused space, not damage; nothing to drop\n",
		       path, r->zeros_total, r->zeros_segments);
}

/* False (with the message printed) when a fix left its damage in place. */
static bool damage_is_new(struct repair_run *run, const struct once__recovery *r)
{
	if (strcmp(r->bad_file, run->last_file) == 0 && r->bad_at == run->last_at && r->why == run->last_why) {
		cli_err("repair", "%s/%s: offset %" PRIu64 ": %s: still there after repairing it; giving up",
		        run->d.path, r->bad_file, r->bad_at, r->why);
		return false;
	}
	snprintf(run->last_file, sizeof run->last_file, "%s", r->bad_file);
	run->last_at = r->bad_at;
	run->last_why = r->why;
	return true;
}

/* The fix for the damage verification named, by the kind of file. */
static enum fix_result fix_damage(struct repair_run *run, const struct once__recovery *r)
{
	printf("damage: %s/%s: offset %" PRIu64 ": %s\n", run->d.path, r->bad_file, r->bad_at, r->why);
	if (strcmp(r->bad_file, ONCE_CHECKPOINT_FILE) == 0)
		/* It parsed (has_checkpoint) and names a start the log never
		 * reaches, or it does not parse. */
		return r->has_checkpoint ? fix_short_log(&run->d, r, run->o.yes) : fix_checkpoint(&run->d, run->o.yes);
	if (r->bad_is_snapshot)
		return fix_snapshot(&run->d, r, &run->o, &run->total, &run->reasserted);
	return fix_log(&run->d, r, &run->o, &run->total, &run->reasserted);
}

/* Verifies, fixes the damage named, and again, until the directory
 * verifies clean, a fix is only planned (no --yes), or one fails. */
static int repair_loop(struct repair_run *run)
{
	const char *path = run->d.path;
	for (;;) {
		struct once__recovery r;
		once_status st = once__recover(run->d.fd, run->d.uid, NULL, &r);
		if (st == ONCE_OK) {
			print_summary(run);
			print_notes(path, &r);
			return CLI_OK;
		}
		if (st != ONCE_CORRUPT) {
			cli_read_failed("repair", path, st, &r);
			return CLI_FAIL;
		}
		if (!damage_is_new(run, &r))
			return CLI_FAIL;
		enum fix_result fr = fix_damage(run, &r);
		if (fr == FIX_FAILED)
			return CLI_FAIL;
		if (fr == FIX_PLANNED) {
			printf("dry run: nothing changed.  Run `oncestore repair --yes%s %s` to make this "
			       "change (repair then verifies again and fixes any later damage too).\n",
			       run->o.truncate_only ? " --truncate-only" : "", path);
			return CLI_FAIL;
		}
		run->fixes++;
	}
}

int cli_repair(int argc, char **argv)
{
	const char *path;
	static const char *const flags[] = {"--yes", "--truncate-only", "--format", NULL};
	bool set[3] = {false, false, false};
	int rc = cli_parse(argc, argv, repair_usage, repair_help, flags, set, &path);
	if (rc >= 0)
		return rc;
	if (set[2] && set[1]) {
		cli_err("repair", "--format rebuilds FORMAT only: --truncate-only does not go with it");
		fprintf(stderr, "usage: %s\n", repair_usage);
		return CLI_USAGE;
	}
	if (set[2])
		return repair_format(path, set[0]);
	struct repair_run run = {.o = {.yes = set[0], .truncate_only = set[1]}, .last_at = UINT64_MAX};
	if (!cli_dir_open("repair", path, true, &run.d))
		return CLI_FAIL;
	rc = repair_loop(&run);
	cli_dir_close(&run.d);
	return rc;
}
