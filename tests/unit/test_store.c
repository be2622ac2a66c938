/*
 * test_store: unit tests of the store (SQLite backend) and the storage thread, on real
 * databases in a temporary directory. Covers opening (broken files, a newer schema, the data
 * directory), persistence across reopen, account and roster semantics, migration from the
 * frozen v1, v2, v3 and v4 schemas to the current one with every kind of data kept, and the
 * thread's batching, savepoints, completion delivery to real loops and draining at stop.
 * The offline queue, archives, private storage, block lists and rooms are in
 * test_store_archive.c; what both share is in store_helpers.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "store/store.h"
#include "store/store_sqlite.h"

#include "check.h"
#include "store_helpers.h"

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
		fatal("cannot write %s", path);
}

/* ---- open errors ---- */

struct open_case {
	const char *name;
	const char *backend, *sync; /* NULL = default */
	const char *dir;	    /* under root */
	const void *db;		    /* contents written to dir/baton.db first, or NULL */
	size_t dblen;
	bool file_as_dir; /* dir is created as a regular file */
	bool ok;
	const char *want; /* substring of err */
	bool want_path;	  /* err names dir */
};

static const char sqlite_magic_junk[] =
    "SQLite format 3\0\x10\0\x01\x01\0@  garbage garbage garbage "
    "garbage garbage garbage garbage garbage garbage garbage";

static const char not_a_db[] =
    "This is a text file that someone put where the database should be. It is long\n"
    "enough to cover SQLite's 100-byte header, so only the magic tells it apart.\n";

static const struct open_case open_cases[] = {
    {"unknown backend", "mysql", NULL, "o-backend", NULL, 0, false, false,
     "unknown storage backend 'mysql'", false},
    {"empty backend", "", NULL, "o-backend2", NULL, 0, false, false, "unknown storage backend ''",
     false},
    {"bad synchronous", NULL, "sometimes", "o-sync", NULL, 0, false, false, "'sometimes'", false},
    {"missing parent", NULL, NULL, "o-missing/sub", NULL, 0, false, false,
     "No such file or directory", true},
    {"data dir is a file", NULL, NULL, "o-file", NULL, 0, true, false, "baton.db", true},
    {"not a database", NULL, NULL, "o-text", not_a_db, 0, false, false, "not a database", true},
    {"sqlite magic then garbage", NULL, NULL, "o-junk", sqlite_magic_junk, sizeof sqlite_magic_junk,
     false, false, "baton.db", true},
    {"empty file is a new database", NULL, NULL, "o-empty", "", 0, false, true, NULL, false},
    {"synchronous full", NULL, "full", "o-full", NULL, 0, false, true, NULL, false},
};

static void
test_open_errors(void)
{
	for (size_t i = 0; i < ARRAY_LEN(open_cases); i++) {
		const struct open_case *oc = &open_cases[i];
		const char *dir = tpath(oc->dir);
		struct config c;
		char err[512] = "", dbpath[300];
		struct store *st;

		if (oc->file_as_dir)
			write_file(dir, "x", 1);
		if (oc->db) {
			size_t n = oc->dblen ? oc->dblen : strlen(oc->db);
			if (mkdir(dir, 0700) < 0)
				fatal("mkdir %s", dir);
			snprintf(dbpath, sizeof dbpath, "%s/baton.db", dir);
			write_file(dbpath, oc->db, n);
		}
		cfg_init(&c, dir);
		if (oc->backend) {
			free(c.storage_backend);
			c.storage_backend = xstrdup(oc->backend);
		}
		if (oc->sync) {
			free(c.storage_sync);
			c.storage_sync = xstrdup(oc->sync);
		}
		quiet();
		st = store_open(&c, err, sizeof err);
		loud();
		config_free(&c);
		CHECK((st != NULL) == oc->ok, "%s: open %s (err '%s')", oc->name,
		      st ? "succeeded" : "failed", err);
		if (!oc->ok) {
			CHECK(strstr(err, oc->want) != NULL, "%s: err '%s' lacks '%s'", oc->name,
			      err, oc->want);
			CHECK(!oc->want_path || strstr(err, dir) != NULL, "%s: err '%s' lacks '%s'",
			      oc->name, err, dir);
			CHECK(strchr(err, '\n') == NULL, "%s: err is not one line", oc->name);
		}
		store_close(st);
	}
}

/* storage.cache becomes SQLite's page cache limit (PRAGMA cache_size, negative = KiB). */
static void
test_cache_size(void)
{
	const char *dir = tpath("cache");
	char err[512] = "";
	struct config c;
	struct store *st;
	sqlite3_stmt *q;

	cfg_init(&c, dir);
	CHECK(config_set(&c, "storage.cache", "8M", err, sizeof err) == 0, "%s", err);
	st = store_open(&c, err, sizeof err);
	config_free(&c);
	CHECK(st != NULL, "open: %s", err);
	if (!st)
		return;
	CHECK(sqlite3_prepare_v2(sq(st)->db, "PRAGMA cache_size", -1, &q, NULL) == SQLITE_OK &&
		  sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == -8192,
	      "cache_size is not storage.cache");
	sqlite3_finalize(q);
	store_close(st);
}

static void
test_data_dir_created(void)
{
	const char *dir = tpath("created");
	struct store *st = open_dir(dir);
	struct stat sb;

	CHECK(st != NULL, "open of a new directory failed");
	CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700,
	      "data dir mode %o, want 0700", (unsigned)(sb.st_mode & 0777));
	CHECK(stat(tpath("created/baton.db"), &sb) == 0, "baton.db not created");
	CHECK(stat(tpath("created/baton.db-wal"), &sb) == 0, "no WAL file while open");
	store_close(st);
	/* Reopening an existing, current database must not migrate again or fail. */
	st = open_dir(dir);
	CHECK(st != NULL, "reopen failed");
	store_close(st);
	st = open_dir(dir);
	CHECK(st != NULL, "second reopen failed");
	store_close(st);
}

/* ---- accounts ---- */

static bool
creds_are(struct store *st, const char *jid, const void *want, size_t n)
{
	struct buf b = {0};
	bool ok = store_account_creds(st, jid, &b) == 0 && buf_used(&b) == n &&
		  memcmp(buf_head(&b), want, n) == 0;
	buf_free(&b);
	return ok;
}

