/*
 * sms_int: what the files of batond's SMS module share: the links to buffer servers with
 * their mirrored rings (links.c), and the XMPP side (gateway.c).
 *
 * Invariant: everything here is owned by worker 0 (sms_worker()).
 */
#ifndef BATON_SMS_INT_H
#define BATON_SMS_INT_H

#include "../net/net.h"
#include "../xmpp/xmpp_int.h"
#include "link.h"
#include "sms.h"

enum sms_conn_state { SC_GREETED, SC_TLS, SC_UP };

/* A buffer server's connection: anonymous until its HELLO names a link. */
struct sms_conn {
	struct conn *c;
	struct sms_link *l; /* set once authenticated */
	int state;
	char nonce[33];
	uint64_t last_rx;
	bool pinged;
	bool busy, dead;       /* inside conn_data; dropped meanwhile (freed at its end) */
	struct timer timer;    /* handshake timeout, keepalive */
	struct sms_conn *next; /* in sms.conns */
};

/* One buffer server, from the configuration: its rings, its queue, its connection. */
struct sms_link {
	char *name, *secret;
	char **prefixes; /* numbers this link serves ("+46"); none = every number */
	size_t nprefixes;
	struct sms_ring mt, mo;
	struct link_peer peer;
	struct sms_conn *sc; /* NULL while the buffer server is not connected */
	bool taking;	     /* a queue -> ring job is running */
	bool more;	     /* MT were queued while it ran */
	/* for /metrics, read from any thread (sms_metrics) */
	_Atomic bool up;
	_Atomic long queued; /* MT waiting for a slot */
	_Atomic unsigned mt_busy, mo_busy;
	_Atomic uint64_t mt_done, mo_done, mt_failed, receipts;
};
/* Refreshes the gauges of l after its rings changed. */
void sms_gauges(struct sms_link *l);

struct sms_module {
	struct worker *w; /* worker 0 */
	struct sms_link *links;
	size_t nlinks;
	bool loaded, loading;
	struct sms_wait *waits; /* work that came before the rings were loaded */
	struct sms_conn *conns; /* every connection from a buffer server */
};
extern struct sms_module sms;

/* links.c */
struct worker *sms_worker(struct worker *w);
/* Runs fn(arg) on worker 0 once the rings are loaded (at once if they are). */
void sms_with(struct worker *w, void (*fn)(void *arg), void *arg);
/* The link that serves number (longest prefix), or the default one. */
struct sms_link *sms_link_for(const char *number);
struct sms_link *sms_link_named(const char *name);
/* MT messages were queued for link: take what fits into its ring and send it. */
void sms_link_pump(struct sms_link *l);
void sms_accept(struct worker *w, int fd);
void sms_links_init(const struct config *cfg);
void sms_links_free(void);
/* A fire-and-forget store write of a slot's new state (state, extra). */
void sms_slot_state(struct sms_link *l, int dir, const struct sms_msg *m, int state,
		    const char *extra);

/* gateway.c: the XMPP side */
/* An MO arrived and is stored (Confirmed): act on it, then mark it Processed. */
void sms_mo(struct sms_link *l, struct sms_msg *m);
/* A PROC for an MT came with its outcome. */
void sms_mt_outcome(struct sms_link *l, struct sms_msg *m, const struct link_frame *fr);
/* Queues an MT (text to number, on behalf of sender, ref for reports); storage thread only. */
int sms_queue_mt(struct store *st, const char *link, const char *sender, const char *number,
		 const char *text, const char *ref, bool dlr);

#endif
