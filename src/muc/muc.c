/*
 * muc: XEP-0045 rooms. A stanza for room@conference.<domain>[/nick] is posted to the
 * room's home worker, where the room is looked up (or loaded from storage, if it is
 * persistent) and the stanza handled: joins, presence, groupchat and private messages
 * here; moderation and configuration in muc_config.c.
 *
 * Invariant: everything about a room happens on its home worker; occupants are reached
 * only by routing to their real JIDs, so the room does not care on which worker, or
 * (later) which server, they are.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muc_int.h"

const char *const muc_aff_names[] = {"none", "outcast", "member", "admin", "owner"};
const char *const muc_role_names[] = {"none", "visitor", "participant", "moderator"};

static void room_handle(struct room *r, struct xml_node *st, const struct jid *to,
			const char *from);

/* ---- helpers ---- */

int
muc_aff_of(const struct room *r, const char *bare)
{
	return (int)(intptr_t)hmap_get(&r->affs, bare);
}

int
muc_aff_parse(const char *s)
{
	for (int i = 0; i < (int)ARRAY_LEN(muc_aff_names); i++)
		if (s && strcmp(s, muc_aff_names[i]) == 0)
			return i;
	return -1;
}

char *
muc_bare_of(const char *full)
{
	struct jid j;
	char *b;

	if (jid_parse(full, &j) < 0)
		return xstrdup(full);
	b = jid_bare(&j);
	jid_free(&j);
	return b;
}

char *
muc_nick_jid(const struct room *r, const char *nick)
{
	char *s = xmalloc(strlen(r->jid) + strlen(nick) + 2);
	sprintf(s, "%s/%s", r->jid, nick);
	return s;
}

struct occupant *
muc_by_nick(struct room *r, const char *nick)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (strcmp(o->nick, nick) == 0)
			return o;
	return NULL;
}

struct occupant *
muc_by_jid(struct room *r, const char *jid)
{
	for (struct occupant *o = r->occupants; o; o = o->next) {
		if (strcmp(o->jid, jid) == 0)
			return o;
		for (size_t i = 0; i < o->nalso; i++)
			if (strcmp(o->also[i], jid) == 0)
				return o;
	}
	return NULL;
}

void
muc_send(struct room *r, const struct occupant *o, struct xml_node *st)
{
	for (size_t i = 0; i < o->nalso; i++) {
		struct xml_node *c = xml_copy(st);
		xml_set_attr(c, "to", o->also[i]);
		route(r->w, c);
	}
	xml_set_attr(st, "to", o->jid);
	route(r->w, st);
}

/* Removes jid, one of the devices sharing o's seat, without telling the room. */
void
seat_unshare(struct occupant *o, const char *jid)
{
	size_t i = 0;

	if (strcmp(o->jid, jid) == 0) {
		free(o->jid);
		o->jid = o->also[0]; /* the next device keeps the seat */
	} else {
		while (i < o->nalso && strcmp(o->also[i], jid) != 0)
			i++;
		if (i == o->nalso)
			return;
		free(o->also[i]);
	}
	memmove(&o->also[i], &o->also[i + 1], (o->nalso - i - 1) * sizeof *o->also);
	o->nalso--;
}

void
muc_error(struct room *r, struct xml_node *st, const char *type, const char *cond)
{
	route_error(r->w, st, type, cond, NULL);
	xml_free(st);
}

int
muc_role_for(const struct room *r, int aff)
{
	if (aff >= AFF_ADMIN)
		return ROLE_MODERATOR;
	if (r->cfg.moderated && aff < AFF_MEMBER)
		return ROLE_VISITOR;
	return ROLE_PARTICIPANT;
}

/* ---- rooms in memory ---- */

static void
occupant_free(struct occupant *o)
{
	free(o->nick);
	free(o->jid);
	for (size_t i = 0; i < o->nalso; i++)
		free(o->also[i]);
	free(o->also);
	free(o->bare);
	xml_free(o->presence);
	free(o);
}

static void
room_free(struct room *r)
{
	hmap_del(&r->w->rooms, r->jid);
	while (r->occupants) {
		struct occupant *o = r->occupants;
		r->occupants = o->next;
		occupant_free(o);
	}
	for (size_t i = 0; i < r->hist_n; i++)
		xml_free(r->history[(r->hist_start + i) % MUC_HISTORY]);
	while (r->waits) {
		struct room_wait *wt = r->waits;
		r->waits = wt->next;
		xml_free(wt->st);
		jid_free(&wt->to);
		free(wt->from);
		free(wt);
	}
	hmap_free(&r->affs);
	muc_relays_free(r);
	muc_reservations_free(r);
	free(r->cfg.name);
	free(r->cfg.secret);
	free(r->subject);
	free(r->subject_by);
	free(r->jid);
	free(r);
}

