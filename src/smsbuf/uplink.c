/*
 * The link from baton-smsbuf to batond (docs/protocol/sms-link.md): connect with backoff,
 * STARTTLS with batond's certificate verified, HELLO with the secret's MAC over batond's
 * nonce, then the message frames of link.c in both directions, keepalives, and a resync after
 * every reconnection (seed 001 FIG. 3).
 *
 * Invariant: an MT from batond is confirmed only after it is in the ring on disk; while the
 * link is down nothing is lost or refused, the rings simply wait (R9).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smsbuf.h"

static void uplink_connect(struct smsbuf *sb);

static struct smsbuf *
sb_of(struct link_peer *p)
{
	return p->arg;
}

static void
uplink_drop(struct smsbuf *sb, const char *why)
{
	if (sb->link_state == UPLINK_UP)
		log_warn("smsbuf: link to batond lost: %s; reconnecting", why);
	else if (sb->link_state != UPLINK_DOWN)
		log_warn("smsbuf: link to batond %s: %s; retrying in %llu s", sb->cfg->smsbuf_link,
			 why, (unsigned long long)sb->link_backoff / 1000);
	snprintf(sb->link_error, sizeof sb->link_error, "%s", why);
	if (sb->link_state != UPLINK_DOWN)
		buffer_note(sb, "link", "down: %s", why);
	if (sb->link) {
		conn_close(sb->link);
		sb->link = NULL;
	}
	sb->link_state = UPLINK_DOWN;
	sb->peer.up = false;
	if (sb->stopping)
		return;
	timer_start(sb->loop, &sb->link_timer, sb->link_backoff);
	sb->link_backoff = sb->link_backoff * 2 > sb->cfg->smsbuf_reconnect_max
			       ? sb->cfg->smsbuf_reconnect_max
			       : sb->link_backoff * 2;
}

/* ---- what link.c reports ---- */

static void
peer_send(struct link_peer *p, const char *data, size_t len)
{
	struct smsbuf *sb = sb_of(p);
	if (sb->link)
		conn_write(sb->link, data, len);
}

/* batond sent an MT: into the ring on disk, then confirmed (R6: Confirmed = stored here). */
static void
peer_received(struct link_peer *p, struct sms_msg *m, const struct link_frame *fr)
{
	struct smsbuf *sb = sb_of(p);

	m->state = SMS_CONFIRMED; /* on disk as stored here; link_peer_confirm() says so */
	if (journal_slot(sb, SMS_MT, m) < 0) {
		/* Not stored, not confirmed: batond sends it again after the reconnection. */
		m->seq = 0;
		m->state = SMS_FREE;
		uplink_drop(sb, "cannot store an MT message");
		return;
	}
	link_peer_confirm(p, m);
	smsc_pump(sb);
}

/* batond confirmed (stored) or processed (delivered or queued) an MO: note it on disk. */
static void
peer_acked(struct link_peer *p, struct sms_msg *m, int state, const struct link_frame *fr)
{
	struct smsbuf *sb = sb_of(p);

	if (journal_state(sb, SMS_MO, m, state, NULL) < 0)
		log_error("smsbuf: could not record MO %llu as %s", (unsigned long long)m->seq,
			  sms_state_name(state));
	/* A slot came free: the SMSC may deliver again what we made it keep (R11). */
}

static void
peer_fail(struct link_peer *p, const char *why)
{
	uplink_drop(sb_of(p), why);
}

static const struct link_peer_ops peer_ops = {
    .send = peer_send,
    .received = peer_received,
    .acked = peer_acked,
    .fail = peer_fail,
};

/* ---- the handshake ---- */

static void
send_hello(struct smsbuf *sb, const char *nonce)
{
	struct buf b = {0};
	char mac[65];

	link_mac(sb->cfg->smsbuf_link_secret, nonce, sb->name, mac);
	link_begin(&b, "HELLO");
	link_add(&b, "name", sb->name);
	link_add_u64(&b, "ring", sb->mt.size);
	link_add(&b, "mac", mac);
	link_end(&b);
	conn_write(sb->link, buf_head(&b), buf_used(&b));
	buf_free(&b);
	sb->link_state = UPLINK_HELLO;
}

static char nonce_held[80];

static void
handshake_frame(struct smsbuf *sb, const struct link_frame *fr)
{
	if (sb->link_state == UPLINK_CONNECTING && strcmp(fr->verb, LINK_VERSION) == 0) {
		const char *nonce = link_get(fr, "nonce");
		if (!nonce || strlen(nonce) >= sizeof nonce_held) {
			uplink_drop(sb, "batond's greeting has no nonce");
			return;
		}
		snprintf(nonce_held, sizeof nonce_held, "%s", nonce);
		if (sb->cfg->smsbuf_link_plaintext) {
			send_hello(sb, nonce_held);
		} else {
			conn_write(sb->link, "STARTTLS\n", 9);
			sb->link_state = UPLINK_STARTTLS;
		}
	} else if (sb->link_state == UPLINK_STARTTLS && strcmp(fr->verb, "PROCEED") == 0) {
		/* TLS from here; HELLO goes once the handshake runs (the next turn). */
		conn_starttls(sb->link, sb->tls);
		sb->link_state = UPLINK_TLS;
		timer_start(sb->loop, &sb->link_timer, 0);
	} else if (sb->link_state == UPLINK_HELLO && strcmp(fr->verb, "WELCOME") == 0) {
		uint64_t ring = 0;
		if (link_get_u64(fr, "ring", &ring) && ring != sb->mt.size) {
			uplink_drop(sb, "batond keeps rings of another size (sms.ring)");
			return;
		}
		log_info("smsbuf: link to batond at %s is up; resending what was not confirmed",
			 sb->cfg->smsbuf_link);
		sb->link_state = UPLINK_UP;
		buffer_note(sb, "link", "up: batond at %s%s", sb->cfg->smsbuf_link,
			    sb->cfg->smsbuf_link_plaintext ? " (plaintext)" : " (TLS)");
		sb->link_backoff = 1000;
		sb->link_error[0] = '\0';
		sb->peer.up = true;
		link_peer_resync(&sb->peer);
		timer_start(sb->loop, &sb->link_timer, 1000);
	} else if (strcmp(fr->verb, "DENIED") == 0) {
		const char *why = link_get(fr, "reason");
		char msg[200];
		snprintf(msg, sizeof msg, "batond refused this buffer server: %s",
			 why ? why : "no reason given");
		log_error("smsbuf: %s", msg);
		uplink_drop(sb, msg);
	} else {
		char msg[64];
		snprintf(msg, sizeof msg, "unexpected %s during the handshake", fr->verb);
		uplink_drop(sb, msg);
	}
}

