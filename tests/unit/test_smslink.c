/*
 * test_smslink: unit tests of the SMS link (sms/link.c, docs/protocol/sms-link.md): frames
 * with every byte value, malformed and partial lines, the handshake MAC against HMAC-SHA-256
 * vectors computed elsewhere, the mirrored ring, and above all two link_peer ends wired back
 * to back in memory through link_parse. Invariant every peer scenario ends by checking: each
 * message was received exactly once, with its fields intact, and every sender slot is
 * Processed, whatever was lost, duplicated or acknowledged out of order on the way.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "sms/link.h"

#include "check.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- frames (sms-link.md 1) ---- */

/* Parses a whole buffer that must hold exactly one frame; returns the parse result. */
static long
parse1(const char *data, size_t len, struct link_frame *fr, char *err, size_t errlen)
{
	char *copy = xmalloc(len ? len : 1); /* exactly len bytes, for ASan */
	long r;

	memcpy(copy, data, len);
	err[0] = '\0';
	r = link_parse(copy, len, fr, err, errlen);
	if (r > 0) {
		/* Keys point into fr->mem, not into the input: the copy may go. */
		for (size_t i = 0; i < fr->n; i++)
			CHECK(fr->f[i].key < copy || fr->f[i].key >= copy + len,
			      "a key points into the input");
	}
	free(copy);
	return r;
}

static void
test_values(void)
{
	char all[256];
	struct buf b = {0};
	struct link_frame fr;
	char err[128];
	long r;

	/* Every byte value a C string can hold, in one value. */
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	link_begin(&b, "MSG");
	link_add(&b, "text", all);
	link_add(&b, "empty", "");
	link_add_u64(&b, "seq", UINT64_MAX);
	link_add(&b, "plain", "AZaz09._~-+@/:,");
	link_end(&b);
	CHECK(memchr(b.data, '\n', b.len) == b.data + b.len - 1, "the frame is not one line");
	for (size_t i = 0; i < b.len - 1; i++) {
		unsigned char c = (unsigned char)b.data[i];
		CHECK(c >= ' ' && c < 0x7f, "raw byte 0x%02x on the wire", c);
	}
	CHECK(strstr(b.data, " plain=AZaz09._~-+@/:,\n") != NULL, "plain characters escaped: %s",
	      b.data);
	r = parse1(b.data, b.len, &fr, err, sizeof err);
	CHECK(r == (long)b.len, "all bytes: parse returned %ld of %zu (%s)", r, b.len, err);
	if (r > 0) {
		const char *t = link_get(&fr, "text");
		uint64_t seq = 0;
		CHECK(strcmp(fr.verb, "MSG") == 0 && fr.n == 4, "verb %s, %zu fields", fr.verb,
		      fr.n);
		CHECK(t && fr.f[0].len == 255 && memcmp(t, all, 255) == 0,
		      "255 byte values do not come back");
		CHECK(link_get(&fr, "empty") && *link_get(&fr, "empty") == '\0' && fr.f[1].len == 0,
		      "empty value");
		CHECK(link_get_u64(&fr, "seq", &seq) && seq == UINT64_MAX, "u64 max: %" PRIu64,
		      seq);
		CHECK(strcmp(link_get(&fr, "plain"), "AZaz09._~-+@/:,") == 0, "plain value");
		link_frame_free(&fr);
	}
	buf_free(&b);

	/* Each byte value alone, and each after and before a '%' and a space. */
	for (int i = 1; i < 256; i++) {
		char v[4] = {(char)i, '%', ' ', '\0'};
		link_begin(&b, "X");
		link_add(&b, "v", v);
		link_end(&b);
		r = parse1(b.data, b.len, &fr, err, sizeof err);
		CHECK(r == (long)b.len && fr.n == 1 && strcmp(fr.f[0].value, v) == 0 &&
			  fr.f[0].len == 3,
		      "byte 0x%02x: %ld (%s)", i, r, err);
		if (r > 0)
			link_frame_free(&fr);
		buf_free(&b);
	}

	/* The exact escapes (upper-case hex), and lower-case hex accepted on input. */
	link_begin(&b, "CONF");
	link_add(&b, "t", "a b=c\n%\xc3\xa9");
	link_end(&b);
	CHECK(strcmp(b.data, "CONF t=a%20b%3Dc%0A%25%C3%A9\n") == 0, "escaped as %s", b.data);
	buf_free(&b);
	r = parse1(S("CONF t=%3d%3D%c3%a9\n"), &fr, err, sizeof err);
	CHECK(r > 0 && strcmp(link_get(&fr, "t"), "==\xc3\xa9") == 0, "lower-case escapes: %s",
	      err);
	if (r > 0)
		link_frame_free(&fr);
}

static void
test_malformed(void)
{
	static const struct {
		const char *name, *line;
		size_t len;
	} t[] = {
	    {"lower-case verb", S("msg a=b\n")},
	    {"verb with a bad byte", S("MS_G a=b\n")},
	    {"verb of 16 bytes", S("ABCDEFGHIJKLMNOP a=b\n")},
	    {"empty line", S("\n")},
	    {"CR alone", S("\r\n")},
	    {"leading space", S(" MSG a=b\n")},
	    {"field without '='", S("MSG a\n")},
	    {"second field without '='", S("MSG a=b c\n")},
	    {"empty key", S("MSG =b\n")},
	    {"upper-case key", S("MSG A=b\n")},
	    {"key with '_'", S("MSG a_b=c\n")},
	    {"'=' in a value", S("MSG a=b=c\n")},
	    {"'%' at the end", S("MSG a=%\n")},
	    {"'%' and one digit", S("MSG a=%4\n")},
	    {"'%' and one digit, then a field", S("MSG a=%4 b=c\n")},
	    {"non-hex escape", S("MSG a=%G0\n")},
	    {"non-hex low nibble", S("MSG a=%0g\n")},
	    {"%00", S("MSG a=%00\n")},
	    {"%00 after text", S("MSG a=abc%00def\n")},
	    {"unescaped space in text", S("MSG text=hello world\n")},
	    {"tab", S("MSG a=b\tc\n")},
	    {"control byte", S("MSG a=\x01\n")},
	    {"DEL", S("MSG a=\x7f\n")},
	    {"CR inside a value", S("MSG a=b\rc\n")},
	    {"raw UTF-8", S("MSG a=\xc3\xa9\n")},
	    {"raw NUL", S("MSG a=b\0c\n")},
	    {"NUL in a key", S("MSG a\0=b\n")},
	    {"NUL in the verb", S("MS\0G\n")},
	    {"quote", S("MSG a=\"b\"\n")},
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct link_frame fr;
		char err[128];
		long r = parse1(t[i].line, t[i].len, &fr, err, sizeof err);
		CHECK(r == -1 && err[0] && fr.mem == NULL, "%s: returned %ld", t[i].name, r);
		if (r > 0)
			link_frame_free(&fr);
	}
}

