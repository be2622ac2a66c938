/*
 * pep: XEP-0163 personal eventing, the small part of XEP-0060 publish-subscribe that clients use
 * on their own bare JID: publish (with auto-create and XEP-0223 publish-options), retrieve items,
 * retract, create, configure and delete nodes. Requests are answered on the account's home worker;
 * each one is a single storage job that reads the node, checks and writes, so two requests to
 * the same node never interleave.
 *
 * Invariant: only the owner writes; everyone else reads what the node's access model allows
 * them, decided on the home worker from the roster before the job runs. Every request gets
 * exactly one answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pep_int.h"

/* ---- node configuration (XEP-0060 section 16.4.3) ---- */

void
pep_config_default(struct pep_config *c)
{
	*c = (struct pep_config){
	    .access = PEP_PRESENCE, /* XEP-0163 section 4.1 */
	    .max_items = 1,	    /* XEP-0163: the last item is what PEP is about */
	    .persist = true,
	    .send_last = PEP_SEND_ON_SUB_AND_PRESENCE, /* XEP-0163 section 4.3.2 */
	    .deliver_notifications = true,
	    .deliver_payloads = true,
	    .notify_retract = true,
	    .notify_delete = true,
	};
}

static const char *const access_names[] = {"presence", "open", "whitelist"};
static const char *const send_last_names[] = {"never", "on_sub", "on_sub_and_presence"};

static int
parse_bool(const char *v, bool *out)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0)
		*out = true;
	else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int
parse_name(const char *v, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0)
			return (int)i;
	return -1;
}

/* pubsub#max_items: a positive number or 'max' (-1). */
static int
parse_max(const char *v, long *out)
{
	char *end;
	long n;

	if (strcmp(v, "max") == 0) {
		*out = -1;
		return 0;
	}
	n = strtol(v, &end, 10);
	if (!*v || *end || n < 1)
		return -1;
	*out = n;
	return 0;
}

static bool *
bool_option(struct pep_config *c, const char *var)
{
	if (strcmp(var, "pubsub#persist_items") == 0)
		return &c->persist;
	if (strcmp(var, "pubsub#deliver_notifications") == 0)
		return &c->deliver_notifications;
	if (strcmp(var, "pubsub#deliver_payloads") == 0)
		return &c->deliver_payloads;
	if (strcmp(var, "pubsub#notify_retract") == 0)
		return &c->notify_retract;
	if (strcmp(var, "pubsub#notify_delete") == 0)
		return &c->notify_delete;
	return NULL;
}

int
pep_config_set(struct pep_config *c, const char *var, const char *value)
{
	bool *b = bool_option(c, var);
	int i;

	if (b)
		return parse_bool(value, b);
	if (strcmp(var, "pubsub#access_model") == 0) {
		if ((i = parse_name(value, access_names, ARRAY_LEN(access_names))) < 0)
			return -1;
		c->access = (enum pep_access)i;
		return 0;
	}
	if (strcmp(var, "pubsub#send_last_published_item") == 0) {
		if ((i = parse_name(value, send_last_names, ARRAY_LEN(send_last_names))) < 0)
			return -1;
		c->send_last = (enum pep_send_last)i;
		return 0;
	}
	if (strcmp(var, "pubsub#max_items") == 0)
		return parse_max(value, &c->max_items);
	return -2;
}

bool
pep_config_matches(const struct pep_config *c, const char *var, const char *value, long items_max)
{
	struct pep_config want = *c;

	if (pep_config_set(&want, var, value) < 0)
		return false;
	/* 'max' and the number it stands for are the same precondition. */
	if (strcmp(var, "pubsub#max_items") == 0)
		return pep_config_keep(&want, items_max) == pep_config_keep(c, items_max);
	/* Field by field: padding bytes of the two copies need not agree. */
	return want.access == c->access && want.max_items == c->max_items &&
	       want.persist == c->persist && want.send_last == c->send_last &&
	       want.deliver_notifications == c->deliver_notifications &&
	       want.deliver_payloads == c->deliver_payloads &&
	       want.notify_retract == c->notify_retract && want.notify_delete == c->notify_delete;
}

