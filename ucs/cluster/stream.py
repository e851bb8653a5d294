"""The owner's events on NATS JetStream, and the snapshot a late node starts from.

- **The stream** (``UCS_<domain>_EVENTS``, subjects ``ucs.<domain>.events.>``,
  file storage, oldest dropped past ``[cluster] stream_max_age`` or
  :data:`MAX_MSGS`): the owner publishes each domain event's envelope
  (:mod:`ucs.cluster.codec`) on ``ucs.<domain>.events.<category>`` in bus order,
  **pipelined**: one publisher task writes them on the node's one connection in
  order (so the stream's order is the bus's) with up to :data:`WINDOW` waiting for
  their acknowledgement (nats-py's ``publish_async``), and a second task takes the
  acknowledgements in that same order: ``acked_seq`` is the sequence of the last
  envelope acknowledged with every one before it.  Issue 20: one at a time, each
  awaiting its acknowledgement, the owner sent ~3,600 envelopes/s and 5,000 logins
  kept the standbys seconds behind.
- **The snapshot**, in two parts.  Its **body** -- the owner's
  :class:`~ucs.cluster.replica.Replica` as zlib-compressed JSON -- is an object of
  the object store ``ucs_<domain>_snapshots`` (nats-py splits it in 128 KiB chunks:
  no ``max_payload`` limit), one per term (``snapshot-<term>``).  Its **manifest**
  -- version, term, sequence, the body's name, size and digest, a few hundred bytes
  of JSON -- is the key ``snapshot`` of the bucket ``ucs_<domain>`` (history 1), put
  after the body.  The owner stores both every ``snapshot_interval`` when something
  changed, and when it starts a term.  Followers read and watch only the manifest (a
  put is also a message on ``$KV.<bucket>.snapshot``); they fetch and decode the body
  it names only when its term is not the one they follow, or when they start.  The
  body fetched may be newer than the manifest that sent for it (the owner stored
  another of the same term meanwhile): it says its own term and sequence, and is as
  good.  A node that loads it resumes the stream right after its sequence
  (:meth:`EventStream.follow`); envelopes are idempotent, so a snapshot a little
  older than its sequence says is harmless.
- **The last word is the newest term's.**  An owner that stepped down (or was cut
  off, or killed mid-put) may still be storing a snapshot when the next owner stores
  its first: the manifest is written only over one of the same or an older term
  (compare-and-set on the key's revision), and each term's body has its own name, so
  a late snapshot never replaces a newer term's manifest *or body* (issue 20: it did,
  and followers stayed on the old term, its ghosts included, until the new owner's
  model changed).  A term's first manifest removes the bodies of older terms.
  Terms are ordered by the time they began (``node:ms:n``): the nodes' clocks are
  assumed set by NTP, as for :mod:`ucs.cluster.handover`.

Everything here runs nats-py's coroutines through the node's
:class:`~ucs.cluster.aio.AsyncioBridge` and hands back Deferreds; callbacks
run on the reactor thread.  Making and reading a body (zlib, JSON) runs in the
loop's default executor, off the reactor thread.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ucs.cluster.codec import CodecError, Envelope, decode, encode, to_json
from ucs.cluster.natslink import NatsLink, Names
from ucs.cluster.replica import SNAPSHOT_VERSION, Frozen, decode_body, encode_body

log = Logger(namespace="ucs.cluster")

#: Events kept in the stream at most (besides ``stream_max_age``).
MAX_MSGS = 1_000_000
#: Envelopes waiting to be published at most: past it (NATS away for long) they are
#: dropped and the owner starts a new term, whose snapshot puts every node right.
MAX_BACKLOG = 100_000
#: Envelopes sent and not acknowledged yet at most; the publisher waits past it.
WINDOW = 1000
#: The snapshot's key in the bucket (its manifest).
KEY = "snapshot"
#: Copies of the stream, the bucket and the object store made in a NATS cluster (3 servers
#: or more): a majority of them survives one server's loss, or its split from the others.
CLUSTER_REPLICAS = 3
#: Seconds a follower waits for a body at most (the owner may replace it while it reads), plus
#: a second per :data:`BODY_RATE` bytes of it.  Issue 20, a NATS cluster split and mended: a
#: body read just after was seen to wait for its chunks for good (nats-py's ordered consumer
#: on the object store, the servers' JetStream still answering "temporarily unavailable"), and
#: every follower stood on the old term until this ran out (it was 30 s for any body); the next
#: check reads it again.
BODY_TIMEOUT = 8.0
#: Bytes a second a body is read at, at least (a slow link), for its timeout.
BODY_RATE = 128 * 1024


@attrs.frozen
class Manifest:
    """What a follower reads to decide whether it needs the body: the owner's term, the
    sequence the body resumes after, the body's size (compressed) and digest."""

    term: str
    seq: int
    size: int
    digest: str
    body: str = ""
    entries: int = 0
    v: int = SNAPSHOT_VERSION

    def encode(self) -> bytes:
        return to_json(attrs.asdict(self)).encode()


