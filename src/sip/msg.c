/*
 * sip/msg: the SIP message codec. sip_parse() finds the header section, checks the start line
 * and every header line, copies the unfolded values into one block and frames the body by
 * Content-Length (18.3); the accessors parse single header values on demand.
 *
 * Invariant: every scan is bounded by the length it was given (never by a NUL it hopes to
 * find) and visits each byte a bounded number of times, so hostile input costs O(n); nothing
 * is allocated before the sizes that decide it are capped by SIP_MAX_MSG.
 */
#include "msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- character classes (RFC 3261 25.1) ---- */

static bool
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static bool
in_set(unsigned char c, const char *set)
{
	return c != 0 && strchr(set, c) != NULL;
}

/* token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
static bool
is_token(unsigned char c)
{
	return is_alnum(c) || in_set(c, "-.!%*_+`'~");
}

/* unreserved = alphanum / mark */
static bool
is_unreserved(unsigned char c)
{
	return is_alnum(c) || in_set(c, "-_.!~*'()");
}

/* word (Call-ID, 25.1) */
static bool
is_word(unsigned char c)
{
	return is_token(c) || in_set(c, "()<>:\\\"/[]?{}");
}

/* Characters of a generic-param value that is not quoted: token / host (IPv6 brackets). */
static bool
is_gen_value(unsigned char c)
{
	return is_token(c) || c == ':' || c == '[' || c == ']';
}

static bool
all_token(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_token((unsigned char)s[i]))
			return false;
	return true;
}

static void
set_err(char *err, size_t errlen, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", why);
}

/* ---- header names ---- */

/* Canonical spellings; a compact form (7.3.3) follows its long name. */
static const struct {
	const char *name, *compact;
} sip_names[] = {
    {"Accept", NULL},
    {"Accept-Contact", "a"},
    {"Accept-Encoding", NULL},
    {"Accept-Language", NULL},
    {"Alert-Info", NULL},
    {"Allow", NULL},
    {"Allow-Events", "u"},
    {"Authentication-Info", NULL},
    {"Authorization", NULL},
    {"Call-ID", "i"},
    {"Call-Info", NULL},
    {"Contact", "m"},
    {"Content-Disposition", NULL},
    {"Content-Encoding", "e"},
    {"Content-Language", NULL},
    {"Content-Length", "l"},
    {"Content-Type", "c"},
    {"CSeq", NULL},
    {"Date", NULL},
    {"Error-Info", NULL},
    {"Event", "o"},
    {"Expires", NULL},
    {"From", "f"},
    {"Identity", "y"},
    {"In-Reply-To", NULL},
    {"Max-Forwards", NULL},
    {"MIME-Version", NULL},
    {"Min-Expires", NULL},
    {"Organization", NULL},
    {"Path", NULL},
    {"Priority", NULL},
    {"Proxy-Authenticate", NULL},
    {"Proxy-Authorization", NULL},
    {"Proxy-Require", NULL},
    {"Record-Route", NULL},
    {"Refer-To", "r"},
    {"Referred-By", "b"},
    {"Reject-Contact", "j"},
    {"Reply-To", NULL},
    {"Request-Disposition", "d"},
    {"Require", NULL},
    {"Retry-After", NULL},
    {"Route", NULL},
    {"Server", NULL},
    {"Service-Route", NULL},
    {"Session-Expires", "x"},
    {"Subject", "s"},
    {"Subscription-State", NULL},
    {"Supported", "k"},
    {"Timestamp", NULL},
    {"To", "t"},
    {"Unsupported", NULL},
    {"User-Agent", NULL},
    {"Via", "v"},
    {"Warning", NULL},
    {"WWW-Authenticate", NULL},
};
#define CANON_MAX 20 /* longest canonical name plus NUL */

static const char *
canon_n(const char *name, size_t n)
{
	for (size_t i = 0; i < ARRAY_LEN(sip_names); i++) {
		const char *c = sip_names[i].compact;
		if (strlen(sip_names[i].name) == n && strncasecmp(sip_names[i].name, name, n) == 0)
			return sip_names[i].name;
		if (c && n == 1 && (name[0] | 0x20) == c[0])
			return sip_names[i].name;
	}
	return NULL;
}

const char *
sip_hdr_canon(const char *name)
{
	const char *c = canon_n(name, strlen(name));
	return c ? c : name;
}

const char *
sip_hdr(const struct sip_msg *m, const char *name)
{
	return sip_hdr_next(m, name, NULL);
}

const char *
sip_hdr_next(const struct sip_msg *m, const char *name, const char *prev)
{
	const char *want = sip_hdr_canon(name);
	size_t i = 0;

	if (prev) {
		while (i < m->nhdr && m->hdr[i].value != prev)
			i++;
		if (i == m->nhdr)
			return NULL;
		i++;
	}
	for (; i < m->nhdr; i++)
		if (strcasecmp(m->hdr[i].name, want) == 0)
			return m->hdr[i].value;
	return NULL;
}

/* ---- URIs (19.1.1) ---- */

struct uri_parts {
	bool sips;
	size_t user, user_len; /* user_len 0: no user */
	size_t host, host_len;
	unsigned port;
	size_t params, params_len; /* after ';' */
	bool has_params;
	size_t headers, headers_len; /* after '?' */
	bool has_headers;
};

