"""Network namespaces for the cluster tests: each UCS node on a network of its own (issue 20).

One :class:`NetLab` per test: a bridge in the root namespace with the first address
of a private /24 picked for the test (``10.X.Y.1``), and per node a namespace
(``ucs-<tag>-<name>``) joined to the bridge by a veth pair, the node at
``10.X.Y.(10+i)``.  The simulated Asterisk listens on the bridge's address.
PostgreSQL and NATS listen on 127.0.0.1 only, so each node reaches them through
forwarders of its own in the root namespace, bound on the bridge's address
(:class:`cutproxy.CutProxy`, with TCP keepalives standing in for PostgreSQL's own:
they close the server's side of a node whose network went).

:meth:`NetLab.cut` takes the node's veth down (its end in the root namespace):
every link of that node goes at once -- PostgreSQL, NATS, AMI, its bars -- with
its packets lost, as a pulled cable.  :meth:`NetLab.mend` brings it back.

Needs root (``ip netns add``); :func:`netlab` skips with the reason when it is
refused.  Everything made is removed at the end, also when the test fails.
"""

from __future__ import annotations

import ipaddress
import random
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from cutproxy import CutProxy


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check,
                          stdin=subprocess.DEVNULL)


def unavailable() -> str:
    """Why namespaces cannot be made here ("" when they can)."""
    probe = f"ucs-probe-{secrets.token_hex(3)}"
    try:
        made = ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return "the `ip` command (iproute2) is not installed"
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here ({made.stderr.strip()}); these tests need root"
    ip("netns", "del", probe, check=False)
    return ""


def _free_subnet() -> ipaddress.IPv4Network:
    used = ip("-4", "addr").stdout + ip("-4", "route").stdout
    for _ in range(100):
        net = ipaddress.IPv4Network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if f"{str(net.network_address).rsplit('.', 1)[0]}." not in used:
            return net
    raise RuntimeError("no free 10.200-254.x.0/24 subnet for the test's network")


@attrs.define
class Netns:
    """One node's namespace: its name, address, the veth end in the root namespace, its forwarders."""

    name: str
    address: str
    veth: str
    forwarders: dict[str, CutProxy] = attrs.field(factory=dict)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run in this namespace (``ip netns exec`` execs it: the pid is the program's)."""
        return ["ip", "netns", "exec", self.name, *argv]


class NetLab:
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.tag = secrets.token_hex(3)
        self.subnet = _free_subnet()
        hosts = list(self.subnet.hosts())
        self._hosts = hosts
        self.gateway = str(hosts[0])
        self.bridge = f"ucb{self.tag}"
        self.nodes: dict[str, Netns] = {}
        self._made_bridge = False

    def start(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        self._made_bridge = True
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add(self, name: str, forward: dict[str, int] | None = None, keepalive: int = 6) -> Netns:
        """A namespace for node ``name``; ``forward``: {what: port on 127.0.0.1} reached through a
        forwarder of its own on the bridge's address (``ns.forwarders[what].port``)."""
        i = len(self.nodes)
        ns = Netns(f"ucs-{self.tag}-{name}", str(self._hosts[10 + i]), f"ucv{self.tag}{i}")
        self.nodes[name] = ns
        ip("netns", "add", ns.name)
        peer = f"{ns.veth}p"
        ip("link", "add", ns.veth, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", ns.name)
        ip("-n", ns.name, "link", "set", peer, "name", "eth0")
        ip("-n", ns.name, "addr", "add", f"{ns.address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", ns.name, "link", "set", "lo", "up")
        ip("-n", ns.name, "link", "set", "eth0", "up")
        ip("link", "set", ns.veth, "master", self.bridge)
        ip("link", "set", ns.veth, "up")
        for what, port in (forward or {}).items():
            proxy = CutProxy(self.reactor, port, interface=self.gateway, keepalive=keepalive)
            proxy.start()
            ns.forwarders[what] = proxy
        return ns

    def cut(self, name: str) -> None:
        """Node ``name``'s network goes: every packet to or from it is lost."""
        ip("link", "set", self.nodes[name].veth, "down")

    def mend(self, name: str) -> None:
        ip("link", "set", self.nodes[name].veth, "up")

    async def stop(self) -> None:
        """Stop the forwarders and remove the network (the processes in it must be stopped first)."""
        for ns in self.nodes.values():
            for proxy in ns.forwarders.values():
                await proxy.stop()
            ns.forwarders.clear()
        self.remove()

    def remove(self) -> None:
        """Remove the namespaces, veths and bridge made (again: nothing happens)."""
        errors = []
        for ns in self.nodes.values():
            for args in (("link", "del", ns.veth), ("netns", "del", ns.name)):
                done = ip(*args, check=False)
                if done.returncode != 0 and "Cannot find" not in done.stderr and "No such" not in done.stderr:
                    errors.append(f"ip {' '.join(args)}: {done.stderr.strip()}")
        if self._made_bridge:
            done = ip("link", "del", self.bridge, check=False)
            if done.returncode != 0 and "Cannot find" not in done.stderr:
                errors.append(f"ip link del {self.bridge}: {done.stderr.strip()}")
            self._made_bridge = False
        if errors:
            raise RuntimeError("the test's network was not removed entirely: " + "; ".join(errors))


@pytest.fixture
def netlab() -> Iterator[NetLab]:
    """A :class:`NetLab` (started).  The test awaits :meth:`NetLab.stop` once its processes are
    stopped; whatever is left (a test that failed first) is removed here."""
    why = unavailable()
    if why:
        pytest.skip(f"network namespaces unavailable: {why}")
    from twisted.internet import reactor

    lab = NetLab(reactor)
    try:
        lab.start()
        yield lab
    finally:
        lab.remove()
