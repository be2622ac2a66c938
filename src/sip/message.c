/*
 * SIP MESSAGE (RFC 3428) with seed 004's flag: `Content-Disposition: instant` is delivered now
 * or refused (480), never stored; `store&fwd` (also `S&F`, any case) is stored when it cannot
 * be delivered now, answered 202, and goes out at the recipient's next REGISTER; without a
 * flag sip.default_disposition decides. The final 200 comes only once the recipient's device
 * answered 2xx (R26). A stored MESSAGE is an ordinary stored message of the account (the
 * offline queue, durable.c), so the recipient's XMPP devices get it too.
 *
 * Invariant: a stored MESSAGE leaves storage only after a device acknowledged it (a SIP 2xx
 * here, an XMPP ack there), in arrival order, once per device.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_int.h"

#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_AMP	    "http://jabber.org/protocol/amp"

/* What a MESSAGE carries to its recipient, live or from storage. */
struct sip_im {
	char *from;	   /* sender's bare JID (user@domain) */
	char *to;	   /* recipient's bare JID */
	char *text;	   /* the body (text/plain, UTF-8) */
	char *disposition; /* "instant", "store&fwd" or NULL */
	int64_t stored;	   /* offline id, 0 if not stored */
	int64_t expires;   /* wall ms the sender's Expires allows it to wait, 0 = none */
	char *msgid;	   /* its id (IMDN Message-ID, or the XMPP id) */
	char *reply_to;	   /* who asked for a delivery report (XEP-0184 / IMDN), or NULL */
	bool want_failure; /* IMDN negative-delivery: a report if it expires */
	int report;	   /* this is a report about msgid: 1 delivered, -1 failed, 0 not one */
	bool offered;	   /* stored after its SIP delivery failed (the device was tried) */
};

static void
im_free(struct sip_im *im)
{
	free(im->from);
	free(im->to);
	free(im->text);
	free(im->disposition);
	free(im->msgid);
	free(im->reply_to);
	free(im);
}

/* ---- sending a MESSAGE to a registered contact ---- */

/* Sends im to binding b; done(arg, status) with the final status (408 if no answer). */
static void
send_to_binding(const struct sip_binding *b, const struct sip_im *im,
		void (*done)(void *arg, int status, const struct sip_msg *resp), void *arg)
{
	struct buf h = {0}, req = {0};
	char branch[40], tag[17], cid[25];

	sip_new_branch(branch);
	rand_id(tag, 16);
	rand_id(cid, 24);
	buf_printf(&h, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n", b->peer.tcp ? "TCP" : "UDP",
		   sip.host, branch);
	buf_printf(&h, "Max-Forwards: 70\r\nFrom: <sip:%s>;tag=%s\r\nTo: <sip:%s>\r\n", im->from,
		   tag, im->to);
	buf_printf(&h, "Call-ID: %s@%s\r\nCSeq: 1 MESSAGE\r\n", cid, sip.cfg->domain);
	if (im->report) {
		/* R11: the delivery report, RFC 5438 7.2: CPIM around message/imdn+xml. */
		struct buf body = {0}, from = {0}, to = {0};
		buf_printf(&from, "sip:%s", im->from);
		buf_printf(&to, "sip:%s", im->to);
		sip_imdn_report(&body, buf_head(&from), buf_head(&to), im->msgid ? im->msgid : "",
				buf_head(&from), im->report > 0);
		buf_puts(&h, "Content-Type: message/cpim\r\nContent-Disposition: notification\r\n");
		sip_write_request(&req, "MESSAGE", b->contact, buf_head(&h), buf_head(&body),
				  buf_used(&body));
		buf_free(&body);
		buf_free(&from);
		buf_free(&to);
	} else {
		buf_puts(&h, "Content-Type: text/plain;charset=UTF-8\r\n");
		if (im->disposition) /* R2: the flag travels with the message */
			buf_printf(&h, "Content-Disposition: %s\r\n", im->disposition);
		sip_write_request(&req, "MESSAGE", b->contact, buf_head(&h), im->text,
				  strlen(im->text));
	}
	buf_free(&h);
	sip_request(&b->peer, branch, &req, done, arg);
}

