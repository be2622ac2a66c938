"""A small SIP user agent for baton's SIP tests, stdlib only: RFC 3261 message parsing and
non-INVITE client/server transactions over UDP (with retransmission) and TCP (Content-Length
framing), RFC 2617 / RFC 7616 digest authentication, RFC 3428 MESSAGE, and RFC 3862 CPIM with
RFC 5438 IMDN bodies. Its own tests: tests/integration/test_sipua.py; usage: tests/sip/README.md.

Invariant: every wait has a deadline and fails with AssertionError naming what arrived instead;
every message sent or received is logged (time, direction, peer, first line, CSeq) in ua.log,
and every deviation from the RFCs noticed in the peer's messages is appended to ua.errors.
"""

import hashlib
import re
import secrets
import socket
import threading
import time
import xml.etree.ElementTree as ET

__all__ = ["SipUA", "SipMessage", "Request", "Response", "Headers", "ParseError", "parse_message",
           "StreamFramer", "digest_response", "parse_challenge", "choose_challenge",
           "authorization", "build_cpim", "parse_cpim", "build_imdn", "parse_imdn",
           "new_message_id", "parse_nameaddr", "parse_via", "parse_params"]

# ---------------------------------------------------------------------------------------------
# header names

# RFC 3261 7.3.3 and 20 (plus the compact forms registered later: RFC 3265 o/u, 3515 r,
# 3892 b, 4028 x, 3841 a/j/d, 4474 y/n)
COMPACT = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
           "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
           "v": "Via", "o": "Event", "u": "Allow-Events", "r": "Refer-To", "b": "Referred-By",
           "x": "Session-Expires", "a": "Accept-Contact", "j": "Reject-Contact",
           "d": "Request-Disposition", "y": "Identity", "n": "Identity-Info"}

_CANON = {n.lower(): n for n in (
    "Call-ID", "CSeq", "WWW-Authenticate", "Proxy-Authenticate", "Authorization",
    "Proxy-Authorization", "Authentication-Info", "Content-Disposition", "Content-Length",
    "Content-Type", "Content-Encoding", "Max-Forwards", "User-Agent", "Server", "Via", "From",
    "To", "Contact", "Expires", "Min-Expires", "Allow", "Accept", "Supported", "Require",
    "Unsupported", "Event", "Subscription-State", "Allow-Events", "Record-Route", "Route",
    "Date", "Subject", "Retry-After", "Warning", "Reason", "Path", "Service-Route")}
_CANON.update({v.lower(): v for v in COMPACT.values()})

# headers whose values are comma-separated lists (RFC 3261 7.3.1); others are never split
LIST_HEADERS = {"via", "contact", "route", "record-route", "allow", "supported", "require",
                "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language",
                "content-encoding", "allow-events", "path", "service-route", "in-reply-to"}

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")  # RFC 3261 25.1 token


def canon_name(name):
    """The canonical spelling of a header name; compact forms expanded (RFC 3261 7.3.3)."""
    low = name.lower()
    if low in COMPACT:
        return COMPACT[low]
    return _CANON.get(low, name)


def split_commas(value):
    """Splits a header value at commas outside quoted strings and <...> (RFC 3261 7.3.1)."""
    out, cur, quote, angle, esc = [], [], False, False, False
    for ch in value:
        if esc:
            esc = False
        elif quote and ch == "\\":
            esc = True
        elif ch == '"':
            quote = not quote
        elif not quote and ch == "<":
            angle = True
        elif not quote and ch == ">":
            angle = False
        elif ch == "," and not quote and not angle:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return [v for v in out if v]


class Headers:
    """Case-insensitive multi-dict of header fields in arrival order; compact names expanded.
    h[name] / h.get(name) -> first value; h.getall(name) -> every value, list headers
    (Via, Contact, ...) split at their commas; h.lines(name) -> the field values as received."""

    def __init__(self, items=()):
        self._items = []
        if isinstance(items, dict):
            items = items.items()
        for name, value in items:
            if isinstance(value, (list, tuple)):
                for v in value:
                    self.add(name, v)
            else:
                self.add(name, value)

    def add(self, name, value):
        self._items.append((canon_name(name.strip()), str(value)))

    def set(self, name, value):
        self.remove(name)
        self.add(name, value)

    def remove(self, name):
        key = canon_name(name).lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def lines(self, name):
        key = canon_name(name).lower()
        return [v for n, v in self._items if n.lower() == key]

    def getall(self, name):
        vals = self.lines(name)
        if canon_name(name).lower() in LIST_HEADERS:
            return [p for v in vals for p in split_commas(v)]
        return vals

    def get(self, name, default=None):
        vals = self.getall(name)
        return vals[0] if vals else default

    def __getitem__(self, name):
        vals = self.getall(name)
        if not vals:
            raise KeyError(name)
        return vals[0]

    def __contains__(self, name):
        return bool(self.lines(name))

    def __iter__(self):
        return iter(list(self._items))

    def items(self):
        return list(self._items)

    def __len__(self):
        return len(self._items)

    def __repr__(self):
        return "Headers(%r)" % self._items


# ---------------------------------------------------------------------------------------------
# small grammar helpers

