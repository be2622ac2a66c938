/*
 * register: XEP-0077 in-band registration. Before authentication, when
 * c2s.registration is open, anyone may create an account over TLS; with token, only
 * with an invitation made by batonctl invite (XEP-0401 / XEP-0445); once
 * authenticated, a user may change their password or cancel the account.
 *
 * Invariant: like batonctl, this stores only SCRAM salted keys, and an account is
 * created, changed or removed only by a storage job whose result the client sees. The
 * invitation's use, the per-IP count and the account are checked and written by that
 * one job, on the storage thread, so two registrations never share a last use.
 *
 * The token reaches us two ways, both accepted: Conversations (and Siskin, Monal) send
 * <preauth xmlns='urn:xmpp:pars:0' token='...'/> in an iq before the registration, after
 * seeing the <register xmlns='urn:xmpp:invite'/> or urn:xmpp:ibr-token:0 stream feature
 * (XEP-0401 section 5, XEP-0445 section 3); other clients fill the 'token' field of our
 * registration form (a data form field, or a <token/> child of the query).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_REGISTER  "jabber:iq:register"
#define NS_PARS	     "urn:xmpp:pars:0"
#define NS_XDATA     "jabber:x:data"
#define PASSWORD_MAX 1023
#define TOKEN_MAX    128
#define RATE_IPS_MAX 4096 /* addresses counted at once; past it the oldest windows go */

enum reg_op { REG_CREATE, REG_PASSWD, REG_REMOVE, REG_PREAUTH };

/* Results of a job beside the store's own (never seen outside this file). */
enum {
	REG_ETOKEN = -1001,   /* no such invitation, or revoked */
	REG_EUSED = -1002,    /* used up */
	REG_EEXPIRED = -1003, /* expired */
	REG_ERATE = -1004,    /* c2s.registration_rate reached for this address */
};

struct reg_job {
	struct store_job job;
	struct session *s;
	struct xml_node *iq;
	enum reg_op op;
	char *jid;
	char *token; /* REG_CREATE with token mode, REG_PREAUTH: the invitation */
	char ip[64]; /* REG_CREATE: the address counted by the rate limit */
	long rate;
	uint64_t period;
	unsigned char creds[SASL_CREDS_BLOB];
};

/*
 * Registrations per address: a fixed window per IP. Touched only by reg_run(), that is on
 * the one storage thread, so it needs no lock and stays out of the workers' way.
 */
struct rate_window {
	int64_t start; /* wall ms */
	long count;
};
static struct hmap rate_ips;

/* Drops windows that ended; if still full, every window (a flood of addresses). */
static void
rate_prune(int64_t now, uint64_t period)
{
	const char *k;
	void *v;
	struct hmap keep = {0};

	for (size_t i = 0; hmap_next(&rate_ips, &i, &k, &v);) {
		struct rate_window *rw = v;
		if (now - rw->start < (int64_t)period && rate_ips.count < RATE_IPS_MAX)
			hmap_put(&keep, k, rw);
		else
			free(rw);
	}
	hmap_free(&rate_ips);
	rate_ips = keep;
}

/* Whether ip may register one more account now; counts it if so. */
static bool
rate_take(const char *ip, long rate, uint64_t period)
{
	int64_t now = wall_ms();
	struct rate_window *rw;

	if (rate <= 0)
		return true;
	if (rate_ips.count >= RATE_IPS_MAX)
		rate_prune(now, period);
	rw = hmap_get(&rate_ips, ip);
	if (!rw) {
		rw = xcalloc(1, sizeof *rw);
		rw->start = now;
		hmap_put(&rate_ips, ip, rw);
	}
	if (now - rw->start >= (int64_t)period) {
		rw->start = now;
		rw->count = 0;
	}
	if (rw->count >= rate)
		return false;
	rw->count++;
	return true;
}

/* Checks invitation token; takes one use of it if use. */
static int
token_check(struct store *st, const char *token, bool use)
{
	long uses;
	int64_t expires;
	int r = store_invite_get(st, token, &uses, &expires);

	if (r == STORE_ENOENT)
		return REG_ETOKEN;
	if (r < 0)
		return r;
	if (uses <= 0)
		return REG_EUSED;
	if (expires <= wall_ms())
		return REG_EEXPIRED;
	if (!use)
		return 0;
	r = store_invite_use(st, token);
	return r == STORE_ENOENT ? REG_EUSED : r;
}

bool
register_is(const struct xml_node *st)
{
	struct xml_node *q = xml_child(st, "query", NS_REGISTER);
	return stanza_is(st, "iq") && q != NULL;
}

