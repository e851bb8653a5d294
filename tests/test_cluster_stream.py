"""The owner's events on the real NATS JetStream (issue 20, point 3).

A real UCS (the demo's simulated PBX inside, agents logged in, customers
calling) is the owner: its bus goes to the stream through :class:`OwnerFeed`.
A node that joins late, on a NATS connection of its own, rebuilds the same
model from the snapshot and the stream after it -- the same calls, agents,
members and devices as the owner's, and as the owner's live objects.
Commands reach the owner by request/reply; with no owner the caller is told so.

NATS is ``UCS_TEST_NATS`` (default ``nats://127.0.0.1:4222``, with JetStream);
like PostgreSQL it is required, never skipped.  Each test uses a domain of its
own and deletes its stream and bucket afterwards.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from serverkit import start_demo, until, working_agent
from ucs import events as ev
from ucs.cluster.aio import AsyncioBridge
from ucs.cluster.codec import SCHEMA_VERSION, CodecError, Envelope, decode, encode, envelope
from ucs.cluster.commands import CommandClient, CommandServer, NoOwner, OwnerTimeout
from ucs.cluster.feed import OwnerFeed
from ucs.cluster.follower import Follower
from ucs.cluster.natslink import Names, NatsLink
from ucs.cluster.stream import EventStream

NATS_URL = os.environ.get("UCS_TEST_NATS", "nats://127.0.0.1:4222")


async def open_link(name: str) -> NatsLink:
    link = NatsLink([NATS_URL], name, AsyncioBridge(reactor))
    try:
        await link.connect()
    except Exception as e:
        pytest.fail(f"NATS at {NATS_URL} is unreachable ({type(e).__name__}: {e}); start nats-server -js "
                    "or set UCS_TEST_NATS", pytrace=False)
    return link


async def close_link(link: NatsLink) -> None:
    await link.close()
    link.bridge.close()


async def delete_all(link: NatsLink, names: Names) -> None:
    async def delete() -> None:
        for fn, name in ((link.js.delete_stream, names.stream), (link.js.delete_key_value, names.bucket),
                         (link.js.delete_object_store, names.snapshots)):
            try:
                await fn(name)
            except Exception:  # noqa: S110 - not created by a test that failed early
                pass

    await link.bridge.run(delete)


def devices(*things: Any) -> Callable[[], list[Envelope]]:
    """A new owner's model (``initial``): these devices."""
    return lambda: [e for t in things if (e := envelope(ev.EVENT_DEVICE_CHANGED, t, {})) is not None]


async def wind_up(n: Names, link: NatsLink, *others: NatsLink, feeds: tuple[OwnerFeed | None, ...] = (),
                  follower: Follower | None = None) -> None:
    """A test's end: its feeds and follower stopped, its stream, bucket and bodies deleted, its links closed."""
    for feed in feeds:
        if feed is not None:
            feed.stop()
    if follower is not None:
        await follower.stop()
    await delete_all(link, n)
    for each in (link, *others):
        await close_link(each)


def names() -> Names:
    return Names(f"test-{secrets.token_hex(4)}.example.com")


