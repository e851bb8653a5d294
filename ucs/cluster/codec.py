"""The domain events as they cross between nodes: JSON envelopes with a schema version.

What the bus carries (:mod:`ucs.events`) is ``(name, subject, args)`` with live
objects for subjects (a ``Call``, an ``Agent``, a ``Member``, a ``Device``, a
``Queue``).  Between nodes each becomes an :class:`Envelope`: the event's name,
its category (which names the NATS subject: ``calls``, ``agents``, ``queues``,
``devices``, ``pbx``), the key of the thing it is about, that thing's whole
state as its ``to_dict()`` gives it (seed 002's Call and User objects, the
model's members and devices), the args made JSON, and who published it.

Why the whole state and not a diff: applying an envelope is then "this key is
now this" (or "this key is gone"), which is idempotent and needs no history,
so a node that loads a snapshot a little older than the point it resumes the
stream from still ends with the same model (:mod:`ucs.cluster.replica`).

Why JSON and not a binary format: the subjects' ``to_dict()`` are JSON already
(the bar gets them so), operators can read the stream with the ``nats`` CLI,
and the version field ``v`` lets a node refuse what it cannot read instead of
misreading it.  ``decode(encode(e)) == e`` for every envelope.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Callable
from typing import Any

import attrs

from ucs import events as ev

#: The schema this code writes and reads.  Raise it when an envelope's meaning changes.
#: 2: a call's subject carries what each phone's view needs (its legs' Dial status,
#: origin, hold parties, raw journey), an agent's its ACW deadline, a queue's its
#: waiting callers (:func:`ucs.cluster.mirror.wire_subject`; standbys rebuild objects).
#: 3: an agent's subject carries its raw figures (``figures``: the day's statistics as
#: stored, up to when they are accrued, whether its phone is busy) and who monitors it
#: (``monitored``); :data:`AGENT_QUIET` and :data:`QUEUE_FIGURES` are new.  (Later, within
#: 3: the figures' ``as_of``, the owner's time they are of -- read as ``stored``'s when missing.)
SCHEMA_VERSION = 3

CALLS, AGENTS, QUEUES, DEVICES, PBX, STATS = "calls", "agents", "queues", "devices", "pbx", "stats"

#: A change of a call that puts no event on the bus (a phone that rings or leaves inside a
#: call that goes on: ``DomainPublisher.unpublished``): each phone's view may change, so the
#: standbys' bars must hear it too.  Not a bus event name: an envelope's only.
CALL_QUIET = "call.quiet"

#: A change of an agent that puts no event on the bus: its figures (a call on its phone
#: began, or ended and was counted) or who monitors it (ChanSpy).  The subject is the whole
#: agent, as for every agent envelope.  An envelope's name only, never a bus event.
AGENT_QUIET = "agent.quiet"

#: A queue's figures of the day as the owner counted them (:class:`QueueFigures`): the
#: standbys' wallboards show them.  An envelope's name only, never a bus event.
QUEUE_FIGURES = "queue.figures"

#: The events the AMI owner publishes, and their category.  The directory's
#: (``user.change``, ``config.change``) and shared data are in the store every
#: node reads, not here.
CATEGORIES: dict[str, str] = {
    ev.EVENT_CALL_NEW: CALLS, ev.EVENT_CALL_RINGING: CALLS, ev.EVENT_CALL_CONNECT: CALLS,
    ev.EVENT_CALL_HOLD: CALLS, ev.EVENT_CALL_RESUME: CALLS, ev.EVENT_CALL_MUTE: CALLS,
    ev.EVENT_CALL_UNMUTE: CALLS, ev.EVENT_CALL_TRANSFER: CALLS, ev.EVENT_CALL_HANGUP: CALLS,
    ev.EVENT_CALL_CHANGE: CALLS, ev.EVENT_ACCOUNT_CODE: CALLS, CALL_QUIET: CALLS,
    ev.EVENT_AGENT_STATUS: AGENTS, ev.EVENT_AGENT_LOGIN: AGENTS, ev.EVENT_AGENT_LOGOUT: AGENTS,
    ev.EVENT_AGENT_SUSPEND: AGENTS, ev.EVENT_AGENT_RESUME: AGENTS, ev.EVENT_AGENT_DEVICE: AGENTS,
    ev.EVENT_AGENT_WRAPUP: AGENTS, ev.EVENT_AGENT_MISSED: AGENTS, AGENT_QUIET: AGENTS,
    ev.EVENT_QUEUE_WAITING: QUEUES, ev.EVENT_MEMBER_ADDED: QUEUES, ev.EVENT_MEMBER_CHANGED: QUEUES,
    ev.EVENT_MEMBER_REMOVED: QUEUES,
    ev.EVENT_DEVICE_CHANGED: DEVICES,
    ev.EVENT_PBX_RESTARTED: PBX, ev.EVENT_PBX_RESYNCED: PBX,
    QUEUE_FIGURES: STATS,
}


@attrs.frozen
class QueueFigures:
    """The subject of :data:`QUEUE_FIGURES`: a queue's (Asterisk name) totals of ``day``
    (:meth:`ucs.supervisor.intervals.Intervals.day_total`), which replace what a standby had."""

    queue: str
    day: str
    figures: dict[str, float]


class CodecError(ValueError):
    """An envelope this node cannot read; the message says why and what it reads."""


@attrs.frozen
class Envelope:
    """One domain event between nodes (all fields JSON values)."""

    event: str
    category: str
    key: str
    subject: Any
    args: dict[str, Any]
    node: str = ""
    term: str = ""
    at: float = 0.0
    v: int = SCHEMA_VERSION


def key_of(name: str, subject: Any) -> str:
    """The key of what ``name``'s ``subject`` is about, within its category."""
    category = CATEGORIES.get(name)
    if subject is None:
        return ""
    if isinstance(subject, str):
        return subject
    if category == CALLS:
        return str(subject.uniqueid)
    if category == AGENTS:
        return str(subject.id)
    if name == ev.EVENT_QUEUE_WAITING:
        return str(subject.name)
    if category == QUEUES:
        return f"{subject.queue}/{subject.interface}"
    if category == DEVICES:
        return str(subject.name)
    if category == STATS:
        return str(subject.queue)
    return str(subject)


