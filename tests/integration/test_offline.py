"""Offline messages against a real batond (XEP-0160, XEP-0203 delay stamps, XEP-0334 hints,
RFC 6121 8.5.2.2.1): what is stored for a user without an available resource, its delivery in
order on initial presence, deletion only after a grace period, quota, expiry, restarts and
account deletion.

Invariant: every test uses fresh accounts, and a message is only asserted to be absent after
something else sent later by the same sender (a marker) has arrived or a bounded wait passed.
"""

import datetime
import queue
import re
import time
from xml.sax.saxutils import escape

import pytest

import slix
from conftest import start_server
from helpers import NS_CLIENT, NS_DISCO_INFO, q, stanza_error, stop_and_check, tostr, unique

DOMAIN = "localhost"
GRACE = 1.0  # offline.grace of the module's server, in seconds
SERVER_OPTS = {"domain": DOMAIN, "sets": ["offline.grace=%ds" % GRACE]}

NS_DELAY = "urn:xmpp:delay"
NS_HINTS = "urn:xmpp:hints"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_RECEIPTS = "urn:xmpp:receipts"

# XEP-0082 DateTime profile in UTC, with the milliseconds batond promises
STAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def body_of(m):
    return m.findtext(q(NS_CLIENT, "body"))


def check_delay(m, t0, t1, slack=1.5):
    """Asserts m carries an XEP-0203 <delay/> from the server, stamped between t0 and t1
    (wall-clock seconds, with slack); returns the stamp as seconds since the epoch."""
    d = m.find(q(NS_DELAY, "delay"))
    assert d is not None, "stored message without <delay/> (XEP-0203): %s" % tostr(m)
    assert d.get("from") == DOMAIN, "delay not from the server's domain: %s" % tostr(m)
    stamp = d.get("stamp") or ""
    assert STAMP_RE.match(stamp), "stamp %r is not YYYY-MM-DDThh:mm:ss.sssZ" % stamp
    t = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert t0 - slack <= t <= t1 + slack, \
        "stamp %s is not the time of storing (between %s and %s UTC)" % (
            stamp, datetime.datetime.utcfromtimestamp(t0).isoformat(),
            datetime.datetime.utcfromtimestamp(t1).isoformat())
    return t


def receive(c, n, timeout=5):
    """The next n messages c receives, in arrival order."""
    return [c.expect("message", timeout=timeout, what="stored message %d of %d" % (i + 1, n))
            for i in range(n)]


def no_errors(sender, ids, timeout=0.3):
    """Asserts the sender got no error for any of ids (stored messages are not bounced)."""
    sender.no_stanza("message", pred=lambda e: e.get("type") == "error" and e.get("id") in ids,
                     timeout=timeout)


def store(a, to, bodies, type_="chat"):
    """a sends one message per body to `to`; returns their ids, after checking no error came
    back."""
    ids = [a.message(to, b, type_=type_) for b in bodies]
    a.sync()
    no_errors(a, ids)
    return ids


def online(login, jid, pw, priority=None, **kw):
    """Logs jid in and sends initial presence (optionally with a priority)."""
    c = login(jid, pw, **kw)
    c.send_presence(priority=priority)
    return c


def test_stored_and_delivered_on_initial_presence(server, login):
    a = login()
    jid, pw = server.add_user()
    t0 = time.time()
    sent = [  # (to, type, body): every type that is stored, to the bare and to a gone resource
        (jid, "chat", "one"), (jid, "normal", "two"), (jid, None, "three"),
        (jid + "/gone", "chat", "four"), (jid + "/gone", None, "five")]
    ids = [a.message(to, body, type_=t) for to, t, body in sent]
    a.sync()
    no_errors(a, ids)
    t1 = time.time()
    b = online(login, jid, pw)
    got = receive(b, len(sent))
    for m, (to, t, body), id_ in zip(got, sent, ids):
        assert (body_of(m), m.get("id")) == (body, id_), \
            "stored messages out of order or altered: %s" % [tostr(x) for x in got]
        assert m.get("from") == a.jid, tostr(m)
        assert m.get("to") == to, "original 'to' not kept: %s" % tostr(m)
        assert (m.get("type") or None) == t, "original type not kept: %s" % tostr(m)
        check_delay(m, t0, t1)
    b.no_stanza("message")


def test_fifty_in_order(server, login):
    a = login()
    jid, pw = server.add_user()
    bodies = ["m%d" % i for i in range(50)]
    store(a, jid, bodies)
    b = online(login, jid, pw)
    got = [body_of(m) for m in receive(b, len(bodies))]
    assert got == bodies


