/*
 * test_sipdigest: unit tests of SIP digest authentication (sip/digest.c): the published vectors
 * of RFC 2617 3.5, RFC 2069 2.4 and RFC 7616 3.9.1 run from the RFCs' own Authorization headers
 * through parse, HA1, response and verify; the parser on many spellings and on refusals; nonces
 * fresh, stale, forged and for another realm; the replay table; the challenge header.
 * Invariant checked throughout: nothing verifies unless HA1, realm, method, algorithm and
 * response all agree, and a refused parse leaves a zeroed credential.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "sip/digest.h"

#include "check.h"

static const char *
str(const char *s)
{
	return s ? s : "(null)";
}

static bool
same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool
zeroed(const struct digest_cred *c)
{
	static const struct digest_cred zero;
	return memcmp(c, &zero, sizeof zero) == 0;
}

/* ---- published vectors ---- */

static const struct vector {
	const char *name;
	int alg;
	const char *user, *realm, *password, *method;
	const char *header; /* the Authorization value printed in the RFC */
	const char *ha1;    /* NULL: not printed, not checked */
	const char *response;
} vectors[] = {
    {"RFC 2617 3.5", DIGEST_MD5, "Mufasa", "testrealm@host.com", "Circle Of Life", "GET",
     "Digest username=\"Mufasa\",\n"
     "                 realm=\"testrealm@host.com\",\n"
     "                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\n"
     "                 uri=\"/dir/index.html\",\n"
     "                 qop=auth,\n"
     "                 nc=00000001,\n"
     "                 cnonce=\"0a4f113b\",\n"
     "                 response=\"6629fae49393a05397450978507c4ef1\",\n"
     "                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
     "939e7578ed9e3c518a452acee763bce9", "6629fae49393a05397450978507c4ef1"},
    /* RFC 2069 2.4: no qop, so the response is KD(HA1, nonce ":" HA2). */
    {"RFC 2069 2.4", DIGEST_MD5, "Mufasa", "testrealm@host.com", "CircleOfLife", "GET",
     "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", "
     "nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", "
     "response=\"1949323746fe6a43ef61f9606e7febea\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
     NULL, "1949323746fe6a43ef61f9606e7febea"},
    /* RFC 7616 3.9.1 (errata 4495: "Circle of Life", lower-case o). */
    {"RFC 7616 3.9.1 MD5", DIGEST_MD5, "Mufasa", "http-auth@example.org", "Circle of Life", "GET",
     "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", "
     "algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
     "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
     "response=\"8ca523f5e9506fed4657c9700eebdbec\", "
     "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
     "3d78807defe7de2157e2b0b6573a855f", "8ca523f5e9506fed4657c9700eebdbec"},
    {"RFC 7616 3.9.1 SHA-256", DIGEST_SHA256, "Mufasa", "http-auth@example.org", "Circle of Life",
     "GET",
     "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", "
     "algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, "
     "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, "
     "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", "
     "opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
     "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232",
     "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"},
};

/* The RFCs fold their examples over lines; a SIP header parser unfolds them to spaces. */
static char *
unfold(const char *s)
{
	char *u = xstrdup(s);
	for (char *p = u; *p; p++)
		if (*p == '\n')
			*p = ' ';
	return u;
}

