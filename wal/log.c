/*
 * wal/log.c - one log segment at a time: a writer thread, group commit,
 * tickets, sticky failure.  The rules are in wal/log.h; the bytes in
 * wal/format.h.
 *
 * Three locks, none of which a waiting committer queues on:
 *   lock      appenders copy their framed record into the queue under it
 *             (a memcpy), and the writer swaps the queue out under it;
 *   io        the writer holds it for each group it writes; rotations and
 *             sync_all take it to have the file to themselves;
 *   wait_lock guards the list of blocking committers, so the writer wakes
 *             exactly those its sync covered.
 * Positions (written_seq, durable_seq) and `failed` are atomics, written
 * only by whoever holds io, read by anyone without a lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "fail.h"
#include "format.h"
#include "histogram.h"
#include "io.h"
#include "log.h"
#include "segment.h"
#include "signals.h"

/* A blocking committer, on its own stack while it sleeps. */
struct waiter {
	uint64_t seq; /* woken once the position passes it, or on failure */
	sem_t wake;
	struct waiter *next;
};

struct once__log {
	int fd;
	unsigned char uid[16]; /* the store's, in every segment header */
	int dirfd;             /* segment paths are relative to it */
	off_t end;             /* bytes of records (and header) in the file */
	off_t allocated;       /* bytes in the file: records + zeros ahead */
	uint64_t first_seq;    /* of the log's first segment (stats) */
	uint64_t salt;         /* checksum seed of this segment's records */
	once_sync_mode mode;
	uint32_t interval_ms;
	size_t buffer_max;
	off_t prealloc_step;

	/* ---- appenders and the writer's work list (lock) ---- */
	pthread_mutex_t lock;
	pthread_cond_t work;  /* to the writer: records queued, or stop */
	pthread_cond_t space; /* to appenders: the queue was taken */
	unsigned char *queue; /* framed records not yet written */
	size_t queue_len, queue_cap;
	unsigned char *spare; /* the writer's last buffer, for reuse */
	size_t spare_cap;
	uint64_t next_seq;  /* the next append's sequence number */
	bool writer_idle;   /* the writer waits on `work` */
	bool writer_timed;  /* ... until the next interval sync */
	unsigned space_waiters;
	bool stopping;

	/* ---- results (written under io) ---- */
	pthread_mutex_t io;
	_Atomic uint64_t written_seq; /* every record below it is in the kernel */
	_Atomic uint64_t durable_seq; /* every record below it is on stable storage */
	_Atomic bool failed;          /* sticky: see log.h */
	_Atomic uint64_t appended_seq; /* next_seq, readable without the lock */

	/* ---- blocking committers ---- */
	pthread_mutex_t wait_lock;
	struct waiter *waiters;

	/* One eventfd per consumer (event loop): a consumer's read clears only
	 * its own, so no loop can eat another's wake-up. */
	int event_fds[ONCE_LOG_EVENT_FDS];
	_Atomic unsigned n_event_fds; /* fds[0, n) are set */
	pthread_mutex_t event_lock;   /* registration */
	bool prealloc_off;            /* this segment: preallocation hit ENOSPC */

	pthread_mutex_t stats_lock;
	struct once__log_stats stats;
	struct once__hist sync_hist; /* under stats_lock, as stats */

	pthread_t writer;
	bool writer_running;

	struct once__fail *fail;      /* where failures are told (log.h) */
	char name[64];                /* the segment's file name, for those lines */
	struct once__syserr rotate_err; /* under io */
};

/* The file name of a segment path, for failure lines ("log-..."). */
static void set_name(struct once__log *log, const char *path)
{
	const char *slash = strrchr(path, '/');
	snprintf(log->name, sizeof log->name, "%.63s", slash != NULL ? slash + 1 : path);
}

/* With io held: the log has failed (e names the call).  The first failure
 * is recorded and told; the caller then sets `failed`, after which nothing
 * is written again, so there is no second. */
