"""XEP-0198 stream management against a real batond: the <sm/> feature, enabling (only after
bind, only once), counting and acks both ways, resumption after a broken connection (with
everything unacknowledged re-sent in order, the same full JID and no unavailable presence),
the end of a session that is not resumed (its unacknowledged messages go to another resource
or to offline storage, never lost), acknowledged offline messages and the sm.queue limit.

Invariant: SMClient counts every stanza it receives after <enabled/> (or <resumed/>) as the
XEP-0198 'h' it would report, in arrival order, independently of which stanzas a test has
taken from the backlog; every wait is bounded.
"""

import time
from xml.sax.saxutils import quoteattr

import pytest

from conftest import start_server
from helpers import NS_CLIENT, q, stop_and_check, tostr
from smclient import NS_SM, connect, failed_condition

DOMAIN = "localhost"
SERVER_OPTS = {"domain": DOMAIN}  # thin.hold 10m, sm.queue 10000 (the defaults)
DEFAULT_HOLD = 600  # seconds, the default thin.hold

SHORT_HOLD = 2  # thin.hold of the "short" server, seconds
SHORT_QUEUE = 20  # sm.queue of the "short" server

NS_DELAY = "urn:xmpp:delay"


def plain(srv, clients, jid=None, pw=None, presence=True, **kw):
    """An ordinary client (no stream management), optionally of a new user."""
    if jid is None:
        jid, pw = srv.add_user()
    c = srv.login(jid, pw, presence=presence, **kw)
    clients.append(c)
    return c


def subscribe(watcher, contact):
    """watcher gets contact's presence (RFC 6121 3.1); both must be available."""
    watcher.send_presence(to=contact.bare, type_="subscribe")
    contact.expect("presence", type="subscribe", frm=watcher.bare)
    contact.send_presence(to=watcher.bare, type_="subscribed")
    watcher.expect_presence(frm=contact.jid)


def body_of(m):
    return m.findtext(q(NS_CLIENT, "body"))


def bodies(stanzas):
    return [body_of(m) for m in stanzas if m.tag == q(NS_CLIENT, "message") and body_of(m)]


def messages(c, n, timeout=5):
    return [c.expect("message", timeout=timeout, what="message %d of %d" % (i + 1, n))
            for i in range(n)]


def same_stanza(a, b):
    return (a.tag, dict(a.attrib), tostr(a)) == (b.tag, dict(b.attrib), tostr(b))


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """A second batond with a short resumption window and a small unacknowledged queue."""
    srv = start_server(tmp_path_factory, "smshort", domain=DOMAIN,
                       sets=["thin.hold=%ds" % SHORT_HOLD, "sm.queue=%d" % SHORT_QUEUE])
    yield srv
    stop_and_check(srv)


def resumable(srv, clients, resource="dev"):
    """(a, b): b (resource 'dev') available with resumable SM, a available and subscribed to
    b's presence."""
    a = plain(srv, clients)
    jid, pw = srv.add_user()
    b = connect(srv, clients, jid, pw, resource=resource, presence=True)
    subscribe(a, b)
    el = b.enable(resume=True)
    assert el.tag == q(NS_SM, "enabled"), tostr(el)
    b.password = pw
    return a, b, el.get("id")


# ---------------------------------------------------------------------------------------------
# Feature and enabling (XEP-0198 sections 2 and 3)


def test_feature_after_auth(server, clients):
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw, bind=False)
    assert c.features.find(q(NS_SM, "sm")) is not None, \
        "no <sm xmlns='%s'/> after SASL (XEP-0198 2): %s" % (NS_SM, tostr(c.features))


def test_enable_before_bind_fails_then_bind_works(server, clients):
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw, bind=False)
    # XEP-0198 3: a client MUST NOT enable before binding; the server answers <failed/>
    assert failed_condition(c.enable()) == "unexpected-request"
    c.bind()
    el = c.enable()
    assert el.tag == q(NS_SM, "enabled"), tostr(el)
    assert c.request_ack() == 0


def test_enable_plain_and_twice(server, clients):
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw)
    el = c.enable()
    assert el.tag == q(NS_SM, "enabled"), tostr(el)
    assert el.get("id") is None and el.get("resume") not in ("true", "1"), \
        "<enabled/> without resume should carry no id: %s" % tostr(el)
    assert failed_condition(c.enable()) == "unexpected-request"
    assert failed_condition(c.enable(resume=True)) == "unexpected-request"
    c.sync()  # the stream still works
    assert c.stream_error is None and not c.closed


