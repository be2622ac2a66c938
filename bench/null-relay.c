/*
 * null-relay: the cheapest "server" build/xmpp-load can log into and chat through, a calibration
 * tool for the chat benchmark (what loopback TCP and the generator allow on this machine, the
 * ceiling for any server); it has no XML parser, no authentication and no storage. Invariant: a
 * message from a bound session is forwarded byte for byte with only a from attribute added, in
 * one send(), to the session bound to the localpart of its to (or counted as unrouted and
 * dropped), and nothing is held back but bytes a socket has not taken yet.
 *
 * XEP-0198 follows the pattern of a real server in this benchmark: inbound stanzas are counted,
 * every <r/> is answered with <a h='N'/>, every delivered message carries an <r/> in the same
 * write, and the recipient's <a/> is read and ignored. Unlike baton, which withholds the sender's
 * <a/> until the recipient has acknowledged, this answers <r/> at once: enough for a ceiling.
 *
 * usage: null-relay PORT [DOMAIN]   (listens on 127.0.0.1:PORT; DOMAIN defaults to localhost)
 * SIGUSR1 prints the counters on stderr; SIGINT/SIGTERM print them and exit.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, memmem, memrchr */
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RELAY_READ_MAX	 (64 * 1024) /* bytes one recv() may take per readable event */
#define RELAY_ELEM_MAX	 4096	     /* a longer top-level element ends the stream */
#define RELAY_OUT_MAX	 (64u << 20) /* a reader this far behind is closed (run.sh's send_queue) */
#define RELAY_OUT_MIN	 4096	     /* first allocation of an output queue */
#define RELAY_USER_MAX	 64	     /* localpart bytes, including the NUL */
#define RELAY_DOMAIN_MAX 256
#define RELAY_EVENTS	 512
#define RELAY_USERS_MIN	 1024 /* initial buckets of the user table (a power of two) */

#define NS_SASL	   "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND	   "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_SM	   "urn:xmpp:sm:3"
#define NS_REG	   "jabber:iq:register"

/* RFC 6120 order: header, SASL (or XEP-0077 registration), restart, bind, then stanzas. */
enum conn_state { ST_HEADER, ST_AUTH, ST_RESTART, ST_BIND, ST_ONLINE };

struct conn {
	int fd;
	uint8_t state;
	uint8_t sm_on;	  /* <enabled/> sent: inbound stanzas are counted in h_in */
	uint8_t want_out; /* EPOLLOUT is armed */
	uint8_t ending;	  /* </stream:stream> queued: close once written, read nothing more */
	uint8_t dead;	  /* closed; freed by conn_reap after the current batch of events */
	uint8_t bound;	  /* in the user table */
	uint32_t id;
	uint32_t h_in; /* XEP-0198 h: wraps at 2^32 as the XEP says */
	char *out;     /* bytes the socket did not take: [out + ooff, out + olen) */
	size_t ooff, olen, ocap;
	char *pend; /* the start of an incomplete element, RELAY_ELEM_MAX bytes when allocated */
	size_t plen;
	struct conn *hnext;	/* user table bucket chain */
	struct conn *dead_next; /* reap list */
	char user[RELAY_USER_MAX];
	size_t ulen;
};

static struct {
	uint64_t accepted, refused, logins, registered, relayed, unrouted, acks, slow, errors;
} stats;

static int ep = -1, lfd = -1, spare_fd = -1;
static const char *domain = "localhost";
static uint32_t next_id;
static struct conn *dead_list;
static struct conn **users; /* localpart -> bound session, chained buckets */
static size_t users_cap, users_n;
static char rbuf[RELAY_ELEM_MAX + RELAY_READ_MAX]; /* a pending element, then what recv() read */
static char obuf[RELAY_ELEM_MAX + RELAY_USER_MAX + RELAY_DOMAIN_MAX + 64]; /* one relayed message */
static volatile sig_atomic_t stop_flag, dump_flag;

