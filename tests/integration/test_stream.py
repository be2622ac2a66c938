"""Stream set-up against a real batond: STARTTLS and direct TLS (XEP-0368), SASL SCRAM-SHA-256,
SCRAM-SHA-1 and PLAIN with slixmpp and with our own client, authentication failures, resource
binding and its conflicts (RFC 6120 sections 4-7).

Invariant: every test uses fresh accounts, so tests are independent of their order.
"""

import base64

import pytest

from helpers import (NS_BIND, NS_ROSTERVER, NS_SASL, NS_SESSION, NS_STREAM, NS_TLS,
                     AuthFailed, bare, q, tostr)
import slix

SERVER_OPTS = {"domain": "localhost"}

MECHS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]


# ---- stream header and features


def test_stream_header_and_starttls_required(server, clients):
    c = server.client("nobody@localhost", "x")
    clients.append(c)
    c._open_socket()
    feats = c.open_stream()
    # RFC 6120 4.7: the response header carries from=<domain>, an id and version 1.0
    assert c.stream_attrs.get("from") == "localhost", c.stream_attrs
    assert c.stream_attrs.get("id"), c.stream_attrs
    assert c.stream_attrs.get("version") == "1.0", c.stream_attrs
    assert c.parser.root.tag == q(NS_STREAM, "stream")
    # RFC 6120 5.3.1: STARTTLS offered; baton requires it before authentication
    tls = feats.find(q(NS_TLS, "starttls"))
    assert tls is not None, tostr(feats)
    assert tls.find(q(NS_TLS, "required")) is not None, "STARTTLS not marked required"
    # PLAIN is never offered without TLS
    assert "PLAIN" not in c.mechanisms(), tostr(feats)


def test_auth_without_tls_is_refused(server, clients):
    jid, pw = server.add_user()
    c = server.client(jid, pw)
    clients.append(c)
    c._open_socket()
    c.open_stream()
    # whatever the server answers (SASL failure such as <encryption-required/>, or a stream
    # error), it must not authenticate a client that skipped the required STARTTLS
    plain = b"\0" + jid.split("@")[0].encode() + b"\0" + pw.encode()
    c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
           % (NS_SASL, base64.b64encode(plain).decode()))
    el = c.wait_for(pred=lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure"),
                                             q(NS_STREAM, "error")), timeout=5)
    assert el is None or el.tag != q(NS_SASL, "success"), "PLAIN accepted without TLS"
    assert el is not None or c.closed, "no answer to <auth/> before TLS"


def test_features_after_tls(server, clients):
    c = server.client("nobody@localhost", "x")
    clients.append(c)
    c._open_socket()
    c.open_stream()
    feats = c.starttls()
    assert feats.find(q(NS_TLS, "starttls")) is None, "STARTTLS offered twice"
    mechs = c.mechanisms()
    for m in MECHS:
        assert m in mechs, "%s not offered after TLS: %s" % (m, mechs)


def test_features_after_auth(login):
    c = login()  # connect() authenticates and binds; look at the post-auth features
    feats = c.features
    assert feats.find(q(NS_BIND, "bind")) is not None, tostr(feats)
    assert feats.find(q(NS_SASL, "mechanisms")) is None, "SASL offered after auth"
    assert feats.find(q(NS_ROSTERVER, "ver")) is not None, \
        "roster versioning not advertised (RFC 6121 2.6.1): %s" % tostr(feats)


def test_direct_tls_features(server, clients):
    c = server.client("nobody@localhost", "x", mode="tls")
    clients.append(c)
    c._open_socket()
    feats = c.open_stream()
    assert feats.find(q(NS_TLS, "starttls")) is None, "STARTTLS offered inside TLS"
    assert "PLAIN" in c.mechanisms() and "SCRAM-SHA-256" in c.mechanisms(), tostr(feats)


# ---- successful logins


@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("mode", ["starttls", "tls"])
def test_login_own_client(login, mech, mode):
    c = login(mech=mech, mode=mode)
    assert bare(c.jid) == c.bare
    c.iq("set", "<session xmlns='%s'/>" % NS_SESSION, check=True)


@pytest.mark.parametrize("mech", MECHS)
def test_login_slixmpp_starttls(server, slixclient, mech):
    jid, pw = server.add_user()
    c = slixclient(jid, pw, mech=mech)
    assert bare(c.jid) == jid
    assert c.xmpp["feature_mechanisms"].mech.name == mech
    c.send_message(c.jid, "hello me")
    assert c.wait_message(frm=c.jid, body="hello me")["to"] == c.jid


