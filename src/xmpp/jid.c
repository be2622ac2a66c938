/*
 * jid: XMPP address parsing (RFC 7622) and the PRECIS profiles that normalise its
 * parts (RFC 8264, RFC 8265): each part is UTF-8-checked, mapped, checked against its
 * string class and length-limited here, so nothing unnormalised reaches a struct jid.
 *
 * Invariant: every string this file returns is valid UTF-8, at most JID_PART_MAX
 * bytes, and stable: normalising it again yields the same bytes, so
 * jid_parse(jid_full(j)) reproduces j exactly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "../core/core.h"
#include "jid.h"

/*
 * Raw input allowed per part before mapping. NFC can shrink a string (conjoining
 * Hangul jamo compose three code points into one), so the limit on the normalised
 * form cannot be applied to the input; this cap bounds the work instead.
 */
#define JID_INPUT_MAX (4 * JID_PART_MAX)
#define DNS_LABEL_MAX 63

/* A code point string; buffers may hold password material, so they are wiped on free. */
struct u32s {
	uint32_t *p;
	size_t n;
};

enum profile { PROF_LOCAL, PROF_DOMAIN, PROF_RESOURCE };

/* RFC 8264 section 8 derived property values. */
enum precis_prop { P_PVALID, P_FREE_PVAL, P_CONTEXTJ, P_CONTEXTO, P_DISALLOWED, P_UNASSIGNED };

int
utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	while (p < end) {
		unsigned int c = *p;
		uint32_t cp, min;
		size_t len;

		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
				return 0;
			p++;
			continue;
		}
		/* RFC 3629 section 4: C0, C1 and F5..FF never start a sequence. */
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if ((size_t)(end - p) < len)
			return 0;
		for (size_t i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += len;
	}
	return 1;
}

/* libunistring returns NULL with ENOMEM or for bad input (which we never pass). */
static uint32_t *
unistring_check(uint32_t *p)
{
	if (!p)
		fatal("jid: libunistring failed: %s", strerror(errno));
	return p;
}

static void
u32s_free(struct u32s *u)
{
	if (u->p) {
		explicit_bzero(u->p, u->n * sizeof *u->p);
		free(u->p);
	}
	u->p = NULL;
	u->n = 0;
}

static void
u32s_replace(struct u32s *u, uint32_t *p, size_t n)
{
	u32s_free(u);
	u->p = p;
	u->n = n;
}

/* Decodes n bytes of in; returns 0, or -1 if it is not valid UTF-8 (or has controls). */
static int
u32s_from(const char *in, size_t n, struct u32s *out)
{
	size_t len;

	if (!utf8_valid(in, n))
		return -1;
	out->p = unistring_check(u8_to_u32((const uint8_t *)in, n, NULL, &len));
	out->n = len;
	return 0;
}

/* Returns a new NUL-terminated UTF-8 copy of u. */
static char *
u32s_to_utf8(const struct u32s *u, size_t *lenp)
{
	size_t len, i;
	uint8_t *p;
	char *s;

	for (i = 0; i < u->n && u->p[i] < 0x80; i++)
		;
	if (i == u->n) { /* ASCII: one byte per code point */
		s = xmalloc(u->n + 1);
		for (i = 0; i < u->n; i++)
			s[i] = (char)u->p[i];
		s[u->n] = '\0';
		*lenp = u->n;
		return s;
	}
	p = u32_to_u8(u->p, u->n, NULL, &len);
	if (!p)
		fatal("jid: libunistring failed: %s", strerror(errno));
	s = xmalloc(len + 1);
	memcpy(s, p, len);
	s[len] = '\0';
	explicit_bzero(p, len);
	free(p);
	*lenp = len;
	return s;
}

/* ---- mappings (RFC 8265 sections 3.4 and 4.2, RFC 7622 section 3.2) ---- */

