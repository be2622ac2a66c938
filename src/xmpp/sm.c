/*
 * sm: XEP-0198 stream management. Both sides count the stanzas they handled and
 * acknowledge with <a h=/>; what the client has not acknowledged stays queued, so a
 * connection that breaks loses nothing: the client resumes the session (and gets the
 * queue again) within thin.hold, or the queued messages go to the account's other
 * resources or to offline storage.
 *
 * Invariant: a stanza sent to a session with stream management is in s->sm_queue until
 * the client's h covers it; the queue is only ever emptied by an ack, a retransmission
 * on resume, or re-routing when the session finally ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_DELAY "urn:xmpp:delay"

struct sm_item {
	struct sm_item *next;
	int64_t stamp;	    /* wall_ms when it was sent, for the delay of a re-routed copy */
	int64_t offline_id; /* > 0: stored, kept until this is acked; < 0: not stored yet,
			       delivered first (durable.c); 0: neither */
	size_t len;
	char data[]; /* the stanza as written on the stream (jabber:client in scope) */
};

static void
sm_send_raw(struct session *s, const char *text)
{
	session_write(s, text, strlen(text));
}

static void
queue_free(struct session *s)
{
	while (s->sm_head) {
		struct sm_item *it = s->sm_head;
		s->sm_head = it->next;
		if (it->offline_id < 0)
			durable_unqueued(s->w, it->offline_id);
		free(it);
	}
	s->sm_tail = NULL;
	s->sm_queued = 0;
}

void
sm_free(struct session *s)
{
	queue_free(s);
	free(s->sm_if);
	s->sm_if = NULL;
	s->sm_if_n = s->sm_if_cap = s->sm_if_head = 0;
	timer_stop(s->w->loop, &s->sm_hold);
}

/* ---- counting and queueing ---- */

static void
overflow(struct timer *t)
{
	struct session *s = container_of(t, struct session, sm_hold);

	log_info("%s: %u stanzas unacknowledged; closing", s->id, s->sm_queued);
	s->sm_resume = false; /* what is queued goes to offline storage or other resources */
	if (s->tp)
		session_stream_error(s, "policy-violation", "Too many unacknowledged stanzas");
	else
		session_close(s, "too many unacknowledged stanzas");
}

void
sm_sent(struct session *s, const char *data, size_t len, int64_t stored)
{
	struct sm_item *it;

	if (!s->sm_enabled)
		return;
	it = xmalloc(sizeof *it + len);
	it->next = NULL;
	it->stamp = wall_ms();
	it->offline_id = stored;
	if (stored < 0)
		durable_queued(s->w, stored);
	it->len = len;
	memcpy(it->data, data, len);
	if (s->sm_tail)
		s->sm_tail->next = it;
	else
		s->sm_head = it;
	s->sm_tail = it;
	s->sm_queued++;
	s->sm_out++;
	/* One request per burst: the client's <a/> answers everything sent before it. */
	if (s->tp && !s->sm_r_sent) {
		s->sm_r_sent = true;
		sm_send_raw(s, "<r xmlns='" NS_SM "'/>");
	}
	if ((long)s->sm_queued > s->w->srv->cfg->sm_queue && !s->sm_overflow) {
		/*
		 * Closed from a timer, not here: the caller may be walking the account's
		 * session list, which closing would change under it.
		 */
		s->sm_overflow = true;
		s->sm_hold.fn = overflow;
		timer_start(s->w->loop, &s->sm_hold, 0);
	}
}

void
sm_handled(struct session *s)
{
	if (s->sm_enabled)
		s->sm_in++;
}

/*
 * The h we may acknowledge: every stanza up to it is handled and, for messages held back
 * (stored before delivery, or delivered and awaiting the recipient's ack: durable.c),
 * released. Holds are kept in the order taken; h stops just before the oldest one still
 * held, whatever order they are released in.
 */
static uint32_t
sm_h(const struct session *s)
{
	return s->sm_if_n ? s->sm_if[s->sm_if_head].seq - 1 : s->sm_in;
}

static void
send_a(struct session *s)
{
	char buf[64];

	snprintf(buf, sizeof buf, "<a xmlns='" NS_SM "' h='%u'/>", sm_h(s));
	sm_send_raw(s, buf);
}

