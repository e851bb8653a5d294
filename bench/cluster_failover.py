"""Failover of a UCS cluster: ``kill -9`` of the AMI owner mid-call, until every agent bar shows the truth again.

    .venv/bin/python bench/cluster_failover.py [--nodes 3] [--kills 20] [--bars 300] [--store URL] [--nats URL]

Set-up: the simulated Asterisk runs in this process (``--bars`` phones ``SIP/100001..``
that ring until answered, 20 ``ringall`` queues ``q00..q19`` on 5100..5119); the bench
directory (user ``bench<i>`` in queue ``i mod 20``, SSO) is written into a PostgreSQL
schema of its own (dropped at the end); ``--nodes`` processes ``twistd -n
--reactor=asyncio ucs`` with ``[cluster]`` at its defaults, ``[agents] acw_seconds = 0``.
``--bars`` agent bars (WebSocket clients in this process, on the same asyncio loop as the
simulator: ``bench/loadgen.py``'s client) log in (``sso`` → ``identifier`` →
``provision``: READY), bar ``i`` on node ``i mod nodes``.

Each bar keeps what a bar shows: its agent's status (``agent.status`` / ``agent.login`` /
``agent.logout`` frames, the ``status`` of a ``state`` reply) and its phone's calls
(``uniqueid`` → ``state``, from every ``call.*`` frame, removed by ``call.hangup``;
replaced by a ``state`` reply's ``calls``).  A bar whose socket closes is *not connected*
until it has come back: like the real bar (``retry`` in operator-v4.0.0.js) it waits a
random time up to min(15 s, 0.5 s × 2^attempt) and connects again through the "load
balancer" -- the next node in round-robin order whose process runs (a node that refuses
the connection costs an attempt) -- then sends ``session.resume`` with its ``sid`` and
``state``.

Each of ``--kills`` rounds:

1. two customer calls into two queues; agent X's phone answers the first (C1), agent
   Y's the second (C2) -- other members rang meanwhile.  X and Y are chosen so that in
   even rounds X's bar is on the owner and Y's on a standby, in odd rounds the other way
   round.  The bench waits until every bar shows the truth (X and Y: their call,
   connected; everybody else: no call; every status as it is).
2. ``kill -9`` of the owner (time t0), and at once Y's phone hangs up: **C2 ends while no
   node holds the AMI link**; C1 stays up throughout.
3. **The truth** after t0: X's bar shows C1 (its ``uniqueid``, state 3, connected) and X's
   status as before; Y's bar shows no call and READY; every other bar no call and its
   status as before -- and every bar is connected.  C2's end can only reach a bar through
   the new owner's take-over and resync of the AMI link; X's and everybody's bars on the
   killed node only through reconnect and ``session.resume``.
4. **The failover time** of the round: from t0 until the last bar's view became true and
   stayed true (for 2 s: a bar that turned false again after that, say a call ended and
   began again by the resync, would count from its last turn to true).  A bar that stayed
   connected and true all along counts 0.  Also printed: when another node's ``/health``
   said ``role: owner`` with its AMI link ``up`` (what this bench timed before), when Y's
   bar heard C2 end, and how often bars' views flipped.
5. X's phone hangs up; the killed node starts again and is waited for as a standby following
   the new owner's term.

Prints each round and min / median / p90 / max, with the load average.  Figures only:
nothing here is asserted.  ``--bars 0``: only the AMI link is timed (as before).
"""

from __future__ import annotations

from twisted.internet import asyncioreactor

asyncioreactor.install()  # before anything imports the reactor: the bars, the simulator and Twisted share one loop

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any  # noqa: E402

from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
from clusterkit import (FIRST_DEVICE, SSO_SECRET, Node, bench_phones, bench_queue, in_schema,  # noqa: E402
                        load_average, machine, schema, seed, summary_line)
from timing import run_on_reactor  # noqa: E402
from ucs.sim.service import SimService  # noqa: E402

