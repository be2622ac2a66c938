/*
 * test_sasl: unit tests of the SASL engine. The test plays an independent SCRAM
 * client (built on OpenSSL, checked first against the RFC 5802 and RFC 7677 example
 * exchanges) and drives the engine through good and broken exchanges; it also covers
 * PLAIN, base64 and the credentials blob, including corrupt inputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/core.h"
#include "xmpp/jid.h"
#include "xmpp/sasl.h"

#include "check.h"

/* One byte past the engine's message limit (SASL_MSG_MAX in sasl.c). */
#define SASL_MSG_MAX_TEST 4097
/* A string literal and its length, for messages with embedded NULs. */
#define M(s) s, sizeof(s) - 1

static const char *
str_or_null(const char *s)
{
	return s ? s : "(null)";
}

/* ---- an independent SCRAM client ---- */

/*
 * Computes ClientProof and ServerSignature for password over auth_message
 * (RFC 5802 section 3), from scratch: nothing from sasl.c is used.
 */
static void
client_compute(const EVP_MD *md, const char *password, const unsigned char *salt, size_t saltlen,
	       unsigned int iterations, const char *auth_message, unsigned char *proof,
	       unsigned char *server_sig)
{
	unsigned char salted[64], ckey[64], stored[64], csig[64], skey[64];
	int hlen = EVP_MD_get_size(md);
	unsigned int len;
	size_t am = strlen(auth_message);

	PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen, (int)iterations, md,
			  hlen, salted);
	HMAC(md, salted, hlen, (const unsigned char *)"Client Key", 10, ckey, &len);
	EVP_Digest(ckey, (size_t)hlen, stored, NULL, md, NULL);
	HMAC(md, stored, hlen, (const unsigned char *)auth_message, am, csig, &len);
	for (int i = 0; i < hlen; i++)
		proof[i] = ckey[i] ^ csig[i];
	HMAC(md, salted, hlen, (const unsigned char *)"Server Key", 10, skey, &len);
	HMAC(md, skey, hlen, (const unsigned char *)auth_message, am, server_sig, &len);
}

static char *
b64(const void *data, size_t n)
{
	struct buf b = {0};

	base64_encode(&b, data, n);
	return buf_steal(&b);
}