def _unquote(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return re.sub(r"\\(.)", r"\1", v[1:-1])
    return v


def _split_outside_quotes(s, sep):
    out, cur, quote, esc = [], [], False, False
    for ch in s:
        if esc:
            esc = False
        elif quote and ch == "\\":
            esc = True
        elif ch == '"':
            quote = not quote
        elif ch == sep and not quote:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def parse_params(s):
    """';a=b;c' -> {'a': 'b', 'c': None}; names lower-cased, quoted values unquoted."""
    params = {}
    for part in _split_outside_quotes(s, ";"):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        params[name.strip().lower()] = _unquote(value) if eq else None
    return params


class NameAddr:
    """A From/To/Contact value: display name, URI and header parameters (RFC 3261 20.10)."""

    def __init__(self, display, uri, params):
        self.display, self.uri, self.params = display, uri, params

    @property
    def tag(self):
        return self.params.get("tag")

    def __repr__(self):
        return "NameAddr(%r, %r, %r)" % (self.display, self.uri, self.params)


def parse_nameaddr(value):
    """'"Bob" <sip:bob@x>;tag=1' -> NameAddr. Without <>, parameters after ';' belong to the
    header, not the URI (RFC 3261 20.10)."""
    value = value.strip()
    lt = -1
    quote = False
    for i, ch in enumerate(value):
        if ch == '"':
            quote = not quote
        elif ch == "<" and not quote:
            lt = i
            break
    if lt >= 0:
        gt = value.find(">", lt)
        if gt < 0:
            raise ParseError("unterminated <> in %r" % value)
        display = _unquote(value[:lt]) or None
        return NameAddr(display, value[lt + 1:gt].strip(), parse_params(value[gt + 1:]))
    uri, _, rest = value.partition(";")
    return NameAddr(None, uri.strip(), parse_params(rest))


class Via:
    def __init__(self, transport, host, port, params):
        self.transport, self.host, self.port, self.params = transport, host, port, params

    @property
    def branch(self):
        return self.params.get("branch")

    @property
    def sent_by(self):
        return "%s:%s" % (self.host, self.port) if self.port else self.host


def parse_via(value):
    """'SIP/2.0/UDP host:port;branch=z9hG4bK..' -> Via (RFC 3261 20.42)."""
    m = re.match(r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(;.*)?$",
                 value, re.I)
    if not m:
        raise ParseError("bad Via %r" % value)
    hostport = m.group(2)
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    else:
        host, _, port = hostport.partition(":")
    if port is not None and port != "":
        if not port.isdigit():
            raise ParseError("bad Via port %r" % value)
        port = int(port)
    else:
        port = None
    return Via(m.group(1).upper(), host, port, parse_params(m.group(3) or ""))


def parse_uri(uri):
    """'sip:user@host:port;p=v' -> (scheme, user, host, port, params); minimal, for tests."""
    scheme, _, rest = uri.partition(":")
    rest, _, hdrs = rest.partition("?")
    main, _, params = rest.partition(";")
    user, at, hostport = main.rpartition("@")
    host, _, port = hostport.partition(":")
    return (scheme.lower(), user if at else None, host, int(port) if port.isdigit() else None,
            parse_params(params))


# ---------------------------------------------------------------------------------------------
# messages

class ParseError(ValueError):
    pass


class SipMessage:
    """A parsed request or response. headers: Headers; body: bytes; raw: the bytes received;
    source: (ip, port) it came from; problems: RFC deviations noticed while parsing."""

    is_request = False

    def __init__(self, first_line, headers, body, raw=b"", source=None, transport=None,
                 conn=None):
        self.first_line, self.headers, self.body = first_line, headers, body
        self.raw, self.source, self.transport, self.conn = raw, source, transport, conn
        self.time = time.monotonic()
        self.problems = []

    def __str__(self):
        return self.first_line

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.first_line)

    def header(self, name, default=None):
        return self.headers.get(name, default)

    @property
    def call_id(self):
        return self.headers.get("Call-ID")

    def cseq(self):
        """(number, method) from CSeq (RFC 3261 20.16)."""
        v = self.headers.get("CSeq", "")
        num, _, method = v.strip().partition(" ")
        if not num.isdigit() or not method.strip():
            raise ParseError("bad CSeq %r" % v)
        return int(num), method.strip()

    def nameaddr(self, name):
        v = self.headers.get(name)
        return parse_nameaddr(v) if v is not None else None

    def vias(self):
        return [parse_via(v) for v in self.headers.getall("Via")]

    def content_type(self):
        """'type/subtype' in lower case, or None."""
        v = self.headers.get("Content-Type")
        return v.split(";", 1)[0].strip().lower() if v else None

    def content_params(self):
        v = self.headers.get("Content-Type", "")
        return parse_params(v.partition(";")[2])

    def disposition(self):
        """The Content-Disposition type in lower case ('instant', 'store&fwd', 'notification'),
        parameters dropped, or None (RFC 3261 20.11)."""
        v = self.headers.get("Content-Disposition")
        return v.split(";", 1)[0].strip().lower() if v is not None else None

    def disposition_params(self):
        v = self.headers.get("Content-Disposition", "")
        return parse_params(v.partition(";")[2])

    def cpim(self):
        """The parsed message/cpim body (RFC 3862), or None for other content types."""
        if self.content_type() != "message/cpim":
            return None
        return parse_cpim(self.body)

    def text(self):
        """The body decoded (charset parameter, UTF-8 by default); for message/cpim the body
        of the encapsulated MIME object."""
        if self.content_type() == "message/cpim":
            return self.cpim().text()
        return self.body.decode(self.content_params().get("charset") or "utf-8")

    def imdn(self):
        """For a message/imdn+xml body, bare or inside message/cpim (RFC 5438 7.2.1), the parsed
        notification (Imdn: message_id, kind, status, ...); None for other bodies."""
        ct = self.content_type()
        if ct == "message/imdn+xml":
            return parse_imdn(self.body)
        if ct == "message/cpim":
            c = self.cpim()
            if c.content_type() == "message/imdn+xml":
                return parse_imdn(c.body)
        return None

    def contacts(self):
        """Contact values as NameAddr list ('*' gives [NameAddr(None, '*', {})])."""
        return [parse_nameaddr(v) for v in self.headers.getall("Contact")]


class Request(SipMessage):
    """A request. For received ones: copies (how many copies arrived: retransmissions
    included) and response (the final response bytes sent, or None)."""

    is_request = True

    def __init__(self, method, uri, *a, **kw):
        self.method, self.uri = method, uri
        super().__init__(*a, **kw)
        self.copies = 1
        self.response = None
        self.tx_key = None


class Response(SipMessage):
    """A response; imdn_id is set on the final response to message(imdn=True)."""

    def __init__(self, status, reason, *a, **kw):
        self.status, self.reason = status, reason
        super().__init__(*a, **kw)
        self.imdn_id = None
        self.provisional = []

    def challenges(self):
        """The digest challenges of a 401 (WWW-Authenticate) or 407 (Proxy-Authenticate)."""
        name = "Proxy-Authenticate" if self.status == 407 else "WWW-Authenticate"
        return [parse_challenge(v) for v in self.headers.getall(name)]


# RFC 3261 8.1.1 (Max-Forwards is not in responses, so it is not checked here)
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")


def _split_head(data):
    """-> (head str, body bytes, problems); accepts bare LF line ends, as a noted problem."""
    problems = []
    idx = data.find(b"\r\n\r\n")
    sep = 4
    lf = data.find(b"\n\n")
    if lf >= 0 and (idx < 0 or lf < idx):
        idx, sep = lf, 2
        problems.append("header ended by bare LF LF, not CRLF CRLF (RFC 3261 7)")
    if idx < 0:
        raise ParseError("no empty line after the headers")
    try:
        head = data[:idx].decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError("header section is not UTF-8")
    return head, data[idx + sep:], problems