/* ---- storing ---- */

static struct xml_node *
im_stanza(const struct sip_im *im, const char *id)
{
	struct xml_node *st = stanza_new("message", im->from, im->to, "chat", id);
	struct xml_node *s;

	xml_add_text(xml_add_el(st, "body", NULL), im->text, strlen(im->text));
	/* The report requests in their XMPP form: whoever delivers it (SIP or XMPP) answers. */
	if (im->reply_to)
		xml_add_el(st, "request", NS_RECEIPTS); /* XEP-0184 */
	if (im->want_failure) {
		/* XEP-0079: notified if it is never delivered (expiry), which becomes IMDN failed.
		 */
		struct xml_node *amp = xml_add_el(st, "amp", NS_AMP);
		struct xml_node *rule = xml_add_el(amp, "rule", NULL);
		xml_set_attr(rule, "condition", "deliver");
		xml_set_attr(rule, "value", "none");
		xml_set_attr(rule, "action", "notify");
	}
	s = xml_add_el(st, "sip", NS_SIP);
	if (im->offered)
		xml_set_attr(s, "offered", "1");
	if (im->disposition)
		xml_set_attr(s, "disposition", im->disposition);
	return st;
}

static void
report_stored(struct worker *w, void *arg, int result, const struct xml_node *refused)
{
	if (result != 0 && result != STORE_ENOENT)
		log_info("sip: a delivery report could not be stored (%d)", result);
}

/*
 * im reached a device: its sender, if it asked (XEP-0184 request or IMDN positive-delivery),
 * gets a receipt, stored and routed like any message, so a SIP sender's device gets it as an
 * IMDN (R11, R12) and an XMPP sender's as <received/>. Never on storing, only on delivery.
 */
static void
report_delivered(const struct sip_im *im)
{
	struct xml_node *st, *r;
	struct jid j;
	char id[17];

	if (!im->reply_to || !*im->reply_to || !im->msgid || jid_parse(im->reply_to, &j) < 0)
		return;
	rand_id(id, 16);
	st = stanza_new("message", im->to, im->reply_to, NULL, id);
	r = xml_add_el(st, "received", NS_RECEIPTS);
	xml_set_attr(r, "id", im->msgid);
	if (strcmp(j.domain, sip.cfg->domain) == 0 && j.local) {
		char *bare = jid_bare(&j);
		durable_deliver(sip.w, st, bare, 0, NULL, report_stored, NULL);
		free(bare);
	} else {
		route(sip.w, st);
	}
	jid_free(&j);
}

struct live {
	struct sip_req *r;
	struct sip_im *im;
	bool online; /* an XMPP device of the recipient is available */
	int status;  /* instant without a SIP device: the answer */
};

static void
answer_stored(struct worker *w, void *arg)
{
	struct live *lv = arg;

	/* R26: 200 once a device has it (the routed copy reached an available XMPP session,
	 * whose ack deletes the stored one); 202 if it only waits in storage (R5). */
	if (lv->online)
		sip_reply(lv->r, 200, "OK", NULL, NULL, 0);
	else
		sip_reply(lv->r, 202, "Accepted (stored until the recipient is back)", NULL, NULL,
			  0);
	im_free(lv->im);
	free(lv);
}

/* On the recipient's home worker, after the stored copy was routed there (mail order). */
static void
check_online(struct worker *w, void *arg)
{
	struct live *lv = arg;
	struct account *a = hmap_get(&w->accounts, lv->im->to);

	for (struct session *s = a ? a->sessions : NULL; s; s = s->acct_next)
		if (s->available)
			lv->online = true;
	sip_call(w, answer_stored, lv);
}

