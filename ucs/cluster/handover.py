"""A new owner's agents: the store's, or what the old owner told last, whichever is newer.

Why (issue 20: "agent states and queue memberships kept" across a take-over): the owner
saves an agent's state to the store at each change, through a writer that takes a few
milliseconds -- and an owner killed (``kill -9``, a crash) or cut off from PostgreSQL in
that moment never writes it.  A new owner that restored only from the store brought the
agent back as it was *before* that change: an agent just set to AUX came back READY, its
queues unpaused by the reconciliation that follows.  The standby that takes over has
heard every change the old owner published (its replica): each agent envelope carries
the same document the owner saves (``stored``, :func:`ucs.agents.persist.state_doc`),
stamped ``as_of`` by the owner's clock.  At the take-over the new owner keeps, per agent,
the newer of the two (:func:`newest`).  The store wins when the owner's last events did
not reach NATS; the replica when its last saves did not reach PostgreSQL -- also when a
demoted owner's last saves would have come after the new owner restored: those the store
refuses (the new ownership's term, :class:`ucs.store.base.Fence`).

A logout removes the agent from the replica; that it happened, and when, is kept here
(:class:`Departures`), so an agent whose logout was told but whose deletion was not
written is not brought back to work.

Plain functions and a plain class: the node feeds them (:mod:`ucs.cluster.node`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.logger import Logger

from ucs import events as ev
from ucs.cluster.codec import AGENTS, Envelope

log = Logger(namespace="ucs.cluster")

#: The key of an agent's subject that carries its stored document (``mirror.wire_subject``).
STORED = "stored"


class Departures:
    """The agents' logouts a standby heard, with the owner's time of each."""

    def __init__(self) -> None:
        self.gone: dict[str, float] = {}

    def heard(self, e: Envelope) -> None:
        if e.category != AGENTS:
            return
        if e.event == ev.EVENT_AGENT_LOGOUT:
            self.gone[e.key] = e.at
        else:
            self.gone.pop(e.key, None)


def _as_of(doc: Mapping[str, Any]) -> float:
    value = doc.get("as_of")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _content(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "as_of"}


def newest(stored: dict[str, Any], told: Mapping[str, Mapping[str, Any]],
           gone: Mapping[str, float]) -> dict[str, Any]:
    """The agents' documents to restore.

    :param stored: the store's ``agents.state`` documents by key (``orphans`` included).
    :param told: the old owner's agents as the replica has them (wire subjects by user id).
    :param gone: logouts heard since (user id -> the owner's time).
    """
    docs = dict(stored)
    for key, subject in told.items():
        doc = subject.get(STORED)
        if not isinstance(doc, dict):
            continue  # an owner of an older UCS: the store alone says
        mine = docs.get(key)
        if not isinstance(mine, dict) or (_as_of(doc) > _as_of(mine) and _content(doc) != _content(mine)):
            docs[key] = doc
    for key, at in gone.items():
        mine = docs.get(key)
        if key not in told and isinstance(mine, dict) and _as_of(mine) < at:
            del docs[key]
    newer = sorted(k for k, d in docs.items() if d is not stored.get(k))
    left = sorted(stored.keys() - docs.keys())
    if newer or left:
        log.info("cluster: agents as the old owner told them after its last save: {newer}; logged out since: "
                 "{left}", newer=", ".join(newer) or "none", left=", ".join(left) or "none")
    return docs
