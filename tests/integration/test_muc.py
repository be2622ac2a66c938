"""XEP-0045 multi-user chat at conference.<domain>: joining (presence order, status codes, join
errors), groupchat and private messages, history and subject, leaving, nick changes, kick and
ban, owner configuration, destruction, persistence across a restart, and mediated invitations.

Sections are cited by their XEP-0045 title and anchor (e.g. 'Presence Broadcast' #enter-pres),
which stay stable across revisions of the XEP where the section numbers do not.
Every test uses rooms of its own (unique names), so tests do not see each other's traffic.
"""

from xml.sax.saxutils import escape, quoteattr

from helpers import NS_CLIENT, NS_DISCO_INFO, NS_DISCO_ITEMS, bare, q, stanza_error, tostr, unique

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = NS_MUC + "#user"
NS_MUC_ADMIN = NS_MUC + "#admin"
NS_MUC_OWNER = NS_MUC + "#owner"
NS_ROOMCONFIG = NS_MUC + "#roomconfig"
NS_DATA = "jabber:x:data"
NS_DELAY = "urn:xmpp:delay"


# ---------------------------------------------------------------------------------------------
# helpers


def service(server):
    return "conference." + server.domain


def new_room(server, prefix="room"):
    return "%s@%s" % (unique(prefix), service(server))


def user_x(el):
    return el.find(q(NS_MUC_USER, "x"))


def codes(el):
    """The muc#user status codes of a stanza, as a set of ints."""
    x = user_x(el)
    if x is None:
        return set()
    return {int(s.get("code")) for s in x.findall(q(NS_MUC_USER, "status"))}


def item(el):
    x = user_x(el)
    it = None if x is None else x.find(q(NS_MUC_USER, "item"))
    assert it is not None, "no muc#user <item/> in %s" % tostr(el)
    return it


def from_room(room):
    return lambda e: bare(e.get("from")) == room


def is_subject(e):
    return (e.tag == q(NS_CLIENT, "message") and e.find(q(NS_CLIENT, "subject")) is not None
            and e.find(q(NS_CLIENT, "body")) is None)


def body(e):
    return e.findtext(q(NS_CLIENT, "body"))


def room_stanzas(c, room, until, timeout=5, what="room stanza"):
    """The stanzas from room (bare JID) in arrival order, up to and including the first one
    for which until(el) holds; stanzas from elsewhere stay in c's backlog."""
    out = []
    while True:
        el = c.expect(pred=from_room(room), timeout=timeout, what=what)
        out.append(el)
        if until(el):
            return out


def send_join(c, room, nick, password=None, history=None, extra=""):
    # what the room sent before (e.g. during an earlier stay) is not part of this join
    c.backlog = [e for e in c.backlog if not from_room(room)(e)]
    inner = ""
    if password is not None:
        inner += "<password>%s</password>" % escape(password)
    if history is not None:
        inner += "<history maxstanzas='%d'/>" % history
    c.send_presence(to="%s/%s" % (room, nick),
                    extra="<x xmlns='%s'>%s</x>%s" % (NS_MUC, inner, extra))


class Joined:
    """What a successful join delivered: occupants' presence, own presence, history, subject."""

    def __init__(self, room, nick, stanzas):
        self.room, self.nick = room, nick
        own = "%s/%s" % (room, nick)
        kinds = [(e.tag, e.get("type")) for e in stanzas]
        assert all(t != "error" for _, t in kinds), \
            "join of %s failed: %s" % (own, [tostr(e) for e in stanzas])
        self_idx = [i for i, e in enumerate(stanzas)
                    if e.tag == q(NS_CLIENT, "presence") and 110 in codes(e)]
        assert self_idx, "no own presence with status 110: %s" % [tostr(e) for e in stanzas]
        i = self_idx[0]
        self.me = stanzas[i]
        assert self.me.get("from") == own, "own presence from %s, expected %s" % (
            self.me.get("from"), own)
        # 'Presence Broadcast' (#enter-pres): all existing occupants first, then own presence
        self.others = stanzas[:i]
        for e in self.others:
            assert e.tag == q(NS_CLIENT, "presence") and e.get("type") is None, \
                "before own presence only occupants' presence may come: %s" % tostr(e)
        # then history (#enter-history), then the subject (#enter-subject), which ends the join
        rest = stanzas[i + 1:]
        assert rest and is_subject(rest[-1]), \
            "the join must end with the subject message: %s" % [tostr(e) for e in rest]
        self.subject = rest[-1]
        self.history = rest[:-1]
        for e in self.history:
            assert e.tag == q(NS_CLIENT, "message") and e.get("type") == "groupchat", \
                "between own presence and subject only history may come: %s" % tostr(e)
            assert e.find(q(NS_DELAY, "delay")) is not None, "history without <delay/>: %s" \
                % tostr(e)
        self.codes = codes(self.me)
        self.item = item(self.me)

    def other_nicks(self):
        return sorted(e.get("from").split("/", 1)[1] for e in self.others)

    def subject_text(self):
        return self.subject.findtext(q(NS_CLIENT, "subject")) or ""