static char *
field(const struct xml_node *q, const char *name)
{
	struct xml_node *f = xml_child(q, name, NS_REGISTER);
	return f ? xml_text(f) : NULL;
}

static int
reg_run(struct store *st, struct store_job *job)
{
	struct reg_job *rj = container_of(job, struct reg_job, job);

	int r;

	switch (rj->op) {
	case REG_PREAUTH:
		return token_check(st, rj->token, false);
	case REG_CREATE:
		if (rj->token && (r = token_check(st, rj->token, false)) < 0)
			return r;
		/* Counted before creating: a conflict costs a try as well, so the limit also
		 * bounds how fast one address can probe for taken names. */
		if (!rate_take(rj->ip, rj->rate, rj->period))
			return REG_ERATE;
		r = store_account_create(st, rj->jid, rj->creds, sizeof rj->creds);
		/* The use is taken only with the account: a conflict (not undone by the
		 * storage thread) must leave the invitation as it was. */
		if (r == 0 && rj->token)
			r = token_check(st, rj->token, true);
		return r;
	case REG_PASSWD:
		return store_account_set_creds(st, rj->jid, rj->creds, sizeof rj->creds);
	default:
		return store_account_delete(st, rj->jid);
	}
}

/* The error for a refused token, the rate limit or a storage failure. */
static void
reply_failure(struct session *s, const struct xml_node *iq, int r)
{
	switch (r) {
	case REG_ETOKEN:
		session_reply_error(s, iq, "cancel", "not-allowed",
				    "The invitation token is not valid (unknown or revoked)");
		break;
	case REG_EUSED:
		session_reply_error(s, iq, "cancel", "not-allowed",
				    "The invitation token has been used up");
		break;
	case REG_EEXPIRED:
		session_reply_error(s, iq, "cancel", "not-allowed",
				    "The invitation token has expired");
		break;
	case REG_ERATE:
		/* XEP-0077 section 3.1 leaves limits to the server; RFC 6120 8.3.3.12. */
		log_info("%s: registration refused: rate limit for %s", s->id, session_peer(s));
		session_reply_error(s, iq, "wait", "policy-violation",
				    "Too many registrations from your address; try again later");
		break;
	default:
		session_reply_error(s, iq, "wait", "internal-server-error", NULL);
	}
}

/* XEP-0077 3.2: once the account is gone, its sessions end. */
static void
end_sessions(struct account *a, void *arg)
{
	struct session *s;

	if (a->state != AS_READY)
		return;
	while ((s = a->sessions))
		session_stream_error(s, "not-authorized", "The account has been removed");
	a->state = AS_MISSING;
}

static void
reg_done(struct store_job *job)
{
	struct reg_job *rj = container_of(job, struct reg_job, job);
	struct session *s = rj->s;
	int r = job->result;

	session_unref(s);
	if (s->state != SS_CLOSED && rj->op == REG_PREAUTH) {
		if (r == 0) {
			free(s->reg_token);
			s->reg_token = rj->token; /* used when the registration comes */
			rj->token = NULL;
			session_reply(s, rj->iq, NULL);
		} else {
			reply_failure(s, rj->iq, r);
		}
		session_busy(s, false);
	} else if (s->state != SS_CLOSED) {
		if (r == 0) {
			log_info("%s: %s %s", s->id,
				 rj->op == REG_CREATE	? "registered"
				 : rj->op == REG_PASSWD ? "changed the password of"
							: "removed",
				 rj->jid);
			session_reply(s, rj->iq, NULL);
		} else if (r == STORE_EEXIST) {
			session_reply_error(s, rj->iq, "cancel", "conflict",
					    NULL); /* XEP-0077 3.1 */
		} else if (r == STORE_ENOENT) {
			session_reply_error(s, rj->iq, "cancel", "item-not-found", NULL);
		} else {
			reply_failure(s, rj->iq, r);
		}
		session_busy(s, false);
	}
	if (r == 0 && rj->op == REG_REMOVE)
		account_with(server_home(s->w->srv, rj->jid), rj->jid, end_sessions, NULL);
	if (s->state != SS_CLOSED)
		session_process(s);
	xml_free(rj->iq);
	free(rj->jid);
	free(rj->token);
	free(rj);
}

