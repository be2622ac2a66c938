/*
 * CIMD2 toward the SMSC: login, submit, deliver message, deliver status report, alive,
 * logout and nack, framed by cimd2.c; the session logic is smsc.c's. CIMD2 names a submitted
 * message by its destination and the SMSC's time stamp (060), so that pair is the message id
 * a status report is matched with.
 *
 * Invariant: a deliver (20) or status report (23) is answered only after it was stored, and
 * with an error (the SMSC then retries) when it could not be (R3, R11).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cimd2.h"
#include "smsbuf.h"

#define CIMD2_E_CONGESTION 10 /* "temporary congestion": the SMSC keeps the message, retries */
#define CIMD2_E_FAILED	   9  /* "requested operation failed" */

static void
send_packet(struct smsbuf *sb, struct buf *b)
{
	cimd2_end(b);
	conn_write(sb->smsc, buf_head(b), buf_used(b));
	buf_free(b);
}

/* Requests from us carry odd numbers, 1..255 wrapping (CIMD2 3.1). */
static int
next_num(struct smsbuf *sb)
{
	sb->seq = (uint32_t)cimd2_next_num((int)sb->seq);
	return (int)sb->seq;
}

static void
add_str(struct buf *b, int code, const char *v)
{
	if (cimd2_value_ok(v, strlen(v)))
		cimd2_add(b, code, v, strlen(v));
}

static void
cimd2_login(struct smsbuf *sb)
{
	struct buf b = {0};

	cimd2_begin(&b, CIMD2_LOGIN, next_num(sb));
	add_str(&b, CIMD2_P_USER, sb->cfg->smsbuf_user);
	add_str(&b, CIMD2_P_PASSWORD, sb->cfg->smsbuf_password);
	send_packet(sb, &b);
	smsc_request_sent(sb);
}

static void
cimd2_submit(struct smsbuf *sb, const struct smsc_part *p)
{
	const char *src = sb->cfg->smsbuf_source_addr;
	size_t digits = strspn(src + (src[0] == '+'), "0123456789");
	struct buf b = {0}, text = {0};

	cimd2_begin(&b, CIMD2_SUBMIT, next_num(sb));
	add_str(&b, CIMD2_P_DEST, p->to);
	/* A number is an originating address (023); letters are an alphanumeric one (027). */
	add_str(&b,
		src[0] && digits == strlen(src) - (src[0] == '+') ? CIMD2_P_ORIG
								  : CIMD2_P_ALPHA_ORIG,
		src);
	if (p->total > 1) {
		uint8_t udh[SMS_CONCAT_UDH];
		sms_udh_concat(udh, p->ref, (uint8_t)p->total, (uint8_t)p->part);
		cimd2_hex_encode(udh, sizeof udh, &text);
		cimd2_add(&b, CIMD2_P_UDH, buf_head(&text), buf_used(&text));
		buf_reset(&text);
	}
	if (p->coding == SMS_UCS2) {
		cimd2_add_int(&b, CIMD2_P_DCS, CIMD2_DCS_UCS2);
		cimd2_hex_encode(p->ud, p->len, &text);
		cimd2_add(&b, CIMD2_P_USER_DATA_BINARY, buf_head(&text), buf_used(&text));
	} else {
		/* The septets back to text, then CIMD2's character conversion (8.1). */
		struct buf utf8 = {0};
		gsm_decode(p->ud, p->len, &utf8);
		if (cimd2_text_encode(buf_head(&utf8), buf_used(&utf8), &text) == 0)
			cimd2_add(&b, CIMD2_P_USER_DATA, buf_head(&text), buf_used(&text));
		buf_free(&utf8);
	}
	if (p->dlr) /* 056 bits: 2 expired, 4 failed, 8 delivered */
		cimd2_add_int(&b, CIMD2_P_STATUS_REPORT_REQUEST, 14);
	buf_free(&text);
	send_packet(sb, &b);
	smsc_request_sent(sb);
}

static void
cimd2_keepalive(struct smsbuf *sb)
{
	struct buf b = {0};

	cimd2_begin(&b, CIMD2_ALIVE, next_num(sb));
	send_packet(sb, &b);
	smsc_request_sent(sb);
}

