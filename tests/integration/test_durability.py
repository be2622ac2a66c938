"""The durability rule of DESIGN.md under SIGKILL: a sender A streams thousands of chat messages
to a local recipient B (online with XEP-0198, online without it, or offline) and batond is
killed at a random moment of the storm, then restarted on the same data; B logs in again and
collects what storage delivers.

Invariant checked: every message A held a XEP-0198 ack for when batond died reaches B at least
once (before or after the kill); a copy B did not acknowledge (or, without stream management,
that is younger than offline.grace) comes again after the restart, with <delay/> (XEP-0203) and
the same XEP-0359 stanza-id, so duplicates are recognisable; nothing arrives that was not sent.
"""

import random
import threading
import time
from xml.sax.saxutils import quoteattr

import pytest

from helpers import NS_CLIENT, Client, bare, q, tostr

DOMAIN = "localhost"
HOLD = 60  # thin.hold, seconds: the pre-kill sessions would hibernate, but the process dies
SERVER_OPTS = {"domain": DOMAIN, "allow_plaintext": True, "sets": ["thin.hold=%ds" % HOLD]}

NS_SM = "urn:xmpp:sm:3"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
STANZAS = {q(NS_CLIENT, t) for t in ("message", "presence", "iq")}

N_MESSAGES = 8000  # per round
BATCH = 20  # A sends <r/> after every BATCH messages
WINDOW = 200  # A sends at most this many messages beyond the last h acknowledged to it
B_ACK_EVERY = 10  # B acknowledges unprompted after every this many messages
QUIET = 2.0  # seconds without a message that end B's collection after the restart
COLLECT_MAX = 30.0  # upper bound of that collection

# (recipient mode, seed): 'sm' = B online with stream management and acking, 'offline' = B not
# logged in, 'plain' = B online without stream management (stored copies wait offline.grace).
ROUNDS = [("sm", 1001), ("offline", 2002), ("sm", 3003), ("offline", 4004), ("plain", 5005),
          ("sm", 6006)]


class RecClient(Client):
    """helpers.Client that records every message it receives (in arrival order, with the
    phase it arrived in) and, with stream management, counts stanzas as XEP-0198 h and
    acknowledges: at once on <r/> and unprompted every B_ACK_EVERY messages. Also records the
    largest h the server acknowledged to it (<a h/>). Sends never time out early."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.sm_on = False
        self.h = 0  # stanzas received since <enabled/>
        self.max_acked_sent = 0  # largest h this client sent in an <a/>
        self.server_h = None  # largest h of the server's <a/>
        self.errors = []  # message errors bounced to us
        # every message received: (body, stanza-id by us or None, has <delay/>, its XEP-0198
        # position (h - 1 once counted), phase 'before'/'after' the kill, from, stanza-ids by us)
        self.got = []
        self.phase = "before"

    def send(self, x):
        # helpers.Raw.recv_some leaves a short socket timeout behind; a big sendall under load
        # must not give up half-way (that would corrupt the stream).
        self.raw.sock.settimeout(10)
        super().send(x)

    def ack(self):
        h = self.h
        self.send("<a xmlns='%s' h='%d'/>" % (NS_SM, h))
        self.max_acked_sent = max(self.max_acked_sent, h)

    def _maybe_ack(self, el):
        if el.tag == q(NS_SM, "enabled"):
            self.sm_on, self.h = True, 0
        elif el.tag == q(NS_SM, "a"):
            h = int(el.get("h"))
            self.server_h = h if self.server_h is None else max(self.server_h, h)
        elif el.tag in STANZAS:
            pos = self.h
            if self.sm_on:
                self.h += 1
            if el.tag == q(NS_CLIENT, "message"):
                self._record(el, pos)
        if self.sm_on and (el.tag == q(NS_SM, "r") or (
                el.tag == q(NS_CLIENT, "message") and self.h % B_ACK_EVERY == 0)):
            try:
                self.ack()
            except OSError:
                pass
        super()._maybe_ack(el)

    def _record(self, el, pos):
        if el.get("type") == "error":
            self.errors.append(tostr(el))
            return
        body = el.findtext(q(NS_CLIENT, "body"))
        if body is None:
            return
        sids = [s for s in el.findall(q(NS_SID, "stanza-id")) if s.get("by") == self.bare]
        sid = sids[0].get("id") if len(sids) == 1 else None
        delay = el.find(q(NS_DELAY, "delay")) is not None
        self.got.append((body, sid, delay, pos, self.phase, el.get("from"), len(sids)))

    def pump_until_closed(self, timeout):
        """Reads (and records) until the connection ends; False if it stayed open."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._pump(0.2):
                self.backlog = []
                return True
            self.backlog = []
        return False


