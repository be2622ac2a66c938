"""SIP against an independent implementation: sipp (Debian's sip-tester) registers, answers and
sends MESSAGEs through the real batond, with digest challenges, over UDP (the scenarios of
bench/sip/, a few messages instead of thousands). What baton and our own Python UA might agree
on wrongly, sipp would not.

Invariant: every sipp run has a deadline and its final statistics are read: a message counts
only if it got its 200.
"""

import os
import shutil
import subprocess

import pytest

from helpers import REPO, free_port

SCEN = os.path.join(REPO, "bench", "sip")
SIP_PORT = free_port()
SERVER_OPTS = {"extra_args": ["--sip", "127.0.0.1:%d" % SIP_PORT],
               "sets": ["sip.digest=MD5"]}  # sipp answers only the first challenge, MD5 only

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None,
                                reason="sipp (sip-tester) is installed by scripts/deps.sh test")


def udp_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def csv(tmp_path, name, user, peer, pw):
    p = tmp_path / name
    p.write_text("SEQUENTIAL\n%s;localhost;;%s;%s\n" % (user, peer, pw))
    return str(p)


def counts(out):
    ok = failed = None
    for line in out.splitlines():
        if "Successful call" in line:
            ok = int(line.split("|")[-1])
        elif "Failed call" in line:
            failed = int(line.split("|")[-1])
    return ok, failed


def sipp(tmp_path, *args, timeout=30):
    r = subprocess.run(["sipp", "127.0.0.1:%d" % SIP_PORT, "-i", "127.0.0.1", "-nostdin", "-nd",
                        "-timeout", str(timeout - 5), "-timeout_error"] + list(args),
                       cwd=str(tmp_path), capture_output=True, text=True, timeout=timeout)
    return r


def test_sipp_register_and_messages(server, tmp_path):
    alice, apw = server.add_user()
    bob, bpw = server.add_user()
    a, b = alice.split("@")[0], bob.split("@")[0]
    bport = udp_port()
    r = sipp(tmp_path, "-sf", os.path.join(SCEN, "register.xml"),
             "-inf", csv(tmp_path, "b.csv", b, a, bpw), "-m", "1", "-p", str(bport),
             "-au", b, "-ap", bpw)
    assert counts(r.stdout) == (1, 0), r.stdout[-3000:]
    uas = subprocess.Popen(["sipp", "-sf", os.path.join(SCEN, "uas.xml"), "-p", str(bport),
                            "-i", "127.0.0.1", "-nostdin", "-nd", "-m", "20", "-trace_msg"],
                           cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        r = sipp(tmp_path, "-sf", os.path.join(SCEN, "message.xml"),
                 "-inf", csv(tmp_path, "a.csv", a, b, apw), "-m", "20", "-r", "20",
                 "-p", str(udp_port()), "-au", a, "-ap", apw)
        assert counts(r.stdout) == (20, 0), r.stdout[-3000:]
        out, _ = uas.communicate(timeout=20)
        assert counts(out)[0] == 20, out[-3000:]
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()
    # What bob's phone received: the text, from alice, with the flag kept (R2).
    log = "".join(p.read_text() for p in tmp_path.glob("uas_*_messages.log"))
    assert log.count("MESSAGE sip:") == 20
    assert "From: <sip:%s>" % alice in log
    assert "Content-Disposition: store&fwd" in log
    assert "benchmark message" in log


def test_sipp_wrong_password_refused(server, tmp_path):
    alice, apw = server.add_user()
    a = alice.split("@")[0]
    r = sipp(tmp_path, "-sf", os.path.join(SCEN, "register.xml"),
             "-inf", csv(tmp_path, "w.csv", a, a, "wrong"), "-m", "1", "-p", str(udp_port()),
             "-au", a, "-ap", "wrong", timeout=20)
    # The second REGISTER is answered 403, which the scenario does not expect: sipp fails.
    assert r.returncode != 0 and counts(r.stdout)[0] == 0, r.stdout[-3000:]
    assert "refused: wrong credentials" in server.stderr_text()
