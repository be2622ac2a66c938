/*
 * web_int: what the files of the web module share: the handlers the router calls and
 * the checks every handler applies the same way.
 */
#ifndef BATON_WEB_INT_H
#define BATON_WEB_INT_H

#include "../net/net.h"
#include "../xml/xml.h"
#include "../xmpp/xmpp.h"
#include "../sms/sms.h"
#include "web.h"

#define NS_FRAMING  "urn:ietf:params:xml:ns:xmpp-framing"
#define NS_HTTPBIND "http://jabber.org/protocol/httpbind"
#define NS_XBOSH    "urn:xmpp:xbosh"
#define NS_CLIENT   "jabber:client"
#define NS_STREAM   "http://etherx.jabber.org/streams"

/* Each takes the request: answers it, now or later, or takes the connection. */
void xws_handle(struct worker *w, struct http_conn *hc, struct http_request *req);
void bosh_handle(struct worker *w, struct http_conn *hc, struct http_request *req);
void m_handle(struct worker *w, struct http_conn *hc, struct http_request *req);

/*
 * Session objects (a BOSH session, a /m/ web session) found by a key from any worker: the
 * registry is the one structure the workers share (under a mutex); it says on which
 * worker each object lives, or that it is moving (NULL).
 */
void web_obj_put(const char *key, void *obj, struct worker *w);
void web_obj_move(const char *key, struct worker *w);
void web_obj_del(const char *key);
typedef void (*web_obj_fn)(struct worker *w, void *obj, struct http_conn *hc,
			   struct http_request *req, void *arg);
/*
 * Runs fn(w, obj, hc, req, arg) on the worker of the object key, obj NULL if there is
 * none; the connection moves there first (and waits while the object moves).
 */
void web_dispatch(struct worker *w, const char *key, struct http_conn *hc, struct http_request *req,
		  web_obj_fn fn, void *arg);

/* Is the request's Origin (if any) one of http.origins? */
bool web_origin_ok(const struct config *cfg, const struct http_request *req);
/* Do streams from peer count as encrypted (http.secure)? */
bool web_secure(const struct config *cfg, const char *peer);
/* Answers with a short plain-text body. */
void web_error(struct http_conn *hc, int status, const char *text);
/* Appends the stream header the c2s parser expects, from the attributes of an <open/> or a BOSH
 * <body/>. */
void web_stream_header(struct buf *out, const char *to, const char *version);

/* ---- form.c ---- */

/* Appends s HTML-escaped (for text and quoted attribute values alike). */
void web_html(struct buf *b, const char *s);
/* Appends s percent-encoded for a query string. */
void web_urlenc(struct buf *b, const char *s);
/*
 * The decoded value of name in application/x-www-form-urlencoded data (a query or a
 * form body); NULL if absent, not UTF-8, or holding characters XML cannot carry
 * (RFC 6120 11.1). Caller frees.
 */
char *web_form_get(const char *data, size_t len, const char *name);
/* The value of cookie name in the request's Cookie header (RFC 6265 5.4), or NULL. */
char *web_cookie_get(const struct http_request *req, const char *name);
/* The token of form under secret: 32 hex digits, different for every form. */
void web_form_token(const char *secret, const char *form, char out[33]);
bool web_token_ok(const char *secret, const char *form, const char *given);

#endif