/* Fullwidth and halfwidth characters map to their decomposition (RFC 8265 3.4 step 1). */
static void
map_width(struct u32s *u)
{
	uint32_t dec[UC_DECOMPOSITION_MAX_LENGTH];
	int tag;

	for (size_t i = 0; i < u->n; i++) {
		if (u->p[i] < 0x80)
			continue;
		if (uc_decomposition(u->p[i], &tag, dec) == 1 &&
		    (tag == UC_DECOMP_WIDE || tag == UC_DECOMP_NARROW))
			u->p[i] = dec[0];
	}
}

/* Non-ASCII spaces map to U+0020 (RFC 8265 section 4.2.1 step 2, OpaqueString). */
static void
map_spaces(struct u32s *u)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->p[i] >= 0x80 && uc_is_general_category(u->p[i], UC_SPACE_SEPARATOR))
			u->p[i] = 0x20;
}

/* Unicode default lower case (toLowerCase, RFC 8265 3.4 step 3), then NFC (step 4). */
static void
map_lower_nfc(struct u32s *u)
{
	size_t len;
	uint32_t *p = unistring_check(u32_tolower(u->p, u->n, NULL, UNINORM_NFC, NULL, &len));

	u32s_replace(u, p, len);
}

static void
map_nfc(struct u32s *u)
{
	size_t len;
	uint32_t *p = unistring_check(u32_normalize(UNINORM_NFC, u->p, u->n, NULL, &len));

	u32s_replace(u, p, len);
}

/* The IDNA label separators U+3002 (and, after width mapping, U+FF0E, U+FF61) are dots. */
static void
map_dots(struct u32s *u)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->p[i] == 0x3002)
			u->p[i] = '.';
}

static void
profile_map(enum profile prof, struct u32s *u)
{
	switch (prof) {
	case PROF_LOCAL:
		map_width(u);
		map_lower_nfc(u);
		break;
	case PROF_DOMAIN:
		map_width(u);
		map_lower_nfc(u);
		map_dots(u);
		break;
	case PROF_RESOURCE:
		map_spaces(u);
		map_nfc(u);
		break;
	}
}

/*
 * Applies the profile's mappings, then re-applies them until the result is stable:
 * RFC 8264 section 7 requires rejecting a string that does not stabilise after three
 * more applications. Returns 0 or -1; u is replaced either way.
 */
static int
map_stable(enum profile prof, struct u32s *u)
{
	profile_map(prof, u);
	for (int round = 0; round < 3; round++) {
		struct u32s again = {xmalloc(u->n * sizeof *u->p + 1), u->n};

		memcpy(again.p, u->p, u->n * sizeof *u->p);
		profile_map(prof, &again);
		if (again.n == u->n && memcmp(again.p, u->p, u->n * sizeof *u->p) == 0) {
			u32s_free(&again);
			return 0;
		}
		u32s_free(u);
		*u = again;
	}
	return -1;
}

/* ---- string classes (RFC 8264 sections 8 and 9) ---- */

/* toNFKC(cp) != cp (RFC 8264 section 9.17). */
static bool
has_compat(uint32_t cp)
{
	uint32_t buf[UC_DECOMPOSITION_MAX_LENGTH * 4];
	size_t len = ARRAY_LEN(buf);
	uint32_t *p = unistring_check(u32_normalize(UNINORM_NFKC, &cp, 1, buf, &len));
	bool same = len == 1 && p[0] == cp;

	if (p != buf)
		free(p);
	return !same;
}

static bool
is_old_hangul_jamo(uint32_t cp)
{
	/* Hangul_Syllable_Type L, V or T (RFC 5892 section 2.9). */
	return (cp >= 0x1100 && cp <= 0x11ff) || (cp >= 0xa960 && cp <= 0xa97f) ||
	       (cp >= 0xd7b0 && cp <= 0xd7ff);
}

static bool
in_category(uint32_t cp, uint32_t mask)
{
	return (uc_general_category(cp).bitmask & mask) != 0;
}

