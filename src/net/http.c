/*
 * http: the server side of HTTP/1.1 (RFC 9112) over a conn, parsed by http-parser: one
 * request at a time per connection, keep-alive, limits on headers and bodies, time limits
 * for slow senders and idle connections, and responses that may come much later (a BOSH
 * request is held until there is something to say).
 *
 * Invariant: a connection has at most one request outstanding. Input that follows it
 * (pipelined requests) stays in the buffer, unparsed, until http_respond(); the handler
 * answers every request exactly once, unless the connection is gone first, which the
 * gone callback says, after which the handler forgets the request.
 */
#include <http_parser.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

#define HTTP_HEADERS_MAX 100

enum http_state {
	HS_IDLE,    /* between requests */
	HS_READING, /* a request started */
	HS_HANDLER, /* complete; the handler has it */
	HS_CLOSING, /* answered with close, or failed */
};

struct http_conn {
	struct conn *c;
	http_parser parser;
	enum http_state state;
	struct http_limits lim;
	http_handler handler;
	void *arg;
	struct http_request req;
	size_t header_bytes;
	bool in_value; /* the parser is inside a header value */
	int error;     /* a status to answer with once parsing stops (400, 413, 431) */
	struct timer timer;
	void (*gone)(struct http_conn *hc, void *arg);
	void *gone_arg;
};

static void on_data(struct conn *c, void *arg);
static void on_closed(struct conn *c, void *arg, const char *reason);
static const struct conn_cb http_conn_cb = {on_data, on_closed};

static const char *
reason_phrase(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

static void
request_clear(struct http_request *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->url);
	buf_free(&r->body);
	free(r->path);
	free(r->query);
	*r = (struct http_request){0};
}

static void
http_free(struct http_conn *hc)
{
	/* Always on the thread of the connection's loop: the one running now. */
	if (timer_armed(&hc->timer))
		timer_stop(loop_current(), &hc->timer);
	request_clear(&hc->req);
	free(hc);
}

/* ---- parser callbacks ---- */

static struct http_conn *
hc_of(http_parser *p)
{
	return p->data;
}

/* Counts bytes against header_max; returns non-zero to stop the parser. */
static int
header_budget(struct http_conn *hc, size_t n)
{
	hc->header_bytes += n;
	if (hc->header_bytes > hc->lim.header_max) {
		hc->error = 431; /* RFC 6585 5 */
		return 1;
	}
	return 0;
}

static void
append_str(char **s, const char *at, size_t n)
{
	size_t old = *s ? strlen(*s) : 0;

	*s = xrealloc(*s, old + n + 1);
	memcpy(*s + old, at, n);
	(*s)[old + n] = '\0';
}

static int
on_message_begin(http_parser *p)
{
	struct http_conn *hc = hc_of(p);

	request_clear(&hc->req);
	hc->header_bytes = 0;
	hc->in_value = false;
	if (hc->state == HS_IDLE) {
		hc->state = HS_READING;
		timer_start(hc->c->loop, &hc->timer, hc->lim.request_timeout);
	}
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
	struct http_conn *hc = hc_of(p);

	if (header_budget(hc, n))
		return 1;
	append_str(&hc->req.url, at, n);
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	struct http_conn *hc = hc_of(p);
	struct http_request *r = &hc->req;

	if (header_budget(hc, n))
		return 1;
	if (hc->in_value || r->nheaders == 0) {
		if (r->nheaders == HTTP_HEADERS_MAX) {
			hc->error = 431;
			return 1;
		}
		r->headers = xrealloc(r->headers, (r->nheaders + 1) * sizeof *r->headers);
		r->headers[r->nheaders++] = (struct http_header){0};
		hc->in_value = false;
	}
	append_str(&r->headers[r->nheaders - 1].name, at, n);
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct http_conn *hc = hc_of(p);
	struct http_request *r = &hc->req;

	if (header_budget(hc, n))
		return 1;
	hc->in_value = true;
	append_str(&r->headers[r->nheaders - 1].value, at, n);
	return 0;
}

