"""Test equipment for XEP-0114 external components and the biboumi XMPP<->IRC gateway: a raw
component (the client side of jabber:component:accept), a minimal component acceptor (the server
side, standing in for batond so biboumi can be checked on its own), an ngircd process with its
own config, a biboumi process with its own config, and a plain IRC client.

Invariant: every wait has a deadline and raises (or returns None) when it passes, and every
process started here runs in the foreground with files only under its own temporary directory,
on 127.0.0.1 and free ports; stop() ends it (SIGTERM, then SIGKILL).
"""

import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from helpers import NS_STREAM, NS_STREAMS, Raw, StreamParser, free_port, local, tostr

NS_ACCEPT = "jabber:component:accept"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"

NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"
BIBOUMI = shutil.which("biboumi") or "/usr/bin/biboumi"

TEMPLATES = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "irc"))


def handshake_digest(stream_id, secret):
    """XEP-0114 section 3: lowercase hex SHA-1 of the stream id followed by the secret."""
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


def child(el, name):
    """The first child of el with local name name (whatever its namespace), else None."""
    if el is None:
        return None
    for c in el:
        if local(c.tag) == name:
            return c
    return None


def body_of(el):
    b = child(el, "body")
    return None if b is None else (b.text or "")


def error_of(el):
    """(type, condition) of a stanza's <error/>, any stanza namespace; None if it has none."""
    err = child(el, "error")
    if err is None:
        return None
    cond = next((local(c.tag) for c in err if local(c.tag) != "text"), None)
    return err.get("type"), cond


def wait_port(port, proc=None, timeout=10.0, what="process"):
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s exited early with status %s" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("%s did not listen on port %d within %.0fs" % (what, port, timeout))
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# XML streams


class _SockRaw(Raw):
    """helpers.Raw on a socket that is already connected (or accepted)."""

    def __init__(self, sock):  # pylint: disable=super-init-not-called
        self.sock = sock
        self.data = b""
        self.keep = 1 << 16  # a tail, enough for the last stream error
        self.eof = False


