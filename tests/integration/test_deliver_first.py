"""Deliver first (durable.c): a chat message to a recipient whose devices all use XEP-0198 goes
out at once and is stored only if no device acknowledges it within offline.ack_wait. The
sender's XEP-0198 ack follows the recipient's ack, or the commit of the stored copy, never
comes before either (DESIGN.md durability rule), and SIGKILL at any point afterwards loses
nothing the sender holds an ack for.

Invariant: every wait is bounded; timings are judged against ACK_WAIT (3 s), far from the
sub-second answers a prompt path gives.
"""

import time

import pytest

from conftest import start_server
from helpers import NS_CLIENT, q, stop_and_check, tostr
from smclient import NS_SM, connect

DOMAIN = "localhost"
ACK_WAIT = 3.0  # offline.ack_wait, seconds
PROMPT = 1.5  # an answer that did not wait for ACK_WAIT comes within this
NS_DELAY = "urn:xmpp:delay"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start_server(tmp_path_factory, "deliverfirst", domain=DOMAIN,
                     sets=["offline.ack_wait=%dms" % int(ACK_WAIT * 1000)])
    yield s
    stop_and_check(s)


def user(srv, clients, enable="plain", presence=True, resource=None):
    jid, pw = srv.add_user()
    c = connect(srv, clients, jid, pw, resource=resource, enable=enable, presence=presence)
    c.password = pw
    return c


def device(srv, clients, of, enable="plain", resource=None):
    """Another device of of's account."""
    c = connect(srv, clients, of.bare, of.password, resource=resource, enable=enable,
                presence=True)
    c.password = of.password
    return c


def a_ack(a, timeout):
    """The largest h of the <a/>s the server sends a within timeout (None if none)."""
    h = None
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        el = a.wait_for(pred=lambda e: e.tag == q(NS_SM, "a"), timeout=max(left, 0.01))
        if el is None:
            return h
        h = max(h or 0, int(el.get("h")))
        if left <= 0:
            return h


def send_with_r(a, to, body):
    """a sends one message and an <r/>; the <a/> answering it comes once the message is
    handled: acknowledged by a recipient's device, or stored."""
    a.message(to, body)
    a.send("<r xmlns='%s'/>" % NS_SM)


def wait_ack_of(a, want, timeout):
    """Seconds until the server acknowledges h >= want to a (fails after timeout)."""
    t0 = time.monotonic()
    while True:
        left = timeout - (time.monotonic() - t0)
        assert left > 0, "the server never acknowledged h=%d to the sender" % want
        el = a.wait_for(pred=lambda e: e.tag == q(NS_SM, "a"), timeout=left)
        assert el is not None, "the server never acknowledged h=%d to the sender" % want
        if int(el.get("h")) >= want:
            return time.monotonic() - t0


def body_of(m):
    return m.findtext(q(NS_CLIENT, "body"))


def test_sender_ack_waits_for_the_recipient_ack(srv, clients):
    b = user(srv, clients)
    a = user(srv, clients, presence=False)
    h0 = a.sm_sent  # nothing sent by a yet with SM on
    send_with_r(a, b.bare, "first")
    m = b.expect_message(body="first")
    assert m.find(q(NS_DELAY, "delay")) is None, "delivered live, not from storage"
    assert a_ack(a, 0.5) is None, "the <r/> was answered before the recipient acknowledged"
    b.ack()
    el = a.expect(pred=lambda e: e.tag == q(NS_SM, "a"), timeout=PROMPT,
                  what="the <a/> once the recipient acknowledged")
    assert int(el.get("h")) == h0 + 1, tostr(el)
    assert a_ack(a, 0.3) is None, "one <r/>, more than one <a/>"


def test_unacknowledged_is_stored_after_ack_wait_and_survives_sigkill(tmp_path_factory,
                                                                      clients):
    s = start_server(tmp_path_factory, "deliverfirstkill", domain=DOMAIN,
                     sets=["offline.ack_wait=%dms" % int(ACK_WAIT * 1000)])
    try:
        b = user(s, clients)
        a = user(s, clients, presence=False)
        t0 = time.monotonic()
        send_with_r(a, b.bare, "keep me")
        b.expect_message(body="keep me")  # delivered, never acknowledged by b
        wait_ack_of(a, 1, ACK_WAIT + 5)
        took = time.monotonic() - t0
        assert took >= ACK_WAIT * 0.8, "acknowledged after %.2fs, before offline.ack_wait" % took
        s.kill()  # SIGKILL: only what is stored survives
        s.start()
        b2 = connect(s, clients, b.bare, b.password, enable="plain", presence=True)
        m = b2.expect_message(body="keep me", timeout=10)
        assert m.find(q(NS_DELAY, "delay")) is not None, tostr(m)
        b2.ack()
        assert b2.wait_for(pred=lambda e: e.tag == q(NS_CLIENT, "message") and body_of(e),
                           timeout=1) is None, "delivered twice"
    finally:
        stop_and_check(s)


