/*
 * dns: asynchronous SRV and address lookups with c-ares, one resolver channel per loop,
 * its sockets watched by that loop and its retransmissions driven by one loop timer that
 * is re-armed from ares_timeout() after every call into c-ares.
 *
 * Invariant: a lookup's callback runs exactly once, on the loop that asked, and never inside
 * dns_srv()/dns_addr(): an answer c-ares gives synchronously (/etc/hosts, bad input) or an IP
 * literal is queued and delivered by a 0 ms timer; dns_loop_free() ends what is left with
 * -ECANCELED.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net.h"

/*
 * Per try, c-ares waits DNS_TIMEOUT_MS and doubles it on each retry round, so a silent server
 * fails after 1.5 s + 3 s = 4.5 s with DNS_TRIES 2.
 */
#define DNS_TIMEOUT_MS 1500
#define DNS_TRIES      2
/* The answer comes from the network: cap what is copied out of it (STYLE.md rule 10). */
#define DNS_SRV_MAX  64
#define DNS_ADDR_MAX 32
/* RFC 1035 §2.3.4: 255 octets on the wire, so at most 253 characters plus a final dot. */
#define DNS_NAME_MAX 254
/*
 * One UDP socket carries every query of a loop: a burst of lookups (all the s2s peers at
 * start-up) brings a burst of answers, which must not overflow the socket before the loop reads
 * them, or they cost a retransmission. The kernel caps this at net.core.rmem_max.
 */
#define DNS_RCVBUF (1 << 20)

struct dns_chan;

/* A socket c-ares asked us to watch. */
struct dns_sock {
	struct loop_io io;
	struct dns_chan *chan;
	struct dns_sock *next;
};

enum dns_kind { DNS_KIND_SRV, DNS_KIND_ADDR };

/* One lookup, from the dns_*() call until its callback returned. */
struct dns_req {
	struct dns_chan *chan;
	enum dns_kind kind;
	dns_srv_fn srv_fn;
	dns_addr_fn addr_fn;
	void *arg;
	bool in_call; /* the dns_*() call that started it is still on the stack */
	int status;
	struct dns_srv *recs;
	char (*addrs)[INET6_ADDRSTRLEN];
	size_t n;
	struct dns_req *next; /* on chan->done */
};

/* The resolver state of one loop. */
struct dns_chan {
	struct loop *loop;
	ares_channel ch; /* NULL until the first query that needs the network */
	struct timer timeout;
	struct dns_sock *socks;
	struct dns_req *done, **done_tail; /* finished, waiting for the deliver timer */
	struct timer deliver;
	bool closing;
	struct dns_chan *next;
};

/* Loops are per thread, so their channels are too: no locks. */
static _Thread_local struct dns_chan *dns_chans;

/* "ip:port" in ares_set_servers_ports_csv() form, "" = /etc/resolv.conf; set before loops. */
static char dns_server[INET6_ADDRSTRLEN + 16];

static pthread_once_t dns_once = PTHREAD_ONCE_INIT;
static int dns_lib_status = ARES_ENOTINITIALIZED;

static void
dns_lib_init(void)
{
	dns_lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

int
dns_set_server(const char *server, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 2], bin[sizeof(struct in6_addr)];
	const char *orig = server, *p, *port = NULL;
	unsigned long pnum = 53;
	size_t hlen;
	bool v6;

	if (!server || !*server) {
		dns_server[0] = '\0';
		return 0;
	}
	if (server[0] == '[') {
		p = strchr(server, ']');
		if (!p) {
			snprintf(err, errlen, "%s: missing ']'", server);
			return -1;
		}
		hlen = (size_t)(p - server - 1);
		if (p[1] == ':')
			port = p + 2;
		else if (p[1]) {
			snprintf(err, errlen, "%s: expected ':port' after ']'", server);
			return -1;
		}
		server++;
		v6 = true;
	} else if ((p = strchr(server, ':')) != NULL && !strchr(p + 1, ':')) {
		hlen = (size_t)(p - server); /* exactly one ':': IPv4 with a port */
		port = p + 1;
		v6 = false;
	} else {
		hlen = strlen(server); /* no ':' (IPv4) or several (a bare IPv6 address) */
		v6 = p != NULL;
	}
	if (hlen == 0 || hlen >= sizeof host) {
		snprintf(err, errlen, "%s: not an IP address", orig);
		return -1;
	}
	memcpy(host, server, hlen);
	host[hlen] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1) {
		snprintf(err, errlen, "%s: not an IP%s address", orig, v6 ? "v6" : "v4");
		return -1;
	}
	if (port) {
		char *end;
		errno = 0;
		pnum = strtoul(port, &end, 10);
		if (port[0] < '0' || port[0] > '9' || *end || errno || pnum == 0 || pnum > 65535) {
			snprintf(err, errlen, "%s: bad port '%s'", orig, port);
			return -1;
		}
	}
	snprintf(dns_server, sizeof dns_server, v6 ? "[%s]:%lu" : "%s:%lu", host, pnum);
	return 0;
}