static void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "null-relay: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (!p)
		fatal("out of memory");
	return p;
}

static void *
xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (!p)
		fatal("out of memory");
	return p;
}

/* ---- the user table: localpart -> bound session ---- */

static uint32_t
user_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (n--) {
		h ^= (unsigned char)*s++;
		h *= 16777619u;
	}
	return h;
}

static struct conn *
user_find(const char *s, size_t n)
{
	struct conn *c = users[user_hash(s, n) & (users_cap - 1)];

	while (c && (c->ulen != n || memcmp(c->user, s, n) != 0))
		c = c->hnext;
	return c;
}

/* Doubles the buckets when there are as many users as buckets: chains stay about one long. */
static void
user_add(struct conn *c)
{
	struct conn **b;

	if (users_n >= users_cap) {
		size_t ncap = users_cap * 2;
		struct conn **nt = xcalloc(ncap, sizeof(*nt));

		for (size_t i = 0; i < users_cap; i++) {
			struct conn *e = users[i], *next;

			for (; e; e = next) {
				next = e->hnext;
				b = &nt[user_hash(e->user, e->ulen) & (ncap - 1)];
				e->hnext = *b;
				*b = e;
			}
		}
		free(users);
		users = nt;
		users_cap = ncap;
	}
	b = &users[user_hash(c->user, c->ulen) & (users_cap - 1)];
	c->hnext = *b;
	*b = c;
	c->bound = 1;
	users_n++;
}

static void
user_del(struct conn *c)
{
	struct conn **b = &users[user_hash(c->user, c->ulen) & (users_cap - 1)];

	if (!c->bound)
		return;
	while (*b != c)
		b = &(*b)->hnext;
	*b = c->hnext;
	c->bound = 0;
	users_n--;
}

/* ---- connections ---- */

/*
 * Closes c's socket and puts it on the reap list: it may still be on the stack (a sender
 * relaying to it) or later in the current batch of events, so it is freed only by conn_reap.
 */
static void
conn_kill(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	user_del(c);
	close(c->fd); /* also takes it out of the epoll set: nothing else holds the socket */
	c->fd = -1;
	c->dead_next = dead_list;
	dead_list = c;
}

static void
conn_reap(void)
{
	while (dead_list) {
		struct conn *c = dead_list;

		dead_list = c->dead_next;
		free(c->out);
		free(c->pend);
		free(c);
	}
}

static void
conn_arm(struct conn *c, int out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};

	if (c->want_out == out)
		return;
	c->want_out = (uint8_t)out;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Returns the bytes send() took (0 if it would block), or -1 when the connection is broken. */
static ssize_t
conn_write(struct conn *c, const char *data, size_t n)
{
	for (;;) {
		ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);

		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
}

/* Writes what the socket takes at once and queues the rest behind EPOLLOUT, in order. */
static void
conn_send(struct conn *c, const char *data, size_t n)
{
	if (c->dead)
		return;
	if (c->olen == c->ooff) {
		ssize_t w = conn_write(c, data, n);

		if (w < 0) {
			conn_kill(c);
			return;
		}
		data += w;
		n -= (size_t)w;
		if (n == 0)
			return;
	}
	if (n > RELAY_OUT_MAX - (c->olen - c->ooff)) {
		if (stats.slow++ == 0)
			fprintf(stderr, "null-relay: #%u: more than %u bytes queued, closed\n",
				c->id, RELAY_OUT_MAX);
		conn_kill(c);
		return;
	}
	if (c->ooff > 0 && c->olen + n > c->ocap) {
		memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
		c->olen -= c->ooff;
		c->ooff = 0;
	}
	if (c->olen + n > c->ocap) {
		size_t ncap = c->ocap ? c->ocap : RELAY_OUT_MIN;

		while (ncap < c->olen + n)
			ncap *= 2;
		c->out = xrealloc(c->out, ncap);
		c->ocap = ncap;
	}
	memcpy(c->out + c->olen, data, n);
	c->olen += n;
	conn_arm(c, 1);
}

