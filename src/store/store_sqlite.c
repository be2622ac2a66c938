/*
 * store_sqlite: the SQLite backend of the store, one database file data_dir/baton.db in
 * WAL mode, so batonctl can read and write while batond runs (writers wait on each other
 * up to the busy timeout). The schema is versioned in table schema_version and migrated
 * forward in one transaction at open.
 *
 * Invariant: every statement is prepared once at open and run with bound parameters;
 * each is reset (and its bindings cleared) before the function that stepped it returns,
 * so no statement holds a read snapshot or a pointer between calls.
 */
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "store_backend.h"
#include "store_sqlite.h"

/* How long a writer waits for another process's write lock before failing with EIO. */
#define SQ_BUSY_MS 5000

/*
 * Migration i + 1 brings the schema from version i to i + 1. Append only: a released
 * migration is never edited, since databases in the field already ran it.
 */
static const char *const migrations[] = {
    /* 1: accounts and rosters (RFC 6121 section 2), roster versions (section 2.6). */
    "CREATE TABLE accounts ("
    " jid TEXT NOT NULL PRIMARY KEY,"
    " creds BLOB NOT NULL,"
    " created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE roster ("
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " contact TEXT NOT NULL,"
    " name TEXT,"
    " \"groups\" TEXT,"
    " sub INTEGER NOT NULL DEFAULT 0,"
    " ask INTEGER NOT NULL DEFAULT 0,"
    " pending_in INTEGER NOT NULL DEFAULT 0,"
    " hidden INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (owner, contact)"
    ") WITHOUT ROWID;"
    "CREATE TABLE roster_version ("
    " owner TEXT NOT NULL PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,"
    " ver INTEGER NOT NULL"
    ") WITHOUT ROWID;",
    /*
     * 2: offline messages (XEP-0160). AUTOINCREMENT so an id is never reused, even after
     * the newest message is deleted: "delete up to id" must not catch a later arrival.
     * offline_owner serves delivery in order, deletion up to an id, the quota count and
     * the cascade from accounts; offline_expires (whose entries end in the rowid, i.e.
     * id) serves expiry in (expires, id) order. Times are wall-clock milliseconds.
     */
    "CREATE TABLE offline ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " sender TEXT NOT NULL,"
    " stanza TEXT NOT NULL,"
    " stamp INTEGER NOT NULL,"
    " expires INTEGER NOT NULL"
    ");"
    "CREATE INDEX offline_owner ON offline (owner, id);"
    "CREATE INDEX offline_expires ON offline (expires);",
    /*
     * 3: the message archive (XEP-0313), private XML storage (XEP-0049) and block lists
     * (XEP-0191). archive.id is the caller's id and the rowid (no AUTOINCREMENT: the
     * caller picks it). archive_owner serves paging by id and the cascade from accounts;
     * archive_with serves paging through one conversation. Stamps are wall-clock ms.
     */
    "CREATE TABLE archive ("
    " id INTEGER PRIMARY KEY,"
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " with_jid TEXT NOT NULL,"
    " stamp INTEGER NOT NULL,"
    " outgoing INTEGER NOT NULL,"
    " stanza TEXT NOT NULL"
    ");"
    "CREATE INDEX archive_owner ON archive (owner, id);"
    "CREATE INDEX archive_with ON archive (owner, with_jid, id);"
    "CREATE TABLE private ("
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " key TEXT NOT NULL,"
    " xml TEXT NOT NULL,"
    " PRIMARY KEY (owner, key)"
    ") WITHOUT ROWID;"
    "CREATE TABLE blocklist ("
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " jid TEXT NOT NULL,"
    " PRIMARY KEY (owner, jid)"
    ") WITHOUT ROWID;",
    /*
     * 4: multi-user chat rooms that persist (XEP-0045 section 4.2, "Persistent Room"),
     * owned by the server rather than by an account, so nothing here references accounts.
     * config and subject are opaque text to the store; updated is wall-clock ms of the
     * last put. The affiliation key leads with room, so listing one room's affiliations
     * and the cascade from rooms read only that room's rows.
     */
    "CREATE TABLE rooms ("
    " jid TEXT NOT NULL PRIMARY KEY,"
    " config TEXT NOT NULL,"
    " subject TEXT NOT NULL,"
    " updated INTEGER"
    ") WITHOUT ROWID;"
    "CREATE TABLE room_affiliations ("
    " room TEXT NOT NULL REFERENCES rooms(jid) ON DELETE CASCADE,"
    " jid TEXT NOT NULL,"
    " affiliation INTEGER NOT NULL,"
    " PRIMARY KEY (room, jid)"
    ") WITHOUT ROWID;",
    /*
     * 5: room archives (XEP-0313 section 8: the archive of a XEP-0045 room), shaped like
     * archive but kept apart: a room is not an account, so the owner column is room and
     * references nothing (a temporary room has no row in rooms, and deleting a room
     * leaves its archive to an explicit clear). with_jid is the sender's room/nick.
     * room_archive_room serves paging and clearing; room_archive_with one occupant.
     */
    "CREATE TABLE room_archive ("
    " id INTEGER PRIMARY KEY,"
    " room TEXT NOT NULL,"
    " with_jid TEXT NOT NULL,"
    " stamp INTEGER NOT NULL,"
    " outgoing INTEGER NOT NULL,"
    " stanza TEXT NOT NULL"
    ");"
    "CREATE INDEX room_archive_room ON room_archive (room, id);"
    "CREATE INDEX room_archive_with ON room_archive (room, with_jid, id);",
    /*
     * 6: the quota check of every stored message counts the owner's unexpired messages;
     * with (owner, expires) it reads index entries only, never the stanzas.
     */
    "CREATE INDEX offline_owner_expires ON offline (owner, expires);",
    /*
     * 7: shared identity (urn:baton:identity:0): one row of settings per account that ever
     * set any, and the audit trail of active-device changes (batonctl identity log).
     */
    "CREATE TABLE identity ("
    " owner TEXT NOT NULL PRIMARY KEY REFERENCES accounts(jid) ON DELETE CASCADE,"
    " exclusive INTEGER NOT NULL,"
    " barring INTEGER NOT NULL,"
    " gen INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE identity_log ("
    " id INTEGER PRIMARY KEY,"
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " at INTEGER NOT NULL,"
    " prev TEXT,"
    " next TEXT NOT NULL,"
    " reason TEXT NOT NULL,"
    " gen INTEGER NOT NULL"
    ");"
    "CREATE INDEX identity_log_owner ON identity_log (owner, id);",
    /*
     * 8: device continuity: transfers waiting for a device or parked (PROTOCOL.md 1),
     * so a restart of batond does not drop them. The XML is the transfer as continuity
     * describes it; expired rows are skipped when listed and replaced or deleted later.
     */
    "CREATE TABLE transfers ("
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " id TEXT NOT NULL,"
    " xml TEXT NOT NULL,"
    " expires INTEGER NOT NULL,"
    " PRIMARY KEY (owner, id)"
    ") WITHOUT ROWID;",
    /*
     * 9: SMS (seed 001). sms_ring is the mirrored ring of each link, one row per slot and
     * direction (the array of FIG. 2 on disk); sms_queue holds messages waiting for a slot
     * (batond: for phones; baton-smsbuf: parts of a concatenated SMS); sms_kv small facts
     * (who last wrote to a number, delivery-report references, link state). The roster index
     * answers "who has this number in their roster" (the WHO command).
     */
    "CREATE TABLE sms_ring ("
    " link TEXT NOT NULL, dir INTEGER NOT NULL, slot INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, state INTEGER NOT NULL,"
    " sender TEXT, recipient TEXT, text TEXT, ref TEXT, extra TEXT, stamp INTEGER NOT NULL,"
    " PRIMARY KEY (link, dir, slot)"
    ") WITHOUT ROWID;"
    "CREATE TABLE sms_queue ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, link TEXT NOT NULL,"
    " sender TEXT, recipient TEXT, text TEXT, ref TEXT, extra TEXT, stamp INTEGER NOT NULL"
    ");"
    "CREATE INDEX sms_queue_link ON sms_queue (link, id);"
    "CREATE TABLE sms_kv ("
    " key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL, expires INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX roster_contact ON roster (contact);",
    /*
     * 10: invitations for c2s.registration = token (XEP-0401/0445), kept after they are used
     * up so batonctl can list them and a client is told why its token failed; and each
     * account's XEP-0357 push registrations (app server JID and node, the publish-options
     * form as XML, whether bodies may go to the app server).
     */
    "CREATE TABLE invites ("
    " token TEXT NOT NULL PRIMARY KEY, uses INTEGER NOT NULL, expires INTEGER NOT NULL,"
    " created INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE push ("
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " jid TEXT NOT NULL, node TEXT NOT NULL, options TEXT NOT NULL, body INTEGER NOT NULL,"
    " PRIMARY KEY (owner, jid, node)"
    ") WITHOUT ROWID;",
    /*
     * 11: personal eventing (XEP-0163): each account's pubsub nodes, their configuration as
     * text the xmpp module reads, and their items. seq orders items by publication
     * (AUTOINCREMENT: a republished id gets a new, larger seq, so it counts as the newest);
     * pep_items_node serves "the newest n of a node", the trim and the cascade from nodes.
     */
    "CREATE TABLE pep_nodes ("
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " node TEXT NOT NULL,"
    " config TEXT NOT NULL,"
    " PRIMARY KEY (owner, node)"
    ") WITHOUT ROWID;"
    "CREATE TABLE pep_items ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " owner TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " xml TEXT NOT NULL,"
    " stamp INTEGER NOT NULL,"
    " UNIQUE (owner, node, id),"
    " FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node) ON DELETE CASCADE"
    ");"
    "CREATE INDEX pep_items_node ON pep_items (owner, node, seq);",
};
#define SQ_SCHEMA_VERSION ((int)ARRAY_LEN(migrations))

