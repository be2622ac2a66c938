/*
 * test_cimd2: unit tests of the CIMD2 codec: packets of every operation built and parsed
 * back, exact bytes and checksums computed by hand, checksums present, absent and wrong,
 * packets split across reads, garbage, lost ETX, overlong and malformed packets, every
 * character of the user data conversion both ways, hex, packet numbers and error texts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "smsbuf/cimd2.h"

#include "check.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- packets of every operation, written and parsed back ---- */

struct kv {
	int code;
	const char *value;
};

static const struct {
	const char *name;
	int op, num;
	struct kv params[8]; /* ends at code 0 */
} ops[] = {
    {"login", CIMD2_LOGIN, 1, {{CIMD2_P_USER, "baton"}, {CIMD2_P_PASSWORD, "s3cr:t"}}},
    {"login response", CIMD2_LOGIN + CIMD2_RESP, 1, {{0}}},
    {"login refused", CIMD2_LOGIN + CIMD2_RESP, 1, {{CIMD2_P_ERROR_CODE, "100"}}},
    {"logout", CIMD2_LOGOUT, 255, {{0}}},
    {"logout response", CIMD2_LOGOUT + CIMD2_RESP, 255, {{0}}},
    {"submit text",
     CIMD2_SUBMIT,
     3,
     {{CIMD2_P_DEST, "+358401234567"},
      {CIMD2_P_ORIG, "12345"},
      {CIMD2_P_USER_DATA, "Hyv_a\"_a\" p_a\"iv_a\"_a\"_XXe"},
      {CIMD2_P_MORE_MESSAGES, "0"},
      {CIMD2_P_STATUS_REPORT_REQUEST, "14"}}},
    {"submit ucs-2",
     CIMD2_SUBMIT,
     5,
     {{CIMD2_P_DEST, "358401234567"},
      {CIMD2_P_DCS, "8"},
      {CIMD2_P_UDH, "050003010201"},
      {CIMD2_P_USER_DATA_BINARY, "65E5672C"}}},
    {"submit empty text", CIMD2_SUBMIT, 7, {{CIMD2_P_DEST, "1"}, {CIMD2_P_USER_DATA, ""}}},
    {"submit response",
     CIMD2_SUBMIT + CIMD2_RESP,
     3,
     {{CIMD2_P_DEST, "+358401234567"}, {CIMD2_P_SC_TIMESTAMP, "240101120000"}}},
    {"submit refused",
     CIMD2_SUBMIT + CIMD2_RESP,
     5,
     {{CIMD2_P_ERROR_CODE, "300"}, {CIMD2_P_ERROR_TEXT, "Incorrect destination address"}}},
    {"deliver",
     CIMD2_DELIVER,
     2,
     {{CIMD2_P_DEST, "12345"},
      {CIMD2_P_ORIG, "+358401234567"},
      {CIMD2_P_SC_TIMESTAMP, "240101120000"},
      {CIMD2_P_DCS, "0"},
      {CIMD2_P_USER_DATA, "hello _Oa world"}}},
    {"deliver response", CIMD2_DELIVER + CIMD2_RESP, 2, {{0}}},
    {"status report",
     CIMD2_STATUS_REPORT,
     254,
     {{CIMD2_P_DEST, "+358401234567"},
      {CIMD2_P_SC_TIMESTAMP, "240101120000"},
      {CIMD2_P_STATUS_CODE, "4"},
      {CIMD2_P_STATUS_ERROR_CODE, "0"},
      {CIMD2_P_DISCHARGE_TIME, "240101120005"}}},
    {"status report response", CIMD2_STATUS_REPORT + CIMD2_RESP, 254, {{0}}},
    {"alive", CIMD2_ALIVE, 9, {{0}}},
    {"alive response", CIMD2_ALIVE + CIMD2_RESP, 9, {{0}}},
    {"general error",
     CIMD2_GENERAL_ERROR,
     0,
     {{CIMD2_P_ERROR_CODE, "2"}, {CIMD2_P_ERROR_TEXT, "Syntax error"}}},
    {"nack", CIMD2_NACK, 11, {{0}}},
    {"two destinations", CIMD2_SUBMIT, 13, {{CIMD2_P_DEST, "111"}, {CIMD2_P_DEST, "222"}}},
};

