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
	/* a service's delivery (durable_deliver): more work in the same job, and its completion */
	int (*also)(struct store *st, void *arg);
	void (*done)(struct worker *w, void *arg, int result, const struct xml_node *refused);
	void *arg;
};

static int
durable_run(struct store *st, struct store_job *job)
{
	struct durable_job *dj = container_of(job, struct durable_job, job);
	int64_t id;
	int r = store_offline_put(st, &dj->m, dj->quota, &id);

	if (r == 0)
		dj->m.id = id;
	if (r == 0 && dj->also)
		r = dj->also(st, dj->arg); /* an error undoes both: the job has its savepoint */
	return r;
}

static void
durable_done(struct store_job *job)
{
	struct durable_job *dj = container_of(job, struct durable_job, job);

	struct xml_node *refused = NULL;

	if (dj->done && job->result != 0 && job->result != STORE_EIO) {
		/* A service hears why its message was not stored and answers its own sender. */
		refused = dj->st;
		dj->st = NULL;
	}
	switch (dj->st ? job->result : 1) {
	case 1:
		break;
	case 0:
		/* Other devices of the account (SIP) get the stored copy as well. */
		if (durable_observer)
			durable_observer(dj->w, dj->m.owner, dj->m.id, dj->m.stanza, dj->m.len);
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
	if (dj->done)
		dj->done(dj->w, dj->arg, job->result, refused);
	xml_free(refused);
	offline_message_free(&dj->m);
	free(dj);
}

static void durable_submit(struct worker *w, struct xml_node *st, struct durable_job *dj,
			   int64_t expires);

void (*durable_observer)(struct worker *w, const char *owner, int64_t id, const char *stanza,
			 size_t len);

/* A chat or normal message worth keeping: durable delivery applies (parses its 'to' into to). */
static bool
durable_kind(const struct xml_node *st, struct jid *to)
{
	const char *type = xml_attr(st, "type");

	if (!stanza_is(st, "message") ||
	    (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0))
		return false;
	if (xml_child(st, "no-store", NS_HINTS) || !offline_worth_storing(st))
		return false;
	return xml_attr(st, "to") && jid_parse(xml_attr(st, "to"), to) == 0;
}

char *
durable_owner(const struct server *srv, const struct xml_node *st)
{
	struct jid to;
	char *owner = NULL;

	if (!durable_kind(st, &to))
		return NULL;
	if (to.local && strcmp(to.domain, srv->cfg->domain) == 0)
		owner = jid_bare(&to);
	jid_free(&to);
	return owner;
}

bool
durable_route(struct session *s, struct xml_node *st)
{
	struct durable_job *dj;
	struct jid to;
	char *owner;

	if (!durable_kind(st, &to))
		return false;
	const struct xmpp_service *svc = server_service(s->w->srv, to.domain);
	if (svc && svc->take) {
		/* A service that keeps messages itself (SMS): it holds the ack as it sees fit. */
		bool taken = svc->take(s, st, &to);
		jid_free(&to);
		return taken;
	}
	jid_free(&to);
	if (!(owner = durable_owner(s->w->srv, st)))
		return false;
	dj = xcalloc(1, sizeof *dj);
	dj->m.owner = owner;
	if (sm_hold_ack(s)) {
		dj->s = s;
		s->jobs++;
	}
	durable_submit(s->w, st, dj, 0);
	return true;
}

/* Stores st for dj->m.owner (set), then routes it: the common part of both ways in. */
static void
durable_submit(struct worker *w, struct xml_node *st, struct durable_job *dj, int64_t expires)
{
	dj->w = w;
	dj->quota = w->srv->cfg->offline_quota;
	/* The recipient's archive id goes into the stored copy too, so it never changes. */
	mam_incoming_for(w, dj->m.owner, st);
	dj->st = st;
	offline_message(w->srv->cfg, st, &dj->m);
	/* A sender's own limit (SIP Expires) only ever shortens offline.expiry. */
	if (expires > 0 && expires < dj->m.expires_ms)
		dj->m.expires_ms = expires;
	dj->job.run = durable_run;
	/* store_offline_put alone is one INSERT, or count and insert in a savepoint */
	dj->job.atomic = dj->also == NULL;
	dj->job.done = durable_done;
	worker_store(w, &dj->job);
}

void
durable_deliver(struct worker *w, struct xml_node *st, const char *owner, int64_t expires,
		int (*also)(struct store *st, void *arg),
		void (*done)(struct worker *w, void *arg, int result,
			     const struct xml_node *refused),
		void *arg)
{
	struct durable_job *dj = xcalloc(1, sizeof *dj);

	dj->m.owner = xstrdup(owner);
	dj->also = also;
	dj->done = done;
	dj->arg = arg;
	durable_submit(w, st, dj, expires);
}
