/*
 * The SMS link's frame codec and mirrored ring, shared by batond and baton-smsbuf (see link.h
 * and docs/protocol/sms-link.md).
 *
 * Invariant: every value is percent-encoded on the wire, so a frame is exactly one line and
 * no text (newlines, '=' or spaces in an SMS) can change its structure.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"

/* ---- frames ---- */

static bool
plain_char(unsigned char c)
{
	return isalnum(c) || c == '.' || c == '_' || c == '~' || c == '-' || c == '+' || c == '@' ||
	       c == '/' || c == ':' || c == ',';
}

void
link_frame_free(struct link_frame *fr)
{
	free(fr->mem);
	fr->mem = NULL;
	fr->n = 0;
}

long
link_parse(const char *data, size_t len, struct link_frame *fr, char *err, size_t errlen)
{
	const char *nl = memchr(data, '\n', len < LINK_MAX_LINE ? len : LINK_MAX_LINE);
	size_t linelen, vl = 0;
	char *out;
	const char *p, *end;

	memset(fr, 0, sizeof *fr);
	if (!nl) {
		if (len >= LINK_MAX_LINE) {
			snprintf(err, errlen, "frame longer than %d bytes", LINK_MAX_LINE);
			return -1;
		}
		return 0;
	}
	linelen = (size_t)(nl - data);
	end = data + linelen;
	if (linelen && end[-1] == '\r')
		end--;
	/* The verb: upper-case letters, digits, '-', '/', '.'. */
	for (p = data; p < end && *p != ' '; p++) {
		if (!(isupper((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' ||
		      *p == '/' || *p == '.') ||
		    vl + 1 >= sizeof fr->verb) {
			snprintf(err, errlen, "bad frame verb");
			return -1;
		}
		fr->verb[vl++] = *p;
	}
	if (vl == 0) {
		snprintf(err, errlen, "empty frame");
		return -1;
	}
	/* Decoded text is never longer than the encoded: one buffer for every key and value. */
	out = fr->mem = xmalloc(linelen + 1);
	while (p < end) {
		struct link_field *f;
		const char *kstart;

		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		if (fr->n == LINK_MAX_FIELDS) {
			snprintf(err, errlen, "more than %d fields", LINK_MAX_FIELDS);
			goto bad;
		}
		f = &fr->f[fr->n];
		kstart = out;
		while (p < end && *p != '=' && *p != ' ') {
			if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) ||
			      *p == '-')) {
				snprintf(err, errlen, "bad field name");
				goto bad;
			}
			*out++ = *p++;
		}
		if (p == end || *p != '=' || out == kstart) {
			snprintf(err, errlen, "field without a value");
			goto bad;
		}
		*out++ = '\0';
		f->key = kstart;
		f->value = out;
		for (p++; p < end && *p != ' '; p++) {
			if (*p == '%') {
				int hi = end - p >= 3 ? hex_digit((unsigned char)p[1]) : -1;
				int lo = hi >= 0 ? hex_digit((unsigned char)p[2]) : -1;
				if (hi < 0 || lo < 0) {
					snprintf(err, errlen, "bad %%-escape");
					goto bad;
				}
				*out++ = (char)(hi << 4 | lo);
				p += 2;
			} else if (plain_char((unsigned char)*p)) {
				*out++ = *p;
			} else {
				snprintf(err, errlen, "unescaped byte 0x%02x in a value",
					 (unsigned char)*p);
				goto bad;
			}
		}
		f->len = (size_t)(out - f->value);
		*out++ = '\0';
		/* A NUL inside a value would cut it short for everyone reading it as a string. */
		if (memchr(f->value, '\0', f->len)) {
			snprintf(err, errlen, "NUL in a value");
			goto bad;
		}
		fr->n++;
	}
	return (long)linelen + 1;
bad:
	link_frame_free(fr);
	return -1;
}

const char *
link_get(const struct link_frame *fr, const char *key)
{
	for (size_t i = 0; i < fr->n; i++)
		if (strcmp(fr->f[i].key, key) == 0)
			return fr->f[i].value;
	return NULL;
}

