"""Scale tests (issue 3): a 10,000-message archive paged through with XEP-0059 RSM, a room of
50 occupants (XEP-0045), and an offline queue of 3,000 large messages delivered to a client
that reads slowly (XEP-0160, XEP-0203). Each test asserts what a user would see and prints
throughput numbers (run pytest with -s to read them).

Invariant: every wait is bounded and every read is linear in what arrives (the clients'
backlogs are emptied in bulk, never searched per stanza), so the module stays within about
a minute on two cores even under ASan. BATON_SCALE (default 1) shrinks the sizes for a quick
run; the defaults are the sizes issue 3 asks for.
"""

import datetime
import os
import re
import socket
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from xml.sax.saxutils import escape, quoteattr

from helpers import NS_CLIENT, NS_STREAM, bare, new_id, q, tostr, unique
from test_muc import codes, join, new_room

SCALE = float(os.environ.get("BATON_SCALE", "1"))
GRACE = 1.0  # offline.grace of the module's server, in seconds
SERVER_OPTS = {"sets": ["offline.grace=%ds" % GRACE]}

NS_MAM = "urn:xmpp:mam:2"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"

STAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def scaled(n, minimum):
    return max(minimum, int(n * SCALE))


def body_of(m):
    return m.findtext(q(NS_CLIENT, "body"))


def pump(c, timeout):
    """c._pump() without helpers.Raw's copy of everything received: appending each chunk to
    that bytes object costs time in proportion to the megabytes already received."""
    ok = c._pump(timeout)
    c.raw.data = b""
    return ok


def gather(c, want, pred, timeout, what):
    """Reads c until `want` elements matching pred have arrived; returns all matching ones
    in arrival order (more than want if more came). The others stay in c's backlog."""
    out, rest = [], []
    deadline = time.monotonic() + timeout
    while True:
        if c.backlog:
            for el in c.backlog:
                (out if pred(el) else rest).append(el)
            c.backlog = []
        if len(out) >= want:
            break
        left = deadline - time.monotonic()
        if left <= 0 or (not pump(c, min(left, 0.5)) and not c.backlog):
            break
    c.backlog = rest + c.backlog
    assert len(out) >= want, "%s: %d of %d %s within %.0fs%s; last: %s; other stanzas: %s" % (
        c.jid, len(out), want, what, timeout,
        " (stream error %s)" % c.stream_error if c.stream_error else
        (" (stream closed)" if c.closed else ""),
        tostr(out[-1]) if out else None, [tostr(e) for e in rest[:5]])
    return out


def is_chat(frm):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and e.get("from") == frm
                      and body_of(e) is not None)


def is_error(e):
    return e.get("type") == "error" or e.tag == q(NS_STREAM, "error")


def send_chat(c, to, bodies, type_="chat"):
    """Sends one message per body in a single write (pipelined); returns their ids."""
    ids = [new_id() for _ in bodies]
    c.send("".join("<message to=%s id='%s' type='%s'><body>%s</body></message>"
                   % (quoteattr(to), i, type_, escape(b)) for i, b in zip(ids, bodies)))
    return ids


# ---------------------------------------------------------------------------------------------
# 1. MAM paging over 10,000 messages

N_MAM = scaled(10000, 1000)
PAGE = 250  # also batond's largest page (MAM_PAGE_MAX)
CHUNK = 500  # messages written at once; B reads as A writes, far below the 4 MB send queue
PAGE_LIMIT = 2.0  # seconds per page, even under ASan


