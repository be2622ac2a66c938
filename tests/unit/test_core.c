/*
 * test_core: unit tests of src/core: byte buffers, the hash and the string map, time
 * formatting, random ids, duration/size parsing, and the event loop (timers, fd events,
 * the cross-thread mailbox, turn-end hooks). Every check prints one line when it fails;
 * the last line is "test_core: N passed, M failed" and the exit status is non-zero on failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

#include "check.h"

/* A hung loop must fail the run, not stall CI. */
static void
on_alarm(int sig)
{
	static const char msg[] = "test_core: timed out (event loop did not stop)\n";
	(void)!write(STDOUT_FILENO, msg, sizeof msg - 1);
	_exit(1);
}

/* ---- buf ---- */

static void
test_buf_basic(void)
{
	struct buf b = {0};

	CHECK(buf_used(&b) == 0 && strcmp(buf_head(&b), "") == 0, "empty buf is \"\"");
	buf_append(&b, "hello", 5);
	buf_puts(&b, ", ");
	buf_printf(&b, "%s %d", "world", 42);
	CHECK(buf_used(&b) == 15, "used %zu, want 15", buf_used(&b));
	CHECK(strcmp(buf_head(&b), "hello, world 42") == 0, "content '%s'", buf_head(&b));
	CHECK(buf_head(&b)[buf_used(&b)] == '\0', "NUL after append/printf");

	char *p = buf_space(&b, 3);
	memcpy(p, "abc", 3);
	buf_commit(&b, 3);
	CHECK(strcmp(buf_head(&b), "hello, world 42abc") == 0, "space/commit: '%s'", buf_head(&b));

	buf_consume(&b, 7);
	CHECK(strcmp(buf_head(&b), "world 42abc") == 0, "consume 7: '%s'", buf_head(&b));
	CHECK(buf_used(&b) == 11, "used after consume %zu", buf_used(&b));
	buf_consume(&b, 1000);
	CHECK(buf_used(&b) == 0 && strcmp(buf_head(&b), "") == 0, "consume past end empties");

	/* Bytes are bytes: embedded NULs survive. */
	buf_append(&b, "a\0b", 3);
	CHECK(buf_used(&b) == 3 && memcmp(buf_head(&b), "a\0b", 4) == 0, "embedded NUL kept");
	buf_reset(&b);
	CHECK(buf_used(&b) == 0 && strcmp(buf_head(&b), "") == 0, "reset empties");
	buf_append(&b, "", 0);
	CHECK(buf_used(&b) == 0 && buf_head(&b)[0] == '\0', "append of 0 bytes");
	buf_free(&b);
	CHECK(b.data == NULL && buf_used(&b) == 0, "free leaves an empty buffer");
	buf_puts(&b, "again");
	CHECK(strcmp(buf_head(&b), "again") == 0, "buffer reusable after free");
	buf_free(&b);
}

static void
test_buf_printf_long(void)
{
	struct buf b = {0};
	char big[1001];

	memset(big, 'x', 1000);
	big[1000] = '\0';
	buf_puts(&b, "<");
	buf_printf(&b, "%s|%d", big, 7);
	CHECK(buf_used(&b) == 1003, "long printf used %zu, want 1003", buf_used(&b));
	CHECK(buf_head(&b)[0] == '<' && memcmp(buf_head(&b) + 1, big, 1000) == 0 &&
		  strcmp(buf_head(&b) + 1001, "|7") == 0,
	      "long printf content");
	/* Exactly at the 256-byte boundary of the fast path. */
	buf_reset(&b);
	buf_printf(&b, "%.255s", big);
	CHECK(buf_used(&b) == 255 && buf_head(&b)[255] == '\0', "printf of 255 chars");
	buf_printf(&b, "%.256s", big);
	CHECK(buf_used(&b) == 511 && buf_head(&b)[511] == '\0', "printf of 256 chars");
	buf_free(&b);
}

/* Random appends and consumes against a flat model of the expected bytes. */
static void
test_buf_model(void)
{
	struct buf b = {0};
	size_t cap = 1 << 20, mlo = 0, mhi = 0;
	char *model = xmalloc(cap);
	unsigned seed = 12345;
	int bad = 0;

	for (int step = 0; step < 20000 && mhi + 600 < cap; step++) {
		seed = seed * 1103515245 + 12345;
		size_t n = (seed >> 8) % 300;
		if ((seed >> 4) % 3) {
			char chunk[300];
			for (size_t i = 0; i < n; i++)
				chunk[i] = (char)('a' + (mhi + i) % 26);
			buf_append(&b, chunk, n);
			memcpy(model + mhi, chunk, n);
			mhi += n;
		} else {
			buf_consume(&b, n);
			mlo = n >= mhi - mlo ? mhi : mlo + n;
		}
		if (buf_used(&b) != mhi - mlo ||
		    memcmp(buf_head(&b), model + mlo, mhi - mlo) != 0 ||
		    buf_head(&b)[buf_used(&b)] != '\0') {
			bad++;
			break;
		}
	}
	CHECK(bad == 0, "buffer diverged from model after random append/consume");
	CHECK(b.cap >= buf_used(&b) + 1, "cap %zu < used+1", b.cap);
	buf_free(&b);
	free(model);
}

