"""Tests of the CIMD2 SMSC simulator (tests/sms/cimd2_smsc.py) itself, without batond: a small
CIMD2 client written here drives it over TCP while the tests read and steer it over the HTTP
control API of tests/sms/README.md.

Invariant: every test starts its own simulator on free ports and stops it with SIGTERM, which
must end it with exit status 0 within 5 s; a test never depends on another's traffic.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

SIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sms", "cimd2_smsc.py")
sys.path.insert(0, os.path.dirname(SIM))
import cimd2_smsc  # noqa: E402  (the codec helpers, for the table-driven checks)

USER, PASSWORD = "baton", "secret"


def free_port():
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Smsc:
    """One simulator process and its control API."""

    def __init__(self, window=1):
        self.port, self.control = free_port(), free_port()
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", SIM, "--port", str(self.port), "--control",
             str(self.control), "--user", USER, "--password", PASSWORD, "--window",
             str(window)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        assert line == b"ready\n", line

    def http(self, method, path, body=None):
        """One control request; returns the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.control, path),
                                     data=data, method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def state(self):
        """GET /state."""
        return self.http("GET", "/state")

    def post(self, path, body=None):
        """POST with a JSON body."""
        return self.http("POST", path, body if body is not None else {})

    def stop(self):
        """SIGTERM; the simulator must exit 0."""
        self.proc.terminate()
        rc = self.proc.wait(5)
        err = self.proc.stderr.read().decode(errors="replace")
        assert rc == 0, err[-2000:]
        return err


