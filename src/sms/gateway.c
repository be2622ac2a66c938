/*
 * The XMPP side of SMS (PROTOCOL.md 3): the service at sms.<domain>. Messages to
 * +E.164@sms.<domain> are queued as MT ("alice: hello"); MO messages become chat messages from
 * the phone's JID ("@bob text", reply-to-last, WHO, help); delivery receipts and permanent
 * SMSC errors go back to the XMPP sender; phone JIDs answer subscriptions and probes as
 * available (xa, "SMS").
 *
 * Invariant: an MO is marked Processed in the same storage job that puts what it caused
 * (the message in its recipient's queue, or the reply SMS in the MT queue), so a restart
 * between the two can neither lose nor repeat it (seed 001 R7, R10).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sms_int.h"

#define NS_RECEIPTS "urn:xmpp:receipts"
#define DLR_TTL	    (7LL * 86400 * 1000) /* how long an SMSC receipt is waited for */
#define HELP_TEXT   "To write to someone: @name your text. Then just reply. WHO lists who is online."

static const char *
sms_domain(struct worker *w)
{
	static _Thread_local char d[300];
	snprintf(d, sizeof d, "sms.%s", w->srv->cfg->domain);
	return d;
}

/* A phone number as a JID's localpart: '+' and 3 to 15 digits (E.164), or a short code. */
static bool
valid_number(const char *s)
{
	size_t digits = strspn(s + (s[0] == '+'), "0123456789");
	return digits >= 3 && digits <= 15 && s[(s[0] == '+') + digits] == '\0';
}

static void
phone_jid(struct worker *w, const char *number, char *out, size_t n)
{
	struct buf b = {0};
	buf_printf(&b, "%s@%s", number, sms_domain(w));
	snprintf(out, n, "%s", buf_head(&b));
	buf_free(&b);
}

/* ---- MT: XMPP to phone ---- */

int
sms_queue_mt(struct store *st, const char *link, const char *sender, const char *number,
	     const char *text, const char *ref, bool dlr)
{
	struct store_sms_msg m = {.from = sender,
				  .to = number,
				  .text = text,
				  .ref = ref,
				  .extra = dlr ? "dlr" : NULL,
				  .stamp = wall_ms()};
	int64_t id;
	int r = store_sms_queue_put(st, link, &m, &id);

	/* Reply-to-last: a phone's plain answer goes to whoever wrote to it last. */
	if (r == 0 && sender && *sender) {
		char key[64];
		snprintf(key, sizeof key, "last:%s", number);
		r = store_sms_kv_set(st, key, sender, 0);
	}
	return r;
}

struct mt_job {
	struct store_job job;
	struct worker *w;
	struct sm_held held; /* the sender's ack, waiting for the commit */
	struct xml_node *st;
	char *link, *sender, *number, *text, *ref;
	bool dlr;
};

static int
mt_run(struct store *st, struct store_job *job)
{
	struct mt_job *mj = container_of(job, struct mt_job, job);
	return sms_queue_mt(st, mj->link, mj->sender, mj->number, mj->text, mj->ref, mj->dlr);
}

static void
pump_named(void *arg)
{
	struct sms_link *l = sms_link_named(arg);
	if (l)
		sms_link_pump(l);
	free(arg);
}

static void
pump_on_home(struct worker *w, void *arg)
{
	sms_with(w, pump_named, arg);
}

static void
mt_done(struct store_job *job)
{
	struct mt_job *mj = container_of(job, struct mt_job, job);

	if (job->result == 0) {
		struct sms_link *l = sms_link_named(mj->link);
		if (l)
			l->queued++;
		worker_call(sms_worker(mj->w), pump_on_home, xstrdup(mj->link));
	} else {
		log_error("sms: could not queue a message for %s", mj->number);
		route_error(mj->w, mj->st, "wait", "internal-server-error",
			    "The message could not be stored for sending by SMS");
	}
	sm_release(&mj->held);
	xml_free(mj->st);
	free(mj->link);
	free(mj->sender);
	free(mj->number);
	free(mj->text);
	free(mj->ref);
	free(mj);
}

/*
 * Queues message st (a body, to the phone number of to) for its link; s, if not NULL, is the
 * local sender whose XEP-0198 ack waits until it is stored (durability, DESIGN.md).
 */
