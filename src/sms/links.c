/*
 * batond's end of the SMS links (docs/protocol/sms-link.md): buffer servers connect, are
 * greeted with a nonce, may switch to TLS, prove their secret with HELLO, and then exchange
 * message frames (link.c) over the mirrored rings, which live in storage. MT messages wait
 * in the store's queue until their link's ring has room.
 *
 * Invariant: a ring slot changes in storage before the other end hears of it (an MO is
 * confirmed after its slot is written; an MT is sent after it moved from the queue into its
 * slot in one job), so a restart of batond resumes from what is on disk.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sms_int.h"

struct sms_module sms;

struct sms_wait {
	struct sms_wait *next;
	void (*fn)(void *arg);
	void *arg;
};

struct worker *
sms_worker(struct worker *w)
{
	return &w->srv->workers[0];
}

struct sms_link *
sms_link_named(const char *name)
{
	for (size_t i = 0; i < sms.nlinks; i++)
		if (strcmp(sms.links[i].name, name) == 0)
			return &sms.links[i];
	return NULL;
}

struct sms_link *
sms_link_for(const char *number)
{
	struct sms_link *best = NULL, *dflt = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < sms.nlinks; i++) {
		struct sms_link *l = &sms.links[i];
		if (!l->nprefixes && !dflt)
			dflt = l;
		for (size_t j = 0; j < l->nprefixes; j++) {
			size_t n = strlen(l->prefixes[j]);
			if (n > best_len && strncmp(number, l->prefixes[j], n) == 0) {
				best = l;
				best_len = n;
			}
		}
	}
	return best ? best : dflt;
}

/* ---- storage ---- */

struct slot_job {
	struct store_job job;
	char *link;
	int dir;
	unsigned slot;
	struct store_sms_msg m;
	bool put; /* the whole slot, else only state and extra */
	void (*then)(struct sms_link *l, struct sms_msg *m);
	struct sms_link *l;
	char *extra;
};

static int
slot_run(struct store *st, struct store_job *job)
{
	struct slot_job *sj = container_of(job, struct slot_job, job);
	if (sj->put)
		return store_sms_slot_put(st, sj->link, sj->dir, sj->slot, &sj->m);
	return store_sms_slot_state(st, sj->link, sj->dir, sj->slot, sj->m.seq, sj->m.state,
				    sj->extra);
}

static void
slot_done(struct store_job *job)
{
	struct slot_job *sj = container_of(job, struct slot_job, job);

	if (job->result < 0)
		log_error("sms: could not store slot %u of link %s", sj->slot, sj->link);
	if (sj->then && job->result == 0) {
		struct sms_msg *m =
		    ring_find(sj->dir == SMS_MT ? &sj->l->mt : &sj->l->mo, (uint64_t)sj->m.seq);
		if (m)
			sj->then(sj->l, m);
	}
	free(sj->link);
	free(sj->extra);
	free(sj);
}

void
sms_gauges(struct sms_link *l)
{
	l->up = l->peer.up;
	l->mt_busy = ring_busy(&l->mt);
	l->mo_busy = ring_busy(&l->mo);
}

void
sms_metrics(struct buf *out)
{
	static const struct {
		const char *name, *type, *help;
	} m[] = {
	    {"baton_sms_link_up", "gauge", "a buffer server is connected on this link"},
	    {"baton_sms_mt_queued", "gauge", "messages for phones waiting for a ring slot"},
	    {"baton_sms_mt_ring_busy", "gauge", "MT ring slots not yet Processed"},
	    {"baton_sms_mo_ring_busy", "gauge", "MO ring slots not yet Processed"},
	    {"baton_sms_mt_processed_total", "counter", "MT messages the SMSC accepted or refused"},
	    {"baton_sms_mt_failed_total", "counter", "MT messages the SMSC refused for good"},
	    {"baton_sms_mo_processed_total", "counter", "MO messages and reports processed"},
	    {"baton_sms_receipts_total", "counter", "delivery receipts sent to XMPP senders"},
	};
	for (size_t k = 0; k < ARRAY_LEN(m); k++) {
		buf_printf(out, "# HELP %s %s.\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
			   m[k].type);
		for (size_t i = 0; i < sms.nlinks; i++) {
			struct sms_link *l = &sms.links[i];
			uint64_t v[] = {l->up,	    (uint64_t)(l->queued < 0 ? 0 : l->queued),
					l->mt_busy, l->mo_busy,
					l->mt_done, l->mt_failed,
					l->mo_done, l->receipts};
			buf_printf(out, "%s{link=\"%s\"} %llu\n", m[k].name, l->name,
				   (unsigned long long)v[k]);
		}
	}
}