static void
test_accounts(void)
{
	const char *dir = tpath("accounts");
	struct store *st = open_dir(dir);
	static const char bin[] = {'s', 0, 1, (char)0xff, 0};
	struct buf b = {0};
	struct names nm = {0};
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_count(st) == 0, "new store has %ld accounts", store_account_count(st));
	CHECK((r = store_account_create(st, "b@x", "one", 3)) == 0, "create b: %d", r);
	CHECK((r = store_account_create(st, "b@x", "two", 3)) == STORE_EEXIST, "dup create: %d", r);
	CHECK(creds_are(st, "b@x", "one", 3), "creds of b changed by the failed duplicate");
	CHECK((r = store_account_create(st, "c@x", bin, sizeof bin)) == 0, "create c: %d", r);
	CHECK(creds_are(st, "c@x", bin, sizeof bin), "binary creds do not round-trip");
	CHECK((r = store_account_create(st, "a@x", NULL, 0)) == 0, "create with empty creds: %d",
	      r);
	CHECK(creds_are(st, "a@x", "", 0), "empty creds do not round-trip");

	buf_puts(&b, "keep");
	CHECK((r = store_account_creds(st, "nobody@x", &b)) == STORE_ENOENT, "creds missing: %d",
	      r);
	CHECK(buf_used(&b) == 4 && memcmp(buf_head(&b), "keep", 4) == 0, "out changed on ENOENT");
	CHECK(store_account_creds(st, "b@x", &b) == 0 && buf_used(&b) == 7 &&
		  memcmp(buf_head(&b), "keepone", 7) == 0,
	      "creds not appended to out");
	buf_free(&b);

	CHECK((r = store_account_set_creds(st, "b@x", "three", 5)) == 0, "set_creds: %d", r);
	CHECK(creds_are(st, "b@x", "three", 5), "set_creds not visible");
	CHECK((r = store_account_set_creds(st, "nobody@x", "z", 1)) == STORE_ENOENT,
	      "set_creds missing: %d", r);
	CHECK(store_account_count(st) == 3, "count %ld, want 3", store_account_count(st));

	CHECK(store_account_list(st, collect, &nm) == 0 && nm.n == 3, "list gave %d", nm.n);
	CHECK(nm.n == 3 && strcmp(nm.list[0], "a@x") == 0 && strcmp(nm.list[1], "b@x") == 0 &&
		  strcmp(nm.list[2], "c@x") == 0,
	      "list not in JID order: %s %s %s", nm.list[0], nm.list[1], nm.list[2]);

	CHECK((r = store_account_delete(st, "c@x")) == 0, "delete: %d", r);
	CHECK((r = store_account_delete(st, "c@x")) == STORE_ENOENT, "delete twice: %d", r);
	CHECK((r = store_account_creds(st, "c@x", &b)) == STORE_ENOENT, "deleted creds: %d", r);
	CHECK(store_account_count(st) == 2, "count after delete %ld", store_account_count(st));

	/* Transactions of a synchronous caller (batonctl). */
	CHECK(store_begin(st) == 0, "begin");
	quiet();
	CHECK(store_begin(st) == STORE_EIO, "nested begin accepted");
	loud();
	CHECK(store_account_create(st, "t@x", "t", 1) == 0, "create in txn");
	CHECK(store_rollback(st) == 0, "rollback");
	CHECK(store_account_creds(st, "t@x", &b) == STORE_ENOENT, "rolled-back account exists");
	CHECK(store_begin(st) == 0 && store_account_create(st, "t@x", "t", 1) == 0 &&
		  store_commit(st) == 0,
	      "begin/create/commit");
	quiet();
	CHECK(store_commit(st) == STORE_EIO, "commit without begin accepted");
	loud();
	store_close(st);

	st = open_dir(dir);
	CHECK(st != NULL, "reopen failed");
	if (!st)
		return;
	CHECK(store_account_count(st) == 3, "count after reopen %ld", store_account_count(st));
	CHECK(creds_are(st, "b@x", "three", 5), "creds lost across reopen");
	CHECK(creds_are(st, "t@x", "t", 1), "committed account lost across reopen");
	store_close(st);
}

/* Two connections to one database, as batond and batonctl: each sees the other's commits. */
static void
test_two_connections(void)
{
	const char *dir = tpath("two");
	struct store *a = open_dir(dir), *b = open_dir(dir);
	struct buf out = {0};

	CHECK(a && b, "open twice failed");
	if (!a || !b) {
		store_close(a);
		store_close(b);
		return;
	}
	CHECK(store_account_create(a, "u@x", "p", 1) == 0, "create on a");
	CHECK(store_account_creds(b, "u@x", &out) == 0, "b does not see a's account");
	CHECK(store_begin(b) == 0 && store_account_delete(b, "u@x") == 0, "delete in b's txn");
	CHECK(store_account_count(a) == 1, "a sees b's uncommitted delete");
	CHECK(store_commit(b) == 0, "commit b");
	CHECK(store_account_count(a) == 0, "a misses b's committed delete");
	buf_free(&out);
	store_close(a);
	store_close(b);
}

/* ---- roster ---- */

struct rost {
	uint64_t ver;
	int n;
	char contact[8][64], name[8][64], groups[8][64];
	bool has_name[8];
	struct store_roster_item it[8];
};

static void
rost_add(void *arg, const struct store_roster_item *it)
{
	struct rost *r = arg;
	if (r->n < 8) {
		int i = r->n;
		snprintf(r->contact[i], 64, "%s", it->contact);
		r->has_name[i] = it->name != NULL;
		snprintf(r->name[i], 64, "%s", it->name ? it->name : "");
		snprintf(r->groups[i], 64, "%s", it->groups ? it->groups : "");
		r->it[i] = *it;
	}
	r->n++;
}

static int
rost_load(struct store *st, const char *owner, struct rost *r)
{
	memset(r, 0, sizeof *r);
	r->ver = 12345;
	return store_roster_load(st, owner, &r->ver, rost_add, r);
}

static void
test_roster(void)
{
	const char *dir = tpath("roster");
	struct store *st = open_dir(dir);
	struct store_roster_item bob = {"bob@y", "Bob", "Friends\nWork", STORE_SUB_BOTH, false,
					false,	 false};
	struct store_roster_item al = {"al@y", NULL, NULL, STORE_SUB_NONE, true, true, true};
	struct store_roster_item bad = {"eve@y", NULL, NULL, 7, false, false, false};
	struct rost r;
	int rc;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "o@x", "c", 1) == 0, "create owner");
	CHECK(store_account_create(st, "p@x", "c", 1) == 0, "create other owner");
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == 0 && r.n == 0,
	      "fresh roster: ver %llu n %d", (unsigned long long)r.ver, r.n);
	CHECK(rost_load(st, "ghost@x", &r) == 0 && r.ver == 0 && r.n == 0,
	      "roster of a missing account is not empty");

	CHECK((rc = store_roster_put(st, "o@x", &bob, 1)) == 0, "put bob: %d", rc);
	CHECK((rc = store_roster_put(st, "o@x", &al, 2)) == 0, "put al: %d", rc);
	CHECK(store_roster_put(st, "p@x", &bob, 9) == 0, "put bob for p");
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == 2 && r.n == 2, "load: ver %llu n %d",
	      (unsigned long long)r.ver, r.n);
	CHECK(strcmp(r.contact[0], "al@y") == 0 && strcmp(r.contact[1], "bob@y") == 0,
	      "not ordered by contact: %s %s", r.contact[0], r.contact[1]);
	CHECK(!r.has_name[0] && r.groups[0][0] == 0 && r.it[0].sub == STORE_SUB_NONE &&
		  r.it[0].ask && r.it[0].pending_in && r.it[0].hidden,
	      "al's fields wrong");
	CHECK(r.has_name[1] && strcmp(r.name[1], "Bob") == 0 &&
		  strcmp(r.groups[1], "Friends\nWork") == 0 && r.it[1].sub == STORE_SUB_BOTH &&
		  !r.it[1].ask && !r.it[1].pending_in && !r.it[1].hidden,
	      "bob's fields wrong: name '%s' groups '%s' sub %d", r.name[1], r.groups[1],
	      r.it[1].sub);

	/* Upsert replaces every field, including clearing the name and groups. */
	bob.name = NULL;
	bob.groups = "";
	bob.sub = STORE_SUB_TO;
	bob.ask = true;
	CHECK(store_roster_put(st, "o@x", &bob, 3) == 0, "update bob");
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == 3 && r.n == 2,
	      "after update: ver %llu n %d", (unsigned long long)r.ver, r.n);
	CHECK(!r.has_name[1] && r.groups[0][0] == 0 && r.it[1].sub == STORE_SUB_TO && r.it[1].ask,
	      "update not applied");

	CHECK(store_roster_del(st, "o@x", "al@y", 4) == 0, "del al");
	CHECK(store_roster_del(st, "o@x", "nobody@y", 5) == 0, "del absent is not a no-op success");
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == 5 && r.n == 1 &&
		  strcmp(r.contact[0], "bob@y") == 0,
	      "after del: ver %llu n %d", (unsigned long long)r.ver, r.n);

	/* Large versions survive the signed SQL integer. */
	CHECK(store_roster_del(st, "o@x", "nobody@y", UINT64_MAX - 1) == 0, "del with huge ver");
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == UINT64_MAX - 1, "huge ver: %llu",
	      (unsigned long long)r.ver);

	CHECK((rc = store_roster_put(st, "ghost@x", &bob, 1)) == STORE_ENOENT,
	      "put for a missing account: %d", rc);
	CHECK((rc = store_roster_del(st, "ghost@x", "bob@y", 1)) == STORE_ENOENT,
	      "del for a missing account: %d", rc);
	quiet();
	CHECK((rc = store_roster_put(st, "o@x", &bad, 6)) == STORE_EIO, "bad sub accepted: %d", rc);
	loud();
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == UINT64_MAX - 1 && r.n == 1,
	      "failed put changed the roster");

	/* A failed put inside a caller's transaction leaves the transaction usable. */
	CHECK(store_begin(st) == 0, "begin");
	CHECK(store_roster_put(st, "ghost@x", &bob, 1) == STORE_ENOENT, "put ghost in txn");
	CHECK(store_roster_del(st, "o@x", "bob@y", 7) == 0, "del in txn after failure");
	CHECK(store_commit(st) == 0, "commit after a failed put");
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == 7 && r.n == 0, "txn result: ver %llu n %d",
	      (unsigned long long)r.ver, r.n);
	CHECK(store_roster_put(st, "o@x", &bob, 8) == 0, "put bob again");
	store_close(st);

	st = open_dir(dir);
	CHECK(st != NULL, "reopen failed");
	if (!st)
		return;
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == 8 && r.n == 1, "roster lost on reopen");
	/* Deleting the account takes its roster and version with it, not others'. */
	CHECK(store_account_delete(st, "o@x") == 0, "delete owner");
	CHECK(store_account_create(st, "o@x", "c", 1) == 0, "recreate owner");
	CHECK(rost_load(st, "o@x", &r) == 0 && r.ver == 0 && r.n == 0,
	      "roster survived account deletion: ver %llu n %d", (unsigned long long)r.ver, r.n);
	CHECK(rost_load(st, "p@x", &r) == 0 && r.ver == 9 && r.n == 1, "other roster damaged");
	store_close(st);
}

