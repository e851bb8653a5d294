"""Every API method of the real server refuses callers without its role and
sessions in states it is not allowed in — before doing anything."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from twisted.internet import reactor

from serverkit import demo_config
from ucs.api.scope import ActsOn, Subject
from ucs.constants import Role, SessionState
from ucs.directory.model import User
from ucs.error import InvalidState, PermissionDenied
from ucs.server import UCSServer

USERS = {
    Role.ANONYMOUS: None,
    Role.AGENT: User(900, "probe-agent"),
    Role.SUPERVISOR: User(901, "probe-supervisor", supervisor=True),
    Role.SUPERUSER: User(902, "probe-root", superuser=True),
}


@pytest_twisted.ensureDeferred
async def test_roles_and_states_of_every_method(tmp_path: Path) -> None:
    server = UCSServer(demo_config(tmp_path, demo={"enabled": False}), reactor)
    registry = server.get_registry()
    server.get_plugin_host()  # registers plugins.* and shared.*
    sessions = server.get_sessions()
    names = registry.names()
    assert {"login", "sso", "logout", "provision", "state", "agent.changeStatus", "call.dial", "call.answer",
            "call.transfer", "call.finishTransfer", "call.blindTransfer", "call.setAccountCode", "cdr.metadata",
            "config.users.edit", "plugins.load", "plugins.unload", "plugins.list", "ops.sessions", "ops.logout",
            "ops.ami", "config.queues.setMembers", "config.importAll"} <= set(names)
    checked = 0
    for name in names:
        method = registry.get(name)
        for role, user in USERS.items():
            for state in SessionState:
                session = sessions.create(user=user, state=state)
                try:
                    registry.check(session, method)
                except PermissionDenied:
                    assert role < method.role, (name, role, state)
                    checked += 1
                    continue
                except InvalidState:
                    assert method.states is not None and state not in method.states, (name, role, state)
                    checked += 1
                    continue
                assert role >= method.role, (name, role)
                assert method.states is None or state in method.states, (name, state)
        # and through the call path: a refused call never reaches the handler
        if method.role > Role.ANONYMOUS:
            anon = sessions.create()
            d = registry.call(anon, name, {})
            failure = []
            d.addErrback(failure.append)
            assert failure and failure[0].check(PermissionDenied), name
    assert checked > len(names)


def test_what_each_kind_of_method_demands(tmp_path: Path) -> None:
    """Seed 002's state table and the issue's permissions, method by method."""
    server = UCSServer(demo_config(tmp_path, demo={"enabled": False}), reactor)
    registry = server.get_registry()
    server.get_plugin_host()
    S = SessionState
    for name in registry.names():
        m = registry.get(name)
        if name.startswith("config.") and name.rsplit(".", 1)[1] in ("add", "edit", "delete", "setMembers", "import",
                                                                       "importAll"):
            assert m.role == Role.SUPERUSER, name
        if name.startswith(("plugins.", "ops.")):
            assert m.role == Role.SUPERUSER, name
        if name.startswith("call.") or name in ("agent.changeStatus", "agent.suspend", "agent.resume", "state"):
            assert m.states == frozenset({S.READY}), name
    assert registry.get("login").states == frozenset({S.CREDENTIALS})
    assert registry.get("sso").states == frozenset({S.CREDENTIALS})
    assert registry.get("logout").states == frozenset({S.IDENTIFY, S.DEVICE, S.READY})
    assert registry.get("identifier").states == frozenset({S.IDENTIFY, S.DEVICE})
    assert registry.get("provision").states == frozenset({S.IDENTIFY, S.DEVICE})
    assert registry.get("identify").states == frozenset({S.DEVICE, S.READY})
    assert registry.get("agents.list").role == Role.SUPERVISOR
    # Who may act on what (issue 14): the methods naming an agent or a call are scoped by the
    # registry, the lists of people filtered; shared data is the whole centre's.
    for name in ("call.setAccountCode", "cdr.metadata"):
        assert registry.get(name).acts_on == ActsOn(Subject.CALL, "uniqueid"), name
    assert registry.get("agents.changeStatus").acts_on == ActsOn(Subject.AGENT, "user_id")
    assert registry.get("config.users.get").acts_on == ActsOn(Subject.AGENT, "id")
    assert registry.get("agents.list").shows and registry.get("config.users.list").shows
    assert registry.get("shared.set").role == Role.SUPERUSER
