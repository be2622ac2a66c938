"""Harness for the SMS integration tests (test_sms*.py): the SMSC doubles of tests/sms (SMPP on
node, CIMD2 in Python), the link proxy and baton-smsbuf as subprocesses on free ports, with their
logs in the test's tmp dir, small HTTP helpers for the doubles' control APIs and waits with
deadlines.

Invariant: every process started here is stopped by its owner (SIGTERM, then SIGKILL after 5 s),
every wait has a deadline and raises AssertionError naming what it waited for, and an SMSC is
only stopped after asserting that its `violations` counter is 0 (R2: stop-and-wait).
"""

import itertools
import json
import os
import secrets
import select
import signal
import subprocess
import time
import urllib.request

import pytest

import helpers
from helpers import free_port

SMS_DIR = os.path.join(helpers.REPO, "tests", "sms")
# next to the batond under test (scripts/test.sh sets BATOND to $build/batond), or $SMSBUF
SMSBUF = os.path.abspath(os.environ.get(
    "SMSBUF", os.path.join(os.path.dirname(helpers.BATOND), "baton-smsbuf")))
PYTHON = "/usr/bin/python3"
SMSC_USER, SMSC_PASSWORD = "baton", "s3cret"
SHORT_CODE = "12345"
LINK_SECRET = "link-s3cret"

# the doubles' defaults (tests/sms/README.md), restored by Smsc.clean()
DEFAULT_CONFIG = {"submit_delay_ms": 20, "receipts": "delivered", "receipt_delay_ms": 50,
                  "reject": {}, "throttle_next": 0, "mo_retry_ms": 500, "refuse_bind": False}


def wait_until(pred, timeout=5.0, what="condition", interval=0.05):
    """Polls pred until it returns something true; returns that, or raises after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)"
                                 % (timeout, what, last))
        time.sleep(interval)


def quiet(smsc, settle=1.0, timeout=20.0):
    """Waits until smsc has seen no new submit or MO state change for settle seconds (what an
    earlier, failed test left in flight has gone out); gives up silently after timeout."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        st = smsc.state()
        now = (st["submit_pdus"], [(m["id"], m["state"]) for m in st["mo"]])
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            return
        time.sleep(0.1)


def log_offsets(*procs):
    """{Proc: current log size}: where this test's part of each log begins."""
    return [(p, p.log_size()) for p in procs if p is not None]


def show_logs(request, offsets, n=40):
    """Writes the tails of the logs since offsets to the terminal (after a failed test: batond's
    stderr is attached by conftest, these are baton-smsbuf's, the SMSC's and the proxy's)."""
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    for p, since in offsets:
        text = "---- %s log (%s), during %s:\n%s" % (p.name, p.logpath, request.node.name,
                                                       p.tail(n, since))
        if tr is not None:
            tr.write_line(text)
        else:
            print(text)


def http(port, method, path, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw.strip() else {}


def read_tail(path, n=60, since=0):
    try:
        with open(path, "rb") as f:
            f.seek(since)
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


class Proc:
    """A subprocess with its stderr (and stdout) in a log file."""

    def __init__(self, name, argv, logpath, cwd=None):
        self.name = name
        self.argv = argv
        self.logpath = str(logpath)
        self.cwd = cwd
        self.proc = None

    def start(self, ready_line=None, timeout=10.0):
        log = open(self.logpath, "ab")
        log.write(b"==== start: %s\n" % " ".join(self.argv).encode())
        log.flush()
        out = subprocess.PIPE if ready_line else log
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=log)
        log.close()
        if ready_line:
            deadline = time.monotonic() + timeout
            line = b""
            while time.monotonic() < deadline:
                r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
                if r:
                    line = self.proc.stdout.readline()
                    break
                if self.proc.poll() is not None:
                    break
            if line.strip() != ready_line.encode():
                self.kill()
                raise AssertionError("%s did not print %r (got %r); log:\n%s"
                                     % (self.name, ready_line, line, self.tail()))
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM; returns the exit status (None when it had to be killed)."""
        if self.proc is None:
            return 0
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
        self._close()
        return rc

    def kill(self):
        """SIGKILL (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self):
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def log_size(self):
        try:
            return os.path.getsize(self.logpath)
        except OSError:
            return 0

    def log_text(self, since=0):
        try:
            with open(self.logpath, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=60, since=0):
        return read_tail(self.logpath, n, since)


# ---------------------------------------------------------------------------------------------
# SMSC doubles


