/*
 * server: the worker threads of batond. Each worker runs one event loop; every
 * account has a home worker, hash(bare JID) % N, and a connection moves there once
 * it has authenticated, so an account's state is touched by one thread only.
 * Listening sockets are shared by all workers (EPOLLEXCLUSIVE wakes one of them).
 *
 * Invariant: after server_stop() returns, no thread runs and nothing is left
 * allocated: sessions, accounts, connections and every mail in flight are freed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmpp_int.h"

#define SHUTDOWN_FLUSH_MS 300  /* how long workers keep running to send the last bytes */
#define TRIM_EVERY_MS	  5000 /* how often idle sessions give back parser memory */

static _Thread_local struct worker *current_worker;
static const struct xmpp_service *registered[8];
static int nregistered;
struct xmpp_ext *xmpp_exts[XMPP_EXT_MAX + 1];

void
server_add_ext(struct xmpp_ext *ext)
{
	int n = 0;

	while (xmpp_exts[n])
		n++;
	if (n == XMPP_EXT_MAX)
		fatal("too many extensions");
	ext->slot = n;
	xmpp_exts[n] = ext;
}

static struct {
	const char *addr;
	void (*accept)(struct worker *w, int fd);
} listeners[4];
static int nlisteners;

void
server_add_listener(const char *addr, void (*accept)(struct worker *w, int fd))
{
	if (nlisteners == (int)ARRAY_LEN(listeners))
		fatal("too many listeners");
	listeners[nlisteners].addr = addr;
	listeners[nlisteners++].accept = accept;
}

static void
extra_accept(struct loop_io *io, uint32_t events)
{
	struct worker *w = worker_current();
	int i = (int)(io - w->extra_io);

	w->srv->extra_accept[i](w, io->fd);
}

/* Binds addr for accept, watched by every worker; 0 or -1 with err. */
static int
listen_extra(struct server *srv, const char *addr, void (*accept)(struct worker *w, int fd),
	     char *err, size_t errlen)
{
	int fd;

	if (srv->nextra == (int)ARRAY_LEN(srv->extra_fd)) {
		snprintf(err, errlen, "too many listeners");
		return -1;
	}
	if ((fd = net_listen(addr, err, errlen)) < 0)
		return -1;
	srv->extra_fd[srv->nextra] = fd;
	srv->extra_accept[srv->nextra++] = accept;
	log_info("listening on %s", addr);
	return 0;
}

bool
server_hosts(const struct server *srv, const char *domain)
{
	return strcmp(domain, srv->cfg->domain) == 0 || server_service(srv, domain) ||
	       component_domain(srv, domain);
}

void
server_add_service(const struct xmpp_service *svc)
{
	if (nregistered == (int)ARRAY_LEN(registered))
		fatal("too many services");
	registered[nregistered++] = svc;
}

const struct xmpp_service *
server_service(const struct server *srv, const char *domain)
{
	for (int i = 0; i < srv->nservices; i++) {
		if (strcmp(srv->service_domains[i], domain) == 0)
			return srv->services[i];
	}
	return NULL;
}

struct worker *
worker_current(void)
{
	return current_worker;
}

struct loop *
worker_loop(struct worker *w)
{
	return w->loop;
}

const struct config *
worker_config(struct worker *w)
{
	return w->srv->cfg;
}

struct worker *
server_home(struct server *srv, const char *bare)
{
	return &srv->workers[hash_str(bare) % (uint64_t)srv->nworkers];
}

struct call_mail {
	struct mail mail;
	void (*fn)(struct worker *w, void *arg);
	void *arg;
};

static void
call_deliver(struct loop *loop, struct mail *m)
{
	struct call_mail *cm = container_of(m, struct call_mail, mail);
	cm->fn(loop_data(loop), cm->arg);
	free(cm);
}

void
worker_call(struct worker *w, void (*fn)(struct worker *w, void *arg), void *arg)
{
	struct call_mail *cm;

	if (w == current_worker) {
		fn(w, arg);
		return;
	}
	cm = xmalloc(sizeof *cm);
	cm->mail.fn = call_deliver;
	cm->fn = fn;
	cm->arg = arg;
	loop_post(w->loop, &cm->mail);
}

