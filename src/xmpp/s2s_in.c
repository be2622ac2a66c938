/*
 * s2s_in: the streams other servers open to us (RFC 6120 13). STARTTLS first, then the peer
 * proves its domain with SASL EXTERNAL (its certificate) or dialback, which we check with its
 * authoritative server over one of our outgoing streams; its stanzas are then routed (messages
 * for local accounts committed first) and acknowledged per XEP-0198.
 *
 * Invariant: a stanza is routed only if its 'from' is a domain authenticated on this stream and
 * its 'to' a domain we host; anything else ends the stream. Streams stay on the accepting worker.
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

static unsigned long in_next_id;

static void in_data(struct conn *c, void *arg);
static void in_closed(struct conn *c, void *arg, const char *reason);

static const struct conn_cb in_cb = {.data = in_data, .closed = in_closed};

/* ---- incoming streams ---- */

static void
in_free(struct s2s_in *in)
{
	struct server *srv = in->w->srv;
	const char *k;
	void *v;

	for (size_t i = 0; hmap_next(&in->counted, &i, &k, &v);)
		s2s_release(srv, k);
	hmap_free(&in->counted);
	hmap_free(&in->authed);
	s2s_rx_free(&in->rx);
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
	uint64_t idle = s2s_cfg(in->w)->s2s_idle_timeout;

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
	const struct config *cfg = s2s_cfg(w);

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
	const struct config *cfg = s2s_cfg(in->w);
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
	if (!s2s_admit(srv, domain)) {
		in_error(in, "policy-violation", "too many connections from your domain");
		return false;
	}
	hmap_put(&in->counted, domain, (void *)1);
	hmap_put(&in->authed, domain, (void *)1);
	/* From now on the stream lives as long as it is used. */
	timer_stop(in->w->loop, &in->idle);
	timer_start(in->w->loop, &in->idle, s2s_cfg(in->w)->s2s_idle_timeout);
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
	char *d = s2s_domain_of(domain);
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
	char *from = s2s_domain_of(xml_attr(el, "from")), *to = s2s_domain_of(xml_attr(el, "to"));
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
		worker_call(server_home(srv, from), s2s_verify_arrive, v);
		return;
	}
	free(from);
	free(to);
	free(key);
}

/* The answer of the peer's authoritative server reached the worker of the stream that asked. */
void
s2s_verify_answer(struct worker *w, void *arg)
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
	s2s_verify_free(v);
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
		s2s_dialback_key(in->w->srv, from, to, id, expect);
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
	char *from = s2s_domain_of(xml_attr(st, "from")), *to = s2s_domain_of(xml_attr(st, "to"));
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
	s2s_rx_deliver(in->w, &in->rx, st, (struct rx_store){.stream = in->id});
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
		s2s_rx_ack(&in->rx, &in->p);
	}
	return true;
}

static bool
in_element(struct s2s_in *in, struct xml_node *el)
{
	bool alive;

	in->last_io = now_ms();
	if (s2s_is_stanza(el, NS_SERVER) && in->tls)
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

void
s2s_in_stop_all(struct worker *w)
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
}
