/*
 * listen: listening sockets. One socket per configured address, shared by every
 * worker's epoll with EPOLLEXCLUSIVE so a new connection wakes one worker only;
 * binding without SO_REUSEPORT means a port already in use is a clear start-up error.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "net_int.h"

/* Splits "host:port" or "[v6]:port"; returns 0 or -1. */
int
net_split_addr(const char *addr, char *host, size_t hn, char *port, size_t pn)
{
	const char *colon;
	size_t len;

	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end || end[1] != ':')
			return -1;
		len = (size_t)(end - addr - 1);
		if (len >= hn)
			return -1;
		memcpy(host, addr + 1, len);
		host[len] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			return -1;
		len = (size_t)(colon - addr);
		if (len >= hn)
			return -1;
		memcpy(host, addr, len);
		host[len] = '\0';
	}
	if (strlen(colon + 1) == 0 || strlen(colon + 1) >= pn)
		return -1;
	strcpy(port, colon + 1);
	return 0;
}

/*
 * A non-blocking socket of type bound to "host:port" (a TCP listener with SO_REUSEADDR and
 * listen(), or a UDP socket). Returns the fd or -1 with a one-line reason in err.
 */
static int
bind_addr(const char *addr, int type, char *err, size_t errlen)
{
	char host[256], port[16];
	struct addrinfo hints = {.ai_socktype = type, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	int fd = -1, one = 1, r;

	if (net_split_addr(addr, host, sizeof host, port, sizeof port) < 0) {
		snprintf(err, errlen, "bad listen address '%s': expected HOST:PORT", addr);
		return -1;
	}
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (r != 0) {
		snprintf(err, errlen, "%s: %s", addr, gai_strerror(r));
		return -1;
	}
	fd = socket(res->ai_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 1024) < 0))
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s%s: %s", addr, type == SOCK_DGRAM ? " (UDP)" : "",
		 strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -1;
}

int
net_listen(const char *addr, char *err, size_t errlen)
{
	return bind_addr(addr, SOCK_STREAM, err, errlen);
}

void
net_format_addr(const struct sockaddr_storage *ss, char *out, size_t n)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
		port = ntohs(a->sin_port);
		snprintf(out, n, "%s:%u", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
		port = ntohs(a->sin6_port);
		snprintf(out, n, "[%s]:%u", ip, port);
	} else {
		snprintf(out, n, "unix");
	}
}

/* ---- UDP ---- */

static void
addr_fill(struct net_addr *a, const struct sockaddr_storage *ss, socklen_t len)
{
	memcpy(a->raw, ss, len < sizeof a->raw ? len : sizeof a->raw);
	a->len = len;
	net_format_addr(ss, a->text, sizeof a->text);
	a->port = 0;
	a->ip[0] = '\0';
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, a->ip, sizeof a->ip);
		a->port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, a->ip, sizeof a->ip);
		a->port = ntohs(in6->sin6_port);
	}
}

int
net_udp_bind(const char *addr, char *err, size_t errlen)
{
	return bind_addr(addr, SOCK_DGRAM, err, errlen);
}

long
net_udp_recv(int fd, void *buf, size_t n, struct net_addr *from)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	ssize_t r = recvfrom(fd, buf, n, MSG_TRUNC, (struct sockaddr *)&ss, &sl);

	if (r < 0)
		return -1;
	addr_fill(from, &ss, sl);
	return (long)r; /* MSG_TRUNC: a datagram longer than n says its real length */
}

int
net_udp_send(int fd, const struct net_addr *to, const void *data, size_t n)
{
	ssize_t r = sendto(fd, data, n, MSG_NOSIGNAL, (const struct sockaddr *)to->raw, to->len);
	return r == (ssize_t)n ? 0 : -1;
}

int
net_addr_resolve(const char *host, unsigned port, struct net_addr *out)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
	char p[16], h[256];
	size_t hl = strlen(host);

	/* [v6] as in URIs */
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof h) {
		memcpy(h, host + 1, hl - 2);
		h[hl - 2] = '\0';
	} else {
		snprintf(h, sizeof h, "%s", host);
	}
	snprintf(p, sizeof p, "%u", port);
	if (getaddrinfo(h, p, &hints, &res) != 0 || !res)
		return -1;
	addr_fill(out, (const struct sockaddr_storage *)res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}