/* A string literal, its length known at compile time. */
#define conn_send_lit(c, s) conn_send((c), (s), sizeof(s) - 1)

static void conn_sendf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
conn_sendf(struct conn *c, const char *fmt, ...)
{
	char b[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof(b))
		conn_send(c, b, (size_t)n);
}

/* Frees an emptied queue, so an idle connection holds no output buffer. */
static void
conn_flush(struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t w = conn_write(c, c->out + c->ooff, c->olen - c->ooff);

		if (w < 0) {
			conn_kill(c);
			return;
		}
		if (w == 0)
			return;
		c->ooff += (size_t)w;
	}
	free(c->out);
	c->out = NULL;
	c->ooff = c->olen = c->ocap = 0;
	if (c->ending)
		conn_kill(c);
	else
		conn_arm(c, 0);
}

/* Closes our stream; the socket is closed once everything queued is written. */
static void
conn_end(struct conn *c)
{
	if (c->dead || c->ending)
		return;
	conn_send_lit(c, "</stream:stream>");
	c->ending = 1;
	if (!c->dead && c->ooff == c->olen)
		conn_kill(c);
}

/* RFC 6120 §4.9: a stream error, then the end of the stream. */
static void
conn_stream_error(struct conn *c, const char *cond)
{
	if (stats.errors++ < 5)
		fprintf(stderr, "null-relay: #%u: stream error %s\n", c->id, cond);
	conn_sendf(c, "<stream:error><%s xmlns='" NS_STREAMS "'/></stream:error>", cond);
	conn_end(c);
}

/* ---- start tags ---- */

static int
is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

/* Returns the index of the '>' closing the tag that opens at b[i] (quotes respected), or -1. */
static long
tag_end(const char *b, size_t i, size_t len)
{
	char quote = 0;

	for (i++; i < len; i++) {
		char ch = b[i];

		if (quote) {
			if (ch == quote)
				quote = 0;
		} else if (ch == '\'' || ch == '"') {
			quote = ch;
		} else if (ch == '>') {
			return (long)i;
		}
	}
	return -1;
}

/* Whether the tag [p, p + n) (starting with '<') names element `name`. */
static int
tag_is(const char *p, size_t n, const char *name)
{
	size_t l = strlen(name);

	return n > l + 1 && memcmp(p + 1, name, l) == 0 &&
	       (is_space(p[l + 1]) || p[l + 1] == '/' || p[l + 1] == '>');
}

/*
 * Finds attribute `name` in the start tag [p, p + n): on success points *v at its value (in the
 * tag, unescaped bytes as sent), sets *vlen and *quote and returns 0; returns -1 otherwise.
 */
static int
attr_get(const char *p, size_t n, const char *name, const char **v, size_t *vlen, char *quote)
{
	size_t nl = strlen(name), i = 1;

	while (i < n && !is_space(p[i]) && p[i] != '/' && p[i] != '>')
		i++;
	for (;;) {
		size_t a, al;
		char q;
		const char *e;

		while (i < n && is_space(p[i]))
			i++;
		if (i >= n || p[i] == '/' || p[i] == '>')
			return -1;
		a = i;
		while (i < n && p[i] != '=' && !is_space(p[i]) && p[i] != '>')
			i++;
		al = i - a;
		while (i < n && is_space(p[i]))
			i++;
		if (i + 1 >= n || p[i] != '=')
			return -1;
		i++;
		while (i < n && is_space(p[i]))
			i++;
		if (i >= n || (p[i] != '\'' && p[i] != '"'))
			return -1;
		q = p[i++];
		e = memchr(p + i, q, n - i);
		if (!e)
			return -1;
		if (al == nl && memcmp(p + a, name, nl) == 0) {
			*v = p + i;
			*vlen = (size_t)(e - (p + i));
			*quote = q;
			return 0;
		}
		i = (size_t)(e - p) + 1;
	}
}

