/*
 * test_dns: unit tests of src/net/dns.c against a small DNS server run by the test itself
 * (UDP on 127.0.0.1, in a thread) that answers SRV, A and AAAA for fixed names, NXDOMAIN for
 * others, SERVFAIL, broken answers, and silence for "silent.test". Each phase runs a real loop;
 * every callback checks it was not called from inside dns_srv()/dns_addr() and runs once.
 * The last line is "test_dns: N passed, M failed"; the exit status is non-zero on failure.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "net/net.h"

#include "check.h"

/* A hung loop must fail the run, not stall CI. */
static void
on_alarm(int sig)
{
	static const char msg[] = "test_dns: timed out (event loop did not stop)\n";
	(void)!write(STDOUT_FILENO, msg, sizeof msg - 1);
	_exit(1);
}

/* ---- the fake DNS server (RFC 1035 §4.1 message format) ---- */

#define RR_A	1
#define RR_AAAA 28
#define RR_SRV	33

struct fake_rr {
	const char *name;
	uint16_t type;
	const char *data; /* address text, or the SRV target ("" = the root, ".") */
	uint16_t prio, weight, port;
};

static const struct fake_rr fake_rrs[] = {
    {"_xmpp-server._tcp.multi.test", RR_SRV, "a.multi.test", 10, 5, 5269},
    {"_xmpp-server._tcp.multi.test", RR_SRV, "b.multi.test", 20, 0, 5270},
    {"_xmpp-server._tcp.multi.test", RR_SRV, "c.multi.test", 10, 60, 5271},
    {"_xmpp-server._tcp.none.test", RR_SRV, "", 0, 0, 0},
    {"host.test", RR_A, "192.0.2.1", 0, 0, 0},
    {"host.test", RR_A, "192.0.2.2", 0, 0, 0},
    {"host.test", RR_A, "192.0.2.1", 0, 0, 0}, /* a duplicate the resolver must drop */
    {"host.test", RR_AAAA, "2001:db8::1", 0, 0, 0},
    {"v4only.test", RR_A, "192.0.2.7", 0, 0, 0},
    {"v6only.test", RR_AAAA, "2001:db8::7", 0, 0, 0},
};

static int fake_fd;
static unsigned fake_port;
static atomic_int fake_queries;

static size_t
put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return 2;
}

static size_t
put_name(uint8_t *p, const char *name)
{
	size_t n = 0;

	while (*name) {
		const char *dot = strchr(name, '.');
		size_t len = dot ? (size_t)(dot - name) : strlen(name);
		p[n++] = (uint8_t)len;
		memcpy(p + n, name, len);
		n += len;
		name += len + (dot ? 1 : 0);
	}
	p[n++] = 0;
	return n;
}

/* Appends one answer for the question's name (a pointer to offset 12). */
static size_t
put_rr(uint8_t *p, uint16_t type, const uint8_t *rdata, size_t rdlen)
{
	size_t n = 0;

	n += put16(p + n, 0xc00c);
	n += put16(p + n, type);
	n += put16(p + n, 1); /* IN */
	n += put16(p + n, 0);
	n += put16(p + n, 60); /* TTL */
	n += put16(p + n, (unsigned)rdlen);
	memcpy(p + n, rdata, rdlen);
	return n + rdlen;
}

