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
  agent, codes and metadata.  What is not restored: the journey's steps before
  the take-over (the CDR's journey starts at the resync) and, for a call that
  was transferred before, the legs that had already left it.
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

#: What the CDR's ``data`` says of a call that ended while no node owned the AMI link.
ENDED_UNSEEN = ("ended while no node owned the AMI link: disconnected is when the new owner "
                "found it gone (at most that late); the hang-up cause is the last one known")


def adopt(call: Any, known: dict[str, Any]) -> None:
    """A call rebuilt by the new owner's resync takes back what the old owner knew of it."""
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
