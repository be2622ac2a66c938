"""SMS end to end (PROTOCOL.md 3, seed 001): XMPP users and phones through batond, the real
baton-smsbuf and an SMSC double, with SMPP 3.4 and with CIMD2 (the module's tests run once per
protocol). MT and MO texts (GSM 03.38 with its extension table, UCS-2, concatenated), '@name',
reply-to-last, WHO, the help SMS, XEP-0184 receipts, SMSC rejections, offline delivery and the
archive, phone presence, stop-and-wait toward a slow SMSC, 600 MT in order; and the link itself:
TLS verified with batond's certificate, a wrong CA and a wrong secret refused.

Invariant: every test uses fresh accounts and a fresh phone number and starts from a reset
SMSC; the SMSC's stop-and-wait violations are asserted to be 0 after every test and when the
SMSC stops; absence is only asserted after a bounded wait.
"""

import subprocess
import time
import urllib.request

import pytest

import helpers

import sms
from conftest import start_server
from helpers import NS_CLIENT, NS_STANZAS, free_port, q, stanza_error, stop_and_check, tostr
from sms import SmsBuf, Smsc, body, phone_jid
from test_mam import query as mam_query

NS_RECEIPTS = "urn:xmpp:receipts"
NS_DELAY = "urn:xmpp:delay"

LINK_PORT = free_port()
SERVER_OPTS = {"allow_plaintext": True, "sets": sms.batond_sets(),
               "extra_args": sms.batond_args(LINK_PORT)}

# error codes the doubles answer a rejected submit with: permanent ones
REJECT = {"smpp": 0x0B, "cimd2": 300}


class Gw:
    def __init__(self, protocol, smsc, buf):
        self.protocol, self.smsc, self.buf = protocol, smsc, buf


@pytest.fixture(scope="module", params=["smpp", "cimd2"])
def gw(request, server, tmp_path_factory):
    """The SMSC double of one protocol and a baton-smsbuf (--smsc-window 1) linked to the
    module's batond. Both protocols use the same smsbuf data directory, one after the other,
    as batond knows one buffer server named smsbuf."""
    logdir = tmp_path_factory.mktemp("sms-" + request.param)
    data = tmp_path_factory.getbasetemp() / "test_sms-smsbuf-data"
    smsc = Smsc(request.param, logdir).start()
    buf = SmsBuf(smsc, LINK_PORT, data, logdir, window=1)
    try:
        buf.start()
    except BaseException:
        buf.kill()
        smsc.stop(check=False)
        raise
    yield Gw(request.param, smsc, buf)
    try:
        buf.stop()
    finally:
        smsc.stop()


@pytest.fixture
def smsc(gw, request):
    """The module's SMSC, reset to its defaults; its violations are checked after the test.
    After a failed test, what it left in flight is let out first (and smsbuf restarted if it
    is no longer bound), so that the next tests do not inherit the failure."""
    failed_before = request.session.testsfailed
    offsets = sms.log_offsets(gw.buf.p, gw.smsc.p)
    gw.smsc.clean()
    yield gw.smsc
    st = gw.smsc.state()
    if request.session.testsfailed > failed_before:
        sms.show_logs(request, offsets)
        try:
            gw.smsc.wait_bound(timeout=5)
        except AssertionError:
            gw.buf.stop()
            gw.buf.start()
        sms.quiet(gw.smsc)
    assert st["violations"] == 0, "stop-and-wait violations: %s" % st


def online(login):
    c = login(presence=True)
    c.sync()
    return c


def localpart(c):
    return c.bare.split("@", 1)[0]


def mt(smsc, sender, number, text, n=1, timeout=10):
    """sender writes text to number; returns the submits to that number once n are there."""
    sender.message(phone_jid(number), text)
    subs = smsc.wait_submits(n, timeout, pred=lambda s: s["to"] == number)
    return subs


def check_submit(s, number, text, coding, parts):
    want = {"from": sms.SHORT_CODE, "to": number, "text": text, "coding": coding,
            "parts": parts}
    got = {k: s[k] for k in want}
    assert got == want, "submit %s, expected %s" % (s, want)


# ---------------------------------------------------------------------------------------------
# MT


