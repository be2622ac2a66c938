/*
 * sip/digest: HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760), working from
 * stored HA1 values so that no password is ever needed after it is set. The parser copies what
 * it keeps into one allocation, the nonces are self-authenticating (HMAC), and the replay table
 * is a fixed array plus a map, so nothing a peer sends grows memory past DIGEST_CRED_MAX or the
 * table's capacity.
 *
 * Invariant: every comparison of a secret-derived value (response, nonce MAC) is constant-time,
 * and a credential that parses is one digest_response can compute (qop is absent or "auth").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "digest.h"

#define NONCE_PREFIX_LEN 32 /* hex(timestamp) hex(random): what the MAC covers, with the realm */
#define NONCE_MAC_BYTES	 16 /* HMAC-SHA256 truncated to 128 bits (RFC 2104 5 allows it) */

static const char hexdigits[] = "0123456789abcdef";

static void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdigits[in[i] >> 4];
		out[2 * i + 1] = hexdigits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* The value of one hex digit (either case), or -1. */
size_t
digest_hex_len(int alg)
{
	return alg == DIGEST_MD5 ? 32 : alg == DIGEST_SHA256 ? 64 : 0;
}

/*
 * H(parts[0] ":" parts[1] ":" ...) in lower-case hex into out: the H() of RFC 2617 3.2.1 and
 * RFC 7616 3.4 (KD(secret, data) = H(secret ":" data) is the same thing with one more part).
 * On an OpenSSL failure (MD5 disabled by a FIPS configuration) out is "" and -1 is returned.
 */
static int
hash_hex(int alg, const char *const *parts, size_t nparts, char *out, size_t n)
{
	const EVP_MD *md = alg == DIGEST_SHA256 ? EVP_sha256() : EVP_md5();
	size_t hexlen = digest_hex_len(alg);
	unsigned char dg[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	EVP_MD_CTX *ctx;
	int ok;

	if (hexlen == 0 || n < hexlen + 1)
		fatal("digest: unknown algorithm %d or output of %zu bytes", alg, n);
	ctx = EVP_MD_CTX_new();
	ok = ctx && EVP_DigestInit_ex(ctx, md, NULL);
	for (size_t i = 0; ok && i < nparts; i++) {
		if (i > 0)
			ok = EVP_DigestUpdate(ctx, ":", 1);
		if (ok)
			ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]));
	}
	ok = ok && EVP_DigestFinal_ex(ctx, dg, &dlen) && dlen * 2 == hexlen;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		log_error("digest: %s is not available from OpenSSL",
			  alg == DIGEST_SHA256 ? "SHA-256" : "MD5");
		out[0] = '\0';
		return -1;
	}
	hex_encode(dg, dlen, out);
	return 0;
}

void
digest_ha1(int alg, const char *user, const char *realm, const char *password, char *out, size_t n)
{
	/* A1 = unq(username) ":" unq(realm) ":" passwd (RFC 2617 3.2.2.2, RFC 7616 3.4.2). */
	const char *parts[] = {user, realm, password};

	hash_hex(alg, parts, ARRAY_LEN(parts), out, n);
}

void
digest_response(int alg, const char *ha1, const char *method, const struct digest_cred *c,
		char *out, size_t n)
{
	char ha2[DIGEST_HEX_MAX];
	/* A2 = Method ":" digest-uri-value for qop=auth or no qop (RFC 2617 3.2.2.3). */
	const char *a2[] = {method, c->uri};

	if (hash_hex(alg, a2, ARRAY_LEN(a2), ha2, sizeof ha2) < 0) {
		out[0] = '\0';
		return;
	}
	if (c->qop) {
		/* request-digest = KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))
		 * (RFC 2617 3.2.2.1, RFC 7616 3.4.1). */
		const char *kd[] = {ha1, c->nonce, c->nc, c->cnonce, c->qop, ha2};
		hash_hex(alg, kd, ARRAY_LEN(kd), out, n);
	} else {
		/* Without qop, the RFC 2069 compatible KD(H(A1), nonce ":" H(A2)) (3.2.2.1). */
		const char *kd[] = {ha1, c->nonce, ha2};
		hash_hex(alg, kd, ARRAY_LEN(kd), out, n);
	}
}

/* ---- credentials (RFC 7616 3.4, RFC 2617 3.2.2) ---- */

enum field {
	F_USERNAME,
	F_REALM,
	F_NONCE,
	F_URI,
	F_RESPONSE,
	F_ALGORITHM,
	F_CNONCE,
	F_OPAQUE,
	F_QOP,
	F_NC,
	F_COUNT
};