static void
stored(struct worker *w, void *arg, int result, const struct xml_node *refused)
{
	struct live *lv = arg;
	struct sip_req *r = lv->r;

	switch (result) {
	case 0:
		worker_call(server_home(w->srv, lv->im->to), check_online, lv);
		return;
	case STORE_ENOENT:
		sip_reply(r, 404, "Not Found", NULL, NULL, 0);
		break;
	case STORE_EQUOTA:
		sip_reply(r, 486, "Busy Here (the recipient's message store is full)", NULL, NULL,
			  0);
		break;
	default:
		sip_reply(r, 500, "Server Internal Error (could not store the message)", NULL, NULL,
			  0);
		break;
	}
	im_free(lv->im);
	free(lv);
}

static void
store_im(struct live *lv)
{
	char id[17];
	struct xml_node *st;

	rand_id(id, 16);
	st = im_stanza(lv->im, lv->im->msgid ? lv->im->msgid : id);
	durable_deliver(sip.w, st, lv->im->to, lv->im->expires, NULL, stored, lv);
}

/* ---- a MESSAGE from a SIP user ---- */

static bool
is_instant(const struct sip_im *im)
{
	if (im->disposition)
		return strcmp(im->disposition, "instant") == 0;
	return strcmp(sip.cfg->sip_disposition, "instant") == 0;
}

static void
forwarded(void *arg, int status, const struct sip_msg *resp)
{
	struct live *lv = arg;

	if (status >= 200 && status < 300) {
		sip_reply(lv->r, 200, "OK", NULL, NULL, 0); /* R26: the device took it */
		report_delivered(lv->im);
		im_free(lv->im);
		free(lv);
		return;
	}
	log_info("sip: MESSAGE %s -> %s: the contact answered %d", lv->im->from, lv->im->to,
		 status);
	if (is_instant(lv->im)) {
		/* R4: instant is never stored; the UA's failure, or 480 for no answer. A 503 from
		 * the UA would say this server is unavailable: 500 instead (RFC 3261 16.7 step 6).
		 */
		int code = status >= 400 && status < 700 && status != 408 ? status : 480;
		if (code == 503)
			code = 500;
		sip_reply(lv->r, code, code == 480 ? "Temporarily Unavailable" : "Not Delivered",
			  NULL, NULL, 0);
		im_free(lv->im);
		free(lv);
		return;
	}
	lv->im->offered = true;
	store_im(lv); /* R6: kept pending, sent again at the next registration */
}

/* ---- instant, without a SIP device: the account's XMPP devices, now or never ---- */

static void
instant_answer(struct worker *w, void *arg)
{
	struct live *lv = arg;
	int status = lv->status;

	/* A report, if asked for, comes from the XMPP client's receipt (R23), as for stored ones.
	 */
	sip_reply(lv->r, status,
		  status == 200	  ? "OK"
		  : status == 404 ? "Not Found"
				  : "Temporarily Unavailable",
		  NULL, NULL, 0);
	im_free(lv->im);
	free(lv);
}

static void
instant_account(struct account *a, void *arg)
{
	struct live *lv = arg;

	if (a->state != AS_READY) {
		lv->status = 404;
	} else if (!account_best_session(a)) {
		lv->status = 480; /* R4: nobody there; never stored */
	} else {
		/* To the resources, never into storage: instant is not stored (R3), hence no-store.
		 */
		char id[17];
		struct xml_node *st;
		rand_id(id, 16);
		st = im_stanza(lv->im, lv->im->msgid ? lv->im->msgid : id);
		xml_add_el(st, "no-store", "urn:xmpp:hints");
		route(a->w, st);
		lv->status = 200;
	}
	sip_call(a->w, instant_answer, lv);
}

static void
instant_home(struct worker *w, void *arg)
{
	struct live *lv = arg;
	account_with(w, lv->im->to, instant_account, lv);
}

/*
 * The text of a body into im: text/plain as is, or message/cpim around text/plain with the
 * IMDN requests (R12); -1 for anything else (415).
 */
