"""Fan-out benchmark: one UCS process with its simulated PBX, N agents in 20
queues, C new calls a second, N agent bars held by a separate process
(``bench/loadgen.py``).

    .venv/bin/python bench/fanout.py --agents 1000 [--rate 5] [--seconds 60]

What it does, in order (every figure is printed, and the raw per-run numbers
are appended as one JSON line to ``bench/fanout-results.jsonl``):

1. builds UCS (``UCSServer`` in demo mode, no demo callers) in this process;
   the directory gets N users ``bench1..benchN`` with one line each
   (``SIP/100001..``, identifier ``bench-phone-I``) and 20 queues
   ``q00..q19`` (user I in queue I mod 20) written straight into the
   directory's tables (no argon2 hash: the bars log in by SSO; not persisted
   to the store), the same 20 queues (rrmemory, member timeout 15 s) and
   dialplan numbers 5100..5119 in the simulator;
2. starts ``loadgen.py`` (asyncio + ``websockets``), which opens N
   WebSockets, logs each in by ``sso``, pairs it (``identifier``) and
   ``provision``\\ s it (READY: UCS adds the phone to its queue);
3. idle CPU of this process over ``--idle`` seconds with N READY sessions;
4. C calls/s for ``--seconds`` (``sim.caller_calls`` to a random queue
   number; phones answer after 0.5-2 s, callers hang up 5-15 s after the
   answer, ACW 15 s);
5. latency: every event message UCS hands to a connection is logged here
   with the time the AMI event that caused it reached UCS
   (``PBXLink.eventReceived`` wrapped: ``time.time()`` before the model sees
   the event), and a CRC of its bytes; the load generator logs the time
   each message arrived (``time.time()``, same machine, same clock) with the
   CRC of what it got.  Messages are matched per client in order: latency is
   arrival - AMI event in; a message the server sent that the client never
   got is lost, a different order is reordered.  Messages not caused by an AMI
   event (waiting-caller counts flushed by the coalescing timer, replies) are
   timed from the moment UCS sent them and reported apart;
6. agent state changes/s end to end (``--status-agents`` bars switch
   READY↔AUX as fast as the replies come: request → QueuePause to the PBX →
   its QueueMemberPause → ``agent.status`` to the agent's tabs);
7. all bars drop at once (TCP abort) and reconnect with the agent bar's
   backoff (full jitter: a random wait up to min(15 s, 0.5 s × 2^attempt)) and
   ``session.resume`` + ``state``; the time until the last one has its state is
   printed, with the connections the kernel refused because UCS's listen queue
   was full (``ListenOverflows``).

CPU and RSS are this process's (psutil); the load generator runs on the
other core.

With ``--profile DIR`` each phase (login, idle, load, status, reconnect) runs
under cProfile, its stats are written to ``DIR/<phase>.prof`` and its most
costly functions printed; the figures of such a run are slowed by the profiler
and are not appended to ``fanout-results.jsonl``.
"""

from __future__ import annotations

import argparse
import array
import cProfile
import pstats
import json
import os
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import psutil
from twisted.internet import reactor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from clusterkit import (QUEUES, SSO_SECRET, PoissonCalls, append_result, bench_phones, bench_queue,  # noqa: E402
                        bench_user, machine)
from loadgen_process import LoadGenProcess  # noqa: E402
from timing import pct, run_on_reactor, sleep  # noqa: E402
from ucs import demo as ucs_demo  # noqa: E402
from ucs.api.auth import sso_token  # noqa: E402,F401
from ucs.config import Config  # noqa: E402
from ucs.directory.directory import _from_doc  # noqa: E402
from ucs.server import UCSServer  # noqa: E402
from ucs.web.connection import Connection  # noqa: E402

#: The web port's listen backlog unless --backlog says otherwise: ``[web] backlog``'s default.
DEFAULT_BACKLOG = Config().web.backlog

# -- what caused the message being sent -------------------------------------------------

#: (origin time, kind): kind 0 = an AMI event, 1 = a timer (coalesced flush, ACW...), 2 = a request
ORIGIN: list[Any] = [None, 1]
_LAST: list[Any] = [None, 0]
RECORD = [True]


def _crc(out: Any) -> int:
    if _LAST[0] is out:
        return _LAST[1]
    c = zlib.crc32(out.data)
    _LAST[0], _LAST[1] = out, c
    return c


_orig_send = Connection.send


