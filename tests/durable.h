/*
 * tests/durable.h - fixtures for tests of stores with a data directory:
 * a fresh temporary directory, removing it, and a store's state as sorted
 * dump lines (core/dump.c) for before/after comparisons.  White-box: the
 * including test links oncestore_internal_dep.
 */
#ifndef ONCE_TEST_DURABLE_H
#define ONCE_TEST_DURABLE_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"

/* A new empty directory under $TMPDIR (or /tmp); the store creates `dir`
 * inside it.  path receives "<tmp>/data". */
static inline void test_tmpdir(char path[256])
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char tmpl[200];
	if (snprintf(tmpl, sizeof tmpl, "%s/oncestore-test-XXXXXX", base) >= (int)sizeof tmpl)
		FAIL_AT("TMPDIR too long");
	if (mkdtemp(tmpl) == NULL)
		FAIL_AT("mkdtemp failed");
	snprintf(path, 256, "%s/data", tmpl);
}

/* Removes the data directory and its parent made by test_tmpdir. */
static inline void test_rmdir(const char *path)
{
	DIR *d = opendir(path);
	if (d != NULL) {
		struct dirent *de;
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			char f[512];
			snprintf(f, sizeof f, "%s/%s", path, de->d_name);
			unlink(f);
		}
		closedir(d);
	}
	rmdir(path);
	char parent[256];
	snprintf(parent, sizeof parent, "%s", path);
	char *slash = strrchr(parent, '/');
	if (slash != NULL) {
		*slash = '\0';
		rmdir(parent);
	}
}

/* A whole file's bytes (malloc'd, one spare byte); fails the test when it
 * cannot be read. */
static inline unsigned char *test_slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		FAIL_AT("open %s: %s", path, strerror(errno));
	struct stat st;
	ASSERT(fstat(fd, &st) == 0);
	unsigned char *buf = malloc((size_t)st.st_size + 1);
	ASSERT(buf != NULL);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		ASSERT(n > 0);
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

/* Writes a whole file (created 0600 or truncated). */
static inline void test_spit(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		FAIL_AT("create %s: %s", path, strerror(errno));
	ASSERT(len == 0 || write(fd, data, len) == (ssize_t)len);
	close(fd);
}

/* A minimal valid refresh record in `family` expiring at `exp`. */
/* Does fd name a file whose base name contains `part`?  (Fault hooks of
 * wal/io.h's table pick their files by it.) */
static inline bool test_fd_named(int fd, const char *part)
{
	char link[64], target[512];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof target - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	const char *base = strrchr(target, '/');
	return strstr(base != NULL ? base + 1 : target, part) != NULL;
}

static inline once_refresh test_refresh(const char *family, int64_t exp)
{
	once_refresh r;
	memset(&r, 0, sizeof r);
	r.family_id = family;
	r.subject = "user-1";
	r.client_id = "client-1";
	r.expires_at = exp;
	return r;
}

/* Options for a durable test store in dir (test clock, no sweeper). */
static inline once_options test_durable_options(struct test_clock *clk, const char *dir)
{
	once_options o = test_options(clk);
	o.dir = dir;
	o.checkpoint_bytes = UINT64_MAX; /* tests checkpoint explicitly */
	return o;
}

struct test_dump {
	char **lines;
	size_t n, cap;
};

static inline void test_dump_add(void *ctx, const char *line)
{
	struct test_dump *d = ctx;
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->lines = realloc(d->lines, d->cap * sizeof *d->lines);
		if (d->lines == NULL)
			FAIL_AT("out of memory");
	}
	d->lines[d->n++] = strdup(line);
}

static inline int test_dump_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The store's state, sorted. */
static inline struct test_dump test_dump_of(once_store *s)
{
	struct test_dump d = {0};
	once__dump(s, test_dump_add, &d);
	if (d.n > 0)
		qsort(d.lines, d.n, sizeof *d.lines, test_dump_cmp);
	return d;
}

static inline void test_dump_free(struct test_dump *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->lines[i]);
	free(d->lines);
	memset(d, 0, sizeof *d);
}

/* Fails naming the first line that differs. */
#define ASSERT_SAME_DUMP(a, b)                                                                    \
	do {                                                                                      \
		size_t i_ = 0;                                                                    \
		for (; i_ < (a).n && i_ < (b).n; i_++)                                            \
			if (strcmp((a).lines[i_], (b).lines[i_]) != 0)                            \
				FAIL_AT("dumps differ at line %zu:\n#  %s\n#  %s", i_,            \
				        (a).lines[i_], (b).lines[i_]);                            \
		if ((a).n != (b).n)                                                               \
			FAIL_AT("dumps differ in length: %zu vs %zu", (a).n, (b).n);              \
	} while (0)

#endif /* ONCE_TEST_DURABLE_H */