class Smsc:
    """One SMSC double (protocol 'smpp' or 'cimd2') with its control API."""

    def __init__(self, protocol, logdir, window=1):
        self.protocol = protocol
        self.port = free_port()
        self.control = free_port()
        while self.control == self.port:
            self.control = free_port()
        self.window = window
        if protocol == "smpp":
            argv = ["node", os.path.join(SMS_DIR, "smsc-smpp.mjs"), "--system-id", SMSC_USER]
        elif protocol == "cimd2":
            argv = [PYTHON, os.path.join(SMS_DIR, "cimd2_smsc.py"), "--user", SMSC_USER]
        else:
            raise ValueError(protocol)
        argv += ["--password", SMSC_PASSWORD, "--port", str(self.port),
                 "--control", str(self.control), "--window", str(window)]
        self.p = Proc("smsc-" + protocol, argv, os.path.join(str(logdir), "smsc-%s.log" % protocol),
                      cwd=SMS_DIR)

    def start(self):
        self.p.start(ready_line="ready")
        return self

    def stop(self, check=True):
        """Asserts violations == 0 (when check), then SIGTERM."""
        st = None
        if check and self.p.alive():
            st = self.state()
        rc = self.p.stop()
        if st is not None:
            assert st["violations"] == 0, \
                "SMSC (%s) counted %d stop-and-wait violations (max_outstanding %s); errors: %s" % (
                    self.protocol, st["violations"], st.get("max_outstanding"), st.get("errors"))
        return rc

    def get(self, path):
        return http(self.control, "GET", path)

    def post(self, path, body=None):
        return http(self.control, "POST", path, body if body is not None else {})

    def state(self):
        return self.get("/state")

    def config(self, **kw):
        return self.post("/config", kw)

    def reset(self):
        return self.post("/reset")

    def clean(self):
        """Default config and forgotten history; asserts no violations happened before."""
        st = self.state()
        assert st["violations"] == 0, "SMSC violations before reset: %s" % st
        self.config(**DEFAULT_CONFIG)
        self.reset()

    def mo(self, frm, text, to=SHORT_CODE, coding="auto"):
        return self.post("/mo", {"from": frm, "to": to, "text": text, "coding": coding})["id"]

    def submits(self):
        return self.state()["submits"]

    def wait_submits(self, n, timeout=10.0, pred=None):
        """Waits until at least n whole submits (matching pred) are there; returns them all."""
        def have():
            subs = [s for s in self.submits() if pred is None or pred(s)]
            return subs if len(subs) >= n else None
        return wait_until(have, timeout, "%d submits at the SMSC (%s)" % (n, self.protocol),
                          interval=0.1)

    def wait_mo_acked(self, ids, timeout=10.0):
        ids = set(ids)

        def done():
            mo = {m["id"]: m for m in self.state()["mo"] if m["id"] in ids}
            return mo if len(mo) == len(ids) and all(m["state"] == "acked"
                                                     for m in mo.values()) else None
        return wait_until(done, timeout, "MO %s acked by the client" % sorted(ids), interval=0.1)

    def wait_bound(self, timeout=10.0):
        return wait_until(lambda: self.state()["bound"], timeout, "a bind at the SMSC")


# ---------------------------------------------------------------------------------------------
# The link proxy


class Proxy:
    """tests/sms/linkproxy.py between baton-smsbuf and batond."""

    def __init__(self, to_port, logdir):
        self.port = free_port()
        self.control = free_port()
        argv = [PYTHON, os.path.join(SMS_DIR, "linkproxy.py"), "--listen", str(self.port),
                "--to", "127.0.0.1:%d" % to_port, "--control", str(self.control)]
        self.p = Proc("linkproxy", argv, os.path.join(str(logdir), "linkproxy.log"))

    def start(self):
        self.p.start(ready_line="ready")
        return self

    def stop(self):
        return self.p.stop()

    def post(self, path, body=None):
        return http(self.control, "POST", path, body if body is not None else {})

    def state(self):
        return http(self.control, "GET", "/state")

    def blackhole(self, on):
        return self.post("/blackhole", {"on": on})

    def cut(self):
        return self.post("/cut")

    def refuse(self, on):
        return self.post("/refuse", {"on": on})

    def delay(self, ms):
        return self.post("/config", {"delay_ms": ms})


# ---------------------------------------------------------------------------------------------
# baton-smsbuf


