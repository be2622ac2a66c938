/*
 * fuzz_form: libFuzzer target for the /m/ page helpers (web/form.c): form and query
 * decoding, cookie lookup, HTML escaping. The input is used as a form body, as a Cookie
 * header and as text to escape.
 *
 * Invariant checked: a decoded form value is valid UTF-8 without characters XML cannot
 * carry; escaped HTML contains no raw & < > " ' (only entities); a cookie value has no ';'.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistr.h>

#include "core/core.h"
#include "web/web_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_form: %s\n", what);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"with", "body", "token", "a", ""};
	char *text = xmalloc(size + 1);
	struct buf b = {0};

	memcpy(text, data, size);
	text[size] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		char *v = web_form_get(text, size, names[i]);
		if (v) {
			check(u8_check((const uint8_t *)v, strlen(v)) == NULL,
			      "form value not UTF-8");
			for (const unsigned char *c = (const unsigned char *)v; *c; c++)
				check(*c >= 0x20 || *c == '\t' || *c == '\n' || *c == '\r',
				      "form value with a control character");
		}
		free(v);
	}
	struct http_header h = {"cookie", text};
	struct http_request req = {.headers = &h, .nheaders = 1};
	char *ck = web_cookie_get(&req, "baton_m");
	if (ck)
		check(!strchr(ck, ';'), "cookie value runs past ';'");
	free(ck);
	web_html(&b, text);
	buf_append(&b, "", 1);
	for (const char *c = buf_head(&b); *c; c++) {
		check(*c != '<' && *c != '>' && *c != '"' && *c != '\'',
		      "raw markup in escaped HTML");
		if (*c == '&')
			check(strncmp(c, "&amp;", 5) == 0 || strncmp(c, "&lt;", 4) == 0 ||
				  strncmp(c, "&gt;", 4) == 0 || strncmp(c, "&quot;", 6) == 0 ||
				  strncmp(c, "&#39;", 5) == 0,
			      "bare & in escaped HTML");
	}
	buf_free(&b);
	free(text);
	return 0;
}
