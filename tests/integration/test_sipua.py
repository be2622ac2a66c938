"""Tests of the SIP test user agent (tests/integration/sipua.py) against itself, without batond:
two UAs talk to each other directly over UDP and TCP, one of them playing registrar or proxy
with a digest-checking answer policy, and the codecs are checked against the RFC vectors and
tables of corrupt input.

Invariant: every UA a test makes is closed by the `uas` fixture, which also asserts that no UA
saw an RFC violation from its peer (ua.errors) unless the test cleared it on purpose; the whole
module runs in well under 20 s.
"""

import secrets
import socket
import threading
import time

import pytest

import sipua
from sipua import SipUA, ParseError

DOMAIN = "example.test"


@pytest.fixture
def uas():
    """uas(...) -> a SipUA with the same arguments; closed and checked at the end."""
    made = []

    def make(*a, **kw):
        kw.setdefault("domain", DOMAIN)
        ua = SipUA(*a, **kw)
        made.append(ua)
        return ua
    yield make
    for ua in made:
        ua.close()
    for ua in made:
        ua.check_clean()


def pair(uas, transport, **kw):
    """(a, b): a listens, b sends to a (UDP: b's next hop is a; TCP: b connects to a)."""
    a = uas(None, None, transport, user="alice", password="pa", **kw)
    b = uas("127.0.0.1", a.port, transport, user="bob", password="pb", **kw)
    return a, b


# ---------------------------------------------------------------------------------------------
# digest

