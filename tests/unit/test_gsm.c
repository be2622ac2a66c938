/*
 * test_gsm: unit tests of the SMS text layer (smsbuf/gsm.c): every character of the GSM 7-bit
 * default alphabet and extension table both ways (3GPP TS 23.038 section 6.2.1.1), what does not
 * fit, UCS-2 with surrogate pairs, septet packing with fill bits 0-6, splitting at the 160/161,
 * 70/71 and 153/67 boundaries, UDH building and parsing (TS 23.040 section 9.2.3.24.1) and
 * corrupt input: invalid UTF-8, lone surrogates, half code units, malformed UDHs.
 * The expected tables here are written as UTF-8 literals, independently of gsm.c's code points.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "smsbuf/gsm.h"

#include "check.h"

/* Prints bytes as hex for failure messages (static buffer, one use per printf). */
static const char *
hex(const void *p, size_t n)
{
	static char out[2][1024];
	static int which;
	char *o = out[which ^= 1];
	size_t k = 0;

	for (size_t i = 0; i < n && k + 4 < sizeof out[0]; i++)
		k += (size_t)snprintf(o + k, sizeof out[0] - k, "%02x", ((const uint8_t *)p)[i]);
	o[k] = '\0';
	return o;
}

static bool
buf_is(const struct buf *b, const char *want, size_t wlen)
{
	return buf_used(b) == wlen && memcmp(buf_head(b), want, wlen) == 0;
}

/* ---- the default alphabet, 23.038 section 6.2.1.1, one entry per septet ---- */

static const char *const basic_table[128] = {
    "@", "£", "$",  "¥", "è", "é", "ù", "ì", "ò", "Ç", "\n", "Ø",  "ø", "\r", "Å", "å",
    "Δ", "_", "Φ",  "Γ", "Λ", "Ω", "Π", "Ψ", "Σ", "Θ", "Ξ",  NULL, "Æ", "æ",  "ß", "É",
    " ", "!", "\"", "#", "¤", "%", "&", "'", "(", ")", "*",  "+",  ",", "-",  ".", "/",
    "0", "1", "2",  "3", "4", "5", "6", "7", "8", "9", ":",  ";",  "<", "=",  ">", "?",
    "¡", "A", "B",  "C", "D", "E", "F", "G", "H", "I", "J",  "K",  "L", "M",  "N", "O",
    "P", "Q", "R",  "S", "T", "U", "V", "W", "X", "Y", "Z",  "Ä",  "Ö", "Ñ",  "Ü", "§",
    "¿", "a", "b",  "c", "d", "e", "f", "g", "h", "i", "j",  "k",  "l", "m",  "n", "o",
    "p", "q", "r",  "s", "t", "u", "v", "w", "x", "y", "z",  "ä",  "ö", "ñ",  "ü", "à",
};

/* The extension table: ESC + code. */
static const struct {
	const char *utf8;
	uint8_t code;
} ext_table[] = {
    {"\f", 0x0a}, {"^", 0x14}, {"{", 0x28}, {"}", 0x29}, {"\\", 0x2f},
    {"[", 0x3c},  {"~", 0x3d}, {"]", 0x3e}, {"|", 0x40}, {"€", 0x65},
};

static void
test_tables(void)
{
	uint8_t out[8];
	struct buf b = {0};
	int n;

	for (unsigned c = 0; c < 128; c++) {
		const char *s = basic_table[c];
		uint8_t sept = (uint8_t)c;

		if (!s)
			continue;
		n = gsm_encode(s, strlen(s), out, sizeof out);
		CHECK(n == 1 && out[0] == c, "encode \"%s\": want %02x, got %d %s", s, c, n,
		      hex(out, n > 0 ? (size_t)n : 0));
		CHECK(gsm_fits(s, strlen(s)), "\"%s\" (%02x) should fit", s, c);
		buf_reset(&b);
		gsm_decode(&sept, 1, &b);
		CHECK(buf_is(&b, s, strlen(s)), "decode %02x: want \"%s\", got \"%s\"", c, s,
		      buf_head(&b));
		/* bit 7 is ignored on decode */
		sept = (uint8_t)(c | 0x80);
		buf_reset(&b);
		gsm_decode(&sept, 1, &b);
		CHECK(buf_is(&b, s, strlen(s)), "decode %02x: want \"%s\", got \"%s\"", sept, s,
		      buf_head(&b));
	}
	for (size_t i = 0; i < ARRAY_LEN(ext_table); i++) {
		const char *s = ext_table[i].utf8;
		uint8_t pair[2] = {GSM_ESC, ext_table[i].code};

		n = gsm_encode(s, strlen(s), out, sizeof out);
		CHECK(n == 2 && out[0] == GSM_ESC && out[1] == ext_table[i].code,
		      "encode \"%s\": want 1b%02x, got %d %s", s, ext_table[i].code, n,
		      hex(out, n > 0 ? (size_t)n : 0));
		CHECK(gsm_fits(s, strlen(s)), "\"%s\" should fit", s);
		buf_reset(&b);
		gsm_decode(pair, 2, &b);
		CHECK(buf_is(&b, s, strlen(s)), "decode 1b%02x: want \"%s\", got \"%s\"", pair[1],
		      s, buf_head(&b));
	}
	buf_free(&b);
}

