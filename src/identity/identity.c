/*
 * identity: shared identity (seed 003) as PROTOCOL.md 2 specifies it. The account's
 * settings (exclusive mode, incoming session barring, the active generation) are stored
 * with it and loaded with it; every change of active device is written to the audit trail
 * (batonctl identity log). Handover grants are one-time credentials the active device
 * fetches in advance and a new device uses instead of the password.
 *
 * Invariant: in exclusive mode, after a bind completes the account has exactly one bound
 * session; the one it replaced was told why (<conflict/> with <superseded/>) and gets
 * nothing more.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../continuity/continuity.h"
#include "identity.h"

#define NS_ID	     "urn:baton:identity:0"
#define GRANT_TTL_MS (10 * 60 * 1000) /* R10: short-lived */
#define GRANTS_MAX   10000

struct iacct {
	struct store_identity id;
	/* a superseded device whose unavailable presence waits for the new one's available */
	char *owed_full;
	struct hmap owed_directed;
	struct timer owed_timer;
	struct account *a;
};

/* ---- grants: one-time credentials, checked by SASL on any worker ---- */

struct grant {
	char *bare;
	uint64_t until;
};

static pthread_mutex_t grants_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hmap grants; /* token -> struct grant */

static void
grant_free(struct grant *g)
{
	if (g) {
		free(g->bare);
		free(g);
	}
}

/* Drops expired grants; the caller holds grants_lock. */
static void
grants_expire(void)
{
	uint64_t now = now_ms();
	const char *k;
	void *v;
	char *gone[64];
	size_t n;

	do {
		n = 0;
		for (size_t it = 0; n < 64 && hmap_next(&grants, &it, &k, &v);)
			if (((struct grant *)v)->until <= now)
				gone[n++] = xstrdup(k);
		for (size_t i = 0; i < n; i++) {
			grant_free(hmap_del(&grants, gone[i]));
			free(gone[i]);
		}
	} while (n == 64);
	if (grants.count == 0)
		hmap_free(&grants);
}

static bool
id_auth_token(struct session *s, const char *bare, const char *password)
{
	struct grant *g;
	bool ok = false;

	if (strlen(password) != 32)
		return false;
	pthread_mutex_lock(&grants_lock);
	grants_expire();
	g = hmap_get(&grants, password);
	/* R10: bound to one identity, short-lived, used once. */
	if (g && strcmp(g->bare, bare) == 0 && g->until > now_ms()) {
		grant_free(hmap_del(&grants, password));
		ok = true;
	}
	pthread_mutex_unlock(&grants_lock);
	return ok;
}

/* ---- state ---- */

static struct iacct *
ia_of(struct account *a)
{
	struct iacct *ia = a->ext[identity_ext.slot];

	if (!ia) {
		ia = xcalloc(1, sizeof *ia);
		a->ext[identity_ext.slot] = ia;
	}
	ia->a = a;
	return ia;
}

static void *
id_load(struct store *st, const char *bare)
{
	struct iacct *ia = xcalloc(1, sizeof *ia);

	if (store_identity_get(st, bare, &ia->id) < 0)
		ia->id = (struct store_identity){0};
	return ia;
}

static void
owed_clear(struct iacct *ia)
{
	free(ia->owed_full);
	ia->owed_full = NULL;
	hmap_free(&ia->owed_directed);
	if (ia->a)
		timer_stop(ia->a->w->loop, &ia->owed_timer);
}

static void
id_account_free(struct account *a)
{
	struct iacct *ia = a->ext[identity_ext.slot];

	if (!ia)
		return;
	ia->a = a;
	owed_clear(ia);
	free(ia);
	a->ext[identity_ext.slot] = NULL;
}

/* ---- storage ---- */

struct save_job {
	struct store_job job;
	char *owner;
	struct store_identity id;
	bool log;
	char *prev, *next, *reason;
	int64_t gen, at;
};