static void
test_ops(void)
{
	for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
		struct buf b = {0};
		struct cimd2_packet p;
		size_t skip = 0, n = 0;
		char err[128] = "";
		long r;

		cimd2_begin(&b, ops[i].op, ops[i].num);
		for (; ops[i].params[n].code; n++)
			cimd2_add(&b, ops[i].params[n].code, ops[i].params[n].value,
				  strlen(ops[i].params[n].value));
		cimd2_end(&b);
		r = cimd2_parse(buf_head(&b), buf_used(&b), &p, &skip, err, sizeof(err));
		CHECK(r == (long)buf_used(&b), "%s: parse returned %ld of %zu (%s)", ops[i].name, r,
		      buf_used(&b), err);
		if (r > 0) {
			CHECK(p.op == ops[i].op && p.num == ops[i].num, "%s: header %d:%d",
			      ops[i].name, p.op, p.num);
			CHECK(p.has_checksum, "%s: checksum not seen", ops[i].name);
			CHECK(p.nparams == n, "%s: %zu parameters, want %zu", ops[i].name,
			      p.nparams, n);
			for (size_t k = 0; k < n && k < p.nparams; k++) {
				const char *v = ops[i].params[k].value;
				CHECK(p.params[k].code == ops[i].params[k].code &&
					  p.params[k].len == strlen(v) &&
					  memcmp(p.params[k].value, v, p.params[k].len) == 0,
				      "%s: parameter %zu is %03d:%.*s", ops[i].name, k,
				      p.params[k].code, (int)p.params[k].len, p.params[k].value);
			}
			if (n > 0) {
				const struct cimd2_param *g = cimd2_get(&p, ops[i].params[0].code);
				CHECK(g == &p.params[0], "%s: cimd2_get missed the first",
				      ops[i].name);
			}
			CHECK(cimd2_get(&p, 777) == NULL, "%s: cimd2_get found 777", ops[i].name);
		}
		buf_free(&b);
	}
}

/* Exact bytes; the checksums were summed by hand (python: sum(bytes) & 0xff). */
static void
test_exact_bytes(void)
{
	static const char login[] = "\x02"
				    "01:001\t010:user\t011:secret\t25\x03";
	static const char alive[] = "\x02"
				    "40:005\t3E\x03";
	struct buf b = {0};

	cimd2_begin(&b, CIMD2_LOGIN, 1);
	cimd2_add(&b, CIMD2_P_USER, S("user"));
	cimd2_add(&b, CIMD2_P_PASSWORD, S("secret"));
	cimd2_end(&b);
	CHECK(buf_used(&b) == sizeof(login) - 1 && memcmp(buf_head(&b), login, buf_used(&b)) == 0,
	      "login bytes: %s", buf_head(&b));
	/* A second packet behind the first gets its own checksum. */
	cimd2_begin(&b, CIMD2_ALIVE, 5);
	cimd2_end(&b);
	CHECK(buf_used(&b) == sizeof(login) - 1 + sizeof(alive) - 1 &&
		  memcmp(buf_head(&b) + sizeof(login) - 1, alive, sizeof(alive) - 1) == 0,
	      "second packet bytes");
	buf_reset(&b);
	cimd2_begin(&b, CIMD2_DELIVER + CIMD2_RESP, 2);
	cimd2_add_int(&b, CIMD2_P_ERROR_CODE, 0);
	cimd2_add_int(&b, CIMD2_P_VALIDITY_RELATIVE, -1);
	cimd2_end(&b);
	CHECK(strncmp(buf_head(&b),
		      "\x02"
		      "70:002\t900:0\t050:-1\t",
		      20) == 0,
	      "integers: %s", buf_head(&b));
	buf_free(&b);
}

/* ---- checksums ---- */

