"""A fake Asterisk for the whole server: a real AMI server over TCP that plays one
real capture (``tests/data/ami-captures/NAME.ami``) to UCS, in step with what
UCS does.

:class:`ucs.ami.testing.ReplayFactory` replays a capture to a client that sends
the recording client's own actions (same ActionIDs, same order).  UCS sends its
own: a resync after login, ``QueueAdd``/``QueuePause`` as agents log in and
change state, ``Originate``/``Hangup``/``Redirect``... when the agent bar asks.
So this stage:

* answers the login (plain or MD5) and sends the capture's ``FullyBooted``;
* answers UCS's resync lists (``CoreShowChannels``, ``DeviceStateList``,
  ``SIPpeers``, ``PJSIPShowEndpoints``) empty, as right after a boot with no
  call, and ``QueueStatus`` with the two lab queues and the members it holds;
* keeps the queue members UCS made, as app_queue does: ``QueueAdd``,
  ``QueueRemove`` and ``QueuePause`` get Asterisk 20's answers (``Already
  there``, ``Not there``, ``Interface not found``) and the
  ``QueueMemberAdded``/``Removed``/``Pause`` events, built from a recorded
  ``QueueMemberAdded`` frame;
* once :meth:`Stage.start` is called (the test logged its agents in), streams
  the capture's events in their order.  The recording client's own answers
  are left out, and so are the member events its ``QueueAdd``/``QueueRemove``/
  ``QueuePause`` caused (UCS's own take their place).  ``QueueMemberStatus``
  says the member's pause as this stage holds it: Asterisk reports the pause
  UCS made, not the one the recording client had.
* where the recording client sent an action that changed the call (``Hangup``,
  ``Originate``, ``Redirect``, ``Bridge``, ``Atxfer``, ``BlindTransfer``,
  ``MuteAudio``, ``Setvar``, ``MixMonitor``, ``StopMixMonitor``, a ``QueuePause``), the stream stops at that
  point (a *gate*, :meth:`Stage.whenGate`) until UCS sends the same action
  (the same channel, number, state); it is answered with the recorded
  response and the stream goes on.  The test makes UCS send it the way a user
  would: from the agent bar.  Events that carry the recorded ActionID
  (``OriginateResponse``) carry UCS's.

Every event UCS receives about calls is the capture's bytes; only the member
events and the list answers are made here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.python.failure import Failure

from ucs.ami.message import Message
from ucs.ami.testing import Capture, parseActions

#: Recorded actions the stream waits for UCS to send again.
GATED = ("originate", "hangup", "redirect", "bridge", "blindtransfer", "setvar", "atxfer", "muteaudio", "queuepause",
         "mixmonitor", "stopmixmonitor")
#: Headers of a recorded action that UCS's must repeat (where the recording has them).
_MATCH = ("Channel", "Channel1", "Channel2", "ExtraChannel", "Interface", "Queue", "State", "Variable", "Value",
          "Options", "MixMonitorID")
_MEMBER_EVENTS = ("QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPause")
#: The lab's queues (``../asterisk/queues.conf``).
LAB_QUEUES = {"support": "rrmemory", "sales": "ringall"}
_LISTS = {
    "coreshowchannels": "CoreShowChannelsComplete",
    "devicestatelist": "DeviceStateListComplete",
    "sippeers": "PeerlistComplete",
    "pjsipshowendpoints": "EndpointListComplete",
}


def _frame(headers: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Member:
    queue: str
    interface: str
    name: str
    paused: bool = False
    reason: str = ""


@dataclass
class Gate:
    """A point of the capture where the recording client acted."""

    index: int  # frame index of the recorded response
    action: Message
    #: UCS's action that opened the gate (its ActionID replaces the recorded one).
    taken: Message | None = None


class Stage:
    """One capture, cut into the stretches between the recording client's actions."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.capture = Capture.fromFile(self.path)
        self.actions = self.capture.actions or []
        msgs = self.capture.messages
        self.recorded_ids = {a.get("ActionID", "") for a in self.actions}
        self.gates: list[Gate] = []
        self.answer_index: dict[str, int] = {}
        for i, m in enumerate(msgs):
            if m is not None and "Event" not in m and m.get("ActionID") in self.recorded_ids:
                self.answer_index.setdefault(m["ActionID"], i)
        for action in self.actions:
            aid = action.get("ActionID", "")
            if action.get("Action", "").lower() in GATED and aid in self.answer_index:
                self.gates.append(Gate(self.answer_index[aid], action))
        self.gates.sort(key=lambda g: g.index)
        self.member_template = self._template()
        #: The capture's first ``FullyBooted`` (sent right after the login answer).
        self.booted_index = next((i for i, m in enumerate(msgs)
                                  if m is not None and m.get("Event") == "FullyBooted"), None)
        self.booted = self.capture.frames[self.booted_index] if self.booted_index is not None else None

    def _template(self) -> list[tuple[str, str]]:
        """A recorded ``QueueMemberAdded`` (from this capture, else another of the matrix)."""
        for path in [self.path, *sorted(self.path.parent.glob("sip_*.ami"))]:
            cap = self.capture if path == self.path else Capture.fromFile(path)
            for raw, m in zip(cap.frames, cap.messages):
                if m is not None and m.get("Event") == "QueueMemberAdded":
                    text = raw.decode().strip("\r\n")
                    return [tuple(line.split(": ", 1)) if ": " in line else (line.rstrip(":"), "")  # type: ignore[misc]
                            for line in text.split("\r\n")]
        raise ValueError("no recorded QueueMemberAdded to build member events from")

    def phones(self) -> list[str]:
        """The lab phones (lines) this capture's calls and members touch, in order of appearance."""
        found: list[str] = []
        for m in self.capture.messages:
            for key in ("Channel", "DestChannel", "Interface"):
                value = (m or {}).get(key, "")
                hit = re.match(r"^((?:PJ)?SIP/[12]00[1-3])(?:-|$)", value)
                if hit and hit.group(1) not in found:
                    found.append(hit.group(1))
        for a in self.actions:
            iface = a.get("Interface", "")
            if re.match(r"^(?:PJ)?SIP/[12]00[1-3]$", iface) and iface not in found:
                found.append(iface)
        return found

    def memberships(self) -> dict[str, list[tuple[str, bool, str]]]:
        """Per phone, the queues the recording client put it in: (queue, paused, reason)."""
        out: dict[str, list[tuple[str, bool, str]]] = {}
        for a in self.actions:
            if a.get("Action", "").lower() == "queueadd":
                out.setdefault(a["Interface"], []).append((a["Queue"], _flag(a.get("Paused")), a.get("Reason", "")))
        return out


