/*
 * sip: SIP users in batond (PROTOCOL.md 5, seed 004): a registrar and RFC 3428 MESSAGE with
 * the instant / store&fwd flag, over UDP and TCP on sip.listen. sip:user@<domain> is the
 * account user@<domain>, authenticated by digest against the HA1s kept with its password.
 *
 * Invariant: all SIP state (transactions, registrations, TCP connections) lives on one worker
 * and is touched by no other thread.
 */
#ifndef BATON_SIP_H
#define BATON_SIP_H

#include "../core/core.h"

/*
 * Registers the SIP service if sip.listen is set: binds its UDP socket now (returns -1 with a
 * one-line reason in err if it cannot) and its TCP listener with the server.
 */
int sip_register(const struct config *cfg, char *err, size_t errlen);

#endif