/* ---- schema version ---- */

static void
test_schema_newer(void)
{
	const char *dir = tpath("schema");
	char cmd[512], err[512] = "";
	struct store *st = open_dir(dir);
	struct config c;

	CHECK(st != NULL, "open failed");
	store_close(st);
	if (system("command -v sqlite3 >/dev/null 2>&1") != 0) {
		printf("test_store: sqlite3 command missing, schema-version check skipped\n");
		return;
	}
	snprintf(cmd, sizeof cmd,
		 "sqlite3 '%s/baton.db' 'INSERT INTO schema_version VALUES (99, 0)'", dir);
	CHECK(system(cmd) == 0, "%s failed", cmd);
	cfg_init(&c, dir);
	st = store_open(&c, err, sizeof err);
	config_free(&c);
	CHECK(st == NULL, "opened a database from the future");
	CHECK(strstr(err, "database schema version 99 is newer than this baton (11)") != NULL,
	      "err '%s'", err);
	CHECK(strstr(err, dir) != NULL, "err '%s' lacks the path", err);
	store_close(st);
}

/* ---- the storage thread ---- */

/* A counter other threads wait on. */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int count;
};

static struct waiter w_done = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void
waiter_add(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	w->count++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void
waiter_wait(struct waiter *w, int n)
{
	pthread_mutex_lock(&w->mu);
	while (w->count < n)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void
waiter_reset(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	w->count = 0;
	pthread_mutex_unlock(&w->mu);
}

/* A gate: run() of a gate job blocks the storage thread until the test opens it. */
static struct waiter gate_started = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
static struct waiter gate_open = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

enum tjob_kind { TJ_CREATE, TJ_CREATE_THEN_EIO, TJ_CREATE_THEN_DUP, TJ_GATE };

struct tjob {
	struct store_job job;
	enum tjob_kind kind;
	char jid[64];
	pthread_t ran_on;
	int seen_result;
	bool done_on_runner, done_off_loop;
	bool done;
};

static int
tjob_run(struct store *st, struct store_job *job)
{
	struct tjob *j = container_of(job, struct tjob, job);
	int r;

	j->ran_on = pthread_self();
	switch (j->kind) {
	case TJ_GATE:
		waiter_add(&gate_started);
		waiter_wait(&gate_open, 1);
		return 0;
	case TJ_CREATE:
		return store_account_create(st, j->jid, "c", 1);
	case TJ_CREATE_THEN_EIO:
		r = store_account_create(st, j->jid, "c", 1);
		return r < 0 ? r : STORE_EIO;
	case TJ_CREATE_THEN_DUP:
		r = store_account_create(st, j->jid, "c", 1);
		return r < 0 ? r : store_account_create(st, "a@x", "c", 1);
	}
	return STORE_EIO;
}

static void
tjob_done(struct store_job *job)
{
	struct tjob *j = container_of(job, struct tjob, job);

	j->seen_result = job->result;
	j->done_on_runner = pthread_equal(pthread_self(), j->ran_on);
	j->done_off_loop = loop_current() == NULL;
	j->done = true;
	waiter_add(&w_done);
}

static void
tjob_init(struct tjob *j, enum tjob_kind kind, const char *jid)
{
	memset(j, 0, sizeof *j);
	j->kind = kind;
	snprintf(j->jid, sizeof j->jid, "%s", jid ? jid : "");
	j->job.run = tjob_run;
	j->job.done = tjob_done;
}

static bool
exists(struct store *st, const char *jid)
{
	struct buf b = {0};
	int r = store_account_creds(st, jid, &b);
	buf_free(&b);
	return r == 0;
}

/* Opens the gate job's batch and waits until the storage thread is blocked in it. */
static void
gate_close_and_submit(struct store_thread *t, struct tjob *gate)
{
	waiter_reset(&gate_started);
	waiter_reset(&gate_open);
	tjob_init(gate, TJ_GATE, NULL);
	store_submit(t, &gate->job);
	waiter_wait(&gate_started, 1);
}

/*
 * One batch: a, a job that writes then fails with EIO, c, and a job that writes then
 * gets EEXIST. Only the failed job's write is undone.
 */
static void
test_thread_savepoints(void)
{
	const char *dir = tpath("savepoints");
	struct store *st = open_dir(dir);
	struct store_thread *t;
	struct tjob gate, jobs[4];
	pthread_t self = pthread_self();

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	t = store_thread_start(st, 0);
	waiter_reset(&w_done);
	gate_close_and_submit(t, &gate);
	tjob_init(&jobs[0], TJ_CREATE, "a@x");
	tjob_init(&jobs[1], TJ_CREATE_THEN_EIO, "b@x");
	tjob_init(&jobs[2], TJ_CREATE, "c@x");
	tjob_init(&jobs[3], TJ_CREATE_THEN_DUP, "d@x");
	for (int i = 0; i < 4; i++)
		store_submit(t, &jobs[i].job);
	waiter_add(&gate_open);
	waiter_wait(&w_done, 5);
	CHECK(jobs[0].seen_result == 0, "a: %d", jobs[0].seen_result);
	CHECK(jobs[1].seen_result == STORE_EIO, "b: %d", jobs[1].seen_result);
	CHECK(jobs[2].seen_result == 0, "c: %d", jobs[2].seen_result);
	CHECK(jobs[3].seen_result == STORE_EEXIST, "d: %d", jobs[3].seen_result);
	/* Fire-and-forget jobs complete on the storage thread itself. */
	for (int i = 0; i < 4; i++) {
		CHECK(jobs[i].done_on_runner && jobs[i].done_off_loop &&
			  !pthread_equal(jobs[i].ran_on, self),
		      "job %d: done() not on the storage thread", i);
	}
	store_thread_stop(t);

	st = open_dir(dir);
	if (!st) {
		CHECK(0, "reopen failed");
		return;
	}
	CHECK(exists(st, "a@x"), "a was rolled back with b");
	CHECK(!exists(st, "b@x"), "b's write survived its EIO");
	CHECK(exists(st, "c@x"), "c was lost after b failed");
	CHECK(exists(st, "d@x"), "EEXIST undid d's earlier write");
	CHECK(store_account_count(st) == 3, "count %ld", store_account_count(st));
	store_close(st);
}

/* store_thread_stop runs the jobs still queued before it returns. */
static void *
open_gate_later(void *arg)
{
	sleep_ms(100);
	waiter_add(&gate_open);
	return NULL;
}

static void
test_thread_stop_drains(void)
{
	const char *dir = tpath("drain");
	struct store *st = open_dir(dir);
	struct store_thread *t;
	struct tjob gate, *jobs;
	pthread_t opener;
	int n = 100, ndone = 0;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	jobs = xcalloc((size_t)n, sizeof *jobs);
	t = store_thread_start(st, 50);
	waiter_reset(&w_done);
	gate_close_and_submit(t, &gate);
	for (int i = 0; i < n; i++) {
		char jid[64];
		snprintf(jid, sizeof jid, "q%03d@x", i);
		tjob_init(&jobs[i], TJ_CREATE, jid);
		store_submit(t, &jobs[i].job);
	}
	pthread_create(&opener, NULL, open_gate_later, NULL);
	store_thread_stop(t); /* blocks until the gate opens and the queue is drained */
	pthread_join(opener, NULL);
	for (int i = 0; i < n; i++)
		ndone += jobs[i].done && jobs[i].seen_result == 0;
	CHECK(ndone == n, "%d of %d queued jobs completed by stop", ndone, n);
	free(jobs);

	st = open_dir(dir);
	if (!st) {
		CHECK(0, "reopen failed");
		return;
	}
	CHECK(store_account_count(st) == n, "%ld of %d accounts persisted", store_account_count(st),
	      n);
	store_close(st);
}

/*
 * batonctl holding the write lock: the storage thread waits for it (busy timeout), and
 * if it is held past the timeout, the batch fails with EIO and later batches work.
 */
static void *
commit_later(void *arg)
{
	sleep_ms(200);
	if (store_commit(arg) != 0)
		printf("commit_later: commit failed\n");
	return NULL;
}

static void
test_thread_locked(void)
{
	const char *dir = tpath("locked");
	struct store *st = open_dir(dir), *ctl = open_dir(dir);
	struct store_thread *t;
	struct tjob j1, j2, j3, j4;
	pthread_t committer;

	if (!st || !ctl) {
		CHECK(0, "open failed");
		store_close(st);
		store_close(ctl);
		return;
	}
	/* batch_ms groups j2 and j3 into one batch, so the test waits out one timeout. */
	t = store_thread_start(st, 100);
	waiter_reset(&w_done);

	/* Short hold: the job waits and succeeds. */
	CHECK(store_begin(ctl) == 0 && store_account_create(ctl, "ctl@x", "c", 1) == 0, "ctl txn");
	tjob_init(&j1, TJ_CREATE, "w@x");
	store_submit(t, &j1.job);
	pthread_create(&committer, NULL, commit_later, ctl);
	waiter_wait(&w_done, 1);
	pthread_join(committer, NULL);
	CHECK(j1.seen_result == 0, "job behind a short lock: %d", j1.seen_result);

	/* Hold past the busy timeout: the whole batch gets EIO, nothing is written. */
	CHECK(store_begin(ctl) == 0 && store_account_create(ctl, "ctl2@x", "c", 1) == 0,
	      "ctl txn 2");
	tjob_init(&j2, TJ_CREATE, "x@x");
	tjob_init(&j3, TJ_CREATE, "y@x");
	quiet();
	store_submit(t, &j2.job);
	store_submit(t, &j3.job);
	waiter_wait(&w_done, 3);
	loud();
	CHECK(j2.seen_result == STORE_EIO && j3.seen_result == STORE_EIO,
	      "jobs behind a long lock: %d %d", j2.seen_result, j3.seen_result);
	CHECK(store_rollback(ctl) == 0, "ctl rollback");
	tjob_init(&j4, TJ_CREATE, "z@x");
	store_submit(t, &j4.job);
	waiter_wait(&w_done, 4);
	CHECK(j4.seen_result == 0, "job after the lock is gone: %d", j4.seen_result);
	store_thread_stop(t);

	CHECK(exists(ctl, "ctl@x") && exists(ctl, "w@x") && exists(ctl, "z@x"),
	      "committed accounts missing");
	CHECK(!exists(ctl, "x@x") && !exists(ctl, "y@x") && !exists(ctl, "ctl2@x"),
	      "failed writes persisted");
	store_close(ctl);
}

/* ---- producers on real loops ---- */

#define NPROD	 2
#define PER_PROD 5000

struct producer {
	int id;
	struct loop *loop;
	struct store_thread *t;
	pthread_t tid;
	int next_seq, completed;
	int wrong_loop, out_of_order, bad_result;
};

struct pjob {
	struct store_job job;
	struct producer *p;
	int seq;
};

static int
pjob_run(struct store *st, struct store_job *job)
{
	struct pjob *j = container_of(job, struct pjob, job);
	char jid[64];

	snprintf(jid, sizeof jid, "p%d-%05d@x", j->p->id, j->seq);
	return store_account_create(st, jid, &j->seq, sizeof j->seq);
}

static void
pjob_done(struct store_job *job)
{
	struct pjob *j = container_of(job, struct pjob, job);
	struct producer *p = j->p;

	if (loop_current() != p->loop)
		p->wrong_loop++;
	if (j->seq != p->next_seq)
		p->out_of_order++;
	p->next_seq = j->seq + 1;
	if (job->result != 0)
		p->bad_result++;
	free(j); /* done() owns the job */
	if (++p->completed == PER_PROD)
		loop_stop(p->loop);
}

/* Submits from inside the running loop, as an I/O worker would. */
static void
producer_kick(struct loop *loop, struct mail *m)
{
	struct producer *p = loop_data(loop);

	free(m);
	for (int i = 0; i < PER_PROD; i++) {
		struct pjob *j = xcalloc(1, sizeof *j);
		j->p = p;
		j->seq = i;
		j->job.loop = loop;
		j->job.run = pjob_run;
		j->job.done = pjob_done;
		store_submit(p->t, &j->job);
	}
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;

	loop_run(p->loop);
	return NULL;
}

static void
test_thread_producers(void)
{
	const char *dir = tpath("producers");
	struct store *st = open_dir(dir);
	struct producer prod[NPROD];
	struct store_thread *t;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	t = store_thread_start(st, 1);
	for (int i = 0; i < NPROD; i++) {
		struct mail *m = xcalloc(1, sizeof *m);
		prod[i] = (struct producer){.id = i, .loop = loop_new(i + 1), .t = t};
		loop_set_data(prod[i].loop, &prod[i]);
		m->fn = producer_kick;
		loop_post(prod[i].loop, m);
	}
	for (int i = 0; i < NPROD; i++)
		pthread_create(&prod[i].tid, NULL, producer_main, &prod[i]);
	for (int i = 0; i < NPROD; i++)
		pthread_join(prod[i].tid, NULL);
	store_thread_stop(t);
	for (int i = 0; i < NPROD; i++) {
		struct producer *p = &prod[i];
		CHECK(p->completed == PER_PROD, "producer %d: %d completions", i, p->completed);
		CHECK(p->wrong_loop == 0, "producer %d: %d done() on the wrong thread", i,
		      p->wrong_loop);
		CHECK(p->out_of_order == 0, "producer %d: %d completions out of order", i,
		      p->out_of_order);
		CHECK(p->bad_result == 0, "producer %d: %d failed jobs", i, p->bad_result);
		loop_free(p->loop);
	}

	st = open_dir(dir);
	if (!st) {
		CHECK(0, "reopen failed");
		return;
	}
	CHECK(store_account_count(st) == NPROD * PER_PROD, "%ld accounts persisted, want %d",
	      store_account_count(st), NPROD * PER_PROD);
	CHECK(exists(st, "p0-00000@x") && exists(st, "p1-04999@x"), "first/last account missing");
	store_close(st);
}

/* Offline writes as storage-thread jobs: the quota refusal undoes only that job. */
struct ojob {
	struct store_job job;
	int64_t id;
};

static int
ojob_run(struct store *st, struct store_job *job)
{
	struct ojob *j = container_of(job, struct ojob, job);
	struct store_offline_msg m = {0, "t@x", "s@y", "<message/>", 10, NOW, NOW + 1};

	return store_offline_put(st, &m, 3, &j->id);
}

static void
ojob_done(struct store_job *job)
{
	waiter_add(&w_done);
}

static void
test_offline_thread(void)
{
	const char *dir = tpath("offline-thread");
	struct store *st = open_dir(dir);
	struct store_thread *t;
	struct tjob gate, after;
	struct ojob jobs[4];

	if (!st || store_account_create(st, "t@x", "c", 1) < 0) {
		CHECK(0, "open failed");
		store_close(st);
		return;
	}
	memset(jobs, 0, sizeof jobs);
	t = store_thread_start(st, 0);
	waiter_reset(&w_done);
	gate_close_and_submit(t, &gate);
	for (int i = 0; i < 4; i++) {
		jobs[i].job.run = ojob_run;
		jobs[i].job.done = ojob_done;
		store_submit(t, &jobs[i].job);
	}
	tjob_init(&after, TJ_CREATE, "after@x");
	store_submit(t, &after.job);
	waiter_add(&gate_open);
	waiter_wait(&w_done, 6);
	for (int i = 0; i < 3; i++)
		CHECK(jobs[i].job.result == 0 && jobs[i].id > (i ? jobs[i - 1].id : 0),
		      "job %d: %d id %lld", i, jobs[i].job.result, (long long)jobs[i].id);
	CHECK(jobs[3].job.result == STORE_EQUOTA, "job 3: %d", jobs[3].job.result);
	CHECK(after.seen_result == 0, "job after EQUOTA: %d", after.seen_result);
	store_thread_stop(t);
	st = open_dir(dir);
	CHECK(st && store_offline_count(st, "t@x") == 3 && exists(st, "after@x"),
	      "batch with a refused put did not commit the rest");
	store_close(st);
}

/* ---- schema migration ---- */

/* The v1 schema as released, frozen here: a database from before the offline queue. */
static const char schema_v1[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, applied INTEGER NOT "
    "NULL);"
    "INSERT INTO schema_version VALUES (1, 1700000000);"
    "CREATE TABLE accounts (jid TEXT NOT NULL PRIMARY KEY, creds BLOB NOT NULL,"
    " created INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE roster (owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " contact TEXT NOT NULL, name TEXT, \"groups\" TEXT, sub INTEGER NOT NULL DEFAULT 0,"
    " ask INTEGER NOT NULL DEFAULT 0, pending_in INTEGER NOT NULL DEFAULT 0,"
    " hidden INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (owner, contact)) WITHOUT ROWID;"
    "CREATE TABLE roster_version (owner TEXT NOT NULL PRIMARY KEY REFERENCES accounts(jid)"
    " ON DELETE CASCADE, ver INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO accounts VALUES ('old@x', X'00c3a9', 1700000000);"
    "INSERT INTO accounts VALUES ('older@x', 'pw', 1600000000);"
    "INSERT INTO roster (owner, contact, name, sub) VALUES ('old@x', 'f@y', 'F', 3);"
    "INSERT INTO roster_version VALUES ('old@x', 42);";

/*
 * Builds dir/baton.db from the n frozen schema scripts (v1, then each later version's
 * extra), then opens it; NULL after a failed check if either step fails.
 */
static struct store *
open_frozen(const char *dir, const char *const *scripts, size_t n)
{
	char db[300];
	struct store *st;

	snprintf(db, sizeof db, "%s/baton.db", dir);
	if (mkdir(dir, 0700) < 0) {
		CHECK(0, "mkdir %s: %s", dir, strerror(errno));
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (sql_file(db, scripts[i], NULL, 0) < 0) {
			CHECK(0, "cannot create the v%zu database", n);
			return NULL;
		}
	}
	st = open_dir(dir);
	CHECK(st != NULL, "v%zu database did not open", n);
	return st;
}

/* Checks that db records every migration up to the current version, once, in order. */
static void
check_versions(const char *db, const char *when)
{
	char out[64];

	CHECK(sql_file(db, "SELECT group_concat(version) FROM schema_version", out, sizeof out) ==
		      0 &&
		  strcmp(out, "1,2,3,4,5,6,7,8,9,10,11") == 0,
	      "%s: schema versions '%s', want 1,2,3,4,5,6,7,8,9,10,11", when, out);
}

static void
test_offline_migration(void)
{
	const char *dir = tpath("v1");
	const char *db = tpath("v1/baton.db");
	static const char bin[] = {0, (char)0xc3, (char)0xa9};
	struct seen sn = {0};
	struct rost r;
	struct store *st;
	int64_t id;

	st = open_frozen(dir, (const char *const[]){schema_v1}, 1);
	if (!st)
		return;
	CHECK(store_account_count(st) == 2 && creds_are(st, "old@x", bin, sizeof bin) &&
		  creds_are(st, "older@x", "pw", 2),
	      "accounts lost in the migration: %ld", store_account_count(st));
	CHECK(rost_load(st, "old@x", &r) == 0 && r.ver == 42 && r.n == 1 &&
		  strcmp(r.contact[0], "f@y") == 0 && r.it[0].sub == STORE_SUB_BOTH,
	      "roster lost in the migration");
	CHECK((id = put(st, "old@x", "<message/>", NOW + 1, 1)) > 0, "put after migration");
	CHECK(put(st, "old@x", "<message/>", NOW + 1, 1) == STORE_EQUOTA, "quota after migration");
	CHECK(put(st, "new@x", "<message/>", NOW + 1, 0) == STORE_ENOENT,
	      "foreign key missing after migration");
	CHECK(seen_load(st, "old@x", 0, NOW, 0, &sn) == 0 && sn.n == 1 && sn.id[0] == id,
	      "load after migration");
	/* v1 goes through every version to the last in one transaction: the archive exists too. */
	CHECK(store_archive_put(
		  st, &(struct store_archive_msg){1, "old@x", "f@y", "<m/>", 4, NOW, false}) == 0,
	      "archive after migration from v1");
	store_close(st);

	check_versions(db, "after migration");
	/* Reopening a current database changes nothing. */
	st = open_dir(dir);
	CHECK(st && store_offline_count(st, "old@x") == 1 && store_account_count(st) == 2,
	      "reopen after migration");
	CHECK(st && store_account_delete(st, "old@x") == 0 && store_offline_count(st, "old@x") == 0,
	      "cascade missing after migration");
	store_close(st);
	check_versions(db, "after reopen");
	seen_free(&sn);
}

/* The v2 schema as released (v1 plus the offline queue), frozen here. */
static const char schema_v2_extra[] =
    "INSERT INTO schema_version VALUES (2, 1710000000);"
    "CREATE TABLE offline (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " sender TEXT NOT NULL, stanza TEXT NOT NULL, stamp INTEGER NOT NULL,"
    " expires INTEGER NOT NULL);"
    "CREATE INDEX offline_owner ON offline (owner, id);"
    "CREATE INDEX offline_expires ON offline (expires);"
    "INSERT INTO offline (owner, sender, stanza, stamp, expires)"
    " VALUES ('old@x', 's@y/r', '<message>kept</message>', 1700000000000, 9000000000000);";

static void
test_archive_migration(void)
{
	const char *dir = tpath("v2");
	const char *db = tpath("v2/baton.db");
	struct store_archive_query q = {.owner = "old@x", .max = 10};
	struct store_archive_msg m = {5, "old@x", "f@y", "<m/>", 4, NOW, false};
	struct seen sn = {0};
	struct names nm;
	struct apage p;
	struct rost r;
	struct store *st;
	bool complete;

	st = open_frozen(dir, (const char *const[]){schema_v1, schema_v2_extra}, 2);
	if (!st)
		return;
	CHECK(store_account_count(st) == 2 && creds_are(st, "older@x", "pw", 2),
	      "accounts lost in the migration");
	CHECK(rost_load(st, "old@x", &r) == 0 && r.ver == 42 && r.n == 1, "roster lost");
	CHECK(seen_load(st, "old@x", 0, NOW, 0, &sn) == 0 && sn.n == 1 &&
		  strcmp(sn.stanza[0], "<message>kept</message>") == 0,
	      "offline message lost: %d", sn.n);
	/* An offline id after the migration still follows the old ones. */
	CHECK(put(st, "old@x", "<message/>", NOW + 1, 0) > sn.id[0], "offline id reused");
	CHECK(store_archive_put(st, &m) == 0 && store_archive_put(st, &m) == STORE_EEXIST,
	      "archive after migration");
	m.owner = "new@x";
	m.id = 6;
	CHECK(store_archive_put(st, &m) == STORE_ENOENT, "archive foreign key missing");
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 1 && p.id[0] == 5 && complete,
	      "archive query after migration: %d", p.n);
	CHECK(store_private_set(st, "old@x", "k ns", "<k/>", 4) == 0 &&
		  private_is(st, "old@x", "k ns", "<k/>"),
	      "private after migration");
	CHECK(store_block_set(st, "old@x", "f@y", false) == 0 &&
		  block_load(st, "old@x", &nm) == 0 && nm.n == 1,
	      "block list after migration");
	store_close(st);
	check_versions(db, "after migration");
	st = open_dir(dir);
	CHECK(st && store_account_delete(st, "old@x") == 0, "delete after migration");
	store_close(st);
	CHECK(rows_of(dir, "archive", "old@x") == 0 && rows_of(dir, "private", "old@x") == 0 &&
		  rows_of(dir, "blocklist", "old@x") == 0 && rows_of(dir, "offline", "old@x") == 0,
	      "cascade missing after migration");
	check_versions(db, "after reopen");
	seen_free(&sn);
}

/* The v3 schema as released (v2 plus archive, private storage, block lists), frozen here. */
static const char schema_v3_extra[] =
    "INSERT INTO schema_version VALUES (3, 1720000000);"
    "CREATE TABLE archive (id INTEGER PRIMARY KEY,"
    " owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " with_jid TEXT NOT NULL, stamp INTEGER NOT NULL, outgoing INTEGER NOT NULL,"
    " stanza TEXT NOT NULL);"
    "CREATE INDEX archive_owner ON archive (owner, id);"
    "CREATE INDEX archive_with ON archive (owner, with_jid, id);"
    "CREATE TABLE private (owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " key TEXT NOT NULL, xml TEXT NOT NULL, PRIMARY KEY (owner, key)) WITHOUT ROWID;"
    "CREATE TABLE blocklist (owner TEXT NOT NULL REFERENCES accounts(jid) ON DELETE CASCADE,"
    " jid TEXT NOT NULL, PRIMARY KEY (owner, jid)) WITHOUT ROWID;"
    "INSERT INTO archive VALUES (7, 'old@x', 'f@y', 1700000000000, 1, '<m>old</m>');"
    "INSERT INTO private VALUES ('old@x', 'k ns', '<k>old</k>');"
    "INSERT INTO blocklist VALUES ('old@x', 'spam@z');";

static void
test_room_migration(void)
{
	const char *dir = tpath("v3");
	const char *db = tpath("v3/baton.db");
	struct store_archive_query q = {.owner = "old@x", .max = 10};
	struct seen sn = {0};
	struct names nm;
	struct apage p;
	struct affs a;
	struct rooms rm;
	struct rost r;
	struct store *st;
	bool complete;

	st =
	    open_frozen(dir, (const char *const[]){schema_v1, schema_v2_extra, schema_v3_extra}, 3);
	if (!st)
		return;
	CHECK(store_account_count(st) == 2 && creds_are(st, "older@x", "pw", 2),
	      "accounts lost in the migration");
	CHECK(rost_load(st, "old@x", &r) == 0 && r.ver == 42 && r.n == 1, "roster lost");
	CHECK(seen_load(st, "old@x", 0, NOW, 0, &sn) == 0 && sn.n == 1 &&
		  strcmp(sn.stanza[0], "<message>kept</message>") == 0,
	      "offline message lost: %d", sn.n);
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 1 && p.id[0] == 7 && complete,
	      "archive lost: %d", p.n);
	CHECK(private_is(st, "old@x", "k ns", "<k>old</k>"), "private data lost");
	CHECK(block_load(st, "old@x", &nm) == 0 && nm.n == 1 && strcmp(nm.list[0], "spam@z") == 0,
	      "block list lost: %d", nm.n);
	/* The new tables work, foreign key and cascade included. */
	CHECK(room_list(st, &rm) == 0 && rm.n == 0, "migrated store has %d rooms", rm.n);
	CHECK(store_room_put(st, "r@conf.x", "<c/>", "s") == 0 &&
		  room_is(st, "r@conf.x", "<c/>", "s"),
	      "room after migration");
	CHECK(store_room_set_affiliation(st, "r@conf.x", "old@x", 1) == 0 &&
		  aff_load(st, "r@conf.x", &a) == 0 && a.n == 1,
	      "affiliation after migration");
	CHECK(store_room_set_affiliation(st, "ghost@conf.x", "old@x", 1) == STORE_ENOENT,
	      "room foreign key missing after migration");
	store_close(st);
	check_versions(db, "after migration");
	st = open_dir(dir);
	CHECK(st && store_room_delete(st, "r@conf.x") == 0, "delete room after migration");
	CHECK(st && store_account_delete(st, "old@x") == 0, "delete account after migration");
	store_close(st);
	CHECK(count_raw(dir, "SELECT count(*) FROM room_affiliations") == 0,
	      "room cascade missing after migration");
	CHECK(rows_of(dir, "archive", "old@x") == 0 && rows_of(dir, "private", "old@x") == 0 &&
		  rows_of(dir, "blocklist", "old@x") == 0,
	      "account cascade missing after migration");
	check_versions(db, "after reopen");
	seen_free(&sn);
}