#: How long a bar's view must stay true to count as having the truth again.
HOLD = 2.0
#: The bar's wait for ``hello`` on a new socket (operator.js: at least 5 s, twice the heartbeat).
HELLO_TIMEOUT = 10.0
#: A round that has not reached the truth by then is reported as such.
ROUND_TIMEOUT = 30.0


CURRENT: list[Failover] = []  # for kill -USR1


class BenchError(RuntimeError):
    """The cluster did not get where the bench waits for it to go."""


class Bar(loadgen.Client):
    """One agent bar: ``loadgen.py``'s client, with the view a bar shows and the bar's reconnect."""

    def __init__(self, bench: Failover, i: int, node: Node) -> None:
        super().__init__(SimpleNamespace(url=bench.url(node), secret=SSO_SECRET), i)  # type: ignore[arg-type]
        self.bench = bench
        self.node = node
        self.device = f"SIP/{FIRST_DEVICE + i}"
        self.connected = False
        self.status = ""
        self.calls: dict[str, int] = {}
        self.true_since: float | None = None
        self.flips = 0
        self.resumed_at: float | None = None

    def _log(self, data: bytes, t: float) -> None:
        msg = json.loads(data)
        name, d = msg.get("event"), msg.get("data") or {}
        if name == "agent.status" or name == "agent.login":
            self.status = d.get("status", self.status)
        elif name == "agent.logout":
            self.status = "OFFLINE"
        elif name == "call.hangup":
            self.calls.pop(d.get("uniqueid", ""), None)
        elif isinstance(name, str) and name.startswith("call.") and "uniqueid" in d and "state" in d:
            self.calls[d["uniqueid"]] = d["state"]
        else:
            return
        self.bench.seen(self, t)

    def _reply(self, data: bytes, t: float) -> None:
        # A ``state`` reply, taken in the order it came in, as the bar does: applied once the
        # awaiting coroutine resumed, it would undo the events read after it meanwhile.
        if b'"calls"' in data and b'"status"' in data:
            result = json.loads(data).get("result")
            if isinstance(result, dict) and "calls" in result and "status" in result:
                self.shown(result)

    def shown(self, state: dict[str, Any]) -> None:
        """A ``state`` reply: what the bar shows now."""
        self.status = state["status"]
        self.calls = {c["uniqueid"]: c["state"] for c in state.get("calls") or []}

    async def _read(self) -> None:
        await super()._read()
        if not self.connected:
            return  # a socket of an attempt that failed: come_back goes on trying
        self.connected = False  # the bar's socket is gone
        self.bench.seen(self, time.time())
        if not self.bench.closing:
            asyncio.ensure_future(self.come_back())

    async def come_back(self) -> None:
        for attempt in range(30):
            await asyncio.sleep(loadgen.backoff(attempt))
            if self.bench.closing:
                return
            self.node = self.bench.balance()
            self.gen.url = self.bench.url(self.node)
            try:
                # The bar gives up on a socket with no hello after a few seconds, but waits for
                # its requests' answers as long as the socket lasts.
                await asyncio.wait_for(self.open(), HELLO_TIMEOUT)
                resumed = await self.call("session.resume", self.sid)
                if resumed.get("state") == "IDENTIFY":
                    # The session came back without its phone: the agent has to pick it again
                    # (the bar shows the phone picker) -- the round fails, and is counted.
                    self.bench.repaired += 1
                    await self.call("identifier", f"bench-phone-{self.i}")
                    await self.call("provision", parse=False)
                await self.call("state")  # shown as it is read (_log)
            except Exception as e:  # noqa: S112 - refused, closed, or no hello: try again, as the bar does
                if isinstance(e, RuntimeError):  # UCS refused the resume: say why
                    self.bench.refusals[str(e)[:160]] = self.bench.refusals.get(str(e)[:160], 0) + 1
                if self.ws is not None and self.ws.transport is not None:
                    self.ws.transport.abort()
                continue
            self.connected = True
            self.resumed_at = time.time()
            self.bench.seen(self, self.resumed_at)
            return
        print(f"{self.username} never came back", flush=True)


