/*
 * form: the small parsers and encoders of the web pages: form and query decoding,
 * cookies, HTML escaping, URL encoding, and the per-form tokens against CSRF.
 *
 * Invariant: web_form_get() returns only UTF-8 that XML can carry, and web_html() output
 * holds none of & < > " ' except as entities, whatever the input.
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistr.h>

#include "web_int.h"

/* HTML-escapes s (text and attribute values alike). */
void
web_html(struct buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&#39;");
			break;
		default:
			buf_append(b, s, 1);
			break;
		}
	}
}

/* Percent-encodes s for a query string. */
void
web_urlenc(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("-._~@", c)) {
			buf_append(b, s, 1);
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			buf_append(b, e, 3);
		}
	}
}

/*
 * The value of name in an application/x-www-form-urlencoded string (a query or a form
 * body), decoded; NULL if absent, or if it is not UTF-8 or holds characters XML cannot
 * carry (RFC 6120 11.1), so nothing from a form can break a stream.
 */
char *
web_form_get(const char *data, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	const char *p, *end;

	if (!data) /* no query at all */
		return NULL;
	p = data;
	end = data + len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		if ((size_t)(stop - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '=') {
			struct buf v = {0};
			char *out;
			for (const char *q = p + nlen + 1; q < stop; q++) {
				char c = *q;
				if (c == '+') {
					c = ' ';
				} else if (c == '%' && stop - q > 2 && hex_digit(q[1]) >= 0 &&
					   hex_digit(q[2]) >= 0) {
					c = (char)(hex_digit(q[1]) * 16 + hex_digit(q[2]));
					q += 2;
				}
				buf_append(&v, &c, 1);
			}
			buf_append(&v, "", 1);
			out = xstrdup(buf_head(&v));
			buf_free(&v);
			if (u8_check((const uint8_t *)out, strlen(out)) != NULL) {
				free(out);
				return NULL;
			}
			for (const unsigned char *c = (const unsigned char *)out; *c; c++) {
				if (*c < 0x20 && *c != '\t' && *c != '\n' && *c != '\r') {
					free(out);
					return NULL;
				}
			}
			return out;
		}
		p = stop + 1;
	}
	return NULL;
}

/* The value of cookie name in the Cookie header (RFC 6265 5.4), or NULL; caller frees. */
char *
web_cookie_get(const struct http_request *req, const char *name)
{
	const char *h = http_header(req, "cookie");
	size_t nlen = strlen(name);

	while (h && *h) {
		h += strspn(h, " ;,");
		size_t len = strcspn(h, ";,");
		if (len > nlen && memcmp(h, name, nlen) == 0 && h[nlen] == '=')
			return xstrndup(h + nlen + 1, len - nlen - 1);
		h += len;
	}
	return NULL;
}

void
web_form_token(const char *secret, const char *form, char out[33])
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	char in[128];

	snprintf(in, sizeof in, "%s:%s", secret, form);
	SHA256((const unsigned char *)in, strlen(in), d);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

bool
web_token_ok(const char *secret, const char *form, const char *given)
{
	char want[33];

	if (!given)
		return false;
	web_form_token(secret, form, want);
	return strcmp(want, given) == 0;
}
