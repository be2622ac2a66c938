/*
 * continuity_int: what the files of the continuity module share: the state of sessions and
 * accounts (continuity.c), transfers and their storage, history and switch (transfer.c),
 * and the iqs of urn:baton:continuity:0 (cont_iq.c).
 */
#ifndef BATON_CONTINUITY_INT_H
#define BATON_CONTINUITY_INT_H

#include <pthread.h>

#include "continuity.h"

#define NS_CONT	    "urn:baton:continuity:0"
#define NS_FORWARD  "urn:xmpp:forward:0"
#define NS_DELAY    "urn:xmpp:delay"
#define NS_CARBONS  "urn:xmpp:carbons:2"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_OOB	    "jabber:x:oob"
#define NS_XHTML_IM "http://jabber.org/protocol/xhtml-im"

enum mode { MODE_MOVE, MODE_COPY, MODE_LOGOUT };
enum xstate {
	X_WAITING,  /* for its target device to connect */
	X_BUILDING, /* history being read for the offer */
	X_OFFERED,  /* the target has it and has not answered */
	X_PARKED,   /* on the server for any later device (claims 60/66) */
};

/*
 * Bounds on what is remembered per peer: a session keeps its CONT_CONVS_MAX most recent
 * conversations, an account its CONT_PARTICIPANTS_MAX most recent participants (R5); past
 * the bound the older half is forgotten (hmap_prune), so memory stays bounded when a
 * client writes to ever new addresses.
 */
#define CONT_CONVS_MAX	      256
#define CONT_PARTICIPANTS_MAX 4096
/* What one session has open. */
struct conv {
	int64_t last; /* wall ms of the last message with the peer */
	long priority;
};
struct seat {
	char *nick, *role;
	long priority;
};
struct csess {
	struct hmap convs; /* peer bare JID -> struct conv */
	struct hmap seats; /* room bare JID -> struct seat */
	struct hmap prefs; /* peer or room -> <preferences/> of that conversation (R23) */
	char *device, *media;
	long max_history; /* 0: not stated */
	int64_t active;	  /* wall ms of the last stanza it sent */
	char *via_key;	  /* logged in with the key of this transfer (R33) */
	char nonce[33];	  /* the challenge it was given for a key (R32), "" if none */
};

/* One conversation in a transfer. */
struct item {
	bool room;
	char *jid; /* peer or room */
	char *nick;
	long priority;
	struct xml_node *prefs;	  /* its <preferences/> (R23), or NULL */
	struct xml_node *history; /* <session/> with its <forwarded/>s, once built */
};

struct xfer {
	struct xfer *next;
	struct account *a;
	char id[17];
	char *source;	  /* full JID that gives the sessions */
	char *target;	  /* full JID, bare JID (next device), or NULL (parked) */
	char *offered_to; /* full JID holding the offer */
	enum mode mode;
	bool notify;
	long history;
	struct item *items;
	size_t n;
	struct xml_node *blob;
	int64_t snapshot; /* archive ids below it are history */
	struct hmap live; /* archive ids the target got live while the offer stood (no catch-up) */
	enum xstate state;
	char key[33];	 /* R32/R33: the one-time key that redeems it, "" if none */
	int64_t expires; /* wall ms: continuity.pending_ttl after it began */
	bool stored;	 /* a copy is in storage (it survives a restart) */
	bool dead;	 /* ended while a storage job still points here */
	bool foreign;	 /* the target is a device of another account (R34) */
	unsigned jobs;
	struct timer ttl;
};

/*
 * An accepted transfer waits for its rooms to confirm the seat moves before the giving
 * device is told (and, with logout, closed): once A knows, everything goes to B, rooms
 * included, whatever the order in which the workers run.
 */
struct done_wait {
	struct done_wait *next;
	char id[17];
	char *source, *target;
	bool logout;
	bool armed; /* every seat request is out: the last answer finishes it */
	int seats;  /* answers still to come */
};

/* Where a moved conversation is held, and the device it moved away from. */
struct bound {
	char *to, *from; /* resources */
};

