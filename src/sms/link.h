/*
 * sms/link: what batond and baton-smsbuf share of the SMS link (docs/protocol/sms-link.md):
 * the frame codec (one line per frame, "VERB key=value ..." with percent-encoded values),
 * the handshake's MAC, and the mirrored ring of seed 001 (FIG. 2): slots with a sequence
 * number and one of the states Retrieved, Sent, Confirmed, Processed, and the four Last
 * pointers. Pure code: no sockets, no storage (the owners persist what changes).
 *
 * Invariant: a message's slot is (seq - 1) % size on both sides, and a slot takes a new
 * message only once the one before it there is Processed, so the two rings mirror each other.
 */
#ifndef BATON_SMS_LINK_H
#define BATON_SMS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

#define LINK_VERSION	 "BATON-SMS/0"
#define LINK_MAX_LINE	 (64 * 1024) /* a frame; the longest text is SMS_MAX_TEXT */
#define LINK_MAX_FIELDS	 24
#define SMS_MAX_TEXT	 4000 /* bytes of UTF-8 in one message (about 26 concatenated parts) */
#define SMS_RING_DEFAULT 255

/* ---- frames ---- */

struct link_field {
	const char *key;
	char *value; /* decoded, NUL-terminated */
	size_t len;
};

struct link_frame {
	char verb[16];
	struct link_field f[LINK_MAX_FIELDS];
	size_t n;
	char *mem; /* owns the decoded keys and values */
};

/*
 * Parses one frame at the start of data. Returns the bytes it took (> 0) with fr filled (free
 * it with link_frame_free), 0 if the line is not complete yet, or -1 with a one-line reason in
 * err (line too long, bad verb, bad field, bad escape): the link is then closed.
 */
long link_parse(const char *data, size_t len, struct link_frame *fr, char *err, size_t errlen);
void link_frame_free(struct link_frame *fr);
/* The value of key, or NULL. */
const char *link_get(const struct link_frame *fr, const char *key);
/* Reads an unsigned decimal value; false if absent or not a number. */
bool link_get_u64(const struct link_frame *fr, const char *key, uint64_t *out);

/* Writing: link_begin, link_add..., link_end (the newline). */
void link_begin(struct buf *out, const char *verb);
void link_add(struct buf *out, const char *key, const char *value);
void link_add_u64(struct buf *out, const char *key, uint64_t v);
void link_end(struct buf *out);

/* HMAC-SHA-256(secret, nonce " " name) in lower-case hex (65 bytes with the NUL). */
void link_mac(const char *secret, const char *nonce, const char *name, char out[65]);
/* Compares two MACs in constant time. */
bool link_mac_equal(const char *a, const char *b);

/* ---- the mirrored ring ---- */

enum sms_dir { SMS_MT = 0, SMS_MO = 1 }; /* MT: IM to phone (batond sends); MO: phone to IM */
enum sms_state { SMS_FREE = 0, SMS_RETRIEVED, SMS_SENT, SMS_CONFIRMED, SMS_PROCESSED };

/* What a slot holds. Strings are owned by the slot. */
struct sms_msg {
	uint64_t seq; /* 0 = never used */
	int state;    /* enum sms_state */
	char *from, *to, *text;
	char *ref;   /* MT: the sender's message id in batond; MO report: the SMSC's message id */
	char *extra; /* what else travels with it ("dlr=1", a report's status, an outcome) */
	int64_t stamp;
};

struct sms_ring {
	unsigned size;
	struct sms_msg *slot;
	/* The four pointers of FIG. 2, as sequence numbers (the slot is (seq - 1) % size). */
	uint64_t last_retrieved, last_sent, last_confirmed, last_processed;
};

void ring_init(struct sms_ring *r, unsigned size);
void ring_free(struct sms_ring *r);
static inline unsigned
ring_slot(const struct sms_ring *r, uint64_t seq)
{
	return (unsigned)((seq - 1) % r->size);
}
/* Can the sender take another message (is the next slot free or Processed)? */
bool ring_has_room(const struct sms_ring *r);
/* Number of slots holding a message not yet Processed. */
unsigned ring_busy(const struct sms_ring *r);
/*
 * Sender: puts a message in the next slot (Retrieved) and takes the strings. Returns the
 * slot's message (seq set), or NULL if the ring is full (the strings stay the caller's).
 */
