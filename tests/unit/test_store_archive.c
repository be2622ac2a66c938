/*
 * test_store_archive: unit tests of the store's per-account and per-room data, on real
 * databases in a temporary directory: the offline queue (order, quota, expiry, byte-exact
 * stanzas, index use), account and room archives (paging both ways, filters, isolation of
 * the two, index use at 100k rows), private storage, block lists, persistent multi-user chat
 * rooms and their affiliations, and the cascades on account and room deletion.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "store/store.h"

#include "check.h"
#include "store_helpers.h"

/* ---- offline messages (XEP-0160) ---- */

static void
test_offline_queue(void)
{
	const char *dir = tpath("offline");
	struct store *st = open_dir(dir);
	/* id is ignored by put. */
	struct store_offline_msg m = {.id = 999,
				      .owner = "a@x",
				      .sender = "al@y/home",
				      .stanza = "<message/>",
				      .len = 10,
				      .stamp_ms = NOW,
				      .expires_ms = NOW + 1};
	struct seen sn = {0};
	int64_t ids[5], id;
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create a");
	CHECK(store_account_create(st, "b@x", "c", 1) == 0, "create b");
	CHECK(store_offline_count(st, "a@x") == 0, "new account has messages");
	CHECK(seen_load(st, "a@x", 0, NOW, 0, &sn) == 0 && sn.n == 0, "empty load gave %d", sn.n);

	/* Interleaved owners: each sees its own, in arrival order; ids increase store-wide. */
	CHECK((r = store_offline_put(st, &m, 0, &ids[0])) == 0, "put a1: %d", r);
	ids[1] = put(st, "b@x", "<message id='b1'/>", NOW + 1, 0);
	ids[2] = put(st, "a@x", "<message id='a2'/>", NOW + 5, 0);
	ids[3] = put(st, "b@x", "<message id='b2'/>", NOW + 1, 0);
	ids[4] = put(st, "a@x", "<message id='a3'/>", NOW + 9, 0);
	for (int i = 1; i < 5; i++)
		CHECK(ids[i] > ids[i - 1] && ids[i - 1] > 0, "ids not increasing: %lld then %lld",
		      (long long)ids[i - 1], (long long)ids[i]);
	CHECK(seen_load(st, "a@x", 0, NOW, 0, &sn) == 0 && sn.n == 3, "load a: %d", sn.n);
	CHECK(sn.n == 3 && sn.id[0] == ids[0] && sn.id[1] == ids[2] && sn.id[2] == ids[4],
	      "a's ids/order wrong");
	CHECK(sn.n == 3 && strcmp(sn.stanza[0], "<message/>") == 0 && sn.len[0] == 10 &&
		  strcmp(sn.stanza[1], "<message id='a2'/>") == 0 &&
		  strcmp(sn.stanza[2], "<message id='a3'/>") == 0,
	      "a's stanzas wrong: %s %s %s", sn.stanza[0], sn.stanza[1], sn.stanza[2]);
	CHECK(strcmp(sn.owner[0], "a@x") == 0 && strcmp(sn.sender[0], "al@y/home") == 0 &&
		  sn.stamp[0] == NOW && sn.expires[0] == NOW + 1 && sn.expires[2] == NOW + 9 &&
		  sn.terminated[0] && sn.terminated[2],
	      "a1's fields wrong: owner %s sender %s", sn.owner[0], sn.sender[0]);
	CHECK(seen_load(st, "b@x", 0, NOW, 0, &sn) == 0 && sn.n == 2 && sn.id[0] == ids[1] &&
		  sn.id[1] == ids[3] && strcmp(sn.stanza[1], "<message id='b2'/>") == 0,
	      "load b: %d", sn.n);
	CHECK(store_offline_count(st, "a@x") == 3 && store_offline_count(st, "b@x") == 2,
	      "counts %ld %ld", store_offline_count(st, "a@x"), store_offline_count(st, "b@x"));

	/* Expiry: expires <= now is gone for load, but still counted until expired away. */
	CHECK(seen_load(st, "a@x", 0, NOW + 1, 0, &sn) == 0 && sn.n == 2 && sn.id[0] == ids[2],
	      "load at NOW+1 (a1 expires exactly then): %d", sn.n);
	CHECK(seen_load(st, "a@x", 0, NOW + 5, 0, &sn) == 0 && sn.n == 1 && sn.id[0] == ids[4],
	      "load at NOW+5: %d", sn.n);
	CHECK(seen_load(st, "a@x", 0, NOW + 9, 0, &sn) == 0 && sn.n == 0, "load at NOW+9: %d",
	      sn.n);
	CHECK(store_offline_count(st, "a@x") == 3, "count dropped expired messages");
	/* limit: the oldest first, at most limit. */
	CHECK(seen_load(st, "a@x", 0, NOW, 1, &sn) == 0 && sn.n == 1 && sn.id[0] == ids[0],
	      "limit 1: %d", sn.n);
	CHECK(seen_load(st, "a@x", 0, NOW, 2, &sn) == 0 && sn.n == 2 && sn.id[1] == ids[2],
	      "limit 2: %d", sn.n);
	CHECK(seen_load(st, "a@x", 0, NOW + 1, 1, &sn) == 0 && sn.n == 1 && sn.id[0] == ids[2],
	      "limit 1 skipping an expired one: %d", sn.n);
	CHECK(seen_load(st, "a@x", 0, NOW, SIZE_MAX, &sn) == 0 && sn.n == 3, "limit SIZE_MAX: %d",
	      sn.n);
	CHECK(seen_load(st, "ghost@x", 0, NOW, 0, &sn) == 0 && sn.n == 0, "ghost has messages");
	/* Paging by id: after the last id seen, in order, skipping expired ones. */
	CHECK(seen_load(st, "a@x", ids[0], NOW, 1, &sn) == 0 && sn.n == 1 && sn.id[0] == ids[2],
	      "page after a1: %d", sn.n);
	CHECK(seen_load(st, "a@x", ids[2], NOW, 1, &sn) == 0 && sn.n == 1 && sn.id[0] == ids[4],
	      "page after a2: %d", sn.n);
	CHECK(seen_load(st, "a@x", ids[4], NOW, 1, &sn) == 0 && sn.n == 0, "page after a3: %d",
	      sn.n);
	CHECK(seen_load(st, "a@x", ids[1], NOW, 0, &sn) == 0 && sn.n == 2 && sn.id[0] == ids[2],
	      "after another owner's id: %d", sn.n);
	CHECK(seen_load(st, "a@x", -1, NOW + 1, 0, &sn) == 0 && sn.n == 2 && sn.id[0] == ids[2],
	      "after -1 with a1 expired: %d", sn.n);
	CHECK(seen_load(st, "a@x", INT64_MAX, NOW, 0, &sn) == 0 && sn.n == 0, "after INT64_MAX: %d",
	      sn.n);

	/* Delete up to an id: only that owner's, only up to it. */
	CHECK(store_offline_delete(st, "a@x", 0) == 0 && store_offline_count(st, "a@x") == 3,
	      "delete up to 0 removed something");
	CHECK(store_offline_delete(st, "a@x", ids[3]) == 0, "delete a up to b2's id");
	CHECK(seen_load(st, "a@x", 0, NOW, 0, &sn) == 0 && sn.n == 1 && sn.id[0] == ids[4],
	      "after delete a has %d", sn.n);
	CHECK(store_offline_count(st, "b@x") == 2, "delete of a's touched b's");
	CHECK(store_offline_delete(st, "ghost@x", INT64_MAX) == 0, "delete for a ghost failed");
	CHECK(store_offline_delete(st, "b@x", INT64_MAX) == 0 &&
		  store_offline_count(st, "b@x") == 0,
	      "delete all of b");

	/* Unknown owner: ENOENT, nothing written, *id unchanged, a transaction stays usable. */
	id = -7;
	m.owner = "ghost@x";
	CHECK((r = store_offline_put(st, &m, 0, &id)) == STORE_ENOENT && id == -7,
	      "put for a missing account: %d", r);
	CHECK((r = store_offline_put(st, &m, 5, &id)) == STORE_ENOENT && id == -7,
	      "put for a missing account with quota: %d", r);
	CHECK(store_offline_count(st, "ghost@x") == 0, "ghost got a message");
	CHECK(store_begin(st) == 0, "begin");
	CHECK(store_offline_put(st, &m, 0, &id) == STORE_ENOENT, "ghost put in txn");
	CHECK(put(st, "b@x", "<message id='t'/>", NOW + 1, 0) > ids[4], "put after failure in txn");
	CHECK(store_commit(st) == 0, "commit");
	CHECK(store_offline_count(st, "b@x") == 1, "txn result: %ld",
	      store_offline_count(st, "b@x"));

	/* Deleting the account takes its queue with it, and only its own. */
	CHECK(store_account_delete(st, "a@x") == 0, "delete a");
	CHECK(store_offline_count(st, "a@x") == 0, "a's messages survived its account");
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "recreate a");
	CHECK(seen_load(st, "a@x", 0, NOW, 0, &sn) == 0 && sn.n == 0, "recreated a inherits %d",
	      sn.n);
	CHECK(store_offline_count(st, "b@x") == 1, "b's messages went with a's account");

	/* Persistence; ids keep increasing across reopen even after the newest was deleted. */
	id = put(st, "b@x", "<message id='last'/>", INT64_MAX, 0);
	CHECK(id > 0, "put last: %lld", (long long)id);
	CHECK(store_offline_delete(st, "b@x", id) == 0, "delete up to last");
	ids[0] = put(st, "a@x", "<message id='kept'/>", INT64_MAX, 0);
	CHECK(ids[0] > id, "id reused after delete: %lld", (long long)ids[0]);
	store_close(st);
	st = open_dir(dir);
	if (!st) {
		CHECK(0, "reopen failed");
		seen_free(&sn);
		return;
	}
	CHECK(seen_load(st, "a@x", 0, INT64_MAX - 1, 0, &sn) == 0 && sn.n == 1 &&
		  sn.id[0] == ids[0] && strcmp(sn.stanza[0], "<message id='kept'/>") == 0 &&
		  sn.expires[0] == INT64_MAX,
	      "message lost across reopen: %d", sn.n);
	CHECK(store_offline_count(st, "b@x") == 0, "deleted messages back after reopen");
	CHECK(store_offline_delete(st, "a@x", ids[0]) == 0, "delete kept");
	id = put(st, "a@x", "<message/>", NOW, 0);
	CHECK(id > ids[0], "id after reopen %lld not above %lld", (long long)id, (long long)ids[0]);
	seen_free(&sn);
	store_close(st);
}

