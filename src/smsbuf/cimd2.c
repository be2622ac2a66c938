/*
 * cimd2: the CIMD2 codec. A packet is STX "ZZ:NNN" TAB { "PPP:value" TAB } [checksum] ETX;
 * parsing checks every byte of it and returns pointers into the caller's bytes, writing
 * appends to a struct buf. The user data conversion goes through GSM 03.38 codes: UTF-8 <->
 * GSM code (main table or ESC + extension table) <-> CIMD characters or "_XX" combinations.
 *
 * Invariant: for every text the encoder accepts, decode(encode(text)) == text, because the
 * encoder emits only forms whose decoding is unambiguous (see cimd2.h on the sources).
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/core.h"
#include "cimd2.h"

#define GSM_ESC 0x1b

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
digits(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* ---- packets ---- */

/*
 * Parses the packet data[0..n) with data[0] == STX and data[n - 1] == ETX and no STX, ETX
 * in between. Layout (CIMD2 3.1 per [KANNEL]; [WIKI]): a two-digit operation code, ':', a
 * three-digit packet number, TAB; parameters as a three-digit code, ':', the value, TAB;
 * then either nothing or two hex digits of checksum before the ETX.
 */
static int
parse_packet(const char *data, size_t n, struct cimd2_packet *p, char *err, size_t errlen)
{
	const char *q = data + 1, *end = data + n - 1, *pos;
	int op, num;

	if (memchr(data, '\0', n)) {
		seterr(err, errlen, "NUL byte in packet");
		return -1;
	}
	if (end - q < 7 || (op = digits(q, 2)) < 0 || q[2] != ':' || (num = digits(q + 3, 3)) < 0 ||
	    q[6] != CIMD2_TAB) {
		seterr(err, errlen, "bad header (want ZZ:NNN and TAB)");
		return -1;
	}
	if (num > 255) {
		seterr(err, errlen, "packet number %d out of range", num);
		return -1;
	}
	p->op = op;
	p->num = num;
	p->nparams = 0;
	p->has_checksum = false;
	pos = q + 7;
	for (;;) {
		const char *tab = memchr(pos, CIMD2_TAB, (size_t)(end - pos));
		struct cimd2_param *prm;
		int code;

		if (!tab)
			break;
		if (tab - pos < 4 || (code = digits(pos, 3)) < 0 || pos[3] != ':') {
			seterr(err, errlen, "bad parameter at offset %zu (want PPP:value)",
			       (size_t)(pos - data));
			return -1;
		}
		if (p->nparams == CIMD2_MAX_PARAMS) {
			seterr(err, errlen, "more than %d parameters", CIMD2_MAX_PARAMS);
			return -1;
		}
		prm = &p->params[p->nparams++];
		prm->code = code;
		prm->value = pos + 4;
		prm->len = (size_t)(tab - pos - 4);
		pos = tab + 1;
	}
	/* pos - 1 is the last TAB: the checksum covers STX up to and including it. */
	if (end - pos == 2) {
		int hi = hex_digit(pos[0]), lo = hex_digit(pos[1]);
		unsigned sum = 0;

		if (hi < 0 || lo < 0) {
			seterr(err, errlen, "checksum is not two hex digits");
			return -1;
		}
		for (const char *c = data; c < pos; c++)
			sum += (unsigned char)*c;
		sum &= 0xff;
		if ((unsigned)(hi << 4 | lo) != sum) {
			seterr(err, errlen,
			       "checksum mismatch: packet says %02X, bytes sum to %02X",
			       (unsigned)(hi << 4 | lo), sum);
			return -1;
		}
		p->has_checksum = true;
	} else if (end != pos) {
		seterr(err, errlen, "bad trailer before ETX (want TAB, optional 2-digit checksum)");
		return -1;
	}
	return 0;
}

