"""XEP-0313 for XEP-0045 rooms: groupchat messages carry a stanza-id given by the room
and can be paged through in the room's archive."""

import time

from helpers import NS_CLIENT, q, stanza_error, tostr, unique

NS_MUC = "http://jabber.org/protocol/muc"
NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"


def join(c, room, nick):
    c.send("<presence to='%s/%s'><x xmlns='%s'/></presence>" % (room, nick, NS_MUC))
    c.expect("message", pred=lambda e: e.find(q(NS_CLIENT, "subject")) is not None)


def query(c, room, rsm=""):
    res = c.iq("set", "<query xmlns='%s' queryid='rq'>%s</query>" % (NS_MAM, rsm), to=room,
               timeout=10)
    items = []
    while True:
        m = c.wait_for("message", pred=lambda e: e.find(q(NS_MAM, "result")) is not None,
                       timeout=0.3)
        if m is None:
            break
        r = m.find(q(NS_MAM, "result"))
        assert m.get("from") == room, tostr(m)
        items.append((r.get("id"), r.find("%s/%s" % (q(NS_FWD, "forwarded"),
                                                     q(NS_CLIENT, "message")))))
    return res, items


def test_room_archive(login):
    room = "%s@conference.localhost" % unique("arc")
    a = login(presence=True)
    b = login(presence=True)
    join(a, room, "anna")
    join(b, room, "bert")
    for i in range(12):
        (a if i % 2 else b).send("<message to='%s' type='groupchat'><body>r%02d</body></message>"
                                 % (room, i))
    # two senders race to the room: the room's order is the order occupants see
    got = [b.expect("message", pred=lambda e: e.find(q(NS_CLIENT, "body")) is not None)
           for _ in range(12)]
    order = [m.findtext(q(NS_CLIENT, "body")) for m in got]
    assert sorted(order) == ["r%02d" % i for i in range(12)]
    sid = got[0].find(q(NS_SID, "stanza-id"))
    assert sid is not None and sid.get("by") == room, tostr(got[0])
    time.sleep(0.3)
    res, items = query(b, room, "<set xmlns='%s'><max>5</max></set>" % NS_RSM)
    assert res.get("type") == "result", tostr(res)
    assert [m.findtext(q(NS_CLIENT, "body")) for _, m in items] == order[:5]
    assert items[0][0] == sid.get("id"), "archive id is the stanza-id occupants saw"
    assert items[0][1].get("from") == got[0].get("from")
    fin = res.find(q(NS_MAM, "fin"))
    assert fin.get("complete") != "true"
    last = fin.find("%s/%s" % (q(NS_RSM, "set"), q(NS_RSM, "last"))).text
    res, items = query(b, room, "<set xmlns='%s'><max>50</max><after>%s</after></set>"
                       % (NS_RSM, last))
    assert len(items) == 7 and res.find(q(NS_MAM, "fin")).get("complete") == "true"


def test_members_only_room_archive_is_private(login):
    room = "%s@conference.localhost" % unique("priv")
    owner = login(presence=True)
    join(owner, room, "boss")
    owner.iq("set", "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data'"
             " type='submit'><field var='muc#roomconfig_membersonly'><value>1</value></field>"
             "</x></query>", to=room, check=True)
    stranger = login(presence=True)
    res, items = query(stranger, room)
    assert res.get("type") == "error" and stanza_error(res)[1] == "forbidden", tostr(res)
    assert items == []


def test_history_of_persistent_room_survives_restart(server, login):
    room = "%s@conference.localhost" % unique("keep")
    jid, pw = server.add_user()
    a = login(jid, pw, presence=True)
    join(a, room, "anna")
    a.iq("set", "<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data'"
         " type='submit'><field var='muc#roomconfig_persistentroom'><value>1</value></field>"
         "</x></query>", to=room, check=True)
    a.send("<message to='%s' type='groupchat'><body>before the restart</body></message>" % room)
    a.expect("message", pred=lambda e: e.findtext(q(NS_CLIENT, "body")) == "before the restart")
    time.sleep(0.3)
    server.restart()
    b = login(presence=True)
    b.send("<presence to='%s/bert'><x xmlns='%s'/></presence>" % (room, NS_MUC))
    h = b.expect("message", pred=lambda e: e.findtext(q(NS_CLIENT, "body")) == "before the restart")
    assert h.find("{urn:xmpp:delay}delay") is not None, tostr(h)
    assert h.get("from") == room + "/anna"