static void
mt_submit(struct worker *w, struct session *s, struct xml_node *st, const struct jid *to)
{
	const char *from = xml_attr(st, "from"), *id = xml_attr(st, "id");
	struct xml_node *body = xml_child(st, "body", NULL);
	char *text = body ? xml_text(body) : NULL;
	struct sms_link *l = sms_link_for(to->local);
	struct jid fj;
	struct buf line = {0}, ref = {0};
	struct mt_job *mj;

	if (!text || !*text || !from || jid_parse(from, &fj) < 0) {
		free(text);
		xml_free(st);
		return; /* chat states, receipts, empty bodies: nothing to send by SMS */
	}
	/* PROTOCOL.md 3: "alice: hello", the sender's localpart (or domain) and the body. */
	buf_printf(&line, "%s: %s", fj.local ? fj.local : fj.domain, text);
	free(text);
	if (buf_used(&line) > SMS_MAX_TEXT) {
		route_error(w, st, "modify", "not-acceptable", "Too long for SMS");
		xml_free(st);
		jid_free(&fj);
		buf_free(&line);
		return;
	}
	buf_printf(&ref, "%s %s", from, id ? id : "");
	mj = xcalloc(1, sizeof *mj);
	mj->w = w;
	mj->st = st;
	mj->link = xstrdup(l->name);
	mj->sender = jid_bare(&fj);
	mj->number = xstrdup(to->local);
	mj->text = buf_steal(&line);
	mj->ref = buf_steal(&ref);
	mj->dlr = id && xml_child(st, "request", NS_RECEIPTS) != NULL;
	jid_free(&fj);
	sm_hold(s, &mj->held);
	mj->job.run = mt_run;
	mj->job.done = mt_done;
	worker_store(w, &mj->job);
}

static bool
sms_take(struct session *s, struct xml_node *st, const struct jid *to)
{
	if (!to->local || !valid_number(to->local) || to->resource)
		return false; /* routed: the service answers with an error */
	mt_submit(s->w, s, st, to);
	return true;
}

/* ---- outcomes of MT: receipts and errors ---- */

/* Sends the XMPP sender of ref ("full-jid id") a receipt, or an error with reason. */
static void
answer_sender(struct worker *w, const char *number, const char *ref, bool ok, const char *reason)
{
	char from[300], *to = xstrdup(ref ? ref : ""), *id = strchr(to, ' ');
	struct xml_node *st;

	if (id)
		*id++ = '\0';
	if (!*to) {
		free(to);
		return;
	}
	phone_jid(w, number, from, sizeof from);
	if (ok) {
		char rid[17];
		rand_id(rid, 16);
		st = stanza_new("message", from, to, NULL, rid);
		struct xml_node *r = xml_add_el(st, "received", NS_RECEIPTS); /* XEP-0184 */
		xml_set_attr(r, "id", id ? id : "");
	} else {
		/* PROTOCOL.md 3: a permanent SMSC rejection, with the SMSC's reason. */
		st = stanza_new("message", from, to, "error", id && *id ? id : NULL);
		struct xml_node *e = xml_add_el(st, "error", NULL);
		xml_set_attr(e, "type", "cancel");
		xml_add_el(e, "service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas");
		struct xml_node *t = xml_add_el(e, "text", "urn:ietf:params:xml:ns:xmpp-stanzas");
		xml_add_text(t, reason ? reason : "refused by the SMSC",
			     strlen(reason ? reason : "refused by the SMSC"));
	}
	route(w, st);
	free(to);
}

struct outcome_job {
	struct store_job job;
	struct sms_link *l;
	char *link, *number, *ref, *msgids, *reason;
	uint64_t seq;
	unsigned slot;
	bool ok, dlr;
};

