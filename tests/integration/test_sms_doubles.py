"""Tests of the SMS test equipment itself (tests/sms/README.md), without batond: the SMPP SMSC
simulator (tests/sms/smsc-smpp.mjs), driven by a minimal SMPP 3.4 client written here with struct
and sockets, and the link proxy (tests/sms/linkproxy.py) in front of an echo server.

Invariant: each double runs once per module on free ports and every test starts from a clean
state (connections dropped, /reset, default config); every wait has a deadline, so a broken
double fails a test instead of hanging the suite.
"""

import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SMS = os.path.join(REPO, "tests", "sms")
SYSTEM_ID, PASSWORD = "baton", "s3cret"

# SMPP 3.4 command ids (section 5.1.2) and statuses (5.1.3).
BIND_RX, BIND_TX, BIND_TRX = 0x01, 0x02, 0x09
SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x04, 0x05, 0x06, 0x15
GENERIC_NACK, RESP = 0x80000000, 0x80000000
ESME_RINVCMDID, ESME_RINVBNDSTS, ESME_RINVDSTADR, ESME_RBINDFAIL = 0x03, 0x04, 0x0B, 0x0D
ESME_RTHROTTLED, ESME_RX_T_APPN, ESME_RX_P_APPN = 0x58, 0x64, 0x65
TLV_RECEIPTED_ID, TLV_MESSAGE_STATE, TLV_PAYLOAD = 0x001E, 0x0427, 0x0424
TLV_SAR_REF, TLV_SAR_TOTAL, TLV_SAR_SEQ = 0x020C, 0x020E, 0x020F

DEFAULT_CONFIG = {"submit_delay_ms": 20, "receipts": "delivered", "receipt_delay_ms": 30,
                  "reject": {}, "throttle_next": 0, "mo_retry_ms": 500, "refuse_bind": False}

# 3GPP TS 23.038 6.2.1 / 6.2.1.1, written out again here as an independent oracle.
GSM = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
       "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXT = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
           "]": 0x3E, "|": 0x40, "€": 0x65}


def gsm_encode(text):
    out = bytearray()
    for ch in text:
        if ch in GSM_EXT:
            out += bytes([0x1B, GSM_EXT[ch]])
        else:
            out.append(GSM.index(ch))
    return bytes(out)


def gsm_decode(data):
    ext = {v: k for k, v in GSM_EXT.items()}
    out, i = [], 0
    while i < len(data):
        if data[i] == 0x1B:
            out.append(ext[data[i + 1]])
            i += 2
        else:
            out.append(GSM[data[i]])
            i += 1
    return "".join(out)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def wait_for(pred, timeout=3.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.02)


def start_double(argv, logpath, cwd):
    """Starts a double and waits (10 s at most) for its `ready` line."""
    log = open(logpath, "wb")
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=log)
    log.close()
    deadline = time.monotonic() + 10
    line = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if r:
            line = p.stdout.readline()
            break
        if p.poll() is not None:
            break
    if line.strip() != b"ready":
        p.kill()
        p.wait()
        with open(logpath, "rb") as f:
            err = f.read().decode("utf-8", "replace")
        pytest.fail("%s did not print ready (got %r)\nstderr:\n%s" % (argv, line, err[-4000:]),
                    pytrace=False)
    return p


def stop_double(p, logpath):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail("%s did not exit on SIGTERM" % p.args, pytrace=False)
    p.stdout.close()
    assert rc == 0, "%s exited %d; log %s" % (p.args, rc, logpath)


# ------------------------------------------------------------------------------------------
# A minimal SMPP 3.4 client

def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def tlv(tag, value):
    return struct.pack(">HH", tag, len(value)) + value


def submit_body(dst, msg, dc=0, esm=0, rd=0, src="46709999999", tlvs=b""):
    """submit_sm body (SMPP 3.4 4.4.1) with international addresses."""
    return (cstr("") + bytes([1, 1]) + cstr(src) + bytes([1, 1]) + cstr(dst)
            + bytes([esm, 0, 0]) + cstr("") + cstr("") + bytes([rd, 0, dc, 0, len(msg)])
            + msg + tlvs)