void
sms_slot_state(struct sms_link *l, int dir, const struct sms_msg *m, int state, const char *extra)
{
	struct slot_job *sj = xcalloc(1, sizeof *sj);

	sj->link = xstrdup(l->name);
	sj->dir = dir;
	sj->slot = ring_slot(dir == SMS_MT ? &l->mt : &l->mo, m->seq);
	sj->m.seq = (int64_t)m->seq;
	sj->m.state = state;
	sj->extra = extra ? xstrdup(extra) : NULL;
	sj->job.run = slot_run;
	sj->job.atomic = true;
	sj->job.done = slot_done;
	worker_store(sms.w, &sj->job);
}

/* ---- loading the rings (once, on worker 0) ---- */

struct load_row {
	size_t link;
	int dir;
	uint64_t seq;
	int state;
	char *from, *to, *text, *ref, *extra;
};

struct load_job {
	struct store_job job;
	struct load_row *rows;
	size_t n, cap, cur;
};

static void
load_slot(void *arg, int dir, const struct store_sms_msg *m)
{
	struct load_job *lj = arg;
	struct load_row *r;

	if (m->seq <= 0 || (dir != SMS_MT && dir != SMS_MO))
		return;
	if (lj->n == lj->cap) {
		lj->cap = lj->cap ? 2 * lj->cap : 64;
		lj->rows = xrealloc(lj->rows, lj->cap * sizeof *lj->rows);
	}
	r = &lj->rows[lj->n++];
	r->link = lj->cur;
	r->dir = dir;
	r->seq = (uint64_t)m->seq;
	r->state = m->state;
	r->from = xstrdup(m->from ? m->from : "");
	r->to = xstrdup(m->to ? m->to : "");
	r->text = m->text ? xstrdup(m->text) : NULL;
	r->ref = m->ref ? xstrdup(m->ref) : NULL;
	r->extra = m->extra ? xstrdup(m->extra) : NULL;
}

static int
load_run(struct store *st, struct store_job *job)
{
	struct load_job *lj = container_of(job, struct load_job, job);

	for (lj->cur = 0; lj->cur < sms.nlinks; lj->cur++) {
		long n = store_sms_queue_count(st, sms.links[lj->cur].name);
		if (n < 0 || store_sms_slots(st, sms.links[lj->cur].name, load_slot, lj) < 0)
			return STORE_EIO;
		sms.links[lj->cur].queued = n;
	}
	return 0;
}

static void
load_done(struct store_job *job)
{
	struct load_job *lj = container_of(job, struct load_job, job);
	struct sms_wait *waits;

	if (job->result < 0)
		log_error("sms: could not load the rings; SMS works without what they held");
	for (size_t i = 0; i < lj->n; i++) {
		struct load_row *r = &lj->rows[i];
		struct sms_link *l = &sms.links[r->link];
		ring_put(r->dir == SMS_MT ? &l->mt : &l->mo, r->seq, r->state, r->from, r->to,
			 r->text, r->ref, r->extra);
	}
	free(lj->rows);
	free(lj);
	sms.loaded = true;
	sms.loading = false;
	/* MO messages confirmed but not processed before a restart: process them now. */
	for (size_t i = 0; i < sms.nlinks; i++) {
		struct sms_link *l = &sms.links[i];
		for (unsigned s = 0; s < l->mo.size; s++)
			if (l->mo.slot[s].seq && l->mo.slot[s].state == SMS_CONFIRMED)
				sms_mo(l, &l->mo.slot[s]);
		log_info("sms: link %s: MT ring %u busy, MO ring %u busy, %ld MT queued", l->name,
			 ring_busy(&l->mt), ring_busy(&l->mo), (long)l->queued);
		sms_gauges(l);
		sms_link_pump(l);
	}
	waits = sms.waits;
	sms.waits = NULL;
	while (waits) {
		struct sms_wait *next = waits->next;
		waits->fn(waits->arg);
		free(waits);
		waits = next;
	}
}

void
sms_with(struct worker *w, void (*fn)(void *arg), void *arg)
{
	struct sms_wait *wt;

	sms.w = w;
	if (sms.loaded) {
		fn(arg);
		return;
	}
	wt = xcalloc(1, sizeof *wt);
	wt->fn = fn;
	wt->arg = arg;
	wt->next = sms.waits;
	sms.waits = wt;
	if (!sms.loading) {
		struct load_job *lj = xcalloc(1, sizeof *lj);
		sms.loading = true;
		lj->job.run = load_run;
		lj->job.done = load_done;
		worker_store(w, &lj->job);
	}
}

