"""Attacks on logging in (issue 14), each made over a real socket against the whole demo
server: the agent bar's WebSocket ``/ws`` and, where it logs in too, the Interaction
Processor's ``/iserver`` (``prepareSession``).

The server trusts 127.0.0.1 as a proxy, so a client picks the address it is throttled
by with ``X-Forwarded-For``: one test can be an attacker at 10.0.0.66 and an agent at
10.0.0.7.  Throttling itself is counted by :class:`ucs.api.auth.LoginThrottle`, whose
bounds and expiry are tested on a :class:`~twisted.internet.task.Clock` at the end.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory
from test_agents_wrapup import whole_server
from serverkit import start_demo
from test_iserver import Client as IClient
from test_web_api import CallError, Client, connect, ws_url
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint

from ucs import demo
from ucs.api.auth import AddressGate, LoginThrottle, sso_token
from ucs.error import TooManyRequests
from ucs.server import UCSServer

SECRET = "s3cret"
ATTACKER, AGENT, OTHER = "10.0.0.66", "10.0.0.7", "10.0.0.8"


async def start(tmp_path: Path, **auth: Any) -> UCSServer:
    return await start_demo(tmp_path, auth={"sso_secret": SECRET, **auth}, web={"trusted_proxies": ["127.0.0.1"]})


async def bar(server: UCSServer, address: str | None = None) -> Client:
    """An agent bar's WebSocket, seen by UCS as coming from ``address``."""
    return await connect(ws_url(server), headers={"X-Forwarded-For": address} if address else None)


async def ip_client(server: UCSServer, address: str | None = None) -> IClient:
    """An Interaction Processor client's WebSocket, seen as coming from ``address``."""
    port = server.get_web_service().port
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/iserver",
                                     headers={"X-Forwarded-For": address} if address else {})
    factory.protocol = IClient
    proto: IClient = await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    await proto.opened
    return proto


async def prepare(c: IClient, agent: str, password: str) -> dict[str, Any]:
    return await c.request("prepareSession", {"model": "ucs", "override": True,
                                              "agent": {"id": agent, "password": password}})


async def error_of(c: Client, method: str, args: Any) -> dict[str, Any]:
    """The error ``c`` gets for ``method(args)`` (the test fails if it succeeds)."""
    with pytest.raises(CallError) as e:
        await c.call(method, args)
    return e.value.error


def closed(*clients: Client | IClient) -> None:
    for c in clients:
        if isinstance(c, Client):
            c.close()
        else:
            c.dropConnection(abort=True)


# -- point 2: parallel guesses ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_hundred_parallel_guesses_get_five_tries_and_the_right_password_is_throttled(tmp_path: Path) -> None:
    """The throttle used to be checked before a password was verified and counted
    after: 100 guesses sent at once all got "wrong password" and the right one (77th)
    logged in.  Now each attempt is counted before it is verified."""
    server = await start(tmp_path)
    bars = [await bar(server, ATTACKER) for _ in range(100)]
    try:
        ids = [c.request("login", ["agent1", "demo-pass-1" if i == 76 else f"guess-{i}"]) for i, c in enumerate(bars)]
        replies = [await c.reply(rid) for c, rid in zip(bars, ids)]
        codes = [r["error"]["code"] if "error" in r else 200 for r in replies]
        assert codes.count(200) == 0, "the right password got through the parallel guesses"
        assert codes.count(401) == 5 and codes.count(429) == 95
        assert codes[76] == 429
    finally:
        closed(*bars)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_parallel_guesses_over_the_interaction_processor(tmp_path: Path) -> None:
    server = await start(tmp_path)
    clients = [await ip_client(server, ATTACKER) for _ in range(30)]
    try:
        body = {"command": "prepareSession", "data": {"model": "ucs", "override": True, "agent": {"id": "agent1"}}}
        for i, c in enumerate(clients):
            body["data"]["agent"]["password"] = "demo-pass-1" if i == 20 else f"guess-{i}"  # type: ignore[index]
            c.raw(json.dumps(body))
        replies = [await c.reply("prepareSession") for c in clients]
        codes = [r["failure"]["code"] if r["result"] == "failure" else r["result"] for r in replies]
        assert codes.count("authentication_failed") == 5 and codes.count("too_many_requests") == 25, codes
        assert codes[20] == "too_many_requests"
    finally:
        closed(*clients)
        await server.service.stopService()