/* The RFC examples validate the test client (and base64). */
static void
test_rfc_vectors(void)
{
	static const struct {
		const char *name, *password, *salt_b64, *bare, *server_first, *final_wo_proof;
		const char *proof, *verifier;
	} v[] = {
	    /* RFC 5802 section 5 */
	    {"SHA-1", "pencil", "QSXCR+Q6sek8bf92", "n=user,r=fyko+d2lbbFgONRv9qkxdawL",
	     "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
	     "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
	     "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "rmF9pqV8S7suAoZWja4dJRkFsKQ="},
	    /* RFC 7677 section 3 */
	    {"SHA-256", "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", "n=user,r=rOprNGfwEbeRWgbNEkqO",
	     "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
	     "i=4096",
	     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
	     "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
	     "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="},
	};

	for (size_t i = 0; i < ARRAY_LEN(v); i++) {
		const EVP_MD *md = i == 0 ? EVP_sha1() : EVP_sha256();
		size_t hlen = (size_t)EVP_MD_get_size(md);
		struct buf salt = {0}, am = {0};
		unsigned char proof[64], sig[64];
		char *p, *s;

		CHECK(base64_decode(&salt, v[i].salt_b64, strlen(v[i].salt_b64)) == 0, "salt");
		buf_printf(&am, "%s,%s,%s", v[i].bare, v[i].server_first, v[i].final_wo_proof);
		client_compute(md, v[i].password, (const unsigned char *)buf_head(&salt),
			       buf_used(&salt), 4096, buf_head(&am), proof, sig);
		p = b64(proof, hlen);
		s = b64(sig, hlen);
		CHECK(strcmp(p, v[i].proof) == 0, "%s client proof %s", v[i].name, p);
		CHECK(strcmp(s, v[i].verifier) == 0, "%s server signature %s", v[i].name, s);
		free(p);
		free(s);

		/* RFC 7677: the salt fits the store, so check sasl_creds_derive against it. */
		if (buf_used(&salt) == SASL_SALT_LEN) {
			struct sasl_creds c;
			struct buf pr = {0};
			unsigned char csig[32], ckey[32], h[32];
			unsigned int len;

			CHECK(sasl_creds_derive("pencil", (const unsigned char *)buf_head(&salt),
						4096, &c) == 0,
			      "derive");
			HMAC(EVP_sha256(), c.sha256_server, 32,
			     (const unsigned char *)buf_head(&am), buf_used(&am), sig, &len);
			s = b64(sig, 32);
			CHECK(strcmp(s, v[i].verifier) == 0, "derived ServerKey gives %s", s);
			free(s);
			base64_decode(&pr, v[i].proof, strlen(v[i].proof));
			HMAC(EVP_sha256(), c.sha256_stored, 32,
			     (const unsigned char *)buf_head(&am), buf_used(&am), csig, &len);
			for (int k = 0; k < 32; k++)
				ckey[k] = (unsigned char)buf_head(&pr)[k] ^ csig[k];
			EVP_Digest(ckey, 32, h, NULL, EVP_sha256(), NULL);
			CHECK(memcmp(h, c.sha256_stored, 32) == 0,
			      "RFC 7677 proof vs derived StoredKey");
			CHECK(c.iterations == 4096 && memcmp(c.salt, buf_head(&salt), 16) == 0,
			      "derive keeps salt and iterations");
			buf_free(&pr);
		}
		buf_free(&salt);
		buf_free(&am);
	}
}

/* ---- SCRAM exchanges against the engine ---- */

enum mutation {
	MUT_NONE,
	MUT_CB,		/* c= names another gs2 header */
	MUT_NONCE,	/* the nonce is not the one the server sent */
	MUT_SHORTPROOF, /* proof of the wrong length */
	MUT_NOPROOF,	/* no p= at all */
	MUT_BADB64,	/* proof is not base64 */
	MUT_EXT,	/* an (ignored) extension before the proof */
	MUT_PROOFFIRST, /* attributes out of order */
};

static struct sasl_creds pencil; /* "pencil", random salt, 4096 iterations */

struct scram_case {
	const char *mech, *client_first, *password;
	const struct sasl_creds *creds; /* NULL: no such account */
	enum mutation mut;
	int want_first; /* result of the first step */
	const char *want_user;
	int want; /* final result */
	const char *want_cond;
};

/* Runs one exchange; returns the final result and checks what the client would see. */
static void
scram_run(size_t idx, const struct scram_case *c)
{
	bool sha1 = strcmp(c->mech, "SCRAM-SHA-1") == 0;
	const EVP_MD *md = sha1 ? EVP_sha1() : EVP_sha256();
	size_t hlen = sha1 ? 20 : 32;
	struct sasl *s = sasl_new(c->mech);
	struct buf out = {0}, fin = {0}, am = {0}, salt = {0};
	const char *bare, *sf, *r, *sp, *ip;
	char *gs2, *cnonce, *snonce = NULL, *p;
	unsigned char proof[64], sig[64];
	int rc;

	CHECK(s != NULL, "case %zu: sasl_new(%s)", idx, c->mech);
	rc = sasl_step(s, c->client_first, strlen(c->client_first), &out);
	CHECK(rc == c->want_first, "case %zu: first step %d, want %d (%s)", idx, rc, c->want_first,
	      str_or_null(rc == SASL_FAIL ? sasl_condition(s) : NULL));
	if (rc == SASL_FAIL) {
		CHECK(rc == c->want && c->want_cond && strcmp(sasl_condition(s), c->want_cond) == 0,
		      "case %zu: condition %s, want %s", idx, sasl_condition(s),
		      str_or_null(c->want_cond));
		goto done;
	}
	CHECK((c->want_user == NULL && sasl_username(s) == NULL) ||
		  (c->want_user && sasl_username(s) && strcmp(sasl_username(s), c->want_user) == 0),
	      "case %zu: username %s, want %s", idx, str_or_null(sasl_username(s)),
	      str_or_null(c->want_user));
	if (rc == SASL_NEED_CREDS) {
		CHECK(buf_used(&out) == 0, "case %zu: output with NEED_CREDS", idx);
		sasl_set_creds(s, c->creds);
		rc = sasl_step(s, NULL, 0, &out);
	}
	CHECK(rc == SASL_CONTINUE, "case %zu: server-first step %d", idx, rc);
	if (rc != SASL_CONTINUE)
		goto done;

	/* Parse server-first "r=...,s=...,i=..." as a client would. */
	sf = buf_head(&out);
	gs2 = xstrdup(c->client_first);
	bare = strchr(strchr(c->client_first, ',') + 1, ',') + 1;
	gs2[bare - c->client_first] = '\0';
	cnonce = xstrdup(strstr(bare, "r=") + 2);
	if (strchr(cnonce, ','))
		*strchr(cnonce, ',') = '\0';
	r = sf;
	sp = strstr(sf, ",s=");
	ip = strstr(sf, ",i=");
	CHECK(strncmp(r, "r=", 2) == 0 && sp && ip && sp < ip, "case %zu: server-first %s", idx,
	      sf);
	if (!sp || !ip)
		goto free_client;
	snonce = xstrndup(r + 2, (size_t)(sp - r - 2));
	CHECK(strncmp(snonce, cnonce, strlen(cnonce)) == 0 && strlen(snonce) > strlen(cnonce),
	      "case %zu: server nonce %s does not extend %s", idx, snonce, cnonce);
	CHECK(base64_decode(&salt, sp + 3, (size_t)(ip - sp - 3)) == 0 &&
		  buf_used(&salt) == SASL_SALT_LEN,
	      "case %zu: salt", idx);
	if (c->creds)
		CHECK(memcmp(buf_head(&salt), c->creds->salt, SASL_SALT_LEN) == 0 &&
			  (unsigned long)atol(ip + 3) == c->creds->iterations,
		      "case %zu: salt/iterations not the account's", idx);

	/* client-final */
	buf_puts(&fin, "c=");
	if (c->mut == MUT_CB)
		buf_puts(&fin, "eSws");
	else
		base64_encode(&fin, gs2, strlen(gs2));
	buf_printf(&fin, ",r=%s%s", snonce, c->mut == MUT_NONCE ? "x" : "");
	if (c->mut == MUT_EXT)
		buf_puts(&fin, ",x=whatever");
	buf_printf(&am, "%s,%s,%s", bare, sf, buf_head(&fin));
	client_compute(md, c->password, (const unsigned char *)buf_head(&salt), SASL_SALT_LEN,
		       (unsigned int)atol(ip + 3), buf_head(&am), proof, sig);
	p = b64(proof, c->mut == MUT_SHORTPROOF ? hlen - 1 : hlen);
	if (c->mut == MUT_BADB64)
		p[0] = '*';
	if (c->mut == MUT_PROOFFIRST) {
		struct buf t = {0};
		buf_printf(&t, "p=%s,%s", p, buf_head(&fin));
		buf_free(&fin);
		fin = t;
	} else if (c->mut != MUT_NOPROOF) {
		buf_printf(&fin, ",p=%s", p);
	}
	free(p);
	buf_reset(&out);
	rc = sasl_step(s, buf_head(&fin), buf_used(&fin), &out);
	CHECK(rc == c->want, "case %zu: final step %d, want %d (%s)", idx, rc, c->want,
	      str_or_null(rc == SASL_FAIL ? sasl_condition(s) : NULL));
	if (rc == SASL_SUCCESS) {
		char *v = b64(sig, hlen);
		CHECK(buf_used(&out) == strlen(v) + 2 && strncmp(buf_head(&out), "v=", 2) == 0 &&
			  strcmp(buf_head(&out) + 2, v) == 0,
		      "case %zu: server-final %s, want v=%s", idx, buf_head(&out), v);
		free(v);
		/* Nothing more is accepted once done. */
		buf_reset(&out);
		CHECK(sasl_step(s, "x", 1, &out) == SASL_FAIL &&
			  strcmp(sasl_condition(s), "malformed-request") == 0,
		      "case %zu: step after success", idx);
	} else if (rc == SASL_FAIL) {
		CHECK(c->want_cond && strcmp(sasl_condition(s), c->want_cond) == 0,
		      "case %zu: condition %s, want %s", idx, sasl_condition(s),
		      str_or_null(c->want_cond));
		CHECK(buf_used(&out) == 0, "case %zu: data with failure", idx);
	}
free_client:
	free(gs2);
	free(cnonce);
	free(snonce);
done:
	buf_free(&out);
	buf_free(&fin);
	buf_free(&am);
	buf_free(&salt);
	sasl_free(s);
}

static void
test_scram(void)
{
	const struct scram_case cases[] = {
	    {"SCRAM-SHA-256", "n,,n=user,r=abcdefghij", "pencil", &pencil, MUT_NONE,
	     SASL_NEED_CREDS, "user", SASL_SUCCESS, NULL},
	    {"SCRAM-SHA-1", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "pencil", &pencil, MUT_NONE,
	     SASL_NEED_CREDS, "user", SASL_SUCCESS, NULL},
	    /* The username is a localpart, so it is case-mapped. */
	    {"SCRAM-SHA-256", "n,,n=USER,r=abc", "pencil", &pencil, MUT_NONE, SASL_NEED_CREDS,
	     "user", SASL_SUCCESS, NULL},
	    /* "y": the client could bind but thinks we cannot; true, we offer no -PLUS. */
	    {"SCRAM-SHA-256", "y,,n=user,r=abc", "pencil", &pencil, MUT_NONE, SASL_NEED_CREDS,
	     "user", SASL_SUCCESS, NULL},
	    {"SCRAM-SHA-1", "n,a=user,n=user,r=abc", "pencil", &pencil, MUT_NONE, SASL_NEED_CREDS,
	     "user", SASL_SUCCESS, NULL},
	    {"SCRAM-SHA-256", "n,,n=user,r=abc,x=ext", "pencil", &pencil, MUT_EXT, SASL_NEED_CREDS,
	     "user", SASL_SUCCESS, NULL},
	    {"SCRAM-SHA-256", "n,,n=us=3Der,r=abc", "pencil", &pencil, MUT_NONE, SASL_NEED_CREDS,
	     "us=er", SASL_SUCCESS, NULL},
	    /* Wrong password, unknown user: same path, same failure. */
	    {"SCRAM-SHA-256", "n,,n=user,r=abc", "pencils", &pencil, MUT_NONE, SASL_NEED_CREDS,
	     "user", SASL_FAIL, "not-authorized"},
	    {"SCRAM-SHA-1", "n,,n=user,r=abc", "Pencil", &pencil, MUT_NONE, SASL_NEED_CREDS, "user",
	     SASL_FAIL, "not-authorized"},
	    {"SCRAM-SHA-256", "n,,n=nobody,r=abc", "pencil", NULL, MUT_NONE, SASL_NEED_CREDS,
	     "nobody", SASL_FAIL, "not-authorized"},
	    /* A name that is no valid localpart skips the lookup and fails at the end. */
	    {"SCRAM-SHA-256", "n,,n=a b,r=abc", "pencil", NULL, MUT_NONE, SASL_CONTINUE, NULL,
	     SASL_FAIL, "not-authorized"},
	    {"SCRAM-SHA-256", "n,,n=a=2Cb,r=abc", "pencil", NULL, MUT_NONE, SASL_NEED_CREDS, "a,b",
	     SASL_FAIL, "not-authorized"},
	    /* Broken client-final messages. */
	    {"SCRAM-SHA-256", "n,,n=user,r=abc", "pencil", &pencil, MUT_CB, SASL_NEED_CREDS, "user",
	     SASL_FAIL, "not-authorized"},
	    {"SCRAM-SHA-256", "y,,n=user,r=abc", "pencil", &pencil, MUT_NONCE, SASL_NEED_CREDS,
	     "user", SASL_FAIL, "not-authorized"},
	    {"SCRAM-SHA-1", "n,,n=user,r=abc", "pencil", &pencil, MUT_SHORTPROOF, SASL_NEED_CREDS,
	     "user", SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=user,r=abc", "pencil", &pencil, MUT_NOPROOF, SASL_NEED_CREDS,
	     "user", SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=user,r=abc", "pencil", &pencil, MUT_BADB64, SASL_NEED_CREDS,
	     "user", SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=user,r=abc", "pencil", &pencil, MUT_PROOFFIRST, SASL_NEED_CREDS,
	     "user", SASL_FAIL, "malformed-request"},
	    /* Broken or refused client-first messages. */
	    {"SCRAM-SHA-256", "p=tls-unique,,n=user,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL,
	     NULL, SASL_FAIL, "not-authorized"},
	    {"SCRAM-SHA-256", "n,a=other,n=user,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL,
	     NULL, SASL_FAIL, "invalid-authzid"},
	    {"SCRAM-SHA-256", "n,a=user@example.com,n=user,r=abc", "pencil", &pencil, MUT_NONE,
	     SASL_FAIL, NULL, SASL_FAIL, "invalid-authzid"},
	    {"SCRAM-SHA-256", "n,,m=ext,n=user,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=user", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL, SASL_FAIL,
	     "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=user,r=", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=user,r=a\x7f", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=user,r=abc,", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,r=abc,n=user", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=us=41er,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=user=,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "x,,n=user,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n,n=user,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	    {"SCRAM-SHA-256", "n", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL, SASL_FAIL,
	     "malformed-request"},
	    {"SCRAM-SHA-256", "n,,", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL, SASL_FAIL,
	     "malformed-request"},
	    {"SCRAM-SHA-256", "n,,n=\xc3\x28,r=abc", "pencil", &pencil, MUT_NONE, SASL_FAIL, NULL,
	     SASL_FAIL, "malformed-request"},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		scram_run(i, &cases[i]);
}

/* Returns the server-first message for an unknown user, for salt comparisons. */
static char *
unknown_server_first(const char *mech, const char *first)
{
	struct sasl *s = sasl_new(mech);
	struct buf out = {0};
	int rc = sasl_step(s, first, strlen(first), &out);

	if (rc == SASL_NEED_CREDS) {
		sasl_set_creds(s, NULL);
		rc = sasl_step(s, NULL, 0, &out);
	}
	sasl_free(s);
	return rc == SASL_CONTINUE ? buf_steal(&out) : (buf_free(&out), xstrdup(""));
}

static void
test_scram_sequencing(void)
{
	struct sasl *s;
	struct buf out = {0};
	char big[SASL_MSG_MAX_TEST];
	char *a, *b;

	/* No initial response: an empty challenge, then the data in a response. */
	s = sasl_new("SCRAM-SHA-256");
	CHECK(sasl_step(s, NULL, 0, &out) == SASL_CONTINUE && buf_used(&out) == 0,
	      "empty initial response");
	CHECK(sasl_step(s, "n,,n=user,r=abc", 15, &out) == SASL_NEED_CREDS, "data after empty");
	/* Resuming with data is a protocol error. */
	CHECK(sasl_step(s, "x", 1, &out) == SASL_FAIL &&
		  strcmp(sasl_condition(s), "malformed-request") == 0,
	      "data while resuming");
	sasl_free(s);

	s = sasl_new("SCRAM-SHA-1");
	CHECK(sasl_step(s, "", 0, &out) == SASL_CONTINUE, "empty initial response");
	CHECK(sasl_step(s, "", 0, &out) == SASL_FAIL &&
		  strcmp(sasl_condition(s), "malformed-request") == 0,
	      "two empty responses");
	sasl_free(s);

	/* Oversized and NUL-carrying messages. */
	memset(big, 'a', sizeof big);
	memcpy(big, "n,,n=user,r=", 12);
	s = sasl_new("SCRAM-SHA-256");
	CHECK(sasl_step(s, big, sizeof big, &out) == SASL_FAIL &&
		  strcmp(sasl_condition(s), "malformed-request") == 0,
	      "oversized client-first");
	sasl_free(s);
	s = sasl_new("SCRAM-SHA-256");
	CHECK(sasl_step(s, "n,,n=us\0er,r=abc", 16, &out) == SASL_FAIL, "NUL in client-first");
	sasl_free(s);

	/* A caller that never supplies credentials gets the unknown-user path. */
	s = sasl_new("SCRAM-SHA-256");
	CHECK(sasl_step(s, "n,,n=user,r=abc", 15, &out) == SASL_NEED_CREDS, "first");
	CHECK(sasl_step(s, NULL, 0, &out) == SASL_CONTINUE && buf_used(&out) > 0,
	      "server-first without creds");
	sasl_free(s);
	buf_reset(&out);

	/* The fake salt of an unknown user is stable, and differs between users. */
	a = unknown_server_first("SCRAM-SHA-256", "n,,n=ghost,r=abc");
	b = unknown_server_first("SCRAM-SHA-1", "n,,n=ghost,r=xyz");
	CHECK(strstr(a, ",s=") && strstr(b, ",s=") &&
		  strcmp(strstr(a, ",s="), strstr(b, ",s=")) == 0,
	      "unknown user salt changes: %s vs %s", a, b);
	free(b);
	b = unknown_server_first("SCRAM-SHA-256", "n,,n=phantom,r=abc");
	CHECK(strstr(b, ",s=") && strcmp(strstr(a, ",s="), strstr(b, ",s=")) != 0,
	      "two unknown users share a salt");
	free(a);
	free(b);

	/* Server nonces are fresh. */
	a = unknown_server_first("SCRAM-SHA-256", "n,,n=ghost,r=abc");
	b = unknown_server_first("SCRAM-SHA-256", "n,,n=ghost,r=abc");
	CHECK(strcmp(a, b) != 0, "server nonce repeated");
	free(a);
	free(b);

	CHECK(sasl_new("DIGEST-MD5") == NULL && sasl_new("SCRAM-SHA-1-PLUS") == NULL &&
		  sasl_new("plain") == NULL,
	      "unknown mechanism accepted");
	const char *const *m = sasl_mechanisms();
	CHECK(m[0] && strcmp(m[0], "SCRAM-SHA-256") == 0 && m[1] &&
		  strcmp(m[1], "SCRAM-SHA-1") == 0 && m[2] && strcmp(m[2], "PLAIN") == 0 && !m[3],
	      "mechanism list");
	for (size_t i = 0; m[i]; i++) {
		s = sasl_new(m[i]);
		CHECK(s != NULL, "sasl_new(%s)", m[i]);
		sasl_free(s);
	}
	buf_free(&out);
}

/* ---- PLAIN ---- */

static void
test_plain(void)
{
	static const struct {
		const char *msg;
		size_t len;
		bool account;
		int want_first;
		const char *want_user;
		int want;
		const char *want_cond;
	} cases[] = {
	    {M("\0user\0pencil"), true, SASL_NEED_CREDS, "user", SASL_SUCCESS, NULL},
	    {M("user\0user\0pencil"), true, SASL_NEED_CREDS, "user", SASL_SUCCESS, NULL},
	    {M("USER\0User\0pencil"), true, SASL_NEED_CREDS, "user", SASL_SUCCESS, NULL},
	    /* OpaqueString maps the no-break space to a space: "pen cil" == "pen\u00a0cil". */
	    {M("\0user\0pen\xc2\xa0"
	       "cil"),
	     false, SASL_NEED_CREDS, "user", SASL_SUCCESS, NULL},
	    {M("\0user\0Pencil"), true, SASL_NEED_CREDS, "user", SASL_FAIL, "not-authorized"},
	    {M("\0user\0pencil "), true, SASL_NEED_CREDS, "user", SASL_FAIL, "not-authorized"},
	    {M("\0nobody\0pencil"), false, SASL_NEED_CREDS, "nobody", SASL_FAIL, "not-authorized"},
	    {M("\0a b\0pencil"), true, SASL_FAIL, NULL, SASL_FAIL, "not-authorized"},
	    {M("other\0user\0pencil"), true, SASL_FAIL, NULL, SASL_FAIL, "invalid-authzid"},
	    /* The account's bare JID is the same identity (the domain is set below). */
	    {M("user@example.com\0user\0pencil"), true, SASL_NEED_CREDS, "user", SASL_SUCCESS,
	     NULL},
	    {M("User@Example.COM\0user\0pencil"), true, SASL_NEED_CREDS, "user", SASL_SUCCESS,
	     NULL},
	    {M("user@other.org\0user\0pencil"), true, SASL_FAIL, NULL, SASL_FAIL,
	     "invalid-authzid"},
	    {M("user@example.com/res\0user\0pencil"), true, SASL_FAIL, NULL, SASL_FAIL,
	     "invalid-authzid"},
	    {M("other@example.com\0user\0pencil"), true, SASL_FAIL, NULL, SASL_FAIL,
	     "invalid-authzid"},
	    {M("\0user\0"), true, SASL_FAIL, NULL, SASL_FAIL, "malformed-request"},
	    {M("\0\0pencil"), true, SASL_FAIL, NULL, SASL_FAIL, "malformed-request"},
	    {M("user\0pencil"), true, SASL_FAIL, NULL, SASL_FAIL, "malformed-request"},
	    {M("\0user\0pen\0cil"), true, SASL_FAIL, NULL, SASL_FAIL, "malformed-request"},
	    {M("userpencil"), true, SASL_FAIL, NULL, SASL_FAIL, "malformed-request"},
	    {M("\0us\xff\0pencil"), true, SASL_FAIL, NULL, SASL_FAIL, "malformed-request"},
	};
	struct sasl_creds spaced;
	unsigned char salt[SASL_SALT_LEN] = {1, 2, 3};

	CHECK(sasl_creds_derive("pen cil", salt, 16, &spaced) == 0, "derive");
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct sasl *s = sasl_new("PLAIN");
		struct buf out = {0};
		int rc;

		sasl_set_domain(s, "example.com");
		rc = sasl_step(s, cases[i].msg, cases[i].len, &out);
		CHECK(rc == cases[i].want_first, "plain %zu: first step %d (%s)", i, rc,
		      str_or_null(rc == SASL_FAIL ? sasl_condition(s) : NULL));
		if (rc == SASL_NEED_CREDS) {
			CHECK(cases[i].want_user && sasl_username(s) &&
				  strcmp(sasl_username(s), cases[i].want_user) == 0,
			      "plain %zu: username %s", i, str_or_null(sasl_username(s)));
			if (strcmp(cases[i].want_user, "nobody") == 0)
				sasl_set_creds(s, NULL);
			else
				sasl_set_creds(s, cases[i].account ? &pencil : &spaced);
			rc = sasl_step(s, NULL, 0, &out);
		}
		CHECK(rc == cases[i].want, "plain %zu: result %d, want %d", i, rc, cases[i].want);
		if (rc == SASL_FAIL)
			CHECK(cases[i].want_cond &&
				  strcmp(sasl_condition(s), cases[i].want_cond) == 0,
			      "plain %zu: condition %s", i, sasl_condition(s));
		CHECK(buf_used(&out) == 0, "plain %zu: output", i);
		buf_free(&out);
		sasl_free(s);
	}

	/* No initial response, then the credentials in a response. */
	struct sasl *s = sasl_new("PLAIN");
	struct buf out = {0};
	CHECK(sasl_step(s, NULL, 0, &out) == SASL_CONTINUE && buf_used(&out) == 0, "plain empty");
	CHECK(sasl_step(s, "\0user\0pencil", 12, &out) == SASL_NEED_CREDS, "plain after empty");
	sasl_set_creds(s, &pencil);
	CHECK(sasl_step(s, NULL, 0, &out) == SASL_SUCCESS, "plain success after empty");
	CHECK(sasl_step(s, "\0user\0pencil", 12, &out) == SASL_FAIL, "plain after success");
	sasl_free(s);
	buf_free(&out);
}

/* ---- base64 ---- */

static void
test_base64(void)
{
	/* RFC 4648 section 10 */
	static const char *const vec[][2] = {
	    {"", ""},
	    {"f", "Zg=="},
	    {"fo", "Zm8="},
	    {"foo", "Zm9v"},
	    {"foob", "Zm9vYg=="},
	    {"fooba", "Zm9vYmE="},
	    {"foobar", "Zm9vYmFy"},
	};
	static const char *const bad[] = {
	    "Zg=",  "Zg",	"Z===", "Zh==",	 "Zm9=", "Zm9v\n", "Zm 9v", "Zm=v",
	    "====", "Zg==Zg==", "Zm8*", "Zm9vY", "==",	 "Zm-v",   "Zm_v",  "=Zm9",
	};

	for (size_t i = 0; i < ARRAY_LEN(vec); i++) {
		struct buf b = {0};
		char *e = b64(vec[i][0], strlen(vec[i][0]));

		CHECK(strcmp(e, vec[i][1]) == 0, "encode \"%s\" -> %s", vec[i][0], e);
		free(e);
		CHECK(base64_decode(&b, vec[i][1], strlen(vec[i][1])) == 0 &&
			  buf_used(&b) == strlen(vec[i][0]) &&
			  memcmp(buf_head(&b), vec[i][0], buf_used(&b)) == 0,
		      "decode %s", vec[i][1]);
		buf_free(&b);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct buf b = {0};

		buf_puts(&b, "keep");
		CHECK(base64_decode(&b, bad[i], strlen(bad[i])) < 0 && buf_used(&b) == 4 &&
			  memcmp(buf_head(&b), "keep", 4) == 0,
		      "bad base64 \"%s\" accepted or out changed", bad[i]);
		buf_free(&b);
	}
	/* "=" is XMPP's empty payload (RFC 6120 section 6.4.2). */
	struct buf b = {0};
	CHECK(base64_decode(&b, "=", 1) == 0 && buf_used(&b) == 0, "\"=\" is empty");
	/* All byte values round-trip, appending to what is there. */
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	char *e = b64(all, sizeof all);
	buf_puts(&b, "x");
	CHECK(base64_decode(&b, e, strlen(e)) == 0 && buf_used(&b) == 257 &&
		  buf_head(&b)[0] == 'x' && memcmp(buf_head(&b) + 1, all, 256) == 0,
	      "256 bytes round trip");
	free(e);
	buf_free(&b);
}

/* ---- credentials ---- */

static void
test_creds(void)
{
	unsigned char salt[SASL_SALT_LEN], blob[SASL_CREDS_BLOB], bad[SASL_CREDS_BLOB + 1];
	struct sasl_creds c, d, e;

	memset(salt, 7, sizeof salt);
	CHECK(sasl_creds_derive("secret", salt, 100000, &c) == 0, "derive");
	CHECK(sasl_creds_encode(&c, blob) == SASL_CREDS_BLOB1, "BSC1 length");
	CHECK(memcmp(blob, "BSC1", 4) == 0, "magic");
	CHECK(memcmp(blob + 4, salt, SASL_SALT_LEN) == 0, "salt position");
	CHECK(blob[20] == 0x00 && blob[21] == 0x01 && blob[22] == 0x86 && blob[23] == 0xa0,
	      "iterations big-endian");
	CHECK(memcmp(blob + 24, c.sha1_stored, 20) == 0 &&
		  memcmp(blob + 44, c.sha1_server, 20) == 0 &&
		  memcmp(blob + 64, c.sha256_stored, 32) == 0 &&
		  memcmp(blob + 96, c.sha256_server, 32) == 0,
	      "key positions");
	memset(&d, 0, sizeof d);
	CHECK(sasl_creds_decode(blob, SASL_CREDS_BLOB1, &d) == 0 && memcmp(&c, &d, sizeof c) == 0,
	      "round trip");
	/* BSC2: the same and the digest HA1s (RFC 2617 3.2.2.2: H(user:realm:password)). */
	CHECK(sasl_creds_digest(&c, "Mufasa", "testrealm@host.com", "Circle Of Life") == 0 &&
		  c.has_digest,
	      "digest");
	{
		static const unsigned char md5[16] = {0x93, 0x9e, 0x75, 0x78, 0xed, 0x9e,
						      0x3c, 0x51, 0x8a, 0x45, 0x2a, 0xce,
						      0xe7, 0x63, 0xbc, 0xe9};
		CHECK(memcmp(c.ha1_md5, md5, 16) == 0, "HA1 of RFC 2617 3.5");
	}
	CHECK(sasl_creds_encode(&c, blob) == SASL_CREDS_BLOB && memcmp(blob, "BSC2", 4) == 0,
	      "BSC2 length and magic");
	memset(&d, 0, sizeof d);
	CHECK(sasl_creds_decode(blob, SASL_CREDS_BLOB, &d) == 0 && memcmp(&c, &d, sizeof c) == 0,
	      "BSC2 round trip");
	CHECK(sasl_creds_decode(blob, SASL_CREDS_BLOB1, &d) < 0, "BSC2 cut to BSC1 length");
	CHECK(sasl_creds_digest(&c, "u", "r", "") < 0, "empty digest password");
	c.has_digest = 0;
	memset(c.ha1_md5, 0, 16);
	memset(c.ha1_sha256, 0, 32);
	sasl_creds_encode(&c, blob);

	/* Corrupt blobs leave out unchanged. */
	memset(&e, 0x5a, sizeof e);
	d = e;
	CHECK(sasl_creds_decode(blob, SASL_CREDS_BLOB1 - 1, &d) < 0, "short blob");
	memcpy(bad, blob, sizeof blob);
	bad[SASL_CREDS_BLOB1] = 0;
	CHECK(sasl_creds_decode(bad, SASL_CREDS_BLOB1 + 1, &d) < 0, "long blob");
	CHECK(sasl_creds_decode(blob, 0, &d) < 0, "empty blob");
	memcpy(bad, blob, sizeof blob);
	bad[3] = '2';
	CHECK(sasl_creds_decode(bad, SASL_CREDS_BLOB1, &d) < 0, "magic BSC2 at BSC1 length");
	memcpy(bad, blob, sizeof blob);
	memset(bad + 20, 0, 4);
	CHECK(sasl_creds_decode(bad, SASL_CREDS_BLOB1, &d) < 0, "zero iterations");
	CHECK(memcmp(&d, &e, sizeof d) == 0, "out changed by a failed decode");

	/* Derivation: normalisation, salts, refusals. */
	CHECK(sasl_creds_derive("pass\xe2\x80\x83word", salt, 2, &d) == 0 &&
		  sasl_creds_derive("pass word", salt, 2, &e) == 0 && memcmp(&d, &e, sizeof d) == 0,
	      "OpaqueString: EM SPACE is a space");
	salt[0]++;
	CHECK(sasl_creds_derive("pass word", salt, 2, &d) == 0 &&
		  memcmp(d.sha256_stored, e.sha256_stored, 32) != 0 &&
		  memcmp(d.sha1_server, e.sha1_server, 20) != 0,
	      "salt has no effect");
	CHECK(sasl_creds_derive("Pass word", salt, 2, &e) == 0 &&
		  memcmp(d.sha256_stored, e.sha256_stored, 32) != 0,
	      "password case ignored");
	memset(&e, 0x5a, sizeof e);
	d = e;
	CHECK(sasl_creds_derive("", salt, 2, &d) < 0, "empty password");
	CHECK(sasl_creds_derive("\xc3\x28", salt, 2, &d) < 0, "bad UTF-8 password");
	CHECK(sasl_creds_derive("a\x01"
				"b",
				salt, 2, &d) < 0,
	      "control in password");
	CHECK(sasl_creds_derive("ok", salt, 0, &d) < 0, "zero iterations");
	CHECK(memcmp(&d, &e, sizeof d) == 0, "out changed by a failed derive");
}

/* Reference StoredKey and ServerKey (RFC 5802 section 3) from OpenSSL's own PBKDF2. */
static void
reference_keys(const EVP_MD *md, const char *pw, const unsigned char *salt, unsigned int iter,
	       unsigned char *stored, unsigned char *server)
{
	unsigned char salted[64], ckey[64];
	int hlen = EVP_MD_get_size(md);
	unsigned int len;

	PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, SASL_SALT_LEN, (int)iter, md, hlen, salted);
	HMAC(md, salted, hlen, (const unsigned char *)"Client Key", 10, ckey, &len);
	EVP_Digest(ckey, (size_t)hlen, stored, NULL, md, NULL);
	HMAC(md, salted, hlen, (const unsigned char *)"Server Key", 10, server, &len);
}

/*
 * sasl.c has its own PBKDF2: compare it with OpenSSL's around the HMAC block size (a
 * password longer than 64 bytes is hashed first) and for small and real iteration counts.
 */
static void
test_pbkdf2_matches_openssl(void)
{
	static const size_t lens[] = {1, 20, 32, 55, 63, 64, 65, 100, 300};
	static const unsigned int iters[] = {1, 2, 3, 4096};
	unsigned char salt[SASL_SALT_LEN], st1[20], sv1[20], st256[32], sv256[32];
	char pw[301];
	int bad = 0, n = 0;

	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		for (size_t k = 0; k < lens[i]; k++)
			pw[k] = (char)('!' + (k * 7 + i) % 94);
		pw[lens[i]] = '\0';
		for (size_t j = 0; j < sizeof iters / sizeof iters[0]; j++) {
			struct sasl_creds c;

			rand_bytes(salt, sizeof salt);
			if (sasl_creds_derive(pw, salt, iters[j], &c) < 0) {
				bad++;
				continue;
			}
			reference_keys(EVP_sha1(), pw, salt, iters[j], st1, sv1);
			reference_keys(EVP_sha256(), pw, salt, iters[j], st256, sv256);
			bad += memcmp(c.sha1_stored, st1, 20) != 0 ||
			       memcmp(c.sha1_server, sv1, 20) != 0 ||
			       memcmp(c.sha256_stored, st256, 32) != 0 ||
			       memcmp(c.sha256_server, sv256, 32) != 0;
			n++;
		}
	}
	CHECK(n == 36 && bad == 0, "PBKDF2 keys equal OpenSSL's for every length and count");
}

int
main(void)
{
	unsigned char salt[SASL_SALT_LEN];

	rand_bytes(salt, sizeof salt);
	if (sasl_creds_derive("pencil", salt, 4096, &pencil) < 0) {
		printf("test_sasl: cannot derive test credentials\n");
		return 1;
	}
	test_rfc_vectors();
	test_base64();
	test_creds();
	test_pbkdf2_matches_openssl();
	test_scram();
	test_scram_sequencing();
	test_plain();
	return check_summary("test_sasl");
}
