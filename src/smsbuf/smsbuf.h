/*
 * smsbuf: baton-smsbuf, the SMSC buffer server of seed 001. One thread, one loop: a
 * stop-and-wait session toward the operator's SMSC (SMPP 3.4 or CIMD2, smsc.c with one
 * protocol file each), a windowed, resumable link to batond (uplink.c), and between them the
 * two mirrored rings on disk (buffer.c).
 *
 * Invariant: a message is in the ring on disk before anyone is told it arrived: the SMSC's
 * deliver is answered, and batond's MSG confirmed, only after its journal record was written.
 */
#ifndef BATON_SMSBUF_H
#define BATON_SMSBUF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/core.h"
#include "../net/net.h"
#include "../sms/link.h"
#include "gsm.h"

struct smsbuf;

/* What a part of an MT looks like to a protocol's submit. */
struct smsc_part {
	const char *to;
	int coding; /* enum sms_coding */
	const uint8_t *ud;
	size_t len;	/* user data without UDH: unpacked septets or UCS-2 octets */
	unsigned total; /* parts of the message; > 1 = concatenated */
	unsigned part;	/* 1-based */
	uint8_t ref;	/* concatenation reference */
	bool dlr;	/* ask for a delivery receipt */
};

/* One SMSC protocol: it frames requests and reads responses; smsc.c does the rest. */
struct smsc_proto {
	const char *name;
	/* Connected: send the bind / login request. */
	void (*login)(struct smsbuf *sb);
	/* Bytes from the SMSC are in sb->smsc->in: handle whole packets, consume them. */
	void (*input)(struct smsbuf *sb);
	/* Send one submit request for part p (a request: counted against the window). */
	void (*submit)(struct smsbuf *sb, const struct smsc_part *p);
	/* Send a keepalive request (enquire_link / alive). */
	void (*keepalive)(struct smsbuf *sb);
	/* Send the unbind / logout request (shutdown). */
	void (*logout)(struct smsbuf *sb);
};
extern const struct smsc_proto smsc_smpp, smsc_cimd2;

enum smsc_state { SMSC_DOWN, SMSC_CONNECTING, SMSC_BINDING, SMSC_BOUND, SMSC_UNBINDING };
enum link_state {
	UPLINK_DOWN,
	UPLINK_CONNECTING, /* waiting for batond's greeting */
	UPLINK_STARTTLS,   /* STARTTLS sent, waiting for PROCEED */
	UPLINK_TLS,	   /* TLS starting: HELLO goes on the next timer */
	UPLINK_HELLO,	   /* HELLO sent, waiting for WELCOME */
	UPLINK_UP
};

/* What an MO intake answers the SMSC with. */
enum mo_verdict {
	MO_OK,	     /* stored (or a part kept until its message is whole) */
	MO_FULL,     /* the ring is full: temporary error, the SMSC retries later (R11) */
	MO_BAD,	     /* undecodable: permanent error */
	MO_STORE_ERR /* the disk failed: temporary error */
};

struct smsbuf {
	const struct config *cfg;
	struct loop *loop;
	const char *name;
	/* the journal on disk (journal.c) */
	int jfd;
	unsigned long jrecords;
	struct hmap parts; /* "from ref total" -> MO parts waiting for the rest */
	char *note_smsc, *note_link;
	struct sms_ring mt, mo; /* the mirrored rings (link.h) */
	bool stopping;

	/* ---- toward the SMSC (smsc.c) ---- */
	const struct smsc_proto *proto;
	struct conn *smsc;
	int smsc_state;
	unsigned outstanding; /* our requests the SMSC has not answered */
	unsigned max_outstanding;
	uint32_t seq;		 /* the protocol's last request number */
	struct timer smsc_timer; /* reconnect, bind timeout, keepalive */
	struct timer retry_timer;
	uint64_t smsc_backoff, smsc_last_rx;
	char smsc_error[160]; /* the last error, for status and /metrics */
	/* the MT being submitted, part by part */
	struct {
		uint64_t seq; /* 0 = none */
		struct sms_seg *segs;
		bool *acked; /* per part: the SMSC accepted it */
		int nsegs, coding, next, done;
		uint8_t ref;
		struct buf msgids;
		uint32_t req[16]; /* request numbers of parts in flight, and their part index */
		int req_part[16];
		unsigned nreq;
	} sub;
	uint8_t concat_ref;
	uint64_t mt_submitted, mo_received, reports_received;

