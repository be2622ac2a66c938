/*
 * upload_int: what the files of the upload module share: the index of slots and files (one
 * map for every worker, under a mutex, like web.c's registry) and their files on disk.
 * upload.c owns the index and the disk, upload_iq.c the XMPP service, upload_http.c the HTTP
 * side.
 */
#ifndef BATON_UPLOAD_INT_H
#define BATON_UPLOAD_INT_H

#include <pthread.h>

#include "../net/net.h"
#include "../xmpp/xmpp_int.h"
#include "upload.h"

#define NS_UPLOAD	   "urn:xmpp:http:upload:0"
#define UPLOAD_SECRET_LEN  48		    /* hex digits: 192 random bits */
#define UPLOAD_SLOT_TTL_MS (10 * 60 * 1000) /* a slot not used within this lapses */
#define UPLOAD_NAME_MAX	   255		    /* bytes of a file name */
#define UPLOAD_TYPE_MAX	   127		    /* bytes of a content type */

enum upload_state {
	UP_SLOT,    /* handed out, waiting for its PUT */
	UP_PUTTING, /* a PUT is being written: no other may start */
	UP_STORED,  /* the file is on disk and served */
};

/* One slot or file. In the index the mutex guards it; a copy travels with each disk job. */
struct upload_file {
	char secret[UPLOAD_SECRET_LEN + 1];
	char *owner; /* bare JID */
	char *name;  /* the file name as requested (valid UTF-8, no '/', no controls) */
	char *type;  /* the declared content type */
	uint64_t size;
	int64_t created; /* wall ms */
	int64_t expires; /* wall ms: the slot lapses, or the file is removed */
	enum upload_state state;
};

struct upload_ctx {
	const struct config *cfg;
	char *dir;  /* DATA/upload */
	char *base; /* URL of the HTTP listener, without a trailing '/' */
	pthread_mutex_t lock;
	struct hmap files; /* secret -> struct upload_file */
};
extern struct upload_ctx upload;

/* A copy of f (strings duplicated); free it with upload_file_free(). */
struct upload_file *upload_file_copy(const struct upload_file *f);
void upload_file_free(struct upload_file *f);
/* Bytes owner holds in files and live slots at now (wall ms); call with upload.lock held. */
uint64_t upload_used(const char *owner, int64_t now);

/*
 * Disk, on the storage thread (store jobs): DATA/upload/<secret>.meta says what a slot or file
 * is, <secret>.data is the file. Both are written to a temporary name, fsynced and renamed, the
 * directory fsynced after (STYLE.md rule 18). Each returns 0 or -1 (logged).
 */
int upload_meta_write(const struct upload_file *f);
int upload_data_write(const char *secret, const char *data, size_t len);
void upload_remove(const char *secret);
/* "DATA/upload/<secret>.data" into out (size >= PATH_MAX). */
void upload_data_path(const char *secret, char *out, size_t n);

/* The expiry sweep: runs on worker 0 (the service's start_worker / free_worker hooks). */
void upload_start_worker(struct worker *w);
void upload_free_worker(struct worker *w);

/* Appends s percent-encoded (RFC 3986 2.1; unreserved characters stay) to b. */
void upload_urlenc(struct buf *b, const char *s);

/* The XMPP service at upload.<domain> (upload_iq.c). */
extern const struct xmpp_service upload_service;

#endif