static int
save_run(struct store *st, struct store_job *job)
{
	struct save_job *sj = container_of(job, struct save_job, job);
	int r = store_identity_set(st, sj->owner, &sj->id);

	if (r == 0 && sj->log) {
		struct store_identity_event e = {sj->at, sj->prev, sj->next, sj->reason, sj->gen};
		r = store_identity_log_add(st, sj->owner, &e);
	}
	return r;
}

static void
save_done(struct store_job *job)
{
	struct save_job *sj = container_of(job, struct save_job, job);

	if (job->result < 0 && job->result != STORE_ENOENT)
		log_error("identity %s: could not store the settings", sj->owner);
	free(sj->owner);
	free(sj->prev);
	free(sj->next);
	free(sj->reason);
	free(sj);
}

/* Persists the settings, and with next an entry of the audit trail (R28). */
static void
save(struct account *a, const char *prev, const char *next, const char *reason)
{
	struct save_job *sj = xcalloc(1, sizeof *sj);

	sj->owner = xstrdup(a->bare);
	sj->id = ia_of(a)->id;
	if (next) {
		sj->log = true;
		sj->prev = prev ? xstrdup(prev) : NULL;
		sj->next = xstrdup(next);
		sj->reason = xstrdup(reason ? reason : "none");
		sj->gen = sj->id.gen;
		sj->at = wall_ms();
	}
	sj->job.run = save_run;
	sj->job.done = save_done;
	worker_store(a->w, &sj->job);
}

/* ---- supersession ---- */

static const struct xml_node *
hint_of(const struct xml_node *bind_iq)
{
	const struct xml_node *b = bind_iq ? xml_child(bind_iq, "bind", NULL) : NULL;
	return b ? xml_child(b, "handover", NS_ID) : NULL;
}

static bool
parse_gen(const char *v, int64_t *out)
{
	char *end;
	long long g;

	if (!v || !*v)
		return false;
	g = strtoll(v, &end, 10);
	if (*end || g < 0)
		return false;
	*out = g;
	return true;
}

/* R27: a hint whose gen is below the active one's is a late, stale device: refused. */
static const char *
id_bind_check(struct account *a, struct session *s, const struct xml_node *bind_iq)
{
	struct iacct *ia = a->ext[identity_ext.slot];
	const struct xml_node *h = hint_of(bind_iq);
	int64_t gen;

	if (!ia || !ia->id.exclusive || !h || !parse_gen(xml_attr(h, "gen"), &gen))
		return NULL;
	return gen < ia->id.gen ? "stale handover generation" : NULL;
}

static void
owed_fired(struct timer *t)
{
	struct iacct *ia = container_of(t, struct iacct, owed_timer);

	if (ia->owed_full) {
		presence_unavailable_for(ia->a, ia->owed_full, &ia->owed_directed);
		owed_clear(ia);
	}
}

/*
 * Has every device of a that is not a session (but keep) dropped; returns the full JID of one
 * of them (to free), or NULL. The names are copied first: dropping one may change a->devices
 * at once when its module runs on this worker.
 */
static char *
drop_devices(struct account *a, const char *by, const char *reason, const char *keep)
{
	char *names[8], *last = NULL;
	size_t n = 0;
	const char *k;
	void *v;

	for (size_t i = 0;
	     device_drop && n < ARRAY_LEN(names) && hmap_next(&a->devices, &i, &k, &v);)
		if (!keep || strcmp(k, keep) != 0)
			names[n++] = xstrdup(k);
	for (size_t i = 0; i < n; i++) {
		log_info("identity %s: %s supersedes the device %s (%s)", a->bare, by, names[i],
			 reason);
		device_drop(a->w, a->bare, names[i]);
		free(last);
		last = names[i];
	}
	return last;
}

/*
 * Closes old: <conflict/> with <superseded/> (PROTOCOL.md 2), then nothing more. by is the new
 * session, or NULL for a device that is not one (a SIP registration, by_full), which cannot
 * take rooms over.
 */
