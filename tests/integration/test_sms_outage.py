"""SMS through outages (seed 001 R1, R3, R4, R8-R11): the link proxy between baton-smsbuf and
batond blackholes and cuts the link while MT and MO flow, baton-smsbuf and batond are killed
with SIGKILL mid-flow and restarted (receipts pending too), and a ring of 4 fills up: every
message arrives exactly once, in order per direction, and nothing acknowledged is lost. Also
200 ms RTT on the link against throughput, and a second buffer server on the same batond. SMPP
through the proxy; CIMD2 for the second buffer server ("cimd", numbers +4671).

Invariant: a message counts as acknowledged when its acknowledgement was observed (an MO acked
at the SMSC double; an MT whose sender's following ping round trip completed); those must all
arrive, once and in order. The only repeat allowed is R10's: one submit in flight toward the
SMSC when baton-smsbuf is killed, repeated right after itself.
"""

import time

import pytest

import sms
from conftest import start_server
from helpers import free_port, stop_and_check, tostr
from sms import Proxy, SmsBuf, Smsc, body, phone_jid

LINK_PORT = free_port()
# a second buffer server, "cimd", serves +4671 (R1: one batond, one buffer server per SMSC)
CIMD_NAME, CIMD_SECRET, CIMD_PREFIX = "cimd", "cimd-s3cret", "+4671"
SERVER_OPTS = {"allow_plaintext": True,
               "sets": sms.batond_sets() + ["sms.%s.secret=%s" % (CIMD_NAME, CIMD_SECRET),
                                            "sms.%s.prefixes=%s" % (CIMD_NAME, CIMD_PREFIX)],
               "extra_args": sms.batond_args(LINK_PORT)}

# SMPP 3.4 5.1.3 temporary statuses a buffer server may answer deliver_sm with when full (R11)
SMPP_TEMPORARY = {0x14, 0x58, 0x64}


class Rig:
    def __init__(self, smsc, proxy, buf):
        self.smsc, self.proxy, self.buf = smsc, proxy, buf


@pytest.fixture(scope="module")
def rig(server, tmp_path_factory):
    """SMPP SMSC, the link proxy in front of the module's batond, and baton-smsbuf through it."""
    logdir = tmp_path_factory.mktemp("sms-outage")
    smsc = Smsc("smpp", logdir).start()
    proxy = Proxy(LINK_PORT, logdir).start()
    buf = SmsBuf(smsc, proxy.port, logdir / "smsbuf-data", logdir)
    try:
        buf.start()
    except BaseException:
        buf.kill()
        proxy.stop()
        smsc.stop(check=False)
        raise
    r = Rig(smsc, proxy, buf)
    yield r
    try:
        r.buf.stop()
    finally:
        proxy.stop()
        smsc.stop()


@pytest.fixture(scope="module")
def rig_cimd(server, tmp_path_factory):
    """A CIMD2 SMSC and the buffer server "cimd" for +4671 numbers, linked directly."""
    logdir = tmp_path_factory.mktemp("sms-outage-cimd")
    smsc = Smsc("cimd2", logdir).start()
    buf = SmsBuf(smsc, LINK_PORT, logdir / "smsbuf-data", logdir, secret=CIMD_SECRET,
                 name=CIMD_NAME)
    try:
        buf.start()
    except BaseException:
        buf.kill()
        smsc.stop(check=False)
        raise
    r = Rig(smsc, None, buf)
    yield r
    try:
        r.buf.stop()
    finally:
        smsc.stop()


@pytest.fixture
def smsc(rig, server, request):
    """The SMPP rig's SMSC, reset; after a failed test the link is opened again, a killed
    batond or smsbuf restarted and what was in flight let out, so later tests start clean."""
    failed_before = request.session.testsfailed
    offsets = sms.log_offsets(rig.buf.p, rig.smsc.p, rig.proxy.p)
    rig.smsc.clean()
    yield rig.smsc
    st = rig.smsc.state()
    if request.session.testsfailed > failed_before:
        sms.show_logs(request, offsets)
        rig.proxy.blackhole(False)
        rig.proxy.delay(0)
        if not server.alive():
            server.start()
        if not rig.buf.p.alive():
            rig.buf.start()
        sms.quiet(rig.smsc)
    assert st["violations"] == 0, "stop-and-wait violations: %s" % st