static void
test_limits(void)
{
	struct buf b = {0};
	struct link_frame fr;
	char err[128];
	long r;

	/* 24 fields are allowed, 25 are not (LINK_MAX_FIELDS). */
	for (int n = 23; n <= 25; n++) {
		link_begin(&b, "MSG");
		for (int i = 0; i < n; i++) {
			char k[8];
			snprintf(k, sizeof k, "k%d", i);
			link_add_u64(&b, k, (uint64_t)i);
		}
		buf_puts(&b, "   "); /* trailing spaces are not a field */
		link_end(&b);
		r = parse1(b.data, b.len, &fr, err, sizeof err);
		if (n <= LINK_MAX_FIELDS) {
			uint64_t v = 0;
			CHECK(r == (long)b.len && fr.n == (size_t)n, "%d fields: %ld (%s)", n, r,
			      err);
			CHECK(r > 0 && link_get_u64(&fr, "k22", &v) && v == 22, "%d fields: k22",
			      n);
			if (r > 0)
				link_frame_free(&fr);
		} else {
			CHECK(r == -1, "%d fields accepted", n);
		}
		buf_free(&b);
	}

	/* A line is at most 65536 bytes with its newline (LINK_MAX_LINE). */
	for (size_t total = LINK_MAX_LINE - 1; total <= LINK_MAX_LINE + 1; total++) {
		char *line = xmalloc(total);
		memcpy(line, "MSG t=", 6);
		memset(line + 6, 'a', total - 7);
		line[total - 1] = '\n';
		r = parse1(line, total, &fr, err, sizeof err);
		if (total <= LINK_MAX_LINE) {
			CHECK(r == (long)total && fr.f[0].len == total - 7, "line of %zu: %ld (%s)",
			      total, r, err);
			if (r > 0)
				link_frame_free(&fr);
		} else {
			CHECK(r == -1 && err[0], "line of %zu accepted", total);
		}
		/* Without its newline: incomplete while it could still fit, then refused. */
		r = parse1(line, total - 1, &fr, err, sizeof err);
		CHECK(r == (total - 1 < LINK_MAX_LINE ? 0 : -1), "%zu bytes without a newline: %ld",
		      total - 1, r);
		free(line);
	}
	{
		size_t n = 3 * LINK_MAX_LINE;
		char *junk = xmalloc(n);
		memset(junk, 'A', n);
		junk[n - 1] = '\n';
		CHECK(parse1(junk, n, &fr, err, sizeof err) == -1, "a 192 KiB line accepted");
		free(junk);
	}

	/* A verb of 15 bytes fits, and the greeting's verb is one. */
	r = parse1(S("ABCDEFGHIJKLMNO\n"), &fr, err, sizeof err);
	CHECK(r == 16 && strcmp(fr.verb, "ABCDEFGHIJKLMNO") == 0, "15-byte verb: %s", err);
	if (r > 0)
		link_frame_free(&fr);
	r = parse1(S("BATON-SMS/0 nonce=4f1c tls=required\n"), &fr, err, sizeof err);
	CHECK(r > 0 && strcmp(fr.verb, LINK_VERSION) == 0 &&
		  strcmp(link_get(&fr, "tls"), "required") == 0,
	      "greeting: %s", err);
	if (r > 0)
		link_frame_free(&fr);
}

static void
test_partial(void)
{
	static const char two[] = "PING\r\nCONF dir=mt seq=5\n";
	struct link_frame fr;
	char err[128];
	long r;

	/* Every prefix of a frame without its newline is "not yet" (0), never an error. */
	for (size_t k = 0; k < sizeof two - 1; k++) {
		r = parse1(two, k, &fr, err, sizeof err);
		CHECK(r == (k < 6 ? 0 : 6), "prefix of %zu: %ld (%s)", k, r, err);
		if (r > 0)
			link_frame_free(&fr);
	}
	r = parse1(two, sizeof two - 1, &fr, err, sizeof err);
	CHECK(r == 6 && strcmp(fr.verb, "PING") == 0 && fr.n == 0, "CRLF frame: %ld", r);
	if (r > 0)
		link_frame_free(&fr);
	r = parse1(two + 6, sizeof two - 7, &fr, err, sizeof err);
	CHECK(r == (long)(sizeof two - 7) && strcmp(link_get(&fr, "dir"), "mt") == 0,
	      "second frame: %ld", r);
	if (r > 0)
		link_frame_free(&fr);
	/* A frame with no fields and several spaces. */
	r = parse1(S("PONG   \n"), &fr, err, sizeof err);
	CHECK(r == 8 && fr.n == 0, "PONG with spaces: %ld", r);
	if (r > 0)
		link_frame_free(&fr);
}

static void
test_get(void)
{
	static const struct {
		const char *v;
		bool ok;
		uint64_t want;
	} t[] = {
	    {"0", true, 0},
	    {"42", true, 42},
	    {"007", true, 7},
	    {"18446744073709551615", true, UINT64_MAX},
	    {"18446744073709551616", false, 0},
	    {"99999999999999999999999", false, 0},
	    {"", false, 0},
	    {"-1", false, 0},
	    {"+1", false, 0},
	    {"1a", false, 0},
	    {"0x10", false, 0},
	    {"1.5", false, 0},
	};
	struct link_frame fr;
	char err[128];
	uint64_t v;
	long r;

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct buf b = {0};
		link_begin(&b, "X");
		link_add(&b, "n", t[i].v);
		link_end(&b);
		r = parse1(b.data, b.len, &fr, err, sizeof err);
		v = 12345;
		CHECK(r > 0 && link_get_u64(&fr, "n", &v) == t[i].ok &&
			  (!t[i].ok || v == t[i].want),
		      "u64 '%s': %" PRIu64, t[i].v, v);
		if (r > 0)
			link_frame_free(&fr);
		buf_free(&b);
	}
	r = parse1(S("X a=1 a=2 b=\n"), &fr, err, sizeof err);
	CHECK(r > 0 && strcmp(link_get(&fr, "a"), "1") == 0 && link_get(&fr, "c") == NULL &&
		  !link_get_u64(&fr, "c", &v) && !link_get_u64(&fr, "b", &v),
	      "link_get on repeated and absent keys");
	if (r > 0)
		link_frame_free(&fr);
}

