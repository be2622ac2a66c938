/*
 * bosh: BOSH (XEP-0124) carrying XMPP (XEP-0206) at /http-bind. A BOSH session is the
 * transport of one client session: the elements of each request's <body/> are fed to it
 * in rid order, and what it writes waits for a held request to carry it back. The BOSH
 * session is the "session object" of seed 002: it outlives any HTTP connection for
 * thin.hold, so a client that comes back with its sid finds everything it missed.
 *
 * Invariant: a BOSH session is touched only on the worker where its client session
 * lives; requests reach it there through web_dispatch(), keyed by sid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web_int.h"

#define BOSH_WAIT_MAX 120 /* seconds a request may be held (we answer sooner if asked) */
#define BOSH_HOLD_MAX 2	  /* requests held at once */
#define BOSH_REQUESTS (BOSH_HOLD_MAX + 1)
#define BOSH_POLLING  2 /* seconds between empty requests when hold is 0 (XEP-0124 7.1) */
#define BOSH_MAXPAUSE 300
#define BOSH_RETRY_MS 1		    /* a request for a moving session looks again after this */
#define BOSH_CACHE    BOSH_REQUESTS /* answers kept for retransmission (XEP-0124 14.3) */

struct held {
	struct http_conn *hc;
	uint64_t rid;
	uint64_t deadline; /* now_ms() when it is answered even if there is nothing to say */
};

struct early {
	struct http_conn *hc;
	uint64_t rid;
	struct xml_node *body;
};

struct cached {
	uint64_t rid;
	char *data;
	size_t len;
};

struct bosh {
	char sid[33];
	struct worker *w; /* where the session is */
	struct session *s;
	const struct config *cfg;
	bool secure;
	char peer[64];
	unsigned wait, hold;
	bool acks;	   /* the client uses the ack attribute (XEP-0124 9) */
	uint64_t rid_next; /* the rid to process next */
	uint64_t acked;	   /* responses up to this rid reached the client */
	struct held held[BOSH_HOLD_MAX + 1];
	unsigned nheld;
	struct early early[BOSH_REQUESTS]; /* arrived before the rids preceding them */
	unsigned nearly;
	struct cached cache[BOSH_CACHE];
	struct buf out;		  /* elements waiting for a request to carry them */
	char *stream_id;	  /* of the current stream, for authid */
	bool creating;		  /* the creation request is being answered */
	bool feeding;		  /* inside c2s_input(): a release waits */
	bool released;		  /* the session let go while feeding */
	bool ended;		  /* the session ended the stream: terminate next */
	char *condition;	  /* of that terminate, if an error */
	struct timer wait_timer;  /* the oldest held request's deadline */
	struct timer flush_timer; /* answer with what the turn produced */
	struct timer inactive;	  /* no request held: the session object's hold */
	uint64_t inactivity;	  /* ms, thin.hold or a pause */
};

/* ---- answering requests ---- */

static const char *
cors_headers(const struct config *cfg)
{
	/* XEP-0124 3 / Fetch CORS: pages from other origins may use BOSH if http.origins says. */
	(void)cfg;
	return "Content-Type: text/xml; charset=utf-8\r\n"
	       "Access-Control-Allow-Origin: *\r\n"
	       "Access-Control-Allow-Headers: Content-Type\r\n"
	       "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
	       "Cache-Control: no-store\r\n";
}

static void
respond_xml(const struct config *cfg, struct http_conn *hc, const char *data, size_t len)
{
	http_respond(hc, 200, cors_headers(cfg), data, len);
}

/* XEP-0124 17: a fatal error is a terminate body with a condition, in an HTTP 200. */
static void
respond_terminate(const struct config *cfg, struct http_conn *hc, const char *condition)
{
	char body[256];
	int n =
	    snprintf(body, sizeof body,
		     "<body xmlns='" NS_HTTPBIND "' type='terminate' condition='%s'/>", condition);
	respond_xml(cfg, hc, body, (size_t)n);
}

