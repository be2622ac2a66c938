/*
 * The SMPP 3.4 codec (see smpp.h). All integers are big endian (3.1); strings are C-Octet
 * Strings bounded by their field sizes of section 4.
 *
 * Invariant: the reader never passes its end; a field that would is a decode error.
 */
#include <stdio.h>
#include <string.h>

#include "smpp.h"

struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static uint8_t
rd_u8(struct rd *r)
{
	if (r->p >= r->end) {
		r->bad = true;
		return 0;
	}
	return *r->p++;
}

static uint32_t
rd_u16(struct rd *r)
{
	uint32_t hi = rd_u8(r);
	return hi << 8 | rd_u8(r);
}

static uint32_t
rd_u32(struct rd *r)
{
	uint32_t hi = rd_u16(r);
	return hi << 16 | rd_u16(r);
}

/* A C-Octet String of at most max bytes including its NUL (3.1). */
static void
rd_str(struct rd *r, char *out, size_t max)
{
	size_t n = 0;

	for (;;) {
		if (r->p >= r->end || n == max) {
			r->bad = true;
			out[0] = '\0';
			return;
		}
		char c = (char)*r->p++;
		out[n++] = c;
		if (c == '\0')
			return;
	}
}

long
smpp_pdu_len(const uint8_t *data, size_t avail)
{
	uint32_t len;

	if (avail < 4)
		return 0;
	len = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
	if (len < SMPP_HEADER || len > SMPP_MAX_PDU)
		return -1;
	return (long)len;
}

static void
rd_tlvs(struct rd *r, struct smpp_pdu *p)
{
	while (!r->bad && r->p < r->end) {
		uint32_t tag = rd_u16(r), len = rd_u16(r);
		const uint8_t *v = r->p;

		if (r->bad || (size_t)(r->end - r->p) < len) {
			r->bad = true;
			return;
		}
		r->p += len;
		switch (tag) {
		case 0x001E: /* receipted_message_id, C-Octet String (5.3.2.12) */
			/* Some SMSCs leave out the NUL: keep every character either way. */
			if (len > 0 && len < sizeof p->receipted_message_id) {
				memcpy(p->receipted_message_id, v, len);
				p->receipted_message_id[len] = '\0';
			}
			break;
		case 0x0427: /* message_state (5.3.2.35) */
			if (len == 1)
				p->message_state = v[0];
			break;
		case 0x0424: /* message_payload (5.3.2.32) */
			p->payload = v;
			p->payload_len = len;
			break;
		case 0x020C: /* sar_msg_ref_num (5.3.2.22) */
			if (len == 2)
				p->sar_ref = v[0] << 8 | v[1];
			break;
		case 0x020E: /* sar_total_segments */
			if (len == 1)
				p->sar_total = v[0];
			break;
		case 0x020F: /* sar_segment_seqnum */
			if (len == 1)
				p->sar_seq = v[0];
			break;
		default: /* 3.2.4: TLVs one does not know are skipped */
			break;
		}
	}
}

