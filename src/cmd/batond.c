/*
 * batond: the baton server's main(). Reads the configuration (file, then command-line
 * options in order), takes the data directory's pidfile lock, starts the server and
 * waits for SIGTERM or SIGINT, then shuts down cleanly and exits 0.
 *
 * Invariant: signals are blocked in every thread and taken synchronously here with
 * sigwait(), so no handler ever runs inside server code (STYLE.md rule 20).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/core.h"
#include "../continuity/continuity.h"
#include "../identity/identity.h"
#include "../muc/muc.h"
#include "../sip/sip.h"
#include "../sms/sms.h"
#include "../upload/upload.h"
#include "../web/web.h"
#include "../xmpp/xmpp.h"

static void
usage(FILE *f)
{
	fputs(
	    "usage: batond [-c FILE] [options]\n"
	    "  -c FILE               read the configuration file (INI, see docs/config.md)\n"
	    "  --domain D            the XMPP domain served (server.domain)\n"
	    "  --data DIR            data directory: database, certificate (server.data)\n"
	    "  --c2s ADDR:PORT       client port with STARTTLS, \"\" for none (c2s.listen)\n"
	    "  --c2s-tls ADDR:PORT   client port with direct TLS, \"\" for none (c2s.tls_listen)\n"
	    "  --http ADDR:PORT      HTTP port: BOSH, WebSocket, /m/; \"\" for none (http.listen)\n"
	    "  --cert FILE --key FILE  certificate chain and key (PEM)\n"
	    "  --allow-plaintext     allow authentication without TLS (tests, benchmarks)\n"
	    "  --workers N           I/O worker threads, 0 = one per core\n"
	    "  --s2s ADDR:PORT       server-to-server port: federation on (s2s.listen)\n"
	    "  --component ADDR:PORT  XEP-0114 component port (component.listen)\n"
	    "  --sip ADDR:PORT       SIP over UDP and TCP (sip.listen)\n"
	    "  --sms-link ADDR:PORT  where baton-smsbuf connects (sms.link)\n"
	    "  --sms-secret SECRET   the secret of buffer server sms.name (sms.secret)\n"
	    "  --set SECTION.KEY=VALUE  set any configuration key (repeatable)\n"
	    "  --version             print the version\n",
	    f);
}

struct option_map {
	const char *flag, *key; /* key NULL: a boolean flag handled below */
};

static const struct option_map options[] = {
    {"--domain", "server.domain"},
    {"--data", "server.data"},
    {"--c2s", "c2s.listen"},
    {"--c2s-tls", "c2s.tls_listen"},
    {"--http", "http.listen"},
    {"--cert", "server.cert"},
    {"--key", "server.key"},
    {"--workers", "server.workers"},
    {"--log-level", "server.log_level"},
    {"--s2s", "s2s.listen"},
    {"--component", "component.listen"},
    {"--sip", "sip.listen"},
    {"--sms-link", "sms.link"},
    {"--sms-secret", "sms.secret"},
    {NULL, NULL},
};

/* Opens and locks DIR/batond.pid; returns the fd or exits with one line. */
static int
take_pidfile(const char *dir, char *path, size_t n)
{
	char buf[32];
	int fd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		fatal("cannot create data directory %s: %s", dir, strerror(errno));
	snprintf(path, n, "%s/batond.pid", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		fatal("cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t r = read(fd, buf, sizeof buf - 1);
		buf[r > 0 ? r : 0] = 0;
		buf[strcspn(buf, "\n")] = 0;
		fatal("data directory %s is in use by another batond (pid %s)", dir,
		      *buf ? buf : "?");
	}
	snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, strlen(buf), 0) < 0)
		fatal("cannot write %s: %s", path, strerror(errno));
	return fd;
}

int
main(int argc, char **argv)
{
	struct config cfg;
	char err[512], pidpath[4096], *domain;
	struct server *srv;
	sigset_t sigs;
	int sig, pidfd;

	config_defaults(&cfg);
	/* The file first, so every option overrides it whatever the order. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			if (config_load(&cfg, argv[i + 1], err, sizeof err) < 0)
				fatal("%s", err);
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct option_map *o;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			config_free(&cfg);
			return 0;
		}
		if (strcmp(a, "--version") == 0) {
			puts("batond " BATON_VERSION);
			config_free(&cfg);
			return 0;
		}
		if (strcmp(a, "--allow-plaintext") == 0) {
			if (config_set(&cfg, "server.allow_plaintext", "true", err, sizeof err) < 0)
				fatal("%s", err);
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr,
				"batond: unknown option or missing value: %s (see --help)\n", a);
			config_free(&cfg);
			return 2;
		}
		if (strcmp(a, "-c") == 0) {
			i++;
			continue;
		}
		if (strcmp(a, "--set") == 0) {
			char *eq = strchr(argv[i + 1], '=');
			if (!eq)
				fatal("--set wants SECTION.KEY=VALUE, not '%s'", argv[i + 1]);
			*eq = 0;
			if (config_set(&cfg, argv[i + 1], eq + 1, err, sizeof err) < 0)
				fatal("%s", err);
			*eq = '=';
			i++;
			continue;
		}
		for (o = options; o->flag && strcmp(o->flag, a) != 0; o++)
			;
		if (!o->flag) {
			fprintf(stderr, "batond: unknown option: %s (see --help)\n", a);
			config_free(&cfg);
			return 2;
		}
		if (config_set(&cfg, o->key, argv[++i], err, sizeof err) < 0)
			fatal("%s", err);
	}
	if (jid_norm_domain(cfg.domain, &domain) < 0)
		fatal("server.domain '%s' is not a valid domain name", cfg.domain);
	free(cfg.domain);
	cfg.domain = domain;
	if (log_set_level(cfg.log_level) < 0)
		fatal("server.log_level must be error, warn, info or debug, not '%s'",
		      cfg.log_level);

	/* Block the signals in every thread; this one takes them with sigwait(). */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	pidfd = take_pidfile(cfg.data_dir, pidpath, sizeof pidpath);
	server_add_service(&muc_service); /* XEP-0045 at conference.<domain> */
	web_register(&cfg);
	sms_register(&cfg);
	if (sip_register(&cfg, err, sizeof err) < 0) /* SIP users, sip:user@<domain> */
		fatal("%s", err); /* +E.164@sms.<domain>, links from baton-smsbuf */
	if (upload_register(&cfg, err, sizeof err) < 0) /* XEP-0363 at upload.<domain> */
		fatal("%s", err);
	server_add_ext(&continuity_ext); /* urn:baton:continuity:0 */
	server_add_ext(&identity_ext);	 /* urn:baton:identity:0 */
	srv = server_start(&cfg, err, sizeof err);
	if (!srv) {
		unlink(pidpath);
		fatal("%s", err);
	}
	log_info("ready");
	do {
		if (sigwait(&sigs, &sig) != 0)
			sig = SIGTERM;
	} while (sig != SIGTERM && sig != SIGINT);
	log_info("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	server_stop(srv);
	unlink(pidpath);
	close(pidfd);
	config_free(&cfg);
	return 0;
}
