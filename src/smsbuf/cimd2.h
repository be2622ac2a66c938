/*
 * cimd2: the codec of Nokia's CIMD2 protocol (SMSC <-> application), without sockets or
 * session state: packets are parsed from and written to byte buffers, and the user data
 * character conversion is translated to and from UTF-8. Invariant: cimd2_parse() either
 * returns a complete, well-formed packet whose pointers lie inside the caller's bytes, or
 * tells the caller how many bytes to drop, so a stream always makes progress.
 *
 * Sources, and what could be verified from them (the specification itself is Nokia
 * proprietary; only parts of its text were reachable):
 *  [CIMD]    Nokia "CIMD Interface Specification" (Artuse SC5B CD3 DN99255924 issue 5a-0 and
 *            SMS Center 8.0 dn03305755): the "User data (ud)" parameter type section, seen
 *            as text: Example 20 (034 as hex), Examples 21/22 (default character conversion
 *            over 8-bit and 7-bit links) and the reference to chapter 8.1 "Default character
 *            conversion" (table 37). The table itself was NOT reachable.
 *  [SMSCC]   TOPS SMSCC manual, "GSM Character Set" (CIMD2 column, GSM 0x00-0x23) and
 *            "CIMD2 Error Codes" ("as defined in [CIMD] (7.3)").
 *  [FAQ]     Nokia CIMD2 FAQ item 31 as mirrored on infocopter.com: the "_XX" (Reserved)
 *            escape to the GSM 03.38 extension table and its ten combinations.
 *  [KANNEL]  Kannel gw/smsc/smsc_cimd2.c ("based on the CIMD 2 spec, version 2-0"), read
 *            as a second reading of the spec: packet layout (CIMD2 3.1), checksum, packet
 *            numbers, parameter codes, the special combinations for GSM 0x24-0x7F, and the
 *            single characters ']' and '}' that stand for Å and å.
 *  [WIKI]    Wikipedia "CIMD": the example exchange, the TAB after the last parameter,
 *            response = operation + 50.
 * Not verified from any source: whether the table maps other raw 7-bit characters ('[',
 * '\\', '^', '`', '{', '|', '~') to the GSM characters of the same code (Ä Ö Ü ¿ ä ö ü) as
 * [KANNEL] assumes. The encoder therefore never emits them; the decoder follows [KANNEL].
 */
#ifndef BATON_SMSBUF_CIMD2_H
#define BATON_SMSBUF_CIMD2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

#define CIMD2_STX '\x02'
#define CIMD2_ETX '\x03'
#define CIMD2_TAB '\t'

/* Largest packet accepted, STX to ETX inclusive. 033 holds at most 480 characters and 034
 * and 032 at most 280 hex digits each [KANNEL]; with addresses and the rest a real packet
 * stays well under 2 KiB. */
#define CIMD2_MAX_PACKET 4096
/* Most parameters one packet may carry (032/033/034 plus ~30 others at most). */
#define CIMD2_MAX_PARAMS 48

/* Operation codes [KANNEL] [WIKI]; a response is the request's code + CIMD2_RESP. */
enum {
	CIMD2_LOGIN = 1,
	CIMD2_LOGOUT = 2,
	CIMD2_SUBMIT = 3,
	CIMD2_ENQUIRE_STATUS = 4,
	CIMD2_DELIVERY_REQUEST = 5,
	CIMD2_CANCEL = 6,
	CIMD2_SET = 8,
	CIMD2_GET = 9,
	CIMD2_DELIVER = 20,	  /* from the SMSC: deliver message */
	CIMD2_STATUS_REPORT = 23, /* from the SMSC: deliver status report */
	CIMD2_ALIVE = 40,	  /* from either side */
	CIMD2_RESP = 50,
	CIMD2_GENERAL_ERROR = 98, /* general error response, not tied to a request */
	CIMD2_NACK = 99,	  /* packet not understood (syntax, checksum, number) */
};

