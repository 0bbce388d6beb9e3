/*
 * tests/plsim/fsmodel.c - journal replay and power-loss images
 * (fsmodel.h describes the model).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "fsmodel.h"
#include "journal.h"

#define SECTOR 512u

enum { D_CREATE, D_MKDIR, D_RENAME, D_UNLINK };
enum { F_WRITE, F_TRUNC };

struct pl_fop {
	uint8_t kind;
	uint64_t seq, off, len; /* F_TRUNC: off = the new size */
	unsigned char *data;
};

struct pl_dop {
	uint8_t kind;
	uint64_t seq;
	char *name, *name2;
	struct pl_node *node;
};

struct pl_entry {
	char *name;
	struct pl_node *node;
};

struct pl_node {
	size_t index; /* in fs->nodes */
	bool dir;
	uint64_t ino;
	char label[96]; /* its name when last created or renamed, for messages */
	/* a file */
	unsigned char *data;
	size_t size, cap;
	struct pl_fop *fops;
	size_t n_fops, cap_fops;
	/* a directory */
	struct pl_entry *ents;
	size_t n_ents, cap_ents;
	struct pl_dop *dops;
	size_t n_dops, cap_dops;
};

struct pl_sync {
	uint64_t id, seq;
	struct pl_node *node;
	bool data_only;
};

const char *const pl_policy_name[PL_POLICIES] = {"durable state only", "all pending kept",
                                                  "data kept, entries undone",
                                                  "entries kept, data lost", "random"};

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL) {
		fprintf(stderr, "# plsim: out of memory\n");
		exit(1);
	}
	return q;
}

#define PUSH(arr, n, cap)                                                                         \
	do {                                                                                      \
		if ((n) == (cap)) {                                                               \
			(cap) = (cap) ? (cap) * 2 : 8;                                            \
			(arr) = xrealloc((arr), (cap) * sizeof *(arr));                           \
		}                                                                                 \
		(n)++;                                                                            \
	} while (0)

static char *xstrndup(const char *s, size_t n)
{
	char *p = xrealloc(NULL, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void error(struct pl_fs *fs, const char *fmt, ...)
{
	if (fs->st.errors++ == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(fs->st.first_error, sizeof fs->st.first_error, fmt, ap);
		va_end(ap);
	}
}

static struct pl_node *node_new(struct pl_fs *fs, bool dir, uint64_t ino, const char *label)
{
	struct pl_node *n = xrealloc(NULL, sizeof *n);
	memset(n, 0, sizeof *n);
	n->dir = dir;
	n->ino = ino;
	snprintf(n->label, sizeof n->label, "%s", label);
	PUSH(fs->nodes, fs->n_nodes, fs->cap_nodes);
	n->index = fs->n_nodes - 1;
	fs->nodes[n->index] = n;
	return n;
}

/* The node that has inode ino now: the newest one made with it. */
static struct pl_node *by_ino(struct pl_fs *fs, uint64_t ino)
{
	for (size_t i = fs->n_nodes; i-- > 0;)
		if (fs->nodes[i]->ino == ino)
			return fs->nodes[i];
	return NULL;
}

/* ---- content and entries ---- */

static void grow_to(unsigned char **data, size_t *size, size_t *cap, size_t want)
{
	if (want > *cap) {
		size_t c = *cap ? *cap : 4096;
		while (c < want)
			c *= 2;
		*data = xrealloc(*data, c);
		*cap = c;
	}
	if (want > *size) {
		memset(*data + *size, 0, want - *size);
		*size = want;
	}
}

static void put_bytes(unsigned char **data, size_t *size, size_t *cap, uint64_t off, const void *src,
                      size_t len)
{
	grow_to(data, size, cap, (size_t)off + len);
	memcpy(*data + off, src, len);
}

static void set_size(unsigned char **data, size_t *size, size_t *cap, uint64_t len)
{
	if (len > *size)
		grow_to(data, size, cap, (size_t)len);
	else
		*size = (size_t)len;
}

static void apply_fop(struct pl_node *n, const struct pl_fop *op)
{
	if (op->kind == F_WRITE)
		put_bytes(&n->data, &n->size, &n->cap, op->off, op->data, op->len);
	else
		set_size(&n->data, &n->size, &n->cap, op->off);
}

struct ents {
	struct pl_entry *e;
	size_t n, cap;
};

static void ents_set(struct ents *d, const char *name, struct pl_node *node)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->e[i].name, name) == 0) {
			d->e[i].node = node;
			return;
		}
	PUSH(d->e, d->n, d->cap);
	d->e[d->n - 1].name = xstrndup(name, strlen(name));
	d->e[d->n - 1].node = node;
}