/* ---- the login: header, SASL PLAIN or XEP-0077, restart, bind ---- */

static void
on_header(struct conn *c, const char *tag, size_t n)
{
	const char *to;
	size_t tolen;
	char q;

	conn_sendf(c,
		   "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
		   "xmlns:stream='http://etherx.jabber.org/streams' id='%x' from='%s' "
		   "version='1.0'>",
		   c->id, domain);
	/* xmpp-load puts its --domain in to; a mismatch is a misconfigured run, not a login. */
	if (attr_get(tag, n, "to", &to, &tolen, &q) < 0 || tolen != strlen(domain) ||
	    memcmp(to, domain, tolen) != 0) {
		conn_stream_error(c, "host-unknown");
		return;
	}
	if (c->state == ST_HEADER) {
		conn_send_lit(c, "<stream:features><mechanisms xmlns='" NS_SASL "'>"
				 "<mechanism>PLAIN</mechanism></mechanisms>"
				 "<register xmlns='http://jabber.org/features/iq-register'/>"
				 "</stream:features>");
		c->state = ST_AUTH;
	} else if (c->state == ST_RESTART) { /* RFC 6120 §6.4.6: after <success/> */
		conn_send_lit(c, "<stream:features><bind xmlns='" NS_BIND "'/>"
				 "<sm xmlns='" NS_SM "'/></stream:features>");
		c->state = ST_BIND;
	} else {
		conn_stream_error(c, "invalid-xml"); /* a restart nobody asked for */
	}
}

static int
b64_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/* Decodes base64 [in, in + n) into out; returns the decoded length, or -1 if bad or too long. */
static long
b64_decode(const char *in, size_t n, unsigned char *out, size_t outsz)
{
	uint32_t acc = 0;
	size_t o = 0;
	int bits = 0;

	for (size_t i = 0; i < n && in[i] != '='; i++) {
		int v = b64_val((unsigned char)in[i]);

		if (is_space(in[i]))
			continue;
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outsz)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return (long)o;
}

