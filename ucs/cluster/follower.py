"""A standby's side of the stream: its replica from the snapshot, then every event after it.

On start the follower loads the last snapshot (if any) into its
:class:`~ucs.cluster.replica.Replica` and follows the stream from the
snapshot's sequence on (an ordered consumer: nats-py mends gaps and
reconnects).  It also hears each new snapshot's manifest; one of another term (a
new owner, or an owner that lost events) makes it fetch the body, which replaces
the replica, and the stream is followed again from that snapshot's sequence.  A
manifest of the term it follows costs nothing more (issue 20: decoding every
body a standby heard, and one every 5 s, cost each standby ~3.5 % of a core at
5,000 idle agents).  ``on_event(envelope)`` is the
seam for what else a standby does with each event (its hub, its bars).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ucs.cluster.codec import Envelope
from ucs.cluster.replica import Replica
from ucs.cluster.stream import EventStream, Manifest

log = Logger(namespace="ucs.cluster")


class Follower:
    def __init__(self, stream: EventStream, replica: Replica | None = None, *,
                 on_event: Callable[[Envelope], Any] = lambda e: None,
                 on_reload: Callable[[], Any] = lambda: None,
                 clock: IReactorTime | None = None, check_every: float = 5.0) -> None:
        self.stream = stream
        #: With a clock, the last snapshot is also read every ``check_every`` seconds: the watch
        #: of the snapshots has been seen to miss a new term's snapshot after a NATS server
        #: restart, which would leave this node following an owner's term that has ended.
        self._check: LoopingCall | None = None
        if clock is not None:
            self._check = LoopingCall(self._check_snapshot)
            self._check.clock = clock
        self._check_every = check_every
        self.replica = replica if replica is not None else Replica()
        self.on_event = on_event
        self.on_reload = on_reload
        self.running = False
        self._sub: Any = None
        self._watch: Any = None
        self._reloading: Deferred[None] | None = None
        self._following = False
        #: The sequence the stream was (last) followed from: the snapshot's, 0 without one.
        self.started_from = 0
        self._heard: Manifest | None = None  # a snapshot heard while starting

    async def start(self) -> None:
        self.running = True
        self._watch = await self.stream.watch_snapshots(self._snapshot)
        manifest = await self.stream.get_manifest()
        snapshot = await self.stream.get_body(manifest) if manifest is not None else None
        if snapshot is not None:
            self.replica.load(snapshot)
        self.started_from = self.replica.seq
        if self.running:
            self._sub = await self.stream.follow(self.replica.seq, self._event)
        self._following = True
        heard, self._heard = self._heard, None
        if heard is not None:
            self._snapshot(heard)
        if self._check is not None and self.running:
            self._check.start(self._check_every, now=False)

    def _check_snapshot(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self.catch_up())

    async def stop(self) -> None:
        self.running = False
        if self._check is not None and self._check.running:
            self._check.stop()
        for sub in (self._sub, self._watch):
            if sub is not None:
                try:
                    await self.stream.unfollow(sub)
                except Exception as e:  # the link is gone: so is the subscription
                    log.debug("cluster: unsubscribing: {e}", e=e)
        self._sub = self._watch = None

    async def catch_up(self, link_back: bool = False) -> None:
        """The NATS link is back (or it is time to check): a snapshot put while it was away (a new
        owner's term, or the owner's after it lost events) was not heard by the watch; read the
        last one now.  ``link_back``: the stream's consumer is also made again from the last
        sequence applied (issue 20: after a NATS server restart the old one was seen to deliver
        nothing, while the owner's events sent meanwhile were in the stream)."""
        if not self._following or not self.running:
            return
        if link_back and self._reloading is None:
            self._reloading = Deferred.fromCoroutine(self._refollow())
            await self._reloading
        try:
            manifest = await self.stream.get_manifest()
        except Exception as e:  # the link went again: its next "up" asks again
            log.warn("cluster: reading the last snapshot's manifest: {e}", e=e)
            return
        if manifest is not None and manifest.term != self.replica.term:
            self._snapshot(manifest)

    async def _refollow(self) -> None:
        try:
            sub, self._sub = self._sub, None
            if sub is not None:
                try:
                    await self.stream.unfollow(sub)
                except Exception as e:  # a consumer the restarted server no longer has
                    log.debug("cluster: unsubscribing: {e}", e=e)
            if self.running:
                log.info("cluster: NATS is back: following the stream again after sequence {seq}",
                         seq=self.replica.seq)
                self._sub = await self.stream.follow(self.replica.seq, self._event)
        except Exception as e:  # the link went again, or JetStream is not ready: the timer's check
            log.warn("cluster: following the stream again after NATS came back: {e}", e=e)
        finally:
            self._reloading = None
        heard, self._heard = self._heard, None
        if heard is not None:
            self._snapshot(heard)

    def _event(self, e: Envelope, seq: int) -> None:
        if seq <= self.replica.seq:  # already in the snapshot loaded
            return
        self.replica.apply(e, seq)
        self.on_event(e)

    def _snapshot(self, manifest: Manifest) -> None:
        if not self._following or self._reloading is not None:
            self._heard = manifest  # looked at once started, or once this reload is done
            return
        if manifest.term != self.replica.term and self.running:
            self._reloading = Deferred.fromCoroutine(self._reload())

    async def _reload(self) -> None:
        try:
            # The last manifest's body (it may be newer than the manifest that sent for it: as good;
            # the body that one named may be gone already, a newer term's first snapshot removed it).
            try:
                manifest = await self.stream.get_manifest()
                snapshot = await self.stream.get_body(manifest) if manifest is not None else None
            except Exception as e:  # the link went, or the body was replaced while read: the timer's check
                log.warn("cluster: reading the snapshot of a new term: {e}", e=e)
                return
            if snapshot is None or not self.running or snapshot.get("term") == self.replica.term:
                return
            log.info("cluster: following term {term} from sequence {seq}", term=snapshot.get("term"),
                     seq=snapshot.get("seq"))
            if self._sub is not None:
                sub, self._sub = self._sub, None
                await self.stream.unfollow(sub)
            self.replica.load(snapshot)
            self.started_from = self.replica.seq
            if self.running:
                self._sub = await self.stream.follow(self.replica.seq, self._event)
            self.on_reload()
        finally:
            self._reloading = None
            heard, self._heard = self._heard, None
            if heard is not None:
                self._snapshot(heard)
