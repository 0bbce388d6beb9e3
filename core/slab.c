/*
 * core/slab.c - size classes carved out of mapped chunks (slab.h).
 */
#include "slab.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The first bytes of every chunk: the class its blocks belong to, and the
 * list once__slab_destroy walks. */
struct once__slab_chunk {
	struct once__slab_chunk *next;
	struct once__slab_class *cls;
};
_Static_assert(sizeof(struct once__slab_chunk) == ONCE_SLAB_GRAIN, "blocks stay 16-byte aligned");

static struct once__slab_chunk *chunk_of(void *block)
{
	return (struct once__slab_chunk *)((uintptr_t)block & ~(uintptr_t)(ONCE_SLAB_CHUNK - 1));
}

/* ONCE_SLAB_CHUNK bytes aligned to their size: map twice as much and give
 * back the ends. */
static void *map_aligned_chunk(bool populate)
{
	size_t span = 2 * (size_t)ONCE_SLAB_CHUNK;
	char *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	char *aligned = (char *)(((uintptr_t)m + ONCE_SLAB_CHUNK - 1) & ~(uintptr_t)(ONCE_SLAB_CHUNK - 1));
	if (aligned > m)
		munmap(m, (size_t)(aligned - m));
	char *end = aligned + ONCE_SLAB_CHUNK;
	if (m + span > end)
		munmap(end, (size_t)(m + span - end));
	/* Fault every page in now, in this (background) thread. */
	if (populate && madvise(aligned, ONCE_SLAB_CHUNK, MADV_POPULATE_WRITE) != 0)
		for (size_t off = 0; off < ONCE_SLAB_CHUNK; off += 4096)
			((volatile char *)aligned)[off] = 0;
	return aligned;
}

static uint32_t pow2_at_most(uint32_t n, uint32_t cap)
{
	uint32_t p = 1;
	while (p < n && p < cap)
		p <<= 1;
	return p;
}

int once__slab_init(struct once__slab *s)
{
	memset(s, 0, sizeof *s);
	long cpus = sysconf(_SC_NPROCESSORS_CONF);
	uint32_t n = pow2_at_most(cpus > 0 ? (uint32_t)cpus : 1, ONCE_SLAB_ARENAS_MAX);
	s->arenas = aligned_alloc(64, n * sizeof *s->arenas);
	if (s->arenas == NULL)
		return -1;
	memset(s->arenas, 0, n * sizeof *s->arenas);
	for (uint32_t a = 0; a < n; a++)
		for (uint32_t c = 0; c < ONCE_SLAB_CLASSES; c++)
			pthread_mutex_init(&s->arenas[a].cls[c].lock, NULL);
	s->arena_mask = n - 1;
	pthread_mutex_init(&s->chunks_lock, NULL);
	atomic_init(&s->mapped, 0);
	return 0;
}

size_t once__slab_block_size(size_t size)
{
	if (size > ONCE_SLAB_MAX)
		return size;
	return (size + ONCE_SLAB_GRAIN - 1) / ONCE_SLAB_GRAIN * ONCE_SLAB_GRAIN;
}

/* Maps a chunk (faulted in when `populate`) and records it for destroy. */
static struct once__slab_chunk *map_chunk(struct once__slab *s, bool populate)
{
	void *m = map_aligned_chunk(populate);
	if (m == NULL)
		return NULL;
	struct once__slab_chunk *chunk = m;
	pthread_mutex_lock(&s->chunks_lock);
	chunk->next = s->chunks;
	s->chunks = chunk;
	pthread_mutex_unlock(&s->chunks_lock);
	atomic_fetch_add_explicit(&s->mapped, ONCE_SLAB_CHUNK, memory_order_relaxed);
	return chunk;
}

/* A fresh chunk for class c, the ready one if there is one; the caller
 * holds c's lock. */
static int refill(struct once__slab *s, struct once__slab_class *c)
{
	struct once__slab_chunk *chunk = (struct once__slab_chunk *)c->ready;
	c->ready = NULL;
	c->asked = false;
	if (chunk == NULL && (chunk = map_chunk(s, false)) == NULL)
		return -1;
	chunk->cls = c;
	c->bump = (char *)chunk + sizeof *chunk;
	c->end = (char *)chunk + ONCE_SLAB_CHUNK;
	POISON(c->bump, (size_t)(c->end - c->bump));
	return 0;
}