def test_enable_resume(server, clients):
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw)
    el = c.enable(resume=True)
    assert el.tag == q(NS_SM, "enabled"), tostr(el)
    assert el.get("resume") in ("true", "1"), tostr(el)
    assert el.get("id"), "resumable <enabled/> without id: %s" % tostr(el)
    assert el.get("max") == str(DEFAULT_HOLD), "max is not thin.hold in seconds: %s" % tostr(el)


def test_enable_resume_max_is_hold(short, clients):
    jid, pw = short.add_user()
    c = connect(short, clients, jid, pw)
    el = c.enable(resume=True)
    assert el.get("max") == str(SHORT_HOLD), tostr(el)
    c.close()


def test_ids_differ(server, clients):
    ids = set()
    for _ in range(3):
        jid, pw = server.add_user()
        c = connect(server, clients, jid, pw)
        ids.add(c.enable(resume=True).get("id"))
    assert len(ids) == 3, ids


# ---------------------------------------------------------------------------------------------
# Counting and acks (XEP-0198 section 4)


def test_server_counts_handled_stanzas(server, clients):
    friend = plain(server, clients)
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw, enable="plain")
    assert c.request_ack() == 0
    c.message(friend.jid, "hello")  # 1: delivered
    c.message("nobody-%s@%s" % (jid.split("@")[0], DOMAIN), "anyone?")  # 2: bounced
    c.expect("message", type="error")
    c.sync()  # 3: an iq with a result
    c.iq("get", "<query xmlns='urn:example:unknown'/>", to=DOMAIN)  # 4: an iq with an error
    c.send_presence()  # 5
    c.expect_presence(frm=c.jid)
    assert c.request_ack() == 5, "h must count every stanza handled, errors included"
    friend.expect_message(frm=c.jid, body="hello")
    for i in range(7):
        c.message(friend.jid, "m%d" % i)
    assert c.request_ack() == 12
    assert c.request_ack() == 12  # <r/> itself is not a stanza


def test_server_requests_ack_once_per_burst(server, clients):
    friend = plain(server, clients)
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw, resource="r", enable="plain")
    for i in range(3):
        friend.message(c.jid, "burst %d" % i)
    assert bodies(messages(c, 3)) == ["burst 0", "burst 1", "burst 2"]
    c.drain(0.5)
    assert c.r_seen == 1, "expected one <r/> for a burst of 3 unacknowledged, got %d" % c.r_seen
    assert c.h == 3
    c.ack()
    c.sync()  # the iq result is one more stanza, so another <r/> may follow
    assert c.stream_error is None
    c.ack()
    c.drain(0.3)
    c.ack()
    seen = c.r_seen
    friend.message(c.jid, "after the ack")
    c.expect_message(body="after the ack")
    c.expect(pred=lambda e: e.tag == q(NS_SM, "r"), what="<r/> for a new unacknowledged stanza")
    assert c.r_seen == seen + 1
    c.ack()
    c.sync()
    assert c.stream_error is None


def test_auto_acking_client_keeps_working(server, clients):
    friend = plain(server, clients)
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw, resource="r", enable="plain", auto_r=True)
    for i in range(30):
        friend.message(c.jid, "n%d" % i)
        if i % 7 == 0:
            friend.sync()
    assert bodies(messages(c, 30)) == ["n%d" % i for i in range(30)]
    c.sync()
    assert c.stream_error is None and not c.closed
    assert c.r_seen >= 1


def test_ack_beyond_sent_is_stream_error(server, clients):
    friend = plain(server, clients)
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw, resource="r", enable="plain")
    friend.message(c.jid, "one")
    c.expect_message(body="one")
    c.ack(c.h + 1)  # XEP-0198 4: acknowledging unsent stanzas is an error
    assert c.wait_closed() == "undefined-condition"


def test_ack_beyond_sent_nothing_sent(server, clients):
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw, enable="plain")
    c.ack(2 ** 32 - 1)  # "-1" mod 2^32 is not a small negative, it is far ahead
    assert c.wait_closed() == "undefined-condition"


# ---------------------------------------------------------------------------------------------
# Resumption (XEP-0198 section 5)