static int
outcome_run(struct store *st, struct store_job *job)
{
	struct outcome_job *oj = container_of(job, struct outcome_job, job);
	char refkey[96];
	int r = 0;

	if (oj->ok && oj->dlr && oj->ref && oj->msgids && *oj->msgids) {
		/* Each part's SMSC id leads to the message; the first "delivered" answers. */
		char *ids = xstrdup(oj->msgids), *save = NULL;
		int64_t exp = wall_ms() + DLR_TTL;
		snprintf(refkey, sizeof refkey, "ref:%s:%llu", oj->link,
			 (unsigned long long)oj->seq);
		r = store_sms_kv_set(st, refkey, oj->ref, exp);
		for (char *id = strtok_r(ids, ",", &save); r == 0 && id;
		     id = strtok_r(NULL, ",", &save)) {
			char key[160];
			snprintf(key, sizeof key, "dlr:%s:%s", oj->link, id);
			r = store_sms_kv_set(st, key, refkey, exp);
		}
		free(ids);
	}
	if (r == 0)
		r = store_sms_slot_state(st, oj->link, SMS_MT, oj->slot, (int64_t)oj->seq,
					 SMS_PROCESSED, "");
	return r;
}

static void
outcome_done(struct store_job *job)
{
	struct outcome_job *oj = container_of(job, struct outcome_job, job);

	if (!oj->ok) {
		oj->l->mt_failed++;
		answer_sender(sms.w, oj->number, oj->ref, false, oj->reason);
	}
	sms_gauges(oj->l);
	free(oj->link);
	free(oj->number);
	free(oj->ref);
	free(oj->msgids);
	free(oj->reason);
	free(oj);
}

void
sms_mt_outcome(struct sms_link *l, struct sms_msg *m, const struct link_frame *fr)
{
	struct outcome_job *oj = xcalloc(1, sizeof *oj);
	const char *status = link_get(fr, "status"), *msgid = link_get(fr, "msgid");
	const char *reason = link_get(fr, "reason");

	oj->l = l;
	oj->link = xstrdup(l->name);
	oj->number = xstrdup(m->to ? m->to : "");
	oj->ref = m->ref ? xstrdup(m->ref) : NULL;
	oj->msgids = msgid ? xstrdup(msgid) : NULL;
	oj->reason = reason ? xstrdup(reason) : NULL;
	oj->seq = m->seq;
	oj->slot = ring_slot(&l->mt, m->seq);
	oj->ok = !status || strcmp(status, "fail") != 0;
	oj->dlr = m->extra && strcmp(m->extra, "dlr") == 0;
	oj->job.run = outcome_run;
	oj->job.done = outcome_done;
	worker_store(sms.w, &oj->job);
}

/* ---- MO: phone to XMPP ---- */

/* What an MO asks for, once it has been read. */
struct mo_job {
	struct store_job job;
	struct sms_link *l;
	char *link, *number, *text, *extra;
	uint64_t seq;
	unsigned slot;
	/* resolved on the storage thread */
	char *to;    /* the recipient's bare JID */
	char *reply; /* an SMS back to the phone instead */
	char *ref;   /* a report: the XMPP sender it answers */
	bool report_ok, report_final;
	char **who; /* WHO: accounts with the number in their roster */
	size_t nwho;
};

static void mo_job_free(struct mo_job *mj);

/* Marks the MO Processed; inside another job's run (the same transaction). */
static int
mark_processed(struct store *st, void *arg)
{
	struct mo_job *mj = arg;
	return store_sms_slot_state(st, mj->link, SMS_MO, mj->slot, (int64_t)mj->seq, SMS_PROCESSED,
				    "");
}

/* The job after the MO was acted on: the reply SMS (if any) and Processed, together. */
static int
finish_run(struct store *st, struct store_job *job)
{
	struct mo_job *mj = container_of(job, struct mo_job, job);
	int r = 0;

	if (mj->reply)
		r = sms_queue_mt(st, mj->link, NULL, mj->number, mj->reply, NULL, false);
	return r == 0 ? mark_processed(st, mj) : r;
}

static void
processed(struct sms_link *l, uint64_t seq)
{
	struct sms_msg *m = ring_find(&l->mo, seq);
	if (m && m->state < SMS_PROCESSED) {
		l->mo_done++;
		link_peer_processed(&l->peer, m, NULL);
		sms_gauges(l);
	}
}

static void
finish_done(struct store_job *job)
{
	struct mo_job *mj = container_of(job, struct mo_job, job);

	if (job->result == 0) {
		processed(mj->l, mj->seq);
		if (mj->reply) {
			mj->l->queued++;
			sms_link_pump(mj->l);
		}
	} else {
		log_error("sms: could not finish MO %llu from %s", (unsigned long long)mj->seq,
			  mj->number);
	}
	mo_job_free(mj);
}