/* ---- delivery ---- */

static void
req_free(struct dns_req *r)
{
	free(r->recs);
	free(r->addrs);
	free(r);
}

/* Runs r's callback with its result (only during the callback are the arrays valid). */
static void
req_deliver(struct dns_req *r)
{
	size_t n = r->status == 0 ? r->n : 0;

	if (r->kind == DNS_KIND_SRV) {
		r->srv_fn(r->arg, r->status, n ? r->recs : NULL, n);
	} else {
		const char *addrs[DNS_ADDR_MAX];
		for (size_t i = 0; i < n; i++)
			addrs[i] = r->addrs[i];
		r->addr_fn(r->arg, r->status, n ? addrs : NULL, n);
	}
	req_free(r);
}

static void
chan_deliver(struct timer *t)
{
	struct dns_chan *c = container_of(t, struct dns_chan, deliver);
	struct dns_req *r = c->done;

	/* Callbacks may start lookups that finish at once: those wait for the next firing. */
	c->done = NULL;
	c->done_tail = &c->done;
	while (r) {
		struct dns_req *next = r->next;
		req_deliver(r);
		r = next;
	}
}

/*
 * r has its result. Delivers it now, unless the call that started r is still running, in
 * which case it waits for the deliver timer; once the loop is being freed it is -ECANCELED.
 */
static void
req_finish(struct dns_req *r, int status)
{
	struct dns_chan *c = r->chan;

	r->status = c->closing ? -ECANCELED : status;
	if (!r->in_call && !c->closing) {
		req_deliver(r);
		return;
	}
	r->next = NULL;
	*c->done_tail = r;
	c->done_tail = &r->next;
	if (!c->closing)
		timer_start(c->loop, &c->deliver, 0);
}

static int
status_errno(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		return -ENOENT;
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED:
		return -ECANCELED;
	default:
		return -EIO;
	}
}

/* ---- the channel and its sockets ---- */

static void
chan_rearm(struct dns_chan *c)
{
	struct timeval tv, *tvp;

	if (!c->ch || c->closing)
		return;
	tvp = ares_timeout(c->ch, NULL, &tv);
	if (!tvp) {
		timer_stop(c->loop, &c->timeout);
		return;
	}
	timer_start(c->loop, &c->timeout,
		    (uint64_t)tvp->tv_sec * 1000 + ((uint64_t)tvp->tv_usec + 999) / 1000);
}

static void
chan_timeout(struct timer *t)
{
	struct dns_chan *c = container_of(t, struct dns_chan, timeout);

	/* No fd: c-ares only checks its queries' deadlines and retransmits or fails them. */
	ares_process_fd(c->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	chan_rearm(c);
}

static void
sock_ready(struct loop_io *io, uint32_t events)
{
	struct dns_sock *s = container_of(io, struct dns_sock, io);
	struct dns_chan *c = s->chan;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	/* An error or hang-up is reported to c-ares as readiness so its read/write sees it. */
	if (events & (LOOP_IN | LOOP_ERR | LOOP_HUP))
		rfd = io->fd;
	if (events & (LOOP_OUT | LOOP_ERR | LOOP_HUP))
		wfd = io->fd;
	/*
	 * This may close the socket, so sock_state() frees s: nothing here touches s again, and
	 * loop_io_del() keeps the rest of this turn's events from reaching it.
	 */
	ares_process_fd(c->ch, rfd, wfd);
	chan_rearm(c);
}

/* c-ares's ARES_OPT_SOCK_STATE_CB: what to watch on fd; (0, 0) before it closes fd. */
static void
sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_chan *c = data;
	uint32_t events = (readable ? LOOP_IN : 0) | (writable ? LOOP_OUT : 0);
	struct dns_sock **pp = &c->socks, *s;
	int rc;

	while ((s = *pp) != NULL && s->io.fd != fd)
		pp = &s->next;
	if (!events) {
		if (s) {
			*pp = s->next;
			loop_io_del(c->loop, &s->io);
			free(s);
		}
		return;
	}
	if (s) {
		rc = loop_io_mod(c->loop, &s->io, events);
	} else {
		s = xcalloc(1, sizeof *s);
		s->io.fd = fd;
		s->io.fn = sock_ready;
		s->chan = c;
		rc = loop_io_add(c->loop, &s->io, events);
		if (rc == 0) {
			s->next = c->socks;
			c->socks = s;
		} else {
			free(s);
		}
	}
	/* The query on fd then times out: the loop timer still runs. */
	if (rc < 0)
		log_warn("dns: cannot watch socket %d: %s", (int)fd, strerror(-rc));
}

