/*
 * net: listening sockets, byte-stream connections over TCP with optional TLS
 * (OpenSSL 3), and the server's TLS context with its self-signed fallback certificate.
 * Protocol layers above see a connection as bytes in (conn->in) and bytes out
 * (conn_write); they never see a socket or an SSL object.
 *
 * Invariant: a connection belongs to exactly one loop at a time (conn_detach on the
 * old thread, conn_attach on the new one), and is freed only at the end of a loop
 * turn after conn_close(), never inside one of its own callbacks.
 */
#ifndef BATON_NET_H
#define BATON_NET_H

#include <stdbool.h>
#include <stddef.h>

#include "../core/core.h"

struct conn;
struct tls_ctx;

struct conn_cb {
	/* New bytes are in c->in; consume what was used with buf_consume(). */
	void (*data)(struct conn *c, void *arg);
	/*
	 * The peer closed or the connection failed (reason says how, for logs). No more
	 * callbacks follow; the owner must still call conn_close() to release c.
	 */
	void (*closed)(struct conn *c, void *arg, const char *reason);
};

struct conn {
	struct loop_io io;
	struct loop *loop;
	struct buf in, out;
	const struct conn_cb *cb;
	void *arg;
	char peer[64]; /* "ip:port" for logs */
	unsigned long id;
	/* transport state (net-private) */
	void *ssl;
	size_t in_max;	    /* stop reading while more than this is unconsumed */
	size_t out_max;	    /* a peer that lets more pile up is disconnected */
	size_t rate, burst; /* token bucket: bytes/s (0 = unlimited) and bucket size */
	double tokens;
	uint64_t tokens_at;
	struct timer rate_timer, linger_timer;
	struct conn *dirty_next;
	struct conn *all_next, *all_prev; /* every connection of the loop */
	struct tls_ctx *tls_ctx_pending;  /* STARTTLS once the plaintext output is sent */
	unsigned dirty : 1, closing : 1, dead : 1, paused : 1, tls_pending : 1,
	    want_read_to_write : 1, want_write_to_read : 1, eof : 1, resume_read : 1, fin_sent : 1,
	    overflow : 1;
};

/* ---- listeners ---- */

/*
 * Binds and listens on "host:port" (IPv4, [IPv6] or a name). Returns the fd or -1 with
 * a one-line reason in err (e.g. "127.0.0.1:5222: Address already in use").
 */
int net_listen(const char *addr, char *err, size_t errlen);

/* ---- per-loop setup ---- */

/* Installs the turn-end flush/reap hook in loop; call once on each loop's thread. */
void net_loop_init(struct loop *loop);
/*
 * After loop_run() returned, on the same thread: frees every connection still on the
 * loop (closing ones that were lingering included) and the loop's net state.
 */
void net_loop_free(struct loop *loop);

/* ---- connections ---- */

/*
 * Accepts one connection from listening fd on the calling loop. Returns a new conn
 * (owned by the caller until conn_close) or NULL if none was pending or accept failed.
 * tls non-NULL starts a server TLS handshake at once (direct TLS, XEP-0368).
 */
struct conn *conn_accept(struct loop *loop, int lfd, struct tls_ctx *tls, const struct conn_cb *cb,
			 void *arg);
/*
 * Queues bytes for the peer; they are written at the end of the loop turn. If more
 * than out_max bytes are waiting, the connection fails (closed callback, later).
 */
void conn_write(struct conn *c, const void *data, size_t n);
/*
 * Sends what is queued (in plaintext), then switches to TLS as server (STARTTLS).
 * Unread plaintext input is discarded: it cannot be trusted (RFC 6120 5.4.3.3).
 */
void conn_starttls(struct conn *c, struct tls_ctx *tls);
bool conn_is_tls(const struct conn *c);
/* Bytes queued for the peer and not yet handed to the kernel. */
size_t conn_out_pending(const struct conn *c);
/* Stops / resumes reading (e.g. while the owner waits for storage). */
void conn_pause(struct conn *c, bool paused);
/* Limits applied from now on. */
void conn_set_limits(struct conn *c, size_t in_max, size_t out_max, size_t rate, size_t burst);
/*
 * Releases c: queued output is still sent for a few seconds (so a stream error
 * reaches the peer), then the socket closes. No callback runs after this call; the
 * caller must not touch c again.
 */
void conn_close(struct conn *c);
/* Takes c off its loop (call on its thread) so conn_attach() can adopt it on another. */
void conn_detach(struct conn *c);
/* Adopts a detached c on loop (call on loop's thread); buffered input is delivered. */
void conn_attach(struct conn *c, struct loop *loop);

/* ---- TLS ---- */

/*
 * Creates the server TLS context from cert/key files. If both are empty, uses (and
 * creates on first run) data_dir/cert.pem and data_dir/key.pem, self-signed for
 * domain. Returns the context or NULL with a one-line reason in err.
 */
struct tls_ctx *tls_ctx_new(const char *cert, const char *key, const char *data_dir,
			    const char *domain, char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *t);

#endif
