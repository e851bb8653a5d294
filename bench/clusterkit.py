"""What the benches share about setting UCS up: the bench directory and the simulated
Asterisk that goes with it, a PostgreSQL schema of their own, a ``twistd`` node, the
Poisson call generator, the machine's description, a run's result line.

Used by ``bench/fanout.py`` (one process, in-process UCS), ``bench/cluster_fanout.py``
and ``bench/cluster_failover.py`` (``twistd`` nodes).  Importing it imports no reactor:
``cluster_failover.py`` installs the asyncio reactor first.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
TWISTD = PYTHON.with_name("twistd")
SSO_SECRET = "bench-secret"
QUEUES = 20
FIRST_DEVICE = 100000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def env() -> dict[str, str]:
    """The environment of a child process: this repository first on its path."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    return e


def health(port: int, timeout: float = 2) -> dict[str, Any]:
    """A node's ``/health`` (blocking: call it in a thread from a reactor); empty when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            body: dict[str, Any] = json.loads(r.read())
            return body
    except (OSError, ValueError):
        return {}


def schema(url: str, action: str, name: str) -> None:
    """``create`` or ``drop`` the PostgreSQL schema ``name`` (blocking)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"' if action == "create" else f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def in_schema(url: str, name: str) -> str:
    """The store URL whose sessions work in schema ``name``."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={name}', safe='')}"


def machine() -> str:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    total = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return f"{os.cpu_count()} cores {model}, {total / 2**30:.0f} GiB, Python {sys.version.split()[0]}"


def load_average() -> str:
    """The machine's 1/5/15-minute load average: other work running beside a bench shows here."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def append_result(path: Path, result: dict[str, Any]) -> None:
    """``result`` as one more JSON line of ``path`` (``bench/*-results.jsonl``): the runs
    accumulate, one a line, for comparing and plotting (``bench/plot_fanout.py``)."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")


# -- the bench's directory and PBX ---------------------------------------------------------------------


def bench_phones(sim: Any, n: int, strategy: str = "rrmemory", **behaviour: Any) -> None:
    """N phones ``SIP/100001..`` behaving as ``behaviour``, 20 queues ``q00..q19`` (member
    timeout 15 s, ``strategy``) reached by 5100..5119 from the carrier."""
    for i in range(1, n + 1):
        dev = f"SIP/{FIRST_DEVICE + i}"
        sim.add_line(dev, f"Bench {i}", f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
        sim.phone(dev).set_behaviour(**behaviour)
    for i in range(QUEUES):
        sim.add_queue(f"q{i:02d}", strategy=strategy, timeout=15)
        sim.dialplan.add("from-carrier", str(5100 + i), [("Answer", ""), ("Queue", f"q{i:02d},t,,,120")])


def bench_queue(i: int) -> int:
    """The index (0..19) of the one queue user ``bench<i>`` is in: dial ``5100 + bench_queue(i)``."""
    return i % QUEUES


def bench_user(i: int, line_id: int, user_id: int, queue_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Line and user documents of ``bench<i>`` (no password: the bars log in by SSO)."""
    line = {"id": line_id, "device": f"SIP/{FIRST_DEVICE + i}", "name": f"Bench phone {i}",
            "identifiers": [f"bench-phone-{i}"], "auto_answer": "sip-notify"}
    user = {"id": user_id, "username": f"bench{i}", "password_hash": "",
            "firstname": "Bench", "lastname": str(i), "lines": [line_id], "queues": {queue_id: {"priority": 0}},
            "locale": "en"}
    return line, user


async def seed(url: str, n: int, reactor: Any) -> None:
    """20 queues and N users and lines, written straight into the store's directory tables
    (for ``twistd`` nodes, which read them at start)."""
    from ucs.directory.directory import _from_doc, _to_doc
    from ucs.store import open_store

    store = await open_store(url, reactor)
    try:
        items: list[tuple[str, str, Any]] = []
        for q in range(1, QUEUES + 1):
            queue = _from_doc("queues", {"id": q, "name": f"Queue {q - 1:02d}", "asterisk_name": f"q{q - 1:02d}",
                                         "type": 1})
            items.append(("dir.queues", str(q), _to_doc(queue)))
        for i in range(1, n + 1):
            line, user = bench_user(i, i, i, bench_queue(i) + 1)
            items.append(("dir.lines", str(i), _to_doc(_from_doc("lines", line))))
            items.append(("dir.users", str(i), _to_doc(_from_doc("users", user))))
            if len(items) >= 2000:
                await store.kv_write(items)
                items = []
        if items:
            await store.kv_write(items)
    finally:
        closed = store.close()
        if closed is not None:
            await closed