/* A stream passing through with little live data must not grow the buffer. */
static void
test_buf_bounded(void)
{
	struct buf b = {0};

	for (int i = 0; i < 100000; i++) {
		buf_append(&b, "0123456789", 10);
		if (buf_used(&b) >= 100)
			buf_consume(&b, 95);
	}
	CHECK(b.cap <= 512, "1 MB through a buffer with < 110 live bytes grew it to %zu", b.cap);
	CHECK(buf_used(&b) < 110, "live bytes %zu", buf_used(&b));

	/* Growth keeps earlier content and makes room for large appends at once. */
	buf_reset(&b);
	char *p = buf_space(&b, 100000);
	memset(p, 'z', 100000);
	buf_commit(&b, 100000);
	CHECK(buf_used(&b) == 100000 && p == b.data && p[99999] == 'z' && p[100000] == '\0',
	      "large space/commit");
	buf_free(&b);
}

static void
test_buf_steal(void)
{
	struct buf b = {0};
	char *s = buf_steal(&b);

	CHECK(s && strcmp(s, "") == 0, "steal of an empty buffer returns \"\"");
	free(s);

	buf_puts(&b, "prefix-payload");
	buf_consume(&b, 7);
	s = buf_steal(&b);
	CHECK(strcmp(s, "payload") == 0, "steal after consume: '%s'", s);
	CHECK(b.data == NULL && buf_used(&b) == 0 && b.cap == 0, "steal leaves the buffer empty");
	free(s);
	buf_puts(&b, "next");
	CHECK(strcmp(buf_head(&b), "next") == 0, "buffer reusable after steal");
	buf_free(&b);
}

/* ---- hash and hmap ---- */

static void
test_hash(void)
{
	static const char text[] = "The quick brown fox jumps over the lazy dog, twice over.";
	uint64_t seen[sizeof text];
	char unaligned[sizeof text + 8];
	int dup = 0, unstable = 0;

	for (size_t n = 0; n < sizeof text; n++) {
		seen[n] = hash_bytes(text, n);
		for (size_t j = 0; j < n; j++)
			dup += seen[j] == seen[n];
		/* Same bytes at another address hash the same (no alignment dependence). */
		memcpy(unaligned + 3, text, n);
		unstable += hash_bytes(unaligned + 3, n) != seen[n];
		unstable += hash_bytes(text, n) != seen[n];
	}
	CHECK(dup == 0, "%d prefix-length collisions across 8-byte boundaries", dup);
	CHECK(unstable == 0, "hash changed between calls within a process (%d)", unstable);
	CHECK(hash_str("alice@example.org") == hash_bytes("alice@example.org", 17),
	      "hash_str == hash_bytes(strlen)");
	CHECK(hash_str("a") != hash_str("b"), "\"a\" and \"b\" collide");
	CHECK(hash_bytes("a\0b", 3) != hash_bytes("a\0c", 3), "bytes after a NUL are hashed");
}

/* imap against a plain array model, with churn like durable.c's (ids rise, most go soon). */
static void
test_imap_model(void)
{
	enum { N = 4096 };
	static char vals[N];
	static bool in[N];
	struct imap m = {0};
	unsigned seed = 7, bad = 0;
	size_t count = 0;

	for (int step = 0; step < 200000; step++) {
		seed = seed * 1103515245 + 12345;
		int k = (int)((seed >> 8) % N);
		int64_t key = -(int64_t)k - 1; /* negative, as durable.c's */
		switch ((seed >> 20) % 3) {
		case 0:
			bad += imap_put(&m, key, &vals[k]) != (in[k] ? &vals[k] : NULL);
			count += !in[k];
			in[k] = true;
			break;
		case 1:
			bad += imap_del(&m, key) != (in[k] ? &vals[k] : NULL);
			count -= in[k];
			in[k] = false;
			break;
		default:
			bad += imap_get(&m, key) != (in[k] ? &vals[k] : NULL);
			break;
		}
		bad += m.count != count;
	}
	size_t seen = 0, it = 0;
	int64_t key;
	void *v;
	while (imap_next(&m, &it, &key, &v))
		seen += in[-key - 1] && v == &vals[-key - 1];
	CHECK(bad == 0, "imap disagreed with the model %u times", bad);
	CHECK(seen == count, "imap_next saw %zu of %zu", seen, count);
	imap_free(&m);
	CHECK(imap_get(&m, 1) == NULL && imap_del(&m, 1) == NULL, "an empty imap");
}

