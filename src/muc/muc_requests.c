/*
 * muc_requests: what occupants ask of each other and of the room beyond talking: iqs
 * relayed to an occupant through its room JID (vCards, software version, pings), voice
 * requests in moderated rooms (XEP-0045 7.13, 8.6), registration with a room (7.10), the
 * notice of a configuration change (status 104, 10.2.1), and what device continuity asks
 * of a room (urn:baton:continuity:0): moving or sharing a seat, reserving one.
 *
 * Invariant: a relayed iq carries an id of the room's making; its answer is accepted only
 * from the occupant it was sent to and goes back only to the occupant who asked, under the
 * id it asked with. Real JIDs never leak through a relay in a semi-anonymous room.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muc_int.h"

#define NS_REQUEST   "http://jabber.org/protocol/muc#request"
#define NS_REGISTER  "jabber:iq:register"
#define NS_VCARD     "vcard-temp"
#define RELAY_MAX    256   /* iqs in flight through one room */
#define RELAY_TTL_MS 60000 /* an answer later than this finds nothing to answer */

static void
add_text(struct xml_node *el, const char *text)
{
	xml_add_text(el, text, strlen(text));
}

struct relay {
	char *asker;	  /* real full JID of the occupant who asked */
	char *asker_nick; /* its nick then */
	char *id;	  /* the id it asked with */
	char *target;	  /* the real JID the request went to */
	char *target_nick;
	uint64_t at;
};

static void
relay_free(struct relay *rl)
{
	free(rl->asker);
	free(rl->asker_nick);
	free(rl->id);
	free(rl->target);
	free(rl->target_nick);
	free(rl);
}

/* Forgets relays nobody answered in time. */
static void
relays_expire(struct room *r)
{
	uint64_t now = now_ms();
	const char *k;
	void *v;
	char *gone[RELAY_MAX];
	size_t n = 0;

	for (size_t it = 0; n < RELAY_MAX && hmap_next(&r->relays, &it, &k, &v);) {
		if (((struct relay *)v)->at + RELAY_TTL_MS < now)
			gone[n++] = xstrdup(k);
	}
	for (size_t i = 0; i < n; i++) {
		relay_free(hmap_del(&r->relays, gone[i]));
		free(gone[i]);
	}
}

void
muc_relays_free(struct room *r)
{
	const char *k;
	void *v;

	for (size_t it = 0; hmap_next(&r->relays, &it, &k, &v);)
		relay_free(v);
	hmap_free(&r->relays);
}

/*
 * An iq request to room/nick: to the occupant's real JID, from the asker's room JID, under
 * an id of ours. A vCard is the account's, so it is asked of the bare JID (XEP-0054 3.1:
 * vCards belong to bare JIDs).
 */
static void
relay_request(struct room *r, struct xml_node *st, struct occupant *asker, const char *nick)
{
	struct occupant *t = muc_by_nick(r, nick);
	struct xml_node *q = xml_child(st, NULL, NULL);
	struct relay *rl;
	char id[24];

	if (!asker) {
		muc_error(r, st, "modify", "not-acceptable"); /* occupants only, as for 7.5 */
		return;
	}
	if (!t) {
		muc_error(r, st, "cancel", "item-not-found");
		return;
	}
	relays_expire(r);
	if (r->relays.count >= RELAY_MAX) {
		muc_error(r, st, "wait", "resource-constraint");
		return;
	}
	rl = xcalloc(1, sizeof *rl);
	rl->asker = xstrdup(xml_attr(st, "from"));
	rl->asker_nick = xstrdup(asker->nick);
	rl->id = xstrdup(xml_attr(st, "id"));
	rl->target = xstrdup(q && strcmp(q->ns, NS_VCARD) == 0 ? t->bare : t->jid);
	rl->target_nick = xstrdup(t->nick);
	rl->at = now_ms();
	rand_id(id, 16);
	hmap_put(&r->relays, id, rl);
	char *from = muc_nick_jid(r, asker->nick);
	xml_set_attr(st, "from", from);
	xml_set_attr(st, "to", rl->target);
	xml_set_attr(st, "id", id);
	free(from);
	route(r->w, st);
}

