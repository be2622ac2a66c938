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
struct session;
struct xml_node;
struct loop;
struct tls_ctx;

/*
 * A service at a subdomain of the server's (MUC at conference.<domain>, later SMS and
 * gateways). batond registers them before server_start(); the router hands them every
 * stanza for their domain, on the worker that routed it.
 */
struct xmpp_service {
	const char *prefix; /* "conference" serves conference.<domain> */
	/* Takes st; to is its parsed 'to' (valid during the call). */
	void (*route)(struct worker *w, struct xml_node *st, const struct jid *to);
	/*
	 * Optional: a message with a body from a local client session s, before routing. Return
	 * true to take it (the service may hold s's XEP-0198 ack until it stored it, see
	 * durable.c), false to let it be routed as usual.
	 */
	bool (*take)(struct session *s, struct xml_node *st, const struct jid *to);
	/* Optional: runs on each worker's thread as it starts (watch a socket, arm a timer). */
	void (*start_worker)(struct worker *w);
	/* Frees what the service keeps on w; called once per worker after the loops stopped. */
	void (*free_worker)(struct worker *w);
};

/* Registers svc (kept by pointer) for servers started afterwards; at most 8. */
void server_add_service(const struct xmpp_service *svc);

/*
 * A listener besides c2s (HTTP for web/): batond registers it before server_start(),
 * which binds addr (a start-up error if it cannot) and has every worker watch it;
 * accept(w, fd) runs on the worker that won the wake-up.
 */
void server_add_listener(const char *addr, void (*accept)(struct worker *w, int fd));

/* ---- workers, for modules that keep objects on them (web/) ---- */

/* The worker running the calling thread (NULL outside the workers). */
struct worker *worker_current(void);
struct loop *worker_loop(struct worker *w);
const struct config *worker_config(struct worker *w);
/* Runs fn(w, arg) on worker w's thread (directly if it is the calling one). */
void worker_call(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg);

/* Returns a new stanza element name in jabber:client with from/to/type/id set where non-NULL. */
struct xml_node *stanza_new(const char *name, const char *from, const char *to, const char *type,
			    const char *id);

/* ---- client sessions over any transport ---- */

/*
 * What carries a client session's stream: TCP (c2s.c), WebSocket or BOSH (web/). The
 * session hands over whole top-level elements serialized as on a TCP stream (jabber:client
 * the default namespace, the stream: prefix declared by the header); c2s_frame_element()
 * makes one stand alone for transports that frame elements one by one.
 * Every function gets the transport's own pointer t.
 */
struct c2s_transport {
	const char *name; /* "tcp", "websocket", "bosh": for logs */
	/* The server's stream header (RFC 6120 4.7): stream id, our domain, echoed 'to'. */
	void (*open)(void *t, const char *id, const char *from, const char *to);
	/* One top-level element: a stanza, features, an SM or SASL element, a stream error. */
	void (*element)(void *t, const char *data, size_t len);
	/* The server closes the stream (after a stream error, or answering the client's). */
	void (*end)(void *t);
	/* The session lets go: send what is queued, then close. No call on t follows. */
	void (*release)(void *t);
	/* Bytes written and not yet taken by the network. */
	size_t (*pending)(void *t);
	/* Stop / resume handing input to the session (it waits for storage). */
	void (*pause)(void *t, bool paused);
	/* The session moves to another worker: off this loop, then onto the new one. */
	void (*detach)(void *t);
	void (*attach)(void *t, struct loop *loop);
	/* Confidential against eavesdroppers (TLS, or an HTTP peer trusted as secure). */
	bool (*secure)(void *t);
	/* RFC 6120 5: switch to TLS after the queued output; NULL if not offered. */
	void (*starttls)(void *t, struct tls_ctx *tls);
	const char *(*peer)(void *t); /* "ip:port", for logs */
};

/* Appends the attributes of a stream header (RFC 6120 4.7): id, from, to, version, lang. */
void c2s_stream_attrs(struct buf *b, const char *id, const char *from, const char *to);
/* A new session on w (the calling worker) whose stream comes over (tp, t). */
struct session *c2s_open(struct worker *w, const struct c2s_transport *tp, void *t);
/* Bytes of the client's stream; the session parses and runs them. */
void c2s_input(struct session *s, const char *data, size_t len);
/*
 * The transport is gone (peer closed, broke, timed out): the session hibernates if it
 * can be resumed (XEP-0198), else ends. Either way it never calls the transport again.
 */
void c2s_transport_lost(struct session *s, const char *reason);
/*
 * Writes to out the element data (as a session hands it to a transport) made to stand
 * alone: xmlns='jabber:client' on stanzas, xmlns:stream on stream: elements (RFC 7395
 * 3.3.3, XEP-0206 7).
 */
void c2s_frame_element(struct buf *out, const char *data, size_t len);

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