static void
test_offline_quota(void)
{
	const char *dir = tpath("offline-quota");
	struct store *st = open_dir(dir);
	struct seen sn = {0};
	struct store_offline_msg m = {0, "q@x", "s@y", "<message id='4'/>", 17, NOW, NOW + 10};
	int64_t id;
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "q@x", "c", 1) == 0, "create q");
	CHECK(store_account_create(st, "u@x", "c", 1) == 0, "create u");
	CHECK(store_account_create(st, "one@x", "c", 1) == 0, "create one");
	/* Another owner's queue does not count against q's quota. */
	for (int i = 0; i < 5; i++)
		CHECK(put(st, "u@x", "<message/>", NOW + 10, 3 + i) > 0, "put for u %d", i);
	CHECK(put(st, "q@x", "<message id='1'/>", NOW + 10, 3) > 0, "first of quota 3");
	CHECK(put(st, "q@x", "<message id='2'/>", NOW + 10, 3) > 0, "second of quota 3");
	CHECK((id = put(st, "q@x", "<message id='3'/>", NOW + 10, 3)) > 0, "third of quota 3: %lld",
	      (long long)id);
	id = -7;
	CHECK((r = store_offline_put(st, &m, 3, &id)) == STORE_EQUOTA && id == -7,
	      "fourth of quota 3: %d (id %lld)", r, (long long)id);
	CHECK(store_offline_count(st, "q@x") == 3, "quota overshot: %ld",
	      store_offline_count(st, "q@x"));
	CHECK(seen_load(st, "q@x", 0, NOW, 0, &sn) == 0 && sn.n == 3 &&
		  strcmp(sn.stanza[2], "<message id='3'/>") == 0,
	      "refused message stored: %d", sn.n);
	CHECK(store_offline_put(st, &m, 3, &id) == STORE_EQUOTA, "second refusal at quota 3");
	CHECK(store_offline_put(st, &m, 4, &id) == 0, "quota 4 refused the fourth");
	CHECK(store_offline_put(st, &m, 2, &id) == STORE_EQUOTA, "lower quota accepted more");
	/* Unlimited: 0 and negative. */
	for (int i = 0; i < 20; i++)
		CHECK(put(st, "q@x", "<message/>", NOW + 10, i % 2 ? 0 : -1) > 0,
		      "unlimited put %d", i);
	CHECK(store_offline_count(st, "q@x") == 24, "count %ld", store_offline_count(st, "q@x"));
	/* Quota 1, and a failed put inside a transaction leaves it usable. */
	CHECK(store_begin(st) == 0, "begin");
	CHECK(put(st, "one@x", "<message/>", NOW + 10, 1) > 0, "first of quota 1");
	CHECK(put(st, "one@x", "<message/>", NOW + 10, 1) == STORE_EQUOTA, "second of quota 1");
	CHECK(put(st, "u@x", "<message/>", NOW + 10, 0) > 0, "put after EQUOTA in txn");
	CHECK(store_commit(st) == 0, "commit");
	CHECK(store_offline_count(st, "one@x") == 1 && store_offline_count(st, "u@x") == 6,
	      "txn result %ld %ld", store_offline_count(st, "one@x"),
	      store_offline_count(st, "u@x"));

	/* Expired messages (stamp_ms is NOW) do not count against the quota. */
	CHECK(store_account_create(st, "exp@x", "c", 1) == 0, "create exp");
	CHECK(put(st, "exp@x", "<message/>", NOW, 2) > 0, "first, expired at once");
	CHECK(put(st, "exp@x", "<message/>", NOW - 5, 2) > 0, "second, expired");
	CHECK(put(st, "exp@x", "<message/>", NOW + 10, 2) > 0, "live one despite 2 expired");
	CHECK(put(st, "exp@x", "<message/>", NOW + 10, 2) > 0, "second live one");
	CHECK(put(st, "exp@x", "<message/>", NOW + 10, 2) == STORE_EQUOTA, "third live one");

	/* Caller bugs are refused, not stored. */
	m.stanza = NULL;
	quiet();
	CHECK(store_offline_put(st, &m, 0, &id) == STORE_EIO, "NULL stanza accepted");
	m.stanza = "x";
	m.sender = NULL;
	CHECK(store_offline_put(st, &m, 0, &id) == STORE_EIO, "NULL sender accepted");
	loud();
	CHECK(store_offline_count(st, "q@x") == 24, "refused puts stored something");
	seen_free(&sn);
	store_close(st);
}

