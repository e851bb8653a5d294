"""How fast the simulator makes traffic: ``python -m ucs.sim.bench``.

Builds a lab with many agents, lets callers arrive at ``--rate`` new calls a
second on a simulated clock, and reports simulated calls and events per
second of real time (with one subscriber taking every event, as one AMI
client with ``Events: on`` would).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import time
from collections.abc import Sequence
from typing import Any

from ucs.sim.lab import lab
from ucs.sim.pbx import Sim


class _Call:
    __slots__ = ("args", "called", "cancelled", "fn", "time")

    def __init__(self, time: float, fn: Any, args: tuple[Any, ...]) -> None:
        self.time = time
        self.fn = fn
        self.args = args
        self.cancelled = False
        self.called = False

    def active(self) -> bool:
        return not (self.cancelled or self.called)

    def cancel(self) -> None:
        self.cancelled = True

    def getTime(self) -> float:
        return self.time


class HeapClock:
    """An ``IReactorTime`` on a heap, for long simulated runs.

    ``twisted.internet.task.Clock`` sorts its whole list of calls on every
    ``callLater``; with the thousands of timers of a loaded PBX that, not the
    simulator, would be what a benchmark measures.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, _Call]] = []
        self._seq = itertools.count()

    def seconds(self) -> float:
        return self.now

    def callLater(self, delay: float, fn: Any, *args: Any, **kw: Any) -> _Call:
        c = _Call(self.now + delay, (lambda: fn(*args, **kw)) if kw else fn, args if not kw else ())
        heapq.heappush(self._heap, (c.time, next(self._seq), c))
        return c

    def advance(self, amount: float) -> None:
        self.now += amount
        heap = self._heap
        while heap and heap[0][0] <= self.now:
            _, _, c = heapq.heappop(heap)
            if not c.cancelled:
                c.called = True
                c.fn(*c.args)

    def getDelayedCalls(self) -> list[_Call]:
        return [c for _, _, c in self._heap if c.active()]


def scaled_lab(clock: Any, agents: int, *, first: int = 2000, queue: str = "support", seed: int = 1) -> Sim:
    """The lab plus ``agents`` static lines SIP/2000... all members of ``queue``."""
    sim = lab(clock, seed=seed)
    for i in range(agents):
        n = first + i
        dev = f"SIP/{n}"
        sim.add_line(dev, f"Agent {n}", f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
        sim.phone(dev).set_behaviour(answer_after=(1.0, 5.0))
        sim.queue_add(queue, dev, f"Agent {n}")
    return sim


def run(agents: int = 2000, rate: float = 50.0, seconds: float = 60.0, talk: tuple[float, float] = (20.0, 60.0)) -> dict[str, float]:
    clock = HeapClock()
    sim = scaled_lab(clock, agents)
    counted = {"events": 0, "bytes": 0}

    def sink(ev: object) -> None:
        counted["events"] += 1
        counted["bytes"] += len(ev.data)  # type: ignore[attr-defined]

    sim.subscribe(sink)
    step = 1.0 / rate
    t0 = time.perf_counter()
    calls = 0
    elapsed = 0.0
    while elapsed < seconds:
        sim.caller_calls("5000", hangup_after=talk, abandon_after=(30.0, 90.0))
        calls += 1
        clock.advance(step)
        elapsed += step
    wall = time.perf_counter() - t0
    return {
        "agents": agents,
        "calls": calls,
        "simulated_s": seconds,
        "wall_s": wall,
        "events": counted["events"],
        "events_per_s": counted["events"] / wall,
        "MB_per_s": counted["bytes"] / wall / 1e6,
        "calls_per_s": calls / wall,
        "channels_at_end": len(sim.channels),
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ucs.sim.bench", description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=2000)
    p.add_argument("--rate", type=float, default=50.0, help="new calls a second")
    p.add_argument("--seconds", type=float, default=60.0, help="simulated seconds")
    a = p.parse_args(argv)
    r = run(a.agents, a.rate, a.seconds)
    for k, v in r.items():
        print(f"{k:16} {v:,.1f}" if isinstance(v, float) else f"{k:16} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
