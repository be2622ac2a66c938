"""Iq routing and the server's own iqs against a real batond (RFC 6120 8.2.3, RFC 6121 8.5,
XEP-0030 disco, XEP-0199 ping, XEP-0092 version), and 'from' checking of client stanzas
(RFC 6120 8.1.2.1).

Invariant: every test uses fresh accounts.
"""

from helpers import (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VERSION, q,
                     stanza_error, tostr)

SERVER_OPTS = {"domain": "localhost"}
DOMAIN = "localhost"


def test_iq_routed_to_full_jid_and_back(login):
    a = login()
    b = login()
    a.send("<iq type='get' id='q1' to='%s'><query xmlns='urn:example:custom'/></iq>" % b.jid)
    req = b.expect("iq", id="q1", type="get")
    assert req.get("from") == a.jid, tostr(req)  # stamped by the server
    assert req.find("{urn:example:custom}query") is not None
    b.send("<iq type='result' id='q1' to='%s'><query xmlns='urn:example:custom'>"
           "<answer>42</answer></query></iq>" % a.jid)
    res = a.expect("iq", id="q1", type="result")
    assert res.get("from") == b.jid, tostr(res)
    assert res.find("{urn:example:custom}query/{urn:example:custom}answer").text == "42"


def test_iq_error_reply_routed(login):
    a = login()
    b = login()
    a.send("<iq type='set' id='q2' to='%s'><x xmlns='urn:example:custom'/></iq>" % b.jid)
    b.expect("iq", id="q2")
    b.send("<iq type='error' id='q2' to='%s'><error type='cancel'><feature-not-implemented "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % a.jid)
    assert a.expect_error("iq", "q2") == ("cancel", "feature-not-implemented")


def test_iq_to_bare_jid_is_answered_by_server(login):
    a = login()
    b = login(presence=True)
    res = a.iq("get", "<query xmlns='urn:example:custom'/>", to=b.bare)
    # RFC 6121 8.5.2.1.3 (iq to a bare JID): the server answers on the user's behalf; an
    # unknown payload gets service-unavailable, and the user never sees it
    assert stanza_error(res) == ("cancel", "service-unavailable"), tostr(res)
    assert res.get("from") == b.bare, tostr(res)
    b.no_stanza("iq", type="get")


def test_iq_to_missing_resource(login):
    a = login()
    b = login()
    res = a.iq("get", "<query xmlns='urn:example:custom'/>", to=b.bare + "/nosuchresource")
    assert stanza_error(res) == ("cancel", "service-unavailable"), tostr(res)  # 8.5.3.2.1


def test_iq_to_unknown_user(login):
    a = login()
    res = a.iq("get", "<query xmlns='urn:example:custom'/>", to="nosuchuser@localhost/r")
    assert stanza_error(res) == ("cancel", "service-unavailable"), tostr(res)  # 8.5.1


def test_iq_result_to_unknown_is_dropped(login):
    a = login()
    a.send("<iq type='result' id='r1' to='nosuchuser@localhost/r'/>")
    a.no_stanza("iq", id="r1")  # never answer a result or error with an error


def test_disco_info_server(login):
    c = login()
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN, check=True)
    assert res.get("from") == DOMAIN, tostr(res)
    query = res.find(q(NS_DISCO_INFO, "query"))
    ids = [(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO,
                                                                        "identity"))]
    assert ("server", "im") in ids, tostr(res)
    feats = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
    for f in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VERSION):
        assert f in feats, "%s missing from disco#info: %s" % (f, sorted(feats))


def test_disco_info_slixmpp(slixclient):
    c = slixclient()
    info = c.disco_info(DOMAIN)
    assert ("server", "im") in {(i[0], i[1]) for i in info["disco_info"]["identities"]}
    assert NS_PING in info["disco_info"]["features"]


def test_disco_info_without_to(login):
    c = login()
    # no 'to' means the user's own account (bare JID), handled by the server (RFC 6120
    # 8.1.1.1); it must answer, with a result or an error, not ignore the request
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO)
    assert res.get("type") in ("result", "error")


def test_disco_items_server(login):
    c = login()
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=DOMAIN, check=True)
    assert res.find(q(NS_DISCO_ITEMS, "query")) is not None, tostr(res)


