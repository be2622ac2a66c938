/*
 * SMPP 3.4 toward the SMSC: bind_transceiver, submit_sm, deliver_sm (messages and delivery
 * receipts), enquire_link, unbind and generic_nack, framed by smpp.c; the session logic
 * (window, retries, reconnecting) is smsc.c's.
 *
 * Invariant: a deliver_sm is answered only after its message (or part, or receipt) was
 * stored, and with ESME_RX_T_APPN when it could not be, so the SMSC keeps it and retries.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smpp.h"
#include "smsbuf.h"

static void
smpp_send(struct smsbuf *sb, const struct smpp_pdu *p)
{
	struct buf b = {0};

	smpp_encode(p, &b);
	conn_write(sb->smsc, buf_head(&b), buf_used(&b));
	buf_free(&b);
}

static void
smpp_send_header(struct smsbuf *sb, uint32_t id, uint32_t status, uint32_t seq)
{
	struct buf b = {0};

	smpp_encode_header(id, status, seq, &b);
	conn_write(sb->smsc, buf_head(&b), buf_used(&b));
	buf_free(&b);
}

static void
smpp_login(struct smsbuf *sb)
{
	struct smpp_pdu p = {.command_id = SMPP_BIND_TRANSCEIVER,
			     .interface_version = SMPP_VERSION};

	p.sequence = smsc_next_seq(sb);
	snprintf(p.system_id, sizeof p.system_id, "%s", sb->cfg->smsbuf_user);
	snprintf(p.password, sizeof p.password, "%s", sb->cfg->smsbuf_password);
	snprintf(p.system_type, sizeof p.system_type, "%s", sb->cfg->smsbuf_system_type);
	smpp_send(sb, &p);
	smsc_request_sent(sb);
}

/* 5.2.5 / 5.2.6: an address's type of number from how it is written. */
static void
set_addr(const char *addr, uint8_t *ton, uint8_t *npi, char *out, size_t n)
{
	size_t len = strlen(addr), digits = strspn(addr + (addr[0] == '+'), "0123456789");

	if (addr[0] == '+') {
		*ton = 1; /* international */
		*npi = 1; /* E.164 */
		snprintf(out, n, "%s", addr + 1);
	} else if (len && digits == len) {
		*ton = len <= 8 ? 3 : 0; /* a short code is network specific */
		*npi = len <= 8 ? 0 : 1;
		snprintf(out, n, "%s", addr);
	} else {
		*ton = 5; /* alphanumeric */
		*npi = 0;
		snprintf(out, n, "%s", addr);
	}
}

static void
smpp_submit(struct smsbuf *sb, const struct smsc_part *part)
{
	struct smpp_pdu p = {.command_id = SMPP_SUBMIT_SM};
	size_t off = 0;

	p.sequence = smsc_next_seq(sb);
	set_addr(sb->cfg->smsbuf_source_addr, &p.source_ton, &p.source_npi, p.source_addr,
		 sizeof p.source_addr);
	set_addr(part->to, &p.dest_ton, &p.dest_npi, p.dest_addr, sizeof p.dest_addr);
	p.data_coding = (uint8_t)part->coding;
	p.registered_delivery = part->dlr ? 1 : 0; /* 5.2.17: receipt on final outcome */
	if (part->total > 1) {
		/* 3GPP TS 23.040 9.2.3.24.1 in the user data, flagged by UDHI (5.2.12). */
		p.esm_class = SMPP_ESM_UDHI;
		sms_udh_concat(p.short_message, part->ref, (uint8_t)part->total,
			       (uint8_t)part->part);
		off = SMS_CONCAT_UDH;
	}
	memcpy(p.short_message + off, part->ud, part->len);
	p.sm_length = off + part->len;
	smpp_send(sb, &p);
	smsc_request_sent(sb);
}

static void
smpp_keepalive(struct smsbuf *sb)
{
	smpp_send_header(sb, SMPP_ENQUIRE_LINK, 0, smsc_next_seq(sb));
	smsc_request_sent(sb);
}