/* A stanza is stored byte for byte: quotes, SQL-looking text, non-ASCII, 1 MB, len honoured. */
static void
test_offline_bytes(void)
{
	static const char *const texts[] = {
	    "<message to='a@x' from=\"b@y\"><body>it's \"quoted\" \\ back`tick`</body></message>",
	    "<message><body>'); DROP TABLE offline; --</body></message>",
	    "<body>h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89 \xe2\x80\xae rtl</body>",
	    "",
	};
	const char *dir = tpath("offline-bytes");
	struct store *st = open_dir(dir);
	struct seen sn = {0};
	struct store_offline_msg m = {0, "a@x", "o'brien@y/\xc3\xa9", NULL, 0, NOW, NOW + 1};
	size_t big_len = 1 << 20, n = 0;
	char *big = xmalloc(big_len + 1);
	int64_t id;
	int i;

	if (!st) {
		CHECK(0, "open failed");
		free(big);
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create a");
	for (i = 0; i < (int)ARRAY_LEN(texts); i++) {
		m.stanza = texts[i];
		m.len = strlen(texts[i]);
		CHECK(store_offline_put(st, &m, 0, &id) == 0, "put text %d", i);
	}
	/* len is honoured even when the string goes on: only the first 9 bytes are stored. */
	m.stanza = "<message/>trailing";
	m.len = 9;
	CHECK(store_offline_put(st, &m, 0, &id) == 0, "put prefix");
	CHECK(seen_load(st, "a@x", 0, NOW, 0, &sn) == 0 && sn.n == 5, "load: %d", sn.n);
	for (i = 0; i < (int)ARRAY_LEN(texts) && i < sn.n; i++) {
		CHECK(sn.len[i] == strlen(texts[i]) && strcmp(sn.stanza[i], texts[i]) == 0 &&
			  sn.terminated[i],
		      "text %d came back as '%s'", i, sn.stanza[i]);
		CHECK(strcmp(sn.sender[i], "o'brien@y/\xc3\xa9") == 0, "sender %d: '%s'", i,
		      sn.sender[i]);
	}
	CHECK(sn.n == 5 && sn.len[4] == 9 && strcmp(sn.stanza[4], "<message/") == 0 &&
		  sn.terminated[4],
	      "prefix came back as '%s'", sn.n == 5 ? sn.stanza[4] : "");
	CHECK(store_offline_delete(st, "a@x", INT64_MAX) == 0, "delete all");

	/* 1 MB of mixed 1- to 4-byte UTF-8, no NUL. */
	static const char *const pieces[] = {
	    "<b>", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", "&apos;", "\"", "z"};
	memcpy(big, "<message><body>", 15);
	n = 15;
	for (i = 0; n + 6 + 17 <= big_len; i++) {
		const char *p = pieces[(size_t)i * 7919 % ARRAY_LEN(pieces)];
		memcpy(big + n, p, strlen(p));
		n += strlen(p);
	}
	memcpy(big + n, "</body></message>", 17);
	n += 17;
	big[n] = '\0';
	m.stanza = big;
	m.len = n;
	CHECK(store_offline_put(st, &m, 0, &id) == 0, "put 1 MB");
	CHECK(seen_load(st, "a@x", 0, NOW, 0, &sn) == 0 && sn.n == 1, "load 1 MB: %d", sn.n);
	CHECK(sn.n == 1 && sn.len[0] == n && memcmp(sn.stanza[0], big, n) == 0 && sn.terminated[0],
	      "1 MB stanza changed: len %zu, want %zu", sn.n ? sn.len[0] : 0, n);
	CHECK(n > 1000000 && memchr(big, '\0', n) == NULL, "test stanza is %zu bytes", n);
	store_close(st);
	st = open_dir(dir);
	CHECK(st && seen_load(st, "a@x", 0, NOW, 0, &sn) == 0 && sn.n == 1 && sn.len[0] == n &&
		  memcmp(sn.stanza[0], big, n) == 0,
	      "1 MB stanza changed across reopen");
	seen_free(&sn);
	store_close(st);
	free(big);
}

static void
test_offline_expire(void)
{
	/* owner, stanza, expires relative to NOW; rows 0-5 are expired at NOW. */
	static const struct {
		const char *owner, *text;
		int64_t expires;
	} rows[] = {
	    {"a@x", "a-late", -10}, {"b@x", "b-early", -30}, {"a@x", "a-tie1", -20},
	    {"b@x", "b-tie2", -20}, {"a@x", "a-tie3", -20},  {"b@x", "b-now", 0},
	    {"a@x", "a-live", 1},   {"b@x", "b-live", 1000},
	};
	/* The expected (expires, id) order of the expired ones: indexes into rows. */
	static const int order[] = {1, 2, 3, 4, 0, 5};
	const char *dir = tpath("offline-expire");
	struct store *st = open_dir(dir);
	struct seen sn = {0};
	int64_t ids[ARRAY_LEN(rows)];
	long n;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create a");
	CHECK(store_account_create(st, "b@x", "c", 1) == 0, "create b");
	CHECK((n = store_offline_expire(st, NOW, 0, seen_add, &sn)) == 0 && sn.n == 0,
	      "expire on an empty store: %ld, fn %d", n, sn.n);
	for (size_t i = 0; i < ARRAY_LEN(rows); i++)
		ids[i] = put(st, rows[i].owner, rows[i].text, NOW + rows[i].expires, 0);

	CHECK((n = store_offline_expire(st, NOW - 100, 0, seen_add, &sn)) == 0 && sn.n == 0,
	      "expire before anything expired: %ld, fn %d", n, sn.n);
	/* Limit 2 cuts between messages of equal expiry: exactly the first two go. */
	CHECK((n = store_offline_expire(st, NOW, 2, seen_add, &sn)) == 2 && sn.n == 2,
	      "expire limit 2: %ld, fn %d", n, sn.n);
	for (int i = 0; i < 2 && i < sn.n; i++) {
		int k = order[i];
		CHECK(sn.id[i] == ids[k] && strcmp(sn.stanza[i], rows[k].text) == 0 &&
			  strcmp(sn.owner[i], rows[k].owner) == 0 &&
			  strcmp(sn.sender[i], "s@y/r") == 0 && sn.stamp[i] == NOW &&
			  sn.expires[i] == NOW + rows[k].expires,
		      "expired #%d: %s of %s, want %s", i, sn.stanza[i], sn.owner[i], rows[k].text);
	}
	CHECK(store_offline_count(st, "a@x") + store_offline_count(st, "b@x") == 6,
	      "limit 2 deleted %ld",
	      8 - store_offline_count(st, "a@x") - store_offline_count(st, "b@x"));
	seen_free(&sn);
	CHECK((n = store_offline_expire(st, NOW, 0, seen_add, &sn)) == 4 && sn.n == 4,
	      "expire the rest: %ld, fn %d", n, sn.n);
	for (int i = 0; i < 4 && i < sn.n; i++) {
		int k = order[i + 2];
		CHECK(sn.id[i] == ids[k] && strcmp(sn.stanza[i], rows[k].text) == 0,
		      "expired #%d: %s, want %s", i + 2, sn.stanza[i], rows[k].text);
	}
	seen_free(&sn);
	CHECK(seen_load(st, "a@x", 0, NOW - 1000, 0, &sn) == 0 && sn.n == 1 &&
		  strcmp(sn.stanza[0], "a-live") == 0,
	      "a after expiry: %d", sn.n);
	CHECK(seen_load(st, "b@x", 0, NOW - 1000, 0, &sn) == 0 && sn.n == 1 &&
		  strcmp(sn.stanza[0], "b-live") == 0,
	      "b after expiry: %d", sn.n);
	seen_free(&sn);
	CHECK((n = store_offline_expire(st, NOW, 0, seen_add, &sn)) == 0 && sn.n == 0,
	      "second expire: %ld, fn %d", n, sn.n);

	/* Without fn, with and without a limit. */
	CHECK((n = store_offline_expire(st, NOW + 1, 5, NULL, NULL)) == 1, "expire no fn: %ld", n);
	CHECK(store_offline_count(st, "a@x") == 0 && store_offline_count(st, "b@x") == 1,
	      "no-fn expire removed the wrong rows");
	for (int i = 0; i < 10; i++)
		put(st, i % 2 ? "a@x" : "b@x", "x", NOW + i, 0);
	CHECK((n = store_offline_expire(st, NOW + 4, 0, NULL, NULL)) == 5, "expire all no fn: %ld",
	      n);
	CHECK(store_offline_count(st, "a@x") + store_offline_count(st, "b@x") == 6, "left %ld",
	      store_offline_count(st, "a@x") + store_offline_count(st, "b@x"));
	store_close(st);
}

/*
 * Every offline query runs off an index, so its cost follows the page it returns, not
 * the millions of rows stored. The queries are those of store_sqlite.c, restated here.
 */
static void
test_offline_plans(void)
{
	static const struct {
		const char *sql, *index;
	} plans[] = {
	    {"SELECT count(*) FROM (SELECT 1 FROM offline WHERE owner = ?1 LIMIT ?2)",
	     "offline_owner"},
	    {"SELECT id, sender, stanza, stamp, expires FROM offline"
	     " WHERE owner = ?1 AND id > ?2 AND expires > ?3 ORDER BY id LIMIT ?4",
	     "offline_owner"},
	    {"DELETE FROM offline WHERE owner = ?1 AND id <= ?2", "offline_owner"},
	    {"SELECT count(*) FROM offline WHERE owner = ?1", "offline_owner"},
	    {"SELECT id, owner, sender, stanza, stamp, expires FROM offline"
	     " WHERE expires <= ?1 ORDER BY expires, id LIMIT ?2",
	     "offline_expires"},
	    {"DELETE FROM offline WHERE expires <= ?1 AND (expires < ?1 OR id <= ?2)",
	     "offline_expires"},
	};
	const char *dir = tpath("plans");
	struct store *st = open_dir(dir);
	char db[300];
	sqlite3 *h;

	store_close(st);
	snprintf(db, sizeof db, "%s/baton.db", dir);
	if (!st || sqlite3_open(db, &h) != SQLITE_OK) {
		CHECK(0, "open failed");
		return;
	}
	for (size_t i = 0; i < ARRAY_LEN(plans); i++) {
		struct buf plan = {0};
		sqlite3_stmt *stmt;
		char q[512];

		snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", plans[i].sql);
		if (sqlite3_prepare_v2(h, q, -1, &stmt, NULL) != SQLITE_OK) {
			CHECK(0, "%s: %s", plans[i].sql, sqlite3_errmsg(h));
			continue;
		}
		while (sqlite3_step(stmt) == SQLITE_ROW)
			buf_printf(&plan, "%s; ", (const char *)sqlite3_column_text(stmt, 3));
		sqlite3_finalize(stmt);
		buf_puts(&plan, "");
		CHECK(strstr(buf_head(&plan), plans[i].index) != NULL &&
			  strstr(buf_head(&plan), "SCAN offline") == NULL &&
			  strstr(buf_head(&plan), "TEMP B-TREE") == NULL,
		      "%s: plan '%s' does not use %s alone", plans[i].sql, buf_head(&plan),
		      plans[i].index);
		buf_free(&plan);
	}
	sqlite3_close(h);
}

/* ---- the message archive (XEP-0313) ---- */

/* True when the page holds exactly messages from..to (indexes into a@x's archive), in order. */
static bool
apage_is(const struct apage *p, int from, int to)
{
	if (p->bad || p->n != to - from + 1)
		return false;
	for (int k = 0; k < p->n; k++) {
		if (p->id[k] != arc_id(from + k))
			return false;
	}
	return true;
}

/*
 * Fills a@x's archive (and a few rows of b@x interleaved) inside one transaction, through
 * put_fn: the account archive's or, with a@x and b@x as room JIDs, the room archive's.
 */
static void
arc_fill(struct store *st, arc_put_fn *put_fn)
{
	char text[64];
	int r;

	CHECK(store_begin(st) == 0, "begin fill");
	for (int i = 0; i < ARC_N; i++) {
		struct store_archive_msg m = {arc_id(i), "a@x",	       arc_peers[i % 3], text,
					      0,	 arc_stamp(i), i % 2 == 1};
		snprintf(text, sizeof text, "<message id='m%d'/>", i);
		m.len = strlen(text);
		if ((r = put_fn(st, &m)) != 0) {
			CHECK(0, "put %d: %d", i, r);
			break;
		}
		if (i % 100 == 0) {
			/* b@x's ids sit between a@x's: the id space is shared, paging is not. */
			struct store_archive_msg b = {arc_id(i) + 5, "b@x", "w1@y", "<b/>", 4,
						      arc_stamp(i),  false};
			CHECK(put_fn(st, &b) == 0, "put b %d", i);
		}
	}
	CHECK(store_commit(st) == 0, "commit fill");
}

static void
test_archive_put(void)
{
	const char *dir = tpath("archive-put");
	struct store *st = open_dir(dir);
	static const char text[] = "<message><body>it's \"h\xc3\xa9\" '); DROP TABLE archive; "
				   "--</body></message>trailing";
	struct store_archive_msg m = {7, "a@x", "o'brien@y", text, sizeof text - 1 - 8, NOW, true};
	struct store_archive_query q = {.owner = "a@x", .max = 10};
	struct apage p;
	bool complete;
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create a");
	CHECK(store_account_create(st, "b@x", "c", 1) == 0, "create b");
	CHECK((r = store_archive_put(st, &m)) == 0, "put: %d", r);
	CHECK((r = store_archive_put(st, &m)) == STORE_EEXIST, "duplicate id: %d", r);
	m.owner = "b@x";
	CHECK((r = store_archive_put(st, &m)) == STORE_EEXIST, "id taken by another owner: %d", r);
	m.owner = "ghost@x";
	m.id = 8;
	CHECK((r = store_archive_put(st, &m)) == STORE_ENOENT, "unknown owner: %d", r);
	m.owner = "a@x";
	quiet();
	m.stanza = NULL;
	CHECK((r = store_archive_put(st, &m)) == STORE_EIO, "NULL stanza: %d", r);
	m.stanza = text;
	m.with = NULL;
	CHECK((r = store_archive_put(st, &m)) == STORE_EIO, "NULL with: %d", r);
	loud();

	/* Only the first put stored anything, byte for byte, len honoured. */
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 1 && p.id[0] == 7 && !p.bad &&
		  complete,
	      "query after put: n %d bad %d complete %d", p.n, p.bad, complete);
	CHECK(strncmp(p.first, text, sizeof text - 1 - 8) == 0 &&
		  strlen(p.first) == sizeof text - 1 - 8 && strcmp(p.first_with, "o'brien@y") == 0,
	      "stanza came back as '%s' with '%s'", p.first, p.first_with);
	q.owner = "b@x";
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 0 && complete, "b has rows: %d", p.n);

	/* A refused put inside a caller's transaction leaves the transaction usable. */
	m.id = 9;
	m.with = "z@y";
	CHECK(store_begin(st) == 0, "begin");
	CHECK(store_archive_put(st, &(struct store_archive_msg){7, "a@x", "z@y", "x", 1, NOW,
								false}) == STORE_EEXIST,
	      "dup in txn");
	CHECK(store_archive_put(st, &m) == 0, "put after a refused put in txn");
	CHECK(store_commit(st) == 0, "commit");
	store_close(st);
	st = open_dir(dir);
	q.owner = "a@x";
	CHECK(st && apage_run(st, &q, &p, &complete) == 0 && p.n == 2 && p.id[1] == 9 && complete,
	      "after reopen: n %d", p.n);
	store_close(st);
}