def mam_page(c, rsm, qid, timeout=30):
    """One MAM query (XEP-0313 4) with an RSM <set/>; returns ([(id, message)], fin, secs).
    Reads in bulk until the iq result, which XEP-0313 sends after all the results."""
    id_ = new_id()
    t0 = time.monotonic()
    c.send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'><set xmlns='%s'>%s</set>"
           "</query></iq>" % (id_, NS_MAM, qid, NS_RSM, rsm))
    items, rest, res = [], [], None
    deadline = t0 + timeout
    while res is None:
        if not c.backlog:
            left = deadline - time.monotonic()
            assert left > 0, "%s: no answer to MAM query %s within %ds (%d results so far)" % (
                c.jid, qid, timeout, len(items))
            assert pump(c, min(left, 0.5)) or c.backlog, "%s: stream closed (%s) during %s" % (
                c.jid, c.stream_error, qid)
            continue
        backlog, c.backlog = c.backlog, []
        for i, el in enumerate(backlog):
            r = el.find(q(NS_MAM, "result")) if el.tag == q(NS_CLIENT, "message") else None
            if r is not None and r.get("queryid") == qid:
                fwd = r.find(q(NS_FWD, "forwarded"))
                assert fwd is not None and fwd.find(q(NS_DELAY, "delay")) is not None, tostr(el)
                items.append((r.get("id"), fwd.find(q(NS_CLIENT, "message"))))
            elif el.tag == q(NS_CLIENT, "iq") and el.get("id") == id_:
                res = el
                rest += backlog[i + 1:]
                break
            else:
                rest.append(el)
    secs = time.monotonic() - t0
    c.backlog = rest + c.backlog
    assert res.get("type") == "result", "MAM query %s failed: %s" % (qid, tostr(res))
    fin = res.find(q(NS_MAM, "fin"))
    assert fin is not None, tostr(res)
    return items, fin, secs


def rsm_of(fin, name):
    return fin.findtext("%s/%s" % (q(NS_RSM, "set"), q(NS_RSM, name)))


def check_page_bounds(items, fin, what):
    if items:
        assert (rsm_of(fin, "first"), rsm_of(fin, "last")) == (items[0][0], items[-1][0]), \
            "%s: RSM <first/>/<last/> are not the ids of the page's ends: %s" % (what, tostr(fin))