@pytest_twisted.ensureDeferred
async def test_a_late_joiner_rebuilds_the_owners_model_from_the_snapshot_and_the_stream(tmp_path: Path) -> None:
    n = names()
    server = await start_demo(tmp_path)
    owner_link = await open_link("owner")
    late_link: NatsLink | None = None
    feed: OwnerFeed | None = None
    try:
        stream = EventStream(owner_link, n)
        await stream.ensure()
        feed = OwnerFeed(server.get_bus(), stream, reactor, "owner", snapshot_interval=3600)
        feed.start()
        # What happens before the snapshot: two agents log in, a customer calls the queue
        # and agent 1 answers.
        await working_agent(server, 1)
        await working_agent(server, 2)
        sim = server.get_demo_pbx().sim
        sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        sim.phone("SIP/1002").set_behaviour(answer_after=None)
        sim.caller_calls("5000", "420777000001", "First")
        tracker = server.get_call_tracker()
        await until(lambda: any(c.connected for c in tracker.active_calls()), 10)
        await stream.published()
        await feed.store_snapshot()
        snapshot_seq = feed.replica.seq  # the last acknowledged when it was stored
        assert snapshot_seq > 0

        # After the snapshot: a second customer rings agent 2, agent 1 hangs up.
        sim.caller_calls("5000", "420777000002", "Second")
        await until(lambda: len(tracker.active_calls()) == 2, 10)
        sim.phone("SIP/1001").hangup()
        await until(lambda: len(tracker.active_calls()) == 1, 10)
        await stream.published()
        assert stream.acked_seq > snapshot_seq and stream.lost == 0

        # A node that starts now: the snapshot, then the stream after it.
        late_link = await open_link("late")
        late = Follower(EventStream(late_link, n))
        await late.start()
        assert late.started_from == snapshot_seq
        await until(lambda: late.replica.seq == stream.acked_seq, 10)
        assert late.replica.term == feed.replica.term
        assert late.replica.state() == feed.replica.state()
        # ... which is the owner's live model, not only its own copy of it.
        (call,) = tracker.active_calls()
        assert set(late.replica.calls) == {call.uniqueid}
        assert late.replica.calls[call.uniqueid]["caller_number"] == call.caller_number == "420777000002"
        agents = {str(a.id): a.status.name for a in server.get_agents().all()}
        assert {k: v["status"] for k, v in late.replica.agents.items()} == agents
        members = {f"{m.queue}/{m.interface}": m.paused for q in server.get_pbx().queues.values()
                   for m in q.members.values()}
        assert {k: v["paused"] for k, v in late.replica.members.items()} == members
        assert len(members) >= 2

        # It keeps following: agent 2 goes AUX on the owner.
        agent2 = next(a for a in server.get_agents().all() if a.device == "SIP/1002")
        await server.get_agents().change_status(agent2.id, "AUX", "Break")
        await until(lambda: late.replica.agents[str(agent2.id)]["status"] == "AUX", 10)
        assert late.replica.state() == feed.replica.state()
        await late.stop()
    finally:
        if feed is not None:
            feed.stop()
        await delete_all(owner_link, n)
        await close_link(owner_link)
        if late_link is not None:
            await close_link(late_link)
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_follower_reloads_when_a_new_owner_starts_a_term() -> None:
    n = names()
    link_a, link_b = await open_link("a"), await open_link("b")
    old = new = None
    follower: Follower | None = None
    try:
        from ucs.bus import EventBus

        bus = EventBus()
        stream = EventStream(link_a, n)
        await stream.ensure()
        follower = Follower(EventStream(link_b, n))
        await follower.start()

        class Device:
            def __init__(self, name: str, state: str) -> None:
                self.name, self.state = name, state

            def to_dict(self) -> dict[str, Any]:
                return {"device": self.name, "state": self.state}

        old = OwnerFeed(bus, stream, reactor, "a", snapshot_interval=3600)
        old.start()
        bus.publish(ev.EVENT_DEVICE_CHANGED, Device("SIP/1001", "INUSE"))
        bus.publish(ev.EVENT_DEVICE_CHANGED, Device("SIP/ghost", "INUSE"))
        await until(lambda: set(follower.replica.devices) == {"SIP/1001", "SIP/ghost"}, 10)
        old.stop()
        await stream.ensure()  # as a new owner does: its term starts after the stream's last event
        # A new owner knows only what its own model has: the ghost is gone from it.
        new = OwnerFeed(bus, stream, reactor, "b", snapshot_interval=3600,
                        initial=devices(Device("SIP/1001", "IDLE")))
        new.start()
        await until(lambda: follower.replica.term == new.replica.term, 10)
        await until(lambda: follower.replica.state() == new.replica.state(), 10)
        assert follower.replica.devices == {"SIP/1001": {"device": "SIP/1001", "state": "IDLE"}}
    finally:
        await wind_up(n, link_a, link_b, feeds=(old, new), follower=follower)


