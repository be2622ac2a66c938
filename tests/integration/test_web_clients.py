"""Real web clients against batond's HTTP listener: @xmpp/client from node over XMPP-over-WebSocket
(RFC 7395, /xmpp-websocket), and Converse.js in headless Chromium with one user over BOSH
(XEP-0124/0206, /http-bind) and one over WebSocket, chatting through the Converse UI. The clients
are the node scripts in tests/web (see tests/web/README.md; `npm ci` there installs them).

Invariant: every test uses fresh accounts, and a node script that hangs is killed after its own
hard timeout plus a margin, so a broken transport fails a test instead of hanging the suite.
"""

import json
import os
import shutil
import subprocess

import pytest

import helpers

WEB = os.path.join(helpers.REPO, "tests", "web")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# helpers.Server starts every batond with an HTTP listener: --http 127.0.0.1:PORT, server.http_port
SERVER_OPTS = {"domain": "localhost"}


@pytest.fixture(scope="module")
def web(server):
    """(bosh URL, websocket URL) of the module's batond; skips without an HTTP listener and
    fails with what to do when node or the npm packages are missing."""
    port = getattr(server, "http_port", None)
    if not port:
        pytest.skip("helpers.Server started batond without an HTTP listener (server.http_port)")
    if shutil.which("node") is None:
        pytest.fail("node not found: the web client tests need Node.js >= 20.10 and npm",
                    pytrace=False)
    for pkg in ("@xmpp/client", "converse.js", "playwright-core"):
        if not os.path.isdir(os.path.join(WEB, "node_modules", pkg)):
            pytest.fail("tests/web/node_modules/%s missing: run `npm ci` in tests/web" % pkg,
                        pytrace=False)
    return ("http://127.0.0.1:%d/http-bind" % port, "ws://127.0.0.1:%d/xmpp-websocket" % port)


def run_node(script, args, timeout):
    """Runs tests/web/<script>; returns its JSON result line, or fails the test with the
    script's output (it names the stage that failed and, for Converse, the browser console)."""
    argv = ["node", os.path.join(WEB, script)] + list(args)
    try:
        p = subprocess.run(argv, cwd=WEB, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s still running after %d s (its own hard timeout did not fire)\n"
                    "stdout:\n%s\nstderr:\n%s" % (script, timeout, _text(e.stdout),
                                                  _text(e.stderr)[-8000:]), pytrace=False)
    if p.returncode != 0:
        pytest.fail("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                    % (script, p.returncode, p.stdout[-4000:], p.stderr[-12000:]), pytrace=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, "%s printed no JSON result:\n%s" % (script, p.stdout)
    res = json.loads(lines[-1])
    print(script, res)  # shown with -s, and in the report of a failed assertion below
    assert res.get("ok") is True, res
    return res


def _text(b):
    if b is None:
        return ""
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b


def test_xmpp_js_client_over_websocket(server, web):
    """@xmpp/client: two users log in over WebSocket, a chat message and a reply cross."""
    _, ws = web
    u1, p1 = server.add_user()
    u2, p2 = server.add_user()
    res = run_node("xmpp-client-ws.mjs", [ws, server.domain, u1, p1, u2, p2], timeout=40)
    assert res["transport"] == "websocket"
    assert helpers.bare(res["user1"]) == u1 and helpers.bare(res["user2"]) == u2
    assert server.alive()


def test_converse_bosh_to_websocket(server, web):
    """Converse.js in Chromium: user 1 over BOSH starts a chat with user 2 (over WebSocket)
    through the UI and sends; user 2 sees it and replies; user 1 sees the reply."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s missing: scripts/deps.sh test must install Debian's chromium"
                    % CHROMIUM, pytrace=False)
    bosh, ws = web
    u1, p1 = server.add_user()
    u2, p2 = server.add_user()
    res = run_node("converse.mjs", ["--bosh", bosh, "--ws", ws, "--domain", server.domain,
                                    "--user1", u1, "--pw1", p1, "--user2", u2, "--pw2", p2,
                                    "--chromium", CHROMIUM], timeout=90)
    assert res["user1"]["transport"] == "bosh" and res["user2"]["transport"] == "websocket", res
    assert helpers.bare(res["user1"]["jid"]) == u1 and helpers.bare(res["user2"]["jid"]) == u2
    assert server.alive()