void
pep_config_write(const struct pep_config *c, struct buf *out)
{
	buf_printf(out, "pubsub#access_model=%s\n", access_names[c->access]);
	if (c->max_items < 0)
		buf_puts(out, "pubsub#max_items=max\n");
	else
		buf_printf(out, "pubsub#max_items=%ld\n", c->max_items);
	buf_printf(out, "pubsub#persist_items=%d\n", c->persist);
	buf_printf(out, "pubsub#send_last_published_item=%s\n", send_last_names[c->send_last]);
	buf_printf(out, "pubsub#deliver_notifications=%d\n", c->deliver_notifications);
	buf_printf(out, "pubsub#deliver_payloads=%d\n", c->deliver_payloads);
	buf_printf(out, "pubsub#notify_retract=%d\n", c->notify_retract);
	buf_printf(out, "pubsub#notify_delete=%d\n", c->notify_delete);
}

void
pep_config_read(struct pep_config *c, const char *text)
{
	pep_config_default(c);
	while (text && *text) {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);
		char *line = xstrndup(text, len);
		char *eq = strchr(line, '=');
		if (eq) {
			*eq = '\0';
			(void)pep_config_set(c, line, eq + 1);
		}
		free(line);
		text += len + (nl ? 1 : 0);
	}
}

long
pep_config_keep(const struct pep_config *c, long items_max)
{
	long keep = c->max_items < 0 || c->max_items > items_max ? items_max : c->max_items;

	/* XEP-0060 section 4.3: a transient node keeps nothing but what send-last needs. */
	if (!c->persist)
		keep = 1;
	return keep < 1 ? 1 : keep;
}

bool
pep_config_readable(const struct pep_config *c, enum pep_rel rel)
{
	switch (c->access) {
	case PEP_OPEN:
		return true;
	case PEP_PRESENCE:
		return rel >= PEP_REL_PRESENCE;
	case PEP_WHITELIST:
		return rel == PEP_REL_OWNER; /* PEP has no whitelist affiliations: the owner only */
	}
	return false;
}

enum pep_rel
pep_relation(const struct account *a, const char *from_bare)
{
	const struct roster_item *it;

	if (strcmp(from_bare, a->bare) == 0)
		return PEP_REL_OWNER;
	it = hmap_get(&a->roster, from_bare);
	return it && (it->sub & STORE_SUB_FROM) ? PEP_REL_PRESENCE : PEP_REL_NONE;
}

/* ---- requests ---- */

enum pep_op { OP_PUBLISH, OP_ITEMS, OP_RETRACT, OP_CREATE, OP_DELETE, OP_CONF_GET, OP_CONF_SET };

struct pep_item {
	char *id, *xml;
};

struct pep_job {
	struct store_job job;
	struct account *a; /* a->refs held until done */
	struct xml_node *iq;
	enum pep_op op;
	enum pep_rel rel;
	char *owner, *node, *id, *payload;
	char **vars, **vals; /* publish-options or a submitted configuration form */
	size_t nopts;
	char **ids; /* items requested by id */
	size_t nids;
	size_t max;	 /* items: the newest max (0 = all) */
	bool notify;	 /* retract notify='true' */
	long max_nodes;	 /* pep.max_nodes */
	long items_max;	 /* pep.max_items */
	struct buf text; /* scratch: the stored configuration */
	/* results */
	const char *etype, *econd, *eapp, *etext; /* an error to answer with */
	struct pep_config cfg;			  /* the node's configuration afterwards */
	struct pep_item *items;			  /* newest first */
	size_t n, cap;
};

static void
job_error(struct pep_job *pj, const char *type, const char *cond, const char *app, const char *text)
{
	pj->etype = type;
	pj->econd = cond;
	pj->eapp = app;
	pj->etext = text;
}

static void
collect_item(void *arg, const char *id, const char *xml)
{
	struct pep_job *pj = arg;

	if (pj->n == pj->cap) {
		pj->cap = pj->cap ? pj->cap * 2 : 4;
		pj->items = xrealloc(pj->items, pj->cap * sizeof *pj->items);
	}
	pj->items[pj->n].id = xstrdup(id);
	pj->items[pj->n].xml = xstrdup(xml);
	pj->n++;
}

/* Loads the node's configuration into pj->cfg; STORE_ENOENT if there is no such node. */
static int
load_node(struct store *st, struct pep_job *pj)
{
	int r;

	buf_reset(&pj->text);
	r = store_pep_node_get(st, pj->owner, pj->node, &pj->text);
	if (r == 0)
		pep_config_read(&pj->cfg, buf_head(&pj->text));
	return r;
}

