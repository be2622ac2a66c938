/*
 * s2s_int: what the three files of federation share (s2s.c: setup, what both directions
 * use, the receive ledger; s2s_out.c: streams we open; s2s_in.c: streams peers open).
 * Everything here runs on one worker per stream; only struct s2s_shared is locked.
 */
#ifndef BATON_S2S_INT_H
#define BATON_S2S_INT_H

#include "xmpp_int.h"

#define NS_DIALBACK_FEATURE "urn:xmpp:features:dialback"
#define NS_BIDI_FEATURE	    "urn:xmpp:features:bidi"
#define NS_BIDI		    "urn:xmpp:bidi"
#define S2S_PORT	    5269
#define S2S_READ_MAX	    65536
#define S2S_RETRY_MS	    1000 /* between attempts to reach a peer whose stream broke */
#define S2S_RESENDS	    3	 /* streams in a row that may break before any ack */
#define S2S_VERIFY_MAX	    8	 /* dialback checks one incoming stream may have pending */

/* Counts of authenticated incoming streams per peer domain, shared by the workers. */
struct s2s_shared {
	pthread_mutex_t lock;
	struct hmap counts; /* domain -> (uintptr_t) streams */
};

/* A dialback verification (XEP-0220 2.1.2): asked by an incoming stream, sent on an outgoing. */
struct s2s_verify {
	struct s2s_verify *next;
	char *stream_id, *key;
	char *local, *remote; /* receiving (ours) and originating (theirs) domain */
	struct worker *in_w;
	unsigned long in_id;
	bool sent;
	int result; /* 1 valid, 0 invalid, -1 error */
};

enum out_state {
	OUT_RESOLVING,
	OUT_CONNECTING,
	OUT_FEATURES, /* our header sent, waiting for theirs and their features */
	OUT_STARTTLS,
	OUT_SASL,
	OUT_DIALBACK,
	OUT_READY,
};

/* Stanzas in order: waiting for a stream, or written and not yet acknowledged (XEP-0198). */
struct stq {
	struct xml_node *head, *tail;
	size_t len;
};

/*
 * The stanzas a peer sends us on one stream (an incoming stream, or our own with bidi),
 * counted for its XEP-0198 acks. A message for a local account is committed before it is
 * routed (durable.c), and the acks stop before it until then.
 */
struct s2s_rx {
	bool on;	   /* the peer enabled XEP-0198 (or asks for acks on our bidi stream) */
	uint32_t n, base;  /* stanzas received; n when the peer enabled */
	uint32_t *storing; /* numbers of those still being stored, in arrival order */
	size_t nstoring, cap;
	bool owed; /* an ack went out short of n: the rest goes when they are stored */
};

struct s2s_target {
	char host[256];
	unsigned port, priority, weight;
	bool direct_tls; /* XEP-0368 */
};

struct s2s_out {
	struct worker *w;
	char *key; /* "local remote" */
	char *local, *remote;
	enum out_state state;
	struct pstream p;
	bool tls, authed, dialback_offered;
	bool can_verify; /* TLS is up and the peer sent its features: db:verify may go */
	struct s2s_target *targets;
	size_t ntargets, ti;
	char **addrs;
	size_t naddrs, ai;
	int srv_pending; /* SRV lookups outstanding */
	int lookups;	 /* DNS callbacks (and out_data) that still point here */
	bool dead;	 /* gone from the map: freed once lookups is 0 */
	char *peer_id;	 /* the id of the peer's stream header, for the dialback key */
	struct stq q;	 /* waiting for the stream to be ready */
	/* XEP-0198 on this stream: written stanzas are kept until the peer acknowledges them */
	bool sm_offered, sm, sm_r_pending;
	uint32_t sm_acked; /* the peer's last h */
	struct stq unacked;
	int resends; /* streams in a row that broke before acknowledging anything */
	/* XEP-0288: we asked the peer to send its stanzas (from remote to local) here too */
	bool bidi;
	struct s2s_rx rx;
	unsigned long serial; /* tells this stream from a later one for the same pair */
	struct s2s_verify *verifies;
	struct timer timer; /* connect deadline, then idle checks */
	struct timer retry; /* a stream that broke: its peer may be restarting */
	uint64_t last_io;
	char why[320]; /* the last failure, for logs and bounce texts */
};

struct s2s_in {
	struct worker *w;
	unsigned long id;
	struct pstream p;
	char stream_id[17];
	char *local; /* the domain the stream was opened to */
	bool tls, sasl_done, closed;
	bool hold;     /* in_data() is running: in_close() leaves the freeing to it */
	int verifying; /* dialback checks asked for and not answered yet */
	struct s2s_rx rx;
	struct hmap authed;  /* remote domains authenticated on this stream */
	struct hmap counted; /* those of them counted in s2s_shared */
	struct timer idle;
	uint64_t last_io;
};

/* A message being stored before it is routed, and the stream it came on. */
struct rx_store {
	unsigned long stream; /* an incoming stream's id, or 0 */
	char *out_key;	      /* or an outgoing stream's key and serial */
	unsigned long out_serial;
	uint32_t seq;
};

static inline const struct config *
s2s_cfg(struct worker *w)
{
	return w->srv->cfg;
}

/* ---- s2s.c ---- */

/* May one more incoming stream of domain be authenticated (s2s.max_per_domain)? */
bool s2s_admit(struct server *srv, const char *domain);
void s2s_release(struct server *srv, const char *domain);
/* XEP-0185 dialback key in hex (64 characters and a NUL). */
void s2s_dialback_key(const struct server *srv, const char *receiving, const char *originating,
		      const char *id, char out[65]);
bool s2s_is_stanza(const struct xml_node *el, const char *ns);
/* The normalized domain of JID s, or NULL; caller frees. */
char *s2s_domain_of(const char *s);
void s2s_verify_free(struct s2s_verify *v);
/* Sends the outcome of v (1 valid, 0 invalid, -1 error) to the incoming stream that asked. */
void s2s_verify_return(struct s2s_verify *v, int result);
/* Answers the peer's <r/> on stream p with what rx handled. */
void s2s_rx_ack(struct s2s_rx *rx, struct pstream *p);
void s2s_rx_free(struct s2s_rx *rx);
/* Routes the peer's stanza st (taken, checked), counted by rx; rs says which stream it is. */
void s2s_rx_deliver(struct worker *w, struct s2s_rx *rx, struct xml_node *st, struct rx_store rs);

/* ---- s2s_out.c ---- */

/* On the home worker of v->remote: send v on the (local, remote) stream (mail target). */
void s2s_verify_arrive(struct worker *w, void *arg);
/* Closes every outgoing stream of w (shutdown). */
void s2s_out_stop_all(struct worker *w);

/* ---- s2s_in.c ---- */

/* On the worker of the asking stream: the result of a dialback check (mail target). */
void s2s_verify_answer(struct worker *w, void *arg);
void s2s_in_stop_all(struct worker *w);

#endif
