/*
 * wal/log.c - one log segment: append, group commit, sticky failure.
 * The rules are in wal/log.h; the bytes in wal/format.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "format.h"
#include "io.h"
#include "log.h"
#include "segment.h"

struct once__log {
	int fd;
	unsigned char uid[16]; /* the store's, in every segment header */
	int dirfd;             /* segment paths are relative to it */
	off_t end;      /* bytes in the file */
	uint64_t salt;  /* checksum seed of this segment's records */
	once_sync_mode mode;
	uint32_t interval_ms;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t done;  /* a flush finished */
	unsigned char *queue; /* encoded records not yet written */
	size_t queue_len, queue_cap;
	uint64_t next_seq;    /* the next append's sequence number */
	uint64_t written_seq; /* every record below it is in the kernel */
	uint64_t durable_seq; /* every record below it is on stable storage */
	bool flushing;        /* a leader is writing / syncing */
	bool failed;          /* sticky: see log.h */
	struct once__log_stats stats;

	pthread_t syncer; /* ONCE_SYNC_INTERVAL only */
	bool syncer_running, stopping;
	pthread_cond_t wake;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool sync_file(struct once__log *log, uint64_t records)
{
	uint64_t t0 = now_ns();
	bool ok = once__io_sync_data(log->fd);
	uint64_t ns = now_ns() - t0;
	pthread_mutex_lock(&log->lock);
	log->stats.syncs++;
	log->stats.synced_records += records;
	log->stats.sync_ns_total += ns;
	if (ns > log->stats.sync_ns_max)
		log->stats.sync_ns_max = ns;
	pthread_mutex_unlock(&log->lock);
	return ok;
}

/*
 * Seals every record framed in buf[0, len) with the segment's salt and the
 * group's synced-below mark (wal/format.h: the durable mark as it stands
 * when the group goes to the kernel).  Called by the one flusher, outside
 * the lock, so appenders only copy their bytes under it.
 */
static void seal_group(unsigned char *buf, size_t len, uint64_t salt, uint64_t synced_below)
{
	for (size_t o = 0; o < len;)
		o += once__wal_record_seal(buf + o, salt, synced_below);
}

/*
 * The leader's flush, entered and left with the lock held and `flushing`
 * set by the caller: everything queued is sealed and written with one
 * pwrite (and, when `sync`, made durable with one fdatasync) outside the
 * lock, so new appends keep queueing meanwhile.
 */
static void flush_locked(struct once__log *log, bool sync)
{
	unsigned char *buf = log->queue;
	size_t len = log->queue_len;
	uint64_t upto = log->next_seq, from = log->written_seq;
	uint64_t unsynced = upto - log->durable_seq, synced_below = log->durable_seq;
	uint64_t salt = log->salt;
	off_t at = log->end;
	log->queue = NULL;
	log->queue_len = log->queue_cap = 0;
	pthread_mutex_unlock(&log->lock);

	seal_group(buf, len, salt, synced_below);
	bool ok = once__io_write_all(log->fd, buf, len, at);
	if (ok && sync)
		ok = sync_file(log, unsynced);
	free(buf);

	pthread_mutex_lock(&log->lock);
	if (!ok) {
		log->failed = true;
	} else {
		log->end = at + (off_t)len;
		log->written_seq = upto;
		if (sync)
			log->durable_seq = upto;
		log->stats.flushes += upto > from;
		log->stats.bytes += len;
	}
	log->flushing = false;
	pthread_cond_broadcast(&log->done);
}

once_status once__log_commit(struct once__log *log, uint64_t seq)
{
	bool sync = log->mode == ONCE_SYNC_ALWAYS;
	pthread_mutex_lock(&log->lock);
	if (seq >= log->next_seq) { /* never appended: nothing could make it durable */
		pthread_mutex_unlock(&log->lock);
		return ONCE_INVALID;
	}
	for (;;) {
		if (log->failed)
			break;
		if ((sync ? log->durable_seq : log->written_seq) > seq)
			break;
		if (log->flushing) {
			pthread_cond_wait(&log->done, &log->lock); /* a follower */
			continue;
		}
		log->flushing = true; /* the leader */
		flush_locked(log, sync);
	}
	once_status st = log->failed ? ONCE_IO : ONCE_OK;
	pthread_mutex_unlock(&log->lock);
	return st;
}

once_status once__log_append(struct once__log *log, uint8_t type, const void *payload, uint32_t len,
                             uint64_t *seq)
{
	if (len > ONCE_WAL_MAX_PAYLOAD)
		return ONCE_INVALID;
	size_t size = once__wal_record_size(len);
	pthread_mutex_lock(&log->lock);
	once_status st = ONCE_OK;
	if (log->failed) {
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
		log->stats.records++;
	}
	pthread_mutex_unlock(&log->lock);
	return st;
}

/* ONCE_SYNC_INTERVAL: every interval_ms, make what was written durable. */
static void *syncer_main(void *arg)
{
	struct once__log *log = arg;
	pthread_mutex_lock(&log->lock);
	while (!log->stopping) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)log->interval_ms * 1000000u;
		until.tv_sec += (time_t)(ns / 1000000000u);
		until.tv_nsec = (long)(ns % 1000000000u);
		int rc = 0;
		while (!log->stopping && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&log->wake, &log->lock, &until);
		if (log->stopping || log->failed || log->flushing || log->durable_seq == log->next_seq)
			continue;
		log->flushing = true;
		flush_locked(log, true);
	}
	pthread_mutex_unlock(&log->lock);
	return NULL;
}

