"""AMIClient: login, reconnect, keepalive, link state — real TCP on 127.0.0.1, time on a Clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from ucs.ami import (
    AMIAuthError,
    AMIClient,
    AMIListener,
    AMINotConnected,
    AMIProtocol,
    EventListResult,
    IAMIListener,
    counterIDs,
    login,
    md5Key,
)
from ucs.ami.testing import Capture, ReplayFactory, ReplayProtocol, capturesDir

CAPTURES = capturesDir()
BANNER = b"Asterisk Call Manager/9.0.0\r\n"
ACCEPTED = b"Response: Success\r\nActionID: lab-1\r\nMessage: Authentication accepted\r\n\r\n"
BOOTED = b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
REFUSED = b"Response: Error\r\nActionID: lab-1\r\nMessage: Authentication failed\r\n\r\n"


def capture(data: bytes) -> Capture:
    return Capture.fromBytes(BANNER + data)


LOGIN_ONLY = capture(ACCEPTED + BOOTED)


class Listener(AMIListener):
    """Records calls and lets a test wait for the n-th one of a kind."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self._waiters: list[tuple[str, int, Deferred[None]]] = []

    def _record(self, kind: str, arg: object) -> None:
        self.log.append((kind, arg))
        n = self.count(kind)
        ready = [w for w in self._waiters if w[0] == kind and w[1] <= n]
        self._waiters = [w for w in self._waiters if w not in ready]
        for _, _, d in ready:
            d.callback(None)

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.log if k == kind)

    def when(self, kind: str, n: int) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.count(kind) >= n:
            d.callback(None)
        else:
            self._waiters.append((kind, n, d))
        return d

    @property
    def kinds(self) -> list[str]:
        return [k if k != "event" else f"event:{a['Event']}" for k, a in self.log]  # type: ignore[index]

    def connected(self, protocol: AMIProtocol) -> None:
        self._record("connected", protocol)

    def eventReceived(self, message: dict[str, str]) -> None:
        self._record("event", message)

    def disconnected(self, reason: Failure) -> None:
        self._record("disconnected", reason)


class Lab:
    """A fake Asterisk on 127.0.0.1 and a client pointed at it, cleaned up after the test."""

    def __init__(self, factory: Factory, listener: Listener | None = None, **clientOptions: object) -> None:
        self.factory = factory
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.clock = Clock()
        self.listener = listener or Listener()
        self.delays: list[int] = []

        self._retryWaiters: list[tuple[int, Deferred[None]]] = []

        def policy(attempt: int) -> float:
            self.delays.append(attempt)
            ready = [w for w in self._retryWaiters if w[0] <= len(self.delays)]
            self._retryWaiters = [w for w in self._retryWaiters if w not in ready]
            for _, d in ready:
                # ClientService asks the policy just before it schedules the
                # retry on the Clock: resume the test one reactor turn later.
                reactor.callLater(0, d.callback, None)
            return 1.0

        options: dict[str, object] = {
            "clock": self.clock,
            "authType": "plain",
            "actionIDs": lambda: counterIDs("lab-"),
            "retryPolicy": policy,
        }
        options.update(clientOptions)
        self.client = AMIClient(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port),
            "ucs",
            "ucslab",
            self.listener,
            **options,  # type: ignore[arg-type]
        )

    def whenRetry(self, n: int) -> Deferred[None]:
        """Fires once the n-th reconnect has been scheduled (on the Clock)."""
        d: Deferred[None] = Deferred()
        if len(self.delays) >= n:
            reactor.callLater(0, d.callback, None)
        else:
            self._retryWaiters.append((n, d))
        return d

    async def close(self) -> None:
        await self.client.stopService()
        await self.port.stopListening()


@pytest.fixture
def logs():
    with capturedLogs() as events:
        yield events


def unexpected_failures(logs) -> list:
    """Tracebacks logged anywhere (ClientService's NoTransition, unhandled Deferreds...)."""
    return [e for e in logs if "log_failure" in e or e.get("isError")]


def test_listener_interface() -> None:
    verifyObject(IAMIListener, Listener())


# -- login on a bare protocol ----------------------------------------------------


def make_protocol() -> tuple[AMIProtocol, StringTransport]:
    p = AMIProtocol(clock=Clock(), actionIDs=counterIDs("lab-"))
    t = StringTransport()
    p.makeConnection(t)
    p.dataReceived(BANNER)
    return p, t