class XmlStream:
    """One side of an XML stream on a socket: keeps received top-level elements in a backlog
    until a test expect()s them, in any order (like helpers.Client, but namespace-agnostic:
    component streams use jabber:component:accept as their default namespace)."""

    def __init__(self, sock, timeout=5.0):
        self.raw = _SockRaw(sock)
        self.timeout = timeout
        self.parser = StreamParser()
        self.backlog = []
        self.stream_error = None
        self.closed = False  # the peer closed the stream or the connection
        self.sent_close = False  # we sent </stream:stream>
        self.answer_close = False  # answer the peer's </stream:stream> (the server's part)

    def send(self, x):
        if isinstance(x, ET.Element):
            x = ET.tostring(x, encoding="unicode")
        self.raw.send(x)

    def try_send(self, x):
        try:
            self.send(x)
            return True
        except OSError:
            return False

    def header_attrs(self, timeout=None):
        """Waits for the peer's stream header; returns its attributes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while self.parser.root is None:
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(min(left, 0.5)):
                if self.parser.root is not None:
                    break
                raise AssertionError("no stream header; got %r (stream error %s)"
                                     % (self.raw.data[-500:], self.stream_error))
        return dict(self.parser.root.attrib)

    def pump(self, timeout):
        """Reads once (up to timeout) into the backlog; False once the stream is closed."""
        return self._pump(timeout)

    def _pump(self, timeout):
        if self.closed:
            return False
        chunk = self.raw.recv_some(timeout)
        if chunk:
            try:
                els = self.parser.feed(chunk)
            except ET.ParseError:
                self.closed = True
                raise
            for el in els:
                if el.tag == "{%s}error" % NS_STREAM:
                    self.stream_error = next((local(c.tag) for c in el
                                              if local(c.tag) != "text"), None)
                self.backlog.append(el)
        if self.parser.closed and self.answer_close and not self.sent_close:
            self.try_send("</stream:stream>")  # RFC 6120 4.4: close in turn, then the socket
            self.sent_close = True
            self.raw.close()
            self.raw.eof = True
        if self.raw.eof or self.parser.closed:
            self.closed = True
            return False
        return True

    @staticmethod
    def _match(el, kind, pred, attrs):
        if kind is not None and local(el.tag) != kind:
            return False
        for k, v in attrs.items():
            if el.get("from" if k == "frm" else k) != v:
                return False
        return pred is None or pred(el)

    def wait_for(self, kind=None, pred=None, timeout=None, **attrs):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
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

    def expect(self, kind=None, pred=None, timeout=None, what=None, **attrs):
        el = self.wait_for(kind, pred, timeout, **attrs)
        if el is None:
            raise AssertionError("%s: no %s%s%s within %.1fs; backlog: %s%s" % (
                self.name(), kind or "element", " " + repr(attrs) if attrs else "",
                " (" + what + ")" if what else "", self.timeout if timeout is None else timeout,
                [tostr(e) for e in self.backlog][:10],
                " stream error: %s" % self.stream_error if self.stream_error else
                (" (stream closed)" if self.closed else "")))
        return el

    def no_stanza(self, kind=None, pred=None, timeout=0.7, **attrs):
        el = self.wait_for(kind, pred, timeout, **attrs)
        assert el is None, "%s: unexpected %s" % (self.name(), tostr(el))

    def drain(self, timeout=0.3):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._pump(
                max(0.0, min(deadline - time.monotonic(), 0.2))):
            pass
        out, self.backlog = self.backlog, []
        return out

    def wait_closed(self, timeout=None):
        """Waits until the peer closes; returns the stream error condition (or None)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: stream not closed within the deadline (error %s)"
                                     % (self.name(), self.stream_error))
            try:
                self._pump(min(left, 0.5))
            except ET.ParseError:
                break
        if not self.raw.eof:
            assert self.raw.wait_closed(max(0.5, deadline - time.monotonic())), \
                "%s: peer sent </stream:stream> but kept the TCP connection open" % self.name()
        return self.stream_error

    def name(self):
        return "stream"

    def close(self):
        if not self.closed and not self.sent_close:
            self.sent_close = self.try_send("</stream:stream>")
            deadline = time.monotonic() + 1.0
            while not self.closed and time.monotonic() < deadline:
                try:
                    self._pump(0.2)
                except ET.ParseError:
                    break
        self.raw.close()
        self.closed = True

    def abort(self):
        try:
            self.raw.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.raw.close()
        self.closed = True

    # -- stanzas; every one carries 'from' and 'to' (XEP-0114 section 3)

    def message(self, frm, to, body=None, type_="chat", id_=None, extra=""):
        id_ = id_ or "m" + secrets.token_hex(4)
        t = " type='%s'" % type_ if type_ else ""
        b = "<body>%s</body>" % escape(body) if body is not None else ""
        self.send("<message from=%s to=%s id='%s'%s>%s%s</message>"
                  % (quoteattr(frm), quoteattr(to), id_, t, b, extra))
        return id_

    def presence(self, frm, to, type_=None, extra=""):
        t = " type='%s'" % type_ if type_ else ""
        self.send("<presence from=%s to=%s%s>%s</presence>"
                  % (quoteattr(frm), quoteattr(to), t, extra))

    def iq_send(self, frm, to, type_, payload="", id_=None):
        id_ = id_ or "i" + secrets.token_hex(4)
        self.send("<iq from=%s to=%s type='%s' id=%s>%s</iq>"
                  % (quoteattr(frm), quoteattr(to), type_, quoteattr(id_), payload))
        return id_

    def iq(self, frm, to, type_, payload="", timeout=None):
        """Sends an iq and waits for the result/error with its id."""
        id_ = self.iq_send(frm, to, type_, payload)
        return self.expect("iq", lambda e: e.get("id") == id_ and
                           e.get("type") in ("result", "error"), timeout=timeout,
                           what="reply to iq %s" % id_)

    def reply(self, iq, payload="", type_="result"):
        """Answers a received iq, swapping from and to."""
        self.send("<iq from=%s to=%s type='%s' id=%s>%s</iq>"
                  % (quoteattr(iq.get("to", "")), quoteattr(iq.get("from", "")), type_,
                     quoteattr(iq.get("id", "")), payload))


def component_header(domain, ns=NS_ACCEPT, decl=True):
    h = "<?xml version='1.0'?>" if decl else ""
    to = " to=%s" % quoteattr(domain) if domain is not None else ""
    return "%s<stream:stream xmlns='%s' xmlns:stream='%s'%s>" % (h, ns, NS_STREAM, to)


class HandshakeFailed(AssertionError):
    def __init__(self, condition, data):
        super().__init__("component handshake failed: stream error %s; got %r"
                         % (condition, data[-500:]))
        self.condition = condition


