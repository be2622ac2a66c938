/*
 * smpp: the SMPP 3.4 PDU codec of baton-smsbuf (the SMPP v3.4 specification, issue 1.2):
 * the PDUs an ESME needs toward an SMSC (bind_transceiver, submit_sm, deliver_sm,
 * enquire_link, unbind, generic_nack and their responses) and the TLVs it reads. Pure code:
 * bytes in, a struct out, and back.
 *
 * Invariant: smpp_decode never reads past the command_length it was given, and every
 * C-Octet String it returns is NUL-terminated within its field's maximum size (3.1).
 */
#ifndef BATON_SMSBUF_SMPP_H
#define BATON_SMSBUF_SMPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

/* 5.1.2.1 command_id values. */
#define SMPP_GENERIC_NACK     0x80000000u
#define SMPP_BIND_RECEIVER    0x00000001u
#define SMPP_BIND_TRANSMITTER 0x00000002u
#define SMPP_SUBMIT_SM	      0x00000004u
#define SMPP_DELIVER_SM	      0x00000005u
#define SMPP_UNBIND	      0x00000006u
#define SMPP_BIND_TRANSCEIVER 0x00000009u
#define SMPP_ENQUIRE_LINK     0x00000015u
#define SMPP_RESP	      0x80000000u /* a response's command_id = request | SMPP_RESP */

/* 5.1.3 command_status values baton uses. */
#define SMPP_ROK	 0x00
#define SMPP_RINVMSGLEN	 0x01
#define SMPP_RINVCMDLEN	 0x02
#define SMPP_RINVCMDID	 0x03
#define SMPP_RINVBNDSTS	 0x04
#define SMPP_RALYBND	 0x05
#define SMPP_RSYSERR	 0x08
#define SMPP_RINVDSTADR	 0x0B
#define SMPP_RBINDFAIL	 0x0D
#define SMPP_RINVPASWD	 0x0E
#define SMPP_RINVSYSID	 0x0F
#define SMPP_RMSGQFUL	 0x14
#define SMPP_RTHROTTLED	 0x58
#define SMPP_RX_T_APPN	 0x64 /* ESME receiver temporary app error */
#define SMPP_RX_P_APPN	 0x65 /* ESME receiver permanent app error */
#define SMPP_RX_R_APPN	 0x66
#define SMPP_HEADER	 16
#define SMPP_MAX_PDU	 65536 /* longer command_lengths are refused */
#define SMPP_ESM_UDHI	 0x40  /* esm_class: short_message starts with a UDH */
#define SMPP_ESM_RECEIPT 0x04  /* esm_class of deliver_sm: an SMSC delivery receipt */
#define SMPP_VERSION	 0x34

struct smpp_pdu {
	uint32_t command_id, command_status, sequence;
	/* bind_* (4.1) */
	char system_id[16], password[9], system_type[13];
	uint8_t interface_version, addr_ton, addr_npi;
	char address_range[41];
	/* submit_sm / deliver_sm (4.4, 4.6) */
	char service_type[6];
	uint8_t source_ton, source_npi;
	char source_addr[21];
	uint8_t dest_ton, dest_npi;
	char dest_addr[21];
	uint8_t esm_class, protocol_id, priority_flag;
	char schedule_delivery_time[17], validity_period[17];
	uint8_t registered_delivery, replace_if_present, data_coding, sm_default_msg_id;
	uint8_t short_message[255];
	size_t sm_length;
	/* *_resp: submit_sm_resp's message_id (4.4.2); bind_*_resp's system_id is in system_id */
	char message_id[65];
	/* TLVs read (5.3.2): receipted_message_id, message_state, message_payload, sar_* */
	char receipted_message_id[65];
	int message_state; /* -1 if absent */
	const uint8_t *payload;
	size_t payload_len;
	int sar_ref, sar_total, sar_seq; /* -1 if absent */
};

/*
 * How long the PDU starting at data is: 0 if fewer than 4 bytes are there, else its
 * command_length, or -1 if that is below the header size or above SMPP_MAX_PDU.
 */
long smpp_pdu_len(const uint8_t *data, size_t avail);
/*
 * Decodes one whole PDU (len = its command_length). Returns 0, or -1 with a one-line reason
 * in err (truncated body, unterminated string, overrunning TLV). p->payload points into data.
 */
int smpp_decode(const uint8_t *data, size_t len, struct smpp_pdu *p, char *err, size_t errlen);
/* Encodes p (its command_id decides the body) and appends it to out. */
void smpp_encode(const struct smpp_pdu *p, struct buf *out);
/* A PDU with only a header (enquire_link, unbind, their responses, generic_nack). */
void smpp_encode_header(uint32_t id, uint32_t status, uint32_t seq, struct buf *out);
/* Is status a temporary condition worth retrying (throttled, queue full, system error)? */
bool smpp_status_temporary(uint32_t status);
const char *smpp_status_text(uint32_t status);
const char *smpp_command_name(uint32_t id);

#endif