static void
test_archive_query(void)
{
	const char *dir = tpath("archive-query");
	struct store *st = open_dir(dir);
	struct store_archive_query q;
	struct apage p;
	int64_t seen[ARC_N], prev;
	bool complete;
	int pages, total, r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create a");
	CHECK(store_account_create(st, "b@x", "c", 1) == 0, "create b");
	arc_fill(st, store_archive_put);

	/* Forward through everything, 100 at a time, as a client follows RSM <after/>. */
	q = (struct store_archive_query){.owner = "a@x", .max = 100};
	pages = total = 0;
	prev = 0;
	for (;;) {
		r = apage_run(st, &q, &p, &complete);
		pages++;
		CHECK(r == 0 && p.n == 100 && !p.bad, "page %d: r %d n %d bad %d", pages, r, p.n,
		      p.bad);
		for (int k = 0; k < p.n && k < 100; k++) {
			CHECK(p.id[k] > prev, "page %d row %d: id %lld after %lld", pages, k,
			      (long long)p.id[k], (long long)prev);
			prev = p.id[k];
			if (total < ARC_N)
				seen[total++] = p.id[k];
		}
		CHECK(complete == (pages == 10), "page %d: complete %d", pages, complete);
		if (complete || p.n == 0 || pages > 12)
			break;
		q.after_id = p.id[p.n - 1];
	}
	CHECK(pages == 10 && total == ARC_N && seen[0] == arc_id(0) &&
		  seen[ARC_N - 1] == arc_id(ARC_N - 1),
	      "forward paging: %d pages, %d rows", pages, total);

	/* One conversation: 334 rows of w1@y (i % 3 == 1 for a@x), paged by 50. */
	q = (struct store_archive_query){.owner = "a@x", .with = "w1@y", .max = 50};
	pages = total = 0;
	do {
		r = apage_run(st, &q, &p, &complete);
		pages++;
		total += p.n;
		CHECK(r == 0 && !p.bad && (complete || p.n == 50), "with page %d: r %d n %d bad %d",
		      pages, r, p.n, p.bad);
		if (p.n)
			q.after_id = p.id[p.n - 1];
	} while (!complete && p.n > 0 && pages < 20);
	CHECK(total == 333 && pages == 7 && p.n == 33, "with w1@y: %d rows in %d pages", total,
	      pages);
	q = (struct store_archive_query){.owner = "a@x", .with = "nobody@y", .max = 5};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 0 && complete, "with nobody: %d",
	      p.n);

	/* Stamp range, inclusive at both ends. */
	q = (struct store_archive_query){
	    .owner = "a@x", .start_ms = arc_stamp(100), .end_ms = arc_stamp(199), .max = 100};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 100, 199) && complete,
	      "range 100-199: n %d complete %d", p.n, complete);
	q.max = 60;
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 100, 159) && !complete,
	      "range page 1: n %d complete %d", p.n, complete);
	q.after_id = arc_id(159);
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 160, 199) && complete,
	      "range page 2: n %d complete %d", p.n, complete);
	q = (struct store_archive_query){
	    .owner = "a@x", .start_ms = arc_stamp(990) - 1, .max = 100}; /* start only */
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 990, 999) && complete,
	      "start only: n %d", p.n);
	q = (struct store_archive_query){.owner = "a@x", .end_ms = arc_stamp(4) + 999, .max = 100};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 0, 4) && complete,
	      "end only: n %d", p.n);
	q = (struct store_archive_query){.owner = "a@x",
					 .with = "w2@y",
					 .start_ms = arc_stamp(10),
					 .end_ms = arc_stamp(20),
					 .max = 100};
	/* w2@y within 10..20: 11, 14, 17, 20. */
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 4 && p.id[0] == arc_id(11) &&
		  p.id[3] == arc_id(20) && complete,
	      "with and range: n %d", p.n);

	/* Exclusive id bounds, also when they fall between stored ids. */
	q = (struct store_archive_query){
	    .owner = "a@x", .after_id = arc_id(10), .before_id = arc_id(20), .max = 100};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 11, 19) && complete,
	      "after 10 before 20: n %d", p.n);
	q.after_id = arc_id(10) + 1;
	q.before_id = arc_id(20) - 1;
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 11, 19) && complete,
	      "bounds between ids: n %d", p.n);
	q.max = 9;
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 11, 19) && complete,
	      "exactly max rows left is complete: n %d complete %d", p.n, complete);
	q.max = 8;
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 11, 18) && !complete,
	      "one row past max is incomplete: n %d complete %d", p.n, complete);

	/* The last page (RSM <before/>), delivered oldest first. */
	q = (struct store_archive_query){.owner = "a@x", .max = 100, .last = true};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 900, 999) && !complete,
	      "last page: n %d first %lld complete %d", p.n, (long long)p.id[0], complete);
	q.before_id = arc_id(150);
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 50, 149) && !complete,
	      "last before 150: n %d complete %d", p.n, complete);
	q.before_id = arc_id(100);
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 0, 99) && complete,
	      "last before 100 (exactly max older): n %d complete %d", p.n, complete);
	q.before_id = arc_id(50);
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 0, 49) && complete,
	      "last before 50: n %d complete %d", p.n, complete);
	/* Backward through everything, as a client fetching history newest page first. */
	q = (struct store_archive_query){.owner = "a@x", .max = 300, .last = true};
	pages = total = 0;
	do {
		r = apage_run(st, &q, &p, &complete);
		pages++;
		total += p.n;
		CHECK(r == 0 && !p.bad && p.n > 0 &&
			  apage_is(&p, ARC_N - total, ARC_N - total + p.n - 1),
		      "backward page %d: r %d n %d", pages, r, p.n);
		if (p.n)
			q.before_id = p.id[0];
	} while (!complete && p.n > 0 && pages < 10);
	CHECK(total == ARC_N && pages == 4 && p.n == 100, "backward: %d rows in %d pages", total,
	      pages);
	q = (struct store_archive_query){.owner = "a@x",
					 .with = "w0@y",
					 .after_id = arc_id(0),
					 .end_ms = arc_stamp(30),
					 .max = 3,
					 .last = true};
	/* w0@y after 0, up to 30: 3 .. 30 step 3 = 10 rows; the newest 3 are 24, 27, 30. */
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 3 && p.id[0] == arc_id(24) &&
		  p.id[2] == arc_id(30) && !complete && !p.bad,
	      "last with filter: n %d first %lld", p.n, (long long)p.id[0]);

	/* Empty results are complete, in both directions. */
	static const struct store_archive_query empties[] = {
	    {.owner = "ghost@x", .max = 10},
	    {.owner = "ghost@x", .max = 10, .last = true},
	    {.owner = "a@x", .after_id = 1000 + 10 * (ARC_N - 1), .max = 10},
	    {.owner = "a@x", .after_id = INT64_MAX, .max = 10},
	    {.owner = "a@x", .before_id = 1000, .max = 10, .last = true},
	    {.owner = "a@x", .before_id = INT64_MIN, .max = 10, .last = true},
	    {.owner = "a@x", .after_id = 1010, .before_id = 1020, .max = 10},
	    {.owner = "a@x", .after_id = 2000, .before_id = 1000, .max = 10},
	    {.owner = "a@x", .start_ms = NOW + 10000000, .max = 10},
	    {.owner = "a@x", .start_ms = NOW + 5000, .end_ms = NOW + 4000, .max = 10, .last = true},
	};
	for (size_t k = 0; k < ARRAY_LEN(empties); k++) {
		CHECK(apage_run(st, &empties[k], &p, &complete) == 0 && p.n == 0 && complete,
		      "empty query %zu: n %d complete %d", k, p.n, complete);
	}

	/* A huge max is not allocated up front: it only means "all". */
	q = (struct store_archive_query){.owner = "a@x", .max = SIZE_MAX, .last = true};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 0, ARC_N - 1) && complete,
	      "max SIZE_MAX backward: n %d", p.n);
	q.last = false;
	CHECK(apage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 0, ARC_N - 1) && complete,
	      "max SIZE_MAX forward: n %d", p.n);

	/* b@x's rows, interleaved by id, stay b@x's. */
	q = (struct store_archive_query){.owner = "b@x", .max = 100};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 10 && !p.bad && complete,
	      "b@x: n %d bad %d", p.n, p.bad);

	/* Clearing one conversation, then everything; b@x keeps its archive. */
	CHECK(store_archive_clear(st, "a@x", "w1@y") == 0, "clear w1");
	q = (struct store_archive_query){.owner = "a@x", .with = "w1@y", .max = 10};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 0 && complete, "w1 left: %d", p.n);
	q.with = NULL;
	q.max = 1000;
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 667 && complete,
	      "after clearing w1: %d", p.n);
	CHECK(store_archive_clear(st, "a@x", NULL) == 0, "clear all");
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 0 && complete, "cleared: %d", p.n);
	CHECK(store_archive_clear(st, "ghost@x", NULL) == 0, "clear a ghost's archive");
	q.owner = "b@x";
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 10, "b@x after a's clear: %d", p.n);
	store_close(st);
}

