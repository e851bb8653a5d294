"""A call as people think of it: one customer or colleague, however many
channels, bridges and transfers Asterisk used to connect them.

Field names follow seed 002's Call object so that the agent bar, plugins and
the CDR all see the same thing.
"""

from __future__ import annotations

from typing import Any

import attrs

# The vocabulary is a leaf (``ucs.constants``): the enums live there, re-exported here.
from ucs.constants import INCOMING as INCOMING
from ucs.constants import INTERNAL as INTERNAL
from ucs.constants import OUTGOING as OUTGOING
from ucs.constants import CallState as CallState
from ucs.constants import Cause as Cause

#: Asterisk hang-up causes (Q.850) that say why a call did not connect.
_Q850 = {
    17: Cause.BUSY,
    1: Cause.INVALID_NUMBER, 3: Cause.INVALID_NUMBER, 28: Cause.INVALID_NUMBER,
    21: Cause.REJECTED,
    18: Cause.UNAVAILABLE, 19: Cause.UNAVAILABLE, 20: Cause.UNAVAILABLE, 27: Cause.UNAVAILABLE,
    34: Cause.UNAVAILABLE, 38: Cause.UNAVAILABLE, 41: Cause.UNAVAILABLE, 42: Cause.UNAVAILABLE,
}
#: Dial() statuses of a leg that did not answer.  They do not always agree
#: with the Q.850 cause of the same leg; the dial status is what Dial() saw.
_DIALSTATUS = {
    "BUSY": Cause.BUSY,
    "CONGESTION": Cause.UNAVAILABLE,
    "CHANUNAVAIL": Cause.UNAVAILABLE,
    "NOANSWER": Cause.UNAVAILABLE,
    "INVALIDARGS": Cause.INVALID_NUMBER,
}


def cause_from_q850(code: int) -> Cause | None:
    return _Q850.get(code)


def cause_from_dialstatus(status: str) -> Cause | None:
    return _DIALSTATUS.get(status.upper())


def hms(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


@attrs.define(eq=False)
class JourneyStep:
    device: str
    device_type: str  # trunk | queue | line | application
    description: str
    start: float
    end: float | None = None

    def to_dict(self, now: float, call_id: str | None = None) -> dict[str, Any]:
        end = self.end if self.end is not None else now
        d: dict[str, Any] = {
            "Device": self.device, "DeviceType": self.device_type, "Description": self.description,
            "Duration": hms(end - self.start),
        }
        return d if call_id is None else {"CallId": call_id, **d}


@attrs.define(eq=False)
class Leg:
    """One channel's part in a call."""

    uniqueid: str
    channel: str
    device: str
    kind: str  # line | trunk | local
    created: float
    number: str = ""
    name: str = ""
    answered: float | None = None
    ended: float | None = None
    cause: Cause = Cause.NOT_SET
    dial_status: str = ""
    hangup_requested: bool = False
    #: Order in which the call's legs hung up or asked to (1 = first); 0 while up.
    gone_order: int = 0
    transferred: bool = False
    #: The phone took the call over from a ringing one (``Pickup``): it is answered.
    picked_up: bool = False
    step: JourneyStep | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uniqueid": self.uniqueid, "channel": self.channel, "device": self.device,
            "type": self.kind, "number": self.number, "name": self.name, "created": self.created,
            "answered": self.answered, "ended": self.ended, "cause": int(self.cause),
        }


