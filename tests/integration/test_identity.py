"""Shared identity (seed 003, PROTOCOL.md 2, urn:baton:identity:0) against a real batond: one
active device in exclusive mode, supersession with <superseded/> and then silence, take-back,
stale generations refused, the audit trail (batonctl identity log), handover grants, the
superseded device's unacknowledged stanzas delivered once to the new one, room seats kept
without a leave, no offline presence in between, and incoming session barring.

Requirement numbers (R1..R29) are those of ../shared/digests/003-shared-identity.md.
P is the primary device, S the secondary, C another user.
"""

import base64
import time

from helpers import NS_CLIENT, Client, q, stanza_error, tostr
from test_muc import expect_groupchat, groupchat, join, new_room

NS_ID = "urn:baton:identity:0"
NS_SM = "urn:xmpp:sm:3"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"


def body(e):
    return e.findtext(q(NS_CLIENT, "body"))


def exclusive_account(server, login):
    jid, pw = server.add_user()
    p = login(jid=jid, password=pw, resource="phone", presence=True)
    p.iq("set", "<exclusive xmlns='%s' enabled='true'/>" % NS_ID, check=True)
    return jid, pw, p


def superseded_of(c):
    """Waits for c's stream to end with <conflict/>; returns the error's <superseded/>."""
    assert c.wait_closed() == "conflict", c.stream_error
    errs = [e for e in c.backlog if e.tag == "{http://etherx.jabber.org/streams}error"]
    assert errs, "no stream error element"
    sup = errs[-1].find(q(NS_ID, "superseded"))
    assert sup is not None, tostr(errs[-1])
    return sup


def test_new_device_supersedes_the_active_one(server, login):
    """R3, R4, R6: the old device gets <conflict/> with <superseded/>, then nothing."""
    jid, pw, p = exclusive_account(server, login)
    s = login(jid=jid, password=pw, resource="car", presence=True)
    sup = superseded_of(p)
    assert sup.get("by") == s.jid
    c = login(presence=True)
    c.message(jid, "who gets this")
    s.expect("message", pred=lambda e: body(e) == "who gets this")


def test_superseded_notice_names_the_new_device(server, login):
    jid, pw, p = exclusive_account(server, login)
    # Watch the raw bytes: the stream error's app-specific child (RFC 6120 4.9.4).
    s = server.client(jid, pw, resource="car").connect(bind=False)
    s.send("<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           "<resource>car</resource><handover xmlns='%s' reason='pan-enter' prev='phone' gen='7'/>"
           "</bind></iq>" % NS_ID)
    s.expect("iq", pred=lambda e: e.get("id") == "b" and e.get("type") == "result")
    sup = superseded_of(p)
    assert (sup.get("by"), sup.get("reason"), sup.get("gen")) == (jid + "/car", "pan-enter", "7")
    s.close()


def test_take_back_and_audit_trail(server, login):
    """R5, R28: alternations, one device active after each; the log records them."""
    jid, pw, p = exclusive_account(server, login)
    devices = [p]
    for i, res in enumerate(["car", "phone", "car"]):
        d = login(jid=jid, password=pw, resource=res, presence=True)
        devices[-1].wait_closed()
        devices.append(d)
    out = server.ctl("identity", "log", jid).stdout
    lines = [l for l in out.splitlines() if "->" in l]
    assert len(lines) >= 3, out
    assert "phone -> car" in lines[-3] and "car -> phone" in lines[-2] and "phone -> car" in lines[-1]
    show = server.ctl("identity", "show", jid).stdout
    assert "exclusive=on" in show


def test_stale_generation_refused(server, login):
    """R27: a handover hint with a gen below the active one's is refused at bind."""
    jid, pw, p = exclusive_account(server, login)
    s = server.client(jid, pw, resource="car").connect(bind=False)
    s.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
           "<resource>car</resource><handover xmlns='%s' reason='pan-enter' gen='5'/></bind></iq>"
           % NS_ID)
    s.expect("iq", pred=lambda e: e.get("id") == "b1" and e.get("type") == "result")
    p.wait_closed()
    late = server.client(jid, pw, resource="phone").connect(bind=False)
    late.send("<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
              "<resource>phone</resource><handover xmlns='%s' reason='pan-leave' gen='3'/>"
              "</bind></iq>" % NS_ID)
    r = late.expect("iq", pred=lambda e: e.get("id") == "b2")
    assert r.get("type") == "error" and stanza_error(r)[1] == "not-allowed", tostr(r)
    s.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=server.domain, check=True)  # still active
    late.close()
    s.close()