static int
body_text(const struct sip_msg *m, struct sip_im *im)
{
	const char *ct = sip_hdr(m, "Content-Type");
	struct sip_cpim c;

	if (ct && strncasecmp(ct, "message/cpim", 12) == 0) {
		if (sip_cpim_parse(m->body, m->body_len, &c) < 0)
			return -1;
		im->text = c.text;
		im->msgid = c.msgid;
		if (c.positive && c.msgid)
			im->reply_to = xstrdup(""); /* the sender: set by the caller */
		im->want_failure = c.negative && c.msgid;
		return 0;
	}
	if ((ct && strncasecmp(ct, "text/plain", 10) != 0) || memchr(m->body, '\0', m->body_len))
		return -1;
	im->text = xstrndup(m->body, m->body_len);
	return 0;
}

void
sip_message(struct sip_req *r)
{
	struct sip_addr from;
	struct sip_uri ru = {0};
	struct sip_im *im;
	struct sip_aor *a;
	struct live *lv;
	char disp[32], *sender, *to;
	const char *dh;
	bool ours;

	/* The sender is the authenticated user in any form of its identity (sip:, tel: alias);
	 * a MESSAGE from sip:bob sent by alice gets 403. */
	if (sip_parse_addr(sip_hdr(&r->m, "From"), &from) < 0 || !from.uri) {
		if (from.mem)
			sip_addr_free(&from);
		sip_reply(r, 400, "Bad Request (From)", NULL, NULL, 0);
		return;
	}
	sender = sip_uri_account(from.uri);
	ours = sender && strcmp(sender, r->bare) == 0;
	free(sender);
	sip_addr_free(&from);
	if (!ours) {
		sip_reply(r, 403, "Forbidden (From is not you)", NULL, NULL, 0);
		return;
	}
	to = sip_uri_account(r->m.uri);
	if (!to) {
		bool tel = strncasecmp(r->m.uri, "tel:", 4) == 0;
		bool local = !tel && sip_parse_uri(r->m.uri, &ru) == 0 &&
			     strcasecmp(ru.host, sip.cfg->domain) == 0;
		if (!tel && ru.mem)
			sip_uri_free(&ru);
		/* No relaying: only local users are served (PROTOCOL.md 5). */
		if (local || tel)
			sip_reply(r, 404, "Not Found", NULL, NULL, 0);
		else
			sip_reply(r, 403, "Forbidden (not a domain served here)", NULL, NULL, 0);
		return;
	}
	im = xcalloc(1, sizeof *im);
	im->to = to;
	if (body_text(&r->m, im) < 0) {
		im_free(im);
		sip_reply(r, 415, "Unsupported Media Type", "Accept: text/plain, message/cpim\r\n",
			  NULL, 0);
		return;
	}
	im->from = xstrdup(r->bare);
	if (im->reply_to) {
		free(im->reply_to);
		im->reply_to = xstrdup(r->bare);
	}
	/* R13: the sender may shorten how long it waits in storage (RFC 3261 20.19). */
	const char *exp = sip_hdr(&r->m, "Expires");
	if (exp && *exp >= '0' && *exp <= '9')
		im->expires = wall_ms() + 1000 * (int64_t)strtol(exp, NULL, 10);
	/* R1: the flag, any case, parameters tolerated, S&F an alias of store&fwd. */
	dh = sip_hdr(&r->m, "Content-Disposition");
	if (dh && sip_disposition(dh, disp, sizeof disp) == 0) {
		if (strcmp(disp, "instant") == 0)
			im->disposition = xstrdup("instant");
		else if (strcmp(disp, "store&fwd") == 0 || strcmp(disp, "s&f") == 0)
			im->disposition = xstrdup("store&fwd");
	}
	lv = xcalloc(1, sizeof *lv);
	lv->r = r;
	lv->im = im;
	a = sip_aor_get(im->to);
	if (a && a->bindings) {
		send_to_binding(a->bindings, im, forwarded, lv);
		return;
	}
	if (is_instant(im)) {
		/* No SIP device: an available XMPP device takes it now, or it fails (R4). */
		worker_call(server_home(sip.w->srv, im->to), instant_home, lv);
		return;
	}
	store_im(lv);
}

/* ---- what is stored goes out at registration (R7), in order, once (R14) ---- */

