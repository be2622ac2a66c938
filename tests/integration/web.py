"""Small clients for baton's HTTP side, written with the standard library only so the tests can
also misbehave on purpose: a WebSocket client (RFC 6455) that can send unmasked, fragmented or
oversized frames, an XMPP-over-WebSocket client (RFC 7395) and a BOSH client (XEP-0124/0206).

Invariant: nothing here blocks without a timeout; every wait raises when its deadline passes.
"""

import base64
import http.client
import os
import select
import socket
import struct
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import helpers
from helpers import NS_BIND, NS_SASL, q

NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
NS_HTTPBIND = "http://jabber.org/protocol/httpbind"
NS_XBOSH = "urn:xmpp:xbosh"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class WsClosed(Exception):
    pass


class WebSocket:
    """One WebSocket connection; recv() returns (opcode, payload) of whole messages."""

    def __init__(self, port, path="/xmpp-websocket", protocol="xmpp", origin=None,
                 timeout=helpers.DEFAULT_TIMEOUT, extra_headers=()):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port,
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if protocol:
            lines.append("Sec-WebSocket-Protocol: " + protocol)
        if origin:
            lines.append("Origin: " + origin)
        lines += list(extra_headers)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        head = self._read_until(b"\r\n\r\n")
        status_line, *hdrs = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {}
        for h in hdrs:
            if ":" in h:
                k, v = h.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        self.closed = False

    def _read_until(self, marker):
        deadline = time.monotonic() + self.timeout
        while marker not in self.buf:
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("websocket: nothing received in time")
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise TimeoutError("websocket: nothing received in time")
        data = self.sock.recv(65536)
        if not data:
            raise WsClosed("connection closed")
        self.buf += data

    def _read(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0):
        if isinstance(payload, str):
            payload = payload.encode()
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            head = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send(self, text):
        self.send_frame(OP_TEXT, text)

    def recv_frame(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        b0, b1 = self._read(2, deadline)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8, deadline))[0]
        if b1 & 0x80:
            raise AssertionError("server frames must not be masked (RFC 6455 5.1)")
        return b0 & 0x0F, bool(b0 & 0x80), self._read(n, deadline)

    def recv(self, timeout=None):
        """The next data or close message: (opcode, payload bytes). Answers pings."""
        parts, first = [], None
        while True:
            op, fin, data = self.recv_frame(timeout)
            if op == OP_PING:
                self.send_frame(OP_PONG, data)
                continue
            if op in (OP_PONG,):
                continue
            if op == OP_CLOSE:
                self.closed = True
                return op, data
            if first is None:
                first = op
            parts.append(data)
            if fin:
                return first, b"".join(parts)

    def close_code(self, timeout=None):
        """Reads until a close frame; returns its status code (None if the socket just ends)."""
        try:
            while True:
                op, data = self.recv(timeout)
                if op == OP_CLOSE:
                    return struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0
        except WsClosed:
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class WsXmpp:
    """An XMPP client over WebSocket (RFC 7395): open, SASL PLAIN, bind, elements."""

    def __init__(self, port, domain="localhost", **kw):
        self.ws = WebSocket(port, **kw)
        if self.ws.status != 101:
            raise AssertionError("upgrade refused: %d" % self.ws.status)
        self.domain = domain
        self.jid = None

    def open(self):
        self.ws.send("<open xmlns='%s' to='%s' version='1.0'/>" % (NS_FRAMING, self.domain))
        opened = self.recv()
        assert opened.tag == q(NS_FRAMING, "open"), helpers.tostr(opened)
        return self.recv()  # features

    def recv(self, timeout=None):
        op, data = self.ws.recv(timeout)
        if op == OP_CLOSE:
            raise WsClosed("websocket closed: %r" % data)
        assert op == OP_TEXT, op
        return ET.fromstring(data)

    def send(self, text):
        self.ws.send(text)

    def login(self, user, password, resource=None):
        self.open()
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        r = self.recv()
        if r.tag != q(NS_SASL, "success"):
            raise AssertionError("auth failed: " + helpers.tostr(r))
        self.open()
        res = "<resource>%s</resource>" % escape(resource) if resource else ""
        self.send("<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='%s'>%s</bind></iq>"
                  % (NS_BIND, res))
        r = self.recv()
        self.jid = r.find(".//" + q(NS_BIND, "jid")).text
        return self

    def wait_for(self, pred, timeout=None):
        deadline = time.monotonic() + (timeout or helpers.DEFAULT_TIMEOUT)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching element")
            el = self.recv(left)
            if pred(el):
                return el

    def close(self):
        self.ws.close()