void once__slab_prefault(struct once__slab *s)
{
	for (uint32_t a = 0; a <= s->arena_mask; a++) {
		for (uint32_t i = 0; i < ONCE_SLAB_CLASSES; i++) {
			struct once__slab_class *c = &s->arenas[a].cls[i];
			pthread_mutex_lock(&c->lock);
			bool wanted = c->asked && c->ready == NULL;
			pthread_mutex_unlock(&c->lock);
			if (!wanted)
				continue;
			struct once__slab_chunk *chunk = map_chunk(s, true);
			if (chunk == NULL)
				return; /* the inserting thread will map its own */
			pthread_mutex_lock(&c->lock);
			if (c->ready == NULL) {
				POISON((char *)chunk + sizeof *chunk, ONCE_SLAB_CHUNK - sizeof *chunk);
				c->ready = (char *)chunk;
				chunk = NULL;
			}
			pthread_mutex_unlock(&c->lock);
			/* Not needed after all: it stays mapped (destroy unmaps
			 * it) and serves nobody; a race this rare costs 256 KiB. */
			(void)chunk;
		}
	}
}

/*
 * Under ThreadSanitizer blocks come from malloc.  TSan cannot see an RCU
 * grace period (tests/tsan.supp), so it would report every reuse of a
 * block retired through call_rcu against the accesses readers made before
 * the grace period; with malloc, the free happens in liburcu's call_rcu
 * thread, which the suppression file names, and TSan still checks every
 * access the store makes to its entries.
 */
#if defined(__SANITIZE_THREAD__)
#define ONCE_SLAB_USES_MALLOC 1
#else
#define ONCE_SLAB_USES_MALLOC 0
#endif

void *once__slab_alloc(struct once__slab *s, size_t size)
{
	if (size > ONCE_SLAB_MAX || ONCE_SLAB_USES_MALLOC)
		return malloc(size);
	size_t bytes = once__slab_block_size(size ? size : 1);
	int cpu = sched_getcpu();
	uint32_t a = (uint32_t)(cpu < 0 ? 0 : cpu) & s->arena_mask;
	struct once__slab_class *c = &s->arenas[a].cls[bytes / ONCE_SLAB_GRAIN - 1];
	void *block = NULL;
	bool ask = false;
	pthread_mutex_lock(&c->lock);
	if (c->free != NULL) {
		block = c->free;
		UNPOISON(block, bytes);
		memcpy(&c->free, block, sizeof(void *));
	} else if ((size_t)(c->end - c->bump) >= bytes || refill(s, c) == 0) {
		block = c->bump;
		c->bump += bytes;
		UNPOISON(block, bytes);
		/* Half through the chunk: ask for the next one ahead. */
		if (s->ask != NULL && !c->asked && c->ready == NULL &&
		    (size_t)(c->end - c->bump) < ONCE_SLAB_CHUNK / 2) {
			c->asked = true;
			ask = true;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (ask)
		s->ask(s->ask_ctx);
	return block;
}

void once__slab_free(void *block, size_t size)
{
	if (block == NULL)
		return;
	if (size > ONCE_SLAB_MAX || ONCE_SLAB_USES_MALLOC) {
		free(block);
		return;
	}
	size_t bytes = once__slab_block_size(size ? size : 1);
	struct once__slab_class *c = chunk_of(block)->cls;
	pthread_mutex_lock(&c->lock);
	memcpy(block, &c->free, sizeof(void *));
	c->free = block;
	POISON(block, bytes);
	pthread_mutex_unlock(&c->lock);
}

void once__slab_destroy(struct once__slab *s)
{
	if (s->arenas == NULL)
		return;
	struct once__slab_chunk *chunk = s->chunks;
	while (chunk != NULL) {
		struct once__slab_chunk *next = chunk->next;
		UNPOISON(chunk, ONCE_SLAB_CHUNK);
		munmap(chunk, ONCE_SLAB_CHUNK);
		chunk = next;
	}
	for (uint32_t a = 0; a <= s->arena_mask; a++)
		for (uint32_t c = 0; c < ONCE_SLAB_CLASSES; c++)
			pthread_mutex_destroy(&s->arenas[a].cls[c].lock);
	pthread_mutex_destroy(&s->chunks_lock);
	free(s->arenas);
	s->arenas = NULL;
	s->chunks = NULL;
}
