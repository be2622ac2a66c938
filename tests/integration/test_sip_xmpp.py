"""SIP and XMPP as two devices of one account, against a real batond (PROTOCOL.md 5, digest 004
R8, R11-R14, R23-R26): XMPP chat to a registered SIP UA and back, XEP-0184 receipts for a SIP
device's 200, the 200/202 answers for XMPP recipients, the SIP device in the account's presence,
and RFC 5438 IMDN delivery reports (delivered on a 2xx or an XMPP <received/>, failed on
expiry), driven by tests/integration/sipua.py and the XMPP client of helpers.py.

Invariant: every test uses fresh accounts, its own UAs (closed and checked with check_clean)
and XMPP clients; absence is asserted only after a later marker arrived first, or after a
bounded wait. offline.expiry is 4 s here, so a stored message is fetched well within that.
"""

import time

import pytest

from helpers import NS_CLIENT, bare, free_port, q, sub_state, tostr
from sipua import SipUA

DOMAIN = "localhost"
SIP_PORT = free_port()
OFFLINE_EXPIRY = 4.0
SETS = ["sip.t1=100ms", "sip.min_expires=1s", "offline.expiry=%ds" % OFFLINE_EXPIRY,
        "server.log_level=debug"]
SERVER_OPTS = {"domain": DOMAIN, "sets": SETS, "extra_args": ["--sip", "127.0.0.1:%d" % SIP_PORT]}

NS_RECEIPTS = "urn:xmpp:receipts"
NS_DELAY = "urn:xmpp:delay"


@pytest.fixture(params=["udp", "tcp"])
def transport(request):
    return request.param


def _uas_factory(server, transport):
    made = []

    def make(jid=None, password=None, transport=transport, **kw):
        if jid is None:
            jid, password = server.add_user()
        kw.setdefault("timer_f", 10)
        ua = SipUA("127.0.0.1", SIP_PORT, transport, user=jid.split("@")[0], password=password,
                   domain=DOMAIN, **kw)
        ua.jid = jid
        made.append(ua)
        return ua
    return made, make


@pytest.fixture
def uas(server, transport):
    """uas(jid=None, password=None, **SipUA options) -> a SipUA for that account (a fresh one
    by default) over the test's transport; closed and checked when the test ends."""
    made, make = _uas_factory(server, transport)
    yield make
    time.sleep(0.2)  # a request just taken from the queue may still be being answered
    for ua in made:
        ua.close()
    for ua in made:
        ua.check_clean()


@pytest.fixture
def udp_uas(server):
    """uas over UDP only, for the slow tests that run once."""
    made, make = _uas_factory(server, "udp")
    yield make
    time.sleep(0.2)  # a request just taken from the queue may still be being answered
    for ua in made:
        ua.close()
    for ua in made:
        ua.check_clean()


def ok(resp, *codes, what=""):
    """Asserts resp.status is one of codes (200 by default), with the response otherwise."""
    codes = codes or (200,)
    assert resp.status in codes, "%s: expected %s, got %s %s\n%s" % (
        what, codes, resp.status, resp.reason, resp.raw.decode("utf-8", "replace"))
    return resp


def body_of(el):
    return el.findtext(q(NS_CLIENT, "body"))


def receipt_id(el):
    r = el.find(q(NS_RECEIPTS, "received"))
    return r.get("id") if r is not None else None


def marker_first_xmpp(login, sender, jid, password, gone, what):
    """sender (an XMPP client) stores a marker for jid, which has no device online; jid logs
    in: the marker must be the first chat message to arrive, and nothing with body gone."""
    text = "marker after %s" % what
    sender.message(jid, text)
    sender.sync()
    c = login(jid, password, presence=True)
    m = c.expect("message", pred=lambda e: body_of(e) is not None, timeout=5,
                 what="the marker")
    assert body_of(m) == text, "%s: %r arrived at login before the marker: %s" % (
        what, body_of(m), tostr(m))
    late = [e for e in c.drain(0.5) if e.tag == q(NS_CLIENT, "message") and body_of(e) == gone]
    assert not late, "%s: delivered again at login: %s" % (what, [tostr(e) for e in late])
    return c