/* Creates the node with the options of pj (defaults for the rest); 0, 1 if refused, or < 0. */
static int
create_node(struct store *st, struct pep_job *pj, bool precondition)
{
	long count = store_pep_node_count(st, pj->owner);
	int r;

	if (count < 0)
		return (int)count;
	if (count >= pj->max_nodes) {
		job_error(pj, "cancel", "policy-violation", NULL,
			  "too many PEP nodes (pep.max_nodes)");
		return 1;
	}
	pep_config_default(&pj->cfg);
	for (size_t i = 0; i < pj->nopts; i++) {
		r = pep_config_set(&pj->cfg, pj->vars[i], pj->vals[i]);
		if (r < 0 && precondition) {
			/* XEP-0060 7.1.5: options the node cannot have are a failed precondition.
			 */
			job_error(pj, "cancel", "conflict", "precondition-not-met", pj->vars[i]);
			return 1;
		}
		if (r < 0) {
			job_error(pj, "modify", "not-acceptable", NULL, pj->vars[i]);
			return 1;
		}
	}
	buf_reset(&pj->text);
	pep_config_write(&pj->cfg, &pj->text);
	r = store_pep_node_put(st, pj->owner, pj->node, buf_head(&pj->text));
	return r < 0 ? r : 0;
}

static int
run_publish(struct store *st, struct pep_job *pj)
{
	int r = load_node(st, pj);

	if (r == STORE_ENOENT) {
		r = create_node(st, pj, true); /* XEP-0060 7.1.4 auto-create */
		if (r != 0)
			return r < 0 ? r : 0;
	} else if (r < 0) {
		return r;
	} else {
		for (size_t i = 0; i < pj->nopts; i++) {
			if (!pep_config_matches(&pj->cfg, pj->vars[i], pj->vals[i],
						pj->items_max)) {
				/* XEP-0060 7.1.5: the node exists with another configuration. */
				job_error(pj, "cancel", "conflict", "precondition-not-met",
					  pj->vars[i]);
				return 0;
			}
		}
	}
	return store_pep_item_put(st, pj->owner, pj->node, pj->id, pj->payload,
				  pep_config_keep(&pj->cfg, pj->items_max));
}

/* The error XEP-0060 section 6.5.9 gives a requester the access model keeps out. */
static void
access_error(struct pep_job *pj)
{
	if (pj->cfg.access == PEP_PRESENCE)
		job_error(pj, "auth", "not-authorized", "presence-subscription-required", NULL);
	else
		job_error(pj, "cancel", "not-allowed", "closed-node", NULL);
}

static int
run_items(struct store *st, struct pep_job *pj)
{
	int r = load_node(st, pj);

	if (r == STORE_ENOENT) {
		job_error(pj, "cancel", "item-not-found", NULL, NULL);
		return 0;
	}
	if (r < 0)
		return r;
	if (!pep_config_readable(&pj->cfg, pj->rel)) {
		access_error(pj);
		return 0;
	}
	for (size_t i = 0; i < pj->nids; i++)
		if ((r = store_pep_items(st, pj->owner, pj->node, pj->ids[i], 1, collect_item,
					 pj)) < 0)
			return r;
	if (!pj->nids)
		r = store_pep_items(st, pj->owner, pj->node, NULL, pj->max, collect_item, pj);
	return r;
}

static int
run_retract(struct store *st, struct pep_job *pj)
{
	int r = load_node(st, pj);

	if (r == 0)
		r = store_pep_item_del(st, pj->owner, pj->node, pj->id);
	if (r == STORE_ENOENT) {
		job_error(pj, "cancel", "item-not-found", NULL, NULL);
		return 0;
	}
	if (r < 0)
		return r;
	/* What is newest now, for the avatar hash. */
	return store_pep_items(st, pj->owner, pj->node, NULL, 1, collect_item, pj);
}

static int
run_conf_set(struct store *st, struct pep_job *pj)
{
	int r = load_node(st, pj);

	if (r == STORE_ENOENT) {
		job_error(pj, "cancel", "item-not-found", NULL, NULL);
		return 0;
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < pj->nopts; i++) {
		if (pep_config_set(&pj->cfg, pj->vars[i], pj->vals[i]) < 0) {
			/* XEP-0060 8.2.5.3: an option or value the service does not have */
			job_error(pj, "modify", "not-acceptable", NULL, pj->vars[i]);
			return 0;
		}
	}
	buf_reset(&pj->text);
	pep_config_write(&pj->cfg, &pj->text);
	if ((r = store_pep_node_put(st, pj->owner, pj->node, buf_head(&pj->text))) < 0)
		return r;
	return store_pep_trim(st, pj->owner, pj->node, pep_config_keep(&pj->cfg, pj->items_max));
}