/* ---- MT: from the queue into the ring ---- */

struct take_row {
	int64_t id;
	char *from, *to, *text, *ref, *extra;
};

struct take_job {
	struct store_job job;
	struct sms_link *l;
	char *link;
	uint64_t first; /* the seq the first row gets */
	size_t room, n;
	struct take_row *rows;
	unsigned size;
};

static void
take_row(void *arg, const struct store_sms_msg *m)
{
	struct take_job *tj = arg;
	struct take_row *r = &tj->rows[tj->n++];

	r->id = m->seq;
	r->from = xstrdup(m->from ? m->from : "");
	r->to = xstrdup(m->to ? m->to : "");
	r->text = xstrdup(m->text ? m->text : "");
	r->ref = m->ref ? xstrdup(m->ref) : NULL;
	r->extra = m->extra ? xstrdup(m->extra) : NULL;
}

static int
take_run(struct store *st, struct store_job *job)
{
	struct take_job *tj = container_of(job, struct take_job, job);

	if (store_sms_queue_list(st, tj->link, 0, tj->room, take_row, tj) < 0)
		return STORE_EIO;
	for (size_t i = 0; i < tj->n; i++) {
		struct take_row *r = &tj->rows[i];
		uint64_t seq = tj->first + i;
		struct store_sms_msg m = {.seq = (int64_t)seq,
					  .state = SMS_RETRIEVED,
					  .from = r->from,
					  .to = r->to,
					  .text = r->text,
					  .ref = r->ref,
					  .extra = r->extra,
					  .stamp = wall_ms()};
		if (store_sms_slot_put(st, tj->link, SMS_MT, (unsigned)((seq - 1) % tj->size), &m) <
			0 ||
		    store_sms_queue_del(st, r->id) < 0)
			return STORE_EIO;
	}
	return 0;
}

static void
take_done(struct store_job *job)
{
	struct take_job *tj = container_of(job, struct take_job, job);
	struct sms_link *l = tj->l;
	bool again = job->result == 0 && (tj->n == tj->room || l->more);

	l->taking = false;
	if (job->result == 0)
		l->queued -= (long)tj->n;
	for (size_t i = 0; i < tj->n; i++) {
		struct take_row *r = &tj->rows[i];
		if (job->result == 0) {
			struct sms_msg *m = ring_put(&l->mt, tj->first + i, SMS_RETRIEVED, r->from,
						     r->to, r->text, r->ref, r->extra);
			if (l->peer.up)
				link_peer_send(&l->peer, m);
		} else {
			free(r->from);
			free(r->to);
			free(r->text);
			free(r->ref);
			free(r->extra);
		}
	}
	if (job->result < 0)
		log_error("sms: could not move queued MT into the ring of %s", l->name);
	sms_gauges(l);
	free(tj->rows);
	free(tj->link);
	free(tj);
	if (again)
		sms_link_pump(l);
}

void
sms_link_pump(struct sms_link *l)
{
	struct take_job *tj;
	size_t room = 0;

	if (!sms.loaded)
		return;
	if (l->taking) {
		l->more = true;
		return;
	}
	/* Free slots in a row from the next one (a slot is reused only once Processed). */
	while (room < l->mt.size && room < 64) {
		const struct sms_msg *m =
		    &l->mt.slot[ring_slot(&l->mt, l->mt.last_retrieved + 1 + room)];
		if (m->seq && m->state != SMS_PROCESSED)
			break;
		room++;
	}
	if (!room)
		return; /* full: MT wait in the queue (R11) */
	l->more = false;
	l->taking = true;
	tj = xcalloc(1, sizeof *tj);
	tj->l = l;
	tj->link = xstrdup(l->name);
	tj->first = l->mt.last_retrieved + 1;
	tj->room = room;
	tj->size = l->mt.size;
	tj->rows = xcalloc(room, sizeof *tj->rows);
	tj->job.run = take_run;
	tj->job.done = take_done;
	worker_store(sms.w, &tj->job);
}

/* ---- the peer: frames for the rings ---- */

static struct sms_link *
link_of(struct link_peer *p)
{
	return p->arg;
}

static void
peer_send(struct link_peer *p, const char *data, size_t len)
{
	struct sms_link *l = link_of(p);
	if (l->sc)
		conn_write(l->sc->c, data, len);
}