/*
 * One page of an archive (table archive or room_archive, whose owner column is owner or
 * room), forward or backward (order "" or " DESC"), over all conversations or one (with
 * "" or SQ_ARC_WITH). Compile-time literals only; every value is a bound parameter.
 * Unbounded ends are bound as the extreme integers rather than written as
 * "(?2 = 0 OR id > ?2)": SQLite does not use an index column behind an OR, and with
 * "(?7 IS NULL OR with_jid = ?7)" it pages through all of owner's rows instead of the
 * (owner, with_jid, id) index, hence one statement per direction and per with/without.
 * Id bounds are inclusive here (?2 <= id <= ?3); the stamp filter rides on the index scan.
 */
#define SQ_ARC_PAGE(table, owner, with, order)                                                     \
	"SELECT id, with_jid, stamp, outgoing, stanza FROM " table " WHERE " owner " = ?1"         \
	" AND id >= ?2 AND id <= ?3 AND stamp >= ?4 AND stamp <= ?5" with " ORDER BY id" order     \
	" LIMIT ?6"
#define SQ_ARC_WITH " AND with_jid = ?7"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_JOB_SAVE] = "SAVEPOINT job",
    [S_JOB_UNDO] = "ROLLBACK TO job",
    [S_JOB_RELEASE] = "RELEASE job",
    [S_OP_SAVE] = "SAVEPOINT op",
    [S_OP_UNDO] = "ROLLBACK TO op",
    [S_OP_RELEASE] = "RELEASE op",
    [S_ACC_INSERT] = "INSERT INTO accounts (jid, creds, created) VALUES (?1, ?2, ?3)",
    [S_ACC_CREDS] = "SELECT creds FROM accounts WHERE jid = ?1",
    [S_ACC_SET] = "UPDATE accounts SET creds = ?2 WHERE jid = ?1",
    [S_ACC_DEL] = "DELETE FROM accounts WHERE jid = ?1",
    [S_ACC_LIST] = "SELECT jid FROM accounts ORDER BY jid",
    [S_ACC_COUNT] = "SELECT count(*) FROM accounts",
    [S_INV_PUT] = "INSERT INTO invites (token, uses, expires, created) VALUES (?1, ?2, ?3, ?4)",
    [S_INV_GET] = "SELECT uses, expires FROM invites WHERE token = ?1",
    [S_INV_USE] = "UPDATE invites SET uses = uses - 1 WHERE token = ?1 AND uses > 0",
    [S_INV_DEL] = "DELETE FROM invites WHERE token = ?1",
    [S_INV_LIST] = "SELECT token, uses, expires, created FROM invites ORDER BY created, token",
    [S_PUSH_PUT] = "INSERT OR REPLACE INTO push (owner, jid, node, options, body)"
		   " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_PUSH_DEL] = "DELETE FROM push WHERE owner = ?1 AND jid = ?2 AND node = ?3",
    [S_PUSH_DEL_JID] = "DELETE FROM push WHERE owner = ?1 AND jid = ?2",
    [S_PUSH_LIST] = "SELECT jid, node, options, body FROM push WHERE owner = ?1 ORDER BY jid, node",
    [S_ROSTER_VER] = "SELECT ver FROM roster_version WHERE owner = ?1",
    [S_ROSTER_ITEMS] = "SELECT contact, name, \"groups\", sub, ask, pending_in, hidden"
		       " FROM roster WHERE owner = ?1 ORDER BY contact",
    [S_ROSTER_PUT] = "INSERT INTO roster"
		     " (owner, contact, name, \"groups\", sub, ask, pending_in, hidden)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
		     " ON CONFLICT (owner, contact) DO UPDATE SET name = excluded.name,"
		     " \"groups\" = excluded.\"groups\", sub = excluded.sub, ask = excluded.ask,"
		     " pending_in = excluded.pending_in, hidden = excluded.hidden",
    [S_ROSTER_DEL] = "DELETE FROM roster WHERE owner = ?1 AND contact = ?2",
    [S_VER_SET] = "INSERT INTO roster_version (owner, ver) VALUES (?1, ?2)"
		  " ON CONFLICT (owner) DO UPDATE SET ver = excluded.ver",
    /* Counts at most ?2 rows: the quota check costs O(quota), not O(queue). */
    [S_OFF_QUOTA] = "SELECT count(*) FROM (SELECT 1 FROM offline WHERE owner = ?1"
		    " AND expires > ?3 LIMIT ?2)",
    [S_OFF_INSERT] = "INSERT INTO offline (owner, sender, stanza, stamp, expires)"
		     " VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_OFF_LOAD] = "SELECT id, sender, stanza, stamp, expires FROM offline"
		   " WHERE owner = ?1 AND id > ?2 AND expires > ?3 ORDER BY id LIMIT ?4",
    [S_OFF_DEL] = "DELETE FROM offline WHERE owner = ?1 AND id <= ?2",
    [S_OFF_DEL_ID] = "DELETE FROM offline WHERE owner = ?1 AND id = ?2",
    [S_OFF_COUNT] = "SELECT count(*) FROM offline WHERE owner = ?1",
    [S_OFF_EXPIRED] = "SELECT id, owner, sender, stanza, stamp, expires FROM offline"
		      " WHERE expires <= ?1 ORDER BY expires, id LIMIT ?2",
    /* Every row up to (?1, ?2) in (expires, id) order: exactly the rows S_OFF_EXPIRED gave. */
    [S_OFF_EXPIRE_DEL] = "DELETE FROM offline WHERE expires <= ?1 AND (expires < ?1 OR id <= ?2)",
    [S_ARC_INSERT] = "INSERT INTO archive (id, owner, with_jid, stamp, outgoing, stanza)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_ARC_FWD] = SQ_ARC_PAGE("archive", "owner", "", ""),
    [S_ARC_BACK] = SQ_ARC_PAGE("archive", "owner", "", " DESC"),
    [S_ARC_FWD_WITH] = SQ_ARC_PAGE("archive", "owner", SQ_ARC_WITH, ""),
    [S_ARC_BACK_WITH] = SQ_ARC_PAGE("archive", "owner", SQ_ARC_WITH, " DESC"),
    [S_ARC_CLEAR] = "DELETE FROM archive WHERE owner = ?1",
    [S_ARC_CLEAR_WITH] = "DELETE FROM archive WHERE owner = ?1 AND with_jid = ?2",
    [S_RARC_INSERT] = "INSERT INTO room_archive (id, room, with_jid, stamp, outgoing, stanza)"
		      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_RARC_FWD] = SQ_ARC_PAGE("room_archive", "room", "", ""),
    [S_RARC_BACK] = SQ_ARC_PAGE("room_archive", "room", "", " DESC"),
    [S_RARC_FWD_WITH] = SQ_ARC_PAGE("room_archive", "room", SQ_ARC_WITH, ""),
    [S_RARC_BACK_WITH] = SQ_ARC_PAGE("room_archive", "room", SQ_ARC_WITH, " DESC"),
    [S_RARC_CLEAR] = "DELETE FROM room_archive WHERE room = ?1",
    [S_PRIV_GET] = "SELECT xml FROM private WHERE owner = ?1 AND key = ?2",
    [S_PRIV_SET] = "INSERT INTO private (owner, key, xml) VALUES (?1, ?2, ?3)"
		   " ON CONFLICT (owner, key) DO UPDATE SET xml = excluded.xml",
    [S_BLOCK_LIST] = "SELECT jid FROM blocklist WHERE owner = ?1 ORDER BY jid",
    /* Not INSERT OR IGNORE: that would also swallow a NOT NULL failure. */
    [S_BLOCK_ADD] = "INSERT INTO blocklist (owner, jid) VALUES (?1, ?2)"
		    " ON CONFLICT (owner, jid) DO NOTHING",
    [S_BLOCK_DEL] = "DELETE FROM blocklist WHERE owner = ?1 AND jid = ?2",
    [S_BLOCK_CLEAR] = "DELETE FROM blocklist WHERE owner = ?1",
    [S_XFER_PUT] = "INSERT INTO transfers (owner, id, xml, expires) VALUES (?1, ?2, ?3, ?4)"
		   " ON CONFLICT (owner, id) DO UPDATE SET xml = excluded.xml,"
		   " expires = excluded.expires",
    [S_XFER_DEL] = "DELETE FROM transfers WHERE owner = ?1 AND (id = ?2 OR expires <= ?3)",
    [S_SMS_SLOT_PUT] =
	"INSERT OR REPLACE INTO sms_ring (link, dir, slot, seq, state, sender,"
	" recipient, text, ref, extra, stamp) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
	" ?9, ?10, ?11)",
    [S_SMS_SLOT_STATE] = "UPDATE sms_ring SET state = max(state, ?5),"
			 " text = CASE WHEN ?5 >= 4 THEN NULL ELSE text END,"
			 " extra = coalesce(?6, extra)"
			 " WHERE link = ?1 AND dir = ?2 AND slot = ?3 AND seq = ?4",
    [S_SMS_SLOTS] = "SELECT dir, seq, state, sender, recipient, text, ref, extra, stamp"
		    " FROM sms_ring WHERE link = ?1 ORDER BY dir, seq",
    [S_SMS_LINKS] = "SELECT DISTINCT link FROM sms_ring UNION SELECT DISTINCT link FROM sms_queue"
		    " ORDER BY 1",
    [S_SMS_Q_PUT] = "INSERT INTO sms_queue (link, sender, recipient, text, ref, extra, stamp)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_SMS_Q_LIST] = "SELECT id, sender, recipient, text, ref, extra, stamp FROM sms_queue"
		     " WHERE link = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
    [S_SMS_Q_DEL] = "DELETE FROM sms_queue WHERE id = ?1",
    [S_SMS_Q_COUNT] = "SELECT count(*) FROM sms_queue WHERE link = ?1",
    [S_SMS_KV_SET] = "INSERT OR REPLACE INTO sms_kv (key, value, expires) VALUES (?1, ?2, ?3)",
    [S_SMS_KV_GET] = "SELECT value FROM sms_kv WHERE key = ?1 AND (expires = 0 OR expires > ?2)",
    [S_SMS_KV_DEL] = "DELETE FROM sms_kv WHERE key = ?1 OR (expires > 0 AND expires <= ?2)",
    [S_ROSTER_OWNERS] = "SELECT owner FROM roster WHERE contact = ?1 AND hidden = 0"
			" ORDER BY owner",
    [S_XFER_LIST] = "SELECT id, xml, expires FROM transfers WHERE owner = ?1 AND expires > ?2"
		    " ORDER BY expires",
    [S_ID_GET] = "SELECT exclusive, barring, gen FROM identity WHERE owner = ?1",
    [S_ID_SET] = "INSERT INTO identity (owner, exclusive, barring, gen) VALUES (?1, ?2, ?3, ?4)"
		 " ON CONFLICT (owner) DO UPDATE SET exclusive = excluded.exclusive,"
		 " barring = excluded.barring, gen = excluded.gen",
    [S_IDLOG_ADD] = "INSERT INTO identity_log (owner, at, prev, next, reason, gen)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [S_IDLOG_LIST] = "SELECT at, prev, next, reason, gen FROM (SELECT * FROM identity_log"
		     " WHERE owner = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
    /*
     * An upsert, never INSERT OR REPLACE: REPLACE deletes the old row first, and that
     * delete would cascade to the room's affiliations.
     */
    [S_ROOM_PUT] = "INSERT INTO rooms (jid, config, subject, updated) VALUES (?1, ?2, ?3, ?4)"
		   " ON CONFLICT (jid) DO UPDATE SET config = excluded.config,"
		   " subject = excluded.subject, updated = excluded.updated",
    [S_ROOM_GET] = "SELECT config, subject FROM rooms WHERE jid = ?1",
    [S_ROOM_DEL] = "DELETE FROM rooms WHERE jid = ?1",
    [S_ROOM_EXISTS] = "SELECT count(*) FROM rooms WHERE jid = ?1",
    [S_ROOM_LIST] = "SELECT jid, config FROM rooms ORDER BY jid",
    [S_AFF_LIST] = "SELECT jid, affiliation FROM room_affiliations WHERE room = ?1 ORDER BY jid",
    [S_AFF_SET] = "INSERT INTO room_affiliations (room, jid, affiliation) VALUES (?1, ?2, ?3)"
		  " ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation",
    [S_AFF_DEL] = "DELETE FROM room_affiliations WHERE room = ?1 AND jid = ?2",
    [S_PEP_NODE_GET] = "SELECT config FROM pep_nodes WHERE owner = ?1 AND node = ?2",
    /* An upsert, never REPLACE: REPLACE would delete the node's items by the cascade. */
    [S_PEP_NODE_PUT] = "INSERT INTO pep_nodes (owner, node, config) VALUES (?1, ?2, ?3)"
		       " ON CONFLICT (owner, node) DO UPDATE SET config = excluded.config",
    [S_PEP_NODE_DEL] = "DELETE FROM pep_nodes WHERE owner = ?1 AND node = ?2",
    [S_PEP_NODE_COUNT] = "SELECT count(*) FROM pep_nodes WHERE owner = ?1",
    [S_PEP_NODES] = "SELECT node, config FROM pep_nodes WHERE owner = ?1 ORDER BY node",
    [S_PEP_ITEM_DEL] = "DELETE FROM pep_items WHERE owner = ?1 AND node = ?2 AND id = ?3",
    [S_PEP_ITEM_INSERT] = "INSERT INTO pep_items (owner, node, id, xml, stamp)"
			  " VALUES (?1, ?2, ?3, ?4, ?5)",
    /* Everything older than the keep-th newest: the index gives both scans in seq order. */
    [S_PEP_TRIM] = "DELETE FROM pep_items WHERE owner = ?1 AND node = ?2 AND seq <"
		   " (SELECT seq FROM pep_items WHERE owner = ?1 AND node = ?2"
		   " ORDER BY seq DESC LIMIT 1 OFFSET ?3 - 1)",
    [S_PEP_ITEMS] = "SELECT id, xml FROM pep_items WHERE owner = ?1 AND node = ?2"
		    " ORDER BY seq DESC LIMIT ?3",
    [S_PEP_ITEM_GET] = "SELECT id, xml FROM pep_items WHERE owner = ?1 AND node = ?2 AND id = ?3",
};

