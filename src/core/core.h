/*
 * core: the protocol-free foundation of baton: allocation, logging, byte buffers,
 * hashing, a string-keyed hash map, the configuration, and the per-thread event loop
 * with its timers and cross-thread mailbox. Nothing here knows about XMPP, XML or
 * sockets beyond file descriptors.
 *
 * Invariant: a struct loop is only ever touched by the thread running it, except
 * through loop_post() and loop_stop(), which are safe from any thread.
 */
#ifndef BATON_CORE_H
#define BATON_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

#define BATON_VERSION "0.1.0"

#define ARRAY_LEN(a)		      (sizeof(a) / sizeof((a)[0]))
#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* ---- memory (mem.c): allocation failure aborts (STYLE.md rule 10) ---- */

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* The name fatal() and the logs use ("batond" unless main() sets another). */
extern const char *program_name;
/* Prints "<program_name>: <message>" to stderr and exits 1. Start-up errors and broken invariants
 * only. */
noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- logging (log.c) ---- */

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
extern int log_level_current;
/* The level is checked before the arguments are evaluated (STYLE.md rule 19). */
#define log_at(lvl, ...)                                                                           \
	do {                                                                                       \
		if ((lvl) <= log_level_current)                                                    \
			log_write((lvl), __VA_ARGS__);                                             \
	} while (0)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns 0, or -1 if name is not one of error|warn|info|debug (level unchanged). */
int log_set_level(const char *name);

/* ---- byte buffers (buf.c) ---- */

/*
 * A growable byte buffer with a read offset: bytes [off, len) are live. Appending
 * grows by doubling; buf_consume() advances off and compacts lazily. The data is
 * always NUL-terminated past len so it can be printed.
 */
struct buf {
	char *data;
	size_t off, len, cap;
};