static void
test_hmap_basic(void)
{
	struct hmap m = {0};
	int v1 = 1, v2 = 2, v3 = 3;
	char key[16] = "alice";
	size_t it = 0;

	CHECK(hmap_get(&m, "x") == NULL, "get on an empty map");
	CHECK(hmap_del(&m, "x") == NULL, "del on an empty map");
	CHECK(!hmap_next(&m, &it, NULL, NULL), "iteration of an empty map");

	CHECK(hmap_put(&m, key, &v1) == NULL, "first put returns NULL");
	strcpy(key, "bob"); /* the map copied the key */
	CHECK(hmap_get(&m, "alice") == &v1, "get after put (key copied)");
	CHECK(hmap_get(&m, "bob") == NULL, "caller's key buffer not used by the map");
	CHECK(hmap_put(&m, "alice", &v2) == &v1, "replace returns the old value");
	CHECK(hmap_get(&m, "alice") == &v2 && m.count == 1, "replace keeps one entry");
	CHECK(hmap_put(&m, "", &v3) == NULL && hmap_get(&m, "") == &v3, "empty key");
	CHECK(hmap_del(&m, "alice") == &v2, "del returns the value");
	CHECK(hmap_get(&m, "alice") == NULL, "get after del");
	CHECK(hmap_del(&m, "alice") == NULL, "second del returns NULL");
	CHECK(m.count == 1, "count %zu after del", m.count);
	CHECK(hmap_put(&m, "alice", &v1) == NULL && hmap_get(&m, "alice") == &v1,
	      "reinsert after del");
	hmap_free(&m);
	CHECK(m.count == 0 && hmap_get(&m, "alice") == NULL, "free empties the map");
	CHECK(hmap_put(&m, "again", &v1) == NULL && hmap_get(&m, "again") == &v1,
	      "map reusable after free");
	hmap_free(&m);
}

static int64_t
value_age(const void *v)
{
	return (int64_t)(uintptr_t)v;
}

static size_t pruned;

static void
count_pruned(void *v)
{
	(void)v;
	pruned++;
}

/* hmap_prune keeps exactly the most recent entries, ties included, and the rest stays usable. */
static void
test_hmap_prune(void)
{
	static const struct {
		size_t n, keep, distinct; /* values 1..distinct, repeated */
	} cases[] = {{10, 20, 10},  {10, 10, 10}, {300, 128, 300}, {300, 128, 7},
		     {300, 0, 300}, {1, 0, 1},	  {50, 1, 1},	   {1000, 999, 1000}};
	char key[32];

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct hmap m = {0};
		size_t n = cases[c].n, keep = cases[c].keep, want = n < keep ? n : keep;
		uintptr_t oldest = UINTPTR_MAX, newest_gone = 0;
		int bad = 0;

		for (size_t i = 0; i < n; i++) {
			snprintf(key, sizeof key, "k%zu", i);
			hmap_put(&m, key, (void *)(uintptr_t)(i % cases[c].distinct + 1));
		}
		pruned = 0;
		hmap_prune(&m, keep, value_age, count_pruned);
		CHECK(m.count == want && pruned == n - want, "case %zu: %zu kept, %zu pruned", c,
		      m.count, pruned);
		for (size_t i = 0; i < n; i++) {
			void *v;
			snprintf(key, sizeof key, "k%zu", i);
			v = hmap_get(&m, key);
			if (v && (uintptr_t)v < oldest)
				oldest = (uintptr_t)v;
			if (!v && (uintptr_t)(i % cases[c].distinct + 1) > newest_gone)
				newest_gone = (uintptr_t)(i % cases[c].distinct + 1);
		}
		if (m.count && newest_gone)
			bad = newest_gone > oldest;
		CHECK(!bad, "case %zu: pruned %zu while keeping the older %zu", c,
		      (size_t)newest_gone, (size_t)oldest);
		for (size_t i = 0; i < n; i++) { /* the tombstones take new entries */
			snprintf(key, sizeof key, "n%zu", i);
			hmap_put(&m, key, (void *)1);
		}
		CHECK(m.count == want + n, "case %zu: %zu entries after refilling", c, m.count);
		hmap_free(&m);
	}
}

#define BIG 100000

static void
test_hmap_big(void)
{
	struct hmap m = {0};
	char key[32];
	unsigned char *visits = xcalloc(BIG, 1);
	int bad = 0;

	for (uintptr_t i = 0; i < BIG; i++) {
		snprintf(key, sizeof key, "user%zu@example.org", (size_t)i);
		bad += hmap_put(&m, key, (void *)(i + 1)) != NULL;
	}
	CHECK(bad == 0 && m.count == BIG, "100k puts: %d bad, count %zu", bad, m.count);
	bad = 0;
	for (uintptr_t i = 0; i < BIG; i++) {
		snprintf(key, sizeof key, "user%zu@example.org", (size_t)i);
		bad += hmap_get(&m, key) != (void *)(i + 1);
	}
	CHECK(bad == 0, "%d of 100k keys not found after growth", bad);

	const char *k;
	void *v;
	size_t n = 0;
	bad = 0;
	for (size_t it = 0; hmap_next(&m, &it, &k, &v); n++) {
		uintptr_t i = (uintptr_t)v - 1;
		snprintf(key, sizeof key, "user%zu@example.org", (size_t)i);
		if (i >= BIG || visits[i]++ || strcmp(k, key) != 0)
			bad++;
	}
	CHECK(n == BIG && bad == 0, "iteration visited %zu entries, %d wrong or repeated", n, bad);

	/* Delete the odd keys: the even ones stay reachable across the tombstones. */
	bad = 0;
	for (uintptr_t i = 1; i < BIG; i += 2) {
		snprintf(key, sizeof key, "user%zu@example.org", (size_t)i);
		bad += hmap_del(&m, key) != (void *)(i + 1);
	}
	CHECK(bad == 0 && m.count == BIG / 2, "delete odd: %d bad, count %zu", bad, m.count);
	bad = 0;
	for (uintptr_t i = 0; i < BIG; i++) {
		snprintf(key, sizeof key, "user%zu@example.org", (size_t)i);
		bad += hmap_get(&m, key) != ((i & 1) ? NULL : (void *)(i + 1));
	}
	CHECK(bad == 0, "%d wrong lookups after deleting half", bad);
	n = 0;
	for (size_t it = 0; hmap_next(&m, &it, NULL, &v); n++)
		bad += ((uintptr_t)v - 1) & 1;
	CHECK(n == BIG / 2 && bad == 0, "iteration after deletes saw %zu entries", n);

	/* Reinsert the odd keys with new values (into tombstoned slots). */
	bad = 0;
	for (uintptr_t i = 1; i < BIG; i += 2) {
		snprintf(key, sizeof key, "user%zu@example.org", (size_t)i);
		bad += hmap_put(&m, key, (void *)(i + 7)) != NULL;
	}
	for (uintptr_t i = 0; i < BIG; i++) {
		snprintf(key, sizeof key, "user%zu@example.org", (size_t)i);
		bad += hmap_get(&m, key) != (void *)(i + ((i & 1) ? 7 : 1));
	}
	CHECK(bad == 0 && m.count == BIG, "reinsert: %d bad, count %zu", bad, m.count);
	hmap_free(&m);
	free(visits);
}

