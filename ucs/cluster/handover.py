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

The agents' *figures* of the day (calls counted, time in each status: ``agents.stats``)
are saved every ``save_interval`` and at an agent's change -- so a call counted, or time
accrued, after the last save that arrived was lost the same way.  Each agent envelope
carries them too (``figures``: the raw figures, up to when they are accrued, ``as_of``,
:func:`ucs.cluster.mirror.wire_subject`), an ``agent.quiet`` one when only they changed;
the new owner keeps, per user, the newer of the store's and the told (:func:`newest_figures`),
and counts the time since their ``accrued_until`` in the status the agent is restored in.

A logout removes the agent from the replica; that it happened, and when, is kept here
(:class:`Departures`), so an agent whose logout was told but whose deletion was not
written is not brought back to work -- and its figures as the logout told them, which
the store may not have either.

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
#: ... and the one that carries its raw figures.
FIGURES = "figures"


class Departures:
    """The agents' logouts a standby heard, with the owner's time of each and the agent as
    the logout told it (its figures)."""

    def __init__(self) -> None:
        self.gone: dict[str, float] = {}
        #: The subject of each logout in :attr:`gone`.
        self.last: dict[str, Mapping[str, Any]] = {}

    def heard(self, e: Envelope) -> None:
        if e.category != AGENTS:
            return
        if e.event == ev.EVENT_AGENT_LOGOUT:
            self.gone[e.key] = e.at
            if isinstance(e.subject, Mapping):
                self.last[e.key] = e.subject
        else:
            self.gone.pop(e.key, None)
            self.last.pop(e.key, None)


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


def _figures_doc(subject: Mapping[str, Any]) -> dict[str, Any] | None:
    """An agent's figures as told (its subject's ``figures``), as ``agents.stats`` stores them."""
    figures = subject.get(FIGURES)
    if not isinstance(figures, Mapping) or not isinstance(figures.get("stats"), dict):
        return None  # an owner of an older UCS: the store alone says
    doc = dict(figures["stats"])
    until = figures.get("accrued_until")
    if isinstance(until, (int, float)) and not isinstance(until, bool):
        doc["accrued_until"] = float(until)
    stored = subject.get(STORED)
    as_of = figures.get("as_of", stored.get("as_of") if isinstance(stored, Mapping) else None)
    doc["as_of"] = _as_of({"as_of": as_of}) or doc.get("accrued_until", 0.0)
    return doc


def _figures_as_of(doc: Mapping[str, Any]) -> float:
    """When stored figures are of: ``as_of``, or (saved by an older UCS) up to when they were accrued."""
    return _as_of(doc) or _as_of({"as_of": doc.get("accrued_until")})


def newest_figures(stored: dict[str, Any], told: Mapping[str, Mapping[str, Any]],
                   left: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The users' figures of the day to restore (``agents.stats`` documents by key).

    :param stored: the store's ``agents.stats`` documents by key.
    :param told: the old owner's agents as the replica has them (wire subjects by user id).
    :param left: the agents whose logout was heard since, as it told them (``Departures.last``).

    Kept from what was told when newer (``as_of``: the old owner's clock, as the store's) and
    not the same figures: calls counted and time accrued after the old owner's last save."""
    docs = dict(stored)
    for key, subject in [*left.items(), *told.items()]:  # the replica's agent, logged in again, last
        doc = _figures_doc(subject)
        if doc is None:
            continue
        mine = docs.get(key)
        if not isinstance(mine, dict) or (doc["as_of"] > _figures_as_of(mine) and _content(doc) != _content(mine)):
            docs[key] = doc
    newer = sorted(k for k, d in docs.items() if d is not stored.get(k))
    if newer:
        log.info("cluster: agents' figures as the old owner told them after its last save: {newer}",
                 newer=", ".join(newer))
    return docs
