/*
 * upload: the index of XEP-0363 slots and files and how they are kept on disk: one
 * DATA/upload/<secret>.meta per slot or file (what it is, whose, until when) and, once
 * uploaded, <secret>.data. Files and their metadata live side by side rather than in the
 * database so that one directory entry pair is the whole truth about an upload: removing
 * them removes it, there is no row that can outlive its file or file its row, and the
 * database schema (which other features migrate) stays untouched.
 *
 * Invariant: a .data file is served only while its .meta says "stored", and the .meta says so
 * only after the .data was fsynced and renamed into place; anything else found at start (a
 * temporary file, a .data without a stored .meta) is a crash's leftover and is removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "upload_int.h"

#define META_MAGIC   "baton-upload 1" /* first line of every .meta: format and version */
#define META_MAX     4096	      /* a .meta larger than this is not ours */
#define SWEEP_MIN_MS 500
#define SWEEP_MAX_MS (60 * 1000)
#define SWEEP_BATCH  256 /* files removed per sweep job */

struct upload_ctx upload = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct timer sweep_timer;

struct upload_file *
upload_file_copy(const struct upload_file *f)
{
	struct upload_file *c = xmalloc(sizeof *c);

	*c = *f;
	c->owner = xstrdup(f->owner);
	c->name = xstrdup(f->name);
	c->type = xstrdup(f->type);
	return c;
}

void
upload_file_free(struct upload_file *f)
{
	if (!f)
		return;
	free(f->owner);
	free(f->name);
	free(f->type);
	free(f);
}

static void
file_free_void(void *p)
{
	upload_file_free(p);
}

uint64_t
upload_used(const char *owner, int64_t now)
{
	const char *k;
	void *v;
	uint64_t sum = 0;

	/* O(files): the quota bounds how many a user has, and requests are rare next to reads. */
	for (size_t i = 0; hmap_next(&upload.files, &i, &k, &v);) {
		const struct upload_file *f = v;
		if (strcmp(f->owner, owner) == 0 && (f->expires > now || f->state == UP_PUTTING))
			sum += f->size;
	}
	return sum;
}

/* ---- disk ---- */

static void
path_of(const char *secret, const char *ext, char *out, size_t n)
{
	snprintf(out, n, "%s/%s.%s", upload.dir, secret, ext);
}

void
upload_data_path(const char *secret, char *out, size_t n)
{
	path_of(secret, "data", out, n);
}

static int
fsync_dir(void)
{
	int fd = open(upload.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Writes data to <secret>.<ext> through <secret>.<ext>.tmp: created anew, fsynced, renamed. */
static int
write_atomic(const char *secret, const char *ext, const char *data, size_t len)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int fd;

	path_of(secret, ext, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp); /* a crashed attempt's leftover */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		goto fail;
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			goto fail;
		}
		data += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		close(fd);
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) < 0)
		goto fail;
	return 0;
fail:
	log_error("upload: %s: %s", tmp, strerror(errno));
	unlink(tmp);
	return -1;
}

int
upload_meta_write(const struct upload_file *f)
{
	struct buf b = {0};
	int rc;

	buf_printf(&b,
		   META_MAGIC "\nowner %s\nname %s\ntype %s\nsize %" PRIu64 "\ncreated %" PRId64
			      "\nexpires %" PRId64 "\nstored %d\n",
		   f->owner, f->name, f->type, f->size, f->created, f->expires,
		   f->state == UP_STORED);
	rc = write_atomic(f->secret, "meta", buf_head(&b), buf_used(&b));
	buf_free(&b);
	if (rc == 0 && fsync_dir() < 0)
		log_warn("upload: fsync %s: %s", upload.dir, strerror(errno));
	return rc;
}

int
upload_data_write(const char *secret, const char *data, size_t len)
{
	/* The directory is fsynced by the .meta that follows (upload_meta_write). */
	return write_atomic(secret, "data", data, len);
}

void
upload_remove(const char *secret)
{
	char path[PATH_MAX];

	/* The .meta first: a crash in between leaves a .data that the next start removes. */
	path_of(secret, "meta", path, sizeof path);
	unlink(path);
	path_of(secret, "data", path, sizeof path);
	unlink(path);
}

/* ---- start-up: reading back what earlier runs left ---- */

