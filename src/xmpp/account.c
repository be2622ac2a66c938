/*
 * account: the in-memory state of an account on its home worker: its bound sessions
 * and a write-through cache of its roster. An account is loaded from storage on first
 * use (work for it waits, in order, until the load completes) and dropped from memory
 * after a while without sessions.
 *
 * Invariant: the cache is authoritative while loaded; every change is queued to the
 * storage thread in the order it was made, and the storage thread runs jobs in order,
 * so a later reload always sees the latest roster.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp_int.h"

#define ACCOUNT_IDLE_MS 60000 /* keep an account without sessions cached this long */

struct account_wait {
	struct account_wait *next;
	void (*fn)(struct account *a, void *arg);
	void *arg;
};

struct load_job {
	struct store_job job;
	struct account *a;
	char *bare;
	struct hmap roster;
	struct hmap blocked;
	uint64_t ver;
	void *ext[XMPP_EXT_MAX]; /* what each extension loaded (struct xmpp_ext.load) */
	struct pep_account *pep;
	int pushes;
};

static void
load_blocked(void *arg, const char *jid)
{
	struct load_job *lj = arg;
	hmap_put(&lj->blocked, jid, lj); /* a set: the value only says "present" */
}

static void
item_free(struct roster_item *it)
{
	free(it->contact);
	free(it->name);
	free(it->groups);
	free(it);
}

static void
roster_clear(struct hmap *m)
{
	const char *k;
	void *v;

	for (size_t i = 0; hmap_next(m, &i, &k, &v);)
		item_free(v);
	hmap_free(m);
}

static void
account_free(struct account *a)
{
	const char *k;
	void *v;

	for (struct xmpp_ext **e = xmpp_exts; *e; e++)
		if ((*e)->account_free)
			(*e)->account_free(a);
	pep_account_free(a);
	hmap_del(&a->w->accounts, a->bare);
	timer_stop(a->w->loop, &a->idle);
	roster_clear(&a->roster);
	hmap_free(&a->blocked);
	hmap_free(&a->live);
	for (size_t i = 0; hmap_next(&a->devices, &i, &k, &v);)
		xml_free(v);
	hmap_free(&a->devices);
	free(a->bare);
	free(a);
}

static void
idle_expired(struct timer *t)
{
	struct account *a = container_of(t, struct account, idle);

	if (!a->sessions && !a->refs && !a->waits && !a->devices.count)
		account_free(a);
}

void
account_maybe_unload(struct account *a)
{
	if (a->sessions || a->refs || a->waits || a->devices.count)
		return;
	/* Missing accounts are not cached: batonctl may create them at any moment. */
	if (a->state == AS_MISSING)
		account_free(a);
	else if (!a->w->stopping)
		timer_start(a->w->loop, &a->idle, ACCOUNT_IDLE_MS);
}

static void
load_item(void *arg, const struct store_roster_item *si)
{
	struct load_job *lj = arg;
	struct roster_item *it = xcalloc(1, sizeof *it);

	it->contact = xstrdup(si->contact);
	it->name = si->name ? xstrdup(si->name) : NULL;
	it->groups = si->groups && *si->groups ? xstrdup(si->groups) : NULL;
	it->sub = si->sub;
	it->ask = si->ask;
	it->pending_in = si->pending_in;
	it->hidden = si->hidden;
	hmap_put(&lj->roster, it->contact, it);
}

static void
count_push(void *arg, const struct store_push *p)
{
	(*(int *)arg)++;
}

static int
load_run(struct store *st, struct store_job *job)
{
	struct load_job *lj = container_of(job, struct load_job, job);
	struct buf creds = {0};
	int r = store_account_creds(st, lj->bare, &creds);

	buf_free(&creds);
	if (r < 0)
		return r;
	r = store_roster_load(st, lj->bare, &lj->ver, load_item, lj);
	if (r < 0)
		return r;
	for (struct xmpp_ext **e = xmpp_exts; *e; e++)
		if ((*e)->load)
			lj->ext[(*e)->slot] = (*e)->load(st, lj->bare);
	lj->pep = pep_account_load(st, lj->bare);
	if (store_push_list(st, lj->bare, count_push, &lj->pushes) < 0)
		lj->pushes = -1;
	return store_block_list(st, lj->bare, load_blocked, lj);
}

static void
load_done(struct store_job *job)
{
	struct load_job *lj = container_of(job, struct load_job, job);
	struct account *a = lj->a;

	a->refs--;
	memcpy(a->ext, lj->ext, sizeof a->ext); /* freed with the account either way */
	a->pep = lj->pep;
	a->pushes = lj->pushes;
	if (job->result == 0) {
		a->state = AS_READY;
		a->roster = lj->roster;
		a->roster_ver = lj->ver;
		a->blocked = lj->blocked;
	} else {
		hmap_free(&lj->blocked);
		if (job->result != STORE_ENOENT)
			log_error("account %s: storage failed while loading", a->bare);
		a->state = AS_MISSING;
		roster_clear(&lj->roster);
	}
	free(lj->bare);
	free(lj);
	a->refs++; /* a callback below may end in account_maybe_unload(a) */
	while (a->waits) {
		struct account_wait *wt = a->waits;
		a->waits = wt->next;
		if (!a->waits)
			a->waits_tail = NULL;
		wt->fn(a, wt->arg);
		free(wt);
	}
	a->refs--;
	account_maybe_unload(a);
}

