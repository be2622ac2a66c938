/*
 * hash: SipHash-2-4 with a per-process random key, and an open-addressing string map.
 * Keys of the map (JIDs, ids) come from peers, so the hash is keyed: a peer cannot
 * pick keys that collide. The map grows at 70% load (tombstones counted) by doubling.
 * The int64 map (imap) is for the server's own ids: a multiplicative hash suffices.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static uint64_t sip_k0, sip_k1;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void
sip_init(void)
{
	uint64_t k[2];
	rand_bytes(k, sizeof k);
	sip_k0 = k[0];
	sip_k1 = k[1];
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

uint64_t
hash_bytes(const void *data, size_t n)
{
	const unsigned char *p = data;
	uint64_t v0, v1, v2, v3, m, b = (uint64_t)n << 56;
	size_t i;

	pthread_once(&sip_once, sip_init);
	v0 = sip_k0 ^ 0x736f6d6570736575ULL;
	v1 = sip_k1 ^ 0x646f72616e646f6dULL;
	v2 = sip_k0 ^ 0x6c7967656e657261ULL;
	v3 = sip_k1 ^ 0x7465646279746573ULL;
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&m, p + i, 8); /* little-endian hosts only; see docs/architecture.md */
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < n; j++)
		b |= (uint64_t)p[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static char tomb_marker;
#define HMAP_TOMB (&tomb_marker)

static struct hmap_slot *
hmap_find(const struct hmap *m, const char *key, uint64_t h)
{
	if (!m->cap)
		return NULL;
	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != HMAP_TOMB && s->hash == h && strcmp(s->key, key) == 0)
			return s;
	}
}

static void
hmap_grow(struct hmap *m)
{
	struct hmap_slot *old = m->slots;
	size_t oldcap = m->cap;

	m->cap = oldcap ? (m->count * 2 > oldcap / 2 ? oldcap * 2 : oldcap) : 16;
	m->slots = xcalloc(m->cap, sizeof *m->slots);
	m->tombs = 0;
	for (size_t i = 0; i < oldcap; i++) {
		if (!old[i].key || old[i].key == HMAP_TOMB)
			continue;
		size_t j = old[i].hash & (m->cap - 1);
		while (m->slots[j].key)
			j = (j + 1) & (m->cap - 1);
		m->slots[j] = old[i];
	}
	free(old);
}

void *
hmap_get(const struct hmap *m, const char *key)
{
	struct hmap_slot *s = hmap_find(m, key, hash_str(key));
	return s ? s->value : NULL;
}

void *
hmap_put(struct hmap *m, const char *key, void *value)
{
	uint64_t h = hash_str(key);
	struct hmap_slot *s = hmap_find(m, key, h);

	if (s) {
		void *old = s->value;
		s->value = value;
		return old;
	}
	if ((m->count + m->tombs + 1) * 10 > m->cap * 7)
		hmap_grow(m);
	size_t i = h & (m->cap - 1);
	while (m->slots[i].key && m->slots[i].key != HMAP_TOMB)
		i = (i + 1) & (m->cap - 1);
	if (m->slots[i].key == HMAP_TOMB)
		m->tombs--;
	m->slots[i].key = xstrdup(key);
	m->slots[i].value = value;
	m->slots[i].hash = h;
	m->count++;
	return NULL;
}

void *
hmap_del(struct hmap *m, const char *key)
{
	struct hmap_slot *s = hmap_find(m, key, hash_str(key));
	void *v;

	if (!s)
		return NULL;
	v = s->value;
	free(s->key);
	s->key = HMAP_TOMB;
	s->value = NULL;
	m->count--;
	m->tombs++;
	return v;
}

bool
hmap_next(const struct hmap *m, size_t *iter, const char **key, void **value)
{
	while (*iter < m->cap) {
		struct hmap_slot *s = &m->slots[(*iter)++];
		if (s->key && s->key != HMAP_TOMB) {
			if (key)
				*key = s->key;
			if (value)
				*value = s->value;
			return true;
		}
	}
	return false;
}

static int
cmp_i64_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x < y) - (x > y);
}

