/*
 * store: everything baton keeps on disk, behind one interface with one backend per
 * file (store_sqlite.c today, PostgreSQL later). Two ways in:
 *  - synchronous calls (store_account_*, store_roster_*), for batonctl and for job
 *    functions running on the storage thread;
 *  - the storage thread (store_thread_*), which I/O workers use: they submit jobs and
 *    get each completion back in their own loop's mailbox. Jobs are grouped into one
 *    transaction per batch (group commit), so thousands of small writes cost a few fsyncs.
 *
 * Invariant: the database is touched only by the storage thread (in batond) or by a
 * synchronous caller that owns its struct store (batonctl); never from an I/O loop.
 * Credentials are opaque blobs here; the store never sees a password.
 */
#ifndef BATON_STORE_H
#define BATON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

enum store_err {
	STORE_OK = 0,
	STORE_ENOENT = -2,   /* no such account / item */
	STORE_EEXIST = -17,  /* account already exists */
	STORE_EIO = -5,	     /* the database failed (disk full, corrupt, locked too long) */
	STORE_EQUOTA = -122, /* the owner's offline queue is full */
};

struct store;

/*
 * Opens (creating if needed) the store of backend cfg->storage_backend in
 * cfg->data_dir, migrating the schema. Returns the store, or NULL with a one-line
 * reason in err. The caller owns the store; close it with store_close().
 */
struct store *store_open(const struct config *cfg, char *err, size_t errlen);
void store_close(struct store *st);

/* Transactions; each returns 0 or STORE_EIO. Nesting is not supported. */
int store_begin(struct store *st);
int store_commit(struct store *st);
int store_rollback(struct store *st);

/* ---- accounts (bare JIDs, already normalised by the caller) ---- */

int store_account_create(struct store *st, const char *jid, const void *creds, size_t n);
/* Appends the credentials blob to out. Returns 0, STORE_ENOENT or STORE_EIO. */
int store_account_creds(struct store *st, const char *jid, struct buf *out);
int store_account_set_creds(struct store *st, const char *jid, const void *creds, size_t n);
/* Deletes the account and everything it owns (roster, offline messages, archive, private
 * data, block list). */
int store_account_delete(struct store *st, const char *jid);
/* Calls fn for each account in JID order. Returns 0 or STORE_EIO. */
int store_account_list(struct store *st, void (*fn)(void *arg, const char *jid), void *arg);
/* Returns the number of accounts, or STORE_EIO. */
long store_account_count(struct store *st);

/* ---- roster (RFC 6121 section 2), with a per-account version (section 2.6) ---- */

enum store_sub { STORE_SUB_NONE = 0, STORE_SUB_TO = 1, STORE_SUB_FROM = 2, STORE_SUB_BOTH = 3 };

struct store_roster_item {
	const char *contact; /* bare JID */
	const char *name;    /* NULL = none */
	const char *groups;  /* group names separated by '\n'; NULL or "" = none */
	int sub;	     /* enum store_sub */
	bool ask;	     /* outbound subscription request pending ("ask='subscribe'") */
	bool pending_in;     /* inbound request awaiting the owner's answer */
	bool hidden;	     /* pending_in only: not part of the roster the client sees */
};

/*
 * Loads owner's roster: *ver gets the roster version (0 for an account that never
 * had one), then fn runs once per item (pointers valid only during the call).
 * Returns 0 or STORE_EIO.
 */
int store_roster_load(struct store *st, const char *owner, uint64_t *ver,
		      void (*fn)(void *arg, const struct store_roster_item *it), void *arg);
/* Inserts or replaces the item and sets owner's roster version to ver. */
int store_roster_put(struct store *st, const char *owner, const struct store_roster_item *it,
		     uint64_t ver);
/* Removes the item (no-op if absent) and sets owner's roster version to ver. */
int store_roster_del(struct store *st, const char *owner, const char *contact, uint64_t ver);

/* ---- offline messages (XEP-0160), in arrival order per owner ---- */

struct store_offline_msg {
	int64_t id;	    /* increasing in arrival order across the whole store */
	const char *owner;  /* bare JID of the recipient */
	const char *sender; /* full JID of the sender (for expiry notices) */
	const char *stanza; /* the serialized <message/>, NUL-terminated */
	size_t len;
	int64_t stamp_ms;   /* wall-clock time it was stored */
	int64_t expires_ms; /* wall-clock time after which it is dropped */
};

/*
 * Appends a message for m->owner (m->id is ignored) unless the owner already has quota
 * messages not expired at m->stamp_ms (quota <= 0: no limit): then STORE_EQUOTA and nothing is
 * stored. *id gets the new message's id. Returns 0, STORE_EQUOTA, STORE_ENOENT (no such owner) or
 * STORE_EIO.
 */
