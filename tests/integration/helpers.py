"""Helpers for baton's integration tests: the Server process wrapper, raw sockets and a small
synchronous XMPP client of our own (STARTTLS / direct TLS, SCRAM-SHA-1/256, PLAIN, bind).

Invariant: nothing here blocks without a timeout; every wait raises (or returns None) when
its deadline passes, so a misbehaving server fails a test instead of hanging the suite.
"""

import base64
import hashlib
import hmac
import itertools
import os
import re
import secrets
import select
import signal
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BATOND = os.path.abspath(os.environ.get("BATOND", os.path.join(REPO, "build", "batond")))
BATONCTL = os.path.abspath(os.environ.get("BATONCTL", os.path.join(REPO, "build", "batonctl")))

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_PING = "urn:xmpp:ping"
NS_VERSION = "jabber:iq:version"

DEFAULT_TIMEOUT = 5.0


def q(ns, tag):
    """Clark notation: q(NS_CLIENT, 'message') -> '{jabber:client}message'."""
    return "{%s}%s" % (ns, tag)


def local(tag):
    return tag.rsplit("}", 1)[-1]


def bare(jid):
    return jid.split("/", 1)[0] if jid else jid


def tostr(el):
    return ET.tostring(el, encoding="unicode") if el is not None else "None"


_uniq = itertools.count(1)


def unique(prefix="u"):
    """A fresh lowercase localpart, unique in this test run and across runs."""
    return "%s%d%s" % (prefix, next(_uniq), secrets.token_hex(3))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_ssl_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------------------------------------
# The server process


class ServerError(Exception):
    pass


class Server:
    """One batond process on free ports with its own data directory; stderr goes to a file."""

    running = []  # servers currently started, for the failure-report hook in conftest

    def __init__(self, datadir, domain="localhost", allow_plaintext=False, sets=(), workers=2,
                 extra_args=()):
        self.datadir = str(datadir)
        self.domain = domain
        self.allow_plaintext = allow_plaintext
        self.sets = list(sets)
        self.workers = workers
        self.extra_args = list(extra_args)
        self.c2s_port = None
        self.tls_port = None
        self.http_port = None
        self.proc = None
        self.stderr_path = os.path.join(self.datadir, "batond.stderr")
        self._stderr = None
        os.makedirs(self.datadir, exist_ok=True)

    def argv(self):
        argv = [BATOND, "--data", self.datadir, "--domain", self.domain,
                "--c2s", "127.0.0.1:%d" % self.c2s_port,
                "--c2s-tls", "127.0.0.1:%d" % self.tls_port,
                "--http", "127.0.0.1:%d" % self.http_port]
        if self.workers:
            argv += ["--workers", str(self.workers)]
        if self.allow_plaintext:
            argv.append("--allow-plaintext")
        for s in self.sets:
            argv += ["--set", s]
        return argv + self.extra_args

    def start(self, timeout=10.0):
        if self.c2s_port is None:  # keep the ports on restart
            self.c2s_port = free_port()
            ports = {self.c2s_port}
            while len(ports) < 3:
                ports.add(free_port())
            ports.discard(self.c2s_port)
            self.tls_port, self.http_port = sorted(ports)
        self._stderr = open(self.stderr_path, "ab")
        self._stderr.write(b"==== start: %s\n" % " ".join(self.argv()).encode())
        self._stderr.flush()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=self._stderr, stderr=self._stderr)
        Server.running.append(self)
        deadline = time.monotonic() + timeout
        pending = [self.c2s_port, self.tls_port, self.http_port]
        while pending:
            if self.proc.poll() is not None:
                self._forget()
                raise ServerError("batond exited early with status %s:\n%s"
                                  % (self.proc.returncode, self.stderr_tail()))
            try:
                with socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5):
                    pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError("batond did not accept connections on port %d within %.0fs:\n%s"
                                  % (pending[0], timeout, self.stderr_tail()))
            time.sleep(0.05)
        return self

    def _forget(self):
        if self in Server.running:
            Server.running.remove(self)
        if self._stderr:
            self._stderr.close()
            self._stderr = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit status (None if it had to be killed)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._forget()
                return None
        self._forget()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._forget()

    def restart(self):
        rc = self.stop()
        if rc != 0:
            raise ServerError("batond exit status %s on SIGTERM:\n%s" % (rc, self.stderr_tail()))
        return self.start()

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stderr_size(self):
        try:
            return os.path.getsize(self.stderr_path)
        except OSError:
            return 0

    def stderr_tail(self, n=60, since=0):
        with open(self.stderr_path, "rb") as f:
            f.seek(since)
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:])

    # batonctl

    def ctl(self, *args, check=True, timeout=20):
        return ctl(self.datadir, *args, check=check, timeout=timeout)

    def add_user(self, localpart=None, password=None):
        """Creates a fresh account with batonctl; returns (bare JID, password)."""
        localpart = localpart or unique()
        password = password or "pw-" + secrets.token_hex(4)
        jid = "%s@%s" % (localpart, self.domain)
        self.ctl("user", "add", jid, password)
        return jid, password

    # clients

    def client(self, jid, password, **kw):
        """An unconnected own Client for this server (see Client for options)."""
        kw.setdefault("mode", "plain" if self.allow_plaintext else "starttls")
        return Client(self, jid, password, **kw)

    def login(self, jid, password, presence=False, roster=False, **kw):
        c = self.client(jid, password, **kw).connect()
        if roster:
            c.get_roster()
        if presence:
            c.send_presence()
            c.sync()
        return c

    def new_user_client(self, presence=False, roster=False, **kw):
        jid, pw = self.add_user()
        return self.login(jid, pw, presence=presence, roster=roster, **kw)