bool
sm_hold(struct session *s, struct sm_held *h)
{
	h->s = NULL;
	if (!s || !s->sm_enabled)
		return false;
	if (s->sm_if_n == s->sm_if_cap) {
		size_t cap = s->sm_if_cap ? 2 * s->sm_if_cap : 16;
		struct sm_hold_slot *n = xmalloc(cap * sizeof *n);
		for (size_t i = 0; i < s->sm_if_n; i++)
			n[i] = s->sm_if[(s->sm_if_head + i) % s->sm_if_cap];
		free(s->sm_if);
		s->sm_if = n;
		s->sm_if_cap = cap;
		s->sm_if_head = 0;
	}
	s->sm_if[(s->sm_if_head + s->sm_if_n) % s->sm_if_cap] =
	    (struct sm_hold_slot){.seq = s->sm_in, .released = false, .r_owed = 0};
	s->sm_if_n++;
	h->s = s;
	h->seq = s->sm_in;
	s->jobs++;
	return true;
}

static void
release_seq(struct session *s, uint32_t seq)
{
	if (s->sm_successor) {
		/* Its holds were taken over by the session that resumed it (take_over). */
		struct session *n = s->sm_successor;
		if (--s->sm_forward_n == 0)
			s->sm_successor = NULL;
		n->jobs--;
		release_seq(n, seq);
		return;
	}
	for (size_t i = 0; i < s->sm_if_n; i++) {
		struct sm_hold_slot *slot = &s->sm_if[(s->sm_if_head + i) % s->sm_if_cap];
		if (slot->seq == seq && !slot->released) {
			slot->released = true;
			break;
		}
	}
	uint32_t owed = 0;
	while (s->sm_if_n && s->sm_if[s->sm_if_head].released) {
		owed += s->sm_if[s->sm_if_head].r_owed;
		s->sm_if_head = (s->sm_if_head + 1) % s->sm_if_cap;
		s->sm_if_n--;
	}
	/* The <r/>s that waited for these holds, answered with the h they now allow. */
	for (; owed && s->tp && s->state == SS_ACTIVE; owed--)
		send_a(s);
}

void
sm_release(struct sm_held *h)
{
	struct session *s = h->s;

	if (!s)
		return;
	h->s = NULL;
	s->jobs--;
	release_seq(s, h->seq);
}

/* Drops what h acknowledges; returns -1 if h acknowledges more than was sent. */
static int
sm_ack(struct session *s, uint32_t h)
{
	uint32_t acked = s->sm_out - s->sm_queued; /* h of the oldest unacknowledged - 1 */
	uint32_t n = h - acked;			   /* mod 2^32, XEP-0198 section 4 */

	if (n > s->sm_queued)
		return -1;
	int64_t stored[64];
	size_t k = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct sm_item *it = s->sm_head;
		s->sm_head = it->next;
		if (it->offline_id < 0)
			durable_acked(s->w, it->offline_id); /* the recipient has it */
		else if (it->offline_id)
			stored[k++] = it->offline_id;
		if (k == ARRAY_LEN(stored)) {
			offline_acked(s, stored, k);
			k = 0;
		}
		free(it);
	}
	if (!s->sm_head)
		s->sm_tail = NULL;
	s->sm_queued -= n;
	offline_acked(s, stored, k);
	return 0;
}

static bool
parse_h(const struct xml_node *el, uint32_t *h)
{
	const char *v = xml_attr(el, "h");
	char *end;
	unsigned long long x;

	if (!v || !*v)
		return false;
	x = strtoull(v, &end, 10);
	if (*end || x > UINT32_MAX)
		return false;
	*h = (uint32_t)x;
	return true;
}

/* ---- resumption ---- */

static void
hold_expired(struct timer *t)
{
	struct session *s = container_of(t, struct session, sm_hold);

	log_info("%s: not resumed within thin.hold; ending the session", s->id);
	s->sm_resume = false;
	session_close(s, "resumption window over");
}

bool
sm_hibernate(struct session *s)
{
	if (!s->sm_resume || s->state != SS_ACTIVE || s->w->stopping || s->sm_overflow)
		return false;
	log_info("%s: connection lost; %s can resume for %llus", s->id, s->full,
		 (unsigned long long)(s->w->srv->cfg->thin_hold / 1000));
	s->tp->release(s->t);
	s->tp = NULL;
	s->sm_r_sent = false;
	s->sm_hold.fn = hold_expired;
	timer_start(s->w->loop, &s->sm_hold, s->w->srv->cfg->thin_hold);
	return true;
}

/*
 * The session ends for good: the messages the client never acknowledged go where a
 * message to this resource would go now that it is gone (another resource, or offline
 * storage), with a delay stamp saying when they first arrived.
 */
