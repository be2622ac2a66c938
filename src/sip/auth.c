/*
 * Digest authentication of SIP requests (RFC 3261 22, RFC 2617, RFC 8760): a request without
 * valid credentials gets a challenge (401 with WWW-Authenticate for REGISTER, 407 with
 * Proxy-Authenticate for the rest, 22.3), SHA-256 offered first; valid ones are checked
 * against the account's HA1 from storage.
 *
 * Invariant: unknown users and wrong passwords get the same answer, and a (nonce, nc) pair is
 * accepted once, so a captured request cannot be replayed.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "sip_int.h"

static char *bare_of(const char *user, bool alias);

static bool
is_register(const struct sip_req *r)
{
	return strcmp(r->m.method, "REGISTER") == 0;
}

static void
challenge(struct sip_req *r, bool stale)
{
	const char *realm = sip.cfg->domain;
	const char *hname = is_register(r) ? "WWW-Authenticate" : "Proxy-Authenticate";
	struct buf h = {0};
	char nonce[128];

	digest_nonce(sip.key, realm, wall_ms(), nonce, sizeof nonce);
	/* RFC 8760 2.4: one challenge per algorithm, in sip.digest's order of preference. */
	for (const char *p = sip.cfg->sip_digest; *p;) {
		size_t n = strcspn(p, " ,");
		int alg = n == 7 && strncasecmp(p, "SHA-256", 7) == 0 ? DIGEST_SHA256
			  : n == 3 && strncasecmp(p, "MD5", 3) == 0   ? DIGEST_MD5
								      : -1;
		if (alg >= 0) {
			buf_printf(&h, "%s: ", hname);
			digest_challenge(&h, alg, realm, nonce, stale);
			buf_puts(&h, "\r\n");
		}
		p += n;
		p += strspn(p, " ,");
	}
	if (is_register(r))
		sip_reply(r, 401, "Unauthorized", buf_head(&h), NULL, 0);
	else
		sip_reply(r, 407, "Proxy Authentication Required", buf_head(&h), NULL, 0);
	buf_free(&h);
}

static void
refuse(struct sip_req *r, const char *why)
{
	log_info("sip: %s from %s refused: %s", r->m.method, r->peer.addr.text, why);
	sip_reply(r, 403, "Forbidden", NULL, NULL, 0);
}

static int
creds_run(struct store *st, struct store_job *job)
{
	struct sip_req *r = container_of(job, struct sip_req, job);
	return store_account_creds(st, r->bare, &r->creds);
}

static void
hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static void
creds_done(struct store_job *job)
{
	struct sip_req *r = container_of(job, struct sip_req, job);
	struct digest_cred *c = r->arg;
	struct sasl_creds sc;
	char ha1[65];
	bool ok = false;

	if (job->result == 0 &&
	    sasl_creds_decode((const unsigned char *)buf_head(&r->creds), buf_used(&r->creds),
			      &sc) == 0 &&
	    sc.has_digest) {
		if (c->alg == DIGEST_SHA256)
			hex(sc.ha1_sha256, 32, ha1);
		else
			hex(sc.ha1_md5, 16, ha1);
		ok = digest_verify(c->alg, ha1, r->m.method, sip.cfg->domain, c) == 0;
		OPENSSL_cleanse(ha1, sizeof ha1);
	} else if (job->result == 0) {
		log_warn("sip: %s has a password set before SIP came: set it again to use SIP",
			 r->bare);
	}
	OPENSSL_cleanse(&sc, sizeof sc);
	buf_free(&r->creds);
	r->arg = NULL;
	if (!ok) {
		digest_cred_free(c);
		free(c);
		refuse(r, "wrong credentials (or no such user)");
		return;
	}
	/* Only a verified pair counts against the replay table. */
	if (!digest_replay_ok(sip.replay, c->nonce, c->nc)) {
		digest_cred_free(c);
		free(c);
		challenge(r, true);
		return;
	}
	digest_cred_free(c);
	free(c);
	r->next(r);
}

