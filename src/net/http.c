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
	struct http_reader r;
	enum http_state state;
	http_handler handler;
	void *arg;
	struct timer timer;
	void (*gone)(struct http_conn *hc, void *arg);
	void *gone_arg;
};

static void on_data(struct conn *c, void *arg);
static void on_closed(struct conn *c, void *arg, const char *reason);
static const struct conn_cb http_conn_cb = {.data = on_data, .closed = on_closed};

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

/* ---- the request reader: bytes to requests, no sockets ---- */

static struct http_reader *
reader_of(http_parser *p)
{
	return p->data;
}

/* Counts bytes against header_max; returns non-zero to stop the parser. */
static int
header_budget(struct http_reader *r, size_t n)
{
	r->header_bytes += n;
	if (r->header_bytes > r->lim.header_max) {
		r->error = 431; /* RFC 6585 5 */
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
	struct http_reader *r = reader_of(p);

	request_clear(&r->req);
	r->header_bytes = 0;
	r->in_value = false;
	return 0;
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
	struct http_reader *r = reader_of(p);

	if (header_budget(r, n))
		return 1;
	append_str(&r->req.url, at, n);
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	struct http_reader *r = reader_of(p);
	struct http_request *q = &r->req;

	if (header_budget(r, n))
		return 1;
	if (r->in_value || q->nheaders == 0) {
		if (q->nheaders == HTTP_HEADERS_MAX) {
			r->error = 431;
			return 1;
		}
		q->headers = xrealloc(q->headers, (q->nheaders + 1) * sizeof *q->headers);
		q->headers[q->nheaders++] = (struct http_header){0};
		r->in_value = false;
	}
	append_str(&q->headers[q->nheaders - 1].name, at, n);
	/* Names are case-insensitive (RFC 9110 5.1): kept in lower case, trailers too. */
	for (char *c = q->headers[q->nheaders - 1].name; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct http_reader *r = reader_of(p);
	struct http_request *q = &r->req;

	if (header_budget(r, n))
		return 1;
	r->in_value = true;
	append_str(&q->headers[q->nheaders - 1].value, at, n);
	return 0;
}

static int
on_headers_complete(http_parser *p)
{
	struct http_reader *r = reader_of(p);
	struct http_request *q = &r->req;
	struct http_parser_url u;

	for (size_t i = 0; i < q->nheaders; i++) {
		if (!q->headers[i].value)
			q->headers[i].value = xstrdup("");
	}
	/* RFC 9110 5.3: repeated fields are one list; a lookup sees all of their values. */
	for (size_t i = 0; i < q->nheaders; i++) {
		for (size_t j = i + 1; j < q->nheaders;) {
			if (strcmp(q->headers[i].name, q->headers[j].name) != 0) {
				j++;
				continue;
			}
			append_str(&q->headers[i].value, ", ", 2);
			append_str(&q->headers[i].value, q->headers[j].value,
				   strlen(q->headers[j].value));
			free(q->headers[j].name);
			free(q->headers[j].value);
			memmove(&q->headers[j], &q->headers[j + 1],
				(q->nheaders - j - 1) * sizeof *q->headers);
			q->nheaders--;
		}
	}
	/* RFC 9110 6.2: only HTTP/1.x here. */
	if (p->http_major != 1) {
		r->error = 505;
		return -1;
	}
	http_parser_url_init(&u);
	if (!q->url || http_parser_parse_url(q->url, strlen(q->url), 0, &u) != 0 ||
	    !(u.field_set & (1 << UF_PATH))) {
		r->error = 400;
		return -1;
	}
	q->path = xstrndup(q->url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	if (u.field_set & (1 << UF_QUERY))
		q->query =
		    xstrndup(q->url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
	q->method = http_method_str(p->method);
	/* A route may take larger bodies than the rest (file uploads): it says so by its head. */
	r->body_max = r->lim.body_limit ? r->lim.body_limit(q) : 0;
	if (r->body_max == 0)
		r->body_max = r->lim.body_max;
	if (p->content_length != ULLONG_MAX && p->content_length > r->body_max) {
		r->error = 413;
		return -1;
	}
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct http_reader *r = reader_of(p);

	if (buf_used(&r->req.body) + n > r->body_max) {
		r->error = 413; /* chunked bodies are only checked as they come */
		return 1;
	}
	buf_append(&r->req.body, at, n);
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct http_reader *r = reader_of(p);

	r->req.keep_alive = http_should_keep_alive(p);
	r->req.upgrade = p->upgrade;
	r->done = true;
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

void
http_reader_init(struct http_reader *r, const struct http_limits *lim)
{
	*r = (struct http_reader){.lim = *lim};
	r->parser = xmalloc(sizeof *r->parser);
	http_parser_init(r->parser, HTTP_REQUEST);
	r->parser->data = r;
}

size_t
http_reader_feed(struct http_reader *r, const char *data, size_t len)
{
	size_t n;
	enum http_errno e;

	if (r->done || r->error || len == 0)
		return 0;
	n = http_parser_execute(r->parser, &settings, data, len);
	e = HTTP_PARSER_ERRNO(r->parser);
	if (e == HPE_PAUSED) {
		/* Stopped right after the request: the byte at n is the next one's. */
		http_parser_pause(r->parser, 0);
	} else if (e != HPE_OK && !r->error) {
		r->error = 400;
	}
	if (r->error)
		return len; /* nothing after a bad request is read */
	if (!r->done && n < len)
		r->error = 400; /* an upgrade without a complete request: not HTTP we take */
	return n;
}

void
http_reader_next(struct http_reader *r)
{
	request_clear(&r->req);
	r->done = false;
}

void
http_reader_free(struct http_reader *r)
{
	request_clear(&r->req);
	free(r->parser);
	r->parser = NULL;
}

/* ---- the connection ---- */

static void
http_free(struct http_conn *hc)
{
	/* Always on the thread of the connection's loop: the one running now. */
	if (timer_armed(&hc->timer))
		timer_stop(loop_current(), &hc->timer);
	http_reader_free(&hc->r);
	free(hc);
}

static void
fail(struct http_conn *hc, int status, const char *why)
{
	log_debug("http %s: %d %s", hc->c->peer, status, why);
	hc->r.req.keep_alive = false;
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
	struct http_reader *r = &hc->r;

	while ((hc->state == HS_IDLE || hc->state == HS_READING) && buf_used(&c->in)) {
		if (hc->state == HS_IDLE) {
			/* The first byte starts the request and its clock. */
			hc->state = HS_READING;
			timer_start(c->loop, &hc->timer, r->lim.request_timeout);
		}
		buf_consume(&c->in, http_reader_feed(r, buf_head(&c->in), buf_used(&c->in)));
		if (r->error) {
			fail(hc, r->error,
			     r->error == 413   ? "request body too large\n"
			     : r->error == 431 ? "request headers too large\n"
			     : r->error == 505 ? "HTTP/1.1 only\n"
					       : "malformed request\n");
			return;
		}
		if (r->done) {
			hc->state = HS_HANDLER;
			timer_stop(c->loop, &hc->timer);
			hc->handler(hc, &r->req, hc->arg);
			return;
		}
	}
}

static void
on_data(struct conn *c, void *arg)
{
	parse(arg);
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
	http_reader_init(&hc->r, lim);
	hc->handler = handler;
	hc->arg = arg;
	hc->timer.fn = timer_fired;
	/* A connection that never starts a request is idle: it goes after idle_timeout. */
	timer_start(loop, &hc->timer, lim->idle_timeout);
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
	bool keep = hc->r.req.keep_alive && status < 400 && hc->state == HS_HANDLER;

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
	if (len && strcmp(hc->r.req.method ? hc->r.req.method : "", "HEAD") != 0)
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
	http_reader_next(&hc->r);
	timer_start(c->loop, &hc->timer, hc->r.lim.idle_timeout);
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