void
worker_store(struct worker *w, struct store_job *job)
{
	job->loop = w->loop;
	store_submit(w->srv->store, job);
}

static void
trim_fired(struct timer *t)
{
	struct worker *w = container_of(t, struct worker, trim);

	c2s_trim_idle(w);
	timer_start(w->loop, t, TRIM_EVERY_MS);
}

static void
worker_turn_end(struct loop *loop, void *arg)
{
	session_reap(arg);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	current_worker = w;
	net_loop_init(w->loop);
	loop_on_turn_end(w->loop, worker_turn_end, w);
	if (w->srv->c2s_fd >= 0 && loop_io_add(w->loop, &w->c2s_io, LOOP_IN) < 0)
		fatal("worker %d: cannot watch the c2s listener", w->id);
	if (w->srv->c2s_tls_fd >= 0 && loop_io_add(w->loop, &w->c2s_tls_io, LOOP_IN) < 0)
		fatal("worker %d: cannot watch the c2s TLS listener", w->id);
	for (int i = 0; i < w->srv->nextra; i++) {
		if (loop_io_add(w->loop, &w->extra_io[i], LOOP_IN) < 0)
			fatal("worker %d: cannot watch a listener", w->id);
	}
	if (w->id == 0)
		offline_start_sweeper(w);
	for (int i = 0; i < w->srv->nservices; i++)
		if (w->srv->services[i]->start_worker)
			w->srv->services[i]->start_worker(w);
	w->trim.fn = trim_fired;
	timer_start(w->loop, &w->trim, TRIM_EVERY_MS);
	loop_run(w->loop);
	/* Every session closed its connection in worker_begin_stop(); drop the lingerers. */
	session_reap(w);
	net_loop_free(w->loop);
	stanza_thread_done();
	return NULL;
}

static void
free_server(struct server *srv)
{
	if (srv->c2s_fd >= 0)
		close(srv->c2s_fd);
	if (srv->c2s_tls_fd >= 0)
		close(srv->c2s_tls_fd);
	for (int i = 0; i < srv->nextra; i++)
		close(srv->extra_fd[i]);
	for (int i = 0; srv->workers && i < srv->nworkers; i++) {
		loop_free(srv->workers[i].loop);
		free(srv->workers[i].extra_io);
	}
	free(srv->workers);
	tls_ctx_free(srv->tls);
	s2s_free(srv);
	component_free(srv);
	for (int i = 0; i < srv->nservices; i++)
		free(srv->service_domains[i]);
	free(srv);
}

