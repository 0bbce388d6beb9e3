/*
 * wal/persist.c - a store's durability: open (recover), the write-path
 * hooks, checkpoints (and the background checkpointer), close.
 *
 * One log per store.  Measured with bench --workload log (README
 * "Durability"): at 32 concurrent committers one log reached 68.8k
 * records/s against 57.5k with 2 logs and 55.4k with 8, because one
 * fdatasync then carries 16 records instead of a few per file; and one log
 * keeps each multi-entry change (rotation, revocation) a single record with
 * one sequence number, with no cross-shard ordering to restore.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "dir.h"
#include "fail.h"
#include "format.h"
#include "internal.h"
#include "io.h"
#include "log.h"
#include "persist.h"
#include "recover.h"
#include "signals.h"
#include "snapshot.h"

struct once__persist {
	struct once__dir dir;
	struct once__log *log;

	pthread_mutex_t checkpoint_lock; /* one checkpoint at a time; guards segment */
	uint64_t segment;                /* number of the segment being appended */
	uint64_t committed_start;        /* the committed checkpoint's (UINT64_MAX: none) */
	uint32_t committed_parts, committed_version; /* which snapshot files it names */

	/* Automatic checkpoints: bytes appended since the last one. */
	_Atomic uint64_t appended;
	_Atomic uint64_t appended_at_checkpoint;
	_Atomic uint64_t snapshot_bytes; /* of the last committed checkpoint */
	_Atomic bool checkpoint_wanted;
	pthread_t checkpointer;
	bool checkpointer_running, stopping;
	pthread_mutex_t wake_lock;
	pthread_cond_t wake;

	struct once__fail fail; /* lines and counts of failed calls (wal/fail.h) */
	/* options.read_only: no log (log NULL), no checkpointer; the first
	 * refused write is logged, the others only counted. */
	bool read_only;
	atomic_flag refusal_logged;

	/* Figures for once_stats. */
	uint64_t recovery_ns, recovered_records, snapshot_records, dropped_expired;
	uint64_t recovery_torn_bytes, recovery_segments;
	_Atomic uint64_t checkpoints, checkpoint_failures;
	_Atomic uint64_t checkpoint_ns_last, checkpoint_ns_max; /* max: under checkpoint_lock */
	_Atomic int64_t last_checkpoint_at;
	/* `appended` at the last committed checkpoint (appended_at_checkpoint
	 * also moves on a failed one, to pace retries): what the next
	 * recovery replays. */
	_Atomic uint64_t appended_at_committed;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the write-path hooks ---- */

static void encode(struct once__buf *b, uint8_t type, const struct once__entry *e, const void *aux)
{
	switch (type) {
	case ONCE_WAL_CODE_PUT: once__enc_code_put(b, e); break;
	case ONCE_WAL_CODE_TAKE: once__enc_key(b, e, true, atomic_load(&e->u.code.consumed_at)); break;
	case ONCE_WAL_CODE_FINALIZE:
	case ONCE_WAL_NONCE_ACCEPT: once__enc_key(b, e, false, 0); break;
	case ONCE_WAL_ACCESS_RECORD: once__enc_access(b, e); break;
	case ONCE_WAL_ACCESS_REVOKE:
	case ONCE_WAL_REFRESH_REVOKE: once__enc_family(b, e); break;
	case ONCE_WAL_REFRESH_INSERT: once__enc_refresh_insert(b, e); break;
	case ONCE_WAL_REFRESH_CONSUME:
		once__enc_key(b, e, true, ((const struct once__consumption *)aux)->consumed_at);
		break;
	case ONCE_WAL_REFRESH_SUCCESSOR: once__enc_successor(b, e, aux); break;
	case ONCE_WAL_REFRESH_ROTATE: {
		const struct once__wal_rotation *rt = aux;
		once__enc_rotate(b, e, rt->consumption, rt->child);
		break;
	}
	case ONCE_WAL_NONCE_ISSUE: once__enc_nonce(b, e); break;
	case ONCE_WAL_REPLAY_RECORD: once__enc_replay(b, e); break;
	default: b->oom = true; break; /* not a state change: a bug, fail closed */
	}
}

