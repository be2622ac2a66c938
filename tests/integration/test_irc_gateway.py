"""The XMPP<->IRC gateway biboumi as a real XEP-0114 component of batond: a baton user joins an
IRC channel on a local ngircd through biboumi and talks with a plain IRC client. The same
exchange is first run with irc.Acceptor standing in for batond, so a failure of the baton
tests alone points at batond.

Invariant: every process here (ngircd, biboumi) listens or connects on 127.0.0.1 only, on
free ports, with its files in pytest's temporary directories, and is stopped by its fixture.
"""

import os
import secrets
import threading

import pytest

from helpers import free_port, tostr
from irc import (NS_COMMANDS, NS_MUC, Acceptor, Biboumi, Component, HandshakeFailed, IrcClient,
                 Ngircd, body_of, child, configure_irc_server, is_self_presence, room_jid,
                 wait_port)

GATEWAY = "irc.localhost"
PASSWORD = "gw-" + secrets.token_hex(6)
COMPONENT_PORT = free_port()
IRC_HOST = "127.0.0.1"  # biboumi's name for the IRC server: the node of its JIDs

SERVER_OPTS = {"domain": "localhost", "sets": [
    "component.listen=127.0.0.1:%d" % COMPONENT_PORT,
    "component.secret.%s=%s" % (GATEWAY, PASSWORD),
]}

pytestmark = pytest.mark.skipif(
    not (os.access("/usr/sbin/ngircd", os.X_OK) and os.access("/usr/bin/biboumi", os.X_OK)),
    reason="ngircd and biboumi are not installed (scripts/deps.sh test)")


@pytest.fixture(scope="module")
def ngircd(tmp_path_factory):
    n = Ngircd(tmp_path_factory.mktemp("ngircd")).start()
    yield n
    n.stop()


@pytest.fixture
def irc_user(ngircd):
    """irc_user(channel) -> a registered IrcClient that has joined channel."""
    made = []

    def make(channel):
        c = IrcClient(ngircd.port, "irc" + secrets.token_hex(3)).register().join(channel)
        made.append(c)
        return c
    yield make
    for c in made:
        c.quit()


# ---------------------------------------------------------------------------------------------
# the equipment on its own: no batond involved


def test_harness_component_against_acceptor():
    """irc.Component and irc.Acceptor agree on XEP-0114 (handshake, stanzas both ways)."""
    acc = Acceptor("comp.test", "pw")

    def accept_in_background():
        box = {}

        def run():
            try:
                box["stream"] = acc.accept(5)
            except AssertionError as e:
                box["error"] = e
        t = threading.Thread(target=run)
        t.start()
        return t, box
    try:
        c = Component(acc.port, "comp.test", "pw")
        t, box = accept_in_background()
        c.connect()
        t.join(5)
        st = box["stream"]
        st.message("u@localhost/r", "bot@comp.test", "hi", id_="h1")
        assert body_of(c.expect("message", id="h1")) == "hi"
        c.message("bot@comp.test", "u@localhost/r", "ho", id_="h2")
        assert body_of(st.expect("message", id="h2")) == "ho"
        c.close()
        bad = Component(acc.port, "comp.test", "wrong")
        t, box = accept_in_background()
        with pytest.raises(HandshakeFailed) as ei:
            bad.connect()
        t.join(5)
        assert ei.value.condition == "not-authorized"
        assert "wrong handshake" in str(box.get("error"))
        bad.abort()
    finally:
        acc.close()


def test_biboumi_with_own_acceptor(tmp_path, ngircd, irc_user):
    """biboumi + ngircd work here: our acceptor plays the XMPP server and a user at once."""
    irc = irc_user("#alone")
    acc = Acceptor(GATEWAY, PASSWORD)
    bib = Biboumi(tmp_path / "biboumi", acc.port, hostname=GATEWAY, password=PASSWORD).start()
    try:
        st = acc.accept(10)
        user = "bob@localhost/res"
        configure_irc_server(lambda to, t, p: st.iq(user, to, t, p),
                             "%s@%s" % (IRC_HOST, GATEWAY), ngircd.port)
        room = room_jid("#alone", IRC_HOST, GATEWAY)
        st.presence(user, room + "/bobx", extra="<x xmlns='%s'/>" % NS_MUC)
        st.expect("presence", is_self_presence, timeout=10, what="self-presence in the room")
        irc.expect("JOIN", lambda m: m.nick == "bobx", what="bobx joins")
        st.message(user, room, "hello from xmpp", type_="groupchat")
        irc.expect_privmsg("#alone", "hello from xmpp", frm="bobx")
        irc.privmsg("#alone", "hello from irc")
        m = st.expect("message", lambda e: body_of(e) == "hello from irc")
        assert m.get("type") == "groupchat" and m.get("from") == "%s/%s" % (room, irc.nick)
        assert m.get("to") == user
        st.presence(user, room + "/bobx", type_="unavailable")
        st.expect("presence", lambda e: e.get("type") == "unavailable" and
                  e.get("from") == room + "/bobx", what="own unavailable")
        irc.expect("PART", lambda m: m.nick == "bobx", what="bobx leaves")
    except AssertionError as e:
        raise AssertionError("%s\n--- biboumi log:\n%s" % (e, bib.log_tail(40)))
    finally:
        bib.stop(streams=acc.streams)
        acc.close()