static void ents_del(struct ents *d, const char *name)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->e[i].name, name) == 0) {
			free(d->e[i].name);
			d->e[i] = d->e[--d->n];
			return;
		}
}

static void apply_dop(struct ents *d, const struct pl_dop *op)
{
	switch (op->kind) {
	case D_CREATE:
	case D_MKDIR: ents_set(d, op->name, op->node); break;
	case D_RENAME:
		ents_del(d, op->name);
		ents_set(d, op->name2, op->node);
		break;
	default: ents_del(d, op->name); break;
	}
}

/* ---- scan ---- */

static bool scan_dir(struct pl_fs *fs, struct pl_node *dn, const char *path, const char *rel)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return false;
	struct ents e = {dn->ents, dn->n_ents, dn->cap_ents};
	struct dirent *de;
	bool ok = true;
	while (ok && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char p[4096], r[4096];
		struct stat st;
		if (snprintf(p, sizeof p, "%s/%s", path, de->d_name) >= (int)sizeof p ||
		    snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", de->d_name) >= (int)sizeof r ||
		    lstat(p, &st) != 0) {
			ok = false;
			break;
		}
		struct pl_node *n = node_new(fs, S_ISDIR(st.st_mode), st.st_ino, r);
		ents_set(&e, de->d_name, n);
		if (n->dir) {
			ok = scan_dir(fs, n, p, r);
		} else if (S_ISREG(st.st_mode)) {
			int fd = open(p, O_RDONLY | O_CLOEXEC);
			ok = fd >= 0;
			if (ok) {
				grow_to(&n->data, &n->size, &n->cap, (size_t)st.st_size);
				ok = read(fd, n->data, n->size) == (ssize_t)n->size;
				close(fd);
			}
		} else {
			ok = false; /* the library makes files and directories only */
		}
	}
	closedir(d);
	dn->ents = e.e;
	dn->n_ents = e.n;
	dn->cap_ents = e.cap;
	return ok;
}

bool pl_fs_scan(struct pl_fs *fs, const char *root)
{
	memset(fs, 0, sizeof *fs);
	struct stat st;
	if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
		return false;
	fs->root = node_new(fs, true, st.st_ino, ".");
	return scan_dir(fs, fs->root, root, "");
}

/* ---- replay ---- */

static void push_dop(struct pl_node *dn, uint8_t kind, uint64_t seq, const char *name, size_t nl,
                     const char *name2, size_t n2l, struct pl_node *node)
{
	PUSH(dn->dops, dn->n_dops, dn->cap_dops);
	struct pl_dop *op = &dn->dops[dn->n_dops - 1];
	op->kind = kind;
	op->seq = seq;
	op->name = xstrndup(name, nl);
	op->name2 = name2 ? xstrndup(name2, n2l) : NULL;
	op->node = node;
}

static void sync_done(struct pl_fs *fs, const struct pl_sync *s)
{
	struct pl_node *n = s->node;
	size_t k = 0;
	if (!n->dir) {
		fs->st.file_syncs++;
		while (k < n->n_fops && n->fops[k].seq < s->seq) {
			apply_fop(n, &n->fops[k]);
			free(n->fops[k].data);
			k++;
		}
		memmove(n->fops, n->fops + k, (n->n_fops - k) * sizeof *n->fops);
		n->n_fops -= k;
		return;
	}
	if (s->data_only) {
		fs->st.dir_fdatasyncs++; /* not a directory sync */
		return;
	}
	fs->st.dir_fsyncs++;
	struct ents e = {n->ents, n->n_ents, n->cap_ents};
	while (k < n->n_dops && n->dops[k].seq < s->seq) {
		apply_dop(&e, &n->dops[k]);
		free(n->dops[k].name);
		free(n->dops[k].name2);
		k++;
	}
	n->ents = e.e;
	n->n_ents = e.n;
	n->cap_ents = e.cap;
	memmove(n->dops, n->dops + k, (n->n_dops - k) * sizeof *n->dops);
	n->n_dops -= k;
}