static void record_failure(struct once__log *log, const struct once__syserr *e)
{
	int64_t at = once__fail_now(log->fail);
	pthread_mutex_lock(&log->stats_lock);
	if (once__syserr_is_write(e))
		log->stats.write_failures++;
	else if (once__syserr_is_sync(e))
		log->stats.sync_failures++;
	bool first = log->stats.failure.err == 0;
	if (first) {
		log->stats.failure = *e;
		log->stats.failure_at = at;
	}
	pthread_mutex_unlock(&log->stats_lock);
	if (first)
		once__fail_line(log->fail, ONCE_LOG_ERROR, "log", e,
		                " (writes are refused until the store is reopened; records not yet durable "
		                "are not acknowledged)");
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The position a commit waits for under the log's mode (log.h). */
static uint64_t reached(struct once__log *log)
{
	return atomic_load_explicit(log->mode == ONCE_SYNC_ALWAYS ? &log->durable_seq : &log->written_seq,
	                            memory_order_acquire);
}

/* ---- telling waiters ---- */

static void notify_one(int fd)
{
	uint64_t one = 1;
	/* EAGAIN: the counter is saturated, the descriptor is readable anyway. */
	ssize_t rc = write(fd, &one, sizeof one);
	(void)rc;
}

static void notify_event_fds(struct once__log *log)
{
	unsigned n = atomic_load_explicit(&log->n_event_fds, memory_order_acquire);
	for (unsigned i = 0; i < n; i++)
		notify_one(log->event_fds[i]);
}

/* Wakes the blocking committers whose record is below `pos`, or all of
 * them once the log has failed; then the event descriptor. */
static void wake_covered(struct once__log *log, uint64_t pos)
{
	bool all = atomic_load(&log->failed);
	struct waiter *wake = NULL;
	pthread_mutex_lock(&log->wait_lock);
	for (struct waiter **w = &log->waiters; *w != NULL;) {
		if (all || (*w)->seq < pos) {
			struct waiter *x = *w;
			*w = x->next;
			x->next = wake;
			wake = x;
		} else {
			w = &(*w)->next;
		}
	}
	pthread_mutex_unlock(&log->wait_lock);
	while (wake != NULL) {
		struct waiter *next = wake->next; /* read before the post: then it may be gone */
		sem_post(&wake->wake);
		wake = next;
	}
	notify_event_fds(log);
}

/* ---- writing ---- */

/*
 * Seals every record framed in buf[0, len) with the segment's salt and the
 * group's synced-below mark (wal/format.h: the durable mark as it stands
 * when the group goes to the kernel).  Only the holder of io does it, so
 * appenders only copy their bytes under the lock.
 */
static void seal_group(unsigned char *buf, size_t len, uint64_t salt, uint64_t synced_below)
{
	for (size_t o = 0; o < len;)
		o += once__wal_record_seal(buf + o, salt, synced_below);
}

/*
 * Preallocation: before a group would pass the end of the file, the file
 * grows by whole steps of zeros, written (not fallocated: writing into an
 * fallocated, unwritten extent converts it, a metadata change the next
 * fdatasync must commit).  The group's own fdatasync makes the new size
 * durable; later groups overwrite zeros inside the file, and their
 * fdatasync commits data only.  Recovery reads zeros after the last record
 * as unused space (wal/format.h).
 */
static void preallocate(struct once__log *log, size_t len)
{
	static const unsigned char zeros[64 << 10];
	off_t want = log->end + (off_t)len;
	if (want <= log->allocated || log->prealloc_off)
		return;
	off_t step = log->prealloc_step;
	off_t to = (want + step - 1) / step * step;
	for (off_t at = log->allocated; at < to;) {
		size_t n = (size_t)(to - at) < sizeof zeros ? (size_t)(to - at) : sizeof zeros;
		off_t bad = at;
		if (!once__io_write_all_at(log->fd, zeros, n, at, &bad)) {
			/* A disk too full for a step of zeros may still hold the
			 * group: only the group's own write decides.  The zeros
			 * written so far are unused space; this segment grows
			 * write by write from now on.  One warning per segment:
			 * the disk is nearly full. */
			struct once__syserr e;
			once__syserr_set(&e, "pwrite", log->name, (uint64_t)bad);
			pthread_mutex_lock(&log->stats_lock);
			log->stats.write_failures++;
			pthread_mutex_unlock(&log->stats_lock);
			once__fail_line(log->fail, ONCE_LOG_WARN, "log", &e,
			                " (preallocating; the segment grows write by write from here)");
			log->allocated = at > log->allocated ? at : log->allocated;
			log->prealloc_off = true;
			return;
		}
		at += (off_t)n;
	}
	log->allocated = to;
}

static bool sync_file(struct once__log *log, uint64_t records)
{
	uint64_t t0 = now_ns();
	bool ok = once__io_sync_data(log->fd);
	uint64_t ns = now_ns() - t0;
	pthread_mutex_lock(&log->stats_lock);
	log->stats.syncs++;
	log->stats.synced_records += records;
	log->stats.sync_ns_total += ns;
	if (ns > log->stats.sync_ns_max)
		log->stats.sync_ns_max = ns;
	log->stats.sync_buckets[once__pow2_bucket(ns, 10, ONCE_SYNC_BUCKETS)]++;
	once__hist_record(&log->sync_hist, ns);
	pthread_mutex_unlock(&log->stats_lock);
	return ok;
}

/*
 * With io held: writes the group buf[0, len) (records from .. upto-1) at
 * the end of the file and, when `sync` (or anything written is not yet
 * durable and sync is asked), fdatasyncs; publishes the new positions or
 * the failure.  false when the log has failed.
 */
static bool write_group_io(struct once__log *log, unsigned char *buf, size_t len, uint64_t upto, bool sync)
{
	if (atomic_load(&log->failed))
		return false;
	uint64_t durable = atomic_load(&log->durable_seq);
	bool ok = true;
	struct once__syserr e;
	if (len > 0) {
		seal_group(buf, len, log->salt, durable);
		preallocate(log, len);
		off_t bad = log->end;
		ok = once__io_write_all_at(log->fd, buf, len, log->end, &bad);
		if (!ok)
			once__syserr_set(&e, "pwrite", log->name, (uint64_t)bad);
		if (ok) {
			log->end += (off_t)len;
			pthread_mutex_lock(&log->stats_lock);
			log->stats.flushes++;
			log->stats.bytes += len;
			pthread_mutex_unlock(&log->stats_lock);
		}
	}
	if (ok && sync && durable < upto && !(ok = sync_file(log, upto - durable)))
		once__syserr_set(&e, "fdatasync", log->name, (uint64_t)log->end);
	if (!ok) {
		record_failure(log, &e);
		atomic_store(&log->failed, true);
		return false;
	}
	atomic_store_explicit(&log->written_seq, upto, memory_order_release);
	if (sync)
		atomic_store_explicit(&log->durable_seq, upto, memory_order_release);
	return true;
}

/* Takes everything queued (lock held): *buf, *len, and the sequence number
 * after its last record.  The queue continues in the spare buffer. */
static void take_queue(struct once__log *log, unsigned char **buf, size_t *len, size_t *cap, uint64_t *upto)
{
	*buf = log->queue;
	*len = log->queue_len;
	*cap = log->queue_cap;
	*upto = log->next_seq;
	log->queue = log->spare;
	log->queue_cap = log->spare_cap;
	log->queue_len = 0;
	log->spare = NULL;
	log->spare_cap = 0;
	if (log->space_waiters > 0)
		pthread_cond_broadcast(&log->space);
}

/* Gives the writer's buffer back as the spare (lock held), unless one is
 * already there or it grew past the buffer bound. */
static void return_buffer(struct once__log *log, unsigned char *buf, size_t cap)
{
	if (log->spare == NULL && cap <= log->buffer_max) {
		log->spare = buf;
		log->spare_cap = cap;
	} else {
		free(buf);
	}
}

/*
 * With io held (no other group interleaves): takes everything queued under
 * the appenders' lock, then writes it (and syncs it, with `sync`) holding
 * only io, so appenders keep queueing meanwhile.  *boundary, if not NULL,
 * receives the sequence number after the last record taken.  false: the
 * log has failed (sticky).  The caller wakes the waiters after releasing
 * io.
 */
static bool write_queued_io(struct once__log *log, bool sync, uint64_t *boundary)
{
	unsigned char *buf;
	size_t len, cap;
	uint64_t upto;
	pthread_mutex_lock(&log->lock);
	take_queue(log, &buf, &len, &cap, &upto);
	pthread_mutex_unlock(&log->lock);
	bool ok = write_group_io(log, buf, len, upto, sync);
	pthread_mutex_lock(&log->lock);
	return_buffer(log, buf, cap);
	pthread_mutex_unlock(&log->lock);
	if (boundary != NULL)
		*boundary = upto;
	return ok;
}

/* One group, by the writer thread: take the queue, write it, sync it when
 * the mode (or `sync`) says so, tell the waiters. */
static void write_group(struct once__log *log, bool sync)
{
	pthread_mutex_lock(&log->io);
	write_queued_io(log, sync, NULL);
	pthread_mutex_unlock(&log->io);
	wake_covered(log, reached(log));
}

static struct timespec deadline_after_ms(uint32_t ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	uint64_t ns = (uint64_t)t.tv_nsec + (uint64_t)ms * 1000000u;
	t.tv_sec += (time_t)(ns / 1000000000u);
	t.tv_nsec = (long)(ns % 1000000000u);
	return t;
}

/*
 * The writer: whenever records are queued, writes all of them as one group
 * (and under ONCE_SYNC_ALWAYS syncs them with one fdatasync), so a group is
 * whatever arrived while the previous one was on its way to the disk:
 * one record with one caller, hundreds to thousands with that many in
 * flight.  Under ONCE_SYNC_INTERVAL it also syncs every interval_ms while
 * something written is not durable.
 */
static void *writer_main(void *arg)
{
	struct once__log *log = arg;
	/* SCHED_BATCH: woken by an append, the writer does not preempt the
	 * appending thread on its CPU (an event loop's call would otherwise
	 * wait, at times tens of microseconds, for the writer to get as far
	 * as its fdatasync); it runs on another CPU or right after.  Any
	 * thread may take this policy; if refused, nothing changes. */
	pthread_setschedparam(pthread_self(), SCHED_BATCH, &(struct sched_param){.sched_priority = 0});
	bool always = log->mode == ONCE_SYNC_ALWAYS, interval = log->mode == ONCE_SYNC_INTERVAL;
	struct timespec next_sync = deadline_after_ms(log->interval_ms);
	pthread_mutex_lock(&log->lock);
	for (;;) {
		bool unsynced = interval && atomic_load(&log->durable_seq) < atomic_load(&log->written_seq);
		if (log->queue_len == 0 && !log->stopping) {
			log->writer_idle = true;
			log->writer_timed = unsynced;
			int rc = unsynced ? pthread_cond_timedwait(&log->work, &log->lock, &next_sync)
			                  : pthread_cond_wait(&log->work, &log->lock);
			log->writer_idle = false;
			if (rc != ETIMEDOUT)
				continue;
		}
		if (log->stopping && log->queue_len == 0)
			break;
		bool sync = always;
		if (interval) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > next_sync.tv_sec ||
			    (now.tv_sec == next_sync.tv_sec && now.tv_nsec >= next_sync.tv_nsec)) {
				sync = true;
				next_sync = deadline_after_ms(log->interval_ms);
			}
		}
		pthread_mutex_unlock(&log->lock);
		write_group(log, sync);
		pthread_mutex_lock(&log->lock);
		if (atomic_load(&log->failed)) {
			/* Nothing more will be written: drop what is queued (its
			 * appends answered OK before the failure; their commits
			 * answer ONCE_IO) and wait to be stopped. */
			log->queue_len = 0;
			pthread_cond_broadcast(&log->space);
			while (!log->stopping)
				pthread_cond_wait(&log->work, &log->lock);
			break;
		}
	}
	pthread_mutex_unlock(&log->lock);
	return NULL;
}

