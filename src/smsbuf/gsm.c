/*
 * gsm: UTF-8 <-> SMS user data. The GSM 7-bit default alphabet and extension table are built
 * from 3GPP TS 23.038 section 6.2.1.1, UCS-2 from section 6.2.3, septet packing from section
 * 6.1.2.1.1, concatenation from TS 23.040 section 9.2.3.24.1.
 *
 * Invariant: every mapping in the two tables is one-to-one, and the encoders only accept text
 * made of exactly mapped characters, so whatever they write decodes back to the same UTF-8; the
 * decoders take any bytes and emit only valid UTF-8.
 */
#include <limits.h>
#include <string.h>

#include "../core/core.h"
#include "gsm.h"

#define REPLACEMENT 0xfffdu

/*
 * The default alphabet, 23.038 section 6.2.1.1 figure "GSM 7 bit default alphabet": septet ->
 * Unicode. 0x1B is the escape to the extension table and maps to nothing by itself (0 here;
 * 0x00 is '@', so 0 is never a real mapping except at 0x1B). 0x09 is the capital C-cedilla the
 * table shows; the small one is not mapped, so 'ç' goes as UCS-2 instead of changing case.
 */
static const uint16_t gsm_basic[128] = {
    /* 0x00 */ 0x0040, 0x00a3, 0x0024, 0x00a5, 0x00e8, 0x00e9, 0x00f9, 0x00ec,
    /* 0x08 */ 0x00f2, 0x00c7, 0x000a, 0x00d8, 0x00f8, 0x000d, 0x00c5, 0x00e5,
    /* 0x10 */ 0x0394, 0x005f, 0x03a6, 0x0393, 0x039b, 0x03a9, 0x03a0, 0x03a8,
    /* 0x18 */ 0x03a3, 0x0398, 0x039e, 0x0000, 0x00c6, 0x00e6, 0x00df, 0x00c9,
    /* 0x20 */ 0x0020, 0x0021, 0x0022, 0x0023, 0x00a4, 0x0025, 0x0026, 0x0027,
    /* 0x28 */ 0x0028, 0x0029, 0x002a, 0x002b, 0x002c, 0x002d, 0x002e, 0x002f,
    /* 0x30 */ 0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037,
    /* 0x38 */ 0x0038, 0x0039, 0x003a, 0x003b, 0x003c, 0x003d, 0x003e, 0x003f,
    /* 0x40 */ 0x00a1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047,
    /* 0x48 */ 0x0048, 0x0049, 0x004a, 0x004b, 0x004c, 0x004d, 0x004e, 0x004f,
    /* 0x50 */ 0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057,
    /* 0x58 */ 0x0058, 0x0059, 0x005a, 0x00c4, 0x00d6, 0x00d1, 0x00dc, 0x00a7,
    /* 0x60 */ 0x00bf, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067,
    /* 0x68 */ 0x0068, 0x0069, 0x006a, 0x006b, 0x006c, 0x006d, 0x006e, 0x006f,
    /* 0x70 */ 0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077,
    /* 0x78 */ 0x0078, 0x0079, 0x007a, 0x00e4, 0x00f6, 0x00f1, 0x00fc, 0x00e0,
};

/*
 * The extension table, 23.038 section 6.2.1.1 figure "GSM 7 bit default alphabet extension
 * table": reached by GSM_ESC + code. 0x0A is the page break, mapped to FORM FEED as Unicode's
 * GSM0338 mapping does. 0x0D (CR2) and 0x1B (reserved for another table) carry no character.
 */
static const struct {
	uint8_t code;
	uint16_t cp;
} gsm_ext[] = {
    {0x0a, 0x000c}, {0x14, 0x005e}, {0x28, 0x007b}, {0x29, 0x007d}, {0x2f, 0x005c},
    {0x3c, 0x005b}, {0x3d, 0x007e}, {0x3e, 0x005d}, {0x40, 0x007c}, {0x65, 0x20ac},
};

/* ---- UTF-8 ---- */

/*
 * Decodes one character of strict UTF-8 (RFC 3629 section 3-4): no overlong forms, no
 * surrogates, nothing above U+10FFFF. Returns its length (1-4) and sets *cp, or -1.
 */
static int
utf8_next(const uint8_t *s, size_t n, uint32_t *cp)
{
	uint32_t c;
	int len;

	if (n == 0)
		return -1;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return -1; /* continuation byte, C0/C1 (always overlong), F5-FF */
	if (n < (size_t)len)
		return -1;
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*cp = c;
	return len;
}

