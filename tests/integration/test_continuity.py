"""Device continuity (seed 000, PROTOCOL.md 1, urn:baton:continuity:0) against a real batond:
push with accept and decline, the modes move, copy and logout, history bounded by the request
and by the target's profile, messages in flight reaching the target exactly once, room seats
that move without a leave or a join (even when the room is full), notices to the other
participants (or none), offline targets, "my next device", parking and pulling, reservations.

Requirement numbers (R1..R37) are those of ../shared/digests/000-continuity.md.
A is alice's desk, B alice's phone, C bob, as in the digest.
"""

import time

from helpers import NS_CLIENT, q, stanza_error, tostr
from test_muc import NS_MUC_USER, codes, configure, expect_groupchat, groupchat, join, new_room

NS_CONT = "urn:baton:continuity:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_CARBONS = "urn:xmpp:carbons:2"


def body(e):
    return e.findtext(q(NS_CLIENT, "body"))


def cont(e, name):
    return e.find(q(NS_CONT, name))


def devices(server, login, *resources, presence=True):
    """One account, one logged-in client per resource."""
    jid, pw = server.add_user()
    return [login(jid=jid, password=pw, resource=r, presence=presence) for r in resources]


def transfer(c, to=None, sessions=(), check=True, **attrs):
    a = dict(attrs)
    if to:
        a["to"] = to
    inner = "".join("<session %s='%s'/>" % kv for kv in sessions)
    res = c.iq("set", "<transfer xmlns='%s' %s>%s</transfer>" % (
        NS_CONT, " ".join("%s='%s'" % kv for kv in a.items()), inner))
    if check:
        assert res.get("type") == "result", tostr(res)
        return cont(res, "transfer")
    return res


def offered(c, timeout=5):
    m = c.expect("message", pred=lambda e: cont(e, "transferred") is not None, timeout=timeout,
                 what="a <transferred/> offer")
    return cont(m, "transferred")


def answer(c, tid, yes=True):
    return c.iq("set", "<%s xmlns='%s' id='%s'/>" % ("accept" if yes else "decline", NS_CONT, tid),
                check=True)


def control(c, name, timeout=5):
    m = c.expect("message", pred=lambda e: cont(e, name) is not None, timeout=timeout,
                 what="<%s/>" % name)
    return cont(m, name)


def chat(a, b, n, prefix="m"):
    for i in range(n):
        a.message(b.bare, "%s%d" % (prefix, i))
        b.expect("message", pred=lambda e, i=i: body(e) == "%s%d" % (prefix, i))


def history_bodies(session_el):
    return [body(f.find(q(NS_CLIENT, "message"))) for f in session_el.findall(q(NS_FORWARD,
                                                                                  "forwarded"))]


def test_feature_and_profile(server, login):
    a, = devices(server, login, "desk")
    res = a.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
               to=server.domain, check=True)
    assert NS_CONT in [f.get("var") for f in res.iter("{http://jabber.org/protocol/disco#info}feature")]
    a.iq("set", "<profile xmlns='%s' device='phone' media='text' max-history='20'/>" % NS_CONT,
         check=True)
    p = cont(a.iq("get", "<profile xmlns='%s'/>" % NS_CONT, check=True), "profile")
    assert (p.get("device"), p.get("media"), p.get("max-history")) == ("phone", "text", "20")


