/*
 * The buffer server's disk: an append-only journal (DATA/ring.log) of what changed in its
 * two rings, the MO parts waiting for the rest of their message, and the SMSC and link state,
 * one line per record in the SMS link's own frame format (link.c). It is read back at start
 * and then rewritten compactly; seed 001 keeps the array "in RAM, or the hard drive".
 *
 * Invariant: a record is handed to the kernel (write(2), and fdatasync with
 * storage.synchronous = full) before the caller tells anyone the change happened; a record
 * torn by a crash (no newline) is ignored when read back, as if it had not been written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "smsbuf.h"

#define COMPACT_AFTER 20000 /* records appended before the journal is rewritten */

struct parts {
	char *from, *to;
	unsigned total, have;
	char *text[256];
};

static void
parts_free(void *v)
{
	struct parts *p = v;
	free(p->from);
	free(p->to);
	for (unsigned i = 0; i < 256; i++)
		free(p->text[i]);
	free(p);
}

static int
append(struct smsbuf *sb, struct buf *b)
{
	const char *p = buf_head(b);
	size_t n = buf_used(b);

	while (n > 0) {
		ssize_t w = write(sb->jfd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_error("smsbuf: cannot write %s/ring.log: %s", sb->cfg->data_dir,
				  strerror(errno));
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	if (strcmp(sb->cfg->storage_sync, "full") == 0 && fdatasync(sb->jfd) < 0)
		return -1;
	sb->jrecords++;
	return 0;
}

static void
slot_record(struct buf *b, int dir, const struct sms_msg *m)
{
	link_begin(b, "SLOT");
	link_add(b, "dir", sms_dir_name(dir));
	link_add_u64(b, "seq", m->seq);
	link_add_u64(b, "state", (uint64_t)m->state);
	link_add(b, "from", m->from ? m->from : "");
	link_add(b, "to", m->to ? m->to : "");
	if (m->text)
		link_add(b, "text", m->text);
	if (m->ref)
		link_add(b, "ref", m->ref);
	if (m->extra)
		link_add(b, "extra", m->extra);
	link_end(b);
}

int
journal_slot(struct smsbuf *sb, int dir, const struct sms_msg *m)
{
	struct buf b = {0};
	int r;

	slot_record(&b, dir, m);
	r = append(sb, &b);
	buf_free(&b);
	return r;
}

int
journal_state(struct smsbuf *sb, int dir, const struct sms_msg *m, int state, const char *extra)
{
	struct buf b = {0};
	int r;

	link_begin(&b, "STATE");
	link_add(&b, "dir", sms_dir_name(dir));
	link_add_u64(&b, "seq", m->seq);
	link_add_u64(&b, "state", (uint64_t)state);
	if (extra)
		link_add(&b, "extra", extra);
	link_end(&b);
	r = append(sb, &b);
	buf_free(&b);
	return r;
}

static void
part_record(struct buf *b, const char *key, const struct parts *p, unsigned n)
{
	link_begin(b, "PART");
	link_add(b, "key", key);
	link_add(b, "from", p->from);
	link_add(b, "to", p->to);
	link_add_u64(b, "total", p->total);
	link_add_u64(b, "n", n);
	link_add(b, "text", p->text[n - 1]);
	link_end(b);
}

static struct parts *
parts_get(struct smsbuf *sb, const char *key, const char *from, const char *to, unsigned total)
{
	struct parts *p = hmap_get(&sb->parts, key);

	if (!p) {
		p = xcalloc(1, sizeof *p);
		p->from = xstrdup(from);
		p->to = xstrdup(to);
		p->total = total;
		hmap_put(&sb->parts, key, p);
	}
	return p;
}

int
journal_part(struct smsbuf *sb, const char *key, const char *from, const char *to, unsigned total,
	     unsigned n, const char *text, char **whole)
{
	struct parts *p = parts_get(sb, key, from, to, total);
	struct buf b = {0}, w = {0};
	int r;

	*whole = NULL;
	if (p->text[n - 1])
		return 0; /* the SMSC sent this part again: we had it */
	p->text[n - 1] = xstrdup(text);
	p->have++;
	if (p->have < p->total) {
		part_record(&b, key, p, n);
		r = append(sb, &b);
		buf_free(&b);
		if (r < 0) {
			free(p->text[n - 1]);
			p->text[n - 1] = NULL;
			p->have--;
		}
		return r;
	}
	/* The last part: the caller takes the joined text into the ring (its SLOT record says
	 * the parts are done: the parts of a message in the ring are never read back). */
	for (unsigned i = 0; i < p->total; i++)
		buf_puts(&w, p->text[i]);
	*whole = buf_steal(&w);
	parts_free(hmap_del(&sb->parts, key));
	return 0;
}

int
journal_whole(struct smsbuf *sb, const struct sms_msg *m, const char *key)
{
	struct buf b = {0};
	int r;

	/* One write: the message and the end of its parts together (a torn tail keeps both out). */
	slot_record(&b, SMS_MO, m);
	link_begin(&b, "PARTS-DONE");
	link_add(&b, "key", key);
	link_end(&b);
	r = append(sb, &b);
	buf_free(&b);
	return r;
}

void
journal_note(struct smsbuf *sb, const char *what, const char *text)
{
	struct buf b = {0};
	char **slot = strcmp(what, "smsc") == 0 ? &sb->note_smsc : &sb->note_link;

	free(*slot);
	*slot = xstrdup(text);
	link_begin(&b, "NOTE");
	link_add(&b, "what", what);
	link_add(&b, "text", text);
	link_end(&b);
	append(sb, &b);
	buf_free(&b);
	if (sb->jrecords > COMPACT_AFTER)
		journal_compact(sb);
}

/* ---- reading back ---- */

static void
replay(struct smsbuf *sb, const struct link_frame *fr)
{
	const char *dir = link_get(fr, "dir");
	struct sms_ring *r = dir && strcmp(dir, "mo") == 0 ? &sb->mo : &sb->mt;
	uint64_t seq = 0, state = 0, total = 0, n = 0;

	if (strcmp(fr->verb, "SLOT") == 0 && link_get_u64(fr, "seq", &seq) && seq &&
	    link_get_u64(fr, "state", &state)) {
		const char *from = link_get(fr, "from"), *to = link_get(fr, "to");
		const char *text = link_get(fr, "text"), *ref = link_get(fr, "ref");
		const char *extra = link_get(fr, "extra");
		ring_put(r, seq, (int)state, xstrdup(from ? from : ""), xstrdup(to ? to : ""),
			 text ? xstrdup(text) : NULL, ref ? xstrdup(ref) : NULL,
			 extra ? xstrdup(extra) : NULL);
	} else if (strcmp(fr->verb, "STATE") == 0 && link_get_u64(fr, "seq", &seq) &&
		   link_get_u64(fr, "state", &state)) {
		struct sms_msg *m = ring_find(r, seq);
		const char *extra = link_get(fr, "extra");
		if (m) {
			if (extra) {
				free(m->extra);
				m->extra = xstrdup(extra);
			}
			ring_set(r, m, (int)state);
		}
	} else if (strcmp(fr->verb, "PART") == 0 && link_get(fr, "key") &&
		   link_get_u64(fr, "total", &total) && link_get_u64(fr, "n", &n) && total >= 2 &&
		   total <= 255 && n >= 1 && n <= total && link_get(fr, "text")) {
		const char *from = link_get(fr, "from"), *to = link_get(fr, "to");
		struct parts *p = parts_get(sb, link_get(fr, "key"), from ? from : "", to ? to : "",
					    (unsigned)total);
		if (!p->text[n - 1]) {
			p->text[n - 1] = xstrdup(link_get(fr, "text"));
			p->have++;
		}
	} else if (strcmp(fr->verb, "PARTS-DONE") == 0 && link_get(fr, "key")) {
		struct parts *p = hmap_del(&sb->parts, link_get(fr, "key"));
		if (p)
			parts_free(p);
	} else if (strcmp(fr->verb, "NOTE") == 0 && link_get(fr, "what") && link_get(fr, "text")) {
		char **slot =
		    strcmp(link_get(fr, "what"), "smsc") == 0 ? &sb->note_smsc : &sb->note_link;
		free(*slot);
		*slot = xstrdup(link_get(fr, "text"));
	}
}

static int
read_back(struct smsbuf *sb, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct buf in = {0};
	char chunk[65536];
	ssize_t n;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		buf_append(&in, chunk, (size_t)n);
	close(fd);
	while (buf_used(&in) > 0) {
		struct link_frame fr;
		char why[128];
		long k = link_parse(buf_head(&in), buf_used(&in), &fr, why, sizeof why);
		if (k == 0)
			break; /* a torn last record: it was never confirmed to anyone */
		if (k < 0) {
			const char *nl = memchr(buf_head(&in), '\n', buf_used(&in));
			log_warn("smsbuf: %s: a bad record skipped (%s)", path, why);
			if (!nl)
				break;
			buf_consume(&in, (size_t)(nl - buf_head(&in)) + 1);
			continue;
		}
		buf_consume(&in, (size_t)k);
		replay(sb, &fr);
		link_frame_free(&fr);
	}
	buf_free(&in);
	return 0;
}

/* Rewrites the journal as what it says now: a slot per message, the parts, the notes. */
int
journal_compact(struct smsbuf *sb)
{
	char path[4096], tmp[4200];
	struct buf b = {0};
	const char *k;
	void *v;
	int fd, r = 0;

	snprintf(path, sizeof path, "%s/ring.log", sb->cfg->data_dir);
	snprintf(tmp, sizeof tmp, "%s.new", path);
	for (int dir = SMS_MT; dir <= SMS_MO; dir++) {
		struct sms_ring *ring = dir == SMS_MT ? &sb->mt : &sb->mo;
		for (unsigned i = 0; i < ring->size; i++)
			if (ring->slot[i].seq)
				slot_record(&b, dir, &ring->slot[i]);
	}
	for (size_t i = 0; hmap_next(&sb->parts, &i, &k, &v);) {
		struct parts *p = v;
		for (unsigned n = 1; n <= p->total; n++)
			if (p->text[n - 1])
				part_record(&b, k, p, n);
	}
	for (int i = 0; i < 2; i++) {
		const char *t = i ? sb->note_link : sb->note_smsc;
		if (!t)
			continue;
		link_begin(&b, "NOTE");
		link_add(&b, "what", i ? "link" : "smsc");
		link_add(&b, "text", t);
		link_end(&b);
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, buf_head(&b), buf_used(&b)) != (ssize_t)buf_used(&b) ||
	    fsync(fd) < 0 || rename(tmp, path) < 0) {
		log_error("smsbuf: cannot rewrite %s: %s", path, strerror(errno));
		r = -1;
	}
	if (fd >= 0)
		close(fd);
	buf_free(&b);
	if (r == 0) {
		if (sb->jfd >= 0)
			close(sb->jfd);
		sb->jfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		sb->jrecords = 0;
		if (sb->jfd < 0)
			r = -1;
	}
	return r;
}

int
journal_open(struct smsbuf *sb, bool write, char *err, size_t errlen)
{
	char path[4096];

	snprintf(path, sizeof path, "%s/ring.log", sb->cfg->data_dir);
	sb->jfd = -1;
	if (read_back(sb, path, err, errlen) < 0)
		return -1;
	if (!write)
		return 0;
	if (journal_compact(sb) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void
journal_close(struct smsbuf *sb)
{
	if (sb->jfd >= 0)
		close(sb->jfd);
	sb->jfd = -1;
	hmap_free_all(&sb->parts, parts_free);
	free(sb->note_smsc);
	free(sb->note_link);
}