static void
put_utf8(struct buf *b, uint32_t cp)
{
	uint8_t u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | cp >> 6);
		u[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | cp >> 12);
		u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | cp >> 18);
		u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(b, u, n);
}

/* ---- the GSM 7-bit alphabet ---- */

/* Septets for one character: writes 1 or 2 (GSM_ESC + code) to out and returns the count, or 0
 * if the character is in neither table. */
static int
gsm_char(uint32_t cp, uint8_t out[2])
{
	/* Most text is printable ASCII that sits at its own code. */
	if (cp >= 0x20 && cp < 0x80 && gsm_basic[cp] == cp) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	for (unsigned i = 0; i < ARRAY_LEN(gsm_basic); i++) {
		if (i != GSM_ESC && gsm_basic[i] == cp) {
			out[0] = (uint8_t)i;
			return 1;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(gsm_ext); i++) {
		if (gsm_ext[i].cp == cp) {
			out[0] = GSM_ESC;
			out[1] = gsm_ext[i].code;
			return 2;
		}
	}
	return 0;
}

/* Septets the text needs, or -1 if it is invalid UTF-8 or a character does not fit. */
static long long
gsm_count(const uint8_t *s, size_t len)
{
	long long total = 0;
	uint8_t tmp[2];

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		int k = utf8_next(s + i, len - i, &cp), m;

		if (k < 0 || (m = gsm_char(cp, tmp)) == 0)
			return -1;
		total += m;
		i += (size_t)k;
	}
	return total;
}

bool
gsm_fits(const char *utf8, size_t len)
{
	return gsm_count((const uint8_t *)utf8, len) >= 0;
}

int
gsm_encode(const char *utf8, size_t len, uint8_t *out, size_t cap)
{
	const uint8_t *s = (const uint8_t *)utf8;
	long long need = gsm_count(s, len);
	size_t o = 0;

	/* Counted first, so out is untouched when the text cannot be written whole. */
	if (need < 0 || need > INT_MAX || (unsigned long long)need > cap)
		return -1;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		int k = utf8_next(s + i, len - i, &cp);

		o += (size_t)gsm_char(cp, out + o);
		i += (size_t)k;
	}
	return (int)o;
}

static uint32_t
gsm_ext_cp(uint8_t code)
{
	for (size_t i = 0; i < ARRAY_LEN(gsm_ext); i++) {
		if (gsm_ext[i].code == code)
			return gsm_ext[i].cp;
	}
	return 0;
}

void
gsm_decode(const uint8_t *sept, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = sept[i] & 0x7f, d;
		uint32_t cp;

		if (c != GSM_ESC) {
			put_utf8(out, gsm_basic[c]);
			i++;
			continue;
		}
		/* 23.038 section 6.2.1.1: a receiver shows a space for an escape it cannot use
		 * (a lone one at the end, or ESC ESC, reserved for a further table), and the
		 * default-alphabet character for a code with no extension character. */
		if (i + 1 == n) {
			put_utf8(out, ' ');
			break;
		}
		d = sept[i + 1] & 0x7f;
		if (d == GSM_ESC)
			cp = ' ';
		else if ((cp = gsm_ext_cp(d)) == 0)
			cp = gsm_basic[d];
		put_utf8(out, cp);
		i += 2;
	}
}

/* ---- packing, 23.038 section 6.1.2.1.1 ---- */

unsigned
gsm_fill_bits(size_t udh_octets)
{
	/* The text starts at the first septet boundary (counted from the start of TP-UD) at
	 * or after the UDH's 8 * udh_octets bits; 8 = 1 (mod 7). */
	return (unsigned)((7 - udh_octets % 7) % 7);
}

size_t
gsm_pack(const uint8_t *sept, size_t n, unsigned fill, uint8_t *out, size_t cap)
{
	size_t bits, nbytes, bit = fill;

	/* nbytes = ceil((fill + 7n) / 8) */
	if (fill > 6 || __builtin_mul_overflow(n, 7, &bits) ||
	    __builtin_add_overflow(bits, fill + 7, &bits))
		return 0;
	nbytes = bits / 8;
	if (nbytes > cap)
		return 0;
	memset(out, 0, nbytes);
	/* Septet k occupies bits [fill + 7k, fill + 7k + 7) counted from bit 0 (the least
	 * significant) of the first octet; a septet crosses into the next octet when its
	 * offset within the octet is above 1. */
	for (size_t k = 0; k < n; k++, bit += 7) {
		unsigned v = sept[k] & 0x7fu, off = bit % 8;

		out[bit / 8] |= (uint8_t)(v << off);
		if (off > 1)
			out[bit / 8 + 1] |= (uint8_t)(v >> (8 - off));
	}
	return nbytes;
}

