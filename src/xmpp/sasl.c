/*
 * sasl: server side of SASL PLAIN (RFC 4616) and SCRAM-SHA-1/-256 (RFC 5802, RFC 7677)
 * as a step machine with no I/O, plus the credential derivation and storage form
 * used by the account store. No channel binding: the -PLUS variants are not offered.
 *
 * Invariant: an exchange reaches SASL_SUCCESS only after the client proved knowledge
 * of the password against real credentials; every other path ends in SASL_FAIL with
 * an RFC 6120 section 6.5 condition, and unknown users walk the same path as wrong
 * passwords until the very end. Password-derived bytes are wiped before release.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * SHA1_Init and friends are deprecated in OpenSSL 3 but not removed: PBKDF2 below needs
 * a digest state it can copy by value, which the EVP interface only offers at the price of
 * allocations in every round.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "../core/core.h"
#include "jid.h"
#include "sasl.h"

/* Largest client message accepted; real SCRAM and PLAIN messages are a few hundred bytes. */
#define SASL_MSG_MAX 4096
/* Server nonce: 18 random bytes, 24 base64 characters (RFC 5802 section 5.1 "r"). */
#define SCRAM_SNONCE_BYTES	 18
#define SCRAM_DEFAULT_ITERATIONS 4096

enum sasl_mech { MECH_PLAIN, MECH_SCRAM_SHA1, MECH_SCRAM_SHA256 };

enum sasl_state {
	ST_START,      /* waiting for the initial response */
	ST_NEED_CREDS, /* parsed the first message, waiting for sasl_set_creds() */
	ST_FINAL,      /* SCRAM: server-first sent, waiting for client-final */
	ST_DONE,       /* succeeded or failed: any further step fails */
};

struct sasl {
	enum sasl_mech mech;
	enum sasl_state state;
	bool empty_sent; /* sent an empty challenge for a missing initial response */
	bool creds_set;
	bool unknown; /* no usable account: continue with fake creds, fail at the end */
	const char *condition;
	char *username; /* normalised localpart, NULL if not (yet) known */
	char *domain;	/* the server's domain, for authzids that are bare JIDs */
	struct sasl_creds creds;
	char *password; /* PLAIN, until checked */
	char *gs2_header;
	char *nonce;	 /* SCRAM: client nonce, then client + server nonce */
	struct buf auth; /* SCRAM AuthMessage so far (RFC 5802 section 3) */
};

static const char *const mechanisms[] = {"SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", NULL};

/*
 * Fake credentials for unknown users must look like real ones: the salt is a keyed
 * hash of the username (the same on every attempt, as a real salt is) and the
 * iteration count is the last one seen on a real account.
 */
static unsigned char fake_salt_key[32];
static pthread_once_t fake_once = PTHREAD_ONCE_INIT;
static _Atomic uint32_t last_iterations = SCRAM_DEFAULT_ITERATIONS;

static void
fake_init(void)
{
	rand_bytes(fake_salt_key, sizeof fake_salt_key);
}

/* ---- base64 (RFC 4648 section 4) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
base64_encode(struct buf *out, const void *data, size_t n)
{
	const unsigned char *p = data;
	char *w = buf_space(out, (n + 2) / 3 * 4);
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		w[o++] = b64_alphabet[v >> 18 & 63];
		w[o++] = b64_alphabet[v >> 12 & 63];
		w[o++] = i + 1 < n ? b64_alphabet[v >> 6 & 63] : '=';
		w[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
	}
	buf_commit(out, o);
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict: padding required, no whitespace, no bits set past the data (RFC 4648
 * section 3.5). "=" is the empty string (RFC 6120 section 6.4.2), as is "".
 */