@pytest.mark.parametrize("text,coding", [
    ("hello there", "gsm"),
    ("price 5€ [a] {b} ~x^ |y| back\\slash", "gsm"),
    ("Привет, как дела?", "ucs2"),
    ("see you 👋🌍", "ucs2"),
    ("Ça va? 3£ ¥5, élève à Åre: ÆØÅ ÄÖÜ ñ ß ¿¡ § Δ", "gsm"),
], ids=["short", "gsm-ext", "cyrillic", "emoji", "latin-gsm"])
def test_mt_single(smsc, login, text, coding):
    a = online(login)
    number = sms.new_number()
    subs = mt(smsc, a, number, text)
    want = "%s: %s" % (localpart(a), text)
    assert len(subs) == 1, subs
    check_submit(subs[0], number, want, coding, 1)
    assert subs[0]["dlr"] is False, subs[0]


@pytest.mark.parametrize("text,coding", [
    ("The quick brown fox jumps over the lazy dog. " * 8, "gsm"),
    ("€[] " * 60, "gsm"),
    ("Съешь же ещё этих мягких французских булок, да выпей чаю. " * 3, "ucs2"),
    ("🙂 smile " * 20, "ucs2"),
],
    ids=["gsm-360", "gsm-ext-240", "cyrillic-177", "emoji-200"])
def test_mt_long(smsc, login, text, coding):
    a = online(login)
    number = sms.new_number()
    want = "%s: %s" % (localpart(a), text.strip())
    a.message(phone_jid(number), text.strip())
    subs = smsc.wait_submits(1, 15, pred=lambda s: s["to"] == number)
    time.sleep(0.3)
    subs = [s for s in smsc.submits() if s["to"] == number]
    assert len(subs) == 1, "one concatenated SMS expected, got %s" % subs
    parts = (sms.gsm_parts(sms.septets(want)) if coding == "gsm"
             else sms.ucs2_parts(sms.utf16_units(want)))
    assert parts >= 2
    check_submit(subs[0], number, want, coding, parts)
    assert smsc.state()["submit_pdus"] == parts


def test_mt_in_order_from_several_senders(smsc, login):
    a, b = online(login), online(login)
    number = sms.new_number()
    want = []
    for i in range(10):
        c = a if i % 2 == 0 else b
        c.message(phone_jid(number), "m%d" % i)
        c.sync()
        want.append("%s: m%d" % (localpart(c), i))
    subs = smsc.wait_submits(10, 15, pred=lambda s: s["to"] == number)
    assert [s["text"] for s in subs] == want


def test_mt_to_invalid_number(smsc, login):
    a = online(login)
    id_ = a.message("not-a-number@sms.localhost", "x")
    typ, cond = a.expect_error("message", id_)
    assert cond == "item-not-found", (typ, cond)
    time.sleep(0.3)
    assert smsc.submits() == []


# ---------------------------------------------------------------------------------------------
# MO


@pytest.mark.parametrize("text", [
    "hi",
    "a € and [brackets] and {braces}",
    "Здравствуй, мир!",
    "ok 😀👍",
    ("Long message from the phone. " * 12).strip(),
    ("Длинное сообщение с телефона. " * 6).strip(),
], ids=["short", "gsm-ext", "cyrillic", "emoji", "gsm-long", "ucs2-long"])
def test_mo_at_name(smsc, login, text):
    b = online(login)
    number = sms.new_number()
    mid = smsc.mo(number, "@%s %s" % (localpart(b), text))
    m = b.expect("message", timeout=10, what="MO from %s" % number)
    assert m.get("from") == phone_jid(number), tostr(m)
    assert m.get("type") == "chat", tostr(m)
    assert body(m) == text, "sent %r, got %r" % (text, body(m))
    smsc.wait_mo_acked([mid])
    b.no_stanza("message", timeout=0.5)


def test_mo_name_case_insensitive_and_several_in_order(smsc, login):
    b = online(login)
    number = sms.new_number()
    ids = [smsc.mo(number, "@%s n%d" % (localpart(b).upper(), i)) for i in range(8)]
    got = [b.expect("message", timeout=10) for _ in range(8)]
    assert [body(m) for m in got] == ["n%d" % i for i in range(8)]
    assert {m.get("from") for m in got} == {phone_jid(number)}
    smsc.wait_mo_acked(ids)
    b.no_stanza("message", timeout=0.5)