static const struct {
	const char *name, *sql;
} sync_modes[] = {
    {"normal", "PRAGMA synchronous = NORMAL"},
    {"full", "PRAGMA synchronous = FULL"},
};

/* Logs a database failure once and returns STORE_EIO. */
int
sq_fail(struct sq_store *s, int rc, const char *what)
{
	log_error("store: %s: %s: %s (%s)", s->path, what, sqlite3_errmsg(s->db),
		  sqlite3_errstr(rc));
	return STORE_EIO;
}

/*
 * Steps a statement that returns no rows, then resets it and clears its bindings.
 * Returns SQLITE_DONE or the SQLite error code (extended codes are on).
 */
int
sq_exec(struct sq_store *s, enum sq_stmt i)
{
	sqlite3_stmt *stmt = s->stmt[i];
	int rc = sqlite3_step(stmt);
	int rc2 = sqlite3_reset(stmt);

	sqlite3_clear_bindings(stmt);
	if (rc == SQLITE_ROW)
		rc = SQLITE_DONE;
	if (rc == SQLITE_DONE && rc2 != SQLITE_OK)
		rc = rc2;
	return rc;
}

/* Finishes a row-returning statement after its last step rc; returns 0 or STORE_EIO. */
int
sq_finish(struct sq_store *s, enum sq_stmt i, int rc)
{
	sqlite3_stmt *stmt = s->stmt[i];
	int rc2;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		int r = sq_fail(s, rc, stmt_sql[i]);
		sqlite3_reset(stmt);
		sqlite3_clear_bindings(stmt);
		return r;
	}
	rc2 = sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	if (rc2 != SQLITE_OK)
		return sq_fail(s, rc2, stmt_sql[i]);
	return 0;
}

