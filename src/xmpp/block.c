/*
 * block: XEP-0191 blocking. An account keeps a set of blocked JIDs (full, bare or
 * domain); nothing from a blocked entity reaches the account, nothing the account sends
 * reaches it, and the account's resources that asked for the list learn of changes.
 *
 * Invariant: the set in memory (loaded with the account) is the one enforced; every
 * change is queued to storage in order before it is acknowledged to the client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define NS_BLOCKING	   "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"
#define BLOCK_ITEMS_MAX	   1000 /* items in one block/unblock request */

bool
block_is(const struct xml_node *st)
{
	return xml_child(st, "blocklist", NS_BLOCKING) || xml_child(st, "block", NS_BLOCKING) ||
	       xml_child(st, "unblock", NS_BLOCKING);
}

/* XEP-0191 section 3.3 (matching as in XEP-0016): full, bare, domain/resource, domain. */
bool
block_matches(const struct account *a, const struct jid *j)
{
	char *s;
	bool hit;

	if (!a->blocked.count)
		return false;
	if (j->local) {
		/* The account never blocks itself, whatever its domain-wide entries say. */
		struct jid own;
		bool self = false;
		if (jid_parse(a->bare, &own) == 0) {
			self =
			    strcmp(own.local, j->local) == 0 && strcmp(own.domain, j->domain) == 0;
			jid_free(&own);
		}
		if (self)
			return false;
		s = jid_full(j);
		hit = hmap_get(&a->blocked, s) != NULL;
		free(s);
		if (hit)
			return true;
		if (j->resource) {
			struct jid bare = {j->local, j->domain, NULL};
			s = jid_full(&bare);
			hit = hmap_get(&a->blocked, s) != NULL;
			free(s);
			if (hit)
				return true;
		}
	}
	if (j->resource) {
		struct jid dr = {NULL, j->domain, j->resource};
		s = jid_full(&dr);
		hit = hmap_get(&a->blocked, s) != NULL;
		free(s);
		if (hit)
			return true;
	}
	return hmap_get(&a->blocked, j->domain) != NULL;
}

bool
block_matches_str(const struct account *a, const char *jid)
{
	struct jid j;
	bool hit;

	if (!a->blocked.count || jid_parse(jid, &j) < 0)
		return false;
	hit = block_matches(a, &j);
	jid_free(&j);
	return hit;
}

void
block_refuse(struct session *s, struct xml_node *st)
{
	/* XEP-0191 section 3.5: the user is told the recipient is blocked. */
	struct xml_node *r = stanza_error_reply(st, "cancel", "not-acceptable", NULL);
	struct xml_node *err = xml_child(r, "error", NS_CLIENT);

	xml_add_el(err, "blocked", NS_BLOCKING_ERRORS);
	xml_set_attr(r, "from", NULL);
	xml_set_attr(r, "to", s->full);
	if (!stanza_is_error(st))
		session_send(s, r);
	xml_free(r);
	xml_free(st);
}

struct block_job {
	struct store_job job;
	char *owner;
	char **jids; /* NULL-terminated; NULL list with remove = everything */
	bool remove;
};

static int
block_run(struct store *st, struct store_job *job)
{
	struct block_job *bj = container_of(job, struct block_job, job);
	int r;

	if (!bj->jids)
		return store_block_set(st, bj->owner, NULL, true);
	for (char **j = bj->jids; *j; j++) {
		if ((r = store_block_set(st, bj->owner, *j, bj->remove)) < 0)
			return r;
	}
	return 0;
}

static void
block_done(struct store_job *job)
{
	struct block_job *bj = container_of(job, struct block_job, job);

	if (job->result < 0)
		log_error("block list of %s: storage failed; the change is lost at restart",
			  bj->owner);
	for (char **j = bj->jids; j && *j; j++)
		free(*j);
	free(bj->jids);
	free(bj->owner);
	free(bj);
}

/* XEP-0191 section 3.3: every resource that asked for the list hears of the change. */
static void
push(struct account *a, const char *what, char **jids)
{
	char id[32];

	for (struct session *s = a->sessions; s; s = s->acct_next) {
		if (!s->block_interested)
			continue;
		snprintf(id, sizeof id, "push%lu", ++s->w->push_seq);
		struct xml_node *iq = stanza_new("iq", NULL, s->full, "set", id);
		struct xml_node *el = xml_add_el(iq, what, NS_BLOCKING);
		for (char **j = jids; j && *j; j++)
			xml_set_attr(xml_add_el(el, "item", NULL), "jid", *j);
		session_send(s, iq);
		xml_free(iq);
	}
}

