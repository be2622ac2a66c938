/*
 * mam: the message archive (XEP-0313) with stable stanza ids (XEP-0359). Every chat
 * message an account sends or receives is archived, and any of its devices can page
 * through the archive (XEP-0059 RSM) by conversation and time, so a second device sees
 * the whole conversation. Rooms have archives too.
 *
 * Invariant: archive ids come from one server-wide counter that carries the time, so
 * they are unique, paging by id is paging by time, and the id given to a recipient in
 * <stanza-id/> is the one it can page from.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xmpp_int.h"

#define NS_MAM	 "urn:xmpp:mam:2"
#define NS_SID	 "urn:xmpp:sid:0"
#define NS_RSM	 "http://jabber.org/protocol/rsm"
#define NS_XDATA "jabber:x:data"
#define NS_FWD	 "urn:xmpp:forward:0"
#define NS_DELAY "urn:xmpp:delay"
#define NS_HINTS "urn:xmpp:hints"

#define MAM_PAGE_DEFAULT 50
#define MAM_MS_LIMIT	 ((int64_t)1 << 43) /* ms that fit an id (next_id) */
#define MAM_PAGE_MAX	 250

/*
 * [44 bits of milliseconds][20 bits of sequence], from one counter for the whole
 * server: an account's messages get their ids on the workers of their senders (the
 * stored copy must carry its id), so only a shared counter keeps one archive in the
 * order its owner saw. One atomic operation per message; increasing even if the clock
 * stalls or steps back.
 */
static _Atomic int64_t mam_last_id;

int64_t
mam_next_id(struct worker *w)
{
	int64_t now = (int64_t)wall_ms() << 20;
	int64_t last = atomic_load_explicit(&mam_last_id, memory_order_relaxed), id;

	(void)w;
	do {
		id = now > last ? now : last + 1;
	} while (!atomic_compare_exchange_weak_explicit(
	    &mam_last_id, &last, id, memory_order_relaxed, memory_order_relaxed));
	return id;
}

bool
mam_eligible(const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");

	/* XEP-0313 section 5.1.1: messages with a body; groupchat belongs to the room. */
	if (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0)
		return false;
	if (xml_child(st, "no-store", NS_HINTS) || xml_child(st, "no-permanent-store", NS_HINTS))
		return false;
	return xml_child(st, "body", NS_CLIENT) || xml_child(st, "store", NS_HINTS);
}

void
mam_strip_ids(struct xml_node *st)
{
	struct xml_node *c, *next;

	/* XEP-0359 section 3: a sender must not be able to fake our ids. */
	for (c = xml_child(st, "stanza-id", NS_SID); c; c = next) {
		next = xml_next(c, "stanza-id", NS_SID);
		xml_detach(c);
		xml_free(c);
	}
}

struct put_job {
	struct store_job job;
	struct store_archive_msg m;
	bool room;
};

static int
put_run(struct store *st, struct store_job *job)
{
	struct put_job *pj = container_of(job, struct put_job, job);
	return pj->room ? store_room_archive_put(st, &pj->m) : store_archive_put(st, &pj->m);
}

static void
put_done(struct store_job *job)
{
	struct put_job *pj = container_of(job, struct put_job, job);

	if (job->result < 0 && job->result != STORE_ENOENT)
		log_error("mam: could not archive a message of %s", pj->m.owner);
	free((char *)pj->m.owner);
	free((char *)pj->m.with);
	free((char *)pj->m.stanza);
	free(pj);
}

static void
archive(struct worker *w, const char *owner, const char *with, const struct xml_node *st,
	bool outgoing, int64_t id, bool room)
{
	struct put_job *pj = xcalloc(1, sizeof *pj);
	struct buf b = {0};

	xml_write(&b, st, "");
	pj->m.id = id;
	pj->m.owner = xstrdup(owner);
	/* Conversations are with accounts, not devices; in a room, with the occupant room/nick. */
	pj->m.with = room ? NULL : jid_bare_of(with);
	if (!pj->m.with)
		pj->m.with = xstrdup(with);
	pj->m.len = buf_used(&b);
	pj->m.stanza = buf_steal(&b);
	pj->m.stamp_ms = wall_ms();
	pj->m.outgoing = outgoing;
	pj->room = room;
	pj->job.run = put_run;
	pj->job.atomic = true;	 /* one INSERT */
	pj->job.done = put_done; /* fire and forget, on the storage thread */
	store_submit(w->srv->store, &pj->job);
}

