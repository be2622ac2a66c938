"""Message routing against a real batond (RFC 6121 section 8): full and bare JIDs, resource
priorities, unavailable resources, unknown users and domains, the message types of 8.5, and
content passing through intact.

Invariant: every test uses fresh accounts. Behaviour that changes when offline storage
(XEP-0160) arrives is isolated in offline_case() and switched by OFFLINE_STORAGE.
"""

import pytest

from helpers import NS_CLIENT, q, stanza_error, tostr

SERVER_OPTS = {"domain": "localhost"}

# True: batond stores messages for users without an available resource (XEP-0160, RFC 6121
# 8.5.2.2.1 first option; see test_offline.py). False: it answers <service-unavailable/> (the
# second option of 8.5.2.2.1).
OFFLINE_STORAGE = True


def offline_case(sender, id_, server, login, rjid, rpw, body):
    """Checks what happens to a chat message sent (with id_) to rjid while it has no available
    resource with non-negative priority."""
    if not OFFLINE_STORAGE:
        assert sender.expect_error("message", id_) == ("cancel", "service-unavailable")
    else:
        sender.no_stanza("message", type="error", id=id_)
        r = login(rjid, rpw, presence=True)
        m = r.expect_message(body=body)
        assert m.find("{urn:xmpp:delay}delay") is not None, tostr(m)  # XEP-0203
        r.close()  # no longer available: what a test sends next is stored again


def avail(login, jid, pw, resource, priority):
    c = login(jid, pw, resource=resource)
    c.send_presence(priority=priority)
    c.sync()
    return c


def test_chat_to_full_jid_slixmpp(slixclient):
    a = slixclient()
    b = slixclient()
    a.send_message(b.jid, "Art thou not Romeo?")
    m = b.wait_message(frm=a.jid, body="Art thou not Romeo?")
    assert m["type"] == "chat" and m["to"] == b.jid
    b.send_message(a.jid, "Neither, fair saint")
    a.wait_message(frm=b.jid, body="Neither, fair saint")


def test_chat_to_bare_jid_slixmpp(slixclient):
    a = slixclient()
    b = slixclient()
    b.send_presence()
    a.send_message(b.jid.split("/")[0], "to your bare JID")
    b.wait_message(frm=a.jid, body="to your bare JID")


def test_bare_jid_goes_to_highest_priority(server, login):
    a = login()
    jid, pw = server.add_user()
    hi = avail(login, jid, pw, "hi", 5)
    lo = avail(login, jid, pw, "lo", 1)
    for t in ("chat", "normal", None):
        a.message(jid, "prio %s" % t, type_=t)
        hi.expect_message(frm=a.jid, body="prio %s" % t)  # RFC 6121 8.5.2.1.1
    lo.no_stanza("message")


def test_bare_jid_equal_priorities_all_receive(server, login):
    a = login()
    jid, pw = server.add_user()
    one = avail(login, jid, pw, "one", 3)
    two = avail(login, jid, pw, "two", 3)
    a.message(jid, "both of you")
    one.expect_message(frm=a.jid, body="both of you")
    two.expect_message(frm=a.jid, body="both of you")


def test_priority_change_moves_delivery(server, login):
    a = login()
    jid, pw = server.add_user()
    one = avail(login, jid, pw, "one", 5)
    two = avail(login, jid, pw, "two", 1)
    two.send_presence(priority=10)
    two.sync()
    a.message(jid, "now two")
    two.expect_message(frm=a.jid, body="now two")
    one.no_stanza("message")


def test_negative_priority_gets_no_bare_messages(server, login):
    a = login()
    jid, pw = server.add_user()
    neg = avail(login, jid, pw, "neg", -1)
    id_ = a.message(jid, "to bare, only a negative resource")
    neg.no_stanza("message")  # RFC 6121 8.5.2.1.1: never to negative priority
    offline_case(a, id_, None, login, jid, pw, "to bare, only a negative resource")
    # but a message to its full JID is delivered (8.5.3.1)
    a.message(neg.jid, "to full")
    neg.expect_message(frm=a.jid, body="to full")


def test_connected_but_not_available_gets_no_bare_messages(server, login):
    a = login()
    jid, pw = server.add_user()
    quiet = login(jid, pw)  # bound, no initial presence: not an available resource
    id_ = a.message(jid, "anyone there?")
    quiet.no_stanza("message")
    offline_case(a, id_, server, login, jid, pw, "anyone there?")


def test_full_jid_of_unavailable_resource_goes_to_bare(server, login):
    a = login()
    jid, pw = server.add_user()
    b = avail(login, jid, pw, "here", 0)
    a.message(jid + "/gone", "where art thou")
    # RFC 6121 8.5.3.2.1: chat/normal to a full JID with no such resource is treated as if
    # addressed to the bare JID
    b.expect_message(frm=a.jid, body="where art thou")


def test_message_to_user_without_resources(server, login):
    a = login()
    jid, pw = server.add_user()
    id_ = a.message(jid, "are you offline?")
    offline_case(a, id_, server, login, jid, pw, "are you offline?")
    id2 = a.message(jid + "/res", "full JID, offline")
    offline_case(a, id2, server, login, jid, pw, "full JID, offline")


