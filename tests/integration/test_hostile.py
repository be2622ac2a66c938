"""Hostile input against a real batond over raw sockets (RFC 6120 4.9 stream errors, 11
restricted XML): malformed XML, size and depth limits before and after authentication,
forbidden XML constructs, bad stream headers, foreign protocols, stanzas before
authentication, and connections that never authenticate.

Invariant: after every test a witness pair of slixmpp clients, logged in before the module's
first test, still exchanges a message and batond still runs: hostile input harms only the
connection that sent it.
"""

import re
import socket
import time

import pytest

import slix
from helpers import NS_SASL, Raw, stream_header, tostr, unique

AUTH_TIMEOUT = 2
SERVER_OPTS = {
    "domain": "localhost",
    "allow_plaintext": True,
    "sets": ["limits.stanza_size=65536", "limits.auth_timeout=%ds" % AUTH_TIMEOUT],
}
PREAUTH_LIMIT = 16 * 1024  # default limits.stanza_size_preauth
POSTAUTH_LIMIT = 65536
DEPTH_LIMIT = 32  # default limits.stanza_depth, the stream root counting as 1


@pytest.fixture(scope="module")
def witness(server):
    pair = []
    for _ in range(2):
        jid, pw = server.add_user()
        c = slix.SlixClient(server, jid, pw)  # STARTTLS + SCRAM, like a real client
        server.clients.append(c)
        pair.append(c.connect())
    return pair


@pytest.fixture(autouse=True)
def witness_still_works(server, witness):
    yield
    assert server.alive(), "batond died: %s" % server.stderr_tail()
    w1, w2 = witness
    body = "still there? " + unique()
    w1.send_message(w2.jid, body)
    w2.wait_message(frm=w1.jid, body=body, timeout=5)
    w1.ping()


def raw(server, tls=False, header=True, port=None):
    r = Raw(port or (server.tls_port if tls else server.c2s_port), tls=tls)
    if header:
        r.send(stream_header(to=server.domain))
        r.read_until(r"</(\w+:)?features>")
    return r


def flood(r, data, chunk=4096):
    """Sends data in chunks, reading in between, and stops once the server answered with a
    stream error or closed: the server's error is not lost to a TCP reset."""
    if isinstance(data, str):
        data = data.encode()
    for i in range(0, len(data), chunk):
        if not r.try_send(data[i:i + chunk]):
            break
        r.recv_some(0.001)
        if r.eof or r.stream_error():
            break


def closed_with(r, expected, timeout=5, header_first=True):
    """Asserts the server closes the connection after a stream error in expected (a str or a
    set; None in the set allows closing without any error)."""
    assert r.wait_closed(timeout), "connection still open after %.0fs; got %r" % (
        timeout, r.data[-500:])
    cond = r.stream_error()
    exp = {expected} if isinstance(expected, str) else set(expected)
    assert cond in exp, "stream error %r, expected %s; got %r" % (cond, exp, r.data[-800:])
    if cond is not None and header_first:
        # RFC 6120 4.9.1.1: even an error in the initial header comes after a stream header
        assert re.search(rb"<(\w+:)?stream[\s>]", r.data), r.data[:300]
        assert re.search(rb"</(\w+:)?stream>\s*$", r.data), \
            "stream not closed after the error: %r" % r.data[-300:]
    return cond


def authed(server, login):
    """An authenticated and bound own client (plaintext, SCRAM-SHA-256)."""
    return login(mode="plain")


# ---- malformed XML


def test_not_well_formed_after_header(server):
    r = raw(server)
    r.send("<message><body>hi</message>")
    closed_with(r, "not-well-formed")


def test_garbage_instead_of_header(server):
    r = raw(server, header=False)
    r.send(b"\x00\x01\x02 garbage <<<>>>\r\n")
    closed_with(r, {"not-well-formed", "bad-format"})


def test_close_tag_without_open(server):
    r = raw(server)
    r.send("</message>")
    closed_with(r, "not-well-formed")


def test_invalid_utf8(server):
    r = raw(server)
    r.send(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>\xff\xfe\xc0"
           b"</auth>")
    closed_with(r, {"not-well-formed", "bad-format", "invalid-xml"})


def test_undeclared_prefix(server):
    r = raw(server)
    r.send("<foo:bar/>")
    closed_with(r, {"bad-namespace-prefix", "not-well-formed", "bad-format"})


