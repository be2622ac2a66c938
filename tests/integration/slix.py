"""A synchronous wrapper around slixmpp 1.8 for baton's integration tests: every client runs on
one shared asyncio loop in a background thread, and the test thread talks to it through
thread-safe queues and futures.

Invariant: every call that waits has a timeout, and a client that did not log in, or whose
test is over, is disconnected and its reconnection attempts cancelled, so no stray client
outlives its test.
"""

import asyncio
import atexit
import logging
import queue
import threading
import time

import slixmpp

logging.getLogger("slixmpp").setLevel(logging.CRITICAL)

_loop = None
_loop_lock = threading.Lock()


def loop():
    """The shared event loop (started on first use, a daemon thread)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            lp = asyncio.new_event_loop()
            t = threading.Thread(target=lp.run_forever, name="slixmpp-loop", daemon=True)
            t.start()
            _loop = lp
        return _loop


@atexit.register
def _shutdown():
    """Cancels slixmpp's leftover tasks so the interpreter exits without warnings."""
    if _loop is None:
        return

    async def cancel_all():
        for t in asyncio.all_tasks():
            if t is not asyncio.current_task():
                t.cancel()
    try:
        run(cancel_all, timeout=2)
        _loop.call_soon_threadsafe(_loop.stop)
    except Exception:
        pass


def run(fn, *args, timeout=10):
    """Runs fn(*args) on the loop thread; coroutines are awaited. Returns its result."""
    async def wrapper():
        r = fn(*args)
        if asyncio.iscoroutine(r) or isinstance(r, asyncio.Future):
            r = await asyncio.wait_for(r, timeout)
        return r
    return asyncio.run_coroutine_threadsafe(wrapper(), loop()).result(timeout + 1)


class LoginFailed(Exception):
    pass


class _Client(slixmpp.ClientXMPP):
    """ClientXMPP that connects to exactly 127.0.0.1:port. slixmpp 1.8 resolves the JID's
    domain with its default port even when an address is given, so we answer for it."""

    baton_port = None

    async def get_dns_records(self, domain, port=None):
        return [(domain, "127.0.0.1", self.baton_port)]


