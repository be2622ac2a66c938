"""Resource limits under load (STYLE.md rule 21): the per-connection byte rate, the send
queue of a client that stops reading, half-open TLS, and a memory ceiling for many
connections each holding a partial stanza. In every case the offender alone is slowed or
cut off, and everyone else keeps being served.
"""

import socket
import time

from conftest import start_server
from helpers import Client, Raw, stanza_error, stop_and_check, stream_header

AUTH_TIMEOUT = 2
RATE = 20000  # bytes per second per connection
SEND_QUEUE = 65536
SERVER_OPTS = {
    "allow_plaintext": True,
    "sets": ["limits.rate=%d" % RATE, "limits.rate_burst=%d" % RATE,
             "limits.send_queue=%d" % SEND_QUEUE, "limits.auth_timeout=%ds" % AUTH_TIMEOUT],
}


def rss_kib(server):
    with open("/proc/%d/status" % server.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def plain_login(server, clients):
    jid, pw = server.add_user()
    c = Client(server, jid, pw, mode="plain")
    clients.append(c)
    return c.connect()


def test_rate_limit_slows_only_the_flooder(server, clients):
    flooder = plain_login(server, clients)
    other = plain_login(server, clients)
    body = "x" * 1000
    n = 100  # about 110 KB: the burst, then about 4.5 s at RATE
    start = time.monotonic()
    for i in range(n):
        flooder.message(flooder.jid, body, id_="m%d" % i)
    # while the flooder is being throttled, another user gets answers at once
    t = time.monotonic()
    other.sync()
    assert time.monotonic() - t < 1.5, "a throttled neighbour slowed everyone down"
    for i in range(n):  # nothing is lost, only delayed
        flooder.expect("message", id="m%d" % i, timeout=20)
    elapsed = time.monotonic() - start
    assert elapsed > 2.5, "100 KB at %d B/s took only %.1fs: no rate limit" % (RATE, elapsed)


def test_reader_that_stops_reading_is_disconnected(tmp_path_factory, clients):
    # Its own server without a rate limit, so one sender can outrun the kernel's buffers.
    srv = start_server(tmp_path_factory, "slowreader", allow_plaintext=True,
                       sets=["limits.send_queue=%d" % SEND_QUEUE])
    try:
        victim = plain_login(srv, clients)
        victim.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sender = plain_login(srv, clients)
        body = "y" * 8000
        victim_addr = "127.0.0.1:%d" % victim.raw.sock.getsockname()[1]
        before = rss_kib(srv)
        deadline = time.monotonic() + 30
        cut = False
        while time.monotonic() < deadline and not cut:
            # a few at a time: the sender reads its own replies, it is no slow reader
            for _ in range(8):
                sender.message(victim.jid, body)
            sender.sync()
            cut = "%s does not read its output" % victim_addr in srv.stderr_text()
        assert cut, "a client that never reads was not disconnected"
        # the server's memory did not follow the flood
        assert rss_kib(srv) - before < 64 * 1024
        # the victim's session is gone (its resource no longer exists), the sender's is fine
        sender.drain()
        err = sender.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=victim.jid, timeout=5)
        assert err.get("type") == "error" and stanza_error(err)[1] == "service-unavailable"
        victim.abort()  # its kernel buffers hold megabytes; do not wait for them
        sender.close()
    finally:
        stop_and_check(srv)


def test_half_open_tls_is_closed(server):
    silent = Raw(server.tls_port, tls=False)  # TCP only: never says ClientHello
    partial = Raw(server.tls_port, tls=False)
    partial.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start
    for r in (silent, partial):
        assert r.wait_closed(AUTH_TIMEOUT + 5), "half-open TLS connection kept open"


def test_memory_ceiling_for_many_partial_stanzas(server, clients):
    before = rss_kib(server)
    socks = []
    partial = ("<message to='x@localhost'><body>" + "z" * 8000).encode()
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", server.c2s_port), timeout=5)
        s.sendall(stream_header(to=server.domain).encode() + partial)
        socks.append(s)
    time.sleep(0.5)
    grown = rss_kib(server) - before
    # 300 connections holding 8 KB each: bounded by their limits, not by what they send
    assert grown < 300 * 128, "RSS grew by %d KiB for 300 connections" % grown
    c = plain_login(server, clients)  # still serving
    c.sync()
    for s in socks:
        s.close()