/*
 * The archives' queries, restated from store_sqlite.c: each must search an index and
 * never scan the table or sort, and on 100k rows a page must cost VM steps in proportion
 * to the page, not to the archive. A page reads table by its owner column (owner, or room
 * for room archives), forward or backward, over everything or one conversation.
 */
#define ARC_SQL(table, owner, with, order)                                                         \
	"SELECT id, with_jid, stamp, outgoing, stanza FROM " table " WHERE " owner " = ?1"         \
	" AND id >= ?2 AND id <= ?3 AND stamp >= ?4 AND stamp <= ?5" with " ORDER BY id" order     \
	" LIMIT ?6"
#define ARC_WITH " AND with_jid = ?7"

struct arc_plan {
	const char *sql, *index;
	bool with, query;
};

static const struct arc_plan arc_plans[] = {
    {ARC_SQL("archive", "owner", "", ""), "archive_owner", false, true},
    {ARC_SQL("archive", "owner", "", " DESC"), "archive_owner", false, true},
    {ARC_SQL("archive", "owner", ARC_WITH, ""), "archive_with", true, true},
    {ARC_SQL("archive", "owner", ARC_WITH, " DESC"), "archive_with", true, true},
    {"DELETE FROM archive WHERE owner = ?1", "archive_owner", false, false},
    {"DELETE FROM archive WHERE owner = ?1 AND with_jid = ?2", "archive_with", false, false},
    {"DELETE FROM archive WHERE owner = ?1 AND id > 0", "archive_owner", false, false},
};

static const struct arc_plan room_arc_plans[] = {
    {ARC_SQL("room_archive", "room", "", ""), "room_archive_room", false, true},
    {ARC_SQL("room_archive", "room", "", " DESC"), "room_archive_room", false, true},
    {ARC_SQL("room_archive", "room", ARC_WITH, ""), "room_archive_with", true, true},
    {ARC_SQL("room_archive", "room", ARC_WITH, " DESC"), "room_archive_with", true, true},
    {"DELETE FROM room_archive WHERE room = ?1", "room_archive_room", false, false},
};

#define ARC_BIG 100000

/*
 * Fills big@x's archive through put_fn with ARC_BIG rows, ids 1..ARC_BIG, every 100th one
 * small@x's; big@x talks to 10 peers in turn. Then checks the newest page of big@x and
 * all of small@x through query.
 */
static void
arc_big_fill(struct store *st, arc_put_fn *put_fn, arc_query_fn *query)
{
	static const char *const peers[] = {"p0@y", "p1@y", "p2@y", "p3@y", "p4@y",
					    "p5@y", "p6@y", "p7@y", "p8@y", "p9@y"};
	struct store_archive_query q = {.owner = "big@x", .max = 100, .last = true};
	struct apage p;
	bool complete;
	int r = 0;

	CHECK(store_begin(st) == 0, "begin");
	for (int i = 1; i <= ARC_BIG && r == 0; i++) {
		struct store_archive_msg m = {
		    i,	  i % 100 ? "big@x" : "small@x", peers[i % 10], "<message/>", 10, NOW + i,
		    false};
		r = put_fn(st, &m);
	}
	CHECK(r == 0 && store_commit(st) == 0, "filling 100k rows: %d", r);
	CHECK(apage_query(query, st, &q, &p, &complete) == 0 && p.n == 100 &&
		  p.id[0] == ARC_BIG - 101 && p.id[99] == ARC_BIG - 1 && !complete,
	      "big last page: n %d first %lld", p.n, (long long)p.id[0]);
	q = (struct store_archive_query){.owner = "small@x", .with = "p0@y", .max = 2000};
	CHECK(apage_query(query, st, &q, &p, &complete) == 0 && p.n == ARC_BIG / 100 && complete,
	      "small's archive: %d", p.n);
}

/* Checks the n plans on dir's database, filled by arc_big_fill. */
static void
arc_plans_check(const char *dir, const struct arc_plan *plans, size_t n)
{
	char db[300];
	sqlite3 *h;

	snprintf(db, sizeof db, "%s/baton.db", dir);
	if (sqlite3_open(db, &h) != SQLITE_OK) {
		CHECK(0, "raw open failed");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct buf plan = {0};
		sqlite3_stmt *stmt;
		char sql[600];

		snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", plans[i].sql);
		if (sqlite3_prepare_v2(h, sql, -1, &stmt, NULL) != SQLITE_OK) {
			CHECK(0, "%s: %s", plans[i].sql, sqlite3_errmsg(h));
			continue;
		}
		while (sqlite3_step(stmt) == SQLITE_ROW)
			buf_printf(&plan, "%s; ", (const char *)sqlite3_column_text(stmt, 3));
		sqlite3_finalize(stmt);
		buf_puts(&plan, "");
		CHECK(strstr(buf_head(&plan), plans[i].index) != NULL &&
			  strstr(buf_head(&plan), "SCAN") == NULL &&
			  strstr(buf_head(&plan), "TEMP B-TREE") == NULL,
		      "%s: plan '%s' does not use %s alone", plans[i].sql, buf_head(&plan),
		      plans[i].index);
		buf_free(&plan);
		if (!plans[i].query)
			continue;

		/* Run it for a page in the middle of the big archive and count VM steps. */
		if (sqlite3_prepare_v2(h, plans[i].sql, -1, &stmt, NULL) != SQLITE_OK) {
			CHECK(0, "%s: %s", plans[i].sql, sqlite3_errmsg(h));
			continue;
		}
		int rows = 0, steps, full;
		sqlite3_bind_text(stmt, 1, "big@x", -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 2, ARC_BIG / 2);
		sqlite3_bind_int64(stmt, 3, ARC_BIG / 2 + 5000);
		sqlite3_bind_int64(stmt, 4, INT64_MIN);
		sqlite3_bind_int64(stmt, 5, INT64_MAX);
		sqlite3_bind_int64(stmt, 6, 101);
		if (plans[i].with)
			sqlite3_bind_text(stmt, 7, "p3@y", -1, SQLITE_STATIC);
		while (sqlite3_step(stmt) == SQLITE_ROW)
			rows++;
		steps = sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_VM_STEP, 0);
		full = sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
		sqlite3_finalize(stmt);
		/* Some 20-40 steps per row; a walk over the owner's 99k rows would be millions. */
		CHECK(rows == 101 && full == 0 && steps < 100 * 101,
		      "%s: %d rows in %d VM steps, %d full-scan steps", plans[i].sql, rows, steps,
		      full);
	}
	sqlite3_close(h);
}

