/*
 * offline: store-and-forward for users who are away (XEP-0160). A message that finds
 * no available resource is stamped (XEP-0203) and queued in storage; when a session
 * of the user sends initial presence the queue is sent to it page by page, paced by
 * how fast the client reads, and deleted only once delivery is (probably) complete.
 *
 * Invariant: a stored message leaves storage only after it was written to a session
 * that then stayed connected for offline.grace (or, with stream management, was
 * acknowledged): a session that dies earlier gets the same messages again next time,
 * so the failure mode is a duplicate, never a loss.
 */
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_DELAY      "urn:xmpp:delay"
#define NS_HINTS      "urn:xmpp:hints"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"

#define OFFLINE_PAGE	  200	     /* messages loaded per storage round trip */
#define OFFLINE_PACE_MS	  20	     /* how often a paused delivery checks the output */
#define OFFLINE_OUT_LOW	  (64 << 10) /* send the next page once less than this is queued */
#define OFFLINE_SWEEP_MS  60000	     /* expiry sweep period (worker 0) */
#define OFFLINE_SWEEP_MAX 1000	     /* messages expired per sweep */

/* ---- storing ---- */

/* XEP-0334 / XEP-0160: what is worth keeping. Chat states alone are not. */
bool
offline_worth_storing(const struct xml_node *st)
{
	for (const struct xml_node *c = xml_child(st, NULL, NULL); c; c = xml_next(c, NULL, NULL)) {
		if (strcmp(c->ns, NS_CHATSTATES) == 0 || strcmp(c->ns, NS_HINTS) == 0)
			continue;
		if (strcmp(c->ns, NS_CLIENT) == 0 && strcmp(c->name, "thread") == 0)
			continue;
		return true;
	}
	return xml_child(st, "store", NS_HINTS) != NULL;
}

struct put_job {
	struct store_job job;
	struct worker *w;
	struct xml_node *st; /* the message as sent, for an error reply */
	struct store_offline_msg m;
	long quota;
};

int
offline_put(struct store *st, struct store_offline_msg *m, long quota)
{
	int64_t id;
	int r = store_offline_put(st, m, quota, &id);

	if (r == 0)
		m->id = id;
	return r;
}

bool
offline_refused(struct worker *w, const struct xml_node *st, int result)
{
	if (result == STORE_EQUOTA)
		route_error(w, st, "wait", "resource-constraint",
			    "The recipient's message queue is full");
	else if (result == STORE_ENOENT) /* RFC 6121 8.5.1: no such account (any more) */
		route_error(w, st, "cancel", "service-unavailable", NULL);
	else
		return false;
	return true;
}

static int
put_run(struct store *st, struct store_job *job)
{
	struct put_job *pj = container_of(job, struct put_job, job);

	return offline_put(st, &pj->m, pj->quota);
}

static void
put_done(struct store_job *job)
{
	struct put_job *pj = container_of(job, struct put_job, job);

	if (job->result == 0) {
		log_debug("offline: stored a message for %s", pj->m.owner);
		if (durable_observer) /* the account's other kind of device (SIP) */
			durable_observer(pj->w, pj->m.owner, pj->m.id, pj->m.stanza, pj->m.len);
	} else if (!offline_refused(pj->w, pj->st, job->result)) {
		route_error(pj->w, pj->st, "wait", "internal-server-error",
			    "The message could not be stored");
	} else if (job->result == STORE_EQUOTA) {
		log_info("offline: %s has %ld messages waiting; refusing more", pj->m.owner,
			 pj->quota);
	}
	xml_free(pj->st);
	offline_message_free(&pj->m);
	free(pj);
}

void
offline_message(const struct config *cfg, const struct xml_node *st, struct store_offline_msg *m)
{
	struct xml_node *copy = xml_copy(st), *delay;
	struct buf b = {0};
	char stamp[32];

	m->sender = xstrdup(xml_attr(st, "from"));
	if (!m->stamp_ms) /* or when the caller took it (durable.c) */
		m->stamp_ms = wall_ms();
	m->expires_ms = m->stamp_ms + (int64_t)cfg->offline_expiry;
	/* XEP-0203: delivered from storage, it says when the server took it. */
	time_format(m->stamp_ms, stamp, sizeof stamp);
	delay = xml_add_el(copy, "delay", NS_DELAY);
	xml_set_attr(delay, "from", cfg->domain);
	xml_set_attr(delay, "stamp", stamp);
	xml_add_text(delay, "Offline storage", 15);
	/* Stored with its namespace declared, so it parses back as the same tree. */
	xml_write(&b, copy, "");
	xml_free(copy);
	m->len = buf_used(&b);
	m->stanza = buf_steal(&b);
}

