/*
 * test_config: unit tests of the configuration (src/core/config.c): defaults, INI files
 * with every key type, the errors an operator sees for unknown or malformed keys, --set,
 * and the tie between the key table and docs/config.md: every key is documented with its
 * exact default and the document lists no other key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

#include "check.h"

static char ini_path[256];

/* Writes text to the test's temporary INI file; returns its path. */
static const char *
write_ini(const char *text)
{
	FILE *f = fopen(ini_path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		printf("test_config: cannot write %s\n", ini_path);
		exit(1);
	}
	return ini_path;
}

static const struct config_key *
find_key(const char *section, const char *key)
{
	for (const struct config_key *k = config_keys; k->section; k++) {
		if (!strcmp(k->section, section) && !strcmp(k->key, key))
			return k;
	}
	return NULL;
}

/* ---- defaults ---- */

static void
test_defaults(void)
{
	struct config c;

	config_defaults(&c);
	CHECK(c.domain && !strcmp(c.domain, "localhost"), "domain '%s'", c.domain);
	CHECK(c.data_dir && !strcmp(c.data_dir, "./data"), "data '%s'", c.data_dir);
	CHECK(c.cert_file && !strcmp(c.cert_file, "") && c.key_file && !strcmp(c.key_file, ""),
	      "cert/key default to \"\" (self-signed)");
	CHECK(c.log_level && !strcmp(c.log_level, "info"), "log_level '%s'", c.log_level);
	CHECK(c.workers == 0, "workers %ld", c.workers);
	CHECK(!c.allow_plaintext, "allow_plaintext defaults to false (TLS required)");
	CHECK(!strcmp(c.c2s_listen, "127.0.0.1:5222"), "c2s.listen '%s'", c.c2s_listen);
	CHECK(!strcmp(c.c2s_tls_listen, "127.0.0.1:5223"), "c2s.tls_listen '%s'", c.c2s_tls_listen);
	CHECK(!strcmp(c.registration, "closed"), "registration '%s'", c.registration);
	CHECK(c.stanza_size == 256 * 1024, "stanza_size %zu", c.stanza_size);
	CHECK(c.stanza_size_preauth == 16 * 1024, "stanza_size_preauth %zu", c.stanza_size_preauth);
	CHECK(c.stanza_size_preauth < c.stanza_size, "pre-auth limit tighter (STYLE.md rule 13)");
	CHECK(c.stanza_depth == 32, "stanza_depth %ld", c.stanza_depth);
	CHECK(c.rate == 0 && c.rate_burst == 256 * 1024, "rate %zu burst %zu", c.rate,
	      c.rate_burst);
	CHECK(c.auth_timeout == 30000, "auth_timeout %llu ms", (unsigned long long)c.auth_timeout);
	CHECK(c.auth_failures == 3, "auth_failures %ld", c.auth_failures);
	CHECK(c.send_queue == 4 * 1024 * 1024, "send_queue %zu", c.send_queue);
	CHECK(!strcmp(c.storage_backend, "sqlite") && !strcmp(c.storage_sync, "normal"),
	      "storage '%s' '%s'", c.storage_backend, c.storage_sync);
	CHECK(c.storage_batch_ms == 0, "batch_ms %llu", (unsigned long long)c.storage_batch_ms);
	CHECK(c.scram_iterations >= 4096, "scram_iterations %ld below RFC 7677's 4096",
	      c.scram_iterations);
	config_free(&c);
	CHECK(c.domain == NULL && c.registration == NULL, "config_free clears string fields");
}

/* The table itself: unique keys, each with help, no section or key the INI syntax breaks. */
static void
test_table(void)
{
	size_t n = 0;

	for (const struct config_key *k = config_keys; k->section; k++, n++) {
		CHECK(find_key(k->section, k->key) == k, "duplicate key %s.%s", k->section, k->key);
		CHECK(k->def != NULL && k->help && k->help[0], "%s.%s lacks default or help",
		      k->section, k->key);
		CHECK(strcspn(k->section, ".[]=:; ") == strlen(k->section) && k->key[0] &&
			  strcspn(k->key, ".[]=:; ") == strlen(k->key),
		      "%s.%s: name not usable in INI or --set", k->section, k->key);
		CHECK(k->type <= CFG_DURATION, "%s.%s: bad type", k->section, k->key);
	}
	CHECK(n >= 20, "only %zu keys in config_keys", n);
}

/* ---- config_load ---- */