/* Checks s[i..end) as a run of allowed characters and %HH escapes; false if any other. */
static bool
escaped_run(const char *s, size_t i, size_t end, bool (*ok)(unsigned char), const char *extra)
{
	while (i < end) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= end || !is_hex((unsigned char)s[i + 1]) ||
			    !is_hex((unsigned char)s[i + 2]))
				return false;
			i += 3;
			continue;
		}
		if (!ok(c) && !in_set(c, extra))
			return false;
		i++;
	}
	return true;
}

static bool
valid_host(const char *s, size_t n)
{
	if (n == 0)
		return false;
	if (s[0] == '[') {
		if (n < 3 || s[n - 1] != ']')
			return false;
		for (size_t i = 1; i + 1 < n; i++)
			if (!is_hex((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
				return false;
		return true;
	}
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return false;
	return true;
}

/* A port: 1..5 digits, 1..65535. */
static bool
parse_port(const char *s, size_t n, unsigned *port)
{
	unsigned v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return false;
	*port = v;
	return true;
}

/* Scans host [":" port] at s[i..end); returns the index after it or (size_t)-1. */
static size_t
scan_hostport(const char *s, size_t i, size_t end, size_t *host, size_t *host_len, unsigned *port)
{
	size_t h = i;

	if (i < end && s[i] == '[') {
		while (i < end && s[i] != ']')
			i++;
		if (i == end)
			return (size_t)-1;
		i++;
	} else {
		while (i < end && s[i] != ':' && s[i] != ';' && s[i] != '?')
			i++;
	}
	if (!valid_host(s + h, i - h))
		return (size_t)-1;
	*host = h;
	*host_len = i - h;
	*port = 0;
	if (i < end && s[i] == ':') {
		size_t p = ++i;
		while (i < end && is_digit((unsigned char)s[i]))
			i++;
		if (!parse_port(s + p, i - p, port))
			return (size_t)-1;
	}
	return i;
}

static bool
is_paramchar(unsigned char c)
{
	return is_unreserved(c) || in_set(c, "[]/:&+$");
}

static bool
is_hnvchar(unsigned char c)
{
	return is_unreserved(c) || in_set(c, "[]/?:+$");
}

static bool
is_userchar(unsigned char c)
{
	return is_unreserved(c) || in_set(c, "&=+$,;?/");
}

static bool
is_passchar(unsigned char c)
{
	return is_unreserved(c) || in_set(c, "&=+$,");
}

/* uri-parameters: each non-empty, pname ["=" pvalue] (both 1*paramchar). */
static bool
valid_uri_params(const char *s, size_t n)
{
	size_t i = 0;

	while (i <= n) {
		size_t b = i, eq = (size_t)-1;
		while (i < n && s[i] != ';') {
			if (s[i] == '=' && eq == (size_t)-1)
				eq = i;
			i++;
		}
		if (i == b)
			return false;
		if (eq == (size_t)-1) {
			if (!escaped_run(s, b, i, is_paramchar, ""))
				return false;
		} else if (eq == b || eq + 1 == i || !escaped_run(s, b, eq, is_paramchar, "") ||
			   !escaped_run(s, eq + 1, i, is_paramchar, "")) {
			return false;
		}
		i++;
	}
	return true;
}

static int
uri_scan(const char *s, size_t n, struct uri_parts *o)
{
	size_t i, at = (size_t)-1, end;

	memset(o, 0, sizeof *o);
	if (n >= 4 && strncasecmp(s, "sip:", 4) == 0) {
		i = 4;
	} else if (n >= 5 && strncasecmp(s, "sips:", 5) == 0) {
		o->sips = true;
		i = 5;
	} else {
		return -1;
	}
	/* '@' occurs in no other part of a SIP URI (25.1), so the first one ends the userinfo. */
	for (size_t j = i; j < n; j++) {
		if (s[j] == '@') {
			if (at != (size_t)-1)
				return -1;
			at = j;
		}
	}
	if (at != (size_t)-1) {
		size_t colon = i;
		while (colon < at && s[colon] != ':')
			colon++;
		if (colon == i || !escaped_run(s, i, colon, is_userchar, ""))
			return -1;
		if (colon < at && !escaped_run(s, colon + 1, at, is_passchar, ""))
			return -1;
		o->user = i;
		o->user_len = colon - i;
		i = at + 1;
	}
	i = scan_hostport(s, i, n, &o->host, &o->host_len, &o->port);
	if (i == (size_t)-1)
		return -1;
	if (i < n && s[i] == ';') {
		end = ++i;
		while (end < n && s[end] != '?')
			end++;
		if (!valid_uri_params(s + i, end - i))
			return -1;
		o->has_params = true;
		o->params = i;
		o->params_len = end - i;
		i = end;
	}
	if (i < n && s[i] == '?') {
		i++;
		if (i == n || !escaped_run(s, i, n, is_hnvchar, "=&"))
			return -1;
		o->has_headers = true;
		o->headers = i;
		o->headers_len = n - i;
		i = n;
	}
	return i == n ? 0 : -1;
}

/* A URI of any scheme: scheme ":" then visible characters other than <>" and SP. */
static bool
valid_any_uri(const char *s, size_t n)
{
	size_t i = 0;
	struct uri_parts p;

	if (n == 0 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z'))
		return false;
	while (i < n && (is_alnum((unsigned char)s[i]) || in_set((unsigned char)s[i], "+-.")))
		i++;
	if (i == n || s[i] != ':' || i + 1 == n)
		return false;
	if ((i == 3 && strncasecmp(s, "sip", 3) == 0) || (i == 4 && strncasecmp(s, "sips", 4) == 0))
		return uri_scan(s, n, &p) == 0;
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == '"')
			return false;
	}
	return true;
}

static char *
dup_part(char **w, const char *s, size_t n)
{
	char *r = *w;
	memcpy(r, s, n);
	r[n] = '\0';
	*w += n + 1;
	return r;
}

int
sip_parse_uri(const char *s, struct sip_uri *u)
{
	size_t n = strlen(s);
	struct uri_parts p;
	char *w;

	if (uri_scan(s, n, &p) < 0)
		return -1;
	memset(u, 0, sizeof *u);
	u->mem = w = xmalloc(n + 4);
	u->sips = p.sips;
	if (p.user_len)
		u->user = dup_part(&w, s + p.user, p.user_len);
	u->host = dup_part(&w, s + p.host, p.host_len);
	u->port = p.port;
	if (p.has_params)
		u->params = dup_part(&w, s + p.params, p.params_len);
	if (p.has_headers)
		u->headers = dup_part(&w, s + p.headers, p.headers_len);
	return 0;
}

/* Finds name in "a=b;c;d=e" (no whitespace); copies the value (unquoted) into buf. */
static const char *
param_lookup(const char *params, const char *name, char *buf, size_t n)
{
	size_t nl = strlen(name);
	const char *p = params;

	while (p && *p) {
		const char *e = strchr(p, ';');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		if (klen == nl && strncasecmp(p, name, nl) == 0) {
			const char *v = eq ? eq + 1 : p + len;
			size_t vl = (size_t)(p + len - v);
			if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
				v++;
				vl -= 2;
			}
			if (vl >= n)
				return NULL;
			memcpy(buf, v, vl);
			buf[vl] = '\0';
			return buf;
		}
		p = e ? e + 1 : NULL;
	}
	return NULL;
}

const char *
sip_uri_param(const struct sip_uri *u, const char *name, char *buf, size_t n)
{
	return param_lookup(u->params, name, buf, n);
}

void
sip_uri_free(struct sip_uri *u)
{
	free(u->mem);
	memset(u, 0, sizeof *u);
}

/* ---- generic parameters: *( SEMI generic-param ), SEMI = SWS ";" SWS (25.1) ---- */

/* Skips SWS (whitespace; the value is unfolded already). */
static size_t
sws(const char *s, size_t i, size_t n)
{
	while (i < n && is_wsp((unsigned char)s[i]))
		i++;
	return i;
}

/* A quoted-string at s[i] (which is '"'); returns the index after the closing quote, or -1. */
static size_t
scan_quoted(const char *s, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"')
			return i + 1;
		if (c == '\\') {
			/* quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F) */
			if (i + 1 >= n || (unsigned char)s[i + 1] > 0x7f)
				return (size_t)-1;
			i++;
		} else if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return (size_t)-1;
		}
	}
	return (size_t)-1;
}

