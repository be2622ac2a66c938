/*
 * transfer: the life of a continuity transfer: created, stored while it waits (so a
 * restart keeps it), offered with its history from the archive, accepted (the switch of
 * bindings and seats, the catch-up) or failed, declined or expired; handovers to another
 * account; the one-time keys that log a device in for a transfer.
 *
 * Invariant: a transfer is freed only when no storage job points to it (jobs == 0); one
 * that ends meanwhile is marked dead and freed by the last completion.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "continuity_int.h"

pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
struct hmap keys;

static void offer_send(struct xfer *x);

void
xfer_key_drop(const char *key)
{
	struct keyed *k;

	pthread_mutex_lock(&keys_lock);
	if ((k = hmap_del(&keys, key))) {
		free(k->bare);
		free(k);
	}
	if (keys.count == 0)
		hmap_free(&keys);
	pthread_mutex_unlock(&keys_lock);
}

bool
cont_auth_token(struct session *s, const char *bare, const char *password)
{
	struct keyed *k;
	char id[17] = "";

	pthread_mutex_lock(&keys_lock);
	k = hmap_get(&keys, password);
	if (k && strcmp(k->bare, bare) == 0 && k->until > now_ms()) {
		memcpy(id, k->id, sizeof id);
		hmap_del(&keys, password);
		free(k->bare);
		free(k);
	}
	pthread_mutex_unlock(&keys_lock);
	if (!*id)
		return false;
	/* The session learns which transfer it came for; bound() offers it (R33). */
	struct csess *cs = cs_of(s);
	free(cs->via_key);
	cs->via_key = xstrdup(id);
	return true;
}

/* ---- transfers ---- */

static void
item_clear(struct item *it)
{
	free(it->jid);
	free(it->nick);
	xml_free(it->prefs);
	xml_free(it->history);
}

static void
xfer_unlink(struct xfer *x)
{
	struct cacct *ca = ca_of(x->a);

	for (struct xfer **pp = &ca->xfers; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	}
	timer_stop(x->a->w->loop, &x->ttl);
	cont_hold_account(x->a, ca->xfers != NULL);
}

void
xfer_free(struct xfer *x)
{
	if (x->key[0])
		xfer_key_drop(x->key);
	for (size_t i = 0; i < x->n; i++)
		item_clear(&x->items[i]);
	free(x->items);
	hmap_free(&x->live);
	xml_free(x->blob);
	free(x->source);
	free(x->target);
	free(x->offered_to);
	free(x);
}

/* The transfer is over: off the account, freed unless a storage job still holds it. */
/* ---- transfers that survive a restart (store_transfer_*) ---- */

static const char *const mode_names[] = {"move", "copy", "logout"};

/* The transfer as stored: everything but its history, which is read again when offered. */
static struct xml_node *
xfer_xml(const struct xfer *x)
{
	struct xml_node *e = xml_el_new("xfer", NS_CONT);
	char num[24];

	xml_set_attr(e, "id", x->id);
	if (x->source)
		xml_set_attr(e, "source", x->source);
	if (x->target)
		xml_set_attr(e, "target", x->target);
	xml_set_attr(e, "mode", mode_names[x->mode]);
	xml_set_attr(e, "notify", x->notify ? "true" : "false");
	xml_set_attr(e, "foreign", x->foreign ? "true" : "false");
	snprintf(num, sizeof num, "%ld", x->history);
	xml_set_attr(e, "history", num);
	if (x->key[0])
		xml_set_attr(e, "key", x->key);
	xml_set_attr(e, "parked",
		     x->state == X_PARKED || (!x->target && !x->key[0]) ? "true" : "false");
	snprintf(num, sizeof num, "%lld", (long long)x->expires);
	xml_set_attr(e, "expires", num);
	for (size_t i = 0; i < x->n; i++) {
		const struct item *it = &x->items[i];
		struct xml_node *ie = xml_add_el(e, "item", NULL);
		xml_set_attr(ie, it->room ? "room" : "with", it->jid);
		if (it->nick)
			xml_set_attr(ie, "nick", it->nick);
		snprintf(num, sizeof num, "%ld", it->priority);
		xml_set_attr(ie, "priority", num);
		if (it->prefs)
			xml_add_child(ie, xml_copy(it->prefs));
	}
	if (x->blob)
		xml_add_child(e, xml_copy(x->blob));
	return e;
}

struct xstore_job {
	struct store_job job;
	char *owner;
	char id[17];
	struct buf xml; /* empty: delete */
	int64_t expires;
};

static int
xstore_run(struct store *st, struct store_job *job)
{
	struct xstore_job *j = container_of(job, struct xstore_job, job);

	if (!buf_used(&j->xml))
		return store_transfer_del(st, j->owner, j->id);
	return store_transfer_put(st, j->owner, j->id, buf_head(&j->xml), j->expires);
}

static void
xstore_done(struct store_job *job)
{
	struct xstore_job *j = container_of(job, struct xstore_job, job);

	if (job->result < 0 && job->result != STORE_ENOENT)
		log_error("continuity %s: could not store transfer %s", j->owner, j->id);
	free(j->owner);
	buf_free(&j->xml);
	free(j);
}

