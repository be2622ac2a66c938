/*
 * component: external components (XEP-0114), such as biboumi, the IRC gateway. A
 * component connects to component.listen, names its domain in the stream header, proves
 * the shared secret of component.secret.<domain> with the handshake, and from then on
 * sends and receives stanzas for that domain as if it were a server of its own.
 *
 * Invariant: at most one stream serves a domain; the registry (domain -> worker) is the
 * only state shared between workers and is read under its lock, the stream itself lives
 * on the worker that accepted it, and a stanza a component sends is routed only if its
 * 'from' is in the component's domain.
 */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define COMP_READ_MAX 65536

struct comp_registry {
	pthread_mutex_t lock;
	struct hmap where; /* domain -> struct worker * whose w->comps holds its stream */
};

enum comp_state { COMP_HEADER, COMP_HANDSHAKE, COMP_READY };

struct component {
	struct worker *w;
	struct pstream p;
	enum comp_state state;
	char stream_id[17];
	char *domain; /* once the header named a configured one */
	bool registered, closed, hold;
};

static void comp_data(struct conn *c, void *arg);
static void comp_closed(struct conn *c, void *arg, const char *reason);
static const struct conn_cb comp_cb = {.data = comp_data, .closed = comp_closed};

int
component_init(struct server *srv, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;

	for (size_t i = 0; i < cfg->n_component_secrets; i++) {
		char *d = NULL;
		if (jid_norm_domain(cfg->component_secrets[i].key, &d) < 0 ||
		    strcmp(d, cfg->component_secrets[i].key) != 0) {
			snprintf(err, errlen, "component.secret.%s: not a domain in normal form",
				 cfg->component_secrets[i].key);
			free(d);
			return -1;
		}
		free(d);
		if (strcmp(cfg->component_secrets[i].key, cfg->domain) == 0 ||
		    server_service(srv, cfg->component_secrets[i].key)) {
			snprintf(err, errlen, "component.secret.%s: that domain is served already",
				 cfg->component_secrets[i].key);
			return -1;
		}
	}
	srv->comps = xcalloc(1, sizeof *srv->comps);
	pthread_mutex_init(&srv->comps->lock, NULL);
	return 0;
}

void
component_free(struct server *srv)
{
	if (!srv->comps)
		return;
	pthread_mutex_destroy(&srv->comps->lock);
	hmap_free(&srv->comps->where);
	free(srv->comps);
	srv->comps = NULL;
}

bool
component_domain(const struct server *srv, const char *domain)
{
	return config_pair_get(srv->cfg->component_secrets, srv->cfg->n_component_secrets,
			       domain) != NULL;
}

/* Claims domain for comp; false if another stream serves it already. */
static bool
registry_claim(struct component *comp)
{
	struct comp_registry *r = comp->w->srv->comps;
	bool ok;

	pthread_mutex_lock(&r->lock);
	ok = hmap_get(&r->where, comp->domain) == NULL;
	if (ok)
		hmap_put(&r->where, comp->domain, comp->w);
	pthread_mutex_unlock(&r->lock);
	return ok;
}

static void
registry_release(struct component *comp)
{
	struct comp_registry *r = comp->w->srv->comps;

	pthread_mutex_lock(&r->lock);
	hmap_del(&r->where, comp->domain);
	pthread_mutex_unlock(&r->lock);
}

static void
comp_free(struct component *comp)
{
	free(comp->domain);
	free(comp);
}

static void
comp_close(struct component *comp, const char *why)
{
	if (comp->closed)
		return;
	comp->closed = true;
	log_info("component %s: disconnected (%s)", comp->domain ? comp->domain : "?", why);
	if (comp->registered) {
		hmap_del(&comp->w->comps, comp->domain);
		registry_release(comp);
	}
	pstream_free(&comp->p);
	if (!comp->hold)
		comp_free(comp);
}

static void
comp_error(struct component *comp, const char *condition, const char *text)
{
	pstream_error(&comp->p, condition, text);
	comp_close(comp, condition);
}