def join(c, room, nick, **kw):
    send_join(c, room, nick, **kw)
    stanzas = room_stanzas(c, room, lambda e: is_subject(e) or e.get("type") == "error",
                           what="join of %s/%s up to the subject" % (room, nick))
    return Joined(room, nick, stanzas)


def join_error(c, room, nick, **kw):
    """Joins expecting a presence error; returns (error type, condition)."""
    send_join(c, room, nick, **kw)
    el = c.expect("presence", pred=lambda e: from_room(room)(e), what="answer to the join")
    assert el.get("type") == "error", "join of %s/%s should fail, got %s" % (room, nick, tostr(el))
    return stanza_error(el)


def expect_pres(c, room, nick, type_=None, what=None):
    return c.expect("presence", frm="%s/%s" % (room, nick),
                    pred=lambda e: e.get("type") == type_,
                    what=what or "presence type=%s from %s/%s" % (type_, room, nick))


def groupchat(c, room, text):
    return c.message(room, text, type_="groupchat")


def expect_groupchat(c, room, nick, text):
    return c.expect("message", frm="%s/%s" % (room, nick),
                    pred=lambda e: e.get("type") == "groupchat" and body(e) == text,
                    what="groupchat %r from %s" % (text, nick))


def admin_set(c, room, items):
    return c.iq("set", "<query xmlns='%s'>%s</query>" % (NS_MUC_ADMIN, items), to=room)


def kick(c, room, nick):
    return admin_set(c, room, "<item nick=%s role='none'><reason>out</reason></item>"
                     % quoteattr(nick))


def set_affiliation(c, room, jid, affiliation):
    return admin_set(c, room, "<item jid=%s affiliation='%s'/>" % (quoteattr(jid), affiliation))


def get_config(c, room):
    return c.iq("get", "<query xmlns='%s'/>" % NS_MUC_OWNER, to=room)


def form_fields(res):
    """{var: [values]} of the data form in an owner query result."""
    x = res.find("%s/%s" % (q(NS_MUC_OWNER, "query"), q(NS_DATA, "x")))
    assert x is not None, "no data form: %s" % tostr(res)
    return x, {f.get("var"): [v.text or "" for v in f.findall(q(NS_DATA, "value"))]
               for f in x.findall(q(NS_DATA, "field"))}


def configure(c, room, check=True, **fields):
    """Submits the room configuration form with fields (muc#roomconfig_<name>=value)."""
    parts = ["<field var='FORM_TYPE'><value>%s</value></field>" % NS_ROOMCONFIG]
    for k, v in fields.items():
        if isinstance(v, bool):
            v = "1" if v else "0"
        parts.append("<field var='muc#roomconfig_%s'><value>%s</value></field>"
                     % (k, escape(str(v))))
    res = c.iq("set", "<query xmlns='%s'><x xmlns='%s' type='submit'>%s</x></query>"
               % (NS_MUC_OWNER, NS_DATA, "".join(parts)), to=room)
    if check:
        assert res.get("type") == "result", "configuration of %s refused: %s" % (room, tostr(res))
    return res


def disco_items(c, jid):
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=jid, check=True)
    return [i.get("jid") for i in res.iter(q(NS_DISCO_ITEMS, "item"))]


def iq_error(res):
    assert res.get("type") == "error", "expected an error: %s" % tostr(res)
    return stanza_error(res)


# ---------------------------------------------------------------------------------------------
# discovery


def test_disco_info_of_the_service(server, login):
    # 'Discovering a MUC Service' (#disco-service)
    c = login(presence=True)
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=service(server), check=True)
    ids = [(i.get("category"), i.get("type")) for i in res.iter(q(NS_DISCO_INFO, "identity"))]
    assert ("conference", "text") in ids, tostr(res)
    assert NS_MUC in [f.get("var") for f in res.iter(q(NS_DISCO_INFO, "feature"))], tostr(res)


