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
	struct session *s;
	struct xml_node *iq;
	struct xml_node *el; /* the requested / stored element (a copy) */
	char *owner, *key;
	struct buf xml; /* set: what to store; get: what was stored */
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
	struct session *s = pj->s;

	session_unref(s);
	if (s->state == SS_ACTIVE) {
		if (job->result == 0 || (!pj->set && job->result == STORE_ENOENT)) {
			struct xml_node *q = xml_el_new("query", NS_PRIVATE);
			if (!pj->set) {
				/* XEP-0049 section 3: nothing stored comes back as the empty
				 * element. */
				struct xml_node *el =
				    job->result == 0
					? xml_parse(buf_head(&pj->xml), buf_used(&pj->xml))
					: NULL;
				xml_add_child(q, el ? el : xml_copy(pj->el));
			}
			session_reply(s, pj->iq, pj->set ? NULL : q);
			if (pj->set)
				xml_free(q);
		} else {
			session_reply_error(s, pj->iq, "wait", "internal-server-error", NULL);
		}
	}
	xml_free(pj->iq);
	xml_free(pj->el);
	buf_free(&pj->xml);
	free(pj->owner);
	free(pj->key);
	free(pj);
}

void
private_iq(struct session *s, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, "query", NS_PRIVATE);
	struct xml_node *el = xml_child(q, NULL, NULL);
	struct private_job *pj;

	/* XEP-0049 section 3: exactly one child, in a namespace of its own. */
	if (!el || xml_next(el, NULL, NULL) || !*el->ns || strcmp(el->ns, NS_CLIENT) == 0 ||
	    strcmp(el->ns, NS_PRIVATE) == 0 || strncmp(el->ns, "jabber:", 7) == 0) {
		session_reply_error(s, st, "modify", "not-acceptable", NULL);
		xml_free(st);
		return;
	}
	pj = xcalloc(1, sizeof *pj);
	pj->s = s;
	pj->iq = st;
	pj->el = xml_copy(el);
	pj->set = strcmp(xml_attr(st, "type"), "set") == 0;
	pj->owner = xstrdup(s->bare);
	pj->key = xmalloc(strlen(el->name) + strlen(el->ns) + 2);
	strcpy(pj->key, el->name);
	strcat(pj->key, " ");
	strcat(pj->key, el->ns);
	if (pj->set)
		xml_write(&pj->xml, el, "");
	pj->job.run = private_run;
	pj->job.done = private_done;
	s->jobs++;
	worker_store(s->w, &pj->job);
}
