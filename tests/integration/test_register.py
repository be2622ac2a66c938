"""XEP-0077 in-band registration: account creation before authentication when
c2s.registration is open, password change and cancellation afterwards, and the closed
default answering service-unavailable."""

import pytest

from conftest import start_server
from helpers import (Client, NS_BIND, NS_SASL, AuthFailed, q, stanza_error, stop_and_check,
                     unique)

NS_REG = "jabber:iq:register"
NS_REG_FEATURE = "http://jabber.org/features/iq-register"
SERVER_OPTS = {"sets": ["c2s.registration=open"]}


def fresh(server, clients, user, password="pw"):
    """A client with TLS up and no authentication yet."""
    c = Client(server, "%s@%s" % (user, server.domain), password)
    clients.append(c)
    c._open_socket()
    c.open_stream()
    c.starttls()
    return c


def register(c, user, password):
    return c.iq("set", "<query xmlns='%s'><username>%s</username><password>%s</password>"
                "</query>" % (NS_REG, user, password))


def test_feature_and_form(server, clients):
    c = fresh(server, clients, unique())
    assert c.features.find(q(NS_REG_FEATURE, "register")) is not None
    res = c.iq("get", "<query xmlns='%s'/>" % NS_REG, check=True)
    query = res.find(q(NS_REG, "query"))
    assert query.find(q(NS_REG, "username")) is not None
    assert query.find(q(NS_REG, "password")) is not None


def test_register_then_login(server, clients):
    user = unique()
    c = fresh(server, clients, user, "s3cret")
    assert register(c, user, "s3cret").get("type") == "result"
    c.authenticate()
    c.bind()
    # the account is real: batonctl lists it
    assert "%s@%s" % (user, server.domain) in server.ctl("user", "list").stdout.split()


def test_register_existing_is_conflict(server, clients):
    jid, _ = server.add_user()
    user = jid.split("@")[0]
    c = fresh(server, clients, user)
    res = register(c, user, "other")
    assert res.get("type") == "error" and stanza_error(res)[1] == "conflict"
    # the original password still works: nothing was overwritten
    with pytest.raises(AuthFailed):
        c.authenticate(password="other")


@pytest.mark.parametrize("payload", [
    "<username>%s</username>",                       # no password
    "<password>x</password>",                        # no username
    "<username>bad user</username><password>x</password>",  # invalid localpart
    "<username>%s</username><password></password>",  # empty password
])
def test_register_not_acceptable(server, clients, payload):
    user = unique()
    c = fresh(server, clients, user)
    res = c.iq("set", "<query xmlns='%s'>%s</query>" % (NS_REG, payload.replace("%s", user)))
    assert res.get("type") == "error" and stanza_error(res)[1] == "not-acceptable"


def test_change_password(server, clients):
    jid, pw = server.add_user()
    user = jid.split("@")[0]
    c = Client(server, jid, pw)
    clients.append(c)
    c.connect()
    assert register(c, user, "newpass").get("type") == "result"
    res = register(c, "someoneelse", "x")
    assert res.get("type") == "error" and stanza_error(res)[1] == "not-allowed"
    with pytest.raises(AuthFailed):
        Client(server, jid, pw).connect()
    n = Client(server, jid, "newpass")
    clients.append(n)
    n.connect()


def test_cancel_registration(server, clients):
    jid, pw = server.add_user()
    a = Client(server, jid, pw, resource="one")
    b = Client(server, jid, pw, resource="two")
    clients.extend([a, b])
    a.connect()
    b.connect()
    res = a.iq("set", "<query xmlns='%s'><remove/></query>" % NS_REG)
    assert res.get("type") == "result"
    # XEP-0077 3.2: every session of the removed account ends
    assert a.wait_closed(timeout=5) == "not-authorized"
    assert b.wait_closed(timeout=5) == "not-authorized"
    assert jid not in server.ctl("user", "list").stdout.split()
    with pytest.raises(AuthFailed):
        Client(server, jid, pw).connect()


def test_closed_registration_is_service_unavailable(tmp_path_factory, clients):
    srv = start_server(tmp_path_factory, "closedreg")
    try:
        c = fresh(srv, clients, unique())
        assert c.features.find(q(NS_REG_FEATURE, "register")) is None
        res = register(c, unique(), "pw")
        assert res.get("type") == "error" and stanza_error(res)[1] == "service-unavailable"
        c.close()
    finally:
        stop_and_check(srv)