/* A localpart is echoed into attributes and JIDs unescaped: refuse what would need escaping. */
static int
user_ok(const unsigned char *u, size_t n)
{
	if (n == 0 || n >= RELAY_USER_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (u[i] <= ' ' || u[i] == 0x7f || strchr("\"&'/:<>@", u[i]))
			return 0;
	return 1;
}

/* RFC 4616: authzid NUL authcid NUL passwd. The authcid is taken, the password never checked. */
static void
on_auth(struct conn *c, const char *p, size_t n, size_t taglen)
{
	unsigned char raw[512];
	const char *mech, *text = p + taglen, *text_end = memrchr(p, '<', n);
	const unsigned char *a, *b;
	size_t mlen;
	long rl;
	char q;

	if (attr_get(p, taglen, "mechanism", &mech, &mlen, &q) < 0 || mlen != 5 ||
	    memcmp(mech, "PLAIN", 5) != 0) {
		conn_send_lit(c, "<failure xmlns='" NS_SASL "'><invalid-mechanism/></failure>");
		return;
	}
	if (p[taglen - 2] == '/' || !text_end || text_end < text ||
	    (rl = b64_decode(text, (size_t)(text_end - text), raw, sizeof(raw))) < 0 ||
	    !(a = memchr(raw, 0, (size_t)rl)) ||
	    !(b = memchr(a + 1, 0, (size_t)(raw + rl - (a + 1)))) ||
	    !user_ok(a + 1, (size_t)(b - (a + 1)))) {
		conn_send_lit(c, "<failure xmlns='" NS_SASL "'><not-authorized/></failure>");
		return;
	}
	c->ulen = (size_t)(b - (a + 1));
	memcpy(c->user, a + 1, c->ulen);
	c->user[c->ulen] = 0;
	conn_send_lit(c, "<success xmlns='" NS_SASL "'/>");
	c->state = ST_RESTART;
}

/* RFC 6120 §7: the resource is always r, the one xmpp-load asks for. */
static void
on_bind(struct conn *c, const char *id, size_t idlen, char q)
{
	struct conn *old = user_find(c->user, c->ulen);

	if (old) { /* RFC 6120 §7.7.2.2: the newer session wins, the older one is closed */
		user_del(old);
		conn_stream_error(old, "conflict");
	}
	user_add(c);
	c->state = ST_ONLINE;
	stats.logins++;
	conn_sendf(c,
		   "<iq type='result' id=%c%.*s%c><bind xmlns='" NS_BIND "'><jid>%s@%s/r</jid>"
		   "</bind></iq>",
		   q, (int)idlen, id, q, c->user, domain);
}

static void
on_iq(struct conn *c, const char *p, size_t n, size_t taglen)
{
	const char *id = "", *type = "";
	size_t idlen = 0, tlen = 0;
	char q = '\'', tq;
	int get, set;

	attr_get(p, taglen, "id", &id, &idlen, &q);
	attr_get(p, taglen, "type", &type, &tlen, &tq);
	get = tlen == 3 && memcmp(type, "get", 3) == 0;
	set = tlen == 3 && memcmp(type, "set", 3) == 0;
	if (idlen > 256) {
		conn_stream_error(c, "policy-violation");
		return;
	}
	switch (c->state) {
	case ST_AUTH:
		/* XEP-0077 before authentication: every registration succeeds, none is kept. */
		if (!memmem(p, n, NS_REG, sizeof(NS_REG) - 1) || !(get || set))
			break;
		if (set) {
			stats.registered++;
			conn_sendf(c, "<iq type='result' id=%c%.*s%c/>", q, (int)idlen, id, q);
		} else {
			conn_sendf(c,
				   "<iq type='result' id=%c%.*s%c><query xmlns='" NS_REG
				   "'><username/><password/></query></iq>",
				   q, (int)idlen, id, q);
		}
		return;
	case ST_BIND:
		if (!set || !memmem(p, n, NS_BIND, sizeof(NS_BIND) - 1))
			break;
		on_bind(c, id, idlen, q);
		return;
	case ST_ONLINE:
		/* RFC 6120 §8.2.3: a get or set is always answered; pings are what comes here. */
		if (get || set)
			conn_sendf(c, "<iq type='result' id=%c%.*s%c/>", q, (int)idlen, id, q);
		return;
	default:
		break;
	}
	conn_stream_error(c, "not-authorized");
}

/* ---- the chat: messages and XEP-0198 ---- */

/*
 * Forwards the message to the session bound to the localpart of its to: the element as sent with
 * from='user@domain/r' added after "<message" (xmpp-load reads only the body), plus <r/> when the
 * recipient enabled XEP-0198, in one write. xmpp-load's messages carry no from of their own.
 */
static void
on_message(struct conn *c, const char *p, size_t n, size_t taglen)
{
	const char *to, *at;
	struct conn *rcpt;
	size_t tolen, o;
	char q;

	if (attr_get(p, taglen, "to", &to, &tolen, &q) < 0 || !(at = memchr(to, '@', tolen)) ||
	    !(rcpt = user_find(to, (size_t)(at - to))) || rcpt->dead || rcpt->ending) {
		stats.unrouted++;
		return;
	}
	o = (size_t)snprintf(obuf, sizeof(obuf), "<message from='%s@%s/r'", c->user, domain);
	memcpy(obuf + o, p + 8, n - 8); /* n <= RELAY_ELEM_MAX: obuf has room */
	o += n - 8;
	if (rcpt->sm_on) {
		static const char r[] = "<r xmlns='" NS_SM "'/>";

		memcpy(obuf + o, r, sizeof(r) - 1);
		o += sizeof(r) - 1;
	}
	conn_send(rcpt, obuf, o);
	stats.relayed++;
}

/* One complete top-level element [p, p + n) of the client's stream. */
static void
on_element(struct conn *c, const char *p, size_t n)
{
	size_t taglen = (size_t)tag_end(p, 0, n) + 1; /* complete: the '>' is there */
	int stanza = tag_is(p, taglen, "message") || tag_is(p, taglen, "presence") ||
		     tag_is(p, taglen, "iq");

	if (n > RELAY_ELEM_MAX) { /* one recv() can hold a whole element of any size */
		conn_stream_error(c, "policy-violation");
		return;
	}
	if (stanza && c->sm_on)
		c->h_in++; /* counted before it is handled, so an answer to <r/> covers it */
	if (c->state != ST_ONLINE) {
		if (tag_is(p, taglen, "auth") && c->state == ST_AUTH)
			on_auth(c, p, n, taglen);
		else if (tag_is(p, taglen, "iq"))
			on_iq(c, p, n, taglen);
		else
			conn_stream_error(c, "not-authorized");
	} else if (tag_is(p, taglen, "message")) {
		on_message(c, p, n, taglen);
	} else if (tag_is(p, taglen, "r")) {
		stats.acks++;
		conn_sendf(c, "<a xmlns='" NS_SM "' h='%u'/>", c->h_in);
	} else if (tag_is(p, taglen, "iq")) {
		on_iq(c, p, n, taglen);
	} else if (tag_is(p, taglen, "enable") && !c->sm_on) {
		c->sm_on = 1;
		c->h_in = 0;
		conn_send_lit(c, "<enabled xmlns='" NS_SM "'/>");
	}
	/* <presence/> (no broadcast), <a/> and anything else: read and ignored. */
}

/* ---- input ---- */

/*
 * Hands every complete top-level element of [b, b + len) to on_element and returns the bytes
 * consumed: everything before the first incomplete one. The XML declaration, the stream header
 * (any time: restarts) and </stream:stream> are recognised at the top level; below it only tags
 * are counted, which is enough for what xmpp-load sends (no comments or CDATA).
 */
static size_t
scan(struct conn *c, const char *b, size_t len)
{
	size_t pos = 0;

	while (pos < len && !c->dead && !c->ending) {
		const char *lt = memchr(b + pos, '<', len - pos);
		size_t start, i;
		long gt;

		if (!lt)
			return len; /* whitespace between elements */
		start = (size_t)(lt - b);
		if ((gt = tag_end(b, start, len)) < 0)
			return start;
		i = (size_t)gt + 1;
		if (b[start + 1] == '?' || b[start + 1] == '!') {
			pos = i;
			continue;
		}
		if (b[start + 1] == '/') { /* </stream:stream> */
			conn_end(c);
			return len;
		}
		if (tag_is(b + start, i - start, "stream:stream")) {
			on_header(c, b + start, i - start);
			pos = i;
			continue;
		}
		for (int depth = b[gt - 1] == '/' ? 0 : 1; depth > 0;) {
			size_t j;

			if (!(lt = memchr(b + i, '<', len - i)))
				return start;
			j = (size_t)(lt - b);
			if ((gt = tag_end(b, j, len)) < 0)
				return start;
			if (b[j + 1] == '/')
				depth--;
			else if (b[j + 1] != '?' && b[j + 1] != '!' && b[gt - 1] != '/')
				depth++;
			i = (size_t)gt + 1;
		}
		on_element(c, b + start, i - start);
		pos = i;
	}
	return pos;
}

/* One recv() per readable event; an incomplete element waits in c->pend for the rest. */
static void
conn_readable(struct conn *c)
{
	size_t have = c->plen, used;
	ssize_t r;

	if (have)
		memcpy(rbuf, c->pend, have);
	r = recv(c->fd, rbuf + have, RELAY_READ_MAX, 0);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (r <= 0) {
		conn_kill(c);
		return;
	}
	if (c->ending)
		return; /* after our </stream:stream>: read and dropped until the socket closes */
	have += (size_t)r;
	used = scan(c, rbuf, have);
	if (c->dead || c->ending)
		return;
	have -= used;
	if (have > RELAY_ELEM_MAX) {
		conn_stream_error(c, "policy-violation");
		return;
	}
	if (have == 0) {
		free(c->pend);
		c->pend = NULL;
	} else {
		if (!c->pend)
			c->pend = xrealloc(NULL, RELAY_ELEM_MAX);
		memcpy(c->pend, rbuf + used, have);
	}
	c->plen = have;
}

/* ---- listening ---- */

/*
 * Accepts until the backlog is empty. Out of descriptors, the spare one is given up to accept
 * and close the connection at once: the listener would otherwise stay readable and spin.
 */
static void
accept_all(void)
{
	for (;;) {
		struct epoll_event ev = {.events = EPOLLIN};
		struct conn *c;
		int fd, one = 1;

		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if ((errno != EMFILE && errno != ENFILE) || spare_fd < 0)
				return;
			/* Linux checks for a free descriptor before the backlog: EMFILE also
			 * comes with nothing to accept, so stop once the backlog is empty. */
			close(spare_fd);
			fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				close(fd);
			spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				return;
			if (stats.refused++ == 0)
				fprintf(stderr, "null-relay: out of file descriptors, refusing "
						"connections\n");
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->id = ++next_id;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		stats.accepted++;
	}
}

static void
stats_print(void)
{
	fprintf(stderr,
		"null-relay: accepted %llu refused %llu logins %llu registered %llu online %zu "
		"relayed %llu unrouted %llu acks %llu slow %llu stream_errors %llu\n",
		(unsigned long long)stats.accepted, (unsigned long long)stats.refused,
		(unsigned long long)stats.logins, (unsigned long long)stats.registered, users_n,
		(unsigned long long)stats.relayed, (unsigned long long)stats.unrouted,
		(unsigned long long)stats.acks, (unsigned long long)stats.slow,
		(unsigned long long)stats.errors);
}

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		dump_flag = 1;
	else
		stop_flag = 1;
}