static void
test_vectors(void)
{
	for (size_t i = 0; i < ARRAY_LEN(vectors); i++) {
		const struct vector *v = &vectors[i];
		char ha1[DIGEST_HEX_MAX], resp[DIGEST_HEX_MAX], other[DIGEST_HEX_MAX];
		char *h = unfold(v->header);
		struct digest_cred c;

		digest_ha1(v->alg, v->user, v->realm, v->password, ha1, sizeof ha1);
		CHECK(strlen(ha1) == digest_hex_len(v->alg), "%s: HA1 length %zu", v->name,
		      strlen(ha1));
		if (v->ha1)
			CHECK(strcmp(ha1, v->ha1) == 0, "%s: HA1 %s", v->name, ha1);
		if (digest_parse_credentials(h, &c) < 0) {
			CHECK(0, "%s: the RFC's header does not parse", v->name);
			free(h);
			continue;
		}
		CHECK(c.alg == v->alg && strcmp(c.username, v->user) == 0 &&
			  strcmp(c.realm, v->realm) == 0 && strcmp(c.uri, "/dir/index.html") == 0,
		      "%s: parsed alg %d user %s realm %s uri %s", v->name, c.alg, c.username,
		      c.realm, c.uri);
		digest_response(v->alg, ha1, v->method, &c, resp, sizeof resp);
		CHECK(strcmp(resp, v->response) == 0, "%s: response %s", v->name, resp);
		CHECK(digest_verify(v->alg, ha1, v->method, v->realm, &c) == 0, "%s: not verified",
		      v->name);

		/* Each ingredient matters. */
		CHECK(digest_verify(v->alg, ha1, "REGISTER", v->realm, &c) == -1,
		      "%s: verified with another method", v->name);
		CHECK(digest_verify(v->alg, ha1, v->method, "example.com", &c) == -1,
		      "%s: verified for another realm", v->name);
		CHECK(digest_verify(!v->alg, ha1, v->method, v->realm, &c) == -1,
		      "%s: verified with the other algorithm", v->name);
		digest_ha1(v->alg, v->user, v->realm, "Circle of Lifé", other, sizeof other);
		CHECK(digest_verify(v->alg, other, v->method, v->realm, &c) == -1,
		      "%s: verified with another password", v->name);
		CHECK(digest_verify(v->alg, "", v->method, v->realm, &c) == -1,
		      "%s: verified with an empty HA1", v->name);
		CHECK(digest_verify(v->alg, ha1, "", v->realm, &c) == -1,
		      "%s: verified with an empty method", v->name);

		/* An upper-case response is the same digest; one changed digit is not. */
		for (char *p = c.response; *p; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 'a' + 'A');
		CHECK(digest_verify(v->alg, ha1, v->method, v->realm, &c) == 0,
		      "%s: upper-case response refused", v->name);
		c.response[5] = c.response[5] == '0' ? '1' : '0';
		CHECK(digest_verify(v->alg, ha1, v->method, v->realm, &c) == -1,
		      "%s: a changed digit verified", v->name);
		c.response[5] = '\0';
		CHECK(digest_verify(v->alg, ha1, v->method, v->realm, &c) == -1,
		      "%s: a truncated response verified", v->name);
		if (c.nc) {
			c.response = resp;
			c.nc[7] = '2';
			CHECK(digest_verify(v->alg, ha1, v->method, v->realm, &c) == -1,
			      "%s: verified with another nc", v->name);
		}
		digest_cred_free(&c);
		CHECK(zeroed(&c), "%s: digest_cred_free leaves fields", v->name);
		free(h);
	}
}

/* ---- parsing ---- */