/* The answer to a relayed iq, addressed to the asker's room JID. */
static void
relay_response(struct room *r, struct xml_node *st, const char *from)
{
	const char *id = xml_attr(st, "id");
	struct relay *rl = id ? hmap_get(&r->relays, id) : NULL;

	if (!rl || strcmp(rl->target, from) != 0) {
		xml_free(
		    st); /* not ours to answer, or from someone else: dropped (RFC 6120 8.2.3) */
		return;
	}
	hmap_del(&r->relays, id);
	char *tfrom = muc_nick_jid(r, rl->target_nick);
	xml_set_attr(st, "from", tfrom);
	xml_set_attr(st, "to", rl->asker);
	xml_set_attr(st, "id", rl->id);
	free(tfrom);
	relay_free(rl);
	route(r->w, st);
}

bool
muc_occupant_iq(struct room *r, struct xml_node *st, const struct jid *to, const char *from)
{
	const char *type = xml_attr(st, "type");

	if (!to->resource || !type)
		return false;
	if (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) {
		relay_response(r, st, from);
	} else if (strcmp(type, "get") == 0 && xml_child(st, "ping", "urn:xmpp:ping")) {
		/*
		 * XEP-0410 section 3: a ping to one's own occupant JID is answered by the room:
		 * a result while joined with that nick, not-acceptable when not an occupant.
		 * A ping to someone else's nick is relayed like any iq.
		 */
		struct occupant *me = muc_by_jid(r, from);
		if (!me)
			muc_error(r, st, "cancel", "not-acceptable");
		else if (strcmp(me->nick, to->resource) == 0)
			muc_reply(r, st, NULL);
		else
			relay_request(r, st, me, to->resource);
	} else {
		relay_request(r, st, muc_by_jid(r, from), to->resource);
	}
	return true;
}

/* ---- voice requests (XEP-0045 7.13 and 8.6) ---- */

static const char *
form_value(const struct xml_node *x, const char *var)
{
	for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f;
	     f = xml_next(f, "field", NS_XDATA)) {
		if (xml_attr(f, "var") && strcmp(xml_attr(f, "var"), var) == 0) {
			struct xml_node *v = xml_child(f, "value", NS_XDATA);
			return v && v->first && !v->first->name ? v->first->text : "";
		}
	}
	return NULL;
}

static void
field(struct xml_node *x, const char *var, const char *type, const char *label, const char *value)
{
	struct xml_node *f = xml_add_el(x, "field", NULL);

	xml_set_attr(f, "var", var);
	if (type)
		xml_set_attr(f, "type", type);
	if (label)
		xml_set_attr(f, "label", label);
	if (value) {
		struct xml_node *v = xml_add_el(f, "value", NULL);
		xml_add_text(v, value, strlen(value));
	}
}

/* The muc#request form of a message, or NULL. */
static struct xml_node *
request_form(const struct xml_node *st)
{
	for (struct xml_node *x = xml_child(st, "x", NS_XDATA); x; x = xml_next(x, "x", NS_XDATA)) {
		const char *ft = form_value(x, "FORM_TYPE");
		if (ft && strcmp(ft, NS_REQUEST) == 0)
			return x;
	}
	return NULL;
}

bool
muc_voice_request(struct room *r, struct xml_node *st, struct occupant *o)
{
	struct xml_node *x = request_form(st);

	if (!x)
		return false;
	if (o->role >= ROLE_MODERATOR) {
		/* 8.6: a moderator's answer: the submitted form, approving or not. */
		const char *nick = form_value(x, "muc#roomnick");
		const char *allow = form_value(x, "muc#request_allow");
		struct occupant *t = nick ? muc_by_nick(r, nick) : NULL;
		if (t && allow && (strcmp(allow, "true") == 0 || strcmp(allow, "1") == 0) &&
		    t->role == ROLE_VISITOR) {
			t->role = ROLE_PARTICIPANT;
			muc_broadcast_presence(r, t, NULL, NULL, 0, NULL, 0);
		}
		xml_free(st);
		return true;
	}
	if (o->role != ROLE_VISITOR || !r->cfg.moderated) {
		muc_error(r, st, "modify", "not-acceptable"); /* has voice already */
		return true;
	}
	/* 7.13: every moderator gets the request as a form to approve. */
	for (struct occupant *m = r->occupants; m; m = m->next) {
		if (m->role < ROLE_MODERATOR)
			continue;
		struct xml_node *msg = stanza_new("message", r->jid, m->jid, NULL, NULL);
		struct xml_node *f = xml_add_el(msg, "x", NS_XDATA);
		xml_set_attr(f, "type", "form");
		add_text(xml_add_el(f, "title", NULL), "Voice request");
		field(f, "FORM_TYPE", "hidden", NULL, NS_REQUEST);
		field(f, "muc#role", "list-single", "Requested role", "participant");
		field(f, "muc#jid", "jid-single", "User ID", o->jid);
		field(f, "muc#roomnick", "text-single", "Room Nickname", o->nick);
		field(f, "muc#request_allow", "boolean", "Grant voice to this person?", "false");
		route(r->w, msg);
	}
	xml_free(st);
	return true;
}