@pytest_twisted.ensureDeferred
async def test_an_old_owners_late_snapshot_does_not_replace_the_new_owners() -> None:
    """The race CI met: the old owner's snapshot still being stored when the new owner stored its
    first one.  Whichever lands last, the bucket and the follower end on the new term, and only
    its body is kept."""
    from ucs.bus import EventBus
    from ucs.cluster.stream import Superseded

    n = names()
    link_a, link_b = await open_link("a"), await open_link("b")
    old = new = None
    follower: Follower | None = None
    try:
        stream_a, stream_b = EventStream(link_a, n), EventStream(link_b, n)
        await stream_a.ensure()
        follower = Follower(EventStream(link_b, n))
        await follower.start()
        old = OwnerFeed(EventBus(), stream_a, reactor, "a", snapshot_interval=3600,
                        initial=devices(Thing("SIP/ghost", state="INUSE")))
        old.start()
        await stored(stream_a, old)
        late = old.replica.frozen()  # what the old owner was storing when it stepped down
        old.stop()
        await stream_b.ensure()  # as a node does before its term: the term starts after the stream's last event
        new = OwnerFeed(EventBus(), stream_b, reactor, "b", snapshot_interval=3600,
                        initial=devices(Thing("SIP/1", state="IDLE")))
        new.start()
        await stored(stream_b, new)
        with pytest.raises(Superseded, match=re.escape(f"newer term's snapshot is stored ({new.replica.term})")):
            await stream_a.put_snapshot(late)  # lands after the new owner's first
        manifest = await stream_b.get_manifest()
        assert manifest is not None and manifest.term == new.replica.term
        await until(lambda: follower is not None and follower.replica.term == new.replica.term, 10)
        assert follower.replica.devices == {"SIP/1": {"device": "SIP/1", "state": "IDLE"}}

        async def bodies() -> set[str]:
            store = await link_a.js.object_store(n.snapshots)
            return {info.name for info in await store.list(ignore_deletes=True)}

        assert await link_a.bridge.run(bodies) == {f"snapshot-{new.replica.term}"}
        # A body whose manifest was never put (an owner killed between the two): the next term's
        # first snapshot removes it with the rest.
        async def orphan() -> None:
            store = await link_a.js.object_store(n.snapshots)
            await store.put(f"snapshot-{late.term}", b"half of a body")

        await link_a.bridge.run(orphan)
        new.stop()
        new.start()
        await stored(stream_b, new)
        assert await link_a.bridge.run(bodies) == {f"snapshot-{new.replica.term}"}
    finally:
        await wind_up(n, link_a, link_b, feeds=(old, new), follower=follower)


async def stored(stream: EventStream, feed: OwnerFeed) -> None:
    """Until the bucket holds a snapshot of ``feed``'s term."""
    for _ in range(200):
        manifest = await stream.get_manifest()
        if manifest is not None and manifest.term == feed.replica.term:
            return
        await defer.Deferred.fromCoroutine(_pause())
    raise AssertionError(f"no snapshot of term {feed.replica.term}")


async def _pause() -> None:
    from twisted.internet import task

    await task.deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_two_owners_are_told_by_the_one_that_was_first() -> None:
    n = names()
    link_a, link_b = await open_link("a"), await open_link("b")
    a = b = None
    try:
        from ucs.bus import EventBus

        stream_a, stream_b = EventStream(link_a, n), EventStream(link_b, n)
        await stream_a.ensure()
        a = OwnerFeed(EventBus(), stream_a, reactor, "a", snapshot_interval=3600)
        a.start()
        await stream_a.watch_snapshots(a.heard_snapshot)
        await stored(stream_a, a)
        # A legitimate hand-over (a stopped) is no conflict for the new owner ...
        a.stop()
        b = OwnerFeed(EventBus(), stream_b, reactor, "b", snapshot_interval=3600)
        b.start()
        await stream_b.watch_snapshots(b.heard_snapshot)
        await stored(stream_b, b)
        assert b.conflict == ""
        # ... but an owner that goes on while another starts is told it.
        a.start()
        await until(lambda: b.conflict == a.replica.term, 10)
        assert a.conflict == ""  # b's term began before a's second start: a late snapshot to a
    finally:
        for feed in (a, b):
            if feed is not None:
                feed.stop()
        await delete_all(link_a, n)
        await close_link(link_a)
        await close_link(link_b)


