/*
 * pep_int: what the two files of personal eventing share: pep.c (the pubsub requests and their
 * storage jobs) and pep_notify.c (who hears about what: presence, entity capabilities,
 * notifications, the XEP-0398 avatar hash).
 *
 * Invariant: a node's configuration is only ever read from and written to the store as the text
 * pep_config_write() makes, so a node reloaded after a restart has the options it was given.
 */
#ifndef BATON_PEP_INT_H
#define BATON_PEP_INT_H

#include "xmpp_int.h"

#define NS_PUBSUB	      "http://jabber.org/protocol/pubsub"
#define NS_PUBSUB_OWNER	      "http://jabber.org/protocol/pubsub#owner"
#define NS_PUBSUB_EVENT	      "http://jabber.org/protocol/pubsub#event"
#define NS_PUBSUB_ERRORS      "http://jabber.org/protocol/pubsub#errors"
#define NS_PUBSUB_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define NS_PUBSUB_PUB_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
#define NS_XDATA	      "jabber:x:data"
#define NS_AVATAR_DATA	      "urn:xmpp:avatar:data"
#define NS_AVATAR_META	      "urn:xmpp:avatar:metadata"

/* XEP-0060 section 4.5: who may read a node. PEP has no roster groups or authorization. */
enum pep_access { PEP_PRESENCE, PEP_OPEN, PEP_WHITELIST };
/* XEP-0060 section 16.4.3, pubsub#send_last_published_item. */
enum pep_send_last { PEP_SEND_NEVER, PEP_SEND_ON_SUB, PEP_SEND_ON_SUB_AND_PRESENCE };
/* How the requester stands to the owner: the owner, a contact with a subscription to the
 * owner's presence (from or both), or anyone else. */
enum pep_rel { PEP_REL_NONE, PEP_REL_PRESENCE, PEP_REL_OWNER };

struct pep_config {
	enum pep_access access;
	long max_items; /* -1: 'max', i.e. pep.max_items */
	bool persist;	/* false: only the last item is kept (for send-last) */
	enum pep_send_last send_last;
	bool deliver_notifications, deliver_payloads, notify_retract, notify_delete;
};

/* The defaults of a new node (XEP-0163 section 4: presence access, last item on presence). */
void pep_config_default(struct pep_config *c);
/*
 * Sets one option from its form field var (pubsub#...) and value. Returns 0, -1 for a value
 * the option cannot take, -2 for an option baton does not have. c is unchanged on failure.
 */
int pep_config_set(struct pep_config *c, const char *var, const char *value);
/* Whether option var of c has value (as a publish-options precondition, XEP-0060 7.1.5). */
bool pep_config_matches(const struct pep_config *c, const char *var, const char *value,
			long items_max);
/* The stored form: one "var=value" line per option. */
void pep_config_write(const struct pep_config *c, struct buf *out);
/* Reads the stored form over the defaults; unknown lines are skipped (a newer baton's). */
void pep_config_read(struct pep_config *c, const char *text);
/* How many items the node keeps, with items_max for 'max'. */
long pep_config_keep(const struct pep_config *c, long items_max);
/* May a requester standing rel read the node? */
bool pep_config_readable(const struct pep_config *c, enum pep_rel rel);

/* How from stands to a (a's roster, on its home worker). */
enum pep_rel pep_relation(const struct account *a, const char *from_bare);

/* ---- pep_notify.c ---- */

/*
 * Sends the event ev (an <event/> in pubsub#event, not taken) about node with configuration c
 * to everyone a knows to be present, allowed to read the node and interested in it (own
 * resources and contacts whose capabilities say node+notify; XEP-0163 section 4.3).
 */
void pep_notify(struct account *a, const char *node, const struct pep_config *c,
		const struct xml_node *ev);
/* The newest item of node changed (xml: the item's payload, NULL: gone); for the avatar hash. */
void pep_item_changed(struct account *a, const char *node, const char *payload_xml,
		      bool node_deleted);
/* Builds <event><items node=...><item id=...>payload</item></items></event>; caller owns it. */
struct xml_node *pep_event_item(const char *node, const char *id, const char *xml, bool payload);

#endif
