/*
 * tree: the stanza tree: elements with attributes and children, text nodes, copying,
 * lookup and the attribute list. Every string in a node is its own heap allocation
 * owned by that node, and a node is owned by its parent (or by whoever holds a root).
 *
 * Invariant: an element never has two adjacent text children (xml_add_text merges),
 * attrs is either NULL or holds 2 * nattrs strings followed by a NULL, and the
 * parent/first/last/next links always describe one tree.
 */
#include <stdlib.h>
#include <string.h>

#include "xml.h"

static struct xml_node *
node_alloc(void)
{
	return xcalloc(1, sizeof(struct xml_node));
}

struct xml_node *
xml_el_new(const char *name, const char *ns)
{
	struct xml_node *n = node_alloc();

	n->name = xstrdup(name);
	n->ns = xstrdup(ns ? ns : "");
	return n;
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
	struct xml_node *n;
	size_t total;

	if (len == 0)
		return;
	/* Merge with a preceding text node so readers see one run of character data. */
	if (last && !last->name) {
		if (__builtin_add_overflow(last->len, len + 1, &total))
			fatal("xml text size overflow");
		last->text = xrealloc(last->text, total);
		memcpy(last->text + last->len, text, len);
		last->len += len;
		last->text[last->len] = '\0';
		return;
	}
	n = node_alloc();
	n->text = xstrndup(text, len);
	n->len = len;
	xml_add_child(parent, n);
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
		for (size_t i = 0; i < 2 * n->nattrs; i++)
			free(n->attrs[i]);
		free(n->attrs);
	}
	free(n->name);
	free(n->ns);
	free(n->text);
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
	struct xml_node *c = node_alloc();

	if (!n->name) {
		c->text = xstrndup(n->text ? n->text : "", n->len);
		c->len = n->len;
		return c;
	}
	c->name = xstrdup(n->name);
	c->ns = xstrdup(n->ns ? n->ns : "");
	if (n->attrs && n->nattrs) {
		c->attrs = xmalloc((2 * n->nattrs + 1) * sizeof(char *));
		for (size_t i = 0; i < 2 * n->nattrs; i++)
			c->attrs[i] = xstrdup(n->attrs[i]);
		c->attrs[2 * n->nattrs] = NULL;
		c->nattrs = n->nattrs;
	}
	return c;
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
			free(el->attrs[2 * i + 1]);
			el->attrs[2 * i + 1] = v;
			return;
		}
		free(el->attrs[2 * i]);
		free(el->attrs[2 * i + 1]);
		/* Shift the later pairs and the terminating NULL down by one pair. */
		memmove(&el->attrs[2 * i], &el->attrs[2 * i + 2],
			(2 * (el->nattrs - i - 1) + 1) * sizeof(char *));
		el->nattrs--;
		return;
	}
	if (!value)
		return;
	el->attrs = xrealloc(el->attrs, (2 * el->nattrs + 3) * sizeof(char *));
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
		free(n->ns);
		n->ns = xstrdup(to);
	}
	for (struct xml_node *c = n->first; c; c = c->next)
		xml_rename_ns(c, from, to);
}
