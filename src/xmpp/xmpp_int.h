/*
 * xmpp_int: the structures the files of the xmpp module share. Who owns what:
 * a worker owns its loop, its accounts (those whose home it is) and the sessions
 * currently attached to it; an account owns its roster cache; a session owns its
 * connection and parser.
 */
#ifndef BATON_XMPP_INT_H
#define BATON_XMPP_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "../net/net.h"
#include "../store/store.h"
#include "../xml/xml.h"
#include "xmpp.h"

#define NS_CLIENT      "jabber:client"
#define NS_STREAM      "http://etherx.jabber.org/streams"
#define NS_STREAMS     "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STANZAS     "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_TLS	       "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL	       "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND	       "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION     "urn:ietf:params:xml:ns:xmpp-session"
#define NS_ROSTER      "jabber:iq:roster"
#define NS_ROSTERVER   "urn:xmpp:features:rosterver"
#define NS_DISCO_INFO  "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_PING	       "urn:xmpp:ping"
#define NS_SM	       "urn:xmpp:sm:3"
#define NS_CSI	       "urn:xmpp:csi:0"
#define NS_VERSION     "jabber:iq:version"
#define NS_SERVER      "jabber:server"
#define NS_DIALBACK    "jabber:server:dialback"
#define NS_COMPONENT   "jabber:component:accept"

struct server;
struct worker;
struct account;
struct session;
struct sm_item;

/*
 * An extension of the account's own state (continuity, shared identity): hooks the xmpp
 * module calls on the account's home worker, and a slot in every session and account for
 * the extension's state. batond registers them with server_add_ext() before start.
 * Every hook may be NULL.
 */
#define XMPP_EXT_MAX 4
struct xmpp_ext {
	const char *ns; /* iqs a session sends to its own account with a payload in ns */
	int slot;	/* index into session->ext[] and account->ext[], set on registration */
	/* such an iq (get or set), taken */
	void (*iq)(struct session *s, struct xml_node *st);
	/* a message or presence the session sent (out) or is being sent */
	void (*seen)(struct session *s, const struct xml_node *st, bool out);
	/* a changed copy of st for s to get instead (continuity: media the device cannot
	 * show), or NULL */
	struct xml_node *(*adapt)(struct session *s, const struct xml_node *st);
	/* which session a message from 'from' to the account goes to, or NULL: the usual rules */
	struct session *(*target)(struct account *a, const struct xml_node *st,
				  const struct jid *to, const struct jid *from);
	/* the full JID of another account such a message goes to instead, or NULL */
	const char *(*redirect)(struct account *a, const struct xml_node *st, const struct jid *to,
				const struct jid *from);
	/* an iq request in ns from someone else to the account's bare JID, or an answer to the
	 * account whose id begins with result_prefix; taken */
	void (*account_iq)(struct account *a, struct xml_node *st, const struct jid *from);
	const char *result_prefix;
	/* may s bind (bind_iq: its bind request)? NULL, or the reason to refuse with not-allowed */
	const char *(*bind_check)(struct account *a, struct session *s,
				  const struct xml_node *bind_iq);
	/* a session bound a resource (bind_iq its request), or resumed one (bind_iq NULL) */
	void (*bound)(struct session *s, const struct xml_node *bind_iq);
	/* a message to the account: 0 deliver, 1 keep it in offline storage, 2 refuse it */
	int (*barred)(struct account *a, const struct xml_node *st);
	/* SASL PLAIN with a password that is a one-time credential of the extension for bare?
	 * Runs on the session's (any) worker; it may note the use in s->ext[slot]. */
	bool (*auth_token)(struct session *s, const char *bare, const char *password);
	/* the extension's state of account bare, read with it (storage thread) */
	void *(*load)(struct store *st, const char *bare);
	/* a bound session ends (before it leaves its account) */
	void (*session_end)(struct session *s);
	void (*session_free)(struct session *s);
	void (*account_free)(struct account *a);
	/* a device that is not a session (presence_device) became available (up) or went away */
	void (*device)(struct account *a, const char *full, bool up);
};
/*
 * Set by the module that owns devices that are not sessions (SIP): called on a's home worker
 * when such a device must go (superseded in exclusive mode); the module drops it, and its
 * presence_device(NULL) follows.
 */
extern void (*device_drop)(struct worker *w, const char *bare, const char *full);
void server_add_ext(struct xmpp_ext *ext);
/* The registered extensions, NULL-terminated. */
extern struct xmpp_ext *xmpp_exts[XMPP_EXT_MAX + 1];

/* A stored message sent to a session without stream management, and when. */
struct offline_grace {
	int64_t id;
	uint64_t at;
};

/* ---- server and workers (server.c) ---- */

