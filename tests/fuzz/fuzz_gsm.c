/*
 * fuzz_gsm: libFuzzer target for the SMS text layer (smsbuf/gsm.c). The input is decoded as
 * user data of every coding, parsed as a UDH, unpacked as 7-bit data, and used as UTF-8 text
 * (often invalid) to encode and split.
 *
 * Invariants checked: decoders always produce valid UTF-8; text is accepted exactly when it is
 * valid UTF-8 (a reference decoder decides); decode(encode(x)) == x for GSM 7-bit text that fits
 * and for UCS-2; split segments respect the 160/153 septet and 140/134 octet limits and, decoded
 * one by one, give the text back (so no escape or surrogate pair is cut); pack(unpack(x))
 * reproduces the bits of x; a parsed UDH lies within the data.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "smsbuf/gsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_gsm: %s\n", what);
		abort();
	}
}

/* A plain reference: strict UTF-8 (RFC 3629), no overlongs, surrogates or > U+10FFFF. */
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
buf_equals(const struct buf *b, const uint8_t *p, size_t n)
{
	return buf_used(b) == n && memcmp(buf_head(b), p, n) == 0;
}

static void
check_decoders(const uint8_t *data, size_t size)
{
	static const int codings[] = {SMS_GSM7, SMS_IA5, 2, SMS_LATIN1, SMS_BINARY, SMS_UCS2, 0xf6};
	struct buf b = {0};

	for (size_t i = 0; i < ARRAY_LEN(codings); i++) {
		buf_reset(&b);
		sms_decode(codings[i], data, size, &b);
		check(utf8_reference((const uint8_t *)buf_head(&b), buf_used(&b)),
		      "sms_decode produced invalid UTF-8");
		/* Every octet or septet yields at least something, except ESC + code pairs. */
		check(codings[i] == SMS_GSM7 || codings[i] == SMS_UCS2 || buf_used(&b) >= size,
		      "sms_decode dropped input");
	}
	buf_free(&b);
}

static void
check_udh(const uint8_t *data, size_t size)
{
	unsigned ref = 1000, total = 1000, part = 1000;
	int r = sms_udh_parse(data, size, &ref, &total, &part);

	if (r < 0) {
		check(ref == 1000 && total == 1000 && part == 1000, "udh outputs set on failure");
		return;
	}
	check(r >= 1 && (size_t)r <= size && (size_t)r == (size_t)data[0] + 1, "udh length");
	check(total <= 255, "udh total");
	if (total)
		check(part >= 1 && part <= total && ref <= 0xffff, "udh part");
	else
		check(ref == 0 && part == 0, "udh without concatenation");
}

static void
check_packing(const uint8_t *data, size_t size)
{
	unsigned fill;
	size_t n, m, want;
	uint8_t *sept, *packed, *again;

	if (size == 0)
		return;
	fill = data[0] % 7;
	data++, size--;
	want = size * 8 < fill ? 0 : (size * 8 - fill) / 7;
	sept = xmalloc(want + 1);
	packed = xmalloc(size + 1);
	n = gsm_unpack(data, size, SIZE_MAX, fill, sept, want + 1);
	check(n == want, "unpack count");
	for (size_t i = 0; i < n; i++)
		check(sept[i] < 0x80, "unpacked septet above 0x7f");
	/* Re-packing gives the same bits [fill, fill + 7n); the rest are zero. */
	m = gsm_pack(sept, n, fill, packed, size + 1);
	/* ceil((fill + 7n) / 8): within the data, except that fill bits alone take an octet */
	check(m == (fill + 7 * n + 7) / 8 && (m <= size || (n == 0 && m == 1)), "pack length");
	for (size_t bit = fill; bit < fill + 7 * n; bit++)
		check((packed[bit / 8] >> (bit % 8) & 1) == (data[bit / 8] >> (bit % 8) & 1),
		      "pack(unpack(x)) differs");
	for (size_t bit = 0; bit < fill; bit++)
		check((packed[0] >> bit & 1) == 0, "fill bits not zero");
	/* And unpacking that again gives the same septets. */
	again = xmalloc(n + 1);
	check(gsm_unpack(packed, m, n, fill, again, n + 1) == n && memcmp(again, sept, n) == 0,
	      "unpack(pack(s)) differs");
	free(again);
	free(sept);
	free(packed);
}

static void
check_text(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	int valid = utf8_reference(data, size), fits = gsm_fits(text, size), coding = -1, n;
	size_t cap = size * 2 + 8;
	uint8_t *out = xmalloc(cap);
	struct sms_seg *segs = xmalloc(SMS_PARTS_MAX * sizeof *segs);
	struct buf b = {0};

	check(!fits || valid, "gsm_fits accepts invalid UTF-8");
	n = gsm_encode(text, size, out, cap);
	check((n >= 0) == fits, "gsm_encode disagrees with gsm_fits");
	if (n >= 0) {
		gsm_decode(out, (size_t)n, &b);
		check(buf_equals(&b, data, size), "GSM round trip differs");
		for (int i = 0; i < n; i++)
			check(out[i] < 0x80, "septet above 0x7f");
		/* Through packing too. */
		{
			uint8_t *packed = xmalloc((size_t)n + 2), *sept = xmalloc((size_t)n + 1);
			size_t m = gsm_pack(out, (size_t)n, 1, packed, (size_t)n + 2);

			check(gsm_unpack(packed, m, (size_t)n, 1, sept, (size_t)n + 1) ==
				      (size_t)n &&
				  memcmp(sept, out, (size_t)n) == 0,
			      "packed text differs");
			free(packed);
			free(sept);
		}
	}
	n = ucs2_encode(text, size, out, cap);
	check((n >= 0) == valid, "ucs2_encode disagrees with the reference");
	if (n >= 0) {
		check(n % 2 == 0, "odd UCS-2 length");
		buf_reset(&b);
		ucs2_decode(out, (size_t)n, &b);
		check(buf_equals(&b, data, size), "UCS-2 round trip differs");
	}

	n = sms_split(text, size, &coding, segs, SMS_PARTS_MAX);
	if (!valid) {
		check(n == -1 && coding == -1, "sms_split accepts invalid UTF-8");
	} else if (n > 0) {
		size_t one = fits ? SMS_SEPTETS_MAX : SMS_OCTETS_MAX;
		size_t part = fits ? SMS_SEPTETS_PART : SMS_OCTETS_PART, total = 0;

		check(coding == (fits ? SMS_GSM7 : SMS_UCS2), "sms_split coding");
		buf_reset(&b);
		for (int i = 0; i < n; i++) {
			check(segs[i].len <= (n == 1 ? one : part), "segment too long");
			check(n == 1 || segs[i].len > 0, "empty part");
			check(coding == SMS_GSM7 || segs[i].len % 2 == 0, "odd UCS-2 segment");
			total += segs[i].len;
			sms_decode(coding, segs[i].data, segs[i].len, &b);
		}
		check(n == 1 || total > one, "split although it fits in one message");
		check(buf_equals(&b, data, size), "split parts do not decode to the text");
	} else {
		/* Refused valid text needs more than 255 parts; every UTF-8 octet gives at most
		 * 2 septets or 2 UCS-2 octets, and a part holds at least 152 or 132. */
		check(n == -1 && size * 2 > SMS_PARTS_MAX * 132, "sms_split refused short text");
	}
	buf_free(&b);
	free(segs);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decoders(data, size);
	check_udh(data, size);
	check_packing(data, size);
	check_text(data, size);
	return 0;
}
