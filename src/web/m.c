/*
 * m: the web client without JavaScript at /m/ (seed 002's thin client): HTML pages for
 * WAP and HTML browsers and text terminals, over a server-side session object keyed by a
 * cookie. The object is an ordinary client session of the xmpp module whose transport is
 * this file: what the session writes is parsed into contacts, presence and conversations,
 * and each form a user submits becomes a stanza, so /m/ users and XMPP users meet as
 * equals. Pages refresh themselves; the object outlives pages and lost networks for
 * thin.hold.
 *
 * Invariant: everything from outside that reaches a page (names, JIDs, message text) is
 * HTML-escaped there, and every state-changing request is a POST carrying the form token
 * of its session (or, for the login, of the login cookie), so neither XSS nor CSRF works.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "web_int.h"

#define M_LINES	       100  /* lines kept per conversation */
#define M_HISTORY      30   /* archived messages fetched when a conversation opens */
#define M_WAIT_MS      3000 /* how long a page waits for the session (login, history) */
#define M_COOKIE       "baton_m"
#define M_LOGIN_COOKIE "baton_mlogin"
#define NS_ROSTER      "jabber:iq:roster"
#define NS_MAM	       "urn:xmpp:mam:2"
#define NS_MUC	       "http://jabber.org/protocol/muc"
#define NS_MUC_USER    "http://jabber.org/protocol/muc#user"
#define NS_CARBONS     "urn:xmpp:carbons:2"
#define NS_FORWARD     "urn:xmpp:forward:0"
#define NS_DELAY       "urn:xmpp:delay"
#define NS_SID	       "urn:xmpp:sid:0"
#define NS_SASL	       "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND	       "urn:ietf:params:xml:ns:xmpp-bind"

struct line {
	int64_t at;
	bool out;
	char *who; /* sender: a nick in rooms, a bare JID otherwise */
	char *text;
	char *id; /* archive id (XEP-0359), to merge history without doubles */
};

struct convo {
	char *jid; /* bare JID of the contact or the room */
	bool room;
	bool in_roster;
	char *name, *sub;
	bool asks;	       /* asked to see our presence */
	struct hmap resources; /* full JID -> show ("" = available) */
	char *status;
	struct line lines[M_LINES]; /* a ring: the oldest is at head */
	unsigned n, head;
	unsigned unread;
	bool history; /* the archive was asked */
	char *nick;   /* rooms: ours */
	bool joined;
	char *subject;
};

enum m_state { M_AUTH, M_BIND, M_READY, M_ENDED };

struct msess {
	char key[33];  /* the cookie */
	char csrf[33]; /* secret behind the form tokens */
	struct worker *w;
	struct session *s;
	const struct config *cfg;
	char peer[64];
	bool secure;
	enum m_state state;
	char *jid; /* full, once bound */
	char *bare;
	char *ended; /* why the session ended */
	/* a page waiting for the session: the login, or a conversation's history */
	struct http_conn *waiting;
	struct http_request *waiting_req;
	char *waiting_with;
	char qid[17];
	struct line *hist; /* archived messages arriving for qid */
	unsigned nhist;
	struct timer wait_timer;
	struct hmap convos; /* bare JID -> struct convo */
	struct timer hold;  /* thin.hold since the last request */
	struct timer bind;  /* SASL succeeded: restart the stream and bind, next turn */
	unsigned seq;
	bool feeding, released;
};

static void m_feed(struct msess *m, const char *data, size_t len);
static void answer_waiting(struct msess *m);

/* ---- pages ---- */

static const char page_headers[] =
    "Content-Type: text/html; charset=utf-8\r\n"
    "Cache-Control: no-store\r\n"
    "X-Frame-Options: DENY\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'\r\n";

static void
page_begin(struct buf *b, const char *title, unsigned refresh, const char *refresh_url)
{
	buf_puts(b, "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
		    "<meta name='viewport' content='width=device-width'>");
	if (refresh) {
		buf_printf(b, "<meta http-equiv='refresh' content='%u", refresh);
		if (refresh_url) {
			buf_puts(b, ";url=");
			web_html(b, refresh_url);
		}
		buf_puts(b, "'>");
	}
	buf_puts(b, "<title>");
	web_html(b, title);
	buf_puts(b, " - baton</title><style>body{font-family:sans-serif;max-width:40em;margin:auto;"
		    "padding:.5em}.out{color:#225}.in{color:#522}.meta{color:#777;font-size:small}"
		    "</style></head><body>\n");
}

static void
page_end(struct http_conn *hc, struct buf *b, const char *extra_headers)
{
	struct buf h = {0};

	buf_puts(b, "</body></html>\n");
	buf_puts(&h, page_headers);
	if (extra_headers)
		buf_puts(&h, extra_headers);
	http_respond(hc, 200, buf_head(&h), buf_head(b), buf_used(b));
	buf_free(&h);
	buf_free(b);
}

static void
redirect(struct http_conn *hc, const char *to, const char *extra_headers)
{
	struct buf h = {0};

	/* RFC 9110 15.4.4: after a POST, the browser GETs the page. */
	buf_printf(&h, "Location: %s\r\nCache-Control: no-store\r\n", to);
	if (extra_headers)
		buf_puts(&h, extra_headers);
	http_respond(hc, 303, buf_head(&h), NULL, 0);
	buf_free(&h);
}

static void
hidden_token(struct buf *b, const char *secret, const char *form)
{
	char t[33];

	web_form_token(secret, form, t);
	buf_printf(b, "<input type='hidden' name='token' value='%s'>", t);
}

