"""XMPP federation (RFC 6120 server-to-server) between batond (baton.test) and a private
Prosody 0.12 (prosody.test, MUC at conference.prosody.test): messages, presence
subscriptions, iq and MUC across, offline delivery both ways, a Prosody restart, certificate
authentication (SASL EXTERNAL, XEP-0178), dialback (XEP-0220) as fallback or refused,
unreachable domains and hostile peers.

Invariant: names resolve only through the module's DNS stub (dnsstub.py; Prosody via
tests/s2s/mod_test_resolver.lua, batond via s2s.resolver); every wait is bounded, and the
module's Prosody and batond are stopped at the end (batond must exit 0 on SIGTERM).
"""

import os
import socket
import time

import pytest

import dnsstub
from helpers import (NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_VERSION, Server, q, stop_and_check,
                     tostr, unique)
from prosody import PKI, Prosody, RawS2S, free_port, have_prosody, loopback_usable

pytestmark = pytest.mark.skipif(not have_prosody(),
                                reason="prosody not installed (apt-get install prosody)")

BATON = "baton.test"
PROSODY = "prosody.test"
PROSODY_HOST = "127.0.0.2"
EVIL = "evil.test"
NOWHERE = "nowhere.test"  # NXDOMAIN everywhere
DEAD = "dead.test"  # SRV to a closed port

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"

BOUNCE_CONDITIONS = ("remote-server-not-found", "remote-server-timeout")
BOUNCE_WITHIN = 20.0  # seconds an unreachable domain may take to bounce


# ---------------------------------------------------------------------------------------------
# fixtures


