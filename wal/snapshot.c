/*
 * wal/snapshot.c - writing one shard's live state to a snapshot file while
 * writers keep running (a fuzzy snapshot).
 *
 * Why fuzzy is exact.  The checkpoint first cuts the log (start S = the
 * first sequence number of the new segment), then walks the tables.  Every
 * record numbered below S describes a change that was already visible in
 * memory when the walk began, because a writer appends only after its CAS
 * (wal/persist.h), and the cut happens-after every append below S (the log
 * lock).  The one exception is an insert: it is linked PENDING, appended,
 * then committed, so the walk waits for a PENDING entry to be committed or
 * unlinked (it never waits on I/O: nothing blocks between the link and the
 * commit).  So the snapshot holds at least every change numbered below S.
 *
 * It may also hold changes made while the walk ran, numbered S or later,
 * and those are the danger (issue 9, found by a power-loss simulation): a
 * snapshot that holds rotation 9->10 (parent 9 consumed, child 10 live)
 * whose record never reached the disk, recovered with the log from S that
 * holds rotation 8->9, gets 9 re-inserted unconsumed by 8->9's insert
 * while 10 stays live: a half-applied rotation.  Replay alone cannot undo
 * it: an insert record must replace what its key holds (a swept key is
 * reused), and the snapshot does not say which records made its state.
 *
 * So a checkpoint commits only snapshots whose every effect is durable in
 * the log (wal/persist.c, snapshot_effects_durable): after the walk it
 * waits for a grace period, which every writer that was inside its
 * read-side section during the walk leaves only after appending its
 * record (the append is inside the section of the CAS, and a change the
 * walk saw was made by a CAS, or an insert commit, in such a section); then
 * it writes and fdatasyncs the log through the last record appended,
 * whatever the sync mode.  Only then is CHECKPOINT renamed into place.
 * Let E be the first sequence number after that sync.  The snapshot holds
 * the state after every record below S, plus some changes whose records
 * are numbered in [S, E), and every record in [S, E) is durable.  Recovery
 * applies the snapshot, then replays every record from S on in log order
 * (per key; wal/batch.h): each record of [S, E) is applied again after
 * whatever the snapshot held for its keys, so each key ends in the state
 * its last record in the log gives it, exactly as if the log had been
 * replayed from the beginning; an insert that replaces a newer snapshot
 * state is followed, in [S, E), by the records of every later change the
 * snapshot held.  This holds for every kind, for a rotation (one record for
 * both keys, whichever shards they live in) and for revocations (family
 * updates commute: core/restore.c), and for any number of writers racing
 * the walk.  A change whose record could not be appended or synced makes
 * the log fail (sticky), and a checkpoint that overlaps a failure is not
 * committed.
 *
 * The file: a segment header of kind ONCE_WAL_KIND_SNAPSHOT (number = S,
 * part = shard), the entries' images as log records numbered from 1
 * (wal/codec.h), and a SNAPSHOT_END record with the count.  It is written
 * to <name>.tmp, synced, and renamed; the checkpoint commits it later.
 * Its name, snap-S-P-<shard> (P: the checkpoint's shard count), is never
 * one of the committed checkpoint's (wal/recover.h, "Why S and P"), so
 * the rename never replaces a committed file.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "format.h"
#include "internal.h"
#include "io.h"
#include "recover.h"
#include "snapshot.h"

#define SNAP_BUFFER (1u << 20)

struct writer {
	int fd;
	off_t at;
	uint64_t salt, seq;
	unsigned char *buf;
	size_t len;
	bool failed;
	struct once__buf payload;
	const char *tmp;         /* the file's name, for *err */
	struct once__syserr *err; /* the call that failed (err 0: none) */
};

static void flush(struct writer *w)
{
	off_t bad = w->at;
	if (!w->failed && !once__io_write_all_at(w->fd, w->buf, w->len, w->at, &bad)) {
		w->failed = true;
		once__syserr_set(w->err, "pwrite", w->tmp, (uint64_t)bad);
	}
	w->at += (off_t)w->len;
	w->len = 0;
}

/* Frames the payload built in w->payload as the next record. */
static void emit(struct writer *w, uint8_t type)
{
	if (w->payload.oom || w->payload.len > ONCE_WAL_MAX_PAYLOAD) {
		w->failed = true;
	} else {
		size_t size = once__wal_record_size((uint32_t)w->payload.len);
		if (w->len + size > SNAP_BUFFER)
			flush(w);
		if (size > SNAP_BUFFER) { /* larger than the buffer: alone */
			unsigned char *big = malloc(size);
			if (big == NULL) {
				w->failed = true;
			} else {
				once__wal_record_encode(big, w->salt, type, w->seq, 0, w->payload.p,
				                        (uint32_t)w->payload.len);
				unsigned char *keep = w->buf;
				w->buf = big, w->len = size;
				flush(w);
				w->buf = keep;
				free(big);
			}
		} else {
			once__wal_record_encode(w->buf + w->len, w->salt, type, w->seq, 0, w->payload.p,
			                        (uint32_t)w->payload.len);
			w->len += size;
		}
		w->seq++;
	}
	once__buf_free(&w->payload);
}

/* The records that recreate entry e as it is now (nothing for a dead
 * one).  Inside the walk's read-side section. */
