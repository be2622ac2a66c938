/*
 * test_xml: unit tests of the xml module: the stream parser (events, chunking,
 * namespaces, restricted XML, limits), xml_parse, the serializer and the tree API.
 * Every stream case is run whole, one byte at a time and in random chunks, and must
 * produce the same events and status each way.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "xml/xml_int.h"

#include "check.h"

/* ---- a recorder: turns stream events into one comparable string ---- */

struct rec {
	struct buf ev;
	int nstanza, nclose;
	struct xml_stream *s; /* for callbacks that change the limit */
	size_t max_on_stanza; /* if non-zero, set as the new limit at each stanza */
};

static void
rec_open(void *arg, const char *name, const char *ns, const char **attrs, const char *default_ns)
{
	struct rec *r = arg;

	buf_printf(&r->ev, "open %s {%s} [%s]", name, ns, default_ns);
	for (size_t i = 0; attrs[i]; i += 2)
		buf_printf(&r->ev, " %s=%s", attrs[i], attrs[i + 1]);
	buf_puts(&r->ev, "\n");
}

static void
rec_stanza(void *arg, struct xml_node *el)
{
	struct rec *r = arg;

	r->nstanza++;
	if (el->parent || el->next)
		CHECK(false, "stanza handed out attached");
	xml_write(&r->ev, el, "");
	buf_puts(&r->ev, "\n");
	xml_free(el);
	if (r->max_on_stanza)
		xml_stream_set_max(r->s, r->max_on_stanza);
}

static void
rec_close(void *arg)
{
	struct rec *r = arg;

	r->nclose++;
	buf_puts(&r->ev, "close\n");
}

static const struct xml_stream_cb rec_cb = {rec_open, rec_stanza, rec_close};

static uint64_t rng = 88172645463325252ull;

static size_t
rand_below(size_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (size_t)(rng % n);
}

/*
 * Feeds in[0..n) in pieces: chunk 0 = all at once, 1 = one byte at a time, else random
 * sizes up to chunk. Stops at the first error. Returns the status; *events gets the
 * recorded events (caller frees), *fed the bytes given before the status.
 */
static int
run_stream(const char *in, size_t n, size_t chunk, size_t max, int depth, char **events,
	   size_t *fed)
{
	struct rec r = {0};
	struct xml_stream *s = xml_stream_new(&rec_cb, &r, max, depth);
	size_t off = 0;
	int rc = XML_OK;

	r.s = s;
	while (off < n) {
		size_t k = chunk == 0 ? n - off : chunk == 1 ? 1 : 1 + rand_below(chunk);
		if (k > n - off)
			k = n - off;
		rc = xml_stream_feed(s, in + off, k);
		off += k;
		if (rc != XML_OK)
			break;
	}
	if (fed)
		*fed = off;
	xml_stream_free(s);
	*events = buf_steal(&r.ev);
	return rc;
}

#define HDR                                                                                        \
	"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "    \
	"to='example.com' version='1.0' xml:lang='en'>"
#define OPEN                                                                                       \
	"open stream {http://etherx.jabber.org/streams} [jabber:client] to=example.com "           \
	"version=1.0 xml:lang=en\n"

struct stream_case {
	const char *name;
	const char *in;
	int status;
	const char *events;
};

/* Inputs with NUL bytes carry their length. */
struct nul_case {
	const char *name, *in;
	size_t len;
	int status;
	const char *events;
};