def test_reply_to_last_writer(smsc, login):
    a, b = online(login), online(login)
    number = sms.new_number()
    mt(smsc, a, number, "question from a")
    smsc.mo(number, "answer to a")
    m = a.expect_message(frm=phone_jid(number), timeout=10)
    assert body(m) == "answer to a"
    b.message(phone_jid(number), "question from b")
    smsc.wait_submits(2, 10, pred=lambda s: s["to"] == number)
    smsc.mo(number, "answer to b")
    m = b.expect_message(frm=phone_jid(number), timeout=10)
    assert body(m) == "answer to b"
    # an '@name' MO does not change who the last writer is
    smsc.mo(number, "@%s aside" % localpart(a))
    assert body(a.expect_message(frm=phone_jid(number), timeout=10)) == "aside"
    smsc.mo(number, "still b")
    assert body(b.expect_message(frm=phone_jid(number), timeout=10)) == "still b"
    a.no_stanza("message", timeout=0.3)
    b.no_stanza("message", timeout=0.3)


HELP = "To write to someone: @name your text. Then just reply. WHO lists who is online."


@pytest.mark.parametrize("text,answer", [
    ("hello?", HELP),
    ("@", HELP),
    ("@nobodyname", "Write @name and then your text."),
], ids=["no-last-writer", "bare-at", "no-text"])
def test_help_sms(smsc, login, text, answer):
    watcher = online(login)
    number = sms.new_number()
    mid = smsc.mo(number, text)
    subs = smsc.wait_submits(1, 10, pred=lambda s: s["to"] == number)
    check_submit(subs[0], number, answer, "gsm", 1)
    smsc.wait_mo_acked([mid])
    time.sleep(0.3)
    assert len([s for s in smsc.submits() if s["to"] == number]) == 1
    watcher.no_stanza("message", timeout=0.2)


def test_who(smsc, login, server):
    number = sms.new_number()
    pj = phone_jid(number)
    # nobody has the number yet
    smsc.mo(number, "WHO")
    s = smsc.wait_submits(1, 10, pred=lambda s: s["to"] == number)
    check_submit(s[0], number, "Nobody has you as a contact yet.", "gsm", 1)

    a = online(login)
    a.set_roster_item(pj, name="Phone")
    jb, pwb = server.add_user()
    b = login(jb, pwb)  # bob: the number in his roster, then offline
    b.set_roster_item(pj)
    b.close()
    c = online(login)  # online, without the number
    assert c
    smsc.mo(number, "  who ")
    s = smsc.wait_submits(2, 10, pred=lambda s: s["to"] == number)
    check_submit(s[1], number, "Online: %s" % localpart(a), "gsm", 1)

    # bob comes online (available): now both are listed, in any order
    b = online(lambda **kw: login(jb, pwb, **kw))
    smsc.mo(number, "WHO")
    s = smsc.wait_submits(3, 10, pred=lambda s: s["to"] == number)
    assert s[2]["text"].startswith("Online: "), s[2]
    names = sorted(s[2]["text"][len("Online: "):].split(", "))
    assert names == sorted([localpart(a), localpart(b)]), s[2]

    # both offline
    a.close()
    b.close()
    time.sleep(0.3)
    smsc.mo(number, "WHO")
    s = smsc.wait_submits(4, 10, pred=lambda s: s["to"] == number)
    check_submit(s[3], number, "Nobody who has you as a contact is online.", "gsm", 1)


def test_receipt(smsc, login):
    a = online(login)
    number = sms.new_number()
    id_ = a.message(phone_jid(number), "please confirm",
                    extra="<request xmlns='%s'/>" % NS_RECEIPTS)
    subs = smsc.wait_submits(1, 10, pred=lambda s: s["to"] == number)
    assert subs[0]["dlr"] is True, subs[0]
    check_submit(subs[0], number, "%s: please confirm" % localpart(a), "gsm", 1)
    r = a.expect("message", pred=lambda e: e.find(q(NS_RECEIPTS, "received")) is not None,
                 timeout=10, what="XEP-0184 receipt")
    assert r.get("from") == phone_jid(number), tostr(r)
    assert r.find(q(NS_RECEIPTS, "received")).get("id") == id_, tostr(r)
    # exactly one receipt, and none for a message that did not ask
    a.message(phone_jid(number), "no receipt wanted")
    subs = smsc.wait_submits(2, 10, pred=lambda s: s["to"] == number)
    assert subs[1]["dlr"] is False, subs[1]
    a.no_stanza("message", timeout=1.0)