static enum precis_prop
precis_property(uint32_t cp)
{
	/* Exceptions (RFC 5892 section 2.6, used by RFC 8264 section 9.6). */
	switch (cp) {
	case 0x00df:
	case 0x03c2:
	case 0x06fd:
	case 0x06fe:
	case 0x0f0b:
	case 0x3007:
		return P_PVALID;
	case 0x00b7:
	case 0x0375:
	case 0x05f3:
	case 0x05f4:
	case 0x30fb:
		return P_CONTEXTO;
	case 0x0640:
	case 0x07fa:
	case 0x302e:
	case 0x302f:
	case 0x303b:
		return P_DISALLOWED;
	}
	if ((cp >= 0x0660 && cp <= 0x0669) || (cp >= 0x06f0 && cp <= 0x06f9))
		return P_CONTEXTO;
	if (cp >= 0x3031 && cp <= 0x3035)
		return P_DISALLOWED;
	if (cp >= 0x21 && cp <= 0x7e) /* ASCII7 */
		return P_PVALID;
	if (in_category(cp, UC_CATEGORY_MASK_Cn) && !uc_is_property_not_a_character(cp))
		return P_UNASSIGNED;
	if (cp == 0x200c || cp == 0x200d) /* JoinControl */
		return P_CONTEXTJ;
	if (is_old_hangul_jamo(cp))
		return P_DISALLOWED;
	if (uc_is_property_default_ignorable_code_point(cp) || uc_is_property_not_a_character(cp))
		return P_DISALLOWED;
	if (in_category(cp, UC_CATEGORY_MASK_Cc))
		return P_DISALLOWED;
	if (has_compat(cp))
		return P_FREE_PVAL;
	if (in_category(cp, UC_CATEGORY_MASK_Ll | UC_CATEGORY_MASK_Lu | UC_CATEGORY_MASK_Lo |
				UC_CATEGORY_MASK_Nd | UC_CATEGORY_MASK_Lm | UC_CATEGORY_MASK_Mn |
				UC_CATEGORY_MASK_Mc))
		return P_PVALID; /* LetterDigits */
	if (in_category(cp, UC_CATEGORY_MASK_Lt | UC_CATEGORY_MASK_Nl | UC_CATEGORY_MASK_No |
				UC_CATEGORY_MASK_Me | UC_CATEGORY_MASK_Zs | UC_CATEGORY_MASK_S |
				UC_CATEGORY_MASK_P))
		return P_FREE_PVAL; /* OtherLetterDigits, Spaces, Symbols, Punctuation */
	return P_DISALLOWED;
}

static bool
script_is(uint32_t cp, const char *name)
{
	const uc_script_t *s = uc_script(cp);

	return s && s == uc_script_byname(name);
}

/* RFC 5892 appendix A.1 and A.2. */
static bool
contextj_ok(const uint32_t *s, size_t n, size_t i)
{
	size_t j;
	int t;

	if (i > 0 && uc_combining_class(s[i - 1]) == UC_CCC_VR)
		return true;
	if (s[i] != 0x200c)
		return false;
	/* (Joining_Type:{L,D})(Joining_Type:T)* ZWNJ (Joining_Type:T)*(Joining_Type:{R,D}) */
	for (j = i; j > 0 && uc_joining_type(s[j - 1]) == UC_JOINING_TYPE_T; j--)
		;
	if (j == 0)
		return false;
	t = uc_joining_type(s[j - 1]);
	if (t != UC_JOINING_TYPE_L && t != UC_JOINING_TYPE_D)
		return false;
	for (j = i + 1; j < n && uc_joining_type(s[j]) == UC_JOINING_TYPE_T; j++)
		;
	if (j == n)
		return false;
	t = uc_joining_type(s[j]);
	return t == UC_JOINING_TYPE_R || t == UC_JOINING_TYPE_D;
}

