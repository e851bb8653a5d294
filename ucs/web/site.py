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

Request bodies are bounded before a byte of them is read.  Twisted reads a body
whole before the resource sees the request (into memory, or a temporary file above
100 kB), and autobahn's WebSocket resource reads any body it is handed and never
answers a method other than GET: unauthenticated memory, disk and descriptor
exhaustion.  Once the headers are in, :meth:`RequestDeadlineChannel.allHeadersReceived`
finds the resource the request is for, the same way Twisted will, and answers at
once, closing the connection:

- 405 to anything but GET on a WebSocket endpoint (an upgrade is a GET);
- 413 to a declared ``Content-Length`` over the limit (``max_body_size`` of the
  resource if it has one, else the site's ``max_body``), and to a chunked body as
  soon as it passes it.

A body within the limit is read into memory, never a temporary file.  Responses
carry no ``Server`` header (Twisted's names its version).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, unquote
from twisted.web.resource import IResource, getChildForRequest
from twisted.web.server import Request, Site

#: The body limit where a resource says nothing: UCS serves no resource that takes a body.
MAX_BODY = 4096


class RequestDeadlineChannel(HTTPChannel):
    """An HTTP channel whose timeout is a deadline for the next request; see the module docstring."""

    log = Logger()

    #: Bytes received since the channel began to wait for a request: none means an
    #: idle keep-alive (or browser-preconnected) socket, which is ordinary and logged
    #: at debug; some means a request that did not finish in time, logged at info.
    _waiting_bytes = 0
    _force_abort: Any = None
    #: Set once a request is refused (:meth:`refuse`): the rest of what the client
    #: sends is dropped unread until the connection closes.
    _refused = False
    site: DeadlineSite

    def resetTimeout(self) -> None:
        """Data does not restart the deadline: only Twisted's own start and stop points
        (connected, request complete, response done) move it."""

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        self._waiting_bytes += len(data)
        super().dataReceived(data)

    def rawDataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().rawDataReceived(data)

    def allHeadersReceived(self) -> None:
        """Refuse the request before its body is read when the resource it is for
        takes no such method or no such body (see the module docstring)."""
        request = self.requests[-1]
        method: bytes = self._command  # type: ignore[attr-defined]
        target = self.site.resource_at(self._path, request)  # type: ignore[attr-defined]
        if isinstance(target, WebSocketResource) and method != b"GET":
            self.refuse(405, b"Method Not Allowed",
                        f"{method.decode('latin-1')} is not accepted here: this is a WebSocket "
                        "endpoint, open it with a GET upgrade request", allow=b"GET")
            return
        limit = getattr(target, "max_body_size", None)
        limit = self.site.max_body if not isinstance(limit, int) else limit
        if self.length is not None and self.length > limit:
            self.refuse(413, b"Content Too Large",
                        f"a request body of {self.length} bytes is not accepted here; "
                        f"at most {limit} bytes")
            return
        if isinstance(request, LimitedRequest):
            request.body_limit = limit
        super().allHeadersReceived()

    def refuse(self, code: int, phrase: bytes, message: str, *, allow: bytes | None = None) -> None:
        """Answer ``code`` with ``message`` and close, reading nothing more; used
        before the request is processed, so no resource sees it."""
        if self._refused:
            return
        self._refused = True
        peer = self.transport.getPeer() if self.transport is not None else None
        self.log.info("web: refused a request from {peer}: {code} {message}",
                      peer=f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}", code=code,
                      message=message)
        body = (message + "\n").encode("utf-8")
        head = [b"HTTP/1.1 %d %s" % (code, phrase), b"Content-Type: text/plain; charset=utf-8",
                b"Content-Length: %d" % len(body), b"Connection: close"]
        if allow is not None:
            head.append(b"Allow: " + allow)
        if self.transport is not None:
            self.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.loseConnection()

    def allContentReceived(self) -> None:
        if self._refused:  # a refused request with no body: it is not processed either
            return
        self._waiting_bytes = 0
        super().allContentReceived()

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        """Twisted's ``Server`` header names its version: no response carries it."""
        headers.removeHeader(b"server")
        super().writeHeaders(version, code, reason, headers)

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


class LimitedRequest(Request):
    """A request whose body is kept in memory and refused (413) as soon as it
    passes ``body_limit``: a chunked body declares no length beforehand."""

    body_limit = MAX_BODY
    _received = 0

    def gotLength(self, length: int | None) -> None:
        # The channel refused a declared length over the limit: what is left fits in memory.
        self.content = BytesIO()  # type: ignore[assignment]

    def handleContentChunk(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > self.body_limit:
            channel: Any = self.channel
            if channel is not None and hasattr(channel, "refuse"):
                channel.refuse(413, b"Content Too Large",
                               f"a request body over {self.body_limit} bytes is not accepted here")
            return
        super().handleContentChunk(data)


class DeadlineSite(Site):
    """A :class:`Site` of :class:`RequestDeadlineChannel`: each request must be
    complete within ``request_timeout`` seconds, timed on ``reactor``, and its body
    at most ``max_body`` bytes unless its resource says otherwise (an integer
    ``max_body_size`` attribute).  With TLS the handshake counts too (the channel
    is connected before it).  The channel replaces Twisted's HTTP/1.1-or-HTTP/2
    wrapper: UCS offers no ALPN, so HTTP/2 never comes up."""

    protocol = RequestDeadlineChannel  # type: ignore[assignment]
    requestFactory = LimitedRequest

    def __init__(self, resource: IResource, *, request_timeout: float, reactor: Any,
                 max_body: int = MAX_BODY) -> None:
        super().__init__(resource, requestFactory=LimitedRequest, timeout=request_timeout, reactor=reactor)
        self.max_body = max_body

    def resource_at(self, target: bytes, request: Any) -> IResource | None:
        """The resource a request for ``target`` (``/path?query``) will be given to,
        found as :meth:`Request.process` will find it (each segment unquoted); ``None``
        when looking it up fails (the request then fails the same way later)."""
        request.prepath = []
        request.postpath = [unquote(p) for p in target.split(b"?", 1)[0][1:].split(b"/")]
        try:
            return getChildForRequest(self.resource, request)  # type: ignore[no-any-return]
        except Exception:
            return None