def marker_first_sip(sender, rcpt, what):
    """sender (a SIP UA) stores a marker for rcpt (unregistered); rcpt registers; the first
    MESSAGE to arrive must be the marker."""
    text = "marker after %s" % what
    ok(sender.message(rcpt.aor, text, disposition="store&fwd"), 202, what="marker")
    ok(rcpt.register(60))
    m = rcpt.expect_request("MESSAGE", timeout=3)
    assert m.text() == text, "%s: %r arrived at the REGISTER before the marker\n%s" % (
        what, m.text(), rcpt.report())
    return m


def subscribe(a, b):
    """a subscribes to b's presence and b approves (RFC 6121 3.1); both online with rosters."""
    a.send_presence(to=b.bare, type_="subscribe")
    b.expect("presence", type="subscribe", frm=a.bare)
    b.send_presence(to=a.bare, type_="subscribed")
    a.expect("presence", type="subscribed", frm=b.bare)
    a.expect_push(b.bare, pred=lambda i: i.get("ask") is None and
                  sub_state(i)[0] in ("to", "both"))


def expect_sip_presence(c, jid, available, timeout=5):
    """The presence of jid/sip at client c: available with status SIP, or unavailable."""
    full = "%s/sip" % jid
    p = c.expect_presence(frm=full, type_=None if available else "unavailable",
                          timeout=timeout)
    if available:
        assert p.findtext(q(NS_CLIENT, "status")) == "SIP", \
            "the SIP device's presence has status SIP: %s" % tostr(p)
    return p


# ---------------------------------------------------------------------------------------------
# XMPP -> SIP


def test_xmpp_chat_to_sip_device(server, login, uas):
    """An XMPP message to an account whose only device is a SIP UA becomes a MESSAGE from
    sip:sender@domain; after the UA's 200 it is gone (R14): a re-REGISTER brings nothing,
    nor does an XMPP login."""
    bob_jid, bob_pw = server.add_user()
    ua = uas(bob_jid, bob_pw)
    ok(ua.register(60))
    alice = login()
    text = "from xmpp to your phone: grüße"
    alice.message(bob_jid, text)
    m = ua.expect_request("MESSAGE", timeout=5)
    assert m.text() == text, m.raw
    assert m.nameaddr("From").uri == "sip:%s" % alice.bare, \
        "From must be the sender's SIP address: %s" % m.headers.get("From")
    assert m.content_type() == "text/plain", m.headers.get("Content-Type")
    time.sleep(0.3)
    ok(ua.register(60))
    ua.no_request(1.0)
    ok(ua.unregister())
    marker_first_xmpp(login, alice, bob_jid, bob_pw, text, "a chat the SIP device took")


@pytest.mark.parametrize("then", ["register", "xmpp"])
def test_xmpp_chat_refused_by_sip_device_stays_stored(server, login, uas, then):
    """The UA answers 480: the message stays stored and arrives at the next REGISTER, or at
    the account's XMPP login (R6, R8), once."""
    bob_jid, bob_pw = server.add_user()
    ua = uas(bob_jid, bob_pw)
    ua.answer = 480
    ok(ua.register(60))
    alice = login(presence=True)
    text = "refused by the phone, kept (%s)" % then
    mid = alice.message(bob_jid, text, extra="<request xmlns='%s'/>" % NS_RECEIPTS)
    assert ua.expect_request("MESSAGE", timeout=5).text() == text
    time.sleep(0.3)
    if then == "register":
        alice.no_stanza("message", pred=lambda e: receipt_id(e) is not None, timeout=0.3)
        ua.answer = 200
        ok(ua.register(60))
        m = ua.expect_request("MESSAGE", timeout=3)
        assert m.text() == text, "R6: kept and sent at the next REGISTER\n%s" % ua.report()
        assert m.nameaddr("From").uri == "sip:%s" % alice.bare
        # XEP-0184: the receipt comes with the 200 at the REGISTER, not with the 480
        r = alice.expect("message", pred=lambda e: receipt_id(e) is not None, timeout=3,
                         what="XEP-0184 receipt after the stored message's 200")
        assert receipt_id(r) == mid and bare(r.get("from")) == bob_jid, tostr(r)
        time.sleep(0.3)
        ok(ua.register(60))
        ua.no_request(1.0)
        ok(ua.unregister())
        marker_first_xmpp(login, alice, bob_jid, bob_pw, text, "480 then 200 at REGISTER")
    else:
        ok(ua.unregister())
        c = login(bob_jid, bob_pw, presence=True)
        m = c.expect("message", pred=lambda e: body_of(e) is not None, timeout=5,
                     what="the message the SIP device refused")
        assert body_of(m) == text and bare(m.get("from")) == alice.bare, tostr(m)
        assert m.find(q(NS_DELAY, "delay")) is not None, "R8: delivered with <delay/>: %s" % \
            tostr(m)


