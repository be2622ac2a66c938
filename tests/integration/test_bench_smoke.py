"""Smoke run of the benchmark load generator (bench/xmpp-load, issue 6) against the module's
batond: registers users in band, then runs each scenario for a second or two at a low rate and
checks the JSON line it prints, so `make bench` cannot rot unnoticed between benchmark runs.

Invariant: the whole module stays well under 30 s (50 users, low rates, short steps), and every
assertion is about what the generator saw from the server: logins done, messages delivered,
nothing lost.
"""

import json
import os
import subprocess

import pytest

from helpers import REPO, unique

SERVER_OPTS = {"allow_plaintext": True,
               "sets": ["c2s.registration=open", "c2s.registration_rate=0",
                        "limits.rate=0"]}

LOAD = os.path.join(REPO, "build", "xmpp-load")
USERS = 50
PASSWORD = "smoke-pw"


@pytest.fixture(scope="module")
def load(server):
    """load(*args) -> the JSON object of one xmpp-load run against the module's server."""
    build = subprocess.run(["make", "-s", "-C", os.path.join(REPO, "bench"),
                            "BUILD=" + os.path.join(REPO, "build")],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, "building xmpp-load failed:\n" + build.stderr
    prefix = unique("bench")

    def run(*args, timeout=20):
        argv = [LOAD, "--port", str(server.c2s_port), "--domain", server.domain,
                "--prefix", prefix, "--password", PASSWORD, "--server", "baton",
                "--server-pid", str(server.proc.pid), "--login-timeout", "10"] + list(args)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        assert p.returncode == 0, "xmpp-load %s exited %d:\n%s" % (args, p.returncode, p.stderr)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        assert len(lines) == 1, "expected one JSON line, got:\n" + p.stdout + p.stderr
        return json.loads(lines[0])

    reg = run("--scenario", "register", "--users", str(USERS), "--concurrency", "10")
    assert reg["registered"] == USERS and reg["failed"] == 0, reg
    return run


def test_login(load):
    r = load("--scenario", "login", "--users", str(USERS), "--concurrency", "10")
    assert r["logins"] == USERS and r["failed"] == 0, r
    assert r["logins_per_s"] > 0


def test_idle_reports_memory_per_connection(load):
    r = load("--scenario", "idle", "--users", str(USERS), "--settle", "0.5", "--duration", "0",
             "--src-addrs", "127.0.0.1,127.0.0.2")
    assert r["online"] == USERS and r["failed"] == 0, r
    assert r["rss_after_kib"] > 0 and "kib_per_conn" in r, r


def test_idle_tls(load):
    r = load("--scenario", "idle", "--users", "10", "--tls", "--settle", "0.5",
             "--duration", "0")
    assert r["online"] == 10 and r["failed"] == 0 and r["tls"] is True, r


def test_chat_delivers_everything(load):
    r = load("--scenario", "chat", "--users", str(USERS), "--rate", "200", "--duration", "2",
             "--settle", "0.5", "--drain", "5")
    assert r["sent"] >= 300, r
    assert r["delivered"] == r["sent"] and r["lost"] == 0, r
    assert r["msg_errors"] == 0 and r["stream_errors"] == 0, r
    assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"] + 0.01, r


def test_offline_backlog_is_flushed(load):
    r = load("--scenario", "offline", "--users", "20", "--backlog", "5", "--settle", "1")
    assert r["stored"] == 50 and r["delivered"] == 50 and r["lost"] == 0, r


def test_muc_fans_out(load):
    r = load("--scenario", "muc", "--users", "20", "--room-size", "10", "--rate", "20",
             "--duration", "1", "--settle", "0.5", "--drain", "5")
    assert r["sent"] >= 10 and r["expected"] == r["sent"] * 10, r
    assert r["delivered"] == r["expected"] and r["lost"] == 0, r