static void
cimd2_logout(struct smsbuf *sb)
{
	struct buf b = {0};

	cimd2_begin(&b, CIMD2_LOGOUT, next_num(sb));
	send_packet(sb, &b);
	smsc_request_sent(sb);
}

/* A parameter's value as a NUL-terminated string (truncated to n - 1 bytes). */
static const char *
param(const struct cimd2_packet *p, int code, char *out, size_t n)
{
	const struct cimd2_param *v = cimd2_get(p, code);
	size_t len;

	out[0] = '\0';
	if (!v)
		return NULL;
	len = v->len < n - 1 ? v->len : n - 1;
	memcpy(out, v->value, len);
	out[len] = '\0';
	return out;
}

static int
error_code(const struct cimd2_packet *p)
{
	char v[16];
	return param(p, CIMD2_P_ERROR_CODE, v, sizeof v) ? atoi(v) : 0;
}

/* Errors worth retrying: the SMSC's own trouble, not the message's (7.3). */
static bool
temporary(int code)
{
	return code == 4 || code == 5 || code == 6 || code == CIMD2_E_CONGESTION;
}

static void
respond(struct smsbuf *sb, const struct cimd2_packet *p, enum mo_verdict v)
{
	struct buf b = {0};

	cimd2_begin(&b, p->op + CIMD2_RESP, p->num);
	if (v == MO_FULL || v == MO_STORE_ERR)
		cimd2_add_int(&b, CIMD2_P_ERROR_CODE, CIMD2_E_CONGESTION);
	else if (v == MO_BAD)
		cimd2_add_int(&b, CIMD2_P_ERROR_CODE, CIMD2_E_FAILED);
	send_packet(sb, &b);
}

static enum mo_verdict
deliver(struct smsbuf *sb, const struct cimd2_packet *p)
{
	char from[32], to[32], dcs[8];
	const struct cimd2_param *ud = cimd2_get(p, CIMD2_P_USER_DATA);
	const struct cimd2_param *bin = cimd2_get(p, CIMD2_P_USER_DATA_BINARY);
	const struct cimd2_param *udh = cimd2_get(p, CIMD2_P_UDH);
	unsigned ref = 0, total = 0, part = 0;
	struct buf text = {0};
	enum mo_verdict v;

	if (!param(p, CIMD2_P_ORIG, from, sizeof from) || !param(p, CIMD2_P_DEST, to, sizeof to))
		return MO_BAD;
	if (udh) {
		uint8_t h[140];
		long n = cimd2_hex_decode(udh->value, udh->len, h, sizeof h);
		if (n < 0 || sms_udh_parse(h, (size_t)n, &ref, &total, &part) < 0)
			return MO_BAD;
	}
	if (bin) {
		uint8_t data[280];
		long n = cimd2_hex_decode(bin->value, bin->len, data, sizeof data);
		if (n < 0)
			return MO_BAD;
		param(p, CIMD2_P_DCS, dcs, sizeof dcs);
		sms_decode(atoi(dcs) == CIMD2_DCS_UCS2 ? SMS_UCS2 : SMS_BINARY, data, (size_t)n,
			   &text);
	} else if (ud) {
		cimd2_text_decode(ud->value, ud->len, &text);
	}
	if (total > 1)
		v = buffer_mo_part(sb, from, to, ref, total, part, buf_head(&text));
	else
		v = buffer_mo(sb, from, to, buf_head(&text), NULL);
	buf_free(&text);
	return v;
}

static enum mo_verdict
status_report(struct smsbuf *sb, const struct cimd2_packet *p)
{
	char dest[32], ts[32], code[8], id[80];
	static const char *const stat[] = {"UNKNOWN", "ENROUTE", "EXPIRED", "UNDELIV", "DELIVRD",
					   "UNDELIV", "UNDELIV", "DELETED", "DELETED", "DELETED"};
	int c;

	if (!param(p, CIMD2_P_DEST, dest, sizeof dest) ||
	    !param(p, CIMD2_P_SC_TIMESTAMP, ts, sizeof ts) ||
	    !param(p, CIMD2_P_STATUS_CODE, code, sizeof code))
		return MO_BAD;
	/* 061: 1 in process, 2 validity expired, 3 failed, 4 delivered, 5/6 no response,
	 * 7-9 cancelled or deleted. */
	c = atoi(code);
	if (c == 1)
		return MO_OK; /* not an outcome yet */
	snprintf(id, sizeof id, "%s:%s", dest, ts);
	return smsc_report(sb, dest, id, c >= 0 && c < (int)ARRAY_LEN(stat) ? stat[c] : "UNKNOWN");
}

