/*
 * core/slab.c - size classes carved out of mapped chunks (slab.h).
 */
#include "slab.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
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
 * arena whose lock guards that class. */
struct once__slab_chunk {
	struct once__slab_class *cls;
	struct once__slab_arena *arena;
};
_Static_assert(sizeof(struct once__slab_chunk) == ONCE_SLAB_GRAIN, "blocks stay 16-byte aligned");

/* A span of reserved address space, for destroy. */
struct once__slab_span {
	struct once__slab_span *next;
	char *base;
	size_t len;
};

static struct once__slab_chunk *chunk_of(void *block)
{
	return (struct once__slab_chunk *)((uintptr_t)block & ~(uintptr_t)(ONCE_SLAB_CHUNK - 1));
}

/* `len` bytes of address space aligned to `align` (a power of two), no
 * memory behind them until touched: map more and give back the ends.  Its
 * record is not linked into s->spans yet (link_span_locked).  NULL when
 * the address space or the record cannot be had. */
static struct once__slab_span *map_span(size_t len, size_t align, bool huge)
{
	struct once__slab_span *span = malloc(sizeof *span);
	if (span == NULL)
		return NULL;
	size_t over = len + align;
	char *m = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		free(span);
		return NULL;
	}
	char *aligned = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
	if (aligned > m)
		munmap(m, (size_t)(aligned - m));
	if (m + over > aligned + len)
		munmap(aligned + len, (size_t)(m + over - (aligned + len)));
	/* Advice only: without transparent huge pages a huge span is on
	 * 4 KiB pages, and works the same (slab.h, "Huge pages"). */
	(void)madvise(aligned, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	span->base = aligned;
	span->len = len;
	span->next = NULL;
	return span;
}

/* Records a span for destroy; the caller holds reserve_lock. */
static char *link_span_locked(struct once__slab *s, struct once__slab_span *span)
{
	span->next = s->spans;
	s->spans = span;
	return span->base;
}

/* Faults in [from, from + len), in this thread.  false when the kernel
 * refused for want of memory (ENOMEM, EFAULT for a cgroup's limit): the
 * pages stay unfaulted, and whoever writes them first faults them. */
static bool fault_in(struct once__slab *s, char *from, size_t len)
{
	if (s->populate(from, len) == 0)
		return true;
	if (errno != EINVAL)
		return false;
	for (size_t off = 0; off < len; off += 4096) /* before Linux 5.14 */
		((volatile char *)from)[off] = 0;
	return true;
}

/* Bytes from `from` to `to` in one span; 0 while there is no span. */
static size_t span_bytes(const char *from, const char *to)
{
	return from == NULL ? 0 : (size_t)(to - from);
}

static int populate_write(void *addr, size_t len)
{
	return madvise(addr, len, MADV_POPULATE_WRITE);
}

/* vm.overcommit_memory = 2: MAP_NORESERVE is ignored, so a span is
 * charged against the commit limit whole, touched or not. */
static bool overcommit_is_strict(void)
{
	FILE *f = fopen("/proc/sys/vm/overcommit_memory", "re");
	if (f == NULL)
		return false;
	int mode = fgetc(f);
	fclose(f);
	return mode == '2';
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
		pthread_mutex_init(&s->arenas[a].lock, NULL);
	s->arena_mask = n - 1;
	pthread_mutex_init(&s->reserve_lock, NULL);
	s->huge_after = ONCE_SLAB_HUGE_AFTER;
	s->populate = populate_write;
	s->span_len = ONCE_SLAB_SPAN;
	if (overcommit_is_strict()) {
		s->span_len = ONCE_SLAB_CHUNK; /* every span would be charged */
		s->huge_off = true;
	}
	atomic_init(&s->mapped, 0);
	return 0;
}

size_t once__slab_block_size(size_t size)
{
	if (size > ONCE_SLAB_MAX)
		return size;
	return (size + ONCE_SLAB_GRAIN - 1) / ONCE_SLAB_GRAIN * ONCE_SLAB_GRAIN;
}

/* Moves r on to its spare span once the current one is used up. */
static void next_span(struct once__slab_reserve *r)
{
	if (r->next == r->end && r->spare != NULL) {
		r->next = r->faulted = r->spare;
		r->end = r->spare_end;
		r->spare = r->spare_end = NULL;
	}
}