def test_bound_without_presence_gets_nothing(server, login):
    a = login()
    jid, pw = server.add_user()
    quiet = login(jid, pw, resource="quiet")  # bound, never sends presence
    store(a, jid, ["for later"])
    quiet.no_stanza("message")
    # a message to its full JID is delivered at once (RFC 6121 8.5.3.1), not stored
    a.message(quiet.jid, "direct")
    m = quiet.expect_message(frm=a.jid, body="direct")
    assert m.find(q(NS_DELAY, "delay")) is None, tostr(m)
    # the stored one still waits; the direct one was never stored
    b = online(login, jid, pw, resource="avail")
    m = b.expect_message(frm=a.jid)
    assert body_of(m) == "for later", tostr(m)
    b.no_stanza("message")
    quiet.no_stanza("message")


def test_negative_priority_gets_nothing(server, login):
    a = login()
    jid, pw = server.add_user()
    neg = online(login, jid, pw, priority=-1, resource="neg")
    neg.sync()
    store(a, jid, ["not for negatives"])
    neg.no_stanza("message")
    # a stored message waits for a session with non-negative priority
    zero = online(login, jid, pw, priority=0, resource="zero")
    zero.expect_message(frm=a.jid, body="not for negatives")
    neg.no_stanza("message")


def test_what_is_stored_and_what_is_not(server, login):
    a = login()
    jid, pw = server.add_user()
    stored, silent = [], []
    # stored: a body, a subject alone, a receipt alone, a <store/> hint alone, a chat state
    # with a body (XEP-0160, XEP-0334, XEP-0184, XEP-0085)
    stored.append(a.message(jid, "with body"))
    stored.append(a.message(jid, None, type_="normal", extra="<subject>only a subject</subject>"))
    stored.append(a.message(jid, None, extra="<received xmlns='%s' id='x1'/>" % NS_RECEIPTS))
    stored.append(a.message(jid, None, extra="<store xmlns='%s'/>" % NS_HINTS))
    stored.append(a.message(jid, "typing done", extra="<active xmlns='%s'/>" % NS_CHATSTATES))
    # not stored, no answer: headline and error (RFC 6121 8.5.2.2.1, RFC 6120 8.3.1), chat
    # states without a body (XEP-0085 5.6)
    silent.append(a.message(jid, "news", type_="headline"))
    silent.append(a.message(jid, "an error", type_="error"))
    for state in ("composing", "active", "paused"):
        silent.append(a.message(jid, None, extra="<%s xmlns='%s'/>" % (state, NS_CHATSTATES)))
    # not stored, with an error: groupchat (8.5.2.2.1), the <no-store/> hint (XEP-0334)
    gc = a.message(jid, "not a room", type_="groupchat")
    nostore = a.message(jid, "ephemeral", extra="<no-store xmlns='%s'/>" % NS_HINTS)
    assert a.expect_error("message", gc) == ("cancel", "service-unavailable")
    assert a.expect_error("message", nostore) == ("cancel", "service-unavailable")
    a.sync()
    no_errors(a, stored + silent)
    b = online(login, jid, pw)
    got = receive(b, len(stored))
    assert [m.get("id") for m in got] == stored, \
        "wrong messages stored: %s" % [tostr(m) for m in got]
    for m in got:
        assert m.find(q(NS_DELAY, "delay")) is not None, tostr(m)
    assert got[1].findtext(q(NS_CLIENT, "subject")) == "only a subject", tostr(got[1])
    assert got[2].find(q(NS_RECEIPTS, "received")) is not None, tostr(got[2])
    assert got[3].find(q(NS_HINTS, "store")) is not None, tostr(got[3])
    b.no_stanza("message")


def test_content_survives_storage(server, login):
    a = login()
    jid, pw = server.add_user()
    body = "<tag> & \"quotes\" 'apos' \u00e9 \u2603 \U0001F600 ]]> \t tab"
    big = "z" * 100000
    a.send("<message to='%s' id='c1' type='chat' xml:lang='fr'><body>%s</body>"
           "<thread>th1</thread><x xmlns='urn:example:test' a='1&amp;2'><y>t&lt;</y></x>"
           "</message>" % (jid, escape(body)))
    a.message(jid, big, id_="c2")
    a.sync()
    no_errors(a, ["c1", "c2"])
    b = online(login, jid, pw)
    m, m2 = receive(b, 2)
    assert m.get("id") == "c1" and body_of(m) == body, tostr(m)
    assert m.findtext(q(NS_CLIENT, "thread")) == "th1", tostr(m)
    x = m.find("{urn:example:test}x")
    assert x is not None and x.get("a") == "1&2", tostr(m)
    assert x.findtext("{urn:example:test}y") == "t<", tostr(m)
    assert m.get("{http://www.w3.org/XML/1998/namespace}lang") in ("fr", None), tostr(m)
    assert m2.get("id") == "c2" and body_of(m2) == big


