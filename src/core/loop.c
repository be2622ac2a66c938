/*
 * loop: one epoll event loop per thread, with a min-heap of timers and a mailbox
 * other threads post to (an intrusive multi-producer single-consumer queue, D. Vyukov's
 * design, plus an eventfd to wake the loop). A turn is: wait, dispatch I/O events,
 * fire due timers, drain the mailbox, run the turn-end hooks (flushes, reaping).
 *
 * Invariant: only the owning thread touches the loop, except loop_post() and
 * loop_stop(). An io removed during a turn gets no further events in that turn, so
 * its owner may be freed by a turn-end hook (STYLE.md rule 12).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

#define LOOP_BATCH 256

struct turn_hook {
	void (*fn)(struct loop *loop, void *arg);
	void *arg;
};

struct loop {
	int id;
	int epfd;
	void *data;
	atomic_bool stopping;

	struct epoll_event events[LOOP_BATCH];
	int nevents, cur; /* the batch being dispatched, for loop_io_del */

	struct timer **heap;
	size_t nheap, capheap;

	/* mailbox: producers swap head; the consumer walks from tail */
	struct mail *_Atomic mail_head;
	struct mail *mail_tail;
	struct mail mail_stub;
	atomic_size_t mail_depth;
	atomic_int mail_signalled; /* 1: the loop is awake or already signalled */
	struct loop_io wake;

	struct turn_hook *hooks;
	size_t nhooks;
};

static _Thread_local struct loop *current_loop;

uint64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t
wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
time_format(int64_t t, char *out, size_t n)
{
	time_t secs = (time_t)(t / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(t % 1000));
}

/* ---- mailbox ---- */

static void
mail_push(struct loop *loop, struct mail *m)
{
	struct mail *prev;

	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	prev = atomic_exchange_explicit(&loop->mail_head, m, memory_order_acq_rel);
	atomic_store_explicit(&prev->next, m, memory_order_release);
}

/* Returns the oldest mail, or NULL if empty or a producer is between its two steps. */
static struct mail *
mail_pop(struct loop *loop)
{
	struct mail *tail = loop->mail_tail;
	struct mail *next = atomic_load_explicit(&tail->next, memory_order_acquire);

	if (tail == &loop->mail_stub) {
		if (!next)
			return NULL;
		loop->mail_tail = tail = next;
		next = atomic_load_explicit(&next->next, memory_order_acquire);
	}
	if (next) {
		loop->mail_tail = next;
		return tail;
	}
	if (tail != atomic_load_explicit(&loop->mail_head, memory_order_acquire))
		return NULL; /* a push is in progress; its producer will signal again */
	mail_push(loop, &loop->mail_stub);
	next = atomic_load_explicit(&tail->next, memory_order_acquire);
	if (next) {
		loop->mail_tail = next;
		return tail;
	}
	return NULL;
}

void
loop_post(struct loop *loop, struct mail *m)
{
	uint64_t one = 1;

	atomic_fetch_add_explicit(&loop->mail_depth, 1, memory_order_relaxed);
	mail_push(loop, m);
	/*
	 * Wake the loop only if it may be asleep: it clears the flag just before it waits
	 * (loop_may_sleep) and sets it again when it wakes, so a loop that is busy, as
	 * under load it mostly is, drains this mail at the end of its turn unsignalled.
	 */
	if (atomic_exchange(&loop->mail_signalled, 1) == 0)
		(void)!write(loop->wake.fd, &one, sizeof one);
}

size_t
loop_mail_depth(const struct loop *loop)
{
	return atomic_load_explicit(&loop->mail_depth, memory_order_relaxed);
}

static void
mail_drain(struct loop *loop)
{
	struct mail *m;

	while ((m = mail_pop(loop)) != NULL) {
		atomic_fetch_sub_explicit(&loop->mail_depth, 1, memory_order_relaxed);
		m->fn(loop, m);
	}
}

/*
 * Called before waiting: whether the loop may block. The exchange that clears the flag
 * reads the last producer's exchange that set it, so that producer's mail is counted in
 * mail_depth by now; a producer whose exchange comes after it sees 0 and signals.
 */
static bool
loop_may_sleep(struct loop *loop)
{
	atomic_exchange(&loop->mail_signalled, 0);
	return atomic_load_explicit(&loop->mail_depth, memory_order_relaxed) == 0;
}

static void
wake_readable(struct loop_io *io, uint32_t events)
{
	uint64_t n;
	(void)!read(io->fd, &n, sizeof n);
}

/* ---- timers: a binary min-heap of armed timers, slot = index + 1 ---- */

static void
heap_set(struct loop *loop, size_t i, struct timer *t)
{
	loop->heap[i] = t;
	t->slot = i + 1;
}

static void
heap_up(struct loop *loop, size_t i)
{
	struct timer *t = loop->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (loop->heap[p]->when <= t->when)
			break;
		heap_set(loop, i, loop->heap[p]);
		i = p;
	}
	heap_set(loop, i, t);
}

static void
heap_down(struct loop *loop, size_t i)
{
	struct timer *t = loop->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= loop->nheap)
			break;
		if (c + 1 < loop->nheap && loop->heap[c + 1]->when < loop->heap[c]->when)
			c++;
		if (loop->heap[c]->when >= t->when)
			break;
		heap_set(loop, i, loop->heap[c]);
		i = c;
	}
	heap_set(loop, i, t);
}

