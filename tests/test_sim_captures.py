"""The simulator holds to the real Asterisk 20 captures.

Each scenario of the captures' README is played on the simulator over a real
TCP AMI connection, sending the capture's own actions; the significant events
(:mod:`ucs.sim.compare`) and the responses per ActionID must equal the
capture's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from ucs.sim import compare
from ucs.sim.lab import lab
from ucs.sim.scenarios import SCENARIOS, Player, play

#: List responses whose items come in hash-table order in Asterisk.
UNORDERED = {"CoreShowChannel", "Status", "DeviceStateChange", "PeerEntry"}


def _items(resp: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    head = resp[:2]
    items = list(resp[2:])
    if items and items[0].split(" ", 1)[0] in UNORDERED:
        items.sort()
    return head, tuple(items)


def assert_same(got: list[dict[str, str]], capture: Path, *, skip_responses: tuple[str, ...] = ()) -> None:
    expected = compare.load_capture(capture)
    problems = compare.diff(got, expected)
    assert not problems, f"{capture.name}: significant events differ:\n" + "\n".join(problems)
    want = compare.responses(expected)
    have = compare.responses(got)
    for aid, resp in want.items():
        if aid in skip_responses:
            continue
        assert aid in have, f"{capture.name}: no response to {aid}"
        assert _items(have[aid]) == _items(resp), f"{capture.name}: response to {aid}"


def test_comparison_of_two_real_runs_of_one_call(captures_dir: Path) -> None:
    """The comparison tolerates what differs between two real runs of one call."""
    a = compare.load_capture(captures_dir / "queue_answered_caller_hangup.ami")
    b = compare.load_capture(captures_dir / "filtered_events.ami")
    assert compare.diff(a, b) == []
    # ... and sees a call that went differently.
    c = compare.load_capture(captures_dir / "hold_mute.ami")
    assert compare.diff(a, c) != []


@pytest.mark.parametrize(
    "name",
    [
        "queue_answered_caller_hangup",
        "queue_paused_aux_then_ready",
        "click_to_dial",
        "caller_abandons",
        "hold_mute",
        "atxfer_complete",
        "blind_transfer_action",
        "hold_redirect_bridge",
        "phone_registers_and_pauses",
        "filtered_events",
    ],
)
@pytest_twisted.ensureDeferred
async def test_scenario_matches_capture(name: str, captures_dir: Path) -> None:
    result = await play(name, captures_dir)
    assert_same(result.messages, captures_dir / f"{name}.ami")


@pytest_twisted.ensureDeferred
async def test_filtered_events_lets_through_only_system_call_agent(captures_dir: Path) -> None:
    result = await play("filtered_events", captures_dir)
    names = {m["Event"] for m in result.messages if "Event" in m}
    assert not names & {"VarSet", "Newexten", "SuccessfulAuth"}
    full = await play("queue_answered_caller_hangup", captures_dir)
    full_names = {m["Event"] for m in full.messages if "Event" in m}
    assert {"VarSet", "Newexten", "SuccessfulAuth"} <= full_names
    # Same call, fewer events: the noise is what filtering saves.
    assert len([m for m in result.messages if "Event" in m]) < len([m for m in full.messages if "Event" in m])


@pytest_twisted.ensureDeferred
async def test_resync_snapshot_responses(captures_dir: Path) -> None:
    result = await play("resync_snapshot", captures_dir)
    capture = captures_dir / "resync_snapshot.ami"
    # The device state cache holds what the PBX saw since it booted: the
    # simulator's cache is a superset of the capture's for this scenario.
    assert_same(result.messages, capture, skip_responses=("lab-13",))
    have = compare.responses(result.messages)["lab-13"]
    want = compare.responses(compare.load_capture(capture))["lab-13"]
    assert have[:2] == want[:2]
    assert set(want[2:-1]) <= set(have[2:-1])


@pytest_twisted.ensureDeferred
async def test_asterisk_restart(captures_dir: Path) -> None:
    sim = lab(Clock())
    result = await play("asterisk_restart", captures_dir, sim=sim)
    assert_same(result.messages, captures_dir / "asterisk_restart.ami")

    async def after(p: Player) -> None:
        await p.run(1, 2, 3)
        await p.logoff(4)

    result = await play(
        "asterisk_restart.after", captures_dir, sim=sim, actions_file="asterisk_restart.after.actions", player=after
    )
    assert_same(result.messages, captures_dir / "asterisk_restart.after.ami")


def test_every_scenario_has_a_capture(captures_dir: Path) -> None:
    for name in SCENARIOS:
        assert (captures_dir / f"{name}.ami").is_file(), name


def _shapes(messages: list[dict[str, str]]) -> dict[str, set[tuple[str, ...]]]:
    out: dict[str, set[tuple[str, ...]]] = {}
    for m in messages:
        kind = m.get("Event") or "Response: " + m.get("Response", "")
        out.setdefault(kind, set()).add(tuple(m))
    return out


@pytest_twisted.ensureDeferred
async def test_headers_in_the_order_asterisk_sends_them(captures_dir: Path) -> None:
    """Every message the simulator sends in the scenarios has a header list
    (names, order) that Asterisk sent for that event or response."""
    real: dict[str, set[tuple[str, ...]]] = {}
    for path in captures_dir.glob("*.ami"):
        if path.name != "load_mixed.ami":
            for kind, shapes in _shapes(compare.load_capture(path)).items():
                real.setdefault(kind, set()).update(shapes)
    seen: dict[str, set[tuple[str, ...]]] = {}
    for name in SCENARIOS:
        result = await play(name, captures_dir)
        for kind, shapes in _shapes(result.messages).items():
            seen.setdefault(kind, set()).update(shapes)
    for kind, shapes in seen.items():
        assert kind in real, f"the simulator sent {kind}, which no capture has"
        assert shapes <= real[kind], f"{kind}: header lists {shapes - real[kind]} are not in any capture"
    # The simulator covers what the captures show, but media/DTMF reports.
    assert set(real) - set(seen) <= {"DTMFBegin", "DTMFEnd", "RTCPSent", "RTCPReceived"}


def _shapes_of_calls(messages: list[dict[str, str]]) -> set[tuple[str, tuple[str, ...]]]:
    out = set()
    for stream, recs in compare.streams(compare.significant(messages)).items():
        if stream.startswith("chan:"):
            kind = stream.split("#")[0]
            out.add((kind, tuple(r[0] + ("/" + r[2] if r[0] == "Hangup" else "") for r in recs)))
    return out


def test_load_traffic_calls_have_the_shapes_of_load_mixed(captures_dir: Path) -> None:
    """The load capture's two kinds of short calls, made by the simulator:
    callers of 6000 hanging up during Wait(2), and queue callers giving up
    while an agent's phone rings."""
    clock = Clock()
    sim = lab(clock)
    got: list[dict[str, str]] = []
    sim.subscribe(lambda ev: got.append(ev.message()))
    for iface in ("SIP/1001", "SIP/1002", "SIP/1003"):
        sim.queue_add("support", iface, f"Agent {iface[4:]}")
    for _ in range(5):
        sim.caller_calls("6000", abandon_after=1)
        clock.advance(0.25)
    for _ in range(20):
        clock.advance(0.5)
    for _ in range(3):
        sim.caller_calls("5000", abandon_after=4)
        for _ in range(20):
            clock.advance(0.5)
    assert sim.channels == {}
    real = _shapes_of_calls(compare.load_capture(captures_dir / "load_mixed.ami"))
    mine = _shapes_of_calls(got)
    # a 6000 call, an abandoned queue call, and an agent channel cancelled on each phone in turn
    assert {kind for kind, _ in mine} == {"chan:SIP/carrier", "chan:SIP/1001", "chan:SIP/1002", "chan:SIP/1003"}
    assert len([1 for kind, _ in mine if kind == "chan:SIP/carrier"]) == 2
    assert mine <= real, mine - real