class PoissonCalls:
    """Customers calling the 20 queues at ``rate`` a second (Poisson arrivals on a schedule
    of their own: a call whose time came while the reactor was busy is made as soon as it
    runs, so the rate asked is the rate made); each hangs up 5-15 s after the answer."""

    def __init__(self, sim: Any, rate: float, reactor: Any, seed: int = 1) -> None:
        self.sim = sim
        self.rate = rate
        self.reactor = reactor
        self.rng = random.Random(seed)
        self.calls = 0
        self._stop = False
        self._next = 0.0

    def start(self) -> None:
        self._next = time.monotonic()
        self.reactor.callLater(0, self._due)

    def stop(self) -> None:
        self._stop = True

    def _due(self) -> None:
        if self._stop:
            return
        now = time.monotonic()
        while self._next <= now:
            q = self.rng.randrange(QUEUES)
            try:
                self.sim.caller_calls(str(5100 + q), f"420{self.rng.randint(600000000, 799999999)}", "Bench Caller",
                                      hangup_after=(5.0, 15.0), abandon_after=(60.0, 90.0))
                self.calls += 1
            except Exception as e:  # the sim refused: say so
                print("call failed:", e)
            self._next += self.rng.expovariate(self.rate)
        self.reactor.callLater(max(0.0, self._next - now), self._due)


# -- a twistd node ----------------------------------------------------------------------------------


def toml(sections: dict[str, dict[str, Any]]) -> str:
    """A configuration file's text from ``{section: {key: value}}`` (strings, numbers, booleans, lists)."""
    out = []
    for name, values in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{key} = {json.dumps(value)}" for key, value in values.items())
    return "\n".join(out) + "\n"


class Node:
    """One ``twistd -n --reactor=asyncio ucs`` process on a configuration of its own:
    the store, a free web port, the simulated Asterisk at ``ami_port`` (user ``ucs``),
    SSO for the bench bars, agents READY once paired; ``sections`` over those."""

    def __init__(self, name: str, directory: Path, store: str, ami_port: int,
                 sections: dict[str, dict[str, Any]] | None = None) -> None:
        self.name = name
        self.port = free_port()
        directory.mkdir()
        self.directory = directory
        config: dict[str, dict[str, Any]] = {
            "store": {"url": store},
            "web": {"port": self.port, "max_connections": 0},
            "ami": {"host": "127.0.0.1", "port": ami_port, "username": "ucs", "secret": "ucslab"},
            "auth": {"sso_secret": SSO_SECRET, "sso_window": 3600.0},
            "agents": {"initial_status": "ready"},
            "plugins": {"directory": str(directory / "plugins")},
            "log": {"level": "warn"},
        }
        for section, values in (sections or {}).items():
            config[section] = {**config.get(section, {}), **values}
        self.config = directory / "ucs.toml"
        self.config.write_text(toml(config), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def cluster(nats: str, domain: str, name: str) -> dict[str, Any]:
        """The ``[cluster]`` section of node ``name``."""
        return {"enabled": True, "nats": [nats], "domain": domain, "node": name}

    def start(self) -> None:
        log = open(self.directory / "ucs.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen([str(TWISTD), "-n", "--pidfile=", "--reactor=asyncio", "ucs", "--config",
                                      str(self.config)], cwd=self.directory, env=env(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9``, and the process reaped."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def role(self) -> tuple[str, str, str]:
        """``(role, ami, term)`` from its ``/health`` (blocking)."""
        h = health(self.port, 1)
        c = h.get("cluster", {})
        return c.get("role", ""), h.get("ami", ""), c.get("term", "")

    # /proc read directly (what psutil reads; psutil is not in every environment's venv)
    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary_line(label: str, times: list[float]) -> str:
    """``min / median / p90 / max`` of ``times`` in seconds."""
    import statistics

    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return (f"{label}: min {ordered[0]:.2f} s, median {statistics.median(ordered):.2f} s, p90 {p90:.2f} s, "
            f"max {ordered[-1]:.2f} s")


def poll(test: Callable[[], Any], timeout: float, what: str, step: float = 0.02) -> float:
    """Wait (blocking) until ``test()`` is true; the seconds it took."""
    start = time.monotonic()
    while not test():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"{what}: not within {timeout:g} s")
        time.sleep(step)
    return time.monotonic() - start