/* Insert/delete churn with few live keys: tombstones must be reclaimed, not accumulate. */
static void
test_hmap_churn(void)
{
	struct hmap m = {0};
	char key[32];
	int bad = 0;

	for (int i = 0; i < 200000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		hmap_put(&m, key, &m);
		if (i >= 8) {
			snprintf(key, sizeof key, "k%d", i - 8);
			bad += hmap_del(&m, key) != &m;
		}
	}
	CHECK(bad == 0 && m.count == 8, "churn: %d bad deletes, count %zu", bad, m.count);
	CHECK(m.cap <= 256, "200k insert/delete with 8 live keys grew the table to %zu", m.cap);
	for (int i = 200000 - 8; i < 200000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		bad += hmap_get(&m, key) != &m;
	}
	CHECK(bad == 0, "live keys lost during churn");
	hmap_free(&m);
}

/* ---- time and random ---- */

static void
test_time_format(void)
{
	static const struct {
		int64_t t;
		const char *want;
	} cases[] = {
	    {0, "1970-01-01T00:00:00.000Z"},
	    {1234, "1970-01-01T00:00:01.234Z"},
	    {946684800000, "2000-01-01T00:00:00.000Z"},
	    {1709251199999, "2024-02-29T23:59:59.999Z"},
	    {1795514400000, "2026-11-24T10:00:00.000Z"},
	    {2147483648005, "2038-01-19T03:14:08.005Z"},
	};
	char out[32];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		memset(out, '#', sizeof out);
		time_format(cases[i].t, out, sizeof out);
		CHECK(strcmp(out, cases[i].want) == 0, "time_format(%lld) = '%s', want '%s'",
		      (long long)cases[i].t, out, cases[i].want);
	}

	/* Now: the XEP-0082 DateTime profile, CCYY-MM-DDThh:mm:ss.sssZ, this century. */
	time_format(wall_ms(), out, sizeof out);
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	int ok = strlen(out) == strlen(shape) && strncmp(out, "20", 2) == 0;
	for (size_t i = 0; ok && shape[i]; i++)
		ok = shape[i] == 'd' ? (out[i] >= '0' && out[i] <= '9') : out[i] == shape[i];
	CHECK(ok, "time_format(wall_ms()) = '%s'", out);

	uint64_t a = now_ms(), b = now_ms();
	CHECK(b >= a, "now_ms went backwards");
}

static void
test_rand_id(void)
{
	static const size_t lens[] = {0, 1, 16, 63, 64, 65, 200};
	char out[260];
	int counts[256] = {0};

	for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
		size_t n = lens[i];
		memset(out, '#', sizeof out);
		rand_id(out, n);
		int bad = 0;
		for (size_t j = 0; j < n; j++) {
			unsigned char c = (unsigned char)out[j];
			bad += !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				 (c >= '0' && c <= '9'));
		}
		CHECK(bad == 0, "rand_id(%zu): %d characters outside [A-Za-z0-9]", n, bad);
		CHECK(out[n] == '\0' && out[n + 1] == '#', "rand_id(%zu): NUL at n, nothing after",
		      n);
	}
	char a[17], b[17];
	rand_id(a, 16);
	rand_id(b, 16);
	CHECK(strcmp(a, b) != 0, "two 16-character ids are equal: %s", a);

	/* Every character of the alphabet turns up (a modulo bug would leave some out). */
	for (int r = 0; r < 100; r++) {
		rand_id(out, 250);
		for (size_t j = 0; j < 250; j++)
			counts[(unsigned char)out[j]]++;
	}
	int distinct = 0;
	for (int c = 0; c < 256; c++)
		distinct += counts[c] > 0;
	CHECK(distinct == 62, "rand_id used %d distinct characters, want 62", distinct);

	unsigned char buf[256] = {0};
	rand_bytes(buf, 0);
	rand_bytes(buf, sizeof buf);
	int zeros = 0;
	for (size_t j = 0; j < sizeof buf; j++)
		zeros += buf[j] == 0;
	CHECK(zeros < 32, "rand_bytes: %d zero bytes of 256", zeros);
}

