/*
 * test_store_pep: unit tests of the store's personal eventing tables (XEP-0163): node
 * configuration round trip, items newest first, a republished id counting as the newest,
 * trimming to keep, lookups by id, deletion of items and nodes, and the cascades from nodes
 * and accounts.
 */
#include "store_helpers.h"

struct ids {
	char list[256];
};

static void
collect_ids(void *arg, const char *id, const char *xml)
{
	struct ids *ids = arg;

	(void)xml;
	if (ids->list[0])
		strncat(ids->list, ",", sizeof ids->list - strlen(ids->list) - 1);
	strncat(ids->list, id, sizeof ids->list - strlen(ids->list) - 1);
}

static const char *
items(struct store *st, const char *owner, const char *node, const char *id, size_t max)
{
	static struct ids ids;

	memset(&ids, 0, sizeof ids);
	if (store_pep_items(st, owner, node, id, max, collect_ids, &ids) < 0)
		return "(error)";
	return ids.list;
}

static void
test_pep(void)
{
	struct store *st = open_dir(tpath("pep"));
	struct buf b = {0};
	int r;

	if (!st) {
		CHECK(0, "open failed");
		return;
	}
	CHECK(store_account_create(st, "a@x", "c", 1) == 0, "create a");
	CHECK((r = store_pep_node_get(st, "a@x", "n", &b)) == STORE_ENOENT, "no node: %d", r);
	CHECK((r = store_pep_node_put(st, "nobody@x", "n", "c")) == STORE_ENOENT,
	      "node of a missing account: %d", r);
	CHECK(store_pep_item_put(st, "a@x", "n", "1", "<x/>", 5) == STORE_ENOENT,
	      "item without node");
	CHECK(store_pep_node_put(st, "a@x", "n", "max=1") == 0, "put node");
	CHECK(store_pep_node_put(st, "a@x", "m", "") == 0, "put node m");
	CHECK(store_pep_node_count(st, "a@x") == 2, "two nodes");
	for (int i = 1; i <= 4; i++) {
		char id[8], xml[32];
		snprintf(id, sizeof id, "%d", i);
		snprintf(xml, sizeof xml, "<i n='%d'/>", i);
		CHECK(store_pep_item_put(st, "a@x", "n", id, xml, 3) == 0, "put %d", i);
	}
	CHECK(strcmp(items(st, "a@x", "n", NULL, 0), "4,3,2") == 0, "trimmed to 3: %s",
	      items(st, "a@x", "n", NULL, 0));
	CHECK(store_pep_item_put(st, "a@x", "n", "2", "<i again=''/>", 3) == 0, "republish 2");
	CHECK(strcmp(items(st, "a@x", "n", NULL, 0), "2,4,3") == 0, "republished is newest: %s",
	      items(st, "a@x", "n", NULL, 0));
	CHECK(strcmp(items(st, "a@x", "n", NULL, 2), "2,4") == 0, "newest 2");
	CHECK(strcmp(items(st, "a@x", "n", "3", 0), "3") == 0, "by id");
	CHECK(strcmp(items(st, "a@x", "n", "1", 0), "") == 0, "trimmed id is gone");
	CHECK(store_pep_trim(st, "a@x", "n", 1) == 0 &&
		  strcmp(items(st, "a@x", "n", NULL, 0), "2") == 0,
	      "trim to 1: %s", items(st, "a@x", "n", NULL, 0));
	CHECK(store_pep_item_del(st, "a@x", "n", "2") == 0, "retract");
	CHECK(store_pep_item_del(st, "a@x", "n", "2") == STORE_ENOENT, "retract twice");
	CHECK(store_pep_item_put(st, "a@x", "n", "5", "<i/>", 3) == 0, "put 5");
	buf_reset(&b);
	CHECK(store_pep_node_get(st, "a@x", "n", &b) == 0 && strcmp(buf_head(&b), "max=1") == 0,
	      "config round trip");
	CHECK(store_pep_node_put(st, "a@x", "n", "max=2") == 0 &&
		  strcmp(items(st, "a@x", "n", NULL, 0), "5") == 0,
	      "reconfiguring keeps the items");
	CHECK(store_pep_node_del(st, "a@x", "n") == 0, "delete node");
	CHECK(store_pep_node_del(st, "a@x", "n") == STORE_ENOENT, "delete twice");
	CHECK(store_pep_node_put(st, "a@x", "n", "") == 0 &&
		  strcmp(items(st, "a@x", "n", NULL, 0), "") == 0,
	      "items went with their node");
	CHECK(store_pep_item_put(st, "a@x", "m", "k", "<k/>", 1) == 0, "put in m");
	CHECK(store_account_delete(st, "a@x") == 0, "delete account");
	CHECK(store_pep_node_count(st, "a@x") == 0, "nodes went with the account");
	CHECK(strcmp(items(st, "a@x", "m", NULL, 0), "") == 0, "items went with the account");
	buf_free(&b);
	store_close(st);
}

int
main(void)
{
	store_tests_start("test_store_pep");
	test_pep();
	return store_tests_finish("test_store_pep");
}
