/*
 * router: where a stanza goes (RFC 6120 section 10, RFC 6121 section 8). A stanza
 * for user@domain is posted to that account's home worker and handled there with
 * the account loaded; stanzas for the domain itself are the server's; those for a
 * component's domain go to the component (component.c), anything else to another server
 * (s2s.c).
 *
 * Invariant: route() always consumes the stanza, and delivery to an account happens
 * only on its home worker, so the rules below read the account without locks.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

struct route_mail {
	struct mail mail;
	struct xml_node *st;
	int64_t stored;	     /* id of the stored copy (durable.c), 0 if none */
	struct inflight *fl; /* or delivered first, not stored (durable.c) */
	struct jid to, from;
	char *bare;
};

static void
route_free(struct worker *w, struct route_mail *rm)
{
	if (rm->fl) /* not routed after all (stopping): it is kept instead */
		durable_unrouted(w, rm->fl, rm->st);
	xml_free(rm->st);
	jid_free(&rm->to);
	jid_free(&rm->from);
	free(rm->bare);
	free(rm);
}

static void
route_deliver(struct account *a, void *arg)
{
	struct route_mail *rm = arg;

	if (rm->fl)
		durable_arrive(a, rm->st, &rm->to, &rm->from, rm->fl);
	else
		route_to_account(a, rm->st, &rm->to, &rm->from, rm->stored);
	rm->st = NULL;
	rm->fl = NULL;
	route_free(a->w, rm);
}

static void
route_arrive(struct worker *w, void *arg)
{
	struct route_mail *rm = arg;

	if (w->stopping) {
		route_free(w, rm);
		return;
	}
	account_with(w, rm->bare, route_deliver, rm);
}

static void route_with(struct worker *w, struct xml_node *st, int64_t stored, struct inflight *fl);

void
route(struct worker *w, struct xml_node *st)
{
	route_with(w, st, 0, NULL);
}

void
route_stored(struct worker *w, struct xml_node *st, int64_t stored)
{
	route_with(w, st, stored, NULL);
}

void
route_inflight(struct worker *w, struct xml_node *st, struct inflight *fl)
{
	route_with(w, st, 0, fl);
}

static void
route_with(struct worker *w, struct xml_node *st, int64_t stored, struct inflight *fl)
{
	struct server *srv = w->srv;
	const char *to_s = xml_attr(st, "to");
	const char *from_s = xml_attr(st, "from");
	struct route_mail *rm;
	struct jid to, from;

	if (atomic_load(&srv->stopping) || !to_s || !from_s || jid_parse(from_s, &from) < 0) {
		if (fl)
			durable_unrouted(w, fl, st);
		xml_free(st);
		return;
	}
	if (jid_parse(to_s, &to) < 0) {
		jid_free(&from);
		route_error(w, st, "modify", "jid-malformed", NULL); /* RFC 6120 8.3.3.8 */
		xml_free(st);
		return;
	}
	const struct xmpp_service *svc = server_service(srv, to.domain);
	if (svc) {
		jid_free(&from);
		svc->route(w, st, &to);
		jid_free(&to);
		return;
	}
	if (strcmp(to.domain, srv->cfg->domain) != 0) {
		/* RFC 6120 10.4: a component's domain, or another server's. */
		if (component_domain(srv, to.domain))
			component_route(w, st, &to);
		else
			s2s_route(w, st, &from, &to);
		jid_free(&to);
		jid_free(&from);
		return;
	}
	if (!to.local) {
		jid_free(&to);
		jid_free(&from);
		if (stanza_is(st, "iq"))
			iq_server(w, st);
		else
			xml_free(st); /* messages and presence to the server have no effect */
		return;
	}
	rm = xmalloc(sizeof *rm);
	rm->st = st;
	rm->stored = stored;
	rm->fl = fl;
	rm->to = to;
	rm->from = from;
	rm->bare = jid_bare(&to);
	worker_call(server_home(srv, rm->bare), route_arrive, rm);
}

