/*
 * config: the configuration keys, their defaults and their parsing. The table below
 * is the single list of keys: files (INI, read with libinih) and --set use it, an
 * unknown section or key is an error, and docs/config.md documents every entry (a
 * unit test checks the two agree).
 */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define K(sec, key, type, field, def, help)                                                        \
	{                                                                                          \
		sec, key, type, offsetof(struct config, field), def, help                          \
	}

const struct config_key config_keys[] = {
    K("server", "domain", CFG_STR, domain, "localhost", "the XMPP domain served"),
    K("server", "data", CFG_STR, data_dir, "./data",
      "data directory: database, generated certificate, admin socket"),
    K("server", "cert", CFG_STR, cert_file, "",
      "PEM certificate chain; empty = generate a self-signed one in the data directory"),
    K("server", "key", CFG_STR, key_file, "", "PEM private key of cert"),
    K("server", "log_level", CFG_STR, log_level, "info", "error | warn | info | debug"),
    K("server", "workers", CFG_INT, workers, "0", "I/O worker threads; 0 = one per core"),
    K("server", "allow_plaintext", CFG_BOOL, allow_plaintext, "false",
      "allow authentication without TLS (tests and benchmarks only)"),
    K("c2s", "listen", CFG_STR, c2s_listen, "127.0.0.1:5222",
      "client connections with STARTTLS; empty = off"),
    K("c2s", "tls_listen", CFG_STR, c2s_tls_listen, "127.0.0.1:5223",
      "client connections with direct TLS (XEP-0368); empty = off"),
    K("c2s", "registration", CFG_STR, registration, "closed",
      "closed | open | token: XEP-0077 in-band registration (token: with a batonctl invite)"),
    K("c2s", "registration_rate", CFG_INT, registration_rate, "5",
      "accounts one IP address may register per c2s.registration_period; 0 = no limit"),
    K("c2s", "registration_period", CFG_DURATION, registration_period, "1h",
      "the window of c2s.registration_rate"),
    K("limits", "stanza_size", CFG_SIZE, stanza_size, "256k",
      "largest stanza accepted after authentication"),
    K("limits", "stanza_size_preauth", CFG_SIZE, stanza_size_preauth, "16k",
      "largest stanza accepted before authentication"),
    K("limits", "stanza_depth", CFG_INT, stanza_depth, "32",
      "deepest element nesting, the stream root counting as 1"),
    K("limits", "rate", CFG_SIZE, rate, "0",
      "bytes per second read from one client connection; 0 = unlimited"),
    K("limits", "rate_burst", CFG_SIZE, rate_burst, "256k",
      "bytes a connection may send at once before limits.rate applies"),
    K("limits", "auth_timeout", CFG_DURATION, auth_timeout, "30s",
      "time a new connection has to authenticate"),
    K("limits", "auth_failures", CFG_INT, auth_failures, "3",
      "failed authentication attempts before the stream is closed"),
    K("limits", "send_queue", CFG_SIZE, send_queue, "4M",
      "bytes queued to a client that does not read before it is disconnected"),
    K("storage", "backend", CFG_STR, storage_backend, "sqlite", "sqlite"),
    K("storage", "synchronous", CFG_STR, storage_sync, "normal",
      "normal | full: SQLite synchronous mode (WAL; normal survives a process crash)"),
    K("storage", "batch_ms", CFG_DURATION, storage_batch_ms, "0",
      "extra time the storage thread waits to group writes into one transaction"),
    K("storage", "cache", CFG_SIZE, storage_cache, "32M",
      "SQLite page cache of the storage thread: database pages kept in memory"),
    K("archive", "enabled", CFG_BOOL, archive_enabled, "true",
      "keep every chat message in its sender's and recipient's archive (XEP-0313)"),
    K("offline", "quota", CFG_INT, offline_quota, "10000",
      "messages kept for a user who is offline; 0 = no limit"),
    K("offline", "expiry", CFG_DURATION, offline_expiry, "30d",
      "how long a stored message waits for its recipient"),
    K("offline", "grace", CFG_DURATION, offline_grace, "10s",
      "a client without stream management must stay connected this long after stored messages "
      "were sent to it before they are deleted"),
    K("offline", "ack_wait", CFG_DURATION, offline_ack_wait, "250ms",
      "a chat message to a recipient whose devices all use stream management is delivered "
      "first and stored only if not acknowledged within this time; 0 = always store first"),
    K("http", "listen", CFG_STR, http_listen, "127.0.0.1:5280",
      "HTTP: BOSH at /http-bind, WebSocket at /xmpp-websocket, the web client at /m/; "
      "empty = off"),
    K("http", "secure", CFG_STR, http_secure, "loopback",
      "loopback | true | false: treat HTTP clients as encrypted (loopback: those connecting "
      "from 127.0.0.0/8 or ::1, i.e. through a TLS-terminating proxy on this host)"),
    K("http", "origins", CFG_STR, http_origins, "*",
      "Origins allowed for WebSocket and cross-origin BOSH, space separated; * = any"),
    K("http", "header_max", CFG_SIZE, http_header_max, "16k",
      "largest request line plus headers accepted"),
    K("http", "body_max", CFG_SIZE, http_body_max, "1M", "largest request body accepted"),
    K("http", "request_timeout", CFG_DURATION, http_request_timeout, "30s",
      "time a client has to send a whole request once it started one"),
    K("http", "idle_timeout", CFG_DURATION, http_idle_timeout, "2m",
      "an HTTP connection with no request outstanding is closed after this"),
    K("upload", "enabled", CFG_BOOL, upload_enabled, "true",
      "XEP-0363 HTTP File Upload at upload.<domain>, files served by the HTTP listener"),
    K("upload", "max_size", CFG_SIZE, upload_max_size, "10M", "largest file one upload may be"),
    K("upload", "quota", CFG_SIZE, upload_quota, "100M",
      "bytes of files (and slots not yet used) one user may keep; 0 = no limit"),
    K("upload", "expiry", CFG_DURATION, upload_expiry, "30d",
      "an uploaded file is removed this long after its upload"),
    K("upload", "public_url", CFG_STR, upload_public_url, "",
      "base URL of the HTTP listener as clients reach it (behind a proxy), e.g. "
      "https://example.org; empty = http://<http.listen>"),
    K("thin", "hold", CFG_DURATION, thin_hold, "10m",
      "how long a session object outlives its transport: a BOSH or /m/ session after its last "
      "request, a XEP-0198 resumable session after its connection broke"),
    K("continuity", "history", CFG_INT, continuity_history, "50",
      "messages of history per conversation a transfer carries unless it asks otherwise"),
    K("continuity", "open_ttl", CFG_DURATION, continuity_open_ttl, "24h",
      "a 1:1 conversation counts as open on a device this long after its last message"),
    K("continuity", "pending_ttl", CFG_DURATION, continuity_pending_ttl, "10m",
      "a transfer not accepted (or parked sessions not picked up) within this expires"),
    K("identity", "hold", CFG_DURATION, identity_hold, "30s",
      "after a device was superseded, how long its unavailable presence waits for the new "
      "device's available presence"),
    K("sm", "queue", CFG_INT, sm_queue, "10000",
      "stanzas a client may leave unacknowledged before its session is closed"),
    K("sasl", "scram_iterations", CFG_INT, scram_iterations, "4096",
      "PBKDF2 iterations for new passwords (RFC 7677 recommends at least 4096)"),
    K("extdisco", "services", CFG_STR, extdisco_services, "",
      "STUN/TURN services announced by XEP-0215, space separated, each type:host:port:transport "
      "(e.g. turn:turn.example.org:3478:udp); empty = none"),
    K("extdisco", "turn_secret", CFG_STR, extdisco_turn_secret, "",
      "shared secret of the TURN server for time-limited credentials (TURN REST API); "
      "empty = none handed out"),
    K("extdisco", "turn_ttl", CFG_DURATION, extdisco_turn_ttl, "1d",
      "how long TURN credentials handed out stay valid"),
    K("pep", "max_item_size", CFG_SIZE, pep_max_item_size, "64k",
      "largest payload of one PEP item (XEP-0163); larger ones get payload-too-big"),
    K("pep", "max_nodes", CFG_INT, pep_max_nodes, "100", "PEP nodes one account may have"),
    K("pep", "max_items", CFG_INT, pep_max_items, "256",
      "most items one PEP node keeps; what pubsub#max_items 'max' means"),
    K("pep", "caps_cache", CFG_INT, pep_caps_cache, "10000",
      "entity capabilities (XEP-0115 ver hashes) remembered for PEP notifications"),
    K("sip", "listen", CFG_STR, sip_listen, "",
      "SIP over UDP and TCP (conventionally port 5060), e.g. 127.0.0.1:5060; empty = off"),
    K("sip", "default_disposition", CFG_STR, sip_disposition, "store",
      "store | instant: what a MESSAGE without Content-Disposition instant or store&fwd gets"),
    K("sip", "t1", CFG_DURATION, sip_t1, "500ms",
      "RFC 3261 T1: UDP retransmissions start at T1 and a request is given up after 64*T1"),
    K("sip", "min_expires", CFG_DURATION, sip_min_expires, "60s",
      "shortest registration accepted (423 Interval Too Brief below)"),
    K("sip", "max_expires", CFG_DURATION, sip_max_expires, "1h",
      "longest registration granted (longer requests are shortened)"),
    K("sip", "digest", CFG_STR, sip_digest, "SHA-256 MD5",
      "digest algorithms offered, most preferred first (RFC 8760 2.4); phones that only "
      "read the first challenge may need MD5 first"),
    K("sip", "nonce_ttl", CFG_DURATION, sip_nonce_ttl, "5m",
      "a digest nonce older than this is answered with stale=true"),
    K("s2s", "listen", CFG_STR, s2s_listen, "",
      "where other XMPP servers connect (conventionally port 5269), e.g. 0.0.0.0:5269; "
      "federation is on only when this is set"),
    K("s2s", "ca_file", CFG_STR, s2s_ca_file, "",
      "PEM file of the CAs trusted for peer servers' certificates; empty = the system's"),
    K("s2s", "dialback", CFG_BOOL, s2s_dialback, "true",
      "XEP-0220 dialback for peers whose certificate does not verify; false = certificates "
      "only"),
    K("s2s", "resolver", CFG_STR, s2s_resolver, "",
      "DNS server (ip:port) for SRV and address lookups; empty = /etc/resolv.conf"),
    K("s2s", "idle_timeout", CFG_DURATION, s2s_idle_timeout, "10m",
      "a server-to-server stream with no traffic this long is closed"),
    K("s2s", "connect_timeout", CFG_DURATION, s2s_connect_timeout, "30s",
      "time to reach and authenticate with a peer before queued stanzas bounce"),
    K("s2s", "queue_max", CFG_INT, s2s_queue_max, "1000",
      "stanzas held for a peer domain while its connection is being set up; more bounce"),
    K("s2s", "max_per_domain", CFG_INT, s2s_max_per_domain, "8",
      "incoming connections one peer domain may hold open"),
    K("component", "listen", CFG_STR, component_listen, "",
      "where XEP-0114 external components connect, e.g. 127.0.0.1:5347; empty = off"),
    K("sms", "link", CFG_STR, sms_link, "",
      "where batond accepts SMS links from baton-smsbuf (TLS and a shared secret), e.g. "
      "127.0.0.1:5290; empty = off"),
    K("sms", "name", CFG_STR, sms_name, "smsbuf",
      "the name of the buffer server that sms.secret is for; it serves every number no "
      "[sms.NAME] section claims"),
    K("sms", "secret", CFG_STR, sms_secret, "", "the shared secret of buffer server sms.name"),
    K("sms", "ring", CFG_INT, sms_ring, "255",
      "slots per direction in the mirrored rings (baton-smsbuf must use the same)"),
    K("sms", "keepalive", CFG_DURATION, sms_keepalive, "30s",
      "a link silent this long is probed; one silent for three times this is dropped"),
    K("smsbuf", "name", CFG_STR, smsbuf_name, "smsbuf", "this buffer server's name on the link"),
    K("smsbuf", "smsc", CFG_STR, smsbuf_smsc, "", "the SMSC, host:port"),
    K("smsbuf", "smsc_protocol", CFG_STR, smsbuf_protocol, "smpp", "smpp | cimd2"),
    K("smsbuf", "smsc_user", CFG_STR, smsbuf_user, "", "SMPP system_id or CIMD2 user identity"),
    K("smsbuf", "smsc_password", CFG_STR, smsbuf_password, "", "the SMSC password"),
    K("smsbuf", "system_type", CFG_STR, smsbuf_system_type, "",
      "SMPP system_type sent with bind_transceiver"),
    K("smsbuf", "smsc_window", CFG_INT, smsbuf_window, "1",
      "requests left unanswered toward the SMSC; 1 = stop-and-wait"),
    K("smsbuf", "source_addr", CFG_STR, smsbuf_source_addr, "baton",
      "the sender phones see: a short code, a number (+E.164) or up to 11 letters"),
    K("smsbuf", "link", CFG_STR, smsbuf_link, "", "batond's SMS link, host:port"),
    K("smsbuf", "link_secret", CFG_STR, smsbuf_link_secret, "",
      "the secret batond has for this buffer server"),
    K("smsbuf", "link_ca", CFG_STR, smsbuf_link_ca, "",
      "PEM CA certificates trusted for batond's certificate; empty = the system's"),
    K("smsbuf", "link_plaintext", CFG_BOOL, smsbuf_link_plaintext, "false",
      "no TLS on the link (only toward a batond run with allow_plaintext: tests)"),
    K("smsbuf", "ring", CFG_INT, smsbuf_ring, "255", "slots per direction in the rings"),
    K("smsbuf", "keepalive", CFG_DURATION, smsbuf_keepalive, "30s",
      "probe the SMSC (enquire_link / alive) and the link after this much silence"),
    K("smsbuf", "reconnect_max", CFG_DURATION, smsbuf_reconnect_max, "30s",
      "longest wait between reconnection attempts (the wait doubles from 1 s)"),
    K("smsbuf", "retry", CFG_DURATION, smsbuf_retry, "5s",
      "wait before submitting again after the SMSC answered with a temporary error"),
    {0},
};