struct server *
server_start(const struct config *cfg, char *err, size_t errlen)
{
	struct server *srv = xcalloc(1, sizeof *srv);
	struct store *st;
	long n = cfg->workers;

	srv->cfg = cfg;
	srv->c2s_fd = srv->c2s_tls_fd = -1;
	rand_id(srv->key, sizeof srv->key - 1);
	for (int i = 0; i < nregistered; i++) {
		srv->services[i] = registered[i];
		srv->service_domains[i] =
		    xmalloc(strlen(registered[i]->prefix) + strlen(cfg->domain) + 2);
		sprintf(srv->service_domains[i], "%s.%s", registered[i]->prefix, cfg->domain);
	}
	srv->nservices = nregistered;
	srv->started = wall_ms();
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	if (n > 256)
		n = 256;
	srv->nworkers = (int)n;

	if (strcmp(cfg->registration, "open") != 0 && strcmp(cfg->registration, "closed") != 0 &&
	    strcmp(cfg->registration, "token") != 0) {
		snprintf(err, errlen, "c2s.registration must be open, closed or token, not '%s'",
			 cfg->registration);
		goto fail;
	}
	if (extdisco_check(cfg, err, errlen) < 0)
		goto fail;
	if (*cfg->c2s_listen && (srv->c2s_fd = net_listen(cfg->c2s_listen, err, errlen)) < 0)
		goto fail;
	if (*cfg->c2s_tls_listen &&
	    (srv->c2s_tls_fd = net_listen(cfg->c2s_tls_listen, err, errlen)) < 0)
		goto fail;
	for (int i = 0; i < nlisteners; i++)
		if (listen_extra(srv, listeners[i].addr, listeners[i].accept, err, errlen) < 0)
			goto fail;
	if (*cfg->s2s_listen && listen_extra(srv, cfg->s2s_listen, s2s_accept, err, errlen) < 0)
		goto fail;
	if (*cfg->component_listen &&
	    listen_extra(srv, cfg->component_listen, component_accept, err, errlen) < 0)
		goto fail;
	/* The certificate first: a bad one is reported before anything is written. */
	srv->tls =
	    tls_ctx_new(cfg->cert_file, cfg->key_file, cfg->data_dir, cfg->domain, err, errlen);
	if (!srv->tls)
		goto fail;
	if (s2s_init(srv, err, errlen) < 0 || component_init(srv, err, errlen) < 0)
		goto fail;
	if (!(st = store_open(cfg, err, errlen)))
		goto fail;
	srv->store = store_thread_start(st, cfg->storage_batch_ms);

	srv->workers = xcalloc((size_t)srv->nworkers, sizeof *srv->workers);
	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		w->id = i;
		w->srv = srv;
		w->loop = loop_new(i);
		loop_set_data(w->loop, w);
		w->c2s_io =
		    (struct loop_io){.fd = srv->c2s_fd, .fn = c2s_accept, .exclusive = true};
		w->c2s_tls_io =
		    (struct loop_io){.fd = srv->c2s_tls_fd, .fn = c2s_accept, .exclusive = true};
		w->extra_io = xcalloc((size_t)srv->nextra + 1, sizeof *w->extra_io);
		for (int j = 0; j < srv->nextra; j++)
			w->extra_io[j] = (struct loop_io){
			    .fd = srv->extra_fd[j], .fn = extra_accept, .exclusive = true};
	}
	for (int i = 0; i < srv->nworkers; i++) {
		int e =
		    pthread_create(&srv->workers[i].thread, NULL, worker_main, &srv->workers[i]);
		if (e)
			fatal("pthread_create: %s", strerror(e));
	}
	log_info("serving %s with %d workers (c2s %s, direct TLS %s)", cfg->domain, srv->nworkers,
		 *cfg->c2s_listen ? cfg->c2s_listen : "off",
		 *cfg->c2s_tls_listen ? cfg->c2s_tls_listen : "off");
	return srv;
fail:
	free_server(srv);
	return NULL;
}

/* ---- shutdown ---- */

static void
stop_timer_fired(struct timer *t)
{
	struct worker *w = container_of(t, struct worker, stop_timer);
	loop_stop(w->loop);
}

static void
worker_begin_stop(struct worker *w, void *arg)
{
	w->stopping = true;
	timer_stop(w->loop, &w->offline_sweep);
	timer_stop(w->loop, &w->trim);
	if (w->srv->c2s_fd >= 0)
		loop_io_del(w->loop, &w->c2s_io);
	if (w->srv->c2s_tls_fd >= 0)
		loop_io_del(w->loop, &w->c2s_tls_io);
	for (int i = 0; i < w->srv->nextra; i++)
		loop_io_del(w->loop, &w->extra_io[i]);
	while (w->sessions)
		session_shutdown(w->sessions);
	s2s_worker_stop(w);
	component_worker_stop(w);
	w->stop_timer.fn = stop_timer_fired;
	timer_start(w->loop, &w->stop_timer, SHUTDOWN_FLUSH_MS);
}

void
server_stop(struct server *srv)
{
	atomic_store(&srv->stopping, true);
	for (int i = 0; i < srv->nworkers; i++)
		worker_call(&srv->workers[i], worker_begin_stop, NULL);
	for (int i = 0; i < srv->nworkers; i++)
		pthread_join(srv->workers[i].thread, NULL);
	srv->joined = true; /* from here on one thread: a loop drained is not posted to again */
	/* Storage finishes its queue; completions land in the stopped loops' mailboxes. */
	store_thread_stop(srv->store);
	for (int i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];
		current_worker = w;
		loop_drain(w->loop);
		session_reap(w);
		account_free_all(w);
		hmap_free(&w->accounts);
		durable_worker_free(w);
		for (int j = 0; j < srv->nservices; j++)
			if (srv->services[j]->free_worker)
				srv->services[j]->free_worker(w);
		current_worker = NULL;
	}
	stanza_thread_done();
	log_info("stopped");
	free_server(srv);
}