static const struct stream_case stream_cases[] = {
    {"header only", HDR, XML_OK, OPEN},
    {"xml declaration", "<?xml version='1.0' encoding='UTF-8'?>" HDR, XML_OK, OPEN},
    {"utf-8 bom", "\xef\xbb\xbf" HDR, XML_OK, OPEN},
    {"message", HDR "<message to='a@b' type='chat'><body>hi</body></message>", XML_OK,
     OPEN "<message xmlns='jabber:client' to='a@b' type='chat'><body>hi</body></message>\n"},
    {"close", HDR "<presence/></stream:stream>", XML_OK,
     OPEN "<presence xmlns='jabber:client'/>\nclose\n"},
    {"no default ns", "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><message/>",
     XML_OK, "open stream {http://etherx.jabber.org/streams} []\n<message/>\n"},
    {"unprefixed root", "<s xmlns='urn:s' a='1'><x/></s>", XML_OK,
     "open s {urn:s} [urn:s] a=1\n<x xmlns='urn:s'/>\nclose\n"},
    {"prefixed child ns", HDR "<iq type='get' id='1'><q:query xmlns:q='jabber:iq:roster'/></iq>",
     XML_OK,
     OPEN "<iq xmlns='jabber:client' type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>\n"},
    {"nested override",
     HDR "<message><x xmlns='urn:a'><y><z xmlns=''>t</z></y></x><body/></message>", XML_OK,
     OPEN "<message xmlns='jabber:client'><x xmlns='urn:a'><y><z xmlns=''>t</z></y></x>"
	  "<body/></message>\n"},
    {"prefixed stanza", HDR "<c:message xmlns:c='jabber:client'><c:body>x</c:body></c:message>",
     XML_OK, OPEN "<message xmlns='jabber:client'><body>x</body></message>\n"},
    {"namespaced attribute dropped", HDR "<message xmlns:f='urn:f' f:a='1' b='2'/>", XML_OK,
     OPEN "<message xmlns='jabber:client' b='2'/>\n"},
    {"element in the xml namespace", HDR "<xml:x><y/></xml:x>", XML_OK,
     OPEN "<xml:x><y xmlns='jabber:client'/></xml:x>\n"},
    {"xml:lang", HDR "<message xml:lang='de'><body xml:lang='fr'>x</body></message>", XML_OK,
     OPEN "<message xmlns='jabber:client' xml:lang='de'><body xml:lang='fr'>x</body></message>\n"},
    {"predefined entities",
     HDR "<message><body>a&amp;b&lt;&gt;&quot;&apos;&#x41;&#66;</body></message>", XML_OK,
     OPEN "<message xmlns='jabber:client'><body>a&amp;b&lt;&gt;\"'AB</body></message>\n"},
    {"entities in attributes", HDR "<message id='&apos;&amp;&#x3c;'/>", XML_OK,
     OPEN "<message xmlns='jabber:client' id='&apos;&amp;&lt;'/>\n"},
    {"cdata", HDR "<message><body>a<![CDATA[<b>&]]>c</body></message>", XML_OK,
     OPEN "<message xmlns='jabber:client'><body>a&lt;b&gt;&amp;c</body></message>\n"},
    {"whitespace between stanzas", HDR " \n <presence/>\t<presence/>  \r\n ", XML_OK,
     OPEN "<presence xmlns='jabber:client'/>\n<presence xmlns='jabber:client'/>\n"},
    {"text at depth 1 dropped", HDR "junk<presence/>", XML_OK,
     OPEN "<presence xmlns='jabber:client'/>\n"},
    {"4-byte utf-8", HDR "<message><body>\xf0\x9f\x98\x80</body></message>", XML_OK,
     OPEN "<message xmlns='jabber:client'><body>\xf0\x9f\x98\x80</body></message>\n"},
    {"whitespace after close", HDR "</stream:stream>  \r\n\t", XML_OK, OPEN "close\n"},
    /* RFC 6120 section 11.6: UTF-8 only, whatever the spelling of its name */
    {"utf-8 declared", "<?xml version='1.0' encoding='utf-8'?>" HDR "<presence/>", XML_OK,
     OPEN "<presence xmlns='jabber:client'/>\n"},
    {"latin-1 declared", "<?xml version='1.0' encoding='ISO-8859-1'?>" HDR, XML_E_ENCODING, ""},
    {"utf-16 declared", "<?xml version='1.0' encoding='UTF-16'?>" HDR, XML_E_ENCODING, ""},
    /* restricted XML, RFC 6120 section 11.1 */
    {"doctype", "<!DOCTYPE stream>" HDR, XML_E_RESTRICTED, ""},
    {"doctype after decl", "<?xml version='1.0'?><!DOCTYPE s SYSTEM 'x.dtd'><s/>", XML_E_RESTRICTED,
     ""},
    {"entity declaration", "<!DOCTYPE s [<!ENTITY a 'b'>]><s>&a;</s>", XML_E_RESTRICTED, ""},
    {"billion laughs",
     "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
     "<!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>"
     "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;'>"
     "<!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>]>"
     "<lolz>&lol3;</lolz>",
     XML_E_RESTRICTED, ""},
    {"pi before root", "<?xml version='1.0'?><?foo bar?>" HDR, XML_E_RESTRICTED, ""},
    {"pi in stanza", HDR "<message><?foo?></message>", XML_E_RESTRICTED, OPEN},
    {"pi between stanzas", HDR "<?foo?><message/>", XML_E_RESTRICTED, OPEN},
    {"comment before root", "<!-- hi -->" HDR, XML_E_RESTRICTED, ""},
    {"comment in stanza", HDR "<message><!-- hi --></message>", XML_E_RESTRICTED, OPEN},
    {"comment between stanzas", HDR "<presence/><!---->", XML_E_RESTRICTED,
     OPEN "<presence xmlns='jabber:client'/>\n"},
    {"undefined entity", HDR "<message>&foo;</message>", XML_E_SYNTAX, OPEN},
    {"misplaced xml declaration", HDR "<?xml version='1.0'?>", XML_E_SYNTAX, OPEN},
    /* well-formedness */
    {"mismatched tag", HDR "<message></presence>", XML_E_SYNTAX, OPEN},
    {"unbound prefix", HDR "<foo:bar/>", XML_E_SYNTAX, OPEN},
    {"duplicate attribute", HDR "<message a='1' a='2'/>", XML_E_SYNTAX, OPEN},
    {"bare ampersand", HDR "<message>a & b</message>", XML_E_SYNTAX, OPEN},
    {"lt in attribute", HDR "<message a='<'/>", XML_E_SYNTAX, OPEN},
    {"not xml", "GET / HTTP/1.1\r\n", XML_E_SYNTAX, ""},
    {"char ref zero", HDR "<message>&#0;</message>", XML_E_SYNTAX, OPEN},
    {"char ref control", HDR "<message>&#x1;</message>", XML_E_SYNTAX, OPEN},
    {"char ref surrogate", HDR "<message>&#xD800;</message>", XML_E_SYNTAX, OPEN},
    {"raw control char", HDR "<message>a\x01</message>", XML_E_SYNTAX, OPEN},
    /* invalid UTF-8 (RFC 6120 section 11.6) */
    {"lone continuation", HDR "<message>\x80</message>", XML_E_SYNTAX, OPEN},
    {"byte ff", HDR "<message>\xff</message>", XML_E_SYNTAX, OPEN},
    {"overlong slash", HDR "<message>\xc0\xaf</message>", XML_E_SYNTAX, OPEN},
    {"utf-8 surrogate", HDR "<message>\xed\xa0\x80</message>", XML_E_SYNTAX, OPEN},
    {"truncated sequence", HDR "<message>\xe2\x82</message>", XML_E_SYNTAX, OPEN},
    {"u+fffe", HDR "<message>\xef\xbf\xbe</message>", XML_E_SYNTAX, OPEN},
    {"beyond u+10ffff", HDR "<message>\xf4\x90\x80\x80</message>", XML_E_SYNTAX, OPEN},
    {"bad utf-8 in attribute", HDR "<message to='\xc3'/>", XML_E_SYNTAX, OPEN},
    {"bad utf-8 in name", HDR "<mess\xc3\x28ge/>", XML_E_SYNTAX, OPEN},
    /* after the root closed */
    {"junk after close", HDR "</stream:stream>x", XML_E_CLOSED, OPEN "close\n"},
    {"stanza after close", HDR "</stream:stream><message/>", XML_E_CLOSED, OPEN "close\n"},
    {"comment after close", HDR "</stream:stream><!---->", XML_E_CLOSED, OPEN "close\n"},
};

#define NUL_CASE(name, in, status, events)                                                         \
	{                                                                                          \
		name, in, sizeof(in) - 1, status, events                                           \
	}
static const struct nul_case nul_cases[] = {
    NUL_CASE("nul byte", HDR "<message>a\0b</message>", XML_E_SYNTAX, OPEN),
    /* expat alone would wait on these, guessing at UTF-16 */
    NUL_CASE("nul at start", "u\0\0", XML_E_SYNTAX, ""),
    NUL_CASE("nul second", "<\0", XML_E_SYNTAX, ""),
    NUL_CASE("nul after stanza", HDR "<a/>\0", XML_E_SYNTAX, OPEN "<a xmlns='jabber:client'/>\n"),
    NUL_CASE("nul after close", HDR "</stream:stream>\0", XML_E_CLOSED, OPEN "close\n"),
};

