/*
 * The buffer of baton-smsbuf: its two rings (seed 001 FIG. 2) kept in the store of its data
 * directory, the assembly of concatenated MO messages, and the outcome of MT submits.
 *
 * Invariant: every state a message reaches is written with a synchronous store call before
 * the caller acts on it (answers the SMSC, confirms to batond), so a SIGKILL at any moment
 * loses nothing anyone was told had arrived (R10). Sent is not written: after a restart a
 * message not Confirmed is simply sent again, and batond recognises it (R8).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsbuf.h"

#define PARTS_LINK "parts:" /* queue of MO parts waiting for the rest of their message */

static void
persist(struct smsbuf *sb, int dir, const struct sms_msg *m, int *rc)
{
	struct sms_ring *r = dir == SMS_MT ? &sb->mt : &sb->mo;
	struct store_sms_msg sm = {
	    .seq = (int64_t)m->seq,
	    .state = m->state,
	    .from = m->from,
	    .to = m->to,
	    .text = m->text,
	    .ref = m->ref,
	    .extra = m->extra,
	    .stamp = m->stamp,
	};
	int r2 = store_sms_slot_put(sb->st, sb->name, dir, ring_slot(r, m->seq), &sm);
	if (r2 < 0 && rc)
		*rc = r2;
}

static void
load_slot(void *arg, int dir, const struct store_sms_msg *m)
{
	struct smsbuf *sb = arg;
	struct sms_ring *r = dir == SMS_MT ? &sb->mt : &sb->mo;

	if (m->seq <= 0 || (dir != SMS_MT && dir != SMS_MO))
		return;
	ring_put(r, (uint64_t)m->seq, m->state, xstrdup(m->from ? m->from : ""),
		 xstrdup(m->to ? m->to : ""), m->text ? xstrdup(m->text) : NULL,
		 m->ref ? xstrdup(m->ref) : NULL, m->extra ? xstrdup(m->extra) : NULL);
}

int
buffer_load(struct smsbuf *sb, char *err, size_t errlen)
{
	unsigned size = (unsigned)sb->cfg->smsbuf_ring;

	if (size < 2 || size > 65535) {
		snprintf(err, errlen, "smsbuf.ring must be between 2 and 65535 (is %u)", size);
		return -1;
	}
	ring_init(&sb->mt, size);
	ring_init(&sb->mo, size);
	if (store_sms_slots(sb->st, sb->name, load_slot, sb) < 0) {
		snprintf(err, errlen, "cannot read the rings from the store");
		return -1;
	}
	/* A ring written with another size does not mirror batond's any more. */
	for (int dir = SMS_MT; dir <= SMS_MO; dir++) {
		struct sms_ring *r = dir == SMS_MT ? &sb->mt : &sb->mo;
		if (r->last_retrieved && !ring_find(r, r->last_retrieved)) {
			snprintf(err, errlen,
				 "the rings in %s were written with another size than %u; "
				 "set smsbuf.ring back",
				 sb->cfg->data_dir, size);
			return -1;
		}
	}
	log_info("smsbuf: rings loaded: MT %u busy (last %llu), MO %u busy (last %llu)",
		 ring_busy(&sb->mt), (unsigned long long)sb->mt.last_retrieved, ring_busy(&sb->mo),
		 (unsigned long long)sb->mo.last_retrieved);
	return 0;
}

enum mo_verdict
buffer_mo(struct smsbuf *sb, const char *from, const char *to, const char *text, const char *extra)
{
	struct sms_msg *m;
	int rc = 0;

	if (!ring_has_room(&sb->mo))
		return MO_FULL;
	m = ring_take(&sb->mo, xstrdup(from), xstrdup(to), xstrdup(text), NULL,
		      extra ? xstrdup(extra) : NULL);
	persist(sb, SMS_MO, m, &rc);
	if (rc < 0) {
		/* Not on disk: forget it, the SMSC will deliver it again. */
		m->state = SMS_PROCESSED;
		sb->mo.last_retrieved--;
		m->seq = 0;
		return MO_STORE_ERR;
	}
	sb->mo_received++;
	uplink_pump(sb);
	return MO_OK;
}

struct parts {
	char key[96];
	unsigned have, total;
	char *text[256];
	int64_t ids[256];
};

static void
collect_part(void *arg, const struct store_sms_msg *m)
{
	struct parts *p = arg;
	unsigned n;

	if (!m->ref || strcmp(m->ref, p->key) != 0 || !m->extra ||
	    sscanf(m->extra, "%u", &n) != 1 || n < 1 || n > p->total || p->text[n - 1])
		return;
	p->text[n - 1] = xstrdup(m->text ? m->text : "");
	p->ids[n - 1] = m->seq;
	p->have++;
}