/* ---- the handshake MAC (sms-link.md 2) ---- */

static void
test_mac(void)
{
	/*
	 * HMAC-SHA-256(secret, nonce " " name): the first two are public vectors whose message
	 * splits at a space (RFC 4231 4.3 test case 2; the "quick brown fox" example), the third
	 * was computed with `printf '4f1c...59 telia' | openssl dgst -sha256 -hmac 's3cret...'`.
	 */
	static const struct {
		const char *secret, *nonce, *name, *mac;
	} t[] = {
	    {"Jefe", "what do ya want", "for nothing?",
	     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	    {"key", "The quick brown fox jumps over the lazy", "dog",
	     "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"},
	    {"s3cret:with spaces", "4f1c0a9be2d34c5f8a7b6e1d2c3b4a59", "telia",
	     "0c6e8fb18a6afd44180fb02f36e22ffc71ab0f25e1cc36c5980ef3267d4f4ffe"},
	};
	char out[65];

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		memset(out, 'x', sizeof out);
		link_mac(t[i].secret, t[i].nonce, t[i].name, out);
		CHECK(strcmp(out, t[i].mac) == 0, "mac %zu: %.65s", i, out);
		CHECK(link_mac_equal(out, t[i].mac), "mac_equal %zu", i);
	}
	link_mac("Jefe", "what do ya want", "for nothing!", out);
	CHECK(!link_mac_equal(out, t[0].mac), "another name gives the same MAC");
	CHECK(!link_mac_equal(t[0].mac, "5bdcc146"), "a prefix of the MAC is equal");
	CHECK(!link_mac_equal("", t[0].mac) && link_mac_equal("", ""), "empty MACs");
	{
		char m[65];
		strcpy(m, t[0].mac);
		m[63] ^= 1;
		CHECK(!link_mac_equal(m, t[0].mac), "last character ignored");
	}
}

/* ---- the mirrored ring (sms-link.md 3) ---- */

static struct sms_msg *
take(struct sms_ring *r, const char *text)
{
	char *from = xstrdup("from"), *to = xstrdup("to"), *t = xstrdup(text);
	struct sms_msg *m = ring_take(r, from, to, t, NULL, NULL);

	if (!m) { /* a full ring takes nothing: the strings are still the caller's */
		free(from);
		free(to);
		free(t);
	}
	return m;
}

static void
test_ring(void)
{
	struct sms_ring r;
	struct sms_msg *m[6];

	ring_init(&r, 0);
	CHECK(r.size == SMS_RING_DEFAULT, "default size %u", r.size);
	ring_free(&r);

	ring_init(&r, 4);
	CHECK(ring_has_room(&r) && ring_busy(&r) == 0, "empty ring");
	for (int i = 0; i < 4; i++) {
		m[i] = take(&r, "t");
		CHECK(m[i] && m[i]->seq == (uint64_t)i + 1 && m[i] == &r.slot[i] &&
			  m[i]->state == SMS_RETRIEVED,
		      "take %d", i);
	}
	CHECK(!ring_has_room(&r) && take(&r, "x") == NULL && ring_busy(&r) == 4,
	      "a full ring takes more");
	CHECK(r.last_retrieved == 4 && r.last_sent == 0, "pointers after takes");
	for (int i = 0; i < 4; i++)
		ring_set(&r, m[i], SMS_SENT);
	CHECK(r.last_sent == 4, "last_sent %" PRIu64, r.last_sent);

	/* Acknowledgements in any order: each pointer is the highest seq that got there. */
	ring_set(&r, m[2], SMS_CONFIRMED);
	CHECK(r.last_confirmed == 3, "last_confirmed %" PRIu64, r.last_confirmed);
	ring_set(&r, m[0], SMS_CONFIRMED);
	CHECK(r.last_confirmed == 3, "last_confirmed went back to %" PRIu64, r.last_confirmed);
	ring_set(&r, m[1], SMS_PROCESSED); /* PROC without CONF: Confirmed too */
	CHECK(r.last_processed == 2 && r.last_confirmed == 3 && m[1]->text == NULL,
	      "processed 2: %" PRIu64 " %" PRIu64, r.last_processed, r.last_confirmed);
	ring_set(&r, m[2], SMS_SENT); /* never back */
	CHECK(m[2]->state == SMS_CONFIRMED, "state went back to %s", sms_state_name(m[2]->state));
	CHECK(!ring_has_room(&r), "room while seq 1 (the next slot) is not processed");
	ring_set(&r, m[3], SMS_PROCESSED);
	CHECK(!ring_has_room(&r) && ring_busy(&r) == 2, "room after 2 and 4 only");
	ring_set(&r, m[0], SMS_PROCESSED);
	CHECK(ring_has_room(&r) && ring_busy(&r) == 1 && r.last_processed == 4,
	      "no room once seq 1 is processed");

	/* The next message reuses slot 0; seq 1 is gone from it. */
	m[4] = take(&r, "five");
	CHECK(m[4] == &r.slot[0] && m[4]->seq == 5 && strcmp(m[4]->text, "five") == 0,
	      "seq 5 not in slot 0");
	CHECK(ring_find(&r, 1) == NULL && ring_find(&r, 5) == m[4] && ring_find(&r, 0) == NULL &&
		  ring_find(&r, 9) == NULL && ring_find(&r, 3) == m[2],
	      "ring_find");
	/* Slot 1 (seq 2) is processed: seq 6 may go there. */
	CHECK(ring_slot(&r, 6) == 1 && ring_has_room(&r), "no room for seq 6 in slot 1");
	ring_free(&r);

	/* ring_put as loaded from storage moves last_retrieved and the state's pointers. */
	ring_init(&r, 8);
	ring_put(&r, 13, SMS_CONFIRMED, xstrdup("a"), xstrdup("b"), xstrdup("c"), NULL, NULL);
	CHECK(r.last_retrieved == 13 && r.last_sent == 13 && r.last_confirmed == 13 &&
		  r.last_processed == 0 && ring_find(&r, 13) == &r.slot[4],
	      "ring_put");
	ring_free(&r);

	CHECK(strcmp(sms_dir_name(SMS_MO), "mo") == 0 && strcmp(sms_dir_name(SMS_MT), "mt") == 0,
	      "direction names");
	CHECK(strcmp(sms_state_name(99), sms_state_name(SMS_SENT)) != 0 &&
		  strcmp(sms_state_name(-1), sms_state_name(SMS_FREE)) != 0,
	      "state names out of range");
}

