"""Slowloris clients: a request not complete within ``web.request_timeout`` is dropped.

Most tests run the whole server in demo mode (``tests/serverkit.py``) with a short
``request_timeout`` and talk to it through real TCP sockets: a client that stops
half-way through its request, or never sends one, and one that dribbles a byte
more often than any idle timer would wait, are dropped after about the timeout;
a WebSocket left idle well past it stays open and still answers; plain HTTP works,
a keep-alive connection gets the full time for each request.  Where a test shows a
connection is *kept* (the WebSocket, the keep-alive), the server's deadlines run on a
:class:`task.Clock` (:func:`deadlines_on`) over the real sockets, so the window is
advanced, not slept through, and is as tight as a Clock makes it.  A few more drive
:class:`ucs.web.site.RequestDeadlineChannel` on a fake clock, for what real time
cannot show quickly (hours, the forced abort).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from serverkit import start_demo
from test_web_api import self_signed
from twisted.internet import defer, reactor, ssl, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource

from ucs.config import Config, ConfigError, parse_config
from ucs.server import UCSServer
from ucs.web.options import WebOptions
from ucs.web.site import DeadlineSite, RequestDeadlineChannel

#: ``web.request_timeout`` of the servers here: short, so a test takes a second or two.
TIMEOUT = 0.5
#: How much later than the timeout a drop may come on a busy test machine.
SLACK = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UCSServer]:
    """One server for the module (each test leaves no connection behind)."""
    tmp_path = tmp_path_factory.mktemp("slowloris")
    srv = pytest_twisted.blockon(defer.ensureDeferred(start_demo(tmp_path, web={"request_timeout": TIMEOUT})))
    yield srv
    pytest_twisted.blockon(srv.service.stopService())


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    """What :class:`RequestDeadlineChannel` logs while the test runs."""
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if "RequestDeadlineChannel" in event.get("log_namespace", ""):
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


# -- a raw TCP client ------------------------------------------------------------------------


class RawClient(Protocol):
    """Bytes out as the test says, bytes in kept; ``lost`` fires when the server drops it."""

    def __init__(self) -> None:
        self.received = b""
        self.sent = 0
        self.connected_at = 0.0
        self.lost_at: float | None = None
        self.lost: defer.Deferred[float] = defer.Deferred()

    def connectionMade(self) -> None:
        self.connected_at = now()

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self.sent += len(data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost_at = now()
        self.lost.callback(self.lost_at - self.connected_at)

    def close(self) -> None:
        if self.lost_at is None and self.transport is not None:
            self.transport.loseConnection()


def now() -> float:
    return float(reactor.seconds())  # type: ignore[attr-defined]


async def raw_connect(server: UCSServer) -> RawClient:
    port = server.get_web_service().port
    return await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), RawClient())


async def dropped(client: RawClient, within: float = TIMEOUT + SLACK + 2) -> float:
    """Seconds from connecting to the server dropping ``client``; fails after ``within``."""
    elapsed: float = await client.lost.addTimeout(within, reactor)
    return elapsed


#: How far short of the timeout a connection is shown still kept, on a Clock: a power
#: of two, so that the clock's sums (of it and TIMEOUT) are exact and land on the deadline.
HAIR = 2.0 ** -10


def deadlines_on(web: Any, monkeypatch: pytest.MonkeyPatch) -> task.Clock:
    """A :class:`task.Clock` that times the request deadline (and forced abort) of every
    connection the web service accepts until the test ends; all else stays on the reactor."""
    clock = task.Clock()
    build = web.site.buildProtocol

    def on_clock(addr: Any) -> Any:
        channel = build(addr)
        channel.callLater = clock.callLater
        return channel

    monkeypatch.setattr(web.site, "buildProtocol", on_clock)
    return clock


async def sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds, lambda: None)


def responses(data: bytes) -> list[tuple[int, bytes]]:
    """The complete HTTP responses in ``data`` (status, body), each with a Content-Length."""
    out: list[tuple[int, bytes]] = []
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in lines[1:]
                      if line.lower().startswith(b"content-length:"))
        if len(rest) < length:
            break
        out.append((int(lines[0].split()[1]), rest[:length]))
        data = rest[length:]
    return out


async def until(test: Any, timeout: float = 5.0) -> None:
    deadline = now() + timeout
    while not test():
        if now() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await sleep(0.01)


HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


# -- slow clients are dropped ------------------------------------------------------------------


@pytest.mark.parametrize("sent", [HEALTH[:30], UPGRADE[:-2], b""],
                         ids=["half-get", "upgrade-no-blank-line", "nothing"])
@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_half_way_is_dropped_after_the_timeout(
        server: UCSServer, logged: list[dict[str, Any]], sent: bytes) -> None:
    c = await raw_connect(server)
    if sent:
        c.send(sent)
    elapsed = await dropped(c)
    assert TIMEOUT * 0.9 <= elapsed <= TIMEOUT + SLACK
    assert c.received == b""  # dropped, not answered
    assert server.get_web_service().hub.stats()["connections"] == 0
    await until(lambda: logged)
    [event] = logged
    text = formatEvent(event)
    if sent:
        assert event["log_level"] == LogLevel.info
        assert text.startswith("web: dropped 127.0.0.1:")
        assert f"no complete HTTP request within 0.5 s ({len(sent)} bytes of it received)" in text
    else:  # a socket opened and never used (browsers preconnect): not worth more than debug
        assert event["log_level"] == LogLevel.debug
        assert "closed idle connection from 127.0.0.1:" in text
    assert "Traceback" not in text


@pytest_twisted.ensureDeferred
async def test_a_client_dribbling_bytes_is_dropped_though_it_is_never_idle(
        server: UCSServer, logged: list[dict[str, Any]]) -> None:
    # A byte every 0.1 s: an idle timeout of 0.5 s would never fire.
    stream = iter(UPGRADE[:-2] + b"X-Slow: " + b"a" * 10_000)
    c = await raw_connect(server)
    loop = task.LoopingCall(lambda: c.send(bytes([next(stream)])))
    loop.clock = reactor  # type: ignore[assignment]
    loop.start(TIMEOUT / 5)
    try:
        elapsed = await dropped(c)
    finally:
        if loop.running:
            loop.stop()
    assert TIMEOUT * 0.9 <= elapsed <= TIMEOUT + SLACK
    assert c.sent >= 4 and c.received == b""
    await until(lambda: logged)
    assert [e["log_level"] for e in logged] == [LogLevel.info]


# -- good clients are not --------------------------------------------------------------------------


class WSClient(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.opened.callback(self)  # type: ignore[attr-defined]

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.inbox.append(json.loads(payload))  # type: ignore[attr-defined]

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.closed.append((code, reason))  # type: ignore[attr-defined]


async def idle_websocket_stays_open(web: Any, endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Open the agent bar's WebSocket through ``endpoint``, leave it silent for three
    request timeouts (the server pings every 20 s), then use it and close it.

    The deadlines of the connections made meanwhile run on a :class:`task.Clock`
    (:func:`deadlines_on`): the window is advanced at once instead of slept through,
    and the clock shows nothing is even scheduled once the upgrade is done."""
    clock = deadlines_on(web, monkeypatch)
    factory = WebSocketClientFactory(web.ws_url)
    factory.protocol = WSClient
    factory.opened = defer.Deferred()  # type: ignore[attr-defined]
    factory.inbox = []  # type: ignore[attr-defined]
    factory.closed = []  # type: ignore[attr-defined]
    await endpoint.connect(factory)
    proto: WSClient = await factory.opened.addTimeout(5, reactor)  # type: ignore[attr-defined]
    await until(lambda: factory.inbox)  # type: ignore[attr-defined]
    assert factory.inbox[0]["event"] == "hello"  # type: ignore[attr-defined]
    # The request was complete, so its deadline was cancelled, and an upgraded request
    # never finishes, so none is started again: nothing can fire, however long it sits.
    assert not clock.getDelayedCalls()
    clock.advance(TIMEOUT * 3)
    assert factory.closed == []  # type: ignore[attr-defined]
    assert web.hub.stats()["connections"] == 1
    proto.sendMessage(json.dumps({"id": 1, "method": "session.ping"}).encode())
    await until(lambda: any(m.get("id") == 1 for m in factory.inbox))  # type: ignore[attr-defined]
    [reply] = [m for m in factory.inbox if m.get("id") == 1]  # type: ignore[attr-defined]
    assert "now" in reply["result"]
    proto.sendClose(1000)
    await until(lambda: factory.closed)  # type: ignore[attr-defined]
    assert factory.closed[0][0] == 1000  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_an_idle_websocket_stays_open_past_the_timeout_and_still_works(
        server: UCSServer, monkeypatch: pytest.MonkeyPatch) -> None:
    web = server.get_web_service()
    await idle_websocket_stays_open(web, TCP4ClientEndpoint(reactor, "127.0.0.1", web.port), monkeypatch)


