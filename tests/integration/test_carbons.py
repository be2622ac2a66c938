"""XEP-0280 message carbons: a resource that enabled carbons sees the messages its
account sends and receives on the account's other resources, so a second device sees the
whole conversation."""

from helpers import NS_CLIENT, q, tostr

NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"


def enable(c):
    c.iq("set", "<enable xmlns='%s'/>" % NS_CARBONS, check=True)


def carbon(c, wrapper, timeout=5):
    """Waits for a carbon of kind wrapper ('sent' or 'received'); returns the inner message."""
    m = c.expect("message", pred=lambda e: e.find(q(NS_CARBONS, wrapper)) is not None,
                 timeout=timeout, what="<%s/> carbon" % wrapper)
    # XEP-0280 section 11: a carbon comes from the user's own bare JID
    assert m.get("from") == c.bare, tostr(m)
    inner = m.find("%s/%s/%s" % (q(NS_CARBONS, wrapper), q(NS_FORWARD, "forwarded"),
                                 q(NS_CLIENT, "message")))
    assert inner is not None, tostr(m)
    return inner


def two_resources(server, login):
    jid, pw = server.add_user()
    phone = login(jid, pw, resource="phone", presence=True)
    laptop = login(jid, pw, resource="laptop", presence=True)
    return phone, laptop


def test_feature_advertised(login):
    c = login()
    res = c.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
               to=c.domain, check=True)
    assert NS_CARBONS in [f.get("var") for f in res.iter() if f.tag.endswith("feature")]


def test_received_carbon_for_message_to_other_resource(server, login):
    phone, laptop = two_resources(server, login)
    enable(laptop)
    friend = login(presence=True)
    friend.message(phone.jid, "to the phone")
    phone.expect_message(frm=friend.jid, body="to the phone")
    inner = carbon(laptop, "received")
    assert inner.get("from") == friend.jid and inner.get("to") == phone.jid
    assert inner.findtext(q(NS_CLIENT, "body")) == "to the phone"


def test_sent_carbon(server, login):
    phone, laptop = two_resources(server, login)
    enable(laptop)
    friend = login(presence=True)
    phone.message(friend.jid, "from the phone")
    friend.expect_message(frm=phone.jid, body="from the phone")
    inner = carbon(laptop, "sent")
    assert inner.get("from") == phone.jid and inner.get("to") == friend.jid


def test_no_carbons_without_enable_or_after_disable(server, login):
    phone, laptop = two_resources(server, login)
    friend = login(presence=True)
    friend.message(phone.jid, "one")
    phone.expect_message(body="one")
    laptop.no_stanza("message")
    enable(laptop)
    laptop.iq("set", "<disable xmlns='%s'/>" % NS_CARBONS, check=True)
    friend.message(phone.jid, "two")
    phone.expect_message(body="two")
    laptop.no_stanza("message")


def test_private_and_no_copy_are_not_copied(server, login):
    phone, laptop = two_resources(server, login)
    enable(laptop)
    friend = login(presence=True)
    phone.message(friend.jid, "secret", extra="<private xmlns='%s'/>" % NS_CARBONS)
    phone.message(friend.jid, "hint", extra="<no-copy xmlns='urn:xmpp:hints'/>")
    friend.expect_message(body="secret")
    friend.expect_message(body="hint")
    laptop.no_stanza("message")


def test_bare_message_reaching_both_is_not_duplicated(server, login):
    phone, laptop = two_resources(server, login)  # equal priority: both get bare messages
    enable(phone)
    enable(laptop)
    friend = login(presence=True)
    friend.message(phone.bare, "to both")
    phone.expect_message(body="to both")
    laptop.expect_message(body="to both")
    for c in (phone, laptop):
        c.no_stanza("message", pred=lambda e: e.find(q(NS_CARBONS, "received")) is not None)


def test_headline_and_groupchat_are_not_copied(server, login):
    phone, laptop = two_resources(server, login)
    enable(laptop)
    friend = login(presence=True)
    friend.message(phone.jid, "news", type_="headline")
    phone.expect_message(body="news")
    laptop.no_stanza("message")