static once_status start_syncer(struct once__log *log)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int rc = pthread_cond_init(&log->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		return ONCE_NOMEM;
	if (log->mode != ONCE_SYNC_INTERVAL)
		return ONCE_OK;
	if (pthread_create(&log->syncer, NULL, syncer_main, log) != 0) {
		pthread_cond_destroy(&log->wake);
		return ONCE_NOMEM;
	}
	log->syncer_running = true;
	return ONCE_OK;
}

once_status once__log_create(const char *path, const unsigned char uid[16], uint64_t number,
                             uint64_t first_seq, once_sync_mode mode, uint32_t interval_ms,
                             struct once__log **out, int dirfd)
{
	struct once__log *log = calloc(1, sizeof *log);
	if (log == NULL)
		return ONCE_NOMEM;
	log->dirfd = dirfd;
	if (!once__segment_create(dirfd, path, uid, number, first_seq, &log->fd, &log->salt)) {
		free(log);
		return ONCE_IO;
	}
	memcpy(log->uid, uid, sizeof log->uid);
	log->end = ONCE_WAL_SEGMENT_HEADER;
	log->mode = mode;
	log->interval_ms = interval_ms ? interval_ms : 10;
	log->next_seq = log->written_seq = log->durable_seq = first_seq;
	log->stats.bytes = ONCE_WAL_SEGMENT_HEADER;
	pthread_mutex_init(&log->lock, NULL);
	pthread_cond_init(&log->done, NULL);
	if (start_syncer(log) != ONCE_OK) {
		pthread_cond_destroy(&log->done);
		pthread_mutex_destroy(&log->lock);
		close(log->fd);
		free(log);
		return ONCE_NOMEM;
	}
	*out = log;
	return ONCE_OK;
}

/*
 * With the lock held and no flush under way: writes everything queued to
 * the current segment and makes everything appended so far durable,
 * whatever the sync mode.  false (and the log failed, sticky) when the
 * write or the sync fails.  Appenders wait on the lock meanwhile; it
 * serves rotations and checkpoints, which are rare.
 */
static bool write_and_sync_locked(struct once__log *log)
{
	bool ok = !log->failed;
	if (ok && log->queue_len > 0) {
		seal_group(log->queue, log->queue_len, log->salt, log->durable_seq);
		ok = once__io_write_all(log->fd, log->queue, log->queue_len, log->end);
		if (ok) {
			log->end += (off_t)log->queue_len;
			log->stats.bytes += log->queue_len;
			log->stats.flushes++;
			log->queue_len = 0;
			log->written_seq = log->next_seq;
		}
	}
	if (ok && log->durable_seq < log->next_seq) {
		ok = once__io_sync_data(log->fd);
		if (ok) {
			log->stats.syncs++;
			log->stats.synced_records += log->next_seq - log->durable_seq;
			log->durable_seq = log->next_seq;
		}
	}
	if (!ok)
		log->failed = true; /* a failed write or sync of appended data */
	return ok;
}

once_status once__log_sync_all(struct once__log *log)
{
	pthread_mutex_lock(&log->lock);
	while (log->flushing)
		pthread_cond_wait(&log->done, &log->lock);
	bool ok = write_and_sync_locked(log);
	pthread_cond_broadcast(&log->done);
	pthread_mutex_unlock(&log->lock);
	return ok ? ONCE_OK : ONCE_IO;
}

/*
 * Holding the lock and the `flushing` role throughout, so no append or
 * flush interleaves: write and sync everything queued to the old segment,
 * then switch to a new one that starts at the next sequence number.
 */
once_status once__log_rotate(struct once__log *log, const char *path, uint64_t number,
                             uint64_t *first_seq)
{
	pthread_mutex_lock(&log->lock);
	while (log->flushing)
		pthread_cond_wait(&log->done, &log->lock);
	once_status st = ONCE_IO;
	int fd;
	uint64_t salt;
	if (write_and_sync_locked(log) &&
	    once__segment_create(log->dirfd, path, log->uid, number, log->next_seq, &fd, &salt)) {
		close(log->fd);
		log->fd = fd;
		log->salt = salt;
		log->end = ONCE_WAL_SEGMENT_HEADER;
		log->stats.bytes += ONCE_WAL_SEGMENT_HEADER;
		*first_seq = log->next_seq;
		st = ONCE_OK;
	}
	/* else: the log failed (sticky), or no new segment could be made and
	 * the log goes on in the old one. */
	pthread_cond_broadcast(&log->done);
	pthread_mutex_unlock(&log->lock);
	return st;
}

bool once__log_failed(struct once__log *log)
{
	pthread_mutex_lock(&log->lock);
	bool failed = log->failed;
	pthread_mutex_unlock(&log->lock);
	return failed;
}

void once__log_stats(struct once__log *log, struct once__log_stats *out)
{
	pthread_mutex_lock(&log->lock);
	*out = log->stats;
	pthread_mutex_unlock(&log->lock);
}

once_status once__log_close(struct once__log *log)
{
	pthread_mutex_lock(&log->lock);
	log->stopping = true;
	pthread_cond_signal(&log->wake);
	uint64_t last = log->next_seq;
	pthread_mutex_unlock(&log->lock);
	if (log->syncer_running)
		pthread_join(log->syncer, NULL);
	once_status st = last > 0 ? once__log_commit(log, last - 1) : ONCE_OK;
	/* Whatever the mode, what was acknowledged is synced at close. */
	if (st == ONCE_OK && log->mode != ONCE_SYNC_ALWAYS && once__io.fdatasync(log->fd) != 0)
		st = ONCE_IO;
	close(log->fd);
	free(log->queue);
	pthread_cond_destroy(&log->wake);
	pthread_cond_destroy(&log->done);
	pthread_mutex_destroy(&log->lock);
	free(log);
	return st;
}