int
smpp_decode(const uint8_t *data, size_t len, struct smpp_pdu *p, char *err, size_t errlen)
{
	struct rd r = {data, data + len, false};
	uint32_t clen;

	memset(p, 0, sizeof *p);
	p->message_state = p->sar_ref = p->sar_total = p->sar_seq = -1;
	clen = rd_u32(&r);
	p->command_id = rd_u32(&r);
	p->command_status = rd_u32(&r);
	p->sequence = rd_u32(&r);
	if (r.bad || clen != len) {
		snprintf(err, errlen, "PDU header does not match its length");
		return -1;
	}
	switch (p->command_id) {
	case SMPP_BIND_RECEIVER:
	case SMPP_BIND_TRANSMITTER:
	case SMPP_BIND_TRANSCEIVER:
		rd_str(&r, p->system_id, sizeof p->system_id);
		rd_str(&r, p->password, sizeof p->password);
		rd_str(&r, p->system_type, sizeof p->system_type);
		p->interface_version = rd_u8(&r);
		p->addr_ton = rd_u8(&r);
		p->addr_npi = rd_u8(&r);
		rd_str(&r, p->address_range, sizeof p->address_range);
		break;
	case SMPP_BIND_RECEIVER | SMPP_RESP:
	case SMPP_BIND_TRANSMITTER | SMPP_RESP:
	case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
		/* 4.1.6: the body may be absent when command_status is an error. */
		if (r.p < r.end) {
			rd_str(&r, p->system_id, sizeof p->system_id);
			rd_tlvs(&r, p);
		}
		break;
	case SMPP_SUBMIT_SM:
	case SMPP_DELIVER_SM:
		rd_str(&r, p->service_type, sizeof p->service_type);
		p->source_ton = rd_u8(&r);
		p->source_npi = rd_u8(&r);
		rd_str(&r, p->source_addr, sizeof p->source_addr);
		p->dest_ton = rd_u8(&r);
		p->dest_npi = rd_u8(&r);
		rd_str(&r, p->dest_addr, sizeof p->dest_addr);
		p->esm_class = rd_u8(&r);
		p->protocol_id = rd_u8(&r);
		p->priority_flag = rd_u8(&r);
		rd_str(&r, p->schedule_delivery_time, sizeof p->schedule_delivery_time);
		rd_str(&r, p->validity_period, sizeof p->validity_period);
		p->registered_delivery = rd_u8(&r);
		p->replace_if_present = rd_u8(&r);
		p->data_coding = rd_u8(&r);
		p->sm_default_msg_id = rd_u8(&r);
		p->sm_length = rd_u8(&r);
		if (r.bad || (size_t)(r.end - r.p) < p->sm_length) {
			snprintf(err, errlen, "%s: short_message overruns the PDU",
				 smpp_command_name(p->command_id));
			return -1;
		}
		memcpy(p->short_message, r.p, p->sm_length);
		r.p += p->sm_length;
		rd_tlvs(&r, p);
		break;
	case SMPP_SUBMIT_SM | SMPP_RESP:
	case SMPP_DELIVER_SM | SMPP_RESP:
		/* 4.4.2: message_id; an error response may carry no body. */
		if (r.p < r.end)
			rd_str(&r, p->message_id, sizeof p->message_id);
		break;
	default: /* header-only PDUs; unknown ones are answered with generic_nack by the caller */
		break;
	}
	if (r.bad) {
		snprintf(err, errlen, "%s: malformed body", smpp_command_name(p->command_id));
		return -1;
	}
	return 0;
}

static void
put_u8(struct buf *b, uint8_t v)
{
	buf_append(b, &v, 1);
}

static void
put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	buf_append(b, x, 4);
}

static void
put_str(struct buf *b, const char *s, size_t max)
{
	size_t n = strnlen(s, max - 1);
	buf_append(b, s, n);
	put_u8(b, 0);
}

void
smpp_encode(const struct smpp_pdu *p, struct buf *out)
{
	size_t start = out->len;

	put_u32(out, 0); /* command_length, filled in below */
	put_u32(out, p->command_id);
	put_u32(out, p->command_status);
	put_u32(out, p->sequence);
	switch (p->command_id) {
	case SMPP_BIND_RECEIVER:
	case SMPP_BIND_TRANSMITTER:
	case SMPP_BIND_TRANSCEIVER:
		put_str(out, p->system_id, sizeof p->system_id);
		put_str(out, p->password, sizeof p->password);
		put_str(out, p->system_type, sizeof p->system_type);
		put_u8(out, p->interface_version ? p->interface_version : SMPP_VERSION);
		put_u8(out, p->addr_ton);
		put_u8(out, p->addr_npi);
		put_str(out, p->address_range, sizeof p->address_range);
		break;
	case SMPP_SUBMIT_SM:
	case SMPP_DELIVER_SM:
		put_str(out, p->service_type, sizeof p->service_type);
		put_u8(out, p->source_ton);
		put_u8(out, p->source_npi);
		put_str(out, p->source_addr, sizeof p->source_addr);
		put_u8(out, p->dest_ton);
		put_u8(out, p->dest_npi);
		put_str(out, p->dest_addr, sizeof p->dest_addr);
		put_u8(out, p->esm_class);
		put_u8(out, p->protocol_id);
		put_u8(out, p->priority_flag);
		put_str(out, p->schedule_delivery_time, sizeof p->schedule_delivery_time);
		put_str(out, p->validity_period, sizeof p->validity_period);
		put_u8(out, p->registered_delivery);
		put_u8(out, p->replace_if_present);
		put_u8(out, p->data_coding);
		put_u8(out, p->sm_default_msg_id);
		if (p->sm_length > sizeof p->short_message)
			fatal("smpp_encode: sm_length %zu", p->sm_length); /* a caller's bug */
		put_u8(out, (uint8_t)p->sm_length);
		buf_append(out, p->short_message, p->sm_length);
		break;
	case SMPP_SUBMIT_SM | SMPP_RESP:
	case SMPP_DELIVER_SM | SMPP_RESP:
		put_str(out, p->message_id, sizeof p->message_id);
		break;
	case SMPP_BIND_RECEIVER | SMPP_RESP:
	case SMPP_BIND_TRANSMITTER | SMPP_RESP:
	case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
		put_str(out, p->system_id, sizeof p->system_id);
		break;
	default:
		break;
	}
	uint32_t len = (uint32_t)(out->len - start);
	uint8_t *h = (uint8_t *)out->data + start;
	h[0] = (uint8_t)(len >> 24);
	h[1] = (uint8_t)(len >> 16);
	h[2] = (uint8_t)(len >> 8);
	h[3] = (uint8_t)len;
}

