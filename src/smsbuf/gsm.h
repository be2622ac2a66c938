/*
 * gsm: the text layer of baton-smsbuf. Converts UTF-8 to SMS user data and back: the GSM 7-bit
 * default alphabet and its extension table (3GPP TS 23.038 section 6.2.1), septet packing
 * (23.038 section 6.1.2.1.1), UCS-2/UTF-16BE (23.038 section 6.2.3), ISO-8859-1, and the
 * splitting of long texts into concatenated short messages (TS 23.040 section 9.2.3.24.1).
 *
 * Invariant: encoders accept only valid UTF-8 and only write what decodes back to the same text
 * (decode(encode(x)) == x); decoders accept any bytes, never fail and always produce valid UTF-8.
 */
#ifndef BATON_SMSBUF_GSM_H
#define BATON_SMSBUF_GSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

/* SMPP 3.4 data_coding values (SMPP 3.4 section 5.2.19) this module understands. */
enum sms_coding {
	SMS_GSM7 = 0,	/* SMSC default alphabet: here the GSM 7-bit default alphabet, unpacked */
	SMS_IA5 = 1,	/* IA5 (CCITT T.50) = US-ASCII */
	SMS_LATIN1 = 3, /* ISO-8859-1 */
	SMS_BINARY = 4, /* 8-bit binary */
	SMS_UCS2 = 8,	/* UCS-2, read and written as UTF-16BE */
};

#define GSM_ESC		 0x1b /* escape to the extension table (23.038 section 6.2.1.1) */
#define SMS_SEPTETS_MAX	 160  /* septets in one short message without UDH */
#define SMS_OCTETS_MAX	 140  /* octets of TP-UD in one short message */
#define SMS_CONCAT_UDH	 6   /* octets of the 8-bit-reference concatenation UDH, length octet too */
#define SMS_SEPTETS_PART 153 /* septets per part after that UDH: (140 - 6) * 8 / 7 */
#define SMS_OCTETS_PART	 134 /* octets per part after that UDH: 140 - 6 */
#define SMS_PARTS_MAX	 255 /* the one-octet part count of 23.040 section 9.2.3.24.1 */

/*
 * Returns true if the UTF-8 text is valid and every character is in the GSM 7-bit default
 * alphabet or its extension table. Only exact mappings count: 'ç', Greek 'Α' or a fancy quote
 * do not fit (they would not come back unchanged), so such texts go as UCS-2.
 */
bool gsm_fits(const char *utf8, size_t len);

/*
 * UTF-8 -> unpacked septets, one per byte (0x00-0x7F); extension characters are written as
 * GSM_ESC followed by their code. Returns the number of septets written, or -1 if a character
 * does not fit, the UTF-8 is invalid or cap is too small (out unchanged then).
 */
int gsm_encode(const char *utf8, size_t len, uint8_t *out, size_t cap);

/*
 * Unpacked septets -> UTF-8 appended to out. Never fails. Bytes above 0x7F are masked to
 * 7 bits. GSM_ESC followed by a code not in the extension table decodes as the base character
 * of that code; GSM_ESC GSM_ESC and a trailing lone GSM_ESC decode as a space (23.038 section
 * 6.2.1.1, notes to the extension table). The output may hold LF, CR and FF (U+000C, from the
 * extension table's page break); callers putting it into XML must deal with FF.
 */
void gsm_decode(const uint8_t *sept, size_t n, struct buf *out);

/*
 * Number of fill bits (0-6) between a UDH of udh_octets octets (its length octet included)
 * and the first septet, so that the text starts on a septet boundary (23.040 section 9.2.3.24).
 */
unsigned gsm_fill_bits(size_t udh_octets);

/*
 * Packs n septets (bit 7 of each ignored) LSB first (23.038 section 6.1.2.1.1) after `fill`
 * zero fill bits (0-6) at the low end of the first octet. Returns the number of octets written,
 * ceil((fill + 7n) / 8), or 0 if that exceeds cap or fill > 6 (out unchanged then).
 */
size_t gsm_pack(const uint8_t *sept, size_t n, unsigned fill, uint8_t *out, size_t cap);

