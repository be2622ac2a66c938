/*
 * sip/msg: the SIP message codec (RFC 3261 sections 7, 18.3, 19.1, 20 and 25; RFC 3428 MESSAGE):
 * one message parsed from the bytes of a UDP datagram or a TCP stream, accessors for the header
 * values baton needs (name-addr, URI, Via, CSeq, Content-Disposition), and the writers of
 * requests and responses. Pure code: no sockets, no transaction state.
 *
 * Invariant: sip_parse() never reads past len, takes O(len) time, and either fails (nothing to
 * free) or fills a sip_msg whose every string is NUL-terminated, free of NUL, CR and LF, and
 * owned by m->mem; header names are RFC 3261 tokens, values are unfolded and trimmed.
 */
#ifndef BATON_SIP_MSG_H
#define BATON_SIP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

#define SIP_MAX_MSG	65535 /* bytes of one message (UDP datagram or TCP frame) */
#define SIP_MAX_HEADERS 64

struct sip_hdr {
	char *name;  /* canonical spelling for known headers (compact forms expanded: v -> Via ...),
			as sent otherwise */
	char *value; /* unfolded (7.3.1: each fold is one SP) and trimmed; "" if empty */
};

struct sip_msg {
	bool request;
	bool keepalive; /* no message: a CRLF keep-alive (RFC 5626 4.4.1) was taken */
	char *method;	/* requests: "REGISTER", ... (case-sensitive, 7.1) */
	char *uri;	/* request-URI as sent */
	int status;	/* responses: 100..699 */
	char *reason;	/* responses: may be "" */
	struct sip_hdr hdr[SIP_MAX_HEADERS];
	size_t nhdr; /* in order; repeated headers kept separately, comma lists NOT split */
	char *body;  /* NUL-terminated after body_len bytes (the body itself may hold NULs) */
	size_t body_len;
	char *mem; /* owns everything */
};

/*
 * Parses one message from data. Over a stream (tcp = true) data may hold a partial message or
 * several: returns the bytes the first one takes (> 0, including CRLFs before it, which 7.5
 * says to ignore), 0 if it is incomplete, or -status with a one-line reason in err:
 *  -400  no or invalid start line, bad header line (bad token, bare CR or LF, NUL, folding
 *        before the first header), Content-Length missing over TCP (18.3), not digits,
 *        duplicated with different values, or larger than the datagram (UDP, 18.3);
 *  -413  the body would take the message past SIP_MAX_MSG;
 *  -505  a SIP-Version other than SIP/2.0;
 *  -513  the header section is longer than SIP_MAX_MSG or has more than SIP_MAX_HEADERS lines.
 * Over UDP (tcp = false) data is exactly one datagram: a missing Content-Length means the rest
 * of the datagram, and bytes beyond Content-Length are ignored (18.3).
 * A run of CRLFs (a keep-alive) returns its length, or 4 for the double CRLF ping over TCP,
 * with m->keepalive set and nothing else in m. On success the caller frees m with
 * sip_msg_free(); on any other return m holds nothing to free.
 */
long sip_parse(const char *data, size_t len, bool tcp, struct sip_msg *m, char *err, size_t errlen);
/* Frees what m owns; m is zeroed. Safe on a zeroed or keep-alive m. */
void sip_msg_free(struct sip_msg *m);

/* The value of the first header with that name (case-insensitive; compact forms accepted). */
const char *sip_hdr(const struct sip_msg *m, const char *name);
/* The value of the next header with that name after the one whose value is prev, or NULL. */
const char *sip_hdr_next(const struct sip_msg *m, const char *name, const char *prev);
/* Canonical spelling of a header name ("v" -> "Via", "call-id" -> "Call-ID"), or name. */
const char *sip_hdr_canon(const char *name);

/*
 * A request's validity beyond framing: the mandatory headers of 8.1.1 (To, From, CSeq,
 * Call-ID, Max-Forwards, Via) present once each (7.3.1) and well-formed, CSeq's method equal
 * to the request method (8.2.3, RFC 4475 3.1.2.17), Max-Forwards 0..255, every Via and
 * Contact entry well-formed, a Date in GMT (20.17). Returns NULL, or what is wrong (a 400
 * reason phrase).
 */
const char *sip_check_request(const struct sip_msg *m);
/* The same for a response (Via, From, To, Call-ID, CSeq); NULL or what is wrong. */
const char *sip_check_response(const struct sip_msg *m);