# -- point 4: a token for agent10 logs in agent1 ------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_sso_token_binds_its_user_name(tmp_path: Path) -> None:
    """Seed 002 joins user name and timestamp with nothing between: the token for
    ``agent10`` at T read as ``agent1`` at ``0T`` has the same signature.  A timestamp
    with a leading zero (or anything but plain digits) is refused, which leaves one
    reading of every token."""
    server = await start(tmp_path)
    await server.get_directory().add("users", {"username": "agent10", "password": "demo-pass-10"})
    c = await bar(server, ATTACKER)
    try:
        now = int(time.time())
        stolen = sso_token(SECRET, "agent10", now)
        error = await error_of(c, "sso", ["agent1", stolen])
        assert error["code"] == 401 and "timestamp" in error["message"]
        for bad_ts in (f"0{now}", f"+{now}", f" {now}", f"{now}.0"):
            error = await error_of(c, "sso", ["agent1", sso_token(SECRET, "agent1", bad_ts)])
            assert error["code"] == 401 and "timestamp" in error["message"], bad_ts
        assert (await c.call("sso", ["agent10", stolen]))["user"]["username"] == "agent10"
    finally:
        closed(c)
        await server.service.stopService()


# -- point 8: user names found by timing ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_unknown_user_name_takes_as_long_as_a_wrong_password(tmp_path: Path) -> None:
    """An unknown user used to be refused at once (1 ms) and a known one after an argon2
    verification (150 ms): anyone could list the user names.  Unknown users now get
    a verification of a dummy hash."""
    server = await start(tmp_path, max_failures=50)
    c = await bar(server, ATTACKER)
    try:
        async def took(username: str) -> float:
            start = time.perf_counter()
            assert (await error_of(c, "login", [username, "wrong"]))["code"] == 401
            return time.perf_counter() - start

        await took("nobody-0")
        known, unknown = [], []
        for i in range(5):
            known.append(await took("agent1"))
            unknown.append(await took(f"nobody-{i + 1}"))
        ratio = statistics.median(unknown) / statistics.median(known)
        assert ratio > 0.4, f"unknown user refused in {ratio:.0%} of a known user's time"
    finally:
        closed(c)
        await server.service.stopService()


# -- point 9: SSO replay with the same token spelt differently -------------------------------------


def respelt(token: str) -> list[str]:
    """``token`` with the unused low bits of its last base64 character set otherwise:
    other strings that decode to the same bytes."""
    pad = token.count("=")
    assert pad, "the token's length leaves no unused bits"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(token[-pad - 1])
    unused = 4 if pad == 2 else 2
    spellings = [token[:-pad - 1] + alphabet[(last & ~((1 << unused) - 1)) | bits] + "=" * pad
                 for bits in range(1 << unused)]
    assert all(base64.b64decode(s) == base64.b64decode(token) for s in spellings)
    return [s for s in spellings if s != token]


@pytest_twisted.ensureDeferred
async def test_an_sso_token_spelt_differently_is_not_a_new_token(tmp_path: Path) -> None:
    server = await start(tmp_path)
    bars = [await bar(server, OTHER) for _ in range(4)]
    try:
        token = sso_token(SECRET, "admin", int(time.time()))
        assert (await bars[0].call("sso", ["admin", token]))["user"]["username"] == "admin"
        replays = respelt(token)
        assert len(replays) == 3
        for c, replay in zip(bars[1:], replays):
            error = await error_of(c, "sso", ["admin", replay])
            assert error["code"] == 401 and "base64" in error["message"]
        # and the same bytes in canonical spelling are the used token
        error = await error_of(bars[1], "sso", ["admin", token])
        assert error["code"] == 401 and "used already" in error["message"]
    finally:
        closed(*bars)
        await server.service.stopService()


# -- point 11: lockout abuse -------------------------------------------------------------------------


async def five_wrong(c: Client, username: str) -> None:
    for i in range(5):
        assert (await error_of(c, "login", [username, f"wrong-{i}"]))["code"] == 401


