/*
 * test_smpp: unit tests of the SMPP 3.4 PDU codec (smsbuf/smpp.c) against the SMPP v3.4
 * specification, issue 1.2: exact bytes of the PDUs baton sends and receives, written out by
 * hand from the spec's tables, deliver_sm with TLVs, responses with and without a body, and
 * corrupt input: every truncation, command_length mismatches, unterminated and overlong
 * C-Octet Strings, overrunning sm_length and TLV lengths. Invariant of every decode here: the
 * PDU lies in a heap block of exactly its length, so ASan catches any read past it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "smsbuf/smpp.h"

#include "check.h"

/* ---- a hand builder for PDUs, independent of the codec ---- */

static void
b_u8(struct buf *b, unsigned v)
{
	uint8_t x = (uint8_t)v;
	buf_append(b, &x, 1);
}

static void
b_u16(struct buf *b, unsigned v)
{
	b_u8(b, v >> 8);
	b_u8(b, v);
}

static void
b_u32(struct buf *b, uint32_t v)
{
	b_u16(b, v >> 16);
	b_u16(b, v & 0xffff);
}

/* A C-Octet String: the text and its NUL (3.1). */
static void
b_cstr(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s) + 1);
}

static void
b_header(struct buf *b, uint32_t id, uint32_t status, uint32_t seq)
{
	b_u32(b, 0); /* command_length, set by b_finish */
	b_u32(b, id);
	b_u32(b, status);
	b_u32(b, seq);
}

static void
b_tlv(struct buf *b, unsigned tag, const void *v, size_t len)
{
	b_u16(b, tag);
	b_u16(b, (unsigned)len);
	buf_append(b, v, len);
}

/* Writes the real length into command_length (3.2: it counts the whole PDU). */
static void
b_finish(struct buf *b)
{
	uint8_t *h = (uint8_t *)b->data + b->off;
	size_t n = buf_used(b);

	h[0] = (uint8_t)(n >> 24);
	h[1] = (uint8_t)(n >> 16);
	h[2] = (uint8_t)(n >> 8);
	h[3] = (uint8_t)n;
}

/*
 * Decodes the first len bytes of data from a heap copy of exactly len bytes, with the copy's
 * command_length set to len when fix_len, so ASan sees any read past the end.
 */
static int
decode_exact(const void *data, size_t len, bool fix_len, struct smpp_pdu *p, char *err,
	     size_t errlen)
{
	uint8_t *copy = xmalloc(len ? len : 1);
	int rc;

	memcpy(copy, data, len);
	if (fix_len && len >= 4) {
		copy[0] = (uint8_t)(len >> 24);
		copy[1] = (uint8_t)(len >> 16);
		copy[2] = (uint8_t)(len >> 8);
		copy[3] = (uint8_t)len;
	}
	err[0] = '\0';
	rc = smpp_decode(copy, len, p, err, errlen);
	/* p->payload points into the copy; the callers here only compare it before this. */
	if (rc == 0 && p->payload) {
		CHECK(p->payload >= copy && p->payload + p->payload_len <= copy + len,
		      "payload outside the PDU");
		p->payload = NULL; /* the copy is going away */
	}
	free(copy);
	return rc;
}

/* ---- smpp_pdu_len (3.2: command_length counts the header too) ---- */

static void
test_pdu_len(void)
{
	static const struct {
		uint8_t b[4];
		size_t avail;
		long want;
	} t[] = {
	    {{0, 0, 0, 16}, 0, 0},
	    {{0, 0, 0, 16}, 1, 0},
	    {{0, 0, 0, 16}, 3, 0},
	    {{0, 0, 0, 16}, 4, 16},
	    {{0, 0, 0, 15}, 4, -1},
	    {{0, 0, 0, 0}, 4, -1},
	    {{0, 1, 0, 0}, 4, 65536},
	    {{0, 1, 0, 1}, 4, -1},
	    {{0xff, 0xff, 0xff, 0xff}, 4, -1},
	    {{0x80, 0, 0, 16}, 4, -1},
	    {{0, 0, 0x01, 0x2c}, 4, 300},
	};

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		long got = smpp_pdu_len(t[i].b, t[i].avail);
		CHECK(got == t[i].want, "pdu_len %02x%02x%02x%02x avail %zu: %ld, want %ld",
		      t[i].b[0], t[i].b[1], t[i].b[2], t[i].b[3], t[i].avail, got, t[i].want);
	}
}

/* ---- exact bytes, written out from the spec's tables ---- */

/* 4.1.5 bind_transceiver: system_id "baton", password "secret", system_type "",
 * interface_version 0x34 (5.2.4), addr_ton 1, addr_npi 1, address_range "". */
static const uint8_t bind_trx_bytes[] = {
    0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x01, 'b',  'a',	't',  'o',  'n',  0x00, 's',  'e',
    'c',  'r',	'e',  't',  0x00, 0x00, 0x34, 0x01, 0x01, 0x00,
};

/*
 * 4.4.1 submit_sm: source_addr_ton 5 (alphanumeric) "baton", dest_addr_ton 1 npi 1
 * "46701234567", esm_class 0x40 (5.2.12: UDHI, the short_message starts with a UDH),
 * registered_delivery 1, and short_message = the 6-octet UDH of a concatenated message
 * (05 00 03 ref=0x2A total=2 seq=1, 3GPP TS 23.040 9.2.3.24.1) followed by "hello".
 */
static const uint8_t submit_udh_bytes[] = {
    0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x07, 0x00, 0x05, 0x00, 'b',  'a',	't',  'o',  'n',  0x00, 0x01, 0x01, '4',  '6',	'7',
    '0',  '1',	'2',  '3',  '4',  '5',	'6',  '7',  0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x0b, 0x05, 0x00, 0x03, 0x2a, 0x02, 0x01, 'h',  'e',  'l',  'l',	'o',
};