def wait_port(host, port, proc_alive, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if not proc_alive() or time.monotonic() > deadline:
            raise AssertionError("%s not listening on %s:%d" % (what, host, port))
        time.sleep(0.05)


def route(dns, domain, host, port):
    """SRV _xmpp-server._tcp.<domain> -> xmpp-<domain>:port, A -> host (RFC 6120 3.2.1)."""
    target = "xmpp-" + domain
    dns.add_srv("_xmpp-server._tcp." + domain, target, port)
    dns.add_a(target, host)


class Federation:
    """Everything the module shares: pki, dns, prosody, baton and how to make users."""

    def __init__(self, top):
        self.top = str(top)
        self.pki = PKI(os.path.join(self.top, "pki"))
        self.ca = self.pki.make_ca("ca")
        self.rogue_ca = self.pki.make_ca("rogue")  # a CA nobody trusts
        self.baton_cert = self.pki.leaf("ca", BATON, "conference." + BATON)
        self.prosody_cert = self.pki.leaf("ca", PROSODY, "conference." + PROSODY)
        self.evil_cert = self.pki.leaf("ca", EVIL)  # a genuine certificate for evil.test
        self.dns = dnsstub.DNSStub().start()
        self.baton_s2s = free_port()
        self.prosody = None
        self.baton = None
        self.extra = []  # further batonds started by tests

    def start(self):
        self.prosody = Prosody(os.path.join(self.top, "prosody"), PROSODY, self.prosody_cert[0],
                               self.prosody_cert[1], self.ca, (self.dns.host, self.dns.port),
                               host=PROSODY_HOST)
        for dom in (PROSODY, self.prosody.muc):
            route(self.dns, dom, PROSODY_HOST, self.prosody.s2s_port)
        for dom in (BATON, "conference." + BATON):
            route(self.dns, dom, "127.0.0.1", self.baton_s2s)
        closed = free_port()
        route(self.dns, DEAD, "127.0.0.1", closed)
        self.prosody.start()
        self.baton = self.start_baton("batond", BATON, self.baton_s2s, self.baton_cert, self.ca)
        return self

    def start_baton(self, name, domain, port, cert, cafile, sets=()):
        datadir = os.path.join(self.top, name)
        s = ["s2s.resolver=%s:%d" % (self.dns.host, self.dns.port), "s2s.ca_file=" + cafile]
        srv = Server(datadir, domain=domain, sets=s + list(sets),
                     extra_args=["--s2s", "127.0.0.1:%d" % port, "--cert", cert[0],
                                 "--key", cert[1]])
        srv.s2s_port = port
        srv.start()
        wait_port("127.0.0.1", port, srv.alive, "batond s2s")
        return srv

    def stop(self):
        errors = []
        for srv in [self.baton] + self.extra:
            if srv is not None and srv.alive():
                try:
                    stop_and_check(srv)
                except AssertionError as e:
                    errors.append(str(e))
        if self.prosody is not None:
            self.prosody.stop()
        self.dns.stop()
        if errors:
            raise AssertionError("\n".join(errors))

    # users

    def prosody_user(self):
        pw = "pw-" + unique("p")
        return self.prosody.add_user(unique("p"), pw), pw


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    if not loopback_usable(PROSODY_HOST):
        pytest.skip("%s is not a usable loopback address here" % PROSODY_HOST)
    f = Federation(tmp_path_factory.mktemp("s2s"))
    try:
        f.start()
    except Exception:
        f.stop()
        raise
    yield f
    f.stop()


@pytest.fixture
def cl(fed):
    """cl.baton(presence=True) / cl.prosody(presence=True): logged-in clients of fresh users,
    closed after the test; on failure the test's part of Prosody's log is shown."""
    made = []
    mark = fed.prosody.log_size()

    class Maker:
        @staticmethod
        def baton(jid=None, password=None, presence=True, srv=None, **kw):
            srv = srv or fed.baton
            if jid is None:
                jid, password = srv.add_user()
            c = srv.login(jid, password, presence=presence, roster=presence, **kw)
            made.append(c)
            return c

        @staticmethod
        def prosody(jid=None, password=None, presence=True, **kw):
            if jid is None:
                jid, password = fed.prosody_user()
            c = fed.prosody.login(jid, password, presence=presence, roster=presence, **kw)
            made.append(c)
            return c

    yield Maker
    for c in made:
        try:
            c.close()
        except Exception:
            pass
    # shown by pytest only when the test failed
    print("---- prosody.log during this test (tail) ----")
    print("\n".join(fed.prosody.log_text(mark).splitlines()[-80:]))


def body_of(el):
    b = el.find(q(NS_CLIENT, "body"))
    return None if b is None else b.text


def chat(a, b, text, timeout=15.0):
    """a sends b a chat message; asserts b receives it from a's full JID."""
    a.message(b.jid, text)
    m = b.expect_message(body=text, timeout=timeout)
    assert m.get("from") == a.jid, "wrong from: %s" % tostr(m)
    assert m.get("to") in (b.jid, b.bare), tostr(m)
    return m


def conversation(a, p, tag="", timeout=15.0):
    chat(a, p, "baton to prosody " + tag + unique("m"), timeout)
    chat(p, a, "prosody to baton " + tag + unique("m"), timeout)


# ---------------------------------------------------------------------------------------------
# the harness itself


def test_dns_stub_answers(fed):
    srv = (fed.dns.host, fed.dns.port)
    rc, ans = dnsstub.query(srv, "_xmpp-server._tcp." + BATON, "SRV")
    assert rc == 0 and ans == [(0, 0, fed.baton_s2s, "xmpp-" + BATON)], ans
    rc, ans = dnsstub.query(srv, "_xmpp-server._tcp." + PROSODY, "SRV", tcp=True)
    assert rc == 0 and ans[0][2] == fed.prosody.s2s_port, ans
    assert dnsstub.query(srv, "xmpp-" + PROSODY, "A") == (0, [PROSODY_HOST])
    assert dnsstub.query(srv, "xmpp-" + PROSODY, "AAAA") == (0, [])
    assert dnsstub.query(srv, NOWHERE, "A")[0] == 3  # NXDOMAIN


def test_harness_two_prosodys_federate(fed, tmp_path):
    """The equipment without baton: a second Prosody (prosody2.test on 127.0.0.3) and the
    module's Prosody find each other only through the stub, and talk."""
    host2 = "127.0.0.3"
    if not loopback_usable(host2):
        pytest.skip("%s is not a usable loopback address here" % host2)
    dom = "prosody2.test"
    cert = fed.pki.leaf("ca", dom)
    p2 = Prosody(str(tmp_path / "prosody2"), dom, cert[0], cert[1], fed.ca,
                 (fed.dns.host, fed.dns.port), host=host2, loglevel="info")
    route(fed.dns, dom, host2, p2.s2s_port)
    u1, pw1 = fed.prosody_user()
    u2 = p2.add_user(unique("q"), "pw2")
    p2.start()
    c1 = c2 = None
    try:
        c1 = fed.prosody.login(u1, pw1, presence=True)
        c2 = p2.login(u2, "pw2", presence=True)
        conversation(c1, c2, "prosody to prosody ")
        assert fed.dns.queried("_xmpp-server._tcp." + dom, "SRV")
        assert fed.dns.queried("xmpp-" + dom, "A")
        # with XEP-0288 (mod_s2s_bidi) one stream may carry both directions: EXTERNAL one way
        assert ("Accepting SASL EXTERNAL identity from %s" % dom in fed.prosody.log_text(0) or
                "SASL EXTERNAL with %s succeeded" % dom in fed.prosody.log_text(0))
    finally:
        for c in (c1, c2):
            if c is not None:
                c.close()
        p2.stop()


# ---------------------------------------------------------------------------------------------
# basic federation


def test_messages_both_ways(fed, cl):
    a = cl.baton()
    p = cl.prosody()
    conversation(a, p)
    # both servers found each other through the stub
    assert fed.dns.queried("_xmpp-server._tcp." + PROSODY, "SRV"), fed.dns.queries
    assert fed.dns.queried("_xmpp-server._tcp." + BATON, "SRV"), fed.dns.queries
    # a second exchange reuses the streams
    conversation(a, p, timeout=5)


def test_certificate_auth_sasl_external(fed, cl):
    """XEP-0178: with certificates that verify both ways, neither side needs dialback."""
    mark = fed.prosody.log_size()
    a = cl.baton()
    p = cl.prosody()
    conversation(a, p)
    text = fed.prosody.log_text(0)
    # baton -> prosody: baton authenticated its outgoing stream with EXTERNAL
    assert "Accepting SASL EXTERNAL identity from %s" % BATON in text, \
        "Prosody's log shows no SASL EXTERNAL from %s" % BATON
    # prosody -> baton: baton offered EXTERNAL and accepted Prosody's certificate, or
    # Prosody's stanzas came back over baton's own stream (XEP-0288, baton asks for it)
    assert ("SASL EXTERNAL with %s succeeded" % BATON in text or
            "Requested bidirectional stream" in text), \
        "Prosody's log shows no successful outgoing SASL EXTERNAL to %s, and no bidi" % BATON
    since = fed.prosody.log_text(mark)
    assert "asking %s if key" % BATON not in since, "dialback used although certs verify"


def test_presence_subscription_both_ways(fed, cl):
    a = cl.baton()
    p = cl.prosody()
    # a subscribes to p (RFC 6121 3.1)
    a.send_presence(to=p.bare, type_="subscribe")
    p.expect("presence", type="subscribe", frm=a.bare, timeout=15)
    p.send_presence(to=a.bare, type_="subscribed")
    a.expect_push(p.bare, pred=lambda it: it.get("subscription") == "to", timeout=15)
    # p's current presence follows the approval (RFC 6121 3.1.5)
    a.expect_presence(frm=p.jid, timeout=15)
    # p subscribes to a
    p.send_presence(to=a.bare, type_="subscribe")
    a.expect("presence", type="subscribe", frm=p.bare, timeout=15)
    a.send_presence(to=p.bare, type_="subscribed")
    p.expect_push(a.bare, pred=lambda it: it.get("subscription") == "both", timeout=15)
    p.expect_presence(frm=a.jid, timeout=15)
    # presence updates flow both ways
    a.send_presence(show="away", status="lunch")
    el = p.expect_presence(frm=a.jid, timeout=15)
    while el.find(q(NS_CLIENT, "show")) is None:
        el = p.expect_presence(frm=a.jid, timeout=15)
    assert el.find(q(NS_CLIENT, "show")).text == "away", tostr(el)
    p.send_presence(show="dnd", status="busy")
    el = a.expect_presence(frm=p.jid, timeout=15)
    while el.find(q(NS_CLIENT, "show")) is None:
        el = a.expect_presence(frm=p.jid, timeout=15)
    assert el.find(q(NS_CLIENT, "show")).text == "dnd", tostr(el)
    # unavailable too
    p.send_presence(type_="unavailable")
    a.expect_presence(frm=p.jid, type_="unavailable", timeout=15)


def test_iq_across(fed, cl):
    a = cl.baton()
    p = cl.prosody()
    # server-answered iqs (XEP-0199, XEP-0092, XEP-0030) to the other domain
    for c, dom in ((a, PROSODY), (p, BATON)):
        res = c.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=dom, timeout=15)
        assert res.get("type") == "result" and res.get("from") == dom, tostr(res)
        res = c.iq("get", "<query xmlns='%s'/>" % NS_VERSION, to=dom, timeout=10)
        assert res.get("type") == "result", tostr(res)
        assert res.find("%s/%s" % (q(NS_VERSION, "query"), q(NS_VERSION, "name"))) is not None
        res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=dom, timeout=10)
        assert res.get("type") == "result", tostr(res)
        feats = {f.get("var") for f in res.iter(q(NS_DISCO_INFO, "feature"))}
        assert NS_DISCO_INFO in feats, tostr(res)
    # a client-answered iq between full JIDs, both ways
    for x, y in ((a, p), (p, a)):
        x.send("<iq type='get' id='cross1' to='%s'><query xmlns='%s'/></iq>"
               % (y.jid, NS_DISCO_INFO))
        req = y.expect("iq", id="cross1", timeout=15)
        assert req.get("from") == x.jid, tostr(req)
        y.send("<iq type='result' id='cross1' to='%s'><query xmlns='%s'>"
               "<feature var='urn:example:cross'/></query></iq>" % (x.jid, NS_DISCO_INFO))
        res = x.expect("iq", id="cross1", timeout=15)
        assert res.get("type") == "result" and res.get("from") == y.jid, tostr(res)
    # an iq to a user that does not exist on the other side gets an error (RFC 6121 8.5.1)
    res = a.iq("get", "<query xmlns='%s'/>" % NS_VERSION, to="nobody-%s@%s" % (unique(), PROSODY),
               timeout=15)
    assert res.get("type") == "error", tostr(res)


