/*
 * batonctl: administration from the command line: accounts (add, del, list, passwd),
 * invitations to register, and status. It opens the database directly, so it works whether batond
 * runs or not (SQLite's WAL and busy timeout let both use it at once).
 *
 * Invariant: a password never reaches the disk; only SCRAM salted keys are stored.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/core.h"
#include "../sms/link.h"
#include "../store/store.h"
#include "../xmpp/xmpp.h"

static void
usage(FILE *f)
{
	fputs(
	    "usage: batonctl [-c FILE] [--data DIR] [--domain D] COMMAND\n"
	    "  user add JID [PASSWORD]     create an account (password read from stdin if absent)\n"
	    "  user del JID                delete an account and everything it owns\n"
	    "  user list                   list accounts, one JID per line\n"
	    "  user passwd JID [PASSWORD]  change a password\n"
	    "  identity log JID            the account's changes of active device (audit trail)\n"
	    "  identity show JID           its shared-identity settings\n"
	    "  identity exclusive JID on|off  one active device at a time (takes effect\n"
	    "                              when the account next loads)\n"
	    "  invite [--uses N] [--expires DURATION]\n"
	    "                              an invitation for c2s.registration = token: prints the\n"
	    "                              token and an xmpp: URI (defaults: 1 use, 7d)\n"
	    "  invite list                 invitations: uses left, expiry\n"
	    "  invite revoke TOKEN         delete an invitation\n"
	    "  status                      is batond running, how many accounts\n"
	    "  sms status                  the SMS links: both rings (pointers, counts), queue,\n"
	    "                              link and SMSC state (batond's or baton-smsbuf's data)\n",
	    f);
}

static noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static noreturn void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("batonctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* Returns the normalised bare JID of an account argument, or dies. */
static char *
account_jid(const struct config *cfg, bool domain_known, const char *arg)
{
	struct jid j;
	char *bare;

	if (jid_parse(arg, &j) < 0 || !j.local || j.resource)
		die("'%s' is not an account JID (user@domain)", arg);
	if (domain_known && strcmp(j.domain, cfg->domain) != 0)
		die("'%s' is not in this server's domain %s", arg, cfg->domain);
	bare = jid_bare(&j);
	jid_free(&j);
	return bare;
}

static void
read_password(const char *arg, char *out, size_t n)
{
	if (arg) {
		if (strlen(arg) >= n)
			die("password too long");
		strcpy(out, arg);
		return;
	}
	if (!fgets(out, (int)n, stdin))
		die("no password given (argument or first line of stdin)");
	out[strcspn(out, "\r\n")] = 0;
}

/* The stored form of jid's password: SCRAM keys, and digest HA1s for SIP (realm: the domain). */
static void
make_creds(const struct config *cfg, const char *jid, const char *password,
	   unsigned char blob[SASL_CREDS_BLOB])
{
	unsigned char salt[SASL_SALT_LEN];
	struct sasl_creds c;
	const char *at = strchr(jid, '@');
	char user[1024];

	snprintf(user, sizeof user, "%.*s", (int)(at - jid), jid);
	rand_bytes(salt, sizeof salt);
	if (sasl_creds_derive(password, salt, (uint32_t)cfg->scram_iterations, &c) < 0 ||
	    sasl_creds_digest(&c, user, at + 1, password) < 0)
		die("the password must be non-empty valid UTF-8");
	sasl_creds_encode(&c, blob);
}

static struct store *
open_store(const struct config *cfg)
{
	char err[512];
	struct store *st = store_open(cfg, err, sizeof err);

	if (!st)
		die("%s", err);
	return st;
}

static void
print_jid(void *arg, const char *jid)
{
	puts(jid);
}

/* Returns batond's pid if it holds the data directory's pidfile lock, else 0. */
static long
running_pid(const char *dir)
{
	char path[4096], buf[32];
	long pid = 0;
	int fd;

	snprintf(path, sizeof path, "%s/batond.pid", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
		ssize_t r = read(fd, buf, sizeof buf - 1);
		buf[r > 0 ? r : 0] = 0;
		pid = strtol(buf, NULL, 10);
		if (pid <= 0)
			pid = -1;
	}
	close(fd);
	return pid;
}

