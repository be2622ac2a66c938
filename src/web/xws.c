/*
 * xws: XMPP over WebSocket (RFC 7395) at /xmpp-websocket. Each WebSocket message is one
 * element; <open/> and <close/> of the framing namespace stand for the stream header and
 * its end. The client session sees an ordinary stream: <open/> becomes the header its
 * parser expects, and what it writes goes out one element per message.
 *
 * Invariant: once the session released the transport (release), the WebSocket is closed
 * and nothing here touches the session again; while the WebSocket lives, so does x.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web_int.h"

struct xws {
	struct ws *ws;
	struct session *s;
	bool secure;
	struct buf out; /* scratch for one framed element */
};

/* ---- the transport the session writes to ---- */

static void
xws_open(void *t, const char *id, const char *from, const char *to)
{
	struct xws *x = t;
	struct buf b = {0};

	/* RFC 7395 3.4: the server's <open/> carries what a stream header would. */
	buf_puts(&b, "<open xmlns='" NS_FRAMING "'");
	c2s_stream_attrs(&b, id, from, to);
	buf_puts(&b, "/>");
	ws_send(x->ws, buf_head(&b), buf_used(&b));
	buf_free(&b);
}

static void
xws_element(void *t, const char *data, size_t len)
{
	struct xws *x = t;

	/* RFC 7395 3.3.3: every message is a complete element with its namespaces. */
	buf_reset(&x->out);
	c2s_frame_element(&x->out, data, len);
	ws_send(x->ws, buf_head(&x->out), buf_used(&x->out));
}

static void
xws_end(void *t)
{
	struct xws *x = t;
	static const char close_el[] = "<close xmlns='" NS_FRAMING "'/>";

	/* RFC 7395 3.6: the stream ends with <close/>; then the WebSocket closes. */
	ws_send(x->ws, close_el, sizeof close_el - 1);
}

static void
xws_release(void *t)
{
	struct xws *x = t;

	ws_close(x->ws, 1000);
	buf_free(&x->out);
	free(x);
}

static size_t
xws_pending(void *t)
{
	return ws_pending(((struct xws *)t)->ws);
}

static void
xws_pause(void *t, bool paused)
{
	ws_pause(((struct xws *)t)->ws, paused);
}

static void
xws_detach(void *t)
{
	ws_detach(((struct xws *)t)->ws);
}

static void
xws_attach(void *t, struct loop *loop)
{
	ws_attach(((struct xws *)t)->ws, loop);
}

static bool
xws_secure(void *t)
{
	return ((struct xws *)t)->secure;
}

static const char *
xws_peer(void *t)
{
	return ws_peer(((struct xws *)t)->ws);
}

static const struct c2s_transport xws_transport = {
    .name = "websocket",
    .open = xws_open,
    .element = xws_element,
    .end = xws_end,
    .release = xws_release,
    .pending = xws_pending,
    .pause = xws_pause,
    .detach = xws_detach,
    .attach = xws_attach,
    .secure = xws_secure,
    .starttls = NULL, /* RFC 7395 3.7: TLS is the WebSocket's (wss:), not the stream's */
    .peer = xws_peer,
};

/* ---- what the client sends ---- */

/* Is data (after blanks) a start tag named name? */
static bool
starts_with_tag(const char *data, size_t len, const char *name)
{
	size_t n = strlen(name);

	while (len && (*data == ' ' || *data == '\t' || *data == '\r' || *data == '\n'))
		data++, len--;
	return len > n + 1 && data[0] == '<' && memcmp(data + 1, name, n) == 0 &&
	       strchr(" \t\r\n/>", data[n + 1]);
}

static void
xws_message(struct ws *ws, void *arg, const char *data, size_t len)
{
	struct xws *x = arg;
	struct xml_node *el = NULL;

	if (starts_with_tag(data, len, "open") || starts_with_tag(data, len, "close"))
		el = xml_parse(data, len);
	if (el && strcmp(el->ns, NS_FRAMING) == 0 && strcmp(el->name, "open") == 0) {
		/* RFC 7395 3.4: a new stream (first, or after TLS-less SASL success). */
		struct buf b = {0};
		web_stream_header(&b, xml_attr(el, "to"), xml_attr(el, "version"));
		xml_free(el);
		c2s_input(x->s, buf_head(&b), buf_used(&b));
		buf_free(&b);
		return;
	}
	if (el && strcmp(el->ns, NS_FRAMING) == 0 && strcmp(el->name, "close") == 0) {
		xml_free(el);
		c2s_input(x->s, "</stream:stream>", 16);
		return;
	}
	xml_free(el);
	/* Anything else is an element of the stream; the session judges it. */
	c2s_input(x->s, data, len);
}

static void
xws_closed(struct ws *ws, void *arg, const char *reason)
{
	struct xws *x = arg;

	c2s_transport_lost(x->s, reason);
}

static const struct ws_cb xws_cb = {xws_message, xws_closed};

void
xws_handle(struct worker *w, struct http_conn *hc, struct http_request *req)
{
	const struct config *cfg = worker_config(w);
	struct xws *x;
	char accept[32];
	int status;

	if (!web_origin_ok(cfg, req)) {
		web_error(hc, 403, "origin not allowed\n");
		return;
	}
	if ((status = ws_check_upgrade(req, accept)) != 0) {
		static const char text[] = "this is an XMPP WebSocket endpoint (RFC 7395)\n";
		/* RFC 6455 4.4: say which version we speak. */
		http_respond(hc, status,
			     "Content-Type: text/plain; charset=utf-8\r\n"
			     "Sec-WebSocket-Version: 13\r\n",
			     text, sizeof text - 1);
		return;
	}
	/* RFC 7395 3.1: the client asks for the xmpp subprotocol; we speak nothing else. */
	if (!http_token_in(http_header(req, "sec-websocket-protocol"), "xmpp")) {
		web_error(hc, 400, "the WebSocket subprotocol must be xmpp\n");
		return;
	}
	x = xcalloc(1, sizeof *x);
	x->secure = web_secure(cfg, http_peer(hc));
	/* A message is one stanza: the stanza limit plus room for the framing. */
	x->ws = ws_start(hc, accept, "xmpp", cfg->stanza_size + 1024, &xws_cb, x);
	x->s = c2s_open(w, &xws_transport, x);
	log_debug("websocket from %s", ws_peer(x->ws));
}