/* ---- what fits and what does not ---- */

static const struct {
	const char *s;
	bool fits;
	int septets; /* when it fits */
	size_t n;    /* 0: strlen(s) */
} fit_cases[] = {
    {"", true, 0, 0},
    {"Hello, world!", true, 13, 0},
    {"café", true, 4, 0},		    /* é is 0x05 */
    {"Ça va? Ødegaard", true, 15, 0},	    /* capital Ç is 0x09 */
    {"ça", false, 0, 0},		    /* small ç is not in the table (no case change) */
    {"€5 [x] {y} ~z^ a|b\\c", true, 29, 0}, /* 9 escape pairs */
    {"line\nbreak\r\f", true, 13, 0},
    {"ΔΦΓΛΩΠΨΣΘΞ", true, 10, 0},
    {"Α", false, 0, 0}, /* Greek capital alpha: looks like A, is not A */
    {"Erdős", false, 0, 0},
    {"Привет", false, 0, 0},
    {"日本", false, 0, 0},
    {"😀", false, 0, 0},
    {"`", false, 0, 0},
    {"\t", false, 0, 0},
    {"a\0b", false, 0, 3}, /* U+0000 has no septet ('@' is 0x00) */
    {"“quoted”", false, 0, 0},
    {"ÿ", false, 0, 0},
};

static void
test_fits(void)
{
	uint8_t out[64];

	for (size_t i = 0; i < ARRAY_LEN(fit_cases); i++) {
		const char *s = fit_cases[i].s;
		size_t len = fit_cases[i].n ? fit_cases[i].n : strlen(s);
		int n;

		CHECK(gsm_fits(s, len) == fit_cases[i].fits, "fits \"%s\": want %d", s,
		      fit_cases[i].fits);
		n = gsm_encode(s, len, out, sizeof out);
		CHECK(n == (fit_cases[i].fits ? fit_cases[i].septets : -1),
		      "encode \"%s\": want %d, got %d", s,
		      fit_cases[i].fits ? fit_cases[i].septets : -1, n);
		if (n >= 0) {
			struct buf b = {0};

			gsm_decode(out, (size_t)n, &b);
			CHECK(buf_is(&b, s, len), "round trip \"%s\" -> \"%s\"", s, buf_head(&b));
			buf_free(&b);
		}
	}
}

/* Encoding into too little room fails and leaves the output untouched. */
static void
test_encode_cap(void)
{
	uint8_t out[8];
	int n;

	memset(out, 0xee, sizeof out);
	n = gsm_encode("abc€", strlen("abc€"), out, 4); /* needs 5 septets */
	CHECK(n == -1, "gsm_encode with cap 4 of 5: got %d", n);
	CHECK(out[0] == 0xee && out[3] == 0xee, "gsm_encode wrote on failure: %s", hex(out, 8));
	n = gsm_encode("abc€", strlen("abc€"), out, 5);
	CHECK(n == 5 && out[3] == GSM_ESC && out[4] == 0x65, "gsm_encode with cap 5: %d %s", n,
	      hex(out, 5));
	memset(out, 0xee, sizeof out);
	n = ucs2_encode("a😀", 5, out, 5); /* needs 6 octets */
	CHECK(n == -1 && out[0] == 0xee, "ucs2_encode with cap 5 of 6: got %d", n);
	n = ucs2_encode("a😀", 5, out, 6);
	CHECK(n == 6, "ucs2_encode with cap 6: got %d", n);
	CHECK(gsm_encode("", 0, out, 0) == 0, "empty text into no room");
	CHECK(ucs2_encode("", 0, out, 0) == 0, "empty UCS-2 text into no room");
}

/* ---- decoding corner cases of the escape mechanism ---- */

static const struct {
	uint8_t in[8];
	size_t n;
	const char *want;
} decode_cases[] = {
    {{GSM_ESC}, 1, " "},		 /* lone trailing escape: a space */
    {{'h', 'i', GSM_ESC}, 3, "hi "},	 /* ... also after text */
    {{GSM_ESC, GSM_ESC}, 2, " "},	 /* ESC ESC: reserved, shown as a space */
    {{GSM_ESC, GSM_ESC, 0x65}, 3, " e"}, /* ... and what follows is plain */
    {{GSM_ESC, 0x41}, 2, "A"},		 /* no extension character: the base one */
    {{GSM_ESC, 0x00}, 2, "@"},		 /* ... */
    {{GSM_ESC, 0x0d}, 2, "\r"},		 /* CR2 position: base CR */
    {{GSM_ESC, 0x05}, 2, "é"},		 /* ... */
    {{GSM_ESC, 0xe5}, 2, "€"},		 /* masked to 0x65 */
    {{0x9b, 0xbc}, 2, "["},		 /* masked ESC + masked 0x3c */
    {{0x1b, 0x65, 0x1b}, 3, "€ "},	 /* pair, then a lone escape */
    {{0x00, 0x00, 0x7f}, 3, "@@à"},
    {{0}, 0, ""},
};

