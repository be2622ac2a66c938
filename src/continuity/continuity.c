/*
 * continuity: device continuity (seed 000) as PROTOCOL.md 1 specifies it. Each session
 * keeps what it has open (1:1 conversations it used within continuity.open_ttl, rooms
 * it sits in, priorities, its client profile); a transfer gives some or all of it to
 * another device of the account, which must accept; the account keeps pending, offered
 * and parked transfers and the conversation bindings a move leaves behind. This file
 * holds that state and the hooks the xmpp module calls; transfer.c moves it, cont_iq.c
 * answers the clients.
 *
 * Invariant: nothing changes for the source before the target's <accept/>. At accept the
 * bindings and seats switch in one turn; history (archive ids below the snapshot taken
 * when the offer was built) and catch-up (from the snapshot to the switch) and live
 * traffic (after the switch) never overlap, so each message reaches the target once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "continuity_int.h"

/* ---- state ---- */

struct csess *
cs_of(struct session *s)
{
	struct csess *cs = s->ext[continuity_ext.slot];

	if (!cs) {
		cs = xcalloc(1, sizeof *cs);
		s->ext[continuity_ext.slot] = cs;
	}
	return cs;
}

struct cacct *
ca_of(struct account *a)
{
	struct cacct *ca = a->ext[continuity_ext.slot];

	if (!ca) {
		ca = xcalloc(1, sizeof *ca);
		a->ext[continuity_ext.slot] = ca;
	}
	return ca;
}

char *
cont_bare_of(const char *jid)
{
	return jid ? jid_bare_of(jid) : NULL;
}

static const char *
resource_of(const char *full)
{
	const char *slash = strchr(full, '/');
	return slash ? slash + 1 : NULL;
}

struct session *
cont_session_of(struct account *a, const char *full)
{
	const char *res = full ? resource_of(full) : NULL;
	return res ? account_session_find(a, res) : NULL;
}

/* While something is pending the account stays loaded even with no device connected. */
void
cont_hold_account(struct account *a, bool hold)
{
	struct cacct *ca = ca_of(a);

	if (hold == ca->held)
		return;
	ca->held = hold;
	if (hold) {
		a->refs++;
	} else {
		a->refs--;
		account_maybe_unload(a);
	}
}

void
cont_bound_free(void *p)
{
	struct bound *b = p;
	if (!b)
		return;
	free(b->to);
	free(b->from);
	free(b);
}

/* The conversation with peer is held by device 'to', moved from device 'from' (or NULL). */
void
cont_bind_conv(struct cacct *ca, const char *peer, const char *to, const char *from)
{
	struct bound *b = xcalloc(1, sizeof *b);

	b->to = xstrdup(to);
	b->from = from ? xstrdup(from) : NULL;
	cont_bound_free(hmap_put(&ca->bind, peer, b));
}

void
cont_seat_free(void *p)
{
	struct seat *st = p;
	free(st->nick);
	free(st->role);
	free(st);
}

/* ---- what a session has open (FIG. 3: session data) ---- */

static int64_t
conv_age(const void *v)
{
	return ((const struct conv *)v)->last;
}

struct conv *
cont_note_conv(struct session *s, const char *peer)
{
	struct csess *cs = cs_of(s);
	struct conv *c = hmap_get(&cs->convs, peer);

	if (!c) {
		/* A device's open conversations are its recent ones: the oldest half goes. */
		if (cs->convs.count >= CONT_CONVS_MAX)
			hmap_prune(&cs->convs, CONT_CONVS_MAX / 2, conv_age, free);
		c = xcalloc(1, sizeof *c);
		hmap_put(&cs->convs, peer, c);
	}
	c->last = wall_ms();
	return c;
}

static int64_t
participant_age(const void *v)
{
	return (int64_t)(intptr_t)v;
}

/* R5: peer may write to the account without being asked (values: wall ms, never 0). */
void
cont_note_participant(struct cacct *ca, const char *peer)
{
	if (ca->participants.count >= CONT_PARTICIPANTS_MAX && !hmap_get(&ca->participants, peer))
		hmap_prune(&ca->participants, CONT_PARTICIPANTS_MAX / 2, participant_age, NULL);
	hmap_put(&ca->participants, peer, (void *)(intptr_t)wall_ms());
}