/*
 * Whether the log has grown enough since the last checkpoint started for
 * an automatic one: at least as many bytes of log as the last snapshot
 * held.  A checkpoint walks every live entry, so with many entries live a
 * fixed interval would make checkpoints most of the store's work (refresh
 * rotation at 2M live tokens: a third of all CPU).  Paid for by as many
 * logged bytes as it writes, its cost per logged byte stays bounded, and
 * disk use stays below 2 x live data + checkpoint_bytes.
 */
static bool checkpoint_due(const once_store *s, struct once__persist *p)
{
	uint64_t since = atomic_load_explicit(&p->appended, memory_order_relaxed) -
	                 atomic_load_explicit(&p->appended_at_checkpoint, memory_order_relaxed);
	uint64_t every = atomic_load_explicit(&p->snapshot_bytes, memory_order_relaxed);
	if (every < s->opt.checkpoint_bytes)
		every = s->opt.checkpoint_bytes;
	return since >= every;
}

static void want_checkpoint(once_store *s, struct once__persist *p)
{
	if (!checkpoint_due(s, p) || atomic_load(&p->checkpoint_wanted) ||
	    atomic_exchange(&p->checkpoint_wanted, true))
		return;
	pthread_mutex_lock(&p->wake_lock);
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->wake_lock);
}

once_status once__wal_append(once_store *s, uint8_t type, const struct once__entry *e, const void *aux,
                             uint64_t *seq)
{
	struct once__persist *p = s->persist;
	if (p->log == NULL)
		return ONCE_INVALID; /* read-only: the engine table refuses first */
	struct once__buf b;
	once__buf_init(&b);
	encode(&b, type, e, aux);
	once_status st = b.oom || b.len > ONCE_WAL_MAX_PAYLOAD
		? ONCE_NOMEM
		: once__log_append(p->log, type, b.p, (uint32_t)b.len, seq);
	if (st == ONCE_OK) {
		atomic_fetch_add_explicit(&p->appended, once__wal_record_size((uint32_t)b.len),
		                          memory_order_relaxed);
		want_checkpoint(s, p);
	} else if (st == ONCE_IO) {
		atomic_store(&s->wal_failed, true);
	}
	once__buf_free(&b);
	return st;
}

once_status once__wal_commit(once_store *s, uint64_t seq)
{
	struct once__persist *p = s->persist;
	once_status st = once__log_commit(p->log, seq);
	if (st != ONCE_OK)
		atomic_store(&s->wal_failed, true);
	return st == ONCE_OK ? ONCE_OK : ONCE_IO;
}

/* ---- tickets ---- */

/* A read-only store (no log) hands out no tickets: position 0, no
 * descriptor, and every ticket but 0 is one it never handed out. */

once_status once__wal_position(once_store *s, once_ticket *upto)
{
	if (s->persist->log == NULL) {
		*upto = 0;
		return ONCE_OK;
	}
	uint64_t pos;
	once_status st = once__log_position(s->persist->log, &pos);
	*upto = pos;
	if (st != ONCE_OK)
		atomic_store(&s->wal_failed, true);
	return st;
}

int once__wal_event_fd(once_store *s)
{
	if (s->persist->log == NULL) {
		errno = EINVAL;
		return -1;
	}
	return once__log_event_fd(s->persist->log);
}

bool once__wal_event_clear(once_store *s, int fd)
{
	return s->persist->log != NULL && once__log_event_clear(s->persist->log, fd);
}

uint64_t once__wal_next_ticket(once_store *s)
{
	return s->persist->log == NULL ? 0 : once__log_next_seq(s->persist->log);
}

/* ---- directory housekeeping ---- */

/* Removes leftovers: *.tmp files; with `committed`, every snapshot file
 * that the committed checkpoint (version, start, parts; start UINT64_MAX:
 * none) does not name, whatever its start (wal/recover.h); log segments
 * numbered below `first_needed` (0: none).  Called only once that
 * checkpoint's CHECKPOINT is durable. */
static void remove_leftovers(int dirfd, bool committed, uint32_t version, uint64_t start, uint32_t parts,
                             uint64_t first_needed)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	struct dirent *de;
	bool removed = false;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		uint64_t num, snap_start;
		uint32_t snap_parts, part;
		bool doomed = (len > 4 && strcmp(n + len - 4, ".tmp") == 0) ||
		              (committed && once__parse_snap_file(n, &snap_start, &snap_parts, &part) &&
		               !once__checkpoint_names(version, start, parts, n)) ||
		              (once__parse_log_name(n, &num) && num < first_needed);
		if (doomed && unlinkat(dirfd, n, 0) == 0)
			removed = true;
	}
	closedir(d);
	if (removed)
		once__io_sync_dir(dirfd);
}