struct cacct {
	struct xfer *xfers;
	struct hmap bind;  /* peer bare JID -> struct bound */
	struct hmap pulls; /* id of a transfer-request -> full JID that pulled */
	/* preferences (PROTOCOL.md 1: kept in the account's private storage, XEP-0049) */
	bool auto_accept_pull;
	bool auto_transfer_on_connect; /* R14: a device that connects takes over at once */
	bool transfer_on_movement;     /* R16: so does one that reports it moved */
	char *handover_to; /* R34: accounts this one may hand conversations to, space separated */
	/* R5: a new correspondent's first message waits for the account's accept */
	bool ask_participation;
	struct hmap participants; /* bare JID -> (void *)1: may write (accepted, or written to) */
	struct hmap asked;    /* bare JID -> "id full-JID" (malloc'd) of a request not answered */
	struct hmap redirect; /* peer bare JID -> struct bound: handed to another account */
	struct done_wait *waits;  /* accepted transfers whose rooms have not confirmed yet */
	struct xml_node *restore; /* stored transfers read with the account, not yet rebuilt */
	bool held;		  /* we hold a reference on the account (something pending) */
};

/*
 * Transfer keys (FIG. 22, R32/R33): a key a transfer was issued with is a one-time login
 * credential of its account (SASL PLAIN), checked on whatever worker authenticates, so the
 * keys are kept here, under a mutex: key -> struct keyed.
 */
struct keyed {
	char *bare;
	char id[17];
	uint64_t until;
};

extern pthread_mutex_t keys_lock;
extern struct hmap keys; /* key -> struct keyed */

void xfer_key_drop(const char *key);
bool cont_auth_token(struct session *s, const char *bare, const char *password);
struct csess *cs_of(struct session *s);
struct cacct *ca_of(struct account *a);
char *cont_bare_of(const char *jid);
struct session *cont_session_of(struct account *a, const char *full);
void cont_hold_account(struct account *a, bool hold);
void cont_bound_free(void *p);
void cont_bind_conv(struct cacct *ca, const char *peer, const char *to, const char *from);
void cont_seat_free(void *p);
/* The conversation with peer, made or found, marked as just used. */
struct conv *cont_note_conv(struct session *s, const char *peer);
void cont_note_participant(struct cacct *ca, const char *peer);
struct bound *cont_followed(struct hmap *m, const struct jid *to, const struct jid *from);
void xfer_free(struct xfer *x);
void xfer_persist(struct xfer *x);
void xfer_restore(struct account *a);
void xfer_end(struct xfer *x);
struct xfer *xfer_find(struct account *a, const char *id);
void cont_tell(struct account *a, const char *to, struct xml_node *payload);
void xfer_fail(struct xfer *x, const char *reason);
struct xfer *xfer_new(struct account *a, const char *source);
void cont_free_prefs(void *p);
int xfer_collect(struct xfer *x, struct session *s, const struct xml_node *req, char **bad);
struct xml_node *cont_adapt(struct session *s, const struct xml_node *st);
void xfer_offer(struct xfer *x, struct session *to);
void cont_seat_request(struct account *a, const char *room, const char *from, const char *to,
		       bool copy, struct xml_node *moved, const char *id);
void cont_done_wait_free(struct done_wait *w);
void xfer_accept(struct xfer *x, struct session *to);
void cont_account_iq(struct account *a, struct xml_node *st, const struct jid *from);
const char *cont_redirect(struct account *a, const struct xml_node *st, const struct jid *to,
			  const struct jid *from);
void xfer_auto_offer(struct session *src, struct session *s);
void xfer_launch(struct xfer *x, struct session *s, struct xml_node *st);
struct session *cont_other_device(struct session *s);
bool cont_truthy(const char *v);
/* R34: keeps the account's redirects (conversations handed to other accounts) in storage. */
void cont_redirects_save(struct account *a);
/* R5: the account answered participation request id (accept or decline). */
void cont_participation(struct session *s, struct xml_node *st, const struct xml_node *q);
struct xml_node *cont_prefs_element(const struct cacct *ca);
void *cont_load(struct store *st, const char *bare);
void cont_iq(struct session *s, struct xml_node *st);

#endif