/* ---- duration and size parsing ---- */

static void
test_parse_duration(void)
{
	static const struct {
		const char *in;
		int ok;
		uint64_t ms;
	} cases[] = {
	    {"30s", 1, 30000},
	    {"10m", 1, 600000},
	    {"2h", 1, 7200000},
	    {"30d", 1, 2592000000ULL},
	    {"250ms", 1, 250},
	    {"0", 1, 0},
	    {"0s", 1, 0},
	    {"1500", 1, 1500},
	    {"213503982334d", 1, 213503982334ULL * 86400000ULL},
	    {"", 0, 0},
	    {"-1", 0, 0},
	    {"-1s", 0, 0},
	    {" -1", 0, 0}, /* strtoull skips blanks, then negates */
	    {"\t-5s", 0, 0},
	    {"10x", 0, 0},
	    {"s", 0, 0},
	    {"ms", 0, 0},
	    {"1.5s", 0, 0},
	    {"10 s", 0, 0},
	    {"10S", 0, 0},
	    {"10sec", 0, 0},
	    {"10s5", 0, 0},
	    {"1e3", 0, 0},
	    {"0x10", 0, 0},
	    {"99999999999999999999d", 0, 0}, /* does not fit in 64 bits */
	    {"99999999999999999999", 0, 0},
	    {"213503982335d", 0, 0}, /* fits, but * 86400000 overflows */
	    {"18446744073709551615h", 0, 0},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		uint64_t ms = 777;
		int r = config_parse_duration(cases[i].in, &ms);
		if (cases[i].ok) {
			CHECK(r == 0 && ms == cases[i].ms, "duration '%s': r=%d ms=%llu, want %llu",
			      cases[i].in, r, (unsigned long long)ms,
			      (unsigned long long)cases[i].ms);
		} else {
			CHECK(r < 0, "duration '%s' accepted as %llu ms", cases[i].in,
			      (unsigned long long)ms);
			/* STYLE.md rule 8: outputs are written only on success. */
			CHECK(ms == 777, "duration '%s' failed but wrote %llu", cases[i].in,
			      (unsigned long long)ms);
		}
	}
}

static void
test_parse_size(void)
{
	static const struct {
		const char *in;
		int ok;
		size_t n;
	} cases[] = {
	    {"0", 1, 0},
	    {"1024", 1, 1024},
	    {"64k", 1, 65536},
	    {"64K", 1, 65536},
	    {"10M", 1, 10485760},
	    {"1G", 1, 1073741824},
	    {"16G", 1, (size_t)16 << 30},
	    {"", 0, 0},
	    {"-1", 0, 0},
	    {"-1k", 0, 0},
	    {" -1", 0, 0},
	    {"10x", 0, 0},
	    {"k", 0, 0},
	    {"1kk", 0, 0},
	    {"1.5k", 0, 0},
	    {"64 k", 0, 0},
	    {"64kB", 0, 0},
	    {"99999999999999999999", 0, 0},
	    {"18014398509481984k", 0, 0}, /* 2^54 * 1024 overflows */
	    {"17179869184G", 0, 0},	  /* 2^34 * 2^30 overflows */
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		size_t n = 777;
		int r = config_parse_size(cases[i].in, &n);
		if (cases[i].ok)
			CHECK(r == 0 && n == cases[i].n, "size '%s': r=%d n=%zu, want %zu",
			      cases[i].in, r, n, cases[i].n);
		else
			CHECK(r < 0 && n == 777,
			      "size '%s': r=%d, output %zu (want < 0, unchanged)", cases[i].in, r,
			      n);
	}
}

/* ---- event loop: timers ---- */

struct ttimer {
	struct timer t;
	int id;
	uint64_t due;
};

static struct loop *tl;
static int fired[64], nfired;
static uint64_t last_when;
static int order_bad;

static void
ttimer_fire(struct timer *t)
{
	struct ttimer *tt = container_of(t, struct ttimer, t);

	if (nfired < (int)ARRAY_LEN(fired))
		fired[nfired] = tt->id;
	nfired++;
	if (now_ms() < tt->due)
		order_bad++;
	if (timer_armed(t))
		order_bad++;
}

static void
stop_timer_fire(struct timer *t)
{
	loop_stop(tl);
}

static struct ttimer victim;
static void
stopper_of_victim(struct timer *t)
{
	ttimer_fire(t);
	timer_stop(tl, &victim.t);
}

static int periodic_left;
static void
periodic_fire(struct timer *t)
{
	ttimer_fire(t);
	if (--periodic_left > 0)
		timer_start(tl, t, 2);
	else
		loop_stop(tl);
}

static void
arm(struct ttimer *tt, int id, uint64_t ms, void (*fn)(struct timer *))
{
	tt->id = id;
	tt->t.fn = fn;
	tt->due = now_ms() + ms;
	timer_start(tl, &tt->t, ms);
}

