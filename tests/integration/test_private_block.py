"""XEP-0049 private XML storage (bookmarks and the like) and XEP-0191 blocking."""

from helpers import q, stanza_error, tostr

NS_PRIVATE = "jabber:iq:private"
NS_BM = "storage:bookmarks"
NS_BLOCK = "urn:xmpp:blocking"
NS_BLOCK_ERR = "urn:xmpp:blocking:errors"


# ---- private storage


def test_private_roundtrip_and_restart(server, login):
    jid, pw = server.add_user()
    c = login(jid, pw)
    res = c.iq("get", "<query xmlns='%s'><storage xmlns='%s'/></query>" % (NS_PRIVATE, NS_BM),
               check=True)
    st = res.find("%s/%s" % (q(NS_PRIVATE, "query"), q(NS_BM, "storage")))
    assert st is not None and len(st) == 0, "nothing stored: the empty element comes back"
    c.iq("set", "<query xmlns='%s'><storage xmlns='%s'><conference jid='room@conference.localhost'"
         " autojoin='true' name='R&amp;D'><nick>me</nick></conference></storage></query>"
         % (NS_PRIVATE, NS_BM), check=True)
    server.restart()
    c = login(jid, pw)
    res = c.iq("get", "<query xmlns='%s'><storage xmlns='%s'/></query>" % (NS_PRIVATE, NS_BM),
               check=True)
    conf = res.find("%s/%s/%s" % (q(NS_PRIVATE, "query"), q(NS_BM, "storage"),
                                  q(NS_BM, "conference")))
    assert conf is not None, tostr(res)
    assert conf.get("name") == "R&D" and conf.findtext(q(NS_BM, "nick")) == "me"


def test_private_is_per_account_and_checked(login):
    a = login()
    b = login()
    a.iq("set", "<query xmlns='%s'><x xmlns='urn:example:a'>secret</x></query>" % NS_PRIVATE,
         check=True)
    res = b.iq("get", "<query xmlns='%s'><x xmlns='urn:example:a'/></query>" % NS_PRIVATE,
               check=True)
    x = res.find("%s/{urn:example:a}x" % q(NS_PRIVATE, "query"))
    assert x is not None and not (x.text or ""), "b must not see a's data"
    for bad in ("", "<a xmlns='urn:x'/><b xmlns='urn:y'/>", "<x xmlns='jabber:iq:roster'/>"):
        res = b.iq("set", "<query xmlns='%s'>%s</query>" % (NS_PRIVATE, bad))
        assert stanza_error(res)[1] == "not-acceptable", tostr(res)


# ---- blocking


def blocklist(c):
    res = c.iq("get", "<blocklist xmlns='%s'/>" % NS_BLOCK, check=True)
    return sorted(i.get("jid") for i in res.find(q(NS_BLOCK, "blocklist")))


def test_block_and_unblock(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw, presence=True)
    other = login(jid, pw, presence=True)
    blocklist(other)  # other resource asks for the list: it gets pushes
    b = login(presence=True)
    assert blocklist(a) == []
    a.iq("set", "<block xmlns='%s'><item jid='%s'/></block>" % (NS_BLOCK, b.bare), check=True)
    push = other.expect("iq", pred=lambda e: e.find(q(NS_BLOCK, "block")) is not None)
    assert push.find(q(NS_BLOCK, "block"))[0].get("jid") == b.bare
    assert blocklist(a) == [b.bare]
    # b's messages don't arrive; b is told
    b.message(a.jid, "let me in", id_="blk")
    err = b.expect("message", id="blk", type="error")
    assert stanza_error(err)[1] == "service-unavailable"
    a.no_stanza("message")
    # a cannot write to b either (XEP-0191 section 3.5)
    a.message(b.jid, "hello?", id_="out")
    err = a.expect("message", id="out", type="error")
    assert stanza_error(err)[1] == "not-acceptable"
    assert err.find("%s/%s" % (q("jabber:client", "error"), q(NS_BLOCK_ERR, "blocked"))) \
        is not None, tostr(err)
    # survives a restart
    server.restart()
    a = login(jid, pw, presence=True)
    assert blocklist(a) == [b.bare]
    a.iq("set", "<unblock xmlns='%s'/>" % NS_BLOCK, check=True)  # everything
    assert blocklist(a) == []


def test_domain_block_matches_everyone_there(login):
    a = login(presence=True)
    b = login(presence=True)
    a.iq("set", "<block xmlns='%s'><item jid='%s'/></block>" % (NS_BLOCK, b.domain),
         check=True)
    b.message(a.jid, "x", id_="d")
    assert stanza_error(b.expect("message", id="d", type="error"))[1] == "service-unavailable"
    # but the account itself is never blocked by it
    a.message(a.jid, "note to self")
    a.expect_message(body="note to self")


def test_block_errors(login):
    c = login()
    res = c.iq("set", "<block xmlns='%s'/>" % NS_BLOCK)
    assert stanza_error(res)[1] == "bad-request"
    res = c.iq("set", "<block xmlns='%s'><item jid='a@@b'/></block>" % NS_BLOCK)
    assert stanza_error(res)[1] == "jid-malformed"


# ---- vcard-temp (XEP-0054)

NS_VCARD = "vcard-temp"


def test_vcard_set_get_and_read_by_others(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw)
    res = a.iq("get", "<vCard xmlns='%s'/>" % NS_VCARD, check=True)
    v = res.find(q(NS_VCARD, "vCard"))
    assert v is not None and len(v) == 0, "no vCard yet: an empty one"
    a.iq("set", "<vCard xmlns='%s'><FN>Alice Example</FN><NICKNAME>ali</NICKNAME></vCard>"
         % NS_VCARD, check=True)
    b = login()
    res = b.iq("get", "<vCard xmlns='%s'/>" % NS_VCARD, to=jid, check=True)
    assert res.get("from") == jid
    assert res.findtext("%s/%s" % (q(NS_VCARD, "vCard"), q(NS_VCARD, "FN"))) == "Alice Example"
    # only the owner writes it
    res = b.iq("set", "<vCard xmlns='%s'><FN>Mallory</FN></vCard>" % NS_VCARD, to=jid)
    assert stanza_error(res)[1] == "forbidden"
    server.restart()
    a = login(jid, pw)
    res = a.iq("get", "<vCard xmlns='%s'/>" % NS_VCARD, check=True)
    assert res.findtext("%s/%s" % (q(NS_VCARD, "vCard"), q(NS_VCARD, "NICKNAME"))) == "ali"
