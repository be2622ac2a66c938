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
