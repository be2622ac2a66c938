/*
 * c2s: client-to-server streams (RFC 6120): the stream header and features, STARTTLS,
 * SASL, the move of an authenticated connection to its account's home worker,
 * resource binding, and the hand-off of stanzas from a bound session to routing.
 *
 * Invariant: stanzas are never processed inside an expat callback. The parser only
 * queues them; session_process() runs them in order once the feed has returned, and
 * stops while the session is busy (waiting for storage, an account load or a move
 * between workers), so a session handles one thing at a time, in arrival order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define C2S_ACCEPT_BATCH 64    /* connections accepted per wake-up, to stay fair */
#define C2S_READ_MAX	 65536 /* bytes read per turn before the parser consumes them */
#define SASL_MSG_MAX	 8192  /* base64 bytes of one SASL message */

static void on_open(void *arg, const char *name, const char *ns, const char **attrs,
		    const char *default_ns);
static void on_stanza(void *arg, struct xml_node *el);
static void on_close(void *arg);
static void on_data(struct conn *c, void *arg);
static void on_closed(struct conn *c, void *arg, const char *reason);
static const struct c2s_transport tcp_transport;

static const struct xml_stream_cb parser_cb = {on_open, on_stanza, on_close};
static const struct conn_cb conn_cb = {.data = on_data, .closed = on_closed};

static const struct config *
cfg_of(const struct session *s)
{
	return s->w->srv->cfg;
}

/* ---- lifecycle ---- */

static void
session_link(struct worker *w, struct session *s)
{
	s->w = w;
	s->w_prev = NULL;
	s->w_next = w->sessions;
	if (w->sessions)
		w->sessions->w_prev = s;
	w->sessions = s;
}

static void
session_unlink(struct session *s)
{
	if (s->w_prev)
		s->w_prev->w_next = s->w_next;
	else if (s->w->sessions == s)
		s->w->sessions = s->w_next;
	if (s->w_next)
		s->w_next->w_prev = s->w_prev;
	s->w_next = s->w_prev = NULL;
}

static void
queue_clear(struct session *s)
{
	while (s->q_head) {
		struct xml_node *st = s->q_head;
		s->q_head = st->next;
		st->next = NULL;
		xml_free(st);
	}
	s->q_tail = NULL;
	s->q_len = 0;
}

static void
auth_timeout(struct timer *t)
{
	struct session *s = container_of(t, struct session, auth_timer);
	log_info("%s: no authentication within the time limit", s->id);
	session_stream_error(s, "connection-timeout", NULL);
}

static struct session *
session_new(struct worker *w)
{
	const struct config *cfg = w->srv->cfg;
	struct session *s = xcalloc(1, sizeof *s);

	rand_id(s->id, sizeof s->id - 1);
	s->state = SS_HEADER;
	s->parser = xml_stream_new(&parser_cb, s, cfg->stanza_size_preauth, (int)cfg->stanza_depth);
	s->auth_timer.fn = auth_timeout;
	session_link(w, s);
	return s;
}

void
session_close(struct session *s, const char *reason)
{
	if (s->state == SS_CLOSED)
		return;
	log_debug("%s: closed (%s)", s->id, reason);
	/* Closed first: nothing may be written after our stream's last bytes. */
	s->state = SS_CLOSED;
	if (s->acct) {
		for (struct xmpp_ext **e = xmpp_exts; *e; e++)
			if ((*e)->session_end)
				(*e)->session_end(s);
		presence_session_end(s);
		account_session_remove(s->acct, s);
		sm_requeue(s);
	}
	sm_free(s);
	timer_stop(s->w->loop, &s->auth_timer);
	offline_session_end(s);
	queue_clear(s);
	if (s->tp) {
		s->tp->release(s->t);
		s->tp = NULL;
	}
	s->reap_next = s->w->reap;
	s->w->reap = s;
}

void
session_unref(struct session *s)
{
	s->jobs--;
}

void
session_reap(struct worker *w)
{
	struct session **pp = &w->reap;

	while (*pp) {
		struct session *s = *pp;
		if (s->jobs > 0 || s->migrating) {
			pp = &s->reap_next; /* a callback still points here; try next turn */
			continue;
		}
		*pp = s->reap_next;
		session_unlink(s);
		for (struct xmpp_ext **e = xmpp_exts; *e; e++)
			if ((*e)->session_free)
				(*e)->session_free(s);
		xml_stream_free(s->parser);
		sasl_free(s->sasl);
		xml_free(s->presence);
		hmap_free(&s->directed);
		csi_free(s);
		free(s->user);
		free(s->bare);
		free(s->full);
		free(s->resource);
		free(s->reg_token);
		free(s);
	}
}

void
session_ext_bound(struct session *s, const struct xml_node *bind_iq)
{
	for (struct xmpp_ext **e = xmpp_exts; *e; e++)
		if ((*e)->bound)
			(*e)->bound(s, bind_iq);
}

/* ---- output ---- */

void
session_write(struct session *s, const char *data, size_t len)
{
	if (s->tp)
		s->tp->element(s->t, data, len);
}

