"""A new owner's CDRs across the gap (issue 20): each call's CDR once, and whole.

CDRs are written by the AMI owner alone (its call tracker, fed by Asterisk,
ends calls; a standby's tracker hears nothing), keyed by the call's Linkedid
(``uniqueid``) with an upsert in the store, so writing one twice replaces it
rather than adding a row.  What a change of owner adds:

- **A call still up at take-over.**  The new owner's resync builds it again
  from Asterisk (same Linkedid), but Asterisk tells only seconds of age and
  nothing of what UCS knew (the queue it came through, who answered, its
  account code and metadata).  The new owner had all of it in the replica it
  followed as a standby: :func:`adopt` puts it back into the live call, so the
  CDR written when it ends has the call's real start and answer times, queue,
  agent, codes and metadata, and its whole journey: the steps before the
  take-over (the queue it waited in, since when, the phones rung, who answered)
  first, then what happens after.  The owner's envelopes carry the journey's raw
  steps and each leg's times (:func:`ucs.cluster.mirror.call_to_wire`), so the
  replica has them.  A step still open at the take-over is the same step as the
  resync's for the same leg (or queue, or application): the resync's object is
  kept (the tracker goes on ending and describing it) and takes back the old
  owner's start and description, so no step is there twice.  An open step
  nothing on Asterisk goes on with (a leg that hung up during the gap) ends when
  the new owner found it gone, an upper bound.  The legs that had left the call
  before (a transferred call's first agent, a phone that rang unanswered) and
  the transfers and recordings come back too.
- **A call that ended during the gap** (after the old owner died, before the
  new one resynced): no node saw it end.  The new owner finds it in its
  replica but not on Asterisk, and writes its CDR from the replica
  (:func:`cdr_from_replica`) unless one is stored already (the old owner may
  have written it and died before telling the stream).  Its ``disconnected``
  is when the new owner found it gone, an upper bound, and its ``data`` says
  so (``ended_unseen``); the cause is the last one known.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from ucs.calls.call import Call, Cause, JourneyStep, Leg
from ucs.cluster.mirror import call_from_wire

log = Logger()

#: What the CDR's ``data`` says of a call that ended while no node owned the AMI link.
ENDED_UNSEEN = ("ended while no node owned the AMI link: disconnected is when the new owner "
                "found it gone (at most that late); the hang-up cause is the last one known")


def adopt(call: Call, known: dict[str, Any], now: float) -> None:
    """A call rebuilt by the new owner's resync (at ``now``) takes back what the old owner
    knew of it (``known``: the call as its envelopes described it)."""
    created, connected = known.get("created"), known.get("connected")
    if isinstance(created, (int, float)) and created < call.created:
        call.created = float(created)
    if isinstance(connected, (int, float)) and (call.connected is None or connected < call.connected):
        call.connected = float(connected)
    for name in ("queue", "answered_by", "account_code", "direction", "caller_name", "connected_name"):
        value = known.get(name)
        if value and not getattr(call, name, None):
            setattr(call, name, value)
    data = known.get("data")
    if isinstance(data, dict):
        call.data = {**data, **call.data}
    try:
        old = call_from_wire(known)
    except (KeyError, TypeError, ValueError) as e:
        log.warn("cluster: the history of call {uniqueid} as the old owner told it is unreadable ({e}); "
                 "its CDR's journey starts at the take-over", uniqueid=call.uniqueid, e=e)
        return
    _adopt_legs(call, old, now)
    _adopt_journey(call, old, now)
    # copies: the recordings' entries are filled in later (when one stops), the replica's stay as told
    call.transfers[:0] = [dict(t) for t in old.transfers if t not in call.transfers]
    call.recordings[:0] = [dict(r) for r in old.recordings if r not in call.recordings]
    # who monitored it (for its CDR; one still open ends at the latest with the call)
    call.monitors[:0] = [dict(m) for m in old.monitors if m not in call.monitors]
    call.recorded = call.recorded or old.recorded


def _adopt_legs(call: Call, old: Call, now: float) -> None:
    """The live legs take back their real times (when each phone began to ring, answered);
    the legs gone before the resync come back, ended, in the old owner's order."""
    for uid, leg in call.legs.items():
        was = old.legs.get(uid)
        if was is None:
            continue
        leg.created = min(leg.created, was.created)
        if was.answered is not None and (leg.answered is None or was.answered < leg.answered):
            leg.answered = was.answered
        leg.dial_status = leg.dial_status or was.dial_status
        leg.transferred = leg.transferred or was.transferred
        leg.picked_up = leg.picked_up or was.picked_up
    legs: dict[str, Leg] = {}
    for uid, was in old.legs.items():
        if uid in call.legs:
            legs[uid] = call.legs[uid]
            continue
        # Not on Asterisk any more: it ended before the resync (during the gap at the latest).
        # Its hang-up order was the old owner's count, not this tracker's: none.
        was.gone_order = 0
        if was.ended is None:
            was.ended, was.cause = now, Cause.UNKNOWN
        legs[uid] = was
    legs.update((uid, leg) for uid, leg in call.legs.items() if uid not in legs)
    call.legs = legs


def _adopt_journey(call: Call, old: Call, now: float) -> None:
    """The old owner's steps first, then the resync's that are new (see the module docstring)."""
    if not old.journey:
        return
    fresh = list(call.journey)
    live = [leg for leg in call.legs.values() if leg.ended is None]
    journey: list[JourneyStep] = []
    for step in old.journey:
        if step.end is None:
            twin = next((s for s in fresh if (s.device, s.device_type) == (step.device, step.device_type)), None)
            if twin is not None:
                fresh.remove(twin)
                if twin.description.endswith(", answered") and not step.description.endswith("answered"):
                    step.description += ", answered"  # answered during the gap
                twin.start, twin.description = min(twin.start, step.start), step.description
                journey.append(twin)
                continue
            leg = next((l for l in live if l.step is None and (l.device, l.kind) == (step.device, step.device_type)),
                       None)
            if leg is not None:
                leg.step = step  # still up, and the resync gave it no step of its own
            else:
                step.end = now
        journey.append(step)
    call.journey = journey + fresh


def needs_cdr(call: dict[str, Any]) -> bool:
    """Whether a call known only from the replica gets a CDR of its own: not a supervisor's
    monitoring session (:mod:`ucs.calls.spying`), nor a phone's dialling that turned out part
    of another call (``merged_into``) -- as on the owner that saw them end."""
    return not call.get("monitoring") and not call.get("merged_into")


def cdr_from_replica(call: dict[str, Any], found_gone: float) -> dict[str, Any]:
    """The CDR of a call known only from the replica (seed 002's Call object as the old
    owner last published it): it ended, unseen, by ``found_gone``."""
    data = {**call, "disconnected": found_gone, "ended_unseen": ENDED_UNSEEN}
    return {
        "uniqueid": call["uniqueid"],
        "direction": call.get("direction"),
        "caller_number": call.get("caller_number"),
        "caller_name": call.get("caller_name"),
        "called_number": call.get("called_number"),
        "connected_number": call.get("connected_number"),
        "connected_name": call.get("connected_name"),
        "queue": call.get("queue"),
        "answered_by": call.get("answered_by"),
        "cause": int(call.get("cause") or 0),
        "created": call.get("created"),
        "connected": call.get("connected"),
        "disconnected": found_gone,
        "account_code": call.get("account_code"),
        "metadata": dict(call.get("data") or {}),
        "journey": list(call.get("journey") or []),
        "data": data,
    }