def test_receipt_long_message_once(smsc, login):
    a = online(login)
    number = sms.new_number()
    text = "part of a long one " * 20
    id_ = a.message(phone_jid(number), text, extra="<request xmlns='%s'/>" % NS_RECEIPTS)
    subs = smsc.wait_submits(1, 15, pred=lambda s: s["to"] == number)
    assert subs[0]["parts"] >= 3 and subs[0]["dlr"], subs[0]
    r = a.expect("message", pred=lambda e: e.find(q(NS_RECEIPTS, "received")) is not None,
                 timeout=10, what="XEP-0184 receipt")
    assert r.find(q(NS_RECEIPTS, "received")).get("id") == id_, tostr(r)
    a.no_stanza("message", timeout=1.0)


def test_undeliverable_receipt_is_error_not_receipt(smsc, login):
    """An SMSC report "undeliverable" is a permanent failure (R14): the sender who asked gets
    an error for that message, and no <received/>."""
    smsc.config(receipts="undeliverable")
    a = online(login)
    number = sms.new_number()
    id_ = a.message(phone_jid(number), "into the void",
                    extra="<request xmlns='%s'/>" % NS_RECEIPTS)
    subs = smsc.wait_submits(1, 10, pred=lambda s: s["to"] == number)
    assert subs[0]["dlr"] is True, subs[0]
    e = a.expect("message", timeout=10, what="answer to the undeliverable report")
    assert e.find(q(NS_RECEIPTS, "received")) is None, "receipt for an undelivered SMS: %s" % (
        tostr(e))
    assert e.get("type") == "error" and e.get("id") == id_, tostr(e)
    assert e.get("from") == phone_jid(number), tostr(e)
    assert stanza_error(e)[1] == "service-unavailable", tostr(e)
    a.no_stanza("message", timeout=0.5)


def test_rejection_becomes_error(smsc, gw, login):
    a = online(login)
    number = sms.new_number()
    smsc.config(reject={number: REJECT[gw.protocol]})
    id_ = a.message(phone_jid(number), "to a bad number")
    e = a.expect("message", pred=lambda m: m.get("type") == "error", timeout=10,
                 what="error for the rejected SMS")
    assert e.get("id") == id_ and e.get("from") == phone_jid(number), tostr(e)
    typ, cond = stanza_error(e)
    assert cond == "service-unavailable", tostr(e)
    text = e.find(q(NS_CLIENT, "error")).findtext(q(NS_STANZAS, "text"))
    assert text and text.strip(), "no <text/> with the SMSC's reason: %s" % tostr(e)
    # one error, and the next message to a good number still goes
    good = sms.new_number()
    mt(smsc, a, good, "fine")
    a.no_stanza("message", pred=lambda m: m.get("type") == "error", timeout=0.5)
    assert [s["to"] for s in smsc.submits()] == [good]


# ---------------------------------------------------------------------------------------------
# Offline, archive, presence


def test_mo_to_offline_user_stored_and_archived(smsc, login, server):
    jd, pwd = server.add_user()
    number = sms.new_number()
    ld = jd.split("@")[0]
    mid = smsc.mo(number, "@%s while you were out" % ld)
    smsc.wait_mo_acked([mid])
    time.sleep(0.5)
    d = login(jd, pwd)
    d.send_presence()
    m = d.expect_message(frm=phone_jid(number), timeout=10)
    assert body(m) == "while you were out", tostr(m)
    assert m.find(q(NS_DELAY, "delay")) is not None, "stored message without <delay/>: %s" % (
        tostr(m))
    items, fin = mam_query(d, **{"with": phone_jid(number)})
    assert [(mm.get("from") or "").split("/")[0] for _, mm in items] == [phone_jid(number)]
    assert [body(mm) for _, mm in items] == ["while you were out"]
    d.no_stanza("message", pred=lambda e: body(e) == "while you were out", timeout=0.5)