/* The v4 schema as released (v3 plus rooms and affiliations), frozen here. */
static const char schema_v4_extra[] =
    "INSERT INTO schema_version VALUES (4, 1730000000);"
    "CREATE TABLE rooms (jid TEXT NOT NULL PRIMARY KEY, config TEXT NOT NULL,"
    " subject TEXT NOT NULL, updated INTEGER) WITHOUT ROWID;"
    "CREATE TABLE room_affiliations (room TEXT NOT NULL REFERENCES rooms(jid)"
    " ON DELETE CASCADE, jid TEXT NOT NULL, affiliation INTEGER NOT NULL,"
    " PRIMARY KEY (room, jid)) WITHOUT ROWID;"
    "INSERT INTO rooms VALUES ('r@conf.x', '<c>old</c>', 'Old', 1730000000000);"
    "INSERT INTO room_affiliations VALUES ('r@conf.x', 'old@x', 1);";

static void
test_room_archive_migration(void)
{
	const char *dir = tpath("v4");
	const char *db = tpath("v4/baton.db");
	struct store_archive_query q = {.owner = "r@conf.x", .max = 10};
	struct store_archive_msg m = {7, "r@conf.x", "r@conf.x/n", "<m>new</m>", 10, NOW, false};
	struct apage p;
	struct affs a;
	struct store *st;
	bool complete;

	st = open_frozen(
	    dir,
	    (const char *const[]){schema_v1, schema_v2_extra, schema_v3_extra, schema_v4_extra}, 4);
	if (!st)
		return;
	CHECK(room_is(st, "r@conf.x", "<c>old</c>", "Old") && aff_load(st, "r@conf.x", &a) == 0 &&
		  a.n == 1 && strcmp(a.jid[0], "old@x") == 0,
	      "room lost in the migration");
	q.owner = "old@x";
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 1 && p.id[0] == 7 && complete,
	      "account archive lost: %d", p.n);
	/* The new table: empty, the same id as an account row, no foreign key. */
	q.owner = "r@conf.x";
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && p.n == 0 && complete, "room archive %d",
	      p.n);
	CHECK(store_room_archive_put(st, &m) == 0 && store_room_archive_put(st, &m) == STORE_EEXIST,
	      "room archive put after migration");
	m.owner = "temp@conf.x";
	m.id = 8;
	CHECK(store_room_archive_put(st, &m) == 0, "room archive has a foreign key");
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && p.n == 1 &&
		  strcmp(p.first, "<m>new</m>") == 0 && complete,
	      "room archive query after migration: %d", p.n);
	store_close(st);
	check_versions(db, "after migration");
	st = open_dir(dir);
	CHECK(st && rpage_run(st, &q, &p, &complete) == 0 && p.n == 1, "lost across reopen");
	CHECK(st && store_room_archive_clear(st, "r@conf.x") == 0, "clear after migration");
	store_close(st);
	CHECK(count_raw(dir, "SELECT count(*) FROM room_archive") == 1, "clear took other rooms");
	check_versions(db, "after reopen");
}