/* Gives st a new archive id as <stanza-id by=.../> (XEP-0359) and returns it. */
static int64_t
stamp_id(struct worker *w, struct xml_node *st, const char *by)
{
	int64_t id = mam_next_id(w);
	struct xml_node *sid = xml_add_el(st, "stanza-id", NS_SID);
	char idstr[24];

	snprintf(idstr, sizeof idstr, "%" PRId64, id);
	xml_set_attr(sid, "by", by);
	xml_set_attr(sid, "id", idstr);
	return id;
}

void
mam_archive_room(struct worker *w, const char *room, const char *with, struct xml_node *st)
{
	if (!w->srv->cfg->archive_enabled)
		return;
	/* XEP-0359 section 3: in a room, the room gives the id, stanza-id by='room'. */
	archive(w, room, with, st, false, stamp_id(w, st, room), true);
}

void
mam_outgoing(struct session *s, const struct xml_node *st)
{
	const char *to = xml_attr(st, "to");

	if (!s->w->srv->cfg->archive_enabled || !to || !mam_eligible(st))
		return;
	archive(s->w, s->bare, to, st, true, mam_next_id(s->w), false);
}

void
mam_incoming_for(struct worker *w, const char *owner, struct xml_node *st)
{
	const char *from = xml_attr(st, "from");
	struct xml_node *sid;

	if (!w->srv->cfg->archive_enabled || !from || !mam_eligible(st))
		return;
	/* Already archived for this owner (stored before delivery, or re-routed). */
	for (sid = xml_child(st, "stanza-id", NS_SID); sid;
	     sid = xml_next(sid, "stanza-id", NS_SID))
		if (xml_attr(sid, "by") && strcmp(xml_attr(sid, "by"), owner) == 0)
			return;
	archive(w, owner, from, st, false, stamp_id(w, st, owner), false);
}

void
mam_incoming(struct account *a, struct xml_node *st)
{
	mam_incoming_for(a->w, a->bare, st);
}

/* ---- queries (XEP-0313 section 4) ---- */

/* Parses an XEP-0082 DateTime into ms since the epoch; returns 0 or -1. */
static int
parse_datetime(const char *s, int64_t *out)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int64_t ms = 0, off = 0;

	if (!p)
		return -1;
	if (*p == '.') {
		int digits = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
		}
		if (!digits)
			return -1;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (*p == 'Z') {
		p++;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int h = (p[1] - '0') * 10 + (p[2] - '0'), m = (p[4] - '0') * 10 + (p[5] - '0');
		off = (int64_t)(h * 60 + m) * 60000 * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	*out = (int64_t)timegm(&tm) * 1000 + ms - off;
	return 0;
}

static const char *
form_value(const struct xml_node *x, const char *var, char **free_me)
{
	for (struct xml_node *f = x ? xml_child(x, "field", NS_XDATA) : NULL; f;
	     f = xml_next(f, "field", NS_XDATA)) {
		const char *v = xml_attr(f, "var");
		struct xml_node *val;
		if (!v || strcmp(v, var) != 0 || !(val = xml_child(f, "value", NS_XDATA)))
			continue;
		*free_me = xml_text(val);
		return *free_me;
	}
	return NULL;
}

static int
parse_id(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -1;
	v = strtoll(s, &end, 10);
	if (*end || v <= 0)
		return -1;
	*out = v;
	return 0;
}

struct query_job {
	struct store_job job;
	struct worker *w;
	bool room;
	struct xml_node *iq;
	char *queryid;
	struct store_archive_query q;
	char *owner, *with;
	struct xml_node *head, *tail; /* result <message/>s to send */
	int64_t first, last;
	size_t n;
	bool complete;
};