static void
xstore(struct xfer *x, bool put)
{
	struct xstore_job *j = xcalloc(1, sizeof *j);

	j->owner = xstrdup(x->a->bare);
	memcpy(j->id, x->id, sizeof j->id);
	j->expires = x->expires;
	if (put) {
		struct xml_node *e = xfer_xml(x);
		xml_write(&j->xml, e, NULL);
		buf_append(&j->xml, "", 1);
		j->xml.len--; /* NUL-terminated for the store, not counted */
		xml_free(e);
	}
	j->job.run = xstore_run;
	j->job.done = xstore_done;
	worker_store(x->a->w, &j->job);
}

void
xfer_persist(struct xfer *x)
{
	xstore(x, true);
	x->stored = true;
}

static void
unpersist(struct xfer *x)
{
	if (x->stored && !x->a->w->stopping) {
		xstore(x, false);
		x->stored = false;
	}
}

/* Rebuilds the transfers stored before a restart (first use of the account's state). */
void
xfer_restore(struct account *a)
{
	struct cacct *ca = ca_of(a);
	struct xml_node *list = ca->restore;

	ca->restore = NULL;
	for (struct xml_node *e = list ? xml_child(list, "xfer", NS_CONT) : NULL; e;
	     e = xml_next(e, "xfer", NS_CONT)) {
		const char *id = xml_attr(e, "id"), *mode = xml_attr(e, "mode");
		const char *exp = xml_attr(e, "expires");
		int64_t expires = exp ? atoll(exp) : 0, left = expires - wall_ms();
		if (!id || strlen(id) != 16 || left <= 0)
			continue;
		struct xfer *x = xfer_new(a, xml_attr(e, "source"));
		memcpy(x->id, id, sizeof x->id);
		x->expires = expires;
		timer_start(a->w->loop, &x->ttl, (uint64_t)left);
		x->target = xml_attr(e, "target") ? xstrdup(xml_attr(e, "target")) : NULL;
		x->mode = mode && !strcmp(mode, "copy")	    ? MODE_COPY
			  : mode && !strcmp(mode, "logout") ? MODE_LOGOUT
							    : MODE_MOVE;
		x->notify = cont_truthy(xml_attr(e, "notify"));
		x->foreign = cont_truthy(xml_attr(e, "foreign"));
		x->history = xml_attr(e, "history") ? atol(xml_attr(e, "history")) : 0;
		x->stored = true;
		for (struct xml_node *ie = xml_child(e, "item", NS_CONT); ie;
		     ie = xml_next(ie, "item", NS_CONT)) {
			const char *room = xml_attr(ie, "room"), *with = xml_attr(ie, "with");
			struct xml_node *p = xml_child(ie, "preferences", NS_CONT);
			if (!room && !with)
				continue;
			x->items = xrealloc(x->items, (x->n + 1) * sizeof *x->items);
			x->items[x->n++] = (struct item){
			    .room = room != NULL,
			    .jid = xstrdup(room ? room : with),
			    .nick = xml_attr(ie, "nick") ? xstrdup(xml_attr(ie, "nick")) : NULL,
			    .priority =
				xml_attr(ie, "priority") ? atol(xml_attr(ie, "priority")) : 0,
			    .prefs = p ? xml_copy(p) : NULL};
		}
		if (xml_child(e, "blob", NS_CONT))
			x->blob = xml_copy(xml_child(e, "blob", NS_CONT));
		const char *key = xml_attr(e, "key");
		if (key && strlen(key) == 32) {
			struct keyed *k = xcalloc(1, sizeof *k);
			memcpy(x->key, key, sizeof x->key);
			k->bare = xstrdup(a->bare);
			memcpy(k->id, x->id, sizeof k->id);
			k->until = now_ms() + (uint64_t)left;
			pthread_mutex_lock(&keys_lock);
			hmap_put(&keys, x->key, k);
			pthread_mutex_unlock(&keys_lock);
		}
		/* Parked stays parked; anything else waits for its device (offered again). */
		x->state = cont_truthy(xml_attr(e, "parked")) ? X_PARKED : X_WAITING;
		log_info("continuity %s: transfer %s restored", a->bare, x->id);
		if (x->foreign && x->state == X_WAITING)
			xfer_offer(x, NULL);
	}
	xml_free(list);
}

void
xfer_end(struct xfer *x)
{
	unpersist(x);
	xfer_unlink(x);
	if (x->jobs)
		x->dead = true;
	else
		xfer_free(x);
}

struct xfer *
xfer_find(struct account *a, const char *id)
{
	for (struct xfer *x = ca_of(a)->xfers; x; x = x->next)
		if (strcmp(x->id, id) == 0)
			return x;
	return NULL;
}

/* Is full a device of account a? */
static bool
is_own(const struct account *a, const char *full)
{
	size_t n = strlen(a->bare);
	return strncmp(full, a->bare, n) == 0 && full[n] == '/';
}