void
account_with(struct worker *w, const char *bare, void (*fn)(struct account *a, void *arg),
	     void *arg)
{
	struct account *a = hmap_get(&w->accounts, bare);
	struct account_wait *wt;

	if (a && a->state != AS_LOADING) {
		timer_stop(w->loop, &a->idle);
		a->refs++;
		fn(a, arg);
		a->refs--;
		account_maybe_unload(a);
		return;
	}
	if (!a) {
		struct load_job *lj = xcalloc(1, sizeof *lj);
		a = xcalloc(1, sizeof *a);
		a->w = w;
		a->bare = xstrdup(bare);
		a->state = AS_LOADING;
		a->idle.fn = idle_expired;
		hmap_put(&w->accounts, a->bare, a);
		lj->a = a;
		lj->bare = xstrdup(bare);
		lj->job.run = load_run;
		lj->job.done = load_done;
		a->refs++;
		worker_store(w, &lj->job);
	}
	wt = xcalloc(1, sizeof *wt);
	wt->fn = fn;
	wt->arg = arg;
	if (a->waits_tail)
		a->waits_tail->next = wt;
	else
		a->waits = wt;
	a->waits_tail = wt;
}

struct session *
account_session_find(struct account *a, const char *resource)
{
	for (struct session *s = a->sessions; s; s = s->acct_next) {
		if (strcmp(s->resource, resource) == 0)
			return s;
	}
	return NULL;
}

void
account_session_add(struct account *a, struct session *s)
{
	timer_stop(a->w->loop, &a->idle);
	s->acct_next = a->sessions;
	a->sessions = s;
}

void
account_session_remove(struct account *a, struct session *s)
{
	for (struct session **pp = &a->sessions; *pp; pp = &(*pp)->acct_next) {
		if (*pp == s) {
			*pp = s->acct_next;
			break;
		}
	}
	s->acct_next = NULL;
	account_maybe_unload(a);
}

/* ---- the roster cache ---- */

struct roster_job {
	struct store_job job;
	char *owner;
	struct store_roster_item it;
	bool remove;
	uint64_t ver;
};

static int
roster_job_run(struct store *st, struct store_job *job)
{
	struct roster_job *rj = container_of(job, struct roster_job, job);

	if (rj->remove)
		return store_roster_del(st, rj->owner, rj->it.contact, rj->ver);
	return store_roster_put(st, rj->owner, &rj->it, rj->ver);
}

static void
roster_job_done(struct store_job *job)
{
	struct roster_job *rj = container_of(job, struct roster_job, job);

	if (job->result < 0)
		log_error("roster of %s: storage failed; the change to %s is lost", rj->owner,
			  rj->it.contact);
	free(rj->owner);
	free((char *)rj->it.contact);
	free((char *)rj->it.name);
	free((char *)rj->it.groups);
	free(rj);
}

void
account_roster_save(struct account *a, const struct roster_item *it, bool remove)
{
	struct roster_job *rj = xcalloc(1, sizeof *rj);

	a->roster_ver++;
	rj->owner = xstrdup(a->bare);
	rj->it.contact = xstrdup(it->contact);
	rj->it.name = it->name ? xstrdup(it->name) : NULL;
	rj->it.groups = it->groups ? xstrdup(it->groups) : NULL;
	rj->it.sub = it->sub;
	rj->it.ask = it->ask;
	rj->it.pending_in = it->pending_in;
	rj->it.hidden = it->hidden;
	rj->remove = remove;
	rj->ver = a->roster_ver;
	rj->job.run = roster_job_run;
	rj->job.done = roster_job_done; /* runs on the storage thread: loop is NULL */
	store_submit(a->w->srv->store, &rj->job);
}

void
account_live(struct account *a, int64_t id, int delta)
{
	char key[24];
	intptr_t n;

	snprintf(key, sizeof key, "%lld", (long long)id);
	n = (intptr_t)hmap_get(&a->live, key) + delta;
	if (n > 0)
		hmap_put(&a->live, key, (void *)n);
	else
		hmap_del(&a->live, key);
}

bool
account_is_live(const struct account *a, int64_t id)
{
	char key[24];

	if (!a->live.count)
		return false;
	snprintf(key, sizeof key, "%lld", (long long)id);
	return hmap_get(&a->live, key) != NULL;
}

struct roster_item *
account_roster_get(struct account *a, const char *contact)
{
	return hmap_get(&a->roster, contact);
}

struct roster_item *
account_roster_add(struct account *a, const char *contact)
{
	struct roster_item *it = xcalloc(1, sizeof *it);

	it->contact = xstrdup(contact);
	it->hidden = true;
	hmap_put(&a->roster, it->contact, it);
	return it;
}

void
account_roster_del(struct account *a, const char *contact)
{
	struct roster_item *it = hmap_del(&a->roster, contact);
	if (it)
		item_free(it);
}

void
account_free_all(struct worker *w)
{
	const char *k;
	void *v;

	/* Collect first: account_free() edits the map. */
	size_t n = w->accounts.count, i = 0;
	struct account **all = xcalloc(n ? n : 1, sizeof *all);
	for (size_t it = 0; hmap_next(&w->accounts, &it, &k, &v);)
		all[i++] = v;
	for (size_t j = 0; j < i; j++) {
		struct account_wait *wt;
		while ((wt = all[j]->waits)) {
			all[j]->waits = wt->next;
			free(wt);
		}
		account_free(all[j]);
	}
	free(all);
}