/* Runs a statement without rows; returns 0 or STORE_EIO (logged). */
int
sq_run(struct sq_store *s, enum sq_stmt i)
{
	int rc = sq_exec(s, i);

	return rc == SQLITE_DONE ? 0 : sq_fail(s, rc, stmt_sql[i]);
}

/* Runs a count(*) statement whose parameters are bound; returns the count or STORE_EIO. */
long
sq_count(struct sq_store *s, enum sq_stmt i)
{
	sqlite3_stmt *stmt = s->stmt[i];
	long count = 0;
	int rc, r;

	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		count = (long)sqlite3_column_int64(stmt, 0);
	else if (rc == SQLITE_DONE)
		rc = SQLITE_ERROR; /* count(*) always yields a row */
	r = sq_finish(s, i, rc);
	return r < 0 ? r : count;
}

/* ---- transactions ---- */

static int
sq_begin(struct store *st)
{
	return sq_run(sq(st), S_BEGIN);
}

static int
sq_commit(struct store *st)
{
	return sq_run(sq(st), S_COMMIT);
}

static int
sq_rollback(struct store *st)
{
	struct sq_store *s = sq(st);

	/* SQLite may already have rolled back by itself (disk full, I/O error): done. */
	if (sqlite3_get_autocommit(s->db))
		return 0;
	return sq_run(s, S_ROLLBACK);
}