/* A room told us (status 110) that we are in it, or out of it. */
static void
note_room(struct session *s, const struct xml_node *st)
{
	struct xml_node *x = xml_child(st, "x", NS_MUC_USER);
	const char *from = xml_attr(st, "from");
	const char *type = xml_attr(st, "type");
	bool self = false;
	struct csess *cs;
	char *room;

	if (!x || !from)
		return;
	for (struct xml_node *c = xml_child(x, "status", NS_MUC_USER); c;
	     c = xml_next(c, "status", NS_MUC_USER))
		self |= xml_attr(c, "code") && strcmp(xml_attr(c, "code"), "110") == 0;
	if (!self || !(room = cont_bare_of(from)))
		return;
	cs = cs_of(s);
	if (type && strcmp(type, "unavailable") == 0) {
		struct seat *old = hmap_del(&cs->seats, room);
		if (old)
			cont_seat_free(old);
	} else if (!type) {
		struct xml_node *item = xml_child(x, "item", NS_MUC_USER);
		struct seat *st2 = hmap_get(&cs->seats, room);
		if (!st2) {
			st2 = xcalloc(1, sizeof *st2);
			hmap_put(&cs->seats, room, st2);
		}
		free(st2->nick);
		st2->nick = xstrdup(resource_of(from) ? resource_of(from) : "");
		free(st2->role);
		st2->role = xstrdup(item && xml_attr(item, "role") ? xml_attr(item, "role") : "");
	}
	free(room);
}

/*
 * A message that reaches a device while a transfer is offered to it: the catch-up after
 * the accept must not send it again (R9: exactly once).
 */
static void
note_live(struct session *s, const struct xml_node *st)
{
	struct cacct *ca = s->acct->ext[continuity_ext.slot];
	const struct xml_node *sid = xml_child(st, "stanza-id", "urn:xmpp:sid:0");

	if (!sid || !xml_attr(sid, "id") || !stanza_is(st, "message"))
		return;
	for (struct xfer *x = ca->xfers; x; x = x->next) {
		if ((x->state == X_OFFERED || x->state == X_BUILDING) && x->offered_to &&
		    strcmp(x->offered_to, s->full) == 0)
			hmap_put(&x->live, xml_attr(sid, "id"), x);
	}
}

static void
cont_seen(struct session *s, const struct xml_node *st, bool out)
{
	const char *type = xml_attr(st, "type");
	char *peer;

	if (out)
		cs_of(s)->active = wall_ms();
	else if (s->acct && s->acct->ext[continuity_ext.slot])
		note_live(s, st);
	if (stanza_is(st, "presence")) {
		if (!out)
			note_room(s, st);
		return;
	}
	/* 1:1 conversations: chat and normal messages with a body. */
	if (!stanza_is(st, "message") || !xml_child(st, "body", NS_CLIENT) ||
	    (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0))
		return;
	peer = cont_bare_of(xml_attr(st, out ? "to" : "from"));
	if (peer && s->acct && strcmp(peer, s->acct->bare) != 0) {
		cont_note_conv(s, peer);
		if (out) {
			struct cacct *ca = ca_of(s->acct);
			struct bound *b = hmap_get(&ca->bind, peer);

			/* R5: whom the account writes to may write back. */
			cont_note_participant(ca, peer);
			/* The conversation follows the device the person last wrote from. */
			if (b && strcmp(b->to, s->resource) != 0)
				cont_bind_conv(ca, peer, s->resource, b->to);
		}
	}
	free(peer);
}

/* ---- the routing a move leaves behind ---- */

/*
 * The binding in m that a message from 'from' to 'to' follows, or NULL. To the bare JID,
 * or to the device the conversation moved away from (a client that locked onto that full
 * JID, XEP-0296), a message goes where the conversation is; to any other full JID, where
 * it was addressed.
 */
struct bound *
cont_followed(struct hmap *m, const struct jid *to, const struct jid *from)
{
	struct bound *b;
	char *peer;

	if (!m->count || !from)
		return NULL;
	peer = jid_bare(from);
	b = hmap_get(m, peer);
	free(peer);
	if (b && (!to->resource || (b->from && strcmp(to->resource, b->from) == 0)))
		return b;
	return NULL;
}

static struct session *
cont_target(struct account *a, const struct xml_node *st, const struct jid *to,
	    const struct jid *from)
{
	struct cacct *ca = a->ext[continuity_ext.slot];
	struct bound *b = ca ? cont_followed(&ca->bind, to, from) : NULL;
	struct session *s = b ? account_session_find(a, b->to) : NULL;

	return s && s->state == SS_ACTIVE ? s : NULL;
}

