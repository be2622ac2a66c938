/*
 * continuity: device continuity (seed 000) as PROTOCOL.md 1 specifies it. Each session
 * keeps what it has open (1:1 conversations it used within continuity.open_ttl, rooms
 * it sits in, priorities, its client profile); a transfer gives some or all of it to
 * another device of the account, which must accept; the account keeps pending, offered
 * and parked transfers and the conversation bindings a move leaves behind.
 *
 * Invariant: nothing changes for the source before the target's <accept/>. At accept the
 * bindings and seats switch in one turn; history (archive ids below the snapshot taken
 * when the offer was built) and catch-up (from the snapshot to the switch) and live
 * traffic (after the switch) never overlap, so each message reaches the target once.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "continuity.h"

#define NS_CONT	    "urn:baton:continuity:0"
#define NS_FORWARD  "urn:xmpp:forward:0"
#define NS_DELAY    "urn:xmpp:delay"
#define NS_CARBONS  "urn:xmpp:carbons:2"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_OOB	    "jabber:x:oob"
#define NS_XHTML_IM "http://jabber.org/protocol/xhtml-im"

enum mode { MODE_MOVE, MODE_COPY, MODE_LOGOUT };
enum xstate {
	X_WAITING,  /* for its target device to connect */
	X_BUILDING, /* history being read for the offer */
	X_OFFERED,  /* the target has it and has not answered */
	X_PARKED,   /* on the server for any later device (claims 60/66) */
};

/* What one session has open. */
struct conv {
	int64_t last; /* wall ms of the last message with the peer */
	long priority;
};
struct seat {
	char *nick, *role;
	long priority;
};
struct csess {
	struct hmap convs; /* peer bare JID -> struct conv */
	struct hmap seats; /* room bare JID -> struct seat */
	struct hmap prefs; /* peer or room -> <preferences/> of that conversation (R23) */
	char *device, *media;
	long max_history; /* 0: not stated */
	int64_t active;	  /* wall ms of the last stanza it sent */
	char *via_key;	  /* logged in with the key of this transfer (R33) */
	char nonce[33];	  /* the challenge it was given for a key (R32), "" if none */
};

/* One conversation in a transfer. */
struct item {
	bool room;
	char *jid; /* peer or room */
	char *nick;
	long priority;
	struct xml_node *prefs;	  /* its <preferences/> (R23), or NULL */
	struct xml_node *history; /* <session/> with its <forwarded/>s, once built */
};

struct xfer {
	struct xfer *next;
	struct account *a;
	char id[17];
	char *source;	  /* full JID that gives the sessions */
	char *target;	  /* full JID, bare JID (next device), or NULL (parked) */
	char *offered_to; /* full JID holding the offer */
	enum mode mode;
	bool notify;
	long history;
	struct item *items;
	size_t n;
	struct xml_node *blob;
	int64_t snapshot; /* archive ids below it are history */
	struct hmap live; /* archive ids the target got live while the offer stood (no catch-up) */
	enum xstate state;
	char key[33];	 /* R32/R33: the one-time key that redeems it, "" if none */
	int64_t expires; /* wall ms: continuity.pending_ttl after it began */
	bool stored;	 /* a copy is in storage (it survives a restart) */
	bool dead;	 /* ended while a storage job still points here */
	bool foreign;	 /* the target is a device of another account (R34) */
	unsigned jobs;
	struct timer ttl;
};

/*
 * An accepted transfer waits for its rooms to confirm the seat moves before the giving
 * device is told (and, with logout, closed): once A knows, everything goes to B, rooms
 * included, whatever the order in which the workers run.
 */
struct done_wait {
	struct done_wait *next;
	char id[17];
	char *source, *target;
	bool logout;
	bool armed; /* every seat request is out: the last answer finishes it */
	int seats;  /* answers still to come */
};

/* Where a moved conversation is held, and the device it moved away from. */
struct bound {
	char *to, *from; /* resources */
};

struct cacct {
	struct xfer *xfers;
	struct hmap bind;  /* peer bare JID -> struct bound */
	struct hmap pulls; /* id of a transfer-request -> full JID that pulled */
	/* preferences (PROTOCOL.md 1: kept in the account's private storage, XEP-0049) */
	bool auto_accept_pull;
	bool auto_transfer_on_connect; /* R14: a device that connects takes over at once */
	bool transfer_on_movement;     /* R16: so does one that reports it moved */
	char *handover_to; /* R34: accounts this one may hand conversations to, space separated */
	struct hmap redirect;	  /* peer bare JID -> struct bound: handed to another account */
	struct done_wait *waits;  /* accepted transfers whose rooms have not confirmed yet */
	struct xml_node *restore; /* stored transfers read with the account, not yet rebuilt */
	bool held;		  /* we hold a reference on the account (something pending) */
};

static struct csess *cs_of(struct session *s);
static bool truthy(const char *v);

/*
 * Transfer keys (FIG. 22, R32/R33): a key a transfer was issued with is a one-time login
 * credential of its account (SASL PLAIN), checked on whatever worker authenticates, so the
 * keys are kept here, under a mutex: key -> struct keyed.
 */
struct keyed {
	char *bare;
	char id[17];
	uint64_t until;
};

static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hmap keys;

static void
key_drop(const char *key)
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

static bool
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

/* ---- state ---- */

static struct csess *
cs_of(struct session *s)
{
	struct csess *cs = s->ext[continuity_ext.slot];

	if (!cs) {
		cs = xcalloc(1, sizeof *cs);
		s->ext[continuity_ext.slot] = cs;
	}
	return cs;
}

static struct cacct *
ca_of(struct account *a)
{
	struct cacct *ca = a->ext[continuity_ext.slot];

	if (!ca) {
		ca = xcalloc(1, sizeof *ca);
		a->ext[continuity_ext.slot] = ca;
	}
	return ca;
}

static char *
bare_of(const char *jid)
{
	struct jid j;
	char *b;

	if (!jid || jid_parse(jid, &j) < 0)
		return NULL;
	b = jid_bare(&j);
	jid_free(&j);
	return b;
}

