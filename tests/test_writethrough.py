"""Frames written straight to an idle socket (``ucs.web.writethrough``), over real TCP.

What must hold whatever path a frame takes: every byte arrives once and in order,
a client that stops reading still makes the transport pause its producer (so the
agent bar's bounded buffer and its drop still work), and a socket with nothing
waiting is written at once instead of on the reactor's next turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from test_web_api import fast_and_stopped_bars, start, until
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from ucs.web import messages
from ucs.web.writethrough import write_through


class Sink(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()

    def dataReceived(self, data: bytes) -> None:
        self.data += data


@implementer(IPushProducer)
class Producer:
    def __init__(self) -> None:
        self.paused = 0

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


async def _pair() -> tuple[Any, Sink, Any]:
    """A server-side TCP transport and the client protocol reading its bytes."""
    accepted: defer.Deferred[Any] = defer.Deferred()

    class Server(Protocol):
        def connectionMade(self) -> None:
            accepted.callback(self.transport)

    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(Server))
    sink = Sink()
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(Factory.forProtocol(lambda: sink))
    transport = await accepted
    return transport, sink, port


@pytest_twisted.ensureDeferred
async def test_an_idle_socket_is_written_at_once() -> None:
    transport, sink, port = await _pair()
    try:
        write = write_through(transport)
        assert write is not None
        write(b"hello")
        # Nothing left for the reactor: the kernel has the bytes already.
        assert not transport.dataBuffer and not transport._tempDataBuffer
        await until(lambda: bytes(sink.data) == b"hello", timeout=5)
    finally:
        transport.loseConnection()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_gets_every_byte_in_order_and_pauses_the_producer() -> None:
    transport, sink, port = await _pair()
    try:
        producer = Producer()
        transport.registerProducer(producer, True)
        sink.transport.pauseProducing()  # type: ignore[union-attr]  # the client stops reading
        write = write_through(transport)
        assert write is not None
        chunks = [(b"%06d:" % i) + b"x" * 9_993 for i in range(3_000)]  # 30 MB: more than the kernel holds
        buffered_at = None
        for i, chunk in enumerate(chunks):
            write(chunk)
            if buffered_at is None and (transport.dataBuffer or transport._tempDataBuffer):
                buffered_at = i
        assert buffered_at is not None, "the kernel took 30 MB for a client that does not read"
        assert producer.paused, "the producer was never paused while bytes piled up"
        sink.transport.resumeProducing()  # type: ignore[union-attr]
        expected = b"".join(chunks)
        await until(lambda: len(sink.data) >= len(expected), timeout=30)
        assert bytes(sink.data) == expected
    finally:
        transport.loseConnection()
        await port.stopListening()


def test_a_transport_that_is_not_plain_tcp_is_left_to_twisted() -> None:
    assert write_through(object()) is None


@pytest_twisted.ensureDeferred
async def test_agent_bar_frames_built_once_arrive_in_order_at_a_slow_bar(tmp_path: Path) -> None:
    """The agent bar's fan-out frames (built once for many clients) through a bar
    that stops reading for a while: none lost, none out of order, a fast bar unaffected."""
    server = await start(tmp_path, max_client_buffer=64 * 1024 * 1024)
    try:
        hub = server.get_web_service().hub
        fast, slow = await fast_and_stopped_bars(server)
        n = 600
        for i in range(n):
            out = hub._out(messages.event("test.seq", {"i": i, "pad": "y" * 20_000}))
            assert out.prepared is not None
            for conn in list(hub.connections):
                conn.send(out)
            if i % 50 == 0:
                await task.deferLater(reactor, 0, lambda: None)
        slow.proto.transport.resumeProducing()
        for client in (fast, slow):
            await until(lambda: client.events().count("test.seq") >= n, timeout=30)
            seq = [m["data"]["i"] for m in client.inbox if m["event"] == "test.seq"]
            assert seq == list(range(n))
        assert await slow.call("echo", ["still here"]) == "still here"
        fast.close()
        slow.close()
    finally:
        await server.service.stopService()
