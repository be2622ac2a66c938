/*
 * upload_http: the HTTP side of XEP-0363 (section 5) on batond's listener, at
 * /upload/<secret>/<name>: a PUT of exactly the slot's size stores the file (written on the
 * storage thread, which already waits on the disk), GET and HEAD serve it, OPTIONS answers
 * CORS preflights of web clients.
 *
 * Invariant: a slot takes one PUT (it is claimed before the body is written and released only
 * if writing fails), and a file is served with its declared type only when that type cannot
 * run script in the server's origin; anything else is a download (attachment, nosniff).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upload_int.h"

/* Any origin may fetch: the secret in the URL is the only authority, no cookies are used. */
#define CORS                                                                                       \
	"Access-Control-Allow-Origin: *\r\n"                                                       \
	"Access-Control-Allow-Methods: GET, HEAD, PUT, OPTIONS\r\n"                                \
	"Access-Control-Allow-Headers: Content-Type\r\n"                                           \
	"Access-Control-Max-Age: 86400\r\n"

/* Types shown inline: media and plain text, none that a browser would run as a page. */
static const char *const inline_types[] = {
    "image/png",  "image/jpeg", "image/gif",  "image/webp", "image/avif", "audio/ogg",
    "audio/opus", "audio/mpeg", "audio/mp4",  "audio/aac",  "audio/webm", "audio/wav",
    "audio/flac", "video/mp4",	"video/webm", "video/ogg",  "text/plain", NULL,
};

size_t
upload_body_limit(const struct http_request *req)
{
	if (!upload.cfg || strcmp(req->method, "PUT") != 0 ||
	    strncmp(req->path, "/upload/", 8) != 0)
		return 0;
	return upload.cfg->upload_max_size ? upload.cfg->upload_max_size : 1;
}

static void
answer(struct http_conn *hc, int status, const char *text)
{
	http_respond(hc, status, "Content-Type: text/plain; charset=utf-8\r\n" CORS, text,
		     strlen(text));
}

/* The percent-decoded s (a new string), or NULL if it is malformed or holds a NUL. */
static char *
urldec(const char *s)
{
	struct buf b = {0};

	for (; *s; s++) {
		char c = *s;
		if (c == '%') {
			int hi = hex_digit(s[1]), lo = hi < 0 ? -1 : hex_digit(s[2]);
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				goto fail;
			c = (char)(hi * 16 + lo);
			s += 2;
		}
		buf_append(&b, &c, 1);
	}
	if (!b.data)
		buf_puts(&b, "");
	return buf_steal(&b);
fail:
	buf_free(&b);
	return NULL;
}

/*
 * Splits path /upload/<secret>/<name> and finds its entry (the name must be the slot's): a
 * copy, or NULL. Expired entries the sweep has not reached yet are not found either.
 */
static struct upload_file *
lookup(const char *path)
{
	const char *secret = path + 8, *slash = strchr(secret, '/');
	char key[UPLOAD_SECRET_LEN + 1], *name;
	struct upload_file *f, *copy = NULL;

	if (!slash || slash - secret != UPLOAD_SECRET_LEN)
		return NULL;
	memcpy(key, secret, UPLOAD_SECRET_LEN);
	key[UPLOAD_SECRET_LEN] = '\0';
	name = urldec(slash + 1);
	if (!name)
		return NULL;
	pthread_mutex_lock(&upload.lock);
	f = hmap_get(&upload.files, key);
	if (f && strcmp(f->name, name) == 0 && (f->expires > wall_ms() || f->state == UP_PUTTING))
		copy = upload_file_copy(f);
	pthread_mutex_unlock(&upload.lock);
	free(name);
	return copy;
}

/* ---- PUT ---- */

struct put_job {
	struct store_job job;
	struct upload_file *f; /* what the .meta will say: stored, with the file's expiry */
	struct buf body;
	struct http_conn *hc;
};

static int
put_run(struct store *st, struct store_job *job)
{
	struct put_job *pj = container_of(job, struct put_job, job);

	/* The data first, then the .meta that makes it served: a crash in between loses the
	 * upload (the client got no answer and may retry the slot), never serves half of it. */
	if (upload_data_write(pj->f->secret, buf_head(&pj->body), buf_used(&pj->body)) < 0 ||
	    upload_meta_write(pj->f) < 0)
		return STORE_EIO;
	return 0;
}

static void
put_done(struct store_job *job)
{
	struct put_job *pj = container_of(job, struct put_job, job);
	struct upload_file *f;

	pthread_mutex_lock(&upload.lock);
	f = hmap_get(&upload.files, pj->f->secret);
	if (f) {
		f->state = job->result == 0 ? UP_STORED : UP_SLOT;
		if (job->result == 0)
			f->expires = pj->f->expires;
	}
	pthread_mutex_unlock(&upload.lock);
	if (job->result == 0) {
		log_info("upload: %.8s... of %s stored: %zu bytes", pj->f->secret, pj->f->owner,
			 buf_used(&pj->body));
		/* RFC 9110 9.3.4: a new resource is 201 Created. */
		http_respond(pj->hc, 201, CORS, NULL, 0);
	} else {
		answer(pj->hc, 500, "the file could not be stored\n");
	}
	buf_free(&pj->body);
	upload_file_free(pj->f);
	free(pj);
}

