"""XEP-0357 push notifications: a client registers an app server (here another local account's
full JID stands in for one), and while none of the account's sessions is connected (offline, or
hibernating under XEP-0198) each message worth storing makes the server publish a
urn:xmpp:push:summary notification to it; no body unless the client asked for it; disable,
and an error from the app server, stop them; registrations survive a restart."""

from helpers import NS_CLIENT, q, stanza_error, tostr

NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"
NS_XDATA = "jabber:x:data"
NS_SM = "urn:xmpp:sm:3"


def enable(c, app, node, form=""):
    return c.iq("set", "<enable xmlns='%s' jid='%s' node='%s'>%s</enable>"
                % (NS_PUSH, app.jid, node, form), check=True)


def publish_of(app, owner, timeout=5):
    """The next publish iq app gets from owner; answered with result."""
    iq = app.expect("iq", pred=lambda e: e.get("type") == "set" and e.get("from") == owner,
                    timeout=timeout, what="push publish from %s" % owner)
    app.send("<iq type='result' id='%s' to='%s'/>" % (iq.get("id"), owner))
    return iq


def summary(iq):
    """(node, {var: value} of the notification form, publish-options form or None)."""
    pub = iq.find("%s/%s" % (q(NS_PUBSUB, "pubsub"), q(NS_PUBSUB, "publish")))
    assert pub is not None, tostr(iq)
    x = pub.find("%s/%s/%s" % (q(NS_PUBSUB, "item"), q(NS_PUSH, "notification"),
                               q(NS_XDATA, "x")))
    assert x is not None, tostr(iq)
    fields = {f.get("var"): f.findtext(q(NS_XDATA, "value")) for f in x.findall(q(NS_XDATA,
                                                                                  "field"))}
    opts = iq.find("%s/%s/%s" % (q(NS_PUBSUB, "pubsub"), q(NS_PUBSUB, "publish-options"),
                                 q(NS_XDATA, "x")))
    return pub.get("node"), fields, opts


def no_publish(app, owner, timeout=1.0):
    app.no_stanza("iq", pred=lambda e: e.get("from") == owner, timeout=timeout)


def offline_with_push(server, login, node="n1", form=""):
    """(a's jid, password, app client, sender client) with a's push enabled, a offline."""
    jid, pw = server.add_user()
    a = login(jid, pw)
    app = login(resource="appserver")
    enable(a, app, node, form)
    a.close()
    b = login(presence=True)
    return jid, pw, app, b


def test_disco_advertises_push(login):
    a = login()
    res = a.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=a.bare,
               check=True)
    feats = [f.get("var") for f in res.iter(q("http://jabber.org/protocol/disco#info",
                                              "feature"))]
    assert NS_PUSH in feats


def test_offline_message_is_pushed_without_body(server, login):
    jid, _, app, b = offline_with_push(server, login, node="node-1")
    b.message(jid, "a secret text")
    node, fields, opts = summary(publish_of(app, jid))
    assert node == "node-1"
    assert fields["FORM_TYPE"] == "urn:xmpp:push:summary"
    assert fields["message-count"] == "1"
    assert fields["last-message-sender"] == b.jid
    assert "last-message-body" not in fields, fields
    assert opts is None
    b.message(jid, "second")
    _, fields, _ = summary(publish_of(app, jid))
    assert fields["message-count"] == "2", fields


def test_chat_states_alone_are_not_pushed(server, login):
    jid, _, app, b = offline_with_push(server, login)
    b.message(jid, None, extra="<active xmlns='http://jabber.org/protocol/chatstates'/>")
    no_publish(app, jid)


def test_body_and_publish_options_when_asked(server, login):
    form = ("<x xmlns='%s' type='submit'><field var='FORM_TYPE'><value>"
            "http://jabber.org/protocol/pubsub#publish-options</value></field>"
            "<field var='secret'><value>s3cr3t</value></field>"
            "<field var='include-body'><value>true</value></field></x>" % NS_XDATA)
    jid, _, app, b = offline_with_push(server, login, form=form)
    b.message(jid, "hello there")
    _, fields, opts = summary(publish_of(app, jid))
    assert fields["last-message-body"] == "hello there"
    assert opts is not None, "publish-options go to the app server"
    ofields = {f.get("var"): f.findtext(q(NS_XDATA, "value")) for f in opts}
    assert ofields.get("secret") == "s3cr3t"
    assert "include-body" not in ofields, "our own option stays with us"


def test_online_session_gets_it_no_push(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw, presence=True)
    app = login(resource="appserver")
    enable(a, app, "n")
    b = login(presence=True)
    b.message(jid, "are you there")
    a.expect_message(body="are you there")
    no_publish(app, jid)
    # CSI inactive is still connected: no push either (XEP-0357 is about no connection)
    a.send("<inactive xmlns='urn:xmpp:csi:0'/>")
    a.sync()
    b.message(jid, "still there")
    a.expect_message(body="still there")
    no_publish(app, jid)


def test_disable_stops_pushes(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw)
    app = login(resource="appserver")
    enable(a, app, "n1")
    enable(a, app, "n2")
    a.iq("set", "<disable xmlns='%s' jid='%s' node='n1'/>" % (NS_PUSH, app.jid), check=True)
    a.close()
    b = login(presence=True)
    b.message(jid, "one")
    node, _, _ = summary(publish_of(app, jid))
    assert node == "n2"
    no_publish(app, jid, timeout=0.5)  # only one: n1 is gone
    a = login(jid, pw)
    a.iq("set", "<disable xmlns='%s' jid='%s'/>" % (NS_PUSH, app.jid), check=True)
    a.close()
    b.message(jid, "two")
    no_publish(app, jid)


def test_error_from_app_server_disables(server, login):
    jid, _, app, b = offline_with_push(server, login)
    b.message(jid, "first")
    iq = app.expect("iq", pred=lambda e: e.get("from") == jid and e.get("type") == "set")
    app.send("<iq type='error' id='%s' to='%s'><error type='cancel'><item-not-found "
             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % (iq.get("id"), jid))
    app.sync()
    b.sync()
    b.message(jid, "second")
    no_publish(app, jid)


def test_hibernating_session_is_pushed(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw, presence=True)
    app = login(resource="appserver")
    enable(a, app, "n")
    a.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    el = a.expect(pred=lambda e: e.tag == q(NS_SM, "enabled"))
    assert el.get("id"), tostr(el)
    a.abort()  # the connection breaks: the session hibernates (XEP-0198 resumption)
    b = login(presence=True)
    b.sync()
    b.message(jid, "wake up")
    _, fields, _ = summary(publish_of(app, jid))
    assert fields["last-message-sender"] == b.jid


def test_registration_survives_restart(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw)
    app_jid, app_pw = server.add_user()
    app = login(app_jid, app_pw, resource="appserver")
    enable(a, app, "persist")
    server.restart()
    app = login(app_jid, app_pw, resource="appserver")
    b = login(presence=True)
    b.message(jid, "after restart")
    node, _, _ = summary(publish_of(app, jid))
    assert node == "persist"


def test_bad_enable(login):
    a = login()
    for payload in ("<enable xmlns='%s' jid='push.example'/>" % NS_PUSH,
                    "<enable xmlns='%s' node='x'/>" % NS_PUSH,
                    "<disable xmlns='%s'/>" % NS_PUSH):
        res = a.iq("set", payload)
        assert stanza_error(res) == ("modify", "bad-request"), tostr(res)
    res = a.iq("get", "<enable xmlns='%s' jid='p.example' node='x'/>" % NS_PUSH)
    assert res.get("type") == "error", tostr(res)
