/*
 * CPIM (RFC 3862) and IMDN (RFC 5438) for SIP messages: reading a message/cpim body (its
 * inner text and the delivery reports its sender asks for) and writing a delivery report as
 * message/cpim around message/imdn+xml.
 *
 * Invariant: only the header names the imdn namespace was given (NS: <prefix>
 * <urn:ietf:params:imdn>, RFC 3862 4.6) are read as IMDN headers.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_int.h"

#define NS_IMDN_CPIM "urn:ietf:params:imdn"
#define NS_IMDN_XML  "urn:ietf:params:xml:ns:imdn"

void
sip_cpim_free(struct sip_cpim *c)
{
	free(c->text);
	free(c->msgid);
	memset(c, 0, sizeof *c);
}

/* The next line of [p, end) without its CRLF; returns the start of the one after. */
static const char *
line(const char *p, const char *end, const char **lend)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	const char *e = nl ? nl : end;

	*lend = e > p && e[-1] == '\r' ? e - 1 : e;
	return nl ? nl + 1 : end;
}

/* "Name: value" -> name (up to the colon) and trimmed value; false if not a header line. */
static bool
split_header(const char *p, const char *e, char *name, size_t nn, char *value, size_t vn)
{
	const char *colon = memchr(p, ':', (size_t)(e - p));
	size_t n;

	if (!colon || colon == p)
		return false;
	n = (size_t)(colon - p);
	snprintf(name, nn, "%.*s", (int)n, p);
	for (p = colon + 1; p < e && (*p == ' ' || *p == '\t'); p++)
		;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	snprintf(value, vn, "%.*s", (int)(e - p), p);
	return true;
}

int
sip_cpim_parse(const char *body, size_t len, struct sip_cpim *c)
{
	const char *p = body, *end = body + len, *e;
	char name[128], value[512], prefix[64] = "", key[160];
	bool text = true;

	memset(c, 0, sizeof *c);
	/* 1: the message headers, NS first (RFC 3862 3.3). */
	while (p < end) {
		const char *next = line(p, end, &e);
		if (e == p) {
			p = next;
			break;
		}
		if (split_header(p, e, name, sizeof name, value, sizeof value)) {
			if (strcasecmp(name, "NS") == 0 && strstr(value, "<" NS_IMDN_CPIM ">")) {
				size_t k = strcspn(value, " <");
				snprintf(prefix, sizeof prefix, "%.*s", (int)k, value);
			}
			snprintf(key, sizeof key, "%s.Message-ID", prefix);
			if (*prefix && strcasecmp(name, key) == 0) {
				free(c->msgid);
				c->msgid = xstrdup(value);
			}
			snprintf(key, sizeof key, "%s.Disposition-Notification", prefix);
			if (*prefix && strcasecmp(name, key) == 0) {
				/* RFC 5438 6.3 / 7.1.1.1: a comma-separated list. */
				for (char *v = value; *v; v++)
					*v = (char)tolower((unsigned char)*v);
				c->positive = strstr(value, "positive-delivery") != NULL;
				c->negative = strstr(value, "negative-delivery") != NULL;
			}
		}
		p = next;
	}
	/* 2: the encapsulated MIME headers, then the content. */
	while (p < end) {
		const char *next = line(p, end, &e);
		if (e == p) {
			p = next;
			break;
		}
		if (split_header(p, e, name, sizeof name, value, sizeof value) &&
		    strcasecmp(name, "Content-Type") == 0)
			text = strncasecmp(value, "text/plain", 10) == 0;
		p = next;
	}
	if (!text || memchr(p, '\0', (size_t)(end - p))) {
		sip_cpim_free(c);
		return -1;
	}
	c->text = xstrndup(p, (size_t)(end - p));
	return 0;
}

void
sip_imdn_report(struct buf *out, const char *from_uri, const char *to_uri, const char *about,
		const char *recipient_uri, bool delivered)
{
	struct buf x = {0};
	char stamp[32], id[17];

	time_format(wall_ms(), stamp, sizeof stamp);
	rand_id(id, 16);
	/* RFC 5438 7.2.1.1: the report, in XML, names the message and the recipient. */
	buf_puts(&x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<imdn xmlns=\"" NS_IMDN_XML
		     "\">\r\n<message-id>");
	xml_escape(&x, about, strlen(about), false);
	buf_printf(&x, "</message-id>\r\n<datetime>%s</datetime>\r\n<recipient-uri>", stamp);
	xml_escape(&x, recipient_uri, strlen(recipient_uri), false);
	buf_puts(&x, "</recipient-uri>\r\n<original-recipient-uri>");
	xml_escape(&x, recipient_uri, strlen(recipient_uri), false);
	buf_printf(&x,
		   "</original-recipient-uri>\r\n<delivery-notification><status><%s/></status>"
		   "</delivery-notification>\r\n</imdn>\r\n",
		   delivered ? "delivered" : "failed");
	/* RFC 5438 7.2.1.1 example: CPIM headers, then the imdn+xml part. */
	buf_printf(out,
		   "From: <%s>\r\nTo: <%s>\r\nNS: imdn <" NS_IMDN_CPIM ">\r\n"
		   "imdn.Message-ID: %s\r\nDateTime: %s\r\n\r\n"
		   "Content-Type: message/imdn+xml\r\nContent-Disposition: notification\r\n"
		   "Content-Length: %zu\r\n\r\n",
		   from_uri, to_uri, id, stamp, buf_used(&x));
	buf_append(out, buf_head(&x), buf_used(&x));
	buf_free(&x);
}