static int
cmd_user(const struct config *cfg, bool domain_known, int argc, char **argv)
{
	unsigned char blob[SASL_CREDS_BLOB];
	char password[1024];
	struct store *st;
	char *jid;
	int r;

	if (argc < 1)
		die("user: add, del, list or passwd?");
	if (strcmp(argv[0], "list") == 0 && argc == 1) {
		st = open_store(cfg);
		if (store_account_list(st, print_jid, NULL) < 0)
			die("cannot read the account list");
		store_close(st);
		return 0;
	}
	if ((strcmp(argv[0], "add") == 0 || strcmp(argv[0], "passwd") == 0) &&
	    (argc == 2 || argc == 3)) {
		jid = account_jid(cfg, domain_known, argv[1]);
		read_password(argc == 3 ? argv[2] : NULL, password, sizeof password);
		make_creds(cfg, jid, password, blob);
		memset(password, 0, sizeof password);
		st = open_store(cfg);
		if (argv[0][0] == 'a')
			r = store_account_create(st, jid, blob, sizeof blob);
		else
			r = store_account_set_creds(st, jid, blob, sizeof blob);
		store_close(st);
		if (r == STORE_EEXIST)
			die("account %s already exists", jid);
		if (r == STORE_ENOENT)
			die("no account %s", jid);
		if (r < 0)
			die("storage failed; account %s unchanged", jid);
		printf("%s %s\n", argv[0][0] == 'a' ? "created" : "password changed for", jid);
		free(jid);
		return 0;
	}
	if (strcmp(argv[0], "del") == 0 && argc == 2) {
		jid = account_jid(cfg, domain_known, argv[1]);
		st = open_store(cfg);
		r = store_account_delete(st, jid);
		store_close(st);
		if (r == STORE_ENOENT)
			die("no account %s", jid);
		if (r < 0)
			die("storage failed; account %s unchanged", jid);
		printf("deleted %s\n", jid);
		free(jid);
		return 0;
	}
	usage(stderr);
	return 2;
}

/* ---- sms status: the mirrored rings of seed 001, as batond or baton-smsbuf keep them ---- */

struct sms_rings {
	struct sms_ring ring[2];
};

static void
sms_load_slot(void *arg, int dir, const struct store_sms_msg *m)
{
	struct sms_rings *r = arg;
	if ((dir == SMS_MT || dir == SMS_MO) && m->seq > 0)
		ring_put(&r->ring[dir], (uint64_t)m->seq, m->state, NULL, NULL, NULL, NULL, NULL);
}

static void
sms_print_link(void *arg, const char *link)
{
	struct store *st = arg;
	struct sms_rings r;
	struct buf v = {0};
	char key[128];
	long queued;

	for (int d = 0; d < 2; d++)
		ring_init(&r.ring[d], 65535);
	if (store_sms_slots(st, link, sms_load_slot, &r) < 0)
		die("cannot read the rings of %s", link);
	printf("link %s\n", link);
	for (const char *const *k = (const char *const[]){"link", "smsc", NULL}; *k; k++) {
		snprintf(key, sizeof key, "state:%s:%s", *k, link);
		buf_reset(&v);
		if (store_sms_kv_get(st, key, &v) == 0)
			printf("  %-5s %s\n", *k, buf_head(&v));
	}
	for (int d = 0; d < 2; d++) {
		struct sms_ring *g = &r.ring[d];
		unsigned count[5] = {0};
		for (unsigned i = 0; i < g->size; i++)
			if (g->slot[i].seq)
				count[g->slot[i].state]++;
		printf("  %s ring: last retrieved %llu, sent %llu, confirmed %llu, processed %llu; "
		       "waiting: %u retrieved, %u sent, %u confirmed\n",
		       d == SMS_MT ? "MT" : "MO", (unsigned long long)g->last_retrieved,
		       (unsigned long long)g->last_sent, (unsigned long long)g->last_confirmed,
		       (unsigned long long)g->last_processed, count[SMS_RETRIEVED], count[SMS_SENT],
		       count[SMS_CONFIRMED]);
		ring_free(g);
	}
	queued = store_sms_queue_count(st, link);
	if (queued > 0)
		printf("  MT queued for the ring: %ld\n", queued);
	buf_free(&v);
}

static int
cmd_sms(const struct config *cfg, int argc, char **argv)
{
	struct store *st;
	int r;

	if (argc < 1 || strcmp(argv[0], "status") != 0)
		die("sms: status");
	st = open_store(cfg);
	r = store_sms_links(st, sms_print_link, st);
	store_close(st);
	if (r < 0)
		die("cannot read the SMS links");
	return 0;
}

static void
print_event(void *arg, const struct store_identity_event *e)
{
	char when[32];

	time_format(e->at, when, sizeof when);
	printf("%s  %s -> %s  reason=%s gen=%lld\n", when, e->prev ? e->prev : "-", e->next,
	       e->reason, (long long)e->gen);
}

static int
cmd_identity(const struct config *cfg, bool domain_known, int argc, char **argv)
{
	struct store_identity id;
	struct store *st;
	char *jid;
	int r;

	if (argc < 2)
		die("identity: log, show or exclusive, and an account JID");
	jid = account_jid(cfg, domain_known, argv[1]);
	st = open_store(cfg);
	if (strcmp(argv[0], "log") == 0 && argc == 2) {
		r = store_identity_log(st, jid, 1000, print_event, NULL);
	} else if (strcmp(argv[0], "show") == 0 && argc == 2) {
		r = store_identity_get(st, jid, &id);
		if (r == 0 || r == STORE_ENOENT)
			printf("exclusive=%s barring=%s gen=%lld\n", id.exclusive ? "on" : "off",
			       id.barring ? "on" : "off", (long long)id.gen);
		r = r == STORE_ENOENT ? 0 : r;
	} else if (strcmp(argv[0], "exclusive") == 0 && argc == 3 &&
		   (strcmp(argv[2], "on") == 0 || strcmp(argv[2], "off") == 0)) {
		r = store_identity_get(st, jid, &id);
		if (r == 0 || r == STORE_ENOENT) {
			id.exclusive = strcmp(argv[2], "on") == 0;
			r = store_identity_set(st, jid, &id);
		}
		if (r == 0)
			printf("exclusive mode %s for %s\n", argv[2], jid);
	} else {
		store_close(st);
		usage(stderr);
		return 2;
	}
	store_close(st);
	if (r == STORE_ENOENT)
		die("no account %s", jid);
	if (r < 0)
		die("storage failed");
	free(jid);
	return 0;
}