/* Truncates file `name` in dirfd to `at` bytes and fsyncs it; on failure
 * one ERROR line naming the call. */
static once_status cut_file(struct once__persist *p, int dirfd, const char *name, uint64_t at)
{
	struct once__syserr e;
	int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
	bool ok = fd >= 0;
	if (!ok)
		once__syserr_set(&e, "open", name, 0);
	else if (!(ok = ftruncate(fd, (off_t)at) == 0))
		once__syserr_set(&e, "ftruncate", name, at);
	else if (!(ok = fsync(fd) == 0))
		once__syserr_set(&e, "fsync", name, at);
	if (fd >= 0)
		close(fd);
	if (ok)
		return ONCE_OK;
	once__fail_note(&p->fail, ONCE_LOG_ERROR, "open: cutting the log's end", &e, NULL);
	errno = e.err;
	return ONCE_IO;
}

/* Cuts the newest segment's torn tail (or removes a segment whose header
 * was being written): those records were never acknowledged.  Also cuts
 * its preallocated zeros, silently. */
static once_status cut_torn_tail(once_store *s, struct once__persist *p, int dirfd,
                                 const struct once__recovery *r)
{
	if (!r->torn) {
		if (r->zeros_bytes == 0)
			return ONCE_OK;
		/* Preallocated zeros after the newest segment's records (a crash
		 * or power cut before the log could cut them): unused space, not
		 * a torn tail; cut silently, nothing is lost.  The log goes on in
		 * a new segment, so this one keeps only its records. */
		return cut_file(p, dirfd, r->zeros_file, r->zeros_at);
	}
	once__log(s, ONCE_LOG_WARN,
	          "once_open: %s: dropping a torn tail of %" PRIu64 " bytes at offset %" PRIu64
	          " (a crash mid-append; never acknowledged)",
	          r->torn_file, r->torn_bytes, r->torn_at);
	if (r->torn_at == 0) {
		struct once__syserr e;
		if (unlinkat(dirfd, r->torn_file, 0) != 0)
			once__syserr_set(&e, "unlink", r->torn_file, 0);
		else if (!once__io_sync_dir(dirfd))
			once__syserr_set(&e, "fsync", ".", 0);
		else
			return ONCE_OK;
		once__fail_note(&p->fail, ONCE_LOG_ERROR, "open: removing a torn segment", &e, NULL);
		errno = e.err;
		return ONCE_IO;
	}
	return cut_file(p, dirfd, r->torn_file, r->torn_at);
}

/* ---- checkpoints ---- */

/*
 * Called after the snapshot walk: waits until every writer that could have
 * changed an entry during the walk has appended its record (a grace
 * period: writers append inside the read-side section of their CAS,
 * wal/persist.h), then writes and syncs the log through the last record
 * appended.  From then on every effect a snapshot holds has its record
 * durable in the log after the checkpoint's start (the argument is in
 * wal/snapshot.c).  ONCE_OK | ONCE_IO (the log failed: sticky).
 */
static once_status snapshot_effects_durable(once_store *s, struct once__persist *p)
{
	urcu_bp_synchronize_rcu();
	if (once__log_sync_all(p->log) == ONCE_OK)
		return ONCE_OK;
	atomic_store(&s->wal_failed, true);
	return ONCE_IO;
}

/* The log's failure, for a checkpoint's line (the log told it already). */
static void log_failure(struct once__persist *p, struct once__syserr *e)
{
	struct once__log_stats ls;
	once__log_stats(p->log, &ls);
	*e = ls.failure;
	if (e->err == 0) /* failed while closing: no call to name */
		once__syserr_set(e, "write", "log", 0);
}

/* A checkpoint that failed: one ERROR line naming the call (e, counted
 * unless the log counted it already) and what stays in force. */
