/*
 * tools/util.c - helpers shared by the commands of the `oncestore` tool
 * (tools/cli.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "dir.h"
#include "format.h"
#include "io.h"
#include "recover.h"

/*
 * The library's error lines, held until the tool reports the call that
 * failed (cli_fail), so that each failure is printed once: the tool's line
 * with the status name and the library's detail in it.  Lines that no
 * report claims are printed before the tool's next message, after a call
 * that succeeded, and at exit.
 */
#define HELD_MAX 8
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static char held[HELD_MAX][1024];
static int nheld;

static void print_held_locked(int from)
{
	for (int i = from; i < nheld; i++)
		fprintf(stderr, "oncestore: error: %s\n", held[i]);
	nheld = 0;
}

void cli_log_flush(void)
{
	pthread_mutex_lock(&held_lock);
	print_held_locked(0);
	pthread_mutex_unlock(&held_lock);
}

void cli_log_drop(void)
{
	pthread_mutex_lock(&held_lock);
	nheld = 0;
	pthread_mutex_unlock(&held_lock);
}

void cli_err(const char *cmd, const char *fmt, ...)
{
	cli_log_flush();
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "oncestore %s: ", cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void cli_read_failed(const char *cmd, const char *path, once_status st, const struct once__recovery *r)
{
	if (st == ONCE_IO && r->io.call != NULL)
		cli_err(cmd, "%s: could not read the files: %s %s at offset %" PRIu64 ": %s", path, r->io.call,
		        r->io.file, r->io.offset, strerror(r->io.err));
	else
		cli_err(cmd, "%s: could not read the files: ONCE_%s: %s", path, once_status_name(st),
		        once_strerror(st));
}

int cli_parse(int argc, char **argv, const char *usage, const char *help,
              const char *const *flags, bool *set, const char **dir)
{
	const char *cmd = argv[0];
	*dir = NULL;
	bool options_done = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!options_done && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
			printf("usage: %s\n\n%s", usage, help);
			return CLI_OK;
		}
		if (!options_done && strcmp(a, "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && a[0] == '-' && a[1] != '\0') {
			bool known = false;
			for (size_t f = 0; flags != NULL && flags[f] != NULL; f++)
				if (strcmp(a, flags[f]) == 0)
					set[f] = known = true;
			if (!known) {
				cli_err(cmd, "unknown option %s", a);
				fprintf(stderr, "usage: %s\n", usage);
				return CLI_USAGE;
			}
			continue;
		}
		if (*dir != NULL) {
			cli_err(cmd, "one data directory only (got %s and %s)", *dir, a);
			fprintf(stderr, "usage: %s\n", usage);
			return CLI_USAGE;
		}
		*dir = a;
	}
	if (*dir == NULL || (*dir)[0] == '\0') {
		cli_err(cmd, "missing data directory");
		fprintf(stderr, "usage: %s\n", usage);
		return CLI_USAGE;
	}
	return -1;
}

/* ---- the data directory ---- */

/* Why a directory without FORMAT cannot be read: beside store files
 * (log-*, snap-*, CHECKPOINT) FORMAT was lost, and `repair --format`
 * rebuilds it; otherwise the directory is not a store at all. */
static void no_format(const char *cmd, int dirfd, const char *path)
{
	struct cli_files fs;
	const char *example = NULL;
	if (cli_list(dirfd, &fs) == ONCE_OK) {
		for (size_t i = 0; i < fs.n && example == NULL; i++) {
			const char *n = fs.f[i].name;
			if (strncmp(n, "log-", 4) == 0 || strncmp(n, "snap-", 5) == 0 ||
			    strcmp(n, "CHECKPOINT") == 0)
				example = n;
		}
		if (example != NULL)
			cli_err(cmd, "%s: FORMAT is missing beside store files (e.g. %s): `oncestore repair "
			        "--format --yes %s` rebuilds it from the files' headers", path, example, path);
		cli_files_free(&fs);
	}
	if (example == NULL)
		cli_err(cmd, "%s: no FORMAT file: not an oncestore data directory "
		        "(`oncestore init` makes one)", path);
}

