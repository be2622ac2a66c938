/*
 * web: the HTTP router of batond. Each worker accepts HTTP connections from the shared
 * listener and hands every request to the handler of its path.
 *
 * Invariant: every request gets exactly one answer: its handler's, or 404/405 here.
 */
#include <stdio.h>
#include <string.h>

#include "web_int.h"

static struct http_limits limits;

bool
web_origin_ok(const struct config *cfg, const struct http_request *req)
{
	const char *origin = http_header(req, "origin");
	const char *list = cfg->http_origins;
	size_t n;

	/* Clients that are not web pages send no Origin (RFC 6455 10.2). */
	if (!origin || strcmp(list, "*") == 0)
		return true;
	n = strlen(origin);
	while (*list) {
		size_t len;
		list += strspn(list, " ");
		len = strcspn(list, " ");
		if (len == n && strncmp(list, origin, n) == 0)
			return true;
		list += len;
	}
	return false;
}

bool
web_secure(const struct config *cfg, const char *peer)
{
	if (strcmp(cfg->http_secure, "true") == 0)
		return true;
	if (strcmp(cfg->http_secure, "loopback") == 0)
		return net_is_loopback(peer);
	return false;
}

void
web_error(struct http_conn *hc, int status, const char *text)
{
	http_respond(hc, status, "Content-Type: text/plain; charset=utf-8\r\n", text, strlen(text));
}

void
web_stream_header(struct buf *out, const char *to, const char *version)
{
	buf_puts(out, "<stream:stream xmlns='" NS_CLIENT "' xmlns:stream='" NS_STREAM "'");
	if (to) {
		buf_puts(out, " to='");
		xml_escape(out, to, strlen(to), true);
		buf_puts(out, "'");
	}
	if (version) {
		buf_puts(out, " version='");
		xml_escape(out, version, strlen(version), true);
		buf_puts(out, "'");
	}
	buf_puts(out, ">");
}

static void
route(struct http_conn *hc, struct http_request *req, void *arg)
{
	struct worker *w = worker_current();
	const char *p = req->path;

	if (strcmp(p, "/xmpp-websocket") == 0) {
		xws_handle(w, hc, req);
	} else if (strcmp(p, "/http-bind") == 0 || strcmp(p, "/http-bind/") == 0) {
		bosh_handle(w, hc, req);
	} else {
		web_error(hc, 404, "not found\n");
	}
}

static void
web_accept(struct worker *w, int fd)
{
	/* A bounded batch per wake-up, as for c2s, so one busy listener cannot starve a loop. */
	for (int i = 0; i < 64; i++) {
		if (!http_accept(worker_loop(w), fd, &limits, route, NULL))
			break;
	}
}

void
web_register(const struct config *cfg)
{
	limits = (struct http_limits){
	    .header_max = cfg->http_header_max,
	    .body_max = cfg->http_body_max,
	    .request_timeout = cfg->http_request_timeout,
	    .idle_timeout = cfg->http_idle_timeout,
	};
	if (*cfg->http_listen)
		server_add_listener(cfg->http_listen, web_accept);
}
