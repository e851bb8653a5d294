"""Issue 8: every superuser method is refused to an agent, on every way in.

One demo server for the module (``tests/serverkit.py``), with a plugin
(``probe``) in its plugin directory.  Demo agent 1 is logged in on a real agent
bar WebSocket and demo agent 2 on a real Interaction Processor connection; both
are paired with their phones (READY), and their sessions have the agent role.

The methods are not listed here: they are every method of the registry whose
role is superuser.  Test ids need them at collection, so they are read from
the registry of a server built (not started) the same way; the first test
checks that the running server's registry, and ``api.methods`` over the
WebSocket, have exactly that list, and that it holds the well-known ones.

Each method gets one test per transport:

* ``websocket``: agent 1's bar sends ``{"id", "method", "args"}``;
* ``iserver``: agent 2's Interaction Processor connection sends
  ``{"command": <method>, "data"}`` (seed 003: the registry's methods are
  commands of their own name, after ``prepareSession``);
* ``plugin``: the probe plugin calls ``ucs.api.<method>(sid, ...)`` with agent
  1's session id, on the reactor thread and from a thread of its own.

Each is called with no arguments, with arguments that would work for a
superuser (agent 1 making itself superuser, a superuser added, the admin
deleted, the probe unloaded...), with an argument the method does not have and
with too many arguments of the wrong types.  Every call must be refused with
``permission_denied`` naming the superuser role, never with an argument error
(which would tell an agent the method's arguments), and nothing may change:
the directory (password hashes included), the plugins and shared data are the
same after the calls as before.  A control test shows the same "would work"
arguments do work for the superuser on every transport, so the refusals are
about the role and nothing else.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from serverkit import demo_config, start_demo, write_plugin
from test_iserver import Client as IPClient
from test_iserver import connect as ip_connect
from test_iserver import prepare
from test_web_api import Client as WSClient
from test_web_api import CallError, connect, ws_url
from twisted.internet import defer, reactor
from twisted.internet.threads import deferToThread

from ucs import demo
from ucs.api.session import Session
from ucs.constants import Role
from ucs.directory.directory import KINDS
from ucs.error import PermissionDenied
from ucs.plugins.facade import APIFacade
from ucs.server import UCSServer

TRANSPORTS = ("websocket", "iserver", "plugin")

#: Superuser methods that must be among those found, so the tests cannot pass on an empty list.
WELL_KNOWN = {"config.users.add", "config.users.edit", "config.users.delete",
              "plugins.load", "plugins.unload", "plugins.list"}

#: The plugin: resolves ``ucs.api.<method>`` the way a plugin writes it and calls it.
PROBE = '''
import functools

UCS_PLUGIN = "Probe"


class Probe:
    def __init__(self, ucs):
        self.ucs = ucs

    def method(self, name):
        return functools.reduce(getattr, name.split("."), self.ucs.api)

    def call(self, sid, name, args):
        method = self.method(name)
        if args is None:
            return method(sid)
        if isinstance(args, dict):
            return method(sid, **args)
        return method(sid, *args)

    def stop(self):
        pass
'''


# -- the methods, by name ---------------------------------------------------------------------


def superuser_methods(server: UCSServer) -> list[str]:
    reg = server.get_registry()
    return sorted(n for n in reg.names() if reg.get(n).role >= Role.SUPERUSER)


@functools.cache
def collected_methods() -> tuple[str, ...]:
    """The superuser methods of a demo server built as the fixture builds it, not started:
    the whole service tree (so the plugin host's methods too)."""
    with tempfile.TemporaryDirectory() as d:
        server = UCSServer(demo_config(Path(d)), reactor)
        server.service  # noqa: B018 - builds every service, which registers every API module
        return tuple(superuser_methods(server))


def pytest_generate_tests(metafunc: Any) -> None:
    if "method" in metafunc.fixturenames:
        metafunc.parametrize("method", collected_methods())


# -- the server, the agents, the probe -------------------------------------------------------


@attrs.define
class World:
    server: UCSServer
    ws: WSClient
    ws_sid: str
    ip: IPClient
    agent_uid: int
    admin_uid: int

    @property
    def probe(self) -> Any:
        return self.server.get_plugin_host().get("probe").instance

    def session(self, sid: str) -> Session:
        return self.server.get_sessions().get(sid)

    def ip_session(self) -> Session:
        uid = user_id(self.server, "agent2")
        found = [s for s in self.server.get_sessions().of_user(uid) if s.kind == "iserver"]
        assert len(found) == 1
        return found[0]


def user_id(server: UCSServer, username: str) -> int:
    user = server.get_directory().user_by_username(username)
    assert user is not None
    return int(user.id)


async def start(tmp_path: Path) -> World:
    write_plugin(tmp_path, "probe", PROBE)
    server = await start_demo(tmp_path)
    assert server.get_plugin_host().get("probe").instance is not None, "the probe plugin did not start"
    ws = await connect(ws_url(server))
    await ws.call("login", list(demo.user_of(1)))
    await ws.call("identifier", [demo.line_of(1)[1]])
    await ws.call("provision")
    sid = (await ws.call("session.info"))["sid"]
    ip = await ip_connect(server)
    ok = await prepare(ip, *demo.user_of(2), device=demo.line_of(2)[1])
    assert ok["result"] == "success", ok
    return World(server, ws, sid, ip, user_id(server, "agent1"), user_id(server, "admin"))


async def stop(world: World) -> None:
    world.ws.close()
    world.ip.dropConnection(abort=True)
    await world.server.service.stopService()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = pytest_twisted.blockon(defer.ensureDeferred(start(tmp_path_factory.mktemp("superuser"))))
    try:
        yield w
    finally:
        pytest_twisted.blockon(defer.ensureDeferred(stop(w)))


# -- what is sent ---------------------------------------------------------------------------------

_SAMPLES: dict[Any, Any] = {str: "x", int: 1, float: 1.5, bool: True, dict: {}, list: []}


def working_args(world: World, method: str) -> dict[str, Any]:
    """Arguments by name that the superuser could call ``method`` with, and that would
    change something: what an agent would try."""
    d = world.server.get_directory()
    parts = method.split(".")
    if parts[0] == "config" and len(parts) == 3 and parts[1] in KINDS:
        kind, verb = parts[1], parts[2]
        if kind == "users":
            if verb == "add":
                return {"data": {"username": "intruder", "password": "intruder-pass-1", "superuser": True}}
            if verb == "edit":  # agent 1 makes itself superuser and takes a password of its choosing
                return {"data": {"id": world.agent_uid, "superuser": True, "password": "taken-over-1"}}
            if verb == "delete":
                return {"id": world.admin_uid}
        some = min(d.table(kind), default=1)
        if verb == "add":
            return {"data": {"name": "intruder"}}
        if verb == "edit":
            return {"data": {"id": some, "name": "intruder"}}
        if verb == "delete":
            return {"id": some}
    if method in ("plugins.load", "plugins.unload"):
        return {"name": "probe"}
    # a method this list does not know: a value of the right type for each argument
    args: dict[str, Any] = {}
    for p in world.server.get_registry().get(method).params:
        t = p.type[0] if isinstance(p.type, tuple) else p.type
        args[p.name] = _SAMPLES.get(t, "x")
    return args


def attempts(world: World, method: str) -> list[tuple[str, Any]]:
    """(what, arguments): none; ones that would work; an argument it does not have;
    too many of the wrong types.  The last two would be argument errors (naming its
    arguments) for a caller allowed to call it."""
    return [
        ("no arguments", None),
        ("arguments that would work", working_args(world, method)),
        ("an unknown argument", {"no_such_argument": 1}),
        ("too many, wrong types", [["x"], {"y": 1}, None, 3.5, "z", 7]),
    ]


def snapshot(server: UCSServer) -> dict[str, Any]:
    """What an agent must not be able to change: every directory entity with every
    field (password hashes too), the plugins and shared data."""
    d = server.get_directory()
    tables = {kind: {i: attrs.asdict(e) if attrs.has(type(e)) else e.to_dict() for i, e in d.table(kind).items()}
              for kind in KINDS}
    plugins = [(p.get("name"), p.get("state"), p.get("loaded"), p.get("error"))
               for p in server.get_plugin_host().list_plugins()]
    shared = server.get_shared()
    return {"directory": tables, "plugins": plugins,
            "shared": {i: shared.get(i) for i in shared.identifiers()}}


def refused_message(method: str, message: str) -> None:
    assert message == f"{method} needs the superuser role; this session has agent", message


# -- the tests ------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_superuser_methods_come_from_the_live_registry(world: World) -> None:
    live = superuser_methods(world.server)
    assert live == list(collected_methods())
    assert WELL_KNOWN <= set(live), sorted(WELL_KNOWN - set(live))
    assert len(live) >= 20  # the 21 config.<kind>.add/edit/delete and the 3 plugins.*, at least
    described = await world.ws.call("api.methods")  # what any client is told
    assert sorted(m["method"] for m in described if m["role"] == "superuser") == live
    # the callers are agents, neither supervisors nor superusers
    assert world.session(world.ws_sid).role == Role.AGENT
    assert world.ip_session().role == Role.AGENT


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest_twisted.ensureDeferred
async def test_refused_to_an_agent(world: World, transport: str, method: str) -> None:
    before = snapshot(world.server)
    for what, args in attempts(world, method):
        if transport == "websocket":
            reply = await world.ws.reply(world.ws.request(method, args))
            assert "result" not in reply, f"{method} ({what}) answered an agent: {reply}"
            err = reply["error"]
            assert err["error"] == "permission_denied" and err["code"] == 403, (what, err)
            assert "fields" not in err, (what, err)
            refused_message(method, err["message"])
        elif transport == "iserver":
            reply = await world.ip.request(method, args)
            assert reply["result"] == "failure", f"{method} ({what}) answered an agent: {reply}"
            failure = reply["failure"]
            assert failure["code"] == "permission_denied" and failure["context"] == "", (what, failure)
            refused_message(method, failure["message"])
        else:
            probe = world.probe
            assert isinstance(probe.method(method), APIFacade)  # ucs.api.<method> is the API method
            with pytest.raises(PermissionDenied) as on_reactor:
                await probe.call(world.ws_sid, method, args)
            refused_message(method, str(on_reactor.value))
            with pytest.raises(PermissionDenied) as on_thread:
                await deferToThread(probe.call, world.ws_sid, method, args)
            refused_message(method, str(on_thread.value))
    assert snapshot(world.server) == before, f"{method} changed something for an agent"
    # still agents, still logged in, the connections still answer
    assert world.session(world.ws_sid).role == Role.AGENT
    assert world.ip_session().role == Role.AGENT
    assert (await world.ws.call("session.info"))["sid"] == world.ws_sid


@pytest_twisted.ensureDeferred
async def test_what_the_agents_tried_did_not_happen(world: World) -> None:
    """Whichever of the tests ran before: no intruder, agent 1 no superuser with its own
    password, the admin there, the probe still the one loaded at start."""
    d = world.server.get_directory()
    assert d.user_by_username("intruder") is None
    agent = d.user_by_username("agent1")
    assert agent is not None and not agent.superuser and not agent.supervisor
    admin = d.user_by_username("admin")
    assert admin is not None and admin.superuser
    probe = [p for p in world.server.get_plugin_host().list_plugins() if p["name"] == "probe"]
    assert len(probe) == 1 and probe[0]["state"] == "running"
    # agent 1's password is still its own: a fresh bar logs in with it, not with the one it tried
    c = await connect(ws_url(world.server))
    try:
        with pytest.raises(CallError) as e:
            await c.call("login", ["agent1", "taken-over-1"])
        assert e.value.error["error"] == "authentication_failed"
        assert (await c.call("login", list(demo.user_of(1))))["user"]["username"] == "agent1"
    finally:
        c.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest_twisted.ensureDeferred
async def test_control_the_superuser_gets_through_with_the_same_arguments(world: World, transport: str) -> None:
    """The refusals above are about the role: the admin adds the same intruder on each
    transport (removed again afterwards)."""
    method, args = "config.users.add", working_args(world, "config.users.add")
    server = world.server
    if transport == "websocket":
        c = await connect(ws_url(server))
        try:
            await c.call("login", ["admin", demo.ADMIN_PASSWORD])
            added = await c.call(method, args)
        finally:
            c.close()
    elif transport == "iserver":
        ip = await ip_connect(server)
        try:
            ok = await prepare(ip, "admin", demo.ADMIN_PASSWORD)
            assert ok["result"] == "success", ok
            reply = await ip.request(method, args)
            assert reply["result"] == "success", reply
            added = reply["data"]
        finally:
            ip.dropConnection(abort=True)
    else:
        admin = server.get_sessions().create()
        await server.get_registry().call(admin, "login", ["admin", demo.ADMIN_PASSWORD])
        try:
            added = await world.probe.call(admin.sid, method, args)
        finally:
            server.get_sessions().close(admin, "test over")
    assert added["username"] == "intruder" and added["superuser"] is True
    system = server.get_sessions().system()
    await server.get_registry().call(system, "config.users.delete", [added["id"]])
    server.get_sessions().close(system, "test over")
    assert server.get_directory().user_by_username("intruder") is None
