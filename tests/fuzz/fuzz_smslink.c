/*
 * fuzz_smslink: libFuzzer target for the SMS link (sms/link.c). The whole input is parsed as
 * a stream of frames; then, after a first configuration byte (direction, ring size, whether
 * to confirm at once), its frames drive one link_peer end whose other end is imaginary.
 *
 * Invariants checked: link_parse returns 0 only for an incomplete line that could still fit,
 * never takes more than the line, gives valid verbs and keys and NUL-free values, and every
 * frame re-encodes with link_add to a frame that parses to the same fields and re-encodes to
 * the same bytes; the peer only ever sends well-formed frames, and after every frame both
 * rings keep each message in slot (seq - 1) % size with no Last pointer past Last Retrieved.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "sms/link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_smslink: %s\n", what);
		abort();
	}
}

static void
encode(const struct link_frame *fr, struct buf *b)
{
	link_begin(b, fr->verb);
	for (size_t i = 0; i < fr->n; i++)
		link_add(b, fr->f[i].key, fr->f[i].value);
	link_end(b);
}

static bool
same_frame(const struct link_frame *a, const struct link_frame *b)
{
	if (strcmp(a->verb, b->verb) != 0 || a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->f[i].key, b->f[i].key) != 0 || a->f[i].len != b->f[i].len ||
		    memcmp(a->f[i].value, b->f[i].value, a->f[i].len) != 0)
			return false;
	return true;
}

static void
check_frame(const struct link_frame *fr)
{
	struct buf b = {0}, b2 = {0};
	struct link_frame again;
	char err[128];
	long r;

	check(fr->verb[0] != '\0' && fr->n <= LINK_MAX_FIELDS, "empty verb or too many fields");
	for (const char *v = fr->verb; *v; v++)
		check(isupper((unsigned char)*v) || isdigit((unsigned char)*v) || *v == '-' ||
			  *v == '/' || *v == '.',
		      "a bad byte in the verb");
	for (size_t i = 0; i < fr->n; i++) {
		check(fr->f[i].key[0] != '\0', "an empty key");
		for (const char *k = fr->f[i].key; *k; k++)
			check(islower((unsigned char)*k) || isdigit((unsigned char)*k) || *k == '-',
			      "a bad byte in a key");
		check(strlen(fr->f[i].value) == fr->f[i].len, "a NUL inside a value");
	}

	/* Re-encoded, it parses to the same frame, and that re-encodes to the same bytes. */
	encode(fr, &b);
	r = link_parse(buf_head(&b), buf_used(&b), &again, err, sizeof err);
	if (buf_used(&b) > LINK_MAX_LINE) {
		/* Escaping can make a valid line longer than the limit: then it is refused. */
		check(r == -1, "an overlong re-encoded frame accepted");
		buf_free(&b);
		return;
	}
	check(r == (long)buf_used(&b), "a re-encoded frame does not parse whole");
	check(same_frame(fr, &again), "a re-encoded frame parses to other fields");
	encode(&again, &b2);
	check(buf_used(&b) == buf_used(&b2) && memcmp(buf_head(&b), buf_head(&b2), b.len) == 0,
	      "encoding is not canonical");
	link_frame_free(&again);
	buf_free(&b);
	buf_free(&b2);
}

/* Parses data as a stream of lines; calls fn for each frame. */
static void
stream(const char *data, size_t size, void (*fn)(const struct link_frame *, void *), void *arg)
{
	size_t off = 0;

	while (off < size) {
		struct link_frame fr;
		char err[128] = "";
		size_t left = size - off;
		long r = link_parse(data + off, left, &fr, err, sizeof err);
		const char *nl =
		    memchr(data + off, '\n', left < LINK_MAX_LINE ? left : LINK_MAX_LINE);

		if (r == 0) {
			check(!nl && left < LINK_MAX_LINE, "0 for a complete line");
			return;
		}
		if (r < 0) {
			check(err[0] != '\0' && fr.mem == NULL, "refused without a reason");
			if (!nl)
				return;
			off += (size_t)(nl - (data + off)) + 1; /* the next line */
			continue;
		}
		check(nl && (size_t)r == (size_t)(nl - (data + off)) + 1,
		      "a frame is not exactly one line");
		check((size_t)r <= LINK_MAX_LINE, "a frame longer than LINK_MAX_LINE");
		check_frame(&fr);
		if (fn)
			fn(&fr, arg);
		link_frame_free(&fr);
		off += (size_t)r;
	}
}

/* ---- one end of the link ---- */

struct end {
	struct link_peer peer;
	struct sms_ring out, in;
	bool defer, failed;
	uint64_t pending[64];
	size_t npending;
};