static void
put(struct worker *w, struct http_conn *hc, struct http_request *req, struct upload_file *f)
{
	const char *cl = http_header(req, "content-length");
	size_t len = buf_used(&req->body);
	struct upload_file *e;
	struct put_job *pj;

	if (!cl) {
		answer(hc, 411, "Content-Length is required\n");
		goto out;
	}
	if (f->state != UP_SLOT) {
		answer(hc, 403, "this slot was used already\n");
		goto out;
	}
	if (len > f->size) {
		answer(hc, 413, "the body is larger than the slot's size\n");
		goto out;
	}
	if (len < f->size) {
		answer(hc, 400, "the body is smaller than the slot's size\n");
		goto out;
	}
	/* Claim the slot; another PUT may have claimed it since lookup(). */
	pthread_mutex_lock(&upload.lock);
	e = hmap_get(&upload.files, f->secret);
	bool mine = e && e->state == UP_SLOT;
	if (mine)
		e->state = UP_PUTTING;
	pthread_mutex_unlock(&upload.lock);
	if (!mine) {
		answer(hc, 403, "this slot was used already\n");
		goto out;
	}
	pj = xcalloc(1, sizeof *pj);
	pj->f = f;
	pj->f->state = UP_STORED;
	pj->f->expires = wall_ms() + (int64_t)upload.cfg->upload_expiry;
	pj->body = req->body; /* taken: the request is answered only in put_done */
	req->body = (struct buf){0};
	pj->hc = hc;
	pj->job.run = put_run;
	pj->job.done = put_done;
	pj->job.atomic = true; /* no SQL at all */
	worker_store(w, &pj->job);
	return;
out:
	upload_file_free(f);
}

/* ---- GET and HEAD ---- */

static bool
type_inline(const char *type)
{
	size_t n = strcspn(type, "; ");

	for (const char *const *t = inline_types; *t; t++)
		if (strlen(*t) == n && strncasecmp(type, *t, n) == 0)
			return true;
	return false;
}

static void
get(struct http_conn *hc, struct http_request *req, struct upload_file *f)
{
	bool head = strcmp(req->method, "HEAD") == 0;
	bool show = type_inline(f->type);
	char path[PATH_MAX];
	struct buf hdr = {0}, body = {0};
	int fd = -1;

	if (f->state != UP_STORED) {
		answer(hc, 404, "not found\n");
		goto out;
	}
	upload_data_path(f->secret, path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_error("upload: %s: %s", path, strerror(errno));
		answer(hc, 404, "not found\n");
		goto out;
	}
	if (!head) {
		/* Files are at most upload.max_size and mostly in the page cache: read at once. */
		size_t want = (size_t)f->size;
		char *p = buf_space(&body, want + 1);
		size_t got = 0;
		while (got < want) {
			ssize_t n = read(fd, p + got, want - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (got != want) {
			log_error("upload: %s: short read", path);
			answer(hc, 500, "the file could not be read\n");
			goto out;
		}
		buf_commit(&body, got);
	}
	buf_printf(&hdr, "Content-Type: %s\r\n", show ? f->type : "application/octet-stream");
	buf_printf(&hdr, "Content-Disposition: %s; filename*=UTF-8''",
		   show ? "inline" : "attachment");
	upload_urlenc(&hdr, f->name);
	buf_puts(&hdr, "\r\nX-Content-Type-Options: nosniff\r\n"
		       "Content-Security-Policy: default-src 'none'; sandbox\r\n"
		       "Cache-Control: private, max-age=86400\r\n" CORS);
	/* HEAD: the GET's headers (Content-Length too), no body (http_respond leaves it out). */
	http_respond(hc, 200, buf_head(&hdr), head ? "" : buf_head(&body),
		     head ? (size_t)f->size : buf_used(&body));
out:
	if (fd >= 0)
		close(fd);
	buf_free(&hdr);
	buf_free(&body);
	upload_file_free(f);
}

void
upload_http(struct worker *w, struct http_conn *hc, struct http_request *req)
{
	struct upload_file *f;

	if (!upload.cfg) {
		answer(hc, 404, "file upload is not enabled\n");
		return;
	}
	if (strcmp(req->method, "OPTIONS") == 0) { /* a CORS preflight (Fetch standard) */
		http_respond(hc, 204, CORS, NULL, 0);
		return;
	}
	if (strcmp(req->method, "PUT") != 0 && strcmp(req->method, "GET") != 0 &&
	    strcmp(req->method, "HEAD") != 0) {
		http_respond(hc, 405, "Allow: GET, HEAD, PUT, OPTIONS\r\n" CORS, NULL, 0);
		return;
	}
	f = lookup(req->path);
	if (!f) {
		answer(hc, 404, "not found\n");
		return;
	}
	if (strcmp(req->method, "PUT") == 0)
		put(w, hc, req, f);
	else
		get(hc, req, f);
}
