"""baton's HTTP side against a real batond: XMPP over WebSocket (RFC 7395) and BOSH
(XEP-0124/0206) as ordinary client sessions that talk to TCP users, the session object that
outlives a BOSH client's connections (thin.hold), XEP-0198 resumption across transports, and
hostile HTTP and WebSocket input, after which the server keeps serving everyone else.

Invariant: every test makes its own users; the module's one server is never restarted.
"""

import socket
import struct
import time

import pytest

import web
from helpers import NS_CLIENT, NS_STREAMS, Raw, q, tostr, unique
from web import NS_FRAMING, NS_HTTPBIND, Bosh, WebSocket, WsXmpp

SERVER_OPTS = {"sets": ["http.request_timeout=1s", "http.body_max=64k",
                        "limits.stanza_size=32k"]}
NS_SM = "urn:xmpp:sm:3"


def is_msg(body=None):
    def pred(el):
        if el.tag != q(NS_CLIENT, "message"):
            return False
        return body is None or el.findtext(q(NS_CLIENT, "body")) == body
    return pred


def chat(to, body):
    return ("<message xmlns='jabber:client' to='%s' type='chat'><body>%s</body></message>"
            % (to, body))


def ws_user(server, clients, resource="ws"):
    jid, pw = server.add_user()
    c = WsXmpp(server.http_port).login(jid.split("@")[0], pw, resource)
    clients.append(c)
    c.send("<presence/>")
    return c


def bosh_user(server, resource="bosh", wait=2):
    jid, pw = server.add_user()
    b = Bosh(server.http_port, wait=wait).login(jid.split("@")[0], pw, resource)
    b.request("<presence xmlns='jabber:client'/>")
    return b


def assert_served(server):
    """Another client still gets a whole session over WebSocket."""
    jid, pw = server.add_user()
    c = WsXmpp(server.http_port).login(jid.split("@")[0], pw)
    c.close()


# ---- WebSocket ----

def test_websocket_and_tcp_users_talk(server, clients):
    w = ws_user(server, clients)
    t = server.new_user_client(presence=True)
    clients.append(t)
    w.send(chat(t.jid.split("/")[0], "from the web"))
    m = t.wait_for("message")
    assert m.findtext(q(NS_CLIENT, "body")) == "from the web"
    assert m.get("from") == w.jid
    t.message(w.jid, "from tcp")
    m = w.wait_for(is_msg("from tcp"))
    assert m.get("from") == t.jid


def test_websocket_open_and_close_framing(server, clients):
    jid, pw = server.add_user()
    c = WsXmpp(server.http_port)
    clients.append(c)
    assert c.ws.headers.get("sec-websocket-protocol") == "xmpp"
    c.ws.send("<open xmlns='%s' to='localhost' version='1.0'/>" % NS_FRAMING)
    opened = c.recv()
    assert opened.tag == q(NS_FRAMING, "open") and opened.get("from") == "localhost"
    assert opened.get("id") and opened.get("version") == "1.0"
    feats = c.recv()
    assert feats.tag == "{http://etherx.jabber.org/streams}features", tostr(feats)
    # RFC 7395 3.7: no STARTTLS inside a WebSocket.
    assert feats.find("{urn:ietf:params:xml:ns:xmpp-tls}starttls") is None
    c.ws.send("<close xmlns='%s'/>" % NS_FRAMING)
    assert c.recv().tag == q(NS_FRAMING, "close")
    assert c.ws.close_code() == 1000


def test_websocket_stream_error_then_close(server, clients):
    c = WsXmpp(server.http_port)
    clients.append(c)
    c.open()
    c.ws.send("<message xmlns='jabber:client'><body>before auth</body></message>")
    err = c.recv()
    assert err.tag == "{http://etherx.jabber.org/streams}error", tostr(err)
    assert err.find(q(NS_STREAMS, "not-authorized")) is not None
    assert c.recv().tag == q(NS_FRAMING, "close")


def test_websocket_refusals(server):
    r = WebSocket(server.http_port, protocol=None)
    assert r.status == 400
    r.close()
    r = WebSocket(server.http_port, extra_headers=["Sec-WebSocket-Version: 8"])
    assert r.status in (400, 426)
    r.close()
    r = WebSocket(server.http_port, path="/nowhere")
    assert r.status == 404
    r.close()


