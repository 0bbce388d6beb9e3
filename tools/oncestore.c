/*
 * tools/oncestore.c - the `oncestore` command line tool over a data
 * directory (SPEC section 4): init, verify, stats, dump, checkpoint,
 * repair; and schema, which prints the PostgreSQL engine's DDL.  This file
 * holds the dispatcher and the commands that open the store; verify is in
 * verify.c, repair in repair.c, schema in schema.c.
 *
 * Exit status of every command: 0 success, 1 failure, 2 usage error.
 * Messages go to stderr and name the file (and the byte offset where
 * there is one); results go to stdout.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "format.h"
#include "internal.h"
#include "recover.h"

/* ---- init ---- */

static const char init_usage[] = "oncestore init DIR";
static const char init_help[] =
	"Creates the data directory DIR (mode 0700) with its FORMAT file (format\n"
	"version and a fresh store uid): it opens a store on DIR and closes it.\n"
	"DIR may be missing or an empty directory (then its mode is set to 0700).\n"
	"It refuses, changing nothing, a directory that already holds a store\n"
	"(FORMAT present) or other files (once_open answers ONCE_CORRUPT).\n"
	"\n"
	"Exit status: 0 created; 1 refused or failed; 2 usage error.\n";

static int cmd_init(int argc, char **argv)
{
	const char *path;
	int rc = cli_parse(argc, argv, init_usage, init_help, NULL, NULL, &path);
	if (rc >= 0)
		return rc;
	struct stat st;
	bool existed = stat(path, &st) == 0;
	if (existed && !S_ISDIR(st.st_mode)) {
		cli_err("init", "%s: exists and is not a directory; nothing done", path);
		return CLI_FAIL;
	}
	if (existed) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		bool has_format = fd >= 0 && faccessat(fd, "FORMAT", F_OK, 0) == 0;
		if (fd >= 0)
			close(fd);
		if (has_format) {
			cli_err("init", "%s: already an oncestore data directory (FORMAT present); nothing done",
			        path);
			return CLI_FAIL;
		}
	}
	once_store *s;
	once_options o;
	cli_options(&o, path);
	once_status ost = once_open(&o, &s);
	if (ost != ONCE_OK) {
		if (ost == ONCE_CORRUPT) {
			/* The library says only "data files fail verification". */
			cli_log_drop();
			cli_err("init", "%s: once_open: ONCE_CORRUPT: the directory is not empty and has no "
			        "FORMAT file: not an oncestore data directory; nothing done", path);
		} else {
			cli_fail("init", path, "once_open", ost, NULL);
		}
		return CLI_FAIL;
	}
	ost = once_close(s);
	if (ost != ONCE_OK) {
		cli_fail("init", path, "once_close", ost, NULL);
		return CLI_FAIL;
	}
	if (existed && (st.st_mode & 0777) != 0700) {
		if (chmod(path, 0700) != 0) {
			perror("oncestore init: chmod");
			return CLI_FAIL;
		}
		printf("%s: mode %03o changed to 0700\n", path, (unsigned)(st.st_mode & 0777));
	}
	struct cli_dir d;
	if (!cli_dir_open("init", path, false, &d))
		return CLI_FAIL;
	printf("initialized %s: format version %u, store uid ", path, (unsigned)ONCE_WAL_VERSION);
	for (int i = 0; i < 16; i++)
		printf("%02x", d.uid[i]);
	printf("\n");
	cli_dir_close(&d);
	return CLI_OK;
}

/* ---- files on disk (stats, checkpoint) ---- */

struct disk {
	uint64_t files, bytes, logs, log_bytes, snaps, snap_bytes;
};