#undef K

int
config_parse_duration(const char *s, uint64_t *ms)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1, r;

	if (*s < '0' || *s > '9') /* no blanks or signs: strtoull would accept them */
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (strcmp(end, "") == 0 || strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "m") == 0)
		mult = 60 * 1000;
	else if (strcmp(end, "h") == 0)
		mult = 3600 * 1000;
	else if (strcmp(end, "d") == 0)
		mult = 86400 * 1000;
	else
		return -1;
	if (__builtin_mul_overflow((uint64_t)v, mult, &r))
		return -1;
	*ms = r;
	return 0;
}

int
config_parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	size_t mult = 1, r;

	if (*s < '0' || *s > '9') /* no blanks or signs: strtoull would accept them */
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (*end == 'k' || *end == 'K')
		mult = 1024, end++;
	else if (*end == 'M')
		mult = 1024 * 1024, end++;
	else if (*end == 'G')
		mult = 1024 * 1024 * 1024, end++;
	if (*end)
		return -1;
	if (__builtin_mul_overflow((size_t)v, mult, &r))
		return -1;
	*out = r;
	return 0;
}

static int
parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on") || !strcmp(s, "1"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off") || !strcmp(s, "0"))
		*out = false;
	else
		return -1;
	return 0;
}

static const struct config_key *
key_find(const char *section, const char *key)
{
	for (const struct config_key *k = config_keys; k->section; k++) {
		if (!strcmp(k->section, section) && !strcmp(k->key, key))
			return k;
	}
	return NULL;
}