bool
link_get_u64(const struct link_frame *fr, const char *key, uint64_t *out)
{
	const char *v = link_get(fr, key);
	char *end;

	if (!v || !isdigit((unsigned char)*v))
		return false;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return errno == 0 && *end == '\0';
}

void
link_begin(struct buf *out, const char *verb)
{
	buf_puts(out, verb);
}

void
link_add(struct buf *out, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";

	buf_printf(out, " %s=", key);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (plain_char(*p)) {
			buf_append(out, p, 1);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			buf_append(out, e, 3);
		}
	}
}

void
link_add_u64(struct buf *out, const char *key, uint64_t v)
{
	buf_printf(out, " %s=%" PRIu64, key, v);
}

void
link_end(struct buf *out)
{
	buf_puts(out, "\n");
}

void
link_mac(const char *secret, const char *nonce, const char *name, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	struct buf msg = {0};

	buf_printf(&msg, "%s %s", nonce, name);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)buf_head(&msg),
	     buf_used(&msg), md, &mdlen);
	buf_free(&msg);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

bool
link_mac_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	return la == lb && CRYPTO_memcmp(a, b, la) == 0;
}

/* ---- the ring ---- */

void
ring_init(struct sms_ring *r, unsigned size)
{
	memset(r, 0, sizeof *r);
	r->size = size ? size : SMS_RING_DEFAULT;
	r->slot = xcalloc(r->size, sizeof *r->slot);
}

static void
msg_clear(struct sms_msg *m)
{
	free(m->from);
	free(m->to);
	free(m->text);
	free(m->ref);
	free(m->extra);
	memset(m, 0, sizeof *m);
}

void
ring_free(struct sms_ring *r)
{
	for (unsigned i = 0; r->slot && i < r->size; i++)
		msg_clear(&r->slot[i]);
	free(r->slot);
	memset(r, 0, sizeof *r);
}

bool
ring_has_room(const struct sms_ring *r)
{
	const struct sms_msg *m = &r->slot[ring_slot(r, r->last_retrieved + 1)];
	return m->seq == 0 || m->state == SMS_PROCESSED;
}

unsigned
ring_busy(const struct sms_ring *r)
{
	unsigned n = 0;
	for (unsigned i = 0; i < r->size; i++)
		if (r->slot[i].seq && r->slot[i].state != SMS_PROCESSED)
			n++;
	return n;
}

struct sms_msg *
ring_put(struct sms_ring *r, uint64_t seq, int state, char *from, char *to, char *text, char *ref,
	 char *extra)
{
	struct sms_msg *m = &r->slot[ring_slot(r, seq)];

	msg_clear(m);
	m->seq = seq;
	m->state = SMS_FREE;
	m->from = from;
	m->to = to;
	m->text = text;
	m->ref = ref;
	m->extra = extra;
	m->stamp = wall_ms();
	if (seq > r->last_retrieved)
		r->last_retrieved = seq;
	ring_set(r, m, state);
	return m;
}

struct sms_msg *
ring_take(struct sms_ring *r, char *from, char *to, char *text, char *ref, char *extra)
{
	if (!ring_has_room(r))
		return NULL;
	return ring_put(r, r->last_retrieved + 1, SMS_RETRIEVED, from, to, text, ref, extra);
}

struct sms_msg *
ring_find(struct sms_ring *r, uint64_t seq)
{
	struct sms_msg *m;

	if (seq == 0)
		return NULL;
	m = &r->slot[ring_slot(r, seq)];
	return m->seq == seq ? m : NULL;
}

void
ring_set(struct sms_ring *r, struct sms_msg *m, int state)
{
	if (state > m->state)
		m->state = state;
	/* Acknowledgements come in any order: each pointer is the highest seq that got there. */
	if (m->state >= SMS_SENT && m->seq > r->last_sent)
		r->last_sent = m->seq;
	if (m->state >= SMS_CONFIRMED && m->seq > r->last_confirmed)
		r->last_confirmed = m->seq;
	if (m->state >= SMS_PROCESSED && m->seq > r->last_processed)
		r->last_processed = m->seq;
	if (m->state == SMS_PROCESSED) {
		/* A Processed slot keeps its seq (to recognise duplicates), not its text. */
		free(m->text);
		m->text = NULL;
	}
}