class Failover:
    def __init__(self, opts: argparse.Namespace, nodes: list[Node], sim: Any) -> None:
        self.opts = opts
        self.nodes = nodes
        self.sim = sim
        self.bars: list[Bar] = []
        self.closing = False
        self._next = 0
        #: The calls each bar should show (bars not named: none); every agent is READY throughout.
        self.calls: dict[int, dict[str, int]] = {}
        #: Calls a bar still shows after they ended in an earlier round (reported there): left out
        #: of later rounds' truth, or one wrong view would spoil every round after it.
        self.ghosts: dict[int, set[str]] = {}
        self.measuring = False
        #: Why views turned false during a round, counted.
        self.why: dict[str, int] = {}
        #: UCS's refusals of ``session.resume``, counted.
        self.refusals: dict[str, int] = {}
        #: Bars whose resumed session had lost its phone (IDENTIFY) and paired it again.
        self.repaired = 0

    @staticmethod
    def url(node: Node) -> str:
        return f"ws://127.0.0.1:{node.port}/ws"

    def balance(self) -> Node:
        """The load balancer's choice: the next node whose process runs."""
        for _ in range(len(self.nodes)):
            node = self.nodes[self._next % len(self.nodes)]
            self._next += 1
            if node.running:
                return node
        return self.nodes[0]

    def true(self, bar: Bar) -> bool:
        ghosts = self.ghosts.get(bar.i, set())
        return (bar.connected and bar.status == "READY"
                and {u: st for u, st in bar.calls.items() if u not in ghosts} == self.calls.get(bar.i, {}))

    def seen(self, bar: Bar, t: float) -> None:
        if not self.measuring:
            return
        now_true = self.true(bar)
        if now_true and bar.true_since is None:
            bar.true_since = t
        elif not now_true and bar.true_since is not None:
            bar.true_since = None
            bar.flips += 1
            why = ("socket gone" if not bar.connected else f"status {bar.status}" if bar.status != "READY"
                   else "a call shown that is not up" if set(bar.calls) - set(self.calls.get(bar.i, {}))
                   else "its call not shown" if set(self.calls.get(bar.i, {})) - set(bar.calls)
                   else "its call in another state")
            self.why[why] = self.why.get(why, 0) + 1

    def all_true(self) -> bool:
        return all(self.true(b) for b in self.bars)

    async def until(self, test: Any, timeout: float, what: str) -> float:
        start = time.monotonic()
        while not test():
            if time.monotonic() - start > timeout:
                raise BenchError(f"{what}: not within {timeout:g} s")
            await asyncio.sleep(0.05)
        return time.monotonic() - start

    async def back(self, node: Node) -> None:
        """Start ``node`` again and wait until it is a standby following the owner's term."""
        new = await self.owner()
        node.start()
        term = (await asyncio.to_thread(new.role))[2]
        for _ in range(1200):
            role = await asyncio.to_thread(node.role)
            if role[0] == "standby" and role[2] == term:
                return
            await asyncio.sleep(0.1)
        raise BenchError(f"{node.name} not following {new.name}'s term within 120 s")

    async def roles(self) -> list[tuple[str, str, str]]:
        return list(await asyncio.gather(*(asyncio.to_thread(n.role) for n in self.nodes)))

    async def owner(self) -> Node:
        for _ in range(600):
            for node, (role, ami, _term) in zip(self.nodes, await self.roles()):
                if role == "owner" and ami == "up":
                    return node
            await asyncio.sleep(0.1)
        raise BenchError("no owner")

    async def answer(self, bar: Bar) -> str:
        """A customer calls ``bar``'s agent's queue and its phone answers: the call's uniqueid as the bar shows it."""
        self.sim.caller_calls(str(5100 + bench_queue(bar.i)), f"4207770{bar.i:05d}", "Failover Caller")
        phone = self.sim.phone(bar.device)
        queue = self.sim.queues[f"q{bench_queue(bar.i):02d}"]
        await self.until(lambda: phone.ringing is not None, 30,
                         f"{bar.device} ringing (members of {queue.name}: {list(queue.members)}; the bar: "
                         f"{bar.status} {bar.calls})")
        phone.answer()
        await self.until(lambda: 3 in bar.calls.values(), 30, f"{bar.username}'s bar showing the call connected")
        return next(uid for uid, state in bar.calls.items() if state == 3)

    async def round(self, k: int) -> dict[str, Any]:
        owner = await self.owner()
        others = [n for n in self.nodes if n is not owner]
        on_owner = [b for b in self.bars if b.node is owner]
        elsewhere = [b for b in self.bars if b.node is not owner]
        first, second = (on_owner, elsewhere) if k % 2 == 0 else (elsewhere, on_owner)
        x = first[k % len(first)]
        y = next(b for b in second[k % len(second):] + second if bench_queue(b.i) != bench_queue(x.i))
        say(f"round {k + 1}: owner {owner.name}; X {x.username} on {x.node.name}, Y {y.username} on {y.node.name}")
        self.calls = {x.i: {await self.answer(x): 3}}
        self.calls[y.i] = {await self.answer(y): 3}
        try:
            await self.until(self.all_true, 30, "every bar showing the two calls (and the others none), all READY")
        except BenchError as e:
            wrong = [f"{b.username} on {b.node.name}: {'connected' if b.connected else 'not connected'}, {b.status}, "
                     f"{b.calls} (should be {self.calls.get(b.i, {})})" for b in self.bars if not self.true(b)]
            raise BenchError(f"{e}: {'; '.join(wrong[:10])}") from None

        # The kill; C2 ends in the gap; C1 stays up.
        t0 = time.time()
        owner.kill()
        self.sim.phone(y.device).hangup()
        self.calls = {x.i: self.calls[x.i]}
        for b in self.bars:
            b.true_since = t0 if self.true(b) else None
            b.flips = 0
            b.resumed_at = None
        self.why = {}
        self.refusals = {}
        self.repaired = 0
        self.measuring = True
        owner_up: float | None = None
        start = time.monotonic()
        while True:
            if owner_up is None:
                for node, (role, ami, _t) in zip(others, await asyncio.gather(
                        *(asyncio.to_thread(n.role) for n in others))):
                    if role == "owner" and ami == "up":
                        owner_up = time.time() - t0
            since = [b.true_since for b in self.bars]
            if owner_up is not None and None not in since and time.time() - max(s for s in since if s) >= HOLD:
                break
            if time.monotonic() - start > ROUND_TIMEOUT:
                break
            await asyncio.sleep(0.05)
        self.measuring = False
        since = [b.true_since for b in self.bars]
        late = [b for b in self.bars if b.true_since is None]
        res: dict[str, Any] = {
            "killed": owner.name, "bars_on_killed": len(on_owner), "owner_up_s": owner_up,
            "truth_s": None if late or self.repaired else max(s for s in since if s) - t0,
            "phone_lost": self.repaired,
            "x_on_killed": x in on_owner, "y_on_killed": y in on_owner,
            "x_s": None if x.true_since is None else x.true_since - t0,
            "y_s": None if y.true_since is None else y.true_since - t0,
            "flips": sum(b.flips for b in self.bars), "why": self.why, "resume_refused": dict(self.refusals),
            "resumed": sum(b.resumed_at is not None for b in self.bars),
            "not_true": [(b.username, b.node.name, b.connected, b.status, b.calls, self.calls.get(b.i, {}))
                         for b in late[:5]],
        }
        if not late:
            last = max(self.bars, key=lambda b: b.true_since or 0)
            res["last"] = (f"{last.username} ({'resumed on ' + last.node.name if last.resumed_at else 'stayed'}"
                           f"{', X' if last is x else ', Y' if last is y else ''})")

        # Back to calm: C1 ends, the killed node comes back as a standby of the new owner.
        self.sim.phone(x.device).hangup()
        self.calls = {}
        await self.back(owner)
        try:
            await self.until(self.all_true, 20, "every bar READY with no call after the round")
        except BenchError:
            for b in self.bars:  # every call has ended: a call a bar still shows is a ghost
                if b.calls and not self.true(b):
                    self.ghosts.setdefault(b.i, set()).update(b.calls)
                    print(f"    {b.username} on {b.node.name} still shows {b.calls} though every call ended",
                          flush=True)
            res["ghosts_after"] = sum(len(g) for g in self.ghosts.values())
            try:
                await self.until(self.all_true, 60, "every bar READY (leaving out the ghosts) after the round")
            except BenchError:
                stuck = [b for b in self.bars if not self.true(b)]
                res["stuck_after"] = [(b.username, b.node.name, b.connected, b.status, b.calls) for b in stuck[:5]]
                res["stuck_count"] = len(stuck)
                res["resume_refused_after"] = dict(self.refusals)
                res["stop"] = True  # the bars cannot all come back: the rounds after would not measure failover
        return res


