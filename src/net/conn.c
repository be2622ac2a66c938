/*
 * conn: non-blocking byte-stream connections, plain TCP or TLS, on the calling
 * thread's loop. Reads are delivered through the data callback; writes are queued and
 * flushed once per loop turn, so many stanzas to one client cost one syscall.
 *
 * Invariant: after conn_close() no callback runs and the owner forgets c; the struct
 * is freed by the turn-end hook, once its queued output is sent or the linger time
 * has passed, never while a handler of c may still be on the stack.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "net_int.h"

#define CONN_READ_CHUNK 16384
#define CONN_LINGER_MS	3000

/*
 * An idle connection holds no buffers (memory per connection), so a busy one would
 * allocate one for every read and every write; emptied buffers wait here instead, a few
 * per loop, for the next connection that needs one.
 */
#define SPARE_BUFS    64
#define SPARE_MAX_CAP (64 * 1024)

struct net_loop_state {
	struct loop *loop;
	struct conn *dirty; /* connections with output to flush or waiting to be freed */
	struct conn *all;   /* every connection on this loop, for net_loop_free() */
	struct buf spare[SPARE_BUFS];
	int nspare;
};

static _Thread_local struct net_loop_state *net_state;
static unsigned long conn_next_id;

/* An empty b gets a spare buffer, if there is one. */
static void
buf_from_spare(struct buf *b)
{
	struct net_loop_state *st = net_state;

	if (!b->data && st && st->nspare)
		*b = st->spare[--st->nspare];
}

/* b, empty, gives its memory back: to the spares, or to the allocator. */
static void
buf_to_spare(struct buf *b)
{
	struct net_loop_state *st = net_state;

	if (!b->data)
		return;
	if (st && st->nspare < SPARE_BUFS && b->cap <= SPARE_MAX_CAP) {
		buf_reset(b);
		st->spare[st->nspare++] = *b;
		*b = (struct buf){0};
	} else {
		buf_free(b);
	}
}

static void conn_io(struct loop_io *io, uint32_t events);
static void conn_fail(struct conn *c, const char *reason);
static void conn_tls_goodbye(struct conn *c);
static void conn_half_close(struct conn *c);

static void
conn_link(struct conn *c)
{
	c->all_prev = NULL;
	c->all_next = net_state->all;
	if (c->all_next)
		c->all_next->all_prev = c;
	net_state->all = c;
}

static void
conn_unlink(struct conn *c)
{
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else if (net_state && net_state->all == c)
		net_state->all = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	c->all_next = c->all_prev = NULL;
}

static void
conn_mark_dirty(struct conn *c)
{
	if (c->dirty || !net_state || c->loop != net_state->loop)
		return;
	c->dirty = 1;
	c->dirty_next = net_state->dirty;
	net_state->dirty = c;
}

static void
conn_update_events(struct conn *c)
{
	uint32_t ev = 0;

	if (c->dead)
		return;
	if (c->connecting) {
		if (loop_io_mod(c->loop, &c->io, LOOP_OUT) < 0)
			conn_fail(c, "epoll_ctl failed");
		return;
	}
	if ((!c->paused || c->closing) && !c->eof)
		ev |= LOOP_IN; /* a closing connection drains its input until the peer's FIN */
	if (c->want_read_to_write)
		ev |= LOOP_IN;
	/*
	 * Output not yet tried goes at the end of the turn (the dirty list): EPOLLOUT only
	 * when the socket would not take it. Arming it for every answer queued while reading
	 * cost two epoll_ctl calls per stanza.
	 */
	if ((buf_used(&c->out) > 0 && c->write_blocked && !c->want_read_to_write) ||
	    c->want_write_to_read)
		ev |= LOOP_OUT;
	if (loop_io_mod(c->loop, &c->io, ev) < 0)
		conn_fail(c, "epoll_ctl failed");
}

static void
conn_free(struct conn *c)
{
	conn_unlink(c);
	timer_stop(c->loop, &c->rate_timer);
	timer_stop(c->loop, &c->linger_timer);
	if (c->io.fd >= 0) {
		loop_io_del(c->loop, &c->io);
		close(c->io.fd);
	}
	if (c->ssl)
		SSL_free(c->ssl);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->tls_host);
	free(c);
}