def test_more_than_a_page_in_order_and_deleted_once(server, login):
    a = login()
    jid, pw = server.add_user()
    n = 450  # more than one storage page (batond loads them 200 at a time)
    ids = [a.message(jid, "p%d" % i) for i in range(n)]
    a.sync()
    no_errors(a, ids)
    b = online(login, jid, pw)
    got = [body_of(m) for m in receive(b, n, timeout=10)]
    assert got == ["p%d" % i for i in range(n)], "paged delivery out of order or incomplete"
    b.no_stanza("message", timeout=0.5)
    time.sleep(GRACE + 0.5)
    b.sync()
    b.close()
    c = online(login, jid, pw)
    c.no_stanza("message", timeout=1.0)


def test_presence_update_is_not_a_second_delivery(server, login):
    a = login()
    jid, pw = server.add_user()
    store(a, jid, ["just once"])
    b = online(login, jid, pw)
    b.expect_message(body="just once")
    b.send_presence(show="away", priority=1)  # an update, not initial presence
    b.sync()
    b.no_stanza("message")


def test_stored_while_unavailable_after_delivery_is_kept(server, login):
    a = login()
    jid, pw = server.add_user()
    store(a, jid, ["old"])
    b = online(login, jid, pw)
    b.expect_message(body="old")
    b.send_presence(type_="unavailable")  # stays connected, no longer available
    b.sync()
    store(a, jid, ["new"])  # stored while the old one is still waiting for its grace
    b.no_stanza("message")
    time.sleep(GRACE + 0.5)  # "old" counts as delivered now; "new" was never sent
    b.sync()
    b.close()
    c = online(login, jid, pw)
    got = receive(c, 1)
    assert body_of(got[0]) == "new", tostr(got[0])
    c.no_stanza("message")


def test_restart_before_grace_redelivers(server, login):
    a = login()
    jid, pw = server.add_user()
    store(a, jid, ["across a restart"])
    a.close()
    b = online(login, jid, pw)
    b.expect_message(body="across a restart")
    server.restart()  # the session ends before offline.grace passed
    c = online(login, jid, pw)
    c.expect_message(body="across a restart", timeout=10)
    c.no_stanza("message")


def test_available_recipient_gets_it_directly(server, login):
    a = login()
    jid, pw = server.add_user()
    b = online(login, jid, pw, priority=0)
    b.sync()
    a.message(jid, "live")
    m = b.expect_message(frm=a.jid, body="live")
    assert m.find(q(NS_DELAY, "delay")) is None, "live message with a delay: %s" % tostr(m)
    b.close()
    c = online(login, jid, pw)
    c.no_stanza("message")  # never stored


def test_deleted_after_grace(server, login):
    a = login()
    jid, pw = server.add_user()
    store(a, jid, ["once", "only once"])
    b = online(login, jid, pw)
    assert [body_of(m) for m in receive(b, 2)] == ["once", "only once"]
    time.sleep(GRACE + 0.5)  # connected past offline.grace: delivery counts as done
    b.sync()
    b.close()
    c = online(login, jid, pw)
    c.no_stanza("message", timeout=1.0)
    # and new messages are stored and delivered as usual afterwards
    c.close()
    store(a, jid, ["later"])
    d = online(login, jid, pw)
    assert [body_of(m) for m in receive(d, 1)] == ["later"]
    d.no_stanza("message")


def test_abort_before_grace_redelivers(server, login):
    a = login()
    jid, pw = server.add_user()
    t0 = time.time()
    store(a, jid, ["first", "second"])
    t1 = time.time()
    b = online(login, jid, pw)
    assert [body_of(m) for m in receive(b, 2)] == ["first", "second"]
    b.abort()  # gone before offline.grace: perhaps it never read them
    time.sleep(0.3)  # let the server notice, so the next login is surely a new one
    c = online(login, jid, pw)
    got = receive(c, 2)
    assert [body_of(m) for m in got] == ["first", "second"], \
        "lost after an abrupt disconnect: %s" % [tostr(m) for m in got]
    for m in got:
        check_delay(m, t0, t1)  # still the time they were stored
    time.sleep(GRACE + 0.5)
    c.sync()
    c.close()
    d = online(login, jid, pw)
    d.no_stanza("message", timeout=1.0)


def test_survive_restart(server, login, clients):
    a = login()
    jid, pw = server.add_user()
    t0 = time.time()
    store(a, jid, ["before the restart", "me too"])
    t1 = time.time()
    a.close()
    server.restart()
    b = online(login, jid, pw)
    got = receive(b, 2, timeout=10)
    assert [body_of(m) for m in got] == ["before the restart", "me too"]
    for m in got:
        check_delay(m, t0, t1)
    b.no_stanza("message")


