/*
 * presence: availability broadcast and the subscription state machine of RFC 6121
 * sections 3 and 4. Outbound handling runs on the sender's home worker, inbound on
 * the recipient's; each side changes only its own account's roster, and the two
 * meet through stanzas routed between them, as two servers would.
 *
 * Invariant: a roster item's subscription only moves as the tables of RFC 6121
 * appendix A allow, every visible change is persisted and pushed, and a request
 * waiting for an answer (pending_in) survives the user being offline.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define SUB_TO	 STORE_SUB_TO
#define SUB_FROM STORE_SUB_FROM

static bool
type_is(const struct xml_node *st, const char *type)
{
	const char *t = xml_attr(st, "type");
	if (!type)
		return t == NULL;
	return t && strcmp(t, type) == 0;
}

/* Routes a copy of st addressed to `to`, from `from`. */
static void
send_copy(struct worker *w, const struct xml_node *st, const char *from, const char *to)
{
	struct xml_node *c = xml_copy(st);

	xml_set_attr(c, "from", from);
	xml_set_attr(c, "to", to);
	route(w, c);
}

/* Sends a bodiless presence of type `type` from `from` to `to`. */
static void
send_presence(struct worker *w, const char *from, const char *to, const char *type)
{
	route(w, stanza_new("presence", from, to, type, NULL));
}

/* Delivers st to every available resource of a (RFC 6121 8.5.2.1.2). */
static void
deliver_available(struct account *a, const struct xml_node *st)
{
	for (struct session *s = a->sessions; s; s = s->acct_next) {
		if (s->available)
			session_send(s, st);
	}
}

static void
save_and_push(struct account *a, struct roster_item *it)
{
	account_roster_save(a, it, false);
	if (!it->hidden)
		roster_push(a, it, false);
}

static int
presence_priority(const struct xml_node *st)
{
	struct xml_node *p = xml_child(st, "priority", NS_CLIENT);
	long v = 0;

	if (p) {
		char *text = xml_text(p);
		v = strtol(text, NULL, 10);
		free(text);
	}
	return v < -128 ? -128 : v > 127 ? 127 : (int)v; /* RFC 6121 4.7.2.3 */
}

/* ---- broadcast (RFC 6121 4.2 - 4.5) ---- */

static void
broadcast_to_subscribers(struct session *s, const struct xml_node *st)
{
	struct account *a = s->acct;
	const char *k;
	void *v;

	for (size_t i = 0; hmap_next(&a->roster, &i, &k, &v);) {
		struct roster_item *it = v;
		if ((it->sub & SUB_FROM) && !block_matches_str(a, it->contact))
			send_copy(s->w, st, s->full, it->contact);
	}
	/*
	 * The user's available resources see it too, the sender included: an entity is
	 * implicitly subscribed to its own presence (RFC 6121 4.2.2, 4.4.2).
	 */
	for (struct session *o = a->sessions; o; o = o->acct_next) {
		if (o->available) {
			struct xml_node *c = xml_copy(st);
			xml_set_attr(c, "from", s->full);
			xml_set_attr(c, "to", o->full);
			session_send(o, c);
			xml_free(c);
		}
	}
}

static void
initial_presence(struct session *s)
{
	struct account *a = s->acct;
	const char *k;
	void *v;

	/* RFC 6121 4.2.2: probe every contact the user is subscribed to. */
	for (size_t i = 0; hmap_next(&a->roster, &i, &k, &v);) {
		struct roster_item *it = v;
		if (it->sub & SUB_TO)
			send_presence(s->w, s->full, it->contact, "probe");
	}
	/* ...and tell the new resource about the user's other available resources. */
	for (struct session *o = a->sessions; o; o = o->acct_next) {
		if (o != s && o->available && o->presence) {
			struct xml_node *c = xml_copy(o->presence);
			xml_set_attr(c, "to", s->full);
			session_send(s, c);
			xml_free(c);
		}
	}
	for (size_t i = 0; hmap_next(&a->devices, &i, &k, &v);) {
		struct xml_node *c = xml_copy(v);
		xml_set_attr(c, "to", s->full);
		session_send(s, c);
		xml_free(c);
	}
	presence_send_pending(s);
}