def jsonable(value: Any) -> Any:
    """``value`` as JSON values: objects by their ``to_dict()``, enums by name, sets sorted."""
    if value is None or isinstance(value, (bool, int, str)):
        return int(value) if isinstance(value, enum.IntEnum) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return value.name
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if attrs.has(type(value)):
        return jsonable(attrs.asdict(value, recurse=False))
    return str(value)


def envelope(name: str, subject: Any, args: dict[str, Any], *, node: str = "", term: str = "",
             at: float = 0.0, encode: Callable[[Any], Any] = jsonable) -> Envelope | None:
    """The envelope of a bus event, or ``None`` for one that is not shared between nodes.
    ``encode`` turns the subject into JSON values (the container's knows the domain:
    :func:`ucs.cluster.mirror.wire_subject`; this module does not)."""
    category = CATEGORIES.get(name)
    if category is None:
        return None
    return Envelope(name, category, key_of(name, subject), encode(subject), jsonable(args), node, term, at)


def to_json(value: Any) -> str:
    """``value`` (JSON values) as the compact JSON text envelopes and snapshots are made of."""
    return _dumps(value)


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def encode(e: Envelope, subject_json: str | None = None) -> bytes:
    """``e`` as UTF-8 JSON; ``subject_json`` is ``to_json(e.subject)`` when the caller has it
    already (the owner keeps it for its snapshot: each subject is encoded once)."""
    head = attrs.asdict(e, recurse=False)
    del head["subject"]
    subject = _dumps(e.subject) if subject_json is None else subject_json
    return f'{_dumps(head)[:-1]},"subject":{subject}}}'.encode()


def decode(data: bytes) -> Envelope:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise CodecError(f"not a JSON event envelope ({e}); nodes send UTF-8 JSON objects") from None
    if not isinstance(raw, dict):
        raise CodecError(f"an event envelope is a JSON object, not {type(raw).__name__}")
    v = raw.get("v")
    if v != SCHEMA_VERSION:
        raise CodecError(f"event schema version {v!r} is not supported; this node reads version {SCHEMA_VERSION} "
                         "(upgrade every node of the cluster to the same UCS version)")
    missing = _REQUIRED - raw.keys()
    if missing:
        raise CodecError(f"event envelope without {', '.join(sorted(missing))}")
    return Envelope(**{k: raw[k] for k in _FIELDS if k in raw})


_FIELDS = tuple(f.name for f in attrs.fields(Envelope))
_REQUIRED = frozenset({"event", "category", "key", "subject", "args"})
