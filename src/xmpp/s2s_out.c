/*
 * s2s_out: the streams we open to other servers (RFC 6120 13). One per (our domain, remote
 * domain) pair, on the remote domain's home worker: found by SRV or s2s.route, TLS, then SASL
 * EXTERNAL or dialback; stanzas queue meanwhile, and with XEP-0198 stay kept until acknowledged
 * (sent again on a new stream if the peer dies first). We ask for XEP-0288 bidi where offered.
 *
 * Invariant: a stanza is written only on an authenticated stream, and then either the peer
 * acknowledges it, the peer has no XEP-0198, or it bounces to its sender.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s_int.h"

static unsigned long out_next_serial;

static void out_data(struct conn *c, void *arg);
static void out_closed(struct conn *c, void *arg, const char *reason);
static void out_connected(struct conn *c, void *arg);

static const struct conn_cb out_cb = {
    .data = out_data, .closed = out_closed, .connected = out_connected};

static void
stq_push(struct stq *q, struct xml_node *st)
{
	st->next = NULL;
	if (q->tail)
		q->tail->next = st;
	else
		q->head = st;
	q->tail = st;
	q->len++;
}

static struct xml_node *
stq_pop(struct stq *q)
{
	struct xml_node *st = q->head;

	if (!st)
		return NULL;
	q->head = st->next;
	if (!q->head)
		q->tail = NULL;
	q->len--;
	st->next = NULL;
	return st;
}

/* Moves all of from to the front of to. */
static void
stq_prepend(struct stq *to, struct stq *from)
{
	if (!from->head)
		return;
	from->tail->next = to->head;
	if (!to->head)
		to->tail = from->tail;
	to->head = from->head;
	to->len += from->len;
	*from = (struct stq){0};
}

static void
out_maybe_free(struct s2s_out *o)
{
	if (!o->dead || o->lookups > 0)
		return;
	for (size_t i = 0; i < o->naddrs; i++)
		free(o->addrs[i]);
	free(o->addrs);
	free(o->targets);
	s2s_rx_free(&o->rx);
	free(o->key);
	free(o->local);
	free(o->remote);
	free(o->peer_id);
	free(o);
}
static struct s2s_out *out_new(struct worker *w, const char *local, const char *remote,
			       const char *key);

static void
out_end(struct s2s_out *o, const char *condition)
{
	struct worker *w = o->w;

	if (o->dead)
		return;
	o->dead = true;
	hmap_del(&w->s2s_out, o->key);
	timer_stop(w->loop, &o->timer);
	timer_stop(w->loop, &o->retry);
	stq_prepend(&o->q, &o->unacked);
	/*
	 * What the peer did not acknowledge goes again on a new stream (XEP-0198 section 5: the
	 * peer may get it twice, never not at all), unless streams keep breaking before any ack.
	 */
	if (o->sm && o->q.len && o->resends < S2S_RESENDS && !w->stopping) {
		log_info("s2s %s -> %s: %s; %zu unacknowledged stanzas go again", o->local,
			 o->remote, o->why, o->q.len);
		struct s2s_out *next = out_new(w, o->local, o->remote, o->key);
		next->q = o->q;
		next->resends = o->resends + 1;
		o->q = (struct stq){0};
	} else if (o->state != OUT_READY || o->q.len) {
		log_info("s2s %s -> %s: %s%s", o->local, o->remote, o->why,
			 o->q.len ? "; bouncing what waits" : "");
	} else {
		log_debug("s2s %s -> %s: closed (%s)", o->local, o->remote, o->why);
	}
	for (struct xml_node *st; (st = stq_pop(&o->q));) {
		/* RFC 6120 8.3.3.15-16: not found is final, a timeout may pass. */
		route_error(w, st,
			    strcmp(condition, "remote-server-timeout") == 0 ? "wait" : "cancel",
			    condition, o->why);
		xml_free(st);
	}
	while (o->verifies) {
		struct s2s_verify *v = o->verifies;
		o->verifies = v->next;
		s2s_verify_return(v, -1);
	}
	pstream_free(&o->p);
	out_maybe_free(o);
}

static void out_fail(struct s2s_out *o, const char *condition, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
out_fail(struct s2s_out *o, const char *condition, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->why, sizeof o->why, fmt, ap);
	va_end(ap);
	out_end(o, condition);
}

