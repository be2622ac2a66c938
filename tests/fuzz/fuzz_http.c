/*
 * fuzz_http: libFuzzer target for the HTTP/1.1 request reader (net/http.c over
 * http-parser). The first input byte picks the size of the pieces the rest is fed in, as a
 * socket would deliver it; requests are read one after another like a keep-alive
 * connection, with small limits so the limit paths run too.
 *
 * Invariant checked: the reader never uses more bytes than it was given, ends every
 * request with either a complete request (method and path set, body within body_max,
 * header names in lower case) or an error status, and frees everything.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "net/net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_http: %s\n", what);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_limits lim = {.header_max = 2048, .body_max = 4096};
	struct http_reader r;
	size_t piece, off = 1;
	int requests = 0;

	if (size < 1)
		return 0;
	piece = (size_t)data[0] % 64 + 1;
	http_reader_init(&r, &lim);
	while (off < size && !r.error && requests < 100) {
		size_t n = size - off < piece ? size - off : piece;
		size_t used = http_reader_feed(&r, (const char *)data + off, n);
		check(used <= n, "used more than given");
		off += used;
		if (r.done) {
			check(r.req.method && r.req.path,
			      "complete request without method or path");
			check(buf_used(&r.req.body) <= lim.body_max, "body over the limit");
			for (size_t i = 0; i < r.req.nheaders; i++) {
				for (const char *c = r.req.headers[i].name; *c; c++)
					check(!(*c >= 'A' && *c <= 'Z'),
					      "header name not lower case");
				check(r.req.headers[i].value != NULL, "header without value");
			}
			requests++;
			http_reader_next(&r);
		} else if (used == 0 && !r.error) {
			check(n == 0, "stalled with input left");
		}
		if (r.error)
			check(r.error >= 400 && r.error < 600, "error is not an HTTP error status");
	}
	http_reader_free(&r);
	return 0;
}