static void
test_load_all_types(void)
{
	struct config c;
	char err[512] = "";

	config_defaults(&c);
	const char *path = write_ini("; baton test configuration\n"
				     "# comments of both kinds\n"
				     "[server]\n"
				     "domain = example.org\n"
				     "data=/var/lib/baton\n"
				     "workers = 4 ; inline comment\n"
				     "allow_plaintext = yes\n"
				     "log_level = debug\n"
				     "\n"
				     "[c2s]\n"
				     "listen =\n"
				     "tls_listen = 0.0.0.0:5223\n"
				     "registration = open\n"
				     "[limits]\n"
				     "stanza_size = 64k\n"
				     "stanza_size_preauth = 4096\n"
				     "rate = 1M\n"
				     "send_queue = 1G\n"
				     "auth_timeout = 2m\n"
				     "auth_failures = 0\n"
				     "[storage]\n"
				     "batch_ms = 250ms\n"
				     "synchronous = full\n"
				     "[sasl]\n"
				     "scram_iterations = 10000\n");
	int r = config_load(&c, path, err, sizeof err);
	CHECK(r == 0, "config_load failed: %s", err);
	CHECK(!strcmp(c.domain, "example.org"), "str: domain '%s'", c.domain);
	CHECK(!strcmp(c.data_dir, "/var/lib/baton"), "str without spaces: data '%s'", c.data_dir);
	CHECK(c.workers == 4, "int with inline comment: workers %ld", c.workers);
	CHECK(c.allow_plaintext, "bool: allow_plaintext = yes");
	CHECK(!strcmp(c.log_level, "debug"), "log_level '%s'", c.log_level);
	CHECK(!strcmp(c.c2s_listen, ""), "empty value: c2s.listen '%s'", c.c2s_listen);
	CHECK(!strcmp(c.c2s_tls_listen, "0.0.0.0:5223"), "tls_listen '%s'", c.c2s_tls_listen);
	CHECK(!strcmp(c.registration, "open"), "registration '%s'", c.registration);
	CHECK(c.stanza_size == 65536 && c.stanza_size_preauth == 4096, "sizes %zu %zu",
	      c.stanza_size, c.stanza_size_preauth);
	CHECK(c.rate == 1048576 && c.send_queue == 1073741824, "sizes M/G: %zu %zu", c.rate,
	      c.send_queue);
	CHECK(c.auth_timeout == 120000, "duration 2m = %llu ms",
	      (unsigned long long)c.auth_timeout);
	CHECK(c.auth_failures == 0, "int 0: %ld", c.auth_failures);
	CHECK(c.storage_batch_ms == 250, "duration 250ms = %llu",
	      (unsigned long long)c.storage_batch_ms);
	CHECK(!strcmp(c.storage_sync, "full"), "synchronous '%s'", c.storage_sync);
	CHECK(c.scram_iterations == 10000, "scram_iterations %ld", c.scram_iterations);
	/* Keys the file does not mention keep their defaults. */
	CHECK(!strcmp(c.cert_file, "") && c.stanza_depth == 32 && c.rate_burst == 262144 &&
		  !strcmp(c.storage_backend, "sqlite"),
	      "unmentioned keys lost their defaults");

	/* A second file on top of the first: later values win, strings are replaced. */
	path = write_ini("[server]\ndomain = other.example\nallow_plaintext = off\n");
	r = config_load(&c, path, err, sizeof err);
	CHECK(r == 0 && !strcmp(c.domain, "other.example") && !c.allow_plaintext && c.workers == 4,
	      "second load: r=%d domain '%s'", r, c.domain);
	config_free(&c);
}

static void
test_bools(void)
{
	static const struct {
		const char *v;
		int want;
	} cases[] = {
	    {"true", 1}, {"yes", 1}, {"on", 1}, {"1", 1},      {"false", 0},
	    {"no", 0},	 {"off", 0}, {"0", 0},	{"maybe", -1}, {"", -1},
	    {"2", -1},	 {"y", -1},  {"t", -1}, {"truex", -1}, {"-1", -1},
	};
	struct config c;
	char err[256], text[128];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		config_defaults(&c);
		c.allow_plaintext = cases[i].want != 1; /* so the result must be written */
		snprintf(text, sizeof text, "[server]\nallow_plaintext = %s\n", cases[i].v);
		err[0] = '\0';
		int r = config_load(&c, write_ini(text), err, sizeof err);
		if (cases[i].want < 0)
			CHECK(r < 0 && strstr(err, "server.allow_plaintext"),
			      "bool '%s': r=%d err '%s'", cases[i].v, r, err);
		else
			CHECK(r == 0 && c.allow_plaintext == (cases[i].want == 1),
			      "bool '%s': r=%d value %d", cases[i].v, r, c.allow_plaintext);
		config_free(&c);
	}
}

