/*
 * muc_config: what a room keeps and how it is changed: its configuration and its
 * affiliations, written to storage for persistent rooms, and the iqs that read and change
 * them (disco, muc#admin for roles and affiliations, muc#owner for the configuration form
 * and destruction).
 *
 * Invariant: a persistent room's stored state follows every change, in order, through
 * the storage queue; a temporary room touches storage only to be forgotten.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muc_int.h"

/* ---- persistence ---- */

static char *
cfg_serialize(const struct room *r)
{
	struct buf b = {0};

	buf_printf(&b,
		   "persistent=%d\nmembers_only=%d\npublic=%d\nmoderated=%d\n"
		   "change_subject=%d\nmax_users=%ld\nsecret=%s\nname=%s\n",
		   r->cfg.persistent, r->cfg.members_only, r->cfg.public_room, r->cfg.moderated,
		   r->cfg.change_subject, r->cfg.max_users, r->cfg.secret, r->cfg.name);
	return buf_steal(&b);
}

void
muc_cfg_defaults(struct room_cfg *c)
{
	free(c->name);
	free(c->secret);
	memset(c, 0, sizeof *c);
	c->name = xstrdup("");
	c->secret = xstrdup("");
	c->public_room = true;
	c->max_users = MUC_DEFAULT_MAX_USERS;
}

void
muc_cfg_parse(struct room_cfg *c, const char *text)
{
	muc_cfg_defaults(c);
	while (text && *text) {
		const char *nl = strchr(text, '\n'), *eq = strchr(text, '=');
		size_t n = nl ? (size_t)(nl - text) : strlen(text);
		if (eq && eq < text + n) {
			size_t k = (size_t)(eq - text);
			char *v = xstrndup(eq + 1, n - k - 1);
#define FLAG(name, field)                                                                          \
	if (k == strlen(name) && strncmp(text, name, k) == 0)                                      \
		c->field = atoi(v) != 0;
			FLAG("persistent", persistent)
			FLAG("members_only", members_only)
			FLAG("public", public_room)
			FLAG("moderated", moderated)
			FLAG("change_subject", change_subject)
#undef FLAG
			if (k == 9 && strncmp(text, "max_users", 9) == 0)
				c->max_users = atol(v);
			if (k == 6 && strncmp(text, "secret", 6) == 0) {
				free(c->secret);
				c->secret = xstrdup(v);
			}
			if (k == 4 && strncmp(text, "name", 4) == 0) {
				free(c->name);
				c->name = xstrdup(v);
			}
			free(v);
		}
		text += n + (nl ? 1 : 0);
	}
}

struct save_job {
	struct store_job job;
	char *room, *config, *subject, *jid;
	int aff;
	enum { SAVE_ROOM, SAVE_DELETE, SAVE_AFF } op;
	char **affjids; /* SAVE_ROOM: all affiliations, jid/aff pairs */
	int *affs;
	size_t naffs;
};

static int
save_run(struct store *st, struct store_job *job)
{
	struct save_job *sj = container_of(job, struct save_job, job);
	int r;

	switch (sj->op) {
	case SAVE_DELETE:
		return store_room_delete(st, sj->room);
	case SAVE_AFF:
		return store_room_set_affiliation(st, sj->room, sj->jid, sj->aff);
	default:
		if ((r = store_room_put(st, sj->room, sj->config, sj->subject)) < 0)
			return r;
		for (size_t i = 0; i < sj->naffs; i++)
			if ((r = store_room_set_affiliation(st, sj->room, sj->affjids[i],
							    sj->affs[i])) < 0)
				return r;
		return 0;
	}
}

static void
save_done(struct store_job *job)
{
	struct save_job *sj = container_of(job, struct save_job, job);

	if (job->result < 0)
		log_error("muc: storage failed for room %s", sj->room);
	for (size_t i = 0; i < sj->naffs; i++)
		free(sj->affjids[i]);
	free(sj->affjids);
	free(sj->affs);
	free(sj->room);
	free(sj->config);
	free(sj->subject);
	free(sj->jid);
	free(sj);
}

static void
save_submit(struct room *r, struct save_job *sj)
{
	sj->room = xstrdup(r->jid);
	sj->job.run = save_run;
	sj->job.done = save_done; /* on the storage thread */
	store_submit(r->w->srv->store, &sj->job);
}