static bool
is_secret(const char *s, size_t n)
{
	if (n != UPLOAD_SECRET_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The value of "key value" line key in text, as a new string, or NULL. */
static char *
meta_field(const char *text, const char *key)
{
	size_t kl = strlen(key);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		if (strncmp(l, key, kl) == 0 && l[kl] == ' ')
			return xstrndup(l + kl + 1, strcspn(l + kl + 1, "\n"));
	}
	return NULL;
}

static bool
parse_i64(const char *s, int64_t *out)
{
	char *end;

	if (!s || !*s)
		return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* Reads <secret>.meta into a new entry, or NULL if it is unreadable or not ours. */
static struct upload_file *
meta_read(const char *secret)
{
	char path[PATH_MAX], text[META_MAX + 1];
	char *size = NULL, *created = NULL, *expires = NULL, *stored = NULL;
	struct upload_file *f = xcalloc(1, sizeof *f);
	int64_t sz = -1, st = -1;
	ssize_t n;
	int fd;

	path_of(secret, "meta", path, sizeof path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	n = read(fd, text, META_MAX);
	close(fd);
	if (n < 0 || n == META_MAX)
		goto fail;
	text[n] = '\0';
	if (strncmp(text, META_MAGIC "\n", sizeof META_MAGIC) != 0)
		goto fail;
	snprintf(f->secret, sizeof f->secret, "%s", secret);
	f->owner = meta_field(text, "owner");
	f->name = meta_field(text, "name");
	f->type = meta_field(text, "type");
	size = meta_field(text, "size");
	created = meta_field(text, "created");
	expires = meta_field(text, "expires");
	stored = meta_field(text, "stored");
	if (!f->owner || !f->name || !f->type || !parse_i64(size, &sz) || sz < 0 ||
	    !parse_i64(created, &f->created) || !parse_i64(expires, &f->expires) ||
	    !parse_i64(stored, &st))
		goto fail;
	f->size = (uint64_t)sz;
	f->state = st == 1 ? UP_STORED : UP_SLOT;
	free(size);
	free(created);
	free(expires);
	free(stored);
	return f;
fail:
	free(size);
	free(created);
	free(expires);
	free(stored);
	upload_file_free(f);
	return NULL;
}

/*
 * Fills the index from the directory: every .meta that reads back becomes a slot or a file;
 * then everything else goes: temporary files, .data files of no stored .meta, .meta files
 * that do not read back.
 */
static int
scan(char *err, size_t errlen)
{
	DIR *d = opendir(upload.dir);
	struct dirent *e;
	size_t slots = 0, files = 0;

	if (!d) {
		snprintf(err, errlen, "%s: %s", upload.dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		const char *dot = strchr(e->d_name, '.');
		struct upload_file *f;
		if (!dot || strcmp(dot, ".meta") != 0 ||
		    !is_secret(e->d_name, (size_t)(dot - e->d_name)))
			continue;
		char secret[UPLOAD_SECRET_LEN + 1];
		snprintf(secret, sizeof secret, "%.*s", (int)(dot - e->d_name), e->d_name);
		f = meta_read(secret);
		if (!f) {
			log_warn("upload: %s/%s is unreadable: removed", upload.dir, e->d_name);
			upload_remove(secret);
			continue;
		}
		if (f->state == UP_STORED) {
			char path[PATH_MAX];
			struct stat sb;
			upload_data_path(secret, path, sizeof path);
			if (stat(path, &sb) < 0 || (uint64_t)sb.st_size != f->size) {
				log_warn("upload: %s lost its file: removed", secret);
				upload_remove(secret);
				upload_file_free(f);
				continue;
			}
			files++;
		} else {
			slots++;
		}
		hmap_put(&upload.files, secret, f);
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		const char *dot = strchr(e->d_name, '.');
		const struct upload_file *f;
		char path[PATH_MAX];
		if (e->d_name[0] == '.' || (dot && strcmp(dot, ".meta") == 0))
			continue;
		if (dot && strcmp(dot, ".data") == 0 &&
		    is_secret(e->d_name, (size_t)(dot - e->d_name))) {
			char secret[UPLOAD_SECRET_LEN + 1];
			snprintf(secret, sizeof secret, "%.*s", (int)(dot - e->d_name), e->d_name);
			f = hmap_get(&upload.files, secret);
			if (f && f->state == UP_STORED)
				continue;
		}
		/* A temporary file, or a file whose PUT did not complete before a crash. */
		snprintf(path, sizeof path, "%s/%s", upload.dir, e->d_name);
		if (unlink(path) == 0)
			log_info("upload: removed leftover %s", path);
	}
	closedir(d);
	log_info("upload: %zu files, %zu open slots in %s", files, slots, upload.dir);
	return 0;
}

/* ---- the expiry sweep (worker 0) ---- */

struct sweep_job {
	struct store_job job;
	size_t n;
	char secrets[SWEEP_BATCH][UPLOAD_SECRET_LEN + 1];
};

static int
sweep_run(struct store *st, struct store_job *job)
{
	struct sweep_job *sj = container_of(job, struct sweep_job, job);

	for (size_t i = 0; i < sj->n; i++)
		upload_remove(sj->secrets[i]);
	if (sj->n && fsync_dir() < 0)
		log_warn("upload: fsync %s: %s", upload.dir, strerror(errno));
	return 0;
}

static void
sweep_done(struct store_job *job)
{
	free(container_of(job, struct sweep_job, job));
}

static uint64_t
sweep_interval(void)
{
	uint64_t t = upload.cfg->upload_expiry / 4;

	return t < SWEEP_MIN_MS ? SWEEP_MIN_MS : t > SWEEP_MAX_MS ? SWEEP_MAX_MS : t;
}

static void
sweep_fired(struct timer *t)
{
	struct worker *w = worker_current();
	int64_t now = wall_ms();
	bool more = true;

	/*
	 * Entries leave the index first (under the lock), so no request finds them while their
	 * files go; the files go on the storage thread, which already waits on the disk.
	 */
	while (more) {
		struct sweep_job *sj = xcalloc(1, sizeof *sj);
		const char *k;
		void *v;
		more = false;
		pthread_mutex_lock(&upload.lock);
		for (size_t i = 0; hmap_next(&upload.files, &i, &k, &v);) {
			const struct upload_file *f = v;
			if (f->state == UP_PUTTING || f->expires > now)
				continue;
			if (sj->n == SWEEP_BATCH) {
				more = true;
				break;
			}
			snprintf(sj->secrets[sj->n++], UPLOAD_SECRET_LEN + 1, "%s", f->secret);
		}
		for (size_t i = 0; i < sj->n; i++) {
			struct upload_file *f = hmap_del(&upload.files, sj->secrets[i]);
			log_debug("upload: %s of %s expired (%s)", f->secret, f->owner,
				  f->state == UP_STORED ? "file" : "unused slot");
			upload_file_free(f);
		}
		pthread_mutex_unlock(&upload.lock);
		if (sj->n == 0) {
			free(sj);
			break;
		}
		log_info("upload: removing %zu expired uploads", sj->n);
		sj->job.run = sweep_run;
		sj->job.done = sweep_done;
		worker_store(w, &sj->job);
	}
	timer_start(worker_loop(w), t, sweep_interval());
}

void
upload_start_worker(struct worker *w)
{
	if (w != &w->srv->workers[0])
		return;
	sweep_timer.fn = sweep_fired;
	timer_start(worker_loop(w), &sweep_timer, sweep_interval());
}

void
upload_free_worker(struct worker *w)
{
	if (w != &w->srv->workers[0])
		return;
	/* Every loop has stopped: nobody else looks at the index any more. */
	pthread_mutex_lock(&upload.lock);
	hmap_free_all(&upload.files, file_free_void);
	pthread_mutex_unlock(&upload.lock);
}

/* ---- registration ---- */

void
upload_urlenc(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p)) {
			buf_append(b, p, 1);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			buf_append(b, e, 3);
		}
	}
}

int
upload_register(const struct config *cfg, char *err, size_t errlen)
{
	struct buf b = {0};

	if (!cfg->upload_enabled || !*cfg->http_listen)
		return 0;
	upload.cfg = cfg;
	buf_printf(&b, "%s/upload", cfg->data_dir);
	upload.dir = buf_steal(&b);
	if (mkdir(upload.dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", upload.dir, strerror(errno));
		return -1;
	}
	if (*cfg->upload_public_url) {
		size_t n = strlen(cfg->upload_public_url);
		while (n && cfg->upload_public_url[n - 1] == '/')
			n--;
		upload.base = xstrndup(cfg->upload_public_url, n);
	} else {
		buf_printf(&b, "http://%s", cfg->http_listen);
		upload.base = buf_steal(&b);
	}
	if (scan(err, errlen) < 0)
		return -1;
	server_add_service(&upload_service);
	return 0;
}