void
timer_stop(struct loop *loop, struct timer *t)
{
	size_t i;

	if (!t->slot)
		return;
	i = t->slot - 1;
	t->slot = 0;
	loop->nheap--;
	if (i == loop->nheap)
		return;
	loop->heap[i] = loop->heap[loop->nheap];
	loop->heap[i]->slot = i + 1;
	heap_down(loop, i);
	heap_up(loop, loop->heap[i]->slot - 1);
}

void
timer_start(struct loop *loop, struct timer *t, uint64_t ms)
{
	timer_stop(loop, t);
	t->when = now_ms() + ms;
	if (loop->nheap == loop->capheap) {
		loop->capheap = loop->capheap ? loop->capheap * 2 : 64;
		loop->heap = xrealloc(loop->heap, loop->capheap * sizeof *loop->heap);
	}
	loop->heap[loop->nheap] = t;
	heap_up(loop, loop->nheap++);
}

static void
timers_fire(struct loop *loop)
{
	uint64_t now = now_ms();

	while (loop->nheap > 0 && loop->heap[0]->when <= now) {
		struct timer *t = loop->heap[0];
		timer_stop(loop, t);
		t->fn(t);
	}
}

static int
timers_wait_ms(struct loop *loop)
{
	uint64_t now;

	if (loop->nheap == 0)
		return -1;
	now = now_ms();
	if (loop->heap[0]->when <= now)
		return 0;
	uint64_t d = loop->heap[0]->when - now;
	return d > 60000 ? 60000 : (int)d;
}

/* ---- the loop ---- */

struct loop *
loop_new(int id)
{
	struct loop *loop = xcalloc(1, sizeof *loop);

	loop->id = id;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0)
		fatal("epoll_create1: %s", strerror(errno));
	atomic_store(&loop->mail_stub.next, NULL);
	atomic_store(&loop->mail_head, &loop->mail_stub);
	loop->mail_tail = &loop->mail_stub;
	loop->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (loop->wake.fd < 0)
		fatal("eventfd: %s", strerror(errno));
	loop->wake.fn = wake_readable;
	if (loop_io_add(loop, &loop->wake, LOOP_IN) < 0)
		fatal("epoll_ctl: %s", strerror(errno));
	return loop;
}

void
loop_free(struct loop *loop)
{
	if (!loop)
		return;
	close(loop->wake.fd);
	close(loop->epfd);
	free(loop->heap);
	free(loop->hooks);
	free(loop);
}

int
loop_id(const struct loop *loop)
{
	return loop->id;
}

void
loop_set_data(struct loop *loop, void *data)
{
	loop->data = data;
}

void *
loop_data(const struct loop *loop)
{
	return loop->data;
}

struct loop *
loop_current(void)
{
	return current_loop;
}

static int
io_ctl(struct loop *loop, int op, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};

	if (op == EPOLL_CTL_ADD && io->exclusive)
		ev.events |= EPOLLEXCLUSIVE;
	if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
		return -errno;
	io->events = events;
	return 0;
}

int
loop_io_add(struct loop *loop, struct loop_io *io, uint32_t events)
{
	return io_ctl(loop, EPOLL_CTL_ADD, io, events);
}

int
loop_io_mod(struct loop *loop, struct loop_io *io, uint32_t events)
{
	if (events == io->events)
		return 0;
	return io_ctl(loop, EPOLL_CTL_MOD, io, events);
}

void
loop_io_del(struct loop *loop, struct loop_io *io)
{
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	for (int i = loop->cur + 1; i < loop->nevents; i++) {
		if (loop->events[i].data.ptr == io)
			loop->events[i].data.ptr = NULL;
	}
}

void
loop_on_turn_end(struct loop *loop, void (*fn)(struct loop *loop, void *arg), void *arg)
{
	loop->hooks = xrealloc(loop->hooks, (loop->nhooks + 1) * sizeof *loop->hooks);
	loop->hooks[loop->nhooks++] = (struct turn_hook){fn, arg};
}

int
loop_run(struct loop *loop)
{
	current_loop = loop;
	while (!atomic_load(&loop->stopping)) {
		int n = epoll_wait(loop->epfd, loop->events, LOOP_BATCH,
				   loop_may_sleep(loop) ? timers_wait_ms(loop) : 0);
		atomic_store(&loop->mail_signalled, 1); /* awake: posts need not signal */
		if (n < 0 && errno != EINTR)
			fatal("epoll_wait: %s", strerror(errno));
		loop->nevents = n < 0 ? 0 : n;
		for (loop->cur = 0; loop->cur < loop->nevents; loop->cur++) {
			struct epoll_event *ev = &loop->events[loop->cur];
			struct loop_io *io = ev->data.ptr;
			if (io)
				io->fn(io, ev->events);
		}
		loop->nevents = loop->cur = 0;
		timers_fire(loop);
		mail_drain(loop);
		for (size_t i = 0; i < loop->nhooks; i++)
			loop->hooks[i].fn(loop, loop->hooks[i].arg);
	}
	/* Mail posted before the stop still runs, so no completion is lost. */
	mail_drain(loop);
	current_loop = NULL;
	return 0;
}

void
loop_drain(struct loop *loop)
{
	struct loop *saved = current_loop;

	current_loop = loop;
	mail_drain(loop);
	current_loop = saved;
}

void
loop_stop(struct loop *loop)
{
	uint64_t one = 1;
	atomic_store(&loop->stopping, true);
	(void)!write(loop->wake.fd, &one, sizeof one);
}