def test_push_move_accept(server, login):
    """R6, R7, R10, R11 (move): B gets the history, then C's next message reaches B only."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 3, "before")
    a.message(c.bare, "from desk")
    c.expect("message", pred=lambda e: body(e) == "from desk")
    t = transfer(a, to=b.jid, history="10")
    assert t.get("state") == "pending" and t.get("id")
    off = offered(b)
    assert off.get("id") == t.get("id") and off.get("from") == a.jid
    sess = off.find(q(NS_CONT, "session"))
    assert sess.get("with") == c.bare, tostr(off)
    assert history_bodies(sess) == ["before0", "before1", "before2", "from desk"]
    assert sess.find(q(NS_FORWARD, "forwarded")).find(q(NS_DELAY, "delay")) is not None
    # R21: the client-level data comes along: the server's identity and the preferences.
    client = off.find(q(NS_CONT, "client"))
    assert client is not None and client.get("server") == server.domain, tostr(off)
    assert client.get("account") == a.bare and client.find(q(NS_CONT, "preferences")) is not None
    answer(b, t.get("id"))
    done = control(a, "transfer-done")
    assert done.get("id") == t.get("id") and done.get("to") == b.jid
    c.message(a.bare, "after the move")
    assert body(b.expect("message", pred=lambda e: body(e) == "after the move")) == "after the move"
    a.no_stanza("message", pred=lambda e: body(e) == "after the move", timeout=0.5)
    # A client that locked onto the old device's full JID still reaches the new one.
    c.message(a.jid, "to the old full jid")
    b.expect("message", pred=lambda e: body(e) == "to the old full jid")
    a.no_stanza("message", pred=lambda e: body(e) == "to the old full jid", timeout=0.5)


def test_copy_keeps_both(server, login):
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    t = transfer(a, to=b.jid, mode="copy")
    offered(b)
    answer(b, t.get("id"))
    control(a, "transfer-done")
    c.message(a.bare, "to both")
    a.expect("message", pred=lambda e: body(e) == "to both")
    b.expect("message", pred=lambda e: body(e) == "to both")


def test_logout_mode_closes_the_source(server, login):
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    t = transfer(a, to=b.jid, mode="logout")
    offered(b)
    answer(b, t.get("id"))
    control(a, "transfer-done")
    a.wait_closed()
    c.message(a.bare, "after logout")
    b.expect("message", pred=lambda e: body(e) == "after logout")


def test_decline_changes_nothing(server, login):
    """R36: declined (or target gone): A keeps everything and is told."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    t = transfer(a, to=b.jid)
    offered(b)
    answer(b, t.get("id"), yes=False)
    f = control(a, "transfer-failed")
    assert f.get("id") == t.get("id") and f.get("reason") == "declined"
    c.message(a.jid, "still yours")
    a.expect("message", pred=lambda e: body(e) == "still yours")
    # accepting afterwards finds nothing
    res = b.iq("set", "<accept xmlns='%s' id='%s'/>" % (NS_CONT, t.get("id")))
    assert stanza_error(res)[1] == "item-not-found"


def test_target_disconnects_before_accepting(server, login):
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    t = transfer(a, to=b.jid)
    offered(b)
    b.abort()
    f = control(a, "transfer-failed")
    assert f.get("id") == t.get("id") and f.get("reason") == "target-disconnected"
    c.message(a.bare, "nothing moved")
    a.expect("message", pred=lambda e: body(e) == "nothing moved")


def test_messages_in_flight_arrive_exactly_once(server, login):
    """R9: what C sends between the offer and the accept reaches B once."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 2, "old")
    b.drain()  # B got those live too (both devices are available)
    t = transfer(a, to=b.jid)
    off = offered(b)
    for i in range(5):
        c.message(a.bare, "inflight%d" % i)
    a.expect("message", pred=lambda e: body(e) == "inflight4")
    answer(b, t.get("id"))
    for i in range(3):
        c.message(a.bare, "live%d" % i)
    got = history_bodies(off.find(q(NS_CONT, "session")))
    deadline = time.monotonic() + 5
    while "live2" not in got and time.monotonic() < deadline:
        el = b.expect("message", pred=lambda e: body(e) is not None, timeout=5)
        got.append(body(el))
    assert got == ["old0", "old1"] + ["inflight%d" % i for i in range(5)] + \
        ["live%d" % i for i in range(3)], got


def test_history_bounded_by_request_and_profile(server, login):
    """R18/R19: the newest N, in order; the target's max-history lowers it."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 8)
    b.iq("set", "<profile xmlns='%s' max-history='3'/>" % NS_CONT, check=True)
    t = transfer(a, to=b.jid, history="5")
    off = offered(b)
    assert history_bodies(off.find(q(NS_CONT, "session"))) == ["m5", "m6", "m7"]
    answer(b, t.get("id"))