/* A control message to one device of the account, from the account (PROTOCOL.md 1). */
void
cont_tell(struct account *a, const char *to, struct xml_node *payload)
{
	struct session *s = cont_session_of(a, to);
	struct xml_node *m;

	if (!is_own(a, to)) {
		/* A device of another account (R34): through the router like any message. */
		m = stanza_new("message", a->bare, to, NULL, NULL);
		xml_add_child(m, payload);
		route(a->w, m);
		return;
	}
	if (!s || s->state != SS_ACTIVE) {
		xml_free(payload);
		return;
	}
	m = stanza_new("message", a->bare, to, NULL, NULL);
	xml_add_child(m, payload);
	session_send(s, m);
	xml_free(m);
}

void
xfer_fail(struct xfer *x, const char *reason)
{
	struct xml_node *f = xml_el_new("transfer-failed", NS_CONT);

	xml_set_attr(f, "id", x->id);
	xml_set_attr(f, "reason", reason);
	log_info("continuity %s: transfer %s failed: %s", x->a->bare, x->id, reason);
	if (x->source)
		cont_tell(x->a, x->source, f);
	else
		xml_free(f);
	xfer_end(x);
}

static void
ttl_expired(struct timer *t)
{
	struct xfer *x = container_of(t, struct xfer, ttl);
	struct xml_node *e = xml_el_new("expired", NS_CONT);

	/* PROTOCOL.md 1: pending transfers expire after continuity.pending_ttl; A is told. */
	xml_set_attr(e, "id", x->id);
	if (x->source)
		cont_tell(x->a, x->source, e);
	else
		xml_free(e);
	xfer_end(x);
}

struct xfer *
xfer_new(struct account *a, const char *source)
{
	struct xfer *x = xcalloc(1, sizeof *x);
	struct cacct *ca = ca_of(a);

	x->a = a;
	rand_id(x->id, sizeof x->id - 1);
	x->source = source ? xstrdup(source) : NULL;
	x->mode = MODE_MOVE;
	x->history = a->w->srv->cfg->continuity_history;
	x->ttl.fn = ttl_expired;
	timer_start(a->w->loop, &x->ttl, a->w->srv->cfg->continuity_pending_ttl);
	x->expires = wall_ms() + (int64_t)a->w->srv->cfg->continuity_pending_ttl;
	x->next = ca->xfers;
	ca->xfers = x;
	cont_hold_account(a, true);
	return x;
}

/* Each item takes the preferences its conversation has on the giving device (R23). */
static void
attach_prefs(struct xfer *x, struct csess *cs)
{
	for (size_t i = 0; cs && i < x->n; i++) {
		struct xml_node *p = hmap_get(&cs->prefs, x->items[i].jid);
		if (p && !x->items[i].prefs)
			x->items[i].prefs = xml_copy(p);
	}
}

void
cont_free_prefs(void *p)
{
	xml_free(p);
}

/* The conversation's preferences go with it to device tcs (R23), moved or copied. */
static void
carry_prefs(struct csess *fcs, struct csess *tcs, const struct item *it, bool move)
{
	if (it->prefs)
		xml_free(hmap_put(&tcs->prefs, it->jid, xml_copy(it->prefs)));
	if (move && fcs)
		xml_free(hmap_del(&fcs->prefs, it->jid));
}

/* The conversations of session s as transfer items: all of them, or those listed. */
int
xfer_collect(struct xfer *x, struct session *s, const struct xml_node *req, char **bad)
{
	struct csess *cs = s ? cs_of(s) : NULL;
	int64_t since = wall_ms() - (int64_t)x->a->w->srv->cfg->continuity_open_ttl;
	const char *k;
	void *v;
	bool listed = req && xml_child(req, "session", NS_CONT);

	if (listed) {
		for (struct xml_node *e = xml_child(req, "session", NS_CONT); e;
		     e = xml_next(e, "session", NS_CONT)) {
			const char *with = xml_attr(e, "with"), *room = xml_attr(e, "room");
			char *jid = cont_bare_of(with ? with : room);
			struct seat *st = room && cs && jid ? hmap_get(&cs->seats, jid) : NULL;
			if (!jid || (room && !st)) {
				/* A room A is not in cannot be handed on (R31: refuse, change
				 * nothing). */
				*bad = xstrdup(with ? with : room ? room : "(none)");
				free(jid);
				return -1;
			}
			x->items = xrealloc(x->items, (x->n + 1) * sizeof *x->items);
			struct item *it = &x->items[x->n++];
			*it = (struct item){.room = room != NULL, .jid = jid};
			if (st) {
				it->nick = xstrdup(st->nick);
				it->priority = st->priority;
			} else if (cs && (v = hmap_get(&cs->convs, jid))) {
				it->priority = ((struct conv *)v)->priority;
			}
		}
		attach_prefs(x, cs);
		return 0;
	}
	for (size_t i = 0; cs && hmap_next(&cs->convs, &i, &k, &v);) {
		struct conv *c = v;
		if (c->last < since)
			continue;
		x->items = xrealloc(x->items, (x->n + 1) * sizeof *x->items);
		x->items[x->n++] = (struct item){.jid = xstrdup(k), .priority = c->priority};
	}
	for (size_t i = 0; cs && hmap_next(&cs->seats, &i, &k, &v);) {
		struct seat *st = v;
		x->items = xrealloc(x->items, (x->n + 1) * sizeof *x->items);
		x->items[x->n++] = (struct item){.room = true,
						 .jid = xstrdup(k),
						 .nick = xstrdup(st->nick),
						 .priority = st->priority};
	}
	attach_prefs(x, cs);
	return 0;
}