static int
pep_run(struct store *st, struct store_job *job)
{
	struct pep_job *pj = container_of(job, struct pep_job, job);
	int r;

	switch (pj->op) {
	case OP_PUBLISH:
		return run_publish(st, pj);
	case OP_ITEMS:
		return run_items(st, pj);
	case OP_RETRACT:
		return run_retract(st, pj);
	case OP_CREATE:
		r = load_node(st, pj);
		if (r == 0)
			job_error(pj, "cancel", "conflict", NULL, NULL); /* XEP-0060 8.1.3 */
		if (r != STORE_ENOENT)
			return r;
		r = create_node(st, pj, false);
		return r < 0 ? r : 0;
	case OP_DELETE:
		r = load_node(st, pj);
		if (r == 0)
			r = store_pep_node_del(st, pj->owner, pj->node);
		if (r == STORE_ENOENT) {
			job_error(pj, "cancel", "item-not-found", NULL, NULL);
			return 0;
		}
		return r;
	case OP_CONF_GET:
		r = load_node(st, pj);
		if (r == STORE_ENOENT) {
			job_error(pj, "cancel", "item-not-found", NULL, NULL);
			return 0;
		}
		return r;
	case OP_CONF_SET:
		return run_conf_set(st, pj);
	}
	return 0;
}

/* ---- answers ---- */

/* Sends an error reply for iq with an application condition in pubsub#errors (may be NULL). */
static void
reply_error(struct worker *w, const struct xml_node *iq, const char *type, const char *cond,
	    const char *app, const char *text)
{
	struct xml_node *r, *err;

	if (stanza_is_error(iq))
		return;
	r = stanza_error_reply(iq, type, cond, text);
	err = xml_child(r, "error", NULL);
	if (app && err)
		xml_add_el(err, app, NS_PUBSUB_ERRORS);
	route(w, r);
}

static void
reply(struct worker *w, const struct xml_node *iq, struct xml_node *payload)
{
	struct xml_node *r = stanza_new("iq", xml_attr(iq, "to"), xml_attr(iq, "from"), "result",
					xml_attr(iq, "id"));
	if (payload)
		xml_add_child(r, payload);
	route(w, r);
}

static void
add_field(struct xml_node *x, const char *var, const char *type, const char *value,
	  const char *const *options, size_t nopt)
{
	struct xml_node *f = xml_add_el(x, "field", NS_XDATA);

	xml_set_attr(f, "var", var);
	if (type)
		xml_set_attr(f, "type", type);
	xml_add_text(xml_add_el(f, "value", NS_XDATA), value, strlen(value));
	for (size_t i = 0; i < nopt; i++) {
		struct xml_node *o = xml_add_el(f, "option", NS_XDATA);
		xml_add_text(xml_add_el(o, "value", NS_XDATA), options[i], strlen(options[i]));
	}
}

/* The node configuration form (XEP-0060 section 8.2.1), with the node's current values. */
static struct xml_node *
config_form(const struct pep_config *c)
{
	struct xml_node *x = xml_el_new("x", NS_XDATA);
	char max[24];

	xml_set_attr(x, "type", "form");
	add_field(x, "FORM_TYPE", "hidden", NS_PUBSUB_NODE_CONFIG, NULL, 0);
	add_field(x, "pubsub#access_model", "list-single", access_names[c->access], access_names,
		  ARRAY_LEN(access_names));
	if (c->max_items < 0)
		snprintf(max, sizeof max, "max");
	else
		snprintf(max, sizeof max, "%ld", c->max_items);
	add_field(x, "pubsub#max_items", "text-single", max, NULL, 0);
	add_field(x, "pubsub#persist_items", "boolean", c->persist ? "1" : "0", NULL, 0);
	add_field(x, "pubsub#send_last_published_item", "list-single",
		  send_last_names[c->send_last], send_last_names, ARRAY_LEN(send_last_names));
	add_field(x, "pubsub#deliver_notifications", "boolean",
		  c->deliver_notifications ? "1" : "0", NULL, 0);
	add_field(x, "pubsub#deliver_payloads", "boolean", c->deliver_payloads ? "1" : "0", NULL,
		  0);
	add_field(x, "pubsub#notify_retract", "boolean", c->notify_retract ? "1" : "0", NULL, 0);
	add_field(x, "pubsub#notify_delete", "boolean", c->notify_delete ? "1" : "0", NULL, 0);
	return x;
}