static const char *
resource_of(const char *full)
{
	const char *slash = strchr(full, '/');
	return slash ? slash + 1 : NULL;
}

static struct session *
session_of(struct account *a, const char *full)
{
	const char *res = full ? resource_of(full) : NULL;
	return res ? account_session_find(a, res) : NULL;
}

/* While something is pending the account stays loaded even with no device connected. */
static void
hold_account(struct account *a, bool hold)
{
	struct cacct *ca = ca_of(a);

	if (hold == ca->held)
		return;
	ca->held = hold;
	if (hold) {
		a->refs++;
	} else {
		a->refs--;
		account_maybe_unload(a);
	}
}

static void
hmap_free_all(struct hmap *m, void (*fn)(void *))
{
	const char *k;
	void *v;

	for (size_t it = 0; hmap_next(m, &it, &k, &v);)
		fn(v);
	hmap_free(m);
}

static void
bound_free(void *p)
{
	struct bound *b = p;
	if (!b)
		return;
	free(b->to);
	free(b->from);
	free(b);
}

/* The conversation with peer is held by device 'to', moved from device 'from' (or NULL). */
static void
bind_conv(struct cacct *ca, const char *peer, const char *to, const char *from)
{
	struct bound *b = xcalloc(1, sizeof *b);

	b->to = xstrdup(to);
	b->from = from ? xstrdup(from) : NULL;
	bound_free(hmap_put(&ca->bind, peer, b));
}

static void
seat_free(void *p)
{
	struct seat *st = p;
	free(st->nick);
	free(st->role);
	free(st);
}

/* ---- what a session has open (FIG. 3: session data) ---- */

static void
note_conv(struct session *s, const char *peer)
{
	struct csess *cs = cs_of(s);
	struct conv *c = hmap_get(&cs->convs, peer);

	if (!c) {
		c = xcalloc(1, sizeof *c);
		hmap_put(&cs->convs, peer, c);
	}
	c->last = wall_ms();
}

/* A room told us (status 110) that we are in it, or out of it. */
static void
note_room(struct session *s, const struct xml_node *st)
{
	struct xml_node *x = xml_child(st, "x", NS_MUC_USER);
	const char *from = xml_attr(st, "from");
	const char *type = xml_attr(st, "type");
	bool self = false;
	struct csess *cs;
	char *room;

	if (!x || !from)
		return;
	for (struct xml_node *c = xml_child(x, "status", NS_MUC_USER); c;
	     c = xml_next(c, "status", NS_MUC_USER))
		self |= xml_attr(c, "code") && strcmp(xml_attr(c, "code"), "110") == 0;
	if (!self || !(room = bare_of(from)))
		return;
	cs = cs_of(s);
	if (type && strcmp(type, "unavailable") == 0) {
		struct seat *old = hmap_del(&cs->seats, room);
		if (old)
			seat_free(old);
	} else if (!type) {
		struct xml_node *item = xml_child(x, "item", NS_MUC_USER);
		struct seat *st2 = hmap_get(&cs->seats, room);
		if (!st2) {
			st2 = xcalloc(1, sizeof *st2);
			hmap_put(&cs->seats, room, st2);
		}
		free(st2->nick);
		st2->nick = xstrdup(resource_of(from) ? resource_of(from) : "");
		free(st2->role);
		st2->role = xstrdup(item && xml_attr(item, "role") ? xml_attr(item, "role") : "");
	}
	free(room);
}

/*
 * A message that reaches a device while a transfer is offered to it: the catch-up after
 * the accept must not send it again (R9: exactly once).
 */
static void
note_live(struct session *s, const struct xml_node *st)
{
	struct cacct *ca = s->acct->ext[continuity_ext.slot];
	const struct xml_node *sid = xml_child(st, "stanza-id", "urn:xmpp:sid:0");

	if (!sid || !xml_attr(sid, "id") || !stanza_is(st, "message"))
		return;
	for (struct xfer *x = ca->xfers; x; x = x->next) {
		if ((x->state == X_OFFERED || x->state == X_BUILDING) && x->offered_to &&
		    strcmp(x->offered_to, s->full) == 0)
			hmap_put(&x->live, xml_attr(sid, "id"), x);
	}
}

static void
cont_seen(struct session *s, const struct xml_node *st, bool out)
{
	const char *type = xml_attr(st, "type");
	char *peer;

	if (out)
		cs_of(s)->active = wall_ms();
	else if (s->acct && s->acct->ext[continuity_ext.slot])
		note_live(s, st);
	if (stanza_is(st, "presence")) {
		if (!out)
			note_room(s, st);
		return;
	}
	/* 1:1 conversations: chat and normal messages with a body. */
	if (!stanza_is(st, "message") || !xml_child(st, "body", NS_CLIENT) ||
	    (type && strcmp(type, "chat") != 0 && strcmp(type, "normal") != 0))
		return;
	peer = bare_of(xml_attr(st, out ? "to" : "from"));
	if (peer && s->acct && strcmp(peer, s->acct->bare) != 0) {
		note_conv(s, peer);
		if (out) {
			/* The conversation follows the device the person last wrote from. */
			struct cacct *ca = ca_of(s->acct);
			struct bound *b = hmap_get(&ca->bind, peer);
			if (b && strcmp(b->to, s->resource) != 0)
				bind_conv(ca, peer, s->resource, b->to);
		}
	}
	free(peer);
}

/* ---- the routing a move leaves behind ---- */

/*
 * The binding in m that a message from 'from' to 'to' follows, or NULL. To the bare JID,
 * or to the device the conversation moved away from (a client that locked onto that full
 * JID, XEP-0296), a message goes where the conversation is; to any other full JID, where
 * it was addressed.
 */
static struct bound *
followed(struct hmap *m, const struct jid *to, const struct jid *from)
{
	struct bound *b;
	char *peer;

	if (!m->count || !from)
		return NULL;
	peer = jid_bare(from);
	b = hmap_get(m, peer);
	free(peer);
	if (b && (!to->resource || (b->from && strcmp(to->resource, b->from) == 0)))
		return b;
	return NULL;
}

