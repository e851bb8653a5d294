"""Playing a capture's actions on the simulator over a real AMI link.

:class:`Player` sends a capture's ``.actions`` step by step; the scenarios
(:mod:`ucs.sim.scenarios` for the first captures, :mod:`ucs.sim.matrix` for
the matrix's flows) register themselves in :data:`SCENARIOS` (and their lab
in :data:`LABS` when it is not :func:`ucs.sim.lab.lab`); :func:`play` runs
one.  Import :mod:`ucs.sim.scenarios` to have them all registered.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from ucs.sim.compare import load_actions
from ucs.sim.lab import lab
from ucs.sim.pbx import Sim
from ucs.sim.testing import AMITestClient, Message, SimHarness

_CHANNEL_HEADERS = {"channel", "extrachannel", "channel1", "channel2"}
_NAMED = re.compile(r"^((?:SIP|PJSIP|Local)/[^-]+)-[0-9a-f]{8}(;[12])?$")


class Result:
    def __init__(self, name: str, messages: list[Message], raw: bytes, sim: Sim) -> None:
        self.name = name
        self.messages = messages
        self.raw = raw
        self.sim = sim


class Player:
    """Plays one capture's actions, step by step, against a simulator."""

    def __init__(self, harness: SimHarness, actions: list[list[tuple[str, str]]]) -> None:
        self.h = harness
        self.sim = harness.sim
        self.actions = actions
        self.client: AMITestClient | None = None
        self.responses: dict[int, Message] = {}

    async def connect(self) -> AMITestClient:
        self.client = await self.h.client()
        self.client.keep_raw = True
        return self.client

    def _map(self, value: str) -> str:
        m = _NAMED.match(value)
        if m is None:
            return value
        base = m.group(1)
        chans = [c for c in self.sim.channels.values() if c.name.startswith(base + "-")]
        if m.group(2):
            chans = [c for c in chans if c.name.endswith(m.group(2))]
        return chans[-1].name if chans else value

    async def act(self, n: int, **override: str) -> Message:
        """Send the capture's action ``lab-n`` (headers in ``override`` replaced)."""
        assert self.client is not None
        pairs = []
        for k, v in self.actions[n - 1]:
            if k in override:
                v = override[k]
            elif k.lower() in _CHANNEL_HEADERS:
                v = self._map(v)
            pairs.append((k, v))
        resp = await self.client.send(pairs)
        self.responses[n] = resp
        return resp

    async def run(self, *numbers: int) -> None:
        for n in numbers:
            await self.act(n)

    async def wait(self, seconds: float) -> None:
        """Let ``seconds`` of simulated time pass, and receive what it caused."""
        self.h.advance(seconds)
        await self._settle()

    async def _settle(self) -> None:
        # Timers scheduled at 0 (queue re-tries) run on the next advance.
        self.h.clock.advance(0)
        assert self.client is not None
        if self.client.transport is not None and self.client.transport.connected:
            await self.client.barrier()
            # The Ping's own response is not part of the capture.
            self.client.messages[:] = [m for m in self.client.messages if not _is_barrier(m)]

    async def logoff(self, n: int) -> None:
        assert self.client is not None
        await self.act(n)
        await self.client.closed


def _is_barrier(m: Message) -> bool:
    return m.get("ActionID", "").startswith("t-") and m.get("Ping") == "Pong"


Scenario = Callable[[Player], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {}
#: The lab a scenario was recorded in, when it is not :func:`ucs.sim.lab.lab`
#: (the matrix's flows: :func:`ucs.sim.lab.matrix_lab`).
LABS: dict[str, Callable[[Clock], Sim]] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


async def play(
    name: str,
    captures_dir: str | Path,
    *,
    sim: Sim | None = None,
    actions_file: str | None = None,
    player: Callable[[Player], Awaitable[None]] | None = None,
    **server_options: Any,
) -> Result:
    """Play scenario ``name`` on a fresh simulator of its lab (or on ``sim``)."""
    sim = sim if sim is not None else LABS.get(name, lab)(Clock())
    actions = load_actions(Path(captures_dir) / (actions_file or f"{name}.actions"))
    harness = await SimHarness.start(sim, **server_options)
    try:
        p = Player(harness, actions)
        await p.connect()
        await (player or SCENARIOS[name])(p)
        assert p.client is not None
        return Result(name, list(p.client.messages), bytes(p.client.raw), sim)
    finally:
        await harness.stop()