static const struct parse_case {
	const char *in;
	int alg;
	const char *username, *realm, *nonce, *uri, *response, *qop, *nc, *cnonce, *opaque;
} parses[] = {
    /* Minimal, RFC 2069 style. */
    {"Digest username=\"bob\", realm=\"example.com\", nonce=\"n1\", uri=\"sip:example.com\", "
     "response=\"abc\"",
     DIGEST_MD5, "bob", "example.com", "n1", "sip:example.com", "abc", NULL, NULL, NULL, NULL},
    /* Scheme in any case, no spaces after commas, tokens where quoting is optional. */
    {"dIgEsT username=bob,realm=example.com,nonce=n1,uri=\"sip:example.com\",response=abc,"
     "algorithm=sha-256,qop=auth,nc=0000000a,cnonce=xyz",
     DIGEST_SHA256, "bob", "example.com", "n1", "sip:example.com", "abc", "auth", "0000000a", "xyz",
     NULL},
    /* Tabs and spaces around '=' and ',', out of order, quoted algorithm and qop. */
    {"Digest\tresponse = \"abc\" ,\tqop=\"auth\"\t, nc =00000001 , uri\t=\t\"sip:a@b\","
     " cnonce=\"c n\" ,nonce=\"n1\",  algorithm=\"SHA-256\", realm=\"example.com\","
     " username=\"bob\"  ",
     DIGEST_SHA256, "bob", "example.com", "n1", "sip:a@b", "abc", "auth", "00000001", "c n", NULL},
    /* Escaped quotes and backslashes are unescaped; commas and '=' inside quotes are data. */
    {"Digest username=\"b\\\"o\\\\b\", realm=\"ex\\ample,=com\", nonce=\"n1\", uri=\"sip:x\", "
     "response=\"abc\", opaque=\"\\\"\\\"\"",
     DIGEST_MD5, "b\"o\\b", "example,=com", "n1", "sip:x", "abc", NULL, NULL, NULL, "\"\""},
    /* Unknown parameters are ignored, whatever their value; empty list elements too; upper-case
     * names; explicit MD5; leading whitespace. */
    {"  Digest ,username=\"bob\",, userhash=false, charset=UTF-8, x-y=\"a\\\"b,c\", REALM=\"r\", "
     "Nonce=\"n1\", URI=\"sip:x\", Response=\"abc\", Algorithm=md5 ,",
     DIGEST_MD5, "bob", "r", "n1", "sip:x", "abc", NULL, NULL, NULL, NULL},
    /* Non-ASCII (UTF-8) in a quoted value is kept as bytes. */
    {"Digest username=\"bj\xc3\xb6rn\", realm=\"r\", nonce=\"n1\", uri=\"sip:x\", response=\"a\"",
     DIGEST_MD5, "bj\xc3\xb6rn", "r", "n1", "sip:x", "a", NULL, NULL, NULL, NULL},
};

static const char *const refusals[] = {
    "",
    "Digest",
    "Digest ",
    "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
    "Digestusername=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"",
    "Digest2 username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"",
    "NTLM username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"",
    /* missing required parameters */
    "Digest username=\"bob\", realm=\"r\", uri=\"u\", response=\"a\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\"",
    "Digest realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"",
    "Digest username=\"bob\", nonce=\"n\", uri=\"u\", response=\"a\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", response=\"a\"",
    /* empty required parameters */
    "Digest username=\"bob\", realm=\"r\", nonce=\"\", uri=\"u\", response=\"a\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"\"",
    /* duplicates, in either spelling */
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", nonce=\"m\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", Response=b",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", "
    "algorithm=MD5, algorithm=MD5",
    /* syntax */
    "Digest username=\"bob, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\\",
    "Digest username=\"bob\" realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", =\"a\", response=\"a\"",
    "Digest username=\"bob\", realm=\"r\", nonce=n;1, uri=\"u\", response=\"a\"",
    "Digest username=\"b\x01ob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"\r\n",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\"\x7f",
    /* algorithms we do not take */
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", "
    "algorithm=MD5-sess",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", "
    "algorithm=\"SHA-256-sess\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", "
    "algorithm=SHA-512-256",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", algorithm=\"\"",
    /* qop, nc and cnonce together or not at all */
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", qop=auth-int, "
    "nc=00000001, cnonce=\"c\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", qop=auth, "
    "cnonce=\"c\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", qop=auth, "
    "nc=00000001",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", qop=auth, "
    "nc=00000001, cnonce=\"\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", qop=auth, "
    "nc=1, cnonce=\"c\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", qop=auth, "
    "nc=000000001, cnonce=\"c\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", qop=auth, "
    "nc=0000000g, cnonce=\"c\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", "
    "nc=00000001, cnonce=\"c\"",
    "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"a\", cnonce=\"c\"",
};

