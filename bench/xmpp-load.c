/*
 * xmpp-load: an XMPP c2s load generator for baton's benchmarks (issue 6). One process, one
 * epoll loop, non-blocking sockets: it logs in thousands of users (stream, optional STARTTLS,
 * SASL PLAIN, restart, bind, initial presence) and runs one scenario, printing exactly one
 * JSON line on stdout.
 *
 * Invariant: the load is open loop. Messages leave on a clock-driven schedule whatever the
 * server answers, each body carries its step, sender, sequence number and CLOCK_MONOTONIC send
 * time, and every received byte is scanned once per read (an incomplete top-level element is
 * kept in a per-connection buffer and rescanned only when more bytes arrive).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_SRC	     64
#define RBUF_SIZE    (256 * 1024)
#define HIST_RES_NS  10000ULL  /* latency histogram resolution: 10 us */
#define HIST_BUCKETS 1000000   /* 10 us x 1e6 = 10 s; slower lands in the last bucket */
#define P99_LIMIT_MS 50.0      /* DESIGN.md: highest rate with p99 < 50 ms and no loss */
#define MAX_PEND     (4 << 20) /* an element larger than this closes the connection */
#define NS_SASL	     "urn:ietf:params:xml:ns:xmpp-sasl"

enum state {
	ST_FREE,
	ST_CONNECTING,
	ST_TLS_HS,
	ST_FEAT1,
	ST_STARTTLS,
	ST_REG,
	ST_AUTH,
	ST_FEAT2,
	ST_BIND,
	ST_SESSION,
	ST_ONLINE,
	ST_CLOSED,
	ST_FAILED,
};

enum scenario { SC_LOGIN, SC_IDLE, SC_CHAT, SC_OFFLINE, SC_MUC, SC_REGISTER };

struct conn {
	int fd;
	uint8_t state;
	uint8_t stream_open; /* the server's stream header has been seen */
	uint8_t tls_on;
	uint8_t want_out; /* EPOLLOUT is armed */
	uint8_t need_session;
	uint8_t muc_state; /* 0 none, 1 join sent, 2 configuring, 3 joined */
	uint8_t sm_offered; /* the server lists XEP-0198 in its features */
	uint8_t sm_on;	    /* <enabled/> seen: stanzas are counted and acknowledged */
	uint32_t sm_h;	    /* XEP-0198 h: stanzas received since <enabled/> */
	uint32_t user;
	SSL *ssl;
	char *pend; /* bytes of an incomplete top-level element */
	uint32_t plen, pcap;
	char *wbuf; /* bytes the socket did not take yet */
	uint32_t wlen, wcap;
	uint64_t t_start;
};

struct hist {
	uint32_t *b;
	uint64_t n;
	uint64_t max_ns;
};

static struct {
	const char *host, *domain, *prefix, *password, *server_name, *label;
	int port, users, concurrency, tls, ramp, max_steps, backlog, room_size, close_after_login;
	int sm;
	double rate, duration, drain, settle, login_timeout;
	pid_t server_pid;
	struct sockaddr_in src[MAX_SRC];
	int nsrc;
	enum scenario sc;
} opt = {
    .host = "127.0.0.1",
    .domain = "localhost",
    .prefix = "u",
    .password = "pw",
    .server_name = "unknown",
    .label = NULL,
    .port = 5222,
    .users = 100,
    .concurrency = 200,
    .rate = 1000,
    .duration = 5,
    .drain = 5,
    .settle = 2,
    .login_timeout = 120,
    .max_steps = 14,
    .backlog = 10,
    .room_size = 50,
};

static int ep = -1;
static struct conn *conns; /* indexed by user number */
static SSL_CTX *ssl_ctx;
static char rbuf[RBUF_SIZE];
static struct sockaddr_in dst;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

/* Counters of the current phase. */
static struct {
	uint64_t logins, login_fail, connect_fail, registered, reg_exists, reg_fail, closed;
	uint64_t delivered, late, msg_errors, stream_errors, muc_joined, iq_results;
	uint32_t step;
	struct hist lat, login_lat;
	uint64_t last_rx_ns;
	int in_flight;
} st;

static volatile sig_atomic_t stop_flag;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "xmpp-load: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void
hist_init(struct hist *h)
{
	if (!h->b) {
		h->b = calloc(HIST_BUCKETS, sizeof(*h->b));
		if (!h->b)
			die("out of memory");
	} else {
		memset(h->b, 0, HIST_BUCKETS * sizeof(*h->b));
	}
	h->n = 0;
	h->max_ns = 0;
}