enum mo_verdict
buffer_mo_part(struct smsbuf *sb, const char *from, const char *to, unsigned ref, unsigned total,
	       unsigned part, const char *text)
{
	struct parts p = {.total = total};
	char qlink[160], num[16];
	struct buf whole = {0};
	enum mo_verdict v = MO_OK;
	int64_t id;

	if (total < 2 || total > 255 || part < 1 || part > total)
		return buffer_mo(sb, from, to, text, NULL);
	/* A whole message needs a slot: refuse the parts until there is one (R11). */
	if (!ring_has_room(&sb->mo))
		return MO_FULL;
	snprintf(qlink, sizeof qlink, PARTS_LINK "%s", sb->name);
	snprintf(p.key, sizeof p.key, "%s %u %u", from, ref, total);
	snprintf(num, sizeof num, "%u", part);
	if (store_sms_queue_list(sb->st, qlink, 0, 0, collect_part, &p) < 0)
		return MO_STORE_ERR;
	if (p.text[part - 1]) /* the SMSC sent this part again: we had it */
		goto out;
	if (p.have + 1 < total) {
		struct store_sms_msg m = {.from = from,
					  .to = to,
					  .text = text,
					  .ref = p.key,
					  .extra = num,
					  .stamp = wall_ms()};
		if (store_sms_queue_put(sb->st, qlink, &m, &id) < 0)
			v = MO_STORE_ERR;
		goto out;
	}
	/* The last part: the joined message goes into the ring, the parts go, in one transaction.
	 */
	p.text[part - 1] = xstrdup(text);
	for (unsigned i = 0; i < total; i++)
		buf_puts(&whole, p.text[i]);
	if (store_begin(sb->st) < 0) {
		v = MO_STORE_ERR;
		goto out;
	}
	for (unsigned i = 0; i < total; i++)
		if (p.ids[i] && store_sms_queue_del(sb->st, p.ids[i]) < 0)
			v = MO_STORE_ERR;
	if (v == MO_OK) {
		struct sms_msg *m = ring_take(&sb->mo, xstrdup(from), xstrdup(to),
					      xstrdup(buf_head(&whole)), NULL, NULL);
		int rc = 0;
		persist(sb, SMS_MO, m, &rc);
		if (rc < 0 || store_commit(sb->st) < 0) {
			m->state = SMS_PROCESSED;
			sb->mo.last_retrieved--;
			m->seq = 0;
			v = MO_STORE_ERR;
		}
	}
	if (v != MO_OK) {
		store_rollback(sb->st);
		goto out;
	}
	sb->mo_received++;
	uplink_pump(sb);
out:
	for (unsigned i = 0; i < total; i++)
		free(p.text[i]);
	buf_free(&whole);
	return v;
}

struct sms_msg *
buffer_mt_next(struct smsbuf *sb)
{
	struct sms_ring *r = &sb->mt;
	uint64_t first = r->last_retrieved >= r->size ? r->last_retrieved - r->size + 1 : 1;

	for (uint64_t seq = first; seq <= r->last_retrieved; seq++) {
		struct sms_msg *m = ring_find(r, seq);
		if (m && m->state == SMS_CONFIRMED)
			return m;
	}
	return NULL;
}

void
buffer_mt_done(struct smsbuf *sb, struct sms_msg *m, bool ok, const char *msgids,
	       const char *reason)
{
	struct buf f = {0};

	if (ok) {
		link_add(&f, "status", "ok");
		link_add(&f, "msgid", msgids ? msgids : "");
	} else {
		link_add(&f, "status", "fail");
		link_add(&f, "reason", reason ? reason : "refused by the SMSC");
	}
	/* The outcome replaces what came with the message: batond may ask for it again. */
	if (store_sms_slot_state(sb->st, sb->name, SMS_MT, ring_slot(&sb->mt, m->seq),
				 (int64_t)m->seq, SMS_PROCESSED, buf_head(&f)) < 0)
		log_error("smsbuf: could not record MT %llu as processed; it may be submitted "
			  "again after a restart",
			  (unsigned long long)m->seq);
	sb->mt_submitted++;
	uplink_processed(sb, m, buf_head(&f));
	buf_free(&f);
}

void
buffer_note(struct smsbuf *sb, const char *what, const char *fmt, ...)
{
	char key[96], stamp[32];
	struct buf v = {0};
	va_list ap;

	time_format(wall_ms(), stamp, sizeof stamp);
	buf_printf(&v, "%s ", stamp);
	va_start(ap, fmt);
	char line[256];
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	buf_puts(&v, line);
	snprintf(key, sizeof key, "state:%s:%s", what, sb->name);
	store_sms_kv_set(sb->st, key, buf_head(&v), 0);
	buf_free(&v);
}

void
buffer_free(struct smsbuf *sb)
{
	ring_free(&sb->mt);
	ring_free(&sb->mo);
}