static void
packet(struct smsbuf *sb, const struct cimd2_packet *p)
{
	char dest[32], ts[32], id[80];
	int err;

	switch (p->op) {
	case CIMD2_LOGIN + CIMD2_RESP:
		smsc_response(sb);
		err = error_code(p);
		smsc_bound(sb, err == 0, cimd2_error_text(err));
		break;
	case CIMD2_SUBMIT + CIMD2_RESP:
		smsc_response(sb);
		err = error_code(p);
		param(p, CIMD2_P_DEST, dest, sizeof dest);
		param(p, CIMD2_P_SC_TIMESTAMP, ts, sizeof ts);
		snprintf(id, sizeof id, "%s:%s", dest, ts);
		smsc_submit_result(sb, (uint32_t)p->num, err, temporary(err), err ? NULL : id,
				   cimd2_error_text(err));
		break;
	case CIMD2_ALIVE + CIMD2_RESP:
	case CIMD2_LOGOUT + CIMD2_RESP:
		smsc_response(sb);
		smsc_pump(sb); /* an MT may have come while the keepalive held the window */
		break;
	case CIMD2_NACK:
		smsc_response(sb);
		if (sb->smsc_state == SMSC_BINDING) {
			smsc_bound(sb, false, "the SMSC could not read the login packet");
			break;
		}
		/* Our packet was garbled on the way: answer it as a temporary failure. */
		log_warn("smsbuf: the SMSC could not read our packet %d", p->num);
		smsc_submit_result(sb, (uint32_t)p->num, 1, true, NULL, "garbled packet");
		break;
	case CIMD2_GENERAL_ERROR:
		log_warn("smsbuf: SMSC general error %d: %s", error_code(p),
			 cimd2_error_text(error_code(p)));
		break;
	case CIMD2_DELIVER:
		respond(sb, p, deliver(sb, p));
		smsc_pump(sb);
		break;
	case CIMD2_STATUS_REPORT:
		respond(sb, p, status_report(sb, p));
		smsc_pump(sb);
		break;
	case CIMD2_ALIVE: {
		struct buf b = {0};
		cimd2_begin(&b, CIMD2_ALIVE + CIMD2_RESP, p->num);
		send_packet(sb, &b);
		break;
	}
	default:
		if (p->op < CIMD2_RESP) { /* a request we do not serve */
			struct buf b = {0};
			cimd2_begin(&b, p->op + CIMD2_RESP, p->num);
			cimd2_add_int(&b, CIMD2_P_ERROR_CODE, 1); /* unexpected operation */
			send_packet(sb, &b);
		}
		break;
	}
}

static void
cimd2_input(struct smsbuf *sb)
{
	struct conn *c = sb->smsc;

	while (c == sb->smsc && c && buf_used(&c->in) > 0) {
		struct cimd2_packet p;
		char err[128];
		size_t skip = 0;
		long n =
		    cimd2_parse(buf_head(&c->in), buf_used(&c->in), &p, &skip, err, sizeof err);

		if (n == 0)
			return;
		if (n < 0) {
			log_warn("smsbuf: bad packet from the SMSC: %s", err);
			buf_consume(&c->in, skip);
			continue;
		}
		/* Copied out: handling it may close the connection and its buffer. */
		char *copy = xmalloc((size_t)n);
		memcpy(copy, buf_head(&c->in), (size_t)n);
		buf_consume(&c->in, (size_t)n);
		if (cimd2_parse(copy, (size_t)n, &p, &skip, err, sizeof err) > 0)
			packet(sb, &p);
		free(copy);
	}
}

const struct smsc_proto smsc_cimd2 = {
    .name = "CIMD2",
    .login = cimd2_login,
    .input = cimd2_input,
    .submit = cimd2_submit,
    .keepalive = cimd2_keepalive,
    .logout = cimd2_logout,
};