static struct session *
cont_target(struct account *a, const struct xml_node *st, const struct jid *to,
	    const struct jid *from)
{
	struct cacct *ca = a->ext[continuity_ext.slot];
	struct bound *b = ca ? followed(&ca->bind, to, from) : NULL;
	struct session *s = b ? account_session_find(a, b->to) : NULL;

	return s && s->state == SS_ACTIVE ? s : NULL;
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
	hold_account(x->a, ca->xfers != NULL);
}

static void
xfer_free(struct xfer *x)
{
	if (x->key[0])
		key_drop(x->key);
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

static struct xfer *xfer_new(struct account *a, const char *source);
static void offer(struct xfer *x, struct session *to);

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

static void
persist(struct xfer *x)
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
static void
restore(struct account *a)
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
		x->notify = truthy(xml_attr(e, "notify"));
		x->foreign = truthy(xml_attr(e, "foreign"));
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
		x->state = truthy(xml_attr(e, "parked")) ? X_PARKED : X_WAITING;
		log_info("continuity %s: transfer %s restored", a->bare, x->id);
		if (x->foreign && x->state == X_WAITING)
			offer(x, NULL);
	}
	xml_free(list);
}

static void unpersist(struct xfer *x);

static void
xfer_end(struct xfer *x)
{
	unpersist(x);
	xfer_unlink(x);
	if (x->jobs)
		x->dead = true;
	else
		xfer_free(x);
}

static struct xfer *
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
static void
tell(struct account *a, const char *to, struct xml_node *payload)
{
	struct session *s = session_of(a, to);
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

static void
fail(struct xfer *x, const char *reason)
{
	struct xml_node *f = xml_el_new("transfer-failed", NS_CONT);

	xml_set_attr(f, "id", x->id);
	xml_set_attr(f, "reason", reason);
	log_info("continuity %s: transfer %s failed: %s", x->a->bare, x->id, reason);
	if (x->source)
		tell(x->a, x->source, f);
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
		tell(x->a, x->source, e);
	else
		xml_free(e);
	xfer_end(x);
}

static struct xfer *
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
	hold_account(a, true);
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

static void
free_prefs(void *p)
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
static int
collect_items(struct xfer *x, struct session *s, const struct xml_node *req, char **bad)
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
			char *jid = bare_of(with ? with : room);
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

/* ---- reading the archive: history for an offer, catch-up after an accept ---- */

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

static void offer_send(struct xfer *x);

/* Live messages too, for a device whose profile says media='text' (R25). */
static struct xml_node *
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
	to = session_of(x->a, x->offered_to);
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
		fail(x, "target-disconnected");
		return;
	}
	offer_send(x);
}

/*
 * Reads the history of every item, then offers the transfer to the device 'to' (a session
 * of the account, or NULL for x->target of another account).
 */
static void
offer(struct xfer *x, struct session *to)
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

static struct xml_node *prefs_element(const struct cacct *ca);

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
	xml_add_child(c, prefs_element(ca_of(a)));
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
	tell(x->a, x->offered_to, t);
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
	to = session_of(a, rj->to);
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
static void
seat_request(struct account *a, const char *room, const char *from, const char *to, bool copy,
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
	struct session *from = source ? session_of(a, source) : NULL;

	xml_set_attr(done, "id", id);
	xml_set_attr(done, "to", target);
	if (source)
		tell(a, source, done);
	else
		xml_free(done);
	if (logout && from && strcmp(from->full, target) != 0 && from->state == SS_ACTIVE) {
		if (from->tp)
			from->tp->end(from->t);
		session_close(from, "logged out by a transfer");
	}
}

static void
done_wait_free(struct done_wait *w)
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
	done_wait_free(w);
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
			done_wait_free(w);
		}
		return;
	}
}

static void
accept(struct xfer *x, struct session *to)
{
	struct account *a = x->a;
	struct cacct *ca = ca_of(a);
	struct session *from = session_of(a, x->source);
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
				seat_request(a, it->jid, from->full, to->full, !move,
					     x->notify ? moved_notice(x, to) : NULL, seat_id);
			if (!hmap_get(&tcs->seats, it->jid)) {
				struct seat *ns = xcalloc(1, sizeof *ns);
				ns->nick = xstrdup(it->nick ? it->nick : "");
				ns->role = xstrdup(st && st->role ? st->role : "");
				ns->priority = it->priority;
				hmap_put(&tcs->seats, it->jid, ns);
			}
			if (st)
				seat_free(st);
			continue;
		}
		/* R7: the conversation continues on 'to'; with move, only there. */
		if (move)
			bind_conv(ca, it->jid, to->resource, from ? from->resource : NULL);
		else
			bound_free(hmap_del(&ca->bind, it->jid));
		if (move && fcs)
			free(hmap_del(&fcs->convs, it->jid));
		struct conv *c = hmap_get(&tcs->convs, it->jid); /* R20: merge, never twice */
		if (!c) {
			c = xcalloc(1, sizeof *c);
			hmap_put(&tcs->convs, it->jid, c);
		}
		c->last = wall_ms();
		c->priority = it->priority;
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
	struct session *from = session_of(a, x->source);
	struct csess *fcs = from ? cs_of(from) : NULL;
	bool move = x->mode != MODE_COPY;
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
				seat_free(old);
			if (from && ++w->seats)
				seat_request(a, it->jid, from->full, x->offered_to, !move, mv,
					     seat_id);
			else
				xml_free(mv);
			continue;
		}
		if (move) {
			struct bound *b = xcalloc(1, sizeof *b);
			b->to = xstrdup(x->offered_to);
			b->from = from ? xstrdup(from->resource) : NULL;
			bound_free(hmap_put(&ca->redirect, it->jid, b));
			bound_free(hmap_del(&ca->bind, it->jid));
			if (fcs)
				free(hmap_del(&fcs->convs, it->jid));
		}
		if (mv) {
			struct xml_node *m = stanza_new("message", a->bare, it->jid, NULL, NULL);
			xml_add_child(m, mv);
			route(a->w, m);
		}
	}
	catchup_submit(x, rj);
	log_info("continuity %s: transfer %s accepted by %s (another account)", a->bare, x->id,
		 x->offered_to);
	finish_accept(a, w);
	xfer_end(x);
}