@pytest_twisted.ensureDeferred
async def test_with_tls_a_silent_client_is_dropped_and_an_idle_websocket_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline also covers the TLS handshake; the upgraded WebSocket sits on the TLS layer."""
    cert, key = self_signed(tmp_path)
    server = await start_demo(tmp_path, web={"request_timeout": TIMEOUT, "tls_cert": cert, "tls_key": key})
    try:
        web = server.get_web_service()
        silent = await raw_connect(server)  # not even a TLS ClientHello
        assert TIMEOUT * 0.9 <= await dropped(silent) <= TIMEOUT + SLACK
        trust = ssl.Certificate.loadPEM(Path(cert).read_bytes())
        await idle_websocket_stays_open(web, wrapClientTLS(ssl.optionsForClientTLS("127.0.0.1", trust),
                                                           TCP4ClientEndpoint(reactor, "127.0.0.1", web.port)),
                                        monkeypatch)
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_plain_http_still_works(server: UCSServer) -> None:
    web = server.get_web_service()
    response = await Agent(reactor).request(b"GET", f"{web.url}health".encode())
    assert response.code == 200
    assert json.loads(await readBody(response))["status"] == "ok"


@pytest_twisted.ensureDeferred
async def test_a_keep_alive_connection_gets_the_timeout_for_each_request_then_is_closed_when_idle(
        server: UCSServer, logged: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    # The deadline runs on a Clock (deadlines_on), so each window is as tight as it gets:
    # a hair under the timeout between requests (kept), then exactly the timeout idle (dropped).
    clock = deadlines_on(server.get_web_service(), monkeypatch)
    c = await raw_connect(server)
    for n in (1, 2, 3):  # 3 requests just under the timeout apart: nearly 2 timeouts in all
        if n > 1:
            clock.advance(TIMEOUT - HAIR)
        c.send(HEALTH)
        await until(lambda: len(responses(c.received)) == n)
        assert c.lost_at is None
    assert [status for status, _ in responses(c.received)] == [200, 200, 200]
    assert clock.seconds() > TIMEOUT
    clock.advance(TIMEOUT - HAIR)  # idle, still within its time: the deadline has not fired
    assert logged == [] and c.lost_at is None
    clock.advance(HAIR)  # the timeout reached: dropped
    assert [e["log_level"] for e in logged] == [LogLevel.debug]  # an idle keep-alive: ordinary
    await dropped(c)
    assert not clock.getDelayedCalls()  # nor the forced abort left behind: the socket closed


# -- the option ------------------------------------------------------------------------------------


def test_the_option_default_range_and_error() -> None:
    assert Config().web.request_timeout == 10.0
    assert WebOptions.from_config(parse_config("[web]\nrequest_timeout = 2", "t.toml").web).request_timeout == 2.0
    with pytest.raises(ConfigError) as e:
        parse_config("[web]\nrequest_timeout = 0", "bad.toml")
    assert str(e.value) == ("bad.toml: web.request_timeout: 0 is out of range; use a number of seconds "
                            "from 0.1 to 600")
    assert e.value.key == "web.request_timeout"
    with pytest.raises(ConfigError, match="web.request_timeout: 'slow' is a string"):
        parse_config("[web]\nrequest_timeout = 'slow'", "bad.toml")


# -- the channel on a fake clock ---------------------------------------------------------------------


class Hello(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"hello"


class Upgraded(Resource):
    """Takes the transport over as autobahn's WebSocketResource does, and never finishes the request."""

    isLeaf = True

    def render_GET(self, request: Any) -> Any:
        request.channel.transport = None
        from twisted.web.server import NOT_DONE_YET

        return NOT_DONE_YET


