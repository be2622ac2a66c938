"""SIP against a real batond (PROTOCOL.md 5, digest 004 R1-R7, R14, R26): the registrar with
digest authentication (RFC 3261 10.3, 22; RFC 2617, RFC 8760), MESSAGE (RFC 3428) with the
instant / store&fwd flag, storage and delivery at the next REGISTER, OPTIONS and unknown
methods, each over UDP and TCP, driven by the test UA tests/integration/sipua.py.

Invariant: every test uses fresh accounts and its own UAs, which are closed and checked for
RFC violations (ua.check_clean) when it ends; absence is asserted only after a later marker
message has arrived first, or a bounded wait passed.
"""

import concurrent.futures
import time

import pytest

from conftest import start_server
from helpers import free_port, stop_and_check
from sipua import SipUA, authorization, choose_challenge

DOMAIN = "localhost"
SIP_PORT = free_port()
SETS = ["sip.t1=100ms", "sip.min_expires=1s", "server.log_level=debug"]
SERVER_OPTS = {"domain": DOMAIN, "sets": SETS, "extra_args": ["--sip", "127.0.0.1:%d" % SIP_PORT]}

MAX_EXPIRES = 3600  # sip.max_expires default
TIMER_F = 6.4  # 64 * sip.t1 (100 ms)

# the second server: short nonce lifetime, a Min-Expires above 1 s
SHORT_PORT = free_port()
SHORT_NONCE_TTL = 1.0
SHORT_MIN_EXPIRES = 30


@pytest.fixture(params=["udp", "tcp"])
def transport(request):
    return request.param


@pytest.fixture
def uas(server, transport):
    """uas(jid=None, password=None, transport=<the test's>, port=SIP_PORT, **SipUA options) ->
    a SipUA for that account (a fresh one by default); closed and checked when the test ends."""
    made = []

    def make(jid=None, password=None, transport=transport, port=SIP_PORT, srv=server, **kw):
        if jid is None:
            jid, password = srv.add_user()
        kw.setdefault("timer_f", 10)
        ua = SipUA("127.0.0.1", port, transport, user=jid.split("@")[0], password=password,
                   domain=DOMAIN, **kw)
        ua.jid = jid
        made.append(ua)
        return ua
    yield make
    for ua in made:
        ua.close()
    for ua in made:
        ua.check_clean()


@pytest.fixture(scope="module")
def short_server(tmp_path_factory):
    """A second batond: sip.nonce_ttl=1s, sip.min_expires=30s."""
    srv = start_server(tmp_path_factory, "sip_short", domain=DOMAIN,
                       sets=["sip.t1=100ms", "sip.nonce_ttl=1s",
                             "sip.min_expires=%ds" % SHORT_MIN_EXPIRES, "server.log_level=debug"],
                       extra_args=["--sip", "127.0.0.1:%d" % SHORT_PORT])
    yield srv
    stop_and_check(srv)


def ok(resp, *codes, what=""):
    """Asserts resp.status is one of codes (200 by default), with the UA's log otherwise."""
    codes = codes or (200,)
    assert resp.status in codes, "%s: expected %s, got %s %s\n%s" % (
        what, codes, resp.status, resp.reason, resp.raw.decode("utf-8", "replace"))
    return resp


def challenge_of(resp, alg):
    chal = choose_challenge(resp.challenges(), (alg,))
    assert chal is not None, "no %s challenge in %s" % (alg, resp.raw)
    return chal


def register_hdrs(ua, expires, auth=None, contact=None):
    h = [("Contact", contact or "<%s>" % ua.contact_uri), ("Expires", str(expires))]
    if auth:
        h.append(("Authorization", auth))
    return h


def contacts_of(resp):
    """{contact URI: expires} of a REGISTER's 200."""
    return {c.uri: int(c.params.get("expires", -1)) for c in resp.contacts()}