def _send(self: Connection, out: Any, key: str | None = None) -> None:
    if RECORD[0] and self.open and out.data.startswith(b'{"event":'):
        logs = self.__dict__.get("_bench")
        if logs is None:
            logs = self.__dict__["_bench"] = (array.array("d"), array.array("b"), array.array("L"),
                                              array.array("d"))
        now = time.time()
        t, kind = ORIGIN
        if t is None:
            t, kind = now, 1
        logs[0].append(t)
        logs[1].append(kind)
        logs[2].append(_crc(out))
        logs[3].append(now)  # handed to the connection (to the socket unless the client is slow)
    _orig_send(self, out, key)


_orig_received = Connection.received


def _received(self: Connection, payload: bytes, is_binary: bool) -> None:
    ORIGIN[0], ORIGIN[1] = time.time(), 2
    try:
        _orig_received(self, payload, is_binary)
    finally:
        ORIGIN[0] = None


Connection.send = _send  # type: ignore[method-assign]
Connection.received = _received  # type: ignore[method-assign]


def wrap_link(link: Any) -> None:
    orig = link.eventReceived

    def event_received(message: Any) -> None:
        ORIGIN[0], ORIGIN[1] = time.time(), 0
        try:
            orig(message)
        finally:
            ORIGIN[0] = None

    link.eventReceived = event_received


# -- the directory: N users and lines without N password hashes -------------------------------

N_AGENTS = [0]


async def bench_seed(directory: Any, phones: int) -> None:
    await _orig_seed(directory, 1)
    qids = []
    for i in range(QUEUES):
        q = await directory.add("queues", {"name": f"Queue {i:02d}", "asterisk_name": f"q{i:02d}", "type": 1})
        qids.append(q.id)
    t0 = time.perf_counter()
    lid = directory._next_id["lines"]
    uid = directory._next_id["users"]
    for i in range(1, N_AGENTS[0] + 1):
        line, user = bench_user(i, lid, uid, qids[bench_queue(i)])
        directory.lines[lid] = _from_doc("lines", line)
        directory.users[uid] = _from_doc("users", user)
        lid += 1
        uid += 1
    directory._next_id["lines"] = lid
    directory._next_id["users"] = uid
    print(f"directory: {N_AGENTS[0]} users and lines in {time.perf_counter() - t0:.2f} s", flush=True)


_orig_seed = ucs_demo.seed
ucs_demo.seed = bench_seed  # type: ignore[assignment]


# -- the load generator --------------------------------------------------------------------