def test_login_slixmpp_direct_tls(server, slixclient):
    jid, pw = server.add_user()
    c = slixclient(jid, pw, direct_tls=True, mech="SCRAM-SHA-256")
    c.send_message(c.jid, "direct")
    c.wait_message(frm=c.jid, body="direct")


def test_login_user_with_special_password(login, server):
    # SASLprep'd passwords with characters SCRAM has to escape in other places
    jid, pw = server.add_user(password="p,=w\u00e9rd \u2603")
    for mech in MECHS:
        c = login(jid, pw, mech=mech)
        c.close()


def test_slixmpp_wrong_password(server, clients):
    jid, _ = server.add_user()
    c = slix.SlixClient(server, jid, "wrong", mech="SCRAM-SHA-256")
    clients.append(c)
    with pytest.raises(slix.LoginFailed):
        c.connect(timeout=8)
    assert c.failed.is_set(), "expected a SASL failure, got: disconnected=%s errors=%s" % (
        c.disconnected.is_set(), c.stream_errors)


# ---- failures


def _fresh(server, clients, jid, pw, mode="starttls"):
    c = server.client(jid, pw, mode=mode)
    clients.append(c)
    c._open_socket()
    c.open_stream()
    if mode == "starttls":
        c.starttls()
    return c


@pytest.mark.parametrize("mech", MECHS)
def test_wrong_password_and_unknown_user_fail_alike(server, clients, mech):
    jid, pw = server.add_user()
    c = _fresh(server, clients, jid, pw)
    with pytest.raises(AuthFailed) as wrong:
        c.authenticate(mech, password=pw + "x")
    assert wrong.value.condition == "not-authorized"
    c2 = _fresh(server, clients, "ghost@localhost", "whatever")
    with pytest.raises(AuthFailed) as unknown:
        c2.authenticate(mech, user="ghost" + jid.split("@")[0], password="whatever")
    assert unknown.value.condition == "not-authorized"
    # RFC 6120 6.4.5 / 13.8: do not reveal which accounts exist
    assert [x.tag for x in wrong.value.element] == [x.tag for x in unknown.value.element]
    # the stream stays usable after one failure: a correct retry succeeds
    c.authenticate(mech)
    c.bind()


def test_auth_failure_limit_closes_stream(server, clients):
    jid, pw = server.add_user()
    c = _fresh(server, clients, jid, pw)
    # limits.auth_failures (default 3): each failed attempt is answered with <failure/>, the
    # stream survives the first two and is closed with <policy-violation/> after the third
    for i in range(3):
        with pytest.raises(AuthFailed):
            c.authenticate("SCRAM-SHA-256", password="bad")
        if i < 2:
            assert not c.closed and c.stream_error is None, "closed after %d failures" % (i + 1)
    assert c.wait_closed(timeout=5) == "policy-violation"


def _plain(c, authzid, user, pw):
    c.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
           % (NS_SASL, base64.b64encode(("%s\0%s\0%s" % (authzid, user, pw)).encode()).decode()))
    return c.expect(pred=lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure")))


def test_sasl_bad_base64(server, clients):
    jid, pw = server.add_user()
    c = _fresh(server, clients, jid, pw)
    c.send("<auth xmlns='%s' mechanism='PLAIN'>!!not*base64</auth>" % NS_SASL)
    fail = c.expect(pred=lambda e: e.tag == q(NS_SASL, "failure"))
    assert fail.find(q(NS_SASL, "incorrect-encoding")) is not None, tostr(fail)  # 6.5.2


def test_plain_authzid_of_other_user(server, clients):
    jid, pw = server.add_user()
    other, _ = server.add_user()
    c = _fresh(server, clients, jid, pw)
    el = _plain(c, other, jid.split("@")[0], pw)
    assert el.find(q(NS_SASL, "invalid-authzid")) is not None, tostr(el)  # RFC 6120 6.5.6


def test_plain_authzid_of_own_jid(server, clients):
    jid, pw = server.add_user()
    c = _fresh(server, clients, jid, pw)
    # RFC 6120 6.3.8 / 6.5.6: the user may authorize as itself; older clients send their own
    # bare JID as authzid, which is not an invalid authzid
    el = _plain(c, jid, jid.split("@")[0], pw)
    assert el.tag == q(NS_SASL, "success"), tostr(el)


def test_scram_tampered_nonce(server, clients):
    jid, pw = server.add_user()
    c = _fresh(server, clients, jid, pw)
    first = b"n,,n=" + jid.split("@")[0].encode() + b",r=clientnonce123"
    c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>"
           % (NS_SASL, base64.b64encode(first).decode()))
    ch = c.expect(pred=lambda e: e.tag == q(NS_SASL, "challenge"))
    sf = dict(kv.split("=", 1) for kv in base64.b64decode(ch.text).decode().split(","))
    assert sf["r"].startswith("clientnonce123") and len(sf["r"]) > len("clientnonce123")
    final = "c=biws,r=%s,p=%s" % ("clientnonce123forged", base64.b64encode(b"x" * 32).decode())
    c.send("<response xmlns='%s'>%s</response>" % (NS_SASL, base64.b64encode(final.encode())
                                                   .decode()))
    el = c.expect(pred=lambda e: e.tag in (q(NS_SASL, "success"), q(NS_SASL, "failure")))
    assert el.tag == q(NS_SASL, "failure"), tostr(el)


