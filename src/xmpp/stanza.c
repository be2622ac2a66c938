/*
 * stanza: small helpers for building and inspecting stanzas in jabber:client, and the
 * error replies of RFC 6120 section 8.3.
 *
 * Invariant: an error reply is never generated for a stanza of type 'error', so two
 * entities can never bounce errors at each other forever.
 */
#include <string.h>

#include "xmpp_int.h"

static _Thread_local struct buf scratch;

const struct buf *
stanza_serialize(const struct xml_node *st)
{
	buf_reset(&scratch);
	xml_write(&scratch, st, NS_CLIENT);
	return &scratch;
}

void
stanza_thread_done(void)
{
	buf_free(&scratch);
}

struct xml_node *
stanza_new(const char *name, const char *from, const char *to, const char *type, const char *id)
{
	struct xml_node *st = xml_el_new(name, NS_CLIENT);

	if (from)
		xml_set_attr(st, "from", from);
	if (to)
		xml_set_attr(st, "to", to);
	if (type)
		xml_set_attr(st, "type", type);
	if (id)
		xml_set_attr(st, "id", id);
	return st;
}

bool
stanza_is(const struct xml_node *st, const char *name)
{
	return st->name && strcmp(st->name, name) == 0 && strcmp(st->ns, NS_CLIENT) == 0;
}

bool
stanza_is_error(const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	return type && strcmp(type, "error") == 0;
}

/*
 * RFC 6120 8.3.1: the error reply swaps from and to, keeps the id, and MAY include
 * the original payload; we include it so the sender can tell which request failed.
 */
struct xml_node *
stanza_error_reply(const struct xml_node *st, const char *type, const char *condition,
		   const char *text)
{
	struct xml_node *r = stanza_new(st->name, xml_attr(st, "to"), xml_attr(st, "from"), "error",
					xml_attr(st, "id"));
	struct xml_node *err, *c;

	for (c = st->first; c; c = c->next) {
		if (c->name && strcmp(c->name, "error") == 0)
			continue;
		xml_add_child(r, xml_copy(c));
	}
	err = xml_add_el(r, "error", NS_CLIENT);
	xml_set_attr(err, "type", type);
	xml_add_el(err, condition, NS_STANZAS);
	if (text) {
		struct xml_node *t = xml_add_el(err, "text", NS_STANZAS);
		xml_add_text(t, text, strlen(text));
	}
	return r;
}
