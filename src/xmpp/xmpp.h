/*
 * xmpp: the XMPP server proper (RFC 6120/6121): client streams, SASL, resource
 * binding, routing between accounts, presence, roster and the server's own iqs, run by
 * N worker threads with one event loop each. cmd/batond.c only starts and stops it.
 *
 * Invariant: all state of one account (its sessions, roster cache, presence) lives on
 * its home worker, hash(bare JID) % N, and is touched by no other thread.
 */
#ifndef BATON_XMPP_H
#define BATON_XMPP_H

#include "../core/core.h"
#include "jid.h"
#include "sasl.h"

struct server;
struct worker;
struct xml_node;

/*
 * A service at a subdomain of the server's (MUC at conference.<domain>, later SMS and
 * gateways). batond registers them before server_start(); the router hands them every
 * stanza for their domain, on the worker that routed it.
 */
struct xmpp_service {
	const char *prefix; /* "conference" serves conference.<domain> */
	/* Takes st; to is its parsed 'to' (valid during the call). */
	void (*route)(struct worker *w, struct xml_node *st, const struct jid *to);
	/* Frees what the service keeps on w; called once per worker after the loops stopped. */
	void (*free_worker)(struct worker *w);
};

/* Registers svc (kept by pointer) for servers started afterwards; at most 8. */
void server_add_service(const struct xmpp_service *svc);

/*
 * Binds the listeners, opens storage, loads TLS, and starts the workers. Returns the
 * server, or NULL with a one-line reason in err (nothing left running).
 */
struct server *server_start(const struct config *cfg, char *err, size_t errlen);
/*
 * Stops accepting, closes every stream with <system-shutdown/>, waits for queued
 * output and storage work (bounded), joins the threads and frees the server.
 */
void server_stop(struct server *srv);

#endif