@pytest_twisted.ensureDeferred
async def test_commands_reach_the_owner_and_fail_clearly_without_one() -> None:
    n = names()
    owner, other = await open_link("owner"), await open_link("other")
    try:
        client = CommandClient(other, n, "other", timeout=2)
        with pytest.raises(NoOwner) as e:
            await client.request("agent.changeStatus", 7, "READY")
        assert "no node owns the AMI link of " + n.domain in str(e.value) and e.value.code == "no-owner"

        heard: list[tuple[str, list[Any], str]] = []

        def handler(method: str, args: list[Any], node: str) -> Any:
            heard.append((method, args, node))
            if method == "slow":
                return defer.Deferred()  # never answers
            if method == "bad":
                raise ValueError("no agent 7")
            return {"status": args[1], "by": "owner"}

        server = CommandServer(owner, n, handler)
        await server.serve()
        assert await client.request("agent.changeStatus", 7, "READY") == {"status": "READY", "by": "owner"}
        assert heard == [("agent.changeStatus", [7, "READY"], "other")]
        with pytest.raises(Exception) as failed:
            await client.request("bad")
        assert "bad: no agent 7" in str(failed.value)
        client.timeout = 0.3
        with pytest.raises(OwnerTimeout) as slow:
            await client.request("slow")
        assert "did not answer within 0.3 s" in str(slow.value)
        await server.stop()
        client.timeout = 2
        await until(lambda: True)
        with pytest.raises(NoOwner):
            await client.request("agent.changeStatus", 7, "READY")
    finally:
        await close_link(owner)
        await close_link(other)


def test_an_envelope_round_trips_and_a_newer_schema_is_refused() -> None:
    class Member:
        queue, interface, paused = "support", "SIP/1001", True

        def to_dict(self) -> dict[str, Any]:
            return {"queue": self.queue, "interface": self.interface, "paused": self.paused, "calls": (1, 2)}

    e = envelope(ev.EVENT_MEMBER_CHANGED, Member(), {"previous": {"paused": False}}, node="n1", term="t", at=1.5)
    assert e is not None and e.key == "support/SIP/1001" and e.category == "queues"
    assert decode(encode(e)) == e
    assert envelope(ev.EVENT_USER_CHANGE, object(), {}) is None  # the store carries the directory
    newer = encode(e).replace(f'"v":{SCHEMA_VERSION}'.encode(), b'"v":99')
    with pytest.raises(CodecError, match=f"version 99 is not supported; this node reads version {SCHEMA_VERSION}"):
        decode(newer)


class Thing:
    """A device as the bus carries it: its name and whatever state it has."""

    def __init__(self, name: str, **state: Any) -> None:
        self.name, self.state = name, state

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.name, **self.state}


async def stream_order(link: NatsLink, n: Names) -> list[tuple[int, dict[str, Any]]]:
    """Every envelope in the stream, read straight from JetStream: (sequence, subject)."""

    async def read() -> list[tuple[int, dict[str, Any]]]:
        info = await link.js.stream_info(n.stream)
        sub = await link.js.subscribe(n.all_events, ordered_consumer=True, stream=n.stream)
        out = []
        for _ in range(info.state.messages):
            msg = await sub.next_msg(timeout=5)
            out.append((msg.metadata.sequence.stream, decode(msg.data).subject))
        await sub.unsubscribe()
        return out

    return await link.bridge.run(read)