/* Builds the reply to query q (n bytes) in out; returns its length, 0 for none (silence). */
static size_t
fake_answer(const uint8_t *q, size_t n, uint8_t *out)
{
	char name[256];
	size_t off = 12, nl = 0, len, ancount = 0, qend;
	unsigned qtype, rcode = 0;
	bool exists = false;
	uint8_t rdata[300];

	if (n < 17)
		return 0;
	while (off < n && q[off]) {
		len = q[off];
		if ((len & 0xc0) || off + 1 + len > n || nl + len + 1 >= sizeof name)
			return 0;
		for (size_t i = 0; i < len; i++) {
			char ch = (char)q[off + 1 + i];
			name[nl++] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
		}
		name[nl++] = '.';
		off += 1 + len;
	}
	name[nl ? nl - 1 : 0] = '\0';
	off++;
	if (off + 4 > n)
		return 0;
	qtype = (unsigned)q[off] << 8 | q[off + 1];
	qend = off + 4;
	if (strstr(name, "silent.test"))
		return 0;

	memcpy(out, q, qend);
	size_t o = qend;
	if (strstr(name, "bad.test")) {
		ancount = 1; /* an answer promised and not there */
		exists = true;
	} else if (strcmp(name, "servfail.test") == 0) {
		rcode = 2;
	} else if (strcmp(name, "_xmpp-server._tcp.loop.test") == 0 && qtype == RR_SRV) {
		/* The target is a compression pointer to itself. */
		size_t at = o + 12 + 6;
		uint8_t *r = rdata;
		r += put16(r, 1);
		r += put16(r, 1);
		r += put16(r, 5269);
		r += put16(r, 0xc000 | (unsigned)at);
		o += put_rr(out + o, RR_SRV, rdata, 8);
		ancount = 1;
	} else if (strcmp(name, "_xmpp-server._tcp.short.test") == 0 && qtype == RR_SRV) {
		memset(rdata, 0, 4); /* priority and weight, then nothing */
		o += put_rr(out + o, RR_SRV, rdata, 4);
		ancount = 1;
	} else {
		for (size_t i = 0; i < ARRAY_LEN(fake_rrs); i++) {
			const struct fake_rr *rr = &fake_rrs[i];
			size_t rl;
			if (strcmp(rr->name, name) != 0)
				continue;
			exists = true;
			if (rr->type != qtype)
				continue;
			if (rr->type == RR_A) {
				inet_pton(AF_INET, rr->data, rdata);
				rl = 4;
			} else if (rr->type == RR_AAAA) {
				inet_pton(AF_INET6, rr->data, rdata);
				rl = 16;
			} else {
				rl = put16(rdata, rr->prio);
				rl += put16(rdata + rl, rr->weight);
				rl += put16(rdata + rl, rr->port);
				rl += put_name(rdata + rl, rr->data);
			}
			o += put_rr(out + o, rr->type, rdata, rl);
			ancount++;
		}
		if (!exists)
			rcode = 3; /* NXDOMAIN */
	}
	out[2] = (uint8_t)(0x84 | (q[2] & 0x01)); /* QR, AA, RD copied */
	out[3] = (uint8_t)(0x80 | rcode);	  /* RA */
	put16(out + 4, 1);
	put16(out + 6, (unsigned)ancount);
	put16(out + 8, 0);
	put16(out + 10, 0);
	return o;
}

static void *
fake_main(void *arg)
{
	uint8_t q[1500], out[1500];

	for (;;) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof from;
		ssize_t n = recvfrom(fake_fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
		if (n < 0)
			continue;
		if (n == 1 && q[0] == 'q')
			break;
		atomic_fetch_add(&fake_queries, 1);
		size_t an = fake_answer(q, (size_t)n, out);
		if (an)
			sendto(fake_fd, out, an, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

static pthread_t
fake_start(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof sin;
	pthread_t th;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fake_fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fake_fd < 0 || bind(fake_fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
	    getsockname(fake_fd, (struct sockaddr *)&sin, &sl) < 0)
		fatal("fake dns: cannot bind: %s", strerror(errno));
	fake_port = ntohs(sin.sin_port);
	/* The many-lookups phase sends hundreds of queries at once: room for all of them. */
	setsockopt(fake_fd, SOL_SOCKET, SO_RCVBUF, &(int){4 << 20}, sizeof(int));
	setsockopt(fake_fd, SOL_SOCKET, SO_SNDBUF, &(int){4 << 20}, sizeof(int));
	if (pthread_create(&th, NULL, fake_main, NULL) != 0)
		fatal("fake dns: pthread_create");
	return th;
}

static void
fake_stop(pthread_t th)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fake_port)};

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sendto(fake_fd, "q", 1, 0, (struct sockaddr *)&sin, sizeof sin);
	pthread_join(th, NULL);
	close(fake_fd);
}

/* ---- driving a loop ---- */

static struct loop *cur_loop;
static int pending;	 /* callbacks still expected in this phase */
static bool in_dns_call; /* true while a dns_*() call is on the stack */
static bool guard_hit;

static void
one_done(void)
{
	if (--pending == 0)
		loop_stop(cur_loop);
}

static void
guard_fired(struct timer *t)
{
	guard_hit = true;
	loop_stop(cur_loop);
}