static void checkpoint_failed(struct once__persist *p, uint64_t start, once_status st,
                              const struct once__syserr *e, bool count)
{
	char what[64];
	if (start != 0)
		snprintf(what, sizeof what, "checkpoint %016" PRIx64 " failed", start);
	else
		snprintf(what, sizeof what, "checkpoint failed");
	const char *tail = once__log_failed(p->log)
		? " (the log has failed: writes are refused until the store is reopened)"
		: " (the previous checkpoint stays in force)";
	if (st == ONCE_NOMEM || e->err == 0)
		once__logf(p->fail.opt, ONCE_LOG_ERROR, "%s: %s%s", what, once_strerror(st), tail);
	else if (count)
		once__fail_note(&p->fail, ONCE_LOG_ERROR, what, e, tail);
	else
		once__fail_line(&p->fail, ONCE_LOG_ERROR, what, e, tail);
}

/* One checkpoint, under checkpoint_lock. */
static once_status checkpoint_locked(once_store *s, struct once__persist *p)
{
	uint64_t t0 = now_ns();
	struct once__syserr e = {0};
	bool count = false; /* e is a call the log did not count */
	once_status st = atomic_load(&s->wal_failed) ? ONCE_IO : ONCE_OK;
	if (st != ONCE_OK)
		log_failure(p, &e);
	uint64_t appended = atomic_load(&p->appended);
	uint64_t number = p->segment + 1, start = 0;
	char name[ONCE_FILE_NAME_MAX];
	once__log_name(name, number);
	if (st == ONCE_OK) {
		st = once__log_rotate(p->log, name, number, &start);
		if (st != ONCE_OK && once__log_failed(p->log)) {
			atomic_store(&s->wal_failed, true);
			log_failure(p, &e);
		} else if (st != ONCE_OK) {
			once__log_rotate_error(p->log, &e);
		}
	}
	uint64_t entries = 0;
	/* Nothing logged since the committed checkpoint's start, and as
	 * many parts: that checkpoint is this one, file for file (same names,
	 * and it holds exactly the live state).  Writing it again would
	 * rename over its committed files (issue 13), so write nothing; the
	 * log goes on in the new segment, and the ones before it hold no
	 * record at or after the start.  Any other start or part count gives
	 * other names (wal/recover.h, "Why S and P"). */
	bool current = st == ONCE_OK && p->committed_version == ONCE_CHECKPOINT_V2 &&
	               start == p->committed_start && s->nshards == p->committed_parts;
	if (current) {
		p->segment = number;
		remove_leftovers(p->dir.fd, true, p->committed_version, p->committed_start, p->committed_parts,
		                 number);
		atomic_store(&p->appended_at_checkpoint, appended);
		atomic_store(&p->appended_at_committed, appended);
	}
	if (st == ONCE_OK && !current) {
		p->segment = number;
		int dirfd = p->dir.fd;
		uint64_t snapshot_bytes = 0;
		for (uint32_t i = 0; i < s->nshards && st == ONCE_OK; i++) {
			uint64_t records, bytes;
			st = once__snapshot_write(s, dirfd, p->dir.uid, start, s->nshards, i, &records, &bytes, &e);
			snapshot_bytes += bytes;
			entries += records;
		}
		if (st == ONCE_OK && !once__io_sync_dir(dirfd)) {
			once__syserr_set(&e, "fsync", ".", 0);
			st = ONCE_IO;
		}
		count = st != ONCE_OK;
		/* Everything the walk saw must be durable in the log before the
		 * snapshots become the recovery base (wal/snapshot.c). */
		if (st == ONCE_OK && (st = snapshot_effects_durable(s, p)) != ONCE_OK)
			log_failure(p, &e);
		/* A write whose record failed while the walk ran may have left
		 * its change in memory (fail closed) but not in the log: such
		 * a snapshot must not become the recovery base. */
		if (st == ONCE_OK && atomic_load(&s->wal_failed)) {
			st = ONCE_IO;
			log_failure(p, &e);
		}
		bool renaming = st == ONCE_OK; /* CHECKPOINT may be the new one after this */
		if (st == ONCE_OK) {
			st = once__checkpoint_write_e(dirfd, start, s->nshards, &e);
			count = st != ONCE_OK;
		}
		if (st == ONCE_OK) {
			/* Committed (CHECKPOINT is durable): the older snapshots
			 * and segments are covered. */
			remove_leftovers(dirfd, true, ONCE_CHECKPOINT_V2, start, s->nshards, number);
			p->committed_start = start;
			p->committed_parts = s->nshards;
			p->committed_version = ONCE_CHECKPOINT_V2;
			atomic_store(&p->appended_at_checkpoint, appended);
			atomic_store(&p->appended_at_committed, appended);
			atomic_store(&p->snapshot_bytes, snapshot_bytes);
			atomic_fetch_add(&p->checkpoints, 1);
			atomic_store(&p->last_checkpoint_at, once__now(s));
		} else {
			/* The log goes on in the new segment; the last committed
			 * checkpoint and the segments after it still recover.
			 * When writing CHECKPOINT failed, it may have failed after
			 * the rename (the directory's fsync): the CHECKPOINT in
			 * place, and perhaps durable, may name the new snapshots,
			 * so only *.tmp goes; the next open or committed
			 * checkpoint removes the snapshots it does not name.
			 * This store still takes the older one for the committed
			 * checkpoint, so a next checkpoint at this same start and
			 * shard count (nothing logged since) writes these names
			 * again, replacing files the CHECKPOINT in place may
			 * name: with the same content (the state at that start;
			 * at most entries that expired in between are missing,
			 * which recovery drops anyway), so a crash among those
			 * renames still recovers the same state. */
			remove_leftovers(dirfd, !renaming, p->committed_version, p->committed_start,
			                 p->committed_parts, 0);
		}
	}
	uint64_t ns = now_ns() - t0;
	if (st == ONCE_OK) {
		atomic_store(&p->checkpoint_ns_last, ns);
		if (ns > atomic_load(&p->checkpoint_ns_max))
			atomic_store(&p->checkpoint_ns_max, ns);
		if (current)
			once__log(s, ONCE_LOG_INFO,
			          "checkpoint %016" PRIx64 ": nothing logged since the committed checkpoint, which "
			          "holds the live state: kept, nothing written",
			          start);
		else
			once__log(s, ONCE_LOG_INFO,
			          "checkpoint %016" PRIx64 ": %" PRIu64 " entries in %" PRIu32
			          " snapshots, log from sequence %" PRIu64 ", in %" PRIu64 ".%03" PRIu64 " ms",
			          start, entries, s->nshards, start, ns / 1000000u, ns / 1000u % 1000u);
	} else {
		atomic_fetch_add(&p->checkpoint_failures, 1);
		checkpoint_failed(p, start, st, &e, count);
		/* Whatever failed (the new segment, a snapshot, CHECKPOINT),
		 * the automatic checkpointer tries again only after another
		 * interval of log, not on every write: a disk that stays full
		 * would otherwise get a checkpoint attempt, and the log an
		 * ERROR line, per write. */
		atomic_store(&p->appended_at_checkpoint, appended);
	}
	return st;
}