static const struct {
	const char *name, *data;
	int ok; /* 1: the whole input is one packet; 0: refused */
	int has_checksum;
} sums[] = {
    {"right",
     "\x02"
     "01:001\t010:user\t011:secret\t25\x03",
     1, 1},
    {"absent",
     "\x02"
     "01:001\t010:user\t011:secret\t\x03",
     1, 0},
    {"lower case",
     "\x02"
     "53:003\t021:358401234567\t060:240101120000\taa\x03",
     1, 1},
    {"upper case",
     "\x02"
     "53:003\t021:358401234567\t060:240101120000\tAA\x03",
     1, 1},
    {"wrong",
     "\x02"
     "01:001\t010:user\t011:secret\t26\x03",
     0, 0},
    {"one digit",
     "\x02"
     "01:001\t010:user\t011:secret\t5\x03",
     0, 0},
    {"three digits",
     "\x02"
     "01:001\t010:user\t011:secret\t255\x03",
     0, 0},
    {"not hex",
     "\x02"
     "01:001\t010:user\t011:secret\tG5\x03",
     0, 0},
    {"no parameters",
     "\x02"
     "99:001\t48\x03",
     1, 1},
};

static void
test_checksums(void)
{
	for (size_t i = 0; i < ARRAY_LEN(sums); i++) {
		struct cimd2_packet p;
		size_t skip = 0, len = strlen(sums[i].data);
		char err[128] = "";
		long r = cimd2_parse(sums[i].data, len, &p, &skip, err, sizeof(err));

		CHECK(r == (sums[i].ok ? (long)len : -1), "checksum %s: returned %ld (%s)",
		      sums[i].name, r, err);
		if (r > 0)
			CHECK(p.has_checksum == (bool)sums[i].has_checksum,
			      "checksum %s: has_checksum %d", sums[i].name, p.has_checksum);
		else
			CHECK(skip == len && err[0], "checksum %s: skip %zu, err '%s'",
			      sums[i].name, skip, err);
	}
}

/* ---- streams: split reads, garbage, lost ETX, overlong ---- */

static void
test_split(void)
{
	static const char two[] = "\x02"
				  "20:002\t023:+358401234567\t033:hi\t\x03"
				  "\x02"
				  "40:004\t\x03";
	size_t first = strchr(two + 1, '\x02') - two;

	for (size_t k = 0; k < first; k++) {
		struct cimd2_packet p;
		size_t skip = 12345;
		long r = cimd2_parse(two, k, &p, &skip, NULL, 0);

		CHECK(r == 0 && skip == 12345, "prefix of %zu bytes: %ld", k, r);
	}
	for (size_t k = first; k <= sizeof(two) - 1; k++) {
		struct cimd2_packet p;
		size_t skip = 0;
		long r = cimd2_parse(two, k, &p, &skip, NULL, 0);

		CHECK(r == (long)first && p.op == CIMD2_DELIVER, "%zu bytes: %ld", k, r);
	}
}

/* Runs a whole stream through cimd2_parse as a session would and prints what it saw:
 * "op:num" per packet, "!skip" per error. */
static void
run_stream(const char *data, size_t len, struct buf *seen)
{
	size_t off = 0;

	while (off < len) {
		struct cimd2_packet p;
		size_t skip = 0;
		char err[128] = "";
		long r = cimd2_parse(data + off, len - off, &p, &skip, err, sizeof(err));

		if (r == 0) {
			buf_printf(seen, "more ");
			break;
		}
		if (r < 0) {
			if (skip == 0 || skip > len - off || !err[0]) {
				buf_printf(seen, "BAD-SKIP ");
				break;
			}
			buf_printf(seen, "!%zu ", skip);
			off += skip;
		} else {
			buf_printf(seen, "%d:%d ", p.op, p.num);
			off += (size_t)r;
		}
	}
}

static const struct {
	const char *name;
	const char *data;
	size_t len;
	const char *want;
} streams[] = {
    {"empty", S(""), ""},
    {"garbage before STX",
     S("xyz\x02"
       "40:001\t\x03"),
     "!3 40:1 "},
    {"garbage only", S("hello"), "!5 "},
    {"stray ETX",
     S("\x03\x03\x02"
       "90:001\t\x03"),
     "!2 90:1 "},
    {"missing ETX, new STX",
     S("\x02"
       "03:001\t021:123\t"
       "\x02"
       "40:003\t\x03"),
     "!16 40:3 "},
    {"two packets",
     S("\x02"
       "40:001\t\x03\x02"
       "90:001\t\x03"),
     "40:1 90:1 "},
    {"bad packet between good",
     S("\x02"
       "40:001\t\x03\x02"
       "4:001\t\x03\x02"
       "40:003\t\x03"),
     "40:1 !8 40:3 "},
    {"incomplete at end",
     S("\x02"
       "40:001\t\x03\x02"
       "40:0"),
     "40:1 more "},
};

