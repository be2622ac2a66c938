"""XEP-0163 personal eventing on the account's bare JID (a XEP-0060 subset with XEP-0223
publish-options): OMEMO device lists and bundles, bookmarks (XEP-0402), avatars (XEP-0084 and
the XEP-0398 conversion), +notify notifications through entity capabilities (XEP-0115)."""

import base64
import hashlib
import xml.etree.ElementTree as ET

import slix
from helpers import NS_DISCO_INFO, NS_DISCO_ITEMS, q, stanza_error, tostr

SERVER_OPTS = {"sets": ["pep.max_item_size=2k"]}

PS = "http://jabber.org/protocol/pubsub"
PS_OWNER = PS + "#owner"
PS_EVENT = PS + "#event"
PS_ERRORS = PS + "#errors"
XDATA = "jabber:x:data"
CAPS = "http://jabber.org/protocol/caps"
AXOLOTL = "eu.siacs.conversations.axolotl"
DEVICELIST = AXOLOTL + ".devicelist"
BOOKMARKS = "urn:xmpp:bookmarks:1"
AV_DATA = "urn:xmpp:avatar:data"
AV_META = "urn:xmpp:avatar:metadata"
TUNE = "http://jabber.org/protocol/tune"


def form(form_type, **fields):
    f = "".join("<field var='pubsub#%s'><value>%s</value></field>" % (k, v)
                for k, v in fields.items())
    return ("<x xmlns='%s' type='submit'><field var='FORM_TYPE' type='hidden'><value>%s</value>"
            "</field>%s</x>" % (XDATA, form_type, f))


def publish(c, node, payload, item_id=None, to=None, **options):
    """Publishes one item (with publish-options when given); returns the iq answer."""
    i = " id='%s'" % item_id if item_id else ""
    opts = ("<publish-options>%s</publish-options>" % form(PS + "#publish-options", **options)
            if options else "")
    return c.iq("set", "<pubsub xmlns='%s'><publish node='%s'><item%s>%s</item></publish>%s"
                "</pubsub>" % (PS, node, i, payload, opts), to=to)


def items(c, owner, node, extra="", attrs=""):
    return c.iq("get", "<pubsub xmlns='%s'><items node='%s'%s>%s</items></pubsub>"
                % (PS, node, attrs, extra), to=owner)


def item_ids(res):
    assert res.get("type") == "result", tostr(res)
    return [i.get("id") for i in res.find("%s/%s" % (q(PS, "pubsub"), q(PS, "items")))]


def pubsub_error(res):
    """(type, condition, pubsub#errors condition or None) of an error answer."""
    t, cond = stanza_error(res)
    err = res.find(q("jabber:client", "error"))
    app = [ch.tag.split("}")[1] for ch in err if ch.tag.startswith("{%s}" % PS_ERRORS)]
    return t, cond, app[0] if app else None


def caps_ver(features, identity="client/pc//baton-test"):
    s = identity + "<" + "".join(f + "<" for f in sorted(features))
    return base64.b64encode(hashlib.sha1(s.encode()).digest()).decode()


def caps_presence(c, features):
    """Sends available presence with XEP-0115 caps and answers the server's disco#info
    queries about them (PEP asks, for its +notify filter). Returns how many it answered."""
    ver = caps_ver(features)
    c.send_presence(extra="<c xmlns='%s' hash='sha-1' node='urn:baton:test' ver='%s'/>"
                    % (CAPS, ver))
    answered = 0
    while True:
        iq = c.wait_for("iq", lambda e: e.get("type") == "get" and
                        e.find(q(NS_DISCO_INFO, "query")) is not None, timeout=1.0)
        if iq is None:
            return answered
        node = iq.find(q(NS_DISCO_INFO, "query")).get("node")
        assert node == "urn:baton:test#" + ver, tostr(iq)  # XEP-0115 6.2
        feats = "".join("<feature var='%s'/>" % f for f in features)
        c.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' node='%s'>"
               "<identity category='client' type='pc' name='baton-test'/>%s</query></iq>"
               % (iq.get("id"), iq.get("from"), NS_DISCO_INFO, node, feats))
        answered += 1


