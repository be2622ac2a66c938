/*
 * muc: XEP-0045 rooms. A stanza for room@conference.<domain>[/nick] is posted to the
 * room's home worker, where the room is looked up (or loaded from storage, if it is
 * persistent) and the stanza handled: joins, presence, groupchat and private messages,
 * moderation (muc#admin) and configuration (muc#owner).
 *
 * Invariant: everything about a room happens on its home worker; occupants are reached
 * only by routing to their real JIDs, so the room does not care on which worker, or
 * (later) which server, they are.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muc.h"

#define NS_MUC	     "http://jabber.org/protocol/muc"
#define NS_MUC_USER  "http://jabber.org/protocol/muc#user"
#define NS_MUC_ADMIN "http://jabber.org/protocol/muc#admin"
#define NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define NS_ROOMCFG   "http://jabber.org/protocol/muc#roomconfig"
#define NS_XDATA     "jabber:x:data"
#define NS_DELAY     "urn:xmpp:delay"

#define MUC_HISTORY	      20 /* groupchat messages a joiner gets by default (and at most) */
#define MUC_NICK_MAX	      128
#define MUC_DEFAULT_MAX_USERS 200

enum aff { AFF_NONE = 0, AFF_OUTCAST = 1, AFF_MEMBER = 2, AFF_ADMIN = 3, AFF_OWNER = 4 };
enum role { ROLE_NONE, ROLE_VISITOR, ROLE_PARTICIPANT, ROLE_MODERATOR };

static const char *const aff_names[] = {"none", "outcast", "member", "admin", "owner"};
static const char *const role_names[] = {"none", "visitor", "participant", "moderator"};

struct occupant {
	struct occupant *next;
	char *nick;
	char *jid; /* real full JID, where the occupant is reached (changeable: seat moves) */
	char *bare;
	int role;
	struct xml_node *presence; /* last presence, without the muc <x/> */
};

struct room_cfg {
	char *name;
	bool persistent, members_only, public_room, moderated, change_subject;
	char *secret; /* "" = no password */
	long max_users;
};

enum room_state { ROOM_LOADING, ROOM_READY, ROOM_ABSENT };

struct room_wait {
	struct room_wait *next;
	struct xml_node *st;
	struct jid to;
	char *from;
};

struct room {
	struct worker *w;
	char *jid;
	enum room_state state;
	struct room_cfg cfg;
	char *subject, *subject_by;
	struct hmap affs; /* bare JID -> (void *)(intptr_t)affiliation */
	struct occupant *occupants;
	size_t noccupants;
	struct xml_node *history[MUC_HISTORY];
	size_t hist_start, hist_n;
	struct room_wait *waits, *waits_tail;
};

static void room_handle(struct room *r, struct xml_node *st, const struct jid *to,
			const char *from);

/* ---- helpers ---- */

static int
aff_of(const struct room *r, const char *bare)
{
	return (int)(intptr_t)hmap_get(&r->affs, bare);
}

static int
aff_parse(const char *s)
{
	for (int i = 0; i < (int)ARRAY_LEN(aff_names); i++)
		if (s && strcmp(s, aff_names[i]) == 0)
			return i;
	return -1;
}

static char *
bare_of(const char *full)
{
	struct jid j;
	char *b;

	if (jid_parse(full, &j) < 0)
		return xstrdup(full);
	b = jid_bare(&j);
	jid_free(&j);
	return b;
}

static char *
room_nick_jid(const struct room *r, const char *nick)
{
	char *s = xmalloc(strlen(r->jid) + strlen(nick) + 2);
	sprintf(s, "%s/%s", r->jid, nick);
	return s;
}

static struct occupant *
by_nick(struct room *r, const char *nick)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (strcmp(o->nick, nick) == 0)
			return o;
	return NULL;
}

static struct occupant *
by_jid(struct room *r, const char *jid)
{
	for (struct occupant *o = r->occupants; o; o = o->next)
		if (strcmp(o->jid, jid) == 0)
			return o;
	return NULL;
}

static void
send_error(struct room *r, struct xml_node *st, const char *type, const char *cond)
{
	route_error(r->w, st, type, cond, NULL);
	xml_free(st);
}

