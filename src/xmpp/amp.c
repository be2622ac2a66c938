/*
 * amp: XEP-0079 advanced message processing. A sender attaches rules to a message
 * (deliver directly / stored / not at all, expire at a time, which resource) and an
 * action for each (notify me, drop it, send me an error, alert me); the recipient's
 * server evaluates them where the outcome is known: on routing, and again when a
 * stored message is finally delivered, so a sender can learn that it arrived.
 *
 * Invariant: the first rule that triggers decides (XEP-0079 section 3.7); actions
 * other than notify stop the message, and its stored copy, if any, is forgotten.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xmpp_int.h"

#define NS_AMP	      "http://jabber.org/protocol/amp"
#define NS_AMP_ERRORS "http://jabber.org/protocol/amp#errors"

static const char *const conditions[] = {"deliver", "expire-at", "match-resource", NULL};
static const char *const actions[] = {"alert", "drop", "error", "notify", NULL};

static bool
one_of(const char *s, const char *const *set)
{
	for (; s && *set; set++)
		if (strcmp(s, *set) == 0)
			return true;
	return false;
}

/* XEP-0082 DateTime to ms; returns 0 or -1. */
static int
parse_stamp(const char *s, int64_t *out)
{
	struct tm tm = {0};
	const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;

	if (!p)
		return -1;
	if (*p == '.')
		while (*++p >= '0' && *p <= '9')
			;
	if (*p != 'Z' || p[1])
		return -1;
	*out = (int64_t)timegm(&tm) * 1000;
	return 0;
}

/* Sends the sender a message about st: status notify/alert, or an error. */
static void
tell_sender(struct worker *w, const struct xml_node *st, const struct xml_node *rule,
	    const char *action)
{
	const char *sender = xml_attr(st, "from");
	struct xml_node *m, *amp;

	if (!sender)
		return;
	if (strcmp(action, "error") == 0) {
		/* XEP-0079 section 6.2.1: undefined-condition with the failed rule. */
		m = stanza_error_reply(st, "modify", "undefined-condition", NULL);
		struct xml_node *err = xml_child(m, "error", NS_CLIENT);
		struct xml_node *fr = xml_add_el(err, "failed-rules", NS_AMP_ERRORS);
		xml_add_child(fr, xml_copy(rule));
		xml_set_attr(m, "from", w->srv->cfg->domain);
		route(w, m);
		return;
	}
	m = stanza_new("message", w->srv->cfg->domain, sender, NULL, xml_attr(st, "id"));
	amp = xml_add_el(m, "amp", NS_AMP);
	xml_set_attr(amp, "status", action);
	xml_set_attr(amp, "to", xml_attr(st, "to"));
	xml_set_attr(amp, "from", sender);
	xml_add_child(amp, xml_copy(rule));
	route(w, m);
}

bool
amp_refuse_unsupported(struct session *s, const struct xml_node *st)
{
	struct xml_node *amp = xml_child(st, "amp", NS_AMP);
	const char *bad = NULL, *what = NULL;

	if (!amp)
		return false;
	for (struct xml_node *r = xml_child(amp, "rule", NS_AMP); r && !bad;
	     r = xml_next(r, "rule", NS_AMP)) {
		if (!one_of(xml_attr(r, "condition"), conditions)) {
			bad = "unsupported-conditions";
			what = "condition";
		} else if (!one_of(xml_attr(r, "action"), actions)) {
			bad = "unsupported-actions";
			what = "action";
		}
		if (bad) {
			/* XEP-0079 section 6.2: the sender learns which rule we cannot honour. */
			struct xml_node *m = stanza_error_reply(st, "modify", "bad-request", NULL);
			struct xml_node *err = xml_child(m, "error", NS_CLIENT);
			struct xml_node *u = xml_add_el(err, bad, NS_AMP_ERRORS);
			struct xml_node *copy = xml_el_new("rule", NS_AMP);
			xml_set_attr(copy, what, xml_attr(r, what));
			xml_add_child(u, copy);
			xml_set_attr(m, "from", NULL);
			xml_set_attr(m, "to", s->full);
			session_send(s, m);
			xml_free(m);
		}
	}
	return bad != NULL;
}

bool
amp_check(struct worker *w, const struct xml_node *st, const char *outcome, bool exact_resource)
{
	struct xml_node *amp = xml_child(st, "amp", NS_AMP);

	if (!amp || xml_attr(amp, "status"))
		return true; /* no rules, or already a notification */
	for (struct xml_node *r = xml_child(amp, "rule", NS_AMP); r;
	     r = xml_next(r, "rule", NS_AMP)) {
		const char *cond = xml_attr(r, "condition"), *value = xml_attr(r, "value");
		const char *action = xml_attr(r, "action");
		bool hit = false;
		int64_t at;

		if (!cond || !value || !one_of(action, actions))
			continue;
		if (strcmp(cond, "deliver") == 0)
			hit = strcmp(value, outcome) == 0;
		else if (strcmp(cond, "expire-at") == 0)
			hit = parse_stamp(value, &at) == 0 && wall_ms() >= at;
		else if (strcmp(cond, "match-resource") == 0)
			hit = strcmp(value, "any") == 0 ||
			      (strcmp(value, "exact") == 0 && exact_resource &&
			       strcmp(outcome, "direct") == 0) ||
			      (strcmp(value, "other") == 0 && !exact_resource &&
			       strcmp(outcome, "direct") == 0);
		if (!hit)
			continue;
		/* XEP-0079 section 3.7: the first rule that triggers is the only one applied. */
		if (strcmp(action, "drop") != 0)
			tell_sender(w, st, r, action);
		return strcmp(action, "notify") == 0;
	}
	return true;
}