size_t
gsm_unpack(const uint8_t *packed, size_t nbytes, size_t nsept, unsigned fill, uint8_t *out,
	   size_t cap)
{
	size_t bits, avail, count, bit = fill;

	if (fill > 6)
		return 0;
	if (__builtin_mul_overflow(nbytes, 8, &bits))
		bits = SIZE_MAX;
	avail = bits < fill ? 0 : (bits - fill) / 7;
	count = nsept < avail ? nsept : avail;
	if (count > cap)
		count = cap;
	for (size_t k = 0; k < count; k++, bit += 7) {
		unsigned off = bit % 8, v = packed[bit / 8] >> off;

		if (off > 1)
			v |= (unsigned)packed[bit / 8 + 1] << (8 - off);
		out[k] = (uint8_t)(v & 0x7f);
	}
	return count;
}

/* ---- UCS-2 / UTF-16BE, 23.038 section 6.2.3 ---- */

/* Octets the text needs as UTF-16BE, or -1 if it is invalid UTF-8. */
static long long
ucs2_count(const uint8_t *s, size_t len)
{
	long long total = 0;

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		int k = utf8_next(s + i, len - i, &cp);

		if (k < 0)
			return -1;
		total += cp >= 0x10000 ? 4 : 2;
		i += (size_t)k;
	}
	return total;
}

/* Writes cp as UTF-16BE to out (2 or 4 octets) and returns the count. */
static int
ucs2_char(uint32_t cp, uint8_t out[4])
{
	if (cp < 0x10000) {
		out[0] = (uint8_t)(cp >> 8);
		out[1] = (uint8_t)cp;
		return 2;
	}
	cp -= 0x10000;
	out[0] = (uint8_t)(0xd8 | cp >> 18);
	out[1] = (uint8_t)(cp >> 10);
	out[2] = (uint8_t)(0xdc | (cp >> 8 & 0x03));
	out[3] = (uint8_t)cp;
	return 4;
}

int
ucs2_encode(const char *utf8, size_t len, uint8_t *out, size_t cap)
{
	const uint8_t *s = (const uint8_t *)utf8;
	long long need = ucs2_count(s, len);
	size_t o = 0;

	if (need < 0 || need > INT_MAX || (unsigned long long)need > cap)
		return -1;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		int k = utf8_next(s + i, len - i, &cp);

		o += (size_t)ucs2_char(cp, out + o);
		i += (size_t)k;
	}
	return (int)o;
}

void
ucs2_decode(const uint8_t *p, size_t n, struct buf *out)
{
	size_t i = 0;

	while (i + 1 < n) {
		uint32_t u = (uint32_t)p[i] << 8 | p[i + 1], lo;

		i += 2;
		if (u >= 0xd800 && u <= 0xdbff && i + 1 < n &&
		    (lo = (uint32_t)p[i] << 8 | p[i + 1]) >= 0xdc00 && lo <= 0xdfff) {
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			i += 2;
		} else if (u >= 0xd800 && u <= 0xdfff) {
			u = REPLACEMENT; /* a high one without its low half, or a lone low one */
		}
		put_utf8(out, u);
	}
	if (i < n)
		put_utf8(out, REPLACEMENT); /* half a code unit */
}

/* ---- other codings ---- */

void
latin1_decode(const uint8_t *p, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++)
		put_utf8(out, p[i]);
}

static void
ia5_decode(const uint8_t *p, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++)
		put_utf8(out, p[i] < 0x80 ? p[i] : REPLACEMENT);
}

static void
hex_encode(const uint8_t *p, size_t n, struct buf *out)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		char h[2] = {digits[p[i] >> 4], digits[p[i] & 0x0f]};

		buf_append(out, h, 2);
	}
}

void
sms_decode(int coding, const uint8_t *p, size_t n, struct buf *out)
{
	switch (coding) {
	case SMS_GSM7:
		gsm_decode(p, n, out);
		break;
	case SMS_IA5:
		ia5_decode(p, n, out);
		break;
	case SMS_LATIN1:
		latin1_decode(p, n, out);
		break;
	case SMS_UCS2:
		ucs2_decode(p, n, out);
		break;
	default:
		hex_encode(p, n, out);
		break;
	}
}