/* Every error names the file and the offending section.key (or line), so operators can fix it. */
static void
test_load_errors(void)
{
	static const struct {
		const char *text;
		const char *want1, *want2;
	} cases[] = {
	    {"[nosuch]\nkey = 1\n", "nosuch", "unknown"},
	    {"[server]\nfoo = 1\n", "server.foo", "unknown"},
	    {"[server]\ndomain = x\n[c2s]\ndomain = y\n", "c2s.domain", "unknown"},
	    {"domain = x\n", "domain", "unknown"}, /* a key before any section */
	    {"[Server]\ndomain = x\n", "Server.domain", "unknown"},
	    {"[server]\nallow_plaintext = maybe\n", "server.allow_plaintext", "maybe"},
	    {"[server]\nworkers = many\n", "server.workers", "many"},
	    {"[server]\nworkers = -1\n", "server.workers", "-1"},
	    {"[server]\nworkers = 4x\n", "server.workers", "4x"},
	    {"[server]\nworkers = 99999999999999999999\n", "server.workers", "integer"},
	    {"[limits]\nstanza_depth =\n", "limits.stanza_depth", "integer"},
	    {"[limits]\nstanza_size = 10x\n", "limits.stanza_size", "10x"},
	    {"[limits]\nsend_queue = -4M\n", "limits.send_queue", "-4M"},
	    {"[limits]\nrate =\n", "limits.rate", "size"},
	    {"[limits]\nrate_burst = 1.5k\n", "limits.rate_burst", "1.5k"},
	    {"[limits]\nauth_timeout = 10y\n", "limits.auth_timeout", "10y"},
	    {"[limits]\nauth_timeout = -5s\n", "limits.auth_timeout", "duration"},
	    {"[storage]\nbatch_ms = 99999999999999999999d\n", "storage.batch_ms", "duration"},
	    {"[server]\njust some words\n", ":2:", "syntax"},
	    {"[server\n", ":1:", "syntax"},
	    {"[server\ndomain = x\n", "domain", ""},
	    {"[server]\ndomain = a.example\ndomain = b.example\n", "server.domain", "twice"},
	    /*
	     * libinih continues a value on an indented line (INI_ALLOW_MULTILINE): this file
	     * must not silently set domain to "data = /srv/baton".
	     */
	    {"[server]\ndomain = a.example\n  data = /srv/baton\n", "server.domain", "domain"},
	};
	struct config c;
	char err[512];

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		config_defaults(&c);
		err[0] = '\0';
		int r = config_load(&c, write_ini(cases[i].text), err, sizeof err);
		CHECK(r < 0, "accepted: %s", cases[i].text);
		CHECK(strstr(err, cases[i].want1) && strstr(err, cases[i].want2) &&
			  strstr(err, ini_path) && !strchr(err, '\n'),
		      "error for '%s' is '%s', want a line with the path, '%s' and '%s'",
		      cases[i].text, err, cases[i].want1, cases[i].want2);
		config_free(&c);
	}

	/* An unreadable file. */
	config_defaults(&c);
	err[0] = '\0';
	CHECK(config_load(&c, "/nonexistent/baton.ini", err, sizeof err) < 0 &&
		  strstr(err, "/nonexistent/baton.ini"),
	      "missing file: '%s'", err);
	config_free(&c);
}

/* ---- config_set: the --set SECTION.KEY=VALUE path ---- */

static void
test_set(void)
{
	static const struct {
		const char *key, *value, *want_err;
	} bad[] = {
	    {"nodot", "1", "nodot"},
	    {".rate", "1", ".rate"},
	    {"limits.", "1", "limits."},
	    {"limits.rate", "fast", "limits.rate"},
	    {"limits.rate", "-1", "limits.rate"},
	    {"nosuch.key", "1", "nosuch.key"},
	    {"server.allow_plaintext", "sure", "server.allow_plaintext"},
	    {"limits.auth_timeout", "30", NULL}, /* plain ms is fine: not an error */
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.key", "1",
	     "SECTION.KEY"},
	};
	struct config c;
	char err[512];

	config_defaults(&c);
	CHECK(config_set(&c, "limits.rate", "0", err, sizeof err) == 0 && c.rate == 0,
	      "--set limits.rate=0: %s", err);
	CHECK(config_set(&c, "limits.rate", "64k", err, sizeof err) == 0 && c.rate == 65536,
	      "--set limits.rate=64k: %s", err);
	CHECK(config_set(&c, "limits.rate", "0", err, sizeof err) == 0 && c.rate == 0,
	      "--set limits.rate=0 after 64k: %s", err);
	CHECK(config_set(&c, "c2s.registration", "open", err, sizeof err) == 0 &&
		  !strcmp(c.registration, "open"),
	      "--set c2s.registration=open: %s", err);
	CHECK(config_set(&c, "server.domain", "", err, sizeof err) == 0 && !strcmp(c.domain, ""),
	      "--set of an empty string");
	CHECK(config_set(&c, "server.allow_plaintext", "true", err, sizeof err) == 0 &&
		  c.allow_plaintext,
	      "--set bool");
	CHECK(config_set(&c, "storage.batch_ms", "5ms", err, sizeof err) == 0 &&
		  c.storage_batch_ms == 5,
	      "--set duration");

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err[0] = '\0';
		int r = config_set(&c, bad[i].key, bad[i].value, err, sizeof err);
		if (!bad[i].want_err) {
			CHECK(r == 0, "--set %s=%s: %s", bad[i].key, bad[i].value, err);
			continue;
		}
		CHECK(r < 0 && strstr(err, bad[i].want_err),
		      "--set %s=%s: r=%d err '%s', want an error naming '%s'", bad[i].key,
		      bad[i].value, r, err, bad[i].want_err);
	}
	CHECK(c.rate == 0 && c.allow_plaintext, "failed --set changed an earlier value");
	config_free(&c);
}

