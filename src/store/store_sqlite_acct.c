/*
 * The SQLite backend's account extras (schema 10): invitation tokens for registration
 * (c2s.registration = token) and each account's XEP-0357 push registrations.
 *
 * Invariant: as everywhere in the backend, each statement is reset and unbound before the
 * function that stepped it returns (sq_exec / sq_finish); a use of an invitation is one
 * UPDATE that never takes uses below zero, so two registrations cannot share the last use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_sqlite.h"

static const char *
col(sqlite3_stmt *stmt, int i)
{
	const char *s = (const char *)sqlite3_column_text(stmt, i);
	return s ? s : "";
}

int
sq_invite_put(struct store *st, const char *token, long uses, int64_t expires)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_INV_PUT];
	int rc;

	sqlite3_bind_text(stmt, 1, token, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, uses);
	sqlite3_bind_int64(stmt, 3, expires);
	sqlite3_bind_int64(stmt, 4, wall_ms());
	rc = sq_exec(s, S_INV_PUT);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		return STORE_EEXIST;
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "storing an invitation");
}

int
sq_invite_get(struct store *st, const char *token, long *uses, int64_t *expires)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_INV_GET];
	long u = 0;
	int64_t e = 0;
	int rc, r;
	bool found = false;

	sqlite3_bind_text(stmt, 1, token, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		u = (long)sqlite3_column_int64(stmt, 0);
		e = sqlite3_column_int64(stmt, 1);
		found = true;
	}
	r = sq_finish(s, S_INV_GET, rc);
	if (r < 0)
		return r;
	if (!found)
		return STORE_ENOENT;
	*uses = u;
	*expires = e;
	return 0;
}

int
sq_invite_use(struct store *st, const char *token)
{
	struct sq_store *s = sq(st);
	int rc;

	sqlite3_bind_text(s->stmt[S_INV_USE], 1, token, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_INV_USE);
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "using an invitation");
	return sqlite3_changes(s->db) > 0 ? 0 : STORE_ENOENT;
}

int
sq_invite_del(struct store *st, const char *token)
{
	struct sq_store *s = sq(st);
	int rc;

	sqlite3_bind_text(s->stmt[S_INV_DEL], 1, token, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_INV_DEL);
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "revoking an invitation");
	return sqlite3_changes(s->db) > 0 ? 0 : STORE_ENOENT;
}

int
sq_invite_list(struct store *st,
	       void (*fn)(void *arg, const char *token, long uses, int64_t expires,
			  int64_t created),
	       void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_INV_LIST];
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		fn(arg, col(stmt, 0), (long)sqlite3_column_int64(stmt, 1),
		   sqlite3_column_int64(stmt, 2), sqlite3_column_int64(stmt, 3));
	return sq_finish(s, S_INV_LIST, rc);
}

int
sq_push_set(struct store *st, const char *owner, const struct store_push *p)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_PUSH_PUT];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, p->jid, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, p->node, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, p->options ? p->options : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 5, p->body);
	rc = sq_exec(s, S_PUSH_PUT);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT;
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "storing a push registration");
}

int
sq_push_del(struct store *st, const char *owner, const char *jid, const char *node)
{
	struct sq_store *s = sq(st);
	enum sq_stmt i = node ? S_PUSH_DEL : S_PUSH_DEL_JID;
	sqlite3_stmt *stmt = s->stmt[i];

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, jid, -1, SQLITE_STATIC);
	if (node)
		sqlite3_bind_text(stmt, 3, node, -1, SQLITE_STATIC);
	return sq_run(s, i);
}

int
sq_push_list(struct store *st, const char *owner, void (*fn)(void *arg, const struct store_push *p),
	     void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_PUSH_LIST];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_push p = {col(stmt, 0), col(stmt, 1), col(stmt, 2),
				       sqlite3_column_int(stmt, 3) != 0};
		fn(arg, &p);
	}
	return sq_finish(s, S_PUSH_LIST, rc);
}