/* 4.4.2 submit_sm_resp: message_id "0A1B2C". */
static const uint8_t submit_resp_bytes[] = {
    0x00, 0x00, 0x00, 0x17, 0x80, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x07, '0',  'A',	'1',  'B',  '2',  'C',	0x00,
};

/* 4.6.2 deliver_sm_resp: message_id unused, set to NULL: one NUL octet. */
static const uint8_t deliver_resp_bytes[] = {
    0x00, 0x00, 0x00, 0x11, 0x80, 0x00, 0x00, 0x05, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
};

/* 4.1.6 bind_transceiver_resp: system_id "SMSC". */
static const uint8_t bind_trx_resp_bytes[] = {
    0x00, 0x00, 0x00, 0x15, 0x80, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 'S',	'M',  'S',  'C',  0x00,
};

static void
fill_bind(struct smpp_pdu *p)
{
	memset(p, 0, sizeof *p);
	p->command_id = SMPP_BIND_TRANSCEIVER;
	p->sequence = 1;
	strcpy(p->system_id, "baton");
	strcpy(p->password, "secret");
	p->interface_version = SMPP_VERSION;
	p->addr_ton = 1;
	p->addr_npi = 1;
}

static void
fill_submit_udh(struct smpp_pdu *p)
{
	static const uint8_t sm[] = {0x05, 0x00, 0x03, 0x2a, 0x02, 0x01, 'h', 'e', 'l', 'l', 'o'};

	memset(p, 0, sizeof *p);
	p->command_id = SMPP_SUBMIT_SM;
	p->sequence = 7;
	p->source_ton = 5;
	strcpy(p->source_addr, "baton");
	p->dest_ton = 1;
	p->dest_npi = 1;
	strcpy(p->dest_addr, "46701234567");
	p->esm_class = SMPP_ESM_UDHI;
	p->registered_delivery = 1;
	memcpy(p->short_message, sm, sizeof sm);
	p->sm_length = sizeof sm;
}

static void
fill_submit_resp(struct smpp_pdu *p)
{
	memset(p, 0, sizeof *p);
	p->command_id = SMPP_SUBMIT_SM | SMPP_RESP;
	p->sequence = 7;
	strcpy(p->message_id, "0A1B2C");
}

static void
fill_deliver_resp(struct smpp_pdu *p)
{
	memset(p, 0, sizeof *p);
	p->command_id = SMPP_DELIVER_SM | SMPP_RESP;
	p->sequence = 0x100;
}

static void
fill_bind_resp(struct smpp_pdu *p)
{
	memset(p, 0, sizeof *p);
	p->command_id = SMPP_BIND_TRANSCEIVER | SMPP_RESP;
	p->sequence = 1;
	strcpy(p->system_id, "SMSC");
}

/* Compares what smpp_encode writes for p's command_id; returns a field name or NULL. */
static const char *
pdu_diff(const struct smpp_pdu *a, const struct smpp_pdu *b)
{
	if (a->command_id != b->command_id || a->command_status != b->command_status ||
	    a->sequence != b->sequence)
		return "header";
	switch (a->command_id) {
	case SMPP_BIND_RECEIVER:
	case SMPP_BIND_TRANSMITTER:
	case SMPP_BIND_TRANSCEIVER:
		if (strcmp(a->system_id, b->system_id) || strcmp(a->password, b->password) ||
		    strcmp(a->system_type, b->system_type) ||
		    strcmp(a->address_range, b->address_range))
			return "bind strings";
		if (a->interface_version != b->interface_version || a->addr_ton != b->addr_ton ||
		    a->addr_npi != b->addr_npi)
			return "bind integers";
		return NULL;
	case SMPP_SUBMIT_SM:
	case SMPP_DELIVER_SM:
		if (strcmp(a->service_type, b->service_type) ||
		    strcmp(a->source_addr, b->source_addr) || strcmp(a->dest_addr, b->dest_addr) ||
		    strcmp(a->schedule_delivery_time, b->schedule_delivery_time) ||
		    strcmp(a->validity_period, b->validity_period))
			return "message strings";
		if (a->source_ton != b->source_ton || a->source_npi != b->source_npi ||
		    a->dest_ton != b->dest_ton || a->dest_npi != b->dest_npi ||
		    a->esm_class != b->esm_class || a->protocol_id != b->protocol_id ||
		    a->priority_flag != b->priority_flag ||
		    a->registered_delivery != b->registered_delivery ||
		    a->replace_if_present != b->replace_if_present ||
		    a->data_coding != b->data_coding ||
		    a->sm_default_msg_id != b->sm_default_msg_id)
			return "message integers";
		if (a->sm_length != b->sm_length ||
		    memcmp(a->short_message, b->short_message, a->sm_length))
			return "short_message";
		return NULL;
	case SMPP_SUBMIT_SM | SMPP_RESP:
	case SMPP_DELIVER_SM | SMPP_RESP:
		return strcmp(a->message_id, b->message_id) ? "message_id" : NULL;
	case SMPP_BIND_RECEIVER | SMPP_RESP:
	case SMPP_BIND_TRANSMITTER | SMPP_RESP:
	case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
		return strcmp(a->system_id, b->system_id) ? "system_id" : NULL;
	default:
		return NULL;
	}
}

