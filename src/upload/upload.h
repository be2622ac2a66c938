/*
 * upload: XEP-0363 HTTP File Upload. A service at upload.<domain> hands local users slots
 * (a PUT and a GET URL on batond's own HTTP listener, under /upload/), and the HTTP side
 * stores the file under DATA/upload/ and serves it until upload.expiry.
 *
 * Invariant: a slot's secret (192 random bits, the only thing that authorises a PUT or a GET)
 * admits one successful PUT; what is served was completely written and renamed into place.
 */
#ifndef BATON_UPLOAD_H
#define BATON_UPLOAD_H

#include "../core/core.h"

struct worker;
struct http_conn;
struct http_request;

/*
 * Reads what DATA/upload/ keeps from earlier runs and registers the service (unless
 * upload.enabled is false or http.listen is empty), before server_start(). Returns 0, or -1
 * with a one-line reason in err (the directory cannot be made or read).
 */
int upload_register(const struct config *cfg, char *err, size_t errlen);
/* Answers a request for a path under /upload/ (web.c's router hands it over). */
void upload_http(struct worker *w, struct http_conn *hc, struct http_request *req);
/* The body limit of req once its head is read: upload.max_size for a PUT to /upload/, else 0. */
size_t upload_body_limit(const struct http_request *req);

#endif