def befriend(a, b):
    """Mutual presence subscription between two online clients (RFC 6121 3.1)."""
    for x, y in ((a, b), (b, a)):
        x.send_presence(to=y.bare, type_="subscribe")
        y.expect("presence", type="subscribe", frm=x.bare)
        y.send_presence(to=x.bare, type_="subscribed")
        x.expect("presence", type="subscribed", frm=y.bare)
    a.sync()
    b.sync()
    a.drain()
    b.drain()


def event_items(msg):
    ev = msg.find(q(PS_EVENT, "event"))
    assert ev is not None, tostr(msg)
    return ev.find(q(PS_EVENT, "items"))


# ---- discovery


def test_account_disco_shows_pep(login):
    a = login()
    res = a.iq("get", "<query xmlns='%s'/>" % NS_DISCO_INFO, to=a.bare, check=True)
    query = res.find(q(NS_DISCO_INFO, "query"))
    ids = [(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO,
                                                                           "identity"))]
    assert ("pubsub", "pep") in ids and ("account", "registered") in ids, tostr(res)
    feats = {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}
    for f in ("publish", "publish-options", "auto-create", "retrieve-items", "last-published",
              "persistent-items", "config-node", "access-presence", "access-open",
              "access-whitelist", "retract-items", "delete-nodes", "multi-items"):
        assert PS + "#" + f in feats, f
    assert "urn:xmpp:pep-vcard-conversion:0" in feats  # XEP-0398 section 2


# ---- OMEMO through slixmpp's own pubsub plugin


def test_omemo_devicelist_and_bundle_with_slixmpp(server, slixclient, login):
    a = slixclient()
    b = slixclient()
    for c in (a, b):
        slix.run(lambda c=c: (c.xmpp.register_plugin("xep_0004"),
                              c.xmpp.register_plugin("xep_0060")))
    abare = a.jid.split("/")[0]

    def open_options(c):
        f = c.xmpp["xep_0004"].make_form(ftype="submit")
        f.add_field(var="FORM_TYPE", ftype="hidden", value=PS + "#publish-options")
        f.add_field(var="pubsub#access_model", value="open")
        return f

    async def publish_both():
        dl = ET.fromstring("<list xmlns='%s'><device id='4223'/></list>" % AXOLOTL)
        await a.xmpp["xep_0060"].publish(abare, DEVICELIST, id="current", payload=dl,
                                         options=open_options(a))
        bundle = ET.fromstring(
            "<bundle xmlns='%s'><signedPreKeyPublic signedPreKeyId='1'>BQ==</signedPreKeyPublic>"
            "<identityKey>BR==</identityKey><prekeys><preKeyPublic preKeyId='1'>BS==</preKeyPublic>"
            "</prekeys></bundle>" % AXOLOTL)
        await a.xmpp["xep_0060"].publish(abare, AXOLOTL + ".bundles:4223", id="current",
                                         payload=bundle, options=open_options(a))
    slix.run(publish_both)

    async def fetch(node):
        return await b.xmpp["xep_0060"].get_items(abare, node)
    res = slix.run(fetch, DEVICELIST)
    found = res.xml.find(".//{%s}device" % AXOLOTL)
    assert found is not None and found.get("id") == "4223", str(res)
    res = slix.run(fetch, AXOLOTL + ".bundles:4223")
    assert res.xml.find(".//{%s}identityKey" % AXOLOTL).text == "BR==", str(res)
    # the same through a raw client that is no contact of a: open access
    c = login()
    assert item_ids(items(c, abare, DEVICELIST)) == ["current"]


# ---- notifications (XEP-0163 section 4)