def parse_message(data, source=None, transport="UDP", conn=None, stream=False):
    """Parses one SIP message (RFC 3261 7). stream: it was framed off a TCP stream, so a
    missing Content-Length is a problem (18.3). Raises ParseError when it cannot be used."""
    orig = data
    problems = []
    if data.startswith(b"\r\n"):
        data = data.lstrip(b"\r\n")  # 7.5: CRLFs before the start line are ignored
    head, body, p = _split_head(data)
    problems += p
    if "\r" not in head and "\n" in head:
        problems.append("bare LF line ends (RFC 3261 7)")
    lines = re.split(r"\r?\n", head)
    first = lines[0]
    fields = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # 7.3.1 folding
            if not fields:
                raise ParseError("continuation line before any header")
            fields[-1][1] += " " + line.strip()
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN_RE.match(name):
            raise ParseError("bad header line %r" % line)
        fields.append([name, value.strip()])
    headers = Headers()
    for name, value in fields:
        headers.add(name, value)

    cls = headers.lines("Content-Length")
    if len(cls) > 1:
        raise ParseError("%d Content-Length headers" % len(cls))
    if cls:
        if not cls[0].strip().isdigit():
            raise ParseError("bad Content-Length %r" % cls[0])
        n = int(cls[0])
        if len(body) < n:
            raise ParseError("body is %d bytes, Content-Length says %d (RFC 3261 18.3)"
                             % (len(body), n))
        body = body[:n]
    elif stream:
        problems.append("no Content-Length on a stream transport (RFC 3261 18.3)")

    parts = first.split(" ", 2)
    if first.upper().startswith("SIP/"):
        if len(parts) < 2 or parts[0].upper() != "SIP/2.0":
            raise ParseError("bad status line %r" % first)
        if not (len(parts[1]) == 3 and parts[1].isdigit() and 100 <= int(parts[1]) <= 699):
            raise ParseError("bad status code in %r" % first)
        msg = Response(int(parts[1]), parts[2] if len(parts) > 2 else "", first, headers, body,
                       orig, source, transport, conn)
    else:
        if len(parts) != 3 or not _TOKEN_RE.match(parts[0]) or parts[2].upper() != "SIP/2.0" \
                or not parts[1] or " " in parts[1]:
            raise ParseError("bad request line %r" % first)
        msg = Request(parts[0], parts[1], first, headers, body, orig, source, transport, conn)
    for name in _REQUIRED:
        if name not in headers:
            raise ParseError("no %s header (RFC 3261 8.1.1)" % name)
    num_method = msg.cseq()
    if msg.is_request and num_method[1] != msg.method:
        raise ParseError("CSeq method %s differs from request method %s (RFC 3261 8.2.2)"
                         % (num_method[1], msg.method))
    msg.problems = problems
    return msg


class StreamFramer:
    """Cuts a TCP byte stream into messages by Content-Length (RFC 3261 18.3); CRLFs between
    messages (keep-alives, RFC 5626 3.5.1) are skipped and counted."""

    MAX_HEAD = 64 * 1024

    def __init__(self):
        self.buf = b""
        self.keepalives = 0
        self.problems = []

    def feed(self, data):
        """Adds bytes; returns the complete messages (bytes) now available."""
        self.buf += data
        out = []
        while True:
            while self.buf.startswith(b"\r\n"):
                self.buf = self.buf[2:]
                self.keepalives += 1
            idx = self.buf.find(b"\r\n\r\n")
            if idx < 0:
                if len(self.buf) > self.MAX_HEAD:
                    raise ParseError("no end of headers in %d bytes" % len(self.buf))
                return out
            length = None
            for line in self.buf[:idx].split(b"\r\n")[1:]:
                name, colon, value = line.partition(b":")
                if colon and name.strip().lower() in (b"content-length", b"l"):
                    if not value.strip().isdigit():
                        raise ParseError("bad Content-Length %r" % value)
                    length = int(value.strip())
            if length is None:
                self.problems.append("no Content-Length on a stream transport (RFC 3261 18.3)")
                length = 0
            total = idx + 4 + length
            if len(self.buf) < total:
                return out
            out.append(self.buf[:total])
            self.buf = self.buf[total:]


# ---------------------------------------------------------------------------------------------
# digest authentication (RFC 2617 3.2, RFC 7616 3.4, RFC 8760 for SIP)

_ALGS = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
# preference when a response carries several challenges (RFC 8760 2.4: the first supported
# one in the server's order of preference; here SHA-256 first whatever the order)
PREFERENCE = ("SHA-256", "SHA-256-sess", "SHA-512-256", "SHA-512-256-sess", "MD5", "MD5-sess")


def _h(alg, s):
    base = alg[:-5] if alg.upper().endswith("-SESS") else alg
    name = _ALGS.get(base.upper())
    if name is None:
        raise ValueError("unsupported digest algorithm %r" % alg)
    if isinstance(s, str):
        s = s.encode("utf-8")
    return hashlib.new(name, s).hexdigest()


