/*
 * store_backend: the module-private contract between store.c (dispatch and the storage
 * thread) and one storage backend per file (store_sqlite.c today). A backend fills one
 * struct store_backend and embeds struct store as the first member of its own state.
 *
 * Invariant: every function here returns 0 or a negative enum store_err and logs its own
 * I/O errors; only the backend file knows its database library.
 */
#ifndef BATON_STORE_BACKEND_H
#define BATON_STORE_BACKEND_H

#include "store.h"

/* The part of every open store that store.c sees; backends embed it first. */
struct store {
	const struct store_backend *be;
};

struct store_backend {
	const char *name; /* the value of storage.backend that selects it */

	/* Returns the store, or NULL with a one-line reason (naming the path) in err. */
	struct store *(*open)(const struct config *cfg, char *err, size_t errlen);
	void (*close)(struct store *st);

	int (*begin)(struct store *st);
	int (*commit)(struct store *st);
	int (*rollback)(struct store *st);
	/*
	 * The storage thread brackets each job of a batch: job_begin() marks a savepoint
	 * inside the open transaction, job_end() releases it, first undoing the job's writes
	 * if undo is set. in_transaction() says whether the batch transaction is still open
	 * (a database may abandon it on its own after disk-full or I/O errors).
	 */
	int (*job_begin)(struct store *st);
	int (*job_end)(struct store *st, bool undo);
	bool (*in_transaction)(struct store *st);

	int (*account_create)(struct store *st, const char *jid, const void *creds, size_t n);
	int (*account_creds)(struct store *st, const char *jid, struct buf *out);
	int (*account_set_creds)(struct store *st, const char *jid, const void *creds, size_t n);
	int (*account_delete)(struct store *st, const char *jid);
	int (*account_list)(struct store *st, void (*fn)(void *arg, const char *jid), void *arg);
	long (*account_count)(struct store *st);

	int (*roster_load)(struct store *st, const char *owner, uint64_t *ver,
			   void (*fn)(void *arg, const struct store_roster_item *it), void *arg);
	int (*roster_put)(struct store *st, const char *owner, const struct store_roster_item *it,
			  uint64_t ver);
	int (*roster_del)(struct store *st, const char *owner, const char *contact, uint64_t ver);

	/* Offline messages: the contract of store_offline_* in store.h; limit 0 = no limit. */
	int (*offline_put)(struct store *st, const struct store_offline_msg *m, long quota,
			   int64_t *id);
	int (*offline_load)(struct store *st, const char *owner, int64_t after, int64_t now_ms,
			    size_t limit, void (*fn)(void *arg, const struct store_offline_msg *m),
			    void *arg);
	int (*offline_delete)(struct store *st, const char *owner, int64_t upto);
	int (*offline_delete_ids)(struct store *st, const char *owner, const int64_t *ids,
				  size_t n);
	long (*offline_count)(struct store *st, const char *owner);
	long (*offline_expire)(struct store *st, int64_t now_ms, size_t limit,
			       void (*fn)(void *arg, const struct store_offline_msg *m), void *arg);