void
presence_send_pending(struct session *s)
{
	struct account *a = s->acct;
	const char *k;
	void *v;

	/* RFC 6121 3.1.3: a request stored while the user was away is delivered now. */
	for (size_t i = 0; hmap_next(&a->roster, &i, &k, &v);) {
		struct roster_item *it = v;
		if (it->pending_in) {
			struct xml_node *p =
			    stanza_new("presence", it->contact, a->bare, "subscribe", NULL);
			session_send(s, p);
			xml_free(p);
		}
	}
}

static void
broadcast(struct session *s, struct xml_node *st)
{
	const char *k;
	void *v;

	if (type_is(st, "unavailable")) {
		if (s->available) {
			broadcast_to_subscribers(s, st);
			/* RFC 6121 4.6.3: those who got directed presence learn we left. */
			for (size_t i = 0; hmap_next(&s->directed, &i, &k, &v);)
				send_copy(s->w, st, s->full, k);
		}
		if (s->available)
			pep_presence_own(s, NULL);
		s->available = false;
		xml_free(s->presence);
		s->presence = NULL;
		hmap_free(&s->directed);
		xml_free(st);
		return;
	}
	bool initial = !s->available;
	s->available = true;
	s->priority = presence_priority(st);
	xml_set_attr(st, "to", NULL);
	xml_free(s->presence);
	s->presence = st;
	broadcast_to_subscribers(s, st);
	if (initial) {
		initial_presence(s);
		offline_deliver(s);
	}
	pep_presence_own(s, st); /* XEP-0163 4.3.2: the last items it is interested in */
}

void
presence_session_end(struct session *s)
{
	struct xml_node *p;

	if (!s->available || !s->acct || s->w->stopping)
		return;
	/* RFC 6121 4.5.2: the server sends unavailable presence on the user's behalf. */
	p = stanza_new("presence", s->full, NULL, "unavailable", NULL);
	broadcast(s, p);
}

void
presence_unavailable_for(struct account *a, const char *full, const struct hmap *directed)
{
	const char *k;
	void *v;

	/* RFC 6121 4.5.2, for a resource whose session is already gone. */
	for (size_t i = 0; hmap_next(&a->roster, &i, &k, &v);) {
		struct roster_item *it = v;
		if ((it->sub & SUB_FROM) && !block_matches_str(a, it->contact))
			send_presence(a->w, full, it->contact, "unavailable");
	}
	for (size_t i = 0; directed && hmap_next(directed, &i, &k, &v);)
		send_presence(a->w, full, k, "unavailable");
	for (struct session *o = a->sessions; o; o = o->acct_next)
		if (o->available)
			send_presence(a->w, full, o->full, "unavailable");
}

/* ---- outbound subscription handling (RFC 6121 3.1.2, 3.2.2, 3.3.2, 3.4.2) ---- */

static void
send_current_presence(struct account *a, const char *to)
{
	const char *k;
	void *v;

	for (struct session *s = a->sessions; s; s = s->acct_next) {
		if (s->available && s->presence)
			send_copy(a->w, s->presence, s->full, to);
	}
	for (size_t i = 0; hmap_next(&a->devices, &i, &k, &v);)
		send_copy(a->w, v, k, to);
}

void (*device_drop)(struct worker *w, const char *bare, const char *full);

