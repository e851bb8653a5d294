"""What every call-control operation stands on: the agent's line and its call
in the PBX model, AMI actions and the wait for the model to confirm them.

:class:`ControlBase` holds no state of its own: the attributes it declares are
set by :class:`~ucs.calls.control.CallControl`, which is built on it (through
:class:`~ucs.calls.dial.Dialling`).  Also here: the dialplan contexts call
control relies on, the check of a dialled number and :class:`ActionRefused`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ucs.ami.errors import AMIActionError, AMIError
from ucs.bus import EventBus
from ucs.calls.call import Call
from ucs.calls.confirm import Confirmations
from ucs.calls.control_state import CONFERENCE, HELD, PARKED, SWAPPED, LineOp
from ucs.calls.tracker import CallTracker
from ucs.directory.model import Line, Queue, User
from ucs.error import InvalidDataInput, InvalidState, PBXError
from ucs.interfaces import ActionSender
from ucs.pbx.model import STATE_UP, Bridge, Channel
from ucs.pbx.pbx import PBX

T = TypeVar("T")

STATE_RINGING = 5

#: Dial strings: digits, ``*`` and ``#``, with an optional leading ``+``.
_NUMBER = re.compile(r"\+?[0-9*#]+")
#: What CRMs put in numbers for people to read; removed before checking.
_FILLER = str.maketrans("", "", " \t-./()")
MAX_NUMBER = 32


class DirectoryView(Protocol):
    """What call control reads from :class:`~ucs.directory.directory.Directory`."""

    queues: dict[int, Queue]
    callreasons: dict[int, Any]

    def line_by_device(self, device: str) -> Line | None: ...
    def queues_of(self, user: User) -> list[tuple[Queue, Any]]: ...


@attrs.define(frozen=True)
class Contexts:
    """The dialplan call control relies on (the lab's, by default).

    ``outgoing``: where click-to-dial numbers and transfer targets are dialled
    (an extension pattern per number, e.g. ``_1XXX`` → ``Dial(SIP/${EXTEN})``,
    ``_0X.`` → the trunk).  ``hold``: where a held party waits
    (``s`` → ``Answer``, ``MusicOnHold``).  ``wait``: where the agent's channel
    waits while the call is held (``s`` → ``Answer``, ``Wait(3600)``).
    """

    outgoing: str = "internal"
    hold: str = "ucs-hold"
    wait: str = "ucs-wait"
    #: The extension of the hold and wait contexts.
    start: str = "s"


#: The lab's contexts (``etc/asterisk/extensions.conf``).
LAB_CONTEXTS = Contexts()


class ActionRefused(PBXError):
    """Asterisk answered ``Response: Error`` to an action."""

    def __init__(self, action: str, asterisk_message: str) -> None:
        self.action = action
        self.asterisk_message = asterisk_message
        super().__init__(f"Asterisk refused {action}: {asterisk_message or '(no message)'}")


def check_number(value: Any, arg: str = "number") -> str:
    """``value`` as a dial string (spaces, dashes, dots and brackets removed);
    :class:`InvalidDataInput` naming ``arg`` when it is not a phone number."""
    if not isinstance(value, str):
        raise InvalidDataInput({arg: f"{value!r} is not accepted; give the number as a string"})
    number = value.translate(_FILLER)
    if not number or len(number) > MAX_NUMBER or not _NUMBER.fullmatch(number):
        raise InvalidDataInput(
            {arg: f"{value!r} is not a phone number; give 1 to {MAX_NUMBER} digits, "
                  "* or #, with an optional leading +"}
        )
    return number


def line_device(line: Line | str) -> str:
    device = line.device if isinstance(line, Line) else line
    if not isinstance(device, str) or "/" not in device:
        raise InvalidDataInput({"line": f"{device!r} is not a phone line; give a line or a device such as SIP/1001"})
    return device


def _uid_order(ch: Channel) -> tuple[int, int, float]:
    epoch, _, seq = ch.uniqueid.partition(".")
    try:
        return (int(epoch), int(seq or 0), ch.created)
    except ValueError:
        return (0, 0, ch.created)


class ControlBase:
    """The line's channels and call, one request per line, AMI actions and
    their confirmation, and keeping :attr:`ops` in step with the model."""

    log = Logger()

    _ami: ActionSender
    _pbx: PBX
    _tracker: CallTracker
    _bus: EventBus
    clock: IReactorTime
    directory: DirectoryView | None
    contexts: Contexts
    confirm_timeout: float
    ring_timeout: float
    _confirm: Confirmations
    #: Lines whose call UCS holds or transfers (see ucs.calls.control_state).
    ops: dict[str, LineOp]
    _busy: dict[str, str]

    async def _consult(self, device: str, op: LineOp | None, number: str) -> Call:
        """The consultation call of an attended transfer (:class:`~ucs.calls.control.CallControl`)."""
        raise NotImplementedError

    def _conference_over(self, op: LineOp) -> bool:
        raise NotImplementedError

    def _swapped_over(self, op: LineOp) -> bool:
        raise NotImplementedError

    # -- the phone and its call --------------------------------------------------------

    def _channels(self, device: str) -> list[Channel]:
        """The device's channels (no Local plumbing), oldest first."""
        return sorted((c for c in self._pbx.channels_of_device(device) if not c.is_local), key=_uid_order)

    def _current(self, device: str) -> Channel:
        """The channel the agent is busy with: the newest, preferring answered
        ones, and a held call's only when there is nothing else."""
        chans = self._channels(device)
        op = self.ops.get(device)
        if op is not None and op.state in (HELD, PARKED):
            others = [c for c in chans if c.uniqueid != op.agent]
            if others:
                chans = others
        if not chans:
            raise InvalidState(f"there is no call on {device}")
        answered = [c for c in chans if c.state == STATE_UP]
        return (answered or chans)[-1]

    def _talking(self, device: str) -> tuple[Channel, Channel, Call]:
        """The agent's channel, the one it talks to, and their call."""
        agent = self._current(device)
        if agent.state != STATE_UP:
            raise InvalidState(f"the call on {device} is not answered yet")
        bridge: Bridge | None = self._pbx.bridges.get(agent.bridge or "")
        others = [self._pbx.channels[u] for u in (bridge.channels if bridge else []) if u != agent.uniqueid and u in self._pbx.channels]
        if not others:
            raise InvalidState(f"the call on {device} is not connected to anyone now")
        if len(others) > 1:
            raise InvalidState(f"the call on {device} has {len(others) + 1} parties; this works on two-party calls only")
        return agent, others[0], self._call_of(agent, device)

    def _call_of(self, ch: Channel, device: str) -> Call:
        call = self._tracker.call_of(ch.uniqueid)
        if call is None:
            raise InvalidState(f"there is no call on {device} that UCS knows of ({ch.name})")
        return call

    @contextmanager
    def _line_busy(self, device: str, what: str) -> Iterator[None]:
        """One request per line at a time; the second is refused, not queued."""
        doing = self._busy.get(device)
        if doing is not None:
            raise InvalidState(f"{doing} on {device} is still in progress; try again when it is done")
        self._busy[device] = what
        try:
            yield
        finally:
            del self._busy[device]
            self._reconcile()

    def _drop(self, device: str, input: str) -> None:
        op = self.ops.pop(device, None)
        if op is not None:
            op.move(input)

    def _notify_action(self, device: str) -> tuple[str, dict[str, object]]:
        tech, _, name = device.partition("/")
        if tech.upper() == "SIP":
            return "SIPnotify", {"Channel": name, "Variable": "Event=talk"}
        if tech.upper() == "PJSIP":
            return "PJSIPNotify", {"Endpoint": name, "Variable": "Event=talk"}
        raise InvalidState(f"{device} cannot be answered remotely: only SIP and PJSIP phones can be told to answer")

    def _line_kind(self, line: Line | str) -> str:
        """``"webrtc"`` for a line whose phone is the agent bar itself, else ``"phone"``."""
        if isinstance(line, Line):
            return line.kind
        found = self.directory.line_by_device(line) if self.directory is not None else None
        return found.kind if found is not None else "phone"

    def _auto_answer(self, line: Line | str) -> str:
        if isinstance(line, Line):
            return line.auto_answer
        found = self.directory.line_by_device(line) if self.directory is not None else None
        return found.auto_answer if found is not None else "none"

    # -- talking to Asterisk -------------------------------------------------------------

    async def _send(self, action: str, headers: Mapping[str, object]) -> Any:
        try:
            return await self._ami.sendAction(action, headers)
        except AMIActionError as e:
            raise ActionRefused(action, e.message) from None
        except AMIError as e:
            raise PBXError(f"{action} could not be sent to Asterisk: {e}") from None

    async def _do(self, action: str, headers: Mapping[str, object], check: Callable[[], T | None], what: str) -> T:
        """Send ``action`` and wait until ``check`` sees its effect in the model."""
        exp = self._confirm.expect(check, what)
        if not exp.done:
            try:
                await self._send(action, headers)
            except BaseException:
                exp.cancel()
                raise
        return await exp.wait(self.confirm_timeout)

    def _fire(self, action: str, headers: Mapping[str, object], why: str) -> None:
        """Send without waiting (clean-ups); a failure is logged."""

        def failed(f: Failure) -> None:
            self.log.warn("{action} for {why} failed: {error}", action=action, why=why, error=f.getErrorMessage())

        d: Deferred[Any] = Deferred.fromCoroutine(self._send(action, headers))
        d.addErrback(failed)

    # -- keeping up with the PBX ---------------------------------------------------------

    def _changed(self) -> None:
        try:
            self._reconcile()
            self._confirm.poke()
        except Exception:  # noqa: BLE001 - nothing may break the PBX model's update
            self.log.failure("call control failed on a PBX event")

    def _reconcile(self) -> None:
        """Forget holds and transfers the PBX ended by itself; a held call whose
        other side went away is hung up (nobody could ever take it off hold)."""
        channels = self._pbx.channels
        for device, op in list(self.ops.items()):
            if device in self._busy:
                continue
            agent, party = channels.get(op.agent), channels.get(op.party)
            if op.state == CONFERENCE:
                if self._conference_over(op):
                    self._drop(device, "gone")
            elif op.state == SWAPPED:
                if self._swapped_over(op):
                    self._drop(device, "gone")
            elif op.state in (HELD, PARKED):
                if agent is not None and party is not None and (agent.bridge is None or agent.bridge != party.bridge):
                    continue  # still held
                self._drop(device, "gone")
                survivor = agent or party
                if survivor is not None and (agent is None or party is None):
                    self._fire("Hangup", {"Channel": survivor.name, "Cause": 16}, why=f"the held call on {device}")
            elif agent is None or party is None or (agent.bridge is not None and agent.bridge == party.bridge):
                self._drop(device, "gone")