def _quiet(loop: Any, context: dict[str, Any]) -> None:
    """A bar's request that a lost socket failed after the bar stopped waiting for it is no news."""
    if isinstance(context.get("exception"), ConnectionError):
        return
    loop.default_exception_handler(context)


async def run(opts: argparse.Namespace) -> dict[str, Any]:
    import logging

    logging.getLogger("asyncio").setLevel(logging.ERROR)  # "socket.send() raised exception": a bar's socket gone
    asyncio.get_running_loop().set_exception_handler(_quiet)
    print(f"{machine()}; load average {load_average()} at the start", flush=True)
    name = f"ucs_bench_{secrets.token_hex(4)}"
    await asyncio.to_thread(schema, opts.store, "create", name)
    store = in_schema(opts.store, name)
    domain = f"bench-{secrets.token_hex(3)}.example.com"
    svc = SimService(port=0, phones=1, reactor=reactor)
    bench_phones(svc.sim, opts.bars, strategy="ringall")
    svc.startService()
    rounds: list[dict[str, Any]] = []
    bench: Failover | None = None
    with tempfile.TemporaryDirectory(prefix="ucs-failover-") as tmp:
        nodes = [Node(f"node-{i}", Path(tmp) / f"node-{i}", store, svc.port,
                      {"cluster": Node.cluster(opts.nats, domain, f"node-{i}"), "agents": {"acw_seconds": 0}})
                 for i in range(opts.nodes)]
        try:
            await Deferred.fromCoroutine(seed(store, opts.bars, reactor)).asFuture(asyncio.get_running_loop())
            bench = Failover(opts, nodes, svc.sim)
            CURRENT.append(bench)
            nodes[0].start()
            await bench.owner()
            for node in nodes[1:]:
                node.start()

            async def following() -> bool:
                rs = await bench.roles()  # type: ignore[union-attr]
                return sum(r[0] == "owner" for r in rs) == 1 and len({r[2] for r in rs}) == 1 and rs[0][2] != ""

            for _ in range(1200):
                if await following():
                    break
                await asyncio.sleep(0.1)
            bench.bars = [Bar(bench, i, nodes[i % len(nodes)]) for i in range(1, opts.bars + 1)]
            sem = asyncio.Semaphore(50)

            async def login(bar: Bar) -> None:
                async with sem:
                    await bar.login()
                    await bar.call("state")  # shown as it is read (_log)
                    bar.connected = True

            t = time.monotonic()
            await asyncio.gather(*(login(b) for b in bench.bars))
            print(f"{opts.bars} bars READY in {time.monotonic() - t:.1f} s, spread over {opts.nodes} nodes", flush=True)
            for k in range(opts.kills):
                try:
                    res = await (bench.round(k) if opts.bars else bare_round(bench))
                except BenchError as e:
                    print(f"kill {k + 1}: the bench stopped: {e}", flush=True)
                    break
                rounds.append(res)
                shown = {key: round(v, 2) if isinstance(v, float) else v for key, v in res.items()}
                print(f"kill {k + 1}: {json.dumps(shown)}", flush=True)
                if res.get("stop"):
                    print(f"stopped after kill {k + 1}: {res['stuck_count']} bars could not come back", flush=True)
                    break
        finally:
            if bench is not None:
                bench.closing = True
                for b in bench.bars:
                    if b.ws is not None and b.ws.transport is not None:
                        b.ws.transport.abort()
            for node in nodes:
                await asyncio.to_thread(node.stop)
            stopped = svc.stopService()
            if stopped is not None:
                await stopped.asFuture(asyncio.get_running_loop())
            await asyncio.to_thread(schema, opts.store, "drop", name)
    up = [r["owner_up_s"] for r in rounds if r.get("owner_up_s") is not None]
    truth = [r["truth_s"] for r in rounds if r.get("truth_s") is not None]
    print(f"{opts.nodes} nodes, {opts.bars} bars, {len(rounds)} kills; load average {load_average()} at the end",
          flush=True)
    if up:
        print(summary_line("kill -9 -> another node's AMI link up", up), flush=True)
    if truth:
        print(summary_line("kill -9 -> every bar shows the truth", truth), flush=True)
    if opts.bars and len(truth) < len(rounds):
        print(f"rounds whose bars did not all show the truth within {ROUND_TIMEOUT:g} s: "
              f"{len(rounds) - len(truth)}", flush=True)
    return {"rounds": rounds}