static void
listen_on(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		fatal("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fatal("bind 127.0.0.1:%d: %s", port, strerror(errno));
	if (listen(lfd, 65535) < 0) /* the kernel caps it at net.core.somaxconn */
		fatal("listen: %s", strerror(errno));
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[RELAY_EVENTS], lev = {.events = EPOLLIN, .data.ptr = NULL};
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: epoll_wait returns */
	struct rlimit rl = {0};
	char *end;
	long port;

	if (argc < 2 || argc > 3)
		fatal("usage: null-relay PORT [DOMAIN]");
	port = strtol(argv[1], &end, 10);
	if (*end || port < 1 || port > 65535)
		fatal("bad port '%s'", argv[1]);
	if (argc == 3)
		domain = argv[2];
	if (!*domain || strlen(domain) >= RELAY_DOMAIN_MAX || strpbrk(domain, "\"&'<>@/ "))
		fatal("bad domain '%s'", domain);

	/* One descriptor per connection: as many as the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	users_cap = RELAY_USERS_MIN;
	users = xcalloc(users_cap, sizeof(*users));
	spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	listen_on((int)port);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0)
		fatal("epoll: %s", strerror(errno));
	fprintf(stderr, "null-relay: listening on 127.0.0.1:%ld, domain %s, %llu descriptors\n",
		port, domain, (unsigned long long)rl.rlim_cur);

	while (!stop_flag) {
		int n = epoll_wait(ep, evs, RELAY_EVENTS, -1);

		if (n < 0 && errno != EINTR)
			fatal("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (!c) {
				accept_all();
				continue;
			}
			if (!c->dead && (evs[i].events & EPOLLOUT) && c->ooff < c->olen)
				conn_flush(c);
			if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				conn_readable(c);
		}
		conn_reap();
		if (dump_flag) {
			dump_flag = 0;
			stats_print();
		}
	}
	stats_print();
	return 0;
}
