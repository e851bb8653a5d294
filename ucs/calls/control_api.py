"""The call-control API methods (seed 002 "Component control"), on the agent's paired phone.

========================  ===================================================  ======================
method                    arguments                                            does
========================  ===================================================  ======================
``call.dial``             number, queue (id, "directCall", "undefined"),       click-to-dial
                          line (id), data (object)
``call.answer``           —                                                    answer remotely
``call.hangup``           —                                                    hang up / decline
``call.tribute``          —                                                    hold
``call.unhold``           —                                                    resume
``call.mute``             —                                                    microphone off/on
``call.transfer``         number (optional: without it, transfer mode)         attended transfer
``call.finishTransfer``   —                                                    complete it
``call.blindTransfer``    number                                               blind transfer
``call.swap``             —                                                    consulted party ⇄ caller
``call.conference``       —                                                    all three talk
``call.dtmf``             digits                                               keypad (DTMF)
``call.setAccountCode``   uniqueid, accountCode, subAccountCode, override      account code
``cdr.metadata``          uniqueid, metadata (object)                          call metadata
========================  ===================================================  ======================

All need the agent role and a session in READY; the call methods act on the
session's paired phone (``session.line``).  ``call.setAccountCode`` and
``cdr.metadata`` name a call by its uniqueid and are scoped
(:mod:`ucs.api.scope`): an agent may change the calls their phone took part
in (live or in the stored CDR), a supervisor also those of the queues and
agents they supervise, a superuser any.  The call methods return the Call
object (seed 002), ``call.setAccountCode`` ``{uniqueid, account_code}``,
``cdr.metadata`` ``{uniqueid, metadata}``.
"""

from __future__ import annotations

from typing import Any

from ucs.api.registry import Param, Registry
from ucs.api.scope import ActsOn, Subject
from ucs.calls.call import Call
from ucs.calls.control import CallControl, check_number
from ucs.calls.control_xfer import check_digits
from ucs.constants import Role, SessionState
from ucs.directory.model import Line
from ucs.error import InvalidDataInput, InvalidState

READY_ONLY = (SessionState.READY,)


def _queue(value: Any) -> Any:
    if isinstance(value, int) or value in ("directCall", "undefined"):
        return value
    raise ValueError(f"{value!r} is not accepted; give an outgoing queue id, \"directCall\" or \"undefined\"")


NUMBER = Param("number", str, check=check_number, doc="the phone number: digits, * and #, an optional leading +")
TRANSFER_NUMBER = Param("number", str, required=False, nullable=True, check=check_number,
                        doc="where to transfer; without it the call is held in transfer mode until dial")
QUEUE = Param("queue", (int, str), required=False, nullable=True, check=_queue,
              doc="the outgoing queue (campaign) id, \"directCall\" or \"undefined\"")
LINE = Param("line", int, required=False, nullable=True, doc="the id of the line to call from (default: the paired one)")
DATA = Param("data", dict, required=False, nullable=True, doc="metadata to attach to the call")
UNIQUEID = Param("uniqueid", str, doc="the call's uniqueid")


def _paired(session: Any) -> Line:
    line = getattr(session, "line", None)
    if line is None:
        raise InvalidState("no phone is paired with this session: pair one (selectIdentifier) before controlling calls")
    if not isinstance(line, Line):
        raise InvalidState("the phone paired with this session is not a line UCS knows")
    return line


