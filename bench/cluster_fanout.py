"""Fan-out of a UCS cluster (issue 20): 3 nodes, N agent bars spread over them, C calls/s.

    .venv/bin/python bench/cluster_fanout.py --agents 10000 [--nodes 3] [--rate 50] [--seconds 60]
    .venv/bin/python bench/cluster_fanout.py --agents 600 --seconds 20     # a short run

What it does:

1. the simulated Asterisk (``ucs.sim``) runs in this process, listening on AMI TCP:
   N lines ``SIP/100001..`` (answer 0.5–2 s after ringing), 20 queues ``q00..q19``
   (rrmemory, member timeout 15 s) reached by 5100..5119; this process subscribes to
   its events, so the moment each AMI event is **emitted** is known here;
2. the directory (20 queues, N users ``bench1..`` with one line each, identifier
   ``bench-phone-I``, user I in queue I mod 20, no password: the bars log in by SSO)
   is written into a fresh PostgreSQL schema;
3. ``--nodes`` processes ``twistd -n --reactor=asyncio ucs`` with ``[cluster]`` on,
   that schema and NATS; once one owns the AMI link and the others follow its term,
   one load generator per node (``loadgen.py``) logs its share of the N bars in on
   that node's WebSocket (node k gets the k-th block of N/nodes bars: every node has
   bars of every queue), ``sso`` → ``identifier`` → ``provision`` (READY);
4. idle CPU of each node over ``--idle`` s, then ``--seconds`` s of calls (Poisson at
   ``--rate``, talk 5–15 s, made by this process on the simulator);
5. latency: for each ``call.ringing`` frame a bar got, from the simulator's
   ``DialBegin`` to that bar's phone (the AMI event that makes the phone ring; the
   latest one before the frame) to the moment the load generator read the frame off
   its socket: p50/p99/max separately for bars on the owner and on standbys;
   CPU (``/proc/PID/stat``, % of one core) and RSS of each node during logins, idle and load;
6. the same again with **one process alone** (``[cluster]`` off, same store and
   reactor, all N bars on it), unless ``--no-single``.

Figures only: nothing is asserted.  One JSON line per run is appended to
``bench/cluster-fanout-results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import reactor, threads

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clusterkit import (FIRST_DEVICE, SSO_SECRET, Node, PoissonCalls, append_result, bench_phones, health,  # noqa: E402
                        in_schema, machine, schema, seed)
from loadgen_process import LoadGenProcess  # noqa: E402
from timing import pct, run_on_reactor, sleep  # noqa: E402
from ucs.sim.service import SimService  # noqa: E402

LOADGEN = Path(__file__).resolve().parent / "cluster_loadgen.py"
RESULTS = Path(__file__).resolve().parent / "cluster-fanout-results.jsonl"


async def until(test: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await threads.deferToThread(test):
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster_fanout: {what} not within {timeout:g} s")
        await sleep(0.3)


class Emitted:
    """When the simulator emitted each ``DialBegin`` to each bench phone (``time.time()``)."""

    def __init__(self, sim: Any) -> None:
        self.ring: dict[int, list[float]] = {}
        self.record = False
        sim.subscribe(self._event)

    def _event(self, ev: Any) -> None:
        if not self.record or ev.name != "DialBegin":
            return
        now = time.time()
        data: bytes = ev.data
        at = data.find(b"\r\nDestChannel: SIP/")
        if at < 0:
            return
        start = at + 19
        end = data.find(b"-", start)
        try:
            dev = int(data[start:end])
        except ValueError:
            return
        if dev > FIRST_DEVICE:
            self.ring.setdefault(dev - FIRST_DEVICE, []).append(now)


def latencies(dump: dict[str, Any], ring: dict[int, list[float]], t0: float) -> tuple[list[float], int]:
    """Milliseconds from each ``call.ringing`` frame's ``DialBegin`` to the frame; and frames with none."""
    out: list[float] = []
    unmatched = 0
    for username, (times, _crcs, names) in dump.items():
        emitted = ring.get(int(username[5:]), [])
        for t, name in zip(times, names):
            if name != "call.ringing" or t < t0:
                continue
            before = [e for e in emitted if e <= t]
            if not before or t - before[-1] > 10:
                unmatched += 1
                continue
            out.append((t - before[-1]) * 1000)
    return out, unmatched


def summary(values: list[float]) -> dict[str, Any]:
    return {"frames": len(values), "p50_ms": round(pct(values, 50), 2), "p99_ms": round(pct(values, 99), 2),
            "max_ms": round(max(values), 2) if values else None}


