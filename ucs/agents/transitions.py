"""The agent's status machine, as one table: state × input → next state,
what is carried out on the PBX, or the refusal message.

States: OFFLINE, READY, AUX (with a reason), ACW (wrap-up).  Two modifiers
are not states of their own, they change what a status is in a queue
(:func:`target`): a *suspended* queue (paused "suspended" whatever the
status), and a *held* leg (``agent.held``: a queue call the agent serves —
talks with its customer, :func:`ucs.agents.counting.serves`, not a colleague's
consultation — wrap-up to follow; a READY agent is then paused "ACW" already, its status
still READY — app_queue offers the next caller to a member the moment its
device is free unless it is paused, so the pause must be in place before the
call ends).

:data:`MACHINE` (``=`` keeps the state, ``back`` is the status ACW returns
to, ``seen`` the status the PBX shows)::

    input                       OFFLINE        READY          AUX            ACW            PBX
    ask OFFLINE                 OFFLINE        OFFLINE        OFFLINE        OFFLINE        carry
    ask READY                   READY          READY          READY          READY          carry
    ask AUX                     AUX            AUX            AUX            AUX            carry
    ask ACW                     refused        ACW            ACW            ACW            carry
    talking (queue call served) =              = pause ahead  =              =              pause / -
    hung up (that call)         = no wrap-up   ACW            ACW            ACW            carry
    acw over (timer, resync)    =              =              =              back           carry / -
    extend acw (the agent)      refused        refused        refused        =              timer
    end acw (the agent)         refused        refused        refused        back           carry
    seen paused R               AUX(R)         AUX(R)         AUX(R)         AUX(R)         follow
    seen paused ACW             ACW            ACW            ACW            ACW            follow
    seen unpaused               READY          READY          READY          READY          follow
    seen suspended              =              =              =              =              -
    suspend / resume (a queue)  =              =              =              =              queue
    resync                      =              =              =              =              reapply
    logout                      OFFLINE        OFFLINE        OFFLINE        OFFLINE        remove

What the PBX column means (every action confirmed by Asterisk's member event,
:mod:`ucs.agents.membership`; a member whose penalty differs from the
membership's priority gets ``QueuePenalty`` along the way, one whose penalty is
right gets none):

- ``carry``: every queue brought to the new status's target, *then* the
  status changes (nothing changes if Asterisk refuses; the queues are put back);
- ``pause``: a held READY agent's queues paused "ACW" ahead of wrap-up;
- ``follow``: the change already happened on the PBX (a pause on the phone or
  by another AMI client): the status changes first, then the other queues
  are brought in line;
- ``queue``: that one queue only; ``reapply``: every queue as the status says;
  ``remove``: ``QueueRemove`` everywhere (left to the next reconciliation if
  Asterisk cannot be reached).

``timer``: only the wrap-up timer moves (``extend acw``: by ``acw_extend_step``
up to ``acw_max_seconds`` from the start of the wrap-up, :mod:`ucs.agents.wrapup`).
Leaving ACW — ``end acw``, ``acw over``, and the agent's own ``ask …`` from
ACW — is *held* while the call's queue requires a call reason
(``Queue.require_reason``) that was not saved yet (:func:`ucs.agents.wrapup.reason_missing`):
the agent's request is refused with what is missing, the timer's end waits in
ACW until the reason is saved.  A supervisor's change and logout are not held.

Requested changes (``ask …``) also go through the status hook and a reason
check (:func:`check_reason`); AUX → AUX changes the reason, ACW → ACW starts
the wrap-up period again, a same-state request re-applies it on the PBX.  An
input missing from the table is refused with :data:`REFUSALS` before anything
is sent to Asterisk.  Automatic inputs (talking, hung up, acw over, seen …)
have a row in every state: they follow Asterisk, they are never refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ucs.constants import AgentStatus
from ucs.error import InvalidDataInput, InvalidState
from ucs.pbx.model import Member

OFFLINE, READY, AUX, ACW = AgentStatus.OFFLINE, AgentStatus.READY, AgentStatus.AUX, AgentStatus.ACW
STATES = (OFFLINE, READY, AUX, ACW)

#: The pause reason Asterisk shows while an agent wraps up after a call.
ACW_REASON = "ACW"
#: The pause reason of a queue the agent suspended (``agent.suspend``).
SUSPEND_REASON = "suspended"
RESERVED_REASONS = frozenset({ACW_REASON, SUSPEND_REASON})
MAX_REASON = 64

# -- inputs
#: A requested change (the agent bar, a supervisor, a plugin, the login's initial status).
ASK = {s: f"ask {s.name}" for s in STATES}
TALKING = "talking"          # the agent talks on a queue call (wrap-up on): the leg is held
HUNG_UP = "hung up"          # the agent's leg of a queue call they talked on ended
ACW_OVER = "acw over"        # the wrap-up period ran out (its timer, or found over at a resync)
SEEN_PAUSED = "seen paused"  # pauses and unpauses on the PBX nobody asked UCS for
SEEN_PAUSED_ACW = "seen paused ACW"
SEEN_UNPAUSED = "seen unpaused"
SEEN_SUSPENDED = "seen suspended"
SUSPEND, RESUME = "suspend", "resume"
RESYNC = "resync"            # Asterisk restarted, the AMI link resynced, UCS started, queues changed
LOGOUT = "logout"            # logout, session expiry, user or line deleted
EXTEND_ACW = "extend acw"    # the agent asks for more wrap-up time
END_ACW = "end acw"          # the agent ends the wrap-up early

# -- next states besides a status
SAME = "="
BACK = "back"    # the status before ACW (READY, or AUX with its reason)

# -- what is carried out on the PBX
CARRY, PAUSE, FOLLOW, QUEUE, REAPPLY, REMOVE, NOTHING = "carry", "pause", "follow", "queue", "reapply", "remove", "-"
TIMER = "timer"  # only the wrap-up timer changes


@attrs.define(frozen=True)
class Row:
    """One transition: the next state and what is carried out on the PBX."""

    next: AgentStatus | str
    does: str

    def to(self, current: AgentStatus) -> AgentStatus | str:
        """The next state, ``=`` resolved (``back`` stays: only the agent knows it)."""
        return current if self.next == SAME else self.next


def _every(input: str, row: Row) -> dict[tuple[AgentStatus, str], Row]:
    return {(s, input): row for s in STATES}


MACHINE: dict[tuple[AgentStatus, str], Row] = {
    **{(s, ASK[t]): Row(t, CARRY) for s in STATES for t in STATES if (s, t) != (OFFLINE, ACW)},
    (OFFLINE, TALKING): Row(SAME, NOTHING),
    (READY, TALKING): Row(SAME, PAUSE),
    (AUX, TALKING): Row(SAME, NOTHING),    # paused anyway
    (ACW, TALKING): Row(SAME, NOTHING),
    (OFFLINE, HUNG_UP): Row(SAME, NOTHING),  # no wrap-up
    (READY, HUNG_UP): Row(ACW, CARRY),
    (AUX, HUNG_UP): Row(ACW, CARRY),
    (ACW, HUNG_UP): Row(ACW, CARRY),
    (OFFLINE, ACW_OVER): Row(SAME, NOTHING),  # ended early
    (READY, ACW_OVER): Row(SAME, NOTHING),
    (AUX, ACW_OVER): Row(SAME, NOTHING),
    (ACW, ACW_OVER): Row(BACK, CARRY),
    (ACW, EXTEND_ACW): Row(SAME, TIMER),
    (ACW, END_ACW): Row(BACK, CARRY),
    **_every(SEEN_PAUSED, Row(AUX, FOLLOW)),
    **_every(SEEN_PAUSED_ACW, Row(ACW, FOLLOW)),
    **_every(SEEN_UNPAUSED, Row(READY, FOLLOW)),
    **_every(SEEN_SUSPENDED, Row(SAME, NOTHING)),
    **_every(SUSPEND, Row(SAME, QUEUE)),
    **_every(RESUME, Row(SAME, QUEUE)),
    **_every(RESYNC, Row(SAME, REAPPLY)),
    **_every(LOGOUT, Row(OFFLINE, REMOVE)),
}

#: Why an input is refused in a state.
REFUSALS: dict[tuple[AgentStatus, str], str] = {
    (OFFLINE, ASK[ACW]): "an agent cannot go from OFFLINE to ACW (wrap-up follows a call); "
                         "from OFFLINE: OFFLINE, READY, AUX",
    **{(s, EXTEND_ACW): f"wrap-up can be extended only in ACW; the agent is {s.name}" for s in (OFFLINE, READY, AUX)},
    **{(s, END_ACW): f"wrap-up can be ended only in ACW; the agent is {s.name}" for s in (OFFLINE, READY, AUX)},
}

#: The requested changes the table allows, as (from, to) pairs.
TRANSITIONS: frozenset[tuple[AgentStatus, AgentStatus]] = frozenset(
    (s, t) for s in STATES for t in STATES if (s, ASK[t]) in MACHINE)


def step(state: AgentStatus, input: str) -> Row:
    """The row for ``input`` in ``state``; :class:`InvalidState` (nothing changed) if there is none."""
    try:
        return MACHINE[(state, input)]
    except KeyError:
        raise InvalidState(REFUSALS.get((state, input), f"{input} is not possible while the agent is {state.name}")) from None


def seen(paused: bool, reason: str) -> str:
    """The input for a member the PBX shows (a change nobody asked UCS for)."""
    if not paused:
        return SEEN_UNPAUSED
    return {ACW_REASON: SEEN_PAUSED_ACW, SUSPEND_REASON: SEEN_SUSPENDED}.get(reason, SEEN_PAUSED)


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
    """A requested change the table allows, or :class:`InvalidState` with its refusal."""
    step(current, ASK[wanted])


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