class SmsBuf:
    """One baton-smsbuf toward an Smsc and a batond SMS link port."""

    def __init__(self, smsc, link_port, datadir, logdir, secret=LINK_SECRET, plaintext=True,
                 ca=None, domain="localhost", window=None, ring=None, name="smsbuf",
                 sets=("smsbuf.keepalive=1s", "smsbuf.reconnect_max=2s", "smsbuf.retry=500ms"),
                 extra=()):
        self.smsc = smsc
        self.datadir = str(datadir)
        os.makedirs(self.datadir, exist_ok=True)
        argv = [SMSBUF, "--smsc", "127.0.0.1:%d" % smsc.port, "--smsc-protocol", smsc.protocol,
                "--smsc-user", SMSC_USER, "--smsc-password", SMSC_PASSWORD,
                "--link", "127.0.0.1:%d" % link_port, "--link-secret", secret,
                "--data", self.datadir, "--source-addr", SHORT_CODE, "--name", name]
        if plaintext:
            argv.append("--link-plaintext")
        if ca:
            argv += ["--link-ca", str(ca), "--domain", domain]
        if window is not None:
            argv += ["--smsc-window", str(window)]
        if ring is not None:
            argv += ["--ring", str(ring)]
        for s in sets:
            argv += ["--set", s]
        argv += list(extra)
        self.p = Proc("baton-smsbuf", argv, os.path.join(str(logdir), "smsbuf-%s.log" % name))

    LINK_UP = "link to batond at "

    def start(self, wait_bound=True, wait_link=True):
        if not os.access(SMSBUF, os.X_OK):
            pytest.fail("%s not built (run `make`)" % SMSBUF, pytrace=False)
        since = self.p.log_size()
        self.p.start()
        if wait_link:
            self.wait_link_up(since)
        if wait_bound:
            try:
                self.smsc.wait_bound()
            except AssertionError:
                raise AssertionError("baton-smsbuf did not bind to the SMSC; log:\n%s"
                                     % self.p.tail())
            time.sleep(0.1)
            assert self.p.alive(), "baton-smsbuf exited:\n%s" % self.p.tail()
        return self

    def wait_link_up(self, since=0, timeout=10.0):
        """Waits for smsbuf's log line "link to batond at ... is up" written after offset
        since."""
        def up():
            assert self.p.alive(), "baton-smsbuf exited:\n%s" % self.p.tail()
            return any(self.LINK_UP in ln and "is up" in ln
                       for ln in self.p.log_text(since).splitlines())
        try:
            wait_until(up, timeout, "the link to batond", interval=0.05)
        except AssertionError as e:
            raise AssertionError("%s; smsbuf log:\n%s" % (e, self.p.tail(since=since)))

    def stop(self):
        rc = self.p.stop()
        assert rc == 0, "baton-smsbuf exit status %s on SIGTERM; log:\n%s" % (rc, self.p.tail())
        text = self.p.log_text()
        for marker in helpers.SANITIZER_MARKERS:
            assert marker not in text, "sanitizer report in baton-smsbuf's log:\n%s" % text[-4000:]
        return rc

    def kill(self):
        self.p.kill()


# ---------------------------------------------------------------------------------------------
# batond side


def batond_sets(keepalive="1s", ring=None):
    sets = ["sms.keepalive=%s" % keepalive]
    if ring is not None:
        sets.append("sms.ring=%d" % ring)
    return sets


def batond_args(link_port, secret=LINK_SECRET):
    return ["--sms-link", "127.0.0.1:%d" % link_port, "--sms-secret", secret]


def phone_jid(number, domain="localhost"):
    return "%s@sms.%s" % (number, domain)


_numbers = itertools.count(secrets.randbelow(5000000) * 100)


def new_number(prefix="+4670"):
    """A fresh E.164 number (prefix and 7 digits) for one test: nobody has written to it."""
    return "%s%07d" % (prefix, next(_numbers) % 10000000)


def body(el):
    return el.findtext(helpers.q(helpers.NS_CLIENT, "body"))


def gsm_parts(septets):
    """How many SMS a GSM 03.38 text of this many septets takes (3GPP TS 23.040 9.2.3.24.1:
    160 in one, 153 per part of a concatenated SMS with its 6-byte UDH)."""
    return 1 if septets <= 160 else -(-septets // 153)


def ucs2_parts(units):
    """The same for UCS-2: 70 UTF-16 units in one, 67 per concatenated part."""
    return 1 if units <= 70 else -(-units // 67)


GSM_EXT = set("^{}\\[~]|\u20ac\f")


def septets(text):
    return sum(2 if ch in GSM_EXT else 1 for ch in text)


def utf16_units(text):
    return len(text.encode("utf-16-le")) // 2