/*
 * Parses params from s[i..n) until the end or a top-level ',' (if stop_comma; *i is left on
 * it). Appends "name=value;..." to *w (NUL-terminated) and returns 0, or -1 if malformed.
 */
static int
scan_params(const char *s, size_t *ip, size_t n, char **w, bool stop_comma)
{
	size_t i = sws(s, *ip, n);
	char *out = *w;
	bool first = true;

	while (i < n) {
		size_t k, kl, v = 0, vl = 0;
		if (s[i] == ',' && stop_comma)
			break;
		if (s[i] != ';')
			return -1;
		i = sws(s, i + 1, n);
		k = i;
		while (i < n && is_token((unsigned char)s[i]))
			i++;
		kl = i - k;
		if (kl == 0)
			return -1;
		i = sws(s, i, n);
		if (i < n && s[i] == '=') {
			i = sws(s, i + 1, n);
			v = i;
			if (i < n && s[i] == '"') {
				i = scan_quoted(s, i, n);
				if (i == (size_t)-1)
					return -1;
			} else {
				while (i < n && is_gen_value((unsigned char)s[i]))
					i++;
			}
			vl = i - v;
			if (vl == 0)
				return -1;
			i = sws(s, i, n);
		}
		if (!first)
			*out++ = ';';
		first = false;
		memcpy(out, s + k, kl);
		out += kl;
		if (vl) {
			*out++ = '=';
			memcpy(out, s + v, vl);
			out += vl;
		}
	}
	*out++ = '\0';
	*w = out;
	*ip = i;
	return 0;
}

/* ---- name-addr / addr-spec (20.10, 20.20, 20.39; 25.1) ---- */

static size_t
trim_len(const char *s, size_t *start)
{
	size_t n = strlen(s), b = 0;
	while (b < n && is_wsp((unsigned char)s[b]))
		b++;
	while (n > b && is_wsp((unsigned char)s[n - 1]))
		n--;
	*start = b;
	return n - b;
}

/* Parses delta-seconds, capping at 2^32-1 (20.19); -1 if not 1*DIGIT. */
static long
parse_delta(const char *s)
{
	unsigned long long v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (!is_digit((unsigned char)*s))
			return -1;
		if (v < 4294967295ULL)
			v = v * 10 + (unsigned)(*s - '0');
	}
	return v > 4294967295ULL ? 4294967295L : (long)v;
}

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ); thousandths or -1. */
static int
parse_qvalue(const char *s)
{
	int v, scale = 100;

	if (s[0] != '0' && s[0] != '1')
		return -1;
	v = (s[0] - '0') * 1000;
	if (s[1] == '\0')
		return v;
	if (s[1] != '.')
		return -1;
	for (s += 2; *s; s++, scale /= 10) {
		if (!is_digit((unsigned char)*s) || scale == 0)
			return -1;
		v += (*s - '0') * scale;
	}
	return v > 1000 ? -1 : v;
}