static void
cache_put(struct bosh *b, uint64_t rid, struct buf *body)
{
	struct cached *c = &b->cache[rid % BOSH_CACHE];

	free(c->data);
	c->rid = rid;
	c->len = buf_used(body);
	c->data = xmalloc(c->len ? c->len : 1);
	memcpy(c->data, buf_head(body), c->len);
}

/* Answers held request i with what is queued (or nothing), and forgets it. */
static void
answer(struct bosh *b, unsigned i)
{
	struct held h = b->held[i];
	struct buf body = {0};

	memmove(&b->held[i], &b->held[i + 1], (b->nheld - i - 1) * sizeof *b->held);
	b->nheld--;
	buf_puts(&body, "<body xmlns='" NS_HTTPBIND "' xmlns:stream='" NS_STREAM "'");
	if (b->creating) {
		/* XEP-0124 7.1, XEP-0206 8: the session creation response. */
		b->creating = false;
		buf_printf(&body,
			   " sid='%s' wait='%u' hold='%u' requests='%u' polling='%u'"
			   " inactivity='%llu' maxpause='%u' ver='1.11' from='",
			   b->sid, b->wait, b->hold, b->hold + 1, BOSH_POLLING,
			   (unsigned long long)(b->cfg->thin_hold / 1000), BOSH_MAXPAUSE);
		xml_escape(&body, b->cfg->domain, strlen(b->cfg->domain), true);
		buf_printf(&body,
			   "' authid='%s' secure='%s' xmpp:version='1.0' xmpp:restartlogic='true'"
			   " xmlns:xmpp='" NS_XBOSH "'",
			   b->stream_id ? b->stream_id : "", b->secure ? "true" : "false");
		if (b->acks)
			buf_printf(&body, " ack='%llu'", (unsigned long long)h.rid);
	}
	if (b->ended && buf_used(&b->out) == 0) {
		buf_puts(&body, " type='terminate'");
		if (b->condition)
			buf_printf(&body, " condition='%s'", b->condition);
	}
	if (buf_used(&b->out)) {
		buf_puts(&body, ">");
		buf_append(&body, buf_head(&b->out), buf_used(&b->out));
		buf_puts(&body, "</body>");
		buf_reset(&b->out);
	} else {
		buf_puts(&body, "/>");
	}
	cache_put(b, h.rid, &body);
	respond_xml(b->cfg, h.hc, buf_head(&body), buf_used(&body));
	buf_free(&body);
}

static void
arm_timers(struct bosh *b)
{
	struct loop *loop = worker_loop(b->w);

	if (b->nheld) {
		timer_stop(loop, &b->inactive);
		uint64_t now = now_ms(), when = b->held[0].deadline;
		timer_start(loop, &b->wait_timer, when > now ? when - now : 0);
	} else {
		timer_stop(loop, &b->wait_timer);
		/* XEP-0124 12: the session survives without requests for inactivity seconds. */
		timer_start(loop, &b->inactive, b->inactivity);
	}
}

/* Sends what is queued: on the oldest held request; more requests than hold: answer. */
static void
flush(struct bosh *b)
{
	while (b->nheld && (buf_used(&b->out) || b->ended || b->creating))
		answer(b, 0);
	while (b->nheld > b->hold)
		answer(b, 0); /* XEP-0124 11: never hold more than hold requests */
	arm_timers(b);
}

static void
wait_expired(struct timer *t)
{
	struct bosh *b = container_of(t, struct bosh, wait_timer);
	uint64_t now = now_ms();

	while (b->nheld && b->held[0].deadline <= now)
		answer(b, 0);
	arm_timers(b);
}

static void
flush_fired(struct timer *t)
{
	flush(container_of(t, struct bosh, flush_timer));
}

static void
inactive_expired(struct timer *t)
{
	struct bosh *b = container_of(t, struct bosh, inactive);

	log_info("bosh %s: no request within %llus; the session object ends", b->sid,
		 (unsigned long long)(b->inactivity / 1000));
	c2s_transport_lost(b->s, "BOSH inactivity");
}

