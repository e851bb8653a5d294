"""The private parts of Twisted and autobahn UCS reads for speed, pinned.

``ucs.web.writethrough`` decides whether a socket is idle from Twisted's
``FileDescriptor`` buffers (``dataBuffer``, ``_tempDataBuffer``,
``_writeDisconnected``), and ``ucs.web.protocol`` writes through only when
autobahn's ``send_queue`` is empty.  None of these is public: an upgrade that
renames or retypes one would silently turn the write-through off (or worse, write
around bytes still queued).  These tests fail loudly instead, on a real TCP
connection and a real autobahn protocol; checked against Twisted 26.10.0 and
autobahn 26.11.1 (setup.cfg asks for twisted>=24.3 and autobahn>=24.4: a newer release that
changed them fails here first).
"""

from __future__ import annotations

import socket

import pytest_twisted
from autobahn.twisted.websocket import WebSocketServerProtocol
from twisted.internet import protocol, reactor, tcp
from twisted.internet.defer import Deferred, maybeDeferred

from ucs.web.writethrough import WriteThrough, write_through


class _Keep(protocol.Protocol):
    def __init__(self, got: Deferred[tcp.Connection]) -> None:
        self.got = got

    def connectionMade(self) -> None:
        self.got.callback(self.transport)  # type: ignore[arg-type]


@pytest_twisted.ensureDeferred
async def test_twisted_tcp_connection_has_the_buffers_writethrough_reads() -> None:
    got: Deferred[tcp.Connection] = Deferred()
    factory = protocol.ServerFactory()
    factory.buildProtocol = lambda addr: _Keep(got)  # type: ignore[method-assign, assignment, return-value]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    client = socket.create_connection(("127.0.0.1", port.getHost().port))  # type: ignore[attr-defined]
    try:
        transport = await got
        assert isinstance(transport, tcp.Connection)
        # What WriteThrough.__call__ reads, with the types it assumes.
        assert transport.dataBuffer == b""
        assert isinstance(transport._tempDataBuffer, list) and transport._tempDataBuffer == []
        assert transport._writeDisconnected is False
        assert transport.connected and not transport.disconnecting
        assert transport.socket is not None
        writer = write_through(transport)
        assert isinstance(writer, WriteThrough)
        # Bytes queued by transport.write land in _tempDataBuffer until the reactor's
        # write turn: the write-through must then go the slow way, after them.
        transport.write(b"first")
        assert transport._tempDataBuffer == [b"first"]
        writer(b"second")
        assert transport._tempDataBuffer == [b"first", b"second"]
        received = b""
        client.settimeout(5)
        while len(received) < len(b"firstsecond"):
            await _turn()
            try:
                received += client.recv(64)
            except BlockingIOError:
                pass
        assert received == b"firstsecond"
    finally:
        client.close()
        transport.loseConnection()
        await maybeDeferred(port.stopListening)


async def _turn() -> None:
    d: Deferred[None] = Deferred()
    reactor.callLater(0.01, d.callback, None)  # type: ignore[attr-defined]
    await d


def test_autobahn_queues_unsent_frames_in_send_queue() -> None:
    """``ucs.web.protocol`` writes a frame straight to the socket only when autobahn
    holds nothing unsent: autobahn keeps that in ``send_queue`` (a deque made when the
    connection is made, appended to by ``sendData`` and drained by ``_send``)."""
    import inspect

    from autobahn.websocket.protocol import WebSocketProtocol

    assert "self.send_queue = deque()" in inspect.getsource(WebSocketProtocol._connectionMade)
    assert "self.send_queue.append(" in inspect.getsource(WebSocketProtocol.sendData)
    assert "self.send_queue.popleft()" in inspect.getsource(WebSocketProtocol._send)
    assert WebSocketServerProtocol.STATE_OPEN not in (WebSocketServerProtocol.STATE_CLOSED,
                                                      WebSocketServerProtocol.STATE_CLOSING)