static void
test_decode(void)
{
	struct buf b = {0};

	for (size_t i = 0; i < ARRAY_LEN(decode_cases); i++) {
		buf_reset(&b);
		gsm_decode(decode_cases[i].in, decode_cases[i].n, &b);
		CHECK(buf_is(&b, decode_cases[i].want, strlen(decode_cases[i].want)),
		      "gsm_decode %s: want \"%s\", got \"%s\"",
		      hex(decode_cases[i].in, decode_cases[i].n), decode_cases[i].want,
		      buf_head(&b));
	}
	/* Appends: what was in the buffer stays. */
	buf_reset(&b);
	buf_puts(&b, "x:");
	gsm_decode((const uint8_t *)"\x1b\x65", 2, &b);
	CHECK(buf_is(&b, "x:€", strlen("x:€")), "gsm_decode appends: got \"%s\"", buf_head(&b));
	buf_free(&b);
}

/* ---- invalid UTF-8 is refused by every encoder ---- */

static const struct {
	const char *s;
	size_t n;
	const char *what;
} bad_utf8[] = {
    {"\xc0\xaf", 2, "overlong '/' in 2 octets"},
    {"\xc1\xbf", 2, "overlong DEL"},
    {"\xe0\x80\xaf", 3, "overlong '/' in 3 octets"},
    {"\xe0\x9f\xbf", 3, "overlong U+07FF"},
    {"\xf0\x80\x80\xaf", 4, "overlong '/' in 4 octets"},
    {"\xf0\x8f\xbf\xbf", 4, "overlong U+FFFF"},
    {"\xed\xa0\x80", 3, "high surrogate U+D800 in UTF-8"},
    {"\xed\xb0\x80", 3, "low surrogate U+DC00 in UTF-8"},
    {"\xed\xa0\xbd\xed\xb8\x80", 6, "CESU-8 surrogate pair"},
    {"\xf4\x90\x80\x80", 4, "above U+10FFFF"},
    {"\xf5\x80\x80\x80", 4, "F5 lead octet"},
    {"\xf8\x88\x80\x80\x80", 5, "5-octet form"},
    {"\xfe", 1, "FE"},
    {"\xff", 1, "FF"},
    {"\x80", 1, "lone continuation octet"},
    {"a\xbf", 2, "continuation after ASCII"},
    {"\xc3", 1, "truncated 2-octet form"},
    {"\xe2\x82", 2, "truncated euro sign"},
    {"ab\xe2\x82", 4, "truncated euro sign at the end of text"},
    {"\xf0\x9f\x98", 3, "truncated emoji"},
    {"\xe2\x28\xa1", 3, "bad second octet"},
    {"\xc3\xa9\xc3", 3, "é then a truncated character"},
};

static void
test_bad_utf8(void)
{
	uint8_t out[64];
	struct sms_seg segs[2];

	for (size_t i = 0; i < ARRAY_LEN(bad_utf8); i++) {
		const char *s = bad_utf8[i].s, *w = bad_utf8[i].what;
		size_t n = bad_utf8[i].n;
		int coding = -7;

		segs[0].len = 999;
		CHECK(!gsm_fits(s, n), "gsm_fits accepts %s", w);
		CHECK(gsm_encode(s, n, out, sizeof out) == -1, "gsm_encode accepts %s", w);
		CHECK(ucs2_encode(s, n, out, sizeof out) == -1, "ucs2_encode accepts %s", w);
		CHECK(sms_split(s, n, &coding, segs, 2) == -1, "sms_split accepts %s", w);
		CHECK(coding == -7 && segs[0].len == 999, "sms_split wrote output for %s", w);
	}
}

/* ---- UCS-2 / UTF-16BE ---- */

static const struct {
	const char *utf8;
	const char *ucs2;
	size_t n;
} ucs2_cases[] = {
    {"A", "\x00\x41", 2},
    {"é", "\x00\xe9", 2},
    {"ő", "\x01\x51", 2},
    {"Ж", "\x04\x16", 2},
    {"€", "\x20\xac", 2},
    {"日", "\x65\xe5", 2},
    {"\xef\xbf\xbf", "\xff\xff", 2},		 /* U+FFFF */
    {"😀", "\xd8\x3d\xde\x00", 4},		 /* U+1F600 */
    {"𝄞", "\xd8\x34\xdd\x1e", 4},		 /* U+1D11E */
    {"\xf4\x8f\xbf\xbf", "\xdb\xff\xdf\xff", 4}, /* U+10FFFF */
    {"\xf0\x90\x80\x80", "\xd8\x00\xdc\x00", 4}, /* U+10000 */
    {"a😀b", "\x00\x61\xd8\x3d\xde\x00\x00\x62", 8},
    {"", "", 0},
};