/* RFC 5892 appendix A.3 to A.9. */
static bool
contexto_ok(const uint32_t *s, size_t n, size_t i)
{
	uint32_t cp = s[i];

	switch (cp) {
	case 0x00b7: /* MIDDLE DOT: only between two 'l' (Catalan) */
		return i > 0 && i + 1 < n && s[i - 1] == 0x6c && s[i + 1] == 0x6c;
	case 0x0375: /* GREEK LOWER NUMERAL SIGN: followed by Greek */
		return i + 1 < n && script_is(s[i + 1], "Greek");
	case 0x05f3:
	case 0x05f4: /* HEBREW PUNCTUATION GERESH/GERSHAYIM: preceded by Hebrew */
		return i > 0 && script_is(s[i - 1], "Hebrew");
	case 0x30fb: /* KATAKANA MIDDLE DOT: with Hiragana, Katakana or Han */
		for (size_t j = 0; j < n; j++)
			if (script_is(s[j], "Hiragana") || script_is(s[j], "Katakana") ||
			    script_is(s[j], "Han"))
				return true;
		return false;
	}
	/* ARABIC-INDIC and EXTENDED ARABIC-INDIC digits must not be mixed. */
	for (size_t j = 0; j < n; j++) {
		if (cp <= 0x0669 && s[j] >= 0x06f0 && s[j] <= 0x06f9)
			return false;
		if (cp >= 0x06f0 && s[j] >= 0x0660 && s[j] <= 0x0669)
			return false;
	}
	return true;
}

/*
 * Checks s against IdentifierClass, or FreeformClass when freeform is set; in
 * ldh_ascii mode ASCII is further limited to letters, digits and '-' (domain labels).
 */
static bool
class_ok(const uint32_t *s, size_t n, bool freeform, bool ldh_ascii)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t cp = s[i];

		if (ldh_ascii && cp < 0x80) {
			if (!((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9') || cp == '-'))
				return false;
			continue;
		}
		switch (precis_property(cp)) {
		case P_PVALID:
			break;
		case P_FREE_PVAL:
			if (!freeform)
				return false;
			break;
		case P_CONTEXTJ:
			if (!contextj_ok(s, n, i))
				return false;
			break;
		case P_CONTEXTO:
			if (!contexto_ok(s, n, i))
				return false;
			break;
		default:
			return false;
		}
	}
	return true;
}

static bool
has_rtl(const uint32_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x80) /* no ASCII character is right-to-left */
			continue;
		int b = uc_bidi_class(s[i]);
		if (b == UC_BIDI_R || b == UC_BIDI_AL || b == UC_BIDI_AN)
			return true;
	}
	return false;
}

/* The six conditions of the Bidi Rule (RFC 5893 section 2). */
static bool
bidi_ok(const uint32_t *s, size_t n)
{
	bool rtl, en = false, an = false;
	int first, last = -1;

	if (n == 0)
		return false;
	first = uc_bidi_class(s[0]);
	if (first == UC_BIDI_R || first == UC_BIDI_AL)
		rtl = true;
	else if (first == UC_BIDI_L)
		rtl = false;
	else
		return false;
	for (size_t i = 0; i < n; i++) {
		int b = uc_bidi_class(s[i]);

		switch (b) {
		case UC_BIDI_EN:
			en = true;
			break;
		case UC_BIDI_AN:
		case UC_BIDI_R:
		case UC_BIDI_AL:
			if (!rtl)
				return false;
			an |= b == UC_BIDI_AN;
			break;
		case UC_BIDI_L:
			if (rtl)
				return false;
			break;
		case UC_BIDI_ES:
		case UC_BIDI_CS:
		case UC_BIDI_ET:
		case UC_BIDI_ON:
		case UC_BIDI_BN:
		case UC_BIDI_NSM:
			break;
		default:
			return false;
		}
		if (b != UC_BIDI_NSM)
			last = b;
	}
	if (rtl)
		return !(en && an) && (last == UC_BIDI_R || last == UC_BIDI_AL ||
				       last == UC_BIDI_EN || last == UC_BIDI_AN);
	return last == UC_BIDI_L || last == UC_BIDI_EN;
}