static void
test_streams(void)
{
	for (size_t i = 0; i < ARRAY_LEN(streams); i++) {
		struct buf seen = {0};

		run_stream(streams[i].data, streams[i].len, &seen);
		CHECK(strcmp(buf_head(&seen), streams[i].want) == 0, "stream %s: '%s', want '%s'",
		      streams[i].name, buf_head(&seen), streams[i].want);
		buf_free(&seen);
	}
}

/* A submit of exactly n bytes, STX to ETX, without checksum. */
static char *
packet_of(size_t n)
{
	static const char head[] = "\x02"
				   "03:001\t033:";
	char *s = xmalloc(n + 1);
	size_t h = sizeof(head) - 1;

	memcpy(s, head, h);
	memset(s + h, 'a', n - h - 2);
	s[n - 2] = '\t';
	s[n - 1] = '\x03';
	s[n] = '\0';
	return s;
}

static void
test_overlong(void)
{
	struct cimd2_packet p;
	size_t skip;
	char err[128];
	char *s = xmalloc(CIMD2_MAX_PACKET + 10);
	long r;

	/* No ETX: more is needed until the limit, then it is refused. */
	s[0] = '\x02';
	memset(s + 1, 'a', CIMD2_MAX_PACKET + 9);
	r = cimd2_parse(s, CIMD2_MAX_PACKET - 1, &p, &skip, err, sizeof(err));
	CHECK(r == 0, "STX + %d bytes: %ld", CIMD2_MAX_PACKET - 2, r);
	err[0] = '\0';
	r = cimd2_parse(s, CIMD2_MAX_PACKET + 10, &p, &skip, err, sizeof(err));
	CHECK(r == -1 && skip == CIMD2_MAX_PACKET && strstr(err, "longer"),
	      "no ETX past the limit: %ld skip %zu (%s)", r, skip, err);
	free(s);

	s = packet_of(CIMD2_MAX_PACKET);
	r = cimd2_parse(s, CIMD2_MAX_PACKET, &p, &skip, err, sizeof(err));
	CHECK(r == CIMD2_MAX_PACKET && p.params[0].len == CIMD2_MAX_PACKET - 14,
	      "packet of exactly the limit: %ld", r);
	free(s);
	s = packet_of(CIMD2_MAX_PACKET + 1);
	r = cimd2_parse(s, CIMD2_MAX_PACKET + 1, &p, &skip, err, sizeof(err));
	CHECK(r == -1 && skip == CIMD2_MAX_PACKET, "packet one past the limit: %ld skip %zu", r,
	      skip);
	free(s);
}

/* ---- malformed packets: each is refused and skipped whole ---- */

static const struct {
	const char *name, *data;
	size_t len;
} bad[] = {
    {"empty packet", S("\x02\x03")},
    {"one-digit operation", S("\x02"
			      "1:001\t\x03")},
    {"two-digit number", S("\x02"
			   "01:01\t\x03")},
    {"letter in operation", S("\x02"
			      "0a:001\t\x03")},
    {"no colon in header", S("\x02"
			     "01-001\t\x03")},
    {"no TAB after header", S("\x02"
			      "01:001\x03")},
    {"number 256", S("\x02"
		     "01:256\t\x03")},
    {"two-digit parameter", S("\x02"
			      "01:001\t10:x\t\x03")},
    {"four-digit parameter", S("\x02"
			       "01:001\t0100:x\t\x03")},
    {"letter in parameter", S("\x02"
			      "01:001\t01a:x\t\x03")},
    {"no colon in parameter", S("\x02"
				"01:001\t010x\t\x03")},
    {"parameter without value or colon", S("\x02"
					   "01:001\t010\t\x03")},
    {"empty field", S("\x02"
		      "01:001\t\t\x03")},
    {"last parameter without TAB", S("\x02"
				     "01:001\t010:a\x03")},
    {"NUL in value", S("\x02"
		       "01:001\t010:a\0b\t\x03")},
    {"header only, garbage trailer", S("\x02"
				       "40:001\txyz\x03")},
};

