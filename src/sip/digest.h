/*
 * sip/digest: HTTP Digest authentication as SIP uses it (RFC 2617, RFC 7616, RFC 8760; qop=auth,
 * MD5 and SHA-256, realm = the XMPP domain): credentials parsing, the response computation from a
 * stored HA1, stateless HMAC nonces, a bounded replay table and the challenge header. Pure code:
 * no I/O, no account lookup.
 *
 * Invariant: the server never holds a password, only HA1 = H(user ":" realm ":" password); a
 * request is accepted only if its nonce carries our MAC, its response matches the one computed
 * from HA1 (compared in constant time) and its (nonce, nc) pair has not been accepted before.
 * A server checks, in this order: digest_nonce_check, digest_verify, then digest_replay_ok.
 */
#ifndef BATON_SIP_DIGEST_H
#define BATON_SIP_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

enum digest_alg { DIGEST_MD5 = 0, DIGEST_SHA256 = 1 };

#define DIGEST_HEX_MAX	 65   /* a SHA-256 digest in hex with its NUL; MD5 needs 33 */
#define DIGEST_CRED_MAX	 4096 /* bytes of an Authorization value; longer ones are refused */
#define DIGEST_NONCE_LEN 64   /* hex: 16 timestamp, 16 random, 32 MAC (see digest_nonce) */

/* Hex length of alg's digests (32 or 64), or 0 for an unknown alg. */
size_t digest_hex_len(int alg);

/*
 * HA1 = H(user ":" realm ":" password) in lower-case hex (RFC 2617 3.2.2.2, RFC 7616 3.4.2).
 * out has 33 (MD5) or 65 (SHA-256) bytes at least; a shorter n is a programming error (fatal).
 * If the hash is unavailable (an OpenSSL without MD5), out is "", which no response matches.
 */
void digest_ha1(int alg, const char *user, const char *realm, const char *password, char *out,
		size_t n);

/*
 * A parsed Authorization / Proxy-Authorization value of the Digest scheme. Every string points
 * into mem; optional ones (cnonce, opaque, qop, nc) are NULL when absent. username, realm,
 * nonce, uri and response are present and non-empty; alg is DIGEST_MD5 or DIGEST_SHA256; if qop
 * is present it is "auth" and cnonce (non-empty) and nc (8 hex digits) are present too.
 */
struct digest_cred {
	char *username, *realm, *nonce, *uri, *response, *cnonce, *opaque, *qop, *nc;
	int alg;
	char *mem;
};

/*
 * Parses header_value (RFC 7616 3.4, RFC 7235 2.1: the scheme is case-insensitive, parameters
 * are token or quoted-string in any order, with optional whitespace around '=' and ','; unknown
 * parameters are ignored, RFC 7616 3.4). Returns 0 with c filled (free it with
 * digest_cred_free), or -1 with c zeroed: another scheme, a syntax error, a value longer than
 * DIGEST_CRED_MAX in all, a duplicated known parameter, a required one missing or empty,
 * algorithm other than MD5 / SHA-256 (the "-sess" variants are refused), qop other than auth,
 * or nc / cnonce inconsistent with qop.
 */
int digest_parse_credentials(const char *header_value, struct digest_cred *c);
/* Frees c->mem and zeroes c; safe on a zeroed c. */
void digest_cred_free(struct digest_cred *c);

/*
 * The response the client should have sent for method (REGISTER, MESSAGE...) given HA1 (RFC
 * 2617 3.2.2.1): KD(HA1, nonce ":" nc ":" cnonce ":" qop ":" HA2) with qop, or the RFC 2069 form
 * KD(HA1, nonce ":" HA2) without; HA2 = H(method ":" uri) (3.2.2.3). Lower-case hex in out (n as
 * for digest_ha1).
 */
void digest_response(int alg, const char *ha1, const char *method, const struct digest_cred *c,
		     char *out, size_t n);

/*
 * A stateless, unforgeable nonce (RFC 7616 3.3 and 5.4; RFC 2617 3.2.1 suggests this shape):
 * hex(now_ms, 16 digits) hex(8 random bytes) then the first 16 bytes of HMAC-SHA256(key,
 * <those 32 digits> ":" realm) in hex: DIGEST_NONCE_LEN characters. The random part keeps two
 * challenges of the same millisecond apart, so the replay table never confuses two clients.
 * out has DIGEST_NONCE_LEN + 1 bytes at least (fatal otherwise). now_ms is wall time (so nonces
 * survive a restart, given the same key).
 */
void digest_nonce(const uint8_t key[32], const char *realm, int64_t now_ms, char *out, size_t n);
/*
 * Returns 0 if nonce is ours for realm and at most max_age_ms old, 1 if it is ours but older
 * (or dated in the future after a clock step): answer 401 with stale=true (RFC 7616 3.3), or -1
 * if it is not ours (forged, other realm, other key, malformed).
 */
int digest_nonce_check(const uint8_t key[32], const char *realm, const char *nonce, int64_t now_ms,
		       int64_t max_age_ms);

/*
 * Replay protection (RFC 7616 3.4 nc and 5.x, RFC 2617 4.5): remembers, per nonce, the highest
 * nc accepted, in a table of at most capacity nonces; when full the nonce entered first is
 * evicted, and any nonce not in the table that was issued no later than an evicted one is
 * refused, so an evicted nonce can never be replayed (its client gets a fresh one). Call only
 * after digest_verify succeeded, so unauthenticated peers cannot fill the table. One owner.
 */
struct digest_replay;
/* A new table (capacity 0 counts as 1). Aborts if memory runs out. */
struct digest_replay *digest_replay_new(size_t capacity);
/*
 * Returns true, and remembers it, if nc (8 hex digits) is greater than any nc accepted with
 * nonce; with nc NULL (no qop) true only for the nonce's first use, which also closes it to any
 * later nc. False for a replay, an nc that is not 8 hex digits or 0, a nonce not made by
 * digest_nonce, or one refused because of eviction (see above); the table is then unchanged.
 */
bool digest_replay_ok(struct digest_replay *r, const char *nonce, const char *nc);
void digest_replay_free(struct digest_replay *r);

/*
 * Appends a WWW-Authenticate / Proxy-Authenticate value offering alg: Digest realm="...",
 * nonce="...", algorithm=MD5|SHA-256, qop="auth"[, stale=true]. A server sends one header per
 * algorithm, SHA-256 first (RFC 8760 2.4, RFC 7616 3.7).
 */
void digest_challenge(struct buf *out, int alg, const char *realm, const char *nonce, bool stale);

/*
 * Verifies c against HA1 (of alg, for c->username as looked up by the caller): c->alg is alg,
 * c->realm is realm and c->response is digest_response(alg, ha1, method, c) (constant-time
 * compare). Returns 0 or -1. The caller also checks the nonce (digest_nonce_check), that c->uri
 * names the Request-URI (RFC 2617 3.2.2.5) and replays (digest_replay_ok).
 */
int digest_verify(int alg, const char *ha1, const char *method, const char *realm,
		  const struct digest_cred *c);

#endif