static struct xml_node *
pubsub_el(const char *ns, const char *child, const char *node)
{
	struct xml_node *p = xml_el_new("pubsub", ns);
	struct xml_node *c = xml_add_el(p, child, ns);

	xml_set_attr(c, "node", node);
	return p;
}

struct xml_node *
pep_event_item(const char *node, const char *id, const char *xml, bool payload)
{
	struct xml_node *ev = xml_el_new("event", NS_PUBSUB_EVENT);
	struct xml_node *items = xml_add_el(ev, "items", NS_PUBSUB_EVENT);
	struct xml_node *item = xml_add_el(items, "item", NS_PUBSUB_EVENT);
	struct xml_node *el = payload && xml ? xml_parse(xml, strlen(xml)) : NULL;

	xml_set_attr(items, "node", node);
	xml_set_attr(item, "id", id);
	if (el)
		xml_add_child(item, el);
	return ev;
}

static void
answer_items(struct pep_job *pj)
{
	struct xml_node *p = pubsub_el(NS_PUBSUB, "items", pj->node);
	struct xml_node *items = xml_child(p, "items", NS_PUBSUB);

	/* Oldest first, as they were published. */
	for (size_t i = pj->n; i-- > 0;) {
		struct xml_node *item = xml_add_el(items, "item", NS_PUBSUB);
		struct xml_node *el = xml_parse(pj->items[i].xml, strlen(pj->items[i].xml));
		xml_set_attr(item, "id", pj->items[i].id);
		if (el)
			xml_add_child(item, el);
	}
	if (pj->nids && !pj->n) {
		xml_free(p); /* XEP-0060 6.5.8: asked by id and none is there */
		reply_error(pj->a->w, pj->iq, "cancel", "item-not-found", NULL, NULL);
		return;
	}
	reply(pj->a->w, pj->iq, p);
}

static void
pep_done(struct store_job *job)
{
	struct pep_job *pj = container_of(job, struct pep_job, job);
	struct account *a = pj->a;
	struct worker *w = a->w;
	struct xml_node *ev, *p;

	if (job->result < 0) {
		log_error("pep %s: storage failed (node %s)", a->bare, pj->node);
		reply_error(w, pj->iq, "wait", "internal-server-error", NULL, NULL);
	} else if (pj->econd) {
		reply_error(w, pj->iq, pj->etype, pj->econd, pj->eapp, pj->etext);
	} else {
		switch (pj->op) {
		case OP_PUBLISH:
			p = pubsub_el(NS_PUBSUB, "publish", pj->node);
			xml_set_attr(xml_add_el(xml_child(p, "publish", NS_PUBSUB), "item", NULL),
				     "id", pj->id);
			reply(w, pj->iq, p);
			if (a->state == AS_READY) {
				pep_item_changed(a, pj->node, pj->payload, false);
				ev = pep_event_item(pj->node, pj->id, pj->payload,
						    pj->cfg.deliver_payloads);
				if (pj->cfg.deliver_notifications)
					pep_notify(a, pj->node, &pj->cfg, ev);
				xml_free(ev);
			}
			break;
		case OP_ITEMS:
			answer_items(pj);
			break;
		case OP_RETRACT:
			reply(w, pj->iq, NULL);
			pep_item_changed(a, pj->node, pj->n ? pj->items[0].xml : NULL, false);
			if (pj->notify || pj->cfg.notify_retract) {
				/* XEP-0060 7.2.2.1 */
				ev = xml_el_new("event", NS_PUBSUB_EVENT);
				p = xml_add_el(ev, "items", NS_PUBSUB_EVENT);
				xml_set_attr(p, "node", pj->node);
				xml_set_attr(xml_add_el(p, "retract", NS_PUBSUB_EVENT), "id",
					     pj->id);
				pep_notify(a, pj->node, &pj->cfg, ev);
				xml_free(ev);
			}
			break;
		case OP_DELETE:
			reply(w, pj->iq, NULL);
			pep_item_changed(a, pj->node, NULL, true);
			if (pj->cfg.notify_delete) {
				/* XEP-0060 8.4.2 */
				ev = xml_el_new("event", NS_PUBSUB_EVENT);
				xml_set_attr(xml_add_el(ev, "delete", NS_PUBSUB_EVENT), "node",
					     pj->node);
				pep_notify(a, pj->node, &pj->cfg, ev);
				xml_free(ev);
			}
			break;
		case OP_CONF_GET:
			p = pubsub_el(NS_PUBSUB_OWNER, "configure", pj->node);
			xml_add_child(xml_child(p, "configure", NS_PUBSUB_OWNER),
				      config_form(&pj->cfg));
			reply(w, pj->iq, p);
			break;
		case OP_CREATE:
		case OP_CONF_SET:
			reply(w, pj->iq, NULL);
			break;
		}
	}
	xml_free(pj->iq);
	for (size_t i = 0; i < pj->nopts; i++) {
		free(pj->vars[i]);
		free(pj->vals[i]);
	}
	for (size_t i = 0; i < pj->nids; i++)
		free(pj->ids[i]);
	for (size_t i = 0; i < pj->n; i++) {
		free(pj->items[i].id);
		free(pj->items[i].xml);
	}
	free(pj->vars);
	free(pj->vals);
	free(pj->ids);
	free(pj->items);
	free(pj->owner);
	free(pj->node);
	free(pj->id);
	free(pj->payload);
	buf_free(&pj->text);
	free(pj);
	a->refs--;
	account_maybe_unload(a);
}

