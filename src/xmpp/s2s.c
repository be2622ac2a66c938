/*
 * s2s: federation with other XMPP servers (RFC 6120 section 13). Outgoing, one stream per
 * (our domain, remote domain) pair, owned by the remote domain's home worker: found by SRV
 * (_xmpps-server, _xmpp-server, RFC 6120 3.2 and XEP-0368) or s2s.route, TLS always, then
 * SASL EXTERNAL with our certificate (XEP-0178) or dialback (XEP-0220); stanzas wait in a
 * queue meanwhile, and with XEP-0198 stay kept until the peer acknowledges them. We ask for
 * XEP-0288 bidi where offered. Incoming streams stay on the worker that accepted them and
 * route what an authenticated peer sends, committing messages for local accounts first.
 *
 * Invariant: a stanza from a peer is routed only if its 'from' is a domain that peer
 * authenticated on this stream (on our own bidi stream: the domain we connected to) and its
 * 'to' is a domain we host; a stanza for a peer is written only once that stream is
 * authenticated, and is either acknowledged by the peer, written to a peer without XEP-0198,
 * or bounced to its sender: it never disappears silently.
 */
#include <errno.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"
#define NS_BIDI_FEATURE	    "urn:xmpp:features:bidi"
#define NS_BIDI		    "urn:xmpp:bidi"
#define S2S_PORT	    5269
#define S2S_READ_MAX	    65536
#define S2S_RETRY_MS	    1000 /* between attempts to reach a peer whose stream broke */
#define S2S_RESENDS	    3	 /* streams in a row that may break before any ack */
#define S2S_VERIFY_MAX	    8	 /* dialback checks one incoming stream may have pending */

/* Counts of authenticated incoming streams per peer domain, shared by the workers. */
struct s2s_shared {
	pthread_mutex_t lock;
	struct hmap counts; /* domain -> (uintptr_t) streams */
};

/* A dialback verification (XEP-0220 2.1.2): asked by an incoming stream, sent on an outgoing. */
struct s2s_verify {
	struct s2s_verify *next;
	char *stream_id, *key;
	char *local, *remote; /* receiving (ours) and originating (theirs) domain */
	struct worker *in_w;
	unsigned long in_id;
	bool sent;
	int result; /* 1 valid, 0 invalid, -1 error */
};

enum out_state {
	OUT_RESOLVING,
	OUT_CONNECTING,
	OUT_FEATURES, /* our header sent, waiting for theirs and their features */
	OUT_STARTTLS,
	OUT_SASL,
	OUT_DIALBACK,
	OUT_READY,
};

/* Stanzas in order: waiting for a stream, or written and not yet acknowledged (XEP-0198). */
struct stq {
	struct xml_node *head, *tail;
	size_t len;
};

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

/*
 * The stanzas a peer sends us on one stream (an incoming stream, or our own with bidi),
 * counted for its XEP-0198 acks. A message for a local account is committed before it is
 * routed (durable.c), and the acks stop before it until then.
 */
struct s2s_rx {
	bool on;	   /* the peer enabled XEP-0198 (or asks for acks on our bidi stream) */
	uint32_t n, base;  /* stanzas received; n when the peer enabled */
	uint32_t *storing; /* numbers of those still being stored, in arrival order */
	size_t nstoring, cap;
	bool owed; /* an ack went out short of n: the rest goes when they are stored */
};

struct s2s_target {
	char host[256];
	unsigned port, priority, weight;
	bool direct_tls; /* XEP-0368 */
};

struct s2s_out {
	struct worker *w;
	char *key; /* "local remote" */
	char *local, *remote;
	enum out_state state;
	struct pstream p;
	bool tls, authed, dialback_offered;
	bool can_verify; /* TLS is up and the peer sent its features: db:verify may go */
	struct s2s_target *targets;
	size_t ntargets, ti;
	char **addrs;
	size_t naddrs, ai;
	int srv_pending; /* SRV lookups outstanding */
	int lookups;	 /* DNS callbacks (and out_data) that still point here */
	bool dead;	 /* gone from the map: freed once lookups is 0 */
	char *peer_id;	 /* the id of the peer's stream header, for the dialback key */
	struct stq q;	 /* waiting for the stream to be ready */
	/* XEP-0198 on this stream: written stanzas are kept until the peer acknowledges them */
	bool sm_offered, sm, sm_r_pending;
	uint32_t sm_acked; /* the peer's last h */
	struct stq unacked;
	int resends; /* streams in a row that broke before acknowledging anything */
	/* XEP-0288: we asked the peer to send its stanzas (from remote to local) here too */
	bool bidi;
	struct s2s_rx rx;
	unsigned long serial; /* tells this stream from a later one for the same pair */
	struct s2s_verify *verifies;
	struct timer timer; /* connect deadline, then idle checks */
	struct timer retry; /* a stream that broke: its peer may be restarting */
	uint64_t last_io;
	char why[320]; /* the last failure, for logs and bounce texts */
};