enum ring_verdict
ring_check(const struct sms_ring *r, unsigned slot, uint64_t seq)
{
	const struct sms_msg *m;

	if (seq == 0 || slot >= r->size || ring_slot(r, seq) != slot)
		return RING_CLASH;
	m = &r->slot[slot];
	if (m->seq == seq)
		return RING_DUP;
	if (m->seq > seq)
		return RING_OLD;
	if (m->seq != 0 && m->state != SMS_PROCESSED)
		return RING_CLASH;
	return RING_NEW;
}

const char *
sms_state_name(int state)
{
	static const char *const names[] = {"free", "retrieved", "sent", "confirmed", "processed"};
	return state >= 0 && state < (int)ARRAY_LEN(names) ? names[state] : "?";
}

const char *
sms_dir_name(int dir)
{
	return dir == SMS_MO ? "mo" : "mt";
}

/* ---- one end of the link ---- */

static void
peer_write(struct link_peer *p, struct buf *b)
{
	link_end(b);
	p->ops->send(p, buf_head(b), buf_used(b));
	p->sent++;
	buf_free(b);
}

/* A frame about message seq of dir: CONF, PROC or ASK. */
static void
peer_about(struct link_peer *p, const char *verb, int dir, const struct sms_msg *m,
	   const char *fields)
{
	struct buf b = {0};

	link_begin(&b, verb);
	link_add(&b, "dir", sms_dir_name(dir));
	link_add_u64(&b, "seq", m->seq);
	if (fields)
		buf_puts(&b, fields);
	else if (strcmp(verb, "PROC") == 0 && m->state == SMS_PROCESSED && m->extra)
		buf_puts(&b, m->extra); /* the outcome, kept for a PROC asked for again */
	peer_write(p, &b);
}

void
link_peer_send(struct link_peer *p, struct sms_msg *m)
{
	struct buf b = {0};

	link_begin(&b, "MSG");
	link_add(&b, "dir", sms_dir_name(p->out_dir));
	link_add_u64(&b, "slot", ring_slot(p->out, m->seq));
	link_add_u64(&b, "seq", m->seq);
	link_add(&b, "from", m->from ? m->from : "");
	link_add(&b, "to", m->to ? m->to : "");
	link_add(&b, "text", m->text ? m->text : "");
	if (m->ref)
		link_add(&b, "ref", m->ref);
	if (m->extra)
		link_add(&b, "extra", m->extra);
	peer_write(p, &b);
	ring_set(p->out, m, SMS_SENT);
}

void
link_peer_resync(struct link_peer *p)
{
	struct sms_ring *r = p->out;

	/* In seq order, oldest first, so the receiver sees them in the order they were taken. */
	uint64_t first = r->last_retrieved >= r->size ? r->last_retrieved - r->size + 1 : 1;

	for (uint64_t seq = first; seq <= r->last_retrieved; seq++) {
		struct sms_msg *m = ring_find(r, seq);
		if (!m || m->state == SMS_PROCESSED)
			continue;
		if (m->state == SMS_CONFIRMED)
			peer_about(p, "ASK", p->out_dir, m, NULL);
		else
			link_peer_send(p, m);
	}
}

void
link_peer_confirm(struct link_peer *p, struct sms_msg *m)
{
	ring_set(p->in, m, SMS_CONFIRMED);
	if (p->up)
		peer_about(p, "CONF", !p->out_dir, m, NULL);
}

void
link_peer_processed(struct link_peer *p, struct sms_msg *m, const char *fields)
{
	free(m->extra);
	m->extra = xstrdup(fields ? fields : "");
	ring_set(p->in, m, SMS_PROCESSED);
	if (p->up)
		peer_about(p, "PROC", !p->out_dir, m, fields);
}

static int
frame_dir(const struct link_frame *fr)
{
	const char *d = link_get(fr, "dir");
	if (!d)
		return -1;
	if (strcmp(d, "mt") == 0)
		return SMS_MT;
	if (strcmp(d, "mo") == 0)
		return SMS_MO;
	return -1;
}

