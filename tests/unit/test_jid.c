/*
 * test_jid: unit tests of JID parsing and the PRECIS profiles: the RFC 7622 section
 * 3.5 examples, case, width and NFC mapping, forbidden characters, contextual and
 * bidi rules, length limits, domain forms (trailing dot, IP literals) and utf8_valid.
 * Every accepted JID must re-parse from jid_full() to the same parts, and ASCII input
 * must come out the same by the fast way as by the general one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
/* The file itself, for its ASCII fast way's switch (ascii_fast): see test_ascii_fast. */
#include "xmpp/jid.c"

#include "check.h"

static const char *
str_or_null(const char *s)
{
	return s ? s : "(null)";
}

/* in -> the full JID after normalisation, or NULL if in must be rejected. */
static const struct {
	const char *in, *want;
} parse_cases[] = {
    /* RFC 7622 section 3.5.1: valid. */
    {"juliet@example.com", "juliet@example.com"},
    {"juliet@example.com/foo", "juliet@example.com/foo"},
    {"juliet@example.com/foo bar", "juliet@example.com/foo bar"},
    {"juliet@example.com/foo@bar", "juliet@example.com/foo@bar"},
    {"foo\\20bar@example.com", "foo\\20bar@example.com"},
    {"fussball@example.com", "fussball@example.com"},
    {"fu\xc3\x9f"
     "ball@example.com",
     "fu\xc3\x9f"
     "ball@example.com"},
    {"\xcf\x80@example.com", "\xcf\x80@example.com"},			/* π */
    {"\xce\xa3@example.com", "\xcf\x83@example.com"},			/* Σ -> σ */
    {"\xcf\x83@example.com", "\xcf\x83@example.com"},			/* σ */
    {"\xcf\x82@example.com", "\xcf\x82@example.com"},			/* ς stays final sigma */
    {"king@example.com/\xe2\x99\x9a", "king@example.com/\xe2\x99\x9a"}, /* ♚ */
    {"example.com", "example.com"},
    {"example.com/foobar", "example.com/foobar"},
    {"a.example.com/b@example.net", "a.example.com/b@example.net"},
    /* RFC 7622 section 3.5.2: invalid. */
    {"\"juliet\"@example.com", NULL},
    {"foo bar@example.com", NULL},
    {"henry\xe2\x85\xa3@example.com", NULL}, /* U+2163 ROMAN NUMERAL FOUR */
    {"\xe2\x99\x9a@example.com", NULL},	     /* symbol in a localpart */
    {"juliet@", NULL},
    {"/foobar", NULL},
    /* Case mapping: localpart and domain lowered, resource preserved. */
    {"Juliet@Example.COM/Balcony", "juliet@example.com/Balcony"},
    {"JULIET@EXAMPLE.COM", "juliet@example.com"},
    {"\xc3\x84pfel@M\xc3\x9cNCHEN.DE", "\xc3\xa4pfel@m\xc3\xbcnchen.de"}, /* Äpfel@MÜNCHEN */
    /* Width mapping: fullwidth ＪＵＬＩＥＴ, fullwidth ｅｘａｍｐｌｅ．ｃｏｍ. */
    {"\xef\xbc\xaa\xef\xbc\xb5\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa5\xef\xbc\xb4@example.com",
     "juliet@example.com"},
    {"\xef\xbd\x85\xef\xbd\x98\xef\xbd\x81\xef\xbd\x8d\xef\xbd\x90\xef\xbd\x8c\xef\xbd\x85"
     "\xef\xbc\x8e\xef\xbd\x83\xef\xbd\x8f\xef\xbd\x8d",
     "example.com"},
    {"a@example\xe3\x80\x82"
     "com",
     "a@example.com"}, /* U+3002 IDEOGRAPHIC FULL STOP */
    /* ... but not in the resource (OpaqueString keeps width). */
    {"a@example.com/\xef\xbc\xa1", "a@example.com/\xef\xbc\xa1"},
    /* NFC in every part. */
    {"e\xcc\x81@example.com", "\xc3\xa9@example.com"},
    {"a@caf\x65\xcc\x81.example/caf\x65\xcc\x81", "a@caf\xc3\xa9.example/caf\xc3\xa9"},
    {"\xe1\x84\x80\xe1\x85\xa1@example.com", "\xea\xb0\x80@example.com"}, /* jamo -> 가 */
    /* Resource: non-ASCII spaces become U+0020; symbols, compat chars allowed. */
    {"a@example.com/x\xc2\xa0y", "a@example.com/x y"},
    {"a@example.com/\xe2\x85\xa3", "a@example.com/\xe2\x85\xa3"},
    {"a@example.com/ a ", "a@example.com/ a "},
    /* Resource is everything after the first '/', '@' and '/' included. */
    {"d/a/b", "d/a/b"},
    {"d/a@b", "d/a@b"},
    {"u@d/r@x/y", "u@d/r@x/y"},
    {"a@b@c", NULL},
    /* Empty parts. */
    {"", NULL},
    {"@", NULL},
    {"/", NULL},
    {"@example.com", NULL},
    {"u@", NULL},
    {"example.com/", NULL},
    {"u@/r", NULL},
    {"u@example.com/", NULL},
    /* RFC 7622 section 3.3.1 forbidden localpart characters. */
    {"a&b@example.com", NULL},
    {"a'b@example.com", NULL},
    {"a:b@example.com", NULL},
    {"a<b@example.com", NULL},
    {"a>b@example.com", NULL},
    {"a\"b@example.com", NULL},
    {"a!#$%*+-=?^_`{|}~b@example.com", "a!#$%*+-=?^_`{|}~b@example.com"},
    /* Controls, ignorables, unassigned and private use. */
    {"a\tb@example.com", NULL},
    {"a@example.com/x\ty", NULL},
    {"a@example.com/x\x7fy", NULL},
    {"a@example.com/x\xc2\x85y", NULL},	    /* U+0085 NEL */
    {"a@example.com/x\xc2\xady", NULL},	    /* U+00AD SOFT HYPHEN, default ignorable */
    {"a@example.com/x\xcd\xb8y", NULL},	    /* U+0378 unassigned */
    {"a@example.com/x\xee\x80\x80y", NULL}, /* U+E000 private use */
    {"a@example.com/x\xef\xbf\xbe", NULL},  /* U+FFFE noncharacter */
    {"a@example.com/x\xe2\x80\xa8y", NULL}, /* U+2028 LINE SEPARATOR */
    {"\xe1\x84\x80@example.com", NULL},	    /* lone old hangul jamo U+1100 */
    /* Contextual rules (RFC 5892 appendix A). */
    {"col\xc2\xb7la@example.com", "col\xc2\xb7la@example.com"}, /* Catalan l·l */
    {"co\xc2\xb7la@example.com", NULL},
    {"a@example.com/col\xc2\xb7la", "a@example.com/col\xc2\xb7la"},
    {"a@example.com/co\xc2\xb7la", NULL}, /* middle dot not between two l */
    {"a\xe2\x80\x8c"
     "b@example.com",
     NULL}, /* ZWNJ without context */
    {"\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d\xe0\xa4\xb7@example.com",
     "\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d\xe0\xa4\xb7@example.com"}, /* ZWJ after virama */
    {"\xd8\xa7\xd9\xa1\xd9\xa2@example.com", "\xd8\xa7\xd9\xa1\xd9\xa2@example.com"}, /* ا١٢ */
    {"\xd8\xa7\xd9\xa1\xdb\xb2@example.com", NULL}, /* Arabic-Indic mixed with extended */
    {"\xd9\xa1\xd9\xa2@example.com", NULL},	    /* AN first: Bidi Rule condition 1 */
    /* Bidi Rule for right-to-left localparts (RFC 8265 3.4 step 5, RFC 5893). */
    {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@example.com",
     "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@example.com"}, /* שלום */
    {"\xd7\x90"
     "1@example.com",
     "\xd7\x90"
     "1@example.com"},
    {"a\xd7\x90@example.com", NULL}, /* LTR start, RTL character */
    {"1\xd7\x90@example.com", NULL}, /* starts with a number */
    /* Domain forms. */
    {"example.com.", "example.com"},
    {"u@example.com./r", "u@example.com/r"},
    {"example.com..", NULL},
    {".", NULL},
    {".example.com", NULL},
    {"a..b", NULL},
    {"localhost", "localhost"},
    {"a-b.example", "a-b.example"},
    {"-ab.example", NULL},
    {"ab-.example", NULL},
    {"a_b.example", NULL},
    {"a b.example", NULL},
    {"a@b.example/", NULL},
    {"192.168.0.1", "192.168.0.1"},
    {"u@10.0.0.1/r", "u@10.0.0.1/r"},
    {"999.1.1.1", NULL},
    {"1.2.3", NULL},
    {"01.2.3.4", NULL},
    {"[::1]", "[::1]"},
    {"u@[0:0:0:0:0:0:0:1]/r", "u@[::1]/r"},
    {"[2001:DB8::1]", "[2001:db8::1]"},
    {"[::1", NULL},
    {"[zz]", NULL},
    {"[]", NULL},
    {"[1.2.3.4]", NULL},
    {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d.example", "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d.example"},
    {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d.1example", NULL}, /* bidi domain, label starts EN */
    {"\xe2\x99\x9a.example", NULL},
    /* Not UTF-8. */
    {"\xc3\x28@example.com", NULL},
    {"a@example.com/\xff", NULL},
    {"a@ex\xc0\xae"
     "com",
     NULL},
};

static void
test_parse_table(void)
{
	for (size_t i = 0; i < ARRAY_LEN(parse_cases); i++) {
		const char *in = parse_cases[i].in, *want = parse_cases[i].want;
		struct jid j = {0}, again = {0};
		int rc = jid_parse(in, &j);

		if (!want) {
			CHECK(rc < 0, "case %zu: \"%s\" accepted", i, in);
			if (rc == 0)
				jid_free(&j);
			continue;
		}
		CHECK(rc == 0, "case %zu: \"%s\" rejected", i, in);
		if (rc < 0)
			continue;
		char *full = jid_full(&j);
		CHECK(strcmp(full, want) == 0, "case %zu: \"%s\" -> \"%s\", want \"%s\"", i, in,
		      full, want);
		/* Stability: the normalised form parses to the same parts. */
		CHECK(jid_parse(full, &again) == 0, "case %zu: \"%s\" does not re-parse", i, full);
		if (again.domain) {
			char *full2 = jid_full(&again);
			CHECK(strcmp(full, full2) == 0, "case %zu: re-parse gives \"%s\"", i,
			      full2);
			free(full2);
			jid_free(&again);
		}
		free(full);
		jid_free(&j);
	}
}

static void
test_parts(void)
{
	struct jid j = {0}, c = {0};
	char *s;

	CHECK(jid_parse("Romeo@Montague.LIT/Orchard", &j) == 0, "parse");
	CHECK(j.local && strcmp(j.local, "romeo") == 0, "local %s", str_or_null(j.local));
	CHECK(j.domain && strcmp(j.domain, "montague.lit") == 0, "domain %s",
	      str_or_null(j.domain));
	CHECK(j.resource && strcmp(j.resource, "Orchard") == 0, "resource %s",
	      str_or_null(j.resource));
	s = jid_bare(&j);
	CHECK(strcmp(s, "romeo@montague.lit") == 0, "bare %s", s);
	free(s);
	jid_copy(&c, &j);
	jid_free(&j);
	CHECK(j.local == NULL && j.domain == NULL && j.resource == NULL, "jid_free clears");
	s = jid_full(&c);
	CHECK(strcmp(s, "romeo@montague.lit/Orchard") == 0, "copy %s", s);
	free(s);
	jid_free(&c);

	CHECK(jid_parse("montague.lit", &j) == 0, "parse domain only");
	CHECK(j.local == NULL && j.resource == NULL, "domain-only has no local/resource");
	s = jid_bare(&j);
	CHECK(strcmp(s, "montague.lit") == 0, "bare %s", s);
	free(s);
	jid_copy(&c, &j);
	CHECK(c.local == NULL && c.resource == NULL && strcmp(c.domain, "montague.lit") == 0,
	      "copy of domain-only");
	jid_free(&c);
	jid_free(&j);

	/* Failure leaves out unchanged. */
	j.local = (char *)"sentinel";
	CHECK(jid_parse("a@b@c", &j) < 0 && strcmp(j.local, "sentinel") == 0,
	      "out changed on failure");
}

/* Builds a string of n copies of c. */
static char *
repeat(char c, size_t n)
{
	char *s = xmalloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A domain of exactly n bytes: 63-byte labels joined by dots, the last one shorter. */
static char *
domain_of(size_t n)
{
	char *s = repeat('a', n);
	for (size_t i = 63; i < n; i += 64)
		s[i] = '.';
	if (s[n - 1] == '.')
		s[n - 2] = '.', s[n - 1] = 'a'; /* never end on a dot */
	return s;
}

static void
test_lengths(void)
{
	char *s, *out = NULL, *a;
	struct buf b = {0};
	struct jid j;

	s = repeat('a', JID_PART_MAX);
	CHECK(jid_norm_local(s, &out) == 0 && strlen(out) == JID_PART_MAX, "local 1023");
	free(out);
	out = NULL;
	CHECK(jid_norm_resource(s, &out) == 0 && strlen(out) == JID_PART_MAX, "resource 1023");
	free(out);
	out = NULL;
	free(s);
	s = repeat('a', JID_PART_MAX + 1);
	CHECK(jid_norm_local(s, &out) < 0, "local 1024 accepted");
	CHECK(jid_norm_resource(s, &out) < 0, "resource 1024 accepted");
	free(s);

	/* 512 two-byte characters = 1024 bytes: the limit is in bytes. */
	for (int i = 0; i < 512; i++)
		buf_puts(&b, "\xc3\xa9");
	a = buf_steal(&b);
	CHECK(jid_norm_local(a, &out) < 0, "local of 1024 bytes / 512 chars accepted");
	a[1022] = '\0';
	CHECK(jid_norm_local(a, &out) == 0 && strlen(out) == 1022, "local 1022 bytes");
	free(out);
	out = NULL;
	free(a);

	/* Uppercase decomposed input that shrinks under NFC below the limit. */
	for (int i = 0; i < 511; i++)
		buf_puts(&b, "E\xcc\x81"); /* 3 bytes in, 2 bytes out */
	a = buf_steal(&b);
	CHECK(jid_norm_local(a, &out) == 0 && strlen(out) == 1022, "NFC shrink to 1022");
	free(out);
	out = NULL;
	free(a);

	s = domain_of(JID_PART_MAX);
	CHECK(strlen(s) == JID_PART_MAX, "domain_of");
	CHECK(jid_norm_domain(s, &out) == 0, "domain 1023");
	free(out);
	out = NULL;
	free(s);
	s = domain_of(JID_PART_MAX + 1);
	CHECK(jid_norm_domain(s, &out) < 0, "domain 1024 accepted");
	free(s);

	s = repeat('a', 63);
	CHECK(jid_norm_domain(s, &out) == 0, "label 63");
	free(out);
	out = NULL;
	free(s);
	s = repeat('a', 64);
	CHECK(jid_norm_domain(s, &out) < 0, "label 64 accepted");
	free(s);

	/* Huge inputs are refused without trouble. */
	s = repeat('a', 100000);
	CHECK(jid_parse(s, &j) < 0, "100000-byte JID accepted");
	CHECK(jid_norm_resource(s, &out) < 0, "100000-byte resource accepted");
	free(s);
}

static void
test_norm_functions(void)
{
	static const struct {
		int (*fn)(const char *, char **);
		const char *in, *want;
	} cases[] = {
	    {jid_norm_local, "User", "user"},
	    {jid_norm_local, "", NULL},
	    {jid_norm_local, "a/b", NULL},
	    {jid_norm_local, "a@b", NULL},
	    {jid_norm_local, "\xe2\x84\xab", "\xc3\xa5"},     /* ANGSTROM SIGN -> å */
	    {jid_norm_local, "\xef\xbd\xb1", "\xe3\x82\xa2"}, /* halfwidth ｱ -> ア */
	    {jid_norm_local, "\xc4\xb0", "i\xcc\x87"},	      /* İ -> i + combining dot */
	    {jid_norm_domain, "Example.COM.", "example.com"},
	    {jid_norm_domain, "", NULL},
	    {jid_norm_domain, "a@b", NULL},
	    {jid_norm_domain, "a/b", NULL},
	    {jid_norm_resource, "Mixed Case", "Mixed Case"},
	    {jid_norm_resource, "pass\xe2\x80\x83word", "pass word"}, /* EM SPACE */
	    {jid_norm_resource, "", NULL},
	    {jid_norm_resource, "\xe2\x80\x8b", NULL}, /* ZERO WIDTH SPACE: ignorable */
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char *out = (char *)"unchanged";
		int rc = cases[i].fn(cases[i].in, &out);

		if (!cases[i].want) {
			CHECK(rc < 0 && strcmp(out, "unchanged") == 0, "norm case %zu accepted", i);
			continue;
		}
		CHECK(rc == 0 && strcmp(out, cases[i].want) == 0, "norm case %zu: got \"%s\"", i,
		      rc == 0 ? out : "(rejected)");
		if (rc == 0)
			free(out);
	}
}

static void
test_utf8_valid(void)
{
	static const struct {
		const char *s;
		size_t n;
		int want;
	} cases[] = {
	    {"", 0, 1},
	    {"abc", 3, 1},
	    {"\t\r\n", 3, 1},
	    {"\x7f", 1, 1},
	    {"\xc3\xa9", 2, 1},
	    {"\xe2\x82\xac", 3, 1},
	    {"\xf0\x9f\x98\x80", 4, 1},
	    {"\xf4\x8f\xbf\xbf", 4, 1}, /* U+10FFFF */
	    {"\xed\x9f\xbf", 3, 1},	/* U+D7FF */
	    {"\xee\x80\x80", 3, 1},	/* U+E000 */
	    {"\x01", 1, 0},
	    {"\x1f", 1, 0},
	    {"a\0b", 3, 0},
	    {"\x80", 1, 0},
	    {"\xbf", 1, 0},
	    {"\xc0\x80", 2, 0},		/* overlong NUL */
	    {"\xc1\xbf", 2, 0},		/* overlong */
	    {"\xe0\x80\xaf", 3, 0},	/* overlong '/' */
	    {"\xe0\x9f\xbf", 3, 0},	/* overlong */
	    {"\xf0\x8f\xbf\xbf", 4, 0}, /* overlong */
	    {"\xed\xa0\x80", 3, 0},	/* surrogate D800 */
	    {"\xed\xbf\xbf", 3, 0},	/* surrogate DFFF */
	    {"\xf4\x90\x80\x80", 4, 0}, /* U+110000 */
	    {"\xf5\x80\x80\x80", 4, 0},
	    {"\xff", 1, 0},
	    {"\xe2\x82", 2, 0}, /* truncated */
	    {"\xc3", 1, 0},	/* truncated */
	    {"\xc3\x28", 2, 0}, /* bad continuation */
	    {"\xe2\x28\xa1", 3, 0},
	};

	for (size_t i = 0; i < ARRAY_LEN(cases); i++)
		CHECK(utf8_valid(cases[i].s, cases[i].n) == cases[i].want, "utf8_valid case %zu",
		      i);
}

/* Whether bare is the bare JID of j. */
static bool
canonical_bare(const char *bare, const struct jid *j)
{
	char *want = jid_bare(j);
	bool same = strcmp(bare, want) == 0;

	free(want);
	return same;
}

/*
 * Parses s twice, by the ASCII fast way and the general one, and takes its bare JID both
 * ways (jid_bare_of); 1 if all agree.
 */
static int
same_both_ways(const char *s)
{
	struct jid a, b;
	int ra, rb, same;

	ascii_fast = true;
	ra = jid_parse(s, &a);
	ascii_fast = false;
	rb = jid_parse(s, &b);
	ascii_fast = true;
	same = ra == rb;
	if (same && ra == 0) {
		char *fa = jid_full(&a), *fb = jid_full(&b);
		same = strcmp(fa, fb) == 0;
		free(fa);
		free(fb);
	}
	if (same) { /* jid_bare_of: copied when canonical, else parsed */
		char *fa, *fb;

		ascii_fast = true;
		fa = jid_bare_of(s);
		ascii_fast = false;
		fb = jid_bare_of(s);
		ascii_fast = true;
		same = (!fa && !fb && ra < 0) ||
		       (fa && fb && ra == 0 && strcmp(fa, fb) == 0 && canonical_bare(fb, &b));
		free(fa);
		free(fb);
	}
	if (ra == 0)
		jid_free(&a);
	if (rb == 0)
		jid_free(&b);
	return same;
}

/* 20,000 random addresses of 1-39 characters from pool; returns how many differ. */
static unsigned
random_addresses(const char *pool, size_t npool, unsigned *seed, unsigned *n)
{
	unsigned bad = 0;
	char s[40];

	for (int k = 0; k < 20000; k++, (*n)++) {
		size_t len = 1 + (*seed = *seed * 1103515245 + 12345) % (sizeof s - 1);

		for (size_t i = 0; i < len; i++) {
			*seed = *seed * 1103515245 + 12345;
			s[i] = pool[(*seed >> 8) % npool];
		}
		s[len] = '\0';
		if (!same_both_ways(s) && bad++ < 5)
			printf("fast way differs on \"%s\"\n", s);
	}
	return bad;
}

/* Random ASCII addresses, heavy on the characters the profiles treat specially. */
static void
test_ascii_fast(void)
{
	static const char pool[] = "aZzA09-._@/@/ \t\x01\x7f\"&'<>:[]!~AbCdE.-";
	const char *fixed[] = {"User@Example.COM/Res",
			       "[::1]",
			       "1.2.3.4",
			       "a@1.2.3",
			       "-a@b",
			       "a@-b",
			       "a@b-",
			       "a@b..c",
			       "a@b.",
			       "A B@c",
			       "a@b/ x ",
			       "a@b/\x7f",
			       "\"@b",
			       "a@B/R@S/T",
			       "a@xn--abc",
			       "a@b.c-",
			       "u1@localhost/r",
			       "u1@localhost",
			       "localhost/x"};
	unsigned seed = 1, bad = 0, n = 0;

	for (size_t i = 0; i < ARRAY_LEN(fixed); i++, n++)
		bad += !same_both_ways(fixed[i]);
	bad += random_addresses(pool, sizeof pool - 1, &seed, &n);
	/* Mostly canonical-looking ones, where jid_bare_of copies instead of parsing. */
	bad += random_addresses("abz09.-_@/.-aAx", 15, &seed, &n);
	CHECK(bad == 0, "ASCII fast way agrees with the general one: %u of %u differ", bad, n);
}

int
main(void)
{
	test_parse_table();
	test_parts();
	test_lengths();
	test_norm_functions();
	test_utf8_valid();
	test_ascii_fast();
	return check_summary("test_jid");
}