/* c-ares's sockets must not leak into anything exec'd. */
static int
sock_configure(ares_socket_t fd, int type, void *data)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
		return -1;
	return 0;
}

/* Returns the calling thread's state for loop, made on first use. */
static struct dns_chan *
chan_get(struct loop *loop)
{
	struct dns_chan *c;

	for (c = dns_chans; c; c = c->next) {
		if (c->loop == loop)
			return c;
	}
	c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->timeout.fn = chan_timeout;
	c->deliver.fn = chan_deliver;
	c->done_tail = &c->done;
	c->next = dns_chans;
	dns_chans = c;
	return c;
}

/* Makes c's c-ares channel if it has none; 0 or an ARES_* status. */
static int
chan_open(struct dns_chan *c)
{
	struct ares_options opt = {0};
	int rc;

	if (c->ch)
		return ARES_SUCCESS;
	pthread_once(&dns_once, dns_lib_init);
	if (dns_lib_status != ARES_SUCCESS)
		return dns_lib_status;
	opt.timeout = DNS_TIMEOUT_MS;
	opt.tries = DNS_TRIES;
	opt.sock_state_cb = sock_state;
	opt.sock_state_cb_data = c;
	/* Files first, then DNS, as "hosts: files dns" in nsswitch.conf. */
	opt.lookups = (char *)"fb";
	/*
	 * No search domains: the names looked up (XMPP domainparts, SRV targets) are fully
	 * qualified (RFC 6120 §3.2.1), and trying resolv.conf's suffixes would only add queries.
	 */
	opt.domains = NULL;
	opt.ndomains = 0;
	opt.socket_receive_buffer_size = DNS_RCVBUF;
	rc = ares_init_options(&c->ch, &opt,
			       ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB |
				   ARES_OPT_LOOKUPS | ARES_OPT_DOMAINS | ARES_OPT_SOCK_RCVBUF);
	if (rc != ARES_SUCCESS) {
		c->ch = NULL;
		return rc;
	}
	ares_set_socket_configure_callback(c->ch, sock_configure, NULL);
	if (dns_server[0]) {
		rc = ares_set_servers_ports_csv(c->ch, dns_server);
		if (rc != ARES_SUCCESS) {
			ares_destroy(c->ch);
			c->ch = NULL;
			return rc;
		}
	}
	return ARES_SUCCESS;
}

static struct dns_req *
req_new(struct loop *loop, enum dns_kind kind, void *arg)
{
	struct dns_req *r = xcalloc(1, sizeof *r);

	r->chan = chan_get(loop);
	r->kind = kind;
	r->arg = arg;
	r->in_call = true;
	return r;
}

static bool
name_ok(const char *name)
{
	size_t n = name ? strnlen(name, DNS_NAME_MAX + 1) : 0;
	return n > 0 && n <= DNS_NAME_MAX;
}

/* ---- SRV (RFC 2782) ---- */

static void
srv_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_req *r = arg;
	struct ares_srv_reply *head = NULL, *s;
	size_t n = 0;

	if (status == ARES_SUCCESS)
		status = ares_parse_srv_reply(abuf, alen, &head);
	if (status != ARES_SUCCESS) {
		req_finish(r, status_errno(status));
		return;
	}
	for (s = head; s; s = s->next)
		n++;
	if (n > DNS_SRV_MAX)
		n = DNS_SRV_MAX;
	r->recs = xcalloc(n ? n : 1, sizeof *r->recs);
	r->n = 0;
	for (s = head; s && r->n < n; s = s->next) {
		struct dns_srv *d = &r->recs[r->n];
		/* c-ares spells the root name "", which RFC 2782 writes "." (service not offered).
		 */
		const char *target = s->host[0] ? s->host : ".";
		if (strlen(target) >= sizeof d->target)
			continue; /* escaped beyond what a name may be: drop the record */
		d->priority = s->priority;
		d->weight = s->weight;
		d->port = s->port;
		strcpy(d->target, target);
		r->n++;
	}
	ares_free_data(head);
	req_finish(r, r->n ? 0 : -EIO);
}

