"""pytest fixtures for baton's integration tests: one batond per test module (options from the
module's SERVER_OPTS dict), clients that are closed after each test, and batond's stderr
attached to the report of every failed test.

Invariant: a module's server is stopped with SIGTERM at teardown and must exit 0 within 10 s;
anything else is reported as an error of that module, with the tail of batond's stderr.
"""

import os

import pytest

import helpers
import slix
from helpers import Server, stop_and_check


def _require_binaries():
    for path in (helpers.BATOND, helpers.BATONCTL):
        if not os.access(path, os.X_OK):
            pytest.fail("%s not built (run `make all`, or set BATOND/BATONCTL)" % path,
                        pytrace=False)


def start_server(tmp_path_factory, name="batond", **opts):
    """Starts a batond in a fresh data directory; opts go to helpers.Server."""
    _require_binaries()
    datadir = tmp_path_factory.mktemp(name)
    return Server(datadir, **opts).start()


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """The module's batond; a module sets SERVER_OPTS = {...} to pass options to Server()."""
    opts = dict(getattr(request.module, "SERVER_OPTS", {}))
    srv = start_server(tmp_path_factory, request.module.__name__.rsplit(".", 1)[-1], **opts)
    srv.clients = []
    yield srv
    for c in srv.clients:
        _close_quietly(c)
    stop_and_check(srv)


def _close_quietly(c):
    try:
        if isinstance(c, slix.SlixClient):
            c.disconnect(timeout=3)
        else:
            c.close()
    except Exception:
        pass


@pytest.fixture
def clients():
    """A list; append clients to it and they are closed when the test ends."""
    lst = []
    yield lst
    for c in lst:
        _close_quietly(c)


@pytest.fixture
def login(server, clients):
    """login(presence=False, roster=False, **client_opts) -> own Client of a new user;
    login(jid=..., password=...) for an existing one. Closed at the end of the test."""
    def make(jid=None, password=None, presence=False, roster=False, **kw):
        if jid is None:
            jid, password = server.add_user()
        c = server.login(jid, password, presence=presence, roster=roster, **kw)
        clients.append(c)
        return c
    return make


@pytest.fixture
def slixclient(server, clients):
    """slixclient(jid=None, password=None, **opts) -> a logged-in SlixClient."""
    def make(jid=None, password=None, **kw):
        if jid is None:
            jid, password = server.add_user()
        kw.setdefault("plaintext", server.allow_plaintext)
        c = slix.SlixClient(server, jid, password, **kw)
        clients.append(c)
        return c.connect()
    return make


@pytest.fixture(autouse=True)
def _log_offsets(request):
    request.node._batond_offsets = {id(s): (s, s.stderr_size()) for s in Server.running}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("call", "setup"):
        for srv, off in getattr(item, "_batond_offsets", {}).values():
            rep.sections.append(("batond stderr (%s, during this test)" % srv.datadir,
                                 srv.stderr_tail(80, since=off)))