/* The offered device of another account answers at this account's bare JID. */
static void
cont_account_iq(struct account *a, struct xml_node *st, const struct jid *from)
{
	const char *type = xml_attr(st, "type");

	if (ca_of(a)->restore)
		restore(a);
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
			fail(x, "declined");
	}
	xml_set_attr(r, "from", a->bare);
	route(a->w, r);
	free(full);
	xml_free(st);
}

static const char *
cont_redirect(struct account *a, const struct xml_node *st, const struct jid *to,
	      const struct jid *from)
{
	struct cacct *ca = a->ext[continuity_ext.slot];
	struct bound *b = ca ? followed(&ca->redirect, to, from) : NULL;

	return b ? b->to : NULL; /* a full JID of the other account */
}

/* ---- devices coming and going ---- */

static struct session *other_device(struct session *s);
static void launch(struct xfer *x, struct session *s, struct xml_node *st);

/* The server pushes everything src has open to s (a trigger fired), moved, to accept. */
static void
auto_offer(struct session *src, struct session *s)
{
	char *bad = NULL;
	struct xfer *x = xfer_new(s->acct, src->full);

	x->target = xstrdup(s->full);
	collect_items(x, src, NULL, &bad);
	free(bad);
	if (x->n)
		launch(x, s, NULL);
	else
		xfer_end(x);
}

static void
cont_bound(struct session *s, const struct xml_node *bind_iq)
{
	struct account *a = s->acct;
	struct cacct *ca = a->ext[continuity_ext.slot];
	struct session *src;

	if (!ca)
		return;
	if (ca->restore)
		restore(a);
	struct csess *cs = s->ext[continuity_ext.slot];
	if (cs && cs->via_key) {
		/* R33: it logged in with a transfer's key: that transfer is for it. */
		struct xfer *x = xfer_find(a, cs->via_key);
		free(cs->via_key);
		cs->via_key = NULL;
		if (x && x->state == X_WAITING) {
			x->key[0] = '\0'; /* used: no challenge can redeem it now */
			x->target = xstrdup(s->full);
			offer(x, s);
		}
	}
	/* R14, claims 9/10/15: connecting is the trigger: A's sessions are offered to B. */
	if (ca->auto_transfer_on_connect && bind_iq && (src = other_device(s)))
		auto_offer(src, s);
	/* R12: transfers waiting for this device (or for "my next device") are offered now. */
	for (struct xfer *x = ca->xfers, *next; x; x = next) {
		next = x->next;
		if (x->state != X_WAITING || !x->target)
			continue;
		if (strcmp(x->target, s->full) == 0 ||
		    (strcmp(x->target, a->bare) == 0 && (!x->source || strcmp(x->source, s->full))))
			offer(x, s);
	}
}

static void
cont_session_end(struct session *s)
{
	struct account *a = s->acct;
	struct cacct *ca = a->ext[continuity_ext.slot];
	const char *k;
	void *v;
	char *gone[64];
	size_t n = 0;

	if (!ca)
		return;
	/* R36: a target that goes before accepting changes nothing; A is told. */
	for (struct xfer *x = ca->xfers, *next; x; x = next) {
		next = x->next;
		if ((x->state == X_OFFERED || x->state == X_BUILDING) && x->offered_to &&
		    strcmp(x->offered_to, s->full) == 0) {
			fail(x, "target-disconnected");
		}
	}
	/* Conversations held by this device go back to the usual routing. */
	do {
		n = 0;
		for (size_t it = 0; n < 64 && hmap_next(&ca->bind, &it, &k, &v);)
			if (strcmp(((struct bound *)v)->to, s->resource) == 0)
				gone[n++] = xstrdup(k);
		for (size_t i = 0; i < n; i++) {
			bound_free(hmap_del(&ca->bind, gone[i]));
			free(gone[i]);
		}
	} while (n == 64);
}

static void
cont_session_free(struct session *s)
{
	struct csess *cs = s->ext[continuity_ext.slot];

	if (!cs)
		return;
	hmap_free_all(&cs->convs, free);
	hmap_free_all(&cs->seats, seat_free);
	hmap_free_all(&cs->prefs, free_prefs);
	free(cs->via_key);
	free(cs->device);
	free(cs->media);
	free(cs);
	s->ext[continuity_ext.slot] = NULL;
}

static void
cont_account_free(struct account *a)
{
	struct cacct *ca = a->ext[continuity_ext.slot];

	if (!ca)
		return;
	while (ca->xfers) {
		struct xfer *x = ca->xfers;
		ca->xfers = x->next;
		timer_stop(a->w->loop, &x->ttl);
		if (x->jobs)
			x->dead = true;
		else
			xfer_free(x);
	}
	hmap_free_all(&ca->bind, bound_free);
	hmap_free_all(&ca->redirect, bound_free);
	xml_free(ca->restore);
	while (ca->waits) {
		struct done_wait *w = ca->waits;
		ca->waits = w->next;
		done_wait_free(w);
	}
	hmap_free_all(&ca->pulls, free);
	free(ca->handover_to);
	free(ca);
	a->ext[continuity_ext.slot] = NULL;
}

void
continuity_take_over(struct session *from, struct session *to)
{
	struct csess *fcs = from->ext[continuity_ext.slot], *tcs = cs_of(to);
	struct cacct *ca = ca_of(from->acct);
	const char *k;
	void *v;

	for (size_t it = 0; fcs && hmap_next(&fcs->seats, &it, &k, &v);) {
		seat_request(from->acct, k, from->full, to->full, false, NULL, "cont-seat");
		if (!hmap_get(&tcs->seats, k)) {
			struct seat *st = v, *ns = xcalloc(1, sizeof *ns);
			ns->nick = xstrdup(st->nick);
			ns->role = xstrdup(st->role);
			ns->priority = st->priority;
			hmap_put(&tcs->seats, k, ns);
		}
	}
	if (fcs)
		hmap_free_all(&fcs->seats, seat_free);
	for (size_t it = 0; fcs && hmap_next(&fcs->convs, &it, &k, &v);) {
		if (!hmap_get(&tcs->convs, k)) {
			struct conv *c = xmalloc(sizeof *c);
			*c = *(struct conv *)v;
			hmap_put(&tcs->convs, k, c);
		}
	}
	for (size_t it = 0; fcs && hmap_next(&fcs->prefs, &it, &k, &v);)
		if (!hmap_get(&tcs->prefs, k))
			hmap_put(&tcs->prefs, k, xml_copy(v));
	for (size_t it = 0; hmap_next(&ca->bind, &it, &k, &v);) {
		struct bound *b = v;
		if (strcmp(b->to, from->resource) == 0) {
			free(b->to);
			b->to = xstrdup(to->resource);
		}
	}
}