static void
test_ring_check(void)
{
	struct sms_ring r;
	struct sms_msg *m;

	ring_init(&r, 4);
	CHECK(ring_check(&r, 0, 1) == RING_NEW, "empty slot");
	CHECK(ring_check(&r, 0, 0) == RING_CLASH, "seq 0");
	CHECK(ring_check(&r, 1, 1) == RING_CLASH, "slot 1 for seq 1");
	CHECK(ring_check(&r, 4, 5) == RING_CLASH, "slot 4 of 4");
	CHECK(ring_check(&r, 0xffffffffu, 5) == RING_CLASH, "slot UINT_MAX");
	m = ring_put(&r, 1, SMS_RETRIEVED, xstrdup(""), xstrdup(""), xstrdup("x"), NULL, NULL);
	CHECK(ring_check(&r, 0, 1) == RING_DUP, "the same message, being stored");
	CHECK(ring_check(&r, 0, 5) == RING_CLASH, "seq 5 while seq 1 is not processed");
	ring_set(&r, m, SMS_CONFIRMED);
	CHECK(ring_check(&r, 0, 5) == RING_CLASH, "seq 5 while seq 1 is confirmed");
	ring_set(&r, m, SMS_PROCESSED);
	CHECK(ring_check(&r, 0, 1) == RING_DUP, "seq 1 processed: still a duplicate");
	CHECK(ring_check(&r, 0, 5) == RING_NEW, "seq 5 after seq 1 is processed");
	ring_put(&r, 5, SMS_RETRIEVED, xstrdup(""), xstrdup(""), xstrdup("y"), NULL, NULL);
	CHECK(ring_check(&r, 0, 1) == RING_OLD, "seq 1 after seq 5 took its slot");
	CHECK(ring_check(&r, 0, 5) == RING_DUP, "seq 5 again");
	CHECK(ring_check(&r, 0, 9) == RING_CLASH, "seq 9 while 5 is not processed");
	ring_free(&r);
}

/* ---- two link_peer ends back to back ---- */

#define MAXSEQ 2048

struct end {
	const char *name;
	struct link_peer peer;
	struct sms_ring out, in;
	struct end *other;
	struct buf inbox; /* frames on their way to this end */
	bool cut;	  /* the connection is broken: what this end sends is lost */
	bool defer;	  /* received: confirm later rather than at once */
	bool dup;	  /* send every frame twice */
	bool log_frames;
	bool lax;	/* messages not made by produce(): do not check their fields */
	struct buf log; /* what this end sent, when log_frames */
	uint64_t to_confirm[MAXSEQ], to_process[MAXSEQ];
	size_t nconfirm, nprocess;
	unsigned received[MAXSEQ], confirmed[MAXSEQ], processed[MAXSEQ];
	char outcome[MAXSEQ][48]; /* status/msgid of the PROC that processed an MT */
	uint64_t taken;
	unsigned fails;
	char why[128];
	unsigned lost, asks_sent, msgs_sent;
};

/* The message of dir/seq: every field is derived from them, so the receiver can check. */
static void
msg_text(int dir, uint64_t seq, char *out, size_t outlen)
{
	size_t n = (size_t)snprintf(out, outlen, "%s %" PRIu64 " ", sms_dir_name(dir), seq);
	size_t len = (size_t)(seq * 37 % 300);

	for (size_t i = 0; i < len && n + 1 < outlen; i++)
		out[n++] = (char)(1 + (seq + i * 13) % 255); /* controls, '%', '=', ' ', 8-bit */
	out[n] = '\0';
}

static void
msg_outcome(uint64_t seq, char *out, size_t outlen)
{
	snprintf(out, outlen, "ok %" PRIX64 ",%" PRIX64, seq * 2, seq * 2 + 1);
}

static void
peer_send(struct link_peer *p, const char *data, size_t len)
{
	struct end *e = p->arg;
	struct link_frame fr;
	char err[128];
	long r = parse1(data, len, &fr, err, sizeof err);

	CHECK(r == (long)len, "%s sent a frame that does not parse (%s): %.*s", e->name, err,
	      (int)len, data);
	if (r > 0) {
		if (strcmp(fr.verb, "ASK") == 0)
			e->asks_sent++;
		if (strcmp(fr.verb, "MSG") == 0)
			e->msgs_sent++;
		link_frame_free(&fr);
	}
	if (e->log_frames)
		buf_append(&e->log, data, len);
	if (e->cut) {
		e->lost++;
		return;
	}
	buf_append(&e->other->inbox, data, len);
	if (e->dup)
		buf_append(&e->other->inbox, data, len);
}

static void
peer_received(struct link_peer *p, struct sms_msg *m, const struct link_frame *fr)
{
	struct end *e = p->arg;
	int dir = !p->out_dir;
	char text[512];

	(void)fr;
	if (m->seq >= MAXSEQ) {
		CHECK(0, "%s: seq %" PRIu64 " out of range", e->name, m->seq);
		return;
	}
	e->received[m->seq]++;
	if (e->lax) {
		link_peer_confirm(p, m);
		return;
	}
	msg_text(dir, m->seq, text, sizeof text);
	CHECK(m->text && strcmp(m->text, text) == 0, "%s: text of %s %" PRIu64 " differs", e->name,
	      sms_dir_name(dir), m->seq);
	CHECK(m->from && strcmp(m->from, dir == SMS_MT ? "alice@example.org" : "+46701234567") == 0,
	      "%s: from of %" PRIu64 " is %s", e->name, m->seq, m->from);
	CHECK(m->to && strcmp(m->to, dir == SMS_MT ? "+46701234567" : "12345") == 0,
	      "%s: to of %" PRIu64, e->name, m->seq);
	if (dir == SMS_MT)
		CHECK(m->ref && strcmp(m->ref, "alice@example.org/phone m1") == 0 &&
			  (m->seq % 2 ? m->extra == NULL : strcmp(m->extra, "dlr") == 0),
		      "%s: ref/extra of %" PRIu64, e->name, m->seq);
	CHECK(m->state == SMS_RETRIEVED, "%s: received in state %s", e->name,
	      sms_state_name(m->state));
	if (e->defer)
		e->to_confirm[e->nconfirm++] = m->seq;
	else {
		link_peer_confirm(p, m);
		e->to_process[e->nprocess++] = m->seq;
	}
}

