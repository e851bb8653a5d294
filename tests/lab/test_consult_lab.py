"""Swap, conference and the keypad on a real Asterisk (issue 16): the Atxfer feature's
own keys (atxferswap *4, atxferthreeway *3, features.conf) pressed by UCS with
``PlayDTMF`` ``Receive: true``, and keys sent out to the caller with ``PlayDTMF``.
The simulator (tests/test_control_consult.py) models what is checked here."""

from __future__ import annotations

import pytest
import pytest_twisted
from labkit import Lab, LabUCS, Phones, phones_of
from test_matrix_lab import CALLER_HUNG_UP, SIP, answered_queue_call, asterisk_agrees, hung_up, poll


def _op(ucs: LabUCS, device: str) -> str:
    op = ucs.server.get_call_control().ops.get(device)
    return op.state if op is not None else "idle"


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_keypad_swap_conference_and_leave(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """a sends keys to the customer, consults c, swaps to the customer and back, joins all
    three, and leaves: the customer and c talk on until the customer hangs up."""
    p = phones_of(lab, driver)
    a, c = p["a"], p["c"]
    bar_a = await answered_queue_call(ucs, phones, a, talk_ms=30000)
    reply = await bar_a.call("call.dtmf", "12#")
    assert reply["state"] == 3
    bar_c = await ucs.agent(c)
    phones.phone(c)
    await bar_a.call("call.transfer", c.number)
    await bar_c.event("call.connect")
    pbx = ucs.server.get_pbx()

    def agent_channel() -> str:
        return next(ch.uniqueid for ch in pbx.channels_of_device(a.device) if not ch.is_local)

    await bar_a.call("call.swap")
    assert _op(ucs, a.device) == "swapped"
    call = ucs.server.get_call_tracker().call_of(agent_channel())
    assert call is not None
    caller = pbx.channels[call.origin]
    assert pbx.channels[agent_channel()].bridge == caller.bridge and not caller.on_hold
    await bar_a.call("call.swap")
    assert _op(ucs, a.device) == "consulting" and caller.on_hold
    await bar_a.call("call.conference")
    assert _op(ucs, a.device) == "conference"
    bridge = pbx.bridges[caller.bridge or ""]
    assert len(bridge.channels) == 3, bridge
    assert "MusicOnHold" not in await lab.acli("core show channels")
    await bar_a.call("call.hangup")

    async def a_left() -> bool:
        return _op(ucs, a.device) == "idle" and not pbx.channels_of_device(a.device)

    await poll(a_left, "a left the conference")
    end_c = await hung_up(bar_c, CALLER_HUNG_UP, timeout=40)
    assert end_c["uniqueid"] == call.uniqueid
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_swap_then_finish(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Back with the customer, a completes the transfer: the customer talks to c."""
    p = phones_of(lab, driver)
    a, c = p["a"], p["c"]
    bar_a = await answered_queue_call(ucs, phones, a, talk_ms=20000)
    bar_c = await ucs.agent(c)
    phones.phone(c)
    await bar_a.call("call.transfer", c.number)
    await bar_c.event("call.connect")
    await bar_a.call("call.swap")
    await bar_a.call("call.finishTransfer")
    await hung_up(bar_c, CALLER_HUNG_UP, timeout=30)
    await asterisk_agrees(ucs, lab)

