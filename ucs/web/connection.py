"""One agent-bar connection, without the socket: requests in, replies and events out.

The autobahn protocol (:mod:`ucs.web.protocol`) only frames and parses; it
hands every message to a :class:`Connection`, which talks to the shared
:class:`ucs.web.hub.Hub`.  A connection is also the push producer of its
socket: while the client reads too slowly (the transport paused us), messages
wait here, coalesced where a newer one replaces an older (waiting-caller
counts), and once more than ``max_client_buffer`` bytes wait the client is
dropped instead of UCS growing memory.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ucs.api.session import Session
from ucs.error import TooManyRequests, UCSError
import ucs.web.messages as messages
from ucs.web.messages import BadFrame, Outgoing, ReplyTooLarge, TooLarge

if TYPE_CHECKING:
    from ucs.web.hub import Hub


class Transport(Protocol):
    """What a connection needs of its socket."""

    def send(self, out: Outgoing) -> None: ...
    def close(self, code: int, reason: str) -> None: ...
    def abort(self) -> None: ...


class InternalError(UCSError):
    code = 500
    kind = "internal_error"


@implementer(IPushProducer)
class Connection:
    """See the module docstring; also its socket's push producer."""

    log = Logger()

    def __init__(self, hub: Hub, transport: Transport, address: str | None) -> None:
        self.hub = hub
        self.transport = transport
        self.address = address
        self.session: Session | None = None
        self.open = False
        #: The waiting-callers count this client was told last.
        self.last_waiting: int | None = None
        self._paused = False
        self._queue: deque[tuple[Outgoing, str | None]] = deque()
        self._queued_bytes = 0
        self._pending = 0
        self.dropped = False

    # -- from the protocol ------------------------------------------------------------

    def opened(self) -> None:
        self.open = True
        self.hub.connection_opened(self)

    def received(self, payload: bytes, is_binary: bool) -> None:
        try:
            req = messages.parse(payload, is_binary, self.hub.options.max_request_size)
        except BadFrame as e:
            self.send(Outgoing(messages.error(e.id, e)))
            return
        except TooLarge as e:
            self.send(Outgoing(messages.error(None, e)))
            return
        if self._pending >= self.hub.options.max_pending:
            err = TooManyRequests(f"{self._pending} requests are in progress on this connection; "
                                  f"wait for their replies (at most {self.hub.options.max_pending})")
            self.send(Outgoing(messages.error(req.id, err)))
            return
        self._pending += 1
        d = self.hub.dispatch(self, req)
        d.addBoth(self._answer, req)

    def _answer(self, outcome: Any, req: messages.Request) -> None:
        self._pending -= 1
        if not self.open:
            return
        if isinstance(outcome, Failure):
            err = outcome.value
            if not isinstance(err, UCSError):
                self.log.failure("API method {method} failed", outcome, method=req.method)
                err = InternalError(f"{req.method} failed inside UCS; the UCS log has the details")
            self.send(Outgoing(messages.error(req.id, err)))
            return
        try:
            data = messages.result(req.id, outcome)
        except (TypeError, ValueError):
            self.log.failure("result of {method} is not JSON", method=req.method)
            data = messages.error(req.id, InternalError(f"{req.method} returned a result that is not JSON"))
        limit = self.hub.options.max_frame_size
        if len(data) > limit:
            # Never a reply that vanishes: autobahn refuses to send a message over the limit.
            self.log.error("the reply to {method} ({n} bytes) is larger than a message may be ({limit}); "
                           "an error reply is sent instead", method=req.method, n=len(data), limit=limit)
            data = messages.error(req.id, ReplyTooLarge(
                f"the reply to {req.method} would be {len(data)} bytes; a message to the agent bar may have "
                f"at most {limit} bytes ([web] max_frame_size)"))
        self.send(Outgoing(data))

    def closed(self, code: int | None) -> None:
        if not self.open:
            return
        self.open = False
        self._queue.clear()
        self._queued_bytes = 0
        self.hub.connection_closed(self, code)

    # -- push producer (the transport pauses us while the client does not read) --

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._queue and not self._paused and self.open:
            out, _ = self._queue.popleft()
            self._queued_bytes -= len(out.data)
            self.transport.send(out)

    def stopProducing(self) -> None:
        self._paused = True

    # -- out ------------------------------------------------------------------------

    def send(self, out: Outgoing, key: str | None = None) -> None:
        """Send now, or queue while the client is slow; ``key`` marks a message that a
        newer one with the same key replaces in the queue."""
        if not self.open:
            return
        if not self._paused and not self._queue:
            self.transport.send(out)
            return
        if key is not None:
            for i, (queued, k) in enumerate(self._queue):
                if k == key:
                    del self._queue[i]
                    self._queued_bytes -= len(queued.data)
                    break
        self._queue.append((out, key))
        self._queued_bytes += len(out.data)
        if self._queued_bytes > self.hub.options.max_client_buffer:
            self.log.warn("agent bar client {address} ({user}) reads too slowly: {n} bytes wait for it; dropped",
                          address=self.address, n=self._queued_bytes,
                          user=self.session.user.username if self.session and self.session.user else "-")
            self.dropped = True
            self._queue.clear()
            self._queued_bytes = 0
            self.transport.abort()

    def push(self, name: str, data: Any, args: dict[str, Any] | None = None, key: str | None = None) -> None:
        """One event to this client only (the hub's fan-out encodes once for many:
        :meth:`ucs.web.hub.Hub.event_bytes`, which this uses too)."""
        payload = self.hub.event_bytes(name, data, args)
        if payload is not None:
            self.send(Outgoing(payload), key)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