struct worker {
	int id;
	struct server *srv;
	struct loop *loop;
	pthread_t thread;
	struct hmap accounts;	  /* bare JID -> struct account, for accounts homed here */
	struct session *sessions; /* every session attached to this worker */
	struct session *reap;	  /* closed sessions, freed at the end of the turn */
	struct loop_io c2s_io, c2s_tls_io;
	struct loop_io *extra_io; /* one per server_add_listener() */
	struct timer stop_timer;
	struct timer offline_sweep; /* worker 0 only: expires old offline messages */
	struct timer trim;	    /* frees the parsers of idle sessions (memory per connection) */
	unsigned long push_seq;	    /* ids of server-generated iqs */
	struct hmap rooms;	    /* MUC rooms homed here (muc.c) */
	struct hmap s2s_out; /* "local remote" -> struct s2s_out, for remote domains homed here */
	struct hmap s2s_in;  /* id -> struct s2s_in accepted on this worker */
	struct hmap comps;   /* domain -> struct component connected on this worker */
	bool stopping;	     /* server_stop() began: drop new work, free what arrives */
	/* messages delivered before being stored, for accounts homed here (durable.c) */
	struct imap inflight; /* negative id -> struct inflight */
	int64_t fl_seq;
	struct inflight *fl_first, *fl_last; /* waiting for an ack, oldest first */
	struct timer fl_timer;
};

struct server {
	const struct config *cfg;
	struct worker *workers;
	int nworkers;
	struct store_thread *store;
	struct tls_ctx *tls;
	int c2s_fd, c2s_tls_fd;
	int extra_fd[8]; /* server_add_listener(), then s2s and components */
	void (*extra_accept[8])(struct worker *w, int fd);
	int nextra;
	struct tls_ctx *s2s_tls_in, *s2s_tls_out; /* NULL: federation off */
	struct s2s_shared *s2s;			  /* s2s.c: counts across workers */
	struct comp_registry *comps;		  /* component.c: domain -> worker */
	int64_t started;
	_Atomic bool stopping; /* routing drops stanzas instead of posting them */
	bool joined;	       /* the workers' threads ended: server_stop() drains their loops */
	char key[33]; /* random per process: marks stanzas the server made for its own services */
	const struct xmpp_service *services[8];
	char *service_domains[8]; /* prefix.<domain> of each */
	int nservices;
};

/* The worker that is home to bare JID. */
struct worker *server_home(struct server *srv, const char *bare);
/* The service serving domain, or NULL. */
const struct xmpp_service *server_service(const struct server *srv, const char *domain);
/* Submits a storage job whose completion comes back to the calling worker. */
void worker_store(struct worker *w, struct store_job *job);

/* ---- client sessions (c2s.c) ---- */

enum session_state {
	SS_HEADER, /* waiting for the stream header */
	SS_AUTH,   /* features sent; TLS and SASL */
	SS_BIND,   /* authenticated; waiting for resource binding */
	SS_ACTIVE, /* bound: stanzas flow */
	SS_CLOSED, /* closed; freed at the end of the turn */
};

/* A held-back XEP-0198 ack (sm.c): the session and the count of the stanza it is for. */
struct sm_hold_slot {
	uint32_t seq;
	bool released;
	uint32_t r_owed; /* <r/>s that came after this hold and before the next: answered once
			    every hold up to this one is released */
};
struct sm_held {
	struct session *s; /* NULL: nothing held */
	uint32_t seq;
};

