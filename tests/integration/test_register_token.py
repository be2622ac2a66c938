"""Registration by invitation (c2s.registration = token): batonctl invite makes tokens, a
client gives one with XEP-0401's <preauth/> or in the XEP-0077 form; a token works for its
number of uses until it expires or is revoked. Also the per-address rate limit
(c2s.registration_rate) and the closed default refusing <preauth/>."""

import time

import pytest

from conftest import start_server
from helpers import Client, NS_STANZAS, q, stanza_error, stop_and_check, tostr, unique

NS_REG = "jabber:iq:register"
NS_REG_FEATURE = "http://jabber.org/features/iq-register"
NS_PARS = "urn:xmpp:pars:0"
NS_XDATA = "jabber:x:data"
SERVER_OPTS = {"sets": ["c2s.registration=token", "c2s.registration_rate=0"]}


def fresh(server, clients, user="nobody", password="pw"):
    """A client with TLS up and no authentication yet."""
    c = Client(server, "%s@%s" % (user, server.domain), password)
    clients.append(c)
    c._open_socket()
    c.open_stream()
    c.starttls()
    return c


def invite(server, *args):
    """Runs batonctl invite; returns (token, uri)."""
    out = server.ctl("invite", *args).stdout.split()
    assert len(out) == 2, out
    return out[0], out[1]


def register(c, user, password="pw", token=None):
    tok = "<token>%s</token>" % token if token is not None else ""
    return c.iq("set", "<query xmlns='%s'><username>%s</username><password>%s</password>%s"
                "</query>" % (NS_REG, user, password, tok))


def refused(res, cond="not-allowed"):
    """The error's text, after checking type and condition."""
    assert res.get("type") == "error", tostr(res)
    assert stanza_error(res)[1] == cond, tostr(res)
    return res.findtext("%s/%s" % (q("jabber:client", "error"), q(NS_STANZAS, "text"))) or ""


def can_login(server, clients, user, password="pw"):
    c = Client(server, "%s@%s" % (user, server.domain), password)
    clients.append(c)
    c.connect()
    return c.jid is not None


def test_invite_prints_token_and_uri(server):
    token, uri = invite(server)
    assert len(token) == 32 and token.isalnum()
    assert uri == "xmpp:%s?register;preauth=%s" % (server.domain, token)
    listed = server.ctl("invite", "list").stdout
    assert token in listed and "uses=1" in listed


def test_features_and_form_ask_for_token(server, clients):
    c = fresh(server, clients)
    for ns in (NS_REG_FEATURE, "urn:xmpp:invite", "urn:xmpp:ibr-token:0"):
        assert c.features.find(q(ns, "register")) is not None, (ns, tostr(c.features))
    res = c.iq("get", "<query xmlns='%s'/>" % NS_REG, check=True)
    query = res.find(q(NS_REG, "query"))
    assert query.find(q(NS_REG, "token")) is not None, tostr(res)
    fields = [f.get("var") for f in query.find(q(NS_XDATA, "x")).findall(q(NS_XDATA, "field"))]
    assert fields == ["FORM_TYPE", "username", "password", "token"], fields


def test_no_token_is_not_allowed(server, clients):
    user = unique()
    c = fresh(server, clients)
    assert "required" in refused(register(c, user))
    assert user + "@" not in server.ctl("user", "list").stdout


def test_token_works_once(server, clients):
    token, _ = invite(server)
    user = unique()
    c = fresh(server, clients)
    assert register(c, user, "s3cret", token).get("type") == "result"
    assert can_login(server, clients, user, "s3cret")
    c2 = fresh(server, clients)
    assert "used up" in refused(register(c2, unique(), token=token))
    assert "%s uses=0" % token in server.ctl("invite", "list").stdout
    assert "(used up)" in server.ctl("invite", "list").stdout


def test_token_with_several_uses(server, clients):
    token, _ = invite(server, "--uses", "2")
    for _ in range(2):
        c = fresh(server, clients)
        assert register(c, unique(), token=token).get("type") == "result"
    c = fresh(server, clients)
    assert "used up" in refused(register(c, unique(), token=token))


def test_conflict_keeps_the_token(server, clients):
    token, _ = invite(server)
    taken, _ = server.add_user()
    c = fresh(server, clients)
    res = register(c, taken.split("@")[0], token=token)
    assert stanza_error(res)[1] == "conflict", tostr(res)
    assert register(c, unique(), token=token).get("type") == "result"


def test_expired_token(server, clients):
    token, _ = invite(server, "--expires", "1s")
    time.sleep(1.3)
    c = fresh(server, clients)
    assert "expired" in refused(register(c, unique(), token=token))
    assert "(expired)" in server.ctl("invite", "list").stdout