def test_undefined_entity(server):
    r = raw(server)
    r.send("<auth xmlns='%s' mechanism='PLAIN'>&evil;</auth>" % NS_SASL)
    closed_with(r, {"not-well-formed", "restricted-xml"})


# ---- restricted XML (RFC 6120 11.1)


def test_doctype(server):
    r = raw(server, header=False)
    r.send("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
           "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
           + stream_header(to=server.domain, decl=False))
    closed_with(r, "restricted-xml")


def test_comment(server):
    r = raw(server)
    r.send("<!-- a comment -->")
    closed_with(r, "restricted-xml")


def test_processing_instruction(server):
    r = raw(server)
    r.send("<?evil instruction?>")
    closed_with(r, "restricted-xml")


def test_comment_after_auth(server, login):
    c = authed(server, login)
    c.raw.send("<message to='%s'><!-- hidden --><body>x</body></message>" % c.jid)
    assert c.wait_closed() == "restricted-xml"


# ---- stream header problems


def test_wrong_stream_namespace(server):
    r = raw(server, header=False)
    r.send(stream_header(to=server.domain, stream_ns="http://example.com/not-streams"))
    closed_with(r, "invalid-namespace")


def test_wrong_content_namespace(server):
    r = raw(server, header=False)
    r.send(stream_header(to=server.domain, ns="jabber:server"))  # s2s namespace on c2s
    closed_with(r, "invalid-namespace")


def test_wrong_to_domain(server):
    r = raw(server, header=False)
    r.send(stream_header(to="not-" + server.domain))
    closed_with(r, "host-unknown")


def test_version_2(server):
    r = raw(server, header=False)
    r.send(stream_header(to=server.domain, version="2.0"))
    # RFC 6120 4.7.5: answer with the highest version we support (1.0) and go on, or refuse
    # with <unsupported-version/> (4.9.3.25)
    m = r.read_until(r"</(\w+:)?features>|</(\w+:)?stream>")
    if r.stream_error():
        closed_with(r, "unsupported-version")
    else:
        assert re.search(rb"version=['\"]1\.0['\"]", r.data), r.data[:400]
        assert m


def test_non_utf8_encoding_declared(server):
    r = raw(server, header=False)
    r.send("<?xml version='1.0' encoding='ISO-8859-1'?>" + stream_header(to=server.domain,
                                                                        decl=False))
    closed_with(r, {"unsupported-encoding", "bad-format", "restricted-xml"})


def test_huge_stream_header(server):
    r = raw(server, header=False)
    flood(r, stream_header(to=server.domain, extra=" junk='%s'" % ("j" * 40000)))
    closed_with(r, {"policy-violation", "bad-format", "not-well-formed"})


def test_http_request(server):
    r = raw(server, header=False)
    r.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    closed_with(r, {None, "not-well-formed", "bad-format", "invalid-namespace",
                    "invalid-xml"}, header_first=False)


# ---- limits


def test_preauth_stanza_too_large(server):
    r = raw(server)
    flood(r, "<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL,
                                                                  "A" * (PREAUTH_LIMIT + 4096)))
    closed_with(r, "policy-violation")


def test_preauth_depth(server):
    r = raw(server)
    r.send("<auth xmlns='%s' mechanism='PLAIN'>" % NS_SASL + "<a>" * (DEPTH_LIMIT + 8))
    closed_with(r, "policy-violation")


def test_postauth_stanza_below_limit_passes(server, login):
    c = authed(server, login)
    body = "b" * (POSTAUTH_LIMIT - 4096)
    c.message(c.jid, body)
    m = c.expect_message(frm=c.jid, timeout=10)
    assert len(m.findtext("{jabber:client}body")) == len(body)


def test_postauth_stanza_too_large(server, login):
    c = authed(server, login)
    flood(c.raw, "<message to='%s'><body>%s</body></message>" % (c.jid,
                                                                  "b" * (POSTAUTH_LIMIT + 8192)))
    closed_with(c.raw, "policy-violation")  # flood() read past the Client's parser


def test_depth_below_limit_passes(server, login):
    c = authed(server, login)
    n = DEPTH_LIMIT - 4  # stream(1) + message(2) + n nested elements
    c.send("<message to='%s'><body>deep</body>%s%s</message>"
           % (c.jid, "<x xmlns='urn:example:deep'>" * n, "</x>" * n))
    c.expect_message(frm=c.jid, body="deep")