/* A room nobody is in and nobody keeps goes away (XEP-0045 10.9 for temporary rooms). */
static void
room_maybe_free(struct room *r)
{
	if (!r->occupants && !r->cfg.persistent && !r->waits && r->state != ROOM_LOADING)
		room_free(r);
}

struct load_job {
	struct store_job job;
	struct room *r;
	struct buf config, subject;
	char **jids;
	int *affs;
	size_t n, cap;
	struct xml_node *hist[MUC_HISTORY]; /* the newest archived messages, oldest first */
	size_t nhist;
};

static void
load_hist(void *arg, const struct store_archive_msg *m)
{
	struct load_job *lj = arg;
	struct xml_node *st;
	struct xml_node *d;
	char stamp[32];

	if (lj->nhist == MUC_HISTORY || !(st = xml_parse(m->stanza, m->len)))
		return;
	d = xml_add_el(st, "delay", NS_DELAY);
	time_format(m->stamp_ms, stamp, sizeof stamp);
	xml_set_attr(d, "from", lj->r->jid);
	xml_set_attr(d, "stamp", stamp);
	lj->hist[lj->nhist++] = st;
}

static void
load_aff(void *arg, const char *jid, int aff)
{
	struct load_job *lj = arg;

	if (lj->n == lj->cap) {
		lj->cap = lj->cap ? 2 * lj->cap : 16;
		lj->jids = xrealloc(lj->jids, lj->cap * sizeof *lj->jids);
		lj->affs = xrealloc(lj->affs, lj->cap * sizeof *lj->affs);
	}
	lj->jids[lj->n] = xstrdup(jid);
	lj->affs[lj->n++] = aff;
}

static int
load_run(struct store *st, struct store_job *job)
{
	struct load_job *lj = container_of(job, struct load_job, job);
	int r = store_room_get(st, lj->r->jid, &lj->config, &lj->subject);

	if (r < 0)
		return r;
	if ((r = store_room_affiliations(st, lj->r->jid, load_aff, lj)) < 0)
		return r;
	/* A restart keeps the history on join: the newest messages of the room's archive. */
	struct store_archive_query q = {.owner = lj->r->jid, .max = MUC_HISTORY, .last = true};
	bool complete;
	return store_room_archive_query(st, &q, load_hist, lj, &complete);
}

static void
load_done(struct store_job *job)
{
	struct load_job *lj = container_of(job, struct load_job, job);
	struct room *r = lj->r;

	if (job->result == 0) {
		r->state = ROOM_READY;
		muc_cfg_parse(&r->cfg, buf_head(&lj->config));
		r->cfg.persistent = true;
		r->subject = xstrdup(buf_head(&lj->subject));
		for (size_t i = 0; i < lj->n; i++)
			hmap_put(&r->affs, lj->jids[i], (void *)(intptr_t)lj->affs[i]);
		for (size_t i = 0; i < lj->nhist; i++) {
			r->history[i] = lj->hist[i];
			lj->hist[i] = NULL;
		}
		r->hist_n = lj->nhist;
	} else {
		if (job->result != STORE_ENOENT)
			log_error("muc: could not load room %s", r->jid);
		r->state = ROOM_ABSENT;
	}
	for (size_t i = 0; i < lj->n; i++)
		free(lj->jids[i]);
	for (size_t i = 0; i < lj->nhist; i++)
		xml_free(lj->hist[i]);
	free(lj->jids);
	free(lj->affs);
	buf_free(&lj->config);
	buf_free(&lj->subject);
	free(lj);
	if (r->w->stopping) {
		room_free(r);
		return;
	}
	while (r->waits) {
		struct room_wait *wt = r->waits;
		r->waits = wt->next;
		if (!r->waits)
			r->waits_tail = NULL;
		room_handle(r, wt->st, &wt->to, wt->from);
		jid_free(&wt->to);
		free(wt->from);
		free(wt);
	}
	room_maybe_free(r);
}

struct room_mail {
	struct xml_node *st;
	struct jid to;
	char *room;
	char *from;
};