/* Parameter codes, three decimal digits on the wire [KANNEL]. */
enum {
	CIMD2_P_USER = 10,
	CIMD2_P_PASSWORD = 11,
	CIMD2_P_DEST = 21,
	CIMD2_P_ORIG = 23,
	CIMD2_P_ORIG_IMSI = 26,
	CIMD2_P_ALPHA_ORIG = 27,
	CIMD2_P_ORIG_VISITED_MSC = 28,
	CIMD2_P_DCS = 30,
	CIMD2_P_UDH = 32,
	CIMD2_P_USER_DATA = 33,
	CIMD2_P_USER_DATA_BINARY = 34,
	CIMD2_P_MORE_MESSAGES = 44,
	CIMD2_P_VALIDITY_RELATIVE = 50,
	CIMD2_P_VALIDITY_ABSOLUTE = 51,
	CIMD2_P_PROTOCOL_ID = 52,
	CIMD2_P_FIRST_DELIVERY_RELATIVE = 53,
	CIMD2_P_FIRST_DELIVERY_ABSOLUTE = 54,
	CIMD2_P_REPLY_PATH = 55,
	CIMD2_P_STATUS_REPORT_REQUEST = 56,
	CIMD2_P_CANCEL_ENABLED = 58,
	CIMD2_P_CANCEL_MODE = 59,
	CIMD2_P_SC_TIMESTAMP = 60, /* yymmddhhmmss, the SMSC's local time */
	CIMD2_P_STATUS_CODE = 61,
	CIMD2_P_STATUS_ERROR_CODE = 62,
	CIMD2_P_DISCHARGE_TIME = 63,
	CIMD2_P_TARIFF_CLASS = 64,
	CIMD2_P_SERVICE_DESCRIPTION = 65,
	CIMD2_P_MESSAGE_COUNT = 66,
	CIMD2_P_PRIORITY = 67,
	CIMD2_P_DELIVERY_REQUEST_MODE = 68,
	CIMD2_P_SC_ADDRESS = 69,
	CIMD2_P_GET_PARAMETER = 500,
	CIMD2_P_SC_TIME = 501,
	CIMD2_P_ERROR_CODE = 900,
	CIMD2_P_ERROR_TEXT = 901,
};

/* Data coding scheme (030) for UCS-2 in 034 (GSM 03.38 section 4). */
#define CIMD2_DCS_UCS2 8

struct cimd2_param {
	int code;
	const char *value; /* points into the parsed bytes; not NUL-terminated */
	size_t len;
};

struct cimd2_packet {
	int op;	 /* 0..99 */
	int num; /* 0..255 */
	struct cimd2_param params[CIMD2_MAX_PARAMS];
	size_t nparams;
	bool has_checksum; /* a checksum was present (and matched) */
};

/*
 * Looks for one packet at the start of data. Returns the number of bytes it occupies (> 0)
 * with *p filled (pointers into data, valid while data is), 0 if more bytes are needed
 * (nothing written), or -1 if the bytes before the next STX are garbage or the packet is
 * malformed (bad header, bad parameter, checksum mismatch, no ETX before the next STX,
 * longer than CIMD2_MAX_PACKET), with a one-line reason in err; the caller then drops
 * *skip (>= 1) bytes and tries again. *skip is written only when -1 is returned.
 */
long cimd2_parse(const char *data, size_t len, struct cimd2_packet *p, size_t *skip, char *err,
		 size_t errlen);
/* Returns the first parameter with this code, or NULL. */
const struct cimd2_param *cimd2_get(const struct cimd2_packet *p, int code);

/*
 * Writing a packet: begin (STX, "ZZ:NNN", TAB), add parameters ("PPP:value", TAB), end
 * (two upper-case hex digits of checksum, ETX). Preconditions, asserted: 0 <= op <= 99,
 * 0 <= num <= 255, 0 <= code <= 999, and no value holds TAB, STX, ETX or NUL (check peer-
 * or config-supplied values with cimd2_value_ok() first). cimd2_end() finds the packet's
 * start as the last STX in out, so out may already hold earlier packets.
 */
void cimd2_begin(struct buf *out, int op, int num);
void cimd2_add(struct buf *out, int code, const char *value, size_t len);
void cimd2_add_int(struct buf *out, int code, long value);
void cimd2_end(struct buf *out);
/* True if value may be written as a parameter value. */
bool cimd2_value_ok(const char *value, size_t len);

/*
 * The user data character conversion (parameter 033) <-> UTF-8. encode writes only the
 * unambiguous 7-bit forms (plain ASCII where it stands for itself, the "_XX" special
 * combinations otherwise) and returns 0, or -1 if a character is not in the GSM 03.38
 * default alphabet or its extension table, or the input is not UTF-8 (out unchanged; the
 * caller then sends UCS-2 in 034 with DCS 8). decode never fails: unknown combinations are
 * kept literally, bytes >= 0x80 are ISO-8859-1 ([CIMD] Example 21), and control characters
 * other than LF and CR become U+FFFD, so the result is always valid UTF-8.
 */
int cimd2_text_encode(const char *utf8, size_t len, struct buf *out);
void cimd2_text_decode(const char *ud, size_t len, struct buf *out);

/* Hex for parameters 034 (user data binary) and 032 (UDH). encode writes upper case;
 * decode accepts either case and returns the number of bytes, or -1 if hex is odd-length,
 * holds a non-hex digit or needs more than cap bytes (out then unspecified). */
void cimd2_hex_encode(const uint8_t *p, size_t n, struct buf *out);
long cimd2_hex_decode(const char *hex, size_t len, uint8_t *out, size_t cap);

/* The next client packet number after num: odd, 1..255 wrapping (255 -> 1); anything that
 * is not an odd number in 1..253 gives 1. The SMSC numbers its own requests even, 0..254;
 * a response carries its request's number [KANNEL]. */
int cimd2_next_num(int num);

/* Text for an error code (parameter 900) from [CIMD] section 7.3 as listed by [SMSCC], or
 * "unknown error". */
const char *cimd2_error_text(int code);

#endif
