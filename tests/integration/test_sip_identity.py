"""Shared identity across SIP and XMPP (seed 003 R2, R3; PROTOCOL.md 2 and 5): a telephone number
configured as an alias ([sip.alias]) names the same account as sip:alice@<domain>, a SIP
registration is one of the identity's devices, and in exclusive mode a phone registering
supersedes the XMPP device (stream error <conflict/> with <superseded/>) and an XMPP device
binding supersedes the phone's registration.

Invariant: each test uses fresh accounts; exclusive mode is switched on with batonctl before the
account is loaded (it takes effect then).
"""

import time

import pytest

from helpers import free_port
from sipua import SipUA

NUMBER = "+15550100"


@pytest.fixture
def alias_server(tmp_path_factory):
    """A batond where NUMBER is an alias of a fresh account; yields (server, jid, password)."""
    from conftest import start_server
    from helpers import stop_and_check
    port = free_port()
    srv = start_server(tmp_path_factory, "sipid",
                       extra_args=["--sip", "127.0.0.1:%d" % port],
                       sets=["sip.t1=100ms", "sip.min_expires=1s", "identity.hold=1s",
                             "sip.alias.%s=tel1" % NUMBER])
    srv.sip_port = port
    jid, pw = srv.add_user("tel1")
    yield srv, jid, pw
    stop_and_check(srv)


class TelUA(SipUA):
    """A phone whose address of record is a tel: URI (RFC 3966)."""
    tel = None

    @property
    def aor(self):
        return self.tel or SipUA.aor.fget(self)


def ua(port, user, pw, transport="udp", aor=None):
    u = TelUA("127.0.0.1", port, transport, user=user, password=pw, domain="localhost", t1=0.1)
    u.tel = aor  # the identity form it registers (To of its REGISTERs)
    return u


def test_tel_alias_registers_and_receives(alias_server):
    srv, jid, pw = alias_server
    # The phone authenticates as the account (its private identity) and registers the number.
    phone = ua(srv.sip_port, "tel1", pw, aor="tel:%s" % NUMBER)
    try:
        r = phone.register(expires=60)
        assert r.status == 200, r
        other, opw = srv.add_user()
        sender = ua(srv.sip_port, other.split("@")[0], opw)
        try:
            # sip:alice@, sip:+number@ and tel:+number all reach the same device.
            for uri in ("sip:%s" % jid, "sip:%s@localhost" % NUMBER, "tel:%s" % NUMBER):
                r = sender.message(uri, "to " + uri, disposition="instant")
                assert r.status == 200, (uri, r)
                got = phone.expect_request("MESSAGE", timeout=5)
                assert got.text() == "to " + uri
            r = sender.message("tel:+15550199", "nobody", disposition="instant")
            assert r.status == 404
        finally:
            sender.close()
    finally:
        phone.close()


def test_registration_supersedes_xmpp_device_and_back(alias_server):
    srv, jid, pw = alias_server
    srv.ctl("identity", "exclusive", jid, "on")
    x = srv.login(jid, pw, presence=True)
    x.sync()
    phone = ua(srv.sip_port, "tel1", pw, aor="tel:%s" % NUMBER)
    try:
        assert phone.register(expires=60).status == 200
        # R3: the XMPP device is superseded at once, by the SIP device.
        x.wait_closed(timeout=5)
        assert "conflict" in (x.stream_error or ""), x.stream_error
        log = srv.ctl("identity", "log", jid).stdout
        assert "sip" in log, log
        # An XMPP device binding now supersedes the phone: its registration goes.
        y = srv.login(jid, pw, presence=True)
        y.sync()
        deadline = time.monotonic() + 5
        sender_jid, spw = srv.add_user()
        sender = ua(srv.sip_port, sender_jid.split("@")[0], spw)
        try:
            while True:
                r = sender.message("tel:%s" % NUMBER, "who has it", disposition="instant")
                # The XMPP device is available: it takes the instant message, not the phone.
                if r.status == 200:
                    break
                assert time.monotonic() < deadline, r
                time.sleep(0.2)
            m = y.expect_message(timeout=5)
            assert m is not None
            phone.no_request(timeout=1.0)
        finally:
            sender.close()
        y.close()
    finally:
        phone.close()
