"""The owner's heartbeat (issue 20): a standby tells an owner's silence from a calm.

The watch's logic on a :class:`task.Clock` (beats, silence, this node's link,
its role, a replica that stands behind the owner's beat); the wire on the real
NATS: an owner's beats heard by a standby, a stuck replica followed again, and
the owner's link closed -> unheard.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from serverkit import until
from test_cluster_stream import close_link, open_link
from ucs.cluster.heartbeat import HEARD, SELF, UNHEARD, WAITING, Heartbeat, OwnerWatch, decode, encode
from ucs.cluster.natslink import Names
from ucs.config import Config
from ucs.config.kinds import ConfigError


class Recorder:
    def __init__(self, clock: task.Clock, silence: float = 3.0) -> None:
        self.changes: list[tuple[str, str]] = []
        self.refollows: list[float] = []
        self.at: tuple[str, int] | None = ("t1", 5)
        self.watch = OwnerWatch(clock, silence, position=lambda: self.at,
                                refollow=lambda: self.refollows.append(clock.seconds()),
                                on_change=lambda old, new: self.changes.append((old, new)))


def run(clock: task.Clock, watch: OwnerWatch, seconds: int, beat: tuple[str, int] | None = None,
        link_up: bool = True) -> None:
    """``seconds`` of ticks, one a second, with the owner beating ``beat`` each second (or silent)."""
    for _ in range(seconds):
        clock.advance(1)
        if beat is not None:
            watch.beat("node-a", *beat)
        watch.tick(link_up)


def test_an_owner_silent_for_owner_silence_is_unheard_once_and_heard_again_at_its_next_beat() -> None:
    clock = task.Clock()
    r = Recorder(clock)
    w = r.watch
    assert w.state == WAITING
    run(clock, w, 5, beat=("t1", 5))
    assert w.state == HEARD and w.owner == "node-a" and r.changes == []  # a calm is not news
    last = clock.seconds()
    run(clock, w, 2)
    assert w.state == HEARD  # 2 s of silence: not yet
    run(clock, w, 1)
    assert w.state == UNHEARD and r.changes == [(HEARD, UNHEARD)]
    assert w.health() == {"owner": "unheard", "owner_node": "node-a", "owner_heard_at": last,
                          "owner_since": clock.seconds()}
    run(clock, w, 10)
    assert r.changes == [(HEARD, UNHEARD)]  # told once
    w.beat("node-b", "t2", 0)  # a new owner
    assert w.state == HEARD and w.owner == "node-b" and r.changes[-1] == (UNHEARD, HEARD)


def test_nobody_heard_after_start_is_unheard_and_this_nodes_own_link_down_is_not_the_owners_silence() -> None:
    clock = task.Clock()
    r = Recorder(clock)
    run(clock, r.watch, 3)
    assert r.watch.state == UNHEARD and r.changes == [(WAITING, UNHEARD)]

    clock = task.Clock()
    r = Recorder(clock)
    run(clock, r.watch, 2, beat=("t1", 5))
    run(clock, r.watch, 20, link_up=False)  # its own NATS link is down: the NATS notice says so
    assert r.watch.state == HEARD and r.changes == []
    r.watch.link_back()  # back: the owner has a whole owner_silence to be heard
    assert r.watch.state == WAITING
    run(clock, r.watch, 2)
    assert r.watch.state == WAITING
    run(clock, r.watch, 1, beat=("t1", 5))
    assert r.watch.state == HEARD and r.changes == []


def test_a_node_that_becomes_the_owner_listens_to_nobody_and_its_bars_are_told_the_silence_is_over() -> None:
    clock = task.Clock()
    r = Recorder(clock)
    run(clock, r.watch, 3)
    assert r.watch.state == UNHEARD
    r.watch.role(owner=True)
    assert r.watch.state == SELF and r.changes == [(WAITING, UNHEARD), (UNHEARD, SELF)]
    run(clock, r.watch, 10)
    assert r.watch.state == SELF and r.refollows == []
    r.watch.role(owner=False)  # stepped down: listening again
    assert r.watch.state == WAITING
    run(clock, r.watch, 1, beat=("t2", 0))
    assert r.watch.state == HEARD


def test_a_replica_behind_the_owners_beat_that_stands_still_follows_the_stream_again() -> None:
    clock = task.Clock()
    r = Recorder(clock)
    # Behind but moving: no refollow.
    for i in range(10):
        r.at = ("t1", 5 + i)
        run(clock, r.watch, 1, beat=("t1", 7 + i))
    assert r.refollows == []
    # Behind and still for owner_silence: followed again, then at most once per owner_silence.
    r.at = ("t1", 14)
    run(clock, r.watch, 2, beat=("t1", 20))
    assert r.refollows == []
    run(clock, r.watch, 2, beat=("t1", 20))
    assert len(r.refollows) == 1
    run(clock, r.watch, 3, beat=("t1", 20))
    assert len(r.refollows) == 2 and r.watch.refollowed == 2
    # Caught up: nothing more.
    r.at = ("t1", 20)
    run(clock, r.watch, 10, beat=("t1", 20))
    assert len(r.refollows) == 2
    # Another term the replica does not follow (a snapshot not heard): followed again too.
    run(clock, r.watch, 5, beat=("t2", 3))
    assert len(r.refollows) == 3


def test_a_beat_is_versioned_json_and_a_bad_one_says_what_was_wrong() -> None:
    assert decode(encode("node-a", "node-a:1:1", 42)) == ("node-a", "node-a:1:1", 42)
    for data, message in ((b"{", "not JSON"), (b'{"v": 2}', "version 2, not 1"),
                          (b'{"v": 1, "node": "a", "term": "t", "seq": "9"}', "strings and an integer")):
        with pytest.raises(ValueError, match=message):
            decode(data)


def test_owner_silence_shorter_than_two_beats_is_refused_with_what_is_accepted() -> None:
    with pytest.raises(ConfigError, match=r"cluster.owner_silence: 1 is out of range; use a number of seconds"):
        Config().replace(cluster={"owner_silence": 1})
    assert Config().cluster.owner_silence == 3.0


@pytest_twisted.ensureDeferred
async def test_on_nats_a_standby_hears_the_owners_beats_follows_again_when_stuck_and_hears_silence() -> None:
    names = Names(f"test-{secrets.token_hex(4)}.example.com")
    owner_link = await open_link("owner")
    standby_link = await open_link("standby")
    position = {"owner": ("node-a:1:1", 10), "standby": ("node-a:1:1", 10)}
    refollows: list[float] = []
    changes: list[tuple[str, str]] = []
    owner = Heartbeat(owner_link, names, "node-a", reactor,
                      OwnerWatch(reactor, 2.0), beating=lambda: position["owner"])
    watch = OwnerWatch(reactor, 2.0, position=lambda: position["standby"],
                       refollow=lambda: refollows.append(reactor.seconds()),
                       on_change=lambda old, new: changes.append((old, new)))
    standby = Heartbeat(standby_link, names, "node-b", reactor, watch, beating=lambda: None)
    beats: list[Any] = []
    try:
        owner.start()
        standby.start()
        await until(lambda: watch.state == HEARD, 10)
        assert watch.owner == "node-a" and owner.watch.state == SELF and changes == []
        # The owner is ahead; the standby's replica stands still: it follows the stream again.
        position["owner"] = ("node-a:1:1", 15)
        await until(lambda: refollows, 10)
        position["standby"] = ("node-a:1:1", 15)
        count = len(refollows)
        await task.deferLater(reactor, 3.0, lambda: None)
        assert len(refollows) == count  # caught up: no more
        # The owner's link goes (the standby's is fine): unheard within owner_silence and a beat.
        await owner.stop()
        await close_link(owner_link)
        await until(lambda: watch.state == UNHEARD, 10)
        assert changes == [(HEARD, UNHEARD)] and watch.health()["owner"] == "unheard"
    finally:
        for hb in (owner, standby):
            if hb._loop.running:
                beats.append(hb.stop())
        for d in beats:
            if d is not None:
                await d
        if owner_link.nc is not None:
            await close_link(owner_link)
        await close_link(standby_link)