struct sms_msg *ring_take(struct sms_ring *r, char *from, char *to, char *text, char *ref,
			  char *extra);
/* The message with seq, or NULL if its slot holds another (or none). */
struct sms_msg *ring_find(struct sms_ring *r, uint64_t seq);
/* Moves m forward to state (never back) and advances the matching Last pointer. */
void ring_set(struct sms_ring *r, struct sms_msg *m, int state);
/* Fills a slot as loaded from storage (or received), taking the strings. */
struct sms_msg *ring_put(struct sms_ring *r, uint64_t seq, int state, char *from, char *to,
			 char *text, char *ref, char *extra);

/* What a receiver makes of an incoming message for slot/seq (seed 001 R8: duplicates). */
enum ring_verdict {
	RING_NEW,   /* never seen: store it */
	RING_DUP,   /* the slot holds this very message: answer with its state again */
	RING_OLD,   /* an older message of this slot, long Processed: answer Processed */
	RING_CLASH, /* the slot holds an earlier message not yet Processed, or slot != seq's slot */
};
enum ring_verdict ring_check(const struct sms_ring *r, unsigned slot, uint64_t seq);

const char *sms_state_name(int state);
const char *sms_dir_name(int dir);

/* ---- one end of the link: the frames that move messages between the two rings ---- */

/*
 * What an end does with the frames (docs/protocol/sms-link.md 4). An end sends one direction
 * (batond MT, baton-smsbuf MO) and receives the other; the rings are owned by the caller, who
 * persists what the callbacks report before it answers (the durability rule).
 */
struct link_peer;
struct link_peer_ops {
	/* Bytes of one frame for the other end. */
	void (*send)(struct link_peer *p, const char *data, size_t len);
	/*
	 * A message the other end sent, new to the incoming ring (already in slot m, Retrieved
	 * on this side). The owner stores it, then calls link_peer_confirm(); processing it
	 * later ends with link_peer_processed().
	 */
	void (*received)(struct link_peer *p, struct sms_msg *m, const struct link_frame *fr);
	/*
	 * The other end confirmed (state Confirmed) or processed (Processed) an outgoing message;
	 * fr is its frame (PROC may carry status, reason, msgid). The ring is already updated.
	 */
	void (*acked)(struct link_peer *p, struct sms_msg *m, int state,
		      const struct link_frame *fr);
	/* A protocol error: the owner logs why and drops the connection. */
	void (*fail)(struct link_peer *p, const char *why);
};

struct link_peer {
	const struct link_peer_ops *ops;
	void *arg;
	int out_dir;		 /* the direction this end sends */
	struct sms_ring *out;	 /* its ring for out_dir */
	struct sms_ring *in;	 /* its ring for the other direction */
	bool up;		 /* handshake done: MSG frames may flow */
	uint64_t sent, received; /* frames, for status */
};

/*
 * Handles one frame after the handshake (MSG, CONF, PROC, ASK, PING, PONG). Returns 0, or -1 if
 * the verb is not a message frame (the caller handles handshake frames itself).
 */
int link_peer_frame(struct link_peer *p, const struct link_frame *fr);
/* Sends m (Retrieved or Sent) and marks it Sent. */
void link_peer_send(struct link_peer *p, struct sms_msg *m);
/* After a (re)connection: resends what was Sent but not Confirmed, asks about what was
 * Confirmed but not Processed, then sends what is Retrieved (seed 001 FIG. 3, 309). */
void link_peer_resync(struct link_peer *p);
/* Receiver: m is stored: tell the sender (Confirmed). */
void link_peer_confirm(struct link_peer *p, struct sms_msg *m);
/*
 * Receiver: m was processed; fields (" key=value..." already encoded, or NULL) go along with
 * the PROC and replace m->extra, so a PROC asked for again carries them too (the owner stores
 * them as the slot's extra, "" for none).
 */
void link_peer_processed(struct link_peer *p, struct sms_msg *m, const char *fields);

#endif