/*
 * One name-addr or addr-spec with header parameters (From, To, Contact; 20.10, 25.1).
 * display is unquoted with quoted-pairs resolved (NULL if absent); uri is as sent; params are
 * all header parameters as "name=value;name" with the whitespace around ';' and '=' removed.
 */
struct sip_addr {
	char *display;
	char *uri;    /* NULL only for star */
	char *tag;    /* NULL if absent */
	long expires; /* -1 if absent; values above 2^32-1 count as 2^32-1 */
	int q;	      /* q-value in thousandths (0..1000), -1 if absent */
	bool star;    /* Contact: * */
	char *params; /* "" if none */
	char *mem;
};
/*
 * Parses one entry (split Contact lists first). Returns 0, or -1 (a unchanged) for anything
 * malformed: an unterminated quote, a display name that is not tokens (RFC 4475 3.1.2.15),
 * spaces inside <> (3.1.2.14), an unbracketed URI with ',' or '?' (20.10, 3.1.2.13), an empty
 * or malformed parameter, a sip:/sips: URI that sip_parse_uri refuses, a top-level comma.
 */
int sip_parse_addr(const char *value, struct sip_addr *a);
/* Looks up a header parameter of a (see sip_uri_param for the result). */
const char *sip_addr_param(const struct sip_addr *a, const char *name, char *buf, size_t n);
void sip_addr_free(struct sip_addr *a);

/*
 * Splits a header value at top-level commas (not inside quotes or <>): for Contact and Via
 * lists. Returns the count written (at most max); the pieces are trimmed (possibly empty) and
 * point into a copy owned by *mem, which the caller frees (it is set even when 0 is returned).
 */
size_t sip_split_list(const char *value, char **out, size_t max, char **mem);

/*
 * A sip: or sips: URI (19.1.1, 25.1): user (still %-escaped, NULL if none; the password is
 * dropped), host (IPv6 with its brackets), port (0 if absent), params (after the first ';',
 * NULL if none) and headers (after '?', NULL if none).
 */
struct sip_uri {
	bool sips;
	char *user;
	char *host;
	unsigned port;
	char *params;
	char *headers;
	char *mem;
};
/* Returns 0, or -1 (u unchanged) if s is not a well-formed sip:/sips: URI. */
int sip_parse_uri(const char *s, struct sip_uri *u);
/*
 * Looks up a URI parameter by name (case-insensitive): copies its value into buf ("" for a
 * parameter without value) and returns buf, or NULL if absent or if it does not fit in n.
 */
const char *sip_uri_param(const struct sip_uri *u, const char *name, char *buf, size_t n);
void sip_uri_free(struct sip_uri *u);

/*
 * The first entry of a Via value (20.42, 18.2.1, RFC 3581): transport upper-cased ("UDP",
 * "TLS-SCTP"), sent-by host (IPv6 with brackets) and port (0 if absent), branch and received
 * (NULL if absent), rport (-1 absent, 0 present without value).
 */
struct sip_via {
	char transport[16];
	char *host;
	unsigned port;
	char *branch;
	char *received;
	long rport;
	char *mem;
};
/* Returns 0, or -1 (v unchanged) if the first entry is malformed. */
int sip_parse_via(const char *value, struct sip_via *v);
void sip_via_free(struct sip_via *v);

/* CSeq (20.16): the number (< 2^32) and the method, copied into method (n bytes); 0 or -1. */
int sip_parse_cseq(const char *value, uint32_t *seq, char *method, size_t n);

/*
 * Content-Disposition (20.11): the disposition type lower-cased without parameters ("instant",
 * "store&fwd", "s&f", "render", "notification"...) into out (n bytes). '&' is accepted in the
 * type although it is no token character (seed 004 digest A2). Returns 0 or -1.
 */
int sip_disposition(const char *value, char *out, size_t n);

/*
 * Appends a response to req (8.2.6): status line, every Via in order, From, To (with
 * ";tag=totag" added if totag is given and To has no tag), Call-ID, CSeq, the extra header
 * lines (each "Name: value\r\n", or NULL), Content-Length and the body. A status outside
 * 100..699 or a reason with CR or LF is a caller's bug (fatal).
 */
void sip_write_response(struct buf *out, const struct sip_msg *req, int status, const char *reason,
			const char *totag, const char *extra, const char *body, size_t body_len);
/* Appends a request line, headers ("Name: value\r\n" lines), Content-Length and the body. */
void sip_write_request(struct buf *out, const char *method, const char *uri, const char *headers,
		       const char *body, size_t body_len);

#endif