def test_message_to_unknown_user(login):
    a = login()
    to = "nosuchuser@localhost"
    id_ = a.message(to, "hello?")
    err = a.expect("message", type="error", id=id_)
    assert stanza_error(err) == ("cancel", "service-unavailable"), tostr(err)  # 8.5.1
    assert err.get("from") == to, "error not from the original 'to': %s" % tostr(err)
    assert err.get("to") == a.jid, tostr(err)


def test_message_to_remote_domain(login):
    a = login()
    id_ = a.message("someone@nonexistent.invalid", "far away")
    err = a.expect("message", type="error", id=id_, timeout=10)
    assert stanza_error(err)[1] == "remote-server-not-found", tostr(err)  # RFC 6120 8.3.3.16


def test_message_to_own_domain(login):
    a = login()
    id_ = a.message("localhost", "to the server", type_="chat")
    # the server itself handles no messages: an error or silence, never a crash
    a.wait_for("message", type="error", id=id_, timeout=1)
    a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to="localhost", check=True)


def test_error_message_is_never_bounced(login):
    a = login()
    a.message("nosuchuser@localhost", "oops", type_="error")
    a.no_stanza("message")  # RFC 6120 8.3.1: never answer an error with an error


def test_groupchat_to_bare_jid_is_refused(server, login):
    a = login()
    jid, pw = server.add_user()
    b = avail(login, jid, pw, "r", 1)
    id_ = a.message(jid, "not a room", type_="groupchat")
    assert a.expect_error("message", id_) == ("cancel", "service-unavailable")  # 8.5.2.1.1
    b.no_stanza("message")


def test_headline_to_bare_jid_goes_to_all(server, login):
    a = login()
    jid, pw = server.add_user()
    one = avail(login, jid, pw, "one", 5)
    two = avail(login, jid, pw, "two", 0)
    neg = avail(login, jid, pw, "neg", -5)
    a.message(jid, "news", type_="headline")
    one.expect_message(frm=a.jid, body="news")  # 8.5.2.1.1: all non-negative resources
    two.expect_message(frm=a.jid, body="news")
    neg.no_stanza("message")


def test_headline_to_offline_user_is_dropped(server, login):
    a = login()
    jid, _ = server.add_user()
    a.message(jid, "stale news", type_="headline")
    a.no_stanza("message")  # 8.5.2.2.1: silently ignored


def test_between_own_resources(server, login):
    jid, pw = server.add_user()
    one = login(jid, pw, resource="one")
    two = login(jid, pw, resource="two")
    one.message(two.jid, "note to self")
    m = two.expect_message(frm=one.jid, body="note to self")
    assert m.get("to") == two.jid


def test_content_passes_through_intact(login):
    a = login()
    b = login()
    body = "<tag> & \"quotes\" 'apos' \u00e9\u00e8 \u2603 \U0001F600 ]]> \t tab"
    a.message(b.jid, body, extra="<x xmlns='urn:example:test' a='1&amp;2'><y>t&lt;</y></x>"
              "<thread>th1</thread>")
    m = b.expect_message(frm=a.jid)
    assert m.findtext(q(NS_CLIENT, "body")) == body
    assert m.findtext(q(NS_CLIENT, "thread")) == "th1"
    x = m.find("{urn:example:test}x")
    assert x is not None and x.get("a") == "1&2", tostr(m)
    assert x.findtext("{urn:example:test}y") == "t<", tostr(m)


def test_xml_lang_and_id_preserved(login):
    a = login()
    b = login()
    a.send("<message to='%s' id='abc-123' type='chat' xml:lang='fr'><body>bonjour</body>"
           "</message>" % b.jid)
    m = b.expect_message(frm=a.jid, body="bonjour")
    assert m.get("id") == "abc-123"
    assert m.get("{http://www.w3.org/XML/1998/namespace}lang") in ("fr", None), tostr(m)


def test_large_message(login):
    a = login()
    b = login()
    body = "x" * 100000  # under the default limits.stanza_size of 256k
    a.message(b.jid, body)
    m = b.expect_message(frm=a.jid, timeout=10)
    assert m.findtext(q(NS_CLIENT, "body")) == body


def test_order_is_preserved(login):
    a = login()
    b = login()
    for i in range(200):
        a.message(b.jid, "m%d" % i)
    got = []
    while len(got) < 200:
        m = b.expect("message", frm=a.jid, timeout=10)
        got.append(m.findtext(q(NS_CLIENT, "body")))
    assert got == ["m%d" % i for i in range(200)]


@pytest.mark.parametrize("n", [6])
def test_many_users_chatting(login, n):
    users = [login() for _ in range(n)]
    for u in users:
        for v in users:
            if u is not v:
                u.message(v.jid, "from %s" % u.jid)
    for v in users:
        senders = set()
        for _ in range(n - 1):
            m = v.expect("message", timeout=10)
            senders.add(m.get("from"))
        assert senders == {u.jid for u in users if u is not v}
