/*
 * The session toward the SMSC, whatever its protocol: connecting with backoff, the bind,
 * keepalives, the window of unanswered requests, and the pump that submits MT messages part
 * by part. The protocol files (smsc_smpp.c, smsc_cimd2.c) only frame and parse.
 *
 * Invariant: no request goes to the SMSC while smsbuf.smsc_window requests are unanswered
 * (R2); with the default of 1 the session is stop-and-wait, keepalives included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsbuf.h"

#define BIND_TIMEOUT	 15000
#define RESPONSE_TIMEOUT 30000

static void smsc_connect(struct smsbuf *sb);

static void
smsc_data(struct conn *c, void *arg)
{
	struct smsbuf *sb = arg;

	sb->smsc_last_rx = now_ms();
	sb->proto->input(sb);
}

static void
sub_reset(struct smsbuf *sb)
{
	free(sb->sub.segs);
	free(sb->sub.acked);
	buf_free(&sb->sub.msgids);
	memset(&sb->sub, 0, sizeof sb->sub);
}

static void
smsc_closed(struct conn *c, void *arg, const char *reason)
{
	smsc_fail(arg, reason);
}

static void
smsc_connected(struct conn *c, void *arg)
{
	struct smsbuf *sb = arg;

	log_info("smsbuf: connected to the SMSC at %s; logging in (%s)", sb->cfg->smsbuf_smsc,
		 sb->proto->name);
	sb->smsc_state = SMSC_BINDING;
	sb->smsc_last_rx = now_ms();
	sb->proto->login(sb);
	timer_start(sb->loop, &sb->smsc_timer, BIND_TIMEOUT);
}

static const struct conn_cb smsc_cb = {
    .data = smsc_data,
    .closed = smsc_closed,
    .connected = smsc_connected,
};

/* The timer: reconnect when down, give up a bind that takes too long, keepalive when bound. */
static void
smsc_tick(struct timer *t)
{
	struct smsbuf *sb = container_of(t, struct smsbuf, smsc_timer);
	uint64_t idle = now_ms() - sb->smsc_last_rx;
	uint64_t ka = sb->cfg->smsbuf_keepalive;

	switch (sb->smsc_state) {
	case SMSC_DOWN:
		smsc_connect(sb);
		return;
	case SMSC_CONNECTING:
	case SMSC_BINDING:
		smsc_fail(sb, "no answer to the login");
		return;
	case SMSC_BOUND:
		if (sb->stopping) {
			loop_stop(sb->loop);
			return;
		}
		if (sb->outstanding && idle >= RESPONSE_TIMEOUT) {
			smsc_fail(sb, "the SMSC stopped answering");
			return;
		}
		/* Probe a silent SMSC, but only in a free window slot (stop-and-wait). */
		if (idle >= ka && sb->outstanding < (unsigned)sb->cfg->smsbuf_window)
			sb->proto->keepalive(sb);
		timer_start(sb->loop, t, ka < 1000 ? ka : 1000);
		return;
	default: /* shutting down and the SMSC did not answer in time */
		loop_stop(sb->loop);
		return;
	}
}

static void
smsc_connect(struct smsbuf *sb)
{
	char err[256];

	sb->smsc = conn_connect(sb->loop, sb->cfg->smsbuf_smsc, &smsc_cb, sb, err, sizeof err);
	if (!sb->smsc) {
		smsc_fail(sb, err);
		return;
	}
	sb->smsc_state = SMSC_CONNECTING;
	sb->outstanding = 0;
	sb->seq = 0; /* request numbers start again with each session (CIMD2 3.1: 001) */
	timer_start(sb->loop, &sb->smsc_timer, BIND_TIMEOUT);
}

void
smsc_fail(struct smsbuf *sb, const char *why)
{
	if (sb->smsc_state == SMSC_DOWN && !sb->smsc)
		return;
	if (sb->smsc_state == SMSC_BOUND || sb->smsc_state == SMSC_BINDING ||
	    sb->smsc_state == SMSC_CONNECTING)
		log_warn("smsbuf: SMSC %s: %s; reconnecting in %llu s", sb->cfg->smsbuf_smsc, why,
			 (unsigned long long)sb->smsc_backoff / 1000);
	snprintf(sb->smsc_error, sizeof sb->smsc_error, "%s", why);
	buffer_note(sb, "smsc", "down: %s", why);
	if (sb->smsc) {
		conn_close(sb->smsc);
		sb->smsc = NULL;
	}
	sb->smsc_state = SMSC_DOWN;
	sb->outstanding = 0;
	/*
	 * Parts in flight get no answer now: they go again with the next session (the one repeat
	 * R10 allows). Parts the SMSC accepted stay accepted.
	 */
	sb->sub.nreq = 0;
	sb->sub.next = 0; /* the pump skips the parts already accepted */
	timer_stop(sb->loop, &sb->retry_timer);
	if (sb->stopping)
		loop_stop(sb->loop); /* shutting down: the SMSC closed first */
	else
		timer_start(sb->loop, &sb->smsc_timer, sb->smsc_backoff);
	sb->smsc_backoff = sb->smsc_backoff * 2 > sb->cfg->smsbuf_reconnect_max
			       ? sb->cfg->smsbuf_reconnect_max
			       : sb->smsc_backoff * 2;
}