/* An incoming MSG: new, a duplicate (answer with its state), or a clash (protocol error). */
static void
peer_msg(struct link_peer *p, const struct link_frame *fr)
{
	uint64_t slot, seq;
	struct sms_msg *m;
	const char *text = link_get(fr, "text");

	if (frame_dir(fr) != !p->out_dir || !link_get_u64(fr, "slot", &slot) ||
	    !link_get_u64(fr, "seq", &seq) || !text || strlen(text) > SMS_MAX_TEXT) {
		p->ops->fail(p, "MSG without a valid dir, slot, seq or text");
		return;
	}
	switch (ring_check(p->in, slot > UINT32_MAX ? UINT32_MAX : (unsigned)slot, seq)) {
	case RING_OLD:
		/* Long processed; its PROC was lost. The seq is all the sender needs. */
		peer_about(p, "PROC", !p->out_dir, &(struct sms_msg){.seq = seq}, NULL);
		return;
	case RING_DUP:
		m = ring_find(p->in, seq);
		if (m->state >= SMS_PROCESSED)
			peer_about(p, "PROC", !p->out_dir, m, NULL);
		else if (m->state >= SMS_CONFIRMED)
			peer_about(p, "CONF", !p->out_dir, m, NULL);
		/* else: still being stored; CONF follows when it is */
		return;
	case RING_CLASH:
		p->ops->fail(
		    p, "MSG for a slot whose earlier message is not processed (rings differ)");
		return;
	case RING_NEW:
		break;
	}
	const char *from = link_get(fr, "from"), *to = link_get(fr, "to");
	const char *ref = link_get(fr, "ref"), *extra = link_get(fr, "extra");
	m = ring_put(p->in, seq, SMS_RETRIEVED, xstrdup(from ? from : ""), xstrdup(to ? to : ""),
		     xstrdup(text), ref ? xstrdup(ref) : NULL, extra ? xstrdup(extra) : NULL);
	p->ops->received(p, m, fr);
}

/* CONF or PROC for one of our messages; ASK about one of theirs. */
static void
peer_ack(struct link_peer *p, const struct link_frame *fr, int state)
{
	uint64_t seq;
	struct sms_msg *m;

	if (frame_dir(fr) != p->out_dir || !link_get_u64(fr, "seq", &seq)) {
		p->ops->fail(p, "acknowledgement without a valid dir or seq");
		return;
	}
	m = ring_find(p->out, seq);
	if (!m || m->state >= state)
		return; /* a repeated acknowledgement (after a resync): already counted */
	ring_set(p->out, m, state);
	p->ops->acked(p, m, state, fr);
}

static void
peer_ask(struct link_peer *p, const struct link_frame *fr)
{
	uint64_t seq;
	struct sms_msg *m;

	if (frame_dir(fr) != !p->out_dir || !link_get_u64(fr, "seq", &seq)) {
		p->ops->fail(p, "ASK without a valid dir or seq");
		return;
	}
	m = ring_find(p->in, seq);
	if (!m) {
		/* Not here: either long processed and its slot reused (answer Processed), or
		 * never received, which a Confirmed message cannot be (our ring was lost). */
		if (seq <= p->in->last_processed)
			peer_about(p, "PROC", !p->out_dir, &(struct sms_msg){.seq = seq}, NULL);
		else
			p->ops->fail(p, "ASK about a message this end never confirmed");
		return;
	}
	if (m->state >= SMS_PROCESSED)
		peer_about(p, "PROC", !p->out_dir, m, NULL);
	else if (m->state >= SMS_CONFIRMED)
		peer_about(p, "CONF", !p->out_dir, m, NULL);
}

int
link_peer_frame(struct link_peer *p, const struct link_frame *fr)
{
	p->received++;
	if (strcmp(fr->verb, "MSG") == 0)
		peer_msg(p, fr);
	else if (strcmp(fr->verb, "CONF") == 0)
		peer_ack(p, fr, SMS_CONFIRMED);
	else if (strcmp(fr->verb, "PROC") == 0)
		peer_ack(p, fr, SMS_PROCESSED);
	else if (strcmp(fr->verb, "ASK") == 0)
		peer_ask(p, fr);
	else if (strcmp(fr->verb, "PING") == 0) {
		struct buf b = {0};
		link_begin(&b, "PONG");
		peer_write(p, &b);
	} else if (strcmp(fr->verb, "PONG") != 0)
		return -1;
	return 0;
}
