/*
 * muc: multi-user chat (XEP-0045) at conference.<domain>. Each room has a home worker,
 * hash(room JID) % N, like an account, and all of its state (occupants, roles,
 * affiliations, history) lives there; the room reaches occupants by routing stanzas to
 * their real JIDs, as any remote participant would.
 *
 * Invariant: an occupant is identified by its nick in the room and carries the real
 * full JID it is reached at; changing that JID (moving the seat to another device,
 * issue 5) is one assignment and needs no leave/join.
 */
#ifndef BATON_MUC_H
#define BATON_MUC_H

#include "../xmpp/xmpp_int.h"

/* The service batond registers with server_add_service(). */
extern const struct xmpp_service muc_service;

#endif