static int
role_for(const struct room *r, int aff)
{
	if (aff >= AFF_ADMIN)
		return ROLE_MODERATOR;
	if (r->cfg.moderated && aff < AFF_MEMBER)
		return ROLE_VISITOR;
	return ROLE_PARTICIPANT;
}

/* ---- persistence ---- */

static char *
cfg_serialize(const struct room *r)
{
	struct buf b = {0};

	buf_printf(&b,
		   "persistent=%d\nmembers_only=%d\npublic=%d\nmoderated=%d\n"
		   "change_subject=%d\nmax_users=%ld\nsecret=%s\nname=%s\n",
		   r->cfg.persistent, r->cfg.members_only, r->cfg.public_room, r->cfg.moderated,
		   r->cfg.change_subject, r->cfg.max_users, r->cfg.secret, r->cfg.name);
	return buf_steal(&b);
}

static void
cfg_defaults(struct room_cfg *c)
{
	free(c->name);
	free(c->secret);
	memset(c, 0, sizeof *c);
	c->name = xstrdup("");
	c->secret = xstrdup("");
	c->public_room = true;
	c->max_users = MUC_DEFAULT_MAX_USERS;
}

static void
cfg_parse(struct room_cfg *c, const char *text)
{
	cfg_defaults(c);
	while (text && *text) {
		const char *nl = strchr(text, '\n'), *eq = strchr(text, '=');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		if (eq && eq < text + n) {
			size_t k = (size_t)(eq - text);
			char *v = xstrndup(eq + 1, n - k - 1);
#define FLAG(name, field)                                                                          \
	if (k == strlen(name) && strncmp(text, name, k) == 0)                                      \
		c->field = atoi(v) != 0;
			FLAG("persistent", persistent)
			FLAG("members_only", members_only)
			FLAG("public", public_room)
			FLAG("moderated", moderated)
			FLAG("change_subject", change_subject)
#undef FLAG
			if (k == 9 && strncmp(text, "max_users", 9) == 0)
				c->max_users = atol(v);
			if (k == 6 && strncmp(text, "secret", 6) == 0) {
				free(c->secret);
				c->secret = xstrdup(v);
			}
			if (k == 4 && strncmp(text, "name", 4) == 0) {
				free(c->name);
				c->name = xstrdup(v);
			}
			free(v);
		}
		text += n + (nl ? 1 : 0);
	}
}

struct save_job {
	struct store_job job;
	char *room, *config, *subject, *jid;
	int aff;
	enum { SAVE_ROOM, SAVE_DELETE, SAVE_AFF } op;
	char **affjids; /* SAVE_ROOM: all affiliations, jid/aff pairs */
	int *affs;
	size_t naffs;
};

static int
save_run(struct store *st, struct store_job *job)
{
	struct save_job *sj = container_of(job, struct save_job, job);
	int r;

	switch (sj->op) {
	case SAVE_DELETE:
		return store_room_delete(st, sj->room);
	case SAVE_AFF:
		return store_room_set_affiliation(st, sj->room, sj->jid, sj->aff);
	default:
		if ((r = store_room_put(st, sj->room, sj->config, sj->subject)) < 0)
			return r;
		for (size_t i = 0; i < sj->naffs; i++)
			if ((r = store_room_set_affiliation(st, sj->room, sj->affjids[i],
							    sj->affs[i])) < 0)
				return r;
		return 0;
	}
}

static void
save_done(struct store_job *job)
{
	struct save_job *sj = container_of(job, struct save_job, job);

	if (job->result < 0)
		log_error("muc: storage failed for room %s", sj->room);
	for (size_t i = 0; i < sj->naffs; i++)
		free(sj->affjids[i]);
	free(sj->affjids);
	free(sj->affs);
	free(sj->room);
	free(sj->config);
	free(sj->subject);
	free(sj->jid);
	free(sj);
}

static void
save_submit(struct room *r, struct save_job *sj)
{
	sj->room = xstrdup(r->jid);
	sj->job.run = save_run;
	sj->job.done = save_done; /* on the storage thread */
	store_submit(r->w->srv->store, &sj->job);
}