static void replay_one(struct pl_fs *fs, const struct pl_rec *h, const char *name, const char *name2,
                       const unsigned char *data)
{
	uint64_t seq = ++fs->seq;
	struct pl_node *n = NULL, *dn = NULL, *dn2 = NULL;
	switch (h->op) {
	case PL_CREATE:
	case PL_MKDIR:
		if ((dn = by_ino(fs, h->dir)) == NULL || !dn->dir)
			break;
		n = node_new(fs, h->op == PL_MKDIR, h->ino, "");
		snprintf(n->label, sizeof n->label, "%.*s", (int)h->name_len, name);
		push_dop(dn, h->op == PL_MKDIR ? D_MKDIR : D_CREATE, seq, name, h->name_len, NULL, 0, n);
		fs->st.creates += h->op == PL_CREATE;
		fs->st.mkdirs += h->op == PL_MKDIR;
		return;
	case PL_WRITE:
	case PL_TRUNC:
		if ((n = by_ino(fs, h->ino)) == NULL || n->dir)
			break;
		PUSH(n->fops, n->n_fops, n->cap_fops);
		struct pl_fop *op = &n->fops[n->n_fops - 1];
		op->kind = h->op == PL_WRITE ? F_WRITE : F_TRUNC;
		op->seq = seq;
		op->off = h->off;
		op->len = h->op == PL_WRITE ? h->len : 0;
		op->data = NULL;
		if (op->len) {
			op->data = xrealloc(NULL, op->len);
			memcpy(op->data, data, op->len);
		}
		fs->st.writes += h->op == PL_WRITE;
		fs->st.write_bytes += op->len;
		fs->st.truncs += h->op == PL_TRUNC;
		return;
	case PL_RENAME:
		dn = by_ino(fs, h->dir);
		dn2 = by_ino(fs, h->dir2);
		n = by_ino(fs, h->ino);
		if (dn == NULL || dn != dn2 || n == NULL || !dn->dir)
			break;
		push_dop(dn, D_RENAME, seq, name, h->name_len, name2, h->name2_len, n);
		snprintf(n->label, sizeof n->label, "%.*s", (int)h->name2_len, name2);
		fs->st.renames++;
		return;
	case PL_UNLINK:
		if ((dn = by_ino(fs, h->dir)) == NULL || !dn->dir || (n = by_ino(fs, h->ino)) == NULL)
			break;
		push_dop(dn, D_UNLINK, seq, name, h->name_len, NULL, 0, n);
		fs->st.unlinks++;
		return;
	case PL_SYNC_START:
		if ((n = by_ino(fs, h->ino)) == NULL)
			break;
		PUSH(fs->syncs, fs->n_syncs, fs->cap_syncs);
		fs->syncs[fs->n_syncs - 1] = (struct pl_sync){h->off, seq, n, (h->flags & PL_F_DATASYNC) != 0};
		return;
	case PL_SYNC_DONE:
		for (size_t i = 0; i < fs->n_syncs; i++)
			if (fs->syncs[i].id == h->off) {
				struct pl_sync s = fs->syncs[i];
				fs->syncs[i] = fs->syncs[--fs->n_syncs];
				sync_done(fs, &s);
				return;
			}
		break;
	case PL_UNSUPPORTED:
		error(fs, "the writer called %.*s on a file under the root: not modelled", (int)h->name_len,
		      name);
		return;
	default: break;
	}
	error(fs, "journal record %" PRIu64 " (op %u, name \"%.*s\", inode %" PRIu64 ", dir %" PRIu64
	          ") names a file or directory the model does not know",
	      seq, h->op, (int)h->name_len, name, h->ino, h->dir);
}

bool pl_fs_replay(struct pl_fs *fs, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		close(fd);
		return false;
	}
	size_t len = (size_t)st.st_size, have = 0;
	unsigned char *buf = xrealloc(NULL, len);
	while (have < len) {
		ssize_t n = read(fd, buf + have, len - have);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	size_t off = 0;
	while (off + sizeof(struct pl_rec) <= have) {
		struct pl_rec h;
		memcpy(&h, buf + off, sizeof h);
		if (h.size < sizeof h || h.size > have - off ||
		    (uint64_t)sizeof h + h.name_len + h.name2_len + h.len != h.size)
			break;
		const char *name = (const char *)buf + off + sizeof h;
		const char *name2 = name + h.name_len;
		replay_one(fs, &h, name, name2, (const unsigned char *)name2 + h.name2_len);
		fs->st.records++;
		off += h.size;
	}
	fs->st.torn_record += off != have;
	free(buf);
	return true;
}

void pl_fs_pending(const struct pl_fs *fs, uint64_t *file_ops, uint64_t *dir_ops)
{
	*file_ops = *dir_ops = 0;
	for (size_t i = 0; i < fs->n_nodes; i++) {
		*file_ops += fs->nodes[i]->n_fops;
		*dir_ops += fs->nodes[i]->n_dops;
	}
}