/* ---- the iqs of urn:baton:continuity:0 ---- */

static void
reply_error(struct session *s, struct xml_node *st, const char *type, const char *cond,
	    const char *text)
{
	session_reply_error(s, st, type, cond, text);
	xml_free(st);
}

static void
reply_ok(struct session *s, struct xml_node *st, struct xml_node *payload)
{
	session_reply(s, st, payload);
	xml_free(st);
}

static void
iq_profile(struct session *s, struct xml_node *st, struct xml_node *q)
{
	struct csess *cs = cs_of(s);
	char mh[24];

	if (strcmp(xml_attr(st, "type"), "set") == 0) {
		const char *media = xml_attr(q, "media");
		if (media && strcmp(media, "text") != 0 && strcmp(media, "all") != 0) {
			reply_error(s, st, "modify", "bad-request", "media is text or all");
			return;
		}
		free(cs->device);
		cs->device = xml_attr(q, "device") ? xstrdup(xml_attr(q, "device")) : NULL;
		free(cs->media);
		cs->media = media ? xstrdup(media) : NULL;
		cs->max_history = xml_attr(q, "max-history") ? atol(xml_attr(q, "max-history")) : 0;
		if (cs->max_history < 0)
			cs->max_history = 0;
		reply_ok(s, st, NULL);
		return;
	}
	/* R2: the profile as stored. */
	struct xml_node *p = xml_el_new("profile", NS_CONT);
	if (cs->device)
		xml_set_attr(p, "device", cs->device);
	if (cs->media)
		xml_set_attr(p, "media", cs->media);
	if (cs->max_history) {
		snprintf(mh, sizeof mh, "%ld", cs->max_history);
		xml_set_attr(p, "max-history", mh);
	}
	reply_ok(s, st, p);
}

static void
result_with(struct session *s, struct xml_node *st, struct xfer *x, const char *state)
{
	struct xml_node *r = xml_el_new("transfer", NS_CONT);

	xml_set_attr(r, "id", x->id);
	xml_set_attr(r, "state", state);
	reply_ok(s, st, r);
}

/* Starts transfer x from s toward its target: now, when the device connects, or parked. */
static void
launch(struct xfer *x, struct session *s, struct xml_node *st)
{
	struct session *to = x->target ? session_of(x->a, x->target) : NULL;

	persist(x); /* a restart of batond does not lose it (nothing lost, for transfers too) */
	if (x->key[0]) {
		/* FIG. 22: waits for the device that comes with the key (R32, R33). */
		x->state = X_WAITING;
		if (st) {
			struct xml_node *r = xml_el_new("transfer", NS_CONT);
			xml_set_attr(r, "id", x->id);
			xml_set_attr(r, "state", "pending");
			xml_set_attr(r, "key", x->key);
			reply_ok(s, st, r);
		}
		return;
	}
	if (!x->target) {
		x->state = X_PARKED;
		log_info("continuity %s: %zu sessions parked as %s", x->a->bare, x->n, x->id);
		if (st)
			result_with(s, st, x, "done");
		return;
	}
	if (st)
		result_with(s, st, x, "pending");
	if (x->foreign)
		offer(x, NULL); /* R34: it answers to this account's bare JID */
	else if (to && to->state == SS_ACTIVE)
		offer(x, to);
	else
		x->state = X_WAITING; /* R12: delivered when that device (or the next one) binds */
}

/* Does the account allow handing conversations to the account of device target (R34)? */
static bool
j_bare_allowed(const struct cacct *ca, const char *target)
{
	char *bare = bare_of(target);
	const char *l = ca->handover_to;
	bool ok = false;
	size_t n = bare ? strlen(bare) : 0;

	while (bare && l && *l && !ok) {
		l += strspn(l, " ");
		size_t len = strcspn(l, " ");
		ok = len == n && strncmp(l, bare, n) == 0;
		l += len;
	}
	free(bare);
	return ok;
}

