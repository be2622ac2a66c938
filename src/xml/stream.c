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
 *
 * Expat remembers every distinct element name, attribute name and prefix it sees for
 * the life of a parser, so a peer sending ever-new names would grow it without bound.
 * The stream therefore swaps in a fresh parser at a stanza boundary once enough name
 * bytes have gone by, priming it with a copy of the root's start tag so that prefixes
 * and the default namespace stay in scope.
 *
 * A stream's parser takes its memory from a region of its own (region.c), so that the
 * parser of a stream gone idle can be freed (xml_stream_trim) with its pages.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "xml_int.h"

/*
 * Expat joins a namespace URI, a local name and (with triplets on) a prefix with this
 * byte. XML 1.0 forbids U+0001 anywhere in a document, even as a character reference,
 * so it never occurs in a URI or a name and the split is unambiguous.
 */
#define NS_SEP	 '\x01'
#define XML_NS	 "http://www.w3.org/XML/1998/namespace"
#define XBOSH_NS "urn:xmpp:xbosh"

/* Nesting cap for xml_parse(): well above any stream's stanza_depth. */
#define XML_PARSE_MAX_DEPTH 256

/* A text buffer grown past this is released once its stanza is delivered (idle memory). */
#define TEXT_KEEP 4096

/*
 * Name bytes (elements, attributes, namespace declarations) after which the parser is
 * renewed at the next stanza end: a quarter of the stanza limit, between these bounds.
 * Expat's name tables then grow by at most a small multiple of that plus one stanza.
 * Renewing costs a few microseconds, well under 1% for ordinary traffic, which renews
 * every hundred stanzas or so after authentication.
 */
#define RENEW_NAME_MIN 512
#define RENEW_NAME_MAX 32768

struct xml_stream {
	XML_Parser p;
	struct xml_region *region; /* a stream's parser memory (region.c); NULL in xml_parse */
	bool own_region;	   /* a stream: its parsers take a region */
	struct xml_stream_cb cb;
	void *arg;
	size_t max_stanza;
	int max_depth;
	int depth;	/* elements open, the stream root included */
	int base;	/* depth of the elements that become trees: 2 in a stream, 1 in xml_parse */
	int err;	/* sticky status */
	bool closed;	/* the stream root has closed */
	bool busy;	/* inside XML_Parse: callbacks are running */
	bool priming;	/* feeding the copy of the root tag to a renewed parser */
	bool suspended; /* expat was suspended at resume_at: renew or root closed */
	/*
	 * Byte offset where the unit being read began: the start tag of the tree being
	 * built, or else the end of the last event outside any tree. Everything expat
	 * has been fed past mark belongs to that unit and counts against max_stanza.
	 */
	uint64_t mark;
	uint64_t fed;	    /* stream bytes given to expat so far */
	uint64_t resume_at; /* stream offset where expat was suspended */
	int64_t idx_base;   /* stream offset = idx_base + the current parser's byte index */
	size_t names;	    /* name bytes seen by the current parser */
	struct xml_node *tree, *cur; /* tree being built and its innermost open element */
	struct xml_node *result;     /* xml_parse(): the finished document */
	struct buf text;	     /* character data not yet attached to cur */
	struct buf decls;	     /* the root's namespace declarations, as attributes */
	char *default_ns;	     /* default namespace declared on the root, or NULL */
	char *prime;		     /* the root's start tag, rebuilt; NULL outside streams */
	size_t prime_len;
};

/* A name as expat reports it with triplets: "uri SEP local SEP prefix", parts optional. */
struct qname {
	const char *uri, *local, *prefix;
	size_t urilen, locallen;
};

static void
qname_split(const char *name, struct qname *q)
{
	const char *a = strchr(name, NS_SEP), *b;

	if (!a) {
		*q = (struct qname){"", name, NULL, 0, strlen(name)};
		return;
	}
	q->uri = name;
	q->urilen = (size_t)(a - name);
	q->local = a + 1;
	b = strchr(q->local, NS_SEP);
	q->locallen = b ? (size_t)(b - q->local) : strlen(q->local);
	q->prefix = b ? b + 1 : NULL;
}

/* Records the first error and stops expat; later handlers see s->err and do nothing. */
static void
stream_fail(struct xml_stream *s, int status)
{
	if (s->err)
		return;
	s->err = status;
	XML_StopParser(s->p, XML_FALSE);
}

/* Suspends expat just past the current event; stream_feed continues from there. */
static void
stream_suspend(struct xml_stream *s, uint64_t at)
{
	s->suspended = true;
	s->resume_at = at;
	XML_StopParser(s->p, XML_TRUE);
}

