"""XEP-0114 external components against batond: a raw Python component (irc.Component) on
batond's jabber:component:accept port (--set component.listen=..., one
component.secret.<domain>=... per domain) exchanges stanzas with users of the server.

Invariant: a component may only speak for its own domain; a stanza it sends from any other
domain (the server's, another component's, even a subdomain of its own) ends its stream with
invalid-from, and batond goes on serving everyone else.
"""

import time

import pytest

from helpers import (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_STREAM, NS_STREAMS, Raw,
                     bare, free_port, stanza_error, tostr)
from irc import (NS_ACCEPT, Component, HandshakeFailed, body_of, child, component_header,
                 error_of, wait_port)

DOMAIN = "comp.localhost"
SECRET = "s3cret-comp"
OTHER = "other.localhost"  # a second configured component domain
OTHER_SECRET = "s3cret-other"
PORT = free_port()

SERVER_OPTS = {"domain": "localhost", "sets": [
    "component.listen=127.0.0.1:%d" % PORT,
    "component.secret.%s=%s" % (DOMAIN, SECRET),
    "component.secret.%s=%s" % (OTHER, OTHER_SECRET),
]}

# the stanza errors a user may get for a stanza to a configured component that is not
# connected (RFC 6120 8.3.3.19 service-unavailable, 8.3.3.17 remote-server-not-found, or
# 8.3.3.18 remote-server-timeout, which is Prosody 0.12's choice, type wait):
# test_component_gone_bounces_then_reconnect prints which one batond chose
GONE_CONDITIONS = ("service-unavailable", "remote-server-not-found", "remote-server-timeout")


def connect(domain=DOMAIN, secret=SECRET, timeout=3.0):
    """A connected Component; retries while batond still holds an old stream of the domain
    (the previous test's component is closed just before)."""
    deadline = time.monotonic() + timeout
    while True:
        c = Component(PORT, domain, secret)
        try:
            return c.connect()
        except HandshakeFailed as e:
            c.abort()
            if e.condition != "conflict" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(autouse=True)
def _component_port(server):
    """Fails every test at once, with a clear message, when batond has no component port."""
    try:
        wait_port(PORT, timeout=3, what="batond's component port (component.listen)")
    except AssertionError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def comp(server):
    c = connect()
    yield c
    c.close()


@pytest.fixture
def user(login):
    # roster=True: roster pushes go only to resources that asked for the roster (RFC 6121 2.1.6)
    return login(presence=True, roster=True)


def expect_refused(c, condition, timeout=5.0):
    """The server ends c's stream with the stream error condition and closes the socket."""
    got = c.wait_closed(timeout)
    assert got == condition, "expected stream error %s, got %s; data %r" % (
        condition, got, c.raw.data[-600:])


def server_still_serves(login):
    """batond answers a fresh user and accepts a fresh component."""
    u = login()
    u.sync()
    c = connect()
    c.close()


# ---------------------------------------------------------------------------------------------
# handshake (XEP-0114 section 3)


def test_handshake_ok(server):
    c = Component(PORT, DOMAIN, SECRET)
    try:
        attrs = c.open()
        assert attrs.get("from") == DOMAIN, "server header must name the component: %s" % attrs
        assert attrs.get("id"), "server header without a stream id: %s" % attrs
        assert c.parser.root.tag == "{%s}stream" % NS_STREAM
        c.handshake()
        # no stanza may arrive unasked; the stream stays open
        c.no_stanza(timeout=0.3)
        assert not c.closed
    finally:
        c.close()


def test_handshake_ids_differ(server):
    ids = set()
    for _ in range(3):
        c = Component(PORT, DOMAIN, SECRET)
        ids.add(c.open()["id"])
        c.abort()
    assert len(ids) == 3, "stream ids must not repeat (they salt the handshake): %s" % ids


def test_wrong_secret_not_authorized(server, login):
    c = Component(PORT, DOMAIN, SECRET)
    try:
        c.open()
        with pytest.raises(HandshakeFailed) as ei:
            c.handshake(secret="wrong")
        assert ei.value.condition == "not-authorized", str(ei.value)
        assert c.raw.eof or c.raw.wait_closed(3), "connection left open after a bad handshake"
    finally:
        c.abort()
    server_still_serves(login)


def test_other_domains_secret_not_authorized(server):
    c = Component(PORT, DOMAIN, OTHER_SECRET)
    try:
        c.open()
        with pytest.raises(HandshakeFailed) as ei:
            c.handshake()
        assert ei.value.condition == "not-authorized", str(ei.value)
    finally:
        c.abort()