static void
smpp_logout(struct smsbuf *sb)
{
	smpp_send_header(sb, SMPP_UNBIND, 0, smsc_next_seq(sb));
	smsc_request_sent(sb);
}

/* The value after "key:" in a receipt's text (Appendix B), up to the next space. */
static void
receipt_field(const uint8_t *text, size_t n, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);

	out[0] = '\0';
	for (size_t i = 0; i + kl <= n; i++) {
		if ((i == 0 || text[i - 1] == ' ') &&
		    strncasecmp((const char *)text + i, key, kl) == 0) {
			size_t j = i + kl, o = 0;
			while (j < n && text[j] != ' ' && o + 1 < outlen)
				out[o++] = (char)text[j++];
			out[o] = '\0';
			return;
		}
	}
}

static const char *
state_name(int state)
{
	/* 5.2.28 message_state, as the receipt text's stat: field writes them. */
	static const char *const names[] = {"SCHEDULED", "ENROUTE", "DELIVRD", "EXPIRED", "DELETED",
					    "UNDELIV",	 "ACCEPTD", "UNKNOWN", "REJECTD"};
	return state >= 0 && state < (int)ARRAY_LEN(names) ? names[state] : "UNKNOWN";
}

static void
phone_number(const struct smpp_pdu *p, char *out, size_t n)
{
	if (p->source_ton == 1 && p->source_addr[0] != '+')
		snprintf(out, n, "+%s", p->source_addr);
	else
		snprintf(out, n, "%s", p->source_addr);
}

static enum mo_verdict
smpp_deliver(struct smsbuf *sb, const struct smpp_pdu *p)
{
	const uint8_t *ud = p->payload ? p->payload : p->short_message;
	size_t n = p->payload ? p->payload_len : p->sm_length;
	unsigned ref = 0, total = 0, part = 0;
	char from[32];
	struct buf text = {0};
	enum mo_verdict v;

	phone_number(p, from, sizeof from);
	if ((p->esm_class & 0x3C) == SMPP_ESM_RECEIPT) {
		char id[80], stat[16];
		receipt_field(ud, n, "id:", id, sizeof id);
		receipt_field(ud, n, "stat:", stat, sizeof stat);
		if (p->receipted_message_id[0])
			snprintf(id, sizeof id, "%s", p->receipted_message_id);
		if (p->message_state >= 0)
			snprintf(stat, sizeof stat, "%s", state_name(p->message_state));
		return smsc_report(sb, from, id, stat);
	}
	if (p->esm_class & SMPP_ESM_UDHI) {
		int h = sms_udh_parse(ud, n, &ref, &total, &part);
		if (h < 0)
			return MO_BAD;
		ud += h;
		n -= (size_t)h;
	} else if (p->sar_total > 0 && p->sar_seq > 0 && p->sar_ref >= 0) {
		ref = (unsigned)p->sar_ref;
		total = (unsigned)p->sar_total;
		part = (unsigned)p->sar_seq;
	}
	/* 5.2.19: 0 SMSC default (GSM 03.38 here), 1 IA5, 3 Latin-1, 8 UCS-2; others as bytes. */
	switch (p->data_coding) {
	case 0:
		sms_decode(SMS_GSM7, ud, n, &text);
		break;
	case 8:
		sms_decode(SMS_UCS2, ud, n, &text);
		break;
	case 1:
	case 3:
		sms_decode(SMS_LATIN1, ud, n, &text);
		break;
	default:
		sms_decode(SMS_BINARY, ud, n, &text);
		break;
	}
	if (total > 1)
		v = buffer_mo_part(sb, from, p->dest_addr, ref, total, part, buf_head(&text));
	else
		v = buffer_mo(sb, from, p->dest_addr, buf_head(&text), NULL);
	buf_free(&text);
	return v;
}