class SlixClient:
    """mech: force one SASL mechanism ('SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN').
    direct_tls: use the XEP-0368 port; plaintext: no TLS at all (server needs
    --allow-plaintext)."""

    def __init__(self, server, jid, password, mech=None, direct_tls=False, plaintext=False,
                 resource=None):
        self.server = server
        self.direct_tls = direct_tls
        self.plaintext = plaintext
        self.messages = queue.Queue()
        self.presences = queue.Queue()
        self.stream_errors = []
        self.started = threading.Event()
        self.failed = threading.Event()
        self.disconnected = threading.Event()
        full = jid + ("/" + resource if resource else "")
        self.xmpp = run(self._make, full, password, mech)

    def _make(self, jid, password, mech):
        x = _Client(jid, password, sasl_mech=mech)
        x.loop = loop()
        x.baton_port = self.server.tls_port if self.direct_tls else self.server.c2s_port
        x.ssl_context.check_hostname = False
        x.ssl_context.verify_mode = 0  # ssl.CERT_NONE: the certificate is self-signed
        if self.plaintext:
            x["feature_mechanisms"].unencrypted_plain = True
        x.register_plugin("xep_0030")
        x.register_plugin("xep_0199")
        x.add_event_handler("session_start", lambda _e: self.started.set())
        x.add_event_handler("failed_all_auth", lambda _e: self.failed.set())
        x.add_event_handler("disconnected", lambda _e: self.disconnected.set())
        x.add_event_handler("stream_error",
                            lambda e: self.stream_errors.append(e["condition"]))
        x.add_event_handler("message", self._on_message)
        x.add_event_handler("presence", lambda p: self.presences.put(
            {"from": str(p["from"]), "type": p["type"], "status": p["status"]}))
        return x

    def _on_message(self, msg):
        self.messages.put({"from": str(msg["from"]), "to": str(msg["to"]), "type": msg["type"],
                           "body": msg["body"], "id": msg["id"],
                           "error": msg["error"]["condition"] if msg["type"] == "error" else None})

    @property
    def jid(self):
        return str(self.xmpp.boundjid)

    def connect(self, timeout=10):
        """Logs in (TLS, SASL, bind, session). Raises LoginFailed with the reason."""
        run(lambda: self.xmpp.connect(("127.0.0.1", self.xmpp.baton_port),
                                      use_ssl=self.direct_tls,
                                      force_starttls=not self.plaintext,
                                      disable_starttls=self.plaintext))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.started.is_set():
                return self
            if self.failed.is_set() or self.disconnected.is_set():
                break
            time.sleep(0.02)
        why = ("authentication failed" if self.failed.is_set() else
               "disconnected" if self.disconnected.is_set() else "timeout")
        self.disconnect()
        raise LoginFailed("%s could not log in: %s (stream errors %s)"
                          % (self.xmpp.boundjid, why, self.stream_errors))

    def send_message(self, to, body, mtype="chat"):
        run(lambda: self.xmpp.send_message(mto=to, mbody=body, mtype=mtype))

    def send_presence(self, **kw):
        run(lambda: self.xmpp.send_presence(**kw))

    def wait_message(self, frm=None, body=None, timeout=5, mtype=None):
        """Next message matching; earlier non-matching ones are dropped. Raises on timeout."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: no message from %s body %r within %.1fs; got %s"
                                     % (self.jid, frm, body, timeout, seen))
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if ((frm is None or m["from"] == frm) and (body is None or m["body"] == body)
                    and (mtype is None or m["type"] == mtype)):
                return m
            seen.append(m)

    def wait_presence(self, frm=None, ptype=None, timeout=5):
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: no presence from %s type %s within %.1fs; got %s"
                                     % (self.jid, frm, ptype, timeout, seen))
            try:
                p = self.presences.get(timeout=left)
            except queue.Empty:
                continue
            if (frm is None or p["from"] == frm) and (ptype is None or p["type"] == ptype):
                return p
            seen.append(p)

    def _iq(self, itype, build, timeout):
        async def go():
            iq = self.xmpp.Iq()
            iq["type"] = itype
            build(iq)
            return await iq.send(timeout=timeout)
        return run(go, timeout=timeout + 1)

    def get_roster(self, timeout=5):
        """{jid: {'name', 'subscription', 'ask', 'groups'}} from a roster get."""
        res = self._iq("get", lambda iq: iq.enable("roster"), timeout)
        out = {}
        for jid, item in res["roster"]["items"].items():
            out[str(jid)] = {"name": item.get("name", ""),
                             "subscription": item.get("subscription", "none"),
                             "ask": item.get("ask", ""),
                             "groups": sorted(item.get("groups", []))}
        return out

    def set_roster(self, jid, name=None, groups=(), timeout=5):
        def build(iq):
            iq["roster"]["items"] = {jid: {"name": name or "", "groups": list(groups),
                                           "subscription": "none"}}
            # a roster set must not carry a subscription other than 'remove' (RFC 6121 2.1.2.5)
            for item in iq["roster"].xml:
                item.attrib.pop("subscription", None)
        return self._iq("set", build, timeout)

    def ping(self, to=None, timeout=5):
        async def go():
            return await self.xmpp["xep_0199"].ping(to or self.xmpp.boundjid.domain,
                                                    timeout=timeout)
        return run(go, timeout=timeout + 1)

    def disco_info(self, to, timeout=5):
        async def go():
            return await self.xmpp["xep_0030"].get_info(jid=to, timeout=timeout)
        return run(go, timeout=timeout + 1)

    def disconnect(self, timeout=5):
        """Ends the stream and waits for the socket to close; aborts if that does not happen."""
        def stop():
            self.xmpp.cancel_connection_attempt()
            return self.xmpp.disconnect(wait=2)
        try:
            run(stop, timeout=timeout)
        except Exception:
            pass
        if not self.disconnected.wait(timeout):
            try:
                run(self.xmpp.abort)
            except Exception:
                pass
