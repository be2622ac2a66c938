/*
 * region: expat's memory for stream parsers, one region per parser.
 *
 * Expat takes ~10 KiB in ~50 blocks when a stream starts and frees them only with the
 * parser. From malloc, those blocks land between the connection's long-lived objects,
 * so when an idle stream gave its parser back (xml_stream_trim) the holes were too small
 * for whole pages to return to the system and RSS stayed where it was (bench/RESULTS.md,
 * memory per idle connection). Here a stream's parser takes its blocks from its own
 * 16 KiB region with a bump pointer; a freed parser frees its region whole, and
 * xml_regions_release() gives the pages of freed regions back to the system, a run of
 * neighbouring regions per madvise.
 *
 * A block that does not fit (a large stanza grows expat's input buffer), or that is
 * asked for outside region_enter(), comes from malloc; the header before each block
 * says which. Freeing a region block only reclaims it if it is the newest.
 *
 * Invariant: a region is in use by at most one parser; a free region is on free_list,
 * with its bit in its chunk's dirty mask set while its pages may still be resident.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "xml_int.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#endif
#endif
#ifndef POISON
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define REGION_SIZE   (16 * 1024) /* a stream's expat working set is ~11 KiB with headers */
#define CHUNK_REGIONS 64	  /* regions per mapping: 1 MiB */

struct xml_region {
	char *mem;
	size_t top;	/* bytes handed out, headers included */
	size_t touched; /* highest top since the pages were last given back */
	struct region_chunk *chunk;
	unsigned idx; /* position in chunk */
	struct xml_region *next_free;
};

struct region_chunk {
	char *mem;
	uint64_t dirty; /* free regions whose pages may be resident */
	struct xml_region r[CHUNK_REGIONS];
};

/* Before every block; 16 bytes, so blocks stay 16-aligned like malloc's. */
struct block {
	struct xml_region *r; /* NULL: the block came from malloc */
	size_t size;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct xml_region *free_list;
static struct region_chunk **chunks;
static size_t nchunks;
static _Thread_local struct xml_region *current;

static size_t
round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* Called with lock held: maps one more chunk of regions onto free_list. */
static void
chunk_add(void)
{
	struct region_chunk *c = xcalloc(1, sizeof(*c));

	c->mem = mmap(NULL, (size_t)REGION_SIZE * CHUNK_REGIONS, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->mem == MAP_FAILED)
		fatal("out of memory mapping XML parser regions");
	chunks = xrealloc(chunks, (nchunks + 1) * sizeof(*chunks));
	chunks[nchunks++] = c;
	for (unsigned i = CHUNK_REGIONS; i-- > 0;) {
		c->r[i].mem = c->mem + (size_t)i * REGION_SIZE;
		c->r[i].chunk = c;
		c->r[i].idx = i;
		c->r[i].next_free = free_list;
		free_list = &c->r[i];
	}
}

struct xml_region *
region_get(void)
{
	struct xml_region *r;

	pthread_mutex_lock(&lock);
	if (!free_list)
		chunk_add();
	r = free_list;
	free_list = r->next_free;
	r->chunk->dirty &= ~((uint64_t)1 << r->idx); /* in use: not the releaser's to touch */
	pthread_mutex_unlock(&lock);
	r->next_free = NULL;
	r->top = 0;
	POISON(r->mem, REGION_SIZE);
	return r;
}

void
region_reset(struct xml_region *r)
{
	r->top = 0;
	POISON(r->mem, REGION_SIZE);
}

void
region_put(struct xml_region *r)
{
	if (!r)
		return;
	POISON(r->mem, REGION_SIZE);
	pthread_mutex_lock(&lock);
	if (r->touched)
		r->chunk->dirty |= (uint64_t)1 << r->idx;
	r->next_free = free_list;
	free_list = r;
	pthread_mutex_unlock(&lock);
}

void
xml_regions_release(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nchunks; i++) {
		struct region_chunk *c = chunks[i];
		unsigned k = 0;

		while (c->dirty && k < CHUNK_REGIONS) {
			unsigned run;

			if (!(c->dirty >> k & 1)) {
				k++;
				continue;
			}
			for (run = 0; k + run < CHUNK_REGIONS && (c->dirty >> (k + run) & 1); run++)
				c->r[k + run].touched = 0;
			/* MADV_DONTNEED: the pages go back now and read as zeros next time. */
			madvise(c->mem + (size_t)k * REGION_SIZE, (size_t)run * REGION_SIZE,
				MADV_DONTNEED);
			for (unsigned j = k; j < k + run; j++)
				c->dirty &= ~((uint64_t)1 << j);
			k += run;
		}
	}
	pthread_mutex_unlock(&lock);
}

struct xml_region *
region_enter(struct xml_region *r)
{
	struct xml_region *prev = current;

	current = r;
	return prev;
}

void
region_leave(struct xml_region *prev)
{
	current = prev;
}

/* ---- the allocator expat calls ---- */

static void *
r_malloc(size_t n)
{
	struct xml_region *r = current;
	struct block *b;

	if (n > REGION_SIZE * (size_t)1024 * 1024) /* no size arithmetic below can wrap */
		return NULL;
	if (r && REGION_SIZE - r->top >= sizeof(*b) + round16(n)) {
		b = (struct block *)(r->mem + r->top);
		UNPOISON(b, sizeof(*b) + n);
		r->top += sizeof(*b) + round16(n);
		if (r->top > r->touched)
			r->touched = r->top;
		b->r = r;
	} else {
		b = malloc(sizeof(*b) + n);
		if (!b)
			return NULL;
		b->r = NULL;
	}
	b->size = n;
	return b + 1;
}

/* Whether b is the newest block of its region, so the region's top can move back. */
static bool
is_newest(const struct block *b)
{
	return (const char *)(b + 1) + round16(b->size) == b->r->mem + b->r->top;
}

static void
r_free(void *p)
{
	struct block *b;

	if (!p)
		return;
	b = (struct block *)p - 1;
	if (!b->r) {
		free(b);
		return;
	}
	if (is_newest(b))
		b->r->top = (size_t)((char *)b - b->r->mem);
	POISON(b, sizeof(*b) + round16(b->size));
}

static void *
r_realloc(void *p, size_t n)
{
	struct block *b;
	void *q;

	if (!p)
		return r_malloc(n);
	if (n > REGION_SIZE * (size_t)1024 * 1024)
		return NULL;
	b = (struct block *)p - 1;
	if (!b->r) {
		b = realloc(b, sizeof(*b) + n);
		if (!b)
			return NULL;
		b->size = n;
		return b + 1;
	}
	if (is_newest(b) && (size_t)((char *)p - b->r->mem) + round16(n) <= REGION_SIZE) {
		struct xml_region *r = b->r;

		r->top = (size_t)((char *)p - r->mem) + round16(n);
		if (r->top > r->touched)
			r->touched = r->top;
		UNPOISON(p, n);
		b->size = n;
		return p;
	}
	q = r_malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, b->size < n ? b->size : n);
	r_free(p);
	return q;
}

const XML_Memory_Handling_Suite region_suite = {r_malloc, r_realloc, r_free};
