/*
 * store_sqlite_data: the SQLite backend's account and room archives (XEP-0313), private
 * storage (XEP-0049), block lists (XEP-0191) and multi-user chat rooms (XEP-0045).
 *
 * Invariant: as in store_sqlite.c, every statement is prepared once, run with bound
 * parameters and reset before the function returns. Both archives run the same code over
 * their own table, told apart only by the statements they are given.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_sqlite.h"

/* ---- the message archives (XEP-0313): accounts' and rooms' ---- */

/* The statements of one archive table; page[with][last] as sq_arc_query picks them. */
struct sq_arc {
	enum sq_stmt insert;
	enum sq_stmt page[2][2];
	const char *what; /* for the log: "archiving a ..." */
};

static const struct sq_arc arc_account = {
    S_ARC_INSERT,
    {{S_ARC_FWD, S_ARC_BACK}, {S_ARC_FWD_WITH, S_ARC_BACK_WITH}},
    "archiving a message",
};

/* No foreign key on room_archive: a put there never fails for want of an owner. */
static const struct sq_arc arc_room = {
    S_RARC_INSERT,
    {{S_RARC_FWD, S_RARC_BACK}, {S_RARC_FWD_WITH, S_RARC_BACK_WITH}},
    "archiving a room message",
};

static int
sq_arc_put(struct sq_store *s, const struct sq_arc *a, const struct store_archive_msg *m)
{
	sqlite3_stmt *stmt = s->stmt[a->insert];
	int rc;

	if (!m->owner || !m->with || !m->stanza) {
		log_error("store: archived message without owner, with or stanza");
		return STORE_EIO;
	}
	sqlite3_bind_int64(stmt, 1, m->id);
	sqlite3_bind_text(stmt, 2, m->owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, m->with, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, m->stamp_ms);
	sqlite3_bind_int(stmt, 5, m->outgoing);
	sqlite3_bind_text64(stmt, 6, m->stanza, m->len, SQLITE_STATIC, SQLITE_UTF8);
	rc = sq_exec(s, a->insert);
	if (rc == SQLITE_DONE)
		return 0;
	/* One statement: on failure SQLite undid it alone, the caller's transaction stays. */
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
		return STORE_EEXIST;
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT; /* no such account */
	return sq_fail(s, rc, a->what);
}

int
sq_archive_put(struct store *st, const struct store_archive_msg *m)
{
	return sq_arc_put(sq(st), &arc_account, m);
}

int
sq_room_archive_put(struct store *st, const struct store_archive_msg *m)
{
	return sq_arc_put(sq(st), &arc_room, m);
}

/* A row of a backward page, kept until the page is complete; strings live in arc_page.text. */
struct arc_row {
	int64_t id, stamp_ms;
	bool outgoing;
	size_t with_off, stanza_off, len;
};

/* Rows of a backward page, newest first; grows with the rows found, never with q->max. */
struct arc_page {
	struct arc_row *rows;
	size_t n, cap;
	struct buf text;
};

static void
arc_page_add(struct arc_page *p, const struct store_archive_msg *m)
{
	struct arc_row *r;

	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		p->rows = xrealloc(p->rows, p->cap * sizeof *p->rows);
	}
	r = &p->rows[p->n++];
	r->id = m->id;
	r->stamp_ms = m->stamp_ms;
	r->outgoing = m->outgoing;
	r->len = m->len;
	/* Each string is kept with its NUL, as the callback's contract promises. */
	r->with_off = buf_used(&p->text);
	buf_append(&p->text, m->with, strlen(m->with) + 1);
	r->stanza_off = buf_used(&p->text);
	buf_append(&p->text, m->stanza, m->len);
	buf_append(&p->text, "", 1);
}

/* Fills m from a row (id, with_jid, stamp, outgoing, stanza); false for a NULL column. */
static bool
sq_archive_row(sqlite3_stmt *stmt, struct store_archive_msg *m)
{
	m->id = sqlite3_column_int64(stmt, 0);
	m->with = (const char *)sqlite3_column_text(stmt, 1);
	m->stamp_ms = sqlite3_column_int64(stmt, 2);
	m->outgoing = sqlite3_column_int(stmt, 3) != 0;
	m->stanza = (const char *)sqlite3_column_text(stmt, 4);
	m->len = (size_t)sqlite3_column_bytes(stmt, 4);
	return m->with && m->stanza;
}

/*
 * Both directions read max + 1 rows off the (owner, id) or (owner, with_jid, id) index
 * from the bound nearest the page; the extra row only says whether more exist beyond it
 * (XEP-0313 section 4.3 "complete", XEP-0059 paging). A forward page goes to fn while
 * the statement steps (fn must not call into the store); a backward one is buffered and
 * handed over oldest first after the statement is reset.
 */