def test_websocket_fragmented_message_with_ping(server, clients):
    w = ws_user(server, clients)
    t = server.new_user_client(presence=True)
    clients.append(t)
    text = chat(t.jid.split("/")[0], "in three pieces").encode()
    a, b = len(text) // 3, 2 * len(text) // 3
    w.ws.send_frame(web.OP_TEXT, text[:a], fin=False)
    w.ws.send_frame(web.OP_PING, b"are you there")  # control frames may interleave
    w.ws.send_frame(web.OP_CONT, text[a:b], fin=False)
    w.ws.send_frame(web.OP_CONT, text[b:], fin=True)
    op, fin, data = w.ws.recv_frame()
    while op == web.OP_TEXT:  # our own presence, broadcast back
        op, fin, data = w.ws.recv_frame()
    assert op == web.OP_PONG and data == b"are you there"
    assert t.wait_for("message").findtext(q(NS_CLIENT, "body")) == "in three pieces"


@pytest.mark.parametrize("case,code", [("unmasked", 1002), ("binary", 1003),
                                       ("oversized", 1009), ("bad-utf8", 1007),
                                       ("reserved-bits", 1002)])
def test_websocket_hostile_frames(server, case, code):
    ws = WebSocket(server.http_port)
    assert ws.status == 101
    ws.send("<open xmlns='%s' to='localhost' version='1.0'/>" % NS_FRAMING)
    ws.recv()
    ws.recv()
    if case == "unmasked":
        ws.send_frame(web.OP_TEXT, "<presence/>", mask=False)
    elif case == "binary":
        ws.send_frame(web.OP_BINARY, b"\x00\x01")
    elif case == "oversized":
        ws.send_frame(web.OP_TEXT, "<x>" + "a" * (40 * 1024) + "</x>")
    elif case == "bad-utf8":
        ws.send_frame(web.OP_TEXT, b"<x>\xff\xfe</x>")
    else:
        ws.send_frame(web.OP_TEXT, "<presence/>", rsv=4)
    assert ws.close_code(timeout=5) == code
    ws.close()
    assert_served(server)


# ---- BOSH ----

def test_bosh_session_creation_attributes(server):
    b = Bosh(server.http_port, wait=3)
    body = b.create()
    assert body.tag == q(NS_HTTPBIND, "body")
    assert body.get("sid") and body.get("from") == "localhost"
    assert int(body.get("wait")) == 3 and body.get("hold") == "1" and body.get("requests") == "2"
    # The session object's life without requests is thin.hold (10 minutes by default).
    assert body.get("inactivity") == "600"
    assert body.get("{urn:xmpp:xbosh}version") == "1.0"
    b.request(type="terminate")


def test_bosh_and_websocket_users_talk(server, clients):
    b = bosh_user(server)
    w = ws_user(server, clients)
    b.request(chat(w.jid.split("/")[0], "over bosh"))
    assert w.wait_for(is_msg("over bosh")).get("from") == b.jid
    w.send(chat(b.jid, "over websocket"))
    m = b.poll_until(is_msg("over websocket"))
    assert m.get("from") == w.jid
    end = b.request(type="terminate")
    assert end.get("type") == "terminate"


def test_bosh_long_poll_is_answered_when_a_message_comes(server, clients):
    import threading
    b = bosh_user(server, wait=10)
    t = server.new_user_client(presence=True)
    clients.append(t)
    result = {}

    def poll():
        start = time.monotonic()
        result["body"] = b.request()
        result["took"] = time.monotonic() - start
    th = threading.Thread(target=poll)
    th.start()
    time.sleep(0.5)
    t.message(b.jid, "wake up")
    th.join(12)
    body = result["body"]
    assert body.find(q(NS_CLIENT, "message")) is not None, tostr(body)
    assert result["took"] < 5, "the held request was not answered when the message came"


def test_bosh_output_waiting_goes_out_on_the_next_request_at_once(server, clients):
    """What arrives while no request is held is answered on the next request immediately,
    not when its wait runs out (found with Converse.js in a room)."""
    b = bosh_user(server, wait=10)
    t = server.new_user_client(presence=True)
    clients.append(t)
    t.message(b.jid, "between requests")
    time.sleep(0.5)  # no request of b's is held now
    start = time.monotonic()
    body = b.request()
    assert any(is_msg("between requests")(e) for e in body), tostr(body)
    assert time.monotonic() - start < 2