void
offline_message_free(struct store_offline_msg *m)
{
	free((char *)m->owner);
	free((char *)m->sender);
	free((char *)m->stanza);
}

void
offline_store(struct account *a, const struct xml_node *st)
{
	const struct config *cfg = a->w->srv->cfg;
	struct put_job *pj;

	if (xml_child(st, "no-store", NS_HINTS)) {
		/* XEP-0334 section 4: the sender asked us not to keep it; say it was not delivered.
		 */
		route_error(a->w, st, "cancel", "service-unavailable", NULL);
		return;
	}
	if (!offline_worth_storing(st))
		return;
	pj = xcalloc(1, sizeof *pj);
	pj->w = a->w;
	pj->st = xml_copy(st);
	pj->quota = cfg->offline_quota;
	pj->m.owner = xstrdup(a->bare);
	offline_message(cfg, st, &pj->m);
	pj->job.run = put_run;
	pj->job.done = put_done;
	worker_store(a->w, &pj->job);
}

/* ---- delivering ---- */

struct load_job {
	struct store_job job;
	struct session *s;
	char *owner;
	int64_t after, now;
	struct xml_node *msgs[OFFLINE_PAGE]; /* parsed messages, in order (NULL: corrupt) */
	int64_t ids[OFFLINE_PAGE];
	size_t n;
};

static void
load_one(void *arg, const struct store_offline_msg *m)
{
	struct load_job *lj = arg;

	if (lj->n == OFFLINE_PAGE)
		return;
	lj->ids[lj->n] = m->id;
	lj->msgs[lj->n] = xml_parse(m->stanza, m->len);
	if (!lj->msgs[lj->n])
		log_error("offline: stored message %lld for %s is corrupt; skipped",
			  (long long)m->id, m->owner);
	lj->n++;
}

static int
load_run(struct store *st, struct store_job *job)
{
	struct load_job *lj = container_of(job, struct load_job, job);
	return store_offline_load(st, lj->owner, lj->after, lj->now, OFFLINE_PAGE, load_one, lj);
}

static void load_page(struct session *s);

static void
load_done(struct store_job *job)
{
	struct load_job *lj = container_of(job, struct load_job, job);
	struct session *s = lj->s;
	bool more = lj->n == OFFLINE_PAGE;

	session_unref(s);
	s->offline_loading = false;
	for (size_t i = 0; i < lj->n; i++) {
		if (!lj->msgs[i])
			continue;
		if (s->acct && account_is_live(s->acct, lj->ids[i])) {
			/* Another session of the account holds it right now. */
			xml_free(lj->msgs[i]);
			continue;
		}
		/* XEP-0079 once more: expired by now, or the sender wants to know it arrived. */
		if (!amp_check(s->w, lj->msgs[i], "direct", false)) {
			offline_forget(s->w, s->bare, lj->ids[i]);
			xml_free(lj->msgs[i]);
			continue;
		}
		/* With stream management, the ack of this one will let it go (sm.c). */
		session_send_stored(s, lj->msgs[i], lj->ids[i]);
		xml_free(lj->msgs[i]);
	}
	if (job->result == 0 && s->state == SS_ACTIVE) {
		if (lj->n)
			s->offline_upto = lj->ids[lj->n - 1];
		if (lj->n)
			log_info("%s: sent %zu stored message%s", s->id, lj->n,
				 lj->n == 1 ? "" : "s");
		s->offline_more = more;
		if (!s->offline_upto) {
			/* nothing stored */
		} else if (!more && s->sm_enabled) {
			/* XEP-0198: they go as the client acknowledges them. */
			s->offline_ack_wait = true;
		} else {
			/* Either the next page once the client read this one, or the grace period.
			 */
			timer_start(s->w->loop, &s->offline_timer,
				    more ? OFFLINE_PACE_MS : s->w->srv->cfg->offline_grace);
		}
	} else if (job->result != 0) {
		log_error("%s: could not load stored messages", s->id);
	}
	free(lj->owner);
	free(lj);
}

static void
load_page(struct session *s)
{
	struct load_job *lj = xcalloc(1, sizeof *lj);

	lj->s = s;
	lj->owner = xstrdup(s->bare);
	lj->after = s->offline_upto;
	lj->now = wall_ms();
	lj->job.run = load_run;
	lj->job.done = load_done;
	s->jobs++;
	s->offline_loading = true;
	worker_store(s->w, &lj->job);
}

struct delete_job {
	struct store_job job;
	char *owner;
	int64_t upto;
};

static int
delete_run(struct store *st, struct store_job *job)
{
	struct delete_job *dj = container_of(job, struct delete_job, job);
	return store_offline_delete(st, dj->owner, dj->upto);
}