/* XEP-0191 section 3.4: a subscriber we stop blocking gets our current presence again. */
static void
unblocked(struct account *a, const char *jid)
{
	struct roster_item *ri = account_roster_get(a, jid);

	if (!ri || !(ri->sub & STORE_SUB_FROM))
		return;
	for (struct session *o = a->sessions; o; o = o->acct_next) {
		if (o->available && o->presence) {
			struct xml_node *p = xml_copy(o->presence);
			xml_set_attr(p, "from", o->full);
			xml_set_attr(p, "to", jid);
			route(a->w, p);
		}
	}
}

void
block_iq(struct session *s, struct xml_node *st)
{
	struct account *a = s->acct;
	const char *type = xml_attr(st, "type");
	struct xml_node *el, *it;
	struct block_job *bj;
	size_t n = 0;
	const char *k;
	void *v;

	if (strcmp(type, "get") == 0) {
		struct xml_node *list;
		if (!xml_child(st, "blocklist", NS_BLOCKING))
			goto bad;
		list = xml_el_new("blocklist", NS_BLOCKING);
		s->block_interested = true;
		for (size_t i = 0; hmap_next(&a->blocked, &i, &k, &v);)
			xml_set_attr(xml_add_el(list, "item", NULL), "jid", k);
		session_reply(s, st, list);
		xml_free(st);
		return;
	}
	el = xml_child(st, "block", NS_BLOCKING);
	if (!el)
		el = xml_child(st, "unblock", NS_BLOCKING);
	if (!el)
		goto bad;
	bj = xcalloc(1, sizeof *bj);
	bj->owner = xstrdup(a->bare);
	bj->remove = strcmp(el->name, "unblock") == 0;
	for (it = xml_child(el, "item", NS_BLOCKING); it; it = xml_next(it, "item", NS_BLOCKING))
		n++;
	if (n > BLOCK_ITEMS_MAX || (!n && !bj->remove)) {
		/* XEP-0191 section 3.3: a block without items is bad-request. */
		free(bj->owner);
		free(bj);
		goto bad;
	}
	if (n) {
		bj->jids = xcalloc(n + 1, sizeof *bj->jids);
		n = 0;
		for (it = xml_child(el, "item", NS_BLOCKING); it;
		     it = xml_next(it, "item", NS_BLOCKING)) {
			struct jid j;
			if (!xml_attr(it, "jid") || jid_parse(xml_attr(it, "jid"), &j) < 0) {
				block_done(&bj->job); /* frees what was collected */
				session_reply_error(s, st, "modify", "jid-malformed", NULL);
				xml_free(st);
				return;
			}
			bj->jids[n++] = jid_full(&j);
			jid_free(&j);
		}
	}
	if (!bj->remove) {
		for (char **j = bj->jids; *j; j++) {
			/* XEP-0191 section 3.3.1: a blocked contact sees us go offline. */
			struct roster_item *ri = account_roster_get(a, *j);
			if (!hmap_get(&a->blocked, *j) && ri && (ri->sub & STORE_SUB_FROM)) {
				for (struct session *o = a->sessions; o; o = o->acct_next)
					if (o->available)
						route(a->w, stanza_new("presence", o->full, *j,
								       "unavailable", NULL));
			}
			hmap_put(&a->blocked, *j, a);
		}
	} else if (bj->jids) {
		for (char **j = bj->jids; *j; j++) {
			if (hmap_del(&a->blocked, *j))
				unblocked(a, *j);
		}
	} else {
		for (size_t i = 0; hmap_next(&a->blocked, &i, &k, &v);)
			unblocked(a, k);
		hmap_free(&a->blocked);
	}
	push(a, el->name, bj->jids);
	bj->job.run = block_run;
	bj->job.done = block_done; /* on the storage thread */
	store_submit(a->w->srv->store, &bj->job);
	session_reply(s, st, NULL);
	xml_free(st);
	return;
bad:
	session_reply_error(s, st, "modify", "bad-request", NULL);
	xml_free(st);
}
