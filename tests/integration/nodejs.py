"""Running the node scripts in tests/web (see tests/web/README.md) from the integration tests: the
checks for what they need (an HTTP listener on batond, node, the npm packages, Debian's chromium)
and one run of a script that prints a JSON result line.

Invariant: a missing tool fails the test with what to install (only a batond without an HTTP
listener skips it), and a script that outlives the timeout given is killed and fails the test, so
a hung client never hangs the suite.
"""

import json
import os
import shutil
import subprocess

import pytest

import helpers

WEB = os.path.join(helpers.REPO, "tests", "web")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def http_port(server):
    """The HTTP port of server's batond; skips the test when it has none."""
    port = getattr(server, "http_port", None)
    if not port:
        pytest.skip("helpers.Server started batond without an HTTP listener (server.http_port)")
    return port


def require(packages=(), chromium=False):
    """Fails the test with what to do when node, one of packages in tests/web/node_modules or
    (with chromium) the browser at CHROMIUM is missing."""
    if shutil.which("node") is None:
        pytest.fail("node not found: the web client tests need Node.js >= 20.10 and npm",
                    pytrace=False)
    for pkg in packages:
        if not os.path.isdir(os.path.join(WEB, "node_modules", pkg)):
            pytest.fail("tests/web/node_modules/%s missing: run `npm ci` in tests/web" % pkg,
                        pytrace=False)
    if chromium and not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s missing: scripts/deps.sh test must install Debian's chromium" % CHROMIUM,
                    pytrace=False)


def run(script, args, timeout, err_head=0, err_tail=12000):
    """Runs tests/web/<script> with args; returns its last JSON line once that says "ok": true,
    or fails the test with the script's output (it names the stage that failed and, for the
    browsers, their consoles). A failed script's stderr is cut to its first err_head and last
    err_tail characters."""
    argv = ["node", os.path.join(WEB, script)] + list(args)
    try:
        p = subprocess.run(argv, cwd=WEB, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%s still running after %d s (its own hard timeout did not fire)\n"
                    "stdout:\n%s\nstderr:\n%s" % (script, timeout, text(e.stdout),
                                                  text(e.stderr)[-8000:]), pytrace=False)
    if p.returncode != 0:
        err = p.stderr
        if len(err) > err_head + err_tail:
            err = (err[:err_head] + "\n[...]\n" if err_head else "") + err[-err_tail:]
        pytest.fail("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                    % (script, p.returncode, p.stdout[-4000:], err), pytrace=False)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert lines, "%s printed no JSON result:\n%s" % (script, p.stdout)
    res = json.loads(lines[-1])
    print(script, res)  # shown with -s, and in the report of a failed assertion
    assert res.get("ok") is True, res
    return res


def text(b):
    """b (bytes, str or None, as subprocess gives it) as str."""
    if b is None:
        return ""
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b