size_t
session_out_pending(const struct session *s)
{
	return s->tp ? s->tp->pending(s->t) : 0;
}

bool
session_secure(const struct session *s)
{
	return s->tp && s->tp->secure(s->t);
}

const char *
session_peer(const struct session *s)
{
	return s->tp ? s->tp->peer(s->t) : "?";
}

void
session_send(struct session *s, const struct xml_node *st)
{
	session_send_stored(s, st, 0);
}

void
session_send_stored(struct session *s, const struct xml_node *st, int64_t stored)
{
	const struct buf *b;

	/* A hibernating session (XEP-0198) has no connection but still queues. */
	if (s->state == SS_CLOSED || (!s->tp && !s->sm_enabled))
		return;
	if (csi_hold(s, st))
		return;
	struct xml_node *adapted = NULL;
	for (struct xmpp_ext **e = xmpp_exts; *e; e++) {
		if ((*e)->seen && !stanza_is(st, "iq"))
			(*e)->seen(s, st, false);
		if ((*e)->adapt && !adapted)
			adapted = (*e)->adapt(s, st);
	}
	b = stanza_serialize(adapted ? adapted : st);
	xml_free(adapted);
	session_write(s, buf_head(b), buf_used(b));
	sm_sent(s, buf_head(b), buf_used(b), stored);
}

static void
send_raw(struct session *s, const char *text)
{
	session_write(s, text, strlen(text));
}

static void
send_header(struct session *s, const char *to)
{
	char id[17];

	/* RFC 6120 4.7.3: every stream, restarted ones included, gets a fresh id. */
	rand_id(id, sizeof id - 1);
	if (s->tp)
		s->tp->open(s->t, id, cfg_of(s)->domain, to);
}

/* RFC 6120 4.9: a stream error is the last thing on the stream; the server then closes it. */
void
session_stream_error(struct session *s, const char *condition, const char *text)
{
	struct buf b = {0};

	if (s->state == SS_CLOSED)
		return;
	log_info("%s: stream error %s%s%s", s->id, condition, text ? ": " : "", text ? text : "");
	/* RFC 6120 4.9.1.1: an error before our header still needs the stream opened. */
	if (s->state == SS_HEADER)
		send_header(s, NULL);
	buf_puts(&b, "<stream:error><");
	buf_puts(&b, condition);
	buf_puts(&b, " xmlns='" NS_STREAMS "'/>");
	if (text) {
		buf_puts(&b, "<text xmlns='" NS_STREAMS "'>");
		xml_escape(&b, text, strlen(text), false);
		buf_puts(&b, "</text>");
	}
	buf_puts(&b, "</stream:error>");
	session_write(s, buf_head(&b), buf_used(&b));
	buf_free(&b);
	if (s->tp)
		s->tp->end(s->t);
	session_close(s, condition);
}

void
session_shutdown(struct session *s)
{
	/* presence_session_end() skips the broadcast: every contact goes down too. */
	session_stream_error(s, "system-shutdown", NULL);
	session_unlink(s);
}

/* ---- sessions over TCP (RFC 6120), the transport of port 5222 and 5223 ---- */

void
c2s_stream_attrs(struct buf *b, const char *id, const char *from, const char *to)
{
	buf_puts(b, " id='");
	buf_puts(b, id);
	buf_puts(b, "' from='");
	xml_escape(b, from, strlen(from), true);
	if (to) {
		buf_puts(b, "' to='");
		xml_escape(b, to, strlen(to), true);
	}
	buf_puts(b, "' version='1.0' xml:lang='en'");
}

static void
tcp_open(void *t, const char *id, const char *from, const char *to)
{
	struct buf b = {0};

	buf_puts(&b, "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT
		     "' xmlns:stream='" NS_STREAM "'");
	c2s_stream_attrs(&b, id, from, to);
	buf_puts(&b, ">");
	conn_write(t, buf_head(&b), buf_used(&b));
	buf_free(&b);
}

static void
tcp_element(void *t, const char *data, size_t len)
{
	conn_write(t, data, len);
}

static void
tcp_end(void *t)
{
	conn_write(t, "</stream:stream>", 16);
}

static void
tcp_release(void *t)
{
	conn_close(t);
}

static size_t
tcp_pending(void *t)
{
	return conn_out_pending(t);
}

static void
tcp_pause(void *t, bool paused)
{
	conn_pause(t, paused);
}

static void
tcp_detach(void *t)
{
	conn_detach(t);
}

static void
tcp_attach(void *t, struct loop *loop)
{
	conn_attach(t, loop);
}

static bool
tcp_secure(void *t)
{
	return conn_is_tls(t);
}

static void
tcp_starttls(void *t, struct tls_ctx *tls)
{
	conn_starttls(t, tls);
}

static const char *
tcp_peer(void *t)
{
	return ((struct conn *)t)->peer;
}

static const struct c2s_transport tcp_transport = {
    .name = "tcp",
    .open = tcp_open,
    .element = tcp_element,
    .end = tcp_end,
    .release = tcp_release,
    .pending = tcp_pending,
    .pause = tcp_pause,
    .detach = tcp_detach,
    .attach = tcp_attach,
    .secure = tcp_secure,
    .starttls = tcp_starttls,
    .peer = tcp_peer,
};