struct s2s_in {
	struct worker *w;
	unsigned long id;
	struct pstream p;
	char stream_id[17];
	char *local; /* the domain the stream was opened to */
	bool tls, sasl_done, closed;
	bool hold;     /* in_data() is running: in_close() leaves the freeing to it */
	int verifying; /* dialback checks asked for and not answered yet */
	struct s2s_rx rx;
	struct hmap authed;  /* remote domains authenticated on this stream */
	struct hmap counted; /* those of them counted in s2s_shared */
	struct timer idle;
	uint64_t last_io;
};

static unsigned long in_next_id, out_next_serial;

static void rx_free(struct s2s_rx *rx);

static void out_data(struct conn *c, void *arg);
static void out_closed(struct conn *c, void *arg, const char *reason);
static void out_connected(struct conn *c, void *arg);
static void in_data(struct conn *c, void *arg);
static void in_closed(struct conn *c, void *arg, const char *reason);

static const struct conn_cb out_cb = {
    .data = out_data, .closed = out_closed, .connected = out_connected};
static const struct conn_cb in_cb = {.data = in_data, .closed = in_closed};

static const struct config *
cfg_of(struct worker *w)
{
	return w->srv->cfg;
}

/* ---- setup ---- */

int
s2s_init(struct server *srv, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;

	if (!*cfg->s2s_listen)
		return 0;
	srv->s2s_tls_in = tls_s2s_ctx_new(cfg->cert_file, cfg->key_file, cfg->data_dir, cfg->domain,
					  cfg->s2s_ca_file, false, err, errlen);
	if (!srv->s2s_tls_in)
		return -1;
	srv->s2s_tls_out = tls_s2s_ctx_new(cfg->cert_file, cfg->key_file, cfg->data_dir,
					   cfg->domain, cfg->s2s_ca_file, true, err, errlen);
	if (!srv->s2s_tls_out)
		return -1;
	if (dns_set_server(cfg->s2s_resolver, err, errlen) < 0)
		return -1;
	srv->s2s = xcalloc(1, sizeof *srv->s2s);
	pthread_mutex_init(&srv->s2s->lock, NULL);
	log_info("federation on: s2s %s, dialback %s", cfg->s2s_listen,
		 cfg->s2s_dialback ? "allowed" : "refused");
	return 0;
}

void
s2s_free(struct server *srv)
{
	tls_ctx_free(srv->s2s_tls_in);
	tls_ctx_free(srv->s2s_tls_out);
	srv->s2s_tls_in = srv->s2s_tls_out = NULL;
	if (srv->s2s) {
		pthread_mutex_destroy(&srv->s2s->lock);
		hmap_free(&srv->s2s->counts);
		free(srv->s2s);
		srv->s2s = NULL;
	}
}

/* May one more incoming stream of domain be authenticated (s2s.max_per_domain)? */
static bool
admit(struct server *srv, const char *domain)
{
	struct s2s_shared *sh = srv->s2s;
	bool ok;

	pthread_mutex_lock(&sh->lock);
	uintptr_t n = (uintptr_t)hmap_get(&sh->counts, domain);
	ok = (long)n < srv->cfg->s2s_max_per_domain;
	if (ok)
		hmap_put(&sh->counts, domain, (void *)(n + 1));
	pthread_mutex_unlock(&sh->lock);
	return ok;
}