int
base64_decode(struct buf *out, const char *s, size_t n)
{
	char *w;
	size_t o = 0;

	if (n == 0 || (n == 1 && s[0] == '='))
		return 0;
	if (n % 4 != 0)
		return -1;
	w = buf_space(out, n / 4 * 3);
	for (size_t i = 0; i < n; i += 4) {
		int a = b64_value(s[i]), b = b64_value(s[i + 1]);
		int c = b64_value(s[i + 2]), d = b64_value(s[i + 3]);
		bool last = i + 4 == n;

		if (a < 0 || b < 0)
			return -1;
		if (last && s[i + 2] == '=' && s[i + 3] == '=') {
			if (b & 15)
				return -1;
			w[o++] = (char)(a << 2 | b >> 4);
			break;
		}
		if (last && c >= 0 && s[i + 3] == '=') {
			if (c & 3)
				return -1;
			w[o++] = (char)(a << 2 | b >> 4);
			w[o++] = (char)((b & 15) << 4 | c >> 2);
			break;
		}
		if (c < 0 || d < 0)
			return -1;
		w[o++] = (char)(a << 2 | b >> 4);
		w[o++] = (char)((b & 15) << 4 | c >> 2);
		w[o++] = (char)((c & 3) << 6 | d);
	}
	buf_commit(out, o);
	return 0;
}

/* ---- credentials ---- */

/* A SHA-1 or SHA-256 state, copied by value between PBKDF2 rounds. */
struct md_state {
	size_t len; /* digest length: 20 or 32 */
	union {
		SHA_CTX sha1;
		SHA256_CTX sha256;
	} u;
};

static void
md_init(struct md_state *m, size_t len)
{
	m->len = len;
	if (len == SHA_DIGEST_LENGTH)
		SHA1_Init(&m->u.sha1);
	else
		SHA256_Init(&m->u.sha256);
}

static void
md_update(struct md_state *m, const void *p, size_t n)
{
	if (m->len == SHA_DIGEST_LENGTH)
		SHA1_Update(&m->u.sha1, p, n);
	else
		SHA256_Update(&m->u.sha256, p, n);
}

static void
md_final(struct md_state *m, unsigned char *out)
{
	if (m->len == SHA_DIGEST_LENGTH)
		SHA1_Final(out, &m->u.sha1);
	else
		SHA256_Final(out, &m->u.sha256);
}

/*
 * One compression of a whole block into the state, and the state as a digest: what
 * md_update() and md_final() amount to for a block already padded (FIPS 180-4 section
 * 5.1.1), without their buffering and wiping.
 */
static void
md_block(struct md_state *m, const unsigned char *block, unsigned char *out)
{
	unsigned int h[8];

	if (m->len == SHA_DIGEST_LENGTH) {
		SHA1_Transform(&m->u.sha1, block);
		h[0] = m->u.sha1.h0;
		h[1] = m->u.sha1.h1;
		h[2] = m->u.sha1.h2;
		h[3] = m->u.sha1.h3;
		h[4] = m->u.sha1.h4;
	} else {
		SHA256_Transform(&m->u.sha256, block);
		memcpy(h, m->u.sha256.h, sizeof h);
	}
	for (size_t i = 0; i < m->len / 4; i++) {
		out[4 * i] = (unsigned char)(h[i] >> 24);
		out[4 * i + 1] = (unsigned char)(h[i] >> 16);
		out[4 * i + 2] = (unsigned char)(h[i] >> 8);
		out[4 * i + 3] = (unsigned char)h[i];
	}
}

/*
 * Hi(password, salt, i) of RFC 5802 section 2.2: PBKDF2 (RFC 8018 section 5.2) with
 * HMAC (RFC 2104) and one output block. The inner and outer pad states are computed once
 * and copied into every round, so a round costs two compressions and no allocation;
 * OpenSSL's PKCS5_PBKDF2_HMAC spent most of a login in context copies, mallocs and
 * cleansing around the same two compressions. test_sasl checks it against OpenSSL.
 */
