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

import signal
import time
from pathlib import Path

import pytest_twisted

from clusterkit import DEADLINE, Node, cluster_env, health, node_config, pause, until_health, wait_line


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
        await pause()
        assert (await health(port_b))["cluster"]["role"] == "owner"
        assert "this node owns the AMI link now" not in a2.output