int store_offline_put(struct store *st, const struct store_offline_msg *m, long quota, int64_t *id);
/*
 * Calls fn for owner's messages with id > after that have not expired at now_ms, oldest
 * first, at most limit of them (0 = all); pointers are valid only during the call. Paging
 * by id keeps each call O(page). Returns 0 or STORE_EIO.
 */
int store_offline_load(struct store *st, const char *owner, int64_t after, int64_t now_ms,
		       size_t limit, void (*fn)(void *arg, const struct store_offline_msg *m),
		       void *arg);
/* Deletes owner's messages with the n given ids (absent ones are skipped). 0 or STORE_EIO. */
int store_offline_delete_ids(struct store *st, const char *owner, const int64_t *ids, size_t n);
/* Deletes owner's messages with id <= upto. Returns 0 or STORE_EIO. */
int store_offline_delete(struct store *st, const char *owner, int64_t upto);
/* Returns how many messages owner has waiting (expired ones included), or STORE_EIO. */
long store_offline_count(struct store *st, const char *owner);
/*
 * Deletes up to limit messages (of any owner) that expired at now_ms, oldest expiry
 * first, calling fn for each before it goes (expiry notices). Returns the number
 * deleted, or STORE_EIO.
 */
long store_offline_expire(struct store *st, int64_t now_ms, size_t limit,
			  void (*fn)(void *arg, const struct store_offline_msg *m), void *arg);

/* ---- the message archive (XEP-0313 MAM), one per account ---- */

struct store_archive_msg {
	int64_t id;	    /* chosen by the caller: unique in the store, increasing in time */
	const char *owner;  /* bare JID whose archive this is */
	const char *with;   /* bare JID of the other party */
	const char *stanza; /* the serialized <message/>, NUL-terminated */
	size_t len;
	int64_t stamp_ms; /* wall-clock time the server saw it */
	bool outgoing;	  /* sent by owner (else received) */
};

/* Adds a message. Returns 0, STORE_EEXIST (id taken), STORE_ENOENT (no owner) or STORE_EIO. */
int store_archive_put(struct store *st, const struct store_archive_msg *m);

struct store_archive_query {
	const char *owner;
	const char *with;	     /* NULL = every conversation */
	int64_t start_ms, end_ms;    /* stamp range, inclusive; 0 = unbounded */
	int64_t after_id, before_id; /* exclusive id bounds; 0 = unbounded */
	size_t max;		     /* page size, >= 1 */
	bool last;		     /* the newest page below before_id (RSM <before/>) */
};

/*
 * Calls fn for up to q->max matching messages, always oldest first (with q->last, the
 * newest max of them, still delivered oldest first). *complete is set to true when no
 * further match exists beyond the page in the direction of paging. O(page) with an
 * index on (owner, id). Returns 0 or STORE_EIO.
 */
int store_archive_query(struct store *st, const struct store_archive_query *q,
			void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
			bool *complete);
/* Deletes owner's archive (all of it when with is NULL, else one conversation). */
int store_archive_clear(struct store *st, const char *owner, const char *with);

/*
 * Room archives (XEP-0313 for XEP-0045 rooms): the same records and queries, kept apart
 * because a room is not an account (owner is the room's bare JID, with the sender's
 * room/nick; temporary rooms have no row in rooms either). Clearing a room's archive is
 * store_room_archive_clear(); store_room_delete() does not touch it.
 */
int store_room_archive_put(struct store *st, const struct store_archive_msg *m);
int store_room_archive_query(struct store *st, const struct store_archive_query *q,
			     void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
			     bool *complete);
int store_room_archive_clear(struct store *st, const char *room);

/* ---- private XML storage (XEP-0049): one element per (owner, namespace key) ---- */

/* Appends the stored XML for key ("name namespace") to out; STORE_ENOENT if none. */
int store_private_get(struct store *st, const char *owner, const char *key, struct buf *out);
/* Stores (replacing) the XML for key. */
int store_private_set(struct store *st, const char *owner, const char *key, const char *xml,
		      size_t len);

/* ---- blocking (XEP-0191): a set of JIDs per owner ---- */

/* Calls fn for each JID owner blocks, in order. Returns 0 or STORE_EIO. */
int store_block_list(struct store *st, const char *owner, void (*fn)(void *arg, const char *jid),
		     void *arg);
/* Adds (no-op if present) or removes (no-op if absent) one JID; jid NULL with remove = all. */
int store_block_set(struct store *st, const char *owner, const char *jid, bool remove);

/* ---- shared identity (urn:baton:identity:0): settings per account, the audit trail ---- */

struct store_identity {
	bool exclusive; /* one active device at a time */
	bool barring;	/* incoming session barring */
	int64_t gen;	/* generation of the active device's handover */
};
/* owner's settings; STORE_ENOENT (out zeroed) if never set. */
int store_identity_get(struct store *st, const char *owner, struct store_identity *out);
int store_identity_set(struct store *st, const char *owner, const struct store_identity *id);