def parse_deliver(body):
    """deliver_sm body (SMPP 3.4 4.6.1) as a dict; TLVs under "tlvs"."""
    d, off = {}, 0

    def cs():
        nonlocal off
        end = body.index(b"\0", off)
        v = body[off:end].decode()
        off = end + 1
        return v

    def u8():
        nonlocal off
        off += 1
        return body[off - 1]

    d["service_type"] = cs()
    d["src_ton"], d["src_npi"], d["src"] = u8(), u8(), cs()
    d["dst_ton"], d["dst_npi"], d["dst"] = u8(), u8(), cs()
    d["esm"], d["pid"], d["prio"] = u8(), u8(), u8()
    cs(), cs()
    d["rd"], _, d["dc"], _ = u8(), u8(), u8(), u8()
    n = u8()
    d["sm"] = body[off:off + n]
    off += n
    d["tlvs"] = {}
    while off + 4 <= len(body):
        tag, ln = struct.unpack_from(">HH", body, off)
        d["tlvs"][tag] = body[off + 4:off + 4 + ln]
        off += 4 + ln
    return d


class Smpp:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.seq = 0

    def close(self):
        self.sock.close()

    def send(self, cmd, body=b"", status=0, seq=None):
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.sock.sendall(struct.pack(">IIII", 16 + len(body), cmd, status, seq) + body)
        return seq

    def recv(self, timeout=3.0):
        """The next PDU as (command_id, status, seq, body); None on EOF; raises on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 16:
                (n,) = struct.unpack_from(">I", self.buf)
                if len(self.buf) >= n:
                    cmd, status, seq = struct.unpack_from(">III", self.buf, 4)
                    body, self.buf = self.buf[16:n], self.buf[n:]
                    return cmd, status, seq, body
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no PDU within %.1f s" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return None
            self.buf += data

    def quiet(self, secs):
        """Asserts that nothing arrives for secs."""
        try:
            pdu = self.recv(secs)
        except TimeoutError:
            return
        raise AssertionError("unexpected PDU %r" % (pdu,))

    def request(self, cmd, body=b""):
        seq = self.send(cmd, body)
        rcmd, status, rseq, rbody = self.recv()
        assert (rcmd, rseq) == (cmd | RESP, seq), (hex(rcmd), rseq, seq)
        return status, rbody

    def bind(self, cmd=BIND_TRX, system_id=SYSTEM_ID, password=PASSWORD):
        body = cstr(system_id) + cstr(password) + cstr("") + bytes([0x34, 0, 0]) + cstr("")
        return self.request(cmd, body)[0]

    def submit(self, dst, msg, **kw):
        status, body = self.request(SUBMIT_SM, submit_body(dst, msg, **kw))
        return status, body.rstrip(b"\0").decode()

    def deliver(self, timeout=3.0):
        """Waits for a deliver_sm; returns (seq, parsed body)."""
        pdu = self.recv(timeout)
        assert pdu is not None, "connection closed while waiting for deliver_sm"
        cmd, _, seq, body = pdu
        assert cmd == DELIVER_SM, hex(cmd)
        return seq, parse_deliver(body)

    def ack(self, seq, status=0):
        self.send(DELIVER_SM | RESP, b"\0" if status == 0 else b"", status=status, seq=seq)


# ------------------------------------------------------------------------------------------
# Fixtures

def ensure_node_modules():
    assert shutil.which("node"), "node not found on PATH (the SMPP simulator needs Node.js 20)"
    if not os.path.isdir(os.path.join(SMS, "node_modules", "smpp")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SMS, check=True,
                       timeout=300, stdin=subprocess.DEVNULL)


class Double:
    def __init__(self, proc, port, control, log):
        self.proc, self.port, self.control, self.log = proc, port, control, log

    def api(self, method, path, body=None):
        return http(self.control, method, path, body)

    def state(self):
        return self.api("GET", "/state")


@pytest.fixture(scope="module")
def smsc_proc(tmp_path_factory):
    ensure_node_modules()
    port, control = free_port(), free_port()
    log = str(tmp_path_factory.mktemp("smsc") / "smsc-smpp.log")
    p = start_double(["node", os.path.join(SMS, "smsc-smpp.mjs"), "--port", str(port),
                      "--control", str(control), "--system-id", SYSTEM_ID, "--password",
                      PASSWORD], log, SMS)
    yield Double(p, port, control, log)
    stop_double(p, log)


@pytest.fixture
def smsc(smsc_proc):
    """The module's SMSC with no client connected, nothing recorded and the default config."""
    smsc_proc.api("POST", "/drop")
    wait_for(lambda: not smsc_proc.state()["bound"], what="drop")
    smsc_proc.api("POST", "/config", DEFAULT_CONFIG)
    smsc_proc.api("POST", "/reset")
    clients = []

    def connect(bind=BIND_TRX):
        c = Smpp(smsc_proc.port)
        clients.append(c)
        if bind:
            assert c.bind(bind) == 0
        return c

    smsc_proc.connect = connect
    yield smsc_proc
    for c in clients:
        c.close()