struct idlog {
	int n;
	char line[8][128];
};

static void
collect_idlog(void *arg, const struct store_identity_event *e)
{
	struct idlog *l = arg;
	if (l->n < 8)
		snprintf(l->line[l->n++], 128, "%s>%s:%s:%lld", e->prev ? e->prev : "-", e->next,
			 e->reason, (long long)e->gen);
}

/* Shared identity: settings round-trip, the audit trail keeps order and the newest max. */
static void
test_identity(void)
{
	struct store *st = open_dir(tpath("identity"));
	struct store_identity id = {.exclusive = true}, got;
	struct idlog l = {0};
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	store_account_create(st, "a@x", "c", 1);
	CHECK((r = store_identity_get(st, "a@x", &got)) == STORE_ENOENT && !got.exclusive,
	      "unset identity: %d", r);
	id.gen = 3;
	CHECK((r = store_identity_set(st, "a@x", &id)) == 0, "set: %d", r);
	CHECK(store_identity_get(st, "a@x", &got) == 0 && got.exclusive && !got.barring &&
		  got.gen == 3,
	      "identity does not round-trip");
	id.barring = true;
	CHECK(store_identity_set(st, "a@x", &id) == 0 && store_identity_get(st, "a@x", &got) == 0 &&
		  got.barring,
	      "identity update lost");
	quiet();
	CHECK((r = store_identity_set(st, "nobody@x", &id)) == STORE_ENOENT, "no account: %d", r);
	loud();
	for (int i = 1; i <= 3; i++) {
		char next[8];
		snprintf(next, sizeof next, "d%d", i);
		struct store_identity_event e = {i, i > 1 ? "d0" : NULL, next, "pan-enter", i};
		CHECK(store_identity_log_add(st, "a@x", &e) == 0, "log add %d", i);
	}
	CHECK(store_identity_log(st, "a@x", 2, collect_idlog, &l) == 0 && l.n == 2, "log %d", l.n);
	CHECK(l.n == 2 && strcmp(l.line[0], "d0>d2:pan-enter:2") == 0 &&
		  strcmp(l.line[1], "d0>d3:pan-enter:3") == 0,
	      "log order: %s / %s", l.line[0], l.line[1]);
	CHECK(store_account_delete(st, "a@x") == 0 &&
		  store_identity_get(st, "a@x", &got) == STORE_ENOENT,
	      "identity outlived its account");
	store_close(st);
}