static void
check_case(const char *name, const char *in, size_t n, int status, const char *events)
{
	static const size_t chunks[] = {0, 1, 3, 7, 64};

	for (size_t j = 0; j < ARRAY_LEN(chunks); j++) {
		char *ev;
		int rc = run_stream(in, n, chunks[j], 1 << 16, 16, &ev, NULL);
		CHECK(rc == status, "%s (chunk %zu): status %d, want %d", name, chunks[j], rc,
		      status);
		CHECK(strcmp(ev, events) == 0, "%s (chunk %zu): events\n%s\nwant\n%s", name,
		      chunks[j], ev, events);
		free(ev);
	}
}

static void
test_stream_cases(void)
{
	for (size_t i = 0; i < ARRAY_LEN(stream_cases); i++) {
		const struct stream_case *c = &stream_cases[i];
		check_case(c->name, c->in, strlen(c->in), c->status, c->events);
	}
	for (size_t i = 0; i < ARRAY_LEN(nul_cases); i++) {
		const struct nul_case *c = &nul_cases[i];
		check_case(c->name, c->in, c->len, c->status, c->events);
	}
}

/* A longer realistic stream, split at every possible point and in random pieces. */
static void
test_chunking_identical(void)
{
	const char *in =
	    "<?xml version='1.0'?>" HDR "<iq type='set' id='b1'><bind "
	    "xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r\xc3\xa9s</resource></bind></iq>"
	    "\n<message to='juliet@example.com' id='m&amp;1' xml:lang='en'><body>Wherefore "
	    "&lt;art&gt; thou\r\n\xe2\x82\xac<![CDATA[ <x> ]]></body><active "
	    "xmlns='http://jabber.org/protocol/chatstates'/></message> "
	    "<presence><show>away</show><c xmlns='http://jabber.org/protocol/caps' "
	    "hash='sha-1' node='n' ver='v='/></presence></stream:stream>";
	size_t n = strlen(in);
	char *want, *ev;
	size_t split_bad = 0;

	CHECK(run_stream(in, n, 0, 1 << 16, 16, &want, NULL) == XML_OK, "whole stream failed");
	CHECK(strstr(want, "close\n") != NULL, "no close event: %s", want);
	for (size_t k = 1; k < n; k++) {
		/* two pieces split at k */
		struct rec r = {0};
		struct xml_stream *s = xml_stream_new(&rec_cb, &r, 1 << 16, 16);
		int rc = xml_stream_feed(s, in, k);
		if (rc == XML_OK)
			rc = xml_stream_feed(s, in + k, n - k);
		xml_stream_free(s);
		ev = buf_steal(&r.ev);
		if (rc != XML_OK || strcmp(ev, want) != 0)
			split_bad++;
		free(ev);
	}
	CHECK(split_bad == 0, "%zu two-piece splits differ from the whole feed", split_bad);
	for (int seed = 0; seed < 200; seed++) {
		int rc = run_stream(in, n, 1 + (size_t)seed % 40, 1 << 16, 16, &ev, NULL);
		CHECK(rc == XML_OK && strcmp(ev, want) == 0, "random chunking %d differs:\n%s",
		      seed, ev);
		free(ev);
	}
	free(want);
}

/*
 * Expat 2.6+ may defer reparsing of a token that arrives in small pieces. A stanza
 * must be delivered when its last byte is fed, not when the peer next sends something.
 */
static void
test_no_deferral(void)
{
	const char *st = "<message to='a@b'><body>hello</body></message>";
	struct rec r = {0};
	struct xml_stream *s = xml_stream_new(&rec_cb, &r, 1 << 16, 16);
	size_t n = strlen(st);
	bool early = false;

	CHECK(xml_stream_feed(s, HDR, strlen(HDR)) == XML_OK, "header");
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < n; i++) {
			CHECK(xml_stream_feed(s, st + i, 1) == XML_OK, "byte %zu", i);
			if (i + 1 < n && r.nstanza != round)
				early = true;
		}
		CHECK(r.nstanza == round + 1, "round %d: stanza not delivered at its last byte",
		      round);
	}
	CHECK(!early, "stanza delivered before its end tag");
	CHECK(xml_stream_feed(s, "</stream:stream>", 16) == XML_OK && r.nclose == 1,
	      "close not delivered at once");
	xml_stream_free(s);
	buf_free(&r.ev);
}

/*
 * Expat keeps every distinct name it has seen; the stream renews its parser at stanza
 * boundaries so that a peer inventing names cannot grow memory. Renewal must be
 * invisible: prefixes and the default namespace of the root stay in scope, the root's
 * end tag still matches, and chunking does not change anything.
 */
static void
test_renewal(void)
{
	const char *hdr = "<s:stream xmlns='urn:a&amp;b&lt;' xmlns:s='urn:s' xmlns:p='urn:p'>";
	struct buf in = {0}, want = {0};
	char *ev;
	int rc;

	buf_puts(&in, hdr);
	buf_puts(&want, "open stream {urn:s} [urn:a&b<]\n");
	for (int i = 0; i < 20000; i++) {
		buf_printf(&in, "<m%d a%d='%d'><p:x/><s:y q:z='1' xmlns:q='urn:q%d'/></m%d>\n", i,
			   i, i, i, i);
		buf_printf(&want,
			   "<m%d xmlns='urn:a&amp;b&lt;' a%d='%d'><x xmlns='urn:p'/>"
			   "<y xmlns='urn:s'/></m%d>\n",
			   i, i, i, i);
	}
	buf_puts(&in, "</s:stream>");
	buf_puts(&want, "close\n");
	static const size_t chunks[] = {0, 1, 7, 1000};
	for (size_t j = 0; j < ARRAY_LEN(chunks); j++) {
		rc = run_stream(buf_head(&in), buf_used(&in), chunks[j], 1 << 16, 16, &ev, NULL);
		CHECK(rc == XML_OK && strcmp(ev, buf_head(&want)) == 0,
		      "renewal (chunk %zu): status %d, %zu bytes of events, want %zu", chunks[j],
		      rc, strlen(ev), buf_used(&want));
		free(ev);
	}
	buf_free(&want);

	/* Memory stays bounded while 100000 stanzas bring 100000 new names. */
	struct rec r = {0};
	struct xml_stream *s = xml_stream_new(&rec_cb, &r, 1 << 16, 16);
	rc = xml_stream_feed(s, hdr, strlen(hdr));
	size_t before = mallinfo2().uordblks, peak = 0;
	for (int i = 0; i < 100000 && rc == XML_OK; i++) {
		char m[128];
		int k = snprintf(m, sizeof m, "<e%d n%d='1' xmlns:x%d='urn:x'/>", i, i, i);
		rc = xml_stream_feed(s, m, (size_t)k);
		if (i % 1000 == 0) {
			buf_free(&r.ev);
			size_t now = mallinfo2().uordblks;
			if (now > before && now - before > peak)
				peak = now - before;
		}
	}
	CHECK(rc == XML_OK && r.nstanza == 100000, "new names: status %d, %d stanzas", rc,
	      r.nstanza);
	CHECK(peak < 1000000, "parser memory grew by %zu bytes with new names", peak);
	xml_stream_free(s);
	buf_free(&r.ev);
	buf_free(&in);
}