static const struct {
	const char *name;
	void (*fill)(struct smpp_pdu *);
	const uint8_t *bytes;
	size_t len;
} exact[] = {
    {"bind_transceiver (4.1.5)", fill_bind, bind_trx_bytes, sizeof bind_trx_bytes},
    {"submit_sm with UDH (4.4.1)", fill_submit_udh, submit_udh_bytes, sizeof submit_udh_bytes},
    {"submit_sm_resp (4.4.2)", fill_submit_resp, submit_resp_bytes, sizeof submit_resp_bytes},
    {"deliver_sm_resp (4.6.2)", fill_deliver_resp, deliver_resp_bytes, sizeof deliver_resp_bytes},
    {"bind_transceiver_resp (4.1.6)", fill_bind_resp, bind_trx_resp_bytes,
     sizeof bind_trx_resp_bytes},
};

static void
test_exact_bytes(void)
{
	for (size_t i = 0; i < ARRAY_LEN(exact); i++) {
		struct smpp_pdu want, got;
		struct buf b = {0};
		char err[128];
		const char *d;

		exact[i].fill(&want);
		buf_puts(&b, "junk"); /* encode appends: what is already there stays */
		smpp_encode(&want, &b);
		CHECK(buf_used(&b) == exact[i].len + 4 && memcmp(b.data, "junk", 4) == 0 &&
			  memcmp(b.data + 4, exact[i].bytes, exact[i].len) == 0,
		      "%s: encoded %zu bytes differ from the spec's %zu", exact[i].name,
		      buf_used(&b) - 4, exact[i].len);
		CHECK(smpp_pdu_len(exact[i].bytes, exact[i].len) == (long)exact[i].len,
		      "%s: pdu_len", exact[i].name);
		CHECK(decode_exact(exact[i].bytes, exact[i].len, false, &got, err, sizeof err) == 0,
		      "%s: decode failed: %s", exact[i].name, err);
		d = pdu_diff(&want, &got);
		CHECK(d == NULL, "%s: decoded %s differs", exact[i].name, d);
		CHECK(got.message_state == -1 && got.sar_ref == -1 && got.sar_total == -1 &&
			  got.sar_seq == -1 && got.payload == NULL,
		      "%s: TLV fields set without TLVs", exact[i].name);
		buf_free(&b);
	}

	/* The UDH is the message's first octets; the codec passes it through untouched. */
	{
		struct smpp_pdu p;
		char err[128];
		int rc = decode_exact(submit_udh_bytes, sizeof submit_udh_bytes, false, &p, err,
				      sizeof err);
		CHECK(rc == 0 && (p.esm_class & SMPP_ESM_UDHI) && p.sm_length == 11 &&
			  p.short_message[0] == 5 && p.short_message[3] == 0x2a &&
			  memcmp(p.short_message + 6, "hello", 5) == 0,
		      "submit_sm: UDH and text not as sent");
	}

	/* Header-only PDUs (4.3.1 generic_nack, 4.11.1 enquire_link, 4.2.2 unbind_resp). */
	static const struct {
		uint32_t id, status, seq;
		uint8_t bytes[16];
	} hdr[] = {
	    {SMPP_GENERIC_NACK,
	     SMPP_RINVCMDID,
	     9,
	     {0, 0, 0, 0x10, 0x80, 0, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0x09}},
	    {SMPP_ENQUIRE_LINK,
	     0,
	     0x7fffffff,
	     {0, 0, 0, 0x10, 0, 0, 0, 0x15, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff}},
	    {SMPP_ENQUIRE_LINK | SMPP_RESP,
	     0,
	     2,
	     {0, 0, 0, 0x10, 0x80, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 0x02}},
	    {SMPP_UNBIND | SMPP_RESP,
	     0,
	     3,
	     {0, 0, 0, 0x10, 0x80, 0, 0, 0x06, 0, 0, 0, 0, 0, 0, 0, 0x03}},
	};
	for (size_t i = 0; i < ARRAY_LEN(hdr); i++) {
		struct buf b = {0}, b2 = {0};
		struct smpp_pdu p;
		char err[128];

		smpp_encode_header(hdr[i].id, hdr[i].status, hdr[i].seq, &b);
		CHECK(buf_used(&b) == 16 && memcmp(b.data, hdr[i].bytes, 16) == 0,
		      "%s: header bytes", smpp_command_name(hdr[i].id));
		CHECK(decode_exact(hdr[i].bytes, 16, false, &p, err, sizeof err) == 0 &&
			  p.command_id == hdr[i].id && p.command_status == hdr[i].status &&
			  p.sequence == hdr[i].seq,
		      "%s: decode %s", smpp_command_name(hdr[i].id), err);
		smpp_encode(&p, &b2); /* smpp_encode of a header-only PDU is the same 16 bytes */
		CHECK(buf_used(&b2) == 16 && memcmp(b2.data, hdr[i].bytes, 16) == 0,
		      "%s: smpp_encode differs from smpp_encode_header",
		      smpp_command_name(hdr[i].id));
		buf_free(&b);
		buf_free(&b2);
	}
}

/* ---- deliver_sm with TLVs (4.6.1, 5.3) ---- */

/* Cut points where a truncated copy is still a whole PDU (after the mandatory part and after
 * each TLV); the builder records them. */
struct cuts {
	size_t at[16];
	size_t n;
};

static void
cut_here(struct cuts *c, const struct buf *b)
{
	if (c && c->n < ARRAY_LEN(c->at))
		c->at[c->n++] = buf_used(b);
}

/* The mandatory part of a deliver_sm: an SMSC delivery receipt (esm_class 0x04, 5.2.12). */
static void
b_deliver_body(struct buf *b, const char *text, struct cuts *c)
{
	b_header(b, SMPP_DELIVER_SM, 0, 0x42);
	b_cstr(b, "");		  /* service_type */
	b_u8(b, 1);		  /* source_addr_ton */
	b_u8(b, 1);		  /* source_addr_npi */
	b_cstr(b, "46701234567"); /* source_addr */
	b_u8(b, 0);
	b_u8(b, 0);
	b_cstr(b, "12345"); /* destination_addr */
	b_u8(b, SMPP_ESM_RECEIPT);
	b_u8(b, 0);    /* protocol_id */
	b_u8(b, 0);    /* priority_flag */
	b_cstr(b, ""); /* schedule_delivery_time */
	b_cstr(b, ""); /* validity_period */
	b_u8(b, 0);    /* registered_delivery */
	b_u8(b, 0);    /* replace_if_present_flag */
	b_u8(b, 0);    /* data_coding */
	b_u8(b, 0);    /* sm_default_msg_id */
	b_u8(b, (unsigned)strlen(text));
	buf_append(b, text, strlen(text));
	cut_here(c, b);
}