static void
out_send_verifies(struct s2s_out *o)
{
	for (struct s2s_verify *v = o->verifies; v; v = v->next) {
		if (v->sent)
			continue;
		struct xml_node *el = xml_el_new("verify", NS_DIALBACK);
		xml_set_attr(el, "from", v->local);
		xml_set_attr(el, "to", v->remote);
		xml_set_attr(el, "id", v->stream_id);
		xml_add_text(el, v->key, strlen(v->key));
		pstream_send(&o->p, el, NS_SERVER);
		xml_free(el);
		v->sent = true;
	}
}
/* Writes st (taken) on the ready stream; with XEP-0198 it is kept until acknowledged. */
static void
out_write(struct s2s_out *o, struct xml_node *st)
{
	pstream_send(&o->p, st, NS_SERVER);
	if (!o->sm) {
		xml_free(st);
		return;
	}
	stq_push(&o->unacked, st);
	if (!o->sm_r_pending) { /* one request in flight; the answer asks again if needed */
		pstream_write(&o->p, "<r xmlns='" NS_SM "'/>");
		o->sm_r_pending = true;
	}
}

/* <a h='N'/>: the peer handled N stanzas since our enable (XEP-0198 section 4). */
static void
out_acked(struct s2s_out *o, const struct xml_node *el)
{
	const char *h = xml_attr(el, "h");
	char *end = NULL;
	unsigned long n = h ? strtoul(h, &end, 10) : 0;
	uint32_t delta;

	o->sm_r_pending = false;
	if (!h || !*h || *end || n > UINT32_MAX)
		return;
	delta = (uint32_t)n - o->sm_acked; /* h wraps at 2^32 */
	if (delta > o->unacked.len) {
		log_info("s2s %s -> %s: ack for %u stanzas, %zu were sent", o->local, o->remote,
			 delta, o->unacked.len);
		delta = (uint32_t)o->unacked.len;
	}
	o->sm_acked += delta;
	if (delta)
		o->resends = 0;
	while (delta--)
		xml_free(stq_pop(&o->unacked));
	if (o->unacked.len) {
		pstream_write(&o->p, "<r xmlns='" NS_SM "'/>");
		o->sm_r_pending = true;
	}
}

static void
out_ready(struct s2s_out *o)
{
	o->state = OUT_READY;
	log_info("s2s %s -> %s: ready%s", o->local, o->remote,
		 o->sm_offered ? " (stream management)" : "");
	timer_stop(o->w->loop, &o->timer);
	timer_start(o->w->loop, &o->timer, s2s_cfg(o->w)->s2s_idle_timeout);
	if (o->sm_offered) { /* XEP-0198 section 3: counting starts with our enable */
		pstream_write(&o->p, "<enable xmlns='" NS_SM "'/>");
		o->sm = true;
		o->sm_acked = 0;
	}
	for (struct xml_node *st; (st = stq_pop(&o->q));)
		out_write(o, st);
	o->last_io = now_ms();
}

static void
out_timer(struct timer *t)
{
	struct s2s_out *o = container_of(t, struct s2s_out, timer);
	uint64_t idle = s2s_cfg(o->w)->s2s_idle_timeout;

	if (o->state != OUT_READY) {
		out_fail(o, "remote-server-timeout", "not connected within s2s.connect_timeout");
		return;
	}
	if (now_ms() - o->last_io < idle) {
		timer_start(o->w->loop, t, idle - (now_ms() - o->last_io));
		return;
	}
	/* RFC 6120 4.4: an idle stream is closed; the next stanza opens a new one. */
	pstream_write(&o->p, "</stream:stream>");
	out_fail(o, "remote-server-timeout", "idle");
}

static void try_next_address(struct s2s_out *o);

static void
out_connected(struct conn *c, void *arg)
{
	struct s2s_out *o = arg;
	const struct s2s_target *t = &o->targets[o->ti];

	o->state = OUT_FEATURES;
	if (t->direct_tls) { /* XEP-0368: TLS from the first byte */
		conn_starttls_host(c, o->w->srv->s2s_tls_out, o->remote);
		o->tls = true;
	}
	pstream_open(&o->p, NS_SERVER, o->local, o->remote, NULL);
}

