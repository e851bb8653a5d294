"""The load generator of ``bench/fanout.py``: N agent-bar WebSocket clients in one
asyncio process (``websockets``), driven by commands on stdin.

    loadgen.py --port P --agents N --secret S [--concurrency 200] [--first 1]

Each client ``bench<i>`` (i from ``--first``, N of them) connects to ``ws://127.0.0.1:P/ws``, logs in by
``sso`` (token computed like a CRM: ``base64(sha1(secret + user + ts) + user + ts)``),
pairs ``bench-phone-<i>`` and sends ``provision``; then it logs every message
it receives: ``time.time()`` when its bytes were read off the socket, the CRC-32 of the bytes, the event
name.  It prints ``ready ...`` once all are READY.

Commands (one a line on stdin), each answered with one line on stdout:

* ``dump PATH`` → ``dumped``: ``{username: [times, crcs, names]}`` as JSON.
* ``status M SECONDS`` → ``status {json}``: the first M clients switch
  READY↔AUX one request after the other for SECONDS.
* ``reconnect`` → ``reconnected {json}``: every socket is aborted at once, then
  each client reconnects like the agent bar (``retry`` in operator-v4.0.0.js:
  backoff with full jitter, a random wait between 0 and min(15 s, 0.5 s × 2^attempt)),
  ``session.resume`` with its sid, then ``state``.
* ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import base64
import hashlib
import json
import random
import re
import sys
import time
import zlib
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.frames import Frame, Opcode


class TimedConnection(ClientConnection):
    """Notes when each message's bytes were read off the socket: a message's time is
    its arrival at this process, not when its task got round to it (with 10,000
    clients on one event loop, a burst of 500 counts queues the tasks behind it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: collections.deque[float] = collections.deque()
        self._now = 0.0

    def data_received(self, data: bytes) -> None:
        self._now = time.time()
        super().data_received(data)

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode in (Opcode.TEXT, Opcode.BINARY):
            self.arrivals.append(self._now)
        super().process_event(event)


def sso_token(secret: str, username: str, ts: int) -> str:
    digest = hashlib.sha1(f"{secret}{username}{ts}".encode()).digest()
    return base64.b64encode(digest + f"{username}{ts}".encode()).decode()


def backoff(attempt: int) -> float:
    """The agent bar's wait before reconnect attempt ``attempt`` (0, 1, …): full jitter,
    a random time between 0 and min(15 s, 0.5 s × 2^attempt), as ``retry`` in
    ``ucs/web/static/operator/operator-v4.0.0.js``."""
    return random.uniform(0, min(15.0, 0.5 * 2 ** min(attempt, 5)))


#: A reply's start as UCS encodes it (``{"id":7,"result":…}``): its id is read without
#: parsing the rest, which a browser parses on its own CPU (a ``state`` with every agent
#: is 350 KB at 5,000 agents: parsing 5,000 of them here would measure this process).
REPLY = re.compile(rb'\{"id":(-?\d+),"(result|error)":')


def event_name(data: bytes) -> str | None:
    if data.startswith(b'{"event":"'):
        end = data.index(b'"', 10)
        return data[10:end].decode()
    return None


class Client:
    def __init__(self, gen: LoadGen, i: int) -> None:
        self.gen = gen
        self.i = i
        self.username = f"bench{i}"
        self.ws: Any = None
        self.sid: str | None = None
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.times: list[float] = []
        self.crcs: list[int] = []
        self.names: list[str] = []
        self.record = True
        self.status_waiter: asyncio.Future[float] | None = None
        self.reader: asyncio.Task[None] | None = None

    async def open(self) -> dict[str, Any]:
        self.ws = await connect(self.gen.url, ping_interval=None, max_size=None, compression=None,
                                open_timeout=60, close_timeout=1, max_queue=None,
                                create_connection=TimedConnection)
        hello_raw = await self.ws.recv(decode=False)
        t = self.ws.arrivals.popleft()
        if self.record:
            self._log(hello_raw, t)
        hello = json.loads(hello_raw)
        self.reader = asyncio.ensure_future(self._read())
        return hello["data"]

    def _log(self, data: bytes, t: float) -> None:
        name = event_name(data)
        if name is not None:
            self.times.append(t)
            self.crcs.append(zlib.crc32(data))
            self.names.append(name)

    def _reply(self, data: bytes, t: float) -> None:
        """A reply as it is read, before its caller resumes (a subclass that keeps what the bar shows)."""

    async def _read(self) -> None:
        ws = self.ws
        try:
            while True:
                data = await ws.recv(decode=False)
                t = ws.arrivals.popleft()
                if data.startswith(b'{"event":'):
                    if self.record:
                        self._log(data, t)
                    if self.status_waiter is not None and data.startswith(b'{"event":"agent.status"'):
                        w, self.status_waiter = self.status_waiter, None
                        if not w.done():
                            w.set_result(t)
                else:
                    self._reply(data, t)
                    m = REPLY.match(data)
                    if m is not None and m.group(2) == b"result":
                        rid: Any = int(m.group(1))
                        msg: Any = data  # parsed by call() only when asked for
                    else:
                        msg = json.loads(data)
                        rid = msg.get("id")
                    fut = self.pending.pop(rid, None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except Exception:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("closed"))
            self.pending.clear()

    async def call(self, method: str, *args: Any, parse: bool = True) -> Any:
        """The result of a request (parsed only if ``parse``), or RuntimeError with UCS's error."""
        self.next_id += 1
        rid = self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(json.dumps({"id": rid, "method": method, "args": list(args)}))
        msg = await fut
        if isinstance(msg, bytes):
            return json.loads(msg)["result"] if parse else None
        if "error" in msg:
            raise RuntimeError(f"{self.username} {method}: {msg['error']}")
        return msg["result"]

    async def login(self) -> None:
        hello = await self.open()
        self.sid = hello["sid"]
        res = await self.call("sso", self.username, sso_token(self.gen.secret, self.username, int(time.time())))
        if res.get("state") == "READY":
            return  # a retry after an earlier attempt got this far: the agent works already
        await self.call("identifier", f"bench-phone-{self.i}")
        await self.call("provision", parse=False)


class LoadGen:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.url = f"ws://127.0.0.1:{opts.port}/ws"
        self.secret = opts.secret
        self.opts = opts
        self.clients = [Client(self, i) for i in range(opts.first, opts.first + opts.agents)]

    async def login_all(self) -> None:
        sem = asyncio.Semaphore(self.opts.concurrency)
        failed = 0
        t0 = time.monotonic()

        async def one(c: Client) -> None:
            nonlocal failed
            async with sem:
                for attempt in range(5):
                    try:
                        await c.login()
                        return
                    except Exception as e:
                        if attempt == 4:
                            failed += 1
                            print(f"login {c.username} failed: {e}", flush=True)
                        await asyncio.sleep(1)

        await asyncio.gather(*(one(c) for c in self.clients))
        print(f"ready {len(self.clients) - failed} clients ({failed} failed) in {time.monotonic() - t0:.1f} s",
              flush=True)

    def dump(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump({c.username: [c.times, c.crcs, c.names] for c in self.clients}, f)
        print("dumped", flush=True)

    async def status(self, m: int, seconds: float) -> None:
        reply: list[float] = []
        event: list[float] = []
        changes = 0
        end = time.monotonic() + seconds
        loop = asyncio.get_running_loop()

        async def toggle(c: Client) -> None:
            nonlocal changes
            target = ("AUX", "Lunch")
            while time.monotonic() < end:
                waiter = c.status_waiter = loop.create_future()
                t0 = time.time()
                try:
                    await c.call("agent.changeStatus", *target)
                except Exception as e:
                    print(f"status {c.username}: {e}", flush=True)
                    await asyncio.sleep(0.5)
                    continue
                t1 = time.time()
                reply.append((t1 - t0) * 1000)
                try:
                    t2 = await asyncio.wait_for(waiter, 10)
                    event.append((t2 - t0) * 1000)
                except asyncio.TimeoutError:
                    pass
                changes += 1
                target = ("READY", "") if target[0] == "AUX" else ("AUX", "Lunch")

        t0 = time.monotonic()
        await asyncio.gather(*(toggle(c) for c in self.clients[:m]))
        dt = time.monotonic() - t0

        def p(v: list[float], q: float) -> float:
            v = sorted(v)
            return round(v[min(len(v) - 1, int(q / 100 * len(v)))], 2) if v else float("nan")

        print("status " + json.dumps({"agents": m, "seconds": round(dt, 1), "changes": changes,
                                      "per_s": changes / dt, "reply_p50_ms": p(reply, 50),
                                      "reply_p99_ms": p(reply, 99), "event_p50_ms": p(event, 50),
                                      "event_p99_ms": p(event, 99), "events": len(event)}), flush=True)

    async def reconnect(self) -> None:
        for c in self.clients:
            c.record = False
        t0 = time.monotonic()
        for c in self.clients:
            if c.ws is not None and c.ws.transport is not None:
                c.ws.transport.abort()
        for c in self.clients:
            if c.reader is not None:
                c.reader.cancel()
        failed = 0
        attempts = 0
        done_at: list[float] = []
        async def back(c: Client) -> None:
            nonlocal failed, attempts
            for k in range(12):
                await asyncio.sleep(backoff(k))
                attempts += 1
                try:
                    await asyncio.wait_for(c.open(), 20)
                    await c.call("session.resume", c.sid, parse=False)
                    await c.call("state", parse=False)
                    done_at.append(time.monotonic() - t0)
                    return
                except Exception:
                    if c.ws is not None and c.ws.transport is not None:
                        c.ws.transport.abort()
            failed += 1

        await asyncio.gather(*(back(c) for c in self.clients))
        print("reconnected " + json.dumps({
            "resumed": len(done_at), "failed": failed, "attempts": attempts,
            "seconds": max(done_at, default=float("nan")),
            "p50_s": sorted(done_at)[len(done_at) // 2] if done_at else None,
            "done_at": [round(t, 3) for t in done_at]}), flush=True)


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--agents", type=int, required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--concurrency", type=int, default=200)
    p.add_argument("--first", type=int, default=1, help="the first client's number (bench<first>)")
    opts = p.parse_args()
    gen = LoadGen(opts)
    await gen.login_all()
    # The load generator is the measuring instrument: its own collections (10,000
    # connections' objects, walked whole now and then) would be counted as UCS's
    # latency.  After the logins nothing it keeps is garbage in a cycle for long.
    gc.collect()
    gc.freeze()
    gc.disable()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        cmd, *args = line.split()
        if cmd == "dump":
            gen.dump(args[0])
        elif cmd == "status":
            await gen.status(int(args[0]), float(args[1]))
        elif cmd == "reconnect":
            await gen.reconnect()
    for c in gen.clients:
        if c.ws is not None and c.ws.transport is not None:
            c.ws.transport.abort()


if __name__ == "__main__":
    try:
        import uvloop  # the instrument's own event loop costs half as much: it measures UCS, not itself
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