static void
iq_transfer(struct session *s, struct xml_node *st, struct xml_node *q)
{
	struct account *a = s->acct;
	struct cacct *ca = ca_of(a);
	const char *to = xml_attr(q, "to"), *mode = xml_attr(q, "mode");
	const char *notify = xml_attr(q, "notify"), *hist = xml_attr(q, "history");
	const char *answer = xml_attr(q, "id");
	char *target = NULL, *bad = NULL;
	bool foreign = false;
	struct xfer *x;

	/* An answer to a transfer-request (pull): the target is who pulled. */
	if (answer) {
		char *puller = hmap_get(&ca->pulls, answer);
		if (!puller) {
			reply_error(s, st, "cancel", "item-not-found", "no such transfer request");
			return;
		}
		target = xstrdup(puller);
		free(hmap_del(&ca->pulls, answer));
	} else if (to) {
		struct jid j;
		if (jid_parse(to, &j) < 0) {
			reply_error(s, st, "modify", "jid-malformed", NULL);
			return;
		}
		char *bare = jid_bare(&j);
		bool same = strcmp(bare, a->bare) == 0;
		target = jid_full(&j);
		free(bare);
		jid_free(&j);
		if (!same && (!j_bare_allowed(ca, target) || !strchr(target, '/'))) {
			/* R31, R34: another account only if this one allows it, and one device. */
			free(target);
			reply_error(s, st, "cancel", "not-allowed",
				    "the target is not a device of this account, nor of one it may "
				    "hand conversations to");
			return;
		}
		foreign = !same;
		if (strcmp(target, s->full) == 0) {
			free(target);
			reply_error(s, st, "modify", "bad-request",
				    "a device cannot take its own sessions");
			return;
		}
	}
	if (mode && strcmp(mode, "move") != 0 && strcmp(mode, "copy") != 0 &&
	    strcmp(mode, "logout") != 0) {
		free(target);
		reply_error(s, st, "modify", "bad-request", "mode is move, copy or logout");
		return;
	}
	x = xfer_new(a, s->full);
	x->target = target;
	x->foreign = foreign;
	x->mode = !mode || strcmp(mode, "move") == 0 ? MODE_MOVE
		  : strcmp(mode, "copy") == 0	     ? MODE_COPY
						     : MODE_LOGOUT;
	x->notify = notify && (strcmp(notify, "true") == 0 || strcmp(notify, "1") == 0);
	if (hist)
		x->history = atol(hist) >= 0 ? atol(hist) : 0;
	if (xml_child(q, "blob", NS_CONT))
		x->blob = xml_copy(xml_child(q, "blob", NS_CONT));
	if (truthy(xml_attr(q, "key")) && !foreign && (!target || !strchr(target, '/'))) {
		/* R32/R33: a one-time key for a device that has no session yet. */
		struct keyed *k = xcalloc(1, sizeof *k);
		rand_id(x->key, sizeof x->key - 1);
		k->bare = xstrdup(a->bare);
		memcpy(k->id, x->id, sizeof k->id);
		k->until = now_ms() + a->w->srv->cfg->continuity_pending_ttl;
		free(x->target);
		x->target = NULL;
		pthread_mutex_lock(&keys_lock);
		hmap_put(&keys, x->key, k);
		pthread_mutex_unlock(&keys_lock);
	}
	if (collect_items(x, s, q, &bad) < 0) {
		char text[300];
		snprintf(text, sizeof text, "not in session %s", bad);
		free(bad);
		xfer_end(x);
		reply_error(s, st, "cancel", "item-not-found", text);
		return;
	}
	launch(x, s, st);
}

static void
iq_answer(struct session *s, struct xml_node *st, struct xml_node *q, bool yes)
{
	const char *id = xml_attr(q, "id");
	struct cacct *ca = ca_of(s->acct);
	struct xfer *x = id ? xfer_find(s->acct, id) : NULL;

	if (!yes && id && hmap_get(&ca->pulls, id)) {
		/* A declines B's pull: B is told. */
		char *puller = hmap_del(&ca->pulls, id);
		struct xml_node *f = xml_el_new("transfer-failed", NS_CONT);
		xml_set_attr(f, "id", id);
		xml_set_attr(f, "reason", "declined");
		tell(s->acct, puller, f);
		free(puller);
		reply_ok(s, st, NULL);
		return;
	}
	if (!x || x->state != X_OFFERED || !x->offered_to || strcmp(x->offered_to, s->full) != 0) {
		reply_error(s, st, "cancel", "item-not-found", "no such transfer offered to you");
		return;
	}
	reply_ok(s, st, NULL);
	if (yes)
		accept(x, s);
	else
		fail(x, "declined");
}

/* The most recently active other device of the account. */
static struct session *
other_device(struct session *s)
{
	struct session *best = NULL;

	for (struct session *o = s->acct->sessions; o; o = o->acct_next) {
		if (o == s || o->state != SS_ACTIVE)
			continue;
		if (!best || cs_of(o)->active > cs_of(best)->active)
			best = o;
	}
	return best;
}

static void
iq_pull(struct session *s, struct xml_node *st, struct xml_node *q)
{
	struct account *a = s->acct;
	struct cacct *ca = ca_of(a);
	const char *from = xml_attr(q, "from"), *parked = xml_attr(q, "parked");
	struct session *src = NULL;
	struct xfer *x;

	if (parked) {
		/* Claims 60/66: take sessions parked on the server. */
		x = xfer_find(a, parked);
		if (!x || x->state != X_PARKED) {
			reply_error(s, st, "cancel", "item-not-found", "no such parked sessions");
			return;
		}
		x->target = xstrdup(s->full);
		result_with(s, st, x, "pending");
		offer(x, s);
		return;
	}
	if (from) {
		src = session_of(a, from);
		if (!src || src == s || strncmp(from, a->bare, strlen(a->bare)) != 0) {
			reply_error(s, st, "cancel", "item-not-found",
				    "no such device of this account");
			return;
		}
	} else if (!(src = other_device(s))) {
		for (x = ca->xfers; x && x->state != X_PARKED; x = x->next)
			;
		if (!x) {
			reply_error(s, st, "cancel", "item-not-found", "nothing to pull");
			return;
		}
		x->target = xstrdup(s->full);
		result_with(s, st, x, "pending");
		offer(x, s);
		return;
	}
	if (ca->auto_accept_pull) {
		/* PROTOCOL.md 1: the server pushes on A's behalf: all of A's sessions, moved. */
		char *bad = NULL;
		x = xfer_new(a, src->full);
		x->target = xstrdup(s->full);
		collect_items(x, src, NULL, &bad);
		free(bad);
		launch(x, s, st);
		return;
	}
	/* R15: A is asked; it answers with a push naming this id, or a decline. */
	char id[17];
	rand_id(id, sizeof id - 1);
	free(hmap_put(&ca->pulls, id, xstrdup(s->full)));
	struct xml_node *tr = xml_el_new("transfer-request", NS_CONT);
	xml_set_attr(tr, "id", id);
	xml_set_attr(tr, "to", s->full);
	tell(a, src->full, tr);
	struct xml_node *r = xml_el_new("transfer", NS_CONT);
	xml_set_attr(r, "id", id);
	xml_set_attr(r, "state", "pending");
	reply_ok(s, st, r);
}

