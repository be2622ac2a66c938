/*
 * carbons: XEP-0280 message carbons. A resource that enables carbons gets a copy of
 * every eligible chat message its account sends from another resource (<sent/>) or
 * receives on another resource (<received/>), so a second device sees the whole
 * conversation.
 *
 * Invariant: copies are made on the account's home worker from the account's own
 * session list, and a resource never gets a carbon of a message it sent or received
 * itself.
 */
#include <string.h>

#include "xmpp_int.h"

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS   "urn:xmpp:hints"

bool
carbons_is_iq(const struct xml_node *st)
{
	return xml_child(st, "enable", NS_CARBONS) || xml_child(st, "disable", NS_CARBONS);
}

void
carbons_iq(struct session *s, struct xml_node *st)
{
	const char *type = xml_attr(st, "type");

	if (!type || strcmp(type, "set") != 0) {
		session_reply_error(s, st, "modify", "bad-request", NULL);
	} else {
		s->carbons = xml_child(st, "enable", NS_CARBONS) != NULL; /* XEP-0280 section 4 */
		session_reply(s, st, NULL);
	}
	xml_free(st);
}

/* XEP-0280 section 6.1: which messages are copied. */
static bool
eligible(const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");

	if (xml_child(st, "private", NS_CARBONS) || xml_child(st, "no-copy", NS_HINTS))
		return false;
	if (xml_child(st, "received", NS_CARBONS) || xml_child(st, "sent", NS_CARBONS))
		return false; /* never a carbon of a carbon */
	if (!type || strcmp(type, "normal") == 0)
		return xml_child(st, "body", NS_CLIENT) != NULL;
	return strcmp(type, "chat") == 0;
}

static void
send_copy(struct session *to, const struct xml_node *st, const char *wrapper)
{
	struct xml_node *m = stanza_new("message", to->bare, to->full, xml_attr(st, "type"), NULL);
	struct xml_node *w = xml_add_el(m, wrapper, NS_CARBONS);
	struct xml_node *f = xml_add_el(w, "forwarded", NS_FORWARD);

	xml_add_child(f, xml_copy(st));
	session_send(to, m);
	xml_free(m);
}

void
carbons_sent(struct session *from, const struct xml_node *st)
{
	if (!from->acct || !eligible(st))
		return;
	for (struct session *o = from->acct->sessions; o; o = o->acct_next) {
		if (o != from && o->carbons)
			send_copy(o, st, "sent");
	}
}

void
carbons_received(struct account *a, const struct xml_node *st)
{
	if (!eligible(st))
		return;
	for (struct session *o = a->sessions; o; o = o->acct_next) {
		if (o->carbons && !o->delivered)
			send_copy(o, st, "received");
	}
}