static void
login_page(const struct config *cfg, struct http_conn *hc, struct http_request *req,
	   const char *error)
{
	char *user = strcmp(req->method, "POST") == 0
			 ? web_form_get(buf_head(&req->body), buf_used(&req->body), "user")
			 : NULL;
	char *tok = web_cookie_get(req, M_LOGIN_COOKIE);
	char fresh[33], cookie[160];
	struct buf b = {0};

	if (!tok || strlen(tok) != 32) {
		free(tok);
		rand_id(fresh, 32);
		tok = xstrdup(fresh);
	}
	/* Login CSRF: the form's token must match a cookie only this browser has. */
	snprintf(cookie, sizeof cookie,
		 "Set-Cookie: " M_LOGIN_COOKIE "=%s; Path=/m/; HttpOnly; SameSite=Strict%s\r\n",
		 tok, strcmp(cfg->http_secure, "true") == 0 ? "; Secure" : "");
	page_begin(&b, "Log in", 0, NULL);
	buf_puts(&b, "<h1>");
	web_html(&b, cfg->domain);
	buf_puts(&b, "</h1>");
	if (!error && req->query && strcmp(req->query, "out=1") == 0)
		error = "You are logged out.";
	if (error) {
		buf_puts(&b, "<p><strong>");
		web_html(&b, error);
		buf_puts(&b, "</strong></p>");
	}
	buf_puts(&b, "<form method='post' action='/m/login'>");
	hidden_token(&b, tok, "login");
	buf_puts(&b, "<p><label>User <input name='user' autocomplete='username' value='");
	web_html(&b, user ? user : "");
	buf_puts(&b, "'></label></p>"
		     "<p><label>Password <input type='password' name='password' "
		     "autocomplete='current-password'></label></p>"
		     "<p><input type='submit' value='Log in'></p></form>");
	page_end(hc, &b, cookie);
	free(tok);
	free(user);
}

/* ---- conversations ---- */

static struct convo *
convo_get(struct msess *m, const char *jid, bool create)
{
	struct convo *c = hmap_get(&m->convos, jid);

	if (!c && create) {
		c = xcalloc(1, sizeof *c);
		c->jid = xstrdup(jid);
		hmap_put(&m->convos, jid, c);
	}
	return c;
}

static void
line_free(struct line *l)
{
	free(l->who);
	free(l->text);
	free(l->id);
	*l = (struct line){0};
}

static void
convo_add(struct convo *c, int64_t at, bool out, const char *who, const char *text, const char *id)
{
	struct line *l;

	if (c->n == M_LINES) {
		line_free(&c->lines[c->head]);
		c->head = (c->head + 1) % M_LINES;
		c->n--;
	}
	l = &c->lines[(c->head + c->n) % M_LINES];
	c->n++;
	l->at = at;
	l->out = out;
	l->who = xstrdup(who ? who : "");
	l->text = xstrdup(text);
	l->id = id ? xstrdup(id) : NULL;
	if (!out)
		c->unread++;
}

static void
convo_free(struct convo *c)
{
	const char *k;
	void *v;

	for (unsigned i = 0; i < M_LINES; i++)
		line_free(&c->lines[i]);
	for (size_t it = 0; hmap_next(&c->resources, &it, &k, &v);)
		free(v);
	hmap_free(&c->resources);
	free(c->jid);
	free(c->name);
	free(c->sub);
	free(c->status);
	free(c->nick);
	free(c->subject);
	free(c);
}

/* ---- stanzas to the session ---- */

static void
send_stanza(struct msess *m, struct xml_node *st)
{
	struct buf b = {0};

	xml_write(&b, st, NULL);
	xml_free(st);
	m_feed(m, buf_head(&b), buf_used(&b));
	buf_free(&b);
}

static void
add_text_el(struct xml_node *parent, const char *name, const char *text)
{
	struct xml_node *el = xml_add_el(parent, name, NULL);
	xml_add_text(el, text, strlen(text));
}

/* ---- what the session writes: parsed into the model ---- */

static int64_t
delay_of(const struct xml_node *st)
{
	/* XEP-0203: shown at the time it was first sent, not when it reached us. */
	const struct xml_node *d = xml_child(st, "delay", NS_DELAY);
	const char *stamp = d ? xml_attr(d, "stamp") : NULL;
	struct tm tm = {0};

	if (stamp && strptime(stamp, "%Y-%m-%dT%H:%M:%S", &tm))
		return (int64_t)timegm(&tm) * 1000;
	return wall_ms();
}

static char *
bare_of(const char *jid)
{
	struct jid j;
	char *bare;

	if (!jid || jid_parse(jid, &j) < 0)
		return NULL;
	bare = jid_bare(&j);
	jid_free(&j);
	return bare;
}

