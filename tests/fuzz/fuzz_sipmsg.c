/*
 * fuzz_sipmsg: libFuzzer target for the SIP message codec (sip/msg.c). The input is parsed
 * as one UDP datagram and as the start of a TCP stream; every message accepted has each
 * accessor run on each header value (whole and split into list entries), a response written
 * to it and parsed again, and (requests) its headers written back as a request and parsed.
 *
 * Invariants checked: sip_parse never takes more than it was given, returns 0 only over TCP,
 * fails only with 400/413/505/513 and a reason; accepted messages have token header names,
 * NUL/CR/LF-free trimmed values and a NUL after the body; a TCP message is complete on its
 * own bytes and incomplete one byte short; a sip: URI an accessor accepted parses with
 * sip_parse_uri; written messages parse back to the same Via, From, Call-ID, CSeq, headers
 * and body.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "sip/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_sipmsg: %s\n", what);
		abort();
	}
}

static bool
clean(const char *s, bool trimmed)
{
	size_t n = strlen(s);
	if (strpbrk(s, "\r\n"))
		return false;
	if (trimmed && n && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		return false;
	return true;
}

static void
check_msg(const struct sip_msg *m)
{
	if (m->keepalive) {
		check(m->nhdr == 0 && !m->mem, "keep-alive carries nothing");
		return;
	}
	if (m->request) {
		check(m->method && *m->method && clean(m->method, true), "method");
		check(m->uri && *m->uri && !strchr(m->uri, ' ') && clean(m->uri, true), "uri");
	} else {
		check(m->status >= 100 && m->status <= 699 && m->reason && clean(m->reason, false),
		      "status line");
	}
	check(m->nhdr <= SIP_MAX_HEADERS, "header count");
	for (size_t i = 0; i < m->nhdr; i++) {
		const char *n = m->hdr[i].name;
		check(*n && strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				      "0123456789-.!%*_+`'~") == strlen(n),
		      "header name is a token");
		check(clean(m->hdr[i].value, true), "header value");
		check(strcmp(sip_hdr_canon(n), n) == 0 || strlen(n) > 1, "canonical name");
	}
	check(m->body && m->body[m->body_len] == '\0', "body NUL");
}

static void
uri_check(const char *uri)
{
	struct sip_uri u;
	char buf[64];

	if (!uri || (strncasecmp(uri, "sip:", 4) != 0 && strncasecmp(uri, "sips:", 5) != 0))
		return;
	check(sip_parse_uri(uri, &u) == 0, "an accepted sip: URI parses");
	check(u.host && *u.host, "host");
	sip_uri_param(&u, "transport", buf, sizeof buf);
	sip_uri_param(&u, "lr", buf, 2);
	sip_uri_free(&u);
}

static void
value_accessors(const char *v)
{
	struct sip_addr a;
	struct sip_via via;
	struct sip_uri u;
	uint32_t seq;
	char method[32], disp[32], buf[64];

	if (sip_parse_addr(v, &a) == 0) {
		check(a.star ? !a.uri : a.uri && *a.uri, "addr uri");
		check(a.expires >= -1 && a.expires <= 4294967295L && a.q >= -1 && a.q <= 1000,
		      "addr numbers");
		check(!a.tag || *a.tag, "tag");
		sip_addr_param(&a, "tag", buf, sizeof buf);
		sip_addr_param(&a, "+sip.instance", buf, 4);
		uri_check(a.uri);
		sip_addr_free(&a);
	}
	if (sip_parse_via(v, &via) == 0) {
		check(via.transport[0] && via.host && *via.host && via.port <= 65535 &&
			  via.rport >= -1 && via.rport <= 65535,
		      "via");
		sip_via_free(&via);
	}
	if (sip_parse_uri(v, &u) == 0) {
		sip_uri_param(&u, "transport", buf, sizeof buf);
		sip_uri_free(&u);
	}
	if (sip_parse_cseq(v, &seq, method, sizeof method) == 0)
		check(*method && strlen(method) < sizeof method, "cseq method");
	if (sip_disposition(v, disp, sizeof disp) == 0)
		check(*disp, "disposition");
}

static void
accessors(const struct sip_msg *m)
{
	for (size_t i = 0; i < m->nhdr; i++) {
		char *list[16], *mem;
		const char *v = m->hdr[i].value;
		size_t n = sip_split_list(v, list, 16, &mem), seen = 0;

		check(n >= 1 && n <= 16, "split count");
		value_accessors(v);
		for (size_t k = 0; k < n; k++) {
			check(clean(list[k], true), "split piece");
			value_accessors(list[k]);
		}
		free(mem);
		for (const char *h = sip_hdr(m, m->hdr[i].name); h;
		     h = sip_hdr_next(m, m->hdr[i].name, h))
			check(++seen <= m->nhdr, "sip_hdr_next ends");
		check(seen >= 1, "sip_hdr finds the header");
	}
	if (m->request) {
		sip_check_request(m);
		uri_check(m->uri);
	} else {
		sip_check_response(m);
	}
}

static size_t
count(const struct sip_msg *m, const char *name)
{
	size_t c = 0;
	for (const char *h = sip_hdr(m, name); h; h = sip_hdr_next(m, name, h))
		c++;
	return c;
}

static bool
same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void
round_trip(const struct sip_msg *m)
{
	struct buf b = {0};
	struct sip_msg r;
	char err[128];
	long n;

	sip_write_response(&b, m, 486, "Busy Here", "t1", "Server: fuzz\r\n", "xy", 2);
	if (b.len <= SIP_MAX_MSG && count(m, "Via") + 7 <= SIP_MAX_HEADERS) {
		n = sip_parse(b.data, b.len, true, &r, err, sizeof err);
		check(n == (long)b.len, "response parses");
		check(!r.request && r.status == 486 && r.body_len == 2, "response line and body");
		for (const char *x = sip_hdr(m, "Via"), *y = sip_hdr(&r, "Via"); x || y;
		     x = sip_hdr_next(m, "Via", x), y = sip_hdr_next(&r, "Via", y))
			check(same(x, y), "Via copied in order");
		check(same(sip_hdr(m, "From"), sip_hdr(&r, "From")), "From copied");
		check(same(sip_hdr(m, "Call-ID"), sip_hdr(&r, "Call-ID")), "Call-ID copied");
		check(same(sip_hdr(m, "CSeq"), sip_hdr(&r, "CSeq")), "CSeq copied");
		const char *t0 = sip_hdr(m, "To"), *t1 = sip_hdr(&r, "To");
		check((!t0 && !t1) || (t0 && t1 && strncmp(t0, t1, strlen(t0)) == 0), "To copied");
		sip_msg_free(&r);
	}
	buf_free(&b);
	if (!m->request)
		return;
	/* the request again, its headers (but Content-Length) written back */
	struct buf h = {0};
	size_t nh = 0;
	for (size_t i = 0; i < m->nhdr; i++) {
		if (strcmp(m->hdr[i].name, "Content-Length") == 0)
			continue;
		buf_printf(&h, "%s: %s\r\n", m->hdr[i].name, m->hdr[i].value);
		nh++;
	}
	sip_write_request(&b, m->method, m->uri, h.data, m->body, m->body_len);
	if (b.len <= SIP_MAX_MSG && nh < SIP_MAX_HEADERS) {
		n = sip_parse(b.data, b.len, true, &r, err, sizeof err);
		check(n == (long)b.len, "request parses again");
		check(r.request && strcmp(r.method, m->method) == 0 && strcmp(r.uri, m->uri) == 0,
		      "request line");
		check(r.body_len == m->body_len && memcmp(r.body, m->body, m->body_len) == 0,
		      "request body");
		for (size_t i = 0, k = 0; i < m->nhdr; i++) {
			if (strcmp(m->hdr[i].name, "Content-Length") == 0)
				continue;
			check(k < r.nhdr && strcmp(r.hdr[k].name, m->hdr[i].name) == 0 &&
				  strcmp(r.hdr[k].value, m->hdr[i].value) == 0,
			      "headers written back");
			k++;
		}
		sip_msg_free(&r);
	}
	buf_free(&h);
	buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct sip_msg m;
	char err[128];

	for (int tcp = 0; tcp < 2; tcp++) {
		err[0] = '\0';
		long r = sip_parse(s, size, tcp, &m, err, sizeof err);
		check(r <= (long)size, "took more than given");
		if (r < 0) {
			check(r == -400 || r == -413 || r == -505 || r == -513, "status");
			check(err[0] != '\0', "reason");
			continue;
		}
		if (r == 0) {
			check(tcp, "0 only over TCP");
			continue;
		}
		check_msg(&m);
		if (tcp) {
			struct sip_msg again;
			check(sip_parse(s, (size_t)r, true, &again, err, sizeof err) == r,
			      "complete on its own bytes");
			sip_msg_free(&again);
			check(sip_parse(s, (size_t)r - 1, true, &again, err, sizeof err) == 0,
			      "incomplete one byte short");
		}
		if (!m.keepalive) {
			accessors(&m);
			round_trip(&m);
		}
		sip_msg_free(&m);
	}
	return 0;
}
