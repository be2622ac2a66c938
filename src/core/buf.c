/*
 * buf: growable byte buffers. Live bytes are [off, len); consuming from the front
 * only moves off, and the dead prefix is reclaimed when it is more than half the
 * buffer, so a stream of small reads and consumes stays O(1) amortised.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

char *
buf_space(struct buf *b, size_t n)
{
	size_t need;

	if (b->off > 0 && b->off >= b->len / 2) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (__builtin_add_overflow(b->len, n + 1, &need))
		fatal("buffer size overflow");
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < need) {
			if (__builtin_mul_overflow(cap, 2, &cap))
				fatal("buffer size overflow");
		}
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_append(struct buf *b, const void *data, size_t n)
{
	char *p = buf_space(b, n);
	if (n)
		memcpy(p, data, n);
	buf_commit(b, n);
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof small) {
		buf_append(b, small, (size_t)n);
		return;
	}
	char *p = buf_space(b, (size_t)n);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_commit(b, (size_t)n);
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len - b->off) {
		b->off = b->len = 0;
		if (b->data)
			b->data[0] = '\0';
		return;
	}
	b->off += n;
}

void
buf_reset(struct buf *b)
{
	b->off = b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

char *
buf_steal(struct buf *b)
{
	char *s;

	if (!b->data)
		return xstrdup("");
	if (b->off)
		memmove(b->data, b->data + b->off, b->len - b->off + 1);
	s = b->data;
	b->data = NULL;
	b->off = b->len = b->cap = 0;
	return s;
}

int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
