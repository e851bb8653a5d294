"""Logging in and pairing a phone, through the whole server (container, directory,
agents, the simulated PBX inside, over a real AMI socket)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from ucs.api.auth import sso_token
from serverkit import start_demo
from ucs.constants import SessionState
from ucs.error import AuthenticationFailed, InvalidState, NotFound, PermissionDenied, TooManyRequests
from ucs.server import UCSServer


async def started(tmp_path: Path) -> UCSServer:
    return await start_demo(tmp_path, auth={"sso_secret": "s3cret", "max_failures": 3, "lockout": 60})


def call(server: UCSServer, session: Any, method: str, *args: Any) -> Deferred[Any]:
    return server.get_registry().call(session, method, list(args))


@pytest_twisted.ensureDeferred
async def test_sso_good_expired_replayed_forged(tmp_path: Path) -> None:
    srv = await started(tmp_path)
    try:
        sessions = srv.get_sessions()
        clients = iter(range(2, 100))

        def fresh() -> Any:  # a client of its own: failures here are not throttled
            return sessions.create(address=f"10.0.1.{next(clients)}")

        now = int(time.time())
        good = sso_token("s3cret", "agent1", now)
        s = sessions.create(address="10.0.0.5")
        result = await call(srv, s, "sso", "agent1", good, "MyCRM")
        assert result["state"] == "IDENTIFY" and s.user is not None and s.user.username == "agent1"
        with pytest.raises(AuthenticationFailed, match="used already"):
            await call(srv, fresh(), "sso", "agent1", good)
        with pytest.raises(AuthenticationFailed, match="expired"):
            await call(srv, fresh(), "sso", "agent1", sso_token("s3cret", "agent1", now - 3600))
        with pytest.raises(AuthenticationFailed, match="signature"):
            await call(srv, fresh(), "sso", "agent1", sso_token("guessed", "agent1", now))
        with pytest.raises(AuthenticationFailed, match="not made for this user"):
            await call(srv, fresh(), "sso", "agent2", sso_token("s3cret", "agent1", now + 1))
        with pytest.raises(AuthenticationFailed, match="not base64"):
            await call(srv, fresh(), "sso", "agent1", "%%%")
        with pytest.raises(AuthenticationFailed, match="unknown user"):
            await call(srv, fresh(), "sso", "nobody", sso_token("s3cret", "nobody", now))
    finally:
        await srv.service.stopService()


@pytest_twisted.ensureDeferred
async def test_wrong_password_and_throttling(tmp_path: Path) -> None:
    """Throttled per user name and address: the user still logs in from elsewhere, the
    address's other users still log in (tests/test_login_security.py has the attacks)."""
    server = await started(tmp_path)
    try:
        sessions = server.get_sessions()
        for _ in range(3):
            with pytest.raises(AuthenticationFailed, match="bad user name or password"):
                await call(server, sessions.create(address="10.0.0.9"), "login", "agent2", "wrong-password")
        with pytest.raises(TooManyRequests, match="this user name from your address; try again in 10 s"):
            await call(server, sessions.create(address="10.0.0.9"), "login", "agent2", "demo-pass-2")
        ok = sessions.create(address="10.0.0.10")
        assert (await call(server, ok, "login", "agent2", "demo-pass-2"))["state"] == "IDENTIFY"
        ok = sessions.create(address="10.0.0.9")
        assert (await call(server, ok, "login", "agent3", "demo-pass-3"))["state"] == "IDENTIFY"
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_pairing_tabs_autologout_and_logout(tmp_path: Path) -> None:
    server = await started(tmp_path)
    try:
        sessions = server.get_sessions()
        sim = server.get_demo_pbx().sim
        tab1 = sessions.create(address="127.0.0.11")
        await call(server, tab1, "login", "agent1", "demo-pass-1")
        with pytest.raises(InvalidState, match="allowed in DEVICE, READY"):
            await call(server, tab1, "identify")
        with pytest.raises(NotFound, match="no phone of yours"):
            await call(server, tab1, "identifier", "phone-1002")  # agent2's phone
        device = await call(server, tab1, "identifier", "127.0.0.11")  # identifyIP
        assert device["device"] == "SIP/1001" and tab1.state is SessionState.DEVICE
        state = await call(server, tab1, "provision")
        assert state["status"] == "READY" and state["device"]["device"] == "SIP/1001"
        assert {q["asterisk_name"] for q in state["queues"]} == {"support", "sales"}
        assert "SIP/1001" in sim.queues["support"].members

        tab2 = sessions.create(address="127.0.0.11")
        tab2.autologout = True
        await call(server, tab2, "login", "agent1", "demo-pass-1")
        assert tab2.state is SessionState.READY and tab2.line is tab1.line  # joins the working agent

        closed: list[str] = []
        tab2.on_close = closed.append
        tab3 = sessions.create(address="10.1.1.1")
        await call(server, tab3, "login", "agent1", "demo-pass-1")
        assert closed == ["logged in elsewhere"] and tab2.closed and not tab1.closed

        pushed: list[tuple[str, Any]] = []
        tab1.push = lambda name, data: pushed.append((name, data))
        await call(server, tab3, "logout")
        assert tab1.state is SessionState.CREDENTIALS and pushed and pushed[0][0] == "logout"
        assert "SIP/1001" not in sim.queues["support"].members
        assert server.get_agents().get(1) is None
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_roles_on_every_entry_point(tmp_path: Path) -> None:
    server = await started(tmp_path)
    try:
        sessions = server.get_sessions()
        agent = sessions.create()
        await call(server, agent, "login", "agent4", "demo-pass-4")
        with pytest.raises(PermissionDenied):
            await call(server, agent, "config.users.add", {"username": "x"})
        with pytest.raises(PermissionDenied):
            await call(server, agent, "agents.list")
        boss = sessions.create()
        await call(server, boss, "login", "supervisor", "supervisor-demo")
        assert isinstance(await call(server, boss, "agents.list"), list)
        with pytest.raises(PermissionDenied):
            await call(server, boss, "config.users.delete", 1)
        admin = sessions.create()
        await call(server, admin, "login", "admin", "admin-demo")
        created = await call(server, admin, "config.users.add", {"username": "newbie", "password": "12345678"})
        assert created["username"] == "newbie"
        methods = {m["method"]: m for m in await call(server, sessions.create(), "api.methods")}
        assert methods["config.users.add"]["role"] == "superuser"
        assert methods["agent.changeStatus"]["states"] == ["READY"]
    finally:
        await server.service.stopService()