static void
mo_stored(struct sms_link *l, struct sms_msg *m)
{
	link_peer_confirm(&l->peer, m);
	sms_mo(l, m);
}

/* An MO from the buffer server: written (Confirmed) before it is confirmed (R7). */
static void
peer_received(struct link_peer *p, struct sms_msg *m, const struct link_frame *fr)
{
	struct sms_link *l = link_of(p);
	struct slot_job *sj = xcalloc(1, sizeof *sj);

	sj->l = l;
	sj->link = xstrdup(l->name);
	sj->dir = SMS_MO;
	sj->slot = ring_slot(&l->mo, m->seq);
	sj->put = true;
	sj->m = (struct store_sms_msg){.seq = (int64_t)m->seq,
				       .state = SMS_CONFIRMED,
				       .from = m->from,
				       .to = m->to,
				       .text = m->text,
				       .ref = m->ref,
				       .extra = m->extra,
				       .stamp = m->stamp};
	sj->then = mo_stored;
	sj->job.run = slot_run;
	sj->job.atomic = true;
	sj->job.done = slot_done;
	worker_store(sms.w, &sj->job);
}

static void
peer_acked(struct link_peer *p, struct sms_msg *m, int state, const struct link_frame *fr)
{
	struct sms_link *l = link_of(p);

	if (state == SMS_CONFIRMED) {
		sms_slot_state(l, SMS_MT, m, SMS_CONFIRMED, NULL);
		return;
	}
	l->mt_done++;
	sms_mt_outcome(l, m, fr);
	sms_link_pump(l); /* a slot came free */
}

static void conn_drop(struct sms_conn *sc, const char *why);
static void note_state(struct sms_link *l, const char *state, const char *detail);

static void
peer_fail(struct link_peer *p, const char *why)
{
	struct sms_link *l = link_of(p);
	if (l->sc)
		conn_drop(l->sc, why);
}

static const struct link_peer_ops peer_ops = {
    .send = peer_send,
    .received = peer_received,
    .acked = peer_acked,
    .fail = peer_fail,
};

/* ---- connections ---- */

static void
conn_free(struct sms_conn *sc)
{
	for (struct sms_conn **pp = &sms.conns; *pp; pp = &(*pp)->next) {
		if (*pp == sc) {
			*pp = sc->next;
			break;
		}
	}
	free(sc);
}

static void
conn_drop(struct sms_conn *sc, const char *why)
{
	if (sc->dead)
		return;
	if (sc->l) {
		log_warn("sms: link %s (%s) lost: %s", sc->l->name, sc->c->peer, why);
		note_state(sc->l, "down", why);
		sc->l->peer.up = false;
		sc->l->up = false;
		sc->l->sc = NULL;
		sc->l = NULL;
	} else {
		log_info("sms: %s: %s", sc->c->peer, why);
	}
	timer_stop(worker_loop(sms.w), &sc->timer);
	conn_close(sc->c);
	sc->dead = true;
	if (!sc->busy)
		conn_free(sc);
}

struct note_job {
	struct store_job job;
	char *key, *value;
};

static int
note_run(struct store *st, struct store_job *job)
{
	struct note_job *nj = container_of(job, struct note_job, job);
	return store_sms_kv_set(st, nj->key, nj->value, 0);
}

static void
note_done(struct store_job *job)
{
	struct note_job *nj = container_of(job, struct note_job, job);
	free(nj->key);
	free(nj->value);
	free(nj);
}

/* Records the link's state for `batonctl sms status` (fire and forget). */
static void
note_state(struct sms_link *l, const char *state, const char *detail)
{
	struct note_job *nj = xcalloc(1, sizeof *nj);
	struct buf b = {0};
	char stamp[32];

	time_format(wall_ms(), stamp, sizeof stamp);
	buf_printf(&b, "%s %s: %s", stamp, state, detail);
	nj->value = buf_steal(&b);
	buf_printf(&b, "state:link:%s", l->name);
	nj->key = buf_steal(&b);
	nj->job.run = note_run;
	nj->job.atomic = true;
	nj->job.done = note_done;
	worker_store(sms.w, &nj->job);
}

static void
send_line(struct sms_conn *sc, struct buf *b)
{
	link_end(b);
	conn_write(sc->c, buf_head(b), buf_used(b));
	buf_free(b);
}