def test_account_deletion_removes_them(server, login):
    a = login()
    local = unique("del")
    jid, pw = server.add_user(local)
    store(a, jid, ["ghost"])
    server.ctl("user", "del", jid)
    # the account is gone: a message to it is refused (RFC 6121 8.5.1)
    id_ = a.message(jid, "anyone?")
    assert a.expect_error("message", id_) == ("cancel", "service-unavailable")
    server.add_user(local, pw)
    b = online(login, jid, pw)
    b.no_stanza("message", timeout=1.0)


def test_disco_lists_msgoffline(login):
    c = login()
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN, check=True)
    feats = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query")).findall(
        q(NS_DISCO_INFO, "feature"))}
    assert "msgoffline" in feats, "no msgoffline feature (XEP-0160 5): %s" % sorted(feats)


def test_slixmpp_receives_them_with_delay(server, login, clients):
    a = login()
    jid, pw = server.add_user()
    t0 = time.time()
    store(a, jid, ["slix one", "slix two"])
    t1 = time.time()
    c = slix.SlixClient(server, jid, pw, plaintext=server.allow_plaintext)
    clients.append(c)
    stamps = queue.Queue()

    def setup():
        c.xmpp.register_plugin("xep_0203")
        c.xmpp.add_event_handler("message", lambda m: stamps.put((m["body"], m["delay"]["stamp"])))
    slix.run(setup)
    c.connect()
    c.send_presence()
    for body in ("slix one", "slix two"):
        m = c.wait_message(body=body)
        assert m["from"] == a.jid and m["type"] == "chat", m
        got_body, stamp = stamps.get(timeout=5)
        assert got_body == body
        assert stamp is not None, "slixmpp saw no delay stamp on %r" % body
        assert t0 - 1.5 <= stamp.timestamp() <= t1 + 1.5, stamp


def test_quota(tmp_path_factory, clients):
    srv = start_server(tmp_path_factory, "offquota", domain=DOMAIN,
                       sets=["offline.quota=3", "offline.grace=1s"])
    try:
        a = srv.new_user_client()
        clients.append(a)
        jid, pw = srv.add_user()
        store(a, jid, ["q1", "q2", "q3"])
        id_ = a.message(jid, "q4")
        err = a.expect("message", type="error", id=id_)
        assert stanza_error(err) == ("wait", "resource-constraint"), tostr(err)
        assert err.get("from") == jid, "error not from the original 'to': %s" % tostr(err)
        b = srv.login(jid, pw, presence=True)
        clients.append(b)
        assert [body_of(m) for m in receive(b, 3)] == ["q1", "q2", "q3"]
        b.no_stanza("message")  # q4 was not stored
        time.sleep(1.5)  # past offline.grace: the three are deleted, the quota free again
        b.sync()
        b.close()
        store(a, jid, ["q5", "q6", "q7"])
        c = srv.login(jid, pw, presence=True)
        clients.append(c)
        assert [body_of(m) for m in receive(c, 3)] == ["q5", "q6", "q7"]
        c.close()
        a.close()
    finally:
        stop_and_check(srv)


def test_expiry(tmp_path_factory, clients):
    srv = start_server(tmp_path_factory, "offexpiry", domain=DOMAIN,
                       sets=["offline.expiry=2s"])
    try:
        a = srv.new_user_client()
        clients.append(a)
        jid, pw = srv.add_user()
        store(a, jid, ["stale"])
        time.sleep(3.0)
        b = srv.login(jid, pw, presence=True)
        clients.append(b)
        b.no_stanza("message", timeout=1.0)
        # a fresh one is still stored and delivered
        b.close()
        store(a, jid, ["fresh"])
        c = srv.login(jid, pw, presence=True)
        clients.append(c)
        assert [body_of(m) for m in receive(c, 1)] == ["fresh"]
        c.close()
        a.close()
    finally:
        stop_and_check(srv)


def test_expired_do_not_count_against_quota(tmp_path_factory, clients):
    srv = start_server(tmp_path_factory, "offexpquota", domain=DOMAIN,
                       sets=["offline.quota=2", "offline.expiry=1s"])
    try:
        a = srv.new_user_client()
        clients.append(a)
        jid, pw = srv.add_user()
        store(a, jid, ["e1", "e2"])
        time.sleep(1.5)  # both expired: nothing is waiting for the recipient any more
        id_ = a.message(jid, "fresh")
        a.sync()
        err = a.wait_for("message", type="error", id=id_, timeout=0.5)
        assert err is None, "refused for a queue of expired messages: %s" % tostr(err)
        b = srv.login(jid, pw, presence=True)
        clients.append(b)
        assert [body_of(m) for m in receive(b, 1)] == ["fresh"]
        b.close()
        a.close()
    finally:
        stop_and_check(srv)