static bool disk_usage(const char *cmd, const char *path, struct disk *u, struct cli_files *keep)
{
	memset(u, 0, sizeof *u);
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct cli_files fs = {0};
	if (fd < 0 || cli_list(fd, &fs) != ONCE_OK) {
		cli_err(cmd, "%s: could not list the directory", path);
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	for (size_t i = 0; i < fs.n; i++) {
		const struct cli_file *f = &fs.f[i];
		uint64_t num, start;
		uint32_t parts, part;
		if (!f->regular)
			continue;
		u->files++;
		u->bytes += f->size;
		if (once__parse_log_name(f->name, &num))
			u->logs++, u->log_bytes += f->size;
		else if (once__parse_snap_file(f->name, &start, &parts, &part))
			u->snaps++, u->snap_bytes += f->size;
	}
	if (keep != NULL)
		*keep = fs;
	else
		cli_files_free(&fs);
	return true;
}

/* ---- stats ---- */

static const char stats_usage[] = "oncestore stats [--json | --prometheus] DIR";
static const char stats_help[] =
	"Opens the store on DIR read-only (options.read_only: no lock taken, nothing\n"
	"in DIR created, written or cut, so it works while a running store holds\n"
	"DIR; it shows the committed checkpoint and the log up to its last complete\n"
	"record) and prints live entries per kind with their heap bytes (and the\n"
	"family tables'), the recovery figures (time, records read, segments, a\n"
	"torn tail found), and the files and bytes on disk; then closes it.  The\n"
	"log, sync, checkpoint and failure figures of a running store come from\n"
	"the application (once_stats, once_stats_prometheus): this read-only open\n"
	"writes nothing, so its own are zero.  (Capacities are the application's\n"
	"setting, not stored on disk, so they are not shown.)\n"
	"\n"
	"  --json        one JSON object instead of the table (a DIR whose name is\n"
	"                not UTF-8 is {\"b64\":\"...\"}, as `oncestore dump --help`\n"
	"                says)\n"
	"  --prometheus  the store's figures in the Prometheus text exposition\n"
	"                format instead (once_stats_prometheus, oncestore(3)), as\n"
	"                of a read-only open: entries and recovery; the capacities,\n"
	"                log, checkpoint and failure families are left out (the\n"
	"                application's /metrics handler serves those), and so are\n"
	"                the files on disk; with --json, a usage error\n"
	"\n"
	"Exit status: 0; 1 when the store cannot be opened (ONCE_CORRUPT,\n"
	"ONCE_IO, ...); 2 usage error.\n";

static const char *const kind_names[5] = {"codes", "access_tokens", "refresh", "nonces", "replays"};

static const once_kind_stats *kind_of(const struct once_stats *st, int k)
{
	const once_kind_stats *ks[5] = {&st->codes, &st->access_tokens, &st->refresh, &st->nonces,
	                                &st->replays};
	return ks[k];
}

static void stats_json(const char *path, const struct once_stats *st, const struct disk *u)
{
	uint64_t total = 0;
	printf("{\"dir\":");
	cli_json_string(path);
	printf(",\"shards\":%" PRIu32 ",\"entries\":{", st->shards);
	for (int k = 0; k < 5; k++) {
		printf("%s\"%s\":%" PRIu64, k ? "," : "", kind_names[k], kind_of(st, k)->entries);
		total += kind_of(st, k)->entries;
	}
	printf(",\"total\":%" PRIu64 "},\"bytes\":{", total);
	for (int k = 0; k < 5; k++)
		printf("%s\"%s\":%" PRIu64, k ? "," : "", kind_names[k], kind_of(st, k)->bytes);
	printf("},\"families\":{\"refresh\":{\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64
	       "},\"access\":{\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 "}}",
	       st->refresh_families.entries, st->refresh_families.bytes, st->access_families.entries,
	       st->access_families.bytes);
	printf(",\"recovery\":{\"ns\":%" PRIu64 ",\"ms\":%.3f,\"log_records\":%" PRIu64
	       ",\"snapshot_records\":%" PRIu64 ",\"dropped_expired\":%" PRIu64 ",\"segments\":%" PRIu64
	       ",\"torn_bytes\":%" PRIu64 "}",
	       st->recovery_ns, (double)st->recovery_ns / 1e6, st->recovered_records,
	       st->recovered_snapshot_records, st->recovery_dropped_expired, st->recovery_segments,
	       st->recovery_torn_bytes);
	printf(",\"log\":{\"syncs\":%" PRIu64 ",\"sync_ns_p50\":%" PRIu64 ",\"sync_ns_p99\":%" PRIu64
	       ",\"sync_ns_p999\":%" PRIu64 ",\"sync_ns_max\":%" PRIu64 ",\"bytes_since_checkpoint\":%" PRIu64
	       ",\"write_failures\":%" PRIu64 ",\"sync_failures\":%" PRIu64 ",\"failure_errno\":%" PRId32 "}",
	       st->syncs, st->sync_ns_p50, st->sync_ns_p99, st->sync_ns_p999, st->sync_ns_max,
	       st->log_bytes_since_checkpoint, st->write_failures, st->sync_failures, st->failure_errno);
	printf(",\"checkpoints\":{\"count\":%" PRIu64 ",\"failures\":%" PRIu64 ",\"ns_last\":%" PRIu64
	       ",\"ns_max\":%" PRIu64 "}",
	       st->checkpoints, st->checkpoint_failures, st->checkpoint_ns_last, st->checkpoint_ns_max);
	printf(",\"files\":{\"count\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"log_segments\":%" PRIu64
	       ",\"log_bytes\":%" PRIu64 ",\"snapshots\":%" PRIu64 ",\"snapshot_bytes\":%" PRIu64 "}}\n",
	       u->files, u->bytes, u->logs, u->log_bytes, u->snaps, u->snap_bytes);
}

