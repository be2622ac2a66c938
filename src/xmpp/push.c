/*
 * push: XEP-0357 push notifications. A client registers an app server (a JID and a node)
 * for its account; when a message worth storing reaches the account and no connected
 * session took it (all offline, or the ones that have it hibernate under XEP-0198; a
 * client that is merely CSI-inactive is connected), each app server gets a publish iq
 * with the urn:xmpp:push:summary form, routed like any stanza.
 *
 * Invariant: registrations live only in the store (read per notification, so they
 * survive restarts and need no cache to keep coherent); a notification never carries a
 * message body unless the client asked for it when enabling, and an error from an app
 * server removes the registration it answered (section 5).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_PUSH	      "urn:xmpp:push:0"
#define NS_PUBSUB     "http://jabber.org/protocol/pubsub"
#define NS_XDATA      "jabber:x:data"
#define NS_SUMMARY    "urn:xmpp:push:summary"
#define NS_PUBOPTS    "http://jabber.org/protocol/pubsub#publish-options"
#define PUSH_ID	      "push-" /* our publishes: push-<seq>-<node> */
#define NODE_MAX      1024
#define OPTIONS_MAX   4096
#define BODY_MAX      512	     /* characters of a body sent to an app server */
#define INCLUDE_BODY  "include-body" /* baton's opt-in field, see docs/protocols.md */
#define PUSH_PER_ACCT 16	     /* registrations an account may keep */

bool
push_is(const struct xml_node *st)
{
	return stanza_is(st, "iq") &&
	       (xml_child(st, "enable", NS_PUSH) || xml_child(st, "disable", NS_PUSH));
}

/* ---- enable / disable (section 4) ---- */

struct set_job {
	struct store_job job;
	struct session *s;
	struct xml_node *iq;
	char *owner, *jid, *node, *options;
	bool body, remove;
	size_t count;
};

static void
count_one(void *arg, const struct store_push *p)
{
	struct set_job *sj = arg;
	if (strcmp(p->jid, sj->jid) != 0 || strcmp(p->node, sj->node) != 0)
		sj->count++;
}

static int
set_run(struct store *st, struct store_job *job)
{
	struct set_job *sj = container_of(job, struct set_job, job);
	int r;

	if (sj->remove)
		return store_push_del(st, sj->owner, sj->jid, sj->node);
	if ((r = store_push_list(st, sj->owner, count_one, sj)) < 0)
		return r;
	if (sj->count >= PUSH_PER_ACCT)
		return STORE_EQUOTA;
	struct store_push p = {sj->jid, sj->node, sj->options, sj->body};
	return store_push_set(st, sj->owner, &p);
}

static void
set_done(struct store_job *job)
{
	struct set_job *sj = container_of(job, struct set_job, job);
	struct session *s = sj->s;

	session_unref(s);
	if (s->state != SS_CLOSED) {
		if (job->result == 0) {
			if (s->acct)
				s->acct->pushes = -1; /* counted again by the next notification */
			log_info("%s: push %s %s node %s", s->id,
				 sj->remove ? "disabled for" : "to", sj->jid,
				 sj->node ? sj->node : "(all)");
			session_reply(s, sj->iq, NULL);
		} else if (job->result == STORE_EQUOTA) {
			session_reply_error(s, sj->iq, "wait", "resource-constraint",
					    "Too many push registrations");
		} else {
			session_reply_error(s, sj->iq, "wait", "internal-server-error", NULL);
		}
		session_busy(s, false);
		session_process(s);
	}
	xml_free(sj->iq);
	free(sj->owner);
	free(sj->jid);
	free(sj->node);
	free(sj->options);
	free(sj);
}

/* A field's value of data form x, or NULL. */
static const char *
form_value(const struct xml_node *x, const char *var)
{
	for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f;
	     f = xml_next(f, "field", NS_XDATA)) {
		const char *v = xml_attr(f, "var");
		if (v && strcmp(v, var) == 0) {
			struct xml_node *val = xml_child(f, "value", NS_XDATA);
			return val && val->first && !val->first->name ? val->first->text : "";
		}
	}
	return NULL;
}

/*
 * The publish-options form to keep (serialized, "" if none) and whether bodies are allowed:
 * our include-body field is taken out, since it is for us and not for the app server.
 */
