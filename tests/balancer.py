"""A round-robin TCP load balancer for the cluster tests: what sits in front of UCS nodes.

Each new client connection goes to the next backend in turn; a backend that refuses the
connection (its node is stopped) is skipped for the next one, as a balancer's health
check would have it.  Bytes are relayed both ways unchanged (HTTP and WebSocket alike);
when either side closes, so does the other -- a bar whose node stops loses its socket and
reconnects through the balancer to a node that runs.  It remembers which backend each
open connection went to, and which connections are WebSockets (``GET /ws``), so a test
can tell which node serves a bar.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.python import log


class _Back(protocol.Protocol):
    """The balancer's connection to a backend: relays what the backend sends."""

    def __init__(self, front: _Front) -> None:
        self.front = front

    def dataReceived(self, data: bytes) -> None:
        if self.front.transport is not None:
            self.front.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.front.back = None
        if self.front.transport is not None:
            self.front.transport.loseConnection()


class _Front(protocol.Protocol):
    """A client's connection: held paused until a backend took it, then relayed."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.back: _Back | None = None
        self.backend: int | None = None
        self.websocket = False
        self._early: list[bytes] = []
        self._first = True

    transport: Any

    def connectionMade(self) -> None:
        self.transport.pauseProducing()
        defer.ensureDeferred(self._connect())

    async def _connect(self) -> None:
        for port in self.balancer.rotation():
            endpoint = TCP4ClientEndpoint(self.balancer.reactor, "127.0.0.1", port, timeout=5)
            try:
                back: Any = await endpoint.connect(protocol.Factory.forProtocol(lambda: _Back(self)))
            except Exception:  # noqa: S112 - refused: the next backend
                continue
            self.back, self.backend = back, port
            self.balancer.open.add(self)
            for data in self._early:
                back.transport.write(data)
            self._early = []
            self.transport.resumeProducing()
            return
        log.msg("balancer: no backend accepts a connection")
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self.websocket = data.startswith(b"GET /ws")
        if self.back is None or self.back.transport is None:
            self._early.append(data)
        else:
            self.back.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.balancer.open.discard(self)
        if self.back is not None and self.back.transport is not None:
            self.back.transport.loseConnection()


class Balancer(protocol.Factory):
    """Listen with ``reactor.listenTCP(0, Balancer(reactor, ports))``; ``ports`` may change."""

    def __init__(self, reactor: Any, ports: list[int]) -> None:
        self.reactor = reactor
        self.ports = ports
        self._next = 0
        self.open: set[_Front] = set()

    def rotation(self) -> list[int]:
        """The backends in the order this connection tries them: the next in turn first."""
        start = self._next % len(self.ports)
        self._next += 1
        return self.ports[start:] + self.ports[:start]

    def buildProtocol(self, addr: Any) -> _Front:
        return _Front(self)

    def websockets(self) -> list[int]:
        """The backend of each open WebSocket connection."""
        return [f.backend for f in self.open if f.websocket and f.backend is not None]