@pytest.mark.parametrize("domain", ["unknown.localhost", "localhost", "sub.comp.localhost"])
def test_unknown_domain_host_unknown(server, login, domain):
    """No secret for the domain (the server's own domain included): host-unknown."""
    c = Component(PORT, domain, SECRET)
    try:
        with pytest.raises(HandshakeFailed) as ei:
            c.open()
        assert ei.value.condition == "host-unknown", str(ei.value)
    finally:
        c.abort()
    server_still_serves(login)


def test_header_without_to(server):
    r = Raw(PORT)
    try:
        r.send(component_header(None))
        assert r.wait_closed(5), "stream without 'to' left open"
        assert r.stream_error() in ("host-unknown", "improper-addressing"), r.data[-400:]
    finally:
        r.close()


def test_wrong_namespace_invalid_namespace(server):
    r = Raw(PORT)
    try:
        r.send(component_header(DOMAIN, ns="jabber:client"))
        assert r.wait_closed(5), "jabber:client stream on the component port left open"
        assert r.stream_error() == "invalid-namespace", r.data[-400:]
    finally:
        r.close()


def test_bad_xml_before_handshake(server, login):
    c = Component(PORT, DOMAIN, SECRET)
    try:
        c.open()
        c.send("<handshake>abc</hand<<<")
        assert c.raw.wait_closed(5), "connection left open after malformed XML"
        assert c.raw.stream_error() == "not-well-formed", c.raw.data[-400:]
    finally:
        c.abort()
    server_still_serves(login)


def test_garbage_instead_of_header(server, login):
    r = Raw(PORT)
    try:
        r.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.wait_closed(5), "connection left open after garbage"
    finally:
        r.close()
    server_still_serves(login)


def test_stanza_before_handshake_not_authorized(server, user):
    c = Component(PORT, DOMAIN, SECRET)
    try:
        c.open()
        c.message("bot@%s" % DOMAIN, user.jid, "too early")
        assert c.raw.wait_closed(5), "stanza before the handshake: connection left open"
        assert c.raw.stream_error() == "not-authorized", c.raw.data[-400:]
    finally:
        c.abort()
    user.no_stanza("message", timeout=0.5)


def test_component_closes_stream(server):
    c = connect()
    c.send("</stream:stream>")
    assert c.wait_closed(5) is None, "clean close answered with a stream error"


# ---------------------------------------------------------------------------------------------
# stanzas both ways


@pytest.mark.parametrize("to", ["bot@%s" % DOMAIN, "bot@%s/res" % DOMAIN, DOMAIN])
def test_message_user_to_component(comp, user, to):
    id_ = user.message(to, "hello component")
    m = comp.expect("message", lambda e: e.get("id") == id_, what="user's message")
    assert m.tag == "{%s}message" % NS_ACCEPT, "stanza not in the component namespace: %s" % m.tag
    assert m.get("from") == user.jid, "from must be the user's full JID: %s" % tostr(m)
    assert m.get("to") == to
    assert body_of(m) == "hello component"


def test_message_component_to_user_full_and_bare(comp, user):
    frm = "bot@%s/r1" % DOMAIN
    comp.message(frm, user.jid, "to your full JID", id_="full1")
    m = user.expect("message", lambda e: e.get("id") == "full1", what="to the full JID")
    assert m.get("from") == frm and body_of(m) == "to your full JID", tostr(m)
    comp.message("bot@%s" % DOMAIN, user.bare, "to your bare JID", id_="bare1")
    m = user.expect("message", lambda e: e.get("id") == "bare1", what="to the bare JID")
    assert m.get("from") == "bot@%s" % DOMAIN and body_of(m) == "to your bare JID", tostr(m)
    # from the component's domain itself, too
    comp.message(DOMAIN, user.jid, "from the domain", id_="dom1")
    m = user.expect("message", lambda e: e.get("id") == "dom1")
    assert m.get("from") == DOMAIN


def test_message_component_to_unknown_user_bounces(comp):
    comp.message("bot@%s" % DOMAIN, "nobody-here@localhost", "hello?", id_="nb1")
    m = comp.expect("message", lambda e: e.get("id") == "nb1", what="bounce")
    assert m.get("type") == "error", tostr(m)
    assert error_of(m)[1] == "service-unavailable", tostr(m)
    assert m.get("from") == "nobody-here@localhost" and m.get("to") == "bot@%s" % DOMAIN