/* The peer is gone or misbehaved: tell the owner once; it will call conn_close(). */
static void
conn_fail(struct conn *c, const char *reason)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->io.fd >= 0) {
		loop_io_del(c->loop, &c->io);
		shutdown(c->io.fd, SHUT_RDWR);
	}
	buf_reset(&c->out);
	if (!c->closing && c->cb && c->cb->closed)
		c->cb->closed(c, c->arg, reason);
	conn_mark_dirty(c); /* reap if already closing */
}

/* ---- transport: plain or TLS ---- */

/* Returns bytes read, 0 at EOF, -EAGAIN, or another negative errno. */
static ssize_t
transport_read(struct conn *c, char *p, size_t n)
{
	if (!c->ssl) {
		ssize_t r = read(c->io.fd, p, n);
		if (r < 0)
			return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
		return r;
	}
	ERR_clear_error();
	int r = SSL_read(c->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
	if (r > 0) {
		c->want_write_to_read = 0;
		return r;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		c->want_write_to_read = 0;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		c->want_write_to_read = 1;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		return -EPROTO;
	}
}

static ssize_t
transport_write(struct conn *c, const char *p, size_t n)
{
	if (!c->ssl) {
		ssize_t r = send(c->io.fd, p, n, MSG_NOSIGNAL);
		if (r < 0)
			return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
		return r;
	}
	ERR_clear_error();
	int r = SSL_write(c->ssl, p, (int)(n > INT32_MAX ? INT32_MAX : n));
	if (r > 0) {
		c->want_read_to_write = 0;
		return r;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_WRITE:
		c->want_read_to_write = 0;
		return -EAGAIN;
	case SSL_ERROR_WANT_READ:
		c->want_read_to_write = 1;
		return -EAGAIN;
	default:
		return -EPROTO;
	}
}

static void
conn_start_tls_now(struct conn *c, struct tls_ctx *tls)
{
	c->ssl = tls_new_ssl(tls, c->io.fd, c->tls_host);
	if (!c->ssl) {
		conn_fail(c, "TLS setup failed");
		return;
	}
	/* A client speaks first: the ClientHello goes out now, the rest follows on reads. */
	if (tls_is_client(tls)) {
		ERR_clear_error();
		int r = SSL_do_handshake(c->ssl);
		if (r <= 0 && SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE)
			c->want_read_to_write = 0;
	}
}

/* The reason a TLS connection failed, with the certificate's fault if that was it. */
static const char *
tls_failure(struct conn *c, const char *what)
{
	static _Thread_local char msg[256];
	const char *v = c->ssl ? tls_verify_error(c->ssl) : NULL;
	unsigned long e = ERR_peek_error();

	if (v)
		snprintf(msg, sizeof msg, "%s: certificate refused: %s", what, v);
	else if (e)
		snprintf(msg, sizeof msg, "%s: %s", what, ERR_reason_error_string(e));
	else
		return what;
	return msg;
}

/* Writes queued output; returns 0, or -1 if the connection failed. */
static int
conn_flush(struct conn *c)
{
	if (c->connecting)
		return 0; /* sent once connected */
	c->write_blocked = 0;
	while (buf_used(&c->out) > 0) {
		ssize_t r = transport_write(c, buf_head(&c->out), buf_used(&c->out));
		if (r == -EAGAIN) {
			c->write_blocked = 1;
			break;
		}
		if (r <= 0) {
			conn_fail(c, r == -EPROTO ? "TLS write error" : "write error");
			return -1;
		}
		buf_consume(&c->out, (size_t)r);
	}
	if (buf_used(&c->out) == 0 && c->tls_pending) {
		c->tls_pending = 0;
		conn_start_tls_now(c, c->tls_ctx_pending);
		c->tls_ctx_pending = NULL;
		if (c->dead)
			return -1;
	}
	if (buf_used(&c->out) == 0)
		buf_to_spare(&c->out); /* nothing queued: nothing held */
	conn_update_events(c);
	return 0;
}

/* ---- reading, with the token bucket of limits.rate ---- */

static void
rate_resume(struct timer *t)
{
	struct conn *c = container_of(t, struct conn, rate_timer);
	conn_update_events(c);
	conn_io(&c->io, LOOP_IN);
}

/* Returns how many bytes the bucket allows now (SIZE_MAX if unlimited). */
static size_t
rate_allowance(struct conn *c)
{
	uint64_t now;

	if (!c->rate)
		return SIZE_MAX;
	now = now_ms();
	c->tokens += (double)(now - c->tokens_at) * (double)c->rate / 1000.0;
	if (c->tokens > (double)c->burst)
		c->tokens = (double)c->burst;
	c->tokens_at = now;
	return c->tokens < 1 ? 0 : (size_t)c->tokens;
}

static void
conn_read(struct conn *c)
{
	size_t got = 0;

	while (!c->dead && !c->paused && !c->closing && buf_used(&c->in) < c->in_max) {
		size_t allow = rate_allowance(c);
		if (allow == 0) {
			/* Over the rate: stop reading until the bucket has refilled a chunk. */
			if (loop_io_mod(c->loop, &c->io, c->io.events & ~LOOP_IN) == 0)
				timer_start(c->loop, &c->rate_timer,
					    1 + 1000 *
						    (c->burst < CONN_READ_CHUNK ? c->burst
										: CONN_READ_CHUNK) /
						    c->rate);
			break;
		}
		size_t want = allow < CONN_READ_CHUNK ? allow : CONN_READ_CHUNK;
		buf_from_spare(&c->in);
		char *p = buf_space(&c->in, want);
		ssize_t r = transport_read(c, p, want);
		if (r == -EAGAIN)
			break;
		if (r == 0) {
			c->eof = 1;
			break;
		}
		if (r < 0) {
			conn_fail(c, r == -EPROTO ? tls_failure(c, "TLS error") : "read error");
			return;
		}
		buf_commit(&c->in, (size_t)r);
		got += (size_t)r;
		if (c->rate)
			c->tokens -= (double)r;
		/* OpenSSL may hold decrypted bytes epoll cannot see (STYLE.md rule 16). */
		if (!c->ssl && (size_t)r < want)
			break;
	}
	if ((got || c->resume_read) && buf_used(&c->in) && c->cb && c->cb->data && !c->dead &&
	    !c->closing && !c->paused)
		c->cb->data(c, c->arg);
	/* An idle connection keeps no read buffer: most of them are idle most of the time. */
	if (buf_used(&c->in) == 0)
		buf_to_spare(&c->in);
	c->resume_read = 0;
	if (c->eof && !c->dead && !c->closing) {
		/* A peer that only half-closed still reads: the answers to its last bytes go. */
		if (buf_used(&c->out))
			conn_flush(c);
		if (!c->dead)
			conn_fail(c, "connection closed by peer");
	}
}

static void
conn_io(struct loop_io *io, uint32_t events)
{
	struct conn *c = container_of(io, struct conn, io);

	if (c->dead)
		return;
	if (c->connecting) {
		int e = 0;
		socklen_t el = sizeof e;
		if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
			e = errno;
		if (e == EINPROGRESS)
			return;
		if (e) {
			char why[96];
			snprintf(why, sizeof why, "connect: %s", strerror(e));
			conn_fail(c, why);
			return;
		}
		c->connecting = 0;
		if (c->cb && c->cb->connected)
			c->cb->connected(c, c->arg);
		if (c->dead)
			return;
		conn_update_events(c);
		return;
	}
	if (events & (LOOP_ERR | LOOP_HUP) && !(events & LOOP_IN)) {
		conn_fail(c, "connection reset");
		return;
	}
	if ((events & LOOP_OUT) || (c->want_read_to_write && (events & LOOP_IN))) {
		if (conn_flush(c) < 0)
			return;
		if (c->closing && buf_used(&c->out) == 0)
			conn_half_close(c);
	}
	if ((events & LOOP_IN) || (c->want_write_to_read && (events & LOOP_OUT))) {
		if (c->closing) {
			/*
			 * Lingering: drain and ignore what the peer still sends. Closing
			 * with unread input would make the kernel answer with a reset,
			 * and the peer would lose our last bytes (the stream error).
			 */
			char sink[4096];
			ssize_t r;
			while ((r = transport_read(c, sink, sizeof sink)) > 0)
				;
			if (r != -EAGAIN) {
				conn_fail(c, "closed");
				return;
			}
		} else {
			conn_read(c);
		}
	}
	if (!c->dead)
		conn_update_events(c);
}

/*
 * Sends TLS close_notify once everything queued is written: sent earlier, it would
 * make the peer discard the last bytes (a stream error, say) as data after the close.
 */
static void
conn_tls_goodbye(struct conn *c)
{
	if (c->ssl && !c->dead && !c->tls_pending && SSL_is_init_finished(c->ssl)) {
		ERR_clear_error();
		SSL_shutdown(c->ssl);
	}
}

/* All output is written: send our FIN and wait (lingering) for the peer's. */
static void
conn_half_close(struct conn *c)
{
	if (c->fin_sent)
		return;
	c->fin_sent = 1;
	conn_tls_goodbye(c);
	shutdown(c->io.fd, SHUT_WR);
	if (c->eof)
		conn_fail(c, "closed"); /* the peer's FIN came already */
	else
		conn_update_events(c);
}

/* ---- the turn-end hook: flush dirty connections, free closed ones ---- */

static void
net_turn_end(struct loop *loop, void *arg)
{
	struct net_loop_state *st = arg;

	while (st->dirty) {
		struct conn *c = st->dirty;
		st->dirty = c->dirty_next;
		c->dirty = 0;
		c->dirty_next = NULL;
		if (c->overflow && !c->dead)
			conn_fail(c, "send queue full");
		if (!c->dead)
			conn_flush(c);
		if (c->resume_read && !c->dead && !c->closing && !c->paused)
			conn_read(c);
		/* A callback above may have queued c again; it is freed on that visit. */
		if (c->closing && !c->dirty && c->dead)
			conn_free(c);
		else if (c->closing && !c->dead && buf_used(&c->out) == 0)
			conn_half_close(c);
	}
}

void
net_loop_init(struct loop *loop)
{
	struct net_loop_state *st = xcalloc(1, sizeof *st);

	st->loop = loop;
	net_state = st;
	loop_on_turn_end(loop, net_turn_end, st);
}

void
net_loop_free(struct loop *loop)
{
	struct net_loop_state *st = net_state;

	if (!st || st->loop != loop)
		return;
	dns_loop_free();
	while (st->all) {
		struct conn *c = st->all;
		/* An owner still holding c (an idle HTTP connection) frees its side now. */
		if (!c->closing && c->cb && c->cb->closed)
			c->cb->closed(c, c->arg, "shutdown");
		c->closing = 1;
		c->cb = NULL;
		conn_free(c);
	}
	while (st->nspare)
		buf_free(&st->spare[--st->nspare]);
	free(st);
	net_state = NULL;
}

/* ---- public API ---- */

static void
linger_expired(struct timer *t)
{
	struct conn *c = container_of(t, struct conn, linger_timer);
	conn_fail(c, "linger timeout");
}

/* A connection on socket fd, not yet watched by the loop. */
static struct conn *
conn_new(struct loop *loop, int fd, const struct conn_cb *cb, void *arg)
{
	struct conn *c = xcalloc(1, sizeof *c);
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->io.fd = fd;
	c->io.fn = conn_io;
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	c->id = __atomic_add_fetch(&conn_next_id, 1, __ATOMIC_RELAXED);
	c->in_max = 65536;
	c->out_max = 4 << 20;
	c->rate_timer.fn = rate_resume;
	c->linger_timer.fn = linger_expired;
	return c;
}

struct conn *
conn_accept(struct loop *loop, int lfd, struct tls_ctx *tls, const struct conn_cb *cb, void *arg)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct conn *c;

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("accept: %s", strerror(errno));
		return NULL;
	}
	c = conn_new(loop, fd, cb, arg);
	net_format_addr(&ss, c->peer, sizeof c->peer);
	if (loop_io_add(loop, &c->io, LOOP_IN) < 0) {
		close(fd);
		free(c);
		return NULL;
	}
	conn_link(c);
	if (tls)
		conn_start_tls_now(c, tls);
	return c;
}