static void
finish(struct mo_job *mj, const char *reply)
{
	free(mj->reply);
	mj->reply = reply ? xstrdup(reply) : NULL;
	memset(&mj->job, 0, sizeof mj->job);
	mj->job.run = finish_run;
	mj->job.done = finish_done;
	worker_store(sms.w, &mj->job);
}

static void
delivered(struct worker *w, void *arg, int result, const struct xml_node *refused)
{
	struct mo_job *mj = arg;
	char msg[200];

	switch (result) {
	case 0:
		processed(mj->l, mj->seq);
		mo_job_free(mj);
		return;
	case STORE_ENOENT:
		snprintf(msg, sizeof msg, "No user '%.60s' here. %s", mj->to, HELP_TEXT);
		finish(mj, msg);
		return;
	case STORE_EQUOTA:
		snprintf(msg, sizeof msg, "The inbox of %.60s is full; try again later.", mj->to);
		finish(mj, msg);
		return;
	default:
		/* Not stored (it was routed all the same): it stays Confirmed, to be read again
		 * after a restart. */
		log_error("sms: MO %llu from %s could not be stored", (unsigned long long)mj->seq,
			  mj->number);
		mo_job_free(mj);
		return;
	}
}

/* The MO is a message for mj->to: an ordinary chat message from the phone's JID. */
static void
deliver(struct mo_job *mj, const char *body)
{
	char from[300], id[17];
	struct xml_node *st;

	phone_jid(sms.w, mj->number, from, sizeof from);
	rand_id(id, 16);
	st = stanza_new("message", from, mj->to, "chat", id);
	struct xml_node *b = xml_add_el(st, "body", NULL);
	xml_add_text(b, body, strlen(body));
	durable_deliver(sms.w, st, mj->to, 0, mark_processed, delivered, mj);
}

/* ---- WHO: the accounts with the number in their roster that are online ---- */

struct who {
	struct mo_job *mj;
	size_t pending;
	struct buf online;
};

struct who_ask {
	struct who *who;
	char *bare;
	bool online;
};

static void
who_answer(struct worker *w, void *arg)
{
	struct who_ask *a = arg;
	struct who *who = a->who;

	if (a->online) {
		const char *at = strchr(a->bare, '@');
		buf_printf(&who->online, "%s%.*s", buf_used(&who->online) ? ", " : "",
			   (int)(at ? at - a->bare : (long)strlen(a->bare)), a->bare);
	}
	free(a->bare);
	free(a);
	if (--who->pending == 0) {
		struct buf reply = {0};
		if (buf_used(&who->online))
			buf_printf(&reply, "Online: %s", buf_head(&who->online));
		else
			buf_puts(&reply, "Nobody who has you as a contact is online.");
		finish(who->mj, buf_head(&reply));
		buf_free(&reply);
		buf_free(&who->online);
		free(who);
	}
}

/* On the account's home worker: is it online (an available session)? Only cached accounts can
 * be: an account with sessions is always cached. */
static void
who_check(struct worker *w, void *arg)
{
	struct who_ask *a = arg;
	struct account *acct = hmap_get(&w->accounts, a->bare);

	for (struct session *s = acct ? acct->sessions : NULL; s; s = s->acct_next)
		if (s->available)
			a->online = true;
	worker_call(sms.w, who_answer, a);
}

static void
who_start(struct mo_job *mj)
{
	struct who *who = xcalloc(1, sizeof *who);

	if (!mj->nwho) {
		free(who);
		finish(mj, "Nobody has you as a contact yet.");
		return;
	}
	who->mj = mj;
	who->pending = mj->nwho;
	for (size_t i = 0; i < mj->nwho; i++) {
		struct who_ask *a = xcalloc(1, sizeof *a);
		a->who = who;
		a->bare = xstrdup(mj->who[i]);
		worker_call(server_home(sms.w->srv, a->bare), who_check, a);
	}
}

/* ---- reading an MO ---- */

static void
who_collect(void *arg, const char *owner)
{
	struct mo_job *mj = arg;
	mj->who = xrealloc(mj->who, (mj->nwho + 1) * sizeof *mj->who);
	mj->who[mj->nwho++] = xstrdup(owner);
}