def test_iq_user_to_component_and_result(comp, user):
    id_ = "disco1"
    user.send("<iq type='get' id='%s' to='%s'><query xmlns='%s'/></iq>"
              % (id_, DOMAIN, NS_DISCO_INFO))
    iq = comp.expect("iq", lambda e: e.get("id") == id_, what="user's iq")
    assert iq.get("from") == user.jid and iq.get("to") == DOMAIN and iq.get("type") == "get"
    assert child(iq, "query") is not None and child(iq, "query").tag == "{%s}query" % NS_DISCO_INFO
    comp.reply(iq, "<query xmlns='%s'><identity category='gateway' type='irc' name='t'/>"
               "<feature var='%s'/></query>" % (NS_DISCO_INFO, NS_DISCO_INFO))
    res = user.expect("iq", lambda e: e.get("id") == id_, what="the component's result")
    assert res.get("type") == "result" and res.get("from") == DOMAIN, tostr(res)
    q = child(res, "query")
    assert q is not None and child(q, "identity").get("type") == "irc", tostr(res)


def test_iq_error_from_component_reaches_user(comp, user):
    user.send("<iq type='get' id='v1' to='bot@%s'><query xmlns='jabber:iq:version'/></iq>"
              % DOMAIN)
    iq = comp.expect("iq", lambda e: e.get("id") == "v1")
    comp.reply(iq, "<error type='cancel'><feature-not-implemented xmlns="
               "'urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", type_="error")
    res = user.expect("iq", lambda e: e.get("id") == "v1")
    assert stanza_error(res) == ("cancel", "feature-not-implemented"), tostr(res)


def test_iq_component_to_user_and_result(comp, user):
    id_ = comp.iq_send("bot@%s/r" % DOMAIN, user.jid, "get", "<ping xmlns='%s'/>" % NS_PING)
    iq = user.expect("iq", lambda e: e.get("id") == id_, what="component's ping")
    assert iq.get("from") == "bot@%s/r" % DOMAIN and iq.get("type") == "get"
    user.send("<iq type='result' id='%s' to='%s'/>" % (id_, iq.get("from")))
    res = comp.expect("iq", lambda e: e.get("id") == id_, what="user's result")
    assert res.get("type") == "result" and res.get("from") == user.jid, tostr(res)


def test_iq_component_to_server(comp):
    """The component may ask the server itself (e.g. disco#info of the server domain)."""
    res = comp.iq("bot@%s" % DOMAIN, "localhost", "get", "<query xmlns='%s'/>" % NS_DISCO_INFO)
    assert res.get("type") == "result", tostr(res)
    assert res.get("from") == "localhost" and res.get("to") == "bot@%s" % DOMAIN


def test_presence_subscription_with_component_contact(comp, user):
    contact = "bot@%s" % DOMAIN
    user.set_roster_item(contact, name="Bot")
    user.expect_push(contact)
    user.send_presence(to=contact, type_="subscribe")
    p = comp.expect("presence", lambda e: e.get("type") == "subscribe", what="subscribe")
    assert bare(p.get("from")) == user.bare and p.get("to") == contact, tostr(p)
    comp.presence(contact, user.bare, type_="subscribed")
    item = user.expect_push(contact, pred=lambda it: it.get("subscription") == "to")
    assert item.get("subscription") == "to"
    comp.presence(contact + "/gw", user.bare, extra="<status>here</status>")
    p = user.expect_presence(frm=contact + "/gw")
    st = child(p, "status")
    assert st is not None and st.text == "here", tostr(p)
    comp.presence(contact + "/gw", user.bare, type_="unavailable")
    user.expect_presence(frm=contact + "/gw", type_="unavailable")


def test_directed_presence_and_unavailable_on_logout(server, comp, login):
    """RFC 6121 4.6: a user's directed presence reaches the component, and when the user goes
    offline the server tells the component (biboumi leaves IRC channels on that)."""
    u = login(presence=True)
    room = "#chan%%irc@%s/nick" % DOMAIN
    u.send_presence(to=room, extra="<x xmlns='http://jabber.org/protocol/muc'/>")
    p = comp.expect("presence", lambda e: e.get("to") == room, what="directed presence")
    assert p.get("from") == u.jid and p.get("type") is None, tostr(p)
    u.close()
    p = comp.expect("presence", lambda e: e.get("type") == "unavailable" and
                    e.get("from") == u.jid, what="unavailable after the user logged out")
    assert bare(p.get("to")) == bare(room)


# ---------------------------------------------------------------------------------------------
# what a component may not do