def test_revoked_and_wrong_tokens(server, clients):
    token, _ = invite(server)
    assert server.ctl("invite", "revoke", token).stdout.strip() == "revoked " + token
    again = server.ctl("invite", "revoke", token, check=False)
    assert again.returncode != 0 and "no invitation" in again.stderr
    assert token not in server.ctl("invite", "list").stdout
    c = fresh(server, clients)
    for bad in (token, "nonsense", "x" * 200):
        assert "not valid" in refused(register(c, unique(), token=bad))


def test_bad_invite_options(server):
    for args in (("--uses", "0"), ("--uses", "x"), ("--expires", "soon"), ("--bogus",)):
        p = server.ctl("invite", *args, check=False)
        assert p.returncode != 0, args


def test_preauth_then_register(server, clients):
    """XEP-0401 section 5, as Conversations does it: <preauth/> first, then a plain form."""
    token, _ = invite(server)
    c = fresh(server, clients)
    c.iq("set", "<preauth xmlns='%s' token='%s'/>" % (NS_PARS, token), check=True)
    # the form comes back with the token filled in
    res = c.iq("get", "<query xmlns='%s'/>" % NS_REG, check=True)
    assert res.find("%s/%s" % (q(NS_REG, "query"), q(NS_REG, "token"))).text == token
    user = unique()
    assert register(c, user).get("type") == "result"
    assert can_login(server, clients, user)
    # the preauth used it up
    c2 = fresh(server, clients)
    assert "used up" in refused(
        c2.iq("set", "<preauth xmlns='%s' token='%s'/>" % (NS_PARS, token)))


def test_preauth_wrong_token(server, clients):
    c = fresh(server, clients)
    assert "not valid" in refused(
        c.iq("set", "<preauth xmlns='%s' token='wrong'/>" % NS_PARS))
    res = c.iq("set", "<preauth xmlns='%s'/>" % NS_PARS)
    assert stanza_error(res)[1] == "bad-request", tostr(res)
    # and registering without a token still fails: nothing was remembered
    assert "required" in refused(register(c, unique()))


def test_data_form_registration(server, clients):
    token, _ = invite(server)
    user = unique()
    c = fresh(server, clients)
    form = ("<x xmlns='%s' type='submit'>"
            "<field var='FORM_TYPE'><value>%s</value></field>"
            "<field var='username'><value>%s</value></field>"
            "<field var='password'><value>formpw</value></field>"
            "<field var='token'><value>%s</value></field></x>" % (NS_XDATA, NS_REG, user, token))
    c.iq("set", "<query xmlns='%s'>%s</query>" % (NS_REG, form), check=True)
    assert can_login(server, clients, user, "formpw")


# ---- other modes


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    srv = start_server(tmp_path_factory, "limited",
                       sets=["c2s.registration=open", "c2s.registration_rate=2",
                             "c2s.registration_period=1h"])
    yield srv
    stop_and_check(srv)


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    srv = start_server(tmp_path_factory, "closed")
    yield srv
    stop_and_check(srv)


def test_rate_limit_per_address(limited, clients):
    for _ in range(2):
        c = fresh(limited, clients)
        assert register(c, unique()).get("type") == "result"
    c = fresh(limited, clients)
    user = unique()
    res = register(c, user)
    assert stanza_error(res) == ("wait", "policy-violation"), tostr(res)
    assert user + "@" not in limited.ctl("user", "list").stdout
    # accounts made by the operator are not limited, and logins go on
    jid, pw = limited.add_user()
    assert can_login(limited, clients, jid.split("@")[0], pw)


def test_open_mode_form_has_no_token(limited, clients):
    c = fresh(limited, clients)
    assert c.features.find(q("urn:xmpp:invite", "register")) is None
    res = c.iq("get", "<query xmlns='%s'/>" % NS_REG, check=True)
    assert res.find("%s/%s" % (q(NS_REG, "query"), q(NS_REG, "token"))) is None, tostr(res)


def test_closed_refuses_preauth_and_registration(closed, clients):
    token, _ = invite(closed)
    c = fresh(closed, clients)
    assert c.features.find(q(NS_REG_FEATURE, "register")) is None
    res = c.iq("set", "<preauth xmlns='%s' token='%s'/>" % (NS_PARS, token))
    assert stanza_error(res)[1] == "service-unavailable", tostr(res)
    res = register(c, unique(), token=token)
    assert stanza_error(res)[1] == "service-unavailable", tostr(res)
