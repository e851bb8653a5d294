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
import secrets
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from serverkit import start_demo, until, working_agent
from ucs import events as ev
from ucs.cluster.aio import AsyncioBridge
from ucs.cluster.codec import SCHEMA_VERSION, CodecError, decode, encode, envelope
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
        # A new owner knows only what its own model has: the ghost is gone from it.
        new = OwnerFeed(bus, stream, reactor, "b", snapshot_interval=3600,
                        initial=lambda: [e for e in [envelope(ev.EVENT_DEVICE_CHANGED, Device("SIP/1001", "IDLE"),
                                                              {})] if e is not None])
        new.start()
        await until(lambda: follower.replica.term == new.replica.term, 10)
        await until(lambda: follower.replica.state() == new.replica.state(), 10)
        assert follower.replica.devices == {"SIP/1001": {"device": "SIP/1001", "state": "IDLE"}}
        new.stop()
        await follower.stop()
    finally:
        await delete_all(link_a, n)
        await close_link(link_a)
        await close_link(link_b)


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