def marker_first(sender, rcpt, what):
    """The sender stores a marker for rcpt (which is unregistered); rcpt registers; the first
    MESSAGE to arrive must be the marker (so nothing else was stored before it)."""
    text = "marker after %s" % what
    ok(sender.message(rcpt.aor, text, disposition="store&fwd"), 202, what="marker")
    ok(rcpt.register(60))
    m = rcpt.expect_request("MESSAGE", timeout=3)
    assert m.text() == text, "%s: %r arrived at the REGISTER before the marker\n%s" % (
        what, m.text(), rcpt.report())
    return m


# ---------------------------------------------------------------------------------------------
# REGISTER


def test_register_challenge(uas):
    ua = uas()
    r = ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60), to=ua.aor,
                      auth=False), 401)
    chals = r.challenges()
    algs = [p.get("algorithm") for s, p in chals]
    assert algs == ["SHA-256", "MD5"], "RFC 8760 2.4: SHA-256 first, then MD5; got %s" % \
        r.headers.lines("WWW-Authenticate")
    for scheme, p in chals:
        assert scheme == "Digest" and p.get("realm") == DOMAIN and p.get("nonce"), p
        assert "auth" in (p.get("qop") or "").split(","), p
    assert r.nameaddr("To").tag, "a final response carries a To tag (8.2.6.2)"
    assert "Proxy-Authenticate" not in r.headers


@pytest.mark.parametrize("alg", ["MD5", "SHA-256"])
def test_register_with_algorithm(uas, alg):
    ua = uas()
    cid = "reg-%s@test" % alg
    r = ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60), to=ua.aor,
                      call_id=cid, cseq=1, auth=False), 401)
    cred = authorization(challenge_of(r, alg), ua.user, ua.password, "REGISTER", "sip:" + DOMAIN)
    assert "algorithm=%s" % alg in cred
    r = ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60, cred),
                      to=ua.aor, call_id=cid, cseq=2, auth=False), what="REGISTER with " + alg)
    assert contacts_of(r).get(ua.contact_uri, 0) > 0, r.raw


def test_wrong_password_and_unknown_user_same_answer(server, uas):
    jid, pw = server.add_user()
    wrong = uas(jid, pw + "x")
    r1 = wrong.register(60)
    nobody = uas("nobody%d@%s" % (SIP_PORT, DOMAIN), "whatever")
    r2 = nobody.register(60)
    assert (r1.status, r2.status) == (403, 403), (r1.raw, r2.raw)
    assert r1.reason == r2.reason, "an unknown user must look like a wrong password: %r / %r" % (
        r1.reason, r2.reason)
    assert sorted(n for n, _ in r1.headers) == sorted(n for n, _ in r2.headers)
    # the right password still works
    ok(uas(jid, pw).register(60))


def test_register_someone_elses_aor(uas):
    alice, bob = uas(), uas()
    r = alice.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(alice, 60), to=bob.aor)
    ok(r, 403, what="alice registering bob's AoR")
    # nothing was bound to bob: an instant MESSAGE to bob finds no one
    ok(alice.message(bob.aor, "are you there?", disposition="instant"), 480)
    alice.no_request(0.3)


def test_register_expires_capped(uas):
    ua = uas()
    r = ok(ua.register(7200))
    e = contacts_of(r).get(ua.contact_uri)
    assert e is not None and MAX_EXPIRES - 5 <= e <= MAX_EXPIRES, \
        "Expires 7200 not capped at sip.max_expires (3600): %s" % r.headers.lines("Contact")
    # the same through the Contact's expires parameter
    r = ok(ua.register(60, contact="<%s>;expires=99999" % ua.contact_uri))
    e = contacts_of(r).get(ua.contact_uri)
    assert e is not None and MAX_EXPIRES - 5 <= e <= MAX_EXPIRES, r.headers.lines("Contact")