/*
 * With io held, after everything written is durable: cuts the preallocated
 * zeros off a segment the log is leaving (rotation, close), so a segment
 * kept on disk holds only its records.  Best effort: zeros left behind are
 * unused space to recovery (wal/format.h), never damage, and the records
 * are already durable, so a failure here fails nothing; which is also why
 * its sync is not in the wal/io.h table, whose injected failures are for
 * calls whose failure matters.
 */
static void cut_preallocated(struct once__log *log)
{
	if (log->allocated > log->end && ftruncate(log->fd, log->end) == 0 && fdatasync(log->fd) == 0)
		log->allocated = log->end;
}

/* ---- the API ---- */

once_status once__log_append(struct once__log *log, uint8_t type, const void *payload, uint32_t len,
                             uint64_t *seq)
{
	if (len > ONCE_WAL_MAX_PAYLOAD)
		return ONCE_INVALID;
	size_t size = once__wal_record_size(len);
	pthread_mutex_lock(&log->lock);
	/* The bound: wait while the writer is this far behind (a record larger
	 * than the bound goes alone into an empty queue). */
	while (!atomic_load(&log->failed) && log->queue_len > 0 && log->queue_len + size > log->buffer_max) {
		int old; /* not a cancellation point: the caller is in a read-side section */
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		log->space_waiters++;
		pthread_cond_wait(&log->space, &log->lock);
		log->space_waiters--;
		pthread_setcancelstate(old, NULL);
	}
	once_status st = ONCE_OK;
	if (atomic_load(&log->failed) || log->stopping) {
		st = ONCE_IO;
	} else if (log->queue_len + size > log->queue_cap) {
		size_t cap = log->queue_cap ? log->queue_cap : 4096;
		while (cap < log->queue_len + size)
			cap *= 2;
		unsigned char *q = realloc(log->queue, cap);
		if (q == NULL)
			st = ONCE_NOMEM;
		else
			log->queue = q, log->queue_cap = cap;
	}
	if (st == ONCE_OK) {
		once__wal_record_frame(log->queue + log->queue_len, type, log->next_seq, payload, len);
		log->queue_len += size;
		*seq = log->next_seq++;
		atomic_store_explicit(&log->appended_seq, log->next_seq, memory_order_release);
		if (log->writer_idle) {
			log->writer_idle = false;
			pthread_cond_signal(&log->work);
		}
	}
	pthread_mutex_unlock(&log->lock);
	return st;
}