	/* The account and room archives, private storage and block lists: the contracts in store.h.
	 */
	int (*archive_put)(struct store *st, const struct store_archive_msg *m);
	int (*archive_query)(struct store *st, const struct store_archive_query *q,
			     void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
			     bool *complete);
	int (*archive_clear)(struct store *st, const char *owner, const char *with);
	int (*room_archive_put)(struct store *st, const struct store_archive_msg *m);
	int (*room_archive_query)(struct store *st, const struct store_archive_query *q,
				  void (*fn)(void *arg, const struct store_archive_msg *m),
				  void *arg, bool *complete);
	int (*room_archive_clear)(struct store *st, const char *room);
	int (*private_get)(struct store *st, const char *owner, const char *key, struct buf *out);
	int (*private_set)(struct store *st, const char *owner, const char *key, const char *xml,
			   size_t len);
	int (*block_list)(struct store *st, const char *owner,
			  void (*fn)(void *arg, const char *jid), void *arg);
	int (*block_set)(struct store *st, const char *owner, const char *jid, bool remove);
	int (*transfer_put)(struct store *st, const char *owner, const char *id, const char *xml,
			    int64_t expires);
	int (*transfer_del)(struct store *st, const char *owner, const char *id);
	int (*transfer_list)(struct store *st, const char *owner, int64_t now_ms,
			     void (*fn)(void *arg, const char *id, const char *xml,
					int64_t expires),
			     void *arg);
	/* SMS rings, queue and facts, and the roster's reverse lookup: the contracts in store.h. */
	int (*sms_slot_put)(struct store *st, const char *link, int dir, unsigned slot,
			    const struct store_sms_msg *m);
	int (*sms_slot_state)(struct store *st, const char *link, int dir, unsigned slot,
			      int64_t seq, int state, const char *extra);
	int (*sms_slots)(struct store *st, const char *link,
			 void (*fn)(void *arg, int dir, const struct store_sms_msg *m), void *arg);
	int (*sms_links)(struct store *st, void (*fn)(void *arg, const char *link), void *arg);
	int (*sms_queue_put)(struct store *st, const char *link, const struct store_sms_msg *m,
			     int64_t *id);
	int (*sms_queue_list)(struct store *st, const char *link, int64_t after, size_t limit,
			      void (*fn)(void *arg, const struct store_sms_msg *m), void *arg);
	int (*sms_queue_del)(struct store *st, int64_t id);
	long (*sms_queue_count)(struct store *st, const char *link);
	int (*sms_kv_set)(struct store *st, const char *key, const char *value, int64_t expires);
	int (*sms_kv_get)(struct store *st, const char *key, struct buf *out);
	int (*sms_kv_del)(struct store *st, const char *key);
	int (*roster_owners)(struct store *st, const char *contact,
			     void (*fn)(void *arg, const char *owner), void *arg);
	int (*identity_get)(struct store *st, const char *owner, struct store_identity *out);
	int (*identity_set)(struct store *st, const char *owner, const struct store_identity *id);
	int (*identity_log_add)(struct store *st, const char *owner,
				const struct store_identity_event *e);
	int (*identity_log)(struct store *st, const char *owner, size_t max,
			    void (*fn)(void *arg, const struct store_identity_event *e), void *arg);

	/* Persistent multi-user chat rooms: the contracts of store_room_* in store.h. */
	int (*room_put)(struct store *st, const char *jid, const char *config, const char *subject);
	int (*room_get)(struct store *st, const char *jid, struct buf *config, struct buf *subject);
	int (*room_delete)(struct store *st, const char *jid);
	int (*room_list)(struct store *st,
			 void (*fn)(void *arg, const char *jid, const char *config), void *arg);
	int (*room_affiliations)(struct store *st, const char *room,
				 void (*fn)(void *arg, const char *jid, int affiliation),
				 void *arg);
	int (*room_set_affiliation)(struct store *st, const char *room, const char *jid,
				    int affiliation);

	/* Invitations and push registrations: the contracts of store_invite_* and store_push_*. */
	int (*invite_put)(struct store *st, const char *token, long uses, int64_t expires);
	int (*invite_get)(struct store *st, const char *token, long *uses, int64_t *expires);
	int (*invite_use)(struct store *st, const char *token);
	int (*invite_del)(struct store *st, const char *token);
	int (*invite_list)(struct store *st,
			   void (*fn)(void *arg, const char *token, long uses, int64_t expires,
				      int64_t created),
			   void *arg);
	int (*push_set)(struct store *st, const char *owner, const struct store_push *p);
	int (*push_del)(struct store *st, const char *owner, const char *jid, const char *node);
	int (*push_list)(struct store *st, const char *owner,
			 void (*fn)(void *arg, const struct store_push *p), void *arg);
	/* Personal eventing (XEP-0163) nodes and items: the contracts of store_pep_* in store.h. */
	int (*pep_node_get)(struct store *st, const char *owner, const char *node,
			    struct buf *config);
	int (*pep_node_put)(struct store *st, const char *owner, const char *node,
			    const char *config);
	int (*pep_node_del)(struct store *st, const char *owner, const char *node);
	long (*pep_node_count)(struct store *st, const char *owner);
	int (*pep_nodes)(struct store *st, const char *owner,
			 void (*fn)(void *arg, const char *node, const char *config), void *arg);
	int (*pep_item_put)(struct store *st, const char *owner, const char *node, const char *id,
			    const char *xml, long keep);
	int (*pep_item_del)(struct store *st, const char *owner, const char *node, const char *id);
	int (*pep_trim)(struct store *st, const char *owner, const char *node, long keep);
	int (*pep_items)(struct store *st, const char *owner, const char *node, const char *id,
			 size_t max, void (*fn)(void *arg, const char *id, const char *xml),
			 void *arg);
};

extern const struct store_backend store_sqlite_backend;

#endif