class EchoServer:
    """Echoes every connection's bytes back until EOF."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(s,), daemon=True).start()

    @staticmethod
    def echo(s):
        with s:
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        return
                    s.sendall(d)
            except OSError:
                return


@pytest.fixture(scope="module")
def proxy_proc(tmp_path_factory):
    echo = EchoServer()
    port, control = free_port(), free_port()
    log = str(tmp_path_factory.mktemp("proxy") / "linkproxy.log")
    p = start_double(["/usr/bin/python3", os.path.join(SMS, "linkproxy.py"), "--listen",
                      str(port), "--to", "127.0.0.1:%d" % echo.port, "--control",
                      str(control)], log, SMS)
    yield Double(p, port, control, log)
    stop_double(p, log)
    echo.lsock.close()


@pytest.fixture
def proxy(proxy_proc):
    for path, body in (("/cut", None), ("/blackhole", {"on": False}),
                       ("/refuse", {"on": False}), ("/config", {"delay_ms": 0})):
        proxy_proc.api("POST", path, body)
    socks = []

    def connect():
        s = socket.create_connection(("127.0.0.1", proxy_proc.port), timeout=3)
        socks.append(s)
        return s

    proxy_proc.connect = connect
    yield proxy_proc
    for s in socks:
        s.close()


def recv_exact(s, n, timeout=3.0):
    s.settimeout(timeout)
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise EOFError("EOF after %d of %d bytes" % (len(out), n))
        out += d
    return out


# ------------------------------------------------------------------------------------------
# SMPP simulator: binding

def test_bind_ok_and_state(smsc):
    c = smsc.connect(bind=None)
    assert c.bind(BIND_TRX) == 0
    st = smsc.state()
    assert st["bound"] is True and st["binds"] == 1
    assert c.request(ENQUIRE_LINK)[0] == 0
    assert smsc.state()["enquire"] == 1
    assert c.request(UNBIND)[0] == 0
    assert c.recv() is None  # the SMSC closes after unbind_resp
    wait_for(lambda: not smsc.state()["bound"], what="unbound")


def test_bind_refused(smsc):
    c = smsc.connect(bind=None)
    assert c.bind(BIND_TRX, password="wrong") == ESME_RBINDFAIL
    assert c.recv() is None
    smsc.api("POST", "/config", {"refuse_bind": True})
    c = smsc.connect(bind=None)
    assert c.bind(BIND_TX) == ESME_RBINDFAIL
    st = smsc.state()
    assert st["bound"] is False and st["binds"] == 0
    smsc.api("POST", "/config", {"refuse_bind": False})
    assert smsc.connect(bind=None).bind(BIND_TX) == 0


def test_submit_needs_bind(smsc):
    c = smsc.connect(bind=None)
    assert c.submit("46701111111", gsm_encode("hi"))[0] == ESME_RINVBNDSTS
    rx = smsc.connect(bind=BIND_RX)
    assert rx.submit("46701111111", gsm_encode("hi"))[0] == ESME_RINVBNDSTS
    st = smsc.state()
    assert st["submit_pdus"] == 2 and st["submits"] == []


# ------------------------------------------------------------------------------------------
# SMPP simulator: submits

def test_submit_gsm_with_extension_characters(smsc):
    c = smsc.connect()
    text = "Pris 5€ [ok] {x} ~^|\\ @£¥ Ωäñ\nrad två"
    status, msgid = c.submit("46701234567", gsm_encode(text))
    assert status == 0 and msgid
    sub = smsc.state()["submits"]
    assert sub == [{"n": 1, "from": "+46709999999", "to": "+46701234567", "text": text,
                    "coding": "gsm", "parts": 1, "dlr": False, "msgids": [msgid]}]
    assert smsc.state()["errors"] == []


def test_submit_ucs2_and_latin1(smsc):
    c = smsc.connect()
    text = "Привет, 世界 👋"
    assert c.submit("46701234567", text.encode("utf-16-be"), dc=8)[0] == 0
    assert c.submit("46701234567", "Smörgåsbord".encode("latin-1"), dc=3)[0] == 0
    sub = smsc.state()["submits"]
    assert [(s["text"], s["coding"]) for s in sub] == [(text, "ucs2"), ("Smörgåsbord", "latin1")]


def test_submit_too_long_is_refused(smsc):
    c = smsc.connect()
    assert c.submit("46701234567", gsm_encode("x" * 161))[0] == 0x01  # ESME_RINVMSGLEN
    assert c.submit("46701234567", gsm_encode("x" * 160))[0] == 0


def test_submit_concatenated_joined(smsc):
    c = smsc.connect()
    text = "Början " + "abcdefghij€" * 20 + " slut"  # 2 × 153 septets cut mid-way
    septets = gsm_encode(text)
    # An escape pair is not split across parts (23.040 9.2.3.24.1 note)
    cut = 153 if septets[152] != 0x1B else 152
    parts = [septets[:cut], septets[cut:]]
    ids = []
    for i, p in enumerate(parts):
        udh = bytes([5, 0x00, 3, 0xA7, 2, i + 1])
        status, mid = c.submit("46701234567", udh + p, esm=0x40)
        assert status == 0
        ids.append(mid)
        if i == 0:
            assert smsc.state()["submits"] == []  # not joined before the last part
    # 16-bit reference, UCS-2, parts sent out of order
    u = ("Ünïcödé " * 12).encode("utf-16-be")
    chunks = [u[:132], u[132:]]  # 7-octet UDH + 132 = 140
    for seq in (2, 1):
        udh = bytes([6, 0x08, 4, 0x12, 0x34, 2, seq])
        assert c.submit("46701234568", udh + chunks[seq - 1], dc=8, esm=0x40)[0] == 0
    # sar_* TLVs, no UDH
    for seq, piece in ((1, "first half, "), (2, "second half")):
        t = tlv(TLV_SAR_REF, struct.pack(">H", 77)) + tlv(TLV_SAR_TOTAL, bytes([2])) \
            + tlv(TLV_SAR_SEQ, bytes([seq]))
        assert c.submit("46701234569", gsm_encode(piece), tlvs=t)[0] == 0
    # message_payload TLV, sm_length 0
    long_text = "payload " * 40
    assert c.submit("46701234560", b"", tlvs=tlv(TLV_PAYLOAD, gsm_encode(long_text)))[0] == 0
    st = smsc.state()
    got = [(s["to"], s["text"], s["coding"], s["parts"]) for s in st["submits"]]
    assert got == [("+46701234567", text, "gsm", 2),
                   ("+46701234568", "Ünïcödé " * 12, "ucs2", 2),
                   ("+46701234569", "first half, second half", "gsm", 2),
                   ("+46701234560", long_text, "gsm", 1)]
    assert st["submits"][0]["msgids"] == ids
    assert st["submit_pdus"] == 7 and st["errors"] == [] and st["pending_concat"] == []


def test_violation_counted_when_not_waiting(smsc):
    smsc.api("POST", "/config", {"submit_delay_ms": 100})
    c = smsc.connect()
    s1 = c.send(SUBMIT_SM, submit_body("46701234567", gsm_encode("one")))
    s2 = c.send(SUBMIT_SM, submit_body("46701234567", gsm_encode("two")))
    got = [c.recv()[2], c.recv()[2]]
    assert got == [s1, s2]
    st = smsc.state()
    assert st["violations"] == 1 and st["max_outstanding"] == 2
    assert [e for e in st["errors"] if "violation" in e] == st["errors"] and st["errors"]
    smsc.api("POST", "/reset")
    for t in ("three", "four", "five"):
        assert c.submit("46701234567", gsm_encode(t))[0] == 0
    st = smsc.state()
    assert st["violations"] == 0 and st["max_outstanding"] == 1
    assert [s["text"] for s in st["submits"]] == ["three", "four", "five"]


def test_reject_and_throttle(smsc):
    smsc.api("POST", "/config", {"reject": {"46700000000": ESME_RINVDSTADR}, "throttle_next": 2})
    c = smsc.connect()
    assert c.submit("46701234567", gsm_encode("a"))[0] == ESME_RTHROTTLED
    assert c.submit("46701234567", gsm_encode("a"))[0] == ESME_RTHROTTLED
    assert c.submit("46701234567", gsm_encode("a"))[0] == 0
    assert c.submit("46700000000", gsm_encode("b"))[0] == ESME_RINVDSTADR
    st = smsc.state()
    assert st["submit_pdus"] == 4 and [s["text"] for s in st["submits"]] == ["a"]


def test_generic_nack_for_unknown_command(smsc):
    c = smsc.connect()
    seq = c.send(0x00000099, b"junk")
    cmd, status, rseq, _ = c.recv()
    assert (cmd, status, rseq) == (GENERIC_NACK, ESME_RINVCMDID, seq)
    assert c.request(ENQUIRE_LINK)[0] == 0  # the session goes on


# ------------------------------------------------------------------------------------------
# SMPP simulator: receipts

def receipt_of(c, timeout=2.0):
    seq, d = c.deliver(timeout)
    c.ack(seq)
    assert d["esm"] & 0x3C == 0x04, d
    return d


def test_receipts(smsc):
    c = smsc.connect()
    status, mid = c.submit("46701234567", gsm_encode("Hej där"), rd=1)
    assert status == 0
    d = receipt_of(c)
    text = gsm_decode(d["sm"])
    assert text.startswith("id:%s sub:001 dlvrd:001 submit date:" % mid), text
    assert " stat:DELIVRD err:000 text:Hej där" in text
    assert d["tlvs"][TLV_RECEIPTED_ID] == mid.encode() + b"\0"
    assert d["tlvs"][TLV_MESSAGE_STATE] == bytes([2])
    assert (d["src"], d["dst"]) == ("46701234567", "46709999999")
    assert smsc.state()["submits"][0]["dlr"] is True

    c.submit("46701234567", gsm_encode("no receipt asked"))
    c.quiet(0.2)

    smsc.api("POST", "/config", {"receipts": "undeliverable"})
    _, mid = c.submit("46701234567", gsm_encode("x"), rd=1)
    d = receipt_of(c)
    assert "stat:UNDELIV" in gsm_decode(d["sm"])
    assert d["tlvs"][TLV_MESSAGE_STATE] == bytes([5])
    assert d["tlvs"][TLV_RECEIPTED_ID] == mid.encode() + b"\0"

    smsc.api("POST", "/config", {"receipts": "none"})
    c.submit("46701234567", gsm_encode("x"), rd=1)
    c.quiet(0.2)


def test_one_receipt_per_part(smsc):
    c = smsc.connect()
    ids = []
    for i in (1, 2):
        udh = bytes([5, 0, 3, 9, 2, i])
        ids.append(c.submit("46701234567", udh + gsm_encode("part%d" % i), esm=0x40, rd=1)[1])
    got = [receipt_of(c)["tlvs"][TLV_RECEIPTED_ID].rstrip(b"\0").decode() for _ in ids]
    assert sorted(got) == sorted(ids)


# ------------------------------------------------------------------------------------------
# SMPP simulator: MO

def test_mo_short(smsc):
    c = smsc.connect()
    mo = smsc.api("POST", "/mo", {"from": "+46701234567", "to": "12345", "text": "Hej €[x]"})
    seq, d = c.deliver()
    assert (d["src_ton"], d["src"], d["dst"]) == (1, "46701234567", "12345")
    assert d["dc"] == 0 and d["esm"] == 0 and gsm_decode(d["sm"]) == "Hej €[x]"
    assert smsc.state()["mo"][0]["state"] == "sent"
    c.ack(seq)
    wait_for(lambda: smsc.state()["mo"][0]["state"] == "acked", what="acked")
    m = smsc.state()["mo"][0]
    assert m["id"] == mo["id"] and m["attempts"] == 1 and m["last_status"] == 0

    smsc.api("POST", "/mo", {"from": "+46701234567", "to": "12345", "text": "Привет"})
    seq, d = c.deliver()
    assert d["dc"] == 8 and d["sm"].decode("utf-16-be") == "Привет"
    c.ack(seq)


def test_mo_concatenated_stop_and_wait(smsc):
    c = smsc.connect()
    text = "".join("%03d{" % i for i in range(60))  # 300 septets: 2 parts
    smsc.api("POST", "/mo", {"from": "+46701234567", "to": "12345", "text": text})
    septets, refs = b"", set()
    for i in (1, 2):
        seq, d = c.deliver()
        assert d["esm"] & 0x40 and d["dc"] == 0
        udh = d["sm"][:6]
        assert udh[:3] == bytes([5, 0, 3]) and udh[4:] == bytes([2, i]), udh.hex()
        refs.add(udh[3])
        septets += d["sm"][6:]
        assert len(d["sm"]) - 6 <= 153
        c.quiet(0.15)  # the next part waits for this deliver_sm_resp
        c.ack(seq)
    assert len(refs) == 1 and gsm_decode(septets) == text
    wait_for(lambda: smsc.state()["mo"][0]["state"] == "acked", what="acked")

    long_u = "Ж" * 150  # UCS-2, 3 parts of at most 67 characters
    smsc.api("POST", "/mo", {"from": "+46701234567", "to": "12345", "text": long_u,
                             "coding": "ucs2"})
    body = b""
    for i in (1, 2, 3):
        seq, d = c.deliver()
        assert d["dc"] == 8 and d["sm"][4:6] == bytes([3, i])
        body += d["sm"][6:]
        c.ack(seq)
    assert body.decode("utf-16-be") == long_u


def test_mo_waits_for_bind(smsc):
    smsc.api("POST", "/mo", {"from": "+46701234567", "to": "12345", "text": "later"})
    c = smsc.connect(bind=None)
    c.quiet(0.1)
    assert smsc.state()["mo"][0]["state"] == "queued"
    assert c.bind() == 0
    seq, d = c.deliver()
    assert gsm_decode(d["sm"]) == "later"
    c.ack(seq)


def test_mo_retry_after_temporary_error(smsc):
    smsc.api("POST", "/config", {"mo_retry_ms": 200})
    c = smsc.connect()
    smsc.api("POST", "/mo", {"from": "+46701234567", "to": "12345", "text": "again"})
    seq, d = c.deliver()
    c.ack(seq, ESME_RX_T_APPN)
    t0 = time.monotonic()
    wait_for(lambda: smsc.state()["mo"][0]["state"] == "retry", what="retry")
    assert smsc.state()["mo"][0]["last_status"] == ESME_RX_T_APPN
    seq2, d2 = c.deliver()
    assert time.monotonic() - t0 >= 0.15
    assert d2["sm"] == d["sm"] and seq2 != seq
    c.ack(seq2)
    wait_for(lambda: smsc.state()["mo"][0]["state"] == "acked", what="acked")
    assert smsc.state()["mo"][0]["attempts"] == 2

    smsc.api("POST", "/mo", {"from": "+46701234567", "to": "12345", "text": "never"})
    seq, _ = c.deliver()
    c.ack(seq, ESME_RX_P_APPN)  # permanent: not sent again
    c.quiet(0.35)
    assert smsc.state()["mo"][1]["state"] == "failed"


def test_mo_resent_after_drop(smsc):
    c = smsc.connect()
    smsc.api("POST", "/mo", {"from": "+46701234567", "to": "12345", "text": "unacked"})
    c.deliver()
    assert smsc.api("POST", "/drop")
    assert c.recv() is None
    wait_for(lambda: not smsc.state()["bound"], what="drop")
    assert smsc.state()["mo"][0]["state"] == "queued"
    c2 = smsc.connect()
    seq, d = c2.deliver()
    assert gsm_decode(d["sm"]) == "unacked"
    c2.ack(seq)
    wait_for(lambda: smsc.state()["mo"][0]["state"] == "acked", what="acked")


# ------------------------------------------------------------------------------------------
# Link proxy

def test_proxy_passes_bytes(proxy):
    s = proxy.connect()
    data = os.urandom(200000)
    threading.Thread(target=s.sendall, args=(data,), daemon=True).start()
    assert recv_exact(s, len(data)) == data
    st = proxy.state()
    assert st["connections"] == 1 and st["accepted"] >= 1
    assert st["bytes_up"] >= len(data) and st["bytes_down"] >= len(data)


def test_proxy_delay_keeps_order(proxy):
    s = proxy.connect()
    s.sendall(b"x")
    recv_exact(s, 1)
    proxy.api("POST", "/config", {"delay_ms": 120})
    t0 = time.monotonic()
    s.sendall(b"y")
    assert recv_exact(s, 1) == b"y"
    rtt = time.monotonic() - t0
    assert 0.22 <= rtt < 1.0, rtt
    chunks = [b"%04d" % i for i in range(40)]
    for ch in chunks:
        s.sendall(ch)
        time.sleep(0.002)
    assert recv_exact(s, 160) == b"".join(chunks)
    proxy.api("POST", "/config", {"delay_ms": 0})


def test_proxy_blackhole(proxy):
    s = proxy.connect()
    s.sendall(b"ping")
    assert recv_exact(s, 4) == b"ping"
    proxy.api("POST", "/blackhole", {"on": True})
    s.sendall(b"lost")
    s.settimeout(0.3)
    with pytest.raises(socket.timeout):
        s.recv(100)
    assert proxy.state()["connections"] == 1
    proxy.api("POST", "/blackhole", {"on": False})
    s.sendall(b"back")
    assert recv_exact(s, 4) == b"back"
    s.settimeout(0.1)
    with pytest.raises(socket.timeout):
        s.recv(100)  # "lost" never arrives


def test_proxy_cut(proxy):
    s = proxy.connect()
    s.sendall(b"hello")
    assert recv_exact(s, 5) == b"hello"
    assert proxy.api("POST", "/cut")["cut"] == 1
    s.settimeout(2)
    with pytest.raises(ConnectionResetError):
        s.recv(100)
    wait_for(lambda: proxy.state()["connections"] == 0, what="no connections")
    s2 = proxy.connect()
    s2.sendall(b"new")
    assert recv_exact(s2, 3) == b"new"


def test_proxy_refuse(proxy):
    proxy.api("POST", "/refuse", {"on": True})
    before = proxy.state()["accepted"]
    try:  # the RST may already come back to connect()
        s = proxy.connect()
        s.settimeout(2)
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    wait_for(lambda: proxy.state()["accepted"] == before + 1, what="accept counted")
    st = proxy.state()
    assert st["connections"] == 0 and st["accepted"] == before + 1
    proxy.api("POST", "/refuse", {"on": False})
    s2 = proxy.connect()
    s2.sendall(b"ok")
    assert recv_exact(s2, 2) == b"ok"