@pytest.mark.parametrize("frm", [
    "x@%s" % OTHER,              # another component's domain
    "admin@localhost",           # a user of the server
    "localhost",                 # the server itself
    "x@sub.%s" % DOMAIN,         # a subdomain: XEP-0114 3, the domain must match exactly
    "x@evil.example",            # anything else
])
def test_spoofed_from_invalid_from(server, comp, user, login, frm):
    comp.message(frm, user.jid, "spoofed", id_="spoof1")
    expect_refused(comp, "invalid-from")
    user.no_stanza("message", lambda e: e.get("id") == "spoof1", timeout=0.5)
    server_still_serves(login)


def test_missing_from_refused(server, comp, user):
    comp.send("<message to='%s' id='nf1'><body>x</body></message>" % user.jid)
    got = comp.wait_closed(5)
    # RFC 6120 4.9.3.14 improper-addressing (XEP-0114: 'from' is required), or invalid-from
    assert got in ("improper-addressing", "invalid-from"), got
    user.no_stanza("message", lambda e: e.get("id") == "nf1", timeout=0.5)


def test_second_connection_conflict_first_keeps_working(comp, user):
    """XEP-0114 3: a server that will not service the name (here: already connected) answers
    with a stream error such as conflict. The first component must keep working."""
    second = Component(PORT, DOMAIN, SECRET)
    try:
        with pytest.raises(HandshakeFailed) as ei:
            second.connect()
        assert ei.value.condition == "conflict", str(ei.value)
    finally:
        second.abort()
    id_ = user.message("bot@%s" % DOMAIN, "still there?")
    m = comp.expect("message", lambda e: e.get("id") == id_)
    assert body_of(m) == "still there?"
    assert not comp.closed


def test_two_domains_at_once(comp, user):
    other = connect(OTHER, OTHER_SECRET)
    try:
        a = user.message("a@%s" % DOMAIN, "to comp")
        b = user.message("b@%s" % OTHER, "to other")
        assert body_of(comp.expect("message", lambda e: e.get("id") == a)) == "to comp"
        assert body_of(other.expect("message", lambda e: e.get("id") == b)) == "to other"
        comp.no_stanza("message", lambda e: e.get("id") == b, timeout=0.3)
        other.message("b@%s" % OTHER, user.jid, "from other", id_="o1")
        assert user.expect("message", lambda e: e.get("id") == "o1").get("from") == "b@%s" % OTHER
    finally:
        other.close()


# ---------------------------------------------------------------------------------------------
# going away and coming back


def test_component_gone_bounces_then_reconnect(server, user, capsys):
    c = connect()
    c.abort()  # no </stream:stream>: batond notices the dead socket
    deadline = time.monotonic() + 5
    cond = None
    while time.monotonic() < deadline:
        id_ = user.message("bot@%s" % DOMAIN, "anyone?")
        el = user.wait_for("message", lambda e: e.get("id") == id_, timeout=1.0)
        if el is not None:
            assert el.get("type") == "error", tostr(el)
            assert el.get("from") == "bot@%s" % DOMAIN, tostr(el)
            cond = stanza_error(el)[1]
            break
    assert cond in GONE_CONDITIONS, "message to a disconnected component: no bounce (%s)" % cond
    with capsys.disabled():
        print("\n[component gone] message bounced with %s" % cond)
    user.send("<iq type='get' id='gone-iq' to='%s'><query xmlns='%s'/></iq>"
              % (DOMAIN, NS_DISCO_INFO))
    res = user.expect("iq", lambda e: e.get("id") == "gone-iq")
    assert res.get("type") == "error" and stanza_error(res)[1] in GONE_CONDITIONS, tostr(res)
    c2 = connect()
    try:
        id_ = user.message("bot@%s" % DOMAIN, "back?")
        assert body_of(c2.expect("message", lambda e: e.get("id") == id_)) == "back?"
    finally:
        c2.close()


def test_disco_items_lists_component(comp, user):
    res = user.iq("get", "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="localhost", check=True)
    q = child(res, "query")
    jids = [it.get("jid") for it in q] if q is not None else []
    assert DOMAIN in jids, "server disco#items does not list %s: %s" % (DOMAIN, tostr(res))


def test_stream_error_element_shape(server):
    """The stream error for a refused header is a complete stream: header, error, close."""
    r = Raw(PORT)
    try:
        r.send(component_header("unknown.localhost"))
        assert r.wait_closed(5)
        text = r.data.decode("utf-8", "replace")
        assert "<stream:stream" in text or "<stream " in text, text
        assert "host-unknown" in text and NS_STREAMS in text, text
        assert text.rstrip().endswith("</stream:stream>"), text
    finally:
        r.close()
