"""The owner's snapshot at N agents: how long it holds the reactor (issue 20).

    PYTHONPATH=. .venv/bin/python bench/cluster_snapshot.py --agents 10000 [--calls 500] [--rounds 5]

An :class:`~ucs.cluster.feed.OwnerFeed` on the asyncio reactor (as a node runs) and the real
NATS (``--nats``, default ``nats://127.0.0.1:4222``) starts a term with N agents, N queue
members, N devices and ``--calls`` calls (synthetic subjects of the size a node's have:
an agent ~1.3 KB of JSON), then stores ``--rounds`` snapshots.  For each: the time
``store_snapshot()`` took before returning (on the reactor thread), the time until the
snapshot was stored, and the **longest stall of the reactor** meanwhile (a 1 ms timer's
largest lateness: whatever held the reactor thread or the GIL).  Then a follower on a
connection of its own reads the snapshot: the time to fetch and decode it.

Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from twisted.internet import asyncioreactor

asyncioreactor.install(asyncio.new_event_loop())

from twisted.internet import reactor  # noqa: E402
from twisted.internet.task import LoopingCall  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import run_on_reactor, sleep  # noqa: E402
from ucs import events as ev  # noqa: E402
from ucs.bus import EventBus  # noqa: E402
from ucs.cluster.aio import AsyncioBridge  # noqa: E402
from ucs.cluster.codec import Envelope, envelope  # noqa: E402
from ucs.cluster.feed import OwnerFeed  # noqa: E402
from ucs.cluster.natslink import Names, NatsLink  # noqa: E402
from ucs.cluster.stream import EventStream  # noqa: E402


def agent(i: int) -> dict[str, Any]:
    queues = [{"queue": f"q{(i + k) % 20:02d}", "name": f"Queue {k}", "penalty": 0, "paused": False,
               "calls": k, "talk": 12.5 * k} for k in range(3)]
    return {"id": i, "username": f"bench{i}", "name": f"Bench Agent {i}", "email": f"bench{i}@example.com",
            "role": "agent", "extension": str(100000 + i), "status": "READY", "reason": "", "since": 1.7e9 + i,
            "logged_in": 1.7e9, "acw_until": None, "device": f"SIP/{100000 + i}", "suspended": [],
            "line": {"id": i, "device": f"SIP/{100000 + i}", "identifier": f"bench-phone-{i}", "type": "SIP"},
            "queues": queues, "wrapup": {"active": False, "until": None, "reason": ""},
            "calls": i % 17, "answered": i % 13, "missed": i % 3, "talk_time": 321.5, "acw_time": 45.0,
            "aux_time": 60.0, "ready_time": 3600.0, "longest_call": 240.0, "groups": ["support", "sales"]}


def member(i: int) -> dict[str, Any]:
    return {"queue": f"q{i % 20:02d}", "interface": f"SIP/{100000 + i}", "name": f"bench{i}", "paused": False,
            "penalty": 0, "status": "NOT_INUSE", "calls": i % 9, "last_call": 1.7e9, "in_call": False}


def call(i: int) -> dict[str, Any]:
    legs = [{"uniqueid": f"1700000000.{i}.{k}", "channel": f"SIP/{100000 + i}-{k:08x}", "state": "Up",
             "caller": "420777000001", "dial_status": "ANSWER", "hangup_requested": False, "gone_order": None,
             "transferred": False, "picked_up": False} for k in range(2)]
    return {"uniqueid": f"1700000000.{i}", "id": f"1700000000.{i}", "state": 4, "caller_number": "420777000001",
            "caller_name": "Customer", "queue": f"q{i % 20:02d}", "agent": i, "start": 1.7e9, "answer": 1.7e9 + 3,
            "legs": legs, "journey": [{"step": "queue", "queue": f"q{i % 20:02d}", "at": 1.7e9}], "hold": [],
            "account_code": ""}


def initial(agents: int, calls: int) -> list[Envelope]:
    out: list[Envelope | None] = []
    for i in range(1, agents + 1):
        out.append(envelope(ev.EVENT_AGENT_STATUS, _Keyed(agent(i), id=i), {}))
        out.append(envelope(ev.EVENT_MEMBER_CHANGED, _Keyed(member(i), queue=f"q{i % 20:02d}",
                                                            interface=f"SIP/{100000 + i}"), {}))
        out.append(envelope(ev.EVENT_DEVICE_CHANGED, _Keyed({"device": f"SIP/{100000 + i}", "state": "NOT_INUSE"},
                                                            name=f"SIP/{100000 + i}"), {}))
    for i in range(1, calls + 1):
        out.append(envelope(ev.EVENT_CALL_CONNECT, _Keyed(call(i), uniqueid=f"1700000000.{i}"), {}))
    return [e for e in out if e is not None]


class _Keyed:
    def __init__(self, d: dict[str, Any], **keys: Any) -> None:
        self._d = d
        self.__dict__.update(keys)

    def to_dict(self) -> dict[str, Any]:
        return self._d


async def main(args: argparse.Namespace) -> dict[str, Any]:
    names = Names(f"bench-{secrets.token_hex(4)}.example.com")
    owner = NatsLink([args.nats], "bench-owner", AsyncioBridge(reactor))
    other = NatsLink([args.nats], "bench-follower", AsyncioBridge(reactor))
    await owner.connect()
    await other.connect()
    stream = EventStream(owner, names)
    await stream.ensure()
    envelopes = initial(args.agents, args.calls)
    feed = OwnerFeed(EventBus(), stream, reactor, "bench", snapshot_interval=3600, initial=lambda: envelopes)
    t = time.perf_counter()
    feed.start()
    queued = time.perf_counter() - t
    await stream.published()
    print(f"{len(envelopes)} envelopes applied and queued in {queued * 1000:.0f} ms, all acknowledged by the "
          f"stream after {(time.perf_counter() - t) * 1000:.0f} ms (acked_seq {stream.acked_seq})")
    await sleep(0.5)

    late = [0.0]
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late[0] = max(late[0], now - last[0] - 0.001)
        last[0] = now

    ticker = LoopingCall(tick)
    ticker.clock = reactor
    ticker.start(0.001)
    stalls, syncs, totals = [], [], []
    for _ in range(args.rounds):
        await sleep(0.2)
        feed._dirty = True
        late[0] = 0.0
        t0 = time.perf_counter()
        d = feed.store_snapshot()
        t1 = time.perf_counter()
        await d
        t2 = time.perf_counter()
        await sleep(0.05)
        syncs.append((t1 - t0) * 1000)
        totals.append((t2 - t0) * 1000)
        stalls.append(late[0] * 1000)
    ticker.stop()
    size = await _size(stream)
    t = time.perf_counter()
    follower_stream = EventStream(other, names)
    manifest = await follower_stream.get_manifest()
    assert manifest is not None
    snapshot = await follower_stream.get_body(manifest)
    read_ms = (time.perf_counter() - t) * 1000
    assert snapshot is not None and len(snapshot["state"]["agents"]) == args.agents
    print(f"{args.agents} agents, {args.calls} calls; stored snapshot {size}")
    print("store_snapshot() on the reactor, ms: " + ", ".join(f"{x:.1f}" for x in syncs))
    print("until stored, ms: " + ", ".join(f"{x:.1f}" for x in totals))
    print("longest reactor stall while storing, ms: " + ", ".join(f"{x:.1f}" for x in stalls))
    print(f"a follower reads and decodes it in {read_ms:.0f} ms")
    feed.stop()
    await owner.bridge.run(_delete, owner, names)
    await owner.close()
    await other.close()
    return {"stalls": stalls}


async def _size(stream: EventStream) -> str:
    m = await stream.get_manifest()
    assert m is not None
    return f"{m.size / 1e6:.2f} MB compressed, {m.entries} entries"


async def _delete(link: NatsLink, names: Names) -> None:
    for name in (names.stream, f"KV_{names.bucket}", f"OBJ_{names.bucket}"):
        try:
            await link.js.delete_stream(name)
        except Exception:  # noqa: S110 - not there
            pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    run_on_reactor(lambda: main(parser.parse_args()))