# ---------------------------------------------------------------------------------------------
# MUC


def muc_join(c, occupant, timeout=15):
    c.send("<presence to='%s'><x xmlns='%s'/></presence>" % (occupant, NS_MUC))

    def self_presence(e):
        if e.get("from") != occupant or e.get("type") == "error":
            return e.get("from") == occupant
        x = e.find(q(NS_MUC_USER, "x"))
        return x is not None and any(s.get("code") == "110"
                                     for s in x.findall(q(NS_MUC_USER, "status")))
    el = c.expect("presence", self_presence, timeout=timeout, what="self-presence from room")
    assert el.get("type") != "error", "join %s failed: %s" % (occupant, tostr(el))
    return {s.get("code") for s in el.find(q(NS_MUC_USER, "x")).findall(q(NS_MUC_USER, "status"))}


def muc_unlock(c, room):
    """XEP-0045 'Creating an Instant Room': an empty submitted form unlocks the room."""
    res = c.iq("set", "<query xmlns='%s'><x xmlns='%s' type='submit'/></query>"
               % (NS_MUC_OWNER, NS_DATA), to=room, timeout=15)
    assert res.get("type") == "result", tostr(res)


def groupchat(sender, room, text, receivers, timeout=15):
    sender.message(room, text, type_="groupchat")
    for r in receivers:
        r.expect("message", pred=lambda e: e.get("type") == "groupchat" and body_of(e) == text,
                 timeout=timeout, what="groupchat %r" % text)


