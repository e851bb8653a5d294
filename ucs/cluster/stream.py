"""The owner's events on NATS JetStream, and the snapshot a late node starts from.

- **The stream** (``UCS_<domain>_EVENTS``, subjects ``ucs.<domain>.events.>``,
  file storage, oldest dropped past ``[cluster] stream_max_age`` or
  :data:`MAX_MSGS`): the owner publishes each domain event's envelope
  (:mod:`ucs.cluster.codec`) on ``ucs.<domain>.events.<category>``, one at a
  time in bus order (one publisher task awaits each acknowledgement, so the
  stream's order is the bus's), and remembers the sequence of the last one
  acknowledged.
- **The snapshot** (bucket ``ucs_<domain>``, key ``snapshot``, history 1): the
  owner's :class:`~ucs.cluster.replica.Replica` with that sequence, as
  zlib-compressed JSON, put every ``snapshot_interval`` and when it starts a
  term.  A node that starts late, or follows a new term, loads it and resumes
  the stream right after its sequence (:meth:`EventStream.follow`); envelopes
  are idempotent, so a snapshot a little older than its sequence says is
  harmless.  A put is also a message on ``$KV.<bucket>.snapshot``: followers
  hear new snapshots there.

Everything here runs nats-py's coroutines through the node's
:class:`~ucs.cluster.aio.AsyncioBridge` and hands back Deferreds; callbacks
run on the reactor thread.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ucs.cluster.codec import CodecError, Envelope, decode, encode
from ucs.cluster.natslink import NatsLink, Names

log = Logger(namespace="ucs.cluster")

#: Events kept in the stream at most (besides ``stream_max_age``).
MAX_MSGS = 1_000_000
#: Envelopes waiting to be published at most: past it (NATS away for long) they are
#: dropped and the owner starts a new term, whose snapshot puts every node right.
MAX_BACKLOG = 100_000


class EventStream:
    """The stream and the snapshot of one instance domain, on one node's link."""

    def __init__(self, link: NatsLink, names: Names, *, max_age: float = 3600.0,
                 publish_timeout: float = 5.0) -> None:
        self.link = link
        self.bridge = link.bridge
        self.names = names
        self.max_age = max_age
        self.publish_timeout = publish_timeout
        #: Sequence of the last envelope this node published that the stream acknowledged.
        self.acked_seq = 0
        #: Envelopes this node could not publish (NATS away, backlog full).
        self.lost = 0
        self.on_lost: Callable[[], Any] = lambda: None
        self._queue: asyncio.Queue[tuple[str, bytes]] | None = None
        self._publisher: asyncio.Task[None] | None = None

    # --- set-up ------------------------------------------------------------------------

    def ensure(self) -> Deferred[None]:
        """Create the stream and the bucket, or bring their limits in line (every node may)."""
        return self.bridge.run(self._ensure)

    async def _ensure(self) -> None:
        from nats.js.api import DiscardPolicy, StorageType, StreamConfig
        from nats.js.errors import BadRequestError

        js = self.link.js
        config = StreamConfig(name=self.names.stream, subjects=[self.names.all_events], max_age=self.max_age,
                              max_msgs=MAX_MSGS, storage=StorageType.FILE, discard=DiscardPolicy.OLD)
        try:
            await js.add_stream(config)
        except BadRequestError:  # it exists with other limits
            await js.update_stream(config)
        await js.create_key_value(bucket=self.names.bucket, history=1,
                                  description=f"UCS snapshots of {self.names.domain}")

    # --- the owner -----------------------------------------------------------------------

    def publish(self, e: Envelope) -> None:
        """Queue ``e`` for the stream (in order; never waits)."""
        if self._queue is None:
            self._queue = asyncio.Queue(MAX_BACKLOG)
            self.bridge.to_loop(self._start_publisher, self._queue)
        self.bridge.to_loop(self._enqueue, self._queue, self.names.events(e.category), encode(e))

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
        while True:
            subject, data = await queue.get()
            try:
                ack = await self.link.js.publish(subject, data, stream=self.names.stream,
                                                 timeout=self.publish_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                # The rest would fail the same way, one timeout each: drop them now (the feed
                # starts a new term, from its model, once NATS answers again).
                dropped = 0
                while not queue.empty():
                    queue.get_nowait()
                    queue.task_done()
                    dropped += 1
                self.bridge.to_reactor(self._lost, f"{type(e).__name__}: {e}", 1 + dropped)
            else:
                self.bridge.to_reactor(self._acked, ack.seq)
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

    def put_snapshot(self, snapshot: dict[str, Any]) -> Deferred[int]:
        """Store ``snapshot`` (a :meth:`Replica.snapshot`) as the bucket's ``snapshot``; its revision."""
        data = zlib.compress(json.dumps(snapshot, separators=(",", ":")).encode(), 1)
        return self.bridge.run(self._put, data)

    async def _put(self, data: bytes) -> int:
        limit = self.link.nc.max_payload
        if len(data) > limit:
            raise ValueError(f"the snapshot is {len(data)} bytes compressed, more than NATS's max_payload ({limit}); "
                             "raise max_payload in nats-server.conf (docs/cluster.md, limits)")
        kv = await self.link.js.key_value(self.names.bucket)
        revision: int = await kv.put("snapshot", data)
        return revision

    def stop_publishing(self) -> None:
        """Stop the publisher task; what it had not sent yet is dropped."""
        if self._publisher is not None:
            self.bridge.to_loop(self._publisher.cancel)
        self._publisher = None
        self._queue = None

    # --- every node ------------------------------------------------------------------------

    def get_snapshot(self) -> Deferred[dict[str, Any] | None]:
        """The last snapshot, or ``None`` when there is none yet."""
        return self.bridge.run(self._get)

    async def _get(self) -> dict[str, Any] | None:
        from nats.js.errors import KeyNotFoundError

        kv = await self.link.js.key_value(self.names.bucket)
        try:
            entry = await kv.get("snapshot")
        except KeyNotFoundError:
            return None
        return read_snapshot(entry.value) if entry.value else None

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

    def watch_snapshots(self, fn: Callable[[dict[str, Any]], Any]) -> Deferred[Any]:
        """``fn(snapshot)`` for each snapshot put from now on (on the reactor thread)."""

        def received(msg: Any) -> None:
            if not msg.data:  # a delete or purge marker
                return
            try:
                fn(read_snapshot(msg.data))
            except ValueError as error:
                log.error("cluster: snapshot skipped: {error}", error=error)

        return self.bridge.run(self.link.nc.subscribe, self.names.snapshot_subject,
                               cb=self.bridge.callback(received))

    def unfollow(self, sub: Any) -> Deferred[None]:
        return self.bridge.run(sub.unsubscribe)


def read_snapshot(data: bytes) -> dict[str, Any]:
    try:
        snapshot: dict[str, Any] = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError) as e:
        raise ValueError(f"not a UCS snapshot ({e}); the owner stores zlib-compressed JSON") from None
    return snapshot
