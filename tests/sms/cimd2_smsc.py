#!/usr/bin/python3
"""CIMD2 SMSC simulator: test equipment for baton-smsbuf, written from the Nokia "CIMD Interface
Specification" (CIMD2) and driven over the HTTP/JSON control API of tests/sms/README.md.

Central invariant: every request of a client is answered exactly once, after `submit_delay_ms`,
and a request that arrives while `--window` earlier requests of the same connection are still
unanswered counts one violation; the SMSC's own operations (deliver message 20, deliver status
report 23) go out one at a time, each waiting for its response.  Every protocol mistake of a
client is recorded as a line in `errors` of GET /state.

Protocol summary (CIMD spec, ch. 4 "Packet format", ch. 5 "Operations", ch. 6 "Parameters"):
  <STX>ZZ:NNN<TAB>PPP:value<TAB>...PPP:value<TAB>[CC]<ETX>
  ZZ   operation code; the response to operation ZZ is ZZ+50 with the request's packet number,
       98 = general error response, 99 = nack.
  NNN  packet number 000-255: odd (001, 003, ... 255, 001, ...) for operations the application
       starts, even (000, 002, ... 254, 000, ...) for operations the SMSC starts.
  CC   optional checksum: two hex digits, the sum modulo 256 of the bytes from STX up to and
       including the TAB before CC.
Error codes (parameter 900) from the spec's error code list (ch. 7.3, the same list at
https://www.tops.com.pl/en/smscc/manual/errors/cimd2.html): 1 unexpected operation, 2 syntax
error, 3 unsupported parameter, 8 parameter formatting error, 100 invalid login, 103 login
refused by MC, 300 incorrect destination address, 301 incorrect number of destination
addresses, 302 syntax error in user data parameter, 303 incorrect bin/head/normal user data
parameter combination, 304 incorrect data coding scheme parameter usage, 306 incorrect
originator address usage, 310 incorrect status report request parameter usage.
"""

import argparse
import asyncio
import json
import signal
import sys
import time

STX, ETX, TAB = 0x02, 0x03, 0x09

OP_LOGIN, OP_LOGOUT, OP_SUBMIT, OP_DELIVER, OP_DELIVER_SR, OP_ALIVE = 1, 2, 3, 20, 23, 40
OP_GENERAL_ERROR, OP_NACK = 98, 99
OP_NAMES = {1: "login", 2: "logout", 3: "submit", 4: "enquire message status",
            5: "delivery request", 6: "cancel", 8: "set", 9: "get", 20: "deliver message",
            23: "deliver status report", 40: "alive", 98: "general error response", 99: "nack"}

# Parameter numbers (spec ch. 6, "Parameter list").
P_USER, P_PASSWORD, P_SUBADDR, P_WINDOW = 10, 11, 12, 19
P_DEST, P_ORIG, P_ALPHA_ORIG = 21, 23, 27
P_DCS, P_UDH, P_UD, P_UD_BIN = 30, 32, 33, 34
P_SRR, P_SCTS, P_STATUS, P_STATUS_ERR, P_DISCHARGE = 56, 60, 61, 62, 63
P_ERROR, P_ERROR_TEXT = 900, 901

E_UNEXPECTED, E_SYNTAX, E_UNSUPPORTED, E_SYSTEM, E_FORMAT = 1, 2, 3, 6, 8
E_CONGESTION = 10  # "Temporary congestion error" (CIMD2 7.3)
E_INVALID_LOGIN, E_LOGIN_REFUSED = 100, 103
E_DEST, E_NDEST, E_UD_SYNTAX, E_UD_COMBO, E_DCS, E_ORIG, E_SRR = 300, 301, 302, 303, 304, 306, 310
ERROR_TEXTS = {1: "Unexpected operation", 2: "Syntax error", 3: "Unsupported parameter error",
               6: "General system error",
               8: "Parameter formatting error", 100: "Invalid login",
               103: "Login refused by MC", 300: "Incorrect destination address",
               301: "Incorrect number of destination addresses",
               302: "Syntax error in user data parameter",
               303: "Incorrect bin/head/normal user data parameter combination",
               304: "Incorrect data coding scheme parameter usage",
               306: "Incorrect originator address usage",
               310: "Incorrect status report request parameter usage"}

# Status report request (056) bits and status codes (061) used in deliver status report.
SRR_FAILED, SRR_DELIVERED = 4, 8
STATUS_DELIVERED, STATUS_FAILED = 4, 3  # 061: 4 delivery successful, 3 delivery failed

# GSM 03.38 default alphabet, code 0x00-0x7F; 0x1B is the escape to the extension table.
GSM_BASE = ("@£$¥èéùìòÇ\nØø\rÅå"
            "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
            " !\"#¤%&'()*+,-./"
            "0123456789:;<=>?"
            "¡ABCDEFGHIJKLMNO"
            "PQRSTUVWXYZÄÖÑÜ§"
            "¿abcdefghijklmno"
            "pqrstuvwxyzäöñüà")