/* FORMAT: "oncestore <version> <32 hex digits>\n" (wal/dir.h). */
static bool read_format(const char *cmd, const struct cli_dir *d, unsigned char uid[16])
{
	int fd;
	once_status opened = once__io_open_regular(d->fd, "FORMAT", &fd);
	if (opened == ONCE_CORRUPT) {
		cli_err(cmd, "%s/FORMAT: not a regular file: not an oncestore data directory", d->path);
		return false;
	}
	if (opened != ONCE_OK) {
		if (opened == ONCE_NOT_FOUND)
			no_format(cmd, d->fd, d->path);
		else
			cli_err(cmd, "%s/FORMAT: %s", d->path, strerror(errno));
		return false;
	}
	char text[128];
	ssize_t got = read(fd, text, sizeof text - 1);
	int err = errno;
	close(fd);
	if (got < 0) {
		cli_err(cmd, "%s/FORMAT: %s", d->path, strerror(err));
		return false;
	}
	text[got] = '\0';
	unsigned version = 0;
	int n = 0;
	if (sscanf(text, "oncestore %u %n", &version, &n) != 1 || n == 0) {
		cli_err(cmd, "%s/FORMAT: offset 0: does not parse: not an oncestore data directory",
		        d->path);
		return false;
	}
	if (version != ONCE_WAL_VERSION) {
		cli_err(cmd, "%s/FORMAT: format version %u; this tool reads version %u", d->path,
		        version, ONCE_WAL_VERSION);
		return false;
	}
	/* The version is right: what is left to go wrong is the uid. */
	if (!once__dir_parse_format(text, (size_t)got, uid)) {
		cli_err(cmd, "%s/FORMAT: offset %d: bad store uid", d->path, n);
		return false;
	}
	return true;
}

/* lock: LOCK_EX, LOCK_SH, or 0 for none. */
static bool dir_open(const char *cmd, const char *path, int lock, struct cli_dir *d)
{
	d->path = path;
	d->fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0) {
		cli_err(cmd, "%s: %s (nothing created)", path, strerror(errno));
		return false;
	}
	if (lock != 0 && flock(d->fd, lock | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			cli_err(cmd, "%s: ONCE_LOCKED: %s (a running store has it open; stop it first)",
			        path, once_strerror(ONCE_LOCKED));
		else
			cli_err(cmd, "%s: flock: %s", path, strerror(errno));
		close(d->fd);
		d->fd = -1;
		return false;
	}
	if (!read_format(cmd, d, d->uid)) {
		close(d->fd); /* drops the lock */
		d->fd = -1;
		return false;
	}
	return true;
}

bool cli_dir_open(const char *cmd, const char *path, bool exclusive, struct cli_dir *d)
{
	return dir_open(cmd, path, exclusive ? LOCK_EX : LOCK_SH, d);
}

bool cli_dir_open_unlocked(const char *cmd, const char *path, struct cli_dir *d)
{
	return dir_open(cmd, path, 0, d);
}

void cli_dir_close(struct cli_dir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}

bool cli_is_data_dir(const char *cmd, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0) {
		cli_err(cmd, "%s: %s (nothing created; `oncestore init` makes a data directory)", path,
		        strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_err(cmd, "%s: not a directory", path);
		return false;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		cli_err(cmd, "%s: %s", path, strerror(errno));
		return false;
	}
	bool ok = faccessat(fd, "FORMAT", F_OK, 0) == 0;
	if (!ok)
		no_format(cmd, fd, path);
	close(fd);
	return ok;
}

/* ---- the store ---- */

void cli_log(void *ctx, once_log_level level, const char *message)
{
	(void)ctx;
	pthread_mutex_lock(&held_lock);
	if (level == ONCE_LOG_ERROR && nheld < HELD_MAX) {
		snprintf(held[nheld++], sizeof held[0], "%s", message);
	} else {
		print_held_locked(0);
		fprintf(stderr, "oncestore: %s%s\n",
		        level == ONCE_LOG_ERROR ? "error: " : level == ONCE_LOG_WARN ? "warning: " : "",
		        message);
	}
	pthread_mutex_unlock(&held_lock);
}

void cli_fail(const char *cmd, const char *dir, const char *call, once_status st, const char *hint)
{
	pthread_mutex_lock(&held_lock);
	const char *detail = once_strerror(st);
	if (nheld > 0) {
		/* The library's line names the call too ("once_open: ...", or
		 * "open: DIR: ..."), and this line already says both. */
		size_t n = strlen(call);
		detail = held[0];
		if (strncmp(detail, call, n) == 0 && detail[n] == ':' && detail[n + 1] == ' ')
			detail += n + 2;
		else if (strcmp(call, "once_open") == 0 && strncmp(detail, "open: ", 6) == 0)
			detail += 6;
		size_t d = strlen(dir);
		if (strncmp(detail, dir, d) == 0 && detail[d] == ':' && detail[d + 1] == ' ')
			detail += d + 2;
		hint = NULL; /* the library's line says where, and what to run */
	}
	fprintf(stderr, "oncestore %s: %s: %s: ONCE_%s: %s%s\n", cmd, dir, call, once_status_name(st),
	        detail, hint != NULL ? hint : "");
	print_held_locked(1);
	pthread_mutex_unlock(&held_lock);
}