def test_disco_info_of_a_room(server, login):
    # 'Querying for Room Information' (#disco-roominfo): the room's identity and the muc feature
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    configure(a, room, roomname="Info Room", membersonly=True)
    res = b.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room, check=True)
    ids = [(i.get("category"), i.get("type")) for i in res.iter(q(NS_DISCO_INFO, "identity"))]
    assert ("conference", "text") in ids, tostr(res)
    feats = [f.get("var") for f in res.iter(q(NS_DISCO_INFO, "feature"))]
    assert NS_MUC in feats, tostr(res)
    assert "muc_membersonly" in feats and "muc_open" not in feats, tostr(res)


# ---------------------------------------------------------------------------------------------
# entering and leaving


def test_create_and_join(server, login):
    a = login(presence=True)
    b = login(presence=True)
    room = new_room(server)
    # 'Creating an Instant Room' (#createroom-instant): 201, owner, moderator
    ja = join(a, room, "alice")
    assert ja.others == [] and ja.history == []
    assert ja.codes >= {110, 201}, tostr(ja.me)
    assert (ja.item.get("affiliation"), ja.item.get("role")) == ("owner", "moderator")

    jb = join(b, room, "bob")
    assert 201 not in jb.codes, "201 only for the creator: %s" % tostr(jb.me)
    assert (jb.item.get("affiliation"), jb.item.get("role")) == ("none", "participant")
    assert jb.other_nicks() == ["alice"]
    alice = item(jb.others[0])
    assert (alice.get("affiliation"), alice.get("role")) == ("owner", "moderator")
    # 'Semi-Anonymous Rooms' (#enter-semianon): only moderators see real JIDs
    assert alice.get("jid") is None, "a participant sees a real JID: %s" % tostr(jb.others[0])

    p = expect_pres(a, room, "bob")
    assert 110 not in codes(p)
    assert bare(item(p).get("jid")) == b.bare, "a moderator sees the real JID: %s" % tostr(p)
    a.no_stanza(pred=from_room(room), timeout=0.3)


def test_third_occupant_sees_everyone_first(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "one")
    join(b, room, "two")
    jc = join(c, room, "three")
    assert jc.other_nicks() == ["one", "two"]
    for who in (a, b):
        expect_pres(who, room, "three")


def test_nick_conflict(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "same")
    # 'Nickname Conflict' (#enter-conflict): <conflict/>, type cancel
    assert join_error(b, room, "same") == ("cancel", "conflict")
    a.no_stanza(pred=from_room(room), timeout=0.3)
    join(b, room, "other")


def test_join_without_nick_refused(server, login):
    a = login(presence=True)
    room = new_room(server)
    # 'Groupchat 1.0 Protocol' (#enter-gc): no room nickname -> <jid-malformed/>, type modify
    a.send_presence(to=room, extra="<x xmlns='%s'/>" % NS_MUC)
    el = a.expect("presence", pred=from_room(room), what="answer to a join without nick")
    assert stanza_error(el) == ("modify", "jid-malformed"), tostr(el)


def test_presence_update_in_room(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "a")
    join(b, room, "b")
    a.drain()
    b.send_presence(to=room + "/b", show="away", status="brb")
    # 'Changing Availability Status' (#changepres): broadcast to every occupant
    for who in (a, b):
        p = expect_pres(who, room, "b")
        assert p.findtext(q(NS_CLIENT, "show")) == "away", tostr(p)
        assert p.findtext(q(NS_CLIENT, "status")) == "brb", tostr(p)
    # not a new join: no subject or history again
    b.no_stanza("message", pred=from_room(room), timeout=0.3)


def test_leave(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "stays")
    join(b, room, "goes")
    a.drain()
    b.send_presence(to=room + "/goes", type_="unavailable")
    # 'Exiting a Room' (#exit): unavailable to everyone, 110 to the leaver, role none
    mine = expect_pres(b, room, "goes", "unavailable")
    assert 110 in codes(mine), tostr(mine)
    theirs = expect_pres(a, room, "goes", "unavailable")
    assert 110 not in codes(theirs) and item(theirs).get("role") == "none", tostr(theirs)
    groupchat(a, room, "after you left")
    expect_groupchat(a, room, "stays", "after you left")
    b.no_stanza("message", pred=from_room(room), timeout=0.4)


def test_disconnect_leaves_the_room(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "stays")
    join(b, room, "drops")
    a.drain()
    b.close()
    # 'Exiting a Room' (#exit): the user's server sends unavailable presence on its behalf
    expect_pres(a, room, "drops", "unavailable")
    c = login(presence=True)
    jc = join(c, room, "drops")  # the nick is free again
    assert jc.other_nicks() == ["stays"]


