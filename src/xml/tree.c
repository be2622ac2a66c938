/*
 * tree: the stanza tree: elements with attributes and children, text nodes, copying,
 * lookup and the attribute list. A node is owned by its parent (or by whoever holds a
 * root).
 *
 * A node is made in one allocation, its block: the struct, then the attribute pointers,
 * the name, the namespace and the attribute strings (or the text of a text node). What a
 * later change puts in a node (xml_set_attr, xml_rename_ns, merged text) is allocated on
 * its own; a string is freed alone exactly when it lies outside the block. A string is
 * never moved while its node lives, so a value read with xml_attr stays valid until that
 * very attribute is changed or removed.
 *
 * Invariant: an element never has two adjacent text children (xml_add_text merges),
 * attrs is either NULL or holds 2 * nattrs strings followed by a NULL, and the
 * parent/first/last/next links always describe one tree.
 */
#include <stdlib.h>
#include <string.h>

#include "xml_int.h"

/* Whether p lies in n's block (freed with n, never alone). */
static bool
in_block(const struct xml_node *n, const void *p)
{
	uintptr_t b = (uintptr_t)n, q = (uintptr_t)p;
	return q >= b && q - b < n->blen;
}

static void
free_own(const struct xml_node *n, void *p)
{
	if (!in_block(n, p))
		free(p);
}

static struct xml_node *
node_block(size_t extra)
{
	size_t sz = sizeof(struct xml_node) + extra;
	struct xml_node *n;

	if (sz > UINT32_MAX)
		fatal("xml node too large");
	n = xmalloc(sz);
	memset(n, 0, sizeof *n);
	n->blen = (uint32_t)sz;
	return n;
}

struct xml_node *
xml_el_make(const char *name, size_t namelen, const char *ns, size_t nslen,
	    const char *const *pairs, size_t npairs)
{
	size_t extra = namelen + 1 + nslen + 1;
	struct xml_node *n;
	char *p;

	if (npairs > UINT32_MAX / 4)
		fatal("xml: too many attributes");
	if (npairs)
		extra += (2 * npairs + 1) * sizeof(char *);
	for (size_t i = 0; i < 2 * npairs; i++)
		extra += strlen(pairs[i]) + 1;
	n = node_block(extra);
	p = (char *)(n + 1);
	if (npairs) {
		n->attrs = (char **)p;
		n->nattrs = (uint32_t)npairs;
		p += (2 * npairs + 1) * sizeof(char *);
		for (size_t i = 0; i < 2 * npairs; i++) {
			size_t l = strlen(pairs[i]);
			n->attrs[i] = memcpy(p, pairs[i], l + 1);
			p += l + 1;
		}
		n->attrs[2 * npairs] = NULL;
	}
	n->name = memcpy(p, name, namelen);
	n->name[namelen] = '\0';
	p += namelen + 1;
	n->ns = memcpy(p, ns, nslen);
	n->ns[nslen] = '\0';
	return n;
}

static struct xml_node *
text_make(const char *text, size_t len)
{
	struct xml_node *n = node_block(len + 1);

	n->text = memcpy(n + 1, text, len);
	n->text[len] = '\0';
	n->len = len;
	return n;
}

struct xml_node *
xml_el_new(const char *name, const char *ns)
{
	if (!ns)
		ns = "";
	return xml_el_make(name, strlen(name), ns, strlen(ns), NULL, 0);
}

void
xml_add_child(struct xml_node *parent, struct xml_node *child)
{
	child->parent = parent;
	child->next = NULL;
	if (parent->last)
		parent->last->next = child;
	else
		parent->first = child;
	parent->last = child;
}

struct xml_node *
xml_add_el(struct xml_node *parent, const char *name, const char *ns)
{
	struct xml_node *n = xml_el_new(name, ns ? ns : parent->ns);

	xml_add_child(parent, n);
	return n;
}

void
xml_add_text(struct xml_node *parent, const char *text, size_t len)
{
	struct xml_node *last = parent->last;
	size_t total;

	if (len == 0)
		return;
	/* Merge with a preceding text node so readers see one run of character data. */
	if (last && !last->name) {
		char *t;
		if (__builtin_add_overflow(last->len, len + 1, &total))
			fatal("xml text size overflow");
		if (in_block(last, last->text)) {
			t = xmalloc(total);
			memcpy(t, last->text, last->len);
		} else {
			t = xrealloc(last->text, total);
		}
		memcpy(t + last->len, text, len);
		last->text = t;
		last->len += len;
		last->text[last->len] = '\0';
		return;
	}
	xml_add_child(parent, text_make(text, len));
}

void
xml_detach(struct xml_node *n)
{
	struct xml_node *p = n->parent, *prev = NULL, *c;

	if (!p)
		return;
	for (c = p->first; c && c != n; c = c->next)
		prev = c;
	if (!c)
		fatal("xml_detach: node not among its parent's children");
	if (prev)
		prev->next = n->next;
	else
		p->first = n->next;
	if (p->last == n)
		p->last = prev;
	n->parent = NULL;
	n->next = NULL;
}