def test_register_lists_contacts_refresh_and_remove(server, uas, transport):
    jid, pw = server.add_user()
    one = uas(jid, pw)
    two = uas(jid, pw, transport="tcp" if transport == "udp" else "udp")
    r = ok(one.register(100))
    assert contacts_of(r) == {one.contact_uri: contacts_of(r).get(one.contact_uri)}
    assert 95 <= contacts_of(r)[one.contact_uri] <= 100, r.headers.lines("Contact")
    r = ok(two.register(200))
    c = contacts_of(r)
    assert set(c) == {one.contact_uri, two.contact_uri}, \
        "the 200 lists every current binding (10.3 step 8): %s" % r.headers.lines("Contact")
    assert 95 <= c[one.contact_uri] <= 100 and 195 <= c[two.contact_uri] <= 200, c
    # refresh: the same contact, new expiry, no duplicate
    r = ok(one.register(50))
    lines = r.headers.getall("Contact")
    assert len(lines) == 2, lines
    c = contacts_of(r)
    assert 45 <= c[one.contact_uri] <= 50 and 190 <= c[two.contact_uri] <= 200, c
    # Expires: 0 removes only that binding
    r = ok(one.unregister())
    assert set(contacts_of(r)) == {two.contact_uri}, r.headers.lines("Contact")
    # the remaining binding gets messages
    sender = uas()
    ok(sender.message("sip:" + jid, "to two", disposition="instant"))
    assert two.expect_request("MESSAGE").text() == "to two"
    one.no_request(0.3)
    # Contact: * with Expires: 0 removes everything
    r = ok(two.unregister(all_contacts=True))
    assert contacts_of(r) == {}, r.headers.lines("Contact")
    ok(sender.message("sip:" + jid, "nobody home", disposition="instant"), 480)


def test_register_star_needs_expires_zero(uas):
    ua = uas()
    ok(ua.register(60))
    r = ua.register(60, contact="*")
    ok(r, 400, what="Contact: * with Expires 60 (10.3 step 6)")


def test_register_cseq_out_of_order(uas):
    ua = uas()
    cid = "cseq-test@127.0.0.1"
    r = ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60), to=ua.aor,
                      call_id=cid, cseq=10))
    assert r.cseq_used == 11
    # the same Call-ID with a lower CSeq (the UA's answer to the 401 goes out with 6)
    r = ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60), to=ua.aor,
                   call_id=cid, cseq=5)
    ok(r, 500, what="CSeq 6 after 11 on the same Call-ID (10.3 step 7)")
    # going on upwards works again
    ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60), to=ua.aor,
                  call_id=cid, cseq=20))


def test_register_replayed_authorization_refused(uas):
    ua = uas()
    cid = "replay@127.0.0.1"
    r = ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60), to=ua.aor,
                      call_id=cid, cseq=1, auth=False), 401)
    cred = authorization(challenge_of(r, "SHA-256"), ua.user, ua.password, "REGISTER",
                         "sip:" + DOMAIN, nc=1, cnonce="fixedcnonce")
    ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60, cred), to=ua.aor,
                  call_id=cid, cseq=2, auth=False))
    # the same credentials (nonce, nc, cnonce) in a new transaction
    r = ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 300, cred),
                   to=ua.aor, call_id=cid, cseq=3, auth=False)
    assert r.status in (401, 403), "a replayed Authorization was accepted: %s %s" % (
        r.status, r.reason)
    if r.status == 401:
        # the fresh challenge is answerable
        cred = authorization(challenge_of(r, "SHA-256"), ua.user, ua.password, "REGISTER",
                             "sip:" + DOMAIN)
        ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60, cred),
                      to=ua.aor, call_id=cid, cseq=4, auth=False))


def test_message_replayed_authorization_refused(uas):
    alice, bob = uas(), uas()
    ok(bob.register(60))
    uri = bob.aor
    r = ok(alice.request("MESSAGE", uri, body=b"once", content_type="text/plain", auth=False),
           407)
    cred = authorization(challenge_of(r, "SHA-256"), alice.user, alice.password, "MESSAGE", uri,
                         nc=1, cnonce="fixedcnonce")
    hdrs = [("Proxy-Authorization", cred)]
    ok(alice.request("MESSAGE", uri, headers=hdrs, body=b"once", content_type="text/plain",
                     auth=False))
    assert bob.expect_request("MESSAGE").text() == "once"
    r = alice.request("MESSAGE", uri, headers=hdrs, body=b"once", content_type="text/plain",
                      auth=False)
    assert r.status in (403, 407), "a replayed Proxy-Authorization was accepted: %s %s" % (
        r.status, r.reason)
    bob.no_request(0.5)