/* A held request's connection broke: forget it (what was queued stays queued). */
static void
held_gone(struct http_conn *hc, void *arg)
{
	struct bosh *b = arg;

	for (unsigned i = 0; i < b->nheld; i++) {
		if (b->held[i].hc == hc) {
			memmove(&b->held[i], &b->held[i + 1], (b->nheld - i - 1) * sizeof *b->held);
			b->nheld--;
			break;
		}
	}
	arm_timers(b);
}

/* ---- the transport the session writes to ---- */

static void
bosh_open(void *t, const char *id, const char *from, const char *to)
{
	struct bosh *b = t;

	free(b->stream_id);
	b->stream_id = xstrdup(id);
}

static void
schedule_flush(struct bosh *b)
{
	if (!timer_armed(&b->flush_timer))
		timer_start(worker_loop(b->w), &b->flush_timer, 0);
}

static void
bosh_element(void *t, const char *data, size_t len)
{
	struct bosh *b = t;

	/* XEP-0206 7: stanzas in the body carry their own namespace. */
	c2s_frame_element(&b->out, data, len);
	schedule_flush(b);
}

static void
bosh_end(void *t)
{
	struct bosh *b = t;

	/* XEP-0206 9: a stream error travels in a terminate body. */
	b->ended = true;
	if (buf_used(&b->out) && strstr(buf_head(&b->out), "<stream:error"))
		b->condition = xstrdup("remote-stream-error");
	schedule_flush(b);
}

static void
bosh_free(struct bosh *b)
{
	for (unsigned i = 0; i < BOSH_CACHE; i++)
		free(b->cache[i].data);
	for (unsigned i = 0; i < b->nearly; i++) {
		respond_terminate(b->cfg, b->early[i].hc, "item-not-found");
		xml_free(b->early[i].body);
	}
	buf_free(&b->out);
	free(b->stream_id);
	free(b->condition);
	free(b);
}

static void
bosh_release(void *t)
{
	struct bosh *b = t;
	struct loop *loop = worker_loop(b->w);

	web_obj_del(b->sid);
	/* Whatever is left goes out with the terminate, on every request still held. */
	b->ended = true;
	b->creating = false;
	while (b->nheld)
		answer(b, 0);
	timer_stop(loop, &b->wait_timer);
	timer_stop(loop, &b->flush_timer);
	timer_stop(loop, &b->inactive);
	log_debug("bosh %s: ended", b->sid);
	if (b->feeding)
		b->released = true; /* freed once c2s_input() returns */
	else
		bosh_free(b);
}

/*
 * Bytes not yet known to have reached the client: queued ones, and answers whose receipt
 * no later request has proven. Offline messages are deleted only once this is 0.
 */
static size_t
bosh_pending(void *t)
{
	struct bosh *b = t;
	size_t n = buf_used(&b->out);

	for (unsigned i = 0; i < BOSH_CACHE; i++) {
		if (b->cache[i].data && b->cache[i].rid > b->acked)
			n += b->cache[i].len;
	}
	return n;
}

static void
bosh_pause(void *t, bool paused)
{
	/* Requests are answered in rid order anyway; the session queues what it cannot run. */
}

static void
bosh_detach(void *t)
{
	struct bosh *b = t;
	struct loop *loop = worker_loop(b->w);

	/* Moving to the account's worker: nothing may stay on this loop. */
	web_obj_move(b->sid, NULL);
	while (b->nheld)
		answer(b, 0);
	timer_stop(loop, &b->wait_timer);
	timer_stop(loop, &b->flush_timer);
	timer_stop(loop, &b->inactive);
	for (unsigned i = 0; i < b->nearly; i++) {
		respond_terminate(b->cfg, b->early[i].hc, "item-not-found");
		xml_free(b->early[i].body);
	}
	b->nearly = 0;
}