/* Stores value into the field of k; returns 0 or -1 (field unchanged). */
static int
key_store(struct config *c, const struct config_key *k, const char *value)
{
	void *field = (char *)c + k->offset;
	char *end;
	long l;

	switch (k->type) {
	case CFG_STR:
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case CFG_BOOL:
		return parse_bool(value, field);
	case CFG_INT:
		errno = 0;
		l = strtol(value, &end, 10);
		if (errno || end == value || *end || l < 0)
			return -1;
		*(long *)field = l;
		return 0;
	case CFG_SIZE:
		return config_parse_size(value, field);
	case CFG_DURATION:
		return config_parse_duration(value, field);
	}
	return -1;
}

static const char *const type_hints[] = {
    [CFG_STR] = "a string",
    [CFG_BOOL] = "true or false",
    [CFG_INT] = "a non-negative integer",
    [CFG_SIZE] = "a size like 4096, 64k or 4M",
    [CFG_DURATION] = "a duration like 500ms, 30s, 10m, 2h or 30d",
};

/* [sms.NAME] secret / prefixes: one section per further buffer server. */
static int
set_sms_peer(struct config *c, const char *name, const char *key, const char *value, char *err,
	     size_t errlen)
{
	struct config_sms_peer *p = NULL;
	char **field;

	if (strcmp(key, "secret") != 0 && strcmp(key, "prefixes") != 0) {
		snprintf(err, errlen, "unknown configuration key sms.%s.%s (secret or prefixes)",
			 name, key);
		return -1;
	}
	for (size_t i = 0; i < c->n_sms_peers; i++)
		if (strcmp(c->sms_peers[i].name, name) == 0)
			p = &c->sms_peers[i];
	if (!p) {
		c->sms_peers = xrealloc(c->sms_peers, (c->n_sms_peers + 1) * sizeof *c->sms_peers);
		p = &c->sms_peers[c->n_sms_peers++];
		p->name = xstrdup(name);
		p->secret = xstrdup("");
		p->prefixes = xstrdup("");
	}
	field = strcmp(key, "secret") == 0 ? &p->secret : &p->prefixes;
	free(*field);
	*field = xstrdup(value);
	return 0;
}