/* Writes the whole room (config, subject, affiliations); for rooms just made persistent. */
void
muc_save_room(struct room *r)
{
	struct save_job *sj;
	const char *k;
	void *v;

	if (!r->cfg.persistent)
		return;
	sj = xcalloc(1, sizeof *sj);
	sj->op = SAVE_ROOM;
	sj->config = cfg_serialize(r);
	sj->subject = xstrdup(r->subject ? r->subject : "");
	sj->affjids = xcalloc(r->affs.count + 1, sizeof *sj->affjids);
	sj->affs = xcalloc(r->affs.count + 1, sizeof *sj->affs);
	for (size_t i = 0; hmap_next(&r->affs, &i, &k, &v);) {
		sj->affjids[sj->naffs] = xstrdup(k);
		sj->affs[sj->naffs++] = (int)(intptr_t)v;
	}
	save_submit(r, sj);
}

void
muc_set_aff(struct room *r, const char *bare, int aff)
{
	if (aff == AFF_NONE)
		hmap_del(&r->affs, bare);
	else
		hmap_put(&r->affs, bare, (void *)(intptr_t)aff);
	if (r->cfg.persistent) {
		struct save_job *sj = xcalloc(1, sizeof *sj);
		sj->op = SAVE_AFF;
		sj->jid = xstrdup(bare);
		sj->aff = aff;
		save_submit(r, sj);
	}
}

/* ---- iqs: disco, admin, owner ---- */

void
muc_reply(struct room *r, struct xml_node *st, struct xml_node *payload)
{
	struct xml_node *res = stanza_new("iq", xml_attr(st, "to"), xml_attr(st, "from"), "result",
					  xml_attr(st, "id"));
	if (payload)
		xml_add_child(res, payload);
	route(r->w, res);
	xml_free(st);
}

static void
room_disco(struct room *r, struct xml_node *st)
{
	struct xml_node *q = xml_el_new("query", NS_DISCO_INFO);
	struct xml_node *id = xml_add_el(q, "identity", NULL);

	xml_set_attr(id, "category", "conference");
	xml_set_attr(id, "type", "text");
	xml_set_attr(id, "name", *r->cfg.name ? r->cfg.name : r->jid);
	muc_feature(q, NS_MUC);
	muc_feature(q, r->cfg.persistent ? "muc_persistent" : "muc_temporary");
	muc_feature(q, r->cfg.members_only ? "muc_membersonly" : "muc_open");
	muc_feature(q, *r->cfg.secret ? "muc_passwordprotected" : "muc_unsecured");
	muc_feature(q, r->cfg.moderated ? "muc_moderated" : "muc_unmoderated");
	muc_feature(q, r->cfg.public_room ? "muc_public" : "muc_hidden");
	muc_feature(q, "muc_semianonymous");
	muc_feature(q, "http://jabber.org/protocol/muc#request");		 /* 7.13 */
	muc_feature(q, "jabber:iq:register");					 /* 7.10 */
	muc_feature(q, "http://jabber.org/protocol/muc#self-ping-optimization"); /* XEP-0410 */
	if (r->w->srv->cfg->archive_enabled) {
		muc_feature(q, "urn:xmpp:mam:2");
		muc_feature(q, "urn:xmpp:sid:0");
	}
	muc_reply(r, st, q);
}

static size_t
owners(const struct room *r)
{
	const char *k;
	void *v;
	size_t n = 0;

	for (size_t i = 0; hmap_next(&r->affs, &i, &k, &v);)
		n += (int)(intptr_t)v == AFF_OWNER;
	return n;
}

