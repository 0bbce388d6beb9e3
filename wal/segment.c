/*
 * wal/segment.c - creating a log segment file (wal/segment.h).
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "io.h"
#include "segment.h"

bool once__segment_create(int dirfd, const char *path, const unsigned char uid[16], uint64_t number,
                          uint64_t first_seq, int *fd, uint64_t *salt, struct once__syserr *e)
{
	struct once__syserr ignored;
	if (e == NULL)
		e = &ignored;
	struct once__wal_segment seg = {.number = number, .first_seq = first_seq};
	memcpy(seg.uid, uid, sizeof seg.uid);
	unsigned char header[ONCE_WAL_SEGMENT_HEADER];
	once__wal_segment_encode(header, &seg);
	*fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (*fd < 0) {
		once__syserr_set(e, "open", path, 0);
		return false;
	}
	/* The directory entry too: records acknowledged in this segment must
	 * not vanish with its name on power loss.  That takes fsync on the
	 * directory: fdatasync of a directory need not write its entries
	 * (PostgreSQL's fsync_fname does the same). */
	off_t bad = 0;
	bool ok = once__io_write_all_at(*fd, header, sizeof header, 0, &bad);
	if (!ok)
		once__syserr_set(e, "pwrite", path, (uint64_t)bad);
	else if (!(ok = once__io_sync_data(*fd)))
		once__syserr_set(e, "fdatasync", path, sizeof header);
	else if (dirfd != AT_FDCWD && !(ok = once__io_sync_dir(dirfd)))
		once__syserr_set(e, "fsync", ".", 0);
	if (!ok) {
		close(*fd);
		*fd = -1;
		/* Nothing in it was acknowledged.  Remove it: the log goes on in
		 * the old segment (a header left here would read as a gap in the
		 * sequence numbers at recovery), and a later rotation must be
		 * able to create this segment again. */
		unlinkat(dirfd, path, 0);
		if (dirfd != AT_FDCWD)
			once__io_sync_dir(dirfd);
		return false;
	}
	*salt = once__wal_salt(&seg);
	return true;
}
