/*
 * web: the HTTP router of batond. Each worker accepts HTTP connections from the shared
 * listener and hands every request to the handler of its path.
 *
 * Invariant: every request gets exactly one answer: its handler's, or 404/405 here.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../upload/upload.h"
#include "web_int.h"

#define WEB_RETRY_MS 1	   /* a request for a moving object looks again after this */
#define WEB_TRIES    10000 /* ... but not forever */

static struct http_limits limits;

/* ---- the registry of session objects, shared by the workers ---- */

struct entry {
	void *obj;
	struct worker *w; /* NULL while moving */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hmap registry; /* key -> struct entry */

void
web_obj_put(const char *key, void *obj, struct worker *w)
{
	struct entry *e = xmalloc(sizeof *e);

	e->obj = obj;
	e->w = w;
	pthread_mutex_lock(&reg_lock);
	free(hmap_put(&registry, key, e));
	pthread_mutex_unlock(&reg_lock);
}

void
web_obj_move(const char *key, struct worker *w)
{
	pthread_mutex_lock(&reg_lock);
	struct entry *e = hmap_get(&registry, key);
	if (e)
		e->w = w;
	pthread_mutex_unlock(&reg_lock);
}

void
web_obj_del(const char *key)
{
	pthread_mutex_lock(&reg_lock);
	free(hmap_del(&registry, key));
	if (registry.count == 0)
		hmap_free(&registry);
	pthread_mutex_unlock(&reg_lock);
}

/* The object's worker (NULL while moving) and the object; false if there is none. */
static bool
reg_lookup(const char *key, struct worker **w, void **obj)
{
	struct entry *e;

	pthread_mutex_lock(&reg_lock);
	e = hmap_get(&registry, key);
	if (e) {
		*w = e->w;
		*obj = e->obj;
	}
	pthread_mutex_unlock(&reg_lock);
	return e != NULL;
}

/*
 * A request on its way to its object's worker. The connection cannot leave its loop
 * from inside its own callback, so it departs from a mail to the same loop and arrives
 * through a mail to the object's; for an object that is moving it looks again shortly.
 */
struct moving {
	struct mail mail;
	struct timer retry;
	struct worker *to;
	char *key;
	struct http_conn *hc;
	struct http_request *req;
	web_obj_fn fn;
	void *arg;
	unsigned tries;
};

static void dispatch(struct worker *w, struct moving *m);

static void
arrive(struct loop *loop, struct mail *mail)
{
	struct moving *m = container_of(mail, struct moving, mail);

	http_attach(m->hc, loop);
	dispatch(loop_data(loop), m);
}

static void
depart(struct loop *loop, struct mail *mail)
{
	struct moving *m = container_of(mail, struct moving, mail);

	http_detach(m->hc);
	m->mail.fn = arrive;
	loop_post(worker_loop(m->to), &m->mail);
}

static void
retry_fired(struct timer *t)
{
	dispatch(worker_current(), container_of(t, struct moving, retry));
}

static void
dispatch(struct worker *w, struct moving *m)
{
	struct worker *home = NULL;
	void *obj = NULL;
	bool found = reg_lookup(m->key, &home, &obj);

	if (found && !home && ++m->tries < WEB_TRIES) {
		m->retry.fn = retry_fired;
		timer_start(worker_loop(w), &m->retry, WEB_RETRY_MS);
		return;
	}
	if (found && home && home != w) {
		m->to = home;
		m->mail.fn = depart;
		loop_post(worker_loop(w), &m->mail);
		return;
	}
	m->fn(w, found && home == w ? obj : NULL, m->hc, m->req, m->arg);
	free(m->key);
	free(m);
}

void
web_dispatch(struct worker *w, const char *key, struct http_conn *hc, struct http_request *req,
	     web_obj_fn fn, void *arg)
{
	struct moving *m = xcalloc(1, sizeof *m);

	m->key = xstrdup(key);
	m->hc = hc;
	m->req = req;
	m->fn = fn;
	m->arg = arg;
	dispatch(w, m);
}

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

/*
 * Prometheus text format (exposition format 0.0.4): what operators graph and alert on. Only
 * for this host (a scraper, or a proxy that guards it): the numbers describe the users' traffic.
 */
static void
metrics(struct http_conn *hc, struct http_request *req)
{
	struct buf b = {0};

	if (!net_is_loopback(http_peer(hc))) {
		web_error(hc, 403, "metrics are served to this host only\n");
		return;
	}
	buf_puts(&b, "# HELP baton_up batond is running.\n# TYPE baton_up gauge\nbaton_up 1\n");
	sms_metrics(&b);
	http_respond(hc, 200, "Content-Type: text/plain; version=0.0.4\r\n", buf_head(&b),
		     buf_used(&b));
	buf_free(&b);
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
	} else if (strcmp(p, "/m") == 0 || strncmp(p, "/m/", 3) == 0) {
		m_handle(w, hc, req);
	} else if (strncmp(p, "/upload/", 8) == 0) {
		upload_http(w, hc, req); /* XEP-0363 files */
	} else if (strcmp(p, "/metrics") == 0) {
		metrics(hc, req);
	} else if (strcmp(p, "/") == 0) {
		http_respond(hc, 302, "Location: /m/\r\n", NULL, 0);
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
	    .body_limit = upload_body_limit,
	};
	if (*cfg->http_listen)
		server_add_listener(cfg->http_listen, web_accept);
}