assert len(GSM_BASE) == 128
GSM_CODE = {c: i for i, c in enumerate(GSM_BASE)}
GSM_EXT = {0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\", 0x3C: "[", 0x3D: "~",
           0x3E: "]", 0x40: "|", 0x65: "€"}
GSM_EXT_CODE = {c: k for k, c in GSM_EXT.items()}

# CIMD "special combination characters" of the default character conversion (spec ch. 8.1,
# table "Default character conversion"): "_" followed by two ASCII characters selects one
# character of the GSM default alphabet.  "_XX" is the escape to the GSM extension table; the
# character after it (itself possibly a combination) names the extension code, e.g. "_XX(" is
# "{", "_XX_!!" is "|", "_XXe" is the euro sign (CIMD FAQ, "GSM alphabet extension table").
# Sources: the spec's User data examples ("_Oa_L-$_Y-_e`_e'_u`_i`_o`_C," over a 7-bit link),
# the FAQ's extension list (_!! and _gl inside it), and for the rest of the table a published
# CIMD2 client's copy of it (Kannel smsc_cimd2.c); the table page of the spec itself was not
# readable here.
COMBOS = {"@": "Oa", "£": "L-", "¥": "Y-", "è": "e`", "é": "e'", "ù": "u`", "ì": "i`",
          "ò": "o`", "Ç": "C,", "Ø": "O/", "ø": "o/", "Å": "A*", "å": "a*", "Δ": "gd",
          "_": "--", "Φ": "gf", "Γ": "gg", "Λ": "gl", "Ω": "go", "Π": "gp", "Ψ": "gi",
          "Σ": "gs", "Θ": "gt", "Ξ": "gx", "\x1b": "XX", "Æ": "AE", "æ": "ae", "ß": "ss",
          "É": "E'", '"': "qq", "¤": "ox", "¡": "!!", "Ä": 'A"', "Ö": 'O"', "Ñ": "N~",
          "Ü": 'U"', "§": "so", "¿": "??", "ä": 'a"', "ö": 'o"', "ñ": "n~", "ü": 'u"',
          "à": "a`"}
COMBO_CHAR = {v: k for k, v in COMBOS.items()}
# Bytes of a User data (033) value that stand for themselves: the printable ASCII characters
# that are in the GSM alphabet (not "_", which introduces a combination), CR, LF, and over an
# 8-bit link the ISO-8859-1 characters of the GSM alphabet (spec Example "Default character
# conversion over 8-bit wide link").  The ASCII characters [ \ ] ^ { | } ~ ` are not GSM base
# characters; they must be sent as _XX combinations (or are not in GSM at all).
RAW_OK = set(c for c in GSM_BASE if c not in "_\x1b") - set("\f")


class UserDataError(Exception):
    """A User data (033) value that does not follow the character conversion."""


def decode_user_data(value):
    """Decodes a CIMD User data value (a str of Latin-1 code points) into Unicode text.

    Raises UserDataError on a byte or combination the default conversion does not define.
    """
    out = []
    i = 0

    def unit(i):
        if value[i] == "_":
            combo = value[i + 1:i + 3]
            if combo not in COMBO_CHAR:
                raise UserDataError("unknown special combination %r at %d" % ("_" + combo, i))
            return COMBO_CHAR[combo], i + 3
        if value[i] not in RAW_OK:
            raise UserDataError("character %r (0x%02X) at %d is not in the default character"
                                " conversion" % (value[i], ord(value[i]), i))
        return value[i], i + 1

    while i < len(value):
        ch, i = unit(i)
        if ch != "\x1b":
            out.append(ch)
            continue
        if i >= len(value):
            raise UserDataError("_XX (extension escape) at the end of the user data")
        base, i = unit(i)
        ext = GSM_EXT.get(GSM_CODE[base])
        if ext is None:
            raise UserDataError("_XX followed by %r, which is no extension character" % base)
        out.append(ext)
    return "".join(out)


def _encode_base(ch):
    """One GSM base character as CIMD User data (a combination where the spec has one)."""
    if ch in COMBOS and ch != '"':
        return "_" + COMBOS[ch]
    return ch


def encode_user_data(text):
    """Encodes GSM-encodable Unicode text as a CIMD User data value (7-bit safe)."""
    out = []
    for ch in text:
        if ch in GSM_EXT_CODE:
            out.append("_XX" + _encode_base(GSM_BASE[GSM_EXT_CODE[ch]]))
        else:
            out.append(_encode_base(ch))
    return "".join(out)


def gsm_septets(text):
    """Septets `text` takes in the GSM default alphabet, or None if it is not encodable."""
    n = 0
    for ch in text:
        if ch in GSM_CODE and ch != "\x1b":
            n += 1
        elif ch in GSM_EXT_CODE:
            n += 2
        else:
            return None
    return n


def split_gsm(text, limit):
    """Splits GSM text into pieces of at most `limit` septets (never inside an escape pair)."""
    parts, cur, n = [], [], 0
    for ch in text:
        w = 2 if ch in GSM_EXT_CODE else 1
        if n + w > limit:
            parts.append("".join(cur))
            cur, n = [], 0
        cur.append(ch)
        n += w
    parts.append("".join(cur))
    return parts


def split_ucs2(data, limit_units):
    """Splits UTF-16BE bytes into pieces of at most `limit_units` units (pairs kept whole)."""
    parts, i = [], 0
    while i < len(data):
        j = min(len(data), i + 2 * limit_units)
        if j < len(data) and 0xD8 <= data[j - 2] <= 0xDB:
            j -= 2  # do not split a surrogate pair
        parts.append(data[i:j])
        i = j
    return parts


def dcs_alphabet(dcs):
    """Alphabet of a GSM 03.38 data coding scheme: 'gsm', '8bit', 'ucs2' or None (invalid)."""
    group = dcs & 0xF0
    if group < 0x80:  # general data coding (00xx) and automatic deletion group (01xx)
        if dcs & 0x20:
            return None  # compressed: not supported
        return {0: "gsm", 1: "8bit", 2: "ucs2", 3: None}[(dcs >> 2) & 3]
    if group in (0xC0, 0xD0):
        return "gsm"
    if group == 0xE0:
        return "ucs2"
    if group == 0xF0:
        return "8bit" if dcs & 0x04 else "gsm"
    return None


def is_address(s):
    """An address parameter: up to 20 digits, optionally with a leading '+' (spec ch. 6)."""
    digits = s[1:] if s.startswith("+") else s
    return 0 < len(digits) <= 20 and digits.isdigit()


def parse_udh(udh):
    """Concatenation info (ref, total, seq) from a user data header, or None if it has none.

    Raises ValueError on a malformed header.
    """
    if not udh or udh[0] != len(udh) - 1:
        raise ValueError("UDHL does not match the header length")
    i, found = 1, None
    while i < len(udh):
        if i + 1 >= len(udh):
            raise ValueError("truncated information element")
        iei, iel = udh[i], udh[i + 1]
        body = udh[i + 2:i + 2 + iel]
        if len(body) != iel:
            raise ValueError("truncated information element")
        if iei == 0x00 and iel == 3:
            found = (body[0], body[1], body[2])
        elif iei == 0x08 and iel == 4:
            found = ((body[0] << 8) | body[1], body[2], body[3])
        i += 2 + iel
    if found and (found[1] == 0 or found[2] == 0 or found[2] > found[1]):
        raise ValueError("concatenation element with part %d of %d" % (found[2], found[1]))
    return found


def checksum(data):
    """CIMD checksum of the bytes from STX through the last TAB: two upper-case hex digits."""
    return b"%02X" % (sum(data) & 0xFF)


def build_packet(op, seq, params, with_checksum):
    """Encodes one packet; params is a list of (number, str) with str of Latin-1 points."""
    body = bytearray(b"\x02%02d:%03d\t" % (op, seq))
    for num, val in params:
        body += b"%03d:" % num + val.encode("latin-1") + b"\t"
    if with_checksum:
        body += checksum(body)
    body.append(ETX)
    return bytes(body)


class PacketError(Exception):
    """A packet that cannot be parsed; `op` and `seq` are set when the header was readable."""

    def __init__(self, msg, op=None, seq=None, nack=False):
        super().__init__(msg)
        self.op, self.seq, self.nack = op, seq, nack


def parse_packet(raw):
    """Parses the bytes between STX and ETX (both excluded).

    Returns (op, seq, params, had_checksum); params is a list of (number, str).  Raises
    PacketError; its `nack` is set for a wrong checksum (the spec answers those with a nack).
    """
    if len(raw) < 7 or raw[2:3] != b":" or raw[6:7] != b"\t":
        raise PacketError("malformed header %r" % raw[:8])
    if not (raw[0:2].isdigit() and raw[3:6].isdigit()):
        raise PacketError("malformed header %r" % raw[:8])
    op, seq = int(raw[0:2]), int(raw[3:6])
    if seq > 255:
        raise PacketError("packet number %d out of range 000-255" % seq, op, seq)
    last_tab = raw.rfind(b"\t")
    tail = raw[last_tab + 1:]
    had_checksum = False
    if tail:
        if len(tail) != 2 or not all(c in b"0123456789ABCDEFabcdef" for c in tail):
            raise PacketError("garbage %r after the last TAB (checksum must be two hex digits)"
                              % tail, op, seq)
        want = checksum(b"\x02" + raw[:last_tab + 1])
        if tail.upper() != want:
            raise PacketError("checksum %s, computed %s" % (tail.decode(), want.decode()),
                              op, seq, nack=True)
        had_checksum = True
    params = []
    fields = raw[7:last_tab + 1].split(b"\t")[:-1] if last_tab >= 7 else []
    for f in fields:
        if len(f) < 4 or f[3:4] != b":" or not f[0:3].isdigit():
            raise PacketError("malformed parameter %r" % f[:20], op, seq)
        if STX in f or ETX in f:
            raise PacketError("STX/ETX inside parameter %r" % f[:20], op, seq)
        params.append((int(f[0:3]), f[4:].decode("latin-1")))
    return op, seq, params, had_checksum


def scts_str(t):
    """Service centre time stamp format YYMMDDhhmmss (local time)."""
    return time.strftime("%y%m%d%H%M%S", time.localtime(t))


def log(msg):
    """One line on stderr."""
    sys.stderr.write("cimd2_smsc: %s\n" % msg)
    sys.stderr.flush()


class Conn:
    """One client connection: its login state, packet numbering and outstanding requests."""

    _next_id = 1

    def __init__(self, sim, reader, writer):
        self.sim, self.reader, self.writer = sim, reader, writer
        self.id = Conn._next_id
        Conn._next_id += 1
        self.logged_in = False
        self.user = None
        self.expect_seq = 1          # next packet number of a client-started operation
        self.smsc_seq = 0            # next packet number of an SMSC-started operation
        self.outstanding = 0         # requests received and not yet answered
        self.checksums = False       # answer with checksums when the client uses them
        self.pending = None          # (op, seq, future) of the SMSC operation in flight
        self.closed = False

    def err(self, msg):
        """Records a protocol mistake of this client."""
        self.sim.error("conn %d: %s" % (self.id, msg))

    def send(self, op, seq, params):
        """Writes one packet (no-op on a closed connection)."""
        if self.closed:
            return
        log("conn %d <- %02d:%03d %s" % (self.id, op, seq,
                                         " ".join("%03d:%s" % p for p in params)[:200]))
        self.writer.write(build_packet(op, seq, params, self.checksums))

    def close(self):
        """Closes the connection; a pending SMSC operation fails."""
        if self.closed:
            return
        self.closed = True
        try:
            self.writer.close()
        except Exception:
            pass
        if self.pending and not self.pending[2].done():
            self.pending[2].set_result(None)
        self.sim.conn_closed(self)

    def next_smsc_seq(self):
        """The next even packet number for an SMSC-started operation."""
        s = self.smsc_seq
        self.smsc_seq = (self.smsc_seq + 2) % 256
        return s

    async def run(self):
        """Reads packets until EOF."""
        buf = bytearray()
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                buf += data
                while True:
                    start = buf.find(bytes([STX]))
                    if start < 0:
                        if buf.strip(b"\r\n"):
                            self.err("bytes outside a packet: %r" % bytes(buf[:40]))
                        buf.clear()
                        break
                    if start > 0:
                        junk = bytes(buf[:start])
                        if junk.strip(b"\r\n"):
                            self.err("bytes outside a packet: %r" % junk[:40])
                        del buf[:start]
                    end = buf.find(bytes([ETX]))
                    if end < 0:
                        if len(buf) > 65536:
                            self.err("packet longer than 64 KiB without ETX; closing")
                            self.close()
                        break
                    raw = bytes(buf[1:end])
                    del buf[:end + 1]
                    if STX in raw:
                        self.err("STX inside a packet: %r" % raw[:40])
                        raw = raw[raw.rfind(STX) + 1:]
                    self.on_packet(raw)
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def on_packet(self, raw):
        """Handles one packet from the client."""
        try:
            op, seq, params, had_ck = parse_packet(raw)
        except PacketError as e:
            self.err("bad packet: %s" % e)
            if e.nack and e.seq is not None:
                self.send(OP_NACK, e.seq, [])
            elif e.op is not None and e.seq is not None:
                self.send(OP_GENERAL_ERROR, e.seq, self.error_params(E_SYNTAX))
            return
        self.checksums = had_ck
        log("conn %d -> %02d:%03d %s" % (self.id, op, seq,
                                         " ".join("%03d:%s" % p for p in params)[:200]))
        if op >= 50:
            self.on_response(op, seq, params)
            return
        if seq % 2 == 0:
            self.err("request %02d with even packet number %03d (the application's are odd)"
                     % (op, seq))
            self.send(OP_NACK, seq, [])
            return
        if seq != self.expect_seq:
            self.err("request %02d with packet number %03d, expected %03d"
                     % (op, seq, self.expect_seq))
            self.send(OP_NACK, seq, [])
            self.expect_seq = seq  # a retransmission with this number is accepted
            return
        self.expect_seq = 1 if seq == 255 else seq + 2
        self.on_request(op, seq, params)

    def error_params(self, code):
        """Parameters of an error answer: error code (900) and error text (901)."""
        return [(P_ERROR, str(code)), (P_ERROR_TEXT, ERROR_TEXTS.get(code, "Error"))]

    def on_request(self, op, seq, params):
        """Window accounting, then the answer after submit_delay_ms."""
        sim = self.sim
        if self.outstanding >= sim.window:
            sim.violations += 1
            self.err("window violation: request %02d:%03d while %d unanswered (window %d)"
                     % (op, seq, self.outstanding, sim.window))
        self.outstanding += 1
        sim.max_outstanding = max(sim.max_outstanding, self.outstanding)
        try:
            answer, after = self.handle(op, seq, params)
        except Exception as e:  # a bug here must not kill the simulator
            self.err("internal error on %02d:%03d: %r" % (op, seq, e))
            answer, after = (OP_GENERAL_ERROR, self.error_params(E_SYSTEM)), None
        delay = sim.config["submit_delay_ms"] / 1000.0
        asyncio.get_running_loop().call_later(delay, self.answer, seq, answer, after)

    def answer(self, seq, answer, after):
        """Sends a delayed answer and runs its follow-up."""
        self.outstanding -= 1
        rop, rparams = answer
        self.send(rop, seq, rparams)
        if after:
            after()

    def handle(self, op, seq, params):
        """Validates one request; returns ((op, params) of the answer, follow-up or None)."""
        sim = self.sim
        pmap = {}
        for num, val in params:
            if num in pmap and num != P_DEST:
                self.err("%s: parameter %03d twice" % (OP_NAMES.get(op, op), num))
                return (op + 50, self.error_params(E_SYNTAX)), None
            pmap.setdefault(num, []).append(val)
        one = {k: v[0] for k, v in pmap.items()}
        if op == OP_LOGIN:
            return self.handle_login(one), None
        if not self.logged_in:
            self.err("%s (%02d) before login" % (OP_NAMES.get(op, "operation"), op))
            return (op + 50, self.error_params(E_UNEXPECTED)), None
        if op == OP_ALIVE:
            sim.enquire += 1
            return (op + 50, []), None
        if op == OP_LOGOUT:
            return (op + 50, []), self.close
        if op == OP_SUBMIT:
            return self.handle_submit(pmap, one), None
        self.err("unsupported operation %02d" % op)
        return (OP_GENERAL_ERROR, self.error_params(E_UNEXPECTED)), None

    def handle_login(self, p):
        """Login (01): user identity 010 and password 011 are mandatory."""
        sim = self.sim
        if self.logged_in:
            self.err("second login on one connection")
            return (51, self.error_params(E_UNEXPECTED))
        if P_USER not in p or P_PASSWORD not in p:
            self.err("login without user identity (010) or password (011)")
            return (51, self.error_params(E_INVALID_LOGIN))
        if sim.config["refuse_bind"]:
            return (51, self.error_params(E_LOGIN_REFUSED))
        if (sim.user is not None and p[P_USER] != sim.user) or \
           (sim.password is not None and p[P_PASSWORD] != sim.password):
            log("conn %d: login refused for %r" % (self.id, p[P_USER]))
            return (51, self.error_params(E_INVALID_LOGIN))
        if P_WINDOW in p and not p[P_WINDOW].isdigit():
            self.err("login: window size (019) %r is not an integer" % p[P_WINDOW])
            return (51, self.error_params(E_FORMAT))
        self.logged_in, self.user = True, p[P_USER]
        sim.binds += 1
        sim.wake()
        return (51, [])

    def handle_submit(self, pmap, p):
        """Submit message (03): validates, records parts and whole messages, answers 53."""
        sim = self.sim
        sim.submit_pdus += 1

        good_dest = []  # the negative response names the destination when it was readable

        def fail(code, msg):
            if msg:
                self.err("submit: " + msg)
            return (53, good_dest + self.error_params(code))

        dests = pmap.get(P_DEST, [])
        if len(dests) != 1:
            return fail(E_NDEST if dests else E_DEST,
                        "%d destination addresses (021); this SMSC takes one" % len(dests))
        dest = dests[0]
        if not is_address(dest):
            return fail(E_DEST, "destination address (021) %r is not an address" % dest)
        good_dest.append((P_DEST, dest))  # spec: "Negative response parameters for submit"
        orig = p.get(P_ORIG, p.get(P_ALPHA_ORIG, ""))
        if P_ORIG in p and not is_address(p[P_ORIG]):
            return fail(E_ORIG, "originating address (023) %r is not an address" % p[P_ORIG])
        if P_ORIG in p and P_ALPHA_ORIG in p:
            return fail(E_ORIG, "both originating address (023) and alphanumeric (027)")
        dcs = 0
        if P_DCS in p:
            if not p[P_DCS].isdigit() or int(p[P_DCS]) > 255:
                return fail(E_DCS, "data coding scheme (030) %r" % p[P_DCS])
            dcs = int(p[P_DCS])
        alphabet = dcs_alphabet(dcs)
        if alphabet is None:
            return fail(E_DCS, "data coding scheme (030) %d is not supported" % dcs)
        srr = 0
        if P_SRR in p:
            if not p[P_SRR].isdigit() or int(p[P_SRR]) > 63:
                return fail(E_SRR, "status report request (056) %r" % p[P_SRR])
            srr = int(p[P_SRR])
        udh = b""
        if P_UDH in p:
            try:
                udh = bytes.fromhex(p[P_UDH])
                concat = parse_udh(udh)
            except ValueError as e:
                return fail(E_UD_SYNTAX, "user data header (032) %r: %s" % (p[P_UDH], e))
        else:
            concat = None
        if P_UD in p and P_UD_BIN in p:
            return fail(E_UD_COMBO, "both user data (033) and user data binary (034)")
        if P_UD in p:
            if alphabet != "gsm":
                return fail(E_DCS, "user data (033) with data coding scheme %d (%s)"
                            % (dcs, alphabet))
            try:
                text = decode_user_data(p[P_UD])
            except UserDataError as e:
                return fail(E_UD_SYNTAX, "user data (033): %s" % e)
            udh_septets = (len(udh) * 8 + 6) // 7
            if gsm_septets(text) + udh_septets > 160:
                return fail(E_UD_SYNTAX, "user data (033) of %d septets (+%d of header) > 160"
                            % (gsm_septets(text), udh_septets))
            coding, piece = "gsm", text
        elif P_UD_BIN in p:
            try:
                data = bytes.fromhex(p[P_UD_BIN])
            except ValueError:
                return fail(E_UD_SYNTAX, "user data binary (034) is not hex: %r"
                            % p[P_UD_BIN][:40])
            if len(data) + len(udh) > 140:
                return fail(E_UD_SYNTAX, "user data binary (034) of %d octets (+%d of header)"
                            " > 140" % (len(data), len(udh)))
            if alphabet == "ucs2":
                if len(data) % 2:
                    return fail(E_UD_SYNTAX, "UCS-2 user data of odd length %d" % len(data))
                coding, piece = "ucs2", data
            elif alphabet == "8bit":
                coding, piece = "binary", data
            else:
                return fail(E_DCS, "user data binary (034) with the GSM 7-bit data coding"
                            " scheme %d" % dcs)
        else:
            coding, piece = "gsm", ""
        reject = sim.config["reject"]
        code = reject.get(dest, reject.get(dest.lstrip("+")))
        if code is not None:
            return fail(int(code), None)
        if sim.config["throttle_next"] > 0:
            sim.config["throttle_next"] -= 1
            return fail(E_CONGESTION, None)
        scts = sim.new_scts()
        sim.add_part(dict(orig=orig, dest=dest, coding=coding, piece=piece, srr=srr,
                          concat=concat, scts=scts, conn=self))
        return (53, [(P_DEST, dest), (P_SCTS, scts)])

    def on_response(self, op, seq, params):
        """A response of the client to an SMSC-started operation (or 98/99)."""
        p = {}
        for num, val in params:
            p.setdefault(num, val)
        if not self.pending:
            self.err("response %02d:%03d while no operation of the SMSC is outstanding"
                     % (op, seq))
            return
        pop, pseq, fut = self.pending
        if seq != pseq:
            self.err("response %02d:%03d, expected packet number %03d" % (op, seq, pseq))
            return
        if op in (OP_NACK, OP_GENERAL_ERROR):
            self.err("client answered %02d:%03d with %s" % (pop, pseq, OP_NAMES[op]))
            code = int(p.get(P_ERROR, "0") or 0) if p.get(P_ERROR, "").isdigit() else 0
            result = code or -1
        elif op != pop + 50:
            self.err("response code %02d to operation %02d" % (op, pop))
            result = -1
        else:
            code = p.get(P_ERROR)
            if code is not None and not code.isdigit():
                self.err("response %02d:%03d with error code %r" % (op, seq, code))
                result = -1
            else:
                result = int(code) if code else 0
        self.pending = None
        if not fut.done():
            fut.set_result(result)


class Sim:
    """The SMSC: configuration, recorded traffic, and the outbound (MO and receipt) queue."""

    DEFAULT_CONFIG = {"submit_delay_ms": 20, "receipts": "delivered", "receipt_delay_ms": 50,
                      "reject": {}, "throttle_next": 0, "mo_retry_ms": 500,
                      "refuse_bind": False}

    def __init__(self, user, password, window):
        self.user, self.password, self.window = user, password, window
        self.config = json.loads(json.dumps(self.DEFAULT_CONFIG))
        self.conns = []
        self._wake = asyncio.Event()
        self._last_scts = 0
        self.reset()

    def reset(self):
        """Forgets submits, MO and counters (config stays)."""
        self.binds = self.violations = self.max_outstanding = 0
        self.submit_pdus = self.enquire = 0
        self.submits, self.mo, self.errors = [], [], []
        self.partial = {}    # (dest, ref, total) -> {seq: part}
        self.receipts = []   # [due_time, params] queued deliver status reports
        self.mo_next_id = 1
        self.concat_ref = 0
        self.wake()

    def wake(self):
        """Wakes the outbound loop."""
        self._wake.set()

    def error(self, msg):
        """Records one protocol mistake."""
        log("ERROR " + msg)
        self.errors.append(msg)

    def new_scts(self):
        """A service centre time stamp unique on this SMSC (it names the message in CIMD)."""
        t = max(int(time.time()), self._last_scts + 1)
        self._last_scts = t
        return scts_str(t)

    def conn_closed(self, conn):
        """Forgets a closed connection."""
        if conn in self.conns:
            self.conns.remove(conn)
        self.wake()

    def bound_conn(self):
        """The connection that gets MO and receipts: the first logged-in one."""
        for c in self.conns:
            if c.logged_in and not c.closed:
                return c
        return None

    def add_part(self, part):
        """Records one accepted submit; whole messages go to `submits` once complete."""
        self.queue_receipt(part)
        if part["concat"] is None:
            self.record([part])
            return
        ref, total, seq = part["concat"]
        key = (part["dest"], ref, total)
        parts = self.partial.setdefault(key, {})
        if seq in parts:
            part["conn"].err("submit: part %d of %d (ref %d) to %s twice"
                             % (seq, total, ref, part["dest"]))
        parts[seq] = part
        if len(parts) == total:
            del self.partial[key]
            self.record([parts[i] for i in range(1, total + 1)])

    def record(self, parts):
        """Appends one whole message to `submits`."""
        codings = set(p["coding"] for p in parts)
        if len(codings) > 1:
            parts[0]["conn"].err("parts of one message with codings %s" % sorted(codings))
        coding = parts[0]["coding"]
        if coding == "ucs2":
            text = b"".join(p["piece"] for p in parts).decode("utf-16-be", "replace")
        elif coding == "binary":
            text = b"".join(p["piece"] for p in parts).hex()
        else:
            text = "".join(p["piece"] for p in parts)
        self.submits.append({"n": len(self.submits) + 1, "from": parts[0]["orig"],
                             "to": parts[0]["dest"], "text": text, "coding": coding,
                             "parts": len(parts), "dlr": any(p["srr"] for p in parts),
                             "msgids": [p["scts"] for p in parts]})

    def queue_receipt(self, part):
        """Queues the deliver status report of one part if it asked for one."""
        mode = self.config["receipts"]
        if mode == "delivered" and part["srr"] & SRR_DELIVERED:
            status = STATUS_DELIVERED
        elif mode == "undeliverable" and part["srr"] & SRR_FAILED:
            status = STATUS_FAILED
        else:
            return
        due = time.monotonic() + self.config["submit_delay_ms"] / 1000.0 + \
            self.config["receipt_delay_ms"] / 1000.0
        self.receipts.append([due, part["dest"], part["scts"], status])
        asyncio.get_running_loop().call_later(max(0.0, due - time.monotonic()), self.wake)

    def add_mo(self, frm, to, text, coding):
        """Queues one MO message, split into parts; returns its id.  Raises ValueError."""
        if coding not in ("auto", "gsm", "ucs2"):
            raise ValueError("coding must be auto, gsm or ucs2")
        if not is_address(to) or not is_address(frm):
            raise ValueError("from and to must be addresses (digits, optional leading +)")
        septets = gsm_septets(text)
        if coding == "gsm" and septets is None:
            raise ValueError("text is not in the GSM default alphabet")
        if coding == "auto":
            coding = "gsm" if septets is not None else "ucs2"
        if coding == "gsm":
            pieces = [text] if septets <= 160 else split_gsm(text, 153)
        else:
            data = text.encode("utf-16-be")
            pieces = [data] if len(data) <= 140 else split_ucs2(data, 67)
        parts = []
        self.concat_ref = (self.concat_ref + 1) % 256
        for i, piece in enumerate(pieces):
            params = [(P_DEST, to), (P_ORIG, frm)]
            if coding == "ucs2":
                params.append((P_DCS, "8"))
            if len(pieces) > 1:
                udh = bytes([5, 0, 3, self.concat_ref, len(pieces), i + 1])
                params.append((P_UDH, udh.hex().upper()))
            if coding == "ucs2":
                params.append((P_UD_BIN, piece.hex().upper()))
            else:
                params.append((P_UD, encode_user_data(piece)))
            parts.append(params)
        mid = self.mo_next_id
        self.mo_next_id += 1
        self.mo.append({"id": mid, "from": frm, "to": to, "text": text, "state": "queued",
                        "attempts": 0, "last_status": 0, "_parts": parts, "_next": 0,
                        "_due": 0.0})
        self.wake()
        return mid

    def state(self):
        """The GET /state document."""
        return {"bound": self.bound_conn() is not None, "binds": self.binds,
                "violations": self.violations, "max_outstanding": self.max_outstanding,
                "submits": self.submits, "submit_pdus": self.submit_pdus,
                "mo": [{k: v for k, v in m.items() if not k.startswith("_")} for m in self.mo],
                "enquire": self.enquire, "errors": self.errors}

    async def outbound(self):
        """Sends receipts and MO, one operation at a time, each waiting for its response."""
        while True:
            self._wake.clear()
            conn = self.bound_conn()
            now = time.monotonic()
            job, wait = None, None
            if conn is not None:
                for r in self.receipts:
                    if r[0] <= now:
                        job = ("sr", r)
                        break
                    wait = r[0] - now if wait is None else min(wait, r[0] - now)
                if job is None:
                    for m in self.mo:
                        if m["state"] in ("queued", "retry", "sent"):
                            if m["_due"] <= now:
                                job = ("mo", m)
                            else:
                                wait = m["_due"] - now if wait is None else \
                                    min(wait, m["_due"] - now)
                            break  # MO messages go in order
            if job is None:
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                continue
            await self.send_job(conn, job)

    async def send_job(self, conn, job):
        """Sends one deliver (status report) and waits for the client's response."""
        kind, item = job
        if conn.closed:
            return
        seq = conn.next_smsc_seq()
        fut = asyncio.get_running_loop().create_future()
        if kind == "sr":
            _, dest, scts, status = item
            op = OP_DELIVER_SR
            params = [(P_DEST, dest), (P_SCTS, scts), (P_STATUS, str(status)),
                      (P_DISCHARGE, scts_str(time.time()))]
        else:
            op = OP_DELIVER
            params = list(item["_parts"][item["_next"]])
            params.append((P_SCTS, self.new_scts()))
            item["state"] = "sent"
            item["attempts"] += 1
        conn.pending = (op, seq, fut)
        conn.send(op, seq, params)
        try:
            result = await asyncio.wait_for(fut, 30)
        except asyncio.TimeoutError:
            conn.err("no response to %02d:%03d in 30 s" % (op, seq))
            conn.pending = None
            result = -1
        if kind == "sr":
            if result == 0 and item in self.receipts:
                self.receipts.remove(item)
            elif result is not None and item in self.receipts:
                item[0] = time.monotonic() + self.config["mo_retry_ms"] / 1000.0
            return
        if item not in self.mo:
            return  # forgotten by /reset meanwhile
        if result is None:  # connection lost: send the part again after the next login
            item["state"] = "queued"
        elif result == 0:
            item["last_status"] = 0
            item["_next"] += 1
            if item["_next"] == len(item["_parts"]):
                item["state"] = "acked"
        else:
            item["state"] = "retry"
            item["last_status"] = result
            item["_due"] = time.monotonic() + self.config["mo_retry_ms"] / 1000.0


async def handle_http(sim, reader, writer):
    """A minimal HTTP/1.1 server for the control API (one request per connection)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        body = await reader.readexactly(length) if length else b""
        status, doc = 200, None
        try:
            req = json.loads(body) if body.strip() else {}
            doc = control(sim, method, path.split("?")[0], req)
            if doc is None:
                status, doc = 404, {"error": "no such resource"}
        except (ValueError, TypeError, KeyError) as e:
            status, doc = 400, {"error": str(e)}
        out = json.dumps(doc).encode()
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n"
                     % (status, b"OK" if status == 200 else b"Error", len(out)) + out)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


def control(sim, method, path, req):
    """Dispatches one control request; returns the answer document or None (404)."""
    if method == "GET" and path == "/state":
        return sim.state()
    if method != "POST":
        return None
    if path == "/mo":
        return {"id": sim.add_mo(str(req["from"]), str(req["to"]), str(req["text"]),
                                 req.get("coding", "auto"))}
    if path == "/config":
        for k, v in req.items():
            if k not in sim.config:
                raise ValueError("unknown config key %r" % k)
            if k == "receipts" and v not in ("delivered", "undeliverable", "none"):
                raise ValueError("receipts must be delivered, undeliverable or none")
            if k == "reject":
                v = {str(n): int(c) for n, c in v.items()}
            sim.config[k] = v
        sim.wake()
        return dict(sim.config)
    if path == "/drop":
        for c in list(sim.conns):
            c.close()
        return {"dropped": True}
    if path == "/reset":
        sim.reset()
        return {"reset": True}
    return None


async def main():
    """Parses the command line, listens on both ports, prints `ready`, runs until SIGTERM."""
    ap = argparse.ArgumentParser(description="CIMD2 SMSC simulator (see tests/sms/README.md)")
    ap.add_argument("--port", type=int, required=True, help="CIMD2 port on 127.0.0.1")
    ap.add_argument("--control", type=int, required=True, help="HTTP control port")
    ap.add_argument("--user", help="user identity the client must log in with")
    ap.add_argument("--password", help="password the client must log in with")
    ap.add_argument("--window", type=int, default=1, help="requests a client may have open")
    args = ap.parse_args()
    sim = Sim(args.user, args.password, args.window)

    async def on_client(reader, writer):
        conn = Conn(sim, reader, writer)
        sim.conns.append(conn)
        log("conn %d: connected" % conn.id)
        await conn.run()
        log("conn %d: closed" % conn.id)

    smsc = await asyncio.start_server(on_client, "127.0.0.1", args.port)
    http = await asyncio.start_server(lambda r, w: handle_http(sim, r, w), "127.0.0.1",
                                      args.control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    out = asyncio.ensure_future(sim.outbound())
    print("ready", flush=True)
    await stop.wait()
    out.cancel()
    smsc.close()
    http.close()
    for c in list(sim.conns):
        c.close()


if __name__ == "__main__":
    asyncio.run(main())
