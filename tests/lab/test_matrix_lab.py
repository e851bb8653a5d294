"""Every flow of the capture matrix, live: a real Asterisk, sipp phones, the real UCS.

``tests/data/ami-captures/README.md`` ("The matrix") says what physically
happens in each flow; here it happens again, on both channel drivers where
the matrix has the flow (``sip``: SIP/1001-1003, ``pj``: PJSIP/2001-2003).
UCS is the actor where an agent would use the bar (hang up, hold, transfer,
dial, mute: the agent-bar API over the WebSocket); sipp plays the phones and
the customer. Each flow checks what a user would notice: the events each
phone's bar got, in order, ending with ``call.hangup`` with the cause of that
phone's own end and when it was; the agent's statuses; the CDR UCS stored;
and that Asterisk itself agrees afterwards (``queue show``: the members UCS
thinks there are and their paused state; ``core show channels``: nothing left).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
import pytest_twisted
from labkit import CUSTOMER, Bar, Lab, LabUCS, Phone, Phones, phones_of

SIP = pytest.param("sip", marks=pytest.mark.chan_sip, id="sip")
#: The PJSIP half of a flow with a customer: the carrier is a chan_sip peer.
PJ_CARRIER = pytest.param("pj", marks=pytest.mark.chan_sip, id="pj")
PJ = pytest.param("pj", id="pj")
BOTH = [SIP, PJ_CARRIER]

# Seed 002's causes (ucs.calls.call.Cause).
BUSY, CALLER_HUNG_UP, CALLED_HUNG_UP, UNAVAILABLE, PICKUP, TRANSFER = 1, 3, 4, 6, 7, 8


# -- what each flow checks -----------------------------------------------------------------


def call_names(bar: Bar) -> list[str]:
    """The call events a phone's bar got, in order (``call.change`` — a number or name
    filled in — left out: how many of those come is not what a user sees)."""
    return [n for n, _ in bar.call_events() if n != "call.change"]


async def hung_up(bar: Bar, cause: int, timeout: float = 30) -> dict[str, Any]:
    """The bar's ``call.hangup``: with ``cause`` (never -1) and when the phone's part ended."""
    data = await bar.event("call.hangup", timeout=timeout)
    assert data["cause"] != -1, f"{bar.name}: call.hangup without a cause: {data}"
    assert data["cause"] == cause, f"{bar.name}: call.hangup cause {data['cause']}, expected {cause}"
    assert isinstance(data["disconnected"], (int, float)), f"{bar.name}: call.hangup without disconnected: {data}"
    return data


async def asterisk_agrees(ucs: LabUCS, lab: Lab, queues: Iterable[str] = ("support", "sales")) -> None:
    """Asterisk shows the queue members UCS thinks it has, paused as UCS thinks, and no channel."""
    pbx = ucs.server.get_pbx()
    for queue in queues:
        shown = await lab.queue_members(queue)
        model = pbx.queues.get(queue)
        mine = {i: (m.paused, m.paused_reason if m.paused else "") for i, m in model.members.items()} if model else {}
        assert {i: (m.paused, m.reason) for i, m in shown.items()} == mine, f"queue show {queue}: {shown}, UCS: {mine}"
    channels: list[str] = []

    async def none_left() -> bool:
        channels[:] = await lab.channels()
        return not channels

    await poll(none_left, "core show channels: none left", lambda: str(channels))
    assert not pbx.channels, f"UCS still has channels Asterisk ended: {list(pbx.channels)}"


async def poll(check: Any, what: str, details: Any = lambda: "", timeout: float = 10) -> None:
    from twisted.internet import reactor, task

    deadline = reactor.seconds() + timeout
    while not await check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what} ({details()})")
        await task.deferLater(reactor, 0.1, lambda: None)


async def stored(ucs: LabUCS, data: dict[str, Any], **want: Any) -> dict[str, Any]:
    cdr = await ucs.cdr(data["uniqueid"])
    assert {k: cdr[k] for k in want} == want, f"CDR {cdr}"
    return cdr


def statuses(bar: Bar) -> list[str]:
    """The agent's statuses as the bar heard them, repeats folded."""
    out: list[str] = []
    for status, _ in bar.statuses():
        if not out or out[-1] != status:
            out.append(status)
    return out


# -- the flows -------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_queue_answered_agent_hangs_up(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """A support call answered by phone a; the agent hangs up from the bar (cause 4 for
    everybody), the agent goes through ACW back to READY."""
    a = phones_of(lab, driver)["a"]
    bar = await ucs.agent(a)
    phones.phone(a)
    customer = phones.customer("5000", talk_ms=60000)
    await bar.event("call.connect")
    await bar.call("call.hangup")
    end = await hung_up(bar, CALLED_HUNG_UP)
    assert call_names(bar) == ["call.ringing", "call.connect", "call.hangup"]
    assert end["direction"] == "INCOMING" and end["caller_number"] == CUSTOMER and end["queue"] == "support"
    await customer.done()
    await stored(ucs, end, direction="INCOMING", caller_number=CUSTOMER, queue="support",
                 answered_by=a.device, cause=CALLED_HUNG_UP)
    await bar.event("agent.status", where=lambda d: d["status"] == "READY", nth=2, timeout=10)
    assert statuses(bar) == ["READY", "ACW", "READY"]
    await asterisk_agrees(ucs, lab)