static void
supersede(struct session *old, struct session *by, const char *by_full, const char *reason,
	  int64_t gen)
{
	struct iacct *ia = ia_of(old->acct);
	struct buf b = {0};

	log_info("identity %s: %s supersedes %s (%s, gen %lld)", old->acct->bare, by_full,
		 old->full, reason, (long long)gen);
	/* Rooms and conversations go to the new device with no leave or join (R14-R18). */
	if (by)
		continuity_take_over(old, by);
	/*
	 * R26: contacts do not see the account go offline: the old resource's unavailable
	 * waits for the new device's available presence (or identity.hold).
	 */
	if (old->available) {
		owed_clear(ia);
		ia->owed_full = xstrdup(old->full);
		const char *k;
		void *v;
		for (size_t it = 0; hmap_next(&old->directed, &it, &k, &v);)
			hmap_put(&ia->owed_directed, k, NULL);
		ia->owed_timer.fn = owed_fired;
		timer_start(old->w->loop, &ia->owed_timer, old->w->srv->cfg->identity_hold);
		old->available = false;
		hmap_free(&old->directed);
	}
	buf_puts(&b, "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
		     "<superseded xmlns='" NS_ID "' by='");
	xml_escape(&b, by_full, strlen(by_full), true);
	buf_puts(&b, "' reason='");
	xml_escape(&b, reason, strlen(reason), true);
	buf_printf(&b, "' gen='%lld'/>", (long long)gen);
	buf_puts(&b, "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Another device of this "
		     "account is active now</text></stream:error>");
	/* Its unacknowledged stanzas go to the account now, i.e. to the new device (R29). */
	old->sm_resume = false;
	session_write(old, buf_head(&b), buf_used(&b));
	buf_free(&b);
	if (old->tp)
		old->tp->end(old->t);
	session_close(old, "superseded");
}

static void
id_bound(struct session *s, const struct xml_node *bind_iq)
{
	struct account *a = s->acct;
	struct iacct *ia = a->ext[identity_ext.slot];
	const struct xml_node *h = hint_of(bind_iq);
	const char *reason = h && xml_attr(h, "reason") ? xml_attr(h, "reason") : "none";
	struct session *prev = NULL;
	int64_t gen;

	if (!ia || !ia->id.exclusive || !bind_iq)
		return;
	ia->id.gen = h && parse_gen(xml_attr(h, "gen"), &gen) ? gen : ia->id.gen + 1;
	for (struct session *o = a->sessions, *next; o; o = next) {
		next = o->acct_next;
		if (o == s || o->state == SS_CLOSED)
			continue;
		prev = o;
		supersede(o, s, s->full, reason, ia->id.gen);
	}
	/* A SIP registration is a device of the identity as well (R2): it goes too. */
	char *prev_dev = drop_devices(a, s->full, reason, NULL);
	save(a,
	     prev	? prev->resource
	     : prev_dev ? strchr(prev_dev, '/') + 1
			: (h ? xml_attr(h, "prev") : NULL),
	     s->resource, reason);
	free(prev_dev);
}

/* A device that is not a session registered: in exclusive mode it supersedes the sessions. */
static void
id_device(struct account *a, const char *full, bool up)
{
	struct iacct *ia = a->ext[identity_ext.slot];
	struct session *prev = NULL;

	if (!up || !ia || !ia->id.exclusive)
		return;
	ia->id.gen++;
	for (struct session *o = a->sessions, *next; o; o = next) {
		next = o->acct_next;
		if (o->state == SS_CLOSED)
			continue;
		prev = o;
		supersede(o, NULL, full, "registration", ia->id.gen);
	}
	/* Another kind of device of the same account: it goes. */
	free(drop_devices(a, full, "registration", full));
	if (prev)
		save(a, prev->resource, strchr(full, '/') + 1, "registration");
}

