/*
 * upload_iq: the XEP-0363 service at upload.<domain>: disco (section 3) and slot requests
 * (section 4). A slot is reserved in the index (counting against the user's quota at once)
 * and its .meta written on the storage thread before the slot is answered, so a slot a
 * client holds survives a restart.
 *
 * Invariant: only local users (a bare JID of our domain, stamped by their session) get slots;
 * every request gets one answer, a slot or an error of section 4.2.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upload_int.h"

static bool
is_type(const struct xml_node *st, const char *type)
{
	const char *t = xml_attr(st, "type");
	return t && strcmp(t, type) == 0;
}

static void
reply(struct worker *w, const struct xml_node *st, struct xml_node *payload)
{
	struct xml_node *r = stanza_new("iq", xml_attr(st, "to"), xml_attr(st, "from"), "result",
					xml_attr(st, "id"));
	if (payload)
		xml_add_child(r, payload);
	route(w, r);
}

/* XEP-0030 section 3.1 with the XEP-0128 form of XEP-0363 section 3 (max-file-size). */
static void
disco_info(struct worker *w, const struct xml_node *st)
{
	struct xml_node *q = xml_el_new("query", NS_DISCO_INFO);
	struct xml_node *id = xml_add_el(q, "identity", NS_DISCO_INFO);
	struct xml_node *x, *f;
	char max[32];

	xml_set_attr(id, "category", "store");
	xml_set_attr(id, "type", "file");
	xml_set_attr(id, "name", "HTTP File Upload");
	xml_set_attr(xml_add_el(q, "feature", NS_DISCO_INFO), "var", NS_DISCO_INFO);
	xml_set_attr(xml_add_el(q, "feature", NS_DISCO_INFO), "var", NS_UPLOAD);
	x = xml_add_el(q, "x", "jabber:x:data");
	xml_set_attr(x, "type", "result");
	f = xml_add_el(x, "field", "jabber:x:data");
	xml_set_attr(f, "var", "FORM_TYPE");
	xml_set_attr(f, "type", "hidden");
	xml_add_text(xml_add_el(f, "value", "jabber:x:data"), NS_UPLOAD, strlen(NS_UPLOAD));
	f = xml_add_el(x, "field", "jabber:x:data");
	xml_set_attr(f, "var", "max-file-size");
	snprintf(max, sizeof max, "%zu", upload.cfg->upload_max_size);
	xml_add_text(xml_add_el(f, "value", "jabber:x:data"), max, strlen(max));
	reply(w, st, q);
}

/*
 * A file name we can keep and put in a URL path segment: 1..255 bytes, no '/' or '\\' (no
 * path of its own), no control characters (the .meta is line-based; headers must not split),
 * not "." or "..". XML already made it valid UTF-8.
 */
static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > UPLOAD_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '/' || *p == '\\')
			return false;
	return true;
}

/* A media type (RFC 9110 8.3.1) we can repeat in a header: type/subtype[;params], printable. */
static bool
type_ok(const char *s)
{
	size_t n = strlen(s);
	const char *slash = strchr(s, '/');

	if (n == 0 || n > UPLOAD_TYPE_MAX || !slash || slash == s || !slash[1])
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
			return false;
	return true;
}

static bool
parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return false;
	}
	*out = v;
	return true;
}

/* The slot's URL: base/upload/<secret>/<name percent-encoded>. */
static char *
slot_url(const struct upload_file *f)
{
	struct buf b = {0};

	buf_printf(&b, "%s/upload/%s/", upload.base, f->secret);
	upload_urlenc(&b, f->name);
	return buf_steal(&b);
}

struct slot_job {
	struct store_job job;
	struct upload_file *f; /* a copy of the index entry */
	struct xml_node *st;   /* the request */
};

static int
slot_run(struct store *st, struct store_job *job)
{
	return upload_meta_write(container_of(job, struct slot_job, job)->f) < 0 ? STORE_EIO : 0;
}

static void
slot_done(struct store_job *job)
{
	struct slot_job *sj = container_of(job, struct slot_job, job);
	struct worker *w = worker_current();

	if (job->result != 0) {
		pthread_mutex_lock(&upload.lock);
		upload_file_free(hmap_del(&upload.files, sj->f->secret));
		pthread_mutex_unlock(&upload.lock);
		route_error(w, sj->st, "wait", "internal-server-error",
			    "the slot could not be kept");
	} else {
		/* XEP-0363 section 4.1; the PUT needs no headers: the secret is the authority. */
		struct xml_node *slot = xml_el_new("slot", NS_UPLOAD);
		char *url = slot_url(sj->f);
		xml_set_attr(xml_add_el(slot, "put", NS_UPLOAD), "url", url);
		xml_set_attr(xml_add_el(slot, "get", NS_UPLOAD), "url", url);
		free(url);
		log_info("upload: slot %.8s... for %s: %" PRIu64 " bytes", sj->f->secret,
			 sj->f->owner, sj->f->size);
		reply(w, sj->st, slot);
	}
	xml_free(sj->st);
	upload_file_free(sj->f);
	free(sj);
}

