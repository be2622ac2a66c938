"""XEP-0215 external service discovery: the configured STUN/TURN services (extdisco.services),
filtered by type, and TURN REST API credentials from extdisco.turn_secret (username
EXPIRY:user@domain, password base64(HMAC-SHA1(secret, username))) for the server's own users;
a server without services neither advertises nor answers; a bad entry stops start-up."""

import base64
import hashlib
import hmac
import subprocess
import time

import pytest

from conftest import start_server
from helpers import BATOND, NS_DISCO_INFO, free_port, q, stanza_error, stop_and_check, tostr

NS_EXT = "urn:xmpp:extdisco:2"
SECRET = "c0turn-secret"
SERVICES = "turn:turn.example.org:3478:udp stun:stun.example.org:3478:udp " \
           "turns:turn.example.org:5349:tcp"
SERVER_OPTS = {"sets": ["extdisco.services=" + SERVICES, "extdisco.turn_secret=" + SECRET,
                        "extdisco.turn_ttl=1h"]}


def services(c, type_=None):
    t = " type='%s'" % type_ if type_ else ""
    res = c.iq("get", "<services xmlns='%s'%s/>" % (NS_EXT, t), to=c.domain, check=True)
    return res.find(q(NS_EXT, "services")).findall(q(NS_EXT, "service"))


def check_credentials(svc, user):
    """Checks a service's REST API credentials for user; returns the expiry (Unix seconds)."""
    name, password = svc.get("username"), svc.get("password")
    assert name and password, tostr(svc)
    expiry, who = name.split(":", 1)
    assert who == user
    want = base64.b64encode(hmac.new(SECRET.encode(), name.encode(), hashlib.sha1).digest())
    assert password == want.decode(), "password is not base64(HMAC-SHA1(secret, username))"
    assert svc.get("expires", "").endswith("Z"), tostr(svc)
    return int(expiry)


def test_feature_advertised(login):
    c = login()
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=c.domain, check=True)
    assert NS_EXT in [f.get("var") for f in res.iter(q(NS_DISCO_INFO, "feature"))]


def test_all_services_with_turn_credentials(login):
    c = login()
    got = services(c)
    assert [(s.get("type"), s.get("host"), s.get("port"), s.get("transport")) for s in got] == [
        ("turn", "turn.example.org", "3478", "udp"),
        ("stun", "stun.example.org", "3478", "udp"),
        ("turns", "turn.example.org", "5349", "tcp")]
    stun = got[1]
    assert stun.get("username") is None and stun.get("restricted") is None
    for turn in (got[0], got[2]):
        assert turn.get("restricted") == "1"
        expiry = check_credentials(turn, c.bare)
        assert abs(expiry - (time.time() + 3600)) < 30, "turn_ttl is 1h"


def test_type_filter(login):
    c = login()
    assert [s.get("type") for s in services(c, "stun")] == ["stun"]
    assert [s.get("host") for s in services(c, "turns")] == ["turn.example.org"]
    assert services(c, "nothing") == []


def test_credentials_request(login):
    c = login()
    res = c.iq("get", "<credentials xmlns='%s'><service host='turn.example.org' type='turn'/>"
               "</credentials>" % NS_EXT, to=c.domain, check=True)
    svc = res.find("%s/%s" % (q(NS_EXT, "credentials"), q(NS_EXT, "service")))
    assert svc.get("port") == "3478" and svc.get("transport") == "udp"
    check_credentials(svc, c.bare)
    for ask in ("<service host='stun.example.org' type='stun'/>",
                "<service host='elsewhere.example' type='turn'/>",
                "<service host='turn.example.org' type='turn' port='1'/>"):
        res = c.iq("get", "<credentials xmlns='%s'>%s</credentials>" % (NS_EXT, ask),
                   to=c.domain)
        assert stanza_error(res) == ("cancel", "item-not-found"), (ask, tostr(res))
    res = c.iq("get", "<credentials xmlns='%s'/>" % NS_EXT, to=c.domain)
    assert stanza_error(res)[1] == "bad-request", tostr(res)
    res = c.iq("set", "<services xmlns='%s'/>" % NS_EXT, to=c.domain)
    assert stanza_error(res)[1] == "bad-request", tostr(res)


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory):
    srv = start_server(tmp_path_factory, "noext")
    yield srv
    stop_and_check(srv)


def test_without_services(bare_server, clients):
    jid, pw = bare_server.add_user()
    c = bare_server.login(jid, pw)
    clients.append(c)
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=c.domain, check=True)
    assert NS_EXT not in [f.get("var") for f in res.iter(q(NS_DISCO_INFO, "feature"))]
    res = c.iq("get", "<services xmlns='%s'/>" % NS_EXT, to=c.domain)
    assert stanza_error(res) == ("cancel", "service-unavailable"), tostr(res)


@pytest.mark.parametrize("bad", ["turn:host:3478", "tcp:host:1:udp", "turn:host:port:udp",
                                 "turn:host:3478:sctp"])
def test_bad_service_stops_startup(tmp_path, bad):
    argv = [BATOND, "--data", str(tmp_path), "--domain", "localhost",
            "--c2s", "127.0.0.1:%d" % free_port(), "--c2s-tls", "127.0.0.1:%d" % free_port(),
            "--http", "", "--set", "extdisco.services=stun:ok.example:3478:udp " + bad]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=10)
    assert p.returncode != 0
    assert "extdisco.services: bad entry '%s'" % bad in p.stderr, p.stderr
