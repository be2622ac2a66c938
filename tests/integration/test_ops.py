"""The operator contract of DESIGN.md against the real binaries: batonctl user management with
and without a running batond, `status`, batond's start-up errors (one clear line, non-zero
exit) and its clean shutdown on SIGTERM (<system-shutdown/> to clients, exit 0).

Invariant: tests that need their own batond start and stop it themselves in a fresh data
directory; the module's shared server is only used for batonctl-while-running tests.
"""

import os
import re
import signal
import socket
import subprocess

import pytest

import slix
from helpers import BATOND, AuthFailed, Server, ctl, free_port, stop_and_check, unique

SERVER_OPTS = {"domain": "localhost"}


def users(datadir):
    p = ctl(datadir, "user", "list")
    return [line.strip() for line in p.stdout.splitlines() if line.strip()]


def fails(p, *words):
    """Asserts a non-zero exit with a message naming each word."""
    out = p.stdout + p.stderr
    assert p.returncode != 0, "exit 0; output %r" % out
    assert out.strip(), "failed silently"
    for w in words:
        assert w in out, "message %r does not mention %r" % (out, w)


# ---- batonctl without a server


def test_user_add_list_del_offline(tmp_path):
    a, b, c = ("%s@localhost" % unique() for _ in range(3))
    for jid in (a, b, c):
        ctl(tmp_path, "user", "add", jid, "secret")
    assert sorted(users(tmp_path)) == sorted([a, b, c])  # one JID per line
    ctl(tmp_path, "user", "del", b)
    assert sorted(users(tmp_path)) == sorted([a, c])
    ctl(tmp_path, "user", "passwd", a, "other")
    assert sorted(users(tmp_path)) == sorted([a, c])


def test_duplicate_add_fails(tmp_path):
    jid = "%s@localhost" % unique()
    ctl(tmp_path, "user", "add", jid, "one")
    fails(ctl(tmp_path, "user", "add", jid, "two", check=False), jid)
    assert users(tmp_path) == [jid]


def test_del_unknown_fails(tmp_path):
    ctl(tmp_path, "user", "add", "%s@localhost" % unique(), "x")
    jid = "%s@localhost" % unique()
    fails(ctl(tmp_path, "user", "del", jid, check=False), jid)


def test_passwd_unknown_fails(tmp_path):
    ctl(tmp_path, "user", "add", "%s@localhost" % unique(), "x")
    jid = "%s@localhost" % unique()
    fails(ctl(tmp_path, "user", "passwd", jid, "pw", check=False), jid)


@pytest.mark.parametrize("jid", ["@localhost", "user@", "x<y@localhost", "a@b@localhost",
                                 "x" * 1100 + "@localhost"])
def test_bad_jid_fails(tmp_path, jid):
    p = ctl(tmp_path, "user", "add", jid, "pw", check=False)
    fails(p)
    assert "Traceback" not in p.stderr and len(p.stderr.splitlines()) <= 3, p.stderr


def test_usage_errors(tmp_path):
    for args in (["user"], ["user", "add", "only@localhost"], ["frobnicate"]):
        p = ctl(tmp_path, *args, check=False)
        assert p.returncode != 0 and (p.stdout + p.stderr).strip(), (args, p)


def test_status_without_server(tmp_path):
    ctl(tmp_path, "user", "add", "%s@localhost" % unique(), "x")
    p = ctl(tmp_path, "status", check=False)
    out = (p.stdout + p.stderr).lower()
    assert re.search(r"not running|stopped|no batond", out), out


def test_users_added_offline_can_log_in(tmp_path_factory, clients):
    datadir = tmp_path_factory.mktemp("offline-users")
    jid = "%s@localhost" % unique()
    ctl(datadir, "user", "add", jid, "early-bird")
    srv = Server(datadir).start()
    try:
        c = srv.login(jid, "early-bird")
        c.close()
    finally:
        stop_and_check(srv)


# ---- batonctl with the module's server running


def test_status_with_server(server):
    p = server.ctl("status")
    out = p.stdout.lower()
    assert "running" in out and "not running" not in out, p.stdout


def test_add_user_while_running(server, clients):
    jid, pw = server.add_user()
    c = slix.SlixClient(server, jid, pw)  # logs in immediately with the new account
    clients.append(c)
    c.connect()
    assert jid in users(server.datadir)


def test_passwd_while_running(server, login):
    jid, pw = server.add_user()
    login(jid, pw).close()
    server.ctl("user", "passwd", jid, "new-" + pw)
    login(jid, "new-" + pw).close()
    c = server.client(jid, pw)
    with pytest.raises(AuthFailed) as e:
        c.connect()
    c.abort()
    assert e.value.condition == "not-authorized"