/* ---- splitting and concatenation, 23.040 section 9.2.3.24.1 ---- */

/*
 * One pass over valid UTF-8: packs whole characters greedily into segments of at most limit
 * units (septets or octets), so an escape pair or a surrogate pair is never cut. With segs NULL
 * it only counts. Returns the number of segments, or -1 as soon as it would exceed max.
 */
static int
split_pass(const uint8_t *s, size_t len, bool gsm, size_t limit, struct sms_seg *segs, size_t max)
{
	size_t count = 1, used = 0;

	if (segs)
		segs[0].len = 0;
	for (size_t i = 0; i < len;) {
		uint8_t tmp[4];
		uint32_t cp;
		int k = utf8_next(s + i, len - i, &cp);
		size_t m = (size_t)(gsm ? gsm_char(cp, tmp) : ucs2_char(cp, tmp));

		if (used + m > limit) {
			if (++count > max)
				return -1;
			used = 0;
			if (segs)
				segs[count - 1].len = 0;
		}
		if (segs) {
			memcpy(segs[count - 1].data + used, tmp, m);
			segs[count - 1].len = used + m;
		}
		used += m;
		i += (size_t)k;
	}
	return (int)count;
}

int
sms_split(const char *utf8, size_t len, int *coding, struct sms_seg *segs, size_t max)
{
	const uint8_t *s = (const uint8_t *)utf8;
	long long septets = gsm_count(s, len), octets;
	bool gsm = septets >= 0;
	size_t limit;

	if (max > SMS_PARTS_MAX)
		max = SMS_PARTS_MAX;
	if (max == 0)
		return -1;
	if (gsm) {
		limit = septets <= SMS_SEPTETS_MAX ? SMS_SEPTETS_MAX : SMS_SEPTETS_PART;
	} else {
		if ((octets = ucs2_count(s, len)) < 0)
			return -1; /* invalid UTF-8 */
		limit = octets <= SMS_OCTETS_MAX ? SMS_OCTETS_MAX : SMS_OCTETS_PART;
	}
	/* Count first, so nothing is written when the text needs more than max parts. */
	if (split_pass(s, len, gsm, limit, NULL, max) < 0)
		return -1;
	*coding = gsm ? SMS_GSM7 : SMS_UCS2;
	return split_pass(s, len, gsm, limit, segs, max);
}

void
sms_udh_concat(uint8_t out[SMS_CONCAT_UDH], uint8_t ref, uint8_t total, uint8_t part)
{
	out[0] = SMS_CONCAT_UDH - 1; /* UDHL: the octets after this one */
	out[1] = 0x00;		     /* IEI: concatenated short messages, 8-bit reference */
	out[2] = 3;		     /* IEDL */
	out[3] = ref;
	out[4] = total;
	out[5] = part;
}

int
sms_udh_parse(const uint8_t *ud, size_t n, unsigned *ref, unsigned *total, unsigned *part)
{
	unsigned r = 0, t = 0, p = 0;
	size_t end, i = 1;

	if (n < 1 || (end = (size_t)ud[0] + 1) > n)
		return -1;
	/* 23.040 section 9.2.3.24: UDHL, then IEs of IEI, IEDL and IEDL octets of data. */
	while (i < end) {
		unsigned iei, len;
		const uint8_t *d;

		if (end - i < 2)
			return -1;
		iei = ud[i];
		len = ud[i + 1];
		d = ud + i + 2;
		if (len > end - i - 2)
			return -1;
		i += 2 + len;
		/* 9.2.3.24.1 and 9.2.3.24.8: the 8-bit (IEI 00, 3 octets) and 16-bit (IEI 08,
		 * 4 octets) reference forms. A count of 0, or a sequence number of 0 or above
		 * the count, makes the receiver ignore the IE; a repeated IE: the last wins. */
		if (iei == 0x00 && len == 3 && d[1] != 0 && d[2] != 0 && d[2] <= d[1]) {
			r = d[0], t = d[1], p = d[2];
		} else if (iei == 0x08 && len == 4 && d[2] != 0 && d[3] != 0 && d[3] <= d[2]) {
			r = (unsigned)d[0] << 8 | d[1], t = d[2], p = d[3];
		}
	}
	*ref = r;
	*total = t;
	*part = p;
	return (int)end;
}