struct xlist {
	int n;
	char ids[4][16];
};

static void
collect_xfer(void *arg, const char *id, const char *xml, int64_t expires)
{
	struct xlist *l = arg;
	if (l->n < 4)
		snprintf(l->ids[l->n++], 16, "%s", id);
}

/* Waiting transfers: replace by id, list the unexpired soonest first, delete, cascade. */
static void
count_invite(void *arg, const char *token, long uses, int64_t expires, int64_t created)
{
	(*(int *)arg)++;
}

static void
count_push(void *arg, const struct store_push *p)
{
	int *n = arg;
	(*n)++;
	if (strcmp(p->node, "n1") == 0 && (!p->body || strcmp(p->options, "<x/>") != 0))
		*n = -100; /* a stored registration came back changed */
}

/* Invitations (a use never goes below zero) and push registrations (gone with the account). */
static void
test_invites_push(void)
{
	struct store *st = open_dir(tpath("invites"));
	long uses = 0;
	int64_t exp = 0;
	int n = 0;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_invite_put(st, "tok", 2, 12345) == 0, "put");
	quiet();
	CHECK(store_invite_put(st, "tok", 1, 1) == STORE_EEXIST, "duplicate token");
	loud();
	CHECK(store_invite_get(st, "tok", &uses, &exp) == 0 && uses == 2 && exp == 12345, "get");
	CHECK(store_invite_get(st, "nope", &uses, &exp) == STORE_ENOENT && uses == 2,
	      "missing token: outputs unchanged");
	CHECK(store_invite_use(st, "tok") == 0 && store_invite_use(st, "tok") == 0, "two uses");
	CHECK(store_invite_use(st, "tok") == STORE_ENOENT, "a third use of two");
	CHECK(store_invite_get(st, "tok", &uses, &exp) == 0 && uses == 0, "used up, still listed");
	CHECK(store_invite_list(st, count_invite, &n) == 0 && n == 1, "list: %d", n);
	CHECK(store_invite_del(st, "tok") == 0 && store_invite_del(st, "tok") == STORE_ENOENT,
	      "revoke once");

	store_account_create(st, "p@x", "c", 1);
	struct store_push p1 = {"app@x/s", "n1", "<x/>", true}, p2 = {"app@x/s", "n2", "", false};
	CHECK(store_push_set(st, "p@x", &p1) == 0 && store_push_set(st, "p@x", &p2) == 0 &&
		  store_push_set(st, "p@x", &p1) == 0,
	      "push set (replacing)");
	quiet();
	CHECK(store_push_set(st, "nobody@x", &p1) == STORE_ENOENT, "push for no account");
	loud();
	n = 0;
	CHECK(store_push_list(st, "p@x", count_push, &n) == 0 && n == 2, "push list: %d", n);
	CHECK(store_push_del(st, "p@x", "app@x/s", "n2") == 0, "push del one");
	n = 0;
	CHECK(store_push_list(st, "p@x", count_push, &n) == 0 && n == 1, "after del: %d", n);
	CHECK(store_push_del(st, "p@x", "app@x/s", NULL) == 0, "push del all of a jid");
	n = 0;
	CHECK(store_push_list(st, "p@x", count_push, &n) == 0 && n == 0, "after del all: %d", n);
	store_push_set(st, "p@x", &p1);
	CHECK(store_account_delete(st, "p@x") == 0, "delete account");
	n = 0;
	CHECK(store_push_list(st, "p@x", count_push, &n) == 0 && n == 0, "push rows outlived it");
	store_close(st);
}