void
smpp_encode_header(uint32_t id, uint32_t status, uint32_t seq, struct buf *out)
{
	put_u32(out, SMPP_HEADER);
	put_u32(out, id);
	put_u32(out, status);
	put_u32(out, seq);
}

bool
smpp_status_temporary(uint32_t status)
{
	return status == SMPP_RMSGQFUL || status == SMPP_RTHROTTLED || status == SMPP_RSYSERR ||
	       status == SMPP_RX_T_APPN;
}

const char *
smpp_status_text(uint32_t status)
{
	switch (status) {
	case SMPP_ROK:
		return "ok";
	case SMPP_RINVMSGLEN:
		return "invalid message length";
	case SMPP_RINVCMDLEN:
		return "invalid command length";
	case SMPP_RINVCMDID:
		return "invalid command id";
	case SMPP_RINVBNDSTS:
		return "incorrect bind status";
	case SMPP_RALYBND:
		return "already bound";
	case SMPP_RSYSERR:
		return "system error";
	case SMPP_RINVDSTADR:
		return "invalid destination address";
	case SMPP_RBINDFAIL:
		return "bind failed";
	case SMPP_RINVPASWD:
		return "invalid password";
	case SMPP_RINVSYSID:
		return "invalid system id";
	case SMPP_RMSGQFUL:
		return "message queue full";
	case SMPP_RTHROTTLED:
		return "throttled";
	case SMPP_RX_T_APPN:
		return "temporary application error";
	case SMPP_RX_P_APPN:
		return "permanent application error";
	case SMPP_RX_R_APPN:
		return "rejected by the application";
	default:
		return "SMSC error";
	}
}

const char *
smpp_command_name(uint32_t id)
{
	switch (id) {
	case SMPP_GENERIC_NACK:
		return "generic_nack";
	case SMPP_BIND_RECEIVER:
		return "bind_receiver";
	case SMPP_BIND_TRANSMITTER:
		return "bind_transmitter";
	case SMPP_BIND_TRANSCEIVER:
		return "bind_transceiver";
	case SMPP_BIND_RECEIVER | SMPP_RESP:
		return "bind_receiver_resp";
	case SMPP_BIND_TRANSMITTER | SMPP_RESP:
		return "bind_transmitter_resp";
	case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
		return "bind_transceiver_resp";
	case SMPP_SUBMIT_SM:
		return "submit_sm";
	case SMPP_SUBMIT_SM | SMPP_RESP:
		return "submit_sm_resp";
	case SMPP_DELIVER_SM:
		return "deliver_sm";
	case SMPP_DELIVER_SM | SMPP_RESP:
		return "deliver_sm_resp";
	case SMPP_UNBIND:
		return "unbind";
	case SMPP_UNBIND | SMPP_RESP:
		return "unbind_resp";
	case SMPP_ENQUIRE_LINK:
		return "enquire_link";
	case SMPP_ENQUIRE_LINK | SMPP_RESP:
		return "enquire_link_resp";
	default:
		return "unknown command";
	}
}