def stop_and_check(srv):
    """SIGTERM; asserts batond exits 0 within 10 s (a clean shutdown)."""
    rc = srv.stop(timeout=10)
    assert rc == 0, "batond exit status %s on SIGTERM (expected 0 within 10 s); stderr:\n%s" % (
        "<killed after 10 s>" if rc is None else rc, srv.stderr_tail())
    text = srv.stderr_text()
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        assert i < 0, "sanitizer report in batond's stderr:\n%s" % text[max(0, i - 200):i + 4000]


# reports of ASan/UBSan/LSan (build/san, `make ... SANITIZE=1`)
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def ctl(datadir, *args, check=True, timeout=20):
    p = subprocess.run([BATONCTL, "--data", str(datadir)] + list(args), stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise ServerError("batonctl %s failed (%d): %s%s"
                          % (" ".join(args), p.returncode, p.stdout, p.stderr))
    return p


# ---------------------------------------------------------------------------------------------
# Raw sockets


def stream_header(to="localhost", version="1.0", ns=NS_CLIENT, stream_ns=NS_STREAM,
                  decl=True, extra=""):
    h = "<?xml version='1.0'?>" if decl else ""
    v = " version='%s'" % version if version is not None else ""
    t = " to='%s'" % to if to is not None else ""
    return "%s<stream:stream xmlns='%s' xmlns:stream='%s'%s%s%s>" % (h, ns, stream_ns, t, v, extra)


_COND_RE = re.compile(r"<([A-Za-z][A-Za-z0-9-]*)[^>]*?xmlns=['\"]" + re.escape(NS_STREAMS)
                      + r"['\"]")


def stream_error_of(data):
    """The defined condition of the first stream error in data (bytes or str), else None."""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    for m in _COND_RE.finditer(data):
        if m.group(1) != "text":
            return m.group(1)
    return None


class Raw:
    """A TCP connection, optionally TLS-wrapped; keeps everything received in self.data."""

    def __init__(self, port, tls=False, host="127.0.0.1", timeout=DEFAULT_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.data = b""
        self.keep = 0  # bytes of data kept (0: all); a Client keeps a tail, no quadratic copies
        self.eof = False
        if tls:
            self.starttls()

    def starttls(self):
        self.sock = client_ssl_context().wrap_socket(self.sock, server_hostname="localhost")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def try_send(self, data):
        """send() that reports False instead of raising when the server already closed."""
        try:
            self.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return False

    def recv_some(self, timeout):
        """Reads what is available within timeout; returns the new bytes (b'' on EOF/timeout)."""
        if self.eof:
            return b""
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            r, _, _ = select.select([self.sock], [], [], max(timeout, 0))
            if not r:
                return b""
        try:
            self.sock.settimeout(max(timeout, 0.01))
            chunk = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return b""
        except (ConnectionResetError, ssl.SSLError, OSError):
            self.eof = True
            return b""
        if not chunk:
            self.eof = True
        self.data += chunk
        if self.keep and len(self.data) > self.keep:
            self.data = self.data[-self.keep:]
        return chunk

    def read_until(self, pattern, timeout=DEFAULT_TIMEOUT):
        """Reads until regex pattern (str) matches self.data; returns the match or raises."""
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern, re.S)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.data)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError("did not receive %r within %.1fs (eof=%s); got: %r"
                                     % (pattern, timeout, self.eof, self.data[-2000:]))
            self.recv_some(min(left, 0.5))

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """Reads until the server closes the connection; True if it did within timeout."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.recv_some(min(left, 0.5))
        return True

    def stream_error(self):
        return stream_error_of(self.data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# Incremental stream parser


class StreamClosed(Exception):
    pass


class StreamParser:
    """Feeds bytes, yields complete top-level elements (children of <stream:stream>)."""

    def __init__(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.root = None
        self.closed = False

    def feed(self, data):
        self.parser.feed(data)
        out = []
        for ev, el in self.parser.read_events():
            if ev == "start":
                self.depth += 1
                if self.depth == 1:
                    self.root = el
            else:
                self.depth -= 1
                if self.depth == 1:
                    out.append(el)
                    self.root.remove(el)
                elif self.depth == 0:
                    self.closed = True
        return out


# ---------------------------------------------------------------------------------------------
# SASL


def _scram_escape(s):
    return s.replace("=", "=3D").replace(",", "=2C")


class Scram:
    """Client side of SCRAM (RFC 5802 / RFC 7677) without channel binding."""

    def __init__(self, hashname, user, password):
        self.h = hashname
        self.user = user
        self.password = password
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.first_bare = "n=%s,r=%s" % (_scram_escape(user), self.nonce)
        self.server_sig = None

    def first(self):
        return ("n,," + self.first_bare).encode()

    def _hmac(self, key, msg):
        return hmac.new(key, msg, self.h).digest()

    def final(self, server_first):
        s = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in s.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise AssertionError("server nonce does not extend ours: %r" % s)
        salt = base64.b64decode(attrs["s"])
        iters = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac(self.h, self.password.encode(), salt, iters)
        client_key = self._hmac(salted, b"Client Key")
        stored = hashlib.new(self.h, client_key).digest()
        without_proof = "c=biws,r=%s" % attrs["r"]
        auth_msg = ("%s,%s,%s" % (self.first_bare, s, without_proof)).encode()
        sig = self._hmac(stored, auth_msg)
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_sig = self._hmac(self._hmac(salted, b"Server Key"), auth_msg)
        return ("%s,p=%s" % (without_proof, base64.b64encode(proof).decode())).encode()

    def verify(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(","))
        return base64.b64decode(attrs.get("v", "")) == self.server_sig


class AuthFailed(Exception):
    def __init__(self, condition, element):
        super().__init__("SASL failure: %s (%s)" % (condition, tostr(element)))
        self.condition = condition
        self.element = element


class StreamErrorReceived(Exception):
    def __init__(self, condition, element):
        super().__init__("stream error: %s (%s)" % (condition, tostr(element)))
        self.condition = condition


# ---------------------------------------------------------------------------------------------
# Own synchronous XMPP client


_ids = itertools.count(1)


def new_id():
    return "t%d" % next(_ids)


def stanza_error(el):
    """(type, condition) of a stanza's <error/>, or None."""
    err = el.find(q(NS_CLIENT, "error"))
    if err is None:
        return None
    cond = None
    for child in err:
        if child.tag.startswith("{%s}" % NS_STANZAS) and local(child.tag) != "text":
            cond = local(child.tag)
            break
    return err.get("type"), cond


