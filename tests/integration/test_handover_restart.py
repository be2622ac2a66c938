"""Handover to another account survives a restart (seed 000 R34): after a support agent handed a
conversation to a colleague, the customer's messages keep reaching the colleague when batond
has restarted in between (the redirect is kept in the account's private storage).

Invariant: a module of its own, because it restarts its server.
"""

from helpers import q, tostr
from test_continuity import NS_CONT, body, chat, control, offered, transfer


def test_handover_redirect_survives_restart(server, login):
    a1j, a1p = server.add_user()
    a2j, a2p = server.add_user()
    cj, cp = server.add_user()
    agent1 = login(jid=a1j, password=a1p, presence=True)
    agent2 = login(jid=a2j, password=a2p, presence=True)
    customer = login(jid=cj, password=cp, presence=True)
    chat(customer, agent1, 1, "help")
    agent1.iq("set", "<preferences xmlns='%s' handover_to='%s'/>" % (NS_CONT, a2j), check=True)
    t = transfer(agent1, to=agent2.jid, sessions=[("with", cj)])
    offered(agent2)
    res = agent2.iq("set", "<accept xmlns='%s' id='%s'/>" % (NS_CONT, t.get("id")), to=a1j)
    assert res.get("type") == "result", tostr(res)
    control(agent1, "transfer-done")
    for c in (agent1, agent2, customer):
        c.close()
    server.restart()
    agent1 = login(jid=a1j, password=a1p, presence=True)
    agent2 = login(jid=a2j, password=a2p, presence=True)
    customer = login(jid=cj, password=cp, presence=True)
    customer.message(a1j, "after the restart")
    m = agent2.expect("message", pred=lambda e: body(e) == "after the restart")
    assert m.get("from") == customer.jid
    agent1.no_stanza("message", pred=lambda e: body(e) == "after the restart", timeout=0.5)