def page_forward(c, n, what):
    """Pages through c's whole archive with max=PAGE and <after/>; checks the page shape
    and returns (all [(id, message)], page times)."""
    pages = -(-n // PAGE)
    got, times, after = [], [], None
    for p in range(pages + 1):
        rsm = "<max>%d</max>" % PAGE + ("<after>%s</after>" % after if after else "")
        items, fin, secs = mam_page(c, rsm, "%s%d" % (what, p))
        times.append(secs)
        last = p == pages - 1
        want = n - PAGE * p if last else PAGE
        assert len(items) == want, "%s page %d of %d: %d results, expected %d" % (
            what, p + 1, pages, len(items), want)
        assert (fin.get("complete") == "true") == last, \
            "%s page %d of %d: complete=%r (only the last page is complete, XEP-0313 4.3): %s" \
            % (what, p + 1, pages, fin.get("complete"), tostr(fin))
        check_page_bounds(items, fin, "%s page %d" % (what, p + 1))
        count = rsm_of(fin, "count")
        assert count is None or int(count) == n, "%s: RSM count %s, expected %d" % (
            what, count, n)
        got += items
        after = rsm_of(fin, "last")
        if last:
            break
    return got, times


def wait_archived(c, last_body, timeout=30):
    """Archive writes are asynchronous: waits until c's newest archived message is the one
    with last_body."""
    deadline = time.monotonic() + timeout
    while True:
        items, _, _ = mam_page(c, "<max>1</max><before/>", "w" + new_id())
        if items and body_of(items[0][1]) == last_body:
            return
        assert time.monotonic() < deadline, "%s: %r not archived within %ds; newest: %s" % (
            c.jid, last_body, timeout, tostr(items[0][1]) if items else None)
        time.sleep(0.1)


def report_pages(who, times):
    print("\n%s: %d pages of %d, per page min %.0f ms, median %.0f ms, max %.0f ms" % (
        who, len(times), PAGE, 1000 * min(times), 1000 * statistics.median(times),
        1000 * max(times)))
    slow = [(i + 1, round(t, 2)) for i, t in enumerate(times) if t >= PAGE_LIMIT]
    assert not slow, "%s: pages slower than %.0fs: %s" % (who, PAGE_LIMIT, slow)


def test_mam_paging_over_ten_thousand(login):
    a = login(presence=True, timeout=20)
    b = login(presence=True, timeout=20)
    tag = unique("t")
    sent = ["mam %05d %s" % (i, tag) for i in range(N_MAM)]
    from_a = is_chat(a.jid)

    # A writes chunk k while B reads chunk k-1: pipelined, and B's queue stays small
    got = []
    t0 = time.monotonic()
    for k in range(0, N_MAM, CHUNK):
        send_chat(a, b.bare, sent[k:k + CHUNK])
        got += gather(b, k - len(got), from_a, 30, "messages from A") if k > len(got) else []
    got += gather(b, N_MAM - len(got), from_a, 60, "messages from A")
    secs = time.monotonic() - t0
    print("\nchat: %d messages A -> B in %.2fs (%.0f/s)" % (N_MAM, secs, N_MAM / secs))
    assert [body_of(m) for m in got] == sent, "B did not get exactly the messages A sent, in order"
    sids = []
    for m in got:
        sid = m.find(q(NS_SID, "stanza-id"))
        assert sid is not None and sid.get("by") == b.bare, tostr(m)
        sids.append(sid.get("id"))
    a.sync()
    errs = [e for e in a.backlog + b.backlog if is_error(e)]
    assert not errs, "errors during the burst: %s" % [tostr(e) for e in errs[:5]]

    # B pages through all of it, oldest first
    wait_archived(b, sent[-1])
    t0 = time.monotonic()
    items, times = page_forward(b, N_MAM, "B")
    secs = time.monotonic() - t0
    print("B's archive: %d results in %.2fs (%.0f/s)" % (len(items), secs, len(items) / secs),
          end="")
    report_pages("B", times)
    assert [body_of(m) for _, m in items] == sent, "B's archive is not what A sent, in order"
    ids = [int(i) for i, _ in items]
    bad = [(x, y) for x, y in zip(ids, ids[1:]) if not x < y]
    assert not bad, "archive ids not strictly increasing: %s" % bad[:5]
    assert [i for i, _ in items] == sids, "archive ids differ from the stanza-ids B was given"
    for _, m in items[:1] + items[-1:]:
        assert (m.get("from"), bare(m.get("to"))) == (a.jid, b.bare), tostr(m)

    # the last page first (XEP-0059 2.5), then a page in the middle going backwards
    last, fin, secs = mam_page(b, "<max>%d</max><before/>" % PAGE, "blast")
    assert [body_of(m) for _, m in last] == sent[-PAGE:], "<before/> is not the last page"
    assert fin.get("complete") != "true", \
        "a page limited by max is not complete (XEP-0313 4.3): %s" % tostr(fin)
    check_page_bounds(last, fin, "last page")
    mid = N_MAM // 2
    page, fin, secs2 = mam_page(b, "<max>%d</max><before>%s</before>" % (PAGE, items[mid][0]),
                                "bmid")
    assert [body_of(m) for _, m in page] == sent[mid - PAGE:mid], \
        "<before>%s</before> is not the %d messages before it" % (items[mid][0], PAGE)
    assert fin.get("complete") != "true", tostr(fin)
    check_page_bounds(page, fin, "middle page")
    assert max(secs, secs2) < PAGE_LIMIT, "backward pages took %.2fs and %.2fs" % (secs, secs2)

    # A's archive has the same messages, outgoing
    wait_archived(a, sent[-1])
    items, times = page_forward(a, N_MAM, "A")
    report_pages("A", times)
    assert [body_of(m) for _, m in items] == sent, "A's archive is not what A sent, in order"
    for _, m in items[:1] + items[-1:]:
        assert bare(m.get("to")) == b.bare and bare(m.get("from")) == a.bare, tostr(m)


# ---------------------------------------------------------------------------------------------
# 2. a room with 50 occupants

N_OCC = scaled(50, 25)
N_SENDERS = 10
N_EACH = 5
N_LEAVE = 20
HISTORY = 20  # what batond gives a joiner by default (XEP-0045 #enter-history)


def from_room(room, type_=None):
    return lambda e: (e.tag == q(NS_CLIENT, "presence") and bare(e.get("from")) == room
                      and e.get("type") == type_)


def groupchat_of(room):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and bare(e.get("from")) == room
                      and e.get("type") == "groupchat" and body_of(e) is not None)