static void
query_row(void *arg, const struct store_archive_msg *m)
{
	struct query_job *qj = arg;
	struct xml_node *orig = xml_parse(m->stanza, m->len);
	struct xml_node *msg, *res, *fwd, *delay;
	char idstr[24], stamp[32];

	if (!orig)
		return;
	snprintf(idstr, sizeof idstr, "%" PRId64, m->id);
	time_format(m->stamp_ms, stamp, sizeof stamp);
	msg = stanza_new("message", qj->owner, NULL, NULL, NULL);
	res = xml_add_el(msg, "result", NS_MAM);
	if (qj->queryid)
		xml_set_attr(res, "queryid", qj->queryid);
	xml_set_attr(res, "id", idstr);
	fwd = xml_add_el(res, "forwarded", NS_FWD);
	delay = xml_add_el(fwd, "delay", NS_DELAY);
	xml_set_attr(delay, "stamp", stamp);
	xml_add_child(fwd, orig);
	if (!qj->n)
		qj->first = m->id;
	qj->last = m->id;
	qj->n++;
	if (qj->tail)
		qj->tail->next = msg;
	else
		qj->head = msg;
	qj->tail = msg;
}

static int
query_run(struct store *st, struct store_job *job)
{
	struct query_job *qj = container_of(job, struct query_job, job);
	if (qj->room)
		return store_room_archive_query(st, &qj->q, query_row, qj, &qj->complete);
	return store_archive_query(st, &qj->q, query_row, qj, &qj->complete);
}

static void
query_done(struct store_job *job)
{
	struct query_job *qj = container_of(job, struct query_job, job);
	const char *to = xml_attr(qj->iq, "from");

	if (job->result == 0) {
		struct xml_node *fin = xml_el_new("fin", NS_MAM), *set, *res;
		char idstr[24];
		while (qj->head) {
			struct xml_node *m = qj->head;
			qj->head = m->next;
			m->next = NULL;
			xml_set_attr(m, "to", to);
			route(qj->w, m);
		}
		/* XEP-0313 section 4.3: the iq result comes after the messages (same path, in
		 * order). */
		if (qj->complete)
			xml_set_attr(fin, "complete", "true");
		set = xml_add_el(fin, "set", NS_RSM);
		if (qj->n) {
			snprintf(idstr, sizeof idstr, "%" PRId64, qj->first);
			xml_add_text(xml_add_el(set, "first", NULL), idstr, strlen(idstr));
			snprintf(idstr, sizeof idstr, "%" PRId64, qj->last);
			xml_add_text(xml_add_el(set, "last", NULL), idstr, strlen(idstr));
		}
		res = stanza_new("iq", qj->owner, to, "result", xml_attr(qj->iq, "id"));
		xml_add_child(res, fin);
		route(qj->w, res);
	} else {
		route_error(qj->w, qj->iq, "wait", "internal-server-error", NULL);
	}
	while (qj->head) {
		struct xml_node *m = qj->head;
		qj->head = m->next;
		m->next = NULL;
		xml_free(m);
	}
	xml_free(qj->iq);
	free(qj->queryid);
	free(qj->owner);
	free(qj->with);
	free(qj);
}

static struct xml_node *
query_form(void)
{
	struct xml_node *q = xml_el_new("query", NS_MAM);
	struct xml_node *x = xml_add_el(q, "x", NS_XDATA);
	struct xml_node *f = xml_add_el(x, "field", NULL);
	static const char *const vars[] = {"with", "start", "end"};

	xml_set_attr(x, "type", "form");
	xml_set_attr(f, "var", "FORM_TYPE");
	xml_set_attr(f, "type", "hidden");
	xml_add_text(xml_add_el(f, "value", NULL), NS_MAM, strlen(NS_MAM));
	for (size_t i = 0; i < ARRAY_LEN(vars); i++) {
		f = xml_add_el(x, "field", NULL);
		xml_set_attr(f, "var", vars[i]);
		xml_set_attr(f, "type", i ? "text-single" : "jid-single");
	}
	return q;
}

bool
mam_is_query(const struct xml_node *st)
{
	return xml_child(st, "query", NS_MAM) != NULL;
}

