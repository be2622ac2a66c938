/*
 * SIP transport and transactions in batond (RFC 3261 17, 18): the UDP socket and TCP
 * connections on the SIP worker, non-INVITE server transactions (a retransmitted request gets
 * the same answer again, 17.2.2) and client transactions (retransmission over UDP with timers
 * E and F, 17.1.2), and the dispatch of requests to the registrar and messages.
 *
 * Invariant: every request gets exactly one final response, through sip_reply(), which also
 * frees it; responses and requests go back over the transport they came on.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sip_int.h"

#define ALLOW "Allow: REGISTER, MESSAGE, OPTIONS\r\n"

struct sip_module sip;

/* A server transaction: the final response, kept for retransmissions of the request. */
struct sip_stx {
	char *resp;
	size_t len;
	bool final;
	uint64_t expires;
};

static uint64_t
t1(void)
{
	return sip.cfg->sip_t1 ? sip.cfg->sip_t1 : 500;
}

/* ---- peers ---- */

void
sip_peer_copy(struct sip_peer *dst, const struct sip_peer *src)
{
	*dst = *src;
	if (dst->tcp)
		dst->tcp->refs++;
}

static void
tcp_unref(struct sip_tcp *t)
{
	if (--t->refs > 0 || !t->dead || t->busy)
		return;
	for (struct sip_tcp **pp = &sip.tcps; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	free(t);
}

void
sip_peer_release(struct sip_peer *p)
{
	if (p->tcp)
		tcp_unref(p->tcp);
	p->tcp = NULL;
}

void
sip_send(const struct sip_peer *to, const char *data, size_t len)
{
	if (to->tcp) {
		if (!to->tcp->dead)
			conn_write(to->tcp->c, data, len);
	} else if (net_udp_send(sip.udp_fd, &to->addr, data, len) < 0) {
		log_debug("sip: could not send %zu bytes to %s", len, to->addr.text);
	}
}

/* The SIP worker: the second one if there are two or more (the first has SMS and sweeps). */
struct worker *
sip_home(struct worker *w)
{
	return &w->srv->workers[w->srv->nworkers > 1 ? 1 : 0];
}

void
sip_call(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg)
{
	worker_call(sip_home(w), fn, arg);
}

/* ---- server transactions ---- */

/* branch + method + source: a retransmission has all three the same (17.2.3). */
static void
stx_key(const struct sip_msg *m, const struct sip_peer *p, char *out, size_t n)
{
	struct sip_via v;
	const char *via = sip_hdr(m, "Via");

	if (via && sip_parse_via(via, &v) == 0 && v.branch &&
	    strncmp(v.branch, "z9hG4bK", 7) == 0) {
		snprintf(out, n, "%s %s %s", v.branch, m->method, p->addr.text);
		sip_via_free(&v);
		return;
	}
	if (via)
		sip_via_free(&v);
	/* RFC 2543 clients: Call-ID and CSeq instead (17.2.3's older rule, simplified). */
	snprintf(out, n, "%s %s %s", sip_hdr(m, "Call-ID") ? sip_hdr(m, "Call-ID") : "",
		 sip_hdr(m, "CSeq") ? sip_hdr(m, "CSeq") : "", p->addr.text);
}

void
sip_reply(struct sip_req *r, int status, const char *reason, const char *extra, const char *body,
	  size_t body_len)
{
	struct buf b = {0};
	char key[512], totag[17];
	struct sip_stx *t;

	rand_id(totag, 16);
	sip_write_response(&b, &r->m, status, reason, status > 100 ? totag : NULL, extra, body,
			   body_len);
	sip_send(&r->peer, buf_head(&b), buf_used(&b));
	log_debug("sip: %s %s -> %d %s", r->m.method, r->peer.addr.text, status, reason);
	stx_key(&r->m, &r->peer, key, sizeof key);
	t = hmap_get(&sip.stx, key);
	if (t) {
		free(t->resp);
		t->len = buf_used(&b);
		t->resp = buf_steal(&b);
		t->final = true;
		/* Timer J (17.2.2): 64*T1 over UDP, none over TCP (a short linger all the same). */
		t->expires = now_ms() + (r->peer.tcp ? 1000 : 64 * t1());
	}
	buf_free(&b);
	sip_peer_release(&r->peer);
	sip_msg_free(&r->m);
	free(r->user);
	free(r->bare);
	buf_free(&r->creds);
	free(r);
}

/* ---- client transactions ---- */

void
sip_new_branch(char out[40])
{
	char id[25];
	rand_id(id, 24);
	snprintf(out, 40, "z9hG4bK%s", id);
}

void
sip_request(const struct sip_peer *to, const char *branch, struct buf *bytes,
	    void (*done)(void *arg, int status, const struct sip_msg *resp), void *arg)
{
	struct sip_ctx *c = xcalloc(1, sizeof *c);

	snprintf(c->branch, sizeof c->branch, "%s", branch);
	c->bytes = *bytes;
	memset(bytes, 0, sizeof *bytes);
	sip_peer_copy(&c->peer, to);
	c->interval = t1();
	c->next_send = now_ms() + c->interval;
	c->deadline = now_ms() + 64 * t1(); /* Timer F */
	c->done = done;
	c->arg = arg;
	hmap_put(&sip.ctx, c->branch, c);
	sip_send(&c->peer, buf_head(&c->bytes), buf_used(&c->bytes));
}

static void
ctx_end(struct sip_ctx *c, int status, const struct sip_msg *resp)
{
	hmap_del(&sip.ctx, c->branch);
	c->done(c->arg, status, resp);
	sip_peer_release(&c->peer);
	buf_free(&c->bytes);
	free(c);
}

static void
response(const struct sip_msg *m)
{
	struct sip_via v;
	const char *via = sip_hdr(m, "Via");
	struct sip_ctx *c;

	if (!via || sip_parse_via(via, &v) < 0)
		return;
	c = v.branch ? hmap_get(&sip.ctx, v.branch) : NULL;
	sip_via_free(&v);
	if (!c)
		return; /* a late or stray response: nothing waits for it */
	if (m->status < 200) {
		c->interval = 4 * t1(); /* proceeding: retransmit at T2 (17.1.2.2) */
		return;
	}
	ctx_end(c, m->status, m);
}

/* ---- requests ---- */

static void
options(struct sip_req *r)
{
	/* RFC 3261 11.2: what we do. */
	sip_reply(r, 200, "OK",
		  ALLOW "Accept: text/plain, message/cpim\r\nSupported: \r\n"
			"Accept-Encoding: identity\r\n",
		  NULL, 0);
}

static void
request(struct sip_req *r)
{
	const char *bad = sip_check_request(&r->m);
	const char *mf = sip_hdr(&r->m, "Max-Forwards");
	char key[512];

	if (strcmp(r->m.method, "ACK") == 0) { /* no transaction of ours to end */
		sip_peer_release(&r->peer);
		sip_msg_free(&r->m);
		free(r);
		return;
	}
	stx_key(&r->m, &r->peer, key, sizeof key);
	struct sip_stx *t = hmap_get(&sip.stx, key);
	if (t) {
		/* A retransmission: the same final answer again, or nothing while we work on it. */
		if (t->final)
			sip_send(&r->peer, t->resp, t->len);
		sip_peer_release(&r->peer);
		sip_msg_free(&r->m);
		free(r);
		return;
	}
	t = xcalloc(1, sizeof *t);
	t->expires = now_ms() + 64 * t1() + 60000; /* unanswered this long: forget it */
	hmap_put(&sip.stx, key, t);
	if (bad) {
		char reason[160];
		snprintf(reason, sizeof reason, "Bad Request (%s)", bad);
		sip_reply(r, 400, reason, NULL, NULL, 0);
	} else if (mf && atoi(mf) <= 0 && strcmp(r->m.method, "REGISTER") != 0) {
		sip_reply(r, 483, "Too Many Hops", NULL, NULL, 0);
	} else if (strcmp(r->m.method, "REGISTER") == 0) {
		sip_auth(r, sip_registrar);
	} else if (strcmp(r->m.method, "MESSAGE") == 0) {
		sip_auth(r, sip_message);
	} else if (strcmp(r->m.method, "OPTIONS") == 0) {
		options(r);
	} else if (strcmp(r->m.method, "CANCEL") == 0) {
		sip_reply(r, 481, "Call/Transaction Does Not Exist", NULL, NULL, 0);
	} else {
		sip_reply(r, 405, "Method Not Allowed", ALLOW, NULL, 0);
	}
}

/*
 * RFC 3261 18.3 / 21.4.1: a datagram that does not parse as a request still gets a 400 if the
 * headers a response needs can be found in it (a tolerant line scan; nothing else is trusted).
 */
static void
answer_unparsable(const char *data, size_t len, const struct sip_peer *peer, int status,
		  const char *why)
{
	static const char *const need[][2] = {
	    {"via", "v"}, {"from", "f"}, {"to", "t"}, {"call-id", "i"}, {"cseq", NULL}};
	const char *p = data, *end = data + len;
	struct buf hdrs = {0}, out = {0};
	bool seen[ARRAY_LEN(need)] = {0};

	if (len < 8 || memcmp(data, "SIP/2.0 ", 8) == 0 || memchr(data, '\0', len))
		return; /* a response, or binary: never answered */
	p = memchr(p, '\n', len);
	while (p && ++p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end, *colon;
		size_t n;
		if (e > p && e[-1] == '\r')
			e--;
		if (e == p)
			break; /* the end of the headers */
		colon = memchr(p, ':', (size_t)(e - p));
		n = colon ? (size_t)(colon - p) : 0;
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		for (size_t i = 0; colon && i < ARRAY_LEN(need); i++) {
			if ((strlen(need[i][0]) == n && strncasecmp(p, need[i][0], n) == 0) ||
			    (need[i][1] && n == 1 && tolower((unsigned char)*p) == *need[i][1])) {
				buf_append(&hdrs, p, (size_t)(e - p));
				buf_puts(&hdrs, "\r\n");
				seen[i] = true;
			}
		}
		p = nl;
	}
	for (size_t i = 0; i < ARRAY_LEN(need); i++)
		if (!seen[i])
			goto out;
	buf_printf(&out, "SIP/2.0 %d %s (%s)\r\n", status,
		   status == 505   ? "Version Not Supported"
		   : status == 413 ? "Request Entity Too Large"
		   : status == 513 ? "Message Too Large"
				   : "Bad Request",
		   why);
	buf_append(&out, buf_head(&hdrs), buf_used(&hdrs));
	buf_puts(&out, "Content-Length: 0\r\n\r\n");
	sip_send(peer, buf_head(&out), buf_used(&out));
out:
	buf_free(&hdrs);
	buf_free(&out);
}

/* One message from peer; data is one datagram, or a stream's next message. */
static long
incoming(const char *data, size_t len, const struct sip_peer *peer)
{
	struct sip_req *r = xcalloc(1, sizeof *r);
	char err[160];
	long n = sip_parse(data, len, peer->tcp != NULL, &r->m, err, sizeof err);

	if (n <= 0 || r->m.keepalive) {
		if (n < 0) {
			log_info("sip: %s: unreadable message (%ld): %s", peer->addr.text, -n, err);
			if (!peer->tcp)
				answer_unparsable(data, len, peer, (int)-n, err);
		}
		if (n > 0)
			sip_msg_free(&r->m);
		free(r);
		return n;
	}
	if (!r->m.request) {
		response(&r->m);
		sip_msg_free(&r->m);
		free(r);
		return n;
	}
	sip_peer_copy(&r->peer, peer);
	request(r);
	return n;
}

/* ---- UDP ---- */

static void
udp_readable(struct loop_io *io, uint32_t events)
{
	static char buf[SIP_MAX_MSG + 1];

	for (int i = 0; i < 64; i++) {
		struct sip_peer p = {0};
		long n = net_udp_recv(io->fd, buf, sizeof buf, &p.addr);
		if (n < 0)
			return;
		if (n > SIP_MAX_MSG) {
			log_info("sip: %s: a %ld-byte datagram, over the limit; dropped",
				 p.addr.text, n);
			continue;
		}
		incoming(buf, (size_t)n, &p);
	}
}

/* ---- TCP ---- */

static void
tcp_data(struct conn *c, void *arg)
{
	struct sip_tcp *t = arg;
	struct sip_peer p = {.tcp = t};

	snprintf(p.addr.text, sizeof p.addr.text, "%s", c->peer);
	t->busy = true;
	while (!t->dead && buf_used(&c->in) > 0) {
		long n = incoming(buf_head(&c->in), buf_used(&c->in), &p);
		if (n == 0)
			break;
		if (n < 0) {
			/* A stream out of step cannot be resynchronised (18.3): close it. */
			t->dead = true;
			conn_close(c);
			break;
		}
		buf_consume(&c->in, (size_t)n);
	}
	t->busy = false;
	t->refs++;
	tcp_unref(t);
}

static void
tcp_closed(struct conn *c, void *arg, const char *reason)
{
	struct sip_tcp *t = arg;

	log_debug("sip: TCP %s closed: %s", c->peer, reason);
	t->dead = true;
	conn_close(c);
	t->refs++;
	tcp_unref(t);
}

static const struct conn_cb tcp_cb = {.data = tcp_data, .closed = tcp_closed};

static void
tcp_adopt(struct worker *w, void *arg)
{
	struct sip_tcp *t = arg;

	conn_attach(t->c, worker_loop(w));
	conn_set_limits(t->c, 2 * SIP_MAX_MSG, 4 << 20, 0, 0);
	t->next = sip.tcps;
	sip.tcps = t;
}

static void
tcp_accept(struct worker *w, int fd)
{
	for (int i = 0; i < 16; i++) {
		struct sip_tcp *t;
		struct conn *c = conn_accept(worker_loop(w), fd, NULL, &tcp_cb, NULL);
		if (!c)
			return;
		conn_detach(c);
		t = xcalloc(1, sizeof *t);
		t->c = c;
		conn_set_cb(c, &tcp_cb, t);
		sip_call(w, tcp_adopt, t);
	}
}

/* ---- timers ---- */

static void
tick(struct timer *tm)
{
	uint64_t now = now_ms();
	const char *k;
	void *v;
	static uint64_t last_sweep;

	/* Client transactions: retransmit over UDP (Timer E), give up at Timer F. */
	for (size_t i = 0; hmap_next(&sip.ctx, &i, &k, &v);) {
		struct sip_ctx *c = v;
		if (now >= c->deadline) {
			ctx_end(c, 408, NULL);
			i = 0; /* the map changed: start over (few entries) */
			continue;
		}
		if (!c->peer.tcp && now >= c->next_send) {
			sip_send(&c->peer, buf_head(&c->bytes), buf_used(&c->bytes));
			c->interval = c->interval * 2 > 4 * t1() ? 4 * t1() : c->interval * 2;
			c->next_send = now + c->interval;
		}
	}
	if (now - last_sweep >= 1000) {
		last_sweep = now;
		for (size_t i = 0; hmap_next(&sip.stx, &i, &k, &v);) {
			struct sip_stx *t = v;
			if (now >= t->expires) {
				free(hmap_del(&sip.stx, k) == t ? t->resp : NULL);
				free(t);
				i = 0;
			}
		}
		sip_bindings_expire();
	}
	timer_start(worker_loop(sip.w), tm, t1() / 5 ? t1() / 5 : 1);
}

/* ---- the service ---- */

static void
sip_start_worker(struct worker *w)
{
	if (w != sip_home(w))
		return;
	sip.w = w;
	sip.udp_io.fd = sip.udp_fd;
	sip.udp_io.fn = udp_readable;
	if (loop_io_add(worker_loop(w), &sip.udp_io, LOOP_IN) < 0)
		fatal("sip: cannot watch the UDP socket");
	sip.tick.fn = tick;
	timer_start(worker_loop(w), &sip.tick, 100);
}

static void
sip_route(struct worker *w, struct xml_node *st, const struct jid *to)
{
	xml_free(st); /* nothing lives at a SIP subdomain */
}

static void
sip_free_worker(struct worker *w)
{
	const char *k;
	void *v;

	if (w != sip.w)
		return;
	for (size_t i = 0; hmap_next(&sip.ctx, &i, &k, &v);) {
		struct sip_ctx *c = v;
		c->done(c->arg, 503, NULL);
		buf_free(&c->bytes);
		free(c);
	}
	hmap_free(&sip.ctx);
	for (size_t i = 0; hmap_next(&sip.stx, &i, &k, &v);) {
		free(((struct sip_stx *)v)->resp);
		free(v);
	}
	hmap_free(&sip.stx);
	sip_aors_free();
	while (sip.tcps) { /* the connections go with the loop */
		struct sip_tcp *next = sip.tcps->next;
		free(sip.tcps);
		sip.tcps = next;
	}
	digest_replay_free(sip.replay);
	close(sip.udp_fd);
	memset(&sip, 0, sizeof sip);
}

/* The service entry only gives the SIP worker its start and end; SIP has no XMPP subdomain. */
static const struct xmpp_service sip_service = {
    .prefix = "sip",
    .route = sip_route,
    .start_worker = sip_start_worker,
    .free_worker = sip_free_worker,
};

int
sip_register(const struct config *cfg, char *err, size_t errlen)
{
	if (!*cfg->sip_listen)
		return 0;
	if (!strcasestr(cfg->sip_digest, "MD5") && !strcasestr(cfg->sip_digest, "SHA-256")) {
		snprintf(err, errlen, "sip.digest must name MD5, SHA-256 or both (is '%s')",
			 cfg->sip_digest);
		return -1;
	}
	sip.cfg = cfg;
	sip.udp_fd = net_udp_bind(cfg->sip_listen, err, errlen);
	if (sip.udp_fd < 0)
		return -1;
	rand_bytes(sip.key, sizeof sip.key);
	sip.replay = digest_replay_new(4096);
	snprintf(sip.host, sizeof sip.host, "%s", cfg->sip_listen);
	server_add_service(&sip_service);
	server_add_listener(cfg->sip_listen, tcp_accept);
	durable_observer = sip_observe;
	device_drop = sip_device_drop;
	return 0;
}
