/*
 * core/slab.h - the allocator of table entries and their records.
 *
 * Why not malloc: an insert allocated one entry (and its record) with
 * calloc, and on any thread but the main one glibc grows its arena heap by
 * one mprotect per 4 KiB page: a system call every ~25 entries, 25-39% of
 * a put (issue 10).  Entries are small and of few sizes, so they come from
 * size classes of 16-byte steps carved out of 256 KiB chunks that are
 * touched only as they fill: an empty store maps nothing.
 *
 * Arenas: each class has one free list and one bump region per arena, and
 * a thread allocates from the arena of the CPU it runs on (sched_getcpu),
 * so threads on different CPUs do not share a lock or a cache line.  One
 * lock guards all of an arena's classes, so an insert takes its entry's
 * and its record's blocks in one acquisition (once__slab_alloc_pair), and
 * the RCU callback frees them in one: two locked instructions fewer on
 * each side, and one sched_getcpu.  A chunk serves one class of one arena
 * and is aligned to its size, so a block finds its class and arena by
 * rounding its address down to the chunk's header: freeing needs no slab
 * argument, which lets an RCU callback free an entry without knowing its
 * store.  A block goes back to the class it came from, from whatever
 * thread frees it (the call_rcu worker, usually).  Freed blocks are
 * reused, never unmapped; every span is unmapped by once__slab_destroy.
 *
 * Address space: chunks are carved, in order, out of spans of address
 * space reserved with MAP_NORESERVE (ONCE_SLAB_SPAN bytes at a time),
 * which cost no memory until their pages are touched.  So an insert
 * rarely makes a system call for memory: it takes the next chunk of a
 * span, and a page fault when it first writes a page (since Linux 6.4 a
 * page fault does not wait for the address-space lock that mmap takes:
 * per-VMA locks).  A span is mapped ahead by the owner (below) when the
 * one being carved is half used; an inserting thread maps one itself only
 * when none is ready (a slab's first chunk, a slab without an owner, an
 * owner late), outside reserve_lock but holding its arena's lock: threads
 * on that CPU, and RCU callbacks freeing into that arena, wait for the
 * mmap (rare: a span is 256 MiB of chunks).  Where the kernel would charge
 * the whole span as memory (vm.overcommit_memory = 2 ignores
 * MAP_NORESERVE), or a span cannot be had (RLIMIT_AS), spans are one
 * chunk each, and huge spans are not used.
 *
 * Prefault: a class half through its chunk asks its owner (the store's
 * background grower thread) to carve and fault in the next one ahead, so
 * an insert rarely takes a page fault; with no owner, or when the ready
 * chunk is late, the inserting thread faults its chunk in page by page.
 *
 * Cache lines: a chunk's first block starts at the largest power of two
 * dividing the block size, up to 128 bytes, so 64- and 128-byte blocks
 * (a code's or refresh token's entry) never straddle a line, and each
 * allocation prefetches the next block of its class for writing: the
 * next insert's stores to that fresh memory then do not each wait for a
 * miss.
 *
 * Huge pages: once a slab has handed out ONCE_SLAB_HUGE_AFTER bytes of
 * chunks, its chunks come first from ONCE_SLAB_HUGE_SPAN-byte spans
 * advised MADV_HUGEPAGE, of which only the owner's thread faults pages in,
 * one 2 MiB page at a time, ONCE_SLAB_HUGE_AHEAD bytes ahead of the carve.
 * A chunk is carved from a huge span only out of its faulted-in prefix;
 * when the owner is behind, the chunk comes from a 4 KiB-page span, as for
 * a small slab.  Why: at 10^7 entries (4 GB) the page tables of 4 KiB
 * pages no longer stay in cache, and every lookup paid a page walk from
 * memory on top of its cache misses (take's p99 at 10^7 was about 2x its
 * p99 at 10^5).  Why only the owner faults them: a 2 MiB fault costs
 * 0.1 ms, and 6 ms in a VM whose host has not backed that memory yet
 * (measured here), which no insert may wait for.  And why spans, not a
 * mapping per chunk: an inserting thread's mmap waits for the address-
 * space lock, which the owner holds (shared) through each 2 MiB fault; a
 * first version that mapped chunks in inserts and huge regions in the
 * owner ran code puts at 2 threads at 0.6x, with 11-19 ms maxima.  A small
 * slab never uses huge pages (an empty one maps nothing); 4 KiB-page spans
 * are advised MADV_NOHUGEPAGE, so the inserts' own faults stay small with
 * transparent huge pages set to "always".  Without transparent huge pages
 * the huge spans are on 4 KiB pages, faulted in ahead all the same.
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

#define ONCE_SLAB_SPAN (256u << 20)      /* address space reserved at a time */
#define ONCE_SLAB_HUGE_SPAN (1u << 30)   /* the same, for huge pages */
#define ONCE_SLAB_HUGE_AFTER (64u << 20) /* chunk bytes before huge pages */
#define ONCE_SLAB_HUGE_AHEAD (4u << 20)  /* faulted in ahead of the carve */
#define ONCE_SLAB_HUGE_PAGE (2u << 20)