/* ---- the three parts ---- */

/*
 * The fast way for ASCII input, the common case on every stanza: widening the bytes
 * is the UTF-8 decoding, width and space mapping and NFC leave ASCII as it is, and
 * Unicode's default lower case of ASCII is A-Z to a-z, which is stable after one
 * round. So the result is the one map_stable() computes, without libunistring.
 * Returns 1 when in is not all ASCII (the caller takes the general way).
 */
static bool ascii_fast = true; /* off only in test_jid, to compare both ways */

static int
ascii_map(enum profile prof, const char *in, size_t n, struct u32s *u)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)in[i] >= 0x80)
			return 1;
	if (!ascii_fast)
		return 1;
	if (!utf8_valid(in, n)) /* the same controls are refused either way */
		return -1;
	u->p = xmalloc(n * sizeof *u->p);
	u->n = n;
	for (size_t i = 0; i < n; i++) {
		uint32_t c = (unsigned char)in[i];

		if (prof != PROF_RESOURCE && c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		u->p[i] = c;
	}
	return 0;
}

/* Maps in[0..n) with prof into u; returns 0 or -1 (u empty). */
static int
prepare(enum profile prof, const char *in, size_t n, struct u32s *u)
{
	int r;

	if (n == 0 || n > JID_INPUT_MAX)
		return -1;
	if ((r = ascii_map(prof, in, n, u)) <= 0)
		return r;
	if (u32s_from(in, n, u) < 0)
		return -1;
	if (map_stable(prof, u) < 0 || u->n == 0) {
		u32s_free(u);
		return -1;
	}
	return 0;
}