static void
iq_parked(struct session *s, struct xml_node *st)
{
	struct xml_node *r = xml_el_new("parked", NS_CONT);

	for (struct xfer *x = ca_of(s->acct)->xfers; x; x = x->next) {
		if (x->state != X_PARKED)
			continue;
		struct xml_node *t = xml_add_el(r, "transfer", NULL);
		xml_set_attr(t, "id", x->id);
		if (x->source)
			xml_set_attr(t, "from", x->source);
		for (size_t i = 0; i < x->n; i++)
			xml_set_attr(xml_add_el(t, "session", NULL),
				     x->items[i].room ? "room" : "with", x->items[i].jid);
	}
	reply_ok(s, st, r);
}

static void
iq_reserve(struct session *s, struct xml_node *st, struct xml_node *q)
{
	const char *room = xml_attr(q, "room"), *holder = xml_attr(q, "for");
	const char *ttl = xml_attr(q, "ttl");
	char *rb = bare_of(room), *hb = holder ? bare_of(holder) : NULL;
	struct xml_node *iq, *r;

	/* FIG. 18: only for this account's devices (R29: the bare JID means any of them). */
	if (!rb || (holder && (!hb || strcmp(hb, s->acct->bare) != 0))) {
		free(rb);
		free(hb);
		reply_error(s, st, "modify", "bad-request",
			    "room and for must be JIDs of this account");
		return;
	}
	iq = stanza_new("iq", s->acct->bare, rb, "set", "cont-reserve");
	r = xml_add_el(iq, "reserve", NS_CONT);
	xml_set_attr(r, "key", s->w->srv->key);
	xml_set_attr(r, "for", holder ? holder : s->acct->bare);
	xml_set_attr(r, "ttl", ttl ? ttl : "60");
	route(s->w, iq);
	free(rb);
	free(hb);
	reply_ok(s, st, NULL);
}

static void
iq_priority(struct session *s, struct xml_node *st, struct xml_node *q)
{
	const char *with = xml_attr(q, "with"), *room = xml_attr(q, "room");
	const char *value = xml_attr(q, "value");
	struct csess *cs = cs_of(s);
	char *jid = bare_of(with ? with : room);

	if (!jid || !value) {
		free(jid);
		reply_error(s, st, "modify", "bad-request", "with or room, and value");
		return;
	}
	if (room) {
		struct seat *se = hmap_get(&cs->seats, jid);
		if (!se) {
			free(jid);
			reply_error(s, st, "cancel", "item-not-found", "not in that room");
			return;
		}
		se->priority = atol(value);
	} else {
		note_conv(s, jid);
		((struct conv *)hmap_get(&cs->convs, jid))->priority = atol(value);
	}
	free(jid);
	reply_ok(s, st, NULL);
}

/*
 * R23 (FIG. 3): a conversation's own preferences on this device: history retention, alerts,
 * guaranteed or best-effort delivery, participation timeout, session timer. Kept as given
 * and carried with the conversation when it moves.
 */
static void
iq_session_prefs(struct session *s, struct xml_node *st, struct xml_node *q, bool set)
{
	static const char *const names[] = {"retention", "alert", "delivery", "timeout", "timer"};
	const char *with = xml_attr(q, "with"), *room = xml_attr(q, "room");
	struct csess *cs = cs_of(s);
	char *jid = bare_of(with ? with : room);
	struct xml_node *p;

	if (!jid) {
		reply_error(s, st, "modify", "bad-request", "with or room");
		return;
	}
	if (!set) {
		p = hmap_get(&cs->prefs, jid);
		p = p ? xml_copy(p) : xml_el_new("preferences", NS_CONT);
		xml_set_attr(p, room ? "room" : "with", jid);
		free(jid);
		reply_ok(s, st, p);
		return;
	}
	p = xml_el_new("preferences", NS_CONT);
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		const char *v = xml_attr(q, names[i]);
		if (v && strlen(v) <= 64)
			xml_set_attr(p, names[i], v);
	}
	xml_free(hmap_put(&cs->prefs, jid, p));
	free(jid);
	reply_ok(s, st, NULL);
}

#define PREFS_KEY "preferences " NS_CONT /* in private storage, "name namespace" */