class StageProtocol(Protocol):
    """The fake Asterisk of one connection."""

    def __init__(self, stage: Stage, factory: StageFactory) -> None:
        self.stage = stage
        self.factory = factory
        self._buf = b""
        self._challenge = "483104417"
        self._logged_in = False
        #: Every action UCS sent, in order.
        self.received: list[Message] = []

    # -- wire

    def connectionMade(self) -> None:
        self.transport.write(self.stage.capture.banner or b"Asterisk Call Manager/9.0.0\r\n")  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self._buf += data
        while (end := self._buf.find(b"\r\n\r\n")) >= 0:
            raw, self._buf = self._buf[:end], self._buf[end + 4:]
            for action in parseActions(raw):
                self.received.append(action)
                self._action(action)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.factory.current is self:
            self.factory.current = None

    def write(self, data: bytes) -> None:
        if self.transport is not None and data:
            self.transport.write(data)

    def respond(self, action: Message, ok: bool, message: str, *extra: tuple[str, str]) -> None:
        self.write(_frame([("Response", "Success" if ok else "Error"), ("ActionID", action.get("ActionID", "")),
                           ("Message", message), *extra]))

    # -- actions

    def _action(self, action: Message) -> None:
        name = action.get("Action", "").lower()
        f = self.factory
        if name == "challenge":
            self.respond(action, True, "", ("Challenge", self._challenge))
        elif name == "login":
            key = hashlib.md5((self._challenge + f.secret).encode()).hexdigest()
            good = action.get("Username") == f.username and (
                action.get("Secret") == f.secret or action.get("Key") == key)
            self.respond(action, good, "Authentication accepted" if good else "Authentication failed")
            if good:
                self._logged_in = True
                f.current = self
                if self.stage.booted:
                    self.write(self.stage.booted)
                f._logged(self)
            else:
                self.transport.loseConnection()  # type: ignore[union-attr]
        elif not self._logged_in:
            self.respond(action, False, "Permission denied")
        elif name == "ping":
            self.respond(action, True, "", ("Ping", "Pong"), ("Timestamp", "0.000000"))
        elif name in _LISTS:
            self._list(action, [], _LISTS[name])
        elif name == "queuestatus":
            self._queue_status(action)
        elif name in ("queueadd", "queueremove", "queuepause"):
            self._member_action(name, action)
        elif name == "filter":
            self.respond(action, True, "Filter Added Successfully")
        elif name == "logoff":
            self.write(_frame([("Response", "Goodbye"), ("ActionID", action.get("ActionID", "")),
                               ("Message", "Thanks for all the fish.")]))
            self.transport.loseConnection()  # type: ignore[union-attr]
        else:
            f._call_action(self, action)

    def _list(self, action: Message, items: list[bytes], complete: str) -> None:
        aid = action.get("ActionID", "")
        self.write(_frame([("Response", "Success"), ("ActionID", aid), ("EventList", "start"),
                           ("Message", "List will follow")]))
        for item in items:
            self.write(item)
        self.write(_frame([("Event", complete), ("ActionID", aid), ("EventList", "Complete"),
                           ("ListItems", str(len(items)))]))

    def _queue_status(self, action: Message) -> None:
        aid = action.get("ActionID", "")
        items: list[bytes] = []
        for queue, strategy in LAB_QUEUES.items():
            items.append(_frame([("Event", "QueueParams"), ("Queue", queue), ("Max", "0"), ("Strategy", strategy),
                                 ("Calls", "0"), ("Holdtime", "0"), ("TalkTime", "0"), ("Completed", "0"),
                                 ("Abandoned", "0"), ("ServiceLevel", "0"), ("ServicelevelPerf", "0.0"),
                                 ("ServicelevelPerf2", "0.0"), ("Weight", "0"), ("ActionID", aid)]))
            for m in self.factory.members.values():
                if m.queue == queue:
                    items.append(self.factory.member_frame("QueueMember", m, [("ActionID", aid)]))
        self._list(action, items, "QueueStatusComplete")

    def _member_action(self, name: str, action: Message) -> None:
        f = self.factory
        iface = action.get("Interface", "")
        queue = action.get("Queue", "")
        if name == "queueadd":
            if (queue, iface) in f.members:
                self.respond(action, False, "Unable to add interface: Already there")
                return
            if queue not in LAB_QUEUES:
                self.respond(action, False, "Unable to add interface to queue: No such queue")
                return
            m = Member(queue, iface, action.get("MemberName", iface), _flag(action.get("Paused")),
                       action.get("Reason", "") if _flag(action.get("Paused")) else "")
            f.members[(queue, iface)] = m
            self.respond(action, True, "Added interface to queue")
            self.write(f.member_frame("QueueMemberAdded", m))
        elif name == "queueremove":
            m_or_none = f.members.pop((queue, iface), None)
            if m_or_none is None:
                self.respond(action, False, "Unable to remove interface: Not there")
                return
            self.respond(action, True, "Removed interface from queue")
            self.write(f.member_frame("QueueMemberRemoved", m_or_none))
        else:
            hits = [m for (q, i), m in f.members.items() if i == iface and (not queue or q == queue)]
            if not hits:
                self.respond(action, False, "Interface not found")
                return
            paused = _flag(action.get("Paused"))
            for m in hits:
                m.paused, m.reason = paused, action.get("Reason", "") if paused else ""
            self.respond(action, True, f"Interface {'paused' if paused else 'unpaused'} successfully")
            for m in hits:
                self.write(f.member_frame("QueueMemberPause", m))
        f._member_changed(self, action)


