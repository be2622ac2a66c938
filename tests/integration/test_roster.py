"""Roster management against a real batond (RFC 6121 section 2): get, set, remove, pushes to
interested resources, versioning, errors, and persistence across reconnects and a restart.

Invariant: every test uses fresh accounts; the restart test is last in the module because it
restarts the module's server.
"""

from helpers import NS_ROSTER, item_groups, q, stanza_error, sub_state, tostr

SERVER_OPTS = {"domain": "localhost"}


def test_empty_roster_slixmpp(slixclient):
    c = slixclient()
    assert c.get_roster() == {}


def test_set_and_get_slixmpp(slixclient):
    c = slixclient()
    c.set_roster("romeo@example.net", name="Romeo", groups=["Friends", "Lovers"])
    roster = c.get_roster()
    assert roster == {"romeo@example.net": {"name": "Romeo", "subscription": "none", "ask": "",
                                            "groups": ["Friends", "Lovers"]}}


def test_set_update_remove(login):
    c = login(roster=True)
    res = c.set_roster_item("nurse@example.com", name="Nurse", groups=["Servants"])
    assert res.get("type") == "result", tostr(res)
    it = c.expect_push("nurse@example.com")
    assert it.get("name") == "Nurse" and item_groups(it) == ["Servants"]
    assert sub_state(it) == ("none", None)
    # update: new name, groups replaced (RFC 6121 2.4: the set replaces the whole item)
    c.set_roster_item("nurse@example.com", name="Angelica", groups=["A", "B"])
    it = c.expect_push("nurse@example.com")
    assert it.get("name") == "Angelica" and item_groups(it) == ["A", "B"]
    items, _, _ = c.get_roster()
    assert list(items) == ["nurse@example.com"]
    assert items["nurse@example.com"].get("name") == "Angelica"
    assert item_groups(items["nurse@example.com"]) == ["A", "B"]
    # remove (RFC 6121 2.5)
    res = c.set_roster_item("nurse@example.com", subscription="remove")
    assert res.get("type") == "result", tostr(res)
    it = c.expect_push("nurse@example.com")
    assert it.get("subscription") == "remove"
    items, _, _ = c.get_roster()
    assert items == {}


def test_remove_unknown_item(login):
    c = login(roster=True)
    res = c.set_roster_item("nobody@example.com", subscription="remove")
    # RFC 6121 2.5.3: item-not-found
    assert stanza_error(res) == ("cancel", "item-not-found") or \
        (stanza_error(res) or (None, None))[1] == "item-not-found", tostr(res)


def test_push_to_all_interested_resources(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw, roster=True)
    b = login(jid, pw, roster=True)
    a.set_roster_item("tybalt@example.com", name="Tybalt")
    for c in (a, b):
        it = c.expect_push("tybalt@example.com")
        assert it.get("name") == "Tybalt"


def test_no_push_to_uninterested_resource(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw, roster=True)
    b = login(jid, pw)  # never requested the roster: not an interested resource (2.2)
    a.set_roster_item("benvolio@example.com")
    a.expect_push("benvolio@example.com")
    b.no_stanza("iq", pred=lambda e: e.find(q(NS_ROSTER, "query")) is not None, timeout=0.7)


def test_versioning(login):
    c = login()
    items, query, _ = c.get_roster(ver="")
    assert query is not None and query.get("ver") is not None, \
        "no ver in reply to a roster get with ver='' (RFC 6121 2.6.3)"
    v0 = query.get("ver")
    # unchanged roster: an empty result (no query) or an empty query (2.6.3)
    _, query, res = c.get_roster(ver=v0)
    assert query is None or len(query) == 0, tostr(res)
    c.set_roster_item("juliet@example.com", name="J")
    push = c.expect("iq", pred=lambda e: e.get("type") == "set" and
                    e.find(q(NS_ROSTER, "query")) is not None)
    v1 = push.find(q(NS_ROSTER, "query")).get("ver")
    assert v1 and v1 != v0, "roster push without a new ver: %s" % tostr(push)
    # with the old version the client gets the change: either the full roster or pushes
    items, query, res = c.get_roster(ver=v0)
    if query is not None and len(query):
        assert "juliet@example.com" in items
        assert query.get("ver") == v1
    else:
        c.expect_push("juliet@example.com")
    # the current version again: nothing new
    _, query, res = c.get_roster(ver=v1)
    assert query is None or len(query) == 0, tostr(res)