int
sip_parse_addr(const char *value, struct sip_addr *a)
{
	size_t b, n = trim_len(value, &b), i = 0, j, u, ul;
	const char *s = value + b;
	struct sip_addr r = {.expires = -1, .q = -1};
	char *w;

	if (n == 1 && s[0] == '*') {
		r.star = true;
		r.mem = w = xmalloc(1);
		r.params = w;
		*w = '\0';
		*a = r;
		return 0;
	}
	if (n == 0)
		return -1;
	r.mem = w = xmalloc(3 * n + 8);
	/* addr-spec if it starts with a scheme ':'; display-name tokens cannot hold ':'. */
	j = 0;
	while (j < n && (is_alnum((unsigned char)s[j]) || in_set((unsigned char)s[j], "+-.")))
		j++;
	if (j > 0 && j < n && s[j] == ':' && s[0] != '"') {
		u = 0;
		while (i < n && s[i] != ';' && !is_wsp((unsigned char)s[i])) {
			if (s[i] == '?' || s[i] == ',') /* 20.10: must be in <> */
				goto fail;
			i++;
		}
		ul = i;
	} else {
		if (s[0] == '"') {
			char *d = r.display = w;
			i = scan_quoted(s, 0, n);
			if (i == (size_t)-1)
				goto fail;
			for (j = 1; j + 1 < i; j++) {
				if (s[j] == '\\')
					j++;
				*d++ = s[j];
			}
			*d++ = '\0';
			w = d;
			i = sws(s, i, n);
		} else {
			/* display-name = *(token LWS): tokens joined by one SP */
			char *d = w;
			while (i < n && s[i] != '<') {
				if (is_wsp((unsigned char)s[i])) {
					i = sws(s, i, n);
					continue;
				}
				if (!is_token((unsigned char)s[i]))
					goto fail;
				if (d != w)
					*d++ = ' ';
				while (i < n && is_token((unsigned char)s[i]))
					*d++ = s[i++];
			}
			if (d != w) {
				*d++ = '\0';
				r.display = w;
				w = d;
			}
		}
		if (i >= n || s[i] != '<')
			goto fail;
		u = ++i;
		while (i < n && s[i] != '>')
			i++;
		if (i == n)
			goto fail;
		ul = i - u;
		i++;
	}
	if (!valid_any_uri(s + u, ul))
		goto fail;
	r.uri = dup_part(&w, s + u, ul);
	r.params = w;
	if (scan_params(s, &i, n, &w, false) < 0 || i != n)
		goto fail;
	/* w has room for any one parameter value: look them up there */
	if (param_lookup(r.params, "tag", w, n + 1)) {
		if (!all_token(w, strlen(w)))
			goto fail;
		r.tag = w;
		w += strlen(w) + 1;
	}
	if (param_lookup(r.params, "expires", w, n + 1) && (r.expires = parse_delta(w)) < 0)
		goto fail;
	if (param_lookup(r.params, "q", w, n + 1) && (r.q = parse_qvalue(w)) < 0)
		goto fail;
	*a = r;
	return 0;
fail:
	free(r.mem);
	return -1;
}

const char *
sip_addr_param(const struct sip_addr *a, const char *name, char *buf, size_t n)
{
	return param_lookup(a->params, name, buf, n);
}

void
sip_addr_free(struct sip_addr *a)
{
	free(a->mem);
	memset(a, 0, sizeof *a);
}

/* ---- lists ---- */

/* Finds the next top-level ',' in s[i..n) (not in quotes or <>); returns its index or n. */
static size_t
next_comma(const char *s, size_t i, size_t n)
{
	bool quote = false, angle = false;

	for (; i < n; i++) {
		char c = s[i];
		if (quote) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '"')
				quote = false;
		} else if (c == '"') {
			quote = true;
		} else if (c == '<') {
			angle = true;
		} else if (c == '>') {
			angle = false;
		} else if (c == ',' && !angle) {
			return i;
		}
	}
	return n;
}

size_t
sip_split_list(const char *value, char **out, size_t max, char **mem)
{
	size_t n = strlen(value), i = 0, count = 0;
	char *c = *mem = xmalloc(n + 1);

	memcpy(c, value, n + 1);
	while (count < max) {
		size_t e = next_comma(c, i, n), b = i, t = e;
		while (b < t && is_wsp((unsigned char)c[b]))
			b++;
		while (t > b && is_wsp((unsigned char)c[t - 1]))
			t--;
		c[t] = '\0';
		out[count++] = c + b;
		if (e == n)
			break;
		i = e + 1;
	}
	return count;
}

/* ---- Via (20.42, 25.1) ---- */

/* token at s[*i] into [*b, *i); false if empty */
static bool
scan_token(const char *s, size_t *i, size_t n, size_t *b)
{
	*b = *i;
	while (*i < n && is_token((unsigned char)s[*i]))
		(*i)++;
	return *i > *b;
}

