/*
 * store_helpers: what test_store and test_store_archive share: a temporary root per test
 * binary, opening a store on a directory there, raw SQL on a database file, and the
 * collectors of the offline, archive, private, block and room callbacks. Every function is
 * static inline, so a test that uses only some of them compiles without unused warnings.
 */
#ifndef BATON_TEST_STORE_HELPERS_H
#define BATON_TEST_STORE_HELPERS_H

#include <errno.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "store/store.h"

#include "check.h"

static char root[64];

/* Silences the store's own log lines around failures the test provokes on purpose. */
static int saved_level;
static inline void
quiet(void)
{
	saved_level = log_level_current;
	log_level_current = -1;
}
static inline void
loud(void)
{
	log_level_current = saved_level;
}

/* Returns a path under the test root (static storage, one of a few rotating slots). */
static inline const char *
tpath(const char *name)
{
	static char slots[4][256];
	static int next;
	char *p = slots[next++ % 4];
	snprintf(p, 256, "%s/%s", root, name);
	return p;
}

static inline void
cfg_init(struct config *c, const char *dir)
{
	char err[256];

	config_defaults(c);
	if (config_set(c, "server.data", dir, err, sizeof err) < 0)
		fatal("config_set: %s", err);
}

static inline struct store *
open_dir(const char *dir)
{
	struct config c;
	char err[512] = "";
	struct store *st;

	cfg_init(&c, dir);
	st = store_open(&c, err, sizeof err);
	config_free(&c);
	if (!st)
		printf("store_open(%s): %s\n", dir, err);
	return st;
}

static inline int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Makes the binary's temporary root /tmp/<name>.XXXXXX; the store logs errors only. */
static inline void
store_tests_start(const char *name)
{
	snprintf(root, sizeof root, "/tmp/%s.XXXXXX", name);
	if (!mkdtemp(root))
		fatal("mkdtemp: %s", strerror(errno));
	log_set_level("error");
}

/* Removes the temporary root and prints the summary line; returns the exit status. */
static inline int
store_tests_finish(const char *name)
{
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return check_summary(name);
}

/* ---- collectors ---- */

struct names {
	char list[16][64];
	int n;
};

static inline void
collect(void *arg, const char *jid)
{
	struct names *nm = arg;
	if (nm->n < 16)
		snprintf(nm->list[nm->n], 64, "%s", jid);
	nm->n++;
}

static inline int
block_load(struct store *st, const char *owner, struct names *nm)
{
	memset(nm, 0, sizeof *nm);
	return store_block_list(st, owner, collect, nm);
}

static inline bool
private_is(struct store *st, const char *owner, const char *key, const char *want)
{
	struct buf b = {0};
	bool ok = store_private_get(st, owner, key, &b) == 0 && buf_used(&b) == strlen(want) &&
		  memcmp(buf_head(&b), want, strlen(want)) == 0;
	buf_free(&b);
	return ok;
}

/* ---- offline messages (XEP-0160) ---- */

#define NOW 1700000000000LL /* a fixed wall clock, so expiry is deterministic */

/* What a store_offline_load/expire callback saw: copies, since pointers die after the call. */
struct seen {
	int n;
	int64_t id[16], stamp[16], expires[16];
	char owner[16][64], sender[16][64];
	char *stanza[16];
	size_t len[16];
	bool terminated[16]; /* stanza[len] was NUL */
};

static inline void
seen_add(void *arg, const struct store_offline_msg *m)
{
	struct seen *sn = arg;
	int i = sn->n++;

	if (i >= 16)
		return;
	sn->id[i] = m->id;
	sn->stamp[i] = m->stamp_ms;
	sn->expires[i] = m->expires_ms;
	snprintf(sn->owner[i], 64, "%s", m->owner);
	snprintf(sn->sender[i], 64, "%s", m->sender);
	sn->stanza[i] = xmalloc(m->len + 1);
	memcpy(sn->stanza[i], m->stanza, m->len);
	sn->stanza[i][m->len] = '\0';
	sn->len[i] = m->len;
	sn->terminated[i] = m->stanza[m->len] == '\0';
}