void
component_accept(struct worker *w, int fd)
{
	const struct config *cfg = w->srv->cfg;

	for (int i = 0; i < 16 && !w->stopping; i++) {
		struct component *comp = xcalloc(1, sizeof *comp);
		struct conn *c;

		comp->w = w;
		if (!(c = conn_accept(w->loop, fd, NULL, &comp_cb, comp))) {
			free(comp);
			return;
		}
		conn_set_limits(c, COMP_READ_MAX, cfg->send_queue * 4, 0, 0);
		pstream_init(&comp->p, c, cfg->stanza_size_preauth, (int)cfg->stanza_depth);
		log_debug("component: connection from %s", c->peer);
	}
}

/* XEP-0114 section 3: the header names the component's domain. */
static bool
comp_header(struct component *comp)
{
	const struct server *srv = comp->w->srv;
	const char *to = comp->p.header.to;

	bool known = to && component_domain(srv, to);
	bool ns_ok = comp->p.header.root_ok && strcmp(comp->p.header.ns, NS_COMPONENT) == 0;

	comp->p.header.fresh = false;
	rand_id(comp->stream_id, sizeof comp->stream_id - 1);
	/* A stream that is refused gets a header without an id, then the error (RFC 6120 4.9.1.2).
	 */
	pstream_open(&comp->p, NS_COMPONENT, known ? to : srv->cfg->domain, NULL,
		     known && ns_ok ? comp->stream_id : NULL);
	if (!ns_ok) {
		comp_error(comp, "invalid-namespace", NULL);
		return false;
	}
	if (!known) {
		comp_error(comp, "host-unknown", "no component is configured for that domain");
		return false;
	}
	comp->domain = xstrdup(to);
	comp->state = COMP_HANDSHAKE;
	return true;
}

