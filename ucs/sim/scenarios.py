"""The captures' scenarios, played on the simulator over a real AMI link.

Each scenario sends the capture's own ``.actions`` (channel names in them are
mapped to the simulator's channels of the same peer) and makes the phones and
callers do what the captures' README says happened physically.  The result
holds every message the client received and the raw bytes, ready to be
compared with the capture (:mod:`ucs.sim.compare`) or fed to ``ucs-replay``.

    result = await play("queue_answered_caller_hangup", captures_dir)
    assert compare.diff(result.messages, compare.load_capture(path)) == []
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from ucs.sim.compare import load_actions
from ucs.sim.lab import AMI_USER, lab
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


@scenario
async def queue_answered_caller_hangup(p: Player) -> None:
    await p.run(1, 2)
    p.sim.phone("SIP/1001").set_behaviour(answer_after=1.5)
    p.sim.caller_calls("5000", hangup_after=2)
    await p.wait(6)
    await p.run(3)
    await p.logoff(4)


@scenario
async def filtered_events(p: Player) -> None:
    await queue_answered_caller_hangup(p)


@scenario
async def queue_paused_aux_then_ready(p: Player) -> None:
    await p.run(1, 2)
    p.sim.phone("SIP/1002").set_behaviour(answer_after=1)
    p.sim.caller_calls("5000")
    await p.wait(3)
    await p.run(3, 4)
    await p.wait(3)
    await p.run(5)
    await p.wait(3)
    await p.run(6)
    await p.wait(1)
    await p.run(7)
    await p.logoff(8)


@scenario
async def click_to_dial(p: Player) -> None:
    await p.run(1)
    p.sim.phone("SIP/1001").set_behaviour(answer_after=2)
    p.sim.trunk("SIP/carrier").set_behaviour(answer_after=1)
    await p.run(2)
    await p.wait(10)
    await p.run(3)
    await p.wait(1)
    await p.logoff(4)


@scenario
async def caller_abandons(p: Player) -> None:
    await p.run(1, 2)
    p.sim.caller_calls("5000", abandon_after=3)
    await p.wait(5)
    await p.run(3)
    await p.logoff(4)


@scenario
async def hold_mute(p: Player) -> None:
    await p.run(1, 2)
    p.sim.phone("SIP/1001").set_behaviour(answer_after=1)
    customer = p.sim.caller_calls("5000")
    await p.wait(3)
    await p.run(3, 4, 5)
    await p.wait(2)
    p.sim.bye(customer)
    await p.wait(1)
    await p.run(6)
    await p.logoff(7)


@scenario
async def atxfer_complete(p: Player) -> None:
    await p.run(1, 2)
    p.sim.phone("SIP/1001").set_behaviour(answer_after=1)
    p.sim.phone("SIP/1003").set_behaviour(answer_after=2)
    customer = p.sim.caller_calls("5000")
    await p.wait(4)
    await p.run(3, 4)
    await p.wait(4)
    await p.run(5)
    await p.wait(3)
    p.sim.bye(customer)
    await p.wait(1)
    await p.run(6)
    await p.logoff(7)


@scenario
async def blind_transfer_action(p: Player) -> None:
    await p.run(1, 2)
    p.sim.phone("SIP/1001").set_behaviour(answer_after=1)
    p.sim.phone("SIP/1002").set_behaviour(answer_after=1)
    customer = p.sim.caller_calls("5000")
    await p.wait(4)
    await p.run(3)
    await p.wait(4)
    p.sim.bye(customer)
    await p.wait(1)
    await p.run(4)
    await p.logoff(5)


@scenario
async def hold_redirect_bridge(p: Player) -> None:
    await p.run(1, 2)
    p.sim.phone("SIP/1001").set_behaviour(answer_after=1)
    customer = p.sim.caller_calls("5000")
    await p.wait(4)
    await p.run(3)
    await p.wait(3)
    await p.run(4)
    await p.wait(2)
    p.sim.bye(customer)
    await p.wait(1)
    await p.run(5)
    await p.logoff(6)


@scenario
async def phone_registers_and_pauses(p: Player) -> None:
    await p.run(1, 2, 3)
    p.sim.register("SIP/1004", "127.0.0.14", 5064, useragent="Yealink SIP-T46U 108.86.0.20", expires=120)
    await p.wait(0.5)
    await p.run(4, 5, 6, 7)
    await p.wait(2.5)
    p.sim.unregister("SIP/1004")
    await p.wait(0.5)
    await p.run(8, 9, 10)
    await p.logoff(11)


@scenario
async def asterisk_restart(p: Player) -> None:
    await p.run(1, 2)
    p.sim.phone("SIP/1001").set_behaviour(answer_after=1)
    p.sim.caller_calls("5000")
    await p.wait(5)
    assert p.client is not None
    p.sim.restart()
    await p.client.closed


@scenario
async def resync_snapshot(p: Player) -> None:
    challenge = await p.act(1)
    secret = AMI_USER[1]
    await p.act(2, Key=hashlib.md5((challenge["Challenge"] + secret).encode()).hexdigest())
    await p.run(3, 4, 5, 6)
    p.sim.phone("SIP/1001").set_behaviour(answer_after=1)
    p.sim.caller_calls("5000")
    await p.wait(3)
    await p.run(7)
    waiting = p.sim.caller_calls("5000")
    await p.wait(3)
    await p.run(*range(8, 25))
    await p.wait(1)
    p.sim.bye(waiting)
    await p.wait(1)
    await p.run(25)
    await p.wait(1)
    await p.run(26, 27, 28)
    await p.logoff(29)


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


# The matrix's flows register themselves here (sip_* and pj_* scenarios).
from ucs.sim import matrix  # noqa: E402,F401