def test_phone_in_roster_is_available_xa(smsc, login):
    a = login(presence=True, roster=True)  # an interested resource (RFC 6121 2.1.6)
    number = sms.new_number()
    pj = phone_jid(number)
    a.set_roster_item(pj, name="Mum")
    a.send_presence(to=pj, type_="subscribe")
    a.expect_presence(frm=pj, type_="subscribed", timeout=5)
    p = a.expect_presence(frm=pj, timeout=5)
    assert p.findtext(q(NS_CLIENT, "show")) == "xa", tostr(p)
    assert p.findtext(q(NS_CLIENT, "status")) == "SMS", tostr(p)
    item = a.expect_push(pj, pred=lambda it: it.get("subscription") in ("to", "both"))
    assert item.get("subscription") in ("to", "both"), tostr(item)
    # at the next login the phone is there again (probe)
    a.close()
    b = login(jid=a.bare, password=a.password, presence=True)
    p = b.expect_presence(frm=pj, timeout=5)
    assert (p.findtext(q(NS_CLIENT, "show")), p.findtext(q(NS_CLIENT, "status"))) == (
        "xa", "SMS"), tostr(p)
    assert smsc.submits() == []


# ---------------------------------------------------------------------------------------------
# Stop-and-wait toward the SMSC


def test_slow_smsc_window_both_directions(smsc, login):
    """MT and MO at once toward an SMSC that answers after 150 ms: never two requests
    outstanding (R2), everything arrives in order."""
    smsc.config(submit_delay_ms=150)
    a = online(login)
    number = sms.new_number()
    for i in range(8):
        a.message(phone_jid(number), "mt%d" % i)
    mos = [smsc.mo(number, "@%s mo%d" % (localpart(a), i)) for i in range(8)]
    got = [a.expect("message", timeout=20) for _ in range(8)]
    assert [body(m) for m in got] == ["mo%d" % i for i in range(8)]
    subs = smsc.wait_submits(8, 20, pred=lambda s: s["to"] == number)
    assert [s["text"] for s in subs] == ["%s: mt%d" % (localpart(a), i) for i in range(8)]
    smsc.wait_mo_acked(mos)
    st = smsc.state()
    assert st["violations"] == 0 and st["max_outstanding"] == 1, st


def test_throttled_submits_retried_in_order(smsc, login):
    """Temporary SMSC errors (ESME_RTHROTTLED / CIMD2 10) are retried after smsbuf.retry,
    without loss, repetition or reordering (R11), and are not errors for the sender."""
    smsc.config(throttle_next=3)
    a = online(login)
    number = sms.new_number()
    for i in range(5):
        a.message(phone_jid(number), "t%d" % i)
    subs = smsc.wait_submits(5, 15, pred=lambda s: s["to"] == number)
    time.sleep(0.3)
    assert [s["text"] for s in smsc.submits()] == [
        "%s: t%d" % (localpart(a), i) for i in range(5)]
    assert len(subs) == 5 and smsc.state()["submit_pdus"] == 8, smsc.state()
    a.no_stanza("message", timeout=0.3)


def test_smsc_restart_mid_flow(smsc, gw, login):
    """The SMSC drops the connection (a restart) while MT and MO flow: smsbuf binds again
    and everything arrives; only the one submit in flight may repeat (R10)."""
    smsc.config(submit_delay_ms=50)
    a = online(login)
    number = sms.new_number()
    binds = smsc.state()["binds"]
    for i in range(12):
        a.message(phone_jid(number), "d%02d" % i)
        if i == 5:
            time.sleep(0.15)
            smsc.post("/drop")
    mos = [smsc.mo(number, "@%s e%02d" % (localpart(a), i)) for i in range(6)]
    got = [body(a.expect("message", timeout=15)) for _ in range(6)]
    assert got == ["e%02d" % i for i in range(6)]
    want = ["%s: d%02d" % (localpart(a), i) for i in range(12)]
    smsc.wait_submits(12, 20, pred=lambda s: s["to"] == number)
    time.sleep(0.5)
    texts = [s["text"] for s in smsc.submits()]
    dedup = [t for k, t in enumerate(texts) if k == 0 or texts[k - 1] != t]
    assert dedup == want and len(texts) - len(dedup) <= 1, texts
    assert smsc.state()["binds"] == binds + 1, smsc.state()
    smsc.wait_mo_acked(mos)
    a.no_stanza("message", timeout=0.3)


