/*
 * fuzz_s2s: libFuzzer target for the incoming server-to-server (s2s.c) and XEP-0114
 * component (component.c) streams of a real batond started once in this process, driven over
 * loopback TCP. The first input byte picks how far the harness itself takes the stream before
 * the rest of the input is written (byte % 5): raw s2s, raw component, a component
 * after a correct handshake, s2s after STARTTLS, or s2s after STARTTLS with a certificate that
 * passes SASL EXTERNAL for peer.fuzz.example. A byte of 240 or more makes the harness wait a
 * while before closing, so that answers needing a round trip (dialback) reach a stream still open.
 * A NUL byte in the rest is not sent: the harness waits there for the server's answer.
 *
 * Invariant checked: whatever a peer sends, the server neither crashes, nor trips ASan/UBSan,
 * nor leaks (LSan at exit, after server_stop()), and it keeps answering new streams.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/core.h"
#include "xmpp/xmpp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DOMAIN	    "fuzz.example"
#define COMP_DOMAIN "comp.fuzz.example"
#define COMP_SECRET "secret"
/* Covered by the server's self-signed certificate (DNS names DOMAIN and *.DOMAIN). */
#define PEER_DOMAIN "peer.fuzz.example"

#define SETUP_MS  2000 /* the harness's own steps: a healthy server answers at once */
#define DRAIN_MS  30   /* after the input: read what the server says, up to this long */
#define LINGER_MS 100  /* quiet time before closing, for inputs that ask for it */
/* First bytes from here on ask for it: rarely, since it makes a run slow. */
#define LINGER_FIRST 240
#define PAUSE_MS     15 /* at a NUL in the input: how long to wait for an answer */
#define MAX_PAUSES   8
/* Setups failing in a row before the server is declared wedged (a bug, not a slow machine). */
#define MAX_SETUP_FAILURES 20

enum mode { M_S2S_RAW, M_COMP_RAW, M_COMP_AUTHED, M_S2S_TLS, M_S2S_TLS_CERT, M_COUNT };

static struct {
	struct config cfg;
	struct server *srv;
	char dir[64];
	unsigned s2s_port, comp_port;
	SSL_CTX *tls, *tls_cert; /* client contexts: anonymous, and with the server's own pair */
	int setup_failures;
	bool trace;
} fz;

/* A free loopback port of the given type: bound once by the kernel's choice, then released. */
static unsigned
free_port(int type)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, type, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		fatal("fuzz_s2s: cannot find a free port: %s", strerror(errno));
	close(fd);
	return ntohs(a.sin_port);
}