static void
test_transfers(void)
{
	struct store *st = open_dir(tpath("transfers"));
	struct xlist l = {0};

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	int64_t now = wall_ms(); /* deletion also drops rows expired by the wall clock */

	store_account_create(st, "a@x", "c", 1);
	CHECK(store_transfer_put(st, "a@x", "t1", "<x/>", now + 5000) == 0, "put t1");
	CHECK(store_transfer_put(st, "a@x", "t2", "<y/>", now + 3000) == 0, "put t2");
	CHECK(store_transfer_put(st, "a@x", "t1", "<z/>", now + 6000) == 0, "replace t1");
	CHECK(store_transfer_put(st, "a@x", "old", "<o/>", now - 100) == 0, "put old");
	quiet();
	CHECK(store_transfer_put(st, "nobody@x", "t", "<n/>", now) == STORE_ENOENT, "no account");
	loud();
	CHECK(store_transfer_list(st, "a@x", now, collect_xfer, &l) == 0 && l.n == 2 &&
		  strcmp(l.ids[0], "t2") == 0 && strcmp(l.ids[1], "t1") == 0,
	      "list: %d rows", l.n);
	CHECK(store_transfer_del(st, "a@x", "t2") == 0, "del");
	l.n = 0;
	CHECK(store_transfer_list(st, "a@x", 0, collect_xfer, &l) == 0 && l.n == 1,
	      "after del (the expired row went too): %d", l.n);
	store_account_delete(st, "a@x");
	l.n = 0;
	CHECK(store_transfer_list(st, "a@x", 0, collect_xfer, &l) == 0 && l.n == 0, "cascade");
	store_close(st);
}