/* <handshake>hex(SHA1(stream id + secret))</handshake> (XEP-0114 section 3). */
static bool
comp_handshake(struct component *comp, struct xml_node *el)
{
	const struct config *cfg = comp->w->srv->cfg;
	const char *secret =
	    config_pair_get(cfg->component_secrets, cfg->n_component_secrets, comp->domain);
	unsigned char md[SHA_DIGEST_LENGTH];
	char expect[2 * SHA_DIGEST_LENGTH + 1];
	struct buf b = {0};
	char *given = xml_text(el);
	bool ok;

	buf_printf(&b, "%s%s", comp->stream_id, secret);
	SHA1((const unsigned char *)buf_head(&b), buf_used(&b), md);
	buf_free(&b);
	for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
		sprintf(expect + 2 * i, "%02x", md[i]);
	for (char *p = given; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	ok = strlen(given) == 2 * SHA_DIGEST_LENGTH &&
	     CRYPTO_memcmp(given, expect, 2 * SHA_DIGEST_LENGTH) == 0;
	free(given);
	if (!ok) {
		log_info("component %s: wrong secret from %s", comp->domain, comp->p.c->peer);
		comp_error(comp, "not-authorized", NULL);
		return false;
	}
	if (!registry_claim(comp)) {
		comp_error(comp, "conflict", "another connection serves this domain");
		return false;
	}
	comp->registered = true;
	hmap_put(&comp->w->comps, comp->domain, comp);
	comp->state = COMP_READY;
	comp->p.max_stanza = cfg->stanza_size;
	xml_stream_set_max(comp->p.parser, cfg->stanza_size);
	pstream_write(&comp->p, "<handshake/>");
	log_info("component %s: connected from %s", comp->domain, comp->p.c->peer);
	return true;
}

/* A stanza from the component; takes el; false if the stream ended. */
static bool
comp_stanza(struct component *comp, struct xml_node *el)
{
	const char *from = xml_attr(el, "from"), *to = xml_attr(el, "to");
	struct jid j;
	bool ok;

	if (!from || !to || jid_parse(from, &j) < 0) {
		xml_free(el);
		comp_error(comp, "improper-addressing", "stanzas need a valid from and to");
		return false;
	}
	ok = strcmp(j.domain, comp->domain) == 0; /* XEP-0114 3: exactly its domain */
	jid_free(&j);
	if (!ok) {
		xml_free(el);
		comp_error(comp, "invalid-from", "from must be the component's domain");
		return false;
	}
	xml_rename_ns(el, NS_COMPONENT, NS_CLIENT);
	route(comp->w, el);
	return true;
}

static bool
comp_element(struct component *comp, struct xml_node *el)
{
	bool stanza = strcmp(el->ns, NS_COMPONENT) == 0 &&
		      (!strcmp(el->name, "message") || !strcmp(el->name, "presence") ||
		       !strcmp(el->name, "iq"));
	bool alive;

	if (comp->state == COMP_READY && stanza)
		return comp_stanza(comp, el);
	if (strcmp(el->ns, NS_STREAM) == 0 && strcmp(el->name, "error") == 0) {
		comp_close(comp, "stream error from the component");
		alive = false;
	} else if (comp->state == COMP_HANDSHAKE && strcmp(el->name, "handshake") == 0 &&
		   strcmp(el->ns, NS_COMPONENT) == 0) {
		alive = comp_handshake(comp, el);
	} else if (comp->state == COMP_HANDSHAKE) {
		comp_error(comp, "not-authorized", "handshake first");
		alive = false;
	} else {
		comp_error(comp, "unsupported-stanza-type", NULL);
		alive = false;
	}
	xml_free(el);
	return alive;
}

static void
comp_input(struct component *comp)
{
	struct xml_node *el;

	pstream_input(&comp->p);
	if (comp->p.header.fresh && !comp_header(comp))
		return;
	while ((el = pstream_next(&comp->p)))
		if (!comp_element(comp, el))
			return;
	if (comp->p.parse_error) {
		if (!comp->p.header.open)
			pstream_open(&comp->p, NS_COMPONENT, comp->w->srv->cfg->domain, NULL, NULL);
		comp_error(comp, xml_status_condition(comp->p.parse_error), NULL);
	} else if (comp->p.peer_closed) {
		pstream_write(&comp->p, "</stream:stream>");
		comp_close(comp, "closed by the component");
	}
}

static void
comp_data(struct conn *c, void *arg)
{
	struct component *comp = arg;

	comp->hold = true;
	comp_input(comp);
	comp->hold = false;
	if (comp->closed)
		comp_free(comp);
}

static void
comp_closed(struct conn *c, void *arg, const char *reason)
{
	comp_close(arg, reason);
}

struct comp_mail {
	struct xml_node *st;
	char *domain;
};

static void
comp_arrive(struct worker *w, void *arg)
{
	struct comp_mail *m = arg;
	struct component *comp = w->stopping ? NULL : hmap_get(&w->comps, m->domain);

	if (comp && !comp->closed)
		pstream_send(&comp->p, m->st, NS_COMPONENT);
	else if (!w->stopping) /* it went away while this was on its way */
		route_error(w, m->st, "cancel", "service-unavailable", NULL);
	xml_free(m->st);
	free(m->domain);
	free(m);
}

void
component_route(struct worker *w, struct xml_node *st, const struct jid *to)
{
	struct comp_registry *r = w->srv->comps;
	struct worker *home;
	struct comp_mail *m;

	pthread_mutex_lock(&r->lock);
	home = hmap_get(&r->where, to->domain);
	pthread_mutex_unlock(&r->lock);
	if (!home) {
		/* Configured but not connected: like an account with no resource for iqs. */
		route_error(w, st, "cancel", "service-unavailable", "the gateway is not connected");
		xml_free(st);
		return;
	}
	m = xmalloc(sizeof *m);
	m->st = st;
	m->domain = xstrdup(to->domain);
	worker_call(home, comp_arrive, m);
}

void
component_worker_stop(struct worker *w)
{
	const char *k;
	void *v;

	while (w->comps.count) {
		size_t i = 0;
		if (!hmap_next(&w->comps, &i, &k, &v))
			break;
		struct component *comp = v;
		comp_error(comp, "system-shutdown", NULL);
	}
	hmap_free(&w->comps);
}