void
smsc_bound(struct smsbuf *sb, bool ok, const char *why)
{
	if (!ok) {
		char msg[200];
		snprintf(msg, sizeof msg,
			 "login refused: %s (check smsbuf.smsc_user and "
			 "smsbuf.smsc_password)",
			 why);
		log_error("smsbuf: SMSC %s: %s", sb->cfg->smsbuf_smsc, msg);
		smsc_fail(sb, msg);
		return;
	}
	log_info("smsbuf: logged in to the SMSC at %s", sb->cfg->smsbuf_smsc);
	sb->smsc_state = SMSC_BOUND;
	buffer_note(sb, "smsc", "up: logged in to %s (%s)", sb->cfg->smsbuf_smsc, sb->proto->name);
	sb->smsc_backoff = 1000;
	sb->smsc_error[0] = '\0';
	timer_start(sb->loop, &sb->smsc_timer, 1000);
	smsc_pump(sb);
}

uint32_t
smsc_next_seq(struct smsbuf *sb)
{
	return ++sb->seq;
}

void
smsc_request_sent(struct smsbuf *sb)
{
	sb->outstanding++;
	if (sb->outstanding > sb->max_outstanding)
		sb->max_outstanding = sb->outstanding;
}

void
smsc_response(struct smsbuf *sb)
{
	if (sb->outstanding)
		sb->outstanding--;
	if (!sb->stopping || sb->outstanding)
		return;
	/* Shutting down: the answer we waited for came; log out, then stop on its answer. */
	if (sb->smsc_state == SMSC_BOUND) {
		sb->smsc_state = SMSC_UNBINDING;
		sb->proto->logout(sb);
	} else if (sb->smsc_state == SMSC_UNBINDING) {
		loop_stop(sb->loop);
	}
}

void
smsc_shutdown(struct smsbuf *sb)
{
	if (sb->stopping) { /* a second signal: now */
		loop_stop(sb->loop);
		return;
	}
	sb->stopping = true;
	timer_stop(sb->loop, &sb->retry_timer);
	if (sb->smsc_state != SMSC_BOUND) {
		loop_stop(sb->loop);
		return;
	}
	/* An unbind / logout when the window is free (what is in flight is answered first). */
	if (sb->outstanding == 0) {
		sb->smsc_state = SMSC_UNBINDING;
		sb->proto->logout(sb);
	}
	timer_start(sb->loop, &sb->smsc_timer, 2000); /* the SMSC gets this long to answer */
}

/* Splits the current MT into parts once, when its turn comes. */
static bool
sub_begin(struct smsbuf *sb, struct sms_msg *m)
{
	const char *text = m->text ? m->text : "";
	struct sms_seg *segs = xcalloc(SMS_PARTS_MAX, sizeof *segs);
	int coding, n = sms_split(text, strlen(text), &coding, segs, SMS_PARTS_MAX);

	if (n < 0) {
		free(segs);
		buffer_mt_done(sb, m, false, NULL,
			       "text cannot be sent as SMS (invalid or too long)");
		return false;
	}
	sub_reset(sb);
	sb->sub.seq = m->seq;
	sb->sub.segs = segs;
	sb->sub.acked = xcalloc((size_t)n, sizeof *sb->sub.acked);
	sb->sub.nsegs = n;
	sb->sub.coding = coding;
	sb->sub.ref = ++sb->concat_ref;
	return true;
}

