"""Test equipment for XMPP federation: a throwaway PKI (tests/s2s/gencerts.sh), a private
Prosody 0.12 process (config from tests/s2s/prosody.cfg.lua.in, DNS through dnsstub via
tests/s2s/mod_test_resolver.lua), clients for its users, and RawS2S, a hand-driven s2s peer
for the hostile tests.

Invariant: nothing here touches /etc/prosody, the system Prosody service or /etc/hosts;
every Prosody runs from its own directory on its own loopback address and ports, and every
wait has a deadline.
"""

import atexit
import base64
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from xml.sax.saxutils import escape, quoteattr

from helpers import (NS_SASL, NS_STREAM, NS_TLS, REPO, Client, Raw, ServerError, StreamParser,
                     q, tostr)

S2S_DIR = os.path.join(REPO, "tests", "s2s")
PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
PROSODYCTL = shutil.which("prosodyctl") or "/usr/bin/prosodyctl"

NS_SERVER = "jabber:server"
NS_DIALBACK = "jabber:server:dialback"  # XEP-0220 namespace of <db:result/>, <db:verify/>
NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback"


def have_prosody():
    return os.access(PROSODY, os.X_OK) and os.access(PROSODYCTL, os.X_OK)


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def loopback_usable(host):
    try:
        with socket.socket() as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Certificates


class PKI:
    """Certificates in one directory: make_ca(name), leaf(ca, domain, *alt) -> (pem, key)."""

    def __init__(self, directory):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)

    def _run(self, *args):
        subprocess.run(["sh", os.path.join(S2S_DIR, "gencerts.sh")] + list(args), check=True,
                       timeout=30, capture_output=True)

    def make_ca(self, name):
        self._run("ca", self.dir, name)
        return self.path(name)

    def leaf(self, ca, domain, *alt):
        self._run("leaf", self.dir, ca, domain, *alt)
        return self.path(domain), self.path(domain, ".key")

    def path(self, name, ext=".pem"):
        return os.path.join(self.dir, name + ext)


# ---------------------------------------------------------------------------------------------
# Prosody


class Prosody:
    """One private Prosody: domain with a MUC at conference.<domain>, c2s and s2s on host."""

    running = []  # started and not yet stopped; killed at interpreter exit

    def __init__(self, workdir, domain, cert, key, cafile, dns, host="127.0.0.2",
                 loglevel="debug"):
        self.dir = str(workdir)
        self.domain = domain
        self.muc = "conference." + domain
        self.host = host
        self.cert, self.key, self.cafile = cert, key, cafile
        self.dns = dns  # (host, port) of the DNS stub
        self.loglevel = loglevel
        self.c2s_port = free_port(host)
        self.s2s_port = free_port(host)
        while self.s2s_port == self.c2s_port:
            self.s2s_port = free_port(host)
        self.tls_port = None  # no direct TLS (helpers.Client only uses c2s_port here)
        self.config = os.path.join(self.dir, "prosody.cfg.lua")
        self.log_path = os.path.join(self.dir, "prosody.log")
        self.out_path = os.path.join(self.dir, "prosody.out")
        self.proc = None
        self._out = None
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "certs-unused"), exist_ok=True)
        self._write_config()

    def _write_config(self):
        with open(os.path.join(S2S_DIR, "prosody.cfg.lua.in")) as f:
            text = f.read()
        subst = {"DIR": self.dir, "S2SDIR": S2S_DIR, "HOST": self.host, "DOMAIN": self.domain,
                 "C2S_PORT": str(self.c2s_port), "S2S_PORT": str(self.s2s_port),
                 "DNS": "%s:%d" % self.dns, "CERT": self.cert, "KEY": self.key,
                 "CAFILE": self.cafile, "LOGLEVEL": self.loglevel}
        for k, v in subst.items():
            text = text.replace("@%s@" % k, v)
        with open(self.config, "w") as f:
            f.write(text)

    # -- process

    def start(self, timeout=15.0):
        self._out = open(self.out_path, "ab")
        self.log_mark = self.log_size()
        self.proc = subprocess.Popen([PROSODY, "--config", self.config, "-F"],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        Prosody.running.append(self)
        deadline = time.monotonic() + timeout
        pending = [self.c2s_port, self.s2s_port]
        while pending:
            if self.proc.poll() is not None:
                self._close_out()
                raise ServerError("prosody exited early with status %s:\n%s"
                                  % (self.proc.returncode, self.tail()))
            try:
                with socket.create_connection((self.host, pending[0]), timeout=0.5):
                    pending.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError("prosody not listening on %s:%d within %.0fs:\n%s"
                                  % (self.host, pending[0], timeout, self.tail()))
            time.sleep(0.05)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_out()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_out()

    def restart(self):
        self.stop()
        return self.start()

    def _close_out(self):
        if self in Prosody.running:
            Prosody.running.remove(self)
        if self._out:
            self._out.close()
            self._out = None

    # -- logs

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=60, since=0):
        out = ""
        try:
            with open(self.out_path, "rb") as f:
                out = f.read().decode("utf-8", "replace")
        except OSError:
            pass
        lines = (out + self.log_text(since)).splitlines()
        return "\n".join(lines[-n:])

    def wait_log(self, needle, since=0, timeout=5.0):
        """Waits until needle (str) appears in the log after offset since; returns the line."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text(since)
            i = text.find(needle)
            if i >= 0:
                start = text.rfind("\n", 0, i) + 1
                end = text.find("\n", i)
                return text[start:end if end >= 0 else len(text)]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.1)

    # -- users and clients

    def ctl(self, *args, check=True, timeout=30):
        p = subprocess.run([PROSODYCTL, "--config", self.config] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir)
        if check and p.returncode != 0:
            raise ServerError("prosodyctl %s failed (%d): %s%s"
                              % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def add_user(self, localpart, password):
        """prosodyctl register (works on the storage, running or not); returns the bare JID."""
        self.ctl("register", localpart, self.domain, password)
        return "%s@%s" % (localpart, self.domain)

    def client(self, jid, password, **kw):
        kw.setdefault("mech", "SCRAM-SHA-1")
        return ProsodyClient(self, jid, password, **kw)

    def login(self, jid, password, presence=False, roster=False, **kw):
        c = self.client(jid, password, **kw).connect()
        if roster:
            c.get_roster()
        if presence:
            c.send_presence()
            c.sync()
        return c


@atexit.register
def _kill_leftovers():
    for p in list(Prosody.running):
        p.kill()


class ProsodyClient(Client):
    """helpers.Client, connecting to the Prosody's address instead of 127.0.0.1."""

    def _open_socket(self):
        self.raw = Raw(self.server.c2s_port, host=self.server.host, timeout=self.timeout)
        self.raw.keep = 1 << 16