/* Runs loop until every expected callback came (or guard_ms passed); returns elapsed ms. */
static uint64_t
run_phase(struct loop *loop, uint64_t guard_ms)
{
	struct timer guard = {.fn = guard_fired};
	uint64_t t0 = now_ms();

	guard_hit = false;
	if (pending > 0) {
		timer_start(loop, &guard, guard_ms);
		loop_run(loop);
		timer_stop(loop, &guard);
	}
	return now_ms() - t0;
}

static void
lookup_srv(const char *name, dns_srv_fn fn, void *arg)
{
	in_dns_call = true;
	dns_srv(cur_loop, name, fn, arg);
	in_dns_call = false;
}

static void
lookup_addr(const char *host, dns_addr_fn fn, void *arg)
{
	in_dns_call = true;
	dns_addr(cur_loop, host, fn, arg);
	in_dns_call = false;
}

/* ---- the cases ---- */

struct want_srv {
	unsigned priority, weight, port;
	const char *target;
};

struct srv_case {
	const char *name;
	int status;
	struct want_srv want[4];
	size_t n;
};

struct addr_case {
	const char *host;
	int status;
	const char *want[4]; /* exactly these (any order) unless subset */
	size_t n;
	bool subset; /* want must be among the answers (e.g. /etc/hosts may list more) */
};

/* What a callback saw for one case. */
struct outcome {
	const struct srv_case *sc;
	const struct addr_case *ac;
	int calls, got;
	uint64_t at;
};

static char long_name[300];

static const struct srv_case srv_cases[] = {
    {"_xmpp-server._tcp.multi.test",
     0,
     {{10, 5, 5269, "a.multi.test"}, {20, 0, 5270, "b.multi.test"}, {10, 60, 5271, "c.multi.test"}},
     3},
    {"_XMPP-server._tcp.Multi.Test.", /* case and a final dot do not matter */
     0,
     {{10, 5, 5269, "a.multi.test"}, {20, 0, 5270, "b.multi.test"}, {10, 60, 5271, "c.multi.test"}},
     3},
    {"_xmpp-server._tcp.none.test", 0, {{0, 0, 0, "."}}, 1}, /* RFC 2782: "." = not offered */
    {"_xmpp-server._tcp.nx.test", -ENOENT, {{0}}, 0},	     /* NXDOMAIN */
    {"host.test", -ENOENT, {{0}}, 0},			     /* name exists, no SRV */
    {"_xmpp-server._tcp.bad.test", -EIO, {{0}}, 0},	     /* answer count without answer */
    {"_xmpp-server._tcp.loop.test", -EIO, {{0}}, 0},	     /* compression pointer loop */
    {"_xmpp-server._tcp.short.test", -EIO, {{0}}, 0},	     /* SRV rdata cut short */
    {"servfail.test", -EIO, {{0}}, 0},
    {"_xmpp-server._tcp.silent.test", -ETIMEDOUT, {{0}}, 0},
    {"", -ENOENT, {{0}}, 0},
    {long_name, -ENOENT, {{0}}, 0},
};

static const struct addr_case addr_cases[] = {
    {"host.test", 0, {"192.0.2.1", "192.0.2.2", "2001:db8::1"}, 3, false},
    {"Host.Test.", 0, {"192.0.2.1", "192.0.2.2", "2001:db8::1"}, 3, false},
    {"v4only.test", 0, {"192.0.2.7"}, 1, false},
    {"v6only.test", 0, {"2001:db8::7"}, 1, false},
    {"nx.test", -ENOENT, {0}, 0, false},
    {"_xmpp-server._tcp.multi.test", -ENOENT, {0}, 0, false}, /* exists, no address */
    {"bad.test", -EIO, {0}, 0, false},
    {"servfail.test", -EIO, {0}, 0, false},
    {"silent.test", -ETIMEDOUT, {0}, 0, false},
    {"198.51.100.9", 0, {"198.51.100.9"}, 1, false},
    {"2001:DB8:0:0::5", 0, {"2001:db8::5"}, 1, false}, /* canonical text */
    {"localhost", 0, {"127.0.0.1"}, 1, true},	       /* /etc/hosts, no query */
    {"", -ENOENT, {0}, 0, false},
    {long_name, -ENOENT, {0}, 0, false},
};