def test_resume_resends_unacked_in_order(server, clients):
    a, b, previd = resumable(server, clients)
    full = b.jid
    b.message(a.jid, "b before")  # handled by the server: counted in <resumed h/>
    a.expect_message(frm=full, body="b before")
    for body in ("m1", "m2", "m3"):
        a.message(full, body)
    got = messages(b, 3)
    assert bodies(got) == ["m1", "m2", "m3"]
    b.ack()  # everything so far is acknowledged ...
    a.message(full, "m4")  # ... but m4 and m5 are not
    a.message(full, "m5")
    assert bodies(messages(b, 2)) == ["m4", "m5"]
    i4 = next(i for i, e in enumerate(b.sm_log) if body_of(e) == "m4")
    h = b.h_base + i4  # as if the client had handled everything before m4 only
    unacked_seen = b.sm_log[i4:]
    sent_before = b.sm_sent
    b.abort()
    time.sleep(0.3)
    a.message(full, "m6 while away")
    a.message(full, "m7 while away")
    a.sync()
    assert a.wait_for("message", type="error", timeout=0.3) is None, "bounced while resumable"
    b2 = connect(server, clients, b.bare, b.password, bind=False)
    el = b2.resume(previd, h)
    assert el.tag == q(NS_SM, "resumed"), "resume failed: %s" % tostr(el)
    assert el.get("previd") == previd, tostr(el)
    assert el.get("h") == str(sent_before), \
        "<resumed h/> should count the %d stanzas the server handled: %s" % (sent_before,
                                                                            tostr(el))
    got = messages(b2, 4)
    assert bodies(got) == ["m4", "m5", "m6 while away", "m7 while away"], \
        [tostr(m) for m in got]
    # the first re-sent stanzas are exactly the ones seen but not acknowledged
    resent = b2.sm_log[:len(unacked_seen)]
    assert all(same_stanza(x, y) for x, y in zip(resent, unacked_seen)), \
        "re-sent %s, expected %s" % ([tostr(e) for e in resent], [tostr(e) for e in unacked_seen])
    for m in got:
        assert m.get("to") == full and m.get("from") == a.jid, tostr(m)
    # the same session: same full JID, still available, working both ways
    b2.jid = full
    a.no_stanza("presence", frm=full, timeout=0.3)
    a.message(full, "after resume")
    b2.expect_message(frm=a.jid, body="after resume")
    b2.message(a.jid, "b after resume")
    a.expect_message(frm=full, body="b after resume")
    assert b2.request_ack() == sent_before + 1
    b2.ack()
    b2.sync()
    # the contact never saw it go away, and it answers presence as before
    assert not [p for p in a.backlog if p.get("from") == full and p.get("type") == "unavailable"]
    b2.close()
    a.expect_presence(frm=full, type_="unavailable")


def test_resume_with_all_acked_resends_nothing(server, clients):
    a, b, previd = resumable(server, clients)
    full = b.jid
    a.message(full, "x")
    b.expect_message(body="x")
    h = b.h
    b.abort()
    time.sleep(0.2)
    b2 = connect(server, clients, b.bare, b.password, bind=False)
    el = b2.resume(previd, h)
    assert el.tag == q(NS_SM, "resumed"), tostr(el)
    b2.no_stanza("message", timeout=0.5)
    b2.jid = full
    a.message(full, "y")
    b2.expect_message(body="y")


def test_resume_unknown_previd_then_bind(server, clients):
    jid, pw = server.add_user()
    c = connect(server, clients, jid, pw, bind=False)
    assert failed_condition(c.resume("no-such-session", 0)) == "item-not-found"
    c.bind()  # XEP-0198 5: the client may bind a new session instead
    assert c.enable().tag == q(NS_SM, "enabled")
    c.sync()


def test_resume_other_users_id_fails(server, clients):
    a, b, previd = resumable(server, clients)
    b.abort()
    time.sleep(0.2)
    # the same previd from another account is unknown there
    c = connect(server, clients, a.bare, a.password, bind=False)
    assert failed_condition(c.resume(previd, 0)) == "item-not-found"


def test_resume_while_old_connection_open(server, clients):
    a, b, previd = resumable(server, clients)
    full = b.jid
    a.message(full, "to the old one")
    b.expect_message(body="to the old one")
    b2 = connect(server, clients, b.bare, b.password, bind=False)
    el = b2.resume(previd, b.h)
    assert el.tag == q(NS_SM, "resumed"), tostr(el)
    assert b.wait_closed() == "conflict", "the old connection must get <conflict/>"
    b2.jid = full
    a.message(full, "to the new one")
    b2.expect_message(frm=a.jid, body="to the new one")
    b2.message(a.jid, "from the new one")
    a.expect_message(frm=full, body="from the new one")
    a.no_stanza("presence", frm=full, type="unavailable", timeout=0.3)