def test_stored_from_sip_and_xmpp_in_order(server, login, uas):
    """R14: messages stored from SIP and from XMPP for one account reach its SIP device at the
    REGISTER in arrival order, each once."""
    bob_jid, bob_pw = server.add_user()
    ua = uas(bob_jid, bob_pw)
    alice = uas()
    carol = login()
    sent = []
    for i in range(4):
        text = "mixed %d" % i
        if i % 2 == 0:
            ok(alice.message(ua.aor, text, disposition="store&fwd"), 202)
        else:
            carol.message(bob_jid, text)
            carol.sync()
        sent.append(text)
    time.sleep(0.2)
    ok(ua.register(60))
    got = [ua.expect_request("MESSAGE", timeout=3) for _ in sent]
    assert [m.text() for m in got] == sent, "R14: out of order: %s" % [m.text() for m in got]
    assert [m.nameaddr("From").uri for m in got] == [alice.aor, "sip:" + carol.bare] * 2
    time.sleep(0.3)
    ok(ua.register(60))
    ua.no_request(1.0)


def test_xmpp_receipt_only_after_sip_200(server, login, uas):
    """XEP-0184: the XMPP sender's <received/> comes from user@domain after the UA's 200,
    not when the MESSAGE is sent."""
    bob_jid, bob_pw = server.add_user()
    ua = uas(bob_jid, bob_pw)
    ua.answer = None
    ok(ua.register(60))
    alice = login(presence=True)
    alice.drain(0.2)
    mid = alice.message(bob_jid, "receipt please", extra="<request xmlns='%s'/>" % NS_RECEIPTS)
    m = ua.expect_request("MESSAGE", timeout=5)
    assert m.text() == "receipt please"
    alice.no_stanza("message", pred=lambda e: receipt_id(e) is not None, timeout=1.0)
    ua.respond(m, 200)
    r = alice.expect("message", pred=lambda e: receipt_id(e) is not None, timeout=5,
                     what="XEP-0184 receipt after the SIP 200")
    assert receipt_id(r) == mid, "the receipt names the message: %s (sent id %s)" % (tostr(r),
                                                                                     mid)
    assert bare(r.get("from")) == bob_jid, "the receipt comes from the recipient: %s" % tostr(r)
    alice.no_stanza("message", pred=lambda e: receipt_id(e) is not None, timeout=0.5)


# ---------------------------------------------------------------------------------------------
# SIP -> XMPP


def test_sip_store_fwd_to_online_xmpp(server, login, uas):
    """R26: store&fwd to an account whose XMPP client is available: 200 (a device took it),
    not 202; the client gets the chat from sender@domain; it is not delivered again."""
    bob_jid, bob_pw = server.add_user()
    c = login(bob_jid, bob_pw, presence=True)
    alice = uas()
    text = "store&fwd to your laptop"
    ok(alice.message("sip:" + bob_jid, text, disposition="store&fwd"), 200,
       what="R26: store&fwd to an available XMPP client")
    m = c.expect_message(body=text, timeout=5)
    assert m.get("from") == alice.jid and m.get("type") == "chat", tostr(m)
    c.close()
    marker_first_xmpp(login, login(), bob_jid, bob_pw, text,
                      "a store&fwd MESSAGE an XMPP client took")


def test_sip_store_fwd_to_offline_xmpp(server, login, uas):
    """R5, R8: store&fwd to an account with no device: 202; the XMPP login gets it with
    <delay/>."""
    bob_jid, bob_pw = server.add_user()
    alice = uas()
    text = "store&fwd, waiting for your login"
    t0 = time.monotonic()
    ok(alice.message("sip:" + bob_jid, text, disposition="store&fwd"), 202,
       what="store&fwd to an offline account")
    assert time.monotonic() - t0 < 1.0, "R5: 202 within 1 s"
    c = login(bob_jid, bob_pw, presence=True)
    m = c.expect_message(body=text, timeout=2)
    assert m.get("from") == alice.jid, tostr(m)
    assert m.find(q(NS_DELAY, "delay")) is not None, "R8: XEP-0203 <delay/>: %s" % tostr(m)


