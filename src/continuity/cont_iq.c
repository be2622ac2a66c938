/*
 * cont_iq: the iqs of urn:baton:continuity:0 a device sends its account: profile,
 * transfer, accept and decline, pull, parked, reserve, priorities and conversation
 * preferences, the account's preferences (kept in private storage) and key redemption.
 *
 * Invariant: every iq is answered once, result or error, before any offer it causes goes
 * out.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "continuity_int.h"

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
void
xfer_launch(struct xfer *x, struct session *s, struct xml_node *st)
{
	struct session *to = x->target ? cont_session_of(x->a, x->target) : NULL;

	xfer_persist(
	    x); /* a restart of batond does not lose it (nothing lost, for transfers too) */
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
		xfer_offer(x, NULL); /* R34: it answers to this account's bare JID */
	else if (to && to->state == SS_ACTIVE)
		xfer_offer(x, to);
	else
		x->state = X_WAITING; /* R12: delivered when that device (or the next one) binds */
}

/* Does the account allow handing conversations to the account of device target (R34)? */
static bool
j_bare_allowed(const struct cacct *ca, const char *target)
{
	char *bare = cont_bare_of(target);
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
	if (cont_truthy(xml_attr(q, "key")) && !foreign && (!target || !strchr(target, '/'))) {
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
	if (xfer_collect(x, s, q, &bad) < 0) {
		char text[300];
		snprintf(text, sizeof text, "not in session %s", bad);
		free(bad);
		xfer_end(x);
		reply_error(s, st, "cancel", "item-not-found", text);
		return;
	}
	xfer_launch(x, s, st);
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
		cont_tell(s->acct, puller, f);
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
		xfer_accept(x, s);
	else
		xfer_fail(x, "declined");
}

/* The most recently active other device of the account. */
struct session *
cont_other_device(struct session *s)
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
		xfer_offer(x, s);
		return;
	}
	if (from) {
		src = cont_session_of(a, from);
		if (!src || src == s || strncmp(from, a->bare, strlen(a->bare)) != 0) {
			reply_error(s, st, "cancel", "item-not-found",
				    "no such device of this account");
			return;
		}
	} else if (!(src = cont_other_device(s))) {
		for (x = ca->xfers; x && x->state != X_PARKED; x = x->next)
			;
		if (!x) {
			reply_error(s, st, "cancel", "item-not-found", "nothing to pull");
			return;
		}
		x->target = xstrdup(s->full);
		result_with(s, st, x, "pending");
		xfer_offer(x, s);
		return;
	}
	if (ca->auto_accept_pull) {
		/* PROTOCOL.md 1: the server pushes on A's behalf: all of A's sessions, moved. */
		char *bad = NULL;
		x = xfer_new(a, src->full);
		x->target = xstrdup(s->full);
		xfer_collect(x, src, NULL, &bad);
		free(bad);
		xfer_launch(x, s, st);
		return;
	}
	/* R15: A is asked; it answers with a push naming this id, or a decline. */
	char id[17];
	rand_id(id, sizeof id - 1);
	free(hmap_put(&ca->pulls, id, xstrdup(s->full)));
	struct xml_node *tr = xml_el_new("transfer-request", NS_CONT);
	xml_set_attr(tr, "id", id);
	xml_set_attr(tr, "to", s->full);
	cont_tell(a, src->full, tr);
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
	char *rb = cont_bare_of(room), *hb = holder ? cont_bare_of(holder) : NULL;
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
	char *jid = cont_bare_of(with ? with : room);

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
		cont_note_conv(s, jid)->priority = atol(value);
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
	char *jid = cont_bare_of(with ? with : room);
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