static const char receipt_text[] = "id:0A1B2C sub:001 dlvrd:001 stat:DELIVRD err:000";

static void
b_deliver_tlvs(struct buf *b, struct cuts *c)
{
	static const uint8_t ref[] = {0x12, 0x34}, total = 3, seq = 2, state = 2, unk[] = "xyz";

	b_deliver_body(b, receipt_text, c);
	b_tlv(b, 0x001E, "0A1B2C", 7); /* receipted_message_id, C-Octet String (5.3.2.12) */
	cut_here(c, b);
	b_tlv(b, 0x1400, unk, 3); /* a vendor TLV: skipped (5.3.1) */
	cut_here(c, b);
	b_tlv(b, 0x0427, &state, 1); /* message_state DELIVERED = 2 (5.3.2.35) */
	cut_here(c, b);
	b_tlv(b, 0x020C, ref, 2); /* sar_msg_ref_num (5.3.2.22) */
	cut_here(c, b);
	b_tlv(b, 0x020E, &total, 1); /* sar_total_segments (5.3.2.23) */
	cut_here(c, b);
	b_tlv(b, 0x020F, &seq, 1); /* sar_segment_seqnum (5.3.2.24) */
	cut_here(c, b);
	b_tlv(b, 0x0005, "", 0); /* dest_addr_subunit with an empty value: skipped */
	cut_here(c, b);
	b_finish(b);
}

static void
test_deliver_tlvs(void)
{
	struct buf b = {0};
	struct smpp_pdu p;
	char err[128];
	int rc;

	b_deliver_tlvs(&b, NULL);
	rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
	CHECK(rc == 0, "deliver_sm with TLVs: %s", err);
	CHECK(p.command_id == SMPP_DELIVER_SM && p.sequence == 0x42 &&
		  strcmp(p.source_addr, "46701234567") == 0 && strcmp(p.dest_addr, "12345") == 0 &&
		  p.esm_class == SMPP_ESM_RECEIPT && p.sm_length == strlen(receipt_text) &&
		  memcmp(p.short_message, receipt_text, p.sm_length) == 0,
	      "deliver_sm: mandatory fields");
	CHECK(strcmp(p.receipted_message_id, "0A1B2C") == 0, "receipted_message_id '%s'",
	      p.receipted_message_id);
	CHECK(p.message_state == 2, "message_state %d", p.message_state);
	CHECK(p.sar_ref == 0x1234 && p.sar_total == 3 && p.sar_seq == 2, "sar %d %d %d", p.sar_ref,
	      p.sar_total, p.sar_seq);
	CHECK(p.payload == NULL, "message_payload without the TLV");
	buf_free(&b);

	/* message_payload (5.3.2.32) instead of short_message: sm_length 0. */
	{
		static const char text[] = "a long text carried in message_payload, 0x0424";
		b_deliver_body(&b, "", NULL);
		b_tlv(&b, 0x0424, text, sizeof text - 1);
		b_finish(&b);
		uint8_t *copy = xmalloc(b.len);
		memcpy(copy, b.data, b.len);
		rc = smpp_decode(copy, b.len, &p, err, sizeof err);
		CHECK(rc == 0 && p.sm_length == 0 &&
			  p.payload == copy + b.len - (sizeof text - 1) &&
			  p.payload_len == sizeof text - 1 &&
			  memcmp(p.payload, text, p.payload_len) == 0,
		      "message_payload: %s", err);
		free(copy);
		buf_free(&b);
	}

	/* TLVs of a known tag with the wrong length are ignored, not misread. */
	{
		static const uint8_t two[] = {0, 2}, three[] = {0, 0, 1};
		b_deliver_body(&b, "x", NULL);
		b_tlv(&b, 0x0427, two, 2);
		b_tlv(&b, 0x020C, three, 3);
		b_tlv(&b, 0x020E, two, 2);
		b_tlv(&b, 0x020F, "", 0);
		b_finish(&b);
		rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
		CHECK(rc == 0 && p.message_state == -1 && p.sar_ref == -1 && p.sar_total == -1 &&
			  p.sar_seq == -1,
		      "odd-length known TLVs: rc %d state %d ref %d", rc, p.message_state,
		      p.sar_ref);
		buf_free(&b);
	}

	/* receipted_message_id longer than its 65 octets: not copied, nothing overflows. */
	{
		char id[80];
		memset(id, 'A', sizeof id - 1);
		id[sizeof id - 1] = '\0';
		b_deliver_body(&b, "", NULL);
		b_tlv(&b, 0x001E, id, sizeof id);
		b_finish(&b);
		rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
		CHECK(rc != 0 || memchr(p.receipted_message_id, '\0',
					sizeof p.receipted_message_id) != NULL,
		      "overlong receipted_message_id not terminated");
		buf_free(&b);
	}

	/*
	 * receipted_message_id without its NUL: some SMSCs send the bare id. Either refusing the
	 * PDU or taking the whole id is defensible; taking all but its last character is not (the
	 * receipt would then match no submit_sm_resp's message_id).
	 */
	{
		b_deliver_body(&b, "", NULL);
		b_tlv(&b, 0x001E, "0A1B2C", 6);
		b_finish(&b);
		rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
		CHECK(rc != 0 || strcmp(p.receipted_message_id, "0A1B2C") == 0,
		      "receipted_message_id '0A1B2C' without NUL decoded as '%s'",
		      p.receipted_message_id);
		buf_free(&b);
	}
}