void
hmap_prune(struct hmap *m, size_t keep, int64_t (*age)(const void *v), void (*fn)(void *))
{
	int64_t *ages, cut;
	size_t n = 0, above = 0;

	if (m->count <= keep)
		return;
	ages = xmalloc(m->count * sizeof *ages);
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key && m->slots[i].key != HMAP_TOMB)
			ages[n++] = age(m->slots[i].value);
	qsort(ages, n, sizeof *ages, cmp_i64_desc);
	/* Entries newer than cut stay; of those exactly as old as cut, as many as fit. */
	cut = keep ? ages[keep - 1] : INT64_MAX;
	for (size_t i = 0; i < n; i++)
		above += ages[i] > cut;
	free(ages);
	for (size_t i = 0, ties = keep - above; i < m->cap; i++) {
		struct hmap_slot *s = &m->slots[i];
		int64_t a;

		if (!s->key || s->key == HMAP_TOMB || (a = age(s->value)) > cut)
			continue;
		if (a == cut && ties) {
			ties--;
			continue;
		}
		if (fn)
			fn(s->value);
		free(s->key);
		s->key = HMAP_TOMB;
		s->value = NULL;
		m->count--;
		m->tombs++;
	}
}

void
hmap_free(struct hmap *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		if (m->slots[i].key && m->slots[i].key != HMAP_TOMB)
			free(m->slots[i].key);
	}
	free(m->slots);
	memset(m, 0, sizeof *m);
}

void
hmap_free_all(struct hmap *m, void (*fn)(void *))
{
	const char *k;
	void *v;

	for (size_t it = 0; hmap_next(m, &it, &k, &v);)
		fn(v);
	hmap_free(m);
}

/* ---- imap ---- */

static size_t
imap_home(const struct imap *m, int64_t key)
{
	/* Fibonacci hashing: the high bits of key * 2^64/phi. */
	uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ULL;
	return (size_t)(h >> 32) & (m->cap - 1);
}

static struct imap_slot *
imap_find(const struct imap *m, int64_t key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = imap_home(m, key);; i = (i + 1) & (m->cap - 1)) {
		struct imap_slot *s = &m->slots[i];
		if (!s->value)
			return NULL;
		if (s->key == key)
			return s;
	}
}

void *
imap_get(const struct imap *m, int64_t key)
{
	struct imap_slot *s = imap_find(m, key);
	return s ? s->value : NULL;
}

/* Puts a key known to be absent into the first free slot of its probe run. */
static void
imap_place(struct imap *m, int64_t key, void *value)
{
	size_t i = imap_home(m, key);

	while (m->slots[i].value)
		i = (i + 1) & (m->cap - 1);
	m->slots[i] = (struct imap_slot){.key = key, .value = value};
}

void *
imap_put(struct imap *m, int64_t key, void *value)
{
	struct imap_slot *s = imap_find(m, key);

	if (s) {
		void *old = s->value;
		s->value = value;
		return old;
	}
	if ((m->count + 1) * 10 > m->cap * 7) {
		struct imap_slot *old = m->slots;
		size_t oldcap = m->cap;

		m->cap = oldcap ? oldcap * 2 : 16;
		m->slots = xcalloc(m->cap, sizeof *m->slots);
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].value)
				imap_place(m, old[i].key, old[i].value);
		free(old);
	}
	imap_place(m, key, value);
	m->count++;
	return NULL;
}

void *
imap_del(struct imap *m, int64_t key)
{
	struct imap_slot *s = imap_find(m, key);
	void *v;

	if (!s)
		return NULL;
	v = s->value;
	m->count--;
	/* Backward shift: later entries of the probe run move up into the hole. */
	size_t hole = (size_t)(s - m->slots);
	for (size_t i = (hole + 1) & (m->cap - 1); m->slots[i].value; i = (i + 1) & (m->cap - 1)) {
		size_t home = imap_home(m, m->slots[i].key);
		/* i's entry may fill the hole unless its home lies cyclically in (hole, i]. */
		bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
		if (!stays) {
			m->slots[hole] = m->slots[i];
			hole = i;
		}
	}
	m->slots[hole].value = NULL;
	m->slots[hole].key = 0;
	return v;
}

void
imap_free(struct imap *m)
{
	free(m->slots);
	memset(m, 0, sizeof *m);
}

bool
imap_next(const struct imap *m, size_t *iter, int64_t *key, void **value)
{
	while (*iter < m->cap) {
		struct imap_slot *s = &m->slots[(*iter)++];
		if (s->value) {
			if (key)
				*key = s->key;
			if (value)
				*value = s->value;
			return true;
		}
	}
	return false;
}