def test_register_423_and_stale_nonce(short_server, uas):
    ua = uas(srv=short_server, port=SHORT_PORT)
    r = ok(ua.register(SHORT_MIN_EXPIRES - 20), 423, what="Expires below sip.min_expires")
    assert r.headers.get("Min-Expires") == str(SHORT_MIN_EXPIRES), r.raw
    r = ok(ua.register(60, contact="<%s>;expires=5" % ua.contact_uri), 423)
    assert r.headers.get("Min-Expires") == str(SHORT_MIN_EXPIRES), r.raw
    r = ok(ua.register(SHORT_MIN_EXPIRES))
    assert contacts_of(r).get(ua.contact_uri, 0) > 0, r.raw
    # stale nonce: credentials for a nonce older than sip.nonce_ttl
    cid = "stale@127.0.0.1"
    r = ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60), to=ua.aor,
                      call_id=cid, cseq=1, auth=False), 401)
    chal = challenge_of(r, "SHA-256")
    time.sleep(SHORT_NONCE_TTL + 0.6)
    cred = authorization(chal, ua.user, ua.password, "REGISTER", "sip:" + DOMAIN)
    r = ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60, cred),
                      to=ua.aor, call_id=cid, cseq=2, auth=False), 401, what="stale nonce")
    for scheme, p in r.challenges():
        assert (p.get("stale") or "").lower() == "true", \
            "RFC 2617 3.2.1: a stale nonce gets stale=true: %s" % r.headers.lines(
                "WWW-Authenticate")
        assert p.get("nonce") != chal.get("nonce")
    # answering the new challenge works
    cred = authorization(challenge_of(r, "MD5"), ua.user, ua.password, "REGISTER",
                         "sip:" + DOMAIN)
    ok(ua.request("REGISTER", "sip:" + DOMAIN, headers=register_hdrs(ua, 60, cred), to=ua.aor,
                  call_id=cid, cseq=3, auth=False))


# ---------------------------------------------------------------------------------------------
# MESSAGE


def test_message_challenge(uas):
    alice, bob = uas(), uas()
    r = ok(alice.request("MESSAGE", bob.aor, body=b"hi", content_type="text/plain", auth=False),
           407)
    algs = [p.get("algorithm") for s, p in r.challenges()]
    assert algs == ["SHA-256", "MD5"], r.headers.lines("Proxy-Authenticate")
    assert "WWW-Authenticate" not in r.headers


# (Content-Disposition sent, the flag expected at the recipient: None = no header)
FLAGS = [("instant", ("instant",)),
         ("store&fwd", ("store&fwd",)),
         ("S&f;handling=optional", ("store&fwd", "s&f")),
         (None, (None, "store&fwd"))]


@pytest.mark.parametrize("sent,expected", FLAGS, ids=["instant", "store&fwd", "S&f-param",
                                                      "none"])
def test_message_flags_to_registered(uas, sent, expected):
    alice, bob = uas(), uas()
    ok(bob.register(60))
    text = "flag %s: grüße" % sent
    r = alice.message(bob.aor, text, disposition=sent)
    ok(r, 200, what="MESSAGE with Content-Disposition %r to a registered UA" % sent)
    m = bob.expect_request("MESSAGE")
    assert m.text() == text
    assert m.disposition() in expected, \
        "R2: Content-Disposition %r arrived as %r" % (sent, m.headers.get("Content-Disposition"))
    assert m.nameaddr("From").uri == alice.aor and m.nameaddr("To").uri == bob.aor, \
        m.raw.decode("utf-8", "replace")
    assert m.content_type() == "text/plain"
    bob.no_request(0.2)
    # delivered live: nothing was kept (R3, R14)
    ok(bob.unregister())
    marker_first(alice, bob, "a MESSAGE delivered with 200")
    bob.no_request(0.5)


