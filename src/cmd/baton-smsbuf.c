/*
 * baton-smsbuf: the SMSC buffer server's main(). Reads the configuration (file, then
 * options), opens its ring in the data directory, then runs the SMSC session and the link to
 * batond on one event loop until SIGTERM or SIGINT.
 *
 * Invariant: signals arrive through a signalfd on the loop, so shutdown runs between events,
 * never inside one, and the rings on disk are always consistent when it exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/core.h"
#include "../smsbuf/smsbuf.h"

static void
usage(FILE *f)
{
	fputs("usage: baton-smsbuf [-c FILE] [options]\n"
	      "  -c FILE                 read the configuration file (INI, see docs/config.md)\n"
	      "  --smsc HOST:PORT        the operator's SMSC (smsbuf.smsc)\n"
	      "  --smsc-protocol P       smpp | cimd2 (smsbuf.smsc_protocol)\n"
	      "  --smsc-user ID          SMPP system_id / CIMD2 user (smsbuf.smsc_user)\n"
	      "  --smsc-password PW      (smsbuf.smsc_password)\n"
	      "  --smsc-window N         requests left unanswered toward the SMSC; 1 = "
	      "stop-and-wait\n"
	      "  --source-addr ADDR      the sender phones see (smsbuf.source_addr)\n"
	      "  --domain D              the IM domain; batond's certificate must carry it\n"
	      "  --link HOST:PORT        batond's SMS link (smsbuf.link)\n"
	      "  --link-secret SECRET    this buffer server's secret (smsbuf.link_secret)\n"
	      "  --link-ca FILE          CA certificates trusted for batond (smsbuf.link_ca)\n"
	      "  --link-plaintext        no TLS on the link (tests, toward --allow-plaintext)\n"
	      "  --data DIR              where the ring is kept (server.data)\n"
	      "  --ring N                slots per direction (smsbuf.ring)\n"
	      "  --name NAME             this buffer server's name (smsbuf.name)\n"
	      "  --status                print the rings, parts and state in --data, and exit\n"
	      "  --set SECTION.KEY=VALUE set any configuration key (repeatable)\n"
	      "  --version               print the version\n",
	      f);
}

static const struct {
	const char *flag, *key;
} options[] = {
    {"--smsc", "smsbuf.smsc"},
    {"--smsc-protocol", "smsbuf.smsc_protocol"},
    {"--smsc-user", "smsbuf.smsc_user"},
    {"--smsc-password", "smsbuf.smsc_password"},
    {"--smsc-window", "smsbuf.smsc_window"},
    {"--source-addr", "smsbuf.source_addr"},
    {"--domain", "server.domain"},
    {"--link", "smsbuf.link"},
    {"--link-secret", "smsbuf.link_secret"},
    {"--link-ca", "smsbuf.link_ca"},
    {"--data", "server.data"},
    {"--ring", "smsbuf.ring"},
    {"--name", "smsbuf.name"},
    {"--log-level", "server.log_level"},
};

static bool status_only; /* --status: print the rings of --data and exit */

static void
parse_args(struct config *cfg, int argc, char **argv)
{
	char err[512];

	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc &&
		    config_load(cfg, argv[i + 1], err, sizeof err) < 0)
			fatal("%s", err);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *key = NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--version") == 0) {
			puts("baton-smsbuf " BATON_VERSION);
			exit(0);
		}
		if (strcmp(a, "--status") == 0) {
			status_only = true;
			continue;
		}
		if (strcmp(a, "--link-plaintext") == 0) {
			config_set(cfg, "smsbuf.link_plaintext", "true", err, sizeof err);
			continue;
		}
		if (strcmp(a, "-c") == 0) {
			i++;
			continue;
		}
		for (size_t k = 0; k < ARRAY_LEN(options); k++)
			if (strcmp(a, options[k].flag) == 0)
				key = options[k].key;
		if (i + 1 >= argc || (!key && strcmp(a, "--set") != 0)) {
			usage(stderr);
			fatal("unknown or incomplete option %s", a);
		}
		const char *v = argv[++i];
		if (!key) {
			const char *eq = strchr(v, '=');
			char dotted[128];
			if (!eq || (size_t)(eq - v) >= sizeof dotted)
				fatal("--set wants SECTION.KEY=VALUE, got '%s'", v);
			memcpy(dotted, v, (size_t)(eq - v));
			dotted[eq - v] = '\0';
			if (config_set(cfg, dotted, eq + 1, err, sizeof err) < 0)
				fatal("%s", err);
		} else if (config_set(cfg, key, v, err, sizeof err) < 0) {
			fatal("%s", err);
		}
	}
}