static bool
truthy(const char *v)
{
	return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static void
prefs_apply(struct cacct *ca, const struct xml_node *p)
{
	const char *h = xml_attr(p, "handover_to");

	ca->auto_accept_pull = truthy(xml_attr(p, "auto_accept_pull"));
	ca->auto_transfer_on_connect = truthy(xml_attr(p, "auto_transfer_on_connect"));
	ca->transfer_on_movement = truthy(xml_attr(p, "transfer_on_movement"));
	free(ca->handover_to);
	ca->handover_to = h && *h ? xstrdup(h) : NULL;
}

static struct xml_node *
prefs_element(const struct cacct *ca)
{
	struct xml_node *p = xml_el_new("preferences", NS_CONT);

	xml_set_attr(p, "auto_accept_pull", ca->auto_accept_pull ? "true" : "false");
	xml_set_attr(p, "auto_transfer_on_connect",
		     ca->auto_transfer_on_connect ? "true" : "false");
	xml_set_attr(p, "transfer_on_movement", ca->transfer_on_movement ? "true" : "false");
	if (ca->handover_to)
		xml_set_attr(p, "handover_to", ca->handover_to);
	return p;
}

struct prefs_job {
	struct store_job job;
	char *owner;
	struct buf xml;
};

static int
prefs_run(struct store *st, struct store_job *job)
{
	struct prefs_job *pj = container_of(job, struct prefs_job, job);
	return store_private_set(st, pj->owner, PREFS_KEY, buf_head(&pj->xml), buf_used(&pj->xml));
}

static void
prefs_done(struct store_job *job)
{
	struct prefs_job *pj = container_of(job, struct prefs_job, job);

	if (job->result < 0)
		log_error("continuity %s: could not store the preferences", pj->owner);
	free(pj->owner);
	buf_free(&pj->xml);
	free(pj);
}

static void
iq_preferences(struct session *s, struct xml_node *st, struct xml_node *q, bool set)
{
	struct cacct *ca = ca_of(s->acct);
	struct xml_node *p;

	if (!set) {
		reply_ok(s, st, prefs_element(ca));
		return;
	}
	prefs_apply(ca, q);
	struct prefs_job *pj = xcalloc(1, sizeof *pj);
	pj->owner = xstrdup(s->acct->bare);
	p = prefs_element(ca);
	xml_write(&pj->xml, p, NULL);
	xml_free(p);
	pj->job.run = prefs_run;
	pj->job.done = prefs_done;
	worker_store(s->w, &pj->job);
	reply_ok(s, st, NULL);
}

/* A stored transfer, kept as XML until the account's worker rebuilds it (restore). */
static void
restore_one(void *arg, const char *id, const char *xml, int64_t expires)
{
	struct xml_node *e = xml_parse(xml, strlen(xml));

	if (e && strcmp(e->name, "xfer") == 0 && strcmp(e->ns, NS_CONT) == 0)
		xml_add_child(arg, e);
	else
		xml_free(e);
}

/* With the account (storage thread): its preferences from private storage. */
static void *
cont_load(struct store *st, const char *bare)
{
	struct cacct *ca = xcalloc(1, sizeof *ca);
	struct buf b = {0};
	struct xml_node *p;

	if (store_private_get(st, bare, PREFS_KEY, &b) == 0 &&
	    (p = xml_parse(buf_head(&b), buf_used(&b)))) {
		prefs_apply(ca, p);
		xml_free(p);
	}
	buf_free(&b);
	ca->restore = xml_el_new("restore", NS_CONT);
	store_transfer_list(st, bare, wall_ms(), restore_one, ca->restore);
	if (!ca->restore->first) {
		xml_free(ca->restore);
		ca->restore = NULL;
	}
	return ca;
}

/*
 * FIG. 22, signals 444-450 (R32): a connected device proves it holds a transfer's key
 * without sending it: it gets a random challenge and answers HMAC-SHA256(key, challenge)
 * in hex. One challenge per answer; a key works once.
 */
static void
iq_redeem(struct session *s, struct xml_node *st, struct xml_node *q, bool set)
{
	struct csess *cs = cs_of(s);
	const char *id = xml_attr(q, "id"), *response = xml_attr(q, "response");
	unsigned char mac[32];
	unsigned int maclen = 0;
	char hex[65];
	struct xfer *x;

	if (!set) {
		struct xml_node *c = xml_el_new("challenge", NS_CONT);
		rand_id(cs->nonce, sizeof cs->nonce - 1);
		xml_set_attr(c, "nonce", cs->nonce);
		reply_ok(s, st, c);
		return;
	}
	if (!cs->nonce[0]) {
		reply_error(s, st, "wait", "unexpected-request", "ask for a challenge first");
		return;
	}
	x = id ? xfer_find(s->acct, id) : NULL;
	if (x && x->key[0])
		HMAC(EVP_sha256(), x->key, (int)strlen(x->key), (const unsigned char *)cs->nonce,
		     strlen(cs->nonce), mac, &maclen);
	cs->nonce[0] = '\0';
	for (unsigned i = 0; i < maclen; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	if (!x || !x->key[0] || x->state != X_WAITING || !response || strlen(response) != 64 ||
	    maclen != 32 || CRYPTO_memcmp(hex, response, 64) != 0) {
		reply_error(s, st, "auth", "not-authorized", "wrong, used or expired transfer key");
		return;
	}
	key_drop(x->key);
	x->key[0] = '\0';
	x->target = xstrdup(s->full);
	reply_ok(s, st, NULL);
	offer(x, s);
}

static void
cont_iq(struct session *s, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, NULL, NULL);

	if (ca_of(s->acct)->restore)
		restore(s->acct);
	bool set = strcmp(xml_attr(st, "type"), "set") == 0;

	if (strcmp(q->name, "profile") == 0)
		iq_profile(s, st, q);
	else if (set && strcmp(q->name, "transfer") == 0)
		iq_transfer(s, st, q);
	else if (set && strcmp(q->name, "accept") == 0)
		iq_answer(s, st, q, true);
	else if (set && strcmp(q->name, "decline") == 0)
		iq_answer(s, st, q, false);
	else if (set && strcmp(q->name, "pull") == 0)
		iq_pull(s, st, q);
	else if (!set && strcmp(q->name, "parked") == 0)
		iq_parked(s, st);
	else if (set && strcmp(q->name, "reserve") == 0)
		iq_reserve(s, st, q);
	else if (set && strcmp(q->name, "priority") == 0)
		iq_priority(s, st, q);
	else if (strcmp(q->name, "session-preferences") == 0)
		iq_session_prefs(s, st, q, set);
	else if (strcmp(q->name, "preferences") == 0)
		iq_preferences(s, st, q, set);
	else if (strcmp(q->name, "redeem") == 0)
		iq_redeem(s, st, q, set);
	else if (set && strcmp(q->name, "movement") == 0) {
		/* R16 (FIG. 14 step 330): undocked, moved, picked up: a trigger, if wanted. */
		struct session *src = ca_of(s->acct)->transfer_on_movement ? other_device(s) : NULL;
		reply_ok(s, st, NULL);
		if (src)
			auto_offer(src, s);
	} else if (set && strcmp(q->name, "agent") == 0) {
		/* R17 (FIGS. 23/24, 452-454): its transfer agent runs: the other devices learn. */
		for (struct session *o = s->acct->sessions; o; o = o->acct_next) {
			if (o == s || o->state != SS_ACTIVE)
				continue;
			struct xml_node *av = xml_el_new("available", NS_CONT);
			xml_set_attr(av, "device", s->full);
			tell(s->acct, o->full, av);
		}
		reply_ok(s, st, NULL);
	} else
		reply_error(s, st, "cancel", "feature-not-implemented", NULL);
}

struct xmpp_ext continuity_ext = {
    .ns = NS_CONT,
    .iq = cont_iq,
    .seen = cont_seen,
    .target = cont_target,
    .bound = cont_bound,
    .session_end = cont_session_end,
    .session_free = cont_session_free,
    .account_free = cont_account_free,
    .load = cont_load,
    .redirect = cont_redirect,
    .account_iq = cont_account_iq,
    .result_prefix = "cont-seat-",
    .auth_token = cont_auth_token,
    .adapt = cont_adapt,
};