def test_grant_token_logs_in_once(server, login):
    """R10: a device that never saw the password logs in with a grant, once."""
    jid, pw, p = exclusive_account(server, login)
    g = p.iq("get", "<grant xmlns='%s'/>" % NS_ID, check=True).find(q(NS_ID, "grant"))
    token = g.get("token")
    assert token and g.get("expires")
    s = server.client(jid, token, resource="car", mech="PLAIN").connect()
    p.wait_closed()
    s.close()
    again = server.client(jid, token, resource="car2", mech="PLAIN")
    try:
        again.connect()
        assert False, "a grant worked twice"
    except Exception as e:
        assert "not-authorized" in str(e), e
    other = server.client(server.add_user()[0], token, mech="PLAIN")
    try:
        other.connect()
        assert False, "a grant worked for another account"
    except Exception as e:
        assert "not-authorized" in str(e)


def test_unacknowledged_stanzas_go_once_to_the_new_device(server, login):
    """R29: P withholds its acks; S gets each message exactly once, in order."""
    jid, pw, p = exclusive_account(server, login)
    p.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    p.wait_for(pred=lambda e: e.tag == q(NS_SM, "enabled"))
    c = login(presence=True)
    for i in range(4):
        c.message(jid + "/phone", "unacked%d" % i)
    p.expect("message", pred=lambda e: body(e) == "unacked3")
    s = login(jid=jid, password=pw, resource="car", presence=True)
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 4 and time.monotonic() < deadline:
        e = s.expect("message", pred=lambda e: (body(e) or "").startswith("unacked"), timeout=5)
        got.append(body(e))
    assert got == ["unacked%d" % i for i in range(4)], got
    s.no_stanza("message", pred=lambda e: (body(e) or "").startswith("unacked"), timeout=0.7)


def test_room_seat_survives_the_handover(server, login):
    """R14-R18: C never sees alice leave; the new device gets the room's traffic."""
    jid, pw, p = exclusive_account(server, login)
    c = login(presence=True)
    room = new_room(server)
    join(c, room, "carol")
    join(p, room, "alice")
    c.drain()
    s = login(jid=jid, password=pw, resource="car", presence=True)
    p.wait_closed()
    c.no_stanza("presence", pred=lambda e: e.get("type") == "unavailable", timeout=0.7)
    # the new device rejoins with the same nick: it gets the room, the room sees nothing
    join(s, room, "alice")
    c.no_stanza("presence", timeout=0.5)
    groupchat(c, room, "welcome back")
    expect_groupchat(s, room, "carol", "welcome back")


def test_contacts_see_no_offline_in_between(server, login):
    """R26: the new device's available presence comes before the old one's unavailable."""
    jid, pw, p = exclusive_account(server, login)
    c = login(presence=True, roster=True)
    # mutual subscription
    c.send("<presence to='%s' type='subscribe'/>" % jid)
    p.wait_for("presence", pred=lambda e: e.get("type") == "subscribe")
    p.send("<presence to='%s' type='subscribed'/>" % c.bare)
    c.wait_for("presence", pred=lambda e: e.get("from") == jid + "/phone" and not e.get("type"))
    c.drain()
    s = login(jid=jid, password=pw, resource="car", presence=True)
    seq = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(seq) < 2:
        e = c.wait_for("presence", timeout=1)
        if e is not None and (e.get("from") or "").startswith(jid):
            seq.append((e.get("from").split("/")[1], e.get("type") or "available"))
    assert seq[:2] == [("car", "available"), ("phone", "unavailable")], seq