int
sip_parse_via(const char *value, struct sip_via *v)
{
	size_t n = strlen(value), i = 0, b, t, tl, h, hl;
	const char *s = value;
	struct sip_via r = {.rport = -1};
	char *w, *params;

	/* sent-protocol = protocol-name SLASH protocol-version SLASH transport; SLASH has SWS */
	i = sws(s, i, n);
	if (!scan_token(s, &i, n, &b))
		return -1;
	for (int k = 0; k < 2; k++) {
		i = sws(s, i, n);
		if (i >= n || s[i] != '/')
			return -1;
		i = sws(s, i + 1, n);
		if (!scan_token(s, &i, n, &b))
			return -1;
	}
	t = b;
	tl = i - b;
	if (tl >= sizeof r.transport)
		return -1;
	/* LWS sent-by */
	if (i >= n || !is_wsp((unsigned char)s[i]))
		return -1;
	i = sws(s, i, n);
	h = i;
	if (i < n && s[i] == '[') {
		while (i < n && s[i] != ']')
			i++;
		if (i < n)
			i++;
	} else {
		while (i < n &&
		       (is_alnum((unsigned char)s[i]) || in_set((unsigned char)s[i], "-._")))
			i++;
	}
	hl = i - h;
	if (!valid_host(s + h, hl))
		return -1;
	i = sws(s, i, n);
	if (i < n && s[i] == ':') { /* COLON = SWS ":" SWS */
		i = sws(s, i + 1, n);
		b = i;
		while (i < n && is_digit((unsigned char)s[i]))
			i++;
		if (!parse_port(s + b, i - b, &r.port))
			return -1;
	}
	r.mem = w = xmalloc(3 * n + 8);
	for (size_t k = 0; k < tl; k++) {
		char c = s[t + k];
		r.transport[k] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
	}
	r.host = dup_part(&w, s + h, hl);
	params = w;
	if (scan_params(s, &i, n, &w, true) < 0)
		goto fail;
	if (param_lookup(params, "branch", w, n + 1)) {
		if (!all_token(w, strlen(w)))
			goto fail;
		r.branch = w;
		w += strlen(w) + 1;
	}
	if (param_lookup(params, "received", w, n + 1)) {
		if (!valid_host(w, strlen(w)) &&
		    !(*w && strspn(w, "0123456789abcdefABCDEF:.") == strlen(w)))
			goto fail;
		r.received = w;
		w += strlen(w) + 1;
	}
	if (param_lookup(params, "rport", w, n + 1)) {
		unsigned port;
		if (w[0] == '\0')
			r.rport = 0;
		else if (parse_port(w, strlen(w), &port))
			r.rport = port;
		else
			goto fail;
	}
	*v = r;
	return 0;
fail:
	free(r.mem);
	return -1;
}

void
sip_via_free(struct sip_via *v)
{
	free(v->mem);
	memset(v, 0, sizeof *v);
}

/* ---- CSeq, Content-Disposition ---- */

int
sip_parse_cseq(const char *value, uint32_t *seq, char *method, size_t n)
{
	size_t len = strlen(value), i = sws(value, 0, len), b;
	uint64_t v = 0;

	b = i;
	while (i < len && is_digit((unsigned char)value[i])) {
		v = v * 10 + (uint64_t)(value[i] - '0');
		if (v > UINT32_MAX)
			return -1; /* RFC 4475 3.1.2.4 */
		i++;
	}
	if (i == b || i >= len || !is_wsp((unsigned char)value[i]))
		return -1;
	i = sws(value, i, len);
	if (!scan_token(value, &i, len, &b) || sws(value, i, len) != len || i - b >= n)
		return -1;
	memcpy(method, value + b, i - b);
	method[i - b] = '\0';
	*seq = (uint32_t)v;
	return 0;
}

int
sip_disposition(const char *value, char *out, size_t n)
{
	size_t len = strlen(value), i = sws(value, 0, len), b = i;

	while (i < len && (is_token((unsigned char)value[i]) || value[i] == '&'))
		i++;
	if (i == b || i - b >= n)
		return -1;
	if (sws(value, i, len) != len && value[sws(value, i, len)] != ';')
		return -1;
	for (size_t k = 0; k < i - b; k++) {
		char c = value[b + k];
		out[k] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
	}
	out[i - b] = '\0';
	return 0;
}

/* ---- the message ---- */

/* "SIP/" 1*DIGIT "." 1*DIGIT: 0 for SIP/2.0, -505 for another version, -400 if malformed. */
static int
check_version(const char *s, size_t n)
{
	size_t i = 4, d;

	if (n < 4 || strncasecmp(s, "SIP/", 4) != 0)
		return -400;
	d = i;
	while (i < n && is_digit((unsigned char)s[i]))
		i++;
	if (i == d || i >= n || s[i] != '.')
		return -400;
	d = ++i;
	while (i < n && is_digit((unsigned char)s[i]))
		i++;
	if (i == d || i != n)
		return -400;
	return (n == 7 && memcmp(s + 4, "2.0", 3) == 0) ? 0 : -505;
}

struct start_line {
	bool request;
	size_t a, alen; /* method, or status code */
	size_t b, blen; /* request-URI, or reason */
	int status;
};

