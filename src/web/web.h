/*
 * web: what batond serves over HTTP (DESIGN.md "port 5280"): XMPP over WebSocket
 * (RFC 7395) at /xmpp-websocket, BOSH (XEP-0124/0206) at /http-bind, and the web client
 * without JavaScript at /m/. Every one of them is a client session of the xmpp module
 * over its own transport, so a user on any of them is an ordinary XMPP user.
 *
 * Invariant: web/ holds no account state; it carries bytes between HTTP and sessions,
 * and a session object (BOSH, /m/) lives on its session's worker.
 */
#ifndef BATON_WEB_H
#define BATON_WEB_H

#include "../core/core.h"

/* Registers the HTTP listener of cfg (http.listen, unless empty) before server_start(). */
void web_register(const struct config *cfg);

#endif