struct conn *
conn_connect(struct loop *loop, const char *addr, const struct conn_cb *cb, void *arg, char *err,
	     size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char host[256], port[16];
	struct conn *c;
	int fd, r;

	if (net_split_addr(addr, host, sizeof host, port, sizeof port) < 0) {
		snprintf(err, errlen, "%s: not host:port", addr);
		return NULL;
	}
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0 || !res) {
		snprintf(err, errlen, "%s: %s", addr, r ? gai_strerror(r) : "no address");
		return NULL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", addr, strerror(errno));
		freeaddrinfo(res);
		return NULL;
	}
	/* Refused at once or in progress, the answer comes as an event: one path for both. */
	(void)connect(fd, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	c = conn_new(loop, fd, cb, arg);
	snprintf(c->peer, sizeof c->peer, "%s", addr);
	c->connecting = 1;
	if (loop_io_add(loop, &c->io, LOOP_OUT) < 0) {
		snprintf(err, errlen, "%s: epoll: %s", addr, strerror(errno));
		close(fd);
		free(c);
		return NULL;
	}
	conn_link(c);
	return c;
}

void
conn_write(struct conn *c, const void *data, size_t n)
{
	if (c->dead || c->closing || c->overflow)
		return;
	if (buf_used(&c->out) + n > c->out_max) {
		/*
		 * Failed at the end of the turn, not now: the owner may be walking a list
		 * its closed callback would change (fan-out to an account's sessions).
		 */
		if (!c->overflow)
			log_info("c%lu: %s does not read its output; disconnecting", c->id,
				 c->peer);
		c->overflow = 1;
		conn_mark_dirty(c);
		return;
	}
	buf_from_spare(&c->out);
	buf_append(&c->out, data, n);
	conn_mark_dirty(c);
}