/* Parses the start line l[0..n) (7.1, 7.2, 25.1); 0 or -status with *why set. */
static int
parse_start(const char *l, size_t n, struct start_line *st, const char **why)
{
	const char *sp1 = memchr(l, ' ', n), *sp2;
	int r;

	memset(st, 0, sizeof *st);
	if (n >= 4 && strncasecmp(l, "SIP/", 4) == 0) {
		/* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase */
		if (!sp1) {
			*why = "bad status line";
			return -400;
		}
		if ((r = check_version(l, (size_t)(sp1 - l))) < 0) {
			*why = r == -505 ? "SIP version not supported" : "bad status line";
			return r;
		}
		size_t i = (size_t)(sp1 - l) + 1;
		if (n - i < 3 || !is_digit((unsigned char)l[i]) ||
		    !is_digit((unsigned char)l[i + 1]) || !is_digit((unsigned char)l[i + 2]) ||
		    (n - i > 3 && l[i + 3] != ' ')) {
			*why = "bad status code";
			return -400;
		}
		st->status = (l[i] - '0') * 100 + (l[i + 1] - '0') * 10 + (l[i + 2] - '0');
		if (st->status < 100 || st->status > 699) {
			*why = "bad status code";
			return -400;
		}
		st->a = i;
		st->alen = 3;
		st->b = n - i > 3 ? i + 4 : n; /* "SIP/2.0 100" without the SP is tolerated */
		st->blen = n - st->b;
		for (size_t k = st->b; k < n; k++) {
			unsigned char c = (unsigned char)l[k];
			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				*why = "bad reason phrase";
				return -400;
			}
		}
		return 0;
	}
	/* Request-Line = Method SP Request-URI SP SIP-Version: single SPs (RFC 4475 3.1.2.9) */
	st->request = true;
	if (!sp1 || !(sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l)))) {
		*why = "bad request line";
		return -400;
	}
	r = check_version(sp2 + 1, n - (size_t)(sp2 + 1 - l));
	if (r < 0) {
		*why = r == -505 ? "SIP version not supported" : "bad request line";
		return r;
	}
	st->a = 0;
	st->alen = (size_t)(sp1 - l);
	st->b = st->alen + 1;
	st->blen = (size_t)(sp2 - sp1) - 1;
	if (!all_token(l, st->alen)) {
		*why = "bad method";
		return -400;
	}
	if (!valid_any_uri(l + st->b, st->blen)) {
		*why = "bad Request-URI";
		return -400;
	}
	struct uri_parts p;
	if (uri_scan(l + st->b, st->blen, &p) == 0 && p.has_headers) {
		*why = "headers in Request-URI"; /* 19.1.5, RFC 4475 3.1.2.11 */
		return -400;
	}
	return 0;
}

/* Content-Length (20.14): 1*DIGIT, capped at SIP_MAX_MSG + 1; -1 if malformed. */
static long
parse_clen(const char *v)
{
	long n = 0;
	if (!*v)
		return -1;
	for (; *v; v++) {
		if (!is_digit((unsigned char)*v))
			return -1;
		if (n <= SIP_MAX_MSG)
			n = n * 10 + (*v - '0');
	}
	return n > SIP_MAX_MSG ? SIP_MAX_MSG + 1 : n;
}

static void
rebase(struct sip_msg *m, char *old, char *neu)
{
#define REBASE(p) ((p) = (p) ? neu + ((p)-old) : NULL)
	REBASE(m->method);
	REBASE(m->uri);
	REBASE(m->reason);
	for (size_t i = 0; i < m->nhdr; i++) {
		REBASE(m->hdr[i].name);
		REBASE(m->hdr[i].value);
	}
#undef REBASE
}

/* Ends the value begun at v (written up to *w): trims trailing whitespace, NUL-terminates. */
static void
end_value(char *v, char **w)
{
	char *e = *w;
	while (e > v && is_wsp((unsigned char)e[-1]))
		e--;
	*e = '\0';
	*w = e + 1;
}