/* ---- docs/config.md documents every key with its default, and no other key ---- */

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* "`text`" -> text in place; returns NULL if s is not one backtick-quoted span. */
static char *
unquote(char *s)
{
	size_t n = strlen(s);

	if (n < 2 || s[0] != '`' || s[n - 1] != '`')
		return NULL;
	s[n - 1] = '\0';
	s++;
	if (strchr(s, '`'))
		return NULL;
	return s;
}

#define MAX_KEYS 256

static void
test_docs(void)
{
	const char *root = getenv("BATON_ROOT");
	char path[1024], line[2048];
	struct {
		char key[128], def[256];
	} *rows = xcalloc(MAX_KEYS, sizeof *rows);
	size_t nrows = 0;
	FILE *f;

	snprintf(path, sizeof path, "%s%sdocs/config.md", root && *root ? root : "",
		 root && *root ? "/" : "");
	f = fopen(path, "r");
	CHECK(f != NULL, "cannot open %s (run from the repository root or set BATON_ROOT)", path);
	if (!f) {
		free(rows);
		return;
	}
	/* Key rows look like: | `section.key` | `default` | meaning | */
	while (fgets(line, sizeof line, f)) {
		char *cells[4] = {0}, *p = trim(line);
		size_t nc = 0;

		if (p[0] != '|')
			continue;
		p++;
		while (nc < ARRAY_LEN(cells) && p && *p) {
			char *bar = strchr(p, '|');
			if (bar)
				*bar = '\0';
			cells[nc++] = trim(p);
			p = bar ? bar + 1 : NULL;
		}
		char *key = nc >= 2 ? unquote(cells[0]) : NULL;
		if (!key || !strchr(key, '.') ||
		    strspn(key,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") !=
			strlen(key))
			continue; /* header, separator, or a row of options rather than keys */
		char *def = unquote(cells[1]);
		CHECK(def != NULL, "docs: row %s: default is not one `quoted` span", key);
		CHECK(nc >= 3 && cells[2][0], "docs: row %s has no meaning", key);
		if (!def || nrows == MAX_KEYS)
			continue;
		if (!strcmp(def, "\"\""))
			def = "";
		snprintf(rows[nrows].key, sizeof rows[nrows].key, "%s", key);
		snprintf(rows[nrows].def, sizeof rows[nrows].def, "%s", def);
		nrows++;
	}
	fclose(f);
	CHECK(nrows > 0, "docs: no key rows found in %s", path);

	/* Every key of the code is documented once, with its exact default. */
	for (const struct config_key *k = config_keys; k->section; k++) {
		char dotted[128];
		int found = 0;

		snprintf(dotted, sizeof dotted, "%s.%s", k->section, k->key);
		for (size_t i = 0; i < nrows; i++) {
			if (strcmp(rows[i].key, dotted) != 0)
				continue;
			found++;
			CHECK(!strcmp(rows[i].def, k->def), "docs: %s default `%s`, code has `%s`",
			      dotted, rows[i].def, k->def);
		}
		CHECK(found == 1, "docs: %s documented %d times in %s, want once", dotted, found,
		      path);
	}
	/* And the document lists no key the code does not know. */
	for (size_t i = 0; i < nrows; i++) {
		char sec[128], *dot = strrchr(rows[i].key, '.');
		snprintf(sec, sizeof sec, "%.*s", (int)(dot - rows[i].key), rows[i].key);
		CHECK(find_key(sec, dot + 1) != NULL, "docs: %s is not a configuration key",
		      rows[i].key);
	}
	free(rows);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	int fd;

	snprintf(ini_path, sizeof ini_path, "%s/test_config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fd = mkstemp(ini_path);
	if (fd < 0) {
		printf("test_config: mkstemp failed\n");
		return 1;
	}
	close(fd);

	test_defaults();
	test_table();
	test_load_all_types();
	test_bools();
	test_load_errors();
	test_set();
	test_docs();

	unlink(ini_path);
	return check_summary("test_config");
}