struct session {
	struct worker *w;
	const struct c2s_transport *tp; /* NULL while hibernating (XEP-0198) or closed */
	void *t;
	struct xml_stream *parser;
	enum session_state state;
	char id[17]; /* log prefix (stream ids are fresh per stream, RFC 6120 4.7.3) */
	bool authenticated;
	bool busy;	       /* waiting for storage or migration: stanzas queue up */
	bool restart;	       /* a stream restart happened; drop the rest of the old stream */
	bool available;	       /* initial presence sent (RFC 6121 4.2) */
	bool interested;       /* requested the roster (RFC 6121 2.1.6) */
	bool carbons;	       /* XEP-0280 enabled */
	bool block_interested; /* asked for the block list (XEP-0191 pushes) */
	bool csi_inactive;     /* XEP-0352 */
	bool csi_flushing;     /* transient */
	struct hmap csi_held;  /* contact JID -> latest presence held while inactive */
	bool delivered;	       /* transient: got the message being routed (carbons skip it) */
	bool read_all;	       /* closed its stream cleanly: it read everything sent before */
	bool peer_closed;      /* the client sent </stream:stream> */
	bool migrating;	       /* in flight to the account's home worker */
	bool processing;       /* inside session_process() */
	int parse_error;       /* xml_status of the parser, acted on once the queue is drained */
	uint64_t last_input;   /* now_ms() of the last bytes fed to the parser */
	unsigned jobs; /* callbacks pending that point to this session (storage, account load) */
	struct worker *migrate_to;
	struct sasl *sasl;
	int auth_failures;
	struct xml_node *q_head, *q_tail; /* stanzas parsed while busy, in order */
	size_t q_len;
	struct timer auth_timer;
	/* once authenticated / bound */
	char *user; /* localpart */
	char *bare; /* user@domain */
	char *full; /* user@domain/resource once bound */
	char *resource;
	struct account *acct;
	int priority;
	struct xml_node *presence; /* last available presence broadcast, from stamped */
	struct hmap directed;	   /* JIDs that got directed available presence (RFC 6121 4.6) */
	/* offline delivery (offline.c) */
	int64_t offline_upto;	    /* id of the last stored message sent to this session */
	bool offline_more;	    /* more pages to send */
	bool offline_loading;	    /* a page is being loaded */
	struct timer offline_timer; /* pacing, then the grace period before deletion */
	bool offline_ack_wait; /* all sent: delete them as the client acknowledges (XEP-0198) */
	struct offline_grace *grace; /* live stored messages sent without stream management */
	size_t grace_n, grace_cap;
	struct timer grace_timer;
	/* stream management (sm.c, XEP-0198) */
	bool sm_enabled, sm_resume;
	bool sm_overflow;   /* closing: too much unacknowledged */
	bool sm_r_sent;	    /* an <r/> is outstanding */
	char sm_id[25];	    /* resumption id */
	uint32_t sm_in;	    /* stanzas handled from the client */
	uint32_t sm_out;    /* stanzas sent to the client */
	uint32_t sm_queued; /* of those, not yet acknowledged */
	struct sm_item *sm_head, *sm_tail;
	struct timer sm_hold;	    /* the resumption window after the connection broke */
	struct sm_hold_slot *sm_if; /* stanzas whose ack is held back (ring, oldest first) */
	size_t sm_if_head, sm_if_n, sm_if_cap;
	struct session *sm_successor; /* resumed as this one: pending stores release there */
	uint32_t sm_forward_n;	      /* how many of them are still to come */
	void *ext[XMPP_EXT_MAX];      /* state of each extension (struct xmpp_ext) */
	char *reg_token;	      /* an invitation accepted before registering (register.c) */
	struct session *acct_next;    /* in acct->sessions */
	struct session *w_next, *w_prev;
	struct session *reap_next;
};

/* Frees the parser memory of w's sessions idle for a while; runs from a periodic timer. */
void c2s_trim_idle(struct worker *w);
/* Accepts connections on a listening socket of worker w (a loop_io callback). */
void c2s_accept(struct loop_io *io, uint32_t events);
/* Tells the extensions that s bound (bind_iq its request) or resumed (NULL) its resource. */
void session_ext_bound(struct session *s, const struct xml_node *bind_iq);
/* Output helpers over the session's transport (no-ops without one). */
void session_write(struct session *s, const char *data, size_t len);
size_t session_out_pending(const struct session *s);
bool session_secure(const struct session *s);
/* The peer's address ("ip:port", "[v6]:port"), "?" without a transport. */
const char *session_peer(const struct session *s);
/* Writes a stanza to the session (serialized in jabber:client); the tree stays the caller's. */
void session_send(struct session *s, const struct xml_node *st);
/* The same for a message whose stored copy (id stored, durable.c) goes when s acks it. */
void session_send_stored(struct session *s, const struct xml_node *st, int64_t stored);
/* Sends a stream error with condition (and optional text) and closes the session. */
void session_stream_error(struct session *s, const char *condition, const char *text);
/* Closes the session as system shutdown (server_stop). */
void session_shutdown(struct session *s);
/* Closes the session (no stream error); reason is for the log. */
void session_close(struct session *s, const char *reason);
/* A pending callback for s finished; frees s later if it was closed meanwhile. */
void session_unref(struct session *s);
/* Sends s an iq result (payload taken, may be NULL) or an error reply for st, from the server. */
void session_reply(struct session *s, const struct xml_node *iq, struct xml_node *payload);
void session_reply_error(struct session *s, const struct xml_node *st, const char *type,
			 const char *cond, const char *text);
/* Marks s as waiting (its input pauses, stanzas queue) or not. */
void session_busy(struct session *s, bool busy);
/* Runs the stanzas queued on s, in order, until it is busy again. */
void session_process(struct session *s);

/* ---- in-band registration (register.c, XEP-0077) ---- */