def test_only_the_listed_sessions_move(server, login):
    """R8: a subset moves; the rest stays with A."""
    a, b = devices(server, login, "desk", "phone")
    c, d = login(presence=True), login(presence=True)
    chat(c, a, 1, "c")
    chat(d, a, 1, "d")
    t = transfer(a, to=b.jid, sessions=[("with", c.bare)])
    off = offered(b)
    assert [s.get("with") for s in off.findall(q(NS_CONT, "session"))] == [c.bare]
    answer(b, t.get("id"))
    control(a, "transfer-done")
    c.message(a.bare, "c after")
    d.message(a.bare, "d after")
    b.expect("message", pred=lambda e: body(e) == "c after")
    a.expect("message", pred=lambda e: body(e) == "d after")


def test_a_device_remembers_its_recent_conversations_only(server, login):
    """A device that writes to ever new addresses keeps a bounded set of open conversations:
    past 256 the older half is forgotten, so a transfer of "all" offers the recent ones."""
    a, b = devices(server, login, "desk", "phone")
    peers = ["nobody%d@%s" % (i, server.domain) for i in range(300)]
    for p in peers[:128]:
        a.message(p, "hello")
    a.sync()
    time.sleep(0.05)  # the first 128 are older than the rest by more than a clock tick
    for p in peers[128:]:
        a.message(p, "hello")
    a.sync()
    t = transfer(a, to=b.jid, history="0", mode="copy")
    off = offered(b, timeout=10)
    withs = sorted(s.get("with") for s in off.findall(q(NS_CONT, "session")))
    # At the 257th, the 128 most recent of the first 256 stayed; 44 came after.
    assert withs == sorted(peers[128:]), (len(withs), withs[:3])
    answer(b, t.get("id"))


def test_notify_tells_the_other_party_or_nothing(server, login):
    """R26 / claims 23-28."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    b.iq("set", "<profile xmlns='%s' device='phone' media='text'/>" % NS_CONT, check=True)
    t = transfer(a, to=b.jid, notify="true")
    offered(b)
    answer(b, t.get("id"))
    mv = control(c, "moved")
    assert (mv.get("jid"), mv.get("from"), mv.get("to")) == (a.bare, a.jid, b.jid)
    assert cont(mv, "profile").get("device") == "phone"
    # Without notify, C sees nothing at all (no presence flap either).
    a2, b2 = devices(server, login, "desk", "phone")
    chat(c, a2, 1)
    c.drain()
    t = transfer(a2, to=b2.jid)
    offered(b2)
    answer(b2, t.get("id"))
    control(a2, "transfer-done")
    c.no_stanza(timeout=0.7)


def test_room_seat_moves_without_leave_or_join(server, login):
    """R27 / PROTOCOL.md 1: the seat moves; the room sees nothing; B gets room traffic."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    room = new_room(server)
    join(c, room, "carol")
    join(a, room, "alice")
    c.drain()
    t = transfer(a, to=b.jid, sessions=[("room", room)])
    off = offered(b)
    s = off.find(q(NS_CONT, "session"))
    assert s.get("room") == room and s.get("nick") == "alice"
    answer(b, t.get("id"))
    control(a, "transfer-done")
    c.no_stanza("presence", timeout=0.7)  # no leave, no join
    groupchat(c, room, "hello alice")
    expect_groupchat(b, room, "carol", "hello alice")
    a.no_stanza("message", pred=lambda e: body(e) == "hello alice", timeout=0.5)
    groupchat(b, room, "from the phone")
    expect_groupchat(c, room, "alice", "from the phone")


def test_room_seat_moves_into_a_full_room(server, login):
    a, b = devices(server, login, "desk", "phone")
    c, e = login(presence=True), login(presence=True)
    room = new_room(server)
    join(c, room, "carol")
    configure(c, room, maxusers=2)
    join(a, room, "alice")
    t = transfer(a, to=b.jid, sessions=[("room", room)])
    offered(b)
    answer(b, t.get("id"))
    control(a, "transfer-done")
    groupchat(c, room, "still full")
    expect_groupchat(b, room, "carol", "still full")