/* Whether r should ask the owner for a spare span: half used, none. */
static bool wants_spare(const struct once__slab_reserve *r, size_t span_len)
{
	return r->spare == NULL && span_bytes(r->next, r->end) < span_len / 2;
}

/* Whether chunks come from huge spans: the slab is past huge_after, has
 * an owner to fault them in, and huge pages were not turned off.  The
 * caller holds reserve_lock. */
static bool huge_in_use(struct once__slab *s)
{
	return s->ask != NULL && !s->huge_off &&
	       atomic_load_explicit(&s->mapped, memory_order_relaxed) >= s->huge_after;
}

/*
 * The next chunk; *ask says whether to ask the owner for work, *faulted
 * whether the chunk is faulted in already.  The caller holds reserve_lock.
 * From the faulted-in prefix of the huge span when the slab is large and
 * has an owner, else from a 4 KiB-page span.  NULL: no small span has
 * room (the caller maps one).
 */
static char *carve_locked(struct once__slab *s, bool *ask, bool *faulted)
{
	char *chunk = NULL;
	*faulted = false;
	if (huge_in_use(s)) {
		struct once__slab_reserve *h = &s->huge;
		next_span(h);
		if (span_bytes(h->next, h->faulted) >= ONCE_SLAB_CHUNK) {
			chunk = h->next;
			h->next += ONCE_SLAB_CHUNK;
			*faulted = true;
		}
		if (!h->asked && (span_bytes(h->next, h->faulted) < ONCE_SLAB_HUGE_AHEAD / 2 ||
		                  wants_spare(h, ONCE_SLAB_HUGE_SPAN))) {
			h->asked = true;
			*ask = true;
		}
	}
	if (chunk == NULL) {
		struct once__slab_reserve *r = &s->small;
		next_span(r);
		if (r->next == r->end)
			return NULL;
		chunk = r->next;
		r->next += ONCE_SLAB_CHUNK;
		if (s->ask != NULL && !r->asked && wants_spare(r, s->span_len)) {
			r->asked = true;
			*ask = true;
		}
	}
	atomic_fetch_add_explicit(&s->mapped, ONCE_SLAB_CHUNK, memory_order_relaxed);
	return chunk;
}

/* A small span of s->span_len bytes, or of one chunk when that much
 * address space cannot be had (and then every later span is one chunk:
 * a slab short of address space does not ask for 256 MiB per chunk). */
static struct once__slab_span *map_small_span(struct once__slab *s)
{
	pthread_mutex_lock(&s->reserve_lock);
	size_t len = s->span_len;
	pthread_mutex_unlock(&s->reserve_lock);
	struct once__slab_span *span = map_span(len, ONCE_SLAB_CHUNK, false);
	if (span == NULL && len > ONCE_SLAB_CHUNK) {
		span = map_span(ONCE_SLAB_CHUNK, ONCE_SLAB_CHUNK, false);
		if (span != NULL) {
			pthread_mutex_lock(&s->reserve_lock);
			s->span_len = ONCE_SLAB_CHUNK;
			pthread_mutex_unlock(&s->reserve_lock);
		}
	}
	return span;
}

/* Gives a fresh small span to the reserve: as the current span if it
 * has no room, else as the spare if it has none; else it serves nobody
 * (two threads mapped at once) and destroy unmaps it.  The caller holds
 * reserve_lock. */
static void add_small_span_locked(struct once__slab *s, struct once__slab_span *span)
{
	struct once__slab_reserve *r = &s->small;
	char *base = link_span_locked(s, span);
	next_span(r);
	if (r->next == r->end) {
		r->next = base;
		r->end = base + span->len;
	} else if (r->spare == NULL) {
		r->spare = base;
		r->spare_end = base + span->len;
	}
}

/* The next chunk (carve_locked), mapping a small span first when none
 * has room: the mmap runs outside reserve_lock, so other inserts are not
 * held up by it.  NULL: no address space (ENOMEM). */