/* True for an iq with a jabber:iq:register query. */
bool register_is(const struct xml_node *st);
/* Handles one (before or after authentication). Takes st. */
void register_iq(struct session *s, struct xml_node *st);
/* True for an iq with a XEP-0401 <preauth/>; register_preauth() checks its token (takes st). */
bool register_preauth_is(const struct xml_node *st);
void register_preauth(struct session *s, struct xml_node *st);
/* Appends the stream features of registration by invitation (c2s.registration = token). */
void register_features(struct buf *b);
/* Frees closed sessions of w; called at the end of each turn. */
void session_reap(struct worker *w);

/* ---- push notifications (push.c, XEP-0357) ---- */

/* True for an iq with <enable/> or <disable/> in urn:xmpp:push:0; push_iq() handles it (takes st).
 */
bool push_is(const struct xml_node *st);
void push_iq(struct session *s, struct xml_node *st);
/* Message st reached a: after delivery to the sessions marked delivered (none: it waits in
 * storage), notifies a's app servers if no connected session took it. */
void push_message(struct account *a, const struct xml_node *st);
/* True for the answer of an app server to one of our publishes; push_result() takes it. */
bool push_is_result(const struct xml_node *st);
void push_result(struct account *a, struct xml_node *st, const struct jid *from);

/* ---- external service discovery (extdisco.c, XEP-0215) ---- */

/* Whether services are configured (the feature is advertised then). */
bool extdisco_enabled(const struct config *cfg);
/* Checks extdisco.services at start-up; 0, or -1 with a one-line reason in err. */
int extdisco_check(const struct config *cfg, char *err, size_t errlen);
/* True for a <services/> or <credentials/> request to the server; extdisco_iq() takes st. */
bool extdisco_is(const struct xml_node *st);
void extdisco_iq(struct worker *w, struct xml_node *st);

/* ---- accounts (account.c): per-account state on the home worker ---- */

enum account_state { AS_LOADING, AS_READY, AS_MISSING };

struct roster_item {
	char *contact;
	char *name;   /* NULL = none */
	char *groups; /* '\n'-separated, NULL = none */
	int sub;      /* enum store_sub */
	bool ask, pending_in, hidden;
};

struct account_wait;

struct account {
	struct worker *w;
	char *bare;
	enum account_state state;
	struct session *sessions; /* bound sessions, newest first */
	struct hmap roster;	  /* contact bare JID -> struct roster_item */
	uint64_t roster_ver;
	struct hmap blocked; /* JIDs the account blocks (XEP-0191), as stored */
	struct hmap live;    /* stored message id -> sessions holding it unconfirmed (durable.c) */
	struct hmap devices; /* full JID -> its available presence, for devices that are not
				sessions (a SIP registration); the account stays loaded with one */
	struct account_wait *waits, *waits_tail; /* work waiting for the load */
	struct timer idle;
	int pushes;		 /* XEP-0357 registrations (push.c), -1 while not known */
	unsigned refs;		 /* pending jobs that point to the account */
	void *ext[XMPP_EXT_MAX]; /* state of each extension (struct xmpp_ext) */
	struct pep_account *pep; /* personal eventing state (pep_notify.c), NULL if none */
};

/*
 * Runs fn(acct, arg) on the home worker w (the calling thread) once bare's account
 * is loaded; with state AS_MISSING if there is no such account. Immediately if cached.
 */
void account_with(struct worker *w, const char *bare, void (*fn)(struct account *a, void *arg),
		  void *arg);
/* Adds a bound session to its account; returns the session it replaced (same resource) or NULL. */
struct session *account_session_find(struct account *a, const char *resource);
void account_session_add(struct account *a, struct session *s);
void account_session_remove(struct account *a, struct session *s);
/* Drops the account from memory once it has no sessions and nothing pending. */
void account_maybe_unload(struct account *a);
/* Persists a roster item (or its removal with it->contact only and remove true). */
void account_roster_save(struct account *a, const struct roster_item *it, bool remove);
struct roster_item *account_roster_get(struct account *a, const char *contact);
/* Counts sessions that were sent stored message id and have not confirmed it. */
void account_live(struct account *a, int64_t id, int delta);
bool account_is_live(const struct account *a, int64_t id);
/* Returns a new item for contact, already in the cache (sub none, hidden). */
struct roster_item *account_roster_add(struct account *a, const char *contact);
void account_roster_del(struct account *a, const char *contact);
void account_free_all(struct worker *w);

/* ---- streams with other servers and components (pstream.c) ---- */

struct pstream {
	struct conn *c;
	struct xml_stream *parser;
	struct {
		bool open, fresh, root_ok;	/* fresh: not yet taken by the owner */
		char *from, *to, *id, *version; /* as sent, or NULL */
		char *ns;			/* the default namespace */
	} header;
	struct xml_node *q_head, *q_tail; /* parsed, not yet handled */
	int parse_error;
	bool peer_closed;
	size_t max_stanza;
	int max_depth;
};