def test_notify_contact_and_last_item_on_presence(login):
    a = login(roster=True, presence=True)
    b = login(roster=True, presence=True)
    stranger = login(roster=True, presence=True)
    befriend(a, b)
    res = publish(a, TUNE, "<tune xmlns='%s'><title>First</title></tune>" % TUNE, "t1")
    assert res.get("type") == "result", tostr(res)
    # b announces interest: it gets the last item (4.3.2) once its caps are known
    caps_presence(b, [NS_DISCO_INFO, TUNE + "+notify"])
    msg = b.expect("message", frm=a.bare)
    it = event_items(msg)
    assert it.get("node") == TUNE and it[0].get("id") == "t1", tostr(msg)
    assert it[0].find("{%s}tune/{%s}title" % (TUNE, TUNE)).text == "First"
    # a new publication reaches b (4.3.1), and the owner's own interested resource
    caps_presence(a, [NS_DISCO_INFO, TUNE + "+notify"])
    a.wait_for("message", timeout=1.0)  # a's own last item, if it came first
    publish(a, TUNE, "<tune xmlns='%s'><title>Second</title></tune>" % TUNE, "t2")
    msg = b.expect("message", frm=a.bare, pred=lambda m: event_items(m)[0].get("id") == "t2")
    assert msg.get("type") == "headline", tostr(msg)
    mine = a.expect("message", frm=a.bare, pred=lambda m: event_items(m)[0].get("id") == "t2")
    assert event_items(mine).get("node") == TUNE
    # a contact without +notify for the node hears nothing; nor does a stranger
    caps_presence(stranger, [NS_DISCO_INFO, TUNE + "+notify"])
    publish(a, TUNE, "<tune xmlns='%s'><title>Third</title></tune>" % TUNE, "t3")
    b.expect("message", frm=a.bare, pred=lambda m: event_items(m)[0].get("id") == "t3")
    stranger.no_stanza("message")
    # retract notifies too (XEP-0060 7.2.2.1)
    a.iq("set", "<pubsub xmlns='%s'><retract node='%s' notify='true'><item id='t3'/></retract>"
         "</pubsub>" % (PS, TUNE), check=True)
    msg = b.expect("message", frm=a.bare)
    assert event_items(msg).find(q(PS_EVENT, "retract")).get("id") == "t3", tostr(msg)


# ---- publish-options, max_items, access models


def test_precondition_mismatch_is_a_conflict(login):
    a = login()
    node = "urn:example:pre"
    res = publish(a, node, "<x xmlns='urn:example'/>", "1", access_model="open")
    assert res.get("type") == "result", tostr(res)
    # the same preconditions again: fine
    res = publish(a, node, "<x xmlns='urn:example'/>", "2", access_model="open")
    assert res.get("type") == "result", tostr(res)
    # XEP-0060 7.1.5: the node exists with another access model
    res = publish(a, node, "<x xmlns='urn:example'/>", "3", access_model="whitelist")
    assert pubsub_error(res) == ("cancel", "conflict", "precondition-not-met"), tostr(res)
    res = publish(a, node, "<x xmlns='urn:example'/>", "3", no_such_option="1")
    assert pubsub_error(res) == ("cancel", "conflict", "precondition-not-met"), tostr(res)
    assert item_ids(items(a, a.bare, node)) == ["2"]  # max_items 1 by default; "3" not stored


def test_max_items_trims_and_item_ids(login):
    a = login()
    node = "urn:example:hist"
    for i in range(1, 5):
        res = publish(a, node, "<n xmlns='urn:example'>%d</n>" % i, "i%d" % i, max_items="3")
        assert res.get("type") == "result", tostr(res)
    assert item_ids(items(a, a.bare, node)) == ["i2", "i3", "i4"]  # newest 3, oldest first
    assert item_ids(items(a, a.bare, node, attrs=" max_items='1'")) == ["i4"]
    assert item_ids(items(a, a.bare, node, "<item id='i3'/>")) == ["i3"]
    res = items(a, a.bare, node, "<item id='i1'/>")
    assert stanza_error(res) == ("cancel", "item-not-found"), tostr(res)
    # republishing an id makes it the newest
    publish(a, node, "<n xmlns='urn:example'>again</n>", "i2", max_items="3")
    assert item_ids(items(a, a.bare, node)) == ["i3", "i4", "i2"]
    # 'max' matches as a precondition, then configure lowers the limit and trims
    res = publish(a, node, "<n xmlns='urn:example'>5</n>", None, max_items="3")
    gen = res.find("%s/%s/%s" % (q(PS, "pubsub"), q(PS, "publish"), q(PS, "item"))).get("id")
    assert gen, "XEP-0060 7.1.2: the service makes up an id: %s" % tostr(res)
    a.iq("set", "<pubsub xmlns='%s'><configure node='%s'>%s</configure></pubsub>"
         % (PS_OWNER, node, form(PS + "#node_config", max_items="1")), check=True)
    assert item_ids(items(a, a.bare, node)) == [gen]
    res = a.iq("get", "<pubsub xmlns='%s'><configure node='%s'/></pubsub>" % (PS_OWNER, node),
               check=True)
    fields = {f.get("var"): f.findtext(q(XDATA, "value"))
              for f in res.iter(q(XDATA, "field"))}
    assert fields["pubsub#max_items"] == "1" and fields["pubsub#access_model"] == "presence"
    res = a.iq("set", "<pubsub xmlns='%s'><configure node='%s'>%s</configure></pubsub>"
               % (PS_OWNER, node, form(PS + "#node_config", access_model="roster")))
    assert stanza_error(res) == ("modify", "not-acceptable"), tostr(res)