/* XEP-0363 section 4.2: the request is over max-file-size. */
static void
too_large(struct worker *w, const struct xml_node *st)
{
	struct xml_node *r, *err, *ftl;
	char text[96], max[32];

	snprintf(max, sizeof max, "%zu", upload.cfg->upload_max_size);
	snprintf(text, sizeof text, "File too large. The maximum file size is %s bytes", max);
	r = stanza_error_reply(st, "modify", "not-acceptable", text);
	err = xml_child(r, "error", NULL);
	ftl = xml_add_el(err, "file-too-large", NS_UPLOAD);
	xml_add_text(xml_add_el(ftl, "max-file-size", NS_UPLOAD), max, strlen(max));
	route(w, r);
}

static void
request(struct worker *w, struct xml_node *st, const struct xml_node *req, const struct jid *from)
{
	const char *name = xml_attr(req, "filename");
	const char *type = xml_attr(req, "content-type");
	struct upload_file f = {0};
	struct slot_job *sj;
	uint64_t used, quota = upload.cfg->upload_quota;
	unsigned char raw[UPLOAD_SECRET_LEN / 2];
	char text[128];

	if (!from->local || strcmp(from->domain, upload.cfg->domain) != 0) {
		route_error(w, st, "cancel", "not-allowed", "only local users may upload files");
		goto out;
	}
	if (!name || !name_ok(name)) {
		route_error(w, st, "modify", "bad-request",
			    "the filename is missing or not allowed");
		goto out;
	}
	if (!parse_size(xml_attr(req, "size"), &f.size)) {
		route_error(w, st, "modify", "bad-request", "size must be a number of bytes");
		goto out;
	}
	if (type && *type && !type_ok(type)) {
		route_error(w, st, "modify", "bad-request", "the content-type is not a media type");
		goto out;
	}
	if (f.size > upload.cfg->upload_max_size) {
		too_large(w, st);
		goto out;
	}
	f.owner = jid_bare(from);
	f.name = (char *)name;
	f.type = (char *)(type && *type ? type : "application/octet-stream");
	f.created = wall_ms();
	f.expires = f.created + (int64_t)(upload.cfg->upload_expiry < UPLOAD_SLOT_TTL_MS
					      ? upload.cfg->upload_expiry
					      : UPLOAD_SLOT_TTL_MS);
	f.state = UP_SLOT;
	rand_bytes(raw, sizeof raw);
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(f.secret + 2 * i, 3, "%02x", raw[i]);

	/* The quota counts the slot from now: two requests at once cannot both squeeze in. */
	pthread_mutex_lock(&upload.lock);
	used = upload_used(f.owner, f.created);
	if (quota && used + f.size > quota) {
		pthread_mutex_unlock(&upload.lock);
		snprintf(text, sizeof text,
			 "Quota reached: %" PRIu64 " of %" PRIu64 " bytes in use", used, quota);
		route_error(w, st, "wait", "resource-constraint", text);
		free(f.owner);
		goto out;
	}
	hmap_put(&upload.files, f.secret, upload_file_copy(&f));
	pthread_mutex_unlock(&upload.lock);

	sj = xcalloc(1, sizeof *sj);
	sj->f = upload_file_copy(&f);
	sj->st = st;
	sj->job.run = slot_run;
	sj->job.done = slot_done;
	sj->job.atomic = true; /* no SQL at all */
	free(f.owner);
	worker_store(w, &sj->job);
	return;
out:
	xml_free(st);
}

static void
upload_route(struct worker *w, struct xml_node *st, const struct jid *to)
{
	struct xml_node *q = xml_child(st, NULL, NULL);
	struct jid from;

	if (!stanza_is(st, "iq")) {
		if (stanza_is(st, "message"))
			route_error(w, st, "cancel", "service-unavailable", NULL);
		xml_free(st);
		return;
	}
	if (!(is_type(st, "get") || is_type(st, "set")) || !q) {
		xml_free(st);
		return;
	}
	if (to->local || to->resource) {
		route_error(w, st, "cancel", "item-not-found", NULL);
		xml_free(st);
		return;
	}
	if (is_type(st, "get") && strcmp(q->ns, NS_DISCO_INFO) == 0 && !xml_attr(q, "node")) {
		disco_info(w, st);
	} else if (is_type(st, "get") && strcmp(q->ns, NS_DISCO_ITEMS) == 0) {
		reply(w, st, xml_el_new("query", NS_DISCO_ITEMS));
	} else if (is_type(st, "get") && strcmp(q->ns, NS_UPLOAD) == 0 &&
		   strcmp(q->name, "request") == 0 && jid_parse(xml_attr(st, "from"), &from) == 0) {
		request(w, st, q, &from); /* takes st */
		jid_free(&from);
		return;
	} else {
		route_error(w, st, "cancel", "service-unavailable", NULL);
	}
	xml_free(st);
}

const struct xmpp_service upload_service = {
    .prefix = "upload",
    .route = upload_route,
    .start_worker = upload_start_worker,
    .free_worker = upload_free_worker,
};
