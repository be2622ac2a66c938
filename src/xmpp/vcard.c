/*
 * vcard: XEP-0054 vcard-temp, the profile (and avatar) older clients such as Gajim and
 * Psi still read and write. The account's own session sets it; anyone can read it at
 * the account's bare JID. It is kept in private storage under its own key.
 *
 * Invariant: a vCard is only ever written by its account; reads of an account that has
 * none get an empty <vCard/> (XEP-0054 section 3.1), never an error. It is private
 * storage's record for <vCard xmlns='vcard-temp'/>.
 */
#include <string.h>

#include "xmpp_int.h"

#define NS_VCARD "vcard-temp"

bool
vcard_is(const struct xml_node *st)
{
	return xml_child(st, "vCard", NS_VCARD) != NULL;
}

void
vcard_iq(struct worker *w, struct xml_node *st, const char *owner, bool own)
{
	if (strcmp(xml_attr(st, "type"), "set") == 0 && !own) {
		route_error(w, st, "auth", "forbidden", NULL); /* only the account writes it */
		xml_free(st);
		return;
	}
	if (strcmp(xml_attr(st, "type"), "get") == 0) {
		pep_vcard_get(w, st, owner); /* with the PEP avatar as PHOTO (XEP-0398) */
		return;
	}
	/* The same record as a private <vCard xmlns='vcard-temp'/>, answered unwrapped. */
	private_request(w, st, xml_child(st, "vCard", NS_VCARD), owner, NULL);
}

void
vcard_own_iq(struct session *s, struct xml_node *st)
{
	vcard_iq(s->w, st, s->bare, true);
}