/* ---- reading the archive: history for an xfer_offer, catch-up after an accept ---- */

struct found {
	char *stanza;
	int64_t stamp, id;
	bool outgoing;
};

struct read_job {
	struct store_job job;
	struct xfer *x;
	char *owner;
	bool catchup;
	int64_t after, before;
	size_t max;
	char *to;	  /* catch-up: the device to send it to */
	struct hmap skip; /* catch-up: archive ids it already has */
	struct {
		bool room;
		char *jid;
		struct found *f;
		size_t n;
	} * q;
	size_t nq;
};

struct collect_ctx {
	struct found *f;
	size_t n;
};

static void
collect_one(void *arg, const struct store_archive_msg *m)
{
	struct collect_ctx *c = arg;

	c->f = xrealloc(c->f, (c->n + 1) * sizeof *c->f);
	c->f[c->n++] = (struct found){xstrndup(m->stanza, m->len), m->stamp_ms, m->id, m->outgoing};
}

static int
read_run(struct store *st, struct store_job *job)
{
	struct read_job *rj = container_of(job, struct read_job, job);

	for (size_t i = 0; i < rj->nq; i++) {
		struct collect_ctx c = {0};
		bool complete;
		struct store_archive_query q = {
		    .owner = rj->q[i].room ? rj->q[i].jid : rj->owner,
		    .with = rj->q[i].room ? NULL : rj->q[i].jid,
		    .after_id = rj->after,
		    .before_id = rj->before,
		    .max = rj->max ? rj->max : 1,
		    .last = !rj->catchup, /* history: the newest; catch-up: all, oldest first */
		};
		if (rj->catchup)
			q.max = 10000;
		int r = rj->q[i].room ? store_room_archive_query(st, &q, collect_one, &c, &complete)
				      : store_archive_query(st, &q, collect_one, &c, &complete);
		if (r != 0 && r != STORE_ENOENT)
			log_warn("continuity: reading the archive of %s failed", q.owner);
		rj->q[i].f = c.f;
		rj->q[i].n = c.n;
	}
	return 0;
}

static void
read_job_free(struct read_job *rj)
{
	for (size_t i = 0; i < rj->nq; i++) {
		for (size_t j = 0; j < rj->q[i].n; j++)
			free(rj->q[i].f[j].stanza);
		free(rj->q[i].f);
		free(rj->q[i].jid);
	}
	free(rj->q);
	free(rj->owner);
	free(rj->to);
	hmap_free(&rj->skip);
	free(rj);
}

/* The stored stanza as a tree in jabber:client, or NULL. */
static struct xml_node *
parse_stored(const char *text)
{
	struct buf b = {0};
	struct xml_node *w, *st;

	buf_puts(&b, "<w xmlns='" NS_CLIENT "'>");
	buf_puts(&b, text);
	buf_puts(&b, "</w>");
	w = xml_parse(buf_head(&b), buf_used(&b));
	buf_free(&b);
	st = w ? xml_child(w, NULL, NULL) : NULL;
	if (st)
		xml_detach(st);
	xml_free(w);
	return st;
}

static void
add_delay(struct xml_node *parent, int64_t stamp, const char *by)
{
	char when[32];
	struct xml_node *d = xml_add_el(parent, "delay", NS_DELAY);

	time_format(stamp, when, sizeof when);
	xml_set_attr(d, "stamp", when);
	if (by)
		xml_set_attr(d, "from", by);
}

/*
 * Claims 34/35/41: a client that shows text only gets links and plain bodies instead of
 * what it cannot show (XEP-0066 out-of-band data, XHTML-IM).
 */
static void
adapt_media(struct xml_node *m, const struct csess *cs)
{
	struct xml_node *c, *next;

	if (!cs || !cs->media || strcmp(cs->media, "text") != 0)
		return;
	for (c = m->first; c; c = next) {
		next = c->next;
		if (!c->name)
			continue;
		if (strcmp(c->ns, NS_XHTML_IM) == 0) {
			xml_detach(c);
			xml_free(c);
		} else if (strcmp(c->ns, NS_OOB) == 0) {
			struct xml_node *url = xml_child(c, "url", NS_OOB);
			char *u = url ? xml_text(url) : NULL;
			if (u && !xml_child(m, "body", NS_CLIENT))
				xml_add_text(xml_add_el(m, "body", NS_CLIENT), u, strlen(u));
			free(u);
			xml_detach(c);
			xml_free(c);
		}
	}
}

