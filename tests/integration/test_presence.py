"""Presence and subscriptions against a real batond (RFC 6121 sections 3 and 4): the
subscription state machine with its roster pushes, stored subscription requests, probes on
initial presence, broadcasts of available/unavailable (also on abrupt disconnects), directed
presence and presence between a user's own resources.

Invariant: every test uses fresh accounts, logged in with roster=True and presence=True unless
the test is about something else, and never depends on stanzas from another test.
"""

from helpers import NS_CLIENT, bare, q, sub_state, tostr

SERVER_OPTS = {"domain": "localhost"}


def online(login, jid=None, password=None, **kw):
    return login(jid, password, roster=True, presence=True, **kw)


def subscribe(a, b):
    """a subscribes to b's presence and b approves; checks every step (RFC 6121 3.1)."""
    a.send_presence(to=b.bare, type_="subscribe")
    it = a.expect_push(b.bare, pred=lambda i: i.get("ask") == "subscribe")
    assert sub_state(it)[0] in ("none", "from"), tostr(it)  # 3.1.2
    before = sub_state(it)[0]
    b.expect("presence", type="subscribe", frm=a.bare)  # 3.1.3: stamped with the bare JID
    b.send_presence(to=a.bare, type_="subscribed")
    it = b.expect_push(a.bare)  # 3.1.5
    # before == 'from' means b already had a subscription to a ('to' on b's side)
    assert sub_state(it) == ("both" if before == "from" else "from", None), tostr(it)
    a.expect("presence", type="subscribed", frm=b.bare)  # 3.1.6
    it = a.expect_push(b.bare, pred=lambda i: i.get("ask") is None)
    assert sub_state(it) == ({"none": "to", "from": "both"}[before], None), tostr(it)
    # the contact's server sends the contact's current presence to the user (3.1.5)
    a.expect_presence(frm=b.jid)


def test_subscribe_approve_both_ways(login):
    a = online(login)
    b = online(login)
    subscribe(a, b)
    subscribe(b, a)
    ia, _, _ = a.get_roster()
    ib, _, _ = b.get_roster()
    assert sub_state(ia[b.bare]) == ("both", None), tostr(ia[b.bare])
    assert sub_state(ib[a.bare]) == ("both", None), tostr(ib[a.bare])


def test_initial_presence_reflected_to_sender(login):
    c = login(roster=True)
    c.send_presence(status="hello")
    # RFC 6121 4.2.2: broadcast to all the user's available resources, including the one
    # that sent it
    p = c.expect_presence(frm=c.jid)
    assert p.findtext(q(NS_CLIENT, "status")) == "hello"


def test_subscribe_request_denied(login):
    a = online(login)
    b = online(login)
    a.send_presence(to=b.bare, type_="subscribe")
    a.expect_push(b.bare, pred=lambda i: i.get("ask") == "subscribe")
    b.expect("presence", type="subscribe", frm=a.bare)
    b.send_presence(to=a.bare, type_="unsubscribed")  # deny (3.2)
    a.expect("presence", type="unsubscribed", frm=b.bare)
    it = a.expect_push(b.bare)
    assert sub_state(it) == ("none", None), tostr(it)
    a.no_stanza("presence", frm=b.jid)


def test_subscription_request_to_offline_user_is_stored(server, login):
    a = online(login)
    bjid, bpw = server.add_user()
    a.send_presence(to=bjid, type_="subscribe")
    a.expect_push(bjid, pred=lambda i: i.get("ask") == "subscribe")
    # b comes online later: the request is delivered then (RFC 6121 3.1.3)
    b = online(login, bjid, bpw)
    b.expect("presence", type="subscribe", frm=a.bare)
    b.send_presence(to=a.bare, type_="subscribed")
    a.expect("presence", type="subscribed", frm=b.bare)
    a.expect_presence(frm=b.jid)


def test_subscription_survives_reconnect(server, login):
    ajid, apw = server.add_user()
    a = online(login, ajid, apw)
    b = online(login)
    subscribe(a, b)
    a.close()
    a2 = login(ajid, apw, roster=True)
    items, _, _ = a2.get_roster()
    assert sub_state(items[b.bare]) == ("to", None), tostr(items[b.bare])


def test_initial_presence_probes_contacts(server, login):
    ajid, apw = server.add_user()
    a = online(login, ajid, apw)
    b = online(login)
    subscribe(a, b)
    subscribe(b, a)
    b.send_presence(status="at the ball", show="away")
    a.expect_presence(frm=b.jid)
    a.close()
    b.expect_presence(frm=a.jid, type_="unavailable")
    # a logs in again: its initial presence makes the server probe b (RFC 6121 4.2.2, 4.3)
    a2 = online(login, ajid, apw)
    p = a2.expect_presence(frm=b.jid)
    assert (p.findtext(q(NS_CLIENT, "status")) == "at the ball"
            and p.findtext(q(NS_CLIENT, "show")) == "away"), tostr(p)
    # and b learns that a is back (broadcast to subscribers, 4.2.2)
    b.expect_presence(frm=a2.jid)


def test_presence_change_is_broadcast(login):
    a = online(login)
    b = online(login)
    subscribe(a, b)
    b.send_presence(show="dnd", status="busy")
    p = a.expect_presence(frm=b.jid)
    assert p.findtext(q(NS_CLIENT, "show")) == "dnd", tostr(p)
    # the broadcast goes to subscribers only: b is not subscribed to a
    a.send_presence(show="chat")
    b.no_stanza("presence", frm=a.jid)


