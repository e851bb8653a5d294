"""Test doubles for code that talks AMI: replay a real Asterisk capture over TCP.

A capture (``NAME.ami``) is the exact bytes Asterisk sent during a scenario;
``NAME.actions`` the actions the client sent, with ActionIDs ``lab-1``,
``lab-2``, ...  :class:`ReplayFactory` serves it as a fake Asterisk: it sends
the banner, then for each action the client sends it sends the capture up to
and including the answer to that ActionID (for an event list, up to its
``...Complete`` event), so events interleave with answers exactly as they did
on the wire.  Once the last answer went out, the rest of the capture follows
and the connection closes (Asterisk closed it after ``Goodbye`` or
``Shutdown``).

A client replaying a capture must number its actions the same way: pass
``actionIDs=lambda: counterIDs("lab-")`` to :class:`~ucs.ami.client.AMIClient`
(or ``counterIDs("lab-")`` to :class:`~ucs.ami.protocol.AMIProtocol`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from ucs.ami.message import FrameError, Message, parse_frame

_DELIM = b"\r\n\r\n"
_END_COMMAND = b"--END COMMAND--"


def capturesDir() -> Path:
    """Where the real Asterisk captures live: ``$UCS_AMI_CAPTURES``, else ``tests/data/ami-captures`` in the checkout (copied from the shared recordings)."""
    env = os.environ.get("UCS_AMI_CAPTURES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "tests" / "data" / "ami-captures"


def splitCapture(data: bytes) -> tuple[bytes, list[bytes]]:
    """The banner line (with its CRLF) and the raw frames, each with its blank line.

    Joining them gives back ``data`` exactly (a trailing partial frame, if
    any, is the last element).
    """
    banner = b""
    if data.startswith(b"Asterisk Call Manager"):
        end = data.find(b"\r\n")
        banner, data = data[: end + 2], data[end + 2 :]
    frames: list[bytes] = []
    start = 0
    while start < len(data):
        end = data.find(_DELIM, start)
        if data.startswith(b"Response: Follows", start) and (end < 0 or data.find(_END_COMMAND, start, end) < 0):
            tail = data.find(_END_COMMAND, start)
            end = data.find(_DELIM, tail) if tail >= 0 else -1
        if end < 0:
            frames.append(data[start:])
            break
        frames.append(data[start : end + 4])
        start = end + 4
    return banner, frames


def parseActions(data: bytes) -> list[Message]:
    """Actions as a client sends them (``Action: ...`` frames) to dicts, in order."""
    out: list[Message] = []
    for block in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        msg: Message = {}
        for line in block.decode("utf-8").split("\n"):
            if line:
                key, _, value = line.partition(": ")
                msg[key] = msg[key] + "\n" + value if key in msg else value
        if msg:
            out.append(msg)
    return out


@dataclass
class Capture:
    """One recorded AMI session, indexed by the answers in it."""

    banner: bytes
    frames: list[bytes]
    messages: list[Message | None]
    #: What the client sent, if known; lets the server refuse an action that
    #: reuses a recorded ActionID for something else (a keepalive Ping).
    actions: list[Message] | None = None
    #: ActionID -> index just past the frame that completes its answer.
    answerEnds: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fromBytes(cls, data: bytes, actions: list[Message] | None = None) -> Capture:
        banner, frames = splitCapture(data)
        messages: list[Message | None] = []
        for raw in frames:
            try:
                messages.append(parse_frame(raw[:-4] if raw.endswith(_DELIM) else raw))
            except FrameError:
                messages.append(None)
        ends: dict[str, int] = {}
        lists: set[str] = set()
        for i, msg in enumerate(messages):
            if msg is None:
                continue
            aid = msg.get("ActionID")
            if aid is None:
                continue
            if "Event" not in msg:
                if aid in ends or aid in lists:
                    continue
                if msg.get("EventList", "").lower() == "start":
                    lists.add(aid)
                else:
                    ends[aid] = i + 1
            elif aid in lists and msg.get("EventList", "").lower() == "complete":
                lists.discard(aid)
                ends[aid] = i + 1
        return cls(banner, frames, messages, actions, ends)

    @classmethod
    def fromFile(cls, path: str | Path) -> Capture:
        """``NAME.ami``, with ``NAME.actions`` next to it when there is one."""
        path = Path(path)
        actionsPath = path.with_suffix(".actions")
        actions = parseActions(actionsPath.read_bytes()) if actionsPath.exists() else None
        return cls.fromBytes(path.read_bytes(), actions)

    def expectedAction(self, actionID: str) -> Message | None:
        for action in self.actions or ():
            if action.get("ActionID") == actionID:
                return action
        return None


class ReplayProtocol(Protocol):
    """Plays one :class:`Capture` to one client, in step with its actions.

    :param answerPing: answer a ``Ping`` that is not in the capture with
        ``Pong`` (a live Asterisk); ``False`` plays a hung Asterisk.
    :param closeAtEnd: close the connection after the capture ran out.
    """

    def __init__(self, capture: Capture, *, answerPing: bool = True, closeAtEnd: bool = True) -> None:
        self.capture = capture
        self.answerPing = answerPing
        self.closeAtEnd = closeAtEnd
        #: Every action received, in order, as sent (ActionID included).
        self.received: list[Message] = []
        self._buf = b""
        self._pos = 0
        self._last = max(capture.answerEnds.values(), default=0)
        self._lost: Failure | None = None
        self._lostWaiters: list[Deferred[None]] = []
        self._actionWaiters: list[tuple[int, Deferred[Message]]] = []

    def connectionMade(self) -> None:
        self.transport.write(self.capture.banner)  # type: ignore[union-attr]
        if not self.capture.answerEnds:
            self._finish()

    def dataReceived(self, data: bytes) -> None:
        self._buf += data
        while (end := self._buf.find(_DELIM)) >= 0:
            raw, self._buf = self._buf[:end], self._buf[end + 4 :]
            actions = parseActions(raw)
            if actions:
                self._actionReceived(actions[0])

    def _actionReceived(self, action: Message) -> None:
        self.received.append(action)
        waiters = [(n, d) for n, d in self._actionWaiters if n <= len(self.received)]
        self._actionWaiters = [(n, d) for n, d in self._actionWaiters if n > len(self.received)]
        for _, d in waiters:
            d.callback(action)
        if self._lost is not None or self.transport is None:
            return
        aid = action.get("ActionID", "")
        name = action.get("Action", "")
        expected = self.capture.expectedAction(aid)
        end = self.capture.answerEnds.get(aid)
        if end is None or (
            self.capture.actions is not None
            and (expected is None or expected.get("Action", "").lower() != name.lower())
        ):
            self._unknown(name, aid)
            return
        if end > self._pos:
            self.transport.write(b"".join(self.capture.frames[self._pos : end]))
            self._pos = end
        if self._pos >= self._last:
            self._finish()

    def _unknown(self, name: str, aid: str) -> None:
        if name.lower() == "ping":
            if self.answerPing:
                self.transport.write(  # type: ignore[union-attr]
                    f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\nTimestamp: 0.000000\r\n\r\n".encode()
                )
            return
        self.transport.write(  # type: ignore[union-attr]
            f"Response: Error\r\nActionID: {aid}\r\nMessage: {name} is not in this capture\r\n\r\n".encode()
        )

    def _finish(self) -> None:
        rest = self.capture.frames[self._pos :]
        self._pos = len(self.capture.frames)
        if rest:
            self.transport.write(b"".join(rest))  # type: ignore[union-attr]
        if self.closeAtEnd:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = reason
        waiters, self._lostWaiters = self._lostWaiters, []
        for d in waiters:
            d.callback(None)

    @property
    def lostReason(self) -> Failure | None:
        return self._lost

    def whenLost(self) -> Deferred[None]:
        """Fires (with ``None``; see :attr:`lostReason`) once the connection is gone."""
        d: Deferred[None] = Deferred()
        if self._lost is not None:
            d.callback(None)
        else:
            self._lostWaiters.append(d)
        return d

    def whenAction(self, n: int) -> Deferred[Message]:
        """Fires with the ``n``-th action received (1-based) once it arrived."""
        d: Deferred[Message] = Deferred()
        if len(self.received) >= n:
            d.callback(self.received[n - 1])
        else:
            self._actionWaiters.append((n, d))
        return d


class ReplayFactory(Factory):
    """A fake Asterisk: the n-th connection replays ``captures[n]`` (the last one repeats).

    Several captures model a restart: ``asterisk_restart`` then
    ``asterisk_restart.after`` on the same listening port.
    """

    def __init__(self, captures: Sequence[Capture], **options: bool) -> None:
        if not captures:
            raise ValueError("ReplayFactory needs at least one capture")
        self.captures = list(captures)
        self.options = options
        self.connections: list[ReplayProtocol] = []
        self._waiters: list[tuple[int, Deferred[ReplayProtocol]]] = []

    def buildProtocol(self, addr: IAddress | None) -> ReplayProtocol:
        capture = self.captures[min(len(self.connections), len(self.captures) - 1)]
        proto = ReplayProtocol(capture, **self.options)
        proto.factory = self
        self.connections.append(proto)
        ready = [(n, d) for n, d in self._waiters if n <= len(self.connections)]
        self._waiters = [(n, d) for n, d in self._waiters if n > len(self.connections)]
        for n, d in ready:
            d.callback(self.connections[n - 1])
        return proto

    def whenConnection(self, n: int) -> Deferred[ReplayProtocol]:
        """Fires with the ``n``-th connection's server protocol (1-based)."""
        d: Deferred[ReplayProtocol] = Deferred()
        if len(self.connections) >= n:
            d.callback(self.connections[n - 1])
        else:
            self._waiters.append((n, d))
        return d