void pl_fs_free(struct pl_fs *fs)
{
	for (size_t i = 0; i < fs->n_nodes; i++) {
		struct pl_node *n = fs->nodes[i];
		free(n->data);
		for (size_t k = 0; k < n->n_fops; k++)
			free(n->fops[k].data);
		free(n->fops);
		for (size_t k = 0; k < n->n_ents; k++)
			free(n->ents[k].name);
		free(n->ents);
		for (size_t k = 0; k < n->n_dops; k++) {
			free(n->dops[k].name);
			free(n->dops[k].name2);
		}
		free(n->dops);
		free(n);
	}
	free(fs->nodes);
	free(fs->syncs);
	memset(fs, 0, sizeof *fs);
}

/* ---- images ---- */

static uint64_t rng_step(uint64_t *s)
{
	uint64_t x = *s ? *s : 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t pick(uint64_t *s, uint64_t n)
{
	return n ? (rng_step(s) >> 11) % n : 0;
}

#define DESC_MAX 600

static void describe(struct pl_image *img, const char *fmt, ...)
{
	if (img->desc_len > DESC_MAX) {
		img->desc_omitted++;
		return;
	}
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
	if (img->desc_len + len + 1 > img->desc_cap) {
		img->desc_cap = (img->desc_len + len + 1) * 2;
		img->desc = xrealloc(img->desc, img->desc_cap);
	}
	memcpy(img->desc + img->desc_len, buf, len + 1);
	img->desc_len += len;
}

enum { W_KEEP, W_DROP, W_TORN_BYTE, W_TORN_SECTOR, W_SUBSET, W_ZEROED, W_CHOICES };

/* Applies write op to (data, size) under one choice. */
static void apply_write(struct pl_image *img, const char *label, const struct pl_fop *op, int how,
                        uint64_t *rng, unsigned char **data, size_t *size, size_t *cap)
{
	uint64_t end = op->off + op->len;
	/* pieces: [off, next sector boundary), whole sectors, the rest */
	uint64_t first = op->off / SECTOR, last = (end - 1) / SECTOR, pieces = last - first + 1;
	switch (how) {
	case W_KEEP: put_bytes(data, size, cap, op->off, op->data, op->len); return;
	case W_DROP: describe(img, "; %s write@%" PRIu64 "+%" PRIu64 " lost", label, op->off, op->len); return;
	case W_ZEROED:
		describe(img, "; %s write@%" PRIu64 "+%" PRIu64 " lost, size kept", label, op->off, op->len);
		if (end > *size)
			grow_to(data, size, cap, (size_t)end);
		return;
	case W_TORN_BYTE: {
		uint64_t k = pick(rng, op->len);
		describe(img, "; %s write@%" PRIu64 "+%" PRIu64 " torn after %" PRIu64 " bytes", label, op->off,
		         op->len, k);
		put_bytes(data, size, cap, op->off, op->data, (size_t)k);
		return;
	}
	default: break;
	}
	/* By sectors: torn at a boundary (a prefix of the pieces) or any subset. */
	bool extend = pick(rng, 2) == 0;
	uint64_t keep_prefix = how == W_TORN_SECTOR ? pick(rng, pieces) : 0;
	char mask[72];
	size_t ml = 0;
	for (uint64_t p = 0; p < pieces; p++) {
		bool keep = how == W_TORN_SECTOR ? p < keep_prefix : pick(rng, 2) == 0;
		if (ml + 1 < sizeof mask)
			mask[ml++] = keep ? '1' : '0';
		if (!keep)
			continue;
		uint64_t a = (first + p) * SECTOR, b = a + SECTOR;
		if (a < op->off)
			a = op->off;
		if (b > end)
			b = end;
		put_bytes(data, size, cap, a, op->data + (a - op->off), (size_t)(b - a));
	}
	mask[ml] = '\0';
	if (extend && end > *size)
		grow_to(data, size, cap, (size_t)end);
	describe(img, "; %s write@%" PRIu64 "+%" PRIu64 " %s %s%s", label, op->off, op->len,
	         how == W_TORN_SECTOR ? "torn at a sector, sectors" : "sector subset", mask,
	         extend ? " (size kept)" : "");
}

struct build {
	const struct pl_fs *fs;
	enum pl_policy pol;
	uint64_t *rng;
	struct pl_image *img;
};

static void add_file(struct pl_image *img, const char *path, bool dir, unsigned char *data, size_t size)
{
	PUSH(img->f, img->n, img->cap);
	struct pl_ifile *f = &img->f[img->n - 1];
	f->path = xstrndup(path, strlen(path));
	f->dir = dir;
	f->data = data;
	f->size = size;
	img->hash = XXH3_64bits_withSeed(path, strlen(path), img->hash ^ (dir ? 0x9e37u : 0));
	img->hash = XXH3_64bits_withSeed(data ? (const void *)data : "", size, img->hash);
}

static void build_file(struct build *b, const struct pl_node *n, const char *path)
{
	unsigned char *data = NULL;
	size_t size = 0, cap = 0;
	if (n->size)
		put_bytes(&data, &size, &cap, 0, n->data, n->size);
	for (size_t k = 0; k < n->n_fops; k++) {
		const struct pl_fop *op = &n->fops[k];
		int how;
		switch (b->pol) {
		case PL_ALL:
		case PL_DATA_ONLY: how = W_KEEP; break;
		case PL_RANDOM: how = (int)pick(b->rng, W_CHOICES); break;
		default: how = W_DROP; break;
		}
		if (op->kind == F_TRUNC) {
			if (how == W_KEEP || (b->pol == PL_RANDOM && how % 2 == 0))
				set_size(&data, &size, &cap, op->off);
			else
				describe(b->img, "; %s truncate to %" PRIu64 " lost", path, op->off);
			continue;
		}
		if (op->len == 0)
			continue;
		apply_write(b->img, path, op, how, b->rng, &data, &size, &cap);
	}
	add_file(b->img, path, false, data, size);
}

static int ent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pl_entry *)a)->name, ((const struct pl_entry *)b)->name);
}

