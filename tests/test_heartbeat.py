"""The agent bars' keep-alive (``ucs.web.heartbeat``) on a clock the test moves.

The real sockets' side (a bar that stops answering is dropped, one that answers
stays) is in ``test_web_api.test_heartbeat_drops_a_client_that_stopped_answering``;
here are the promises about time and scale: one timer whatever the number of
connections, every connection pinged once per interval and not all at once, a
silent one dropped once ``timeout`` has passed since its ping, never before.
"""

from __future__ import annotations

import math

import pytest
from twisted.internet.task import Clock

from ucs.web.heartbeat import Heartbeat


class Peer:
    """A connection's end as the heartbeat sees it; ``answers`` says whether its
    client replies to pings (a pong arrives ``rtt`` seconds later; ``None``: at once)."""

    def __init__(self, clock: Clock, answers: bool = True, rtt: float | None = 0.01) -> None:
        self.clock = clock
        self.answers = answers
        self.rtt = rtt
        self.heard = 0.0
        self.pinged: float | None = None
        self.pings: list[float] = []
        self.dropped_at: float | None = None

    def ping(self) -> None:
        self.pings.append(self.clock.seconds())
        if self.answers and self.rtt is None:
            self._pong()
        elif self.answers:
            self.clock.callLater(self.rtt, self._pong)

    def _pong(self) -> None:
        self.heard = self.clock.seconds()

    def timed_out(self, silent_for: float) -> None:
        self.dropped_at = self.clock.seconds()


def run(clock: Clock, seconds: float, step: float = 0.01) -> None:
    for _ in range(round(seconds / step)):
        clock.advance(step)


def test_ten_thousand_connections_cost_one_timer_and_one_ping_each_per_interval() -> None:
    clock = Clock()
    hb = Heartbeat(clock, interval=20.0, timeout=10.0)
    hb.start()
    peers = [Peer(clock, rtt=None) for _ in range(10_000)]  # pongs at once: no pong timers in the count
    for p in peers:
        hb.add(p)
    per_tick: dict[float, int] = {}
    for _ in range(round(60 / hb.tick)):
        clock.advance(hb.tick)
        assert len(clock.getDelayedCalls()) == 1, "a timer per connection"
    for p in peers:
        assert len(p.pings) == 3, "each connection is pinged once per interval"
        assert p.dropped_at is None
        for t in p.pings:
            per_tick[round(t, 6)] = per_tick.get(round(t, 6), 0) + 1
    # Spread evenly over the interval: no reactor turn pings more than its share.
    assert max(per_tick.values()) <= math.ceil(10_000 / round(20.0 / hb.tick))


@pytest.mark.parametrize("interval,timeout", [(20.0, 10.0), (5.0, 5.0), (2.0, 7.0)])
def test_a_silent_connection_is_dropped_after_the_timeout_and_an_answering_one_never(
        interval: float, timeout: float) -> None:
    clock = Clock()
    hb = Heartbeat(clock, interval=interval, timeout=timeout)
    hb.start()
    talker, silent = Peer(clock), Peer(clock, answers=False)
    hb.add(talker)
    hb.add(silent)
    run(clock, interval + timeout + 2 * interval)
    assert talker.dropped_at is None
    assert silent.dropped_at is not None
    first_ping = silent.pings[0]
    # Not before the timeout, and within one tick after it.
    assert timeout - hb.tick / 2 <= silent.dropped_at - first_ping <= timeout + hb.tick + 1e-6
    assert len(silent.pings) == 1, "an unanswered ping is not repeated before the drop"
    assert len(hb) == 1
    n = len(silent.pings)
    run(clock, 2 * interval)
    assert len(silent.pings) == n, "a dropped connection is not pinged again"


def test_any_frame_counts_as_an_answer() -> None:
    """A bar busy sending requests has answered, whether or not its pong came."""
    clock = Clock()
    hb = Heartbeat(clock, interval=1.0, timeout=1.0)
    hb.start()
    busy = Peer(clock, answers=False)
    hb.add(busy)
    for _ in range(50):
        clock.advance(0.1)
        busy.heard = clock.seconds()  # a request arrived
    assert busy.dropped_at is None
    assert len(busy.pings) >= 4


def test_a_removed_connection_is_forgotten_and_a_failing_ping_stops_nothing() -> None:
    clock = Clock()
    hb = Heartbeat(clock, interval=1.0, timeout=1.0)
    hb.start()
    gone, broken, fine = Peer(clock), Peer(clock), Peer(clock)

    def boom() -> None:
        raise OSError("socket gone")

    broken.ping = boom  # type: ignore[method-assign]
    for p in (gone, broken, fine):
        hb.add(p)
    hb.remove(gone)
    run(clock, 3.05)
    assert gone.pings == []
    assert len(fine.pings) == 3
    run(clock, 0.05)  # the last pong
    hb.stop()
    assert clock.getDelayedCalls() == []


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        Heartbeat(Clock(), interval=0, timeout=10)
