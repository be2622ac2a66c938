"""SMClient: a helpers.Client that keeps XEP-0198 counts, for the stream management tests
(test_sm.py) and the deliver-first tests (test_deliver_first.py)."""

from xml.sax.saxutils import quoteattr

from helpers import NS_CLIENT, NS_STANZAS, Client, q, tostr

NS_SM = "urn:xmpp:sm:3"
STANZAS = {q(NS_CLIENT, t) for t in ("message", "presence", "iq")}


class SMClient(Client):
    """helpers.Client that keeps XEP-0198 counts: sm_log holds every stanza received since
    <enabled/> (or since <resumed/>, on top of h_base), sm_sent counts stanzas sent since
    enable. auto_r: answer the server's <r/> at once with the current h."""

    def __init__(self, *a, auto_r=False, **kw):
        super().__init__(*a, **kw)
        self.auto_r = auto_r
        self.sm_on = False
        self.sm_log = []
        self.h_base = 0
        self.sm_sent = 0
        self.r_seen = 0
        self.resume_h = 0

    @property
    def h(self):
        return (self.h_base + len(self.sm_log)) % 2 ** 32

    def send(self, x):
        super().send(x)
        if self.sm_on and isinstance(x, str) and x.lstrip().startswith(
                ("<message", "<presence", "<iq")):
            self.sm_sent += 1

    def _maybe_ack(self, el):
        if el.tag == q(NS_SM, "enabled"):
            self.sm_on, self.sm_log, self.h_base = True, [], 0
        elif el.tag == q(NS_SM, "resumed"):
            self.sm_on, self.sm_log, self.h_base = True, [], self.resume_h
        elif el.tag in STANZAS and self.sm_on:
            self.sm_log.append(el)
        elif el.tag == q(NS_SM, "r"):
            self.r_seen += 1
            if self.auto_r:
                try:
                    self.ack()
                except OSError:
                    pass
        super()._maybe_ack(el)

    # -- XEP-0198 elements

    def ack(self, h=None):
        self.send("<a xmlns='%s' h='%d'/>" % (NS_SM, self.h if h is None else h))

    def sm_reply(self, what):
        return self.expect(pred=lambda e: e.tag.startswith("{%s}" % NS_SM) and
                           e.tag not in (q(NS_SM, "r"), q(NS_SM, "a")), what=what)

    def enable(self, resume=False):
        """Sends <enable/>; returns the server's <enabled/> or <failed/>."""
        self.send("<enable xmlns='%s'%s/>" % (NS_SM, " resume='true'" if resume else ""))
        return self.sm_reply("<enabled/> or <failed/>")

    def request_ack(self, settle=0.3):
        """Sends <r/>; returns the h the server acknowledges. The answer comes at once, but
        while messages are being committed (durable delivery) its h stops before them and
        an unasked <a/> follows when they are stored; the latest one within settle counts."""
        self.send("<r xmlns='%s'/>" % NS_SM)
        a = self.expect(pred=lambda e: e.tag == q(NS_SM, "a"), what="<a/>")
        h = int(a.get("h"))
        while True:
            more = self.wait_for(pred=lambda e: e.tag == q(NS_SM, "a"), timeout=settle)
            if more is None:
                return h
            h = max(h, int(more.get("h")))

    def resume(self, previd, h):
        """Sends <resume/>; returns <resumed/> or <failed/>."""
        self.resume_h = h
        self.send("<resume xmlns='%s' previd=%s h='%d'/>" % (NS_SM, quoteattr(previd), h))
        return self.sm_reply("<resumed/> or <failed/>")


def failed_condition(el):
    assert el.tag == q(NS_SM, "failed"), "expected <failed/>, got %s" % tostr(el)
    conds = [c.tag for c in el if c.tag.startswith("{%s}" % NS_STANZAS)]
    return conds[0].split("}")[1] if conds else None


def connect(srv, clients, jid, pw, resource=None, bind=True, enable=None, presence=False,
            auto_r=False):
    """An SMClient for jid on srv; enable None/'plain'/'resume' (checked to succeed)."""
    c = SMClient(srv, jid, pw, resource=resource, auto_r=auto_r,
                 mode="plain" if srv.allow_plaintext else "starttls")
    clients.append(c)
    c.connect(bind=bind)
    if enable:
        el = c.enable(resume=(enable == "resume"))
        assert el.tag == q(NS_SM, "enabled"), tostr(el)
        c.previd = el.get("id")
    if presence:
        c.send_presence()
        c.expect_presence(frm=c.jid)  # own initial presence comes back (RFC 6121 4.2.2)
    return c
