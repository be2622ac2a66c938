/*
 * The SIP registrar (RFC 3261 10.3): REGISTER adds, refreshes and removes the contacts of an
 * address of record, sip:user@<domain>, which is the account user@<domain>. A contact is
 * reached over the transport it registered from (its UDP source address, or its TCP
 * connection), which also works behind NAT. A registration with Expires > 0 sends what is
 * stored for the account (seed 004 R7).
 *
 * Invariant: only the authenticated user changes the bindings of its own address of record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sip_int.h"

struct sip_aor *
sip_aor_get(const char *bare)
{
	return hmap_get(&sip.aors, bare);
}

/* ---- the SIP device in the account's presence (PROTOCOL.md 5) ---- */

struct device_change {
	char *bare;
	bool up;
};

static void
device_on_account(struct account *a, void *arg)
{
	struct device_change *d = arg;
	char full[400];

	snprintf(full, sizeof full, "%s/sip", d->bare);
	if (a->state == AS_READY) {
		struct xml_node *st = NULL;
		if (d->up) {
			st = stanza_new("presence", NULL, NULL, NULL, NULL);
			xml_add_text(xml_add_el(st, "status", NULL), "SIP", 3);
		}
		presence_device(a, full, st);
	}
	free(d->bare);
	free(d);
}

static void
device_on_home(struct worker *w, void *arg)
{
	struct device_change *d = arg;
	account_with(w, d->bare, device_on_account, d);
}

/* The account's SIP device (resource "sip") is there while it has a binding. */
static void
device_presence(const char *bare, bool up)
{
	struct device_change *d = xcalloc(1, sizeof *d);

	d->bare = xstrdup(bare);
	d->up = up;
	worker_call(server_home(sip.w->srv, bare), device_on_home, d);
}

static void
binding_free(struct sip_binding *b)
{
	sip_peer_release(&b->peer);
	free(b->contact);
	free(b->call_id);
	free(b);
}

static void
aor_drop_if_empty(struct sip_aor *a)
{
	if (a->bindings || a->delivering)
		return;
	hmap_del(&sip.aors, a->bare);
	free(a->bare);
	free(a);
}

void
sip_bindings_expire(void)
{
	const char *k;
	void *v;
	int64_t now = wall_ms();

	for (size_t i = 0; hmap_next(&sip.aors, &i, &k, &v);) {
		struct sip_aor *a = v;
		for (struct sip_binding **pp = &a->bindings; *pp;) {
			struct sip_binding *b = *pp;
			if (b->expires > now) {
				pp = &b->next;
				continue;
			}
			log_info("sip: registration of %s at %s expired", a->bare, b->contact);
			*pp = b->next;
			binding_free(b);
			if (!a->bindings)
				device_presence(a->bare, false);
		}
		if (!a->bindings && !a->delivering) {
			aor_drop_if_empty(a);
			i = 0; /* the map changed */
		}
	}
}

void
sip_aors_free(void)
{
	const char *k;
	void *v;

	for (size_t i = 0; hmap_next(&sip.aors, &i, &k, &v);) {
		struct sip_aor *a = v;
		while (a->bindings) {
			struct sip_binding *b = a->bindings;
			a->bindings = b->next;
			binding_free(b);
		}
		free(a->bare);
		free(a);
	}
	hmap_free(&sip.aors);
}

/* The To URI names the authenticated user's own address of record (10.3 step 5), in any of
 * its forms (sip:, tel: alias). */
static bool
own_aor(struct sip_req *r)
{
	struct sip_addr to;
	char *bare;
	bool ok;

	if (sip_parse_addr(sip_hdr(&r->m, "To"), &to) < 0)
		return false;
	bare = sip_uri_account(to.uri);
	ok = bare && strcmp(bare, r->bare) == 0;
	free(bare);
	sip_addr_free(&to);
	return ok;
}

/* One Contact: add, refresh (same URI) or remove (expires 0). Returns 0 or a status. */
static int
apply(struct sip_req *r, struct sip_aor *a, const struct sip_addr *c, int64_t expires_s,
      const char *call_id, uint32_t cseq)
{
	struct sip_binding **pp, *b = NULL;

	for (pp = &a->bindings; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->contact, c->uri) == 0) {
			b = *pp;
			break;
		}
	}
	/* 10.3 step 7: the same Call-ID with an older CSeq is out of order. */
	if (b && strcmp(b->call_id, call_id) == 0 && cseq <= b->cseq)
		return 500;
	if (expires_s == 0) {
		if (b) {
			*pp = b->next;
			binding_free(b);
		}
		return 0;
	}
	if (!b) {
		b = xcalloc(1, sizeof *b);
		b->contact = xstrdup(c->uri);
	} else {
		*pp = b->next; /* moved to the front: the newest binding comes first */
		sip_peer_release(&b->peer);
		free(b->call_id);
	}
	sip_peer_copy(&b->peer, &r->peer);
	b->call_id = xstrdup(call_id);
	b->cseq = cseq;
	b->expires = wall_ms() + expires_s * 1000;
	b->next = a->bindings;
	a->bindings = b;
	return 0;
}