def read_manifest(data: bytes) -> Manifest:
    """The bucket's ``snapshot`` value; a clear error for one this node cannot read."""
    try:
        raw = json.loads(data)
    except ValueError:
        try:
            json.loads(zlib.decompress(data))
        except (zlib.error, ValueError):
            raise ValueError("not a UCS snapshot manifest (the owner stores a JSON object)") from None
        raise ValueError(f"the bucket holds a snapshot of version 1 (one compressed value); this node reads version "
                         f"{SNAPSHOT_VERSION}: upgrade every node of the cluster to the same UCS version") from None
    if not isinstance(raw, dict):
        raise ValueError("not a UCS snapshot manifest (the owner stores a JSON object)")
    if raw.get("v") != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {raw.get('v')!r} is not supported; this node reads version "
                         f"{SNAPSHOT_VERSION}: upgrade every node of the cluster to the same UCS version")
    try:
        return Manifest(term=str(raw["term"]), seq=int(raw["seq"]), size=int(raw["size"]), digest=str(raw["digest"]),
                        body=str(raw["body"]), entries=int(raw.get("entries", 0)))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"a UCS snapshot manifest without a valid {e}") from None


def term_began(term: str) -> int | None:
    """When (ms since the epoch) a term began, from its name ``<node>:<ms>:<n>``; ``None`` for
    a name not made so."""
    try:
        return int(term.rsplit(":", 2)[-2])
    except (IndexError, ValueError):
        return None


def older(term: str, than: str) -> bool:
    """Whether ``term`` began before ``than`` (a name not made by a feed counts as oldest)."""
    a, b = term_began(term), term_began(than)
    return b is not None and (a is None or a < b)


def body_name(term: str) -> str:
    """The object holding a term's body."""
    return f"snapshot-{term}"


class Superseded(Exception):
    """A newer term's snapshot is stored: this (older) one was not."""