def test_empty_room_disappears(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "first")
    groupchat(a, room, "forget me")
    expect_groupchat(a, room, "first", "forget me")
    a.send_presence(to=room + "/first", type_="unavailable")
    expect_pres(a, room, "first", "unavailable")
    # 'Exiting a Room' (#exit): the last occupant leaving a non-persistent room destroys it
    jb = join(b, room, "second")
    assert 201 in jb.codes, "the room should be created anew: %s" % tostr(jb.me)
    assert jb.item.get("affiliation") == "owner"
    assert jb.history == [], "a recreated room has no history"


def test_nick_change(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "watcher")
    join(b, room, "old")
    a.drain()
    b.send_presence(to=room + "/new")
    # 'Changing Nickname' (#changenick): unavailable from the old nick with 303 and the new
    # nick, then available from the new one; 110 to the occupant itself
    for c, self_ in ((a, False), (b, True)):
        seq = room_stanzas(c, room, lambda e: e.get("from") == room + "/new",
                           what="nick change to new")
        gone = [e for e in seq if e.get("from") == room + "/old"]
        assert len(gone) == 1 and gone[0].get("type") == "unavailable", [tostr(e) for e in seq]
        assert 303 in codes(gone[0]) and item(gone[0]).get("nick") == "new", tostr(gone[0])
        assert (110 in codes(gone[0])) == self_, tostr(gone[0])
        assert seq[-1].get("type") is None and (110 in codes(seq[-1])) == self_, tostr(seq[-1])
    groupchat(b, room, "renamed")
    expect_groupchat(a, room, "new", "renamed")
    # the old nick is free, the new one taken
    c = login(presence=True)
    assert join_error(c, room, "new") == ("cancel", "conflict")
    join(c, room, "old")


def test_nick_change_to_taken_nick_refused(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "taken")
    join(b, room, "mine")
    a.drain()
    b.send_presence(to=room + "/taken")
    # 'Changing Nickname' (#changenick): nick in use -> <conflict/>, type cancel; no change
    el = b.expect("presence", pred=from_room(room), what="answer to the nick change")
    assert stanza_error(el) == ("cancel", "conflict"), tostr(el)
    a.no_stanza("presence", pred=from_room(room), timeout=0.3)
    groupchat(b, room, "still mine")
    expect_groupchat(a, room, "mine", "still mine")


# ---------------------------------------------------------------------------------------------
# messages, history, subject


def test_groupchat_reaches_all_occupants(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "a")
    join(b, room, "b")
    groupchat(a, room, "hello room")
    # 'Sending a Message to All Occupants' (#message): reflected to everyone, sender included
    for c in (a, b):
        m = expect_groupchat(c, room, "a", "hello room")
        assert m.get("to") == c.jid, tostr(m)


def test_groupchat_from_non_occupant_refused(server, login):
    a, outsider = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "a")
    mid = groupchat(outsider, room, "let me in")
    # #message: not an occupant -> <not-acceptable/>, not reflected
    err = outsider.expect_error("message", id_=mid)
    assert err[1] == "not-acceptable", err
    a.no_stanza("message", pred=lambda e: body(e) == "let me in", timeout=0.4)


def test_private_message(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "a")
    join(b, room, "b")
    join(c, room, "c")
    b.message(room + "/a", "psst", type_="chat")
    # 'Sending a Private Message' (#privatemessage): from the sender's room JID to the
    # recipient's full JID, nobody else
    m = a.expect_message(frm=room + "/b", body="psst")
    assert m.get("to") == a.jid and m.get("type") == "chat", tostr(m)
    c.no_stanza("message", pred=lambda e: body(e) == "psst", timeout=0.3)
    b.no_stanza("message", pred=lambda e: body(e) == "psst", timeout=0.1)


def test_private_message_errors(server, login):
    a, b, outsider = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "a")
    join(b, room, "b")
    # 'Sending a Private Message' (#privatemessage): type groupchat to an occupant ->
    # <bad-request/>; to a nick nobody has -> <item-not-found/>; from a non-occupant ->
    # <not-acceptable/>
    got = {}
    mid = b.message(room + "/a", "not like this", type_="groupchat")
    got["groupchat type"] = b.expect_error("message", id_=mid)[1]
    mid = b.message(room + "/nobody", "hello?", type_="chat")
    got["unknown nick"] = b.expect_error("message", id_=mid)[1]
    mid = outsider.message(room + "/a", "from outside", type_="chat")
    got["non-occupant"] = outsider.expect_error("message", id_=mid)[1]
    assert got == {"groupchat type": "bad-request", "unknown nick": "item-not-found",
                   "non-occupant": "not-acceptable"}
    a.no_stanza("message", pred=from_room(room), timeout=0.4)


