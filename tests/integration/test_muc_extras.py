"""XEP-0410 MUC self-ping (a ping to one's own occupant JID is answered by the room: result while
joined with that nick, not-acceptable otherwise; advertised on rooms) and XEP-0249 direct
invitations (a message with <x xmlns='jabber:x:conference'/> arrives intact)."""

from helpers import NS_DISCO_INFO, q, stanza_error, tostr
from test_muc import join, new_room

NS_PING = "urn:xmpp:ping"
SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization"
NS_CONF = "jabber:x:conference"


def ping(c, to):
    return c.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=to)


def test_self_ping(server, login):
    a = login()
    b = login()
    room = new_room(server)
    join(a, room, "alice")
    join(b, room, "bob")
    res = ping(a, room + "/alice")
    assert res.get("type") == "result" and res.get("from") == room + "/alice", tostr(res)
    # the room answered: bob's client saw nothing of it
    b.no_stanza("iq", timeout=0.5)
    # someone not in the room, or pinging a nick that is not theirs as a non-occupant
    c = login()
    res = ping(c, room + "/alice")
    assert stanza_error(res) == ("cancel", "not-acceptable"), tostr(res)
    res = ping(c, room + "/carol")
    assert stanza_error(res) == ("cancel", "not-acceptable"), tostr(res)


def test_self_ping_after_leaving(server, login):
    a = login()
    room = new_room(server)
    keep = login()
    join(keep, room, "keeper")  # the room stays while a leaves
    join(a, room, "alice")
    a.send_presence(to=room + "/alice", type_="unavailable")
    a.expect_presence(frm=room + "/alice", type_="unavailable")
    res = ping(a, room + "/alice")
    assert stanza_error(res) == ("cancel", "not-acceptable"), tostr(res)


def test_ping_to_another_occupant_is_relayed(server, login):
    a = login()
    b = login()
    room = new_room(server)
    join(a, room, "alice")
    join(b, room, "bob")
    a.send("<iq type='get' id='p2' to='%s/bob'><ping xmlns='%s'/></iq>" % (room, NS_PING))
    got = b.expect("iq", pred=lambda e: e.find(q(NS_PING, "ping")) is not None)
    assert got.get("from") == room + "/alice"
    b.send("<iq type='result' id='%s' to='%s'/>" % (got.get("id"), got.get("from")))
    res = a.expect("iq", id="p2")
    assert res.get("type") == "result" and res.get("from") == room + "/bob", tostr(res)


def test_room_advertises_self_ping(server, login):
    a = login()
    room = new_room(server)
    join(a, room, "alice")
    res = a.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room, check=True)
    assert SELF_PING in [f.get("var") for f in res.iter(q(NS_DISCO_INFO, "feature"))]


def test_direct_invitation_arrives_intact(server, login):
    a = login(presence=True)
    b = login(presence=True)
    room = new_room(server)
    x = ("<x xmlns='%s' jid='%s' password='cauldronburn' reason='Hey Hecate, this is the place "
         "for all good witches!' continue='true' thread='e0ffe42b28561960c6b12b944a092794b9683a"
         "38'/>" % (NS_CONF, room))
    a.message(b.jid, None, type_=None, id_="inv1", extra=x)
    got = b.expect("message", id="inv1")
    inv = got.find(q(NS_CONF, "x"))
    assert inv is not None, tostr(got)
    assert inv.get("jid") == room and inv.get("password") == "cauldronburn"
    assert inv.get("reason").startswith("Hey Hecate") and inv.get("continue") == "true"
    assert inv.get("thread").startswith("e0ffe42b")
    assert got.get("from") == a.jid