void
dns_srv(struct loop *loop, const char *name, dns_srv_fn fn, void *arg)
{
	struct dns_req *r = req_new(loop, DNS_KIND_SRV, arg);
	int rc;

	r->srv_fn = fn;
	if (r->chan->closing) {
		req_finish(r, -ECANCELED); /* from a callback of dns_loop_free() */
	} else if (!name_ok(name)) {
		req_finish(r, -ENOENT);
	} else if ((rc = chan_open(r->chan)) != ARES_SUCCESS) {
		log_error("dns: cannot start resolver: %s", ares_strerror(rc));
		req_finish(r, -EIO);
	} else {
		ares_query(r->chan->ch, name, ns_c_in, ns_t_srv, srv_done, r);
		chan_rearm(r->chan);
	}
	/* r is either queued on chan->done or still with c-ares: alive either way. */
	r->in_call = false;
}

/* ---- addresses ---- */

/* Appends the text of sa to r->addrs unless it is there already. */
static void
addr_add(struct dns_req *r, const struct sockaddr *sa)
{
	char text[INET6_ADDRSTRLEN];
	const void *bin;

	if (r->n >= DNS_ADDR_MAX)
		return;
	if (sa->sa_family == AF_INET)
		bin = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		bin = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	else
		return;
	if (!inet_ntop(sa->sa_family, bin, text, sizeof text))
		return;
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->addrs[i], text) == 0)
			return;
	}
	memcpy(r->addrs[r->n++], text, sizeof text);
}

static void
addr_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_req *r = arg;

	if (status == ARES_SUCCESS && res) {
		r->addrs = xcalloc(DNS_ADDR_MAX, sizeof *r->addrs);
		/* IPv4 first: most peers still reach each other best that way. */
		for (int family = AF_INET;; family = AF_INET6) {
			for (struct ares_addrinfo_node *a = res->nodes; a; a = a->ai_next) {
				if (a->ai_family == family && a->ai_addr)
					addr_add(r, a->ai_addr);
			}
			if (family == AF_INET6)
				break;
		}
	}
	if (res)
		ares_freeaddrinfo(res);
	if (status == ARES_SUCCESS && r->n == 0)
		status = ARES_ENODATA;
	req_finish(r, status_errno(status));
}

/* If host is an IPv4 or IPv6 literal, makes it r's one address and returns true. */
static bool
addr_literal(struct dns_req *r, const char *host)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		return false;
	r->addrs = xcalloc(1, sizeof *r->addrs);
	addr_add(r, (struct sockaddr *)&ss);
	return true;
}

void
dns_addr(struct loop *loop, const char *host, dns_addr_fn fn, void *arg)
{
	struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT};
	struct dns_req *r = req_new(loop, DNS_KIND_ADDR, arg);
	int rc;

	r->addr_fn = fn;
	if (r->chan->closing) {
		req_finish(r, -ECANCELED); /* from a callback of dns_loop_free() */
	} else if (!name_ok(host)) {
		req_finish(r, -ENOENT);
	} else if (addr_literal(r, host)) {
		req_finish(r, 0);
	} else if ((rc = chan_open(r->chan)) != ARES_SUCCESS) {
		log_error("dns: cannot start resolver: %s", ares_strerror(rc));
		req_finish(r, -EIO);
	} else {
		ares_getaddrinfo(r->chan->ch, host, NULL, &hints, addr_done, r);
		chan_rearm(r->chan);
	}
	r->in_call = false;
}

/* ---- teardown ---- */

/*
 * Frees the calling thread's resolver state, after its loop_run() returned and before the
 * loop is freed: every lookup still pending or waiting for delivery gets -ECANCELED now.
 */
void
dns_loop_free(void)
{
	struct dns_chan *c;

	while ((c = dns_chans) != NULL) {
		c->closing = true;
		/* Calls back every pending query with ARES_EDESTRUCTION: queued by req_finish. */
		if (c->ch)
			ares_destroy(c->ch);
		c->ch = NULL;
		timer_stop(c->loop, &c->timeout);
		timer_stop(c->loop, &c->deliver);
		/* A -ECANCELED callback that starts a lookup queues it here too: loop until empty.
		 */
		while (c->done) {
			struct dns_req *r = c->done;
			c->done = r->next;
			if (!c->done)
				c->done_tail = &c->done;
			r->status = -ECANCELED;
			req_deliver(r);
		}
		while (c->socks) {
			struct dns_sock *s = c->socks;
			c->socks = s->next;
			loop_io_del(c->loop, &s->io);
			free(s);
		}
		dns_chans = c->next;
		free(c);
	}
}