static void
delete_done(struct store_job *job)
{
	struct delete_job *dj = container_of(job, struct delete_job, job);

	if (job->result < 0)
		log_error(
		    "offline: could not delete delivered messages of %s; they will come again",
		    dj->owner);
	free(dj->owner);
	free(dj);
}

static void
delete_upto(struct session *s, int64_t upto)
{
	struct delete_job *dj = xcalloc(1, sizeof *dj);

	dj->owner = xstrdup(s->bare);
	dj->upto = upto;
	dj->job.run = delete_run;
	dj->job.done = delete_done; /* fire and forget: runs on the storage thread */
	store_submit(s->w->srv->store, &dj->job);
}

struct forget_job {
	struct store_job job;
	char *owner;
	size_t n;
	int64_t ids[];
};

static int
forget_run(struct store *st, struct store_job *job)
{
	struct forget_job *fj = container_of(job, struct forget_job, job);
	return store_offline_delete_ids(st, fj->owner, fj->ids, fj->n);
}

static void
forget_done(struct store_job *job)
{
	struct forget_job *fj = container_of(job, struct forget_job, job);

	if (job->result < 0)
		log_error("offline: could not delete %zu delivered message%s of %s; they will come "
			  "again",
			  fj->n, fj->n == 1 ? "" : "s", fj->owner);
	free(fj->owner);
	free(fj);
}

static void
forget_ids(struct worker *w, const char *owner, const int64_t *ids, size_t n)
{
	struct forget_job *fj;

	if (!n)
		return;
	fj = xmalloc(sizeof *fj + n * sizeof *ids);
	memset(&fj->job, 0, sizeof fj->job);
	fj->owner = xstrdup(owner);
	fj->n = n;
	memcpy(fj->ids, ids, n * sizeof *ids);
	fj->job.run = forget_run;
	fj->job.done = forget_done; /* on the storage thread */
	store_submit(w->srv->store, &fj->job);
}

void
offline_forget(struct worker *w, const char *owner, int64_t id)
{
	if (id < 0) /* delivered first, not stored (durable.c) */
		durable_forget(w, id);
	else
		forget_ids(w, owner, &id, 1);
}

void
offline_acked(struct session *s, const int64_t *ids, size_t n)
{
	forget_ids(s->w, s->bare, ids, n);
	for (size_t i = 0; i < n && s->acct; i++)
		account_live(s->acct, ids[i], -1);
	for (size_t i = 0; i < n; i++) {
		if (s->offline_ack_wait && ids[i] >= s->offline_upto) {
			s->offline_ack_wait = false;
			s->offline_upto = 0;
		}
	}
}

/* ---- live messages to a session without stream management ---- */

/* The first n of s's grace list are delivered: delete them. */
static void
grace_forget(struct session *s, size_t n)
{
	int64_t ids[64];

	if (!n)
		return;
	for (size_t i = 0; i < n; i += 64) {
		size_t k = n - i < 64 ? n - i : 64;
		for (size_t j = 0; j < k; j++) {
			ids[j] = s->grace[i + j].id;
			if (s->acct)
				account_live(s->acct, ids[j], -1);
		}
		forget_ids(s->w, s->bare, ids, k);
	}
	memmove(s->grace, s->grace + n, (s->grace_n - n) * sizeof *s->grace);
	s->grace_n -= n;
}

void
offline_delivered_all(struct session *s)
{
	/* RFC 6120 4.4: a client closing its stream has read what came before our close. */
	s->read_all = true;
	grace_forget(s, s->grace_n);
	if (s->offline_upto && !s->offline_more && timer_armed(&s->offline_timer)) {
		timer_stop(s->w->loop, &s->offline_timer);
		delete_upto(s, s->offline_upto);
		s->offline_upto = 0;
	}
}

static void
grace_fired(struct timer *t)
{
	struct session *s = container_of(t, struct session, grace_timer);
	uint64_t grace = s->w->srv->cfg->offline_grace, now = now_ms();
	size_t done = 0;

	if (s->state != SS_ACTIVE || !s->tp)
		return;
	/* Gone once the session stayed up for the grace period with its output written. */
	if (session_out_pending(s) == 0) {
		while (done < s->grace_n && s->grace[done].at + grace <= now)
			done++;
	}
	if (done) {
		grace_forget(s, done);
	}
	if (s->grace_n) {
		uint64_t due = s->grace[0].at + grace;
		timer_start(s->w->loop, t, due > now ? due - now : OFFLINE_PACE_MS);
	}
}