static void
test_parse(void)
{
	struct digest_cred c;
	char *big;

	for (size_t i = 0; i < ARRAY_LEN(parses); i++) {
		const struct parse_case *t = &parses[i];
		if (digest_parse_credentials(t->in, &c) < 0) {
			CHECK(0, "parse %zu refused: %s", i, t->in);
			continue;
		}
		CHECK(c.alg == t->alg, "parse %zu: alg %d", i, c.alg);
		CHECK(same(c.username, t->username) && same(c.realm, t->realm) &&
			  same(c.nonce, t->nonce) && same(c.uri, t->uri) &&
			  same(c.response, t->response),
		      "parse %zu: username [%s] realm [%s] nonce [%s] uri [%s] response [%s]", i,
		      c.username, c.realm, c.nonce, c.uri, c.response);
		CHECK(same(c.qop, t->qop) && same(c.nc, t->nc) && same(c.cnonce, t->cnonce) &&
			  same(c.opaque, t->opaque),
		      "parse %zu: qop [%s] nc [%s] cnonce [%s] opaque [%s]", i, str(c.qop),
		      str(c.nc), str(c.cnonce), str(c.opaque));
		digest_cred_free(&c);
	}
	for (size_t i = 0; i < ARRAY_LEN(refusals); i++) {
		memset(&c, 0x55, sizeof c);
		CHECK(digest_parse_credentials(refusals[i], &c) == -1, "accepted: %s", refusals[i]);
		CHECK(zeroed(&c), "refusal %zu leaves the credential set", i);
		digest_cred_free(&c); /* safe on a zeroed one */
	}

	/* The length cap: a valid header padded with an unknown parameter to just under and just
	 * over DIGEST_CRED_MAX. */
	big = xmalloc(DIGEST_CRED_MAX + 2);
	for (size_t total = DIGEST_CRED_MAX; total <= DIGEST_CRED_MAX + 1; total++) {
		int n = snprintf(big, DIGEST_CRED_MAX + 2,
				 "Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"u\", "
				 "response=\"a\", pad=");
		memset(big + n, 'x', total - (size_t)n);
		big[total] = '\0';
		int r = digest_parse_credentials(big, &c);
		CHECK(r == (total <= DIGEST_CRED_MAX ? 0 : -1), "%zu bytes: %d", total, r);
		digest_cred_free(&c);
	}
	free(big);
}

/* ---- nonces ---- */

static const uint8_t key[32] = "0123456789abcdef0123456789abcde";
static const uint8_t key2[32] = "fedcba9876543210fedcba987654321";