static void
submit(struct session *s, struct xml_node *iq, enum reg_op op, char *jid,
       const unsigned char *creds, char *token)
{
	struct reg_job *rj = xcalloc(1, sizeof *rj);
	const struct config *cfg = s->w->srv->cfg;
	const char *peer = session_peer(s);
	size_t iplen = strlen(peer);
	const char *colon = strrchr(peer, ':');

	/* The address without the port: "1.2.3.4:5", "[::1]:5" */
	if (colon && colon != peer)
		iplen = (size_t)(colon - peer);
	snprintf(rj->ip, sizeof rj->ip, "%.*s", (int)iplen, peer);
	rj->rate = cfg->registration_rate;
	rj->period = cfg->registration_period;
	rj->token = token;

	if (creds)
		memcpy(rj->creds, creds, sizeof rj->creds);
	rj->s = s;
	rj->iq = iq;
	rj->op = op;
	rj->jid = jid;
	rj->job.run = reg_run;
	rj->job.done = reg_done;
	s->jobs++;
	session_busy(s, true);
	worker_store(s->w, &rj->job);
}

/* Derives the stored form of user's password (SCRAM keys and digest HA1s) into out; returns
 * its length, or -1 (not acceptable). */
static long
make_creds(const struct config *cfg, const char *user, const char *password,
	   unsigned char out[SASL_CREDS_BLOB])
{
	unsigned char salt[SASL_SALT_LEN];
	struct sasl_creds c;

	if (!password || strlen(password) > PASSWORD_MAX)
		return -1;
	rand_bytes(salt, sizeof salt);
	if (sasl_creds_derive(password, salt, (uint32_t)cfg->scram_iterations, &c) < 0 ||
	    sasl_creds_digest(&c, user, cfg->domain, password) < 0)
		return -1;
	return (long)sasl_creds_encode(&c, out);
}

static void
form_field(struct xml_node *x, const char *var, const char *type, const char *label,
	   const char *value, bool required)
{
	struct xml_node *f = xml_add_el(x, "field", NS_XDATA);

	xml_set_attr(f, "var", var);
	xml_set_attr(f, "type", type);
	if (label)
		xml_set_attr(f, "label", label);
	if (required)
		xml_add_el(f, "required", NS_XDATA);
	if (value)
		xml_add_text(xml_add_el(f, "value", NS_XDATA), value, strlen(value));
}

/*
 * The registration form. With c2s.registration = token, it asks for the invitation too,
 * as a <token/> field and (XEP-0077 section 4) in a data form with the same fields; the
 * token is filled in when the client already gave it with <preauth/>.
 */
static struct xml_node *
form(const char *username, bool registered, bool token, const char *have_token)
{
	struct xml_node *q = xml_el_new("query", NS_REGISTER);
	const char *text = token ? "Choose a username and password, and give your invitation."
				 : "Choose a username and password.";

	if (registered)
		xml_add_el(q, "registered", NULL);
	else
		xml_add_text(xml_add_el(q, "instructions", NULL), text, strlen(text));
	struct xml_node *u = xml_add_el(q, "username", NULL);
	if (username)
		xml_add_text(u, username, strlen(username));
	xml_add_el(q, "password", NULL);
	if (token && !registered) {
		struct xml_node *t = xml_add_el(q, "token", NULL);
		if (have_token)
			xml_add_text(t, have_token, strlen(have_token));
		struct xml_node *x = xml_add_el(q, "x", NS_XDATA);
		xml_set_attr(x, "type", "form");
		xml_add_text(xml_add_el(x, "instructions", NS_XDATA), text, strlen(text));
		form_field(x, "FORM_TYPE", "hidden", NULL, NS_REGISTER, false);
		form_field(x, "username", "text-single", "Username", NULL, true);
		form_field(x, "password", "text-private", "Password", NULL, true);
		form_field(x, "token", "text-single", "Invitation token", have_token, true);
	}
	return q;
}

/* A field of a submitted data form in q, or NULL; caller frees. */
static char *
form_value(const struct xml_node *q, const char *var)
{
	for (struct xml_node *x = xml_child(q, "x", NS_XDATA); x; x = xml_next(x, "x", NS_XDATA)) {
		for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f;
		     f = xml_next(f, "field", NS_XDATA)) {
			const char *v = xml_attr(f, "var");
			struct xml_node *val = xml_child(f, "value", NS_XDATA);
			if (v && strcmp(v, var) == 0 && val)
				return xml_text(val);
		}
	}
	return NULL;
}

/* A registration field: the plain element of XEP-0077 section 3, else the data form's. */
static char *
reg_field(const struct xml_node *q, const char *name)
{
	char *v = field(q, name);
	if (v && *v)
		return v;
	free(v);
	return form_value(q, name);
}

