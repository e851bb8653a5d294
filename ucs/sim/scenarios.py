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

from ucs.sim import flows
from ucs.sim.lab import AMI_USER
from ucs.sim.player import LABS, SCENARIOS, Player, Result, Scenario, play, scenario

__all__ = ["LABS", "SCENARIOS", "Player", "Result", "Scenario", "play", "scenario"]


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
    await flows.click_to_dial(p, "SIP/1001", 2, 10, trunk_answer=1)


@scenario
async def caller_abandons(p: Player) -> None:
    await flows.caller_abandons(p, "SIP/1001", abandon_after=3, wait=5)


@scenario
async def hold_mute(p: Player) -> None:
    await flows.customer_call(p, {"SIP/1001": 1}, [(3, 3)], talk=2)


@scenario
async def atxfer_complete(p: Player) -> None:
    await flows.customer_call(p, {"SIP/1001": 1, "SIP/1003": 2}, [(4, 2), (4, 1)], talk=3)


@scenario
async def blind_transfer_action(p: Player) -> None:
    await flows.customer_call(p, {"SIP/1001": 1, "SIP/1002": 1}, [(4, 1)], talk=4)


@scenario
async def hold_redirect_bridge(p: Player) -> None:
    await flows.customer_call(p, {"SIP/1001": 1}, [(4, 1), (3, 1)], talk=2)


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


# The matrix's flows register themselves here (sip_* and pj_* scenarios), after these.
from ucs.sim import matrix  # noqa: E402,F401