bool
cont_truthy(const char *v)
{
	return v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

static void
prefs_apply(struct cacct *ca, const struct xml_node *p)
{
	const char *h = xml_attr(p, "handover_to");

	ca->auto_accept_pull = cont_truthy(xml_attr(p, "auto_accept_pull"));
	ca->auto_transfer_on_connect = cont_truthy(xml_attr(p, "auto_transfer_on_connect"));
	ca->transfer_on_movement = cont_truthy(xml_attr(p, "transfer_on_movement"));
	free(ca->handover_to);
	ca->handover_to = h && *h ? xstrdup(h) : NULL;
	ca->ask_participation =
	    xml_attr(p, "participation") && strcmp(xml_attr(p, "participation"), "ask") == 0;
}

struct xml_node *
cont_prefs_element(const struct cacct *ca)
{
	struct xml_node *p = xml_el_new("preferences", NS_CONT);

	xml_set_attr(p, "auto_accept_pull", ca->auto_accept_pull ? "true" : "false");
	xml_set_attr(p, "auto_transfer_on_connect",
		     ca->auto_transfer_on_connect ? "true" : "false");
	xml_set_attr(p, "transfer_on_movement", ca->transfer_on_movement ? "true" : "false");
	if (ca->handover_to)
		xml_set_attr(p, "handover_to", ca->handover_to);
	xml_set_attr(p, "participation", ca->ask_participation ? "ask" : "open");
	return p;
}

#define REDIRECTS_KEY "redirects " NS_CONT /* conversations handed to other accounts (R34) */

/* Keeps el (taken) in the account's private storage under key (fire and forget). */
struct keep_job {
	struct store_job job;
	char *owner;
	const char *key;
	struct buf xml;
};

static int
keep_run(struct store *st, struct store_job *job)
{
	struct keep_job *kj = container_of(job, struct keep_job, job);
	return store_private_set(st, kj->owner, kj->key, buf_head(&kj->xml), buf_used(&kj->xml));
}

static void
keep_done(struct store_job *job)
{
	struct keep_job *kj = container_of(job, struct keep_job, job);

	if (job->result < 0)
		log_error("continuity %s: could not store %s", kj->owner, kj->key);
	free(kj->owner);
	buf_free(&kj->xml);
	free(kj);
}

static void
keep(struct account *a, const char *key, struct xml_node *el)
{
	struct keep_job *kj = xcalloc(1, sizeof *kj);

	kj->owner = xstrdup(a->bare);
	kj->key = key;
	xml_write(&kj->xml, el, NULL);
	xml_free(el);
	kj->job.run = keep_run;
	kj->job.done = keep_done;
	worker_store(a->w, &kj->job);
}

void
cont_redirects_save(struct account *a)
{
	struct cacct *ca = ca_of(a);
	struct xml_node *r = xml_el_new("redirects", NS_CONT);
	const char *k;
	void *v;

	for (size_t i = 0; hmap_next(&ca->redirect, &i, &k, &v);) {
		struct bound *b = v;
		struct xml_node *e = xml_add_el(r, "redirect", NULL);
		xml_set_attr(e, "peer", k);
		xml_set_attr(e, "to", b->to);
		if (b->from)
			xml_set_attr(e, "from", b->from);
	}
	keep(a, REDIRECTS_KEY, r);
}

static void
iq_preferences(struct session *s, struct xml_node *st, struct xml_node *q, bool set)
{
	struct cacct *ca = ca_of(s->acct);

	if (!set) {
		reply_ok(s, st, cont_prefs_element(ca));
		return;
	}
	prefs_apply(ca, q);
	keep(s->acct, PREFS_KEY, cont_prefs_element(ca));
	reply_ok(s, st, NULL);
}

/* A stored transfer, kept as XML until the account's worker rebuilds it (xfer_restore). */
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
void *
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
	buf_reset(&b);
	/* R34: conversations handed to another account keep going there after a restart. */
	if (store_private_get(st, bare, REDIRECTS_KEY, &b) == 0 &&
	    (p = xml_parse(buf_head(&b), buf_used(&b)))) {
		for (struct xml_node *e = xml_child(p, "redirect", NS_CONT); e;
		     e = xml_next(e, "redirect", NS_CONT)) {
			if (!xml_attr(e, "peer") || !xml_attr(e, "to"))
				continue;
			struct bound *bd = xcalloc(1, sizeof *bd);
			bd->to = xstrdup(xml_attr(e, "to"));
			bd->from = xml_attr(e, "from") ? xstrdup(xml_attr(e, "from")) : NULL;
			cont_bound_free(hmap_put(&ca->redirect, xml_attr(e, "peer"), bd));
		}
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
	xfer_key_drop(x->key);
	x->key[0] = '\0';
	x->target = xstrdup(s->full);
	reply_ok(s, st, NULL);
	xfer_offer(x, s);
}

void
cont_iq(struct session *s, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, NULL, NULL);

	if (ca_of(s->acct)->restore)
		xfer_restore(s->acct);
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
	else if (set && strcmp(q->name, "participation") == 0)
		cont_participation(s, st, q);
	else if (strcmp(q->name, "preferences") == 0)
		iq_preferences(s, st, q, set);
	else if (strcmp(q->name, "redeem") == 0)
		iq_redeem(s, st, q, set);
	else if (set && strcmp(q->name, "movement") == 0) {
		/* R16 (FIG. 14 step 330): undocked, moved, picked up: a trigger, if wanted. */
		struct session *src =
		    ca_of(s->acct)->transfer_on_movement ? cont_other_device(s) : NULL;
		reply_ok(s, st, NULL);
		if (src)
			xfer_auto_offer(src, s);
	} else if (set && strcmp(q->name, "agent") == 0) {
		/* R17 (FIGS. 23/24, 452-454): its transfer agent runs: the other devices learn. */
		for (struct session *o = s->acct->sessions; o; o = o->acct_next) {
			if (o == s || o->state != SS_ACTIVE)
				continue;
			struct xml_node *av = xml_el_new("available", NS_CONT);
			xml_set_attr(av, "device", s->full);
			cont_tell(s->acct, o->full, av);
		}
		reply_ok(s, st, NULL);
	} else
		reply_error(s, st, "cancel", "feature-not-implemented", NULL);
}