static char *
options_of(const struct xml_node *en, bool *body)
{
	struct xml_node *x = xml_child(en, "x", NS_XDATA), *copy;
	const char *ib;
	char *out;

	*body = false;
	if (!x)
		return xstrdup("");
	ib = form_value(x, INCLUDE_BODY);
	*body = ib && (strcmp(ib, "1") == 0 || strcmp(ib, "true") == 0);
	copy = xml_copy(x);
	for (struct xml_node *f = xml_child(copy, "field", NS_XDATA); f;) {
		struct xml_node *next = xml_next(f, "field", NS_XDATA);
		const char *v = xml_attr(f, "var");
		if (v && strcmp(v, INCLUDE_BODY) == 0) {
			xml_detach(f);
			xml_free(f);
		}
		f = next;
	}
	xml_set_attr(copy, "type", "submit");
	const struct buf *b = stanza_serialize(copy);
	out = xstrndup(buf_head(b), buf_used(b));
	xml_free(copy);
	return out;
}

void
push_iq(struct session *s, struct xml_node *st)
{
	struct xml_node *en = xml_child(st, "enable", NS_PUSH);
	struct xml_node *el = en ? en : xml_child(st, "disable", NS_PUSH);
	const char *type = xml_attr(st, "type");
	const char *jid_s = xml_attr(el, "jid");
	const char *node = xml_attr(el, "node");
	struct set_job *sj;
	struct jid j;

	if (!type || strcmp(type, "set") != 0) {
		session_reply_error(s, st, "cancel", "bad-request", NULL);
		xml_free(st);
		return;
	}
	/* Section 4: enable names the app server and a node; disable the server, maybe a node. */
	bool parsed = jid_s && jid_parse(jid_s, &j) == 0;
	if (!parsed || (en && (!node || !*node)) || (node && strlen(node) > NODE_MAX)) {
		if (parsed)
			jid_free(&j);
		session_reply_error(s, st, "modify", "bad-request",
				    en ? "enable needs a valid jid and a node"
				       : "disable needs a valid jid");
		xml_free(st);
		return;
	}
	sj = xcalloc(1, sizeof *sj);
	sj->jid = jid_full(&j);
	jid_free(&j);
	sj->s = s;
	sj->iq = st;
	sj->owner = xstrdup(s->bare);
	sj->node = node ? xstrdup(node) : NULL;
	sj->remove = en == NULL;
	if (en) {
		sj->options = options_of(en, &sj->body);
		if (strlen(sj->options) > OPTIONS_MAX) {
			session_reply_error(s, st, "modify", "not-acceptable",
					    "publish-options too large");
			sj->iq = NULL;
			sj->s = NULL;
			xml_free(st);
			free(sj->owner);
			free(sj->jid);
			free(sj->node);
			free(sj->options);
			free(sj);
			return;
		}
	}
	sj->job.run = set_run;
	sj->job.done = set_done;
	s->jobs++;
	session_busy(s, true);
	worker_store(s->w, &sj->job);
}

/* ---- notifications (section 5) ---- */

struct notify_job {
	struct store_job job;
	struct worker *w;
	char *owner, *sender, *body;
	long count;
	struct store_push *regs; /* copied out of the store */
	size_t n, cap;
};

static void
keep_reg(void *arg, const struct store_push *p)
{
	struct notify_job *nj = arg;

	if (nj->n == nj->cap) {
		nj->cap = nj->cap ? nj->cap * 2 : 4;
		nj->regs = xrealloc(nj->regs, nj->cap * sizeof *nj->regs);
	}
	nj->regs[nj->n++] =
	    (struct store_push){xstrdup(p->jid), xstrdup(p->node), xstrdup(p->options), p->body};
}

static int
notify_run(struct store *st, struct store_job *job)
{
	struct notify_job *nj = container_of(job, struct notify_job, job);
	int r = store_push_list(st, nj->owner, keep_reg, nj);

	if (r == 0 && nj->n > 0)
		nj->count = store_offline_count(st, nj->owner);
	return r;
}

static void
add_field(struct xml_node *x, const char *var, const char *value)
{
	struct xml_node *f = xml_add_el(x, "field", NS_XDATA);

	xml_set_attr(f, "var", var);
	xml_add_text(xml_add_el(f, "value", NS_XDATA), value, strlen(value));
}

/* The publish iq of section 5 for registration p. Caller owns it. */
static struct xml_node *
publish_iq(struct notify_job *nj, const struct store_push *p)
{
	char id[64 + NODE_MAX], count[32];
	struct xml_node *iq, *ps, *pub, *x;

	snprintf(id, sizeof id, PUSH_ID "%lu-%s", ++nj->w->push_seq, p->node);
	iq = stanza_new("iq", nj->owner, p->jid, "set", id);
	ps = xml_add_el(iq, "pubsub", NS_PUBSUB);
	pub = xml_add_el(ps, "publish", NS_PUBSUB);
	xml_set_attr(pub, "node", p->node);
	x = xml_add_el(xml_add_el(xml_add_el(pub, "item", NS_PUBSUB), "notification", NS_PUSH), "x",
		       NS_XDATA);
	xml_set_attr(x, "type", "submit");
	add_field(x, "FORM_TYPE", NS_SUMMARY);
	snprintf(count, sizeof count, "%ld", nj->count > 0 ? nj->count : 1);
	add_field(x, "message-count", count);
	if (nj->sender)
		add_field(x, "last-message-sender", nj->sender);
	/* Section 8: bodies leave the server only where the client asked for them. */
	if (p->body && nj->body)
		add_field(x, "last-message-body", nj->body);
	if (p->options && *p->options) {
		struct xml_node *opts = xml_parse(p->options, strlen(p->options));
		if (opts)
			xml_add_child(xml_add_el(ps, "publish-options", NS_PUBSUB), opts);
	}
	return iq;
}