static void
hist_add(struct hist *h, uint64_t ns)
{
	uint64_t i = ns / HIST_RES_NS;

	h->b[i < HIST_BUCKETS ? i : HIST_BUCKETS - 1]++;
	h->n++;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

/* Returns the q-quantile in milliseconds (upper edge of its bucket); 0 when empty. */
static double
hist_ms(const struct hist *h, double q)
{
	uint64_t want, acc = 0;

	if (h->n == 0)
		return 0;
	want = (uint64_t)(q * (double)h->n);
	if (want >= h->n)
		want = h->n - 1;
	for (uint64_t i = 0; i < HIST_BUCKETS; i++) {
		acc += h->b[i];
		if (acc > want)
			return (double)((i + 1) * HIST_RES_NS) / 1e6;
	}
	return (double)h->max_ns / 1e6;
}

/* ---- /proc readings of the server ---- */

static long
proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Server CPU time (user + system) in seconds, or -1. */
static double
proc_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, stt;
	ssize_t n;
	int fd;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
		return -1;
	return (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- JSON output: one object built in a buffer, printed as one line ---- */

static char jbuf[4096];
static size_t jlen;

static void
json_begin(const char *scenario)
{
	jlen = (size_t)snprintf(jbuf, sizeof(jbuf), "{\"server\":\"%s\",\"scenario\":\"%s\"",
				opt.server_name, scenario);
	if (opt.label)
		jlen += (size_t)snprintf(jbuf + jlen, sizeof(jbuf) - jlen, ",\"label\":\"%s\"",
					 opt.label);
	jlen += (size_t)snprintf(jbuf + jlen, sizeof(jbuf) - jlen, ",\"users\":%d,\"tls\":%s,\"sm\":%s",
				 opt.users, opt.tls ? "true" : "false", opt.sm ? "true" : "false");
}

static void
json_num(const char *k, double v)
{
	if (jlen >= sizeof(jbuf) - 64)
		return;
	if (v == (double)(int64_t)v && v < 1e15 && v > -1e15)
		jlen += (size_t)snprintf(jbuf + jlen, sizeof(jbuf) - jlen, ",\"%s\":%lld", k,
					 (long long)v);
	else
		jlen += (size_t)snprintf(jbuf + jlen, sizeof(jbuf) - jlen, ",\"%s\":%.3f", k, v);
}

static void
json_end(FILE *f)
{
	fprintf(f, "%s}\n", jbuf);
	fflush(f);
}

/* ---- connection I/O ---- */

static void
conn_arm(struct conn *c, int out)
{
	struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = c->user};

	if (c->want_out == out)
		return;
	c->want_out = (uint8_t)out;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_close(struct conn *c, int failed)
{
	if (c->fd >= 0) {
		if (c->ssl) {
			SSL_free(c->ssl);
			c->ssl = NULL;
		}
		close(c->fd);
		c->fd = -1;
	}
	if (c->state != ST_ONLINE && c->state != ST_CLOSED && c->state != ST_FAILED &&
	    c->state != ST_FREE)
		st.in_flight--;
	c->state = failed ? ST_FAILED : ST_CLOSED;
	free(c->pend);
	free(c->wbuf);
	c->pend = c->wbuf = NULL;
	c->plen = c->pcap = c->wlen = c->wcap = 0;
	c->want_out = 0;
	st.closed++;
}

static int
buf_append(char **b, uint32_t *len, uint32_t *cap, const char *data, size_t n)
{
	if (*len + n > MAX_PEND)
		return -1;
	if (*len + n > *cap) {
		uint32_t ncap = *cap ? *cap : 512;
		char *nb;

		while (ncap < *len + n)
			ncap *= 2;
		nb = realloc(*b, ncap);
		if (!nb)
			die("out of memory");
		*b = nb;
		*cap = ncap;
	}
	memcpy(*b + *len, data, n);
	*len += (uint32_t)n;
	return 0;
}

/* Writes n bytes to the socket (or TLS); returns bytes taken, or -1 on a broken connection. */
static ssize_t
raw_write(struct conn *c, const char *data, size_t n)
{
	if (c->tls_on) {
		int r;

		ERR_clear_error();
		r = SSL_write(c->ssl, data, (int)n);
		if (r > 0)
			return r;
		r = SSL_get_error(c->ssl, r);
		return (r == SSL_ERROR_WANT_WRITE || r == SSL_ERROR_WANT_READ) ? 0 : -1;
	}
	for (;;) {
		ssize_t w = send(c->fd, data, n, MSG_NOSIGNAL);

		if (w >= 0)
			return w;
		if (errno == EINTR)
			continue;
		return (errno == EAGAIN) ? 0 : -1;
	}
}

static void
conn_flush(struct conn *c)
{
	while (c->wlen > 0) {
		ssize_t w = raw_write(c, c->wbuf, c->wlen);

		if (w < 0) {
			conn_close(c, 1);
			return;
		}
		if (w == 0)
			break;
		memmove(c->wbuf, c->wbuf + w, c->wlen - (size_t)w);
		c->wlen -= (uint32_t)w;
	}
	conn_arm(c, c->wlen > 0);
}

static void
conn_send(struct conn *c, const char *data, size_t n)
{
	if (c->fd < 0)
		return;
	if (c->wlen == 0 && c->state != ST_TLS_HS) {
		ssize_t w = raw_write(c, data, n);

		if (w < 0) {
			conn_close(c, 1);
			return;
		}
		data += w;
		n -= (size_t)w;
		if (n == 0)
			return;
	}
	if (buf_append(&c->wbuf, &c->wlen, &c->wcap, data, n) < 0) {
		conn_close(c, 1);
		return;
	}
	if (c->state != ST_TLS_HS)
		conn_arm(c, 1);
}

static void conn_sendf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
conn_sendf(struct conn *c, const char *fmt, ...)
{
	char b[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0 && n < (int)sizeof(b))
		conn_send(c, b, (size_t)n);
}

static void
send_header(struct conn *c)
{
	c->stream_open = 0;
	conn_sendf(c,
		   "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
		   "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
		   opt.domain);
}

static void
b64(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);

		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = 0;
}

/* RFC 4616: PLAIN's message is authzid NUL authcid NUL passwd; authzid left empty. */
static void
send_auth(struct conn *c)
{
	unsigned char raw[512];
	char enc[700];
	int n;

	n = snprintf((char *)raw + 1, sizeof(raw) - 1, "%s%u", opt.prefix, c->user);
	raw[0] = 0;
	raw[n + 1] = 0;
	n = n + 2 + snprintf((char *)raw + n + 2, sizeof(raw) - (size_t)n - 2, "%s", opt.password);
	b64(raw, (size_t)n, enc);
	conn_sendf(c, "<auth xmlns='" NS_SASL "' mechanism='PLAIN'>%s</auth>", enc);
	c->state = ST_AUTH;
}

static void
conn_start_tls(struct conn *c)
{
	c->ssl = SSL_new(ssl_ctx);
	if (!c->ssl)
		die("SSL_new failed");
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, opt.domain);
	c->state = ST_TLS_HS;
}