/* [sip.alias] +15550100 = alice: a telephone number that is another name of an account. */
static int
set_sip_alias(struct config *c, const char *number, const char *user, char *err, size_t errlen)
{
	size_t digits = strspn(number + (number[0] == '+'), "0123456789");

	if (digits < 3 || number[(number[0] == '+') + digits] != '\0' || !*user ||
	    strchr(user, '@')) {
		snprintf(err, errlen, "sip.alias.%s = %s: want +<digits> = <localpart>", number,
			 user);
		return -1;
	}
	c->sip_aliases = xrealloc(c->sip_aliases, (c->n_sip_aliases + 1) * sizeof *c->sip_aliases);
	c->sip_aliases[c->n_sip_aliases].number = xstrdup(number);
	c->sip_aliases[c->n_sip_aliases].user = xstrdup(user);
	c->n_sip_aliases++;
	return 0;
}

/* Keyed families: SECTION.PREFIX<name> = value, any name. */
static const struct config_family {
	const char *section, *prefix;
	size_t pairs, count; /* offsets of the array and its length in struct config */
} config_families[] = {
    {"s2s", "route.", offsetof(struct config, s2s_routes), offsetof(struct config, n_s2s_routes)},
    {"component", "secret.", offsetof(struct config, component_secrets),
     offsetof(struct config, n_component_secrets)},
    {NULL, NULL, 0, 0},
};