long
cimd2_parse(const char *data, size_t len, struct cimd2_packet *p, size_t *skip, char *err,
	    size_t errlen)
{
	size_t scan, e;

	if (len == 0)
		return 0;
	if (data[0] != CIMD2_STX) {
		/* CIMD2 says to ignore anything between packets [KANNEL]; report it once. */
		const char *stx = memchr(data, CIMD2_STX, len);

		*skip = stx ? (size_t)(stx - data) : len;
		seterr(err, errlen, "%zu bytes of garbage before STX", *skip);
		return -1;
	}
	scan = len < CIMD2_MAX_PACKET ? len : CIMD2_MAX_PACKET;
	for (e = 1; e < scan; e++) {
		if (data[e] == CIMD2_ETX || data[e] == CIMD2_STX)
			break;
	}
	if (e == scan) {
		if (len < CIMD2_MAX_PACKET)
			return 0;
		*skip = CIMD2_MAX_PACKET;
		seterr(err, errlen, "packet longer than %d bytes", CIMD2_MAX_PACKET);
		return -1;
	}
	if (data[e] == CIMD2_STX) {
		/* A sender that lost the rest of a packet starts the next one: keep that one. */
		*skip = e;
		seterr(err, errlen, "no ETX before the next STX");
		return -1;
	}
	{
		struct cimd2_packet pk;

		if (parse_packet(data, e + 1, &pk, err, errlen) < 0) {
			*skip = e + 1;
			return -1;
		}
		memcpy(p, &pk, sizeof(pk));
	}
	return (long)(e + 1);
}

const struct cimd2_param *
cimd2_get(const struct cimd2_packet *p, int code)
{
	for (size_t i = 0; i < p->nparams; i++) {
		if (p->params[i].code == code)
			return &p->params[i];
	}
	return NULL;
}

bool
cimd2_value_ok(const char *value, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = value[i];

		if (c == CIMD2_TAB || c == CIMD2_STX || c == CIMD2_ETX || c == '\0')
			return false;
	}
	return true;
}

void
cimd2_begin(struct buf *out, int op, int num)
{
	if (op < 0 || op > 99 || num < 0 || num > 255)
		fatal("cimd2_begin: operation %d or packet number %d out of range", op, num);
	buf_printf(out, "%c%02d:%03d%c", CIMD2_STX, op, num, CIMD2_TAB);
}

void
cimd2_add(struct buf *out, int code, const char *value, size_t len)
{
	if (code < 0 || code > 999 || !cimd2_value_ok(value, len))
		fatal("cimd2_add: parameter %d has a bad code or value", code);
	buf_printf(out, "%03d:", code);
	buf_append(out, value, len);
	buf_append(out, "\t", 1);
}

void
cimd2_add_int(struct buf *out, int code, long value)
{
	char s[24];
	int n = snprintf(s, sizeof(s), "%ld", value);

	cimd2_add(out, code, s, (size_t)n);
}

void
cimd2_end(struct buf *out)
{
	const char *h = buf_head(out);
	size_t n = buf_used(out), start = n;
	unsigned sum = 0;

	while (start > 0 && h[start - 1] != CIMD2_STX)
		start--;
	if (start == 0 || h[n - 1] != CIMD2_TAB)
		fatal("cimd2_end: no packet begun");
	/* Checksum: the bytes from STX up to and including the last TAB, modulo 256, as two
	 * upper-case hex digits [KANNEL packet_set_checksum]. */
	for (size_t i = start - 1; i < n; i++)
		sum += (unsigned char)h[i];
	buf_printf(out, "%02X%c", sum & 0xff, CIMD2_ETX);
}

int
cimd2_next_num(int num)
{
	if (num < 1 || num > 253 || num % 2 == 0)
		return 1;
	return num + 2;
}

/* ---- error codes: [CIMD] 7.3 as listed by [SMSCC] ---- */

static const struct {
	int code;
	const char *text;
} errors[] = {
    {0, "No error"},
    {1, "Unexpected operation"},
    {2, "Syntax error"},
    {3, "Unsupported parameter error"},
    {4, "Connection to MC lost"},
    {5, "No response from MC"},
    {6, "General system error"},
    {7, "Cannot find information"},
    {8, "Parameter formatting error"},
    {9, "Requested operation failed"},
    {10, "Temporary congestion"}, /* jcimd; Kannel retries it: not in [SMSCC] */
    /* login */
    {100, "Invalid login"},
    {101, "Incorrect access type"},
    {102, "Too many users with this login ID"},
    {103, "Login refused by MC"},
    {104, "Invalid window size"},
    {105, "Windowing disabled"},
    {106, "Virtual SMS Centre-based barring"},
    {107, "Invalid subaddr"},
    {108, "Alias account, login refused"},
    /* submit message */
    {300, "Incorrect destination address"},
    {301, "Incorrect number of destination addresses"},
    {302, "Syntax error in user data parameter"},
    {303, "Incorrect bin/head/normal user data parameter combination"},
    {304, "Incorrect dcs parameter usage"},
    {305, "Incorrect validity period parameters usage"},
    {306, "Incorrect originator address usage"},
    {307, "Incorrect PID parameter usage"},
    {308, "Incorrect first delivery parameter usage"},
    {309, "Incorrect reply path usage"},
    {310, "Incorrect status report request parameter usage"},
    {311, "Incorrect cancel enabled parameter usage"},
    {312, "Incorrect priority parameter usage"},
    {313, "Incorrect tariff class parameter usage"},
    {314, "Incorrect service description parameter usage"},
    {315, "Incorrect transport type parameter usage"},
    {316, "Incorrect message type parameter usage"},
    {318, "Incorrect MMs parameter usage"},
    {319, "Incorrect operation timer parameter usage"},
    {320, "Incorrect dialogue ID parameter usage"},
    {321, "Incorrect alpha originator address usage"},
    {322, "Invalid data for alpha numeric originator"},
    /* enquire message status */
    {400, "Incorrect address parameter usage"},
    {401, "Incorrect scts parameter usage"},
    /* delivery request */
    {500, "Incorrect scts parameter usage"},
    {501, "Incorrect mode parameter usage"},
    {502, "Incorrect parameter combination"},
    /* cancel message */
    {600, "Incorrect scts parameter usage"},
    {601, "Incorrect address parameter usage"},
    {602, "Incorrect mode parameter usage"},
    {603, "Incorrect parameter combination"},
    /* set */
    {800, "Changing password failed"},
    {801, "Changing password not allowed"},
    /* get ([KANNEL]; past the end of the [SMSCC] excerpt) */
    {900, "Unsupported item requested"},
};