static void
on_message(struct msess *m, struct xml_node *st, bool carbon_sent)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *body = xml_child(st, "body", NS_CLIENT);
	struct xml_node *sid = xml_child(st, "stanza-id", NS_SID);
	struct xml_node *fwd, *inner;
	char *from = NULL, *text;
	struct convo *c;

	/* XEP-0280: copies of what our other devices sent and received. */
	if ((fwd = xml_child(st, "sent", NS_CARBONS)) ||
	    (fwd = xml_child(st, "received", NS_CARBONS))) {
		bool sent = strcmp(fwd->name, "sent") == 0;
		struct xml_node *f = xml_child(fwd, "forwarded", NS_FORWARD);
		inner = f ? xml_child(f, "message", NS_CLIENT) : NULL;
		char *b = bare_of(xml_attr(st, "from"));
		if (inner && b && strcmp(b, m->bare) == 0)
			on_message(m, inner, sent);
		free(b);
		return;
	}
	if (!body)
		return;
	text = xml_text(body);
	if (type && strcmp(type, "groupchat") == 0) {
		struct jid j;
		if (jid_parse(xml_attr(st, "from") ? xml_attr(st, "from") : "", &j) == 0) {
			char *room = jid_bare(&j);
			c = convo_get(m, room, true);
			c->room = true;
			convo_add(c, delay_of(st),
				  c->nick && j.resource && strcmp(j.resource, c->nick) == 0,
				  j.resource ? j.resource : room, text,
				  sid ? xml_attr(sid, "id") : NULL);
			free(room);
			jid_free(&j);
		}
	} else if (type && strcmp(type, "error") == 0) {
		/* shown in the conversation, so a failed send is not silent */
		if ((from = bare_of(xml_attr(st, "from")))) {
			c = convo_get(m, from, true);
			size_t n = strlen(text) + 40;
			char *t = xmalloc(n);
			snprintf(t, n, "(not delivered) %s", text);
			convo_add(c, wall_ms(), false, "error", t, NULL);
			free(t);
		}
	} else {
		from = bare_of(xml_attr(st, carbon_sent ? "to" : "from"));
		if (from) {
			c = convo_get(m, from, true);
			convo_add(c, delay_of(st), carbon_sent, carbon_sent ? m->bare : from, text,
				  sid ? xml_attr(sid, "id") : NULL);
		}
	}
	free(from);
	free(text);
}

static void
on_roster_item(struct msess *m, const struct xml_node *item)
{
	const char *jid = xml_attr(item, "jid");
	const char *sub = xml_attr(item, "subscription");
	struct convo *c;

	if (!jid)
		return;
	if (sub && strcmp(sub, "remove") == 0) {
		if ((c = convo_get(m, jid, false)))
			c->in_roster = false;
		return;
	}
	c = convo_get(m, jid, true);
	c->in_roster = true;
	free(c->name);
	c->name = xml_attr(item, "name") ? xstrdup(xml_attr(item, "name")) : NULL;
	free(c->sub);
	c->sub = xstrdup(sub ? sub : "none");
}

static void
on_presence(struct msess *m, struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	const char *from = xml_attr(st, "from");
	char *bare = bare_of(from);
	struct convo *c;

	if (!bare)
		return;
	c = convo_get(m, bare, true);
	if (type && strcmp(type, "subscribe") == 0) {
		c->asks = true;
	} else if (!type || strcmp(type, "unavailable") == 0) {
		struct xml_node *show = xml_child(st, "show", NS_CLIENT);
		struct xml_node *status = xml_child(st, "status", NS_CLIENT);
		free(hmap_del(&c->resources, from));
		if (!type)
			hmap_put(&c->resources, from, show ? xml_text(show) : xstrdup(""));
		if (status) {
			free(c->status);
			c->status = xml_text(status);
		}
		if (c->room && c->nick && type) {
			struct jid j;
			if (jid_parse(from, &j) == 0) {
				if (j.resource && strcmp(j.resource, c->nick) == 0)
					c->joined = false;
				jid_free(&j);
			}
		} else if (c->room && xml_child(st, "x", NS_MUC_USER)) {
			c->joined = true;
		}
	} else if (type && strcmp(type, "error") == 0 && c->room) {
		c->joined = false;
		convo_add(c, wall_ms(), false, "error", "could not join the room", NULL);
	}
	free(bare);
}

static void
reply_iq(struct msess *m, const struct xml_node *iq, bool ok)
{
	struct xml_node *r = stanza_new("iq", NULL, xml_attr(iq, "from"), ok ? "result" : "error",
					xml_attr(iq, "id"));

	if (!ok) {
		/* RFC 6120 8.4: a thin client offers no services to others. */
		struct xml_node *e = xml_add_el(r, "error", NULL);
		xml_set_attr(e, "type", "cancel");
		xml_add_el(e, "service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas");
	}
	send_stanza(m, r);
}

static void
after_bind(struct msess *m)
{
	struct xml_node *st;

	st = stanza_new("iq", NULL, NULL, "get", "m-roster");
	xml_add_el(st, "query", NS_ROSTER);
	send_stanza(m, st);
	st = stanza_new("iq", NULL, NULL, "set", "m-carbons");
	xml_add_el(st, "enable", NS_CARBONS);
	send_stanza(m, st);
	send_stanza(m, stanza_new("presence", NULL, NULL, NULL, NULL));
}

static void
on_iq(struct msess *m, struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	const char *id = xml_attr(st, "id");
	struct xml_node *q;

	if (!type || !id)
		return;
	if (strcmp(type, "get") == 0 || strcmp(type, "set") == 0) {
		q = xml_child(st, "query", NS_ROSTER);
		if (q && strcmp(type, "set") == 0) { /* RFC 6121 2.1.6: a roster push */
			for (struct xml_node *it = xml_child(q, "item", NS_ROSTER); it;
			     it = xml_next(it, "item", NS_ROSTER))
				on_roster_item(m, it);
			reply_iq(m, st, true);
		} else if (xml_child(st, "ping", "urn:xmpp:ping")) {
			reply_iq(m, st, true);
		} else {
			reply_iq(m, st, false);
		}
		return;
	}
	if (strcmp(id, "m-bind") == 0 && strcmp(type, "result") == 0) {
		struct xml_node *b = xml_child(st, "bind", NS_BIND);
		struct xml_node *j = b ? xml_child(b, "jid", NS_BIND) : NULL;
		m->jid = j ? xml_text(j) : xstrdup("");
		m->bare = bare_of(m->jid);
		if (!m->bare)
			m->bare = xstrdup("");
		m->state = M_READY;
		after_bind(m);
		answer_waiting(m);
	} else if (strcmp(id, "m-roster") == 0 && (q = xml_child(st, "query", NS_ROSTER))) {
		for (struct xml_node *it = xml_child(q, "item", NS_ROSTER); it;
		     it = xml_next(it, "item", NS_ROSTER))
			on_roster_item(m, it);
	} else if (*m->qid && strcmp(id, m->qid) == 0) {
		answer_waiting(m); /* the archive page is complete (or refused) */
	}
}