static void
set(const char *key, const char *value)
{
	char err[256];

	if (config_set(&fz.cfg, key, value, err, sizeof err) < 0)
		fatal("fuzz_s2s: %s=%s: %s", key, value, err);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
teardown(void)
{
	if (fz.srv)
		server_stop(fz.srv);
	fz.srv = NULL;
	SSL_CTX_free(fz.tls);
	SSL_CTX_free(fz.tls_cert);
	config_free(&fz.cfg);
	nftw(fz.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static SSL_CTX *
client_ctx(bool with_cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char cert[128], key[128];

	if (!ctx)
		fatal("fuzz_s2s: SSL_CTX_new failed");
	/* The harness trusts whatever the server shows: the stream, not TLS, is under test. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (with_cert) {
		snprintf(cert, sizeof cert, "%s/cert.pem", fz.dir);
		snprintf(key, sizeof key, "%s/key.pem", fz.dir);
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
			fatal("fuzz_s2s: cannot load %s", cert);
	}
	return ctx;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char addr[64], err[512];

	signal(SIGPIPE, SIG_IGN);
	fz.trace = getenv("FUZZ_S2S_TRACE") != NULL;
	snprintf(fz.dir, sizeof fz.dir, "/tmp/fuzz_s2s.XXXXXX");
	if (!mkdtemp(fz.dir))
		fatal("fuzz_s2s: mkdtemp: %s", strerror(errno));
	fz.s2s_port = free_port(SOCK_STREAM);
	fz.comp_port = free_port(SOCK_STREAM);

	config_defaults(&fz.cfg);
	set("server.domain", DOMAIN);
	set("server.data", fz.dir);
	set("server.workers", "2");
	/* FUZZ_S2S_LOG=debug shows the server's side of it. */
	set("server.log_level", getenv("FUZZ_S2S_LOG") ? getenv("FUZZ_S2S_LOG") : "error");
	set("c2s.listen", "");
	set("c2s.tls_listen", "");
	set("http.listen", "");
	snprintf(addr, sizeof addr, "127.0.0.1:%u", fz.s2s_port);
	set("s2s.listen", addr);
	/* The self-signed pair is written by server_start() before the s2s contexts load it. */
	snprintf(err, sizeof err, "%s/cert.pem", fz.dir);
	set("s2s.ca_file", err);
	set("s2s.dialback", "true");
	/* Lookups of other domains fail at once: nothing answers on this port. */
	snprintf(addr, sizeof addr, "127.0.0.1:%u", free_port(SOCK_DGRAM));
	set("s2s.resolver", addr);
	/*
	 * Dialback for the component's domain is verified over an outgoing stream to this very
	 * server (TLS, then SASL EXTERNAL with the same certificate): the outgoing side runs too.
	 */
	snprintf(addr, sizeof addr, "127.0.0.1:%u", fz.s2s_port);
	set("s2s.route." COMP_DOMAIN, addr);
	set("s2s.route." PEER_DOMAIN, addr);
	snprintf(addr, sizeof addr, "127.0.0.1:%u", fz.comp_port);
	set("component.listen", addr);
	set("component.secret." COMP_DOMAIN, COMP_SECRET);
	if (log_set_level(fz.cfg.log_level) < 0)
		fatal("fuzz_s2s: bad log level");

	fz.srv = server_start(&fz.cfg, err, sizeof err);
	if (!fz.srv)
		fatal("fuzz_s2s: server_start: %s", err);
	fz.tls = client_ctx(false);
	fz.tls_cert = client_ctx(true);
	/* Stopping the server before LSan's exit check: what it still holds then is a leak. */
	atexit(teardown);
	return 0;
}

/* ---- one connection ---- */

struct peer {
	int fd;
	SSL *ssl;
	char got[8192]; /* the server's output so far, NUL-terminated, oldest bytes dropped */
	size_t ngot;
	size_t total; /* bytes received in all */
	bool eof;
};

static int
peer_connect(struct peer *p, unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				.sin_port = htons((uint16_t)port)};
	struct timeval tv = {.tv_sec = 2};
	int one = 1;

	memset(p, 0, sizeof *p);
	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return -1;
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* A server that stops reading or writing must not hang the fuzzer. */
	setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(p->fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(p->fd);
		p->fd = -1;
		return -1;
	}
	return 0;
}

static void
peer_close(struct peer *p)
{
	SSL_free(p->ssl);
	if (p->fd >= 0)
		close(p->fd);
	p->ssl = NULL;
	p->fd = -1;
}

static int
peer_write(struct peer *p, const void *data, size_t len)
{
	const char *d = data;

	while (len > 0) {
		ssize_t n;
		if (p->ssl) {
			int k = SSL_write(p->ssl, d, len > INT32_MAX ? INT32_MAX : (int)len);
			n = k > 0 ? k : -1;
		} else {
			n = send(p->fd, d, len, MSG_NOSIGNAL);
		}
		if (n < 0 && !p->ssl && errno == EINTR)
			continue;
		if (n <= 0)
			return -1; /* the server closed first: fine, it had its reasons */
		d += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
peer_puts(struct peer *p, const char *s)
{
	return peer_write(p, s, strlen(s));
}

/* Appends what arrives within ms (or until EOF); returns 0 on data or timeout, -1 at EOF. */
static int
peer_read_once(struct peer *p, int ms)
{
	char tmp[4096];
	ssize_t n;

	if (!p->ssl || SSL_pending(p->ssl) == 0) {
		struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
		if (poll(&pfd, 1, ms) <= 0)
			return 0;
	}
	if (p->ssl) {
		int k = SSL_read(p->ssl, tmp, sizeof tmp);
		if (k <= 0 && SSL_get_error(p->ssl, k) == SSL_ERROR_WANT_READ)
			return 0;
		n = k;
	} else {
		n = recv(p->fd, tmp, sizeof tmp, 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0; /* SO_RCVTIMEO */
	}
	if (n <= 0) {
		p->eof = true;
		return -1;
	}
	p->total += (size_t)n;
	/* Keep the newest bytes (tmp is smaller than got): markers are looked for near the end. */
	_Static_assert(sizeof tmp < sizeof p->got, "one read fits in got");
	if (p->ngot + (size_t)n >= sizeof p->got) {
		size_t drop = p->ngot + (size_t)n - (sizeof p->got - 1);
		memmove(p->got, p->got + drop, p->ngot - drop);
		p->ngot -= drop;
	}
	memcpy(p->got + p->ngot, tmp, (size_t)n);
	p->ngot += (size_t)n;
	p->got[p->ngot] = '\0';
	return 0;
}

/* Reads until marker shows up in the output; 0, or -1 on EOF or after SETUP_MS. */
static int
peer_expect(struct peer *p, const char *marker)
{
	for (int waited = 0; waited < SETUP_MS; waited += 10) {
		if (strstr(p->got, marker))
			return 0;
		if (p->eof || peer_read_once(p, 10) < 0)
			return strstr(p->got, marker) ? 0 : -1;
	}
	return -1;
}

/* Waits up to PAUSE_MS for the server to answer, then while it goes on answering. */
static void
peer_pause(struct peer *p)
{
	size_t before = p->total;

	for (int waited = 0; waited < PAUSE_MS && !p->eof && p->total == before; waited += 2)
		peer_read_once(p, 2);
	for (int i = 0; i < 50 && !p->eof && p->total != before; i++) {
		before = p->total;
		peer_read_once(p, 2);
	}
}

/* Reads until the server closes, or ms pass. */
static void
peer_wait_eof(struct peer *p, int ms)
{
	for (int waited = 0; waited < ms && !p->eof; waited += 5)
		peer_read_once(p, 5);
}

/*
 * The input is written: with linger, stay quiet for LINGER_MS (answers that take a round trip,
 * such as a dialback verification, may come back to a live stream); otherwise close the stream
 * (RFC 6120 4.4), which a healthy server answers by closing it too, after flushing. If it does
 * not, half-close: the server drops the connection at EOF.
 */
static void
peer_finish(struct peer *p, bool linger)
{
	if (linger)
		peer_wait_eof(p, LINGER_MS);
	else if (!p->eof)
		peer_puts(p, "</stream:stream>");
	peer_wait_eof(p, DRAIN_MS);
	if (p->eof)
		return;
	/* With TLS, close_notify first: an EOF without it is a TLS error. */
	if (p->ssl)
		SSL_shutdown(p->ssl);
	shutdown(p->fd, SHUT_WR);
	peer_wait_eof(p, DRAIN_MS);
}

/* ---- what the harness does before the input ---- */

static const char s2s_header[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
    "from='" PEER_DOMAIN "' to='" DOMAIN "' version='1.0'>";

/* XEP-0114 3: header, then hex(SHA1(stream id + secret)). */
static int
setup_component(struct peer *p)
{
	char id[64], hex[2 * SHA_DIGEST_LENGTH + 1], msg[128];
	unsigned char md[SHA_DIGEST_LENGTH];
	const char *at;
	size_t n;

	if (peer_puts(p, "<stream:stream xmlns='jabber:component:accept' "
			 "xmlns:stream='http://etherx.jabber.org/streams' to='" COMP_DOMAIN
			 "'>") < 0 ||
	    peer_expect(p, ">") < 0 || peer_expect(p, " id='") < 0)
		return -1;
	at = strstr(p->got, " id='") + 5;
	n = strcspn(at, "'");
	if (n == 0 || n >= sizeof id || !at[n])
		return -1;
	memcpy(id, at, n);
	id[n] = '\0';
	snprintf(msg, sizeof msg, "%s%s", id, COMP_SECRET);
	SHA1((const unsigned char *)msg, strlen(msg), md);
	for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(msg, sizeof msg, "<handshake>%s</handshake>", hex);
	/* A lost race for the domain (a previous run still registered) gives <conflict/>. */
	if (peer_puts(p, msg) < 0 || peer_expect(p, "<handshake/>") < 0)
		return -1;
	return 0;
}

/* RFC 6120 5.4: header, features, <starttls/>, <proceed/>, handshake. */
static int
setup_tls(struct peer *p, SSL_CTX *ctx)
{
	if (peer_puts(p, s2s_header) < 0 || peer_expect(p, "</stream:features>") < 0 ||
	    peer_puts(p, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") < 0 ||
	    peer_expect(p, "<proceed") < 0)
		return -1;
	p->ssl = SSL_new(ctx);
	if (!p->ssl || SSL_set_fd(p->ssl, p->fd) != 1)
		return -1;
	SSL_set_tlsext_host_name(p->ssl, DOMAIN);
	if (SSL_connect(p->ssl) != 1) {
		ERR_clear_error();
		return -1;
	}
	p->ngot = 0;
	p->got[0] = '\0';
	return 0;
}

static void
setup_failed(enum mode m, const struct peer *p)
{
	/* A component setup may lose to a previous run that still holds the domain. */
	if (m == M_COMP_AUTHED && strstr(p->got, "conflict"))
		return;
	if (++fz.setup_failures >= MAX_SETUP_FAILURES) {
		fprintf(stderr,
			"fuzz_s2s: the server stopped answering (mode %d); last output:\n%s\n", m,
			p->got);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct peer p;
	enum mode m;
	bool linger;
	int rc = 0;

	if (size == 0)
		return 0;
	m = (enum mode)(data[0] % M_COUNT);
	linger = data[0] >= LINGER_FIRST;
	data++;
	size--;
	if (peer_connect(&p, m == M_COMP_RAW || m == M_COMP_AUTHED ? fz.comp_port : fz.s2s_port) <
	    0) {
		setup_failed(m, &p);
		return 0;
	}
	if (m == M_COMP_AUTHED)
		rc = setup_component(&p);
	else if (m == M_S2S_TLS)
		rc = setup_tls(&p, fz.tls);
	else if (m == M_S2S_TLS_CERT)
		rc = setup_tls(&p, fz.tls_cert);
	if (rc < 0) {
		setup_failed(m, &p);
	} else {
		/*
		 * From now on a read never blocks long: poll() may see part of a TLS record, and
		 * SSL_read() would wait for the rest for as long as the server likes.
		 */
		struct timeval tv = {.tv_usec = 10000};
		setsockopt(p.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		fz.setup_failures = 0;
		/*
		 * A NUL byte, never valid in XML, marks a pause: the rest waits for the server's
		 * answer, as a peer must after <auth/> or <starttls/> (RFC 6120 5.4.3.3, 6.4.6).
		 */
		for (int pauses = 0; size > 0 && !p.eof; pauses++) {
			const uint8_t *nul = pauses < MAX_PAUSES ? memchr(data, 0, size) : NULL;
			size_t k = nul ? (size_t)(nul - data) : size;
			if (peer_write(&p, data, k) < 0)
				break;
			if (!nul)
				break;
			peer_pause(&p);
			data += k + 1;
			size -= k + 1;
		}
		peer_finish(&p, linger);
	}
	/* FUZZ_S2S_TRACE=1 shows what the server answered (the newest 8 KiB of it). */
	if (fz.trace)
		fprintf(stderr, "fuzz_s2s: mode %d%s: %s\n", m, rc < 0 ? " (setup failed)" : "",
			p.got);
	peer_close(&p);
	return 0;
}