def test_message_200_only_after_recipient_answers(uas):
    """R26: the 200 comes only after the recipient's 2xx."""
    alice, bob = uas(), uas()
    bob.answer = None
    ok(bob.register(60))
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        fut = ex.submit(alice.message, bob.aor, "wait for it", disposition="instant")
        m = bob.expect_request("MESSAGE")
        time.sleep(0.5)
        assert not fut.done(), "final response before the recipient answered: %s" % (
            fut.result().first_line)
        bob.respond(m, 200)
        ok(fut.result(timeout=5))


def test_instant_to_unregistered(uas):
    """R3/R4: 480, never stored."""
    alice, bob = uas(), uas()
    t0 = time.monotonic()
    ok(alice.message(bob.aor, "instant, lost", disposition="instant"), 480)
    assert time.monotonic() - t0 < 1.5
    marker_first(alice, bob, "an instant MESSAGE answered 480")
    bob.no_request(0.5)


def test_store_and_forward_restart_order_once(server, uas, transport):
    """R5, R7, R14: 202 within 1 s, survives a restart, delivered in order within 2 s of the
    REGISTER, exactly once."""
    alice = uas()
    bob_jid, bob_pw = server.add_user()
    bodies = ["s&f %d" % i for i in range(5)]
    flags = ["store&fwd", "S&F", None, "store&fwd;handling=required", "STORE&FWD"]
    for b, f in zip(bodies, flags):
        t0 = time.monotonic()
        r = alice.message("sip:" + bob_jid, b, disposition=f)
        ok(r, 202, what="R5/R26: stored (%r), never 200" % f)
        assert time.monotonic() - t0 < 1.0, "R5: 202 within 1 s"
    alice.close()
    server.restart()
    bob = uas(bob_jid, bob_pw)
    r = ok(bob.register(60))
    t0 = time.monotonic()
    got = []
    for i in range(5):
        got.append(bob.expect_request("MESSAGE", timeout=3))
    assert [m.text() for m in got] == bodies, "R14: stored messages out of order"
    assert got[-1].time - t0 < 2.0, "R7: within 2 s of the REGISTER (%.2fs)" % (
        got[-1].time - t0)
    for m in got:
        assert m.nameaddr("From").uri == "sip:%s@%s" % (alice.user, DOMAIN)
    assert [m.disposition() for m in got][:2] == ["store&fwd", "store&fwd"], \
        [m.headers.get("Content-Disposition") for m in got]
    time.sleep(0.3)
    ok(bob.register(60))
    bob.no_request(1.0)
    ok(bob.unregister())
    ok(bob.register(60))
    bob.no_request(1.0)


@pytest.mark.parametrize("code", [480, 486, 503])
def test_recipient_answers_failure(uas, code):
    """R6: a registered recipient whose UA refuses: instant fails, store&fwd is kept (202)
    and sent at the next REGISTER."""
    alice, bob = uas(), uas()
    bob.answer = code
    ok(bob.register(60))
    r = alice.message(bob.aor, "instant refused", disposition="instant")
    # the UA's failure, or 480; a 503 is not passed on (RFC 3261 16.7 step 6)
    ok(r, *{480: (480,), 486: (486, 480), 503: (480, 500)}[code], what="instant, UA said %d" % code)
    assert bob.expect_request("MESSAGE").text() == "instant refused"
    ok(alice.message(bob.aor, "kept for later", disposition="store&fwd"), 202,
       what="R6: store&fwd refused by the UA")
    assert bob.expect_request("MESSAGE").text() == "kept for later"
    bob.answer = 200
    ok(bob.register(60))
    m = bob.expect_request("MESSAGE", timeout=3)
    assert m.text() == "kept for later", "the instant one was kept (R4), or the other lost"
    assert m.disposition() == "store&fwd"
    bob.no_request(0.5)