bool
register_preauth_is(const struct xml_node *st)
{
	return stanza_is(st, "iq") && xml_child(st, "preauth", NS_PARS) != NULL;
}

void
register_preauth(struct session *s, struct xml_node *st)
{
	const struct config *cfg = s->w->srv->cfg;
	struct xml_node *p = xml_child(st, "preauth", NS_PARS);
	const char *type = xml_attr(st, "type");
	const char *token = xml_attr(p, "token");

	if (!type || strcmp(type, "set") != 0) {
		if (!stanza_is_error(st) && (!type || strcmp(type, "result") != 0))
			session_reply_error(s, st, "modify", "bad-request", NULL);
		xml_free(st);
		return;
	}
	if (strcmp(cfg->registration, "closed") == 0) {
		session_reply_error(s, st, "cancel", "service-unavailable", NULL);
		xml_free(st);
		return;
	}
	if (!token || !*token || strlen(token) > TOKEN_MAX) {
		session_reply_error(s, st, "modify", "bad-request", "A token is required");
		xml_free(st);
		return;
	}
	submit(s, st, REG_PREAUTH, NULL, NULL, xstrdup(token));
}

void
register_features(struct buf *b)
{
	/* XEP-0401 section 5 (the feature Conversations looks for), XEP-0445 section 3. */
	buf_puts(b, "<register xmlns='urn:xmpp:invite'/><register xmlns='urn:xmpp:ibr-token:0'/>");
}

void
register_iq(struct session *s, struct xml_node *st)
{
	const struct config *cfg = s->w->srv->cfg;
	struct xml_node *q = xml_child(st, "query", NS_REGISTER);
	const char *type = xml_attr(st, "type");
	bool get = type && strcmp(type, "get") == 0;
	bool set = type && strcmp(type, "set") == 0;
	unsigned char creds[SASL_CREDS_BLOB];
	char *username = NULL, *password = NULL, *local = NULL, *token = NULL, *jid;
	bool by_token = strcmp(cfg->registration, "token") == 0;

	if (!get && !set) {
		xml_free(st);
		return;
	}
	if (!s->authenticated) {
		/* XEP-0077 3.1: a server without registration answers service-unavailable. */
		if (strcmp(cfg->registration, "open") != 0 && !by_token) {
			session_reply_error(s, st, "cancel", "service-unavailable", NULL);
			goto done;
		}
		if (!session_secure(s) && !cfg->allow_plaintext) {
			session_reply_error(s, st, "cancel", "not-authorized",
					    "Registration requires TLS");
			goto done;
		}
	}
	if (get) {
		session_reply(s, st, form(s->user, s->authenticated, by_token, s->reg_token));
		goto done;
	}
	if (s->authenticated && xml_child(q, "remove", NS_REGISTER)) {
		submit(s, st, REG_REMOVE, xstrdup(s->bare), NULL, NULL);
		return;
	}
	username = reg_field(q, "username");
	password = reg_field(q, "password");
	if (!username || !password || jid_norm_local(username, &local) < 0 ||
	    make_creds(cfg, local, password, creds) != SASL_CREDS_BLOB) {
		/* XEP-0077 3.1: required information missing or unusable. */
		session_reply_error(s, st, "modify", "not-acceptable", NULL);
		goto done;
	}
	if (s->authenticated && strcmp(local, s->user) != 0) {
		session_reply_error(s, st, "modify", "not-allowed", "That is not your username");
		goto done;
	}
	if (!s->authenticated && by_token) {
		/* XEP-0445 section 3: the form's token, else the one given with <preauth/>. */
		token = reg_field(q, "token");
		if ((!token || !*token) && s->reg_token) {
			free(token);
			token = xstrdup(s->reg_token);
		}
		if (!token || !*token) {
			session_reply_error(s, st, "cancel", "not-allowed",
					    "An invitation token is required");
			goto done;
		}
		if (strlen(token) > TOKEN_MAX) {
			session_reply_error(
			    s, st, "cancel", "not-allowed",
			    "The invitation token is not valid (unknown or revoked)");
			goto done;
		}
	}
	jid = xmalloc(strlen(local) + strlen(cfg->domain) + 2);
	sprintf(jid, "%s@%s", local, cfg->domain);
	submit(s, st, s->authenticated ? REG_PASSWD : REG_CREATE, jid, creds, token);
	token = NULL;
	st = NULL;
done:
	if (password)
		memset(password, 0, strlen(password));
	free(password);
	free(username);
	free(local);
	free(token);
	xml_free(st);
}