@pytest_twisted.ensureDeferred
async def test_wrong_passwords_from_one_address_do_not_lock_the_user_out_elsewhere(tmp_path: Path) -> None:
    """Five wrong passwords for admin from the attacker's address used to lock admin out
    everywhere for 300 s.  Now only that (user, address) pair waits."""
    # On a clock that stands still: five password checks on a loaded machine take
    # more than a second of real time, and the wait left would read 9 s.
    server = (await whole_server(tmp_path, auth={"sso_secret": SECRET}, web={"trusted_proxies": ["127.0.0.1"]})).server
    attacker, admin = await bar(server, ATTACKER), await bar(server, AGENT)
    try:
        await five_wrong(attacker, "admin")
        error = await error_of(attacker, "login", ["admin", "admin-demo"])  # even the right password
        assert error["code"] == 429 and error["retry_after"] == 10
        assert ATTACKER not in error["message"] and "try again in 10 s" in error["message"]
        assert (await admin.call("login", ["admin", "admin-demo"]))["user"]["username"] == "admin"
    finally:
        closed(attacker, admin)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_one_agents_typos_do_not_lock_out_the_floor_behind_its_nat(tmp_path: Path) -> None:
    """Hundreds of agents share one NAT address: one agent's wrong passwords make that
    agent wait, never the others."""
    server = await start(tmp_path)
    typist, colleague = await bar(server, AGENT), await bar(server, AGENT)
    try:
        await five_wrong(typist, "agent1")
        assert (await error_of(typist, "login", ["agent1", "demo-pass-1"]))["code"] == 429
        assert (await colleague.call("login", ["agent2", "demo-pass-2"]))["user"]["username"] == "agent2"
    finally:
        closed(typist, colleague)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_an_attackers_own_login_does_not_reset_its_address_budget(tmp_path: Path) -> None:
    """Guesses at several users from one address count against the address; the
    attacker's own successful login used to reset that count."""
    server = await start(tmp_path, address_max_failures=4)
    c = await bar(server, ATTACKER)
    try:
        for username in ("agent1", "agent2"):
            assert (await error_of(c, "login", [username, "guess"]))["code"] == 401
        own = await bar(server, ATTACKER)
        await own.call("login", ["agent4", "demo-pass-4"])
        for username in ("agent3", "supervisor"):
            assert (await error_of(c, "login", [username, "guess"]))["code"] == 401
        error = await error_of(c, "login", ["admin", "admin-demo"])
        assert error["code"] == 429 and ATTACKER not in error["message"]
        elsewhere = await bar(server, OTHER)
        assert (await elsewhere.call("login", ["admin", "admin-demo"]))["user"]["username"] == "admin"
        closed(own, elsewhere)
    finally:
        closed(c)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_floor_logging_in_at_once_from_one_address_is_never_refused(tmp_path: Path) -> None:
    """Attempts are counted before they are verified, so right passwords in flight
    must not use up a budget: a whole floor behind one NAT address logging in at the
    same moment (each agent in two tabs, agent1 in eight) gets in, with an address
    budget far below the number of logins."""
    server = await start(tmp_path, address_max_failures=2)
    users = [demo.user_of(i) for i in range(1, 5)] + [("supervisor", "supervisor-demo"), ("admin", "admin-demo")]
    logins = users * 2 + [demo.user_of(1)] * 6
    bars = [await bar(server, AGENT) for _ in logins]
    try:
        ids = [c.request("login", [u, p]) for c, (u, p) in zip(bars, logins)]
        replies = [await c.reply(rid) for c, rid in zip(bars, ids)]
        assert [r.get("error") for r in replies] == [None] * len(logins)
        assert [r["result"]["user"]["username"] for r in replies] == [u for u, _ in logins]
    finally:
        closed(*bars)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_sso_failures_are_throttled_like_wrong_passwords(tmp_path: Path) -> None:
    server = await start(tmp_path)
    c = await bar(server, ATTACKER)
    try:
        now = int(time.time())
        for i in range(5):
            forged = sso_token(f"guess-{i}", "admin", now)
            assert (await error_of(c, "sso", ["admin", forged]))["code"] == 401
        error = await error_of(c, "sso", ["admin", sso_token(SECRET, "admin", now)])
        assert error["code"] == 429 and ATTACKER not in error["message"]
    finally:
        closed(c)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_the_interaction_processor_throttles_the_pair_not_the_floor(tmp_path: Path) -> None:
    server = await start(tmp_path)
    c, colleague, elsewhere = await ip_client(server, AGENT), await ip_client(server, AGENT), await ip_client(server, OTHER)
    try:
        for i in range(5):
            reply = await prepare(c, "agent1", f"wrong-{i}")
            assert reply["failure"]["code"] == "authentication_failed"
        reply = await prepare(c, "agent1", "demo-pass-1")
        assert reply["failure"]["code"] == "too_many_requests" and AGENT not in reply["failure"]["message"]
        assert (await prepare(colleague, "agent2", "demo-pass-2"))["result"] == "success"
        assert (await prepare(elsewhere, "agent1", "demo-pass-1"))["result"] == "success"
    finally:
        closed(c, colleague, elsewhere)
        await server.service.stopService()


