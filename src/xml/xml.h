/*
 * xml: the stanza tree, its serializer, and an incremental XML stream parser built on
 * expat. The parser turns the bytes of one XMPP stream into an "open" event for the
 * stream root and one complete tree per depth-1 element (a stanza), enforcing the
 * size and depth limits and RFC 6120 section 11's restricted XML before any tree is
 * handed out. Nothing here knows about sockets.
 *
 * Invariant: every tree handed out is complete and owned by exactly one holder;
 * element namespaces are resolved URIs, so trees are prefix-free.
 */
#ifndef BATON_XML_H
#define BATON_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

/*
 * One node of a tree: an element (name != NULL) or a text node (name == NULL,
 * text/len hold the character data, already unescaped, UTF-8).
 */
struct xml_node {
	char *name;   /* local name; NULL for text */
	char *ns;     /* namespace URI of the element; "" if none; NULL for text */
	char **attrs; /* name0, value0, name1, value1, ...; NULL-terminated; may be NULL */
	uint32_t nattrs;
	uint32_t blen; /* bytes of the node's own block (tree.c) */
	char *text;    /* text nodes only; NUL-terminated */
	size_t len;
	struct xml_node *parent, *first, *last, *next;
};

/* Attribute names: plain local names; attributes in the XML namespace are "xml:lang" etc. */

/* Returns a new element with no attributes or children; caller owns it. */
struct xml_node *xml_el_new(const char *name, const char *ns);
/* Appends a new child element and returns it (owned by parent). ns NULL = parent's ns. */
struct xml_node *xml_add_el(struct xml_node *parent, const char *name, const char *ns);
/* Appends a text child (copied). */
void xml_add_text(struct xml_node *parent, const char *text, size_t len);
/* Appends child (which must have no parent); parent owns it afterwards. */
void xml_add_child(struct xml_node *parent, struct xml_node *child);
/* Unlinks n from its parent; the caller owns n afterwards. No-op without a parent. */
void xml_detach(struct xml_node *n);
/* Frees n and its subtree; n must be detached (or a root). NULL is a no-op. */
void xml_free(struct xml_node *n);
/* Returns a deep copy (detached); caller owns it. */
struct xml_node *xml_copy(const struct xml_node *n);

/* Moves n and every descendant in namespace from to namespace to (jabber:client <-> jabber:server).
 */
void xml_rename_ns(struct xml_node *n, const char *from, const char *to);

/* Returns the attribute value or NULL. */
const char *xml_attr(const struct xml_node *el, const char *name);
/* Sets (copying) or, with value NULL, removes an attribute. */
void xml_set_attr(struct xml_node *el, const char *name, const char *value);

/* First child element with this name (NULL = any) in this namespace (NULL = any). */
struct xml_node *xml_child(const struct xml_node *el, const char *name, const char *ns);
/* Next sibling element after c with this name/namespace (NULL = any). */
struct xml_node *xml_next(const struct xml_node *c, const char *name, const char *ns);
/* Concatenated text of el's direct text children, NUL-terminated; caller frees. Never NULL. */
char *xml_text(const struct xml_node *el);

/*
 * Appends the serialization of n to out. An xmlns attribute is written where an
 * element's namespace differs from its parent's (for n itself: from parent_ns, the
 * namespace in scope where it will be written, e.g. "jabber:client"). Text and
 * attribute values are escaped.
 */
void xml_write(struct buf *out, const struct xml_node *n, const char *parent_ns);
/* Appends s[0..n) escaped for text (attr false) or for a '-quoted attribute (attr true). */
void xml_escape(struct buf *out, const char *s, size_t n, bool attr);

/*
 * Parses one complete document (a single element) held in memory, with the same
 * restrictions as the stream parser. Returns the tree (caller owns) or NULL.
 */
struct xml_node *xml_parse(const char *s, size_t n);

/* ---- the stream parser ---- */

enum xml_status {
	XML_OK = 0,
	XML_E_SYNTAX = -1,     /* not well-formed / invalid UTF-8: stream error not-well-formed */
	XML_E_RESTRICTED = -2, /* DTD, entity declaration, PI, comment: restricted-xml */
	XML_E_TOO_BIG = -3,    /* stanza larger than the limit: policy-violation */
	XML_E_TOO_DEEP = -4,   /* nesting deeper than the limit: policy-violation */
	XML_E_CLOSED = -5,     /* bytes after the root element closed */
	XML_E_ENCODING = -6,   /* an encoding declaration other than UTF-8: unsupported-encoding */
};

struct xml_stream_cb {
	/*
	 * The root element opened: name and ns resolved, attrs NULL-terminated
	 * name/value pairs (xml:lang as "xml:lang"), default_ns the default namespace
	 * declared on the root ("" if none). Only valid during the call.
	 */
	void (*open)(void *arg, const char *name, const char *ns, const char **attrs,
		     const char *default_ns);
	/* A complete depth-1 element; the callee owns el. */
	void (*stanza)(void *arg, struct xml_node *el);
	/* The root element closed. */
	void (*close)(void *arg);
};

struct xml_stream;

/*
 * Returns a parser for one stream. max_stanza caps the bytes of any depth-1 element
 * (its start tag to its end tag), max_depth the element nesting counting the root as 1.
 */
struct xml_stream *xml_stream_new(const struct xml_stream_cb *cb, void *arg, size_t max_stanza,
				  int max_depth);
/* Changes the stanza limit (e.g. after authentication). */
void xml_stream_set_max(struct xml_stream *s, size_t max_stanza);
/*
 * Feeds bytes; callbacks run before it returns. Returns XML_OK or a negative
 * enum xml_status, after which the stream is dead (further feeds return the same error).
 * Never call from inside a callback.
 */
int xml_stream_feed(struct xml_stream *s, const char *data, size_t len);
/* The stream-error condition name for a status, e.g. "not-well-formed". */
const char *xml_status_condition(int status);
/* Frees the parser and any partial tree. Never from inside a callback. NULL is a no-op. */
void xml_stream_free(struct xml_stream *s);
/*
 * Frees the parser's working memory (expat's, about 10 KiB) while the stream is idle at a
 * stanza boundary; the next feed continues with a fresh parser. Returns whether it did.
 */
bool xml_stream_trim(struct xml_stream *s);
/* Returns the pages of trimmed and freed streams' parsers to the system. */
void xml_regions_release(void);

#endif