static void
test_archive_plans(void)
{
	const char *dir = tpath("archive-plans");
	struct store *st = open_dir(dir);

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "big@x", "c", 1) == 0, "create big");
	CHECK(store_account_create(st, "small@x", "c", 1) == 0, "create small");
	arc_big_fill(st, store_archive_put, store_archive_query);
	store_close(st);
	arc_plans_check(dir, arc_plans, ARRAY_LEN(arc_plans));
}

/* The same for room archives, whose rooms (big@x, small@x) need no account or room row. */
static void
test_room_archive_plans(void)
{
	const char *dir = tpath("room-archive-plans");
	struct store *st = open_dir(dir);

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	arc_big_fill(st, store_room_archive_put, store_room_archive_query);
	store_close(st);
	arc_plans_check(dir, room_arc_plans, ARRAY_LEN(room_arc_plans));
}

/* ---- private XML storage (XEP-0049) ---- */

static void
test_private(void)
{
	const char *dir = tpath("private");
	struct store *st = open_dir(dir);
	static const char roster[] = "<roster xmlns='roster:delimiter'>::</roster>";
	static const char notes[] = "<storage xmlns='storage:rosternotes'><note jid='a@y'>"
				    "caf\xc3\xa9 \"'&amp;</note></storage>";
	struct buf b = {0};
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create a");
	CHECK(store_account_create(st, "b@x", "c", 1) == 0, "create b");
	buf_puts(&b, "keep");
	CHECK((r = store_private_get(st, "a@x", "roster roster:delimiter", &b)) == STORE_ENOENT,
	      "missing key: %d", r);
	CHECK(buf_used(&b) == 4 && memcmp(buf_head(&b), "keep", 4) == 0, "out changed on ENOENT");
	CHECK((r = store_private_set(st, "a@x", "roster roster:delimiter", roster,
				     strlen(roster))) == 0,
	      "set: %d", r);
	CHECK(store_private_get(st, "a@x", "roster roster:delimiter", &b) == 0 &&
		  buf_used(&b) == 4 + strlen(roster) && memcmp(buf_head(&b), "keep", 4) == 0 &&
		  memcmp(buf_head(&b) + 4, roster, strlen(roster)) == 0,
	      "get did not append");
	buf_free(&b);
	CHECK(store_private_set(st, "a@x", "storage storage:rosternotes", notes, strlen(notes)) ==
		  0,
	      "set notes");
	CHECK(private_is(st, "a@x", "storage storage:rosternotes", notes), "notes not byte-exact");
	/* Replacing, with len shorter than the string. */
	CHECK(store_private_set(st, "a@x", "roster roster:delimiter", "<roster/>xyz", 9) == 0,
	      "replace");
	CHECK(private_is(st, "a@x", "roster roster:delimiter", "<roster/>"), "replace not seen");
	CHECK(private_is(st, "a@x", "storage storage:rosternotes", notes),
	      "replace touched another key");
	CHECK(store_private_set(st, "a@x", "empty ns", "", 0) == 0 &&
		  private_is(st, "a@x", "empty ns", ""),
	      "empty XML");
	/* Keys are per owner, and compared exactly. */
	CHECK(store_private_get(st, "b@x", "roster roster:delimiter", &b) == STORE_ENOENT,
	      "b sees a's data");
	CHECK(store_private_get(st, "a@x", "Roster roster:delimiter", &b) == STORE_ENOENT,
	      "keys compared case-insensitively");
	CHECK(store_private_get(st, "ghost@x", "roster roster:delimiter", &b) == STORE_ENOENT,
	      "ghost get");
	CHECK((r = store_private_set(st, "ghost@x", "k", "<x/>", 4)) == STORE_ENOENT,
	      "set for unknown owner: %d", r);
	quiet();
	CHECK(store_private_set(st, "a@x", "k", NULL, 0) == STORE_EIO, "NULL xml accepted");
	loud();
	store_close(st);
	st = open_dir(dir);
	CHECK(st && private_is(st, "a@x", "roster roster:delimiter", "<roster/>"),
	      "lost across reopen");
	buf_free(&b);
	store_close(st);
}

/* ---- block lists (XEP-0191) ---- */

static void
test_block(void)
{
	const char *dir = tpath("block");
	struct store *st = open_dir(dir);
	struct names nm;
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create a");
	CHECK(store_account_create(st, "b@x", "c", 1) == 0, "create b");
	CHECK(block_load(st, "a@x", &nm) == 0 && nm.n == 0, "new list has %d", nm.n);
	CHECK((r = store_block_set(st, "a@x", "spam@z", false)) == 0, "add spam: %d", r);
	CHECK(store_block_set(st, "a@x", "evil.example", false) == 0, "add domain");
	CHECK(store_block_set(st, "a@x", "bad@z/res", false) == 0, "add full JID");
	CHECK((r = store_block_set(st, "a@x", "spam@z", false)) == 0, "add twice: %d", r);
	CHECK(store_block_set(st, "b@x", "spam@z", false) == 0, "add for b");
	CHECK(block_load(st, "a@x", &nm) == 0 && nm.n == 3 &&
		  strcmp(nm.list[0], "bad@z/res") == 0 && strcmp(nm.list[1], "evil.example") == 0 &&
		  strcmp(nm.list[2], "spam@z") == 0,
	      "list: %d %s %s %s", nm.n, nm.list[0], nm.list[1], nm.list[2]);
	CHECK(store_block_set(st, "a@x", "evil.example", true) == 0, "remove");
	CHECK(store_block_set(st, "a@x", "never@z", true) == 0, "remove absent");
	CHECK(block_load(st, "a@x", &nm) == 0 && nm.n == 2 &&
		  strcmp(nm.list[0], "bad@z/res") == 0 && strcmp(nm.list[1], "spam@z") == 0,
	      "after remove: %d", nm.n);
	CHECK((r = store_block_set(st, "ghost@x", "spam@z", false)) == STORE_ENOENT,
	      "add for unknown owner: %d", r);
	CHECK(store_block_set(st, "ghost@x", "spam@z", true) == 0, "remove for unknown owner");
	quiet();
	CHECK((r = store_block_set(st, "a@x", NULL, false)) == STORE_EIO, "add NULL: %d", r);
	loud();
	CHECK(block_load(st, "a@x", &nm) == 0 && nm.n == 2, "failed add changed the list");
	CHECK(store_block_set(st, "a@x", NULL, true) == 0, "remove all");
	CHECK(block_load(st, "a@x", &nm) == 0 && nm.n == 0, "after remove all: %d", nm.n);
	CHECK(block_load(st, "b@x", &nm) == 0 && nm.n == 1 && strcmp(nm.list[0], "spam@z") == 0,
	      "remove all touched b: %d", nm.n);
	CHECK(block_load(st, "ghost@x", &nm) == 0 && nm.n == 0, "ghost has a list");
	store_close(st);
	st = open_dir(dir);
	CHECK(st && block_load(st, "b@x", &nm) == 0 && nm.n == 1, "lost across reopen");
	store_close(st);
}

/* Deleting an account takes its archive, private data and block list with it. */
static void
test_account_cascade(void)
{
	static const char *const tables[] = {"archive", "private", "blocklist", "offline",
					     "roster"};
	const char *dir = tpath("cascade");
	struct store *st = open_dir(dir);
	struct store_archive_query q = {.owner = "a@x", .max = 10};
	struct store_roster_item it = {"f@y", NULL, NULL, STORE_SUB_BOTH, false, false, false};
	struct apage p;
	struct names nm;
	struct buf b = {0};
	bool complete;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0 &&
		  store_account_create(st, "b@x", "c", 1) == 0,
	      "create");
	for (int i = 0; i < 2; i++) {
		const char *o = i ? "b@x" : "a@x";
		CHECK(store_archive_put(st, &(struct store_archive_msg){10 + i, o, "f@y", "<m/>", 4,
									NOW, true}) == 0,
		      "archive %s", o);
		CHECK(store_private_set(st, o, "k ns", "<k/>", 4) == 0, "private %s", o);
		CHECK(store_block_set(st, o, "f@y", false) == 0, "block %s", o);
		CHECK(put(st, o, "<message/>", NOW + 1, 0) > 0, "offline %s", o);
		CHECK(store_roster_put(st, o, &it, 1) == 0, "roster %s", o);
	}
	CHECK(store_account_delete(st, "a@x") == 0, "delete a");
	store_close(st);
	for (size_t i = 0; i < ARRAY_LEN(tables); i++) {
		CHECK(rows_of(dir, tables[i], "a@x") == 0, "%s keeps %ld rows of a", tables[i],
		      rows_of(dir, tables[i], "a@x"));
		CHECK(rows_of(dir, tables[i], "b@x") == 1, "%s lost b's row", tables[i]);
	}
	/* A new account of the same name starts empty. */
	st = open_dir(dir);
	CHECK(st && store_account_create(st, "a@x", "c", 1) == 0, "recreate a");
	CHECK(st && apage_run(st, &q, &p, &complete) == 0 && p.n == 0 && complete,
	      "recreated a has an archive: %d", p.n);
	CHECK(st && store_private_get(st, "a@x", "k ns", &b) == STORE_ENOENT,
	      "recreated a has private data");
	CHECK(st && block_load(st, "a@x", &nm) == 0 && nm.n == 0, "recreated a blocks %d", nm.n);
	/* The archive id of the deleted row is free again. */
	CHECK(st && store_archive_put(st, &(struct store_archive_msg){10, "a@x", "f@y", "<m/>", 4,
								      NOW, true}) == 0,
	      "id of a deleted row not reusable");
	buf_free(&b);
	store_close(st);
}

