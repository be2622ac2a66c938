/*
 * pep_notify: who hears about an account's PEP nodes (XEP-0163 section 4). The account remembers
 * which of its own resources and which roster contacts are present, with their entity
 * capabilities (XEP-0115), learnt by a disco#info query per unknown ver and cached for the
 * process once the ver hash checks out. A publish goes to those that may read the node and whose
 * capabilities say node+notify; a newly present one gets each node's last item. The avatar hash
 * of XEP-0398 (vcard-temp:x:update in presence, PHOTO in vCard reads) lives here too.
 *
 * Invariant: the cache maps a ver only to the features that hash to it (verified), so one
 * contact cannot change what another's ver means; unverifiable answers serve their sender only.
 */
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pep_int.h"
#include "sasl.h"

#define NS_CAPS		"http://jabber.org/protocol/caps"
#define NS_VCARD_UPDATE "vcard-temp:x:update"
#define NS_VCARD	"vcard-temp"
#define CAPS_ID_PREFIX	"pepcaps-"

/* A feature set from a disco#info answer: var -> itself (a set). */
struct pep_caps {
	struct hmap features;
};

struct pep_peer {
	char *full;
	char *ver;	       /* XEP-0115 ver, NULL without caps */
	struct pep_caps *caps; /* known features, or NULL */
	bool caps_owned;       /* unverified: this peer's own, freed with it */
	bool need_last;	       /* owed the last items once its caps are known */
	bool sha1;	       /* its ver is a SHA-1 hash (the only one checked) */
	char query[32];	       /* id of the disco#info query outstanding, "" if none */
};

struct pep_account {
	struct hmap peers; /* full JID -> struct pep_peer: present resources and contacts */
	bool has_avatar;   /* a urn:xmpp:avatar:metadata item exists */
	char *avatar;	   /* its hash; "" when the user disabled the avatar */
};

/* The process-wide cache of verified capabilities: ver -> struct pep_caps, never freed. */
static pthread_mutex_t caps_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hmap caps_cache;

static struct pep_account *
pep_state(struct account *a)
{
	if (!a->pep)
		a->pep = xcalloc(1, sizeof *a->pep);
	return a->pep;
}

static void
caps_free(struct pep_caps *c)
{
	if (!c)
		return;
	hmap_free(&c->features);
	free(c);
}

static void
peer_free(void *v)
{
	struct pep_peer *p = v;

	if (p->caps_owned)
		caps_free(p->caps);
	free(p->ver);
	free(p->full);
	free(p);
}

void
pep_account_free(struct account *a)
{
	if (!a->pep)
		return;
	hmap_free_all(&a->pep->peers, peer_free);
	free(a->pep->avatar);
	free(a->pep);
	a->pep = NULL;
}

static bool
interested(const struct pep_peer *p, const char *node)
{
	char *want;
	bool yes;

	if (!p->caps)
		return false;
	want = xmalloc(strlen(node) + sizeof "+notify");
	strcpy(want, node);
	strcat(want, "+notify");
	yes = hmap_get(&p->caps->features, want) != NULL;
	free(want);
	return yes;
}

static enum pep_rel
peer_rel(const struct account *a, const struct pep_peer *p)
{
	struct jid j;
	enum pep_rel rel = PEP_REL_NONE;

	if (jid_parse(p->full, &j) == 0) {
		char *bare = jid_bare(&j);
		rel = pep_relation(a, bare);
		free(bare);
		jid_free(&j);
	}
	return rel;
}

static void
send_event(struct account *a, const char *to, const struct xml_node *ev)
{
	struct xml_node *m = stanza_new("message", a->bare, to, "headline", NULL);

	xml_add_child(m, xml_copy(ev));
	route(a->w, m);
}