static bool
is_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	while (isspace((unsigned char)*text))
		text++;
	if (strncasecmp(text, word, n) != 0)
		return false;
	for (text += n; *text; text++)
		if (!isspace((unsigned char)*text))
			return false;
	return true;
}

/* On the storage thread: what the stored facts say about this MO. */
static int
resolve_run(struct store *st, struct store_job *job)
{
	struct mo_job *mj = container_of(job, struct mo_job, job);
	struct buf v = {0};
	char key[200];

	if (mj->extra && strncmp(mj->extra, "report:", 7) == 0) {
		/* report:<stat>:<msgid> -> the message's ref -> its XMPP sender. */
		const char *stat = mj->extra + 7, *msgid = strchr(stat, ':');
		if (!msgid)
			return 0;
		mj->report_ok = strncmp(stat, "DELIVRD", 7) == 0;
		mj->report_final = mj->report_ok || strncmp(stat, "ENROUTE", 7) != 0;
		snprintf(key, sizeof key, "dlr:%s:%s", mj->link, msgid + 1);
		if (mj->report_final && store_sms_kv_get(st, key, &v) == 0) {
			char refkey[96];
			snprintf(refkey, sizeof refkey, "%s", buf_head(&v));
			buf_reset(&v);
			if (store_sms_kv_get(st, refkey, &v) == 0) {
				mj->ref = buf_steal(&v);
				store_sms_kv_del(st, refkey); /* one answer per message */
			}
			store_sms_kv_del(st, key);
		}
		buf_free(&v);
		return 0;
	}
	if (is_word(mj->text, "WHO")) {
		char jid[300];
		snprintf(jid, sizeof jid, "%s@sms.%s", mj->number, sms.w->srv->cfg->domain);
		return store_roster_owners(st, jid, who_collect, mj);
	}
	if (mj->text[0] != '@') {
		snprintf(key, sizeof key, "last:%s", mj->number);
		if (store_sms_kv_get(st, key, &v) == 0)
			mj->to = buf_steal(&v);
		buf_free(&v);
	}
	return 0;
}

static void
resolve_done(struct store_job *job)
{
	struct mo_job *mj = container_of(job, struct mo_job, job);
	const char *domain = sms.w->srv->cfg->domain;
	const char *text = mj->text;

	if (job->result < 0) {
		log_error("sms: could not read the facts for MO %llu", (unsigned long long)mj->seq);
		mo_job_free(mj);
		return;
	}
	if (mj->extra && strncmp(mj->extra, "report:", 7) == 0) {
		if (mj->ref) {
			answer_sender(sms.w, mj->number, mj->ref, mj->report_ok,
				      "The SMS could not be delivered to the phone");
			mj->l->receipts += mj->report_ok;
		}
		finish(mj, NULL);
		return;
	}
	if (is_word(text, "WHO")) {
		who_start(mj);
		return;
	}
	if (text[0] == '@') {
		/* "@bob how are you": to bob@<domain>, "how are you". */
		size_t n = strcspn(text + 1, " \t\r\n");
		char local[128];
		struct jid j;
		if (n == 0 || n >= 64) {
			finish(mj, HELP_TEXT);
			return;
		}
		for (size_t i = 0; i < n; i++)
			local[i] = (char)tolower((unsigned char)text[1 + i]);
		local[n] = '\0';
		free(mj->to);
		mj->to = xmalloc(n + strlen(domain) + 2);
		sprintf(mj->to, "%s@%s", local, domain);
		if (jid_parse(mj->to, &j) < 0) {
			finish(mj, HELP_TEXT);
			return;
		}
		jid_free(&j);
		text += 1 + n;
		while (isspace((unsigned char)*text))
			text++;
		if (!*text) {
			finish(mj, "Write @name and then your text.");
			return;
		}
	} else if (!mj->to) {
		finish(mj, HELP_TEXT);
		return;
	}
	deliver(mj, text);
}

void
sms_mo(struct sms_link *l, struct sms_msg *m)
{
	struct mo_job *mj = xcalloc(1, sizeof *mj);

	mj->l = l;
	mj->link = xstrdup(l->name);
	mj->number = xstrdup(m->from ? m->from : "");
	mj->text = xstrdup(m->text ? m->text : "");
	mj->extra = m->extra ? xstrdup(m->extra) : NULL;
	mj->seq = m->seq;
	mj->slot = ring_slot(&l->mo, m->seq);
	mj->job.run = resolve_run;
	mj->job.done = resolve_done;
	worker_store(sms.w, &mj->job);
}

