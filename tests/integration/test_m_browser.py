"""/m/, batond's web client without JavaScript, in real headless Chromium: tests/web/m-chromium.mjs
logs a web user in by typing and clicking, sends a message to a TCP XMPP user through the chat
form, and reloads until the TCP user's answer (with HTML-special characters) shows; then logs
out. The script also checks that no page can run script (no <script>, a CSP of default-src
'none'). See tests/web/README.md.

Invariant: the node script is killed if it outlives its own hard timeout plus a margin, so a
hung browser fails the test instead of hanging the suite; its stdout carries only JSON lines.
"""

import json
import os
import queue
import subprocess
import threading
import time

import pytest

import helpers
import nodejs
from helpers import NS_CLIENT, q

SCRIPT = os.path.join(nodejs.WEB, "m-chromium.mjs")
# M_SHOTS=DIR: the script saves each page it passes as DIR/m-*.png (and the failing page)

SERVER_OPTS = {"domain": "localhost"}


class Script:
    """m-chromium.mjs as a child: JSON lines from its stdout arrive on a queue (a reader
    thread), stderr is collected for the failure report."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, cwd=nodejs.WEB, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  bufsize=1)
        self.lines = queue.Queue()
        self.stdout, self.stderr = [], []
        threading.Thread(target=self._read, args=(self.p.stdout, self.stdout, True),
                         daemon=True).start()
        self.err = threading.Thread(target=self._read, args=(self.p.stderr, self.stderr, False),
                                    daemon=True)
        self.err.start()

    def _read(self, f, keep, queued):
        for ln in f:
            keep.append(ln)
            if queued and ln.startswith("{"):
                self.lines.put(json.loads(ln))
        if queued:
            self.lines.put(None)  # end of output

    def report(self):
        self.err.join(timeout=2)
        return "stdout:\n%s\nstderr:\n%s" % ("".join(self.stdout)[-4000:],
                                              "".join(self.stderr)[-12000:])

    def next_line(self, timeout):
        """The next JSON line, or a test failure naming what the script said."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail("m-chromium.mjs printed nothing for %d s\n%s" % (timeout, self.report()),
                        pytrace=False)
        if line is None:
            rc = self.p.wait(timeout=5)
            pytest.fail("m-chromium.mjs exited %s early\n%s" % (rc, self.report()),
                        pytrace=False)
        return line

    def send(self, obj):
        self.p.stdin.write(json.dumps(obj) + "\n")
        self.p.stdin.flush()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=5)


@pytest.mark.parametrize("js", [True, False], ids=["js-on", "js-off"])
def test_m_in_chromium(server, clients, js):
    """Log in, send, receive HTML-special characters as text, log out: all by clicking; once
    as an ordinary browser, once with JavaScript switched off in Chromium."""
    nodejs.require(("playwright-core",), chromium=True)
    jid, pw = server.add_user()
    peer = server.new_user_client(presence=True)
    clients.append(peer)
    peer_bare = helpers.bare(peer.jid)
    s = Script(["node", SCRIPT, "--base", "http://127.0.0.1:%d" % server.http_port,
                "--user", jid.split("@")[0], "--pw", pw, "--peer-jid", peer_bare,
                "--chromium", nodejs.CHROMIUM]
               + ([] if js else ["--no-js"])
               + (["--screenshots", os.environ["M_SHOTS"]] if os.environ.get("M_SHOTS") else []))
    try:
        sent = s.next_line(timeout=40)
        assert sent.get("stage") == "sent", (sent, s.report())
        m = peer.wait_for("message", pred=lambda e: e.find(q(NS_CLIENT, "body")) is not None)
        assert m.findtext(q(NS_CLIENT, "body")) == sent["body"]
        assert m.get("from").startswith(jid + "/web-"), m.get("from")
        assert m.get("type") == "chat"

        reply = "reply <b>&amp;</b> ok %d" % int(time.time() * 1000)
        peer.message(jid, reply)  # escaped on the wire; the browser must show it literally
        s.send({"expect": reply})
        res = s.next_line(timeout=35)
        rc = s.p.wait(timeout=10)
        assert rc == 0 and res.get("ok") is True, "exit %s, %s\n%s" % (rc, res, s.report())
        print("m-chromium.mjs", res)
        assert res["received"] == reply and res["pages_checked"] >= 6, res
        assert res["js"] is js, res
        assert "default-src 'none'" in res["csp"] and "script-src" not in res["csp"], res
    except subprocess.TimeoutExpired:
        pytest.fail("m-chromium.mjs did not exit\n%s" % s.report(), pytrace=False)
    finally:
        s.kill()
    assert server.alive()