struct store_identity_event {
	int64_t at; /* wall ms */
	const char *prev, *next, *reason;
	int64_t gen;
};
int store_identity_log_add(struct store *st, const char *owner,
			   const struct store_identity_event *e);
/* Calls fn for owner's events, oldest first, at most the newest max of them. */
int store_identity_log(struct store *st, const char *owner, size_t max,
		       void (*fn)(void *arg, const struct store_identity_event *e), void *arg);

/* ---- device continuity: transfers that wait (for a device, or parked), as XML ---- */

/* Stores (replacing) transfer id of owner; expires is wall ms. */
int store_transfer_put(struct store *st, const char *owner, const char *id, const char *xml,
		       int64_t expires);
int store_transfer_del(struct store *st, const char *owner, const char *id);
/* Calls fn for owner's transfers that have not expired at now_ms, soonest to expire first. */
int store_transfer_list(struct store *st, const char *owner, int64_t now_ms,
			void (*fn)(void *arg, const char *id, const char *xml, int64_t expires),
			void *arg);

/* ---- SMS (seed 001): the mirrored rings of each link, messages waiting, small facts ---- */

/* A message in a ring slot or in the queue. Strings may be NULL. */
struct store_sms_msg {
	int64_t seq; /* ring: the sequence number; queue: the row id */
	int state;   /* ring: enum sms_state of sms/link.h */
	const char *from, *to, *text, *ref, *extra;
	int64_t stamp; /* wall ms */
};
/* Stores (replacing) what slot of link's ring in direction dir holds. */
int store_sms_slot_put(struct store *st, const char *link, int dir, unsigned slot,
		       const struct store_sms_msg *m);
/*
 * Moves the slot's message seq forward to state (never back; Processed drops its text) and, if
 * extra is not NULL, replaces its extra. No-op if the slot holds another seq.
 */
int store_sms_slot_state(struct store *st, const char *link, int dir, unsigned slot, int64_t seq,
			 int state, const char *extra);
/* Calls fn for every slot of link's rings, by direction then seq. */
int store_sms_slots(struct store *st, const char *link,
		    void (*fn)(void *arg, int dir, const struct store_sms_msg *m), void *arg);
/* Calls fn for every link that has a ring or a queue, in name order. */
int store_sms_links(struct store *st, void (*fn)(void *arg, const char *link), void *arg);
/* Appends a message to link's queue; *id gets its id (increasing). */
int store_sms_queue_put(struct store *st, const char *link, const struct store_sms_msg *m,
			int64_t *id);
/* Calls fn for up to limit of link's queued messages with id > after, oldest first (m->seq = id).
 */
int store_sms_queue_list(struct store *st, const char *link, int64_t after, size_t limit,
			 void (*fn)(void *arg, const struct store_sms_msg *m), void *arg);
int store_sms_queue_del(struct store *st, int64_t id);
/* Messages queued for link, or STORE_EIO. */
long store_sms_queue_count(struct store *st, const char *link);
/* A small fact by key; expires is wall ms (0 = never). get appends the value; STORE_ENOENT if
 * absent or expired. del also sweeps expired facts. */
int store_sms_kv_set(struct store *st, const char *key, const char *value, int64_t expires);
int store_sms_kv_get(struct store *st, const char *key, struct buf *out);
int store_sms_kv_del(struct store *st, const char *key);

/* Calls fn for every account that has contact in its roster (requests not yet shown excluded). */
int store_roster_owners(struct store *st, const char *contact,
			void (*fn)(void *arg, const char *owner), void *arg);

/* ---- multi-user chat rooms (XEP-0045) that persist ---- */

/* Inserts or replaces a room's configuration and subject (both opaque text; "" allowed). */
int store_room_put(struct store *st, const char *jid, const char *config, const char *subject);
/* Appends the room's configuration and subject to the buffers; STORE_ENOENT if none. */
int store_room_get(struct store *st, const char *jid, struct buf *config, struct buf *subject);
/* Deletes a room and its affiliations (no-op if absent). */
int store_room_delete(struct store *st, const char *jid);
/* Calls fn for every stored room in JID order (pointers valid during the call). */
int store_room_list(struct store *st, void (*fn)(void *arg, const char *jid, const char *config),
		    void *arg);
/* Calls fn for each (jid, affiliation) of room, in JID order. */
int store_room_affiliations(struct store *st, const char *room,
			    void (*fn)(void *arg, const char *jid, int affiliation), void *arg);
/* Sets jid's affiliation with room; 0 removes it. STORE_ENOENT if the room is not stored. */
int store_room_set_affiliation(struct store *st, const char *room, const char *jid,
			       int affiliation);

/* ---- invitations (c2s.registration = token; XEP-0401, XEP-0445) ---- */

