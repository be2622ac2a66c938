/*
 * store: picks the backend named by storage.backend, forwards the synchronous API to
 * it, and runs the storage thread: jobs queue under a mutex, the thread takes the whole
 * queue as one batch, runs it in one transaction with a savepoint per job (group commit),
 * then hands each completion to its loop's mailbox.
 *
 * Invariant: a job's result is final only after its batch committed (or failed as a
 * whole), and a job is never touched after its completion was delivered, because done()
 * may free it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "store_backend.h"

static const struct store_backend *const backends[] = {
    &store_sqlite_backend,
};

struct store *
store_open(const struct config *cfg, char *err, size_t errlen)
{
	const char *name = cfg->storage_backend ? cfg->storage_backend : "";

	for (size_t i = 0; i < ARRAY_LEN(backends); i++) {
		if (strcmp(backends[i]->name, name) == 0)
			return backends[i]->open(cfg, err, errlen);
	}
	snprintf(err, errlen, "unknown storage backend '%s'", name);
	return NULL;
}

void
store_close(struct store *st)
{
	if (st)
		st->be->close(st);
}

int
store_begin(struct store *st)
{
	return st->be->begin(st);
}

int
store_commit(struct store *st)
{
	return st->be->commit(st);
}

int
store_rollback(struct store *st)
{
	return st->be->rollback(st);
}

int
store_account_create(struct store *st, const char *jid, const void *creds, size_t n)
{
	return st->be->account_create(st, jid, creds, n);
}

int
store_account_creds(struct store *st, const char *jid, struct buf *out)
{
	return st->be->account_creds(st, jid, out);
}

int
store_account_set_creds(struct store *st, const char *jid, const void *creds, size_t n)
{
	return st->be->account_set_creds(st, jid, creds, n);
}

int
store_account_delete(struct store *st, const char *jid)
{
	return st->be->account_delete(st, jid);
}

int
store_account_list(struct store *st, void (*fn)(void *arg, const char *jid), void *arg)
{
	return st->be->account_list(st, fn, arg);
}

long
store_account_count(struct store *st)
{
	return st->be->account_count(st);
}

int
store_invite_put(struct store *st, const char *token, long uses, int64_t expires)
{
	return st->be->invite_put(st, token, uses, expires);
}

int
store_invite_get(struct store *st, const char *token, long *uses, int64_t *expires)
{
	return st->be->invite_get(st, token, uses, expires);
}

int
store_invite_use(struct store *st, const char *token)
{
	return st->be->invite_use(st, token);
}

int
store_invite_del(struct store *st, const char *token)
{
	return st->be->invite_del(st, token);
}

int
store_invite_list(struct store *st,
		  void (*fn)(void *arg, const char *token, long uses, int64_t expires,
			     int64_t created),
		  void *arg)
{
	return st->be->invite_list(st, fn, arg);
}

int
store_push_set(struct store *st, const char *owner, const struct store_push *p)
{
	return st->be->push_set(st, owner, p);
}

int
store_push_del(struct store *st, const char *owner, const char *jid, const char *node)
{
	return st->be->push_del(st, owner, jid, node);
}

int
store_push_list(struct store *st, const char *owner,
		void (*fn)(void *arg, const struct store_push *p), void *arg)
{
	return st->be->push_list(st, owner, fn, arg);
}

int
store_roster_load(struct store *st, const char *owner, uint64_t *ver,
		  void (*fn)(void *arg, const struct store_roster_item *it), void *arg)
{
	return st->be->roster_load(st, owner, ver, fn, arg);
}

int
store_roster_put(struct store *st, const char *owner, const struct store_roster_item *it,
		 uint64_t ver)
{
	return st->be->roster_put(st, owner, it, ver);
}

int
store_roster_del(struct store *st, const char *owner, const char *contact, uint64_t ver)
{
	return st->be->roster_del(st, owner, contact, ver);
}

int
store_offline_put(struct store *st, const struct store_offline_msg *m, long quota, int64_t *id)
{
	return st->be->offline_put(st, m, quota, id);
}

int
store_offline_load(struct store *st, const char *owner, int64_t after, int64_t now_ms, size_t limit,
		   void (*fn)(void *arg, const struct store_offline_msg *m), void *arg)
{
	return st->be->offline_load(st, owner, after, now_ms, limit, fn, arg);
}

int
store_offline_delete_ids(struct store *st, const char *owner, const int64_t *ids, size_t n)
{
	return st->be->offline_delete_ids(st, owner, ids, n);
}

int
store_offline_delete(struct store *st, const char *owner, int64_t upto)
{
	return st->be->offline_delete(st, owner, upto);
}

long
store_offline_count(struct store *st, const char *owner)
{
	return st->be->offline_count(st, owner);
}

long
store_offline_expire(struct store *st, int64_t now_ms, size_t limit,
		     void (*fn)(void *arg, const struct store_offline_msg *m), void *arg)
{
	return st->be->offline_expire(st, now_ms, limit, fn, arg);
}

int
store_archive_put(struct store *st, const struct store_archive_msg *m)
{
	return st->be->archive_put(st, m);
}

int
store_archive_query(struct store *st, const struct store_archive_query *q,
		    void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
		    bool *complete)
{
	return st->be->archive_query(st, q, fn, arg, complete);
}

int
store_archive_clear(struct store *st, const char *owner, const char *with)
{
	return st->be->archive_clear(st, owner, with);
}

int
store_room_archive_put(struct store *st, const struct store_archive_msg *m)
{
	return st->be->room_archive_put(st, m);
}

int
store_room_archive_query(struct store *st, const struct store_archive_query *q,
			 void (*fn)(void *arg, const struct store_archive_msg *m), void *arg,
			 bool *complete)
{
	return st->be->room_archive_query(st, q, fn, arg, complete);
}

int
store_room_archive_clear(struct store *st, const char *room)
{
	return st->be->room_archive_clear(st, room);
}

int
store_private_get(struct store *st, const char *owner, const char *key, struct buf *out)
{
	return st->be->private_get(st, owner, key, out);
}

int
store_private_set(struct store *st, const char *owner, const char *key, const char *xml, size_t len)
{
	return st->be->private_set(st, owner, key, xml, len);
}

int
store_block_list(struct store *st, const char *owner, void (*fn)(void *arg, const char *jid),
		 void *arg)
{
	return st->be->block_list(st, owner, fn, arg);
}

int
store_block_set(struct store *st, const char *owner, const char *jid, bool remove)
{
	return st->be->block_set(st, owner, jid, remove);
}

int
store_transfer_put(struct store *st, const char *owner, const char *id, const char *xml,
		   int64_t expires)
{
	return st->be->transfer_put(st, owner, id, xml, expires);
}

int
store_transfer_del(struct store *st, const char *owner, const char *id)
{
	return st->be->transfer_del(st, owner, id);
}

int
store_transfer_list(struct store *st, const char *owner, int64_t now_ms,
		    void (*fn)(void *arg, const char *id, const char *xml, int64_t expires),
		    void *arg)
{
	return st->be->transfer_list(st, owner, now_ms, fn, arg);
}

int
store_sms_slot_put(struct store *st, const char *link, int dir, unsigned slot,
		   const struct store_sms_msg *m)
{
	return st->be->sms_slot_put(st, link, dir, slot, m);
}

int
store_sms_slot_state(struct store *st, const char *link, int dir, unsigned slot, int64_t seq,
		     int state, const char *extra)
{
	return st->be->sms_slot_state(st, link, dir, slot, seq, state, extra);
}

int
store_sms_slots(struct store *st, const char *link,
		void (*fn)(void *arg, int dir, const struct store_sms_msg *m), void *arg)
{
	return st->be->sms_slots(st, link, fn, arg);
}

int
store_sms_links(struct store *st, void (*fn)(void *arg, const char *link), void *arg)
{
	return st->be->sms_links(st, fn, arg);
}

int
store_sms_queue_put(struct store *st, const char *link, const struct store_sms_msg *m, int64_t *id)
{
	return st->be->sms_queue_put(st, link, m, id);
}

int
store_sms_queue_list(struct store *st, const char *link, int64_t after, size_t limit,
		     void (*fn)(void *arg, const struct store_sms_msg *m), void *arg)
{
	return st->be->sms_queue_list(st, link, after, limit, fn, arg);
}

int
store_sms_queue_del(struct store *st, int64_t id)
{
	return st->be->sms_queue_del(st, id);
}

long
store_sms_queue_count(struct store *st, const char *link)
{
	return st->be->sms_queue_count(st, link);
}

int
store_sms_kv_set(struct store *st, const char *key, const char *value, int64_t expires)
{
	return st->be->sms_kv_set(st, key, value, expires);
}

int
store_sms_kv_get(struct store *st, const char *key, struct buf *out)
{
	return st->be->sms_kv_get(st, key, out);
}

int
store_sms_kv_del(struct store *st, const char *key)
{
	return st->be->sms_kv_del(st, key);
}

int
store_roster_owners(struct store *st, const char *contact, void (*fn)(void *arg, const char *owner),
		    void *arg)
{
	return st->be->roster_owners(st, contact, fn, arg);
}

int
store_identity_get(struct store *st, const char *owner, struct store_identity *out)
{
	return st->be->identity_get(st, owner, out);
}

int
store_identity_set(struct store *st, const char *owner, const struct store_identity *id)
{
	return st->be->identity_set(st, owner, id);
}

int
store_identity_log_add(struct store *st, const char *owner, const struct store_identity_event *e)
{
	return st->be->identity_log_add(st, owner, e);
}

int
store_identity_log(struct store *st, const char *owner, size_t max,
		   void (*fn)(void *arg, const struct store_identity_event *e), void *arg)
{
	return st->be->identity_log(st, owner, max, fn, arg);
}

int
store_room_put(struct store *st, const char *jid, const char *config, const char *subject)
{
	return st->be->room_put(st, jid, config, subject);
}

int
store_room_get(struct store *st, const char *jid, struct buf *config, struct buf *subject)
{
	return st->be->room_get(st, jid, config, subject);
}

int
store_room_delete(struct store *st, const char *jid)
{
	return st->be->room_delete(st, jid);
}

int
store_room_list(struct store *st, void (*fn)(void *arg, const char *jid, const char *config),
		void *arg)
{
	return st->be->room_list(st, fn, arg);
}

int
store_room_affiliations(struct store *st, const char *room,
			void (*fn)(void *arg, const char *jid, int affiliation), void *arg)
{
	return st->be->room_affiliations(st, room, fn, arg);
}

int
store_room_set_affiliation(struct store *st, const char *room, const char *jid, int affiliation)
{
	return st->be->room_set_affiliation(st, room, jid, affiliation);
}

int
store_pep_node_get(struct store *st, const char *owner, const char *node, struct buf *config)
{
	return st->be->pep_node_get(st, owner, node, config);
}

int
store_pep_node_put(struct store *st, const char *owner, const char *node, const char *config)
{
	return st->be->pep_node_put(st, owner, node, config);
}

int
store_pep_node_del(struct store *st, const char *owner, const char *node)
{
	return st->be->pep_node_del(st, owner, node);
}

long
store_pep_node_count(struct store *st, const char *owner)
{
	return st->be->pep_node_count(st, owner);
}

int
store_pep_nodes(struct store *st, const char *owner,
		void (*fn)(void *arg, const char *node, const char *config), void *arg)
{
	return st->be->pep_nodes(st, owner, fn, arg);
}

int
store_pep_item_put(struct store *st, const char *owner, const char *node, const char *id,
		   const char *xml, long keep)
{
	return st->be->pep_item_put(st, owner, node, id, xml, keep);
}

int
store_pep_item_del(struct store *st, const char *owner, const char *node, const char *id)
{
	return st->be->pep_item_del(st, owner, node, id);
}

int
store_pep_trim(struct store *st, const char *owner, const char *node, long keep)
{
	return st->be->pep_trim(st, owner, node, keep);
}

int
store_pep_items(struct store *st, const char *owner, const char *node, const char *id, size_t max,
		void (*fn)(void *arg, const char *id, const char *xml), void *arg)
{
	return st->be->pep_items(st, owner, node, id, max, fn, arg);
}
/* ---- the storage thread ---- */