static void
peer_acked(struct link_peer *p, struct sms_msg *m, int state, const struct link_frame *fr)
{
	struct end *e = p->arg;

	if (m->seq >= MAXSEQ)
		return;
	CHECK(m->state == state, "%s: acked %s but the slot is %s", e->name, sms_state_name(state),
	      sms_state_name(m->state));
	if (state == SMS_CONFIRMED)
		e->confirmed[m->seq]++;
	if (state == SMS_PROCESSED) {
		const char *st = link_get(fr, "status"), *id = link_get(fr, "msgid");
		e->processed[m->seq]++;
		snprintf(e->outcome[m->seq], sizeof e->outcome[m->seq], "%s %s", st ? st : "-",
			 id ? id : "-");
	}
}

static void
peer_fail(struct link_peer *p, const char *why)
{
	struct end *e = p->arg;
	e->fails++;
	snprintf(e->why, sizeof e->why, "%s", why);
}

static const struct link_peer_ops peer_ops = {peer_send, peer_received, peer_acked, peer_fail};

static void
ends_init(struct end *a, struct end *b, unsigned ring)
{
	memset(a, 0, sizeof *a);
	memset(b, 0, sizeof *b);
	a->name = "batond";
	b->name = "smsbuf";
	a->other = b;
	b->other = a;
	ring_init(&a->out, ring);
	ring_init(&a->in, ring);
	ring_init(&b->out, ring);
	ring_init(&b->in, ring);
	a->peer = (struct link_peer){&peer_ops, a, SMS_MT, &a->out, &a->in, true, 0, 0};
	b->peer = (struct link_peer){&peer_ops, b, SMS_MO, &b->out, &b->in, true, 0, 0};
}

static void
ends_free(struct end *a, struct end *b)
{
	struct end *e[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		ring_free(&e[i]->out);
		ring_free(&e[i]->in);
		buf_free(&e[i]->inbox);
		buf_free(&e[i]->log);
	}
}

/* Hands one end the frames in its inbox, one at a time; returns how many. */
static unsigned
deliver(struct end *e)
{
	unsigned n = 0;

	while (buf_used(&e->inbox)) {
		struct link_frame fr;
		char err[128];
		long r = link_parse(buf_head(&e->inbox), buf_used(&e->inbox), &fr, err, sizeof err);

		CHECK(r > 0, "%s: inbox does not parse: %ld %s", e->name, r, err);
		if (r <= 0) {
			buf_reset(&e->inbox);
			break;
		}
		buf_consume(&e->inbox, (size_t)r);
		CHECK(link_peer_frame(&e->peer, &fr) == 0, "%s: frame %s refused", e->name,
		      fr.verb);
		link_frame_free(&fr);
		n++;
	}
	return n;
}

static void
pump(struct end *a, struct end *b)
{
	for (int i = 0; i < 100000; i++)
		if (deliver(a) + deliver(b) == 0)
			return;
	CHECK(0, "the ends never go quiet");
}

/* The sender takes (and, if its link is up, sends) up to n messages while it has room. */
static void
produce(struct end *e, uint64_t limit, unsigned n)
{
	for (unsigned i = 0; i < n && e->taken < limit && ring_has_room(&e->out); i++) {
		char text[512];
		int dir = e->peer.out_dir;
		struct sms_msg *m;

		msg_text(dir, e->taken + 1, text, sizeof text);
		if (dir == SMS_MT)
			m = ring_take(&e->out, xstrdup("alice@example.org"),
				      xstrdup("+46701234567"), xstrdup(text),
				      xstrdup("alice@example.org/phone m1"),
				      (e->taken + 1) % 2 ? NULL : xstrdup("dlr"));
		else
			m = ring_take(&e->out, xstrdup("+46701234567"), xstrdup("12345"),
				      xstrdup(text), NULL, NULL);
		CHECK(m && m->seq == e->taken + 1, "%s: take %" PRIu64, e->name, e->taken + 1);
		if (!m)
			return;
		e->taken++;
		if (e->peer.up)
			link_peer_send(&e->peer, m);
	}
}

static uint64_t rng_state;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Takes a random entry out of list (acknowledgements in any order). */
static uint64_t
pick(uint64_t *list, size_t *n, bool random)
{
	size_t i = random ? (size_t)(rng() % *n) : *n - 1;
	uint64_t seq = list[i];
	list[i] = list[--*n];
	return seq;
}

/* The receiver stores (confirms) and processes up to n of what it received. */
static void
consume(struct end *e, unsigned n, bool random)
{
	for (unsigned i = 0; i < n && e->nconfirm; i++) {
		uint64_t seq = pick(e->to_confirm, &e->nconfirm, random);
		struct sms_msg *m = ring_find(&e->in, seq);
		CHECK(m != NULL, "%s: %" PRIu64 " left its slot before it was confirmed", e->name,
		      seq);
		if (m) {
			link_peer_confirm(&e->peer, m);
			e->to_process[e->nprocess++] = seq;
		}
	}
	for (unsigned i = 0; i < n && e->nprocess; i++) {
		uint64_t seq = pick(e->to_process, &e->nprocess, random);
		struct sms_msg *m = ring_find(&e->in, seq);
		char fields[128], o[48];

		CHECK(m != NULL, "%s: %" PRIu64 " left its slot before it was processed", e->name,
		      seq);
		if (!m)
			continue;
		if (e->peer.out_dir ==
		    SMS_MO) { /* this end receives MT: PROC carries the outcome */
			msg_outcome(seq, o, sizeof o);
			snprintf(fields, sizeof fields, " status=ok msgid=%s", strchr(o, ' ') + 1);
			link_peer_processed(&e->peer, m, fields);
		} else {
			link_peer_processed(&e->peer, m, NULL);
		}
	}
}