struct session *
c2s_open(struct worker *w, const struct c2s_transport *tp, void *t)
{
	struct session *s = session_new(w);

	s->tp = tp;
	s->t = t;
	timer_start(w->loop, &s->auth_timer, w->srv->cfg->auth_timeout);
	return s;
}

void
c2s_transport_lost(struct session *s, const char *reason)
{
	if (!sm_hibernate(s))
		session_close(s, reason);
}

/* Parses input; the stanzas queue up for session_process(). */
static void
feed(struct session *s, const char *data, size_t len)
{
	struct xml_stream *p = s->parser;
	int r;

	if (s->state == SS_CLOSED)
		return;
	s->last_input = now_ms();
	r = xml_stream_feed(p, data, len);
	if (r != XML_OK && s->parser == p && !s->parse_error)
		s->parse_error = r;
}

void
c2s_input(struct session *s, const char *data, size_t len)
{
	feed(s, data, len);
	session_process(s);
}

/* ---- memory of idle sessions ---- */

#define C2S_TRIM_IDLE_MS 5000 /* a session this long without input gives its parser back */

void
c2s_trim_idle(struct worker *w)
{
	uint64_t now = now_ms();
	size_t n = 0;

	/*
	 * Most connections are idle most of the time; an idle one keeps only its session and
	 * connection, not expat's ~10 KiB of working memory (bench/RESULTS.md: memory per
	 * idle connection). The next stanza renews the parser, which costs microseconds.
	 */
	for (struct session *s = w->sessions; s; s = s->w_next) {
		if (s->state != SS_CLOSED && s->parser && now - s->last_input >= C2S_TRIM_IDLE_MS)
			n += xml_stream_trim(s->parser);
	}
	/*
	 * The parsers' pages go back with their regions (xml/region.c); malloc_trim() here
	 * returned nothing more (3.3 KiB per idle connection with it or without).
	 */
	if (n) {
		log_debug("worker %d: %zu idle parsers freed", w->id, n);
		xml_regions_release();
	}
}

/* ---- accepting ---- */

void
c2s_accept(struct loop_io *io, uint32_t events)
{
	struct worker *w = worker_current();
	const struct config *cfg = w->srv->cfg;
	struct tls_ctx *tls = io == &w->c2s_tls_io ? w->srv->tls : NULL;

	for (int i = 0; i < C2S_ACCEPT_BATCH && !w->stopping; i++) {
		struct session *s = session_new(w);
		struct conn *c = conn_accept(w->loop, io->fd, tls, &conn_cb, s);
		if (!c) {
			session_unlink(s);
			xml_stream_free(s->parser);
			free(s);
			return;
		}
		if (s->state == SS_CLOSED) /* TLS setup failed inside conn_accept */
			continue;
		s->tp = &tcp_transport;
		s->t = c;
		conn_set_limits(c, C2S_READ_MAX, cfg->send_queue, cfg->rate, cfg->rate_burst);
		timer_start(w->loop, &s->auth_timer, cfg->auth_timeout);
		log_debug("%s: connection from %s%s", s->id, c->peer, tls ? " (direct TLS)" : "");
	}
}

static void
on_closed(struct conn *c, void *arg, const char *reason)
{
	struct session *s = arg;

	if (!s->tp) { /* failed inside conn_accept, before it returned */
		s->tp = &tcp_transport;
		s->t = c;
	}
	c2s_transport_lost(s, reason);
}

static void
on_data(struct conn *c, void *arg)
{
	struct session *s = arg;
	size_t n = buf_used(&c->in);

	feed(s, buf_head(&c->in), n);
	buf_consume(&c->in, n);
	session_process(s);
}

/* ---- the stream header (RFC 6120 4.7) ---- */

static const char *
attr_of(const char **attrs, const char *name)
{
	for (size_t i = 0; attrs && attrs[i]; i += 2) {
		if (strcmp(attrs[i], name) == 0)
			return attrs[i + 1];
	}
	return NULL;
}

static void
send_features(struct session *s)
{
	const struct config *cfg = cfg_of(s);
	bool tls = session_secure(s);
	struct buf b = {0};

	buf_puts(&b, "<stream:features>");
	if (s->authenticated) {
		buf_puts(&b, "<bind xmlns='" NS_BIND "'/>"
			     "<session xmlns='" NS_SESSION "'><optional/></session>"
			     "<ver xmlns='" NS_ROSTERVER "'/>"
			     "<sm xmlns='" NS_SM "'/>"
			     "<csi xmlns='" NS_CSI "'/>");
	} else {
		if (!tls && s->tp->starttls)
			buf_puts(&b, cfg->allow_plaintext ? "<starttls xmlns='" NS_TLS "'/>"
							  : "<starttls xmlns='" NS_TLS
							    "'><required/></starttls>");
		/* RFC 6120 6.4.1: no mechanisms before TLS when TLS is mandatory. */
		if (tls || cfg->allow_plaintext) {
			if (strcmp(cfg->registration, "closed") != 0)
				buf_puts(
				    &b,
				    "<register xmlns='http://jabber.org/features/iq-register'/>");
			if (strcmp(cfg->registration, "token") == 0)
				register_features(&b); /* XEP-0445 section 3 */
			buf_puts(&b, "<mechanisms xmlns='" NS_SASL "'>");
			for (const char *const *m = sasl_mechanisms(); *m; m++) {
				buf_printf(&b, "<mechanism>%s</mechanism>", *m);
			}
			buf_puts(&b, "</mechanisms>");
		}
	}
	buf_puts(&b, "</stream:features>");
	send_raw(s, buf_head(&b));
	buf_free(&b);
}

