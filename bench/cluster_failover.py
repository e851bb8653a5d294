"""Failover time of a UCS cluster: ``kill -9`` of the AMI owner, until another node's AMI link is up.

    .venv/bin/python bench/cluster_failover.py [--nodes 3] [--kills 20] [--store URL] [--nats URL]

Starts the simulated Asterisk (``python -m ucs.sim``) and ``--nodes`` UCS nodes
(``twistd -n --reactor=asyncio ucs`` with ``[cluster]`` at its defaults) on the
PostgreSQL at ``--store`` (a schema of its own, dropped at the end) and the
NATS at ``--nats``.  Then ``--kills`` times: find the owner (``/health``),
``kill -9`` it, and time until another node says ``role: owner`` with its AMI
link ``up`` (polled every 20 ms); start the killed node again and wait until it
is a standby following the new owner's term.  Prints each time and the
min / median / p90 / max.  Figures only: nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
PYTHON = Path(sys.executable)
TWISTD = PYTHON.with_name("twistd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    return e


def health(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            body: dict[str, Any] = json.loads(r.read())
            return body
    except OSError:
        return {}


def wait(test: Any, timeout: float = 60.0, step: float = 0.02) -> float:
    start = time.monotonic()
    while not test():
        if time.monotonic() - start > timeout:
            raise SystemExit(f"cluster_failover: not within {timeout:g} s")
        time.sleep(step)
    return time.monotonic() - start


class Node:
    def __init__(self, name: str, directory: Path, store: str, nats: str, domain: str, ami_port: int) -> None:
        self.name = name
        self.port = free_port()
        directory.mkdir()
        self.directory = directory
        self.config = directory / "ucs.toml"
        self.config.write_text(f"""
[store]
url = "{store}"
[web]
port = {self.port}
[ami]
port = {ami_port}
secret = "ucslab"
[plugins]
directory = "{directory / 'plugins'}"
[log]
level = "warn"
[cluster]
enabled = true
nats = ["{nats}"]
domain = "{domain}"
node = "{name}"
""", encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.directory / "ucs.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen([str(TWISTD), "-n", "--pidfile=", "--reactor=asyncio", "ucs", "--config",
                                      str(self.config)], cwd=self.directory, env=env(), stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def role(self) -> tuple[str, str, str]:
        h = health(self.port)
        c = h.get("cluster", {})
        return c.get("role", ""), h.get("ami", ""), c.get("term", "")


def schema(url: str, action: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"' if action == "create" else f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--store", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--nats", default="nats://127.0.0.1:4222")
    args = p.parse_args()
    if args.nodes < 2:
        raise SystemExit("cluster_failover: --nodes must be 2 or more")
    name = f"ucs_bench_{secrets.token_hex(4)}"
    schema(args.store, "create", name)
    sep = "&" if "?" in args.store else "?"
    store = f"{args.store}{sep}options={quote(f'-csearch_path={name}', safe='')}"
    domain = f"bench-{secrets.token_hex(3)}.example.com"
    ami_port = free_port()
    sim = subprocess.Popen([str(PYTHON), "-m", "ucs.sim", "--port", str(ami_port), "--phones", "4"], env=env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ucs-failover-") as tmp:
        nodes = [Node(f"node-{i}", Path(tmp) / f"node-{i}", store, args.nats, domain, ami_port)
                 for i in range(args.nodes)]
        try:
            wait(lambda: _listening(ami_port))
            for node in nodes:
                node.start()
            wait(lambda: sum(n.role()[0] == "owner" and n.role()[1] == "up" for n in nodes) == 1, 120)
            for kill in range(args.kills):
                owner = next(n for n in nodes if n.role()[0] == "owner")
                others = [n for n in nodes if n is not owner]
                wait(lambda: all(n.role()[0] == "standby" for n in others))
                owner.kill()
                took = wait(lambda: any(n.role()[0] == "owner" and n.role()[1] == "up" for n in others))
                times.append(took)
                print(f"kill {kill + 1}: {owner.name} killed; {took:.2f} s until another node's AMI link was up",
                      flush=True)
                owner.start()
                new = next(n for n in others if n.role()[0] == "owner")
                wait(lambda: owner.role()[0] == "standby" and owner.role()[2] == new.role()[2], 120)
        finally:
            for node in nodes:
                node.stop()
            sim.terminate()
            sim.wait(30)
            schema(args.store, "drop", name)
    if times:
        ordered = sorted(times)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
        print(f"{args.nodes} nodes, {len(times)} kills: failover min {ordered[0]:.2f} s, median "
              f"{statistics.median(ordered):.2f} s, p90 {p90:.2f} s, max {ordered[-1]:.2f} s")
    return 0


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