def listen_overflows() -> int:
    """The kernel's count of connections refused because a listen queue was full
    (``TcpExt ListenOverflows``, all sockets of this network namespace): a client
    whose SYN is dropped retries it after 1, 3, 7 … s."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return 0


class LoadGens:
    """The clients split between ``k`` load-generator processes (``--loadgens``): one
    event loop reading 10,000 sockets queues a burst of 500 frames behind each other,
    and that wait would be measured as UCS's latency.  Commands go to all (``status``
    to the first only); their answers are merged."""

    def __init__(self, port: int, n: int, k: int, concurrency: int) -> None:
        k = max(1, min(k, n))
        sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
        firsts = [1 + sum(sizes[:i]) for i in range(k)]
        self.procs = [LoadGenProcess.spawn(reactor, port, size, SSO_SECRET,
                                           ["--concurrency", str(max(1, concurrency // k)), "--first", str(first)],
                                           echo=True)
                      for size, first in zip(sizes, firsts)]
        self.sizes = sizes
        self.cpu = MultiCPU([psutil.Process(p.transport.pid) for p in self.procs if p.transport is not None])

    async def ready(self) -> str:
        waits = [p.expect("ready") for p in self.procs]  # all asked first: any may be ready first
        lines = [await w for w in waits]
        ok = failed = 0
        seconds = 0.0
        for line in lines:  # "N clients (F failed) in T s"
            words = line.split()
            ok += int(words[0])
            failed += int(words[2].lstrip("("))
            seconds = max(seconds, float(words[-2]))
        return f"{ok} clients ({failed} failed) in {seconds:.1f} s, {len(self.procs)} load generators"

    async def dump(self, path: Path) -> dict[str, Any]:
        """Every client's log, asked of all processes at once (one after the other,
        the later ones would log messages sent after UCS stopped logging)."""
        parts = [path.with_suffix(f".{i}.json") for i in range(len(self.procs))]
        waits = [p.expect("dumped") for p in self.procs]
        for p, part in zip(self.procs, parts):
            p.command(f"dump {part}")
        merged: dict[str, Any] = {}
        for wait, part in zip(waits, parts):
            await wait
            merged.update(json.loads(part.read_text()))
        return merged

    async def status(self, m: int, seconds: float) -> dict[str, Any]:
        first = self.procs[0]
        first.command(f"status {min(m, self.sizes[0])} {seconds}")
        return json.loads(await first.expect("status"))

    async def reconnect(self) -> dict[str, Any]:
        waits = [p.expect("reconnected") for p in self.procs]
        for p in self.procs:
            p.command("reconnect")
        parts = [json.loads(await w) for w in waits]
        done = sorted(t for part in parts for t in part.pop("done_at"))
        return {"resumed": sum(part["resumed"] for part in parts), "failed": sum(part["failed"] for part in parts),
                "attempts": sum(part["attempts"] for part in parts),
                "seconds": max(done, default=float("nan")), "p50_s": done[len(done) // 2] if done else None}

    async def quit(self) -> None:
        for p in self.procs:
            await p.quit()


class MultiCPU:
    """CPU of several processes together, in % of one core."""

    def __init__(self, procs: list[psutil.Process]) -> None:
        self.parts = [CPU(p) for p in procs]

    def start(self) -> None:
        for part in self.parts:
            part.start()

    def percent(self) -> float:
        return sum(part.percent() for part in self.parts)


class CPU:
    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.start()

    def start(self) -> None:
        t = self.proc.cpu_times()
        self.c0, self.t0 = t.user + t.system, time.monotonic()

    def percent(self) -> float:
        t = self.proc.cpu_times()
        return 100 * (t.user + t.system - self.c0) / (time.monotonic() - self.t0)


class Phases:
    """cProfile around each phase of the run when ``--profile DIR`` is given."""

    def __init__(self, directory: str | None) -> None:
        self.dir = Path(directory) if directory else None
        self.prof: cProfile.Profile | None = None
        self.name = ""
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str) -> None:
        self.stop()
        if self.dir is not None:
            self.name = name
            self.prof = cProfile.Profile()
            self.prof.enable()

    def stop(self) -> None:
        if self.prof is None or self.dir is None:
            return
        self.prof.disable()
        path = self.dir / f"{self.name}.prof"
        self.prof.dump_stats(str(path))
        self.prof = None
        stats = pstats.Stats(str(path))
        print(f"--- profile of {self.name} ({path}), by own time:", flush=True)
        stats.sort_stats("tottime").print_stats(12)
        print(f"--- profile of {self.name}, by cumulative time:", flush=True)
        stats.sort_stats("cumulative").print_stats(25)
        sys.stdout.flush()


# -- the run --------------------------------------------------------------------------------------


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    n = opts.agents
    N_AGENTS[0] = n
    tmp = Path(tempfile.mkdtemp(prefix="ucs-fanout-"))
    config = Config().replace(
        demo={"enabled": True, "call_rate": 0, "phones": 1},
        store={"url": f"sqlite:///{tmp / 'ucs.db'}"},
        web={"port": 0, "max_connections": 0, "backlog": opts.backlog},
        plugins={"directory": str(tmp / "plugins")},
        auth={"sso_secret": SSO_SECRET, "sso_window": 3600.0},
        agents={"initial_status": "ready"},  # the agents take calls at once
        ami={"filters": ["!Event: VarSet", "!Event: Newexten"]} if opts.filters else {},
    )
    server = UCSServer(config, reactor)
    svc = server.get_demo_pbx()
    sim = svc.sim
    bench_phones(sim, n, answer_after=(0.5, 2.0), remote_answer=True)
    wrap_link(server.get_pbx_link())
    proc = psutil.Process()
    server.service.startService()
    starting = server.service._starting
    assert starting is not None
    await starting
    if not server.get_pbx_link().resyncs:
        await server.get_pbx_link().whenSynced()
    if opts.gc:
        import gc as _gc

        _gc.set_threshold(*(int(x) for x in opts.gc.split(",")))
    port = server.get_web_service().port
    rss0 = proc.memory_info().rss
    print(f"UCS up on port {port}; RSS {rss0 / 2**20:.1f} MiB with {n} users in the directory", flush=True)
    result: dict[str, Any] = {"agents": n, "rate": opts.rate, "seconds": opts.seconds, "filters": opts.filters,
                              "machine": machine(),
                              # "backlog": set only when not the config's default (an experiment)
                              "backlog": None if opts.backlog == DEFAULT_BACKLOG else opts.backlog,
                              "listen_backlog": opts.backlog, "gc": opts.gc, "loadgens": opts.loadgens}

    lg = LoadGens(port, n, opts.loadgens, opts.concurrency)
    lg_cpu = lg.cpu

    # 2. log in and pair everyone
    phases = Phases(opts.profile)
    phases.start("login")
    cpu = CPU(proc)
    t0 = time.monotonic()
    overflows = listen_overflows()
    ready = await lg.ready()
    login_s = time.monotonic() - t0
    phases.stop()
    result["login_all_s"] = round(login_s, 2)
    result["login_cpu_pct"] = round(cpu.percent(), 1)
    result["login_listen_overflows"] = listen_overflows() - overflows
    result["login_loadgen_cpu_pct"] = round(lg_cpu.percent(), 1)
    agents = server.get_agents()
    print(f"{n} bars logged in and READY in {login_s:.1f} s ({ready}); UCS CPU {result['login_cpu_pct']} %; "
          f"agents {len(agents.all())}; listen queue overflows {result['login_listen_overflows']}; load generator CPU "
          f"{result['login_loadgen_cpu_pct']} %", flush=True)
    await sleep(2)
    import gc
    t_gc = time.perf_counter()
    gc.collect()
    result["full_gc_ms"] = round((time.perf_counter() - t_gc) * 1000, 1)
    result["gc_tracked"] = len(gc.get_objects())
    result["gc_frozen"] = gc.get_freeze_count()
    if opts.census:
        import collections

        by_type = collections.Counter(type(o).__module__ + "." + type(o).__qualname__ for o in gc.get_objects())
        print(f"objects the collector tracks, per session ({n}):", flush=True)
        for name, count in by_type.most_common(40):
            print(f"    {count / n:7.2f}  {name}", flush=True)
    print(f"a full collection with {n} sessions: {result['full_gc_ms']} ms, {result['gc_tracked']:,} objects tracked "
          f"({result['gc_frozen']:,} frozen at start-up, not walked)", flush=True)
    rss1 = proc.memory_info().rss
    result["rss_base_mib"] = round(rss0 / 2**20, 1)
    result["rss_sessions_mib"] = round(rss1 / 2**20, 1)
    result["kib_per_session"] = round((rss1 - rss0) / n / 1024, 1)
    print(f"RSS {rss1 / 2**20:.1f} MiB: {(rss1 - rss0) / n / 1024:.1f} KiB per session (agent included)", flush=True)

    # 3. idle
    phases.start("idle")
    cpu.start()
    await sleep(opts.idle)
    result["idle_cpu_pct"] = round(cpu.percent(), 1)
    phases.stop()
    print(f"idle CPU with {n} READY sessions over {opts.idle:g} s: {result['idle_cpu_pct']} % of a core", flush=True)

    # 4. calls
    calls = PoissonCalls(sim, opts.rate, reactor)

    t_load = time.time()
    phases.start("load")
    cpu.start()
    stalls = Stalls()
    slow = SlowTurns() if opts.slow_turns else None
    calls.start()
    samples: list[float] = []
    lg_samples: list[float] = []
    lg_cpu.start()
    for _ in range(int(opts.seconds // 5)):
        await sleep(5)
        samples.append(cpu.percent())
        lg_samples.append(lg_cpu.percent())
        cpu.start()
        lg_cpu.start()
    calls.stop()
    stalls.stop()
    if slow is not None:
        slow_list = slow.stop()
        result["slow_turns"] = slow_list
        print("  what ran over 20 ms on the reactor (name, times, longest ms):", slow_list[:15], flush=True)
    phases.stop()
    t_load_end = time.time()
    result["stall_max_ms"] = round(stalls.worst * 1000, 1)
    result["gc_pause_max_ms"] = round(stalls.gc_worst * 1000, 1)
    result["gc_full"] = stalls.gc_full
    result["gc_by_generation"] = {g: [n, round(worst * 1000, 1), round(total * 1000)]
                                  for g, (n, worst, total) in stalls.by_generation.items()}
    result["stalls_over_20_50_ms"] = stalls.long_stalls
    print(f"longest reactor stall during the load {result['stall_max_ms']} ms (longest GC pause "
          f"{result['gc_pause_max_ms']} ms, {stalls.gc_count} collections, {stalls.gc_full} of them full)", flush=True)
    print("  collections by generation (count, longest ms, total ms):", result["gc_by_generation"],
          "; reactor stalls over 20 / 50 ms:", stalls.long_stalls, flush=True)
    if stalls.census:
        print("  objects the first middle collection walked:", stalls.census, flush=True)
    result["calls"] = calls.calls
    result["load_cpu_pct"] = round(sum(samples) / max(1, len(samples)), 1)
    result["load_cpu_max5s_pct"] = round(max(samples, default=0), 1)
    result["loadgen_cpu_pct"] = round(sum(lg_samples) / max(1, len(lg_samples)), 1)
    result["loadgen_cpu_max5s_pct"] = round(max(lg_samples, default=0), 1)
    print(f"{calls.calls} calls in {opts.seconds:g} s; UCS CPU {result['load_cpu_pct']} % of a core "
          f"(5 s max {result['load_cpu_max5s_pct']} %); load generator {result['loadgen_cpu_pct']} % "
          f"(5 s max {result['loadgen_cpu_max5s_pct']} %)", flush=True)
    await sleep(3)  # let the last messages arrive

    # 5. latency: match what UCS sent to what each client got
    RECORD[0] = False
    path = tmp / "client.json"
    client = await lg.dump(path)
    hub = _hub(server)
    lat_ami: list[float] = []
    lat_other: list[float] = []
    in_ucs: list[float] = []  # AMI event -> handed to the socket: UCS's part of lat_ami
    by_event: dict[str, list[float]] = {}
    lost = reordered = extra = matched = 0
    for conn in list(hub.connections):
        logs = conn.__dict__.get("_bench")
        user = conn.session.user.username if conn.session is not None and conn.session.user else None
        if logs is None or user is None or user not in client:
            continue
        t_in, kinds, crcs, t_out = logs
        got_t, got_crc, got_name = client[user]
        # align: the server log starts at the connection's hello, as does the client's
        i = 0
        got: dict[int, list[int]] = {}
        for j, c in enumerate(got_crc):
            got.setdefault(c, []).append(j)
        last_j = last_matched = -1
        for k in range(len(crcs)):
            js = got.get(crcs[k])
            if not js:
                lost += 1
                continue
            j = js.pop(0)
            if j < last_j:
                reordered += 1
            last_j = j
            last_matched = max(last_matched, j)
            matched += 1
            if t_in[k] < t_load:
                continue
            dt = (got_t[j] - t_in[k]) * 1000
            name = got_name[j]
            if kinds[k] == 0:
                lat_ami.append(dt)
                in_ucs.append((t_out[k] - t_in[k]) * 1000)
                by_event.setdefault(name, []).append(dt)
            else:
                lat_other.append(dt)
                by_event.setdefault(name + " (timer)", []).append(dt)
            i += 1
        # A client's messages after its last matched one came after UCS stopped logging
        # (the load generators are asked for their logs a moment later): not extra.
        extra += len([j for js in got.values() for j in js if j < last_matched])
    msgs = len(lat_ami) + len(lat_other)
    dur = t_load_end - t_load
    result.update({
        "messages": msgs, "messages_per_s": round(msgs / dur, 1),
        "p50_ms": round(pct(lat_ami, 50), 2), "p99_ms": round(pct(lat_ami, 99), 2),
        "max_ms": round(max(lat_ami, default=float("nan")), 2),
        "in_ucs_p50_ms": round(pct(in_ucs, 50), 2), "in_ucs_p99_ms": round(pct(in_ucs, 99), 2),
        "in_ucs_max_ms": round(max(in_ucs, default=float("nan")), 2),
        "timer_p50_ms": round(pct(lat_other, 50), 2), "timer_p99_ms": round(pct(lat_other, 99), 2),
        "timer_max_ms": round(max(lat_other, default=float("nan")), 2),
        "lost": lost, "reordered": reordered, "unmatched_at_client": extra, "matched": matched,
        "by_event": {k: {"n": len(v), "p50": round(pct(v, 50), 2), "p99": round(pct(v, 99), 2)}
                     for k, v in sorted(by_event.items())},
        "ami_events": server.get_pbx_link().events,
    })
    print(f"messages out during the load: {msgs} ({msgs / dur:,.0f}/s)", flush=True)
    print(f"latency AMI event in UCS -> client, {len(lat_ami)} messages: p50 {result['p50_ms']} ms, "
          f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms", flush=True)
    print(f"  of which in UCS (AMI event -> written to the socket): p50 {result['in_ucs_p50_ms']} ms, "
          f"p99 {result['in_ucs_p99_ms']} ms, max {result['in_ucs_max_ms']} ms", flush=True)
    print(f"latency UCS send (coalesced flushes, timers) -> client, {len(lat_other)} messages: "
          f"p50 {result['timer_p50_ms']} ms, p99 {result['timer_p99_ms']} ms, max {result['timer_max_ms']} ms",
          flush=True)
    for k, v in result["by_event"].items():
        print(f"    {k:28} n={v['n']:7}  p50 {v['p50']:8.2f} ms  p99 {v['p99']:8.2f} ms")
    print(f"lost {lost}, reordered {reordered}, at the client but not logged as sent {extra} "
          f"(matched {matched})", flush=True)

    # wait for calls to end before the status benchmark
    for _ in range(60):
        if not server.get_call_tracker().active_calls():
            break
        await sleep(1)
    await sleep(16)  # ACW

    # 6. agent state changes
    if opts.status_agents:
        phases.start("status")
        cpu.start()
        st = await lg.status(min(opts.status_agents, n), opts.status_seconds)
        st["cpu_pct"] = round(cpu.percent(), 1)
        result["status"] = st
        phases.stop()
        print(f"agent state changes: {st['changes']} in {st['seconds']} s by {st['agents']} bars = "
              f"{st['per_s']:.0f}/s; request->reply p50 {st['reply_p50_ms']} ms p99 {st['reply_p99_ms']} ms; "
              f"request->agent.status p50 {st['event_p50_ms']} ms p99 {st['event_p99_ms']} ms; UCS CPU "
              f"{st['cpu_pct']} %", flush=True)

    # 7. everybody drops and comes back
    phases.start("reconnect")
    cpu.start()
    lg_cpu.start()
    overflows = listen_overflows()
    rc = await lg.reconnect()
    rc["cpu_pct"] = round(cpu.percent(), 1)
    rc["listen_overflows"] = listen_overflows() - overflows
    rc["loadgen_cpu_pct"] = round(lg_cpu.percent(), 1)
    result["reconnect"] = rc
    phases.stop()
    print(f"all {n} dropped at once: {rc['resumed']} resumed, {rc['failed']} failed, last one back with its "
          f"state after {rc['seconds']:.1f} s, p50 {rc['p50_s'] or float('nan'):.1f} s, {rc['attempts']} attempts "
          f"(UCS CPU {rc['cpu_pct']} %, load generator {rc['loadgen_cpu_pct']} %; listen queue overflows "
          f"{rc['listen_overflows']})", flush=True)

    await lg.quit()
    await server.service.stopService()
    if opts.profile:
        return result
    append_result(HERE / "fanout-results.jsonl", result)
    return result


class SlowTurns:
    """What ran long on the reactor (``--slow-turns``): every function a timer runs
    (UCS's, the simulator's, the bench's own calls) and every read of the AMI link
    and of a bar's socket, timed; those over ``threshold`` counted by name, with
    the longest.  A GC pause counts against whatever was running."""

    def __init__(self, threshold: float = 0.02) -> None:
        from ucs.ami.protocol import AMIProtocol
        from ucs.web.protocol import AgentBarProtocol

        self.threshold = threshold
        self.slow: dict[str, list[float]] = {}  # name -> [count, longest s]
        self._patched: list[tuple[Any, str, Any]] = []
        self._patch(reactor, "callLater", self._call_later(reactor.callLater))
        for cls in (AMIProtocol, AgentBarProtocol):
            self._patch(cls, "dataReceived", self._timed_method(cls.dataReceived, f"{cls.__name__}.dataReceived"))

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._patched.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def _record(self, name: str, took: float) -> None:
        if took > self.threshold:
            entry = self.slow.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] = max(entry[1], took)

    def _call_later(self, original: Any) -> Any:
        def call_later(delay: float, fn: Any, *args: Any, **kw: Any) -> Any:
            name = getattr(fn, "__qualname__", None) or type(fn).__qualname__

            def timed(*a: Any, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    self._record(name, time.perf_counter() - t0)

            return original(delay, timed, *args, **kw)

        return call_later

    def _timed_method(self, method: Any, name: str) -> Any:
        def timed(this: Any, *a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return method(this, *a, **k)
            finally:
                self._record(name, time.perf_counter() - t0)

        return timed

    def stop(self) -> list[tuple[str, int, float]]:
        for owner, name, value in reversed(self._patched):
            setattr(owner, name, value)
        return sorted(((n, int(c), round(m * 1000, 1)) for n, (c, m) in self.slow.items()),
                      key=lambda e: -e[1])


class Stalls:
    """The longest time the reactor did not run a 5 ms timer on time, and the longest GC pause."""

    def __init__(self) -> None:
        import gc

        self.worst = self.gc_worst = 0.0
        self.gc_count = 0
        self.gc_full = 0  # collections of the oldest generation (they walk every live object)
        self.by_generation = {0: [0, 0.0, 0.0], 1: [0, 0.0, 0.0], 2: [0, 0.0, 0.0]}  # count, longest, total
        self.long_stalls = [0, 0]  # reactor stalls over 20 ms, over 50 ms
        self.census: list[tuple[str, int]] | None = None  # what the first middle collection walked
        self._gc_t = 0.0
        self._next = time.monotonic() + 0.005
        self._dc = reactor.callLater(0.005, self._tick)
        self._cb = self._gc
        gc.callbacks.append(self._cb)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            if self.census is None and info.get("generation") == 1:
                self.census = self._census()
            self._gc_t = time.perf_counter()
        else:
            took = time.perf_counter() - self._gc_t
            self.gc_count += 1
            self.gc_full += info.get("generation") == 2
            self.gc_worst = max(self.gc_worst, took)
            g = self.by_generation[info.get("generation", 2)]
            g[0] += 1
            g[1] = max(g[1], took)
            g[2] += took

    @staticmethod
    def _census() -> list[tuple[str, int]]:
        """The commonest types among the young and middle generations' objects."""
        import collections
        import gc

        counts = collections.Counter(type(o).__qualname__ for g in (0, 1) for o in gc.get_objects(g))
        return [("total", sum(counts.values()))] + counts.most_common(12)

    def _tick(self) -> None:
        now = time.monotonic()
        late = now - self._next
        self.worst = max(self.worst, late)
        self.long_stalls[0] += late > 0.020
        self.long_stalls[1] += late > 0.050
        self._next = now + 0.005
        self._dc = reactor.callLater(0.005, self._tick)

    def stop(self) -> None:
        import gc

        if self._dc.active():
            self._dc.cancel()
        gc.callbacks.remove(self._cb)


def _hub(server: UCSServer) -> Any:
    web = server.get_web_service()
    for name in ("hub", "_hub"):
        if hasattr(web, name):
            return getattr(web, name)
    raise RuntimeError("no hub on the web service")


def _find_port(server: UCSServer) -> int:
    web = server.get_web_service()
    for name, value in vars(web).items():
        get_host = getattr(value, "getHost", None)
        if callable(get_host):
            return int(get_host().port)
    raise RuntimeError("cannot find the web port")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--rate", type=float, default=None, help="new calls a second (default: 5 per 1,000 agents)")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--idle", type=float, default=30)
    p.add_argument("--concurrency", type=int, default=200, help="logins in progress at once")
    p.add_argument("--loadgens", type=int, default=2, help="load-generator processes the clients are split between")
    p.add_argument("--status-agents", type=int, default=200)
    p.add_argument("--status-seconds", type=float, default=15)
    p.add_argument("--filters", action="store_true", help="set ami.filters (no VarSet, Newexten)")
    p.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG,
                   help=f"web.backlog: the web port's listen backlog (default {DEFAULT_BACKLOG}, the config's)")
    p.add_argument("--gc", metavar="T0,T1,T2", help="gc.set_threshold after start-up (an experiment)")
    p.add_argument("--slow-turns", action="store_true",
                   help="during the load, time every timer's function and every socket read; list those over 20 ms")
    p.add_argument("--census", action="store_true", help="print the types the GC tracks after the logins")
    p.add_argument("--profile", metavar="DIR", help="cProfile each phase into DIR/<phase>.prof (figures not kept)")
    opts = p.parse_args()
    if opts.rate is None:
        opts.rate = 5.0 * opts.agents / 1000
    print(machine(), flush=True)
    run_on_reactor(lambda: run(opts))


if __name__ == "__main__":
    main()