static void
on_open(void *arg, const char *name, const char *ns, const char **attrs, const char *default_ns)
{
	struct session *s = arg;
	const char *to = attr_of(attrs, "to");
	const char *version = attr_of(attrs, "version");
	const char *from = attr_of(attrs, "from");
	char *domain = NULL;

	if (s->state != SS_HEADER)
		return;
	if (strcmp(name, "stream") != 0 || strcmp(ns, NS_STREAM) != 0 ||
	    strcmp(default_ns, NS_CLIENT) != 0) {
		/* RFC 6120 4.9.3.10 */
		session_stream_error(s, "invalid-namespace", NULL);
		return;
	}
	/* RFC 6120 4.7.5: we speak 1.0; a missing version means pre-1.0, which we do not. */
	if (!version || strncmp(version, "1.", 2) != 0) {
		session_stream_error(s, "unsupported-version", NULL);
		return;
	}
	if (to && (jid_norm_domain(to, &domain) < 0 || strcmp(domain, cfg_of(s)->domain) != 0)) {
		free(domain);
		session_stream_error(s, "host-unknown", NULL); /* RFC 6120 4.9.3.6 */
		return;
	}
	free(domain);
	/* RFC 6120 4.7.1: echo the client's from only if it is a JID we would accept. */
	if (from && (!s->bare || strcmp(from, s->bare) != 0))
		from = NULL;
	send_header(s, from);
	s->state = s->authenticated ? SS_BIND : SS_AUTH;
	send_features(s);
}

static void
on_stanza(void *arg, struct xml_node *el)
{
	struct session *s = arg;

	if (s->state == SS_CLOSED || s->restart) {
		xml_free(el);
		return;
	}
	el->next = NULL;
	if (s->q_tail)
		s->q_tail->next = el;
	else
		s->q_head = el;
	s->q_tail = el;
	s->q_len++;
}

static void
on_close(void *arg)
{
	struct session *s = arg;
	s->peer_closed = true;
}

/* Starts a new stream on the same connection (after STARTTLS and SASL, RFC 6120 4.3.3). */
static void
stream_restart(struct session *s)
{
	const struct config *cfg = cfg_of(s);

	queue_clear(s);
	xml_stream_free(s->parser);
	s->parser = xml_stream_new(&parser_cb, s,
				   s->authenticated ? cfg->stanza_size : cfg->stanza_size_preauth,
				   (int)cfg->stanza_depth);
	s->restart = false;
	s->parse_error = XML_OK;
	s->peer_closed = false;
	s->state = SS_HEADER;
}

void
session_busy(struct session *s, bool busy)
{
	s->busy = busy;
	if (s->tp)
		s->tp->pause(s->t, busy);
}

/* ---- moving to the home worker ---- */

struct move_mail {
	struct mail mail;
	struct session *s;
};

static void
move_arrive(struct loop *loop, struct mail *m)
{
	struct move_mail *mm = container_of(m, struct move_mail, mail);
	struct session *s = mm->s;
	struct worker *w = loop_data(loop);

	free(mm);
	session_link(w, s);
	s->migrating = false;
	if (s->tp)
		s->tp->attach(s->t, loop);
	if (w->stopping) {
		session_shutdown(s);
		return;
	}
	/* The bind phase gets its own time limit on the new worker. */
	timer_start(w->loop, &s->auth_timer, cfg_of(s)->auth_timeout);
	session_busy(s, false);
	session_process(s);
}

/*
 * The move happens from a mail to our own loop, never from inside the connection's
 * data callback: conn_detach() must not run while conn code is on the stack.
 */
static void
move_depart(struct loop *loop, struct mail *m)
{
	struct move_mail *mm = container_of(m, struct move_mail, mail);
	struct session *s = mm->s;
	struct worker *to = s->migrate_to;

	session_unref(s);
	s->migrate_to = NULL;
	if (s->state == SS_CLOSED || s->w->stopping) {
		free(mm);
		session_close(s, "shutdown");
		return;
	}
	if (s->tp)
		s->tp->detach(s->t);
	session_unlink(s);
	s->migrating = true;
	s->w = to;
	mm->mail.fn = move_arrive;
	loop_post(to->loop, &mm->mail);
}

static void
session_move(struct session *s)
{
	struct move_mail *mm = xmalloc(sizeof *mm);

	timer_stop(s->w->loop, &s->auth_timer);
	session_busy(s, true);
	s->jobs++;
	mm->mail.fn = move_depart;
	mm->s = s;
	loop_post(s->w->loop, &mm->mail);
}