/* ---- devices coming and going ---- */

/* The server pushes everything src has open to s (a trigger fired), moved, to accept. */
void
xfer_auto_offer(struct session *src, struct session *s)
{
	char *bad = NULL;
	struct xfer *x = xfer_new(s->acct, src->full);

	x->target = xstrdup(s->full);
	xfer_collect(x, src, NULL, &bad);
	free(bad);
	if (x->n)
		xfer_launch(x, s, NULL);
	else
		xfer_end(x);
}

static void
cont_bound(struct session *s, const struct xml_node *bind_iq)
{
	struct account *a = s->acct;
	struct cacct *ca = a->ext[continuity_ext.slot];
	struct session *src;

	if (!ca)
		return;
	if (ca->restore)
		xfer_restore(a);
	struct csess *cs = s->ext[continuity_ext.slot];
	if (cs && cs->via_key) {
		/* R33: it logged in with a transfer's key: that transfer is for it. */
		struct xfer *x = xfer_find(a, cs->via_key);
		free(cs->via_key);
		cs->via_key = NULL;
		if (x && x->state == X_WAITING) {
			x->key[0] = '\0'; /* used: no challenge can redeem it now */
			x->target = xstrdup(s->full);
			xfer_offer(x, s);
		}
	}
	/* R14, claims 9/10/15: connecting is the trigger: A's sessions are offered to B. */
	if (ca->auto_transfer_on_connect && bind_iq && (src = cont_other_device(s)))
		xfer_auto_offer(src, s);
	/* R12: transfers waiting for this device (or for "my next device") are offered now. */
	for (struct xfer *x = ca->xfers, *next; x; x = next) {
		next = x->next;
		if (x->state != X_WAITING || !x->target)
			continue;
		if (strcmp(x->target, s->full) == 0 ||
		    (strcmp(x->target, a->bare) == 0 && (!x->source || strcmp(x->source, s->full))))
			xfer_offer(x, s);
	}
}

static void
cont_session_end(struct session *s)
{
	struct account *a = s->acct;
	struct cacct *ca = a->ext[continuity_ext.slot];
	const char *k;
	void *v;
	char *gone[64];
	size_t n = 0;

	if (!ca)
		return;
	/* R36: a target that goes before accepting changes nothing; A is told. */
	for (struct xfer *x = ca->xfers, *next; x; x = next) {
		next = x->next;
		if ((x->state == X_OFFERED || x->state == X_BUILDING) && x->offered_to &&
		    strcmp(x->offered_to, s->full) == 0) {
			xfer_fail(x, "target-disconnected");
		}
	}
	/* Conversations held by this device go back to the usual routing. */
	do {
		n = 0;
		for (size_t it = 0; n < 64 && hmap_next(&ca->bind, &it, &k, &v);)
			if (strcmp(((struct bound *)v)->to, s->resource) == 0)
				gone[n++] = xstrdup(k);
		for (size_t i = 0; i < n; i++) {
			cont_bound_free(hmap_del(&ca->bind, gone[i]));
			free(gone[i]);
		}
	} while (n == 64);
}

static void
cont_session_free(struct session *s)
{
	struct csess *cs = s->ext[continuity_ext.slot];

	if (!cs)
		return;
	hmap_free_all(&cs->convs, free);
	hmap_free_all(&cs->seats, cont_seat_free);
	hmap_free_all(&cs->prefs, cont_free_prefs);
	free(cs->via_key);
	free(cs->device);
	free(cs->media);
	free(cs);
	s->ext[continuity_ext.slot] = NULL;
}

static void
cont_account_free(struct account *a)
{
	struct cacct *ca = a->ext[continuity_ext.slot];

	if (!ca)
		return;
	while (ca->xfers) {
		struct xfer *x = ca->xfers;
		ca->xfers = x->next;
		timer_stop(a->w->loop, &x->ttl);
		if (x->jobs)
			x->dead = true;
		else
			xfer_free(x);
	}
	hmap_free_all(&ca->bind, cont_bound_free);
	hmap_free_all(&ca->redirect, cont_bound_free);
	xml_free(ca->restore);
	while (ca->waits) {
		struct done_wait *w = ca->waits;
		ca->waits = w->next;
		cont_done_wait_free(w);
	}
	hmap_free_all(&ca->pulls, free);
	hmap_free(&ca->participants);
	hmap_free_all(&ca->asked, free);
	free(ca->handover_to);
	free(ca);
	a->ext[continuity_ext.slot] = NULL;
}