/* XEP-0313 4.2: one archived message of the query we made. */
static bool
on_archive_result(struct msess *m, struct xml_node *st)
{
	struct xml_node *r = xml_child(st, "result", NS_MAM);
	struct xml_node *f = r ? xml_child(r, "forwarded", NS_FORWARD) : NULL;
	struct xml_node *msg = f ? xml_child(f, "message", NS_CLIENT) : NULL;
	struct xml_node *body = msg ? xml_child(msg, "body", NS_CLIENT) : NULL;

	if (!r)
		return false;
	if (!*m->qid || !xml_attr(r, "queryid") || strcmp(xml_attr(r, "queryid"), m->qid) != 0 ||
	    !body)
		return true;
	char *from = bare_of(xml_attr(msg, "from"));
	struct line *l;
	m->hist = xrealloc(m->hist, (m->nhist + 1) * sizeof *m->hist);
	l = &m->hist[m->nhist++];
	*l = (struct line){0};
	l->at = delay_of(f);
	l->out = from && strcmp(from, m->bare) == 0;
	l->who = from ? from : xstrdup("");
	l->text = xml_text(body);
	l->id = xml_attr(r, "id") ? xstrdup(xml_attr(r, "id")) : NULL;
	return true;
}

static void
on_element(struct msess *m, struct xml_node *el)
{
	if (strcmp(el->ns, NS_SASL) == 0) {
		if (strcmp(el->name, "success") == 0) {
			/*
			 * The session restarts its stream (and may move to its account's
			 * worker) once this returns; the new stream is opened after that.
			 */
			m->state = M_BIND;
			timer_start(worker_loop(m->w), &m->bind, 0);
		} else if (strcmp(el->name, "failure") == 0) {
			free(m->ended);
			m->ended = xstrdup(xml_child(el, "encryption-required", NULL)
					       ? "This server accepts passwords only over HTTPS."
					       : "Wrong user name or password.");
			m->state = M_ENDED;
			answer_waiting(m);
			m_feed(m, "</stream:stream>", 16);
		}
		return;
	}
	if (strcmp(el->ns, NS_CLIENT) != 0)
		return;
	if (strcmp(el->name, "message") == 0) {
		if (!on_archive_result(m, el))
			on_message(m, el, false);
	} else if (strcmp(el->name, "presence") == 0) {
		on_presence(m, el);
	} else if (strcmp(el->name, "iq") == 0) {
		on_iq(m, el);
	}
}

/* ---- the transport the session writes to ---- */

static void
mt_open(void *t, const char *id, const char *from, const char *to)
{
}

static void
mt_element(void *t, const char *data, size_t len)
{
	struct msess *m = t;
	struct buf b = {0};
	struct xml_node *el;

	c2s_frame_element(&b, data, len);
	el = xml_parse(buf_head(&b), buf_used(&b));
	buf_free(&b);
	if (!el)
		return;
	if (strcmp(el->name, "error") == 0 && strcmp(el->ns, NS_STREAM) == 0) {
		free(m->ended);
		m->ended = xstrdup(xml_child(el, "conflict", NULL)
				       ? "Your session was replaced by another login."
				       : "The server ended your session.");
	} else {
		on_element(m, el);
	}
	xml_free(el);
}

static void
mt_end(void *t)
{
	struct msess *m = t;

	m->state = M_ENDED;
}

static void
m_free(struct msess *m)
{
	const char *k;
	void *v;

	for (size_t it = 0; hmap_next(&m->convos, &it, &k, &v);)
		convo_free(v);
	hmap_free(&m->convos);
	for (unsigned i = 0; i < m->nhist; i++)
		line_free(&m->hist[i]);
	free(m->hist);
	free(m->waiting_with);
	free(m->jid);
	free(m->bare);
	free(m->ended);
	free(m);
}

static void
mt_release(void *t)
{
	struct msess *m = t;
	struct loop *loop = worker_loop(m->w);

	web_obj_del(m->key);
	m->state = M_ENDED;
	m->s = NULL;
	if (m->waiting)
		answer_waiting(m);
	timer_stop(loop, &m->hold);
	timer_stop(loop, &m->wait_timer);
	timer_stop(loop, &m->bind);
	if (m->feeding)
		m->released = true;
	else
		m_free(m);
}

static size_t
mt_pending(void *t)
{
	return 0; /* what the session writes is in the model at once */
}

static void
mt_pause(void *t, bool paused)
{
}

static void
mt_detach(void *t)
{
	struct msess *m = t;
	struct loop *loop = worker_loop(m->w);

	/* The session moves to its account's worker (from a mail, never inside HTTP code). */
	web_obj_move(m->key, NULL);
	timer_stop(loop, &m->hold);
	timer_stop(loop, &m->wait_timer);
	timer_stop(loop, &m->bind);
	if (m->waiting)
		http_detach(m->waiting);
}