void pstream_init(struct pstream *p, struct conn *c, size_t max_stanza, int max_depth);
/* Parses what is in p->c->in; the header and elements wait for the owner. */
void pstream_input(struct pstream *p);
/* The next element parsed, or NULL; the caller owns it. */
struct xml_node *pstream_next(struct pstream *p);
/* A new stream on the same connection (after STARTTLS, SASL): a fresh parser and header. */
void pstream_restart(struct pstream *p);
/* Writes our stream header (from, to, id may be NULL). */
void pstream_open(struct pstream *p, const char *ns, const char *from, const char *to,
		  const char *id);
void pstream_write(struct pstream *p, const char *text);
/* Writes stanza st (in jabber:client) as an element of a stream whose namespace is ns. */
void pstream_send(struct pstream *p, struct xml_node *st, const char *ns);
/* A stream error and the end of our stream (RFC 6120 4.9); the owner then closes. */
void pstream_error(struct pstream *p, const char *condition, const char *text);
/* Frees the parser and queue and closes the connection (its output is still sent). */
void pstream_free(struct pstream *p);

/* ---- federation (s2s.c, RFC 6120 section 13) ---- */

/* Sets up federation on srv if s2s.listen is set: TLS contexts, resolver; 0 or -1 with err. */
int s2s_init(struct server *srv, char *err, size_t errlen);
void s2s_free(struct server *srv);
/* Accepts incoming server streams on the s2s listener. */
void s2s_accept(struct worker *w, int fd);
/* Sends st (owned) from one of our domains to a remote domain; errors go back to the sender. */
void s2s_route(struct worker *w, struct xml_node *st, const struct jid *from, const struct jid *to);
/* The worker is stopping: close every stream with <system-shutdown/>, bounce what waits. */
void s2s_worker_stop(struct worker *w);

/* ---- external components (component.c, XEP-0114) ---- */

int component_init(struct server *srv, char *err, size_t errlen);
void component_free(struct server *srv);
void component_accept(struct worker *w, int fd);
/* Whether domain is a configured component's. */
bool component_domain(const struct server *srv, const char *domain);
/* Hands st (owned) to the component serving to's domain; bounces if it is not connected. */
void component_route(struct worker *w, struct xml_node *st, const struct jid *to);
void component_worker_stop(struct worker *w);

/* Whether domain is served here: ours, a service's (conference.) or a component's. */
bool server_hosts(const struct server *srv, const char *domain);

/* ---- routing (router.c) ---- */

/*
 * Routes stanza st from a local session or the server. st's from and to must be set
 * (to may be absent = the sender's own bare JID). Takes ownership of st. Errors for
 * undeliverable stanzas go back to the sender.
 */
void route(struct worker *w, struct xml_node *st);
/* Delivers st (owned) to a local account's resources per RFC 6121 section 8; on its home worker. */
void route_to_account(struct account *a, struct xml_node *st, const struct jid *to,
		      const struct jid *from, int64_t stored);
/* route() for a message whose copy is already stored (durable.c) under id stored. */
void route_stored(struct worker *w, struct xml_node *st, int64_t stored);
/* route() for a message to a local account delivered before it is stored (durable.c). */
void route_inflight(struct worker *w, struct xml_node *st, struct inflight *fl);
/* route_to_account_now() for a message, leaving st to the caller. */
void route_message(struct account *a, struct xml_node *st, const struct jid *to,
		   const struct jid *from, int64_t stored);
/* route_to_account() for a stanza named by stored >= 0 (not a negative, inflight name). */
void route_to_account_now(struct account *a, struct xml_node *st, const struct jid *to,
			  const struct jid *from, int64_t stored);
/* Sends an error reply to st's sender (unless st is an error); does not take st. */
void route_error(struct worker *w, const struct xml_node *st, const char *type,
		 const char *condition, const char *text);
/* Builds an error reply: from/to swapped, type='error', <error type=.../>. Caller owns it. */
struct xml_node *stanza_error_reply(const struct xml_node *st, const char *type,
				    const char *condition, const char *text);
/* Returns the highest non-negative priority among available sessions, or -1 if none. */
struct session *account_best_session(struct account *a);

/* ---- presence (presence.c) ---- */

/* A presence stanza from a local session (from stamped, to as sent). Takes st. */
void presence_outbound(struct session *s, struct xml_node *st);
/* A presence stanza arriving at a local account on its home worker. Takes st. */
void presence_inbound(struct account *a, struct xml_node *st, const struct jid *to,
		      const struct jid *from);
