"""The agent-bar WebSocket API over a real socket, with a real autobahn client.

Every test runs against the whole server: :class:`ucs.server.UCSServer` in demo
mode (``tests/serverkit.py``), with the simulated PBX inside, the real agents,
state builder, directory, sessions, registry, bus and web service. What a test
needs to happen (a status changed elsewhere, callers waiting in a queue, a call
ringing, a transfer) is made to happen for real, in the simulated PBX or
through the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientProtocol
from serverkit import open_websocket, start_demo, until
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.web.client import Agent, readBody

import ucs
from ucs import demo
from ucs.api.registry import Param
from ucs.calls.call import Call
from ucs.constants import Role
from ucs.server import UCSServer

#: What every server of this module gets besides the demo defaults: the
#: throttling threshold the login tests count on.
AUTH = {"max_failures": 3}


async def start(tmp_path: Path, **web: Any) -> UCSServer:
    """The whole server in demo mode, ``web`` options in ``[web]``; with two
    test-only API methods on its real registry: ``boom`` (fails) and ``echo``."""
    server = await start_demo(tmp_path, auth=AUTH, web=web)
    reg = server.get_registry()
    reg.add("boom", lambda s: 1 / 0, role=Role.ANONYMOUS)
    reg.add("echo", lambda s, x: x, [Param("x", (str, int, dict, list))], role=Role.ANONYMOUS)
    return server


def ws_url(server: UCSServer) -> str:
    return server.get_web_service().ws_url


def user_id(server: UCSServer, i: int) -> int:
    user = server.get_directory().user_by_username(demo.user_of(i)[0])
    assert user is not None
    return int(user.id)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UCSServer]:
    srv = pytest_twisted.blockon(defer.ensureDeferred(start(tmp_path)))
    yield srv
    pytest_twisted.blockon(srv.service.stopService())


# -- a test client ---------------------------------------------------------------------------


class ClientProtocol(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.client._opened(self)

    def onPing(self, payload: bytes) -> None:
        self.factory.client.pings += 1
        super().onPing(payload)  # answers it

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client._message(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.client._closed(wasClean, code, reason)


class Client:
    def __init__(self) -> None:
        self.proto: ClientProtocol | None = None
        self.inbox: list[dict[str, Any]] = []
        self.replies: dict[Any, dict[str, Any]] = {}
        self.anonymous: list[dict[str, Any]] = []  # replies with id null
        self._waiters: list[tuple[Any, defer.Deferred[Any]]] = []
        self._next = 0
        self.opened: defer.Deferred[None] = defer.Deferred()
        self.closed: defer.Deferred[tuple[bool, int | None, str | None]] = defer.Deferred()
        self.hello: dict[str, Any] = {}
        self.handshake_error: Any = None
        self.pings = 0  # the server's heartbeat pings received (and answered)

    # wiring

    def _opened(self, proto: ClientProtocol) -> None:
        self.proto = proto

    def _message(self, payload: bytes, is_binary: bool) -> None:
        msg = json.loads(payload)
        if msg.get("event") == "hello" and not self.opened.called:
            self.hello = msg["data"]
            self.opened.callback(None)
            return
        if "event" in msg:
            self.inbox.append(msg)
        elif msg.get("id") is None:
            self.anonymous.append(msg)
        else:
            self.replies[msg.get("id")] = msg
        self._check()

    def _closed(self, clean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(ConnectionError(f"closed before hello: {code} {reason}"))
        if not self.closed.called:
            self.closed.callback((clean, code, reason))
        self._check()

    def _check(self) -> None:
        for item in list(self._waiters):
            test, d = item
            found = test()
            if found is not None:
                self._waiters.remove(item)
                d.callback(found)

    def wait(self, test: Any, timeout: float = 5.0) -> defer.Deferred[Any]:
        found = test()
        if found is not None:
            return defer.succeed(found)
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append((test, d))
        d.addTimeout(timeout, reactor)
        return d

    # use

    def send_raw(self, payload: bytes, binary: bool = False) -> None:
        assert self.proto is not None
        self.proto.sendMessage(payload, binary)

    def request(self, method: str, args: Any = None, **extra: Any) -> Any:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, **extra}
        if args is not None:
            msg["args"] = args
        self.send_raw(json.dumps(msg).encode())
        return self._next

    async def reply(self, rid: Any) -> dict[str, Any]:
        reply: dict[str, Any] = await self.wait(lambda: self.replies.pop(rid, None))
        return reply

    async def call(self, method: str, args: Any = None) -> Any:
        reply = await self.reply(self.request(method, args))
        if "error" in reply:
            raise CallError(reply["error"])
        return reply["result"]

    async def event(self, name: str, timeout: float = 5.0) -> dict[str, Any]:
        def take() -> Any:
            for i, msg in enumerate(self.inbox):
                if msg["event"] == name:
                    return self.inbox.pop(i)
            return None

        msg: dict[str, Any] = await self.wait(take, timeout)
        return msg

    def events(self) -> list[str]:
        return [m["event"] for m in self.inbox]

    def close(self) -> None:
        if self.proto is not None:
            self.proto.sendClose(1000)


class CallError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


async def connect(url: str, origin: str | None = None, headers: dict[str, str] | None = None) -> Client:
    client = Client()
    await open_websocket(url, ClientProtocol, client, origin=origin, headers=headers)
    return client


def hub_settled(server: UCSServer) -> bool:
    """Nothing the hub merges is still to come: no waiting-caller flush scheduled,
    no count left to hand out, no group held back by pacing.  Until an event
    changes something, no more ``waitingCallers`` or ``config.change`` is sent."""
    return server.get_web_service().hub.idle()


async def settle(server: UCSServer, *bars: Client) -> None:
    """Wait until the hub has settled (:func:`hub_settled`) and each bar has read
    all it was sent until then (a round trip on its socket comes after them)."""
    await until(lambda: hub_settled(server))
    for bar in bars:
        await bar.call("session.ping")  # its reply is written after whatever came before it


async def ready_agent(server: UCSServer, i: int = 1, **options: Any) -> Client:
    """A bar with demo agent ``i`` logged in, its phone paired, READY; the login's
    own events (``agent.login``, ``agent.device``, ``agent.status`` READY) are
    waited for and taken from the inbox, so a test sees what happens next."""
    c = await connect(ws_url(server))
    if options:
        await c.call("session.options", options)
    username, password = demo.user_of(i)
    await c.call("login", [username, password])
    await c.call("identifier", [demo.line_of(i)[1]])
    await c.call("provision")
    assert (await c.event("agent.status"))["data"]["status"] == "READY"
    c.inbox.clear()
    return c


# -- tests ---------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_hello_then_login_pairing_and_state(server: UCSServer) -> None:
    c = await connect(ws_url(server))
    assert c.hello["version"] == ucs.__version__ and c.hello["address"] == "127.0.0.1"
    assert c.hello["state"] == "CREDENTIALS" and len(c.hello["sid"]) > 16
    info = await c.call("session.info")
    assert info["address"] == "127.0.0.1" and info["sid"] == c.hello["sid"]
    with pytest.raises(CallError) as e:
        await c.call("state")
    assert e.value.error["error"] == "permission_denied"
    res = await c.call("login", {"username": "agent1", "password": "demo-pass-1"})
    assert res["state"] == "IDENTIFY" and res["user"]["username"] == "agent1"
    # Seed 002's User: lines are line objects (their ids kept in line_ids), primary_extension.
    (line,) = res["user"]["lines"]
    assert line["device"] == "SIP/1001" and res["user"]["line_ids"] == [line["id"]]
    assert "primary_extension" in res["user"]
    devices = await c.call("devices.list")
    assert [d["identifiers"] for d in devices] == [["phone-1001", "127.0.0.11"]]
    assert (await c.call("identifier", ["phone-1001"]))["device"] == "SIP/1001"
    st = await c.call("provision")
    assert st["status"] == "READY" and st["device"]["device"] == "SIP/1001"
    assert (await c.call("state"))["user"]["username"] == "agent1"
    with pytest.raises(CallError) as e:
        await c.call("provision")
    assert e.value.error["error"] == "invalid_state" and "allowed in DEVICE, IDENTIFY" in e.value.error["message"]
    c.close()


@pytest_twisted.ensureDeferred
async def test_bad_frames_get_errors_and_the_connection_lives_on(server: UCSServer) -> None:
    c = await connect(ws_url(server))
    c.send_raw(b"not json at all")
    c.send_raw(b"[1, 2]")
    c.send_raw(b'{"id": 5}')
    c.send_raw(b'{"id": 6, "method": "echo", "args": "x"}')
    c.send_raw(b'{"id": true, "method": "echo"}')
    c.send_raw(b'{"id": 8, "method": "echo", "args": [1], "extra": 1}')
    c.send_raw(b"\x00\x01binary", binary=True)
    await c.wait(lambda: True if len(c.anonymous) == 4 and len(c.replies) == 3 else None)
    assert [e["error"]["code"] for e in c.anonymous] == [400] * 4
    assert "not JSON" in c.anonymous[0]["error"]["message"]
    assert "a request is a JSON object" in c.anonymous[1]["error"]["message"]
    assert "id must be an integer" in c.anonymous[2]["error"]["message"]
    assert "binary frames are not accepted" in c.anonymous[3]["error"]["message"]
    assert c.replies[5]["error"]["message"].startswith("method is missing")
    assert "args must be a list" in c.replies[6]["error"]["message"]
    assert "unknown request keys 'extra'" in c.replies[8]["error"]["message"]
    c.replies.clear()

    rid = c.request("agent.chngeStatus", ["READY"])
    reply = await c.reply(rid)
    assert reply["error"]["error"] == "method_not_found" and "did you mean agent.changeStatus" in reply["error"]["message"]
    reply = await c.reply(c.request("login", ["agent1"]))
    assert reply["error"]["code"] == 400 and "password" in reply["error"]["fields"]
    reply = await c.reply(c.request("login", {"user": "x"}))
    assert "has no argument 'user'" in reply["error"]["fields"]["user"]
    reply = await c.reply(c.request("boom"))
    assert reply["error"] == {"code": 500, "error": "internal_error",
                              "message": "boom failed inside UCS; the UCS log has the details"}
    # A request over max_request_size: an error reply, the connection stays.
    c.anonymous.clear()
    c.request("echo", ["x" * 70_000])
    reply = await c.wait(lambda: c.anonymous.pop() if c.anonymous else None)
    assert reply["error"]["error"] == "too_large" and "at most 65536 bytes" in reply["error"]["message"]
    assert await c.call("echo", ["still here"]) == "still here"
    c.close()


@pytest_twisted.ensureDeferred
async def test_a_frame_over_the_hard_limit_closes_with_1009(server: UCSServer) -> None:
    c = await connect(ws_url(server))
    c.send_raw(json.dumps({"id": 1, "method": "echo", "args": ["y" * 1_100_000]}).encode())
    _clean, code, _reason = await c.closed
    assert code == 1009


@pytest_twisted.ensureDeferred
async def test_origin_allow_list(tmp_path: Path) -> None:
    server = await start(tmp_path, allowed_origins=["https://crm.example.com"])
    try:
        port = server.get_web_service().port
        ok = await connect(ws_url(server), origin="https://crm.example.com")
        same = await connect(ws_url(server), origin=f"http://127.0.0.1:{port}")  # a page UCS serves
        with pytest.raises(ConnectionError, match="403"):
            await connect(ws_url(server), origin="https://evil.example.net")
        ok.close()
        same.close()
    finally:
        await server.service.stopService()


async def throttled_after_wrong_passwords(c: Client) -> dict[str, Any]:
    """``AUTH["max_failures"]`` wrong passwords for agent1 from ``c``, each refused
    (401); then the error of the right one from the same client (the test asserts what
    it is).  Throttling is per user name and address (tests/test_login_security.py)."""
    for _ in range(AUTH["max_failures"]):
        with pytest.raises(CallError) as e:
            await c.call("login", ["agent1", "wrong"])
        assert e.value.error["code"] == 401
    with pytest.raises(CallError) as e:
        await c.call("login", ["agent1", "demo-pass-1"])  # right password, same address
    return e.value.error


@pytest_twisted.ensureDeferred
async def test_wrong_password_and_throttling_by_the_real_peer_address(server: UCSServer) -> None:
    c = await connect(ws_url(server), headers={"X-Forwarded-For": "10.9.9.9"})
    error = await throttled_after_wrong_passwords(c)
    assert error["code"] == 429 and error["retry_after"] == 10 and "127.0.0.1" not in error["message"]
    other = await connect(ws_url(server), headers={"X-Forwarded-For": "10.9.9.9"})
    with pytest.raises(CallError) as e:  # the header is not believed: the same address
        await other.call("login", ["agent1", "demo-pass-1"])
    assert e.value.error["code"] == 429
    c.close()
    other.close()


@pytest_twisted.ensureDeferred
async def test_behind_a_trusted_proxy_each_client_is_throttled_by_its_forwarded_address(tmp_path: Path) -> None:
    """Behind nginx every socket comes from the proxy: without ``trusted_proxies``
    one client's wrong passwords would lock that user out of every client (the test above)."""
    server = await start(tmp_path, trusted_proxies=["127.0.0.1"])
    try:
        # What the client put in the header itself (left of the proxy's entry) is not believed.
        bad = await connect(ws_url(server), headers={"X-Forwarded-For": "10.1.1.1, 10.9.9.9"})
        error = await throttled_after_wrong_passwords(bad)
        assert error["code"] == 429 and "10.9.9.9" not in error["message"]
        other = await connect(ws_url(server), headers={"X-Forwarded-For": "10.8.8.8"})
        assert (await other.call("login", ["agent1", "demo-pass-1"]))["user"]["username"] == "agent1"
        spoofed = await connect(ws_url(server), headers={"X-Forwarded-For": "10.8.8.8, 10.9.9.9"})
        with pytest.raises(CallError) as e:  # claiming another client's address does not help
            await spoofed.call("login", ["agent1", "demo-pass-1"])
        assert e.value.error["code"] == 429
        for c in (bad, other, spoofed):
            c.close()
    finally:
        await server.service.stopService()


