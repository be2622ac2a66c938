/*
 * extdisco: XEP-0215 external service discovery. The server tells its users which STUN and
 * TURN services to use (extdisco.services), and hands out time-limited TURN credentials
 * in the TURN REST API style (draft-uberti-behave-turn-rest-00 section 2.2): username
 * "EXPIRY:user@domain", password base64(HMAC-SHA1(extdisco.turn_secret, username)).
 *
 * Invariant: credentials go only to the server's own accounts, only for configured
 * services, and only with a secret configured; the configuration is re-read per request
 * (it is small and read-only), so nothing here has state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sasl.h"
#include "xmpp_int.h"

#define NS_EXTDISCO "urn:xmpp:extdisco:2"
#define SERVICE_MAX 256 /* characters of one configured service */

struct service {
	char type[16], host[SERVICE_MAX], port[8], transport[8];
};

bool
extdisco_enabled(const struct config *cfg)
{
	return cfg->extdisco_services &&
	       cfg->extdisco_services[strspn(cfg->extdisco_services, " \t")] != '\0';
}

bool
extdisco_is(const struct xml_node *st)
{
	return stanza_is(st, "iq") && (xml_child(st, "services", NS_EXTDISCO) ||
				       xml_child(st, "credentials", NS_EXTDISCO));
}

/*
 * Parses the next "type:host:port:transport" of *list into sv, advancing *list; returns 1,
 * 0 at the end, or -1 for a malformed entry (skipped; batond checks them at start-up).
 */
static int
next_service(const char **list, struct service *sv)
{
	const char *p = *list + strspn(*list, " \t");
	size_t n = strcspn(p, " \t");
	char entry[SERVICE_MAX + 48], *f[4], *save = NULL;
	int i = 0;

	if (n == 0)
		return 0;
	*list = p + n;
	if (n >= sizeof entry)
		return -1;
	memcpy(entry, p, n);
	entry[n] = '\0';
	for (char *t = strtok_r(entry, ":", &save); t && i < 4; t = strtok_r(NULL, ":", &save))
		f[i++] = t;
	if (i != 4 || strtok_r(NULL, ":", &save) || strlen(f[0]) >= sizeof sv->type ||
	    strlen(f[1]) >= sizeof sv->host || strlen(f[2]) >= sizeof sv->port ||
	    strlen(f[3]) >= sizeof sv->transport || strspn(f[2], "0123456789") != strlen(f[2]))
		return -1;
	if (strcmp(f[0], "stun") != 0 && strcmp(f[0], "stuns") != 0 && strcmp(f[0], "turn") != 0 &&
	    strcmp(f[0], "turns") != 0)
		return -1;
	if (strcmp(f[3], "udp") != 0 && strcmp(f[3], "tcp") != 0)
		return -1;
	strcpy(sv->type, f[0]);
	strcpy(sv->host, f[1]);
	strcpy(sv->port, f[2]);
	strcpy(sv->transport, f[3]);
	return 1;
}

static bool
is_turn(const struct service *sv)
{
	return strncmp(sv->type, "turn", 4) == 0;
}

/* Adds username, password and expires of the REST API to el, for user (a bare JID). */
static void
add_credentials(struct xml_node *el, const struct config *cfg, const char *user)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	int64_t expires = wall_ms() + (int64_t)cfg->extdisco_turn_ttl;
	struct buf name = {0}, pw = {0};
	char when[32];

	buf_printf(&name, "%lld:%s", (long long)(expires / 1000), user);
	HMAC(EVP_sha1(), cfg->extdisco_turn_secret, (int)strlen(cfg->extdisco_turn_secret),
	     (const unsigned char *)buf_head(&name), buf_used(&name), mac, &maclen);
	base64_encode(&pw, mac, maclen);
	time_format(expires, when, sizeof when);
	xml_set_attr(el, "username", buf_head(&name));
	xml_set_attr(el, "password", buf_head(&pw));
	xml_set_attr(el, "expires", when); /* XEP-0215 section 3.2, XEP-0082 */
	buf_free(&name);
	buf_free(&pw);
}