static void
test_timers(void)
{
	struct ttimer a = {0}, b = {0}, c = {0}, d = {0}, e = {0}, f = {0}, p = {0};
	struct timer stop = {.fn = stop_timer_fire};

	tl = loop_new(1);
	nfired = 0;
	order_bad = 0;
	arm(&c, 3, 30, ttimer_fire);
	arm(&a, 1, 10, ttimer_fire);
	arm(&b, 2, 20, ttimer_fire);
	arm(&d, 4, 5, ttimer_fire); /* re-armed below: moves to 40 */
	arm(&e, 99, 15, ttimer_fire);
	arm(&f, 5, 25, stopper_of_victim);
	arm(&victim, 98, 35, ttimer_fire); /* stopped by f before it is due */
	arm(&d, 4, 40, ttimer_fire);
	timer_stop(tl, &e.t);
	timer_stop(tl, &e.t); /* stopping twice is harmless */
	CHECK(!timer_armed(&e.t) && timer_armed(&a.t), "timer_armed after start/stop");
	timer_start(tl, &stop, 60);
	CHECK(loop_run(tl) == 0, "loop_run returns 0");

	static const int want[] = {1, 2, 5, 3, 4};
	int same = nfired == (int)ARRAY_LEN(want);
	for (int i = 0; same && i < nfired; i++)
		same = fired[i] == want[i];
	CHECK(same, "timers fired in order 1 2 5 3 4 (got %d timers: %d %d %d %d %d)", nfired,
	      fired[0], fired[1], fired[2], fired[3], fired[4]);
	CHECK(order_bad == 0, "%d timers fired early or still armed in their callback", order_bad);
	CHECK(!timer_armed(&victim.t) && !timer_armed(&d.t), "fired/stopped timers are unarmed");

	/* loop_stop is sticky (a stop racing with start-up is not lost): a new loop per run. */
	loop_free(tl);
	tl = loop_new(1);

	/* A timer re-arming itself from its callback. */
	nfired = 0;
	periodic_left = 3;
	arm(&p, 7, 1, periodic_fire);
	timer_start(tl, &stop, 2000); /* only if re-arming is broken */
	loop_run(tl);
	CHECK(nfired == 3, "self-re-arming timer fired %d times, want 3", nfired);
	loop_free(tl);
}

/* Many timers in random order, half stopped: the rest fire once each, by due time. */
#define NT 2000
static struct timer many[NT];
static uint64_t many_when[NT];
static int many_fired[NT], many_bad;

static void
many_fire(struct timer *t)
{
	size_t i = (size_t)(t - many);
	many_fired[i]++;
	if (many_when[i] < last_when)
		many_bad++;
	last_when = many_when[i];
}

static void
test_timer_heap(void)
{
	struct timer stop = {.fn = stop_timer_fire};
	unsigned seed = 99;

	tl = loop_new(2);
	last_when = 0;
	for (int i = 0; i < NT; i++) {
		seed = seed * 1103515245 + 12345;
		many[i].fn = many_fire;
		timer_start(tl, &many[i], (seed >> 8) % 20);
		many_when[i] = many[i].when;
	}
	for (int i = 0; i < NT; i += 2)
		timer_stop(tl, &many[i]);
	/* Re-arm a few of the survivors later: re-arming moves, never duplicates. */
	for (int i = 1; i < NT; i += 50) {
		timer_start(tl, &many[i], 25);
		many_when[i] = many[i].when;
	}
	timer_start(tl, &stop, 40);
	loop_run(tl);
	int wrong = 0;
	for (int i = 0; i < NT; i++)
		wrong += many_fired[i] != (i & 1);
	CHECK(wrong == 0, "%d timers fired the wrong number of times", wrong);
	CHECK(many_bad == 0, "%d timers fired before an earlier-due one", many_bad);
	loop_free(tl);
}

/* ---- event loop: fd events, turn-end hooks, io removal during a turn ---- */

struct pipe_io {
	struct loop_io io;
	char got[64];
	size_t n;
	int calls;
	uint32_t events;
	struct pipe_io *other;
};

static int io_wrong_loop;
static char seq[4096];
static size_t seqn;

static void
note(char c)
{
	if (seqn < sizeof seq - 1)
		seq[seqn++] = c;
}

static void
pipe_readable(struct loop_io *io, uint32_t events)
{
	struct pipe_io *p = container_of(io, struct pipe_io, io);
	ssize_t r;

	p->calls++;
	p->events |= events;
	note('r');
	if (loop_current() != tl)
		io_wrong_loop++;
	while ((r = read(io->fd, p->got + p->n, sizeof p->got - 1 - p->n)) > 0)
		p->n += (size_t)r;
	if (r == 0 || (events & LOOP_HUP)) {
		loop_io_del(tl, io);
		loop_stop(tl);
	}
	/* The peer io is removed during this turn: it must get no event in this turn. */
	if (p->other) {
		loop_io_del(tl, &p->other->io);
		p->other->other = NULL;
	}
}

static int write_fd = -1;
static void
write_later(struct timer *t)
{
	note('t');
	(void)!write(write_fd, "ping", 4);
}

static void
close_later(struct timer *t)
{
	note('c');
	close(write_fd);
	write_fd = -1;
}

static void
turn_end(struct loop *loop, void *arg)
{
	int *count = arg;

	(*count)++;
	note('e');
}