/* Writes the whole room (config, subject, affiliations); for rooms just made persistent. */
static void
save_room(struct room *r)
{
	struct save_job *sj;
	const char *k;
	void *v;

	if (!r->cfg.persistent)
		return;
	sj = xcalloc(1, sizeof *sj);
	sj->op = SAVE_ROOM;
	sj->config = cfg_serialize(r);
	sj->subject = xstrdup(r->subject ? r->subject : "");
	sj->affjids = xcalloc(r->affs.count + 1, sizeof *sj->affjids);
	sj->affs = xcalloc(r->affs.count + 1, sizeof *sj->affs);
	for (size_t i = 0; hmap_next(&r->affs, &i, &k, &v);) {
		sj->affjids[sj->naffs] = xstrdup(k);
		sj->affs[sj->naffs++] = (int)(intptr_t)v;
	}
	save_submit(r, sj);
}

static void
set_aff(struct room *r, const char *bare, int aff)
{
	if (aff == AFF_NONE)
		hmap_del(&r->affs, bare);
	else
		hmap_put(&r->affs, bare, (void *)(intptr_t)aff);
	if (r->cfg.persistent) {
		struct save_job *sj = xcalloc(1, sizeof *sj);
		sj->op = SAVE_AFF;
		sj->jid = xstrdup(bare);
		sj->aff = aff;
		save_submit(r, sj);
	}
}

/* ---- rooms in memory ---- */

static void
occupant_free(struct occupant *o)
{
	free(o->nick);
	free(o->jid);
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
		cfg_parse(&r->cfg, buf_head(&lj->config));
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
		cfg_defaults(&r->cfg);
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
	char *from = room_nick_jid(r, o->nick);
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
	xml_set_attr(item, "affiliation", aff_names[aff_of(r, o->bare)]);
	xml_set_attr(item, "role", type ? "none" : role_names[o->role]);
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
static void
broadcast_presence(struct room *r, struct occupant *o, const char *type, const int *codes,
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
		route(r->w, occupant_presence(r, o, to, type, all, n, new_nick));
	}
}

static void
remove_occupant(struct room *r, struct occupant *o)
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
static void
occupant_leave(struct room *r, struct occupant *o, int code)
{
	broadcast_presence(r, o, "unavailable", &code, code ? 1 : 0, NULL, 0);
	remove_occupant(r, o);
}

static void
send_history_and_subject(struct room *r, struct occupant *o, long max)
{
	size_t n = r->hist_n < (size_t)max ? r->hist_n : (size_t)max;
	struct xml_node *m;

	for (size_t i = r->hist_n - n; i < r->hist_n; i++) {
		m = xml_copy(r->history[(r->hist_start + i) % MUC_HISTORY]);
		xml_set_attr(m, "to", o->jid);
		route(r->w, m);
	}
	/* XEP-0045 7.2.15: the subject comes last, even when empty. */
	m = stanza_new("message", r->subject_by ? r->subject_by : r->jid, o->jid, "groupchat",
		       NULL);
	xml_add_text(xml_add_el(m, "subject", NULL), r->subject ? r->subject : "",
		     r->subject ? strlen(r->subject) : 0);
	route(r->w, m);
}