void
presence_device(struct account *a, const char *full, struct xml_node *st)
{
	const char *k;
	void *v;
	struct xml_node *old = hmap_del(&a->devices, full);

	xml_free(old);
	if (!st) {
		if (old)
			presence_unavailable_for(a, full, NULL);
		account_maybe_unload(a);
		return;
	}
	xml_set_attr(st, "from", full);
	hmap_put(&a->devices, full, st);
	for (struct xmpp_ext **e = xmpp_exts; *e; e++) /* identity: it may supersede sessions */
		if ((*e)->device)
			(*e)->device(a, full, true);
	/* RFC 6121 4.2.2 as for a resource: the subscribers, and the account's own resources. */
	for (size_t i = 0; hmap_next(&a->roster, &i, &k, &v);) {
		struct roster_item *it = v;
		if ((it->sub & SUB_FROM) && !block_matches_str(a, it->contact))
			send_copy(a->w, st, full, it->contact);
	}
	for (struct session *o = a->sessions; o; o = o->acct_next)
		if (o->available)
			send_copy(a->w, st, full, o->full);
}

static void
send_unavailable_from_all(struct account *a, const char *to)
{
	for (struct session *s = a->sessions; s; s = s->acct_next) {
		if (s->available)
			send_presence(a->w, s->full, to, "unavailable");
	}
}

static void
subscription_out(struct session *s, struct xml_node *st, const char *contact)
{
	struct account *a = s->acct;
	struct roster_item *it = account_roster_get(a, contact);
	const char *type = xml_attr(st, "type");

	/* RFC 6121 3.1.2: the request leaves with the user's bare JID. */
	xml_set_attr(st, "from", a->bare);
	xml_set_attr(st, "to", contact);
	if (strcmp(type, "subscribe") == 0) {
		bool changed = false;
		if (!it)
			it = account_roster_add(a, contact);
		if (it->hidden) {
			it->hidden = false;
			changed = true;
		}
		if (!(it->sub & SUB_TO) && !it->ask) {
			it->ask = true;
			changed = true;
		}
		if (changed)
			save_and_push(a, it);
		route(s->w, st);
	} else if (strcmp(type, "subscribed") == 0) {
		/* Pre-approval (RFC 6121 3.4) is not offered: without a request, ignore. */
		if (!it || !it->pending_in) {
			xml_free(st);
			return;
		}
		it->pending_in = false;
		it->sub |= SUB_FROM;
		it->hidden = false;
		save_and_push(a, it);
		route(s->w, st);
		send_current_presence(a, contact); /* RFC 6121 3.1.5 */
	} else if (strcmp(type, "unsubscribe") == 0) {
		if (it && ((it->sub & SUB_TO) || it->ask)) {
			it->sub &= ~SUB_TO;
			it->ask = false;
			save_and_push(a, it);
		}
		route(s->w, st);
	} else { /* unsubscribed: cancel or deny the contact's subscription */
		if (!it || (!it->pending_in && !(it->sub & SUB_FROM))) {
			xml_free(st);
			return;
		}
		bool had_from = it->sub & SUB_FROM;
		it->pending_in = false;
		it->sub &= ~SUB_FROM;
		if (it->hidden) {
			account_roster_save(a, it, true);
			account_roster_del(a, contact);
		} else {
			save_and_push(a, it);
		}
		route(s->w, st);
		if (had_from)
			send_unavailable_from_all(a, contact); /* RFC 6121 3.2.2 */
	}
}

void
presence_outbound(struct session *s, struct xml_node *st)
{
	const char *to = xml_attr(st, "to");
	const char *type = xml_attr(st, "type");
	struct jid j;

	if (!type)
		pep_presence_out(s, st); /* XEP-0398 section 4, directed presence too */
	if (!to) {
		if (!type || strcmp(type, "unavailable") == 0)
			broadcast(s, st);
		else
			xml_free(st);
		return;
	}
	if (jid_parse(to, &j) < 0) {
		route_error(s->w, st, "modify", "jid-malformed", NULL);
		xml_free(st);
		return;
	}
	if (type && (strcmp(type, "subscribe") == 0 || strcmp(type, "subscribed") == 0 ||
		     strcmp(type, "unsubscribe") == 0 || strcmp(type, "unsubscribed") == 0)) {
		char *contact = jid_bare(&j);
		jid_free(&j);
		if (strcmp(contact, s->bare) == 0)
			xml_free(st); /* a subscription to oneself means nothing */
		else
			subscription_out(s, st, contact);
		free(contact);
		return;
	}
	/* Directed presence (RFC 6121 4.6): remember who must hear about our leaving. */
	if (!type && s->available) {
		char *full = jid_full(&j);
		hmap_put(&s->directed, full, s);
		free(full);
	} else if (type && strcmp(type, "unavailable") == 0) {
		char *full = jid_full(&j);
		hmap_del(&s->directed, full);
		free(full);
	}
	jid_free(&j);
	route(s->w, st);
}

