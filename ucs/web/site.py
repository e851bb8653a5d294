"""The web server's HTTP side: a whole request within ``request_timeout``, or the client is dropped.

Twisted's :class:`~twisted.web.server.Site` has a ``timeout``, but it is an *idle*
timeout (``TimeoutMixin``): :meth:`HTTPChannel.dataReceived` restarts it on every
byte, so a client dribbling one header byte every few seconds (slowloris) holds
its socket for ever, and the default is 12 hours anyway.  autobahn's
``openHandshakeTimeout`` does not help: inside a web site the WebSocket protocol
only exists once Twisted has read the whole upgrade request.

:class:`RequestDeadlineChannel` keeps Twisted's timer and where Twisted starts and
stops it, and only stops data from restarting it.  Twisted starts it when the
channel waits for a request (on connect, and after each response of a keep-alive
connection) and stops it once a request is complete (``allContentReceived``),
while the request is handled; so the timer bounds the whole request — headers and
body, the WebSocket upgrade included — and how long a keep-alive connection may
sit idle.  An upgraded WebSocket is not affected: its request never finishes, so
the timer is never started again, and the WebSocket's own heartbeat
(``ping_interval``/``ping_timeout``) watches it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Site


class RequestDeadlineChannel(HTTPChannel):
    """An HTTP channel whose timeout is a deadline for the next request; see the module docstring."""

    log = Logger()

    #: Bytes received since the channel began to wait for a request: none means an
    #: idle keep-alive (or browser-preconnected) socket, which is ordinary and logged
    #: at debug; some means a request that did not finish in time, logged at info.
    _waiting_bytes = 0
    _force_abort: Any = None

    def resetTimeout(self) -> None:
        """Data does not restart the deadline: only Twisted's own start and stop points
        (connected, request complete, response done) move it."""

    def dataReceived(self, data: bytes) -> None:
        self._waiting_bytes += len(data)
        super().dataReceived(data)

    def allContentReceived(self) -> None:
        self._waiting_bytes = 0
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        self._waiting_bytes = 0
        super().requestDone(request)

    def timeoutConnection(self) -> None:
        """Drop the client: what is queued for it is still sent (the last response of
        a keep-alive connection), but after ``abortTimeout`` it is cut regardless."""
        peer = self.transport.getPeer() if self.transport is not None else None
        host = f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"
        timeout = float(self.timeOut or 0)
        if self._waiting_bytes:
            self.log.info("web: dropped {peer}: no complete HTTP request within {timeout:g} s "
                          "({received} bytes of it received)",
                          peer=host, timeout=timeout, received=self._waiting_bytes)
        else:
            self.log.debug("web: closed idle connection from {peer} after {timeout:g} s",
                           peer=host, timeout=timeout)
        if self.transport is None:
            return
        if self.abortTimeout is not None:
            self._force_abort = self.callLater(self.abortTimeout, self._abort)
        self.loseConnection()

    def _abort(self) -> None:
        self._force_abort = None
        transport: Any = self.transport  # TCP or TLS: both can abort
        if transport is not None:
            transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        force, self._force_abort = self._force_abort, None
        if force is not None and force.active():
            force.cancel()
        super().connectionLost(reason)


class DeadlineSite(Site):
    """A :class:`Site` of :class:`RequestDeadlineChannel`: each request must be
    complete within ``request_timeout`` seconds, timed on ``reactor``.  With TLS the
    handshake counts too (the channel is connected before it).  The channel replaces
    Twisted's HTTP/1.1-or-HTTP/2 wrapper: UCS offers no ALPN, so HTTP/2 never
    comes up."""

    protocol = RequestDeadlineChannel  # type: ignore[assignment]

    def __init__(self, resource: IResource, *, request_timeout: float, reactor: Any) -> None:
        super().__init__(resource, timeout=request_timeout, reactor=reactor)