/* UTF-16BE that is not well formed: decoding never fails, it substitutes U+FFFD. */
static const struct {
	const char *in;
	size_t n;
	const char *want;
} ucs2_bad[] = {
    {"\xd8\x3d", 2, "\xef\xbf\xbd"}, /* high surrogate at the end */
    {"\xd8\x3d\x00\x41", 4,
     "\xef\xbf\xbd"
     "A"}, /* high, then not a low */
    {"\xde\x00\x00\x41", 4,
     "\xef\xbf\xbd"
     "A"}, /* lone low surrogate */
    {"\xd8\x3d\xd8\x3d\xde\x00", 6,
     "\xef\xbf\xbd"
     "😀"},						 /* high, high, low */
    {"\xde\x00\xd8\x3d", 4, "\xef\xbf\xbd\xef\xbf\xbd"}, /* low before high */
    {"\x00\x41\x00", 3, "A\xef\xbf\xbd"},		 /* odd octet */
    {"\xd8", 1, "\xef\xbf\xbd"},			 /* half of a unit */
    {"\xd8\x3d\xde", 3, "\xef\xbf\xbd\xef\xbf\xbd"},	 /* high and half a low */
};

static void
test_ucs2(void)
{
	uint8_t out[16];
	struct buf b = {0};

	for (size_t i = 0; i < ARRAY_LEN(ucs2_cases); i++) {
		const char *s = ucs2_cases[i].utf8;
		int n = ucs2_encode(s, strlen(s), out, sizeof out);

		CHECK(n == (int)ucs2_cases[i].n && memcmp(out, ucs2_cases[i].ucs2, (size_t)n) == 0,
		      "ucs2_encode \"%s\": want %s, got %d %s", s,
		      hex(ucs2_cases[i].ucs2, ucs2_cases[i].n), n, hex(out, n > 0 ? (size_t)n : 0));
		buf_reset(&b);
		ucs2_decode((const uint8_t *)ucs2_cases[i].ucs2, ucs2_cases[i].n, &b);
		CHECK(buf_is(&b, s, strlen(s)), "ucs2_decode %s: want \"%s\", got \"%s\"",
		      hex(ucs2_cases[i].ucs2, ucs2_cases[i].n), s, buf_head(&b));
	}
	for (size_t i = 0; i < ARRAY_LEN(ucs2_bad); i++) {
		buf_reset(&b);
		ucs2_decode((const uint8_t *)ucs2_bad[i].in, ucs2_bad[i].n, &b);
		CHECK(buf_is(&b, ucs2_bad[i].want, strlen(ucs2_bad[i].want)),
		      "ucs2_decode %s: want %s, got %s", hex(ucs2_bad[i].in, ucs2_bad[i].n),
		      hex(ucs2_bad[i].want, strlen(ucs2_bad[i].want)),
		      hex(buf_head(&b), buf_used(&b)));
	}
	buf_free(&b);
}

/* ---- the other codings and sms_decode ---- */

static const struct {
	int coding;
	const char *in;
	size_t n;
	const char *want;
} sms_decode_cases[] = {
    {SMS_GSM7, "\x48\x69\x1b\x65\x00", 5, "Hi€@"},
    {SMS_LATIN1, "A\xe9\xff\x80\xa4", 5, "Aéÿ\xc2\x80¤"},
    {SMS_LATIN1, "", 0, ""},
    {SMS_IA5, "Hi\x80!", 4, "Hi\xef\xbf\xbd!"},
    {SMS_UCS2, "\x04\x1f\x04\x40\xd8\x3d\xde\x00", 8, "Пр😀"},
    {SMS_BINARY, "\x0a\x1b\xff\x00", 4, "0A1BFF00"},
    {2, "\x01\xab", 2, "01AB"},	   /* octet unspecified: hex too */
    {0xf5, "\xc0\xff", 2, "C0FF"}, /* unknown: hex */
    {SMS_BINARY, "", 0, ""},
};

static void
test_sms_decode(void)
{
	struct buf b = {0};

	for (size_t i = 0; i < ARRAY_LEN(sms_decode_cases); i++) {
		buf_reset(&b);
		sms_decode(sms_decode_cases[i].coding, (const uint8_t *)sms_decode_cases[i].in,
			   sms_decode_cases[i].n, &b);
		CHECK(buf_is(&b, sms_decode_cases[i].want, strlen(sms_decode_cases[i].want)),
		      "sms_decode(%d, %s): want \"%s\", got \"%s\"", sms_decode_cases[i].coding,
		      hex(sms_decode_cases[i].in, sms_decode_cases[i].n), sms_decode_cases[i].want,
		      buf_head(&b));
	}
	buf_reset(&b);
	latin1_decode((const uint8_t *)"\xa3\xb5", 2, &b);
	CHECK(buf_is(&b, "£µ", strlen("£µ")), "latin1_decode: got \"%s\"", buf_head(&b));
	buf_free(&b);
}