static void
check_ring(const struct sms_ring *r)
{
	check(r->last_sent <= r->last_retrieved && r->last_confirmed <= r->last_retrieved &&
		  r->last_processed <= r->last_retrieved,
	      "a Last pointer past Last Retrieved");
	for (unsigned i = 0; i < r->size; i++) {
		const struct sms_msg *m = &r->slot[i];
		if (!m->seq)
			continue;
		check(ring_slot(r, m->seq) == i, "a message in the wrong slot");
		check(m->seq <= r->last_retrieved, "a message past Last Retrieved");
		check(m->state >= SMS_RETRIEVED && m->state <= SMS_PROCESSED, "a slot's state");
		check(m->state != SMS_PROCESSED || m->text == NULL, "a Processed slot keeps text");
	}
}

static void
end_send(struct link_peer *p, const char *data, size_t len)
{
	struct link_frame fr;
	char err[128];
	long r = link_parse(data, len, &fr, err, sizeof err);

	check(r == (long)len, "the peer sent a frame that does not parse whole");
	check(!strcmp(fr.verb, "MSG") || !strcmp(fr.verb, "CONF") || !strcmp(fr.verb, "PROC") ||
		  !strcmp(fr.verb, "ASK") || !strcmp(fr.verb, "PONG"),
	      "the peer sent an unknown verb");
	link_frame_free(&fr);
}

static void
process(struct end *e, struct sms_msg *m)
{
	link_peer_confirm(&e->peer, m);
	link_peer_processed(&e->peer, m,
			    e->peer.out_dir == SMS_MO ? " status=ok msgid=0A1B2C,0A1B2D" : NULL);
}

static void
end_received(struct link_peer *p, struct sms_msg *m, const struct link_frame *fr)
{
	struct end *e = p->arg;

	(void)fr;
	check(m->state == SMS_RETRIEVED && ring_find(p->in, m->seq) == m, "received where?");
	if (e->defer && e->npending < ARRAY_LEN(e->pending))
		e->pending[e->npending++] = m->seq;
	else if (m->seq % 2)
		link_peer_confirm(p, m);
	else
		process(e, m);
}

static void
end_acked(struct link_peer *p, struct sms_msg *m, int state, const struct link_frame *fr)
{
	(void)fr;
	check(m->state == state && ring_find(p->out, m->seq) == m, "acked: state or slot");
}

static void
end_fail(struct link_peer *p, const char *why)
{
	struct end *e = p->arg;
	check(why && *why, "fail without a reason");
	e->failed = true;
}

static const struct link_peer_ops end_ops = {end_send, end_received, end_acked, end_fail};

static void
drive(const struct link_frame *fr, void *arg)
{
	struct end *e = arg;

	if (e->failed)
		return; /* the owner has dropped the connection */
	if (link_peer_frame(&e->peer, fr) < 0) {
		/* Not a message frame: two made-up verbs let the input steer the owner. */
		if (strcmp(fr->verb, "RESYNC") == 0)
			link_peer_resync(&e->peer);
		if (strcmp(fr->verb, "DONE") == 0) {
			for (size_t i = 0; i < e->npending; i++) {
				struct sms_msg *m = ring_find(e->peer.in, e->pending[i]);
				if (m && m->state < SMS_PROCESSED)
					process(e, m);
			}
			e->npending = 0;
		}
	}
	check_ring(&e->out);
	check_ring(&e->in);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct end e;
	unsigned cfg;

	stream((const char *)data, size, NULL, NULL);
	if (size == 0)
		return 0;

	/* Byte 0: bit 0 the direction this end sends, bits 1-3 the ring size - 1, bit 4
	 * confirm later (on DONE) rather than at once. */
	cfg = data[0];
	memset(&e, 0, sizeof e);
	ring_init(&e.out, 1 + (cfg >> 1 & 7));
	ring_init(&e.in, e.out.size);
	e.defer = cfg & 0x10;
	e.peer = (struct link_peer){&end_ops, &e, (int)(cfg & 1), &e.out, &e.in, true, 0, 0};
	/* A few messages of its own already sent, so CONF, PROC and ASK have something. */
	for (int i = 0; i < 3 && ring_has_room(&e.out); i++) {
		struct sms_msg *m = ring_take(&e.out, xstrdup("+46701234567"), xstrdup("12345"),
					      xstrdup("hi"), NULL, NULL);
		check(m != NULL, "ring_take with room");
		link_peer_send(&e.peer, m);
	}
	stream((const char *)data + 1, size - 1, drive, &e);
	ring_free(&e.out);
	ring_free(&e.in);
	return 0;
}