struct store_thread {
	struct store *st;
	uint64_t batch_ms;
	pthread_t tid;

	pthread_mutex_t mu;
	pthread_cond_t cv;	       /* signalled when the queue becomes non-empty, and on stop */
	struct store_job *head, *tail; /* FIFO, linked through job->next */
	bool stopping;
};

/* Runs on the submitting loop's thread: the job's completion arrived in its mailbox. */
static void
job_mail(struct loop *loop, struct mail *m)
{
	struct store_job *job = container_of(m, struct store_job, mail);

	job->done(job);
}

/*
 * Delivers every completion of a finished batch. next is read before the delivery
 * because done() (here or on the other loop, possibly already running) may free the job.
 */
static void
batch_complete(struct store_job *first)
{
	struct store_job *job, *next;

	for (job = first; job; job = next) {
		next = job->next;
		if (!job->done)
			continue;
		if (job->loop) {
			job->mail.fn = job_mail;
			loop_post(job->loop, &job->mail);
		} else {
			job->done(job);
		}
	}
}

/* Sets result STORE_EIO for the jobs from first up to, not including, end. */
static void
batch_fail(struct store_job *first, struct store_job *end)
{
	for (struct store_job *job = first; job != end; job = job->next)
		job->result = STORE_EIO;
}

/* Runs one job inside its own savepoint; a failed job's writes are undone, the batch's kept. */
static int
job_run(struct store *st, struct store_job *job)
{
	int r;
	bool undo;

	if (job->atomic)
		return job->run(st, job); /* a failure leaves nothing behind to undo */
	if (st->be->job_begin(st) < 0)
		return STORE_EIO;
	r = job->run(st, job);
	/* ENOENT and EEXIST are answers, not failures: the job may have written on purpose. */
	undo = r < 0 && r != STORE_ENOENT && r != STORE_EEXIST;
	if (st->be->job_end(st, undo) < 0)
		return STORE_EIO;
	return r;
}

