"""AMI ingest: events/s through UCS, against panoramisk's parser alone on the
same bytes, and the longest reactor stall while UCS ingests them.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/ami_ingest.py [--repeat 10] [--rounds 3] [--offline-only]

The stream is ../shared/ami-captures/load_mixed.ami (real Asterisk 20 traffic,
11,798 events) repeated ``--repeat`` times.

1. Offline: UCS's parser + PBX model + call tracker + bus in a loop, and
   panoramisk's ``Message.from_line`` parse, and its parse-and-dispatch (its own
   ``AMIProtocol.data_received`` with a ``Manager`` dispatching every event), on
   the stream cut in 64 KiB chunks as a socket would deliver it.  Each side runs ``--rounds`` times;
   the best round counts.
2. Through the whole server (skipped by ``--offline-only``): the real
   ``UCSServer`` (SQLite store, web server, Interaction Processor, the three
   agents of the capture's queue logged in) connected over TCP to
   ``bench/ami_replay.py``, a stand-in Asterisk in a process of its own that
   answers UCS's login, resync and queue actions and then writes the stream as
   fast as the socket takes it.  Events/s run from the replay's first byte to
   the moment UCS has processed the final marker event; meanwhile a 5 ms timer
   measures how late the reactor runs it (the longest stall) and
   ``gc.callbacks`` the longest collection.  Then the same stream once more in
   process (no socket).  The ratios compare these rates to panoramisk's from
   part 1, on the same stream.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402

from ami_replay import capture_body  # noqa: E402
from loadgen_process import LoadGenProcess  # noqa: E402
from ucs.ami.message import AMIParser  # noqa: E402
from ucs.bus import EventBus  # noqa: E402
from ucs.calls.publisher import DomainPublisher  # noqa: E402
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
    pbx = PBX(clock)
    ended: list[object] = []

    class Count(CallObserver):
        def call_ended(self, call: object) -> None:
            ended.append(call)

    # Wired as UCSServer._wire does: the model tells the publisher, then the tracker.
    tracker = CallTracker(pbx, clock, observers=[publisher, Count()])
    pbx.observers = [publisher, tracker]
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


# -- part 2: through the whole server ------------------------------------------------------------

REPLAY = ROOT / "bench" / "ami_replay.py"
#: The ``UserEvent`` ami_replay.py ends the stream with.
MARKER = "UCSBenchEnd"
#: The capture's agents: demo users agent1..agent3 on SIP/1001..SIP/1003, members of ``support``.
AGENTS = 3


@dataclass
class StreamCount:
    """What UCS's parser makes of the stream: events it hands on, responses (the
    capture's own, to actions of the lab's client) and events it drops as noise."""

    events: int
    responses: int
    skipped: int

    @property
    def total(self) -> int:  # counted as the offline part counts
        return self.events + self.responses + self.skipped


def count_stream(body: bytes, repeat: int) -> StreamCount:
    parser = AMIParser(expect_banner=False, skip_events=NOISE_EVENTS)
    events = responses = 0
    for msg in parser.feed(body):
        if "Event" in msg:
            events += 1
        else:
            responses += 1
    return StreamCount(events * repeat, responses * repeat, parser.skipped * repeat)


class ReplayProcess(LoadGenProcess):
    """``ami_replay.py`` as a child process: its lines (``port``, ``started``,
    ``finished``) are waited for by their first word, as the load generator's are."""

    label = "ami_replay.py"

    @classmethod
    def start(cls, reactor: Any, capture: str, repeat: int) -> ReplayProcess:
        proto: ReplayProcess = cls.run(reactor, REPLAY, ["--capture", capture, "--repeat", str(repeat)])
        return proto


