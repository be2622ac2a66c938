/*
 * fuzz_jid: libFuzzer target for JID parsing and the PRECIS profiles. The input is
 * parsed as a JID and normalised as each kind of part; utf8_valid is compared with a
 * simple reference decoder.
 *
 * Invariant checked: whatever is accepted is valid UTF-8 within the length limits and
 * stable: jid_full() re-parses to the same parts, normalising a normalised part gives
 * it back unchanged, and jid_bare_of() (which copies canonical addresses) agrees with
 * parsing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "xmpp/jid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what, const char *s)
{
	if (!cond) {
		fprintf(stderr, "fuzz_jid: %s: \"%s\"\n", what, s ? s : "(null)");
		abort();
	}
}

static int
streq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void
check_part(const char *p, const char *what)
{
	if (!p)
		return;
	check(strlen(p) > 0 && strlen(p) <= JID_PART_MAX, what, p);
	check(utf8_valid(p, strlen(p)), what, p);
}

/* norm(norm(x)) == norm(x) for one profile. */
static void
check_norm(int (*fn)(const char *, char **), const char *in, const char *what)
{
	char *once, *twice;

	if (fn(in, &once) < 0)
		return;
	check_part(once, what);
	check(fn(once, &twice) == 0, what, once);
	check(strcmp(once, twice) == 0, what, once);
	free(once);
	free(twice);
}

/* A plain reference: accepts exactly the UTF-8 that utf8_valid must accept. */
static int
utf8_reference(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp;
		size_t len;

		if (s[i] < 0x80)
			len = 1, cp = s[i];
		else if ((s[i] & 0xe0) == 0xc0)
			len = 2, cp = s[i] & 0x1f;
		else if ((s[i] & 0xf0) == 0xe0)
			len = 3, cp = s[i] & 0x0f;
		else if ((s[i] & 0xf8) == 0xf0)
			len = 4, cp = s[i] & 0x07;
		else
			return 0;
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
			return 0;
		if (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r')
			return 0;
		i += len;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1);
	struct jid j, k;

	check(utf8_valid((const char *)data, size) == utf8_reference(data, size),
	      "utf8_valid disagrees with the reference", NULL);
	memcpy(s, data, size);
	s[size] = '\0';
	if (jid_parse(s, &j) == 0) {
		char *full = jid_full(&j), *bare = jid_bare(&j), *fast = jid_bare_of(s);

		/* jid_bare_of copies canonical addresses: it must give what parsing gives. */
		check(fast && strcmp(fast, bare) == 0, "jid_bare_of differs from jid_bare", s);
		free(fast);
		check(j.domain != NULL, "no domain", s);
		check_part(j.local, "local");
		check_part(j.domain, "domain");
		check_part(j.resource, "resource");
		check(jid_parse(full, &k) == 0, "jid_full does not re-parse", full);
		check(streq(j.local, k.local) && streq(j.domain, k.domain) &&
			  streq(j.resource, k.resource),
		      "re-parse differs", full);
		jid_free(&k);
		check(jid_parse(bare, &k) == 0 && k.resource == NULL && streq(j.local, k.local) &&
			  streq(j.domain, k.domain),
		      "jid_bare does not re-parse", bare);
		jid_free(&k);
		free(full);
		free(bare);
		jid_free(&j);
	} else {
		check(jid_bare_of(s) == NULL, "jid_bare_of accepts an invalid address", s);
	}
	check_norm(jid_norm_local, s, "local");
	check_norm(jid_norm_domain, s, "domain");
	check_norm(jid_norm_resource, s, "resource");
	free(s);
	return 0;
}