def test_explicit_unavailable_is_broadcast(login):
    a = online(login)
    b = online(login)
    subscribe(a, b)
    b.send_presence(type_="unavailable", status="bye")
    p = a.expect_presence(frm=b.jid, type_="unavailable")
    assert p.findtext(q(NS_CLIENT, "status")) == "bye", tostr(p)


def test_unavailable_on_stream_close(login):
    a = online(login)
    b = online(login)
    subscribe(a, b)
    bjid = b.jid
    b.close()
    a.expect_presence(frm=bjid, type_="unavailable")  # RFC 6121 4.5.3 (server-generated)


def test_unavailable_on_abrupt_disconnect(login):
    a = online(login)
    b = online(login)
    subscribe(a, b)
    bjid = b.jid
    b.abort()  # TCP closed without </stream:stream>
    a.expect_presence(frm=bjid, type_="unavailable", timeout=10)


def test_unsubscribe(login):
    a = online(login)
    b = online(login)
    subscribe(a, b)
    subscribe(b, a)
    a.send_presence(to=b.bare, type_="unsubscribe")  # RFC 6121 3.3
    it = a.expect_push(b.bare)
    assert sub_state(it) == ("from", None), tostr(it)
    b.expect("presence", type="unsubscribe", frm=a.bare)
    it = b.expect_push(a.bare)
    assert sub_state(it) == ("to", None), tostr(it)
    # a no longer sees b: the contact's server sends unavailable presence (3.3.3)
    a.expect_presence(frm=b.jid, type_="unavailable")


def test_cancel_subscription(login):
    a = online(login)
    b = online(login)
    subscribe(a, b)
    b.send_presence(to=a.bare, type_="unsubscribed")  # RFC 6121 3.2: b cancels a's subscription
    it = b.expect_push(a.bare)
    assert sub_state(it) == ("none", None), tostr(it)
    a.expect("presence", type="unsubscribed", frm=b.bare)
    it = a.expect_push(b.bare)
    assert sub_state(it) == ("none", None), tostr(it)
    a.expect_presence(frm=b.jid, type_="unavailable")
    # and further presence of b does not reach a
    b.send_presence(status="still here")
    a.no_stanza("presence", frm=b.jid)


def test_unsolicited_subscribed_is_ignored(login):
    a = online(login)
    b = online(login)
    b.send_presence(to=a.bare, type_="subscribed")  # a never asked (RFC 6121 3.1.6 / 3.4?)
    a.no_stanza("presence", frm=b.bare)
    items, _, _ = a.get_roster()
    assert b.bare not in items or sub_state(items[b.bare])[0] in ("none", "from"), \
        tostr(items.get(b.bare))


def test_resubscribe_is_auto_approved(login):
    a = online(login)
    b = online(login)
    subscribe(a, b)
    # a asks again although already subscribed: b's server answers for b (RFC 6121 3.1.3)
    a.send_presence(to=b.bare, type_="subscribe")
    a.expect("presence", type="subscribed", frm=b.bare)
    b.no_stanza("presence", type="subscribe")


def test_no_presence_leak_to_strangers(login):
    a = online(login)
    c = online(login)
    a.send_presence(status="private")
    c.no_stanza("presence", pred=lambda e: bare(e.get("from")) == a.bare)


def test_directed_presence(login):
    a = online(login)
    c = online(login)
    a.send_presence(to=c.jid, status="just for you")  # RFC 6121 4.6
    p = c.expect_presence(frm=a.jid)
    assert p.findtext(q(NS_CLIENT, "status")) == "just for you"
    ajid = a.jid
    a.close()
    # the user's server remembers directed presence and sends unavailable on logout (4.6.3)
    c.expect_presence(frm=ajid, type_="unavailable")


def test_own_resources_see_each_other(server, login):
    jid, pw = server.add_user()
    one = online(login, jid, pw, resource="one")
    two = login(jid, pw, resource="two", roster=True)
    two.send_presence(status="two here")
    # initial presence goes to the user's other available resources, and the new resource
    # receives theirs (RFC 6121 4.2.2, 4.2.3)
    p = one.expect_presence(frm=jid + "/two")
    assert p.findtext(q(NS_CLIENT, "status")) == "two here"
    two.expect_presence(frm=jid + "/one")
    two.close()
    one.expect_presence(frm=jid + "/two", type_="unavailable")


def test_presence_to_own_full_jid(server, login):
    jid, pw = server.add_user()
    one = online(login, jid, pw, resource="one")
    two = online(login, jid, pw, resource="two")
    one.drain(0.3)
    two.send_presence(to=jid + "/one", status="directed to myself")
    one.expect("presence", frm=jid + "/two",
               pred=lambda e: e.findtext(q(NS_CLIENT, "status")) == "directed to myself")



def test_stored_subscription_request_survives_restart(server, login):
    """Last test of the module: restarts the module's server."""
    a = online(login)
    bjid, bpw = server.add_user()
    a.send_presence(to=bjid, type_="subscribe")
    a.expect_push(bjid, pred=lambda i: i.get("ask") == "subscribe")
    a.close()
    server.restart()
    b = online(login, bjid, bpw)
    b.expect("presence", type="subscribe", frm=a.bare)
    items, _, _ = login(a.bare, a.password, roster=True).get_roster()
    assert sub_state(items[bjid]) == ("none", "subscribe"), tostr(items[bjid])