void
pep_notify(struct account *a, const char *node, const struct pep_config *c,
	   const struct xml_node *ev)
{
	const char *k;
	void *v;

	if (!a->pep)
		return;
	/* XEP-0163 4.3.1: those who may read the node and asked for it with +notify. */
	for (size_t i = 0; hmap_next(&a->pep->peers, &i, &k, &v);) {
		struct pep_peer *p = v;
		if (interested(p, node) && pep_config_readable(c, peer_rel(a, p)))
			send_event(a, p->full, ev);
	}
}

/* ---- the last items for a newly present peer (XEP-0163 section 4.3.2) ---- */

struct last_node {
	char *node, *config, *id, *xml;
};

struct last_job {
	struct store_job job;
	struct account *a;
	char *owner, *full;
	struct store *st; /* only during run */
	struct last_node *nodes;
	size_t n, cap;
};

static void
last_item(void *arg, const char *id, const char *xml)
{
	struct last_node *ln = arg;

	ln->id = xstrdup(id);
	ln->xml = xstrdup(xml);
}

static void
last_collect(void *arg, const char *node, const char *config)
{
	struct last_job *lj = arg;

	if (lj->n == lj->cap) {
		lj->cap = lj->cap ? lj->cap * 2 : 8;
		lj->nodes = xrealloc(lj->nodes, lj->cap * sizeof *lj->nodes);
	}
	lj->nodes[lj->n++] = (struct last_node){.node = xstrdup(node), .config = xstrdup(config)};
}

static int
last_run(struct store *st, struct store_job *job)
{
	struct last_job *lj = container_of(job, struct last_job, job);
	int r = store_pep_nodes(st, lj->owner, last_collect, lj);

	for (size_t i = 0; r == 0 && i < lj->n; i++)
		r = store_pep_items(st, lj->owner, lj->nodes[i].node, NULL, 1, last_item,
				    &lj->nodes[i]);
	return r;
}

static void
last_done(struct store_job *job)
{
	struct last_job *lj = container_of(job, struct last_job, job);
	struct account *a = lj->a;
	struct pep_peer *p = a->pep && job->result == 0 ? hmap_get(&a->pep->peers, lj->full) : NULL;

	for (size_t i = 0; i < lj->n; i++) {
		struct last_node *ln = &lj->nodes[i];
		struct pep_config c;
		pep_config_read(&c, ln->config);
		if (p && ln->id && c.send_last == PEP_SEND_ON_SUB_AND_PRESENCE &&
		    c.deliver_notifications && interested(p, ln->node) &&
		    pep_config_readable(&c, peer_rel(a, p))) {
			struct xml_node *ev =
			    pep_event_item(ln->node, ln->id, ln->xml, c.deliver_payloads);
			send_event(a, p->full, ev);
			xml_free(ev);
		}
		free(ln->node);
		free(ln->config);
		free(ln->id);
		free(ln->xml);
	}
	free(lj->nodes);
	free(lj->owner);
	free(lj->full);
	free(lj);
	a->refs--;
	account_maybe_unload(a);
}

static bool
wants_any(const struct pep_caps *c)
{
	const char *k;
	void *v;
	size_t n = strlen("+notify");

	for (size_t i = 0; c && hmap_next(&c->features, &i, &k, &v);) {
		size_t len = strlen(k);
		if (len > n && strcmp(k + len - n, "+notify") == 0)
			return true;
	}
	return false;
}

static void
send_last(struct account *a, struct pep_peer *p)
{
	struct last_job *lj;

	p->need_last = false;
	if (!wants_any(p->caps))
		return; /* interested in nothing: no need to read the nodes */
	lj = xcalloc(1, sizeof *lj);
	lj->a = a;
	a->refs++;
	lj->owner = xstrdup(a->bare);
	lj->full = xstrdup(p->full);
	lj->job.run = last_run;
	lj->job.done = last_done;
	worker_store(a->w, &lj->job);
}

/* ---- presence and entity capabilities (XEP-0115) ---- */