async def bare_round(bench: Failover) -> dict[str, Any]:
    """``--bars 0``: the AMI link alone."""
    owner = await bench.owner()
    others = [n for n in bench.nodes if n is not owner]
    t0 = time.time()
    owner.kill()
    while not any(r[:2] == ("owner", "up") for r in await asyncio.gather(*(asyncio.to_thread(n.role)
                                                                            for n in others))):
        await asyncio.sleep(0.02)
    res = {"killed": owner.name, "owner_up_s": time.time() - t0}
    await bench.back(owner)
    return res


def say(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--bars", type=int, default=300, help="agent bars spread over the nodes (0: time the AMI link only)")
    p.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    opts = p.parse_args()
    if opts.nodes < 2:
        raise SystemExit("cluster_failover: --nodes must be 2 or more")
    if opts.bars and opts.bars < 2 * opts.nodes:
        raise SystemExit(f"cluster_failover: --bars must be 0 or at least {2 * opts.nodes}")
    import signal

    def tasks(*_: Any) -> None:  # kill -USR1: where every task of the bench waits
        loop: Any = asyncio.get_event_loop()
        print("loop", loop.time(), len(loop._scheduled), sorted(h.when() for h in loop._scheduled)[:3],
              len(loop._ready), flush=True)
        for b in CURRENT[0].bars if CURRENT else ():
            if not CURRENT[0].true(b):
                print("   not true:", b.username, b.node.name, b.connected, b.status, b.calls,
                      CURRENT[0].calls.get(b.i), flush=True)
        for t in asyncio.all_tasks(loop):
            if "_read" not in repr(t):
                c: Any = t.get_coro()
                while c is not None and hasattr(c, "cr_code"):
                    print("   ", c.cr_code.co_name, c.cr_frame.f_lineno if c.cr_frame else "", flush=True)
                    c = c.cr_await

    signal.signal(signal.SIGUSR1, tasks)
    run_on_reactor(lambda: Deferred.fromFuture(asyncio.ensure_future(run(opts))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