/* ---- R5: participation requests ---- */

struct drop_job {
	struct store_job job;
	char *owner, *peer;
	int64_t ids[256];
	size_t n;
};

static void
drop_collect(void *arg, const struct store_offline_msg *m)
{
	struct drop_job *dj = arg;
	char *b = cont_bare_of(m->sender);

	if (b && strcmp(b, dj->peer) == 0 && dj->n < ARRAY_LEN(dj->ids))
		dj->ids[dj->n++] = m->id;
	free(b);
}

static int
drop_run(struct store *st, struct store_job *job)
{
	struct drop_job *dj = container_of(job, struct drop_job, job);
	int r = store_offline_load(st, dj->owner, 0, wall_ms(), 0, drop_collect, dj);
	return r < 0 ? r : store_offline_delete_ids(st, dj->owner, dj->ids, dj->n);
}

static void
drop_done(struct store_job *job)
{
	struct drop_job *dj = container_of(job, struct drop_job, job);
	free(dj->owner);
	free(dj->peer);
	free(dj);
}

void
cont_participation(struct session *s, struct xml_node *st, const struct xml_node *q)
{
	struct cacct *ca = ca_of(s->acct);
	const char *id = xml_attr(q, "id"), *answer = xml_attr(q, "answer");
	const char *k;
	void *v;
	char *peer = NULL, *sender = NULL;
	size_t idl = id ? strlen(id) : 0;

	for (size_t i = 0; id && hmap_next(&ca->asked, &i, &k, &v);) {
		if (strncmp(v, id, idl) == 0 && ((char *)v)[idl] == ' ') {
			peer = xstrdup(k);
			sender = xstrdup((char *)v + idl + 1);
		}
	}
	if (!peer || !answer || (strcmp(answer, "accept") != 0 && strcmp(answer, "decline") != 0)) {
		free(peer);
		free(sender);
		session_reply_error(
		    s, st, "cancel", "item-not-found",
		    "No such participation request (or no answer='accept|decline')");
		xml_free(st);
		return;
	}
	free(hmap_del(&ca->asked, peer));
	if (strcmp(answer, "accept") == 0) {
		/* The held messages are the account's stored ones: its devices get them now. */
		cont_note_participant(ca, peer);
		for (struct session *o = s->acct->sessions; o; o = o->acct_next)
			if (o->available)
				offline_deliver(o);
	} else {
		/* Declined: the sender is told, and what it sent is never delivered. */
		struct xml_node *m = stanza_new("message", s->acct->bare, sender, "error", NULL);
		struct xml_node *e = xml_add_el(m, "error", NULL);
		xml_set_attr(e, "type", "cancel");
		xml_add_el(e, "not-acceptable", "urn:ietf:params:xml:ns:xmpp-stanzas");
		xml_add_text(xml_add_el(e, "text", "urn:ietf:params:xml:ns:xmpp-stanzas"),
			     "The recipient declined the conversation", 39);
		route(s->w, m);
		struct drop_job *dj = xcalloc(1, sizeof *dj);
		dj->owner = xstrdup(s->acct->bare);
		dj->peer = xstrdup(peer);
		dj->job.run = drop_run;
		dj->job.done = drop_done;
		worker_store(s->w, &dj->job);
	}
	log_info("continuity %s: %s %s", s->acct->bare, answer, peer);
	free(peer);
	free(sender);
	reply_ok(s, st, NULL);
}