static void
query_caps(struct account *a, struct pep_peer *p, const char *caps_node)
{
	struct xml_node *iq, *q;
	char node[1024];

	snprintf(p->query, sizeof p->query, CAPS_ID_PREFIX "%lu", ++a->w->push_seq);
	iq = stanza_new("iq", a->bare, p->full, "get", p->query);
	q = xml_add_el(iq, "query", NS_DISCO_INFO);
	/* XEP-0115 section 6.2: the node is node#ver. */
	snprintf(node, sizeof node, "%s#%s", caps_node ? caps_node : "", p->ver);
	xml_set_attr(q, "node", node);
	route(a->w, iq);
}

/* Someone present (own resource or contact) with presence st, or gone (st NULL). */
static void
peer_presence(struct account *a, const char *full, const struct xml_node *st)
{
	struct pep_account *pa;
	struct pep_peer *p;
	struct xml_node *c;
	const char *ver;

	if (!st) {
		if (a->pep && (p = hmap_del(&a->pep->peers, full)))
			peer_free(p);
		return;
	}
	pa = pep_state(a);
	c = xml_child(st, "c", NS_CAPS);
	ver = c ? xml_attr(c, "ver") : NULL;
	p = hmap_get(&pa->peers, full);
	if (p && ((!ver && !p->ver) || (ver && p->ver && strcmp(ver, p->ver) == 0)))
		return; /* a presence update: the last items went already */
	if (!p) {
		p = xcalloc(1, sizeof *p);
		p->full = xstrdup(full);
		hmap_put(&pa->peers, p->full, p);
	}
	if (p->caps_owned)
		caps_free(p->caps);
	p->caps = NULL;
	p->caps_owned = false;
	free(p->ver);
	p->ver = ver && *ver ? xstrdup(ver) : NULL;
	p->sha1 = c && xml_attr(c, "hash") && strcmp(xml_attr(c, "hash"), "sha-1") == 0;
	p->query[0] = '\0';
	if (!p->ver)
		return; /* XEP-0163 4.3.2: without capabilities we cannot know its interests */
	pthread_mutex_lock(&caps_mu);
	p->caps = hmap_get(&caps_cache, p->ver);
	pthread_mutex_unlock(&caps_mu);
	if (p->caps) {
		send_last(a, p);
	} else {
		p->need_last = true;
		query_caps(a, p, xml_attr(c, "node"));
	}
}

void
pep_presence_in(struct account *a, const struct xml_node *st, const char *from_full)
{
	struct jid j;
	const struct roster_item *it = NULL;

	/* Only contacts are tracked: strangers' directed presence must not fill memory. */
	if (st && jid_parse(from_full, &j) == 0) {
		char *bare = jid_bare(&j);
		it = hmap_get(&a->roster, bare);
		free(bare);
		jid_free(&j);
	}
	if (st && (!it || it->hidden))
		return;
	peer_presence(a, from_full, st);
}

void
pep_presence_own(struct session *s, const struct xml_node *st)
{
	peer_presence(s->acct, s->full, st);
}

static int
str_cmp(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Sorts list and appends each entry and '<' to s (XEP-0115 section 5.1). */
static void
append_sorted(struct buf *s, char **list, size_t n)
{
	if (n > 1)
		qsort(list, n, sizeof *list, str_cmp);
	for (size_t i = 0; i < n; i++) {
		buf_puts(s, list[i]);
		buf_puts(s, "<");
	}
}

static void
push(char ***list, size_t *n, char *v)
{
	*list = xrealloc(*list, (*n + 1) * sizeof **list);
	(*list)[(*n)++] = v;
}

static void
free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/* One extended form (XEP-0128) in verification-string form, or NULL without a FORM_TYPE. */
static char *
form_string(const struct xml_node *x)
{
	struct buf s = {0};
	char **fields = NULL, *form_type = NULL;
	size_t nf = 0;

	for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f;
	     f = xml_next(f, "field", NS_XDATA)) {
		const char *var = xml_attr(f, "var");
		char **vals = NULL;
		size_t nv = 0;
		struct buf fs = {0};
		if (!var)
			continue;
		for (struct xml_node *v = xml_child(f, "value", NS_XDATA); v;
		     v = xml_next(v, "value", NS_XDATA))
			push(&vals, &nv, xml_text(v));
		if (strcmp(var, "FORM_TYPE") == 0) {
			if (nv && !form_type)
				form_type = xstrdup(vals[0]);
			free_list(vals, nv);
			continue;
		}
		buf_puts(&fs, var);
		buf_puts(&fs, "<");
		append_sorted(&fs, vals, nv);
		free_list(vals, nv);
		push(&fields, &nf, buf_steal(&fs));
	}
	if (!form_type) {
		free_list(fields, nf);
		return NULL; /* XEP-0115 5.4: forms without FORM_TYPE are ignored */
	}
	buf_puts(&s, form_type);
	buf_puts(&s, "<");
	append_sorted(&s, fields, nf);
	free_list(fields, nf);
	free(form_type);
	return buf_steal(&s);
}

