/*
 * private: XEP-0049 private XML storage, where clients keep small documents such as
 * bookmarks (XEP-0048) on the server. One element per (account, element name,
 * namespace); only the account itself can read or write it.
 *
 * Invariant: what is stored is exactly the element the client sent, serialized with
 * its namespace, so a get returns it unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_PRIVATE "jabber:iq:private"

bool
private_is(const struct xml_node *st)
{
	return xml_child(st, "query", NS_PRIVATE) != NULL;
}

struct private_job {
	struct store_job job;
	struct worker *w;
	struct xml_node *iq;
	struct xml_node *el; /* the requested / stored element (a copy) */
	char *owner, *key;
	const char *wrap; /* namespace of the <query/> around the element, NULL for none */
	struct buf xml;	  /* set: what to store; get: what was stored */
	bool set;
};

static int
private_run(struct store *st, struct store_job *job)
{
	struct private_job *pj = container_of(job, struct private_job, job);

	if (pj->set)
		return store_private_set(st, pj->owner, pj->key, buf_head(&pj->xml),
					 buf_used(&pj->xml));
	return store_private_get(st, pj->owner, pj->key, &pj->xml);
}

static void
private_done(struct store_job *job)
{
	struct private_job *pj = container_of(job, struct private_job, job);
	struct xml_node *r, *el, *parent;

	if (job->result == 0 || (!pj->set && job->result == STORE_ENOENT)) {
		r = stanza_new("iq", xml_attr(pj->iq, "to"), xml_attr(pj->iq, "from"), "result",
			       xml_attr(pj->iq, "id"));
		if (!pj->set) {
			/* XEP-0049 and XEP-0054 section 3: nothing stored is the empty element. */
			el = job->result == 0 ? xml_parse(buf_head(&pj->xml), buf_used(&pj->xml))
					      : NULL;
			parent = pj->wrap ? xml_add_el(r, "query", pj->wrap) : r;
			xml_add_child(parent, el ? el : pj->el);
			if (!el)
				pj->el = NULL;
		}
		route(pj->w, r);
	} else {
		route_error(pj->w, pj->iq, "wait", "internal-server-error", NULL);
	}
	xml_free(pj->iq);
	xml_free(pj->el);
	buf_free(&pj->xml);
	free(pj->owner);
	free(pj->key);
	free(pj);
}

void
private_request(struct worker *w, struct xml_node *st, const struct xml_node *el, const char *owner,
		const char *wrap)
{
	struct private_job *pj = xcalloc(1, sizeof *pj);

	if (!xml_attr(st, "to"))
		xml_set_attr(st, "to", owner); /* the reply comes from the owner's bare JID */
	pj->w = w;
	pj->iq = st;
	pj->el = xml_el_new(el->name, el->ns);
	pj->wrap = wrap;
	pj->set = strcmp(xml_attr(st, "type"), "set") == 0;
	pj->owner = xstrdup(owner);
	/* One element per (name, namespace): the key is "name namespace". */
	pj->key = xmalloc(strlen(el->name) + strlen(el->ns) + 2);
	strcpy(pj->key, el->name);
	strcat(pj->key, " ");
	strcat(pj->key, el->ns);
	if (pj->set)
		xml_write(&pj->xml, el, "");
	pj->job.run = private_run;
	pj->job.done = private_done;
	worker_store(w, &pj->job);
}

void
private_iq(struct session *s, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, "query", NS_PRIVATE);
	struct xml_node *el = xml_child(q, NULL, NULL);

	/* XEP-0049 section 3: exactly one child, in a namespace of its own. */
	if (!el || xml_next(el, NULL, NULL) || !*el->ns || strcmp(el->ns, NS_CLIENT) == 0 ||
	    strcmp(el->ns, NS_PRIVATE) == 0 || strncmp(el->ns, "jabber:", 7) == 0) {
		session_reply_error(s, st, "modify", "not-acceptable", NULL);
		xml_free(st);
		return;
	}
	private_request(s->w, st, el, s->bare, NS_PRIVATE);
}