static void
pbkdf2_hmac(size_t hlen, const char *pw, const unsigned char *salt, size_t saltlen,
	    uint32_t iterations, unsigned char *out)
{
	unsigned char key[SHA256_CBLOCK] = {0}, pad[SHA256_CBLOCK], u[SHA256_CBLOCK] = {0};
	uint64_t bits = (SHA256_CBLOCK + hlen) * 8; /* each hash: a pad block, then hlen bytes */
	static const unsigned char one[4] = {0, 0, 0, 1}; /* INT(1): the first block */
	struct md_state ipad, opad, c;
	size_t pwlen = strlen(pw);

	/* Both digests take 64-byte blocks; a longer key is hashed first (RFC 2104 section 2). */
	if (pwlen > sizeof key) {
		md_init(&c, hlen);
		md_update(&c, pw, pwlen);
		md_final(&c, key);
	} else {
		memcpy(key, pw, pwlen);
	}
	for (size_t i = 0; i < sizeof pad; i++)
		pad[i] = key[i] ^ 0x36;
	md_init(&ipad, hlen);
	md_update(&ipad, pad, sizeof pad);
	for (size_t i = 0; i < sizeof pad; i++)
		pad[i] = key[i] ^ 0x5c;
	md_init(&opad, hlen);
	md_update(&opad, pad, sizeof pad);

	/* U1 = HMAC(P, S || INT(1)); Uj = HMAC(P, Uj-1); out = U1 ^ ... ^ Ui */
	c = ipad;
	md_update(&c, salt, saltlen);
	md_update(&c, one, sizeof one);
	md_final(&c, u);
	c = opad;
	md_update(&c, u, hlen);
	md_final(&c, u);
	memcpy(out, u, hlen);
	/* Later rounds hash one padded block: Uj-1, 0x80, zeros, the length in bits. */
	u[hlen] = 0x80;
	for (int k = 0; k < 8; k++)
		u[SHA256_CBLOCK - 1 - k] = (unsigned char)(bits >> (8 * k));
	for (uint32_t j = 1; j < iterations; j++) {
		c = ipad;
		md_block(&c, u, u);
		c = opad;
		md_block(&c, u, u);
		for (size_t k = 0; k < hlen; k++)
			out[k] ^= u[k];
	}
	OPENSSL_cleanse(key, sizeof key);
	OPENSSL_cleanse(pad, sizeof pad);
	OPENSSL_cleanse(u, sizeof u);
	OPENSSL_cleanse(&ipad, sizeof ipad);
	OPENSSL_cleanse(&opad, sizeof opad);
	OPENSSL_cleanse(&c, sizeof c);
}

/*
 * SaltedPassword = Hi(password, salt, i); StoredKey = H(HMAC(SaltedPassword,
 * "Client Key")); ServerKey = HMAC(SaltedPassword, "Server Key") (RFC 5802 section
 * 3). server may be NULL. Returns 0 or -1 (OpenSSL failure, iteration count too big).
 */
static int
scram_keys(const EVP_MD *md, const char *pw, const unsigned char *salt, uint32_t iterations,
	   unsigned char *stored, unsigned char *server)
{
	unsigned char salted[EVP_MAX_MD_SIZE], client[EVP_MAX_MD_SIZE];
	int hlen = EVP_MD_get_size(md);
	unsigned int len;
	int rc = -1;

	if (iterations < 1 || iterations > INT32_MAX)
		return -1;
	pbkdf2_hmac((size_t)hlen, pw, salt, SASL_SALT_LEN, iterations, salted);
	if (!HMAC(md, salted, hlen, (const unsigned char *)"Client Key", 10, client, &len))
		goto fail;
	if (!EVP_Digest(client, (size_t)hlen, stored, NULL, md, NULL))
		goto fail;
	if (server &&
	    !HMAC(md, salted, hlen, (const unsigned char *)"Server Key", 10, server, &len))
		goto fail;
	rc = 0;
fail:
	OPENSSL_cleanse(salted, sizeof salted);
	OPENSSL_cleanse(client, sizeof client);
	return rc;
}

static void
free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

int
sasl_creds_derive(const char *password, const unsigned char salt[SASL_SALT_LEN],
		  uint32_t iterations, struct sasl_creds *out)
{
	struct sasl_creds c;
	char *pw = NULL;
	int rc = -1;

	/* Passwords are OpaqueString (RFC 8265 section 4.2), as resourceparts are. */
	if (jid_norm_resource(password, &pw) < 0)
		return -1;
	memset(&c, 0, sizeof c);
	memcpy(c.salt, salt, SASL_SALT_LEN);
	c.iterations = iterations;
	if (scram_keys(EVP_sha1(), pw, salt, iterations, c.sha1_stored, c.sha1_server) < 0 ||
	    scram_keys(EVP_sha256(), pw, salt, iterations, c.sha256_stored, c.sha256_server) < 0)
		goto fail;
	*out = c;
	rc = 0;
fail:
	free_secret(pw);
	OPENSSL_cleanse(&c, sizeof c);
	return rc;
}