def register(registry: Registry, control: CallControl) -> None:
    """Add the call-control methods to the API registry; the registry's scope
    finds the calls that ``call.setAccountCode`` and ``cdr.metadata`` name through
    ``control``."""
    registry.scope.calls = control

    def out(call: Call) -> dict[str, Any]:
        return call.to_dict(control.clock.seconds())

    def line_for(session: Any, line_id: int | None) -> Line:
        paired = _paired(session)
        if line_id is None or line_id == paired.id:
            return paired
        directory: Any = control.directory
        lines = getattr(directory, "lines", None)
        if lines is None:
            raise InvalidDataInput({"line": f"line {line_id} is not the phone paired with this session ({paired.id})"})
        line = lines.get(line_id)
        if line is None:
            raise InvalidDataInput({"line": f"line {line_id} does not exist"})
        user = getattr(session, "user", None)
        if user is not None and user.lines and line_id not in user.lines:
            raise InvalidDataInput({"line": f"line {line_id} is not one of your lines"})
        return line  # type: ignore[no-any-return]

    async def dial(session: Any, number: str, queue: Any, line: int | None, data: dict[str, Any] | None) -> dict[str, Any]:
        """Click-to-dial: your phone rings, and when you answer it calls the number."""
        phone = line_for(session, line)
        user = getattr(session, "user", None)
        name = user.name if user is not None else ""
        return out(await control.dial(phone, number, queue, data, caller_name=name, user=user))

    async def answer(session: Any) -> dict[str, Any]:
        """Answer the call ringing on your phone (phones that answer on a SIP NOTIFY only)."""
        return out(await control.answer(_paired(session)))

    async def hangup(session: Any) -> dict[str, Any]:
        """Hang up your call (during a transfer: the consultation call)."""
        return out(await control.hangup(_paired(session)))

    async def tribute(session: Any) -> dict[str, Any]:
        """Put your call on hold."""
        return out(await control.hold(_paired(session)))

    async def unhold(session: Any) -> dict[str, Any]:
        """Take your call off hold."""
        return out(await control.unhold(_paired(session)))

    async def mute(session: Any) -> dict[str, Any]:
        """Turn your microphone off, or on again."""
        return out(await control.mute(_paired(session)))

    async def transfer(session: Any, number: str | None) -> dict[str, Any]:
        """Attended transfer to the number; without one, hold the call until you dial the number."""
        return out(await control.transfer(_paired(session), number))

    async def finish_transfer(session: Any) -> dict[str, Any]:
        """Connect the caller to the person you consulted."""
        return out(await control.finish_transfer(_paired(session)))

    async def blind_transfer(session: Any, number: str) -> dict[str, Any]:
        """Transfer your call to the number without consulting."""
        return out(await control.blind_transfer(_paired(session), number))

    async def swap(session: Any) -> dict[str, Any]:
        """During a transfer: talk to the other party (caller or consulted); the other waits with music."""
        return out(await control.swap(_paired(session)))

    async def conference(session: Any) -> dict[str, Any]:
        """During a transfer: the caller, you and the consulted party all talk together."""
        return out(await control.conference(_paired(session)))

    async def dtmf(session: Any, digits: str) -> dict[str, Any]:
        """Send keypad digits to whoever you talk to (an IVR, a PIN)."""
        return out(await control.send_dtmf(_paired(session), digits))

    async def set_account_code(
        session: Any, uniqueid: str, code: str, sub_code: str | None, override: bool
    ) -> dict[str, Any]:
        """Set the call's account code: replace (override) or add to what it has."""
        result = await control.set_account_code(uniqueid, code, sub_code, override)
        return {"uniqueid": uniqueid, "account_code": result}

    async def metadata(session: Any, uniqueid: str, data: dict[str, Any]) -> dict[str, Any]:
        """Attach metadata to a call (and its CDR)."""
        return {"uniqueid": uniqueid, "metadata": await control.cdr_metadata(uniqueid, data)}

    def add(name: str, handler: Any, params: tuple[Param, ...] = (), acts_on: ActsOn | None = None) -> None:
        registry.add(name, handler, params, role=Role.AGENT, states=READY_ONLY, acts_on=acts_on)

    the_call = ActsOn(Subject.CALL, "uniqueid")

    add("call.dial", dial, (NUMBER, QUEUE, LINE, DATA))
    add("call.answer", answer)
    add("call.hangup", hangup)
    add("call.tribute", tribute)
    add("call.unhold", unhold)
    add("call.mute", mute)
    add("call.transfer", transfer, (TRANSFER_NUMBER,))
    add("call.finishTransfer", finish_transfer)
    add("call.blindTransfer", blind_transfer, (NUMBER,))
    add("call.swap", swap)
    add("call.conference", conference)
    add("call.dtmf", dtmf, (Param("digits", str, check=check_digits, doc="the keys: 0-9, *, # and A-D, at most 32"),))
    add("call.setAccountCode", set_account_code, (
        UNIQUEID,
        Param("accountCode", str, doc="the account code (a call reason's code when any are defined)"),
        Param("subAccountCode", str, required=False, nullable=True, doc="a sub-code of accountCode"),
        Param("override", bool, required=False, default=False, doc="replace the call's codes instead of adding"),
    ), the_call)
    add("cdr.metadata", metadata, (UNIQUEID, Param("metadata", dict, doc="an object of JSON values")), the_call)
