"""XEP-0357 with a real app server: a small XEP-0114 component at push.localhost plays the app
server (as Conversations' p2.siacs.eu is a pubsub service), receives the notification when a
message arrives for a disconnected user, and stops getting them after it answers an error."""

import time

from helpers import free_port, q, tostr
from irc import Component

PORT = free_port()
APP = "push.localhost"
SECRET = "push-secret"
SERVER_OPTS = {"sets": ["component.listen=127.0.0.1:%d" % PORT,
                        "component.secret.%s=%s" % (APP, SECRET)]}
NS_PUSH = "urn:xmpp:push:0"
NS_PUBSUB = "http://jabber.org/protocol/pubsub"


def test_component_app_server_gets_the_notification(server, login):
    app = Component(PORT, APP, SECRET).connect()
    try:
        jid, pw = server.add_user()
        a = login(jid, pw)
        a.iq("set", "<enable xmlns='%s' jid='%s' node='dev-1'/>" % (NS_PUSH, APP), check=True)
        a.close()
        b = login(presence=True)
        b.message(jid, "wake up")
        iq = app.expect("iq", lambda e: e.get("type") == "set" and e.get("from") == jid,
                        timeout=10)
        assert iq.get("to") == APP, tostr(iq)
        pub = iq.find("%s/%s" % (q(NS_PUBSUB, "pubsub"), q(NS_PUBSUB, "publish")))
        assert pub is not None and pub.get("node") == "dev-1", tostr(iq)
        assert "urn:xmpp:push:summary" in tostr(iq) and "wake up" not in tostr(iq)
        app.reply(iq)
        # XEP-0357 5: an error from the app server ends that registration
        b.message(jid, "again")
        iq = app.expect("iq", lambda e: e.get("type") == "set" and e.get("from") == jid,
                        timeout=10)
        app.reply(iq, "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:"
                  "xmpp-stanzas'/></error>", type_="error")
        # the error travels app -> batond on its own path: wait until it was taken in
        deadline = time.monotonic() + 10
        while "refused a notification" not in server.stderr_text():
            assert time.monotonic() < deadline, "the app server's error was not taken"
            time.sleep(0.05)
        b.message(jid, "third")
        app.no_stanza("iq", lambda e: e.get("from") == jid, timeout=1.5)
        # the messages themselves wait for the user
        a = login(jid, pw, presence=True)
        for text in ("wake up", "again", "third"):
            a.expect_message(body=text)
    finally:
        app.close()
