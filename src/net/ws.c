/*
 * ws: the server side of WebSocket (RFC 6455) on a connection taken over from HTTP:
 * the opening handshake, then framing by wslay (masking, fragmentation, control frames,
 * UTF-8 of text messages, the closing handshake), delivering whole text messages.
 *
 * Invariant: wslay's context is only ever freed outside its own callbacks; a ws_close()
 * made while a message is being delivered takes effect once wslay_event_recv() returns.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#include "net.h"

/* RFC 6455 1.3: the GUID appended to the client's key. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct ws {
	struct conn *c;
	wslay_event_context_ptr ctx;
	const struct ws_cb *cb;
	void *arg;
	bool in_recv;  /* inside a callback to the owner: defer the free */
	bool released; /* the owner called ws_close() */
	bool dead;     /* closed callback ran */
	uint16_t close_code;
};

static void ws_data(struct conn *c, void *arg);
static void ws_conn_closed(struct conn *c, void *arg, const char *reason);
static const struct conn_cb ws_conn_cb = {.data = ws_data, .closed = ws_conn_closed};

/* ---- the opening handshake (RFC 6455 4.2) ---- */

/* Does the comma-separated header value list contain token (case-insensitive)? */
bool
http_token_in(const char *list, const char *token)
{
	size_t n = strlen(token);

	while (list && *list) {
		while (*list == ' ' || *list == '\t' || *list == ',')
			list++;
		size_t len = strcspn(list, ",");
		size_t trim = len;
		while (trim > 0 && (list[trim - 1] == ' ' || list[trim - 1] == '\t'))
			trim--;
		if (trim == n && strncasecmp(list, token, n) == 0)
			return true;
		list += len;
	}
	return false;
}

int
ws_check_upgrade(const struct http_request *req, char accept[32])
{
	const char *key = http_header(req, "sec-websocket-key");
	const char *version = http_header(req, "sec-websocket-version");
	unsigned char digest[SHA_DIGEST_LENGTH];
	char in[128];

	/* RFC 6455 4.2.1: a GET with Upgrade: websocket and Connection: Upgrade. */
	if (strcmp(req->method, "GET") != 0)
		return 405;
	if (!http_token_in(http_header(req, "upgrade"), "websocket") ||
	    !http_token_in(http_header(req, "connection"), "upgrade"))
		return 426;
	/* RFC 6455 4.4: we speak version 13 only. */
	if (!version || strcmp(version, "13") != 0)
		return 426;
	/* The key is 16 bytes in base64: 24 characters. */
	if (!key || strlen(key) != 24)
		return 400;
	snprintf(in, sizeof in, "%s" WS_GUID, key);
	SHA1((const unsigned char *)in, strlen(in), digest);
	EVP_EncodeBlock((unsigned char *)accept, digest, sizeof digest);
	return 0;
}

/* ---- wslay callbacks ---- */

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *data, size_t len, int flags, void *user)
{
	struct ws *ws = user;
	struct conn *c = ws->c;
	size_t n = buf_used(&c->in);

	if (n == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n > len)
		n = len;
	memcpy(data, buf_head(&c->in), n);
	buf_consume(&c->in, n);
	return (ssize_t)n;
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
	struct ws *ws = user;

	/* conn_write queues everything (or fails the connection at the end of the turn). */
	conn_write(ws->c, data, len);
	return (ssize_t)len;
}

static void
notify_closed(struct ws *ws, const char *reason)
{
	if (ws->dead || ws->released)
		return;
	ws->dead = true;
	ws->cb->closed(ws, ws->arg, reason);
}