/* ---- responses with and without a body ---- */

static void
test_responses(void)
{
	struct buf b = {0};
	struct smpp_pdu p;
	char err[128];
	int rc;

	/* 4.1.6 with the sc_interface_version TLV (0x0210, 5.3.2.25). */
	b_header(&b, SMPP_BIND_TRANSCEIVER | SMPP_RESP, 0, 1);
	b_cstr(&b, "SMSC");
	b_tlv(&b, 0x0210, "\x34", 1);
	b_finish(&b);
	rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
	CHECK(rc == 0 && strcmp(p.system_id, "SMSC") == 0, "bind_transceiver_resp + TLV: %s", err);
	buf_free(&b);

	/* Error responses without a body (4.1.6, 4.4.2: "not returned if command_status is
	 * non-zero"). */
	static const uint32_t bodiless[][2] = {
	    {SMPP_BIND_TRANSCEIVER | SMPP_RESP, SMPP_RINVPASWD},
	    {SMPP_BIND_TRANSMITTER | SMPP_RESP, SMPP_RBINDFAIL},
	    {SMPP_BIND_RECEIVER | SMPP_RESP, SMPP_RALYBND},
	    {SMPP_SUBMIT_SM | SMPP_RESP, SMPP_RTHROTTLED},
	    {SMPP_DELIVER_SM | SMPP_RESP, SMPP_RX_T_APPN},
	    {SMPP_GENERIC_NACK, SMPP_RINVCMDLEN},
	};
	for (size_t i = 0; i < ARRAY_LEN(bodiless); i++) {
		b_header(&b, bodiless[i][0], bodiless[i][1], 99);
		b_finish(&b);
		rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
		CHECK(rc == 0 && p.command_id == bodiless[i][0] &&
			  p.command_status == bodiless[i][1] && p.sequence == 99 &&
			  p.message_id[0] == '\0' && p.system_id[0] == '\0',
		      "%s without a body: %s", smpp_command_name(bodiless[i][0]), err);
		buf_free(&b);
	}

	/* submit_sm_resp: a message_id of 64 characters fits (65 with the NUL), 65 do not. */
	for (size_t n = 63; n <= 66; n++) {
		char id[70];
		memset(id, '7', n);
		id[n] = '\0';
		b_header(&b, SMPP_SUBMIT_SM | SMPP_RESP, 0, 5);
		b_cstr(&b, id);
		b_finish(&b);
		rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
		if (n <= 64)
			CHECK(rc == 0 && strcmp(p.message_id, id) == 0, "message_id of %zu: %s", n,
			      err);
		else
			CHECK(rc != 0, "message_id of %zu accepted", n);
		buf_free(&b);
	}

	/* A body with an unterminated message_id. */
	b_header(&b, SMPP_SUBMIT_SM | SMPP_RESP, 0, 5);
	buf_append(&b, "0A1B", 4);
	b_finish(&b);
	CHECK(decode_exact(b.data, b.len, false, &p, err, sizeof err) != 0,
	      "unterminated message_id accepted");
	buf_free(&b);
}

/* ---- corrupt input ---- */

/* Every truncation of a PDU, with command_length adjusted, fails unless it is a cut point. */
static void
truncations(const char *name, const uint8_t *data, size_t len, const struct cuts *ok)
{
	struct smpp_pdu p;
	char err[128];

	for (size_t k = 0; k < len; k++) {
		bool whole = false;
		int rc;

		for (size_t i = 0; ok && i < ok->n; i++)
			whole |= ok->at[i] == k;
		rc = decode_exact(data, k, true, &p, err, sizeof err);
		if (whole)
			CHECK(rc == 0, "%s cut at %zu: %s", name, k, err);
		else
			CHECK(rc != 0 && err[0], "%s cut at %zu of %zu accepted", name, k, len);
		/* The same cut without fixing command_length: a mismatch, always refused. */
		if (k >= 4)
			CHECK(decode_exact(data, k, false, &p, err, sizeof err) != 0,
			      "%s: %zu bytes of a %zu-byte PDU accepted", name, k, len);
	}
}

static void
test_truncation(void)
{
	struct buf b = {0};
	struct cuts c = {.n = 0};
	struct cuts resp16 = {.at = {16}, .n = 1};

	truncations("bind_transceiver", bind_trx_bytes, sizeof bind_trx_bytes, NULL);
	truncations("submit_sm", submit_udh_bytes, sizeof submit_udh_bytes, NULL);
	truncations("submit_sm_resp", submit_resp_bytes, sizeof submit_resp_bytes, &resp16);
	truncations("deliver_sm_resp", deliver_resp_bytes, sizeof deliver_resp_bytes, &resp16);
	truncations("bind_transceiver_resp", bind_trx_resp_bytes, sizeof bind_trx_resp_bytes,
		    &resp16);
	b_deliver_tlvs(&b, &c);
	truncations("deliver_sm with TLVs", (const uint8_t *)b.data, b.len, &c);
	buf_free(&b);
}

static void
test_length_mismatch(void)
{
	struct smpp_pdu p;
	char err[128];
	uint8_t big[sizeof submit_udh_bytes + 1];

	/* The buffer is one byte longer than command_length says, and one shorter. */
	memcpy(big, submit_udh_bytes, sizeof submit_udh_bytes);
	big[sizeof big - 1] = 0;
	CHECK(decode_exact(big, sizeof big, false, &p, err, sizeof err) != 0,
	      "command_length %zu with %zu bytes accepted", sizeof submit_udh_bytes, sizeof big);
	CHECK(decode_exact(submit_udh_bytes, sizeof submit_udh_bytes - 1, false, &p, err,
			   sizeof err) != 0,
	      "command_length > bytes accepted");
	/* command_length below the header size, with 16 bytes there. */
	for (uint8_t l = 0; l < 16; l++) {
		uint8_t h[16] = {0, 0, 0, l, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1};
		CHECK(decode_exact(h, 16, false, &p, err, sizeof err) != 0,
		      "command_length %u accepted", l);
	}
}