void
smsc_pump(struct smsbuf *sb)
{
	while (sb->smsc_state == SMSC_BOUND && !sb->stopping && !timer_armed(&sb->retry_timer) &&
	       sb->outstanding < (unsigned)sb->cfg->smsbuf_window &&
	       sb->sub.nreq < ARRAY_LEN(sb->sub.req)) {
		struct sms_msg *m;

		if (!sb->sub.seq) {
			m = buffer_mt_next(sb);
			if (!m)
				return;
			if (!sub_begin(sb, m))
				continue; /* refused at once (Processed): the next one */
		} else {
			m = ring_find(&sb->mt, sb->sub.seq);
			if (!m) { /* cannot happen: the slot is not reused before Processed */
				sub_reset(sb);
				continue;
			}
		}
		while (sb->sub.next < sb->sub.nsegs && sb->sub.acked[sb->sub.next])
			sb->sub.next++;
		if (sb->sub.next >= sb->sub.nsegs)
			return; /* every part is out: wait for the answers */
		int i = sb->sub.next++;
		struct smsc_part p = {
		    .to = m->to,
		    .coding = sb->sub.coding,
		    .ud = sb->sub.segs[i].data,
		    .len = sb->sub.segs[i].len,
		    .total = (unsigned)sb->sub.nsegs,
		    .part = (unsigned)i + 1,
		    .ref = sb->sub.ref,
		    .dlr = m->extra && strstr(m->extra, "dlr") != NULL,
		};
		sb->proto->submit(sb, &p);
		sb->sub.req[sb->sub.nreq] = sb->seq;
		sb->sub.req_part[sb->sub.nreq] = i;
		sb->sub.nreq++;
	}
}

static void
retry_fire(struct timer *t)
{
	struct smsbuf *sb = container_of(t, struct smsbuf, retry_timer);
	smsc_pump(sb);
}

void
smsc_submit_result(struct smsbuf *sb, uint32_t req, int status, bool temporary, const char *msgid,
		   const char *why)
{
	struct sms_msg *m = sb->sub.seq ? ring_find(&sb->mt, sb->sub.seq) : NULL;
	int part = -1;

	for (unsigned i = 0; i < sb->sub.nreq; i++) {
		if (sb->sub.req[i] == req) {
			part = sb->sub.req_part[i];
			sb->sub.req[i] = sb->sub.req[--sb->sub.nreq];
			sb->sub.req_part[i] = sb->sub.req_part[sb->sub.nreq];
			break;
		}
	}
	if (part < 0 || !m) {
		log_warn("smsbuf: SMSC answered a submit we did not make (number %u)", req);
		return;
	}
	if (status == 0 && sb->sub.acked[part]) {
		/* cannot happen: each part has one request in flight */
	} else if (status == 0) {
		sb->sub.acked[part] = true;
		if (buf_used(&sb->sub.msgids))
			buf_puts(&sb->sub.msgids, ",");
		buf_puts(&sb->sub.msgids, msgid ? msgid : "");
		if (++sb->sub.done == sb->sub.nsegs) {
			buffer_mt_done(sb, m, true, buf_head(&sb->sub.msgids), NULL);
			sub_reset(sb);
		}
	} else if (temporary) {
		/* Throttled or congested: the same part again, a little later. */
		log_info("smsbuf: SMSC refused MT %llu part %d for now (%s); retrying",
			 (unsigned long long)m->seq, part + 1, why);
		if (part < sb->sub.next)
			sb->sub.next = part;
		timer_start(sb->loop, &sb->retry_timer, sb->cfg->smsbuf_retry);
	} else {
		log_info("smsbuf: SMSC refused MT %llu to %s: %s", (unsigned long long)m->seq,
			 m->to, why);
		buffer_mt_done(sb, m, false, NULL, why);
		/* Parts still in flight are answered into the void: sub.seq no longer matches. */
		sub_reset(sb);
	}
	smsc_pump(sb);
}

enum mo_verdict
smsc_report(struct smsbuf *sb, const char *from, const char *msgid, const char *stat)
{
	char extra[160];

	if (!msgid || !*msgid)
		return MO_BAD;
	snprintf(extra, sizeof extra, "report:%s:%s", stat && *stat ? stat : "UNKNOWN", msgid);
	sb->reports_received++;
	return buffer_mo(sb, from ? from : "", sb->cfg->smsbuf_source_addr, "", extra);
}

void
smsc_start(struct smsbuf *sb)
{
	sb->proto = strcmp(sb->cfg->smsbuf_protocol, "cimd2") == 0 ? &smsc_cimd2 : &smsc_smpp;
	sb->smsc_timer.fn = smsc_tick;
	sb->retry_timer.fn = retry_fire;
	sb->smsc_backoff = 1000;
	smsc_connect(sb);
}

void
smsc_stop(struct smsbuf *sb)
{
	sb->stopping = true;
	timer_stop(sb->loop, &sb->smsc_timer);
	timer_stop(sb->loop, &sb->retry_timer);
	if (sb->smsc) {
		conn_close(sb->smsc);
		sb->smsc = NULL;
	}
	sb->smsc_state = SMSC_DOWN;
	sub_reset(sb);
}