static void
out_closed(struct conn *c, void *arg, const char *reason)
{
	struct s2s_out *o = arg;

	if (o->state == OUT_READY) {
		snprintf(o->why, sizeof o->why, "connection lost: %s", reason);
		out_end(o, "remote-server-not-found");
		return;
	}
	/* Not set up yet (refused, or broken during TLS or authentication): the next address. */
	log_debug("s2s %s -> %s: %s: %s", o->local, o->remote, c->peer, reason);
	snprintf(o->why, sizeof o->why, "%s: %s", c->peer, reason);
	conn_close(c);
	o->p.c = NULL;
	pstream_free(&o->p);
	o->tls = o->authed = o->can_verify = o->bidi = o->sm_offered = false;
	for (struct s2s_verify *v = o->verifies; v; v = v->next)
		v->sent = false; /* they go again on the next connection */
	o->ai++;
	try_next_address(o);
}

static void try_next_target(struct s2s_out *o);

static void
try_next_address(struct s2s_out *o)
{
	const struct config *cfg = s2s_cfg(o->w);
	const struct s2s_target *t = &o->targets[o->ti];
	char addr[320], err[256];

	for (; o->ai < o->naddrs; o->ai++) {
		const char *ip = o->addrs[o->ai];
		snprintf(addr, sizeof addr, strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, t->port);
		struct conn *c = conn_connect(o->w->loop, addr, &out_cb, o, err, sizeof err);
		if (!c) {
			log_debug("s2s %s -> %s: %s", o->local, o->remote, err);
			continue;
		}
		conn_set_limits(c, S2S_READ_MAX, cfg->send_queue * 4, 0, 0);
		memset(&o->p, 0, sizeof o->p);
		pstream_init(&o->p, c, cfg->stanza_size, (int)cfg->stanza_depth);
		o->state = OUT_CONNECTING;
		return;
	}
	o->ti++;
	try_next_target(o);
}

static void
addr_done(void *arg, int status, const char *const *addrs, size_t n)
{
	struct s2s_out *o = arg;

	o->lookups--;
	if (o->dead || status == -ECANCELED) { /* -ECANCELED: the loop is ending */
		out_maybe_free(o);
		return;
	}
	for (size_t i = 0; i < o->naddrs; i++)
		free(o->addrs[i]);
	free(o->addrs);
	o->addrs = NULL;
	o->naddrs = o->ai = 0;
	if (status == 0 && n > 0) {
		o->addrs = xcalloc(n, sizeof *o->addrs);
		for (size_t i = 0; i < n; i++)
			o->addrs[i] = xstrdup(addrs[i]);
		o->naddrs = n;
	} else {
		snprintf(o->why, sizeof o->why, "%s: no address", o->targets[o->ti].host);
	}
	try_next_address(o);
}

static void
retry_fired(struct timer *t)
{
	struct s2s_out *o = container_of(t, struct s2s_out, retry);

	o->ti = 0;
	o->why[0] = '\0';
	try_next_target(o);
}

static void
try_next_target(struct s2s_out *o)
{
	/*
	 * Stanzas the peer did not acknowledge before its stream broke wait for it to come back
	 * (a restart) until s2s.connect_timeout, trying every second; the rest bounce at once.
	 */
	if (o->ti >= o->ntargets && o->resends > 0) {
		o->state = OUT_RESOLVING;
		timer_start(o->w->loop, &o->retry, S2S_RETRY_MS);
		return;
	}
	if (o->ti >= o->ntargets) {
		if (!o->why[0])
			snprintf(o->why, sizeof o->why, "cannot reach %s", o->remote);
		out_end(o, "remote-server-not-found");
		return;
	}
	o->state = OUT_RESOLVING;
	o->lookups++;
	dns_addr(o->w->loop, o->targets[o->ti].host, addr_done, o);
}

static void
add_target(struct s2s_out *o, const char *host, unsigned port, unsigned prio, unsigned weight,
	   bool direct_tls)
{
	struct s2s_target *t;

	o->targets = xrealloc(o->targets, (o->ntargets + 1) * sizeof *o->targets);
	t = &o->targets[o->ntargets++];
	snprintf(t->host, sizeof t->host, "%s", host);
	t->port = port;
	t->priority = prio;
	t->weight = weight;
	t->direct_tls = direct_tls;
}

