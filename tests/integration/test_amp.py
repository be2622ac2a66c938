"""XEP-0079 advanced message processing: the sender's rules are applied where the outcome
is known, including when a stored message is finally delivered."""

from helpers import NS_CLIENT, q, stanza_error, tostr

NS_AMP = "http://jabber.org/protocol/amp"
NS_AMP_ERR = "http://jabber.org/protocol/amp#errors"
SERVER_OPTS = {"sets": ["offline.grace=1s"]}


def amp(*rules):
    return "<amp xmlns='%s'>%s</amp>" % (NS_AMP, "".join(
        "<rule condition='%s' value='%s' action='%s'/>" % r for r in rules))


def notice(c, status, timeout=5):
    m = c.expect("message", pred=lambda e: e.find(q(NS_AMP, "amp")) is not None and
                 e.find(q(NS_AMP, "amp")).get("status") == status, timeout=timeout,
                 what="amp %s" % status)
    return m.find(q(NS_AMP, "amp"))


def test_features(login):
    c = login()
    res = c.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=c.domain,
               check=True)
    feats = {f.get("var") for f in res.iter() if f.tag.endswith("feature")}
    assert NS_AMP in feats and NS_AMP + "?condition=deliver" in feats


def test_notify_when_stored_and_again_when_delivered(server, login):
    a = login(presence=True)
    jid, pw = server.add_user()
    a.message(jid, "hello later", id_="n1",
              extra=amp(("deliver", "stored", "notify"), ("deliver", "direct", "notify")))
    n = notice(a, "notify")
    rule = n.find(q(NS_AMP, "rule"))
    assert rule.get("value") == "stored" and n.get("to") == jid, tostr(n)
    b = login(jid, pw, presence=True)
    b.expect_message(body="hello later")
    n = notice(a, "notify")  # the stored message finally reached its recipient
    assert n.find(q(NS_AMP, "rule")).get("value") == "direct", tostr(n)


def test_error_instead_of_storing(server, login):
    a = login(presence=True)
    jid, pw = server.add_user()
    a.message(jid, "only if online", id_="e1", extra=amp(("deliver", "stored", "error")))
    err = a.expect("message", id="e1", type="error")
    assert stanza_error(err)[1] == "undefined-condition"
    assert err.find("%s/%s" % (q(NS_CLIENT, "error"), q(NS_AMP_ERR, "failed-rules"))) \
        is not None, tostr(err)
    b = login(jid, pw, presence=True)
    b.no_stanza("message", timeout=1.0)  # and it was not kept


def test_drop_and_alert(server, login):
    a = login(presence=True)
    b = login(presence=True)
    a.message(b.jid, "dropped", extra=amp(("deliver", "direct", "drop")))
    a.message(b.jid, "alerted", extra=amp(("deliver", "direct", "alert")))
    n = notice(a, "alert")
    assert n.find(q(NS_AMP, "rule")).get("action") == "alert"
    b.no_stanza("message", timeout=0.7)


def test_expired_on_arrival(login):
    a = login(presence=True)
    b = login(presence=True)
    a.message(b.jid, "too late", id_="x1",
              extra=amp(("expire-at", "2000-01-01T00:00:00Z", "notify")))
    b.expect_message(body="too late")  # notify: told, and delivered anyway
    notice(a, "notify")
    a.message(b.jid, "too late, drop", extra=amp(("expire-at", "2000-01-01T00:00:00Z", "drop")))
    b.no_stanza("message", timeout=0.7)


def test_unsupported_rule_refused(login):
    a = login(presence=True)
    b = login(presence=True)
    a.message(b.jid, "x", id_="u1", extra=amp(("deliver", "direct", "teleport")))
    err = a.expect("message", id="u1", type="error")
    assert err.find(".//" + q(NS_AMP_ERR, "unsupported-actions")) is not None, tostr(err)
    b.no_stanza("message", timeout=0.5)


def test_expiry_notice_when_asked(tmp_path_factory, clients):
    """offline.expiry passes without delivery: a sender who asked (deliver=none) is told."""
    import time

    from conftest import start_server
    from helpers import Client, stop_and_check

    srv = start_server(tmp_path_factory, "ampexpiry", sets=["offline.expiry=1s"])
    try:
        ja, pa = srv.add_user()
        jb, _ = srv.add_user()
        a = Client(srv, ja, pa).connect()
        clients.append(a)
        a.send_presence()
        a.message(jb, "will expire", id_="x9", extra=amp(("deliver", "none", "notify")))
        a.message(jb, "expires quietly", id_="x10")
        n = notice(a, "notify", timeout=8)
        assert n.get("to") == jb and n.find(q(NS_AMP, "rule")).get("value") == "none"
        time.sleep(1.5)
        a.no_stanza("message", timeout=0.5)  # nobody asked about the second one
        a.close()
    finally:
        stop_and_check(srv)