static void
test_depth(void)
{
	static const struct {
		const char *in;
		int depth, status;
	} cases[] = {
	    {HDR "<a><b><c/></b></a>", 4, XML_OK},
	    {HDR "<a><b><c><d/></c></b></a>", 4, XML_E_TOO_DEEP},
	    {HDR "<a/>", 2, XML_OK},
	    {HDR "<a><b/></a>", 2, XML_E_TOO_DEEP},
	    {HDR, 1, XML_OK},
	    {HDR "<a/>", 1, XML_E_TOO_DEEP},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *ev;
		int rc = run_stream(cases[i].in, strlen(cases[i].in), 1, 1 << 16, cases[i].depth,
				    &ev, NULL);
		CHECK(rc == cases[i].status, "depth case %zu: %d want %d", i, rc, cases[i].status);
		free(ev);
	}
	/* A deep tree is refused as it opens, before it ends. */
	struct buf b = {0};
	buf_puts(&b, HDR);
	for (int i = 0; i < 100000; i++)
		buf_puts(&b, "<a>");
	char *ev;
	size_t fed;
	int rc = run_stream(buf_head(&b), buf_used(&b), 100, 1 << 30, 32, &ev, &fed);
	CHECK(rc == XML_E_TOO_DEEP && fed < strlen(HDR) + 40 * 3 + 200,
	      "deep nesting: status %d after %zu bytes", rc, fed);
	free(ev);
	buf_free(&b);
}

/* Builds HDR + <message><body>text of tlen bytes</body></message>. */
static char *
big_stanza(size_t tlen, size_t *stanza_len, size_t *total)
{
	struct buf b = {0};
	size_t start;

	buf_puts(&b, HDR);
	start = buf_used(&b);
	buf_puts(&b, "<message><body>");
	memset(buf_space(&b, tlen), 'x', tlen);
	buf_commit(&b, tlen);
	buf_puts(&b, "</body></message>");
	*stanza_len = buf_used(&b) - start;
	*total = buf_used(&b);
	return buf_steal(&b);
}

static void
test_size_limit(void)
{
	size_t slen, total, fed;
	char *ev, *in;
	int rc;

	/* The limit is exact: a stanza of exactly max bytes passes, one more byte fails. */
	in = big_stanza(1000, &slen, &total);
	static const size_t chunks[] = {0, 1, 13};
	for (size_t j = 0; j < ARRAY_LEN(chunks); j++) {
		rc = run_stream(in, total, chunks[j], slen, 16, &ev, NULL);
		CHECK(rc == XML_OK && strstr(ev, "<body>") != NULL,
		      "stanza at the limit refused (chunk %zu): %d", chunks[j], rc);
		free(ev);
		rc = run_stream(in, total, chunks[j], slen - 1, 16, &ev, NULL);
		CHECK(rc == XML_E_TOO_BIG && strstr(ev, "<body>") == NULL,
		      "stanza over the limit accepted (chunk %zu): %d", chunks[j], rc);
		free(ev);
	}
	free(in);

	/* 1 MB stanza fed in 4 KB chunks with a 16 KB limit: refused long before its end. */
	in = big_stanza(1 << 20, &slen, &total);
	rc = run_stream(in, total, 4096, 16384, 16, &ev, &fed);
	CHECK(rc == XML_E_TOO_BIG, "1 MB stanza: status %d", rc);
	CHECK(fed <= strlen(HDR) + 16384 + 4096, "1 MB stanza refused only after %zu bytes", fed);
	free(ev);
	/* ... and the same when it all arrives in one feed. */
	rc = run_stream(in, total, 0, 16384, 16, &ev, NULL);
	CHECK(rc == XML_E_TOO_BIG, "1 MB stanza in one feed: status %d", rc);
	free(ev);
	free(in);

	/* Tokens expat buffers whole: a huge attribute, a huge root tag, a huge comment. */
	static const struct {
		const char *name, *prefix;
	} toks[] = {
	    {"attribute", HDR "<message to='"},
	    {"root tag", "<stream:stream xmlns='jabber:client' id='"},
	    {"comment", HDR "<!--"},
	    {"cdata", HDR "<message><![CDATA["},
	    {"tag name", HDR "<m"},
	};
	for (size_t i = 0; i < ARRAY_LEN(toks); i++) {
		struct buf b = {0};
		buf_puts(&b, toks[i].prefix);
		memset(buf_space(&b, 1 << 20), 'y', 1 << 20);
		buf_commit(&b, 1 << 20);
		rc = run_stream(buf_head(&b), buf_used(&b), 1000, 16384, 16, &ev, &fed);
		CHECK(rc == XML_E_TOO_BIG && fed <= strlen(toks[i].prefix) + 16384 + 1000,
		      "huge %s: status %d after %zu bytes", toks[i].name, rc, fed);
		free(ev);
		buf_free(&b);
	}

	/* Whitespace keepalives never count: 200000 of them against a 100-byte limit. */
	struct rec r = {0};
	struct xml_stream *s = xml_stream_new(&rec_cb, &r, 100, 16);
	rc = xml_stream_feed(s, HDR, strlen(HDR));
	for (int i = 0; i < 100000 && rc == XML_OK; i++)
		rc = xml_stream_feed(s, i % 2 ? " " : "\n", 1);
	for (int i = 0; i < 1000 && rc == XML_OK; i++)
		rc = xml_stream_feed(s, "                                                   ", 50);
	if (rc == XML_OK)
		rc = xml_stream_feed(s, "<presence/>", 11);
	CHECK(rc == XML_OK && r.nstanza == 1, "keepalives counted against the limit: %d", rc);
	xml_stream_free(s);
	buf_free(&r.ev);
}

