"""Run the simulator for a test: a real TCP AMI server on 127.0.0.1 and a client.

The simulated PBX runs on a ``task.Clock`` the test advances; the sockets run
on the real reactor, so a test awaits what the client receives (``await
client.barrier()`` makes sure every event written so far has arrived).

    harness = await SimHarness.start(lab(Clock()))
    client = await harness.client()
    await client.send([("Action", "Login"), ("Username", "ucs"), ("Secret", "ucslab")])
    harness.advance(5)
    await client.barrier()
    ...
    await harness.stop()
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.task import Clock

from ucs.ami.message import AMIParser, format_message
from ucs.sim.pbx import Sim
from ucs.sim.server import AMIServer

Message = dict[str, str]


class AMITestClient(protocol.Protocol):
    """Records every message received; answers each action with its response."""

    _ids = itertools.count(1)
    transport: Any

    def __init__(self) -> None:
        self.parser = AMIParser()
        self.messages: list[Message] = []
        self.raw = bytearray()
        self._waiting: dict[str, defer.Deferred[Message]] = {}
        self._watchers: list[tuple[Callable[[Message], bool], defer.Deferred[Message]]] = []
        self.connected_d: defer.Deferred[AMITestClient] = defer.Deferred()
        self.closed: defer.Deferred[None] = defer.Deferred()
        self.keep_raw = False

    def connectionMade(self) -> None:
        self.connected_d.callback(self)

    def dataReceived(self, data: bytes) -> None:
        if self.keep_raw:
            self.raw += data
        for m in self.parser.feed(data):
            self.messages.append(m)
            aid = m.get("ActionID")
            if aid is not None and "Response" in m and "Event" not in m:
                d = self._waiting.pop(aid, None)
                if d is not None:
                    d.callback(m)
            for w in list(self._watchers):
                if w[0](m):
                    self._watchers.remove(w)
                    w[1].callback(m)

    def connectionLost(self, reason: object = None) -> None:
        for d in self._waiting.values():
            d.errback(ConnectionError("AMI connection closed before the response"))
        self._waiting.clear()
        if not self.closed.called:
            self.closed.callback(None)

    def send(self, pairs: Iterable[tuple[str, object]]) -> defer.Deferred[Message]:
        """Send an action; the Deferred fires with its response."""
        pairs = list(pairs)
        if not any(k.lower() == "actionid" for k, _ in pairs):
            pairs.insert(1, ("ActionID", f"t-{next(self._ids)}"))
        aid = next(str(v) for k, v in pairs if k.lower() == "actionid")
        d: defer.Deferred[Message] = defer.Deferred()
        self._waiting[aid] = d
        self.transport.write(format_message(pairs))
        return d

    def action(self, name: str, **headers: object) -> defer.Deferred[Message]:
        return self.send([("Action", name), *headers.items()])

    def wait_for(self, pred: Callable[[Message], bool]) -> defer.Deferred[Message]:
        """Fires with the next message (from now on) for which ``pred`` is true."""
        d: defer.Deferred[Message] = defer.Deferred()
        self._watchers.append((pred, d))
        return d

    async def barrier(self) -> None:
        """Everything the server wrote before now has been received."""
        await self.action("Ping")

    async def login(self, username: str = "ucs", secret: str = "ucslab", events: str = "on") -> Message:
        return await self.action("Login", Username=username, Secret=secret, Events=events)

    def events(self, name: str | None = None) -> list[Message]:
        return [m for m in self.messages if "Event" in m and (name is None or m["Event"] == name)]


class SimHarness:
    """A :class:`Sim` served over TCP on 127.0.0.1, port chosen by the system."""

    def __init__(self, sim: Sim, server: AMIServer, port: Any) -> None:
        self.sim = sim
        self.server = server
        self.port = port
        self.clients: list[AMITestClient] = []

    @classmethod
    async def start(cls, sim: Sim, **server_options: Any) -> SimHarness:
        from twisted.internet import reactor

        server = AMIServer(sim, **server_options)
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
        return cls(sim, server, port)

    @property
    def clock(self) -> Clock:
        return self.sim.clock  # type: ignore[no-any-return]

    @property
    def portnum(self) -> int:
        return self.port.getHost().port  # type: ignore[no-any-return]

    async def client(self) -> AMITestClient:
        from twisted.internet import reactor

        cc = protocol.ClientCreator(reactor, AMITestClient)
        c: AMITestClient = await cc.connectTCP("127.0.0.1", self.portnum)
        self.clients.append(c)
        return c

    def advance(self, seconds: float, step: float = 0.1) -> None:
        """Move the simulator's clock on by ``seconds``, in small steps."""
        clock = self.clock
        target = clock.seconds() + seconds
        while clock.seconds() + step < target:
            clock.advance(step)
        clock.advance(max(0.0, target - clock.seconds()))

    async def stop(self) -> None:
        for c in self.clients:
            if c.transport is not None and c.transport.connected:
                c.transport.loseConnection()
                await c.closed
        await defer.maybeDeferred(self.port.stopListening)
        for dc in list(self.sim._pending):
            self.sim._cancel(dc)
        for dc in self.clock.getDelayedCalls():
            if dc.active():
                dc.cancel()
