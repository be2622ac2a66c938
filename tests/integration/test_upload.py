"""XEP-0363 HTTP File Upload: the service at upload.<domain> hands out slots, batond's own HTTP
listener takes the PUT and serves the GET; files, slots and quotas survive a restart, and the
expiry sweep removes old files."""

import http.client
import os
import time
import urllib.parse

from helpers import NS_DISCO_INFO, NS_DISCO_ITEMS, Raw, q, stanza_error, stream_header, tostr

NS_UPLOAD = "urn:xmpp:http:upload:0"
NS_DATA = "jabber:x:data"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
SERVICE = "upload.localhost"
MAX = 65536
QUOTA = 100 * 1024
SERVER_OPTS = {"sets": ["upload.max_size=64k", "upload.quota=100k"]}

# An Ogg voice message sized blob: the capture pattern, then every byte value (NUL, CR, LF...).
VOICE = b"OggS\x00\x02" + bytes(range(256)) * 100 + os.urandom(4000)


def request(c, filename, size, ctype="audio/ogg", to=SERVICE):
    attrs = "filename='%s' size='%s'" % (filename, size)
    if ctype is not None:
        attrs += " content-type='%s'" % ctype
    return c.iq("get", "<request xmlns='%s' %s/>" % (NS_UPLOAD, attrs), to=to)


def slot(c, filename, size, ctype="audio/ogg"):
    res = request(c, filename, size, ctype)
    assert res.get("type") == "result", tostr(res)
    s = res.find(q(NS_UPLOAD, "slot"))
    put, get = s.find(q(NS_UPLOAD, "put")), s.find(q(NS_UPLOAD, "get"))
    assert put is not None and get is not None, tostr(res)
    assert len(put) == 0, "the PUT needs no extra headers: %s" % tostr(res)
    return put.get("url"), get.get("url")


def fetch(method, url, body=None, headers=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, u.path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def put(url, data, ctype="audio/ogg"):
    return fetch("PUT", url, data, {"Content-Type": ctype})[0]


def test_disco_finds_the_service(server, login):
    c = login()
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to="localhost", check=True)
    jids = [i.get("jid") for i in res.find(q(NS_DISCO_ITEMS, "query"))]
    assert SERVICE in jids, tostr(res)
    res = c.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE, check=True)
    query = res.find(q(NS_DISCO_INFO, "query"))
    ident = query.find(q(NS_DISCO_INFO, "identity"))
    assert (ident.get("category"), ident.get("type")) == ("store", "file"), tostr(res)
    feats = [f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))]
    assert NS_UPLOAD in feats
    fields = {f.get("var"): f.findtext(q(NS_DATA, "value"))
              for f in query.find(q(NS_DATA, "x")).findall(q(NS_DATA, "field"))}
    assert fields == {"FORM_TYPE": NS_UPLOAD, "max-file-size": str(MAX)}, tostr(res)


def test_put_then_get_same_bytes(server, login):
    c = login()
    put_url, get_url = slot(c, "voice message.ogg", len(VOICE))
    u = urllib.parse.urlsplit(put_url)
    assert u.port == server.http_port and u.path.startswith("/upload/")
    secret = u.path.split("/")[2]
    assert len(secret) >= 32 and int(secret, 16) >= 0, "at least 128 random bits: %s" % secret
    assert u.path.endswith("/voice%20message.ogg")
    st, _, _ = fetch("GET", get_url)
    assert st == 404, "nothing to get before the PUT"
    assert put(put_url, VOICE) == 201
    st, h, body = fetch("GET", get_url)
    assert st == 200 and body == VOICE
    assert h["content-type"] == "audio/ogg" and h["x-content-type-options"] == "nosniff"
    assert h["access-control-allow-origin"] == "*"
    st, h, body = fetch("HEAD", get_url)
    assert st == 200 and body == b"" and int(h["content-length"]) == len(VOICE)
    # a second PUT to a used slot is refused, and the file stays as it was
    assert put(put_url, b"x" * len(VOICE)) == 403
    assert fetch("GET", get_url)[2] == VOICE


def test_wrong_size_put_refused_slot_still_usable(server, login):
    c = login()
    put_url, get_url = slot(c, "a.ogg", 1000)
    assert put(put_url, b"a" * 999) == 400
    assert put(put_url, b"a" * 1001) == 413
    assert fetch("GET", get_url)[0] == 404
    assert put(put_url, b"a" * 1000) == 201, "a refused PUT does not use up the slot"
    assert fetch("GET", get_url)[2] == b"a" * 1000


def test_unsafe_types_are_downloads(server, login):
    c = login()
    page = b"<html><script>alert(1)</script></html>"
    put_url, get_url = slot(c, "x.html", len(page), ctype="text/html")
    assert put(put_url, page, ctype="text/html") == 201
    st, h, body = fetch("GET", get_url)
    assert st == 200 and body == page
    assert h["content-type"] == "application/octet-stream", h
    assert h["content-disposition"].startswith("attachment"), h
    assert h["x-content-type-options"] == "nosniff"


