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

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from labkit import CUSTOMER, Bar, BarError, Lab, LabUCS, Phone, Phones, phones_of

SIP = pytest.param("sip", marks=pytest.mark.chan_sip, id="sip")
#: The PJSIP half of a flow with a customer: the carrier is a chan_sip peer.
PJ_CARRIER = pytest.param("pj", marks=pytest.mark.chan_sip, id="pj")
PJ = pytest.param("pj", id="pj")
BOTH = [SIP, PJ_CARRIER]

# Seed 002's causes (ucs.calls.call.Cause).
BUSY, CALLER_HUNG_UP, CALLED_HUNG_UP, REJECTED, UNAVAILABLE, TRANSFER = 1, 3, 4, 5, 6, 8


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
    """Asterisk shows the queue members UCS thinks it has, paused as UCS thinks, and no
    channel; and no bar got a ``call.hangup`` without its cause and time."""
    for bar in ucs.bars:
        for name, data in bar.call_events():
            if name == "call.hangup":
                assert data["cause"] != -1 and isinstance(data["disconnected"], (int, float)), f"{bar.name}: {data}"
    assert not ucs.warnings, f"UCS logged warnings: {ucs.warnings}"
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


#: What physically happened in each flow of the matrix (``expected.json`` of the captures).
MATRIX = json.loads((Path(__file__).resolve().parents[1] / "data" / "ami-captures" / "expected.json").read_text())


async def stored(ucs: LabUCS, data: dict[str, Any], flow: str, **want: Any) -> dict[str, Any]:
    """The CDR UCS stored for the call the bar showed: it says what the matrix says
    physically happened in ``flow`` (direction, numbers, queue, who answered, the cause,
    the devices of its journey), and ``want``."""
    cdr = await ucs.cdr(data["uniqueid"])
    matrix = MATRIX[flow]
    conclusions = {k: v for k, v in matrix.items() if k not in ("calls", "journey_has")}
    assert {k: cdr[k] for k in conclusions} == conclusions, f"{flow}: CDR {cdr}"
    journey = [step["Device"] for step in cdr["journey"]]
    assert [d for d in journey if d in matrix["journey_has"]] == matrix["journey_has"], f"{flow}: journey {journey}"
    assert {k: cdr[k] for k in want} == want, f"CDR {cdr}"
    return cdr