static void
srv_cb(void *arg, int status, const struct dns_srv *recs, size_t n)
{
	struct outcome *o = arg;
	const struct srv_case *c = o->sc;

	CHECK(!in_dns_call, "srv %s: called back inside dns_srv()", c->name);
	o->calls++;
	o->got = status;
	o->at = now_ms();
	CHECK(status == c->status, "srv %s: status %d, want %d", c->name, status, c->status);
	if (status == 0) {
		bool used[8] = {0};
		CHECK(n == c->n, "srv %s: %zu records, want %zu", c->name, n, c->n);
		for (size_t i = 0; i < c->n && n <= 8; i++) {
			const struct want_srv *w = &c->want[i];
			bool found = false;
			for (size_t j = 0; j < n && !found; j++) {
				if (!used[j] && recs[j].priority == w->priority &&
				    recs[j].weight == w->weight && recs[j].port == w->port &&
				    strcmp(recs[j].target, w->target) == 0)
					used[j] = found = true;
			}
			CHECK(found, "srv %s: no record %u %u %u %s", c->name, w->priority,
			      w->weight, w->port, w->target);
		}
	} else {
		CHECK(recs == NULL && n == 0, "srv %s: records with an error", c->name);
	}
	one_done();
}

static void
addr_cb(void *arg, int status, const char *const *addrs, size_t n)
{
	struct outcome *o = arg;
	const struct addr_case *c = o->ac;

	CHECK(!in_dns_call, "addr %s: called back inside dns_addr()", c->host);
	o->calls++;
	o->got = status;
	o->at = now_ms();
	CHECK(status == c->status, "addr %s: status %d, want %d", c->host, status, c->status);
	if (status == 0) {
		bool seen_v6 = false;
		if (!c->subset)
			CHECK(n == c->n, "addr %s: %zu addresses, want %zu", c->host, n, c->n);
		for (size_t i = 0; i < c->n; i++) {
			bool found = false;
			for (size_t j = 0; j < n; j++)
				found |= strcmp(addrs[j], c->want[i]) == 0;
			CHECK(found, "addr %s: %s missing", c->host, c->want[i]);
		}
		for (size_t j = 0; j < n; j++) {
			bool v6 = strchr(addrs[j], ':') != NULL;
			CHECK(!(seen_v6 && !v6), "addr %s: IPv4 %s after IPv6", c->host, addrs[j]);
			seen_v6 |= v6;
			for (size_t k = 0; k < j; k++)
				CHECK(strcmp(addrs[j], addrs[k]) != 0, "addr %s: %s twice", c->host,
				      addrs[j]);
		}
	} else {
		CHECK(addrs == NULL && n == 0, "addr %s: addresses with an error", c->host);
	}
	one_done();
}

/* ---- dns_set_server ---- */

static void
test_set_server(void)
{
	static const struct {
		const char *in;
		int rc;
	} cases[] = {
	    {"127.0.0.1:5353", 0},
	    {"127.0.0.1", 0},
	    {"[::1]:5353", 0},
	    {"[::1]", 0},
	    {"::1", 0},
	    {"2001:db8::53", 0},
	    {"", 0},
	    {NULL, 0},
	    {"ns.example.org:53", -1},
	    {"ns.example.org", -1},
	    {"127.0.0.1:0", -1},
	    {"127.0.0.1:65536", -1},
	    {"127.0.0.1:", -1},
	    {"127.0.0.1:53x", -1},
	    {"127.0.0.1:-53", -1},
	    {"127.0.0.1:+53", -1},
	    {"[::1]:", -1},
	    {"[::1", -1},
	    {"[::1]x", -1},
	    {"[127.0.0.1]:53", -1},
	    {"[]:53", -1},
	    {"::1:53:", -1},
	    {"256.0.0.1", -1},
	    {":53", -1},
	    {"[0123456789abcdef0123456789abcdef0123456789abcdef0123456789]:53", -1},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char err[128] = "";
		int rc = dns_set_server(cases[i].in, err, sizeof err);
		CHECK(rc == cases[i].rc, "dns_set_server(%s) = %d, want %d", cases[i].in, rc,
		      cases[i].rc);
		if (rc < 0)
			CHECK(err[0] != '\0', "dns_set_server(%s): no reason", cases[i].in);
	}
}