static void
test_set_max(void)
{
	size_t slen, total;
	char *in = big_stanza(200, &slen, &total);
	struct rec r = {0};
	struct xml_stream *s;
	int rc;

	/* Raised after the header (e.g. after authentication): the big stanza passes. */
	s = xml_stream_new(&rec_cb, &r, 100, 16);
	rc = xml_stream_feed(s, in, strlen(HDR));
	xml_stream_set_max(s, slen);
	if (rc == XML_OK)
		rc = xml_stream_feed(s, in + strlen(HDR), total - strlen(HDR));
	CHECK(rc == XML_OK && r.nstanza == 1, "raised limit not applied: %d", rc);
	xml_stream_free(s);
	buf_reset(&r.ev);

	/* Lowered from inside the stanza callback: applies to the next stanza. */
	r.nstanza = 0;
	s = xml_stream_new(&rec_cb, &r, 1 << 16, 16);
	r.s = s;
	r.max_on_stanza = 20;
	rc = xml_stream_feed(s, in, total);
	CHECK(rc == XML_OK && r.nstanza == 1, "first stanza: %d", rc);
	rc = xml_stream_feed(s, "<presence type='unavailable'/>", 30);
	CHECK(rc == XML_E_TOO_BIG && r.nstanza == 1, "lowered limit not applied: %d", rc);
	/* The error is sticky. */
	rc = xml_stream_feed(s, "<a/>", 4);
	CHECK(rc == XML_E_TOO_BIG && r.nstanza == 1, "error not sticky: %d", rc);
	xml_stream_free(s);
	buf_free(&r.ev);
	free(in);
}

static void
test_sticky_and_misc(void)
{
	struct rec r = {0};
	struct xml_stream *s = xml_stream_new(&rec_cb, &r, 1 << 16, 16);

	CHECK(xml_stream_feed(s, "", 0) == XML_OK, "empty feed");
	CHECK(xml_stream_feed(s, HDR "<a>&bad;", strlen(HDR) + 8) == XML_E_SYNTAX, "syntax");
	CHECK(xml_stream_feed(s, "</a><b/>", 8) == XML_E_SYNTAX, "syntax not sticky");
	CHECK(xml_stream_feed(s, "", 0) == XML_E_SYNTAX, "empty feed after error");
	CHECK(r.nstanza == 0, "stanza after error");
	xml_stream_free(s);
	buf_free(&r.ev);

	/* Freeing with a partial tree and pending text leaks nothing (run under ASan). */
	s = xml_stream_new(&rec_cb, &r, 1 << 16, 16);
	xml_stream_feed(s, HDR "<message a='1'><body>partial text", strlen(HDR) + 33);
	xml_stream_free(s);
	buf_free(&r.ev);
	xml_stream_free(NULL);

	/* Null callbacks are allowed; stanzas are then dropped. */
	struct xml_stream_cb none = {0};
	s = xml_stream_new(&none, NULL, 1 << 16, 16);
	CHECK(xml_stream_feed(s, HDR "<a/></stream:stream>", strlen(HDR) + 20) == XML_OK,
	      "null callbacks");
	xml_stream_free(s);

	static const struct {
		int st;
		const char *cond;
	} conds[] = {
	    {XML_E_SYNTAX, "not-well-formed"},	 {XML_E_RESTRICTED, "restricted-xml"},
	    {XML_E_TOO_BIG, "policy-violation"}, {XML_E_TOO_DEEP, "policy-violation"},
	    {XML_E_CLOSED, "not-well-formed"},
	};
	for (size_t i = 0; i < ARRAY_LEN(conds); i++)
		CHECK(strcmp(xml_status_condition(conds[i].st), conds[i].cond) == 0,
		      "condition of %d", conds[i].st);
}

/* The built tree: one merged text node per run, resolved namespaces, parent links. */
static void
test_tree_shape(void)
{
	const char *doc = "<message xmlns='jabber:client' xmlns:x='urn:x'><body>a<![CDATA[b]]>c"
			  "&amp;d</body><x:e/>tail</message>";
	struct xml_node *got = xml_parse(doc, strlen(doc));

	CHECK(got != NULL, "parse");
	if (!got)
		return;
	struct xml_node *body = xml_child(got, "body", "jabber:client");
	CHECK(body && body->first && body->first == body->last && !body->first->name,
	      "text not merged into one node");
	if (body && body->first)
		CHECK(body->first->len == 5 && strcmp(body->first->text, "abc&d") == 0, "text %s",
		      body->first->text);
	CHECK(body && body->parent == got, "parent link");
	struct xml_node *e = xml_child(got, "e", NULL);
	CHECK(e && strcmp(e->ns, "urn:x") == 0 && e->parent == got, "prefixed child");
	CHECK(xml_child(got, "e", "jabber:client") == NULL, "namespace filter");
	CHECK(xml_next(body, NULL, NULL) == e && xml_next(e, NULL, NULL) == NULL, "xml_next");
	char *t = xml_text(got);
	CHECK(strcmp(t, "tail") == 0, "xml_text %s", t);
	free(t);
	t = xml_text(e);
	CHECK(strcmp(t, "") == 0, "xml_text of empty");
	free(t);
	xml_free(got);
}

/* ---- xml_parse ---- */