/* Stream offset just past the bytes of the event being handled. */
static uint64_t
event_end(const struct xml_stream *s)
{
	XML_Index i = XML_GetCurrentByteIndex(s->p);
	int n = XML_GetCurrentByteCount(s->p);

	if (i < 0)
		return s->fed;
	return (uint64_t)(s->idx_base + (int64_t)i + (n > 0 ? n : 0));
}

static uint64_t
event_start(const struct xml_stream *s)
{
	XML_Index i = XML_GetCurrentByteIndex(s->p);

	return i < 0 ? s->fed : (uint64_t)(s->idx_base + (int64_t)i);
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
 * XML namespace as "xml:<local>", those of XEP-0206 (xmpp:restart on a BOSH body) as
 * "xmpp:<local>". Other namespaced attributes are dropped (returns NULL): no XMPP
 * protocol defines any, and a prefix-free tree has no way to carry them that a consumer
 * would understand.
 */
static char *
attr_name(const char *name)
{
	struct qname q;
	const char *prefix;
	char *out;

	qname_split(name, &q);
	if (!q.urilen)
		return xstrndup(q.local, q.locallen);
	if (q.urilen == sizeof(XML_NS) - 1 && memcmp(q.uri, XML_NS, q.urilen) == 0)
		prefix = "xml:";
	else if (q.urilen == sizeof(XBOSH_NS) - 1 && memcmp(q.uri, XBOSH_NS, q.urilen) == 0)
		prefix = "xmpp:";
	else
		return NULL;
	out = xmalloc(q.locallen + strlen(prefix) + 1);
	memcpy(out, prefix, strlen(prefix));
	memcpy(out + strlen(prefix), q.local, q.locallen);
	out[strlen(prefix) + q.locallen] = '\0';
	return out;
}

/*
 * An element's attributes as trees carry them: name/value pointers into expat's strings,
 * names attr_name() had to build kept in own; NULL-terminated. Arrays on the stack for up
 * to ATTRS_SMALL attributes.
 */
#define ATTRS_SMALL 8
struct attr_list {
	const char *small[2 * ATTRS_SMALL + 1], **pairs;
	char *made[ATTRS_SMALL], **own;
	size_t n, nown;
};

static void
attr_list_make(struct attr_list *a, const XML_Char **atts)
{
	size_t n = 0;

	while (atts[2 * n])
		n++;
	a->pairs = a->small;
	a->own = a->made;
	a->n = a->nown = 0;
	if (n > ATTRS_SMALL) {
		a->pairs = xmalloc((2 * n + 1) * sizeof *a->pairs);
		a->own = xmalloc(n * sizeof *a->own);
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = atts[2 * i];
		if (strchr(name, NS_SEP)) {
			char *made = attr_name(name);
			if (!made)
				continue;
			a->own[a->nown++] = made;
			name = made;
		}
		a->pairs[2 * a->n] = name;
		a->pairs[2 * a->n + 1] = atts[2 * i + 1];
		a->n++;
	}
	a->pairs[2 * a->n] = NULL;
}

static void
attr_list_free(struct attr_list *a)
{
	for (size_t i = 0; i < a->nown; i++)
		free(a->own[i]);
	if (a->pairs != a->small) {
		free(a->pairs);
		free(a->own);
	}
}

/* The element in one allocation (tree.c). */
static struct xml_node *
el_from_expat(const struct qname *q, const XML_Char **atts)
{
	struct attr_list a;
	struct xml_node *el;

	attr_list_make(&a, atts);
	el = xml_el_make(q->local, q->locallen, q->uri, q->urilen, a.pairs, a.n);
	attr_list_free(&a);
	return el;
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

/* Rebuilds the root's start tag with its namespace declarations, for parser renewal. */
static void
prime_build(struct xml_stream *s, const struct qname *q)
{
	struct buf b = {0};

	buf_append(&b, "<", 1);
	if (q->prefix) {
		buf_puts(&b, q->prefix);
		buf_append(&b, ":", 1);
	}
	buf_append(&b, q->local, q->locallen);
	buf_append(&b, buf_head(&s->decls), buf_used(&s->decls));
	buf_append(&b, ">", 1);
	buf_free(&s->decls);
	s->prime_len = buf_used(&b);
	s->prime = buf_steal(&b);
}

static void
root_open(struct xml_stream *s, const struct qname *q, const XML_Char **atts)
{
	char *name = xstrndup(q->local, q->locallen);
	char *ns = xstrndup(q->uri, q->urilen);
	struct attr_list a;

	prime_build(s, q);
	attr_list_make(&a, atts);
	if (s->cb.open)
		s->cb.open(s->arg, name, ns, a.pairs, s->default_ns ? s->default_ns : "");
	attr_list_free(&a);
	free(name);
	free(ns);
}

static void XMLCALL
on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
	struct xml_stream *s = ud;
	struct xml_node *n;
	struct qname q;

	if (s->err || s->priming)
		return;
	s->depth++;
	if (s->depth > s->max_depth) {
		stream_fail(s, XML_E_TOO_DEEP);
		return;
	}
	qname_split(name, &q);
	s->names += strlen(name);
	for (size_t i = 0; atts[i]; i += 2)
		s->names += strlen(atts[i]);
	if (s->depth < s->base) {
		s->mark = event_end(s);
		root_open(s, &q, atts);
		return;
	}
	if (s->depth == s->base)
		s->mark = event_start(s);
	if (stream_too_big(s, event_end(s)))
		return;
	n = el_from_expat(&q, atts);
	if (s->cur) {
		text_flush(s);
		xml_add_child(s->cur, n);
	} else {
		s->tree = n;
	}
	s->cur = n;
}

static size_t
renew_threshold(const struct xml_stream *s)
{
	size_t t = s->max_stanza / 4;

	return t < RENEW_NAME_MIN ? RENEW_NAME_MIN : t > RENEW_NAME_MAX ? RENEW_NAME_MAX : t;
}

static void XMLCALL
on_end(void *ud, const XML_Char *name)
{
	struct xml_stream *s = ud;
	struct xml_node *done;

	if (s->err)
		return;
	if (s->depth < s->base) {
		/* The root closed: expat stops here and stream_feed checks what follows. */
		s->depth--;
		s->mark = event_end(s);
		s->closed = true;
		stream_suspend(s, s->mark);
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
	/* A stanza boundary: expat holds nothing, so this is where a renewal can happen. */
	if (s->prime && s->names > renew_threshold(s))
		stream_suspend(s, s->mark);
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

	if (s->err || s->priming)
		return;
	s->names += (prefix ? strlen(prefix) : 0) + (uri ? strlen(uri) : 0);
	/* Declarations seen before the root's start handler belong to the root. */
	if (s->depth != 0)
		return;
	if (!prefix) {
		free(s->default_ns);
		s->default_ns = xstrdup(uri ? uri : "");
		buf_puts(&s->decls, " xmlns='");
	} else {
		buf_puts(&s->decls, " xmlns:");
		buf_puts(&s->decls, prefix);
		buf_puts(&s->decls, "='");
	}
	if (uri)
		xml_escape(&s->decls, uri, strlen(uri), true);
	buf_append(&s->decls, "'", 1);
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

/* RFC 6120 11.6: UTF-8 only; declaring anything else is refused, not silently ignored. */
static void XMLCALL
on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding, int standalone)
{
	if (encoding && strcasecmp(encoding, "UTF-8") != 0)
		stream_fail(ud, XML_E_ENCODING);
}

static XML_Parser
parser_new(struct xml_stream *s)
{
	static const XML_Char nssep[] = {NS_SEP, '\0'};
	struct xml_region *prev;
	XML_Parser p;

	/* Forcing UTF-8 overrides any encoding declaration (RFC 6120 section 11.6). */
	if (!s->own_region) {
		p = XML_ParserCreateNS("UTF-8", NS_SEP);
	} else {
		if (s->region)
			region_reset(s->region);
		else
			s->region = region_get();
		prev = region_enter(s->region);
		p = XML_ParserCreate_MM("UTF-8", &region_suite, nssep);
		region_leave(prev);
	}
	if (!p)
		fatal("out of memory creating an XML parser");
	XML_SetUserData(p, s);
	XML_SetReturnNSTriplet(p, XML_TRUE);
	XML_SetElementHandler(p, on_start, on_end);
	XML_SetCharacterDataHandler(p, on_text);
	XML_SetStartNamespaceDeclHandler(p, on_ns_start);
	XML_SetStartDoctypeDeclHandler(p, on_doctype);
	XML_SetEntityDeclHandler(p, on_entity_decl);
	XML_SetProcessingInstructionHandler(p, on_pi);
	XML_SetCommentHandler(p, on_comment);
	XML_SetXmlDeclHandler(p, on_xml_decl);
	XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
	/*
	 * Expat 2.6 may defer reparsing a token that arrives in small pieces until more
	 * input comes; a stanza whose end tag arrived must be delivered now, not when the
	 * peer next speaks (STYLE.md rule 15). Renewal also relies on it: an end tag's
	 * last byte is always in the chunk being parsed when its handler runs.
	 */
	XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
	return p;
}

/* Replaces the parser at a stanza boundary (s->fed) by a fresh one inside the root. */
static void
stream_renew(struct xml_stream *s)
{
	struct xml_region *prev;
	enum XML_Status st;

	if (s->p)
		XML_ParserFree(s->p);
	s->p = parser_new(s);
	s->priming = true;
	prev = region_enter(s->region);
	st = XML_Parse(s->p, s->prime, (int)s->prime_len, XML_FALSE);
	region_leave(prev);
	if (st != XML_STATUS_OK)
		fatal("xml: a renewed parser refused the stream's own root tag");
	s->priming = false;
	s->idx_base = (int64_t)s->fed - (int64_t)s->prime_len;
	s->names = 0;
}

static struct xml_stream *
stream_create(const struct xml_stream_cb *cb, void *arg, size_t max_stanza, int max_depth, int base)
{
	struct xml_stream *s = xcalloc(1, sizeof(*s));

	/* Streams live long and go idle; a one-shot document's parser is gone at once. */
	s->own_region = base == 2;
	s->p = parser_new(s);
	if (cb)
		s->cb = *cb;
	s->arg = arg;
	s->max_stanza = max_stanza;
	s->max_depth = max_depth;
	s->base = base;
	return s;
}

bool
xml_stream_trim(struct xml_stream *s)
{
	/*
	 * Only at a stanza boundary inside the root with every byte fed turned into events:
	 * then expat holds nothing a fresh parser primed with the root tag would not have.
	 */
	if (!s->p || s->busy || s->err || s->closed || !s->prime || s->tree || s->fed != s->mark)
		return false;
	XML_ParserFree(s->p);
	s->p = NULL;
	region_put(s->region);
	s->region = NULL;
	return true;
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

/*
 * After the root closed only whitespace may follow (RFC 6120 section 4.4). These bytes
 * never reach expat, so the answer does not depend on how they were split.
 */
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
	if (s->closed)
		return feed_after_close(s, data, len);
	if (!s->p)
		stream_renew(s); /* trimmed while idle: a fresh parser inside the root */
	do {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		bool last = final && (size_t)n == len;
		uint64_t start = s->fed;
		struct xml_region *prev = region_enter(s->region);
		enum XML_Status st;

		s->busy = true;
		s->suspended = false;
		st = XML_Parse(s->p, data, n, last);
		s->busy = false;
		region_leave(prev);
		if (s->err)
			return s->err;
		if (st == XML_STATUS_ERROR) {
			s->err = XML_E_SYNTAX;
			return s->err;
		}
		if (st == XML_STATUS_SUSPENDED) {
			/* Without reparse deferral the suspending event ended in this chunk. */
			if (!s->suspended || s->resume_at <= start ||
			    s->resume_at > start + (size_t)n)
				fatal("xml: expat suspended outside the current chunk");
			size_t used = (size_t)(s->resume_at - start);
			data += used;
			len -= used;
			s->fed = s->resume_at;
			if (s->closed)
				return feed_after_close(s, data, len);
			stream_renew(s);
			continue;
		}
		s->fed = start + (size_t)n;
		/*
		 * Whatever expat still holds (a partial tag, comment or text of the unit
		 * that began at mark) counts against the limit now, before the rest of it
		 * arrives; this is what keeps a huge start tag from being buffered whole.
		 */
		if (s->fed - s->mark > s->max_stanza) {
			s->err = XML_E_TOO_BIG;
			return s->err;
		}
		data += n;
		len -= (size_t)n;
	} while (len > 0);
	return XML_OK;
}

/*
 * A NUL byte is never allowed (XML 1.0 section 2.2: U+0000 is not a Char, and the input
 * is UTF-8). It is caught here rather than by expat because expat, while it has seen
 * fewer than four bytes, takes "x\0" for the start of UTF-16 and waits for more, so its
 * verdict on the same bytes would depend on how they were split.
 */
static int
stream_feed_checked(struct xml_stream *s, const char *data, size_t len, bool final)
{
	const char *nul = len ? memchr(data, '\0', len) : NULL;
	size_t before;
	int rc;

	if (!nul)
		return stream_feed(s, data, len, final);
	before = (size_t)(nul - data);
	rc = before ? stream_feed(s, data, before, false) : s->err;
	if (rc != XML_OK)
		return rc;
	if (s->closed)
		return feed_after_close(s, nul, len - before);
	s->err = XML_E_SYNTAX;
	return s->err;
}

int
xml_stream_feed(struct xml_stream *s, const char *data, size_t len)
{
	if (s->busy)
		fatal("xml_stream_feed called from an xml stream callback");
	if (len == 0)
		return s->err;
	return stream_feed_checked(s, data, len, false);
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
	case XML_E_ENCODING:
		return "unsupported-encoding";
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
	if (s->p)
		XML_ParserFree(s->p);
	region_put(s->region);
	xml_free(s->tree);
	xml_free(s->result);
	buf_free(&s->text);
	buf_free(&s->decls);
	free(s->default_ns);
	free(s->prime);
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

	if (stream_feed_checked(s, data, n, true) == XML_OK && s->result) {
		out = s->result;
		s->result = NULL;
	}
	xml_stream_free(s);
	return out;
}