/* ---- phases ---- */

/* Checks every outcome of cases run from t0: called once, timeouts late, the rest at once. */
static void
check_outcomes(const struct outcome *out, size_t n, uint64_t t0)
{
	for (size_t i = 0; i < n; i++) {
		const struct outcome *o = &out[i];
		const char *name = o->sc ? o->sc->name : o->ac->host;
		unsigned long long ms = o->at - t0;
		CHECK(o->calls == 1, "%s: %d calls", name, o->calls);
		if (o->calls && o->got == -ETIMEDOUT)
			CHECK(ms >= 1000 && ms <= 5000, "%s: timed out after %llu ms", name, ms);
		else if (o->calls)
			CHECK(ms < 1000, "%s: answered after %llu ms", name, ms);
	}
}

/* Every case at once, the silent ones included: they bound the phase at ~4.5 s. */
static void
test_cases(void)
{
	static struct outcome out[ARRAY_LEN(srv_cases) + ARRAY_LEN(addr_cases)];
	struct loop *loop = loop_new(1);
	uint64_t t0 = now_ms(), elapsed;
	size_t k = 0;

	cur_loop = loop;
	memset(long_name, 'a', sizeof long_name - 1);
	pending = (int)ARRAY_LEN(out);
	for (size_t i = 0; i < ARRAY_LEN(srv_cases); i++, k++) {
		out[k].sc = &srv_cases[i];
		lookup_srv(srv_cases[i].name, srv_cb, &out[k]);
	}
	for (size_t i = 0; i < ARRAY_LEN(addr_cases); i++, k++) {
		out[k].ac = &addr_cases[i];
		lookup_addr(addr_cases[i].host, addr_cb, &out[k]);
	}
	elapsed = run_phase(loop, 8000);
	CHECK(!guard_hit, "cases: %d callbacks missing after %llu ms", pending,
	      (unsigned long long)elapsed);
	check_outcomes(out, ARRAY_LEN(out), t0);
	dns_loop_free();
	loop_free(loop);
}

/* IP literals and /etc/hosts answer without sending a single query. */
static void
test_no_query(void)
{
	static const struct addr_case cases[] = {
	    {"192.0.2.200", 0, {"192.0.2.200"}, 1, false},
	    {"::1", 0, {"::1"}, 1, false},
	    {"localhost", 0, {"127.0.0.1"}, 1, true},
	};
	static struct outcome out[ARRAY_LEN(cases)];
	struct loop *loop = loop_new(2);
	int before = atomic_load(&fake_queries);
	uint64_t t0 = now_ms();

	cur_loop = loop;
	pending = (int)ARRAY_LEN(cases);
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		out[i].ac = &cases[i];
		lookup_addr(cases[i].host, addr_cb, &out[i]);
	}
	run_phase(loop, 3000);
	CHECK(!guard_hit, "no-query: %d callbacks missing", pending);
	check_outcomes(out, ARRAY_LEN(out), t0);
	CHECK(atomic_load(&fake_queries) == before, "no-query: %d queries sent",
	      atomic_load(&fake_queries) - before);
	dns_loop_free();
	loop_free(loop);
}

/* Many lookups in flight on one channel, each answered once and correctly. */
#define MANY 200

static int many_ok, many_bad;

static void
many_count(bool ok)
{
	if (ok)
		many_ok++;
	else
		many_bad++;
	one_done();
}

static void
many_addr_cb(void *arg, int status, const char *const *addrs, size_t n)
{
	bool ok = !in_dns_call && status == 0 && n == 3 && strcmp(addrs[0], "192.0.2.1") == 0 &&
		  strcmp(addrs[1], "192.0.2.2") == 0 && strcmp(addrs[2], "2001:db8::1") == 0;
	many_count(ok);
}

static void
many_srv_cb(void *arg, int status, const struct dns_srv *recs, size_t n)
{
	bool ok = !in_dns_call && status == 0 && n == 3;
	many_count(ok);
}

static void
many_nx_cb(void *arg, int status, const char *const *addrs, size_t n)
{
	bool ok = !in_dns_call && status == -ENOENT && n == 0;
	many_count(ok);
}