const char *
cimd2_error_text(int code)
{
	for (size_t i = 0; i < ARRAY_LEN(errors); i++) {
		if (errors[i].code == code)
			return errors[i].text;
	}
	return "unknown error";
}

/* ---- hex (034, 032) ---- */

void
cimd2_hex_encode(const uint8_t *p, size_t n, struct buf *out)
{
	static const char hexd[] = "0123456789ABCDEF";
	char *w;

	if (n > (SIZE_MAX - 1) / 2)
		fatal("cimd2_hex_encode: size overflow");
	w = buf_space(out, 2 * n);
	for (size_t i = 0; i < n; i++) {
		w[2 * i] = hexd[p[i] >> 4];
		w[2 * i + 1] = hexd[p[i] & 0x0f];
	}
	buf_commit(out, 2 * n);
}

long
cimd2_hex_decode(const char *hex, size_t len, uint8_t *out, size_t cap)
{
	if (len % 2 != 0 || len / 2 > cap || len / 2 > (size_t)LONG_MAX)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(len / 2);
}

/* ---- the user data character conversion (033) ---- */

/* GSM 03.38 default alphabet, code -> Unicode; 0x1b (escape) is 0 here. */
static const uint16_t gsm_main[128] = {
    0x0040, 0x00a3, 0x0024, 0x00a5, 0x00e8, 0x00e9, 0x00f9, 0x00ec, /* 0x00 */
    0x00f2, 0x00c7, 0x000a, 0x00d8, 0x00f8, 0x000d, 0x00c5, 0x00e5, /* 0x08 */
    0x0394, 0x005f, 0x03a6, 0x0393, 0x039b, 0x03a9, 0x03a0, 0x03a8, /* 0x10 */
    0x03a3, 0x0398, 0x039e, 0x0000, 0x00c6, 0x00e6, 0x00df, 0x00c9, /* 0x18 */
    0x0020, 0x0021, 0x0022, 0x0023, 0x00a4, 0x0025, 0x0026, 0x0027, /* 0x20 */
    0x0028, 0x0029, 0x002a, 0x002b, 0x002c, 0x002d, 0x002e, 0x002f, /* 0x28 */
    0x0030, 0x0031, 0x0032, 0x0033, 0x0034, 0x0035, 0x0036, 0x0037, /* 0x30 */
    0x0038, 0x0039, 0x003a, 0x003b, 0x003c, 0x003d, 0x003e, 0x003f, /* 0x38 */
    0x00a1, 0x0041, 0x0042, 0x0043, 0x0044, 0x0045, 0x0046, 0x0047, /* 0x40 */
    0x0048, 0x0049, 0x004a, 0x004b, 0x004c, 0x004d, 0x004e, 0x004f, /* 0x48 */
    0x0050, 0x0051, 0x0052, 0x0053, 0x0054, 0x0055, 0x0056, 0x0057, /* 0x50 */
    0x0058, 0x0059, 0x005a, 0x00c4, 0x00d6, 0x00d1, 0x00dc, 0x00a7, /* 0x58 */
    0x00bf, 0x0061, 0x0062, 0x0063, 0x0064, 0x0065, 0x0066, 0x0067, /* 0x60 */
    0x0068, 0x0069, 0x006a, 0x006b, 0x006c, 0x006d, 0x006e, 0x006f, /* 0x68 */
    0x0070, 0x0071, 0x0072, 0x0073, 0x0074, 0x0075, 0x0076, 0x0077, /* 0x70 */
    0x0078, 0x0079, 0x007a, 0x00e4, 0x00f6, 0x00f1, 0x00fc, 0x00e0, /* 0x78 */
};

