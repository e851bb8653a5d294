"""The simulator holds to the capture matrix (Asterisk 20.21, chan_sip and PJSIP).

Each flow of the matrix (``sip_*``, ``pj_*`` in ``tests/data/ami-captures``)
is played on :func:`ucs.sim.lab.matrix_lab` with the capture's own actions
(:mod:`ucs.sim.matrix`); the significant AMI events, the responses per
ActionID and what UCS's call tracker concludes from the raw bytes must be
those of the real capture.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ucs.replay import replay
from ucs.sim import compare
from ucs.sim.scenarios import SCENARIOS, play

CAPTURES = Path(__file__).resolve().parent / "data" / "ami-captures"
MATRIX = sorted(p.stem for p in CAPTURES.glob("*.ami") if p.stem.startswith(("sip_", "pj_")))
#: List responses whose items come in hash-table order in Asterisk.
UNORDERED = {"CoreShowChannel", "Status", "DeviceStateChange", "PeerEntry"}
#: The device state cache lists what the PBX saw since it booted, which is
#: not part of a scenario: compared separately (test_device_state_list).
HISTORY = {("pj_registers_and_resync", "lab-7")}


def _items(resp: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    items = list(resp[2:])
    if items and items[0].split(" ", 1)[0] in UNORDERED:
        items.sort()
    return resp[:2], items


def tracker(raw: bytes) -> list[dict[str, Any]]:
    """What the call tracker concludes, without identifiers and timestamps."""
    out = []
    for call in replay(io.BytesIO(raw)):
        out.append(
            {
                "direction": call["direction"],
                "caller_number": call["caller_number"],
                "called_number": call["called_number"],
                "queue": call["queue"],
                "answered_by": call["answered_by"],
                "cause": call["cause"],
                "journey": [s["Device"] for s in call["journey"]],
            }
        )
    return out


def test_every_matrix_capture_has_a_scenario() -> None:
    assert len(MATRIX) == 38
    assert [n for n in MATRIX if n not in SCENARIOS] == []


@pytest.mark.parametrize("name", MATRIX)
@pytest_twisted.ensureDeferred
async def test_flow_matches_capture(name: str) -> None:
    result = await play(name, CAPTURES)
    capture = compare.load_capture(CAPTURES / f"{name}.ami")
    problems = compare.diff(result.messages, capture)
    assert not problems, f"{name}: significant events differ:\n" + "\n".join(problems)
    have = compare.responses(result.messages)
    for aid, want in compare.responses(capture).items():
        if (name, aid) in HISTORY:
            continue
        assert aid in have, f"{name}: no response to {aid}"
        assert _items(have[aid]) == _items(want), f"{name}: response to {aid}"
    assert tracker(result.raw) == tracker((CAPTURES / f"{name}.ami").read_bytes())


@pytest_twisted.ensureDeferred
async def test_device_state_list() -> None:
    """DeviceStateList after a PJSIP phone registered: every device both
    Asterisk and the simulator list is in the same state, and the simulator
    lists every phone and the trunk."""
    name = "pj_registers_and_resync"
    result = await play(name, CAPTURES)

    def listed(messages: list[dict[str, str]]) -> dict[str, str]:
        return {m["Device"]: m["State"] for m in messages if m.get("ActionID") == "lab-7" and "Device" in m}

    have = listed(result.messages)
    want = listed(compare.load_capture(CAPTURES / f"{name}.ami"))
    assert {d: have[d] for d in want if d in have} == {d: s for d, s in want.items() if d in have}
    phones = {d for d in want if d.startswith(("SIP/", "PJSIP/"))}
    assert phones <= set(have)
    assert have["PJSIP/2004"] == "NOT_INUSE" and have["PJSIP/webrtc1"] == "UNAVAILABLE"


@pytest_twisted.ensureDeferred
async def test_pjsip_notify_talk_answers_a_ringing_phone() -> None:
    """``PJSIPNotify`` with ``Option: talk`` makes a phone that obeys it pick up."""
    from twisted.internet.task import Clock

    from ucs.sim.lab import matrix_lab
    from ucs.sim.testing import SimHarness

    sim = matrix_lab(Clock())
    sim.phone("PJSIP/2001").set_behaviour(answer_after=None, remote_answer=True)
    sim.queue_add("support", "PJSIP/2001", "Agent 2001")
    harness = await SimHarness.start(sim)
    try:
        client = await harness.client()
        await client.login()
        sim.caller_calls("5000")
        harness.advance(1)
        assert sim.phone("PJSIP/2001").ringing is not None
        resp = await client.action("PJSIPNotify", Endpoint="2001", Option="talk")
        assert resp["Message"] == "NOTIFY sent"
        harness.advance(1)
        await client.barrier()
        assert [m["DestChannel"].startswith("PJSIP/2001-") for m in client.events("AgentConnect")] == [True]
        bad = await client.action("PJSIPNotify", Endpoint="2999", Option="talk")
        assert (bad["Response"], bad["Message"]) == ("Error", "Unable to retrieve endpoint 2999")
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_pjsip_notify_with_variables_as_ucs_sends_it() -> None:
    """``PJSIPNotify`` with ``Variable: Event=talk`` (UCS's form: each variable a header
    of the NOTIFY) answers too; Option and Variable together are refused as Asterisk
    refuses them; an Originate's ``Variable`` keeps a comma inside parentheses."""
    from twisted.internet.task import Clock

    from ucs.sim.lab import matrix_lab
    from ucs.sim.respond import app_args
    from ucs.sim.testing import SimHarness

    assert app_args("PJSIP_HEADER(add,Call-Info)=<sip:ucs.invalid>;answer-after=0,B=\"x,y\"") == [
        "PJSIP_HEADER(add,Call-Info)=<sip:ucs.invalid>;answer-after=0", "B=x,y"]
    sim = matrix_lab(Clock())
    sim.phone("PJSIP/2001").set_behaviour(answer_after=None, remote_answer=True)
    sim.queue_add("support", "PJSIP/2001", "Agent 2001")
    harness = await SimHarness.start(sim)
    try:
        client = await harness.client()
        await client.login()
        both = await client.action("PJSIPNotify", Endpoint="2001", Option="talk", Variable="Event=talk")
        assert both["Response"] == "Error" and "either an Option or Variable" in both["Message"]
        sim.caller_calls("5000")
        harness.advance(1)
        assert sim.phone("PJSIP/2001").ringing is not None
        resp = await client.action("PJSIPNotify", Endpoint="PJSIP/2001", Variable="Event=talk")
        assert resp["Message"] == "NOTIFY sent"
        harness.advance(1)
        await client.barrier()
        assert [m["DestChannel"].startswith("PJSIP/2001-") for m in client.events("AgentConnect")] == [True]
    finally:
        await harness.stop()