# ---------------------------------------------------------------------------------------------
# biboumi as a component of batond


@pytest.fixture(scope="module")
def gateway(server, ngircd, tmp_path_factory):
    """biboumi connected to batond's component port (irc.localhost)."""
    try:
        wait_port(COMPONENT_PORT, timeout=5, what="batond's component port")
    except AssertionError as e:
        pytest.fail("batond does not listen on component.listen: %s" % e, pytrace=False)
    bib = Biboumi(tmp_path_factory.mktemp("biboumi"), COMPONENT_PORT, hostname=GATEWAY,
                  password=PASSWORD).start()
    try:
        bib.wait_log(r"Authenticated with the XMPP server", timeout=10)
    except AssertionError as e:
        bib.stop()
        pytest.fail(str(e), pytrace=False)
    yield bib
    bib.stop()


def join(c, room, nick):
    c.send_presence(to="%s/%s" % (room, nick), extra="<x xmlns='%s'/>" % NS_MUC)
    return c.expect("presence", is_self_presence, timeout=10, what="self-presence in %s" % room)


def test_disco_and_commands_through_baton(gateway, login):
    c = login(presence=True)
    res = c.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=GATEWAY)
    assert res.get("type") == "result" and res.get("from") == GATEWAY, tostr(res)
    q = child(res, "query")
    assert any(x.get("category") == "conference" for x in q if x.tag.endswith("identity")), \
        tostr(res)
    res = c.iq("get", "<query xmlns='http://jabber.org/protocol/disco#items' node='%s'/>"
               % NS_COMMANDS, to="%s@%s" % (IRC_HOST, GATEWAY))
    assert res.get("type") == "result", tostr(res)
    nodes = [x.get("node") for x in child(res, "query")]
    assert "configure" in nodes, tostr(res)


def test_baton_user_talks_with_irc(gateway, ngircd, login, irc_user):
    irc = irc_user("#test")
    c = login(presence=True)
    try:
        configure_irc_server(lambda to, t, p: c.iq(t, p, to=to), "%s@%s" % (IRC_HOST, GATEWAY),
                             ngircd.port)
        room = room_jid("#test", IRC_HOST, GATEWAY)
        p = join(c, room, "batonnick")
        assert p.get("from") == room + "/batonnick" and p.get("to") == c.jid, tostr(p)
        irc.expect("JOIN", lambda m: m.nick == "batonnick", what="batonnick joins")
        # the IRC user is in the room's roster
        c.expect("presence", lambda e: e.get("from") == "%s/%s" % (room, irc.nick))

        c.message(room, "hello irc, from baton", type_="groupchat")
        irc.expect_privmsg("#test", "hello irc, from baton", frm="batonnick")
        # the room reflects our own message back (XEP-0045 7.4)
        c.expect("message", lambda e: body_of(e) == "hello irc, from baton" and
                 e.get("from") == room + "/batonnick")

        irc.privmsg("#test", "hello baton, from irc")
        m = c.expect("message", lambda e: body_of(e) == "hello baton, from irc", timeout=10)
        assert m.get("type") == "groupchat" and m.get("from") == "%s/%s" % (room, irc.nick)
        assert m.get("to") == c.jid

        # a private IRC message arrives as a chat message from nick%server@gateway
        irc.privmsg("batonnick", "psst")
        m = c.expect("message", lambda e: body_of(e) == "psst", timeout=10)
        assert m.get("from", "").lower().startswith("%s%%%s@%s" % (irc.nick, IRC_HOST, GATEWAY))

        c.send_presence(to=room + "/batonnick", type_="unavailable")
        c.expect("presence", lambda e: e.get("type") == "unavailable" and
                 e.get("from") == room + "/batonnick", what="own unavailable from the room")
        irc.expect("PART", lambda m: m.nick == "batonnick", what="batonnick leaves")
    except AssertionError as e:
        raise AssertionError("%s\n--- biboumi log:\n%s" % (e, gateway.log_tail(40)))


def test_baton_user_logout_leaves_channel(gateway, ngircd, login, irc_user):
    """When the user goes offline, batond sends unavailable presence to the room it had sent
    directed presence to (RFC 6121 4.6.3), and biboumi leaves the IRC channel."""
    irc = irc_user("#gone")
    c = login(presence=True)
    configure_irc_server(lambda to, t, p: c.iq(t, p, to=to), "%s@%s" % (IRC_HOST, GATEWAY),
                         ngircd.port)
    join(c, room_jid("#gone", IRC_HOST, GATEWAY), "leaver")
    irc.expect("JOIN", lambda m: m.nick == "leaver")
    c.close()
    m = irc.wait_for("PART", lambda m: m.nick == "leaver", timeout=10) or \
        irc.wait_for("QUIT", lambda m: m.nick == "leaver", timeout=0.1)
    assert m is not None, "the IRC side never saw the logged-out user leave\n%s" % \
        gateway.log_tail(30)