/* GSM 03.38 extension table (after ESC): code -> Unicode. */
static const struct {
	uint8_t gsm;
	uint16_t ucs;
} gsm_ext[] = {
    {0x0a, 0x000c}, /* page break */
    {0x14, 0x005e}, /* ^ */
    {0x28, 0x007b}, /* { */
    {0x29, 0x007d}, /* } */
    {0x2f, 0x005c}, /* backslash */
    {0x3c, 0x005b}, /* [ */
    {0x3d, 0x007e}, /* ~ */
    {0x3e, 0x005d}, /* ] */
    {0x40, 0x007c}, /* | */
    {0x65, 0x20ac}, /* euro sign */
};

/*
 * The special combinations: '_' and two characters for one GSM code. GSM 0x00-0x23 from
 * [SMSCC] (CIMD2 column), 0x24-0x7F from [KANNEL]; the two agree where both list a code,
 * and [CIMD] Example 22 uses _L- _Y- _e` _u` _i` _o` _C, for £ ¥ è ù ì ò Ç. "_XX" is
 * the escape to the extension table [FAQ]. "_qq" is a second form of '"' (GSM 0x22, which
 * is also sent as itself): accepted, never written.
 */
static const struct {
	char c1, c2;
	uint8_t gsm;
} combos[] = {
    {'O', 'a', 0x00}, {'L', '-', 0x01}, {'Y', '-', 0x03}, {'e', '`', 0x04},  {'e', '\'', 0x05},
    {'u', '`', 0x06}, {'i', '`', 0x07}, {'o', '`', 0x08}, {'C', ',', 0x09},  {'O', '/', 0x0b},
    {'o', '/', 0x0c}, {'A', '*', 0x0e}, {'a', '*', 0x0f}, {'g', 'd', 0x10},  {'-', '-', 0x11},
    {'g', 'f', 0x12}, {'g', 'g', 0x13}, {'g', 'l', 0x14}, {'g', 'o', 0x15},  {'g', 'p', 0x16},
    {'g', 'i', 0x17}, {'g', 's', 0x18}, {'g', 't', 0x19}, {'g', 'x', 0x1a},  {'X', 'X', 0x1b},
    {'A', 'E', 0x1c}, {'a', 'e', 0x1d}, {'s', 's', 0x1e}, {'E', '\'', 0x1f}, {'q', 'q', 0x22},
    {'o', 'x', 0x24}, {'!', '!', 0x40}, {'A', '"', 0x5b}, {'O', '"', 0x5c},  {'N', '~', 0x5d},
    {'U', '"', 0x5e}, {'s', 'o', 0x5f}, {'?', '?', 0x60}, {'a', '"', 0x7b},  {'o', '"', 0x7c},
    {'n', '~', 0x7d}, {'u', '"', 0x7e}, {'a', '`', 0x7f},
};

/* The combination written for GSM code g, or NULL if g is written as one character. */
static const char *
combo_for(uint8_t g, char out[4])
{
	if (g == 0x22)
		return NULL; /* '"' stands for itself */
	for (size_t i = 0; i < ARRAY_LEN(combos); i++) {
		if (combos[i].gsm == g) {
			out[0] = '_';
			out[1] = combos[i].c1;
			out[2] = combos[i].c2;
			out[3] = '\0';
			return out;
		}
	}
	return NULL;
}

/* Appends the CIMD form of GSM code g (0..127). */
static void
put_gsm(struct buf *out, uint8_t g)
{
	char tmp[4];
	const char *c = combo_for(g, tmp);

	if (c) {
		buf_append(out, c, 3);
	} else {
		/* Left: LF, CR, and printable ASCII whose GSM code is its own ('$' is GSM 0x02). */
		char ch = g == 0x02 ? '$' : (char)g;
		buf_append(out, &ch, 1);
	}
}