/*
 * A device of a that is not a session (a SIP registration, resource full) becomes available
 * with presence st (taken; from and to are set here), or goes away (st NULL): its contacts and
 * the account's own resources see it like a resource's presence, probes are answered with it.
 */
void presence_device(struct account *a, const char *full, struct xml_node *st);
/* The session went away: broadcast unavailable if it was available. */
void presence_session_end(struct session *s);
/* Unavailable presence from full (a resource already gone) to everyone who saw it available. */
void presence_unavailable_for(struct account *a, const char *full, const struct hmap *directed);
/* After bind and roster load: deliver stored subscription requests to s when it becomes available.
 */
void presence_send_pending(struct session *s);

/* ---- advanced message processing (amp.c, XEP-0079) ---- */

/* Answers s's message st with an error if it has rules we do not support; true if refused. */
bool amp_refuse_unsupported(struct session *s, const struct xml_node *st);
/*
 * Applies st's rules for outcome ("direct", "stored", "none"); exact says the addressed
 * resource takes it. Tells the sender as the rules ask; false if st must not go on.
 */
bool amp_check(struct worker *w, const struct xml_node *st, const char *outcome, bool exact);

/* ---- client state indication (csi.c, XEP-0352) ---- */

/* session_send() asks: hold st instead of sending it now? (true: held; st not taken) */
bool csi_hold(struct session *s, const struct xml_node *st);
/* <active/> or <inactive/> from the client. Takes el. */
void csi_element(struct session *s, struct xml_node *el);
void csi_free(struct session *s);

/* ---- durable delivery (durable.c) ---- */

/* Stores a message from s for a local account before routing it; false if it is not for that path.
 * Takes st when true. */
bool durable_route(struct session *s, struct xml_node *st);
/* The local account st goes to if durable delivery applies to it (chat/normal worth keeping), or
 * NULL; caller frees. */
char *durable_owner(const struct server *srv, const struct xml_node *st);
/*
 * Deliver first (durable.c): a message named by a negative id in sessions' queues until a
 * device acknowledges it or it is stored. On the recipient's home worker:
 * durable_arrive() routes one from route_inflight() to a (taking st); durable_route_named()
 * routes one again (a session holding it ended); durable_queued()/durable_unqueued() count
 * the queue entries naming it; durable_acked() is a device's ack; durable_forget() drops it
 * on purpose (blocked, refused, redirected: the sender's ack goes, nothing is stored).
 * durable_unrouted() keeps one that could not be routed (stopping) on w; st is the message.
 */
struct inflight;
void durable_arrive(struct account *a, struct xml_node *st, const struct jid *to,
		    const struct jid *from, struct inflight *fl);
void durable_route_named(struct account *a, struct xml_node *st, const struct jid *to,
			 const struct jid *from, int64_t id);
void durable_queued(struct worker *w, int64_t id);
/* s, without stream management, got the message id: it is stored now and waits offline.grace. */
void durable_plain(struct session *s, int64_t id);
void durable_unqueued(struct worker *w, int64_t id);
void durable_acked(struct worker *w, int64_t id);
/* Nobody can take the message id now: it is stored (before anything else is queued). */
void durable_keep(struct worker *w, int64_t id);
void durable_forget(struct worker *w, int64_t id);
void durable_unrouted(struct worker *w, struct inflight *fl, const struct xml_node *st);
/* Frees what is left at shutdown (after the loops stopped). */
void durable_worker_free(struct worker *w);
/*
 * Set by a module with devices that are not sessions (SIP, before server_start): called on the
 * storing worker for every message committed to owner's queue, with the stored stanza; the
 * module may deliver it too and delete it (store_offline_delete_ids) when its device took it.
 */
extern void (*durable_observer)(struct worker *w, const char *owner, int64_t id, const char *stanza,
				size_t len);
/*
 * A message from a service (SMS, SIP, another server) to local account owner, delivered the same
 * way: committed to owner's queue, with also(store, arg) in the same job (if it fails, neither is
 * kept), then routed; done(w, arg, result, refused) runs on w afterwards. expires (wall ms, 0 =
 * none) shortens how long it may wait in storage. On STORE_ENOENT (no such account) or
 * STORE_EQUOTA the message is not routed: done gets it as refused (valid during the call) to
 * answer its sender; otherwise refused is NULL (on STORE_EIO it is still routed).
 */
void durable_deliver(struct worker *w, struct xml_node *st, const char *owner, int64_t expires,
		     int (*also)(struct store *st, void *arg),
		     void (*done)(struct worker *w, void *arg, int result,
				  const struct xml_node *refused),
		     void *arg);

/* ---- carbons (carbons.c, XEP-0280) ---- */