static const struct config_family *
family_find(const char *section, const char *key)
{
	for (const struct config_family *f = config_families; f->section; f++) {
		size_t n = strlen(f->prefix);
		if (!strcmp(f->section, section) && !strncmp(key, f->prefix, n) && key[n])
			return f;
	}
	return NULL;
}

static void
pairs_free(struct config_pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].key);
		free(p[i].value);
	}
	free(p);
}

const char *
config_pair_get(const struct config_pair *pairs, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(pairs[i].key, key) == 0)
			return pairs[i].value;
	return NULL;
}

static void
set_pair(struct config *c, const struct config_family *f, const char *name, const char *value)
{
	struct config_pair **pairs = (struct config_pair **)((char *)c + f->pairs);
	size_t *n = (size_t *)((char *)c + f->count);

	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*pairs)[i].key, name) == 0) {
			free((*pairs)[i].value);
			(*pairs)[i].value = xstrdup(value);
			return;
		}
	}
	*pairs = xrealloc(*pairs, (*n + 1) * sizeof **pairs);
	(*pairs)[*n].key = xstrdup(name);
	(*pairs)[*n].value = xstrdup(value);
	(*n)++;
}

static int
set_one(struct config *c, const char *section, const char *key, const char *value, char *err,
	size_t errlen)
{
	const struct config_key *k = key_find(section, key);
	const struct config_family *f = k ? NULL : family_find(section, key);

	if (f) {
		set_pair(c, f, key + strlen(f->prefix), value);
		return 0;
	}

	if (!k && strcmp(section, "sip.alias") == 0)
		return set_sip_alias(c, key, value, err, errlen);
	if (!k && strncmp(section, "sms.", 4) == 0 && section[4])
		return set_sms_peer(c, section + 4, key, value, err, errlen);

	if (!k) {
		snprintf(err, errlen, "unknown configuration key %s.%s", section, key);
		return -1;
	}
	if (key_store(c, k, value) < 0) {
		snprintf(err, errlen, "bad value '%s' for %s.%s: expected %s", value, section, key,
			 type_hints[k->type]);
		return -1;
	}
	return 0;
}