/* Unicode -> GSM: returns 1 (main table, *g), 2 (ESC + *g), or 0 if not representable. */
static int
to_gsm(uint32_t cp, uint8_t *g)
{
	for (unsigned i = 0; i < 128; i++) {
		if (i != GSM_ESC && gsm_main[i] == cp) {
			*g = (uint8_t)i;
			return 1;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(gsm_ext); i++) {
		if (gsm_ext[i].ucs == cp) {
			*g = gsm_ext[i].gsm;
			return 2;
		}
	}
	return 0;
}

/* Decodes one UTF-8 sequence at s[0..n); returns its length and *cp, or 0 if invalid. */
static size_t
utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, c = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, c = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[k] & 0x3f);
	}
	if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c < 0xe000))
		return 0;
	*cp = c;
	return len;
}

static void
put_utf8(struct buf *out, uint32_t cp)
{
	char s[4];
	size_t n;

	if (cp < 0x80) {
		s[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		s[0] = (char)(0xc0 | cp >> 6);
		s[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		s[0] = (char)(0xe0 | cp >> 12);
		s[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		s[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		s[0] = (char)(0xf0 | cp >> 18);
		s[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		s[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		s[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_append(out, s, n);
}

int
cimd2_text_encode(const char *utf8, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)utf8;
	struct buf tmp = {0};
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		uint8_t g;
		size_t n = utf8_next(s + i, len - i, &cp);
		int kind;

		if (n == 0 || (kind = to_gsm(cp, &g)) == 0) {
			buf_free(&tmp);
			return -1;
		}
		if (kind == 2)
			put_gsm(&tmp, GSM_ESC);
		put_gsm(&tmp, g);
		i += n;
	}
	buf_append(out, buf_head(&tmp), buf_used(&tmp));
	buf_free(&tmp);
	return 0;
}

/* One decoded unit of CIMD user data: a GSM code, or a character taken as it is. */
struct unit {
	bool gsm;
	uint32_t v; /* GSM code (0..127) or Unicode code point */
};

/* Reads the unit at ud[*i] and advances *i. */
static struct unit
next_unit(const unsigned char *ud, size_t len, size_t *i)
{
	unsigned char b = ud[*i];
	struct unit u = {true, 0};

	if (b == '_') {
		if (len - *i >= 3) {
			for (size_t k = 0; k < ARRAY_LEN(combos); k++) {
				if (combos[k].c1 == (char)ud[*i + 1] &&
				    combos[k].c2 == (char)ud[*i + 2]) {
					*i += 3;
					u.v = combos[k].gsm;
					return u;
				}
			}
		}
		/* Not a combination the table knows: the underscore stays an underscore. */
		*i += 1;
		u.gsm = false;
		u.v = '_';
		return u;
	}
	*i += 1;
	switch (b) {
	case '@':
		u.v = 0x00;
		return u;
	case '$':
		u.v = 0x02;
		return u;
	case ']': /* [KANNEL]: ']' is GSM 0x0E (Å), '}' GSM 0x0F (å) */
		u.v = 0x0e;
		return u;
	case '}':
		u.v = 0x0f;
		return u;
	case '\n':
	case '\r':
		u.v = b;
		return u;
	default:
		break;
	}
	if (b >= 0x20 && b < 0x7f) {
		u.v = b; /* the GSM code of the same value ([KANNEL]'s reading) */
		return u;
	}
	u.gsm = false;
	/* 8-bit: ISO-8859-1 ([CIMD] Example 21); C0, DEL and C1 controls are no characters. */
	u.v = b >= 0xa0 ? b : 0xfffd;
	return u;
}

void
cimd2_text_decode(const char *ud, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)ud;
	size_t i = 0;

	while (i < len) {
		struct unit u = next_unit(s, len, &i);

		if (!u.gsm) {
			put_utf8(out, u.v);
			continue;
		}
		if (u.v != GSM_ESC) {
			put_utf8(out, gsm_main[u.v]);
			continue;
		}
		/* ESC: the next GSM code is looked up in the extension table. 3GPP TS 23.038
		 * section 6.2.1.1: a code missing there shows as the main table's character, a
		 * second ESC as a space; a lone ESC shows as a space [FAQ]. */
		{
			size_t save = i;
			struct unit v;
			size_t k;

			if (i == len) {
				put_utf8(out, ' ');
				break;
			}
			v = next_unit(s, len, &i);
			if (!v.gsm) {
				put_utf8(out, ' ');
				i = save;
				continue;
			}
			if (v.v == GSM_ESC) {
				put_utf8(out, ' ');
				continue;
			}
			for (k = 0; k < ARRAY_LEN(gsm_ext); k++) {
				if (gsm_ext[k].gsm == v.v)
					break;
			}
			put_utf8(out, k < ARRAY_LEN(gsm_ext) ? gsm_ext[k].ucs : gsm_main[v.v]);
		}
	}
}
