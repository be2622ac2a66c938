/*
 * s2s: federation with other XMPP servers (RFC 6120 section 13): setup, the per-domain count
 * of incoming streams, XEP-0185 dialback keys, and the receive ledger for what peers send us
 * (XEP-0198 counting; messages for local accounts committed before they are routed, and acks
 * held back until then). The streams themselves are in s2s_out.c (ours) and s2s_in.c (peers').
 *
 * Invariant: a peer's stanza is acknowledged only once it was routed, and a message for a
 * local account only once it is stored; dialback keys need no state, so any worker checks them.
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
bool
s2s_admit(struct server *srv, const char *domain)
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

void
s2s_release(struct server *srv, const char *domain)
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
void
s2s_dialback_key(const struct server *srv, const char *receiving, const char *originating,
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

bool
s2s_is_stanza(const struct xml_node *el, const char *ns)
{
	return strcmp(el->ns, ns) == 0 &&
	       (strcmp(el->name, "message") == 0 || strcmp(el->name, "presence") == 0 ||
		strcmp(el->name, "iq") == 0);
}

/* The domain of a JID string, normalized; NULL if it is not a JID. Caller frees. */
char *
s2s_domain_of(const char *s)
{
	struct jid j;
	char *d;

	if (!s || jid_parse(s, &j) < 0)
		return NULL;
	d = xstrdup(j.domain);
	jid_free(&j);
	return d;
}

/* ---- dialback checks ---- */

void
s2s_verify_free(struct s2s_verify *v)
{
	free(v->stream_id);
	free(v->key);
	free(v->local);
	free(v->remote);
	free(v);
}

/* Sends the outcome of v back to the incoming stream that asked. */
void
s2s_verify_return(struct s2s_verify *v, int result)
{
	v->result = result;
	worker_call(v->in_w, s2s_verify_answer, v);
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

void
s2s_rx_ack(struct s2s_rx *rx, struct pstream *p)
{
	char text[80];

	snprintf(text, sizeof text, "<a xmlns='" NS_SM "' h='%u'/>", rx_handled(rx));
	pstream_write(p, text);
	rx->owed = rx_handled(rx) != rx->n - rx->base;
}

void
s2s_rx_free(struct s2s_rx *rx)
{
	free(rx->storing);
	rx->storing = NULL;
}

static void
rx_stored(struct worker *w, void *arg, int result, const struct xml_node *refused)
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
		s2s_rx_ack(rx, p);
	/* durable_deliver() leaves these for us to answer (no account, queue full). */
	if (result == STORE_ENOENT)
		route_error(w, refused, "cancel", "service-unavailable", NULL);
	else if (result == STORE_EQUOTA)
		route_error(w, refused, "wait", "resource-constraint",
			    "The recipient's message queue is full");
	free(rs->out_key);
	free(rs);
}

/* Routes the peer's stanza st (taken, already checked), which rx counts; rs says where. */
void
s2s_rx_deliver(struct worker *w, struct s2s_rx *rx, struct xml_node *st, struct rx_store rs)
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
	if (rx->nstoring == rx->cap) {
		rx->cap = rx->cap ? 2 * rx->cap : 8;
		rx->storing = xrealloc(rx->storing, rx->cap * sizeof *rx->storing);
	}
	rx->storing[rx->nstoring++] = rx->n;
	durable_deliver(w, st, owner, 0, NULL, rx_stored, keep);
	free(owner);
}

/* ---- shutdown ---- */

void
s2s_worker_stop(struct worker *w)
{
	s2s_in_stop_all(w);
	s2s_out_stop_all(w);
}