/* ---- inbound (RFC 6121 3.1.3, 3.1.6, 3.2.3, 3.3.3, 4.3.2) ---- */

static void
probe_in(struct account *a, const struct jid *from)
{
	char *bare = jid_bare(from);
	char *full = jid_full(from);
	struct roster_item *it = account_roster_get(a, bare);

	/* Only subscribers learn our presence; others get nothing (RFC 6121 4.3.2). */
	if (it && (it->sub & SUB_FROM))
		send_current_presence(a, full);
	free(bare);
	free(full);
}

static void
subscription_in(struct account *a, struct xml_node *st, const char *contact)
{
	struct roster_item *it = account_roster_get(a, contact);
	const char *type = xml_attr(st, "type");

	xml_set_attr(st, "from", contact);
	xml_set_attr(st, "to", a->bare);
	if (strcmp(type, "subscribe") == 0) {
		if (it && (it->sub & SUB_FROM)) {
			/* Already approved: answer for the user (RFC 6121 3.1.3). */
			send_presence(a->w, a->bare, contact, "subscribed");
			return;
		}
		if (!it)
			it = account_roster_add(a, contact);
		if (!it->pending_in) {
			it->pending_in = true;
			account_roster_save(a, it, false);
		}
		deliver_available(a, st);
	} else if (strcmp(type, "subscribed") == 0) {
		if (it && (it->sub & SUB_TO) && !it->ask) {
			/* The contact's server confirming a subscription we already have. */
			deliver_available(a, st);
			return;
		}
		if (!it || !it->ask)
			return; /* RFC 6121 3.1.6: unsolicited approvals are ignored */
		it->ask = false;
		it->sub |= SUB_TO;
		save_and_push(a, it);
		deliver_available(a, st);
	} else if (strcmp(type, "unsubscribe") == 0) {
		if (!it || (!(it->sub & SUB_FROM) && !it->pending_in))
			return;
		bool had_from = it->sub & SUB_FROM;
		it->sub &= ~SUB_FROM;
		it->pending_in = false;
		if (it->hidden) {
			account_roster_save(a, it, true);
			account_roster_del(a, contact);
		} else {
			save_and_push(a, it);
		}
		deliver_available(a, st);
		if (had_from)
			send_unavailable_from_all(a, contact); /* RFC 6121 3.3.3 */
	} else {					       /* unsubscribed */
		if (!it || (!(it->sub & SUB_TO) && !it->ask))
			return;
		it->sub &= ~SUB_TO;
		it->ask = false;
		save_and_push(a, it);
		deliver_available(a, st);
	}
}

void
presence_inbound(struct account *a, struct xml_node *st, const struct jid *to,
		 const struct jid *from)
{
	const char *type = xml_attr(st, "type");

	if (!type || strcmp(type, "unavailable") == 0) {
		char *full = jid_full(from);
		pep_presence_in(a, type ? NULL : st, full); /* XEP-0163 4.3.2 */
		free(full);
	}
	if (type && strcmp(type, "probe") == 0) {
		probe_in(a, from);
	} else if (type &&
		   (strcmp(type, "subscribe") == 0 || strcmp(type, "subscribed") == 0 ||
		    strcmp(type, "unsubscribe") == 0 || strcmp(type, "unsubscribed") == 0)) {
		char *contact = jid_bare(from);
		subscription_in(a, st, contact);
		free(contact);
	} else if (to->resource) {
		struct session *s = account_session_find(a, to->resource);
		if (s)
			session_send(s, st);
	} else {
		deliver_available(a, st);
	}
	xml_free(st);
}
