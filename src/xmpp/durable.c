/*
 * durable: the durability rule of DESIGN.md for messages between local accounts. The
 * sender's XEP-0198 ack for a chat message is held back until the message is committed
 * to its recipient's queue (the offline table) or the recipient acknowledged it. A stored
 * copy goes when the recipient acknowledged it (or, without stream management, stayed
 * connected for offline.grace after it was sent).
 *
 * Messages from local clients are delivered first (offline.ack_wait > 0): routed at once,
 * named in the recipient's sessions' queues by a negative id (struct inflight, owned by
 * the recipient's home worker), and stored only when they must be: no device acknowledged
 * within offline.ack_wait, the sessions holding it ended, nobody was online, a device
 * without stream management got it (its copy then waits offline.grace as usual) or SIP
 * devices must see it (durable_observer). Most messages between clients with stream
 * management then never touch storage. Messages from services (durable_deliver) and all
 * messages with offline.ack_wait = 0 are stored first, then routed.
 *
 * Invariant: once the sender holds an ack for a message, the message is in storage or
 * the recipient has acknowledged it, so killing batond at any moment loses nothing the
 * sender was told arrived; after a restart the stored copy is delivered at the
 * recipient's next login. An inflight that nothing names any more is stored at once.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_HINTS "urn:xmpp:hints"

struct durable_job {
	struct store_job job;
	struct worker *w;
	struct sm_held held; /* the sender's ack, until the commit */
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
	int r = offline_put(st, &dj->m, dj->quota);

	if (r == 0 && dj->also)
		r = dj->also(st, dj->arg); /* an error undoes both: the job has its savepoint */
	return r;
}

/*
 * After a store-first commit (result, stored id) of st for owner: route it, or answer why
 * not. Takes st.
 */