void
sip_auth(struct sip_req *r, void (*next)(struct sip_req *r))
{
	const char *h = sip_hdr(&r->m, is_register(r) ? "Authorization" : "Proxy-Authorization");
	struct digest_cred *c;
	struct jid j;
	char *at;
	int fresh;

	if (!h) /* a proxy-style UA may answer a 401 too */
		h = sip_hdr(&r->m, is_register(r) ? "Proxy-Authorization" : "Authorization");
	if (!h) {
		challenge(r, false);
		return;
	}
	c = xcalloc(1, sizeof *c);
	if (digest_parse_credentials(h, c) < 0 || strcmp(c->realm, sip.cfg->domain) != 0) {
		free(c);
		challenge(r, false);
		return;
	}
	/* Only an algorithm we offer (an operator may have turned MD5 off). */
	if (!strcasestr(sip.cfg->sip_digest, c->alg == DIGEST_SHA256 ? "SHA-256" : "MD5")) {
		digest_cred_free(c);
		free(c);
		challenge(r, false);
		return;
	}
	/*
	 * RFC 2617 3.2.2.5 wants the digest uri to name the Request-URI's resource; phones (and
	 * sipp) put the proxy's address there. The response is computed over the uri they gave,
	 * and each (nonce, nc) is accepted once, so a looser match gives nothing away.
	 */
	fresh = digest_nonce_check(sip.key, sip.cfg->domain, c->nonce, wall_ms(),
				   (int64_t)sip.cfg->sip_nonce_ttl);
	if (fresh != 0) { /* forged (-1) or old (1): a new nonce; stale only if it was ours */
		digest_cred_free(c);
		free(c);
		challenge(r, fresh == 1);
		return;
	}
	/*
	 * The username is the account's localpart ("alice" or "alice@<domain>"): the private
	 * identity HA1 was made with; a number alias is a public identity (To, From, R-URI) only.
	 */
	at = strchr(c->username, '@');
	if (at && strcmp(at + 1, sip.cfg->domain) != 0) {
		digest_cred_free(c);
		free(c);
		refuse(r, "a user of another domain");
		return;
	}
	if (at)
		*at = '\0';
	r->bare = bare_of(c->username, false);
	if (!r->bare || jid_parse(r->bare, &j) < 0) {
		free(r->bare);
		r->bare = NULL;
		digest_cred_free(c);
		free(c);
		refuse(r, "not a username");
		return;
	}
	r->user = xstrdup(j.local);
	jid_free(&j);
	r->next = next;
	r->arg = c;
	memset(&r->job, 0, sizeof r->job);
	r->job.run = creds_run;
	r->job.done = creds_done;
	worker_store(sip.w, &r->job);
}

/* ---- which account a URI or a digest username names ---- */

/* The account localpart a telephone number is an alias of ([sip.alias]), or NULL. */
static const char *
alias_of(const char *number)
{
	for (size_t i = 0; i < sip.cfg->n_sip_aliases; i++)
		if (strcmp(sip.cfg->sip_aliases[i].number, number) == 0)
			return sip.cfg->sip_aliases[i].user;
	return NULL;
}

/* localpart (or, with alias, a number alias) -> the account's bare JID, or NULL. */
static char *
bare_of(const char *user, bool alias_ok)
{
	const char *alias = alias_ok ? alias_of(user) : NULL;
	struct buf b = {0};
	struct jid j;
	char *bare = NULL;

	buf_printf(&b, "%s@%s", alias ? alias : user, sip.cfg->domain);
	if (jid_parse(buf_head(&b), &j) == 0) {
		if (j.local && !j.resource)
			bare = jid_bare(&j);
		jid_free(&j);
	}
	buf_free(&b);
	return bare;
}

char *
sip_uri_account(const char *uri)
{
	struct sip_uri u;
	char *bare = NULL;

	/* RFC 3966: tel:+15550100;params, an identity form of seed 003 R2. */
	if (uri && strncasecmp(uri, "tel:", 4) == 0) {
		char number[64];
		size_t n = strcspn(uri + 4, ";");
		if (n == 0 || n >= sizeof number)
			return NULL;
		memcpy(number, uri + 4, n);
		number[n] = '\0';
		return alias_of(number) ? bare_of(number, true) : NULL;
	}
	if (!uri || sip_parse_uri(uri, &u) < 0)
		return NULL;
	if (u.user && strcasecmp(u.host, sip.cfg->domain) == 0)
		bare = bare_of(u.user, true);
	sip_uri_free(&u);
	return bare;
}
