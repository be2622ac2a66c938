/*
 * The SQLite backend's SMS tables (schema 9): the mirrored rings of each link, the queue of
 * messages waiting for a slot, small facts by key, and the roster's reverse lookup.
 *
 * Invariant: as everywhere in the backend, each statement is reset and unbound before the
 * function that stepped it returns (sq_exec / sq_finish).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_sqlite.h"

static void
bind_opt(sqlite3_stmt *stmt, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(stmt, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, i);
}

static const char *
col(sqlite3_stmt *stmt, int i)
{
	return (const char *)sqlite3_column_text(stmt, i);
}

int
sq_sms_slot_put(struct store *st, const char *link, int dir, unsigned slot,
		const struct store_sms_msg *m)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_SLOT_PUT];
	int rc;

	sqlite3_bind_text(stmt, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 2, dir);
	sqlite3_bind_int(stmt, 3, (int)slot);
	sqlite3_bind_int64(stmt, 4, m->seq);
	sqlite3_bind_int(stmt, 5, m->state);
	bind_opt(stmt, 6, m->from);
	bind_opt(stmt, 7, m->to);
	bind_opt(stmt, 8, m->text);
	bind_opt(stmt, 9, m->ref);
	bind_opt(stmt, 10, m->extra);
	sqlite3_bind_int64(stmt, 11, m->stamp);
	rc = sq_exec(s, S_SMS_SLOT_PUT);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "storing an SMS ring slot");
}

int
sq_sms_slot_state(struct store *st, const char *link, int dir, unsigned slot, int64_t seq,
		  int state, const char *extra)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_SLOT_STATE];
	int rc;

	sqlite3_bind_text(stmt, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 2, dir);
	sqlite3_bind_int(stmt, 3, (int)slot);
	sqlite3_bind_int64(stmt, 4, seq);
	sqlite3_bind_int(stmt, 5, state);
	bind_opt(stmt, 6, extra);
	rc = sq_exec(s, S_SMS_SLOT_STATE);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "updating an SMS ring slot");
}

int
sq_sms_slots(struct store *st, const char *link,
	     void (*fn)(void *arg, int dir, const struct store_sms_msg *m), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_SLOTS];
	int rc;

	sqlite3_bind_text(stmt, 1, link, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_sms_msg m = {
		    .seq = sqlite3_column_int64(stmt, 1),
		    .state = sqlite3_column_int(stmt, 2),
		    .from = col(stmt, 3),
		    .to = col(stmt, 4),
		    .text = col(stmt, 5),
		    .ref = col(stmt, 6),
		    .extra = col(stmt, 7),
		    .stamp = sqlite3_column_int64(stmt, 8),
		};
		fn(arg, sqlite3_column_int(stmt, 0), &m);
	}
	return sq_finish(s, S_SMS_SLOTS, rc);
}

int
sq_sms_links(struct store *st, void (*fn)(void *arg, const char *link), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_LINKS];
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		if (col(stmt, 0))
			fn(arg, col(stmt, 0));
	return sq_finish(s, S_SMS_LINKS, rc);
}

int
sq_sms_queue_put(struct store *st, const char *link, const struct store_sms_msg *m, int64_t *id)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_Q_PUT];
	int rc;

	sqlite3_bind_text(stmt, 1, link, -1, SQLITE_STATIC);
	bind_opt(stmt, 2, m->from);
	bind_opt(stmt, 3, m->to);
	bind_opt(stmt, 4, m->text);
	bind_opt(stmt, 5, m->ref);
	bind_opt(stmt, 6, m->extra);
	sqlite3_bind_int64(stmt, 7, m->stamp);
	rc = sq_exec(s, S_SMS_Q_PUT);
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "queueing an SMS");
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int
sq_sms_queue_list(struct store *st, const char *link, int64_t after, size_t limit,
		  void (*fn)(void *arg, const struct store_sms_msg *m), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_Q_LIST];
	int rc;

	sqlite3_bind_text(stmt, 1, link, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, after);
	sqlite3_bind_int64(stmt, 3, sq_limit(limit));
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_sms_msg m = {
		    .seq = sqlite3_column_int64(stmt, 0),
		    .from = col(stmt, 1),
		    .to = col(stmt, 2),
		    .text = col(stmt, 3),
		    .ref = col(stmt, 4),
		    .extra = col(stmt, 5),
		    .stamp = sqlite3_column_int64(stmt, 6),
		};
		fn(arg, &m);
	}
	return sq_finish(s, S_SMS_Q_LIST, rc);
}

int
sq_sms_queue_del(struct store *st, int64_t id)
{
	struct sq_store *s = sq(st);
	int rc;

	sqlite3_bind_int64(s->stmt[S_SMS_Q_DEL], 1, id);
	rc = sq_exec(s, S_SMS_Q_DEL);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "deleting a queued SMS");
}

long
sq_sms_queue_count(struct store *st, const char *link)
{
	struct sq_store *s = sq(st);

	sqlite3_bind_text(s->stmt[S_SMS_Q_COUNT], 1, link, -1, SQLITE_STATIC);
	return sq_count(s, S_SMS_Q_COUNT);
}

int
sq_sms_kv_set(struct store *st, const char *key, const char *value, int64_t expires)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_KV_SET];
	int rc;

	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, expires);
	rc = sq_exec(s, S_SMS_KV_SET);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "storing an SMS fact");
}

int
sq_sms_kv_get(struct store *st, const char *key, struct buf *out)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_KV_GET];
	int rc, found = 0;

	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, wall_ms());
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW && col(stmt, 0)) {
		buf_puts(out, col(stmt, 0));
		found = 1;
	}
	rc = sq_finish(s, S_SMS_KV_GET, rc);
	if (rc < 0)
		return rc;
	return found ? 0 : STORE_ENOENT;
}

int
sq_sms_kv_del(struct store *st, const char *key)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_SMS_KV_DEL];
	int rc;

	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, wall_ms());
	rc = sq_exec(s, S_SMS_KV_DEL);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "deleting an SMS fact");
}

int
sq_roster_owners(struct store *st, const char *contact, void (*fn)(void *arg, const char *owner),
		 void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ROSTER_OWNERS];
	int rc;

	sqlite3_bind_text(stmt, 1, contact, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		if (col(stmt, 0))
			fn(arg, col(stmt, 0));
	return sq_finish(s, S_ROSTER_OWNERS, rc);
}