static void
deny(struct sms_conn *sc, const char *reason)
{
	struct buf b = {0};

	log_warn("sms: refused buffer server at %s: %s", sc->c->peer, reason);
	link_begin(&b, "DENIED");
	link_add(&b, "reason", reason);
	send_line(sc, &b);
	sc->l = NULL;
	conn_drop(sc, reason);
}

static void
hello(struct sms_conn *sc, const struct link_frame *fr)
{
	const struct config *cfg = sms.w->srv->cfg;
	const char *name = link_get(fr, "name"), *mac = link_get(fr, "mac");
	struct sms_link *l = name ? sms_link_named(name) : NULL;
	char want[65], msg[160];
	uint64_t ring = 0;
	struct buf b = {0};

	if (!conn_is_tls(sc->c) && !cfg->allow_plaintext) {
		deny(sc, "TLS is required (STARTTLS first)");
		return;
	}
	if (!l) {
		snprintf(msg, sizeof msg, "unknown buffer server '%s' (configure [sms.%s])",
			 name ? name : "", name ? name : "NAME");
		deny(sc, msg);
		return;
	}
	link_mac(l->secret, sc->nonce, l->name, want);
	if (!*l->secret || !mac || !link_mac_equal(mac, want)) {
		deny(sc, "wrong secret");
		return;
	}
	if (link_get_u64(fr, "ring", &ring) && ring != l->mt.size) {
		snprintf(msg, sizeof msg, "ring size %llu differs from sms.ring (%u)",
			 (unsigned long long)ring, l->mt.size);
		deny(sc, msg);
		return;
	}
	if (l->sc)
		conn_drop(l->sc, "replaced by a new connection of the same buffer server");
	sc->l = l;
	sc->state = SC_UP;
	l->sc = sc;
	link_begin(&b, "WELCOME");
	link_add_u64(&b, "ring", l->mt.size);
	send_line(sc, &b);
	log_info("sms: link %s is up (%s%s)", l->name, sc->c->peer,
		 conn_is_tls(sc->c) ? ", TLS" : ", plaintext");
	snprintf(msg, sizeof msg, "buffer server at %s%s", sc->c->peer,
		 conn_is_tls(sc->c) ? " (TLS)" : " (plaintext)");
	note_state(l, "up", msg);
	l->peer.up = true;
	link_peer_resync(&l->peer);
	sms_link_pump(l);
	sms_gauges(l);
}

static void
conn_frames(struct sms_conn *sc)
{
	struct conn *c = sc->c;

	while (!sc->dead && buf_used(&c->in) > 0) {
		struct link_frame fr;
		char err[128];
		long n = link_parse(buf_head(&c->in), buf_used(&c->in), &fr, err, sizeof err);

		if (n == 0)
			return;
		if (n < 0) {
			conn_drop(sc, err);
			return;
		}
		buf_consume(&c->in, (size_t)n);
		if (sc->state == SC_UP) {
			if (link_peer_frame(&sc->l->peer, &fr) < 0)
				conn_drop(sc, "unknown frame");
		} else if (sc->state == SC_GREETED && strcmp(fr.verb, "STARTTLS") == 0) {
			conn_write(c, "PROCEED\n", 8);
			conn_starttls(c, sms.w->srv->tls);
			sc->state = SC_TLS;
			link_frame_free(&fr);
			return; /* what follows is TLS */
		} else if (strcmp(fr.verb, "HELLO") == 0) {
			hello(sc, &fr);
		} else {
			conn_drop(sc, "expected STARTTLS or HELLO");
		}
		link_frame_free(&fr);
	}
}

static void
conn_data(struct conn *c, void *arg)
{
	struct sms_conn *sc = arg;

	sc->last_rx = now_ms();
	sc->pinged = false;
	sc->busy = true;
	conn_frames(sc);
	sc->busy = false;
	if (sc->l)
		sms_gauges(sc->l);
	if (sc->dead)
		conn_free(sc);
}

static void
conn_closed(struct conn *c, void *arg, const char *reason)
{
	conn_drop(arg, reason);
}

static const struct conn_cb sms_conn_cb = {.data = conn_data, .closed = conn_closed};

/* Handshake deadline, then keepalive: PING after sms.keepalive, drop after three times it. */
static void
conn_tick(struct timer *t)
{
	struct sms_conn *sc = container_of(t, struct sms_conn, timer);
	uint64_t ka = sms.w->srv->cfg->sms_keepalive, idle = now_ms() - sc->last_rx;

	if (sc->state != SC_UP) {
		conn_drop(sc, "no HELLO in time");
		return;
	}
	if (idle >= 3 * ka) {
		conn_drop(sc, "silent for too long");
		return;
	}
	if (idle >= ka && !sc->pinged) {
		conn_write(sc->c, "PING\n", 5);
		sc->pinged = true;
	}
	timer_start(worker_loop(sms.w), t, ka < 1000 ? ka : 1000);
}

