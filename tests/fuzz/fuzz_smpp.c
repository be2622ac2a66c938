/*
 * fuzz_smpp: libFuzzer target for the SMPP 3.4 PDU codec. The input is decoded twice: as a
 * byte stream split by smpp_pdu_len (as the session reads it), and whole, with its
 * command_length patched to its size so the body parsers are reached at once.
 *
 * Invariants checked: decode never reads past the bytes it is given (every PDU sits in a heap
 * block of exactly its length, so ASan sees an overread); a decoded PDU has every string
 * NUL-terminated inside its field and its payload inside the PDU; and whatever decodes
 * re-encodes to bytes that decode back to the same fields and re-encode to the same bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "smsbuf/smpp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what, uint32_t id)
{
	if (!cond) {
		fprintf(stderr, "fuzz_smpp: %s (command 0x%08x)\n", what, id);
		abort();
	}
}

static bool
terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

#define TERMINATED(p, f) terminated((p)->f, sizeof(p)->f)

static void
check_strings(const struct smpp_pdu *p)
{
	check(TERMINATED(p, system_id) && TERMINATED(p, password) && TERMINATED(p, system_type) &&
		  TERMINATED(p, address_range) && TERMINATED(p, service_type) &&
		  TERMINATED(p, source_addr) && TERMINATED(p, dest_addr) &&
		  TERMINATED(p, schedule_delivery_time) && TERMINATED(p, validity_period) &&
		  TERMINATED(p, message_id) && TERMINATED(p, receipted_message_id),
	      "a string is not terminated inside its field", p->command_id);
	check(p->sm_length <= sizeof p->short_message, "sm_length past short_message",
	      p->command_id);
}

/* The fields smpp_encode writes for p's command_id (TLVs are read, never written). */
static bool
same(const struct smpp_pdu *a, const struct smpp_pdu *b)
{
	if (a->command_id != b->command_id || a->command_status != b->command_status ||
	    a->sequence != b->sequence)
		return false;
	switch (a->command_id) {
	case SMPP_BIND_RECEIVER:
	case SMPP_BIND_TRANSMITTER:
	case SMPP_BIND_TRANSCEIVER:
		return !strcmp(a->system_id, b->system_id) && !strcmp(a->password, b->password) &&
		       !strcmp(a->system_type, b->system_type) &&
		       !strcmp(a->address_range, b->address_range) &&
		       a->interface_version == b->interface_version && a->addr_ton == b->addr_ton &&
		       a->addr_npi == b->addr_npi;
	case SMPP_SUBMIT_SM:
	case SMPP_DELIVER_SM:
		return !strcmp(a->service_type, b->service_type) &&
		       !strcmp(a->source_addr, b->source_addr) &&
		       !strcmp(a->dest_addr, b->dest_addr) &&
		       !strcmp(a->schedule_delivery_time, b->schedule_delivery_time) &&
		       !strcmp(a->validity_period, b->validity_period) &&
		       a->source_ton == b->source_ton && a->source_npi == b->source_npi &&
		       a->dest_ton == b->dest_ton && a->dest_npi == b->dest_npi &&
		       a->esm_class == b->esm_class && a->protocol_id == b->protocol_id &&
		       a->priority_flag == b->priority_flag &&
		       a->registered_delivery == b->registered_delivery &&
		       a->replace_if_present == b->replace_if_present &&
		       a->data_coding == b->data_coding &&
		       a->sm_default_msg_id == b->sm_default_msg_id &&
		       a->sm_length == b->sm_length &&
		       !memcmp(a->short_message, b->short_message, a->sm_length);
	case SMPP_SUBMIT_SM | SMPP_RESP:
	case SMPP_DELIVER_SM | SMPP_RESP:
		return !strcmp(a->message_id, b->message_id);
	case SMPP_BIND_RECEIVER | SMPP_RESP:
	case SMPP_BIND_TRANSMITTER | SMPP_RESP:
	case SMPP_BIND_TRANSCEIVER | SMPP_RESP:
		return !strcmp(a->system_id, b->system_id);
	default:
		return true;
	}
}

/* Decodes exactly len bytes from a heap block of that size; checks what decoded. */
static void
one_pdu(const uint8_t *data, size_t len)
{
	uint8_t *copy = xmalloc(len ? len : 1);
	struct smpp_pdu p, q;
	struct buf b = {0}, b2 = {0};
	char err[128];
	int rc;

	memcpy(copy, data, len);
	rc = smpp_decode(copy, len, &p, err, sizeof err);
	if (rc != 0) {
		check(rc < 0 && memchr(err, '\0', sizeof err) && err[0], "refusal without a reason",
		      0);
		free(copy);
		return;
	}
	check(len >= SMPP_HEADER, "a PDU shorter than its header decoded", p.command_id);
	check_strings(&p);
	check(!p.payload || (p.payload >= copy && p.payload_len <= len &&
			     p.payload + p.payload_len <= copy + len),
	      "payload outside the PDU", p.command_id);
	if (len <= SMPP_MAX_PDU)
		check(smpp_pdu_len(copy, len) == (long)len, "smpp_pdu_len disagrees with decode",
		      p.command_id);
	free(copy);

	/* decode(encode(p)) == p. smpp_encode writes interface_version 0 as 0x34 (baton binds
	 * as a 3.4 ESME, 5.2.4), so that one field is compared as it will be written. */
	if (p.interface_version == 0 &&
	    (p.command_id == SMPP_BIND_RECEIVER || p.command_id == SMPP_BIND_TRANSMITTER ||
	     p.command_id == SMPP_BIND_TRANSCEIVER))
		p.interface_version = SMPP_VERSION;
	smpp_encode(&p, &b);
	copy = xmalloc(b.len);
	memcpy(copy, b.data, b.len);
	check(smpp_pdu_len(copy, b.len) == (long)b.len, "encoded command_length is wrong",
	      p.command_id);
	rc = smpp_decode(copy, b.len, &q, err, sizeof err);
	check(rc == 0, "an encoded PDU does not decode", p.command_id);
	check(same(&p, &q), "decode(encode(p)) != p", p.command_id);
	smpp_encode(&q, &b2);
	check(b.len == b2.len && memcmp(b.data, b2.data, b.len) == 0,
	      "encoding is not canonical: encode(decode(encode(p))) != encode(p)", p.command_id);
	free(copy);
	buf_free(&b);
	buf_free(&b2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	/* As a stream: PDUs one after another, as smsc_smpp.c reads them. */
	while (off < size) {
		long n = smpp_pdu_len(data + off, size - off);
		if (n <= 0)
			break;
		check(n >= SMPP_HEADER && n <= SMPP_MAX_PDU, "smpp_pdu_len out of range", 0);
		if ((size_t)n > size - off)
			break; /* the rest has not arrived */
		one_pdu(data + off, (size_t)n);
		off += (size_t)n;
	}

	/* Whole, with command_length made to match, and as it is (usually a mismatch). */
	if (size >= SMPP_HEADER && size <= SMPP_MAX_PDU) {
		uint8_t *fixed = xmalloc(size);
		memcpy(fixed, data, size);
		fixed[0] = (uint8_t)(size >> 24);
		fixed[1] = (uint8_t)(size >> 16);
		fixed[2] = (uint8_t)(size >> 8);
		fixed[3] = (uint8_t)size;
		one_pdu(fixed, size);
		free(fixed);
	}
	one_pdu(data, size);
	return 0;
}