static void
mt_attach(void *t, struct loop *loop)
{
	struct msess *m = t;

	m->w = loop_data(loop);
	if (m->waiting) {
		http_attach(m->waiting, loop);
		timer_start(loop, &m->wait_timer, M_WAIT_MS);
	}
	timer_start(loop, &m->hold, m->cfg->thin_hold);
	if (m->state == M_BIND)
		timer_start(loop, &m->bind, 0);
	web_obj_move(m->key, m->w);
}

static bool
mt_secure(void *t)
{
	return ((struct msess *)t)->secure;
}

static const char *
mt_peer(void *t)
{
	return ((struct msess *)t)->peer;
}

static const struct c2s_transport m_transport = {
    .name = "web",
    .open = mt_open,
    .element = mt_element,
    .end = mt_end,
    .release = mt_release,
    .pending = mt_pending,
    .pause = mt_pause,
    .detach = mt_detach,
    .attach = mt_attach,
    .secure = mt_secure,
    .starttls = NULL,
    .peer = mt_peer,
};

/* Feeds the session; m may be released meanwhile, then it is freed here. */
static void
m_feed(struct msess *m, const char *data, size_t len)
{
	bool outer = !m->feeding;

	if (!m->s)
		return;
	m->feeding = true;
	c2s_input(m->s, data, len);
	if (!outer)
		return;
	m->feeding = false;
	if (m->released)
		m_free(m);
}

/* ---- the pages of a session ---- */

static const char *
show_of(struct convo *c)
{
	/* RFC 6121 3: without a subscription there is no presence to show. */
	if (!c->resources.count &&
	    (!c->sub || (strcmp(c->sub, "to") != 0 && strcmp(c->sub, "both") != 0)))
		return "presence not shared";
	const char *k;
	void *v;
	const char *best = NULL;

	for (size_t it = 0; hmap_next(&c->resources, &it, &k, &v);) {
		const char *show = v;
		if (!best || !*show)
			best = show;
	}
	if (!best)
		return "offline";
	return *best ? best : "online";
}

static void
nav(struct buf *b, struct msess *m)
{
	/* A div, not a p: a form inside a p would end the paragraph (HTML parsing rules). */
	buf_puts(b, "<div class='meta'><a href='/m/'>Contacts</a> | ");
	web_html(b, m->bare);
	buf_puts(b, " <form method='post' action='/m/logout' style='display:inline'>");
	hidden_token(b, m->csrf, "logout");
	buf_puts(b, "<input type='submit' value='Log out'></form></div>\n");
}

static void
contacts_page(struct msess *m, struct http_conn *hc)
{
	struct buf b = {0};
	const char *k;
	void *v;

	page_begin(&b, "Contacts", 15, NULL);
	nav(&b, m);
	buf_puts(&b, "<h1>Contacts</h1><ul>");
	unsigned shown = 0;
	for (size_t it = 0; hmap_next(&m->convos, &it, &k, &v);) {
		struct convo *c = v;
		if (c->room || (!c->in_roster && !c->n))
			continue;
		shown++;
		buf_puts(&b, "<li><a href='/m/chat?with=");
		web_urlenc(&b, c->jid);
		buf_puts(&b, "'>");
		web_html(&b, c->name && *c->name ? c->name : c->jid);
		buf_puts(&b, "</a> <span class='meta'>");
		web_html(&b, show_of(c));
		if (c->unread)
			buf_printf(&b, ", <strong>%u new</strong>", c->unread);
		buf_puts(&b, "</span></li>");
	}
	buf_puts(&b, "</ul>");
	if (!shown)
		buf_puts(&b, "<p>No contacts yet: add one below.</p>");
	for (size_t it = 0; hmap_next(&m->convos, &it, &k, &v);) {
		struct convo *c = v;
		if (!c->asks)
			continue;
		buf_puts(&b, "<form method='post' action='/m/approve'><p>");
		web_html(&b, c->jid);
		buf_puts(&b,
			 " wants to see your presence. <input type='hidden' name='jid' value='");
		web_html(&b, c->jid);
		buf_puts(&b, "'>");
		hidden_token(&b, m->csrf, "approve");
		buf_puts(&b, "<input type='submit' value='Allow'></p></form>");
	}
	buf_puts(&b, "<h2>Rooms</h2><ul>");
	for (size_t it = 0; hmap_next(&m->convos, &it, &k, &v);) {
		struct convo *c = v;
		if (!c->room)
			continue;
		buf_puts(&b, "<li><a href='/m/chat?with=");
		web_urlenc(&b, c->jid);
		buf_puts(&b, "'>");
		web_html(&b, c->jid);
		buf_puts(&b, "</a>");
		if (c->unread)
			buf_printf(&b, " <span class='meta'><strong>%u new</strong></span>",
				   c->unread);
		buf_puts(&b, "</li>");
	}
	buf_puts(&b, "</ul><form method='post' action='/m/join'><p>");
	hidden_token(&b, m->csrf, "join");
	buf_printf(&b,
		   "<label>Room <input name='room' placeholder='name@conference.%s'></label> "
		   "<label>Nick <input name='nick' value='",
		   m->cfg->domain);
	buf_append(&b, m->bare, strcspn(m->bare, "@")); /* a localpart needs no escaping */
	buf_puts(&b, "'></label> <input type='submit' value='Join'></p></form>"
		     "<h2>Add a contact</h2><form method='post' action='/m/add'><p>");
	hidden_token(&b, m->csrf, "add");
	buf_puts(&b, "<label>Address <input name='jid'></label> "
		     "<input type='submit' value='Add'></p></form>");
	page_end(hc, &b, NULL);
}

