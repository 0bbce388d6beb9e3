/*
 * core/slab.h - the allocator of table entries and their records.
 *
 * Why not malloc: an insert allocated one entry (and its record) with
 * calloc, and on any thread but the main one glibc grows its arena heap by
 * one mprotect per 4 KiB page: a system call every ~25 entries, 25-39% of
 * a put (issue 10).  Entries are small and of few sizes, so they come from
 * size classes of 16-byte steps carved out of 256 KiB chunks that are
 * mapped once and touched only as they fill: an empty store maps nothing,
 * and a full one pays one mmap per chunk.
 *
 * Arenas: each class has one free list and one bump region per arena, and
 * a thread allocates from the arena of the CPU it runs on (sched_getcpu),
 * so threads on different CPUs do not share a lock or a cache line.  A
 * chunk serves one class of one arena and is aligned to its size, so a
 * block finds its class (and its slab) by rounding its address down to the
 * chunk's header: freeing needs no slab argument, which lets an RCU
 * callback free an entry without knowing its store.  A block goes back to
 * the class it came from, from whatever thread frees it (the call_rcu
 * worker, usually).  Freed blocks are reused, never unmapped; every chunk
 * is unmapped by once__slab_destroy.
 *
 * Prefault: a class half through its chunk asks its owner (the store's
 * background grower thread) to map and fault in the next one ahead, so an
 * insert rarely takes a page fault; with no owner, or when the ready chunk
 * is late, the inserting thread maps one itself.
 *
 * Blocks larger than ONCE_SLAB_MAX come from malloc (keys and records that
 * large are rare; their cost is the caller's).  The caller passes the
 * block's size to free, as it knows it, so a block carries no header.
 *
 * Under AddressSanitizer free blocks are poisoned, so a use after free of
 * an entry is still caught as it is with malloc.  Under ThreadSanitizer
 * every block comes from malloc (slab.c says why).
 */
#ifndef ONCE_CORE_SLAB_H
#define ONCE_CORE_SLAB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ONCE_SLAB_GRAIN 16u
#define ONCE_SLAB_MAX 512u /* larger blocks come from malloc */
#define ONCE_SLAB_CLASSES (ONCE_SLAB_MAX / ONCE_SLAB_GRAIN)
#define ONCE_SLAB_CHUNK (256u << 10)
#define ONCE_SLAB_ARENAS_MAX 64u

struct once__slab_chunk;

/* One size class of one arena: its own cache line. */
struct once__slab_class {
	_Alignas(64) pthread_mutex_t lock;
	void *free;       /* freed blocks, linked through their first word */
	char *bump, *end; /* the unused rest of this class's newest chunk */
	char *ready;      /* a chunk mapped and faulted in ahead (prefault) */
	bool asked;       /* a ready chunk was asked for */
};

struct once__slab_arena {
	struct once__slab_class cls[ONCE_SLAB_CLASSES];
};

struct once__slab {
	struct once__slab_arena *arenas;
	uint32_t arena_mask; /* arenas - 1 (a power of two) */
	pthread_mutex_t chunks_lock;
	struct once__slab_chunk *chunks; /* every chunk, for destroy */
	_Atomic uint64_t mapped;         /* bytes of chunks mapped */
	/* Called (outside any slab lock) when a class is half through its
	 * chunk and has no ready one: the owner should run once__slab_prefault
	 * on another thread.  NULL: chunks are mapped when needed. */
	void (*ask)(void *ctx);
	void *ask_ctx;
};

/* Sets up a slab with one arena per CPU (a power of two, at most
 * ONCE_SLAB_ARENAS_MAX); maps no chunk yet.  0, or -1 on ENOMEM. */
int once__slab_init(struct once__slab *s);
/* A block of at least `size` bytes, 16-byte aligned, not zeroed.  NULL
 * when memory is exhausted. */
void *once__slab_alloc(struct once__slab *s, size_t size);
/* Gives back a block from once__slab_alloc of that same size.  NULL is
 * ignored. */
void once__slab_free(void *block, size_t size);
/* The bytes a block of `size` occupies (its class's size), for accounting. */
size_t once__slab_block_size(size_t size);
/* Maps and faults in a ready chunk for every class that asked for one.
 * Meant for a background thread: the page faults of a fresh chunk (about
 * 2 us each in a VM, one per 4 KiB) then happen there, not in an insert. */
void once__slab_prefault(struct once__slab *s);
/* Unmaps every chunk: every slab block is gone, without walking them.
 * Nothing may use the slab after it. */
void once__slab_destroy(struct once__slab *s);

#endif /* ONCE_CORE_SLAB_H */