/* ---- invitations (c2s.registration = token) ---- */

static void
print_invite(void *arg, const char *token, long uses, int64_t expires, int64_t created)
{
	int64_t now = *(int64_t *)arg;
	char when[32];

	time_format(expires, when, sizeof when);
	printf("%s uses=%ld expires=%s%s\n", token, uses, when,
	       uses <= 0	? " (used up)"
	       : expires <= now ? " (expired)"
				: "");
}

static int
cmd_invite(const struct config *cfg, int argc, char **argv)
{
	long uses = 1;
	uint64_t ttl = 7ULL * 86400 * 1000;
	int64_t now = wall_ms();
	char token[33];
	struct store *st;
	int r;

	if (argc >= 1 && strcmp(argv[0], "list") == 0 && argc == 1) {
		st = open_store(cfg);
		r = store_invite_list(st, print_invite, &now);
		store_close(st);
		if (r < 0)
			die("cannot read the invitations");
		return 0;
	}
	if (argc >= 1 && strcmp(argv[0], "revoke") == 0) {
		if (argc != 2)
			die("invite revoke: which token?");
		st = open_store(cfg);
		r = store_invite_del(st, argv[1]);
		store_close(st);
		if (r == STORE_ENOENT)
			die("no invitation %s", argv[1]);
		if (r < 0)
			die("storage failed; invitation %s unchanged", argv[1]);
		printf("revoked %s\n", argv[1]);
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		char *end;
		if (strcmp(argv[i], "--uses") == 0 && i + 1 < argc) {
			uses = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || uses < 1 || uses > 1000000)
				die("--uses wants a number from 1 to 1000000, not '%s'", argv[i]);
		} else if (strcmp(argv[i], "--expires") == 0 && i + 1 < argc) {
			if (config_parse_duration(argv[++i], &ttl) < 0 || ttl == 0 ||
			    ttl > 3650ULL * 86400 * 1000)
				die("--expires wants a duration like 12h or 7d, not '%s'", argv[i]);
		} else {
			usage(stderr);
			return 2;
		}
	}
	/* 32 characters of [A-Za-z0-9]: about 190 bits, and safe in a URI as they are. */
	rand_id(token, 32);
	st = open_store(cfg);
	r = store_invite_put(st, token, uses, now + (int64_t)ttl);
	store_close(st);
	if (r < 0)
		die("storage failed; no invitation made");
	/* XEP-0401 section 4 / XEP-0445 section 2.2: the URI a client turns into a registration. */
	printf("%s\nxmpp:%s?register;preauth=%s\n", token, cfg->domain, token);
	return 0;
}

static int
cmd_status(const struct config *cfg)
{
	long pid = running_pid(cfg->data_dir);
	struct stat sb;
	struct store *st;
	long n;

	if (pid > 0)
		printf("batond: running (pid %ld)\n", pid);
	else
		printf("batond: not running\n");
	printf("data: %s\n", cfg->data_dir);
	if (stat(cfg->data_dir, &sb) < 0) {
		printf("accounts: 0 (no data directory yet)\n");
		return 0;
	}
	st = open_store(cfg);
	n = store_account_count(st);
	store_close(st);
	if (n < 0)
		die("cannot count accounts");
	printf("accounts: %ld\n", n);
	return 0;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	char err[512];
	bool domain_known = false;
	int i, r;

	config_defaults(&cfg);
	log_set_level("warn");
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (i + 1 >= argc)
			break;
		if (strcmp(a, "-c") == 0) {
			if (config_load(&cfg, argv[++i], err, sizeof err) < 0)
				die("%s", err);
			domain_known = true;
		} else if (strcmp(a, "--data") == 0) {
			if (config_set(&cfg, "server.data", argv[++i], err, sizeof err) < 0)
				die("%s", err);
		} else if (strcmp(a, "--domain") == 0) {
			char *d;
			if (jid_norm_domain(argv[++i], &d) < 0)
				die("'%s' is not a valid domain", argv[i]);
			free(cfg.domain);
			cfg.domain = d;
			domain_known = true;
		} else {
			die("unknown option: %s", a);
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "user") == 0)
		r = cmd_user(&cfg, domain_known, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "identity") == 0)
		r = cmd_identity(&cfg, domain_known, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "invite") == 0)
		r = cmd_invite(&cfg, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "sms") == 0)
		r = cmd_sms(&cfg, argc - i - 1, argv + i + 1);
	else if (strcmp(argv[i], "status") == 0)
		r = cmd_status(&cfg);
	else {
		usage(stderr);
		r = 2;
	}
	config_free(&cfg);
	return r;
}