def test_graceful_close_is_not_resumable(server, clients):
    a, b, previd = resumable(server, clients)
    full = b.jid
    h = b.h
    b.close()
    a.expect_presence(frm=full, type_="unavailable")
    c = connect(server, clients, b.bare, b.password, bind=False)
    assert failed_condition(c.resume(previd, h)) == "item-not-found"
    c.bind()


def test_resume_twice_fails_second_time(server, clients):
    a, b, previd = resumable(server, clients)
    h = b.h
    b.abort()
    time.sleep(0.2)
    b2 = connect(server, clients, b.bare, b.password, bind=False)
    assert b2.resume(previd, h).tag == q(NS_SM, "resumed")
    # once resumed, the id names the new stream, which is open: a second resume takes over
    # again (conflict for b2) or is refused; either way it must not duplicate the session
    b3 = connect(server, clients, b.bare, b.password, bind=False)
    el = b3.resume(previd, h)
    if el.tag == q(NS_SM, "resumed"):
        assert b2.wait_closed() == "conflict"
    else:
        assert failed_condition(el) == "item-not-found"


def test_resume_after_bind_fails(server, clients):
    a, b, previd = resumable(server, clients)
    jid, pw = b.bare, b.password
    c = connect(server, clients, jid, pw, resource="other")
    assert failed_condition(c.resume(previd, 0)) == "unexpected-request"
    # b's session is untouched
    a.message(b.jid, "still here")
    b.expect_message(body="still here")


def test_resume_with_h_beyond_sent(server, clients):
    a, b, previd = resumable(server, clients)
    full = b.jid
    a.message(full, "unacked")
    b.expect_message(body="unacked")
    bad = b.h + 5
    b.abort()
    time.sleep(0.2)
    b2 = connect(server, clients, b.bare, b.password, bind=False)
    b2.send("<resume xmlns='%s' previd=%s h='%d'/>" % (NS_SM, quoteattr(previd), bad))
    # XEP-0198 4: an h acknowledging unsent stanzas is an <undefined-condition/> stream error
    assert b2.wait_closed() == "undefined-condition"
    # the session is over (contacts see it go) and its unacknowledged message is not lost
    a.expect_presence(frm=full, type_="unavailable")
    c = connect(server, clients, b.bare, b.password, presence=True)
    assert bodies(messages(c, 1)) == ["unacked"]


def test_bind_same_resource_while_resumable(server, clients):
    a, b, previd = resumable(server, clients, resource="same")
    full = b.jid
    a.message(full, "before the new bind")
    b.expect_message(body="before the new bind")
    b.abort()
    time.sleep(0.2)
    # a fresh session asking for the same resource (RFC 6120 7.7.2.2: the server may
    # terminate the old session or give the new one another resource)
    c = connect(server, clients, b.bare, b.password, resource="same", presence=True)
    got = bodies(messages(c, 1))
    assert got == ["before the new bind"], got
    c.no_stanza("message", timeout=0.5)
    if c.jid == full:  # the old session was replaced: it cannot be resumed any more
        d = connect(server, clients, b.bare, b.password, bind=False)
        assert failed_condition(d.resume(previd, 0)) == "item-not-found"


def test_restart_keeps_unacked_of_resumable_session(tmp_path_factory, clients):
    srv = start_server(tmp_path_factory, "smrestart", domain=DOMAIN)
    try:
        a, b, previd = resumable(srv, clients)
        full = b.jid
        a.message(full, "survive 1")
        b.expect_message(body="survive 1")
        b.abort()
        time.sleep(0.2)
        a.message(full, "survive 2")
        a.sync()
        a.close()
        srv.restart()
        c = connect(srv, clients, b.bare, b.password, presence=True)
        got = messages(c, 2, timeout=10)
        assert bodies(got) == ["survive 1", "survive 2"], [tostr(m) for m in got]
        for m in got:
            assert m.find(q(NS_DELAY, "delay")) is not None, tostr(m)
        c.close()
    finally:
        stop_and_check(srv)


# ---------------------------------------------------------------------------------------------
# Sessions that end with unacknowledged messages


