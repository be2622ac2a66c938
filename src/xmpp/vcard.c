/*
 * vcard: XEP-0054 vcard-temp, the profile (and avatar) older clients such as Gajim and
 * Psi still read and write. The account's own session sets it; anyone can read it at
 * the account's bare JID. It is kept in private storage under its own key.
 *
 * Invariant: a vCard is only ever written by its account; reads of an account that has
 * none get an empty <vCard/> (XEP-0054 section 3.1), never an error.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_VCARD  "vcard-temp"
#define VCARD_KEY "vCard vcard-temp" /* private storage's key for <vCard xmlns=vcard-temp/> */

bool
vcard_is(const struct xml_node *st)
{
	return xml_child(st, "vCard", NS_VCARD) != NULL;
}

struct vcard_job {
	struct store_job job;
	struct worker *w;
	struct xml_node *iq;
	char *owner;
	struct buf xml;
	bool set;
};

static int
vcard_run(struct store *st, struct store_job *job)
{
	struct vcard_job *vj = container_of(job, struct vcard_job, job);

	if (vj->set)
		return store_private_set(st, vj->owner, VCARD_KEY, buf_head(&vj->xml),
					 buf_used(&vj->xml));
	return store_private_get(st, vj->owner, VCARD_KEY, &vj->xml);
}

static void
vcard_done(struct store_job *job)
{
	struct vcard_job *vj = container_of(job, struct vcard_job, job);
	struct xml_node *r;

	if (job->result == 0 || (!vj->set && job->result == STORE_ENOENT)) {
		r = stanza_new("iq", xml_attr(vj->iq, "to"), xml_attr(vj->iq, "from"), "result",
			       xml_attr(vj->iq, "id"));
		if (!vj->set) {
			struct xml_node *v = job->result == 0
						 ? xml_parse(buf_head(&vj->xml), buf_used(&vj->xml))
						 : NULL;
			xml_add_child(r, v ? v : xml_el_new("vCard", NS_VCARD));
		}
		route(vj->w, r);
	} else {
		route_error(vj->w, vj->iq, "wait", "internal-server-error", NULL);
	}
	xml_free(vj->iq);
	buf_free(&vj->xml);
	free(vj->owner);
	free(vj);
}

void
vcard_iq(struct worker *w, struct xml_node *st, const char *owner, bool own)
{
	const char *type = xml_attr(st, "type");
	struct vcard_job *vj;

	if (strcmp(type, "set") == 0 && !own) {
		route_error(w, st, "auth", "forbidden", NULL); /* only the account writes it */
		xml_free(st);
		return;
	}
	if (!xml_attr(st, "to"))
		xml_set_attr(st, "to", owner);
	vj = xcalloc(1, sizeof *vj);
	vj->w = w;
	vj->iq = st;
	vj->owner = xstrdup(owner);
	vj->set = strcmp(type, "set") == 0;
	if (vj->set)
		xml_write(&vj->xml, xml_child(st, "vCard", NS_VCARD), "");
	vj->job.run = vcard_run;
	vj->job.done = vcard_done;
	worker_store(w, &vj->job);
}

void
vcard_own_iq(struct session *s, struct xml_node *st)
{
	vcard_iq(s->w, st, s->bare, true);
}