static void
chat_page(struct msess *m, struct http_conn *hc, struct convo *c, bool still)
{
	struct buf b = {0}, url = {0};
	char when[32];

	buf_puts(&url, "/m/chat?with=");
	web_urlenc(&url, c->jid);
	page_begin(&b, c->name && *c->name ? c->name : c->jid, still ? 0 : 20, buf_head(&url));
	nav(&b, m);
	buf_puts(&b, "<h1>");
	web_html(&b, c->name && *c->name ? c->name : c->jid);
	buf_puts(&b, "</h1><p class='meta'>");
	if (c->room) {
		web_html(&b, c->joined ? "in the room as " : "not in the room");
		if (c->joined)
			web_html(&b, c->nick);
	} else {
		web_html(&b, c->jid);
		buf_puts(&b, ", ");
		web_html(&b, show_of(c));
		if (c->status) {
			buf_puts(&b, ": ");
			web_html(&b, c->status);
		}
	}
	buf_puts(&b, "</p>\n");
	for (unsigned i = 0; i < c->n; i++) {
		struct line *l = &c->lines[(c->head + i) % M_LINES];
		time_format(l->at, when, sizeof when);
		when[16] = '\0'; /* to the minute */
		buf_printf(&b, "<p class='%s'><span class='meta'>%s UTC ", l->out ? "out" : "in",
			   when + 11);
		web_html(&b, l->out && !c->room ? "me" : l->who);
		buf_puts(&b, ":</span> ");
		web_html(&b, l->text);
		buf_puts(&b, "</p>\n");
	}
	c->unread = 0;
	buf_puts(&b, "<form method='post' action='/m/send'><p>");
	hidden_token(&b, m->csrf, "send");
	buf_puts(&b, "<input type='hidden' name='with' value='");
	web_html(&b, c->jid);
	buf_puts(&b,
		 "'><label>Message <textarea name='body' rows='2' cols='40'></textarea></label> "
		 "<input type='submit' value='Send'></p></form>");
	buf_puts(&b, "<p class='meta'>");
	if (still) {
		buf_puts(&b, "<a href='");
		web_html(&b, buf_head(&url));
		buf_puts(&b, "'>refresh automatically</a>");
	} else {
		buf_puts(&b, "<a href='");
		web_html(&b, buf_head(&url));
		buf_puts(&b, "&amp;still=1'>stop refreshing while I write</a>");
	}
	buf_puts(&b, "</p>");
	if (c->room && c->joined) {
		buf_puts(&b, "<form method='post' action='/m/leave'><p>");
		hidden_token(&b, m->csrf, "leave");
		buf_puts(&b, "<input type='hidden' name='room' value='");
		web_html(&b, c->jid);
		buf_puts(&b, "'><input type='submit' value='Leave the room'></p></form>");
	}
	buf_free(&url);
	page_end(hc, &b, NULL);
}

/* Asks the archive for the conversation's last messages (XEP-0313 4, RSM last page). */
static void
ask_history(struct msess *m, struct convo *c)
{
	struct xml_node *iq, *q, *x, *f, *set;

	snprintf(m->qid, sizeof m->qid, "m-h%u", ++m->seq);
	iq = stanza_new("iq", NULL, NULL, "set", m->qid);
	q = xml_add_el(iq, "query", NS_MAM);
	xml_set_attr(q, "queryid", m->qid);
	x = xml_add_el(q, "x", "jabber:x:data");
	xml_set_attr(x, "type", "submit");
	f = xml_add_el(x, "field", NULL);
	xml_set_attr(f, "var", "FORM_TYPE");
	xml_set_attr(f, "type", "hidden");
	add_text_el(f, "value", NS_MAM);
	f = xml_add_el(x, "field", NULL);
	xml_set_attr(f, "var", "with");
	add_text_el(f, "value", c->jid);
	set = xml_add_el(q, "set", "http://jabber.org/protocol/rsm");
	char max[16];
	snprintf(max, sizeof max, "%d", M_HISTORY);
	add_text_el(set, "max", max);
	xml_add_el(set, "before", NULL);
	send_stanza(m, iq);
}

/* The archive's lines first, then the newer ones it did not have. */
static void
merge_history(struct msess *m, struct convo *c)
{
	struct line keep[M_LINES];
	unsigned nkeep = 0;

	for (unsigned i = 0; i < c->n; i++) {
		struct line *l = &c->lines[(c->head + i) % M_LINES];
		bool dup = false;
		for (unsigned j = 0; j < m->nhist && l->id; j++)
			dup |= m->hist[j].id && strcmp(m->hist[j].id, l->id) == 0;
		if (dup || (!l->id && l->at <= (m->nhist ? m->hist[m->nhist - 1].at : 0)))
			line_free(l);
		else
			keep[nkeep++] = *l;
	}
	memset(c->lines, 0, sizeof c->lines);
	c->n = c->head = 0;
	unsigned unread = c->unread;
	for (unsigned j = 0; j < m->nhist; j++) {
		convo_add(c, m->hist[j].at, m->hist[j].out, m->hist[j].who, m->hist[j].text,
			  m->hist[j].id);
		line_free(&m->hist[j]);
	}
	for (unsigned i = 0; i < nkeep; i++) {
		convo_add(c, keep[i].at, keep[i].out, keep[i].who, keep[i].text, keep[i].id);
		line_free(&keep[i]);
	}
	c->unread = unread;
	m->nhist = 0;
}