/* A bind with each string given; the last one may be left unterminated. */
static void
b_bind(struct buf *b, const char *sid, const char *pw, const char *type, const char *range,
       bool range_nul)
{
	b_header(b, SMPP_BIND_TRANSMITTER, 0, 1);
	b_cstr(b, sid);
	b_cstr(b, pw);
	b_cstr(b, type);
	b_u8(b, SMPP_VERSION);
	b_u8(b, 0);
	b_u8(b, 0);
	if (range_nul)
		b_cstr(b, range);
	else
		buf_append(b, range, strlen(range));
	b_finish(b);
}

/* A submit_sm with each C-Octet String given (4.4.1 sizes). */
static void
b_submit(struct buf *b, const char *svc, const char *src, const char *dst, const char *sched,
	 const char *valid)
{
	b_header(b, SMPP_SUBMIT_SM, 0, 2);
	b_cstr(b, svc);
	b_u8(b, 1);
	b_u8(b, 1);
	b_cstr(b, src);
	b_u8(b, 1);
	b_u8(b, 1);
	b_cstr(b, dst);
	b_u8(b, 0);
	b_u8(b, 0);
	b_u8(b, 0);
	b_cstr(b, sched);
	b_cstr(b, valid);
	b_u8(b, 0);
	b_u8(b, 0);
	b_u8(b, 0);
	b_u8(b, 0);
	b_u8(b, 2);
	buf_append(b, "hi", 2);
	b_finish(b);
}

static void
test_strings(void)
{
	/* Strings of n characters, for n up to 41. */
	static const char s[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
#define STR(n) (s + sizeof s - 1 - (n))
	static const struct {
		const char *name;
		int kind; /* 0 bind, 1 submit */
		const char *a[5];
		bool range_nul, ok;
	} t[] = {
	    /* 4.1.1 sizes with the NUL: system_id 16, password 9, system_type 13, range 41. */
	    {"system_id 15", 0, {STR(15), "", "", ""}, true, true},
	    {"system_id 16", 0, {STR(16), "", "", ""}, true, false},
	    {"password 8", 0, {"", STR(8), "", ""}, true, true},
	    {"password 9", 0, {"", STR(9), "", ""}, true, false},
	    {"system_type 12", 0, {"", "", STR(12), ""}, true, true},
	    {"system_type 13", 0, {"", "", STR(13), ""}, true, false},
	    {"address_range 40", 0, {"", "", "", STR(40)}, true, true},
	    {"address_range 41", 0, {"", "", "", STR(41)}, true, false},
	    {"address_range unterminated", 0, {"", "", "", "4670"}, false, false},
	    {"address_range empty, no NUL", 0, {"", "", "", ""}, false, false},
	    /* 4.4.1: service_type 6, source_addr 21, destination_addr 21, times 17. */
	    {"service_type 5", 1, {STR(5), "", "", "", ""}, true, true},
	    {"service_type 6", 1, {STR(6), "", "", "", ""}, true, false},
	    {"source_addr 20", 1, {"", STR(20), "", "", ""}, true, true},
	    {"source_addr 21", 1, {"", STR(21), "", "", ""}, true, false},
	    {"destination_addr 20", 1, {"", "", STR(20), "", ""}, true, true},
	    {"destination_addr 21", 1, {"", "", STR(21), "", ""}, true, false},
	    {"schedule_delivery_time 16", 1, {"", "", "", "000001000000000R", ""}, true, true},
	    {"schedule_delivery_time 17", 1, {"", "", "", STR(17), ""}, true, false},
	    {"validity_period 16", 1, {"", "", "", "", "000002000000000R"}, true, true},
	    {"validity_period 17", 1, {"", "", "", "", STR(17)}, true, false},
	};
#undef STR

	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct buf b = {0};
		struct smpp_pdu p;
		char err[128];
		int rc;

		if (t[i].kind == 0)
			b_bind(&b, t[i].a[0], t[i].a[1], t[i].a[2], t[i].a[3], t[i].range_nul);
		else
			b_submit(&b, t[i].a[0], t[i].a[1], t[i].a[2], t[i].a[3], t[i].a[4]);
		rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
		CHECK((rc == 0) == t[i].ok, "%s: rc %d (%s)", t[i].name, rc, err);
		if (rc == 0 && t[i].kind == 0)
			CHECK(strcmp(p.system_id, t[i].a[0]) == 0 &&
				  strcmp(p.password, t[i].a[1]) == 0 &&
				  strcmp(p.system_type, t[i].a[2]) == 0 &&
				  strcmp(p.address_range, t[i].a[3]) == 0,
			      "%s: strings differ", t[i].name);
		if (rc == 0 && t[i].kind == 1)
			CHECK(strcmp(p.service_type, t[i].a[0]) == 0 &&
				  strcmp(p.source_addr, t[i].a[1]) == 0 &&
				  strcmp(p.dest_addr, t[i].a[2]) == 0 &&
				  strcmp(p.schedule_delivery_time, t[i].a[3]) == 0 &&
				  strcmp(p.validity_period, t[i].a[4]) == 0 && p.sm_length == 2,
			      "%s: strings differ", t[i].name);
		buf_free(&b);
	}
}