static void
join(struct room *r, struct xml_node *st, const char *nick, const char *from)
{
	struct xml_node *x = xml_child(st, "x", NS_MUC);
	char *bare = bare_of(from);
	bool created = r->state == ROOM_ABSENT;
	int aff = aff_of(r, bare);
	struct occupant *o, *other;
	long maxhist = MUC_HISTORY;

	if (!nick || !*nick || strlen(nick) > MUC_NICK_MAX) {
		send_error(r, st, "modify", "jid-malformed"); /* XEP-0045 7.2.1 */
		st = NULL;
		goto out;
	}
	if (created) {
		/* XEP-0045 10.1: the room comes into being with its first occupant as owner. */
		r->state = ROOM_READY;
		set_aff(r, bare, AFF_OWNER);
		aff = AFF_OWNER;
	} else if (aff == AFF_OUTCAST) {
		send_error(r, st, "auth", "forbidden"); /* 7.2.7 */
		st = NULL;
		goto out;
	} else if (r->cfg.members_only && aff < AFF_MEMBER) {
		send_error(r, st, "auth", "registration-required"); /* 7.2.6 */
		st = NULL;
		goto out;
	} else if (*r->cfg.secret && aff < AFF_ADMIN) {
		struct xml_node *pw = x ? xml_child(x, "password", NS_MUC) : NULL;
		char *given = pw ? xml_text(pw) : NULL;
		bool ok = given && strcmp(given, r->cfg.secret) == 0;
		free(given);
		if (!ok) {
			send_error(r, st, "auth", "not-authorized"); /* 7.2.5 */
			st = NULL;
			goto out;
		}
	}
	other = by_nick(r, nick);
	if (other && strcmp(other->bare, bare) != 0) {
		send_error(r, st, "cancel", "conflict"); /* 7.2.9 */
		st = NULL;
		goto out;
	}
	if (!created && aff < AFF_ADMIN && (long)r->noccupants >= r->cfg.max_users) {
		send_error(r, st, "wait", "service-unavailable"); /* 7.2.10 */
		st = NULL;
		goto out;
	}
	if (x) {
		struct xml_node *h = xml_child(x, "history", NS_MUC);
		const char *ms = h ? xml_attr(h, "maxstanzas") : NULL;
		if (ms)
			maxhist = atol(ms);
	}
	o = xcalloc(1, sizeof *o);
	o->nick = xstrdup(nick);
	o->jid = xstrdup(from);
	o->bare = bare;
	bare = NULL;
	o->role = role_for(r, aff);
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
	broadcast_presence(r, o, NULL, NULL, 0, NULL, created ? 201 : 0);
	send_history_and_subject(r, o, maxhist < 0 ? 0 : maxhist);
	log_debug("muc: %s joined %s as %s", o->jid, r->jid, o->nick);
out:
	free(bare);
	xml_free(st);
}