static int
sq_arc_query(struct sq_store *s, const struct sq_arc *a, const struct store_archive_query *q,
	     void (*fn)(void *arg, const struct store_archive_msg *m), void *arg, bool *complete)
{
	enum sq_stmt i;
	sqlite3_stmt *stmt;
	struct arc_page page = {0};
	int64_t lo = INT64_MIN, hi = INT64_MAX;
	size_t n = 0;
	bool more = false;
	int rc, r;

	/* The exclusive id bounds as inclusive ones; an empty range matches nothing. */
	if (q->after_id) {
		if (q->after_id == INT64_MAX)
			goto empty;
		lo = q->after_id + 1;
	}
	if (q->before_id) {
		if (q->before_id == INT64_MIN)
			goto empty;
		hi = q->before_id - 1;
	}
	i = a->page[q->with != NULL][q->last];
	stmt = s->stmt[i];
	sqlite3_bind_text(stmt, 1, q->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, lo);
	sqlite3_bind_int64(stmt, 3, hi);
	sqlite3_bind_int64(stmt, 4, q->start_ms ? q->start_ms : INT64_MIN);
	sqlite3_bind_int64(stmt, 5, q->end_ms ? q->end_ms : INT64_MAX);
	/* max + 1, or no limit when that does not fit (an absurd max is still bounded by rows). */
	sqlite3_bind_int64(stmt, 6, q->max < (size_t)INT64_MAX ? (sqlite3_int64)q->max + 1 : -1);
	if (q->with)
		sqlite3_bind_text(stmt, 7, q->with, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_archive_msg m = {.owner = q->owner};
		if (n == q->max) {
			more = true;
			continue; /* the extra row; LIMIT makes it the last */
		}
		n++;
		if (!sq_archive_row(stmt, &m))
			continue; /* impossible under NOT NULL; never hand out a NULL */
		if (q->last)
			arc_page_add(&page, &m);
		else
			fn(arg, &m);
	}
	r = sq_finish(s, i, rc);
	if (r == 0) {
		for (size_t k = page.n; k-- > 0;) {
			const struct arc_row *row = &page.rows[k];
			struct store_archive_msg m = {
			    .id = row->id,
			    .owner = q->owner,
			    .with = page.text.data + page.text.off + row->with_off,
			    .stanza = page.text.data + page.text.off + row->stanza_off,
			    .len = row->len,
			    .stamp_ms = row->stamp_ms,
			    .outgoing = row->outgoing,
			};
			fn(arg, &m);
		}
		*complete = !more;
	}
	free(page.rows);
	buf_free(&page.text);
	return r;
empty:
	*complete = true;
	return 0;
}

int
sq_archive_query(struct store *st, const struct store_archive_query *q,
		 void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
		 bool *complete)
{
	return sq_arc_query(sq(st), &arc_account, q, fn, arg, complete);
}

int
sq_room_archive_query(struct store *st, const struct store_archive_query *q,
		      void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
		      bool *complete)
{
	return sq_arc_query(sq(st), &arc_room, q, fn, arg, complete);
}

int
sq_archive_clear(struct store *st, const char *owner, const char *with)
{
	struct sq_store *s = sq(st);
	enum sq_stmt i = with ? S_ARC_CLEAR_WITH : S_ARC_CLEAR;
	int rc;

	sqlite3_bind_text(s->stmt[i], 1, owner, -1, SQLITE_STATIC);
	if (with)
		sqlite3_bind_text(s->stmt[i], 2, with, -1, SQLITE_STATIC);
	rc = sq_exec(s, i);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "clearing an archive");
}

int
sq_room_archive_clear(struct store *st, const char *room)
{
	struct sq_store *s = sq(st);
	int rc;

	sqlite3_bind_text(s->stmt[S_RARC_CLEAR], 1, room, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_RARC_CLEAR);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "clearing a room archive");
}

/* ---- private XML storage (XEP-0049) ---- */

int
sq_private_get(struct store *st, const char *owner, const char *key, struct buf *out)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_PRIV_GET];
	int rc, r;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		const char *xml = (const char *)sqlite3_column_text(stmt, 0);
		int n = sqlite3_column_bytes(stmt, 0);
		/* Appended before the reset check: on failure out is restored below. */
		size_t before = out->len;
		if (xml && n > 0)
			buf_append(out, xml, (size_t)n);
		r = sq_finish(s, S_PRIV_GET, rc);
		if (r < 0 && out->data) {
			out->len = before;
			out->data[before] = '\0';
		}
		return r;
	}
	r = sq_finish(s, S_PRIV_GET, rc);
	return r < 0 ? r : STORE_ENOENT;
}