def channel_on(clock: MemoryReactorClock) -> tuple[RequestDeadlineChannel, StringTransport]:
    root = Resource()
    root.putChild(b"hello", Hello())
    root.putChild(b"ws", Upgraded())
    site = DeadlineSite(root, request_timeout=10, reactor=clock)
    channel = site.buildProtocol(None)
    assert isinstance(channel, RequestDeadlineChannel)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def aborted(transport: StringTransport) -> bool:
    return bool(getattr(transport, "disconnected", False))  # what StringTransport.abortConnection sets


def test_the_deadline_counts_from_the_first_byte_not_the_last() -> None:
    clock = MemoryReactorClock()
    channel, transport = channel_on(clock)
    dribble = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    for byte in dribble[:60]:  # a byte every 0.2 s for 12 s
        if not transport.disconnecting:
            channel.dataReceived(bytes([byte]))
        clock.advance(0.2)
    assert transport.disconnecting and transport.value() == b""
    # The client does not read, so the socket does not close: it is aborted after abortTimeout.
    assert not aborted(transport)
    clock.advance(channel.abortTimeout)
    assert aborted(transport)
    channel.connectionLost(Failure(ConnectionError()))
    assert not clock.getDelayedCalls()


def test_the_deadline_stops_for_good_once_a_request_takes_the_transport_over() -> None:
    clock = MemoryReactorClock()
    channel, transport = channel_on(clock)
    channel.dataReceived(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.value().endswith(b"hello")
    clock.advance(9)
    channel.dataReceived(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")  # 9 s of the next 10
    clock.advance(24 * 3600)
    assert not transport.disconnecting and not aborted(transport)
    assert not clock.getDelayedCalls()