void
conn_starttls(struct conn *c, struct tls_ctx *tls)
{
	buf_reset(&c->in);
	c->tls_pending = 1;
	c->tls_ctx_pending = tls;
	conn_mark_dirty(c);
}

void
conn_starttls_host(struct conn *c, struct tls_ctx *tls, const char *host)
{
	free(c->tls_host);
	c->tls_host = xstrdup(host);
	if (buf_used(&c->out) == 0 && !c->connecting && !c->dead) {
		/* Nothing plaintext to send first: TLS now, so what is written next is inside it.
		 */
		buf_reset(&c->in);
		conn_start_tls_now(c, tls);
		return;
	}
	conn_starttls(c, tls);
}

bool
conn_tls_peer_ok(const struct conn *c, const char *domain)
{
	return tls_peer_ok(c->ssl, domain);
}

size_t
conn_out_pending(const struct conn *c)
{
	return buf_used(&c->out);
}

bool
conn_is_tls(const struct conn *c)
{
	return c->ssl != NULL;
}

void
conn_pause(struct conn *c, bool paused)
{
	if (c->paused == paused)
		return;
	c->paused = paused;
	conn_update_events(c);
	/* Resuming: input may already be waiting in OpenSSL or in c->in. */
	if (!paused && !c->dead) {
		c->resume_read = 1;
		conn_mark_dirty(c);
	}
}