def test_offline_target_gets_it_when_it_connects(server, login):
    """R12: a named device that is offline gets the offer when it binds."""
    jid, pw = server.add_user()
    a = login(jid=jid, password=pw, resource="desk", presence=True)
    c = login(presence=True)
    chat(c, a, 2)
    t = transfer(a, to=jid + "/phone")
    assert t.get("state") == "pending"
    time.sleep(0.3)
    b = login(jid=jid, password=pw, resource="phone", presence=True)
    off = offered(b)
    assert off.get("id") == t.get("id")
    answer(b, t.get("id"))
    control(a, "transfer-done")


def test_next_device(server, login):
    jid, pw = server.add_user()
    a = login(jid=jid, password=pw, resource="desk", presence=True)
    c = login(presence=True)
    chat(c, a, 1)
    t = transfer(a, to=jid)  # the bare JID: my next device to connect
    b = login(jid=jid, password=pw, resource="tablet", presence=True)
    assert offered(b).get("id") == t.get("id")


def test_park_then_pick_up(server, login):
    """R13 / claims 60, 66: parked on the server, listed, pulled by a later device."""
    jid, pw = server.add_user()
    a = login(jid=jid, password=pw, resource="desk", presence=True)
    c = login(presence=True)
    chat(c, a, 2)
    t = transfer(a)
    assert t.get("state") == "done"
    a.close()
    time.sleep(0.3)
    b = login(jid=jid, password=pw, resource="phone", presence=True)
    parked = cont(b.iq("get", "<parked xmlns='%s'/>" % NS_CONT, check=True), "parked")
    ids = [x.get("id") for x in parked.findall(q(NS_CONT, "transfer"))]
    assert t.get("id") in ids, tostr(parked)
    b.iq("set", "<pull xmlns='%s' parked='%s'/>" % (NS_CONT, t.get("id")), check=True)
    off = offered(b)
    assert history_bodies(off.find(q(NS_CONT, "session"))) == ["m0", "m1"]
    answer(b, t.get("id"))
    c.message(jid, "to whoever has it")
    b.expect("message", pred=lambda e: body(e) == "to whoever has it")


