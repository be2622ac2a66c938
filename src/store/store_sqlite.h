/*
 * store_sqlite: what the files of the SQLite backend share: the open database, its
 * prepared statements, and the helpers that step them. store_sqlite.c opens, migrates
 * and serves accounts, rosters and offline messages; store_sqlite_data.c serves the
 * account and room archives, private storage, block lists and rooms.
 *
 * Invariant: a statement is reset and its bindings cleared before the function that
 * stepped it returns.
 */
#ifndef BATON_STORE_SQLITE_H
#define BATON_STORE_SQLITE_H

#include <sqlite3.h>

#include "store_backend.h"

enum sq_stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_JOB_SAVE,
	S_JOB_UNDO,
	S_JOB_RELEASE,
	S_OP_SAVE,
	S_OP_UNDO,
	S_OP_RELEASE,
	S_ACC_INSERT,
	S_ACC_CREDS,
	S_ACC_SET,
	S_ACC_DEL,
	S_ACC_LIST,
	S_ACC_COUNT,
	S_ROSTER_VER,
	S_ROSTER_ITEMS,
	S_ROSTER_PUT,
	S_ROSTER_DEL,
	S_VER_SET,
	S_OFF_QUOTA,
	S_OFF_INSERT,
	S_OFF_LOAD,
	S_OFF_DEL,
	S_OFF_DEL_ID,
	S_OFF_COUNT,
	S_OFF_EXPIRED,
	S_OFF_EXPIRE_DEL,
	S_ARC_INSERT,
	S_ARC_FWD, /* the four archive pages: forward or backward, all or one conversation */
	S_ARC_BACK,
	S_ARC_FWD_WITH,
	S_ARC_BACK_WITH,
	S_ARC_CLEAR,
	S_ARC_CLEAR_WITH,
	S_RARC_INSERT,
	S_RARC_FWD, /* the same four pages over room_archive */
	S_RARC_BACK,
	S_RARC_FWD_WITH,
	S_RARC_BACK_WITH,
	S_RARC_CLEAR,
	S_PRIV_GET,
	S_PRIV_SET,
	S_BLOCK_LIST,
	S_BLOCK_ADD,
	S_BLOCK_DEL,
	S_BLOCK_CLEAR,
	S_XFER_PUT,
	S_XFER_DEL,
	S_XFER_LIST,
	S_SMS_SLOT_PUT,
	S_SMS_SLOT_STATE,
	S_SMS_SLOTS,
	S_SMS_LINKS,
	S_SMS_Q_PUT,
	S_SMS_Q_LIST,
	S_SMS_Q_DEL,
	S_SMS_Q_COUNT,
	S_SMS_KV_SET,
	S_SMS_KV_GET,
	S_SMS_KV_DEL,
	S_ROSTER_OWNERS,
	S_ID_GET,
	S_ID_SET,
	S_IDLOG_ADD,
	S_IDLOG_LIST,
	S_ROOM_PUT,
	S_ROOM_GET,
	S_ROOM_DEL,
	S_ROOM_EXISTS,
	S_ROOM_LIST,
	S_AFF_LIST,
	S_AFF_SET,
	S_AFF_DEL,
	S_INV_PUT, /* invitations and push registrations (store_sqlite_acct.c) */
	S_INV_GET,
	S_INV_USE,
	S_INV_DEL,
	S_INV_LIST,
	S_PUSH_PUT,
	S_PUSH_DEL,
	S_PUSH_DEL_JID,
	S_PUSH_LIST,
	S_PEP_NODE_GET,
	S_PEP_NODE_PUT,
	S_PEP_NODE_DEL,
	S_PEP_NODE_COUNT,
	S_PEP_NODES,
	S_PEP_ITEM_DEL,
	S_PEP_ITEM_INSERT,
	S_PEP_TRIM,
	S_PEP_ITEMS,
	S_PEP_ITEM_GET,
	S_COUNT
};

struct sq_store {
	struct store base; /* first: store.c sees only this */
	sqlite3 *db;
	char *path;
	sqlite3_stmt *stmt[S_COUNT];
	struct hmap queued; /* owner -> struct queued: offline messages, roughly (quota checks) */
};

static inline struct sq_store *
sq(struct store *st)
{
	return (struct sq_store *)st;
}

/* Logs a database failure once and returns STORE_EIO. */
int sq_fail(struct sq_store *s, int rc, const char *what);
/* Steps a statement that returns no rows, then resets it; SQLITE_DONE or the error code. */
int sq_exec(struct sq_store *s, enum sq_stmt i);
int sq_finish(struct sq_store *s, enum sq_stmt i, int rc);
int sq_run(struct sq_store *s, enum sq_stmt i);
long sq_count(struct sq_store *s, enum sq_stmt i);
/* One operation: a savepoint of its own inside a transaction, else its own transaction. */
int sq_op_begin(struct sq_store *s);
int sq_op_end(struct sq_store *s, int r);
sqlite3_int64 sq_limit(size_t limit);

/* store_sqlite_data.c */
int sq_archive_put(struct store *st, const struct store_archive_msg *m);
int sq_archive_query(struct store *st, const struct store_archive_query *q,
		     void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
		     bool *complete);
