/*
 * net_int: what the files of the net module share and nobody else sees.
 */
#ifndef BATON_NET_INT_H
#define BATON_NET_INT_H

#include <sys/socket.h>

#include "net.h"

/* Returns a new server-side SSL on fd in accept state (an SSL *), or NULL. */
void *tls_new_ssl(struct tls_ctx *t, int fd);
/* Writes "ip:port" of ss into out. */
void net_format_addr(const struct sockaddr_storage *ss, char *out, size_t n);

#endif
