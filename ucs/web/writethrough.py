"""Frames written to an idle socket at once, not through the reactor's write cycle.

Twisted's ``transport.write`` buffers and asks the reactor to watch the socket;
the next turn writes, and the reactor stops watching it again: two ``epoll``
changes, a ``doWrite`` dispatch and logging context per message.  For the
agent bars' fan-out (thousands of small frames a second, one per client) that
cycle cost three times the ``send`` itself — 80 µs of a message's 100 µs in
``bench/fanout.py``, and the 500 sends of one flush held the reactor for 50 ms.

When nothing of a connection waits in Twisted's buffer, the frame goes to the
kernel straight away; whatever the kernel does not take (a slow client whose
socket buffer is full) goes to ``transport.write`` as before, so the order of
bytes, the producer's pause and the buffer limits are Twisted's.  Only plain
TCP connections qualify: TLS has its own buffer above the socket.

It reads Twisted's private ``_tempDataBuffer`` and ``_writeDisconnected`` (checked
against Twisted 26.10.0); ``tests/test_pinned_internals.py`` fails loudly if an
upgrade changes them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.interfaces import ISSLTransport


class WriteThrough:
    """Writes bytes to a plain TCP transport without a reactor round trip when its
    buffer is empty.  One small object per connection (no closure: a function and
    its cells would be three more objects for the garbage collector to walk)."""

    __slots__ = ("sock", "transport")

    def __init__(self, transport: tcp.Connection) -> None:
        self.transport = transport
        self.sock = transport.socket

    def __call__(self, data: bytes) -> None:
        transport = self.transport
        # Twisted's FileDescriptor keeps unsent bytes in dataBuffer (the part being
        # sent) and _tempDataBuffer (what came since); both empty: nothing waits.
        if (transport.dataBuffer or transport._tempDataBuffer or not transport.connected
                or transport.disconnecting or transport._writeDisconnected):
            transport.write(data)
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # The peer is gone: the reactor finds out on its next read or write and
            # closes the connection as usual; the bytes wait in the buffer until then.
            sent = 0
        if sent < len(data):
            transport.write(data[sent:])


def write_through(transport: Any) -> Callable[[bytes], None] | None:
    """A :class:`WriteThrough` for ``transport``, or ``None`` for a transport that
    cannot (TLS, not TCP)."""
    if not isinstance(transport, tcp.Connection) or ISSLTransport.providedBy(transport):
        return None
    if getattr(transport, "socket", None) is None:
        return None
    return WriteThrough(transport)