static void
room_presence(struct room *r, struct xml_node *st, const struct jid *to, const char *from)
{
	const char *type = xml_attr(st, "type");
	struct occupant *o = by_jid(r, from);

	if (type && (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0)) {
		if (o)
			occupant_leave(r, o, 0);
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
	if (to->resource && strcmp(to->resource, o->nick) != 0) {
		/* XEP-0045 7.6: a nick change is leave + join under the new name, marked 303. */
		int code = 303;
		struct occupant *other = by_nick(r, to->resource);
		if (other) {
			send_error(r, st, "cancel", "conflict");
			return;
		}
		broadcast_presence(r, o, "unavailable", &code, 1, to->resource, 0);
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
	broadcast_presence(r, o, NULL, NULL, 0, NULL, 0);
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
		send_error(r, st, "modify", "jid-malformed");
		return;
	}
	/* XEP-0045 7.8.2: in a members-only room, an invitation is a membership. */
	if (r->cfg.members_only) {
		char *bare = jid_bare(&j);
		if (aff_of(r, bare) < AFF_MEMBER)
			set_aff(r, bare, AFF_MEMBER);
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
	struct occupant *o = by_jid(r, from);
	struct xml_node *x = xml_child(st, "x", NS_MUC_USER), *inv;

	if (type && strcmp(type, "error") == 0) {
		/* XEP-0045 7.2.x: an occupant that bounces room traffic is gone. */
		if (o)
			occupant_leave(r, o, 333);
		xml_free(st);
		return;
	}
	if (x && (inv = xml_child(x, "invite", NS_MUC_USER)) && !to->resource) {
		if (!o && aff_of(r, from) < AFF_MEMBER) {
			send_error(r, st, "modify", "not-acceptable");
			return;
		}
		invite(r, st, inv, from);
		return;
	}
	if (!o) {
		send_error(r, st, "modify", "not-acceptable"); /* 7.4: occupants only */
		return;
	}
	if (to->resource) {
		/* XEP-0045 7.5: a private message, to the occupant's real JID. */
		struct occupant *t = by_nick(r, to->resource);
		if (type && strcmp(type, "groupchat") == 0) {
			send_error(r, st, "modify", "bad-request"); /* 7.5: MUST */
			return;
		}
		if (!t) {
			send_error(r, st, "cancel", "item-not-found");
			return;
		}
		char *fromnick = room_nick_jid(r, o->nick);
		xml_set_attr(st, "from", fromnick);
		xml_set_attr(st, "to", t->jid);
		free(fromnick);
		xml_add_el(st, "x", NS_MUC_USER);
		route(r->w, st);
		return;
	}
	if (!type || strcmp(type, "groupchat") != 0) {
		send_error(r, st, "modify", "bad-request");
		return;
	}
	if (o->role < ROLE_PARTICIPANT) {
		send_error(r, st, "auth", "forbidden"); /* 7.4: visitors in moderated rooms */
		return;
	}
	struct xml_node *subject = xml_child(st, "subject", NS_CLIENT);
	char *fromnick = room_nick_jid(r, o->nick);
	if (subject && !xml_child(st, "body", NS_CLIENT)) {
		/* XEP-0045 8.1: moderators, or everyone if the room allows it. */
		if (o->role < ROLE_MODERATOR && !r->cfg.change_subject) {
			free(fromnick);
			send_error(r, st, "auth", "forbidden");
			return;
		}
		free(r->subject);
		r->subject = xml_text(subject);
		free(r->subject_by);
		r->subject_by = xstrdup(fromnick);
		save_room(r);
	}
	xml_set_attr(st, "from", fromnick);
	mam_strip_ids(st); /* XEP-0359: only the room gives ids here */
	if (!subject && xml_child(st, "body", NS_CLIENT))
		mam_archive_room(r->w, r->jid, fromnick, st);
	free(fromnick);
	if (!subject)
		add_history(r, st);
	for (struct occupant *t = r->occupants; t; t = t->next) {
		struct xml_node *m = xml_copy(st);
		xml_set_attr(m, "to", t->jid);
		route(r->w, m);
	}
	xml_free(st);
}

/* ---- iqs: disco, admin, owner ---- */

static void
reply(struct room *r, struct xml_node *st, struct xml_node *payload)
{
	struct xml_node *res = stanza_new("iq", xml_attr(st, "to"), xml_attr(st, "from"), "result",
					  xml_attr(st, "id"));
	if (payload)
		xml_add_child(res, payload);
	route(r->w, res);
	xml_free(st);
}

static void
add_feature(struct xml_node *q, const char *var)
{
	xml_set_attr(xml_add_el(q, "feature", NULL), "var", var);
}

static void
room_disco(struct room *r, struct xml_node *st)
{
	struct xml_node *q = xml_el_new("query", NS_DISCO_INFO);
	struct xml_node *id = xml_add_el(q, "identity", NULL);

	xml_set_attr(id, "category", "conference");
	xml_set_attr(id, "type", "text");
	xml_set_attr(id, "name", *r->cfg.name ? r->cfg.name : r->jid);
	add_feature(q, NS_MUC);
	add_feature(q, r->cfg.persistent ? "muc_persistent" : "muc_temporary");
	add_feature(q, r->cfg.members_only ? "muc_membersonly" : "muc_open");
	add_feature(q, *r->cfg.secret ? "muc_passwordprotected" : "muc_unsecured");
	add_feature(q, r->cfg.moderated ? "muc_moderated" : "muc_unmoderated");
	add_feature(q, r->cfg.public_room ? "muc_public" : "muc_hidden");
	add_feature(q, "muc_semianonymous");
	if (r->w->srv->cfg->archive_enabled) {
		add_feature(q, "urn:xmpp:mam:2");
		add_feature(q, "urn:xmpp:sid:0");
	}
	reply(r, st, q);
}

static size_t
owners(const struct room *r)
{
	const char *k;
	void *v;
	size_t n = 0;

	for (size_t i = 0; hmap_next(&r->affs, &i, &k, &v);)
		n += (int)(intptr_t)v == AFF_OWNER;
	return n;
}

static void
admin_set(struct room *r, struct xml_node *st, struct occupant *me, int my_aff)
{
	struct xml_node *q = xml_child(st, "query", NS_MUC_ADMIN);
	struct xml_node *item = xml_child(q, "item", NS_MUC_ADMIN);
	const char *nick = item ? xml_attr(item, "nick") : NULL;
	const char *role = item ? xml_attr(item, "role") : NULL;
	const char *jid = item ? xml_attr(item, "jid") : NULL;
	int aff = item ? aff_parse(xml_attr(item, "affiliation")) : -1;

	if (!item) {
		send_error(r, st, "modify", "bad-request");
		return;
	}
	if (role && nick) {
		struct occupant *t = by_nick(r, nick);
		if (!me || me->role < ROLE_MODERATOR) {
			send_error(r, st, "auth", "forbidden"); /* 8.2 */
			return;
		}
		if (!t) {
			send_error(r, st, "cancel", "item-not-found");
			return;
		}
		if (strcmp(role, "none") == 0) {
			/* XEP-0045 8.2: no kicking those above you. */
			if (aff_of(r, t->bare) > my_aff || aff_of(r, t->bare) >= AFF_ADMIN) {
				send_error(r, st, "cancel", "not-allowed");
				return;
			}
			occupant_leave(r, t, 307);
		} else {
			int rl = strcmp(role, "moderator") == 0	    ? ROLE_MODERATOR
				 : strcmp(role, "participant") == 0 ? ROLE_PARTICIPANT
				 : strcmp(role, "visitor") == 0	    ? ROLE_VISITOR
								    : -1;
			if (rl < 0) {
				send_error(r, st, "modify", "bad-request");
				return;
			}
			t->role = rl;
			broadcast_presence(r, t, NULL, NULL, 0, NULL, 0);
		}
		reply(r, st, NULL);
		return;
	}
	if (aff >= 0 && jid) {
		char *bare = bare_of(jid);
		/* XEP-0045 9 and 10: admins manage members and outcasts; owners everything. */
		bool allowed = my_aff == AFF_OWNER || (my_aff == AFF_ADMIN && aff <= AFF_MEMBER &&
						       aff_of(r, bare) <= AFF_MEMBER);
		if (!allowed) {
			free(bare);
			send_error(r, st, "auth", "forbidden");
			return;
		}
		if (aff != AFF_OWNER && aff_of(r, bare) == AFF_OWNER && owners(r) == 1) {
			/* XEP-0045 9.1 / 10.6: no banning oneself, no room left without an owner.
			 */
			free(bare);
			send_error(r, st, "cancel", "conflict");
			return;
		}
		set_aff(r, bare, aff);
		for (struct occupant *t = r->occupants, *next; t; t = next) {
			next = t->next;
			if (strcmp(t->bare, bare) != 0)
				continue;
			if (aff == AFF_OUTCAST) {
				occupant_leave(r, t, 301); /* 9.1: banned */
			} else if (r->cfg.members_only && aff < AFF_MEMBER) {
				occupant_leave(r, t, 321); /* 9.4: no longer a member */
			} else {
				t->role = role_for(r, aff);
				broadcast_presence(r, t, NULL, NULL, 0, NULL, 0);
			}
		}
		free(bare);
		reply(r, st, NULL);
		return;
	}
	send_error(r, st, "modify", "bad-request");
}

static void
admin_iq(struct room *r, struct xml_node *st, struct occupant *me, int my_aff)
{
	const char *type = xml_attr(st, "type");

	if (strcmp(type, "set") == 0) {
		admin_set(r, st, me, my_aff);
		return;
	}
	/* get: a list by affiliation (XEP-0045 9.5, 10.5); admins and owners only. */
	struct xml_node *item =
	    xml_child(xml_child(st, "query", NS_MUC_ADMIN), "item", NS_MUC_ADMIN);
	int want = item ? aff_parse(xml_attr(item, "affiliation")) : -1;
	const char *k;
	void *v;

	if (my_aff < AFF_ADMIN) {
		send_error(r, st, "auth", "forbidden");
		return;
	}
	if (want < 0) {
		send_error(r, st, "modify", "bad-request");
		return;
	}
	struct xml_node *q = xml_el_new("query", NS_MUC_ADMIN);
	for (size_t i = 0; hmap_next(&r->affs, &i, &k, &v);) {
		if ((int)(intptr_t)v != want)
			continue;
		struct xml_node *it = xml_add_el(q, "item", NULL);
		xml_set_attr(it, "affiliation", aff_names[want]);
		xml_set_attr(it, "jid", k);
	}
	reply(r, st, q);
}

static void
form_field(struct xml_node *x, const char *var, const char *type, const char *value)
{
	struct xml_node *f = xml_add_el(x, "field", NULL);

	xml_set_attr(f, "var", var);
	xml_set_attr(f, "type", type);
	xml_add_text(xml_add_el(f, "value", NULL), value, strlen(value));
}

static struct xml_node *
config_form(struct room *r)
{
	struct xml_node *q = xml_el_new("query", NS_MUC_OWNER);
	struct xml_node *x = xml_add_el(q, "x", NS_XDATA);
	char max[24];

	xml_set_attr(x, "type", "form");
	form_field(x, "FORM_TYPE", "hidden", NS_ROOMCFG);
	form_field(x, "muc#roomconfig_roomname", "text-single", r->cfg.name);
	form_field(x, "muc#roomconfig_persistentroom", "boolean", r->cfg.persistent ? "1" : "0");
	form_field(x, "muc#roomconfig_publicroom", "boolean", r->cfg.public_room ? "1" : "0");
	form_field(x, "muc#roomconfig_membersonly", "boolean", r->cfg.members_only ? "1" : "0");
	form_field(x, "muc#roomconfig_moderatedroom", "boolean", r->cfg.moderated ? "1" : "0");
	form_field(x, "muc#roomconfig_changesubject", "boolean", r->cfg.change_subject ? "1" : "0");
	form_field(x, "muc#roomconfig_passwordprotectedroom", "boolean",
		   *r->cfg.secret ? "1" : "0");
	form_field(x, "muc#roomconfig_roomsecret", "text-private", r->cfg.secret);
	snprintf(max, sizeof max, "%ld", r->cfg.max_users);
	form_field(x, "muc#roomconfig_maxusers", "text-single", max);
	return q;
}

static bool
truthy(const char *v)
{
	return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static void
apply_form(struct room *r, struct xml_node *x)
{
	bool was_persistent = r->cfg.persistent, pw = *r->cfg.secret != 0;
	bool was_members_only = r->cfg.members_only;
	char *secret = NULL;

	for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f;
	     f = xml_next(f, "field", NS_XDATA)) {
		const char *var = xml_attr(f, "var");
		struct xml_node *ve = xml_child(f, "value", NS_XDATA);
		char *v = ve ? xml_text(ve) : xstrdup("");
		if (!var) {
		} else if (strcmp(var, "muc#roomconfig_roomname") == 0) {
			free(r->cfg.name);
			r->cfg.name = xstrdup(v);
		} else if (strcmp(var, "muc#roomconfig_persistentroom") == 0) {
			r->cfg.persistent = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_publicroom") == 0) {
			r->cfg.public_room = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_membersonly") == 0) {
			r->cfg.members_only = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_moderatedroom") == 0) {
			r->cfg.moderated = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_changesubject") == 0) {
			r->cfg.change_subject = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_passwordprotectedroom") == 0) {
			pw = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_roomsecret") == 0) {
			free(secret);
			secret = xstrdup(v);
		} else if (strcmp(var, "muc#roomconfig_maxusers") == 0) {
			long m = atol(v);
			r->cfg.max_users = m > 0 ? m : MUC_DEFAULT_MAX_USERS;
		}
		free(v);
	}
	if (secret) {
		free(r->cfg.secret);
		r->cfg.secret = secret;
	}
	if (!pw) {
		free(r->cfg.secret);
		r->cfg.secret = xstrdup("");
	}
	if (r->cfg.members_only && !was_members_only) {
		/* XEP-0045 10.2: those who are not members leave, told why (322). */
		for (struct occupant *o = r->occupants, *next; o; o = next) {
			next = o->next;
			if (aff_of(r, o->bare) < AFF_MEMBER)
				occupant_leave(r, o, 322);
		}
	}
	if (r->cfg.persistent) {
		save_room(r);
	} else if (was_persistent) {
		struct save_job *sj = xcalloc(1, sizeof *sj);
		sj->op = SAVE_DELETE;
		save_submit(r, sj);
	}
}

static void
destroy(struct room *r, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, "query", NS_MUC_OWNER);
	struct xml_node *d = xml_child(q, "destroy", NS_MUC_OWNER);

	/* XEP-0045 10.9: everyone is told, then the room is gone. */
	while (r->occupants) {
		struct occupant *o = r->occupants;
		char *from = room_nick_jid(r, o->nick);
		struct xml_node *p = stanza_new("presence", from, o->jid, "unavailable", NULL);
		struct xml_node *x = xml_add_el(p, "x", NS_MUC_USER);
		struct xml_node *item = xml_add_el(x, "item", NULL);
		free(from);
		xml_set_attr(item, "affiliation", "none");
		xml_set_attr(item, "role", "none");
		struct xml_node *dd = xml_add_el(x, "destroy", NULL);
		if (d && xml_child(d, "reason", NS_MUC_OWNER)) {
			char *reason = xml_text(xml_child(d, "reason", NS_MUC_OWNER));
			xml_add_text(xml_add_el(dd, "reason", NULL), reason, strlen(reason));
			free(reason);
		}
		route(r->w, p);
		remove_occupant(r, o);
	}
	if (r->cfg.persistent) {
		struct save_job *sj = xcalloc(1, sizeof *sj);
		sj->op = SAVE_DELETE;
		save_submit(r, sj);
	}
	r->cfg.persistent = false;
	reply(r, st, NULL);
}

static void
owner_iq(struct room *r, struct xml_node *st, int my_aff)
{
	struct xml_node *q = xml_child(st, "query", NS_MUC_OWNER);
	struct xml_node *x = xml_child(q, "x", NS_XDATA);

	if (my_aff != AFF_OWNER) {
		send_error(r, st, "auth", "forbidden"); /* 10.1 */
		return;
	}
	if (strcmp(xml_attr(st, "type"), "get") == 0) {
		reply(r, st, config_form(r));
	} else if (xml_child(q, "destroy", NS_MUC_OWNER)) {
		destroy(r, st);
	} else if (x && xml_attr(x, "type") && strcmp(xml_attr(x, "type"), "cancel") == 0) {
		reply(r, st, NULL);
	} else if (x) {
		apply_form(r, x);
		reply(r, st, NULL);
	} else {
		send_error(r, st, "modify", "bad-request");
	}
}

static void
room_iq(struct room *r, struct xml_node *st, const struct jid *to, const char *from)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *q = xml_child(st, NULL, NULL);
	char *bare = bare_of(from);
	int my_aff = aff_of(r, bare);
	struct occupant *me = by_jid(r, from);

	free(bare);
	if (!type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0) || !q) {
		xml_free(st);
		return;
	}
	if (to->resource) {
		send_error(r, st, "cancel",
			   "service-unavailable"); /* iq to occupants: not relayed */
	} else if (strcmp(q->ns, NS_DISCO_INFO) == 0 && strcmp(type, "get") == 0) {
		room_disco(r, st);
	} else if (strcmp(q->ns, NS_DISCO_ITEMS) == 0 && strcmp(type, "get") == 0) {
		reply(r, st, xml_el_new("query", NS_DISCO_ITEMS));
	} else if (strcmp(q->ns, "urn:xmpp:mam:2") == 0) {
		/* XEP-0313 section 8: the room's archive, for those who may read the room. */
		if (!r->w->srv->cfg->archive_enabled)
			send_error(r, st, "cancel", "service-unavailable");
		else if (my_aff == AFF_OUTCAST ||
			 (!me && (r->cfg.members_only ? my_aff < AFF_MEMBER : !r->cfg.public_room)))
			send_error(r, st, "auth", "forbidden");
		else
			mam_query_for(r->w, st, r->jid, true);
	} else if (strcmp(q->ns, NS_MUC_ADMIN) == 0) {
		admin_iq(r, st, me, my_aff);
	} else if (strcmp(q->ns, NS_MUC_OWNER) == 0) {
		owner_iq(r, st, my_aff);
	} else {
		send_error(r, st, "cancel", "service-unavailable");
	}
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
		send_error(r, st, "cancel", "item-not-found");
		return;
	}
	if (stanza_is(st, "message"))
		room_message(r, st, to, from);
	else
		room_iq(r, st, to, from);
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

	cfg_parse(&c, config);
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
		add_feature(r, NS_MUC);
		add_feature(r, NS_DISCO_INFO);
		add_feature(r, NS_DISCO_ITEMS);
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
