/*
 * stream: the incremental XMPP stream parser on top of expat (with namespace
 * processing), and xml_parse(), which runs the same machinery over one in-memory
 * document. It reports the stream root, builds one tree per depth-1 element and
 * enforces RFC 6120 section 11's restricted XML plus the size and depth limits.
 *
 * Invariant: no tree is handed out before its end tag has been parsed and checked,
 * the bytes expat may hold for the element (or token) being read never exceed
 * max_stanza by more than one feed's worth, and once a status other than XML_OK has
 * been returned every later feed returns it again without parsing.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>

#include "xml.h"

/*
 * Expat joins a namespace URI and a local name with this byte. XML 1.0 forbids U+0001
 * anywhere in a document, even as a character reference, so it can never occur in a
 * URI or a name and the split is unambiguous.
 */
#define NS_SEP '\x01'
#define XML_NS "http://www.w3.org/XML/1998/namespace"

/* Nesting cap for xml_parse(): well above any stream's stanza_depth. */
#define XML_PARSE_MAX_DEPTH 256

/* A text buffer grown past this is released once its stanza is delivered (idle memory). */
#define TEXT_KEEP 4096

struct xml_stream {
	XML_Parser p;
	struct xml_stream_cb cb;
	void *arg;
	size_t max_stanza;
	int max_depth;
	int depth;   /* elements open, the stream root included */
	int base;    /* depth of the elements that become trees: 2 in a stream, 1 in xml_parse */
	int err;     /* sticky status */
	bool closed; /* the stream root has closed */
	bool busy;   /* inside XML_Parse: callbacks are running */
	/*
	 * Byte offset where the unit being read began: the start tag of the tree being
	 * built, or else the end of the last event outside any tree. Everything expat
	 * has been fed past mark belongs to that unit and counts against max_stanza.
	 */
	uint64_t mark;
	uint64_t fed;		     /* bytes given to expat so far */
	struct xml_node *tree, *cur; /* tree being built and its innermost open element */
	struct xml_node *result;     /* xml_parse(): the finished document */
	struct buf text;	     /* character data not yet attached to cur */
	char *default_ns;	     /* default namespace declared on the root, or NULL */
};

/* Records the first error and stops expat; later handlers see s->err and do nothing. */
static void
stream_fail(struct xml_stream *s, int status)
{
	if (s->err)
		return;
	/* After the root closed, anything but whitespace is "bytes after the stream". */
	s->err = s->closed ? XML_E_CLOSED : status;
	XML_StopParser(s->p, XML_FALSE);
}

/* Absolute offset just past the bytes of the event being handled. */
static uint64_t
event_end(const struct xml_stream *s)
{
	XML_Index i = XML_GetCurrentByteIndex(s->p);
	int n = XML_GetCurrentByteCount(s->p);

	if (i < 0)
		return s->fed;
	return (uint64_t)i + (uint64_t)(n > 0 ? n : 0);
}

/* Fails with TOO_BIG if the unit that started at mark has passed the limit. */
static bool
stream_too_big(struct xml_stream *s, uint64_t end)
{
	if (end > s->mark && end - s->mark > s->max_stanza) {
		stream_fail(s, XML_E_TOO_BIG);
		return true;
	}
	return false;
}

/*
 * Attribute names as trees carry them: unprefixed names as they are, attributes in the
 * XML namespace as "xml:<local>". Other namespaced attributes are dropped (returns
 * NULL): XMPP defines none, and keeping them prefix-free would need a form no consumer
 * understands. Only unprefixed attributes and xml:lang matter to RFC 6120.
 */
static char *
attr_name(const char *name)
{
	const char *sep = strchr(name, NS_SEP);
	size_t urilen, n;
	char *out;

	if (!sep)
		return xstrdup(name);
	urilen = (size_t)(sep - name);
	if (urilen != sizeof(XML_NS) - 1 || memcmp(name, XML_NS, urilen) != 0)
		return NULL;
	n = strlen(sep + 1);
	out = xmalloc(n + 5);
	memcpy(out, "xml:", 4);
	memcpy(out + 4, sep + 1, n + 1);
	return out;
}

/* Converts expat's attribute list; returns a NULL-terminated array, *npairs pairs. */
static char **
attrs_convert(const XML_Char **atts, size_t *npairs)
{
	size_t n = 0, k = 0;
	char **out;

	while (atts[2 * n])
		n++;
	*npairs = 0;
	if (n == 0)
		return NULL;
	out = xmalloc((2 * n + 1) * sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char *name = attr_name(atts[2 * i]);
		if (!name)
			continue;
		out[2 * k] = name;
		out[2 * k + 1] = xstrdup(atts[2 * i + 1]);
		k++;
	}
	out[2 * k] = NULL;
	*npairs = k;
	if (k == 0) {
		free(out);
		return NULL;
	}
	return out;
}

static void
attrs_free(char **attrs, size_t npairs)
{
	if (!attrs)
		return;
	for (size_t i = 0; i < 2 * npairs; i++)
		free(attrs[i]);
	free(attrs);
}