/* A broken connection: what is in flight is lost; neither end is up until reconnect(). */
static void
disconnect(struct end *a, struct end *b)
{
	a->cut = b->cut = true;
	a->peer.up = b->peer.up = false;
	buf_reset(&a->inbox);
	buf_reset(&b->inbox);
}

static void
reconnect(struct end *a, struct end *b)
{
	a->cut = b->cut = false;
	a->peer.up = b->peer.up = true;
	link_peer_resync(&a->peer);
	link_peer_resync(&b->peer);
}

/* Everything that was taken was received once, acknowledged Processed once, and every slot of
 * every sender is Processed. */
static void
check_settled(const char *name, struct end *a, struct end *b, uint64_t n)
{
	struct end *e[2] = {a, b};

	for (int k = 0; k < 2; k++) {
		struct end *snd = e[k], *rcv = e[!k];
		unsigned bad_recv = 0, bad_proc = 0, bad_outcome = 0;

		CHECK(snd->taken == n, "%s: %s took %" PRIu64 " of %" PRIu64, name, snd->name,
		      snd->taken, n);
		for (uint64_t s = 1; s <= n && s < MAXSEQ; s++) {
			char o[48];
			bad_recv += rcv->received[s] != 1;
			bad_proc += snd->processed[s] != 1 || snd->confirmed[s] > 1;
			msg_outcome(s, o, sizeof o);
			if (snd->peer.out_dir == SMS_MT)
				bad_outcome += strcmp(snd->outcome[s], o) != 0;
		}
		CHECK(bad_recv == 0, "%s: %u %s messages not received exactly once", name, bad_recv,
		      sms_dir_name(snd->peer.out_dir));
		CHECK(bad_proc == 0, "%s: %u %s messages not acknowledged Processed once", name,
		      bad_proc, sms_dir_name(snd->peer.out_dir));
		CHECK(bad_outcome == 0, "%s: %u MT outcomes lost", name, bad_outcome);
		CHECK(ring_busy(&snd->out) == 0 && snd->out.last_processed == n &&
			  snd->out.last_retrieved == n,
		      "%s: %s's ring: busy %u, last processed %" PRIu64, name, snd->name,
		      ring_busy(&snd->out), snd->out.last_processed);
		CHECK(ring_busy(&rcv->in) == 0 && rcv->in.last_processed == n,
		      "%s: %s's incoming ring: busy %u", name, rcv->name, ring_busy(&rcv->in));
		CHECK(snd->fails == 0, "%s: %s failed: %s", name, snd->name, snd->why);
	}
}

/* Confirms and processes everything on both sides until nothing moves; produces up to n. */
static void
drain(struct end *a, struct end *b, uint64_t n)
{
	for (int round = 0; round < 10000; round++) {
		produce(a, n, 1000);
		produce(b, n, 1000);
		pump(a, b);
		consume(a, 1000, true);
		consume(b, 1000, true);
		pump(a, b);
		if (a->taken == n && b->taken == n && !a->nconfirm && !a->nprocess &&
		    !b->nconfirm && !b->nprocess && ring_busy(&a->out) == 0 &&
		    ring_busy(&b->out) == 0)
			return;
	}
}

/* Messages both ways, acknowledged at once and later, in order and out of it. */
static void
test_peer_flow(void)
{
	for (int mode = 0; mode < 4; mode++) {
		struct end a, b;
		const uint64_t n = 50;
		char name[32];

		snprintf(name, sizeof name, "flow mode %d", mode);
		ends_init(&a, &b, 4);
		rng_state = 0x9e3779b97f4a7c15ull + (uint64_t)mode;
		a.defer = mode & 1;
		b.defer = mode & 2;
		while (a.taken < n || b.taken < n || a.nconfirm || a.nprocess || b.nconfirm ||
		       b.nprocess) {
			produce(&a, n, 3);
			produce(&b, n, 2);
			pump(&a, &b);
			consume(&a, 1 + (unsigned)(rng() % 3), true);
			consume(&b, 1 + (unsigned)(rng() % 3), true);
			pump(&a, &b);
			if (a.fails || b.fails || a.peer.sent > 100000)
				break;
		}
		check_settled(name, &a, &b, n);
		CHECK(a.asks_sent == 0 && b.asks_sent == 0 && a.lost == 0,
		      "%s: ASK without a resync", name);
		ends_free(&a, &b);
	}
}

/* Outages: frames lost, then a resync on both sides, until every message is through. */
static void
test_peer_outages(void)
{
	unsigned lost = 0, asks = 0, resent = 0, wraps = 0;

	for (int seed = 1; seed <= 40; seed++) {
		struct end a, b;
		const uint64_t n = 120;
		char name[32];

		snprintf(name, sizeof name, "outages seed %d", seed);
		ends_init(&a, &b, seed % 3 ? 4 : 7);
		rng_state = 0x2545f4914f6cdd1dull * (uint64_t)seed;
		a.defer = seed % 2;
		b.defer = seed % 4 < 2;
		for (int step = 0; step < 400; step++) {
			unsigned r = (unsigned)(rng() % 100);

			if (r < 25)
				produce(&a, n, 1 + (unsigned)(rng() % 4));
			else if (r < 50)
				produce(&b, n, 1 + (unsigned)(rng() % 4));
			else if (r < 65)
				consume(&a, 1 + (unsigned)(rng() % 4), true);
			else if (r < 80)
				consume(&b, 1 + (unsigned)(rng() % 4), true);
			else if (r < 92) {
				/* Part of what is in flight arrives. */
				if (rng() % 2)
					deliver(&a);
				else
					deliver(&b);
			} else if (r < 96) {
				/* The connection breaks without either end noticing at first: the
				 * ends keep sending into it for a while. */
				a.cut = b.cut = true;
				buf_reset(&a.inbox);
				buf_reset(&b.inbox);
			} else if (r < 98) {
				disconnect(&a, &b);
			} else if (a.cut || !a.peer.up) {
				reconnect(&a, &b);
			}
		}
		/* The last reconnection, then everything settles. */
		disconnect(&a, &b);
		reconnect(&a, &b);
		drain(&a, &b, n);
		lost += a.lost + b.lost;
		asks += a.asks_sent + b.asks_sent;
		resent += (a.msgs_sent > n) + (b.msgs_sent > n);
		wraps += a.out.last_retrieved > a.out.size;
		check_settled(name, &a, &b, n);
		ends_free(&a, &b);
	}
	/* The scenarios above really lost frames, asked, resent and wrapped around. */
	CHECK(lost > 100 && asks > 10 && resent > 10 && wraps == 40,
	      "outages too gentle: lost %u, ASKs %u, resends %u, wraps %u", lost, asks, resent,
	      wraps);
}