void
offline_grace_add(struct session *s, int64_t id)
{
	if (s->grace_n == s->grace_cap) {
		s->grace_cap = s->grace_cap ? 2 * s->grace_cap : 16;
		s->grace = xrealloc(s->grace, s->grace_cap * sizeof *s->grace);
	}
	s->grace[s->grace_n].id = id;
	s->grace[s->grace_n].at = now_ms();
	s->grace_n++;
	if (!timer_armed(&s->grace_timer)) {
		s->grace_timer.fn = grace_fired;
		timer_start(s->w->loop, &s->grace_timer, s->w->srv->cfg->offline_grace);
	}
}

static void
offline_timer_fired(struct timer *t)
{
	struct session *s = container_of(t, struct session, offline_timer);

	if (s->state != SS_ACTIVE || !s->tp)
		return;
	if (session_out_pending(s) > OFFLINE_OUT_LOW) {
		/* The client is still reading what we sent: wait before sending or forgetting more.
		 */
		timer_start(s->w->loop, t, OFFLINE_PACE_MS);
		return;
	}
	if (s->offline_more) {
		load_page(s);
		return;
	}
	delete_upto(s, s->offline_upto);
	s->offline_upto = 0;
}

void
offline_deliver(struct session *s)
{
	/* XEP-0160 section 4: on initial presence with a non-negative priority. */
	if (s->priority < 0 || s->offline_loading || s->offline_ack_wait ||
	    timer_armed(&s->offline_timer))
		return;
	s->offline_timer.fn = offline_timer_fired;
	s->offline_upto = 0;
	load_page(s);
}

void
offline_session_end(struct session *s)
{
	/* Not deleted: what this session was sent is delivered again next time. */
	if (timer_armed(&s->offline_timer))
		timer_stop(s->w->loop, &s->offline_timer);
	if (timer_armed(&s->grace_timer))
		timer_stop(s->w->loop, &s->grace_timer);
	for (size_t i = 0; i < s->grace_n && s->acct; i++)
		account_live(s->acct, s->grace[i].id,
			     -1); /* stored still: the next login gets it */
	free(s->grace);
	s->grace = NULL;
	s->grace_n = s->grace_cap = 0;
}

/* ---- expiry ---- */

struct expire_job {
	struct store_job job;
	struct worker *w;
	long n;
	struct buf asked; /* NUL-separated stanzas whose senders set XEP-0079 rules */
};

static void
expired_one(void *arg, const struct store_offline_msg *m)
{
	struct expire_job *ej = arg;

	/* Cheap first look: only messages carrying rules are parsed, later, on the worker. */
	if (memmem(m->stanza, m->len, "http://jabber.org/protocol/amp", 30)) {
		buf_append(&ej->asked, m->stanza, m->len);
		buf_append(&ej->asked, "", 1);
	}
}

static int
expire_run(struct store *st, struct store_job *job)
{
	struct expire_job *ej = container_of(job, struct expire_job, job);
	long n = store_offline_expire(st, wall_ms(), OFFLINE_SWEEP_MAX, expired_one, ej);

	if (n < 0)
		return (int)n;
	ej->n = n;
	return 0;
}

static void
expire_done(struct store_job *job)
{
	struct expire_job *ej = container_of(job, struct expire_job, job);
	const char *p = buf_head(&ej->asked), *end = p + buf_used(&ej->asked);

	if (ej->n > 0)
		log_info("offline: %ld expired message%s deleted", ej->n, ej->n == 1 ? "" : "s");
	/* Senders who asked (XEP-0079 deliver=none) learn their message will never arrive. */
	while (p < end) {
		size_t len = strlen(p);
		struct xml_node *st = xml_parse(p, len);
		if (st) {
			amp_check(ej->w, st, "none", false);
			xml_free(st);
		}
		p += len + 1;
	}
	buf_free(&ej->asked);
	free(ej);
}

/* Every minute, or as often as messages expire when offline.expiry is shorter. */
static uint64_t
sweep_period(const struct worker *w)
{
	uint64_t e = w->srv->cfg->offline_expiry;
	return e && e < OFFLINE_SWEEP_MS ? e : OFFLINE_SWEEP_MS;
}

static void
sweep(struct timer *t)
{
	struct worker *w = container_of(t, struct worker, offline_sweep);
	struct expire_job *ej = xcalloc(1, sizeof *ej);

	ej->w = w;
	ej->job.run = expire_run;
	ej->job.done = expire_done;
	worker_store(w, &ej->job);
	timer_start(w->loop, t, sweep_period(w));
}

void
offline_start_sweeper(struct worker *w)
{
	w->offline_sweep.fn = sweep;
	timer_start(w->loop, &w->offline_sweep, sweep_period(w));
}