static void
test_nonce(void)
{
	const int64_t t0 = 1767225600000, max_age = 5 * 60 * 1000;
	char n1[DIGEST_NONCE_LEN + 1], n2[DIGEST_NONCE_LEN + 1], bad[DIGEST_NONCE_LEN + 2];
	static const char *const garbage[] = {
	    "",
	    "0",
	    "dcd98b7102dd2f0e8b11d0f600bfb0c093",
	    "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
	    "000000000000000000000000000000000000000000000000000000000000000",
	    "00000000000000000000000000000000000000000000000000000000000000000",
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
	};

	digest_nonce(key, "example.com", t0, n1, sizeof n1);
	digest_nonce(key, "example.com", t0, n2, sizeof n2);
	CHECK(strlen(n1) == DIGEST_NONCE_LEN, "nonce length %zu", strlen(n1));
	CHECK(strspn(n1, "0123456789abcdef") == DIGEST_NONCE_LEN, "nonce not hex: %s", n1);
	CHECK(strcmp(n1, n2) != 0, "two nonces of the same millisecond are equal: %s", n1);

	CHECK(digest_nonce_check(key, "example.com", n1, t0, max_age) == 0, "fresh at once");
	CHECK(digest_nonce_check(key, "example.com", n1, t0 + max_age, max_age) == 0,
	      "fresh at max_age");
	CHECK(digest_nonce_check(key, "example.com", n1, t0 + max_age + 1, max_age) == 1,
	      "not stale after max_age");
	CHECK(digest_nonce_check(key, "example.com", n1, t0 + 86400000LL * 365, max_age) == 1,
	      "not stale a year later");
	CHECK(digest_nonce_check(key, "example.com", n1, t0 - 1000, max_age) == 1,
	      "a nonce from the future (clock stepped back) is not stale");
	CHECK(digest_nonce_check(key, "example.com", n1, INT64_MIN, max_age) == 1,
	      "INT64_MIN now: not stale");
	CHECK(digest_nonce_check(key, "example.org", n1, t0, max_age) == -1,
	      "valid for another realm");
	CHECK(digest_nonce_check(key, "example.co", n1, t0, max_age) == -1,
	      "valid for a prefix of the realm");
	CHECK(digest_nonce_check(key2, "example.com", n1, t0, max_age) == -1,
	      "valid under another key");

	/* One hex digit changed anywhere (timestamp, random part, MAC) is a forgery. */
	for (size_t i = 0; i < DIGEST_NONCE_LEN; i++) {
		memcpy(bad, n1, sizeof n1);
		bad[i] = bad[i] == 'f' ? '0' : bad[i] == '9' ? 'a' : (char)(bad[i] + 1);
		CHECK(digest_nonce_check(key, "example.com", bad, t0, max_age) == -1,
		      "digit %zu changed: %s accepted", i, bad);
	}
	/* Upper case, one digit more or less. */
	memcpy(bad, n1, sizeof n1);
	for (char *p = bad; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	CHECK(strcmp(bad, n1) == 0 ||
		  digest_nonce_check(key, "example.com", bad, t0, max_age) == -1,
	      "upper-case nonce accepted");
	memcpy(bad, n1, sizeof n1);
	strcat(bad, "0");
	CHECK(digest_nonce_check(key, "example.com", bad, t0, max_age) == -1, "longer accepted");
	bad[DIGEST_NONCE_LEN - 1] = '\0';
	CHECK(digest_nonce_check(key, "example.com", bad, t0, max_age) == -1, "shorter accepted");
	for (size_t i = 0; i < ARRAY_LEN(garbage); i++)
		CHECK(digest_nonce_check(key, "example.com", garbage[i], t0, max_age) == -1,
		      "garbage accepted: %s", garbage[i]);

	/* A realm with every kind of byte still binds. */
	digest_nonce(key, "a:b\"c\\d", t0, n2, sizeof n2);
	CHECK(digest_nonce_check(key, "a:b\"c\\d", n2, t0, max_age) == 0, "odd realm");
	CHECK(digest_nonce_check(key, "a", n2, t0, max_age) == -1, "odd realm cut at ':'");
}

/* ---- replay table ---- */

static void
test_replay(void)
{
	const int64_t t0 = 1767225600000;
	char n[6][DIGEST_NONCE_LEN + 1];
	struct digest_replay *r = digest_replay_new(3);

	for (int i = 0; i < 6; i++)
		digest_nonce(key, "example.com", t0 + i, n[i], sizeof n[i]);

	CHECK(digest_replay_ok(r, n[0], "00000001"), "first use refused");
	CHECK(!digest_replay_ok(r, n[0], "00000001"), "same nc twice accepted");
	CHECK(digest_replay_ok(r, n[0], "00000002"), "nc 2 refused");
	CHECK(digest_replay_ok(r, n[0], "0000000A"), "nc 10 (upper case) refused");
	CHECK(!digest_replay_ok(r, n[0], "00000009"), "a lower nc accepted");
	CHECK(!digest_replay_ok(r, n[0], "0000000a"), "nc 10 again accepted");
	CHECK(digest_replay_ok(r, n[0], "ffffffff"), "nc max refused");
	CHECK(!digest_replay_ok(r, n[0], "ffffffff"), "nc max twice accepted");
	CHECK(!digest_replay_ok(r, n[0], NULL), "a no-qop use of a used nonce accepted");

	/* Malformed nc and nonces are refused and leave no trace. */
	CHECK(!digest_replay_ok(r, n[1], "00000000"), "nc 0 accepted");
	CHECK(!digest_replay_ok(r, n[1], "1"), "short nc accepted");
	CHECK(!digest_replay_ok(r, n[1], "0000000x"), "non-hex nc accepted");
	CHECK(!digest_replay_ok(r, n[1], "000000001"), "long nc accepted");
	CHECK(!digest_replay_ok(r, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001"),
	      "a foreign nonce accepted");
	CHECK(!digest_replay_ok(r, "", "00000001"), "empty nonce accepted");

	/* Without qop a nonce is good once. */
	CHECK(digest_replay_ok(r, n[1], NULL), "no-qop first use refused");
	CHECK(!digest_replay_ok(r, n[1], NULL), "no-qop second use accepted");
	CHECK(!digest_replay_ok(r, n[1], "00000001"), "nc after a no-qop use accepted");

	/* Two nonces are independent. */
	CHECK(digest_replay_ok(r, n[2], "00000001"), "n2 first use refused");
	CHECK(!digest_replay_ok(r, n[2], "00000001"), "n2 replay accepted");

	/* The table holds 3: n[3] evicts n[0] (entered first). */
	CHECK(digest_replay_ok(r, n[3], "00000001"), "n3 first use refused");
	CHECK(!digest_replay_ok(r, n[0], "fffffffe"), "evicted n0 replayed with a low nc");
	CHECK(!digest_replay_ok(r, n[0], "00000001"), "evicted n0 replayed as new");
	/* n[1] and n[2] are still remembered. */
	CHECK(!digest_replay_ok(r, n[2], "00000001"), "n2 forgotten");
	CHECK(digest_replay_ok(r, n[2], "00000002"), "n2 nc 2 refused");
	/* n[4] evicts n[1] and n[5] evicts n[2]; then both are refused whatever their nc, while
	 * the survivors work on. */
	CHECK(digest_replay_ok(r, n[4], "00000001"), "n4 first use refused");
	CHECK(digest_replay_ok(r, n[5], "00000001"), "n5 first use refused");
	CHECK(!digest_replay_ok(r, n[1], NULL), "evicted no-qop n1 reused");
	CHECK(!digest_replay_ok(r, n[2], "00000003"), "evicted n2 accepted");
	CHECK(digest_replay_ok(r, n[3], "00000002"), "n3 refused");
	CHECK(digest_replay_ok(r, n[4], "00000002"), "n4 refused");
	CHECK(digest_replay_ok(r, n[5], "00000002"), "n5 refused");
	/* A nonce issued after everything evicted is new and welcome. */
	{
		char fresh[DIGEST_NONCE_LEN + 1];
		digest_nonce(key, "example.com", t0 + 100, fresh, sizeof fresh);
		CHECK(digest_replay_ok(r, fresh, "00000001"), "a fresh nonce refused");
		CHECK(!digest_replay_ok(r, n[3], "00000003"), "evicted n3 accepted");
	}
	digest_replay_free(r);

	/* Capacity 0 behaves as 1; churn through many nonces stays within it (ASan watches). */
	r = digest_replay_new(0);
	for (int i = 0; i < 1000; i++) {
		char x[DIGEST_NONCE_LEN + 1];
		digest_nonce(key, "example.com", t0 + 1000 + i, x, sizeof x);
		CHECK(digest_replay_ok(r, x, "00000001") && !digest_replay_ok(r, x, "00000001") &&
			  digest_replay_ok(r, x, "00000002"),
		      "churn %d", i);
	}
	digest_replay_free(r);
	digest_replay_free(NULL);
}

/* ---- challenge, and a whole exchange ---- */

static void
test_challenge(void)
{
	struct buf b = {0};
	const int64_t t0 = 1767225600000;
	char nonce[DIGEST_NONCE_LEN + 1], ha1[2][DIGEST_HEX_MAX], resp[DIGEST_HEX_MAX];
	struct digest_replay *r = digest_replay_new(16);

	digest_challenge(&b, DIGEST_SHA256, "example.com", "abc", false);
	CHECK(strcmp(
		  buf_head(&b),
		  "Digest realm=\"example.com\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\"") ==
		  0,
	      "challenge: %s", buf_head(&b));
	buf_reset(&b);
	digest_challenge(&b, DIGEST_MD5, "ex\"am\\ple", "abc", true);
	CHECK(strcmp(buf_head(&b),
		     "Digest realm=\"ex\\\"am\\\\ple\", nonce=\"abc\", algorithm=MD5, "
		     "qop=\"auth\", stale=true") == 0,
	      "stale challenge: %s", buf_head(&b));
	buf_free(&b);

	/* The server stores both HA1s at password time, challenges, and the client answers. */
	digest_ha1(DIGEST_MD5, "alice", "example.com", "s3cret", ha1[DIGEST_MD5], DIGEST_HEX_MAX);
	digest_ha1(DIGEST_SHA256, "alice", "example.com", "s3cret", ha1[DIGEST_SHA256],
		   DIGEST_HEX_MAX);
	for (int alg = DIGEST_MD5; alg <= DIGEST_SHA256; alg++) {
		struct digest_cred c;
		struct buf h = {0};

		digest_nonce(key, "example.com", t0 + alg, nonce, sizeof nonce);
		for (int nc = 1; nc <= 2; nc++) {
			/* The client's side: the same computation, from its own fields. */
			char ncs[9], cnonce[8];
			struct digest_cred mine = {0};

			snprintf(ncs, sizeof ncs, "%08x", nc);
			snprintf(cnonce, sizeof cnonce, "q%d", nc);
			mine = (struct digest_cred){.nonce = nonce,
						    .uri = "sip:example.com",
						    .qop = "auth",
						    .nc = ncs,
						    .cnonce = cnonce};
			digest_response(alg, ha1[alg], "REGISTER", &mine, resp, sizeof resp);
			buf_printf(
			    &h,
			    "Digest username=\"alice\", realm=\"example.com\", nonce=\"%s\", "
			    "uri=\"sip:example.com\", algorithm=%s, qop=auth, nc=%s, "
			    "cnonce=\"%s\", response=\"%s\"",
			    nonce, alg ? "SHA-256" : "MD5", ncs, cnonce, resp);
			CHECK(digest_parse_credentials(buf_head(&h), &c) == 0, "client header");
			CHECK(digest_nonce_check(key, "example.com", c.nonce, t0 + 1000, 60000) ==
				  0,
			      "alg %d: nonce", alg);
			CHECK(digest_verify(alg, ha1[alg], "REGISTER", "example.com", &c) == 0,
			      "alg %d nc %d: not verified", alg, nc);
			CHECK(digest_verify(!alg, ha1[!alg], "REGISTER", "example.com", &c) == -1,
			      "alg %d: verified against the other HA1", alg);
			CHECK(digest_verify(alg, ha1[alg], "MESSAGE", "example.com", &c) == -1,
			      "alg %d: REGISTER's response good for MESSAGE", alg);
			CHECK(digest_replay_ok(r, c.nonce, c.nc), "alg %d nc %d: replay?", alg, nc);
			CHECK(!digest_replay_ok(r, c.nonce, c.nc), "alg %d nc %d: replayed", alg,
			      nc);
			digest_cred_free(&c);
			buf_reset(&h);
		}
		buf_free(&h);
	}
	digest_replay_free(r);
}

int
main(void)
{
	test_vectors();
	test_parse();
	test_nonce();
	test_replay();
	test_challenge();
	return check_summary("test_sipdigest");
}
