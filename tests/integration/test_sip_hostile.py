"""Hostile SIP input against a real batond (RFC 3261 7, 17.2, 18.3; RFC 4475 in spirit): garbage
and oversized datagrams, streams with wrong framing, requests without mandatory headers, too
many headers, NUL bytes, folded and compact headers, retransmissions, and a check after each
that batond still serves everyone else.

Invariant: each test builds its requests by hand (raw bytes through SipUA.raw_send), uses fresh
accounts, and ends by proving that a normal OPTIONS / REGISTER / MESSAGE still works.
"""

import os
import re
import secrets
import time

import pytest

from helpers import free_port
from sipua import SipUA, authorization, choose_challenge, parse_message

DOMAIN = "localhost"
SIP_PORT = free_port()
SERVER_OPTS = {"domain": DOMAIN,
               "sets": ["sip.t1=100ms", "sip.min_expires=1s", "server.log_level=debug"],
               "extra_args": ["--sip", "127.0.0.1:%d" % SIP_PORT]}

# what a UA may log about messages it was handed by raw_recv rather than by a transaction
RAW_NOISE = ("response matching no transaction",)


@pytest.fixture(params=["udp", "tcp"])
def transport(request):
    return request.param


@pytest.fixture
def uas(server, transport):
    """uas(jid=None, password=None, transport=<the test's>) -> a SipUA; closed at the end and
    checked for RFC violations other than RAW_NOISE (and ua.tolerate, a list of substrings)."""
    made = []

    def make(jid=None, password=None, transport=transport, **kw):
        if jid is None:
            jid, password = server.add_user()
        kw.setdefault("timer_f", 10)
        ua = SipUA("127.0.0.1", SIP_PORT, transport, user=jid.split("@")[0],
                   password=password, domain=DOMAIN, **kw)
        ua.jid = jid
        ua.tolerate = []
        made.append(ua)
        return ua
    yield make
    for ua in made:
        ua.close()
    for ua in made:
        ua.errors = [e for e in ua.errors
                     if not any(n in e for n in RAW_NOISE + tuple(ua.tolerate))]
        ua.check_clean()
    assert server.alive(), "batond died:\n%s" % server.stderr_tail()


def build(ua, method="OPTIONS", uri="sip:" + DOMAIN, *, branch=None, call_id=None, cseq=1,
          to=None, extra=(), body=b"", omit=(), content_length=True):
    """A request as bytes, with the usual headers (Via, Max-Forwards, From, To, Call-ID, CSeq,
    Content-Length) except those named in omit; extra: (name, value) pairs added."""
    branch = branch or "z9hG4bK" + secrets.token_hex(8)
    via = "SIP/2.0/%s 127.0.0.1:%d;branch=%s" % (ua.transport.upper(), ua.port, branch)
    if ua.transport == "udp":
        via += ";rport"
    hdrs = [("Via", via), ("Max-Forwards", "70"),
            ("From", "<%s>;tag=%s" % (ua.aor, secrets.token_hex(4))),
            ("To", "<%s>" % (to or uri)), ("Call-ID", call_id or secrets.token_hex(8) + "@h"),
            ("CSeq", "%d %s" % (cseq, method))]
    hdrs = [(n, v) for n, v in hdrs if n not in omit] + list(extra)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if content_length:
        hdrs.append(("Content-Length", str(len(body))))
    head = "%s %s SIP/2.0\r\n" % (method, uri) + "".join("%s: %s\r\n" % h for h in hdrs)
    return head.encode("utf-8") + b"\r\n" + body


def exchange(ua, data, timeout=2.0):
    """Sends data raw; returns the next message received as bytes (b'' if the TCP connection
    closed), or None if nothing came within timeout."""
    ua.raw_send(data)
    try:
        return ua.raw_recv(timeout)
    except AssertionError:
        return None


def parsed(ua, data):
    assert data, "no response\n%s" % ua.report()
    return parse_message(data, stream=ua.transport == "tcp")