static void
room_arrive(struct worker *w, void *arg)
{
	struct room_mail *rm = arg;
	struct room *r;

	if (w->stopping) {
		xml_free(rm->st);
		goto out;
	}
	r = hmap_get(&w->rooms, rm->room);
	if (!r) {
		struct load_job *lj = xcalloc(1, sizeof *lj);
		r = xcalloc(1, sizeof *r);
		r->w = w;
		r->jid = xstrdup(rm->room);
		r->state = ROOM_LOADING;
		muc_cfg_defaults(&r->cfg);
		hmap_put(&w->rooms, r->jid, r);
		lj->r = r;
		lj->job.run = load_run;
		lj->job.done = load_done;
		worker_store(w, &lj->job);
	}
	if (r->state == ROOM_LOADING) {
		struct room_wait *wt = xcalloc(1, sizeof *wt);
		wt->st = rm->st;
		jid_copy(&wt->to, &rm->to);
		wt->from = rm->from;
		rm->from = NULL;
		if (r->waits_tail)
			r->waits_tail->next = wt;
		else
			r->waits = wt;
		r->waits_tail = wt;
	} else {
		room_handle(r, rm->st, &rm->to, rm->from);
		room_maybe_free(r);
	}
out:
	jid_free(&rm->to);
	free(rm->room);
	free(rm->from);
	free(rm);
}

/* ---- presence ---- */

/* The presence of occupant o as recipient `to` sees it, with muc#user status codes. */
static struct xml_node *
occupant_presence(struct room *r, const struct occupant *o, const struct occupant *to,
		  const char *type, const int *codes, size_t ncodes, const char *new_nick)
{
	char *from = muc_nick_jid(r, o->nick);
	struct xml_node *p = stanza_new("presence", from, to->jid, type, NULL);
	struct xml_node *x, *item;

	free(from);
	if (!type && o->presence) {
		for (struct xml_node *c = o->presence->first; c; c = c->next)
			if (c->name && !(strcmp(c->ns, NS_MUC) == 0))
				xml_add_child(p, xml_copy(c));
	}
	x = xml_add_el(p, "x", NS_MUC_USER);
	item = xml_add_el(x, "item", NULL);
	xml_set_attr(item, "affiliation", muc_aff_names[muc_aff_of(r, o->bare)]);
	xml_set_attr(item, "role", type ? "none" : muc_role_names[o->role]);
	/* Semi-anonymous (XEP-0045 4.2): only moderators see real JIDs. */
	if (to->role == ROLE_MODERATOR || to == o)
		xml_set_attr(item, "jid", o->jid);
	if (new_nick)
		xml_set_attr(item, "nick", new_nick);
	for (size_t i = 0; i < ncodes; i++) {
		char code[8];
		snprintf(code, sizeof code, "%d", codes[i]);
		xml_set_attr(xml_add_el(x, "status", NULL), "code", code);
	}
	return p;
}

/* Sends o's presence to every occupant; the occupant itself also gets 110 (and extra). */
void
muc_broadcast_presence(struct room *r, struct occupant *o, const char *type, const int *codes,
		       size_t ncodes, const char *new_nick, int self_extra)
{
	for (struct occupant *to = r->occupants; to; to = to->next) {
		int all[8];
		size_t n = 0;
		for (size_t i = 0; i < ncodes && n < 6; i++)
			all[n++] = codes[i];
		if (to == o) {
			all[n++] = 110; /* XEP-0045 7.2.2: this is you */
			if (self_extra)
				all[n++] = self_extra;
		}
		muc_send(r, to, occupant_presence(r, o, to, type, all, n, new_nick));
	}
}

void
muc_remove(struct room *r, struct occupant *o)
{
	for (struct occupant **pp = &r->occupants; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	}
	r->noccupants--;
	occupant_free(o);
}

/* o leaves (code 0: by itself; 307 kicked; 301 banned...). */
void
muc_leave(struct room *r, struct occupant *o, int code)
{
	muc_broadcast_presence(r, o, "unavailable", &code, code ? 1 : 0, NULL, 0);
	muc_remove(r, o);
}