/* Live messages too, for a device whose profile says media='text' (R25). */
struct xml_node *
cont_adapt(struct session *s, const struct xml_node *st)
{
	struct csess *cs = s->ext[continuity_ext.slot];
	struct xml_node *copy;

	if (!cs || !cs->media || strcmp(cs->media, "text") != 0 || !stanza_is(st, "message") ||
	    (!xml_child(st, "x", NS_OOB) && !xml_child(st, "html", NS_XHTML_IM)))
		return NULL;
	copy = xml_copy(st);
	adapt_media(copy, cs);
	return copy;
}

static void
history_done(struct store_job *job)
{
	struct read_job *rj = container_of(job, struct read_job, job);
	struct xfer *x = rj->x;
	struct session *to;

	x->jobs--;
	if (x->dead) {
		xfer_free(x);
		read_job_free(rj);
		return;
	}
	to = cont_session_of(x->a, x->offered_to);
	for (size_t i = 0; i < rj->nq; i++) {
		struct item *it = &x->items[i];
		struct xml_node *sess = xml_el_new("session", NS_CONT);
		char prio[24];
		snprintf(prio, sizeof prio, "%ld", it->priority);
		xml_set_attr(sess, it->room ? "room" : "with", it->jid);
		if (it->nick)
			xml_set_attr(sess, "nick", it->nick);
		xml_set_attr(sess, "priority", prio);
		if (it->prefs)
			xml_add_child(sess, xml_copy(it->prefs));
		for (size_t j = 0; j < rj->q[i].n; j++) {
			struct xml_node *m = parse_stored(rj->q[i].f[j].stanza);
			if (!m)
				continue;
			adapt_media(m, to ? cs_of(to) : NULL);
			/* XEP-0297: each message forwarded with the time it was first seen. */
			struct xml_node *f = xml_add_el(sess, "forwarded", NS_FORWARD);
			add_delay(f, rj->q[i].f[j].stamp, NULL);
			xml_add_child(f, m);
		}
		xml_free(it->history);
		it->history = sess;
	}
	read_job_free(rj);
	if (!x->foreign && (!to || to->state != SS_ACTIVE)) {
		xfer_fail(x, "target-disconnected");
		return;
	}
	offer_send(x);
}

/*
 * Reads the history of every item, then offers the transfer to the device 'to' (a session
 * of the account, or NULL for x->target of another account).
 */
void
xfer_offer(struct xfer *x, struct session *to)
{
	struct read_job *rj = xcalloc(1, sizeof *rj);
	long max = x->history;
	struct csess *cs = to ? cs_of(to) : NULL;

	free(x->offered_to);
	x->offered_to = xstrdup(to ? to->full : x->target);
	x->state = X_BUILDING;
	/* R18: the target's profile may ask for less. */
	if (cs && cs->max_history > 0 && cs->max_history < max)
		max = cs->max_history;
	x->snapshot = mam_next_id(x->a->w);
	rj->x = x;
	rj->owner = xstrdup(x->a->bare);
	rj->before = x->snapshot;
	rj->max = max > 0 ? (size_t)max : 0;
	rj->q = xcalloc(x->n ? x->n : 1, sizeof *rj->q);
	rj->nq = x->n;
	for (size_t i = 0; i < x->n; i++) {
		rj->q[i].room = x->items[i].room;
		rj->q[i].jid = xstrdup(x->items[i].jid);
	}
	rj->job.run = read_run;
	rj->job.done = history_done;
	x->jobs++;
	if (max <= 0 || !x->a->w->srv->cfg->archive_enabled) {
		/* No history wanted (or kept): the offer goes at once, through the same path. */
		history_done(&rj->job);
		return;
	}
	worker_store(x->a->w, &rj->job);
}

/*
 * R21 (claims 2, 18-21, 33, 45): the client-level data goes across with the sessions: the
 * server's identity, the contacts with their subscription, and the account's preferences.
 */
static struct xml_node *
client_data(struct account *a)
{
	static const char *const subs[] = {"none", "to", "from", "both"};
	struct xml_node *c = xml_el_new("client", NS_CONT);
	const char *k;
	void *v;

	xml_set_attr(c, "account", a->bare);
	xml_set_attr(c, "server", a->w->srv->cfg->domain);
	for (size_t it = 0; hmap_next(&a->roster, &it, &k, &v);) {
		struct roster_item *ri = v;
		if (ri->hidden)
			continue;
		struct xml_node *e = xml_add_el(c, "contact", NULL);
		xml_set_attr(e, "jid", ri->contact);
		if (ri->name)
			xml_set_attr(e, "name", ri->name);
		xml_set_attr(e, "subscription", subs[ri->sub & 3]);
	}
	xml_add_child(c, cont_prefs_element(ca_of(a)));
	return c;
}

static void
offer_send(struct xfer *x)
{
	struct xml_node *t = xml_el_new("transferred", NS_CONT);

	x->state = X_OFFERED;
	xml_set_attr(t, "id", x->id);
	if (x->source)
		xml_set_attr(t, "from", x->source);
	/* R22: sessions in order of priority, highest first. */
	for (;;) {
		struct item *pick = NULL;
		for (size_t i = 0; i < x->n; i++) {
			struct item *it = &x->items[i];
			if (it->history && (!pick || it->priority > pick->priority))
				pick = it;
		}
		if (!pick)
			break;
		xml_add_child(t, pick->history);
		pick->history = NULL;
	}
	xml_add_child(t, client_data(x->a));
	if (x->blob)
		xml_add_child(t, xml_copy(x->blob));
	log_info("continuity %s: transfer %s offered to %s (%zu sessions)", x->a->bare, x->id,
		 x->offered_to, x->n);
	cont_tell(x->a, x->offered_to, t);
}