def test_sip_instant_to_online_xmpp_not_stored(server, login, uas):
    """An instant MESSAGE to an account with only an XMPP client online: 200 and delivered;
    never stored (R3): a later XMPP login gets only a later marker."""
    bob_jid, bob_pw = server.add_user()
    c = login(bob_jid, bob_pw, presence=True)
    alice = uas()
    text = "instant to your laptop"
    ok(alice.message("sip:" + bob_jid, text, disposition="instant"), 200,
       what="instant to an available XMPP client")
    m = c.expect_message(body=text, timeout=5)
    assert m.get("from") == alice.jid, tostr(m)
    c.close()
    marker_first_xmpp(login, login(), bob_jid, bob_pw, text, "an instant MESSAGE")


# ---------------------------------------------------------------------------------------------
# presence


def test_sip_device_presence(server, login, uas):
    """While registered, the account shows resource sip (status SIP) to its own XMPP client
    and to a contact with a mutual subscription; unavailable on Expires: 0 and on expiry."""
    bob_jid, bob_pw = server.add_user()
    bob = login(bob_jid, bob_pw, presence=True, roster=True)
    carol = login(presence=True, roster=True)
    subscribe(bob, carol)
    subscribe(carol, bob)
    bob.drain(0.3)
    carol.drain(0.3)
    ua = uas(bob_jid, bob_pw)
    ok(ua.register(60))
    expect_sip_presence(bob, bob_jid, True)
    expect_sip_presence(carol, bob_jid, True)
    ok(ua.unregister())
    expect_sip_presence(bob, bob_jid, False)
    expect_sip_presence(carol, bob_jid, False)
    ok(ua.register(2))
    t0 = time.monotonic()
    expect_sip_presence(bob, bob_jid, True)
    expect_sip_presence(carol, bob_jid, True)
    expect_sip_presence(bob, bob_jid, False, timeout=6)
    elapsed = time.monotonic() - t0
    expect_sip_presence(carol, bob_jid, False, timeout=2)
    assert 1.5 <= elapsed <= 5.0, "the registration of 2 s expired after %.1fs" % elapsed


def test_sip_device_presence_seen_at_login(server, login, uas):
    """Clients that come online while the UA is registered learn of resource sip too: the
    account's own new resource (RFC 6121 4.2.3, the user's other available resources) and a
    contact whose initial presence probes the account (4.3)."""
    bob_jid, bob_pw = server.add_user()
    carol_jid, carol_pw = server.add_user()
    bob = login(bob_jid, bob_pw, presence=True, roster=True)
    carol = login(carol_jid, carol_pw, presence=True, roster=True)
    subscribe(bob, carol)
    subscribe(carol, bob)
    carol.close()
    bob.close()
    ua = uas(bob_jid, bob_pw)
    ok(ua.register(60))
    time.sleep(0.3)
    bob2 = login(bob_jid, bob_pw, presence=True, roster=True)
    expect_sip_presence(bob2, bob_jid, True)
    carol2 = login(carol_jid, carol_pw, presence=True, roster=True)
    expect_sip_presence(carol2, bob_jid, True)
    ok(ua.unregister())
    expect_sip_presence(bob2, bob_jid, False)
    expect_sip_presence(carol2, bob_jid, False)


# ---------------------------------------------------------------------------------------------
# IMDN (RFC 5438)


def check_report(report, msgid, status, frm):
    imdn = report.imdn()
    assert report.content_type() == "message/cpim", \
        "RFC 5438 7.2: a report is message/cpim: %s" % report.headers.get("Content-Type")
    assert imdn is not None, "no message/imdn+xml in the report: %r" % report.body
    assert report.disposition() == "notification", report.headers.get("Content-Disposition")
    assert imdn.message_id == msgid and imdn.status == status, \
        "expected %s for %s, got %s for %s\n%r" % (status, msgid, imdn.status, imdn.message_id,
                                                   report.body)
    assert report.nameaddr("From").uri == frm, report.headers.get("From")


def is_report(req):
    return req.imdn() is not None


def test_imdn_delivered_to_sip(uas):
    """R11, R12: stored (202, no report), delivered at bob's REGISTER as plain text, then
    alice gets 'delivered' for her message id."""
    alice, bob = uas(), uas()
    ok(alice.register(60))
    text = "report when bob has it"
    r = ok(alice.message(bob.aor, text, disposition="store&fwd", imdn=True), 202)
    alice.no_request(1.0)
    ok(bob.register(60))
    m = bob.expect_request("MESSAGE", timeout=3)
    assert m.text() == text
    assert m.content_type() == "text/plain", \
        "the recipient gets plain text, not CPIM: %s" % m.headers.get("Content-Type")
    assert m.body.decode("utf-8") == text, m.body
    report = alice.expect_request("MESSAGE", pred=is_report, timeout=3)
    check_report(report, r.imdn_id, "delivered", bob.aor)
    alice.no_request(0.5, pred=is_report)