/* The features of a disco#info answer; *verified if they hash (SHA-1) to ver. */
static struct pep_caps *
caps_from(const struct xml_node *q, const char *ver, const char *hash, bool *verified)
{
	struct pep_caps *c = xcalloc(1, sizeof *c);
	char **ids = NULL, **feats = NULL, **forms = NULL;
	size_t ni = 0, nfe = 0, nfo = 0;
	struct buf s = {0}, b64 = {0};
	unsigned char md[SHA_DIGEST_LENGTH];

	for (struct xml_node *n = q ? xml_child(q, NULL, NULL) : NULL; n;
	     n = xml_next(n, NULL, NULL)) {
		if (strcmp(n->ns, NS_DISCO_INFO) == 0 && strcmp(n->name, "identity") == 0) {
			struct buf is = {0};
			const char *lang = xml_attr(n, "xml:lang");
			const char *name = xml_attr(n, "name");
			const char *cat = xml_attr(n, "category");
			const char *type = xml_attr(n, "type");
			buf_printf(&is, "%s/%s/%s/%s", cat ? cat : "", type ? type : "",
				   lang ? lang : "", name ? name : "");
			push(&ids, &ni, buf_steal(&is));
		} else if (strcmp(n->ns, NS_DISCO_INFO) == 0 && strcmp(n->name, "feature") == 0 &&
			   xml_attr(n, "var")) {
			push(&feats, &nfe, xstrdup(xml_attr(n, "var")));
			hmap_put(&c->features, xml_attr(n, "var"), c);
		} else if (strcmp(n->ns, NS_XDATA) == 0 && strcmp(n->name, "x") == 0) {
			char *f = form_string(n);
			if (f)
				push(&forms, &nfo, f);
		}
	}
	append_sorted(&s, ids, ni);
	append_sorted(&s, feats, nfe);
	append_sorted(&s, forms, nfo);
	SHA1((const unsigned char *)buf_head(&s), buf_used(&s), md);
	base64_encode(&b64, md, sizeof md);
	*verified = hash && strcmp(hash, "sha-1") == 0 && strcmp(buf_head(&b64), ver) == 0;
	buf_free(&s);
	buf_free(&b64);
	free_list(ids, ni);
	free_list(feats, nfe);
	free_list(forms, nfo);
	return c;
}