class EventStream:
    """The stream and the snapshot of one instance domain, on one node's link."""

    def __init__(self, link: NatsLink, names: Names, *, max_age: float = 3600.0,
                 publish_timeout: float = 5.0) -> None:
        self.link = link
        self.bridge = link.bridge
        self.names = names
        self.max_age = max_age
        self.publish_timeout = publish_timeout
        #: Sequence of the last envelope this node published that the stream acknowledged,
        #: with every envelope it published before.
        self.acked_seq = 0
        #: Envelopes this node could not publish (NATS away, backlog full).
        self.lost = 0
        #: Snapshot bodies this node fetched (a follower: at start, and once per new term).
        self.bodies_read = 0
        self.on_lost: Callable[[], Any] = lambda: None
        self._queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._kv: Any = None
        self._objects: Any = None

    # --- set-up ------------------------------------------------------------------------

    def ensure(self) -> Deferred[None]:
        """Create the stream, the bucket and the object store, or bring the stream's limits
        in line (every node may).

        Replicas: in a NATS *cluster* each is made with :data:`CLUSTER_REPLICAS` copies, so that
        the side of a split that keeps a majority of the servers keeps them (with one copy, the
        server holding it on the other side takes the stream away from the standbys, or from the
        owner).  A stream, bucket or store that exists keeps the replicas it has (an operator may
        have scaled it): nothing here scales it down."""
        return self.bridge.run(self._ensure)

    def _clustered(self) -> bool:
        """Whether the server this node is connected to is one of a NATS cluster (its INFO names it)."""
        info = getattr(self.link.nc, "_server_info", None) or {}
        return bool(info.get("cluster"))

    async def _ensure(self) -> None:
        from nats.js.api import DiscardPolicy, KeyValueConfig, ObjectStoreConfig, StorageType, StreamConfig
        from nats.js.errors import APIError, NotFoundError

        js = self.link.js
        wanted = CLUSTER_REPLICAS if self._clustered() else 1

        def config(replicas: int) -> StreamConfig:
            return StreamConfig(name=self.names.stream, subjects=[self.names.all_events], max_age=self.max_age,
                                max_msgs=MAX_MSGS, storage=StorageType.FILE, discard=DiscardPolicy.OLD,
                                num_replicas=replicas)

        try:
            existing = await js.stream_info(self.names.stream)
        except NotFoundError:
            try:
                info = await js.add_stream(config(wanted))
            except APIError as e:
                if wanted == 1:
                    raise
                log.warn("cluster: the stream {name} could not have {n} replicas ({e}); it has one: a NATS "
                         "server that goes (or a split) may take it away", name=self.names.stream, n=wanted, e=e)
                wanted = 1
                info = await js.add_stream(config(1))
        else:
            wanted = existing.config.num_replicas or 1
            info = await js.update_stream(config(wanted))
        # A new owner's first snapshot resumes after what is in the stream already, not from 0:
        # from 0 a follower would replay the whole stream (the last owner's ghosts included).
        self.bridge.to_reactor(self._acked, int(info.state.last_seq or 0))
        try:
            self._kv = await js.key_value(self.names.bucket)
        except NotFoundError:
            self._kv = await js.create_key_value(KeyValueConfig(
                bucket=self.names.bucket, history=1, replicas=wanted,
                description=f"UCS snapshots of {self.names.domain}"))
        try:
            self._objects = await js.object_store(self.names.snapshots)
        except NotFoundError:
            self._objects = await js.create_object_store(
                self.names.snapshots, ObjectStoreConfig(description=f"UCS snapshot bodies of {self.names.domain}",
                                                        storage=StorageType.FILE, replicas=wanted))

    async def _bucket(self) -> Any:
        if self._kv is None:
            self._kv = await self.link.js.key_value(self.names.bucket)
        return self._kv

    async def _store(self) -> Any:
        if self._objects is None:
            self._objects = await self.link.js.object_store(self.names.snapshots)
        return self._objects

    # --- the owner -----------------------------------------------------------------------

    def publish(self, e: Envelope, subject_json: str | None = None) -> None:
        """Queue ``e`` for the stream (in order; never waits).  ``subject_json``: its
        subject's JSON, when the caller made it already."""
        if self._queue is None:
            self._queue = asyncio.Queue(MAX_BACKLOG)
            self.bridge.to_loop(self._start_publisher, self._queue)
        self.bridge.to_loop(self._enqueue, self._queue, self.names.events(e.category), encode(e, subject_json))

    def _start_publisher(self, queue: asyncio.Queue[tuple[str, bytes]]) -> None:
        task = self.bridge.loop.create_task(self._publish_all(queue))
        self.bridge.to_reactor(self._started, queue, task)

    def _started(self, queue: asyncio.Queue[tuple[str, bytes]], task: asyncio.Task[None]) -> None:
        if queue is self._queue:
            self._publisher = task
        else:  # stopped meanwhile
            self.bridge.to_loop(task.cancel)

    def _enqueue(self, queue: asyncio.Queue[tuple[str, bytes]], subject: str, data: bytes) -> None:
        try:
            queue.put_nowait((subject, data))
        except asyncio.QueueFull:
            self.bridge.to_reactor(self._lost, "the backlog is full")

    async def _publish_all(self, queue: asyncio.Queue[tuple[str, bytes]]) -> None:
        """Write each queued envelope on the connection, in order, without waiting for its
        acknowledgement; :meth:`_acknowledged` takes those in the same order."""
        loop = asyncio.get_running_loop()
        sent: asyncio.Queue[tuple[asyncio.Future[Any], float]] = asyncio.Queue(WINDOW)
        acks = loop.create_task(self._acknowledged(queue, sent))
        try:
            while True:
                subject, data = await queue.get()
                try:
                    future = await self.link.js.publish_async(subject, data, stream=self.names.stream)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # not even written (the connection is closed): fails in turn
                    future = loop.create_future()
                    future.set_exception(e)
                await sent.put((future, loop.time() + self.publish_timeout))
        finally:
            acks.cancel()

    async def _acknowledged(self, queue: asyncio.Queue[tuple[str, bytes]],
                            sent: asyncio.Queue[tuple[asyncio.Future[Any], float]]) -> None:
        loop = asyncio.get_running_loop()
        seq = 0
        told = 0
        while True:
            future, deadline = await sent.get()
            try:
                if not future.done():
                    await asyncio.wait({future}, timeout=max(0.0, deadline - loop.time()))
                error = (asyncio.TimeoutError(f"no acknowledgement within {self.publish_timeout} s")
                         if not future.done() else
                         asyncio.CancelledError() if future.cancelled() else future.exception())
                if error is None:
                    seq = max(seq, future.result().seq)
                    told += 1
                    if sent.empty() or told >= 256:  # one word to the reactor per burst
                        self.bridge.to_reactor(self._acked, seq)
                        told = 0
                    continue
                future.cancel()
                # The rest would fail the same way, one timeout each: drop them now (the feed
                # starts a new term, from its model, once NATS answers again).
                dropped = 0
                while not sent.empty():
                    later, _ = sent.get_nowait()
                    later.cancel()
                    queue.task_done()
                    dropped += 1
                while not queue.empty():
                    queue.get_nowait()
                    queue.task_done()
                    dropped += 1
                if told:
                    self.bridge.to_reactor(self._acked, seq)
                    told = 0
                self.bridge.to_reactor(self._lost, f"{type(error).__name__}: {error}", 1 + dropped)
            finally:
                queue.task_done()

    def _acked(self, seq: int) -> None:
        self.acked_seq = max(self.acked_seq, seq)

    def _lost(self, why: str, count: int = 1) -> None:
        self.lost += count
        log.warn("cluster: {count} event(s) could not be published ({why}); {n} so far", count=count, why=why,
                 n=self.lost)
        self.on_lost()

    def published(self) -> Deferred[None]:
        """Fires once everything queued so far was acknowledged (or lost)."""

        queue = self._queue

        async def drained() -> None:
            if queue is not None:
                await queue.join()

        return self.bridge.run(drained)

    def put_snapshot(self, frozen: Frozen) -> Deferred[Manifest]:
        """Store ``frozen`` (:meth:`Replica.frozen`): its body made off the reactor thread and
        put in the object store, then its manifest in the bucket -- unless a newer term's is
        there already (fails with :class:`Superseded`)."""
        return self.bridge.run(self._put, frozen)

    async def _put(self, frozen: Frozen) -> Manifest:
        name = body_name(frozen.term)
        data = await asyncio.get_running_loop().run_in_executor(None, encode_body, frozen)
        store = await self._store()
        info = await store.put(name, data)
        manifest = Manifest(term=frozen.term, seq=frozen.seq, size=len(data), digest=str(info.digest), body=name,
                            entries=frozen.entries)
        try:
            replaced = await self._put_manifest(manifest)
        except Superseded:
            await self._delete_bodies(lambda other: other == name)
            raise
        if replaced != manifest.term:  # the term's first: older terms' bodies go (a late one's too)
            await self._delete_bodies(lambda other: other != name and older(other[len("snapshot-"):], frozen.term))
        return manifest

    async def _put_manifest(self, manifest: Manifest) -> str | None:
        """Compare-and-set: the manifest over the current one if that is of this term or an older
        one (or unreadable: another version's).  Returns the term it replaced."""
        from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError

        kv = await self._bucket()
        while True:
            current: Manifest | None = None
            try:
                entry = await kv.get(KEY)
                revision = entry.revision
                if entry.value:
                    try:
                        current = read_manifest(entry.value)
                    except ValueError:
                        pass  # another version's: replaced (the version error is the followers' to say)
            except KeyDeletedError as e:
                revision = e.entry.revision if e.entry is not None else 0
            except KeyNotFoundError:
                revision = 0
            if current is not None and current.term != manifest.term and older(manifest.term, current.term):
                raise Superseded(f"a newer term's snapshot is stored ({current.term}); term {manifest.term}'s "
                                 "is not")
            try:
                await kv.update(KEY, manifest.encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue  # another node put meanwhile: look again
            return current.term if current is not None else None

    async def _delete_bodies(self, which: Callable[[str], bool]) -> None:
        """Remove the bodies whose name ``which`` picks (a failure only leaves one behind)."""
        from nats.js.errors import NotFoundError

        store = await self._store()
        try:
            infos = await store.list(ignore_deletes=True)
        except NotFoundError:
            return
        for info in infos:
            if info.name.startswith("snapshot-") and which(info.name):
                try:
                    await store.delete(info.name)
                except Exception as e:  # noqa: BLE001 - deleted by another node meanwhile, or the link went
                    log.debug("cluster: removing the old snapshot body {name}: {e}", name=info.name, e=e)

    def stop_publishing(self) -> None:
        """Stop the publisher task; what it had not sent yet is dropped."""
        if self._publisher is not None:
            self.bridge.to_loop(self._publisher.cancel)
        self._publisher = None
        self._queue = None

    # --- every node ------------------------------------------------------------------------

    def get_manifest(self) -> Deferred[Manifest | None]:
        """The last snapshot's manifest, or ``None`` when there is none yet."""
        return self.bridge.run(self._get_manifest)

    async def _get_manifest(self) -> Manifest | None:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await (await self._bucket()).get(KEY)
        except KeyNotFoundError:
            return None
        return read_manifest(entry.value) if entry.value else None

    def get_body(self, manifest: Manifest) -> Deferred[dict[str, Any] | None]:
        """The body ``manifest`` names (:meth:`Replica.load` takes it), or ``None`` when it is
        gone (a newer term's first snapshot removed it); fetched and decoded off the reactor
        thread."""
        self.bodies_read += 1
        return self.bridge.run(self._get_body, manifest.body, BODY_TIMEOUT + manifest.size / BODY_RATE)

    async def _get_body(self, name: str, timeout: float = BODY_TIMEOUT) -> dict[str, Any] | None:
        from nats.js.errors import NotFoundError

        store = await self._store()
        try:
            # nats-py's get waits for the chunks with no limit: the owner may purge them meanwhile
            result = await asyncio.wait_for(store.get(name), timeout)
        except NotFoundError:  # ObjectNotFoundError and ObjectDeletedError are ones
            return None
        except asyncio.TimeoutError:
            raise ValueError(f"the snapshot's body did not arrive within {timeout:.0f} s (replaced while "
                             "it was read, or JetStream not serving it yet?); the next check reads it again") from None
        return await asyncio.get_running_loop().run_in_executor(None, decode_body, result.data)

    def follow(self, after: int, fn: Callable[[Envelope, int], Any]) -> Deferred[Any]:
        """``fn(envelope, seq)`` for each event after sequence ``after``, in order, on the
        reactor thread (an ordered consumer: gaps and reconnects are mended by nats-py).
        Fires with the subscription (give it to :meth:`unfollow`)."""

        def received(msg: Any) -> None:
            seq = msg.metadata.sequence.stream
            try:
                e = decode(msg.data)
            except CodecError as error:
                log.error("cluster: event {seq} skipped: {error}", seq=seq, error=error)
                return
            fn(e, seq)

        return self.bridge.run(self._subscribe, after, self.bridge.callback(received))

    async def _subscribe(self, after: int, cb: Any) -> Any:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        if after > 0:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        return await self.link.js.subscribe(self.names.all_events, cb=cb, ordered_consumer=True,
                                            config=config, stream=self.names.stream)

    def watch_snapshots(self, fn: Callable[[Manifest], Any]) -> Deferred[Any]:
        """``fn(manifest)`` for each snapshot stored from now on (on the reactor thread)."""

        def received(msg: Any) -> None:
            if not msg.data:  # a delete or purge marker
                return
            try:
                manifest = read_manifest(msg.data)
            except ValueError as error:
                log.error("cluster: snapshot skipped: {error}", error=error)
                return
            fn(manifest)

        return self.bridge.run(self.link.nc.subscribe, self.names.snapshot_subject,
                               cb=self.bridge.callback(received))

    def unfollow(self, sub: Any) -> Deferred[None]:
        return self.bridge.run(sub.unsubscribe)