static struct xml_node *
el_from_expat(const XML_Char *name, const XML_Char **atts)
{
	struct xml_node *n = xcalloc(1, sizeof(*n));
	const char *sep = strchr(name, NS_SEP);

	if (sep) {
		n->ns = xstrndup(name, (size_t)(sep - name));
		n->name = xstrdup(sep + 1);
	} else {
		n->ns = xstrdup("");
		n->name = xstrdup(name);
	}
	n->attrs = attrs_convert(atts, &n->nattrs);
	return n;
}

/* Attaches pending character data to the open element as one text node. */
static void
text_flush(struct xml_stream *s)
{
	if (buf_used(&s->text) == 0)
		return;
	xml_add_text(s->cur, buf_head(&s->text), buf_used(&s->text));
	buf_reset(&s->text);
}

static void
root_open(struct xml_stream *s, const XML_Char *name, const XML_Char **atts)
{
	const char *sep = strchr(name, NS_SEP);
	char *ns = sep ? xstrndup(name, (size_t)(sep - name)) : xstrdup("");
	size_t npairs;
	char **attrs = attrs_convert(atts, &npairs);
	static const char *none[] = {NULL};

	if (s->cb.open)
		s->cb.open(s->arg, sep ? sep + 1 : name, ns, attrs ? (const char **)attrs : none,
			   s->default_ns ? s->default_ns : "");
	attrs_free(attrs, npairs);
	free(ns);
}

static void XMLCALL
on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct xml_stream *s = ud;
	struct xml_node *n;

	if (s->err)
		return;
	s->depth++;
	if (s->depth > s->max_depth) {
		stream_fail(s, XML_E_TOO_DEEP);
		return;
	}
	if (s->depth < s->base) {
		s->mark = event_end(s);
		root_open(s, name, atts);
		return;
	}
	if (s->depth == s->base) {
		XML_Index i = XML_GetCurrentByteIndex(s->p);
		s->mark = i >= 0 ? (uint64_t)i : s->fed;
	}
	if (stream_too_big(s, event_end(s)))
		return;
	n = el_from_expat(name, atts);
	if (s->cur) {
		text_flush(s);
		xml_add_child(s->cur, n);
	} else {
		s->tree = n;
	}
	s->cur = n;
}

static void XMLCALL
on_end(void *ud, const XML_Char *name)
{
	struct xml_stream *s = ud;
	struct xml_node *done;

	(void)name;
	if (s->err)
		return;
	if (s->depth < s->base) {
		s->depth--;
		s->mark = event_end(s);
		s->closed = true;
		if (s->cb.close)
			s->cb.close(s->arg);
		return;
	}
	if (stream_too_big(s, event_end(s)))
		return;
	text_flush(s);
	s->depth--;
	if (s->depth >= s->base) {
		s->cur = s->cur->parent;
		return;
	}
	done = s->tree;
	s->tree = s->cur = NULL;
	s->mark = event_end(s);
	if (s->text.cap > TEXT_KEEP)
		buf_free(&s->text);
	if (s->base == 1)
		s->result = done;
	else if (s->cb.stanza)
		s->cb.stanza(s->arg, done);
	else
		xml_free(done);
}

static void XMLCALL
on_text(void *ud, const XML_Char *data, int len)
{
	struct xml_stream *s = ud;

	if (s->err)
		return;
	if (s->depth < s->base) {
		/*
		 * Character data between stanzas (whitespace keepalives, RFC 6120 section
		 * 4.6.1) is dropped as it arrives, never buffered, so it costs nothing.
		 */
		s->mark = event_end(s);
		return;
	}
	if (stream_too_big(s, event_end(s)))
		return;
	buf_append(&s->text, data, (size_t)len);
}

static void XMLCALL
on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
	struct xml_stream *s = ud;

	/* Declarations seen before the root's start handler belong to the root. */
	if (s->err || s->depth != 0 || prefix)
		return;
	free(s->default_ns);
	s->default_ns = xstrdup(uri ? uri : "");
}

/*
 * RFC 6120 section 11.1: an XMPP stream must not contain comments, processing
 * instructions, DTD subsets or entity declarations. Expat reports the XML declaration
 * through a different handler, and a declaration anywhere but the start is already a
 * syntax error, so every PI seen here is refused.
 */
static void XMLCALL
on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
	   int has_internal_subset)
{
	stream_fail(ud, XML_E_RESTRICTED);
}

static void XMLCALL
on_entity_decl(void *ud, const XML_Char *name, int is_param, const XML_Char *value, int len,
	       const XML_Char *base, const XML_Char *sysid, const XML_Char *pubid,
	       const XML_Char *notation)
{
	stream_fail(ud, XML_E_RESTRICTED);
}

static void XMLCALL
on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
	stream_fail(ud, XML_E_RESTRICTED);
}

static void XMLCALL
on_comment(void *ud, const XML_Char *data)
{
	stream_fail(ud, XML_E_RESTRICTED);
}