bool
pep_iq_result(struct account *a, struct xml_node *st, const struct jid *from)
{
	const char *id = xml_attr(st, "id");
	const char *type = xml_attr(st, "type");
	struct pep_peer *p;
	struct pep_caps *c, *have;
	bool verified;
	char *full;

	if (!id || strncmp(id, CAPS_ID_PREFIX, strlen(CAPS_ID_PREFIX)) != 0 || !type ||
	    (strcmp(type, "result") != 0 && strcmp(type, "error") != 0))
		return false;
	full = jid_full(from);
	p = a->pep ? hmap_get(&a->pep->peers, full) : NULL;
	free(full);
	if (!p || strcmp(p->query, id) != 0 || strcmp(type, "result") != 0) {
		if (p && strcmp(p->query, id) == 0)
			p->query[0] = '\0'; /* an error: no notifications for it */
		xml_free(st);
		return true;
	}
	p->query[0] = '\0';
	c = caps_from(xml_child(st, "query", NS_DISCO_INFO), p->ver, p->sha1 ? "sha-1" : NULL,
		      &verified);
	if (verified) {
		const struct config *cfg = a->w->srv->cfg;
		pthread_mutex_lock(&caps_mu);
		have = hmap_get(&caps_cache, p->ver);
		if (!have && (long)caps_cache.count < cfg->pep_caps_cache) {
			hmap_put(&caps_cache, p->ver, c);
			have = c;
		}
		pthread_mutex_unlock(&caps_mu);
		if (have == c) {
			p->caps = c;
		} else if (have) {
			caps_free(c);
			p->caps = have;
		} else {
			p->caps = c; /* the cache is full: this peer's own copy */
			p->caps_owned = true;
		}
	} else {
		log_debug("pep %s: capabilities of %s do not match ver %s", a->bare, p->full,
			  p->ver);
		p->caps = c;
		p->caps_owned = true;
	}
	if (p->need_last)
		send_last(a, p);
	xml_free(st);
	return true;
}

/* ---- avatars (XEP-0084, XEP-0398) ---- */

/* The hash of the avatar metadata payload xml: "" for none (disabled), NULL if unreadable. */
static char *
avatar_hash(const char *xml, char **type)
{
	struct xml_node *m = xml ? xml_parse(xml, strlen(xml)) : NULL;
	char *hash = NULL;

	if (!m || strcmp(m->ns, NS_AVATAR_META) != 0 || strcmp(m->name, "metadata") != 0) {
		xml_free(m);
		return NULL;
	}
	hash = xstrdup("");
	/* XEP-0398 3.1: the info that does not point to an external URL. */
	for (struct xml_node *i = xml_child(m, "info", NS_AVATAR_META); i;
	     i = xml_next(i, "info", NS_AVATAR_META)) {
		if (!xml_attr(i, "url") && xml_attr(i, "id")) {
			free(hash);
			hash = xstrdup(xml_attr(i, "id"));
			if (type)
				*type = xml_attr(i, "type") ? xstrdup(xml_attr(i, "type")) : NULL;
			break;
		}
	}
	xml_free(m);
	return hash;
}

void
pep_item_changed(struct account *a, const char *node, const char *payload_xml, bool node_deleted)
{
	struct pep_account *pa;

	if (strcmp(node, NS_AVATAR_META) != 0)
		return;
	pa = pep_state(a);
	free(pa->avatar);
	pa->avatar = node_deleted ? NULL : avatar_hash(payload_xml, NULL);
	pa->has_avatar = pa->avatar != NULL;
}

static void
load_meta(void *arg, const char *id, const char *xml)
{
	char **out = arg;

	free(*out);
	*out = xstrdup(xml);
}

struct pep_account *
pep_account_load(struct store *st, const char *bare)
{
	char *xml = NULL;
	struct pep_account *pa;

	if (store_pep_items(st, bare, NS_AVATAR_META, NULL, 1, load_meta, &xml) < 0 || !xml)
		return NULL;
	pa = xcalloc(1, sizeof *pa);
	pa->avatar = avatar_hash(xml, NULL);
	pa->has_avatar = pa->avatar != NULL;
	free(xml);
	return pa;
}

void
pep_presence_out(struct session *s, struct xml_node *st)
{
	struct pep_account *pa = s->acct ? s->acct->pep : NULL;
	struct xml_node *x, *photo;

	if (!pa || !pa->has_avatar)
		return;
	/*
	 * XEP-0398 section 4: every available presence gets the hash, except one with an empty
	 * <photo/> (the client says "no avatar here"); an <x/> without photo is overwritten.
	 */
	x = xml_child(st, "x", NS_VCARD_UPDATE);
	photo = x ? xml_child(x, "photo", NS_VCARD_UPDATE) : NULL;
	if (photo && !photo->first)
		return;
	if (x) {
		xml_detach(x);
		xml_free(x);
	}
	x = xml_add_el(st, "x", NS_VCARD_UPDATE);
	photo = xml_add_el(x, "photo", NS_VCARD_UPDATE);
	if (*pa->avatar)
		xml_add_text(photo, pa->avatar, strlen(pa->avatar));
}

