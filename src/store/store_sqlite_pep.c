/*
 * The SQLite backend's personal eventing tables (schema 10): each account's XEP-0163 nodes with
 * their configuration, and the items published to them, newest by seq.
 *
 * Invariant: as everywhere in the backend, each statement is reset and unbound before the
 * function that stepped it returns; an item put and its trim run in one savepoint, so a node
 * never holds more items than it keeps.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_sqlite.h"

static void
bind_node(sqlite3_stmt *stmt, const char *owner, const char *node)
{
	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, node, -1, SQLITE_STATIC);
}

int
sq_pep_node_get(struct store *st, const char *owner, const char *node, struct buf *config)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_PEP_NODE_GET];
	int rc, r;

	bind_node(stmt, owner, node);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(stmt, 0);
		buf_puts(config, v ? v : "");
	}
	r = sq_finish(s, S_PEP_NODE_GET, rc);
	if (r < 0)
		return r;
	return rc == SQLITE_ROW ? 0 : STORE_ENOENT;
}

int
sq_pep_node_put(struct store *st, const char *owner, const char *node, const char *config)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_PEP_NODE_PUT];
	int rc;

	bind_node(stmt, owner, node);
	sqlite3_bind_text(stmt, 3, config, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_PEP_NODE_PUT);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT;
	return sq_fail(s, rc, "storing a PEP node");
}

int
sq_pep_node_del(struct store *st, const char *owner, const char *node)
{
	struct sq_store *s = sq(st);
	int rc;

	bind_node(s->stmt[S_PEP_NODE_DEL], owner, node);
	rc = sq_exec(s, S_PEP_NODE_DEL);
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "deleting a PEP node");
	return sqlite3_changes(s->db) > 0 ? 0 : STORE_ENOENT;
}

long
sq_pep_node_count(struct store *st, const char *owner)
{
	struct sq_store *s = sq(st);

	sqlite3_bind_text(s->stmt[S_PEP_NODE_COUNT], 1, owner, -1, SQLITE_STATIC);
	return sq_count(s, S_PEP_NODE_COUNT);
}

int
sq_pep_nodes(struct store *st, const char *owner,
	     void (*fn)(void *arg, const char *node, const char *config), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_PEP_NODES];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *node = (const char *)sqlite3_column_text(stmt, 0);
		const char *config = (const char *)sqlite3_column_text(stmt, 1);
		if (node)
			fn(arg, node, config ? config : "");
	}
	return sq_finish(s, S_PEP_NODES, rc);
}

static int
trim(struct sq_store *s, const char *owner, const char *node, long keep)
{
	sqlite3_stmt *stmt = s->stmt[S_PEP_TRIM];
	int rc;

	bind_node(stmt, owner, node);
	sqlite3_bind_int64(stmt, 3, keep < 1 ? 1 : keep);
	rc = sq_exec(s, S_PEP_TRIM);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "trimming a PEP node");
}

int
sq_pep_trim(struct store *st, const char *owner, const char *node, long keep)
{
	return trim(sq(st), owner, node, keep);
}

int
sq_pep_item_put(struct store *st, const char *owner, const char *node, const char *id,
		const char *xml, long keep)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt;
	int rc, r;

	if (sq_op_begin(s) < 0)
		return STORE_EIO;
	/* Deleted and inserted rather than updated: the new seq makes it the newest. */
	stmt = s->stmt[S_PEP_ITEM_DEL];
	bind_node(stmt, owner, node);
	sqlite3_bind_text(stmt, 3, id, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_PEP_ITEM_DEL);
	if (rc != SQLITE_DONE) {
		r = sq_fail(s, rc, "replacing a PEP item");
		goto out;
	}
	stmt = s->stmt[S_PEP_ITEM_INSERT];
	bind_node(stmt, owner, node);
	sqlite3_bind_text(stmt, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, xml, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 5, wall_ms());
	rc = sq_exec(s, S_PEP_ITEM_INSERT);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
		r = STORE_ENOENT;
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(s, rc, "storing a PEP item");
		goto out;
	}
	r = trim(s, owner, node, keep);
out:
	return sq_op_end(s, r);
}

int
sq_pep_item_del(struct store *st, const char *owner, const char *node, const char *id)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_PEP_ITEM_DEL];
	int rc;

	bind_node(stmt, owner, node);
	sqlite3_bind_text(stmt, 3, id, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_PEP_ITEM_DEL);
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "retracting a PEP item");
	return sqlite3_changes(s->db) > 0 ? 0 : STORE_ENOENT;
}

int
sq_pep_items(struct store *st, const char *owner, const char *node, const char *id, size_t max,
	     void (*fn)(void *arg, const char *id, const char *xml), void *arg)
{
	struct sq_store *s = sq(st);
	enum sq_stmt i = id ? S_PEP_ITEM_GET : S_PEP_ITEMS;
	sqlite3_stmt *stmt = s->stmt[i];
	int rc;

	bind_node(stmt, owner, node);
	if (id)
		sqlite3_bind_text(stmt, 3, id, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(stmt, 3, sq_limit(max));
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *iid = (const char *)sqlite3_column_text(stmt, 0);
		const char *xml = (const char *)sqlite3_column_text(stmt, 1);
		if (iid && xml)
			fn(arg, iid, xml);
	}
	return sq_finish(s, i, rc);
}