/* ---- multi-user chat rooms (XEP-0045) ---- */

static void
test_room(void)
{
	const char *dir = tpath("room");
	struct store *st = open_dir(dir);
	struct buf c = {0}, sj = {0}, big = {0};
	struct rooms rm;
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(room_list(st, &rm) == 0 && rm.n == 0, "new store has %d rooms", rm.n);
	CHECK((r = store_room_get(st, "none@conf.x", &c, &sj)) == STORE_ENOENT, "get missing: %d",
	      r);
	CHECK(buf_used(&c) == 0 && buf_used(&sj) == 0, "missing room wrote into the buffers");
	CHECK((r = store_room_put(st, "b@conf.x", "<x>b</x>", "Hello")) == 0, "put b: %d", r);
	CHECK(room_is(st, "b@conf.x", "<x>b</x>", "Hello"), "get b");
	/* Empty strings are values, not absence. */
	CHECK(store_room_put(st, "a@conf.x", "", "") == 0, "put a empty");
	CHECK(room_is(st, "a@conf.x", "", ""), "empty config and subject");
	/* get appends to what the buffers hold; either buffer may be NULL. */
	buf_puts(&c, "pre:");
	buf_puts(&sj, "pre:");
	CHECK(store_room_get(st, "b@conf.x", &c, &sj) == 0 &&
		  strcmp(buf_head(&c), "pre:<x>b</x>") == 0 &&
		  strcmp(buf_head(&sj), "pre:Hello") == 0,
	      "append: '%s' '%s'", buf_head(&c), buf_head(&sj));
	buf_reset(&c);
	CHECK(store_room_get(st, "b@conf.x", &c, NULL) == 0 &&
		  strcmp(buf_head(&c), "<x>b</x>") == 0,
	      "config only: '%s'", buf_head(&c));
	buf_reset(&sj);
	CHECK(store_room_get(st, "b@conf.x", NULL, &sj) == 0 && strcmp(buf_head(&sj), "Hello") == 0,
	      "subject only: '%s'", buf_head(&sj));
	CHECK(store_room_get(st, "b@conf.x", NULL, NULL) == 0, "existence check");
	CHECK(store_room_get(st, "none@conf.x", NULL, NULL) == STORE_ENOENT, "existence of none");
	/* Replacing changes both fields, keeps one row. */
	CHECK(store_room_put(st, "b@conf.x", "<x>b2</x>", "") == 0, "replace b");
	CHECK(room_is(st, "b@conf.x", "<x>b2</x>", ""), "replaced b");
	/* Case and resource matter: JIDs are compared as the caller normalised them. */
	CHECK(store_room_get(st, "B@conf.x", NULL, NULL) == STORE_ENOENT, "case-folded lookup");
	CHECK(store_room_put(st, "c@conf.x", "<x>c</x>", "S\xc3\xa9") == 0, "put c");
	CHECK(room_list(st, &rm) == 0 && rm.n == 3 && strcmp(rm.jid[0], "a@conf.x") == 0 &&
		  strcmp(rm.jid[1], "b@conf.x") == 0 && strcmp(rm.jid[2], "c@conf.x") == 0 &&
		  strcmp(rm.config[0], "") == 0 && strcmp(rm.config[1], "<x>b2</x>") == 0 &&
		  strcmp(rm.config[2], "<x>c</x>") == 0,
	      "list: %d %s %s %s", rm.n, rm.jid[0], rm.jid[1], rm.jid[2]);
	/* A large configuration round-trips byte for byte. */
	for (int i = 0; i < 20000; i++)
		buf_printf(&big, "<f v='%d'>\xe2\x82\xac</f>", i);
	CHECK(store_room_put(st, "big@conf.x", buf_head(&big), "s") == 0, "put big");
	buf_reset(&c);
	CHECK(store_room_get(st, "big@conf.x", &c, NULL) == 0 && buf_used(&c) == buf_used(&big) &&
		  memcmp(buf_head(&c), buf_head(&big), buf_used(&big)) == 0,
	      "big config: %zu of %zu bytes", buf_used(&c), buf_used(&big));
	/* Corrupt input: a NULL field is refused and changes nothing. */
	quiet();
	CHECK((r = store_room_put(st, "b@conf.x", NULL, "x")) == STORE_EIO, "NULL config: %d", r);
	CHECK((r = store_room_put(st, "b@conf.x", "x", NULL)) == STORE_EIO, "NULL subject: %d", r);
	CHECK((r = store_room_put(st, NULL, "x", "x")) == STORE_EIO, "NULL jid: %d", r);
	loud();
	CHECK(room_is(st, "b@conf.x", "<x>b2</x>", ""), "refused put changed b");
	/* Rooms belong to no account: deleting a same-named account leaves them. */
	CHECK(store_account_create(st, "b@conf.x", "c", 1) == 0 &&
		  store_account_delete(st, "b@conf.x") == 0,
	      "account of the room's name");
	CHECK(room_is(st, "b@conf.x", "<x>b2</x>", ""), "account deletion took a room");
	CHECK(store_room_delete(st, "a@conf.x") == 0, "delete a");
	CHECK(store_room_delete(st, "a@conf.x") == 0, "delete a twice");
	CHECK(store_room_delete(st, "none@conf.x") == 0, "delete missing");
	CHECK(store_room_get(st, "a@conf.x", NULL, NULL) == STORE_ENOENT, "a survived delete");
	store_close(st);

	/* Everything survives a reopen; updated is the wall clock of the last put. */
	st = open_dir(dir);
	CHECK(st && room_list(st, &rm) == 0 && rm.n == 3 && strcmp(rm.jid[0], "b@conf.x") == 0 &&
		  strcmp(rm.jid[1], "big@conf.x") == 0 && strcmp(rm.jid[2], "c@conf.x") == 0,
	      "after reopen: %d", rm.n);
	CHECK(st && room_is(st, "c@conf.x", "<x>c</x>", "S\xc3\xa9"), "c after reopen");
	store_close(st);
	CHECK(count_raw(dir, "SELECT count(*) FROM rooms WHERE updated BETWEEN 1700000000000"
			     " AND 4102444800000") == 3,
	      "updated is not wall-clock ms");
	buf_free(&c);
	buf_free(&sj);
	buf_free(&big);
}