struct once__slab_span;

/* Address space that chunks are carved from, in order (slab.c). */
struct once__slab_reserve {
	char *next, *end; /* the part of the current span not handed out */
	char *faulted;    /* huge spans: the end of the prefix faulted in */
	char *spare, *spare_end; /* the next span, mapped ahead by the owner */
	bool asked;       /* the owner was asked for a spare or to fault */
};

/* One size class of one arena, under the arena's lock. */
struct once__slab_class {
	void *free;       /* freed blocks, linked through their first word */
	char *bump, *end; /* the unused rest of this class's newest chunk */
	char *ready;      /* a chunk mapped and faulted in ahead (prefault) */
	bool asked;       /* a ready chunk was asked for */
};

/* One lock for all of an arena's classes: an insert takes its entry's and
 * its record's blocks (two classes) in one acquisition, and an entry is
 * freed with its record in one (once__slab_alloc_pair, _free_pair).  The
 * trade: the RCU callbacks, which free into every arena, now wait for an
 * arena's lock whatever class they free, where they waited only for the
 * class's; an arena's own allocations come from one CPU's threads (or
 * from a thread that moved CPU after choosing it, or from several CPUs
 * past ONCE_SLAB_ARENAS_MAX) and contend as before. */
struct once__slab_arena {
	_Alignas(64) pthread_mutex_t lock;
	struct once__slab_class cls[ONCE_SLAB_CLASSES];
};

struct once__slab {
	struct once__slab_arena *arenas;
	uint32_t arena_mask; /* arenas - 1 (a power of two) */
	pthread_mutex_t reserve_lock;      /* small, huge, huge_off, spans */
	struct once__slab_reserve small;   /* 4 KiB pages */
	struct once__slab_reserve huge;    /* 2 MiB pages, faulted ahead */
	bool huge_off;                     /* a huge span could not be mapped */
	size_t span_len;                   /* of the next small span (slab.c) */
	uint64_t huge_after;               /* ONCE_SLAB_HUGE_AFTER (tests lower it) */
	struct once__slab_span *spans;     /* every span mapped, for destroy */
	_Atomic uint64_t mapped;           /* bytes of chunks handed out */
	/* Called (outside any slab lock) when a class is half through its
	 * chunk and has no ready one, or a reserve wants a spare span or its
	 * huge pages faulted in ahead: the owner should run
	 * once__slab_prefault on another thread.  NULL: chunks are faulted in
	 * by the inserts, and huge pages are never used. */
	void (*ask)(void *ctx);
	void *ask_ctx;
	/* Faults pages in: madvise(MADV_POPULATE_WRITE), set by
	 * once__slab_init; tests replace it to see a refusal handled. */
	int (*populate)(void *addr, size_t len);
};

/* Sets up a slab with one arena per CPU (a power of two, at most
 * ONCE_SLAB_ARENAS_MAX); maps no chunk yet.  0, or -1 on ENOMEM. */
int once__slab_init(struct once__slab *s);
/* A block of at least `size` bytes, 16-byte aligned, not zeroed.  NULL
 * when memory is exhausted. */
void *once__slab_alloc(struct once__slab *s, size_t size);
/* Two blocks, of size_a and size_b bytes (an entry and its record), from
 * one arena under one lock; a size past ONCE_SLAB_MAX (every size under
 * ThreadSanitizer) from malloc, as once__slab_alloc.  0, or -1 with
 * neither taken. */
int once__slab_alloc_pair(struct once__slab *s, size_t size_a, void **a, size_t size_b, void **b);
/* Gives back a block from once__slab_alloc of that same size.  NULL is
 * ignored. */
void once__slab_free(void *block, size_t size);
/* Gives back two blocks (either may be NULL): under one lock when they
 * belong to one arena, as a pair from once__slab_alloc_pair does. */
void once__slab_free_pair(void *a, size_t size_a, void *b, size_t size_b);
/* The bytes a block of `size` occupies (its class's size), for accounting. */
size_t once__slab_block_size(size_t size);
/* Carves and faults in a ready chunk for every class that asked for one,
 * maps the spare spans asked for, and faults in the huge pages ahead of
 * the huge carve.  Meant for a background thread: the page faults of a
 * fresh chunk (about 2 us each in a VM, one per 4 KiB) then happen there,
 * not in an insert. */
void once__slab_prefault(struct once__slab *s);
/* Unmaps every span: every slab block is gone, without walking them.
 * Nothing may use the slab after it. */
void once__slab_destroy(struct once__slab *s);

#endif /* ONCE_CORE_SLAB_H */