def test_smsc_refuses_bind_then_accepts(smsc, gw, login):
    """The SMSC restarts and refuses the bind for a while: smsbuf logs the refusal and keeps
    trying (R16); MT wait in the rings and batond, MO wait at the SMSC; once the bind is
    accepted everything arrives once, in order."""
    a = online(login)
    number = sms.new_number()
    smsc.config(refuse_bind=True)
    since = gw.buf.p.log_size()
    binds = smsc.state()["binds"]
    smsc.post("/drop")
    sms.wait_until(lambda: not smsc.state()["bound"], 5, "the SMSC connection dropped")
    for i in range(5):
        a.message(phone_jid(number), "w%d" % i)
    a.sync()
    mos = [smsc.mo(number, "@%s v%d" % (localpart(a), i)) for i in range(3)]
    refused = sms.wait_until(
        lambda: [ln for ln in gw.buf.p.log_text(since).splitlines()
                 if "smsbuf: SMSC" in ln and "login refused" in ln], 10,
        "smsbuf logging the refused bind/login")
    time.sleep(1.0)
    assert smsc.submits() == [] and smsc.state()["binds"] == binds, smsc.state()
    a.no_stanza("message", timeout=0.2)
    smsc.config(refuse_bind=False)
    smsc.wait_bound(timeout=10)
    got = [body(a.expect("message", timeout=10)) for _ in range(3)]
    assert got == ["v0", "v1", "v2"], (got, refused)
    subs = smsc.wait_submits(5, 10, pred=lambda s: s["to"] == number)
    time.sleep(0.3)
    assert [s["text"] for s in smsc.submits()] == [
        "%s: w%d" % (localpart(a), i) for i in range(5)]
    assert len(subs) == 5
    smsc.wait_mo_acked(mos)
    a.no_stanza("message", timeout=0.3)


def test_600_mt_in_order(smsc, login):
    smsc.config(submit_delay_ms=5, receipts="none")
    a = online(login)
    number = sms.new_number()
    n = 600
    for i in range(n):
        a.message(phone_jid(number), "n%03d" % i)
        if i % 100 == 99:
            a.sync()
    a.sync()
    subs = smsc.wait_submits(n, 60, pred=lambda s: s["to"] == number)
    time.sleep(0.3)
    subs = [s for s in smsc.submits() if s["to"] == number]
    assert [s["text"] for s in subs] == ["%s: n%03d" % (localpart(a), i) for i in range(n)]
    st = smsc.state()
    assert st["submit_pdus"] == n and st["violations"] == 0 and st["max_outstanding"] == 1, {
        k: st[k] for k in ("submit_pdus", "violations", "max_outstanding")}
    a.no_stanza("message", timeout=0.2)


# ---------------------------------------------------------------------------------------------
# The link: TLS and secrets (a batond of their own, SMPP)


@pytest.fixture
def own(tmp_path_factory, tmp_path):
    """start(secret=..., ca=..., plaintext=...) -> (batond, smsc, smsbuf) on a fresh batond
    that requires TLS on the link; all stopped at the end."""
    started = []

    def start(secret=sms.LINK_SECRET, ca="cert", wait_link=True):
        port = free_port()
        srv = start_server(tmp_path_factory, "sms-link", sets=sms.batond_sets(),
                           extra_args=sms.batond_args(port))
        started.append(srv)
        smsc = Smsc("smpp", tmp_path).start()
        started.append(smsc)
        if ca == "cert":
            ca = srv.datadir + "/cert.pem"
        buf = SmsBuf(smsc, port, tmp_path / "smsbuf", tmp_path, secret=secret, plaintext=False,
                     ca=ca)
        started.append(buf)
        buf.start(wait_link=wait_link)
        return srv, smsc, buf

    yield start
    for p in reversed(started):
        if isinstance(p, SmsBuf):
            p.stop()
        elif isinstance(p, Smsc):
            p.stop()
        else:
            stop_and_check(p)


def test_tls_link_verified(own):
    srv, smsc, buf = own()
    up = [ln for ln in srv.stderr_text().splitlines() if "sms: link smsbuf is up" in ln]
    assert up and "TLS" in up[-1], "batond did not log a TLS link: %s" % up
    a = srv.new_user_client(presence=True)
    number = sms.new_number()
    a.message(phone_jid(number), "over tls")
    subs = smsc.wait_submits(1, 10)
    check_submit(subs[0], number, "%s: over tls" % localpart(a), "gsm", 1)
    smsc.mo(number, "reply over tls")
    m = a.expect_message(frm=phone_jid(number), timeout=10)
    assert body(m) == "reply over tls"
    a.close()