/* ---- accepting: the switch ---- */

/*
 * The catch-up for a device of another account (R34): what the peers sent goes to it as
 * sent (it answers them itself now), what this account sent as forwarded copies.
 */
static void
catchup_foreign(struct account *a, struct read_job *rj)
{
	for (size_t i = 0; i < rj->nq; i++) {
		for (size_t j = 0; j < rj->q[i].n; j++) {
			struct found *f = &rj->q[i].f[j];
			struct xml_node *m, *out;
			char id[24];
			snprintf(id, sizeof id, "%lld", (long long)f->id);
			if (hmap_get(&rj->skip, id) || !(m = parse_stored(f->stanza)))
				continue;
			if (f->outgoing || rj->q[i].room) {
				out = stanza_new("message", a->bare, rj->to, NULL, NULL);
				struct xml_node *fw = xml_add_el(out, "forwarded", NS_FORWARD);
				add_delay(fw, f->stamp, NULL);
				xml_add_child(fw, m);
			} else {
				out = m;
				xml_set_attr(out, "to", rj->to);
				add_delay(out, f->stamp, a->w->srv->cfg->domain);
			}
			route(a->w, out);
		}
	}
}

static void
catchup_done(struct store_job *job)
{
	struct read_job *rj = container_of(job, struct read_job, job);
	struct account *a = rj->x->a;
	struct session *to;

	rj->x->jobs--;
	if (rj->x->dead)
		xfer_free(rj->x);
	to = cont_session_of(a, rj->to);
	if (!to && !is_own(a, rj->to)) {
		catchup_foreign(a, rj);
		read_job_free(rj);
		return;
	}
	for (size_t i = 0; to && to->state == SS_ACTIVE && i < rj->nq; i++) {
		for (size_t j = 0; j < rj->q[i].n; j++) {
			struct found *f = &rj->q[i].f[j];
			struct xml_node *m, *out;
			char id[24];
			snprintf(id, sizeof id, "%lld", (long long)f->id);
			if (hmap_get(&rj->skip, id) || !(m = parse_stored(f->stanza)))
				continue;
			adapt_media(m, cs_of(to));
			if (f->outgoing && !rj->q[i].room) {
				/* What the old device sent meanwhile: as a carbon (XEP-0280 6). */
				out = stanza_new("message", a->bare, to->full, NULL, NULL);
				struct xml_node *sent = xml_add_el(out, "sent", NS_CARBONS);
				struct xml_node *fw = xml_add_el(sent, "forwarded", NS_FORWARD);
				add_delay(fw, f->stamp, NULL);
				xml_add_child(fw, m);
			} else {
				out = m;
				xml_set_attr(out, "to", to->full);
				add_delay(out, f->stamp, a->w->srv->cfg->domain);
			}
			session_send(to, out);
			xml_free(out);
		}
	}
	read_job_free(rj);
}

/*
 * Asks room to move (or share) the seat of device from to device to. The room answers the
 * account under id ("cont-seat-<transfer id>" when a transfer waits for it).
 */
void
cont_seat_request(struct account *a, const char *room, const char *from, const char *to, bool copy,
		  struct xml_node *moved, const char *id)
{
	struct xml_node *iq = stanza_new("iq", a->bare, room, "set", id);
	struct xml_node *q = xml_add_el(iq, "seat", NS_CONT);

	xml_set_attr(q, "key", a->w->srv->key);
	xml_set_attr(q, "jid", from);
	xml_set_attr(q, "to", to);
	xml_set_attr(q, "mode", copy ? "copy" : "move");
	if (moved)
		xml_add_child(q, moved);
	route(a->w, iq);
}

static struct xml_node *
moved_notice(struct xfer *x, struct session *to)
{
	struct xml_node *mv = xml_el_new("moved", NS_CONT);
	struct csess *cs = cs_of(to);

	xml_set_attr(mv, "jid", x->a->bare);
	if (x->source)
		xml_set_attr(mv, "from", x->source);
	xml_set_attr(mv, "to", to->full);
	if (cs->device || cs->media || cs->max_history) {
		struct xml_node *p = xml_add_el(mv, "profile", NS_CONT);
		char mh[24];
		if (cs->device)
			xml_set_attr(p, "device", cs->device);
		if (cs->media)
			xml_set_attr(p, "media", cs->media);
		if (cs->max_history) {
			snprintf(mh, sizeof mh, "%ld", cs->max_history);
			xml_set_attr(p, "max-history", mh);
		}
	}
	return mv;
}

/*
 * The catch-up of an accepted transfer (R9): archived messages of its conversations from
 * the offer's snapshot up to now, the moment of the switch; later ones go to 'to' live.
 */