def test_imdn_report_stored_for_unregistered_sender(uas):
    """The report waits for the sender like any message: alice is not registered when bob
    takes her message; her next REGISTER brings the 'delivered' report, once."""
    alice, bob = uas(), uas()
    ok(bob.register(60))
    r = ok(alice.message(bob.aor, "report later", disposition="store&fwd", imdn=True), 200)
    assert bob.expect_request("MESSAGE", timeout=3).text() == "report later"
    time.sleep(0.3)
    ok(alice.register(60))
    report = alice.expect_request("MESSAGE", pred=is_report, timeout=3)
    check_report(report, r.imdn_id, "delivered", bob.aor)
    time.sleep(0.3)
    ok(alice.register(60))
    alice.no_request(1.0)


@pytest.mark.parametrize("when", ["online", "offline"])
def test_imdn_delivered_from_xmpp_receipt(server, login, uas, when):
    """R23: to an XMPP client (online: 200; offline: 202, then its login), the message carries
    <request/> with the IMDN Message-ID as its id; the client's <received/> becomes
    'delivered' for the SIP sender."""
    bob_jid, bob_pw = server.add_user()
    if when == "online":
        c = login(bob_jid, bob_pw, presence=True)
    alice = uas()
    ok(alice.register(60))
    text = "report when your laptop has it"
    r = ok(alice.message("sip:" + bob_jid, text, disposition="store&fwd", imdn=True),
           200 if when == "online" else 202)
    if when == "offline":
        alice.no_request(0.5, pred=is_report)
        c = login(bob_jid, bob_pw, presence=True)
    m = c.expect_message(body=text, timeout=5)
    assert m.get("id") == r.imdn_id, "the XMPP id is the IMDN Message-ID: %s vs %s" % (
        tostr(m), r.imdn_id)
    assert m.find(q(NS_RECEIPTS, "request")) is not None, tostr(m)
    alice.no_request(0.7, pred=is_report)
    c.message(m.get("from"), None, type_=None,
              extra="<received xmlns='%s' id='%s'/>" % (NS_RECEIPTS, m.get("id")))
    report = alice.expect_request("MESSAGE", pred=is_report, timeout=3)
    check_report(report, r.imdn_id, "delivered", "sip:" + bob_jid)
    alice.no_request(0.5, pred=is_report)


def test_no_report_without_request(server, login, uas):
    """R12: without an IMDN request, no report, to a SIP or an XMPP recipient."""
    alice, bob = uas(), uas()
    ok(alice.register(60))
    ok(alice.message(bob.aor, "no report wanted", disposition="store&fwd"), 202)
    ok(bob.register(60))
    assert bob.expect_request("MESSAGE", timeout=3).text() == "no report wanted"
    carol_jid, carol_pw = server.add_user()
    c = login(carol_jid, carol_pw, presence=True)
    ok(alice.message("sip:" + carol_jid, "no report wanted either"), 200)
    m = c.expect_message(body="no report wanted either", timeout=5)
    assert m.find(q(NS_RECEIPTS, "request")) is None, \
        "no receipt request without an IMDN request: %s" % tostr(m)
    alice.no_request(1.5)


def test_imdn_failed_on_expiry(udp_uas):
    """R13: Expires: 1 to an unregistered bob: after the expiry sweep alice gets 'failed'; bob's
    later REGISTER brings nothing."""
    alice, bob = udp_uas(), udp_uas()
    ok(alice.register(60))
    text = "you will never see this"
    r = ok(alice.message(bob.aor, text, disposition="store&fwd", imdn=True,
                         headers={"Expires": "1"}), 202)
    t0 = time.monotonic()
    alice.no_request(0.5, pred=is_report)
    report = alice.expect_request("MESSAGE", pred=is_report, timeout=3 * OFFLINE_EXPIRY)
    check_report(report, r.imdn_id, "failed", bob.aor)
    assert time.monotonic() - t0 >= 0.8, "failed before the message's Expires: 1"
    marker_first_sip(alice, bob, "an expired MESSAGE")
    bob.no_request(0.5)
    alice.no_request(0.5, pred=is_report)