/*
 * ONCE_SYNC_INTERVAL and NONE: a blocking committer whose record only has
 * to reach the kernel writes the queue itself when no one holds io (a
 * pwrite is a few microseconds: handing it to the writer thread and
 * sleeping until it is done cost 150 us and two context switches a call).
 * Under ONCE_SYNC_ALWAYS the writer thread does it: there a group waits
 * for an fdatasync, and the thread keeps the groups large.  true when it
 * wrote.
 */
static bool write_it_myself(struct once__log *log)
{
	if (log->mode == ONCE_SYNC_ALWAYS || pthread_mutex_trylock(&log->io) != 0)
		return false;
	write_queued_io(log, false, NULL);
	pthread_mutex_unlock(&log->io);
	wake_covered(log, reached(log));
	pthread_mutex_lock(&log->lock);
	/* ONCE_SYNC_INTERVAL: a writer asleep without a deadline must learn
	 * that something written waits for its sync. */
	if (log->mode == ONCE_SYNC_INTERVAL && log->writer_idle && !log->writer_timed) {
		log->writer_idle = false;
		pthread_cond_signal(&log->work);
	}
	pthread_mutex_unlock(&log->lock);
	return true;
}

once_status once__log_commit(struct once__log *log, uint64_t seq)
{
	if (seq >= atomic_load_explicit(&log->appended_seq, memory_order_acquire))
		return ONCE_INVALID; /* never appended: nothing could make it durable */
	if (reached(log) > seq)
		return ONCE_OK;
	if (write_it_myself(log) && reached(log) > seq)
		return ONCE_OK;
	struct waiter me = {.seq = seq};
	sem_init(&me.wake, 0, 0);
	pthread_mutex_lock(&log->wait_lock);
	/* Checked again under wait_lock: the writer publishes a position
	 * before it takes wait_lock to wake, so no wake-up is lost. */
	bool sleep = reached(log) <= seq && !atomic_load(&log->failed);
	if (sleep) {
		me.next = log->waiters;
		log->waiters = &me;
	}
	pthread_mutex_unlock(&log->wait_lock);
	if (sleep) {
		/* Not a cancellation point: a cancelled waiter would leave
		 * its stack frame in the list. */
		int old;
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
		while (sem_wait(&me.wake) != 0) { /* EINTR */
		}
		pthread_setcancelstate(old, NULL);
	}
	sem_destroy(&me.wake);
	return reached(log) > seq ? ONCE_OK : ONCE_IO;
}