static void
bosh_attach(void *t, struct loop *loop)
{
	struct bosh *b = t;

	b->w = loop_data(loop);
	web_obj_move(b->sid, b->w);
	arm_timers(b);
	if (buf_used(&b->out))
		schedule_flush(b);
}

static bool
bosh_secure(void *t)
{
	return ((struct bosh *)t)->secure;
}

static const char *
bosh_peer(void *t)
{
	return ((struct bosh *)t)->peer;
}

static const struct c2s_transport bosh_transport = {
    .name = "bosh",
    .open = bosh_open,
    .element = bosh_element,
    .end = bosh_end,
    .release = bosh_release,
    .pending = bosh_pending,
    .pause = bosh_pause,
    .detach = bosh_detach,
    .attach = bosh_attach,
    .secure = bosh_secure,
    .starttls = NULL, /* XEP-0206 5: TLS is HTTP's (https:), not the stream's */
    .peer = bosh_peer,
};

/* ---- requests ---- */

static bool
parse_uint(const char *v, uint64_t *out)
{
	char *end;
	unsigned long long x;

	if (!v || *v < '0' || *v > '9')
		return false;
	x = strtoull(v, &end, 10);
	if (*end)
		return false;
	*out = x;
	return true;
}

/* The elements of a body as bytes of the stream. */
static void
children_bytes(struct xml_node *body, struct buf *in)
{
	for (struct xml_node *c = body->first; c; c = c->next) {
		if (!c->name)
			continue; /* text between elements is not part of the stream */
		/* XEP-0206 7: elements left in the body's namespace mean jabber:client. */
		xml_rename_ns(c, NS_HTTPBIND, NS_CLIENT);
		xml_write(in, c, NS_CLIENT);
	}
}

/*
 * Runs one request in rid order: its payload, restart or terminate go to the session,
 * then the request waits for the answer. The session may end meanwhile (it released b):
 * the return says whether b still lives.
 */
static bool
process(struct bosh *b, struct http_conn *hc, uint64_t rid, struct xml_node *body)
{
	const char *type = xml_attr(body, "type");
	const char *restart = xml_attr(body, "xmpp:restart");
	uint64_t pause = 0, ack;
	struct buf in = {0};

	b->rid_next = rid + 1;
	/*
	 * XEP-0124 9: a client holds at most hold + 1 requests, so sending rid means it has
	 * the answers up to rid - hold - 1; an explicit ack says more.
	 */
	if (rid > b->hold + 1 && rid - b->hold - 1 > b->acked)
		b->acked = rid - b->hold - 1;
	if (parse_uint(xml_attr(body, "ack"), &ack) && ack > b->acked && ack < rid)
		b->acked = ack;
	b->held[b->nheld++] = (struct held){hc, rid, now_ms() + (uint64_t)b->wait * 1000};
	http_on_gone(hc, held_gone, b);
	b->inactivity = b->cfg->thin_hold;
	if (parse_uint(xml_attr(body, "pause"), &pause) && pause > 0) {
		/* XEP-0124 10: answer everything now; the client is back within pause. */
		if (pause > BOSH_MAXPAUSE)
			pause = BOSH_MAXPAUSE;
		if (pause * 1000 > b->inactivity)
			b->inactivity = pause * 1000;
		for (unsigned i = 0; i < b->nheld; i++)
			b->held[i].deadline = 0;
	}
	children_bytes(body, &in);
	if (restart && (strcmp(restart, "true") == 0 || strcmp(restart, "1") == 0))
		web_stream_header(&in, b->cfg->domain, "1.0"); /* XEP-0206 8: after SASL */
	if (type && strcmp(type, "terminate") == 0)
		buf_puts(&in, "</stream:stream>"); /* XEP-0124 13 */
	b->feeding = true;
	if (buf_used(&in))
		c2s_input(b->s, buf_head(&in), buf_used(&in));
	buf_free(&in);
	b->feeding = false;
	if (b->released) {
		bosh_free(b);
		return false;
	}
	/* What came while no request was held goes out on this one at once. */
	if (buf_used(&b->out) || b->ended || b->nheld > b->hold ||
	    (b->nheld && b->held[0].deadline == 0))
		flush(b);
	else
		arm_timers(b);
	return true;
}

