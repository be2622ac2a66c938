"""Converse.js group chat against batond's MUC service (XEP-0045 at conference.<domain>): in headless
Chromium, one user over BOSH (XEP-0124/0206) and one over WebSocket (RFC 7395) join a room through
Converse's "Add groupchat" dialog, see each other as occupants, exchange messages, one leaves and
rejoins and must get the earlier messages back (the room's MAM archive, XEP-0313) exactly once.
The client is tests/web/converse-muc.mjs (see tests/web/README.md; `npm ci` there installs it).

Invariant: every test uses fresh accounts and a fresh room, and the node script is killed after its
own hard timeout (90 s) plus a margin, so a broken server fails the test instead of hanging it.
"""

import helpers
import nodejs

SCRIPT = "converse-muc.mjs"

# helpers.Server starts every batond with an HTTP listener: --http 127.0.0.1:PORT, server.http_port
SERVER_OPTS = {"domain": "localhost"}


def run_converse_muc(server, timeout=120):
    """Runs converse-muc.mjs against the module's batond with two fresh users; returns its JSON
    result, or fails the test with the script's report (stage, room state, browser consoles)."""
    port = nodejs.http_port(server)
    nodejs.require(("converse.js", "playwright-core"), chromium=True)
    u1, p1 = server.add_user()
    u2, p2 = server.add_user()
    args = ["--bosh", "http://127.0.0.1:%d/http-bind" % port,
            "--ws", "ws://127.0.0.1:%d/xmpp-websocket" % port,
            "--domain", server.domain, "--room", helpers.unique("converse-muc"),
            "--user1", u1, "--pw1", p1, "--user2", u2, "--pw2", p2,
            "--chromium", nodejs.CHROMIUM]
    # on failure the head of stderr names the stage and the room state, the tail the logs
    res = nodejs.run(SCRIPT, args, timeout, err_head=6000, err_tail=18000)
    assert helpers.bare(res["user1"]["jid"]) == u1 and helpers.bare(res["user2"]["jid"]) == u2
    return res


def test_converse_rooms(server):
    """Rooms behave as Converse.js expects: created on first join (the creator owns it), both
    users listed as occupants, subject and groupchat messages shown to both, a leave removes the
    occupant, and after rejoining the earlier messages are shown once each."""
    res = run_converse_muc(server)
    assert res["room"].endswith("@conference." + server.domain), res
    assert res["user1"]["transport"] == "bosh" and res["user2"]["transport"] == "websocket", res
    assert res["creator_affiliation"] == "owner", res
    assert res["room_features"]["mam_enabled"], res
    assert all(c["shown"] == 1 and c["models"] == 1 for c in res["history"]), res
    assert server.alive()
