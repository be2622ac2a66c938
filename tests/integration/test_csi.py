"""XEP-0352 client state indication: while a client says it is inactive, presence
updates wait (the latest per contact) and come when it is active again or just before
the next message, so nothing is lost and order with messages is kept."""

from helpers import NS_CLIENT, q

NS_CSI = "urn:xmpp:csi:0"


def statuses(c, timeout=0.5):
    out = []
    while True:
        p = c.wait_for("presence", timeout=timeout)
        if p is None:
            return out
        out.append((p.get("from"), p.findtext(q(NS_CLIENT, "status"))))


def test_feature(login):
    c = login()
    assert c.features.find(q(NS_CSI, "csi")) is not None


def test_presence_held_while_inactive(login):
    a = login(presence=True)
    b = login(presence=True)
    b.drain()
    b.send("<inactive xmlns='%s'/>" % NS_CSI)
    b.sync()
    for s in ("s1", "s2", "s3"):
        a.send_presence(to=b.jid, status=s)
    a.sync()
    assert statuses(b) == [], "presence was not held"
    b.send("<active xmlns='%s'/>" % NS_CSI)
    assert statuses(b) == [(a.jid, "s3")], "only the latest presence per contact comes"


def test_message_flushes_held_presence_first(login):
    a = login(presence=True)
    b = login(presence=True)
    b.drain()
    b.send("<inactive xmlns='%s'/>" % NS_CSI)
    b.sync()
    a.send_presence(to=b.jid, status="away for lunch")
    a.message(b.jid, "are you there?")
    first = b.expect(pred=lambda e: e.tag in (q(NS_CLIENT, "presence"), q(NS_CLIENT, "message")))
    assert first.tag == q(NS_CLIENT, "presence"), "held presence must precede the message"
    b.expect_message(body="are you there?")


def test_subscription_requests_are_not_held(login):
    a = login(presence=True)
    b = login(presence=True)
    b.drain()
    b.send("<inactive xmlns='%s'/>" % NS_CSI)
    b.sync()
    a.send_presence(to=b.bare, type_="subscribe")
    b.expect("presence", type="subscribe")