static void
test_io(void)
{
	int fds[2], hooks = 0;
	struct pipe_io p = {0};
	struct timer w = {.fn = write_later}, c = {.fn = close_later};

	CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
	tl = loop_new(3);
	CHECK(loop_id(tl) == 3, "loop_id");
	loop_set_data(tl, &p);
	CHECK(loop_data(tl) == &p, "loop_data");
	CHECK(loop_current() == NULL, "loop_current() outside a loop is NULL");
	loop_on_turn_end(tl, turn_end, &hooks);
	write_fd = fds[1];
	p.io.fd = fds[0];
	p.io.fn = pipe_readable;
	CHECK(loop_io_add(tl, &p.io, LOOP_IN) == 0, "loop_io_add");
	CHECK(loop_io_add(tl, &p.io, LOOP_IN) < 0, "adding the same fd twice fails");
	CHECK(loop_io_mod(tl, &p.io, LOOP_IN) == 0, "loop_io_mod to the same events");
	seqn = 0;
	timer_start(tl, &w, 5);
	timer_start(tl, &c, 30);
	CHECK(loop_run(tl) == 0, "loop_run");
	seq[seqn] = '\0';
	CHECK(p.n == 4 && memcmp(p.got, "ping", 4) == 0, "read '%.*s' from the pipe", (int)p.n,
	      p.got);
	CHECK(p.events & LOOP_IN, "LOOP_IN reported");
	CHECK(p.events & LOOP_HUP, "LOOP_HUP reported after the writer closed");
	/* At least the turn of the write timer and a later one of the read; a slow machine
	 * may fold the close timer into either, so 2 is all that is certain. */
	CHECK(hooks >= 2, "turn-end hook ran %d times", hooks);
	/* Each event and timer is followed by the turn-end hook of its turn. */
	/* The turn-end hook runs once per turn, after that turn's events and timers. */
	int ends = 0;
	for (size_t i = 0; i < seqn; i++)
		ends += seq[i] == 'e';
	CHECK(seqn > 0 && seq[seqn - 1] == 'e' && ends == hooks && strchr(seq, 't') &&
		  strchr(seq, 'c') && strchr(seq, 'r'),
	      "turn-end hook after events: '%s'", seq);
	CHECK(loop_current() == NULL, "loop_current() is NULL after loop_run returns");
	CHECK(io_wrong_loop == 0, "loop_current() wrong inside %d io callbacks", io_wrong_loop);
	close(fds[0]);
	loop_free(tl);
}

static void
test_io_del_in_turn(void)
{
	int a[2], b[2], hooks = 0;
	struct pipe_io pa = {0}, pb = {0};
	struct timer stop = {.fn = stop_timer_fire};

	CHECK(pipe2(a, O_NONBLOCK) == 0 && pipe2(b, O_NONBLOCK) == 0, "pipe2");
	tl = loop_new(4);
	loop_on_turn_end(tl, turn_end, &hooks);
	pa.io = (struct loop_io){.fd = a[0], .fn = pipe_readable};
	pb.io = (struct loop_io){.fd = b[0], .fn = pipe_readable};
	pa.other = &pb;
	pb.other = &pa;
	loop_io_add(tl, &pa.io, LOOP_IN);
	loop_io_add(tl, &pb.io, LOOP_IN);
	/* Both readable before the first wait: both events come in one epoll batch. */
	(void)!write(a[1], "a", 1);
	(void)!write(b[1], "b", 1);
	timer_start(tl, &stop, 20);
	loop_run(tl);
	CHECK(pa.calls + pb.calls == 1, "io removed during a turn still got %d events",
	      pa.calls + pb.calls - 1);

	/* LOOP_OUT: a pipe's write end is writable at once. */
	loop_free(tl);
	tl = loop_new(4);
	struct pipe_io pw = {0};
	pw.io = (struct loop_io){.fd = a[1], .fn = pipe_readable};
	CHECK(loop_io_add(tl, &pw.io, LOOP_IN) == 0, "add write end");
	CHECK(loop_io_mod(tl, &pw.io, LOOP_OUT) == 0 && pw.io.events == LOOP_OUT, "loop_io_mod");
	timer_start(tl, &stop, 10);
	loop_run(tl);
	CHECK(pw.calls >= 1 && (pw.events & LOOP_OUT), "LOOP_OUT not reported after loop_io_mod");
	loop_io_del(tl, &pw.io);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
	loop_free(tl);
}

/* ---- event loop: the mailbox ---- */

#define PRODUCERS    4
#define PER_PRODUCER 50000

struct tmail {
	struct mail m;
	int producer, seq;
};

static struct tmail *mails;
static int next_seq[PRODUCERS];
static atomic_int received;
static int dup_or_order, wrong_thread;
static struct loop *ml;

static void
mail_fn(struct loop *loop, struct mail *m)
{
	struct tmail *t = container_of(m, struct tmail, m);

	if (loop != ml || loop_current() != ml)
		wrong_thread++;
	/* Per-producer FIFO, each mail exactly once. */
	if (t->seq != next_seq[t->producer])
		dup_or_order++;
	next_seq[t->producer] = t->seq + 1;
	atomic_fetch_add(&received, 1);
}

static void *
producer(void *arg)
{
	int p = (int)(intptr_t)arg;

	for (int i = 0; i < PER_PRODUCER; i++) {
		struct tmail *t = &mails[p * PER_PRODUCER + i];
		t->producer = p;
		t->seq = i;
		t->m.fn = mail_fn;
		loop_post(ml, &t->m);
	}
	return NULL;
}

