"""NATS goes away and comes back: the owner goes on, the followers converge (issue 20, point 3).

On a private ``nats-server -js`` (``tests/natsserver.py``), stopped and started
again: while it is down the owner's model changes (a device goes idle, another
appears, one is gone); its feed cannot publish, says so, and stops queueing.
Once NATS is back the owner starts a new term from its model, and the
follower -- which saw none of the changes -- reloads that term's snapshot and
has the owner's model again.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor, threads

from natsserver import NatsServer, nats_server  # noqa: F401 - the fixture
from serverkit import until
from test_cluster_stream import names
from ucs import events as ev
from ucs.bus import EventBus
from ucs.cluster.aio import AsyncioBridge
from ucs.cluster.codec import Envelope, envelope
from ucs.cluster.feed import OwnerFeed
from ucs.cluster.follower import Follower
from ucs.cluster.natslink import NatsLink
from ucs.cluster.stream import EventStream


class Device:
    def __init__(self, name: str, state: str) -> None:
        self.name, self.state = name, state

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.name, "state": self.state}


@pytest_twisted.ensureDeferred
async def test_the_owner_goes_on_without_nats_and_the_follower_converges_when_it_is_back(
        nats_server: NatsServer) -> None:  # noqa: F811 - the fixture
    n = names()
    model: dict[str, Device] = {}  # the owner's model: what its bus tells about
    bus = EventBus()

    def change(name: str, state: str | None) -> None:
        if state is None:
            model.pop(name, None)
        else:
            model[name] = Device(name, state)
        # a device that is gone is told as "UNAVAILABLE" by UCS's model; here: its last state
        bus.publish(ev.EVENT_DEVICE_CHANGED, Device(name, state or "UNAVAILABLE"))

    def initial() -> list[Envelope]:
        return [e for d in model.values() if (e := envelope(ev.EVENT_DEVICE_CHANGED, d, {})) is not None]

    feed: OwnerFeed | None = None
    owner = NatsLink([nats_server.url], "owner", AsyncioBridge(reactor),
                     on_change=lambda state: feed.link_changed(state) if feed is not None else None)
    follower: Follower | None = None
    # As the node does: the link back, the follower reads the snapshot it may have missed.
    other = NatsLink([nats_server.url], "other", AsyncioBridge(reactor),
                     on_change=lambda state: defer.ensureDeferred(follower.catch_up())
                     if state == "up" and follower is not None else None)
    await owner.connect()
    await other.connect()
    try:
        stream = EventStream(owner, n, publish_timeout=1.0)
        await stream.ensure()
        feed = OwnerFeed(bus, stream, reactor, "owner", snapshot_interval=1.0, initial=initial)
        feed.start()
        change("SIP/1001", "INUSE")
        change("SIP/1002", "INUSE")
        follower = Follower(EventStream(other, n), clock=reactor, check_every=2.0)
        await follower.start()
        await until(lambda: follower.replica.state() == feed.replica.state()
                    and len(follower.replica.devices) == 2, 10)
        first_term = follower.replica.term

        await threads.deferToThread(nats_server.stop)
        await until(lambda: owner.state == "down" and other.state == "down", 10)
        change("SIP/1001", "IDLE")
        await until(lambda: feed.broken, 10)  # it could not publish, and says so on /health (lost)
        assert stream.lost >= 1
        change("SIP/1002", None)
        change("SIP/1003", "RINGING")
        assert follower.replica.devices["SIP/1001"]["state"] == "INUSE"  # it heard nothing of it

        await threads.deferToThread(nats_server.start)
        await until(lambda: owner.state == "up" and other.state == "up", 20)
        await until(lambda: follower.replica.term != first_term and follower.replica.term == feed.replica.term, 20)
        await until(lambda: follower.replica.state() == feed.replica.state(), 10)
        assert follower.replica.devices == {
            "SIP/1001": {"device": "SIP/1001", "state": "IDLE"},
            "SIP/1003": {"device": "SIP/1003", "state": "RINGING"},
        }
        # And it goes on following the new term.
        change("SIP/1003", "INUSE")
        await until(lambda: follower.replica.devices["SIP/1003"]["state"] == "INUSE", 10)
        await follower.stop()
    finally:
        if feed is not None:
            feed.stop()
        for link in (owner, other):
            try:
                await link.close()
            except Exception:  # noqa: S110 - closing anyway
                pass
            link.bridge.close()