struct pending {
	struct store_job job;
	char *bare;
	int64_t after;
	struct sip_im **items;
	size_t n, cap, next;
};

static void pending_next(struct pending *p);

/*
 * A stored message for owner as a MESSAGE, or NULL if it has no body. from_sip says whether it
 * came from SIP (stored because its SIP delivery failed).
 */
static struct sip_im *
im_from_stored(const char *stanza, size_t len, const char *owner, int64_t id, bool *from_sip)
{
	struct xml_node *st = xml_parse(stanza, len);
	struct xml_node *body = st ? xml_child(st, "body", NULL) : NULL;
	struct xml_node *s = st ? xml_child(st, "sip", NS_SIP) : NULL;
	struct sip_im *im = NULL;
	struct jid fj;

	struct xml_node *rcv = st ? xml_child(st, "received", NS_RECEIPTS) : NULL;
	struct xml_node *amp = st ? xml_child(st, "amp", NS_AMP) : NULL;
	const char *from = st ? xml_attr(st, "from") : NULL;

	if (from_sip)
		*from_sip = s && xml_attr(s, "offered");
	/* An AMP notice about a message never delivered comes from the server; the report is the
	 * original recipient's (amp/@to). */
	if (amp && xml_attr(amp, "status") && strcmp(xml_attr(amp, "status"), "notify") == 0)
		from = xml_attr(amp, "to");
	if (!st || !from || jid_parse(from, &fj) < 0) {
		xml_free(st);
		return NULL;
	}
	im = xcalloc(1, sizeof *im);
	im->from = jid_bare(&fj);
	jid_free(&fj);
	im->to = xstrdup(owner);
	im->stored = id;
	if (body) {
		im->text = xml_text(body);
		if (s && xml_attr(s, "disposition"))
			im->disposition = xstrdup(xml_attr(s, "disposition"));
		if (xml_attr(st, "id"))
			im->msgid = xstrdup(xml_attr(st, "id"));
		/* XEP-0184: its sender (full JID) hears when a SIP device takes it. */
		if (xml_child(st, "request", NS_RECEIPTS) && im->msgid)
			im->reply_to = xstrdup(xml_attr(st, "from"));
	} else if (rcv && xml_attr(rcv, "id")) {
		im->report = 1; /* R23: an XMPP receipt becomes an IMDN "delivered" */
		im->msgid = xstrdup(xml_attr(rcv, "id"));
	} else if (amp && xml_attr(st, "id")) {
		im->report = -1; /* R13: expired undelivered: IMDN "failed" */
		im->msgid = xstrdup(xml_attr(st, "id"));
	} else {
		im_free(im);
		im = NULL;
	}
	xml_free(st);
	return im;
}

static void
pending_collect(void *arg, const struct store_offline_msg *m)
{
	struct pending *p = arg;
	struct sip_im *im = im_from_stored(m->stanza, m->len, p->bare, m->id, NULL);

	p->after = m->id;
	if (!im)
		return;
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 16;
		p->items = xrealloc(p->items, p->cap * sizeof *p->items);
	}
	p->items[p->n++] = im;
}

static int
pending_run(struct store *st, struct store_job *job)
{
	struct pending *p = container_of(job, struct pending, job);
	return store_offline_load(st, p->bare, p->after, wall_ms(), 20, pending_collect, p);
}

static void
pending_end(struct pending *p)
{
	struct sip_aor *a = sip_aor_get(p->bare);

	for (size_t i = p->next; i < p->n; i++)
		im_free(p->items[i]);
	free(p->items);
	free(p->bare);
	free(p);
	if (a) {
		a->delivering = false;
		if (!a->bindings)
			sip_aor_get(a->bare); /* the expiry sweep drops it */
	}
}

static void
pending_loaded(struct store_job *job)
{
	struct pending *p = container_of(job, struct pending, job);

	if (job->result < 0 || p->n == 0) {
		pending_end(p);
		return;
	}
	pending_next(p);
}

