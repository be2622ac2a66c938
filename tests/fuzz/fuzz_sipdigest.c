/*
 * fuzz_sipdigest: libFuzzer target for SIP digest authentication (sip/digest.c). The input is
 * parsed as an Authorization value and checked as a nonce; its bytes then drive a small replay
 * table over a few genuine nonces.
 *
 * Invariants checked: a refused parse leaves a zeroed credential; an accepted one has every
 * required field, a known algorithm, qop/nc/cnonce consistent, all strings inside its one
 * allocation, and it re-encodes to a header that parses to the same fields; the response
 * computed for it verifies, and not for another method; no input passes as our nonce; the replay
 * table never accepts an nc not above every nc it accepted before for that nonce, nor any reuse
 * of a nonce first used without qop, however entries are evicted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "sip/digest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[32] = "fuzz-key-fuzz-key-fuzz-key-fuzz";

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_sipdigest: %s\n", what);
		abort();
	}
}

static bool
same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void
check_inside(const struct digest_cred *c, const char *s, size_t len)
{
	if (!s)
		return;
	/* len is the size of mem: the input's length + 1. */
	check(s >= c->mem && s + strlen(s) < c->mem + len, "a field outside mem");
}

static void
put_quoted(struct buf *b, const char *name, const char *v)
{
	if (!v)
		return;
	buf_printf(b, ", %s=\"", name);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			buf_puts(b, "\\");
		buf_append(b, v, 1);
	}
	buf_puts(b, "\"");
}

static void
check_cred(const struct digest_cred *c, size_t len)
{
	struct digest_cred again;
	struct buf b = {0};
	char ha1[DIGEST_HEX_MAX], resp[DIGEST_HEX_MAX];
	struct digest_cred mine;

	check(c->mem != NULL, "no mem");
	check(c->username && *c->username && c->realm && *c->realm && c->nonce && *c->nonce &&
		  c->uri && *c->uri && c->response && *c->response,
	      "a required field missing or empty");
	check(c->alg == DIGEST_MD5 || c->alg == DIGEST_SHA256, "an unknown algorithm");
	if (c->qop)
		check(c->nc && strlen(c->nc) == 8 && c->cnonce && *c->cnonce, "qop without nc");
	else
		check(!c->nc && !c->cnonce, "nc or cnonce without qop");
	check_inside(c, c->username, len);
	check_inside(c, c->realm, len);
	check_inside(c, c->nonce, len);
	check_inside(c, c->uri, len);
	check_inside(c, c->response, len);
	check_inside(c, c->cnonce, len);
	check_inside(c, c->opaque, len);
	check_inside(c, c->qop, len);
	check_inside(c, c->nc, len);

	/* Re-encoded with every value quoted (nc as a token), it parses to the same fields. */
	buf_printf(&b, "Digest algorithm=%s", c->alg == DIGEST_SHA256 ? "SHA-256" : "MD5");
	put_quoted(&b, "username", c->username);
	put_quoted(&b, "realm", c->realm);
	put_quoted(&b, "nonce", c->nonce);
	put_quoted(&b, "uri", c->uri);
	put_quoted(&b, "response", c->response);
	put_quoted(&b, "cnonce", c->cnonce);
	put_quoted(&b, "opaque", c->opaque);
	put_quoted(&b, "qop", c->qop);
	if (c->nc)
		buf_printf(&b, ", nc=%s", c->nc);
	if (buf_used(&b) <= DIGEST_CRED_MAX) {
		check(digest_parse_credentials(buf_head(&b), &again) == 0,
		      "a re-encoded credential is refused");
		check(again.alg == c->alg && same(again.username, c->username) &&
			  same(again.realm, c->realm) && same(again.nonce, c->nonce) &&
			  same(again.uri, c->uri) && same(again.response, c->response) &&
			  same(again.cnonce, c->cnonce) && same(again.opaque, c->opaque) &&
			  same(again.qop, c->qop) && same(again.nc, c->nc),
		      "a re-encoded credential parses to other fields");
		digest_cred_free(&again);
	}
	buf_free(&b);

	/* The right response verifies, for this method only. */
	digest_ha1(c->alg, c->username, c->realm, "password", ha1, sizeof ha1);
	digest_response(c->alg, ha1, "REGISTER", c, resp, sizeof resp);
	check(strlen(resp) == digest_hex_len(c->alg), "a response of the wrong length");
	mine = *c;
	mine.response = resp;
	check(digest_verify(c->alg, ha1, "REGISTER", c->realm, &mine) == 0,
	      "the computed response does not verify");
	check(digest_verify(c->alg, ha1, "MESSAGE", c->realm, &mine) == -1,
	      "a response verifies for another method");
	check(digest_verify(!c->alg, ha1, "REGISTER", c->realm, &mine) == -1,
	      "a response verifies with the other algorithm");
	if (strcasecmp(c->response, resp) != 0)
		check(digest_verify(c->alg, ha1, "REGISTER", c->realm, c) == -1,
		      "a wrong response verifies");
}

/* Drives a replay table over 8 genuine nonces: byte 0 is the capacity, then each byte picks a
 * nonce (bits 0-2) and an nc (bits 3-7, 0 meaning no qop). */
static void
replay(const uint8_t *data, size_t size)
{
	static char nonces[8][DIGEST_NONCE_LEN + 1]; /* made once: HMAC per run is slow */
	uint64_t best[8] = {0};
	bool closed[8] = {false};
	struct digest_replay *r;

	if (size == 0)
		return;
	for (int i = 0; i < 8 && !nonces[7][0]; i++)
		digest_nonce(key, "example.com", 1767225600000 + i, nonces[i], sizeof nonces[i]);
	r = digest_replay_new(data[0] % 6);
	for (size_t k = 1; k < size; k++) {
		int i = data[k] & 7;
		unsigned v = data[k] >> 3;
		char nc[9];
		bool ok;

		snprintf(nc, sizeof nc, "%08x", v);
		ok = digest_replay_ok(r, nonces[i], v ? nc : NULL);
		if (!ok)
			continue;
		check(!closed[i], "a nonce used without qop accepted again");
		check(v == 0 ? best[i] == 0 : v > best[i], "an nc not above the best accepted");
		if (v == 0)
			closed[i] = true;
		else
			best[i] = v;
		check(!digest_replay_ok(r, nonces[i], v ? nc : NULL), "an immediate replay");
	}
	digest_replay_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1);
	struct digest_cred c;
	static const struct digest_cred zero;
	int r;

	memcpy(s, data, size);
	s[size] = '\0';

	r = digest_parse_credentials(s, &c);
	if (r == 0) {
		check_cred(&c, strlen(s) + 1);
		digest_cred_free(&c);
	} else {
		check(r == -1, "parse returned neither 0 nor -1");
		check(memcmp(&c, &zero, sizeof c) == 0, "a refused parse leaves fields");
	}

	/* No input is our nonce: the MAC cannot be guessed. */
	r = digest_nonce_check(key, "example.com", s, 1767225600000, 300000);
	check(r == -1, "an arbitrary string passes as our nonce");

	replay(data, size);
	free(s);
	return 0;
}