# (algorithm, username, realm, password, method, uri, nonce, nc, cnonce, qop, response)
DIGEST_VECTORS = [
    # RFC 2617 3.5
    ("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
     "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth",
     "6629fae49393a05397450978507c4ef1"),
    # RFC 7616 3.9.1, MD5 and SHA-256
    ("MD5", "Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html",
     "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
     "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life", "GET", "/dir/index.html",
     "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
     "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth",
     "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
]


@pytest.mark.parametrize("vec", DIGEST_VECTORS, ids=["rfc2617-md5", "rfc7616-md5",
                                                      "rfc7616-sha256"])
def test_digest_vectors(vec):
    *args, want = vec
    assert sipua.digest_response(*args) == want


def test_authorization_header_answers_the_challenge():
    chal = ('Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
            'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
            'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    scheme, params = sipua.parse_challenge(chal)
    assert scheme == "Digest" and params["qop"] == "auth, auth-int"
    value = sipua.authorization(params, "Mufasa", "Circle of Life", "GET", "/dir/index.html",
                                nc=1, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")
    scheme, p = sipua.parse_challenge(value)
    assert scheme == "Digest"
    # the RFC 7616 3.9.1 SHA-256 Authorization, field by field
    assert p == {"username": "Mufasa", "realm": "http-auth@example.org",
                 "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                 "uri": "/dir/index.html", "algorithm": "SHA-256", "qop": "auth",
                 "nc": "00000001", "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                 "response": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
                 "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"}
    # qop and nc unquoted (RFC 2617 3.2.2), the rest quoted
    assert "qop=auth," in value and "nc=00000001" in value and 'uri="/dir/index.html"' in value
    # no qop offered: RFC 2069 form, no cnonce/nc
    _, p = sipua.parse_challenge(sipua.authorization({"realm": "r", "nonce": "n"}, "u", "p",
                                                     "REGISTER", "sip:r"))
    assert "cnonce" not in p and "nc" not in p and p["algorithm"] == "MD5"
    assert p["response"] == sipua.digest_response("MD5", "u", "r", "p", "REGISTER", "sip:r", "n")


@pytest.mark.parametrize("offered,prefer,want", [
    (["MD5", "SHA-256"], sipua.PREFERENCE, "SHA-256"),
    (["SHA-256", "MD5"], sipua.PREFERENCE, "SHA-256"),
    (["MD5"], sipua.PREFERENCE, "MD5"),
    ([None], sipua.PREFERENCE, "MD5"),  # no algorithm parameter means MD5
    (["MD5", "SHA-256"], ("MD5",), "MD5"),
    (["SHA-256"], ("MD5",), None),
    (["UNKNOWN-HASH"], sipua.PREFERENCE, None),
])
def test_choose_challenge(offered, prefer, want):
    chals = [("Digest", {"realm": "r", "nonce": "n%d" % i, **({"algorithm": a} if a else {})})
             for i, a in enumerate(offered)]
    chals.insert(0, ("Basic", {"realm": "r"}))
    got = sipua.choose_challenge(chals, prefer)
    assert (got.get("algorithm") or "MD5" if got else None) == want


# ---------------------------------------------------------------------------------------------
# parsing and framing

GOOD = (b"\r\nMESSAGE sip:alice@example.test SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa, SIP/2.0/TCP [::1]:5071;branch=z9hG4bKb\r\n"
        b"Via: SIP/2.0/UDP host.example;branch=z9hG4bKc;received=10.0.0.1\r\n"
        b"f: \"Bob, B.\" <sip:bob@example.test>;tag=1\r\n"
        b"t: sip:alice@example.test\r\n"
        b"i: abc@host\r\n"
        b"CSeq: 7 MESSAGE\r\n"
        b"Subject: folded\r\n  over two lines\r\n"
        b"c: text/plain;charset=UTF-8\r\n"
        b"Content-Disposition: Store&Fwd;handling=optional\r\n"
        b"l: 5\r\n"
        b"\r\n"
        b"hello+extra")


def test_parse_request_compact_forms_folding_and_lists():
    m = sipua.parse_message(GOOD)
    assert m.is_request and m.method == "MESSAGE" and m.uri == "sip:alice@example.test"
    assert m.headers["call-id"] == "abc@host" and "Call-ID" in m.headers
    assert m.cseq() == (7, "MESSAGE")
    vias = m.vias()
    assert [(v.transport, v.host, v.port, v.branch) for v in vias] == [
        ("UDP", "127.0.0.1", 5070, "z9hG4bKa"), ("TCP", "::1", 5071, "z9hG4bKb"),
        ("UDP", "host.example", None, "z9hG4bKc")]
    assert vias[2].params["received"] == "10.0.0.1"
    assert m.headers.lines("Via")[0].count(",") == 1  # as received
    fr = m.nameaddr("From")
    assert (fr.display, fr.uri, fr.tag) == ("Bob, B.", "sip:bob@example.test", "1")
    assert m.nameaddr("To").tag is None
    assert m.headers["subject"] == "folded over two lines"
    assert m.body == b"hello"  # Content-Length cuts the extra bytes (18.3)
    assert m.text() == "hello" and m.content_type() == "text/plain"
    assert m.disposition() == "store&fwd" and m.disposition_params() == {"handling": "optional"}
    assert m.problems == []


def test_parse_response():
    m = sipua.parse_message(b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
                            b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\n"
                            b"CSeq: 1 REGISTER\r\n"
                            b'WWW-Authenticate: Digest realm="b", nonce="1", algorithm=MD5\r\n'
                            b'WWW-Authenticate: Digest realm="b", nonce="2", algorithm=SHA-256\r\n'
                            b"Content-Length: 0\r\n\r\n")
    assert not m.is_request and (m.status, m.reason) == (401, "Unauthorized")
    assert [p["nonce"] for _, p in m.challenges()] == ["1", "2"]
    assert sipua.choose_challenge(m.challenges())["nonce"] == "2"


HDRS = (b"Via: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\n"
        b"Call-ID: c\r\nCSeq: 1 MESSAGE\r\n")

CORRUPT = [
    ("no blank line", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS),
    ("short body", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS + b"Content-Length: 10\r\n\r\nabc"),
    ("bad length", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS + b"Content-Length: -1\r\n\r\n"),
    ("two lengths", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS + b"l: 0\r\nContent-Length: 0\r\n\r\n"),
    ("bad version", b"MESSAGE sip:a@b SIP/3.0\r\n" + HDRS + b"\r\n"),
    ("two-part line", b"MESSAGE sip:a@b\r\n" + HDRS + b"\r\n"),
    ("status 999", b"SIP/2.0 999 What\r\n" + HDRS + b"\r\n"),
    ("status 20", b"SIP/2.0 20 OK\r\n" + HDRS + b"\r\n"),
    ("no colon", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS + b"Garbage line\r\n\r\n"),
    ("fold first", b"MESSAGE sip:a@b SIP/2.0\r\n folded\r\n" + HDRS + b"\r\n"),
    ("no Call-ID", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS.replace(b"Call-ID: c\r\n", b"")
     + b"\r\n"),
    ("no Via", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS.replace(b"Via: SIP/2.0/UDP h;branch="
                                                           b"z9hG4bKx\r\n", b"") + b"\r\n"),
    ("CSeq method", b"OPTIONS sip:a@b SIP/2.0\r\n" + HDRS + b"\r\n"),
    ("bad CSeq", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS.replace(b"1 MESSAGE", b"x MESSAGE")
     + b"\r\n"),
    ("not UTF-8", b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS + b"Subject: \xff\xfe\r\n\r\n"),
    ("empty", b""),
    ("binary", bytes(range(256))),
]


@pytest.mark.parametrize("name,data", CORRUPT, ids=[c[0] for c in CORRUPT])
def test_parse_corrupt(name, data):
    with pytest.raises(ParseError):
        sipua.parse_message(data)


def test_parse_lenient_cases_are_noted():
    m = sipua.parse_message((b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS + b"\r\n")
                            .replace(b"\r\n", b"\n"))
    assert m.method == "MESSAGE" and m.problems  # bare LF: parsed, but noted
    m = sipua.parse_message(b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS + b"\r\nxyz", stream=True)
    assert m.body == b"xyz" and any("Content-Length" in p for p in m.problems)


def test_framer_cuts_by_content_length():
    one = b"MESSAGE sip:a@b SIP/2.0\r\n" + HDRS + b"Content-Length: 4\r\n\r\nab\r\n"
    two = b"SIP/2.0 200 OK\r\n" + HDRS + b"l:0\r\n\r\n"
    stream = b"\r\n\r\n" + one + two + b"\r\n" + one
    f = sipua.StreamFramer()
    assert f.feed(stream) == [one, two, one] and f.keepalives == 3 and f.buf == b""
    f = sipua.StreamFramer()
    got = []
    for i in range(len(stream)):  # one byte at a time
        got += f.feed(stream[i:i + 1])
    assert got == [one, two, one] and f.buf == b""
    with pytest.raises(ParseError):
        sipua.StreamFramer().feed(b"MESSAGE x SIP/2.0\r\nContent-Length: z\r\n\r\n")
    with pytest.raises(ParseError):
        sipua.StreamFramer().feed(b"A" * (sipua.StreamFramer.MAX_HEAD + 1))


# ---------------------------------------------------------------------------------------------
# CPIM and IMDN

def test_cpim_imdn_round_trip():
    mid = sipua.new_message_id()
    assert len(mid) >= 8 and mid != sipua.new_message_id()
    body = sipua.build_cpim("sip:bob@x", "sip:alice@x", "h\u00e9llo\r\n\r\nsecond",
                            imdn_id=mid)
    c = sipua.parse_cpim(body)
    assert c.get("From") == "<sip:bob@x>" and c.get("to") == "<sip:alice@x>"
    assert c.get("DateTime").endswith("Z")  # RFC 5438 7.1.1.2: DateTime with the request
    assert c.ns == {"imdn": sipua.IMDN_URN}
    assert c.imdn_id == mid
    assert c.imdn_notify == ["positive-delivery", "negative-delivery"]
    assert c.content_type() == "text/plain" and c.text() == "h\u00e9llo\r\n\r\nsecond"

    # another prefix for the same namespace is the same header (RFC 3862 3.2)
    other = body.replace(b"NS: imdn <", b"NS: x <").replace(b"imdn.", b"x.")
    assert sipua.parse_cpim(other).imdn_id == mid
    assert sipua.parse_cpim(body.replace(b"NS: imdn <urn:ietf:params:imdn>",
                                         b"NS: imdn <urn:other>")).imdn_id is None

    # the report, bare and inside CPIM (RFC 5438 7.2.1)
    for kind, status in (("delivery", "delivered"), ("delivery", "failed"),
                         ("display", "displayed"), ("processing", "stored")):
        xml = sipua.build_imdn(mid, status, kind, recipient_uri="sip:alice@x")
        r = sipua.parse_imdn(xml)
        assert (r.message_id, r.kind, r.status, r.recipient_uri) == (mid, kind, status,
                                                                      "sip:alice@x")
        wrapped = sipua.build_cpim("sip:alice@x", "sip:bob@x", xml, "message/imdn+xml",
                                   imdn_id=sipua.new_message_id(), notify=None,
                                   content_headers=[("Content-Disposition", "notification")])
        m = sipua.parse_message(b"MESSAGE sip:bob@x SIP/2.0\r\n" + HDRS
                                + b"Content-Type: message/cpim\r\nContent-Length: %d\r\n\r\n"
                                % len(wrapped) + wrapped)
        assert m.cpim().content_headers["content-disposition"] == "notification"
        assert m.cpim().imdn_notify == []
        got = m.imdn()
        assert (got.message_id, got.kind, got.status) == (mid, kind, status)
    with pytest.raises(ValueError):
        sipua.build_imdn(mid, "displayed", "delivery")


IMDN_HEAD = b'<imdn xmlns="urn:ietf:params:xml:ns:imdn">'
CORRUPT_IMDN = [
    b"not xml",
    b'<imdn xmlns="urn:other"><message-id>1</message-id></imdn>',
    IMDN_HEAD + b"<delivery-notification><status><delivered/></status>"
    b"</delivery-notification></imdn>",  # no message-id
    IMDN_HEAD + b"<message-id>1</message-id></imdn>",  # no notification
    IMDN_HEAD + b"<message-id>1</message-id><delivery-notification><status><displayed/>"
    b"</status></delivery-notification></imdn>",  # status of another kind
    IMDN_HEAD + b"<message-id>1</message-id><delivery-notification><status/>"
    b"</delivery-notification></imdn>",
]


@pytest.mark.parametrize("data", CORRUPT_IMDN)
def test_imdn_corrupt(data):
    with pytest.raises(ParseError):
        sipua.parse_imdn(data)


@pytest.mark.parametrize("data", [b"From: <a>\r\nTo: <b>", b"From: <a>\r\n\r\nContent-Type: x",
                                  b"bad line\r\n\r\nContent-Type: x\r\n\r\n",
                                  b"From: <a>\r\n\r\nContent-Length: 9\r\n\r\nshort"])
def test_cpim_corrupt(data):
    with pytest.raises(ParseError):
        sipua.parse_cpim(data)


# ---------------------------------------------------------------------------------------------
# two UAs

@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_message_between_two_uas(uas, transport):
    a, b = pair(uas, transport)
    r = b.message(a.contact_uri, "hi \u00e5", disposition="store&fwd",
                  headers={"Subject": "s", "Expires": "60"})
    assert r.status == 200 and r.reason == "OK"
    assert r.nameaddr("To").tag  # the UAS adds a To tag (8.2.6.2)
    assert r.nameaddr("From").tag and r.call_id and r.cseq() == (1, "MESSAGE")
    req = a.expect_request("MESSAGE")
    assert req.uri == a.contact_uri and req.text() == "hi \u00e5"
    assert req.content_type() == "text/plain" and req.content_params()["charset"] == "UTF-8"
    assert req.disposition() == "store&fwd" and req.headers["expires"] == "60"
    assert req.nameaddr("From").uri == "sip:bob@example.test"
    assert req.headers["Max-Forwards"] == "70"
    assert req.response.startswith(b"SIP/2.0 200 OK\r\n")
    via = req.vias()[0]
    assert via.transport == transport.upper() and via.branch.startswith("z9hG4bK")
    assert via.port == b.port

    # the other way: UDP to b's socket, TCP back on the connection b opened (18.2.2)
    r = a.message(b.contact_uri, "back", dest=("127.0.0.1", b.port)
                  if transport == "udp" else None)
    assert r.status == 200 and b.expect_request().text() == "back"

    # answer policies: a code, (code, reason), (code, headers), a callable
    for policy, want in ((486, (486, "Busy Here")), ((480, "Gone Away"), (480, "Gone Away")),
                         ((500, {"Retry-After": "5"}), (500, "Server Internal Error")),
                         (lambda rq: 202 if rq.disposition() == "instant" else 415,
                          (202, "Accepted"))):
        a.answer = policy
        r = b.message(a.contact_uri, "x", disposition="instant")
        assert (r.status, r.reason) == want
        assert a.expect_request().disposition() == "instant"
    assert r.status == 202
    a.no_request(0.2)
    b.no_request(0.2)
    assert len(a.requests) == 5 and len(b.requests) == 1


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_options_and_expect_request_timeouts(uas, transport):
    a, b = pair(uas, transport)
    r = b.options()
    assert r.status == 200 and "MESSAGE" in r.headers.getall("Allow")
    assert a.expect_request("OPTIONS").uri == "sip:example.test"
    with pytest.raises(AssertionError) as e:
        a.expect_request("MESSAGE", timeout=0.2)
    assert "no MESSAGE request" in str(e.value) and "nothing" in str(e.value)
    b.message(a.contact_uri, "one")
    with pytest.raises(AssertionError) as e:
        a.expect_request("MESSAGE", timeout=0.2, pred=lambda rq: rq.text() == "two")
    assert "MESSAGE sip:alice" in str(e.value)  # names what came instead
    with pytest.raises(AssertionError):
        a.no_request(0.1)
    assert a.expect_request(pred=lambda rq: rq.text() == "one")
    a.no_request(0.1)


# a registrar / proxy for the UA to authenticate against: a listening UA's answer policy

class DigestServer:
    """Challenges every request without credentials (401 for REGISTER, 407 otherwise) with
    one challenge per algorithm, and checks the credentials of the retry."""

    def __init__(self, users, realm=DOMAIN, algorithms=("MD5", "SHA-256"), stale_once=False):
        self.users, self.realm, self.algorithms = users, realm, algorithms
        self.stale_once = stale_once
        self.used = []  # (method, algorithm, nc, qop) of every accepted credential
        self.nonces = set()

    def __call__(self, req):
        code = 401 if req.method == "REGISTER" else 407
        creds = req.headers.get("Authorization" if code == 401 else "Proxy-Authorization")
        if creds is not None:
            _, p = sipua.parse_challenge(creds)
            assert p["uri"] == req.uri and p["realm"] == self.realm, p
            assert p["nonce"] in self.nonces, p
            want = sipua.digest_response(p["algorithm"], p["username"], p["realm"],
                                         self.users.get(p["username"], ""), req.method,
                                         p["uri"], p["nonce"], p.get("nc"), p.get("cnonce"),
                                         p.get("qop"))
            if want != p["response"]:
                return 403
            if self.stale_once:
                self.stale_once = False
                return self.challenge(code, stale=True)
            self.used.append((req.method, p["algorithm"], p["nc"], p["qop"]))
            if req.method == "REGISTER":
                contact = req.headers.get("Contact")
                exp = req.headers.get("Expires")
                return (200, {"Contact": contact if contact == "*"
                              else "%s;expires=%s" % (contact, exp)})
            return 202
        return self.challenge(code)

    def challenge(self, code, stale=False):
        name = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
        vals = []
        for alg in self.algorithms:
            nonce = secrets.token_hex(12)
            self.nonces.add(nonce)
            vals.append('Digest realm="%s", nonce="%s", qop="auth", algorithm=%s, opaque="o"%s'
                        % (self.realm, nonce, alg, ", stale=TRUE" if stale else ""))
        return (code, {name: vals})


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_register_and_message_with_digest(uas, transport):
    reg = uas(None, None, transport, user="registrar")
    reg.answer = server = DigestServer({"bob": "pb"})
    b = uas("127.0.0.1", reg.port, transport, user="bob", password="pb")

    r = b.register(expires=300)
    assert r.status == 200, b.report()
    assert r.contacts()[0].params["expires"] == "300"
    assert server.used == [("REGISTER", "SHA-256", "00000001", "auth")]  # SHA-256 preferred
    first, second = reg.expect_request("REGISTER"), reg.expect_request("REGISTER")
    assert "Authorization" not in first.headers and "Authorization" in second.headers
    assert first.uri == "sip:example.test"
    assert first.nameaddr("To").uri == first.nameaddr("From").uri == "sip:bob@example.test"
    assert first.headers["Contact"] == "<%s>" % b.contact_uri
    assert first.headers["Expires"] == "300"
    assert (first.cseq()[0], second.cseq()[0]) == (1, 2)
    assert first.call_id == second.call_id
    assert first.vias()[0].branch != second.vias()[0].branch  # a new transaction (8.1.3.5)

    r = b.unregister()
    assert r.status == 200
    third, fourth = reg.expect_request("REGISTER"), reg.expect_request("REGISTER")
    assert third.call_id == fourth.call_id == first.call_id  # 10.2.4
    assert (third.cseq()[0], fourth.cseq()[0]) == (3, 4)
    assert fourth.headers["Expires"] == "0" and fourth.headers["Contact"] == first.headers[
        "Contact"]
    assert b.unregister(all_contacts=True).status == 200
    assert reg.expect_request("REGISTER").headers["Contact"] == "*"
    reg.expect_request("REGISTER")

    # MESSAGE through a proxy that answers 407; MD5 when that is all the UA will use
    b.prefer = ("MD5",)
    r = b.message("sip:alice@example.test", "via proxy", imdn=True)
    assert r.status == 202 and r.imdn_id
    assert server.used[-1] == ("MESSAGE", "MD5", "00000001", "auth")
    m1, m2 = reg.expect_request(), reg.expect_request()
    assert m1.call_id == m2.call_id and (m1.cseq()[0], m2.cseq()[0]) == (1, 2)
    assert "Proxy-Authorization" in m2.headers and m2.body == m1.body
    assert m2.cpim().imdn_id == r.imdn_id and m2.text() == "via proxy"
    assert m2.content_type() == "message/cpim"

    # a wrong password is tried once, and the 403 returned
    b.password = "wrong"
    assert b.register().status == 403
    reg.expect_request("REGISTER")
    reg.expect_request("REGISTER")
    reg.no_request(0.1)


def test_stale_nonce_is_retried_once_more(uas):
    reg = uas(None, None, "udp", user="registrar")
    reg.answer = server = DigestServer({"bob": "pb"}, algorithms=("MD5",), stale_once=True)
    b = uas("127.0.0.1", reg.port, "udp", user="bob", password="pb")
    assert b.register().status == 200
    assert len(reg.requests) == 3 and server.used == [("REGISTER", "MD5", "00000001", "auth")]


def test_no_challenge_we_can_answer(uas):
    reg = uas(None, None, "udp", user="registrar")
    reg.answer = (401, {"WWW-Authenticate": 'Basic realm="x"'})
    b = uas("127.0.0.1", reg.port, "udp", user="bob", password="pb")
    assert b.register().status == 401 and len(reg.requests) == 1


# ---------------------------------------------------------------------------------------------
# UDP retransmission (RFC 3261 17.1.2.2, 17.2.2)

def test_udp_retransmission_until_answered(uas):
    a, b = pair(uas, "udp", t1=0.1)
    a.answer = None
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", b.message(a.contact_uri, "r")))
    t.start()
    req = a.expect_request(timeout=2)
    assert req.copies == 1 and req.response is None  # not answered: policy None
    a.answer = 200
    t.join(5)
    assert result["r"].status == 200
    assert req.copies >= 2 and req.response.startswith(b"SIP/2.0 200")
    assert len(result["r"].sends) == req.copies
    a.no_request(0.3)  # the copies were one request, queued once
    sent = [line for line in b.log if " > " in line and "MESSAGE sip:" in line]
    assert len(sent) == req.copies


def test_udp_retransmission_timing_and_timer_f(uas):
    t1, t2, timer_f = 0.05, 0.2, 1.2
    a, b = pair(uas, "udp", t1=t1, t2=t2, timer_f=timer_f)
    a.answer = None
    start = time.monotonic()
    with pytest.raises(AssertionError) as e:
        b.message(a.contact_uri, "never answered")
    took = time.monotonic() - start
    assert timer_f - 0.05 <= took <= timer_f + 0.5
    assert "no final response to MESSAGE" in str(e.value)
    req = a.expect_request(timeout=1)
    times = [line for line in b.log if " > " in line]
    stamps = [float(line.split()[0]) for line in times]
    gaps = [y - x for x, y in zip(stamps, stamps[1:])]
    # Timer E: T1, 2*T1, 4*T1 capped at T2, ... (copies at 0, .05, .15, .35, .55, ...)
    want = [min(t1 * 2 ** i, t2) for i in range(len(gaps))]
    assert len(gaps) >= 5, times
    for got, w in zip(gaps, want):
        assert w - 0.01 <= got <= w + 0.08, (gaps, want)
    assert req.copies == len(stamps)


def test_udp_provisional_response_slows_retransmission_to_t2(uas):
    t1, t2 = 0.05, 0.3
    a, b = pair(uas, "udp", t1=t1, t2=t2)
    a.answer = None
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", b.message(a.contact_uri, "p")))
    t.start()
    req = a.expect_request(timeout=2)
    a.respond(req, 100)
    time.sleep(1.0)
    a.respond(req, 200)
    t.join(5)
    r = result["r"]
    assert r.status == 200 and {p.status for p in r.provisional} == {100}
    assert r.provisional[0].nameaddr("To").tag is None  # no tag on 100 (8.2.6.1)
    gaps = [y - x for x, y in zip(r.sends, r.sends[1:])]
    # the first retransmission was already due at T1; after the 100 the interval is T2
    assert len(gaps) >= 2 and all(t2 - 0.01 <= g <= t2 + 0.08 for g in gaps[1:]), gaps
    # retransmissions in Proceeding got the 100 again (17.2.2)
    hundreds = [line for line in a.log if " > " in line and "SIP/2.0 100" in line]
    assert len(hundreds) == len(r.provisional) >= 3


def test_udp_retransmitted_request_gets_the_same_response(uas):
    a, b = pair(uas, "udp")
    data = (b"MESSAGE %s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKraw1;rport\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=9\r\n"
            b"To: <sip:alice@example.test>\r\nCall-ID: raw1\r\nCSeq: 1 MESSAGE\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 3\r\n\r\nraw"
            % (a.contact_uri.encode(), b.port))
    b.raw_send(data)
    r1 = b.raw_recv(2)
    b.raw_send(data)
    r2 = b.raw_recv(2)
    assert r1 == r2 and r1.startswith(b"SIP/2.0 200 OK")
    resp = sipua.parse_message(r1)
    assert resp.vias()[0].params["rport"] == str(b.port)  # RFC 3581 4
    assert resp.nameaddr("To").tag
    req = a.expect_request()
    assert req.copies == 2 and req.text() == "raw"
    a.no_request(0.2)
    # the responses matched no transaction of b's: noted as errors, as they should be
    assert len(b.errors) == 2 and all("no transaction" in e for e in b.errors)
    b.errors.clear()


def test_garbage_is_noted_not_fatal(uas):
    a, b = pair(uas, "udp")
    b.raw_send(b"\x00\x01 not SIP at all\r\n\r\n")
    b.raw_send(b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 99\r\n\r\nshort")
    time.sleep(0.2)
    assert len(a.errors) == 2 and all("unusable message" in e for e in a.errors)
    a.errors.clear()
    assert b.message(a.contact_uri, "still alive").status == 200


# ---------------------------------------------------------------------------------------------
# TCP framing: a hand-driven "server" sends requests back on the UA's connection

def _read_messages(sock, n, timeout=3):
    framer, out = sipua.StreamFramer(), []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while len(out) < n and time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        out += [sipua.parse_message(m, stream=True) for m in framer.feed(data)]
    assert len(out) >= n, "got %d of %d messages" % (len(out), n)
    return out


def test_tcp_two_requests_in_one_segment(uas):
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    try:
        ua = uas("127.0.0.1", lsock.getsockname()[1], "tcp", user="alice", password="pa")
        conn, _ = lsock.accept()
        with conn:
            def req(n, body):
                return (b"MESSAGE %s SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:%d;branch=z9hG4bKs%d\r\n"
                        b"Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=%d\r\n"
                        b"To: <sip:alice@example.test>\r\nCall-ID: tcp%d\r\nCSeq: 1 MESSAGE\r\n"
                        b"c: text/plain\r\nl: %d\r\n\r\n%s"
                        % (ua.contact_uri.encode(), lsock.getsockname()[1], n, n, n,
                           len(body), body))
            conn.sendall(b"\r\n\r\n" + req(1, b"first\r\n\r\n") + req(2, b"second"))
            third = req(3, b"third")
            conn.sendall(third[:20])
            time.sleep(0.1)
            conn.sendall(third[20:])
            got = [ua.expect_request(timeout=2) for _ in range(3)]
            assert [g.text() for g in got] == ["first\r\n\r\n", "second", "third"]
            resps = _read_messages(conn, 3)
            assert [(r.status, r.call_id) for r in resps] == [(200, "tcp1"), (200, "tcp2"),
                                                              (200, "tcp3")]
            # and the UA's own request goes out on the same connection
            t = threading.Thread(target=lambda: ua.options(timeout=3))
            t.start()
            (opt,) = _read_messages(conn, 1)
            assert opt.method == "OPTIONS" and opt.vias()[0].port == ua.port
            conn.sendall(b"SIP/2.0 200 OK\r\n" + b"".join(
                b"%s: %s\r\n" % (n.encode(), v.encode()) for n, v in opt.headers
                if n in ("Via", "From", "To", "Call-ID", "CSeq")) + b"Content-Length: 0\r\n\r\n")
            t.join(5)
            assert not t.is_alive()
        # the peer closing is seen, and a transaction on that connection fails at once
        assert ua.closed_by_peer.wait(2)
        start = time.monotonic()
        with pytest.raises(AssertionError) as e:
            ua.options(timeout=10)
        assert time.monotonic() - start < 2
        assert "connection closed" in str(e.value) or "sending" in str(e.value)
    finally:
        lsock.close()