def test_room_with_fifty_occupants(server, login):
    room = new_room(server, "big")
    nicks = ["n%02d" % i for i in range(N_OCC)]

    t0 = time.monotonic()
    with ThreadPoolExecutor(8) as pool:  # accounts and TLS logins in parallel
        users = list(pool.map(lambda _: login(timeout=30), range(N_OCC)))
    print("\n%d logins in %.2fs" % (N_OCC, time.monotonic() - t0))

    # one after another: each joiner is told about everyone already there (#enter-pres)
    t0 = time.monotonic()
    for i, (c, nick) in enumerate(zip(users, nicks)):
        j = join(c, room, nick)
        assert j.other_nicks() == sorted(nicks[:i]), \
            "%s joining as occupant %d saw %s" % (nick, i + 1, j.other_nicks())
        assert (201 in j.codes) == (i == 0), tostr(j.me)
    print("%d joins in %.2fs" % (N_OCC, time.monotonic() - t0))
    # ... and everyone already there is told about each later joiner
    for i, c in enumerate(users[:-1]):
        pres = gather(c, N_OCC - 1 - i, from_room(room), 20, "presences of later joiners")
        assert [p.get("from").split("/", 1)[1] for p in pres] == nicks[i + 1:], \
            "%s saw later joiners %s" % (nicks[i], [p.get("from") for p in pres])

    # 10 occupants say 5 things each, all at once
    senders = list(range(0, N_OCC, N_OCC // N_SENDERS))[:N_SENDERS]
    t0 = time.monotonic()
    for r in range(N_EACH):
        for s in senders:
            users[s].message(room, "%s says %d" % (nicks[s], r), type_="groupchat")
    order = None
    for i, c in enumerate(users):
        msgs = gather(c, N_SENDERS * N_EACH, groupchat_of(room), 20, "groupchat messages")
        assert len(msgs) == N_SENDERS * N_EACH, "%s got %d messages" % (nicks[i], len(msgs))
        seen = [(m.get("from").split("/", 1)[1], body_of(m)) for m in msgs]
        for s in senders:
            mine = [b for n, b in seen if n == nicks[s]]
            assert mine == ["%s says %d" % (nicks[s], r) for r in range(N_EACH)], \
                "%s got %s's messages as %s" % (nicks[i], nicks[s], mine)
        if i == 0:
            order = seen
    secs = time.monotonic() - t0
    n = N_SENDERS * N_EACH * N_OCC
    print("groupchat: %d messages to %d occupants (%d deliveries) in %.2fs (%.0f/s)" % (
        N_SENDERS * N_EACH, N_OCC, n, secs, n / secs))
    errs = [e for c in users for e in c.backlog if is_error(e)]
    assert not errs, [tostr(e) for e in errs[:5]]

    # 20 leave; each gets its own unavailable presence (110), the others see them go
    leavers = list(range(N_OCC - N_LEAVE, N_OCC))
    stay = [i for i in range(N_OCC) if i not in leavers]
    for i in leavers:
        users[i].send_presence(to="%s/%s" % (room, nicks[i]), type_="unavailable")
    for i in leavers:
        own = gather(users[i], 1, lambda e, i=i: (
            from_room(room, "unavailable")(e) and e.get("from") == "%s/%s" % (room, nicks[i])),
            10, "own unavailable presence")
        assert 110 in codes(own[0]), tostr(own[0])
    gone = sorted(nicks[i] for i in leavers)
    for i in stay:
        pres = gather(users[i], N_LEAVE, from_room(room, "unavailable"), 10,
                      "unavailable presences")
        assert sorted(p.get("from").split("/", 1)[1] for p in pres) == gone, \
            "%s saw these leave: %s" % (nicks[i], [p.get("from") for p in pres])

    # a late joiner sees who is still there and the last 20 messages as history
    late = login(timeout=30)
    j = join(late, room, "late")
    assert j.other_nicks() == sorted(nicks[i] for i in stay), j.other_nicks()
    hist = [(m.get("from").split("/", 1)[1], body_of(m)) for m in j.history]
    assert hist == order[-HISTORY:], "history %s, expected the last %d: %s" % (
        hist, HISTORY, order[-HISTORY:])
    for i in stay:
        gather(users[i], 1, lambda e: from_room(room)(e) and e.get("from") == room + "/late",
               10, "presence of the late joiner")


# ---------------------------------------------------------------------------------------------
# 3. an offline queue of 3,000 messages

N_OFF = scaled(3000, 600)
OFF_BODY = 4000  # bytes: 3,000 of them are ~12 MB, three times the 4 MB send queue
OFF_PAUSE = 2.0  # seconds the recipient does not read after its initial presence
LOGIN_LIMIT = 5.0  # seconds a login may take right after the queue was filled, even under ASan


def check_delay(m, domain, t0, t1, slack=2.0):
    d = m.find(q(NS_DELAY, "delay"))
    assert d is not None, "stored message without <delay/> (XEP-0203): %s" % tostr(m)[:300]
    stamp = d.get("stamp") or ""
    assert d.get("from") == domain and STAMP_RE.match(stamp), tostr(d)
    t = datetime.datetime.strptime(stamp.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert t0 - slack <= t <= t1 + slack, "stamp %s is not the time of storing" % stamp


def test_offline_queue_of_three_thousand(server, login):
    a = login(timeout=20)
    jid, pw = server.add_user()
    bystander = server.add_user()
    pad = "x" * (OFF_BODY - 20)
    sent = ["off %05d %s" % (i, pad) for i in range(N_OFF)]

    # With stream management, the server's h covers a message only once it is stored
    # (durable delivery): waiting for h makes sure the whole queue is in storage before the
    # recipient comes, however slow the build.
    a.send("<enable xmlns='urn:xmpp:sm:3'/>")
    a.expect(pred=lambda e: e.tag == "{urn:xmpp:sm:3}enabled")

    def stored_up_to(n):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            a.send("<r xmlns='urn:xmpp:sm:3'/>")
            ack = a.expect(pred=lambda e: e.tag == "{urn:xmpp:sm:3}a", timeout=30)
            if int(ack.get("h")) >= n:
                return
            time.sleep(0.05)
        raise AssertionError("the server never acknowledged %d messages" % n)

    t0 = time.monotonic()
    w0 = time.time()
    ids = []
    for k in range(0, N_OFF, CHUNK):
        ids += send_chat(a, jid, sent[k:k + CHUNK])
        stored_up_to(len(ids))
    w1 = time.time()
    secs = time.monotonic() - t0
    print("\noffline: stored %d messages (%.1f MB) in %.2fs (%.0f/s)" % (
        N_OFF, N_OFF * OFF_BODY / 1e6, secs, N_OFF / secs))
    errs = [e for e in a.drain(0.2) if is_error(e)]
    assert not errs, "sender got errors: %s" % [tostr(e)[:300] for e in errs[:5]]

    # storing them must not hold up the rest of the server: someone else can log in now
    # (asserted at the end)
    t0 = time.monotonic()
    login(*bystander, timeout=60)
    login_secs = time.monotonic() - t0
    print("offline: another user's login right after took %.2fs" % login_secs)

    # the recipient comes online with a small receive buffer and does not read at first:
    # a server that did not pace its pages would queue megabytes and cut it off
    b = login(jid, pw, timeout=20)
    b.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    b.send_presence()
    time.sleep(OFF_PAUSE)
    t0 = time.monotonic()
    got = gather(b, N_OFF, is_chat(a.jid), 60, "stored messages")
    secs = time.monotonic() - t0
    print("offline: delivered %d messages in %.2fs after a %.0fs pause (%.0f/s)" % (
        N_OFF, secs, OFF_PAUSE, N_OFF / secs))
    assert not b.closed and b.stream_error is None, \
        "the slow reader was cut off (stream error %s)" % b.stream_error
    assert [m.get("id") for m in got] == ids, "stored messages lost, repeated or out of order"
    assert [body_of(m) for m in got] == sent, "stored messages altered"
    for m in got:
        check_delay(m, server.domain, w0, w1)
    b.no_stanza("message", timeout=0.5)

    # connected past offline.grace: delivered for good, not again on the next login
    time.sleep(GRACE + 0.5)
    b.sync()
    b.close()
    c = login(jid, pw, timeout=20)
    c.send_presence()
    c.no_stanza("message", timeout=1.5)
    # checked last, so that a slow server still has its delivery checked above
    assert login_secs < LOGIN_LIMIT, \
        "another user's login took %.1fs (limit %.0fs) right after %d messages of %d bytes " \
        "were queued for %s" % (login_secs, LOGIN_LIMIT, N_OFF, OFF_BODY, jid)