class Client:
    """A deliberately simple client: every stanza received is kept in a backlog until a test
    expect()s it, so tests can wait for stanzas in any order.

    mode: 'starttls' (c2s port, STARTTLS), 'tls' (direct TLS port), 'plain' (no TLS; needs a
    server with --allow-plaintext).  mech: 'SCRAM-SHA-256', 'SCRAM-SHA-1' or 'PLAIN'.
    """

    def __init__(self, server, jid, password, resource=None, mode="starttls",
                 mech="SCRAM-SHA-256", timeout=DEFAULT_TIMEOUT, auto_ack_pushes=True):
        self.server = server
        self.bare = bare(jid)
        self.user = self.bare.split("@", 1)[0]
        self.domain = server.domain
        self.password = password
        self.resource = resource
        self.mode = mode
        self.mech = mech
        self.timeout = timeout
        self.auto_ack_pushes = auto_ack_pushes
        self.jid = None  # full JID once bound
        self.raw = None
        self.parser = None
        self.backlog = []
        self.features = None
        self.stream_attrs = None
        self.stream_error = None
        self.closed = False

    # -- transport

    def _open_socket(self):
        port = self.server.tls_port if self.mode == "tls" else self.server.c2s_port
        self.raw = Raw(port, tls=(self.mode == "tls"), timeout=self.timeout)
        self.raw.keep = 1 << 16  # enough for the last stream error

    def send(self, x):
        if isinstance(x, ET.Element):
            x = ET.tostring(x, encoding="unicode")
        self.raw.send(x)

    def _pump(self, timeout):
        """Reads once (up to timeout) and parses into the backlog. False on EOF."""
        if self.closed:
            return False
        chunk = self.raw.recv_some(timeout)
        if chunk:
            for el in self.parser.feed(chunk):
                if el.tag == q(NS_STREAM, "error"):
                    cond = None
                    for child in el:
                        if local(child.tag) != "text":
                            cond = local(child.tag)
                            break
                    self.stream_error = cond
                self._maybe_ack(el)
                self.backlog.append(el)
        if self.raw.eof or self.parser.closed:
            self.closed = True
            return False
        return True

    def _maybe_ack(self, el):
        # RFC 6121 2.1.6: a client acknowledges a roster push with an empty result.
        if not (self.auto_ack_pushes and el.tag == q(NS_CLIENT, "iq") and el.get("type") == "set"
                and el.find(q(NS_ROSTER, "query")) is not None and self.jid):
            return
        frm = el.get("from")
        if frm in (None, self.bare, self.jid):
            try:
                self.send("<iq type='result' id=%s/>" % quoteattr(el.get("id", "")))
            except OSError:
                pass

    def next(self, timeout=None):
        """The next received element (in arrival order), or None after timeout."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.backlog:
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(min(left, 0.5)):
                if self.backlog:
                    break
                return None
        return self.backlog.pop(0)

    def expect(self, kind=None, pred=None, timeout=None, what=None, **attrs):
        """Waits for the first element matching kind (local name), pred and attrs
        (frm= means 'from'); non-matching elements stay in the backlog. Raises on timeout."""
        el = self.wait_for(kind, pred, timeout, **attrs)
        if el is None:
            raise AssertionError(
                "%s: no %s%s%s within %.1fs; backlog: %s%s" % (
                    self.jid or self.bare, kind or "element", " " + repr(attrs) if attrs else "",
                    " (" + what + ")" if what else "",
                    self.timeout if timeout is None else timeout,
                    [tostr(e) for e in self.backlog][:10],
                    " stream error: %s" % self.stream_error if self.stream_error else
                    (" (stream closed)" if self.closed else "")))
        return el

    def wait_for(self, kind=None, pred=None, timeout=None, **attrs):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            for i, el in enumerate(self.backlog):
                if self._match(el, kind, pred, attrs):
                    return self.backlog.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self._pump(min(left, 0.5)):
                for i, el in enumerate(self.backlog):
                    if self._match(el, kind, pred, attrs):
                        return self.backlog.pop(i)
                return None

    @staticmethod
    def _match(el, kind, pred, attrs):
        if kind is not None and local(el.tag) != kind:
            return False
        for k, v in attrs.items():
            name = "from" if k == "frm" else k
            if el.get(name) != v:
                return False
        return pred is None or pred(el)

    def no_stanza(self, kind=None, pred=None, timeout=0.7, **attrs):
        """Asserts nothing matching arrives within timeout."""
        el = self.wait_for(kind, pred, timeout, **attrs)
        assert el is None, "%s: unexpected %s" % (self.jid, tostr(el))

    def drain(self, timeout=0.3):
        """Returns (and forgets) everything that arrived so far or within timeout."""
        deadline = time.monotonic() + timeout
        while self._pump(max(0.0, min(deadline - time.monotonic(), 0.2))):
            if time.monotonic() >= deadline:
                break
        out, self.backlog = self.backlog, []
        return out

    def wait_closed(self, timeout=None):
        """Waits until the server ends the stream and closes the socket. Returns the stream
        error condition (or None). Raises if the connection stays open."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: stream not closed within %.1fs (error %s)"
                                     % (self.jid or self.bare, timeout, self.stream_error))
            self._pump(min(left, 0.5))
        # after </stream:stream> the socket must follow
        if not self.raw.eof:
            assert self.raw.wait_closed(max(0.5, deadline - time.monotonic())), \
                "server sent </stream:stream> but kept the TCP connection open"
        return self.stream_error

    # -- negotiation

    def open_stream(self):
        """Sends a stream header; returns the <stream:features/> element."""
        self.parser = StreamParser()
        self.send(stream_header(to=self.domain))
        feats = self.expect(pred=lambda e: e.tag == q(NS_STREAM, "features"),
                            what="stream features")
        self.stream_attrs = dict(self.parser.root.attrib)
        self.features = feats
        return feats

    def mechanisms(self):
        m = self.features.find(q(NS_SASL, "mechanisms"))
        return [] if m is None else [x.text for x in m.findall(q(NS_SASL, "mechanism"))]

    def starttls(self):
        assert self.features.find(q(NS_TLS, "starttls")) is not None, \
            "no <starttls/> offered: %s" % tostr(self.features)
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.expect(pred=lambda e: e.tag == q(NS_TLS, "proceed"), what="<proceed/>")
        self.raw.starttls()
        return self.open_stream()

    def authenticate(self, mech=None, user=None, password=None):
        """Runs SASL; returns on success (and restarts the stream), raises AuthFailed."""
        mech = mech or self.mech
        user = self.user if user is None else user
        password = self.password if password is None else password
        if mech == "PLAIN":
            payload = base64.b64encode(("\0%s\0%s" % (user, password)).encode()).decode()
            self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>" % (NS_SASL, payload))
            scram = None
        else:
            hashname = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mech]
            scram = Scram(hashname, user, password)
            self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
                      % (NS_SASL, mech, base64.b64encode(scram.first()).decode()))
        sasl_tags = {q(NS_SASL, t) for t in ("challenge", "success", "failure")}
        while True:
            el = self.expect(pred=lambda e: e.tag in sasl_tags, what="SASL reply")
            tag = local(el.tag)
            if tag == "failure":
                cond = next((local(c.tag) for c in el if local(c.tag) != "text"), None)
                raise AuthFailed(cond, el)
            data = base64.b64decode(el.text or "")
            if tag == "challenge":
                assert scram is not None, "challenge for PLAIN"
                self.send("<response xmlns='%s'>%s</response>"
                          % (NS_SASL, base64.b64encode(scram.final(data)).decode()))
                continue
            if scram is not None:
                assert scram.server_sig is not None, "success before our proof"
                assert scram.verify(data), "bad SCRAM server signature: %r" % data
            break
        return self.open_stream()

    def bind(self, resource=None):
        resource = self.resource if resource is None else resource
        assert self.features.find(q(NS_BIND, "bind")) is not None, \
            "no <bind/> offered: %s" % tostr(self.features)
        inner = "<resource>%s</resource>" % escape(resource) if resource else ""
        res = self.iq("set", "<bind xmlns='%s'>%s</bind>" % (NS_BIND, inner), check=True)
        jid_el = res.find("%s/%s" % (q(NS_BIND, "bind"), q(NS_BIND, "jid")))
        assert jid_el is not None and jid_el.text, "bind result without jid: %s" % tostr(res)
        self.jid = jid_el.text
        return self.jid

    def connect(self, bind=True, session=False):
        self._open_socket()
        self.open_stream()
        if self.mode == "starttls":
            self.starttls()
        self.authenticate()
        if bind:
            self.bind()
            if session:
                self.iq("set", "<session xmlns='%s'/>" % NS_SESSION, check=True)
        return self

    def close(self):
        """Ends the stream politely (</stream:stream>) and waits briefly for the server's."""
        if self.raw is None:
            return
        if not self.closed:
            try:
                self.send("</stream:stream>")
                deadline = time.monotonic() + 2
                while not self.closed and time.monotonic() < deadline:
                    self._pump(0.2)
            except (OSError, ET.ParseError):
                pass
        self.raw.close()
        self.closed = True

    def abort(self):
        """Closes the TCP connection abruptly, without </stream:stream>."""
        try:
            self.raw.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.raw.close()
        self.closed = True

    # -- stanzas

    def iq(self, type_, payload="", to=None, check=False, timeout=None, frm=None):
        """Sends an iq and waits for the result/error with the same id."""
        id_ = new_id()
        attrs = " type='%s' id='%s'" % (type_, id_)
        if to:
            attrs += " to=%s" % quoteattr(to)
        if frm:
            attrs += " from=%s" % quoteattr(frm)
        self.send("<iq%s>%s</iq>" % (attrs, payload))
        res = self.expect("iq", pred=lambda e: e.get("id") == id_ and
                          e.get("type") in ("result", "error"),
                          timeout=timeout, what="reply to iq %s" % id_)
        if check:
            assert res.get("type") == "result", "iq %s failed: %s" % (payload[:80], tostr(res))
        return res

    def sync(self):
        """A round trip to the server (a ping; any answer will do): what this client sent
        before has been processed when it returns."""
        self.iq("get", "<ping xmlns='%s'/>" % NS_PING, to=self.domain)

    def message(self, to, body=None, type_="chat", id_=None, extra=""):
        id_ = id_ or new_id()
        t = " type='%s'" % type_ if type_ else ""
        b = "<body>%s</body>" % escape(body) if body is not None else ""
        self.send("<message to=%s id='%s'%s>%s%s</message>" % (quoteattr(to), id_, t, b, extra))
        return id_

    def send_presence(self, to=None, type_=None, priority=None, status=None, show=None,
                      extra=""):
        a = ""
        if to:
            a += " to=%s" % quoteattr(to)
        if type_:
            a += " type='%s'" % type_
        inner = ""
        if show:
            inner += "<show>%s</show>" % show
        if status:
            inner += "<status>%s</status>" % escape(status)
        if priority is not None:
            inner += "<priority>%d</priority>" % priority
        self.send("<presence%s>%s%s</presence>" % (a, inner, extra))

    def expect_message(self, frm=None, body=None, timeout=None, **attrs):
        def pred(e):
            if frm is not None and e.get("from") != frm:
                return False
            if body is not None:
                b = e.find(q(NS_CLIENT, "body"))
                return b is not None and b.text == body
            return True
        return self.expect("message", pred, timeout=timeout,
                           what="from %s body %r" % (frm, body), **attrs)

    def expect_error(self, kind, id_=None, timeout=None):
        """Waits for a stanza of type error (with id); returns (type, condition)."""
        el = self.expect(kind, pred=lambda e: e.get("type") == "error" and
                         (id_ is None or e.get("id") == id_), timeout=timeout,
                         what="error reply")
        return stanza_error(el)

    def expect_presence(self, frm=None, type_=None, timeout=None, bare_from=False):
        """type_=None means available. bare_from compares the bare part of from."""
        def pred(e):
            if (e.get("type") or None) != type_:
                return False
            if frm is None:
                return True
            f = e.get("from")
            return (bare(f) if bare_from else f) == frm
        return self.expect("presence", pred, timeout=timeout,
                           what="presence type=%s from %s" % (type_, frm))

    # -- roster

    def get_roster(self, ver=None):
        """Returns (items dict jid -> element, query element or None, result iq)."""
        v = " ver=%s" % quoteattr(ver) if ver is not None else ""
        res = self.iq("get", "<query xmlns='%s'%s/>" % (NS_ROSTER, v), check=True)
        query = res.find(q(NS_ROSTER, "query"))
        items = {}
        if query is not None:
            for it in query.findall(q(NS_ROSTER, "item")):
                items[it.get("jid")] = it
        return items, query, res

    def set_roster_item(self, jid, name=None, groups=(), subscription=None):
        a = " jid=%s" % quoteattr(jid)
        if name is not None:
            a += " name=%s" % quoteattr(name)
        if subscription is not None:
            a += " subscription='%s'" % subscription
        g = "".join("<group>%s</group>" % escape(x) for x in groups)
        return self.iq("set", "<query xmlns='%s'><item%s>%s</item></query>" % (NS_ROSTER, a, g))

    def expect_push(self, jid, pred=None, timeout=None):
        """Waits for a roster push about jid; returns its <item/>."""
        def is_push(e):
            if e.get("type") != "set":
                return False
            qq = e.find(q(NS_ROSTER, "query"))
            if qq is None:
                return False
            it = qq.find(q(NS_ROSTER, "item"))
            return it is not None and it.get("jid") == jid and (pred is None or pred(it))
        el = self.expect("iq", is_push, timeout=timeout, what="roster push for %s" % jid)
        assert el.get("from") in (None, self.bare, self.jid), \
            "roster push from a foreign JID (RFC 6121 2.1.6): %s" % tostr(el)
        return el.find(q(NS_ROSTER, "query")).find(q(NS_ROSTER, "item"))


def item_groups(item):
    return sorted(g.text or "" for g in item.findall(q(NS_ROSTER, "group")))


def sub_state(item):
    """(subscription, ask) of a roster item; missing subscription means 'none'."""
    return item.get("subscription", "none"), item.get("ask")