static void
release(struct server *srv, const char *domain)
{
	struct s2s_shared *sh = srv->s2s;

	pthread_mutex_lock(&sh->lock);
	uintptr_t n = (uintptr_t)hmap_get(&sh->counts, domain);
	if (n <= 1)
		hmap_del(&sh->counts, domain);
	else
		hmap_put(&sh->counts, domain, (void *)(n - 1));
	pthread_mutex_unlock(&sh->lock);
}

/*
 * XEP-0185 section 3: key = HMAC-SHA256(SHA256(secret), receiving ' ' originating ' ' id) in
 * hex. The secret is this process's; nothing is remembered, so any worker can check a key.
 */
static void
dialback_key(const struct server *srv, const char *receiving, const char *originating,
	     const char *id, char out[65])
{
	unsigned char secret[SHA256_DIGEST_LENGTH], mac[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	struct buf msg = {0};

	SHA256((const unsigned char *)srv->key, strlen(srv->key), secret);
	buf_printf(&msg, "%s %s %s", receiving, originating, id);
	HMAC(EVP_sha256(), secret, sizeof secret, (const unsigned char *)buf_head(&msg),
	     buf_used(&msg), mac, &len);
	buf_free(&msg);
	for (unsigned i = 0; i < len && i < 32; i++)
		sprintf(out + 2 * i, "%02x", mac[i]);
	out[64] = '\0';
}

static bool
is_stanza(const struct xml_node *el, const char *ns)
{
	return strcmp(el->ns, ns) == 0 &&
	       (strcmp(el->name, "message") == 0 || strcmp(el->name, "presence") == 0 ||
		strcmp(el->name, "iq") == 0);
}

/* The domain of a JID string, normalized; NULL if it is not a JID. Caller frees. */
static char *
domain_of(const char *s)
{
	struct jid j;
	char *d;

	if (!s || jid_parse(s, &j) < 0)
		return NULL;
	d = xstrdup(j.domain);
	jid_free(&j);
	return d;
}

/* ---- outgoing streams ---- */

static void
verify_free(struct s2s_verify *v)
{
	free(v->stream_id);
	free(v->key);
	free(v->local);
	free(v->remote);
	free(v);
}

static void verify_answer(struct worker *w, void *arg);

/* Sends the outcome of v back to the incoming stream that asked. */
static void
verify_return(struct s2s_verify *v, int result)
{
	v->result = result;
	worker_call(v->in_w, verify_answer, v);
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
	rx_free(&o->rx);
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
		verify_return(v, -1);
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
	timer_start(o->w->loop, &o->timer, cfg_of(o->w)->s2s_idle_timeout);
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
	uint64_t idle = cfg_of(o->w)->s2s_idle_timeout;

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
	const struct config *cfg = cfg_of(o->w);
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
	const struct config *cfg = cfg_of(w);
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
	dialback_key(o->w->srv, o->remote, o->local, o->peer_id ? o->peer_id : "", key);
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
	const struct config *cfg = cfg_of(o->w);
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
		verify_return(v, type && strcmp(type, "valid") == 0 ? 1 : 0);
		return;
	}
}

/* ---- what peers send us: XEP-0198 counting, messages committed before they are routed ---- */

/* h of <a/> (XEP-0198 4): stanzas since the enable, before the oldest one still storing. */
static uint32_t
rx_handled(const struct s2s_rx *rx)
{
	for (size_t i = 0; i < rx->nstoring; i++)
		if (rx->storing[i] > rx->base)
			return rx->storing[i] - 1 - rx->base;
	return rx->n - rx->base;
}

static void
rx_ack(struct s2s_rx *rx, struct pstream *p)
{
	char text[80];

	snprintf(text, sizeof text, "<a xmlns='" NS_SM "' h='%u'/>", rx_handled(rx));
	pstream_write(p, text);
	rx->owed = rx_handled(rx) != rx->n - rx->base;
}

static void
rx_free(struct s2s_rx *rx)
{
	free(rx->storing);
	rx->storing = NULL;
}

/* A message being stored before it is routed, and the stream it came on. */
struct rx_store {
	unsigned long stream; /* an incoming stream's id, or 0 */
	char *out_key;	      /* or an outgoing stream's key and serial */
	unsigned long out_serial;
	uint32_t seq;
	struct xml_node *copy; /* to answer the sender if it cannot be stored */
};