static bool
sq_in_transaction(struct store *st)
{
	return !sqlite3_get_autocommit(sq(st)->db);
}

static int
sq_job_begin(struct store *st)
{
	return sq_run(sq(st), S_JOB_SAVE);
}

static int
sq_job_end(struct store *st, bool undo)
{
	struct sq_store *s = sq(st);

	if (sqlite3_get_autocommit(s->db))
		return STORE_EIO; /* the batch transaction is gone; the thread notices */
	if (undo && sq_run(s, S_JOB_UNDO) < 0)
		return STORE_EIO;
	return sq_run(s, S_JOB_RELEASE);
}

/*
 * An operation of several statements runs inside SAVEPOINT op, so it is atomic both in
 * autocommit mode (where the savepoint is the transaction) and inside a batch.
 */
int
sq_op_begin(struct sq_store *s)
{
	return sq_run(s, S_OP_SAVE);
}

/* Ends the operation with result r: kept if r >= 0, undone otherwise. Returns r or EIO. */
int
sq_op_end(struct sq_store *s, int r)
{
	if (r >= 0) {
		if (sq_run(s, S_OP_RELEASE) == 0)
			return r;
		r = STORE_EIO; /* in autocommit mode RELEASE is the COMMIT; undo below */
	}
	if (sqlite3_get_autocommit(s->db))
		return r; /* SQLite rolled the whole transaction back already */
	if (sq_run(s, S_OP_UNDO) < 0 || sq_run(s, S_OP_RELEASE) < 0)
		return STORE_EIO;
	return r;
}

/* ---- accounts ---- */

static int
sq_account_create(struct store *st, const char *jid, const void *creds, size_t n)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ACC_INSERT];
	int rc;

	sqlite3_bind_text(stmt, 1, jid, -1, SQLITE_STATIC);
	/* A non-NULL pointer keeps an empty blob from becoming NULL. */
	sqlite3_bind_blob64(stmt, 2, n ? creds : "", n, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, wall_ms() / 1000);
	rc = sq_exec(s, S_ACC_INSERT);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
		return STORE_EEXIST;
	return sq_fail(s, rc, "creating an account");
}

static int
sq_account_creds(struct store *st, const char *jid, struct buf *out)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ACC_CREDS];
	int rc, r;

	sqlite3_bind_text(stmt, 1, jid, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		const void *blob = sqlite3_column_blob(stmt, 0);
		int n = sqlite3_column_bytes(stmt, 0);
		/* Appended before the reset check: on failure out is restored below. */
		size_t before = out->len;
		if (blob && n > 0)
			buf_append(out, blob, (size_t)n);
		r = sq_finish(s, S_ACC_CREDS, rc);
		if (r < 0 && out->data) {
			out->len = before;
			out->data[before] = '\0';
		}
		return r;
	}
	r = sq_finish(s, S_ACC_CREDS, rc);
	return r < 0 ? r : STORE_ENOENT;
}

static int
sq_account_set_creds(struct store *st, const char *jid, const void *creds, size_t n)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ACC_SET];
	int rc;

	sqlite3_bind_text(stmt, 1, jid, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(stmt, 2, n ? creds : "", n, SQLITE_STATIC);
	rc = sq_exec(s, S_ACC_SET);
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "setting credentials");
	return sqlite3_changes(s->db) > 0 ? 0 : STORE_ENOENT;
}

static int
sq_account_delete(struct store *st, const char *jid)
{
	struct sq_store *s = sq(st);
	int rc;

	/*
	 * The roster, its version, offline messages, the archive, private data and the block
	 * list go with the account: ON DELETE CASCADE, foreign_keys on. Each child table's
	 * index leads with owner, so the cascade costs the account's rows only.
	 */
	sqlite3_bind_text(s->stmt[S_ACC_DEL], 1, jid, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_ACC_DEL);
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "deleting an account");
	free(hmap_del(&s->queued, jid));
	return sqlite3_changes(s->db) > 0 ? 0 : STORE_ENOENT;
}

static int
sq_account_list(struct store *st, void (*fn)(void *arg, const char *jid), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ACC_LIST];
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *jid = (const char *)sqlite3_column_text(stmt, 0);
		if (jid)
			fn(arg, jid);
	}
	return sq_finish(s, S_ACC_LIST, rc);
}

static long
sq_account_count(struct store *st)
{
	return sq_count(sq(st), S_ACC_COUNT);
}

/* ---- roster ---- */

static int
sq_roster_load(struct store *st, const char *owner, uint64_t *ver,
	       void (*fn)(void *arg, const struct store_roster_item *it), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt;
	uint64_t v = 0;
	int rc, r;

	/* One savepoint: the version and the items come from the same snapshot. */
	if (sq_op_begin(s) < 0)
		return STORE_EIO;
	stmt = s->stmt[S_ROSTER_VER];
	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		v = (uint64_t)sqlite3_column_int64(stmt, 0);
	r = sq_finish(s, S_ROSTER_VER, rc);
	if (r < 0)
		return sq_op_end(s, r);
	/* The caller learns the version before the items, as the header promises. */
	*ver = v;

	stmt = s->stmt[S_ROSTER_ITEMS];
	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_roster_item it = {
		    .contact = (const char *)sqlite3_column_text(stmt, 0),
		    .name = (const char *)sqlite3_column_text(stmt, 1),
		    .groups = (const char *)sqlite3_column_text(stmt, 2),
		    .sub = sqlite3_column_int(stmt, 3),
		    .ask = sqlite3_column_int(stmt, 4) != 0,
		    .pending_in = sqlite3_column_int(stmt, 5) != 0,
		    .hidden = sqlite3_column_int(stmt, 6) != 0,
		};
		if (!it.contact)
			continue; /* impossible under NOT NULL; never hand out a NULL JID */
		if (it.sub < STORE_SUB_NONE || it.sub > STORE_SUB_BOTH) {
			log_warn("store: %s: roster of %s: contact %s has bad subscription %d; "
				 "treated as none",
				 s->path, owner, it.contact, it.sub);
			it.sub = STORE_SUB_NONE;
		}
		fn(arg, &it);
	}
	r = sq_finish(s, S_ROSTER_ITEMS, rc);
	return sq_op_end(s, r);
}

/* Sets owner's roster version; the caller holds SAVEPOINT op. */
static int
sq_version_set(struct sq_store *s, const char *owner, uint64_t ver)
{
	sqlite3_stmt *stmt = s->stmt[S_VER_SET];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)ver);
	rc = sq_exec(s, S_VER_SET);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		return STORE_ENOENT; /* no such account */
	return sq_fail(s, rc, "setting a roster version");
}