def test_auth_abort(server, clients):
    jid, pw = server.add_user()
    c = _fresh(server, clients, jid, pw)
    first = b"n,,n=" + jid.split("@")[0].encode() + b",r=abcdefgh"
    c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>"
           % (NS_SASL, base64.b64encode(first).decode()))
    c.expect(pred=lambda e: e.tag == q(NS_SASL, "challenge"))
    c.send("<abort xmlns='%s'/>" % NS_SASL)
    fail = c.expect(pred=lambda e: e.tag == q(NS_SASL, "failure"))
    assert fail.find(q(NS_SASL, "aborted")) is not None, tostr(fail)  # RFC 6120 6.4.4
    c.authenticate("SCRAM-SHA-256")
    c.bind()


def test_unknown_mechanism(server, clients):
    jid, pw = server.add_user()
    c = _fresh(server, clients, jid, pw)
    c.send("<auth xmlns='%s' mechanism='X-BOGUS'>=</auth>" % NS_SASL)
    fail = c.expect(pred=lambda e: e.tag == q(NS_SASL, "failure"))
    assert fail.find(q(NS_SASL, "invalid-mechanism")) is not None, tostr(fail)  # 6.5.5


# ---- resource binding


def test_bind_generated_resource(login):
    c = login()  # no resource requested
    assert "/" in c.jid and c.jid.split("/", 1)[1], c.jid
    assert bare(c.jid) == c.bare


def test_bind_requested_resource(login):
    c = login(resource="balcony")
    assert c.jid == c.bare + "/balcony"


def test_two_generated_resources_differ(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw)
    b = login(jid, pw)
    assert a.jid != b.jid


def test_bind_conflict_old_session_loses(server, login):
    jid, pw = server.add_user()
    old = login(jid, pw, resource="phone", presence=True)
    new = login(jid, pw, resource="phone")
    assert new.jid == jid + "/phone"
    # RFC 6120 7.7.2.2: the server terminates the old session with <conflict/>
    assert old.wait_closed(timeout=5) == "conflict"
    # and the new session is the one that receives stanzas for the full JID
    other = login()
    other.message(jid + "/phone", "who has it?")
    new.expect_message(frm=other.jid, body="who has it?")


def test_legacy_session_iq(login):
    c = login()
    res = c.iq("set", "<session xmlns='%s'/>" % NS_SESSION)
    assert res.get("type") == "result", tostr(res)


def test_bind_twice_is_rejected(login):
    c = login()
    res = c.iq("set", "<bind xmlns='%s'><resource>again</resource></bind>" % NS_BIND)
    # a second bind on the same stream is not allowed (one resource per stream)
    assert res.get("type") == "error", tostr(res)


def test_client_closes_stream(login):
    c = login()
    c.send("</stream:stream>")
    # RFC 6120 4.4: the server answers with its own closing tag and closes the TCP connection
    assert c.wait_closed(timeout=5) is None


def test_jid_case_is_normalised(server, login):
    jid, pw = server.add_user()
    c = login(jid.upper().replace("LOCALHOST", "localhost"), pw)
    assert bare(c.jid) == jid, c.jid


def test_idle_sessions_keep_working_after_their_parser_is_freed(server, login):
    """An idle session gives its parser's memory back (after 5 s, checked every 5 s); the
    next stanzas parse as before, with the stream's prefixes and default namespace."""
    import time
    a = login(presence=True)
    b = login(presence=True)
    time.sleep(11)
    a.message(b.bare, "after a nap")
    m = b.wait_for("message")
    assert m is not None and m.findtext("{jabber:client}body") == "after a nap"
    b.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=server.domain, check=True)
