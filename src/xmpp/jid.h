/*
 * jid: parsing and PRECIS-style normalisation of XMPP addresses (RFC 7622).
 * localpart: UsernameCaseMapped profile (RFC 8265 section 3.3); domainpart: lower case,
 * NFC, trailing dot removed, IDNA-valid labels; resourcepart: OpaqueString (RFC 8265
 * section 4.2). Part of the xmpp module; included through xmpp.h.
 *
 * Invariant: a struct jid only ever holds normalised parts; two addresses are
 * the same entity exactly when their parts are byte-equal.
 */
#ifndef BATON_JID_H
#define BATON_JID_H

#include <stddef.h>

#define JID_PART_MAX 1023 /* bytes per part, RFC 7622 section 3.1 */

struct jid {
	char *local;	/* NULL when absent */
	char *domain;	/* never NULL once parsed */
	char *resource; /* NULL when absent */
};

/*
 * Parses and normalises s. Returns 0 and fills out (caller frees with jid_free),
 * or -1 if s is not a valid JID (out unchanged).
 */
int jid_parse(const char *s, struct jid *out);
/* Normalise one part into a new string the caller frees; return 0 or -1 (invalid). */
int jid_norm_local(const char *in, char **out);
int jid_norm_domain(const char *in, char **out);
int jid_norm_resource(const char *in, char **out);
/* "local@domain" or "domain"; caller frees. */
char *jid_bare(const struct jid *j);
/*
 * The normalised bare JID of s (caller frees), or NULL if s is not a valid JID. Addresses
 * already in canonical form, as servers stamp them, are copied without being parsed: the
 * per-message way to key a conversation by its peer.
 */
char *jid_bare_of(const char *s);
/* "local@domain/resource" (parts present only); caller frees. */
char *jid_full(const struct jid *j);
/* Deep copy; caller frees with jid_free. */
void jid_copy(struct jid *dst, const struct jid *src);
void jid_free(struct jid *j);
/* Returns 1 if s is valid UTF-8 with no NUL and no C0 controls except tab/CR/LF, else 0. */
int utf8_valid(const char *s, size_t n);

#endif