static void
send_history_and_subject(struct room *r, const char *jid, long max)
{
	size_t n = r->hist_n < (size_t)max ? r->hist_n : (size_t)max;
	struct xml_node *m;

	for (size_t i = r->hist_n - n; i < r->hist_n; i++) {
		m = xml_copy(r->history[(r->hist_start + i) % MUC_HISTORY]);
		xml_set_attr(m, "to", jid);
		route(r->w, m);
	}
	/* XEP-0045 7.2.15: the subject comes last, even when empty. */
	m = stanza_new("message", r->subject_by ? r->subject_by : r->jid, jid, "groupchat", NULL);
	xml_add_text(xml_add_el(m, "subject", NULL), r->subject ? r->subject : "",
		     r->subject ? strlen(r->subject) : 0);
	route(r->w, m);
}

/*
 * What a device joining seat o gets when the room sees nobody new (it shares the seat, or
 * the seat moved to it): XEP-0045 7.2.3's order, others, itself, history, subject.
 */
static void
send_room_view(struct room *r, struct occupant *o, const char *jid, long maxhist)
{
	int self = 110;
	struct xml_node *p;

	for (struct occupant *e = r->occupants; e; e = e->next) {
		if (e == o)
			continue;
		p = occupant_presence(r, e, o, NULL, NULL, 0, NULL);
		xml_set_attr(p, "to", jid);
		route(r->w, p);
	}
	p = occupant_presence(r, o, o, NULL, &self, 1, NULL);
	xml_set_attr(p, "to", jid);
	route(r->w, p);
	send_history_and_subject(r, jid, maxhist < 0 ? 0 : maxhist);
}

static void
join(struct room *r, struct xml_node *st, const char *nick, const char *from)
{
	struct xml_node *x = xml_child(st, "x", NS_MUC);
	char *bare = muc_bare_of(from);
	bool created = r->state == ROOM_ABSENT;
	int aff = muc_aff_of(r, bare);
	struct occupant *o, *other;
	long maxhist = MUC_HISTORY;

	if (!nick || !*nick || strlen(nick) > MUC_NICK_MAX) {
		muc_error(r, st, "modify", "jid-malformed"); /* XEP-0045 7.2.1 */
		st = NULL;
		goto out;
	}
	if (created) {
		/* XEP-0045 10.1: the room comes into being with its first occupant as owner. */
		r->state = ROOM_READY;
		muc_set_aff(r, bare, AFF_OWNER);
		aff = AFF_OWNER;
	} else if (aff == AFF_OUTCAST) {
		muc_error(r, st, "auth", "forbidden"); /* 7.2.7 */
		st = NULL;
		goto out;
	} else if (r->cfg.members_only && aff < AFF_MEMBER) {
		muc_error(r, st, "auth", "registration-required"); /* 7.2.6 */
		st = NULL;
		goto out;
	} else if (*r->cfg.secret && aff < AFF_ADMIN) {
		struct xml_node *pw = x ? xml_child(x, "password", NS_MUC) : NULL;
		char *given = pw ? xml_text(pw) : NULL;
		bool ok = given && strcmp(given, r->cfg.secret) == 0;
		free(given);
		if (!ok) {
			muc_error(r, st, "auth", "not-authorized"); /* 7.2.5 */
			st = NULL;
			goto out;
		}
	}
	other = muc_by_nick(r, nick);
	if (other && strcmp(other->bare, bare) != 0) {
		muc_error(r, st, "cancel", "conflict"); /* 7.2.9 */
		st = NULL;
		goto out;
	}
	if (x) {
		struct xml_node *h = xml_child(x, "history", NS_MUC);
		const char *ms = h ? xml_attr(h, "maxstanzas") : NULL;
		if (ms)
			maxhist = atol(ms);
	}
	if (other) {
		/*
		 * Another device of the same account joins under the same nick: it shares the
		 * seat. The room sees nobody new; the device gets what a joiner gets.
		 */
		other->also = xrealloc(other->also, (other->nalso + 1) * sizeof *other->also);
		other->also[other->nalso++] = xstrdup(from);
		send_room_view(r, other, from, maxhist);
		goto out;
	}
	bool reserved = muc_take_reservation(r, from);
	if (!created && !reserved && aff < AFF_ADMIN &&
	    (long)(r->noccupants + muc_reserved(r)) >= r->cfg.max_users) {
		muc_error(r, st, "wait", "service-unavailable"); /* 7.2.10 */
		st = NULL;
		goto out;
	}
	o = xcalloc(1, sizeof *o);
	o->nick = xstrdup(nick);
	o->jid = xstrdup(from);
	o->bare = bare;
	bare = NULL;
	o->role = muc_role_for(r, aff);
	o->presence = st;
	st = NULL;
	if (x) {
		xml_detach(x);
		xml_free(x);
	}
	/* XEP-0045 7.2.3: the others first, then yourself, then history and subject. */
	for (struct occupant *e = r->occupants; e; e = e->next)
		route(r->w, occupant_presence(r, e, o, NULL, NULL, 0, NULL));
	o->next = r->occupants;
	r->occupants = o;
	r->noccupants++;
	muc_broadcast_presence(r, o, NULL, NULL, 0, NULL, created ? 201 : 0);
	send_history_and_subject(r, o->jid, maxhist < 0 ? 0 : maxhist);
	log_debug("muc: %s joined %s as %s", o->jid, r->jid, o->nick);
out:
	free(bare);
	xml_free(st);
}