async def back_ready(bar: Bar) -> None:
    """After a queue call the agent does after-call work, then is READY again."""
    await bar.event("agent.status", where=lambda d: d["status"] == "READY", nth=2, timeout=10)
    assert statuses(bar) == ["READY", "ACW", "READY"]


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
    await stored(ucs, end, f"{driver}_queue_answered_agent_hangs_up")
    await bar.event("agent.status", where=lambda d: d["status"] == "READY", nth=2, timeout=10)
    assert statuses(bar) == ["READY", "ACW", "READY"]
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_queue_paused_aux_then_ready(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone b's agent is in AUX (Lunch): the customer waits, Asterisk shows b paused with
    that reason; READY from the bar and the call rings b at once; the customer hangs up."""
    b = phones_of(lab, driver)["b"]
    bar = await ucs.agent(b, "AUX", "Lunch")
    assert (await lab.queue_members("support"))[b.device].reason == "Lunch"
    phones.phone(b)
    phones.customer("5000", talk_ms=8000)
    support = ucs.server.get_pbx().queues["support"]
    await ucs.until(lambda: support.callers, "the customer waits in support")
    assert not bar.call_events(), "a paused agent's phone must not ring"
    await bar.call("agent.changeStatus", "READY", "")
    await bar.event("call.connect")
    end = await hung_up(bar, CALLER_HUNG_UP)
    assert call_names(bar) == ["call.ringing", "call.connect", "call.hangup"]
    await stored(ucs, end, f"{driver}_queue_paused_aux_then_ready")
    await bar.event("agent.status", where=lambda d: d["status"] == "READY", nth=3, timeout=10)
    assert statuses(bar) == ["READY", "AUX", "READY", "ACW", "READY"]
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_ringall_decline_then_answer(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Sales rings a and b at once: a declines (603), b answers; the customer hangs up.
    a's bar sees its phone ring and its own end (declined); b's the whole call."""
    p = phones_of(lab, driver)
    bar_a, bar_b = await ucs.agent(p["a"]), await ucs.agent(p["b"])
    phones.phone(p["a"], "uas_decline")
    phones.phone(p["b"])
    phones.customer("5001", talk_ms=6000)
    await bar_b.event("call.connect")
    end_b = await hung_up(bar_b, CALLER_HUNG_UP)
    assert call_names(bar_b) == ["call.ringing", "call.connect", "call.hangup"]
    await hung_up(bar_a, REJECTED)  # declined: not "answered elsewhere" (7), b had not answered yet
    assert call_names(bar_a) == ["call.ringing", "call.hangup"]
    await stored(ucs, end_b, f"{driver}_ringall_decline_then_answer")
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_caller_abandons_while_ringing(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a rings and never answers; the customer gives up while it rings (cause 3)."""
    a = phones_of(lab, driver)["a"]
    bar = await ucs.agent(a)
    phones.phone(a, "uas_noanswer")
    phones.customer("5000", talk_ms=4000)
    await bar.event("call.ringing")
    end = await hung_up(bar, CALLER_HUNG_UP)
    assert call_names(bar) == ["call.ringing", "call.hangup"]
    await stored(ucs, end, f"{driver}_caller_abandons_while_ringing")
    assert statuses(bar) == ["READY"], "no after-call work for a call the agent never had"
    await asterisk_agrees(ucs, lab)


OUTSIDE = "0420777987654"
#: A line's registration states in which it cannot ring (``ucs.calls.control``).
UNREACHABLE = ("Unregistered", "Unreachable", "Rejected")


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_click_to_dial_answered(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """call.dial rings phone a, which answers; the number goes out through the carrier,
    which answers; the agent hangs up from the bar: the agent was the caller (cause 3)."""
    a = phones_of(lab, driver)["a"]
    bar = await ucs.agent(a)
    phones.phone(a)
    phones.carrier("uas_answer")
    await bar.call("call.dial", OUTSIDE)
    await bar.event("call.connect", where=lambda d: d["connected"] is not None and d["answered_by"] == "SIP/carrier")
    await bar.call("call.hangup")
    end = await hung_up(bar, CALLER_HUNG_UP)
    assert call_names(bar) == ["call.new", "call.ringing", "call.connect", "call.hangup"]
    assert end["direction"] == "OUTGOING" and end["called_number"] == OUTSIDE
    await stored(ucs, end, f"{driver}_click_to_dial_answered")
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [PJ_CARRIER])
@pytest_twisted.ensureDeferred
async def test_click_to_dial_cancelled(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """The agent answers the click-to-dial call, the carrier never rings; the agent hangs
    up from the bar while the number is still being called (cause 3, never answered)."""
    a = phones_of(lab, driver)["a"]
    bar = await ucs.agent(a)
    phones.phone(a)
    carrier = phones.carrier("uas_silent")
    await bar.call("call.dial", OUTSIDE)
    await ucs.until(lambda: any(c.device == "SIP/carrier" for c in ucs.server.get_pbx().channels.values()),
                    "the number is being called through the carrier")
    await bar.call("call.hangup")
    end = await hung_up(bar, CALLER_HUNG_UP)
    assert call_names(bar) == ["call.new", "call.ringing", "call.hangup"], "the outside number never answered"
    assert end["connected"] is None
    await carrier.done()
    await stored(ucs, end, f"{driver}_click_to_dial_cancelled")
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_click_to_dial_agent_noanswer(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a rings for the click-to-dial call and nobody answers: call.dial fails saying
    so, the bar's call ends unanswered with a cause, and nothing was dialled out."""
    a = phones_of(lab, driver)["a"]
    bar = await ucs.agent(a)
    ucs.server.get_call_control().ring_timeout = 6.0
    phones.phone(a, "uas_noanswer")
    with pytest.raises(Exception) as refused:
        await bar.call("call.dial", OUTSIDE)
    assert "nobody answered" in str(refused.value) or "did not take" in str(refused.value)
    end = await hung_up(bar, UNAVAILABLE)
    assert call_names(bar) == ["call.new", "call.ringing", "call.hangup"] and end["connected"] is None
    await stored(ucs, end, f"{driver}_click_to_dial_agent_noanswer", direction="OUTGOING", cause=UNAVAILABLE)
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP, PJ])
@pytest_twisted.ensureDeferred
async def test_internal_busy(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a dials b, which answers 486 Busy: a's bar ends with BUSY."""
    p = phones_of(lab, driver)
    bar_a, bar_b = await ucs.agent(p["a"]), await ucs.agent(p["b"])
    phones.phone(p["b"], "uas_busy")
    caller = phones.dial(p["a"], p["b"].number)
    end = await hung_up(bar_a, BUSY)
    assert call_names(bar_a) == ["call.new", "call.ringing", "call.hangup"]
    assert end["direction"] == "INTERNAL" and end["called_number"] == p["b"].number
    await caller.done()
    await hung_up(bar_b, BUSY)
    assert call_names(bar_b) == ["call.ringing", "call.hangup"]
    await stored(ucs, end, f"{driver}_internal_busy")
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_internal_noanswer(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a dials c, which rings the 20 s of the Dial: a's bar ends unanswered
    (UNAVAILABLE), c's bar saw its phone ring and stop."""
    p = phones_of(lab, driver)
    bar_a, bar_c = await ucs.agent(p["a"]), await ucs.agent(p["c"])
    phones.phone(p["c"], "uas_noanswer")
    phones.dial(p["a"], p["c"].number)
    await bar_c.event("call.ringing")
    end = await hung_up(bar_a, UNAVAILABLE, timeout=40)
    assert call_names(bar_a) == ["call.new", "call.ringing", "call.hangup"]
    await hung_up(bar_c, UNAVAILABLE)
    assert call_names(bar_c) == ["call.ringing", "call.hangup"]
    await stored(ucs, end, f"{driver}_internal_noanswer")
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP, PJ])
@pytest_twisted.ensureDeferred
async def test_internal_answered_called_hangs_up(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a dials b, b answers; b's agent hangs up from the bar (cause 4 on both bars)."""
    p = phones_of(lab, driver)
    bar_a, bar_b = await ucs.agent(p["a"]), await ucs.agent(p["b"])
    phones.phone(p["b"])
    phones.dial(p["a"], p["b"].number)
    await bar_b.event("call.connect")
    await bar_a.event("call.connect")
    await bar_b.call("call.hangup")
    end_b = await hung_up(bar_b, CALLED_HUNG_UP)
    end_a = await hung_up(bar_a, CALLED_HUNG_UP)
    assert call_names(bar_b) == ["call.ringing", "call.connect", "call.hangup"]
    assert call_names(bar_a) == ["call.new", "call.ringing", "call.connect", "call.hangup"]
    assert end_a["uniqueid"] == end_b["uniqueid"]
    await stored(ucs, end_a, f"{driver}_internal_answered_called_hangs_up")
    assert statuses(bar_a) == ["READY"] and statuses(bar_b) == ["READY"], "no after-call work for internal calls"
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_invalid_extension(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a dials 7777, which does not exist: Asterisk refuses it before any channel
    exists, so there is no call on the bar and no CDR."""
    a = phones_of(lab, driver)["a"]
    bar = await ucs.agent(a)
    caller = phones.dial(a, "7777")
    await caller.done()
    await asterisk_agrees(ucs, lab)
    assert not bar.call_events()
    assert await ucs.server.get_store().list_cdrs() == []
    assert not ucs.server.get_call_tracker().active_calls()


async def answered_queue_call(ucs: LabUCS, phones: Phones, a: Phone, talk_ms: int) -> Bar:
    """A support call from the customer (who hangs up ``talk_ms`` after Asterisk answered
    it) answered by phone a, its agent's bar once connected."""
    bar = await ucs.agent(a)
    phones.phone(a)
    phones.customer("5000", talk_ms=talk_ms)
    await bar.event("call.connect")
    return bar


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_hold_redirect_bridge(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """The agent holds the call from the bar (the customer hears music) and resumes it;
    the customer hangs up."""
    a = phones_of(lab, driver)["a"]
    bar = await answered_queue_call(ucs, phones, a, talk_ms=12000)
    await bar.call("call.tribute")
    await bar.event("call.hold")
    assert "MusicOnHold" in await lab.acli("core show channels"), "the customer hears music on hold"
    await bar.call("call.unhold")
    await bar.event("call.resume")
    end = await hung_up(bar, CALLER_HUNG_UP)
    assert call_names(bar) == ["call.ringing", "call.connect", "call.hold", "call.resume", "call.hangup"]
    await stored(ucs, end, f"{driver}_hold_redirect_bridge")
    await back_ready(bar)
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_blind_transfer_action(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a's agent transfers the customer blind to b from the bar; b answers and the
    customer hangs up: a's part ends as transferred (8), b's as the caller hanging up (3)."""
    p = phones_of(lab, driver)
    bar_a = await answered_queue_call(ucs, phones, p["a"], talk_ms=10000)
    bar_b = await ucs.agent(p["b"])
    phones.phone(p["b"])
    await bar_a.call("call.blindTransfer", p["b"].number)
    end_a = await hung_up(bar_a, TRANSFER)
    assert call_names(bar_a) == ["call.ringing", "call.connect", "call.transfer", "call.hangup"]
    await bar_b.event("call.connect")
    end_b = await hung_up(bar_b, CALLER_HUNG_UP)
    assert call_names(bar_b) == ["call.ringing", "call.connect", "call.hangup"]
    assert end_a["uniqueid"] == end_b["uniqueid"]
    cdr = await stored(ucs, end_b, f"{driver}_blind_transfer_action")
    assert [s["Device"] for s in cdr["journey"]][-2:] == [p["a"].device, p["b"].device]
    await back_ready(bar_a)
    await back_ready(bar_b)
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_atxfer_complete(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a's agent consults c from the bar (the customer on hold), c answers, a
    completes the transfer: a's part ends as transferred, c talks to the customer, who
    hangs up."""
    p = phones_of(lab, driver)
    bar_a = await answered_queue_call(ucs, phones, p["a"], talk_ms=16000)
    bar_c = await ucs.agent(p["c"])
    phones.phone(p["c"])
    await bar_a.call("call.transfer", p["c"].number)
    await bar_c.event("call.connect")
    await bar_a.call("call.finishTransfer")
    end_a = await hung_up(bar_a, TRANSFER)
    end_c = await hung_up(bar_c, CALLER_HUNG_UP)
    # a: the customer on hold while a consults c, then handed over; c: the consultation, then the customer.
    assert call_names(bar_a) == ["call.ringing", "call.connect", "call.hold", "call.transfer", "call.hangup"]
    assert call_names(bar_c) == ["call.ringing", "call.connect", "call.transfer", "call.hangup"]
    assert end_a["uniqueid"] == end_c["uniqueid"]
    cdr = await stored(ucs, end_c, f"{driver}_atxfer_complete")
    assert [s["Device"] for s in cdr["journey"]][-2:] == [p["a"].device, p["c"].device]
    await back_ready(bar_a)
    await back_ready(bar_c)
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_atxfer_target_noanswer(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """The consulted phone c never answers: after atxfernoanswertimeout (15 s) the
    customer is back with a, who talks on until the customer hangs up."""
    p = phones_of(lab, driver)
    bar_a = await answered_queue_call(ucs, phones, p["a"], talk_ms=26000)
    bar_c = await ucs.agent(p["c"])
    phones.phone(p["c"], "uas_noanswer")
    await bar_a.call("call.transfer", p["c"].number)
    await bar_c.event("call.ringing")
    end_c = await bar_c.event("call.hangup", timeout=25)
    assert end_c["cause"] != -1 and isinstance(end_c["disconnected"], (int, float)), end_c
    assert call_names(bar_c) == ["call.ringing", "call.hangup"]
    end_a = await hung_up(bar_a, CALLER_HUNG_UP, timeout=30)
    assert call_names(bar_a) == ["call.ringing", "call.connect", "call.hold", "call.resume", "call.hangup"]
    await stored(ucs, end_a, f"{driver}_atxfer_target_noanswer")
    await asterisk_agrees(ucs, lab)
    assert end_c["cause"] == UNAVAILABLE, f"c rang unanswered; its bar says cause {end_c['cause']}"


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_atxfer_caller_hangs_up_consulting(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Phone a's agent consults c from the bar and c answers; the customer hangs up while
    they talk. Both bars end the customer's call (cause 3); a and c go on talking in a
    call of its own, a to c; finishing the transfer is refused; a hangs up. Two CDRs."""
    p = phones_of(lab, driver)
    bar_a = await answered_queue_call(ucs, phones, p["a"], talk_ms=7000)
    bar_c = await ucs.agent(p["c"])
    phones.phone(p["c"])
    await bar_a.call("call.transfer", p["c"].number)
    await bar_c.event("call.connect")
    end_a = await hung_up(bar_a, CALLER_HUNG_UP, timeout=15)
    talk = await bar_a.event("call.connect", nth=2)
    assert talk["number"] == p["c"].number and talk["direction"] == "INTERNAL", talk
    assert (await bar_c.event("call.connect", nth=2))["number"] == p["a"].number
    with pytest.raises(BarError, match="no transfer in progress"):
        await bar_a.call("call.finishTransfer")
    await bar_a.call("call.hangup")
    assert (await bar_c.event("call.hangup", nth=2))["uniqueid"] == talk["uniqueid"]
    assert call_names(bar_a) == ["call.ringing", "call.connect", "call.hold", "call.hangup",
                                 "call.new", "call.connect", "call.hangup"]
    assert call_names(bar_c) == ["call.ringing", "call.connect", "call.hangup", "call.connect", "call.hangup"]
    await stored(ucs, end_a, f"{driver}_atxfer_caller_hangs_up_consulting")
    consultation = await ucs.cdr(talk["uniqueid"])
    assert {k: consultation[k] for k in ("direction", "caller_number", "called_number", "answered_by", "cause")} == {
        "direction": "INTERNAL", "caller_number": p["a"].number, "called_number": p["c"].number,
        "answered_by": p["c"].device, "cause": CALLER_HUNG_UP}, consultation
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_atxfer_caller_hangs_up_ringing(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """As above, but c never answers: the customer hangs up while c rings; Asterisk ends
    the consultation, and a's part: every bar says the caller hung up."""
    p = phones_of(lab, driver)
    bar_a = await answered_queue_call(ucs, phones, p["a"], talk_ms=7000)
    bar_c = await ucs.agent(p["c"])
    phones.phone(p["c"], "uas_noanswer")
    await bar_a.call("call.transfer", p["c"].number)
    await bar_c.event("call.ringing")
    end_a = await hung_up(bar_a, CALLER_HUNG_UP, timeout=15)
    await hung_up(bar_c, CALLER_HUNG_UP)
    assert call_names(bar_a) == ["call.ringing", "call.connect", "call.hold", "call.hangup"]
    assert call_names(bar_c) == ["call.ringing", "call.hangup"]
    await stored(ucs, end_a, f"{driver}_atxfer_caller_hangs_up_ringing")
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_mute_during_call(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """The agent mutes and unmutes from the bar; the customer hangs up."""
    a = phones_of(lab, driver)["a"]
    bar = await answered_queue_call(ucs, phones, a, talk_ms=8000)
    await bar.call("call.mute")
    muted = await bar.event("call.mute")
    await bar.call("call.mute")
    await bar.event("call.unmute")
    assert muted["connected_muted"] or muted["caller_muted"]
    end = await hung_up(bar, CALLER_HUNG_UP)
    assert call_names(bar) == ["call.ringing", "call.connect", "call.mute", "call.unmute", "call.hangup"]
    await stored(ucs, end, f"{driver}_mute_during_call")
    await back_ready(bar)
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_module_reload_queue(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """``module reload app_queue.so`` with a READY and b paused (Training): Asterisk keeps
    the dynamic members and their pauses, and UCS still agrees with it; the agents'
    statuses do not change."""
    p = phones_of(lab, driver)
    bar_a, bar_b = await ucs.agent(p["a"]), await ucs.agent(p["b"], "AUX", "Training")
    await lab.acli("module reload app_queue.so")
    await ucs.until(lambda: ucs.server.get_pbx_link().up, "the AMI link up")
    assert (await lab.queue_members("sales"))[p["b"].device].reason == "Training"
    await asterisk_agrees(ucs, lab)
    assert statuses(bar_a) == ["READY"] and statuses(bar_b) == ["READY", "AUX"]


@pytest.mark.parametrize("driver", [PJ])
@pytest_twisted.ensureDeferred
async def test_pj_registers_and_resync(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """PJSIP/2004 registers from 127.0.0.34:5064 (UCS shows its address), the AMI link
    drops and comes back (UCS resyncs: members and pauses as Asterisk has them), then
    the phone unregisters."""
    p = phones_of(lab, driver)
    await ucs.agent(p["a"])
    await ucs.agent(p["b"], "AUX", "Training")
    pbx = ucs.server.get_pbx()
    phone = phones.start("uac_register", "127.0.0.34", lab.pjsip_port, "-key", "user", "2004",
                         "-au", "2004", "-ap", "lab2004", name="2004-registers", local_port=5064)
    # Asterisk 20 says ContactStatus NonQualified (qualify is off) and PeerStatus Reachable, not "Created".
    await ucs.until(lambda: pbx.devices.get("PJSIP/2004") is not None and pbx.devices["PJSIP/2004"].address,
                    "PJSIP/2004's address known")
    assert (pbx.devices["PJSIP/2004"].address, pbx.devices["PJSIP/2004"].port) == ("127.0.0.34", 5064)
    assert pbx.devices["PJSIP/2004"].registration == "Registered"
    resyncs = ucs.server.get_pbx_link().resyncs
    protocol = ucs.server.get_ami_client().protocol
    assert protocol is not None and protocol.transport is not None
    protocol.transport.loseConnection()
    await ucs.until(lambda: ucs.server.get_pbx_link().resyncs > resyncs, "UCS logged in again and resynced")
    assert [w for w in ucs.warnings if "AMI link lost" in w], "UCS logs that it lost the link"
    ucs.warnings.clear()
    await asterisk_agrees(ucs, lab)
    assert (pbx.devices["PJSIP/2004"].address, pbx.devices["PJSIP/2004"].registration not in UNREACHABLE) == (
        "127.0.0.34", True), "after the resync UCS still knows the registered phone"
    await phone.done()
    await ucs.until(lambda: pbx.devices["PJSIP/2004"].registration in UNREACHABLE, "PJSIP/2004 unregistered")
    assert pbx.devices["PJSIP/2004"].address is None
    await asterisk_agrees(ucs, lab)


PICKUP, INVALID_NUMBER = 7, 2


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_pickup(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """The customer calls a's extension; a rings and does not answer; c dials ``**`` + a's
    extension (PickupChan) and takes the call; the customer hangs up.  a's bar: answered
    elsewhere (7); c's bar: its dialling ends (7, folded into the customer's call), then
    the customer's call connected, ended by the customer (3); one CDR, answered by c."""
    p = phones_of(lab, driver)
    a, c = p["a"], p["c"]
    bar_a, bar_c = await ucs.agent(a), await ucs.agent(c)
    phones.phone(a, "uas_noanswer")
    phones.customer(a.number, talk_ms=4000)
    await bar_a.event("call.ringing")
    phones.dial(c, "**" + a.number, talk_ms=60000)
    await hung_up(bar_a, PICKUP)
    assert call_names(bar_a) == ["call.ringing", "call.hangup"]
    await bar_c.event("call.hangup", nth=2)
    names = call_names(bar_c)
    assert names == ["call.new", "call.ringing", "call.hangup", "call.connect", "call.hangup"], names
    events = [d for n, d in bar_c.call_events() if n == "call.hangup"]
    assert [d["cause"] for d in events] == [PICKUP, CALLER_HUNG_UP]
    end = events[-1]
    assert end["direction"] == "INCOMING" and end["answered_by"] == c.device
    await stored(ucs, end, f"{driver}_pickup")
    await asterisk_agrees(ucs, lab)


@pytest.mark.parametrize("driver", [SIP])
@pytest_twisted.ensureDeferred
async def test_click_to_dial_not_found(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """call.dial rings phone a, which answers; the carrier answers 404 Not Found: the
    number does not exist (cause 2)."""
    a = phones_of(lab, driver)["a"]
    bar = await ucs.agent(a)
    phones.phone(a)
    phones.carrier("uas_notfound")
    await bar.call("call.dial", OUTSIDE)
    end = await hung_up(bar, INVALID_NUMBER)
    assert call_names(bar) == ["call.new", "call.ringing", "call.hangup"] and end["connected"] is None
    await stored(ucs, end, f"{driver}_click_to_dial_not_found")
    await asterisk_agrees(ucs, lab)