def test_set_with_two_items_is_bad_request(login):
    c = login(roster=True)
    res = c.iq("set", "<query xmlns='%s'><item jid='a@example.com'/><item jid='b@example.com'/>"
               "</query>" % NS_ROSTER)
    assert stanza_error(res) == ("modify", "bad-request"), tostr(res)  # RFC 6121 2.3.3
    assert c.get_roster()[0] == {}


def test_set_with_invalid_jid(login):
    c = login(roster=True)
    res = c.iq("set", "<query xmlns='%s'><item jid='@@bad@'/></query>" % NS_ROSTER)
    assert res.get("type") == "error", tostr(res)
    assert stanza_error(res)[1] in ("bad-request", "jid-malformed"), tostr(res)
    assert c.get_roster()[0] == {}


def test_set_with_empty_group_is_not_acceptable(login):
    c = login(roster=True)
    res = c.iq("set", "<query xmlns='%s'><item jid='x@example.com'><group/></item></query>"
               % NS_ROSTER)
    assert stanza_error(res) == ("modify", "not-acceptable"), tostr(res)  # RFC 6121 2.3.3


def test_set_cannot_grant_subscription(login):
    c = login(roster=True)
    # the subscription attribute of a roster set can only be 'remove' (RFC 6121 2.1.2.5);
    # whether the server ignores it or returns an error, the subscription must stay 'none'
    c.set_roster_item("mallory@example.com", subscription="both")
    items, _, _ = c.get_roster()
    if "mallory@example.com" in items:
        assert sub_state(items["mallory@example.com"])[0] == "none", \
            tostr(items["mallory@example.com"])


def test_roster_get_from_other_user_forbidden(server, login):
    a = login()
    b = login()
    b.set_roster_item("secret@example.com")
    res = a.iq("get", "<query xmlns='%s'/>" % NS_ROSTER, to=b.bare)
    # another user's roster is not disclosed (RFC 6121 2.1.5: server MUST return an error)
    assert res.get("type") == "error", tostr(res)
    assert "secret" not in tostr(res)


def test_roster_set_with_own_bare_to(login):
    c = login(roster=True)
    res = c.iq("set", "<query xmlns='%s'><item jid='x2@example.com'/></query>" % NS_ROSTER,
               to=c.bare)
    assert res.get("type") == "result", tostr(res)  # 'to' = own bare JID is the same (2.1.3)


def test_persists_across_reconnect(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw, roster=True)
    a.set_roster_item("friar@example.com", name="Laurence", groups=["Church"])
    a.expect_push("friar@example.com")
    a.close()
    b = login(jid, pw)
    items, _, _ = b.get_roster()
    assert items["friar@example.com"].get("name") == "Laurence"
    assert item_groups(items["friar@example.com"]) == ["Church"]


def test_persists_across_restart(server, login, clients):
    """Last test of the module: restarts the module's server."""
    jid, pw = server.add_user()
    a = login(jid, pw, roster=True)
    a.set_roster_item("prince@example.com", name="Escalus", groups=["Verona"])
    a.expect_push("prince@example.com")
    _, query, _ = a.get_roster(ver="")
    ver = query.get("ver")
    a.close()
    server.restart()
    b = login(jid, pw)
    items, query, _ = b.get_roster()
    assert items["prince@example.com"].get("name") == "Escalus"
    assert item_groups(items["prince@example.com"]) == ["Verona"]
    # the old version is still a valid starting point: an unchanged roster answers with
    # nothing, a changed one with the full roster or pushes (RFC 6121 2.6.3)
    _, query, res = b.get_roster(ver=ver)
    assert res.get("type") == "result"