static void image(struct writer *w, struct once__entry *e)
{
	uint32_t state = atomic_load_explicit(&e->state, memory_order_acquire);
	while (state == ONCE_PENDING) {
		if (once__table_is_deleted(e))
			return; /* aborted */
		sched_yield(); /* its record is being appended: commit follows */
		state = atomic_load_explicit(&e->state, memory_order_acquire);
	}
	if (state == 0)
		return;
	struct once__buf *b = &w->payload;
	switch (e->table) {
	case ONCE_TBL_CODE:
		once__enc_code_put(b, e);
		emit(w, ONCE_WAL_CODE_PUT);
		if (state >= ONCE_CODE_TAKEN) {
			once__enc_key(b, e, true, atomic_load(&e->u.code.consumed_at));
			emit(w, ONCE_WAL_CODE_TAKE);
		}
		if (state == ONCE_CODE_FINALIZED) {
			once__enc_key(b, e, false, 0);
			emit(w, ONCE_WAL_CODE_FINALIZE);
		}
		break;
	case ONCE_TBL_ACCESS:
		once__enc_access(b, e);
		emit(w, ONCE_WAL_ACCESS_RECORD);
		break;
	case ONCE_TBL_ACCESS_FAMILY:
	case ONCE_TBL_REFRESH_FAMILY:
		if (atomic_load(&e->expires_at) == ONCE_FAMILY_DEAD)
			return;
		once__enc_family(b, e);
		emit(w, e->table == ONCE_TBL_ACCESS_FAMILY ? ONCE_WAL_ACCESS_FAMILY : ONCE_WAL_REFRESH_FAMILY);
		break;
	case ONCE_TBL_REFRESH: {
		struct once__consumption *c =
			atomic_load_explicit(&e->u.refresh.consumed, memory_order_acquire);
		once__enc_refresh_insert(b, e);
		emit(w, ONCE_WAL_REFRESH_INSERT);
		if (c != NULL) {
			once__enc_key(b, e, true, c->consumed_at);
			emit(w, ONCE_WAL_REFRESH_CONSUME);
		}
		if (c != NULL && c->successor != NULL) {
			once__enc_successor(b, e, c);
			emit(w, ONCE_WAL_REFRESH_SUCCESSOR);
		}
		break;
	}
	case ONCE_TBL_NONCE:
		once__enc_nonce(b, e);
		emit(w, ONCE_WAL_NONCE_ISSUE);
		if (state == ONCE_NONCE_USED) {
			once__enc_key(b, e, false, 0);
			emit(w, ONCE_WAL_NONCE_ACCEPT);
		}
		break;
	case ONCE_TBL_REPLAY:
		once__enc_replay(b, e);
		emit(w, ONCE_WAL_REPLAY_RECORD);
		break;
	default:
		break;
	}
}

static void image_cb(struct once__entry *e, void *ctx)
{
	struct writer *w = ctx;
	if (!w->failed)
		image(w, e);
}

once_status once__snapshot_write(once_store *s, int dirfd, const unsigned char uid[16], uint64_t start,
                                 uint32_t parts, uint32_t shard, uint64_t *records, uint64_t *bytes,
                                 struct once__syserr *e)
{
	memset(e, 0, sizeof *e);
	char name[ONCE_FILE_NAME_MAX], tmp[ONCE_FILE_NAME_MAX + 8];
	once__snap_name(name, start, parts, shard);
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	struct writer w = {.seq = 1, .tmp = tmp, .err = e};
	once__buf_init(&w.payload);
	w.buf = malloc(SNAP_BUFFER);
	w.fd = once__io_create_tmp(dirfd, tmp);
	if (w.fd < 0)
		once__syserr_set(e, "open", tmp, 0);
	if (w.buf == NULL || w.fd < 0) {
		if (w.fd >= 0)
			close(w.fd), unlinkat(dirfd, tmp, 0);
		free(w.buf);
		return w.buf == NULL ? ONCE_NOMEM : ONCE_IO;
	}
	struct once__wal_segment seg = {.number = start, .first_seq = 1, .kind = ONCE_WAL_KIND_SNAPSHOT,
	                                .part = shard};
	memcpy(seg.uid, uid, 16);
	once__wal_segment_encode(w.buf, &seg);
	w.len = ONCE_WAL_SEGMENT_HEADER;
	w.salt = once__wal_salt(&seg);

	for (int t = 0; t < ONCE_TBL_COUNT && !w.failed; t++)
		once__table_each(s, shard, (enum once__table)t, image_cb, &w);
	uint64_t count = w.seq - 1;
	once__enc_u64(&w.payload, count);
	emit(&w, ONCE_WAL_SNAPSHOT_END);
	flush(&w);
	bool ok = !w.failed;
	if (ok && !(ok = once__io_sync_data(w.fd)))
		once__syserr_set(e, "fdatasync", tmp, (uint64_t)w.at);
	close(w.fd);
	free(w.buf);
	if (ok && !(ok = renameat(dirfd, tmp, dirfd, name) == 0))
		once__syserr_set(e, "rename", tmp, 0);
	if (!ok) {
		unlinkat(dirfd, tmp, 0);
		/* A record too large or out of memory fails without a call. */
		return e->err != 0 ? ONCE_IO : ONCE_NOMEM;
	}
	*records = count;
	*bytes = (uint64_t)w.at;
	return ONCE_OK;
}