static void
mo_job_free(struct mo_job *mj)
{
	for (size_t i = 0; i < mj->nwho; i++)
		free(mj->who[i]);
	free(mj->who);
	free(mj->link);
	free(mj->number);
	free(mj->text);
	free(mj->extra);
	free(mj->to);
	free(mj->reply);
	free(mj->ref);
	free(mj);
}

/* ---- the service ---- */

/* Phone JIDs are always there, "available" in the way of SMS: xa, status "SMS" (PROTOCOL.md 3). */
static void
phone_presence(struct worker *w, const char *phone, const char *to, const char *type)
{
	struct xml_node *p = stanza_new("presence", phone, to, type, NULL);

	if (!type) {
		xml_add_text(xml_add_el(p, "show", NULL), "xa", 2);
		xml_add_text(xml_add_el(p, "status", NULL), "SMS", 3);
	}
	route(w, p);
}

static void
service_iq(struct worker *w, struct xml_node *st, const struct jid *to)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *q = xml_child(st, NULL, NULL);

	if (type && strcmp(type, "get") == 0 && q && strcmp(q->ns, NS_DISCO_INFO) == 0) {
		struct xml_node *r = xml_el_new("query", NS_DISCO_INFO);
		struct xml_node *id = xml_add_el(r, "identity", NULL);
		xml_set_attr(id, "category", to->local ? "client" : "gateway");
		xml_set_attr(id, "type", to->local ? "phone" : "sms");
		xml_set_attr(id, "name", to->local ? "SMS" : "SMS gateway");
		xml_set_attr(xml_add_el(r, "feature", NULL), "var", NS_DISCO_INFO);
		struct xml_node *res = stanza_new("iq", xml_attr(st, "to"), xml_attr(st, "from"),
						  "result", xml_attr(st, "id"));
		xml_add_child(res, r);
		route(w, res);
	} else if (type && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)) {
		route_error(w, st, "cancel", "service-unavailable", NULL);
	}
	xml_free(st);
}

static void
sms_route(struct worker *w, struct xml_node *st, const struct jid *to)
{
	const char *from = xml_attr(st, "from"), *type = xml_attr(st, "type");
	char phone[300];

	if (stanza_is(st, "iq") && (!to->local || valid_number(to->local))) {
		service_iq(w, st, to);
		return;
	}
	if (!to->local || !valid_number(to->local)) {
		if (!stanza_is(st, "presence"))
			route_error(w, st, "cancel", "item-not-found",
				    "Not a phone number: write +<country code><number>");
		xml_free(st);
		return;
	}
	phone_jid(w, to->local, phone, sizeof phone);
	if (stanza_is(st, "presence")) {
		struct jid fj;
		char *bare;
		if (!from || jid_parse(from, &fj) < 0) {
			xml_free(st);
			return;
		}
		bare = jid_bare(&fj);
		jid_free(&fj);
		/* RFC 6121 3.1.3 / 4.3: a phone approves every subscription and is there. */
		if (type && strcmp(type, "subscribe") == 0) {
			phone_presence(w, phone, bare, "subscribed");
			phone_presence(w, phone, bare, NULL);
		} else if (type && strcmp(type, "probe") == 0) {
			phone_presence(w, phone, from, NULL);
		} else if (type && strcmp(type, "unsubscribe") == 0) {
			phone_presence(w, phone, bare, "unsubscribed");
		}
		free(bare);
		xml_free(st);
		return;
	}
	if (!stanza_is(st, "message") || (type && strcmp(type, "error") == 0) || to->resource) {
		xml_free(st);
		return;
	}
	mt_submit(w, NULL, st, to);
}

static void
sms_free_worker(struct worker *w)
{
	if (w->id == 0 && sms.links)
		sms_links_free();
}

static const struct xmpp_service sms_service = {
    .prefix = "sms",
    .route = sms_route,
    .take = sms_take,
    .free_worker = sms_free_worker,
};

void
sms_register(const struct config *cfg)
{
	sms_links_init(cfg);
	server_add_service(&sms_service);
	if (*cfg->sms_link)
		server_add_listener(cfg->sms_link, sms_accept);
}