def digest_response(algorithm, username, realm, password, method, uri, nonce, nc=None,
                    cnonce=None, qop=None, body=b""):
    """The request-digest of RFC 2617 3.2.2.1 / RFC 7616 3.4.1 (qop auth, auth-int or none;
    -sess algorithms per 3.4.2)."""
    algorithm = algorithm or "MD5"
    ha1 = _h(algorithm, "%s:%s:%s" % (username, realm, password))
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(algorithm, "%s:%s:%s" % (ha1, nonce, cnonce))
    if qop == "auth-int":
        ha2 = _h(algorithm, "%s:%s:%s" % (method, uri, _h(algorithm, body)))
    else:
        ha2 = _h(algorithm, "%s:%s" % (method, uri))
    if qop:
        return _h(algorithm, "%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2))
    return _h(algorithm, "%s:%s:%s" % (ha1, nonce, ha2))  # RFC 2069 compatibility


def parse_challenge(value):
    """'Digest realm="x", nonce="y", qop="auth"' -> (scheme, {name: value}); names lower."""
    scheme, _, rest = value.strip().partition(" ")
    params = {}
    for part in _split_outside_quotes(rest, ","):
        part = part.strip()
        if not part:
            continue
        name, eq, v = part.partition("=")
        params[name.strip().lower()] = _unquote(v) if eq else None
    return scheme, params


def choose_challenge(challenges, prefer=PREFERENCE):
    """The Digest challenge to answer from (scheme, params) pairs: the first algorithm of
    prefer that is offered; None when no supported one is."""
    offered = [(p.get("algorithm") or "MD5", p) for s, p in challenges if s.lower() == "digest"]
    for want in prefer:
        for alg, p in offered:
            if alg.upper() == want.upper():
                return p
    return None


def authorization(params, username, password, method, uri, nc=1, cnonce=None, body=b""):
    """The Authorization / Proxy-Authorization value answering challenge params
    (RFC 2617 3.2.2, RFC 7616 3.4; qop=auth preferred over auth-int)."""
    alg = params.get("algorithm") or "MD5"
    qops = [q.strip().lower() for q in (params.get("qop") or "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else ("auth-int" if "auth-int" in qops else None)
    cnonce = cnonce or secrets.token_hex(8)
    ncs = "%08x" % nc
    resp = digest_response(alg, username, params.get("realm", ""), password, method, uri,
                           params.get("nonce", ""), ncs, cnonce, qop, body)
    parts = ['username="%s"' % username, 'realm="%s"' % params.get("realm", ""),
             'nonce="%s"' % params.get("nonce", ""), 'uri="%s"' % uri,
             'response="%s"' % resp, "algorithm=%s" % alg]
    if qop:
        parts += ['cnonce="%s"' % cnonce, "qop=%s" % qop, "nc=%s" % ncs]
    if params.get("opaque") is not None:
        parts.append('opaque="%s"' % params["opaque"])
    return "Digest " + ", ".join(parts)


# ---------------------------------------------------------------------------------------------
# CPIM (RFC 3862) and IMDN (RFC 5438)

IMDN_URN = "urn:ietf:params:imdn"
IMDN_XMLNS = "urn:ietf:params:xml:ns:imdn"


def new_message_id():
    """An imdn.Message-ID: 128 random bits (RFC 5438 6.3 asks for at least 32)."""
    return secrets.token_hex(16)


def _now_3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def build_cpim(from_uri, to_uri, content, content_type="text/plain; charset=utf-8",
               imdn_id=None, notify="positive-delivery, negative-delivery", datetime=None,
               extra=(), content_headers=()):
    """A message/cpim body (RFC 3862 3): message headers, a blank line, the encapsulated MIME
    object. With imdn_id: NS imdn, imdn.Message-ID, DateTime (RFC 5438 6.3, 7.1.1) and, when
    notify is not None, imdn.Disposition-Notification (RFC 5438 6.2)."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    lines = ["From: <%s>" % from_uri, "To: <%s>" % to_uri]
    if imdn_id is not None or datetime is not None:
        lines.append("DateTime: %s" % (datetime or _now_3339()))
    if imdn_id is not None:
        lines.append("NS: imdn <%s>" % IMDN_URN)
        lines.append("imdn.Message-ID: %s" % imdn_id)
        if notify:
            lines.append("imdn.Disposition-Notification: %s" % notify)
    lines += ["%s: %s" % kv for kv in extra]
    mime = ["Content-Type: %s" % content_type]
    mime += ["%s: %s" % kv for kv in content_headers]
    mime.append("Content-Length: %d" % len(content))
    return ("\r\n".join(lines) + "\r\n\r\n" + "\r\n".join(mime) + "\r\n\r\n").encode() + content


class Cpim:
    """A parsed message/cpim body: headers (list of (name, value) as written), ns (prefix ->
    URN from NS headers), content_headers (Headers) and body (bytes)."""

    def __init__(self, headers, content_headers, body):
        self.headers, self.content_headers, self.body = headers, content_headers, body
        self.ns = {}
        for name, value in headers:
            if name.lower() == "ns":
                m = re.match(r"^\s*([^\s<]*)\s*<([^>]*)>", value)
                if m:
                    self.ns[m.group(1).lower()] = m.group(2).strip()

    def get(self, name, default=None):
        """A header by its written name (prefix included), case-insensitive."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    def get_ns(self, urn, name, default=None):
        """A header by namespace URN and local name, whatever prefix the sender chose."""
        for n, v in self.headers:
            prefix, dot, local = n.rpartition(".")
            if dot and self.ns.get(prefix.lower()) == urn and local.lower() == name.lower():
                return v
        return default

    @property
    def imdn_id(self):
        v = self.get_ns(IMDN_URN, "Message-ID")
        return v.strip() if v is not None else None

    @property
    def imdn_notify(self):
        """The requested disposition types, lower case, e.g. ['positive-delivery', ...]."""
        v = self.get_ns(IMDN_URN, "Disposition-Notification") or ""
        return [p.strip().lower() for p in v.split(",") if p.strip()]

    def content_type(self):
        v = self.content_headers.get("Content-Type")
        return v.split(";", 1)[0].strip().lower() if v else None

    def text(self):
        v = self.content_headers.get("Content-Type", "")
        return self.body.decode(parse_params(v.partition(";")[2]).get("charset") or "utf-8")


def parse_cpim(data):
    """Parses a message/cpim body (RFC 3862 3); raises ParseError."""
    def fields(block):
        out = []
        for line in re.split(r"\r?\n", block):
            if line[:1] in (" ", "\t") and out:
                out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise ParseError("bad CPIM header line %r" % line)
            out.append((name.strip(), value.strip()))
        return out

    m = re.search(rb"\r?\n\r?\n", data)
    if not m:
        raise ParseError("CPIM: no blank line after the message headers")
    try:
        mh = fields(data[:m.start()].decode("utf-8"))
    except UnicodeDecodeError:
        raise ParseError("CPIM headers are not UTF-8")
    rest = data[m.end():]
    m2 = re.search(rb"\r?\n\r?\n", rest)
    if not m2:
        raise ParseError("CPIM: no blank line after the MIME headers")
    ch = Headers(fields(rest[:m2.start()].decode("utf-8", "replace")))
    body = rest[m2.end():]
    cl = ch.get("Content-Length")
    if cl is not None:
        if not cl.isdigit() or int(cl) > len(body):
            raise ParseError("CPIM: Content-Length %r, %d bytes of content" % (cl, len(body)))
        body = body[:int(cl)]
    return Cpim(mh, ch, body)


# RFC 5438 7.2.1.1-7.2.1.3 and the schema of 9.3: the status values of each notification kind
IMDN_STATUS = {"delivery": ("delivered", "failed", "forbidden", "error"),
               "display": ("displayed", "forbidden", "error"),
               "processing": ("processed", "stored", "forbidden", "error")}


class Imdn:
    """A parsed message/imdn+xml document."""

    def __init__(self, message_id, kind, status, datetime=None, recipient_uri=None,
                 original_recipient_uri=None, subject=None):
        self.message_id, self.kind, self.status = message_id, kind, status
        self.datetime, self.recipient_uri = datetime, recipient_uri
        self.original_recipient_uri, self.subject = original_recipient_uri, subject

    def __repr__(self):
        return "Imdn(%r, %s, %s)" % (self.message_id, self.kind, self.status)


def build_imdn(message_id, status="delivered", kind="delivery", recipient_uri=None,
               original_recipient_uri=None, datetime=None):
    """A message/imdn+xml document (RFC 5438 7.2.1)."""
    if status not in IMDN_STATUS.get(kind, ()):
        raise ValueError("status %r is not one of %s notification" % (status, kind))
    root = ET.Element("imdn", xmlns=IMDN_XMLNS)
    ET.SubElement(root, "message-id").text = message_id
    ET.SubElement(root, "datetime").text = datetime or _now_3339()
    if recipient_uri:
        ET.SubElement(root, "recipient-uri").text = recipient_uri
    if original_recipient_uri:
        ET.SubElement(root, "original-recipient-uri").text = original_recipient_uri
    n = ET.SubElement(root, "%s-notification" % kind)
    ET.SubElement(ET.SubElement(n, "status"), status)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")


def parse_imdn(data):
    """Parses message/imdn+xml (RFC 5438 7.2.1); raises ParseError when it is not one."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ParseError("IMDN is not XML: %s" % e)
    ns = "{%s}" % IMDN_XMLNS
    if root.tag != ns + "imdn":
        raise ParseError("IMDN root is %s" % root.tag)

    def text(name):
        el = root.find(ns + name)
        return el.text.strip() if el is not None and el.text else None

    mid = text("message-id")
    if not mid:
        raise ParseError("IMDN without message-id")
    for kind, allowed in IMDN_STATUS.items():
        n = root.find("%s%s-notification" % (ns, kind))
        if n is None:
            continue
        st = n.find(ns + "status")
        if st is None or len(st) != 1:
            raise ParseError("IMDN %s-notification without exactly one status" % kind)
        status = st[0].tag[len(ns):] if st[0].tag.startswith(ns) else st[0].tag
        if status not in allowed:
            raise ParseError("IMDN %s status %r" % (kind, status))
        return Imdn(mid, kind, status, text("datetime"), text("recipient-uri"),
                    text("original-recipient-uri"), text("subject"))
    raise ParseError("IMDN without a delivery/display/processing notification")


# ---------------------------------------------------------------------------------------------
# the user agent

REASONS = {100: "Trying", 180: "Ringing", 200: "OK", 202: "Accepted", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           407: "Proxy Authentication Required", 408: "Request Timeout",
           413: "Request Entity Too Large", 415: "Unsupported Media Type",
           423: "Interval Too Brief", 480: "Temporarily Unavailable",
           481: "Call/Transaction Does Not Exist", 486: "Busy Here", 488: "Not Acceptable Here",
           489: "Bad Event", 500: "Server Internal Error", 501: "Not Implemented",
           503: "Service Unavailable", 603: "Decline"}

ALLOW = "MESSAGE, OPTIONS, NOTIFY, SUBSCRIBE"
_T0 = time.monotonic()
ACCEPT = "text/plain, message/cpim, message/imdn+xml, message/external-body"


class _ClientTx:
    def __init__(self, key, first_line):
        self.key, self.first_line = key, first_line
        self.responses = []
        self.final = None
        self.sends = []


class _ServerTx:
    def __init__(self, request):
        self.request = request
        self.to_tag = secrets.token_hex(4)
        self.response = None  # latest response bytes, resent on retransmissions (17.2.2)


class SipUA:
    """One SIP user agent for tests; see tests/sip/README.md.

    SipUA(host, port, transport, user, password, domain): host:port is the next hop (the
    server). UDP: one socket bound on 127.0.0.1. TCP: one connection to host:port, on which
    the server's requests come back too (RFC 3261 18.1.2, 18.2.2); with listen=True (the
    default when host is None) the UA instead accepts connections, for UA-to-UA tests.
    """

    def __init__(self, host=None, port=None, transport="udp", user="user", password="",
                 domain="localhost", *, listen=None, local_host="127.0.0.1", t1=0.5, t2=4.0,
                 timer_f=None, answer=200, prefer=PREFERENCE, user_agent="baton-sipua/1"):
        self.transport = transport.lower()
        if self.transport not in ("udp", "tcp"):
            raise ValueError("transport must be udp or tcp")
        self.user, self.password, self.domain = user, password, domain
        self.peer = (host, port) if host is not None else None
        self.local_host = local_host
        self.t1, self.t2 = t1, t2
        self.timer_f = timer_f if timer_f is not None else 64 * t1
        self.answer = answer
        self.prefer = prefer
        self.user_agent = user_agent
        self.log = []
        self.errors = []
        self.requests = []  # every request received (first copies), in order
        self._queue = []  # received requests not yet taken by expect_request
        self._raw = []  # every message (bytes) received; b"" when a TCP peer closed
        self._raw_pos = 0
        self._cond = threading.Condition()
        self._ctx = {}
        self._done = set()
        self._stx = {}
        self._stop = threading.Event()
        self._threads = []
        self._t0 = _T0  # one clock for every UA, so that their logs interleave
        self._reg_call_id = "%s@%s" % (secrets.token_hex(8), local_host)  # 10.2.4: one Call-ID
        self._reg_cseq = 0
        self._reg_contact = None
        self.conn = None
        self._all_conns = []
        self._closed = set()  # TCP connections that are gone
        self.closed_by_peer = threading.Event()
        if self.transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((local_host, 0))
            self.sock.settimeout(0.1)
            self.port = self.sock.getsockname()[1]
            self._start(self._udp_loop)
        else:
            listen = host is None if listen is None else listen
            if listen:
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.sock.bind((local_host, 0))
                self.sock.listen(8)
                self.sock.settimeout(0.1)
                self.port = self.sock.getsockname()[1]
                self._start(self._accept_loop)
            else:
                self.sock = None
                conn = socket.create_connection((host, port), timeout=5)
                self.port = conn.getsockname()[1]
                self._add_conn(conn)

    # -- properties -----------------------------------------------------------------------

    @property
    def aor(self):
        """The address of record, sip:user@domain."""
        return "sip:%s@%s" % (self.user, self.domain)

    @property
    def address(self):
        return (self.local_host, self.port)

    @property
    def contact_uri(self):
        uri = "sip:%s@%s:%d" % (self.user, self.local_host, self.port)
        return uri + ";transport=tcp" if self.transport == "tcp" else uri

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- logging --------------------------------------------------------------------------

    def _log(self, direction, addr, data):
        first = data.split(b"\r\n", 1)[0].split(b"\n", 1)[0][:200].decode("utf-8", "replace")
        m = re.search(rb"(?im)^(?:CSeq)[ \t]*:[ \t]*([^\r\n]*)", data)
        cseq = " (CSeq %s)" % m.group(1).decode("utf-8", "replace").strip() if m else ""
        peer = "%s:%s" % addr if addr else "?"
        entry = "%.3f %s %s %s%s" % (time.monotonic() - self._t0, direction, peer, first, cseq)
        with self._cond:
            self.log.append(entry)

    def _error(self, text):
        with self._cond:
            self.errors.append(text)
            self.log.append("%.3f ! %s" % (time.monotonic() - self._t0, text))

    def report(self, last=40):
        """The last log lines, for assertion messages."""
        with self._cond:
            return "\n".join(self.log[-last:])

    def check_clean(self):
        """Asserts the peer sent nothing that broke the RFCs (ua.errors is empty)."""
        assert not self.errors, "SIP errors seen by %s:\n%s\nlog:\n%s" % (
            self.aor, "\n".join(self.errors), self.report())

    # -- threads and sockets --------------------------------------------------------------

    def _start(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True,
                             name="sipua-%s-%s" % (self.user, fn.__name__))
        self._threads.append(t)
        t.start()

    def _udp_loop(self):
        while not self._stop.is_set():
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self._on_data(data, src, None, stream=False)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._add_conn(conn)

    def _add_conn(self, conn):
        conn.settimeout(0.1)
        with self._cond:
            self.conn = conn  # the latest connection carries the UA's own requests
            self._all_conns.append(conn)
        self._start(self._tcp_loop, conn)

    def _tcp_loop(self, conn):
        framer = StreamFramer()
        try:
            src = conn.getpeername()
        except OSError:
            return
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                self._log("<", src, b"(connection closed by peer)")
                with self._cond:
                    self._raw.append(b"")
                    self._closed.add(conn)
                    self._cond.notify_all()
                self.closed_by_peer.set()
                return
            try:
                msgs = framer.feed(data)
            except ParseError as e:
                self._error("TCP framing from %s:%s: %s" % (src + (e,)))
                with self._cond:
                    self._raw.append(framer.buf)
                    self._cond.notify_all()
                framer.buf = b""
                continue
            for p in framer.problems:
                self._error(p)
            framer.problems = []
            for m in msgs:
                self._on_data(m, src, conn, stream=True)
        with self._cond:
            self._closed.add(conn)
            self._cond.notify_all()

    def _send(self, data, dest=None, conn=None):
        if self.transport == "udp":
            dest = dest or self.peer
            if dest is None:
                raise AssertionError("%s: no destination to send to (no host:port)" % self.aor)
            self._log(">", dest, data)
            self.sock.sendto(data, dest)
        else:
            conn = conn or self.conn
            if conn is None:
                raise AssertionError("%s: no TCP connection to send on" % self.aor)
            try:
                addr = conn.getpeername()
            except OSError:
                addr = None
            self._log(">", addr, data)
            try:
                conn.sendall(data)
            except OSError as e:
                raise AssertionError("%s: sending on the TCP connection failed: %r\nlog:\n%s"
                                     % (self.aor, e, self.report()))

    def close(self):
        """Stops the threads and closes every socket."""
        self._stop.set()
        socks = [self.sock] if self.sock else []
        with self._cond:
            socks += list(self._all_conns)
        for s in socks:
            try:
                if s.type == socket.SOCK_STREAM and s is not self.sock:
                    s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(2)

    # -- receiving ------------------------------------------------------------------------

    def _on_data(self, data, src, conn, stream):
        try:
            self._handle(data, src, conn, stream)
        except Exception as e:  # noted, and the receive thread goes on
            self._error("handling a message from %s:%s failed: %r" % (src + (e,)))

    def _handle(self, data, src, conn, stream):
        self._log("<", src, data)
        with self._cond:
            self._raw.append(data)
            self._cond.notify_all()
        if not data.strip(b"\r\n"):
            return  # a keep-alive datagram (RFC 5626 4.4.1)
        try:
            msg = parse_message(data, src, "TCP" if stream else "UDP", conn, stream)
        except ParseError as e:
            self._error("unusable message from %s:%s: %s" % (src + (e,)))
            return
        for p in msg.problems:
            self._error("%s: %s" % (msg.first_line, p))
        if msg.is_request:
            self._on_request(msg)
        else:
            self._on_response(msg)

    def _on_response(self, msg):
        vias = msg.headers.getall("Via")
        if len(vias) != 1:  # 8.1.3.3
            self._error("%s with %d Via values dropped (RFC 3261 8.1.3.3)"
                        % (msg.first_line, len(vias)))
            return
        try:
            via = parse_via(vias[0])
        except ParseError as e:
            self._error(str(e))
            return
        key = (via.branch, msg.cseq()[1])
        with self._cond:
            tx = self._ctx.get(key)
            if tx is None:
                if key in self._done:
                    self.log.append("    (retransmitted or late response, ignored)")
                else:
                    self.errors.append("response matching no transaction: %s (branch %s)"
                                       % (msg.first_line, via.branch))
                return
            tx.responses.append(msg)
            if msg.status >= 200:
                tx.final = msg
                del self._ctx[key]
                self._done.add(key)
            self._cond.notify_all()

    def _tx_key_server(self, req):
        """17.2.3: branch + sent-by + method (ACK matches INVITE; CANCEL its own)."""
        via = parse_via(req.headers.getall("Via")[0])
        method = "INVITE" if req.method == "ACK" else req.method
        if via.branch and via.branch.startswith("z9hG4bK"):
            return (via.branch, via.sent_by, method)
        return (req.call_id, req.headers.get("CSeq"), req.nameaddr("From").tag, via.sent_by)

    def _on_request(self, req):
        try:
            key = self._tx_key_server(req)
        except ParseError as e:
            self._error("%s: %s" % (req.first_line, e))
            return
        req.tx_key = key
        if req.method == "ACK":
            with self._cond:
                self.requests.append(req)
                self._queue.append(req)
                self._cond.notify_all()
            return
        with self._cond:
            st = self._stx.get(key)
            new = st is None
            if st is not None:
                st.request.copies += 1
                resend = st.response
                first = st.request
            else:
                st = _ServerTx(req)
                self._stx[key] = st
                resend, first = None, req
                # Recorded before it is answered: the peer may look once it has the answer.
                self.requests.append(req)
        if resend is not None:
            self._send(resend, self._reply_addr(first), first.conn)
            return
        try:
            decision = self._decide(first)
        except Exception as e:  # a test's policy failing must not kill the receive thread
            self._error("answer policy raised %r on %s" % (e, first.first_line))
            decision = (500, "Answer Policy Failed", None)
        if decision is not None:
            self.respond(first, *decision)
        # Queued only once answered: a test that closes the UA right after expect_request
        # must not race the automatic answer. A retransmission is not queued again.
        if not new:
            return
        with self._cond:
            self._queue.append(req)
            self._cond.notify_all()

    def _decide(self, req):
        pol = self.answer
        if callable(pol):
            pol = pol(req)
        if pol is None:
            return None
        if isinstance(pol, int):
            status, reason, headers = pol, None, None
        elif len(pol) == 2 and not isinstance(pol[1], str):
            status, reason, headers = pol[0], None, pol[1]
        elif len(pol) == 2:
            status, reason, headers = pol[0], pol[1], None
        else:
            status, reason, headers = pol
        if req.method == "INVITE" and 200 <= status < 300:
            # no dialogs here: an INVITE cannot be accepted (this UA is non-INVITE only)
            status, reason, headers = 405, None, {"Allow": ALLOW}
        elif req.method == "OPTIONS" and 200 <= status < 300 and headers is None:
            headers = {"Allow": ALLOW, "Accept": ACCEPT}
        return status, reason, headers

    def _reply_addr(self, req):
        """Where a UDP response goes (RFC 3261 18.2.2, RFC 3581 4): the source address when
        the Via has rport, else the source IP (the 'received' address) and sent-by port."""
        if self.transport == "tcp":
            return None
        via = parse_via(req.headers.getall("Via")[0])
        if "rport" in via.params or "received" in via.params or via.host != req.source[0]:
            port = req.source[1] if "rport" in via.params else (via.port or 5060)
            return (req.source[0], port)
        return (via.host, via.port or 5060)

    def respond(self, req, status, reason=None, headers=None, body=b"", content_type=None):
        """Sends a response to a received request (8.2.6): its Via (the top one with received
        and rport filled, 18.2.1 / RFC 3581 4), From, To with a tag, Call-ID and CSeq. A final
        response is kept and resent when the request is retransmitted (17.2.2)."""
        with self._cond:
            st = self._stx.get(req.tx_key)
        vias = req.headers.getall("Via")
        top = parse_via(vias[0])
        if self.transport == "udp":
            extra = ""
            if top.host != req.source[0] and "received" not in top.params:
                extra += ";received=%s" % req.source[0]
            v0 = vias[0]
            if "rport" in top.params and top.params["rport"] is None:
                v0 = re.sub(r";\s*rport(?=\s*(;|$))", ";rport=%d" % req.source[1], v0, count=1)
            vias = [v0 + extra] + vias[1:]
        to = req.headers.get("To")
        if status > 100 and parse_nameaddr(to).tag is None:
            to += ";tag=%s" % (st.to_tag if st else secrets.token_hex(4))
        lines = ["SIP/2.0 %d %s" % (status, reason or REASONS.get(status, "Unknown"))]
        lines += ["Via: %s" % v for v in vias]
        lines += ["From: %s" % req.headers.get("From"), "To: %s" % to,
                  "Call-ID: %s" % req.call_id, "CSeq: %s" % req.headers.get("CSeq")]
        for name, value in Headers(headers or ()):
            lines.append("%s: %s" % (name, value))
        lines.append("Server: %s" % self.user_agent)
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body:
            lines.append("Content-Type: %s" % (content_type or "text/plain"))
        lines.append("Content-Length: %d" % len(body))
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
        if status >= 200:
            req.response = data
        if st is not None and req.response in (None, data):
            st.response = data  # 17.2.2: the latest response is resent to a retransmission
        self._send(data, self._reply_addr(req), req.conn)
        return data

    # -- waiting for requests -------------------------------------------------------------

    def _matches(self, r, method, pred):
        return (method is None or r.method == method) and (pred is None or pred(r))

    def expect_request(self, method="MESSAGE", timeout=5, pred=None):
        """The next received request with that method (None: any) for which pred(request) is
        true; taken from the queue. AssertionError after timeout, listing what came instead."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, r in enumerate(self._queue):
                    if self._matches(r, method, pred):
                        del self._queue[i]
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            others = [r.first_line for r in self._queue]
        raise AssertionError("%s: no %s request%s within %.1fs; queued instead: %s\nlog:\n%s"
                             % (self.aor, method or "", " matching the predicate" if pred else "",
                                timeout, others or "nothing", self.report()))

    def no_request(self, timeout=1.0, method=None, pred=None):
        """Asserts that no request (with that method / matching pred) is queued or arrives
        within timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self._queue if self._matches(r, method, pred)]
                if got:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(left)
        raise AssertionError("%s: expected no %srequest, got %s\nlog:\n%s"
                             % (self.aor, method + " " if method else "",
                                [r.first_line for r in got], self.report()))

    def pending_requests(self):
        with self._cond:
            return list(self._queue)

    # -- client transactions --------------------------------------------------------------

    def _build(self, method, uri, branch, call_id, cseq, from_tag, to, headers, body,
               content_type):
        transport = "UDP" if self.transport == "udp" else "TCP"
        via = "SIP/2.0/%s %s:%d;branch=%s" % (transport, self.local_host, self.port, branch)
        if self.transport == "udp":
            via += ";rport"  # RFC 3581 3
        hdrs = Headers(headers or ())
        lines = ["%s %s SIP/2.0" % (method, uri), "Via: %s" % via, "Max-Forwards: 70",
                 "From: <%s>;tag=%s" % (self.aor, from_tag),
                 "To: %s" % (to if "<" in to else "<%s>" % to),
                 "Call-ID: %s" % call_id, "CSeq: %d %s" % (cseq, method)]
        for name, value in hdrs:
            lines.append("%s: %s" % (name, value))
        if "User-Agent" not in hdrs:
            lines.append("User-Agent: %s" % self.user_agent)
        if body and content_type:
            lines.append("Content-Type: %s" % content_type)
        lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body

    def _run_tx(self, method, data, dest, timeout):
        """Runs one non-INVITE client transaction (17.1.2): over UDP the request is resent
        after T1, doubling to T2 (Timer E; T2 straight away once a provisional response came),
        until a final response or Timer F (64*T1)."""
        branch = re.search(rb"branch=([^;\r\n]+)", data).group(1).decode()
        key = (branch, method)
        tx = _ClientTx(key, data.split(b"\r\n", 1)[0].decode("utf-8", "replace"))
        timer_f = timeout if timeout is not None else self.timer_f
        with self._cond:
            self._ctx[key] = tx
            conn = self.conn
        start = time.monotonic()
        deadline = start + timer_f
        interval = self.t1
        tx.sends.append(start)
        self._send(data, dest)
        next_send = start + interval
        with self._cond:
            while tx.final is None:
                now = time.monotonic()
                if now >= deadline or conn in self._closed:
                    break
                if self.transport == "udp" and now >= next_send:
                    interval = self.t2 if tx.responses else min(2 * interval, self.t2)
                    next_send = now + interval
                    tx.sends.append(now)
                    self._cond.release()
                    try:
                        self._send(data, dest)
                    finally:
                        self._cond.acquire()
                    continue
                wake = deadline if self.transport == "tcp" else min(deadline, next_send)
                self._cond.wait(max(0.0, wake - now))
            if tx.final is None:
                self._ctx.pop(key, None)
                self._done.add(key)
        if tx.final is None:
            raise AssertionError(
                "%s: no final response to %s %s (%d cop%s sent over %s; "
                "provisional: %s)\nlog:\n%s"
                % (self.aor, tx.first_line, "before the connection closed"
                   if conn in self._closed else "within %.1fs" % timer_f, len(tx.sends),
                   "y" if len(tx.sends) == 1 else "ies", self.transport.upper(),
                   [r.first_line for r in tx.responses] or "none", self.report()))
        tx.final.provisional = tx.responses[:-1]
        tx.final.sends = tx.sends
        return tx.final

    def request(self, method, uri, headers=None, body=b"", content_type=None, to=None,
                call_id=None, cseq=None, auth=True, dest=None, timeout=None):
        """Sends a non-INVITE request and returns its final Response; a 401/407 digest
        challenge is answered once (twice when the second says stale=true) with credentials,
        in a new transaction with CSeq + 1 and the same Call-ID (RFC 3261 22.2).
        AssertionError when no final response comes within Timer F (or timeout)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        call_id = call_id or "%s@%s" % (secrets.token_hex(8), self.local_host)
        cseq = cseq if cseq is not None else 1
        from_tag = secrets.token_hex(4)
        hdrs = Headers(headers or ())
        tries = 0
        while True:
            branch = "z9hG4bK" + secrets.token_hex(8)
            data = self._build(method, uri, branch, call_id, cseq, from_tag, to or uri, hdrs,
                               body, content_type)
            resp = self._run_tx(method, data, dest, timeout)
            resp.cseq_used = cseq
            if resp.status not in (401, 407) or not auth:
                return resp
            chal = choose_challenge(resp.challenges(), self.prefer)
            if chal is None:
                return resp
            stale = (chal.get("stale") or "").lower() == "true"
            if not (tries == 0 or (tries == 1 and stale)):
                return resp
            tries += 1
            name = "Proxy-Authorization" if resp.status == 407 else "Authorization"
            hdrs.remove("Authorization")
            hdrs.remove("Proxy-Authorization")
            hdrs.add(name, authorization(chal, self.user, self.password, method, uri,
                                         body=body))
            cseq += 1

    def register(self, expires=3600, contact=None, headers=None, timeout=None):
        """REGISTER (RFC 3261 10.2) the UA's contact (or contact: a Contact value) for
        expires seconds; the same Call-ID and increasing CSeq for every REGISTER of this UA
        (10.2.4). Returns the final response."""
        if contact is None:
            contact = "<%s>" % self.contact_uri
        self._reg_contact = contact
        hdrs = Headers(headers or ())
        hdrs.add("Contact", contact)
        hdrs.add("Expires", str(expires))
        resp = self.request("REGISTER", "sip:%s" % self.domain, headers=hdrs, to=self.aor,
                            call_id=self._reg_call_id, cseq=self._reg_cseq + 1,
                            timeout=timeout)
        self._reg_cseq = resp.cseq_used
        return resp

    def unregister(self, all_contacts=False, timeout=None):
        """Removes this UA's binding (Expires: 0), or with all_contacts every binding of the
        AoR (Contact: *, 10.2.2)."""
        contact = "*" if all_contacts else (self._reg_contact or "<%s>" % self.contact_uri)
        return self.register(expires=0, contact=contact, timeout=timeout)

    def message(self, to_uri, body, content_type="text/plain", disposition=None, headers=None,
                imdn=False, dest=None, timeout=None):
        """An out-of-dialog MESSAGE (RFC 3428 4) to to_uri; returns the final Response.
        disposition: a Content-Disposition value ('instant', 'store&fwd', ...). imdn=True (or
        the disposition types wanted, as a string) wraps the body in message/cpim with an
        RFC 5438 request; the response's imdn_id is the imdn.Message-ID used."""
        if isinstance(body, str):
            body = body.encode("utf-8")
            if content_type.startswith("text/") and "charset" not in content_type:
                content_type += ";charset=UTF-8"
        imdn_id = None
        if imdn:
            imdn_id = new_message_id()
            notify = imdn if isinstance(imdn, str) else "positive-delivery, negative-delivery"
            body = build_cpim(self.aor, to_uri, body, content_type, imdn_id, notify)
            content_type = "message/cpim"
        hdrs = Headers(headers or ())
        if disposition is not None:
            hdrs.set("Content-Disposition", disposition)
        resp = self.request("MESSAGE", to_uri, headers=hdrs, body=body,
                            content_type=content_type, dest=dest, timeout=timeout)
        resp.imdn_id = imdn_id
        return resp

    def options(self, uri=None, dest=None, timeout=None):
        """OPTIONS (RFC 3261 11) to uri (default sip:domain); the final Response."""
        return self.request("OPTIONS", uri or "sip:%s" % self.domain,
                            headers={"Accept": ACCEPT}, dest=dest, timeout=timeout)

    def subscribe(self, uri, event, expires=3600, accept=None, dest=None, timeout=None):
        """SUBSCRIBE (RFC 6665 4.1.2) to uri for event; the final Response. NOTIFYs arrive
        as requests (expect_request('NOTIFY'))."""
        hdrs = {"Event": event, "Expires": str(expires), "Contact": "<%s>" % self.contact_uri}
        if accept:
            hdrs["Accept"] = accept
        return self.request("SUBSCRIBE", uri, headers=hdrs, dest=dest, timeout=timeout)

    # -- raw access for hostile tests -----------------------------------------------------

    def raw_send(self, data, dest=None):
        """Sends bytes as they are (UDP: to host:port or dest; TCP: on the connection);
        raw_recv then returns what arrives after this call."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        with self._cond:
            self._raw_pos = len(self._raw)
        if self.transport == "udp":
            dest = dest or self.peer
            self._log(">", dest, data)
            self.sock.sendto(data, dest)
        else:
            self._send(data)

    def raw_recv(self, timeout=5):
        """The next message received (bytes, as framed; b'' when the TCP peer closed) since
        the last raw_send or raw_recv; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._raw) <= self._raw_pos:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: nothing received within %.1fs\nlog:\n%s"
                                         % (self.aor, timeout, self.report()))
                self._cond.wait(left)
            data = self._raw[self._raw_pos]
            self._raw_pos += 1
            return data