int
sasl_creds_digest(struct sasl_creds *c, const char *user, const char *realm, const char *password)
{
	struct buf b = {0};
	unsigned int n = 0;
	int rc = 0;

	if (!password || !*password)
		return -1;
	buf_printf(&b, "%s:%s:%s", user, realm, password);
	if (EVP_Digest(buf_head(&b), buf_used(&b), c->ha1_md5, &n, EVP_md5(), NULL) != 1 ||
	    EVP_Digest(buf_head(&b), buf_used(&b), c->ha1_sha256, &n, EVP_sha256(), NULL) != 1)
		rc = -1;
	OPENSSL_cleanse(b.data, b.len);
	buf_free(&b);
	c->has_digest = rc == 0;
	return rc;
}

size_t
sasl_creds_encode(const struct sasl_creds *c, unsigned char out[SASL_CREDS_BLOB])
{
	unsigned char *p = out;

	memcpy(p, c->has_digest ? "BSC2" : "BSC1", 4), p += 4;
	memcpy(p, c->salt, SASL_SALT_LEN), p += SASL_SALT_LEN;
	*p++ = (unsigned char)(c->iterations >> 24);
	*p++ = (unsigned char)(c->iterations >> 16);
	*p++ = (unsigned char)(c->iterations >> 8);
	*p++ = (unsigned char)c->iterations;
	memcpy(p, c->sha1_stored, 20), p += 20;
	memcpy(p, c->sha1_server, 20), p += 20;
	memcpy(p, c->sha256_stored, 32), p += 32;
	memcpy(p, c->sha256_server, 32), p += 32;
	if (!c->has_digest)
		return SASL_CREDS_BLOB1;
	memcpy(p, c->ha1_md5, 16), p += 16;
	memcpy(p, c->ha1_sha256, 32);
	return SASL_CREDS_BLOB;
}

int
sasl_creds_decode(const unsigned char *blob, size_t n, struct sasl_creds *out)
{
	const unsigned char *p = blob;
	struct sasl_creds c;

	bool v2 = n == SASL_CREDS_BLOB && memcmp(p, "BSC2", 4) == 0;

	if (!v2 && (n != SASL_CREDS_BLOB1 || memcmp(p, "BSC1", 4) != 0))
		return -1;
	memset(&c, 0, sizeof c);
	p += 4;
	memcpy(c.salt, p, SASL_SALT_LEN), p += SASL_SALT_LEN;
	c.iterations = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	p += 4;
	if (c.iterations < 1)
		return -1;
	memcpy(c.sha1_stored, p, 20), p += 20;
	memcpy(c.sha1_server, p, 20), p += 20;
	memcpy(c.sha256_stored, p, 32), p += 32;
	memcpy(c.sha256_server, p, 32), p += 32;
	if (v2) {
		c.has_digest = 1;
		memcpy(c.ha1_md5, p, 16), p += 16;
		memcpy(c.ha1_sha256, p, 32);
	}
	*out = c;
	return 0;
}

/* ---- the exchange ---- */

const char *const *
sasl_mechanisms(void)
{
	return mechanisms;
}

struct sasl *
sasl_new(const char *mech)
{
	struct sasl *s;
	enum sasl_mech m;

	if (strcmp(mech, "PLAIN") == 0)
		m = MECH_PLAIN;
	else if (strcmp(mech, "SCRAM-SHA-1") == 0)
		m = MECH_SCRAM_SHA1;
	else if (strcmp(mech, "SCRAM-SHA-256") == 0)
		m = MECH_SCRAM_SHA256;
	else
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->mech = m;
	s->state = ST_START;
	return s;
}

void
sasl_free(struct sasl *s)
{
	if (!s)
		return;
	free(s->username);
	free(s->domain);
	free_secret(s->password);
	free(s->gs2_header);
	free(s->nonce);
	buf_free(&s->auth);
	OPENSSL_cleanse(s, sizeof *s);
	free(s);
}