def test_depth_too_deep(server, login):
    c = authed(server, login)
    c.raw.send("<message to='%s'>%s" % (c.jid, "<x xmlns='urn:example:deep'>" * DEPTH_LIMIT))
    assert c.wait_closed() == "policy-violation"


# ---- stanzas at the wrong time


def test_stanza_before_auth(server, witness):
    r = raw(server)
    r.send("<message to='%s' type='chat'><body>sneaky</body></message>" % witness[1].jid)
    closed_with(r, "not-authorized")  # RFC 6120 4.9.3.12
    with pytest.raises(AssertionError):
        witness[1].wait_message(body="sneaky", timeout=0.5)


def test_iq_before_auth(server):
    r = raw(server)
    r.send("<iq type='get' id='x'><query xmlns='jabber:iq:roster'/></iq>")
    closed_with(r, "not-authorized")


def test_stanza_before_bind(server, witness):
    jid, pw = server.add_user()
    c = server.client(jid, pw, mode="plain")
    c.connect(bind=False)
    c.send("<message to='%s' type='chat'><body>unbound</body></message>" % witness[1].jid)
    # not delivered; the server answers with an error (stream or stanza not-authorized)
    el = c.wait_for(timeout=3)
    if el is None or c.closed:
        assert c.wait_closed() in ("not-authorized", "policy-violation")
    else:
        assert "not-authorized" in tostr(el), tostr(el)
    with pytest.raises(AssertionError):
        witness[1].wait_message(body="unbound", timeout=0.5)
    c.abort()


# ---- connections that never authenticate (limits.auth_timeout)


def test_silent_connection_is_closed(server):
    r = raw(server, header=False)
    t0 = time.monotonic()
    assert r.wait_closed(AUTH_TIMEOUT + 4), "silent connection kept open"
    took = time.monotonic() - t0
    assert took >= AUTH_TIMEOUT * 0.7, "closed after %.1fs, before auth_timeout" % took
    closed_with(r, {None, "connection-timeout"}, timeout=0.1)


def test_unauthenticated_stream_times_out(server):
    r = raw(server)
    t0 = time.monotonic()
    assert r.wait_closed(AUTH_TIMEOUT + 4), "unauthenticated stream kept open"
    assert time.monotonic() - t0 >= AUTH_TIMEOUT * 0.5
    closed_with(r, "connection-timeout", timeout=0.1)


def test_authenticated_client_not_timed_out(server, login):
    c = authed(server, login)
    time.sleep(AUTH_TIMEOUT + 1)
    c.sync()  # auth_timeout does not apply once authenticated


# ---- TLS


def test_garbage_on_tls_port(server):
    r = raw(server, header=False, port=server.tls_port)
    r.try_send(b"\x16\x03\x01\x00\x05hello, this is not TLS at all" * 10)
    assert r.wait_closed(5), "TLS port kept a garbage connection open"


def test_plain_xmpp_on_tls_port(server):
    r = raw(server, header=False, port=server.tls_port)
    r.try_send(stream_header(to=server.domain))
    assert r.wait_closed(5)


def test_not_well_formed_inside_direct_tls(server):
    r = raw(server, tls=True)
    r.send("<message><<</message>")
    closed_with(r, "not-well-formed")


def test_restricted_xml_after_starttls(server):
    r = raw(server)
    r.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    r.read_until(r"<proceed")
    r.data = b""
    r.starttls()
    r.send(stream_header(to=server.domain))
    r.read_until(r"</(\w+:)?features>")
    r.send("<?pi inside tls?>")
    closed_with(r, "restricted-xml")


def test_garbage_after_starttls_proceed(server):
    r = raw(server)
    r.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    r.read_until(r"<proceed")
    r.try_send(b"this is no TLS client hello\r\n" * 20)
    assert r.wait_closed(5)


# ---- many connections


def test_many_abandoned_connections(server):
    socks = []
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", server.c2s_port), timeout=5)
        if i % 2:
            s.sendall(stream_header(to=server.domain).encode())
        socks.append(s)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST
    # a fresh connection is still served promptly
    r = raw(server)
    r.send("</stream:stream>")
    assert r.wait_closed(5)