def test_pull_from_another_device(server, login):
    """R15: B pulls; A is asked and pushes with the request's id."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    b.iq("set", "<pull xmlns='%s' from='%s'/>" % (NS_CONT, a.jid), check=True)
    req = control(a, "transfer-request")
    assert req.get("to") == b.jid
    transfer(a, id=req.get("id"))
    off = offered(b)
    answer(b, off.get("id"))
    control(a, "transfer-done")


def test_pull_declined(server, login):
    a, b = devices(server, login, "desk", "phone")
    b.iq("set", "<pull xmlns='%s'/>" % NS_CONT, check=True)  # my other active device
    req = control(a, "transfer-request")
    a.iq("set", "<decline xmlns='%s' id='%s'/>" % (NS_CONT, req.get("id")), check=True)
    f = control(b, "transfer-failed")
    assert f.get("reason") == "declined"


def test_pull_auto_accepted(server, login):
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    a.iq("set", "<preferences xmlns='%s' auto_accept_pull='true'/>" % NS_CONT, check=True)
    b.iq("set", "<pull xmlns='%s' from='%s'/>" % (NS_CONT, a.jid), check=True)
    off = offered(b)
    answer(b, off.get("id"))
    c.message(a.bare, "pulled")
    b.expect("message", pred=lambda e: body(e) == "pulled")


def test_refusals(server, login):
    """R31: other accounts and unknown rooms are refused; nothing is sent anywhere."""
    a, b = devices(server, login, "desk", "phone")
    other = login(presence=True)
    res = transfer(a, to=other.jid, check=False)
    assert stanza_error(res)[1] == "not-allowed"
    other.no_stanza("message", timeout=0.5)
    res = transfer(a, to=b.jid, sessions=[("room", new_room(server))], check=False)
    assert stanza_error(res)[1] == "item-not-found"
    res = transfer(a, to=a.jid, check=False)
    assert stanza_error(res)[1] == "bad-request"


def test_pending_transfer_expires(tmp_path_factory):
    from conftest import start_server
    from helpers import stop_and_check
    srv = start_server(tmp_path_factory, "cont_ttl", sets=["continuity.pending_ttl=1s"])
    try:
        jid, pw = srv.add_user()
        a = srv.login(jid, pw, resource="desk", presence=True)
        t = transfer(a, to=jid + "/never")
        e = control(a, "expired", timeout=5)
        assert e.get("id") == t.get("id")
        a.close()
    finally:
        stop_and_check(srv)


def test_seat_reservation(server, login):
    """R27-R29: a reserved seat counts as taken; the device it is for gets in."""
    a, b = devices(server, login, "desk", "phone")
    c, e = login(presence=True), login(presence=True)
    room = new_room(server)
    join(c, room, "carol")
    configure(c, room, maxusers=2)
    a.iq("set", "<reserve xmlns='%s' room='%s' for='%s' ttl='30'/>" % (NS_CONT, room, b.jid),
         check=True)
    time.sleep(0.2)
    e.send("<presence to='%s/eve'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % room)
    err = e.expect("presence", pred=lambda p: p.get("type") == "error")
    assert stanza_error(err)[1] == "service-unavailable"
    join(b, room, "alice")


def test_auto_transfer_on_connect_and_preferences_persist(server, login):
    """R14: with the preference on, B's login alone brings it the offer; the preference is
    kept in private storage (PROTOCOL.md 1) and survives the account going idle."""
    jid, pw = server.add_user()
    a = login(jid=jid, password=pw, resource="desk", presence=True)
    a.iq("set", "<preferences xmlns='%s' auto_transfer_on_connect='true'/>" % NS_CONT,
         check=True)
    a.close()
    time.sleep(0.5)
    a = login(jid=jid, password=pw, resource="desk", presence=True)
    p = cont(a.iq("get", "<preferences xmlns='%s'/>" % NS_CONT, check=True), "preferences")
    assert p.get("auto_transfer_on_connect") == "true", tostr(p)
    c = login(presence=True)
    chat(c, a, 1)
    b = login(jid=jid, password=pw, resource="phone", presence=True)
    off = offered(b)
    assert off.get("from") == a.jid
    answer(b, off.get("id"))
    c.message(jid, "followed me")
    b.expect("message", pred=lambda e: body(e) == "followed me")
    a.iq("set", "<preferences xmlns='%s'/>" % NS_CONT, check=True)


def test_transfer_to_a_websocket_device(server, login, clients):
    """R37: the target uses another transport (XMPP over WebSocket)."""
    import web
    jid, pw = server.add_user()
    a = login(jid=jid, password=pw, resource="desk", presence=True)
    c = login(presence=True)
    chat(c, a, 2)
    w = web.WsXmpp(server.http_port).login(jid.split("@")[0], pw, "browser")
    clients.append(w)
    w.send("<presence/>")
    t = transfer(a, to=w.jid)
    m = w.wait_for(lambda e: cont(e, "transferred") is not None)
    off = cont(m, "transferred")
    assert history_bodies(off.find(q(NS_CONT, "session"))) == ["m0", "m1"]
    w.send("<iq type='set' id='acc'><accept xmlns='%s' id='%s'/></iq>" % (NS_CONT, t.get("id")))
    control(a, "transfer-done")
    c.message(jid, "to the browser")
    w.wait_for(lambda e: body(e) == "to the browser")


def test_handover_to_another_account(server, login):
    """R34 (claim 16): a support agent hands a conversation and its history to a colleague;
    the customer's next messages reach the colleague, who answers as itself."""
    agent1 = login(presence=True)
    agent2 = login(presence=True)
    customer = login(presence=True)
    chat(customer, agent1, 2, "help")
    # Without the account's permission: refused.
    res = transfer(agent1, to=agent2.jid, check=False)
    assert stanza_error(res)[1] == "not-allowed"
    agent1.iq("set", "<preferences xmlns='%s' handover_to='%s'/>" % (NS_CONT, agent2.bare),
              check=True)
    t = transfer(agent1, to=agent2.jid, sessions=[("with", customer.bare)], notify="true")
    off = offered(agent2)
    assert off.get("id") == t.get("id")
    assert history_bodies(off.find(q(NS_CONT, "session"))) == ["help0", "help1"]
    # The colleague answers at the account that offered it.
    res = agent2.iq("set", "<accept xmlns='%s' id='%s'/>" % (NS_CONT, t.get("id")),
                    to=agent1.bare)
    assert res.get("type") == "result", tostr(res)
    control(agent1, "transfer-done")
    mv = control(customer, "moved")
    assert mv.get("to") == agent2.jid
    customer.message(agent1.bare, "are you still there?")
    m = agent2.expect("message", pred=lambda e: body(e) == "are you still there?")
    assert m.get("from") == customer.jid
    agent1.no_stanza("message", pred=lambda e: body(e) == "are you still there?", timeout=0.5)
    agent2.message(customer.jid, "yes, a colleague here")
    r = customer.expect("message", pred=lambda e: body(e) == "yes, a colleague here")
    assert r.get("from") == agent2.jid


