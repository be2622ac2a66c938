"""Federation between batond servers (RFC 6120 section 13): certificate authentication (SASL
EXTERNAL), dialback (XEP-0220) when certificates do not verify, certificates only when dialback
is off, bounces for peers that cannot be reached, a peer restart, offline delivery and MUC
across domains. test_s2s.py does the same against Prosody.

Four servers on loopback, routed to each other with s2s.route: a.test and b.test trust the test
CA; c.test trusts nothing (its peers must use dialback); d.test trusts nothing and refuses
dialback, so nobody can federate with it.
"""

import os
import socket
import subprocess
import threading
import time

import pytest

from helpers import Server, stanza_error, stop_and_check, tostr

DOMAINS = ["a.test", "b.test", "c.test", "d.test"]


def make_pki(d):
    """A throwaway CA and a certificate for each domain (with its subdomains)."""
    def run(*args):
        subprocess.run(args, check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        "-out", "ca.pem", "-days", "2", "-subj", "/CN=baton test CA")
    for dom in DOMAINS + ["fake.test"]:
        with open(os.path.join(d, dom + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s,DNS:*.%s\n" % (dom, dom))
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", dom + ".key",
            "-out", dom + ".csr", "-subj", "/CN=" + dom)
        run("openssl", "x509", "-req", "-in", dom + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", dom + ".pem", "-days", "2", "-extfile", dom + ".ext")


def start_all(servers, base, pki, ports):
    for dom in DOMAINS:
        sets = ["s2s.route.%s=127.0.0.1:%d" % (o, p) for o, p in ports.items() if o != dom]
        sets += ["s2s.connect_timeout=3s", "server.log_level=debug"]
        if dom in ("a.test", "b.test"):
            sets.append("s2s.ca_file=%s/ca.pem" % pki)
        else:  # nothing trusted: the system's CAs do not know the test CA
            sets.append("s2s.ca_file=%s/%s.pem" % (pki, dom))
        if dom == "d.test":
            sets.append("s2s.dialback=false")
        if dom == "c.test":
            sets.append("s2s.idle_timeout=2s")
        srv = Server(str(base / dom), domain=dom, allow_plaintext=True, sets=sets,
                     extra_args=["--s2s", "127.0.0.1:%d" % ports[dom],
                                 "--cert", "%s/%s.pem" % (pki, dom),
                                 "--key", "%s/%s.key" % (pki, dom)])
        servers[dom] = srv.start()


@pytest.fixture(scope="module")
def fed(tmp_path_factory):
    base = tmp_path_factory.mktemp("fed")
    pki = str(base / "pki")
    os.makedirs(pki)
    make_pki(pki)
    ports = {d: low_port() for d in DOMAINS}
    ports["dead.test"] = low_port()  # nobody listens there
    fake = FakePeer("fake.test", pki)
    ports["fake.test"] = fake.port
    # a peer that accepts TCP and never speaks: connection attempts time out
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    ports["mute.test"] = mute.getsockname()[1]
    servers = {}
    try:
        start_all(servers, base, pki, ports)
    except BaseException:
        for srv in servers.values():
            srv.kill()
        mute.close()
        fake.close()
        raise
    servers["fake"] = fake
    yield servers
    for dom in DOMAINS:
        stop_and_check(servers[dom])
    mute.close()
    fake.close()


def low_port():
    """A free port below the kernel's ephemeral range, which free_port() (and so every
    server's c2s/HTTP ports) draws from: reserved here for a later start, it cannot be taken
    by another server meanwhile."""
    import random
    while True:
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


class FakePeer:
    """A receiving server that offers XEP-0288 bidi and SASL EXTERNAL, accepts whatever batond
    sends, and then, as a hostile peer would, sends stanzas over batond's own stream from a
    domain that is not its own. Serves one connection at a time in a thread."""

    def __init__(self, domain, pki):
        import ssl
        self.domain = domain
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(pki, domain + ".pem"),
                                 os.path.join(pki, domain + ".key"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.spoof_from = None  # set by a test before batond connects
        self.received = []
        self.closed_with = None
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self.sock.close()

    def _read_until(self, conn, marker, buf=b""):
        while marker not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                raise EOFError(buf)
            buf += chunk
        return buf

    def _header(self, conn):
        conn.sendall(("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber."
                      "org/streams' xmlns:db='jabber:server:dialback' id='fake%d' from='%s' "
                      "version='1.0'>" % (time.monotonic_ns(), self.domain)).encode())

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.settimeout(10)
                self._read_until(conn, b"version=")
                self._header(conn)
                conn.sendall(b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                             b"<required/></starttls><bidi xmlns='urn:xmpp:features:bidi'/>"
                             b"</stream:features>")
                self._read_until(conn, b"<starttls")
                conn.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                conn = self.ctx.wrap_socket(conn, server_side=True)
                self._read_until(conn, b"version=")
                self._header(conn)
                conn.sendall(b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                             b"<mechanism>EXTERNAL</mechanism></mechanisms>"
                             b"<bidi xmlns='urn:xmpp:features:bidi'/></stream:features>")
                data = self._read_until(conn, b"</auth>")
                assert b"urn:xmpp:bidi" in data, data
                conn.sendall(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
                self._read_until(conn, b"version=")
                self._header(conn)
                conn.sendall(b"<stream:features/>")
                data = self._read_until(conn, b"</message>")
                self.received.append(data)
                frm = self.spoof_from or ("bot@" + self.domain)
                conn.sendall(("<message from='%s' to='%s' type='chat'><body>over bidi</body>"
                              "</message>" % (frm, self.reply_to)).encode())
                if not self.spoof_from:
                    conn.sendall(b"</stream:stream>")  # done: batond's next stanza reconnects
                rest = b""
                try:
                    while True:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        rest += chunk
                except OSError:
                    pass
                self.closed_with = rest
            except Exception as e:  # the test sees what was (not) received
                self.closed_with = repr(e).encode()
            finally:
                conn.close()


def user(srv, presence=True, roster=True):
    return srv.new_user_client(presence=presence, roster=roster, timeout=8)


def test_messages_both_ways_with_certificates(fed):
    a, b = user(fed["a.test"]), user(fed["b.test"])
    a.message(b.bare, "hello b")
    m = b.expect_message(body="hello b")
    assert m.get("from") == a.jid, tostr(m)
    b.message(a.jid, "hello a")
    assert a.expect_message(body="hello a").get("from") == b.jid
    assert "b.test authenticated (SASL EXTERNAL)" in fed["a.test"].stderr_text()
    assert "a.test authenticated (SASL EXTERNAL)" in fed["b.test"].stderr_text()


def test_iq_to_remote_server_and_user(fed):
    a, b = user(fed["a.test"]), user(fed["b.test"])
    res = a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to="b.test", check=True)
    assert res.get("from") == "b.test" and res.get("type") == "result", tostr(res)
    res = a.iq("get", "<query xmlns='jabber:iq:version'/>", to="b.test", check=True)
    assert res.get("type") == "result", tostr(res)
    # an iq to a full JID on the other server reaches the client, and its answer comes back
    a.send("<iq type='get' id='v1' to='%s'><query xmlns='jabber:iq:version'/></iq>" % b.jid)
    req = b.expect("iq", lambda e: e.get("id") == "v1")
    assert req.get("from") == a.jid
    b.send("<iq type='result' id='v1' to='%s'><query xmlns='jabber:iq:version'>"
           "<name>b's client</name></query></iq>" % a.jid)
    res = a.expect("iq", lambda e: e.get("id") == "v1")
    assert res.get("type") == "result" and "b's client" in tostr(res)


def test_presence_subscription_across(fed):
    a, b = user(fed["a.test"]), user(fed["b.test"])
    a.set_roster_item(b.bare)
    a.expect_push(b.bare)
    a.send_presence(to=b.bare, type_="subscribe")
    p = b.expect_presence(frm=a.bare, type_="subscribe", bare_from=True)
    assert p is not None
    b.send_presence(to=a.bare, type_="subscribed")
    item = a.expect_push(b.bare, pred=lambda it: it.get("subscription") == "to")
    assert item.get("subscription") == "to"
    # RFC 6121 3.1.5: b's server sends b's current presence; later changes flow too
    a.expect_presence(frm=b.jid)
    b.send_presence(status="on b")
    p = a.expect("presence", lambda e: "on b" in tostr(e))
    assert p.get("from") == b.jid
    b.send_presence(type_="unavailable")
    a.expect_presence(frm=b.jid, type_="unavailable")


def test_dialback_when_certificates_do_not_verify(fed):
    a, c = user(fed["a.test"]), user(fed["c.test"])
    a.message(c.bare, "to c")
    assert c.expect_message(body="to c").get("from") == a.jid
    c.message(a.bare, "to a")
    assert a.expect_message(body="to a").get("from") == c.jid
    # c does not trust a's certificate: a proves itself with dialback; a trusts c's
    assert "a.test authenticated (dialback)" in fed["c.test"].stderr_text()
    assert "c.test authenticated (SASL EXTERNAL)" in fed["a.test"].stderr_text()


def test_no_dialback_and_no_trusted_certificate_bounces(fed):
    a, d = user(fed["a.test"]), user(fed["d.test"])
    a.message(d.bare, "unreachable", id_="m-d")
    err = a.expect("message", lambda e: e.get("id") == "m-d" and e.get("type") == "error",
                   timeout=10)
    assert stanza_error(err)[1] == "remote-server-not-found", tostr(err)
    d.message(a.bare, "from d", id_="m-d2")
    err = d.expect("message", lambda e: e.get("id") == "m-d2" and e.get("type") == "error",
                   timeout=10)
    assert stanza_error(err)[1] == "remote-server-not-found", tostr(err)
    a.no_stanza("message", lambda e: "from d" in tostr(e))


def test_unreachable_and_silent_peers_bounce(fed):
    a = user(fed["a.test"])
    t0 = time.monotonic()
    a.message("x@dead.test", "nobody there", id_="dead")
    err = a.expect("message", lambda e: e.get("id") == "dead", timeout=10)
    assert stanza_error(err)[1] == "remote-server-not-found", tostr(err)
    a.message("x@nxdomain.invalid", "no such domain", id_="nx")
    err = a.expect("message", lambda e: e.get("id") == "nx", timeout=10)
    assert stanza_error(err)[1] == "remote-server-not-found", tostr(err)
    # a peer that accepts and never answers: remote-server-timeout after s2s.connect_timeout
    for i in range(3):
        a.message("x@mute.test", "wait %d" % i, id_="mute%d" % i)
    for i in range(3):
        err = a.expect("message", lambda e, i=i: e.get("id") == "mute%d" % i, timeout=10)
        assert stanza_error(err)[:2] == ("wait", "remote-server-timeout"), tostr(err)
    assert time.monotonic() - t0 < 12
    # iq errors too; and results and errors themselves are never bounced
    res = a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to="dead.test")
    assert stanza_error(res)[1] == "remote-server-not-found", tostr(res)


def test_offline_delivery_across(fed):
    a = user(fed["a.test"])
    jid, pw = fed["b.test"].add_user()
    a.message(jid, "while you were out")
    time.sleep(0.5)
    b = fed["b.test"].login(jid, pw, presence=True, timeout=8)
    m = b.expect_message(body="while you were out")
    assert m.get("from") == a.jid


def test_muc_across_domains(fed):
    a, b = user(fed["a.test"]), user(fed["b.test"])
    room = "fedroom@conference.b.test"
    b.send("<presence to='%s/bee'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % room)
    b.expect_presence(frm=room + "/bee")
    a.send("<presence to='%s/ant'><x xmlns='http://jabber.org/protocol/muc'/></presence>" % room)
    a.expect_presence(frm=room + "/ant")
    b.expect_presence(frm=room + "/ant")
    a.send("<message to='%s' type='groupchat'><body>hi room</body></message>" % room)
    m = b.expect("message", lambda e: e.get("type") == "groupchat" and "hi room" in tostr(e))
    assert m.get("from") == room + "/ant"
    a.expect("message", lambda e: e.get("type") == "groupchat" and "hi room" in tostr(e))


def test_peer_restart_mid_conversation(fed):
    a = user(fed["a.test"])
    jid, pw = fed["b.test"].add_user()
    b = fed["b.test"].login(jid, pw, presence=True, timeout=8)
    a.message(jid, "before")
    b.expect_message(body="before")
    fed["b.test"].restart()
    b = fed["b.test"].login(jid, pw, presence=True, timeout=8)
    a.message(jid, "after")
    assert b.expect_message(body="after", timeout=10).get("from") == a.jid
    b.message(a.jid, "back")
    a.expect_message(body="back", timeout=10)


def test_hostile_peer_cannot_spoof(fed):
    """A plain TCP peer: STARTTLS is required first; a stanza before it ends the stream."""
    srv = fed["a.test"]
    s2s_port = int(srv.extra_args[srv.extra_args.index("--s2s") + 1].rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", s2s_port), timeout=5)
    s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
              b"xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
              b"from='b.test' to='a.test' version='1.0'>"
              b"<message from='x@b.test' to='nobody@a.test'><body>spoof</body></message>")
    data = b""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert b"policy-violation" in data or b"not-authorized" in data, data
    # bad XML
    s = socket.create_connection(("127.0.0.1", s2s_port), timeout=5)
    s.sendall(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/"
              b"streams' to='a.test' version='1.0'><<<>")
    data = s.recv(4096)
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert b"not-well-formed" in data, data
    # the server keeps serving
    a, b = user(fed["a.test"]), user(fed["b.test"])
    a.message(b.bare, "still here")
    b.expect_message(body="still here")


def test_idle_streams_close_and_reopen(fed):
    """c.test closes server streams idle for s2s.idle_timeout (2 s); the next stanza reopens."""
    a, c = user(fed["a.test"]), user(fed["c.test"])
    c.message(a.bare, "one")
    a.expect_message(body="one")
    deadline = time.monotonic() + 8
    while "c.test -> a.test: closed (idle)" not in fed["c.test"].stderr_text():
        assert time.monotonic() < deadline, "c.test kept an idle stream open"
        time.sleep(0.3)
    c.message(a.bare, "two")
    assert a.expect_message(body="two").get("from") == c.jid


def test_remote_users_get_no_upload_slots(fed):
    """XEP-0363 slots are for the server's own users; a user of another server is refused."""
    a = user(fed["a.test"])
    res = a.iq("get", "<request xmlns='urn:xmpp:http:upload:0' filename='x.ogg' size='100' "
               "content-type='audio/ogg'/>", to="upload.b.test")
    assert stanza_error(res)[1] == "not-allowed", tostr(res)
    res = a.iq("get", "<request xmlns='urn:xmpp:http:upload:0' filename='x.ogg' size='100' "
               "content-type='audio/ogg'/>", to="upload.a.test", check=True)
    assert res.get("type") == "result", tostr(res)


def test_unacknowledged_stanzas_survive_a_peer_crash(fed):
    """XEP-0198 on server streams: messages written to a peer that dies before acknowledging
    them are sent again on the next stream, so a crash of the peer loses nothing."""
    import signal
    a = user(fed["a.test"])
    jid, pw = fed["b.test"].add_user()
    b = fed["b.test"].login(jid, pw, presence=True, timeout=8)
    a.message(jid, "m0")
    b.expect_message(body="m0")
    b.close()
    srv = fed["b.test"]
    srv.proc.send_signal(signal.SIGSTOP)  # reads nothing, acknowledges nothing
    try:
        for i in range(1, 4):
            a.message(jid, "m%d" % i)
        time.sleep(0.5)
    finally:
        srv.kill()
    srv.start()
    b = srv.login(jid, pw, presence=True, timeout=8)
    for i in range(1, 4):
        b.expect_message(body="m%d" % i, timeout=15)
    assert "unacknowledged stanzas go again" in fed["a.test"].stderr_text()


def test_bidi_peer_stanzas_accepted_only_from_its_domain(fed):
    """XEP-0288: baton asks a peer that offers bidi to send its stanzas over baton's own
    stream; the peer's own domain gets through, any other domain ends the stream."""
    fake = fed["fake"]
    a = user(fed["a.test"])
    fake.reply_to = a.jid
    a.message("bot@fake.test", "hi bot")
    m = a.expect_message(body="over bidi", timeout=10)
    assert m.get("from") == "bot@fake.test", tostr(m)
    assert b"hi bot" in fake.received[-1]
    # the next stream: the peer claims to speak for b.test over its bidi stream
    fake.spoof_from = "mallory@b.test"
    deadline = time.monotonic() + 10
    while fake.closed_with is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    fake.closed_with = None
    a.message("bot@fake.test", "hi again")
    deadline = time.monotonic() + 10
    while fake.closed_with is None:
        assert time.monotonic() < deadline, "batond kept the stream open"
        time.sleep(0.1)
    assert b"invalid-from" in fake.closed_with, fake.closed_with
    a.no_stanza("message", lambda e: "over bidi" in tostr(e))