void
continuity_take_over(struct session *from, struct session *to)
{
	struct csess *fcs = from->ext[continuity_ext.slot], *tcs = cs_of(to);
	struct cacct *ca = ca_of(from->acct);
	const char *k;
	void *v;

	for (size_t it = 0; fcs && hmap_next(&fcs->seats, &it, &k, &v);) {
		cont_seat_request(from->acct, k, from->full, to->full, false, NULL, "cont-seat");
		if (!hmap_get(&tcs->seats, k)) {
			struct seat *st = v, *ns = xcalloc(1, sizeof *ns);
			ns->nick = xstrdup(st->nick);
			ns->role = xstrdup(st->role);
			ns->priority = st->priority;
			hmap_put(&tcs->seats, k, ns);
		}
	}
	if (fcs)
		hmap_free_all(&fcs->seats, cont_seat_free);
	for (size_t it = 0; fcs && hmap_next(&fcs->convs, &it, &k, &v);) {
		if (!hmap_get(&tcs->convs, k)) {
			struct conv *c = xmalloc(sizeof *c);
			*c = *(struct conv *)v;
			hmap_put(&tcs->convs, k, c);
		}
	}
	for (size_t it = 0; fcs && hmap_next(&fcs->prefs, &it, &k, &v);)
		if (!hmap_get(&tcs->prefs, k))
			hmap_put(&tcs->prefs, k, xml_copy(v));
	for (size_t it = 0; hmap_next(&ca->bind, &it, &k, &v);) {
		struct bound *b = v;
		if (strcmp(b->to, from->resource) == 0) {
			free(b->to);
			b->to = xstrdup(to->resource);
		}
	}
}

/*
 * R5: with participation='ask', a chat from someone the account has not accepted (or written
 * to) waits in storage, and the account's devices get a participation request instead; the
 * answer (cont_participation) delivers it or tells the sender.
 */
static int
cont_barred(struct account *a, const struct xml_node *st)
{
	struct cacct *ca = a->ext[continuity_ext.slot];
	const char *type = xml_attr(st, "type");
	char *peer;
	int keep = 0;

	if (!ca || !ca->ask_participation || !xml_child(st, "body", NS_CLIENT) ||
	    (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0))
		return 0;
	peer = cont_bare_of(xml_attr(st, "from"));
	if (!peer || strcmp(peer, a->bare) == 0 || hmap_get(&ca->participants, peer) ||
	    strchr(peer, '@') == NULL) {
		free(peer);
		return 0;
	}
	/* Asked of a person who is there: with no device available it is an offline message. */
	for (struct session *s = a->sessions; s && !keep; s = s->acct_next)
		keep = s->available;
	if (keep && !hmap_get(&ca->asked, peer)) {
		char id[17];
		struct xml_node *m, *p;
		struct buf v = {0};
		rand_id(id, 16);
		/* "id full-JID": the full JID, because an error to a bare JID is dropped (RFC 6121
		 * 8.5.2.1.1) and a decline must reach the sender. */
		buf_printf(&v, "%s %s", id, xml_attr(st, "from"));
		hmap_put(&ca->asked, peer, buf_steal(&v));
		m = stanza_new("message", a->bare, a->bare, "normal", id);
		p = xml_add_el(m, "participate", NS_CONT);
		xml_set_attr(p, "id", id);
		xml_set_attr(p, "from", xml_attr(st, "from"));
		for (struct session *s = a->sessions; s; s = s->acct_next)
			if (s->available)
				session_send(s, m);
		xml_free(m);
		log_info("continuity %s: asked whether %s may start a conversation", a->bare, peer);
	}
	free(peer);
	return keep;
}

struct xmpp_ext continuity_ext = {
    .ns = NS_CONT,
    .iq = cont_iq,
    .seen = cont_seen,
    .target = cont_target,
    .bound = cont_bound,
    .session_end = cont_session_end,
    .session_free = cont_session_free,
    .account_free = cont_account_free,
    .load = cont_load,
    .redirect = cont_redirect,
    .account_iq = cont_account_iq,
    .result_prefix = "cont-seat-",
    .auth_token = cont_auth_token,
    .adapt = cont_adapt,
    .barred = cont_barred,
};