def test_barring(server, login):
    """R11-R13: barring on keeps new messages for later and refuses invitations, whichever
    device is active; the setting survives the change of device."""
    jid, pw, p = exclusive_account(server, login)
    p.iq("set", "<settings xmlns='%s' barring='on'/>" % NS_ID, check=True)
    s = login(jid=jid, password=pw, resource="car", presence=True)
    p.wait_closed()
    st = s.iq("get", "<settings xmlns='%s'/>" % NS_ID, check=True).find(q(NS_ID, "settings"))
    assert st.get("barring") == "on"
    c = login(presence=True)
    c.message(jid, "kept for later")
    s.no_stanza("message", pred=lambda e: body(e) == "kept for later", timeout=0.7)
    room = new_room(server)
    join(c, room, "carol")
    c.send("<message to='%s'><x xmlns='http://jabber.org/protocol/muc#user'>"
           "<invite to='%s'/></x></message>" % (room, jid))
    s.no_stanza("message", pred=lambda e: "invite" in tostr(e), timeout=0.7)
    s.iq("set", "<settings xmlns='%s' barring='off'/>" % NS_ID, check=True)
    s.close()
    s2 = login(jid=jid, password=pw, resource="car", presence=True)
    s2.expect("message", pred=lambda e: body(e) == "kept for later")


def test_non_exclusive_accounts_are_unchanged(server, login):
    jid, pw = server.add_user()
    a = login(jid=jid, password=pw, resource="one", presence=True)
    b = login(jid=jid, password=pw, resource="two", presence=True)
    a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=server.domain, check=True)
    b.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=server.domain, check=True)


def test_twenty_alternations_one_binding_each_time(server, login):
    """R5, R23: P, S, P, S...: after each, exactly one device is bound and gets messages."""
    jid, pw, p = exclusive_account(server, login)
    c = login(presence=True)
    current = p
    for i in range(20):
        res = "car" if i % 2 == 0 else "phone"
        nxt = login(jid=jid, password=pw, resource=res, presence=True)
        current.wait_closed()
        current = nxt
        c.message(jid, "round %d" % i)
        current.expect("message", pred=lambda e, i=i: body(e) == "round %d" % i)


def test_concurrent_binds_leave_exactly_one(server, login):
    """R27: two devices binding at the same moment, many times: one active at the end."""
    import threading
    jid, pw, p = exclusive_account(server, login)
    for i in range(10):
        a = server.client(jid, pw, resource="a%d" % i).connect(bind=False)
        b = server.client(jid, pw, resource="b%d" % i).connect(bind=False)
        bind = ("<iq type='set' id='x'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                "<resource>%s</resource></bind></iq>")
        ta = threading.Thread(target=a.send, args=(bind % ("a%d" % i),))
        tb = threading.Thread(target=b.send, args=(bind % ("b%d" % i),))
        ta.start(), tb.start()
        ta.join(), tb.join()
        time.sleep(0.3)
        alive = []
        for d in (a, b):
            try:
                d.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=server.domain, check=True,
                     timeout=2)
                alive.append(d)
            except Exception:
                pass
        assert len(alive) == 1, "%d devices active after round %d" % (len(alive), i)
        for d in (a, b):
            d.close()


def test_active_device_dies_and_the_other_takes_over_at_once(server, login):
    """R21: the active device's transport drops without a goodbye (its session would be
    resumable); the other registers at once, is the only one, and gets what comes."""
    jid, pw, p = exclusive_account(server, login)
    p.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    p.wait_for(pred=lambda e: e.tag == q(NS_SM, "enabled"))
    p.abort()
    s = login(jid=jid, password=pw, resource="car", presence=True)
    c = login(presence=True)
    c.message(jid, "after the crash")
    s.expect("message", pred=lambda e: body(e) == "after the crash")


def test_no_active_device_means_offline_storage(server, login):
    """R22: with no device, messages wait offline and come at the next login."""
    jid, pw, p = exclusive_account(server, login)
    p.close()
    c = login(presence=True)
    c.message(jid, "while nobody is there")
    time.sleep(0.3)
    s = login(jid=jid, password=pw, resource="car", presence=True)
    s.expect("message", pred=lambda e: body(e) == "while nobody is there")


def test_one_device_two_identities(server, login):
    """R24: a device serving alice and bob is superseded for bob only."""
    alice, apw, a_dev = exclusive_account(server, login)
    bob, bpw, b_dev = exclusive_account(server, login)
    # the shared device: one connection per identity
    v_alice = login(jid=alice, password=apw, resource="v", presence=True)
    v_bob = login(jid=bob, password=bpw, resource="v", presence=True)
    a_dev.wait_closed()
    b_dev.wait_closed()
    bob_handset = login(jid=bob, password=bpw, resource="handset", presence=True)
    v_bob.wait_closed()
    v_alice.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=server.domain, check=True)
    bob_handset.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=server.domain, check=True)
