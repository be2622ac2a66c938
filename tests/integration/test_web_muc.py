"""Converse.js group chat against batond's MUC service (XEP-0045 at conference.<domain>): in headless
Chromium, one user over BOSH (XEP-0124/0206) and one over WebSocket (RFC 7395) join a room through
Converse's "Add groupchat" dialog, see each other as occupants, exchange messages, one leaves and
rejoins and must get the earlier messages back (the room's MAM archive, XEP-0313) exactly once.
The client is tests/web/converse-muc.mjs (see tests/web/README.md; `npm ci` there installs it).

Invariant: every test uses fresh accounts and a fresh room, and the node script is killed after its
own hard timeout (90 s) plus a margin, so a broken server fails the test instead of hanging it.
"""

import json
import os
import shutil
import subprocess

import pytest

import helpers

WEB = os.path.join(helpers.REPO, "tests", "web")
SCRIPT = "converse-muc.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# helpers.Server starts every batond with an HTTP listener: --http 127.0.0.1:PORT, server.http_port
SERVER_OPTS = {"domain": "localhost"}


def _text(b):
    if b is None:
        return ""
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def run_converse_muc(server, timeout=120):
    """Runs converse-muc.mjs against the module's batond with two fresh users; returns its JSON
    result, or fails the test with the script's report (stage, room state, browser consoles)."""
    port = getattr(server, "http_port", None)
    if not port:
        pytest.skip("helpers.Server started batond without an HTTP listener (server.http_port)")
    if shutil.which("node") is None:
        pytest.fail("node not found: the web client tests need Node.js >= 20.10 and npm",
                    pytrace=False)
    for pkg in ("converse.js", "playwright-core"):
        if not os.path.isdir(os.path.join(WEB, "node_modules", pkg)):
            pytest.fail("tests/web/node_modules/%s missing: run `npm ci` in tests/web" % pkg,
                        pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s missing: scripts/deps.sh test must install Debian's chromium" % CHROMIUM,
                    pytrace=False)
    u1, p1 = server.add_user()
    u2, p2 = server.add_user()
    argv = ["node", os.path.join(WEB, SCRIPT),
            "--bosh", "http://127.0.0.1:%d/http-bind" % port,
            "--ws", "ws://127.0.0.1:%d/xmpp-websocket" % port,
            "--domain", server.domain, "--room", helpers.unique("converse-muc"),
            "--user1", u1, "--pw1", p1, "--user2", u2, "--pw2", p2, "--chromium", CHROMIUM]
    try:
        p = subprocess.run(argv, cwd=WEB, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s still running after %d s (its own hard timeout did not fire)\n"
                    "stdout:\n%s\nstderr:\n%s" % (SCRIPT, timeout, _text(e.stdout),
                                                  _text(e.stderr)[-8000:]), pytrace=False)
    if p.returncode != 0:
        err = p.stderr
        if len(err) > 24000:  # the head names the stage and the room state, the tail the logs
            err = err[:6000] + "\n[...]\n" + err[-18000:]
        pytest.fail("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                    % (SCRIPT, p.returncode, p.stdout[-4000:], err), pytrace=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, "%s printed no JSON result:\n%s" % (SCRIPT, p.stdout)
    res = json.loads(lines[-1])
    print(SCRIPT, res)  # shown with -s, and in the report of a failed assertion below
    assert res.get("ok") is True, res
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