def test_muc_baton_user_in_prosody_room(fed, cl):
    a = cl.baton()
    p = cl.prosody()
    room = "%s@%s" % (unique("room"), fed.prosody.muc)
    codes = muc_join(p, room + "/pnick")
    if "201" in codes:
        muc_unlock(p, room)
    assert "201" not in muc_join(a, room + "/anick")
    p.expect_presence(frm=room + "/anick", timeout=15)
    groupchat(a, room, "hello from baton " + unique(), [a, p])
    groupchat(p, room, "hello from prosody " + unique(), [a, p])
    a.send_presence(to=room + "/anick", type_="unavailable")
    p.expect_presence(frm=room + "/anick", type_="unavailable", timeout=15)


def test_muc_prosody_user_in_baton_room(fed, cl):
    a = cl.baton()
    p = cl.prosody()
    room = "%s@conference.%s" % (unique("room"), BATON)
    codes = muc_join(a, room + "/anick")
    assert "201" in codes, "a fresh room should be created: %s" % codes
    assert "201" not in muc_join(p, room + "/pnick")
    a.expect_presence(frm=room + "/pnick", timeout=15)
    groupchat(p, room, "hello from prosody " + unique(), [a, p])
    groupchat(a, room, "hello from baton " + unique(), [a, p])
    p.send_presence(to=room + "/pnick", type_="unavailable")
    a.expect_presence(frm=room + "/pnick", type_="unavailable", timeout=15)


