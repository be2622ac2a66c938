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
	/* An outgoing connection (conn_connect) is established; optional. */
	void (*connected)(struct conn *c, void *arg);
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
	char *tls_host;			  /* client: the name sent in the handshake */
	unsigned dirty : 1, closing : 1, dead : 1, paused : 1, tls_pending : 1,
	    want_read_to_write : 1, want_write_to_read : 1, eof : 1, resume_read : 1, fin_sent : 1,
	    overflow : 1, connecting : 1,
	    write_blocked : 1; /* the last write stopped at EAGAIN: EPOLLOUT is wanted */
};

/* ---- listeners ---- */

/*
 * Binds and listens on "host:port" (IPv4, [IPv6] or a name). Returns the fd or -1 with
 * a one-line reason in err (e.g. "127.0.0.1:5222: Address already in use").
 */
int net_listen(const char *addr, char *err, size_t errlen);

/* ---- datagrams (SIP over UDP) ---- */

/* A peer's address, copyable; text is "ip:port" for logs and Via received/rport. */
struct net_addr {
	unsigned char raw[128]; /* a struct sockaddr_storage */
	unsigned len;
	char text[64];
	char ip[48];
	unsigned port;
};

/* A non-blocking UDP socket bound to "host:port"; the fd, or -1 with a one-line reason in err. */
int net_udp_bind(const char *addr, char *err, size_t errlen);
/* One datagram into buf: its length, or -1 if none is waiting (EAGAIN) or on error. */
long net_udp_recv(int fd, void *buf, size_t n, struct net_addr *from);
/* Sends one datagram; 0 or -1 (dropped: UDP gives no other promise). */
int net_udp_send(int fd, const struct net_addr *to, const void *data, size_t n);
/* Resolves "host:port" (or host and port) to an address; 0 or -1. */
int net_addr_resolve(const char *host, unsigned port, struct net_addr *out);

/* ---- asynchronous DNS (dns.c, c-ares): SRV and address lookups on the calling loop ---- */

/* One SRV record (RFC 2782). */
struct dns_srv {
	unsigned priority, weight, port;
	char target[256]; /* "." means the service is decidedly not available */
};

/*
 * Results come back on the loop that asked, after the call returned (never inside it).
 * status is 0, or -ENOENT (no such name / no record of that type), -ETIMEDOUT, -ECANCELED
 * (the loop is being freed: the callee only frees arg), or -EIO (any other failure).
 * Arrays are valid only during the callback.
 */
typedef void (*dns_srv_fn)(void *arg, int status, const struct dns_srv *recs, size_t n);
/* Addresses as numeric strings ("192.0.2.1", "2001:db8::1"), IPv4 and IPv6 both. */
typedef void (*dns_addr_fn)(void *arg, int status, const char *const *addrs, size_t n);

/*
 * Uses server "ip:port" (or "ip", port 53) for lookups on every loop from now on instead of
 * /etc/resolv.conf; NULL or "" restores the system's. Call before the loops start.
 * Returns 0, or -1 with a one-line reason in err.
 */
int dns_set_server(const char *server, char *err, size_t errlen);
/* Looks up the SRV records of name (e.g. "_xmpp-server._tcp.example.org"), unsorted. */
void dns_srv(struct loop *loop, const char *name, dns_srv_fn fn, void *arg);
/* Looks up the addresses of host (/etc/hosts first, then DNS; an IP literal is its own). */
void dns_addr(struct loop *loop, const char *host, dns_addr_fn fn, void *arg);
/* After loop_run() returned, on the loop's thread: ends the thread's lookups with -ECANCELED and
 * frees its resolver state (net_loop_free() calls it). */
void dns_loop_free(void);

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
 * Starts a TCP connection to "host:port" from the calling loop (the name is resolved now,
 * with the system resolver). Returns the conn, which reports connected() or closed() later;
 * bytes written meanwhile go once connected. NULL with a one-line reason in err if the
 * address cannot be resolved or no socket can be made.
 */
struct conn *conn_connect(struct loop *loop, const char *addr, const struct conn_cb *cb, void *arg,
			  char *err, size_t errlen);
/*
 * Queues bytes for the peer; they are written at the end of the loop turn. If more
 * than out_max bytes are waiting, the connection fails (closed callback, later).
 */
void conn_write(struct conn *c, const void *data, size_t n);
/*
 * Sends what is queued (in plaintext), then switches to TLS: as server, or as client with a
 * context from tls_client_ctx_new() (the handshake starts at once).
 * Unread plaintext input is discarded: it cannot be trusted (RFC 6120 5.4.3.3).
 */
void conn_starttls(struct conn *c, struct tls_ctx *tls);
/* conn_starttls() as client of an s2s context, naming host in the handshake (SNI). */
void conn_starttls_host(struct conn *c, struct tls_ctx *tls, const char *host);
/* After the handshake: does the peer's certificate chain to a trusted CA and name domain? */
bool conn_tls_peer_ok(const struct conn *c, const char *domain);
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

/* Hands c to a new owner (after an HTTP upgrade): callbacks go to cb with arg from now. */
void conn_set_cb(struct conn *c, const struct conn_cb *cb, void *arg);

/* ---- HTTP/1.1 server side (http.c) ---- */

struct http_conn;

struct http_header {
	char *name; /* lower case */
	char *value;
};

struct http_request {
	const char *method; /* "GET", "POST", ... */
	char *url;	    /* as sent */
	char *path;	    /* the path of url, not decoded */
	char *query;	    /* after '?', or NULL */
	struct http_header *headers;
	size_t nheaders;
	struct buf body;
	bool keep_alive;
	bool upgrade;
};