int
sq_private_set(struct store *st, const char *owner, const char *key, const char *xml, size_t len)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_PRIV_SET];
	int rc;

	if (!owner || !key || !xml) {
		log_error("store: private data without owner, key or XML");
		return STORE_EIO;
	}
	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_text64(stmt, 3, xml, len, SQLITE_STATIC, SQLITE_UTF8);
	rc = sq_exec(s, S_PRIV_SET);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT; /* no such account */
	return sq_fail(s, rc, "storing private data");
}

/* ---- block lists (XEP-0191) ---- */

/* fn must not call into the store: the statement is mid-step while it runs. */
int
sq_block_list(struct store *st, const char *owner, void (*fn)(void *arg, const char *jid),
	      void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_BLOCK_LIST];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *jid = (const char *)sqlite3_column_text(stmt, 0);
		if (jid)
			fn(arg, jid);
	}
	return sq_finish(s, S_BLOCK_LIST, rc);
}

int
sq_block_set(struct store *st, const char *owner, const char *jid, bool remove)
{
	struct sq_store *s = sq(st);
	enum sq_stmt i;
	int rc;

	if (!jid && !remove) {
		log_error("store: blocking without a JID");
		return STORE_EIO;
	}
	i = !remove ? S_BLOCK_ADD : jid ? S_BLOCK_DEL : S_BLOCK_CLEAR;
	sqlite3_bind_text(s->stmt[i], 1, owner, -1, SQLITE_STATIC);
	if (jid)
		sqlite3_bind_text(s->stmt[i], 2, jid, -1, SQLITE_STATIC);
	rc = sq_exec(s, i);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT; /* adding for no such account */
	return sq_fail(s, rc, "changing a block list");
}

/* ---- multi-user chat rooms (XEP-0045) ---- */

int
sq_room_put(struct store *st, const char *jid, const char *config, const char *subject)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ROOM_PUT];
	int rc;

	if (!jid || !config || !subject) {
		log_error("store: room without JID, configuration or subject");
		return STORE_EIO;
	}
	sqlite3_bind_text(stmt, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, config, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, wall_ms());
	rc = sq_exec(s, S_ROOM_PUT);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "storing a room");
}

/* Appends column c of stmt's current row to out (if out is set); NULL reads as "". */
static void
sq_append_column(sqlite3_stmt *stmt, int c, struct buf *out)
{
	const char *text;
	int n;

	if (!out)
		return;
	/* column_text before column_bytes, so the length is that of the text form. */
	text = (const char *)sqlite3_column_text(stmt, c);
	n = sqlite3_column_bytes(stmt, c);
	if (text && n > 0)
		buf_append(out, text, (size_t)n);
}

/* Puts out back to length len (a failed read leaves the caller's buffer as it was). */
static void
sq_buf_restore(struct buf *out, size_t len)
{
	if (out && out->data) {
		out->len = len;
		out->data[len] = '\0';
	}
}

int
sq_room_get(struct store *st, const char *jid, struct buf *config, struct buf *subject)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ROOM_GET];
	size_t config_len = config ? config->len : 0, subject_len = subject ? subject->len : 0;
	int rc, r;

	sqlite3_bind_text(stmt, 1, jid, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		r = sq_finish(s, S_ROOM_GET, rc);
		return r < 0 ? r : STORE_ENOENT;
	}
	/* Appended before the reset check: on failure both buffers are restored below. */
	sq_append_column(stmt, 0, config);
	sq_append_column(stmt, 1, subject);
	r = sq_finish(s, S_ROOM_GET, rc);
	if (r < 0) {
		/* subject first: if both are the same buffer, config's length is the older. */
		sq_buf_restore(subject, subject_len);
		sq_buf_restore(config, config_len);
	}
	return r;
}

int
sq_room_delete(struct store *st, const char *jid)
{
	struct sq_store *s = sq(st);
	int rc;

	/* The affiliations go with the room: ON DELETE CASCADE, foreign_keys on. */
	sqlite3_bind_text(s->stmt[S_ROOM_DEL], 1, jid, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_ROOM_DEL);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "deleting a room");
}

/* fn must not call into the store: the statement is mid-step while it runs. */
int
sq_room_list(struct store *st, void (*fn)(void *arg, const char *jid, const char *config),
	     void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ROOM_LIST];
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *jid = (const char *)sqlite3_column_text(stmt, 0);
		const char *config = (const char *)sqlite3_column_text(stmt, 1);
		if (jid && config)
			fn(arg, jid, config);
	}
	return sq_finish(s, S_ROOM_LIST, rc);
}

/* fn must not call into the store: the statement is mid-step while it runs. */
int
sq_room_affiliations(struct store *st, const char *room,
		     void (*fn)(void *arg, const char *jid, int affiliation), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_AFF_LIST];
	int rc;

	sqlite3_bind_text(stmt, 1, room, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *jid = (const char *)sqlite3_column_text(stmt, 0);
		if (jid)
			fn(arg, jid, sqlite3_column_int(stmt, 1));
	}
	return sq_finish(s, S_AFF_LIST, rc);
}