static void
room_presence(struct room *r, struct xml_node *st, const struct jid *to, const char *from)
{
	const char *type = xml_attr(st, "type");
	struct occupant *o = muc_by_jid(r, from);

	if (type && (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0)) {
		if (o && o->nalso) {
			/* One device of a shared seat leaves: only it is told (XEP-0045 7.14). */
			int self = 110;
			struct xml_node *p =
			    occupant_presence(r, o, o, "unavailable", &self, 1, NULL);
			xml_set_attr(p, "to", from);
			seat_unshare(o, from);
			route(r->w, p);
		} else if (o) {
			muc_leave(r, o, 0);
		}
		xml_free(st);
		return;
	}
	if (type) {
		xml_free(st); /* subscriptions to a room mean nothing */
		return;
	}
	if (!o) {
		join(r, st, to->resource, from);
		return;
	}
	if (xml_child(st, "x", NS_MUC) && to->resource && strcmp(to->resource, o->nick) == 0) {
		/*
		 * A join from a device that already holds the seat (it moved there: continuity,
		 * shared identity): it gets what a joiner gets; the room sees nothing new.
		 */
		struct xml_node *x = xml_child(st, "x", NS_MUC);
		struct xml_node *h = xml_child(x, "history", NS_MUC);
		send_room_view(r, o, from,
			       h && xml_attr(h, "maxstanzas") ? atol(xml_attr(h, "maxstanzas"))
							      : MUC_HISTORY);
		xml_free(st);
		return;
	}
	if (to->resource && strcmp(to->resource, o->nick) != 0) {
		/* XEP-0045 7.6: a nick change is leave + join under the new name, marked 303. */
		int code = 303;
		struct occupant *other = muc_by_nick(r, to->resource);
		if (other) {
			muc_error(r, st, "cancel", "conflict");
			return;
		}
		muc_broadcast_presence(r, o, "unavailable", &code, 1, to->resource, 0);
		free(o->nick);
		o->nick = xstrdup(to->resource);
	}
	struct xml_node *x = xml_child(st, "x", NS_MUC);
	if (x) {
		xml_detach(x);
		xml_free(x);
	}
	xml_free(o->presence);
	o->presence = st;
	muc_broadcast_presence(r, o, NULL, NULL, 0, NULL, 0);
}

/* ---- messages ---- */

static void
add_history(struct room *r, const struct xml_node *m)
{
	struct xml_node *h = xml_copy(m);
	struct xml_node *d = xml_add_el(h, "delay", NS_DELAY);
	char stamp[32];

	time_format(wall_ms(), stamp, sizeof stamp);
	xml_set_attr(d, "from", r->jid);
	xml_set_attr(d, "stamp", stamp);
	if (r->hist_n == MUC_HISTORY) {
		xml_free(r->history[r->hist_start]);
		r->history[r->hist_start] = h;
		r->hist_start = (r->hist_start + 1) % MUC_HISTORY;
	} else {
		r->history[(r->hist_start + r->hist_n++) % MUC_HISTORY] = h;
	}
}

static void
invite(struct room *r, struct xml_node *st, struct xml_node *inv, const char *from)
{
	const char *to = xml_attr(inv, "to");
	struct xml_node *m, *x, *i, *reason;
	struct jid j;

	if (!to || jid_parse(to, &j) < 0) {
		muc_error(r, st, "modify", "jid-malformed");
		return;
	}
	/* XEP-0045 7.8.2: in a members-only room, an invitation is a membership. */
	if (r->cfg.members_only) {
		char *bare = jid_bare(&j);
		if (muc_aff_of(r, bare) < AFF_MEMBER)
			muc_set_aff(r, bare, AFF_MEMBER);
		free(bare);
	}
	jid_free(&j);
	m = stanza_new("message", r->jid, to, NULL, NULL);
	x = xml_add_el(m, "x", NS_MUC_USER);
	i = xml_add_el(x, "invite", NULL);
	xml_set_attr(i, "from", from);
	if ((reason = xml_child(inv, "reason", NS_MUC_USER)))
		xml_add_child(i, xml_copy(reason));
	if (*r->cfg.secret)
		xml_add_text(xml_add_el(x, "password", NULL), r->cfg.secret, strlen(r->cfg.secret));
	route(r->w, m);
	xml_free(st);
}