/* Finishes a part: encodes u, checks 1..JID_PART_MAX bytes, frees u. */
static int
finish(struct u32s *u, char **out)
{
	size_t len;
	char *s = u32s_to_utf8(u, &len);

	u32s_free(u);
	if (len == 0 || len > JID_PART_MAX) {
		explicit_bzero(s, len);
		free(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* UsernameCaseMapped (RFC 8265 section 3.3), then RFC 7622 section 3.3.1. */
static int
norm_local(const char *in, size_t n, char **out)
{
	struct u32s u = {0};

	if (prepare(PROF_LOCAL, in, n, &u) < 0)
		return -1;
	if (!class_ok(u.p, u.n, false, false))
		goto fail;
	for (size_t i = 0; i < u.n; i++)
		if (u.p[i] < 0x80 && strchr("\"&'/:<>@", (int)u.p[i]))
			goto fail;
	/* RFC 8265 3.4 step 5: the Bidi Rule, for strings with right-to-left characters. */
	if (has_rtl(u.p, u.n) && !bidi_ok(u.p, u.n))
		goto fail;
	return finish(&u, out);
fail:
	u32s_free(&u);
	return -1;
}

/* "[IPv6]": validated and rewritten in the canonical text form of RFC 5952. */
static int
norm_ipv6(const struct u32s *u, char **out)
{
	char in[64], buf[INET6_ADDRSTRLEN];
	unsigned char addr[16];
	size_t n = u->n - 2;

	if (n >= sizeof in || u->p[u->n - 1] != ']')
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (u->p[i + 1] >= 0x80)
			return -1;
		in[i] = (char)u->p[i + 1];
	}
	in[n] = '\0';
	if (inet_pton(AF_INET6, in, addr) != 1 || !inet_ntop(AF_INET6, addr, buf, sizeof buf))
		return -1;
	*out = xmalloc(strlen(buf) + 3);
	strcpy(*out, "[");
	strcat(*out, buf);
	strcat(*out, "]");
	return 0;
}

/*
 * RFC 7622 section 3.2, simplified: no IDNA2008 A-label conversion (an "xn--" label
 * is an ordinary ASCII label and is not equal to its U-label). ASCII must be
 * letter-digit-hyphen, other characters must be IdentifierClass-valid, labels are
 * 1..63 code points without a leading or trailing '-', and labels of a domain with
 * right-to-left characters follow the Bidi Rule (RFC 5893).
 */
static int
norm_domain(const char *in, size_t n, char **out)
{
	struct u32s u = {0};
	bool rtl, numeric = true;
	char *s;

	if (prepare(PROF_DOMAIN, in, n, &u) < 0)
		return -1;
	/* One trailing dot names the same domain (RFC 7622 section 3.2). */
	if (u.p[u.n - 1] == '.')
		u.n--;
	if (u.n == 0)
		goto fail;
	if (u.p[0] == '[') {
		int rc = u.n >= 2 ? norm_ipv6(&u, out) : -1;
		u32s_free(&u);
		return rc;
	}
	rtl = has_rtl(u.p, u.n);
	for (size_t start = 0; start <= u.n;) {
		size_t end = start;

		while (end < u.n && u.p[end] != '.')
			end++;
		if (end == start || end - start > DNS_LABEL_MAX)
			goto fail;
		if (u.p[start] == '-' || u.p[end - 1] == '-')
			goto fail;
		if (!class_ok(u.p + start, end - start, false, true))
			goto fail;
		if (rtl && !bidi_ok(u.p + start, end - start))
			goto fail;
		start = end + 1;
	}
	for (size_t i = 0; i < u.n; i++)
		if (u.p[i] != '.' && (u.p[i] < '0' || u.p[i] > '9'))
			numeric = false;
	if (finish(&u, &s) < 0)
		return -1;
	/* All digits and dots: must be an IPv4 address in dotted-decimal form. */
	if (numeric) {
		unsigned char addr[4];
		if (inet_pton(AF_INET, s, addr) != 1) {
			free(s);
			return -1;
		}
	}
	*out = s;
	return 0;
fail:
	u32s_free(&u);
	return -1;
}

/* OpaqueString (RFC 8265 section 4.2): case and width preserved, FreeformClass. */
static int
norm_resource(const char *in, size_t n, char **out)
{
	struct u32s u = {0};

	if (prepare(PROF_RESOURCE, in, n, &u) < 0)
		return -1;
	if (!class_ok(u.p, u.n, true, false)) {
		u32s_free(&u);
		return -1;
	}
	return finish(&u, out);
}

int
jid_norm_local(const char *in, char **out)
{
	return norm_local(in, strlen(in), out);
}

int
jid_norm_domain(const char *in, char **out)
{
	return norm_domain(in, strlen(in), out);
}

int
jid_norm_resource(const char *in, char **out)
{
	return norm_resource(in, strlen(in), out);
}

static size_t canonical_bare_len(const char *s);

/*
 * RFC 7622 section 3.1: the resource is everything after the first '/', the localpart
 * everything before the first '@' that precedes it. A separator with nothing on one
 * side ("@d", "u@", "d/") makes the address invalid.
 */

int
jid_parse(const char *s, struct jid *out)
{
	size_t n, pre = canonical_bare_len(s);
	const char *slash, *at, *dom;
	struct jid j = {0};

	if (pre) { /* already canonical, as servers stamp addresses: the parts are copies */
		at = memchr(s, '@', pre);
		dom = at ? at + 1 : s;
		j.local = at ? xstrndup(s, (size_t)(at - s)) : NULL;
		j.domain = xstrndup(dom, (size_t)(s + pre - dom));
		j.resource = s[pre] == '/' ? xstrdup(s + pre + 1) : NULL;
		*out = j;
		return 0;
	}
	n = strlen(s);
	if (n == 0 || n > 3 * JID_INPUT_MAX + 2)
		return -1;
	slash = memchr(s, '/', n);
	pre = slash ? (size_t)(slash - s) : n;
	at = memchr(s, '@', pre);
	dom = at ? at + 1 : s;
	if (at && norm_local(s, (size_t)(at - s), &j.local) < 0)
		goto fail;
	if (norm_domain(dom, (size_t)(s + pre - dom), &j.domain) < 0)
		goto fail;
	if (slash && norm_resource(slash + 1, n - pre - 1, &j.resource) < 0)
		goto fail;
	*out = j;
	return 0;
fail:
	jid_free(&j);
	return -1;
}

/* Whether s[0..n) is one of the plain domain names the general way leaves as they are. */
static bool
plain_domain(const char *s, size_t n)
{
	size_t label = 0;
	bool digits_only = true; /* such a domain must be an IPv4 address: the general way */

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char c = i < n ? s[i] : '.';

		if (c == '.') {
			/* 1-63 characters, no hyphen at either end, no A-label (IDNA: general way)
			 */
			if (label == 0 || label > 63 || s[i - 1] == '-' || s[i - label] == '-' ||
			    (label >= 4 && strncmp(s + i - label, "xn--", 4) == 0))
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
			label++;
			digits_only &= c >= '0' && c <= '9';
		} else {
			return false;
		}
	}
	return !digits_only;
}

/*
 * The length of s's bare part if s is already in canonical form, in a shape simple enough
 * to know without mapping: lower-case ASCII letters, digits and ". _ -" before the '@',
 * plain domain labels, and visible ASCII in the resource. 0: take the general way.
 */
static size_t
canonical_bare_len(const char *s)
{
	const char *slash = strchr(s, '/'), *at;
	size_t pre = slash ? (size_t)(slash - s) : strlen(s);

	if (!ascii_fast)
		return 0;
	if (slash) {
		size_t r = strlen(slash + 1);
		if (r == 0 || r > 1023)
			return 0;
		for (size_t i = 1; i <= r; i++)
			if (slash[i] < 0x21 || slash[i] > 0x7e)
				return 0;
	}
	at = memchr(s, '@', pre);
	if (at) {
		size_t l = (size_t)(at - s);
		if (l == 0 || l > 64)
			return 0;
		for (size_t i = 0; i < l; i++) {
			char c = s[i];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
			      c == '_' || c == '-'))
				return 0;
		}
	}
	if (!plain_domain(at ? at + 1 : s, at ? (size_t)(s + pre - at - 1) : pre))
		return 0;
	return pre;
}