static void
uplink_data(struct conn *c, void *arg)
{
	struct smsbuf *sb = arg;

	sb->link_last_rx = now_ms();
	sb->link_pinged = false;
	while (sb->link == c && buf_used(&c->in) > 0) {
		struct link_frame fr;
		char err[128];
		long n = link_parse(buf_head(&c->in), buf_used(&c->in), &fr, err, sizeof err);
		int state = sb->link_state;

		if (n == 0)
			return;
		if (n < 0) {
			uplink_drop(sb, err);
			return;
		}
		buf_consume(&c->in, (size_t)n);
		if (state == UPLINK_UP) {
			if (link_peer_frame(&sb->peer, &fr) < 0 && strcmp(fr.verb, "BYE") != 0) {
				link_frame_free(&fr);
				uplink_drop(sb, "batond sent an unknown frame");
				return;
			}
		} else {
			handshake_frame(sb, &fr);
		}
		link_frame_free(&fr);
		/* STARTTLS discards what follows in the buffer; nothing may be read on. */
		if (sb->link_state == UPLINK_TLS)
			return;
	}
}

static void
uplink_closed(struct conn *c, void *arg, const char *reason)
{
	struct smsbuf *sb = arg;
	if (sb->link == c)
		uplink_drop(sb, reason);
}

static const struct conn_cb uplink_cb = {.data = uplink_data, .closed = uplink_closed};

/* The timer: reconnect when down, send HELLO after STARTTLS, keepalive and liveness when up. */
static void
uplink_tick(struct timer *t)
{
	struct smsbuf *sb = container_of(t, struct smsbuf, link_timer);
	uint64_t ka = sb->cfg->smsbuf_keepalive, idle = now_ms() - sb->link_last_rx;

	switch (sb->link_state) {
	case UPLINK_DOWN:
		uplink_connect(sb);
		return;
	case UPLINK_TLS:
		if (!conn_is_tls(sb->link)) { /* the switch happens at the end of the turn */
			timer_start(sb->loop, t, 5);
			return;
		}
		send_hello(sb, nonce_held);
		timer_start(sb->loop, t, 3 * ka);
		return;
	case UPLINK_UP:
		if (idle >= 3 * ka) {
			uplink_drop(sb, "batond stopped answering");
			return;
		}
		if (idle >= ka && !sb->link_pinged) {
			conn_write(sb->link, "PING\n", 5);
			sb->link_pinged = true;
		}
		timer_start(sb->loop, t, ka < 1000 ? ka : 1000);
		return;
	default: /* the handshake took too long */
		uplink_drop(sb, "no answer to the handshake");
		return;
	}
}

static void
uplink_connect(struct smsbuf *sb)
{
	char err[256];

	sb->link = conn_connect(sb->loop, sb->cfg->smsbuf_link, &uplink_cb, sb, err, sizeof err);
	if (!sb->link) {
		sb->link_state = UPLINK_CONNECTING; /* so the drop is logged */
		uplink_drop(sb, err);
		return;
	}
	conn_set_limits(sb->link, LINK_MAX_LINE * 2, 64 << 20, 0, 0);
	sb->link_state = UPLINK_CONNECTING;
	sb->link_last_rx = now_ms();
	timer_start(sb->loop, &sb->link_timer, 3 * sb->cfg->smsbuf_keepalive);
}

void
uplink_start(struct smsbuf *sb)
{
	sb->peer.ops = &peer_ops;
	sb->peer.arg = sb;
	sb->peer.out_dir = SMS_MO;
	sb->peer.out = &sb->mo;
	sb->peer.in = &sb->mt;
	sb->link_timer.fn = uplink_tick;
	sb->link_backoff = 1000;
	uplink_connect(sb);
}

void
uplink_stop(struct smsbuf *sb)
{
	timer_stop(sb->loop, &sb->link_timer);
	if (sb->link) {
		conn_close(sb->link);
		sb->link = NULL;
	}
	sb->link_state = UPLINK_DOWN;
	sb->peer.up = false;
}

void
uplink_pump(struct smsbuf *sb)
{
	struct sms_ring *r = &sb->mo;
	uint64_t first = r->last_retrieved >= r->size ? r->last_retrieved - r->size + 1 : 1;

	if (sb->link_state != UPLINK_UP)
		return;
	for (uint64_t seq = first; seq <= r->last_retrieved; seq++) {
		struct sms_msg *m = ring_find(r, seq);
		if (m && m->state == SMS_RETRIEVED)
			link_peer_send(&sb->peer, m);
	}
}

void
uplink_processed(struct smsbuf *sb, struct sms_msg *m, const char *fields)
{
	link_peer_processed(&sb->peer, m, fields);
}