# ---------------------------------------------------------------------------------------------
# offline delivery


def test_offline_to_baton_user(fed, cl):
    jid, pw = fed.baton.add_user()
    p = cl.prosody()
    text = "while you were out " + unique()
    p.message(jid, text)
    p.sync()
    time.sleep(1.0)  # let it cross and be stored
    a = cl.baton(jid, pw, presence=True)
    m = a.expect_message(frm=p.jid, body=text, timeout=15)
    assert m.find(q(NS_DELAY, "delay")) is not None, "no XEP-0203 delay: %s" % tostr(m)


def test_offline_to_prosody_user(fed, cl):
    jid, pw = fed.prosody_user()
    a = cl.baton()
    text = "for later " + unique()
    a.message(jid, text)
    a.sync()
    time.sleep(1.0)
    p = cl.prosody(jid, pw, presence=True)
    m = p.expect_message(frm=a.jid, body=text, timeout=15)
    assert m.find(q(NS_DELAY, "delay")) is not None, "no XEP-0203 delay: %s" % tostr(m)


# ---------------------------------------------------------------------------------------------
# failures


@pytest.mark.parametrize("domain", [NOWHERE, DEAD])
def test_unreachable_domain_bounces(fed, cl, domain):
    a = cl.baton()
    t0 = time.monotonic()
    id_ = a.message("someone@" + domain, "anyone there?")
    err = a.expect_error("message", id_, timeout=BOUNCE_WITHIN)
    assert err[1] in BOUNCE_CONDITIONS, "bounce condition %s, want one of %s" % (
        err, BOUNCE_CONDITIONS)
    assert time.monotonic() - t0 < BOUNCE_WITHIN
    # an iq to it is answered with an error too
    res = a.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=domain, timeout=BOUNCE_WITHIN)
    assert res.get("type") == "error", tostr(res)


# ---------------------------------------------------------------------------------------------
# hostile peers: refused, while everyone else keeps talking


def still_federating(fed, cl):
    assert fed.baton.alive(), "batond died:\n%s" % fed.baton.stderr_tail()
    conversation(cl.baton(), cl.prosody(), "after hostile peer ")


def test_hostile_bad_xml(fed, cl):
    a = cl.baton()
    raw = RawS2S(fed.baton_s2s, EVIL, BATON)
    try:
        raw.open()
        raw.starttls()
        raw.try_send("<message from='x@%s' to='%s'><body>a</bod></message>" % (EVIL, a.bare))
        cond = raw.wait_closed(10)
        assert cond in ("not-well-formed", "bad-format", "invalid-xml"), \
            "stream error %s for broken XML" % cond
    finally:
        raw.close()
    a.no_stanza("message", timeout=0.5)
    still_federating(fed, cl)


def test_hostile_bad_xml_before_tls(fed, cl):
    raw = RawS2S(fed.baton_s2s, EVIL, BATON)
    try:
        raw.open()
        raw.try_send("<<<>>>&bogus;")
        cond = raw.wait_closed(10)
        assert cond in ("not-well-formed", "bad-format", "invalid-xml"), cond
    finally:
        raw.close()
    still_federating(fed, cl)


def test_hostile_stanza_before_auth(fed, cl):
    """RFC 6120 4.9.3: stanzas on a stream that is not authenticated are refused."""
    a = cl.baton()
    raw = RawS2S(fed.baton_s2s, EVIL, BATON)
    try:
        raw.open()
        raw.starttls()
        raw.message("mallory@%s" % PROSODY, a.bare, "unauthenticated")
        cond = raw.wait_closed(10)
        assert cond is not None, "no stream error for a stanza before authentication"
    finally:
        raw.close()
    a.no_stanza("message", timeout=0.5)
    still_federating(fed, cl)