static void
msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m, void *user)
{
	struct ws *ws = user;

	if (ws->released || ws->dead)
		return;
	if (m->opcode == WSLAY_TEXT_FRAME) {
		ws->cb->message(ws, ws->arg, (const char *)m->msg, m->msg_length);
	} else if (m->opcode == WSLAY_BINARY_FRAME) {
		/* RFC 7395 3.2: XMPP travels in text frames only. */
		wslay_event_queue_close(ctx, WSLAY_CODE_UNSUPPORTED_DATA,
					(const uint8_t *)"text frames only", 16);
		notify_closed(ws, "binary frame");
	} else if (m->opcode == WSLAY_CONNECTION_CLOSE) {
		notify_closed(ws, "closed by peer");
	}
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_msg_recv_callback = msg_cb,
};

/* ---- the connection ---- */

static void
ws_free(struct ws *ws)
{
	wslay_event_context_free(ws->ctx);
	free(ws);
}

/*
 * After the owner let go: the messages queued, then our close frame (wslay sends control
 * frames before data, so the close is queued only once the data is out), then close.
 */
static void
finish(struct ws *ws)
{
	wslay_event_send(ws->ctx);
	if (!ws->dead && !wslay_event_get_close_sent(ws->ctx)) {
		wslay_event_queue_close(ws->ctx, ws->close_code, NULL, 0);
		wslay_event_send(ws->ctx);
	}
	conn_close(ws->c);
	ws_free(ws);
}

static void
ws_data(struct conn *c, void *arg)
{
	struct ws *ws = arg;

	/* Callbacks below may ws_close(): the free waits until wslay is off the stack. */
	ws->in_recv = true;
	if (wslay_event_recv(ws->ctx) != 0)
		notify_closed(ws, "protocol error"); /* wslay queued the close (1002, 1007, 1009) */
	if (!ws->released && !wslay_event_want_read(ws->ctx))
		notify_closed(ws, "closed");
	ws->in_recv = false;
	if (ws->released)
		finish(ws);
	else
		wslay_event_send(ws->ctx);
}

static void
ws_conn_closed(struct conn *c, void *arg, const char *reason)
{
	struct ws *ws = arg;

	ws->in_recv = true;
	notify_closed(ws, reason);
	ws->in_recv = false;
	if (ws->released)
		finish(ws);
}

struct ws *
ws_on_conn(struct conn *c, size_t max_msg, const struct ws_cb *cb, void *arg)
{
	struct ws *ws = xcalloc(1, sizeof *ws);

	ws->c = c;
	ws->cb = cb;
	ws->arg = arg;
	if (wslay_event_context_server_init(&ws->ctx, &callbacks, ws) != 0)
		fatal("out of memory");
	wslay_event_config_set_max_recv_msg_length(ws->ctx, max_msg);
	conn_set_cb(c, &ws_conn_cb, ws);
	return ws;
}

struct ws *
ws_start(struct http_conn *hc, const char *accept, const char *protocol, size_t max_msg,
	 const struct ws_cb *cb, void *arg)
{
	char headers[256];

	snprintf(headers, sizeof headers,
		 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s",
		 accept, protocol ? "Sec-WebSocket-Protocol: " : "", protocol ? protocol : "",
		 protocol ? "\r\n" : "");
	return ws_on_conn(http_take(hc, headers), max_msg, cb, arg);
}

void
ws_send(struct ws *ws, const char *data, size_t len)
{
	struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};

	if (ws->released || ws->dead)
		return;
	wslay_event_queue_msg(ws->ctx, &m);
	if (!ws->in_recv)
		wslay_event_send(ws->ctx);
}

void
ws_close(struct ws *ws, uint16_t code)
{
	if (ws->released)
		return;
	ws->released = true;
	ws->close_code = code;
	if (!ws->in_recv)
		finish(ws);
}

size_t
ws_pending(const struct ws *ws)
{
	return conn_out_pending(ws->c);
}

void
ws_pause(struct ws *ws, bool paused)
{
	conn_pause(ws->c, paused);
}

void
ws_detach(struct ws *ws)
{
	conn_detach(ws->c);
}

void
ws_attach(struct ws *ws, struct loop *loop)
{
	conn_attach(ws->c, loop);
}

const char *
ws_peer(const struct ws *ws)
{
	return ws->c->peer;
}