static void
admin_set(struct room *r, struct xml_node *st, struct occupant *me, int my_aff)
{
	struct xml_node *q = xml_child(st, "query", NS_MUC_ADMIN);
	struct xml_node *item = xml_child(q, "item", NS_MUC_ADMIN);
	const char *nick = item ? xml_attr(item, "nick") : NULL;
	const char *role = item ? xml_attr(item, "role") : NULL;
	const char *jid = item ? xml_attr(item, "jid") : NULL;
	int aff = item ? muc_aff_parse(xml_attr(item, "affiliation")) : -1;

	if (!item) {
		muc_error(r, st, "modify", "bad-request");
		return;
	}
	if (role && nick) {
		struct occupant *t = muc_by_nick(r, nick);
		if (!me || me->role < ROLE_MODERATOR) {
			muc_error(r, st, "auth", "forbidden"); /* 8.2 */
			return;
		}
		if (!t) {
			muc_error(r, st, "cancel", "item-not-found");
			return;
		}
		if (strcmp(role, "none") == 0) {
			/* XEP-0045 8.2: no kicking those above you. */
			if (muc_aff_of(r, t->bare) > my_aff ||
			    muc_aff_of(r, t->bare) >= AFF_ADMIN) {
				muc_error(r, st, "cancel", "not-allowed");
				return;
			}
			muc_leave(r, t, 307);
		} else {
			int rl = strcmp(role, "moderator") == 0	    ? ROLE_MODERATOR
				 : strcmp(role, "participant") == 0 ? ROLE_PARTICIPANT
				 : strcmp(role, "visitor") == 0	    ? ROLE_VISITOR
								    : -1;
			if (rl < 0) {
				muc_error(r, st, "modify", "bad-request");
				return;
			}
			t->role = rl;
			muc_broadcast_presence(r, t, NULL, NULL, 0, NULL, 0);
		}
		muc_reply(r, st, NULL);
		return;
	}
	if (aff >= 0 && jid) {
		char *bare = muc_bare_of(jid);
		/* XEP-0045 9 and 10: admins manage members and outcasts; owners everything. */
		bool allowed = my_aff == AFF_OWNER || (my_aff == AFF_ADMIN && aff <= AFF_MEMBER &&
						       muc_aff_of(r, bare) <= AFF_MEMBER);
		if (!allowed) {
			free(bare);
			muc_error(r, st, "auth", "forbidden");
			return;
		}
		if (aff != AFF_OWNER && muc_aff_of(r, bare) == AFF_OWNER && owners(r) == 1) {
			/* XEP-0045 9.1 / 10.6: no banning oneself, no room left without an owner.
			 */
			free(bare);
			muc_error(r, st, "cancel", "conflict");
			return;
		}
		muc_set_aff(r, bare, aff);
		for (struct occupant *t = r->occupants, *next; t; t = next) {
			next = t->next;
			if (strcmp(t->bare, bare) != 0)
				continue;
			if (aff == AFF_OUTCAST) {
				muc_leave(r, t, 301); /* 9.1: banned */
			} else if (r->cfg.members_only && aff < AFF_MEMBER) {
				muc_leave(r, t, 321); /* 9.4: no longer a member */
			} else {
				t->role = muc_role_for(r, aff);
				muc_broadcast_presence(r, t, NULL, NULL, 0, NULL, 0);
			}
		}
		free(bare);
		muc_reply(r, st, NULL);
		return;
	}
	muc_error(r, st, "modify", "bad-request");
}

static void
admin_iq(struct room *r, struct xml_node *st, struct occupant *me, int my_aff)
{
	const char *type = xml_attr(st, "type");

	if (strcmp(type, "set") == 0) {
		admin_set(r, st, me, my_aff);
		return;
	}
	/* get: a list by affiliation (XEP-0045 9.5, 10.5); admins and owners only. */
	struct xml_node *item =
	    xml_child(xml_child(st, "query", NS_MUC_ADMIN), "item", NS_MUC_ADMIN);
	int want = item ? muc_aff_parse(xml_attr(item, "affiliation")) : -1;
	const char *k;
	void *v;

	if (my_aff < AFF_ADMIN) {
		muc_error(r, st, "auth", "forbidden");
		return;
	}
	if (want < 0) {
		muc_error(r, st, "modify", "bad-request");
		return;
	}
	struct xml_node *q = xml_el_new("query", NS_MUC_ADMIN);
	for (size_t i = 0; hmap_next(&r->affs, &i, &k, &v);) {
		if ((int)(intptr_t)v != want)
			continue;
		struct xml_node *it = xml_add_el(q, "item", NULL);
		xml_set_attr(it, "affiliation", muc_aff_names[want]);
		xml_set_attr(it, "jid", k);
	}
	muc_reply(r, st, q);
}