static void
rx_stored(struct worker *w, void *arg, int result)
{
	struct rx_store *rs = arg;
	struct s2s_rx *rx = NULL;
	struct pstream *p = NULL;

	if (rs->out_key) {
		struct s2s_out *o = hmap_get(&w->s2s_out, rs->out_key);
		if (o && o->serial == rs->out_serial)
			rx = &o->rx, p = &o->p;
	} else {
		char key[24];
		snprintf(key, sizeof key, "%lu", rs->stream);
		struct s2s_in *in = hmap_get(&w->s2s_in, key);
		if (in && !in->closed)
			rx = &in->rx, p = &in->p;
	}
	for (size_t i = 0; rx && i < rx->nstoring; i++) {
		if (rx->storing[i] == rs->seq) {
			memmove(rx->storing + i, rx->storing + i + 1,
				(rx->nstoring - i - 1) * sizeof *rx->storing);
			rx->nstoring--;
			break;
		}
	}
	/* XEP-0198 4: an ack may go unrequested; the peer should not wait for its next request. */
	if (rx && rx->on && rx->owed)
		rx_ack(rx, p);
	/* durable_deliver() leaves these for us to answer (no account, queue full). */
	if (result == STORE_ENOENT)
		route_error(w, rs->copy, "cancel", "service-unavailable", NULL);
	else if (result == STORE_EQUOTA)
		route_error(w, rs->copy, "wait", "resource-constraint",
			    "The recipient's message queue is full");
	xml_free(rs->copy);
	free(rs->out_key);
	free(rs);
}