/*
 * Capacities for the tool's store.  They size the hash tables, and walking
 * or freeing a table costs time in proportion to its buckets (cds_lfht
 * visits empty ones too): with the 1 Mi defaults, dump and close of even
 * an empty store take a second or two.  Every live entry takes at least
 * one record of at least 32 bytes in a snapshot or the log, so the bytes
 * on disk bound the entries; recovery never answers FULL, so a bound that
 * is too low costs only longer chains.  Between 1024 and the defaults.
 */
static uint64_t capacity_for(const char *dir)
{
	uint64_t bytes = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct cli_files fs;
	if (fd >= 0 && cli_list(fd, &fs) == ONCE_OK) {
		for (size_t i = 0; i < fs.n; i++)
			if (fs.f[i].regular)
				bytes += fs.f[i].size;
		cli_files_free(&fs);
	}
	if (fd >= 0)
		close(fd);
	uint64_t cap = 1024;
	while (cap < bytes / 32 && cap < (1u << 20))
		cap *= 2;
	return cap;
}

void cli_options(once_options *o, const char *dir)
{
	once_options_init(o);
	uint64_t cap = capacity_for(dir);
	o->max_codes = o->max_access_tokens = o->max_refresh = o->max_nonces = o->max_replays = cap;
	o->dir = dir;
	o->sync = ONCE_SYNC_ALWAYS;
	o->shards = 0;
	o->sweep_interval_ms = 0;          /* the tool sweeps nothing itself */
	o->checkpoint_bytes = UINT64_MAX; /* and checkpoints only when asked */
	o->successor_key = NULL;          /* successors stay sealed */
	o->log = cli_log;
	static bool registered;
	if (!registered)
		registered = atexit(cli_log_flush) == 0;
}

static once_status store_open(const char *cmd, const char *dir, bool read_only, once_store **out)
{
	once_options o;
	cli_options(&o, dir);
	o.read_only = read_only;
	once_status st = once_open(&o, out);
	if (st != ONCE_OK)
		cli_fail(cmd, dir, "once_open", st,
		         st == ONCE_CORRUPT ? " (`oncestore verify` names the damage, `oncestore repair` "
		                              "truncates there)"
		                            : NULL);
	else
		cli_log_flush();
	return st;
}

once_status cli_store_open(const char *cmd, const char *dir, once_store **out)
{
	return store_open(cmd, dir, false, out);
}

once_status cli_store_inspect(const char *cmd, const char *dir, once_store **out)
{
	return store_open(cmd, dir, true, out);
}

/* ---- files ---- */

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const struct cli_file *)a)->name, ((const struct cli_file *)b)->name);
}

once_status cli_list(int dirfd, struct cli_files *out)
{
	out->f = NULL;
	out->n = 0;
	int fd = dup(dirfd);
	DIR *dh = fd >= 0 ? fdopendir(fd) : NULL;
	if (dh == NULL) {
		if (fd >= 0)
			close(fd);
		return ONCE_IO;
	}
	rewinddir(dh);
	size_t cap = 0;
	struct dirent *de;
	once_status st = ONCE_OK;
	while ((de = readdir(dh)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (out->n == cap) {
			cap = cap ? 2 * cap : 32;
			struct cli_file *g = realloc(out->f, cap * sizeof *g);
			if (g == NULL) {
				st = ONCE_NOMEM;
				break;
			}
			out->f = g;
		}
		struct cli_file *f = &out->f[out->n];
		memset(f, 0, sizeof *f);
		snprintf(f->name, sizeof f->name, "%s", de->d_name);
		struct stat sb;
		if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
			continue; /* removed meanwhile */
		f->size = (uint64_t)sb.st_size;
		f->mode = sb.st_mode;
		f->regular = S_ISREG(sb.st_mode);
		out->n++;
	}
	closedir(dh);
	if (st != ONCE_OK) {
		cli_files_free(out);
		return st;
	}
	if (out->n > 0)
		qsort(out->f, out->n, sizeof *out->f, cmp_file);
	return ONCE_OK;
}

void cli_files_free(struct cli_files *fs)
{
	free(fs->f);
	fs->f = NULL;
	fs->n = 0;
}

long cli_files_find(const struct cli_files *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (strcmp(fs->f[i].name, name) == 0)
			return (long)i;
	return -1;
}

once_status cli_read_file(int dirfd, const char *name, unsigned char **p, size_t *len)
{
	*p = NULL;
	*len = 0;
	int fd;
	once_status opened = once__io_open_regular(dirfd, name, &fd);
	if (opened != ONCE_OK)
		return opened == ONCE_NOT_FOUND ? ONCE_IO : opened; /* NOT_FOUND: errno is ENOENT */
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int err = errno;
		close(fd);
		errno = err;
		return ONCE_IO;
	}
	size_t size = (size_t)st.st_size;
	unsigned char *buf = malloc(size > 0 ? size : 1);
	if (buf == NULL) {
		close(fd);
		return ONCE_NOMEM;
	}
	size_t done = 0;
	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* shrank meanwhile: take what is there */
		done += (size_t)n;
	}
	close(fd);
	*p = buf;
	*len = done;
	return ONCE_OK;
}