/* ---- packing, 23.038 section 6.1.2.1.1 ---- */

/* A plain reference: bit k of the packed stream is bit (k - fill) % 7 of septet (k - fill) / 7. */
static size_t
ref_pack(const uint8_t *sept, size_t n, unsigned fill, uint8_t *out)
{
	size_t nbytes = (fill + 7 * n + 7) / 8;

	memset(out, 0, nbytes);
	for (size_t k = 0; k < 7 * n; k++) {
		size_t bit = fill + k;

		if (sept[k / 7] >> (k % 7) & 1)
			out[bit / 8] |= (uint8_t)(1u << (bit % 8));
	}
	return nbytes;
}

static void
test_pack(void)
{
	/* The classic example: "hellohello" packs to E8 32 9B FD 46 97 D9 EC 37. */
	static const uint8_t hello_packed[] = {0xe8, 0x32, 0x9b, 0xfd, 0x46,
					       0x97, 0xd9, 0xec, 0x37};
	uint8_t sept[200], packed[200], ref[200], back[200];
	size_t n, m;

	n = gsm_pack((const uint8_t *)"hellohello", 10, 0, packed, sizeof packed);
	CHECK(n == 9 && memcmp(packed, hello_packed, 9) == 0, "pack hellohello: %zu %s", n,
	      hex(packed, n));
	m = gsm_unpack(hello_packed, 9, 10, 0, back, sizeof back);
	CHECK(m == 10 && memcmp(back, "hellohello", 10) == 0, "unpack hellohello: %zu %s", m,
	      hex(back, m));
	/* Eight septets of 0x7f fill seven octets of ones exactly. */
	memset(sept, 0x7f, 8);
	n = gsm_pack(sept, 8, 0, packed, sizeof packed);
	CHECK(n == 7 && packed[0] == 0xff && packed[6] == 0xff, "pack 8 x 7f: %zu %s", n,
	      hex(packed, n));
	/* Bit 7 of a septet is ignored. */
	sept[0] = 0xc1;
	n = gsm_pack(sept, 1, 0, packed, sizeof packed);
	CHECK(n == 1 && packed[0] == 0x41, "pack masks bit 7: %s", hex(packed, n));

	/* Every fill (0-6) and every length up to 161: pack equals the reference, and unpack
	 * gives the septets back. */
	for (unsigned fill = 0; fill <= 6; fill++) {
		for (size_t len = 0; len <= 161; len++) {
			size_t want;

			for (size_t i = 0; i < len; i++)
				sept[i] = (uint8_t)((i * 37 + fill * 11 + len) & 0x7f);
			want = ref_pack(sept, len, fill, ref);
			n = gsm_pack(sept, len, fill, packed, sizeof packed);
			CHECK(n == want && memcmp(packed, ref, n) == 0,
			      "pack fill %u len %zu: got %zu want %zu", fill, len, n, want);
			m = gsm_unpack(packed, n, len, fill, back, sizeof back);
			CHECK(m == len && memcmp(back, sept, len) == 0,
			      "unpack fill %u len %zu: got %zu", fill, len, m);
		}
	}

	/* A UDH of 6 octets needs 1 fill bit; after it the text round-trips too. */
	{
		const char *text = "Long text € part";
		uint8_t ud[140];
		int k = gsm_encode(text, strlen(text), sept, sizeof sept);
		unsigned fill = gsm_fill_bits(SMS_CONCAT_UDH);
		struct buf b = {0};

		sms_udh_concat(ud, 7, 2, 1);
		n = gsm_pack(sept, (size_t)k, fill, ud + SMS_CONCAT_UDH,
			     sizeof ud - SMS_CONCAT_UDH);
		CHECK(fill == 1 && n == (size_t)(1 + 7 * k + 7) / 8, "pack after UDH: fill %u, %zu",
		      fill, n);
		m = gsm_unpack(ud + SMS_CONCAT_UDH, n, (size_t)k, fill, back, sizeof back);
		gsm_decode(back, m, &b);
		CHECK(buf_is(&b, text, strlen(text)), "UDH + packed text: got \"%s\"",
		      buf_head(&b));
		buf_free(&b);
	}

	/* Refusals and truncation. */
	memset(packed, 0xee, sizeof packed);
	CHECK(gsm_pack(sept, 8, 0, packed, 6) == 0 && packed[0] == 0xee,
	      "pack into too little room must write nothing");
	CHECK(gsm_pack(sept, 8, 7, packed, sizeof packed) == 0, "pack with fill 7");
	CHECK(gsm_pack(sept, 0, 0, packed, sizeof packed) == 0, "pack nothing");
	CHECK(gsm_unpack(hello_packed, 9, 10, 7, back, sizeof back) == 0, "unpack with fill 7");
	m = gsm_unpack(hello_packed, 4, 10, 0, back, sizeof back);
	CHECK(m == 4 && memcmp(back, "hell", 4) == 0, "unpack 4 octets claims 10 septets: %zu", m);
	m = gsm_unpack(hello_packed, 9, 10, 0, back, 3);
	CHECK(m == 3 && memcmp(back, "hel", 3) == 0, "unpack into cap 3: %zu", m);
	m = gsm_unpack(hello_packed, 0, 10, 3, back, sizeof back);
	CHECK(m == 0, "unpack from nothing: %zu", m);
	m = gsm_unpack(hello_packed, 1, 10, 6, back, sizeof back);
	CHECK(m == 0, "unpack 1 octet with 6 fill bits holds no septet: %zu", m);
	/* 7 octets hold 8 septets; the caller's count tells a trailing '@' from padding. */
	m = gsm_unpack(hello_packed, 7, 100, 0, back, sizeof back);
	CHECK(m == 8, "7 octets hold 8 septets: %zu", m);

	static const struct {
		size_t udh;
		unsigned fill;
	} fills[] = {{0, 0}, {1, 6}, {2, 5}, {6, 1}, {7, 0}, {8, 6}, {12, 2}, {14, 0}};
	for (size_t i = 0; i < ARRAY_LEN(fills); i++)
		CHECK(gsm_fill_bits(fills[i].udh) == fills[i].fill, "fill bits for %zu octets: %u",
		      fills[i].udh, gsm_fill_bits(fills[i].udh));
}