def test_duplicate_add_keeps_password(server, login):
    jid, pw = server.add_user()
    fails(server.ctl("user", "add", jid, "other", check=False))
    login(jid, pw).close()


def test_del_while_running(server, login):
    jid, pw = server.add_user()
    login(jid, pw).close()
    server.ctl("user", "del", jid)
    assert jid not in users(server.datadir)
    c = server.client(jid, pw)
    with pytest.raises(AuthFailed):
        c.connect()
    c.abort()


def test_self_signed_certificate_created(server):
    assert os.path.exists(os.path.join(server.datadir, "cert.pem"))


# ---- batond start-up errors


def start_fails(tmp_path, *extra, c2s=None, tls=None, data=None):
    """Runs batond expecting it to exit non-zero within 10 s; returns its stderr."""
    argv = [BATOND, "--data", data or str(tmp_path), "--domain", "localhost",
            "--c2s", c2s or "127.0.0.1:%d" % free_port(),
            "--c2s-tls", tls or "127.0.0.1:%d" % free_port()] + list(extra)
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=10)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("batond kept running (%s); stderr: %s" % (argv, e.stderr))
    assert p.returncode != 0, "batond exited 0 on a start-up error: %s" % p.stderr
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert lines, "no message on stderr"
    # "one clear line": a start-up error must not drown in log noise
    assert len(lines) <= 4, "start-up error takes %d lines:\n%s" % (len(lines), p.stderr)
    return p.stderr


def test_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        err = start_fails(tmp_path, c2s="127.0.0.1:%d" % port)
    assert "127.0.0.1:%d" % port in err or str(port) in err, err


def test_tls_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        err = start_fails(tmp_path, tls="127.0.0.1:%d" % port)
    assert str(port) in err, err


def test_unknown_set_key(tmp_path):
    err = start_fails(tmp_path, "--set", "limits.nonsense=1")
    assert "limits.nonsense" in err, err


def test_bad_set_value(tmp_path):
    err = start_fails(tmp_path, "--set", "limits.stanza_size=lots")
    assert "limits.stanza_size" in err, err


def test_malformed_set(tmp_path):
    err = start_fails(tmp_path, "--set", "novalue")
    assert "novalue" in err, err


def test_unknown_option(tmp_path):
    err = start_fails(tmp_path, "--frobnicate")
    assert "frobnicate" in err, err


def test_bad_listen_address(tmp_path):
    err = start_fails(tmp_path, c2s="not-an-address")
    assert "not-an-address" in err, err


def test_unreadable_cert(tmp_path):
    missing = str(tmp_path / "missing-cert.pem")
    err = start_fails(tmp_path, "--cert", missing, "--key", str(tmp_path / "missing-key.pem"))
    assert "missing-cert.pem" in err or "missing-key.pem" in err, err


def test_garbage_cert(tmp_path):
    cert = tmp_path / "garbage.pem"
    cert.write_text("this is not a certificate\n")
    err = start_fails(tmp_path, "--cert", str(cert), "--key", str(cert))
    assert "garbage.pem" in err, err


def test_unusable_data_dir(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    err = start_fails(tmp_path, data=str(f / "sub"))
    assert "file/sub" in err or "data" in err.lower(), err


# ---- shutdown


def test_sigterm_closes_client_streams(tmp_path_factory, clients):
    srv = Server(tmp_path_factory.mktemp("sigterm")).start()
    try:
        jid, pw = srv.add_user()
        own = srv.login(jid, pw, presence=True)
        clients.append(own)
        sx = slix.SlixClient(srv, *srv.add_user())
        clients.append(sx)
        sx.connect()
        srv.proc.send_signal(signal.SIGTERM)
        # RFC 6120 4.9.3.19: clients see <system-shutdown/> and the stream closed
        assert own.wait_closed(timeout=10) == "system-shutdown"
        assert sx.disconnected.wait(10), "slixmpp client not disconnected"
        assert "system-shutdown" in sx.stream_errors, sx.stream_errors
        srv.proc.wait(10)
        assert srv.proc.returncode == 0, srv.stderr_tail()
    finally:
        srv.kill()


def test_sigterm_during_unauthenticated_connections(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("sigterm2")).start()
    socks = [socket.create_connection(("127.0.0.1", srv.c2s_port)) for _ in range(20)]
    try:
        stop_and_check(srv)
    finally:
        for s in socks:
            s.close()
        srv.kill()