/* ---- SASL (RFC 6120 section 6) ---- */

static void
sasl_reply(struct session *s, const char *el, const struct buf *data)
{
	struct buf b = {0};

	buf_printf(&b, "<%s xmlns='" NS_SASL "'>", el);
	if (data && buf_used(data))
		base64_encode(&b, buf_head(data), buf_used(data));
	else if (data && strcmp(el, "success") != 0)
		buf_puts(&b, "="); /* RFC 6120 6.4.2: an empty challenge is "=" */
	buf_printf(&b, "</%s>", el);
	send_raw(s, buf_head(&b));
	buf_free(&b);
}

static void
sasl_failure(struct session *s, const char *condition, bool counts)
{
	struct buf b = {0};

	sasl_free(s->sasl);
	s->sasl = NULL;
	buf_printf(&b, "<failure xmlns='" NS_SASL "'><%s/></failure>", condition);
	send_raw(s, buf_head(&b));
	buf_free(&b);
	if (counts && ++s->auth_failures >= cfg_of(s)->auth_failures) {
		/* RFC 6120 6.4.5: the server MAY close the stream after a number of retries. */
		session_stream_error(s, "policy-violation",
				     "Too many failed authentication attempts");
	}
}

static void
sasl_success(struct session *s, const struct buf *extra)
{
	struct server *srv = s->w->srv;
	const char *user = sasl_username(s->sasl);

	s->user = xstrdup(user);
	s->bare = xmalloc(strlen(user) + strlen(srv->cfg->domain) + 2);
	sprintf(s->bare, "%s@%s", user, srv->cfg->domain);
	sasl_free(s->sasl);
	s->sasl = NULL;
	s->authenticated = true;
	sasl_reply(s, "success", extra);
	log_info("%s: authenticated as %s from %s", s->id, s->bare, session_peer(s));
	timer_stop(s->w->loop, &s->auth_timer);
	s->restart = true;
	s->migrate_to = server_home(srv, s->bare);
}

struct creds_job {
	struct store_job job;
	struct session *s;
	char *jid;
	struct buf blob;
};

static int
creds_run(struct store *st, struct store_job *job)
{
	struct creds_job *cj = container_of(job, struct creds_job, job);
	return store_account_creds(st, cj->jid, &cj->blob);
}

static void sasl_continue(struct session *s, const char *in, size_t len);

static void
creds_done(struct store_job *job)
{
	struct creds_job *cj = container_of(job, struct creds_job, job);
	struct session *s = cj->s;
	struct sasl_creds creds;
	int result = job->result;
	bool have = false;

	if (result == 0 && sasl_creds_decode((const unsigned char *)buf_head(&cj->blob),
					     buf_used(&cj->blob), &creds) == 0)
		have = true;
	else if (result == 0)
		log_error("%s: stored credentials of %s are corrupt", s->id, cj->jid);
	buf_free(&cj->blob);
	free(cj->jid);
	free(cj);
	session_unref(s);
	if (s->state == SS_CLOSED || !s->sasl)
		return;
	session_busy(s, false);
	if (result == STORE_EIO) {
		sasl_failure(s, "temporary-auth-failure", false);
	} else {
		sasl_set_creds(s->sasl, have ? &creds : NULL);
		sasl_continue(s, NULL, 0);
	}
	session_process(s);
}

static void
creds_lookup(struct session *s)
{
	const char *user = sasl_username(s->sasl);
	const char *domain = cfg_of(s)->domain;
	struct creds_job *cj;

	if (!user) {
		sasl_set_creds(s->sasl, NULL);
		sasl_continue(s, NULL, 0);
		return;
	}
	if (sasl_plain_password(s->sasl)) {
		/* A one-time credential an extension issued (identity grants) stands for the
		 * password of that account, once. */
		char bare[3100];
		snprintf(bare, sizeof bare, "%s@%s", user, domain);
		for (struct xmpp_ext **e = xmpp_exts; *e; e++) {
			if ((*e)->auth_token &&
			    (*e)->auth_token(s, bare, sasl_plain_password(s->sasl))) {
				sasl_success(s, NULL);
				return;
			}
		}
	}
	cj = xcalloc(1, sizeof *cj);
	cj->s = s;
	cj->jid = xmalloc(strlen(user) + strlen(domain) + 2);
	sprintf(cj->jid, "%s@%s", user, domain);
	cj->job.run = creds_run;
	cj->job.done = creds_done;
	s->jobs++;
	session_busy(s, true);
	worker_store(s->w, &cj->job);
}

static void
sasl_continue(struct session *s, const char *in, size_t len)
{
	struct buf out = {0};

	switch (sasl_step(s->sasl, in, len, &out)) {
	case SASL_CONTINUE:
		sasl_reply(s, "challenge", &out);
		break;
	case SASL_NEED_CREDS:
		creds_lookup(s);
		break;
	case SASL_SUCCESS:
		sasl_success(s, &out);
		break;
	default:
		log_info("%s: authentication failed (%s) from %s", s->id, sasl_condition(s->sasl),
			 session_peer(s));
		sasl_failure(s, sasl_condition(s->sasl), true);
		break;
	}
	buf_free(&out);
}