def login(server, clients, jid, pw, sm, presence):
    c = RecClient(server, jid, pw, mode="plain", timeout=10)
    clients.append(c)
    c.connect()
    if sm:
        c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
        el = c.expect(pred=lambda e: e.tag in (q(NS_SM, "enabled"), q(NS_SM, "failed")),
                      what="<enabled/>")
        assert el.tag == q(NS_SM, "enabled"), tostr(el)
    if presence:
        c.send_presence()
        c.expect_presence(frm=c.jid)  # own initial presence comes back (RFC 6121 4.2.2)
    return c


def b_reader(b, out):
    """Thread body: B reads, records and acknowledges until its connection ends."""
    try:
        while b._pump(0.05):
            b.backlog = []
    except Exception as e:  # reported by the test
        out.append(e)


def storm(a, to, bodies, kill_at, server, window):
    """Streams bodies to `to` as fast as it can, with an <r/> after every BATCH messages and
    at most `window` messages beyond the last h the server acknowledged (None: no limit),
    while a timer SIGKILLs batond kill_at seconds after the start. Returns (messages handed
    to the socket, seconds it took to send them all or None if the kill came first)."""
    killed = threading.Event()

    def kill():
        server.proc.kill()  # SIGKILL
        killed.set()

    timer = threading.Timer(kill_at, kill)
    t0 = time.monotonic()
    timer.start()
    sent = 0
    done_in = None
    try:
        while sent < len(bodies) and not killed.is_set():
            if window is not None and sent - (a.server_h or 0) >= window:
                if not a._pump(0.02):
                    break
                a.backlog = []
                continue
            chunk = bodies[sent:sent + BATCH]
            xml = "".join("<message to=%s type='chat' id='m%d'><body>%s</body></message>"
                          % (quoteattr(to), sent + i, body) for i, body in enumerate(chunk))
            try:
                a.send(xml + "<r xmlns='%s'/>" % NS_SM)
            except OSError:
                sent += len(chunk)  # possibly partly written: count as attempted
                break
            sent += len(chunk)
            if not a._pump(0):
                break
            a.backlog = []
        else:
            if sent == len(bodies):
                done_in = time.monotonic() - t0
    finally:
        timer.join()
    return sent, done_in