/*
 * Reads the fields of a data form (XEP-0004) into pj's options, FORM_TYPE aside. Returns 0, or -1
 * if the form is of another type than form_type.
 */
static int
read_form(struct pep_job *pj, const struct xml_node *x, const char *form_type)
{
	for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f;
	     f = xml_next(f, "field", NS_XDATA)) {
		const char *var = xml_attr(f, "var");
		char *value =
		    xml_text(xml_child(f, "value", NS_XDATA) ? xml_child(f, "value", NS_XDATA) : f);
		if (!var) {
			free(value);
			continue;
		}
		if (strcmp(var, "FORM_TYPE") == 0) {
			bool ok = strcmp(value, form_type) == 0;
			free(value);
			if (!ok)
				return -1;
			continue;
		}
		pj->vars = xrealloc(pj->vars, (pj->nopts + 1) * sizeof *pj->vars);
		pj->vals = xrealloc(pj->vals, (pj->nopts + 1) * sizeof *pj->vals);
		pj->vars[pj->nopts] = xstrdup(var);
		pj->vals[pj->nopts] = value;
		pj->nopts++;
	}
	return 0;
}

bool
pep_is(const struct xml_node *st)
{
	return xml_child(st, "pubsub", NS_PUBSUB) || xml_child(st, "pubsub", NS_PUBSUB_OWNER);
}

/* The one payload element of item, serialized, or an error (set in pj). */
static int
read_payload(struct pep_job *pj, const struct xml_node *item, size_t max_size)
{
	struct xml_node *el = item ? xml_child(item, NULL, NULL) : NULL;
	struct buf b = {0};

	if (!item) {
		job_error(pj, "modify", "bad-request", "item-required", NULL); /* 7.1.3.6 */
		return -1;
	}
	if (!el) {
		job_error(pj, "modify", "bad-request", "payload-required", NULL); /* 7.1.3.6 */
		return -1;
	}
	if (xml_next(el, NULL, NULL)) {
		job_error(pj, "modify", "bad-request", "invalid-payload", NULL); /* 7.1.3.5 */
		return -1;
	}
	xml_write(&b, el, "");
	if (buf_used(&b) > max_size) {
		buf_free(&b);
		job_error(pj, "modify", "not-acceptable", "payload-too-big", NULL); /* 7.1.3.4 */
		return -1;
	}
	pj->payload = buf_steal(&b);
	return 0;
}