@pytest_twisted.ensureDeferred
async def test_pipelined_publishing_keeps_the_bus_order_and_the_acknowledged_sequence() -> None:
    from ucs.bus import EventBus

    n = names()
    link = await open_link("owner")
    feed: OwnerFeed | None = None
    try:
        bus = EventBus()
        stream = EventStream(link, n)
        await stream.ensure()
        feed = OwnerFeed(bus, stream, reactor, "owner", snapshot_interval=3600)
        feed.start()
        # 5,000 changes of 50 devices in one burst: many more than the window in flight.
        for i in range(5000):
            bus.publish(ev.EVENT_DEVICE_CHANGED, Thing(f"SIP/{i % 50}", n=i))
        await stream.published()
        assert stream.lost == 0 and not feed.broken
        assert stream.acked_seq == 5000
        read = await stream_order(link, n)
        assert [seq for seq, _ in read] == list(range(1, 5001))
        assert [subject["n"] for _, subject in read] == list(range(5000))  # the bus's order
        assert feed.replica.devices["SIP/49"] == {"device": "SIP/49", "n": 4999}

        # The stream gone under the owner: every envelope is lost and counted, the feed is
        # broken, and what was acknowledged before stays the acknowledged sequence.
        await link.bridge.run(link.js.delete_stream, n.stream)
        for i in range(300):
            bus.publish(ev.EVENT_DEVICE_CHANGED, Thing("SIP/0", n=5000 + i))
        await stream.published()
        await until(lambda: feed is not None and feed.broken, 10)
        assert stream.lost == 300 and stream.acked_seq == 5000
    finally:
        if feed is not None:
            feed.stop()
        await delete_all(link, n)
        await close_link(link)


@pytest_twisted.ensureDeferred
async def test_a_follower_reads_the_snapshots_body_only_for_a_new_term() -> None:
    from ucs.bus import EventBus

    n = names()
    link_a, link_b = await open_link("a"), await open_link("b")
    old = new = None
    follower: Follower | None = None
    try:
        bus = EventBus()
        stream = EventStream(link_a, n)
        await stream.ensure()
        old = OwnerFeed(bus, stream, reactor, "a", snapshot_interval=3600,
                        initial=devices(Thing("SIP/1", state="IDLE")))
        old.start()
        await stored(stream, old)
        follower_stream = EventStream(link_b, n)
        follower = Follower(follower_stream)
        await follower.start()
        assert follower_stream.bodies_read == 1 and follower.replica.devices == old.replica.devices

        # The owner stores three more snapshots of its term; the follower hears their manifests
        # (a watch of its own on the same connection hears them with it) and checks the last one
        # three times, as its timer would: it never fetches the body again.
        heard: list[Any] = []
        watch = await follower_stream.watch_snapshots(heard.append)
        for i in range(3):
            bus.publish(ev.EVENT_DEVICE_CHANGED, Thing(f"SIP/{i + 2}", state="INUSE"))
            await stream.published()
            await old.store_snapshot()
        await until(lambda: len(heard) == 3, 10)
        assert {m.term for m in heard} == {old.replica.term} and heard[-1].seq == stream.acked_seq
        for _ in range(3):
            await follower.catch_up()
        await until(lambda: follower is not None and follower.replica.seq == stream.acked_seq, 10)
        assert follower_stream.bodies_read == 1
        assert follower.replica.state() == old.replica.state()
        await follower_stream.unfollow(watch)

        # A new owner's term: its manifest makes the follower fetch the body, once.
        old.stop()
        new_stream = EventStream(link_a, n)  # a node of its own, as after a failover
        await new_stream.ensure()
        new = OwnerFeed(bus, new_stream, reactor, "b", snapshot_interval=3600,
                        initial=devices(Thing("SIP/9", state="IDLE")))
        new.start()
        await until(lambda: follower is not None and follower.replica.term == new.replica.term, 10)
        await follower.catch_up()
        assert follower_stream.bodies_read == 2
        await until(lambda: follower is not None and follower.replica.state() == new.replica.state(), 10)
    finally:
        await wind_up(n, link_a, link_b, feeds=(old, new), follower=follower)


