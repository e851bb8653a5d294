"""A TCP forwarder a test can cut and restore: a node's network to PostgreSQL or NATS (issue 20).

A real socket proxy on the reactor (loopback port -> target), not a mock: the node
talks to it as to the server.  Two ways to cut, as two kinds of partition look:

- :meth:`CutProxy.freeze`: nothing goes through any more, but the node's sockets stay
  open and new ones are accepted and left silent -- what a node sees when the network
  drops its packets.  The server's side is closed at once (what PostgreSQL does after its
  keepalives fail: here without waiting for them); with ``server=False`` it stays open and
  silent too (a server that has not noticed yet: the store's sessions, whose keepalives are
  the system's, hours).
- :meth:`CutProxy.refuse`: every connection is closed and new ones are refused -- a
  server that is gone.

:meth:`CutProxy.restore` lets traffic through again (the frozen sockets are closed, as a
peer that forgot them would reset them).

``interface`` is where it listens (a network namespace's bridge: ``tests/netns.py``);
with ``keepalive`` (seconds) its client side gets TCP keepalives and a user timeout of
that long, and a client that stops answering has its upstream connection closed: what
PostgreSQL's own keepalives would do to a node whose network went, were the node
talking to it directly.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import protocol
from twisted.internet.endpoints import TCP4ClientEndpoint


class _Upstream(protocol.Protocol):
    def __init__(self, down: _Downstream) -> None:
        self.down = down

    def dataReceived(self, data: bytes) -> None:
        if not self.down.proxy.frozen:
            self.down.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.down.proxy.frozen:
            self.down.transport.loseConnection()


class _Downstream(protocol.Protocol):
    def __init__(self, proxy: CutProxy) -> None:
        self.proxy = proxy
        self.up: _Upstream | None = None
        self.pending: list[bytes] = []

    def connectionMade(self) -> None:
        self.proxy.conns.add(self)
        if self.proxy.keepalive:
            sock = self.transport.getHandle()
            idle = max(1, self.proxy.keepalive - 3)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, self.proxy.keepalive * 1000)
        if self.proxy.frozen:
            return  # accepted, never answered
        endpoint = TCP4ClientEndpoint(self.proxy.reactor, "127.0.0.1", self.proxy.target)
        d = endpoint.connect(protocol.Factory.forProtocol(lambda: _Upstream(self)))

        def connected(up: _Upstream) -> None:
            self.up = up
            for data in self.pending:
                up.transport.write(data)
            self.pending.clear()

        d.addCallbacks(connected, lambda f: self.transport.abortConnection())

    def dataReceived(self, data: bytes) -> None:
        if self.proxy.frozen:
            return
        if self.up is None:
            self.pending.append(data)
        else:
            self.up.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.proxy.conns.discard(self)
        if self.up is not None:
            self.up.transport.loseConnection()


class CutProxy:
    def __init__(self, reactor: Any, target: int, interface: str = "127.0.0.1", keepalive: int = 0) -> None:
        self.reactor = reactor
        self.target = target
        self.interface = interface
        self.keepalive = keepalive
        self.frozen = False
        self.conns: set[_Downstream] = set()
        self.port = 0
        self._listening: Any = None

    def start(self) -> None:
        factory = protocol.Factory.forProtocol(lambda: _Downstream(self))
        self._listening = self.reactor.listenTCP(self.port, factory, interface=self.interface)
        self.port = self._listening.getHost().port

    def freeze(self, server: bool = True) -> None:
        self.frozen = True
        for c in list(self.conns):
            if c.up is not None and server:
                c.up.transport.abortConnection()

    def refuse(self) -> Any:
        for c in list(self.conns):
            c.transport.abortConnection()
        listening, self._listening = self._listening, None
        return listening.stopListening() if listening is not None else None

    def restore(self) -> None:
        if self.frozen:
            self.frozen = False
            for c in list(self.conns):
                c.transport.abortConnection()
                if c.up is not None:
                    c.up.transport.abortConnection()
        if self._listening is None:
            self.start()

    def stop(self) -> Any:
        self.frozen = False
        return self.refuse()