class Client:
    """A minimal CIMD2 application: odd packet numbers, optional checksums."""

    def __init__(self, port, checksums=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.seq = 1
        self.checksums = checksums
        self.buf = b""
        self.inbox = []   # packets read while waiting for something else

    def send(self, op, params, seq=None, raw_checksum=None):
        """Sends one operation; returns its packet number."""
        if seq is None:
            seq = self.seq
            self.seq = 1 if self.seq == 255 else self.seq + 2
        body = bytearray(b"\x02%02d:%03d\t" % (op, seq))
        for num, val in params:
            body += b"%03d:" % num + val.encode("latin-1") + b"\t"
        if raw_checksum is not None:
            body += raw_checksum
        elif self.checksums:
            body += b"%02X" % (sum(body) & 0xFF)
        body += b"\x03"
        self.sock.sendall(bytes(body))
        return seq

    def read(self, timeout=3):
        """The next packet: (op, seq, {param: value}, raw bytes); None on EOF."""
        if self.inbox:
            return self.inbox.pop(0)
        deadline = time.monotonic() + timeout
        while b"\x03" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no packet within %.1f s" % timeout)
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        end = self.buf.index(b"\x03")
        raw, self.buf = self.buf[:end + 1], self.buf[end + 1:]
        assert raw[0:1] == b"\x02", raw
        inner = raw[1:-1]
        op, seq = int(inner[0:2]), int(inner[3:6])
        fields = inner[7:].split(b"\t")
        params = {}
        for f in fields:
            if len(f) > 4 and f[3:4] == b":":
                params[int(f[:3])] = f[4:].decode("latin-1")
        return op, seq, params, raw

    def expect(self, op, timeout=3):
        """Reads until a packet with this operation code arrives (others are kept)."""
        kept = []
        try:
            while True:
                p = self.read(timeout)
                assert p is not None, "connection closed while waiting for %02d" % op
                if p[0] == op:
                    return p
                kept.append(p)
        finally:
            self.inbox = kept + self.inbox

    def call(self, op, params):
        """Sends a request and waits for its response; returns the response packet."""
        seq = self.send(op, params)
        p = self.expect(op + 50)
        assert p[1] == seq
        return p

    def login(self, user=USER, password=PASSWORD):
        """Login (01); returns the response parameters."""
        return self.call(1, [(10, user), (11, password)])[2]

    def close(self):
        self.sock.close()


@pytest.fixture
def smsc():
    s = Smsc()
    yield s
    s.stop()


def wait_for(pred, timeout=5):
    """Polls pred() until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.02)


# --- codec tables -----------------------------------------------------------------------

DECODE_CASES = [
    ("Hello", "Hello"),
    ("_Oa_L-$_Y-_e`_e'_u`_i`_o`_C,", "@£$¥èéùìòÇ"),   # the spec's 7-bit link example
    ("@£$¥èéùìòÇ", "@£$¥èéùìòÇ"),                      # the spec's 8-bit link example
    ("_A\"_O\"_a*_--_gd_ss", "ÄÖå_Δß"),
    ("_XX(_XX)_XX<_XX>_XX=_XX/_XX_!!_XX_gl_XXe", "{}[]~\\|^€"),
    ("a\r\nb", "a\r\nb"),
]
BAD_USER_DATA = ["_zz", "a_", "[", "~", "`", "_XX", "_XXA", "\u00e2"]


@pytest.mark.parametrize("wire,text", DECODE_CASES)
def test_user_data_decode(wire, text):
    assert cimd2_smsc.decode_user_data(wire) == text


@pytest.mark.parametrize("wire", BAD_USER_DATA)
def test_user_data_decode_rejects(wire):
    with pytest.raises(cimd2_smsc.UserDataError):
        cimd2_smsc.decode_user_data(wire)


def test_user_data_roundtrip():
    text = "".join(c for c in cimd2_smsc.GSM_BASE if c != "\x1b")
    text += "".join(cimd2_smsc.GSM_EXT.values())
    wire = cimd2_smsc.encode_user_data(text)
    assert all(32 <= ord(c) < 127 or c in "\r\n" for c in wire)
    assert cimd2_smsc.decode_user_data(wire) == text


# --- protocol ---------------------------------------------------------------------------

def test_login_ok_and_refused(smsc):
    bad = Client(smsc.port)
    p = bad.login(password="wrong")
    assert p[900] == "100"
    assert smsc.state()["bound"] is False
    # not logged in: a submit is refused with "unexpected operation" and recorded
    p = bad.call(3, [(21, "123"), (33, "x")])
    assert p[2][900] == "1"
    bad.close()
    good = Client(smsc.port)
    assert 900 not in good.login()
    st = smsc.state()
    assert st["bound"] is True and st["binds"] == 1
    assert any("before login" in e for e in st["errors"])
    smsc.post("/config", {"refuse_bind": True})
    other = Client(smsc.port)
    assert other.login()[900] == "103"
    assert smsc.state()["binds"] == 1


def test_submit_gsm_special_characters(smsc):
    c = Client(smsc.port, checksums=True)
    c.login()
    op, seq, p, raw = c.call(3, [(21, "+46701234567"), (23, "12345"),
                                 (33, "_Oa_XX(x_XX)_--_e'_a*\u00e9")])
    assert 900 not in p and p[21] == "+46701234567" and len(p[60]) == 12
    # the answer carries a checksum because the request did
    assert raw[-3:-1] == b"%02X" % (sum(raw[:-3]) & 0xFF)
    st = smsc.state()
    assert st["submits"] == [{"n": 1, "from": "12345", "to": "+46701234567",
                              "text": "@{x}_éåé", "coding": "gsm", "parts": 1,
                              "dlr": False, "msgids": [p[60]]}]
    assert st["submit_pdus"] == 1 and st["errors"] == []


def test_submit_bad_user_data(smsc):
    c = Client(smsc.port)
    c.login()
    p = c.call(3, [(21, "123"), (33, "a[b]")])[2]
    assert p[900] == "302" and p[21] == "123"
    assert c.call(3, [(21, "12a"), (33, "x")])[2][900] == "300"
    assert c.call(3, [(21, "123"), (33, "x"), (34, "41")])[2][900] == "303"
    assert c.call(3, [(21, "123"), (30, "8"), (33, "x")])[2][900] == "304"
    # 7-octet UDH + 67 UCS-2 units = 141 octets: one too many
    assert c.call(3, [(21, "123"), (30, "8"), (32, "06080400010201"),
                      (34, "0436" * 67)])[2][900] == "302"
    st = smsc.state()
    assert st["submits"] == [] and st["submit_pdus"] == 5 and len(st["errors"]) == 5


def test_submit_ucs2(smsc):
    c = Client(smsc.port)
    c.login()
    text = "Привет 😀"
    p = c.call(3, [(21, "555"), (30, "8"), (34, text.encode("utf-16-be").hex())])[2]
    assert 900 not in p
    s = smsc.state()["submits"][0]
    assert s["text"] == text and s["coding"] == "ucs2" and s["parts"] == 1


def test_concatenated_submit_joined(smsc):
    c = Client(smsc.port)
    c.login()
    a, b = "A" * 153, "tail"
    ids = []
    for i, piece in enumerate((a, b)):
        p = c.call(3, [(21, "555"), (32, "050003%02X02%02X" % (7, i + 1)), (33, piece),
                       (56, "14")])[2]
        assert 900 not in p
        ids.append(p[60])
        if i == 0:
            assert smsc.state()["submits"] == []   # not whole yet
    # a 16-bit reference UCS-2 message in two parts, second part first (7-octet UDH: 66 units)
    u1, u2 = "ж" * 66, "я"
    for seq, piece in ((2, u2), (1, u1)):
        p = c.call(3, [(21, "556"), (30, "8"), (32, "0608040102%02X%02X" % (2, seq)),
                       (34, piece.encode("utf-16-be").hex())])[2]
        assert 900 not in p
    st = smsc.state()
    assert [(s["to"], s["text"], s["parts"], s["coding"]) for s in st["submits"]] == [
        ("555", a + b, 2, "gsm"), ("556", u1 + u2, 2, "ucs2")]
    assert st["submits"][0]["msgids"] == ids and st["submits"][0]["dlr"] is True
    assert len(set(ids)) == 2
    assert st["submit_pdus"] == 4 and st["errors"] == []


def test_violations_counted(smsc):
    c = Client(smsc.port)
    c.login()
    smsc.post("/config", {"submit_delay_ms": 200})
    c.send(3, [(21, "1"), (33, "one")])
    c.send(3, [(21, "1"), (33, "two")])
    r1, r2 = c.expect(53), c.expect(53)
    assert (r1[1], r2[1]) == (3, 5)
    st = smsc.state()
    assert st["violations"] == 1 and st["max_outstanding"] == 2
    assert len(st["submits"]) == 2


def test_no_violations_when_waiting(smsc):
    c = Client(smsc.port)
    c.login()
    for i in range(3):
        assert 900 not in c.call(3, [(21, "1"), (33, "m%d" % i)])[2]
    assert 900 not in c.call(40, [])[2]
    st = smsc.state()
    assert st["violations"] == 0 and st["max_outstanding"] == 1 and st["enquire"] == 1


def test_window_option():
    s = Smsc(window=2)
    try:
        c = Client(s.port)
        c.login()
        s.post("/config", {"submit_delay_ms": 200})
        for t in ("a", "b", "c"):
            c.send(3, [(21, "1"), (33, t)])
        for _ in range(3):
            c.expect(53)
        st = s.state()
        assert st["violations"] == 1 and st["max_outstanding"] == 3
    finally:
        s.stop()


def answer_delivers(c, n, codes=None, timeout=3):
    """Answers n deliver messages (20) with 70; codes[i] is an error code or None."""
    got = []
    for i in range(n):
        op, seq, p, _ = c.expect(20, timeout)
        assert seq % 2 == 0
        got.append(p)
        code = codes[i] if codes else None
        c.send(70, [(900, str(code))] if code else [], seq=seq)
    return got


def test_mo_short(smsc):
    c = Client(smsc.port)
    c.login()
    mid = smsc.post("/mo", {"from": "+46701234567", "to": "12345", "text": "Hi @ {x} €"})["id"]
    p = answer_delivers(c, 1)[0]
    assert p[23] == "+46701234567" and p[21] == "12345" and 32 not in p
    assert cimd2_smsc.decode_user_data(p[33]) == "Hi @ {x} €"
    m = wait_for(lambda: [m for m in smsc.state()["mo"] if m["state"] == "acked"])
    assert m and m[0]["id"] == mid and m[0]["attempts"] == 1 and m[0]["last_status"] == 0


def test_mo_queued_until_login(smsc):
    smsc.post("/mo", {"from": "1", "to": "2", "text": "waiting"})
    c = Client(smsc.port)
    time.sleep(0.2)
    assert smsc.state()["mo"][0]["state"] == "queued"
    c.login()
    assert cimd2_smsc.decode_user_data(answer_delivers(c, 1)[0][33]) == "waiting"


def test_mo_long_concatenated(smsc):
    c = Client(smsc.port)
    c.login()
    text = "".join(chr(ord("a") + i % 26) for i in range(400))   # 3 parts of 153
    smsc.post("/mo", {"from": "1", "to": "2", "text": text})
    parts = answer_delivers(c, 3)
    udhs = [bytes.fromhex(p[32]) for p in parts]
    assert all(u[:3] == b"\x05\x00\x03" and u[4] == 3 for u in udhs)
    assert [u[5] for u in udhs] == [1, 2, 3] and len(set(u[3] for u in udhs)) == 1
    assert "".join(cimd2_smsc.decode_user_data(p[33]) for p in parts) == text
    assert [len(cimd2_smsc.decode_user_data(p[33])) for p in parts] == [153, 153, 94]
    # UCS-2: 100 characters -> 67 + 33
    smsc.post("/mo", {"from": "1", "to": "2", "text": "ж" * 100})
    parts = answer_delivers(c, 2)
    assert all(p[30] == "8" for p in parts)
    assert "".join(bytes.fromhex(p[34]).decode("utf-16-be") for p in parts) == "ж" * 100
    assert wait_for(lambda: all(m["state"] == "acked" for m in smsc.state()["mo"]))


def test_mo_one_at_a_time_and_retry(smsc):
    c = Client(smsc.port)
    c.login()
    smsc.post("/config", {"mo_retry_ms": 200})
    smsc.post("/mo", {"from": "1", "to": "2", "text": "first"})
    smsc.post("/mo", {"from": "1", "to": "2", "text": "second"})
    op, seq, p, _ = c.expect(20)
    # nothing else comes while the first is unanswered
    with pytest.raises(TimeoutError):
        c.read(timeout=0.3)
    c.send(70, [(900, "8")], seq=seq)
    m = wait_for(lambda: smsc.state()["mo"][0]["state"] == "retry" and smsc.state()["mo"])
    assert m[0]["last_status"] == 8 and m[1]["state"] == "queued"
    t0 = time.monotonic()
    op, seq2, p2, _ = c.expect(20)
    assert time.monotonic() - t0 >= 0.1 and seq2 != seq
    assert cimd2_smsc.decode_user_data(p2[33]) == "first"
    c.send(70, [], seq=seq2)
    op, seq3, p3, _ = c.expect(20)
    assert cimd2_smsc.decode_user_data(p3[33]) == "second"
    c.send(70, [], seq=seq3)
    mo = wait_for(lambda: all(m["state"] == "acked" for m in smsc.state()["mo"])
                  and smsc.state()["mo"])
    assert [m["attempts"] for m in mo] == [2, 1]


def test_status_reports(smsc):
    c = Client(smsc.port)
    c.login()
    smsc.post("/config", {"receipt_delay_ms": 10})
    p = c.call(3, [(21, "777"), (33, "dlr please"), (56, "14")])[2]
    op, seq, r, _ = c.expect(23)
    assert seq % 2 == 0 and (r[21], r[60], r[61]) == ("777", p[60], "4")
    c.send(73, [], seq=seq)
    smsc.post("/config", {"receipts": "undeliverable"})
    p = c.call(3, [(21, "778"), (33, "fail"), (56, "14")])[2]
    op, seq, r, _ = c.expect(23)
    assert (r[21], r[60], r[61]) == ("778", p[60], "3")
    c.send(73, [], seq=seq)
    # no request: no report
    smsc.post("/config", {"receipts": "delivered"})
    c.call(3, [(21, "779"), (33, "quiet")])
    with pytest.raises(TimeoutError):
        c.read(timeout=0.3)
    assert [s["dlr"] for s in smsc.state()["submits"]] == [True, True, False]


def test_reject_and_throttle(smsc):
    c = Client(smsc.port)
    c.login()
    smsc.post("/config", {"reject": {"+4699": 300}, "throttle_next": 1})
    assert c.call(3, [(21, "+4699"), (33, "x")])[2][900] == "300"
    assert c.call(3, [(21, "+4611"), (33, "x")])[2][900] == "10"
    assert 900 not in c.call(3, [(21, "+4611"), (33, "x")])[2]
    st = smsc.state()
    assert st["submit_pdus"] == 3 and len(st["submits"]) == 1 and st["errors"] == []


def test_alive_logout(smsc):
    c = Client(smsc.port)
    c.login()
    assert c.call(40, [])[2] == {}
    assert c.call(2, [])[0] == 52
    assert c.read() is None        # the SMSC closes after logout
    st = wait_for(lambda: not smsc.state()["bound"] and smsc.state())
    assert st["enquire"] == 1


def test_drop_and_reset(smsc):
    c = Client(smsc.port)
    c.login()
    c.call(3, [(21, "1"), (33, "x")])
    assert smsc.post("/drop")
    assert c.read() is None
    assert wait_for(lambda: not smsc.state()["bound"])
    c2 = Client(smsc.port)
    c2.login()
    st = smsc.state()
    assert st["binds"] == 2 and len(st["submits"]) == 1
    smsc.post("/reset")
    st = smsc.state()
    assert st["binds"] == 0 and st["submits"] == [] and st["bound"] is True


def test_bad_checksum_and_numbering(smsc):
    c = Client(smsc.port, checksums=True)
    c.login()
    # wrong checksum: nack with the packet's number, nothing processed
    c.send(40, [], seq=3, raw_checksum=b"00")
    op, seq, p, _ = c.read()
    assert (op, seq) == (99, 3)
    # the retransmission with the same number is accepted
    assert c.call(40, [])[1] == 3
    # an even packet number and a skipped one are nacked too
    c.send(40, [], seq=6)
    assert c.read()[:2] == (99, 6)
    c.send(40, [], seq=9)
    assert c.read()[:2] == (99, 9)
    # garbage header: general error response
    c.sock.sendall(b"\x02xx:yyy\t\x03")
    st = wait_for(lambda: len(smsc.state()["errors"]) >= 4 and smsc.state())
    errors = " | ".join(st["errors"])
    assert "checksum" in errors and "even packet number" in errors and "expected" in errors
    assert "malformed header" in errors
    assert st["enquire"] == 1


def test_response_with_wrong_number_recorded(smsc):
    c = Client(smsc.port)
    c.login()
    smsc.post("/mo", {"from": "1", "to": "2", "text": "x"})
    op, seq, p, _ = c.expect(20)
    c.send(70, [], seq=(seq + 2) % 256)
    c.send(70, [], seq=seq)
    assert wait_for(lambda: smsc.state()["mo"][0]["state"] == "acked")
    assert any("expected packet number" in e for e in smsc.state()["errors"])