once_status once__log_position(struct once__log *log, uint64_t *upto)
{
	/* failed first: once it is set the position no longer moves, so the
	 * position read after it is final. */
	bool failed = atomic_load(&log->failed);
	*upto = reached(log) - 1;
	return failed ? ONCE_IO : ONCE_OK;
}

uint64_t once__log_next_seq(struct once__log *log)
{
	return atomic_load_explicit(&log->appended_seq, memory_order_acquire);
}

int once__log_event_fd(struct once__log *log)
{
	pthread_mutex_lock(&log->event_lock);
	unsigned n = atomic_load(&log->n_event_fds);
	int fd = -1;
	if (n == ONCE_LOG_EVENT_FDS)
		errno = EMFILE;
	else
		fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd >= 0) {
		log->event_fds[n] = fd;
		atomic_store_explicit(&log->n_event_fds, n + 1, memory_order_release);
		/* Readable at once, so a loop that registers late still looks
		 * at the position. */
		notify_one(fd);
	}
	pthread_mutex_unlock(&log->event_lock);
	return fd;
}

bool once__log_event_clear(struct once__log *log, int fd)
{
	unsigned n = atomic_load_explicit(&log->n_event_fds, memory_order_acquire);
	for (unsigned i = 0; i < n; i++)
		if (log->event_fds[i] == fd) {
			uint64_t count;
			ssize_t rc = read(fd, &count, sizeof count); /* EAGAIN: nothing pending */
			(void)rc;
			return true;
		}
	return false; /* not one of this log's */
}