static const char *const field_names[F_COUNT] = {
    "username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque", "qop", "nc",
};

/* tchar of RFC 7230 3.2.6: the characters of a token (scheme, parameter name, token value). */
static bool
is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static const char *
skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* True for a byte a quoted-string may hold (qdtext, or after a backslash: RFC 7230 3.2.6). */
static bool
is_qchar(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/*
 * Reads one parameter value at *pp (token or quoted-string, unescaping quoted-pairs) into w,
 * NUL-terminated. Returns its length, or -1 on a syntax error (empty token, unterminated quote,
 * control character). Writes at most as many bytes as it consumes, plus the NUL.
 */
static long
read_value(const char **pp, char *w)
{
	const unsigned char *p = (const unsigned char *)*pp;
	long n = 0;

	if (*p != '"') {
		while (is_tchar(*p))
			w[n++] = (char)*p++;
		if (n == 0)
			return -1;
	} else {
		for (p++;; p++) {
			if (*p == '"')
				break;
			if (*p == '\\')
				p++; /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
			if (*p == '\0' || !is_qchar(*p))
				return -1;
			w[n++] = (char)*p;
		}
		p++;
	}
	w[n] = '\0';
	*pp = (const char *)p;
	return n;
}

static bool
is_nc(const char *s)
{
	/* nc-value = 8LHEX (RFC 2617 3.2.2, RFC 7616 3.4); upper case is tolerated. */
	size_t i;

	for (i = 0; s[i]; i++)
		if (i >= 8 || hex_digit((unsigned char)s[i]) < 0)
			return false;
	return i == 8;
}

int
digest_parse_credentials(const char *header_value, struct digest_cred *c)
{
	char *v[F_COUNT] = {0};
	const char *p = header_value, *start;
	size_t len = strnlen(header_value, DIGEST_CRED_MAX + 1);
	char *mem = NULL, *w;
	bool need_comma = false;

	memset(c, 0, sizeof *c);
	if (len > DIGEST_CRED_MAX)
		return -1;

	/* credentials = auth-scheme 1*SP #auth-param; the scheme is case-insensitive (RFC 7235
	 * 2.1). Leading whitespace is the header parser's to strip, but harmless here. */
	p = skip_ws(p);
	start = p;
	while (is_tchar((unsigned char)*p))
		p++;
	if (p - start != 6 || strncasecmp(start, "Digest", 6) != 0 || (*p != ' ' && *p != '\t'))
		return -1;

	/* Each kept value takes at most the bytes of its "name=value" minus one, NUL included,
	 * so len + 1 bytes hold them all. */
	mem = xmalloc(len + 1);
	w = mem;
	for (;;) {
		const char *name;
		size_t namelen;
		long vlen;
		int f;

		p = skip_ws(p);
		if (*p == '\0')
			break;
		if (*p == ',') {
			/* #rule: empty list elements are allowed (RFC 7230 7). */
			p++;
			need_comma = false;
			continue;
		}
		if (need_comma)
			goto fail;
		name = p;
		while (is_tchar((unsigned char)*p))
			p++;
		namelen = (size_t)(p - name);
		if (namelen == 0)
			goto fail;
		/* auth-param = token BWS "=" BWS ( token / quoted-string ) (RFC 7235 2.1). */
		p = skip_ws(p);
		if (*p++ != '=')
			goto fail;
		p = skip_ws(p);
		vlen = read_value(&p, w);
		if (vlen < 0)
			goto fail;
		for (f = 0; f < F_COUNT; f++)
			if (strlen(field_names[f]) == namelen &&
			    strncasecmp(field_names[f], name, namelen) == 0)
				break;
		if (f < F_COUNT) {
			/* A directive given twice is ambiguous: refuse rather than pick one. */
			if (v[f])
				goto fail;
			v[f] = w;
			w += vlen + 1;
		}
		/* Unknown directives (userhash, charset extensions...) are ignored (RFC 7616
		 * 3.4); their value was written at w and is overwritten by the next one. */
		need_comma = true;
	}

	/* username, realm, nonce, uri and response are required (RFC 2617 3.2.2); an empty one
	 * could never verify. */
	for (int f = F_USERNAME; f <= F_RESPONSE; f++)
		if (!v[f] || !*v[f])
			goto fail;
	/* algorithm: MD5 when absent (RFC 2617 3.2.1), or SHA-256 (RFC 7616 3.3, RFC 8760 2.2).
	 * The -sess variants need the cnonce in HA1, which a stored HA1 cannot provide. */
	if (!v[F_ALGORITHM] || strcasecmp(v[F_ALGORITHM], "MD5") == 0)
		c->alg = DIGEST_MD5;
	else if (strcasecmp(v[F_ALGORITHM], "SHA-256") == 0)
		c->alg = DIGEST_SHA256;
	else
		goto fail;
	if (v[F_QOP]) {
		/* We only offer qop="auth"; auth-int would need the body hash. With qop, cnonce
		 * and nc MUST be present (RFC 2617 3.2.2, RFC 7616 3.4). */
		if (strcasecmp(v[F_QOP], "auth") != 0 || !v[F_CNONCE] || !*v[F_CNONCE] ||
		    !v[F_NC] || !is_nc(v[F_NC]))
			goto fail;
	} else if (v[F_CNONCE] || v[F_NC]) {
		/* "MUST NOT be specified if the server did not send a qop directive" (3.2.2). */
		goto fail;
	}

	c->username = v[F_USERNAME];
	c->realm = v[F_REALM];
	c->nonce = v[F_NONCE];
	c->uri = v[F_URI];
	c->response = v[F_RESPONSE];
	c->cnonce = v[F_CNONCE];
	c->opaque = v[F_OPAQUE];
	c->qop = v[F_QOP];
	c->nc = v[F_NC];
	c->mem = mem;
	return 0;

fail:
	free(mem);
	memset(c, 0, sizeof *c);
	return -1;
}

void
digest_cred_free(struct digest_cred *c)
{
	free(c->mem);
	memset(c, 0, sizeof *c);
}

int
digest_verify(int alg, const char *ha1, const char *method, const char *realm,
	      const struct digest_cred *c)
{
	char expected[DIGEST_HEX_MAX], got[DIGEST_HEX_MAX];
	size_t hexlen = digest_hex_len(alg);

	if (hexlen == 0 || c->alg != alg || !c->response || !c->realm || !method || !*method)
		return -1;
	/* The realm the client hashed must be ours, or a HA1 for another realm would do. */
	if (strcmp(c->realm, realm) != 0)
		return -1;
	if (strlen(ha1) != hexlen || strlen(c->response) != hexlen)
		return -1;
	digest_response(alg, ha1, method, c, expected, sizeof expected);
	if (strlen(expected) != hexlen)
		return -1;
	/* request-digest is lower-case hex (RFC 2617 3.2.2); fold case before comparing. */
	for (size_t i = 0; i < hexlen; i++) {
		char ch = c->response[i];
		got[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	return CRYPTO_memcmp(expected, got, hexlen) == 0 ? 0 : -1;
}

/* ---- nonces (RFC 7616 3.3, 5.4; RFC 2617 3.2.1) ---- */

/* Writes the hex MAC (2 * NONCE_MAC_BYTES digits and a NUL) of prefix ":" realm to out. */
static void
nonce_mac(const uint8_t key[32], const char *prefix, const char *realm, char *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct buf msg = {0};

	buf_append(&msg, prefix, NONCE_PREFIX_LEN);
	buf_puts(&msg, ":");
	buf_puts(&msg, realm);
	if (!HMAC(EVP_sha256(), key, 32, (const unsigned char *)buf_head(&msg), buf_used(&msg), md,
		  &mdlen) ||
	    mdlen < NONCE_MAC_BYTES)
		fatal("digest: HMAC-SHA256 failed");
	buf_free(&msg);
	hex_encode(md, NONCE_MAC_BYTES, out);
}

void
digest_nonce(const uint8_t key[32], const char *realm, int64_t now_ms, char *out, size_t n)
{
	unsigned char rnd[8];

	if (n < DIGEST_NONCE_LEN + 1)
		fatal("digest_nonce: output of %zu bytes", n);
	snprintf(out, n, "%016" PRIx64, (uint64_t)now_ms);
	rand_bytes(rnd, sizeof rnd);
	hex_encode(rnd, sizeof rnd, out + 16);
	nonce_mac(key, out, realm, out + NONCE_PREFIX_LEN);
}

/* True if nonce has our shape (DIGEST_NONCE_LEN lower-case hex digits); *ts its timestamp. */
static bool
nonce_shape(const char *nonce, uint64_t *ts)
{
	uint64_t t = 0;
	size_t i;

	for (i = 0; nonce[i]; i++) {
		unsigned char ch = (unsigned char)nonce[i];
		if (i >= DIGEST_NONCE_LEN ||
		    !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
		if (i < 16)
			t = t << 4 | (uint64_t)hex_digit(ch);
	}
	if (i != DIGEST_NONCE_LEN)
		return false;
	*ts = t;
	return true;
}

int
digest_nonce_check(const uint8_t key[32], const char *realm, const char *nonce, int64_t now_ms,
		   int64_t max_age_ms)
{
	char mac[2 * NONCE_MAC_BYTES + 1];
	uint64_t ts;
	int64_t age;

	if (!nonce_shape(nonce, &ts))
		return -1;
	nonce_mac(key, nonce, realm, mac);
	if (CRYPTO_memcmp(mac, nonce + NONCE_PREFIX_LEN, 2 * NONCE_MAC_BYTES) != 0)
		return -1;
	/* Ours: only its age is left. One from the future means the clock stepped back; a
	 * fresh challenge (stale=true, no new password prompt: RFC 7616 3.3) settles it. */
	if (__builtin_sub_overflow(now_ms, (int64_t)ts, &age) || age < 0 || age > max_age_ms)
		return 1;
	return 0;
}

/* ---- replay table (RFC 7616 3.4 nc, RFC 2617 4.5) ---- */

struct replay_slot {
	char nonce[DIGEST_NONCE_LEN + 1];
	uint64_t ts;   /* the nonce's timestamp */
	uint64_t last; /* highest nc accepted; UINT64_MAX after a use without qop */
	bool used;
};

struct digest_replay {
	struct hmap map; /* nonce -> its slot */
	struct replay_slot *slots;
	size_t cap, next;   /* slots used in order; next is the one to take (and evict) next */
	uint64_t watermark; /* latest timestamp of an evicted nonce */
	bool evicted;
};

struct digest_replay *
digest_replay_new(size_t capacity)
{
	struct digest_replay *r = xcalloc(1, sizeof *r);

	r->cap = capacity ? capacity : 1;
	r->slots = xcalloc(r->cap, sizeof *r->slots);
	return r;
}

bool
digest_replay_ok(struct digest_replay *r, const char *nonce, const char *nc)
{
	struct replay_slot *s;
	uint64_t ts, v = UINT64_MAX;

	if (!nonce_shape(nonce, &ts))
		return false;
	if (nc) {
		if (!is_nc(nc))
			return false;
		v = strtoull(nc, NULL, 16);
		if (v == 0)
			return false;
	}
	s = hmap_get(&r->map, nonce);
	if (s) {
		/* nc must grow with every request on a nonce (RFC 7616 3.4: "the server can
		 * detect request replays by maintaining its own copy of this count"). A nonce
		 * first used without qop allows no further use (v <= UINT64_MAX). */
		if (!nc || v <= s->last)
			return false;
		s->last = v;
		return true;
	}
	/* Not in the table: it may have been evicted; anything no newer than the newest
	 * evicted nonce is refused, so the client asks again and gets a fresh nonce. */
	if (r->evicted && ts <= r->watermark)
		return false;
	s = &r->slots[r->next];
	if (s->used) {
		hmap_del(&r->map, s->nonce);
		if (!r->evicted || s->ts > r->watermark)
			r->watermark = s->ts;
		r->evicted = true;
	}
	memcpy(s->nonce, nonce, sizeof s->nonce);
	s->ts = ts;
	s->last = v;
	s->used = true;
	hmap_put(&r->map, s->nonce, s);
	r->next = (r->next + 1) % r->cap;
	return true;
}

void
digest_replay_free(struct digest_replay *r)
{
	if (!r)
		return;
	hmap_free(&r->map);
	free(r->slots);
	free(r);
}

/* ---- challenge (RFC 7616 3.3, RFC 8760 2.4) ---- */

/* Appends s as a quoted-string, escaping '"' and '\' (RFC 7230 3.2.6). */
static void
put_quoted(struct buf *out, const char *s)
{
	buf_puts(out, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			buf_puts(out, "\\");
		buf_append(out, s, 1);
	}
	buf_puts(out, "\"");
}

void
digest_challenge(struct buf *out, int alg, const char *realm, const char *nonce, bool stale)
{
	buf_puts(out, "Digest realm=");
	put_quoted(out, realm);
	buf_puts(out, ", nonce=");
	put_quoted(out, nonce);
	/* algorithm is a token, qop-options a quoted list (RFC 7616 3.3). */
	buf_puts(out, alg == DIGEST_SHA256 ? ", algorithm=SHA-256" : ", algorithm=MD5");
	buf_puts(out, ", qop=\"auth\"");
	if (stale)
		buf_puts(out, ", stale=true");
}
