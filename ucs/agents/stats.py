"""An agent's statistics of the day, with seed 002's names.

Two kinds of figures:

*Time in a state*, accrued by :func:`accrue` from the clock whenever anything
that decides the bucket changes (status, the phone in use, a suspension) and
whenever someone reads the figures:

- ``readytime``: READY, ringing and talking included;
- ``idletime``: READY with the phone not in use (nothing ringing, no call);
- ``auxtime`` and ``auxtimes[reason]``: AUX, in total and per reason;
- ``acwtime``: ACW;
- per queue ``suspendtime``: suspended in that queue while not OFFLINE.

*Calls*, counted by :func:`count_leg` when the agent's leg (the channel of a
call on the agent's paired phone) ends.  The leg is *incoming* when the phone
was rung, *outgoing* when the phone placed the call:

- ``in_calls_answered`` / ``in_calls_unanswered``: every incoming leg, picked
  up or not (a queue call that rang this agent and was taken by another counts
  as unanswered here);
- ``out_calls_answered`` / ``out_calls_unanswered``: every outgoing leg,
  whether the far end answered;
- *agent calls from queues* only (an incoming call that went through a queue,
  ``Call.queue``; an outgoing call placed for an outgoing queue, a campaign,
  ``Call.data["outbound_id"]``): ``ringtime`` and ``talktime`` (=
  ``in_…`` + ``out_…``), ``in_ringtime``, ``in_talktime``, ``out_ringtime``,
  ``out_talktime``, ``transferred`` (the agent's leg transferred the call
  away, cause 8), ``transferred_external`` (to a destination outside the PBX:
  a trunk), and per queue ``answered``, ``unanswered``, ``ringtime``,
  ``talktime``, ``transferred``, ``transferred_external``.

A colleague the agent consults (an attended transfer) rings this phone inside
the customer's queue call (the consultation shares its ``Linkedid``), but it is
an *internal* call: counted in ``in_calls_answered`` / ``in_calls_unanswered``
only, no queue figure (:mod:`ucs.agents.counting`), unless the agent then
talked with the customer (the transfer completed, a conference): then it is
the agent's answered queue call, its ring and talk times from the consultation
on.  Each leg is counted once, also when the customer hangs up during the
consultation and the two talk on in a new internal call.

Ringing of an incoming leg lasts from its creation to its answer (or end);
talking from its answer to its end, hold included.  For an outgoing leg,
ringing lasts until the call connects.  A call is counted whole on the day
its leg ends.  Every figure is reset at midnight in the configured time zone.
Times are kept as float seconds and shown rounded to whole seconds.
"""

from __future__ import annotations

import datetime
import math
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from ucs.calls.call import Call, Cause, Leg
from ucs.constants import AgentStatus

#: Seed 002's Queue object figures an agent has per queue.
QUEUE_FIGURES = ("answered", "unanswered", "ringtime", "talktime", "transferred", "transferred_external", "suspendtime")

#: Seed 002's User object figures.
USER_FIGURES = (
    "readytime", "idletime", "auxtime", "acwtime", "ringtime", "talktime",
    "in_calls_answered", "in_calls_unanswered", "out_calls_answered", "out_calls_unanswered",
    "in_ringtime", "in_talktime", "out_ringtime", "out_talktime", "transferred", "transferred_external",
)


def seconds(value: float) -> int:
    """Whole seconds, halves rounded up (``round`` would make 2.5 into 2)."""
    return math.floor(value + 0.5 + 1e-9)


@attrs.define
class QueueStats:
    answered: int = 0
    unanswered: int = 0
    ringtime: float = 0.0
    talktime: float = 0.0
    transferred: int = 0
    transferred_external: int = 0
    suspendtime: float = 0.0

    def to_dict(self) -> dict[str, int]:
        return {name: seconds(getattr(self, name)) for name in QUEUE_FIGURES}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> QueueStats:
        return cls(**{k: doc[k] for k in QUEUE_FIGURES if isinstance(doc.get(k), (int, float))})