def status_of(ua, data):
    """The status code of a response, read from its status line only (a 400 to a request
    without To cannot carry a To either)."""
    m = re.match(rb"SIP/2\.0 ([1-6][0-9][0-9]) ", data or b"")
    assert m, "not a response: %r\n%s" % (data[:200] if data else data, ua.report())
    return int(m.group(1))


def credentials(ua, method, uri, extra=(), body=b""):
    """(header name, value) answering a fresh challenge for this method and uri."""
    r = parsed(ua, exchange(ua, build(ua, method, uri, to=ua.aor if method == "REGISTER"
                                      else None, extra=extra, body=body)))
    assert r.status in (401, 407), r.first_line
    chal = choose_challenge(r.challenges(), ("SHA-256",))
    name = "Authorization" if r.status == 401 else "Proxy-Authorization"
    return name, authorization(chal, ua.user, ua.password, method, uri, body=body)


def wait_closed(ua, timeout=3.0):
    """Reads until the TCP peer closes; returns the messages (bytes) that came before."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the connection was not closed within %.1fs; got %s\n%s" % (
            timeout, [g[:60] for g in got], ua.report())
        data = ua.raw_recv(left)
        if data == b"":
            return got
        got.append(data)


def refused(ua, data, what):
    """Sends data; the request must not be served: over UDP no answer or a 4xx-6xx one, over
    TCP a closed connection (maybe after a 4xx-6xx). Returns the status seen, or None."""
    resp = exchange(ua, data)
    status = None
    if resp:
        status = status_of(ua, resp)
        assert status >= 400, "%s was served: %s\n%s" % (what, resp[:300], ua.report())
    if ua.transport == "tcp" and resp != b"":
        if resp is None:
            raise AssertionError("%s over TCP: neither an answer nor a close\n%s"
                                 % (what, ua.report()))
    return status


def still_serving(uas, transport=None):
    """A fresh pair of users: REGISTER, an instant MESSAGE, a stored one."""
    kw = {"transport": transport} if transport else {}
    alice, bob = uas(**kw), uas(**kw)
    assert alice.options().status == 200
    assert bob.register(60).status == 200
    r = alice.message(bob.aor, "still here", disposition="instant")
    assert r.status == 200, (r.status, r.reason)
    assert bob.expect_request("MESSAGE").text() == "still here"
    assert bob.unregister().status == 200
    assert alice.message(bob.aor, "stored", disposition="store&fwd").status == 202
    assert bob.register(60).status == 200
    assert bob.expect_request("MESSAGE", timeout=3).text() == "stored"


# ---------------------------------------------------------------------------------------------


GARBAGE = [
    os.urandom(1500),
    b"\x00" * 512,
    b"INVITE",
    b"REGISTER sip:localhost SIP/2.0\r\n",  # no end of the header section
    b"\xff\xfe\xfd" * 100 + b"\r\n\r\n",
    b"OPTIONS sip:localhost SIP/7.0\r\nVia: SIP/7.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n\r\n",
    b"OPTIONS  SIP/2.0\r\n\r\n",
    b"OPTIONS sip:localhost SIP/2.0\r\nContent-Length: 500\r\n\r\nshort",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKstray\r\n"
    b"From: <sip:a@localhost>;tag=1\r\nTo: <sip:a@localhost>\r\nCall-ID: stray\r\n"
    b"CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n",  # a response nothing waits for
    b"\r\n\r\n",  # a keep-alive
    b"OPTIONS sip:" + b"a" * 60000 + b"@localhost SIP/2.0\r\n\r\n",
    b": \r\n" * 300 + b"\r\n",
]


@pytest.mark.parametrize("transport", ["udp"], indirect=True)
def test_garbage_datagrams(uas):
    ua = uas(transport="udp")
    ua.tolerate.append("unusable message")
    for g in GARBAGE:
        resp = exchange(ua, g, timeout=0.3)
        if resp:
            assert status_of(ua, resp) >= 400, "garbage %r answered %r" % (g[:40], resp[:80])
    assert status_of(ua, exchange(ua, build(ua))) == 200
    still_serving(uas, "udp")


@pytest.mark.parametrize("transport", ["udp"], indirect=True)
def test_udp_body_shorter_than_content_length(uas):
    """RFC 3261 18.3: a datagram request that ends before its Content-Length says is an error;
    the server SHOULD answer 400."""
    ua = uas()
    data = build(ua, content_length=False, extra=[("Content-Length", "500")]) + b"short"
    resp = exchange(ua, data)
    assert resp and status_of(ua, resp) == 400, \
        "OPTIONS with Content-Length 500 and a 5-byte body: %r\n%s" % (resp, ua.report())
    still_serving(uas, "udp")


@pytest.mark.parametrize("transport", ["tcp"], indirect=True)
@pytest.mark.parametrize("g", [
    os.urandom(1500) + b"\r\n\r\n",
    b"\x00" * 512 + b"\r\n\r\n",
    b"HELLO WORLD\r\n\r\n",
    b"\xff\xfe\xfd" * 100 + b"\r\n\r\n",
    b"OPTIONS sip:localhost SIP/7.0\r\nContent-Length: 0\r\n\r\n",
], ids=["random", "nul", "words", "not-utf8", "sip-7"])
def test_garbage_on_tcp_closes(uas, g):
    ua = uas(transport="tcp")
    ua.tolerate.append("unusable message")
    ua.raw_send(g)
    for m in wait_closed(ua):
        assert status_of(ua, m) >= 400, m
    still_serving(uas, "tcp")


@pytest.mark.parametrize("transport", ["udp"], indirect=True)
def test_oversized_udp(uas):
    ua = uas(transport="udp")
    ua.tolerate.append("unusable message")
    assert exchange(ua, os.urandom(65000), timeout=0.5) in (None,)
    # a well-formed, unauthenticated 65000-byte MESSAGE: a challenge or a size error, or dropped
    body = b"x" * (65000 - len(build(ua, "MESSAGE", "sip:a@" + DOMAIN)) - 40)
    data = build(ua, "MESSAGE", "sip:a@" + DOMAIN, body=body,
                 extra=[("Content-Type", "text/plain")])
    assert 64000 < len(data) <= 65100
    resp = exchange(ua, data)
    if resp:
        assert status_of(ua, resp) in (407, 413, 513), resp[:200]
    # an authenticated one of about 64 KB to a TCP recipient: delivered intact or refused
    bob = uas(transport="tcp")
    assert bob.register(60).status == 200
    text = "".join(chr(0x41 + i % 26) for i in range(63000))
    r = ua.message(bob.aor, text, disposition="instant")
    if r.status == 200:
        m = bob.expect_request("MESSAGE")
        assert m.text() == text, "a large body arrived altered (%d bytes)" % len(m.body)
    else:
        assert r.status in (413, 513), (r.status, r.reason)
        bob.no_request(0.3)
    still_serving(uas, "udp")


@pytest.mark.parametrize("transport", ["tcp"], indirect=True)
def test_oversized_tcp_and_slow_sender(uas):
    # a stalled partial message on one connection does not block anyone
    slow = uas(transport="tcp")
    slow.raw_send(build(slow, "MESSAGE", "sip:x@" + DOMAIN, content_length=False,
                        extra=[("Content-Length", "60000")]) + b"y" * 100)
    big = uas(transport="tcp")
    head = build(big, "MESSAGE", "sip:x@" + DOMAIN, content_length=False,
                 extra=[("Content-Type", "text/plain"), ("Content-Length", "200000")])
    big.raw_send(head)
    try:
        for _ in range(4):
            big.raw_send(b"z" * 50000)
    except AssertionError:
        pass  # closed while we were still sending: fine
    assert big.closed_by_peer.wait(5), \
        "a 200000-byte Content-Length over TCP: the connection stays open\n%s" % big.report()
    for m in big._raw:
        if m:
            assert status_of(big, m) in (413, 513), m[:200]
    still_serving(uas, "tcp")
    still_serving(uas, "udp")
    assert not slow.closed_by_peer.is_set(), "a slow but legal sender was cut off"


@pytest.mark.parametrize("missing", ["To", "From", "Call-ID", "CSeq", "Max-Forwards", "Via"])
def test_missing_mandatory_header(uas, missing):
    ua = uas()
    ua.tolerate.append("unusable message")  # the 400 lacks what the request lacked
    resp = exchange(ua, build(ua, omit=(missing,)))
    if missing == "Via":
        assert resp in (None, b"") or resp.startswith(b"SIP/2.0 400"), resp
    else:
        assert resp and status_of(ua, resp) == 400, "OPTIONS without %s: %r\n%s" % (
            missing, resp, ua.report())
    still_serving(uas)


@pytest.mark.parametrize("transport", ["tcp"], indirect=True)
@pytest.mark.parametrize("case", ["not-digits", "negative", "missing", "two-different",
                                  "shorter-than-body"])
def test_wrong_content_length_tcp(uas, case):
    ua = uas(transport="tcp")
    ua.tolerate += ["unusable message", "framing"]
    body = b"hello there"
    if case == "not-digits":
        data = build(ua, content_length=False, extra=[("Content-Length", "abc")]) + body
    elif case == "negative":
        data = build(ua, content_length=False, extra=[("Content-Length", "-5")]) + body
    elif case == "missing":
        data = build(ua, content_length=False) + body
    elif case == "two-different":
        data = build(ua, content_length=False, extra=[("Content-Length", "11"),
                                                      ("Content-Length", "5")]) + body
    else:
        data = build(ua, content_length=False, extra=[("Content-Length", "2")]) + \
            b"he" + b"llo there\r\n\r\n"
    ua.raw_send(data)
    got = wait_closed(ua)
    if case == "shorter-than-body":
        assert got and status_of(ua, got[0]) == 200, "the framed part is served: %r" % got
        got = got[1:]
    for m in got:
        assert status_of(ua, m) >= 400, m[:200]
    still_serving(uas, "tcp")


def test_folding_and_compact_forms(uas, transport):
    ua = uas()
    branch = "z9hG4bK" + secrets.token_hex(8)
    tag = secrets.token_hex(4)
    lines = [
        "OPTIONS sip:%s SIP/2.0" % DOMAIN,
        "v: SIP/2.0/%s 127.0.0.1:%d\r\n ;branch=%s%s" % (
            transport.upper(), ua.port, branch, ";rport" if transport == "udp" else ""),
        "Max-Forwards:\r\n\t70",
        "f: <%s>\r\n  ;tag=%s" % (ua.aor, tag),
        "t:\r\n <sip:%s>" % DOMAIN,
        "i: fold-%s@h" % tag,
        "CSeq   :   1\r\n OPTIONS",
        "l: 0",
    ]
    resp = exchange(ua, ("\r\n".join(lines) + "\r\n\r\n").encode())
    r = parsed(ua, resp)
    assert r.status == 200, resp
    assert r.call_id == "fold-%s@h" % tag and r.nameaddr("From").tag == tag
    assert parse_message(resp).vias()[0].branch == branch
    # REGISTER with a compact, folded Contact, authenticated
    name, cred = credentials(ua, "REGISTER", "sip:" + DOMAIN)
    contact = "<%s>" % ua.contact_uri
    data = build(ua, "REGISTER", "sip:" + DOMAIN, to=ua.aor, cseq=2, extra=[
        ("m", "\r\n   " + contact), ("Expires", "60"), (name, cred)])
    r = parsed(ua, exchange(ua, data))
    assert r.status == 200, r.raw
    assert [c.uri for c in r.contacts()] == [ua.contact_uri]
    # a MESSAGE with compact c: and a folded Content-Disposition reaches bob
    bob = uas()
    assert bob.register(60).status == 200
    extra = [("c", "text/plain;\r\n charset=UTF-8"), ("Content-Disposition", "store&fwd\r\n\t;x=y")]
    name, cred = credentials(ua, "MESSAGE", bob.aor, extra=extra, body=b"folded")
    data = build(ua, "MESSAGE", bob.aor, cseq=2, extra=extra + [(name, cred)], body=b"folded")
    r = parsed(ua, exchange(ua, data))
    assert r.status == 200, r.raw
    m = bob.expect_request("MESSAGE")
    assert m.text() == "folded" and m.disposition() == "store&fwd"
    still_serving(uas)


def test_hundred_headers_refused(uas):
    ua = uas()
    ua.tolerate.append("unusable message")
    many = [("X-Header-%d" % i, "value %d" % i) for i in range(100)]
    status = refused(ua, build(ua, extra=many), "OPTIONS with 100 headers")
    assert status in (None, 400, 413, 513)
    # a MESSAGE with valid credentials but 100 headers is not delivered
    if ua.transport == "tcp":
        ua = uas(ua.jid, ua.password)
    bob = uas()
    assert bob.register(60).status == 200
    ct = [("Content-Type", "text/plain")]
    name, cred = credentials(ua, "MESSAGE", bob.aor, extra=ct, body=b"many")
    refused(ua, build(ua, "MESSAGE", bob.aor, cseq=2, extra=ct + [(name, cred)] + many,
                      body=b"many"), "MESSAGE with 100 headers")
    bob.no_request(0.5)
    still_serving(uas)


def test_nul_bytes(uas):
    ua = uas()
    ua.tolerate.append("unusable message")
    refused(ua, build(ua, extra=[("Subject", "a\x00b")]), "NUL in a header value")
    if ua.transport == "tcp":
        ua = uas(ua.jid, ua.password)
    refused(ua, build(ua).replace(b"OPTIONS sip:", b"OPTIONS sip:\x00", 1), "NUL in the URI")
    if ua.transport == "tcp":
        ua = uas(ua.jid, ua.password)
    # NUL in a text/plain body: refused, not delivered cut short
    bob = uas()
    assert bob.register(60).status == 200
    r = ua.message(bob.aor, b"before\x00after", content_type="text/plain")
    assert r.status in (400, 415), (r.status, r.reason)
    bob.no_request(0.5)
    still_serving(uas)


def test_retransmission_same_response(uas):
    ua = uas()
    # OPTIONS
    data = build(ua)
    first = exchange(ua, data)
    again = exchange(ua, data)
    assert first and first == again, "17.2.2: a retransmission gets the same response:\n%r\n%r" % (
        first, again)
    # a challenge: the same nonce again
    data = build(ua, "REGISTER", "sip:" + DOMAIN, to=ua.aor, extra=[
        ("Contact", "<%s>" % ua.contact_uri), ("Expires", "60")])
    first = exchange(ua, data)
    assert status_of(ua, first) == 401
    assert exchange(ua, data) == first
    # an authenticated REGISTER: the same 200, not a replay refusal
    chal = choose_challenge(parsed(ua, first).challenges(), ("SHA-256",))
    cid = "rtx-%s@h" % secrets.token_hex(4)
    data = build(ua, "REGISTER", "sip:" + DOMAIN, to=ua.aor, call_id=cid, cseq=2, extra=[
        ("Contact", "<%s>" % ua.contact_uri), ("Expires", "60"),
        ("Authorization", authorization(chal, ua.user, ua.password, "REGISTER",
                                        "sip:" + DOMAIN))])
    first = exchange(ua, data)
    assert status_of(ua, first) == 200, first
    again = exchange(ua, data)
    assert again == first, "a retransmitted REGISTER got %r, not the same 200" % again[:80]
    # an authenticated MESSAGE: the same 200, delivered once
    bob = uas()
    assert bob.register(60).status == 200
    ct = [("Content-Type", "text/plain")]
    name, cred = credentials(ua, "MESSAGE", bob.aor, extra=ct, body=b"once only")
    data = build(ua, "MESSAGE", bob.aor, cseq=2, extra=ct + [(name, cred)], body=b"once only")
    first = exchange(ua, data)
    assert status_of(ua, first) == 200, first
    assert exchange(ua, data) == first
    m = bob.expect_request("MESSAGE")
    assert m.text() == "once only" and m.copies == 1
    bob.no_request(0.5)
    still_serving(uas)


@pytest.mark.parametrize("transport", ["udp"], indirect=True)
def test_still_serving_after_all(server, uas):
    assert server.alive()
    still_serving(uas, "udp")
    still_serving(uas, "tcp")
    # and the XMPP side is untouched
    c = server.new_user_client()
    c.close()