/* Requests that arrived early whose turn has come. */
static void
process_early(struct bosh *b)
{
	for (bool more = true; more;) {
		more = false;
		for (unsigned i = 0; i < b->nearly; i++) {
			struct early e = b->early[i];
			if (e.rid != b->rid_next)
				continue;
			memmove(&b->early[i], &b->early[i + 1],
				(b->nearly - i - 1) * sizeof *b->early);
			b->nearly--;
			bool alive = process(b, e.hc, e.rid, e.body);
			xml_free(e.body);
			if (!alive)
				return;
			more = true;
			break;
		}
	}
}

/* A request for the session b (NULL: there is none), on its worker; takes body. */
static void
bosh_request(struct worker *w, void *obj, struct http_conn *hc, struct http_request *req, void *arg)
{
	struct bosh *b = obj;
	struct xml_node *body = arg;
	uint64_t rid;

	if (!b) {
		/* XEP-0124 14.1: an unknown (or ended) session. */
		respond_terminate(worker_config(w), hc, "item-not-found");
		xml_free(body);
		return;
	}
	if (!parse_uint(xml_attr(body, "rid"), &rid)) {
		respond_terminate(b->cfg, hc, "bad-request");
		xml_free(body);
		return;
	}
	if (rid < b->rid_next) {
		/* XEP-0124 14.3: a retransmission: the same answer again, if we still have it. */
		struct cached *c = &b->cache[rid % BOSH_CACHE];
		for (unsigned i = 0; i < b->nheld; i++) {
			if (b->held[i].rid == rid) {
				/* The client gave up on that connection: this one takes its place.
				 */
				http_on_gone(b->held[i].hc, NULL, NULL);
				respond_xml(b->cfg, b->held[i].hc,
					    "<body xmlns='" NS_HTTPBIND "'/>",
					    sizeof("<body xmlns='" NS_HTTPBIND "'/>") - 1);
				b->held[i].hc = hc;
				http_on_gone(hc, held_gone, b);
				xml_free(body);
				return;
			}
		}
		if (c->data && c->rid == rid)
			respond_xml(b->cfg, hc, c->data, c->len);
		else
			respond_terminate(b->cfg, hc, "item-not-found");
		xml_free(body);
		return;
	}
	if (rid >= b->rid_next + BOSH_REQUESTS) {
		/* XEP-0124 14.2: beyond the window of requests the client may have open. */
		log_info("bosh %s: rid %llu outside the window (expected %llu)", b->sid,
			 (unsigned long long)rid, (unsigned long long)b->rid_next);
		respond_terminate(b->cfg, hc, "item-not-found");
		xml_free(body);
		return;
	}
	if (rid > b->rid_next) {
		/* Came ahead of an earlier one (another connection): its turn comes later. */
		if (b->nearly == BOSH_REQUESTS) {
			respond_terminate(b->cfg, hc, "policy-violation");
			xml_free(body);
			return;
		}
		b->early[b->nearly++] = (struct early){hc, rid, body};
		http_on_gone(hc, NULL, NULL);
		return;
	}
	if (process(b, hc, rid, body))
		process_early(b);
	xml_free(body);
}