static void
room_message(struct room *r, struct xml_node *st, const struct jid *to, const char *from)
{
	const char *type = xml_attr(st, "type");
	struct occupant *o = muc_by_jid(r, from);
	struct xml_node *x = xml_child(st, "x", NS_MUC_USER), *inv;

	if (type && strcmp(type, "error") == 0) {
		/* XEP-0045 7.2.x: an occupant that bounces room traffic is gone. */
		if (o)
			muc_leave(r, o, 333);
		xml_free(st);
		return;
	}
	if (x && (inv = xml_child(x, "invite", NS_MUC_USER)) && !to->resource) {
		if (!o && muc_aff_of(r, from) < AFF_MEMBER) {
			muc_error(r, st, "modify", "not-acceptable");
			return;
		}
		invite(r, st, inv, from);
		return;
	}
	if (!o) {
		muc_error(r, st, "modify", "not-acceptable"); /* 7.4: occupants only */
		return;
	}
	if (!to->resource && (!type || strcmp(type, "groupchat") != 0) &&
	    muc_voice_request(r, st, o))
		return;
	if (to->resource) {
		/* XEP-0045 7.5: a private message, to the occupant's real JID. */
		struct occupant *t = muc_by_nick(r, to->resource);
		if (type && strcmp(type, "groupchat") == 0) {
			muc_error(r, st, "modify", "bad-request"); /* 7.5: MUST */
			return;
		}
		if (!t) {
			muc_error(r, st, "cancel", "item-not-found");
			return;
		}
		char *fromnick = muc_nick_jid(r, o->nick);
		xml_set_attr(st, "from", fromnick);
		free(fromnick);
		xml_add_el(st, "x", NS_MUC_USER);
		muc_send(r, t, st);
		return;
	}
	if (!type || strcmp(type, "groupchat") != 0) {
		muc_error(r, st, "modify", "bad-request");
		return;
	}
	if (o->role < ROLE_PARTICIPANT) {
		muc_error(r, st, "auth", "forbidden"); /* 7.4: visitors in moderated rooms */
		return;
	}
	struct xml_node *subject = xml_child(st, "subject", NS_CLIENT);
	char *fromnick = muc_nick_jid(r, o->nick);
	if (subject && !xml_child(st, "body", NS_CLIENT)) {
		/* XEP-0045 8.1: moderators, or everyone if the room allows it. */
		if (o->role < ROLE_MODERATOR && !r->cfg.change_subject) {
			free(fromnick);
			muc_error(r, st, "auth", "forbidden");
			return;
		}
		free(r->subject);
		r->subject = xml_text(subject);
		free(r->subject_by);
		r->subject_by = xstrdup(fromnick);
		muc_save_room(r);
	}
	xml_set_attr(st, "from", fromnick);
	mam_strip_ids(st); /* XEP-0359: only the room gives ids here */
	if (!subject && xml_child(st, "body", NS_CLIENT))
		mam_archive_room(r->w, r->jid, fromnick, st);
	free(fromnick);
	if (!subject)
		add_history(r, st);
	for (struct occupant *t = r->occupants; t; t = t->next)
		muc_send(r, t, xml_copy(st));
	xml_free(st);
}

void
muc_feature(struct xml_node *q, const char *var)
{
	xml_set_attr(xml_add_el(q, "feature", NULL), "var", var);
}

static void
room_handle(struct room *r, struct xml_node *st, const struct jid *to, const char *from)
{
	if (stanza_is(st, "presence")) {
		if (r->state == ROOM_ABSENT && xml_attr(st, "type")) {
			xml_free(st);
			return;
		}
		room_presence(r, st, to, from);
		return;
	}
	if (r->state == ROOM_ABSENT) {
		/* XEP-0045 7.4 / 10.1: nothing but a join addresses a room that does not exist. */
		muc_error(r, st, "cancel", "item-not-found");
		return;
	}
	if (stanza_is(st, "message"))
		room_message(r, st, to, from);
	else
		muc_room_iq(r, st, to, from);
}

