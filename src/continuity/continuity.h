/*
 * continuity: moving a person's live conversations between their devices (seed 000,
 * PROTOCOL.md 1, urn:baton:continuity:0). An extension of the account's own state: it
 * lives on the account's home worker and hooks into the xmpp module through struct
 * xmpp_ext, so a transfer is plain single-threaded code over the account's sessions.
 *
 * Invariant: a transfer changes nothing until its target accepted; then, in one turn of
 * the account's worker, every conversation it carries is bound to the target, and
 * messages from before that instant reach the target through the history or the
 * catch-up (by archive id), messages after it live: each exactly once.
 */
#ifndef BATON_CONTINUITY_H
#define BATON_CONTINUITY_H

#include "../xmpp/xmpp_int.h"

/* What batond registers with server_add_ext(). */
extern struct xmpp_ext continuity_ext;

/*
 * Shared identity (seed 003): device 'to' takes over everything 'from' had open, at once and
 * without asking: room seats move (no leave, no join), conversations held by 'from' are held
 * by 'to'. On the account's worker, before 'from' goes away.
 */
void continuity_take_over(struct session *from, struct session *to);

#endif
