/*
 * net_int: what the files of the net module share and nobody else sees.
 */
#ifndef BATON_NET_INT_H
#define BATON_NET_INT_H

#include <sys/socket.h>

#include "net.h"

/* A new SSL on fd (an SSL *): accept state, or connect state naming host (SNI) for a client
 * context; NULL on failure. */
void *tls_new_ssl(struct tls_ctx *t, int fd, const char *host);
/* Does the peer's certificate chain to a trusted CA and name domain? */
bool tls_peer_ok(void *ssl, const char *domain);
/* Splits "host:port" or "[v6]:port" into its parts; returns 0 or -1. */
int net_split_addr(const char *addr, char *host, size_t hn, char *port, size_t pn);
/* Is t a client context (tls_client_ctx_new)? Then the SSL is in connect state. */
bool tls_is_client(const struct tls_ctx *t);
/* Why the peer's certificate was refused, or NULL if it was not (client side). */
const char *tls_verify_error(void *ssl);
/* Writes "ip:port" of ss into out. */
void net_format_addr(const struct sockaddr_storage *ss, char *out, size_t n);

#endif