once_status once__persist_checkpoint(once_store *s)
{
	struct once__persist *p = s->persist;
	if (p == NULL || p->read_only)
		return ONCE_INVALID;
	pthread_mutex_lock(&p->checkpoint_lock);
	once_status st = checkpoint_locked(s, p);
	atomic_store(&p->checkpoint_wanted, false);
	pthread_mutex_unlock(&p->checkpoint_lock);
	return st;
}

/*
 * The checkpointer's checkpoint: asked for when the log had grown by an
 * interval, it may find, once it holds the lock, that a checkpoint started
 * meanwhile (once_checkpoint, on another thread) and the log has not grown
 * by an interval since.  Then it writes nothing: a second checkpoint of
 * the same state right after the first would cost a full walk and
 * snapshot for no shorter log.
 */
static void checkpoint_if_due(once_store *s, struct once__persist *p)
{
	pthread_mutex_lock(&p->checkpoint_lock);
	if (checkpoint_due(s, p))
		checkpoint_locked(s, p);
	atomic_store(&p->checkpoint_wanted, false);
	pthread_mutex_unlock(&p->checkpoint_lock);
}

static void *checkpointer_main(void *arg)
{
	once_store *s = arg;
	struct once__persist *p = s->persist;
	pthread_mutex_lock(&p->wake_lock);
	while (!p->stopping) {
		if (!atomic_load(&p->checkpoint_wanted)) {
			pthread_cond_wait(&p->wake, &p->wake_lock);
			continue;
		}
		pthread_mutex_unlock(&p->wake_lock);
		checkpoint_if_due(s, p);
		pthread_mutex_lock(&p->wake_lock);
	}
	pthread_mutex_unlock(&p->wake_lock);
	return NULL;
}

/* ---- open, close, stats ---- */

