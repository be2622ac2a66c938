/*
 * fuzz_xml: libFuzzer target for the xml module. Each input is fed to a stream parser
 * with small limits twice, whole and in pieces whose sizes derive from the input, and
 * both runs must agree; every stanza must survive xml_write -> xml_parse -> xml_write
 * unchanged, and so must the input itself when xml_parse accepts it.
 *
 * Invariant checked: chunking (and freeing the parser at idle moments, xml_stream_trim)
 * never changes what the parser reports (except that a too-big unit may be refused
 * sooner), and the serializer's output always reparses to the same tree.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "xml/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STANZA 4096
#define MAX_DEPTH  10

struct run {
	struct buf ev;
	struct xml_stream *s;
	int nstanza;
};

/*
 * Changes every element of the tree the way the server does (an attribute replaced, one
 * added, one removed, the namespace renamed, text merged), checking that values read
 * before a change survive it: tree.c keeps parsed strings in each node's block.
 */
static void
mutate(struct xml_node *n)
{
	const char *first = n->nattrs ? n->attrs[1] : NULL;
	char *keep = first ? strdup(first) : NULL, *ns = strdup(n->ns);

	if (n->nattrs > 1)
		xml_set_attr(n, n->attrs[2 * n->nattrs - 2], "changed");
	xml_set_attr(n, "fuzz-added", "v");
	if (first && strcmp(first, keep) != 0)
		abort(); /* the first value moved or was freed by a change to another attribute */
	xml_set_attr(n, "fuzz-added", NULL);
	xml_rename_ns(n, ns, "urn:fuzz");
	for (struct xml_node *c = n->first; c; c = c->next) {
		if (c->name)
			mutate(c);
		else
			xml_add_text(n, "!", 1); /* merges into the last text child only if last */
	}
	free(keep);
	free(ns);
}

/* Serializes n, reparses it, serializes again: the two texts must be equal. */
static void
round_trip(const struct xml_node *n)
{
	struct buf w1 = {0}, w2 = {0};
	struct xml_node *again, *copy;

	xml_write(&w1, n, "");
	again = xml_parse(buf_head(&w1), buf_used(&w1));
	if (!again) {
		fprintf(stderr, "serialized tree does not reparse:\n%s\n", buf_head(&w1));
		abort();
	}
	xml_write(&w2, again, "");
	if (strcmp(buf_head(&w1), buf_head(&w2)) != 0) {
		fprintf(stderr, "round trip differs:\n%s\n%s\n", buf_head(&w1), buf_head(&w2));
		abort();
	}
	copy = xml_copy(n);
	buf_reset(&w2);
	xml_write(&w2, copy, "");
	if (strcmp(buf_head(&w1), buf_head(&w2)) != 0)
		abort();
	if (copy->name)
		mutate(copy);
	xml_free(again);
	xml_free(copy);
	buf_free(&w1);
	buf_free(&w2);
}

static void
on_open(void *arg, const char *name, const char *ns, const char **attrs, const char *default_ns)
{
	struct run *r = arg;

	buf_printf(&r->ev, "open %s {%s} [%s]", name, ns, default_ns);
	for (size_t i = 0; attrs[i]; i += 2)
		buf_printf(&r->ev, " %s=%s", attrs[i], attrs[i + 1]);
	buf_puts(&r->ev, "\n");
}

static void
on_stanza(void *arg, struct xml_node *el)
{
	struct run *r = arg;

	if (!el->name || !el->ns || el->parent || el->next)
		abort();
	xml_write(&r->ev, el, "");
	buf_puts(&r->ev, "\n");
	round_trip(el);
	xml_free(el);
	/* Exercise a limit change from inside a callback, as after authentication. */
	if (++r->nstanza == 1)
		xml_stream_set_max(r->s, 2 * MAX_STANZA);
}

static void
on_close(void *arg)
{
	struct run *r = arg;

	buf_puts(&r->ev, "close\n");
}

static const struct xml_stream_cb cb = {on_open, on_stanza, on_close};

/* Feeds data in pieces (chunk_seed 0 = all at once); returns the status, events in r. */
static int
run_stream(struct run *r, const uint8_t *data, size_t size, uint32_t chunk_seed)
{
	size_t off = 0;
	int rc = XML_OK;

	r->s = xml_stream_new(&cb, r, MAX_STANZA, MAX_DEPTH);
	while (off < size) {
		size_t k = size - off;
		if (chunk_seed) {
			chunk_seed = chunk_seed * 1103515245u + 12345u;
			/* mostly small pieces, sometimes single bytes, sometimes large ones */
			static const size_t caps[] = {1, 3, 17, 200, 5000};
			size_t cap = caps[(chunk_seed >> 8) % 5];
			k = 1 + (chunk_seed >> 16) % cap;
			if (k > size - off)
				k = size - off;
		}
		rc = xml_stream_feed(r->s, (const char *)data + off, k);
		off += k;
		if (rc != XML_OK)
			break;
		/* An idle session frees its parser between pieces: that must change nothing. */
		if (chunk_seed & 0x100000)
			xml_stream_trim(r->s);
	}
	if (rc != XML_OK && xml_stream_feed(r->s, "<a/>", 4) != rc)
		abort(); /* errors are sticky */
	xml_stream_free(r->s);
	return rc;
}

static bool
is_prefix(const struct buf *a, const struct buf *b)
{
	return buf_used(a) <= buf_used(b) && memcmp(buf_head(a), buf_head(b), buf_used(a)) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole = {0}, split = {0};
	uint32_t seed = 2166136261u;
	int rc1, rc2;

	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	rc1 = run_stream(&whole, data, size, 0);
	rc2 = run_stream(&split, data, size, seed | 1);
	if (rc1 == rc2 && rc1 != XML_E_TOO_BIG) {
		if (buf_used(&whole.ev) != buf_used(&split.ev) ||
		    !is_prefix(&whole.ev, &split.ev)) {
			fprintf(stderr, "chunking changed events:\n%s---\n%s", buf_head(&whole.ev),
				buf_head(&split.ev));
			abort();
		}
	} else if (rc1 == XML_E_TOO_BIG || rc2 == XML_E_TOO_BIG) {
		/* A too-big unit may be caught at a piece boundary, before a later error. */
		if (!is_prefix(&whole.ev, &split.ev) && !is_prefix(&split.ev, &whole.ev))
			abort();
	} else {
		fprintf(stderr, "chunking changed status %d -> %d\n", rc1, rc2);
		abort();
	}
	buf_free(&whole.ev);
	buf_free(&split.ev);

	struct xml_node *n = xml_parse((const char *)data, size);
	if (n) {
		round_trip(n);
		xml_free(n);
	}
	return 0;
}
