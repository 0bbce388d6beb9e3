/*
 * tools/repair_checkpoint.c - the fixes for CHECKPOINT (tools/repair.h; the
 * rules are in repair.c's design comment).  A CHECKPOINT naming a start
 * the log never reaches: the log segments, wholly covered by the
 * snapshots, are removed.  A CHECKPOINT that does not parse: rewritten
 * only when the directory shows exactly one checkpoint (the snapshots of
 * one start S, parts 0..P-1, each clean, and a log segment starting at S);
 * otherwise repair refuses and says what it found.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repair.h"

enum fix_result fix_short_log(const struct cli_dir *d, const struct once__recovery *r, bool yes)
{
	uint64_t *segs;
	size_t n;
	if (!later_segments(d, 0, &segs, &n)) {
		cli_err("repair", "%s: could not list the directory", d->path);
		return FIX_FAILED;
	}
	char seq[CLI_START_SEQ_MAX];
	printf("  the log ends at sequence %" PRIu64 ", before the checkpoint's start %s"
	       ": the snapshots hold all it has; remove its %zu segment(s) (no record is lost)\n",
	       r->next_seq ? r->next_seq - 1 : 0, cli_start_seq(seq, r->checkpoint_start), n);
	bool ok = true;
	for (size_t i = n; i-- > 0;) {
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, segs[i]);
		printf("  remove %s/%s\n", d->path, name);
		if (yes && unlinkat(d->fd, name, 0) != 0 && errno != ENOENT) {
			cli_err("repair", "%s/%s: unlink: %s", d->path, name, strerror(errno));
			ok = false;
		}
	}
	free(segs);
	if (!yes)
		return FIX_PLANNED;
	return ok && cli_fsync_dir("repair", d) ? FIX_DONE : FIX_FAILED;
}

/* What the directory shows of the checkpoint CHECKPOINT committed. */
struct survey {
	uint64_t start;    /* the snapshots' start (the last one seen) */
	uint32_t parts;    /* snapshot files */
	uint32_t max_part;
	bool any;          /* a snapshot file is present */
	bool one_start;    /* all of them of one start */
	bool clean;        /* ... each one clean (checked only when the above hold) */
	bool log_at_start; /* a log segment starts at sequence `start` */
};

static void survey_names(const struct cli_files *fs, struct survey *sv)
{
	memset(sv, 0, sizeof *sv);
	sv->one_start = true;
	for (size_t i = 0; i < fs->n; i++) {
		uint64_t s;
		uint32_t part;
		if (!once__parse_snap_name(fs->f[i].name, &s, &part))
			continue;
		if (sv->any && s != sv->start)
			sv->one_start = false;
		sv->start = s;
		sv->any = true;
		sv->parts++;
		if (part > sv->max_part)
			sv->max_part = part;
	}
}

/* Whether the snapshot is clean: a good header, records, a right end mark
 * and nothing after it. */
static bool snapshot_clean(const struct cli_dir *d, const char *name, uint64_t s, uint32_t part)
{
	unsigned char *p;
	size_t len;
	if (cli_read_file(d->fd, name, &p, &len) != ONCE_OK)
		return false;
	struct snap_scan sc;
	snap_scan(d, p, len, s, part, &sc);
	bool ok = sc.header_ok && sc.ended && sc.end_at + once__wal_record_size(8) == len;
	if (!ok)
		printf("  %s/%s is not clean (damage at offset %zu)\n", d->path, name, sc.end_at);
	free(p);
	return ok;
}

static bool log_starts_at(const struct cli_dir *d, const char *name, uint64_t num, uint64_t start)
{
	unsigned char *p;
	size_t len;
	if (cli_read_file(d->fd, name, &p, &len) != ONCE_OK)
		return false;
	struct once__wal_segment seg;
	bool at = log_header(d, p, len, num, &seg) && seg.first_seq == start;
	free(p);
	return at;
}

/* Each snapshot clean, and the checkpoint's segment (starting at S),
 * read in name order until a snapshot is found damaged. */
static void survey_contents(const struct cli_dir *d, const struct cli_files *fs, struct survey *sv)
{
	sv->clean = sv->any && sv->one_start && sv->parts == sv->max_part + 1;
	for (size_t i = 0; sv->clean && i < fs->n; i++) {
		uint64_t s, num;
		uint32_t part;
		if (once__parse_snap_name(fs->f[i].name, &s, &part))
			sv->clean = snapshot_clean(d, fs->f[i].name, s, part);
		else if (once__parse_log_name(fs->f[i].name, &num) && log_starts_at(d, fs->f[i].name, num, sv->start))
			sv->log_at_start = true;
	}
}

/* Prints why CHECKPOINT cannot be rewritten; false when it can. */
static bool refuse(const struct cli_dir *d, const struct survey *sv)
{
	const char *cmd = "repair";
	char seq[CLI_START_SEQ_MAX];
	if (!sv->any)
		cli_err(cmd, "%s/CHECKPOINT: no snapshot files are present: cannot tell which checkpoint "
		        "it committed; restore CHECKPOINT from a backup (nothing changed)", d->path);
	else if (!sv->one_start || sv->parts != sv->max_part + 1)
		cli_err(cmd, "%s/CHECKPOINT: the snapshot files present do not name one checkpoint "
		        "(several starts, or shards missing): restore CHECKPOINT from a backup (nothing "
		        "changed)", d->path);
	else if (!sv->clean)
		cli_err(cmd, "%s/CHECKPOINT: a snapshot of start %016" PRIx64 " is damaged too: restore "
		        "CHECKPOINT from a backup (nothing changed)", d->path, sv->start);
	else if (!sv->log_at_start)
		cli_err(cmd, "%s/CHECKPOINT: no log segment starts at sequence %s, where the "
		        "snapshots' checkpoint began: restore CHECKPOINT from a backup (nothing changed)",
		        d->path, cli_start_seq(seq, sv->start));
	else
		return false;
	return true;
}

enum fix_result fix_checkpoint(const struct cli_dir *d, bool yes)
{
	struct cli_files fs;
	if (cli_list(d->fd, &fs) != ONCE_OK) {
		cli_err("repair", "%s: could not list the directory", d->path);
		return FIX_FAILED;
	}
	struct survey sv;
	survey_names(&fs, &sv);
	survey_contents(d, &fs, &sv);
	cli_files_free(&fs);
	if (refuse(d, &sv))
		return FIX_FAILED;
	char seq[CLI_START_SEQ_MAX];
	printf("  rewrite %s/CHECKPOINT naming start sequence %s and %" PRIu32
	       " snapshot(s): the only checkpoint whose snapshots are present, all clean\n",
	       d->path, cli_start_seq(seq, sv.start), sv.parts);
	if (!yes)
		return FIX_PLANNED;
	once_status st = once__checkpoint_write(d->fd, sv.start, sv.parts);
	if (st != ONCE_OK) {
		cli_err("repair", "%s/CHECKPOINT: writing: ONCE_%s", d->path, once_status_name(st));
		return FIX_FAILED;
	}
	return FIX_DONE;
}