static struct read_job *
catchup_begin(struct xfer *x, const char *to)
{
	struct read_job *rj = xcalloc(1, sizeof *rj);

	rj->x = x;
	rj->owner = xstrdup(x->a->bare);
	rj->catchup = true;
	rj->after = x->snapshot - 1;
	rj->before = mam_next_id(x->a->w);
	rj->to = xstrdup(to);
	rj->skip = x->live; /* what 'to' already got live */
	x->live = (struct hmap){0};
	rj->q = xcalloc(x->n ? x->n : 1, sizeof *rj->q);
	for (size_t i = 0; i < x->n; i++) {
		rj->q[i].room = x->items[i].room;
		rj->q[i].jid = xstrdup(x->items[i].jid);
	}
	rj->nq = x->n;
	return rj;
}

static void
catchup_submit(struct xfer *x, struct read_job *rj)
{
	rj->job.run = read_run;
	rj->job.done = catchup_done;
	x->jobs++;
	if (x->a->w->srv->cfg->archive_enabled)
		worker_store(x->a->w, &rj->job);
	else
		catchup_done(&rj->job);
}

/* A is told the transfer is done; with logout (FIG. 15) it is closed now. */
static void
done_now(struct account *a, const char *id, const char *source, const char *target, bool logout)
{
	struct xml_node *done = xml_el_new("transfer-done", NS_CONT);
	struct session *from = source ? cont_session_of(a, source) : NULL;

	xml_set_attr(done, "id", id);
	xml_set_attr(done, "to", target);
	if (source)
		cont_tell(a, source, done);
	else
		xml_free(done);
	if (logout && from && strcmp(from->full, target) != 0 && from->state == SS_ACTIVE) {
		if (from->tp)
			from->tp->end(from->t);
		session_close(from, "logged out by a transfer");
	}
}

void
cont_done_wait_free(struct done_wait *w)
{
	free(w->source);
	free(w->target);
	free(w);
}

/*
 * Before the seat requests go out (a room on this worker answers at once, inside the
 * request): the waiter that counts their answers.
 */
static struct done_wait *
begin_accept(struct xfer *x, const char *target)
{
	struct cacct *ca = ca_of(x->a);
	struct done_wait *w = xcalloc(1, sizeof *w);

	memcpy(w->id, x->id, sizeof w->id);
	w->source = x->source ? xstrdup(x->source) : NULL;
	w->target = xstrdup(target);
	w->logout = x->mode == MODE_LOGOUT;
	w->next = ca->waits;
	ca->waits = w;
	return w;
}