/* RFC 2782: lower priority first; within one, heavier first (direct TLS before STARTTLS). */
static int
target_cmp(const void *a, const void *b)
{
	const struct s2s_target *x = a, *y = b;

	if (x->priority != y->priority)
		return x->priority < y->priority ? -1 : 1;
	if (x->weight != y->weight)
		return x->weight > y->weight ? -1 : 1;
	return (int)y->direct_tls - (int)x->direct_tls;
}

static void
srv_done(struct s2s_out *o, int status, const struct dns_srv *recs, size_t n, bool direct_tls)
{
	o->lookups--;
	o->srv_pending--;
	if (o->dead || status == -ECANCELED) {
		out_maybe_free(o);
		return;
	}
	for (size_t i = 0; status == 0 && i < n; i++) {
		/* RFC 2782: a single "." target means the service is not offered there. */
		if (strcmp(recs[i].target, ".") == 0 || !recs[i].target[0])
			continue;
		add_target(o, recs[i].target, recs[i].port, recs[i].priority, recs[i].weight,
			   direct_tls);
	}
	if (o->srv_pending > 0)
		return;
	/* RFC 6120 3.2.2: without SRV records, the domain itself on the default port. */
	if (o->ntargets == 0)
		add_target(o, o->remote, S2S_PORT, 0, 0, false);
	qsort(o->targets, o->ntargets, sizeof *o->targets, target_cmp);
	o->ti = 0;
	try_next_target(o);
}

static void
srv_tls_done(void *arg, int status, const struct dns_srv *recs, size_t n)
{
	srv_done(arg, status, recs, n, true);
}

static void
srv_tcp_done(void *arg, int status, const struct dns_srv *recs, size_t n)
{
	srv_done(arg, status, recs, n, false);
}

/* s2s.route.<domain>, or that of the nearest parent domain (conference.b.test -> b.test). */
static const char *
static_route(const struct config *cfg, const char *domain)
{
	for (const char *d = domain; d; d = strchr(d, '.') ? strchr(d, '.') + 1 : NULL) {
		const char *r = config_pair_get(cfg->s2s_routes, cfg->n_s2s_routes, d);
		if (r)
			return r;
	}
	return NULL;
}

static struct s2s_out *
out_new(struct worker *w, const char *local, const char *remote, const char *key)
{
	const struct config *cfg = s2s_cfg(w);
	struct s2s_out *o = xcalloc(1, sizeof *o);
	const char *route_to = static_route(cfg, remote);
	char name[300];

	o->w = w;
	o->serial = __atomic_add_fetch(&out_next_serial, 1, __ATOMIC_RELAXED);
	o->key = xstrdup(key);
	o->local = xstrdup(local);
	o->remote = xstrdup(remote);
	o->timer.fn = out_timer;
	o->retry.fn = retry_fired;
	hmap_put(&w->s2s_out, key, o);
	timer_start(w->loop, &o->timer, cfg->s2s_connect_timeout);
	log_debug("s2s %s -> %s: connecting", local, remote);
	if (route_to) { /* s2s.route.<domain>: host:port, no SRV */
		char host[256];
		const char *colon = strrchr(route_to, ':');
		unsigned port = colon ? (unsigned)atoi(colon + 1) : S2S_PORT;
		size_t hl = colon ? (size_t)(colon - route_to) : strlen(route_to);
		if (hl >= sizeof host)
			hl = sizeof host - 1;
		memcpy(host, route_to, hl);
		host[hl] = '\0';
		if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') { /* [v6]:port */
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		add_target(o, host, port ? port : S2S_PORT, 0, 0, false);
		try_next_target(o);
		return o;
	}
	o->srv_pending = 2;
	o->lookups += 2;
	snprintf(name, sizeof name, "_xmpps-server._tcp.%s", remote);
	dns_srv(w->loop, name, srv_tls_done, o);
	snprintf(name, sizeof name, "_xmpp-server._tcp.%s", remote);
	dns_srv(w->loop, name, srv_tcp_done, o);
	return o;
}

static struct s2s_out *
out_get(struct worker *w, const char *local, const char *remote)
{
	char key[600];
	struct s2s_out *o;

	snprintf(key, sizeof key, "%s %s", local, remote);
	o = hmap_get(&w->s2s_out, key);
	return o ? o : out_new(w, local, remote, key);
}