/* Since open: the syncs, checkpoints and failures of this run of the tool
 * (its open and close), not of the application's.  A read-only open (what
 * `stats` does) has none, so it says where a running store's are. */
static void stats_log_text(const struct once_stats *st)
{
	if (st->read_only) {
		printf("log, syncs      opened read-only: this run wrote nothing; a running store's log, sync,\n"
		       "                checkpoint and failure figures come from its once_stats or\n"
		       "                once_stats_prometheus\n");
		return;
	}
	printf("log syncs       %" PRIu64 ": p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms; %" PRIu64
	       " bytes since checkpoint\n",
	       st->syncs, (double)st->sync_ns_p50 / 1e6, (double)st->sync_ns_p99 / 1e6,
	       (double)st->sync_ns_p999 / 1e6, (double)st->sync_ns_max / 1e6, st->log_bytes_since_checkpoint);
	printf("checkpoints     %" PRIu64 " (last %.3f ms, longest %.3f ms), %" PRIu64 " failed\n",
	       st->checkpoints, (double)st->checkpoint_ns_last / 1e6, (double)st->checkpoint_ns_max / 1e6,
	       st->checkpoint_failures);
	printf("failures        %" PRIu64 " write, %" PRIu64 " sync", st->write_failures, st->sync_failures);
	if (st->failure_errno != 0)
		printf("; writes stopped: %.*s at offset %" PRIu64 ": %s\n", (int)sizeof st->failure_op,
		       st->failure_op, st->failure_offset, strerror(st->failure_errno));
	else
		printf("\n");
}

static void stats_text(const char *path, const struct once_stats *st, const struct disk *u)
{
	printf("data directory  %s\n", path);
	printf("shards          %" PRIu32 "\n", st->shards);
	printf("\n%-15s %12s %14s\n", "kind", "entries", "heap bytes");
	uint64_t total = 0, bytes = 0;
	for (int k = 0; k < 5; k++) {
		const once_kind_stats *ks = kind_of(st, k);
		printf("%-15s %12" PRIu64 " %14" PRIu64 "\n", kind_names[k], ks->entries, ks->bytes);
		total += ks->entries;
		bytes += ks->bytes;
	}
	printf("%-15s %12" PRIu64 " %14" PRIu64 "\n", "total", total, bytes);
	printf("%-15s %12" PRIu64 " %14" PRIu64 "\n", "refresh fam.", st->refresh_families.entries,
	       st->refresh_families.bytes);
	printf("%-15s %12" PRIu64 " %14" PRIu64 "\n", "access fam.", st->access_families.entries,
	       st->access_families.bytes);
	printf("\nrecovery        %.3f ms: %" PRIu64 " snapshot records loaded, %" PRIu64
	       " log records replayed, %" PRIu64 " expired entries dropped\n",
	       (double)st->recovery_ns / 1e6, st->recovered_snapshot_records, st->recovered_records,
	       st->recovery_dropped_expired);
	/* A read-only open (this tool's) leaves a torn tail where it is. */
	printf("                %" PRIu64 " log segment(s) read, %" PRIu64 " torn tail bytes %s\n",
	       st->recovery_segments, st->recovery_torn_bytes, st->read_only ? "found, left in place" : "cut");
	stats_log_text(st);
	printf("on disk         %" PRIu64 " files, %" PRIu64 " bytes: %" PRIu64 " log segment(s) (%" PRIu64
	       " bytes), %" PRIu64 " snapshot(s) (%" PRIu64 " bytes)\n",
	       u->files, u->bytes, u->logs, u->log_bytes, u->snaps, u->snap_bytes);
}