def test_not_resumed_in_time_goes_offline(short, clients):
    a, b, previd = resumable(short, clients)
    full = b.jid
    a.message(full, "seen, not acked")
    b.expect_message(body="seen, not acked")
    b.abort()
    time.sleep(0.3)
    a.message(full, "while away")
    a.sync()
    # a contact sees nothing while it is resumable, then unavailable when the window ends
    a.no_stanza("presence", frm=full, timeout=SHORT_HOLD - 1.0)
    a.expect_presence(frm=full, type_="unavailable", timeout=SHORT_HOLD + 3)
    assert a.wait_for("message", type="error", timeout=0.2) is None
    # too late to resume
    c = connect(short, clients, b.bare, b.password, bind=False)
    assert failed_condition(c.resume(previd, b.h)) == "item-not-found"
    c.bind()
    c.send_presence()
    got = messages(c, 2)
    assert bodies(got) == ["seen, not acked", "while away"], [tostr(m) for m in got]
    for m in got:
        assert m.find(q(NS_DELAY, "delay")) is not None, "no delay stamp: %s" % tostr(m)
    c.no_stanza("message", timeout=0.5)


def test_not_resumed_in_time_goes_to_other_resource(short, clients):
    a, b, previd = resumable(short, clients)
    full = b.jid
    other = plain(short, clients, b.bare, b.password, resource="other")
    a.message(full, "q1")
    b.expect_message(body="q1")
    b.abort()
    time.sleep(0.3)
    a.message(full, "q2")
    a.sync()
    a.expect_presence(frm=full, type_="unavailable", timeout=SHORT_HOLD + 3)
    got = messages(other, 2)
    assert bodies(got) == ["q1", "q2"], [tostr(m) for m in got]
    other.no_stanza("message", timeout=0.5)
    # and nothing was stored as well
    other.close()
    c = plain(short, clients, b.bare, b.password, resource="later")
    c.no_stanza("message", timeout=0.7)


def test_abort_without_resume_goes_offline(server, clients):
    a = plain(server, clients)
    jid, pw = server.add_user()
    b = connect(server, clients, jid, pw, resource="nr", presence=True)
    subscribe(a, b)
    assert b.enable().tag == q(NS_SM, "enabled")
    full = b.jid
    for body in ("lost1", "lost2"):
        a.message(full, body)
    assert bodies(messages(b, 2)) == ["lost1", "lost2"]
    b.abort()
    a.expect_presence(frm=full, type_="unavailable")
    c = plain(server, clients, jid, pw)
    got = messages(c, 2)
    assert bodies(got) == ["lost1", "lost2"], [tostr(m) for m in got]
    for m in got:
        assert m.find(q(NS_DELAY, "delay")) is not None, tostr(m)
    c.no_stanza("message", timeout=0.5)


def test_abort_without_resume_acked_are_not_redelivered(server, clients):
    a = plain(server, clients)
    jid, pw = server.add_user()
    b = connect(server, clients, jid, pw, resource="nr", enable="plain", presence=True)
    full = b.jid
    a.message(full, "acked")
    b.expect_message(body="acked")
    b.ack()
    a.message(full, "not acked")
    b.expect_message(body="not acked")
    b.sync()  # the ack has been processed
    b.abort()
    time.sleep(0.3)
    c = plain(server, clients, jid, pw)
    assert bodies(messages(c, 1)) == ["not acked"]
    c.no_stanza("message", timeout=0.5)


def test_abort_without_resume_goes_to_other_resource(server, clients):
    a = plain(server, clients)
    jid, pw = server.add_user()
    other = plain(server, clients, jid, pw, resource="other")
    b = connect(server, clients, jid, pw, resource="nr", enable="plain", presence=True)
    a.message(b.jid, "reroute me")
    b.expect_message(body="reroute me")
    b.abort()
    m = other.expect_message(frm=a.jid, body="reroute me")
    assert m.find(q(NS_DELAY, "delay")) is not None, tostr(m)
    other.no_stanza("message", timeout=0.5)


# ---------------------------------------------------------------------------------------------
# Offline messages and acks


def store(a, to, items):
    ids = [a.message(to, body) for body in items]
    a.sync()
    assert a.wait_for("message", type="error", timeout=0.3) is None
    return ids


def test_offline_deleted_when_acked(server, clients):
    a = plain(server, clients)
    jid, pw = server.add_user()
    store(a, jid, ["off1", "off2", "off3"])
    b = connect(server, clients, jid, pw, enable="plain")
    b.send_presence()
    got = messages(b, 3)
    assert bodies(got) == ["off1", "off2", "off3"]
    b.ack()  # well within offline.grace (10 s): only the ack can have deleted them
    b.sync()
    b.close()
    c = connect(server, clients, jid, pw, presence=True)
    c.no_stanza("message", timeout=1.0)


