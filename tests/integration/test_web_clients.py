"""Real web clients against batond's HTTP listener: @xmpp/client from node over XMPP-over-WebSocket
(RFC 7395, /xmpp-websocket), and Converse.js in headless Chromium with one user over BOSH
(XEP-0124/0206, /http-bind) and one over WebSocket, chatting through the Converse UI. The clients
are the node scripts in tests/web (see tests/web/README.md; `npm ci` there installs them).

Invariant: every test uses fresh accounts, and a node script that hangs is killed after its own
hard timeout plus a margin, so a broken transport fails a test instead of hanging the suite.
"""

import os

import pytest

import helpers
import nodejs

# helpers.Server starts every batond with an HTTP listener: --http 127.0.0.1:PORT, server.http_port
SERVER_OPTS = {"domain": "localhost"}


@pytest.fixture(scope="module")
def web(server):
    """(bosh URL, websocket URL) of the module's batond; skips without an HTTP listener and
    fails with what to do when node or the npm packages are missing."""
    port = nodejs.http_port(server)
    nodejs.require(("@xmpp/client", "converse.js", "playwright-core"))
    return ("http://127.0.0.1:%d/http-bind" % port, "ws://127.0.0.1:%d/xmpp-websocket" % port)


def test_xmpp_js_client_over_websocket(server, web):
    """@xmpp/client: two users log in over WebSocket, a chat message and a reply cross."""
    _, ws = web
    u1, p1 = server.add_user()
    u2, p2 = server.add_user()
    res = nodejs.run("xmpp-client-ws.mjs", [ws, server.domain, u1, p1, u2, p2], timeout=40)
    assert res["transport"] == "websocket"
    assert helpers.bare(res["user1"]) == u1 and helpers.bare(res["user2"]) == u2
    assert server.alive()


def test_converse_bosh_to_websocket(server, web):
    """Converse.js in Chromium: user 1 over BOSH starts a chat with user 2 (over WebSocket)
    through the UI and sends; user 2 sees it and replies; user 1 sees the reply."""
    nodejs.require(chromium=True)
    bosh, ws = web
    u1, p1 = server.add_user()
    u2, p2 = server.add_user()
    res = nodejs.run("converse.mjs", ["--bosh", bosh, "--ws", ws, "--domain", server.domain,
                                      "--user1", u1, "--pw1", p1, "--user2", u2, "--pw2", p2,
                                      "--chromium", nodejs.CHROMIUM], timeout=90)
    assert res["user1"]["transport"] == "bosh" and res["user2"]["transport"] == "websocket", res
    assert helpers.bare(res["user1"]["jid"]) == u1 and helpers.bare(res["user2"]["jid"]) == u2
    assert server.alive()
