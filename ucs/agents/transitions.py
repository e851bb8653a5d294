"""The agent's status machine: which requested changes are allowed, and what
each status means on the PBX.

Requested changes (an agent bar, a supervisor, a plugin, the login)::

    from \\ to   OFFLINE  READY  AUX  ACW
    OFFLINE        =       yes    yes   -
    READY         yes       =     yes  yes
    AUX           yes      yes    yes  yes
    ACW           yes      yes    yes  yes

``=`` keeps the status (and re-applies it on the PBX); AUX → AUX changes the
reason; ACW → ACW starts the wrap-up period again.  A change that is not in
:data:`TRANSITIONS` raises :class:`~ucs.error.InvalidState` before anything
is sent to Asterisk.

What a status is on Asterisk, per queue of the agent (:func:`target`):

    OFFLINE   not a member (QueueRemove)
    READY     member, not paused
    AUX(r)    member, paused with reason r
    ACW       member, paused with reason "ACW"
    any but OFFLINE, in a queue the agent suspended: paused with reason "suspended"

``held``: the agent is talking on a queue call that wrap-up will follow.  A
READY agent is then paused "ACW" already, its status still READY: app_queue
offers the next caller to a member the moment its device is free again unless
it is paused, so the pause has to be in place before the call ends (see
:mod:`ucs.agents.service`).  AUX and ACW are paused anyway.

Automatic changes — wrap-up after a queue call and its end, and pauses made
on the phone or by another AMI client — follow Asterisk and are not checked
against the table (they already happened).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ucs.constants import AgentStatus
from ucs.error import InvalidDataInput, InvalidState
from ucs.pbx.model import Member

OFFLINE, READY, AUX, ACW = AgentStatus.OFFLINE, AgentStatus.READY, AgentStatus.AUX, AgentStatus.ACW

#: The pause reason Asterisk shows while an agent wraps up after a call.
ACW_REASON = "ACW"
#: The pause reason of a queue the agent suspended (``agent.suspend``).
SUSPEND_REASON = "suspended"
RESERVED_REASONS = frozenset({ACW_REASON, SUSPEND_REASON})
MAX_REASON = 64

TRANSITIONS: frozenset[tuple[AgentStatus, AgentStatus]] = frozenset({
    (OFFLINE, OFFLINE), (OFFLINE, READY), (OFFLINE, AUX),
    (READY, OFFLINE), (READY, READY), (READY, AUX), (READY, ACW),
    (AUX, OFFLINE), (AUX, READY), (AUX, AUX), (AUX, ACW),
    (ACW, OFFLINE), (ACW, READY), (ACW, AUX), (ACW, ACW),
})

_NAMES = ", ".join(s.name for s in AgentStatus)


def parse_status(value: Any) -> AgentStatus:
    """A status from its name (``"AUX"``, any case) or number; else
    :class:`InvalidDataInput` naming what is accepted."""
    if isinstance(value, AgentStatus):
        return value
    if isinstance(value, str):
        found = AgentStatus.__members__.get(value.strip().upper())
        if found is not None:
            return found
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return AgentStatus(value)
        except ValueError:
            pass
    raise InvalidDataInput({"status": f"{value!r} is not an agent status; give one of {_NAMES}"})


def check_transition(current: AgentStatus, wanted: AgentStatus) -> None:
    if (current, wanted) not in TRANSITIONS:
        allowed = ", ".join(s.name for s in AgentStatus if (current, s) in TRANSITIONS)
        raise InvalidState(f"an agent cannot go from {current.name} to {wanted.name}; from {current.name}: {allowed}")


def check_reason(status: AgentStatus, reason: Any, aux_reasons: Iterable[str]) -> str:
    """The reason to keep for ``status``: the AUX reason (required; one of the
    directory's AUX reasons when any are defined, else any short text), ``""``
    for the other statuses (whatever was given)."""
    if status != AUX:
        return ""
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise InvalidDataInput({"reason": f"{reason!r} is not accepted; give the AUX reason as a string"})
    text = reason.strip()
    known = list(aux_reasons)
    if not text:
        hint = f"one of: {', '.join(known)}" if known else "a short text such as Lunch"
        raise InvalidDataInput({"reason": f"AUX needs a reason; give {hint}"})
    if text in RESERVED_REASONS:
        raise InvalidDataInput({"reason": f"{text!r} is reserved for {'wrap-up' if text == ACW_REASON else 'suspended queues'}; "
                                          "give another AUX reason"})
    if known:
        for name in known:
            if name.lower() == text.lower():
                return name
        raise InvalidDataInput({"reason": f"{text!r} is not an AUX reason; give one of: {', '.join(known)}"})
    if len(text) > MAX_REASON or any(c in text for c in "\r\n\x00"):
        raise InvalidDataInput({"reason": f"{text[:20]!r}…: give one line of at most {MAX_REASON} characters"})
    return text


@attrs.define(frozen=True)
class Target:
    """What one queue membership should look like on Asterisk."""

    present: bool
    paused: bool = False
    reason: str = ""

    def met_by(self, member: Member | None) -> bool:
        if not self.present:
            return member is None
        if member is None or member.paused != self.paused:
            return False
        return not self.paused or member.paused_reason == self.reason

    def describe(self) -> str:
        if not self.present:
            return "not a member"
        return f"paused ({self.reason})" if self.paused else "not paused"


def target(status: AgentStatus, reason: str, suspended: bool, *, held: bool = False) -> Target:
    if status == OFFLINE:
        return Target(False)
    if suspended:
        return Target(True, True, SUSPEND_REASON)
    if status == READY:
        return Target(True, True, ACW_REASON) if held else Target(True)
    if status == ACW:
        return Target(True, True, ACW_REASON)
    return Target(True, True, reason)