static inline void
seen_free(struct seen *sn)
{
	for (int i = 0; i < sn->n && i < 16; i++)
		free(sn->stanza[i]);
	memset(sn, 0, sizeof *sn);
}

static inline int
seen_load(struct store *st, const char *owner, int64_t after, int64_t now, size_t limit,
	  struct seen *sn)
{
	seen_free(sn);
	return store_offline_load(st, owner, after, now, limit, seen_add, sn);
}

/* Stores a message with stanza text, stamp NOW and the given expiry; returns its id or < 0. */
static inline int64_t
put(struct store *st, const char *owner, const char *text, int64_t expires, long quota)
{
	struct store_offline_msg m = {
	    .owner = owner,
	    .sender = "s@y/r",
	    .stanza = text,
	    .len = strlen(text),
	    .stamp_ms = NOW,
	    .expires_ms = expires,
	};
	int64_t id = -7;
	int r = store_offline_put(st, &m, quota, &id);

	return r < 0 ? r : id;
}

/* ---- raw SQL on a database file ---- */

/* Runs sql on the database file, answering the first column of the last row into out. */
static inline int
sql_file(const char *path, const char *sql, char *out, size_t outlen)
{
	sqlite3 *db;
	sqlite3_stmt *stmt;
	const char *tail = sql;
	int rc = sqlite3_open(path, &db);

	if (out)
		out[0] = '\0';
	while (rc == SQLITE_OK && *tail) {
		rc = sqlite3_prepare_v2(db, tail, -1, &stmt, &tail);
		if (rc != SQLITE_OK || !stmt)
			break;
		while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
			const char *v = (const char *)sqlite3_column_text(stmt, 0);
			if (out)
				snprintf(out, outlen, "%s", v ? v : "");
		}
		sqlite3_finalize(stmt);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	if (rc != SQLITE_OK)
		printf("sql_file(%s): %s\n", path, sqlite3_errmsg(db));
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Counts owner's rows in table on the raw file; -1 on error. */
static inline long
rows_of(const char *dir, const char *table, const char *owner)
{
	char sql[256], out[32], db[300];

	snprintf(db, sizeof db, "%s/baton.db", dir);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s WHERE owner = '%s'", table, owner);
	if (sql_file(db, sql, out, sizeof out) < 0)
		return -1;
	return strtol(out, NULL, 10);
}

/* Counts the rows of sql's count(*) on dir's raw file; -1 on error. */
static inline long
count_raw(const char *dir, const char *sql)
{
	char out[32], db[300];

	snprintf(db, sizeof db, "%s/baton.db", dir);
	if (sql_file(db, sql, out, sizeof out) < 0)
		return -1;
	return strtol(out, NULL, 10);
}

/* ---- the message archive (XEP-0313) ---- */

/* What one archive page delivered: ids in order, and how many rows broke an expectation. */
struct apage {
	int n;
	int64_t id[1200];
	const char *owner; /* every row must carry this owner */
	const char *with;  /* NULL, or every row must be with this JID */
	int bad;	   /* rows with a wrong owner, with, stamp, direction or stanza */
	char first[128];   /* the first row's stanza and with, copied */
	char first_with[64];
};

/* The 1000-message archive of a@x below: message i has this id, peer, stamp and text. */
#define ARC_N 1000
static inline int64_t
arc_id(int i)
{
	return 1000 + 10 * (int64_t)i; /* gaps, so bounds between ids are exercised */
}
static const char *const arc_peers[] = {"w0@y", "w1@y", "w2@y"};
static inline int64_t
arc_stamp(int i)
{
	return NOW + 1000 * (int64_t)i;
}

static inline void
apage_add(void *arg, const struct store_archive_msg *m)
{
	struct apage *p = arg;
	int64_t i = (m->id - 1000) / 10;
	char want[64];

	if (p->n < (int)ARRAY_LEN(p->id))
		p->id[p->n] = m->id;
	if (p->n == 0) {
		snprintf(p->first, sizeof p->first, "%.*s", (int)m->len, m->stanza);
		snprintf(p->first_with, sizeof p->first_with, "%s", m->with);
	}
	p->n++;
	if (strcmp(m->owner, p->owner) != 0 || (p->with && strcmp(m->with, p->with) != 0) ||
	    m->stanza[m->len] != '\0') {
		p->bad++;
		return;
	}
	/* Rows of a@x's generated archive must come back exactly as stored. */
	if (strcmp(p->owner, "a@x") == 0 && m->id >= 1000 && (m->id - 1000) % 10 == 0 &&
	    i < ARC_N) {
		snprintf(want, sizeof want, "<message id='m%lld'/>", (long long)i);
		if (strcmp(m->with, arc_peers[i % 3]) != 0 || m->stamp_ms != arc_stamp((int)i) ||
		    m->outgoing != (i % 2 == 1) || m->len != strlen(want) ||
		    strcmp(m->stanza, want) != 0)
			p->bad++;
	}
}

/* Either archive's query: store_archive_query or store_room_archive_query. */
typedef int arc_query_fn(struct store *st, const struct store_archive_query *q,
			 void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
			 bool *complete);
typedef int arc_put_fn(struct store *st, const struct store_archive_msg *m);

/* Runs q on one archive into p; returns the store's result. *complete is poisoned first. */
static inline int
apage_query(arc_query_fn *query, struct store *st, const struct store_archive_query *q,
	    struct apage *p, bool *complete)
{
	memset(p, 0, sizeof *p);
	p->owner = q->owner;
	p->with = q->with;
	*complete = (bool)(rand() & 1);
	return query(st, q, apage_add, p, complete);
}

static inline int
apage_run(struct store *st, const struct store_archive_query *q, struct apage *p, bool *complete)
{
	return apage_query(store_archive_query, st, q, p, complete);
}

static inline int
rpage_run(struct store *st, const struct store_archive_query *q, struct apage *p, bool *complete)
{
	return apage_query(store_room_archive_query, st, q, p, complete);
}

/* ---- multi-user chat rooms (XEP-0045) ---- */

struct rooms {
	char jid[16][64];
	char config[16][64];
	int n;
};

static inline void
room_collect(void *arg, const char *jid, const char *config)
{
	struct rooms *rm = arg;
	if (rm->n < 16) {
		snprintf(rm->jid[rm->n], 64, "%s", jid);
		snprintf(rm->config[rm->n], 64, "%s", config);
	}
	rm->n++;
}

static inline int
room_list(struct store *st, struct rooms *rm)
{
	memset(rm, 0, sizeof *rm);
	return store_room_list(st, room_collect, rm);
}

/* True if the room is stored with exactly this configuration and subject. */
static inline bool
room_is(struct store *st, const char *jid, const char *config, const char *subject)
{
	struct buf c = {0}, sj = {0};
	bool ok = store_room_get(st, jid, &c, &sj) == 0 && buf_used(&c) == strlen(config) &&
		  memcmp(buf_head(&c), config, buf_used(&c)) == 0 &&
		  buf_used(&sj) == strlen(subject) &&
		  memcmp(buf_head(&sj), subject, buf_used(&sj)) == 0;
	buf_free(&c);
	buf_free(&sj);
	return ok;
}

struct affs {
	char jid[16][64];
	int aff[16];
	int n;
};

static inline void
aff_collect(void *arg, const char *jid, int affiliation)
{
	struct affs *a = arg;
	if (a->n < 16) {
		snprintf(a->jid[a->n], 64, "%s", jid);
		a->aff[a->n] = affiliation;
	}
	a->n++;
}

static inline int
aff_load(struct store *st, const char *room, struct affs *a)
{
	memset(a, 0, sizeof *a);
	return store_room_affiliations(st, room, aff_collect, a);
}

#endif