def test_md5_login_answers_the_challenge() -> None:
    p, t = make_protocol()
    d = Deferred.fromCoroutine(login(p, "ucs", "ucslab", events="system,call,agent"))
    assert t.value() == b"Action: Challenge\r\nActionID: lab-1\r\nAuthType: MD5\r\n\r\n"
    t.clear()
    p.dataReceived(b"Response: Success\r\nActionID: lab-1\r\nChallenge: 149624602\r\n\r\n")
    assert t.value() == (
        b"Action: Login\r\nActionID: lab-2\r\nAuthType: MD5\r\nUsername: ucs\r\n"
        b"Key: c633d1f736a547302fdc5a442a06ed83\r\nEvents: system,call,agent\r\n\r\n"
    )
    assert md5Key("149624602", "ucslab") == "c633d1f736a547302fdc5a442a06ed83"
    p.dataReceived(b"Response: Success\r\nActionID: lab-2\r\nMessage: Authentication accepted\r\n\r\n")
    assert d.result["Message"] == "Authentication accepted"


@pytest.mark.parametrize("events, header", [(True, b"on"), (False, b"off"), (["call", "agent"], b"call,agent")])
def test_plain_login(events, header) -> None:
    p, t = make_protocol()
    d = Deferred.fromCoroutine(login(p, "ucs", "ucslab", events=events, authType="plain"))
    assert t.value() == b"Action: Login\r\nActionID: lab-1\r\nUsername: ucs\r\nSecret: ucslab\r\nEvents: " + header + b"\r\n\r\n"
    p.dataReceived(ACCEPTED)
    assert d.result["Response"] == "Success"


@pytest.mark.parametrize("authType", ["plain", "md5"])
def test_login_failure_carries_asterisk_message(authType) -> None:
    p, t = make_protocol()
    d = Deferred.fromCoroutine(login(p, "ucs", "wrong", authType=authType))
    if authType == "md5":
        p.dataReceived(b"Response: Success\r\nActionID: lab-1\r\nChallenge: 1\r\n\r\n")
        refused = REFUSED.replace(b"lab-1", b"lab-2")
    else:
        refused = REFUSED
    p.dataReceived(refused)
    failures: list[Failure] = []
    d.addErrback(failures.append)
    e = failures[0].value
    assert isinstance(e, AMIAuthError)
    assert e.message == "Authentication failed" and e.action == "Login"
    assert str(e) == "AMI login refused by Asterisk (Login): Authentication failed"


# -- the client -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_plain_login_up_and_fail_fast_when_down(logs) -> None:
    lab = Lab(ReplayFactory([LOGIN_ONLY], closeAtEnd=False))
    assert lab.client.state == "down"
    with pytest.raises(AMINotConnected, match="link is down"):
        await lab.client.sendAction("Ping")
    try:
        lab.client.startService()
        assert lab.client.state == "connecting"
        with pytest.raises(AMINotConnected, match="connecting"):
            await lab.client.sendAction("Ping")
        proto = await lab.client.whenUp()
        assert lab.client.state == "up" and lab.client.protocol is proto
        assert proto.banner == "Asterisk Call Manager/9.0.0"
        server = lab.factory.connections[0]
        assert server.received == [
            {"Action": "Login", "ActionID": "lab-1", "Username": "ucs", "Secret": "ucslab", "Events": "on"}
        ]
        # connected() first, then the FullyBooted that followed the login.
        await lab.listener.when("event", 1)
        assert lab.listener.kinds == ["connected", "event:FullyBooted"]
        pong = await lab.client.sendAction("Ping")
        assert pong["Ping"] == "Pong"
    finally:
        await lab.close()
    assert lab.client.state == "down"
    assert lab.listener.kinds == ["connected", "event:FullyBooted", "disconnected"]
    with pytest.raises(AMINotConnected):
        await lab.client.sendAction("Ping")
    assert unexpected_failures(logs) == []


@pytest_twisted.ensureDeferred
async def test_login_refused_logs_the_reason_and_retries_with_growing_backoff(logs) -> None:
    lab = Lab(ReplayFactory([capture(REFUSED), capture(REFUSED), LOGIN_ONLY]))
    try:
        lab.client.startService()
        await lab.whenRetry(1)
        # Attempt 1 refused: retry is on the Clock, not yet taken.
        assert lab.client.state == "connecting"
        assert isinstance(lab.client.lastFailure.value, AMIAuthError)  # type: ignore[union-attr]
        assert len(lab.factory.connections) == 1
        lab.clock.advance(1.0)
        await lab.whenRetry(2)
        lab.clock.advance(1.0)
        await lab.client.whenUp()
        assert lab.client.lastFailure is None
    finally:
        await lab.close()
    refused = [e for e in logs if "AMI login as" in e.get("log_format", "")]
    assert len(refused) == 2
    assert "Authentication failed" in refused[0]["error"]
    # The policy saw the count of links that never came up, not ClientService's reset count.
    assert lab.delays[:2] == [1, 2]
    assert [k for k in lab.listener.kinds if not k.startswith("event")] == ["connected", "disconnected"]
    assert unexpected_failures(logs) == []