void
route_error(struct worker *w, const struct xml_node *st, const char *type, const char *condition,
	    const char *text)
{
	struct xml_node *r;
	struct jid j;

	const char *t = xml_attr(st, "type");

	/* RFC 6120 8.2.3: results and errors are never answered, with errors least of all. */
	if (stanza_is_error(st) || !xml_attr(st, "from") ||
	    (stanza_is(st, "iq") && t && strcmp(t, "result") == 0))
		return;
	r = stanza_error_reply(st, type, condition, text);
	/* The error comes from the address the stanza was for, or from us if that was bad. */
	if (!xml_attr(st, "to") || jid_parse(xml_attr(st, "to"), &j) < 0)
		xml_set_attr(r, "from", w->srv->cfg->domain);
	else
		jid_free(&j);
	route(w, r);
}

struct session *
account_best_session(struct account *a)
{
	struct session *best = NULL;

	for (struct session *s = a->sessions; s; s = s->acct_next) {
		if (s->available && s->priority >= 0 && (!best || s->priority > best->priority))
			best = s;
	}
	return best;
}

/*
 * Writes st to s. A message with a stored copy (stored != 0) leaves storage once s has
 * it for sure: on s's XEP-0198 ack, or after offline.grace without stream management.
 */
static void
deliver_to(struct session *s, const struct xml_node *st, int64_t stored)
{
	session_send_stored(s, st, stored);
	if (stored > 0) {
		account_live(s->acct, stored, 1); /* not for offline delivery meanwhile */
		if (!s->sm_enabled)
			offline_grace_add(s, stored);
	} else if (stored < 0 && !s->sm_enabled) {
		durable_plain(s, stored); /* it is stored now, and waits offline.grace */
	}
	s->delivered = true;
}

/*
 * RFC 6121 8.5.2.1.1: a message to the bare JID goes to the available resources with
 * the highest non-negative priority (all of them when several share it); headlines go
 * to every available resource with non-negative priority. Returns how many got it.
 */
static int
deliver_bare_message(struct account *a, const struct xml_node *st, bool headline, int64_t stored)
{
	struct session *best = account_best_session(a);
	int n = 0;

	if (!best)
		return 0;
	for (struct session *s = a->sessions; s; s = s->acct_next) {
		if (!s->available || s->priority < 0)
			continue;
		if (!headline && s->priority != best->priority)
			continue;
		deliver_to(s, st, stored);
		n++;
	}
	return n;
}

/* After a delivery: the account's other resources get carbons, and the marks are cleared. */
static void
delivered(struct account *a, const struct xml_node *st)
{
	push_message(a, st); /* XEP-0357: only hibernating sessions (XEP-0198) may have it */
	carbons_received(a, st);
	for (struct session *s = a->sessions; s; s = s->acct_next)
		s->delivered = false;
}

/* What will happen to st, in XEP-0079's terms: direct, stored or none. */
static const char *
amp_outcome(struct account *a, const struct xml_node *st, struct session *exact, bool unstorable,
	    int64_t stored)
{
	if (exact || account_best_session(a))
		return "direct";
	if (stored || (!unstorable && offline_worth_storing(st) &&
		       !xml_child(st, "no-store", "urn:xmpp:hints")))
		return "stored";
	return "none";
}

/* st waits for a's next login (XEP-0160), unless it is stored already. */
static void
keep(struct account *a, const struct xml_node *st, int64_t stored)
{
	if (stored < 0)
		durable_keep(a->w, stored); /* delivered first, and now stored */
	else if (!stored)
		offline_store(a, st);
}