@pytest.mark.parametrize("mode,seed", ROUNDS, ids=["%s-%d" % r for r in ROUNDS])
def test_sigkill_during_storm(server, clients, mode, seed):
    rnd = random.Random(seed)
    kill_at = rnd.uniform(0.05, 0.5)
    ajid, apw = server.add_user()
    bjid, bpw = server.add_user()
    tag = "r%d" % seed
    bodies = ["%s-m%d-%08x" % (tag, i, rnd.getrandbits(32)) for i in range(N_MESSAGES)]
    index = {body: i for i, body in enumerate(bodies)}

    b = None
    errs = []
    if mode in ("sm", "plain"):
        b = login(server, clients, bjid, bpw, sm=(mode == "sm"), presence=True)
        reader = threading.Thread(target=b_reader, args=(b, errs), daemon=True)
        reader.start()
    a = login(server, clients, ajid, apw, sm=True, presence=False)

    sent, sent_in = storm(a, bjid, bodies, kill_at, server, WINDOW)
    server.kill()  # reaps the process
    # What the server wrote before it died is still in the sockets: read it all.
    assert a.pump_until_closed(10), "A's connection stayed open after SIGKILL"
    if b is not None:
        reader.join(15)
        assert not reader.is_alive(), "B's connection stayed open after SIGKILL"
        assert not errs, "B's reader failed: %r" % errs
    h = a.server_h or 0
    assert h <= sent, "server acknowledged h=%d but A sent only %d messages" % (h, sent)
    assert not a.errors, "A got message errors: %s" % a.errors[:3]

    server.start()
    b2 = login(server, clients, bjid, bpw, sm=True, presence=False)
    if b is not None:
        b2.got, b2.phase = b.got, "after"  # one record of everything B received
    else:
        b2.phase = "after"
    b2.send_presence()
    deadline = time.monotonic() + COLLECT_MAX
    last = time.monotonic()
    seen = len(b2.got)
    while time.monotonic() < deadline and time.monotonic() - last < QUIET:
        assert b2._pump(0.2), "B's new session was closed (error %s)" % b2.stream_error
        b2.backlog = []
        if len(b2.got) != seen:
            seen, last = len(b2.got), time.monotonic()
    b2.ack()
    got = b2.got

    before = [g for g in got if g[4] == "before"]
    after = [g for g in got if g[4] == "after"]
    bodies_got = [g[0] for g in got]
    dup = len(got) - len(set(bodies_got))
    print("round %s seed %d: kill at %.3fs, A sent %d/%d%s, h acked %d; B got %d before the "
          "kill, %d after the restart, %d duplicates"
          % (mode, seed, kill_at, sent, N_MESSAGES,
             " (all within %.3fs)" % sent_in if sent_in is not None else "", h, len(before),
             len(after), dup))

    # (c) nothing arrives that was never sent, and it comes from A
    strange = [g for g in got if g[0] not in index or index[g[0]] >= sent]
    assert not strange, "B received messages A never sent: %r" % strange[:5]
    wrong_from = [g for g in got if bare(g[5]) != ajid]
    assert not wrong_from, "messages with a wrong from: %r" % wrong_from[:5]

    # (b) each delivery carries exactly one stanza-id by B; sids and bodies map one to one
    no_sid = [g for g in got if g[1] is None]
    assert not no_sid, "messages without exactly one <stanza-id by='%s'/>: %r" % (
        bjid, no_sid[:5])
    sid_body, body_sid = {}, {}
    for body, sid, *_ in got:
        assert sid_body.setdefault(sid, body) == body, \
            "stanza-id %s given to two messages: %r and %r" % (sid, sid_body[sid], body)
        assert body_sid.setdefault(body, sid) == sid, \
            "message %r (m%d) delivered twice with different stanza-ids %s and %s" % (
                body, index[body], body_sid[body], sid)

    # (d) what came after the restart came from storage and says so
    undelayed = [g for g in after if not g[2]]
    assert not undelayed, "stored messages delivered without <delay/>: %r" % undelayed[:5]

    # (a) the core: nothing A holds an ack for is lost
    have = set(bodies_got)
    missing = [i for i in range(h) if bodies[i] not in have]
    assert not missing, "round %s seed %d: %d acknowledged messages lost (h=%d), first " \
        "indexes %s" % (mode, seed, len(missing), h, missing[:20])

    # (e) a stored copy goes only once B acknowledged it: every message acknowledged to A (so
    # stored) must come again after the restart unless B acknowledged it before the kill
    # (position below the largest h B ever sent); without SM the copies wait offline.grace
    # (10 s), far longer than the storm, so all of them come again
    again = {g[0] for g in after}
    acked_by_b = set()
    if mode == "sm":
        acked_by_b = {g[0] for g in before if g[3] < b.max_acked_sent}
    lost = [i for i in range(h) if bodies[i] not in acked_by_b and bodies[i] not in again]
    assert not lost, "round %s seed %d: %d messages stored and not acknowledged by B were " \
        "not delivered after the restart (h=%d): first indexes %s" % (
            mode, seed, len(lost), h, lost[:20])


def test_every_r_answered_while_stores_pending(server, clients):
    """XEP-0198 section 4: each <r/> gets its <a/>. While the messages before it are still
    being stored (the recipient is offline) the answer waits for them, so the h in each
    answer covers every message sent before its <r/>."""
    ajid, apw = server.add_user()
    bjid, _ = server.add_user()  # offline: every message is stored
    a = login(server, clients, ajid, apw, sm=True, presence=False)
    n, rs = 2000, 0
    for start in range(0, n, BATCH):
        a.send("".join("<message to=%s type='chat'><body>p%d</body></message>"
                       % (quoteattr(bjid), i) for i in range(start, start + BATCH))
               + "<r xmlns='%s'/>" % NS_SM)
        rs += 1
    hs = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not hs or hs[-1] < n):
        el = a.wait_for(pred=lambda e: e.tag == q(NS_SM, "a"), timeout=1)
        if el is not None:
            hs.append(int(el.get("h")))
    assert hs and hs[-1] == n, "the <a/> for all %d messages never came: %s" % (n, hs[-5:])
    # no late or unasked answers
    while a.wait_for(pred=lambda e: e.tag == q(NS_SM, "a"), timeout=1) is not None:
        hs.append(-1)
    assert len(hs) == rs, "%d <r/> got %d <a/> (h %s)" % (rs, len(hs), hs[:20])
    short = [(i, h) for i, h in enumerate(hs) if h < (i + 1) * BATCH]
    assert not short, "answers that do not cover the messages before their <r/>: %s" % short[:5]
    assert hs == sorted(hs), "h went backwards: %s" % hs