# -- the low points -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_lone_surrogate_in_a_user_name_is_a_clear_error(tmp_path: Path) -> None:
    server = await start(tmp_path)
    c = await bar(server, ATTACKER)
    try:
        token = sso_token(SECRET, "agent1", int(time.time()))
        for method, args in (("sso", ["agent1\ud800", token]), ("login", ["agent1\udc00", "x"]),
                             ("login", ["agent1", "pass\ud800"])):
            # json.dumps writes a lone surrogate as a \u escape, which JSON allows.
            c.send_raw(json.dumps({"id": 1, "method": method, "args": args}).encode("ascii"))
            error = (await c.reply(1))["error"]
            assert error["code"] == 400 and "surrogate" in error["message"], error
            assert "Traceback" not in json.dumps(error)
    finally:
        closed(c)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_the_demo_accepts_sso_with_the_secret_readme_gives(tmp_path: Path) -> None:
    """README: "The SSO secret is `demo-sso-secret`"; the demo used to refuse SSO."""
    assert f"The SSO secret is `{demo.SSO_SECRET}`" in (Path(__file__).parents[1] / "README.md").read_text()
    server = await start_demo(tmp_path)
    c = await connect(ws_url(server))
    try:
        token = sso_token(demo.SSO_SECRET, "agent3", int(time.time()))
        assert (await c.call("sso", ["agent3", token, "Demo CRM"]))["user"]["username"] == "agent3"
    finally:
        closed(c)
        await server.service.stopService()


def test_the_throttle_forgets_and_stays_bounded() -> None:
    """Failures are forgotten once they no longer matter, and the map never holds more
    than ``max_entries`` pairs or addresses however many user names are tried."""
    clock = task.Clock()
    clock.advance(1000)
    throttle = LoginThrottle(clock, max_failures=2, backoff=10, lockout=300, address_max_failures=1000,
                             max_entries=50)

    def fail(username: str, address: str) -> None:
        throttle.settled(throttle.attempt(username, address), ok=False)

    for _ in range(2):
        fail("agent1", AGENT)
    with pytest.raises(TooManyRequests) as e:
        fail("agent1", AGENT)
    assert e.value.retry_after == 10  # type: ignore[attr-defined]
    clock.advance(10)
    fail("agent1", AGENT)  # the wait is over; this failure doubles it
    with pytest.raises(TooManyRequests) as e:
        fail("agent1", AGENT)
    assert e.value.retry_after == 20  # type: ignore[attr-defined]
    clock.advance(20 + 300)  # the wait, then lockout seconds without a failure: forgotten
    fail("agent1", AGENT)
    fail("agent1", AGENT)
    assert throttle.size() == (1, 1)

    for i in range(500):
        fail(f"user-{i}", f"10.1.{i // 250}.{i % 250}")
    assert throttle.size() == (50, 50)
    clock.advance(10 + 300)
    fail("someone", OTHER)  # any attempt sweeps what has expired
    assert throttle.size() == (1, 1)


def test_checks_waiting_their_turn_are_handed_it_without_recursion() -> None:
    """Thousands of an address's logins may wait for a password check (many sockets,
    many requests each); when the throttle refuses each as its turn comes, the turns
    are handed on in a loop, not by nested callbacks that would overflow the stack."""
    gate = AddressGate(limit=1)
    ran: list[int] = []

    def refused_at_once(_: None, i: int) -> None:
        ran.append(i)
        gate.leave(AGENT)

    gate.enter(AGENT)  # one check running
    for i in range(5000):
        gate.enter(AGENT).addCallback(refused_at_once, i)
    gate.leave(AGENT)
    assert ran == list(range(5000))
    gate.enter(AGENT).addCallback(lambda _: ran.append(-1))  # free again: no one is left holding a turn
    assert ran[-1] == -1