def test_hostile_spoofed_from(fed, cl):
    """A peer authenticated (EXTERNAL, genuine cert) as evil.test sends a stanza from
    prosody.test: RFC 6120 4.9.3.10 invalid-from, stream closed; its own domain was fine."""
    a = cl.baton()
    raw = RawS2S(fed.baton_s2s, EVIL, BATON, cert=fed.evil_cert[0], key=fed.evil_cert[1])
    try:
        raw.open()
        raw.starttls()
        assert "EXTERNAL" in raw.mechanisms(), \
            "EXTERNAL not offered for a verifying certificate: %s" % tostr(raw.features)
        assert raw.sasl_external(EVIL), "SASL EXTERNAL refused for a verifying certificate"
        honest = "honest " + unique()
        raw.message("mallory@%s/r" % EVIL, a.bare, honest, id_="h1")
        m = a.expect_message(body=honest, timeout=10)
        assert m.get("from") == "mallory@%s/r" % EVIL, tostr(m)
        spoof = "spoofed " + unique()
        raw.message("boss@%s/r" % PROSODY, a.bare, spoof, id_="s1")
        cond = raw.wait_closed(10)
        assert cond == "invalid-from", "stream error %s for a spoofed from" % cond
    finally:
        raw.close()
    assert a.wait_for("message", pred=lambda e: body_of(e) == spoof, timeout=1.0) is None, \
        "the spoofed message was delivered"
    still_federating(fed, cl)


def test_hostile_dialback_for_foreign_domain(fed, cl):
    """XEP-0220: a peer claiming prosody.test with a made-up key; baton asks prosody.test
    (the authoritative server, found through DNS), which denies it."""
    a = cl.baton()
    raw = RawS2S(fed.baton_s2s, EVIL, BATON)
    spoof = "dialback spoof " + unique()
    try:
        raw.open()
        raw.starttls()
        result = raw.dialback(PROSODY, key="deadbeef" * 8, timeout=15)
        assert result != "valid", "dialback for a domain the peer does not own was accepted"
        if not raw.closed:
            raw.try_send("<message from='boss@%s/r' to='%s' type='chat'><body>%s</body>"
                         "</message>" % (PROSODY, a.bare, spoof))
            raw.wait_closed(10)
    finally:
        raw.close()
    assert a.wait_for("message", pred=lambda e: body_of(e) == spoof, timeout=1.0) is None, \
        "a stanza over a refused dialback stream was delivered"
    still_federating(fed, cl)


# ---------------------------------------------------------------------------------------------
# dialback as fallback, and without it


def test_dialback_when_certificates_do_not_verify(fed, cl):
    """baton2.test has a certificate from a CA Prosody does not trust, and trusts only that
    CA itself: no EXTERNAL either way, so XEP-0220 dialback authenticates both directions."""
    dom = "baton2.test"
    cert = fed.pki.leaf("rogue", dom, "conference." + dom)
    port = free_port()
    route(fed.dns, dom, "127.0.0.1", port)
    srv = fed.start_baton("batond2", dom, port, cert, fed.rogue_ca, ["s2s.dialback=true"])
    fed.extra.append(srv)
    mark = fed.prosody.log_size()
    try:
        a = cl.baton(srv=srv)
        p = cl.prosody()
        conversation(a, p)
        log = fed.prosody.log_text(mark)
        assert "asking %s if key" % dom in log, "Prosody did not verify a dialback key of " + dom
        assert "Accepting SASL EXTERNAL identity from %s" % dom not in log
        a.close()
        p.close()
    finally:
        stop_and_check(srv)


def test_no_dialback_refuses_unverified_peer(fed, cl):
    """baton3.test with s2s.dialback=false and no way to verify Prosody (nor Prosody it):
    messages both ways bounce instead of being delivered."""
    dom = "baton3.test"
    cert = fed.pki.leaf("rogue", dom)
    port = free_port()
    route(fed.dns, dom, "127.0.0.1", port)
    srv = fed.start_baton("batond3", dom, port, cert, fed.rogue_ca, ["s2s.dialback=false"])
    fed.extra.append(srv)
    try:
        a = cl.baton(srv=srv)
        p = cl.prosody()
        t0 = time.monotonic()
        id_ = a.message(p.bare, "should not get through")
        err = a.expect_error("message", id_, timeout=BOUNCE_WITHIN)
        assert err[1] in BOUNCE_CONDITIONS, err
        assert time.monotonic() - t0 < BOUNCE_WITHIN
        id_ = p.message(a.bare, "nor this")
        err = p.expect_error("message", id_, timeout=BOUNCE_WITHIN)
        assert err[1] is not None, err
        a.no_stanza("message", pred=lambda e: body_of(e) == "nor this", timeout=0.5)
        p.no_stanza("message", pred=lambda e: body_of(e) == "should not get through",
                    timeout=0.1)
        a.close()
        p.close()
    finally:
        stop_and_check(srv)


