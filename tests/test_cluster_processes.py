"""Two real UCS nodes (``twistd --reactor=asyncio ucs``), one simulated Asterisk (issue 20, points 2 and 4).

The simulated PBX listens in this process; two ``twistd`` processes share the
real PostgreSQL (a schema of their own) and the real NATS, with ``[cluster]``
on.  The first is elected the AMI owner: its AMI link is up and ``/health``
says ``owner``; the second is a standby with no AMI link.  ``kill -9`` of the
owner → the standby takes the link (how long it took is logged, not asserted,
beyond a generous deadline); the killed node started again comes back as a
standby and does not take the link back.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest_twisted
import treq
from twisted.internet import reactor, threads

from clusterkit import cluster_env
from test_cluster_stream import NATS_URL
from test_twistd import Running
from ucs.sim.service import SimService

DEADLINE = 60.0


class Node(Running):
    """``twistd -n --reactor=asyncio ucs --config FILE``."""

    def __init__(self, config: Path, cwd: Path) -> None:
        import subprocess
        import threading

        from test_twistd import TWISTD, env

        self.proc = subprocess.Popen(
            [str(TWISTD), "-n", "--pidfile=", "--reactor=asyncio", "ucs", "--config", str(config)], cwd=cwd,
            env=env(), text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def node_config(tmp_path: Path, name: str, store: str, sim: SimService, domain: str) -> tuple[Path, int]:
    port = free_port()
    user, secret = sim.credentials
    directory = tmp_path / name
    directory.mkdir()
    path = directory / "ucs.toml"
    path.write_text(f"""
[store]
url = "{store}"
[web]
port = {port}
[ami]
host = "127.0.0.1"
port = {sim.port}
username = "{user}"
secret = "{secret}"
[plugins]
directory = "{directory / 'plugins'}"
[cluster]
enabled = true
nats = ["{NATS_URL}"]
domain = "{domain}"
node = "{name}"
""", encoding="utf-8")
    return path, port


async def health(port: int) -> dict[str, Any]:
    response = await treq.get(f"http://127.0.0.1:{port}/health", timeout=5)
    body: dict[str, Any] = json.loads(await response.content())
    return body


async def wait_line(node: Node, text: str) -> str:
    line: str = await threads.deferToThread(node.wait_for, text)
    return line


async def until_health(port: int, test: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            seen = await health(port)
        except Exception:  # noqa: S112 - not listening yet
            seen = {}
        if seen and test(seen):
            return seen
        await _pause()
    raise AssertionError(f"/health on {port} never became what the test waits for; last: {seen}")


async def _pause() -> None:
    from twisted.internet import task

    await task.deferLater(reactor, 0.2, lambda: None)


@pytest_twisted.ensureDeferred
async def test_kill_9_of_the_owner_makes_the_standby_the_owner_and_the_old_one_comes_back_as_standby(
        tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        store, domain, sim = env.store, env.domain, env.sim
        nodes = env.nodes
        config_a, port_a = node_config(tmp_path, "node-a", store, sim, domain)
        config_b, port_b = node_config(tmp_path, "node-b", store, sim, domain)
        a = Node(config_a, tmp_path / "node-a")
        nodes.append(a)
        await wait_line(a, "this node owns the AMI link now")
        h = await until_health(port_a, lambda h: h["ami"] == "up")
        assert h["cluster"]["role"] == "owner" and h["cluster"]["postgresql"] == "up"
        assert h["cluster"]["node"] == "node-a" and h["cluster"]["domain"] == domain
        h = await until_health(port_a, lambda h: h["cluster"]["nats"] == "up" and h["cluster"]["term"])
        assert h["cluster"]["term"].startswith("node-a:")

        b = Node(config_b, tmp_path / "node-b")
        nodes.append(b)
        await wait_line(b, "election node-b: connecting -> standby")
        h = await until_health(port_b, lambda h: h["cluster"]["nats"] == "up" and h["cluster"]["term"])
        assert h["cluster"]["role"] == "standby" and h["ami"] == "down" and h["cluster"]["postgresql"] == "up"
        # The standby follows the owner's term (its snapshot and stream).
        assert h["cluster"]["term"] == (await health(port_a))["cluster"]["term"]

        # kill -9 of the owner: the standby takes the AMI link.
        killed = time.monotonic()
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(DEADLINE)
        await wait_line(b, "this node owns the AMI link now")
        took = time.monotonic() - killed
        print(f"failover: node-b owned the AMI link {took:.2f} s after kill -9 of node-a")
        h = await until_health(port_b, lambda h: h["ami"] == "up")
        assert h["cluster"]["role"] == "owner"
        await until_health(port_b, lambda h: h["cluster"]["term"].startswith("node-b:"))

        # node-a comes back: a standby, and it does not take the link back.
        a2 = Node(config_a, tmp_path / "node-a")
        nodes.append(a2)
        await wait_line(a2, "election node-a: connecting -> standby")
        h = await until_health(port_a, lambda h: h["cluster"]["term"].startswith("node-b:"))
        assert h["cluster"]["role"] == "standby" and h["ami"] == "down"
        await _pause()
        assert (await health(port_b))["cluster"]["role"] == "owner"
        assert "this node owns the AMI link now" not in a2.output