class Component(XmlStream):
    """The component side of XEP-0114 (jabber:component:accept) on 127.0.0.1:port."""

    def __init__(self, port, domain, secret, timeout=5.0):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().__init__(sock, timeout)
        self.port = port
        self.domain = domain
        self.secret = secret
        self.stream_id = None

    def name(self):
        return "component %s" % self.domain

    def open(self):
        """Sends the stream header; returns the server's header attributes (raises
        HandshakeFailed if the server answers with a stream error instead of an id)."""
        self.send(component_header(self.domain))
        try:
            attrs = self.header_attrs()
        except AssertionError:
            raise HandshakeFailed(self.stream_error, self.raw.data)
        # an error for the header comes right after the server's own header (RFC 6120 4.9.1.2)
        if not attrs.get("id"):
            self.wait_closed(2)
            raise HandshakeFailed(self.stream_error, self.raw.data)
        self.stream_id = attrs["id"]
        return attrs

    def handshake(self, secret=None):
        secret = self.secret if secret is None else secret
        self.send("<handshake>%s</handshake>" % handshake_digest(self.stream_id, secret))
        el = self.wait_for(pred=lambda e: local(e.tag) in ("handshake", "error"))
        if el is None or local(el.tag) != "handshake":
            if not self.closed:
                try:
                    self.wait_closed(2)
                except AssertionError:
                    pass
            raise HandshakeFailed(self.stream_error, self.raw.data)
        assert not (el.text or "").strip() and len(el) == 0, \
            "the server's <handshake/> must be empty (XEP-0114 section 3): %s" % tostr(el)
        return self

    def connect(self):
        self.open()
        return self.handshake()


# ---------------------------------------------------------------------------------------------
# A minimal component acceptor: the server side of XEP-0114, for checking a component alone


class Acceptor:
    """Listens on 127.0.0.1:port for one component of domain with secret. accept() runs the
    handshake and returns an XmlStream on which the test plays the XMPP server: it sends
    stanzas as if from users and reads what the component sends."""

    def __init__(self, domain, secret, port=None):
        self.domain = domain
        self.secret = secret
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port or 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.streams = []

    def accept(self, timeout=10.0):
        self.lsock.settimeout(timeout)
        try:
            sock, _ = self.lsock.accept()
        except socket.timeout:
            raise AssertionError("no component connected to port %d within %.0fs"
                                 % (self.port, timeout))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st = XmlStream(sock)
        st.answer_close = True
        self.streams.append(st)
        attrs = st.header_attrs()
        sid = secrets.token_hex(8)
        header = ("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' "
                  "from=%s id='%s'>" % (NS_ACCEPT, NS_STREAM, quoteattr(self.domain), sid))
        if attrs.get("to") != self.domain:
            st.send(header + "<stream:error><host-unknown xmlns='%s'/></stream:error>"
                    "</stream:stream>" % NS_STREAMS)
            st.abort()
            raise AssertionError("component asked for %r, not %r" % (attrs.get("to"),
                                                                      self.domain))
        st.send(header)
        hs = st.expect(pred=lambda e: local(e.tag) == "handshake", what="<handshake/>")
        if (hs.text or "").strip() != handshake_digest(sid, self.secret):
            st.send("<stream:error><not-authorized xmlns='%s'/></stream:error></stream:stream>"
                    % NS_STREAMS)
            st.abort()
            raise AssertionError("component sent a wrong handshake %r" % hs.text)
        st.send("<handshake/>")
        return st

    def close(self):
        for st in self.streams:
            st.abort()
        self.lsock.close()


# ---------------------------------------------------------------------------------------------
# ngircd


def _render(template, out_path, values):
    with open(os.path.join(TEMPLATES, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@[A-Z_]+@", text)
    assert not left, "unfilled placeholders in %s: %s" % (template, left)
    with open(out_path, "w") as f:
        f.write(text)
    return out_path


class _Proc:
    """A foreground child process whose output goes to a log file in its directory."""

    proc = None
    log_path = None
    _log = None

    def _spawn(self, argv, env=None):
        self._log = open(self.log_path, "ab")
        self._log.write(b"==== start: %s\n" % " ".join(argv).encode())
        self._log.flush()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=env)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=5.0):
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        return "\n".join(self.log_text().splitlines()[-n:])


