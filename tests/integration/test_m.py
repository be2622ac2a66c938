"""/m/, the web client without JavaScript, driven like a browser would (and rendered by w3m):
log in, contacts, conversations with history, sending and receiving with XMPP users, rooms,
reloads, log out, the session object's lifetime, and the XSS and CSRF defences.

Invariant: Browser keeps cookies like a browser and never follows redirects on its own, so
every test sees each status and Location it gets.
"""

import http.client
import re
import shutil
import subprocess
import time
import urllib.parse

import pytest

from conftest import start_server
from helpers import NS_CLIENT, q, stop_and_check

SERVER_OPTS = {}


class Browser:
    def __init__(self, server):
        self.port = server.http_port
        self.cookies = {}

    def request(self, method, path, form=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            page = r.read().decode("utf-8")
        finally:
            c.close()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, value = v.split(";", 1)[0].split("=", 1)
                if "Max-Age=0" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
        self.last_headers = dict((k.lower(), v) for k, v in r.getheaders())
        return r.status, page

    def get(self, path):
        return self.request("GET", path)

    def follow(self, status, page):
        while status in (302, 303):
            status, page = self.get(self.last_headers["location"])
        return status, page

    def submit(self, page, action, **fields):
        """Posts the form of page whose action is action, with its token and fields."""
        m = re.search(r"<form method='post' action='%s'.*?</form>" % re.escape(action), page,
                      re.S)
        assert m, "no form %s in page:\n%s" % (action, page)
        form = dict(re.findall(r"<input type='hidden' name='(\w+)' value='([^']*)'>", m.group(0)))
        form = {k: html_unescape(v) for k, v in form.items()}
        form.update(fields)
        return self.request("POST", action, form)

    def login(self, user, password):
        status, page = self.get("/m/")
        assert status == 200 and "/m/login" in page
        status, page = self.submit(page, "/m/login", user=user, password=password)
        return self.follow(status, page)


def html_unescape(s):
    return (s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
            .replace("&#39;", "'").replace("&amp;", "&"))


def user(server):
    jid, pw = server.add_user()
    return jid, jid.split("@")[0], pw


def logged_in(server):
    jid, name, pw = user(server)
    b = Browser(server)
    status, page = b.login(name, pw)
    assert status == 200 and "Contacts" in page, page
    return b, jid, page


def chat_url(jid):
    return "/m/chat?with=" + urllib.parse.quote(jid)


def test_wrong_password_is_refused(server):
    jid, name, pw = user(server)
    b = Browser(server)
    status, page = b.login(name, "not-" + pw)
    assert status == 200 and "Wrong user name or password" in page
    assert "baton_m" not in b.cookies


def test_chat_with_a_tcp_user_reload_and_logout(server, clients):
    b, jid, page = logged_in(server)
    t = server.new_user_client(presence=True)
    clients.append(t)
    tbare = t.jid.split("/")[0]
    t.message(jid, "hello from tcp")
    time.sleep(0.3)
    status, page = b.get("/m/")
    assert tbare in page and "1 new" in page
    status, page = b.get(chat_url(tbare))
    assert "hello from tcp" in page
    status, page = b.submit(page, "/m/send", body="hello from the web")
    assert status == 303
    m = t.wait_for("message")
    assert m.findtext(q(NS_CLIENT, "body")) == "hello from the web"
    assert m.get("from").startswith(jid + "/web-")
    # A reload (a new connection, the same cookie) finds the conversation as it was.
    status, page = b.get(chat_url(tbare))
    assert "hello from tcp" in page and "hello from the web" in page
    status, page = b.submit(page, "/m/logout")
    assert status == 303 and "baton_m" not in b.cookies
    status, page = b.follow(status, page)
    assert "/m/login" in page


def test_history_from_the_archive(server, clients):
    jid, name, pw = user(server)
    t = server.new_user_client(presence=True)
    clients.append(t)
    for i in range(3):
        t.message(jid, "earlier %d" % i)
    time.sleep(0.5)
    b = Browser(server)
    b.login(name, pw)
    status, page = b.get(chat_url(t.jid.split("/")[0]))
    found = re.findall(r"earlier (\d)", page)
    assert found == ["0", "1", "2"], page  # each once, in order


def test_old_cookie_after_logout_gets_the_login_page(server):
    b, jid, page = logged_in(server)
    old = dict(b.cookies)
    b.submit(page, "/m/logout")
    b.cookies = old
    status, page = b.get("/m/")
    assert status == 200 and "/m/login" in page


def test_forms_need_their_own_token(server, clients):
    b, jid, page = logged_in(server)
    t = server.new_user_client(presence=True)
    clients.append(t)
    tbare = t.jid.split("/")[0]
    status, _ = b.request("POST", "/m/send", {"with": tbare, "body": "forged"})
    assert status == 403
    status, _ = b.request("POST", "/m/send", {"with": tbare, "body": "forged", "token": "0" * 32})
    assert status == 403
    # The token of another form does not do either.
    join_token = html_unescape(re.search(r"action='/m/join'><p><input type='hidden' "
                                         r"name='token' value='(\w+)'", page).group(1))
    status, _ = b.request("POST", "/m/send", {"with": tbare, "body": "forged",
                                              "token": join_token})
    assert status == 403
    t.no_stanza("message", timeout=0.5)
    # Another browser's session cookie is not a token either: a cross-site POST fails.
    status, _ = Browser(server).request("POST", "/m/send", {"with": tbare, "body": "x"})
    assert status == 303  # to the login page; nothing was sent
    t.no_stanza("message", timeout=0.5)


def test_login_form_needs_its_cookie(server):
    jid, name, pw = user(server)
    b = Browser(server)
    status, page = b.get("/m/")
    token = re.search(r"name='token' value='(\w+)'", page).group(1)
    b.cookies.clear()  # a page on another site posting our login form
    status, page = b.request("POST", "/m/login", {"user": name, "password": pw, "token": token})
    assert status == 200 and "expired" in page and "baton_m" not in b.cookies


def test_everything_is_escaped(server, clients):
    b, jid, page = logged_in(server)
    t = server.new_user_client(presence=True)
    clients.append(t)
    evil = "<script>alert('x')</script><img src=x onerror=alert(1)>\"&"
    t.message(jid, evil)
    time.sleep(0.3)
    status, page = b.get(chat_url(t.jid.split("/")[0]))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    # And should anything slip through, the page may run no script at all.
    csp = b.last_headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "script-src" not in csp
    status, _ = b.get("/m/chat?with=%3Cscript%3E%40x")
    assert status == 400


def test_bad_form_input_loses_nothing(server, clients):
    b, jid, page = logged_in(server)
    t = server.new_user_client(presence=True)
    clients.append(t)
    tbare = t.jid.split("/")[0]
    status, page = b.get(chat_url(tbare))
    token = re.search(r"action='/m/send'><p><input type='hidden' name='token' value='(\w+)'",
                      page).group(1)
    # Not UTF-8, and a control character XML cannot carry: refused, the session lives on.
    for body in ("bad%FF%FEbytes", "bell%07"):
        raw = "with=%s&token=%s&body=%s" % (urllib.parse.quote(tbare), token, body)
        c = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=5)
        c.request("POST", "/m/send", body=raw, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "baton_m=" + b.cookies["baton_m"]})
        assert c.getresponse().status == 303
        c.close()
    t.no_stanza("message", timeout=0.5)
    status, page = b.submit(b.get(chat_url(tbare))[1], "/m/send", body="still here")
    assert t.wait_for("message").findtext(q(NS_CLIENT, "body")) == "still here"


