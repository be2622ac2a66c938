"""Participation requests (seed 000 R5, urn:baton:continuity:0): with the preference
participation='ask', a chat from someone the account has neither accepted nor written to waits;
the account's devices get <participate/>, and the answer delivers the waiting messages (accept)
or tells the sender and drops them (decline).

Invariant: each test uses fresh accounts; absence is asserted only after a bounded wait or
after a later message arrived.
"""

from helpers import NS_CLIENT, q

NS_CONT = "urn:baton:continuity:0"
SERVER_OPTS = {"sets": ["offline.grace=1s"]}


def body(m):
    return m.findtext(q(NS_CLIENT, "body"))


def ask(c):
    c.iq("set", "<preferences xmlns='%s' participation='ask'/>" % NS_CONT, check=True)


def request_of(c, timeout=5):
    m = c.expect("message", lambda e: e.find(q(NS_CONT, "participate")) is not None,
                 timeout=timeout)
    return m.find(q(NS_CONT, "participate"))


def answer(c, pid, ans):
    c.iq("set", "<participation xmlns='%s' id='%s' answer='%s'/>" % (NS_CONT, pid, ans),
         check=True)


def test_accept_delivers_waiting_messages_in_order(server, login):
    c = login(presence=True)
    ask(c)
    a = login(presence=True)
    a.message(c.bare, "hello 1")
    a.message(c.bare, "hello 2")
    p = request_of(c)
    assert p.get("from") == a.jid
    c.no_stanza("message", lambda e: body(e) is not None, timeout=0.7)
    answer(c, p.get("id"), "accept")
    assert [body(c.expect_message(timeout=5)) for _ in range(2)] == ["hello 1", "hello 2"]
    # Accepted: the next one flows directly, with no new request.
    a.message(c.bare, "hello 3")
    assert body(c.expect_message(timeout=5)) == "hello 3"


def test_decline_tells_the_sender_and_drops(server, login):
    cj, cpw = server.add_user()
    c = login(jid=cj, password=cpw, presence=True)
    ask(c)
    a = login(presence=True)
    a.message(cj, "may I?")
    p = request_of(c)
    answer(c, p.get("id"), "decline")
    err = a.expect("message", lambda e: e.get("type") == "error", timeout=5)
    assert err.find(".//{urn:ietf:params:xml:ns:xmpp-stanzas}not-acceptable") is not None
    c.no_stanza("message", lambda e: body(e) is not None, timeout=0.7)
    # Nothing waits for a later login either.
    c.close()
    c2 = login(jid=cj, password=cpw, presence=True)
    c2.no_stanza("message", lambda e: body(e) == "may I?", timeout=1.0)
    # A decline ends that setup only: a new message asks again.
    a.message(cj, "again?")
    p2 = request_of(c2)
    assert p2.get("id") != p.get("id")


def test_written_to_is_accepted_and_open_by_default(server, login):
    c = login(presence=True)
    ask(c)
    a = login(presence=True)
    # The account wrote first: the answer is not a new conversation.
    c.message(a.bare, "hi a")
    assert body(a.expect_message(timeout=5)) == "hi a"
    a.message(c.bare, "hi c")
    assert body(c.expect_message(timeout=5)) == "hi c"
    # Without the preference nothing is asked.
    d = login(presence=True)
    a.message(d.bare, "direct")
    assert body(d.expect_message(timeout=5)) == "direct"


def test_unknown_request_id(server, login):
    c = login(presence=True)
    r = c.iq("set", "<participation xmlns='%s' id='nope' answer='accept'/>" % NS_CONT)
    assert r.get("type") == "error"