static void
check_config(const struct config *cfg)
{
	if (!*cfg->smsbuf_smsc)
		fatal("no SMSC: give --smsc HOST:PORT (smsbuf.smsc)");
	if (!*cfg->smsbuf_link)
		fatal("no link to batond: give --link HOST:PORT (smsbuf.link)");
	if (!*cfg->smsbuf_link_secret)
		fatal("no link secret: give --link-secret SECRET (smsbuf.link_secret)");
	if (strcmp(cfg->smsbuf_protocol, "smpp") != 0 && strcmp(cfg->smsbuf_protocol, "cimd2") != 0)
		fatal("smsbuf.smsc_protocol must be smpp or cimd2, not '%s'", cfg->smsbuf_protocol);
	if (cfg->smsbuf_window < 1 || cfg->smsbuf_window > 16)
		fatal("smsbuf.smsc_window must be between 1 and 16");
	if (!*cfg->smsbuf_source_addr || strlen(cfg->smsbuf_source_addr) > 20)
		fatal("smsbuf.source_addr must be 1 to 20 characters");
	if (!*cfg->smsbuf_name || strlen(cfg->smsbuf_name) > 40 ||
	    strspn(cfg->smsbuf_name, "abcdefghijklmnopqrstuvwxyz0123456789-_") !=
		strlen(cfg->smsbuf_name))
		fatal("smsbuf.name must be 1 to 40 of a-z 0-9 - _");
	if (cfg->smsbuf_keepalive < 100)
		fatal("smsbuf.keepalive must be at least 100ms");
}

/* One buffer server per data directory: a second one would write the same ring. */
static int
take_lock(const char *dir)
{
	char path[4096];
	int fd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		fatal("cannot create data directory %s: %s", dir, strerror(errno));
	snprintf(path, sizeof path, "%s/baton-smsbuf.pid", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		fatal("cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		fatal("data directory %s is in use by another baton-smsbuf", dir);
	dprintf(fd, "%ld\n", (long)getpid());
	return fd;
}

struct sigwatch {
	struct loop_io io;
	struct smsbuf *sb;
};

static void
on_signal(struct loop_io *io, uint32_t events)
{
	struct sigwatch *w = container_of(io, struct sigwatch, io);
	struct signalfd_siginfo si;

	if (read(io->fd, &si, sizeof si) == (ssize_t)sizeof si)
		log_info("smsbuf: %s: shutting down", strsignal((int)si.ssi_signo));
	uplink_stop(w->sb);
	smsc_shutdown(w->sb);
}

int
main(int argc, char **argv)
{
	struct config cfg;
	struct smsbuf sb = {0};
	struct sigwatch sw = {0};
	char err[512];
	sigset_t sigs;
	int lockfd;

	program_name = "baton-smsbuf";
	config_defaults(&cfg);
	parse_args(&cfg, argc, argv);
	if (log_set_level(cfg.log_level) < 0)
		fatal("server.log_level must be error, warn, info or debug");
	sb.cfg = &cfg;
	sb.name = cfg.smsbuf_name;
	if (status_only) {
		/* Read-only, with or without a running buffer server (its journal is append-only).
		 */
		log_level_current = LOG_ERROR;
		if (buffer_load(&sb, false, err, sizeof err) < 0)
			fatal("%s", err);
		buffer_status(&sb, stdout);
		buffer_free(&sb);
		config_free(&cfg);
		return 0;
	}
	check_config(&cfg);
	lockfd = take_lock(cfg.data_dir);
	if (buffer_load(&sb, true, err, sizeof err) < 0)
		fatal("%s", err);
	if (!cfg.smsbuf_link_plaintext) {
		sb.tls = tls_client_ctx_new(cfg.smsbuf_link_ca, cfg.domain, err, sizeof err);
		if (!sb.tls)
			fatal("%s", err);
	}

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sb.loop = loop_new(0);
	net_loop_init(sb.loop);
	sw.sb = &sb;
	sw.io.fd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	sw.io.fn = on_signal;
	if (sw.io.fd < 0 || loop_io_add(sb.loop, &sw.io, LOOP_IN) < 0)
		fatal("signalfd: %s", strerror(errno));

	log_info("baton-smsbuf %s: %s (%s, window %ld) <-> batond at %s%s, ring %u", BATON_VERSION,
		 cfg.smsbuf_smsc, cfg.smsbuf_protocol, cfg.smsbuf_window, cfg.smsbuf_link,
		 cfg.smsbuf_link_plaintext ? " (plaintext)" : "", sb.mt.size);
	smsc_start(&sb);
	uplink_start(&sb);
	loop_run(sb.loop);

	smsc_stop(&sb);
	uplink_stop(&sb);
	loop_io_del(sb.loop, &sw.io);
	close(sw.io.fd);
	net_loop_free(sb.loop);
	loop_free(sb.loop);
	buffer_free(&sb);
	tls_ctx_free(sb.tls);
	config_free(&cfg);
	close(lockfd);
	return 0;
}