/* Fills pj from a pubsub-namespace request; -1 with the error set if it is not one we do. */
static int
parse_pubsub(struct pep_job *pj, const struct xml_node *ps, bool set)
{
	const struct config *cfg = pj->a->w->srv->cfg;
	struct xml_node *c = xml_child(ps, NULL, NULL);
	const char *node = c ? xml_attr(c, "node") : NULL;
	struct xml_node *x;

	if (!c) {
		job_error(pj, "modify", "bad-request", NULL, NULL);
		return -1;
	}
	if (strcmp(c->ns, NS_PUBSUB) == 0 && strcmp(c->name, "publish") == 0 && set) {
		struct xml_node *item = xml_child(c, "item", NS_PUBSUB);
		pj->op = OP_PUBLISH;
		if (item && xml_next(item, "item", NS_PUBSUB)) {
			job_error(pj, "modify", "bad-request", "invalid-payload", NULL);
			return -1;
		}
		if (read_payload(pj, item, cfg->pep_max_item_size) < 0)
			return -1;
		if (item && xml_attr(item, "id") && *xml_attr(item, "id")) {
			pj->id = xstrdup(xml_attr(item, "id"));
		} else {
			char id[17];
			rand_id(id, sizeof id - 1); /* XEP-0060 7.1.2: the service makes one */
			pj->id = xstrdup(id);
		}
		x = xml_child(ps, "publish-options", NS_PUBSUB);
		x = x ? xml_child(x, "x", NS_XDATA) : NULL;
		if (x && read_form(pj, x, NS_PUBSUB_PUB_OPTIONS) < 0) {
			job_error(pj, "modify", "bad-request", "invalid-options", NULL);
			return -1;
		}
	} else if (strcmp(c->ns, NS_PUBSUB) == 0 && strcmp(c->name, "items") == 0 && !set) {
		const char *max = xml_attr(c, "max_items");
		pj->op = OP_ITEMS;
		if (max) {
			char *end;
			long n = strtol(max, &end, 10);
			if (!*max || *end || n < 1) {
				job_error(pj, "modify", "bad-request", NULL, "bad max_items");
				return -1;
			}
			pj->max = (size_t)n;
		}
		for (struct xml_node *i = xml_child(c, "item", NS_PUBSUB); i;
		     i = xml_next(i, "item", NS_PUBSUB)) {
			if (!xml_attr(i, "id"))
				continue;
			pj->ids = xrealloc(pj->ids, (pj->nids + 1) * sizeof *pj->ids);
			pj->ids[pj->nids++] = xstrdup(xml_attr(i, "id"));
		}
	} else if (strcmp(c->ns, NS_PUBSUB) == 0 && strcmp(c->name, "retract") == 0 && set) {
		struct xml_node *item = xml_child(c, "item", NS_PUBSUB);
		const char *notify = xml_attr(c, "notify");
		pj->op = OP_RETRACT;
		if (!item || !xml_attr(item, "id")) {
			job_error(pj, "modify", "bad-request", "item-required", NULL); /* 7.2.3.3 */
			return -1;
		}
		pj->id = xstrdup(xml_attr(item, "id"));
		pj->notify = notify && (strcmp(notify, "1") == 0 || strcmp(notify, "true") == 0);
	} else if (strcmp(c->ns, NS_PUBSUB) == 0 && strcmp(c->name, "create") == 0 && set) {
		pj->op = OP_CREATE;
		x = xml_child(ps, "configure", NS_PUBSUB);
		x = x ? xml_child(x, "x", NS_XDATA) : NULL;
		if (x && read_form(pj, x, NS_PUBSUB_NODE_CONFIG) < 0) {
			job_error(pj, "modify", "bad-request", NULL, "not a node configuration");
			return -1;
		}
	} else {
		/* XEP-0060 section 6: subscriptions are implicit in PEP (XEP-0163 section 4) */
		job_error(pj, "cancel", "feature-not-implemented", NULL, c->name);
		return -1;
	}
	if (!node || !*node) {
		job_error(pj, "modify", "bad-request", "nodeid-required", NULL);
		return -1;
	}
	pj->node = xstrdup(node);
	return 0;
}

/* The same for pubsub#owner requests (configure, delete). */
static int
parse_owner(struct pep_job *pj, const struct xml_node *ps, bool set)
{
	struct xml_node *c = xml_child(ps, NULL, NULL);
	const char *node = c ? xml_attr(c, "node") : NULL;

	if (c && strcmp(c->name, "configure") == 0 && strcmp(c->ns, NS_PUBSUB_OWNER) == 0) {
		struct xml_node *x = xml_child(c, "x", NS_XDATA);
		pj->op = set ? OP_CONF_SET : OP_CONF_GET;
		if (set && !x) {
			job_error(pj, "modify", "bad-request", NULL, "no form");
			return -1;
		}
		/* XEP-0060 8.2.4: a cancelled form changes nothing. */
		if (set && xml_attr(x, "type") && strcmp(xml_attr(x, "type"), "cancel") == 0)
			pj->op = OP_CONF_GET;
		else if (set && read_form(pj, x, NS_PUBSUB_NODE_CONFIG) < 0) {
			job_error(pj, "modify", "bad-request", NULL, "not a node configuration");
			return -1;
		}
	} else if (c && strcmp(c->name, "delete") == 0 && strcmp(c->ns, NS_PUBSUB_OWNER) == 0 &&
		   set) {
		pj->op = OP_DELETE;
	} else {
		job_error(pj, "cancel", "feature-not-implemented", NULL, c ? c->name : NULL);
		return -1;
	}
	if (!node || !*node) {
		job_error(pj, "modify", "bad-request", "nodeid-required", NULL);
		return -1;
	}
	pj->node = xstrdup(node);
	return 0;
}