static void
node_free_one(struct xml_node *n)
{
	if (n->attrs) {
		for (size_t i = 0; i < 2 * (size_t)n->nattrs; i++)
			free_own(n, n->attrs[i]);
		free_own(n, n->attrs);
	}
	free_own(n, n->ns);
	free_own(n, n->text);
	free(n);
}

/* Iterative so that no tree, however deep, can exhaust the C stack. */
void
xml_free(struct xml_node *n)
{
	struct xml_node *top = n, *c, *up;

	if (!n)
		return;
	c = n;
	for (;;) {
		while (c->first)
			c = c->first;
		/* c is a leaf: free it and continue with its next sibling or its parent. */
		if (c == top) {
			node_free_one(c);
			return;
		}
		up = c->parent;
		up->first = c->next;
		if (!up->first)
			up->last = NULL;
		node_free_one(c);
		c = up->first ? up->first : up;
	}
}

static struct xml_node *
node_copy_one(const struct xml_node *n)
{
	if (!n->name)
		return text_make(n->text ? n->text : "", n->len);
	return xml_el_make(n->name, strlen(n->name), n->ns ? n->ns : "", n->ns ? strlen(n->ns) : 0,
			   (const char *const *)n->attrs, n->attrs ? n->nattrs : 0);
}

/* Pre-order walk over the source with parent links; the copy grows alongside. */
struct xml_node *
xml_copy(const struct xml_node *n)
{
	const struct xml_node *src = n;
	struct xml_node *root = node_copy_one(n), *dst = root;

	for (;;) {
		if (src->first) {
			src = src->first;
		} else {
			while (src != n && !src->next) {
				src = src->parent;
				dst = dst->parent;
			}
			if (src == n)
				return root;
			src = src->next;
			dst = dst->parent;
		}
		struct xml_node *c = node_copy_one(src);
		xml_add_child(dst, c);
		dst = c;
	}
}

const char *
xml_attr(const struct xml_node *el, const char *name)
{
	if (!el->attrs)
		return NULL;
	for (size_t i = 0; i < el->nattrs; i++) {
		if (strcmp(el->attrs[2 * i], name) == 0)
			return el->attrs[2 * i + 1];
	}
	return NULL;
}

void
xml_set_attr(struct xml_node *el, const char *name, const char *value)
{
	size_t i;

	for (i = 0; el->attrs && i < el->nattrs; i++) {
		if (strcmp(el->attrs[2 * i], name) == 0)
			break;
	}
	if (el->attrs && i < el->nattrs) {
		if (value) {
			char *v = xstrdup(value);
			free_own(el, el->attrs[2 * i + 1]);
			el->attrs[2 * i + 1] = v;
			return;
		}
		free_own(el, el->attrs[2 * i]);
		free_own(el, el->attrs[2 * i + 1]);
		/* Shift the later pairs and the terminating NULL down by one pair. */
		memmove(&el->attrs[2 * i], &el->attrs[2 * i + 2],
			(2 * (el->nattrs - i - 1) + 1) * sizeof(char *));
		el->nattrs--;
		return;
	}
	if (!value)
		return;
	if (!el->attrs || in_block(el, el->attrs)) {
		/* The block's array has no room: the pointers move out, the strings stay. */
		char **a = xmalloc((2 * (size_t)el->nattrs + 3) * sizeof(char *));
		if (el->attrs)
			memcpy(a, el->attrs, 2 * (size_t)el->nattrs * sizeof(char *));
		el->attrs = a;
	} else {
		el->attrs = xrealloc(el->attrs, (2 * (size_t)el->nattrs + 3) * sizeof(char *));
	}
	el->attrs[2 * el->nattrs] = xstrdup(name);
	el->attrs[2 * el->nattrs + 1] = xstrdup(value);
	el->nattrs++;
	el->attrs[2 * el->nattrs] = NULL;
}

static bool
el_matches(const struct xml_node *c, const char *name, const char *ns)
{
	return c->name && (!name || strcmp(c->name, name) == 0) && (!ns || strcmp(c->ns, ns) == 0);
}

struct xml_node *
xml_child(const struct xml_node *el, const char *name, const char *ns)
{
	for (struct xml_node *c = el->first; c; c = c->next) {
		if (el_matches(c, name, ns))
			return c;
	}
	return NULL;
}

struct xml_node *
xml_next(const struct xml_node *c, const char *name, const char *ns)
{
	for (struct xml_node *n = c->next; n; n = n->next) {
		if (el_matches(n, name, ns))
			return n;
	}
	return NULL;
}

char *
xml_text(const struct xml_node *el)
{
	struct buf b = {0};

	for (struct xml_node *c = el->first; c; c = c->next) {
		if (!c->name)
			buf_append(&b, c->text, c->len);
	}
	return buf_steal(&b);
}

void
xml_rename_ns(struct xml_node *n, const char *from, const char *to)
{
	if (!n->name)
		return;
	if (strcmp(n->ns, from) == 0) {
		free_own(n, n->ns);
		n->ns = xstrdup(to);
	}
	for (struct xml_node *c = n->first; c; c = c->next)
		xml_rename_ns(c, from, to);
}