/* ---- the service itself ---- */

struct list_job {
	struct store_job job;
	struct worker *w;
	struct xml_node *st;
	struct xml_node *q;
};

static void
list_room(void *arg, const char *jid, const char *config)
{
	struct list_job *lj = arg;
	struct room_cfg c = {0};

	muc_cfg_parse(&c, config);
	if (c.public_room) {
		struct xml_node *it = xml_add_el(lj->q, "item", NULL);
		xml_set_attr(it, "jid", jid);
		if (*c.name)
			xml_set_attr(it, "name", c.name);
	}
	free(c.name);
	free(c.secret);
}

static int
list_run(struct store *st, struct store_job *job)
{
	struct list_job *lj = container_of(job, struct list_job, job);
	return store_room_list(st, list_room, lj);
}

static void
list_done(struct store_job *job)
{
	struct list_job *lj = container_of(job, struct list_job, job);
	struct xml_node *res = stanza_new("iq", xml_attr(lj->st, "to"), xml_attr(lj->st, "from"),
					  "result", xml_attr(lj->st, "id"));

	xml_add_child(res, lj->q);
	route(lj->w, res);
	xml_free(lj->st);
	free(lj);
}

static void
service_iq(struct worker *w, struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *q = xml_child(st, NULL, NULL);

	if (!type || strcmp(type, "get") != 0 || !q) {
		if (type && strcmp(type, "set") == 0)
			route_error(w, st, "cancel", "service-unavailable", NULL);
		xml_free(st);
		return;
	}
	if (strcmp(q->ns, NS_DISCO_INFO) == 0) {
		struct xml_node *r = xml_el_new("query", NS_DISCO_INFO);
		struct xml_node *id = xml_add_el(r, "identity", NULL);
		xml_set_attr(id, "category", "conference"); /* XEP-0045 6.1 */
		xml_set_attr(id, "type", "text");
		xml_set_attr(id, "name", "Chatrooms");
		muc_feature(r, NS_MUC);
		muc_feature(r, NS_DISCO_INFO);
		muc_feature(r, NS_DISCO_ITEMS);
		struct xml_node *res = stanza_new("iq", xml_attr(st, "to"), xml_attr(st, "from"),
						  "result", xml_attr(st, "id"));
		xml_add_child(res, r);
		route(w, res);
		xml_free(st);
	} else if (strcmp(q->ns, NS_DISCO_ITEMS) == 0) {
		/* XEP-0045 6.3: the public rooms (the persistent ones, from storage). */
		struct list_job *lj = xcalloc(1, sizeof *lj);
		lj->w = w;
		lj->st = st;
		lj->q = xml_el_new("query", NS_DISCO_ITEMS);
		lj->job.run = list_run;
		lj->job.done = list_done;
		worker_store(w, &lj->job);
	} else {
		route_error(w, st, "cancel", "service-unavailable", NULL);
		xml_free(st);
	}
}

static void
muc_route(struct worker *w, struct xml_node *st, const struct jid *to)
{
	struct room_mail *rm;
	const char *from = xml_attr(st, "from");

	if (!to->local) {
		if (stanza_is(st, "iq"))
			service_iq(w, st);
		else
			xml_free(st);
		return;
	}
	if (!from) {
		xml_free(st);
		return;
	}
	rm = xcalloc(1, sizeof *rm);
	rm->st = st;
	jid_copy(&rm->to, to);
	{
		struct jid bare = {to->local, to->domain, NULL};
		rm->room = jid_full(&bare);
	}
	rm->from = xstrdup(from);
	worker_call(server_home(w->srv, rm->room), room_arrive, rm);
}

static void
muc_free_worker(struct worker *w)
{
	const char *k;
	void *v;
	size_t n = w->rooms.count, i = 0;
	struct room **all = xcalloc(n ? n : 1, sizeof *all);

	for (size_t it = 0; hmap_next(&w->rooms, &it, &k, &v);)
		all[i++] = v;
	for (size_t j = 0; j < i; j++)
		room_free(all[j]);
	free(all);
	hmap_free(&w->rooms);
}

const struct xmpp_service muc_service = {
    .prefix = "conference",
    .route = muc_route,
    .free_worker = muc_free_worker,
};
