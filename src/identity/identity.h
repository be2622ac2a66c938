/*
 * identity: one identity, several devices, exactly one active (seed 003, PROTOCOL.md 2,
 * urn:baton:identity:0). An account in exclusive mode has one bound device at a time: a new
 * one supersedes the active one atomically, takes over its rooms and conversations, gets
 * what it had not acknowledged, and contacts never see the account offline in between.
 *
 * Invariant: supersession happens inside the new device's bind, on the account's home
 * worker, so no stanza can reach both devices or neither: before the bind completes
 * everything goes to the old device, after it everything to the new one.
 */
#ifndef BATON_IDENTITY_H
#define BATON_IDENTITY_H

#include "../xmpp/xmpp_int.h"

/* What batond registers with server_add_ext(). */
extern struct xmpp_ext identity_ext;

#endif