/* Routes the peer's stanza st (taken, already checked), which rx counts; rs says where. */
static void
rx_deliver(struct worker *w, struct s2s_rx *rx, struct xml_node *st, struct rx_store rs)
{
	char *owner;

	xml_rename_ns(st, NS_SERVER, NS_CLIENT);
	rx->n++;
	if (!(owner = durable_owner(w->srv, st))) {
		route(w, st);
		return;
	}
	struct rx_store *keep = xmalloc(sizeof *keep);
	*keep = rs;
	keep->out_key = rs.out_key ? xstrdup(rs.out_key) : NULL;
	keep->seq = rx->n;
	keep->copy = xml_copy(st);
	if (rx->nstoring == rx->cap) {
		rx->cap = rx->cap ? 2 * rx->cap : 8;
		rx->storing = xrealloc(rx->storing, rx->cap * sizeof *rx->storing);
	}
	rx->storing[rx->nstoring++] = rx->n;
	durable_deliver(w, st, owner, 0, NULL, rx_stored, keep);
	free(owner);
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
	char *from = domain_of(xml_attr(st, "from")), *to = domain_of(xml_attr(st, "to"));
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
	rx_deliver(o->w, &o->rx, st, (struct rx_store){.out_key = o->key, .out_serial = o->serial});
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
		if (cfg_of(o->w)->s2s_dialback && o->dialback_offered) {
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
			rx_ack(&o->rx, &o->p);
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
		if (is_stanza(el, NS_SERVER)) {
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
	} else if (o->q.len >= (size_t)cfg_of(w)->s2s_queue_max) {
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
static void
verify_arrive(struct worker *w, void *arg)
{
	struct s2s_verify *v = arg;
	struct s2s_out *o;

	if (w->stopping) {
		verify_return(v, -1);
		return;
	}
	o = out_get(w, v->local, v->remote);
	v->next = o->verifies;
	o->verifies = v;
	if (o->can_verify)
		out_send_verifies(o);
}

/* ---- incoming streams ---- */

static void
in_free(struct s2s_in *in)
{
	struct server *srv = in->w->srv;
	const char *k;
	void *v;

	for (size_t i = 0; hmap_next(&in->counted, &i, &k, &v);)
		release(srv, k);
	hmap_free(&in->counted);
	hmap_free(&in->authed);
	rx_free(&in->rx);
	timer_stop(in->w->loop, &in->idle);
	free(in->local);
	free(in);
}

static void
in_close(struct s2s_in *in, const char *why)
{
	char key[24];

	if (in->closed)
		return;
	in->closed = true;
	log_debug("s2s in %lu: closed (%s)", in->id, why);
	snprintf(key, sizeof key, "%lu", in->id);
	hmap_del(&in->w->s2s_in, key);
	pstream_free(&in->p);
	if (!in->hold)
		in_free(in);
}

static void
in_error(struct s2s_in *in, const char *condition, const char *text)
{
	log_info("s2s in %lu (%s): stream error %s%s%s", in->id,
		 in->p.header.from ? in->p.header.from : "?", condition, text ? ": " : "",
		 text ? text : "");
	pstream_error(&in->p, condition, text);
	in_close(in, condition);
}

static void
in_idle(struct timer *t)
{
	struct s2s_in *in = container_of(t, struct s2s_in, idle);
	uint64_t idle = cfg_of(in->w)->s2s_idle_timeout;

	if (now_ms() - in->last_io < idle) {
		timer_start(in->w->loop, t, idle - (now_ms() - in->last_io));
		return;
	}
	pstream_write(&in->p, "</stream:stream>");
	in_close(in, "idle");
}

void
s2s_accept(struct worker *w, int fd)
{
	const struct config *cfg = cfg_of(w);

	for (int i = 0; i < 16 && !w->stopping; i++) {
		struct s2s_in *in = xcalloc(1, sizeof *in);
		struct conn *c = conn_accept(w->loop, fd, NULL, &in_cb, in);
		char key[24];
		if (!c) {
			free(in);
			return;
		}
		in->w = w;
		in->id = __atomic_add_fetch(&in_next_id, 1, __ATOMIC_RELAXED);
		conn_set_limits(c, S2S_READ_MAX, cfg->send_queue * 4, 0, 0);
		pstream_init(&in->p, c, cfg->stanza_size_preauth, (int)cfg->stanza_depth);
		in->idle.fn = in_idle;
		in->last_io = now_ms();
		/* Authenticated or not, a silent stream goes; before auth, sooner. */
		timer_start(w->loop, &in->idle, cfg->auth_timeout);
		snprintf(key, sizeof key, "%lu", in->id);
		hmap_put(&w->s2s_in, key, in);
		log_debug("s2s in %lu: connection from %s", in->id, c->peer);
	}
}

static void
in_features(struct s2s_in *in)
{
	const struct config *cfg = cfg_of(in->w);
	struct buf b = {0};

	buf_puts(&b, "<stream:features>");
	if (!in->tls) {
		buf_puts(&b, "<starttls xmlns='" NS_TLS "'><required/></starttls>");
	} else if (!in->sasl_done) {
		/* XEP-0178 3: EXTERNAL only when the certificate is good for the claimed domain. */
		if (in->p.header.from && conn_tls_peer_ok(in->p.c, in->p.header.from))
			buf_puts(&b, "<mechanisms xmlns='" NS_SASL
				     "'><mechanism>EXTERNAL</mechanism></mechanisms>");
		if (cfg->s2s_dialback)
			buf_puts(&b,
				 "<dialback xmlns='" NS_DIALBACK_FEATURE "'><errors/></dialback>");
	}
	if (in->tls)
		buf_puts(&b, "<sm xmlns='" NS_SM "'/>");
	buf_puts(&b, "</stream:features>");
	pstream_write(&in->p, buf_head(&b));
	buf_free(&b);
}

/* The peer's stream header (RFC 6120 4.7); false if the stream ended. */
static bool
in_header(struct s2s_in *in)
{
	struct server *srv = in->w->srv;
	const char *to = in->p.header.to, *version = in->p.header.version;
	char *local = NULL;

	in->p.header.fresh = false;
	rand_id(in->stream_id, sizeof in->stream_id - 1);
	if (!in->p.header.root_ok || strcmp(in->p.header.ns, NS_SERVER) != 0) {
		pstream_open(&in->p, NS_SERVER, srv->cfg->domain, NULL, in->stream_id);
		in_error(in, "invalid-namespace", NULL); /* RFC 6120 4.9.3.10 */
		return false;
	}
	if (to && (jid_norm_domain(to, &local) < 0 || !server_hosts(srv, local))) {
		free(local);
		pstream_open(&in->p, NS_SERVER, srv->cfg->domain, NULL, in->stream_id);
		in_error(in, "host-unknown", NULL); /* RFC 6120 4.9.3.6 */
		return false;
	}
	if (!local)
		local = xstrdup(srv->cfg->domain);
	free(in->local);
	in->local = local;
	pstream_open(&in->p, NS_SERVER, local, in->p.header.from, in->stream_id);
	if (!version || strncmp(version, "1.", 2) != 0) {
		in_error(in, "unsupported-version", NULL); /* RFC 6120 4.7.5 */
		return false;
	}
	in_features(in);
	return true;
}

/* A peer domain is authenticated on this stream (SASL or dialback); false if over the limit. */
static bool
in_authed(struct s2s_in *in, const char *domain, const char *how)
{
	struct server *srv = in->w->srv;

	if (hmap_get(&in->authed, domain))
		return true;
	if (!admit(srv, domain)) {
		in_error(in, "policy-violation", "too many connections from your domain");
		return false;
	}
	hmap_put(&in->counted, domain, (void *)1);
	hmap_put(&in->authed, domain, (void *)1);
	/* From now on the stream lives as long as it is used. */
	timer_stop(in->w->loop, &in->idle);
	timer_start(in->w->loop, &in->idle, cfg_of(in->w)->s2s_idle_timeout);
	in->p.max_stanza = srv->cfg->stanza_size;
	xml_stream_set_max(in->p.parser, srv->cfg->stanza_size);
	log_info("s2s in %lu: %s authenticated (%s)", in->id, domain, how);
	return true;
}

static void
in_sasl(struct s2s_in *in, struct xml_node *el)
{
	const char *mech = xml_attr(el, "mechanism");
	char *text = xml_text(el);
	struct buf authz = {0};
	const char *domain = in->p.header.from;

	if (!mech || strcmp(mech, "EXTERNAL") != 0) {
		pstream_write(&in->p,
			      "<failure xmlns='" NS_SASL "'><invalid-mechanism/></failure>");
		free(text);
		return;
	}
	/* XEP-0178 3 step 7: the authzid is the peer's domain, or "=" / empty for the header's. */
	if (*text && strcmp(text, "=") != 0) {
		if (base64_decode(&authz, text, strlen(text)) < 0) {
			pstream_write(&in->p, "<failure xmlns='" NS_SASL
					      "'><incorrect-encoding/></failure>");
			free(text);
			return;
		}
		buf_append(&authz, "", 1);
		domain = buf_head(&authz);
	}
	free(text);
	if (!domain || !*domain || (in->p.header.from && strcmp(domain, in->p.header.from) != 0) ||
	    !conn_tls_peer_ok(in->p.c, domain)) {
		pstream_write(&in->p, "<failure xmlns='" NS_SASL "'><not-authorized/></failure>");
		buf_free(&authz);
		return;
	}
	char *d = domain_of(domain);
	buf_free(&authz);
	if (!d) {
		pstream_write(&in->p, "<failure xmlns='" NS_SASL "'><invalid-authzid/></failure>");
		return;
	}
	if (!in_authed(in, d, "SASL EXTERNAL")) { /* over the limit: the stream ended */
		free(d);
		return;
	}
	free(d);
	pstream_write(&in->p, "<success xmlns='" NS_SASL "'/>");
	in->sasl_done = true;
	pstream_restart(&in->p); /* RFC 6120 6.4.6 */
}

/* db:result from the originating server (XEP-0220 2.1.1): check its key with its domain. */
static void
in_dialback_result(struct s2s_in *in, struct xml_node *el)
{
	struct server *srv = in->w->srv;
	char *from = domain_of(xml_attr(el, "from")), *to = domain_of(xml_attr(el, "to"));
	char *key = xml_text(el);

	if (!srv->cfg->s2s_dialback) {
		in_error(in, "not-authorized", "dialback is not accepted here; use a certificate");
	} else if (!from || !to || !*key) {
		in_error(in, "bad-format", "db:result needs from, to and a key");
	} else if (!server_hosts(srv, to)) {
		in_error(in, "host-unknown", NULL);
	} else if (in->verifying >= S2S_VERIFY_MAX) {
		/* Each check opens a stream to the claimed domain: a peer may not make us flood. */
		in_error(in, "policy-violation", "too many dialback requests at once");
	} else if (hmap_get(&in->authed, from)) {
		struct xml_node *r = xml_el_new("result", NS_DIALBACK);
		xml_set_attr(r, "from", to);
		xml_set_attr(r, "to", from);
		xml_set_attr(r, "type", "valid");
		pstream_send(&in->p, r, NS_SERVER);
		xml_free(r);
	} else {
		struct s2s_verify *v = xcalloc(1, sizeof *v);
		v->stream_id = xstrdup(in->stream_id);
		v->key = key;
		v->local = to;
		v->remote = from;
		v->in_w = in->w;
		v->in_id = in->id;
		in->verifying++;
		worker_call(server_home(srv, from), verify_arrive, v);
		return;
	}
	free(from);
	free(to);
	free(key);
}

/* The answer of the peer's authoritative server reached the worker of the stream that asked. */
static void
verify_answer(struct worker *w, void *arg)
{
	struct s2s_verify *v = arg;
	char key[24];
	struct s2s_in *in;

	snprintf(key, sizeof key, "%lu", v->in_id);
	in = w->stopping ? NULL : hmap_get(&w->s2s_in, key);
	if (in && !in->closed) {
		struct xml_node *r = xml_el_new("result", NS_DIALBACK);
		in->verifying--;
		xml_set_attr(r, "from", v->local);
		xml_set_attr(r, "to", v->remote);
		xml_set_attr(r, "type",
			     v->result > 0    ? "valid"
			     : v->result == 0 ? "invalid"
					      : "error");
		if (v->result < 0) { /* XEP-0220 2.4: we could not ask the peer's domain */
			struct xml_node *e = xml_add_el(r, "error", NS_SERVER);
			xml_set_attr(e, "type", "cancel");
			xml_add_el(e, "remote-server-not-found", NS_STANZAS);
		}
		pstream_send(&in->p, r, NS_SERVER);
		xml_free(r);
		if (v->result > 0)
			in_authed(in, v->remote, "dialback");
		else if (v->result == 0)
			in_error(in, "not-authorized", "dialback key refused by your domain");
	}
	verify_free(v);
}

/* db:verify from a receiving server (XEP-0220 2.1.2): we are the authoritative server. */
static void
in_dialback_verify(struct s2s_in *in, struct xml_node *el)
{
	const char *from = xml_attr(el, "from"), *to = xml_attr(el, "to"), *id = xml_attr(el, "id");
	char *key = xml_text(el), expect[65];
	struct xml_node *r;
	bool valid = false;

	if (from && to && id && server_hosts(in->w->srv, to)) {
		dialback_key(in->w->srv, from, to, id, expect);
		valid = strlen(key) == 64 && CRYPTO_memcmp(key, expect, 64) == 0;
	}
	free(key);
	r = xml_el_new("verify", NS_DIALBACK);
	if (to)
		xml_set_attr(r, "from", to);
	if (from)
		xml_set_attr(r, "to", from);
	if (id)
		xml_set_attr(r, "id", id);
	xml_set_attr(r, "type", valid ? "valid" : "invalid");
	pstream_send(&in->p, r, NS_SERVER);
	xml_free(r);
}

/* A stanza from the peer (RFC 6120 13.7 / 8.1.1.1 / 8.1.2.1), taken; false if the stream ended. */
static bool
in_stanza(struct s2s_in *in, struct xml_node *st)
{
	struct server *srv = in->w->srv;
	char *from = domain_of(xml_attr(st, "from")), *to = domain_of(xml_attr(st, "to"));
	bool ok = false;

	if (!from || !to) /* RFC 6120 4.9.3.14 */
		in_error(in, "improper-addressing", "server stanzas need a valid from and to");
	else if (!hmap_get(&in->authed, from)) /* RFC 6120 4.9.3.9 */
		in_error(in, "invalid-from", "that domain is not authenticated on this stream");
	else if (!server_hosts(srv, to))
		in_error(in, "host-unknown", NULL);
	else
		ok = true;
	free(from);
	free(to);
	if (!ok) {
		xml_free(st);
		return false;
	}
	rx_deliver(in->w, &in->rx, st, (struct rx_store){.stream = in->id});
	return true;
}

/* Takes el; false if the stream ended. */
static bool in_control(struct s2s_in *in, struct xml_node *el);

/* XEP-0198 from the peer: enable (once authenticated) and ack requests; its acks mean nothing
 * here, since we send nothing on its stream. */
static bool
in_sm(struct s2s_in *in, const struct xml_node *el)
{
	if (strcmp(el->name, "enable") == 0) {
		if (in->authed.count == 0 || in->rx.on) {
			pstream_write(&in->p,
				      "<failed xmlns='" NS_SM
				      "'><unexpected-request xmlns='" NS_STANZAS "'/></failed>");
			return true;
		}
		in->rx.on = true;
		in->rx.base = in->rx.n; /* the peer counts from its enable */
		pstream_write(&in->p,
			      "<enabled xmlns='" NS_SM "'/>"); /* no resumption between servers */
	} else if (strcmp(el->name, "r") == 0 && in->rx.on) {
		rx_ack(&in->rx, &in->p);
	}
	return true;
}

static bool
in_element(struct s2s_in *in, struct xml_node *el)
{
	bool alive;

	in->last_io = now_ms();
	if (is_stanza(el, NS_SERVER) && in->tls)
		return in_stanza(in, el);
	alive = in_control(in, el);
	xml_free(el);
	return alive;
}

static bool
in_control(struct s2s_in *in, struct xml_node *el)
{
	if (strcmp(el->ns, NS_STREAM) == 0 && strcmp(el->name, "error") == 0) {
		in_close(in, "stream error from the peer");
		return false;
	}
	if (strcmp(el->ns, NS_TLS) == 0 && strcmp(el->name, "starttls") == 0 && !in->tls) {
		pstream_write(&in->p, "<proceed xmlns='" NS_TLS "'/>");
		conn_starttls(in->p.c, in->w->srv->s2s_tls_in);
		in->tls = true;
		pstream_restart(&in->p);
		return true;
	}
	if (!in->tls) { /* RFC 6120 5.3.1: TLS is mandatory here */
		in_error(in, "policy-violation", "STARTTLS first");
		return false;
	}
	if (strcmp(el->ns, NS_SASL) == 0 && strcmp(el->name, "auth") == 0 && !in->sasl_done) {
		in_sasl(in, el);
		return !in->closed;
	}
	if (strcmp(el->ns, NS_DIALBACK) == 0 && strcmp(el->name, "result") == 0) {
		in_dialback_result(in, el);
		return !in->closed;
	}
	if (strcmp(el->ns, NS_DIALBACK) == 0 && strcmp(el->name, "verify") == 0) {
		in_dialback_verify(in, el);
		return true;
	}
	if (strcmp(el->ns, NS_SM) == 0)
		return in_sm(in, el);
	in_error(in, "unsupported-stanza-type", NULL);
	return false;
}

static void in_input(struct s2s_in *in);

static void
in_data(struct conn *c, void *arg)
{
	struct s2s_in *in = arg;

	in->hold = true;
	in_input(in);
	in->hold = false;
	if (in->closed)
		in_free(in);
}

static void
in_input(struct s2s_in *in)
{
	struct xml_node *el;

	pstream_input(&in->p);
	while (!in->closed) {
		/* A restart (STARTTLS, SASL) drops the old stream's rest and waits for a header. */
		if (in->p.header.fresh && !in_header(in))
			return;
		if (!in->p.header.open || !(el = pstream_next(&in->p)))
			break;
		if (!in_element(in, el))
			return;
	}
	if (in->closed)
		return;
	if (in->p.parse_error) {
		if (!in->p.header.open)
			pstream_open(&in->p, NS_SERVER, in->w->srv->cfg->domain, NULL, NULL);
		in_error(in, xml_status_condition(in->p.parse_error), NULL);
	} else if (in->p.peer_closed) {
		pstream_write(&in->p, "</stream:stream>");
		in_close(in, "closed by the peer");
	}
}

static void
in_closed(struct conn *c, void *arg, const char *reason)
{
	in_close(arg, reason);
}

/* ---- shutdown ---- */

void
s2s_worker_stop(struct worker *w)
{
	const char *k;
	void *v;

	for (size_t i = 0; hmap_next(&w->s2s_in, &i, &k, &v);) {
		struct s2s_in *in = v;
		in->closed = true;
		pstream_error(&in->p, "system-shutdown", NULL);
		pstream_free(&in->p);
		in_free(in);
	}
	hmap_free(&w->s2s_in);
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
