/*
 * durable: the durability rule of DESIGN.md for messages between local accounts. A
 * chat message is committed to its recipient's queue (the offline table) before it is
 * routed, and the sender's XEP-0198 ack for it is held back until that commit; the
 * stored copy goes only when the recipient acknowledged it (or, without stream
 * management, stayed connected for offline.grace after it was written).
 *
 * Invariant: once the sender holds an ack for a message, the message is in storage or
 * the recipient has acknowledged it, so killing batond at any moment loses nothing the
 * sender was told arrived; after a restart the stored copy is delivered at the
 * recipient's next login.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_HINTS "urn:xmpp:hints"

struct durable_job {
	struct store_job job;
	struct worker *w;
	struct session *s; /* the sender, whose ack waits; NULL without stream management */
	struct xml_node *st;
	struct store_offline_msg m;
	long quota;
};

static int
durable_run(struct store *st, struct store_job *job)
{
	struct durable_job *dj = container_of(job, struct durable_job, job);
	int64_t id;
	int r = store_offline_put(st, &dj->m, dj->quota, &id);

	if (r == 0)
		dj->m.id = id;
	return r;
}

static void
durable_done(struct store_job *job)
{
	struct durable_job *dj = container_of(job, struct durable_job, job);

	switch (job->result) {
	case 0:
		route_stored(dj->w, dj->st, dj->m.id);
		break;
	case STORE_EQUOTA:
		route_error(dj->w, dj->st, "wait", "resource-constraint",
			    "The recipient's message queue is full");
		xml_free(dj->st);
		break;
	case STORE_ENOENT: /* no such account: routing answers service-unavailable */
		route(dj->w, dj->st);
		break;
	default:
		/* Not stored: still delivered if the recipient is there, just not durably. */
		log_error("durable: could not store a message for %s", dj->m.owner);
		route(dj->w, dj->st);
		break;
	}
	if (dj->s) {
		sm_release_ack(dj->s);
		session_unref(dj->s);
	}
	offline_message_free(&dj->m);
	free(dj);
}

bool
durable_route(struct session *s, struct xml_node *st)
{
	const struct config *cfg = s->w->srv->cfg;
	const char *type = xml_attr(st, "type");
	struct durable_job *dj;
	struct jid to;

	if (!stanza_is(st, "message") ||
	    (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0))
		return false;
	if (xml_child(st, "no-store", NS_HINTS) || !offline_worth_storing(st))
		return false;
	if (!xml_attr(st, "to") || jid_parse(xml_attr(st, "to"), &to) < 0)
		return false;
	if (!to.local || strcmp(to.domain, cfg->domain) != 0) {
		jid_free(&to);
		return false;
	}
	dj = xcalloc(1, sizeof *dj);
	dj->w = s->w;
	dj->quota = cfg->offline_quota;
	dj->m.owner = jid_bare(&to);
	jid_free(&to);
	/* The recipient's archive id goes into the stored copy too, so it never changes. */
	mam_incoming_for(s->w, dj->m.owner, st);
	dj->st = st;
	offline_message(cfg, st, &dj->m);
	if (sm_hold_ack(s)) {
		dj->s = s;
		s->jobs++;
	}
	dj->job.run = durable_run;
	dj->job.atomic =
	    true; /* store_offline_put: one INSERT, or count and insert in a savepoint */
	dj->job.done = durable_done;
	worker_store(s->w, &dj->job);
	return true;
}