void
sip_registrar(struct sip_req *r)
{
	const char *call_id = sip_hdr(&r->m, "Call-ID"), *exp_h = sip_hdr(&r->m, "Expires");
	int64_t dflt = exp_h ? atol(exp_h) : 3600;
	int64_t min_s = (int64_t)(sip.cfg->sip_min_expires / 1000);
	int64_t max_s = (int64_t)(sip.cfg->sip_max_expires / 1000);
	struct sip_aor *a;
	struct sip_uri ru;
	uint32_t cseq = 0;
	char method[16], *list[32], *mem = NULL, min_hdr[64];
	size_t n = 0;
	bool added = false;
	int status = 0;

	/* 10.3 step 1: a registration for our domain only. */
	if (sip_parse_uri(r->m.uri, &ru) < 0) {
		sip_reply(r, 400, "Bad Request-URI", NULL, NULL, 0);
		return;
	}
	status = strcasecmp(ru.host, sip.cfg->domain) != 0 ? 404 : 0;
	sip_uri_free(&ru);
	if (status) {
		sip_reply(r, 404, "Not Found (not a domain served here)", NULL, NULL, 0);
		return;
	}
	if (!own_aor(r)) {
		log_info("sip: %s tried to register another address (%s)", r->bare,
			 sip_hdr(&r->m, "To"));
		sip_reply(r, 403, "Forbidden (not your address of record)", NULL, NULL, 0);
		return;
	}
	sip_parse_cseq(sip_hdr(&r->m, "CSeq"), &cseq, method, sizeof method);
	a = sip_aor_get(r->bare);
	bool had = a && a->bindings;
	if (!a) {
		a = xcalloc(1, sizeof *a);
		a->bare = xstrdup(r->bare);
		hmap_put(&sip.aors, a->bare, a);
	}
	for (const char *h = sip_hdr(&r->m, "Contact"); h && n < ARRAY_LEN(list);
	     h = sip_hdr_next(&r->m, "Contact", h)) {
		char *m2 = NULL;
		size_t k = sip_split_list(h, list + n, ARRAY_LEN(list) - n, &m2);
		/* one buffer per header: keep them all until the end */
		mem = mem ? (free(mem), m2) : m2;
		(void)k;
		for (size_t i = 0; i < k && !status; i++) {
			struct sip_addr c;
			int64_t e;
			if (sip_parse_addr(list[n + i], &c) < 0) {
				status = 400;
				break;
			}
			if (c.star) {
				/* 10.3 step 6: "*" only alone and with Expires: 0. */
				if (!exp_h || atol(exp_h) != 0 || k != 1 || n != 0) {
					status = 400;
				} else {
					while (a->bindings) {
						struct sip_binding *b = a->bindings;
						a->bindings = b->next;
						binding_free(b);
					}
				}
				sip_addr_free(&c);
				continue;
			}
			e = c.expires >= 0 ? c.expires : dflt;
			if (e > 0 && e < min_s) {
				status = 423;
			} else {
				if (e > max_s)
					e = max_s;
				status = apply(r, a, &c, e, call_id, cseq);
				added |= e > 0 && !status;
			}
			sip_addr_free(&c);
		}
		n += k;
	}
	free(mem);
	if (status == 423) {
		snprintf(min_hdr, sizeof min_hdr, "Min-Expires: %lld\r\n", (long long)min_s);
		sip_reply(r, 423, "Interval Too Brief", min_hdr, NULL, 0);
		aor_drop_if_empty(a);
		return;
	}
	if (status) {
		sip_reply(r, status,
			  status == 500 ? "Server Internal Error (CSeq out of order)"
					: "Bad Request (Contact)",
			  NULL, NULL, 0);
		aor_drop_if_empty(a);
		return;
	}
	/* 10.3 step 8: the 200 lists every current binding with its remaining time. */
	struct buf h = {0};
	for (struct sip_binding *b = a->bindings; b; b = b->next)
		buf_printf(&h, "Contact: <%s>;expires=%lld\r\n", b->contact,
			   (long long)((b->expires - wall_ms() + 999) / 1000));
	log_info("sip: %s registered %zu contact(s) from %s", a->bare, n, r->peer.addr.text);
	sip_reply(r, 200, "OK", buf_head(&h), NULL, 0);
	buf_free(&h);
	if (had != (a->bindings != NULL))
		device_presence(a->bare, a->bindings != NULL);
	if (added)
		sip_deliver_pending(a);
	else
		aor_drop_if_empty(a);
}

/* ---- superseded (shared identity in exclusive mode, seed 003 R2/R3) ---- */

static void
drop_on_sip_worker(struct worker *w, void *arg)
{
	char *bare = arg;
	struct sip_aor *a = sip_aor_get(bare);

	if (a && a->bindings) {
		log_info("sip: the registration of %s is superseded by another device", bare);
		while (a->bindings) {
			struct sip_binding *b = a->bindings;
			a->bindings = b->next;
			binding_free(b);
		}
		device_presence(bare, false);
		aor_drop_if_empty(a);
	}
	free(bare);
}

struct drop_mail {
	struct mail mail;
	struct worker *w;
	char *bare;
};

static void
drop_mail(struct loop *loop, struct mail *m)
{
	struct drop_mail *d = container_of(m, struct drop_mail, mail);
	drop_on_sip_worker(d->w, d->bare);
	free(d);
}

void
sip_device_drop(struct worker *w, const char *bare, const char *full)
{
	/* Always by mail, even from the SIP worker itself: the caller is walking the account. */
	struct drop_mail *d = xcalloc(1, sizeof *d);
	d->w = sip_home(w);
	d->bare = xstrdup(bare);
	d->mail.fn = drop_mail;
	loop_post(worker_loop(d->w), &d->mail);
}