static void
notify_done(struct store_job *job)
{
	struct notify_job *nj = container_of(job, struct notify_job, job);
	struct account *a = hmap_get(&nj->w->accounts, nj->owner);

	if (a && job->result == 0)
		a->pushes = (int)nj->n;
	for (size_t i = 0; i < nj->n; i++) {
		struct store_push *p = &nj->regs[i];
		if (job->result == 0 && !nj->w->stopping) {
			log_debug("push: %s: notifying %s node %s", nj->owner, p->jid, p->node);
			route(nj->w, publish_iq(nj, p));
		}
		free((char *)p->jid);
		free((char *)p->node);
		free((char *)p->options);
	}
	free(nj->regs);
	free(nj->owner);
	free(nj->sender);
	free(nj->body);
	free(nj);
}

/* A copy of the body, cut at BODY_MAX characters (UTF-8 aware); NULL without one. */
static char *
body_of(const struct xml_node *st)
{
	struct xml_node *b = xml_child(st, "body", NS_CLIENT);
	char *text = b ? xml_text(b) : NULL;
	size_t i = 0, chars = 0;

	if (!text)
		return NULL;
	while (text[i] && chars < BODY_MAX) {
		i++;
		while ((text[i] & 0xC0) == 0x80)
			i++;
		chars++;
	}
	text[i] = '\0';
	return text;
}

void
push_message(struct account *a, const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	struct notify_job *nj;

	if (type && (strcmp(type, "error") == 0 || strcmp(type, "groupchat") == 0 ||
		     strcmp(type, "headline") == 0))
		return;
	if (!offline_worth_storing(st) || a->pushes == 0)
		return; /* no app server to tell: no storage work per message either */
	/* A connected session took it (CSI-inactive ones too): nobody needs waking up. */
	for (struct session *s = a->sessions; s; s = s->acct_next)
		if (s->delivered && s->tp)
			return;
	nj = xcalloc(1, sizeof *nj);
	nj->w = a->w;
	nj->owner = xstrdup(a->bare);
	nj->sender = xml_attr(st, "from") ? xstrdup(xml_attr(st, "from")) : NULL;
	nj->body = body_of(st);
	nj->job.run = notify_run;
	nj->job.done = notify_done;
	worker_store(a->w, &nj->job);
}

/* ---- the app server's answer ---- */

struct drop_job {
	struct store_job job;
	char *owner, *jid, *node;
};

static int
drop_run(struct store *st, struct store_job *job)
{
	struct drop_job *dj = container_of(job, struct drop_job, job);
	return store_push_del(st, dj->owner, dj->jid, dj->node);
}

static void
drop_done(struct store_job *job)
{
	struct drop_job *dj = container_of(job, struct drop_job, job);

	free(dj->owner);
	free(dj->jid);
	free(dj->node);
	free(dj);
}

bool
push_is_result(const struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	const char *id = xml_attr(st, "id");

	return stanza_is(st, "iq") && type &&
	       (strcmp(type, "result") == 0 || strcmp(type, "error") == 0) && id &&
	       strncmp(id, PUSH_ID, strlen(PUSH_ID)) == 0;
}

void
push_result(struct account *a, struct xml_node *st, const struct jid *from)
{
	const char *id = xml_attr(st, "id") + strlen(PUSH_ID);
	const char *node = strchr(id, '-');
	struct drop_job *dj;

	/* Section 5: an error means the app server no longer wants these; stop sending them. */
	if (stanza_is_error(st) && node && node[1]) {
		dj = xcalloc(1, sizeof *dj);
		dj->owner = xstrdup(a->bare);
		dj->jid = jid_full(from);
		dj->node = xstrdup(node + 1);
		log_info("push: %s: %s refused a notification: registration for node %s removed",
			 a->bare, dj->jid, dj->node);
		a->pushes = -1;
		dj->job.run = drop_run;
		dj->job.done = drop_done;
		dj->job.atomic = true;
		worker_store(a->w, &dj->job);
	}
	xml_free(st);
}