bool cli_fsync_dir(const char *cmd, const struct cli_dir *d)
{
	if (once__io_sync_dir(d->fd))
		return true;
	cli_err(cmd, "%s: fsync of the directory: %s", d->path, strerror(errno));
	return false;
}

/* Whether s is RFC 3629 UTF-8 (no overlong forms, surrogates or code
 * points past U+10FFFF): the rule core/dump.c applies to dump's fields. */
static bool utf8_valid(const unsigned char *s)
{
	while (*s != '\0') {
		unsigned char c = *s;
		size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
		             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
		if (len == 0)
			return false;
		if (len > 1) {
			unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
			unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
			if (s[1] < lo || s[1] > hi)
				return false;
			for (size_t i = 2; i < len; i++)
				if (s[i] < 0x80 || s[i] > 0xbf)
					return false;
		}
		s += len;
	}
	return true;
}

void cli_json_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	if (!utf8_valid(p)) { /* {"b64":"..."}, as dump writes such bytes */
		static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		size_t n = strlen(s);
		printf("{\"b64\":\"");
		for (size_t i = 0; i < n; i += 3) {
			uint32_t v = ((uint32_t)p[i] << 16) | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			             (i + 2 < n ? p[i + 2] : 0);
			printf("%c%c%c%c", b64[(v >> 18) & 63], b64[(v >> 12) & 63],
			       i + 1 < n ? b64[(v >> 6) & 63] : '=', i + 2 < n ? b64[v & 63] : '=');
		}
		printf("\"}");
		return;
	}
	putchar('"');
	for (; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p); /* ASCII, or a byte of valid UTF-8 */
	}
	putchar('"');
}

const char *cli_start_seq(char buf[CLI_START_SEQ_MAX], uint64_t start)
{
	char name[ONCE_FILE_NAME_MAX];
	once__snap_name(name, start, 1, 0);
	char *dash = strchr(name + 5, '-'); /* "snap-" start "-": part count and part: any */
	if (dash != NULL)
		dash[1] = '\0';
	snprintf(buf, CLI_START_SEQ_MAX, "%" PRIu64 " (hex %" PRIx64 ", as in %s*)", start, start, name);
	return buf;
}

const char *cli_type_name(unsigned type, char buf[16])
{
	static const char *const names[ONCE_WAL_TYPE_END] = {
		[ONCE_WAL_CODE_PUT] = "code_put",
		[ONCE_WAL_CODE_TAKE] = "code_take",
		[ONCE_WAL_CODE_FINALIZE] = "code_finalize",
		[ONCE_WAL_ACCESS_RECORD] = "access_record",
		[ONCE_WAL_ACCESS_REVOKE] = "access_revoke",
		[ONCE_WAL_REFRESH_INSERT] = "refresh_insert",
		[ONCE_WAL_REFRESH_CONSUME] = "refresh_consume",
		[ONCE_WAL_REFRESH_SUCCESSOR] = "refresh_successor",
		[ONCE_WAL_REFRESH_ROTATE] = "refresh_rotate",
		[ONCE_WAL_REFRESH_REVOKE] = "refresh_revoke",
		[ONCE_WAL_NONCE_ISSUE] = "nonce_issue",
		[ONCE_WAL_NONCE_ACCEPT] = "nonce_accept",
		[ONCE_WAL_REPLAY_RECORD] = "replay_record",
		[ONCE_WAL_ACCESS_FAMILY] = "access_family",
		[ONCE_WAL_REFRESH_FAMILY] = "refresh_family",
		[ONCE_WAL_SNAPSHOT_END] = "snapshot_end",
	};
	if (type < ONCE_WAL_TYPE_END && names[type] != NULL)
		return names[type];
	snprintf(buf, 16, "type %u", type);
	return buf;
}