const char *
sasl_plain_password(const struct sasl *s)
{
	return s && s->mech == MECH_PLAIN ? s->password : NULL;
}

const char *
sasl_username(const struct sasl *s)
{
	return s->username;
}

const char *
sasl_condition(const struct sasl *s)
{
	return s->condition;
}

static const EVP_MD *
mech_md(const struct sasl *s)
{
	return s->mech == MECH_SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* Ends the exchange with condition cond; returns SASL_FAIL. */
static int
fail(struct sasl *s, const char *cond)
{
	s->state = ST_DONE;
	s->condition = cond;
	free_secret(s->password);
	s->password = NULL;
	OPENSSL_cleanse(&s->creds, sizeof s->creds);
	return SASL_FAIL;
}

/* Made-up credentials for name (raw bytes if it did not normalise): see fake_salt_key. */
static void
set_fake_creds(struct sasl *s, const char *name, size_t n)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len;

	pthread_once(&fake_once, fake_init);
	if (!HMAC(EVP_sha256(), fake_salt_key, sizeof fake_salt_key, (const unsigned char *)name, n,
		  mac, &len))
		rand_bytes(mac, SASL_SALT_LEN);
	memcpy(s->creds.salt, mac, SASL_SALT_LEN);
	s->creds.iterations = atomic_load_explicit(&last_iterations, memory_order_relaxed);
	rand_bytes(s->creds.sha1_stored, sizeof s->creds.sha1_stored);
	rand_bytes(s->creds.sha1_server, sizeof s->creds.sha1_server);
	rand_bytes(s->creds.sha256_stored, sizeof s->creds.sha256_stored);
	rand_bytes(s->creds.sha256_server, sizeof s->creds.sha256_server);
	s->unknown = true;
	s->creds_set = true;
}

void
sasl_set_creds(struct sasl *s, const struct sasl_creds *c)
{
	if (s->state != ST_NEED_CREDS || s->creds_set)
		return;
	if (!c) {
		set_fake_creds(s, s->username, strlen(s->username));
		return;
	}
	s->creds = *c;
	s->creds_set = true;
	atomic_store_explicit(&last_iterations, c->iterations, memory_order_relaxed);
}

void
sasl_set_domain(struct sasl *s, const char *domain)
{
	free(s->domain);
	s->domain = domain ? xstrdup(domain) : NULL;
}

/*
 * Checks an authorization identity against the authentication identity: empty, the
 * username, or the account's bare JID (user@domain, when sasl_set_domain() told us the
 * domain) name the same account; anything else would be acting as another user, which
 * RFC 6120 section 6.3.8 lets the server refuse with <invalid-authzid/>.
 */
static bool
authzid_ok(const struct sasl *s, const char *authzid)
{
	char *norm;
	bool ok;

	if (!authzid || !authzid[0])
		return true;
	if (!s->username)
		return false;
	if (strchr(authzid, '@')) {
		struct jid j;
		if (!s->domain || jid_parse(authzid, &j) < 0)
			return false;
		ok = j.local && !j.resource && strcmp(j.local, s->username) == 0 &&
		     strcmp(j.domain, s->domain) == 0;
		jid_free(&j);
		return ok;
	}
	if (jid_norm_local(authzid, &norm) < 0)
		return false;
	ok = strcmp(norm, s->username) == 0;
	free(norm);
	return ok;
}

/* ---- PLAIN (RFC 4616) ---- */

static int plain_finish(struct sasl *s);