/* Every frame twice, and at the end every frame ever sent replayed: nothing changes. */
static void
test_peer_duplicates(void)
{
	for (int seed = 1; seed <= 10; seed++) {
		struct end a, b;
		const uint64_t n = 60;
		char name[32];
		unsigned before[2][MAXSEQ / 16];

		snprintf(name, sizeof name, "duplicates seed %d", seed);
		ends_init(&a, &b, 4);
		rng_state = 0xda942042e4dd58b5ull * (uint64_t)seed;
		a.dup = b.dup = seed % 2;
		a.log_frames = b.log_frames = true;
		a.defer = b.defer = seed % 3 == 0;
		for (int step = 0; step < 300; step++) {
			produce(&a, n, (unsigned)(rng() % 3));
			produce(&b, n, (unsigned)(rng() % 3));
			if (rng() % 2)
				deliver(&a);
			else
				deliver(&b);
			consume(&a, (unsigned)(rng() % 3), true);
			consume(&b, (unsigned)(rng() % 3), true);
			if (step % 50 == 49) { /* an outage in between: ASKs and MSGs again */
				disconnect(&a, &b);
				consume(&a, 2, true);
				consume(&b, 2, true);
				reconnect(&a, &b);
			}
		}
		drain(&a, &b, n);
		check_settled(name, &a, &b, n);

		/* Replay everything each end ever sent (MSG, CONF, PROC, ASK), twice. */
		for (uint64_t s = 0; s < MAXSEQ / 16; s++) {
			before[0][s] = a.received[s] + a.processed[s] + a.confirmed[s];
			before[1][s] = b.received[s] + b.processed[s] + b.confirmed[s];
		}
		a.log_frames = b.log_frames = false;
		a.dup = b.dup = false;
		for (int k = 0; k < 2; k++) {
			buf_append(&b.inbox, buf_head(&a.log), buf_used(&a.log));
			buf_append(&a.inbox, buf_head(&b.log), buf_used(&b.log));
			pump(&a, &b);
		}
		for (uint64_t s = 0; s < MAXSEQ / 16; s++)
			CHECK(before[0][s] == a.received[s] + a.processed[s] + a.confirmed[s] &&
				  before[1][s] == b.received[s] + b.processed[s] + b.confirmed[s],
			      "%s: a replayed frame about %" PRIu64 " changed something", name, s);
		CHECK(a.fails == 0 && b.fails == 0, "%s: replay failed the link: %s%s", name, a.why,
		      b.why);
		check_settled(name, &a, &b, n);
		ends_free(&a, &b);
	}
}

/* Injects one frame into an end, as if the other end had sent it. */
static void
inject(struct end *e, const char *line)
{
	buf_puts(&e->inbox, line);
	deliver(e);
}

/* A PROC lost with the connection comes back, outcome and all, as the answer to an ASK. */
static void
test_peer_outcome(void)
{
	struct end a, b;
	struct sms_msg *m;

	ends_init(&a, &b, 4);
	b.defer = true;
	produce(&a, 2, 2);
	pump(&a, &b);
	for (uint64_t s = 1; s <= 2; s++)
		link_peer_confirm(&b.peer, ring_find(&b.in, s));
	pump(&a, &b);
	CHECK(a.out.slot[0].state == SMS_CONFIRMED && a.out.slot[1].state == SMS_CONFIRMED &&
		  a.confirmed[1] == 1 && a.confirmed[2] == 1,
	      "CONF did not arrive");
	/* The connection breaks; smsbuf processes both meanwhile (the SMSC answered). */
	b.cut = true;
	link_peer_processed(&b.peer, ring_find(&b.in, 1), " status=ok msgid=0A1B2C,0A1B2D");
	b.peer.up = false;
	link_peer_processed(&b.peer, ring_find(&b.in, 2),
			    " status=fail reason=invalid%20destination%20address");
	disconnect(&a, &b);
	CHECK(a.processed[1] == 0 && a.processed[2] == 0, "a PROC got through a broken link");
	a.log_frames = true;
	reconnect(&a, &b);
	CHECK(a.asks_sent == 2 && strstr(buf_head(&a.log), "ASK dir=mt seq=1\n") &&
		  strstr(buf_head(&a.log), "ASK dir=mt seq=2\n"),
	      "resync did not ASK about the confirmed messages: %s", buf_head(&a.log));
	pump(&a, &b);
	CHECK(a.processed[1] == 1 && strcmp(a.outcome[1], "ok 0A1B2C,0A1B2D") == 0,
	      "outcome of 1 after ASK: '%s'", a.outcome[1]);
	CHECK(a.processed[2] == 1 && strcmp(a.outcome[2], "fail -") == 0,
	      "outcome of 2 after ASK: '%s'", a.outcome[2]);
	m = ring_find(&a.out, 2);
	CHECK(m && m->state == SMS_PROCESSED, "seq 2 not processed");
	ends_free(&a, &b);

	/* The same when even the CONF was lost: the MSG is resent, and the duplicate is
	 * answered with the PROC and its outcome. */
	ends_init(&a, &b, 4);
	produce(&a, 1, 1);
	b.cut = true; /* CONF and PROC lost */
	pump(&a, &b);
	consume(&b, 1, false);
	CHECK(a.out.slot[0].state == SMS_SENT && b.in.slot[0].state == SMS_PROCESSED,
	      "states before the resync: %d %d", a.out.slot[0].state, b.in.slot[0].state);
	disconnect(&a, &b);
	reconnect(&a, &b);
	pump(&a, &b);
	{
		char o[48];
		msg_outcome(1, o, sizeof o);
		CHECK(a.processed[1] == 1 && strcmp(a.outcome[1], o) == 0 && b.received[1] == 1,
		      "outcome after a resent MSG: '%s' (received %u)", a.outcome[1],
		      b.received[1]);
	}
	ends_free(&a, &b);
}

