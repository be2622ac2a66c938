/*
 * roster: the jabber:iq:roster protocol of RFC 6121 section 2, with versioning
 * (section 2.6): get, set, remove, and pushes to every resource that asked for the
 * roster. Items waiting only for the owner's answer to a subscription request are
 * hidden: they exist for the state machine, not for the client.
 *
 * Invariant: the version grows with every persisted change, so a client holding the
 * current version has seen every change.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define ROSTER_NAME_MAX	 1024 /* bytes of an item name */
#define ROSTER_GROUP_MAX 1024 /* bytes of a group name */
#define ROSTER_GROUPS	 64   /* groups per item */

static const char *const sub_names[] = {"none", "to", "from", "both"};

void
roster_item_xml(struct xml_node *query, const struct roster_item *it, bool removed)
{
	struct xml_node *item = xml_add_el(query, "item", NS_ROSTER);

	xml_set_attr(item, "jid", it->contact);
	if (removed) {
		xml_set_attr(item, "subscription", "remove");
		return;
	}
	if (it->name)
		xml_set_attr(item, "name", it->name);
	xml_set_attr(item, "subscription", sub_names[it->sub & 3]);
	if (it->ask)
		xml_set_attr(item, "ask", "subscribe");
	for (const char *g = it->groups; g && *g;) {
		const char *nl = strchr(g, '\n');
		size_t n = nl ? (size_t)(nl - g) : strlen(g);
		struct xml_node *ge = xml_add_el(item, "group", NS_ROSTER);
		xml_add_text(ge, g, n);
		g += n + (nl ? 1 : 0);
	}
}

static struct xml_node *
new_query(const struct account *a, bool with_ver)
{
	struct xml_node *q = xml_el_new("query", NS_ROSTER);

	if (with_ver) {
		char ver[24];
		snprintf(ver, sizeof ver, "%" PRIu64, a->roster_ver);
		xml_set_attr(q, "ver", ver);
	}
	return q;
}

void
roster_push(struct account *a, const struct roster_item *it, bool removed)
{
	char id[32];

	for (struct session *s = a->sessions; s; s = s->acct_next) {
		if (!s->interested)
			continue;
		/* RFC 6121 2.1.6: a push is an iq set from the bare JID to each interested
		 * resource. */
		snprintf(id, sizeof id, "push%lu", ++s->w->push_seq);
		struct xml_node *iq = stanza_new("iq", NULL, s->full, "set", id);
		struct xml_node *q = new_query(a, true);
		roster_item_xml(q, it, removed);
		xml_add_child(iq, q);
		session_send(s, iq);
		xml_free(iq);
	}
}

static void
roster_get(struct session *s, struct xml_node *st, struct xml_node *q)
{
	struct account *a = s->acct;
	const char *ver = xml_attr(q, "ver");
	struct xml_node *res;
	const char *k;
	void *v;

	s->interested = true;
	/* RFC 6121 2.6.3: an up-to-date client gets an empty result; pushes follow as usual. */
	if (ver) {
		char cur[24];
		snprintf(cur, sizeof cur, "%" PRIu64, a->roster_ver);
		if (strcmp(ver, cur) == 0) {
			session_reply(s, st, NULL);
			return;
		}
	}
	res = new_query(a, ver != NULL);
	for (size_t i = 0; hmap_next(&a->roster, &i, &k, &v);) {
		struct roster_item *it = v;
		if (!it->hidden)
			roster_item_xml(res, it, false);
	}
	session_reply(s, st, res);
}

static void
roster_remove(struct session *s, struct xml_node *st, const char *contact)
{
	struct account *a = s->acct;
	struct roster_item *it = account_roster_get(a, contact);

	if (!it || it->hidden) {
		session_reply_error(s, st, "cancel", "item-not-found", NULL); /* RFC 6121 2.5.3 */
		return;
	}
	/* RFC 6121 2.5.2: cancel both directions with the contact first. */
	if (it->sub & STORE_SUB_FROM || it->pending_in)
		route(s->w, stanza_new("presence", a->bare, contact, "unsubscribed", NULL));
	if (it->sub & STORE_SUB_TO || it->ask)
		route(s->w, stanza_new("presence", a->bare, contact, "unsubscribe", NULL));
	account_roster_save(a, it, true);
	roster_push(a, it, true);
	account_roster_del(a, contact);
	session_reply(s, st, NULL);
}

/* Validates the <group/>s of item into a '\n'-joined string; returns 0 or -1. */
static int
collect_groups(const struct xml_node *item, char **out)
{
	struct buf b = {0};
	int n = 0;

	for (struct xml_node *g = xml_child(item, "group", NS_ROSTER); g;
	     g = xml_next(g, "group", NS_ROSTER)) {
		char *text = xml_text(g);
		size_t len = strlen(text);
		/* RFC 6121 2.3.3: empty group names are not acceptable; so are our limits. */
		if (len == 0 || len > ROSTER_GROUP_MAX || strchr(text, '\n') ||
		    ++n > ROSTER_GROUPS) {
			free(text);
			buf_free(&b);
			return -1;
		}
		if (buf_used(&b))
			buf_puts(&b, "\n");
		buf_puts(&b, text);
		free(text);
	}
	*out = buf_used(&b) ? buf_steal(&b) : NULL;
	buf_free(&b);
	return 0;
}

static void
roster_set(struct session *s, struct xml_node *st, struct xml_node *q)
{
	struct account *a = s->acct;
	struct xml_node *item = xml_child(q, "item", NS_ROSTER);
	const char *jid_s = item ? xml_attr(item, "jid") : NULL;
	const char *subscription = item ? xml_attr(item, "subscription") : NULL;
	const char *name = item ? xml_attr(item, "name") : NULL;
	struct roster_item *it;
	char *contact, *groups;
	struct jid j;

	/* RFC 6121 2.3.3: exactly one item, with a valid JID. */
	if (!item || xml_next(item, "item", NS_ROSTER) || !jid_s || jid_parse(jid_s, &j) < 0) {
		session_reply_error(s, st, "modify", "bad-request", NULL);
		return;
	}
	contact = jid_full(&j);
	jid_free(&j);
	if (subscription && strcmp(subscription, "remove") == 0) {
		roster_remove(s, st, contact);
		free(contact);
		return;
	}
	if (strcmp(contact, a->bare) == 0 || (name && strlen(name) > ROSTER_NAME_MAX) ||
	    collect_groups(item, &groups) < 0) {
		session_reply_error(s, st, "modify", "not-acceptable", NULL);
		free(contact);
		return;
	}
	it = account_roster_get(a, contact);
	if (!it)
		it = account_roster_add(a, contact);
	/* 'subscription' and 'ask' from the client are ignored (RFC 6121 2.1.2.5, 2.1.2.1). */
	it->hidden = false;
	free(it->name);
	it->name = name && *name ? xstrdup(name) : NULL;
	free(it->groups);
	it->groups = groups;
	account_roster_save(a, it, false);
	roster_push(a, it, false);
	session_reply(s, st, NULL);
	free(contact);
}

void
roster_iq(struct session *s, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, "query", NS_ROSTER);
	const char *type = xml_attr(st, "type");

	if (!q)
		session_reply_error(s, st, "cancel", "feature-not-implemented", NULL);
	else if (strcmp(type, "get") == 0)
		roster_get(s, st, q);
	else
		roster_set(s, st, q);
	xml_free(st);
}