static int
sq_roster_put(struct store *st, const char *owner, const struct store_roster_item *it, uint64_t ver)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ROSTER_PUT];
	int rc, r;

	if (it->sub < STORE_SUB_NONE || it->sub > STORE_SUB_BOTH) {
		log_error("store: roster item %s of %s: bad subscription %d", it->contact, owner,
			  it->sub);
		return STORE_EIO;
	}
	if (sq_op_begin(s) < 0)
		return STORE_EIO;
	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, it->contact, -1, SQLITE_STATIC);
	if (it->name)
		sqlite3_bind_text(stmt, 3, it->name, -1, SQLITE_STATIC);
	if (it->groups && *it->groups)
		sqlite3_bind_text(stmt, 4, it->groups, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 5, it->sub);
	sqlite3_bind_int(stmt, 6, it->ask);
	sqlite3_bind_int(stmt, 7, it->pending_in);
	sqlite3_bind_int(stmt, 8, it->hidden);
	rc = sq_exec(s, S_ROSTER_PUT);
	if (rc == SQLITE_DONE)
		r = sq_version_set(s, owner, ver);
	else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		r = STORE_ENOENT; /* no such account */
	else
		r = sq_fail(s, rc, "storing a roster item");
	return sq_op_end(s, r);
}

static int
sq_roster_del(struct store *st, const char *owner, const char *contact, uint64_t ver)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_ROSTER_DEL];
	int rc, r;

	if (sq_op_begin(s) < 0)
		return STORE_EIO;
	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, contact, -1, SQLITE_STATIC);
	rc = sq_exec(s, S_ROSTER_DEL);
	if (rc == SQLITE_DONE)
		r = sq_version_set(s, owner, ver);
	else
		r = sq_fail(s, rc, "deleting a roster item");
	return sq_op_end(s, r);
}

/* ---- offline messages (XEP-0160) ---- */

/* A LIMIT value: 0 (and anything past int64) means none, which SQLite spells -1. */
sqlite3_int64
sq_limit(size_t limit)
{
	return limit == 0 || limit > (size_t)INT64_MAX ? -1 : (sqlite3_int64)limit;
}

/*
 * The quota check without a count per message: each owner's queue length is remembered
 * (and kept up to date by inserts and deletes) and trusted only while it is far from the
 * quota and recent; near the quota, or after QUEUED_TTL_MS, the rows are counted again.
 * So the check stays exact where it matters, and a rolled-back job or another process
 * (batonctl) can only make it count sooner. bench/RESULTS.md: this count was a fifth of
 * the storage thread's work per chat message.
 */
#define QUEUED_TTL_MS 10000
#define QUEUED_MAX    100000 /* owners remembered before the memory starts over */

struct queued {
	long n;
	uint64_t at;
};

static void
queued_forget_all(struct sq_store *s)
{
	const char *k;
	void *v;

	for (size_t it = 0; hmap_next(&s->queued, &it, &k, &v);)
		free(v);
	hmap_free(&s->queued);
}

static void
queued_add(struct sq_store *s, const char *owner, long delta)
{
	struct queued *q = hmap_get(&s->queued, owner);

	if (q) {
		q->n += delta;
		if (q->n < 0)
			q->n = 0;
	}
}

/*
 * Count and insert run in one savepoint, so inside the storage thread's batch (which
 * holds the write lock) no other writer can slip a message in between and overshoot
 * the quota.
 */
static int
sq_offline_put(struct store *st, const struct store_offline_msg *m, long quota, int64_t *id)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt;
	sqlite3_int64 new_id = 0;
	long n;
	int rc, r = 0;

	if (!m->owner || !m->sender || !m->stanza) {
		log_error("store: offline message without owner, sender or stanza");
		return STORE_EIO;
	}
	struct queued *q = quota > 0 ? hmap_get(&s->queued, m->owner) : NULL;
	uint64_t now = now_ms();
	/* Count and insert are one operation; an insert alone is one statement, atomic as is. */
	bool count = quota > 0 && (!q || q->n >= quota / 2 || now - q->at > QUEUED_TTL_MS);
	if (count && sq_op_begin(s) < 0)
		return STORE_EIO;
	if (count) {
		stmt = s->stmt[S_OFF_QUOTA];
		sqlite3_bind_text(stmt, 1, m->owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 2, quota);
		sqlite3_bind_int64(stmt, 3, m->stamp_ms); /* expired ones wait for the sweep only */
		n = sq_count(s, S_OFF_QUOTA);
		if (n < 0) {
			r = (int)n;
		} else {
			if (!q) {
				if (s->queued.count >= QUEUED_MAX)
					queued_forget_all(s);
				q = xcalloc(1, sizeof *q);
				hmap_put(&s->queued, m->owner, q);
			}
			q->n = n;
			q->at = now;
			if (n >= quota)
				r = STORE_EQUOTA;
		}
	}
	if (r == 0) {
		stmt = s->stmt[S_OFF_INSERT];
		sqlite3_bind_text(stmt, 1, m->owner, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, m->sender, -1, SQLITE_STATIC);
		/* TEXT with an explicit length: stored byte for byte (the database is UTF-8). */
		sqlite3_bind_text64(stmt, 3, m->stanza, m->len, SQLITE_STATIC, SQLITE_UTF8);
		sqlite3_bind_int64(stmt, 4, m->stamp_ms);
		sqlite3_bind_int64(stmt, 5, m->expires_ms);
		rc = sq_exec(s, S_OFF_INSERT);
		if (rc == SQLITE_DONE)
			new_id = sqlite3_last_insert_rowid(s->db);
		else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			r = STORE_ENOENT; /* no such account */
		else
			r = sq_fail(s, rc, "storing an offline message");
	}
	if (count)
		r = sq_op_end(s, r);
	if (r == 0) {
		*id = new_id;
		queued_add(s, m->owner, 1);
	}
	return r;
}

/*
 * Fills m from a row (id, [owner,] sender, stanza, stamp, expires); the owner column is
 * there when has_owner. Returns false for a row with a NULL (impossible under NOT NULL;
 * such a row is never handed out).
 */
static bool
sq_offline_row(sqlite3_stmt *stmt, bool has_owner, struct store_offline_msg *m)
{
	int c = has_owner ? 2 : 1;

	m->id = sqlite3_column_int64(stmt, 0);
	if (has_owner)
		m->owner = (const char *)sqlite3_column_text(stmt, 1);
	m->sender = (const char *)sqlite3_column_text(stmt, c);
	/* column_text before column_bytes, so the length is that of the text form. */
	m->stanza = (const char *)sqlite3_column_text(stmt, c + 1);
	m->len = (size_t)sqlite3_column_bytes(stmt, c + 1);
	m->stamp_ms = sqlite3_column_int64(stmt, c + 2);
	m->expires_ms = sqlite3_column_int64(stmt, c + 3);
	return m->owner && m->sender && m->stanza;
}