static void
adopt(void *arg)
{
	struct sms_conn *sc = arg;
	struct buf b = {0};
	unsigned char r[16];

	conn_attach(sc->c, worker_loop(sms.w));
	sc->next = sms.conns;
	sms.conns = sc;
	conn_set_limits(sc->c, LINK_MAX_LINE * 2, 64 << 20, 0, 0);
	rand_bytes(r, sizeof r);
	for (size_t i = 0; i < sizeof r; i++)
		snprintf(sc->nonce + 2 * i, 3, "%02x", r[i]);
	sc->state = SC_GREETED;
	sc->last_rx = now_ms();
	sc->timer.fn = conn_tick;
	timer_start(worker_loop(sms.w), &sc->timer, 10000);
	link_begin(&b, LINK_VERSION);
	link_add(&b, "nonce", sc->nonce);
	link_add(&b, "tls", sms.w->srv->cfg->allow_plaintext ? "optional" : "required");
	send_line(sc, &b);
}

static void
adopt_on_home(struct worker *w, void *arg)
{
	sms_with(w, adopt, arg);
}

void
sms_accept(struct worker *w, int fd)
{
	for (int i = 0; i < 16; i++) {
		struct conn *c = conn_accept(worker_loop(w), fd, NULL, &sms_conn_cb, NULL);
		struct sms_conn *sc;
		if (!c)
			return;
		/* Every link lives on worker 0, with the rings. */
		conn_detach(c);
		sc = xcalloc(1, sizeof *sc);
		sc->c = c;
		conn_set_cb(c, &sms_conn_cb, sc);
		worker_call(sms_worker(w), adopt_on_home, sc);
	}
}

/* ---- set-up and shutdown ---- */

static void
link_init(struct sms_link *l, const char *name, const char *secret, const char *prefixes,
	  unsigned ring)
{
	char *p, *save = NULL, *copy = xstrdup(prefixes ? prefixes : "");

	l->name = xstrdup(name);
	l->secret = xstrdup(secret);
	for (p = strtok_r(copy, " ,", &save); p; p = strtok_r(NULL, " ,", &save)) {
		l->prefixes = xrealloc(l->prefixes, (l->nprefixes + 1) * sizeof *l->prefixes);
		l->prefixes[l->nprefixes++] = xstrdup(p);
	}
	free(copy);
	ring_init(&l->mt, ring);
	ring_init(&l->mo, ring);
}

void
sms_links_init(const struct config *cfg)
{
	unsigned ring = (unsigned)cfg->sms_ring;

	sms.nlinks = 1 + cfg->n_sms_peers;
	sms.links = xcalloc(sms.nlinks, sizeof *sms.links);
	link_init(&sms.links[0], cfg->sms_name, cfg->sms_secret, "", ring);
	for (size_t i = 0; i < cfg->n_sms_peers; i++)
		link_init(&sms.links[i + 1], cfg->sms_peers[i].name, cfg->sms_peers[i].secret,
			  cfg->sms_peers[i].prefixes, ring);
	for (size_t i = 0; i < sms.nlinks; i++) {
		struct sms_link *l = &sms.links[i];
		l->peer.ops = &peer_ops;
		l->peer.arg = l;
		l->peer.out_dir = SMS_MT;
		l->peer.out = &l->mt;
		l->peer.in = &l->mo;
	}
}

void
sms_links_free(void)
{
	/* The connections themselves go with the loop (net_loop_free). */
	while (sms.conns) {
		struct sms_conn *next = sms.conns->next;
		free(sms.conns);
		sms.conns = next;
	}
	for (size_t i = 0; i < sms.nlinks; i++) {
		struct sms_link *l = &sms.links[i];
		for (size_t j = 0; j < l->nprefixes; j++)
			free(l->prefixes[j]);
		free(l->prefixes);
		free(l->name);
		free(l->secret);
		ring_free(&l->mt);
		ring_free(&l->mo);
	}
	free(sms.links);
	while (sms.waits) {
		struct sms_wait *next = sms.waits->next;
		free(sms.waits);
		sms.waits = next;
	}
	memset(&sms, 0, sizeof sms);
}