class Ngircd(_Proc):
    """ngircd on 127.0.0.1 and a free port, not daemonized (-n), with its own config, pid and
    motd files under workdir, no ident/DNS/PAM lookups."""

    def __init__(self, workdir, name="irc.test", port=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = name
        self.port = port or free_port()
        self.conf = os.path.join(self.workdir, "ngircd.conf")
        self.log_path = os.path.join(self.workdir, "ngircd.log")
        self.rundir = None

    def start(self, timeout=10.0):
        # Started as root, ngircd drops to 'nobody' (it refuses ServerUID 0) before it writes
        # its pid file, so that file and the motd live in a directory nobody can reach: pytest's
        # own temporary directories are private to root.
        self.rundir = tempfile.mkdtemp(prefix="baton-ngircd-")
        os.chmod(self.rundir, 0o755)
        motd = os.path.join(self.rundir, "ngircd.motd")
        with open(motd, "w") as f:
            f.write("baton test IRC server\n")
        os.chmod(motd, 0o644)
        if os.getuid() == 0:
            os.chown(self.rundir, *_nobody())
        _render("ngircd.conf.in", self.conf, {
            "NAME": self.name, "PORT": self.port, "PIDFILE":
            os.path.join(self.rundir, "ngircd.pid"), "MOTD": motd})
        self._spawn([NGIRCD, "-n", "-f", self.conf])
        try:
            wait_port(self.port, self.proc, timeout, "ngircd")
        except AssertionError as e:
            self.stop()
            raise AssertionError("%s:\n%s" % (e, self.log_tail()))
        return self

    def stop(self, timeout=5.0):
        rc = super().stop(timeout)
        if self.rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None
        return rc


def _nobody():
    try:
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return 65534, 65534


# ---------------------------------------------------------------------------------------------
# biboumi


class Biboumi(_Proc):
    """biboumi with its own config file: serves hostname as an XEP-0114 component of the XMPP
    server on 127.0.0.1:xmpp_port, keeps its sqlite database in workdir, no identd."""

    def __init__(self, workdir, xmpp_port, hostname="irc.localhost", password=None,
                 admin="", log_level=0):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.xmpp_port = xmpp_port
        self.hostname = hostname
        self.password = password or "bb-" + secrets.token_hex(6)
        self.admin = admin
        self.log_level = log_level
        self.conf = os.path.join(self.workdir, "biboumi.cfg")
        self.log_path = os.path.join(self.workdir, "biboumi.log")

    def start(self):
        """Starts the process; it connects to the XMPP server by itself."""
        policy_dir = os.path.join(self.workdir, "policy")
        os.makedirs(policy_dir, exist_ok=True)
        _render("biboumi.cfg.in", self.conf, {
            "HOSTNAME": self.hostname, "PASSWORD": self.password, "PORT": self.xmpp_port,
            "DB": os.path.join(self.workdir, "biboumi.sqlite"), "ADMIN": self.admin,
            "POLICY_DIR": policy_dir, "LOG_LEVEL": self.log_level})
        # biboumi reads BIBOUMI_* variables over its config file; let none leak in
        env = {k: v for k, v in os.environ.items() if not k.startswith("BIBOUMI_")}
        self._spawn([BIBOUMI, self.conf], env=env)
        return self

    def stop(self, timeout=5.0, streams=()):
        """SIGTERM. biboumi then quits IRC, ends its XMPP stream and waits for the server to
        end its own: streams (an Acceptor's) are read meanwhile so that they answer."""
        if self.proc is not None and self.proc.poll() is None and streams:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                for st in streams:
                    try:
                        st.pump(0.05)
                    except ET.ParseError:
                        st.abort()
        return super().stop(timeout)

    def wait_log(self, pattern, timeout=10.0):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text())
            if m:
                return m
            if time.monotonic() > deadline or not self.alive():
                raise AssertionError("biboumi log has no %r (alive=%s):\n%s"
                                     % (pattern, self.alive(), self.log_tail()))
            time.sleep(0.1)


def room_jid(channel, irc_host, gateway):
    """biboumi's JID for an IRC channel: #chan%server@gateway (user.rst, 'Addressing')."""
    return "%s%%%s@%s" % (channel, irc_host, gateway)


