/*
 * csi: XEP-0352 client state indication. A client that says it is inactive (a phone
 * in a pocket) does not need every presence change of its contacts at once: they are
 * held, the latest per contact, and flushed when the client becomes active again or
 * before anything that matters (a message, an iq) is sent to it.
 *
 * Invariant: holding changes only when presence arrives, never what arrives or its
 * order relative to messages and iqs.
 */
#include <string.h>

#include "xmpp_int.h"

#define CSI_HOLD_MAX 1000 /* contacts held before we flush anyway */

static void
flush(struct session *s)
{
	const char *k;
	void *v;

	if (!s->csi_held.count)
		return;
	s->csi_flushing = true;
	for (size_t i = 0; hmap_next(&s->csi_held, &i, &k, &v);) {
		session_send(s, v);
		xml_free(v);
	}
	s->csi_flushing = false;
	hmap_free(&s->csi_held);
}

bool
csi_hold(struct session *s, const struct xml_node *st)
{
	const char *type, *from;
	struct xml_node *old;

	if (s->csi_flushing)
		return false;
	if (!s->csi_inactive || !stanza_is(st, "presence")) {
		flush(s); /* what was held comes first, in its place */
		return false;
	}
	type = xml_attr(st, "type");
	from = xml_attr(st, "from");
	/* Subscription requests and errors are for the user now; availability can wait. */
	if ((type && strcmp(type, "unavailable") != 0) || !from)
		return false;
	if (s->csi_held.count >= CSI_HOLD_MAX && !hmap_get(&s->csi_held, from)) {
		flush(s);
		return false;
	}
	old = hmap_put(&s->csi_held, from, xml_copy(st));
	xml_free(old);
	return true;
}

void
csi_element(struct session *s, struct xml_node *el)
{
	if (strcmp(el->name, "inactive") == 0) {
		s->csi_inactive = true;
	} else if (strcmp(el->name, "active") == 0) {
		s->csi_inactive = false;
		flush(s);
	}
	xml_free(el);
}

void
csi_free(struct session *s)
{
	const char *k;
	void *v;

	for (size_t i = 0; hmap_next(&s->csi_held, &i, &k, &v);)
		xml_free(v);
	hmap_free(&s->csi_held);
}