static void
id_seen(struct session *s, const struct xml_node *st, bool out)
{
	struct iacct *ia = s->acct ? s->acct->ext[identity_ext.slot] : NULL;

	/* The new device's available presence is out: now the old one may go (R26). */
	if (out && ia && ia->owed_full && stanza_is(st, "presence") && !xml_attr(st, "type") &&
	    !xml_attr(st, "to"))
		timer_start(s->w->loop, &ia->owed_timer, 0);
}

/* ---- incoming session barring (R11-R13) ---- */

static int
id_barred(struct account *a, const struct xml_node *st)
{
	struct iacct *ia = a->ext[identity_ext.slot];
	const struct xml_node *x;

	if (!ia || !ia->id.barring)
		return 0;
	/* MUC invitations (XEP-0045 7.8, XEP-0249) are refused. */
	if (((x = xml_child(st, "x", "http://jabber.org/protocol/muc#user")) &&
	     xml_child(x, "invite", NULL)) ||
	    xml_child(st, "x", "jabber:x:conference"))
		return 2;
	/* New 1:1 messages wait in offline storage, whichever device is active. */
	return xml_child(st, "body", NS_CLIENT) ? 1 : 0;
}

/* ---- the iqs of urn:baton:identity:0 ---- */

static void
id_iq(struct session *s, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, NULL, NULL);
	bool set = strcmp(xml_attr(st, "type"), "set") == 0;
	struct iacct *ia = ia_of(s->acct);

	if (set && strcmp(q->name, "exclusive") == 0) {
		const char *v = xml_attr(q, "enabled");
		ia->id.exclusive = v && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
		save(s->acct, NULL, NULL, NULL);
		session_reply(s, st, NULL);
	} else if (strcmp(q->name, "settings") == 0) {
		if (set) {
			const char *v = xml_attr(q, "barring");
			if (!v || (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)) {
				session_reply_error(s, st, "modify", "bad-request",
						    "barring is on or off");
				xml_free(st);
				return;
			}
			ia->id.barring = strcmp(v, "on") == 0;
			save(s->acct, NULL, NULL, NULL);
			session_reply(s, st, NULL);
		} else {
			struct xml_node *r = xml_el_new("settings", NS_ID);
			char gen[24];
			snprintf(gen, sizeof gen, "%lld", (long long)ia->id.gen);
			xml_set_attr(r, "barring", ia->id.barring ? "on" : "off");
			xml_set_attr(r, "exclusive", ia->id.exclusive ? "true" : "false");
			xml_set_attr(r, "gen", gen);
			session_reply(s, st, r);
		}
	} else if (!set && strcmp(q->name, "grant") == 0) {
		/* R10: a one-time credential for a device that never saw the password. */
		struct grant *g = xcalloc(1, sizeof *g);
		char token[33], when[32];
		struct xml_node *r = xml_el_new("grant", NS_ID);
		rand_id(token, 32);
		g->bare = xstrdup(s->acct->bare);
		g->until = now_ms() + GRANT_TTL_MS;
		pthread_mutex_lock(&grants_lock);
		grants_expire();
		if (grants.count < GRANTS_MAX) {
			hmap_put(&grants, token, g);
			g = NULL;
		}
		pthread_mutex_unlock(&grants_lock);
		if (g) {
			grant_free(g);
			xml_free(r);
			session_reply_error(s, st, "wait", "resource-constraint",
					    "too many grants");
			xml_free(st);
			return;
		}
		time_format(wall_ms() + GRANT_TTL_MS, when, sizeof when);
		xml_set_attr(r, "token", token);
		xml_set_attr(r, "expires", when);
		session_reply(s, st, r);
	} else {
		session_reply_error(s, st, "cancel", "feature-not-implemented", NULL);
	}
	xml_free(st);
}

struct xmpp_ext identity_ext = {
    .ns = NS_ID,
    .iq = id_iq,
    .seen = id_seen,
    .bind_check = id_bind_check,
    .bound = id_bound,
    .barred = id_barred,
    .auth_token = id_auth_token,
    .load = id_load,
    .account_free = id_account_free,
    .device = id_device,
};