/*
 * Unpacks up to nsept septets from nbytes packed octets whose first `fill` bits (0-6) are fill.
 * Never reads beyond nbytes: returns the number of septets written to out, the least of nsept,
 * cap and the septets nbytes holds; 0 if fill > 6.
 */
size_t gsm_unpack(const uint8_t *packed, size_t nbytes, size_t nsept, unsigned fill, uint8_t *out,
		  size_t cap);

/*
 * UTF-8 -> UCS-2 big endian. Characters beyond the BMP are written as UTF-16 surrogate pairs,
 * which every current handset reads. Returns the number of octets written, or -1 if the UTF-8
 * is invalid or cap is too small (out unchanged then).
 */
int ucs2_encode(const char *utf8, size_t len, uint8_t *out, size_t cap);

/*
 * UCS-2/UTF-16BE -> UTF-8 appended to out. Never fails: a lone surrogate and an odd trailing
 * octet each become U+FFFD. U+0000 and other control characters are passed through.
 */
void ucs2_decode(const uint8_t *p, size_t n, struct buf *out);

/* ISO-8859-1 octets -> UTF-8 appended to out (SMPP data_coding 3). Never fails. */
void latin1_decode(const uint8_t *p, size_t n, struct buf *out);

/*
 * Decodes user data of the given SMPP data_coding to UTF-8 appended to out: SMS_GSM7 as
 * unpacked septets, SMS_IA5 as ASCII (octets above 0x7F become U+FFFD), SMS_LATIN1, SMS_UCS2;
 * SMS_BINARY and every other coding as upper-case hex ("0A1B"). Never fails.
 */
void sms_decode(int coding, const uint8_t *p, size_t n, struct buf *out);

/* One segment of a text split for sending: user data without UDH (septets or UCS-2 octets). */
struct sms_seg {
	uint8_t data[SMS_SEPTETS_MAX];
	size_t len; /* septets (SMS_GSM7) or octets (SMS_UCS2) */
};

/*
 * Splits UTF-8 text into segments: SMS_GSM7 (unpacked septets) if gsm_fits(), else SMS_UCS2.
 * One segment if it fits in one short message (160 septets or 140 octets = 70 UTF-16 units);
 * otherwise segments sized for the 6-octet concatenation UDH (153 septets or 134 octets = 67
 * units), never splitting an escape pair or a surrogate pair (23.040 section 9.2.3.24.1).
 * Empty text is one empty SMS_GSM7 segment. Returns the number of segments and writes the
 * coding to *coding and the segments to segs; returns -1 if the UTF-8 is invalid or the text
 * needs more than max segments (max above SMS_PARTS_MAX counts as SMS_PARTS_MAX); outputs are
 * unchanged on failure.
 */
int sms_split(const char *utf8, size_t len, int *coding, struct sms_seg *segs, size_t max);

/* Writes the 6-octet UDH for part `part` (1-based) of `total` with 8-bit reference ref:
 * 05 00 03 ref total part (23.040 section 9.2.3.24.1). */
void sms_udh_concat(uint8_t out[SMS_CONCAT_UDH], uint8_t ref, uint8_t total, uint8_t part);

/*
 * Parses the UDH at the start of user data ud[0..n) (ud[0] = UDHL, the length of the rest).
 * Returns the UDH's total length in octets including the length octet (where the text starts),
 * or -1 if it is malformed: no length octet, length beyond the data, an IE header or IE data
 * overrunning the UDH (outputs unchanged then). On success, if a usable concatenation IE is
 * present (IEI 0x00 with an 8-bit or 0x08 with a 16-bit reference), sets *ref, *total and
 * *part from the last one; otherwise sets *total = 0 (and *ref = *part = 0). A concatenation IE
 * with the wrong length, a total of 0, or a part of 0 or above the total is ignored, as
 * 23.040 section 9.2.3.24.1 tells the receiving entity to do.
 */
int sms_udh_parse(const uint8_t *ud, size_t n, unsigned *ref, unsigned *total, unsigned *part);

#endif