class Silent(Protocol):
    """An Asterisk that greets and then never answers."""

    def __init__(self, factory: SilentFactory) -> None:
        self.owner = factory

    def connectionMade(self) -> None:
        self.transport.write(BANNER)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.owner.received.append(data)
        self.owner.fire("received")

    def connectionLost(self, reason: Failure) -> None:
        self.owner.fire("lost")


class SilentFactory(Factory):
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.built = 0
        self._waiters: dict[str, list[Deferred[None]]] = {}

    def buildProtocol(self, addr):
        self.built += 1
        return Silent(self)

    def fire(self, what: str) -> None:
        for d in self._waiters.pop(what, []):
            d.callback(None)

    def when(self, what: str) -> Deferred[None]:
        """The next time the server receives bytes ("received") or loses a client ("lost")."""
        d: Deferred[None] = Deferred()
        self._waiters.setdefault(what, []).append(d)
        return d


@pytest_twisted.ensureDeferred
async def test_login_timeout_drops_the_connection_and_retries(logs) -> None:
    factory = SilentFactory()
    lab = Lab(factory, loginTimeout=5.0)
    try:
        received = factory.when("received")
        lost = factory.when("lost")
        lab.client.startService()
        await received  # the Login reached the server; now let the clock run out
        assert factory.received[0].startswith(b"Action: Login\r\n")
        lab.clock.advance(4.9)
        assert factory.built == 1 and lab.client.state == "connecting"
        lab.clock.advance(0.1)
        await lost
        await lab.whenRetry(1)
        assert lab.client.state == "connecting"
        assert "Login" in str(lab.client.lastFailure.value)  # type: ignore[union-attr]
        again = factory.when("received")
        lab.clock.advance(1.0)
        await again
        assert factory.built == 2
    finally:
        await lab.close()
    assert lab.listener.log == []
    assert unexpected_failures(logs) == []


@pytest_twisted.ensureDeferred
async def test_stop_during_login_closes_cleanly(logs) -> None:
    factory = SilentFactory()
    lab = Lab(factory)
    received = factory.when("received")
    lost = factory.when("lost")
    lab.client.startService()
    await received
    await lab.close()
    await lost
    assert lab.client.state == "down"
    assert lab.listener.log == []
    assert lab.clock.getDelayedCalls() == []
    assert unexpected_failures(logs) == []


@pytest_twisted.ensureDeferred
async def test_keepalive_drops_a_dead_link_and_reconnects(logs) -> None:
    # Connection 1 never answers Ping; connection 2 does.
    factory = ReplayFactory([LOGIN_ONLY], closeAtEnd=False, answerPing=False)
    lab = Lab(factory, keepaliveInterval=20.0, keepaliveTimeout=5.0)
    try:
        lab.client.startService()
        first = await lab.client.whenUp()
        server1: ReplayProtocol = factory.connections[0]
        factory.options["answerPing"] = True
        lab.clock.advance(20.0)
        ping = await server1.whenAction(2)
        assert ping == {"Action": "Ping", "ActionID": "lab-2"}
        lab.clock.advance(4.9)
        assert lab.client.state == "up"
        lab.clock.advance(0.1)
        await lab.listener.when("disconnected", 1)
        await server1.whenLost()
        await lab.whenRetry(1)
        assert lab.client.state == "connecting"
        lab.clock.advance(1.0)
        await lab.listener.when("connected", 2)
        second = await lab.client.whenUp()
        assert second is not first and lab.client.state == "up"
        assert lab.listener.log[-2] == ("connected", second) or lab.listener.log[-1] == ("connected", second)
        assert (await lab.client.sendAction("Ping"))["Ping"] == "Pong"
        # The keepalive runs on the new link too.
        lab.clock.advance(20.0)
        assert (await factory.connections[1].whenAction(3))["Action"] == "Ping"
    finally:
        await lab.close()
    assert [k for k in lab.listener.kinds if not k.startswith("event")] == [
        "connected",
        "disconnected",
        "connected",
        "disconnected",
    ]
    warned = [e for e in logs if "did not answer Ping" in e.get("log_format", "")]
    assert len(warned) == 1
    assert unexpected_failures(logs) == []