def test_handover_of_a_room_seat_to_another_account(server, login):
    agent1 = login(presence=True)
    agent2 = login(presence=True)
    c = login(presence=True)
    room = new_room(server)
    join(c, room, "carol")
    join(agent1, room, "support")
    agent1.iq("set", "<preferences xmlns='%s' handover_to='%s'/>" % (NS_CONT, agent2.bare),
              check=True)
    c.drain()
    t = transfer(agent1, to=agent2.jid, sessions=[("room", room)])
    offered(agent2)
    agent2.iq("set", "<accept xmlns='%s' id='%s'/>" % (NS_CONT, t.get("id")), to=agent1.bare,
              check=True)
    control(agent1, "transfer-done")
    c.no_stanza("presence", timeout=0.5)
    groupchat(c, room, "who is support now")
    expect_groupchat(agent2, room, "carol", "who is support now")
    groupchat(agent2, room, "still me, the support seat")
    expect_groupchat(c, room, "support", "still me, the support seat")


def test_transfer_key_logs_in_a_new_device_once(server, login):
    """R33 (FIG. 13 steps 314-322): a device with no password logs in with the transfer's
    key, once, and gets the transfer."""
    jid, pw = server.add_user()
    a = login(jid=jid, password=pw, resource="desk", presence=True)
    c = login(presence=True)
    chat(c, a, 1)
    t = transfer(a, key="true")
    key = t.get("key")
    assert key and t.get("state") == "pending"
    b = server.client(jid, key, resource="kiosk", mech="PLAIN").connect()
    b.send("<presence/>")
    off = offered(b)
    assert off.get("id") == t.get("id")
    answer(b, t.get("id"))
    control(a, "transfer-done")
    again = server.client(jid, key, resource="kiosk2", mech="PLAIN")
    try:
        again.connect()
        assert False, "a transfer key worked twice"
    except Exception as e:
        assert "not-authorized" in str(e), e
    b.close()


def test_transfer_key_by_challenge_response(server, login):
    """R32 (FIG. 22, 438-450): a connected device proves it has the key with HMAC over a
    challenge; wrong answers and reuse are refused and change nothing."""
    import hashlib
    import hmac as hm
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    t = transfer(a, key="true")
    key = t.get("key")

    def redeem(response):
        ch = cont(b.iq("get", "<redeem xmlns='%s'/>" % NS_CONT, check=True), "challenge")
        nonce = ch.get("nonce")
        resp = response(nonce)
        return b.iq("set", "<redeem xmlns='%s' id='%s' response='%s'/>"
                    % (NS_CONT, t.get("id"), resp))
    bad = redeem(lambda n: "0" * 64)
    assert stanza_error(bad)[1] == "not-authorized"
    good = redeem(lambda n: hm.new(key.encode(), n.encode(), hashlib.sha256).hexdigest())
    assert good.get("type") == "result", tostr(good)
    off = offered(b)
    answer(b, off.get("id"))
    control(a, "transfer-done")
    again = redeem(lambda n: hm.new(key.encode(), n.encode(), hashlib.sha256).hexdigest())
    assert stanza_error(again)[1] == "not-authorized"


