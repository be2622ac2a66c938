/*
 * muc_int: what the files of the muc module share: rooms, occupants and the helpers
 * that both the occupant side (muc.c) and the configuration side (muc_config.c) use.
 */
#ifndef BATON_MUC_INT_H
#define BATON_MUC_INT_H

#include "muc.h"

#define NS_MUC	     "http://jabber.org/protocol/muc"
#define NS_MUC_USER  "http://jabber.org/protocol/muc#user"
#define NS_MUC_ADMIN "http://jabber.org/protocol/muc#admin"
#define NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"
#define NS_ROOMCFG   "http://jabber.org/protocol/muc#roomconfig"
#define NS_XDATA     "jabber:x:data"
#define NS_DELAY     "urn:xmpp:delay"

#define MUC_HISTORY	      20 /* groupchat messages a joiner gets by default (and at most) */
#define MUC_NICK_MAX	      128
#define MUC_DEFAULT_MAX_USERS 200

enum aff { AFF_NONE = 0, AFF_OUTCAST = 1, AFF_MEMBER = 2, AFF_ADMIN = 3, AFF_OWNER = 4 };
enum role { ROLE_NONE, ROLE_VISITOR, ROLE_PARTICIPANT, ROLE_MODERATOR };

extern const char *const muc_aff_names[];
extern const char *const muc_role_names[];

struct occupant {
	struct occupant *next;
	char *nick;
	char *jid;   /* real full JID, where the occupant is reached (changeable: seat moves) */
	char **also; /* more devices of the same account sharing the seat (copied seats) */
	size_t nalso;
	char *bare;
	int role;
	struct xml_node *presence; /* last presence, without the muc <x/> */
};

struct room_cfg {
	char *name;
	bool persistent, members_only, public_room, moderated, change_subject;
	char *secret; /* "" = no password */
	long max_users;
};

enum room_state { ROOM_LOADING, ROOM_READY, ROOM_ABSENT };

struct room_wait {
	struct room_wait *next;
	struct xml_node *st;
	struct jid to;
	char *from;
};

struct room {
	struct worker *w;
	char *jid;
	enum room_state state;
	struct room_cfg cfg;
	char *subject, *subject_by;
	struct hmap affs; /* bare JID -> (void *)(intptr_t)affiliation */
	struct occupant *occupants;
	size_t noccupants;
	struct xml_node *history[MUC_HISTORY];
	size_t hist_start, hist_n;
	struct room_wait *waits, *waits_tail;
	struct hmap relays;	      /* id of a relayed iq -> its asker (muc_requests.c) */
	struct reservation *reserved; /* seats held for a device (continuity, muc_requests.c) */
};

struct reservation {
	struct reservation *next;
	char *holder; /* full JID, or bare JID = any device of the account */
	uint64_t until;
};

/* ---- muc.c ---- */
int muc_aff_of(const struct room *r, const char *bare);
/* Returns the affiliation named s, or -1. */
int muc_aff_parse(const char *s);
/* The bare JID of full, or a copy of it if it does not parse; caller frees. */
char *muc_bare_of(const char *full);
/* "room/nick"; caller frees. */
char *muc_nick_jid(const struct room *r, const char *nick);
struct occupant *muc_by_nick(struct room *r, const char *nick);
struct occupant *muc_by_jid(struct room *r, const char *jid);
/* Answers st (taken) with an error from the room. */
void muc_error(struct room *r, struct xml_node *st, const char *type, const char *cond);
int muc_role_for(const struct room *r, int aff);
/* o leaves the room, everyone told, with status code (0: none). */
void muc_leave(struct room *r, struct occupant *o, int code);
/* o's presence to every occupant (o itself also gets 110 and self_extra). */
void muc_broadcast_presence(struct room *r, struct occupant *o, const char *type, const int *codes,
			    size_t ncodes, const char *new_nick, int self_extra);
/* Adds <feature var=.../> to a disco#info query. */
void muc_feature(struct xml_node *q, const char *var);
/* Removes o without telling anyone. */
void muc_remove(struct room *r, struct occupant *o);
/* Removes jid (one of several devices sharing o's seat) from it, without telling the room. */
void seat_unshare(struct occupant *o, const char *jid);
/* Sends st (taken) to occupant o: to its JID, and a copy to each device sharing the seat. */
void muc_send(struct room *r, const struct occupant *o, struct xml_node *st);

/* ---- muc_config.c ---- */
void muc_cfg_defaults(struct room_cfg *c);
void muc_cfg_parse(struct room_cfg *c, const char *text);
/* Writes the whole room (configuration, subject, affiliations) if it is persistent. */
void muc_save_room(struct room *r);
/* Sets (or with AFF_NONE removes) bare's affiliation, persisting it for persistent rooms. */
void muc_set_aff(struct room *r, const char *bare, int aff);
/* An iq to the room or an occupant (disco, admin, owner, archive). Takes st. */
void muc_room_iq(struct room *r, struct xml_node *st, const struct jid *to, const char *from);
/* Answers the iq st (taken) with a result carrying payload (taken, may be NULL). */
void muc_reply(struct room *r, struct xml_node *st, struct xml_node *payload);

/* ---- muc_requests.c ---- */
/* An iq to room/nick or its answer: relayed; returns false (st kept) if st is neither. */
bool muc_occupant_iq(struct room *r, struct xml_node *st, const struct jid *to, const char *from);
/* A voice request or a moderator's answer to one (taken): returns false if st is neither. */
bool muc_voice_request(struct room *r, struct xml_node *st, struct occupant *o);
/* jabber:iq:register to the room (XEP-0045 7.10). Takes st. */
void muc_register_iq(struct room *r, struct xml_node *st, const char *bare);
/* Tells the occupants the configuration changed (status 104). */
void muc_config_changed(struct room *r);
void muc_relays_free(struct room *r);
/* The iqs of urn:baton:continuity:0 the account sends a room (seat moves, reservations). */
void muc_continuity_iq(struct room *r, struct xml_node *st, const char *from);
/* Seats reserved and not expired; a reservation held for jid is used up (true). */
size_t muc_reserved(struct room *r);
bool muc_take_reservation(struct room *r, const char *jid);
void muc_reservations_free(struct room *r);

#endif