/* XEP-0124 7.1, XEP-0206 8: a request without sid creates a session here. */
static void
create(struct worker *w, struct http_conn *hc, struct xml_node *body)
{
	const struct config *cfg = worker_config(w);
	const char *to = xml_attr(body, "to");
	uint64_t rid, wait = 60, hold = 1;
	struct bosh *b;
	struct buf h = {0};

	if (!parse_uint(xml_attr(body, "rid"), &rid) || !to) {
		respond_terminate(cfg, hc, "bad-request");
		return;
	}
	if (strcmp(to, cfg->domain) != 0) {
		respond_terminate(cfg, hc, "host-unknown");
		return;
	}
	parse_uint(xml_attr(body, "wait"), &wait);
	parse_uint(xml_attr(body, "hold"), &hold);
	b = xcalloc(1, sizeof *b);
	b->cfg = cfg;
	b->w = w;
	b->wait = wait > BOSH_WAIT_MAX ? BOSH_WAIT_MAX : wait < 1 ? 1 : (unsigned)wait;
	b->hold = hold > BOSH_HOLD_MAX ? BOSH_HOLD_MAX : (unsigned)hold;
	b->acks = xml_attr(body, "ack") != NULL;
	b->secure = web_secure(cfg, http_peer(hc));
	snprintf(b->peer, sizeof b->peer, "%s", http_peer(hc));
	b->inactivity = cfg->thin_hold;
	b->wait_timer.fn = wait_expired;
	b->flush_timer.fn = flush_fired;
	b->inactive.fn = inactive_expired;
	rand_id(b->sid, sizeof b->sid - 1);
	web_obj_put(b->sid, b, w);
	b->s = c2s_open(w, &bosh_transport, b);
	b->creating = true;
	log_debug("bosh %s: new session from %s", b->sid, b->peer);
	/* The stream opens now; its features go out with the creation response. */
	b->rid_next = rid;
	web_stream_header(&h, to, xml_attr(body, "xmpp:version") ? "1.0" : NULL);
	xml_set_attr(body, "xmpp:restart", NULL);
	xml_set_attr(body, "type", NULL);
	b->feeding = true;
	c2s_input(b->s, buf_head(&h), buf_used(&h));
	b->feeding = false;
	buf_free(&h);
	if (b->released) {
		bosh_free(b);
		respond_terminate(cfg, hc, "internal-server-error");
		return;
	}
	if (process(b, hc, rid, body))
		flush(b);
}

void
bosh_handle(struct worker *w, struct http_conn *hc, struct http_request *req)
{
	const struct config *cfg = worker_config(w);
	struct xml_node *body;
	const char *sid;

	if (strcmp(req->method, "OPTIONS") == 0) {
		/* A CORS preflight (Fetch standard): what a page from another origin may send. */
		http_respond(hc, 200,
			     "Access-Control-Allow-Origin: *\r\n"
			     "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n"
			     "Access-Control-Allow-Headers: Content-Type\r\n"
			     "Access-Control-Max-Age: 86400\r\n",
			     NULL, 0);
		return;
	}
	if (!web_origin_ok(cfg, req)) {
		web_error(hc, 403, "origin not allowed\n");
		return;
	}
	if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0) {
		static const char text[] =
		    "baton: BOSH (XEP-0124/0206) endpoint; POST <body/> here\n";
		http_respond(hc, 200, "Content-Type: text/plain; charset=utf-8\r\n", text,
			     sizeof text - 1);
		return;
	}
	if (strcmp(req->method, "POST") != 0) {
		web_error(hc, 405, "BOSH takes POST\n");
		return;
	}
	body = xml_parse(buf_head(&req->body), buf_used(&req->body));
	if (!body || strcmp(body->name, "body") != 0 || strcmp(body->ns, NS_HTTPBIND) != 0) {
		/* XEP-0124 17: not a BOSH body at all. */
		xml_free(body);
		http_respond(hc, 400, cors_headers(cfg),
			     "<body xmlns='" NS_HTTPBIND
			     "' type='terminate' condition='bad-request'/>",
			     sizeof("<body xmlns='" NS_HTTPBIND
				    "' type='terminate' condition='bad-request'/>") -
				 1);
		return;
	}
	sid = xml_attr(body, "sid");
	if (!sid) {
		create(w, hc, body);
		xml_free(body);
		return;
	}
	web_dispatch(w, sid, hc, req, bosh_request, body);
}