	/* ---- toward batond (uplink.c) ---- */
	struct conn *link;
	int link_state;
	struct tls_ctx *tls;
	struct link_peer peer;
	struct timer link_timer;
	uint64_t link_backoff, link_last_rx;
	bool link_pinged;
	char link_error[160];
};

/* journal.c: the rings, parts and state on disk (DATA/ring.log); every call returns 0 or -1 */
int journal_open(struct smsbuf *sb, bool write, char *err, size_t errlen);
int journal_slot(struct smsbuf *sb, int dir, const struct sms_msg *m);
int journal_state(struct smsbuf *sb, int dir, const struct sms_msg *m, int state,
		  const char *extra);
/* Keeps part n of total of key; when it completes the message, *whole gets the joined text
 * (to free) and the parts are forgotten (journal_whole records it with the message's slot). */
int journal_part(struct smsbuf *sb, const char *key, const char *from, const char *to,
		 unsigned total, unsigned n, const char *text, char **whole);
int journal_whole(struct smsbuf *sb, const struct sms_msg *m, const char *key);
void journal_note(struct smsbuf *sb, const char *what, const char *text);
int journal_compact(struct smsbuf *sb);
void journal_close(struct smsbuf *sb);

/* buffer.c: the rings */
int buffer_load(struct smsbuf *sb, bool write, char *err, size_t errlen);
/* Prints both rings, the parts waiting and the SMSC and link state (baton-smsbuf --status). */
void buffer_status(struct smsbuf *sb, FILE *out);
/* An MO text (whole), or a report (extra "report:<stat>:<msgid>"): into the MO ring. */
enum mo_verdict buffer_mo(struct smsbuf *sb, const char *from, const char *to, const char *text,
			  const char *extra);
/* One part of a concatenated MO; the message goes into the ring once all parts are there. */
enum mo_verdict buffer_mo_part(struct smsbuf *sb, const char *from, const char *to, unsigned ref,
			       unsigned total, unsigned part, const char *text);
/* The next MT to submit (Confirmed, oldest first), or NULL. */
struct sms_msg *buffer_mt_next(struct smsbuf *sb);
/* The SMSC took every part of MT m (ok) or refused it for good (reason). */
void buffer_mt_done(struct smsbuf *sb, struct sms_msg *m, bool ok, const char *msgids,
		    const char *reason);
void buffer_free(struct smsbuf *sb);
/* Records what = "link" or "smsc" is up or down (and why) for `batonctl sms status`. */
void buffer_note(struct smsbuf *sb, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* smsc.c: the session toward the SMSC */
void smsc_start(struct smsbuf *sb);
/* SIGTERM: finish the request in flight, unbind / log out, then stop the loop (2 s at most). */
void smsc_shutdown(struct smsbuf *sb);
/* After the loop: close the session, free its state. */
void smsc_stop(struct smsbuf *sb);
/* Something may be submitted now (an MT arrived, a response came). */
void smsc_pump(struct smsbuf *sb);
/* Protocols report: */
uint32_t smsc_next_seq(struct smsbuf *sb);
void smsc_request_sent(struct smsbuf *sb);
void smsc_response(struct smsbuf *sb);
void smsc_bound(struct smsbuf *sb, bool ok, const char *why);
void smsc_submit_result(struct smsbuf *sb, uint32_t req, int status, bool temporary,
			const char *msgid, const char *why);
void smsc_fail(struct smsbuf *sb, const char *why);
/* A delivery receipt: the message msgid reached the phone (stat "DELIVRD") or did not. */
enum mo_verdict smsc_report(struct smsbuf *sb, const char *from, const char *msgid,
			    const char *stat);

/* uplink.c: the link to batond */
void uplink_start(struct smsbuf *sb);
void uplink_stop(struct smsbuf *sb);
/* New MO messages are Retrieved: send them if the link is up. */
void uplink_pump(struct smsbuf *sb);
/* An MT reached Processed: tell batond. */
void uplink_processed(struct smsbuf *sb, struct sms_msg *m, const char *fields);

#endif