def test_bosh_retransmitted_rid_gets_the_same_answer(server, clients):
    b = bosh_user(server)
    t = server.new_user_client(presence=True)
    clients.append(t)
    t.message(b.jid, "answer me twice")
    time.sleep(0.3)
    rid = b.rid
    first = b.request()
    while first.find(q(NS_CLIENT, "message")) is None:
        rid = b.rid
        first = b.request()
    # The answer was lost on the way: the client sends the same rid again (XEP-0124 14.3).
    again = b.request(rid=rid)
    assert tostr(again) == tostr(first)


def test_bosh_rid_outside_window_and_unknown_sid(server):
    b = bosh_user(server)
    body = b.request(rid=b.rid + 50)
    assert body.get("type") == "terminate" and body.get("condition") == "item-not-found"
    other = Bosh(server.http_port)
    other.sid = "nosuchsession"
    body = other.request()
    assert body.get("type") == "terminate" and body.get("condition") == "item-not-found"


def test_bosh_requests_out_of_order_are_processed_in_rid_order(server, clients):
    import threading
    b = bosh_user(server, wait=3)
    t = server.new_user_client(presence=True)
    clients.append(t)
    to = t.jid.split("/")[0]
    r1, r2 = b.rid, b.rid + 1
    b.rid += 2
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "late", b.request(chat(to, "second"), rid=r2)))
    th.start()
    time.sleep(0.3)  # r2 arrives first and waits for r1
    b.request(chat(to, "first"), rid=r1)
    th.join(10)
    bodies = [t.wait_for("message").findtext(q(NS_CLIENT, "body")) for _ in range(2)]
    assert bodies == ["first", "second"]


def test_bosh_malformed_bodies(server):
    b = Bosh(server.http_port)
    status, _, data = b.post("<body xmlns='%s' rid='1'" % NS_HTTPBIND)
    assert status == 400 and b"bad-request" in data
    status, _, data = b.post("<notbody/>")
    assert status == 400
    status, _, data = b.post("<body xmlns='%s' to='localhost'/>" % NS_HTTPBIND)  # no rid
    assert status == 200 and b"bad-request" in data
    status, _, data = b.post("<body xmlns='%s' rid='1' to='elsewhere.example'/>" % NS_HTTPBIND)
    assert b"host-unknown" in data


def test_bosh_cors_preflight(server):
    c = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
    c.sendall(b"OPTIONS /http-bind HTTP/1.1\r\nHost: x\r\nOrigin: https://elsewhere.example\r\n"
              b"Access-Control-Request-Method: POST\r\n\r\n")
    head = c.recv(4096).decode()
    c.close()
    assert head.startswith("HTTP/1.1 200")
    assert "Access-Control-Allow-Origin: *" in head
    assert "Access-Control-Allow-Headers: Content-Type" in head


def test_bosh_session_object_outlives_the_client(server, clients):
    """The client goes away (no request held) while messages come; back with its sid and the
    next rid, it gets every one of them, once."""
    b = bosh_user(server, wait=1)
    t = server.new_user_client(presence=True)
    clients.append(t)
    b.request()  # nothing held from now on: the client is "offline"
    for i in range(5):
        t.message(b.jid, "while away %d" % i)
    time.sleep(2.5)  # longer than wait: no request would have carried them
    got = []
    deadline = time.monotonic() + 5
    while len(got) < 5 and time.monotonic() < deadline:
        for el in b.request():
            if is_msg()(el):
                got.append(el.findtext(q(NS_CLIENT, "body")))
    assert got == ["while away %d" % i for i in range(5)]
    time.sleep(0.5)
    for el in b.request():
        assert not is_msg()(el), "delivered twice: " + tostr(el)