/* ---- registration (XEP-0045 7.10) ---- */

void
muc_register_iq(struct room *r, struct xml_node *st, const char *bare)
{
	const char *type = xml_attr(st, "type");
	int aff = muc_aff_of(r, bare);
	struct xml_node *q = xml_el_new("query", NS_REGISTER);

	if (aff == AFF_OUTCAST) {
		xml_free(q);
		muc_error(r, st, "auth", "forbidden");
		return;
	}
	if (strcmp(type, "get") == 0) {
		if (aff >= AFF_MEMBER) {
			xml_add_el(q, "registered", NULL); /* 7.10: already a member */
		} else {
			struct xml_node *x = xml_add_el(q, "x", NS_XDATA);
			xml_set_attr(x, "type", "form");
			add_text(xml_add_el(x, "title", NULL), "Register with the room");
			field(x, "FORM_TYPE", "hidden", NULL,
			      "http://jabber.org/protocol/muc#register");
			field(x, "muc#register_roomnick", "text-single", "Nickname", NULL);
		}
		muc_reply(r, st, q);
		return;
	}
	xml_free(q);
	struct xml_node *sq = xml_child(st, "query", NS_REGISTER);
	struct xml_node *x = sq ? xml_child(sq, "x", NS_XDATA) : NULL;
	const char *nick = x ? form_value(x, "muc#register_roomnick") : NULL;
	if (!nick || !*nick) {
		muc_error(r, st, "modify", "bad-request"); /* 7.10: the nick is required */
		return;
	}
	if (aff >= AFF_MEMBER) {
		muc_reply(r, st, NULL);
		return;
	}
	struct occupant *holder = muc_by_nick(r, nick);
	if (holder && strcmp(holder->bare, bare) != 0) {
		muc_error(r, st, "cancel", "conflict"); /* 7.10: the nick is someone else's */
		return;
	}
	if (r->cfg.members_only) {
		/* Members-only rooms take members from their admins (9.3), not by asking. */
		muc_error(r, st, "cancel", "registration-required");
		return;
	}
	muc_set_aff(r, bare, AFF_MEMBER);
	for (struct occupant *o = r->occupants; o; o = o->next) {
		if (strcmp(o->bare, bare) == 0)
			muc_broadcast_presence(r, o, NULL, NULL, 0, NULL, 0);
	}
	muc_reply(r, st, NULL);
}

/* ---- 10.2.1: occupants learn that the configuration changed ---- */

void
muc_config_changed(struct room *r)
{
	for (struct occupant *o = r->occupants; o; o = o->next) {
		struct xml_node *m = stanza_new("message", r->jid, o->jid, "groupchat", NULL);
		struct xml_node *x = xml_add_el(m, "x", NS_MUC_USER);
		xml_set_attr(xml_add_el(x, "status", NULL), "code", "104");
		route(r->w, m);
	}
}

/* ---- device continuity (PROTOCOL.md 1): seats that move, seats held ---- */

#define NS_CONT "urn:baton:continuity:0"