static void
test_bad(void)
{
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		struct cimd2_packet p;
		size_t skip = 0;
		char err[128] = "";
		long r = cimd2_parse(bad[i].data, bad[i].len, &p, &skip, err, sizeof(err));

		CHECK(r == -1 && skip == bad[i].len && err[0], "%s: returned %ld skip %zu (%s)",
		      bad[i].name, r, skip, err);
	}
}

static void
test_many_params(void)
{
	struct buf b = {0};
	struct cimd2_packet p;
	size_t skip;
	long r;

	cimd2_begin(&b, CIMD2_SUBMIT, 1);
	for (int i = 0; i < CIMD2_MAX_PARAMS; i++)
		cimd2_add(&b, CIMD2_P_DEST, S("1"));
	cimd2_end(&b);
	r = cimd2_parse(buf_head(&b), buf_used(&b), &p, &skip, NULL, 0);
	CHECK(r > 0 && p.nparams == CIMD2_MAX_PARAMS, "%d parameters: %ld", CIMD2_MAX_PARAMS, r);
	buf_reset(&b);
	cimd2_begin(&b, CIMD2_SUBMIT, 1);
	for (int i = 0; i < CIMD2_MAX_PARAMS + 1; i++)
		cimd2_add(&b, CIMD2_P_DEST, S("1"));
	cimd2_end(&b);
	r = cimd2_parse(buf_head(&b), buf_used(&b), &p, &skip, NULL, 0);
	CHECK(r == -1 && skip == buf_used(&b), "%d parameters: %ld", CIMD2_MAX_PARAMS + 1, r);
	CHECK(!cimd2_value_ok(S("a\tb")) && !cimd2_value_ok(S("\x02")) &&
		  !cimd2_value_ok(S("\x03")) && !cimd2_value_ok(S("a\0")) &&
		  cimd2_value_ok(S("a:b_c \"d\"")),
	      "cimd2_value_ok");
	buf_free(&b);
}

/* ---- the user data character conversion ---- */

/* Both ways: encode(utf8) == cimd and decode(cimd) == utf8. */
static const struct {
	const char *utf8, *cimd;
} text_both[] = {
    /* GSM 03.38 main table, 0x00-0x1F */
    {"@", "_Oa"},
    {"£", "_L-"},
    {"$", "$"},
    {"¥", "_Y-"},
    {"è", "_e`"},
    {"é", "_e'"},
    {"ù", "_u`"},
    {"ì", "_i`"},
    {"ò", "_o`"},
    {"Ç", "_C,"},
    {"\n", "\n"},
    {"Ø", "_O/"},
    {"ø", "_o/"},
    {"\r", "\r"},
    {"Å", "_A*"},
    {"å", "_a*"},
    {"Δ", "_gd"},
    {"_", "_--"},
    {"Φ", "_gf"},
    {"Γ", "_gg"},
    {"Λ", "_gl"},
    {"Ω", "_go"},
    {"Π", "_gp"},
    {"Ψ", "_gi"},
    {"Σ", "_gs"},
    {"Θ", "_gt"},
    {"Ξ", "_gx"},
    {"Æ", "_AE"},
    {"æ", "_ae"},
    {"ß", "_ss"},
    {"É", "_E'"},
    /* 0x20-0x7F */
    {" !\"#%&'()*+,-./0123456789:;<=>?", " !\"#%&'()*+,-./0123456789:;<=>?"},
    {"¤", "_ox"},
    {"¡", "_!!"},
    {"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    {"Ä", "_A\""},
    {"Ö", "_O\""},
    {"Ñ", "_N~"},
    {"Ü", "_U\""},
    {"§", "_so"},
    {"¿", "_??"},
    {"abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz"},
    {"ä", "_a\""},
    {"ö", "_o\""},
    {"ñ", "_n~"},
    {"ü", "_u\""},
    {"à", "_a`"},
    /* the extension table behind "_XX" (Reserved) */
    {"\f", "_XX\n"},
    {"^", "_XX_gl"},
    {"{", "_XX("},
    {"}", "_XX)"},
    {"\\", "_XX/"},
    {"[", "_XX<"},
    {"~", "_XX="},
    {"]", "_XX>"},
    {"|", "_XX_!!"},
    {"€", "_XXe"},
    /* sentences */
    {"", ""},
    {"Hyvää päivää!", "Hyv_a\"_a\" p_a\"iv_a\"_a\"!"},
    {"a_b@c.d [€5]", "a_--b_Oac.d _XX<_XXe5_XX>"},
    {"@£$¥èéùìòÇ", "_Oa_L-$_Y-_e`_e'_u`_i`_o`_C,"}, /* [CIMD] Example 22 */
};