static pthread_t producers[PRODUCERS];

static void *
stopper(void *arg)
{
	struct timespec ms = {0, 1000000};

	for (int i = 0; i < PRODUCERS; i++)
		pthread_join(producers[i], NULL);
	/* Let the loop go idle in epoll_wait first: loop_stop must wake it. */
	while (loop_mail_depth(ml) > 0)
		nanosleep(&ms, NULL);
	ms.tv_nsec = 20000000;
	nanosleep(&ms, NULL);
	loop_stop(ml);
	return NULL;
}

struct self_mail {
	struct mail m;
	int left;
};

static void
self_post_fn(struct loop *loop, struct mail *m)
{
	struct self_mail *s = container_of(m, struct self_mail, m);

	if (--s->left > 0)
		loop_post(loop, m);
	else
		atomic_fetch_add(&received, 1);
}

static void
test_mailbox(void)
{
	pthread_t st;

	ml = loop_new(5);
	mails = xcalloc(PRODUCERS * PER_PRODUCER, sizeof *mails);

	/* Mail posted before the loop runs, and even before loop_stop, still runs. */
	for (int i = 0; i < 3; i++) {
		mails[i] = (struct tmail){.producer = 0, .seq = i};
		mails[i].m.fn = mail_fn;
		loop_post(ml, &mails[i].m);
	}
	CHECK(loop_mail_depth(ml) == 3, "loop_mail_depth %zu, want 3", loop_mail_depth(ml));
	loop_stop(ml);
	loop_run(ml);
	CHECK(atomic_load(&received) == 3 && loop_mail_depth(ml) == 0,
	      "mail posted before loop_stop: %d of 3 delivered, depth %zu", atomic_load(&received),
	      loop_mail_depth(ml));
	loop_free(ml);

	/* 4 threads x 50k mails into one running loop, stopped from another thread. */
	ml = loop_new(6);
	memset(next_seq, 0, sizeof next_seq);
	atomic_store(&received, 0);
	dup_or_order = wrong_thread = 0;
	for (int i = 0; i < PRODUCERS; i++)
		pthread_create(&producers[i], NULL, producer, (void *)(intptr_t)i);
	pthread_create(&st, NULL, stopper, NULL);
	loop_run(ml);
	pthread_join(st, NULL);
	CHECK(atomic_load(&received) == PRODUCERS * PER_PRODUCER, "received %d of %d mails",
	      atomic_load(&received), PRODUCERS * PER_PRODUCER);
	CHECK(dup_or_order == 0, "%d mails duplicated or out of per-producer order", dup_or_order);
	int complete = 1;
	for (int i = 0; i < PRODUCERS; i++)
		complete &= next_seq[i] == PER_PRODUCER;
	CHECK(complete, "a producer's last mail was not the last received from it");
	CHECK(wrong_thread == 0, "%d mails ran off the loop's thread", wrong_thread);
	CHECK(loop_mail_depth(ml) == 0, "depth %zu after drain", loop_mail_depth(ml));

	/* A mail re-posting itself from the loop's own thread. */
	loop_free(ml);
	ml = loop_new(7);
	struct self_mail self = {.m.fn = self_post_fn, .left = 100};
	struct timer stop = {.fn = stop_timer_fire};
	atomic_store(&received, 0);
	tl = ml;
	loop_post(ml, &self.m);
	timer_start(ml, &stop, 50);
	loop_run(ml);
	CHECK(self.left == 0 && atomic_load(&received) == 1, "self-posted mail ran %d times",
	      100 - self.left);

	/* Shutdown: mail arriving after loop_run returned runs on loop_drain's caller. */
	memset(next_seq, 0, sizeof next_seq);
	atomic_store(&received, 0);
	wrong_thread = dup_or_order = 0;
	for (int i = 0; i < 5; i++) {
		mails[i] = (struct tmail){.producer = 1, .seq = i};
		mails[i].m.fn = mail_fn;
		loop_post(ml, &mails[i].m);
	}
	loop_drain(ml);
	CHECK(atomic_load(&received) == 5 && dup_or_order == 0 && wrong_thread == 0,
	      "loop_drain ran %d of 5 mails (%d out of order, %d without loop_current)",
	      atomic_load(&received), dup_or_order, wrong_thread);
	CHECK(loop_current() == NULL && loop_mail_depth(ml) == 0,
	      "after loop_drain: loop_current restored, depth %zu", loop_mail_depth(ml));
	loop_drain(ml); /* empty: a no-op */
	CHECK(atomic_load(&received) == 5, "second loop_drain ran mail again");
	loop_free(ml);
	free(mails);
}

int
main(void)
{
	signal(SIGALRM, on_alarm);
	alarm(30);

	test_buf_basic();
	test_buf_printf_long();
	test_buf_model();
	test_buf_bounded();
	test_buf_steal();
	test_hash();
	test_hmap_basic();
	test_hmap_big();
	test_hmap_prune();
	test_hmap_churn();
	test_imap_model();
	test_time_format();
	test_rand_id();
	test_parse_duration();
	test_parse_size();
	test_timers();
	test_timer_heap();
	test_io();
	test_io_del_in_turn();
	test_mailbox();

	return check_summary("test_core");
}