class Stalls:
    """How late a 5 ms timer runs (the reactor was busy that long) and how long
    each cyclic-GC collection took, from construction to :meth:`stop`."""

    def __init__(self, reactor: Any, period: float = 0.005) -> None:
        self.reactor = reactor
        self.period = period
        self.worst = 0.0
        self.over = {20: 0, 50: 0}  # stalls longer than that many ms
        self.gc_worst = 0.0
        self.gc_count = [0, 0, 0]  # by generation
        self._gc_t = 0.0
        self._next = time.monotonic() + period
        self._call = reactor.callLater(period, self._tick)
        gc.callbacks.append(self._gc)

    def _tick(self) -> None:
        now = time.monotonic()
        late = now - self._next
        self.worst = max(self.worst, late)
        for ms in self.over:
            self.over[ms] += late > ms / 1000
        self._next = now + self.period
        self._call = self.reactor.callLater(self.period, self._tick)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t = time.perf_counter()
        else:
            self.gc_worst = max(self.gc_worst, time.perf_counter() - self._gc_t)
            self.gc_count[info.get("generation", 2)] += 1

    def stop(self) -> None:
        if self._call.active():
            self._call.cancel()
        gc.callbacks.remove(self._gc)


class Resyncs:
    """Counts the PBX link's finished resyncs, so that a wait can cover every
    resync started so far (UCS starts two at login: one on connect, one at
    ``FullyBooted``)."""

    def __init__(self, link: Any) -> None:
        self.link = link
        self.done = 0
        self._waiters: list[Deferred[None]] = []
        self._arm()

    def _arm(self) -> None:
        self.link.whenSynced().addCallback(self._finished)

    def _finished(self, _: object) -> None:
        self.done += 1
        self._arm()
        if self.done >= self.link.resyncs:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(None)

    def all_done(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self.link.resyncs and self.done >= self.link.resyncs:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d


@dataclass
class ServerResult:
    rate: float
    seconds: float
    stall_ms: float
    stall_over: dict[int, int]
    gc_ms: float
    gc_count: list[int]
    calls: int
    delivered: int
    expected_delivered: int
    skipped: int
    expected_skipped: int
    extra: int
    actions: int
    resyncs: int
    agents: list[str]
    write_seconds: float
    cpu: float  # CPU seconds of this process (all its threads) during the ingest
    inproc_rate: float | None  # the same stream in process, no socket (``--in-process``)


async def through_server(reactor: Any, opts: argparse.Namespace, count: StreamCount) -> ServerResult:
    from ucs import demo
    from ucs.config import Config
    from ucs.constants import AgentStatus
    from ucs.server import UCSServer

    tmp = Path(tempfile.mkdtemp(prefix="ucs-ingest-"))
    (tmp / "plugins").mkdir()
    if opts.log:
        from twisted.logger import globalLogBeginner, textFileLogObserver

        globalLogBeginner.beginLoggingTo([textFileLogObserver(open(opts.log, "a"))], redirectStandardIO=False)
    replay = ReplayProcess.start(reactor, opts.capture, opts.repeat)
    try:
        port = int(await replay.expect("port", timeout=60))
        config = Config().replace(
            demo={"enabled": False},
            ami={"host": "127.0.0.1", "port": port, "username": "ucs", "secret": "bench"},
            store={"url": f"sqlite:///{tmp / 'ucs.db'}"},
            web={"port": 0},
            plugins={"directory": str(tmp / "plugins")},
            agents={"initial_status": "ready"},  # the agents take calls at once
        )
        server = UCSServer(config, reactor)
        link = server.get_pbx_link()
        resyncs = Resyncs(link)
        marker: Deferred[float] = Deferred()
        received = link.eventReceived

        def event_received(message: Any) -> None:
            received(message)
            if message.get("UserEvent") == MARKER:
                marker.callback(time.monotonic())

        link.eventReceived = event_received  # type: ignore[method-assign]
        ended = [0]

        class CountCalls:
            def call_created(self, call: object) -> None: ...
            def call_changed(self, call: object) -> None: ...

            def call_ended(self, call: object) -> None:
                ended[0] += 1

        server.service.startService()
        try:
            starting = server.service._starting
            assert starting is not None
            await starting
            await resyncs.all_done().addTimeout(30, reactor)
            await log_agents_in(server, demo)
            await server.get_agents().settled()
            # Once every component is built: UCSServer._wire sets the lists anew as each one is.
            server.get_call_tracker().observers.append(CountCalls())  # type: ignore[arg-type]
            ami = server.get_ami_client()
            protocol = ami.protocol
            assert protocol is not None, "the AMI link went down"
            parser = protocol._parser
            events0, skipped0, actions0, resyncs0 = link.events, parser.skipped, ami.actionsSent, link.resyncs
            gc.collect()
            started, finished = replay.expect("started"), replay.expect("finished")
            replay.expect("error").addCallbacks(
                lambda why: None if marker.called else marker.errback(RuntimeError(f"ami_replay.py: {why}")),
                lambda _: None)
            stalls = Stalls(reactor)
            cpu0 = time.process_time()
            profile = cProfile.Profile() if opts.profile else None
            if profile is not None:
                profile.enable()
            replay.command("go")
            t_end = await marker.addTimeout(120 + 60 * opts.repeat, reactor)
            cpu = time.process_time() - cpu0
            if profile is not None:
                profile.disable()
                profile.dump_stats(opts.profile)
            stalls.stop()
            calls = ended[0]
            delivered = link.events - events0 - 1  # the marker
            skipped = parser.skipped - skipped0
            actions = ami.actionsSent - actions0
            t_start = float(await started)
            t_written, extra = (await finished).split()
            agents = [f"{a.user.username} {AgentStatus(a.status).name}{' ' + a.reason if a.reason else ''}"
                      for a in server.get_agents().all()]
            resynced = link.resyncs - resyncs0
            inproc_seconds = await in_process(link, opts) if opts.in_process else None
        finally:
            await server.service.stopService()
    finally:
        await replay.quit()
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = t_end - t_start
    return ServerResult(
        rate=count.total / seconds, seconds=seconds, stall_ms=stalls.worst * 1000, stall_over=stalls.over,
        gc_ms=stalls.gc_worst * 1000, gc_count=stalls.gc_count, calls=calls, delivered=delivered - int(extra),
        expected_delivered=count.events, skipped=skipped, expected_skipped=count.skipped, extra=int(extra),
        actions=actions, resyncs=resynced, agents=agents, write_seconds=float(t_written) - t_start, cpu=cpu,
        inproc_rate=count.total / inproc_seconds if inproc_seconds else None,
    )


async def in_process(link: Any, opts: argparse.Namespace) -> float:
    """The same stream through the same running server without the socket: UCS's
    parser, then every event to the PBX link as the AMI client hands it over (the
    model, the tracker, the bus and everything subscribed to it, the agents).  What
    the socket and the reactor's turns add is part 2's figure minus this one."""
    from twisted.internet import reactor

    banner, body = capture_body(opts.capture)
    parts = chunks(banner + b"\r\n" + body * opts.repeat)
    parser = AMIParser(skip_events=NOISE_EVENTS)
    deliver = link.eventReceived
    gc.collect()
    profile = cProfile.Profile() if opts.profile else None
    if profile is not None:
        profile.enable()
    t0 = time.perf_counter()
    for part in parts:
        for msg in parser.feed(part):
            if "Event" in msg:  # the capture's few responses answer nothing of this run
                deliver(msg)
    seconds = time.perf_counter() - t0
    if profile is not None:
        profile.disable()
        profile.dump_stats(opts.profile + ".inproc")
    # What the run scheduled (resyncs at each FullyBooted, CDR writes) settles before the server stops.
    await Deferred.fromCoroutine(_pause(reactor, 1.0))
    return seconds


async def _pause(reactor: Any, seconds: float) -> None:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    await d


async def log_agents_in(server: Any, demo: Any) -> None:
    """The demo's users and lines in the directory, and the capture's three
    agents logged in on their phones through the agents service (READY: UCS
    adds each phone to its queues, as at an agent bar's login).  Each login
    returns once Asterisk confirmed the memberships, so nothing of theirs is
    still on its way when the stream starts."""
    directory = server.get_directory()
    await demo.seed(directory, AGENTS)
    agents = server.get_agents()
    for i in range(1, AGENTS + 1):
        username, _ = demo.user_of(i)
        device, _, _ = demo.line_of(i)
        await agents.login(directory.user_by_username(username), directory.line_by_device(device))


def report_server(r: ServerResult, count: StreamCount, pano: tuple[float, float] | None) -> None:
    """``pano``: panoramisk's parse and parse+dispatch rates from part 1."""
    print(f"through the whole server (UCSServer + AMI over TCP from ami_replay.py, {AGENTS} agents logged in):")
    print(f"UCS server, socket to bus   : {count.total} events, {r.calls} calls, {r.rate:,.0f} events/s "
          f"({r.seconds:.2f} s, UCS CPU {r.cpu:.2f} s; the replay wrote it all in {r.write_seconds:.2f} s)")
    if pano:
        print(f"ratio UCS server/panoramisk : {r.rate / pano[0]:.2f} of its parser, "
              f"{r.rate / pano[1]:.2f} of its parse+dispatch (target >= 1.3)")
    else:
        print("ratio UCS server/panoramisk : not measured (--server-only)")
    if r.inproc_rate:
        print(f"UCS server, in process      : {count.total} events, {r.inproc_rate:,.0f} events/s (parser -> model "
              f"-> tracker -> bus and all its subscribers -> agents; no socket)")
        if pano:
            print(f"ratio in process/panoramisk : {r.inproc_rate / pano[0]:.2f} of its parser, "
                  f"{r.inproc_rate / pano[1]:.2f} of its parse+dispatch (target >= 1.3)")
    print(f"longest reactor stall while ingesting: {r.stall_ms:.1f} ms (target < 50 ms); "
          f"longest GC pause {r.gc_ms:.1f} ms; stalls over 20 / 50 ms: {r.stall_over[20]} / {r.stall_over[50]}; "
          f"collections by generation {r.gc_count}")
    ok = r.delivered == r.expected_delivered and r.skipped == r.expected_skipped
    print(f"events of the stream processed: {r.delivered + r.skipped + count.responses} of {count.total} "
          f"({r.delivered} to the PBX model, {r.skipped} dropped as noise, {count.responses} responses): "
          f"{'all' if ok else 'MISSING SOME'}; besides, {r.extra} member events answering UCS's actions")
    print(f"while ingesting UCS sent {r.actions} actions and resynced {r.resyncs} times; agents at the end: "
          f"{', '.join(r.agents)}")


def server_part(opts: argparse.Namespace, count: StreamCount, pano: tuple[float, float] | None) -> bool:
    """Runs the reactor until the server part is over; False if it failed."""
    from twisted.internet import reactor

    failed: list[bool] = []

    async def go() -> None:
        try:
            result = await through_server(reactor, opts, count)
            report_server(result, count, pano)
        except Exception:
            failed.append(True)
            raise
        finally:
            reactor.stop()

    def start() -> None:
        ensureDeferred(go()).addErrback(lambda f: f.printTraceback(file=sys.stdout))

    reactor.callWhenRunning(start)
    reactor.run()
    return not failed


def panoramisk_dispatch_round(parts: list[bytes]) -> tuple[int, float]:
    """panoramisk's own ``AMIProtocol.data_received`` with a ``Manager`` dispatching
    every event to one callback registered for ``*``: its parse-and-dispatch, what a
    panoramisk-based server does with each chunk before its own domain work."""
    import asyncio
    import logging

    from panoramisk import Manager
    from panoramisk.ami_protocol import AMIProtocol

    logging.getLogger("panoramisk").setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    try:
        manager = Manager(loop=loop)
        seen = [0]

        def on_event(manager: Any, event: Any) -> None:
            seen[0] += 1

        manager.register_event("*", on_event)
        proto = AMIProtocol()
        proto.connection_made(None)
        proto.factory = manager
        t0 = time.perf_counter()
        for part in parts:
            proto.data_received(part)
        return seen[0], time.perf_counter() - t0
    finally:
        loop.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--capture", default=str(ROOT / "tests" / "data" / "ami-captures" / "load_mixed.ami"))
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--offline-only", action="store_true", help="skip part 2 (through the whole server)")
    only.add_argument("--server-only", action="store_true",
                      help="skip part 1 (no panoramisk needed; no ratio printed): what the tests run")
    ap.add_argument("--log", metavar="FILE", help="part 2: append UCS's log to FILE")
    ap.add_argument("--no-in-process", dest="in_process", action="store_false",
                    help="part 2: skip the second pass of the stream, in process without the socket")
    ap.add_argument("--profile", metavar="FILE",
                    help="part 2: cProfile the ingest into FILE (its figures are then slowed by the profiler)")
    args = ap.parse_args()
    banner, body = capture_body(args.capture)
    stream = banner + b"\r\n" + body * args.repeat
    n_chunks = -(-len(stream) // CHUNK)
    print(f"python {platform.python_version()} on {platform.machine()}, {n_chunks * CHUNK / 1e6:.1f} MB stream")
    pano = None if args.server_only else offline_part(stream, args.rounds)
    del stream
    if args.offline_only:
        return
    sys.stdout.flush()
    if not server_part(args, count_stream(body, args.repeat), pano):
        sys.exit(1)


def whole_process_round(path: str) -> float:
    """``ucs-replay FILE`` in a process of its own, output to /dev/null: wall seconds
    from starting the interpreter to its exit (imports, parse, model, tracker, JSON)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ucs.replay", path], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def offline_part(stream: bytes, rounds: int) -> tuple[float, float]:
    """Part 1; returns panoramisk's rates (parse, parse+dispatch), for part 2's ratios."""
    parts = chunks(stream)
    best_ucs = best_pano = best_disp = best_whole = float("inf")
    with tempfile.NamedTemporaryFile(suffix=".ami") as f:
        f.write(stream)
        f.flush()
        for _ in range(rounds):  # each round runs every side once: all see the machine alike
            best_whole = min(best_whole, whole_process_round(f.name))
            gc.collect()
            n_ucs, calls, t = ucs_round(parts)
            best_ucs = min(best_ucs, t)
            gc.collect()
            n_pano, t = panoramisk_round(parts)
            best_pano = min(best_pano, t)
            gc.collect()
            n_disp, t = panoramisk_dispatch_round(parts)
            best_disp = min(best_disp, t)
    ucs_rate, pano_rate = n_ucs / best_ucs, n_pano / best_pano
    disp_rate = n_ucs / best_disp  # every event of the stream, as UCS counts them
    print(f"UCS parser+model+tracker+bus: {n_ucs} events, {calls} calls, {ucs_rate:,.0f} events/s")
    print(f"panoramisk Message parser   : {n_pano} events, {pano_rate:,.0f} events/s")
    print(f"panoramisk parse+dispatch   : {n_disp} events dispatched, {disp_rate:,.0f} events/s "
          f"(AMIProtocol.data_received + Manager.dispatch)")
    print(f"ratio UCS/panoramisk        : {ucs_rate / pano_rate:.2f} of its parser, "
          f"{ucs_rate / disp_rate:.2f} of its parse+dispatch (target >= 1.3)")
    print(f"ucs-replay, whole process   : {best_whole:.2f} s ({n_ucs / best_whole:,.0f} events/s: interpreter start, "
          f"imports, parser, model, tracker, JSON out); panoramisk parse+dispatch {best_disp:.2f} s")
    print(f"ratio whole process/pano    : {best_disp / best_whole:.2f} of its parse+dispatch (issue 15: >= 2.0)")
    return pano_rate, disp_rate


if __name__ == "__main__":
    main()