static void
test_sm_length(void)
{
	uint8_t sm[255];
	struct smpp_pdu p;
	char err[128];

	for (size_t i = 0; i < sizeof sm; i++)
		sm[i] = (uint8_t)(i * 7 + 1);
	/* sm_length 0..255 with exactly that many octets; then one octet short. */
	for (size_t n = 0; n <= 255; n += (n < 4 || n > 250) ? 1 : 50) {
		for (int shortby = 0; shortby <= 1; shortby++) {
			struct buf b = {0};
			int rc;

			if (shortby && n == 0)
				continue;
			b_header(&b, SMPP_SUBMIT_SM, 0, 3);
			b_cstr(&b, "");
			b_u8(&b, 0);
			b_u8(&b, 0);
			b_cstr(&b, "");
			b_u8(&b, 1);
			b_u8(&b, 1);
			b_cstr(&b, "4670");
			for (int k = 0; k < 3; k++)
				b_u8(&b, 0);
			b_cstr(&b, "");
			b_cstr(&b, "");
			for (int k = 0; k < 4; k++)
				b_u8(&b, 0);
			b_u8(&b, (unsigned)n);
			buf_append(&b, sm, n - (size_t)shortby);
			b_finish(&b);
			rc = decode_exact(b.data, b.len, false, &p, err, sizeof err);
			if (shortby)
				CHECK(rc != 0, "sm_length %zu with %zu octets accepted", n, n - 1);
			else
				CHECK(rc == 0 && p.sm_length == n &&
					  memcmp(p.short_message, sm, n) == 0,
				      "sm_length %zu: %s", n, err);
			buf_free(&b);
		}
	}
}

static void
test_tlv_overrun(void)
{
	struct smpp_pdu p;
	char err[128];

	/* A TLV whose length runs one octet past the PDU. */
	for (size_t extra = 1; extra <= 3; extra++) {
		struct buf b = {0};
		b_deliver_body(&b, "x", NULL);
		b_u16(&b, 0x0424);
		b_u16(&b, (unsigned)(4 + extra));
		buf_append(&b, "abcd", 4);
		b_finish(&b);
		CHECK(decode_exact(b.data, b.len, false, &p, err, sizeof err) != 0,
		      "TLV %zu octets past the end accepted", extra);
		buf_free(&b);
	}
	/* Length 0xFFFF with nothing after it. */
	{
		struct buf b = {0};
		b_deliver_body(&b, "", NULL);
		b_u16(&b, 0x001E);
		b_u16(&b, 0xffff);
		b_finish(&b);
		CHECK(decode_exact(b.data, b.len, false, &p, err, sizeof err) != 0,
		      "TLV length 0xFFFF accepted");
		buf_free(&b);
	}
	/* One to three stray octets after the last TLV: a TLV header cut short. */
	for (size_t stray = 1; stray <= 3; stray++) {
		struct buf b = {0};
		b_deliver_body(&b, "x", NULL);
		b_tlv(&b, 0x0427, "\x02", 1);
		buf_append(&b, "\x04\x24\x00", stray);
		b_finish(&b);
		CHECK(decode_exact(b.data, b.len, false, &p, err, sizeof err) != 0,
		      "%zu stray octets after the TLVs accepted", stray);
		buf_free(&b);
	}
	/* A bind_transceiver_resp whose TLV overruns. */
	{
		struct buf b = {0};
		b_header(&b, SMPP_BIND_TRANSCEIVER | SMPP_RESP, 0, 1);
		b_cstr(&b, "SMSC");
		b_u16(&b, 0x0210);
		b_u16(&b, 2);
		b_u8(&b, 0x34);
		b_finish(&b);
		CHECK(decode_exact(b.data, b.len, false, &p, err, sizeof err) != 0,
		      "bind_transceiver_resp with an overrunning TLV accepted");
		buf_free(&b);
	}
}

/* ---- round trips ---- */

static void
round_trip(const char *name, const struct smpp_pdu *want)
{
	struct buf b = {0}, b2 = {0};
	struct smpp_pdu got;
	char err[128];
	const char *d;

	smpp_encode(want, &b);
	CHECK(smpp_pdu_len((const uint8_t *)b.data, b.len) == (long)b.len, "%s: command_length",
	      name);
	if (decode_exact(b.data, b.len, false, &got, err, sizeof err) != 0) {
		CHECK(0, "%s: decode of encode failed: %s", name, err);
		buf_free(&b);
		return;
	}
	d = pdu_diff(want, &got);
	CHECK(d == NULL, "%s: %s differs after a round trip", name, d);
	smpp_encode(&got, &b2);
	CHECK(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0,
	      "%s: re-encoding gives other bytes", name);
	buf_free(&b);
	buf_free(&b2);
}