def localpart(c):
    return c.bare.split("@", 1)[0]


class Flow:
    """MT from client a to a number and MO from that number to a, tick by tick; remembers what
    was sent and what was acknowledged, and collects what a receives."""

    def __init__(self, smsc, a, number, mo_to=None):
        self.smsc, self.a, self.number = smsc, a, number
        self.mo_to = mo_to or localpart(a)
        self.mt_sent, self.mt_acked, self.mt_maybe = [], [], []
        self.mo_sent, self.mo_ids = [], []
        self.got = []

    def mt(self, text, sync=True):
        self.a.message(phone_jid(self.number), text)
        self.mt_sent.append(text)
        if sync:
            try:
                self.a.sync()
            except (AssertionError, OSError):
                self.mt_maybe.append(text)
                raise
            self.mt_acked.append(text)

    def mo(self, text):
        self.mo_ids.append(self.smsc.mo(self.number, "@%s %s" % (self.mo_to, text)))
        self.mo_sent.append(text)

    def pump(self, timeout=0.0):
        for el in self.a.drain(timeout):
            self._take(el)

    def _take(self, el):
        if el.tag.endswith("}message"):
            assert el.get("type") != "error", "error while SMS flowed: %s" % tostr(el)
            if body(el) is not None:
                assert el.get("from") == phone_jid(self.number), tostr(el)
                self.got.append(body(el))

    def wait_mo(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            el = self.a.wait_for("message", timeout=min(0.5, deadline - time.monotonic()))
            if el is not None:
                self._take(el)
        return self.got

    def mt_texts(self):
        return [s["text"] for s in self.smsc.submits() if s["to"] == self.number]


def prefixed(a, texts):
    return ["%s: %s" % (localpart(a), t) for t in texts]


def test_blackhole_then_cut(smsc, rig, login):
    a = login(presence=True)
    a.sync()
    f = Flow(smsc, a, sms.new_number())
    tick = 0.2

    def run(seconds, tag):
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            f.mt("%s-mt%02d" % (tag, i))
            f.mo("%s-mo%02d" % (tag, i))
            f.pump(tick)
            i += 1

    run(2, "before")
    f.pump(1.0)
    rig.proxy.blackhole(True)
    t0 = time.monotonic()
    got_before = len(f.got)
    run(15, "dark")
    early = [t for t in f.got[got_before:] if t.startswith("dark")]
    assert not early, "MO passed a blackholed link: %s" % early
    n_dark_mo = len(f.mo_ids)
    # R3/R9: the SMSC's MO are still acknowledged (the ring holds them), MT still accepted
    smsc.wait_mo_acked(f.mo_ids[:n_dark_mo - 3], timeout=3)
    assert f.mt_acked == f.mt_sent, "batond did not accept every MT during the outage"
    since = rig.buf.p.log_size()
    rig.proxy.cut()
    rig.proxy.blackhole(False)
    dark = time.monotonic() - t0
    assert dark >= 15
    rig.buf.wait_link_up(since, timeout=10)
    run(2, "after")

    f.wait_mo(len(f.mo_sent), timeout=30)
    f.pump(1.0)
    assert f.got == f.mo_sent, "MO at the XMPP user (%d) differ from those sent (%d)" % (
        len(f.got), len(f.mo_sent))
    want = prefixed(a, f.mt_sent)
    sms.wait_until(lambda: len(f.mt_texts()) >= len(want), 30, "all %d MT" % len(want),
                   interval=0.2)
    time.sleep(0.5)
    assert f.mt_texts() == want
    smsc.wait_mo_acked(f.mo_ids)
    assert smsc.state()["violations"] == 0


def dedupe_one_adjacent(texts):
    """texts with at most one element that directly repeats its predecessor removed (R10: the
    one submit in flight at a crash may be repeated); returns (texts, repeats)."""
    out, repeats = [], 0
    for t in texts:
        if out and out[-1] == t:
            repeats += 1
            continue
        out.append(t)
    return out, repeats


def smsbuf_sigkill_mid_flow(smsc, rig, login, number):
    smsc.config(submit_delay_ms=100)
    a = login(presence=True)
    a.sync()
    f = Flow(smsc, a, number)
    for i in range(40):
        f.mt("k-mt%02d" % i)
        f.mo("k-mo%02d" % i)
        f.pump(0.04)
        if i == 20:
            pending = len(f.mt_acked) - len(f.mt_texts())
            rig.buf.kill()
            killed = time.monotonic()
            assert pending >= 3, "not mid-flow: only %d MT waiting at the kill" % pending
    time.sleep(max(0.0, killed + 1.0 - time.monotonic()))
    since = rig.buf.p.log_size()
    rig.buf.start(wait_link=False)
    rig.buf.wait_link_up(since)
    for i in range(40, 50):
        f.mt("k-mt%02d" % i)
        f.mo("k-mo%02d" % i)
        f.pump(0.04)
    f.wait_mo(len(f.mo_sent), timeout=30)
    f.pump(1.0)
    assert f.got == f.mo_sent, "MO: sent %s\ngot %s" % (f.mo_sent, f.got)
    want = prefixed(a, f.mt_sent)
    sms.wait_until(lambda: len(f.mt_texts()) >= len(want), 30, "all %d MT" % len(want),
                   interval=0.2)
    time.sleep(0.5)
    texts, repeats = dedupe_one_adjacent(f.mt_texts())
    assert texts == want and repeats <= 1, "MT submits (%d, %d repeated): %s" % (
        len(f.mt_texts()), repeats, f.mt_texts())
    smsc.wait_mo_acked(f.mo_ids)


def test_smsbuf_sigkill_mid_flow(smsc, rig, login):
    smsbuf_sigkill_mid_flow(smsc, rig, login, sms.new_number())


def test_smsbuf_sigkill_mid_flow_cimd2(rig_cimd, login):
    rig_cimd.smsc.clean()
    smsbuf_sigkill_mid_flow(rig_cimd.smsc, rig_cimd, login, sms.new_number(CIMD_PREFIX))
    assert rig_cimd.smsc.state()["violations"] == 0


def test_two_buffer_servers_by_prefix(smsc, rig_cimd, login):
    """MT go to the buffer server whose prefix matches (+4671: cimd), every other number to
    the default one (smsbuf); MO come in from both."""
    rig_cimd.smsc.clean()
    a = login(presence=True)
    a.sync()
    n0, n1 = sms.new_number(), sms.new_number(CIMD_PREFIX)
    a.message(phone_jid(n0), "via smpp")
    a.message(phone_jid(n1), "via cimd2")
    s0 = smsc.wait_submits(1, 10)
    s1 = rig_cimd.smsc.wait_submits(1, 10)
    time.sleep(0.3)
    assert [(s["to"], s["text"]) for s in smsc.submits()] == [
        (n0, "%s: via smpp" % localpart(a))], s0
    assert [(s["to"], s["text"]) for s in rig_cimd.smsc.submits()] == [
        (n1, "%s: via cimd2" % localpart(a))], s1
    smsc.mo(n0, "from smpp")
    rig_cimd.smsc.mo(n1, "from cimd2")
    got = {}
    for _ in range(2):
        m = a.expect("message", timeout=10)
        got[m.get("from")] = body(m)
    assert got == {phone_jid(n0): "from smpp", phone_jid(n1): "from cimd2"}
    # the reply to the CIMD2 phone goes back through cimd, not smsbuf
    a.message(phone_jid(n1), "back")
    rig_cimd.smsc.wait_submits(2, 10)
    assert len(smsc.submits()) == 1
    assert rig_cimd.smsc.state()["violations"] == 0


def test_receipt_survives_smsbuf_sigkill(smsc, rig, login):
    """A receipt requested before baton-smsbuf is killed (the SMSC's report comes while it is
    down, and waits for the next bind) still reaches the sender once, with the right id."""
    smsc.config(receipt_delay_ms=1500)
    a = login(presence=True)
    a.sync()
    number = sms.new_number()
    NS_RECEIPTS = "urn:xmpp:receipts"
    id_ = a.message(phone_jid(number), "confirm me", extra="<request xmlns='%s'/>" % NS_RECEIPTS)
    subs = smsc.wait_submits(1, 10, pred=lambda s: s["to"] == number)
    assert subs[0]["dlr"] is True
    time.sleep(0.2)
    rig.buf.kill()
    time.sleep(2.0)
    since = rig.buf.p.log_size()
    rig.buf.start(wait_link=False)
    rig.buf.wait_link_up(since)
    r = a.expect("message", timeout=15, what="XEP-0184 receipt after the restart")
    rec = r.find("{%s}received" % NS_RECEIPTS)
    assert rec is not None and rec.get("id") == id_, tostr(r)
    assert r.get("from") == phone_jid(number), tostr(r)
    a.no_stanza("message", timeout=1.0)
    assert [s["text"] for s in smsc.submits()] == ["%s: confirm me" % localpart(a)]


def test_batond_sigkill_mid_flow(smsc, rig, server, login):
    """MT from alice (each acknowledged by a ping round trip) and MO to bob, who is offline so
    that each MO is Processed by being stored (R7); batond is killed mid-flow and restarted;
    MO keep coming meanwhile. Bob then finds every MO once, in order; every MT reaches the
    SMSC once, in order."""
    smsc.config(submit_delay_ms=100)
    ja, pwa = server.add_user()
    jb, pwb = server.add_user()
    a = login(ja, pwa, presence=True)
    a.sync()
    f = Flow(smsc, a, sms.new_number(), mo_to=jb.split("@")[0])
    for i in range(20):
        f.mt("b-mt%02d" % i)
        f.mo("b-mo%02d" % i)
        time.sleep(0.03)
    since = rig.buf.p.log_size()
    queued = len(f.mt_acked) - len(f.mt_texts())
    server.kill()
    assert queued >= 3, "not mid-flow: only %d MT waiting at the kill" % queued
    # MO keep coming while batond is down: the SMSC still gets them acknowledged (R3)
    for i in range(20, 30):
        f.mo("b-mo%02d" % i)
        time.sleep(0.05)
    smsc.wait_mo_acked(f.mo_ids, timeout=10)
    server.start()
    rig.buf.wait_link_up(since, timeout=10)
    a = f.a = login(ja, pwa, presence=True)
    for i in range(20, 30):
        f.mt("b-mt%02d" % i)
        f.mo("b-mo%02d" % (i + 10))
        time.sleep(0.03)
    smsc.wait_mo_acked(f.mo_ids, timeout=15)
    want = prefixed(a, f.mt_sent)
    sms.wait_until(lambda: len(f.mt_texts()) >= len(want), 30, "all %d MT" % len(want),
                   interval=0.2)
    time.sleep(0.5)
    assert f.mt_texts() == want, "(%d MT were not yet submitted at the kill)" % queued
    # every MO is stored for bob by now or soon: he logs in and gets them in order
    time.sleep(1.0)
    b = login(jb, pwb, presence=True)
    got = []
    deadline = time.monotonic() + 20
    while len(got) < len(f.mo_sent) and time.monotonic() < deadline:
        m = b.wait_for("message", timeout=0.5)
        if m is not None:
            assert m.get("type") != "error" and m.get("from") == phone_jid(f.number), tostr(m)
            got.append(body(m))
    b.no_stanza("message", timeout=1.0)
    assert got == f.mo_sent


def test_link_latency_does_not_limit_throughput(smsc, rig, login):
    """R4: with 200 ms RTT on the link, MT throughput stays at 70 % or more of that with no added
    delay (the SMSC's own pace, 20 ms a submit); stop-and-wait over the link would give 5/s."""
    smsc.config(receipts="none")
    a = login(presence=True)
    a.sync()
    n = 60

    def run(tag):
        number = sms.new_number()
        t0 = time.monotonic()
        for i in range(n):
            a.message(phone_jid(number), "%s%02d" % (tag, i))
        a.sync()
        smsc.wait_submits(n, 30, pred=lambda s: s["to"] == number)
        took = time.monotonic() - t0
        texts = [s["text"] for s in smsc.submits() if s["to"] == number]
        assert texts == ["%s: %s%02d" % (localpart(a), tag, i) for i in range(n)]
        return took

    base = run("fast")
    rig.proxy.delay(100)
    try:
        slow = run("slow")
    finally:
        rig.proxy.delay(0)
    print("R4: base %.2fs, 200ms RTT %.2fs" % (base, slow))
    # Not a speed target (bench/sms.py measures R4): the link must be windowed. Waiting for
    # each acknowledgement would take n round trips; allow a third of that, far above the
    # SMSC's own pace even on a loaded machine.
    stop_and_wait = n * 0.2
    assert slow < stop_and_wait / 3, \
        "%d MT took %.2fs with 200 ms RTT (%.2fs without): the link waits for acknowledgements" % (
            n, slow, base)


def test_receipt_survives_batond_sigkill(smsc, rig, server, login):
    """A receipt whose SMSC report reaches smsbuf while batond is down is delivered after
    batond's restart, once, to the same full JID (the sender logs in again with the same
    resource)."""
    smsc.config(receipt_delay_ms=800)
    jid, pw = server.add_user()
    a = login(jid, pw, presence=True, resource="sms-dlr")
    a.sync()
    number = sms.new_number()
    NS_RECEIPTS = "urn:xmpp:receipts"
    id_ = a.message(phone_jid(number), "confirm me too",
                    extra="<request xmlns='%s'/>" % NS_RECEIPTS)
    smsc.wait_submits(1, 10, pred=lambda s: s["to"] == number)
    since = rig.buf.p.log_size()
    server.kill()
    # the report goes out to smsbuf meanwhile (one deliver_sm, acknowledged)
    time.sleep(1.5)
    server.start()
    rig.buf.wait_link_up(since, timeout=10)
    a = login(jid, pw, presence=True, resource="sms-dlr")
    r = a.expect("message", timeout=15, what="XEP-0184 receipt after batond's restart")
    rec = r.find("{%s}received" % NS_RECEIPTS)
    assert rec is not None and rec.get("id") == id_, tostr(r)
    assert r.get("from") == phone_jid(number), tostr(r)
    a.no_stanza("message", timeout=1.0)


def test_ring_full_back_pressure(tmp_path_factory, tmp_path):
    """--ring 4 and sms.ring=4, link blackholed: the SMSC's 10 MO are acknowledged until the
    ring is full and then answered with a temporary error (retried, R11); after the link is
    back all 10 arrive once, in order."""
    port = free_port()
    srv = start_server(tmp_path_factory, "sms-ring4", allow_plaintext=True,
                       sets=sms.batond_sets(ring=4), extra_args=sms.batond_args(port))
    smsc = proxy = buf = None
    try:
        smsc = Smsc("smpp", tmp_path).start()
        proxy = Proxy(port, tmp_path).start()
        buf = SmsBuf(smsc, proxy.port, tmp_path / "smsbuf-data", tmp_path, ring=4).start()
        smsc.config(mo_retry_ms=300)
        a = srv.new_user_client(presence=True)
        a.sync()
        number = sms.new_number()
        proxy.blackhole(True)
        time.sleep(0.2)
        texts = ["r%02d" % i for i in range(10)]
        ids = [smsc.mo(number, "@%s %s" % (localpart(a), t)) for t in texts]

        def retrying():
            mo = smsc.state()["mo"]
            r = [m for m in mo if m["state"] == "retry" and m["attempts"] >= 2]
            return mo if r else None
        mo = sms.wait_until(retrying, 10, "an MO in state retry (ring full)", interval=0.1)
        time.sleep(1.0)
        mo = smsc.state()["mo"]
        acked = [m for m in mo if m["state"] == "acked"]
        retry = [m for m in mo if m["state"] == "retry"]
        assert 1 <= len(acked) <= 4, "ring of 4: %d MO acked while the link is dark: %s" % (
            len(acked), mo)
        assert [m["id"] for m in acked] == ids[:len(acked)], mo
        assert len(retry) == 1 and retry[0]["id"] == ids[len(acked)], mo
        assert retry[0]["last_status"] in SMPP_TEMPORARY, \
            "not a temporary SMPP error (R11): %s" % retry[0]
        a.no_stanza("message", timeout=0.2)

        since = buf.p.log_size()
        proxy.cut()
        proxy.blackhole(False)
        buf.wait_link_up(since, timeout=10)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            m = a.wait_for("message", timeout=0.5)
            if m is not None:
                assert m.get("type") != "error", tostr(m)
                got.append(body(m))
        a.no_stanza("message", timeout=1.0)
        assert got == texts
        smsc.wait_mo_acked(ids)
        a.close()
    finally:
        for p in (buf, proxy, smsc):
            if p is not None:
                p.stop()
        stop_and_check(srv)