async def phase(opts: argparse.Namespace, store_base: str, tmp: Path, clustered: bool) -> dict[str, Any]:
    """One run: ``--nodes`` cluster nodes (or one process alone), N bars, the load."""
    n = opts.agents
    name = f"ucs_bench_{secrets.token_hex(4)}"
    await threads.deferToThread(schema, store_base, "create", name)
    store = in_schema(store_base, name)
    label = f"{opts.nodes} nodes" if clustered else "one process"
    domain = f"bench-{secrets.token_hex(3)}.example.com"
    count = opts.nodes if clustered else 1
    nodes: list[Node] = []
    loadgens: list[LoadGenProcess] = []
    res: dict[str, Any] = {"mode": "cluster" if clustered else "single", "nodes": count}
    svc, emitted = simulator(n)
    try:
        t = time.monotonic()
        await seed(store, n, reactor)
        print(f"[{label}] directory of {n} users written in {time.monotonic() - t:.1f} s", flush=True)
        for k in range(count):
            sections = {"cluster": Node.cluster(opts.nats, domain, f"node-{k}")} if clustered else {}
            node = Node(f"node-{k}", tmp / f"{res['mode']}-{k}", store, svc.port, sections)
            nodes.append(node)
            node.start()
            if clustered and k == 0:  # the first is the owner: the others start as standbys
                await until(lambda: health(nodes[0].port).get("ami") == "up", 120, "an owner")
        if clustered:
            def ready() -> bool:
                hs = [health(nd.port).get("cluster", {}) for nd in nodes]
                terms = {h.get("term") for h in hs}
                return (sum(h.get("role") == "owner" for h in hs) == 1 and len(terms) == 1 and "" not in terms
                        and None not in terms)
            await until(ready, 180, "an owner and standbys following its term")
            roles = [health(nd.port)["cluster"]["role"] for nd in nodes]
        else:
            await until(lambda: health(nodes[0].port).get("ami") == "up", 120, "the AMI link")
            roles = ["alone"]
        res["roles"] = roles
        await sleep(2)
        rss0 = [nd.rss_mib() for nd in nodes]
        print(f"[{label}] up: roles {roles}; RSS {[round(r, 1) for r in rss0]} MiB", flush=True)

        # logins: node k gets bars k*n/count+1 .. (k+1)*n/count
        bounds = [k * n // count for k in range(count + 1)]
        cpu0 = [nd.cpu_s() for nd in nodes]
        t = time.monotonic()
        for k, nd in enumerate(nodes):
            lg = LoadGenProcess.run(reactor, LOADGEN, ["--port", str(nd.port), "--agents",
                                                       str(bounds[k + 1] - bounds[k]), "--secret", SSO_SECRET,
                                                       "--first", str(bounds[k] + 1),
                                                       "--concurrency", str(opts.concurrency)], echo=True)
            loadgens.append(lg)
        waiting = [lg.expect("ready", opts.login_timeout) for lg in loadgens]  # all asked before any answers
        ready_lines = [await d for d in waiting]
        login_s = time.monotonic() - t
        res["login_s"] = round(login_s, 1)
        res["login_hung"] = [sum("hung" in line for line in lg.lines) for lg in loadgens]
        res["login_cpu_pct"] = [round((nd.cpu_s() - c) / login_s * 100, 1) for nd, c in zip(nodes, cpu0)]
        print(f"[{label}] {n} bars READY in {login_s:.1f} s ({'; '.join(ready_lines)}); node CPU during logins "
              f"{res['login_cpu_pct']} %; logins that got no reply within 20 s and were tried again, per node "
              f"{res['login_hung']}", flush=True)
        await sleep(3)
        rss1 = [nd.rss_mib() for nd in nodes]
        res["rss_mib"] = [round(r, 1) for r in rss1]
        res["rss_sessions_mib"] = [round(b - a, 1) for a, b in zip(rss0, rss1)]

        # idle
        cpu0 = [nd.cpu_s() for nd in nodes]
        await sleep(opts.idle)
        res["idle_cpu_pct"] = [round((nd.cpu_s() - c) / opts.idle * 100, 1) for nd, c in zip(nodes, cpu0)]
        print(f"[{label}] RSS {res['rss_mib']} MiB ({res['rss_sessions_mib']} MiB for the sessions); idle CPU over "
              f"{opts.idle:g} s {res['idle_cpu_pct']} % of a core", flush=True)

        # calls
        calls = PoissonCalls(svc.sim, opts.rate, reactor)

        emitted.ring.clear()
        emitted.record = True
        t_load = time.time()
        cpu0 = [nd.cpu_s() for nd in nodes]
        peak_rss = list(rss1)
        t = time.monotonic()
        calls.start()
        while time.monotonic() - t < opts.seconds:
            await sleep(1)
            peak_rss = [max(p, nd.rss_mib()) for p, nd in zip(peak_rss, nodes)]
        calls.stop()
        took = time.monotonic() - t
        res["load_cpu_pct"] = [round((nd.cpu_s() - c) / took * 100, 1) for nd, c in zip(nodes, cpu0)]
        res["load_peak_rss_mib"] = [round(r, 1) for r in peak_rss]
        res["calls"] = calls.calls
        res["calls_per_s"] = round(calls.calls / took, 1)
        await sleep(2)
        emitted.record = False

        by_role: dict[str, list[float]] = {}
        unmatched = 0
        for k, lg in enumerate(loadgens):
            path = tmp / f"{res['mode']}-dump-{k}.json"
            lg.command(f"dump {path}")
            await lg.expect("dumped", 300)
            dump = json.loads(path.read_text())
            values, miss = latencies(dump, emitted.ring, t_load)
            unmatched += miss
            role = "owner" if roles[k] in ("owner", "alone") else "standby"
            by_role.setdefault(role, []).extend(values)
        res["latency"] = {role: summary(v) for role, v in by_role.items()}
        res["ringing_unmatched"] = unmatched
        print(f"[{label}] {calls.calls} calls in {took:.0f} s ({res['calls_per_s']}/s); node CPU under load "
              f"{res['load_cpu_pct']} % of a core; peak RSS {res['load_peak_rss_mib']} MiB", flush=True)
        for role, s in res["latency"].items():
            where = "the owner" if role == "owner" else "standbys"
            print(f"[{label}] DialBegin emitted -> call.ringing at the bar, bars on {where}: {s['frames']} frames, "
                  f"p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, max {s['max_ms']} ms", flush=True)
        if unmatched:
            print(f"[{label}] call.ringing frames with no DialBegin to their phone within 10 s: {unmatched}",
                  flush=True)
    finally:
        for lg in loadgens:
            try:
                await lg.quit()
            except Exception:  # noqa: S110 - ending anyway
                pass
        for nd in nodes:
            await threads.deferToThread(nd.stop)
        await svc.stopService()
        await threads.deferToThread(schema, store_base, "drop", name)
    return res


def simulator(n: int) -> tuple[SimService, Emitted]:
    """A fresh simulated Asterisk on a free AMI port: N bench phones, 20 queues."""
    svc = SimService(port=0, phones=1, reactor=reactor)
    sim = svc.sim
    bench_phones(sim, n, answer_after=(0.5, 2.0), remote_answer=True)
    emitted = Emitted(sim)
    svc.startService()
    return svc, emitted


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"agents": opts.agents, "rate": opts.rate, "seconds": opts.seconds,
                              "machine": machine(), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"{result['machine']}; {opts.agents} bars, {opts.rate:g} calls/s asked", flush=True)
    with tempfile.TemporaryDirectory(prefix="ucs-cluster-fanout-") as tmp:
        result["cluster"] = await phase(opts, opts.store, Path(tmp), True)
        if not opts.no_single:
            result["single"] = await phase(opts, opts.store, Path(tmp), False)
    if "single" in result:
        c, s1 = result["cluster"], result["single"]
        print(f"cost per node against one process alone: load CPU {c['load_cpu_pct']} vs {s1['load_cpu_pct']} % "
              f"of a core; RSS {c['rss_mib']} vs {s1['rss_mib']} MiB; idle CPU {c['idle_cpu_pct']} vs "
              f"{s1['idle_cpu_pct']} %", flush=True)
    append_result(RESULTS, result)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", type=int, default=10000)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--rate", type=float, default=None, help="new calls a second (default: 5 per 1,000 agents)")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--idle", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=100, help="logins in progress at once, per load generator")
    p.add_argument("--login-timeout", type=float, default=1800, help="seconds the logins may take")
    p.add_argument("--no-single", action="store_true", help="skip the run of one process alone")
    p.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    opts = p.parse_args()
    if opts.rate is None:
        opts.rate = opts.agents * 5 / 1000
    if opts.nodes < 2:
        raise SystemExit("cluster_fanout: --nodes must be 2 or more")
    run_on_reactor(lambda: run(opts))


if __name__ == "__main__":
    main()