/* Every request is out: done now if all were answered, else with the last answer. */
static void
finish_accept(struct account *a, struct done_wait *w)
{
	struct cacct *ca = ca_of(a);

	w->armed = true;
	if (w->seats > 0)
		return;
	for (struct done_wait **pp = &ca->waits; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	done_now(a, w->id, w->source, w->target, w->logout);
	cont_done_wait_free(w);
}

/* A room answered a seat move ("cont-seat-<id>"). */
static void
seat_answered(struct account *a, const struct xml_node *st, const char *xid)
{
	struct cacct *ca = ca_of(a);

	if (strcmp(xml_attr(st, "type"), "error") == 0)
		log_info("continuity %s: a room refused to move a seat of transfer %s", a->bare,
			 xid);
	for (struct done_wait **pp = &ca->waits; *pp; pp = &(*pp)->next) {
		struct done_wait *w = *pp;
		if (strcmp(w->id, xid) != 0)
			continue;
		if (--w->seats == 0 && w->armed) {
			*pp = w->next;
			done_now(a, w->id, w->source, w->target, w->logout);
			cont_done_wait_free(w);
		}
		return;
	}
}

void
xfer_accept(struct xfer *x, struct session *to)
{
	struct account *a = x->a;
	struct cacct *ca = ca_of(a);
	struct session *from = cont_session_of(a, x->source);
	struct csess *fcs = from ? cs_of(from) : NULL, *tcs = cs_of(to);
	bool move = x->mode != MODE_COPY;
	struct read_job *rj = catchup_begin(x, to->full);
	char seat_id[40];
	struct done_wait *w = begin_accept(x, to->full);

	snprintf(seat_id, sizeof seat_id, "cont-seat-%s", x->id);
	for (size_t i = 0; i < x->n; i++) {
		struct item *it = &x->items[i];
		carry_prefs(fcs, tcs, it, move);
		if (it->room) {
			struct seat *st = fcs ? hmap_del(&fcs->seats, it->jid) : NULL;
			if (st && !move)
				hmap_put(&fcs->seats, it->jid, st), st = NULL;
			if (from && ++w->seats)
				cont_seat_request(a, it->jid, from->full, to->full, !move,
						  x->notify ? moved_notice(x, to) : NULL, seat_id);
			if (!hmap_get(&tcs->seats, it->jid)) {
				struct seat *ns = xcalloc(1, sizeof *ns);
				ns->nick = xstrdup(it->nick ? it->nick : "");
				ns->role = xstrdup(st && st->role ? st->role : "");
				ns->priority = it->priority;
				hmap_put(&tcs->seats, it->jid, ns);
			}
			if (st)
				cont_seat_free(st);
			continue;
		}
		/* R7: the conversation continues on 'to'; with move, only there. */
		if (move)
			cont_bind_conv(ca, it->jid, to->resource, from ? from->resource : NULL);
		else
			cont_bound_free(hmap_del(&ca->bind, it->jid));
		if (move && fcs)
			free(hmap_del(&fcs->convs, it->jid));
		cont_note_conv(to, it->jid)->priority = it->priority; /* R20: merge, never twice */
		if (x->notify) {
			/* Claims 23-28: the other participant learns where the person is now. */
			struct xml_node *m = stanza_new("message", a->bare, it->jid, NULL, NULL);
			xml_add_child(m, moved_notice(x, to));
			route(a->w, m);
		}
	}
	catchup_submit(x, rj);
	log_info("continuity %s: transfer %s accepted by %s", a->bare, x->id, to->full);
	finish_accept(a, w);
	xfer_end(x);
}

/* ---- handing conversations to another account (R34, claim 16) ---- */

/*
 * The switch for a target of another account: the peers' next messages go to it
 * (redirect), seats move to it (and become its account's), and it gets the catch-up.
 */
static void
accept_foreign(struct xfer *x)
{
	struct account *a = x->a;
	struct cacct *ca = ca_of(a);
	struct session *from = cont_session_of(a, x->source);
	struct csess *fcs = from ? cs_of(from) : NULL;
	bool move = x->mode != MODE_COPY, redirected = false;
	struct read_job *rj = catchup_begin(x, x->offered_to);
	char seat_id[40];
	struct done_wait *w = begin_accept(x, x->offered_to);

	snprintf(seat_id, sizeof seat_id, "cont-seat-%s", x->id);
	for (size_t i = 0; i < x->n; i++) {
		struct item *it = &x->items[i];
		struct xml_node *mv = NULL;
		if (x->notify) {
			mv = xml_el_new("moved", NS_CONT);
			xml_set_attr(mv, "jid", a->bare);
			if (x->source)
				xml_set_attr(mv, "from", x->source);
			xml_set_attr(mv, "to", x->offered_to);
		}
		if (it->room) {
			struct seat *old = move && fcs ? hmap_del(&fcs->seats, it->jid) : NULL;
			if (old)
				cont_seat_free(old);
			if (from && ++w->seats)
				cont_seat_request(a, it->jid, from->full, x->offered_to, !move, mv,
						  seat_id);
			else
				xml_free(mv);
			continue;
		}
		if (move) {
			struct bound *b = xcalloc(1, sizeof *b);
			b->to = xstrdup(x->offered_to);
			b->from = from ? xstrdup(from->resource) : NULL;
			cont_bound_free(hmap_put(&ca->redirect, it->jid, b));
			cont_bound_free(hmap_del(&ca->bind, it->jid));
			redirected = true;
			if (fcs)
				free(hmap_del(&fcs->convs, it->jid));
		}
		if (mv) {
			struct xml_node *m = stanza_new("message", a->bare, it->jid, NULL, NULL);
			xml_add_child(m, mv);
			route(a->w, m);
		}
	}
	if (redirected)
		cont_redirects_save(a);
	catchup_submit(x, rj);
	log_info("continuity %s: transfer %s accepted by %s (another account)", a->bare, x->id,
		 x->offered_to);
	finish_accept(a, w);
	xfer_end(x);
}

/* The offered device of another account answers at this account's bare JID. */
void
cont_account_iq(struct account *a, struct xml_node *st, const struct jid *from)
{
	const char *type = xml_attr(st, "type");

	if (ca_of(a)->restore)
		xfer_restore(a);
	if (type && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0)) {
		const char *id = xml_attr(st, "id");
		if (id && strncmp(id, "cont-seat-", 10) == 0)
			seat_answered(a, st, id + 10);
		xml_free(st);
		return;
	}
	struct xml_node *q = xml_child(st, NULL, NULL);
	const char *id = xml_attr(q, "id");
	char *full = jid_full(from);
	struct xfer *x = id ? xfer_find(a, id) : NULL;
	bool yes = strcmp(q->name, "accept") == 0;
	struct xml_node *r;

	if ((!yes && strcmp(q->name, "decline") != 0) || !x || !x->foreign ||
	    x->state != X_OFFERED || strcmp(x->offered_to, full) != 0) {
		r = stanza_error_reply(st, "cancel", "item-not-found",
				       "no such transfer offered to you");
	} else {
		r = stanza_new("iq", a->bare, full, "result", xml_attr(st, "id"));
		if (yes)
			accept_foreign(x);
		else
			xfer_fail(x, "declined");
	}
	xml_set_attr(r, "from", a->bare);
	route(a->w, r);
	free(full);
	xml_free(st);
}

const char *
cont_redirect(struct account *a, const struct xml_node *st, const struct jid *to,
	      const struct jid *from)
{
	struct cacct *ca = a->ext[continuity_ext.slot];
	struct bound *b = ca ? cont_followed(&ca->redirect, to, from) : NULL;

	return b ? b->to : NULL; /* a full JID of the other account */
}