/*
 * Runs a batch in one transaction. If the database abandons the transaction midway
 * (disk full, I/O error), the jobs of that transaction so far lose their writes and get
 * STORE_EIO, and the rest continue in a fresh transaction.
 */
static void
batch_run(struct store *st, struct store_job *first)
{
	struct store_job *job, *txn_first = NULL;
	size_t n = 0;

	for (job = first; job; job = job->next) {
		if (!txn_first) {
			if (store_begin(st) < 0) {
				/* Locked past the busy timeout or broken: retrying per job would
				 * wait again. */
				log_error("store: cannot begin a transaction; failing the batch");
				batch_fail(job, NULL);
				break;
			}
			txn_first = job;
			n = 0;
		}
		job->result = job_run(st, job);
		n++;
		if (!st->be->in_transaction(st)) {
			log_error("store: transaction aborted by the database; %zu jobs failed", n);
			batch_fail(txn_first, job->next);
			txn_first = NULL;
		}
	}
	if (txn_first && store_commit(st) < 0) {
		log_error("store: commit failed; %zu jobs failed", n);
		(void)store_rollback(st);
		batch_fail(txn_first, NULL);
	}
	batch_complete(first);
}

/* Waits until the queue is non-empty or the thread stops; returns the whole queue or NULL. */
static struct store_job *
queue_take(struct store_thread *t)
{
	struct store_job *batch;

	pthread_mutex_lock(&t->mu);
	while (!t->head && !t->stopping)
		pthread_cond_wait(&t->cv, &t->mu);
	if (t->head && t->batch_ms > 0 && !t->stopping) {
		/* Group commit: let more jobs join this batch, unless we are asked to stop. */
		struct timespec deadline;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += (time_t)(t->batch_ms / 1000);
		deadline.tv_nsec += (long)(t->batch_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		while (!t->stopping) {
			if (pthread_cond_timedwait(&t->cv, &t->mu, &deadline) == ETIMEDOUT)
				break;
		}
	}
	batch = t->head;
	t->head = t->tail = NULL;
	pthread_mutex_unlock(&t->mu);
	return batch;
}

static void *
store_thread_main(void *arg)
{
	struct store_thread *t = arg;
	struct store_job *batch;

	/* Exits only once stopping is set and the queue is empty, so no job is dropped. */
	while ((batch = queue_take(t)) != NULL)
		batch_run(t->st, batch);
	return NULL;
}

struct store_thread *
store_thread_start(struct store *st, uint64_t batch_ms)
{
	struct store_thread *t = xcalloc(1, sizeof *t);
	pthread_condattr_t ca;
	int rc;

	t->st = st;
	t->batch_ms = batch_ms;
	pthread_mutex_init(&t->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cv, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&t->tid, NULL, store_thread_main, t);
	if (rc != 0)
		fatal("cannot start the storage thread: %s", strerror(rc));
	return t;
}

void
store_submit(struct store_thread *t, struct store_job *job)
{
	bool was_empty;

	job->next = NULL;
	job->result = STORE_OK;
	pthread_mutex_lock(&t->mu);
	was_empty = !t->head;
	if (t->tail)
		t->tail->next = job;
	else
		t->head = job;
	t->tail = job;
	/* The thread sleeps only on an empty queue (or while batching, when no wake is wanted). */
	if (was_empty)
		pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

void
store_thread_stop(struct store_thread *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	t->stopping = true;
	pthread_cond_signal(&t->cv);
	pthread_mutex_unlock(&t->mu);
	pthread_join(t->tid, NULL);
	store_close(t->st);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	free(t);
}