static void
answer_waiting(struct msess *m)
{
	struct http_conn *hc = m->waiting;
	struct http_request *req = m->waiting_req;
	char cookie[200];

	if (!hc)
		return;
	m->waiting = NULL;
	m->waiting_req = NULL;
	timer_stop(worker_loop(m->w), &m->wait_timer);
	if (m->waiting_with) {
		/* a conversation page waited for its history */
		struct convo *c = convo_get(m, m->waiting_with, true);
		merge_history(m, c);
		m->qid[0] = '\0';
		free(m->waiting_with);
		m->waiting_with = NULL;
		if (m->state == M_READY) {
			chat_page(m, hc, c, false);
			return;
		}
	}
	if (m->state == M_READY) {
		snprintf(cookie, sizeof cookie,
			 "Set-Cookie: " M_COOKIE "=%s; Path=/m/; HttpOnly; SameSite=Strict%s\r\n",
			 m->key, strcmp(m->cfg->http_secure, "true") == 0 ? "; Secure" : "");
		redirect(hc, "/m/", cookie);
	} else {
		login_page(m->cfg, hc, req, m->ended ? m->ended : "The login took too long.");
	}
}

static void
wait_expired(struct timer *t)
{
	answer_waiting(container_of(t, struct msess, wait_timer));
}

static void
hold_expired(struct timer *t)
{
	struct msess *m = container_of(t, struct msess, hold);

	log_info("web %s: no page asked for within thin.hold; logging out", m->jid ? m->jid : "-");
	if (m->s)
		c2s_transport_lost(m->s, "web session expired");
}

/* RFC 6120 6.4.6 and 7: the stream after SASL, and resource binding. */
static void
bind_fired(struct timer *t)
{
	struct msess *m = container_of(t, struct msess, bind);
	struct buf b = {0};
	char res[20] = "web-";

	rand_id(res + 4, 8);
	web_stream_header(&b, m->cfg->domain, "1.0");
	buf_printf(&b,
		   "<iq xmlns='" NS_CLIENT "' type='set' id='m-bind'><bind xmlns='" NS_BIND
		   "'><resource>%s</resource></bind></iq>",
		   res);
	m_feed(m, buf_head(&b), buf_used(&b));
	buf_free(&b);
}

static void
wait_for_session(struct msess *m, struct http_conn *hc, struct http_request *req)
{
	m->waiting = hc;
	m->waiting_req = req;
	m->wait_timer.fn = wait_expired;
	timer_start(worker_loop(m->w), &m->wait_timer, M_WAIT_MS);
}

/* ---- requests ---- */

static void
do_login(struct worker *w, struct http_conn *hc, struct http_request *req)
{
	const struct config *cfg = worker_config(w);
	const char *data = buf_head(&req->body);
	size_t len = buf_used(&req->body);
	char *user = web_form_get(data, len, "user"), *pw = web_form_get(data, len, "password");
	char *token = web_form_get(data, len, "token"),
	     *login = web_cookie_get(req, M_LOGIN_COOKIE);
	struct msess *m;
	struct buf b = {0}, cred = {0};

	if (!login || !web_token_ok(login, "login", token)) {
		login_page(cfg, hc, req, "Your login form expired; please try again.");
		goto done;
	}
	if (!user || !*user || !pw || !*pw || strchr(user, '@') || strlen(user) > 1023 ||
	    strlen(pw) > 1023) {
		login_page(cfg, hc, req, "Enter your user name (without @domain) and password.");
		goto done;
	}
	m = xcalloc(1, sizeof *m);
	m->cfg = cfg;
	m->w = w;
	m->secure = web_secure(cfg, http_peer(hc));
	snprintf(m->peer, sizeof m->peer, "%s", http_peer(hc));
	rand_id(m->key, 32);
	rand_id(m->csrf, 32);
	m->hold.fn = hold_expired;
	m->bind.fn = bind_fired;
	web_obj_put(m->key, m, w);
	m->s = c2s_open(w, &m_transport, m);
	timer_start(worker_loop(w), &m->hold, cfg->thin_hold);
	wait_for_session(m, hc, req);
	/* RFC 4616: PLAIN, inside this process; the password came over HTTP(S) already. */
	buf_append(&cred, "", 1);
	buf_puts(&cred, user);
	buf_append(&cred, "", 1);
	buf_puts(&cred, pw);
	web_stream_header(&b, cfg->domain, "1.0");
	buf_puts(&b, "<auth xmlns='" NS_SASL "' mechanism='PLAIN'>");
	base64_encode(&b, buf_head(&cred), buf_used(&cred));
	buf_puts(&b, "</auth>");
	m_feed(m, buf_head(&b), buf_used(&b));
done:
	buf_free(&b);
	buf_free(&cred);
	free(user);
	free(pw);
	free(token);
	free(login);
}