static int
on_headers_complete(http_parser *p)
{
	struct http_conn *hc = hc_of(p);
	struct http_request *r = &hc->req;
	struct http_parser_url u;

	for (size_t i = 0; i < r->nheaders; i++) {
		for (char *c = r->headers[i].name; *c; c++)
			*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
		if (!r->headers[i].value)
			r->headers[i].value = xstrdup("");
	}
	/* RFC 9110 5.3: repeated fields are one list; a lookup sees all of their values. */
	for (size_t i = 0; i < r->nheaders; i++) {
		for (size_t j = i + 1; j < r->nheaders;) {
			if (strcmp(r->headers[i].name, r->headers[j].name) != 0) {
				j++;
				continue;
			}
			append_str(&r->headers[i].value, ", ", 2);
			append_str(&r->headers[i].value, r->headers[j].value,
				   strlen(r->headers[j].value));
			free(r->headers[j].name);
			free(r->headers[j].value);
			memmove(&r->headers[j], &r->headers[j + 1],
				(r->nheaders - j - 1) * sizeof *r->headers);
			r->nheaders--;
		}
	}
	/* RFC 9110 6.2: only HTTP/1.x here. */
	if (p->http_major != 1) {
		hc->error = 505;
		return -1;
	}
	if (p->content_length != ULLONG_MAX && p->content_length > hc->lim.body_max) {
		hc->error = 413;
		return -1;
	}
	http_parser_url_init(&u);
	if (!r->url || http_parser_parse_url(r->url, strlen(r->url), 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH))) {
		hc->error = 400;
		return -1;
	}
	r->path = xstrndup(r->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	if (u.field_set & (1 << UF_QUERY))
		r->query =
		    xstrndup(r->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
	r->method = http_method_str(p->method);
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct http_conn *hc = hc_of(p);

	if (buf_used(&hc->req.body) + n > hc->lim.body_max) {
		hc->error = 413; /* chunked bodies are only checked as they come */
		return 1;
	}
	buf_append(&hc->req.body, at, n);
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct http_conn *hc = hc_of(p);

	hc->req.keep_alive = http_should_keep_alive(p);
	hc->req.upgrade = p->upgrade;
	hc->state = HS_HANDLER;
	http_parser_pause(p, 1); /* one request at a time */
	return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the connection ---- */

static void
fail(struct http_conn *hc, int status, const char *why)
{
	log_debug("http %s: %d %s", hc->c->peer, status, why);
	hc->req.keep_alive = false;
	hc->state = HS_HANDLER;
	http_respond(hc, status, "Content-Type: text/plain; charset=utf-8\r\n", why, strlen(why));
}

static void
timer_fired(struct timer *t)
{
	struct http_conn *hc = container_of(t, struct http_conn, timer);

	if (hc->state == HS_READING) {
		fail(hc, 408, "request not received in time\n");
	} else if (hc->state == HS_IDLE) {
		struct conn *c = hc->c;
		hc->state = HS_CLOSING;
		conn_close(c);
		http_free(hc);
	}
}

/* Parses what is buffered until a request is complete (then hands it over) or input ends. */
static void
parse(struct http_conn *hc)
{
	struct conn *c = hc->c;

	while (hc->state == HS_IDLE || hc->state == HS_READING) {
		size_t avail = buf_used(&c->in), n;
		enum http_errno e;

		if (avail == 0)
			return;
		n = http_parser_execute(&hc->parser, &settings, buf_head(&c->in), avail);
		e = HTTP_PARSER_ERRNO(&hc->parser);
		if (e == HPE_PAUSED) {
			/* Stopped right after the request: the byte at n is the next one's. */
			http_parser_pause(&hc->parser, 0);
		} else if (e != HPE_OK || hc->error) {
			buf_consume(&c->in, avail);
			fail(hc, hc->error ? hc->error : 400,
			     hc->error == 413	? "request body too large\n"
			     : hc->error == 431 ? "request headers too large\n"
			     : hc->error == 505 ? "HTTP/1.1 only\n"
						: "malformed request\n");
			return;
		}
		buf_consume(&c->in, n);
		if (hc->state == HS_HANDLER) {
			timer_stop(c->loop, &hc->timer);
			hc->handler(hc, &hc->req, hc->arg);
			return;
		}
		if (n < avail && !hc->parser.upgrade)
			return; /* cannot happen with http-parser; be safe against a loop */
		if (hc->parser.upgrade)
			return;
	}
}

static void
on_data(struct conn *c, void *arg)
{
	struct http_conn *hc = arg;

	if (hc->state == HS_IDLE && buf_used(&c->in))
		timer_stop(c->loop, &hc->timer);
	parse(hc);
}

static void
on_closed(struct conn *c, void *arg, const char *reason)
{
	struct http_conn *hc = arg;

	timer_stop(c->loop, &hc->timer);
	conn_close(c);
	if (hc->state == HS_HANDLER && hc->gone)
		hc->gone(hc, hc->gone_arg);
	if (hc->state == HS_HANDLER && !hc->gone) {
		/* The handler still owns the request: it answers into nothing, then we free. */
		hc->state = HS_CLOSING;
		hc->c = NULL;
		return;
	}
	http_free(hc);
}

struct http_conn *
http_accept(struct loop *loop, int lfd, const struct http_limits *lim, http_handler handler,
	    void *arg)
{
	struct http_conn *hc = xcalloc(1, sizeof *hc);
	struct conn *c = conn_accept(loop, lfd, NULL, &http_conn_cb, hc);

	if (!c) {
		free(hc);
		return NULL;
	}
	hc->c = c;
	hc->lim = *lim;
	hc->handler = handler;
	hc->arg = arg;
	hc->timer.fn = timer_fired;
	http_parser_init(&hc->parser, HTTP_REQUEST);
	hc->parser.data = hc;
	timer_start(loop, &hc->timer, lim->request_timeout);
	return hc;
}

const char *
http_header(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		if (strcmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	}
	return NULL;
}

void
http_on_gone(struct http_conn *hc, void (*gone)(struct http_conn *hc, void *arg), void *arg)
{
	hc->gone = gone;
	hc->gone_arg = arg;
}

void
http_respond(struct http_conn *hc, int status, const char *headers, const char *body, size_t len)
{
	struct conn *c = hc->c;
	struct buf b = {0};
	bool keep = hc->req.keep_alive && status < 400 && hc->state == HS_HANDLER;

	if (hc->state == HS_CLOSING || !c) { /* the connection went away meanwhile */
		http_free(hc);
		return;
	}
	buf_printf(&b, "HTTP/1.1 %d %s\r\nServer: baton\r\nContent-Length: %zu\r\n", status,
		   reason_phrase(status), len);
	buf_puts(&b, keep ? "" : "Connection: close\r\n");
	if (headers)
		buf_puts(&b, headers);
	buf_puts(&b, "\r\n");
	conn_write(c, buf_head(&b), buf_used(&b));
	/* RFC 9110 9.3.2: a HEAD response has the headers of the GET, not the body. */
	if (len && strcmp(hc->req.method ? hc->req.method : "", "HEAD") != 0)
		conn_write(c, body, len);
	buf_free(&b);
	hc->gone = NULL;
	if (!keep) {
		hc->state = HS_CLOSING;
		conn_close(c);
		http_free(hc);
		return;
	}
	hc->state = HS_IDLE;
	timer_start(c->loop, &hc->timer, hc->lim.idle_timeout);
	parse(hc); /* a pipelined request may be waiting */
}

struct conn *
http_take(struct http_conn *hc, const char *headers)
{
	struct conn *c = hc->c;
	struct buf b = {0};

	buf_printf(&b, "HTTP/1.1 101 Switching Protocols\r\nServer: baton\r\n%s\r\n",
		   headers ? headers : "");
	conn_write(c, buf_head(&b), buf_used(&b));
	buf_free(&b);
	timer_stop(c->loop, &hc->timer);
	http_free(hc);
	return c;
}

const char *
http_peer(const struct http_conn *hc)
{
	return hc->c ? hc->c->peer : "?";
}

bool
net_is_loopback(const char *peer)
{
	return strncmp(peer, "127.", 4) == 0 || strncmp(peer, "[::1]", 5) == 0 ||
	       strncmp(peer, "[::ffff:127.", 12) == 0;
}

void
http_detach(struct http_conn *hc)
{
	timer_stop(hc->c->loop, &hc->timer);
	conn_detach(hc->c);
}

void
http_attach(struct http_conn *hc, struct loop *loop)
{
	conn_attach(hc->c, loop);
}