/* --prometheus: the library's own text (once_stats_prometheus), sized by
 * a first call (again if a figure grew a digit in between); then closes
 * the store. */
static int stats_prometheus(const char *path, once_store *s)
{
	size_t n = once_stats_prometheus(s, NULL, 0), need;
	char *text = NULL;
	for (;;) {
		char *bigger = realloc(text, n + 1);
		if (bigger == NULL) {
			free(text);
			text = NULL;
			break;
		}
		text = bigger;
		if ((need = once_stats_prometheus(s, text, n + 1)) <= n)
			break;
		n = need;
	}
	once_status cst = once_close(s);
	if (text == NULL) {
		cli_err("stats", "out of memory");
		return CLI_FAIL;
	}
	fputs(text, stdout);
	free(text);
	if (cst != ONCE_OK) {
		cli_fail("stats", path, "once_close", cst, NULL);
		return CLI_FAIL;
	}
	return CLI_OK;
}

static int cmd_stats(int argc, char **argv)
{
	const char *path;
	static const char *const flags[] = {"--json", "--prometheus", NULL};
	bool set[2] = {false, false};
	int rc = cli_parse(argc, argv, stats_usage, stats_help, flags, set, &path);
	if (rc >= 0)
		return rc;
	if (set[0] && set[1]) {
		cli_err("stats", "--json and --prometheus: one format only");
		fprintf(stderr, "usage: %s\n", stats_usage);
		return CLI_USAGE;
	}
	if (!cli_is_data_dir("stats", path))
		return CLI_FAIL;
	once_store *s;
	if (cli_store_inspect("stats", path, &s) != ONCE_OK)
		return CLI_FAIL;
	if (set[1])
		return stats_prometheus(path, s);
	struct once_stats st;
	once_stats(s, &st);
	struct disk u;
	bool listed = disk_usage("stats", path, &u, NULL);
	once_status cst = once_close(s);
	if (!listed)
		return CLI_FAIL;
	if (set[0])
		stats_json(path, &st, &u);
	else
		stats_text(path, &st, &u);
	if (cst != ONCE_OK) {
		cli_fail("stats", path, "once_close", cst, NULL);
		return CLI_FAIL;
	}
	return CLI_OK;
}

/* ---- dump ---- */

static const char dump_usage[] = "oncestore dump DIR";
static const char dump_help[] =
	"Opens the store on DIR read-only (as `oncestore stats`: no lock, nothing\n"
	"written, works while a running store holds DIR) and prints every live\n"
	"entry as one JSON line, sorted so that two dumps of the same state compare\n"
	"equal:\n"
	"codes, access tokens and their families, refresh tokens and their\n"
	"families, nonces, replay-cache entries.  Hashes and metadata only: keys\n"
	"of codes and refresh tokens are the secrets' hashes, and a remembered\n"
	"refresh successor appears as its sealed length and a checksum of the\n"
	"ciphertext, never decrypted (the tool has no successor key).  Access and\n"
	"refresh tokens say \"revoked\":true when their family is revoked, as reads\n"
	"of the store answer (\"consumed\" is the token's own spend).\n"
	"\n"
	"Text: every line is valid UTF-8 JSON.  A field (key, subject, client_id,\n"
	"family_id, ...) whose bytes are valid UTF-8 is a JSON string of that text\n"
	"as is, with only the quote, the backslash and control characters escaped.\n"
	"A field whose bytes are not valid UTF-8 is an object instead:\n"
	"  {\"b64\":\"BASE64\"}   the bytes, standard base64 with padding (RFC 4648)\n"
	"so every field gives back exactly the bytes stored: a string encoded as\n"
	"UTF-8, or the object's b64 decoded.\n"
	"\n"
	"Exit status: 0; 1 when the store cannot be opened; 2 usage error.\n";