@attrs.define
class AgentStats:
    """One user's figures for one day (``day`` is its date, ISO, in the configured zone)."""

    day: str = ""
    readytime: float = 0.0
    idletime: float = 0.0
    auxtime: float = 0.0
    acwtime: float = 0.0
    ringtime: float = 0.0
    talktime: float = 0.0
    in_calls_answered: int = 0
    in_calls_unanswered: int = 0
    out_calls_answered: int = 0
    out_calls_unanswered: int = 0
    in_ringtime: float = 0.0
    in_talktime: float = 0.0
    out_ringtime: float = 0.0
    out_talktime: float = 0.0
    transferred: int = 0
    transferred_external: int = 0
    auxtimes: dict[str, float] = attrs.Factory(dict)
    queues: dict[int, QueueStats] = attrs.Factory(dict)

    def queue(self, queue_id: int) -> QueueStats:
        qs = self.queues.get(queue_id)
        if qs is None:
            qs = self.queues[queue_id] = QueueStats()
        return qs

    def reset(self, day: str) -> None:
        """Zero every figure, in place (agents hold this object), for ``day``."""
        fresh = AgentStats(day=day)
        for a in attrs.fields(AgentStats):
            setattr(self, a.name, getattr(fresh, a.name))

    def copy(self) -> AgentStats:
        return attrs.evolve(
            self, auxtimes=dict(self.auxtimes),
            queues={qid: attrs.evolve(qs) for qid, qs in self.queues.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """The User object's figures (whole seconds), ``auxtimes`` included; not the queues."""
        out: dict[str, Any] = {name: seconds(getattr(self, name)) for name in USER_FIGURES}
        out["auxtimes"] = {reason: seconds(t) for reason, t in self.auxtimes.items()}
        return out

    # -- storage (exact floats, not rounded) ------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {name: getattr(self, name) for name in USER_FIGURES}
        doc["day"] = self.day
        doc["auxtimes"] = dict(self.auxtimes)
        doc["queues"] = {str(qid): attrs.asdict(qs) for qid, qs in self.queues.items()}
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AgentStats:
        stats = cls(day=str(doc.get("day", "")))
        for name in USER_FIGURES:
            value = doc.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(stats, name, type(getattr(stats, name))(value))
        auxtimes = doc.get("auxtimes")
        if isinstance(auxtimes, dict):
            stats.auxtimes = {str(k): float(v) for k, v in auxtimes.items() if isinstance(v, (int, float))}
        queues = doc.get("queues")
        if isinstance(queues, dict):
            for key, qdoc in queues.items():
                try:
                    stats.queues[int(key)] = QueueStats.from_dict(qdoc)
                except (TypeError, ValueError):
                    continue
        return stats


# -- time in states ------------------------------------------------------------------------


def accrue(
    stats: AgentStats, status: AgentStatus, reason: str, busy: bool, suspended: set[int], elapsed: float
) -> None:
    """Add ``elapsed`` seconds spent in ``status`` (with ``reason``; the phone
    ``busy`` or not; suspended in the queues ``suspended``) to the figures."""
    if elapsed <= 0:
        return
    if status == AgentStatus.READY:
        stats.readytime += elapsed
        if not busy:
            stats.idletime += elapsed
    elif status == AgentStatus.AUX:
        stats.auxtime += elapsed
        stats.auxtimes[reason] = stats.auxtimes.get(reason, 0.0) + elapsed
    elif status == AgentStatus.ACW:
        stats.acwtime += elapsed
    if status != AgentStatus.OFFLINE:
        for qid in suspended:
            stats.queue(qid).suspendtime += elapsed


# -- calls ------------------------------------------------------------------------------------


def is_queue_call(call: Call) -> bool:
    return call.queue is not None or call.data.get("outbound_id") is not None


def talking(call: Call, leg: Leg) -> bool:
    """Whether a live leg is talking, as :func:`leg_times` will count it once
    it ends: an incoming leg once answered, the caller's own leg once the
    call is connected."""
    if leg.uniqueid != call.origin:
        return leg.answered is not None
    return call.connected is not None


def leg_times(call: Call, leg: Leg) -> tuple[bool, bool, float, float]:
    """(incoming, answered, ring seconds, talk seconds) of an ended leg."""
    end = leg.ended if leg.ended is not None else leg.created
    incoming = leg.uniqueid != call.origin
    if incoming:
        answered_at = leg.answered
    else:
        answered_at = call.connected if call.connected is not None and call.connected <= end else None
    if answered_at is None:
        return incoming, False, max(0.0, end - leg.created), 0.0
    return incoming, True, max(0.0, answered_at - leg.created), max(0.0, end - answered_at)


def count_leg(stats: AgentStats, call: Call, leg: Leg, queue_id: int | None, *,
              consultation: bool = False) -> bool:
    """Count one ended leg of the agent's phone.  ``queue_id`` is the directory
    queue the call came through (or was placed for), if any.  A ``consultation``
    (a colleague consulted the agent while the queue call's customer waited, and
    the agent never talked with the customer) is the internal call it is, not an
    agent call from the queue.  Returns whether the leg was a queue call the
    agent talked on."""
    incoming, answered, ring, talk = leg_times(call, leg)
    if incoming:
        if answered:
            stats.in_calls_answered += 1
        else:
            stats.in_calls_unanswered += 1
    elif answered:
        stats.out_calls_answered += 1
    else:
        stats.out_calls_unanswered += 1
    if consultation or not is_queue_call(call):
        return False
    stats.ringtime += ring
    stats.talktime += talk
    if incoming:
        stats.in_ringtime += ring
        stats.in_talktime += talk
    else:
        stats.out_ringtime += ring
        stats.out_talktime += talk
    transferred = leg.transferred or leg.cause == Cause.TRANSFER
    if transferred:
        stats.transferred += 1
    if queue_id is not None:
        qs = stats.queue(queue_id)
        if answered:
            qs.answered += 1
        else:
            qs.unanswered += 1
        qs.ringtime += ring
        qs.talktime += talk
        if transferred:
            qs.transferred += 1
    return answered


def count_external_transfer(stats: AgentStats, queue_id: int | None) -> None:
    stats.transferred_external += 1
    if queue_id is not None:
        stats.queue(queue_id).transferred_external += 1


# -- days ----------------------------------------------------------------------------------------


class Days:
    """Dates and midnights in one time zone (``zoneinfo``; DST handled)."""

    def __init__(self, timezone: str) -> None:
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"time zone {timezone!r} is not known ({e}); give an IANA name such as Europe/Prague") from None

    def day(self, ts: float) -> str:
        return datetime.datetime.fromtimestamp(ts, self.zone).date().isoformat()

    def start_of_day(self, ts: float) -> float:
        local = datetime.datetime.fromtimestamp(ts, self.zone)
        return datetime.datetime.combine(local.date(), datetime.time(0), self.zone).timestamp()

    def next_midnight(self, ts: float) -> float:
        local = datetime.datetime.fromtimestamp(ts, self.zone)
        tomorrow = local.date() + datetime.timedelta(days=1)
        return datetime.datetime.combine(tomorrow, datetime.time(0), self.zone).timestamp()