def test_ping(login):
    c = login()
    res = c.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=DOMAIN, check=True)
    assert len(res) == 0, "ping result must be empty (XEP-0199 4.1): %s" % tostr(res)


def test_ping_slixmpp(slixclient):
    c = slixclient()
    rtt = c.ping()
    assert rtt is not None and rtt < 5


def test_version(login):
    c = login()
    res = c.iq("get", "<query xmlns='%s'/>" % NS_VERSION, to=DOMAIN, check=True)
    query = res.find(q(NS_VERSION, "query"))
    assert query.findtext(q(NS_VERSION, "name")) == "baton", tostr(res)
    assert query.findtext(q(NS_VERSION, "version")), tostr(res)


def test_unknown_namespace_to_server(login):
    c = login()
    res = c.iq("get", "<query xmlns='urn:example:nothing'/>", to=DOMAIN)
    assert stanza_error(res) == ("cancel", "service-unavailable"), tostr(res)
    res = c.iq("set", "<ping xmlns='%s'/>" % NS_PING, to=DOMAIN)
    assert res.get("type") == "error", "ping is a get, not a set: %s" % tostr(res)


def test_iq_invalid_type(login):
    c = login()
    c.send("<iq type='bogus' id='bad1' to='%s'><ping xmlns='%s'/></iq>" % (DOMAIN, NS_PING))
    el = c.wait_for("iq", id="bad1", timeout=5)
    if el is None:  # a server may also treat it as a stream-level error
        assert c.wait_closed(timeout=2) in ("bad-format", "invalid-xml"), "no answer"
    else:
        assert stanza_error(el) == ("modify", "bad-request"), tostr(el)  # RFC 6120 8.3.3.1


def test_iq_without_payload(login):
    c = login()
    c.send("<iq type='get' id='empty1' to='%s'/>" % DOMAIN)
    el = c.expect("iq", id="empty1")
    # RFC 6120 8.2.3: an iq get/set MUST contain exactly one payload element
    assert stanza_error(el) == ("modify", "bad-request"), tostr(el)


def test_iq_with_two_payloads(login):
    c = login()
    c.send("<iq type='get' id='two1' to='%s'><ping xmlns='%s'/><query xmlns='%s'/></iq>"
           % (DOMAIN, NS_PING, NS_VERSION))
    el = c.expect("iq", id="two1")
    assert stanza_error(el) == ("modify", "bad-request"), tostr(el)


def test_iq_error_keeps_id_and_swaps_addresses(login):
    c = login()
    res = c.iq("get", "<query xmlns='urn:example:nothing'/>", to=DOMAIN)
    assert res.get("from") == DOMAIN and res.get("to") == c.jid, tostr(res)


# ---- 'from' checking (RFC 6120 8.1.2.1)


def test_from_own_full_and_bare_jid_accepted(login):
    a = login()
    b = login()
    a.send("<message to='%s' from='%s' type='chat'><body>full</body></message>" % (b.jid, a.jid))
    b.expect_message(frm=a.jid, body="full")
    a.send("<message to='%s' from='%s' type='chat'><body>bare</body></message>" % (b.jid, a.bare))
    m = b.expect_message(body="bare")
    assert m.get("from") in (a.jid, a.bare), tostr(m)
    a.send("<iq type='get' id='f2' from='%s' to='%s'><ping xmlns='%s'/></iq>"
           % (a.jid, DOMAIN, NS_PING))
    assert a.expect("iq", id="f2").get("type") == "result"


def test_spoofed_from_is_stream_error(login):
    a = login()
    b = login()
    a.send("<message to='%s' from='juliet@localhost/balcony' type='chat'><body>it is I</body>"
           "</message>" % b.jid)
    assert a.wait_closed(timeout=5) == "invalid-from"
    b.no_stanza("message")
    # the server keeps working for everybody else
    c = login()
    c.message(b.jid, "still alive")
    b.expect_message(frm=c.jid, body="still alive")


def test_spoofed_from_other_resource_of_same_user(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw, resource="one")
    b = login()
    a.send("<message to='%s' from='%s/other' type='chat'><body>x</body></message>"
           % (b.jid, jid))
    assert a.wait_closed(timeout=5) == "invalid-from"
    b.no_stanza("message")


def test_stamped_from_on_directed_presence(login):
    a = login()
    b = login(presence=True)
    a.send_presence(to=b.jid, status="directed")
    b.expect_presence(frm=a.jid)