class StageFactory(ServerFactory):
    """Serves :class:`Stage` to UCS's AMI client; drives the stream (see the module)."""

    def __init__(self, stage: Stage, username: str = "ucs", secret: str = "ucslab", reactor: object = None) -> None:
        self.stage = stage
        self.username = username
        self.secret = secret
        self.members: dict[tuple[str, str], Member] = {}
        self.current: StageProtocol | None = None
        self._pos = 0
        self._gate_no = 0
        self._told = 0
        self._started = False
        self._done: Deferred[None] | None = None
        self._finished = False
        self._gate_waiters: list[Deferred[Gate | None]] = []
        self._login_waiters: list[Deferred[StageProtocol]] = []
        self._member_waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []
        #: Actions UCS sent that no gate of the capture took (the recording has no such thing).
        self.unexpected: list[Message] = []
        #: Recorded action IDs -> UCS's (rewritten in the events that carry them).
        self._ids: dict[str, str] = {}
        #: Member events of the recording client's own actions (left out).
        self._skip = self._recorded_member_events()

    def buildProtocol(self, addr: IAddress | None) -> StageProtocol:
        return StageProtocol(self.stage, self)

    def _recorded_member_events(self) -> set[int]:
        msgs = self.stage.capture.messages
        out = set()
        for i, m in enumerate(msgs):
            if m is not None and m.get("Event") in _MEMBER_EVENTS:
                out.add(i)
        return out

    # -- members

    def member_frame(self, event: str, m: Member, extra: list[tuple[str, str]] = ()) -> bytes:  # type: ignore[assignment]
        values = {"Event": event, "Queue": m.queue, "MemberName": m.name, "Interface": m.interface,
                  "StateInterface": m.interface, "Paused": "1" if m.paused else "0", "PausedReason": m.reason}
        headers = [(k, values.get(k, v)) for k, v in self.stage.member_template]
        return _frame([*headers, *extra])

    def whenMembers(self, test: Callable[[], bool]) -> Deferred[None]:
        """Fires once ``test()`` holds, checked after every member action UCS sends."""
        d: Deferred[None] = Deferred()
        if test():
            d.callback(None)
        else:
            self._member_waiters.append((test, d))
        return d

    def _member_changed(self, proto: StageProtocol, action: Message) -> None:
        for item in list(self._member_waiters):
            if item[0]():
                self._member_waiters.remove(item)
                item[1].callback(None)
        gate = self._gate()
        if gate is not None and gate.taken is None and self._pos >= gate.index \
                and gate.action.get("Action", "").lower() == "queuepause" \
                and action.get("Interface") == gate.action.get("Interface"):
            # The recorded pause change was the agent's; UCS's membership
            # action for that phone (whatever its reason) stands for it.
            gate.taken = action
            self._flow()

    # -- the stream

    def whenLoggedIn(self) -> Deferred[StageProtocol]:
        d: Deferred[StageProtocol] = Deferred()
        if self.current is not None:
            d.callback(self.current)
        else:
            self._login_waiters.append(d)
        return d

    def _logged(self, proto: StageProtocol) -> None:
        waiters, self._login_waiters = self._login_waiters, []
        for d in waiters:
            d.callback(proto)

    def start(self) -> Deferred[None]:
        """Stream the capture; fires when all of it went out."""
        self._started = True
        done: Deferred[None] = Deferred()
        self._done = done
        self._flow()
        return done

    def whenGate(self) -> Deferred[Gate | None]:
        """Fires with the gate the stream waits at next (``None`` when it ran to the end)."""
        d: Deferred[Gate | None] = Deferred()
        self._gate_waiters.append(d)
        self._announce()
        return d

    def _gate(self) -> Gate | None:
        gates = self.stage.gates
        return gates[self._gate_no] if self._gate_no < len(gates) else None

    def _announce(self) -> None:
        gate = self._gate()
        waiting = (gate is not None and self._started and self._pos >= gate.index and gate.taken is None
                   and self._told < self._gate_no + 1)
        if not (waiting or self._finished) or not self._gate_waiters:
            return
        if waiting:
            self._told = self._gate_no + 1  # each gate is told once
        waiters, self._gate_waiters = self._gate_waiters, []
        for d in waiters:
            d.callback(None if self._finished else gate)

    def _call_action(self, proto: StageProtocol, action: Message) -> None:
        gate = self._gate()
        if gate is not None and gate.taken is None and self._matches(gate.action, action):
            gate.taken = action
            self._ids[gate.action.get("ActionID", "")] = action.get("ActionID", "")
            self._flow()
            return
        self.unexpected.append(action)
        proto.respond(action, False, f"{action.get('Action')} is not what the recording did here")

    @staticmethod
    def _matches(recorded: Message, sent: Message) -> bool:
        if recorded.get("Action", "").lower() != sent.get("Action", "").lower():
            return False
        keys = [k for k in _MATCH if k in recorded]
        if recorded.get("Action", "").lower() in ("originate", "atxfer", "blindtransfer"):
            keys.append("Exten")
        return all(recorded[k].lower() == sent.get(k, "").lower() for k in keys)

    def _flow(self) -> None:
        proto = self.current
        if not self._started or proto is None or self._finished:
            return
        cap = self.stage.capture
        out: list[bytes] = []
        while self._pos < len(cap.frames):
            gate = self._gate()
            if gate is not None and self._pos == gate.index:
                if gate.taken is None:
                    break
                if gate.action.get("Action", "").lower() != "queuepause":
                    out.append(self._rewrite(cap.frames[self._pos], cap.messages[self._pos]))
                self._gate_no += 1
                self._pos += 1
                continue
            frame = self._stream_frame(self._pos)
            if frame:
                out.append(frame)
            self._pos += 1
        proto.write(b"".join(out))
        if self._pos >= len(cap.frames):
            self._finished = True
            done, self._done = self._done, None
            if done is not None:
                done.callback(None)
        self._announce()

    def _stream_frame(self, i: int) -> bytes:
        raw = self.stage.capture.frames[i]
        m = self.stage.capture.messages[i]
        if m is None:
            return b"" if b"ActionID: lab-" in raw or not raw.strip() else raw
        aid = m.get("ActionID")
        if "Event" not in m:
            return b""  # an answer to the recording client
        if i in self._skip or i == self.stage.booted_index:
            return b""
        if aid in self.stage.recorded_ids:
            if aid not in self._ids:
                return b""  # an item of a list the recording client asked for
            return self._rewrite(raw, m)
        if m.get("Event") == "QueueMemberStatus":
            member = self.members.get((m.get("Queue", ""), m.get("Interface", "")))
            if member is None:
                return b""  # not a member here: Asterisk would say nothing about it
            return re.sub(rb"Paused: [^\r]*\r\nPausedReason: [^\r]*\r\n",
                          f"Paused: {int(member.paused)}\r\nPausedReason: {member.reason}\r\n".encode(), raw)
        return raw

    def _rewrite(self, raw: bytes, m: Message | None) -> bytes:
        aid = (m or {}).get("ActionID", "")
        new = self._ids.get(aid)
        if not new:
            return raw
        return raw.replace(f"ActionID: {aid}\r\n".encode(), f"ActionID: {new}\r\n".encode())
