/*
 * tools/repair_uid.c - what the data files say of their store, for
 * `oncestore repair --format` (tools/repair.h): every log segment and
 * snapshot header carries the store uid and the format version that
 * FORMAT names (wal/format.h), so when FORMAT is lost they still tell it,
 * provided they all agree.
 *
 * A header counts when its magic, its length and its checksum are right;
 * its version is read as written, so that files of another format version
 * are named as such rather than as damaged.  A damaged header says
 * nothing: it neither counts for a uid nor against one (plain repair
 * deals with it once FORMAT is back).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "io.h"
#include "repair.h"

void uid_hex(char out[33], const unsigned char uid[16])
{
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", uid[i]);
}

/* Reads one file's header; false when it could not be read (errno). */
static bool read_header(int dirfd, struct header_uid *h)
{
	int fd;
	if (once__io_open_regular(dirfd, h->name, &fd) != ONCE_OK)
		return false;
	unsigned char p[ONCE_WAL_SEGMENT_HEADER];
	ssize_t got = pread(fd, p, sizeof p, 0);
	int err = errno;
	close(fd);
	errno = err;
	if (got < 0)
		return false;
	h->intact = got == (ssize_t)sizeof p && memcmp(p, ONCE_WAL_MAGIC, 8) == 0 &&
	            le32(p + 12) == ONCE_WAL_SEGMENT_HEADER && le64(p + 56) == XXH3_64bits(p, 56);
	if (h->intact) {
		h->version = le32(p + 8);
		memcpy(h->uid, p + 16, 16);
	}
	return true;
}

static bool is_data_file(const char *name)
{
	uint64_t num;
	uint32_t part;
	return once__parse_log_name(name, &num) || once__parse_snap_name(name, &num, &part);
}

/* Whether every intact header names the first one's uid and version. */
static void agree(struct uid_survey *sv)
{
	sv->agree = true;
	const struct header_uid *first = NULL;
	for (size_t i = 0; i < sv->n; i++) {
		const struct header_uid *h = &sv->f[i];
		if (!h->intact)
			continue;
		sv->intact++;
		if (first == NULL)
			first = h;
		else if (h->version != first->version || memcmp(h->uid, first->uid, 16) != 0)
			sv->agree = false;
	}
	if (first != NULL) {
		memcpy(sv->uid, first->uid, 16);
		sv->version = first->version;
	}
}

bool survey_uids(const struct cli_dir *d, struct uid_survey *sv)
{
	memset(sv, 0, sizeof *sv);
	struct cli_files fs;
	if (cli_list(d->fd, &fs) != ONCE_OK) {
		cli_err("repair", "%s: could not list the directory", d->path);
		return false;
	}
	sv->f = calloc(fs.n + 1, sizeof *sv->f);
	bool ok = sv->f != NULL;
	if (!ok)
		cli_err("repair", "out of memory");
	for (size_t i = 0; ok && i < fs.n; i++) {
		if (!fs.f[i].regular || !is_data_file(fs.f[i].name))
			continue;
		struct header_uid *h = &sv->f[sv->n++];
		snprintf(h->name, sizeof h->name, "%s", fs.f[i].name);
		ok = read_header(d->fd, h);
		if (!ok)
			cli_err("repair", "%s/%s: %s", d->path, h->name, strerror(errno));
	}
	cli_files_free(&fs);
	if (ok)
		agree(sv);
	return ok;
}

void survey_uids_free(struct uid_survey *sv)
{
	free(sv->f);
	memset(sv, 0, sizeof *sv);
}

#define NAMES_MAX 6

static bool same_store(const struct header_uid *h, const unsigned char uid[16], uint32_t version)
{
	return h->intact && h->version == version && memcmp(h->uid, uid, 16) == 0;
}

void print_store_files(FILE *out, const struct uid_survey *sv, const unsigned char uid[16], uint32_t version)
{
	size_t shown = 0, total = 0;
	for (size_t i = 0; i < sv->n; i++) {
		const struct header_uid *h = &sv->f[i];
		if (uid != NULL ? !same_store(h, uid, version) : h->intact)
			continue;
		if (shown < NAMES_MAX)
			fprintf(out, "%s%s", shown ? ", " : "", h->name);
		shown += shown < NAMES_MAX;
		total++;
	}
	if (total > shown)
		fprintf(out, " and %zu more", total - shown);
}

void print_uid_groups(const struct uid_survey *sv)
{
	for (size_t i = 0; i < sv->n; i++) {
		const struct header_uid *h = &sv->f[i];
		bool first_of_group = h->intact;
		for (size_t j = 0; first_of_group && j < i; j++)
			first_of_group = !same_store(&sv->f[j], h->uid, h->version);
		if (!first_of_group)
			continue;
		char hex[33];
		uid_hex(hex, h->uid);
		fprintf(stderr, "  store uid %s, format version %u: ", hex, h->version);
		print_store_files(stderr, sv, h->uid, h->version);
		fprintf(stderr, "\n");
	}
}
