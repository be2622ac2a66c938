"""A tiny authoritative DNS server for the s2s tests (stdlib only): answers SRV, A and AAAA
queries over UDP and TCP from a dict of records, so batond and Prosody resolve the test
domains (baton.test, prosody.test, ...) to loopback ports without touching /etc/hosts.

Invariant: a name with records of some type answers NOERROR (an empty answer for a type it
lacks, RFC 2308 NODATA); any other name answers NXDOMAIN; every query is logged in
self.queries, so a test can tell which lookups a server made.

Usage:
    dns = DNSStub().start()                       # 127.0.0.1, a free port
    dns.add_srv("_xmpp-server._tcp.baton.test", "s2s.baton.test", 5269)
    dns.add_a("s2s.baton.test", "127.0.0.1")
    ... dns.host, dns.port ...
    dns.stop()
"""

import socket
import struct
import threading

TYPES = {"A": 1, "AAAA": 28, "SRV": 33}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
CLASS_IN = 1
RCODE_OK, RCODE_FORMERR, RCODE_NXDOMAIN, RCODE_NOTIMP = 0, 1, 3, 4
TTL = 5


def norm(name):
    return name.rstrip(".").lower()


def encode_name(name):
    """RFC 1035 3.1: a sequence of length-prefixed labels ending in the root label."""
    out = b""
    for label in norm(name).split("."):
        if label:
            raw = label.encode("idna")
            if len(raw) > 63:
                raise ValueError("label too long: %r" % label)
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def decode_name(msg, off):
    """Reads a (possibly compressed, RFC 1035 4.1.4) name; returns (name, offset after it)."""
    labels = []
    end = None
    hops = 0
    while True:
        if off >= len(msg):
            raise ValueError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or hops > 20:
                raise ValueError("bad compression pointer")
            if end is None:
                end = off + 2
            off = ((n & 0x3F) << 8) | msg[off + 1]
            hops += 1
            continue
        if n & 0xC0:
            raise ValueError("bad label type")
        off += 1
        if n == 0:
            break
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n
    return ".".join(labels), (end if end is not None else off)


