/*
 * iq: the iqs the server answers itself, for its domain (XEP-0030 disco, XEP-0199
 * ping, XEP-0092 version) and on behalf of accounts addressed by bare JID
 * (RFC 6121 8.5.2.1.3). Anything else gets service-unavailable (RFC 6120 8.4).
 *
 * Invariant: every get or set gets exactly one reply; results and errors are never
 * answered.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

static const char *const server_features[] = {
    NS_DISCO_INFO,		      /* XEP-0030 */
    NS_DISCO_ITEMS,		      /* XEP-0030 */
    NS_PING,			      /* XEP-0199 */
    NS_VERSION,			      /* XEP-0092 */
    NS_ROSTER,			      /* RFC 6121 */
    "msgoffline",		      /* XEP-0160 section 6 */
    "urn:xmpp:carbons:2",	      /* XEP-0280 */
    "urn:xmpp:blocking",	      /* XEP-0191 */
    "http://jabber.org/protocol/amp", /* XEP-0079 and what of it we do: */
    "http://jabber.org/protocol/amp?condition=deliver",
    "http://jabber.org/protocol/amp?condition=expire-at",
    "http://jabber.org/protocol/amp?condition=match-resource",
    "http://jabber.org/protocol/amp?action=alert",
    "http://jabber.org/protocol/amp?action=drop",
    "http://jabber.org/protocol/amp?action=error",
    "http://jabber.org/protocol/amp?action=notify",
    NULL,
};

static bool
is_request(const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	return type && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
}

static bool
is_get(const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	return type && strcmp(type, "get") == 0;
}

static void
reply(struct worker *w, const struct xml_node *st, struct xml_node *payload)
{
	struct xml_node *r = stanza_new("iq", xml_attr(st, "to"), xml_attr(st, "from"), "result",
					xml_attr(st, "id"));
	if (payload)
		xml_add_child(r, payload);
	route(w, r);
}

static void
add_identity(struct xml_node *q, const char *category, const char *type, const char *name)
{
	struct xml_node *id = xml_add_el(q, "identity", NS_DISCO_INFO);

	xml_set_attr(id, "category", category);
	xml_set_attr(id, "type", type);
	if (name)
		xml_set_attr(id, "name", name);
}

static void
add_feature(struct xml_node *q, const char *var)
{
	xml_set_attr(xml_add_el(q, "feature", NS_DISCO_INFO), "var", var);
}

void
iq_server(struct worker *w, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, NULL, NULL);

	if (!is_request(st) || !q) {
		xml_free(st);
		return;
	}
	if (is_get(st) && strcmp(q->ns, NS_DISCO_INFO) == 0 && !xml_attr(q, "node")) {
		struct xml_node *r = xml_el_new("query", NS_DISCO_INFO);
		add_identity(r, "server", "im", "baton"); /* XEP-0030 section 3.1 */
		for (const char *const *f = server_features; *f; f++)
			add_feature(r, *f);
		for (struct xmpp_ext **e = xmpp_exts; *e; e++)
			add_feature(r, (*e)->ns); /* PROTOCOL.md: each extension is advertised */
		if (extdisco_enabled(w->srv->cfg))
			add_feature(r, "urn:xmpp:extdisco:2"); /* XEP-0215 section 6 */
		reply(w, st, r);
	} else if (is_get(st) && strcmp(q->ns, NS_DISCO_ITEMS) == 0 && !xml_attr(q, "node")) {
		/* XEP-0030 section 4: the services at our subdomains (MUC, upload, ...),
		 * components. */
		struct xml_node *r = xml_el_new("query", NS_DISCO_ITEMS);
		const struct config *cfg = w->srv->cfg;
		for (int i = 0; i < w->srv->nservices; i++)
			xml_set_attr(xml_add_el(r, "item", NS_DISCO_ITEMS), "jid",
				     w->srv->service_domains[i]);
		for (size_t i = 0; i < cfg->n_component_secrets; i++) /* gateways (XEP-0114) */
			xml_set_attr(xml_add_el(r, "item", NS_DISCO_ITEMS), "jid",
				     cfg->component_secrets[i].key);
		reply(w, st, r);
	} else if (is_get(st) && strcmp(q->ns, NS_PING) == 0 && strcmp(q->name, "ping") == 0) {
		reply(w, st, NULL); /* XEP-0199 section 4.2 */
	} else if (extdisco_is(st)) {
		extdisco_iq(w, st);
		return;
	} else if (is_get(st) && strcmp(q->ns, NS_VERSION) == 0) {
		struct xml_node *r = xml_el_new("query", NS_VERSION);
		xml_add_text(xml_add_el(r, "name", NULL), "baton", 5);
		xml_add_text(xml_add_el(r, "version", NULL), BATON_VERSION, strlen(BATON_VERSION));
		reply(w, st, r);
	} else {
		route_error(w, st, "cancel", "service-unavailable", NULL);
	}
	xml_free(st);
}