void buf_append(struct buf *b, const void *data, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ensures room for n more bytes; returns a pointer to write them, then call buf_commit(). */
char *buf_space(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
void buf_consume(struct buf *b, size_t n);
static inline size_t
buf_used(const struct buf *b)
{
	return b->len - b->off;
}
static inline const char *
buf_head(const struct buf *b)
{
	return b->data ? b->data + b->off : "";
}
void buf_reset(struct buf *b);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* The value of hex digit c (either case), or -1. */
int hex_digit(int c);
/* Returns the contents as a NUL-terminated string owned by the caller; b is left empty. */
char *buf_steal(struct buf *b);

/* ---- hashing and a string-keyed map (hash.c) ---- */

uint64_t hash_bytes(const void *data, size_t n);
static inline uint64_t
hash_str(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return hash_bytes(s, n);
}

/*
 * Open-addressing map from NUL-terminated string keys to pointers. The map copies
 * keys; values are owned by the caller. Not thread-safe: one owner thread.
 */
struct hmap {
	struct hmap_slot *slots;
	size_t cap, count, tombs;
};
struct hmap_slot {
	char *key; /* NULL = empty, or a private tombstone marker */
	void *value;
	uint64_t hash;
};
void *hmap_get(const struct hmap *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *hmap_put(struct hmap *m, const char *key, void *value);
/* Removes; returns the removed value or NULL. */
void *hmap_del(struct hmap *m, const char *key);
void hmap_free(struct hmap *m);
/* Calls fn on every value, then frees the map. */
void hmap_free_all(struct hmap *m, void (*fn)(void *));
/* Iteration: for (size_t i = 0; hmap_next(m, &i, &k, &v);) ... ; do not modify while iterating. */
bool hmap_next(const struct hmap *m, size_t *iter, const char **key, void **value);
/*
 * Keeps the `keep` entries whose age(value) is largest (the most recent) and removes the
 * rest, calling fn (if not NULL) on each removed value. For maps that must stay bounded.
 */
void hmap_prune(struct hmap *m, size_t keep, int64_t (*age)(const void *v), void (*fn)(void *));

/*
 * Open-addressing map from int64 keys to non-NULL pointers (linear probing, deletion
 * by backward shift, so no tombstones): for ids the server makes itself, which are
 * not chosen by peers. Not thread-safe: one owner thread.
 */
struct imap {
	struct imap_slot *slots;
	size_t cap, count;
};
struct imap_slot {
	int64_t key;
	void *value; /* NULL = empty */
};
void *imap_get(const struct imap *m, int64_t key);
/* Inserts or replaces (value not NULL); returns the previous value or NULL. */
void *imap_put(struct imap *m, int64_t key, void *value);
/* Removes; returns the removed value or NULL. */
void *imap_del(struct imap *m, int64_t key);
void imap_free(struct imap *m);
/* Iteration as hmap_next(); do not modify while iterating. */
bool imap_next(const struct imap *m, size_t *iter, int64_t *key, void **value);

/* ---- time (loop.c) ---- */

uint64_t now_ms(void); /* monotonic milliseconds */
int64_t wall_ms(void); /* milliseconds since the Unix epoch */
/* Writes an XEP-0082 UTC timestamp (2026-11-24T10:00:00.000Z) of wall_ms t; out has >= 32 bytes. */
void time_format(int64_t t, char *out, size_t n);

/* ---- random (rand.c) ---- */

/* Fills out with n cryptographically random bytes; aborts if the kernel cannot supply them. */
void rand_bytes(void *out, size_t n);
/* Writes n random characters from [A-Za-z0-9] and a NUL to out (out has n + 1 bytes). */
void rand_id(char *out, size_t n);

/* ---- event loop (loop.c) ---- */

struct loop;

#define LOOP_IN	 0x001u /* == EPOLLIN */
#define LOOP_OUT 0x004u /* == EPOLLOUT */
#define LOOP_ERR 0x008u /* == EPOLLERR */
#define LOOP_HUP 0x010u /* == EPOLLHUP */

/* A file descriptor watched by a loop; embed it in the owning object. */
struct loop_io {
	int fd;
	uint32_t events;
	void (*fn)(struct loop_io *io, uint32_t events);
	bool exclusive; /* shared listening socket: EPOLLEXCLUSIVE */
};

/* A one-shot timer; embed it in the owning object. */
struct timer {
	uint64_t when;
	size_t slot; /* index in the loop's heap + 1; 0 = not armed */
	void (*fn)(struct timer *t);
};

/*
 * A message to another loop's thread. The receiver calls fn on its own thread;
 * fn owns the mail afterwards (usually frees the containing struct).
 */
struct mail {
	struct mail *_Atomic next;
	void (*fn)(struct loop *loop, struct mail *m);
};

/* Returns a new loop; id is a small integer for logs and loop_id(). Aborts on failure. */
struct loop *loop_new(int id);
void loop_free(struct loop *loop);
int loop_id(const struct loop *loop);
/* Per-loop user pointer (e.g. the worker owning it). */
void loop_set_data(struct loop *loop, void *data);
void *loop_data(const struct loop *loop);
/* The loop run by the calling thread, or NULL. */
struct loop *loop_current(void);

/* Returns 0 or -errno. io->fd and io->fn must be set. */
int loop_io_add(struct loop *loop, struct loop_io *io, uint32_t events);
int loop_io_mod(struct loop *loop, struct loop_io *io, uint32_t events);
void loop_io_del(struct loop *loop, struct loop_io *io);

/* Arms t to fire once after ms milliseconds (re-arming moves it). */
void timer_start(struct loop *loop, struct timer *t, uint64_t ms);
void timer_stop(struct loop *loop, struct timer *t);
static inline bool
timer_armed(const struct timer *t)
{
	return t->slot != 0;
}

/*
 * Posts m to loop's mailbox; safe from any thread, never fails, never blocks. The
 * queue is unbounded (intrusive MPSC); producers that can flood apply backpressure
 * themselves by checking loop_mail_depth() (see docs/architecture.md).
 */
void loop_post(struct loop *loop, struct mail *m);
size_t loop_mail_depth(const struct loop *loop);

/* Registers fn to run at the end of every loop turn, after all events (flushes, reaping). */
void loop_on_turn_end(struct loop *loop, void (*fn)(struct loop *loop, void *arg), void *arg);

/* Runs until loop_stop(); returns 0. Sets loop_current() for the calling thread. */
int loop_run(struct loop *loop);
/* Safe from any thread and from signal-free contexts. */
void loop_stop(struct loop *loop);
/*
 * Runs the mail waiting in loop's mailbox on the calling thread. Only for a loop
 * whose loop_run() has returned (shutdown: completions that arrived after the stop).
 */
void loop_drain(struct loop *loop);

/* ---- configuration (config.c) ---- */

/*
 * The whole configuration, read-only once the server runs. Every field has a key
 * SECTION.KEY in the table of config.c, with its default; docs/config.md documents
 * every key and a unit test holds the two together.
 */
/* One entry of a keyed family such as s2s.route.<domain> = host:port. */
struct config_pair {
	char *key, *value;
};
/* The value of key among pairs, or NULL. */
const char *config_pair_get(const struct config_pair *pairs, size_t n, const char *key);

struct config {
	/* [server] */
	char *domain;
	char *data_dir;
	char *cert_file, *key_file;
	char *log_level;
	long workers; /* 0 = one per core */
	bool allow_plaintext;
	/* [c2s] */
	char *c2s_listen;	      /* STARTTLS port, "" = off */
	char *c2s_tls_listen;	      /* direct TLS (XEP-0368), "" = off */
	char *registration;	      /* closed | open | token */
	long registration_rate;	      /* accounts per IP per registration_period, 0 = no limit */
	uint64_t registration_period; /* ms */
	/* [limits] */
	size_t stanza_size;	    /* bytes, after authentication */
	size_t stanza_size_preauth; /* bytes, before authentication */
	long stanza_depth;
	size_t rate; /* bytes per second per connection, 0 = unlimited */
	size_t rate_burst;
	uint64_t auth_timeout; /* ms a connection may take to authenticate */
	long auth_failures;    /* failed SASL attempts before the stream is closed */
	size_t send_queue;     /* bytes queued to a slow reader before it is disconnected */
	/* [storage] */
	char *storage_backend; /* sqlite */
	char *storage_sync;    /* normal | full */
	uint64_t storage_batch_ms;
	size_t storage_cache; /* bytes of SQLite page cache */
	/* [archive] */
	bool archive_enabled;
	/* [offline] */
	long offline_quota;	   /* messages per user, 0 = unlimited */
	uint64_t offline_expiry;   /* ms */
	uint64_t offline_grace;	   /* ms */
	uint64_t offline_ack_wait; /* ms; 0 = store before delivering */
	/* [http] */
	char *http_listen;  /* "" = off */
	char *http_secure;  /* loopback | true | false */
	char *http_origins; /* "*" or a space-separated list */
	size_t http_header_max, http_body_max;
	uint64_t http_request_timeout, http_idle_timeout; /* ms */
	/* [upload] (XEP-0363) */
	bool upload_enabled;
	size_t upload_max_size, upload_quota; /* bytes; quota 0 = unlimited */
	uint64_t upload_expiry;		      /* ms */
	char *upload_public_url;	      /* "" = http://<http.listen> */
	/* [thin] */
	uint64_t thin_hold; /* ms a session object (BOSH, /m/, XEP-0198) outlives its transport */
	/* [continuity] */
	long continuity_history;
	uint64_t continuity_open_ttl, continuity_pending_ttl; /* ms */
	/* [identity] */
	uint64_t identity_hold; /* ms */
	/* [sm] */
	long sm_queue; /* unacknowledged stanzas before the session is closed */
	/* [sasl] */
	long scram_iterations;
	/* [pep] (XEP-0163) */
	size_t pep_max_item_size; /* bytes of one item's payload */
	long pep_max_nodes;	  /* per account */
	long pep_max_items;	  /* items a node keeps at most ('max') */
	long pep_caps_cache;	  /* entity capabilities remembered (XEP-0115) */
	/* [sms]: batond's end of the SMS links (seed 001) */
	char *sms_link;	  /* listen address, "" = off */
	char *sms_name;	  /* the buffer server sms_secret belongs to; it serves every number */
	char *sms_secret; /* its shared secret */
	long sms_ring;	  /* slots per direction */
	uint64_t sms_keepalive;
	/* [sms.NAME]: further buffer servers, each serving numbers with given prefixes */
	struct config_sms_peer {
		char *name, *secret, *prefixes; /* prefixes: space-separated, e.g. "+46 +47" */
	} * sms_peers;
	size_t n_sms_peers;
	/* [extdisco] (XEP-0215) */
	char *extdisco_services; /* "type:host:port:transport ..." */
	char *extdisco_turn_secret;
	uint64_t extdisco_turn_ttl; /* ms */
	/* [sip] (seed 004) */
	char *sip_listen;	  /* UDP and TCP, "" = off */
	char *sip_disposition;	  /* store | instant: a MESSAGE without the flag */
	uint64_t sip_t1;	  /* ms, RFC 3261 T1 */
	uint64_t sip_min_expires; /* ms */
	uint64_t sip_max_expires; /* ms */
	uint64_t sip_nonce_ttl;	  /* ms */
	char *sip_digest;	  /* algorithms offered, in order of preference */
	/* [sip.alias]: telephone numbers (tel:+15550100) that name an account's localpart */
	struct config_alias {
		char *number, *user;
	} * sip_aliases;
	size_t n_sip_aliases;
	/* [s2s]: federation (RFC 6120 section 13) */
	char *s2s_listen;   /* "" = federation off */
	char *s2s_ca_file;  /* CAs trusted for peers' certificates; "" = the system's */
	bool s2s_dialback;  /* XEP-0220 when certificates do not do */
	char *s2s_resolver; /* DNS server ip:port; "" = /etc/resolv.conf */
	uint64_t s2s_idle_timeout, s2s_connect_timeout; /* ms */
	long s2s_queue_max; /* stanzas held per peer domain while connecting */
	long s2s_max_per_domain;
	struct config_pair *s2s_routes; /* route.<domain> = host:port */
	size_t n_s2s_routes;
	/* [component]: XEP-0114 external components */
	char *component_listen;
	struct config_pair *component_secrets; /* secret.<domain> = secret */
	size_t n_component_secrets;
	/* [smsbuf]: baton-smsbuf */
	char *smsbuf_name;
	char *smsbuf_smsc, *smsbuf_protocol, *smsbuf_user, *smsbuf_password, *smsbuf_system_type;
	long smsbuf_window;
	char *smsbuf_source_addr;
	char *smsbuf_link, *smsbuf_link_secret, *smsbuf_link_ca;
	bool smsbuf_link_plaintext;
	long smsbuf_ring;
	uint64_t smsbuf_keepalive, smsbuf_reconnect_max, smsbuf_retry;
};

enum config_type { CFG_STR, CFG_BOOL, CFG_INT, CFG_SIZE, CFG_DURATION };
struct config_key {
	const char *section, *key;
	enum config_type type;
	size_t offset;
	const char *def;
	const char *help;
};
/* The table of every key, terminated by a zeroed entry. */
extern const struct config_key config_keys[];

/* Sets every field to its default. */
void config_defaults(struct config *c);
/*
 * Reads an INI file into c. Returns 0, or -1 with a one-line reason in err
 * (unknown section/key, bad value, unreadable file); c may be partly updated.
 */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/* Sets "section.key" to value as if read from a file; same return as config_load. */
int config_set(struct config *c, const char *dotted, const char *value, char *err, size_t errlen);
/* Parses "30s", "10m", "2h", "30d", "250ms" or plain milliseconds; returns 0 or -1. */
int config_parse_duration(const char *s, uint64_t *ms);
/* Parses "1024", "64k", "10M", "1G"; returns 0 or -1. */
int config_parse_size(const char *s, size_t *out);
void config_free(struct config *c);

#endif
