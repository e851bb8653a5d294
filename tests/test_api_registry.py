"""The API registry: arguments checked and named, roles and states enforced, middleware in order."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from ucs.api.registry import Param, Registry
from ucs.api.session import SessionManager
from ucs.constants import Role, SessionState
from ucs.directory.model import User
from ucs.error import InvalidDataInput, InvalidState, MethodNotFound, PermissionDenied


def make() -> tuple[Registry, Any, Any, Any]:
    reg = Registry()
    sessions = SessionManager(reactor)
    agent = sessions.create(user=User(1, "alice"), state=SessionState.READY)
    boss = sessions.create(user=User(2, "root", superuser=True), state=SessionState.IDENTIFY)
    anon = sessions.create()

    async def change(session: Any, status: str, reason: str | None) -> dict[str, Any]:
        return {"who": session.user.username, "status": status, "reason": reason}

    reg.add("agent.changeStatus", change, [
        Param("status", str, check=lambda v: v if v in ("READY", "AUX") else (_ for _ in ()).throw(
            ValueError(f"{v!r} is not accepted; give READY or AUX"))),
        Param("reason", str, required=False, nullable=True),
    ], states=[SessionState.READY])
    reg.add("plugins.load", lambda s, name: name, [Param("name", str)], role=Role.SUPERUSER)
    reg.add("count", lambda s, n, flag: (n, flag), [Param("n", int), Param("flag", bool, required=False, default=False)])
    return reg, agent, boss, anon


@pytest_twisted.ensureDeferred
async def test_arguments_by_position_or_name() -> None:
    reg, agent, _, _ = make()
    assert await reg.call(agent, "agent.changeStatus", ["AUX", "Lunch"]) == {"who": "alice", "status": "AUX", "reason": "Lunch"}
    assert (await reg.call(agent, "agent.changeStatus", {"status": "READY"}))["reason"] is None


@pytest_twisted.ensureDeferred
async def test_wrong_arguments_are_named() -> None:
    reg, agent, _, _ = make()
    with pytest.raises(InvalidDataInput) as e:
        await reg.call(agent, "agent.changeStatus", ["LUNCH"])
    assert e.value.message == {"status": "'LUNCH' is not accepted; give READY or AUX"}
    with pytest.raises(InvalidDataInput) as e:
        await reg.call(agent, "agent.changeStatus", {})
    assert "required" in e.value.message["status"]
    with pytest.raises(InvalidDataInput) as e:
        await reg.call(agent, "agent.changeStatus", {"status": "AUX", "colour": 1})
    assert "takes: status, reason" in e.value.message["colour"]
    with pytest.raises(InvalidDataInput, match="at most 2 arguments"):
        await reg.call(agent, "agent.changeStatus", ["AUX", "x", "y"])
    with pytest.raises(InvalidDataInput) as e:
        await reg.call(agent, "count", [True])  # a bool is not an integer
    assert "an integer" in e.value.message["n"]
    assert await reg.call(agent, "count", [3]) == (3, False)


@pytest_twisted.ensureDeferred
async def test_roles_and_states() -> None:
    reg, agent, boss, anon = make()
    with pytest.raises(PermissionDenied, match="needs the superuser role; this session has agent"):
        await reg.call(agent, "plugins.load", ["x"])
    assert await reg.call(boss, "plugins.load", ["x"]) == "x"
    with pytest.raises(PermissionDenied):
        await reg.call(anon, "count", [1])
    with pytest.raises(InvalidState, match="allowed in READY; this session is in IDENTIFY"):
        await reg.call(boss, "agent.changeStatus", ["READY"])


@pytest_twisted.ensureDeferred
async def test_unknown_method_suggests() -> None:
    reg, agent, _, _ = make()
    with pytest.raises(MethodNotFound, match="did you mean agent.changeStatus"):
        await reg.call(agent, "agent.changestatus", [])


@pytest_twisted.ensureDeferred
async def test_middleware_order_arguments_and_results() -> None:
    reg, agent, _, _ = make()
    order: list[str] = []

    def outer(handler: Any, session: Any, status: str, reason: Any) -> Any:
        order.append("outer")
        d = handler(session, status, "Coffee" if status == "AUX" else reason)
        return d.addCallback(lambda r: {**r, "outer": True})

    def inner(handler: Any, session: Any, status: str, reason: Any) -> Any:
        order.append("inner")
        return handler(session, status, reason)

    reg.add_middleware("agent.changeStatus", outer)
    reg.add_middleware("agent.changeStatus", inner)
    result = await reg.call(agent, "agent.changeStatus", ["AUX"])
    assert order == ["outer", "inner"]
    assert result == {"who": "alice", "status": "AUX", "reason": "Coffee", "outer": True}

    def deny(handler: Any, *args: Any) -> Any:
        raise PermissionDenied("This UCS forbids it")

    reg.add_middleware("count", deny)
    with pytest.raises(PermissionDenied, match="forbids"):
        await reg.call(agent, "count", [1])
    assert reg.remove_middleware("count", deny)
    assert await reg.call(agent, "count", [1]) == (1, False)
    with pytest.raises(MethodNotFound):
        reg.add_middleware("nope.nothing", deny)