/* ---- vCard reads with the PEP avatar (XEP-0398 section 3.1) ---- */

struct vcard_job {
	struct store_job job;
	struct worker *w;
	struct xml_node *iq;
	char *owner;
	struct buf vcard; /* the stored vCard */
	bool have_vcard;
	char *meta, *data, *type;
};

static int
vcard_run(struct store *st, struct store_job *job)
{
	struct vcard_job *vj = container_of(job, struct vcard_job, job);
	char *hash;
	int r = store_private_get(st, vj->owner, "vCard " NS_VCARD, &vj->vcard);

	if (r < 0 && r != STORE_ENOENT)
		return r;
	vj->have_vcard = r == 0;
	if ((r = store_pep_items(st, vj->owner, NS_AVATAR_META, NULL, 1, load_meta, &vj->meta)) < 0)
		return r;
	hash = vj->meta ? avatar_hash(vj->meta, &vj->type) : NULL;
	if (hash && *hash)
		r = store_pep_items(st, vj->owner, NS_AVATAR_DATA, hash, 1, load_meta, &vj->data);
	free(hash);
	return r;
}

static void
vcard_done(struct store_job *job)
{
	struct vcard_job *vj = container_of(job, struct vcard_job, job);
	struct xml_node *r, *vc = NULL, *data;

	if (job->result < 0) {
		route_error(vj->w, vj->iq, "wait", "internal-server-error", NULL);
		goto out;
	}
	if (vj->have_vcard)
		vc = xml_parse(buf_head(&vj->vcard), buf_used(&vj->vcard));
	if (!vc)
		vc = xml_el_new("vCard", NS_VCARD); /* XEP-0054 3.1: none is the empty one */
	data = vj->data ? xml_parse(vj->data, strlen(vj->data)) : NULL;
	if (data && strcmp(data->ns, NS_AVATAR_DATA) == 0) {
		char *b64 = xml_text(data);
		struct xml_node *photo, *next;
		/* The PEP avatar replaces whatever PHOTO the vCard had. */
		for (photo = xml_child(vc, "PHOTO", NS_VCARD); photo; photo = next) {
			next = xml_next(photo, "PHOTO", NS_VCARD);
			xml_detach(photo);
			xml_free(photo);
		}
		photo = xml_add_el(vc, "PHOTO", NS_VCARD);
		if (vj->type)
			xml_add_text(xml_add_el(photo, "TYPE", NS_VCARD), vj->type,
				     strlen(vj->type));
		xml_add_text(xml_add_el(photo, "BINVAL", NS_VCARD), b64, strlen(b64));
		free(b64);
	}
	xml_free(data);
	r = stanza_new("iq", xml_attr(vj->iq, "to"), xml_attr(vj->iq, "from"), "result",
		       xml_attr(vj->iq, "id"));
	xml_add_child(r, vc);
	route(vj->w, r);
out:
	xml_free(vj->iq);
	buf_free(&vj->vcard);
	free(vj->owner);
	free(vj->meta);
	free(vj->data);
	free(vj->type);
	free(vj);
}

void
pep_vcard_get(struct worker *w, struct xml_node *st, const char *owner)
{
	struct vcard_job *vj = xcalloc(1, sizeof *vj);

	if (!xml_attr(st, "to"))
		xml_set_attr(st, "to", owner); /* the reply comes from the owner's bare JID */
	vj->w = w;
	vj->iq = st;
	vj->owner = xstrdup(owner);
	vj->job.run = vcard_run;
	vj->job.done = vcard_done;
	worker_store(w, &vj->job);
}