char *
jid_bare_of(const char *s)
{
	size_t n = canonical_bare_len(s);
	struct jid j;
	char *b;

	if (n)
		return xstrndup(s, n);
	if (jid_parse(s, &j) < 0)
		return NULL;
	b = jid_bare(&j);
	jid_free(&j);
	return b;
}

char *
jid_bare(const struct jid *j)
{
	struct buf b = {0};

	if (j->local) {
		buf_puts(&b, j->local);
		buf_puts(&b, "@");
	}
	buf_puts(&b, j->domain);
	return buf_steal(&b);
}

char *
jid_full(const struct jid *j)
{
	struct buf b = {0};

	if (j->local) {
		buf_puts(&b, j->local);
		buf_puts(&b, "@");
	}
	buf_puts(&b, j->domain);
	if (j->resource) {
		buf_puts(&b, "/");
		buf_puts(&b, j->resource);
	}
	return buf_steal(&b);
}

void
jid_copy(struct jid *dst, const struct jid *src)
{
	dst->local = src->local ? xstrdup(src->local) : NULL;
	dst->domain = src->domain ? xstrdup(src->domain) : NULL;
	dst->resource = src->resource ? xstrdup(src->resource) : NULL;
}

void
jid_free(struct jid *j)
{
	free(j->local);
	free(j->domain);
	free(j->resource);
	j->local = j->domain = j->resource = NULL;
}
