"""The simulator's AMI server: real AMI over TCP, as Asterisk 20 answers it.

The protocol only frames bytes into actions and writes responses and events;
what each action does lives in :mod:`ucs.sim.actions`, the PBX in
:class:`ucs.sim.pbx.Sim`.

Each client gets the events its ``Events:`` filter lets through.  A client
that reads slowly does not make the server grow: past ``max_backlog`` bytes
waiting, further events are dropped (as Asterisk drops what it cannot write
within its ``writetimeout``), and a client stalled for ``stall_timeout``
seconds is disconnected.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, interfaces
from twisted.internet.protocol import Protocol, ServerFactory
from zope.interface import implementer

from ucs.sim.actions import Actions
from ucs.sim.pbx import Sim
from ucs.sim.respond import ActionMessage
from ucs.sim.wire import Event, class_mask, frame

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
MAX_ACTION = 64 * 1024


def parse_action(raw: bytes) -> ActionMessage:
    """One action frame -> {lower-case header: [values]} (``Variable`` repeats)."""
    text = raw.decode("utf-8", "replace")
    headers: dict[str, list[str]] = {}
    for line in text.replace("\r", "").split("\n"):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        headers.setdefault(key.strip().lower(), []).append(value.strip())
    return ActionMessage(headers)


@implementer(interfaces.IPushProducer)
class AMISession(Protocol):
    """One AMI client connection."""

    transport: Any  # a TCP transport: producer registration, abortConnection

    def __init__(self, server: AMIServer) -> None:
        self.server = server
        self.sim = server.sim
        self.authenticated = False
        self.username: str | None = None
        self.challenge: str | None = None
        self.events_mask = 0
        #: ``Filter`` action expressions: (exclude?, regex), as manager.conf eventfilter.
        self.filters: list[tuple[bool, Any]] = []
        self.sub: Any = None
        self.session_id = ""
        self._buf = b""
        self._queue: deque[ActionMessage] = deque()
        self._busy = False
        self._paused = False
        self._backlog: deque[bytes] = deque()
        self._backlog_bytes = 0
        self._stall_timer: Any = None
        self.dropped = 0
        self.closing = False

    # ---------------------------------------------------------------- link

    def connectionMade(self) -> None:
        self.session_id = f"0x{id(self):x}"
        self.connected_at = self.sim.now()
        self.transport.registerProducer(self, True)
        self.transport.write(BANNER)
        self.server.sessions.add(self)

    def connectionLost(self, reason: object = None) -> None:
        self.server.sessions.discard(self)
        if self.sub is not None:
            self.sub.cancel()
            self.sub = None
        if self._stall_timer is not None and self._stall_timer.active():
            self._stall_timer.cancel()
        self._backlog.clear()
        self._backlog_bytes = 0

    def close(self) -> None:
        """Close the link (Asterisk shutting down) once what is queued is written."""
        self.server.sessions.discard(self)
        if self.sub is not None:
            self.sub.cancel()
            self.sub = None
        if self.closing and self.transport is None:
            return
        self.closing = True
        self._paused = False
        self._flush()
        if self.transport is not None:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    # ------------------------------------------------------------- reading

    def dataReceived(self, data: bytes) -> None:
        # Asterisk ends lines with CRLF; clients that send bare LF are accepted too.
        buf = (self._buf + data).replace(b"\r\n", b"\n")
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            raw, buf = buf[:end], buf[end + 2 :]
            if raw.strip():
                self._queue.append(parse_action(raw))
        if len(buf) > MAX_ACTION:
            log.warning("sim AMI: dropped an unterminated action of %d bytes from %s", len(buf), self.session_id)
            buf = b""
        self._buf = buf
        self._run_queue()

    def _run_queue(self) -> None:
        while self._queue and not self._busy and not self.closing:
            msg = self._queue.popleft()
            sim = self.sim
            sim.hold_events()
            try:
                reply = self.server.actions.dispatch(self, msg)
            except Exception:  # a bug must not take the simulated PBX down
                log.exception("sim AMI: action %r failed", msg.get("action"))
                reply = frame(("Response", "Error"), *msg.aid(), ("Message", "Internal error in the simulator"))
            if isinstance(reply, defer.Deferred):
                sim.release_events()
                self._busy = True
                reply.addCallback(self._deferred_reply)
                return
            self.write(reply)
            sim.release_events()
            if self.closing:
                self.transport.loseConnection()

    def _deferred_reply(self, reply: bytes) -> None:
        self._busy = False
        if self.transport is None or not self.transport.connected:
            return
        self.write(reply)
        self._run_queue()

    # ------------------------------------------------------------- writing

    def login_ok(self, username: str, events: str | None) -> None:
        self.authenticated = True
        self.username = username
        self.events_mask = class_mask(events)
        self.sub = self.sim.subscribe(self.event, self.events_mask)

    def set_events(self, mask: int) -> None:
        self.events_mask = mask
        if self.sub is not None:
            self.sub.mask = mask

    def event(self, ev: Event) -> None:
        if self.filters and not self._passes(ev.data):
            return
        self.write(ev.data, droppable=True)

    def _passes(self, data: bytes) -> bool:
        """Asterisk's filter rule: with any include filter the event must match
        one; an event matching any ``!`` (exclude) filter is not sent."""
        text = data.decode("utf-8", "replace")
        includes = [rx for exclude, rx in self.filters if not exclude]
        if includes and not any(rx.search(text) for rx in includes):
            return False
        return not any(rx.search(text) for exclude, rx in self.filters if exclude)

    def write(self, data: bytes, droppable: bool = False) -> None:
        if self.transport is None:
            return
        if not self._paused and not self._backlog:
            self.transport.write(data)
            return
        limit = self.server.max_backlog
        if self._backlog_bytes + len(data) > limit:
            if droppable:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 10000 == 0:
                    log.warning("sim AMI: client %s reads too slowly: %d events dropped", self.session_id, self.dropped)
                return
            if self._backlog_bytes + len(data) > 2 * limit:
                # Responses are never dropped, but a client that keeps sending
                # actions without reading their answers is let go.
                log.warning("sim AMI: client %s sends actions but reads no answers; disconnected", self.session_id)
                self.transport.abortConnection()
                return
        self._backlog.append(data)
        self._backlog_bytes += len(data)

    @property
    def backlog_bytes(self) -> int:
        return self._backlog_bytes

    def _flush(self) -> None:
        while self._backlog and not self._paused:
            data = self._backlog.popleft()
            self._backlog_bytes -= len(data)
            self.transport.write(data)

    def pauseProducing(self) -> None:
        self._paused = True
        if self._stall_timer is None or not self._stall_timer.active():
            self._stall_timer = self.server.clock.callLater(self.server.stall_timeout, self._stalled)

    def resumeProducing(self) -> None:
        self._paused = False
        if self._stall_timer is not None and self._stall_timer.active():
            self._stall_timer.cancel()
        self._stall_timer = None
        self._flush()

    def stopProducing(self) -> None:
        self._backlog.clear()
        self._backlog_bytes = 0

    def _stalled(self) -> None:
        self._stall_timer = None
        if self._paused and self.transport is not None:
            log.warning("sim AMI: client %s stalled for %ss; disconnected", self.session_id, self.server.stall_timeout)
            self.transport.abortConnection()


class AMIServer(ServerFactory):
    """The listening side: ``reactor.listenTCP(5038, AMIServer(sim))``."""

    protocol = AMISession  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        sim: Sim,
        *,
        max_backlog: int = 16 * 1024 * 1024,
        stall_timeout: float = 30.0,
        clock: Any = None,
    ) -> None:
        self.sim = sim
        self.clock = clock if clock is not None else sim.clock
        self.max_backlog = max_backlog
        self.stall_timeout = stall_timeout
        self.sessions: set[AMISession] = set()
        self.actions = Actions(sim)
        self.accepting = True
        self.on_client: Callable[[AMISession], None] | None = None
        sim.on_state(self._pbx_state)

    def buildProtocol(self, addr: object) -> AMISession | None:  # type: ignore[override]
        if not self.accepting:
            return None
        p = AMISession(self)
        p.factory = self
        if self.on_client is not None:
            self.on_client(p)
        return p

    def _pbx_state(self, state: str) -> None:
        if state == "shutdown":
            self.accepting = False
            for s in list(self.sessions):
                s.close()
        elif state == "booted":
            self.accepting = True