def test_cors_preflight(server, login):
    c = login()
    put_url, _ = slot(c, "p.ogg", 10)
    st, h, _ = fetch("OPTIONS", put_url, headers={
        "Origin": "https://web.example", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type"})
    assert st in (200, 204)
    assert h["access-control-allow-origin"] == "*"
    assert "PUT" in h["access-control-allow-methods"]
    assert "content-type" in h["access-control-allow-headers"].lower()


def test_too_large_request(server, login):
    c = login()
    res = request(c, "big.ogg", MAX + 1)
    assert stanza_error(res) == ("modify", "not-acceptable"), tostr(res)
    ftl = res.find("%s/%s" % (q("jabber:client", "error"), q(NS_UPLOAD, "file-too-large")))
    assert ftl is not None and ftl.findtext(q(NS_UPLOAD, "max-file-size")) == str(MAX), tostr(res)
    assert request(c, "max.ogg", MAX).get("type") == "result"


def test_bad_requests(server, login):
    c = login()
    for name, size, ctype in (("", 10, "audio/ogg"), ("../etc/passwd", 10, None),
                              ("a\\b", 10, None), ("x.ogg", "-1", None),
                              ("x.ogg", "ten", None), ("x.ogg", 10, "no type")):
        res = request(c, name, size, ctype)
        assert stanza_error(res) == ("modify", "bad-request"), (name, size, tostr(res))
    res = c.iq("get", "<request xmlns='%s' size='10'/>" % NS_UPLOAD, to=SERVICE)
    assert stanza_error(res) == ("modify", "bad-request"), tostr(res)


def test_quota(server, login):
    c = login()
    put_url, _ = slot(c, "one.ogg", 60000)
    assert put(put_url, b"1" * 60000) == 201
    res = request(c, "two.ogg", 60000)
    assert stanza_error(res) == ("wait", "resource-constraint"), tostr(res)
    assert "Quota" in res.find(q("jabber:client", "error")).findtext(q(NS_STANZAS, "text"))
    slot(c, "small.ogg", 40000)  # what is left of 100k
    # unused slots count too: the rest is reserved now
    assert stanza_error(request(c, "more.ogg", QUOTA - 100000 + 1)) == ("wait",
                                                                        "resource-constraint")
    slot(c, "rest.ogg", QUOTA - 100000)
    other = login()
    slot(other, "two.ogg", 60000)  # the quota is per user


def test_unknown_slot_404(server):
    base = "http://127.0.0.1:%d/upload/" % server.http_port
    assert fetch("GET", base + "0" * 48 + "/x.ogg")[0] == 404
    assert fetch("PUT", base + "0" * 48 + "/x.ogg", b"abc")[0] == 404
    assert fetch("GET", base + "nothing")[0] == 404


def test_slot_url_needs_its_name(server, login):
    c = login()
    put_url, get_url = slot(c, "n.ogg", 3)
    assert put(put_url, b"abc") == 201
    other = get_url.rsplit("/", 1)[0] + "/other.ogg"
    assert fetch("GET", other)[0] == 404


def test_put_over_body_max_limit_of_route(server, login):
    """A PUT under /upload/ may be larger than http.body_max would allow elsewhere, but never
    over upload.max_size."""
    st, _, _ = fetch("PUT", "http://127.0.0.1:%d/upload/%s/x" % (server.http_port, "0" * 48),
                    b"z" * (MAX + 1))
    assert st == 413


def test_unauthenticated_request_refused(server, clients):
    raw = Raw(server.c2s_port)
    clients.append(raw)
    raw.send(stream_header())
    raw.read_until("</stream:features>")
    raw.send("<iq type='get' id='u1' to='%s'><request xmlns='%s' filename='a.ogg' size='10'/>"
             "</iq>" % (SERVICE, NS_UPLOAD))
    assert raw.wait_closed()
    assert raw.stream_error() == "not-authorized"
    assert b"<slot" not in raw.data


def test_restart_keeps_files_slots_and_quota(server, login):
    jid, pw = server.add_user()
    c = login(jid, pw)
    put_url, get_url = slot(c, "kept.ogg", len(VOICE))
    assert put(put_url, VOICE) == 201
    later_put, later_get = slot(c, "later.ogg", 5)
    c.close()
    server.restart()
    assert fetch("GET", get_url)[2] == VOICE
    assert put(put_url, VOICE) == 403, "still used after a restart"
    assert put(later_put, b"hello") == 201, "an open slot survives a restart"
    assert fetch("GET", later_get)[2] == b"hello"
    c = login(jid, pw)
    slot(c, "more.ogg", 60000)
    res = request(c, "big.ogg", QUOTA - len(VOICE) - 5 - 60000 + 1)
    assert stanza_error(res) == ("wait", "resource-constraint"), "the quota survives: " + tostr(res)
    leftovers = [f for f in os.listdir(os.path.join(server.datadir, "upload"))
                 if not (f.endswith(".meta") or f.endswith(".data"))]
    assert leftovers == []


def test_expiry_sweep_removes_files(tmp_path_factory, clients):
    from conftest import start_server
    from helpers import Client, stop_and_check

    srv = start_server(tmp_path_factory, "uploadexpiry", sets=["upload.expiry=2s"])
    try:
        jid, pw = srv.add_user()
        c = Client(srv, jid, pw).connect()
        clients.append(c)
        put_url, get_url = slot(c, "short.ogg", 4)
        assert put(put_url, b"OggS") == 201
        assert fetch("GET", get_url)[2] == b"OggS"
        updir = os.path.join(srv.datadir, "upload")
        assert len(os.listdir(updir)) == 2
        deadline = time.monotonic() + 8
        while os.listdir(updir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert os.listdir(updir) == [], "the sweep removes the file and its metadata"
        assert fetch("GET", get_url)[0] == 404
        # an unused slot lapses too (after upload.expiry, being shorter than 10 minutes)
        put_url, _ = slot(c, "never.ogg", 4)
        time.sleep(2.5)
        assert put(put_url, b"OggS") == 404
        c.close()
    finally:
        stop_and_check(srv)