/* fn must not call into the store: the statement is mid-step while it runs. */
static int
sq_offline_load(struct store *st, const char *owner, int64_t after, int64_t now_ms, size_t limit,
		void (*fn)(void *arg, const struct store_offline_msg *m), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_OFF_LOAD];
	int rc;

	sqlite3_bind_text(stmt, 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, after);
	sqlite3_bind_int64(stmt, 3, now_ms);
	sqlite3_bind_int64(stmt, 4, sq_limit(limit));
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_offline_msg m = {.owner = owner};
		if (sq_offline_row(stmt, false, &m))
			fn(arg, &m);
	}
	return sq_finish(s, S_OFF_LOAD, rc);
}

static int
sq_offline_delete(struct store *st, const char *owner, int64_t upto)
{
	struct sq_store *s = sq(st);
	int rc;

	sqlite3_bind_text(s->stmt[S_OFF_DEL], 1, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->stmt[S_OFF_DEL], 2, upto);
	rc = sq_exec(s, S_OFF_DEL);
	if (rc != SQLITE_DONE)
		return sq_fail(s, rc, "deleting offline messages");
	queued_add(s, owner, -(long)sqlite3_changes(s->db));
	return 0;
}

static int
sq_offline_delete_ids(struct store *st, const char *owner, const int64_t *ids, size_t n)
{
	struct sq_store *s = sq(st);
	int rc;

	for (size_t i = 0; i < n; i++) {
		sqlite3_bind_text(s->stmt[S_OFF_DEL_ID], 1, owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s->stmt[S_OFF_DEL_ID], 2, ids[i]);
		rc = sq_exec(s, S_OFF_DEL_ID);
		if (rc != SQLITE_DONE)
			return sq_fail(s, rc, "deleting delivered messages");
		queued_add(s, owner, -(long)sqlite3_changes(s->db));
	}
	return 0;
}

static long
sq_offline_count(struct store *st, const char *owner)
{
	struct sq_store *s = sq(st);

	sqlite3_bind_text(s->stmt[S_OFF_COUNT], 1, owner, -1, SQLITE_STATIC);
	return sq_count(s, S_OFF_COUNT);
}

/*
 * Selects the first limit expired rows in (expires, id) order, hands each to fn, then
 * deletes every row up to the last one seen in that order: the same rows, in one
 * savepoint, without keeping a list of ids. fn must not call into the store.
 */
static long
sq_offline_expire(struct store *st, int64_t now_ms, size_t limit,
		  void (*fn)(void *arg, const struct store_offline_msg *m), void *arg)
{
	struct sq_store *s = sq(st);
	sqlite3_stmt *stmt = s->stmt[S_OFF_EXPIRED];
	sqlite3_int64 last_expires = 0, last_id = 0, n = 0;
	bool any = false;
	int rc, r;

	if (sq_op_begin(s) < 0)
		return STORE_EIO;
	sqlite3_bind_int64(stmt, 1, now_ms);
	sqlite3_bind_int64(stmt, 2, sq_limit(limit));
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_offline_msg m = {0};
		bool ok = sq_offline_row(stmt, true, &m);
		last_expires = m.expires_ms;
		last_id = m.id;
		any = true;
		if (fn && ok)
			fn(arg, &m);
	}
	r = sq_finish(s, S_OFF_EXPIRED, rc);
	if (r == 0 && any) {
		stmt = s->stmt[S_OFF_EXPIRE_DEL];
		sqlite3_bind_int64(stmt, 1, last_expires);
		sqlite3_bind_int64(stmt, 2, last_id);
		rc = sq_exec(s, S_OFF_EXPIRE_DEL);
		queued_forget_all(s); /* rows of many owners went */
		if (rc == SQLITE_DONE)
			n = sqlite3_changes64(s->db);
		else
			r = sq_fail(s, rc, "deleting expired offline messages");
	}
	r = sq_op_end(s, r);
	if (r < 0)
		return r;
	return n > LONG_MAX ? LONG_MAX : (long)n;
}

/* ---- open, migrate, close ---- */

/* Formats "<path>: <what>: <sqlite message>" into err. */
static void
open_error(struct sq_store *s, const char *what, char *err, size_t errlen)
{
	const char *msg = s->db ? sqlite3_errmsg(s->db) : "out of memory";
	int sys = s->db ? sqlite3_system_errno(s->db) : 0;

	if (sys)
		snprintf(err, errlen, "%s: %s: %s (%s)", s->path, what, msg, strerror(sys));
	else
		snprintf(err, errlen, "%s: %s: %s", s->path, what, msg);
}

/* Runs a PRAGMA that answers one text row into out (may be NULL); returns an SQLite code. */
static int
pragma(struct sq_store *s, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *stmt;
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL);

	if (rc != SQLITE_OK)
		return rc;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(stmt, 0);
		if (out)
			snprintf(out, outlen, "%s", v ? v : "");
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Returns the schema version recorded in the database (0 if none), or -1 on error. */
static int
schema_version(struct sq_store *s)
{
	sqlite3_stmt *stmt;
	int rc, v = -1;

	rc = sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_version", -1,
				&stmt, NULL);
	if (rc != SQLITE_OK)
		return -1;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		v = sqlite3_column_int(stmt, 0);
	if (sqlite3_finalize(stmt) != SQLITE_OK)
		v = -1;
	return v;
}