static void
smpp_pdu(struct smsbuf *sb, const struct smpp_pdu *p)
{
	struct smpp_pdu r = {0};
	enum mo_verdict v;

	switch (p->command_id) {
	case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
		smsc_response(sb);
		smsc_bound(sb, p->command_status == 0, smpp_status_text(p->command_status));
		break;
	case SMPP_SUBMIT_SM | SMPP_RESP:
		smsc_response(sb);
		smsc_submit_result(sb, p->sequence, (int)p->command_status,
				   smpp_status_temporary(p->command_status), p->message_id,
				   smpp_status_text(p->command_status));
		break;
	case SMPP_GENERIC_NACK:
		smsc_response(sb);
		log_warn("smsbuf: SMSC sent generic_nack for request %u: %s", p->sequence,
			 smpp_status_text(p->command_status));
		smsc_submit_result(sb, p->sequence,
				   (int)(p->command_status ? p->command_status : 1), false, NULL,
				   "the SMSC did not understand the submit");
		break;
	case SMPP_ENQUIRE_LINK | SMPP_RESP:
	case SMPP_UNBIND | SMPP_RESP:
		smsc_response(sb);
		smsc_pump(sb); /* an MT may have come while the keepalive held the window */
		break;
	case SMPP_DELIVER_SM:
		v = smpp_deliver(sb, p);
		r.command_id = SMPP_DELIVER_SM | SMPP_RESP;
		r.sequence = p->sequence;
		r.command_status = v == MO_OK	 ? SMPP_ROK
				   : v == MO_BAD ? SMPP_RX_P_APPN
						 : SMPP_RX_T_APPN;
		if (v == MO_FULL)
			log_info("smsbuf: the MO ring is full; the SMSC will deliver again later");
		smpp_send(sb, &r);
		smsc_pump(sb);
		break;
	case SMPP_ENQUIRE_LINK:
		smpp_send_header(sb, SMPP_ENQUIRE_LINK | SMPP_RESP, 0, p->sequence);
		break;
	case SMPP_UNBIND:
		smpp_send_header(sb, SMPP_UNBIND | SMPP_RESP, 0, p->sequence);
		smsc_fail(sb, "the SMSC unbound");
		break;
	default:
		/* 4.3: what we do not know is refused with generic_nack, responses excepted. */
		if (!(p->command_id & SMPP_RESP))
			smpp_send_header(sb, SMPP_GENERIC_NACK, SMPP_RINVCMDID, p->sequence);
		break;
	}
}

static void
smpp_input(struct smsbuf *sb)
{
	struct conn *c = sb->smsc;

	while (c == sb->smsc && c && buf_used(&c->in) > 0) {
		const uint8_t *d = (const uint8_t *)buf_head(&c->in);
		long len = smpp_pdu_len(d, buf_used(&c->in));
		struct smpp_pdu p;
		char err[128];

		if (len < 0) {
			smsc_fail(sb, "the SMSC sent a PDU with an impossible length");
			return;
		}
		if (len == 0 || (size_t)len > buf_used(&c->in))
			return;
		/* The PDU is copied out: handling it may close the connection and its buffer. */
		uint8_t *copy = xmalloc((size_t)len);
		memcpy(copy, d, (size_t)len);
		buf_consume(&c->in, (size_t)len);
		if (smpp_decode(copy, (size_t)len, &p, err, sizeof err) < 0) {
			log_warn("smsbuf: bad PDU from the SMSC: %s", err);
			smpp_send_header(sb, SMPP_GENERIC_NACK, SMPP_RINVCMDLEN, p.sequence);
		} else {
			smpp_pdu(sb, &p);
		}
		free(copy);
	}
}

const struct smsc_proto smsc_smpp = {
    .name = "SMPP 3.4",
    .login = smpp_login,
    .input = smpp_input,
    .submit = smpp_submit,
    .keepalive = smpp_keepalive,
    .logout = smpp_logout,
};