/* Decodes the base64 text of a SASL element; returns 0 or -1 (incorrect-encoding). */
static int
sasl_payload(const struct xml_node *st, struct buf *out)
{
	char *text = xml_text(st);
	size_t n = strlen(text);
	int r = 0;

	if (n > SASL_MSG_MAX)
		r = -1;
	else if (n > 0)
		r = base64_decode(out, text, n);
	free(text);
	return r;
}

static bool
mechanism_allowed(struct session *s, const char *mech)
{
	bool tls = session_secure(s);

	for (const char *const *m = sasl_mechanisms(); *m; m++) {
		if (strcmp(*m, mech) != 0)
			continue;
		/* PLAIN sends the password itself: only inside TLS (or in test setups). */
		return strcmp(mech, "PLAIN") != 0 || tls || cfg_of(s)->allow_plaintext;
	}
	return false;
}

static void
handle_auth(struct session *s, struct xml_node *st)
{
	bool tls = session_secure(s);
	struct buf in = {0};

	if (strcmp(st->name, "abort") == 0) {
		sasl_failure(s, "aborted", false);
		return;
	}
	if (strcmp(st->name, "auth") == 0) {
		const char *mech = xml_attr(st, "mechanism");
		if (!tls && !cfg_of(s)->allow_plaintext) {
			sasl_failure(s, "encryption-required", false);
			return;
		}
		sasl_free(s->sasl);
		s->sasl = NULL;
		if (!mech || !mechanism_allowed(s, mech)) {
			sasl_failure(s, "invalid-mechanism", false);
			return;
		}
		s->sasl = sasl_new(mech);
		sasl_set_domain(s->sasl, cfg_of(s)->domain);
	} else if (strcmp(st->name, "response") != 0 || !s->sasl) {
		sasl_failure(s, "malformed-request", true);
		return;
	}
	if (sasl_payload(st, &in) < 0) {
		sasl_failure(s, "incorrect-encoding", true);
	} else {
		sasl_continue(s, buf_used(&in) ? buf_head(&in) : NULL, buf_used(&in));
	}
	buf_free(&in);
}

static void
handle_preauth(struct session *s, struct xml_node *st)
{
	bool tls = session_secure(s);

	if (register_is(st) && xml_attr(st, "id")) {
		register_iq(s, st); /* XEP-0077: the one stanza allowed before authentication */
		return;
	}
	if (register_preauth_is(st) && xml_attr(st, "id")) {
		register_preauth(s, st); /* XEP-0401 section 5: the token before registering */
		return;
	}
	if (strcmp(st->ns, NS_TLS) == 0 && strcmp(st->name, "starttls") == 0 && !tls && !s->sasl &&
	    s->tp->starttls) {
		send_raw(s, "<proceed xmlns='" NS_TLS "'/>");
		s->tp->starttls(s->t, s->w->srv->tls);
		s->restart = true;
	} else if (strcmp(st->ns, NS_SASL) == 0) {
		handle_auth(s, st);
	} else {
		/* RFC 6120 6.4.1 / 8.1.1: no stanzas before authentication. */
		session_stream_error(s, "not-authorized", NULL);
	}
	xml_free(st);
}

/* ---- resource binding (RFC 6120 section 7) ---- */

struct bind_req {
	struct session *s;
	struct xml_node *iq;
	char *resource;
};

/* Replies come from the server to the session itself: no from; to is the full JID once bound. */
void
session_reply(struct session *s, const struct xml_node *iq, struct xml_node *payload)
{
	struct xml_node *r = stanza_new("iq", NULL, s->full, "result", xml_attr(iq, "id"));

	if (payload)
		xml_add_child(r, payload);
	session_send(s, r);
	xml_free(r);
}

void
session_reply_error(struct session *s, const struct xml_node *st, const char *type,
		    const char *cond, const char *text)
{
	struct xml_node *r = stanza_error_reply(st, type, cond, text);

	xml_set_attr(r, "from", NULL);
	xml_set_attr(r, "to", s->full);
	session_send(s, r);
	xml_free(r);
}