def configure_irc_server(iq, server_jid, port):
    """Runs biboumi's 'configure' ad-hoc command (XEP-0050) on the IRC server JID
    (e.g. 127.0.0.1@irc.localhost) so that it connects to port without TLS and does not
    throttle. iq(to, type, payload) sends an iq as the user and returns the reply."""
    r = iq(server_jid, "set", "<command xmlns='%s' node='configure' action='execute'/>"
           % NS_COMMANDS)
    cmd = child(r, "command")
    assert r.get("type") == "result" and cmd is not None, "configure failed: %s" % tostr(r)
    form = configure_server_form({"ports": [port], "tls_ports": [], "throttle_limit": "-1"})
    r = iq(server_jid, "set", "<command xmlns='%s' node='configure' sessionid=%s "
           "action='complete'>%s</command>" % (NS_COMMANDS, quoteattr(cmd.get("sessionid", "")),
                                               form))
    cmd = child(r, "command")
    assert r.get("type") == "result" and cmd is not None and \
        cmd.get("status") == "completed", "configure failed: %s" % tostr(r)
    return r


def is_self_presence(el):
    """A MUC presence with status 110 (XEP-0045 7.2.2): the room reflects our own join."""
    x = child(el, "x")
    return x is not None and any(local(c.tag) == "status" and c.get("code") == "110"
                                 for c in x)


def configure_server_form(fields):
    """The <x type='submit'/> of biboumi's 'configure' ad-hoc command on an IRC server JID;
    fields: var -> value or list of values."""
    out = []
    for var, val in fields.items():
        vals = val if isinstance(val, (list, tuple)) else [val]
        out.append("<field var=%s>%s</field>" % (quoteattr(var), "".join(
            "<value>%s</value>" % escape(str(v)) for v in vals)))
    return "<x xmlns='%s' type='submit'>%s</x>" % (NS_DATA, "".join(out))


# ---------------------------------------------------------------------------------------------
# A plain IRC client (RFC 2812)


class IrcMessage:
    def __init__(self, line):
        self.line = line
        self.prefix = None
        rest = line
        if rest.startswith(":"):
            self.prefix, _, rest = rest[1:].partition(" ")
        trailing = None
        if " :" in rest:
            rest, _, trailing = rest.partition(" :")
        parts = rest.split()
        self.command = parts[0].upper() if parts else ""
        self.params = parts[1:] + ([trailing] if trailing is not None else [])

    @property
    def nick(self):
        return (self.prefix or "").split("!", 1)[0]

    def __repr__(self):
        return "IrcMessage(%r)" % self.line


class IrcClient:
    """One IRC connection: registers with NICK/USER, answers PINGs, keeps every received
    message in a backlog until a test expect()s it."""

    def __init__(self, port, nick, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.nick = nick
        self.timeout = timeout
        self.buf = b""
        self.backlog = []
        self.eof = False

    def send(self, line):
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def _pump(self, timeout):
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.01))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            msg = IrcMessage(line.rstrip(b"\r").decode("utf-8", "replace"))
            if msg.command == "PING":
                self.send("PONG :%s" % (msg.params[-1] if msg.params else ""))
                continue
            self.backlog.append(msg)
        return True

    def wait_for(self, command, pred=None, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for i, m in enumerate(self.backlog):
                if m.command == command and (pred is None or pred(m)):
                    return self.backlog.pop(i)
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(min(left, 0.5)):
                return None

    def expect(self, command, pred=None, timeout=None, what=None):
        m = self.wait_for(command, pred, timeout)
        if m is None:
            raise AssertionError("IRC %s: no %s%s within %.1fs; backlog: %s%s" % (
                self.nick, command, " (%s)" % what if what else "",
                self.timeout if timeout is None else timeout,
                [x.line for x in self.backlog][-15:], " (closed)" if self.eof else ""))
        return m

    def register(self):
        self.send("NICK %s" % self.nick)
        self.send("USER %s 0 * :baton test" % self.nick)
        self.expect("001", what="welcome")
        return self

    def join(self, channel):
        self.send("JOIN %s" % channel)
        self.expect("366", lambda m: len(m.params) > 1 and m.params[1].lower() ==
                    channel.lower(), what="end of NAMES for %s" % channel)
        return self

    def privmsg(self, target, text):
        self.send("PRIVMSG %s :%s" % (target, text))

    def expect_privmsg(self, target=None, text=None, frm=None, timeout=None):
        def pred(m):
            if target is not None and m.params[0].lower() != target.lower():
                return False
            if text is not None and m.params[-1] != text:
                return False
            return frm is None or m.nick.lower() == frm.lower()
        return self.expect("PRIVMSG", pred, timeout, "from %s to %s: %r" % (frm, target, text))

    def quit(self, reason="bye"):
        try:
            self.send("QUIT :%s" % reason)
            deadline = time.monotonic() + 1.0
            while not self.eof and time.monotonic() < deadline:
                self._pump(0.2)
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.eof = True