struct del_job {
	struct store_job job;
	char *owner;
	int64_t id;
};

static void delete_stored(const char *owner, int64_t id);

static int
del_run(struct store *st, struct store_job *job)
{
	struct del_job *d = container_of(job, struct del_job, job);
	return store_offline_delete_ids(st, d->owner, &d->id, 1);
}

static void
del_done(struct store_job *job)
{
	struct del_job *d = container_of(job, struct del_job, job);
	free(d->owner);
	free(d);
}

static void
pending_sent(void *arg, int status, const struct sip_msg *resp)
{
	struct pending *p = arg;
	struct sip_im *im = p->items[p->next];

	if (status < 200 || status >= 300) {
		/* R6: it stays stored, for the next registration (or an XMPP device). */
		log_info("sip: stored message for %s not taken (%d); kept", p->bare, status);
		pending_end(p);
		return;
	}
	/* R14: delivered, so deleted; the next one only now, to keep the order. */
	delete_stored(p->bare, im->stored);
	report_delivered(im);
	im_free(im);
	p->next++;
	pending_next(p);
}

static void
pending_next(struct pending *p)
{
	struct sip_aor *a = sip_aor_get(p->bare);

	if (!a || !a->bindings) {
		pending_end(p);
		return;
	}
	if (p->next == p->n) { /* this page is done: the next one */
		free(p->items);
		p->items = NULL;
		p->n = p->cap = p->next = 0;
		memset(&p->job, 0, sizeof p->job);
		p->job.run = pending_run;
		p->job.done = pending_loaded;
		worker_store(sip.w, &p->job);
		return;
	}
	send_to_binding(a->bindings, p->items[p->next], pending_sent, p);
}

void
sip_deliver_pending(struct sip_aor *a)
{
	struct pending *p;

	if (a->delivering)
		return;
	a->delivering = true;
	p = xcalloc(1, sizeof *p);
	p->bare = xstrdup(a->bare);
	p->job.run = pending_run;
	p->job.done = pending_loaded;
	worker_store(sip.w, &p->job);
}

/* ---- live: a message stored for an account goes to its SIP device as well ---- */

static void
delete_stored(const char *owner, int64_t id)
{
	struct del_job *d = xcalloc(1, sizeof *d);

	d->owner = xstrdup(owner);
	d->id = id;
	d->job.run = del_run;
	d->job.atomic = true;
	d->job.done = del_done;
	worker_store(sip.w, &d->job);
}

struct observed {
	char *owner, *stanza;
	size_t len;
	int64_t id;
};

static void
live_sent(void *arg, int status, const struct sip_msg *resp)
{
	struct sip_im *im = arg;

	/* The SIP device took it: the stored copy goes, as with an XMPP device's ack. */
	if (status >= 200 && status < 300) {
		delete_stored(im->to, im->stored);
		report_delivered(im);
	} else
		log_info("sip: message for %s not taken by its SIP device (%d); it stays stored",
			 im->to, status);
	im_free(im);
}

static void
observed_on_sip_worker(struct worker *w, void *arg)
{
	struct observed *o = arg;
	struct sip_aor *a = sip_aor_get(o->owner);
	bool from_sip = false;
	struct sip_im *im;

	/* While stored messages are going out they come in order with the rest (R14). */
	if (a && a->bindings && !a->delivering) {
		im = im_from_stored(o->stanza, o->len, o->owner, o->id, &from_sip);
		/* One that came from SIP was offered to the SIP device already (and failed). */
		if (im && !from_sip)
			send_to_binding(a->bindings, im, live_sent, im);
		else if (im)
			im_free(im);
	}
	free(o->owner);
	free(o->stanza);
	free(o);
}

void
sip_observe(struct worker *w, const char *owner, int64_t id, const char *stanza, size_t len)
{
	struct observed *o = xcalloc(1, sizeof *o);

	o->owner = xstrdup(owner);
	o->stanza = xstrndup(stanza, len);
	o->len = len;
	o->id = id;
	sip_call(w, observed_on_sip_worker, o);
}