def test_recipient_does_not_answer(uas):
    """R6 with a timeout (64*T1 = 6.4 s): instant gets 480, store&fwd 202; the stored one
    arrives at the next REGISTER. Both run at once."""
    a1, a2, bob = uas(timer_f=20), uas(timer_f=20), uas()
    bob.answer = None
    ok(bob.register(60))
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        t0 = time.monotonic()
        f1 = ex.submit(a1.message, bob.aor, "instant, unanswered", disposition="instant")
        f2 = ex.submit(a2.message, bob.aor, "s&f, unanswered", disposition="store&fwd")
        r1, r2 = f1.result(timeout=20), f2.result(timeout=20)
        elapsed = time.monotonic() - t0
    ok(r1, 480, what="instant to a silent UA")
    ok(r2, 202, what="store&fwd to a silent UA")
    assert TIMER_F - 1.0 <= elapsed <= TIMER_F + 3.0, "Timer F is 64*T1 = 6.4 s: %.1fs" % elapsed
    first = {bob.expect_request("MESSAGE").text() for _ in range(2)}
    assert first == {"instant, unanswered", "s&f, unanswered"}
    time.sleep(0.3)
    bob.answer = 200
    ok(bob.register(60))
    m = bob.expect_request("MESSAGE", timeout=3)
    assert m.text() == "s&f, unanswered"
    bob.no_request(0.5)


def test_message_from_not_authenticated_user(uas):
    alice, bob, carol = uas(), uas(), uas()
    ok(bob.register(60))
    r = ok(alice.request("MESSAGE", bob.aor, body=b"x", content_type="text/plain", auth=False),
           407)
    cred = authorization(challenge_of(r, "SHA-256"), alice.user, alice.password, "MESSAGE",
                         bob.aor)
    alice.user = carol.user  # From: carol, credentials: alice
    r = alice.request("MESSAGE", bob.aor, headers=[("Proxy-Authorization", cred)], body=b"x",
                      content_type="text/plain", auth=False)
    ok(r, 403, what="From sip:carol, authenticated as alice")
    bob.no_request(0.3)


@pytest.mark.parametrize("flag", [None, "store&fwd", "instant"])
def test_message_unknown_recipient(uas, flag):
    alice = uas()
    r = alice.message("sip:nosuchuser%d@%s" % (SIP_PORT, DOMAIN), "hello?", disposition=flag)
    ok(r, 404, what="MESSAGE (%r) to an unknown user" % flag)


def test_message_other_domain(uas):
    alice = uas()
    ok(alice.message("sip:bob@example.org", "relay me"), 403, what="no relaying")


@pytest.mark.parametrize("ctype", ["application/octet-stream", "image/png", "text/html"])
def test_message_non_text_body(uas, ctype):
    alice, bob = uas(), uas()
    ok(bob.register(60))
    r = alice.message(bob.aor, b"\x89PNG\r\n\x1a\n" if ctype == "image/png" else b"<b>x</b>",
                      content_type=ctype)
    ok(r, 415, what=ctype)
    bob.no_request(0.3)


def test_stored_message_reaches_xmpp(server, uas, clients):
    alice = uas()
    bob_jid, bob_pw = server.add_user()
    ok(alice.message("sip:" + bob_jid, "to your phone or your laptop", disposition="store&fwd"),
       202)
    c = server.login(bob_jid, bob_pw, presence=True)
    clients.append(c)
    m = c.expect_message(body="to your phone or your laptop", timeout=5)
    assert m.get("from") == "%s@%s" % (alice.user, DOMAIN), m.attrib
    assert m.get("type") == "chat", m.attrib


# ---------------------------------------------------------------------------------------------
# OPTIONS and the rest


def test_options(uas):
    ua = uas()
    r = ok(ua.options())
    allow = {a.strip().upper() for a in r.headers.getall("Allow")}
    assert {"REGISTER", "MESSAGE", "OPTIONS"} <= allow, r.headers.lines("Allow")
    assert r.nameaddr("To").tag


@pytest.mark.parametrize("method", ["FOO", "PUBLISH"])
def test_unknown_method(uas, method):
    ua = uas()
    r = ok(ua.request(method, "sip:" + DOMAIN), 405)
    allow = {a.strip().upper() for a in r.headers.getall("Allow")}
    assert {"REGISTER", "MESSAGE", "OPTIONS"} <= allow and method not in allow, \
        r.headers.lines("Allow")