static char *carve(struct once__slab *s, bool *ask, bool *faulted)
{
	pthread_mutex_lock(&s->reserve_lock);
	char *chunk = carve_locked(s, ask, faulted);
	pthread_mutex_unlock(&s->reserve_lock);
	while (chunk == NULL) {
		struct once__slab_span *span = map_small_span(s);
		if (span == NULL)
			return NULL;
		pthread_mutex_lock(&s->reserve_lock);
		add_small_span_locked(s, span);
		chunk = carve_locked(s, ask, faulted);
		pthread_mutex_unlock(&s->reserve_lock);
	}
	return chunk;
}

/*
 * Where a chunk's first block starts: at the largest power of two that
 * divides the block size, up to 128 bytes (at least past the header).  So
 * blocks of 64 or 128 bytes never straddle a cache line, and a 128-byte
 * one fills a 128-byte-aligned pair of lines, which CPUs fetch together.
 * A lookup reads an entry's node at its start and its key from byte 80:
 * a 128-byte entry (a code's or refresh token's) that started 16 bytes
 * into its chunk, as before, touched three lines, not two.  The cost is
 * at most 112 bytes of each 256 KiB chunk.
 */
static size_t first_block_offset(size_t bytes)
{
	size_t align = bytes & (~bytes + 1); /* the lowest bit set */
	if (align > 128)
		align = 128;
	return align < sizeof(struct once__slab_chunk) ? sizeof(struct once__slab_chunk) : align;
}

/* A fresh chunk for class c of arena a (blocks of `bytes`), the ready one
 * if there is one; the caller holds a's lock. */
static int refill(struct once__slab *s, struct once__slab_arena *a, struct once__slab_class *c, size_t bytes,
                  bool *ask)
{
	struct once__slab_chunk *chunk = (struct once__slab_chunk *)c->ready;
	c->ready = NULL;
	c->asked = false;
	bool faulted;
	if (chunk == NULL && (chunk = (struct once__slab_chunk *)carve(s, ask, &faulted)) == NULL)
		return -1;
	chunk->cls = c;
	chunk->arena = a;
	c->bump = (char *)chunk + first_block_offset(bytes);
	c->end = (char *)chunk + ONCE_SLAB_CHUNK;
	POISON(c->bump, (size_t)(c->end - c->bump));
	return 0;
}

/* The owner's part: map a spare span for each reserve that is half
 * used and has none (whether or not the ask that woke it said so).  The
 * mmap runs outside the lock, so no insert waits for it. */
static void map_spares(struct once__slab *s)
{
	pthread_mutex_lock(&s->reserve_lock);
	bool small = wants_spare(&s->small, s->span_len) && s->small.end != NULL;
	bool huge = huge_in_use(s) && wants_spare(&s->huge, ONCE_SLAB_HUGE_SPAN);
	pthread_mutex_unlock(&s->reserve_lock);
	if (small) {
		struct once__slab_span *span = map_small_span(s);
		if (span != NULL) {
			pthread_mutex_lock(&s->reserve_lock);
			add_small_span_locked(s, span);
			pthread_mutex_unlock(&s->reserve_lock);
		}
	}
	if (huge) {
		struct once__slab_span *span = map_span(ONCE_SLAB_HUGE_SPAN, ONCE_SLAB_HUGE_PAGE, true);
		pthread_mutex_lock(&s->reserve_lock);
		if (span == NULL) {
			s->huge_off = true; /* 4 KiB-page spans from here on */
		} else {
			/* Only this thread maps huge spans, and h wanted one. */
			s->huge.spare = link_span_locked(s, span);
			s->huge.spare_end = span->base + span->len;
		}
		pthread_mutex_unlock(&s->reserve_lock);
	}
}

/* Faults the huge span in, one 2 MiB page per call, until
 * ONCE_SLAB_HUGE_AHEAD bytes past the carve are.  Only this thread moves
 * `faulted`, and the span cannot change under it: a span is left only
 * once wholly carved, and chunks are carved only below `faulted`. */
static void fault_huge_ahead(struct once__slab *s)
{
	struct once__slab_reserve *h = &s->huge;
	for (;;) {
		pthread_mutex_lock(&s->reserve_lock);
		next_span(h);
		char *from = h->faulted;
		bool more = from != NULL && from < h->end && (size_t)(from - h->next) < ONCE_SLAB_HUGE_AHEAD;
		pthread_mutex_unlock(&s->reserve_lock);
		if (!more)
			break;
		bool ok = fault_in(s, from, ONCE_SLAB_HUGE_PAGE);
		pthread_mutex_lock(&s->reserve_lock);
		if (ok)
			h->faulted = from + ONCE_SLAB_HUGE_PAGE;
		else
			s->huge_off = true; /* short of memory: no more huge pages */
		pthread_mutex_unlock(&s->reserve_lock);
		if (!ok)
			break;
	}
}