/* message = [authzid] NUL authcid NUL passwd (RFC 4616 section 2). */
static int
plain_start(struct sasl *s, const char *in, size_t n)
{
	const char *nul1 = memchr(in, '\0', n), *nul2, *authcid, *pw;
	size_t pwlen;
	bool azok;

	if (!nul1 || !(nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - in))))
		return fail(s, "malformed-request");
	authcid = nul1 + 1;
	pw = nul2 + 1;
	pwlen = n - (size_t)(pw - in);
	if (nul2 == authcid || pwlen == 0 || memchr(pw, '\0', pwlen))
		return fail(s, "malformed-request");
	if (!utf8_valid(in, (size_t)(nul1 - in)) || !utf8_valid(authcid, (size_t)(nul2 - authcid)))
		return fail(s, "malformed-request");
	if (jid_norm_local(authcid, &s->username) < 0)
		s->username = NULL;
	azok = authzid_ok(s, in);
	if (!azok)
		return fail(s, "invalid-authzid");
	s->password = xstrndup(pw, pwlen);
	s->state = ST_NEED_CREDS;
	if (!s->username) {
		/* Not a valid username, so no account: fail as a wrong password would. */
		set_fake_creds(s, authcid, (size_t)(nul2 - authcid));
		return plain_finish(s);
	}
	return SASL_NEED_CREDS;
}

/* PLAIN is checked against the SCRAM-SHA-256 StoredKey derived from the password. */
static int
plain_finish(struct sasl *s)
{
	unsigned char key[32];
	char *pw = NULL;
	bool ok = false;

	if (jid_norm_resource(s->password, &pw) == 0) {
		if (scram_keys(EVP_sha256(), pw, s->creds.salt, s->creds.iterations, key, NULL) <
		    0) {
			free_secret(pw);
			return fail(s, "temporary-auth-failure");
		}
		ok = CRYPTO_memcmp(key, s->creds.sha256_stored, sizeof key) == 0;
		OPENSSL_cleanse(key, sizeof key);
	}
	free_secret(pw);
	if (!ok || s->unknown)
		return fail(s, "not-authorized");
	free_secret(s->password);
	s->password = NULL;
	OPENSSL_cleanse(&s->creds, sizeof s->creds);
	s->state = ST_DONE;
	return SASL_SUCCESS;
}

/* ---- SCRAM (RFC 5802 section 7 grammar) ---- */

static int scram_server_first(struct sasl *s, struct buf *out);

/*
 * The next ','-delimited attribute at *p (end e); returns its length and advances *p
 * past the ','. After the last attribute *p is NULL, and further calls return 0.
 */
static size_t
next_attr(const char **p, const char *e, const char **attr)
{
	const char *c;
	size_t n;

	if (!*p) {
		*attr = e;
		return 0;
	}
	c = memchr(*p, ',', (size_t)(e - *p));
	n = (size_t)((c ? c : e) - *p);
	*attr = *p;
	*p = c ? c + 1 : NULL;
	return n;
}

/* saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an error. Returns 0 or -1. */
static int
saslname_decode(const char *in, size_t n, char **out)
{
	char *s = xmalloc(n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] != '=') {
			s[o++] = in[i];
		} else if (n - i >= 3 && in[i + 1] == '2' && in[i + 2] == 'C') {
			s[o++] = ',', i += 2;
		} else if (n - i >= 3 && in[i + 1] == '3' && in[i + 2] == 'D') {
			s[o++] = '=', i += 2;
		} else {
			free(s);
			return -1;
		}
	}
	s[o] = '\0';
	*out = s;
	return 0;
}