void
config_defaults(struct config *c)
{
	char err[256];

	memset(c, 0, sizeof *c);
	for (const struct config_key *k = config_keys; k->section; k++) {
		if (set_one(c, k->section, k->key, k->def, err, sizeof err) < 0)
			fatal("bad default: %s", err);
	}
}

struct load_ctx {
	struct config *c;
	char *err;
	size_t errlen;
	const char *path;
	int failed;
	bool seen[ARRAY_LEN(config_keys)]; /* keys set by this file */
};

static int
config_ini_line(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *ctx = user;
	char err[256];

	if (ctx->failed)
		return 0;
	/*
	 * Debian's libinih is built with INI_ALLOW_MULTILINE: an indented line reaches us as
	 * a second value of the previous key. Refusing repeated keys catches both mistakes.
	 */
	const struct config_key *k = key_find(section, name);
	if (k && ctx->seen[k - config_keys]) {
		snprintf(ctx->err, ctx->errlen,
			 "%s: %s.%s is set twice (or continued by an indented line)", ctx->path,
			 section, name);
		ctx->failed = 1;
		return 0;
	}
	if (k)
		ctx->seen[k - config_keys] = true;
	if (set_one(ctx->c, section, name, value, err, sizeof err) < 0) {
		snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->path, err);
		ctx->failed = 1;
		return 0;
	}
	return 1;
}

int
config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct load_ctx ctx = {c, err, errlen, path, 0, {0}};
	int r = ini_parse(path, config_ini_line, &ctx);

	if (ctx.failed)
		return -1;
	if (r == -1) {
		snprintf(err, errlen, "cannot read configuration file %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (r != 0) {
		snprintf(err, errlen, "%s:%d: syntax error", path, r);
		return -1;
	}
	return 0;
}

int
config_set(struct config *c, const char *dotted, const char *value, char *err, size_t errlen)
{
	const char *dot = strrchr(dotted, '.');
	char section[64];

	/* s2s.route.example.org: the family's name has dots of its own. */
	for (const struct config_family *f = config_families; f->section; f++) {
		size_t n = strlen(f->section);
		if (!strncmp(dotted, f->section, n) && dotted[n] == '.' &&
		    family_find(f->section, dotted + n + 1))
			return set_one(c, f->section, dotted + n + 1, value, err, errlen);
	}

	if (!dot || dot == dotted || (size_t)(dot - dotted) >= sizeof section) {
		snprintf(err, errlen, "bad key '%s': expected SECTION.KEY", dotted);
		return -1;
	}
	memcpy(section, dotted, (size_t)(dot - dotted));
	section[dot - dotted] = '\0';
	return set_one(c, section, dot + 1, value, err, errlen);
}

void
config_free(struct config *c)
{
	for (size_t i = 0; i < c->n_sms_peers; i++) {
		free(c->sms_peers[i].name);
		free(c->sms_peers[i].secret);
		free(c->sms_peers[i].prefixes);
	}
	free(c->sms_peers);
	c->sms_peers = NULL;
	c->n_sms_peers = 0;
	for (size_t i = 0; i < c->n_sip_aliases; i++) {
		free(c->sip_aliases[i].number);
		free(c->sip_aliases[i].user);
	}
	free(c->sip_aliases);
	c->sip_aliases = NULL;
	c->n_sip_aliases = 0;
	for (const struct config_family *f = config_families; f->section; f++) {
		struct config_pair **pairs = (struct config_pair **)((char *)c + f->pairs);
		size_t *n = (size_t *)((char *)c + f->count);
		pairs_free(*pairs, *n);
		*pairs = NULL;
		*n = 0;
	}
	for (const struct config_key *k = config_keys; k->section; k++) {
		if (k->type == CFG_STR) {
			char **field = (char **)((char *)c + k->offset);
			free(*field);
			*field = NULL;
		}
	}
}