static void
form_field(struct xml_node *x, const char *var, const char *type, const char *value)
{
	struct xml_node *f = xml_add_el(x, "field", NULL);

	xml_set_attr(f, "var", var);
	xml_set_attr(f, "type", type);
	xml_add_text(xml_add_el(f, "value", NULL), value, strlen(value));
}

static struct xml_node *
config_form(struct room *r)
{
	struct xml_node *q = xml_el_new("query", NS_MUC_OWNER);
	struct xml_node *x = xml_add_el(q, "x", NS_XDATA);
	char max[24];

	xml_set_attr(x, "type", "form");
	form_field(x, "FORM_TYPE", "hidden", NS_ROOMCFG);
	form_field(x, "muc#roomconfig_roomname", "text-single", r->cfg.name);
	form_field(x, "muc#roomconfig_persistentroom", "boolean", r->cfg.persistent ? "1" : "0");
	form_field(x, "muc#roomconfig_publicroom", "boolean", r->cfg.public_room ? "1" : "0");
	form_field(x, "muc#roomconfig_membersonly", "boolean", r->cfg.members_only ? "1" : "0");
	form_field(x, "muc#roomconfig_moderatedroom", "boolean", r->cfg.moderated ? "1" : "0");
	form_field(x, "muc#roomconfig_changesubject", "boolean", r->cfg.change_subject ? "1" : "0");
	form_field(x, "muc#roomconfig_passwordprotectedroom", "boolean",
		   *r->cfg.secret ? "1" : "0");
	form_field(x, "muc#roomconfig_roomsecret", "text-private", r->cfg.secret);
	snprintf(max, sizeof max, "%ld", r->cfg.max_users);
	form_field(x, "muc#roomconfig_maxusers", "text-single", max);
	return q;
}

static bool
truthy(const char *v)
{
	return v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
}

static void
apply_form(struct room *r, struct xml_node *x)
{
	bool was_persistent = r->cfg.persistent, pw = *r->cfg.secret != 0;
	bool was_members_only = r->cfg.members_only;
	char *secret = NULL;

	for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f;
	     f = xml_next(f, "field", NS_XDATA)) {
		const char *var = xml_attr(f, "var");
		struct xml_node *ve = xml_child(f, "value", NS_XDATA);
		char *v = ve ? xml_text(ve) : xstrdup("");
		if (!var) {
		} else if (strcmp(var, "muc#roomconfig_roomname") == 0) {
			free(r->cfg.name);
			r->cfg.name = xstrdup(v);
		} else if (strcmp(var, "muc#roomconfig_persistentroom") == 0) {
			r->cfg.persistent = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_publicroom") == 0) {
			r->cfg.public_room = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_membersonly") == 0) {
			r->cfg.members_only = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_moderatedroom") == 0) {
			r->cfg.moderated = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_changesubject") == 0) {
			r->cfg.change_subject = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_passwordprotectedroom") == 0) {
			pw = truthy(v);
		} else if (strcmp(var, "muc#roomconfig_roomsecret") == 0) {
			free(secret);
			secret = xstrdup(v);
		} else if (strcmp(var, "muc#roomconfig_maxusers") == 0) {
			long m = atol(v);
			r->cfg.max_users = m > 0 ? m : MUC_DEFAULT_MAX_USERS;
		}
		free(v);
	}
	if (secret) {
		free(r->cfg.secret);
		r->cfg.secret = secret;
	}
	if (!pw) {
		free(r->cfg.secret);
		r->cfg.secret = xstrdup("");
	}
	if (r->cfg.members_only && !was_members_only) {
		/* XEP-0045 10.2: those who are not members leave, told why (322). */
		for (struct occupant *o = r->occupants, *next; o; o = next) {
			next = o->next;
			if (muc_aff_of(r, o->bare) < AFF_MEMBER)
				muc_leave(r, o, 322);
		}
	}
	if (r->cfg.persistent) {
		muc_save_room(r);
	} else if (was_persistent) {
		struct save_job *sj = xcalloc(1, sizeof *sj);
		sj->op = SAVE_DELETE;
		save_submit(r, sj);
	}
}