# ---------------------------------------------------------------------------------------------
# restart (last: it drops every Prosody session)


def test_prosody_restart_mid_conversation(fed, cl):
    a = cl.baton()
    pjid, ppw = fed.prosody_user()
    p = cl.prosody(pjid, ppw)
    conversation(a, p, "before restart ")
    fed.prosody.restart()
    p2 = cl.prosody(pjid, ppw)
    # baton's old streams died with Prosody; new ones must be set up, both directions
    conversation(a, p2, "after restart ", timeout=20)
    # and an unrelated user on a fresh login works too
    conversation(cl.baton(), cl.prosody(), "fresh pair ")


NS_PUBSUB = "http://jabber.org/protocol/pubsub"
DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"


def publish_devicelist(c, device):
    """An OMEMO device list as Conversations publishes it: open access (XEP-0384, XEP-0223)."""
    c.iq("set", "<pubsub xmlns='%s'><publish node='%s'><item id='current'>"
         "<list xmlns='eu.siacs.conversations.axolotl'><device id='%d'/></list></item></publish>"
         "<publish-options><x xmlns='jabber:x:data' type='submit'>"
         "<field var='FORM_TYPE' type='hidden'>"
         "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
         "<field var='pubsub#access_model'><value>open</value></field></x></publish-options>"
         "</pubsub>" % (NS_PUBSUB, DEVICELIST, device), check=True)


def fetch_devicelist(c, owner):
    res = c.iq("get", "<pubsub xmlns='%s'><items node='%s'/></pubsub>" % (NS_PUBSUB, DEVICELIST),
               to=owner, check=True, timeout=15)
    return tostr(res)


def test_omemo_device_lists_across(fed, cl):
    """OMEMO across servers: each side reads the other's device list from its PEP service."""
    a = cl.baton()
    p = cl.prosody()
    publish_devicelist(a, 1111)
    publish_devicelist(p, 2222)
    assert "device id=\"2222\"" in fetch_devicelist(a, p.bare)
    assert "device id=\"1111\"" in fetch_devicelist(p, a.bare)


def caps_ver(identities, features):
    """XEP-0115 section 5.1 verification string (no forms), SHA-1, base64."""
    import base64
    import hashlib
    s = "".join("%s/%s//%s<" % i for i in sorted(identities))
    s += "".join(f + "<" for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def test_omemo_device_list_updates_reach_a_remote_contact(fed, cl):
    """XEP-0163 4: a contact on another server whose caps say devicelist+notify gets the event
    when a baton user publishes a new device list (what Conversations relies on)."""
    a = cl.baton()
    p = cl.prosody()
    a.send_presence(to=p.bare, type_="subscribe")
    p.expect("presence", type="subscribe", frm=a.bare, timeout=15)
    p.send_presence(to=a.bare, type_="subscribed")
    p.send_presence(to=a.bare, type_="subscribe")
    a.expect("presence", type="subscribe", frm=p.bare, timeout=15)
    a.send_presence(to=p.bare, type_="subscribed")
    p.expect_push(a.bare, pred=lambda it: it.get("subscription") == "both", timeout=15)
    ident = [("client", "phone", "")]
    feats = ["http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
             DEVICELIST, DEVICELIST + "+notify"]
    ver = caps_ver(ident, feats)
    node = "https://conversations.im"
    p.send("<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='%s' "
           "ver='%s'/></presence>" % (node, ver))
    # baton asks p's client what the caps mean (XEP-0115 6.3), across the federation
    req = p.expect("iq", lambda e: e.get("type") == "get" and "disco#info" in tostr(e) and
                   e.get("from") == a.bare, timeout=15)
    p.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s#%s'>"
           "<identity category='client' type='phone'/>%s</query></iq>"
           % (req.get("id"), req.get("from"), "http://jabber.org/protocol/disco#info", node,
              ver, "".join("<feature var='%s'/>" % f for f in feats)))
    time.sleep(0.5)
    publish_devicelist(a, 3333)
    ev = p.expect("message", lambda e: "3333" in tostr(e) and "event" in tostr(e), timeout=15)
    assert ev.get("from") == a.bare, tostr(ev)