/* The extension that serves ns for others at the account, or NULL. */
static struct xmpp_ext *
ext_for(const char *ns)
{
	for (struct xmpp_ext **e = xmpp_exts; *e; e++)
		if ((*e)->account_iq && strcmp((*e)->ns, ns) == 0)
			return *e;
	return NULL;
}

void
iq_account(struct account *a, struct xml_node *st, const struct jid *from)
{
	struct xml_node *q = xml_child(st, NULL, NULL);
	const char *id = xml_attr(st, "id");

	if (!is_request(st) && pep_iq_result(a, st, from))
		return; /* the answer to a capabilities query of PEP (XEP-0163 4.3) */
	for (struct xmpp_ext **e = xmpp_exts; !is_request(st) && id && *e; e++) {
		const char *pre = (*e)->result_prefix;
		if (pre && (*e)->account_iq && strncmp(id, pre, strlen(pre)) == 0) {
			(*e)->account_iq(a, st, from); /* the answer to something it asked */
			return;
		}
	}
	if (push_is_result(st)) {
		push_result(a, st, from); /* an app server answers a notification (XEP-0357 5) */
		return;
	}
	if (!is_request(st) || !q) {
		xml_free(st);
		return;
	}
	if (is_get(st) && strcmp(q->ns, NS_DISCO_INFO) == 0 && !xml_attr(q, "node")) {
		/* XEP-0030 section 3.1: an account is an account/registered entity. */
		struct xml_node *r = xml_el_new("query", NS_DISCO_INFO);
		add_identity(r, "account", "registered", NULL);
		add_feature(r, NS_DISCO_INFO);
		add_feature(r, "urn:xmpp:push:0"); /* XEP-0357 section 6 */
		pep_disco_info(r);		   /* XEP-0163 section 1.2 */
		if (a->w->srv->cfg->archive_enabled) {
			add_feature(r, "urn:xmpp:mam:2"); /* XEP-0313 section 7 */
			add_feature(r, "urn:xmpp:sid:0"); /* XEP-0359 */
		}
		reply(a->w, st, r);
	} else if (is_get(st) && strcmp(q->ns, NS_DISCO_ITEMS) == 0 && !xml_attr(q, "node")) {
		pep_disco_items(a, st, from); /* XEP-0060 5.2: the account's nodes */
		return;
	} else if (pep_is(st)) {
		pep_iq(a, st, from); /* XEP-0163 */
		return;
	} else if (ext_for(q->ns)) {
		ext_for(q->ns)->account_iq(a, st,
					   from); /* continuity's accept from another account */
		return;
	} else if (vcard_is(st)) {
		/* XEP-0054 section 3.2: anyone may read a user's vCard at the bare JID. */
		char *bare = jid_bare(from);
		vcard_iq(a->w, st, a->bare, strcmp(bare, a->bare) == 0);
		free(bare);
		return;
	} else {
		route_error(a->w, st, "cancel", "service-unavailable", NULL);
	}
	xml_free(st);
}
