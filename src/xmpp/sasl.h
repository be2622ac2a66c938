/*
 * sasl: the server side of SASL PLAIN (RFC 4616) and SCRAM-SHA-1 / SCRAM-SHA-256
 * (RFC 5802, RFC 7677), as a protocol engine with no I/O: bytes in, bytes out. Part of
 * the xmpp module; included through xmpp.h.
 *
 * Invariant: passwords are never stored; an account keeps only the salt, the
 * iteration count and the SCRAM StoredKey/ServerKey for each hash. PLAIN is checked
 * by deriving the StoredKey from the offered password.
 */
#ifndef BATON_SASL_H
#define BATON_SASL_H

#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

#define SASL_SALT_LEN 16

/* What the store keeps per account. */
struct sasl_creds {
	unsigned char salt[SASL_SALT_LEN];
	uint32_t iterations;
	unsigned char sha1_stored[20], sha1_server[20];
	unsigned char sha256_stored[32], sha256_server[32];
	/*
	 * HTTP digest for SIP (RFC 2617, RFC 8760): HA1 = H(user ":" realm ":" password) with MD5
	 * and SHA-256, kept when the password was set with sasl_creds_digest(). A uint32_t, so the
	 * struct has no padding bytes and compares whole.
	 */
	uint32_t has_digest;
	unsigned char ha1_md5[16], ha1_sha256[32];
};

/*
 * Derives credentials from a password (normalised with the OpaqueString profile
 * first). Returns 0, or -1 if the password is empty or not valid UTF-8 (out unchanged).
 */
int sasl_creds_derive(const char *password, const unsigned char salt[SASL_SALT_LEN],
		      uint32_t iterations, struct sasl_creds *out);

/*
 * Adds the digest HA1s for SIP (user: the account's localpart, realm: the domain; the
 * password as typed, which is what a SIP phone hashes). Returns 0, or -1 if it is empty.
 */
int sasl_creds_digest(struct sasl_creds *c, const char *user, const char *realm,
		      const char *password);

/*
 * The stored form of credentials, opaque to the store: magic "BSC1", then salt,
 * iterations (big-endian u32) and the four keys (SASL_CREDS_BLOB1 bytes); or magic "BSC2",
 * the same, then the MD5 and SHA-256 HA1s (SASL_CREDS_BLOB bytes).
 */
#define SASL_CREDS_BLOB1 (4 + SASL_SALT_LEN + 4 + 20 + 20 + 32 + 32)
#define SASL_CREDS_BLOB	 (SASL_CREDS_BLOB1 + 16 + 32)
/* Writes the blob; returns its length (BSC2 if c has the digest HA1s, else BSC1). */
size_t sasl_creds_encode(const struct sasl_creds *c, unsigned char out[SASL_CREDS_BLOB]);
/* Returns 0, or -1 if blob is not a credentials record of either version (out unchanged). */
int sasl_creds_decode(const unsigned char *blob, size_t n, struct sasl_creds *out);

enum sasl_result {
	SASL_CONTINUE = 0,   /* out holds a challenge for the client */
	SASL_NEED_CREDS = 1, /* look up sasl_username(), call sasl_set_creds(), step again */
	SASL_SUCCESS = 2,    /* out holds additional data for <success/> (may be empty) */
	SASL_FAIL = -1,	     /* sasl_condition() names the RFC 6120 section 6.5 condition */
};

struct sasl;

/* Returns the mechanism list in preference order, NULL-terminated. */
const char *const *sasl_mechanisms(void);
/* Returns a new exchange for mech ("PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256") or NULL. */
struct sasl *sasl_new(const char *mech);
/* Tells the exchange the server's domain (copied), so an authzid "user@domain" is understood. */
void sasl_set_domain(struct sasl *s, const char *domain);
/*
 * Feeds one client message (already base64-decoded; NULL/0 when resuming after
 * SASL_NEED_CREDS). Appends any server data to out. Returns an enum sasl_result.
 */
int sasl_step(struct sasl *s, const char *in, size_t inlen, struct buf *out);
/*
 * Supplies the account's credentials, or NULL if there is no such account: the
 * exchange then continues with made-up credentials and fails at the end, so a client
 * cannot tell unknown users from wrong passwords.
 */
void sasl_set_creds(struct sasl *s, const struct sasl_creds *c);
/* The authentication identity (normalised localpart) once known, else NULL. */
const char *sasl_username(const struct sasl *s);
/* PLAIN: the password given (not yet checked), or NULL (other mechanisms, or not yet). */
const char *sasl_plain_password(const struct sasl *s);
/* The failure condition, e.g. "not-authorized", "malformed-request", "invalid-authzid". */
const char *sasl_condition(const struct sasl *s);
void sasl_free(struct sasl *s);

/* Base64 (RFC 4648, no line breaks). decode returns 0 or -1 on bad input; "=" means empty. */
void base64_encode(struct buf *out, const void *data, size_t n);
int base64_decode(struct buf *out, const char *s, size_t n);

#endif