static void
test_room_affiliations(void)
{
	const char *dir = tpath("roomaff");
	struct store *st = open_dir(dir);
	struct affs a;
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_room_put(st, "r@conf.x", "<c/>", "") == 0 &&
		  store_room_put(st, "q@conf.x", "<c/>", "") == 0,
	      "put rooms");
	CHECK(aff_load(st, "r@conf.x", &a) == 0 && a.n == 0, "new room has %d", a.n);
	CHECK((r = store_room_set_affiliation(st, "r@conf.x", "owner@x", 1)) == 0, "set owner: %d",
	      r);
	CHECK(store_room_set_affiliation(st, "r@conf.x", "member@x", 3) == 0, "set member");
	CHECK(store_room_set_affiliation(st, "r@conf.x", "admin@x", 2) == 0, "set admin");
	CHECK(store_room_set_affiliation(st, "r@conf.x", "evil.example", -1) == 0,
	      "set a domain, negative value");
	CHECK(store_room_set_affiliation(st, "q@conf.x", "member@x", 5) == 0, "set in q");
	CHECK(aff_load(st, "r@conf.x", &a) == 0 && a.n == 4 && strcmp(a.jid[0], "admin@x") == 0 &&
		  a.aff[0] == 2 && strcmp(a.jid[1], "evil.example") == 0 && a.aff[1] == -1 &&
		  strcmp(a.jid[2], "member@x") == 0 && a.aff[2] == 3 &&
		  strcmp(a.jid[3], "owner@x") == 0 && a.aff[3] == 1,
	      "order: %d %s=%d %s=%d %s=%d %s=%d", a.n, a.jid[0], a.aff[0], a.jid[1], a.aff[1],
	      a.jid[2], a.aff[2], a.jid[3], a.aff[3]);
	/* Replace, then remove; removing an absent one is a no-op. */
	CHECK(store_room_set_affiliation(st, "r@conf.x", "member@x", 2) == 0, "replace member");
	CHECK(store_room_set_affiliation(st, "r@conf.x", "evil.example", 0) == 0, "remove domain");
	CHECK(store_room_set_affiliation(st, "r@conf.x", "never@x", 0) == 0, "remove absent");
	CHECK(aff_load(st, "r@conf.x", &a) == 0 && a.n == 3 && strcmp(a.jid[0], "admin@x") == 0 &&
		  strcmp(a.jid[1], "member@x") == 0 && a.aff[1] == 2 &&
		  strcmp(a.jid[2], "owner@x") == 0,
	      "after replace/remove: %d %s=%d", a.n, a.jid[1], a.aff[1]);
	CHECK(aff_load(st, "q@conf.x", &a) == 0 && a.n == 1 && a.aff[0] == 5, "q touched: %d", a.n);
	/* An unknown room is refused both ways and gains nothing. */
	CHECK((r = store_room_set_affiliation(st, "ghost@conf.x", "a@x", 1)) == STORE_ENOENT,
	      "set in unknown room: %d", r);
	CHECK((r = store_room_set_affiliation(st, "ghost@conf.x", "a@x", 0)) == STORE_ENOENT,
	      "remove in unknown room: %d", r);
	CHECK(aff_load(st, "ghost@conf.x", &a) == 0 && a.n == 0, "unknown room lists %d", a.n);
	quiet();
	CHECK((r = store_room_set_affiliation(st, "r@conf.x", NULL, 1)) == STORE_EIO,
	      "NULL jid: %d", r);
	CHECK((r = store_room_set_affiliation(st, NULL, "a@x", 1)) == STORE_EIO, "NULL room: %d",
	      r);
	loud();
	/* Replacing the room's configuration keeps its affiliations (an upsert, no REPLACE). */
	CHECK(store_room_put(st, "r@conf.x", "<c2/>", "new") == 0, "replace room");
	CHECK(aff_load(st, "r@conf.x", &a) == 0 && a.n == 3, "replacing the room lost %d", 3 - a.n);
	store_close(st);

	st = open_dir(dir);
	CHECK(st && aff_load(st, "r@conf.x", &a) == 0 && a.n == 3, "lost across reopen: %d", a.n);
	/* Deleting a room takes its affiliations, not another room's. */
	CHECK(st && store_room_delete(st, "r@conf.x") == 0, "delete r");
	CHECK(st && aff_load(st, "r@conf.x", &a) == 0 && a.n == 0, "deleted room lists %d", a.n);
	CHECK(st && store_room_set_affiliation(st, "r@conf.x", "a@x", 1) == STORE_ENOENT,
	      "set in deleted room");
	CHECK(st && store_room_put(st, "r@conf.x", "<c/>", "") == 0 &&
		  aff_load(st, "r@conf.x", &a) == 0 && a.n == 0,
	      "recreated room starts with %d", a.n);
	CHECK(st && aff_load(st, "q@conf.x", &a) == 0 && a.n == 1, "q lost its affiliation");
	store_close(st);
	CHECK(count_raw(dir, "SELECT count(*) FROM room_affiliations WHERE room = 'r@conf.x'") == 0,
	      "affiliation rows outlived their room");
	CHECK(count_raw(dir, "SELECT count(*) FROM room_affiliations") == 1, "q's row missing");
}

/* ---- room archives (XEP-0313 section 8) ---- */

static void
test_room_archive(void)
{
	const char *dir = tpath("room-archive");
	struct store *st = open_dir(dir);
	struct store_archive_msg m = {arc_id(0), "a@x", "a@x/nick", "<m/>", 4, NOW, false};
	struct store_archive_query q;
	struct apage p;
	bool complete;
	int pages, r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	/* Rooms a@x and b@x: no account and no rooms row needed, so never STORE_ENOENT. */
	arc_fill(st, store_room_archive_put);
	CHECK((r = store_room_archive_put(st, &m)) == STORE_EEXIST, "duplicate id: %d", r);
	m.owner = "b@x";
	CHECK((r = store_room_archive_put(st, &m)) == STORE_EEXIST, "id of another room: %d", r);
	m = (struct store_archive_msg){7, "ghost@conf.x", "ghost@conf.x/n", "<m/>", 4, NOW, true};
	CHECK((r = store_room_archive_put(st, &m)) == 0, "temporary room: %d", r);
	quiet();
	m.id = 8;
	m.stanza = NULL;
	CHECK((r = store_room_archive_put(st, &m)) == STORE_EIO, "NULL stanza: %d", r);
	m.stanza = "<m/>";
	m.with = NULL;
	CHECK((r = store_room_archive_put(st, &m)) == STORE_EIO, "NULL with: %d", r);
	loud();
	q = (struct store_archive_query){.owner = "ghost@conf.x", .max = 10};
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && p.n == 1 && p.id[0] == 7 && complete &&
		  strcmp(p.first_with, "ghost@conf.x/n") == 0,
	      "temporary room: n %d with '%s'", p.n, p.first_with);

	/* Forward by 100, as RSM <after/>: ten full pages, the last one complete. */
	q = (struct store_archive_query){.owner = "a@x", .max = 100};
	for (pages = 0; pages < 12; pages++) {
		r = rpage_run(st, &q, &p, &complete);
		CHECK(r == 0 && apage_is(&p, 100 * pages, 100 * pages + 99) &&
			  complete == (pages == 9),
		      "page %d: r %d n %d complete %d", pages, r, p.n, complete);
		if (complete || p.n == 0)
			break;
		q.after_id = p.id[p.n - 1];
	}
	CHECK(pages == 9, "forward paging took %d pages", pages + 1);
	/* The last page, delivered oldest first; then the one before it. */
	q = (struct store_archive_query){.owner = "a@x", .max = 100, .last = true};
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 900, 999) && !complete,
	      "last page: n %d complete %d", p.n, complete);
	q.before_id = arc_id(100);
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 0, 99) && complete,
	      "last before 100: n %d complete %d", p.n, complete);
	/* One occupant: 333 rows of w1@y. */
	q = (struct store_archive_query){.owner = "a@x", .with = "w1@y", .max = 400};
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && p.n == 333 && !p.bad && complete,
	      "with w1@y: n %d bad %d", p.n, p.bad);
	q = (struct store_archive_query){
	    .owner = "a@x", .with = "w0@y", .end_ms = arc_stamp(30), .max = 3, .last = true};
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && p.n == 3 && p.id[0] == arc_id(24) &&
		  p.id[2] == arc_id(30) && !complete && !p.bad,
	      "last with filter: n %d first %lld", p.n, (long long)p.id[0]);
	/* Stamp range, inclusive at both ends, over two pages. */
	q = (struct store_archive_query){
	    .owner = "a@x", .start_ms = arc_stamp(100), .end_ms = arc_stamp(199), .max = 60};
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 100, 159) && !complete,
	      "range page 1: n %d complete %d", p.n, complete);
	q.after_id = arc_id(159);
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 160, 199) && complete,
	      "range page 2: n %d complete %d", p.n, complete);
	q = (struct store_archive_query){.owner = "a@x", .after_id = INT64_MAX, .max = 10};
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && p.n == 0 && complete, "empty: %d", p.n);

	/* The account archive of a@x is another archive, though the string is the same. */
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create account a@x");
	m = (struct store_archive_msg){arc_id(0), "a@x", "f@y", "<acc/>", 6, NOW, true};
	CHECK((r = store_archive_put(st, &m)) == 0, "account put with a room row's id: %d", r);
	q = (struct store_archive_query){.owner = "a@x", .max = 2000};
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 1 && strcmp(p.first, "<acc/>") == 0,
	      "account archive sees %d rows", p.n);
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && apage_is(&p, 0, ARC_N - 1) && complete,
	      "room archive sees %d rows", p.n);
	CHECK(store_archive_clear(st, "a@x", NULL) == 0 && rpage_run(st, &q, &p, &complete) == 0 &&
		  p.n == ARC_N,
	      "account clear took room rows: %d left", p.n);
	CHECK(store_archive_put(st, &m) == 0 && store_room_archive_clear(st, "a@x") == 0,
	      "room clear");
	CHECK(rpage_run(st, &q, &p, &complete) == 0 && p.n == 0 && complete, "room left %d", p.n);
	CHECK(apage_run(st, &q, &p, &complete) == 0 && p.n == 1, "room clear took account rows");
	CHECK(store_room_archive_put(st, &m) == 0 && store_account_delete(st, "a@x") == 0 &&
		  rpage_run(st, &q, &p, &complete) == 0 && p.n == 1,
	      "account deletion took room rows: %d left", p.n);
	/* Neither deleting its rooms row nor clearing another room touches b@x's archive. */
	CHECK(store_room_put(st, "b@x", "<c/>", "") == 0 && store_room_delete(st, "b@x") == 0,
	      "room b@x put and delete");
	CHECK(store_room_archive_clear(st, "none@conf.x") == 0, "clear an unknown room");
	store_close(st);
	st = open_dir(dir);
	q = (struct store_archive_query){.owner = "b@x", .max = 100};
	CHECK(st && rpage_run(st, &q, &p, &complete) == 0 && p.n == 10 && !p.bad && complete,
	      "b@x after reopen: n %d", p.n);
	store_close(st);
}

int
main(void)
{
	store_tests_start("test_store_archive");

	test_offline_queue();
	test_offline_quota();
	test_offline_bytes();
	test_offline_expire();
	test_offline_plans();
	test_archive_put();
	test_archive_query();
	test_archive_plans();
	test_room_archive_plans();
	test_private();
	test_block();
	test_account_cascade();
	test_room();
	test_room_affiliations();
	test_room_archive();

	return store_tests_finish("test_store_archive");
}