static void
bind_with_account(struct account *a, void *arg)
{
	struct bind_req *br = arg;
	struct session *s = br->s;
	struct session *old;
	struct xml_node *bind, *jid;

	session_unref(s);
	if (s->state == SS_CLOSED)
		goto done;
	session_busy(s, false);
	if (a->state != AS_READY) {
		session_stream_error(s, "not-authorized", "The account no longer exists");
		goto done;
	}
	for (struct xmpp_ext **e = xmpp_exts; *e; e++) {
		const char *why = (*e)->bind_check ? (*e)->bind_check(a, s, br->iq) : NULL;
		if (why) {
			session_reply_error(s, br->iq, "cancel", "not-allowed", why);
			session_process(s);
			goto done;
		}
	}
	/* RFC 6120 7.7.2.2: the new session wins; the old one is told why it ends. */
	old = account_session_find(a, br->resource);
	if (old)
		session_stream_error(old, "conflict", "Replaced by a new connection");
	s->resource = br->resource;
	br->resource = NULL;
	s->full = xmalloc(strlen(s->bare) + strlen(s->resource) + 2);
	sprintf(s->full, "%s/%s", s->bare, s->resource);
	s->acct = a;
	account_session_add(a, s);
	s->state = SS_ACTIVE;
	timer_stop(s->w->loop, &s->auth_timer);
	bind = xml_el_new("bind", NS_BIND);
	jid = xml_add_el(bind, "jid", NULL);
	xml_add_text(jid, s->full, strlen(s->full));
	session_reply(s, br->iq, bind);
	log_info("%s: bound %s", s->id, s->full);
	session_ext_bound(s, br->iq);
	session_process(s);
done:
	xml_free(br->iq);
	free(br->resource);
	free(br);
}

static void
handle_bind(struct session *s, struct xml_node *st)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *q = st->first;
	struct bind_req *br;
	char *resource = NULL;

	while (q && !q->name)
		q = q->next;
	if (stanza_is(st, "iq") && type && strcmp(type, "set") == 0 && q &&
	    strcmp(q->ns, NS_SESSION) == 0) {
		session_reply(s, st, NULL); /* RFC 6121 appendix E: a no-op kept for old clients */
		xml_free(st);
		return;
	}
	if (!stanza_is(st, "iq") || !type || strcmp(type, "set") != 0 || !q ||
	    strcmp(q->ns, NS_BIND) != 0 || strcmp(q->name, "bind") != 0) {
		xml_free(st);
		session_stream_error(s, "not-authorized", "Bind a resource first");
		return;
	}
	struct xml_node *r = xml_child(q, "resource", NS_BIND);
	if (r) {
		char *text = xml_text(r);
		int bad = jid_norm_resource(text, &resource);
		free(text);
		if (bad < 0) {
			session_reply_error(s, st, "modify", "bad-request",
					    NULL); /* RFC 6120 7.7.2.1 */
			xml_free(st);
			return;
		}
	} else {
		resource = xmalloc(17);
		rand_id(resource, 16);
	}
	br = xcalloc(1, sizeof *br);
	br->s = s;
	br->iq = st;
	br->resource = resource;
	s->jobs++;
	session_busy(s, true);
	account_with(s->w, s->bare, bind_with_account, br);
}

/* ---- stanzas of a bound session (RFC 6120 8.1.2, RFC 6121 8) ---- */

static bool
roster_is(const struct xml_node *st)
{
	return xml_child(st, "query", NS_ROSTER) != NULL;
}

/* iqs a session sends to its own account (no 'to', or its bare JID). */
static const struct {
	bool (*is)(const struct xml_node *st);
	void (*handle)(struct session *s, struct xml_node *st); /* takes st */
} own_iqs[] = {
    {roster_is, roster_iq},	 /* RFC 6121 section 2 */
    {block_is, block_iq},	 /* XEP-0191 */
    {private_is, private_iq},	 /* XEP-0049 */
    {mam_is_query, mam_query},	 /* XEP-0313 */
    {carbons_is_iq, carbons_iq}, /* XEP-0280 */
    {vcard_is, vcard_own_iq},	 /* XEP-0054 */
    {push_is, push_iq},		 /* XEP-0357 */
};

