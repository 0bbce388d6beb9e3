/*
 * tests/plsim/fsmodel.h - the power-loss simulator's model of a directory
 * tree: what is durable and what is not yet, rebuilt from the shim's
 * journal (journal.h), and the "after power loss" images built from it.
 *
 * The model.  Every file has durable content (what a power loss cannot
 * take away) and a list of pending operations since its last completed
 * fsync/fdatasync: writes and truncates, in order.  Every directory has
 * durable entries and a list of pending entry operations (create, mkdir,
 * rename, unlink) since its last completed fsync.  A sync completes what
 * was journaled before it began (PL_SYNC_START), not what raced with it.
 * fdatasync on a directory completes nothing: it is not a directory sync
 * (POSIX leaves it open; ext4 and XFS happen to flush the directory, other
 * file systems and fsync-less setups do not).  fsync or fdatasync of a file
 * never makes its directory entry durable.
 *
 * An image.  Durable state plus a choice for each pending operation:
 * a write kept, dropped, torn after an arbitrary byte, torn at a 512-byte
 * sector boundary, kept as any subset of its 512-byte sectors (file
 * offsets), or lost with the file size grown over it (zeros where the
 * file had no bytes: a size update that reached the disk without its
 * data); a truncate kept or dropped; and for each directory an in-order
 * prefix of its pending entry operations (none, all, or a random prefix),
 * so a file whose create is undone is absent, an unlink undone brings the
 * old file back, a rename undone leaves the old name.  Policies: the
 * durable state alone, everything kept, data kept with entries undone,
 * entries kept with data dropped, and random choices.
 */
#ifndef ONCE_PLSIM_FSMODEL_H
#define ONCE_PLSIM_FSMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pl_node;

struct pl_fs_stats {
	uint64_t records, writes, write_bytes, truncs, creates, renames, unlinks, mkdirs;
	uint64_t file_syncs, dir_fsyncs;
	uint64_t dir_fdatasyncs; /* fdatasync on a directory: made nothing durable */
	uint64_t torn_record;    /* a record cut by the kill: ignored */
	uint64_t errors;         /* records the model could not place (unknown inode, unsupported call) */
	char first_error[160];
};

struct pl_fs {
	struct pl_node *root;
	struct pl_node **nodes; /* every node, for lookup by inode and freeing */
	size_t n_nodes, cap_nodes;
	struct pl_sync *syncs; /* started, not done */
	size_t n_syncs, cap_syncs;
	uint64_t seq;
	struct pl_fs_stats st;
};

/* The tree under `root` as it is on disk now, all of it durable. */
bool pl_fs_scan(struct pl_fs *fs, const char *root);
/* Applies the journal at path (false when it cannot be read; errors in
 * fs->st). */
bool pl_fs_replay(struct pl_fs *fs, const char *path);
void pl_fs_free(struct pl_fs *fs);

/* Pending operations left at the end of the journal. */
void pl_fs_pending(const struct pl_fs *fs, uint64_t *file_ops, uint64_t *dir_ops);

enum pl_policy {
	PL_DURABLE,    /* every pending operation lost */
	PL_ALL,        /* every pending operation kept (what kill -9 leaves) */
	PL_DATA_ONLY,  /* file operations kept, directory operations undone */
	PL_DIRS_ONLY,  /* directory operations kept, file operations lost */
	PL_RANDOM,     /* each chosen at random (see above) */
	PL_POLICIES
};
extern const char *const pl_policy_name[PL_POLICIES];

struct pl_ifile {
	char *path; /* relative to the image root */
	bool dir;
	unsigned char *data;
	size_t size;
};

struct pl_image {
	struct pl_ifile *f;
	size_t n, cap;
	uint64_t hash;
	char *desc; /* the choices made that differ from "all kept", for messages */
	size_t desc_len, desc_cap;
	size_t desc_omitted; /* choices left out of desc (it is kept short) */
};

/* Builds an image of fs under `policy` (rng: the random choices). */
void pl_image_build(const struct pl_fs *fs, enum pl_policy policy, uint64_t *rng, struct pl_image *img);
/* Writes it to dst (removed first, then created: files 0600, directories
 * 0700). */
bool pl_image_write(const struct pl_image *img, const char *dst);
void pl_image_free(struct pl_image *img);

/* rm -rf */
void pl_rmtree(const char *path);

#endif /* ONCE_PLSIM_FSMODEL_H */