/*
 * The line for a reading of the store's files at open that failed with
 * ONCE_IO: the call, the file, the offset and strerror, as recovery named
 * them (wal/recover.h, struct once__recovery io).  Returns the errno
 * once_open leaves set.
 */
static int read_failed(once_store *s, const struct once__recovery *r, const char *mode)
{
	int err = errno;
	if (r->io.call == NULL) {
		once__log(s, ONCE_LOG_ERROR, "open: %s: reading the store's files%s: %s", s->opt.dir, mode,
		          strerror(err));
		return err;
	}
	const char *hint = r->io.err == EACCES || r->io.err == EPERM
		? ": the store's user must be able to read every file in it"
		: r->io.err == ENOENT && mode[0] != '\0' ? ": the store that holds it removed files while they were "
		                                          "read, at every reading; try again"
		: r->io.err == ENOENT ? ": a file was removed while the store was reading it; nothing else should "
		                        "write to a data directory"
		: r->io.err == EIO ? ": the device returned an error (see the kernel log)"
		: "";
	once__log(s, ONCE_LOG_ERROR, "open: %s: %s %s at offset %" PRIu64 ": %s (reading the store's files%s; "
	          "nothing was changed%s)",
	          s->opt.dir, r->io.call, r->io.file, r->io.offset, strerror(r->io.err), mode, hint);
	return r->io.err;
}

static int64_t store_clock(void *ctx)
{
	return once__now(ctx);
}

static void persist_free(struct once__persist *p)
{
	pthread_cond_destroy(&p->wake);
	pthread_mutex_destroy(&p->wake_lock);
	pthread_mutex_destroy(&p->checkpoint_lock);
	free(p);
}

/*
 * options.read_only (include/oncestore.h): the directory read as it is,
 * while a live store may be writing it (once__recover_live).  No lock, no
 * file created, written, cut or removed, no fsync, no log and no thread:
 * a torn tail or a record still being appended is left where it is.
 */
static once_status open_read_only(once_store *s, struct once__persist *p)
{
	p->read_only = true;
	atomic_flag_clear(&p->refusal_logged);
	once_status st = once__dir_open_ro(s->opt.dir, &s->opt, &p->dir);
	if (st != ONCE_OK && st != ONCE_NOT_FOUND) {
		int err = errno;
		if (st != ONCE_CORRUPT) /* dir.c named what is wrong with FORMAT */
			once__log(s, ONCE_LOG_ERROR, "open: %s (read-only): %s", s->opt.dir,
			          st == ONCE_IO ? strerror(err) : once_strerror(st));
		errno = err;
		return st;
	}
	uint64_t t0 = now_ns();
	struct once__recovery r;
	if (st == ONCE_NOT_FOUND) { /* no FORMAT yet: an empty store */
		memset(&r, 0, sizeof r);
		st = ONCE_OK;
	} else {
		st = once__recover_live(p->dir.fd, p->dir.uid, s, &r);
	}
	int err = errno; /* of a failed read, before the calls below */
	if (st == ONCE_IO)
		err = read_failed(s, &r, " (read-only)");
	if (st == ONCE_CORRUPT)
		once__log(s, ONCE_LOG_ERROR, "open: %s/%s at offset %" PRIu64 ": %s (read-only, read %" PRIu32
		          " times; run `oncestore verify`)", s->opt.dir, r.bad_file, r.bad_at, r.why, r.attempts);
	else if (st == ONCE_NOMEM)
		once__log(s, ONCE_LOG_ERROR, "open: %s: out of memory reading the store's files (read-only)",
		          s->opt.dir);
	if (st != ONCE_OK) {
		once__restore_abort(s);
		once__dir_close(&p->dir);
		errno = err;
		return st;
	}
	if (r.torn)
		once__log(s, ONCE_LOG_INFO,
		          "open: %s: %" PRIu64 " bytes at offset %" PRIu64 " are not a complete record "
		          "(one being appended, or a crash's torn tail): not read, left in place (read-only)",
		          r.torn_file, r.torn_bytes, r.torn_at);
	p->dropped_expired = once__restore_finish(s, once__now(s));
	p->recovery_ns = now_ns() - t0;
	p->recovered_records = r.log_records;
	p->snapshot_records = r.snapshot_records;
	p->recovery_torn_bytes = r.torn ? r.torn_bytes : 0; /* found, left in place */
	p->recovery_segments = r.segments;
	p->committed_start = r.has_checkpoint ? r.checkpoint_start : UINT64_MAX;
	p->segment = r.last_segment;
	s->persist = p;
	return ONCE_OK;
}

