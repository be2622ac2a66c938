/*
 * write: serializes a tree to XML text and escapes character data. Output is always
 * well-formed for any tree of valid UTF-8 strings: names are written as given, an
 * xmlns attribute appears exactly where an element's namespace differs from the one
 * in scope, and attribute values are single-quoted.
 *
 * Invariant: parsing the output of xml_write yields an equal tree (same names,
 * namespaces, attributes and text), which is why \t, \n and \r are written as
 * character references where the parser would otherwise normalize them.
 */
#include <string.h>

#include "xml.h"

/* The replacement for byte c, or NULL if it is written as is. */
static const char *
escape_for(unsigned char c, bool attr)
{
	switch (c) {
	case '&':
		return "&amp;";
	case '<':
		return "&lt;";
	case '>':
		return "&gt;";
	case '\r':
		/* A raw CR would come back as LF (XML 1.0 section 2.11). */
		return "&#xD;";
	case '\'':
		return attr ? "&apos;" : NULL;
	case '"':
		return attr ? "&quot;" : NULL;
	case '\t':
		/* Attribute-value normalization turns raw tabs and newlines into spaces
		 * (XML 1.0 section 3.3.3). */
		return attr ? "&#x9;" : NULL;
	case '\n':
		return attr ? "&#xA;" : NULL;
	default:
		return NULL;
	}
}

/* Which bytes may need escaping; a table keeps the scan of long plain runs cheap. */
static const unsigned char special[256] = {
    ['&'] = 1, ['<'] = 1, ['>'] = 1, ['\r'] = 1, ['\''] = 2, ['"'] = 2, ['\t'] = 2, ['\n'] = 2,
};

void
xml_escape(struct buf *out, const char *s, size_t n, bool attr)
{
	unsigned char mask = attr ? 3 : 1;
	size_t run = 0;

	for (size_t i = 0; i < n; i++) {
		if (!(special[(unsigned char)s[i]] & mask))
			continue;
		buf_append(out, s + run, i - run);
		buf_puts(out, escape_for((unsigned char)s[i], attr));
		run = i + 1;
	}
	buf_append(out, s + run, n - run);
}

/*
 * Namespace declarations are produced by the writer from the ns field alone; an
 * attribute literally named xmlns or xmlns:* would duplicate or contradict them, so
 * such attributes (which the parser never produces) are not written.
 */
static bool
attr_is_xmlns(const char *name)
{
	return strncmp(name, "xmlns", 5) == 0 && (name[5] == '\0' || name[5] == ':');
}

/*
 * The XML namespace may never be the default namespace (Namespaces in XML 1.0, section
 * 3), so an element in it, which the parser accepts as <xml:x/>, is written with the
 * predeclared xml prefix and leaves the default namespace as it was.
 */
#define XML_NS "http://www.w3.org/XML/1998/namespace"

static bool
is_xml_ns(const char *ns)
{
	return ns && strcmp(ns, XML_NS) == 0;
}

static void
write_name(struct buf *out, const struct xml_node *el)
{
	if (is_xml_ns(el->ns))
		buf_puts(out, "xml:");
	buf_puts(out, el->name);
}

static void
write_open(struct buf *out, const struct xml_node *el, const char *scope_ns)
{
	const char *ns = el->ns ? el->ns : "";

	buf_append(out, "<", 1);
	write_name(out, el);
	if (!is_xml_ns(ns) && strcmp(ns, scope_ns ? scope_ns : "") != 0) {
		buf_puts(out, " xmlns='");
		xml_escape(out, ns, strlen(ns), true);
		buf_append(out, "'", 1);
	}
	bool xbosh_declared = false;
	for (size_t i = 0; el->attrs && i < el->nattrs; i++) {
		const char *name = el->attrs[2 * i], *value = el->attrs[2 * i + 1];
		if (attr_is_xmlns(name))
			continue;
		/* The parser names XEP-0206 attributes xmpp:*; their prefix must be declared. */
		if (strncmp(name, "xmpp:", 5) == 0 && !xbosh_declared) {
			buf_puts(out, " xmlns:xmpp='urn:xmpp:xbosh'");
			xbosh_declared = true;
		}
		buf_append(out, " ", 1);
		buf_puts(out, name);
		buf_puts(out, "='");
		xml_escape(out, value, strlen(value), true);
		buf_append(out, "'", 1);
	}
	if (el->first)
		buf_append(out, ">", 1);
	else
		buf_append(out, "/>", 2);
}

static void
write_close(struct buf *out, const struct xml_node *el)
{
	if (!el->first)
		return; /* written as <x/> */
	buf_append(out, "</", 2);
	write_name(out, el);
	buf_append(out, ">", 1);
}

/* The default namespace in scope where c is written: the nearest ancestor's, skipping
 * elements written with the xml prefix, or parent_ns above the top of the write. */
static const char *
scope_of(const struct xml_node *c, const struct xml_node *top, const char *parent_ns)
{
	while (c != top) {
		c = c->parent;
		if (!is_xml_ns(c->ns))
			return c->ns;
	}
	return parent_ns;
}

static void
write_node(struct buf *out, const struct xml_node *c, const char *parent_ns,
	   const struct xml_node *top)
{
	if (!c->name)
		xml_escape(out, c->text, c->len, false);
	else
		write_open(out, c, scope_of(c, top, parent_ns));
}

/* Iterative pre-order walk, so no tree depth can exhaust the C stack. */
void
xml_write(struct buf *out, const struct xml_node *n, const char *parent_ns)
{
	const struct xml_node *c = n;

	for (;;) {
		write_node(out, c, parent_ns, n);
		if (c->first) {
			c = c->first;
			continue;
		}
		/* c was written complete (text or <x/>): close the ancestors that end here. */
		while (c != n && !c->next) {
			c = c->parent;
			write_close(out, c);
		}
		if (c == n)
			return;
		c = c->next;
	}
}