def test_history_on_join(server, login):
    a, b, c, d = (login(presence=True) for _ in range(4))
    room = new_room(server)
    join(a, room, "talker")
    texts = ["h%d" % i for i in range(25)]
    for t in texts:
        groupchat(a, room, t)
    for t in texts:
        expect_groupchat(a, room, "talker", t)
    # 'Discussion History' (#enter-history): after presence, with <delay/>; 20 by default
    jb = join(b, room, "reader")
    assert [body(m) for m in jb.history] == texts[-20:]
    for m in jb.history:
        assert m.get("from") == room + "/talker", tostr(m)
        d_from = m.find(q(NS_DELAY, "delay")).get("from")
        # semi-anonymous: the delay 'from' MUST NOT be the sender's real JID
        assert bare(d_from) != a.bare, "history reveals the real JID: %s" % tostr(m)
    # 'Managing Discussion History' (#enter-managehistory): maxstanzas
    jc = join(c, room, "few", history=3)
    assert [body(m) for m in jc.history] == texts[-3:]
    jd = join(d, room, "none", history=0)
    assert jd.history == []


def test_subject(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    ja = join(a, room, "mod")
    assert ja.subject_text() == ""
    join(b, room, "part")
    a.message(room, None, type_="groupchat", extra="<subject>Today: witches</subject>")
    # 'Modifying the Room Subject' (#subject-mod): broadcast to all occupants from the
    # changer's room JID, without a body
    for who in (a, b):
        m = who.expect("message", pred=is_subject, frm=room + "/mod",
                       what="subject broadcast")
        assert m.findtext(q(NS_CLIENT, "subject")) == "Today: witches"
    # a new occupant gets the subject as the last stanza of its join (#enter-subject)
    jc = join(c, room, "late")
    assert jc.subject_text() == "Today: witches"
    assert jc.history == [], "a subject change is not history: %s" % [tostr(m) for m in jc.history]


def test_subject_change_by_participant_refused_when_not_allowed(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "mod")
    configure(a, room, changesubject=False)
    join(b, room, "part")
    mid = b.message(room, None, type_="groupchat", extra="<subject>mine now</subject>")
    # #subject-mod: without the privilege -> <forbidden/>
    err = b.expect_error("message", id_=mid)
    assert err[1] == "forbidden", err
    a.no_stanza("message", pred=is_subject, timeout=0.3)


# ---------------------------------------------------------------------------------------------
# moderation


def test_kick(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "mod")
    join(b, room, "victim")
    join(c, room, "witness")
    a.drain()
    # 'Kicking an Occupant' (#kick): result to the moderator, 307 to everyone, 110 to the victim
    res = kick(a, room, "victim")
    assert res.get("type") == "result", tostr(res)
    p = expect_pres(b, room, "victim", "unavailable")
    assert {307, 110} <= codes(p), tostr(p)
    assert item(p).get("role") == "none", tostr(p)
    for who in (a, c):
        p = expect_pres(who, room, "victim", "unavailable")
        assert 307 in codes(p) and 110 not in codes(p), tostr(p)
    groupchat(c, room, "gone?")
    expect_groupchat(a, room, "witness", "gone?")
    b.no_stanza("message", pred=from_room(room), timeout=0.3)
    # a kick is not a ban
    join(b, room, "victim")


def test_kick_by_participant_forbidden(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    join(b, room, "rebel")
    a.drain()
    # #kick: only moderators may kick -> <forbidden/>
    assert iq_error(kick(b, room, "owner"))[1] == "forbidden"
    a.no_stanza("presence", pred=from_room(room), timeout=0.3)


def test_ban(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "admin")
    join(b, room, "bystander")
    join(c, room, "troll")
    a.drain()
    b.drain()
    # 'Banning a User' (#ban): by bare JID; 301 to the banned occupant and to the others
    res = set_affiliation(a, room, c.bare, "outcast")
    assert res.get("type") == "result", tostr(res)
    p = expect_pres(c, room, "troll", "unavailable")
    assert 301 in codes(p) and item(p).get("affiliation") == "outcast", tostr(p)
    for who in (a, b):
        p = expect_pres(who, room, "troll", "unavailable")
        assert 301 in codes(p), tostr(p)
    # 'Banned Users' (#enter-banned): <forbidden/>, type auth, for any resource
    assert join_error(c, room, "troll") == ("auth", "forbidden")
    jid, pw = c.bare, c.password
    other = login(jid, pw, resource="second", presence=True)
    assert join_error(other, room, "sneaky") == ("auth", "forbidden")
    # 'Modifying the Ban List' (#modifyban): the ban list holds the bare JID
    res = a.iq("get", "<query xmlns='%s'><item affiliation='outcast'/></query>" % NS_MUC_ADMIN,
               to=room, check=True)
    listed = [(i.get("jid"), i.get("affiliation")) for i in res.iter(q(NS_MUC_ADMIN, "item"))]
    assert listed == [(c.bare, "outcast")], tostr(res)
    # a participant may not read it (#admin: MUST be denied with <forbidden/>)
    res = b.iq("get", "<query xmlns='%s'><item affiliation='outcast'/></query>" % NS_MUC_ADMIN,
               to=room)
    assert iq_error(res)[1] == "forbidden"
    # lifting the ban lets the user in again
    assert set_affiliation(a, room, c.bare, "none").get("type") == "result"
    join(c, room, "troll")


def test_ban_by_participant_forbidden(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    join(b, room, "part")
    join(c, room, "target")
    # #admin: affiliation changes need an admin or owner -> <forbidden/>
    assert iq_error(set_affiliation(b, room, c.bare, "outcast"))[1] == "forbidden"
    c.no_stanza("presence", pred=lambda e: e.get("type") == "unavailable", timeout=0.3)


def test_self_ban_refused(server, login):
    a = login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    # 'Banning a User' (#ban): banning oneself -> <conflict/>
    assert iq_error(set_affiliation(a, room, a.bare, "outcast"))[1] == "conflict"
    groupchat(a, room, "still here")
    expect_groupchat(a, room, "owner", "still here")


def test_sole_owner_cannot_abdicate(server, login):
    a = login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    # 'Subsequent Room Configuration' (#roomconfig): the only owner may not give up ownership
    assert iq_error(set_affiliation(a, room, a.bare, "member"))[1] == "conflict"
    assert get_config(a, room).get("type") == "result", "still the owner"


def test_grant_membership_to_occupant_is_broadcast(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    join(b, room, "guest")
    a.drain()
    assert set_affiliation(a, room, b.bare, "member").get("type") == "result"
    # 'Granting Membership' (#grantmember): updated presence of the occupant to everyone
    for who in (a, b):
        p = expect_pres(who, room, "guest")
        assert item(p).get("affiliation") == "member", tostr(p)


def test_moderated_room_visitor_cannot_speak(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    configure(a, room, moderatedroom=True)
    # 'Default Roles' (#enter-roles): affiliation none in a moderated room -> visitor
    jb = join(b, room, "quiet")
    assert jb.item.get("role") == "visitor", tostr(jb.me)
    groupchat(b, room, "can you hear me")
    # 'Sending a Message to All Occupants' (#message): a visitor's message MUST NOT be
    # reflected (the service MAY answer <forbidden/>)
    a.no_stanza("message", pred=lambda e: body(e) == "can you hear me", timeout=0.5)
    groupchat(a, room, "owners speak")
    expect_groupchat(b, room, "owner", "owners speak")


def test_members_only_conversion_removes_non_members(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    join(b, room, "member")
    join(c, room, "visitor")
    assert set_affiliation(a, room, b.bare, "member").get("type") == "result"
    a.drain()
    b.drain()
    configure(a, room, membersonly=True)
    # 'Subsequent Room Configuration' (#roomconfig): non-members are removed with 322, and the
    # remaining occupants are told so
    p = expect_pres(c, room, "visitor", "unavailable")
    assert 322 in codes(p), tostr(p)
    for who in (a, b):
        p = expect_pres(who, room, "visitor", "unavailable")
        assert 322 in codes(p), tostr(p)
    b.no_stanza("presence", pred=lambda e: e.get("type") == "unavailable", timeout=0.3)


# ---------------------------------------------------------------------------------------------
# owner configuration


def test_config_form(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    join(b, room, "guest")
    # 'Subsequent Room Configuration' (#roomconfig): a muc#roomconfig form
    res = get_config(a, room)
    assert res.get("type") == "result", tostr(res)
    x, fields = form_fields(res)
    assert x.get("type") == "form", tostr(x)
    assert fields.get("FORM_TYPE") == [NS_ROOMCONFIG], tostr(x)
    for name in ("roomname", "persistentroom", "membersonly", "passwordprotectedroom",
                 "roomsecret", "maxusers", "publicroom", "changesubject", "moderatedroom"):
        assert "muc#roomconfig_" + name in fields, "no %s field: %s" % (name, tostr(x))
    configure(a, room, roomname="The Dark Cave")
    _, fields = form_fields(get_config(a, room))
    assert fields["muc#roomconfig_roomname"] == ["The Dark Cave"]
    # #roomconfig: only owners -> <forbidden/>
    assert iq_error(get_config(b, room))[1] == "forbidden"
    assert iq_error(configure(b, room, check=False, roomname="Mine"))[1] == "forbidden"
    _, fields = form_fields(get_config(a, room))
    assert fields["muc#roomconfig_roomname"] == ["The Dark Cave"]


def test_members_only(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    configure(a, room, membersonly=True)
    # 'Members-Only Rooms' (#enter-members): <registration-required/>, type auth
    assert join_error(b, room, "b") == ("auth", "registration-required")
    # 'Granting Membership' (#grantmember)
    assert set_affiliation(a, room, b.bare, "member").get("type") == "result"
    jb = join(b, room, "b")
    assert (jb.item.get("affiliation"), jb.item.get("role")) == ("member", "participant")
    res = a.iq("get", "<query xmlns='%s'><item affiliation='member'/></query>" % NS_MUC_ADMIN,
               to=room, check=True)
    assert [i.get("jid") for i in res.iter(q(NS_MUC_ADMIN, "item"))] == [b.bare], tostr(res)


def test_password_protected(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    configure(a, room, passwordprotectedroom=True, roomsecret="cauldronburn")
    # 'Password-Protected Rooms' (#enter-pw): missing or wrong -> <not-authorized/>, type auth
    assert join_error(b, room, "b") == ("auth", "not-authorized")
    assert join_error(b, room, "b", password="wrong") == ("auth", "not-authorized")
    jb = join(b, room, "b", password="cauldronburn")
    assert jb.other_nicks() == ["owner"]


def test_max_users(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    configure(a, room, maxusers=2)
    join(b, room, "second")
    # 'Max Users' (#enter-maxusers): <service-unavailable/>, type wait
    assert join_error(c, room, "third") == ("wait", "service-unavailable")
    b.send_presence(to=room + "/second", type_="unavailable")
    expect_pres(b, room, "second", "unavailable")
    join(c, room, "third")


def test_max_users_does_not_keep_the_owner_out(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    configure(a, room, maxusers=2)
    join(b, room, "second")
    a.send_presence(to=room + "/owner", type_="unavailable")
    expect_pres(a, room, "owner", "unavailable")
    join(c, room, "third")
    # 'Max Users' (#enter-maxusers): a room MUST always allow entry by an admin or owner
    ja = join(a, room, "owner")
    assert ja.other_nicks() == ["second", "third"]


def test_destroy(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "owner")
    join(b, room, "guest")
    a.drain()
    # 'Destroying a Room' (#destroyroom): only an owner
    res = b.iq("set", "<query xmlns='%s'><destroy/></query>" % NS_MUC_OWNER, to=room)
    assert iq_error(res)[1] == "forbidden"
    res = a.iq("set", "<query xmlns='%s'><destroy><reason>closing</reason></destroy></query>"
               % NS_MUC_OWNER, to=room)
    assert res.get("type") == "result", tostr(res)
    for who, nick in ((a, "owner"), (b, "guest")):
        # every occupant: unavailable from its own room JID with <destroy/>
        p = expect_pres(who, room, nick, "unavailable")
        x = user_x(p)
        assert x is not None and x.find(q(NS_MUC_USER, "destroy")) is not None, tostr(p)
        assert x.findtext("%s/%s" % (q(NS_MUC_USER, "destroy"), q(NS_MUC_USER, "reason"))) \
            == "closing", tostr(p)
    mid = groupchat(b, room, "anyone?")
    assert b.expect_error("message", id_=mid)[1] is not None
    jc = join(c, room, "newcomer")
    assert 201 in jc.codes and jc.other_nicks() == [], "the room is gone: %s" % tostr(jc.me)


def test_destroy_persistent_room(server, login):
    a = login(presence=True)
    room = new_room(server, "gone")
    join(a, room, "owner")
    configure(a, room, persistentroom=True, publicroom=True, roomname="Doomed")
    assert room in disco_items(a, service(server))
    res = a.iq("set", "<query xmlns='%s'><destroy/></query>" % NS_MUC_OWNER, to=room)
    assert res.get("type") == "result", tostr(res)
    expect_pres(a, room, "owner", "unavailable")
    # 'Destroying a Room' (#destroyroom): a destroyed persistent room is gone for good
    assert room not in disco_items(a, service(server))
    ja = join(a, room, "owner")
    assert 201 in ja.codes, tostr(ja.me)
    _, fields = form_fields(get_config(a, room))
    assert fields["muc#roomconfig_roomname"] != ["Doomed"], "old configuration came back"


# ---------------------------------------------------------------------------------------------
# invitations


def invite(c, room, to, reason):
    c.send("<message to=%s><x xmlns='%s'><invite to=%s><reason>%s</reason></invite></x>"
           "</message>" % (quoteattr(room), NS_MUC_USER, quoteattr(to), escape(reason)))


def expect_invite(c, room, inviter):
    m = c.expect("message", pred=lambda e: e.get("from") == room and user_x(e) is not None
                 and user_x(e).find(q(NS_MUC_USER, "invite")) is not None, what="invitation")
    inv = user_x(m).find(q(NS_MUC_USER, "invite"))
    # 'Mediated Invitation' (#invite): 'from' is the invitor's bare, full or room JID
    assert bare(inv.get("from")) == inviter.bare or bare(inv.get("from")) == room, tostr(m)
    return inv


def test_mediated_invitation(server, login):
    a, b = login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "host")
    invite(a, room, b.bare, "come in")
    inv = expect_invite(b, room, a)
    assert inv.findtext(q(NS_MUC_USER, "reason")) == "come in", tostr(inv)
    assert bare(inv.get("from")) == a.bare, "the invitee gets the inviter's real JID"


def test_invitation_to_members_only_room_grants_membership(server, login):
    a, b, c = login(presence=True), login(presence=True), login(presence=True)
    room = new_room(server)
    join(a, room, "host")
    configure(a, room, membersonly=True)
    invite(a, room, b.bare, "members only")
    expect_invite(b, room, a)
    # #invite: in a members-only room the service MAY add the invitee to the member list
    jb = join(b, room, "guest")
    assert jb.item.get("affiliation") == "member", tostr(jb.me)
    assert join_error(c, room, "uninvited") == ("auth", "registration-required")


# ---------------------------------------------------------------------------------------------
# persistence (last: it restarts the module's server)


def test_persistent_room_survives_restart(server, login):
    owner_jid, owner_pw = server.add_user()
    member_jid, member_pw = server.add_user()
    banned_jid, banned_pw = server.add_user()
    a = login(owner_jid, owner_pw, presence=True)
    room = new_room(server, "persist")
    hidden = new_room(server, "hidden")
    join(a, room, "owner")
    join(a, hidden, "owner")
    configure(a, hidden, persistentroom=True, publicroom=False)
    configure(a, room, persistentroom=True, publicroom=True, membersonly=True,
              roomname="Kept")
    assert set_affiliation(a, room, member_jid, "member").get("type") == "result"
    assert set_affiliation(a, room, banned_jid, "outcast").get("type") == "result"
    a.message(room, None, type_="groupchat", extra="<subject>still here</subject>")
    a.expect("message", pred=is_subject, frm=room + "/owner")
    # 'Discovering Rooms' (#disco-rooms): public rooms are listed, hidden ones are not
    items = disco_items(a, service(server))
    assert room in items and hidden not in items, items
    a.send_presence(to=room + "/owner", type_="unavailable")
    expect_pres(a, room, "owner", "unavailable")
    assert room in disco_items(a, service(server)), "an empty persistent room must stay"
    a.close()

    server.restart()

    c = login(presence=True)
    items = disco_items(c, service(server))
    assert room in items and hidden not in items, items
    assert join_error(c, room, "stranger") == ("auth", "registration-required")
    banned = login(banned_jid, banned_pw, presence=True)
    assert join_error(banned, room, "banned") == ("auth", "forbidden")
    m = login(member_jid, member_pw, presence=True)
    jm = join(m, room, "member")
    assert 201 not in jm.codes, "the room should exist: %s" % tostr(jm.me)
    assert jm.item.get("affiliation") == "member"
    assert jm.subject_text() == "still here"
    a = login(owner_jid, owner_pw, presence=True)
    ja = join(a, room, "owner")
    assert ja.item.get("affiliation") == "owner", tostr(ja.me)
    _, fields = form_fields(get_config(a, room))
    assert fields["muc#roomconfig_roomname"] == ["Kept"]
    assert fields["muc#roomconfig_persistentroom"] in (["1"], ["true"])
    assert fields["muc#roomconfig_membersonly"] in (["1"], ["true"])
    jh = join(c, hidden, "visitor")  # the hidden persistent room survived too
    assert 201 not in jh.codes and jh.other_nicks() == [], tostr(jh.me)
