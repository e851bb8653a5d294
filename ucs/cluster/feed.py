"""The owner's side of the stream: its bus's domain events out, and its snapshots.

The owner hears everything on its bus (``subscribe_all``, like the hub), turns
each domain event into an envelope (:mod:`ucs.cluster.codec`), applies it to
its own :class:`~ucs.cluster.replica.Replica` and queues it for the stream.
Every ``snapshot_interval`` it stores that replica with the sequence of the
last envelope the stream acknowledged.

A *term* is one continuous run of this node's envelopes: it starts when the
node becomes the owner (with the state its model has then, ``initial()``),
and its first snapshot is stored at once.  Followers that see a snapshot of a
term they do not follow reload it, so a gap never stays.

When an envelope cannot be published (NATS away, or not answering) the feed is
*broken*: it stops queueing (what it would queue is lost anyway, and the model
goes on without it) and starts a new term -- from the model as it is then --
when the link is up again (:meth:`OwnerFeed.link_changed`) or, failing that
news, at the next snapshot time: at most one attempt per ``snapshot_interval``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ucs.bus import EventBus
from ucs.cluster.codec import CALL_QUIET, Envelope, envelope, jsonable, to_json
from ucs.cluster.replica import Replica
from ucs.cluster.stream import EventStream, Manifest, Superseded, term_began

log = Logger(namespace="ucs.cluster")


class OwnerFeed:
    """While started: the bus's domain events to the stream, snapshots to the bucket."""

    def __init__(self, bus: EventBus, stream: EventStream, clock: Any, node: str, *,
                 snapshot_interval: float = 10.0, initial: Callable[[], Iterable[Envelope]] = tuple,
                 encode: Callable[[Any], Any] = jsonable) -> None:
        self.bus = bus
        self.stream = stream
        self.clock = clock
        self.node = node
        self.snapshot_interval = snapshot_interval
        self.initial = initial
        #: How a subject becomes JSON (issue 20, bars on standbys: ``mirror.wire_subject``).
        self.encode = encode
        self.replica = Replica(keep_json=True)
        self.running = False
        self._terms = 0
        self._snapshots = LoopingCall(self.store_snapshot)
        self._snapshots.clock = clock
        self._dirty = False
        self._broken = False
        #: Told when :attr:`broken` changes (the node tells its bars: NATS answers it, but its
        #: events do not reach the others -- a NATS cluster split leaves its server alone).
        self.on_broken: Callable[[bool], Any] = lambda broken: None
        #: A newer term of another node seen while this one publishes: two owners (``/health``).
        self.conflict = ""
        self._started_at = 0

    @property
    def broken(self) -> bool:
        """An envelope could not be published: nothing is queued until a new term starts."""
        return self._broken

    @broken.setter
    def broken(self, broken: bool) -> None:
        if broken != self._broken:
            self._broken = broken
            self.on_broken(broken)

    def start(self) -> None:
        """Begin a term with the model as it is, then follow the bus."""
        self.running = True
        self.broken = False
        self.conflict = ""
        self._started_at = int(self.clock.seconds() * 1000)
        self.stream.on_lost = self._lost
        self.bus.subscribe_all(self._heard)
        self.new_term()
        self._snapshots.start(self.snapshot_interval, now=False)

    def stop(self) -> None:
        self.running = False
        self.bus.unsubscribe_all(self._heard)
        if self._snapshots.running:
            self._snapshots.stop()
        self.stream.stop_publishing()

    def new_term(self) -> None:
        """Start over: the replica from the model as it is now, and a snapshot at once."""
        if not self.running:
            return
        self._terms += 1
        self.replica = Replica(keep_json=True)
        self.replica.term = f"{self.node}:{int(self.clock.seconds() * 1000)}:{self._terms}"
        for e in self.initial():
            self._send(e)
        log.info("cluster: {node} publishes term {term}", node=self.node, term=self.replica.term)
        self._dirty = True
        self.clock.callLater(0, self.store_snapshot)

    def _lost(self) -> None:
        if not self.broken and self.running:
            self.broken = True
            log.warn("cluster: {node} stops publishing until NATS answers again (then a new term)", node=self.node)

    def link_changed(self, state: str) -> None:
        """The NATS link is ``up`` again (or went ``down``): a broken feed starts a new term."""
        if state == "up" and self.broken and self.running:
            self.broken = False
            self.new_term()

    def heard_snapshot(self, manifest: Manifest) -> None:
        """A snapshot was stored (:meth:`EventStream.watch_snapshots`): one of another node's
        term that began after this node became the owner means two nodes own the AMI link --
        two election keys (a store database or an Asterisk written differently).  Said loudly;
        nothing is stopped (neither can tell which is right).  An older term is a late snapshot
        of the owner before this one, and is no conflict."""
        term = manifest.term
        node = term.rsplit(":", 2)[0]
        began = term_began(term)
        if began is None:
            return
        if not self.running or node == self.node or began < self._started_at or term == self.conflict:
            return
        self.conflict = term
        log.critical("cluster: node {other} publishes as the AMI owner of {domain} (term {term}) while {node} owns "
                     "it: two owners. Every node must use the same store database and name the Asterisk the same "
                     "way ([cluster] pbx, or [ami] host:port); see docs/cluster.md", other=node,
                     domain=self.stream.names.domain, term=term, node=self.node)

    def _heard(self, name: str, subject: Any, args: dict[str, Any]) -> None:
        if self.broken:
            return
        e = envelope(name, subject, args, node=self.node, term=self.replica.term, at=self.clock.seconds(),
                     encode=self.encode)
        if e is not None:
            self._send(e)

    def restate(self, name: str, subject: Any) -> None:
        """Tell the term what changed in the model without a bus event: the agents as the new
        owner's first resync left them (:meth:`ClusterNode._restate`)."""
        if self.running:
            self._heard(name, subject, {})

    def quiet(self, subject: Any) -> None:
        """A change of a call the bus says nothing about (:data:`~ucs.cluster.codec.CALL_QUIET`)."""
        if self.running:
            self._heard(CALL_QUIET, subject, {})

    def _send(self, e: Envelope) -> None:
        subject = to_json(e.subject)  # once, for the stream and the snapshot
        self.replica.apply(e, subject_json=subject)
        self.stream.publish(e, subject)
        self._dirty = True

    def store_snapshot(self) -> Deferred[Any] | None:
        """Store the replica (when it changed) with the last acknowledged sequence: here only
        the lists of its entries' JSON are copied (:meth:`Replica.frozen`); the body is made
        and stored off the reactor thread."""
        if self.running and self.broken:  # no news of the link: try a new term now and then
            self.broken = False
            self.new_term()
            return None
        if not self.running or not self._dirty:
            return None
        self._dirty = False
        self.replica.seq = self.stream.acked_seq
        d = self.stream.put_snapshot(self.replica.frozen())

        def failed(f: Any) -> None:
            if f.check(Superseded):  # a later owner's term: this one's snapshot would take the nodes back
                log.warn("cluster: {node}'s snapshot was not stored: {e}", node=self.node, e=f.getErrorMessage())
                return
            self._dirty = True  # try again next time
            log.warn("cluster: the snapshot could not be stored: {e}", e=f.getErrorMessage())

        return d.addCallbacks(lambda _: None, failed)