static struct xml_stream *
stream_create(const struct xml_stream_cb *cb, void *arg, size_t max_stanza, int max_depth, int base)
{
	struct xml_stream *s = xcalloc(1, sizeof(*s));

	/* Forcing UTF-8 overrides any encoding declaration (RFC 6120 section 11.6). */
	s->p = XML_ParserCreateNS("UTF-8", NS_SEP);
	if (!s->p)
		fatal("out of memory creating an XML parser");
	if (cb)
		s->cb = *cb;
	s->arg = arg;
	s->max_stanza = max_stanza;
	s->max_depth = max_depth;
	s->base = base;
	XML_SetUserData(s->p, s);
	XML_SetElementHandler(s->p, on_start, on_end);
	XML_SetCharacterDataHandler(s->p, on_text);
	XML_SetStartNamespaceDeclHandler(s->p, on_ns_start);
	XML_SetStartDoctypeDeclHandler(s->p, on_doctype);
	XML_SetEntityDeclHandler(s->p, on_entity_decl);
	XML_SetProcessingInstructionHandler(s->p, on_pi);
	XML_SetCommentHandler(s->p, on_comment);
	XML_SetParamEntityParsing(s->p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
	/*
	 * Expat 2.6 may defer reparsing a token that arrives in small pieces until more
	 * input comes; a stanza whose end tag arrived must be delivered now, not when the
	 * peer next speaks (STYLE.md rule 15).
	 */
	XML_SetReparseDeferralEnabled(s->p, XML_FALSE);
#endif
	return s;
}

struct xml_stream *
xml_stream_new(const struct xml_stream_cb *cb, void *arg, size_t max_stanza, int max_depth)
{
	return stream_create(cb, arg, max_stanza, max_depth, 2);
}

void
xml_stream_set_max(struct xml_stream *s, size_t max_stanza)
{
	s->max_stanza = max_stanza;
}

/* After the root closed only whitespace may follow (RFC 6120 section 4.4). */
static int
feed_after_close(struct xml_stream *s, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] != ' ' && data[i] != '\t' && data[i] != '\r' && data[i] != '\n') {
			s->err = XML_E_CLOSED;
			return s->err;
		}
	}
	return XML_OK;
}

static int
stream_feed(struct xml_stream *s, const char *data, size_t len, bool final)
{
	if (s->busy)
		fatal("xml_stream_feed called from an xml stream callback");
	if (s->err)
		return s->err;
	if (s->closed && !final)
		return feed_after_close(s, data, len);
	do {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		bool last = final && (size_t)n == len;
		enum XML_Status st;

		s->busy = true;
		st = XML_Parse(s->p, data, n, last);
		s->busy = false;
		s->fed += (uint64_t)n;
		if (st != XML_STATUS_OK) {
			if (!s->err)
				s->err = s->closed ? XML_E_CLOSED : XML_E_SYNTAX;
			return s->err;
		}
		/*
		 * Whatever expat still holds (a partial tag, comment or text of the unit
		 * that began at mark) counts against the limit now, before the rest of it
		 * arrives; this is what keeps a huge start tag from being buffered whole.
		 */
		if (!s->closed && s->fed - s->mark > s->max_stanza) {
			s->err = XML_E_TOO_BIG;
			return s->err;
		}
		data += n;
		len -= (size_t)n;
	} while (len > 0);
	return XML_OK;
}

int
xml_stream_feed(struct xml_stream *s, const char *data, size_t len)
{
	if (len == 0)
		return s->err;
	return stream_feed(s, data, len, false);
}

const char *
xml_status_condition(int status)
{
	/* RFC 6120 section 4.9.3. */
	switch (status) {
	case XML_OK:
		return "";
	case XML_E_RESTRICTED:
		return "restricted-xml";
	case XML_E_TOO_BIG:
	case XML_E_TOO_DEEP:
		return "policy-violation";
	case XML_E_SYNTAX:
	case XML_E_CLOSED:
	default:
		return "not-well-formed";
	}
}

void
xml_stream_free(struct xml_stream *s)
{
	if (!s)
		return;
	if (s->busy)
		fatal("xml_stream_free called from an xml stream callback");
	XML_ParserFree(s->p);
	xml_free(s->tree);
	xml_free(s->result);
	buf_free(&s->text);
	free(s->default_ns);
	free(s);
}

/*
 * Lives here rather than in tree.c because it is the stream machinery with the
 * document's own root as the tree root; the limit is the input size, so only the
 * depth cap and the restrictions can refuse a document.
 */
struct xml_node *
xml_parse(const char *data, size_t n)
{
	struct xml_stream *s = stream_create(NULL, NULL, n, XML_PARSE_MAX_DEPTH, 1);
	struct xml_node *out = NULL;

	if (stream_feed(s, data, n, true) == XML_OK && s->result) {
		out = s->result;
		s->result = NULL;
	}
	xml_stream_free(s);
	return out;
}