struct lines {
	char **v;
	size_t n, cap;
	bool oom;
};

static void collect(void *ctx, const char *line)
{
	struct lines *l = ctx;
	if (l->oom)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		char **g = realloc(l->v, cap * sizeof *g);
		if (g == NULL) {
			l->oom = true;
			return;
		}
		l->v = g;
		l->cap = cap;
	}
	char *copy = strdup(line);
	if (copy == NULL)
		l->oom = true;
	else
		l->v[l->n++] = copy;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_dump(int argc, char **argv)
{
	const char *path;
	int rc = cli_parse(argc, argv, dump_usage, dump_help, NULL, NULL, &path);
	if (rc >= 0)
		return rc;
	if (!cli_is_data_dir("dump", path))
		return CLI_FAIL;
	once_store *s;
	if (cli_store_inspect("dump", path, &s) != ONCE_OK)
		return CLI_FAIL;
	struct lines l = {0};
	once__dump(s, collect, &l);
	once_status cst = once_close(s);
	rc = CLI_OK;
	if (l.oom) {
		cli_err("dump", "%s: out of memory", path);
		rc = CLI_FAIL;
	} else {
		if (l.n > 0)
			qsort(l.v, l.n, sizeof *l.v, cmp_line);
		for (size_t i = 0; i < l.n; i++)
			puts(l.v[i]);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	free(l.v);
	if (cst != ONCE_OK) {
		cli_fail("dump", path, "once_close", cst, NULL);
		rc = CLI_FAIL;
	}
	if (fflush(stdout) != 0) {
		perror("oncestore dump: stdout");
		rc = CLI_FAIL;
	}
	return rc;
}

/* ---- checkpoint ---- */

static const char checkpoint_usage[] = "oncestore checkpoint DIR";
static const char checkpoint_help[] =
	"Opens the store on DIR (recovering it), takes a checkpoint (once_checkpoint:\n"
	"the log moves to a new segment, every shard's live entries go to a\n"
	"snapshot, CHECKPOINT is committed, the snapshots and segments it covers\n"
	"are removed), closes it, and prints the checkpoint's start sequence, its\n"
	"snapshots and the files removed.  The start sequence is printed in\n"
	"decimal and in the hex its snapshot files carry in their names.\n"
	"The store is opened with the tool's default shard count; the snapshot\n"
	"names carry it (snap-S-P-<shard>), so no committed file is replaced.  If\n"
	"nothing was logged since the committed checkpoint and the shard counts\n"
	"are equal, that checkpoint is already this one: its snapshots are kept.\n"
	"\n"
	"It changes DIR, so it takes the directory's lock: on a directory a running\n"
	"store holds it reports ONCE_LOCKED and exits 1.  A running store\n"
	"checkpoints itself (options.checkpoint_bytes, or once_checkpoint called by\n"
	"the application); stop it first to checkpoint from here.\n"
	"\n"
	"Exit status: 0; 1 when the store cannot be opened or the checkpoint\n"
	"fails (the previous checkpoint stays in force); 2 usage error.\n";

static int cmd_checkpoint(int argc, char **argv)
{
	const char *path;
	int rc = cli_parse(argc, argv, checkpoint_usage, checkpoint_help, NULL, NULL, &path);
	if (rc >= 0)
		return rc;
	if (!cli_is_data_dir("checkpoint", path))
		return CLI_FAIL;
	once_store *s;
	if (cli_store_open("checkpoint", path, &s) != ONCE_OK)
		return CLI_FAIL;
	struct disk before, after;
	struct cli_files fb = {0}, fa = {0};
	bool listed = disk_usage("checkpoint", path, &before, &fb);
	once_status st = once_checkpoint(s);
	if (st != ONCE_OK)
		cli_fail("checkpoint", path, "once_checkpoint", st, NULL);
	struct once_stats stats;
	once_stats(s, &stats);
	once_status cst = once_close(s);
	if (cst != ONCE_OK)
		cli_fail("checkpoint", path, "once_close", cst, NULL);
	listed = disk_usage("checkpoint", path, &after, &fa) && listed;
	if (st == ONCE_OK && listed) {
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		bool present = false;
		uint64_t start = 0;
		uint32_t parts = 0, version = 0;
		if (fd >= 0) {
			once__checkpoint_read_version(fd, &present, &start, &parts, &version, NULL, NULL);
			close(fd);
		}
		uint64_t entries = stats.codes.entries + stats.access_tokens.entries +
		                   stats.refresh.entries + stats.nonces.entries + stats.replays.entries;
		char seq[CLI_START_SEQ_MAX];
		printf("%s: checkpoint committed: start sequence %s, %" PRIu32
		       " snapshot(s) holding %" PRIu64 " live entries\n",
		       path, cli_start_seq(seq, start), parts, entries);
		for (uint32_t p = 0; present && p < parts; p++) {
			char name[ONCE_FILE_NAME_MAX];
			once__checkpoint_snap_name(name, version, start, parts, p);
			long i = cli_files_find(&fa, name);
			/* Present before: the committed checkpoint was already this
			 * one (nothing logged since, as many shards), so the
			 * library wrote nothing (wal/persist.c). */
			printf("  %s %s (%" PRIu64 " bytes)\n", cli_files_find(&fb, name) >= 0 ? "kept   " : "wrote  ",
			       name, i >= 0 ? fa.f[i].size : 0);
		}
		for (size_t i = 0; i < fb.n; i++)
			if (fb.f[i].regular && cli_files_find(&fa, fb.f[i].name) < 0)
				printf("  removed %s (%" PRIu64 " bytes): covered by the checkpoint\n",
				       fb.f[i].name, fb.f[i].size);
		printf("  on disk: %" PRIu64 " files, %" PRIu64 " bytes (before: %" PRIu64 " files, %" PRIu64
		       " bytes)\n",
		       after.files, after.bytes, before.files, before.bytes);
	}
	cli_files_free(&fb);
	cli_files_free(&fa);
	return st == ONCE_OK && cst == ONCE_OK && listed ? CLI_OK : CLI_FAIL;
}

/* ---- dispatch ---- */

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{"init", cmd_init, "create a data directory (0700, FORMAT)"},
	{"verify", cli_verify, "check every file without changing anything (exit 0 = clean)"},
	{"stats", cmd_stats, "entries per kind, recovery figures, files on disk (--json, --prometheus)"},
	{"dump", cmd_dump, "every entry as a JSON line, sorted (hashes and metadata only)"},
	{"checkpoint", cmd_checkpoint, "write snapshots and drop the log segments they cover"},
	{"repair", cli_repair, "truncate at the first damage, reporting what is dropped (--yes)"},
	{"schema", cli_schema, "print the PostgreSQL tables' DDL (no DIR; --help for ownership)"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: oncestore COMMAND [options] DIR\n"
	             "       oncestore --version   the tool's version and its data format version\n"
	             "       oncestore --help      this text\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n`oncestore COMMAND --help` describes a command.  Commands that open the store\n"
	             "use ONCE_SYNC_ALWAYS and the default shard count; library messages are\n"
	             "printed to stderr prefixed with \"oncestore: \".\n"
	             "Sequence numbers are printed in decimal; a checkpoint's start sequence,\n"
	             "which snapshot file names carry in hex, is printed in both forms.\n"
	             "Exit status: 0 success, 1 failure (damage, locked, I/O), 2 usage error.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
		if (argc > 2 && strcmp(name, "help") == 0) {
			char *help_argv[] = {argv[2], (char *)"--help", NULL};
			for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
				if (strcmp(argv[2], commands[i].name) == 0)
					return commands[i].run(2, help_argv);
			fprintf(stderr, "oncestore: unknown command '%s'\n", argv[2]);
			usage(stderr);
			return CLI_USAGE;
		}
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(name, "--version") == 0) {
		printf("oncestore %d.%d.%d (data format %u)\n", ONCE_VERSION_MAJOR, ONCE_VERSION_MINOR,
		       ONCE_VERSION_PATCH, (unsigned)ONCE_WAL_VERSION);
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "oncestore: unknown command '%s'\n", name);
	usage(stderr);
	return CLI_USAGE;
}