void once__persist_refused(once_store *s, const char *call)
{
	struct once__persist *p = s->persist;
	if (p != NULL && !atomic_flag_test_and_set(&p->refusal_logged))
		once__log(s, ONCE_LOG_WARN,
		          "%s: the store is read-only (options.read_only): ONCE_INVALID, nothing changed "
		          "(logged once per store)", call);
}

once_status once__persist_open(once_store *s)
{
	struct once__persist *p = calloc(1, sizeof *p);
	if (p == NULL)
		return ONCE_NOMEM;
	pthread_mutex_init(&p->checkpoint_lock, NULL);
	pthread_mutex_init(&p->wake_lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	once__fail_init(&p->fail, &s->opt, store_clock, s);
	if (s->opt.read_only) {
		once_status ro = open_read_only(s, p);
		if (ro != ONCE_OK) {
			int err = errno;
			persist_free(p);
			errno = err;
		}
		return ro;
	}
	/* dir.c writes the line (what failed and why) and leaves errno set
	 * to the failing call's (include/oncestore.h, once_open). */
	once_status st = once__dir_open_wait(s->opt.dir, s->opt.lock_wait_ms, &s->opt, &p->dir);
	if (st != ONCE_OK) {
		int err = errno;
		persist_free(p);
		errno = err;
		return st;
	}
	remove_leftovers(p->dir.fd, false, 0, 0, 0, 0); /* interrupted writes (*.tmp) only */

	uint64_t t0 = now_ns();
	struct once__recovery r;
	st = once__recover(p->dir.fd, p->dir.uid, s, &r);
	if (st == ONCE_IO)
		errno = read_failed(s, &r, "");
	if (st == ONCE_CORRUPT)
		once__log(s, ONCE_LOG_ERROR, "once_open: %s/%s at offset %" PRIu64 ": %s (run `oncestore verify`; "
		          "`oncestore repair` truncates there)", s->opt.dir, r.bad_file, r.bad_at, r.why);
	if (st == ONCE_OK)
		st = cut_torn_tail(s, p, p->dir.fd, &r);
	if (st == ONCE_OK) {
		p->dropped_expired = once__restore_finish(s, once__now(s));
		p->recovery_ns = now_ns() - t0;
		p->recovered_records = r.log_records;
		p->snapshot_records = r.snapshot_records;
		p->recovery_torn_bytes = r.torn ? r.torn_bytes : 0;
		p->recovery_segments = r.segments;
		p->committed_start = r.has_checkpoint ? r.checkpoint_start : UINT64_MAX;
		p->committed_parts = r.has_checkpoint ? r.checkpoint_parts : 0;
		p->committed_version = r.has_checkpoint ? r.checkpoint_version : 0;
		/* Snapshots CHECKPOINT does not name: an interrupted checkpoint's. */
		remove_leftovers(p->dir.fd, true, p->committed_version, p->committed_start, p->committed_parts,
		                 r.has_checkpoint ? r.first_segment : 0);
		p->segment = r.last_segment + 1;
		once__log(s, ONCE_LOG_INFO,
		          "open: %s: recovered %" PRIu64 " snapshot records and %" PRIu64 " log records, "
		          "cut %" PRIu64 " torn bytes, dropped %" PRIu64 " expired entries, in %" PRIu64 ".%03" PRIu64
		          " ms",
		          s->opt.dir, r.snapshot_records, r.log_records, r.torn ? r.torn_bytes : 0,
		          p->dropped_expired, p->recovery_ns / 1000000u, p->recovery_ns / 1000u % 1000u);
	}
	/* The threads started here (the log's writer, the
	 * checkpointer) block every signal, as the sweeper does. */
	sigset_t old;
	once__signals_block_all(&old);
	if (st == ONCE_OK) {
		char name[ONCE_FILE_NAME_MAX];
		once__log_name(name, p->segment);
		struct once__log_config cfg = {.mode = s->opt.sync,
		                               .interval_ms = s->opt.sync_interval_ms,
		                               .buffer_max = s->opt.log_buffer_bytes,
		                               /* At most a quarter of a checkpoint
		                                * interval of zeros ahead: disk use
		                                * stays live data + one interval. */
		                               .prealloc_step = s->opt.checkpoint_bytes / 4 < 4096
		                                                    ? 4096
		                                                    : s->opt.checkpoint_bytes / 4,
		                               .fail = &p->fail};
		st = once__log_create(name, p->dir.uid, p->segment, r.next_seq, &cfg, &p->log, p->dir.fd);
	}
	if (st == ONCE_OK) {
		/* Before the thread starts: checkpointer_main reads s->persist. */
		s->persist = p;
		p->checkpointer_running = pthread_create(&p->checkpointer, NULL, checkpointer_main, s) == 0;
	}
	once__signals_restore(&old);
	if (st == ONCE_OK) {
		if (!p->checkpointer_running) {
			once__persist_close(s);
			return ONCE_NOMEM;
		}
		return ONCE_OK;
	}
	int err = errno; /* the failing call's, for once_open's caller */
	once__restore_abort(s);
	if (p->log != NULL)
		once__log_close(p->log);
	once__dir_close(&p->dir);
	persist_free(p);
	errno = err;
	return st;
}

once_status once__persist_close(once_store *s)
{
	struct once__persist *p = s->persist;
	if (p == NULL)
		return ONCE_OK;
	if (p->checkpointer_running) {
		pthread_mutex_lock(&p->wake_lock);
		p->stopping = true;
		pthread_cond_signal(&p->wake);
		pthread_mutex_unlock(&p->wake_lock);
		pthread_join(p->checkpointer, NULL);
	}
	once_status st = p->log != NULL ? once__log_close(p->log) : ONCE_OK; /* NULL: read-only */
	if (atomic_load(&s->wal_failed))
		st = ONCE_IO;
	if (st != ONCE_OK)
		once__log(s, ONCE_LOG_ERROR,
		          "close: %s: the log had failed (its error line says how); records not acknowledged "
		          "may be lost",
		          s->opt.dir);
	once__dir_close(&p->dir);
	persist_free(p);
	s->persist = NULL;
	return st;
}

void once__persist_stats(once_store *s, struct once_stats *out)
{
	struct once__persist *p = s->persist;
	if (p == NULL)
		return;
	out->read_only = p->read_only;
	out->recovery_ns = p->recovery_ns;
	out->recovered_records = p->recovered_records;
	out->recovered_snapshot_records = p->snapshot_records;
	out->recovery_dropped_expired = p->dropped_expired;
	out->recovery_torn_bytes = p->recovery_torn_bytes;
	out->recovery_segments = p->recovery_segments;
	if (p->log == NULL)
		return; /* read-only: no log, no checkpoints */
	struct once__log_stats ls;
	once__log_stats(p->log, &ls);
	out->log_bytes = ls.bytes;
	out->log_records = ls.records;
	out->syncs = ls.syncs;
	out->synced_records = ls.synced_records;
	out->sync_ns_total = ls.sync_ns_total;
	out->sync_ns_max = ls.sync_ns_max;
	out->write_failures = ls.write_failures + atomic_load(&p->fail.write_failures);
	out->sync_failures = ls.sync_failures + atomic_load(&p->fail.sync_failures);
	if (ls.failure.err != 0) {
		out->failure_errno = ls.failure.err;
		snprintf(out->failure_op, sizeof out->failure_op, "%s %s", ls.failure.call, ls.failure.file);
		out->failure_offset = ls.failure.offset;
		out->failure_at = ls.failure_at;
	}
	out->checkpoints = atomic_load(&p->checkpoints);
	out->last_checkpoint_at = atomic_load(&p->last_checkpoint_at);
	memcpy(out->sync_buckets, ls.sync_buckets, sizeof out->sync_buckets);
	out->sync_ns_p50 = ls.sync_ns_p50;
	out->sync_ns_p99 = ls.sync_ns_p99;
	out->sync_ns_p999 = ls.sync_ns_p999;
	out->checkpoint_failures = atomic_load(&p->checkpoint_failures);
	out->checkpoint_ns_last = atomic_load(&p->checkpoint_ns_last);
	out->checkpoint_ns_max = atomic_load(&p->checkpoint_ns_max);
	/* The mark first: it is a past value of `appended`, so never above
	 * the one read after it. */
	uint64_t mark = atomic_load(&p->appended_at_committed);
	out->log_bytes_since_checkpoint = atomic_load(&p->appended) - mark;
}