static void build_dir(struct build *b, const struct pl_node *dn, const char *path, int depth)
{
	struct ents e = {NULL, 0, 0};
	for (size_t i = 0; i < dn->n_ents; i++)
		ents_set(&e, dn->ents[i].name, dn->ents[i].node);
	size_t keep;
	switch (b->pol) {
	case PL_ALL:
	case PL_DIRS_ONLY: keep = dn->n_dops; break;
	case PL_RANDOM: {
		uint64_t r = pick(b->rng, 3);
		keep = r == 0 ? 0 : r == 1 ? dn->n_dops : (size_t)pick(b->rng, dn->n_dops + 1);
		break;
	}
	default: keep = 0; break;
	}
	for (size_t k = 0; k < keep; k++)
		apply_dop(&e, &dn->dops[k]);
	for (size_t k = keep; k < dn->n_dops; k++) {
		static const char *const what[] = {"create", "mkdir", "rename", "unlink"};
		const struct pl_dop *op = &dn->dops[k];
		describe(b->img, "; %s/ %s %s%s%s undone", *path ? path : ".", what[op->kind], op->name,
		         op->name2 ? " -> " : "", op->name2 ? op->name2 : "");
	}
	if (e.n > 1)
		qsort(e.e, e.n, sizeof *e.e, ent_cmp);
	for (size_t i = 0; i < e.n; i++) {
		char p[4096];
		if (snprintf(p, sizeof p, "%s%s%s", path, *path ? "/" : "", e.e[i].name) >= (int)sizeof p) {
			free(e.e[i].name);
			continue; /* deeper than any data directory */
		}
		if (e.e[i].node->dir) {
			add_file(b->img, p, true, NULL, 0);
			if (depth < 16)
				build_dir(b, e.e[i].node, p, depth + 1);
		} else {
			build_file(b, e.e[i].node, p);
		}
		free(e.e[i].name);
	}
	free(e.e);
}

void pl_image_build(const struct pl_fs *fs, enum pl_policy policy, uint64_t *rng, struct pl_image *img)
{
	memset(img, 0, sizeof *img);
	describe(img, "%s", pl_policy_name[policy]);
	struct build b = {fs, policy, rng, img};
	build_dir(&b, fs->root, "", 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void pl_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

bool pl_image_write(const struct pl_image *img, const char *dst)
{
	pl_rmtree(dst);
	if (mkdir(dst, 0700) != 0)
		return false;
	for (size_t i = 0; i < img->n; i++) {
		const struct pl_ifile *f = &img->f[i];
		char p[4096];
		if (snprintf(p, sizeof p, "%s/%s", dst, f->path) >= (int)sizeof p)
			return false;
		if (f->dir) {
			if (mkdir(p, 0700) != 0)
				return false;
			continue;
		}
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0)
			return false;
		bool ok = f->size == 0 || write(fd, f->data, f->size) == (ssize_t)f->size;
		close(fd);
		if (!ok)
			return false;
	}
	return true;
}

void pl_image_free(struct pl_image *img)
{
	for (size_t i = 0; i < img->n; i++) {
		free(img->f[i].path);
		free(img->f[i].data);
	}
	free(img->f);
	free(img->desc);
	memset(img, 0, sizeof *img);
}