void
sm_requeue(struct session *s)
{
	struct account *a = s->acct;
	char stamp[32];

	while (s->sm_head) {
		struct sm_item *it = s->sm_head;
		struct buf b = {0};
		struct xml_node *wrap, *st;
		struct jid to, from;

		s->sm_head = it->next;
		buf_puts(&b, "<w xmlns='" NS_CLIENT "'>");
		buf_append(&b, it->data, it->len);
		buf_puts(&b, "</w>");
		wrap = xml_parse(buf_head(&b), buf_used(&b));
		buf_free(&b);
		st = wrap ? xml_child(wrap, NULL, NULL) : NULL;
		if (it->offline_id > 0 && a)
			account_live(a, it->offline_id, -1);
		if (it->offline_id && s->w->stopping) {
			/* stored, or stored once unnamed below: delivered at the next login */
		} else if (st && stanza_is(st, "message") && a && xml_attr(st, "to") &&
			   xml_attr(st, "from") && jid_parse(xml_attr(st, "to"), &to) == 0) {
			xml_detach(st);
			if (!xml_child(st, "delay", NS_DELAY)) {
				struct xml_node *d = xml_add_el(st, "delay", NS_DELAY);
				time_format(it->stamp, stamp, sizeof stamp);
				xml_set_attr(d, "from", s->w->srv->cfg->domain);
				xml_set_attr(d, "stamp", stamp);
			}
			if (s->w->stopping) {
				/* Everyone is going away: keep it for later instead. */
				offline_store(a, st);
				xml_free(st);
			} else if (jid_parse(xml_attr(st, "from"), &from) == 0) {
				/* A stored one keeps its id: whoever gets it now lets it go. */
				route_to_account(a, st, &to, &from, it->offline_id);
				jid_free(&from);
			} else {
				xml_free(st);
			}
			jid_free(&to);
		}
		xml_free(wrap);
		if (it->offline_id < 0) /* after re-routing, which may have queued it elsewhere */
			durable_unqueued(s->w, it->offline_id);
		free(it);
	}
	s->sm_tail = NULL;
	s->sm_queued = 0;
}

struct resume_req {
	struct session *s;
	char *previd;
	uint32_t h;
};

/* Moves the resumable session old's identity and state into s (the new connection). */
static void
take_over(struct session *s, struct session *old)
{
	struct account *a = old->acct;

	s->resource = old->resource;
	old->resource = NULL;
	s->full = old->full;
	old->full = NULL;
	s->available = old->available;
	s->priority = old->priority;
	s->presence = old->presence;
	old->presence = NULL;
	s->directed = old->directed;
	memset(&old->directed, 0, sizeof old->directed);
	s->interested = old->interested;
	s->carbons = old->carbons;
	s->sm_enabled = true;
	s->sm_resume = true;
	memcpy(s->sm_id, old->sm_id, sizeof s->sm_id);
	s->sm_in = old->sm_in;
	s->sm_out = old->sm_out;
	s->sm_head = old->sm_head;
	s->sm_tail = old->sm_tail;
	s->sm_queued = old->sm_queued;
	old->sm_head = old->sm_tail = NULL;
	old->sm_queued = 0;
	/*
	 * Stores still pending for messages the old session handled hold back the new one's
	 * acks as they held back the old one's (DESIGN.md durability rule); their completions,
	 * addressed to the old session, are forwarded here.
	 */
	s->sm_if = old->sm_if;
	s->sm_if_head = old->sm_if_head;
	s->sm_if_n = old->sm_if_n;
	s->sm_if_cap = old->sm_if_cap;
	/* The old connection's unanswered <r/>s are moot: <resumed h/> answers them. */
	for (size_t i = 0; i < s->sm_if_n; i++)
		s->sm_if[(s->sm_if_head + i) % s->sm_if_cap].r_owed = 0;
	old->sm_if = NULL;
	old->sm_if_head = old->sm_if_cap = 0;
	if (old->sm_if_n) {
		old->sm_successor = s;
		old->sm_forward_n = (uint32_t)old->sm_if_n;
		s->jobs += (unsigned)old->sm_if_n;
	}
	old->sm_if_n = 0;
	s->offline_upto = old->offline_upto;
	s->offline_ack_wait = old->offline_ack_wait;
	/* old leaves quietly: no unavailable presence, nothing to re-route. */
	old->available = false;
	old->sm_resume = false;
	old->sm_enabled = false;
	account_session_remove(a, old);
	old->acct = NULL;
	if (old->tp)
		session_stream_error(old, "conflict", "The session was resumed elsewhere");
	else
		session_close(old, "resumed elsewhere");
	s->acct = a;
	account_session_add(a, s);
}