/* Collects SMS rows as "dir:seq:state:text" (or queue "id:text"), comma-separated. */
static void
collect_slot(void *arg, int dir, const struct store_sms_msg *m)
{
	buf_printf(arg, "%s%d:%lld:%d:%s", buf_used(arg) ? "," : "", dir, (long long)m->seq,
		   m->state, m->text ? m->text : "-");
}

static void
collect_queued(void *arg, const struct store_sms_msg *m)
{
	buf_printf(arg, "%s%s", buf_used(arg) ? "," : "", m->text ? m->text : "-");
}

static void
collect_name(void *arg, const char *name)
{
	buf_printf(arg, "%s%s", buf_used(arg) ? "," : "", name);
}

static void
test_sms(void)
{
	struct store *st = open_dir(tpath("sms"));
	struct buf b = {0};
	int64_t id1 = 0, id2 = 0;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	struct store_sms_msg m = {
	    .seq = 1, .state = 2, .from = "alice", .to = "+461", .text = "hi", .stamp = 5};
	CHECK(store_sms_slot_put(st, "sms1", 0, 0, &m) == 0, "slot put");
	m.seq = 256; /* the same slot, a lap later, replaces it */
	m.text = "lap";
	CHECK(store_sms_slot_put(st, "sms1", 0, 0, &m) == 0, "slot replace");
	m.seq = 2;
	m.text = "mo";
	CHECK(store_sms_slot_put(st, "sms1", 1, 1, &m) == 0, "slot put mo");
	CHECK(store_sms_slot_state(st, "sms1", 1, 1, 2, 3, NULL) == 0, "confirm");
	CHECK(store_sms_slot_state(st, "sms1", 1, 1, 2, 1, NULL) == 0, "never back");
	CHECK(store_sms_slot_state(st, "sms1", 1, 1, 99, 4, NULL) == 0, "other seq: no-op");
	store_sms_slots(st, "sms1", collect_slot, &b);
	CHECK(strcmp(buf_head(&b), "0:256:2:lap,1:2:3:mo") == 0, "slots: %s", buf_head(&b));
	buf_reset(&b);
	CHECK(store_sms_slot_state(st, "sms1", 0, 0, 256, 4, "ok") == 0, "processed");
	store_sms_slots(st, "sms1", collect_slot, &b);
	CHECK(strcmp(buf_head(&b), "0:256:4:-,1:2:3:mo") == 0, "processed drops text: %s",
	      buf_head(&b));
	buf_reset(&b);

	struct store_sms_msg q = {.from = "a", .to = "+46", .text = "one", .stamp = 1};
	CHECK(store_sms_queue_put(st, "sms1", &q, &id1) == 0, "queue 1");
	q.text = "two";
	CHECK(store_sms_queue_put(st, "sms1", &q, &id2) == 0 && id2 > id1, "queue 2");
	q.text = "other";
	CHECK(store_sms_queue_put(st, "sms2", &q, &id2) == 0, "queue other link");
	CHECK(store_sms_queue_count(st, "sms1") == 2, "count");
	store_sms_queue_list(st, "sms1", id1, 10, collect_queued, &b);
	CHECK(strcmp(buf_head(&b), "two") == 0, "list after: %s", buf_head(&b));
	buf_reset(&b);
	CHECK(store_sms_queue_del(st, id1) == 0 && store_sms_queue_count(st, "sms1") == 1, "del");
	store_sms_links(st, collect_name, &b);
	CHECK(strcmp(buf_head(&b), "sms1,sms2") == 0, "links: %s", buf_head(&b));
	buf_reset(&b);

	CHECK(store_sms_kv_set(st, "last:+46", "a@x", 0) == 0, "kv set");
	CHECK(store_sms_kv_set(st, "gone", "v", wall_ms() - 1) == 0, "kv set expired");
	CHECK(store_sms_kv_get(st, "last:+46", &b) == 0 && strcmp(buf_head(&b), "a@x") == 0,
	      "kv get");
	buf_reset(&b);
	CHECK(store_sms_kv_get(st, "gone", &b) == STORE_ENOENT, "expired is absent");
	CHECK(store_sms_kv_del(st, "last:+46") == 0 &&
		  store_sms_kv_get(st, "last:+46", &b) == STORE_ENOENT,
	      "kv del");

	store_account_create(st, "a@x", "c", 1);
	store_account_create(st, "b@x", "c", 1);
	struct store_roster_item it = {.contact = "+46@sms.x", .sub = STORE_SUB_TO};
	store_roster_put(st, "b@x", &it, 1);
	store_roster_put(st, "a@x", &it, 1);
	it.hidden = true;
	it.pending_in = true;
	it.sub = 0;
	store_account_create(st, "c@x", "c", 1);
	store_roster_put(st, "c@x", &it, 1);
	store_roster_owners(st, "+46@sms.x", collect_name, &b);
	CHECK(strcmp(buf_head(&b), "a@x,b@x") == 0, "roster owners: %s", buf_head(&b));
	buf_free(&b);
	store_close(st);
}

int
main(void)
{
	store_tests_start("test_store");

	test_open_errors();
	test_data_dir_created();
	test_cache_size();
	test_accounts();
	test_two_connections();
	test_roster();
	test_schema_newer();
	test_thread_savepoints();
	test_thread_stop_drains();
	test_thread_producers();
	test_thread_locked();
	test_offline_thread();
	test_offline_migration();
	test_archive_migration();
	test_room_migration();
	test_room_archive_migration();
	test_identity();
	test_transfers();
	test_invites_push();
	test_sms();

	return store_tests_finish("test_store");
}