long
sip_parse(const char *data, size_t len, bool tcp, struct sip_msg *m, char *err, size_t errlen)
{
	size_t p = 0, i, line, hend, limit, cap, used, blen;
	struct start_line st = {0};
	const char *why = NULL;
	char *w, *mem = NULL, *val = NULL;
	long clen = -1, r;
	int rc;

	memset(m, 0, sizeof *m);
	/* 7.5: CRLFs before the start line are ignored on streams; a double CRLF is the ping of
	 * RFC 5626 4.4.1 and a lone datagram of CRLFs a keep-alive. */
	while (p + 1 < len && data[p] == '\r' && data[p + 1] == '\n')
		p += 2;
	if (tcp) {
		if (p >= 4) {
			m->keepalive = true;
			return 4;
		}
		if (len == p || (len == p + 1 && data[p] == '\r'))
			return 0;
	} else {
		if (len == 0) {
			set_err(err, errlen, "empty datagram");
			return -400;
		}
		if (p == len) {
			m->keepalive = true;
			return (long)len;
		}
	}

	/* Find the empty line, refusing NUL, bare CR and bare LF on the way (7, 25.1). */
	limit = len - p > SIP_MAX_MSG ? p + SIP_MAX_MSG : len;
	line = p;
	hend = 0;
	for (i = p; i < limit; i++) {
		char c = data[i];
		if (c == '\0') {
			set_err(err, errlen, "NUL in the header section");
			return -400;
		}
		if (c == '\n') {
			set_err(err, errlen, "bare LF");
			return -400;
		}
		if (c != '\r')
			continue;
		if (i + 1 == limit)
			break;
		if (data[i + 1] != '\n') {
			set_err(err, errlen, "bare CR");
			return -400;
		}
		if (i == line) {
			hend = i + 2;
			break;
		}
		if (line == p && (rc = parse_start(data + p, i - p, &st, &why)) < 0) {
			set_err(err, errlen, why);
			return rc;
		}
		line = ++i + 1;
	}
	if (!hend) {
		if (limit - p >= SIP_MAX_MSG) {
			set_err(err, errlen, "header section too long");
			return -513;
		}
		if (tcp)
			return 0;
		set_err(err, errlen, "no empty line after the header section");
		return -400;
	}

	/* The start line was checked when its CRLF was seen; copy everything into one block. */
	cap = (hend - p) + 4 + SIP_MAX_HEADERS * (CANON_MAX + 2);
	mem = w = xmalloc(cap);
	i = p;
	while (data[i] != '\r')
		i++;
	m->request = st.request;
	if (st.request) {
		m->method = dup_part(&w, data + p + st.a, st.alen);
		m->uri = dup_part(&w, data + p + st.b, st.blen);
	} else {
		m->status = st.status;
		m->reason = dup_part(&w, data + p + st.b, st.blen);
	}
	line = i + 2;
	while (line < hend - 2) {
		size_t e = line, k;
		while (data[e] != '\r')
			e++;
		if (is_wsp((unsigned char)data[line])) {
			/* 7.3.1: a continuation line; the fold counts as one SP */
			if (!val) {
				why = "continuation line before any header";
				goto bad;
			}
			k = sws(data, line, e);
			if (w != val) /* the value is trimmed on the left already */
				*w++ = ' ';
			memcpy(w, data + k, e - k);
			w += e - k;
		} else {
			const char *c;
			if (val)
				end_value(val, &w);
			if (m->nhdr == SIP_MAX_HEADERS) {
				free(mem);
				memset(m, 0, sizeof *m);
				set_err(err, errlen, "too many header fields");
				return -513;
			}
			/* header-name HCOLON: HCOLON = *( SP / HTAB ) ":" SWS */
			k = line;
			while (k < e && is_token((unsigned char)data[k]))
				k++;
			if (k == line) {
				why = "bad header name";
				goto bad;
			}
			size_t nl = k - line;
			k = sws(data, k, e);
			if (k == e || data[k] != ':') {
				why = "bad header line";
				goto bad;
			}
			c = canon_n(data + line, nl);
			m->hdr[m->nhdr].name =
			    c ? dup_part(&w, c, strlen(c)) : dup_part(&w, data + line, nl);
			k = sws(data, k + 1, e);
			val = m->hdr[m->nhdr++].value = w;
			memcpy(w, data + k, e - k);
			w += e - k;
		}
		line = e + 2;
	}
	if (val)
		end_value(val, &w);
	used = (size_t)(w - mem);

	/* Content-Length: digits only; repeats must agree (RFC 4475 3.1.2.3). */
	for (i = 0; i < m->nhdr; i++) {
		if (strcmp(m->hdr[i].name, "Content-Length") != 0)
			continue;
		r = parse_clen(m->hdr[i].value);
		if (r < 0 || (clen >= 0 && r != clen)) {
			why = r < 0 ? "bad Content-Length" : "conflicting Content-Length";
			goto bad;
		}
		clen = r;
	}
	if (tcp) {
		if (clen < 0) {
			why = "no Content-Length on a stream (18.3)";
			goto bad;
		}
		blen = (size_t)clen;
	} else if (clen < 0) {
		blen = len - hend;
	} else {
		if ((size_t)clen > len - hend) {
			why = "Content-Length larger than the datagram (18.3)";
			goto bad;
		}
		blen = (size_t)clen;
	}
	if (hend - p + blen > SIP_MAX_MSG) {
		free(mem);
		memset(m, 0, sizeof *m);
		set_err(err, errlen, "message too large");
		return -413;
	}
	if (tcp && len - hend < blen) {
		free(mem);
		memset(m, 0, sizeof *m);
		return 0;
	}
	m->mem = xmalloc(used + blen + 1);
	memcpy(m->mem, mem, used);
	rebase(m, mem, m->mem);
	free(mem);
	m->body = m->mem + used;
	memcpy(m->body, data + hend, blen);
	m->body[blen] = '\0';
	m->body_len = blen;
	return (long)(hend + blen);
bad:
	free(mem);
	memset(m, 0, sizeof *m);
	set_err(err, errlen, why);
	return -400;
}

void
sip_msg_free(struct sip_msg *m)
{
	free(m->mem);
	memset(m, 0, sizeof *m);
}

/* ---- validity beyond framing ---- */

static size_t
count_hdr(const struct sip_msg *m, const char *name)
{
	size_t c = 0;
	for (size_t i = 0; i < m->nhdr; i++)
		c += strcmp(m->hdr[i].name, name) == 0;
	return c;
}

static bool
valid_callid(const char *s)
{
	size_t at = 0, n = 0;
	for (; s[n]; n++) {
		if (s[n] == '@')
			at++;
		else if (!is_word((unsigned char)s[n]))
			return false;
	}
	return n > 0 && at <= 1 && s[0] != '@' && s[n - 1] != '@';
}

/* Each entry of every header name parses with fn (Via, Contact). */
static bool
valid_entries(const struct sip_msg *m, const char *name, bool contact)
{
	for (size_t i = 0; i < m->nhdr; i++) {
		const char *v = m->hdr[i].value;
		size_t n = strlen(v), b = 0, entries = 0;
		if (strcmp(m->hdr[i].name, name) != 0)
			continue;
		while (b <= n) {
			size_t e = next_comma(v, b, n);
			char *one = xstrndup(v + b, e - b);
			bool ok;
			entries++;
			if (contact) {
				struct sip_addr a = {0};
				ok = sip_parse_addr(one, &a) == 0;
				/* 10.2.2: "*" stands alone */
				if (ok && a.star &&
				    (entries > 1 || e < n || count_hdr(m, name) > 1))
					ok = false;
				sip_addr_free(&a);
			} else {
				struct sip_via via;
				ok = sip_parse_via(one, &via) == 0;
				if (ok)
					sip_via_free(&via);
			}
			free(one);
			if (!ok)
				return false;
			b = e + 1;
		}
	}
	return true;
}