@attrs.define(eq=False)
class Call:
    uniqueid: str  # the Linkedid
    id: int
    created: float
    direction: str = INTERNAL
    caller_channel: str = ""
    caller_number: str = ""
    caller_number_norm: str = ""
    caller_name: str = ""
    caller_type: str = ""
    caller_internal: bool = False
    caller_muted: bool = False
    # The caller's line, user and group in UCS's directory when it is a known line
    # (filled by ucs.lookup.parties, which knows the directory; empty otherwise).
    caller_extension: str = ""
    caller_group_id: int | None = None
    caller_line_id: int | None = None
    caller_user_id: int | None = None
    caller_username: str = ""
    called_number: str = ""
    called_number_norm: str = ""
    called_name: str = ""
    connected_channel: str = ""
    connected_number: str = ""
    connected_number_norm: str = ""
    connected_name: str = ""
    connected_type: str = ""
    connected_internal: bool = False
    connected_muted: bool = False
    connected_extension: str = ""
    connected_group_id: int | None = None
    connected_line_id: int | None = None
    connected_user_id: int | None = None
    connected_username: str = ""
    connected: float | None = None
    disconnected: float | None = None
    state: CallState = CallState.NEW
    cause: Cause = Cause.NOT_SET
    queue: str | None = None
    answered_by: str | None = None
    subcalls: int = 0
    account_code: str = ""
    data: dict[str, Any] = attrs.Factory(dict)
    journey: list[JourneyStep] = attrs.Factory(list)
    legs: dict[str, Leg] = attrs.Factory(dict)
    origin: str = ""  # uniqueid of the caller's leg
    transfers: list[dict[str, Any]] = attrs.Factory(list)
    #: While the caller is held for an attended transfer: who the agent consults
    #: (``{"state": "ringing" | "connected", "number", "name", "channel"}``).
    consult: dict[str, Any] | None = None
    #: While the call is on hold: since when, and the phones of its two parties when
    #: it went on hold (one of them holds it; a phone that joins later is talking).
    held_since: float | None = None
    hold_parties: frozenset[str] = frozenset()
    name: str = ""          # the caller's (or called party's) name from a lookup (seed 002)
    external_id: str = ""   # the id the lookup found in the external system
    outbound_id: int | None = None  # the outgoing queue (campaign) a click-to-dial used
    recorded: bool = False
    #: A leg of the call is being recorded now (a MixMonitor runs on its channel).
    recording: bool = False
    #: The recordings UCS started: ``{"file", "channel", "started", "stopped"}``;
    #: ``file`` is the name under ``[recording] directory`` (see :mod:`ucs.calls.recording`).
    recordings: list[dict[str, Any]] = attrs.Factory(list)
    #: Set when this call turned out to be part of another (the Linkedid of that one):
    #: a phone's dialling that picked up a ringing call (``Pickup``).  It ends for the
    #: phone's bar, but it was never a call of its own: no CDR.
    merged_into: str = ""
    #: This "call" is a supervisor's monitoring session (ChanSpy on the supervisor's phone,
    #: :mod:`ucs.calls.spying`), not a call: ``{"call", "channel", "device", "mode", "by"}``
    #: (the monitored call's Linkedid, the spied channel and phone, listen / whisper /
    #: barge, the supervisor's username when UCS rang the phone).  No CDR, no figures.
    monitoring: dict[str, Any] | None = None
    #: Who monitored this call (ChanSpyStart … ChanSpyStop on one of its legs):
    #: ``{"by", "device", "channel", "spied", "mode", "started", "stopped"}`` each.  Not in
    #: :meth:`to_dict` (what the bars are sent: a listening supervisor is neither heard nor
    #: shown to the agent); the CDR keeps them in its ``data`` (:func:`ucs.calls.cdr.cdr_of`).
    monitors: list[dict[str, Any]] = attrs.Factory(list)

    @property
    def ended(self) -> bool:
        return self.disconnected is not None

    @property
    def number(self) -> str:
        """Seed 002: the called number of an outgoing call, the caller's otherwise."""
        return self.called_number if self.direction == OUTGOING else self.caller_number

    def number_for(self, device: str) -> str:
        """``number`` as the phone ``device`` sees it: the other party's.  The phone
        that placed the call (an internal call too) sees whom it calls; the
        others see who calls."""
        origin = self.legs.get(self.origin)
        if origin is not None and origin.device == device and self.called_number:
            return self.called_number
        return self.number

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """Seed 002's Call object; ``now`` (seed 002: the current UCS time) is the
        time it is given at (the call's end, else its start, when not given)."""
        now = now if now is not None else (self.disconnected or self.created)
        return {
            "now": now,
            "uniqueid": self.uniqueid,
            "id": self.id,
            "direction": self.direction,
            "number": self.number,
            "caller_channel": self.caller_channel,
            "caller_number": self.caller_number,
            "caller_number_norm": self.caller_number_norm,
            "caller_name": self.caller_name,
            "caller_type": self.caller_type,
            "caller_internal": self.caller_internal,
            "caller_muted": self.caller_muted,
            "caller_extension": self.caller_extension,
            "caller_group_id": self.caller_group_id,
            "caller_line_id": self.caller_line_id,
            "caller_user_id": self.caller_user_id,
            "caller_username": self.caller_username,
            "called_number": self.called_number,
            "called_number_norm": self.called_number_norm,
            "called_name": self.called_name,
            "connected_channel": self.connected_channel,
            "connected_number": self.connected_number,
            "connected_number_norm": self.connected_number_norm,
            "connected_name": self.connected_name,
            "connected_type": self.connected_type,
            "connected_internal": self.connected_internal,
            "connected_muted": self.connected_muted,
            "connected_extension": self.connected_extension,
            "connected_group_id": self.connected_group_id,
            "connected_line_id": self.connected_line_id,
            "connected_user_id": self.connected_user_id,
            "connected_username": self.connected_username,
            "created": self.created,
            "connected": self.connected,
            "disconnected": self.disconnected,
            "state": int(self.state),
            "cause": int(self.cause),
            "queue": self.queue,
            "answered_by": self.answered_by,
            "subcalls": self.subcalls,
            "account_code": self.account_code,
            "data": self.data,
            "transfers": self.transfers,
            "consult": self.consult,
            "name": self.name,
            "external_id": self.external_id,
            "outbound_id": self.outbound_id,
            "recorded": self.recorded,
            "recording": self.recording and self.disconnected is None,
            "recordings": [dict(r) for r in self.recordings],
            "monitoring": dict(self.monitoring) if self.monitoring is not None else None,
            "legs": [leg.to_dict() for leg in self.legs.values()],
            "journey": [step.to_dict(now) for step in self.journey],
        }