/* ---- splitting ---- */

/* Builds a text of n copies of unit followed by tail. */
static char *
repeat(const char *unit, size_t n, const char *tail)
{
	struct buf b = {0};

	for (size_t i = 0; i < n; i++)
		buf_puts(&b, unit);
	buf_puts(&b, tail);
	return buf_steal(&b);
}

static const struct {
	const char *unit;
	size_t count;
	const char *tail;
	int coding;
	int segs;	/* -1: refused with max below */
	size_t lens[5]; /* the first segments' lengths */
	size_t max;
} split_cases[] = {
    {"", 0, "", SMS_GSM7, 1, {0}, 4},
    {"a", 1, "", SMS_GSM7, 1, {1}, 4},
    {"a", 160, "", SMS_GSM7, 1, {160}, 4},
    {"a", 161, "", SMS_GSM7, 2, {153, 8}, 4},
    {"a", 158, "€", SMS_GSM7, 1, {160}, 4},		  /* the pair ends exactly at 160 */
    {"a", 159, "€", SMS_GSM7, 2, {153, 8}, 4},		  /* 161 septets */
    {"a", 152, "€bbbbbbbbbb", SMS_GSM7, 2, {152, 12}, 4}, /* the pair would straddle 153 */
    {"a", 151, "€bbbbbbbbbb", SMS_GSM7, 2, {153, 10}, 4}, /* ... here it ends at 153 */
    {"€", 80, "", SMS_GSM7, 1, {160}, 4},
    {"€", 81, "", SMS_GSM7, 2, {152, 10}, 4},
    {"a", 153 * 2, "", SMS_GSM7, 2, {153, 153}, 4},
    {"a", 153 * 3, "", SMS_GSM7, 3, {153, 153, 153}, 4},
    {"a", 153 * 3 + 1, "", SMS_GSM7, 4, {153, 153, 153, 1}, 4},
    {"a", 153 * 3 + 1, "", SMS_GSM7, -1, {0}, 3},
    {"a", 161, "", SMS_GSM7, -1, {0}, 1},
    {"a", 160, "", SMS_GSM7, 1, {160}, 1},
    {"a", 1, "", SMS_GSM7, -1, {0}, 0},
    {"ж", 70, "", SMS_UCS2, 1, {140}, 4},
    {"ж", 71, "", SMS_UCS2, 2, {134, 8}, 4},
    {"ж", 68, "😀", SMS_UCS2, 1, {140}, 4},	  /* the pair ends exactly at 70 units */
    {"ж", 69, "😀", SMS_UCS2, 2, {134, 8}, 4},	  /* 71 units */
    {"ж", 66, "😀жжж", SMS_UCS2, 2, {132, 10}, 4}, /* the pair would straddle 67 */
    {"ж", 65, "😀жжж", SMS_UCS2, 1, {140}, 4},	  /* 70 units: one message */
    {"ж", 65, "😀жжжж", SMS_UCS2, 2, {134, 8}, 4}, /* the pair ends at 67 */
    {"😀", 35, "", SMS_UCS2, 1, {140}, 4},
    {"😀", 36, "", SMS_UCS2, 2, {132, 12}, 4},
    {"ж", 67 * 3, "", SMS_UCS2, 3, {134, 134, 134}, 4},
    {"ж", 67 * 3 + 1, "", SMS_UCS2, 4, {134, 134, 134, 2}, 4},
    {"a", 200, "ő", SMS_UCS2, 3, {134, 134, 134}, 4}, /* one ő makes it all UCS-2 */
    {"Erdős", 1, "", SMS_UCS2, 1, {10}, 4},
    {"€", 1, "ç", SMS_UCS2, 1, {4}, 4},
};