void
pep_iq(struct account *a, struct xml_node *st, const struct jid *from)
{
	const struct config *cfg = a->w->srv->cfg;
	struct pep_job *pj = xcalloc(1, sizeof *pj);
	struct xml_node *ps = xml_child(st, "pubsub", NS_PUBSUB);
	bool set = strcmp(xml_attr(st, "type"), "set") == 0;
	char *bare = jid_bare(from);
	int r;

	pj->a = a;
	a->refs++;
	pj->iq = st;
	pj->rel = pep_relation(a, bare);
	free(bare);
	pj->owner = xstrdup(a->bare);
	pj->max_nodes = cfg->pep_max_nodes;
	pj->items_max = cfg->pep_max_items < 1 ? 1 : cfg->pep_max_items;
	if (!xml_attr(st, "to"))
		xml_set_attr(st, "to", a->bare); /* the answer comes from the bare JID */
	r = ps ? parse_pubsub(pj, ps, set)
	       : parse_owner(pj, xml_child(st, "pubsub", NS_PUBSUB_OWNER), set);
	/* XEP-0060 7.1.3.1, 8.2.3.2, 8.4.3.1: only the owner changes its nodes. */
	if (r == 0 && pj->op != OP_ITEMS && pj->rel != PEP_REL_OWNER) {
		job_error(pj, "auth", "forbidden", NULL, NULL);
		r = -1;
	}
	if (r < 0) {
		/* Answered now, through the same path as after a job. */
		pj->job.result = 0;
		pep_done(&pj->job);
		return;
	}
	pj->job.run = pep_run;
	pj->job.done = pep_done;
	worker_store(a->w, &pj->job);
}

/* ---- disco (XEP-0030 on the account, XEP-0060 section 5) ---- */

static const char *const pep_features[] = {
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options", /* XEP-0060 7.1.5, XEP-0223 */
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#retrieve-items",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#multi-items",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#presence-notifications",
    "urn:xmpp:pep-vcard-conversion:0", /* XEP-0398 section 2 */
    NULL,
};

void
pep_disco_info(struct xml_node *q)
{
	struct xml_node *id = xml_add_el(q, "identity", NS_DISCO_INFO);

	/* XEP-0163 section 1.2: the account is a virtual pubsub service. */
	xml_set_attr(id, "category", "pubsub");
	xml_set_attr(id, "type", "pep");
	for (const char *const *f = pep_features; *f; f++)
		xml_set_attr(xml_add_el(q, "feature", NS_DISCO_INFO), "var", *f);
}

struct nodes_job {
	struct store_job job;
	struct account *a;
	struct xml_node *iq, *query;
	enum pep_rel rel;
	char *owner;
};

static void
list_node(void *arg, const char *node, const char *config)
{
	struct nodes_job *nj = arg;
	struct pep_config c;

	pep_config_read(&c, config);
	if (pep_config_readable(&c, nj->rel)) {
		struct xml_node *it = xml_add_el(nj->query, "item", NS_DISCO_ITEMS);
		xml_set_attr(it, "jid", nj->owner);
		xml_set_attr(it, "node", node);
	}
}

static int
nodes_run(struct store *st, struct store_job *job)
{
	struct nodes_job *nj = container_of(job, struct nodes_job, job);

	return store_pep_nodes(st, nj->owner, list_node, nj);
}

static void
nodes_done(struct store_job *job)
{
	struct nodes_job *nj = container_of(job, struct nodes_job, job);
	struct account *a = nj->a;

	if (job->result < 0) {
		reply_error(a->w, nj->iq, "wait", "internal-server-error", NULL, NULL);
		xml_free(nj->query);
	} else {
		reply(a->w, nj->iq, nj->query);
	}
	xml_free(nj->iq);
	free(nj->owner);
	free(nj);
	a->refs--;
	account_maybe_unload(a);
}

void
pep_disco_items(struct account *a, struct xml_node *st, const struct jid *from)
{
	struct nodes_job *nj = xcalloc(1, sizeof *nj);
	char *bare = jid_bare(from);

	nj->a = a;
	a->refs++;
	nj->iq = st;
	nj->rel = pep_relation(a, bare);
	free(bare);
	nj->owner = xstrdup(a->bare);
	nj->query = xml_el_new("query", NS_DISCO_ITEMS);
	nj->job.run = nodes_run;
	nj->job.done = nodes_done;
	worker_store(a->w, &nj->job);
}