def test_access_models(login):
    a = login(roster=True, presence=True)
    friend = login(roster=True, presence=True)
    other = login()
    befriend(a, friend)
    publish(a, "urn:example:pres", "<p xmlns='urn:example'/>", "1")
    publish(a, "urn:example:wl", "<w xmlns='urn:example'/>", "1", access_model="whitelist")
    publish(a, "urn:example:open", "<o xmlns='urn:example'/>", "1", access_model="open")
    # XEP-0060 6.5.9: no presence subscription, and a whitelist the requester is not on
    res = items(other, a.bare, "urn:example:pres")
    assert pubsub_error(res) == ("auth", "not-authorized", "presence-subscription-required"), \
        tostr(res)
    res = items(other, a.bare, "urn:example:wl")
    assert pubsub_error(res) == ("cancel", "not-allowed", "closed-node"), tostr(res)
    res = items(friend, a.bare, "urn:example:wl")
    assert pubsub_error(res) == ("cancel", "not-allowed", "closed-node"), tostr(res)
    assert item_ids(items(friend, a.bare, "urn:example:pres")) == ["1"]
    assert item_ids(items(other, a.bare, "urn:example:open")) == ["1"]
    assert item_ids(items(a, a.bare, "urn:example:wl")) == ["1"]
    # nobody but the owner writes
    res = publish(friend, "urn:example:open", "<o xmlns='urn:example'/>", "2", to=a.bare)
    assert stanza_error(res) == ("auth", "forbidden"), tostr(res)
    # disco#items lists what the requester may see
    res = other.iq("get", "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=a.bare, check=True)
    nodes = sorted(i.get("node") for i in res.iter(q(NS_DISCO_ITEMS, "item")))
    assert nodes == ["urn:example:open"], tostr(res)
    res = items(other, a.bare, "urn:example:none")
    assert stanza_error(res) == ("cancel", "item-not-found"), tostr(res)


def test_item_too_large_and_bad_publish(login):
    a = login()
    res = publish(a, "urn:example:big", "<b xmlns='urn:example'>%s</b>" % ("x" * 3000), "1")
    assert pubsub_error(res) == ("modify", "not-acceptable", "payload-too-big"), tostr(res)
    res = publish(a, "urn:example:big", "", "1")
    assert pubsub_error(res) == ("modify", "bad-request", "payload-required"), tostr(res)
    res = publish(a, "urn:example:big", "<a xmlns='urn:x'/><b xmlns='urn:x'/>", "1")
    assert pubsub_error(res) == ("modify", "bad-request", "invalid-payload"), tostr(res)
    res = items(a, a.bare, "urn:example:big")
    assert stanza_error(res) == ("cancel", "item-not-found"), "nothing was created: " + tostr(res)


# ---- persistence, bookmarks, delete


def test_persistence_across_restart_and_delete(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw)
    publish(a, "urn:example:keep", "<k xmlns='urn:example'>kept</k>", "k1", max_items="max",
            access_model="open")
    publish(a, "urn:example:keep", "<k xmlns='urn:example'>kept2</k>", "k2", max_items="max",
            access_model="open")
    server.restart()
    a = login(jid, pw)
    res = items(a, a.bare, "urn:example:keep")
    assert item_ids(res) == ["k1", "k2"]
    assert res.find(".//{urn:example}k").text == "kept"
    res = publish(a, "urn:example:keep", "<k xmlns='urn:example'/>", "k3", access_model="open",
                  max_items="max")
    assert res.get("type") == "result", "the options survived the restart: " + tostr(res)
    a.iq("set", "<pubsub xmlns='%s'><delete node='urn:example:keep'/></pubsub>" % PS_OWNER,
         check=True)
    res = items(a, a.bare, "urn:example:keep")
    assert stanza_error(res) == ("cancel", "item-not-found"), tostr(res)


def test_bookmarks_roundtrip(server, login):
    jid, pw = server.add_user()
    a = login(jid, pw)
    opts = dict(persist_items="true", max_items="max", send_last_published_item="never",
                access_model="whitelist")
    for room, name in (("one@conference.localhost", "One"), ("two@conference.localhost", "Two")):
        res = publish(a, BOOKMARKS, "<conference xmlns='%s' name='%s' autojoin='true'>"
                      "<nick>me</nick></conference>" % (BOOKMARKS, name), room, **opts)
        assert res.get("type") == "result", tostr(res)
    a.close()
    a = login(jid, pw)
    res = items(a, a.bare, BOOKMARKS)
    assert item_ids(res) == ["one@conference.localhost", "two@conference.localhost"]
    names = [c.get("name") for c in res.iter("{%s}conference" % BOOKMARKS)]
    assert names == ["One", "Two"]
    a.iq("set", "<pubsub xmlns='%s'><retract node='%s'><item id='one@conference.localhost'/>"
         "</retract></pubsub>" % (PS, BOOKMARKS), check=True)
    assert item_ids(items(a, a.bare, BOOKMARKS)) == ["two@conference.localhost"]
    other = login()
    res = items(other, a.bare, BOOKMARKS)
    assert pubsub_error(res)[1] == "not-allowed", "bookmarks are private: " + tostr(res)


# ---- avatars (XEP-0084 + XEP-0398)


def test_avatar_hash_in_presence_and_vcard(login):
    a = login(roster=True, presence=True)
    b = login(roster=True, presence=True)
    befriend(a, b)
    image = b"\x89PNG\r\n\x1a\n" + b"baton" * 20
    sha = hashlib.sha1(image).hexdigest()
    b64 = base64.b64encode(image).decode()
    publish(a, AV_DATA, "<data xmlns='%s'>%s</data>" % (AV_DATA, b64), sha)
    res = publish(a, AV_META, "<metadata xmlns='%s'><info id='%s' type='image/png' bytes='%d' "
                  "height='1' width='1'/></metadata>" % (AV_META, sha, len(image)), sha)
    assert res.get("type") == "result", tostr(res)
    # the next presence carries the hash (XEP-0398 section 4), an empty <x/> is overwritten
    a.send_presence(status="new avatar", extra="<x xmlns='vcard-temp:x:update'/>")
    p = b.expect("presence", pred=lambda e: e.get("from") == a.jid and
                 e.findtext(q("jabber:client", "status")) == "new avatar")
    assert p.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") == sha, tostr(p)
    # an explicit empty photo is left alone
    a.send_presence(status="no photo", extra="<x xmlns='vcard-temp:x:update'><photo/></x>")
    p = b.expect("presence", pred=lambda e: e.findtext(q("jabber:client", "status")) == "no photo")
    assert p.findtext("{vcard-temp:x:update}x/{vcard-temp:x:update}photo") in (None, ""), tostr(p)
    # vCard reads show the PEP avatar as PHOTO (section 3.1)
    res = b.iq("get", "<vCard xmlns='vcard-temp'/>", to=a.bare, check=True)
    photo = res.find("{vcard-temp}vCard/{vcard-temp}PHOTO")
    assert photo is not None, tostr(res)
    assert photo.findtext("{vcard-temp}TYPE") == "image/png"
    assert photo.findtext("{vcard-temp}BINVAL") == b64