static void
tls_handshake(struct conn *c)
{
	int r;

	ERR_clear_error();
	r = SSL_connect(c->ssl);
	if (r == 1) {
		c->tls_on = 1;
		c->state = ST_FEAT1;
		send_header(c);
		conn_flush(c);
		return;
	}
	r = SSL_get_error(c->ssl, r);
	if (r == SSL_ERROR_WANT_READ)
		conn_arm(c, 0);
	else if (r == SSL_ERROR_WANT_WRITE)
		conn_arm(c, 1);
	else
		conn_close(c, 1);
}

static int
conn_open(uint32_t user)
{
	struct conn *c = &conns[user];
	struct epoll_event ev;
	int fd, one = 1;

	memset(c, 0, sizeof(*c));
	c->user = user;
	c->fd = -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		st.connect_fail++;
		c->state = ST_FAILED;
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (opt.nsrc > 0) {
#ifdef IP_BIND_ADDRESS_NO_PORT
		/* Let connect() pick the port per 4-tuple, so each source address gives a full
		 * ephemeral range. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
		if (bind(fd, (struct sockaddr *)&opt.src[user % (uint32_t)opt.nsrc],
			 sizeof(opt.src[0])) < 0) {
			close(fd);
			st.connect_fail++;
			c->state = ST_FAILED;
			return -1;
		}
	}
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0 && errno != EINPROGRESS) {
		close(fd);
		st.connect_fail++;
		c->state = ST_FAILED;
		return -1;
	}
	c->fd = fd;
	c->state = ST_CONNECTING;
	c->t_start = now_ns();
	c->want_out = 1;
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.u32 = user;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	st.in_flight++;
	return 0;
}

/* ---- a minimal XML scanner for what servers send ---- */

/* Copies attribute `name` of the start tag [p, end) into out; returns its length or -1. */
static int
attr(const char *p, const char *end, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);
	const char *q = p;

	while (q < end && *q != '>') {
		if ((q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\n') && q + nl + 2 < end &&
		    memcmp(q, name, nl) == 0 && q[nl] == '=' &&
		    (q[nl + 1] == '\'' || q[nl + 1] == '"')) {
			char quote = q[nl + 1];
			const char *v = q + nl + 2, *ve = memchr(v, quote, (size_t)(end - v));
			size_t n;

			if (!ve)
				return -1;
			n = (size_t)(ve - v);
			if (n >= outsz)
				n = outsz - 1;
			memcpy(out, v, n);
			out[n] = 0;
			return (int)n;
		}
		if (*q == '\'' || *q == '"') {
			const char *qe = memchr(q + 1, *q, (size_t)(end - q - 1));

			if (!qe)
				return -1;
			q = qe;
		}
		q++;
	}
	return -1;
}

static int
has_prefix(const char *p, const char *end, const char *s)
{
	size_t n = strlen(s);

	return (size_t)(end - p) >= n && memcmp(p, s, n) == 0 &&
	       (p + n == end || p[n] == ' ' || p[n] == '>' || p[n] == '/' || p[n] == '\t' ||
		p[n] == '\n' || p[n] == '\r');
}

static const char *
find(const char *p, const char *end, const char *s)
{
	size_t n = strlen(s);

	while (p + n <= end) {
		const char *q = memchr(p, s[0], (size_t)(end - p) - n + 1);

		if (!q)
			return NULL;
		if (memcmp(q, s, n) == 0)
			return q;
		p = q + 1;
	}
	return NULL;
}

static int
type_is(const char *p, const char *end, const char *type)
{
	char t[32];
	const char *gt = memchr(p, '>', (size_t)(end - p));

	return attr(p + 1, gt ? gt : end, "type", t, sizeof(t)) >= 0 && strcmp(t, type) == 0;
}

static void on_online(struct conn *c);
static void on_message(struct conn *c, const char *p, const char *end);
static void on_presence(struct conn *c, const char *p, const char *end);

static void
on_login_done(struct conn *c)
{
	uint64_t t = now_ns();

	hist_add(&st.login_lat, t - c->t_start);
	st.logins++;
	st.in_flight--;
	if (opt.close_after_login) {
		conn_send(c, "</stream:stream>", 16);
		c->state = ST_CLOSED; /* in_flight is counted out above, not again */
		conn_close(c, 0);
		return;
	}
	c->state = ST_ONLINE;
	if (opt.sm && c->sm_offered) /* XEP-0198 section 3, before any stanza we want counted */
		conn_send(c, "<enable xmlns='urn:xmpp:sm:3'/>", 31);
	conn_send(c, "<presence/>", 11);
	on_online(c);
}

static void
on_iq(struct conn *c, const char *p, const char *end)
{
	char id[128], from[512];

	if (type_is(p, end, "get") || type_is(p, end, "set")) {
		const char *gt = memchr(p, '>', (size_t)(end - p));

		/* RFC 6120 §8.2.3: every get/set needs an answer; pings are the usual ones. */
		if (attr(p + 1, gt, "id", id, sizeof(id)) < 0)
			return;
		if (attr(p + 1, gt, "from", from, sizeof(from)) >= 0)
			conn_sendf(c, "<iq type='result' id='%s' to='%s'/>", id, from);
		else
			conn_sendf(c, "<iq type='result' id='%s'/>", id);
		return;
	}
	switch (c->state) {
	case ST_REG:
		if (type_is(p, end, "result"))
			st.registered++;
		else if (find(p, end, "conflict"))
			st.reg_exists++;
		else
			st.reg_fail++;
		st.in_flight--;
		conn_send(c, "</stream:stream>", 16);
		c->state = ST_CLOSED;
		conn_close(c, 0);
		return;
	case ST_BIND:
		if (!type_is(p, end, "result")) {
			st.login_fail++;
			conn_close(c, 1);
			return;
		}
		if (c->need_session) {
			conn_sendf(c, "<iq type='set' id='s'><session "
				      "xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
			c->state = ST_SESSION;
			return;
		}
		on_login_done(c);
		return;
	case ST_SESSION:
		on_login_done(c);
		return;
	case ST_ONLINE:
		st.iq_results++;
		on_presence(c, p, end); /* muc owner configuration answers */
		return;
	default:
		return;
	}
}

static void
on_features(struct conn *c, const char *p, const char *end)
{
	if (c->state == ST_FEAT1) {
		if (opt.tls && !c->tls_on) {
			conn_send(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", 51);
			c->state = ST_STARTTLS;
		} else if (opt.sc == SC_REGISTER) {
			/* XEP-0077 §3.1; servers answer a known username with <conflict/>. */
			conn_sendf(c,
				   "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>"
				   "<username>%s%u</username><password>%s</password></query></iq>",
				   opt.prefix, c->user, opt.password);
			c->state = ST_REG;
		} else {
			if (!find(p, end, "PLAIN")) {
				fprintf(stderr, "xmpp-load: server offers no PLAIN (need plaintext "
						"auth allowed)\n");
				st.login_fail++;
				conn_close(c, 1);
				return;
			}
			send_auth(c);
		}
	} else if (c->state == ST_FEAT2) {
		const char *s = find(p, end, "xmpp-session");

		/* RFC 6121 dropped the session request; only do it when not marked optional. */
		c->need_session = s && !find(s, end, "optional");
		c->sm_offered = find(p, end, "urn:xmpp:sm:3") != NULL;
		conn_sendf(c,
			   "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
			   "<resource>r</resource></bind></iq>");
		c->state = ST_BIND;
	}
}

/* One complete top-level element [p, end) of the stream. */
static void
on_element(struct conn *c, const char *p, const char *end)
{
	if (c->sm_on && (has_prefix(p, end, "<message") || has_prefix(p, end, "<presence") ||
			 has_prefix(p, end, "<iq")))
		c->sm_h++; /* counted before it is handled: an answer to <r/> covers it */
	if (has_prefix(p, end, "<message")) {
		on_message(c, p, end);
	} else if (has_prefix(p, end, "<presence")) {
		on_presence(c, p, end);
	} else if (has_prefix(p, end, "<iq")) {
		on_iq(c, p, end);
	} else if (has_prefix(p, end, "<stream:features")) {
		on_features(c, p, end);
	} else if (has_prefix(p, end, "<enabled")) {
		c->sm_on = 1;
		c->sm_h = 0;
	} else if (has_prefix(p, end, "<r")) {
		/* XEP-0198 section 4: everything received so far is handled. */
		conn_sendf(c, "<a xmlns='urn:xmpp:sm:3' h='%u'/>", c->sm_h);
	} else if (has_prefix(p, end, "<success")) {
		if (c->state == ST_AUTH) {
			c->state = ST_FEAT2;
			send_header(c); /* RFC 6120 §6.4.6: restart the stream */
		}
	} else if (has_prefix(p, end, "<failure")) {
		st.login_fail++;
		conn_close(c, 1);
	} else if (has_prefix(p, end, "<proceed")) {
		c->stream_open = 0;
		conn_start_tls(c);
		tls_handshake(c);
	} else if (has_prefix(p, end, "<stream:error")) {
		st.stream_errors++;
		if (st.stream_errors <= 3)
			fprintf(stderr, "xmpp-load: %s%u: %.*s\n", opt.prefix, c->user,
				(int)(end - p > 300 ? 300 : end - p), p);
		conn_close(c, 1);
	}
}

/*
 * Scans data for complete top-level elements and hands each to on_element; returns the
 * number of bytes consumed (everything before the first incomplete element or tag).
 * Comments, CDATA and DTDs do not occur in what servers send to clients here.
 */
static size_t
scan(struct conn *c, const char *buf, size_t len)
{
	size_t i = 0, consumed = 0;
	long elem = -1;
	int depth = c->stream_open;

	while (i < len && c->fd >= 0) {
		const char *lt = memchr(buf + i, '<', len - i), *k;
		size_t j;
		char quote = 0;

		if (!lt) {
			if (elem < 0)
				consumed = len;
			break;
		}
		j = (size_t)(lt - buf);
		if (elem < 0)
			consumed = j;
		if (j + 1 >= len)
			break;
		for (k = lt + 1; k < buf + len; k++) {
			if (quote) {
				if (*k == quote)
					quote = 0;
			} else if (*k == '\'' || *k == '"') {
				quote = *k;
			} else if (*k == '>') {
				break;
			}
		}
		if (k >= buf + len)
			break;
		i = (size_t)(k - buf) + 1;
		if (lt[1] == '?' || lt[1] == '!') {
			if (elem < 0)
				consumed = i;
			continue;
		}
		if (lt[1] == '/') {
			depth--;
			if (depth == 0) {
				/* </stream:stream>: the server closed the stream. */
				conn_close(c, c->state != ST_CLOSED);
				return len;
			}
			if (depth == 1 && elem >= 0) {
				on_element(c, buf + elem, buf + i);
				elem = -1;
				consumed = i;
				if (c->ssl && !c->tls_on)
					return consumed; /* the rest is TLS */
				depth = c->stream_open;	 /* 0 after a stream restart */
			}
			continue;
		}
		if (depth == 0) {
			if (has_prefix(lt, buf + len, "<stream:stream")) {
				c->stream_open = 1;
				depth = 1;
				consumed = i;
			}
			continue;
		}
		if (depth == 1)
			elem = (long)j;
		if (k[-1] == '/') {
			if (depth == 1) {
				on_element(c, buf + elem, buf + i);
				elem = -1;
				consumed = i;
				if (c->ssl && !c->tls_on)
					return consumed; /* the rest is TLS */
				depth = c->stream_open;	 /* 0 after a stream restart */
			}
		} else {
			depth++;
		}
	}
	return consumed;
}

static void
conn_input(struct conn *c, const char *data, size_t n)
{
	size_t used;

	if (c->plen == 0) {
		used = scan(c, data, n);
		if (c->fd >= 0 && used < n &&
		    buf_append(&c->pend, &c->plen, &c->pcap, data + used, n - used) < 0)
			conn_close(c, 1);
		return;
	}
	if (buf_append(&c->pend, &c->plen, &c->pcap, data, n) < 0) {
		conn_close(c, 1);
		return;
	}
	used = scan(c, c->pend, c->plen);
	if (c->fd < 0)
		return;
	memmove(c->pend, c->pend + used, c->plen - used);
	c->plen -= (uint32_t)used;
	if (c->plen == 0 && c->pcap > 4096) {
		free(c->pend);
		c->pend = NULL;
		c->pcap = 0;
	}
}

static void
conn_event(struct conn *c, uint32_t events)
{
	if (c->state == ST_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err) {
			st.connect_fail++;
			conn_close(c, 1);
			return;
		}
		c->state = ST_FEAT1;
		send_header(c);
		if (c->fd >= 0 && c->wlen == 0)
			conn_arm(c, 0);
		return;
	}
	if (c->state == ST_TLS_HS) {
		tls_handshake(c);
		return;
	}
	if ((events & EPOLLOUT) && c->wlen)
		conn_flush(c);
	if (c->fd < 0 || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (;;) {
		ssize_t r;

		if (c->tls_on) {
			int e;

			ERR_clear_error();
			r = SSL_read(c->ssl, rbuf, sizeof(rbuf));
			if (r <= 0) {
				e = SSL_get_error(c->ssl, (int)r);
				if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
					return;
				conn_close(c, c->state != ST_CLOSED);
				return;
			}
		} else {
			r = recv(c->fd, rbuf, sizeof(rbuf), 0);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				return;
			if (r <= 0) {
				conn_close(c, c->state != ST_CLOSED);
				return;
			}
		}
		conn_input(c, rbuf, (size_t)r);
		if (c->fd < 0)
			return;
		/* OpenSSL may hold decrypted bytes epoll does not know about: keep reading. */
		if (!c->tls_on && r < (ssize_t)sizeof(rbuf))
			return;
	}
}

/* ---- scenario state ---- */

static uint32_t *online; /* users whose session is up, for picking random peers */
static uint32_t n_online;
static int muc_mode;

static void
on_online(struct conn *c)
{
	online[n_online++] = c->user;
	if (muc_mode) {
		uint32_t room = c->user / (uint32_t)opt.room_size;

		/* XEP-0045 §7.2.1: enter by presence to room@service/nick with the muc x. */
		conn_sendf(c,
			   "<presence to='room%u@conference.%s/%s%u'>"
			   "<x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x>"
			   "</presence>",
			   room, opt.domain, opt.prefix, c->user);
		c->muc_state = 1;
	}
}

static void
on_presence(struct conn *c, const char *p, const char *end)
{
	if (c->muc_state == 1 && (find(p, end, "code='110'") || find(p, end, "code=\"110\""))) {
		/* XEP-0045 §10.1.2: 201 means we created a locked room; accept the default
		 * configuration (instant room) to unlock it. */
		if (find(p, end, "code='201'") || find(p, end, "code=\"201\"")) {
			conn_sendf(c,
				   "<iq type='set' id='cfg' to='room%u@conference.%s'>"
				   "<query xmlns='http://jabber.org/protocol/muc#owner'>"
				   "<x xmlns='jabber:x:data' type='submit'/></query></iq>",
				   c->user / (uint32_t)opt.room_size, opt.domain);
			c->muc_state = 2;
			return;
		}
		c->muc_state = 3;
		st.muc_joined++;
	} else if (c->muc_state == 2 && has_prefix(p, end, "<iq")) {
		c->muc_state = 3;
		st.muc_joined++;
	}
}

/* Body: "B <step> <sender> <seq> <t_ns>". */
static void
on_message(struct conn *c, const char *p, const char *end)
{
	(void)c;
	const char *b = find(p, end, "<body>");
	unsigned long long step, sender, seq, t;

	if (type_is(p, end, "error")) {
		st.msg_errors++;
		return;
	}
	if (!b)
		return;
	if (sscanf(b + 6, "B %llu %llu %llu %llu", &step, &sender, &seq, &t) != 4)
		return;
	st.last_rx_ns = now_ns();
	if (step != st.step) {
		st.late++;
		return;
	}
	st.delivered++;
	hist_add(&st.lat, st.last_rx_ns > t ? st.last_rx_ns - t : 0);
}

static void
poll_once(int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(ep, evs, 512, timeout_ms);

	for (int i = 0; i < n; i++) {
		struct conn *c = &conns[evs[i].data.u32];

		if (c->fd >= 0)
			conn_event(c, evs[i].events);
	}
}

/* Opens users [first, first+count) with at most opt.concurrency in flight; returns seconds. */
static double
login_range(uint32_t first, uint32_t count)
{
	uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(opt.login_timeout * 1e9);
	uint32_t next = first, last = first + count;

	while (!stop_flag) {
		while (next < last && st.in_flight < opt.concurrency) {
			if (conns[next].state == ST_FREE) /* muc opens room creators first */
				conn_open(next);
			next++;
		}
		if (next >= last && st.in_flight <= 0)
			break;
		if (now_ns() > deadline) {
			fprintf(stderr, "xmpp-load: login timeout with %d in flight\n",
				st.in_flight);
			break;
		}
		poll_once(10);
	}
	return (double)(now_ns() - t0) / 1e9;
}

/* Runs the loop for s seconds, or until done() says so. */
static void
run_for(double s, int (*done)(void))
{
	uint64_t deadline = now_ns() + (uint64_t)(s * 1e9);

	while (!stop_flag && now_ns() < deadline && !(done && done()))
		poll_once(10);
}

static int
all_joined(void)
{
	return st.muc_joined >= n_online;
}

/* ---- chat / muc steps ---- */

static uint64_t step_sent, step_want;

static int
all_delivered(void)
{
	return st.delivered >= step_want;
}

struct step_result {
	double rate, sent_rate, delivered_rate, p50, p99, max, server_cpu, self_cpu;
	uint64_t sent, delivered, expected, lost;
};

static int
send_one(uint32_t sender, int groupchat, uint64_t seq)
{
	struct conn *c = &conns[sender];
	char b[512];
	int n;

	if (c->fd < 0 || c->state != ST_ONLINE)
		return -1;
	if (groupchat) {
		n = snprintf(b, sizeof(b),
			     "<message type='groupchat' to='room%u@conference.%s'>"
			     "<body>B %u %u %llu %llu</body></message>",
			     sender / (uint32_t)opt.room_size, opt.domain, st.step, sender,
			     (unsigned long long)seq, (unsigned long long)now_ns());
	} else {
		uint32_t to;

		do
			to = online[rnd() % n_online];
		while (to == sender && n_online > 1);
		n = snprintf(b, sizeof(b),
			     "<message type='chat' to='%s%u@%s'><body>B %u %u %llu %llu</body>"
			     "</message>",
			     opt.prefix, to, opt.domain, st.step, sender, (unsigned long long)seq,
			     (unsigned long long)now_ns());
	}
	if (c->sm_on) /* like a mobile client: an ack requested for every message */
		n += snprintf(b + n, sizeof(b) - (size_t)n, "<r xmlns='urn:xmpp:sm:3'/>");
	conn_send(c, b, (size_t)n);
	return 0;
}

static struct step_result
run_step(double rate, int groupchat, uint64_t fanout)
{
	struct step_result r = {.rate = rate};
	uint64_t t0, t_end, t_last_send, now;
	double cpu0 = proc_cpu_s(opt.server_pid), self0 = self_cpu_s();

	st.step++;
	st.delivered = 0;
	st.late = 0;
	hist_init(&st.lat);
	step_sent = 0;
	step_want = UINT64_MAX;
	t0 = now_ns();
	t_end = t0 + (uint64_t)(opt.duration * 1e9);
	while (!stop_flag && (now = now_ns()) < t_end) {
		uint64_t due = (uint64_t)((double)(now - t0) * rate / 1e9);
		int budget = 20000; /* stay responsive to input when behind */

		while (step_sent < due && budget-- > 0) {
			if (send_one(online[rnd() % n_online], groupchat, step_sent) == 0)
				step_sent++;
			else if (n_online == 0)
				break;
		}
		poll_once(step_sent < due ? 0 : 1);
	}
	t_last_send = now_ns();
	step_want = step_sent * fanout;
	run_for(opt.drain, all_delivered);
	r.sent = step_sent;
	r.expected = step_want;
	r.delivered = st.delivered;
	r.lost = r.expected > r.delivered ? r.expected - r.delivered : 0;
	r.sent_rate = (double)step_sent / ((double)(t_last_send - t0) / 1e9);
	r.delivered_rate =
	    (double)st.delivered /
	    ((double)((st.last_rx_ns > t0 ? st.last_rx_ns : t_last_send) - t0) / 1e9);
	r.p50 = hist_ms(&st.lat, 0.50);
	r.p99 = hist_ms(&st.lat, 0.99);
	r.max = (double)st.lat.max_ns / 1e6;
	if (cpu0 >= 0)
		r.server_cpu =
		    (proc_cpu_s(opt.server_pid) - cpu0) / ((double)(now_ns() - t0) / 1e9);
	r.self_cpu = (self_cpu_s() - self0) / ((double)(now_ns() - t0) / 1e9);
	return r;
}

static void
step_json(const char *scenario, const struct step_result *r)
{
	json_begin(scenario);
	json_num("offered", r->rate);
	json_num("sent", (double)r->sent);
	json_num("sent_rate", r->sent_rate);
	json_num("expected", (double)r->expected);
	json_num("delivered", (double)r->delivered);
	json_num("lost", (double)r->lost);
	json_num("delivered_rate", r->delivered_rate);
	json_num("p50_ms", r->p50);
	json_num("p99_ms", r->p99);
	json_num("max_ms", r->max);
	if (opt.server_pid > 0)
		json_num("server_cpu", r->server_cpu);
	json_num("loadgen_cpu", r->self_cpu);
}

static int
step_good(const struct step_result *r)
{
	/* A step counts only if the generator really offered the rate (within 5%). */
	return r->lost == 0 && r->p99 < P99_LIMIT_MS && r->sent_rate >= 0.95 * r->rate;
}

/* Doubles the rate while steps are good, then bisects; prints the best good step. */
static void
ramp(const char *scenario, int groupchat, uint64_t fanout, double login_s)
{
	struct step_result best = {0}, r;
	double rate = opt.rate, lo = 0, hi = 0;
	int have_best = 0;

	if (opt.ramp) {
		/* Warm up (JITs, caches, first-use allocations) at a low rate; not reported. */
		double d = opt.duration;

		opt.duration = 2;
		run_step(rate < 500 ? rate : 500, groupchat, fanout);
		opt.duration = d;
		run_for(1, NULL);
	}

	for (int i = 0; i < opt.max_steps && !stop_flag; i++) {
		uint64_t errs0 = st.msg_errors;
		int good;

		r = run_step(rate, groupchat, fanout);
		good = step_good(&r) && st.msg_errors == errs0;
		if (!good && opt.ramp) {
			/* One bad step can be a hiccup (a checkpoint, a GC): confirm it once. */
			step_json(scenario, &r);
			json_num("step", i + 1);
			json_num("good", 0);
			json_num("retry", 1);
			json_end(stderr);
			run_for(opt.drain, NULL);
			errs0 = st.msg_errors;
			r = run_step(rate, groupchat, fanout);
			good = step_good(&r) && st.msg_errors == errs0;
		}
		step_json(scenario, &r);
		json_num("step", i + 1);
		json_num("good", good);
		json_end(stderr);
		if (good) {
			best = r;
			have_best = 1;
			lo = rate;
		} else {
			hi = rate;
			/* Let the server work off what it queued before the next step. */
			run_for(opt.drain, NULL);
		}
		if (!opt.ramp)
			break;
		if (hi == 0)
			rate *= 2;
		else if (lo == 0)
			rate /= 2;
		else if (hi / lo <= 1.1)
			break;
		else
			rate = (lo + hi) / 2;
		if (rate < 10)
			break;
	}
	if (!opt.ramp || !have_best)
		best = r;
	step_json(scenario, &best);
	json_num("good", have_best && (opt.ramp || step_good(&best)));
	json_num("online", n_online);
	json_num("login_s", login_s);
	json_num("msg_errors", (double)st.msg_errors);
	json_num("stream_errors", (double)st.stream_errors);
	json_end(stdout);
}

/* ---- scenarios ---- */

static void
sc_login(void)
{
	double s;

	opt.close_after_login = opt.sc != SC_IDLE;
	s = login_range(0, (uint32_t)opt.users);
	json_begin("login");
	json_num("logins", (double)st.logins);
	json_num("failed", (double)(st.login_fail + st.connect_fail + st.stream_errors));
	json_num("seconds", s);
	json_num("logins_per_s", (double)st.logins / s);
	json_num("concurrency", opt.concurrency);
	json_num("login_p50_ms", hist_ms(&st.login_lat, 0.5));
	json_num("login_p99_ms", hist_ms(&st.login_lat, 0.99));
	json_end(stdout);
}

static void
sc_register(void)
{
	double s = login_range(0, (uint32_t)opt.users);

	json_begin("register");
	json_num("registered", (double)st.registered);
	json_num("existed", (double)st.reg_exists);
	json_num("failed", (double)(st.reg_fail + st.connect_fail + st.stream_errors));
	json_num("per_s", (double)(st.registered + st.reg_exists) / s);
	json_end(stdout);
}

static void
sc_idle(void)
{
	long rss0 = proc_rss_kib(opt.server_pid), rss1;
	double s = login_range(0, (uint32_t)opt.users);

	run_for(opt.settle, NULL);
	rss1 = proc_rss_kib(opt.server_pid);
	json_begin("idle");
	json_num("online", n_online);
	json_num("failed", (double)(st.login_fail + st.connect_fail + st.stream_errors));
	json_num("logins_per_s", (double)st.logins / s);
	json_num("login_p99_ms", hist_ms(&st.login_lat, 0.99));
	if (rss0 >= 0 && rss1 >= 0 && n_online > 0) {
		json_num("rss_before_kib", (double)rss0);
		json_num("rss_after_kib", (double)rss1);
		json_num("kib_per_conn", (double)(rss1 - rss0) / n_online);
	}
	json_end(stdout);
	if (opt.duration > 0)
		run_for(opt.duration, NULL);
	if (st.closed > 0)
		fprintf(stderr, "xmpp-load: %llu connections closed while idle\n",
			(unsigned long long)st.closed);
}

static void
sc_chat(void)
{
	double s = login_range(0, (uint32_t)opt.users);

	if (n_online < 2)
		die("only %u users online", n_online);
	run_for(opt.settle, NULL); /* let login work (offline flush, roster) finish first */
	ramp("chat", 0, 1, s);
}

static void
sc_muc(void)
{
	double s;

	muc_mode = 1;
	/* The first occupant creates each room (and unlocks it) before the others enter. */
	opt.concurrency = opt.concurrency < 50 ? opt.concurrency : 50;
	for (uint32_t u = 0; u < (uint32_t)opt.users; u += (uint32_t)opt.room_size)
		conn_open(u);
	while (!stop_flag && st.in_flight > 0)
		poll_once(10);
	run_for(10, all_joined);
	s = login_range(0, (uint32_t)opt.users); /* reopens nothing twice: see below */
	run_for(30, all_joined);
	if (st.muc_joined < n_online)
		fprintf(stderr, "xmpp-load: only %llu of %u joined their rooms\n",
			(unsigned long long)st.muc_joined, n_online);
	ramp("muc", 1, (uint64_t)opt.room_size, s);
}

static int
offline_done(void)
{
	return st.delivered >= step_want;
}

static void
sc_offline(void)
{
	uint32_t half = (uint32_t)opt.users / 2, nsend;
	uint64_t t0, sent = 0;
	double s;

	s = login_range(0, half);
	nsend = n_online;
	st.step++;
	/* Every online user sends opt.backlog messages to offline users (the upper half). */
	for (int k = 0; k < opt.backlog; k++) {
		for (uint32_t i = 0; i < nsend; i++) {
			struct conn *c = &conns[online[i]];
			char b[512];
			int n;

			n = snprintf(
			    b, sizeof(b),
			    "<message type='chat' to='%s%u@%s'><body>B %u %u %llu %llu"
			    "</body></message>",
			    opt.prefix, half + (uint32_t)(rnd() % ((uint32_t)opt.users - half)),
			    opt.domain, st.step, online[i], (unsigned long long)sent, 0ULL);
			if (c->fd >= 0) {
				conn_send(c, b, (size_t)n);
				sent++;
			}
		}
		poll_once(0);
	}
	/* Stored messages are only counted once the server had time to take them. */
	run_for(opt.settle, NULL);
	st.delivered = 0;
	hist_init(&st.lat);
	step_want = sent;
	t0 = now_ns();
	login_range(half, (uint32_t)opt.users - half);
	run_for(opt.login_timeout, offline_done);
	json_begin("offline");
	json_num("stored", (double)sent);
	json_num("delivered", (double)st.delivered);
	json_num("lost", (double)(sent > st.delivered ? sent - st.delivered : 0));
	json_num("msg_errors", (double)st.msg_errors);
	json_num("flush_s", (double)(st.last_rx_ns - t0) / 1e9);
	json_num("flush_per_s", (double)st.delivered / ((double)(st.last_rx_ns - t0) / 1e9));
	json_num("login_s", s);
	json_end(stdout);
}

/* ---- main ---- */

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void
usage(void)
{
	fprintf(
	    stderr,
	    "usage: xmpp-load [options]\n"
	    "  --host A --port P --domain D     server (127.0.0.1:5222, localhost)\n"
	    "  --users N --prefix P --password W  accounts <P><i>@<D>, i in [0, N)\n"
	    "  --scenario register|login|idle|chat|offline|muc\n"
	    "  --rate R --duration S --ramp     offered msg/s, step length; --ramp doubles R\n"
	    "                                   then bisects to the best rate with p99 < 50 ms\n"
	    "                                   and nothing lost\n"
	    "  --drain S --settle S --max-steps N --backlog N --room-size N --concurrency N\n"
	    "  --src-addrs A,B,...              local source addresses (past 64k ports)\n"
	    "  --server-pid PID --server NAME --label L   for RSS/CPU readings and the JSON\n"
	    "  --tls                            STARTTLS before authenticating\n"
	    "  --sm                             XEP-0198 when offered: acks asked for every message\n"
	    "                                   sent and given for every <r/>, as mobile clients do\n");
	exit(2);
}

static void
parse_src(char *s)
{
	for (char *tok = strtok(s, ","); tok && opt.nsrc < MAX_SRC; tok = strtok(NULL, ",")) {
		struct sockaddr_in *a = &opt.src[opt.nsrc++];

		a->sin_family = AF_INET;
		if (inet_pton(AF_INET, tok, &a->sin_addr) != 1)
			die("bad source address '%s'", tok);
	}
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"host", 1, 0, 'h'},	  {"port", 1, 0, 'p'},	    {"domain", 1, 0, 'd'},
	    {"users", 1, 0, 'n'},	  {"prefix", 1, 0, 'P'},    {"password", 1, 0, 'w'},
	    {"scenario", 1, 0, 's'},	  {"rate", 1, 0, 'r'},	    {"duration", 1, 0, 't'},
	    {"ramp", 0, 0, 'R'},	  {"drain", 1, 0, 'D'},	    {"settle", 1, 0, 'S'},
	    {"max-steps", 1, 0, 'm'},	  {"backlog", 1, 0, 'b'},   {"room-size", 1, 0, 'z'},
	    {"concurrency", 1, 0, 'c'},	  {"src-addrs", 1, 0, 'a'}, {"server-pid", 1, 0, 'i'},
	    {"server", 1, 0, 'N'},	  {"label", 1, 0, 'L'},	    {"tls", 0, 0, 'T'},
	    {"login-timeout", 1, 0, 'o'}, {"sm", 0, 0, 'M'},	    {"help", 0, 0, '?'},
	    {0, 0, 0, 0},
	};
	struct rlimit rl;
	const char *sc = "chat";
	int ch;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'h':
			opt.host = optarg;
			break;
		case 'p':
			opt.port = atoi(optarg);
			break;
		case 'd':
			opt.domain = optarg;
			break;
		case 'n':
			opt.users = atoi(optarg);
			break;
		case 'P':
			opt.prefix = optarg;
			break;
		case 'w':
			opt.password = optarg;
			break;
		case 's':
			sc = optarg;
			break;
		case 'r':
			opt.rate = atof(optarg);
			break;
		case 't':
			opt.duration = atof(optarg);
			break;
		case 'R':
			opt.ramp = 1;
			break;
		case 'D':
			opt.drain = atof(optarg);
			break;
		case 'S':
			opt.settle = atof(optarg);
			break;
		case 'm':
			opt.max_steps = atoi(optarg);
			break;
		case 'b':
			opt.backlog = atoi(optarg);
			break;
		case 'z':
			opt.room_size = atoi(optarg);
			break;
		case 'c':
			opt.concurrency = atoi(optarg);
			break;
		case 'a':
			parse_src(optarg);
			break;
		case 'i':
			opt.server_pid = (pid_t)atoi(optarg);
			break;
		case 'N':
			opt.server_name = optarg;
			break;
		case 'L':
			opt.label = optarg;
			break;
		case 'M':
			opt.sm = 1;
			break;
		case 'T':
			opt.tls = 1;
			break;
		case 'o':
			opt.login_timeout = atof(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || opt.users < 1 || opt.concurrency < 1 || opt.room_size < 1 ||
	    opt.rate <= 0)
		usage();
	if (!strcmp(sc, "login"))
		opt.sc = SC_LOGIN;
	else if (!strcmp(sc, "idle"))
		opt.sc = SC_IDLE;
	else if (!strcmp(sc, "chat"))
		opt.sc = SC_CHAT;
	else if (!strcmp(sc, "offline"))
		opt.sc = SC_OFFLINE;
	else if (!strcmp(sc, "muc"))
		opt.sc = SC_MUC;
	else if (!strcmp(sc, "register"))
		opt.sc = SC_REGISTER;
	else
		usage();

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)opt.port);
	if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1)
		die("bad host '%s' (an IPv4 address)", opt.host);
	if (opt.tls) {
		ssl_ctx = SSL_CTX_new(TLS_client_method());
		if (!ssl_ctx)
			die("SSL_CTX_new failed");
		SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL); /* loopback benchmark */
		SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
					      SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
					      SSL_MODE_RELEASE_BUFFERS);
	}
	rng ^= (uint64_t)getpid() * 0x2545F4914F6CDD1DULL;
	/* Step numbers unique to this run: messages a previous run left stored offline or in
	 * flight are counted as late, never as delivered. */
	st.step = (uint32_t)(rnd() % 1000000) * 1000;
	conns = calloc((size_t)opt.users, sizeof(*conns));
	online = calloc((size_t)opt.users, sizeof(*online));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || !online || ep < 0)
		die("out of memory");
	for (int i = 0; i < opt.users; i++)
		conns[i].fd = -1;
	hist_init(&st.lat);
	hist_init(&st.login_lat);

	switch (opt.sc) {
	case SC_REGISTER:
		sc_register();
		break;
	case SC_LOGIN:
		sc_login();
		break;
	case SC_IDLE:
		sc_idle();
		break;
	case SC_CHAT:
		sc_chat();
		break;
	case SC_OFFLINE:
		sc_offline();
		break;
	case SC_MUC:
		sc_muc();
		break;
	}
	return 0;
}
