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
"""

from __future__ import annotations

import copy
from typing import Any

from ucs import events as ev
from ucs.cluster.codec import AGENTS, CALLS, DEVICES, QUEUES, Envelope

#: Envelopes that remove what they are about.
_GONE = {ev.EVENT_CALL_HANGUP, ev.EVENT_AGENT_LOGOUT, ev.EVENT_MEMBER_REMOVED}

SNAPSHOT_VERSION = 1


class Replica:
    """Calls (by Linkedid), agents (by user id), queue members (``queue/interface``),
    queues' waiting callers (by queue) and devices (by name), as the owner told them."""

    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.members: dict[str, dict[str, Any]] = {}
        self.waiting: dict[str, Any] = {}
        self.devices: dict[str, dict[str, Any]] = {}
        #: Stream sequence of the last envelope applied (0: none).
        self.seq = 0
        #: The owner's term the contents come from (set by :meth:`load`, or by the owner itself):
        #: a new owner, or one that lost events, starts a new term, and followers reload its snapshot.
        self.term = ""

    def apply(self, e: Envelope, seq: int = 0) -> None:
        """Apply one envelope (stream sequence ``seq``; 0 when not from the stream)."""
        if seq:
            self.seq = max(self.seq, seq)
        table = self._table(e)
        if e.event == ev.EVENT_QUEUE_WAITING:
            self.waiting[e.key] = e.args.get("waiting", e.subject)
        elif e.event == ev.EVENT_ACCOUNT_CODE:
            call = self.calls.get(e.key)
            if call is not None:
                call["account_code"] = e.args.get("account_code", "")
        elif e.event == ev.EVENT_PBX_RESTARTED:
            self.calls.clear()  # Asterisk restarted: none of its calls is left
        elif table is None:
            return
        elif e.event in _GONE:
            table.pop(e.key, None)
        elif isinstance(e.subject, dict):
            table[e.key] = e.subject

    def _table(self, e: Envelope) -> dict[str, Any] | None:
        if e.category == CALLS:
            return self.calls
        if e.category == AGENTS:
            return self.agents
        if e.category == QUEUES:
            return self.members
        if e.category == DEVICES:
            return self.devices
        return None  # PBX: restarts, resyncs

    def state(self) -> dict[str, Any]:
        """The model's contents (what two nodes compare)."""
        return {"calls": self.calls, "agents": self.agents, "members": self.members, "waiting": self.waiting,
                "devices": self.devices}

    def snapshot(self) -> dict[str, Any]:
        """What a node that starts late loads: the contents, ``seq`` and ``term``."""
        return {"v": SNAPSHOT_VERSION, "seq": self.seq, "term": self.term, "state": copy.deepcopy(self.state())}

    def load(self, snapshot: dict[str, Any]) -> None:
        """Replace the contents by ``snapshot``'s (:meth:`snapshot`)."""
        if snapshot.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {snapshot.get('v')!r} is not supported; this node reads "
                             f"version {SNAPSHOT_VERSION}")
        state = snapshot["state"]
        self.calls = dict(state["calls"])
        self.agents = dict(state["agents"])
        self.members = dict(state["members"])
        self.waiting = dict(state["waiting"])
        self.devices = dict(state["devices"])
        self.seq = int(snapshot["seq"])
        self.term = str(snapshot.get("term", ""))
