"""The capture matrix's flows (``sip_*`` and ``pj_*``), played on the simulator.

The matrix was recorded on Asterisk 20.21 with the configuration in
``../shared/asterisk/etc`` (:func:`ucs.sim.lab.matrix_lab`); each flow ran
once on a chan_sip phone (``sip_``: SIP/1001-1003) and, for most, once on a
PJSIP phone (``pj_``: PJSIP/2001-2003).  A flow is written once with the
phones as parameters (``a``, ``b``, ``c``) and registered under both names.
What the phones and the customer do is what the captures' README says
physically happened; the client's actions are the capture's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ucs.sim import flows
from ucs.sim.lab import matrix_lab
from ucs.sim.player import LABS, SCENARIOS, Player

#: The phones a flow uses, per variant: a, b, c.
PHONES = {
    "sip": ("SIP/1001", "SIP/1002", "SIP/1003"),
    "pj": ("PJSIP/2001", "PJSIP/2002", "PJSIP/2003"),
}

Flow = Callable[[Player, str, str, str], Awaitable[None]]


def flow(*variants: str) -> Callable[[Flow], Flow]:
    """Register ``fn`` as the scenario ``<variant>_<fn name>`` of each variant."""

    def register(fn: Flow) -> Flow:
        for v in variants:
            name = f"{v}_{fn.__name__}"

            async def play(p: Player, fn: Flow = fn, phones: tuple[str, str, str] = PHONES[v]) -> None:
                await fn(p, *phones)

            play.__name__ = name
            SCENARIOS[name] = play
            LABS[name] = matrix_lab
        return fn

    return register


@flow("sip", "pj")
async def queue_answered_agent_hangs_up(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1, 2)
    p.sim.phone(a).set_behaviour(answer_after=1.5)
    p.sim.caller_calls("5000")
    await p.wait(4)
    await p.run(3)
    await p.wait(1)
    await p.run(4)
    await p.logoff(5)


@flow("sip")
async def queue_paused_aux_then_ready(p: Player, a: str, b: str, c: str) -> None:
    # What the capture shows happened: b was still in support, unpaused, from
    # an earlier run (one call taken), so the QueueAdd fails ("Already there"),
    # the customer is put through to b at once, and the unpause comes during
    # the call.
    p.sim.queue_add("support", b, "Agent " + b.split("/")[1]).calls_taken = 1
    await flows.customer_call(p, {b: 1.5}, [(3, 1)], talk=2)


@flow("sip", "pj")
async def ringall_decline_then_answer(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1, 2, 3)
    p.sim.phone(a).set_behaviour(decline=True)
    p.sim.phone(b).set_behaviour(answer_after=1.5)
    p.sim.caller_calls("5001", hangup_after=3)
    await p.wait(7)
    await p.run(4, 5)
    await p.logoff(6)


@flow("sip", "pj")
async def caller_abandons_while_ringing(p: Player, a: str, b: str, c: str) -> None:
    await flows.caller_abandons(p, a, abandon_after=5, wait=7)


@flow("sip")
async def click_to_dial_answered(p: Player, a: str, b: str, c: str) -> None:
    await flows.click_to_dial(p, a, 1.5, 8, trunk_answer=1)


@flow("pj")
async def click_to_dial_cancelled(p: Player, a: str, b: str, c: str) -> None:
    await flows.click_to_dial(p, a, 1.5, 6, trunk_answer=None, silent=True)


@flow("sip")
async def click_to_dial_not_found(p: Player, a: str, b: str, c: str) -> None:
    # Recorded with tests/lab/record.py: the carrier answers 404 Not Found.
    await p.run(1)
    p.sim.phone(a).set_behaviour(answer_after=1.5)
    p.sim.trunk("SIP/carrier").set_behaviour(not_found=True)
    await p.run(2)
    await p.wait(3)
    await p.logoff(3)


@flow("sip")
async def click_to_dial_agent_noanswer(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1)
    p.sim.phone(a).set_behaviour(answer_after=None)
    await p.run(2)
    await p.wait(8)
    await p.logoff(3)


@flow("sip", "pj")
async def internal_busy(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1)
    p.sim.phone(b).set_behaviour(busy=True)
    p.sim.phone(a).dial(b.split("/")[1])
    await p.wait(2)
    await p.logoff(2)


@flow("sip")
async def internal_noanswer(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1)
    p.sim.phone(c).set_behaviour(answer_after=None)
    p.sim.phone(a).dial(c.split("/")[1])
    await p.wait(22)
    await p.logoff(2)


@flow("sip", "pj")
async def internal_answered_called_hangs_up(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1)
    p.sim.phone(b).set_behaviour(answer_after=1.5)
    p.sim.phone(a).dial(b.split("/")[1])
    await p.wait(4)
    await p.run(2)
    await p.wait(1)
    await p.logoff(3)


@flow("sip")
async def invalid_extension(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1)
    p.sim.phone(a).dial("7777")
    await p.wait(1)
    await p.logoff(2)


@flow("sip", "pj")
async def hold_redirect_bridge(p: Player, a: str, b: str, c: str) -> None:
    await flows.customer_call(p, {a: 1.5}, [(4, 1), (3, 1)], talk=2)


@flow("sip", "pj")
async def blind_transfer_action(p: Player, a: str, b: str, c: str) -> None:
    await flows.customer_call(p, {a: 1.5, b: 1.5}, [(4, 1)], talk=4)


@flow("sip", "pj")
async def atxfer_complete(p: Player, a: str, b: str, c: str) -> None:
    await flows.customer_call(p, {a: 1.5, c: 1.5}, [(4, 2), (4, 1)], talk=3)


@flow("sip")
async def atxfer_target_noanswer(p: Player, a: str, b: str, c: str) -> None:
    await flows.customer_call(p, {a: 1.5, c: None}, [(4, 2)], talk=17)


@flow("sip", "pj")
async def atxfer_caller_hangs_up_consulting(p: Player, a: str, b: str, c: str) -> None:
    # Recorded with tests/lab/record.py: the consultation starts a second after a
    # answers; the customer hangs up 7 s after the answer, while a and c talk;
    # 3 s later a's channel is hung up.
    await p.run(1, 2)
    p.sim.phone(a).set_behaviour(answer_after=1.5)
    p.sim.phone(c).set_behaviour(answer_after=1.5)
    customer = p.sim.caller_calls("5000")
    await p.wait(2.5)
    await p.run(3, 4)
    await p.wait(4.5)
    p.sim.bye(customer)
    await p.wait(3)
    await p.run(5)
    await p.wait(1)
    await p.run(6)
    await p.logoff(7)


@flow("sip", "pj")
async def atxfer_caller_hangs_up_ringing(p: Player, a: str, b: str, c: str) -> None:
    # As above, but c never answers: the customer hangs up while it rings.
    await p.run(1, 2)
    p.sim.phone(a).set_behaviour(answer_after=1.5)
    p.sim.phone(c).set_behaviour(answer_after=None)
    customer = p.sim.caller_calls("5000")
    await p.wait(2.5)
    await p.run(3, 4)
    await p.wait(4.5)
    p.sim.bye(customer)
    await p.wait(1)
    await p.run(5)
    await p.logoff(6)


@flow("sip", "pj")
async def mute_during_call(p: Player, a: str, b: str, c: str) -> None:
    await flows.customer_call(p, {a: 1.5}, [(4, 1), (1, 1)], talk=1)


@flow("sip")
async def module_reload_queue(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1, 2, 3)
    p.sim.module_reload("app_queue.so")
    await p.wait(0.5)
    await p.run(4, 5, 6)
    await p.logoff(7)


@flow("pj")
async def registers_and_resync(p: Player, a: str, b: str, c: str) -> None:
    await p.run(1, 2, 3)
    p.sim.register("PJSIP/2004", "127.0.0.34", 5060, useragent="Yealink SIP-T46U 108.86.0.20", expires=120)
    await p.wait(0.5)
    await p.run(4, 5, 6, 7, 8, 9)
    await p.wait(2.5)
    p.sim.unregister("PJSIP/2004")
    await p.wait(0.5)
    await p.run(10, 11, 12, 13)
    await p.logoff(14)


@flow("sip", "pj")
async def pickup(p: Player, a: str, b: str, c: str) -> None:
    # Recorded with tests/lab/record.py: the customer calls a directly; a rings; 2 s
    # later c dials **<a> (PickupChan) and takes the call; the customer hangs up 4 s later.
    await p.run(1)
    p.sim.phone(a).set_behaviour(answer_after=None)
    p.sim.caller_calls(a.split("/")[1], hangup_after=4)
    await p.wait(2)
    p.sim.phone(c).dial("**" + a.split("/")[1])
    await p.wait(5)
    await p.logoff(2)


@flow("sip", "pj")
async def record_call(p: Player, a: str, b: str, c: str) -> None:
    # Recorded with tests/lab/record.py: a second after a answers, UCS's MixMonitor
    # on a's channel (i(UCS_MIXMON_ID)); 2 s later StopMixMonitor with the id it
    # answered; the customer hangs up 7 s after the answer.
    await p.run(1, 2)
    p.sim.phone(a).set_behaviour(answer_after=1.5)
    customer = p.sim.caller_calls("5000")
    await p.wait(2.5)
    started = await p.act(3)
    await p.wait(2)
    await p.act(4, MixMonitorID=started.get("MixMonitorID", ""))
    await p.wait(2.5)
    p.sim.bye(customer)
    await p.wait(1)
    await p.run(5)
    await p.logoff(6)


@flow("sip", "pj")
async def chanspy_listen(p: Player, a: str, b: str, c: str) -> None:
    # Recorded with tests/lab/record.py: a second after a answers, UCS's Originate of
    # b (the supervisor) to ChanSpy(<a's channel>,qE); b answers; the customer hangs
    # up 8 s after the answer: ChanSpyStop, and E ends b's channel.
    await p.run(1, 2)
    p.sim.phone(a).set_behaviour(answer_after=1.5)
    p.sim.phone(b).set_behaviour(answer_after=1.5)
    customer = p.sim.caller_calls("5000")
    await p.wait(2.5)
    agent = next(ch.name for ch in p.sim.channels.values() if ch.name.startswith(a + "-"))
    data = dict(p.actions[2])["Data"]
    await p.act(3, Data=agent + data[data.index(","):])
    await p.wait(5.5)
    p.sim.bye(customer)
    await p.wait(1)
    await p.run(4)
    await p.logoff(5)
