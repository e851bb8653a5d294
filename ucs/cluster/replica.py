"""The model every node keeps from the owner's events: calls, agents, queues, devices.

A plain class fed envelopes (:mod:`ucs.cluster.codec`), like the rest of UCS's
domain state.  The owner keeps one too, fed by its own bus through the same
encoding, so the owner's replica and every standby's are built by the same
code from the same envelopes: "a late joiner has the same state" is a
comparison of two :class:`Replica`.

Each envelope says "this key is now this" or "this key is gone", so applying
the same envelopes twice (a snapshot a little older than the point the stream
resumes from) ends in the same state.  ``seq`` is the stream sequence of the
last envelope applied; the snapshot carries it, and a node resumes the stream
after it.

The owner's replica also keeps each entry as the JSON it was sent in
(``keep_json``): its snapshot is then a join of strings taken on the reactor
thread in a moment, and the text, its compression and its upload are made
elsewhere (:meth:`Replica.frozen`, :func:`encode_body`).  Issue 20: at 10,000
agents the former deep copy + ``json.dumps`` + zlib of the whole model held the
owner's reactor ~0.7 s every ``snapshot_interval`` (bench/cluster_snapshot.py).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import attrs

from ucs import events as ev
from ucs.cluster.codec import AGENTS, CALLS, DEVICES, QUEUES, STATS, Envelope, to_json

#: Envelopes that remove what they are about.
_GONE = {ev.EVENT_CALL_HANGUP, ev.EVENT_AGENT_LOGOUT, ev.EVENT_MEMBER_REMOVED}

#: 2: a small manifest in the bucket, the body in the object store (:mod:`ucs.cluster.stream`).
#: 3: one body per term, named by the manifest; the manifest written only over an older term's;
#: the table ``figures``.
SNAPSHOT_VERSION = 3

#: ``figures``: each queue's figures of the day (``queue.figures``), for a late standby's wallboard.
_TABLES = ("calls", "agents", "members", "waiting", "devices", "figures")
#: The table of each category's entries (queue waiting callers apart).
_TABLE_OF = {CALLS: "calls", AGENTS: "agents", QUEUES: "members", DEVICES: "devices", STATS: "figures"}


@attrs.frozen
class Frozen:
    """A replica's contents at one moment, as JSON fragments: what :func:`encode_body` needs,
    taken on the reactor thread; the rest happens off it."""

    seq: int
    term: str
    tables: dict[str, list[str]]  # table -> ['"key":value', ...]

    @property
    def entries(self) -> int:
        return sum(len(t) for t in self.tables.values())


#: Entries joined, encoded and compressed at a time by :func:`encode_body`.
_BATCH = 500


def encode_body(frozen: Frozen) -> bytes:
    """The snapshot's body: zlib-compressed JSON ``{"v", "seq", "term", "state"}``.  Call it off
    the reactor: it is made and compressed a few hundred entries at a time, so the reactor
    thread is never kept from the GIL for more than a moment (zlib lets it run meanwhile)."""
    z = zlib.compressobj(1)
    head = to_json({"v": SNAPSHOT_VERSION, "seq": frozen.seq, "term": frozen.term})[:-1]  # without its "}"
    out = [z.compress(f'{head},"state":{{'.encode())]
    for i, name in enumerate(_TABLES):
        out.append(z.compress(f'{"," if i else ""}"{name}":{{'.encode()))
        entries = frozen.tables.get(name, [])
        for start in range(0, len(entries), _BATCH):
            piece = ",".join(entries[start:start + _BATCH])
            out.append(z.compress(f'{"," if start else ""}{piece}'.encode()))
        out.append(z.compress(b"}"))
    out.append(z.compress(b"}}"))  # the state, the body
    out.append(z.flush())
    return b"".join(out)


def decode_body(data: bytes) -> dict[str, Any]:
    """A body made by :func:`encode_body`, as the dict :meth:`Replica.load` takes."""
    try:
        snapshot: dict[str, Any] = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError) as e:
        raise ValueError(f"not a UCS snapshot body ({e}); the owner stores zlib-compressed JSON") from None
    if not isinstance(snapshot, dict):
        raise ValueError("not a UCS snapshot body: a JSON object is expected")
    return snapshot


class Replica:
    """Calls (by Linkedid), agents (by user id), queue members (``queue/interface``),
    queues' waiting callers (by queue), devices (by name) and queues' figures of the day
    (by queue), as the owner told them."""

    def __init__(self, *, keep_json: bool = False) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, Any] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        self.figures: dict[str, dict[str, Any]] = {}
        #: Stream sequence of the last envelope applied (0: none).
        self.seq = 0
        #: The owner's term the contents come from (set by :meth:`load`, or by the owner itself):
        #: a new owner, or one that lost events, starts a new term, and followers reload its snapshot.
        self.term = ""
        #: With ``keep_json``: each entry as the ``"key":value`` JSON it is in the snapshot.
        self._json: dict[str, dict[str, str]] | None = {t: {} for t in _TABLES} if keep_json else None

    def apply(self, e: Envelope, seq: int = 0, subject_json: str | None = None) -> None:
        """Apply one envelope (stream sequence ``seq``; 0 when not from the stream);
        ``subject_json`` is its subject's JSON when the caller has it already."""
        if seq:
            self.seq = max(self.seq, seq)
        table = self._table(e)
        if e.event == ev.EVENT_QUEUE_WAITING:
            value = self.waiting[e.key] = e.args.get("waiting", e.subject)
            self._keep("waiting", e.key, value, subject_json if "waiting" not in e.args else None)
        elif e.event == ev.EVENT_ACCOUNT_CODE:
            call = self.calls.get(e.key)
            if call is not None:
                call["account_code"] = e.args.get("account_code", "")
                self._keep("calls", e.key, call)
        elif e.event == ev.EVENT_PBX_RESTARTED:
            self.calls.clear()  # Asterisk restarted: none of its calls is left
            if self._json is not None:
                self._json["calls"].clear()
        elif table is None:
            return
        elif e.event in _GONE:
            table.pop(e.key, None)
            if self._json is not None:
                self._json[_TABLE_OF[e.category]].pop(e.key, None)
        elif isinstance(e.subject, dict):
            table[e.key] = e.subject
            self._keep(_TABLE_OF[e.category], e.key, e.subject, subject_json)

    def _keep(self, table: str, key: str, value: Any, value_json: str | None = None) -> None:
        if self._json is not None:
            self._json[table][key] = f"{to_json(key)}:{to_json(value) if value_json is None else value_json}"

    def _table(self, e: Envelope) -> dict[str, Any] | None:
        if e.category == CALLS:
            return self.calls
        if e.category == AGENTS:
            return self.agents
        if e.category == QUEUES:
            return self.members
        if e.category == DEVICES:
            return self.devices
        if e.category == STATS:
            return self.figures
        return None  # PBX: restarts, resyncs

    def state(self) -> dict[str, Any]:
        """The model's contents (what two nodes compare)."""
        return {"calls": self.calls, "agents": self.agents, "members": self.members, "waiting": self.waiting,
                "devices": self.devices, "figures": self.figures}

    def frozen(self) -> Frozen:
        """The contents now, for :func:`encode_body` (a replica made with ``keep_json``): a copy
        of the lists of JSON fragments, so the model may change while the body is made."""
        if self._json is None:
            raise ValueError("this replica keeps no JSON of its entries: make it with Replica(keep_json=True)")
        return Frozen(self.seq, self.term, {t: list(d.values()) for t, d in self._json.items()})

    def load(self, snapshot: dict[str, Any]) -> None:
        """Replace the contents by ``snapshot``'s (:func:`decode_body`)."""
        if snapshot.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snapshot.get('v')!r} is not supported; this node reads "
                             f"version {SNAPSHOT_VERSION}")
        state = snapshot["state"]
        self.calls = dict(state["calls"])
        self.agents = dict(state["agents"])
        self.members = dict(state["members"])
        self.waiting = dict(state["waiting"])
        self.devices = dict(state["devices"])
        self.figures = dict(state.get("figures") or {})
        self.seq = int(snapshot["seq"])
        self.term = str(snapshot.get("term", ""))
        if self._json is not None:
            self._json = {t: {k: f"{to_json(k)}:{to_json(v)}" for k, v in getattr(self, t).items()} for t in _TABLES}
