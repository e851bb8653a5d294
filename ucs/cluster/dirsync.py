"""Directory changes made on one node reach every node's in-memory directory (issue 20).

The directory lives in the shared store, but each node reads it into memory
at start and answers logins, pairings and the agents' queues from there.  A
change (``config.users.edit`` on node B, a CSV import, ``ucs-admin`` through a
node) is written to the store by the node that makes it, which then says so on
``ucs.<domain>.directory`` — ``{"v": 1, "node", "kind", "id", "action"}``, plain
NATS, no payload of the entity (the store is the truth).  Every other node
reads those entities again from the store and applies them as its own changes
(the same objects; ``user.change`` / ``config.change`` on its bus, so the
owner's agents reconcile their queues and every node's bars are told), marked
``origin="cluster"`` so that they are not announced again.

Notices arriving in one turn are read in one batch per kind.  A node that was
away from NATS (a reconnect) may have missed notices: it reads every kind
again (:meth:`DirectorySync.catch_up`).

Two nodes *adding* entities of one kind at the same instant may pick the same
id (each allocates from memory): the store inserts a new entity's row only if
the id is free, so the second node's write fails, reads the first one's entity
and takes the next id (:meth:`ucs.directory.directory.Directory.apply`).  The
same store decides the rest of what two nodes may do at one instant, before
either has heard the other's notice: a name that must be one entity's is claimed
(:mod:`ucs.directory.claims`), and an edit or deletion is written only over the
revision the node read (``rev``), else the entity is read again and the change
planned over the other node's.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ucs import events as ev
from ucs.bus import EventBus
from ucs.cluster.natslink import Names, NatsLink, read_notice

log = Logger(namespace="ucs.cluster")

VERSION = 1
KINDS = ("users", "groups", "teams", "queues", "lines", "auxreasons", "callreasons")
#: What a directory notice must be (said when one is not).
ACCEPTED = f'{{"v": {VERSION}, "node": "...", "kind": one of {", ".join(KINDS)}, "id": an integer, "action": "..."}}'


class Refreshable(Protocol):
    """What the sync needs of :class:`ucs.directory.directory.Directory`."""

    async def refresh(self, kind: str, ids: Any = None) -> int: ...


def _check(notice: dict[str, Any]) -> None:
    kind, entity_id = notice["kind"], notice["id"]
    if kind not in KINDS or not isinstance(entity_id, int):
        raise ValueError(f"kind {kind!r}, id {entity_id!r}")


def subject(names: Names) -> str:
    return f"ucs.{names.slug}.directory"


class DirectorySync:
    def __init__(self, link: NatsLink, names: Names, bus: EventBus, directory: Refreshable, node: str,
                 reactor: Any) -> None:
        self.link = link
        self.names = names
        self.bus = bus
        self.directory = directory
        self.node = node
        self._reactor = reactor
        self._sub: Any = None
        self._pending: dict[str, set[int]] = {}
        self._scheduled = False
        #: Changes applied from other nodes (for /health and tests).
        self.applied = 0

    def start(self) -> Deferred[None]:
        """Announce this node's changes and hear the others'; fires once subscribed."""
        self.bus.subscribe(ev.EVENT_CONFIG_CHANGE, self._local_change)
        cb = self.link.bridge.callback(self._heard)
        nc = self.link.nc

        async def subscribe() -> Any:
            sub = await nc.subscribe(subject(self.names), cb=cb)
            await nc.flush()
            return sub

        def subscribed(sub: Any) -> None:
            self._sub = sub

        return self.link.bridge.run(subscribe).addCallback(subscribed)

    def stop(self) -> Deferred[None]:
        self.bus.unsubscribe(ev.EVENT_CONFIG_CHANGE, self._local_change)
        sub, self._sub = self._sub, None

        async def unsubscribe() -> None:
            if sub is not None:
                try:
                    await sub.unsubscribe()
                except Exception as e:  # NATS closed already: the subscription went with it
                    log.debug("cluster: unsubscribing the directory notices: {e}", e=e)

        return self.link.bridge.run(unsubscribe)

    def catch_up(self) -> Deferred[None]:
        """Read every kind again (after a NATS outage: notices may have been missed)."""
        return Deferred.fromCoroutine(self._refresh({kind: None for kind in KINDS}))

    # --- this node's changes --------------------------------------------------------------

    def _local_change(self, entity: Any, args: dict[str, Any]) -> None:
        if args.get("origin") == "cluster":
            return  # another node's change, applied here
        kind, entity_id = args.get("kind"), getattr(entity, "id", None)
        if not isinstance(kind, str) or not isinstance(entity_id, int):
            return
        data = json.dumps({"v": VERSION, "node": self.node, "kind": kind, "id": entity_id,
                           "action": args.get("action")}).encode()
        nc = self.link.nc
        if nc is None or not nc.is_connected:
            log.warn("cluster: directory change ({kind} {id}) not announced: NATS is away; the other nodes "
                     "read the directory again when they reconnect", kind=kind, id=entity_id)
            return
        d = self.link.bridge.run(nc.publish, subject(self.names), data)
        d.addErrback(lambda f: log.warn("cluster: directory change ({kind} {id}) not announced: {e}",
                                        kind=kind, id=entity_id, e=f.getErrorMessage()))

    # --- the others' --------------------------------------------------------------------------

    def _heard(self, msg: Any) -> None:
        notice = read_notice(msg.data, VERSION, self.node, what="a directory notice", accepted=ACCEPTED,
                             check=_check)
        if notice is None:
            return
        kind, entity_id = notice["kind"], notice["id"]
        self._pending.setdefault(kind, set()).add(entity_id)
        if not self._scheduled:
            self._scheduled = True
            self._reactor.callLater(0, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        # Many ids of one kind (an import): one read of the whole kind.
        batch: dict[str, set[int] | None] = {k: (ids if len(ids) <= 50 else None) for k, ids in pending.items()}
        Deferred.fromCoroutine(self._refresh(batch)).addErrback(
            lambda f: log.failure("cluster: reading the directory's changes failed", f))

    async def _refresh(self, batch: dict[str, set[int] | None]) -> None:
        for kind in KINDS:
            if kind in batch:
                self.applied += await self.directory.refresh(kind, batch[kind])