/* Frames that break the protocol call fail; frames that do not are answered. */
static void
test_peer_errors(void)
{
	static const struct {
		const char *name, *line;
		bool fails;
	} t[] = {
	    /* b receives MT; slot 0 holds seq 1, confirmed, not processed. */
	    {"clash: seq 5 while seq 1 is unprocessed", "MSG dir=mt slot=0 seq=5 text=x\n", true},
	    {"slot does not match seq", "MSG dir=mt slot=2 seq=6 text=x\n", true},
	    {"slot beyond the ring", "MSG dir=mt slot=4 seq=5 text=x\n", true},
	    {"huge slot", "MSG dir=mt slot=99999999999 seq=5 text=x\n", true},
	    {"seq 0", "MSG dir=mt slot=0 seq=0 text=x\n", true},
	    {"MSG of our own direction", "MSG dir=mo slot=1 seq=2 text=x\n", true},
	    {"MSG without dir", "MSG slot=1 seq=2 text=x\n", true},
	    {"MSG without text", "MSG dir=mt slot=1 seq=2\n", true},
	    {"MSG with a bad seq", "MSG dir=mt slot=1 seq=2x text=x\n", true},
	    {"CONF for the other direction", "CONF dir=mt seq=1\n", true},
	    {"PROC without seq", "PROC dir=mo\n", true},
	    {"ASK for our own direction", "ASK dir=mo seq=1\n", true},
	    {"ASK about a message never received", "ASK dir=mt seq=3\n", true},
	    {"ASK with a bad dir", "ASK dir=xx seq=1\n", true},
	    /* Harmless. */
	    {"MSG duplicate of seq 1", "MSG dir=mt slot=0 seq=1 text=x\n", false},
	    {"ASK about seq 1", "ASK dir=mt seq=1\n", false},
	    {"CONF for a message never sent", "CONF dir=mo seq=77\n", false},
	    {"PROC for a message never sent", "PROC dir=mo seq=77 status=ok\n", false},
	    {"PING", "PING\n", false},
	    {"PONG", "PONG\n", false},
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct end a, b;

		ends_init(&a, &b, 4);
		b.defer = true;
		produce(&a, 1, 1);
		pump(&a, &b);
		link_peer_confirm(&b.peer, ring_find(&b.in, 1));
		pump(&a, &b);
		b.nconfirm = 0;
		a.log_frames = false;
		b.log_frames = true;
		inject(&b, t[i].line);
		CHECK((b.fails > 0) == t[i].fails, "%s: fail called %u times (%s)", t[i].name,
		      b.fails, b.why);
		CHECK(b.received[1] == 1 && b.nconfirm == 0, "%s: delivered again", t[i].name);
		if (strcmp(t[i].line, "PING\n") == 0)
			CHECK(strcmp(buf_head(&b.log), "PONG\n") == 0, "PING answered with %s",
			      buf_head(&b.log));
		if (strncmp(t[i].line, "MSG dir=mt slot=0 seq=1 ", 24) == 0 ||
		    strncmp(t[i].line, "ASK dir=mt seq=1", 16) == 0)
			CHECK(strcmp(buf_head(&b.log), "CONF dir=mt seq=1\n") == 0,
			      "%s: answered %s", t[i].name, buf_head(&b.log));
		ends_free(&a, &b);
	}

	/* A text of SMS_MAX_TEXT bytes is a message; one more byte is a protocol error. */
	for (size_t len = SMS_MAX_TEXT; len <= SMS_MAX_TEXT + 1; len++) {
		struct end a, b;
		struct buf f = {0};
		char *text = xmalloc(len + 1);

		memset(text, '\n', len);
		text[len] = '\0';
		ends_init(&a, &b, 4);
		b.lax = true;
		link_begin(&f, "MSG");
		link_add(&f, "dir", "mt");
		link_add_u64(&f, "slot", 0);
		link_add_u64(&f, "seq", 1);
		link_add(&f, "text", text);
		link_end(&f);
		inject(&b, buf_head(&f));
		CHECK((b.fails == 0) == (len <= SMS_MAX_TEXT) &&
			  b.in.slot[0].seq == (b.fails ? 0 : 1),
		      "text of %zu bytes: fails %u", len, b.fails);
		free(text);
		buf_free(&f);
		ends_free(&a, &b);
	}

	/* The handshake's frames are not link_peer's. */
	{
		struct end a, b;
		struct link_frame fr;
		char err[128];
		ends_init(&a, &b, 4);
		CHECK(parse1(S("HELLO name=telia ring=4 mac=00\n"), &fr, err, sizeof err) > 0 &&
			  link_peer_frame(&b.peer, &fr) == -1,
		      "HELLO taken as a message frame");
		link_frame_free(&fr);
		ends_free(&a, &b);
	}
}

/* An old MSG, resent after its slot took a newer message, is answered PROC and ignored. */
static void
test_peer_old(void)
{
	struct end a, b;
	char line[128];

	ends_init(&a, &b, 2);
	produce(&a, 3, 3); /* seq 1, 2; 3 waits for room */
	pump(&a, &b);
	consume(&b, 10, false);
	pump(&a, &b);
	produce(&a, 3, 3); /* seq 3 into slot 0 */
	pump(&a, &b);
	CHECK(b.in.slot[0].seq == 3, "seq 3 not in slot 0 at the receiver");
	b.log_frames = true;
	snprintf(line, sizeof line, "MSG dir=mt slot=0 seq=1 text=old\n");
	inject(&b, line);
	CHECK(b.fails == 0 && b.received[1] == 1 &&
		  strcmp(buf_head(&b.log), "PROC dir=mt seq=1\n") == 0,
	      "old MSG: fails %u, answered %s", b.fails, buf_head(&b.log));
	pump(&a, &b);
	CHECK(a.processed[1] == 1 && a.fails == 0, "the old PROC counted again");
	/* An ASK about seq 1, long processed and its slot reused: answered PROC. */
	buf_reset(&b.log);
	inject(&b, "ASK dir=mt seq=1\n");
	CHECK(b.fails == 0 && strcmp(buf_head(&b.log), "PROC dir=mt seq=1\n") == 0,
	      "ASK about an old message: %s", buf_head(&b.log));
	pump(&a, &b);
	ends_free(&a, &b);
}

int
main(void)
{
	test_values();
	test_malformed();
	test_limits();
	test_partial();
	test_get();
	test_mac();
	test_ring();
	test_ring_check();
	test_peer_flow();
	test_peer_outages();
	test_peer_duplicates();
	test_peer_outcome();
	test_peer_errors();
	test_peer_old();
	return check_summary("test_smslink");
}