static const char *
check_common(const struct sip_msg *m, char *method, size_t n, uint32_t *seq)
{
	static const char *const once[] = {"From", "To", "Call-ID", "CSeq"};
	struct sip_addr a;
	const char *d;

	for (size_t i = 0; i < ARRAY_LEN(once); i++) {
		size_t c = count_hdr(m, once[i]);
		if (c == 0)
			return "missing From, To, Call-ID or CSeq";
		if (c > 1)
			return "repeated From, To, Call-ID or CSeq";
	}
	if (!sip_hdr(m, "Via"))
		return "missing Via";
	if (!valid_entries(m, "Via", false))
		return "bad Via";
	if (sip_parse_addr(sip_hdr(m, "From"), &a) < 0)
		return "bad From";
	sip_addr_free(&a);
	if (sip_parse_addr(sip_hdr(m, "To"), &a) < 0)
		return "bad To";
	sip_addr_free(&a);
	if (!valid_callid(sip_hdr(m, "Call-ID")))
		return "bad Call-ID";
	if (sip_parse_cseq(sip_hdr(m, "CSeq"), seq, method, n) < 0)
		return "bad CSeq";
	if (!valid_entries(m, "Contact", true))
		return "bad Contact";
	/* 20.17: SIP-date is rfc1123-date, always in GMT (RFC 4475 3.1.2.12) */
	d = sip_hdr(m, "Date");
	if (d && (strlen(d) < 4 || strcmp(d + strlen(d) - 4, " GMT") != 0))
		return "bad Date";
	return NULL;
}

const char *
sip_check_request(const struct sip_msg *m)
{
	char method[64];
	uint32_t seq;
	const char *why, *mf;
	long v = 0;

	if (!m->request)
		return "not a request";
	if ((why = check_common(m, method, sizeof method, &seq)))
		return why;
	/* 8.1.1.5: the CSeq method matches the request's (RFC 4475 3.1.2.17, 3.1.2.18) */
	if (strcmp(method, m->method) != 0)
		return "CSeq method does not match the request";
	if (count_hdr(m, "Max-Forwards") != 1)
		return "missing or repeated Max-Forwards";
	mf = sip_hdr(m, "Max-Forwards");
	if (!*mf)
		return "bad Max-Forwards";
	for (; *mf; mf++) {
		if (!is_digit((unsigned char)*mf))
			return "bad Max-Forwards";
		v = v * 10 + (*mf - '0');
		if (v > 255) /* 20.22 */
			return "bad Max-Forwards";
	}
	return NULL;
}

const char *
sip_check_response(const struct sip_msg *m)
{
	char method[64];
	uint32_t seq;

	if (m->request)
		return "not a response";
	return check_common(m, method, sizeof method, &seq);
}

/* ---- writing ---- */

static bool
has_crlf(const char *s)
{
	return s && strpbrk(s, "\r\n") != NULL;
}

void
sip_write_response(struct buf *out, const struct sip_msg *req, int status, const char *reason,
		   const char *totag, const char *extra, const char *body, size_t body_len)
{
	const char *v;

	if (status < 100 || status > 699 || !reason || has_crlf(reason) ||
	    (totag && !all_token(totag, strlen(totag))))
		fatal("sip_write_response: bad status %d, reason or tag",
		      status); /* caller's bug */
	buf_printf(out, "SIP/2.0 %d %s\r\n", status, reason);
	/* 8.2.6.2: Via (all, in order), From, To, Call-ID and CSeq are copied */
	for (v = sip_hdr(req, "Via"); v; v = sip_hdr_next(req, "Via", v))
		buf_printf(out, "Via: %s\r\n", v);
	if ((v = sip_hdr(req, "From")))
		buf_printf(out, "From: %s\r\n", v);
	if ((v = sip_hdr(req, "To"))) {
		struct sip_addr a;
		bool tagged = false;
		if (sip_parse_addr(v, &a) == 0) {
			tagged = a.tag != NULL;
			sip_addr_free(&a);
		}
		if (totag && !tagged)
			buf_printf(out, "To: %s;tag=%s\r\n", v, totag);
		else
			buf_printf(out, "To: %s\r\n", v);
	}
	if ((v = sip_hdr(req, "Call-ID")))
		buf_printf(out, "Call-ID: %s\r\n", v);
	if ((v = sip_hdr(req, "CSeq")))
		buf_printf(out, "CSeq: %s\r\n", v);
	if (extra)
		buf_puts(out, extra);
	buf_printf(out, "Content-Length: %zu\r\n\r\n", body_len);
	if (body_len)
		buf_append(out, body, body_len);
}

void
sip_write_request(struct buf *out, const char *method, const char *uri, const char *headers,
		  const char *body, size_t body_len)
{
	if (!all_token(method, strlen(method)) || !*uri || strpbrk(uri, " \r\n"))
		fatal("sip_write_request: bad method or URI"); /* caller's bug */
	buf_printf(out, "%s %s SIP/2.0\r\n", method, uri);
	if (headers)
		buf_puts(out, headers);
	buf_printf(out, "Content-Length: %zu\r\n\r\n", body_len);
	if (body_len)
		buf_append(out, body, body_len);
}