/* True for an iq carrying <enable/> or <disable/>; carbons_iq() handles it (takes st). */
bool carbons_is_iq(const struct xml_node *st);
void carbons_iq(struct session *s, struct xml_node *st);
/* from sent st: copy it to from's other resources that enabled carbons. */
void carbons_sent(struct session *from, const struct xml_node *st);
/* a received st: copy it to a's resources with carbons on that are not marked delivered. */
void carbons_received(struct account *a, const struct xml_node *st);

/* ---- stream management (sm.c, XEP-0198) ---- */

/* An element in urn:xmpp:sm:3 from the client (enable, r, a, resume). Takes el. */
void sm_element(struct session *s, struct xml_node *el);
/* A stanza of len bytes was written to s (or queued, hibernating); stored: its stored copy, or 0.
 */
void sm_sent(struct session *s, const char *data, size_t len, int64_t stored);
/* A stanza from the client was handled. */
void sm_handled(struct session *s);
/*
 * The stanza just handled is stored first, or waits for its recipient's ack: hold back its
 * ack (DESIGN.md durability rule). True, with h filled and a reference to s taken, if s has
 * stream management; s may be NULL. sm_release() lets the ack go, once, on s's worker.
 */
bool sm_hold(struct session *s, struct sm_held *h);
void sm_release(struct sm_held *h);
/* The connection broke: keep s resumable if it asked for it; false if it must close. */
bool sm_hibernate(struct session *s);
/* s ends for good: unacknowledged messages go to other resources or offline storage. */
void sm_requeue(struct session *s);
/* Frees s's queue and stops its timer. */
void sm_free(struct session *s);

/* ---- the message archive (mam.c, XEP-0313, XEP-0359) ---- */

/* True for messages that are archived (and stored offline): chat/normal with a body. */
bool mam_eligible(const struct xml_node *st);
/* Removes <stanza-id/>s a client put in its own message (XEP-0359 section 3). */
void mam_strip_ids(struct xml_node *st);
/* s sent st: archive it for s's account. */
void mam_outgoing(struct session *s, const struct xml_node *st);
/* st arrives for a: archive it and stamp it with its <stanza-id/> (st is changed). */
void mam_incoming(struct account *a, struct xml_node *st);
/* The same for owner's archive from any worker (ids stay unique: they carry the worker). */
void mam_incoming_for(struct worker *w, const char *owner, struct xml_node *st);
/* A query iq of the account's own session: mam_query() answers it (takes st). */
bool mam_is_query(const struct xml_node *st);
void mam_query(struct session *s, struct xml_node *st);
/* The same for any archive: owner's (room: a room's), answering st's sender by routing. */
void mam_query_for(struct worker *w, struct xml_node *st, const char *owner, bool room);
/* A new archive id from w (unique in the server, increasing in time). */
int64_t mam_next_id(struct worker *w);
/* Archives groupchat message st of room (from with, room/nick), stamping its stanza-id. */
void mam_archive_room(struct worker *w, const char *room, const char *with, struct xml_node *st);

/* ---- blocking (block.c, XEP-0191) ---- */

/* True for an iq with blocklist/block/unblock; block_iq() handles it (takes st). */
bool block_is(const struct xml_node *st);
void block_iq(struct session *s, struct xml_node *st);
/* Whether a blocks j (or jid, a string). */
bool block_matches(const struct account *a, const struct jid *j);
bool block_matches_str(const struct account *a, const char *jid);
/* Answers s's stanza st to a blocked JID with the XEP-0191 error (takes st). */
void block_refuse(struct session *s, struct xml_node *st);

/* ---- private XML storage (private.c, XEP-0049) ---- */

/* True for a jabber:iq:private query; private_iq() answers the account's own session (takes st). */
bool private_is(const struct xml_node *st);
void private_iq(struct session *s, struct xml_node *st);
/*
 * Gets or sets (per st's type) owner's element like el, answering st's sender by routing;
 * the element is wrapped in <query xmlns=wrap/> unless wrap is NULL. Takes st, not el.
 */
void private_request(struct worker *w, struct xml_node *st, const struct xml_node *el,
		     const char *owner, const char *wrap);

/* ---- vcard-temp (vcard.c, XEP-0054) ---- */

bool vcard_is(const struct xml_node *st);
/* Reads (anyone) or writes (own only) owner's vCard, answering by routing. Takes st. */
void vcard_iq(struct worker *w, struct xml_node *st, const char *owner, bool own);
/* The account's own session: vcard_iq() with own set. */
void vcard_own_iq(struct session *s, struct xml_node *st);

/* ---- personal eventing (pep.c, pep_notify.c, XEP-0163 over a XEP-0060 subset) ---- */