static void
test_parse(void)
{
	static const struct {
		const char *in;
		bool ok;
	} cases[] = {
	    {"<a/>", true},
	    {"<?xml version='1.0' encoding='utf-8'?>\n<a/>\n", true},
	    {"<a xmlns='urn:a'><b/>t</a>", true},
	    {"", false},
	    {"   ", false},
	    {"text", false},
	    {"<a>", false},
	    {"<a/><b/>", false},
	    {"<a/>junk", false},
	    {"<!--c--><a/>", false},
	    {"<a><!--c--></a>", false},
	    {"<?pi?><a/>", false},
	    {"<!DOCTYPE a><a/>", false},
	    {"<a>&ent;</a>", false},
	    {"<a>\xff</a>", false},
	    {"<p:a/>", false},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct xml_node *n = xml_parse(cases[i].in, strlen(cases[i].in));
		CHECK((n != NULL) == cases[i].ok, "xml_parse(%s): %s", cases[i].in,
		      n ? "accepted" : "refused");
		xml_free(n);
	}
	/* Length is honoured: bytes past n are not read. */
	struct xml_node *n = xml_parse("<a/><b/>", 4);
	CHECK(n && strcmp(n->name, "a") == 0, "xml_parse with explicit length");
	xml_free(n);
	/* Depth cap: 200 levels parse, 1000 do not. */
	for (int depth = 200; depth <= 1000; depth += 800) {
		struct buf b = {0};
		for (int i = 0; i < depth; i++)
			buf_puts(&b, "<d>");
		for (int i = 0; i < depth; i++)
			buf_puts(&b, "</d>");
		n = xml_parse(buf_head(&b), buf_used(&b));
		CHECK((n != NULL) == (depth == 200), "depth %d: %s", depth, n ? "ok" : "refused");
		xml_free(n);
		buf_free(&b);
	}
}

/* ---- writing ---- */

