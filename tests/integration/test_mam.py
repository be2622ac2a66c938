"""XEP-0313 message archive with XEP-0359 stanza ids and XEP-0059 paging: every chat
message is in its sender's and its recipient's archive, and any device of theirs can page
through it by conversation and time."""

import time

from helpers import NS_CLIENT, q, stanza_error, tostr

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"


def form(**fields):
    xs = "".join("<field var='%s'><value>%s</value></field>" % (k, v) for k, v in fields.items())
    return ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
            "<value>%s</value></field>%s</x>" % (NS_MAM, xs))


def query(c, rsm="", qid="q1", **fields):
    """Runs a MAM query; returns ([(archive id, inner message)], fin element)."""
    res = c.iq("set", "<query xmlns='%s' queryid='%s'>%s%s</query>"
               % (NS_MAM, qid, form(**fields) if fields else "", rsm), timeout=10)
    assert res.get("type") == "result", tostr(res)
    fin = res.find(q(NS_MAM, "fin"))
    assert fin is not None, tostr(res)
    out = []
    while True:
        m = c.wait_for("message", pred=lambda e: e.find(q(NS_MAM, "result")) is not None,
                       timeout=0.2)
        if m is None:
            break
        r = m.find(q(NS_MAM, "result"))
        assert r.get("queryid") == qid and m.get("from") == c.bare, tostr(m)
        fwd = r.find(q(NS_FWD, "forwarded"))
        assert fwd.find(q(NS_DELAY, "delay")).get("stamp"), tostr(m)
        out.append((r.get("id"), fwd.find(q(NS_CLIENT, "message"))))
    return out, fin


def bodies(items):
    return [m.findtext(q(NS_CLIENT, "body")) for _, m in items]


def rsm(max_=None, after=None, before=None):
    x = ""
    if max_ is not None:
        x += "<max>%d</max>" % max_
    if after is not None:
        x += "<after>%s</after>" % after
    if before is not None:
        x += "<before>%s</before>" % before if before else "<before/>"
    return "<set xmlns='%s'>%s</set>" % (NS_RSM, x)


def test_feature_on_account(login):
    c = login()
    res = c.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=c.bare,
               check=True)
    feats = [f.get("var") for f in res.iter() if f.tag.endswith("feature")]
    assert NS_MAM in feats and NS_SID in feats


def test_both_sides_archived_with_stanza_id(login):
    a = login(presence=True)
    b = login(presence=True)
    a.message(b.jid, "hello b")
    m = b.expect_message(body="hello b")
    sid = m.find(q(NS_SID, "stanza-id"))
    assert sid is not None and sid.get("by") == b.bare, tostr(m)
    items, fin = query(b)
    assert bodies(items) == ["hello b"] and fin.get("complete") == "true"
    assert items[0][0] == sid.get("id"), "the archive id is the stanza-id the recipient saw"
    assert items[0][1].get("from") == a.jid
    items, _ = query(a)
    assert bodies(items) == ["hello b"] and items[0][1].get("to") == b.jid


def test_client_cannot_forge_stanza_ids(login):
    a = login(presence=True)
    b = login(presence=True)
    a.message(b.jid, "forged", extra="<stanza-id xmlns='%s' by='%s' id='666'/>" % (NS_SID, b.bare))
    m = b.expect_message(body="forged")
    ids = [s.get("id") for s in m.findall(q(NS_SID, "stanza-id"))]
    assert "666" not in ids and len(ids) == 1, tostr(m)


def test_paging_forward_and_last_page(login):
    a = login(presence=True)
    b = login(presence=True)
    for i in range(25):
        a.message(b.jid, "m%02d" % i)
    b.expect_message(body="m24", timeout=10)
    b.drain()
    seen = []
    after = None
    for page in range(3):
        items, fin = query(b, rsm(10, after=after), qid="p%d" % page)
        seen += bodies(items)
        after = fin.find("%s/%s" % (q(NS_RSM, "set"), q(NS_RSM, "last"))).text
        assert (fin.get("complete") == "true") == (page == 2), (page, tostr(fin))
    assert seen == ["m%02d" % i for i in range(25)]
    # the last page first (XEP-0059 2.5), still in chronological order
    items, fin = query(b, rsm(10, before=""), qid="last")
    assert bodies(items) == ["m%02d" % i for i in range(15, 25)]
    first = fin.find("%s/%s" % (q(NS_RSM, "set"), q(NS_RSM, "first"))).text
    items, fin = query(b, rsm(10, before=first), qid="prev")
    assert bodies(items) == ["m%02d" % i for i in range(5, 15)]
    assert fin.get("complete") != "true"


def test_filter_by_with_and_time(login):
    a = login(presence=True)
    b = login(presence=True)
    c = login(presence=True)
    a.message(b.jid, "from a")
    b.expect_message(body="from a")  # two senders race; this fixes which came first
    c.message(b.jid, "from c")
    b.expect_message(body="from c")
    items, _ = query(b, **{"with": c.bare})
    assert bodies(items) == ["from c"]
    items, fin = query(b, start="2999-01-01T00:00:00Z")
    assert items == [] and fin.get("complete") == "true"
    items, _ = query(b, end="2000-01-01T00:00:00.000+01:00")
    assert items == []
    items, _ = query(b, start=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600)))
    assert bodies(items) == ["from a", "from c"]


def test_bad_queries(login):
    c = login()
    res = c.iq("set", "<query xmlns='%s'>%s</query>" % (NS_MAM, rsm(10, after="nope")))
    assert stanza_error(res)[1] == "item-not-found"
    res = c.iq("set", "<query xmlns='%s'>%s</query>" % (NS_MAM, form(start="yesterday")))
    assert stanza_error(res)[1] == "bad-request"
    res = c.iq("get", "<query xmlns='%s'/>" % NS_MAM, check=True)
    assert res.find("%s/{jabber:x:data}x" % q(NS_MAM, "query")) is not None


def test_offline_message_archived_once(server, login):
    a = login(presence=True)
    jid, pw = server.add_user()
    a.message(jid, "while you were away")
    a.sync()
    b = login(jid, pw, presence=True)
    m = b.expect_message(body="while you were away")
    assert m.find(q(NS_SID, "stanza-id")) is not None
    items, _ = query(b)
    assert bodies(items) == ["while you were away"]


def test_archive_survives_restart(server, login):
    a = login(presence=True)
    jid, pw = server.add_user()
    b = login(jid, pw, presence=True)
    a.message(b.jid, "keep me")
    b.expect_message(body="keep me")
    time.sleep(0.3)  # the archive write is asynchronous
    server.restart()
    b2 = login(jid, pw)
    items, _ = query(b2)
    assert bodies(items) == ["keep me"]