def test_bosh_held_connection_dropped_loses_nothing(server, clients):
    """A held request's TCP connection breaks; what comes next waits for the next request."""
    b = bosh_user(server, wait=5)
    t = server.new_user_client(presence=True)
    clients.append(t)
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
    body = "<body xmlns='%s' sid='%s' rid='%d'/>" % (NS_HTTPBIND, b.sid, b.rid)
    b.rid += 1
    s.sendall(("POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
               "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
    time.sleep(0.3)
    s.close()  # held, then gone
    time.sleep(0.3)
    t.message(b.jid, "after the drop")
    assert b.poll_until(is_msg("after the drop")) is not None


# ---- XEP-0198 across transports ----

def sm_enable_ws(c):
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    el = c.wait_for(lambda e: e.tag == q(NS_SM, "enabled"))
    return el.get("id")


def test_websocket_stream_resumes_over_bosh(server, clients):
    jid, pw = server.add_user()
    user = jid.split("@")[0]
    w = WsXmpp(server.http_port).login(user, pw, "phone")
    w.send("<presence/>")
    previd = sm_enable_ws(w)
    t = server.new_user_client(presence=True)
    clients.append(t)
    w.ws.sock.close()  # the transport dies without a goodbye
    time.sleep(0.3)
    for i in range(3):
        t.message(jid + "/phone", "meanwhile %d" % i)
    time.sleep(0.3)
    b = Bosh(server.http_port, wait=2)
    b.create()
    body = b.request("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
                     % __import__("base64").b64encode(
                         b"\0" + user.encode() + b"\0" + pw.encode()).decode())
    while body.find("{urn:ietf:params:xml:ns:xmpp-sasl}success") is None:
        body = b.request()
    b.request(**{"xmpp:restart": "true", "xmlns:xmpp": web.NS_XBOSH})
    body = b.request("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    els = list(body)
    deadline = time.monotonic() + 5
    while sum(is_msg()(e) for e in els) < 3 and time.monotonic() < deadline:
        els += list(b.request())
    assert any(e.tag == q(NS_SM, "resumed") for e in els), [tostr(e) for e in els]
    bodies = [e.findtext(q(NS_CLIENT, "body")) for e in els if is_msg()(e)]
    assert bodies == ["meanwhile %d" % i for i in range(3)]


def test_tcp_stream_resumes_over_websocket(server, clients):
    jid, pw = server.add_user()
    c = server.login(jid, pw, resource="laptop", presence=True)
    c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
    previd = c.wait_for(pred=lambda e: e.tag == q(NS_SM, "enabled")).get("id")
    t = server.new_user_client(presence=True)
    clients.append(t)
    c.abort()
    time.sleep(0.3)
    t.message(jid + "/laptop", "to the laptop")
    w = WsXmpp(server.http_port)
    clients.append(w)
    w.open()
    import base64
    user = jid.split("@")[0]
    w.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>"
           % base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode())
    assert w.recv().tag == "{urn:ietf:params:xml:ns:xmpp-sasl}success"
    w.open()
    w.send("<resume xmlns='%s' previd='%s' h='0'/>" % (NS_SM, previd))
    assert w.wait_for(lambda e: e.tag == q(NS_SM, "resumed")).get("previd") == previd
    m = w.wait_for(is_msg("to the laptop"))
    assert m.get("to") == jid + "/laptop"


# ---- hostile HTTP ----

def http_raw(server, data, timeout=5):
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


@pytest.mark.parametrize("request_bytes,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\n\r\n", 505),
    (b"GET /http-bind HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
    (b"POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n\r\n", 413),
    (b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"DELETE /http-bind HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
])
def test_hostile_requests_get_the_right_status(server, request_bytes, status):
    out = http_raw(server, request_bytes)
    assert out.startswith(b"HTTP/1.1 %d" % status), out[:200]
    assert_served(server)


def test_slow_client_gets_408_and_others_are_served(server):
    s = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
    s.sendall(b"POST /http-bind HTTP/1.1\r\nHost: x\r\n")  # never finishes
    assert_served(server)
    s.settimeout(5)
    out = s.recv(4096)
    s.close()
    assert out.startswith(b"HTTP/1.1 408"), out


def test_pipelined_requests_answered_in_order(server):
    req = b"GET /http-bind HTTP/1.1\r\nHost: x\r\n\r\n"
    out = http_raw(server, req * 3 + b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.count(b"HTTP/1.1 200") == 3 and out.count(b"HTTP/1.1 404") == 1