static void
after_commit(struct worker *w, struct xml_node *st, const struct store_offline_msg *m, int result)
{
	switch (result) {
	case 0:
		/* Other devices of the account (SIP) get the stored copy as well. */
		if (durable_observer)
			durable_observer(w, m->owner, m->id, m->stanza, m->len);
		route_stored(w, st, m->id);
		break;
	case STORE_EQUOTA:
		offline_refused(w, st, result);
		xml_free(st);
		break;
	case STORE_ENOENT: /* no such account: routing answers service-unavailable */
		route(w, st);
		break;
	default:
		/* Not stored: still delivered if the recipient is there, just not durably. */
		log_error("durable: could not store a message for %s", m->owner);
		route(w, st);
		break;
	}
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
	if (dj->st)
		after_commit(dj->w, dj->st, &dj->m, job->result);
	sm_release(&dj->held);
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

/* ---- deliver first ---- */

enum fl_state {
	FL_WAITING, /* delivered, not stored: in the worker's deadline list */
	FL_STORING, /* its store job is out */
	FL_STORED,  /* stored under m.id, still named by sessions' queues */
};

struct inflight {
	struct store_job job;
	int64_t id;		    /* negative; key in w->inflight once on its home worker */
	struct worker *w;	    /* the recipient's home worker, which alone touches it */
	struct worker *sw;	    /* the sender's worker, where held is released */
	struct sm_held held;	    /* the sender's ack (nothing held without stream management) */
	struct store_offline_msg m; /* what storing it writes (m.stanza once serialized); m.id
				       is the stored id */
	struct xml_node *st;	    /* the message until it is serialized for storing */
	bool owns_st;		    /* st is fl's (else borrowed while it is routed) */
	enum fl_state state;
	bool ended;		      /* acknowledged by a device, or dropped on purpose */
	bool live;		      /* its stored copy is marked live in its account */
	unsigned queued;	      /* sessions' queue entries naming it */
	int64_t deadline;	      /* monotonic ms: stored if still waiting then */
	struct session **plain;	      /* sessions without stream management that got it: */
	size_t nplain, capplain;      /* the stored copy waits offline.grace for each */
	struct inflight *prev, *next; /* the deadline list, oldest first */
};

static struct inflight *
fl_find(struct worker *w, int64_t id)
{
	return imap_get(&w->inflight, id);
}

static void
release_on_sender(struct worker *w, void *arg)
{
	struct sm_held *h = arg;

	sm_release(h);
	free(h);
}

/* The sender's ack may go: on the sender's worker, once. */
static void
fl_release(struct inflight *fl)
{
	if (!fl->held.s)
		return;
	if (fl->sw->srv->joined) { /* shutting down, one thread left: no more mail */
		sm_release(&fl->held);
		return;
	}
	struct sm_held *h = xmalloc(sizeof *h);
	*h = fl->held;
	fl->held.s = NULL;
	worker_call(fl->sw, release_on_sender, h);
}

static void
fl_unlist(struct inflight *fl)
{
	struct worker *w = fl->w;

	if (!fl->prev && w->fl_first != fl)
		return;
	if (fl->prev)
		fl->prev->next = fl->next;
	else
		w->fl_first = fl->next;
	if (fl->next)
		fl->next->prev = fl->prev;
	else
		w->fl_last = fl->prev;
	fl->prev = fl->next = NULL;
}

static void
fl_mark_live(struct inflight *fl, int delta)
{
	struct account *a = hmap_get(&fl->w->accounts, fl->m.owner);

	if (a)
		account_live(a, fl->m.id, delta);
	fl->live = delta > 0;
}

static void
fl_free(struct inflight *fl)
{
	fl_release(fl);
	fl_unlist(fl);
	if (fl->live)
		fl_mark_live(fl, -1);
	if (fl->id)
		imap_del(&fl->w->inflight, fl->id);
	for (size_t i = 0; i < fl->nplain; i++)
		session_unref(fl->plain[i]);
	free(fl->plain);
	if (fl->owns_st)
		xml_free(fl->st);
	offline_message_free(&fl->m);
	free(fl);
}

/* s, without stream management, got the message stored under id: as deliver_to() does. */
static void
plain_got(struct session *s, int64_t id)
{
	account_live(s->acct, id, 1); /* not for offline delivery meanwhile */
	offline_grace_add(s, id);
}

static int
fl_run(struct store *st, struct store_job *job)
{
	struct inflight *fl = container_of(job, struct inflight, job);

	return offline_put(st, &fl->m, worker_config(fl->w)->offline_quota);
}

static void
fl_done(struct store_job *job)
{
	struct inflight *fl = container_of(job, struct inflight, job);
	struct worker *w = fl->w;
	int r = job->result;

	fl->state = FL_STORED;
	fl_release(fl);
	if (r == 0 && durable_observer) /* other devices of the account (SIP) */
		durable_observer(w, fl->m.owner, fl->m.id, fl->m.stanza, fl->m.len);
	bool read = false;
	for (size_t i = 0; i < fl->nplain; i++) {
		struct session *s = fl->plain[i];
		if (r == 0 && !fl->ended && s->read_all)
			read = true; /* it closed its stream cleanly since: it has read it */
		else if (r == 0 && !fl->ended && s->acct && s->state == SS_ACTIVE)
			plain_got(s, fl->m.id);
		session_unref(s);
	}
	fl->nplain = 0;
	fl->ended |= read;
	if (r != 0) {
		/* A session still holding it keeps it; if that ends, it is routed anew. */
		log_error("durable: could not store an unacknowledged message for %s (%d)",
			  fl->m.owner, r);
		if (!fl->queued && !fl->ended && (r == STORE_EQUOTA || r == STORE_ENOENT)) {
			/* Nobody has it: the sender hears why. */
			struct xml_node *st = xml_parse(fl->m.stanza, fl->m.len);
			if (st)
				offline_refused(w, st, r);
			xml_free(st);
		}
		fl_free(fl);
	} else if (fl->ended) {
		offline_forget(w, fl->m.owner, fl->m.id); /* acknowledged while being stored */
		fl_free(fl);
	} else if (!fl->queued) {
		fl_free(fl); /* it waits in storage for the next login */
	} else {
		fl_mark_live(fl, 1); /* not for offline delivery while a session holds it */
	}
}

/* Commits fl to its recipient's queue; the sender's ack goes then, if not before. */
static void
fl_store(struct inflight *fl)
{
	/* Serialized only now: most messages are acknowledged and never get here. */
	if (!fl->m.stanza)
		offline_message(worker_config(fl->w), fl->st, &fl->m);
	if (fl->owns_st)
		xml_free(fl->st);
	fl->st = NULL;
	fl->owns_st = false;
	fl_unlist(fl);
	fl->state = FL_STORING;
	fl->job.run = fl_run;
	fl->job.done = fl_done;
	fl->job.atomic = true;
	worker_store(fl->w, &fl->job);
}

/*
 * After routing, or when a queue entry went: a message that a device without stream
 * management got, that SIP devices must see, or that nothing names any more (no queue
 * entry) while no device acknowledged it, is stored now.
 */
static void
fl_settle(struct inflight *fl)
{
	if (fl->state == FL_WAITING && !fl->ended && (fl->nplain || durable_observer)) {
		fl_store(fl);
		return;
	}
	if (fl->queued)
		return;
	if (fl->state == FL_WAITING && !fl->ended)
		fl_store(fl);
	else if (fl->state == FL_STORED)
		fl_free(fl);
}

static void
fl_deadline(struct timer *t)
{
	struct worker *w = container_of(t, struct worker, fl_timer);
	int64_t now = now_ms();

	while (w->fl_first && w->fl_first->deadline <= now)
		fl_store(w->fl_first); /* no device acknowledged it in time */
	if (w->fl_first)
		timer_start(w->loop, t, (uint64_t)(w->fl_first->deadline - now));
}

void
durable_arrive(struct account *a, struct xml_node *st, const struct jid *to, const struct jid *from,
	       struct inflight *fl)
{
	struct worker *w = a->w;
	int64_t id;

	fl->w = w;
	fl->st = st; /* borrowed while it is routed: storing meanwhile serializes it */
	if (w->stopping) {
		fl_store(fl);
		xml_free(st);
		return;
	}
	id = fl->id = --w->fl_seq;
	imap_put(&w->inflight, id, fl);
	fl->deadline = now_ms() + (int64_t)worker_config(w)->offline_ack_wait;
	fl->prev = w->fl_last;
	if (w->fl_last)
		w->fl_last->next = fl;
	else
		w->fl_first = fl;
	w->fl_last = fl;
	if (!timer_armed(&w->fl_timer)) {
		w->fl_timer.fn = fl_deadline;
		timer_start(w->loop, &w->fl_timer, worker_config(w)->offline_ack_wait);
	}
	route_message(a, st, to, from, id);
	if ((fl = fl_find(w, id)) && fl->st) {
		fl->owns_st = true; /* kept until it is stored or acknowledged */
		fl_settle(fl);
	} else {
		xml_free(st);
		if (fl)
			fl_settle(fl);
	}
}

void
durable_unrouted(struct worker *w, struct inflight *fl, const struct xml_node *st)
{
	fl->w = w;
	fl->st = (struct xml_node *)st; /* borrowed: fl_store serializes it at once */
	fl_store(fl);
}

void
durable_route_named(struct account *a, struct xml_node *st, const struct jid *to,
		    const struct jid *from, int64_t id)
{
	struct inflight *fl = fl_find(a->w, id);

	route_to_account_now(a, st, to, from, fl ? id : 0);
	/* else a device acknowledged it already: from here on an ordinary message */
	if (fl && (fl = fl_find(a->w, id)))
		fl_settle(fl);
}

void
durable_plain(struct session *s, int64_t id)
{
	struct inflight *fl = fl_find(s->w, id);

	if (!fl)
		return;
	if (fl->state == FL_STORED) {
		plain_got(s, fl->m.id);
		return;
	}
	if (fl->nplain == fl->capplain) {
		fl->capplain = fl->capplain ? 2 * fl->capplain : 2;
		fl->plain = xrealloc(fl->plain, fl->capplain * sizeof *fl->plain);
	}
	fl->plain[fl->nplain++] = s;
	s->jobs++;
}

void
durable_queued(struct worker *w, int64_t id)
{
	struct inflight *fl = fl_find(w, id);

	if (fl)
		fl->queued++;
}

void
durable_unqueued(struct worker *w, int64_t id)
{
	struct inflight *fl = fl_find(w, id);

	if (fl && fl->queued && --fl->queued == 0)
		fl_settle(fl);
}

void
durable_keep(struct worker *w, int64_t id)
{
	struct inflight *fl = fl_find(w, id);

	if (fl && fl->state == FL_WAITING && !fl->ended)
		fl_store(fl);
}

void
durable_forget(struct worker *w, int64_t id)
{
	struct inflight *fl = fl_find(w, id);

	if (!fl || fl->ended)
		return;
	fl->ended = true;
	switch (fl->state) {
	case FL_WAITING:
		fl_free(fl); /* the sender's ack goes: the recipient has it */
		break;
	case FL_STORING:
		break; /* fl_done deletes the copy */
	case FL_STORED:
		offline_forget(w, fl->m.owner, fl->m.id);
		fl_free(fl);
		break;
	}
}

void
durable_acked(struct worker *w, int64_t id)
{
	durable_forget(w, id);
	durable_unqueued(w, id);
}

void
durable_worker_free(struct worker *w)
{
	void *v;

	for (size_t i = 0; imap_next(&w->inflight, &i, NULL, &v);) {
		struct inflight *fl = v;
		free(fl->plain);
		if (fl->owns_st)
			xml_free(fl->st);
		offline_message_free(&fl->m);
		free(fl);
	}
	imap_free(&w->inflight);
	w->fl_first = w->fl_last = NULL;
}

bool
durable_route(struct session *s, struct xml_node *st)
{
	const struct config *cfg = s->w->srv->cfg;
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
	owner = to.local && strcmp(to.domain, cfg->domain) == 0 ? jid_bare(&to) : NULL;
	jid_free(&to);
	if (!owner)
		return false;
	if (cfg->offline_ack_wait > 0) {
		/* Deliver first; the recipient's home worker decides (durable_arrive). */
		struct inflight *fl = xcalloc(1, sizeof *fl);
		fl->sw = s->w;
		sm_hold(s, &fl->held);
		fl->m.owner = owner;
		mam_incoming_for(s->w, owner, st);
		fl->m.stamp_ms = wall_ms(); /* the <delay/> of a stored copy says when it came */
		route_inflight(s->w, st, fl);
		return true;
	}
	struct durable_job *dj = xcalloc(1, sizeof *dj);
	dj->m.owner = owner;
	sm_hold(s, &dj->held);
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