int sq_archive_clear(struct store *st, const char *owner, const char *with);
int sq_room_archive_put(struct store *st, const struct store_archive_msg *m);
int sq_room_archive_query(struct store *st, const struct store_archive_query *q,
			  void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
			  bool *complete);
int sq_room_archive_clear(struct store *st, const char *room);
int sq_private_get(struct store *st, const char *owner, const char *key, struct buf *out);
int sq_private_set(struct store *st, const char *owner, const char *key, const char *xml,
		   size_t len);
int sq_block_list(struct store *st, const char *owner, void (*fn)(void *arg, const char *jid),
		  void *arg);
int sq_block_set(struct store *st, const char *owner, const char *jid, bool remove);
int sq_transfer_put(struct store *st, const char *owner, const char *id, const char *xml,
		    int64_t expires);
int sq_transfer_del(struct store *st, const char *owner, const char *id);
int sq_transfer_list(struct store *st, const char *owner, int64_t now_ms,
		     void (*fn)(void *arg, const char *id, const char *xml, int64_t expires),
		     void *arg);
/* store_sqlite_sms.c */
int sq_sms_slot_put(struct store *st, const char *link, int dir, unsigned slot,
		    const struct store_sms_msg *m);
int sq_sms_slot_state(struct store *st, const char *link, int dir, unsigned slot, int64_t seq,
		      int state, const char *extra);
int sq_sms_slots(struct store *st, const char *link,
		 void (*fn)(void *arg, int dir, const struct store_sms_msg *m), void *arg);
int sq_sms_links(struct store *st, void (*fn)(void *arg, const char *link), void *arg);
int sq_sms_queue_put(struct store *st, const char *link, const struct store_sms_msg *m,
		     int64_t *id);
int sq_sms_queue_list(struct store *st, const char *link, int64_t after, size_t limit,
		      void (*fn)(void *arg, const struct store_sms_msg *m), void *arg);
int sq_sms_queue_del(struct store *st, int64_t id);
long sq_sms_queue_count(struct store *st, const char *link);
int sq_sms_kv_set(struct store *st, const char *key, const char *value, int64_t expires);
int sq_sms_kv_get(struct store *st, const char *key, struct buf *out);
int sq_sms_kv_del(struct store *st, const char *key);
int sq_roster_owners(struct store *st, const char *contact,
		     void (*fn)(void *arg, const char *owner), void *arg);
int sq_identity_get(struct store *st, const char *owner, struct store_identity *out);
int sq_identity_set(struct store *st, const char *owner, const struct store_identity *id);
int sq_identity_log_add(struct store *st, const char *owner, const struct store_identity_event *e);
int sq_identity_log(struct store *st, const char *owner, size_t max,
		    void (*fn)(void *arg, const struct store_identity_event *e), void *arg);
int sq_room_put(struct store *st, const char *jid, const char *config, const char *subject);
int sq_room_get(struct store *st, const char *jid, struct buf *config, struct buf *subject);
int sq_room_delete(struct store *st, const char *jid);
int sq_room_list(struct store *st, void (*fn)(void *arg, const char *jid, const char *config),
		 void *arg);
int sq_room_affiliations(struct store *st, const char *room,
			 void (*fn)(void *arg, const char *jid, int affiliation), void *arg);
int sq_room_set_affiliation(struct store *st, const char *room, const char *jid, int affiliation);
/* store_sqlite_pep.c */
int sq_pep_node_get(struct store *st, const char *owner, const char *node, struct buf *config);
int sq_pep_node_put(struct store *st, const char *owner, const char *node, const char *config);
int sq_pep_node_del(struct store *st, const char *owner, const char *node);
long sq_pep_node_count(struct store *st, const char *owner);
int sq_pep_nodes(struct store *st, const char *owner,
		 void (*fn)(void *arg, const char *node, const char *config), void *arg);
int sq_pep_item_put(struct store *st, const char *owner, const char *node, const char *id,
		    const char *xml, long keep);
int sq_pep_item_del(struct store *st, const char *owner, const char *node, const char *id);
int sq_pep_trim(struct store *st, const char *owner, const char *node, long keep);
int sq_pep_items(struct store *st, const char *owner, const char *node, const char *id, size_t max,
		 void (*fn)(void *arg, const char *id, const char *xml), void *arg);

/* store_sqlite_acct.c */
int sq_invite_put(struct store *st, const char *token, long uses, int64_t expires);
int sq_invite_get(struct store *st, const char *token, long *uses, int64_t *expires);
int sq_invite_use(struct store *st, const char *token);
int sq_invite_del(struct store *st, const char *token);
int sq_invite_list(struct store *st,
		   void (*fn)(void *arg, const char *token, long uses, int64_t expires,
			      int64_t created),
		   void *arg);
int sq_push_set(struct store *st, const char *owner, const struct store_push *p);
int sq_push_del(struct store *st, const char *owner, const char *jid, const char *node);
int sq_push_list(struct store *st, const char *owner,
		 void (*fn)(void *arg, const struct store_push *p), void *arg);

#endif