/*
 * Setting relies on the foreign key to refuse an unknown room. Removing cannot (a
 * DELETE of nothing is no violation), so when it removed nothing it asks whether the
 * room exists, keeping the header's promise of STORE_ENOENT for an unknown room.
 */
int
sq_room_set_affiliation(struct store *st, const char *room, const char *jid, int affiliation)
{
	struct sq_store *s = sq(st);
	enum sq_stmt i = affiliation ? S_AFF_SET : S_AFF_DEL;
	long n;
	int rc;

	if (!room || !jid) {
		log_error("store: room affiliation without room or JID");
		return STORE_EIO;
	}
	sqlite3_bind_text(s->stmt[i], 1, room, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->stmt[i], 2, jid, -1, SQLITE_STATIC);
	if (affiliation)
		sqlite3_bind_int(s->stmt[i], 3, affiliation);
	rc = sq_exec(s, i);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT; /* no such room */
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "changing a room affiliation");
	if (affiliation || sqlite3_changes(s->db) > 0)
		return 0;
	sqlite3_bind_text(s->stmt[S_ROOM_EXISTS], 1, room, -1, SQLITE_STATIC);
	n = sq_count(s, S_ROOM_EXISTS);
	if (n < 0)
		return (int)n;
	return n > 0 ? 0 : STORE_ENOENT;
}

/* ---- shared identity (urn:baton:identity:0) ---- */

int
sq_identity_get(struct store *st, const char *owner, struct store_identity *out)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ID_GET];
	int rc, r;

	*out = (struct store_identity){0};
	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		out->exclusive = sqlite3_column_int(stmt, 0) != 0;
		out->barring = sqlite3_column_int(stmt, 1) != 0;
		out->gen = sqlite3_column_int64(stmt, 2);
	}
	r = sq_finish(s, S_ID_GET, rc);
	return r < 0 ? r : rc == SQLITE_ROW ? 0 : STORE_ENOENT;
}

int
sq_identity_set(struct store *st, const char *owner, const struct store_identity *id)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ID_SET];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 2, id->exclusive);
	sqlite3_bind_int(stmt, 3, id->barring);
	sqlite3_bind_int64(stmt, 4, id->gen);
	rc = sq_exec(s, S_ID_SET);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT;
	return sq_fail(s, rc, "storing identity settings");
}

int
sq_identity_log_add(struct store *st, const char *owner, const struct store_identity_event *e)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_IDLOG_ADD];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, e->at);
	if (e->prev)
		sqlite3_bind_text(stmt, 3, e->prev, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(stmt, 3);
	sqlite3_bind_text(stmt, 4, e->next ? e->next : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, e->reason ? e->reason : "none", -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 6, e->gen);
	rc = sq_exec(s, S_IDLOG_ADD);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT;
	return sq_fail(s, rc, "recording an identity handover");
}

int
sq_identity_log(struct store *st, const char *owner, size_t max,
		void (*fn)(void *arg, const struct store_identity_event *e), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_IDLOG_LIST];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)max);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_identity_event e = {
		    .at = sqlite3_column_int64(stmt, 0),
		    .prev = (const char *)sqlite3_column_text(stmt, 1),
		    .next = (const char *)sqlite3_column_text(stmt, 2),
		    .reason = (const char *)sqlite3_column_text(stmt, 3),
		    .gen = sqlite3_column_int64(stmt, 4),
		};
		fn(arg, &e);
	}
	return sq_finish(s, S_IDLOG_LIST, rc);
}

/* ---- device continuity: waiting transfers ---- */

int
sq_transfer_put(struct store *st, const char *owner, const char *id, const char *xml,
		int64_t expires)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_XFER_PUT];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, xml, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, expires);
	rc = sq_exec(s, S_XFER_PUT);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT;
	return sq_fail(s, rc, "storing a transfer");
}

int
sq_transfer_del(struct store *st, const char *owner, const char *id)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_XFER_DEL];
	int rc;

	/* The owner's expired rows go with it. */
	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, wall_ms());
	rc = sq_exec(s, S_XFER_DEL);
	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, "deleting a transfer");
}

int
sq_transfer_list(struct store *st, const char *owner, int64_t now_ms,
		 void (*fn)(void *arg, const char *id, const char *xml, int64_t expires), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_XFER_LIST];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, now_ms);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);
		const char *xml = (const char *)sqlite3_column_text(stmt, 1);
		if (id && xml)
			fn(arg, id, xml, sqlite3_column_int64(stmt, 2));
	}
	return sq_finish(s, S_XFER_LIST, rc);
}
