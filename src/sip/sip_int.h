/*
 * sip_int: what the files of batond's SIP module share: transport and transactions
 * (transport.c), digest authentication (auth.c), the registrar (registrar.c) and messages
 * (message.c).
 *
 * Invariant: everything here is owned by the SIP worker (sip.w).
 */
#ifndef BATON_SIP_INT_H
#define BATON_SIP_INT_H

#include "../net/net.h"
#include "../xmpp/xmpp_int.h"
#include "digest.h"
#include "msg.h"
#include "sip.h"

#define NS_SIP "urn:baton:sip:0" /* what a stored MESSAGE keeps of its SIP form */

/* A TCP connection from a UA; requests to that UA go back over it (RFC 3261 18.2.2). */
struct sip_tcp {
	struct conn *c;
	struct sip_tcp *next;
	unsigned refs; /* bindings and transactions that send over it */
	bool dead, busy;
};

/* Where a message came from or goes to: a UDP address, or a TCP connection. */
struct sip_peer {
	struct net_addr addr;
	struct sip_tcp *tcp; /* NULL: UDP */
};

/* A request in the works (waiting for credentials, storage, a recipient's answer). */
struct sip_req {
	struct sip_msg m;
	struct sip_peer peer;
	char *user; /* the authenticated localpart */
	char *bare; /* user@domain */
	void (*next)(struct sip_req *r);
	struct store_job job; /* for the steps that ask the store */
	struct buf creds;
	int result;
	void *arg;
};

/* One registered contact of an address of record (RFC 3261 10.3). */
struct sip_binding {
	struct sip_binding *next;
	char *contact; /* the Contact URI */
	struct sip_peer peer;
	int64_t expires; /* wall ms */
	char *call_id;
	uint32_t cseq;
};

struct sip_aor {
	char *bare;
	struct sip_binding *bindings; /* newest first */
	bool delivering;	      /* stored messages are going out to it */
};

/* A request we sent (client transaction, 17.1.2), waiting for its final response. */
struct sip_ctx {
	char branch[40];
	struct buf bytes;
	struct sip_peer peer;
	uint64_t next_send, interval, deadline; /* monotonic ms */
	void (*done)(void *arg, int status, const struct sip_msg *resp);
	void *arg;
};

struct sip_module {
	const struct config *cfg;
	struct worker *w;
	int udp_fd;
	struct loop_io udp_io;
	uint8_t key[32]; /* nonces */
	struct digest_replay *replay;
	struct hmap aors; /* bare JID -> struct sip_aor */
	struct hmap stx;  /* server transactions: branch + method -> struct sip_stx */
	struct hmap ctx;  /* client transactions: branch -> struct sip_ctx */
	struct sip_tcp *tcps;
	struct timer tick;
	char host[300]; /* our Via sent-by */
	unsigned long seq;
};
extern struct sip_module sip;

/* transport.c */
void sip_send(const struct sip_peer *to, const char *data, size_t len);
/* Answers request r (and remembers the answer for retransmissions); frees r. */
void sip_reply(struct sip_req *r, int status, const char *reason, const char *extra,
	       const char *body, size_t body_len);
/* Sends a request (bytes with our Via branch in it) and calls done once with the final status
 * (408 on timeout). */
void sip_request(const struct sip_peer *to, const char *branch, struct buf *bytes,
		 void (*done)(void *arg, int status, const struct sip_msg *resp), void *arg);
void sip_new_branch(char out[40]);
void sip_peer_copy(struct sip_peer *dst, const struct sip_peer *src);
void sip_peer_release(struct sip_peer *p);
/* The SIP worker, seen from any worker w. */
struct worker *sip_home(struct worker *w);
/* Runs fn on the SIP worker from any worker. */
void sip_call(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg);

/* auth.c: digest (401 for REGISTER, 407 otherwise); on success r->user is set and next(r) runs */
void sip_auth(struct sip_req *r, void (*next)(struct sip_req *r));
/* The bare JID of the account a URI names: sip:user@<domain>, sip:+number@<domain> or
 * tel:+number with a [sip.alias] (seed 003 R2); NULL if none. */
char *sip_uri_account(const char *uri);

/* registrar.c */
void sip_registrar(struct sip_req *r);
struct sip_aor *sip_aor_get(const char *bare);
/* device_drop (xmpp_int.h): another device of the identity superseded the registration. */
void sip_device_drop(struct worker *w, const char *bare, const char *full);
void sip_bindings_expire(void);
void sip_aors_free(void);

/* imdn.c: message/cpim (RFC 3862) with IMDN (RFC 5438) */
struct sip_cpim {
	char *text;		 /* the encapsulated text/plain content */
	char *msgid;		 /* imdn.Message-ID, or NULL */
	bool positive, negative; /* the delivery reports asked for */
};
/* Reads a message/cpim body; -1 if it does not carry text/plain. */
int sip_cpim_parse(const char *body, size_t len, struct sip_cpim *c);
void sip_cpim_free(struct sip_cpim *c);
/* Appends a message/cpim body with a message/imdn+xml delivery report about message id about. */
void sip_imdn_report(struct buf *out, const char *from_uri, const char *to_uri, const char *about,
		     const char *recipient_uri, bool delivered);

/* message.c */
void sip_message(struct sip_req *r);
/* Sends what is stored for aor's account to its newest binding, in order, once. */
void sip_deliver_pending(struct sip_aor *aor);
/* durable_observer: a message stored for owner goes to its SIP device too (PROTOCOL.md 5). */
void sip_observe(struct worker *w, const char *owner, int64_t id, const char *stanza, size_t len);

#endif