def test_offline_partly_acked(server, clients):
    a = plain(server, clients)
    jid, pw = server.add_user()
    store(a, jid, ["p1", "p2", "p3"])
    b = connect(server, clients, jid, pw, enable="plain")
    b.send_presence()
    got = messages(b, 3)
    assert bodies(got) == ["p1", "p2", "p3"]
    i2 = next(i for i, e in enumerate(b.sm_log) if body_of(e) == "p2")
    b.ack(b.h_base + i2)  # handled up to p1 only
    b.sync()
    b.close()
    c = connect(server, clients, jid, pw, presence=True)
    # what was acknowledged is gone, the rest comes again
    got = bodies(messages(c, 2))
    assert got == ["p2", "p3"], got
    c.no_stanza("message", timeout=0.5)


def test_offline_not_acked_and_not_resumed_come_again(short, clients):
    a = plain(short, clients)
    jid, pw = short.add_user()
    store(a, jid, ["keep1", "keep2"])
    b = connect(short, clients, jid, pw, enable="resume")
    b.send_presence()
    assert bodies(messages(b, 2)) == ["keep1", "keep2"]
    b.abort()
    time.sleep(SHORT_HOLD + 1.0)
    c = connect(short, clients, jid, pw, presence=True)
    got = messages(c, 2)
    assert bodies(got) == ["keep1", "keep2"], [tostr(m) for m in got]
    c.no_stanza("message", timeout=0.5)  # exactly once more, not twice


def test_offline_resumed_then_acked(server, clients):
    a = plain(server, clients)
    jid, pw = server.add_user()
    store(a, jid, ["r1", "r2"])
    b = connect(server, clients, jid, pw, resource="res", enable="resume")
    b.send_presence()
    assert bodies(messages(b, 2)) == ["r1", "r2"]
    h0 = b.h_base + next(i for i, e in enumerate(b.sm_log) if body_of(e) == "r1")
    b.abort()
    time.sleep(0.2)
    b2 = connect(server, clients, jid, pw, bind=False)
    assert b2.resume(b.previd, h0).tag == q(NS_SM, "resumed")
    b2.jid = b.jid
    assert bodies(messages(b2, 2)) == ["r1", "r2"], "stored messages not re-sent on resume"
    b2.ack()
    b2.sync()
    b2.close()
    c = connect(server, clients, jid, pw, presence=True)
    c.no_stanza("message", timeout=1.0)


# ---------------------------------------------------------------------------------------------
# sm.queue


def test_queue_limit_policy_violation(short, clients):
    a = plain(short, clients)
    jid, pw = short.add_user()
    b = connect(short, clients, jid, pw, resource="slow", enable="plain", presence=True)
    n = SHORT_QUEUE + 5
    want = ["q%02d" % i for i in range(n)]
    for body in want:
        a.message(b.jid, body)
    a.sync()
    assert b.wait_closed(timeout=5) == "policy-violation"
    got_live = bodies(b.sm_log)
    assert len(got_live) <= n
    time.sleep(0.3)
    c = connect(short, clients, jid, pw, presence=True)
    got = bodies(messages(c, n))
    assert got == want, "messages lost or reordered after policy-violation: %s" % got
    c.no_stanza("message", timeout=0.5)


def test_queue_limit_ends_resumable_session(short, clients):
    a, b, previd = resumable(short, clients)
    full = b.jid
    n = SHORT_QUEUE + 3
    want = ["v%02d" % i for i in range(n)]
    for body in want:
        a.message(full, body)
    assert b.wait_closed(timeout=5) == "policy-violation"
    # not kept for resumption: the session ends and everything goes to offline storage
    a.expect_presence(frm=full, type_="unavailable")
    c = connect(short, clients, b.bare, b.password, bind=False)
    assert failed_condition(c.resume(previd, b.h)) == "item-not-found"
    c.bind()
    c.send_presence()
    got = bodies(messages(c, n))
    assert got == want, got
    c.no_stanza("message", timeout=0.5)


def test_queue_limit_while_hibernating(short, clients):
    a, b, previd = resumable(short, clients)
    full = b.jid
    b.abort()
    time.sleep(0.2)
    n = SHORT_QUEUE + 3
    want = ["w%02d" % i for i in range(n)]
    for body in want:
        a.message(full, body)
    a.sync()
    a.expect_presence(frm=full, type_="unavailable", timeout=SHORT_HOLD + 3)
    c = connect(short, clients, b.bare, b.password, presence=True)
    got = bodies(messages(c, n))
    assert got == want, got
    c.no_stanza("message", timeout=0.5)
