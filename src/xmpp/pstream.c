/*
 * pstream: the plumbing of streams with other servers and components (s2s.c, component.c):
 * a connection, its parser, the stream header the peer sent, the elements parsed but not yet
 * handled, and stream errors. Client streams have their own (c2s.c): they move between
 * workers and carry sessions; these streams stay where they were accepted or opened.
 *
 * Invariant: nothing is handled inside an expat callback. pstream_input() only parses; the owner
 * then takes the header and the elements in order with pstream_next(), so it may restart the
 * stream or close it between any two elements.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

static void
on_open(void *arg, const char *name, const char *ns, const char **attrs, const char *default_ns)
{
	struct pstream *p = arg;

	if (p->header.open)
		return;
	p->header.open = true;
	p->header.root_ok = strcmp(name, "stream") == 0 && strcmp(ns, NS_STREAM) == 0;
	p->header.ns = xstrdup(default_ns);
	for (size_t i = 0; attrs && attrs[i]; i += 2) {
		char **field = !strcmp(attrs[i], "from")      ? &p->header.from
			       : !strcmp(attrs[i], "to")      ? &p->header.to
			       : !strcmp(attrs[i], "id")      ? &p->header.id
			       : !strcmp(attrs[i], "version") ? &p->header.version
							      : NULL;
		if (field && !*field)
			*field = xstrdup(attrs[i + 1]);
	}
	p->header.fresh = true;
}

static void
on_stanza(void *arg, struct xml_node *el)
{
	struct pstream *p = arg;

	el->next = NULL;
	if (p->q_tail)
		p->q_tail->next = el;
	else
		p->q_head = el;
	p->q_tail = el;
}

static void
on_close(void *arg)
{
	struct pstream *p = arg;
	p->peer_closed = true;
}

static const struct xml_stream_cb pstream_parser_cb = {on_open, on_stanza, on_close};

static void
header_clear(struct pstream *p)
{
	free(p->header.from);
	free(p->header.to);
	free(p->header.id);
	free(p->header.version);
	free(p->header.ns);
	memset(&p->header, 0, sizeof p->header);
}

static void
queue_clear(struct pstream *p)
{
	while (p->q_head) {
		struct xml_node *el = p->q_head;
		p->q_head = el->next;
		el->next = NULL;
		xml_free(el);
	}
	p->q_tail = NULL;
}

void
pstream_init(struct pstream *p, struct conn *c, size_t max_stanza, int max_depth)
{
	p->c = c;
	p->max_stanza = max_stanza;
	p->max_depth = max_depth;
	p->parser = xml_stream_new(&pstream_parser_cb, p, max_stanza, max_depth);
}

void
pstream_restart(struct pstream *p)
{
	queue_clear(p);
	header_clear(p);
	xml_stream_free(p->parser);
	p->parser = xml_stream_new(&pstream_parser_cb, p, p->max_stanza, p->max_depth);
	p->parse_error = XML_OK;
	p->peer_closed = false;
}

void
pstream_input(struct pstream *p)
{
	size_t n = buf_used(&p->c->in);
	int r = xml_stream_feed(p->parser, buf_head(&p->c->in), n);

	buf_consume(&p->c->in, n);
	if (r != XML_OK && !p->parse_error)
		p->parse_error = r;
}

struct xml_node *
pstream_next(struct pstream *p)
{
	struct xml_node *el = p->q_head;

	if (!el)
		return NULL;
	p->q_head = el->next;
	if (!p->q_head)
		p->q_tail = NULL;
	el->next = NULL;
	return el;
}

void
pstream_write(struct pstream *p, const char *text)
{
	if (p->c)
		conn_write(p->c, text, strlen(text));
}

void
pstream_send(struct pstream *p, struct xml_node *st, const char *ns)
{
	struct buf b = {0};

	/* Internally stanzas are jabber:client; on this stream they are in its namespace. */
	xml_rename_ns(st, NS_CLIENT, ns);
	xml_write(&b, st, ns);
	xml_rename_ns(st, ns, NS_CLIENT);
	if (p->c)
		conn_write(p->c, buf_head(&b), buf_used(&b));
	buf_free(&b);
}

void
pstream_open(struct pstream *p, const char *ns, const char *from, const char *to, const char *id)
{
	struct buf b = {0};

	buf_printf(
	    &b, "<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='" NS_STREAM "'", ns);
	if (strcmp(ns, NS_SERVER) == 0)
		buf_puts(&b, " xmlns:db='" NS_DIALBACK "'");
	if (from) {
		buf_puts(&b, " from='");
		xml_escape(&b, from, strlen(from), true);
		buf_puts(&b, "'");
	}
	if (to) {
		buf_puts(&b, " to='");
		xml_escape(&b, to, strlen(to), true);
		buf_puts(&b, "'");
	}
	if (id)
		buf_printf(&b, " id='%s'", id);
	buf_puts(&b, strcmp(ns, NS_SERVER) == 0 ? " version='1.0'>" : ">");
	pstream_write(p, buf_head(&b));
	buf_free(&b);
}

void
pstream_error(struct pstream *p, const char *condition, const char *text)
{
	struct buf b = {0};

	buf_printf(&b, "<stream:error><%s xmlns='" NS_STREAMS "'/>", condition);
	if (text) {
		buf_puts(&b, "<text xmlns='" NS_STREAMS "'>");
		xml_escape(&b, text, strlen(text), false);
		buf_puts(&b, "</text>");
	}
	buf_puts(&b, "</stream:error></stream:stream>");
	pstream_write(p, buf_head(&b));
	buf_free(&b);
}

void
pstream_free(struct pstream *p)
{
	queue_clear(p);
	header_clear(p);
	xml_stream_free(p->parser);
	p->parser = NULL;
	if (p->c)
		conn_close(p->c);
	p->c = NULL;
}