static void
do_post(struct msess *m, struct http_conn *hc, struct http_request *req, const char *what)
{
	const char *data = buf_head(&req->body);
	size_t len = buf_used(&req->body);
	char *token = web_form_get(data, len, "token");
	char *jid = NULL, *text = NULL, *nick = NULL;
	struct buf back = {0};
	struct xml_node *st;
	struct jid j;

	if (!web_token_ok(m->csrf, what, token)) {
		web_error(hc, 403, "bad form token\n");
		free(token);
		return;
	}
	buf_puts(&back, "/m/");
	if (strcmp(what, "logout") == 0) {
		redirect(hc, "/m/?out=1", "Set-Cookie: " M_COOKIE "=; Path=/m/; Max-Age=0\r\n");
		m_feed(m, "</stream:stream>", 16);
		goto done;
	}
	jid = web_form_get(data, len,
			   strcmp(what, "send") == 0				     ? "with"
			   : strcmp(what, "join") == 0 || strcmp(what, "leave") == 0 ? "room"
										     : "jid");
	if (!jid || jid_parse(jid, &j) < 0) {
		web_error(hc, 400, "not a valid address\n");
		goto done;
	}
	char *bare = jid_bare(&j);
	jid_free(&j);
	free(jid);
	jid = bare;
	if (strcmp(what, "send") == 0) {
		struct convo *c = convo_get(m, jid, true);
		text = web_form_get(data, len, "body");
		if (text && *text && strlen(text) <= m->cfg->stanza_size / 2) {
			st = stanza_new("message", NULL, jid, c->room ? "groupchat" : "chat", NULL);
			add_text_el(st, "body", text);
			if (!c->room)
				convo_add(c, wall_ms(), true, m->bare, text, NULL);
			send_stanza(m, st);
		}
		buf_puts(&back, "chat?with=");
		web_urlenc(&back, jid);
	} else if (strcmp(what, "join") == 0) {
		struct convo *c = convo_get(m, jid, true);
		char room_nick[3200];
		nick = web_form_get(data, len, "nick");
		if (!nick || !*nick || strlen(nick) > 1023) {
			free(nick);
			nick = xstrndup(m->bare, strcspn(m->bare, "@"));
		}
		c->room = true;
		free(c->nick);
		c->nick = xstrdup(nick);
		snprintf(room_nick, sizeof room_nick, "%s/%s", jid, nick);
		/* XEP-0045 7.2: join, with the last messages as history. */
		st = stanza_new("presence", NULL, room_nick, NULL, NULL);
		struct xml_node *x = xml_add_el(st, "x", NS_MUC);
		struct xml_node *h = xml_add_el(x, "history", NULL);
		xml_set_attr(h, "maxstanzas", "20");
		send_stanza(m, st);
		buf_puts(&back, "chat?with=");
		web_urlenc(&back, jid);
	} else if (strcmp(what, "leave") == 0) {
		struct convo *c = convo_get(m, jid, false);
		if (c && c->room && c->nick) {
			char room_nick[3200];
			snprintf(room_nick, sizeof room_nick, "%s/%s", jid, c->nick);
			c->joined = false;
			send_stanza(m,
				    stanza_new("presence", NULL, room_nick, "unavailable", NULL));
		}
	} else if (strcmp(what, "add") == 0) {
		/* RFC 6121 2.3 and 3.1: into the roster, and ask to see their presence. */
		st = stanza_new("iq", NULL, NULL, "set", "m-add");
		struct xml_node *q = xml_add_el(st, "query", NS_ROSTER);
		xml_set_attr(xml_add_el(q, "item", NULL), "jid", jid);
		send_stanza(m, st);
		send_stanza(m, stanza_new("presence", NULL, jid, "subscribe", NULL));
	} else if (strcmp(what, "approve") == 0) {
		struct convo *c = convo_get(m, jid, false);
		if (c)
			c->asks = false;
		send_stanza(
		    m, stanza_new("presence", NULL, jid, "subscribed", NULL)); /* RFC 6121 3.1.4 */
	}
	redirect(hc, buf_head(&back), NULL);
done:
	buf_free(&back);
	free(token);
	free(jid);
	free(text);
	free(nick);
}

/* A request for the session object m (NULL: no such session), on its worker. */
static void
m_request(struct worker *w, void *obj, struct http_conn *hc, struct http_request *req, void *arg)
{
	struct msess *m = obj;
	const char *p = req->path + 3; /* after "/m/" */
	bool post = strcmp(req->method, "POST") == 0;

	if (!m || m->state != M_READY) {
		/* No session (expired, logged out, or someone else's cookie): log in again. */
		if (post && strcmp(p, "login") == 0)
			do_login(w, hc, req);
		else if (post)
			redirect(hc, "/m/", NULL);
		else
			login_page(worker_config(w), hc, req, m && m->ended ? m->ended : NULL);
		return;
	}
	timer_start(worker_loop(w), &m->hold, m->cfg->thin_hold);
	if (post) {
		if (strcmp(p, "login") == 0)
			redirect(hc, "/m/", NULL);
		else if (!strcmp(p, "send") || !strcmp(p, "join") || !strcmp(p, "leave") ||
			 !strcmp(p, "add") || !strcmp(p, "approve") || !strcmp(p, "logout"))
			do_post(m, hc, req, p);
		else
			web_error(hc, 404, "not found\n");
		return;
	}
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		web_error(hc, 405, "GET or POST\n");
	} else if (*p == '\0') {
		contacts_page(m, hc);
	} else if (strcmp(p, "chat") == 0) {
		size_t qlen = req->query ? strlen(req->query) : 0;
		char *with = web_form_get(req->query, qlen, "with");
		char *still = web_form_get(req->query, qlen, "still");
		char *bare = with ? bare_of(with) : NULL;
		if (!bare) {
			web_error(hc, 400, "not a valid address\n");
		} else {
			struct convo *c = convo_get(m, bare, true);
			if (!c->history && !c->room && m->cfg->archive_enabled && !m->waiting) {
				c->history = true;
				m->waiting_with = xstrdup(bare);
				wait_for_session(m, hc, req);
				ask_history(m, c);
			} else {
				chat_page(m, hc, c, still != NULL);
			}
		}
		free(with);
		free(still);
		free(bare);
	} else {
		web_error(hc, 404, "not found\n");
	}
}

void
m_handle(struct worker *w, struct http_conn *hc, struct http_request *req)
{
	char *key = web_cookie_get(req, M_COOKIE);

	if (strcmp(req->path, "/m") == 0) {
		redirect(hc, "/m/", NULL);
	} else if (key && strlen(key) == 32) {
		web_dispatch(w, key, hc, req, m_request, NULL);
	} else {
		m_request(w, NULL, hc, req, NULL);
	}
	free(key);
}