/* Decodes the segments one by one, as a phone would show each part. */
static void
join(int coding, const struct sms_seg *segs, int n, struct buf *b)
{
	for (int i = 0; i < n; i++)
		sms_decode(coding, segs[i].data, segs[i].len, b);
}

static void
test_split(void)
{
	static struct sms_seg segs[SMS_PARTS_MAX + 1];
	struct buf b = {0};

	for (size_t i = 0; i < ARRAY_LEN(split_cases); i++) {
		char *text = repeat(split_cases[i].unit, split_cases[i].count, split_cases[i].tail);
		size_t len = strlen(text);
		int coding = -7, n;

		segs[0].len = 999;
		n = sms_split(text, len, &coding, segs, split_cases[i].max);
		CHECK(n == split_cases[i].segs,
		      "split %zu x \"%s\" + \"%s\": want %d segments, got %d", split_cases[i].count,
		      split_cases[i].unit, split_cases[i].tail, split_cases[i].segs, n);
		if (n < 0) {
			CHECK(coding == -7 && segs[0].len == 999,
			      "split case %zu wrote output on failure", i);
			free(text);
			continue;
		}
		CHECK(coding == split_cases[i].coding, "split case %zu: coding %d", i, coding);
		for (int k = 0; k < n && k < 5; k++)
			CHECK(segs[k].len == split_cases[i].lens[k],
			      "split case %zu segment %d: want %zu, got %zu", i, k,
			      split_cases[i].lens[k], segs[k].len);
		buf_reset(&b);
		join(coding, segs, n, &b);
		CHECK(buf_is(&b, text, len), "split case %zu does not decode back", i);
		free(text);
	}

	/* The most parts an 8-bit count can name, and one septet more. */
	{
		char *text = repeat("a", 153 * SMS_PARTS_MAX, "");
		int coding, n = sms_split(text, strlen(text), &coding, segs, 1000);

		CHECK(n == SMS_PARTS_MAX, "255 full parts: got %d", n);
		free(text);
		text = repeat("a", 153 * SMS_PARTS_MAX, "b");
		n = sms_split(text, strlen(text), &coding, segs, 1000);
		CHECK(n == -1, "256 parts must be refused: got %d", n);
		free(text);
	}
	buf_free(&b);
}

/* ---- the concatenation UDH, 23.040 section 9.2.3.24.1 ---- */

static const struct {
	const char *ud;
	size_t n;
	int ret;
	unsigned ref, total, part;
} udh_cases[] = {
    {"\x05\x00\x03\x2a\x03\x01"
     "text",
     10, 6, 0x2a, 3, 1},
    {"\x05\x00\x03\xff\xff\xff", 6, 6, 0xff, 255, 255},
    {"\x06\x08\x04\x12\x34\x02\x01"
     "x",
     8, 7, 0x1234, 2, 1},
    {"\x06\x08\x04\x12\x34\x02\x02", 7, 7, 0x1234, 2, 2},
    {"\x00"
     "abc",
     4, 1, 0, 0, 0}, /* empty UDH */
    /* another IE first (application port, 16-bit: IEI 05), then concatenation */
    {"\x0b\x05\x04\x0b\x84\x23\xf0\x00\x03\x2a\x02\x01", 12, 12, 0x2a, 2, 1},
    /* concatenation, then an IE of no data */
    {"\x07\x00\x03\x01\x02\x02\x70\x00", 8, 8, 1, 2, 2},
    /* two concatenation IEs: the last one counts */
    {"\x0b\x00\x03\x01\x02\x01\x08\x04\x00\x09\x03\x03", 12, 12, 9, 3, 3},
    /* ignored IEs: a count of 0, a part of 0, a part above the count, a wrong length */
    {"\x05\x00\x03\x2a\x00\x01", 6, 6, 0, 0, 0},
    {"\x05\x00\x03\x2a\x03\x00", 6, 6, 0, 0, 0},
    {"\x05\x00\x03\x2a\x03\x04", 6, 6, 0, 0, 0},
    {"\x06\x08\x04\x12\x34\x02\x03", 7, 7, 0, 0, 0},
    {"\x04\x00\x02\x2a\x03", 5, 5, 0, 0, 0},
    {"\x06\x00\x04\x2a\x03\x01\x00", 7, 7, 0, 0, 0},
    {"\x05\x08\x03\x2a\x03\x01", 6, 6, 0, 0, 0},
    /* a valid IE then an ignored one: the valid one stays */
    {"\x0a\x00\x03\x01\x02\x01\x00\x03\x05\x00\x01", 11, 11, 1, 2, 1},
    /* malformed */
    {"", 0, -1, 0, 0, 0},			      /* no length octet */
    {"\x05\x00\x03\x2a\x03", 5, -1, 0, 0, 0},	      /* UDHL beyond the data */
    {"\xff\x00\x03\x2a\x03\x01", 6, -1, 0, 0, 0},     /* ... far beyond */
    {"\x05\x00\x04\x2a\x03\x01\x00", 7, -1, 0, 0, 0}, /* IE data overruns the UDH */
    {"\x01\x00", 2, -1, 0, 0, 0},		      /* IE header cut by the UDH end */
    {"\x03\x00\x03\x01"
     "abc",
     7, -1, 0, 0, 0}, /* IE data cut by the UDH end */
    {"\x06\x00\x03\x2a\x03\x01\x00"
     "ab",
     9, -1, 0, 0, 0}, /* stray octet after the IE */
};