struct pep_account;
/* True for an iq with a pubsub or pubsub#owner payload; pep_iq() answers it for a (takes st). */
bool pep_is(const struct xml_node *st);
void pep_iq(struct account *a, struct xml_node *st, const struct jid *from);
/* Adds the account's pubsub/pep identity and PEP features to a disco#info <query/>. */
void pep_disco_info(struct xml_node *q);
/* Answers a disco#items get to a's bare JID with the nodes from may see (takes st). */
void pep_disco_items(struct account *a, struct xml_node *st, const struct jid *from);
/* An iq result or error to a that answers PEP's capability query: handled (taken), true. */
bool pep_iq_result(struct account *a, struct xml_node *st, const struct jid *from);
/* Presence from someone else (from_full) reached a: available (st) or not (st NULL). */
void pep_presence_in(struct account *a, const struct xml_node *st, const char *from_full);
/* A resource of the account sent broadcast presence: available (st) or not (st NULL). */
void pep_presence_own(struct session *s, const struct xml_node *st);
/* Available presence s is sending: adds the avatar hash (XEP-0398 section 4). */
void pep_presence_out(struct session *s, struct xml_node *st);
/* Reads what the account's PEP state starts with (storage thread); NULL if nothing. */
struct pep_account *pep_account_load(struct store *st, const char *bare);
void pep_account_free(struct account *a);
/* A vCard get for owner: its stored vCard with the PEP avatar as PHOTO (takes st). */
void pep_vcard_get(struct worker *w, struct xml_node *st, const char *owner);

/* ---- offline storage (offline.c, XEP-0160) ---- */

/* Stores message st (not taken) for a, which has no available resource; errors go to the sender. */
void offline_store(struct account *a, const struct xml_node *st);
/* s just sent initial presence: send it the stored messages. */
void offline_deliver(struct session *s);
/* s is closing: what it was sent stays stored. */
void offline_session_end(struct session *s);
/* The client acknowledged these stored messages (XEP-0198): they can go. */
void offline_acked(struct session *s, const int64_t *ids, size_t n);
/* A stored message was written to s, which has no stream management: it goes after the grace. */
void offline_grace_add(struct session *s, int64_t id);
/* s closes its stream gracefully: what it was sent counts as delivered. */
void offline_delivered_all(struct session *s);
/* Deletes one stored message of owner that will never be delivered. */
void offline_forget(struct worker *w, const char *owner, int64_t id);
/* Fills m's sender, stamps, expiry and stanza (a copy of st with a XEP-0203 delay); m owns them. */
void offline_message(const struct config *cfg, const struct xml_node *st,
		     struct store_offline_msg *m);
/* Frees m's owner, sender and stanza. */
void offline_message_free(struct store_offline_msg *m);
/* On the storage thread: store_offline_put() of m, setting m->id. */
int offline_put(struct store *st, struct store_offline_msg *m, long quota);
/*
 * Answers st's sender why it was not stored: a full queue (STORE_EQUOTA) or no such account
 * (STORE_ENOENT); false, with nothing sent, for any other result.
 */
bool offline_refused(struct worker *w, const struct xml_node *st, int result);
/* Whether a message is worth keeping (a body, a subject, a payload; not chat states alone). */
bool offline_worth_storing(const struct xml_node *st);
/* Starts the periodic expiry sweep on w (one worker does it for the server). */
void offline_start_sweeper(struct worker *w);

/* ---- roster (roster.c) ---- */

/* Handles a jabber:iq:roster iq from the account's own session. Takes st. */
void roster_iq(struct session *s, struct xml_node *st);
/* Sends a roster push of item it (or removal) to every interested session of a. */
void roster_push(struct account *a, const struct roster_item *it, bool removed);
/* Serializes an item as <item/> under query. */
void roster_item_xml(struct xml_node *query, const struct roster_item *it, bool removed);

/* ---- iqs handled by the server (iq.c) ---- */

/* An iq addressed to the server's domain. Takes st. */
void iq_server(struct worker *w, struct xml_node *st);
/* An iq get/set addressed to an account's bare JID, handled on its behalf. Takes st. */
void iq_account(struct account *a, struct xml_node *st, const struct jid *from);

/* ---- helpers (stanza.c) ---- */

/* Serializes st into the calling thread's scratch buffer and returns it (valid until the next
 * call). */
const struct buf *stanza_serialize(const struct xml_node *st);
/* Frees the calling thread's scratch buffer (a thread that serialized stanzas is ending). */
void stanza_thread_done(void);
/* True if st carries type='error' (never answered with another error, RFC 6120 8.3.1). */
bool stanza_is_error(const struct xml_node *st);

/* True for stanzas of the three kinds in jabber:client. */
bool stanza_is(const struct xml_node *st, const char *name);

#endif
