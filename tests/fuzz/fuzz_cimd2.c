/*
 * fuzz_cimd2: libFuzzer target for the CIMD2 codec. The input is run through cimd2_parse
 * as a byte stream, as the session does, and is also taken as user data (033) and hex.
 *
 * Invariants checked: the stream always makes progress (a packet's length or a skip of at
 * least one byte, never past the end); every packet has its pointers inside the input and
 * re-encodes to bytes that parse back to the same packet (the same bytes when its checksum
 * was upper case); decoding user data always gives valid UTF-8, and whatever the encoder
 * accepts decodes back to itself; hex that decodes re-encodes to itself in upper case.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "smsbuf/cimd2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_cimd2: %s\n", what);
		abort();
	}
}

/* A plain reference: accepts exactly well-formed UTF-8 (no surrogates, overlongs). */
static int
utf8_reference(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t len;

		if (s[i] < 0x80)
			len = 1, cp = s[i];
		else if ((s[i] & 0xe0) == 0xc0)
			len = 2, cp = s[i] & 0x1f;
		else if ((s[i] & 0xf0) == 0xe0)
			len = 3, cp = s[i] & 0x0f;
		else if ((s[i] & 0xf8) == 0xf0)
			len = 4, cp = s[i] & 0x07;
		else
			return 0;
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
			return 0;
		i += len;
	}
	return 1;
}

static int
same_packet(const struct cimd2_packet *a, const struct cimd2_packet *b)
{
	if (a->op != b->op || a->num != b->num || a->nparams != b->nparams)
		return 0;
	for (size_t i = 0; i < a->nparams; i++) {
		if (a->params[i].code != b->params[i].code ||
		    a->params[i].len != b->params[i].len ||
		    memcmp(a->params[i].value, b->params[i].value, a->params[i].len) != 0)
			return 0;
	}
	return 1;
}

static void
check_packet(const char *in, size_t n, const struct cimd2_packet *p)
{
	struct cimd2_packet q;
	struct buf b = {0};
	size_t skip;
	long r;

	check(p->op >= 0 && p->op <= 99 && p->num >= 0 && p->num <= 255, "header out of range");
	check(p->nparams <= CIMD2_MAX_PARAMS, "too many parameters");
	cimd2_begin(&b, p->op, p->num);
	for (size_t i = 0; i < p->nparams; i++) {
		const struct cimd2_param *prm = &p->params[i];

		check(prm->value >= in && prm->value + prm->len <= in + n, "value outside packet");
		check(prm->code >= 0 && prm->code <= 999, "parameter code out of range");
		check(cimd2_value_ok(prm->value, prm->len), "value with a delimiter");
		cimd2_add(&b, prm->code, prm->value, prm->len);
	}
	cimd2_end(&b);
	r = cimd2_parse(buf_head(&b), buf_used(&b), &q, &skip, NULL, 0);
	check(r == (long)buf_used(&b), "re-encoded packet does not parse whole");
	check(q.has_checksum && same_packet(p, &q), "re-encoded packet differs");
	if (p->has_checksum && n >= 3 && !(in[n - 3] >= 'a' && in[n - 3] <= 'f') &&
	    !(in[n - 2] >= 'a' && in[n - 2] <= 'f'))
		check(buf_used(&b) == n && memcmp(buf_head(&b), in, n) == 0,
		      "re-encoded bytes differ");
	buf_free(&b);
}

static void
check_stream(const char *in, size_t size)
{
	size_t off = 0;

	while (off < size) {
		struct cimd2_packet p;
		size_t skip = 0;
		char err[128];
		long r = cimd2_parse(in + off, size - off, &p, &skip, err, sizeof(err));

		if (r == 0)
			break;
		if (r < 0) {
			check(skip >= 1 && skip <= size - off,
			      "skip makes no progress or overruns");
			off += skip;
			continue;
		}
		check((size_t)r <= size - off && (size_t)r <= CIMD2_MAX_PACKET, "length overruns");
		check(in[off] == '\x02' && in[off + (size_t)r - 1] == '\x03', "not STX..ETX");
		check_packet(in + off, (size_t)r, &p);
		off += (size_t)r;
	}
}

static void
check_text(const char *in, size_t size)
{
	struct buf d = {0}, e = {0}, d2 = {0};

	cimd2_text_decode(in, size, &d);
	check(utf8_reference((const uint8_t *)buf_head(&d), buf_used(&d)), "decode not UTF-8");
	if (cimd2_text_encode(buf_head(&d), buf_used(&d), &e) == 0) {
		cimd2_text_decode(buf_head(&e), buf_used(&e), &d2);
		check(buf_used(&d2) == buf_used(&d) &&
			  memcmp(buf_head(&d2), buf_head(&d), buf_used(&d)) == 0,
		      "decode(encode(decode(x))) != decode(x)");
	}
	buf_reset(&e);
	buf_reset(&d2);
	if (cimd2_text_encode(in, size, &e) == 0) {
		check(utf8_reference((const uint8_t *)in, size), "encode accepted non-UTF-8");
		cimd2_text_decode(buf_head(&e), buf_used(&e), &d2);
		check(buf_used(&d2) == size && memcmp(buf_head(&d2), in, size) == 0,
		      "decode(encode(x)) != x");
	}
	buf_free(&d);
	buf_free(&e);
	buf_free(&d2);
}

static void
check_hex(const char *in, size_t size)
{
	uint8_t *bin = xmalloc(size / 2 + 1);
	long n = cimd2_hex_decode(in, size, bin, size / 2 + 1);

	if (n >= 0) {
		struct buf b = {0};

		check((size_t)n * 2 == size, "hex length");
		cimd2_hex_encode(bin, (size_t)n, &b);
		for (size_t i = 0; i < size; i++) {
			char c = in[i] >= 'a' && in[i] <= 'f' ? (char)(in[i] - 32) : in[i];
			check(buf_head(&b)[i] == c, "hex does not re-encode");
		}
		buf_free(&b);
	}
	free(bin);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;

	check_stream(in, size);
	check_text(in, size);
	check_hex(in, size);
	return 0;
}