struct http_limits {
	size_t header_max, body_max;
	uint64_t request_timeout, idle_timeout; /* ms */
	/* Optional: the body limit of req, whose head is read (0 = body_max). */
	size_t (*body_limit)(const struct http_request *req);
};

/*
 * The request parser without a connection (used by http_conn, and by the fuzzer): feed
 * bytes until done (a request is in req) or error (the HTTP status to answer with).
 */
struct http_reader {
	struct http_parser *parser; /* http-parser's state */
	struct http_request req;
	struct http_limits lim;
	size_t header_bytes;
	size_t body_max; /* of the request being read */
	bool in_value;
	bool done;
	int error;
};
void http_reader_init(struct http_reader *r, const struct http_limits *lim);
/* Returns the bytes used; stops after one request (r->done) or at an error (r->error). */
size_t http_reader_feed(struct http_reader *r, const char *data, size_t len);
/* Forgets the request after it was answered, ready for the next one. */
void http_reader_next(struct http_reader *r);
void http_reader_free(struct http_reader *r);

/*
 * Called for each complete request on hc. The handler answers it once, now or later,
 * with http_respond() or http_take(); req stays valid until then.
 */
typedef void (*http_handler)(struct http_conn *hc, struct http_request *req, void *arg);

/* Accepts one connection from lfd on loop and serves HTTP on it; NULL if none was pending. */
struct http_conn *http_accept(struct loop *loop, int lfd, const struct http_limits *lim,
			      http_handler handler, void *arg);
/* The value of header name (lower case), or NULL. */
const char *http_header(const struct http_request *r, const char *name);
/*
 * Answers the outstanding request: status, extra header lines ("Name: value\r\n" each, or
 * NULL), body. Error statuses close the connection after sending.
 */
void http_respond(struct http_conn *hc, int status, const char *headers, const char *body,
		  size_t len);
/*
 * For a request answered much later: gone(hc, arg) runs if the connection breaks first;
 * the handler must then forget hc (it is freed after gone returns).
 */
void http_on_gone(struct http_conn *hc, void (*gone)(struct http_conn *hc, void *arg), void *arg);
/* Answers with 101 Switching Protocols (plus headers) and hands over the connection. */
struct conn *http_take(struct http_conn *hc, const char *headers);
const char *http_peer(const struct http_conn *hc);
/* Is token in the comma-separated list of a header value (case-insensitive)? */
bool http_token_in(const char *list, const char *token);
/* Is peer ("ip:port" as in struct conn) on this host (127.0.0.0/8, ::1)? */
bool net_is_loopback(const char *peer);
/* Moves a connection with a request outstanding to another loop (see conn_detach). */
void http_detach(struct http_conn *hc);
void http_attach(struct http_conn *hc, struct loop *loop);

/* ---- WebSocket server side (ws.c, RFC 6455) ---- */

struct ws;

struct ws_cb {
	/* One complete text message (reassembled, valid UTF-8). */
	void (*message)(struct ws *ws, void *arg, const char *data, size_t len);
	/* The peer closed, broke the protocol or went away; the owner must still ws_close(). */
	void (*closed)(struct ws *ws, void *arg, const char *reason);
};

/*
 * Checks an upgrade request (RFC 6455 4.2.1). Returns 0 with the Sec-WebSocket-Accept
 * value in accept, or the HTTP status to refuse it with.
 */
int ws_check_upgrade(const struct http_request *req, char accept[32]);
/*
 * Answers the upgrade (101, with protocol as Sec-WebSocket-Protocol if not NULL) and runs
 * WebSocket on hc's connection; messages longer than max_msg close it (1009).
 */
struct ws *ws_start(struct http_conn *hc, const char *accept, const char *protocol, size_t max_msg,
		    const struct ws_cb *cb, void *arg);
/* Runs WebSocket on c from now (after the handshake): what ws_start does after the 101. */
struct ws *ws_on_conn(struct conn *c, size_t max_msg, const struct ws_cb *cb, void *arg);
/* Sends one text message. */
void ws_send(struct ws *ws, const char *data, size_t len);
/* Sends what is queued, then a close frame (RFC 6455 7.4) unless the peer closed; releases ws. */
void ws_close(struct ws *ws, uint16_t code);
size_t ws_pending(const struct ws *ws);
void ws_pause(struct ws *ws, bool paused);
void ws_detach(struct ws *ws);
void ws_attach(struct ws *ws, struct loop *loop);
const char *ws_peer(const struct ws *ws);

/* ---- TLS ---- */

/*
 * Creates the server TLS context from cert/key files. If both are empty, uses (and
 * creates on first run) data_dir/cert.pem and data_dir/key.pem, self-signed for
 * domain. Returns the context or NULL with a one-line reason in err.
 */
struct tls_ctx *tls_ctx_new(const char *cert, const char *key, const char *data_dir,
			    const char *domain, char *err, size_t errlen);
/*
 * A client context: the peer's certificate must chain to a CA of ca_file (the system's CAs if
 * empty) and carry host (RFC 6125). NULL with a one-line reason in err.
 */
struct tls_ctx *tls_client_ctx_new(const char *ca_file, const char *host, char *err, size_t errlen);
/*
 * A context for server-to-server streams (RFC 6120 13, XEP-0178): our certificate (as
 * tls_ctx_new) presented as server or, with client, as client; the peer's certificate is
 * asked for and checked against ca_file (the system's CAs if empty) but never fails the
 * handshake: the stream asks conn_tls_peer_ok() and decides (dialback may still do).
 */
struct tls_ctx *tls_s2s_ctx_new(const char *cert, const char *key, const char *data_dir,
				const char *domain, const char *ca_file, bool client, char *err,
				size_t errlen);
void tls_ctx_free(struct tls_ctx *t);

#endif