# ---------------------------------------------------------------------------------------------
# A raw s2s peer


class RawS2S:
    """An initiating s2s stream (RFC 6120) driven by hand: open(), starttls(), then
    sasl_external() or dialback(), then send() anything, including lies and broken XML.
    Everything the receiving server sends is parsed into self.backlog."""

    def __init__(self, port, from_domain, to_domain, host="127.0.0.1", cert=None, key=None,
                 cafile=None, timeout=5.0):
        self.from_domain = from_domain
        self.to_domain = to_domain
        self.cert, self.key, self.cafile = cert, key, cafile
        self.timeout = timeout
        self.raw = Raw(port, host=host, timeout=timeout)
        self.parser = None
        self.backlog = []
        self.features = None
        self.stream_attrs = None
        self.stream_error = None
        self.closed = False
        self.tls = False

    def send(self, data):
        self.raw.send(data)

    def try_send(self, data):
        return self.raw.try_send(data)

    def _pump(self, timeout):
        if self.closed:
            return False
        chunk = self.raw.recv_some(timeout)
        if chunk:
            try:
                for el in self.parser.feed(chunk):
                    if el.tag == q(NS_STREAM, "error"):
                        self.stream_error = next(
                            (c.tag.rsplit("}", 1)[-1] for c in el
                             if not c.tag.endswith("}text")), None)
                    self.backlog.append(el)
            except Exception:  # the server's XML is not ours to judge here; keep raw data
                pass
        if self.raw.eof or self.parser.closed:
            self.closed = True
            return False
        return True

    def expect(self, pred, what="element", timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            for i, el in enumerate(self.backlog):
                if pred(el):
                    return self.backlog.pop(i)
            left = deadline - time.monotonic()
            if left <= 0 or not self._pump(min(left, 0.5)):
                for i, el in enumerate(self.backlog):
                    if pred(el):
                        return self.backlog.pop(i)
                raise AssertionError("s2s peer: no %s within %.1fs (stream error %s, closed %s);"
                                     " backlog %s; data %r" % (
                                         what, timeout, self.stream_error, self.closed,
                                         [tostr(e) for e in self.backlog][:5],
                                         self.raw.data[-600:]))

    def wait_closed(self, timeout=None):
        """Reads until the server closes; returns the stream error condition (or None)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._pump(min(0.5, max(0.01, deadline - time.monotonic())))
        if not self.closed:
            raise AssertionError("s2s peer: stream not closed within %.1fs; data %r"
                                 % (timeout, self.raw.data[-600:]))
        if not self.raw.eof:
            self.raw.wait_closed(2)
        return self.stream_error

    def open(self, dialback_ns=True):
        self.parser = StreamParser()
        db = " xmlns:db='%s'" % NS_DIALBACK if dialback_ns else ""
        self.send("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s'%s "
                  "from='%s' to='%s' version='1.0'>"
                  % (NS_SERVER, NS_STREAM, db, self.from_domain, self.to_domain))
        self.features = self.expect(lambda e: e.tag == q(NS_STREAM, "features"),
                                    "stream features")
        self.stream_attrs = dict(self.parser.root.attrib)
        return self.features

    def starttls(self):
        assert self.features.find(q(NS_TLS, "starttls")) is not None, \
            "no <starttls/> offered: %s" % tostr(self.features)
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.expect(lambda e: e.tag == q(NS_TLS, "proceed"), "<proceed/>")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if self.cert:
            ctx.load_cert_chain(self.cert, self.key)
        self.raw.sock = ctx.wrap_socket(self.raw.sock, server_hostname=self.to_domain)
        self.tls = True
        return self.open()

    def mechanisms(self):
        m = self.features.find(q(NS_SASL, "mechanisms"))
        return [] if m is None else [x.text for x in m.findall(q(NS_SASL, "mechanism"))]

    def offers_dialback(self):
        return self.features.find(q(NS_DIALBACK_FEATURE, "dialback")) is not None

    def sasl_external(self, authzid=None):
        """RFC 6120 6.4 / XEP-0178: EXTERNAL with authzid = our domain ('=' for none).
        Returns True on <success/> (and restarts the stream), False on <failure/>."""
        payload = "=" if authzid is None else base64.b64encode(authzid.encode()).decode()
        self.send("<auth xmlns='%s' mechanism='EXTERNAL'>%s</auth>" % (NS_SASL, payload))
        el = self.expect(lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure")),
                         "SASL result")
        if el.tag == q(NS_SASL, "failure"):
            return False
        self.open()
        return True

    def dialback(self, claimed_domain, key="0123456789abcdef", timeout=None):
        """XEP-0220 2.1.1: <db:result from=claimed to=receiving>key</db:result>; returns the
        answer's type ('valid', 'invalid', 'error'), or None if the stream ended instead."""
        self.send("<db:result from='%s' to='%s'>%s</db:result>"
                  % (claimed_domain, self.to_domain, key))
        try:
            el = self.expect(lambda e: e.tag == q(NS_DIALBACK, "result"), "<db:result/> answer",
                             timeout=timeout)
        except AssertionError:
            if self.closed:
                return None
            raise
        return el.get("type")

    def message(self, frm, to, body, id_="s2s1"):
        self.send("<message from=%s to=%s type='chat' id=%s><body>%s</body></message>"
                  % (quoteattr(frm), quoteattr(to), quoteattr(id_), escape(body)))

    def close(self):
        self.raw.try_send("</stream:stream>")
        self.raw.close()
        self.closed = True


def main():
    """Manual use: python3 tests/integration/prosody.py [BATON_S2S_PORT] starts a DNS stub and
    a Prosody (prosody.test on 127.0.0.2, user alice/alice) routing baton.test to
    127.0.0.1:BATON_S2S_PORT, prints what batond needs, and runs until Ctrl-C."""
    import sys
    import tempfile

    import dnsstub
    baton_port = int(sys.argv[1]) if len(sys.argv) > 1 else 5269

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    top = tempfile.mkdtemp(prefix="prosody-s2s-")
    pki = PKI(os.path.join(top, "pki"))
    ca = pki.make_ca("ca")
    pc = pki.leaf("ca", "prosody.test", "conference.prosody.test")
    bc = pki.leaf("ca", "baton.test", "conference.baton.test")
    dns = dnsstub.DNSStub().start()
    p = Prosody(os.path.join(top, "prosody"), "prosody.test", pc[0], pc[1], ca,
                (dns.host, dns.port))
    for dom, host, port in (("prosody.test", p.host, p.s2s_port),
                            ("conference.prosody.test", p.host, p.s2s_port),
                            ("baton.test", "127.0.0.1", baton_port),
                            ("conference.baton.test", "127.0.0.1", baton_port)):
        dns.add_srv("_xmpp-server._tcp." + dom, "xmpp-" + dom, port)
        dns.add_a("xmpp-" + dom, host)
    p.add_user("alice", "alice")
    p.start()
    print("prosody.test: c2s %s:%d s2s %s:%d, log %s" % (p.host, p.c2s_port, p.host, p.s2s_port,
                                                         p.log_path))
    print("batond --domain baton.test --s2s 127.0.0.1:%d --cert %s --key %s "
          "--set s2s.ca_file=%s --set s2s.resolver=%s:%d" % (baton_port, bc[0], bc[1], ca,
                                                              dns.host, dns.port))
    try:
        while p.alive():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        p.stop()
        dns.stop()


if __name__ == "__main__":
    main()