def test_client_address_from_a_trusted_proxys_header() -> None:
    from ipaddress import ip_network

    from ucs.web.protocol import client_ip

    proxies = [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8")]
    assert client_ip("127.0.0.1", "203.0.113.7", proxies) == "203.0.113.7"
    assert client_ip("127.0.0.1", "198.51.100.1, 203.0.113.7, 10.2.3.4", proxies) == "203.0.113.7"
    assert client_ip("127.0.0.1", "[2001:db8::1]:4431", proxies) == "2001:db8::1"
    assert client_ip("127.0.0.1", "203.0.113.7:5060", proxies) == "203.0.113.7"
    assert client_ip("127.0.0.1", "unknown, 10.2.3.4", proxies) == "10.2.3.4"  # a hop that is no address ends it
    assert client_ip("127.0.0.1", "10.9.9.9, 10.2.3.4", proxies) == "10.9.9.9"  # all proxies: the first
    assert client_ip("192.0.2.1", "203.0.113.7", proxies) == "192.0.2.1"  # not from a proxy: header ignored
    assert client_ip("127.0.0.1", None, proxies) == "127.0.0.1"
    assert client_ip("127.0.0.1", "203.0.113.7", []) == "127.0.0.1"


@pytest_twisted.ensureDeferred
async def test_two_tabs_of_one_agent_stay_in_sync(server: UCSServer) -> None:
    a = await ready_agent(server, 1)
    b = await connect(ws_url(server))
    joined = await b.call("login", ["agent1", "demo-pass-1"])
    assert joined["state"] == "READY" and joined["device"]["device"] == "SIP/1001"
    await a.call("agent.changeStatus", ["AUX", "Lunch"])
    for tab in (a, b):
        ev = await tab.event("agent.status")
        assert ev["data"]["status"] == "AUX" and ev["data"]["reason"] == "Lunch"
        assert ev["data"]["previous"] == "READY"
    other = await ready_agent(server, 2)
    await other.call("agent.changeStatus", ["AUX", "Break"])
    await other.event("agent.status")
    assert "agent.status" not in a.events()  # agent2's status is not agent1's business
    await b.call("logout")
    ev = await a.event("logout")
    assert ev["data"]["reason"] == "logged out in another window"
    for c in (a, b, other):
        c.close()


@pytest_twisted.ensureDeferred
async def test_autologout_logs_the_older_session_out_with_a_message(server: UCSServer) -> None:
    old = await ready_agent(server, 1, autologout=True)
    new = await connect(ws_url(server))
    await new.call("login", ["agent1", "demo-pass-1"])
    ev = await old.event("session.closed")
    assert ev["data"]["reason"] == "logged in elsewhere" and "another computer" in ev["data"]["message"]
    assert ev["data"]["state"] == "CREDENTIALS" and ev["data"]["sid"] != old.hello["sid"]
    with pytest.raises(CallError):
        await old.call("state")
    # The old tab got a fresh session: it may log in again.
    assert (await old.call("session.info"))["state"] == "CREDENTIALS"
    old.close()
    new.close()


@pytest_twisted.ensureDeferred
async def test_reconnect_resumes_the_session_and_state_shows_the_truth(server: UCSServer) -> None:
    a = await ready_agent(server, 1)
    sid = a.hello["sid"]
    assert a.proto is not None
    a.proto.dropConnection(abort=True)  # the network goes, no close frame
    await a.closed
    # Meanwhile the agent's status changes (another tab, a supervisor …), on the PBX too.
    agent = await server.get_agents().change_status(user_id(server, 1), "AUX", "Meeting")
    assert agent.status.name == "AUX"
    b = await connect(ws_url(server))
    resumed = await b.call("session.resume", [sid])
    assert resumed["state"] == "READY" and resumed["device"]["device"] == "SIP/1001"
    state = await b.call("state")
    assert state["status"] == "AUX" and state["reason"] == "Meeting"
    with pytest.raises(CallError) as e:
        await (await connect(ws_url(server))).call("session.resume", ["no-such-session"])
    assert e.value.error["code"] == 404 and "log in again" in e.value.error["message"]
    b.close()


@pytest_twisted.ensureDeferred
async def test_a_detached_session_ends_after_the_resume_window(tmp_path: Path) -> None:
    server = await start(tmp_path, resume_window=0.2)
    try:
        sessions = server.get_sessions()
        a = await ready_agent(server, 1)
        closing = reactor.seconds()  # type: ignore[attr-defined]
        a.close()
        await a.closed
        assert len(sessions) == 1
        await until(lambda: len(sessions) == 0)
        # Not before the window: it started after ``closing`` (the server saw the close later).
        assert reactor.seconds() - closing >= 0.2  # type: ignore[attr-defined]
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_going_away_logs_out_when_the_bar_asked_for_it(server: UCSServer) -> None:
    agents, sessions = server.get_agents(), server.get_sessions()
    a = await ready_agent(server, 1, logoutOnClose=True)
    assert agents.all()
    assert a.proto is not None
    a.proto.sendCloseFrame(1001)  # what a browser sends when the tab closes
    await a.closed
    # The real logout takes the agent out of its queues on the PBX first: wait for it, bounded.
    await until(lambda: agents.all() == [] and len(sessions) == 0)
    assert agents.all() == [] and len(sessions) == 0


@pytest_twisted.ensureDeferred
async def test_heartbeat_drops_a_client_that_stopped_answering(tmp_path: Path) -> None:
    server = await start(tmp_path, ping_interval=1.0, ping_timeout=1.0)
    try:
        hub = server.get_web_service().hub
        alive = await connect(ws_url(server))  # says nothing, but answers pings
        dead = await connect(ws_url(server))
        assert dead.proto is not None and dead.proto.transport is not None
        dead.proto.transport.pauseProducing()  # stops reading: no pongs
        await until(lambda: len(hub.connections) == 1, timeout=5)
        assert server.get_web_service().heartbeat.stats()["connections"] == 1
        # Two more pings answered: the second comes after the heartbeat looked for the
        # first one's answer (timeout = interval), so the one answering stays.
        pings = alive.pings
        await until(lambda: alive.pings >= pings + 2, timeout=5)
        assert len(hub.connections) == 1
        dead.proto.transport.resumeProducing()
        clean, _code, _reason = await dead.closed
        assert not clean
        assert await alive.call("echo", [1]) == 1
        alive.close()
    finally:
        await server.service.stopService()


async def fast_and_stopped_bars(server: UCSServer) -> tuple[Client, Client]:
    """Agents 1 and 2 READY, each on a bar; the second bar has stopped reading."""
    fast = await ready_agent(server, 1)
    slow = await ready_agent(server, 2)
    assert slow.proto is not None and slow.proto.transport is not None
    slow.proto.transport.pauseProducing()
    return fast, slow


@pytest_twisted.ensureDeferred
async def test_a_slow_reader_is_dropped_after_a_bounded_buffer(tmp_path: Path) -> None:
    server = await start(tmp_path, max_client_buffer=256 * 1024)
    try:
        hub = server.get_web_service().hub
        fast, slow = await fast_and_stopped_bars(server)
        conns = {c.session.user.username: c for c in hub.connections}  # type: ignore[union-attr]
        slow_conn = conns["agent2"]
        fast_conn = conns["agent1"]
        big = "x" * 16_000
        sent = 0
        while not slow_conn.dropped and sent < 5000:
            for c in list(hub.connections):
                c.push("test.blob", big)
            sent += 1
            await task.deferLater(reactor, 0, lambda: None)  # the reactor writes and reads
        assert not fast_conn.dropped
        assert slow_conn.dropped, "the slow client was never dropped"
        assert slow_conn.queued_bytes == 0
        slow.proto.transport.resumeProducing()
        await slow.closed
        # The fast client is fine and got everything.
        await fast.wait(lambda: True if fast.events().count("test.blob") >= sent - 5 else None, timeout=20)
        assert await fast.call("echo", ["ok"]) == "ok"
        fast.close()
    finally:
        await server.service.stopService()


#: A direct number of agent 1's phone on the trunk (a DID), so that a customer's
#: call rings SIP/1001 only, whoever else is READY.
DID_1001 = "7001"


def call_on(server: UCSServer, device: str) -> Call:
    calls = server.get_call_tracker().calls_of_device(device)
    assert calls, f"no call on {device}"
    return calls[-1]


@pytest_twisted.ensureDeferred
async def test_call_events_reach_the_tabs_of_the_phone_in_the_call(server: UCSServer) -> None:
    sim = server.get_demo_pbx().sim
    sim.dialplan.add("from-carrier", DID_1001, [("Dial", "SIP/1001,30,tT")])
    a1 = await ready_agent(server, 1)
    a1b = await connect(ws_url(server))
    await a1b.call("login", ["agent1", "demo-pass-1"])
    a2 = await ready_agent(server, 2)
    sim.caller_calls(DID_1001, "420777123456", "Customer")
    for tab in (a1, a1b):
        ev = await tab.event("call.ringing")
        assert ev["data"]["uniqueid"] == call_on(server, "SIP/1001").uniqueid
        assert ev["data"]["caller_number"] == "420777123456"
        assert ev["data"]["state"] == 2 and ev["data"]["direction"] == "INCOMING"
    await a1.call("call.answer")  # the phone answers when the bar asks (SIP NOTIFY)
    answered = (await a1.event("call.connect"))["data"]
    assert answered["state"] == 3
    # The parties in UCS's terms (issue 17): the customer is no line; agent1 on SIP/1001.
    line = server.get_directory().line_by_device("SIP/1001")
    assert line is not None and (answered["caller_line_id"], answered["caller_username"]) == (None, "")
    assert (answered["connected_line_id"], answered["connected_username"], answered["connected_extension"]) == (
        line.id, "agent1", "1001")
    assert answered["connected_user_id"] == server.get_directory().user_by_username("agent1").id  # type: ignore[union-attr]
    sim.trunk().hangup()  # the customer hangs up
    await a1.event("call.hangup")
    await a1b.event("call.hangup")
    assert not [e for e in a2.events() if e.startswith("call.")]
    for c in (a1, a1b, a2):
        c.close()


@pytest_twisted.ensureDeferred
async def test_a_transfer_target_sees_its_own_ringing_and_the_transferrer_its_hangup(server: UCSServer) -> None:
    sim = server.get_demo_pbx().sim
    sim.dialplan.add("from-carrier", DID_1001, [("Dial", "SIP/1001,30,tT")])
    a1 = await ready_agent(server, 1)
    a2 = await ready_agent(server, 2)
    sim.caller_calls(DID_1001, "420777123456", "Customer")
    await a1.event("call.ringing")
    await a1.call("call.answer")
    await a1.event("call.connect")
    # Agent 1 consults agent 2: agent 2's phone rings inside the connected call.
    await a1.call("call.transfer", ["1002"])
    ring = await a2.event("call.ringing")
    assert ring["data"]["state"] == 2
    await a2.call("call.answer")
    # Agent 1 leaves, the call goes on with agent 2.
    await a1.call("call.finishTransfer")
    await a1.event("call.hangup")
    assert (await a2.event("call.connect"))["data"]["state"] == 3
    a1.close()
    a2.close()


@pytest_twisted.ensureDeferred
async def test_waiting_callers_are_merged(server: UCSServer) -> None:
    state, sim = server.get_state(), server.get_demo_pbx().sim
    a = await ready_agent(server, 1)
    b = await ready_agent(server, 2)
    for c in (a, b):  # no READY agent takes the callers: they wait in the queue
        await c.call("agent.changeStatus", ["AUX", "Meeting"])
    # The PBX has paused both phones in their queues (the events of it are in), and
    # what the hub sent about it has arrived.
    members = [m for q in server.get_pbx().queues.values() for m in q.members.values()
               if m.interface in ("SIP/1001", "SIP/1002")]
    assert members
    await until(lambda: all(m.paused for m in members))
    await settle(server, a, b)
    for c in (a, b):
        c.inbox.clear()
    asked: list[int] = []
    real = state.waiting_callers

    def spy(uid: int) -> int:
        asked.append(uid)
        return real(uid)

    state.waiting_callers = spy  # type: ignore[method-assign]
    for i in range(1, 51):
        sim.caller_calls("5000", f"42077712{i:04d}")
    for c in (a, b):
        ev = await c.event("waitingCallers")
        assert ev["data"] == {"waitingCallers": 50}
    await settle(server, a, b)  # whatever else the hub would send has arrived
    assert a.events().count("waitingCallers") == 0  # fifty changes, one message
    # Counted once per set of queues (both agents are in all the demo's queues), not per
    # change nor per agent.
    assert len(asked) == 1 and asked[0] in (user_id(server, 1), user_id(server, 2))
    a.close()
    b.close()


@pytest_twisted.ensureDeferred
async def test_health_and_static_files(server: UCSServer) -> None:
    agent = Agent(reactor)
    base = server.get_web_service().url
    resp = await agent.request(b"GET", (base + "health").encode())
    body = json.loads(await readBody(resp))
    assert resp.code == 200 and body["status"] == "ok" and body["version"] == ucs.__version__
    for path in ("operator/operator-v4.0.0.js", "operator/operator.js", "operator/operator.css", "demo/",
                 f"operator/operator-v{ucs.__version__}.js", f"operator/operator-v{ucs.__version__}.css"):
        resp = await agent.request(b"GET", (base + path).encode())
        await readBody(resp)
        assert resp.code == 200, path
    # One version scheme: the bar served is the server's version (what its onConnect reports).
    resp = await agent.request(b"GET", (base + f"operator/operator-v{ucs.__version__}.js").encode())
    assert f'var VERSION = "{ucs.__version__}";'.encode() in await readBody(resp)
    resp = await agent.request(b"GET", (base + "operator/operator.js").encode())
    await readBody(resp)
    assert resp.headers.getRawHeaders(b"content-type") == [b"text/javascript; charset=utf-8"]
    resp = await agent.request(b"GET", (base + "operator/").encode())
    await readBody(resp)
    assert resp.code == 403
    resp = await agent.request(b"GET", base.encode())
    await readBody(resp)
    assert resp.code == 302 and resp.headers.getRawHeaders(b"location") == [b"/demo/"]


def self_signed(tmp_path: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest_twisted.ensureDeferred
async def test_tls_when_a_certificate_is_configured(tmp_path: Path) -> None:
    from twisted.internet import ssl
    from twisted.internet.endpoints import wrapClientTLS

    cert, key = self_signed(tmp_path)
    server = await start(tmp_path, tls_cert=cert, tls_key=key)
    try:
        assert ws_url(server).startswith("wss://127.0.0.1:")
        trust = ssl.Certificate.loadPEM(Path(cert).read_bytes())
        client = Client()
        endpoint = wrapClientTLS(ssl.optionsForClientTLS("127.0.0.1", trust),
                                 TCP4ClientEndpoint(reactor, "127.0.0.1", server.get_web_service().port))
        await open_websocket(ws_url(server), ClientProtocol, client, endpoint=endpoint)
        assert client.hello["address"] == "127.0.0.1"
        await client.call("login", ["agent1", "demo-pass-1"])
        client.close()
        await client.closed
    finally:
        await server.service.stopService()
