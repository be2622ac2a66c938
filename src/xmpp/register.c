/*
 * register: XEP-0077 in-band registration. Before authentication, when
 * c2s.registration is open, anyone may create an account over TLS; once
 * authenticated, a user may change their password or cancel the account.
 *
 * Invariant: like batonctl, this stores only SCRAM salted keys, and an account is
 * created, changed or removed only by a storage job whose result the client sees.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_REGISTER  "jabber:iq:register"
#define PASSWORD_MAX 1023

enum reg_op { REG_CREATE, REG_PASSWD, REG_REMOVE };

struct reg_job {
	struct store_job job;
	struct session *s;
	struct xml_node *iq;
	enum reg_op op;
	char *jid;
	unsigned char creds[SASL_CREDS_BLOB];
};

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

	switch (rj->op) {
	case REG_CREATE:
		return store_account_create(st, rj->jid, rj->creds, sizeof rj->creds);
	case REG_PASSWD:
		return store_account_set_creds(st, rj->jid, rj->creds, sizeof rj->creds);
	default:
		return store_account_delete(st, rj->jid);
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
	if (s->state != SS_CLOSED) {
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
			session_reply_error(s, rj->iq, "wait", "internal-server-error", NULL);
		}
		session_busy(s, false);
	}
	if (r == 0 && rj->op == REG_REMOVE)
		account_with(server_home(s->w->srv, rj->jid), rj->jid, end_sessions, NULL);
	if (s->state != SS_CLOSED)
		session_process(s);
	xml_free(rj->iq);
	free(rj->jid);
	free(rj);
}

static void
submit(struct session *s, struct xml_node *iq, enum reg_op op, char *jid,
       const unsigned char *creds)
{
	struct reg_job *rj = xcalloc(1, sizeof *rj);

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

static struct xml_node *
form(const char *username, bool registered)
{
	struct xml_node *q = xml_el_new("query", NS_REGISTER);

	if (registered)
		xml_add_el(q, "registered", NULL);
	else
		xml_add_text(xml_add_el(q, "instructions", NULL), "Choose a username and password.",
			     31);
	struct xml_node *u = xml_add_el(q, "username", NULL);
	if (username)
		xml_add_text(u, username, strlen(username));
	xml_add_el(q, "password", NULL);
	return q;
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
	char *username = NULL, *password = NULL, *local = NULL, *jid;

	if (!get && !set) {
		xml_free(st);
		return;
	}
	if (!s->authenticated) {
		/* XEP-0077 3.1: a server without registration answers service-unavailable. */
		if (strcmp(cfg->registration, "open") != 0) {
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
		session_reply(s, st, form(s->user, s->authenticated));
		goto done;
	}
	if (s->authenticated && xml_child(q, "remove", NS_REGISTER)) {
		submit(s, st, REG_REMOVE, xstrdup(s->bare), NULL);
		return;
	}
	username = field(q, "username");
	password = field(q, "password");
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
	jid = xmalloc(strlen(local) + strlen(cfg->domain) + 2);
	sprintf(jid, "%s@%s", local, cfg->domain);
	submit(s, st, s->authenticated ? REG_PASSWD : REG_CREATE, jid, creds);
	st = NULL;
done:
	if (password)
		memset(password, 0, strlen(password));
	free(password);
	free(username);
	free(local);
	xml_free(st);
}