/* Everything appended before the call written and synced, whatever the
 * mode (checkpoints, close); appenders keep queueing meanwhile. */
once_status once__log_sync_all(struct once__log *log)
{
	pthread_mutex_lock(&log->io);
	bool ok = write_queued_io(log, true, NULL);
	pthread_mutex_unlock(&log->io);
	wake_covered(log, reached(log));
	return ok ? ONCE_OK : ONCE_IO;
}

/*
 * Holding io, so no group of the writer's interleaves: write and sync
 * everything queued up to a boundary to the old segment, cut its zeros,
 * then switch to a new segment whose first record is the boundary.
 * Records appended meanwhile wait in the queue (appenders never wait for
 * this) and the writer writes them into the new segment, sealed with its
 * salt, once io is released.
 */
once_status once__log_rotate(struct once__log *log, const char *path, uint64_t number,
                             uint64_t *first_seq)
{
	pthread_mutex_lock(&log->io);
	once_status st = ONCE_IO;
	int fd;
	uint64_t salt, boundary;
	bool flushed = write_queued_io(log, true, &boundary);
	if (flushed)
		cut_preallocated(log);
	memset(&log->rotate_err, 0, sizeof log->rotate_err);
	if (flushed &&
	    once__segment_create(log->dirfd, path, log->uid, number, boundary, &fd, &salt, &log->rotate_err)) {
		close(log->fd);
		log->fd = fd;
		set_name(log, path);
		log->salt = salt;
		log->end = log->allocated = ONCE_WAL_SEGMENT_HEADER;
		log->prealloc_off = false;
		pthread_mutex_lock(&log->stats_lock);
		log->stats.bytes += ONCE_WAL_SEGMENT_HEADER;
		pthread_mutex_unlock(&log->stats_lock);
		*first_seq = boundary;
		st = ONCE_OK;
	}
	/* else: the log failed (sticky), or no new segment could be made and
	 * the log goes on in the old one (rotate_err says why). */
	if (flushed && log->rotate_err.err != 0) {
		pthread_mutex_lock(&log->stats_lock);
		log->stats.write_failures += once__syserr_is_write(&log->rotate_err);
		log->stats.sync_failures += once__syserr_is_sync(&log->rotate_err);
		pthread_mutex_unlock(&log->stats_lock);
	}
	pthread_mutex_unlock(&log->io);
	wake_covered(log, reached(log));
	return st;
}

void once__log_rotate_error(struct once__log *log, struct once__syserr *out)
{
	pthread_mutex_lock(&log->io);
	*out = log->rotate_err;
	pthread_mutex_unlock(&log->io);
}

bool once__log_failed(struct once__log *log)
{
	return atomic_load(&log->failed);
}