void once__slab_prefault(struct once__slab *s)
{
	bool ask = false; /* set by carve; this run does the work asked */
	for (uint32_t a = 0; a <= s->arena_mask; a++) {
		struct once__slab_arena *arena = &s->arenas[a];
		/* The classes that want a ready chunk, read in one acquisition. */
		_Static_assert(ONCE_SLAB_CLASSES <= 32, "one bit per class");
		uint32_t wanted = 0;
		pthread_mutex_lock(&arena->lock);
		for (uint32_t i = 0; i < ONCE_SLAB_CLASSES; i++)
			if (arena->cls[i].asked && arena->cls[i].ready == NULL)
				wanted |= 1u << i;
		pthread_mutex_unlock(&arena->lock);
		for (uint32_t i = 0; i < ONCE_SLAB_CLASSES; i++) {
			struct once__slab_class *c = &arena->cls[i];
			if (!(wanted & (1u << i)))
				continue;
			bool faulted;
			char *chunk = carve(s, &ask, &faulted);
			if (chunk == NULL)
				break; /* the inserting thread will carve its own */
			if (!faulted)
				(void)fault_in(s, chunk, ONCE_SLAB_CHUNK); /* else the insert faults */
			pthread_mutex_lock(&arena->lock);
			if (c->ready == NULL) {
				POISON(chunk + sizeof(struct once__slab_chunk),
				       ONCE_SLAB_CHUNK - sizeof(struct once__slab_chunk));
				c->ready = chunk;
				chunk = NULL;
			}
			pthread_mutex_unlock(&arena->lock);
			/* Not needed after all: it serves nobody (destroy unmaps
			 * its span); a race this rare costs 256 KiB. */
			(void)chunk;
		}
	}
	map_spares(s);
	fault_huge_ahead(s);
	/* Asked and served: the next shortfall asks again. */
	pthread_mutex_lock(&s->reserve_lock);
	s->small.asked = false;
	s->huge.asked = false;
	pthread_mutex_unlock(&s->reserve_lock);
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

/* The arena of the CPU this thread runs on. */
static struct once__slab_arena *my_arena(struct once__slab *s)
{
	int cpu = sched_getcpu();
	return &s->arenas[(uint32_t)(cpu < 0 ? 0 : cpu) & s->arena_mask];
}

static bool from_malloc(size_t size)
{
	return size > ONCE_SLAB_MAX || ONCE_SLAB_USES_MALLOC;
}

/* The bytes of the class a slab block of `size` comes from (0 takes the
 * smallest). */
static size_t class_bytes(size_t size)
{
	return once__slab_block_size(size ? size : 1);
}

/* A block of `bytes` (a class size) from arena a, whose lock the caller
 * holds; *ask is set when the owner should prefault. */
static void *alloc_locked(struct once__slab *s, struct once__slab_arena *a, size_t bytes, bool *ask)
{
	struct once__slab_class *c = &a->cls[bytes / ONCE_SLAB_GRAIN - 1];
	void *block = NULL;
	if (c->free != NULL) {
		block = c->free;
		UNPOISON(block, bytes);
		memcpy(&c->free, block, sizeof(void *));
	} else if ((size_t)(c->end - c->bump) >= bytes || refill(s, a, c, bytes, ask) == 0) {
		block = c->bump;
		c->bump += bytes;
		UNPOISON(block, bytes);
		/* The next block of this class, for writing: the next insert
		 * fills it, and its lines are fresh memory (a miss each, and a
		 * code's record is four).  Fetched now, they arrive while this
		 * call's caller works.  Every line it touches, from the line
		 * its first byte is on (blocks of 48, 80, 112 bytes straddle). */
		if ((size_t)(c->end - c->bump) >= bytes)
			for (uintptr_t line = (uintptr_t)c->bump & ~(uintptr_t)63;
			     line < (uintptr_t)c->bump + bytes; line += 64)
				__builtin_prefetch((const void *)line, 1, 3);
		/* Half through the chunk: ask for the next one ahead. */
		if (s->ask != NULL && !c->asked && c->ready == NULL &&
		    (size_t)(c->end - c->bump) < ONCE_SLAB_CHUNK / 2) {
			c->asked = true;
			*ask = true;
		}
	}
	return block;
}

void *once__slab_alloc(struct once__slab *s, size_t size)
{
	if (from_malloc(size))
		return malloc(size);
	struct once__slab_arena *a = my_arena(s);
	bool ask = false;
	pthread_mutex_lock(&a->lock);
	void *block = alloc_locked(s, a, class_bytes(size), &ask);
	pthread_mutex_unlock(&a->lock);
	if (ask)
		s->ask(s->ask_ctx);
	return block;
}

int once__slab_alloc_pair(struct once__slab *s, size_t size_a, void **a, size_t size_b, void **b)
{
	*a = from_malloc(size_a) ? malloc(size_a) : NULL;
	*b = from_malloc(size_b) ? malloc(size_b) : NULL;
	bool ask = false;
	if (!from_malloc(size_a) || !from_malloc(size_b)) {
		struct once__slab_arena *arena = my_arena(s);
		pthread_mutex_lock(&arena->lock);
		if (!from_malloc(size_a))
			*a = alloc_locked(s, arena, class_bytes(size_a), &ask);
		if (!from_malloc(size_b))
			*b = alloc_locked(s, arena, class_bytes(size_b), &ask);
		pthread_mutex_unlock(&arena->lock);
	}
	if (ask)
		s->ask(s->ask_ctx);
	if (*a != NULL && *b != NULL)
		return 0;
	once__slab_free_pair(*a, size_a, *b, size_b);
	*a = *b = NULL;
	return -1;
}

/* Puts a block back on its class's free list; the caller holds the lock
 * of the block's arena. */
static void free_locked(void *block, size_t bytes)
{
	struct once__slab_class *c = chunk_of(block)->cls;
	memcpy(block, &c->free, sizeof(void *));
	c->free = block;
	POISON(block, bytes);
}

void once__slab_free(void *block, size_t size)
{
	if (block == NULL)
		return;
	if (from_malloc(size)) {
		free(block);
		return;
	}
	struct once__slab_arena *a = chunk_of(block)->arena;
	pthread_mutex_lock(&a->lock);
	free_locked(block, class_bytes(size));
	pthread_mutex_unlock(&a->lock);
}

void once__slab_free_pair(void *a, size_t size_a, void *b, size_t size_b)
{
	if (a == NULL || b == NULL || from_malloc(size_a) || from_malloc(size_b) ||
	    chunk_of(a)->arena != chunk_of(b)->arena) {
		once__slab_free(a, size_a);
		once__slab_free(b, size_b);
		return;
	}
	struct once__slab_arena *arena = chunk_of(a)->arena;
	pthread_mutex_lock(&arena->lock);
	free_locked(a, class_bytes(size_a));
	free_locked(b, class_bytes(size_b));
	pthread_mutex_unlock(&arena->lock);
}

/* How much of a span's start has been handed out as chunks. */
static size_t carved_bytes(const struct once__slab *s, const struct once__slab_span *span)
{
	const struct once__slab_reserve *rs[] = {&s->small, &s->huge};
	for (size_t i = 0; i < 2; i++) {
		if (rs[i]->spare == span->base)
			return 0;
		if (rs[i]->end == span->base + span->len)
			return span_bytes(span->base, rs[i]->next);
	}
	return span->len; /* a span used up */
}

void once__slab_destroy(struct once__slab *s)
{
	if (s->arenas == NULL)
		return;
	struct once__slab_span *span = s->spans;
	while (span != NULL) {
		struct once__slab_span *next = span->next;
		/* Only carved chunks were ever poisoned; unpoisoning a whole
		 * span would write its shadow (128 MiB for a huge one). */
		UNPOISON(span->base, carved_bytes(s, span));
		munmap(span->base, span->len);
		free(span);
		span = next;
	}
	for (uint32_t a = 0; a <= s->arena_mask; a++)
		pthread_mutex_destroy(&s->arenas[a].lock);
	pthread_mutex_destroy(&s->reserve_lock);
	free(s->arenas);
	s->arenas = NULL;
	s->spans = NULL;
}
