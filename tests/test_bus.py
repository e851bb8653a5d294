"""The bus tells subscribers what happened to calls, in the words of ucs.events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ucs import events as ev
from ucs.ami.message import AMIParser
from ucs.bus import EventBus
from ucs.calls.publisher import DomainPublisher
from ucs.calls.tracker import CallTracker
from ucs.pbx.pbx import PBX
from ucs.pbx.wireclock import WireClock


def run(capture: Path, bus: EventBus, after: Any = None) -> PBX:
    clock = WireClock()
    publisher = DomainPublisher(bus)
    pbx = PBX(clock, [publisher])
    pbx.observers.append(CallTracker(pbx, clock, observers=[publisher]))
    for msg in AMIParser().feed(capture.read_bytes()):
        clock.observe(msg)
        pbx.feed(msg)
        if after:
            after(msg, pbx)
    return pbx


def test_call_life_on_the_bus(captures_dir: Path) -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe_all(lambda name, subject, args: seen.append(name) if name.startswith("call.") and name != ev.EVENT_CALL_CHANGE else None)
    run(captures_dir / "hold_redirect_bridge.ami", bus)
    assert seen == [
        ev.EVENT_CALL_NEW, ev.EVENT_CALL_RINGING, ev.EVENT_CALL_CONNECT,
        ev.EVENT_CALL_HOLD, ev.EVENT_CALL_RESUME, ev.EVENT_CALL_HANGUP,
    ]


def test_mute_and_transfer_events(captures_dir: Path) -> None:
    bus = EventBus()
    got: list[tuple[str, dict[str, Any]]] = []
    for name in (ev.EVENT_CALL_MUTE, ev.EVENT_CALL_UNMUTE, ev.EVENT_CALL_TRANSFER):
        bus.subscribe(name, lambda call, args, name=name: got.append((name, args)))

    done: list[bool] = []

    def mute_when_answered(msg: dict[str, str], pbx: PBX) -> None:
        if msg.get("Event") == "BridgeEnter" and msg["Channel"].startswith("SIP/carrier") and not done:
            done.append(True)
            agent = next(ch.name for ch in pbx.channels.values() if ch.device == "SIP/1001")
            pbx.set_muted(agent, "in", True)
            pbx.set_muted(agent, "in", False)

    run(captures_dir / "blind_transfer_action.ami", bus, mute_when_answered)
    assert got == [
        (ev.EVENT_CALL_MUTE, {"party": "connected"}),
        (ev.EVENT_CALL_UNMUTE, {"party": "connected"}),
        (ev.EVENT_CALL_TRANSFER, {"kind": "blind", "to": "1002"}),
    ]


def test_a_failing_subscriber_does_not_stop_the_others(captures_dir: Path) -> None:
    bus = EventBus()
    ended: list[str] = []

    def broken(call: Any, args: Any) -> None:
        raise RuntimeError("plugin bug")

    bus.subscribe(ev.EVENT_CALL_HANGUP, broken)
    bus.subscribe(ev.EVENT_CALL_HANGUP, lambda call, args: ended.append(call.uniqueid))
    pbx = run(captures_dir / "queue_answered_caller_hangup.ami", bus)
    assert ended == ["1795391256.1"] and not pbx.channels