/* One <service/> of sv under parent; credentials for user where sv needs them and we can. */
static void
add_service(struct xml_node *parent, const struct config *cfg, const struct service *sv,
	    const char *user)
{
	struct xml_node *el = xml_add_el(parent, "service", NS_EXTDISCO);

	xml_set_attr(el, "type", sv->type);
	xml_set_attr(el, "host", sv->host);
	xml_set_attr(el, "port", sv->port);
	xml_set_attr(el, "transport", sv->transport);
	if (is_turn(sv) && *cfg->extdisco_turn_secret) {
		xml_set_attr(el, "restricted", "1"); /* XEP-0215 section 3.2 */
		if (user)
			add_credentials(el, cfg, user);
	}
}

static void
reply(struct worker *w, const struct xml_node *st, struct xml_node *payload)
{
	struct xml_node *r = stanza_new("iq", xml_attr(st, "to"), xml_attr(st, "from"), "result",
					xml_attr(st, "id"));
	xml_add_child(r, payload);
	route(w, r);
}

void
extdisco_iq(struct worker *w, struct xml_node *st)
{
	const struct config *cfg = w->srv->cfg;
	struct xml_node *q = xml_child(st, NULL, NULL);
	const char *type = xml_attr(st, "type");
	const char *list = cfg->extdisco_services;
	const char *want_type = xml_attr(q, "type");
	char *user = NULL;
	struct service sv;
	struct jid from;
	int r;

	if (!type || strcmp(type, "get") != 0) {
		route_error(w, st, "cancel", "bad-request", NULL);
		goto done;
	}
	if (!extdisco_enabled(cfg)) {
		route_error(w, st, "cancel", "service-unavailable", NULL);
		goto done;
	}
	/* Only the server's own users learn credentials (section 3.2: restricted services). */
	if (xml_attr(st, "from") && jid_parse(xml_attr(st, "from"), &from) == 0) {
		if (from.local && strcmp(from.domain, cfg->domain) == 0)
			user = jid_bare(&from);
		jid_free(&from);
	}
	if (strcmp(q->name, "services") == 0) {
		/* Section 3.1; with a type, only services of that type (section 3.1.2). */
		struct xml_node *out = xml_el_new("services", NS_EXTDISCO);
		if (want_type)
			xml_set_attr(out, "type", want_type);
		while ((r = next_service(&list, &sv)) != 0) {
			if (r > 0 && (!want_type || strcmp(want_type, sv.type) == 0))
				add_service(out, cfg, &sv, user);
		}
		reply(w, st, out);
		goto done;
	}
	/* <credentials><service host='...' type='...' [port='...']/></credentials>: section 3.3 */
	struct xml_node *ask = xml_child(q, "service", NS_EXTDISCO);
	const char *host = ask ? xml_attr(ask, "host") : NULL;
	const char *stype = ask ? xml_attr(ask, "type") : NULL;
	const char *port = ask ? xml_attr(ask, "port") : NULL;
	if (!host) {
		route_error(w, st, "modify", "bad-request", "Name the service: host and type");
		goto done;
	}
	if (!user) {
		route_error(w, st, "auth", "forbidden", NULL);
		goto done;
	}
	while ((r = next_service(&list, &sv)) != 0) {
		if (r < 0 || strcmp(sv.host, host) != 0 || (stype && strcmp(sv.type, stype) != 0) ||
		    (port && strcmp(sv.port, port) != 0))
			continue;
		if (!is_turn(&sv) || !*cfg->extdisco_turn_secret)
			continue; /* nothing to hand out for it */
		struct xml_node *out = xml_el_new("credentials", NS_EXTDISCO);
		add_service(out, cfg, &sv, user);
		reply(w, st, out);
		goto done;
	}
	route_error(w, st, "cancel", "item-not-found", "No such service with credentials");
done:
	free(user);
	xml_free(st);
}

int
extdisco_check(const struct config *cfg, char *err, size_t errlen)
{
	const char *list = cfg->extdisco_services;
	struct service sv;
	int r;

	while (list) {
		const char *entry = list + strspn(list, " \t");
		if ((r = next_service(&list, &sv)) == 0)
			break;
		if (r < 0) {
			snprintf(
			    err, errlen,
			    "extdisco.services: bad entry '%.*s' (want type:host:port:transport, "
			    "type stun|stuns|turn|turns, transport udp|tcp)",
			    (int)strcspn(entry, " \t"), entry);
			return -1;
		}
	}
	return 0;
}