class DNSStub:
    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port
        self.records = {}  # (name, type) -> list of rdata tuples
        self.queries = []  # (name, type name) in arrival order
        self.lock = threading.Lock()
        self.udp = None
        self.tcp = None
        self.threads = []
        self.stopping = False

    # -- records

    def add(self, name, rtype, rdata):
        with self.lock:
            self.records.setdefault((norm(name), rtype), []).append(rdata)

    def add_a(self, name, addr):
        self.add(name, "A", addr)

    def add_aaaa(self, name, addr):
        self.add(name, "AAAA", addr)

    def add_srv(self, name, target, port, priority=0, weight=0):
        self.add(name, "SRV", (priority, weight, port, target))

    def remove(self, name, rtype=None):
        with self.lock:
            for key in [k for k in self.records if k[0] == norm(name)
                        and (rtype is None or k[1] == rtype)]:
                del self.records[key]

    def queried(self, name, rtype=None):
        """True if name (of rtype, if given) was asked for."""
        with self.lock:
            return any(n == norm(name) and (rtype is None or t == rtype)
                       for n, t in self.queries)

    # -- the server

    def start(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((self.host, self.port))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((self.host, self.port))
        self.tcp.listen(16)
        for target in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=target, daemon=True, name="dnsstub")
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stopping = True
        for s in (self.udp, self.tcp):
            try:
                s.close()
            except OSError:
                pass
        # a blocked recvfrom/accept is woken by a datagram/connection to itself
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            try:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.settimeout(0.2)
                    s.connect((self.host, self.port))
                    if kind == socket.SOCK_DGRAM:
                        s.send(b"\0")
            except OSError:
                pass
        for t in self.threads:
            t.join(1)

    def _serve_udp(self):
        while not self.stopping:
            try:
                data, peer = self.udp.recvfrom(4096)
            except OSError:
                return
            reply = self.answer(data)
            if reply is None:
                continue
            if len(reply) > 512:  # RFC 1035 4.2.1: truncate, the client retries over TCP
                reply = reply[:2] + struct.pack("!H", struct.unpack("!H", reply[2:4])[0]
                                                | 0x0200) + reply[4:12]
            try:
                self.udp.sendto(reply, peer)
            except OSError:
                pass

    def _serve_tcp(self):
        while not self.stopping:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._tcp_conn, args=(conn,), daemon=True).start()

    def _tcp_conn(self, conn):
        """RFC 1035 4.2.2: each message is prefixed with a two-byte length."""
        conn.settimeout(5)
        buf = b""
        try:
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 2:
                    n = struct.unpack("!H", buf[:2])[0]
                    if len(buf) < 2 + n:
                        break
                    reply = self.answer(buf[2:2 + n])
                    buf = buf[2 + n:]
                    if reply is not None:
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            pass
        finally:
            conn.close()

    # -- the protocol

    def answer(self, msg):
        """The reply to one query message (bytes), or None to drop it."""
        if len(msg) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
        if flags & 0x8000:  # a response, not a query
            return None
        rd = flags & 0x0100
        opcode = (flags >> 11) & 0xF
        try:
            if qdcount != 1:
                raise ValueError("qdcount %d" % qdcount)
            qname, off = decode_name(msg, 12)
            if off + 4 > len(msg):
                raise ValueError("short question")
            qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
            question = msg[12:off + 4]
        except ValueError:
            return struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | RCODE_FORMERR, 0, 0, 0, 0)
        name = norm(qname)
        tname = TYPE_NAMES.get(qtype, str(qtype))
        with self.lock:
            self.queries.append((name, tname))
            known = any(k[0] == name for k in self.records)
            rrs = list(self.records.get((name, tname), ())) if qclass == CLASS_IN else []
        rcode = RCODE_OK
        if opcode != 0:
            rcode, rrs = RCODE_NOTIMP, []
        elif not known:
            rcode = RCODE_NXDOMAIN
        body = b""
        for rdata in rrs:
            body += self._rr(qtype, rdata)
        # QR, AA, RD copied, RA
        hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, len(rrs),
                          0, 0)
        return hdr + question + body

    @staticmethod
    def _rr(qtype, rdata):
        if qtype == TYPES["A"]:
            data = socket.inet_pton(socket.AF_INET, rdata)
        elif qtype == TYPES["AAAA"]:
            data = socket.inet_pton(socket.AF_INET6, rdata)
        else:  # SRV, RFC 2782: priority, weight, port, target (not compressed)
            prio, weight, port, target = rdata
            data = struct.pack("!HHH", prio, weight, port) + encode_name(target)
        # the owner name points back at the question (offset 12)
        return struct.pack("!HHHIH", 0xC00C, qtype, CLASS_IN, TTL, len(data)) + data


def query(server, name, rtype="A", tcp=False, timeout=2.0, qid=0x1234):
    """A minimal client, for checking the stub: returns (rcode, [rdata...])."""
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack(
        "!HH", TYPES[rtype], CLASS_IN)
    if tcp:
        with socket.create_connection(server, timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(q)) + q)
            buf = b""
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
            msg = buf[2:]
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(q, server)
            msg, _ = s.recvfrom(4096)
    rid, flags, qd, an = struct.unpack("!HHHH", msg[:8])
    assert rid == qid, "reply id %d != %d" % (rid, qid)
    off = 12
    for _ in range(qd):
        _, off = decode_name(msg, off)
        off += 4
    out = []
    for _ in range(an):
        _, off = decode_name(msg, off)
        t, _, _, n = struct.unpack("!HHIH", msg[off:off + 10])
        off += 10
        rd = msg[off:off + n]
        if t == TYPES["A"]:
            out.append(socket.inet_ntop(socket.AF_INET, rd))
        elif t == TYPES["AAAA"]:
            out.append(socket.inet_ntop(socket.AF_INET6, rd))
        elif t == TYPES["SRV"]:
            p, w, port = struct.unpack("!HHH", rd[:6])
            out.append((p, w, port, decode_name(msg, off + 6)[0]))
        off += n
    return flags & 0xF, out