static void
many_local_cb(void *arg, int status, const char *const *addrs, size_t n)
{
	bool ok = !in_dns_call && status == 0 && n >= 1 && strcmp(addrs[0], "127.0.0.1") == 0;
	many_count(ok);
}

static void
test_many(void)
{
	struct loop *loop = loop_new(3);
	char nx[64];
	uint64_t elapsed;

	cur_loop = loop;
	many_ok = many_bad = 0;
	pending = 4 * MANY;
	for (int i = 0; i < MANY; i++) {
		lookup_addr("host.test", many_addr_cb, NULL);
		lookup_srv("_xmpp-server._tcp.multi.test", many_srv_cb, NULL);
		snprintf(nx, sizeof nx, "nx%d.test", i);
		lookup_addr(nx, many_nx_cb, NULL);
		lookup_addr("localhost", many_local_cb, NULL);
	}
	elapsed = run_phase(loop, 8000);
	CHECK(!guard_hit, "many: %d callbacks missing after %llu ms", pending,
	      (unsigned long long)elapsed);
	CHECK(many_ok == 4 * MANY && many_bad == 0, "many: %d right, %d wrong of %d", many_ok,
	      many_bad, 4 * MANY);
	dns_loop_free();
	loop_free(loop);
}

/*
 * Lookups still in flight, or answered but not yet delivered, when the loop ends get
 * -ECANCELED from dns_loop_free(), once each; so does one started from such a callback.
 */
static int cancel_calls, cancel_bad;

static void
cancel_addr_cb(void *arg, int status, const char *const *addrs, size_t n)
{
	cancel_calls++;
	if (status != -ECANCELED || n != 0 || in_dns_call)
		cancel_bad++;
}

static void
cancel_srv_cb(void *arg, int status, const struct dns_srv *recs, size_t n)
{
	cancel_calls++;
	if (status != -ECANCELED || n != 0 || in_dns_call)
		cancel_bad++;
	/* A callee that retries at once must not resurrect the channel. */
	if (arg)
		lookup_srv("_xmpp-server._tcp.multi.test", cancel_srv_cb, NULL);
}

static void
cancel_stop(struct timer *t)
{
	loop_stop(cur_loop);
}

static void
test_cancel(void)
{
	struct loop *loop = loop_new(4);
	struct timer stop = {.fn = cancel_stop};
	int before;

	cur_loop = loop;
	cancel_calls = cancel_bad = 0;
	lookup_addr("silent.test", cancel_addr_cb, NULL);
	lookup_srv("_xmpp-server._tcp.silent.test", cancel_srv_cb, &stop);
	lookup_srv("_xmpp-server._tcp.silent.test", cancel_srv_cb, NULL);
	timer_start(loop, &stop, 300);
	loop_run(loop);
	CHECK(cancel_calls == 0, "cancel: %d callbacks before the loop ended", cancel_calls);
	/* After the loop stopped: answered at once, but only deliverable by the loop. */
	lookup_addr("192.0.2.1", cancel_addr_cb, NULL);
	lookup_addr("localhost", cancel_addr_cb, NULL);
	lookup_addr("", cancel_addr_cb, NULL);
	CHECK(cancel_calls == 0, "cancel: %d callbacks inside dns_addr()", cancel_calls);
	before = atomic_load(&fake_queries);
	dns_loop_free();
	CHECK(cancel_calls == 7 && cancel_bad == 0, "cancel: %d callbacks, %d wrong, want 7 right",
	      cancel_calls, cancel_bad);
	CHECK(atomic_load(&fake_queries) == before, "cancel: a retry from a callback was sent");
	dns_loop_free(); /* nothing left: a no-op */
	CHECK(cancel_calls == 7, "cancel: second dns_loop_free called back again");
	loop_free(loop);
}

int
main(void)
{
	pthread_t th;
	char server[64], err[128];

	setvbuf(stdout, NULL, _IOLBF, 0); /* failures stay visible if a bug crashes the run */
	signal(SIGALRM, on_alarm);
	alarm(30);
	log_set_level("error");
	test_set_server();
	th = fake_start();
	snprintf(server, sizeof server, "127.0.0.1:%u", fake_port);
	if (dns_set_server(server, err, sizeof err) < 0)
		fatal("%s", err);
	test_no_query();
	test_many();
	test_cases();
	test_cancel();
	fake_stop(th);
	return check_summary("test_dns");
}