@pytest.mark.skipif(not (CAPTURES / "asterisk_restart.ami").exists(), reason="no captures")
@pytest_twisted.ensureDeferred
async def test_asterisk_restart_shutdown_then_reconnect_and_resync(logs) -> None:
    before = Capture.fromFile(CAPTURES / "asterisk_restart.ami")
    after = Capture.fromFile(CAPTURES / "asterisk_restart.after.ami")
    lab = Lab(ReplayFactory([before, after]))
    try:
        lab.client.startService()
        await lab.client.whenUp()
        added = await lab.client.sendAction(
            "QueueAdd",
            {"Queue": "support", "Interface": "SIP/1001", "MemberName": "Alice Agent", "Paused": "false", "StateInterface": "SIP/1001"},
        )
        assert added["Message"] == "Added interface to queue"
        # Asterisk restarts: Shutdown, then it closes the link.
        await lab.listener.when("disconnected", 1)
        kinds = lab.listener.kinds
        assert kinds[-2:] == ["event:Shutdown", "disconnected"]
        shutdown = lab.listener.log[-2][1]
        assert shutdown["Restart"] == "True"  # type: ignore[index]
        assert lab.client.state == "connecting"
        with pytest.raises(AMINotConnected):
            await lab.client.sendAction("QueueStatus")
        # Asterisk is back: the retry (on the Clock) finds it.
        await lab.whenRetry(1)
        lab.clock.advance(1.0)
        await lab.listener.when("connected", 2)
        # The replay sends what followed the login with the next answer.
        status = await lab.client.sendAction("QueueStatus")
        kinds = lab.listener.kinds
        assert kinds[kinds.index("connected", 1) :] == ["connected", "event:FullyBooted", "event:SuccessfulAuth"]
        assert isinstance(status, EventListResult)
        assert [e["Event"] for e in status] == ["QueueParams", "QueueParams"]  # no members survived
        channels = await lab.client.sendAction("CoreShowChannels")
        assert channels.events == []
        assert (await lab.client.sendAction("Logoff"))["Response"] == "Goodbye"
        assert [a["ActionID"] for a in lab.factory.connections[1].received] == ["lab-1", "lab-2", "lab-3", "lab-4"]
    finally:
        await lab.close()
    assert unexpected_failures(logs) == []


@pytest_twisted.ensureDeferred
async def test_connection_closed_during_login_retries(logs) -> None:
    # The server closes right after the banner (Asterisk's authlimit does that).
    lab = Lab(ReplayFactory([Capture.fromBytes(BANNER), LOGIN_ONLY], closeAtEnd=True))
    try:
        lab.client.startService()
        await lab.whenRetry(1)
        lab.clock.advance(1.0)
        await lab.client.whenUp()
    finally:
        await lab.close()
    assert [k for k in lab.listener.kinds if not k.startswith("event")] == ["connected", "disconnected"]
    assert unexpected_failures(logs) == []


@pytest_twisted.ensureDeferred
async def test_listener_may_stop_the_client_from_connected(logs) -> None:
    stopped: list[Deferred[None]] = []

    class Stopper(Listener):
        def connected(self, protocol: AMIProtocol) -> None:
            stopped.append(lab.client.stopService())
            super().connected(protocol)

    lab = Lab(ReplayFactory([LOGIN_ONLY], closeAtEnd=False), listener=Stopper())
    lab.client.startService()
    await lab.listener.when("connected", 1)
    await stopped[0]
    assert lab.client.state == "down"
    assert [k for k in lab.listener.kinds if not k.startswith("event")] == ["connected", "disconnected"]
    await lab.factory.connections[0].whenLost()
    await lab.port.stopListening()
    assert lab.clock.getDelayedCalls() == []
    assert unexpected_failures(logs) == []


@pytest_twisted.ensureDeferred
async def test_listener_bug_in_connected_is_logged_and_the_link_stays_up(logs) -> None:
    class Buggy(Listener):
        def connected(self, protocol: AMIProtocol) -> None:
            super().connected(protocol)
            raise RuntimeError("listener bug")

    lab = Lab(ReplayFactory([LOGIN_ONLY], closeAtEnd=False), listener=Buggy())
    try:
        lab.client.startService()
        await lab.client.whenUp()
        assert (await lab.client.sendAction("Ping"))["Ping"] == "Pong"
        assert lab.client.state == "up"
    finally:
        await lab.close()
    failures = unexpected_failures(logs)
    assert len(failures) == 1 and failures[0]["log_failure"].check(RuntimeError)