def test_rooms(server, clients):
    b, jid, page = logged_in(server)
    room = "webroom%d@conference.localhost" % int(time.time() * 1000 % 1000000)
    t = server.new_user_client(presence=True)
    clients.append(t)
    t.send("<presence to='%s/tcpuser'><x xmlns='http://jabber.org/protocol/muc'/></presence>"
           % room)
    t.wait_for("presence", pred=lambda p: p.get("from") == room + "/tcpuser")
    status, page = b.submit(page, "/m/join", room=room, nick="webuser")
    status, page = b.follow(status, page)
    t.wait_for("presence", pred=lambda p: p.get("from") == room + "/webuser")
    t.send("<message to='%s' type='groupchat'><body>hi room</body></message>" % room)
    time.sleep(0.3)
    status, page = b.get(chat_url(room))
    assert "hi room" in page and "in the room as" in page
    status, page = b.submit(page, "/m/send", body="hi from the web")
    m = t.wait_for("message", pred=lambda e: e.findtext(q(NS_CLIENT, "body")) == "hi from the web")
    assert m.get("from") == room + "/webuser"
    status, page = b.submit(b.get(chat_url(room))[1], "/m/leave")
    t.wait_for("presence", pred=lambda p: p.get("from") == room + "/webuser"
               and p.get("type") == "unavailable")


def test_add_contact_and_approve(server, clients):
    b, jid, page = logged_in(server)
    t = server.new_user_client(presence=True, roster=True)
    clients.append(t)
    tbare = t.jid.split("/")[0]
    # The TCP user asks to see the web user's presence; the web user allows it.
    t.send("<presence to='%s' type='subscribe'/>" % jid)
    time.sleep(0.3)
    status, page = b.get("/m/")
    assert "wants to see your presence" in page
    b.submit(page, "/m/approve")
    t.wait_for("presence", pred=lambda p: p.get("type") == "subscribed")
    status, page = b.get("/m/")
    status, page = b.submit(page, "/m/add", jid=tbare)
    t.wait_for("presence", pred=lambda p: p.get("type") == "subscribe")


@pytest.mark.skipif(not shutil.which("w3m"), reason="w3m is not installed")
def test_w3m_renders_the_pages(server, clients):
    b, jid, page = logged_in(server)
    t = server.new_user_client(presence=True)
    clients.append(t)
    t.message(jid, "read me in a terminal")
    time.sleep(0.3)
    url = "http://127.0.0.1:%d%s" % (server.http_port, chat_url(t.jid.split("/")[0]))
    out = subprocess.run(["w3m", "-dump", "-header", "Cookie: baton_m=" + b.cookies["baton_m"],
                          url], capture_output=True, text=True, timeout=20).stdout
    assert "read me in a terminal" in out and "[Send]" in out.replace(" ", ""), out
    out = subprocess.run(["w3m", "-dump", "http://127.0.0.1:%d/m/" % server.http_port],
                         capture_output=True, text=True, timeout=20).stdout
    assert "User" in out and "Password" in out and "Log in" in out, out


def test_session_object_ends_after_thin_hold(tmp_path_factory):
    srv = start_server(tmp_path_factory, "m_hold", sets=["thin.hold=1s"])
    try:
        jid, name, pw = user(srv)
        b = Browser(srv)
        status, page = b.login(name, pw)
        assert "Contacts" in page
        status, page = b.get("/m/")  # a request keeps it alive
        time.sleep(2.5)
        status, page = b.get("/m/")
        assert "/m/login" in page
    finally:
        stop_and_check(srv)


def test_odd_urls_are_answered(server):
    b, jid, page = logged_in(server)
    for path in ("/m/chat", "/m/chat?", "/m/chat?with=", "/m/nothing", "/m/chat?with=%FF"):
        status, _ = b.get(path)
        assert status in (400, 404), (path, status)
    status, page = b.get("/m/")
    assert status == 200 and "Contacts" in page
