/*
 * fuzz_ws: libFuzzer target for the WebSocket server side (net/ws.c over wslay): the
 * input is what a client sends after the handshake (frames, masked or not, fragmented,
 * control frames, close), delivered in pieces as a socket would.
 *
 * Invariant checked: no message longer than the limit is delivered, every delivered
 * message is complete text (valid UTF-8, RFC 6455 8.1), and closing frees everything.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistr.h>

#include "core/core.h"
#include "net/net.h"

#define MAX_MSG 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool closed;

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_ws: %s\n", what);
		abort();
	}
}

static void
on_message(struct ws *ws, void *arg, const char *msg, size_t len)
{
	check(len <= MAX_MSG, "message over the limit");
	check(u8_check((const uint8_t *)msg, len) == NULL, "text message not UTF-8");
}

static void
on_closed(struct ws *ws, void *arg, const char *reason)
{
	closed = true;
}

static const struct ws_cb cb = {on_message, on_closed};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct loop *loop;
	struct conn *c;
	struct ws *ws;
	size_t piece, off = 1;

	if (size < 1)
		return 0;
	if (!loop)
		loop = loop_new(0);
	/* A connection with no socket: input is placed in c->in, output stays in c->out. */
	c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->io.fd = -1;
	c->out_max = 1 << 20;
	closed = false;
	ws = ws_on_conn(c, MAX_MSG, &cb, NULL);
	piece = (size_t)data[0] % 128 + 1;
	while (off < size && !closed) {
		size_t n = size - off < piece ? size - off : piece;
		buf_append(&c->in, data + off, n);
		off += n;
		c->cb->data(c, c->arg);
	}
	ws_send(ws, "<presence/>", 11);
	ws_close(ws, 1000);
	timer_stop(loop, &c->linger_timer);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
	return 0;
}