def test_movement_trigger_and_agent_availability(server, login):
    """R16: a movement event starts the transfer when the account wants it; R17: a device's
    transfer agent announces itself to the others."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    b.iq("set", "<movement xmlns='%s' type='undocked'/>" % NS_CONT, check=True)
    b.no_stanza("message", pred=lambda e: cont(e, "transferred") is not None, timeout=0.5)
    a.iq("set", "<preferences xmlns='%s' transfer_on_movement='true'/>" % NS_CONT, check=True)
    b.iq("set", "<agent xmlns='%s'/>" % NS_CONT, check=True)
    av = control(a, "available")
    assert av.get("device") == b.jid
    b.iq("set", "<movement xmlns='%s' type='undocked'/>" % NS_CONT, check=True)
    off = offered(b)
    assert off.get("from") == a.jid
    answer(b, off.get("id"))
    control(a, "transfer-done")


def test_text_only_device_gets_links_live(server, login):
    """R25: a device that shows text only gets the link instead of out-of-band data, live."""
    a, b = devices(server, login, "desk", "phone")
    b.iq("set", "<profile xmlns='%s' media='text'/>" % NS_CONT, check=True)
    c = login(presence=True)
    c.send("<message to='%s' type='chat'><x xmlns='jabber:x:oob'>"
           "<url>https://example.org/cat.jpg</url></x></message>" % b.jid)
    m = b.expect("message", pred=lambda e: body(e) == "https://example.org/cat.jpg")
    assert m.find("{jabber:x:oob}x") is None
    c.send("<message to='%s' type='chat'><x xmlns='jabber:x:oob'>"
           "<url>https://example.org/dog.jpg</url></x></message>" % a.jid)
    m = a.expect("message", pred=lambda e: e.find("{jabber:x:oob}x") is not None)


def test_session_preferences_go_with_the_conversation(server, login):
    """R23 (FIG. 3): retention, alert, delivery, timeout and timer of a conversation are
    carried in its <session/> and are B's afterwards."""
    a, b = devices(server, login, "desk", "phone")
    c = login(presence=True)
    chat(c, a, 1)
    a.iq("set", "<session-preferences xmlns='%s' with='%s' retention='20' alert='off' "
         "delivery='guaranteed' timeout='300' timer='3600'/>" % (NS_CONT, c.bare), check=True)
    t = transfer(a, to=b.jid)
    off = offered(b)
    p = off.find(q(NS_CONT, "session")).find(q(NS_CONT, "preferences"))
    assert p is not None and p.get("retention") == "20" and p.get("delivery") == "guaranteed"
    answer(b, t.get("id"))
    control(a, "transfer-done")
    got = cont(b.iq("get", "<session-preferences xmlns='%s' with='%s'/>" % (NS_CONT, c.bare),
                    check=True), "preferences")
    assert got.get("retention") == "20" and got.get("alert") == "off", tostr(got)


def test_parked_and_keyed_transfers_survive_a_restart(tmp_path_factory):
    """Nothing lost for transfers either: parked sessions and a transfer waiting for its key
    are still there after batond restarts."""
    from conftest import start_server
    from helpers import stop_and_check
    srv = start_server(tmp_path_factory, "cont_restart")
    try:
        jid, pw = srv.add_user()
        cjid, cpw = srv.add_user()
        a = srv.login(jid, pw, resource="desk", presence=True)
        c = srv.login(cjid, cpw, presence=True)
        chat(c, a, 2)
        parked = transfer(a)
        keyed = transfer(a, key="true")
        a.close()
        c.close()
        time.sleep(0.3)
        assert srv.stop() == 0
        srv.start()
        b = srv.login(jid, pw, resource="phone", presence=True)
        listed = cont(b.iq("get", "<parked xmlns='%s'/>" % NS_CONT, check=True), "parked")
        assert parked.get("id") in [x.get("id") for x in listed.findall(q(NS_CONT, "transfer"))]
        b.iq("set", "<pull xmlns='%s' parked='%s'/>" % (NS_CONT, parked.get("id")), check=True)
        off = offered(b)
        assert history_bodies(off.find(q(NS_CONT, "session"))) == ["m0", "m1"]
        answer(b, off.get("id"))
        k = srv.client(jid, keyed.get("key"), resource="kiosk", mech="PLAIN").connect()
        k.send("<presence/>")
        assert offered(k).get("id") == keyed.get("id")
        b.close()
        k.close()
    finally:
        stop_and_check(srv)