/* Decode only: other spellings, the 8-bit link, and what is not a combination. */
static const struct {
	const char *cimd;
	size_t len;
	const char *utf8;
} text_decode[] = {
    {S("_qq"), "\""},
    {S("@"), "@"},
    {S("]"), "Å"},
    {S("}"), "å"},
    {S("["), "Ä"},
    {S("\\"), "Ö"},
    {S("^"), "Ü"},
    {S("`"), "¿"},
    {S("{"), "ä"},
    {S("|"), "ö"},
    {S("~"), "ü"},
    /* [CIMD] Example 21: ISO-8859-1 over an 8-bit link */
    {S("@\xa3$\xa5\xe8\xe9\xf9\xec\xf2\xc7"), "@£$¥èéùìòÇ"},
    {S("\xc4\xd6\xdc\xe4\xf6\xfc\xff"), "ÄÖÜäöüÿ"},
    {S("\xa0"), "\xc2\xa0"},
    /* unknown combinations stay as they are */
    {S("_zz"), "_zz"},
    {S("_"), "_"},
    {S("a_"), "a_"},
    {S("_a"), "_a"},
    {S("__--"), "__"},
    {S("_XX"), " "},
    {S("_XX_XX"), " "},
    {S("_XXA"), "A"},
    {S("_XX_zz"), " _zz"},
    {S("_XX_Oa"), "@"},
    {S("_xx"), "_xx"},
    /* control characters that are no GSM characters */
    {S("a\x01"
       "b"),
     "a\xef\xbf\xbd"
     "b"},
    {S("\x7f"), "\xef\xbf\xbd"},
    {S("\x85"), "\xef\xbf\xbd"},
    {S("\0"), "\xef\xbf\xbd"},
};

/* Not in the GSM alphabet, or not UTF-8: encode refuses and leaves out alone. */
static const struct {
	const char *name, *utf8;
} text_refused[] = {
    {"a acute", "á"},	      {"c cedilla (small)", "ç"},
    {"CJK", "日本"},	      {"emoji", "😀"},
    {"tab", "a\tb"},	      {"backtick", "`"},
    {"C0 control", "\x01"},   {"invalid byte", "\xff"},
    {"truncated", "\xc3"},    {"surrogate", "\xed\xa0\x80"},
    {"overlong", "\xc0\x80"}, {"cyrillic", "Привет"},
};

static void
test_text(void)
{
	for (size_t i = 0; i < ARRAY_LEN(text_both); i++) {
		struct buf e = {0}, d = {0};
		int r = cimd2_text_encode(text_both[i].utf8, strlen(text_both[i].utf8), &e);

		CHECK(r == 0 && strcmp(buf_head(&e), text_both[i].cimd) == 0,
		      "encode '%s': %d '%s', want '%s'", text_both[i].utf8, r, buf_head(&e),
		      text_both[i].cimd);
		cimd2_text_decode(text_both[i].cimd, strlen(text_both[i].cimd), &d);
		CHECK(strcmp(buf_head(&d), text_both[i].utf8) == 0, "decode '%s': '%s', want '%s'",
		      text_both[i].cimd, buf_head(&d), text_both[i].utf8);
		buf_free(&e);
		buf_free(&d);
	}
	for (size_t i = 0; i < ARRAY_LEN(text_decode); i++) {
		struct buf d = {0};

		cimd2_text_decode(text_decode[i].cimd, text_decode[i].len, &d);
		CHECK(strcmp(buf_head(&d), text_decode[i].utf8) == 0,
		      "decode #%zu: '%s', want '%s'", i, buf_head(&d), text_decode[i].utf8);
		buf_free(&d);
	}
	for (size_t i = 0; i < ARRAY_LEN(text_refused); i++) {
		struct buf e = {0};
		int r;

		buf_puts(&e, "keep");
		r = cimd2_text_encode(text_refused[i].utf8, strlen(text_refused[i].utf8), &e);
		CHECK(r == -1 && strcmp(buf_head(&e), "keep") == 0, "encode %s: %d '%s'",
		      text_refused[i].name, r, buf_head(&e));
		buf_free(&e);
	}
	/* Encoding appends. */
	{
		struct buf e = {0};

		buf_puts(&e, "x");
		CHECK(cimd2_text_encode(S("ä"), &e) == 0 && strcmp(buf_head(&e), "x_a\"") == 0,
		      "encode appends: '%s'", buf_head(&e));
		buf_free(&e);
	}
}