def test_acknowledged_message_is_not_kept(tmp_path_factory, clients):
    s = start_server(tmp_path_factory, "deliverfirstacked", domain=DOMAIN,
                     sets=["offline.ack_wait=%dms" % int(ACK_WAIT * 1000)])
    try:
        b = user(s, clients)
        a = user(s, clients, presence=False)
        send_with_r(a, b.bare, "read at once")
        b.expect_message(body="read at once")
        b.ack()
        wait_ack_of(a, 1, PROMPT)
        time.sleep(ACK_WAIT + 0.5)  # past the deadline: nothing must be stored now
        s.kill()
        s.start()
        b2 = connect(s, clients, b.bare, b.password, enable="plain", presence=True)
        got = b2.wait_for(pred=lambda e: e.tag == q(NS_CLIENT, "message") and body_of(e),
                          timeout=1.5)
        assert got is None, "an acknowledged message came again: %s" % tostr(got)
    finally:
        stop_and_check(s)


def test_recipient_gone_without_ack_gets_it_from_storage(srv, clients):
    b = user(srv, clients)  # stream management without resumption: gone when the TCP goes
    a = user(srv, clients, presence=False)
    send_with_r(a, b.bare, "you left")
    b.expect_message(body="you left")
    t0 = time.monotonic()
    b.abort()
    wait_ack_of(a, 1, PROMPT + 1)  # stored when b's session ended, not at the deadline
    assert time.monotonic() - t0 < ACK_WAIT
    b2 = connect(srv, clients, b.bare, b.password, enable="plain", presence=True)
    m = b2.expect_message(body="you left", timeout=5)
    assert m.find(q(NS_DELAY, "delay")) is not None, tostr(m)


def test_device_without_stream_management_means_store_first(srv, clients):
    b = user(srv, clients, resource="sm")
    device(srv, clients, b, enable=None, resource="plain")
    a = user(srv, clients, presence=False)
    send_with_r(a, b.bare, "stored before it went")
    b.expect_message(body="stored before it went")
    # Nobody acknowledges, yet the commit lets the sender's ack go at once.
    wait_ack_of(a, 1, PROMPT)


def test_one_device_ack_is_enough(srv, clients):
    b1 = user(srv, clients, resource="one")
    b2 = device(srv, clients, b1, resource="two")
    a = user(srv, clients, presence=False)
    send_with_r(a, b1.bare, "to both")
    b1.expect_message(body="to both")
    b2.expect_message(body="to both")
    assert a_ack(a, 0.3) is None, "answered before any device acknowledged"
    b2.ack()
    wait_ack_of(a, 1, PROMPT)
    # b1 never acknowledges; when it goes, the message is not stored for later: the account
    # has it (a device that comes afterwards gets nothing from storage).
    b1.abort()
    time.sleep(0.5)
    b3 = connect(srv, clients, b1.bare, b1.password, enable="plain", presence=True,
                 resource="three")
    got = b3.wait_for(pred=lambda e: e.tag == q(NS_CLIENT, "message") and body_of(e),
                      timeout=1.5)
    assert got is None, "stored although a device acknowledged it: %s" % tostr(got)


def test_sender_without_stream_management(srv, clients):
    b = user(srv, clients)
    a = user(srv, clients, enable=None, presence=False)
    a.message(b.bare, "no acks here")
    m = b.expect_message(body="no acks here")
    assert m.find(q(NS_DELAY, "delay")) is None, tostr(m)
    b.ack()
    time.sleep(0.3)
    b.close()
    b2 = connect(srv, clients, b.bare, b.password, enable="plain", presence=True)
    got = b2.wait_for(pred=lambda e: e.tag == q(NS_CLIENT, "message") and body_of(e),
                      timeout=1.5)
    assert got is None, "acknowledged, yet delivered again from storage: %s" % tostr(got)


def test_many_messages_out_of_order_acks(srv, clients):
    """Two recipients acknowledge in the opposite order to the sender's: the sender's h only
    moves past a message once its own recipient acknowledged it."""
    b = user(srv, clients)
    c = user(srv, clients)
    a = user(srv, clients, presence=False)
    a.message(b.bare, "to b")
    a.message(c.bare, "to c")
    a.send("<r xmlns='%s'/>" % NS_SM)
    b.expect_message(body="to b")
    c.expect_message(body="to c")
    c.ack()  # the second message is acknowledged first: the <r/> must wait for both
    assert a_ack(a, 0.5) is None, "answered before the first message's recipient acked"
    b.ack()
    wait_ack_of(a, 2, PROMPT)