/* Adds invitation token, good for uses registrations until expires (wall ms). STORE_EEXIST if
 * the token exists. */
int store_invite_put(struct store *st, const char *token, long uses, int64_t expires);
/* Reads token's uses left and expiry; STORE_ENOENT if there is no such token (or revoked). */
int store_invite_get(struct store *st, const char *token, long *uses, int64_t *expires);
/* Takes one use of token; STORE_ENOENT if none is left. */
int store_invite_use(struct store *st, const char *token);
/* Deletes (revokes) token; STORE_ENOENT if absent. */
int store_invite_del(struct store *st, const char *token);
/* Calls fn for every invitation, oldest first, used up and expired ones included. */
int store_invite_list(struct store *st,
		      void (*fn)(void *arg, const char *token, long uses, int64_t expires,
				 int64_t created),
		      void *arg);

/* ---- push registrations (XEP-0357), per account ---- */

struct store_push {
	const char *jid;     /* the app server, a normalised JID */
	const char *node;    /* its node for this device */
	const char *options; /* the publish-options form as XML, "" if none */
	bool body;	     /* the client allowed message bodies in notifications */
};
/* Adds or replaces owner's registration (p->jid, p->node). STORE_ENOENT if owner does not exist. */
int store_push_set(struct store *st, const char *owner, const struct store_push *p);
/* Removes owner's registration (jid, node), or every one with jid when node is NULL (no-op if
 * absent). */
int store_push_del(struct store *st, const char *owner, const char *jid, const char *node);
/* Calls fn for each of owner's registrations (pointers valid during the call). */
int store_push_list(struct store *st, const char *owner,
		    void (*fn)(void *arg, const struct store_push *p), void *arg);
/* ---- personal eventing (XEP-0163): pubsub nodes of an account and their items ---- */

/* Appends node's configuration (opaque text) to config; STORE_ENOENT if no such node. */
int store_pep_node_get(struct store *st, const char *owner, const char *node, struct buf *config);
/* Creates or reconfigures a node (its items stay). STORE_ENOENT if owner is no account. */
int store_pep_node_put(struct store *st, const char *owner, const char *node, const char *config);
/* Deletes a node with its items; STORE_ENOENT if there was none. */
int store_pep_node_del(struct store *st, const char *owner, const char *node);
/* How many nodes owner has, or STORE_EIO. */
long store_pep_node_count(struct store *st, const char *owner);
/* Calls fn for each of owner's nodes in name order (pointers valid during the call). */
int store_pep_nodes(struct store *st, const char *owner,
		    void (*fn)(void *arg, const char *node, const char *config), void *arg);
/*
 * Stores an item of an existing node (replacing one with the same id, which then counts as
 * the newest), then keeps only the newest keep items (keep >= 1).
 */
int store_pep_item_put(struct store *st, const char *owner, const char *node, const char *id,
		       const char *xml, long keep);
/* Deletes one item; STORE_ENOENT if absent. */
int store_pep_item_del(struct store *st, const char *owner, const char *node, const char *id);
/* Keeps only the newest keep items of node (keep >= 1). */
int store_pep_trim(struct store *st, const char *owner, const char *node, long keep);
/*
 * Calls fn for node's items, newest first: the one with id (if id is not NULL), else up to max
 * (0 = all). Pointers are valid during the call. Returns 0 or STORE_EIO.
 */
int store_pep_items(struct store *st, const char *owner, const char *node, const char *id,
		    size_t max, void (*fn)(void *arg, const char *id, const char *xml), void *arg);

/* ---- the storage thread ---- */

/*
 * A unit of work for the storage thread; embed it in a request struct. run() executes
 * on the storage thread inside the batch transaction and returns 0 or a negative
 * store_err (stored in result). Then, if loop is set, the job is posted to that loop
 * and done() runs there; with loop NULL, done() runs on the storage thread (use it to
 * free fire-and-forget writes). If the batch's COMMIT fails, every job of the batch
 * gets result STORE_EIO, even those whose run() succeeded.
 */
struct store_job {
	struct mail mail; /* internal: the completion */
	struct store_job *next;
	struct loop *loop;
	int (*run)(struct store *st, struct store_job *job);
	void (*done)(struct store_job *job);
	int result;
	/*
	 * run is atomic by itself (one statement, or its own savepoint): it needs no savepoint
	 * of the batch around it, which saves two statements per job on the hottest paths.
	 */
	bool atomic;
};

struct store_thread;

/* Starts the storage thread owning st (st must not be used elsewhere afterwards). */
struct store_thread *store_thread_start(struct store *st, uint64_t batch_ms);
/* Queues job; safe from any thread. Jobs run in submission order. */
void store_submit(struct store_thread *t, struct store_job *job);
/* Runs every queued job, stops the thread, closes the store. */
void store_thread_stop(struct store_thread *t);

#endif