static void
handle_stanza(struct session *s, struct xml_node *st)
{
	const char *from = xml_attr(st, "from");
	const char *to = xml_attr(st, "to");
	const char *type = xml_attr(st, "type");
	bool is_iq = stanza_is(st, "iq");

	if (!is_iq && !stanza_is(st, "message") && !stanza_is(st, "presence")) {
		xml_free(st);
		session_stream_error(s, "unsupported-stanza-type", NULL); /* RFC 6120 4.9.3.24 */
		return;
	}
	sm_handled(s); /* XEP-0198: every stanza counts, answered with an error or not */
	/* RFC 6120 8.1.2.1: the server stamps the full JID; a different one is spoofing. */
	if (from && strcmp(from, s->full) != 0 && strcmp(from, s->bare) != 0) {
		struct jid j;
		bool same = false;
		if (jid_parse(from, &j) == 0) {
			char *full = jid_full(&j);
			same = strcmp(full, s->full) == 0 || strcmp(full, s->bare) == 0;
			free(full);
			jid_free(&j);
		}
		if (!same) {
			xml_free(st);
			session_stream_error(s, "invalid-from", NULL);
			return;
		}
	}
	xml_set_attr(st, "from", s->full);
	if (is_iq) {
		/* RFC 6120 8.2.3: an iq has an id, a known type and (get/set) one payload. */
		struct xml_node *q = xml_child(st, NULL, NULL);
		bool request = type && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
		bool response = type && (strcmp(type, "result") == 0 || strcmp(type, "error") == 0);
		if (!xml_attr(st, "id") || (!request && !response) ||
		    (request && (!q || xml_next(q, NULL, NULL)))) {
			if (!stanza_is_error(st))
				session_reply_error(s, st, "modify", "bad-request", NULL);
			xml_free(st);
			return;
		}
		if (request && strcmp(q->ns, NS_SESSION) == 0 && strcmp(type, "set") == 0) {
			session_reply(s, st, NULL); /* RFC 6121 appendix E, after bind as well */
			xml_free(st);
			return;
		}
		/* The account's own services, served here on its home worker. */
		for (size_t i = 0;
		     request && (!to || strcmp(to, s->bare) == 0) && i < ARRAY_LEN(own_iqs); i++) {
			if (own_iqs[i].is(st)) {
				own_iqs[i].handle(s, st);
				return;
			}
		}
		for (struct xmpp_ext **e = xmpp_exts;
		     request && (!to || strcmp(to, s->bare) == 0) && *e; e++) {
			if ((*e)->iq && strcmp(q->ns, (*e)->ns) == 0) {
				(*e)->iq(s, st);
				return;
			}
		}
		if (request && register_is(st) &&
		    (!to || strcmp(to, s->w->srv->cfg->domain) == 0)) {
			register_iq(s, st); /* XEP-0077 3.2, 3.3: cancel, change password */
			return;
		}
	}
	if (to && block_matches_str(s->acct, to)) {
		block_refuse(s, st);
		return;
	}
	for (struct xmpp_ext **e = xmpp_exts; !is_iq && *e; e++)
		if ((*e)->seen)
			(*e)->seen(s, st, true);
	if (stanza_is(st, "presence")) {
		presence_outbound(s, st);
		return;
	}
	/* RFC 6120 10.3: no 'to' means the account itself. */
	if (!to)
		xml_set_attr(st, "to", s->bare);
	if (!is_iq && amp_refuse_unsupported(s, st)) {
		xml_free(st);
		return;
	}
	if (!is_iq) {
		mam_strip_ids(st);
		mam_outgoing(s, st);
		carbons_sent(s, st);
		if (durable_route(s, st))
			return;
	}
	route(s->w, st);
}

static void
handle(struct session *s, struct xml_node *st)
{
	switch (s->state) {
	case SS_AUTH:
		handle_preauth(s, st);
		break;
	case SS_BIND:
	case SS_ACTIVE:
		if (strcmp(st->ns, NS_SM) == 0)
			sm_element(s, st);
		else if (strcmp(st->ns, NS_CSI) == 0 && s->state == SS_ACTIVE)
			csi_element(s, st);
		else if (s->state == SS_BIND)
			handle_bind(s, st);
		else
			handle_stanza(s, st);
		break;
	default:
		xml_free(st);
		break;
	}
}

/* Runs queued stanzas in order until the queue is empty or the session is busy. */
void
session_process(struct session *s)
{
	/* A handler completing synchronously may call back here; the outer loop goes on. */
	if (s->processing)
		return;
	s->processing = true;
	for (;;) {
		if (s->state == SS_CLOSED)
			break;
		if (s->restart) {
			stream_restart(s);
			if (s->migrate_to && s->migrate_to != s->w) {
				session_move(s);
				break;
			}
			s->migrate_to = NULL;
			if (s->state == SS_HEADER && s->authenticated)
				timer_start(s->w->loop, &s->auth_timer, cfg_of(s)->auth_timeout);
		}
		if (s->busy || !s->q_head)
			break;
		struct xml_node *st = s->q_head;
		s->q_head = st->next;
		if (!s->q_head)
			s->q_tail = NULL;
		s->q_len--;
		st->next = NULL;
		handle(s, st);
	}
	s->processing = false;
	if (s->busy || s->state == SS_CLOSED)
		return;
	if (s->parse_error) {
		session_stream_error(s, xml_status_condition(s->parse_error), NULL);
	} else if (s->peer_closed) {
		/* RFC 6120 4.4: answer the client's closing tag with ours, then close. */
		if (s->state == SS_ACTIVE)
			offline_delivered_all(s);
		if (s->tp)
			s->tp->end(s->t);
		session_close(s, "closed by client");
	}
}

/* ---- elements standing alone (RFC 7395 3.3.3, XEP-0206 7) ---- */

void
c2s_frame_element(struct buf *out, const char *data, size_t len)
{
	const char *end = data + len, *name = data + 1, *p = name;
	const char *gt;
	bool stream_prefix;

	/* Our serializer escapes '>' in attribute values: the first '>' ends the start tag. */
	if (len < 3 || data[0] != '<' || !(gt = memchr(data, '>', len))) {
		buf_append(out, data, len);
		return;
	}
	while (p < gt && *p != ' ' && *p != '/' && *p != '>')
		p++;
	stream_prefix = p - name > 7 && strncmp(name, "stream:", 7) == 0;
	buf_append(out, data, (size_t)(p - data));
	if (stream_prefix)
		buf_puts(out, " xmlns:stream='" NS_STREAM "'");
	else if (!memmem(p, (size_t)(gt - p), " xmlns='", 8))
		buf_puts(out, " xmlns='" NS_CLIENT "'");
	buf_append(out, p, (size_t)(end - p));
}