static void
test_escape(void)
{
	static const struct {
		const char *in;
		bool attr;
		const char *out;
	} cases[] = {
	    {"plain", false, "plain"},
	    {"", false, ""},
	    {"a&b<c>d", false, "a&amp;b&lt;c&gt;d"},
	    {"'\"", false, "'\""},
	    {"'\"", true, "&apos;&quot;"},
	    {"&&", true, "&amp;&amp;"},
	    {"]]>", false, "]]&gt;"},
	    {"a\r\nb", false, "a&#xD;\nb"},
	    {"a\tb\nc\rd", true, "a&#x9;b&#xA;c&#xD;d"},
	    {"\xc3\xa9<", true, "\xc3\xa9&lt;"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct buf b = {0};
		buf_puts(&b, "pre:");
		xml_escape(&b, cases[i].in, strlen(cases[i].in), cases[i].attr);
		CHECK(strncmp(buf_head(&b), "pre:", 4) == 0 &&
			  strcmp(buf_head(&b) + 4, cases[i].out) == 0,
		      "escape(%s, %d) = %s, want %s", cases[i].in, cases[i].attr, buf_head(&b) + 4,
		      cases[i].out);
		buf_free(&b);
	}
}

static void
test_write(void)
{
	struct xml_node *m = xml_el_new("message", "jabber:client");
	struct buf b = {0};

	xml_set_attr(m, "to", "a@b/c");
	xml_set_attr(m, "xml:lang", "en");
	xml_set_attr(m, "xmlns", "urn:bogus"); /* never written: the writer owns xmlns */
	struct xml_node *body = xml_add_el(m, "body", NULL);
	xml_add_text(body, "1 < 2 & 'q'", 11);
	xml_add_el(m, "x", "urn:x");
	struct xml_node *e = xml_add_el(m, "e", "");
	xml_add_el(e, "f", NULL);

	xml_write(&b, m, "jabber:client");
	CHECK(strcmp(buf_head(&b),
		     "<message to='a@b/c' xml:lang='en'><body>1 &lt; 2 &amp; 'q'</body>"
		     "<x xmlns='urn:x'/><e xmlns=''><f/></e></message>") == 0,
	      "write in scope: %s", buf_head(&b));
	buf_reset(&b);
	xml_write(&b, m, "");
	CHECK(strncmp(buf_head(&b), "<message xmlns='jabber:client' to=", 34) == 0,
	      "write out of scope: %s", buf_head(&b));
	buf_reset(&b);
	xml_write(&b, body, "jabber:client");
	CHECK(strcmp(buf_head(&b), "<body>1 &lt; 2 &amp; 'q'</body>") == 0, "subtree: %s",
	      buf_head(&b));
	buf_reset(&b);
	xml_write(&b, body->first, "");
	CHECK(strcmp(buf_head(&b), "1 &lt; 2 &amp; 'q'") == 0, "text node: %s", buf_head(&b));
	buf_free(&b);
	xml_free(m);
}

static void
test_round_trip(void)
{
	static const char *docs[] = {
	    "<message xmlns='jabber:client' to='a@b' xml:lang='en'><body>hi &amp; &lt;bye&gt;"
	    "</body></message>",
	    "<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:roster' ver='1'>"
	    "<item jid='x@y' name='&apos;q&quot; &#x9;&#xA;&#xD;'><group>G</group></item>"
	    "</query></iq>",
	    "<a xmlns='urn:a'><b xmlns=''><c xmlns='urn:a'/>text\r\nmore&#xD;</b>]]&gt;</a>",
	    "<x>\xf0\x9f\x98\x80 \xe2\x82\xac \t  </x>",
	    "<p:a xmlns:p='urn:p' xmlns:q='urn:q'><q:b/><p:c/></p:a>",
	    "<a xmlns='urn:a'><xml:b xml:lang='en'><c/></xml:b><xml:d/></a>",
	};
	for (size_t i = 0; i < ARRAY_LEN(docs); i++) {
		struct xml_node *a = xml_parse(docs[i], strlen(docs[i]));
		CHECK(a != NULL, "round trip %zu: parse", i);
		if (!a)
			continue;
		struct buf w1 = {0}, w2 = {0};
		xml_write(&w1, a, "");
		struct xml_node *b = xml_parse(buf_head(&w1), buf_used(&w1));
		CHECK(b != NULL, "round trip %zu: reparse of %s", i, buf_head(&w1));
		if (b) {
			xml_write(&w2, b, "");
			CHECK(strcmp(buf_head(&w1), buf_head(&w2)) == 0, "round trip %zu:\n%s\n%s",
			      i, buf_head(&w1), buf_head(&w2));
		}
		/* The copy serializes identically. */
		struct xml_node *c = xml_copy(a);
		buf_reset(&w2);
		xml_write(&w2, c, "");
		CHECK(strcmp(buf_head(&w1), buf_head(&w2)) == 0, "copy %zu differs", i);
		xml_free(a);
		xml_free(b);
		xml_free(c);
		buf_free(&w1);
		buf_free(&w2);
	}
	/* Specific values survive: CR, tabs in attributes, quotes. */
	struct xml_node *a = xml_parse(docs[1], strlen(docs[1]));
	struct xml_node *item = a ? xml_child(xml_child(a, "query", NULL), "item", NULL) : NULL;
	CHECK(item && strcmp(xml_attr(item, "name"), "'q\" \t\n\r") == 0, "attr value");
	xml_free(a);
}

/* ---- tree API ---- */

static char *
attrs_str(const struct xml_node *el)
{
	struct buf b = {0};
	for (size_t i = 0; i < el->nattrs; i++)
		buf_printf(&b, "%s=%s;", el->attrs[2 * i], el->attrs[2 * i + 1]);
	if (el->attrs)
		CHECK(el->attrs[2 * el->nattrs] == NULL, "attrs not NULL-terminated");
	return buf_steal(&b);
}

static void
test_attrs(void)
{
	static const struct {
		const char *name, *value, *want;
	} steps[] = {
	    {"a", "1", "a=1;"},		{"b", "2", "a=1;b=2;"},
	    {"c", "3", "a=1;b=2;c=3;"}, {"b", "two", "a=1;b=two;c=3;"},
	    {"b", NULL, "a=1;c=3;"},	{"zz", NULL, "a=1;c=3;"},
	    {"a", NULL, "c=3;"},	{"c", NULL, ""},
	    {"d", "", "d=;"},
	};
	struct xml_node *el = xml_el_new("x", NULL);

	CHECK(strcmp(el->ns, "") == 0, "xml_el_new NULL ns");
	CHECK(xml_attr(el, "a") == NULL, "attr on empty");
	for (size_t i = 0; i < ARRAY_LEN(steps); i++) {
		xml_set_attr(el, steps[i].name, steps[i].value);
		char *s = attrs_str(el);
		CHECK(strcmp(s, steps[i].want) == 0, "set_attr step %zu: %s want %s", i, s,
		      steps[i].want);
		free(s);
	}
	CHECK(xml_attr(el, "d") && strcmp(xml_attr(el, "d"), "") == 0, "empty value");
	xml_free(el);
}

/*
 * A parsed element holds its name, namespace and attributes in its own block; changing it
 * later must neither move nor free what is still in use (run under ASan to mean it).
 */
static void
test_node_blocks(void)
{
	struct buf big = {0}, w = {0};
	const char *in =
	    "<message xmlns='jabber:client' to='b@d' id='m1' type='chat' xml:lang='en'>"
	    "<body>hi</body></message>";
	struct xml_node *m = xml_parse(in, strlen(in)), *cp, *many;
	const char *to, *id;
	char *s;

	CHECK(m != NULL, "parse");
	if (!m)
		return;
	to = xml_attr(m, "to");
	id = xml_attr(m, "id");
	xml_set_attr(m, "from", "a@d/r"); /* the pointer array moves out of the block */
	xml_set_attr(m, "type", "normal");
	xml_set_attr(m, "from", "a@d/s");
	CHECK(to == xml_attr(m, "to") && strcmp(to, "b@d") == 0 && strcmp(id, "m1") == 0,
	      "values read before a change stay where they were");
	xml_set_attr(m, "id", NULL);
	xml_set_attr(m, "to", "c@d");
	s = attrs_str(m);
	CHECK(strcmp(s, "to=c@d;type=normal;xml:lang=en;from=a@d/s;") == 0, "attrs %s", s);
	free(s);
	xml_add_text(m->first, " there", 6); /* merges into the body's block text */
	xml_add_text(m->first, "!", 1);
	xml_rename_ns(m, "jabber:client", "jabber:server");
	cp = xml_copy(m);
	xml_write(&w, cp, "jabber:server");
	CHECK(strcmp(buf_head(&w), "<message to='c@d' type='normal' xml:lang='en' from='a@d/s'>"
				   "<body>hi there!</body></message>") == 0,
	      "copy of a changed tree: %s", buf_head(&w));
	xml_free(cp);
	xml_free(m);

	/* More attributes than the parser's stack arrays hold. */
	buf_puts(&big, "<x xmlns='urn:x'");
	for (int i = 0; i < 40; i++)
		buf_printf(&big, " a%d='v%d'", i, i);
	buf_puts(&big, " xml:space='keep'/>");
	many = xml_parse(buf_head(&big), buf_used(&big));
	CHECK(many && many->nattrs == 41 && strcmp(xml_attr(many, "a39"), "v39") == 0 &&
		  strcmp(xml_attr(many, "xml:space"), "keep") == 0,
	      "41 attributes parsed");
	if (many) {
		cp = xml_copy(many);
		CHECK(cp->nattrs == 41 && strcmp(xml_attr(cp, "a0"), "v0") == 0, "41 copied");
		xml_free(cp);
	}
	xml_free(many);
	buf_free(&big);
	buf_free(&w);
}

static void
test_detach_copy(void)
{
	struct xml_node *r = xml_el_new("r", "urn:r");
	struct xml_node *a = xml_add_el(r, "a", NULL);
	struct xml_node *b = xml_add_el(r, "b", NULL);
	struct xml_node *c = xml_add_el(r, "c", NULL);
	struct buf w = {0};

	CHECK(strcmp(a->ns, "urn:r") == 0, "xml_add_el inherits ns");
	xml_add_text(a, "x", 1);
	xml_add_text(a, "y", 1);
	xml_add_text(a, "", 0);
	CHECK(a->first == a->last && strcmp(a->first->text, "xy") == 0, "xml_add_text merges");

	struct xml_node *cp = xml_copy(r);
	CHECK(cp->parent == NULL && cp != r, "copy detached");

	xml_detach(b); /* middle */
	CHECK(r->first == a && a->next == c && r->last == c && !b->parent && !b->next,
	      "detach middle");
	xml_detach(c); /* last */
	CHECK(r->last == a && a->next == NULL, "detach last");
	xml_detach(a); /* first and only */
	CHECK(r->first == NULL && r->last == NULL, "detach only");
	xml_detach(a); /* no parent: no-op */
	xml_add_child(r, c);
	xml_add_child(r, b);
	xml_add_child(r, a);
	xml_write(&w, r, "");
	CHECK(strcmp(buf_head(&w), "<r xmlns='urn:r'><c/><b/><a>xy</a></r>") == 0, "re-added: %s",
	      buf_head(&w));
	buf_reset(&w);
	xml_write(&w, cp, "");
	CHECK(strcmp(buf_head(&w), "<r xmlns='urn:r'><a>xy</a><b/><c/></r>") == 0,
	      "copy unaffected: %s", buf_head(&w));
	/* A copy of a subtree is detached and complete. */
	struct xml_node *sub = xml_copy(cp->first);
	CHECK(sub->parent == NULL && sub->next == NULL && sub->first && !sub->first->name,
	      "subtree copy");
	xml_free(sub);
	xml_free(cp);
	xml_free(r);
	xml_free(NULL);
	buf_free(&w);
}

/* Trimming an idle stream frees the parser; the next bytes parse as if nothing happened. */
static void
test_trim(void)
{
	struct rec r = {0};
	struct xml_stream *s = xml_stream_new(&rec_cb, &r, 1 << 16, 16);
	const char *hdr = "<s:stream xmlns='jabber:client' xmlns:s='urn:s' xmlns:p='urn:p'>";

	r.s = s;
	CHECK(!xml_stream_trim(s), "trimmed before the root opened");
	xml_stream_feed(s, hdr, strlen(hdr));
	xml_stream_feed(s, "<m id='1'><p:x/></m>", 20);
	CHECK(xml_stream_trim(s), "not trimmed at a stanza boundary");
	CHECK(!xml_stream_trim(s), "trimmed twice");
	CHECK(xml_stream_feed(s, "<m id='2'><p:x/>", 16) == XML_OK, "feed after trim");
	CHECK(!xml_stream_trim(s), "trimmed inside a stanza");
	CHECK(xml_stream_feed(s, "</m> <m id='3'/", 15) == XML_OK, "feed");
	CHECK(!xml_stream_trim(s), "trimmed with a partial tag held");
	CHECK(xml_stream_feed(s, ">", 1) == XML_OK, "feed the tag's end");
	xml_stream_trim(s);
	CHECK(xml_stream_feed(s, "<bad></m>", 9) != XML_OK, "bad XML after trim not caught");
	CHECK(r.nstanza == 3, "%d stanzas", r.nstanza);
	CHECK(strstr(buf_head(&r.ev), "<m xmlns='jabber:client' id='2'><x xmlns='urn:p'/></m>") !=
		  NULL,
	      "prefixes lost across a trim: %s", buf_head(&r.ev));
	xml_stream_free(s);
	buf_free(&r.ev);
	/* xml_parse() documents are never trimmed. */
}

/*
 * A stream parser's memory comes from its region (region.c): blocks are bump-allocated
 * until the region is full, then from malloc; released regions read back as zeros.
 */
static void
test_regions(void)
{
	const XML_Memory_Handling_Suite *m = &region_suite;
	struct xml_region *r = region_get(), *prev = region_enter(r);
	char *a = m->malloc_fcn(100), *b = m->malloc_fcn(200), *c, *big;
	struct rec rec = {0};
	struct xml_stream *s;
	struct buf stanza = {0};
	char *blocks[100];
	size_t n;

	CHECK(a && b && b > a && b - a < 200, "blocks not next to each other in the region");
	memset(a, 'a', 100);
	memset(b, 'b', 200);
	c = m->realloc_fcn(b, 400); /* the newest block grows in place */
	CHECK(c == b && c[199] == 'b', "newest block moved or lost its bytes");
	c = m->realloc_fcn(a, 300); /* an older one moves, with its bytes */
	CHECK(c != a && c[0] == 'a' && c[99] == 'a', "older block's bytes lost in realloc");
	m->free_fcn(c);
	CHECK(m->malloc_fcn(300) == c, "the newest block's space not reused after its free");
	big = m->malloc_fcn(64 * 1024); /* larger than a region: from malloc */
	CHECK(big != NULL, "no large block");
	memset(big, 'x', 64 * 1024);
	big = m->realloc_fcn(big, 128 * 1024);
	CHECK(big && big[64 * 1024 - 1] == 'x', "large block lost bytes");
	m->free_fcn(big);
	for (n = 0; n < 100 && (blocks[n] = m->malloc_fcn(1000)) != NULL; n++)
		memset(blocks[n], 'z', 1000);
	CHECK(n == 100, "allocation failed when the region filled up");
	for (size_t i = 0; i < n; i++)
		m->free_fcn(blocks[i]);
	m->free_fcn(NULL);
	region_leave(prev);
	a = m->malloc_fcn(16);
	CHECK(a != NULL, "no block outside a region");
	m->free_fcn(a);
	region_put(r);
	xml_regions_release();
	r = region_get();
	prev = region_enter(r);
	a = m->malloc_fcn(100);
	CHECK(a && a[0] == 0 && a[99] == 0, "a released region's pages still held old bytes");
	region_leave(prev);
	region_put(r);

	/* A stanza larger than a region parses, across a trim, with its bytes intact. */
	s = xml_stream_new(&rec_cb, &rec, 1 << 20, 16);
	xml_stream_feed(s, "<s:stream xmlns='jabber:client' xmlns:s='urn:s'>", 48);
	buf_puts(&stanza, "<m>");
	for (int i = 0; i < 8000; i++)
		buf_printf(&stanza, "<i n='%d'>t%d</i>", i, i);
	buf_puts(&stanza, "</m>");
	CHECK(xml_stream_feed(s, buf_head(&stanza), buf_used(&stanza)) == XML_OK, "big stanza");
	CHECK(xml_stream_trim(s), "not trimmed after the big stanza");
	xml_regions_release();
	CHECK(xml_stream_feed(s, buf_head(&stanza), buf_used(&stanza)) == XML_OK &&
		  rec.nstanza == 2 &&
		  strstr(buf_head(&rec.ev), "<i n='7999'>t7999</i></m>") != NULL,
	      "big stanza after a trim: %d stanzas", rec.nstanza);
	xml_stream_free(s);
	buf_free(&stanza);
	buf_free(&rec.ev);
}

int
main(void)
{
	test_stream_cases();
	test_chunking_identical();
	test_no_deferral();
	test_renewal();
	test_trim();
	test_regions();
	test_depth();
	test_size_limit();
	test_set_max();
	test_sticky_and_misc();
	test_tree_shape();
	test_parse();
	test_escape();
	test_write();
	test_round_trip();
	test_attrs();
	test_node_blocks();
	test_detach_copy();
	return check_summary("test_xml");
}