void
conn_set_limits(struct conn *c, size_t in_max, size_t out_max, size_t rate, size_t burst)
{
	c->in_max = in_max;
	c->out_max = out_max;
	c->rate = rate;
	c->burst = burst ? burst : in_max;
	c->tokens = (double)c->burst;
	c->tokens_at = now_ms();
}

void
conn_set_cb(struct conn *c, const struct conn_cb *cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

void
conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->cb = NULL;
	if (c->dead) {
		conn_mark_dirty(c);
		return;
	}
	timer_start(c->loop, &c->linger_timer, CONN_LINGER_MS);
	conn_mark_dirty(c);
}

void
conn_detach(struct conn *c)
{
	timer_stop(c->loop, &c->rate_timer);
	if (c->io.fd >= 0)
		loop_io_del(c->loop, &c->io);
	/* Leave the loop's dirty list: the new loop re-marks it if output is waiting. */
	if (c->dirty && net_state) {
		for (struct conn **pp = &net_state->dirty; *pp; pp = &(*pp)->dirty_next) {
			if (*pp == c) {
				*pp = c->dirty_next;
				break;
			}
		}
		c->dirty = 0;
	}
	conn_unlink(c);
	c->loop = NULL;
}

void
conn_attach(struct conn *c, struct loop *loop)
{
	c->loop = loop;
	conn_link(c);
	if (loop_io_add(loop, &c->io, 0) < 0) {
		conn_fail(c, "epoll_ctl failed");
		return;
	}
	conn_update_events(c);
	conn_mark_dirty(c);
	c->resume_read = 1;
}