void
mam_query_for(struct worker *w, struct xml_node *st, const char *owner, bool room)
{
	struct xml_node *q = xml_child(st, "query", NS_MAM);
	struct xml_node *x = xml_child(q, "x", NS_XDATA);
	struct xml_node *set = xml_child(q, "set", NS_RSM);
	const char *type = xml_attr(st, "type");
	char *with = NULL, *start = NULL, *end = NULL, *t;
	struct query_job *qj;
	struct xml_node *e;

	if (!xml_attr(st, "to"))
		xml_set_attr(st, "to", owner); /* replies come from the archive's owner */
	if (strcmp(type, "get") == 0) {
		/* XEP-0313 section 6 */
		struct xml_node *r =
		    stanza_new("iq", owner, xml_attr(st, "from"), "result", xml_attr(st, "id"));
		xml_add_child(r, query_form());
		route(w, r);
		xml_free(st);
		return;
	}
	qj = xcalloc(1, sizeof *qj);
	qj->q.max = MAM_PAGE_DEFAULT;
	form_value(x, "with", &with);
	form_value(x, "start", &start);
	form_value(x, "end", &end);
	if (with) {
		struct jid j;
		if (jid_parse(with, &j) < 0)
			goto bad;
		qj->with = room ? jid_full(&j) : jid_bare(&j);
		jid_free(&j);
	}
	if ((start && parse_datetime(start, &qj->q.start_ms) < 0) ||
	    (end && parse_datetime(end, &qj->q.end_ms) < 0))
		goto bad;
	if (set && (e = xml_child(set, "max", NS_RSM))) {
		t = xml_text(e);
		long v = strtol(t, NULL, 10);
		free(t);
		qj->q.max = v < 0 ? 0 : v > MAM_PAGE_MAX ? MAM_PAGE_MAX : (size_t)v;
	}
	if (set && (e = xml_child(set, "after", NS_RSM))) {
		t = xml_text(e);
		int r = parse_id(t, &qj->q.after_id);
		free(t);
		if (r < 0)
			goto notfound;
	}
	if (set && (e = xml_child(set, "before", NS_RSM))) {
		t = xml_text(e);
		/* XEP-0059 2.5: an empty <before/> asks for the last page. */
		int r = *t ? parse_id(t, &qj->q.before_id) : 0;
		free(t);
		if (r < 0)
			goto notfound;
		qj->q.last = true;
	}
	/*
	 * Ids carry their time (next_id): a time range is also an id range, which the
	 * store can seek to instead of filtering row by row. Times past what 44 bits of
	 * milliseconds hold (year 2527) leave the ids unbounded; the stamps still filter.
	 */
	if (qj->q.start_ms > 0 && qj->q.start_ms < MAM_MS_LIMIT) {
		int64_t lo = (qj->q.start_ms << 20) - 1;
		if (lo > qj->q.after_id)
			qj->q.after_id = lo;
	}
	if (qj->q.end_ms > 0 && qj->q.end_ms + 1 < MAM_MS_LIMIT) {
		int64_t hi = (qj->q.end_ms + 1) << 20;
		if (!qj->q.before_id || hi < qj->q.before_id)
			qj->q.before_id = hi;
	}
	free(with);
	free(start);
	free(end);
	qj->w = w;
	qj->room = room;
	qj->iq = st;
	qj->queryid = xml_attr(q, "queryid") ? xstrdup(xml_attr(q, "queryid")) : NULL;
	qj->owner = xstrdup(owner);
	qj->q.owner = qj->owner;
	qj->q.with = qj->with;
	if (qj->q.max == 0)
		qj->q.max = 1; /* the store pages by at least one */
	qj->job.run = query_run;
	qj->job.done = query_done;
	worker_store(w, &qj->job);
	return;
bad:
	route_error(w, st, "modify", "bad-request", NULL);
	goto out;
notfound:
	route_error(w, st, "cancel", "item-not-found", NULL);
out:
	free(with);
	free(start);
	free(end);
	free(qj->with);
	free(qj);
	xml_free(st);
}

void
mam_query(struct session *s, struct xml_node *st)
{
	mam_query_for(s->w, st, s->bare, false);
}