class Bosh:
    """A BOSH client (XEP-0124/0206), one HTTP connection per outstanding request."""

    def __init__(self, port, domain="localhost", wait=5, hold=1, timeout=None):
        self.port = port
        self.domain = domain
        self.wait = wait
        self.hold = hold
        self.rid = int.from_bytes(os.urandom(4), "big") % 1000000 + 1000
        self.sid = None
        self.timeout = timeout or (wait + helpers.DEFAULT_TIMEOUT)
        self.jid = None

    def post(self, body, headers=None):
        """POSTs body (bytes or str) to /http-bind; returns (status, headers, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            c.request("POST", "/http-bind", body=body,
                      headers=dict({"Content-Type": "text/xml; charset=utf-8"}, **(headers or {})))
            r = c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            c.close()

    def request(self, payload="", rid=None, **attrs):
        """Sends a body with the next rid (or rid) and payload; returns the response body."""
        if rid is None:
            rid = self.rid
            self.rid += 1
        a = {"rid": str(rid), "xmlns": NS_HTTPBIND}
        if self.sid:
            a["sid"] = self.sid
        a.update(attrs)
        text = "<body %s>%s</body>" % (" ".join("%s=%s" % (k, quoteattr(v)) for k, v in a.items()),
                                       payload)
        status, _, data = self.post(text)
        if status != 200:
            raise AssertionError("BOSH HTTP %d: %r" % (status, data))
        return ET.fromstring(data)

    def create(self, **attrs):
        a = {"to": self.domain, "wait": str(self.wait), "hold": str(self.hold), "ver": "1.6",
             "xml:lang": "en", "xmpp:version": "1.0", "xmlns:xmpp": NS_XBOSH}
        a.update(attrs)
        body = self.request(**a)
        self.sid = body.get("sid")
        return body

    def login(self, user, password, resource=None):
        body = self.create()
        feats = body
        while feats.find(".//" + q(NS_SASL, "mechanisms")) is None:
            feats = self.request()
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        body = self.request("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, token))
        while body.find(q(NS_SASL, "success")) is None:
            if body.find(q(NS_SASL, "failure")) is not None:
                raise AssertionError("auth failed: " + helpers.tostr(body))
            body = self.request()
        body = self.request(**{"xmpp:restart": "true", "xmlns:xmpp": NS_XBOSH})
        while body.find(".//" + q(NS_BIND, "bind")) is None:
            body = self.request()
        res = "<resource>%s</resource>" % escape(resource) if resource else ""
        body = self.request("<iq xmlns='jabber:client' type='set' id='b1'>"
                            "<bind xmlns='%s'>%s</bind></iq>" % (NS_BIND, res))
        while body.find(".//" + q(NS_BIND, "jid")) is None:
            body = self.request()
        self.jid = body.find(".//" + q(NS_BIND, "jid")).text
        return self

    def poll_until(self, pred, timeout=None):
        """Requests (long polls) until an element of a response matches pred; returns it."""
        deadline = time.monotonic() + (timeout or helpers.DEFAULT_TIMEOUT)
        while time.monotonic() < deadline:
            body = self.request()
            for el in body:
                if pred(el):
                    return el
        raise TimeoutError("no matching element over BOSH")
