/*
 * web_int: what the files of the web module share: the handlers the router calls and
 * the checks every handler applies the same way.
 */
#ifndef BATON_WEB_INT_H
#define BATON_WEB_INT_H

#include "../net/net.h"
#include "../xml/xml.h"
#include "../xmpp/xmpp.h"
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

#endif