@pytest_twisted.ensureDeferred
async def test_a_snapshot_larger_than_max_payload_reaches_a_late_follower() -> None:
    from ucs.bus import EventBus

    n = names()
    owner_link, late_link = await open_link("owner"), await open_link("late")
    feed: OwnerFeed | None = None
    try:
        stream = EventStream(owner_link, n)
        await stream.ensure()
        # 4,000 devices with 600 random hex digits each: ~1.2 MB compressed, more than one
        # NATS message may carry (max_payload, 1 MB by default).
        things = [Thing(f"SIP/{i}", state="INUSE", noise=secrets.token_hex(300)) for i in range(4000)]
        feed = OwnerFeed(EventBus(), stream, reactor, "owner", snapshot_interval=3600,
                         initial=devices(*things))
        feed.start()
        await stream.published()
        await stored(stream, feed)
        manifest = await stream.get_manifest()
        assert manifest is not None and manifest.size > owner_link.nc.max_payload and manifest.entries == 4000

        late_stream = EventStream(late_link, n)
        late = Follower(late_stream)
        await late.start()
        assert late_stream.bodies_read == 1
        # started from the snapshot's sequence (the stream after it may be applying already)
        assert late.replica.term == feed.replica.term and late.started_from == manifest.seq
        assert late.replica.state() == feed.replica.state()
        await late.stop()
    finally:
        await wind_up(n, owner_link, late_link, feeds=(feed,))


def test_a_snapshot_body_gives_the_owners_replica_and_another_version_is_refused() -> None:
    import zlib

    from ucs.cluster.replica import Replica, decode_body, encode_body
    from ucs.cluster.stream import read_manifest

    class Call:
        def __init__(self, uniqueid: str, **state: Any) -> None:
            self.uniqueid, self.state = uniqueid, state

        def to_dict(self) -> dict[str, Any]:
            return {"uniqueid": self.uniqueid, **self.state}

    owner = Replica(keep_json=True)
    owner.term, owner.seq = "a:1:1", 7
    for e in [envelope(ev.EVENT_CALL_NEW, Call("1.1", caller="Žofie \"Q\""), {}),
              envelope(ev.EVENT_CALL_NEW, Call("1.2"), {}),
              envelope(ev.EVENT_ACCOUNT_CODE, "1.1", {"account_code": "42"}),
              envelope(ev.EVENT_CALL_HANGUP, Call("1.2"), {}),
              envelope(ev.EVENT_DEVICE_CHANGED, Thing("SIP/1", state="IDLE"), {}),
              envelope(ev.EVENT_QUEUE_WAITING, "support", {"waiting": [{"caller": "1"}]})]:
        assert e is not None
        owner.apply(e)
    copy = Replica()
    copy.load(decode_body(encode_body(owner.frozen())))
    assert copy.state() == owner.state() and (copy.seq, copy.term) == (7, "a:1:1")
    assert copy.calls["1.1"]["account_code"] == "42" and "1.2" not in copy.calls

    old_body = zlib.compress(b'{"v":1,"seq":1,"term":"t","state":{}}')
    with pytest.raises(ValueError, match="snapshot of version 1 .* this node reads version 3"):
        read_manifest(old_body)  # what a node of an old version left in the bucket
    with pytest.raises(ValueError, match="snapshot version 2 is not supported; this node reads version 3"):
        read_manifest(b'{"v":2,"term":"t","seq":1,"size":1,"digest":"x"}')  # one body for every term
    with pytest.raises(ValueError, match="manifest without a valid 'body'"):
        read_manifest(b'{"v":3,"term":"t","seq":1,"size":1,"digest":"x"}')
    with pytest.raises(ValueError, match="snapshot version 1 is not supported"):
        Replica().load({"v": 1, "seq": 1, "term": "t", "state": {}})