/* A nonce is printable ASCII except ',' (RFC 5802 section 7, "c-nonce"). */
static bool
nonce_ok(const char *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

/* Optional trailing extensions: each attr-val is ALPHA "=" value; their content is ignored. */
static bool
extension_ok(const char *a, size_t n)
{
	return n >= 2 && ((a[0] >= 'a' && a[0] <= 'z') || (a[0] >= 'A' && a[0] <= 'Z')) &&
	       a[1] == '=';
}

/* client-first-message = gs2-header client-first-message-bare (RFC 5802 section 7). */
static int
scram_client_first(struct sasl *s, const char *in, size_t n, struct buf *out)
{
	const char *p = in, *e = in + n, *a, *bare;
	char *authzid = NULL, *name = NULL;
	size_t len, namelen;
	bool azok;

	if (memchr(in, '\0', n) || !utf8_valid(in, n))
		return fail(s, "malformed-request");
	/* gs2-cbind-flag: "n" or "y" (we offer no -PLUS, RFC 5802 section 6); "p=" fails. */
	len = next_attr(&p, e, &a);
	if (!p)
		return fail(s, "malformed-request");
	if (len >= 2 && a[0] == 'p' && a[1] == '=')
		return fail(s, "not-authorized");
	if (len != 1 || (a[0] != 'n' && a[0] != 'y'))
		return fail(s, "malformed-request");
	len = next_attr(&p, e, &a);
	if (!p)
		return fail(s, "malformed-request");
	if (len > 0) {
		if (len < 3 || a[0] != 'a' || a[1] != '=' ||
		    saslname_decode(a + 2, len - 2, &authzid) < 0)
			return fail(s, "malformed-request");
	}
	bare = p;
	/* reserved-mext "m=" names a mandatory extension we do not know (section 5.1). */
	len = next_attr(&p, e, &a);
	if (len < 3 || a[0] != 'n' || a[1] != '=' || saslname_decode(a + 2, len - 2, &name) < 0)
		goto malformed;
	len = next_attr(&p, e, &a);
	if (len < 2 || a[0] != 'r' || a[1] != '=' || !nonce_ok(a + 2, len - 2))
		goto malformed;
	s->nonce = xstrndup(a + 2, len - 2);
	while (p) {
		len = next_attr(&p, e, &a);
		if (!extension_ok(a, len))
			goto malformed;
	}
	namelen = strlen(name);
	if (namelen == 0 || jid_norm_local(name, &s->username) < 0)
		s->username = NULL;
	azok = authzid_ok(s, authzid);
	free(authzid);
	authzid = NULL;
	if (!azok) {
		free(name);
		return fail(s, "invalid-authzid");
	}
	s->gs2_header = xstrndup(in, (size_t)(bare - in));
	buf_append(&s->auth, bare, (size_t)(e - bare));
	s->state = ST_NEED_CREDS;
	if (!s->username) {
		/* Not a valid username, so no account: carry on as for an unknown one. */
		set_fake_creds(s, name, namelen);
		free(name);
		return scram_server_first(s, out);
	}
	free(name);
	return SASL_NEED_CREDS;
malformed:
	free(authzid);
	free(name);
	return fail(s, "malformed-request");
}

/* server-first-message = "r=" c-nonce s-nonce ",s=" salt ",i=" iteration-count. */
static int
scram_server_first(struct sasl *s, struct buf *out)
{
	unsigned char raw[SCRAM_SNONCE_BYTES];
	struct buf msg = {0};
	char *nonce;

	rand_bytes(raw, sizeof raw);
	buf_puts(&msg, s->nonce);
	base64_encode(&msg, raw, sizeof raw);
	nonce = buf_steal(&msg);
	free(s->nonce);
	s->nonce = nonce;
	buf_printf(&msg, "r=%s,s=", s->nonce);
	base64_encode(&msg, s->creds.salt, SASL_SALT_LEN);
	buf_printf(&msg, ",i=%u", (unsigned int)s->creds.iterations);
	buf_append(out, buf_head(&msg), buf_used(&msg));
	buf_puts(&s->auth, ",");
	buf_append(&s->auth, buf_head(&msg), buf_used(&msg));
	buf_puts(&s->auth, ",");
	buf_free(&msg);
	s->state = ST_FINAL;
	return SASL_CONTINUE;
}

/*
 * client-final-message = "c=" base64(gs2-header) ",r=" nonce [extensions] ",p=" proof.
 * The proof is ClientKey XOR HMAC(StoredKey, AuthMessage); the client knows the
 * password iff H(ClientKey) == StoredKey (RFC 5802 section 3).
 */
static int
scram_client_final(struct sasl *s, const char *in, size_t n, struct buf *out)
{
	const EVP_MD *md = mech_md(s);
	size_t hlen = (size_t)EVP_MD_get_size(md), len;
	unsigned char sig[EVP_MAX_MD_SIZE], key[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE];
	const unsigned char *stored_key =
	    s->mech == MECH_SCRAM_SHA1 ? s->creds.sha1_stored : s->creds.sha256_stored;
	const unsigned char *server_key =
	    s->mech == MECH_SCRAM_SHA1 ? s->creds.sha1_server : s->creds.sha256_server;
	const char *p = in, *e = in + n, *a, *lastcomma;
	struct buf cb = {0}, proof = {0};
	unsigned int mlen;
	bool ok;
	int rc;

	if (memchr(in, '\0', n) || !utf8_valid(in, n))
		return fail(s, "malformed-request");
	lastcomma = memrchr(in, ',', n);
	if (!lastcomma || e - lastcomma < 3 || lastcomma[1] != 'p' || lastcomma[2] != '=')
		return fail(s, "malformed-request");
	if (base64_decode(&proof, lastcomma + 3, (size_t)(e - lastcomma - 3)) < 0 ||
	    buf_used(&proof) != hlen)
		goto malformed;
	e = lastcomma;
	len = next_attr(&p, e, &a);
	if (!p || len < 2 || a[0] != 'c' || a[1] != '=')
		goto malformed;
	base64_encode(&cb, s->gs2_header, strlen(s->gs2_header));
	/* Without channel binding, c= carries exactly the gs2 header (section 5.1). */
	if (len - 2 != buf_used(&cb) || memcmp(a + 2, buf_head(&cb), len - 2) != 0) {
		rc = fail(s, "not-authorized");
		goto done;
	}
	len = next_attr(&p, e, &a);
	if (len < 2 || a[0] != 'r' || a[1] != '=')
		goto malformed;
	if (len - 2 != strlen(s->nonce) || memcmp(a + 2, s->nonce, len - 2) != 0) {
		rc = fail(s, "not-authorized");
		goto done;
	}
	while (p) {
		len = next_attr(&p, e, &a);
		if (!extension_ok(a, len))
			goto malformed;
	}
	buf_append(&s->auth, in, (size_t)(lastcomma - in));
	if (!HMAC(md, stored_key, hlen, (const unsigned char *)buf_head(&s->auth),
		  buf_used(&s->auth), sig, &mlen)) {
		rc = fail(s, "temporary-auth-failure");
		goto done;
	}
	for (size_t i = 0; i < hlen; i++)
		key[i] = (unsigned char)buf_head(&proof)[i] ^ sig[i];
	ok = EVP_Digest(key, hlen, stored, NULL, md, NULL) &&
	     CRYPTO_memcmp(stored, stored_key, hlen) == 0;
	OPENSSL_cleanse(key, sizeof key);
	if (!ok || s->unknown) {
		rc = fail(s, "not-authorized");
		goto done;
	}
	/* server-final-message = "v=" base64(HMAC(ServerKey, AuthMessage)). */
	if (!HMAC(md, server_key, hlen, (const unsigned char *)buf_head(&s->auth),
		  buf_used(&s->auth), sig, &mlen)) {
		rc = fail(s, "temporary-auth-failure");
		goto done;
	}
	buf_puts(out, "v=");
	base64_encode(out, sig, hlen);
	OPENSSL_cleanse(&s->creds, sizeof s->creds);
	s->state = ST_DONE;
	rc = SASL_SUCCESS;
	goto done;
malformed:
	rc = fail(s, "malformed-request");
done:
	buf_free(&cb);
	buf_free(&proof);
	return rc;
}

int
sasl_step(struct sasl *s, const char *in, size_t inlen, struct buf *out)
{
	if (inlen > SASL_MSG_MAX || (!in && inlen > 0))
		return fail(s, "malformed-request");
	switch (s->state) {
	case ST_START:
		if (inlen == 0) {
			/* No initial response: an empty challenge asks for it (RFC 6120 6.4.2). */
			if (s->empty_sent)
				return fail(s, "malformed-request");
			s->empty_sent = true;
			return SASL_CONTINUE;
		}
		if (s->mech == MECH_PLAIN)
			return plain_start(s, in, inlen);
		return scram_client_first(s, in, inlen, out);
	case ST_NEED_CREDS:
		if (inlen != 0)
			return fail(s, "malformed-request");
		/* A caller that never looked the user up gets the unknown-user path. */
		if (!s->creds_set)
			sasl_set_creds(s, NULL);
		if (s->mech == MECH_PLAIN)
			return plain_finish(s);
		return scram_server_first(s, out);
	case ST_FINAL:
		return scram_client_final(s, in, inlen, out);
	case ST_DONE:
		break;
	}
	return fail(s, "malformed-request");
}