static void
out_dialback(struct s2s_out *o)
{
	char key[65];
	struct xml_node *el = xml_el_new("result", NS_DIALBACK);

	/* XEP-0220 2.1.1: the key for this stream, which the peer checks with our domain. */
	s2s_dialback_key(o->w->srv, o->remote, o->local, o->peer_id ? o->peer_id : "", key);
	xml_set_attr(el, "from", o->local);
	xml_set_attr(el, "to", o->remote);
	xml_add_text(el, key, strlen(key));
	pstream_send(&o->p, el, NS_SERVER);
	xml_free(el);
	o->state = OUT_DIALBACK;
}

/* The peer's features (RFC 6120 4.3.2): TLS first, then authentication, then stanzas. */
static void
out_features(struct s2s_out *o, const struct xml_node *f)
{
	const struct config *cfg = s2s_cfg(o->w);
	struct xml_node *mechs = xml_child(f, "mechanisms", NS_SASL);
	bool external = false;

	if (!o->tls) {
		if (!xml_child(f, "starttls", NS_TLS)) {
			out_fail(o, "remote-server-not-found", "%s does not offer TLS", o->remote);
			return;
		}
		pstream_write(&o->p, "<starttls xmlns='" NS_TLS "'/>");
		o->state = OUT_STARTTLS;
		return;
	}
	/* RFC 6120 13.7.2.1: with dialback refused, the peer's certificate must be good. */
	if (!cfg->s2s_dialback && !conn_tls_peer_ok(o->p.c, o->remote)) {
		out_fail(o, "remote-server-not-found",
			 "the certificate of %s does not verify (s2s.dialback is off)", o->remote);
		return;
	}
	o->can_verify = true;
	out_send_verifies(o);
	if (o->authed) { /* the features of the stream after SASL */
		o->sm_offered = xml_child(f, "sm", NS_SM) != NULL;
		out_ready(o);
		return;
	}
	o->dialback_offered = xml_child(f, "dialback", NS_DIALBACK_FEATURE) != NULL;
	/* XEP-0288 2.2: bidi before SASL or dialback, once TLS is up. */
	if (xml_child(f, "bidi", NS_BIDI_FEATURE) && !o->bidi) {
		pstream_write(&o->p, "<bidi xmlns='" NS_BIDI "'/>");
		o->bidi = true;
	}
	o->sm_offered = xml_child(f, "sm", NS_SM) != NULL;
	for (struct xml_node *m = mechs ? xml_child(mechs, "mechanism", NS_SASL) : NULL; m;
	     m = xml_next(m, "mechanism", NS_SASL)) {
		char *t = xml_text(m);
		external |= strcmp(t, "EXTERNAL") == 0;
		free(t);
	}
	if (external) {
		/* XEP-0178 3: authorization identity = our domain. */
		struct buf b = {0};
		buf_puts(&b, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>");
		base64_encode(&b, o->local, strlen(o->local));
		buf_puts(&b, "</auth>");
		pstream_write(&o->p, buf_head(&b));
		buf_free(&b);
		o->state = OUT_SASL;
		return;
	}
	if (cfg->s2s_dialback && o->dialback_offered) {
		out_dialback(o);
		return;
	}
	out_fail(o, "remote-server-not-found", "no way to authenticate with %s", o->remote);
}

/* A db:verify answer on our outgoing stream (XEP-0220 2.1.3). */
static void
out_verify_answer(struct s2s_out *o, const struct xml_node *el)
{
	const char *id = xml_attr(el, "id"), *type = xml_attr(el, "type");

	for (struct s2s_verify **pv = &o->verifies; *pv; pv = &(*pv)->next) {
		struct s2s_verify *v = *pv;
		if (!v->sent || !id || strcmp(v->stream_id, id) != 0)
			continue;
		*pv = v->next;
		s2s_verify_return(v, type && strcmp(type, "valid") == 0 ? 1 : 0);
		return;
	}
}

/*
 * A stanza of the peer on our bidirectional stream (XEP-0288 2.2): only once we are
 * authenticated, and only from the domain we connected to, to the domain we connected from
 * (the stream's pair, which TLS and our DNS lookup vouch for as they do for dialback).
 * Takes st; false if the stream ended.
 */
static bool
out_peer_stanza(struct s2s_out *o, struct xml_node *st)
{
	char *from = s2s_domain_of(xml_attr(st, "from")), *to = s2s_domain_of(xml_attr(st, "to"));
	bool ok = o->bidi && o->state == OUT_READY && from && to && !strcmp(from, o->remote) &&
		  !strcmp(to, o->local);

	free(from);
	free(to);
	if (!ok) {
		xml_free(st);
		pstream_error(&o->p, "invalid-from", "not a stanza of this stream's domain pair");
		out_fail(o, "remote-server-not-found", "%s sent a stanza it may not send here",
			 o->remote);
		return false;
	}
	s2s_rx_deliver(o->w, &o->rx, st,
		       (struct rx_store){.out_key = o->key, .out_serial = o->serial});
	return true;
}

/* Handles what the peer sent on our outgoing stream; returns false once o is gone. */
static bool
out_element(struct s2s_out *o, struct xml_node *el)
{
	const char *type = xml_attr(el, "type");

	o->last_io = now_ms();
	if (strcmp(el->ns, NS_STREAM) == 0 && strcmp(el->name, "error") == 0) {
		struct xml_node *c = xml_child(el, NULL, NS_STREAMS);
		out_fail(o, "remote-server-not-found", "stream error from the peer: %s",
			 c ? c->name : "?");
		return false;
	}
	if (strcmp(el->ns, NS_STREAM) == 0 && strcmp(el->name, "features") == 0 &&
	    o->state == OUT_FEATURES) {
		out_features(o, el);
		return !o->dead;
	}
	if (strcmp(el->ns, NS_TLS) == 0 && o->state == OUT_STARTTLS) {
		if (strcmp(el->name, "proceed") != 0) {
			out_fail(o, "remote-server-not-found", "STARTTLS refused");
			return false;
		}
		conn_starttls_host(o->p.c, o->w->srv->s2s_tls_out, o->remote);
		o->tls = true;
		o->can_verify = false;
		pstream_restart(&o->p);
		pstream_open(&o->p, NS_SERVER, o->local, o->remote, NULL);
		o->state = OUT_FEATURES;
		return true;
	}
	if (strcmp(el->ns, NS_SASL) == 0 && o->state == OUT_SASL) {
		if (strcmp(el->name, "success") == 0) {
			o->authed = true; /* RFC 6120 6.4.6: a new stream follows */
			o->can_verify = false;
			pstream_restart(&o->p);
			pstream_open(&o->p, NS_SERVER, o->local, o->remote, NULL);
			o->state = OUT_FEATURES;
			return true;
		}
		if (s2s_cfg(o->w)->s2s_dialback && o->dialback_offered) {
			out_dialback(o); /* XEP-0178 4: dialback after a failed EXTERNAL */
			return true;
		}
		out_fail(o, "remote-server-not-found", "%s refused our certificate", o->remote);
		return false;
	}
	if (strcmp(el->ns, NS_DIALBACK) == 0 && strcmp(el->name, "result") == 0 &&
	    o->state == OUT_DIALBACK) {
		if (type && strcmp(type, "valid") == 0) {
			o->authed = true;
			out_ready(o);
			return true;
		}
		out_fail(o, "remote-server-not-found", "dialback with %s failed", o->remote);
		return false;
	}
	if (strcmp(el->ns, NS_DIALBACK) == 0 && strcmp(el->name, "verify") == 0) {
		out_verify_answer(o, el);
		return true;
	}
	if (strcmp(el->ns, NS_SM) == 0 && o->sm) {
		if (strcmp(el->name, "a") == 0) {
			out_acked(o, el);
		} else if (strcmp(el->name, "r") == 0) {
			o->rx.on = true; /* what came this way: only the peer's stanzas over bidi */
			s2s_rx_ack(&o->rx, &o->p);
		} else if (strcmp(el->name, "failed") == 0) {
			/* No counting on this stream: what was kept can no longer be told apart. */
			o->sm = false;
			for (struct xml_node *st; (st = stq_pop(&o->unacked));)
				xml_free(st);
		}
		return true;
	}
	log_debug("s2s %s -> %s: ignored <%s xmlns='%s'/>", o->local, o->remote, el->name, el->ns);
	return true;
}

static void out_input(struct s2s_out *o);

static void
out_data(struct conn *c, void *arg)
{
	struct s2s_out *o = arg;

	o->lookups++; /* o outlives this call even if it ends here */
	out_input(o);
	o->lookups--;
	out_maybe_free(o);
}

static void
out_input(struct s2s_out *o)
{
	struct xml_node *el;

	pstream_input(&o->p);
	if (o->p.header.fresh) {
		o->p.header.fresh = false;
		if (!o->p.header.root_ok || strcmp(o->p.header.ns, NS_SERVER) != 0) {
			pstream_error(&o->p, "invalid-namespace", NULL);
			out_fail(o, "remote-server-not-found", "%s did not open a server stream",
				 o->remote);
			return;
		}
		free(o->peer_id);
		o->peer_id = o->p.header.id ? xstrdup(o->p.header.id) : NULL;
	}
	while (!o->dead && (el = pstream_next(&o->p))) {
		bool alive;
		o->last_io = now_ms();
		if (s2s_is_stanza(el, NS_SERVER)) {
			alive = out_peer_stanza(o, el);
		} else {
			alive = out_element(o, el);
			xml_free(el);
		}
		if (!alive)
			return;
	}
	if (o->p.parse_error) {
		pstream_error(&o->p, xml_status_condition(o->p.parse_error), NULL);
		out_fail(o, "remote-server-not-found", "bad XML from %s", o->remote);
	} else if (o->p.peer_closed) {
		pstream_write(&o->p, "</stream:stream>");
		out_fail(o, "remote-server-not-found", "%s closed the stream", o->remote);
	}
}

struct route_mail_s2s {
	struct xml_node *st;
	char *local, *remote;
};
static void
out_arrive(struct worker *w, void *arg)
{
	struct route_mail_s2s *m = arg;
	struct s2s_out *o;

	if (w->stopping) {
		xml_free(m->st);
	} else if ((o = out_get(w, m->local, m->remote))->state == OUT_READY) {
		out_write(o, m->st);
		o->last_io = now_ms();
	} else if (o->q.len >= (size_t)s2s_cfg(w)->s2s_queue_max) {
		route_error(w, m->st, "wait", "resource-constraint",
			    "too many stanzas wait for this server");
		xml_free(m->st);
	} else {
		stq_push(&o->q, m->st);
	}
	free(m->local);
	free(m->remote);
	free(m);
}

void
s2s_route(struct worker *w, struct xml_node *st, const struct jid *from, const struct jid *to)
{
	struct server *srv = w->srv;
	struct route_mail_s2s *m;

	if (!srv->s2s_tls_out) {
		route_error(w, st, "cancel", "remote-server-not-found",
			    "this server does not federate");
		xml_free(st);
		return;
	}
	if (!server_hosts(srv, from->domain)) {
		/* We relay nothing between two other servers. */
		log_info("s2s: dropped a stanza from %s to %s: not ours", from->domain, to->domain);
		xml_free(st);
		return;
	}
	m = xmalloc(sizeof *m);
	m->st = st;
	m->local = xstrdup(from->domain);
	m->remote = xstrdup(to->domain);
	worker_call(server_home(srv, to->domain), out_arrive, m);
}

/* An incoming stream asks us to check a dialback key with the peer's authoritative server. */
void
s2s_verify_arrive(struct worker *w, void *arg)
{
	struct s2s_verify *v = arg;
	struct s2s_out *o;

	if (w->stopping) {
		s2s_verify_return(v, -1);
		return;
	}
	o = out_get(w, v->local, v->remote);
	v->next = o->verifies;
	o->verifies = v;
	if (o->can_verify)
		out_send_verifies(o);
}

void
s2s_out_stop_all(struct worker *w)
{
	const char *k;
	void *v;
	for (size_t i = 0; hmap_next(&w->s2s_out, &i, &k, &v);) {
		struct s2s_out *o = v;
		if (o->p.c)
			pstream_write(&o->p, "</stream:stream>");
	}
	/* out_end() removes from the map: collect first. */
	while (w->s2s_out.count) {
		size_t i = 0;
		if (!hmap_next(&w->s2s_out, &i, &k, &v))
			break;
		snprintf(((struct s2s_out *)v)->why, sizeof((struct s2s_out *)v)->why,
			 "server shutting down");
		out_end(v, "remote-server-timeout");
	}
	hmap_free(&w->s2s_out);
}