static void
test_round_trips(void)
{
	struct smpp_pdu p;

	memset(&p, 0, sizeof p);
	p.command_id = SMPP_BIND_RECEIVER;
	p.sequence = 0xffffffffu;
	memset(p.system_id, 'S', sizeof p.system_id - 1);
	memset(p.password, 'P', sizeof p.password - 1);
	memset(p.system_type, 'T', sizeof p.system_type - 1);
	memset(p.address_range, '9', sizeof p.address_range - 1);
	p.interface_version = 0x33;
	p.addr_ton = 0xff;
	p.addr_npi = 0x12;
	round_trip("bind_receiver at every maximum", &p);

	memset(&p, 0, sizeof p);
	p.command_id = SMPP_DELIVER_SM;
	p.sequence = 0x01020304;
	strcpy(p.service_type, "CMT");
	p.source_ton = 1;
	p.source_npi = 1;
	strcpy(p.source_addr, "+46701234567");
	strcpy(p.dest_addr, "12345");
	p.esm_class = SMPP_ESM_UDHI;
	p.protocol_id = 0x7f;
	p.priority_flag = 3;
	strcpy(p.schedule_delivery_time, "240101120000000+");
	strcpy(p.validity_period, "000001000000000R");
	p.registered_delivery = 0x11;
	p.replace_if_present = 1;
	p.data_coding = 8;
	p.sm_default_msg_id = 0xfe;
	for (size_t i = 0; i < 255; i++)
		p.short_message[i] = (uint8_t)i; /* every octet value but 255, NUL included */
	p.sm_length = 255;
	round_trip("deliver_sm with every octet", &p);

	p.command_id = SMPP_SUBMIT_SM;
	p.short_message[0] = 0xff;
	p.sm_length = 1;
	round_trip("submit_sm of one octet", &p);
	p.sm_length = 0;
	round_trip("submit_sm of none", &p);

	memset(&p, 0, sizeof p);
	p.command_id = SMPP_SUBMIT_SM | SMPP_RESP;
	p.command_status = SMPP_RX_P_APPN;
	memset(p.message_id, 'm', sizeof p.message_id - 1);
	round_trip("submit_sm_resp with a 64-character id", &p);

	memset(&p, 0, sizeof p);
	p.command_id = SMPP_UNBIND;
	p.sequence = 77;
	round_trip("unbind", &p);

	/* interface_version 0 is written as 0x34 (5.2.4): baton binds as an SMPP 3.4 ESME. */
	{
		struct buf b = {0};
		fill_bind(&p);
		p.interface_version = 0;
		smpp_encode(&p, &b);
		CHECK(b.len == sizeof bind_trx_bytes && memcmp(b.data, bind_trx_bytes, b.len) == 0,
		      "bind without interface_version is not written as 3.4");
		buf_free(&b);
	}
}

/* ---- status and command names ---- */

static void
test_status(void)
{
	/* The temporary conditions worth a retry; every other status is final. */
	static const uint32_t temporary[] = {SMPP_RSYSERR, SMPP_RMSGQFUL, SMPP_RTHROTTLED,
					     SMPP_RX_T_APPN};
	static const uint32_t known[] = {
	    SMPP_ROK,	     SMPP_RINVMSGLEN, SMPP_RINVCMDLEN, SMPP_RINVCMDID,
	    SMPP_RINVBNDSTS, SMPP_RALYBND,    SMPP_RSYSERR,    SMPP_RINVDSTADR,
	    SMPP_RBINDFAIL,  SMPP_RINVPASWD,  SMPP_RINVSYSID,  SMPP_RMSGQFUL,
	    SMPP_RTHROTTLED, SMPP_RX_T_APPN,  SMPP_RX_P_APPN,  SMPP_RX_R_APPN,
	};
	const char *unknown = smpp_status_text(0x4242);

	for (uint32_t s = 0; s < 0x200; s++) {
		bool want = false;
		for (size_t i = 0; i < ARRAY_LEN(temporary); i++)
			want |= temporary[i] == s;
		CHECK(smpp_status_temporary(s) == want, "status 0x%02x temporary: %d", s, !want);
	}
	CHECK(!smpp_status_temporary(0xffffffffu), "0xffffffff temporary");
	for (size_t i = 0; i < ARRAY_LEN(known); i++) {
		const char *t = smpp_status_text(known[i]);
		CHECK(t && *t && strcmp(t, unknown) != 0, "status 0x%02x has no text of its own",
		      known[i]);
		for (size_t k = 0; k < i; k++)
			CHECK(strcmp(t, smpp_status_text(known[k])) != 0,
			      "status 0x%02x and 0x%02x read the same", known[i], known[k]);
	}
}

static void
test_names(void)
{
	/* Every command the codec decodes has a name of its own (they appear in errors). */
	static const uint32_t ids[] = {
	    SMPP_GENERIC_NACK,
	    SMPP_BIND_RECEIVER,
	    SMPP_BIND_RECEIVER | SMPP_RESP,
	    SMPP_BIND_TRANSMITTER,
	    SMPP_BIND_TRANSMITTER | SMPP_RESP,
	    SMPP_BIND_TRANSCEIVER,
	    SMPP_BIND_TRANSCEIVER | SMPP_RESP,
	    SMPP_SUBMIT_SM,
	    SMPP_SUBMIT_SM | SMPP_RESP,
	    SMPP_DELIVER_SM,
	    SMPP_DELIVER_SM | SMPP_RESP,
	    SMPP_UNBIND,
	    SMPP_UNBIND | SMPP_RESP,
	    SMPP_ENQUIRE_LINK,
	    SMPP_ENQUIRE_LINK | SMPP_RESP,
	};
	const char *unknown = smpp_command_name(0x12345678);

	for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
		const char *n = smpp_command_name(ids[i]);
		CHECK(strcmp(n, unknown) != 0, "command 0x%08x has no name", ids[i]);
		for (size_t k = 0; k < i && strcmp(n, unknown) != 0; k++)
			CHECK(strcmp(n, smpp_command_name(ids[k])) != 0,
			      "commands 0x%08x and 0x%08x share the name %s", ids[i], ids[k], n);
	}

	/* The decode error names the PDU. */
	{
		struct smpp_pdu p;
		char err[128];
		CHECK(decode_exact(bind_trx_bytes, sizeof bind_trx_bytes - 1, true, &p, err,
				   sizeof err) != 0 &&
			  strstr(err, "bind_transceiver") != NULL,
		      "error '%s' does not name bind_transceiver", err);
	}
}

int
main(void)
{
	test_pdu_len();
	test_exact_bytes();
	test_deliver_tlvs();
	test_responses();
	test_truncation();
	test_length_mismatch();
	test_strings();
	test_sm_length();
	test_tlv_overrun();
	test_round_trips();
	test_status();
	test_names();
	return check_summary("test_smpp");
}