/* ---- hex ---- */

static void
test_hex(void)
{
	static const uint8_t bin[] = {0x00, 0xff, 0x10, 0xab};
	static const uint8_t udh[] = {0x05, 0x00, 0x03, 0x2a, 0x03, 0x01};
	static const struct {
		const char *hex;
		size_t cap;
		long want;
	} refused[] = {
	    {"abc", 8, -1}, {"zz", 8, -1}, {"0g", 8, -1}, {"0011", 1, -1}, {" 00", 8, -1},
	};
	struct buf b = {0};
	uint8_t out[16];
	long n;

	cimd2_hex_encode(bin, sizeof(bin), &b);
	CHECK(strcmp(buf_head(&b), "00FF10AB") == 0, "hex encode: %s", buf_head(&b));
	buf_reset(&b);
	cimd2_hex_encode(bin, 0, &b);
	CHECK(buf_used(&b) == 0, "hex encode of nothing");
	buf_free(&b);

	/* [CIMD] Example 20, "Sending six bytes of binary data": 034:0500032a0301 */
	n = cimd2_hex_decode(S("0500032a0301"), out, sizeof(out));
	CHECK(n == 6 && memcmp(out, udh, 6) == 0, "hex decode of Example 20: %ld", n);
	n = cimd2_hex_decode(S("00FF10ab"), out, sizeof(out));
	CHECK(n == 4 && memcmp(out, bin, 4) == 0, "hex decode mixed case: %ld", n);
	CHECK(cimd2_hex_decode(S(""), out, 0) == 0, "hex decode of nothing");
	CHECK(cimd2_hex_decode(S("0011"), out, 2) == 2, "hex decode to exactly cap");
	for (size_t i = 0; i < ARRAY_LEN(refused); i++)
		CHECK(cimd2_hex_decode(refused[i].hex, strlen(refused[i].hex), out,
				       refused[i].cap) == refused[i].want,
		      "hex decode '%s' cap %zu", refused[i].hex, refused[i].cap);
}

/* ---- packet numbers, error texts ---- */

static void
test_numbers(void)
{
	static const struct {
		int num, next;
	} cases[] = {{1, 3}, {3, 5}, {127, 129}, {253, 255}, {255, 1},
		     {0, 1}, {2, 1}, {254, 1},	 {256, 1},   {-1, 1}};
	int n = 1, seen = 0;

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		CHECK(cimd2_next_num(cases[i].num) == cases[i].next, "next after %d: %d",
		      cases[i].num, cimd2_next_num(cases[i].num));
	/* 128 odd numbers, then back to 001. */
	do {
		CHECK(n % 2 == 1 && n >= 1 && n <= 255, "packet number %d", n);
		n = cimd2_next_num(n);
		seen++;
	} while (n != 1 && seen < 1000);
	CHECK(seen == 128, "cycle of %d numbers", seen);
}

static void
test_errors(void)
{
	static const struct {
		int code;
		const char *text;
	} cases[] = {
	    {0, "No error"},
	    {2, "Syntax error"},
	    {9, "Requested operation failed"},
	    {100, "Invalid login"},
	    {103, "Login refused by MC"},
	    {300, "Incorrect destination address"},
	    {302, "Syntax error in user data parameter"},
	    {801, "Changing password not allowed"},
	    {900, "Unsupported item requested"},
	    {317, "unknown error"},
	    {999, "unknown error"},
	    {-1, "unknown error"},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		CHECK(strcmp(cimd2_error_text(cases[i].code), cases[i].text) == 0, "error %d: '%s'",
		      cases[i].code, cimd2_error_text(cases[i].code));
}

int
main(void)
{
	test_ops();
	test_exact_bytes();
	test_checksums();
	test_split();
	test_streams();
	test_overlong();
	test_bad();
	test_many_params();
	test_text();
	test_hex();
	test_numbers();
	test_errors();
	return check_summary("test_cimd2");
}
