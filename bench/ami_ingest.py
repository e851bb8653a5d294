"""AMI ingest: events/s through UCS's parser + PBX model + call tracker + bus,
against panoramisk's parser alone on the same bytes.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/ami_ingest.py [--repeat 10] [--rounds 3]

The stream is ../shared/ami-captures/load_mixed.ami (real Asterisk 20 traffic,
11,798 events) repeated ``--repeat`` times, fed in 64 KiB chunks as a socket
would deliver it.  Each side runs ``--rounds`` times; the best round counts.
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ucs.ami.message import AMIParser  # noqa: E402
from ucs.bus import DomainPublisher, EventBus  # noqa: E402
from ucs.calls.tracker import CallObserver, CallTracker  # noqa: E402
from ucs.pbx.pbx import NOISE_EVENTS, PBX  # noqa: E402
from ucs.pbx.wireclock import WireClock  # noqa: E402

CHUNK = 65536


def chunks(data: bytes) -> list[bytes]:
    return [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]


def ucs_round(parts: list[bytes]) -> tuple[int, int, float]:
    clock = WireClock()
    bus = EventBus()
    publisher = DomainPublisher(bus)
    pbx = PBX(clock, [publisher])
    ended: list[object] = []

    class Count(CallObserver):
        def call_ended(self, call: object) -> None:
            ended.append(call)

    CallTracker(pbx, clock, observers=[publisher, Count()])
    parser = AMIParser(skip_events=NOISE_EVENTS)  # as UCS's AMI client does
    n = 0
    feed = pbx.feed
    t0 = time.perf_counter()
    for part in parts:
        for msg in parser.feed(part):
            n += 1
            feed(msg)
    # Every event of the stream counts, those the parser dropped as noise too.
    return n + parser.skipped, len(ended), time.perf_counter() - t0


def panoramisk_round(parts: list[bytes]) -> tuple[int, float]:
    from panoramisk.message import Message

    queue: list[str] = []
    n = 0
    t0 = time.perf_counter()
    for part in parts:  # what panoramisk's AMIProtocol.data_received does, minus dispatch
        data = part.decode("utf-8", "ignore")
        if queue:
            data = queue.pop() + data
        lines = data.split("\r\n\r\n")
        queue.append(lines.pop(-1))
        for line in lines:
            if Message.from_line(line.strip()) is not None:
                n += 1
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--capture", default=str(ROOT.parent / "shared" / "ami-captures" / "load_mixed.ami"))
    args = ap.parse_args()
    data = Path(args.capture).read_bytes()
    banner, _, body = data.partition(b"\r\n")
    parts = chunks(banner + b"\r\n" + body * args.repeat)
    print(f"python {platform.python_version()} on {platform.machine()}, {len(parts) * CHUNK / 1e6:.1f} MB stream")
    best_ucs = best_pano = float("inf")
    for _ in range(args.rounds):
        gc.collect()
        n_ucs, calls, t = ucs_round(parts)
        best_ucs = min(best_ucs, t)
        gc.collect()
        n_pano, t = panoramisk_round(parts)
        best_pano = min(best_pano, t)
    ucs_rate, pano_rate = n_ucs / best_ucs, n_pano / best_pano
    print(f"UCS parser+model+tracker+bus: {n_ucs} events, {calls} calls, {ucs_rate:,.0f} events/s")
    print(f"panoramisk Message parser   : {n_pano} events, {pano_rate:,.0f} events/s")
    print(f"ratio UCS/panoramisk        : {ucs_rate / pano_rate:.2f} (target >= 1.3)")


if __name__ == "__main__":
    main()