static void
message_to_account(struct account *a, struct xml_node *st, const struct jid *to,
		   const struct jid *from, int64_t stored)
{
	const char *type = xml_attr(st, "type");
	bool error = type && strcmp(type, "error") == 0;
	bool groupchat = type && strcmp(type, "groupchat") == 0;
	bool headline = type && strcmp(type, "headline") == 0;
	struct session *s = to->resource ? account_session_find(a, to->resource) : NULL;

	/* An extension may keep the message for later, or refuse it (identity: barring). */
	for (struct xmpp_ext **e = xmpp_exts; !error && !groupchat && !headline && *e; e++) {
		int b = (*e)->barred ? (*e)->barred(a, st) : 0;
		if (b == 2) {
			if (stored)
				offline_forget(a->w, a->bare, stored);
			route_error(a->w, st, "cancel", "not-acceptable",
				    "incoming sessions are barred");
			return;
		}
		if (b == 1) {
			keep(a, st, stored);
			return;
		}
	}
	/* An extension may have handed the conversation to another account (continuity, R34). */
	for (struct xmpp_ext **e = xmpp_exts; !error && !groupchat && !headline && *e; e++) {
		const char *elsewhere = (*e)->redirect ? (*e)->redirect(a, st, to, from) : NULL;
		if (elsewhere) {
			struct xml_node *copy = xml_copy(st);
			if (stored)
				offline_forget(a->w, a->bare, stored);
			xml_set_attr(copy, "to", elsewhere);
			route(a->w, copy);
			return;
		}
	}
	/* An extension may hold the conversation on one device (continuity: a moved one). */
	for (struct xmpp_ext **e = xmpp_exts; !error && !groupchat && !headline && *e; e++) {
		struct session *t = (*e)->target ? (*e)->target(a, st, to, from) : NULL;
		if (t) {
			s = t;
			break;
		}
	}

	if (error && !s)
		return; /* an error for a resource that is gone has no one to go to */
	/* XEP-0079: the sender's rules, now that the outcome is known. */
	if (!error &&
	    !amp_check(a->w, st, amp_outcome(a, st, s, headline || groupchat, stored), s != NULL)) {
		if (stored)
			offline_forget(a->w, a->bare, stored);
		return;
	}
	mam_incoming(a, st);
	if (s) {
		deliver_to(s, st, stored); /* RFC 6121 8.5.3.1 */
		delivered(a, st);
		return;
	}
	/* RFC 6121 8.5.3.2.1 / 8.5.2.1.1: otherwise treat it as sent to the bare JID. */
	if (groupchat) {
		route_error(a->w, st, "cancel", "service-unavailable", NULL);
		return;
	}
	if (deliver_bare_message(a, st, headline, stored) > 0) {
		delivered(a, st);
		return;
	}
	/*
	 * RFC 6121 8.5.2.1.1: a headline nobody can take is dropped; the rest waits
	 * (XEP-0160), where a durable message already is.
	 */
	if (!headline) {
		keep(a, st, stored);
		push_message(a, st); /* XEP-0357: it waits; the account's devices are told */
	}
}

void
route_to_account(struct account *a, struct xml_node *st, const struct jid *to,
		 const struct jid *from, int64_t stored)
{
	if (stored < 0)
		durable_route_named(a, st, to, from, stored);
	else
		route_to_account_now(a, st, to, from, stored);
}

void
route_message(struct account *a, struct xml_node *st, const struct jid *to, const struct jid *from,
	      int64_t stored)
{
	/* RFC 6121 8.5.1: no such user; XEP-0191 section 3.4: nothing from a blocked entity. */
	if (a->state != AS_READY || block_matches(a, from)) {
		if (stored)
			offline_forget(a->w, a->bare, stored);
		route_error(a->w, st, "cancel", "service-unavailable", NULL);
		return;
	}
	message_to_account(a, st, to, from, stored);
}

void
route_to_account_now(struct account *a, struct xml_node *st, const struct jid *to,
		     const struct jid *from, int64_t stored)
{
	if (stanza_is(st, "message")) {
		route_message(a, st, to, from, stored);
		xml_free(st);
		return;
	}
	/* RFC 6121 8.5.1 and XEP-0191 3.4 as above: presence is dropped, iqs answered. */
	if (a->state != AS_READY || block_matches(a, from)) {
		if (!stanza_is(st, "presence"))
			route_error(a->w, st, "cancel", "service-unavailable", NULL);
		xml_free(st);
		return;
	}
	if (stanza_is(st, "presence")) {
		presence_inbound(a, st, to, from);
		return;
	}
	/* iq */
	if (to->resource) {
		struct session *s = account_session_find(a, to->resource);
		if (s)
			session_send(s, st);
		else /* RFC 6121 8.5.3.2.3 */
			route_error(a->w, st, "cancel", "service-unavailable", NULL);
		xml_free(st);
		return;
	}
	iq_account(a, st, from); /* RFC 6121 8.5.2.1.3: the server answers for the account */
}