def test_tls_link_wrong_ca_refused(own, server):
    # the module's batond has a different self-signed certificate for localhost
    srv, smsc, buf = own(ca=server.datadir + "/cert.pem", wait_link=False)
    a = srv.new_user_client(presence=True)
    number = sms.new_number()
    a.message(phone_jid(number), "must not pass")
    mid = smsc.mo(number, "@%s must not pass either" % localpart(a))
    sms.wait_until(lambda: [ln for ln in buf.p.log_text().splitlines()
                            if "link to batond" in ln and "certificate" in ln.lower()], 10,
                   "a certificate error about the link in smsbuf's log")
    time.sleep(2.0)
    assert smsc.submits() == [], smsc.submits()
    a.no_stanza("message", timeout=0.5)
    # R3: the SMSC's MO is still stored and acknowledged by smsbuf
    smsc.wait_mo_acked([mid])
    assert not any("is up" in ln and "link to batond" in ln
                                  for ln in buf.p.log_text().splitlines()), buf.p.tail()
    assert "sms: link smsbuf is up" not in srv.stderr_text()
    a.close()


def test_wrong_secret_refused(own):
    srv, smsc, buf = own(secret="not-the-secret", wait_link=False)
    a = srv.new_user_client(presence=True)
    number = sms.new_number()
    a.message(phone_jid(number), "must not pass")
    smsc.mo(number, "@%s nor this" % localpart(a))
    sms.wait_until(lambda: "wrong secret" in srv.stderr_text(), 10,
                   "batond logging the wrong secret")
    line = [ln for ln in srv.stderr_text().splitlines() if "wrong secret" in ln][0]
    assert "refused buffer server" in line, line
    sms.wait_until(lambda: "refused" in buf.p.log_text(), 10, "smsbuf logging the refusal")
    time.sleep(1.5)
    assert smsc.submits() == []
    a.no_stanza("message", timeout=0.5)
    assert "sms: link smsbuf is up" not in srv.stderr_text()
    a.close()


# ---------------------------------------------------------------------------------------------
# operations


def test_status_and_metrics(smsc, gw, login, server):
    """`batonctl sms status` (batond's rings), `baton-smsbuf --status` (the buffer server's) and
    batond's /metrics describe the link
    after traffic both ways (R5, R16)."""
    a = online(login)
    number = sms.new_number()
    mt(smsc, a, number, "stat")
    smsc.mo(number, "@%s back" % localpart(a))
    assert body(a.expect("message", timeout=10)) == "back"
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % server.http_port) as r:
            text = r.read().decode()
        series = dict(line.rsplit(" ", 1) for line in text.splitlines()
                      if line and not line.startswith("#"))
        if (series.get('baton_sms_mt_ring_busy{link="smsbuf"}') == "0"
                and series.get('baton_sms_mo_ring_busy{link="smsbuf"}') == "0"):
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    assert series['baton_sms_link_up{link="smsbuf"}'] == "1"
    assert int(series['baton_sms_mt_processed_total{link="smsbuf"}']) >= 1
    assert int(series['baton_sms_mo_processed_total{link="smsbuf"}']) >= 1
    out = subprocess.run([helpers.BATONCTL, "--data", server.datadir, "sms", "status"],
                         check=True, capture_output=True, text=True, timeout=20).stdout
    assert "link smsbuf" in out and "link  " in out and "up:" in out, out
    # The buffer server's own view, from its journal, while it runs.
    out2 = subprocess.run([sms.SMSBUF, "--data", gw.buf.datadir, "--name", "smsbuf", "--status"],
                          check=True, capture_output=True, text=True, timeout=20).stdout
    assert "smsc  " in out2 and "link  " in out2 and "up:" in out2, out2
    for text in (out, out2):
        for d in ("MT", "MO"):
            line = next(l for l in text.splitlines() if l.strip().startswith(d + " ring"))
            assert "waiting: 0 retrieved, 0 sent, 0 confirmed" in line, text
            assert "processed 0;" not in line, text  # traffic went through both rings