static void
test_udh(void)
{
	uint8_t out[SMS_CONCAT_UDH];
	unsigned ref, total, part;
	int r;

	for (size_t i = 0; i < ARRAY_LEN(udh_cases); i++) {
		ref = total = part = 777;
		r = sms_udh_parse((const uint8_t *)udh_cases[i].ud, udh_cases[i].n, &ref, &total,
				  &part);
		CHECK(r == udh_cases[i].ret, "udh %s: want %d, got %d",
		      hex(udh_cases[i].ud, udh_cases[i].n), udh_cases[i].ret, r);
		if (r < 0) {
			CHECK(ref == 777 && total == 777 && part == 777,
			      "udh %s: outputs changed on failure",
			      hex(udh_cases[i].ud, udh_cases[i].n));
			continue;
		}
		CHECK(total == udh_cases[i].total, "udh %s: total %u, want %u",
		      hex(udh_cases[i].ud, udh_cases[i].n), total, udh_cases[i].total);
		if (total) {
			CHECK(ref == udh_cases[i].ref && part == udh_cases[i].part,
			      "udh %s: ref %u part %u, want %u %u",
			      hex(udh_cases[i].ud, udh_cases[i].n), ref, part, udh_cases[i].ref,
			      udh_cases[i].part);
		}
	}

	sms_udh_concat(out, 0xab, 3, 2);
	CHECK(memcmp(out, "\x05\x00\x03\xab\x03\x02", 6) == 0, "sms_udh_concat: %s", hex(out, 6));
	r = sms_udh_parse(out, sizeof out, &ref, &total, &part);
	CHECK(r == 6 && ref == 0xab && total == 3 && part == 2, "parse(concat): %d %u %u %u", r,
	      ref, total, part);
}

/* ---- a long mixed text: split, add UDHs, pack, parse, unpack, decode ---- */

static void
test_pipeline(void)
{
	static struct sms_seg segs[8];
	char *text = repeat("Grüße an Ødegaard {€} ", 20, "fin");
	int coding, n = sms_split(text, strlen(text), &coding, segs, ARRAY_LEN(segs));
	struct buf b = {0};

	CHECK(coding == SMS_GSM7 && n == 4, "pipeline: coding %d, %d parts", coding, n);
	for (int i = 0; i < n; i++) {
		uint8_t ud[SMS_OCTETS_MAX], sept[SMS_SEPTETS_MAX];
		unsigned ref, total, part, fill = gsm_fill_bits(SMS_CONCAT_UDH);
		size_t packed, m;
		int start;

		sms_udh_concat(ud, 0x42, (uint8_t)n, (uint8_t)(i + 1));
		packed = gsm_pack(segs[i].data, segs[i].len, fill, ud + SMS_CONCAT_UDH,
				  sizeof ud - SMS_CONCAT_UDH);
		CHECK(packed > 0 && SMS_CONCAT_UDH + packed <= SMS_OCTETS_MAX,
		      "part %d: %zu packed octets", i, packed);
		start = sms_udh_parse(ud, SMS_CONCAT_UDH + packed, &ref, &total, &part);
		CHECK(start == SMS_CONCAT_UDH && total == (unsigned)n && part == (unsigned)i + 1,
		      "part %d: udh parse %d %u/%u", i, start, part, total);
		m = gsm_unpack(ud + start, packed, segs[i].len, fill, sept, sizeof sept);
		CHECK(m == segs[i].len, "part %d: unpacked %zu of %zu", i, m, segs[i].len);
		gsm_decode(sept, m, &b);
	}
	CHECK(buf_is(&b, text, strlen(text)), "pipeline does not give the text back");
	buf_free(&b);
	free(text);
}

int
main(void)
{
	test_tables();
	test_fits();
	test_encode_cap();
	test_decode();
	test_bad_utf8();
	test_ucs2();
	test_sms_decode();
	test_pack();
	test_split();
	test_udh();
	test_pipeline();
	return check_summary("test_gsm");
}