static void
destroy(struct room *r, struct xml_node *st)
{
	struct xml_node *q = xml_child(st, "query", NS_MUC_OWNER);
	struct xml_node *d = xml_child(q, "destroy", NS_MUC_OWNER);

	/* XEP-0045 10.9: everyone is told, then the room is gone. */
	while (r->occupants) {
		struct occupant *o = r->occupants;
		char *from = muc_nick_jid(r, o->nick);
		struct xml_node *p = stanza_new("presence", from, o->jid, "unavailable", NULL);
		struct xml_node *x = xml_add_el(p, "x", NS_MUC_USER);
		struct xml_node *item = xml_add_el(x, "item", NULL);
		free(from);
		xml_set_attr(item, "affiliation", "none");
		xml_set_attr(item, "role", "none");
		struct xml_node *dd = xml_add_el(x, "destroy", NULL);
		if (d && xml_child(d, "reason", NS_MUC_OWNER)) {
			char *reason = xml_text(xml_child(d, "reason", NS_MUC_OWNER));
			xml_add_text(xml_add_el(dd, "reason", NULL), reason, strlen(reason));
			free(reason);
		}
		route(r->w, p);
		muc_remove(r, o);
	}
	if (r->cfg.persistent) {
		struct save_job *sj = xcalloc(1, sizeof *sj);
		sj->op = SAVE_DELETE;
		save_submit(r, sj);
	}
	r->cfg.persistent = false;
	muc_reply(r, st, NULL);
}

static void
owner_iq(struct room *r, struct xml_node *st, int my_aff)
{
	struct xml_node *q = xml_child(st, "query", NS_MUC_OWNER);
	struct xml_node *x = xml_child(q, "x", NS_XDATA);

	if (my_aff != AFF_OWNER) {
		muc_error(r, st, "auth", "forbidden"); /* 10.1 */
		return;
	}
	if (strcmp(xml_attr(st, "type"), "get") == 0) {
		muc_reply(r, st, config_form(r));
	} else if (xml_child(q, "destroy", NS_MUC_OWNER)) {
		destroy(r, st);
	} else if (x && xml_attr(x, "type") && strcmp(xml_attr(x, "type"), "cancel") == 0) {
		muc_reply(r, st, NULL);
	} else if (x) {
		apply_form(r, x);
		muc_reply(r, st, NULL);
		muc_config_changed(r);
	} else {
		muc_error(r, st, "modify", "bad-request");
	}
}

void
muc_room_iq(struct room *r, struct xml_node *st, const struct jid *to, const char *from)
{
	const char *type = xml_attr(st, "type");
	struct xml_node *q = xml_child(st, NULL, NULL);
	char *bare = muc_bare_of(from);
	int my_aff = muc_aff_of(r, bare);
	struct occupant *me = muc_by_jid(r, from);

	if (muc_occupant_iq(r, st, to, from)) {
		/* to an occupant, or the answer of one */
	} else if (q && strcmp(q->ns, "urn:baton:continuity:0") == 0) {
		muc_continuity_iq(r, st, from);
	} else if (!type || (strcmp(type, "get") != 0 && strcmp(type, "set") != 0) || !q) {
		xml_free(st);
	} else if (strcmp(q->ns, "jabber:iq:register") == 0) {
		muc_register_iq(r, st, bare);
	} else if (strcmp(q->ns, NS_DISCO_INFO) == 0 && strcmp(type, "get") == 0) {
		room_disco(r, st);
	} else if (strcmp(q->ns, NS_DISCO_ITEMS) == 0 && strcmp(type, "get") == 0) {
		muc_reply(r, st, xml_el_new("query", NS_DISCO_ITEMS));
	} else if (strcmp(q->ns, "urn:xmpp:mam:2") == 0) {
		/* XEP-0313 section 8: the room's archive, for those who may read the room. */
		if (!r->w->srv->cfg->archive_enabled)
			muc_error(r, st, "cancel", "service-unavailable");
		else if (my_aff == AFF_OUTCAST ||
			 (!me && (r->cfg.members_only ? my_aff < AFF_MEMBER : !r->cfg.public_room)))
			muc_error(r, st, "auth", "forbidden");
		else
			mam_query_for(r->w, st, r->jid, true);
	} else if (strcmp(q->ns, NS_MUC_ADMIN) == 0) {
		admin_iq(r, st, me, my_aff);
	} else if (strcmp(q->ns, NS_MUC_OWNER) == 0) {
		owner_iq(r, st, my_aff);
	} else {
		muc_error(r, st, "cancel", "service-unavailable");
	}
	free(bare);
}