size_t
muc_reserved(struct room *r)
{
	uint64_t now = now_ms();
	size_t n = 0;

	for (struct reservation **pp = &r->reserved; *pp;) {
		struct reservation *rv = *pp;
		if (rv->until <= now) { /* FIG. 18: released when its time is up */
			*pp = rv->next;
			free(rv->holder);
			free(rv);
			continue;
		}
		n++;
		pp = &rv->next;
	}
	return n;
}

bool
muc_take_reservation(struct room *r, const char *jid)
{
	char *bare = muc_bare_of(jid);
	bool taken = false;

	muc_reserved(r); /* drop the expired ones first */
	for (struct reservation **pp = &r->reserved; *pp; pp = &(*pp)->next) {
		struct reservation *rv = *pp;
		/* A bare holder is any device of the account (R29). */
		if (strcmp(rv->holder, jid) == 0 || strcmp(rv->holder, bare) == 0) {
			*pp = rv->next;
			free(rv->holder);
			free(rv);
			taken = true;
			break;
		}
	}
	free(bare);
	return taken;
}

void
muc_reservations_free(struct room *r)
{
	while (r->reserved) {
		struct reservation *rv = r->reserved;
		r->reserved = rv->next;
		free(rv->holder);
		free(rv);
	}
}

/*
 * From the server on behalf of an account (its bare JID, with the server's key, so no
 * client can send these itself): <seat jid= to= mode=move|copy notify=> moves the seat of
 * the device jid to the device to (or shares it), with no presence in the room; <reserve
 * for= ttl=> holds a seat, counted as taken, for a device that joins later.
 */
void
muc_continuity_iq(struct room *r, struct xml_node *st, const char *from)
{
	struct xml_node *q = xml_child(st, NULL, NULL);
	const char *key = xml_attr(q, "key");

	if (!key || strcmp(key, r->w->srv->key) != 0 || strchr(from, '/')) {
		muc_error(r, st, "cancel", "service-unavailable"); /* not for clients */
		return;
	}
	if (strcmp(q->name, "reserve") == 0) {
		const char *holder = xml_attr(q, "for");
		long ttl = xml_attr(q, "ttl") ? atol(xml_attr(q, "ttl")) : 60;
		struct reservation *rv = xcalloc(1, sizeof *rv);
		rv->holder = xstrdup(holder ? holder : from);
		rv->until = now_ms() + (uint64_t)(ttl > 0 ? ttl : 60) * 1000;
		rv->next = r->reserved;
		r->reserved = rv;
		muc_reply(r, st, NULL);
		return;
	}
	const char *jid = xml_attr(q, "jid"), *to = xml_attr(q, "to");
	const char *mode = xml_attr(q, "mode");
	struct occupant *o = jid ? muc_by_jid(r, jid) : NULL;
	struct xml_node *moved = xml_child(q, "moved", NS_CONT);

	if (strcmp(q->name, "seat") != 0 || !o || !to) {
		log_info("muc %s: no seat of %s to move", r->jid, jid ? jid : "(none)");
		muc_error(r, st, "cancel", "item-not-found");
		return;
	}
	log_info("muc %s: the seat of %s (%s) %s %s", r->jid, jid, o->nick,
		 mode && strcmp(mode, "copy") == 0 ? "shared with" : "moved to", to);
	if (muc_by_jid(r, to) != o) {
		/* The new device takes the seat (move) or shares it (copy): no leave, no join. */
		o->also = xrealloc(o->also, (o->nalso + 1) * sizeof *o->also);
		o->also[o->nalso++] = xstrdup(to);
	}
	if (!mode || strcmp(mode, "copy") != 0) {
		seat_unshare(o, jid);
		/* Handed to another account (R34): the seat is that account's now. */
		char *nb = muc_bare_of(o->jid);
		if (strcmp(nb, o->bare) != 0) {
			free(o->bare);
			o->bare = nb;
		} else {
			free(nb);
		}
	}
	if (moved) {
		/* Claims 23-28 and R30: with notify, every other occupant hears of the move. */
		for (struct occupant *t = r->occupants; t; t = t->next) {
			if (t == o)
				continue;
			struct xml_node *m = stanza_new("message", r->jid, NULL, NULL, NULL);
			xml_add_child(m, xml_copy(moved));
			muc_send(r, t, m);
		}
	}
	muc_reply(r, st, NULL);
}
