"""XEP-0045 beyond talking: iqs relayed to occupants through their room JIDs (and the answers
back, without leaking real JIDs), vCards of occupants, voice requests in moderated rooms,
registration with a room, and the status 104 notice of a configuration change.

Sections are cited by their XEP-0045 title and anchor, as in test_muc.py.
"""

from helpers import NS_CLIENT, q, stanza_error, tostr
from test_muc import (NS_DATA, NS_MUC_USER, body, codes, configure, expect_groupchat,
                      expect_pres, groupchat, join, new_room)

NS_REQUEST = "http://jabber.org/protocol/muc#request"
NS_REGISTER = "jabber:iq:register"
NS_VCARD = "vcard-temp"


def test_iq_to_an_occupant_is_relayed_both_ways(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "alice")
    join(b, room, "bob")
    a.send("<iq type='get' id='v1' to='%s/bob'><query xmlns='jabber:iq:version'/></iq>" % room)
    req = b.expect("iq", pred=lambda e: e.get("type") == "get", what="the relayed request")
    # The target sees the asker's room JID, never its real JID.
    assert req.get("from") == room + "/alice", tostr(req)
    assert req.get("id") != "v1"
    b.send("<iq type='result' id='%s' to='%s'><query xmlns='jabber:iq:version'>"
           "<name>bobclient</name></query></iq>" % (req.get("id"), req.get("from")))
    res = a.expect("iq", pred=lambda e: e.get("id") == "v1", what="the relayed answer")
    assert res.get("type") == "result" and res.get("from") == room + "/bob", tostr(res)
    assert res.findtext(".//{jabber:iq:version}name") == "bobclient"


def test_vcard_of_an_occupant_comes_from_its_account(server, login):
    a, b = login(presence=True), login(presence=True)
    b.iq("set", "<vCard xmlns='%s'><FN>Bob Builder</FN></vCard>" % NS_VCARD, check=True)
    room = new_room(server)
    join(a, room, "alice")
    join(b, room, "bob")
    res = a.iq("get", "<vCard xmlns='%s'/>" % NS_VCARD, to=room + "/bob")
    assert res.get("type") == "result", tostr(res)
    assert res.get("from") == room + "/bob"
    assert res.findtext(".//{vcard-temp}FN") == "Bob Builder"


def test_relay_errors(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "alice")
    res = a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=room + "/nobody")
    assert stanza_error(res)[1] == "item-not-found", tostr(res)
    # Not an occupant: no relaying for strangers.
    res = c.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=room + "/alice")
    assert stanza_error(res)[1] == "not-acceptable", tostr(res)
    # An answer from someone the request did not go to is dropped.
    join(b, room, "bob")
    a.send("<iq type='get' id='p1' to='%s/bob'><ping xmlns='urn:xmpp:ping'/></iq>" % room)
    req = b.expect("iq", pred=lambda e: e.get("type") == "get")
    c.send("<iq type='result' id='%s' to='%s/alice'/>" % (req.get("id"), room))
    a.no_stanza("iq", pred=lambda e: e.get("id") == "p1", timeout=0.5)
    b.send("<iq type='result' id='%s' to='%s/alice'/>" % (req.get("id"), room))
    assert a.expect("iq", pred=lambda e: e.get("id") == "p1").get("type") == "result"


def voice_request_form():
    return ("<x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>%s</value></field>"
            "<field var='muc#role'><value>participant</value></field></x>" % (NS_DATA, NS_REQUEST))


def test_voice_request_approved_by_a_moderator(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    configure(a, room, moderatedroom=True)
    jb = join(b, room, "quiet")
    assert jb.item.get("role") == "visitor"
    a.drain()
    # 'Requesting Voice' (#requestvoice): the form goes to the moderators.
    b.send("<message to='%s'>%s</message>" % (room, voice_request_form()))
    m = a.expect("message", pred=lambda e: e.find(q(NS_DATA, "x")) is not None,
                 what="the voice request")
    fields = {f.get("var"): f.findtext(q(NS_DATA, "value"))
              for f in m.find(q(NS_DATA, "x")).findall(q(NS_DATA, "field"))}
    assert fields["FORM_TYPE"] == NS_REQUEST and fields["muc#roomnick"] == "quiet"
    assert fields["muc#jid"] == b.jid
    # 'Approving Voice Requests' (#voiceapprove)
    a.send("<message to='%s'><x xmlns='%s' type='submit'>"
           "<field var='FORM_TYPE'><value>%s</value></field>"
           "<field var='muc#role'><value>participant</value></field>"
           "<field var='muc#roomnick'><value>quiet</value></field>"
           "<field var='muc#request_allow'><value>true</value></field></x></message>"
           % (room, NS_DATA, NS_REQUEST))
    p = expect_pres(b, room, "quiet")
    assert p.find(q(NS_MUC_USER, "x")).find(q(NS_MUC_USER, "item")).get("role") == "participant"
    groupchat(b, room, "now I may speak")
    expect_groupchat(a, room, "quiet", "now I may speak")


def test_registration_with_a_room(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    res = b.iq("get", "<query xmlns='%s'/>" % NS_REGISTER, to=room, check=True)
    x = res.find(".//" + q(NS_DATA, "x"))
    assert x is not None and any(f.get("var") == "muc#register_roomnick"
                                 for f in x.findall(q(NS_DATA, "field"))), tostr(res)
    res = b.iq("set", "<query xmlns='%s'/>" % NS_REGISTER, to=room)
    assert stanza_error(res)[1] == "bad-request"
    res = b.iq("set", "<query xmlns='%s'><x xmlns='%s' type='submit'>"
               "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value>"
               "</field><field var='muc#register_roomnick'><value>bobby</value></field>"
               "</x></query>" % (NS_REGISTER, NS_DATA), to=room, check=True)
    res = b.iq("get", "<query xmlns='%s'/>" % NS_REGISTER, to=room, check=True)
    assert res.find(".//{%s}registered" % NS_REGISTER) is not None, tostr(res)
    members = a.iq("get", "<query xmlns='http://jabber.org/protocol/muc#admin'>"
                   "<item affiliation='member'/></query>", to=room, check=True)
    assert b.bare in [i.get("jid") for i in members.iter()], tostr(members)


def test_configuration_change_notice(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    join(b, room, "guest")
    configure(a, room, roomname="A new name")
    m = b.expect("message", pred=lambda e: e.get("from") == room and 104 in codes(e),
                 what="status 104")
    assert m.get("type") == "groupchat" and body(m) is None