static int
schema_record(struct sq_store *s, int version)
{
	sqlite3_stmt *stmt;
	int rc;

	rc = sqlite3_prepare_v2(s->db,
				"INSERT INTO schema_version (version, applied) VALUES (?1, ?2)", -1,
				&stmt, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int(stmt, 1, version);
	sqlite3_bind_int64(stmt, 2, wall_ms() / 1000);
	rc = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * Brings the schema to SQ_SCHEMA_VERSION in one IMMEDIATE transaction, so two processes
 * opening a fresh database at once do not both migrate. Returns 0 or -1 with err set.
 */
static int
migrate(struct sq_store *s, char *err, size_t errlen)
{
	int v;

	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		open_error(s, "cannot begin the schema check", err, errlen);
		return -1;
	}
	if (sqlite3_exec(s->db,
			 "CREATE TABLE IF NOT EXISTS schema_version ("
			 " version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT NULL)",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    (v = schema_version(s)) < 0) {
		open_error(s, "cannot read the schema version", err, errlen);
		goto fail;
	}
	if (v > SQ_SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "%s: database schema version %d is newer than this baton (%d)", s->path, v,
			 SQ_SCHEMA_VERSION);
		goto fail;
	}
	for (; v < SQ_SCHEMA_VERSION; v++) {
		if (sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
		    schema_record(s, v + 1) != SQLITE_OK) {
			char what[64];
			snprintf(what, sizeof what, "migration to schema version %d failed", v + 1);
			open_error(s, what, err, errlen);
			goto fail;
		}
		log_debug("store: %s: schema migrated to version %d", s->path, v + 1);
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		open_error(s, "cannot commit the schema", err, errlen);
		goto fail;
	}
	return 0;
fail:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static void
sq_close(struct store *st)
{
	struct sq_store *s = sq(st);
	int rc;

	if (!s)
		return;
	for (size_t i = 0; i < S_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	queued_forget_all(s);
	/* The last connection to close checkpoints the WAL into the main file. */
	rc = sqlite3_close(s->db);
	if (rc != SQLITE_OK)
		log_error("store: %s: close: %s", s->path, sqlite3_errstr(rc));
	free(s->path);
	free(s);
}

static struct store *
sq_open(const struct config *cfg, char *err, size_t errlen)
{
	const char *dir = cfg->data_dir && *cfg->data_dir ? cfg->data_dir : ".";
	const char *sync_sql = NULL;
	struct sq_store *s;
	struct buf path = {0};
	char mode[32] = "", cache_sql[64];
	int rc;

	for (size_t i = 0; i < ARRAY_LEN(sync_modes); i++) {
		if (cfg->storage_sync && strcmp(cfg->storage_sync, sync_modes[i].name) == 0)
			sync_sql = sync_modes[i].sql;
	}
	if (!sync_sql) {
		snprintf(err, errlen, "unknown storage.synchronous '%s' (expected normal or full)",
			 cfg->storage_sync ? cfg->storage_sync : "");
		return NULL;
	}
	/* Only the directory itself is created: a missing parent is likely a typo. */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
		return NULL;
	}

	s = xcalloc(1, sizeof *s);
	s->base.be = &store_sqlite_backend;
	buf_printf(&path, "%s/baton.db", dir);
	s->path = buf_steal(&path);
	rc =
	    sqlite3_open_v2(s->path, &s->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		open_error(s, "cannot open", err, errlen);
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* batond and batonctl share the file: a writer waits for the other's write lock. */
	sqlite3_busy_timeout(s->db, SQ_BUSY_MS);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

	/* The first statement that reads the file: a non-database fails here. */
	rc = pragma(s, "PRAGMA journal_mode = WAL", mode, sizeof mode);
	if (rc != SQLITE_OK) {
		open_error(s, "cannot open", err, errlen);
		goto fail;
	}
	if (strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "%s: cannot enable WAL (journal mode stays '%s')", s->path,
			 mode);
		goto fail;
	}
	/*
	 * A negative cache_size is KiB. SQLite's default, 2 MB, sent the archive's index pages
	 * back to the kernel on every write with the archive on: pread/pwrite were a fifth of
	 * the storage thread at 16,000 msg/s (bench/RESULTS.md).
	 */
	snprintf(cache_sql, sizeof cache_sql, "PRAGMA cache_size = -%zu",
		 cfg->storage_cache / 1024 ? cfg->storage_cache / 1024 : 1);
	if (pragma(s, sync_sql, NULL, 0) != SQLITE_OK ||
	    pragma(s, "PRAGMA foreign_keys = ON", NULL, 0) != SQLITE_OK ||
	    pragma(s, cache_sql, NULL, 0) != SQLITE_OK) {
		open_error(s, "cannot configure", err, errlen);
		goto fail;
	}
	if (migrate(s, err, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&s->stmt[i], NULL);
		if (rc != SQLITE_OK) {
			open_error(s, "cannot prepare statements", err, errlen);
			goto fail;
		}
	}
	return &s->base;
fail:
	sq_close(&s->base);
	return NULL;
}

const struct store_backend store_sqlite_backend = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .job_begin = sq_job_begin,
    .job_end = sq_job_end,
    .in_transaction = sq_in_transaction,
    .account_create = sq_account_create,
    .account_creds = sq_account_creds,
    .account_set_creds = sq_account_set_creds,
    .account_delete = sq_account_delete,
    .account_list = sq_account_list,
    .account_count = sq_account_count,
    .roster_load = sq_roster_load,
    .roster_put = sq_roster_put,
    .roster_del = sq_roster_del,
    .offline_put = sq_offline_put,
    .offline_load = sq_offline_load,
    .offline_delete = sq_offline_delete,
    .offline_delete_ids = sq_offline_delete_ids,
    .offline_count = sq_offline_count,
    .offline_expire = sq_offline_expire,
    .archive_put = sq_archive_put,
    .archive_query = sq_archive_query,
    .archive_clear = sq_archive_clear,
    .room_archive_put = sq_room_archive_put,
    .room_archive_query = sq_room_archive_query,
    .room_archive_clear = sq_room_archive_clear,
    .private_get = sq_private_get,
    .private_set = sq_private_set,
    .block_list = sq_block_list,
    .block_set = sq_block_set,
    .transfer_put = sq_transfer_put,
    .transfer_del = sq_transfer_del,
    .transfer_list = sq_transfer_list,
    .sms_slot_put = sq_sms_slot_put,
    .sms_slot_state = sq_sms_slot_state,
    .sms_slots = sq_sms_slots,
    .sms_links = sq_sms_links,
    .sms_queue_put = sq_sms_queue_put,
    .sms_queue_list = sq_sms_queue_list,
    .sms_queue_del = sq_sms_queue_del,
    .sms_queue_count = sq_sms_queue_count,
    .sms_kv_set = sq_sms_kv_set,
    .sms_kv_get = sq_sms_kv_get,
    .sms_kv_del = sq_sms_kv_del,
    .roster_owners = sq_roster_owners,
    .identity_get = sq_identity_get,
    .identity_set = sq_identity_set,
    .identity_log_add = sq_identity_log_add,
    .identity_log = sq_identity_log,
    .room_put = sq_room_put,
    .room_get = sq_room_get,
    .room_delete = sq_room_delete,
    .room_list = sq_room_list,
    .room_affiliations = sq_room_affiliations,
    .room_set_affiliation = sq_room_set_affiliation,
    .invite_put = sq_invite_put,
    .invite_get = sq_invite_get,
    .invite_use = sq_invite_use,
    .invite_del = sq_invite_del,
    .invite_list = sq_invite_list,
    .push_set = sq_push_set,
    .push_del = sq_push_del,
    .push_list = sq_push_list,
    .pep_node_get = sq_pep_node_get,
    .pep_node_put = sq_pep_node_put,
    .pep_node_del = sq_pep_node_del,
    .pep_node_count = sq_pep_node_count,
    .pep_nodes = sq_pep_nodes,
    .pep_item_put = sq_pep_item_put,
    .pep_item_del = sq_pep_item_del,
    .pep_trim = sq_pep_trim,
    .pep_items = sq_pep_items,
};