void once__log_stats(struct once__log *log, struct once__log_stats *out)
{
	pthread_mutex_lock(&log->stats_lock);
	*out = log->stats;
	out->sync_ns_p50 = (uint64_t)once__hist_quantile(&log->sync_hist, 0.50);
	out->sync_ns_p99 = (uint64_t)once__hist_quantile(&log->sync_hist, 0.99);
	out->sync_ns_p999 = (uint64_t)once__hist_quantile(&log->sync_hist, 0.999);
	pthread_mutex_unlock(&log->stats_lock);
	out->records = atomic_load(&log->appended_seq) - log->first_seq;
}

static void log_free(struct once__log *log)
{
	unsigned n = atomic_load(&log->n_event_fds);
	for (unsigned i = 0; i < n; i++)
		close(log->event_fds[i]);
	free(log->queue);
	free(log->spare);
	pthread_cond_destroy(&log->work);
	pthread_cond_destroy(&log->space);
	pthread_mutex_destroy(&log->lock);
	pthread_mutex_destroy(&log->io);
	pthread_mutex_destroy(&log->wait_lock);
	pthread_mutex_destroy(&log->event_lock);
	pthread_mutex_destroy(&log->stats_lock);
	free(log);
}

once_status once__log_create(const char *path, const unsigned char uid[16], uint64_t number,
                             uint64_t first_seq, const struct once__log_config *cfg,
                             struct once__log **out, int dirfd)
{
	struct once__log *log = calloc(1, sizeof *log);
	if (log == NULL)
		return ONCE_NOMEM;
	log->dirfd = dirfd;
	log->fail = cfg->fail;
	set_name(log, path);
	struct once__syserr e;
	if (!once__segment_create(dirfd, path, uid, number, first_seq, &log->fd, &log->salt, &e)) {
		once__fail_note(cfg->fail, ONCE_LOG_ERROR, "open: creating the log", &e, NULL);
		free(log);
		errno = e.err;
		return ONCE_IO;
	}
	memcpy(log->uid, uid, sizeof log->uid);
	log->end = log->allocated = ONCE_WAL_SEGMENT_HEADER;
	log->mode = cfg->mode;
	log->interval_ms = cfg->interval_ms ? cfg->interval_ms : 10;
	uint64_t step = cfg->prealloc_step == 0 || cfg->prealloc_step > (uint64_t)ONCE_WAL_PREALLOC_STEP
		? (uint64_t)ONCE_WAL_PREALLOC_STEP
		: (cfg->prealloc_step + 4095) / 4096 * 4096;
	log->prealloc_step = (off_t)step;
	log->buffer_max = cfg->buffer_max < ONCE_LOG_BUFFER_MIN ? ONCE_LOG_BUFFER_MIN : (size_t)cfg->buffer_max;
	log->next_seq = log->first_seq = first_seq;
	atomic_init(&log->appended_seq, first_seq);
	atomic_init(&log->written_seq, first_seq);
	atomic_init(&log->durable_seq, first_seq);
	atomic_init(&log->failed, false);
	atomic_init(&log->n_event_fds, 0);
	log->stats.bytes = ONCE_WAL_SEGMENT_HEADER;
	pthread_mutex_init(&log->lock, NULL);
	pthread_mutex_init(&log->io, NULL);
	pthread_mutex_init(&log->wait_lock, NULL);
	pthread_mutex_init(&log->event_lock, NULL);
	pthread_mutex_init(&log->stats_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&log->work, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&log->space, NULL);
	/* The writer blocks every signal: the host's handlers run on its own
	 * threads. */
	sigset_t old;
	once__signals_block_all(&old);
	log->writer_running = pthread_create(&log->writer, NULL, writer_main, log) == 0;
	once__signals_restore(&old);
	if (!log->writer_running) {
		close(log->fd);
		log_free(log);
		return ONCE_NOMEM;
	}
	*out = log;
	return ONCE_OK;
}

once_status once__log_close(struct once__log *log)
{
	pthread_mutex_lock(&log->lock);
	log->stopping = true;
	pthread_cond_signal(&log->work);
	pthread_mutex_unlock(&log->lock);
	pthread_join(log->writer, NULL); /* it writes what is queued first */
	/* Whatever the mode, everything appended is synced at close. */
	once_status st = once__log_sync_all(log);
	if (st == ONCE_OK)
		cut_preallocated(log);
	close(log->fd);
	log_free(log);
	return st;
}