static void
resume_with_account(struct account *a, void *arg)
{
	struct resume_req *rr = arg;
	struct session *s = rr->s, *old = NULL;
	char buf[160];

	session_unref(s);
	if (s->state == SS_CLOSED)
		goto done;
	session_busy(s, false);
	if (a->state == AS_READY) {
		for (old = a->sessions; old; old = old->acct_next) {
			if (old->sm_resume && strcmp(old->sm_id, rr->previd) == 0)
				break;
		}
	}
	if (!old) {
		/* XEP-0198 section 5: the client may bind a new session instead. */
		sm_send_raw(s, "<failed xmlns='" NS_SM "'><item-not-found "
			       "xmlns='" NS_STANZAS "'/></failed>");
		goto done;
	}
	take_over(s, old);
	s->state = SS_ACTIVE;
	timer_stop(s->w->loop, &s->auth_timer);
	snprintf(buf, sizeof buf, "<resumed xmlns='" NS_SM "' previd='%s' h='%u'/>", s->sm_id,
		 sm_h(s));
	sm_send_raw(s, buf);
	if (sm_ack(s, rr->h) < 0) {
		session_stream_error(s, "undefined-condition", "h acknowledges unsent stanzas");
		goto done;
	}
	/* Everything not acknowledged goes out again, in order (XEP-0198 section 5). */
	for (struct sm_item *it = s->sm_head; it; it = it->next)
		session_write(s, it->data, it->len);
	if (s->sm_head) {
		s->sm_r_sent = true;
		sm_send_raw(s, "<r xmlns='" NS_SM "'/>");
	}
	log_info("%s: resumed %s (%u stanzas resent)", s->id, s->full, s->sm_queued);
	session_ext_bound(s, NULL);
	session_process(s);
done:
	free(rr->previd);
	free(rr);
}

/* ---- the protocol elements ---- */

void
sm_element(struct session *s, struct xml_node *el)
{
	uint32_t h;

	if (strcmp(el->name, "r") == 0 && s->sm_enabled) {
		/*
		 * XEP-0198 section 4: the <a/> carries the stanzas handled. A message held back
		 * (stored before its delivery counts, or delivered first and awaiting its
		 * recipient's ack: durable.c) is not handled yet, so while holds are pending the
		 * answer waits for those taken before this <r/>: within offline.ack_wait plus a
		 * commit. Answering at once and again on release cost an extra <a/> per message
		 * to clients that ask after each one (bench/RESULTS.md).
		 */
		if (s->sm_if_n)
			s->sm_if[(s->sm_if_head + s->sm_if_n - 1) % s->sm_if_cap].r_owed++;
		else
			send_a(s);
	} else if (strcmp(el->name, "a") == 0 && s->sm_enabled) {
		s->sm_r_sent = false;
		if (!parse_h(el, &h) || sm_ack(s, h) < 0) {
			/* XEP-0198 section 4: an h beyond what was sent is a protocol error. */
			session_stream_error(s, "undefined-condition", "Bad h in <a/>");
		}
	} else if (strcmp(el->name, "enable") == 0 && s->state == SS_ACTIVE && !s->sm_enabled) {
		const char *resume = xml_attr(el, "resume");
		char buf[200];
		s->sm_enabled = true;
		s->sm_resume = resume && (strcmp(resume, "true") == 0 || strcmp(resume, "1") == 0);
		if (s->sm_resume) {
			rand_id(s->sm_id, sizeof s->sm_id - 1);
			snprintf(buf, sizeof buf,
				 "<enabled xmlns='" NS_SM "' id='%s' resume='true' max='%llu'/>",
				 s->sm_id, (unsigned long long)(s->w->srv->cfg->thin_hold / 1000));
		} else {
			snprintf(buf, sizeof buf, "<enabled xmlns='" NS_SM "'/>");
		}
		sm_send_raw(s, buf);
	} else if (strcmp(el->name, "resume") == 0 && s->state == SS_BIND) {
		struct resume_req *rr;
		const char *previd = xml_attr(el, "previd");
		if (!previd || !parse_h(el, &h)) {
			sm_send_raw(s, "<failed xmlns='" NS_SM "'><bad-request "
				       "xmlns='" NS_STANZAS "'/></failed>");
			goto done;
		}
		rr = xcalloc(1, sizeof *rr);
		rr->s = s;
		rr->previd = xstrdup(previd);
		rr->h = h;
		s->jobs++;
		session_busy(s, true);
		account_with(s->w, s->bare, resume_with_account, rr);
	} else {
		/* enable twice or before bind, resume after bind, ... (XEP-0198 section 3) */
		sm_send_raw(s, "<failed xmlns='" NS_SM "'><unexpected-request "
			       "xmlns='" NS_STANZAS "'/></failed>");
	}
done:
	xml_free(el);
}
