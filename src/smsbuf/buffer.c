/*
 * The buffer of baton-smsbuf: its two rings (seed 001 FIG. 2), kept on disk by journal.c, the
 * assembly of concatenated MO messages, and the outcome of MT submits.
 *
 * Invariant: every state a message reaches is written to the journal before
 * the caller acts on it (answers the SMSC, confirms to batond), so a SIGKILL at any moment
 * loses nothing anyone was told had arrived (R10). Sent is not written: after a restart a
 * message not Confirmed is simply sent again, and batond recognises it (R8).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsbuf.h"

/* Takes m back out of the ring (its record could not be written): as if it never came. */
static void
untake(struct sms_ring *r, struct sms_msg *m)
{
	m->state = SMS_PROCESSED;
	r->last_retrieved--;
	m->seq = 0;
}

int
buffer_load(struct smsbuf *sb, bool write, char *err, size_t errlen)
{
	unsigned size = (unsigned)sb->cfg->smsbuf_ring;

	if (size < 2 || size > 65535) {
		snprintf(err, errlen, "smsbuf.ring must be between 2 and 65535 (is %u)", size);
		return -1;
	}
	ring_init(&sb->mt, size);
	ring_init(&sb->mo, size);
	if (journal_open(sb, write, err, errlen) < 0)
		return -1;
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

	if (!ring_has_room(&sb->mo))
		return MO_FULL;
	m = ring_take(&sb->mo, xstrdup(from), xstrdup(to), xstrdup(text), NULL,
		      extra ? xstrdup(extra) : NULL);
	if (journal_slot(sb, SMS_MO, m) < 0) {
		untake(&sb->mo, m); /* not on disk: the SMSC will deliver it again */
		return MO_STORE_ERR;
	}
	sb->mo_received++;
	uplink_pump(sb);
	return MO_OK;
}

enum mo_verdict
buffer_mo_part(struct smsbuf *sb, const char *from, const char *to, unsigned ref, unsigned total,
	       unsigned part, const char *text)
{
	char key[96], *whole = NULL;
	struct sms_msg *m;

	if (total < 2 || total > 255 || part < 1 || part > total)
		return buffer_mo(sb, from, to, text, NULL);
	/* A whole message needs a slot: refuse the parts until there is one (R11). */
	if (!ring_has_room(&sb->mo))
		return MO_FULL;
	snprintf(key, sizeof key, "%s %u %u", from, ref, total);
	if (journal_part(sb, key, from, to, total, part, text, &whole) < 0)
		return MO_STORE_ERR;
	if (!whole)
		return MO_OK; /* kept until the rest comes */
	m = ring_take(&sb->mo, xstrdup(from), xstrdup(to), whole, NULL, NULL);
	if (journal_whole(sb, m, key) < 0) {
		/* The parts were forgotten with the record that failed: the SMSC sends the last
		 * one again, and its earlier parts are still in the journal for the next start. */
		untake(&sb->mo, m);
		return MO_STORE_ERR;
	}
	sb->mo_received++;
	uplink_pump(sb);
	return MO_OK;
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
	if (journal_state(sb, SMS_MT, m, SMS_PROCESSED, buf_head(&f)) < 0)
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
	char stamp[32], line[256];
	struct buf v = {0};
	va_list ap;

	time_format(wall_ms(), stamp, sizeof stamp);
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	buf_printf(&v, "%s %s", stamp, line);
	journal_note(sb, what, buf_head(&v));
	buf_free(&v);
}

void
buffer_status(struct smsbuf *sb, FILE *out)
{
	fprintf(out, "buffer server %s (%s)\n", sb->name, sb->cfg->data_dir);
	if (sb->note_smsc)
		fprintf(out, "  smsc  %s\n", sb->note_smsc);
	if (sb->note_link)
		fprintf(out, "  link  %s\n", sb->note_link);
	for (int d = SMS_MT; d <= SMS_MO; d++) {
		struct sms_ring *g = d == SMS_MT ? &sb->mt : &sb->mo;
		unsigned count[5] = {0};
		for (unsigned i = 0; i < g->size; i++)
			if (g->slot[i].seq)
				count[g->slot[i].state]++;
		fprintf(
		    out,
		    "  %s ring: last retrieved %llu, sent %llu, confirmed %llu, processed %llu; "
		    "waiting: %u retrieved, %u sent, %u confirmed\n",
		    d == SMS_MT ? "MT" : "MO", (unsigned long long)g->last_retrieved,
		    (unsigned long long)g->last_sent, (unsigned long long)g->last_confirmed,
		    (unsigned long long)g->last_processed, count[SMS_RETRIEVED], count[SMS_SENT],
		    count[SMS_CONFIRMED]);
	}
	if (sb->parts.count)
		fprintf(out, "  MO messages with parts still to come: %zu\n", sb->parts.count);
}

void
buffer_free(struct smsbuf *sb)
{
	ring_free(&sb->mt);
	ring_free(&sb->mo);
	journal_close(sb);
}
