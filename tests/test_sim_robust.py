"""Nothing a client or the control API does can break the simulated PBX.

Random sequences of actions (with channel names of live channels, wrong
names, odd values), phone and caller behaviour and time; after each step the
PBX must still be consistent and no action may fail inside the simulator.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from ucs.ami.message import AMIParser, format_message
from ucs.sim.lab import lab
from ucs.sim.pbx import Sim, SimError
from ucs.sim.server import AMIServer, AMISession

LINES = ["SIP/1001", "SIP/1002", "SIP/1003", "SIP/1004"]
WORDS = st.sampled_from(["support", "sales", "nosuch", "", "SIP/1001", "SIP/1002", "SIP/9999", "1003", "internal", "x\u00e9"])


def _channel(sim: Sim, pick: int) -> str:
    chans = list(sim.channels)
    if not chans or pick % 5 == 4:
        return ["SIP/1001-000000ff", "/^SIP/.*$/", "/[/", ""][pick % 4]
    return chans[pick % len(chans)]


ACTIONS = st.sampled_from(
    [
        "QueueAdd",
        "QueueRemove",
        "QueuePause",
        "QueuePenalty",
        "Hangup",
        "Redirect",
        "Bridge",
        "BlindTransfer",
        "Atxfer",
        "Setvar",
        "MuteAudio",
        "Originate",
        "Status",
        "QueueStatus",
        "QueueSummary",
        "CoreShowChannels",
        "DeviceStateList",
        "BridgeList",
        "SIPpeers",
        "SIPshowpeer",
        "Command",
        "Getvar",
        "Nonsense",
    ]
)

STEP = st.one_of(
    st.tuples(st.just("action"), ACTIONS, st.integers(0, 50), st.integers(0, 50), WORDS, st.booleans()),
    st.tuples(st.just("call"), st.sampled_from(["5000", "5001", "6000", "1002", "0420777987654", "9"]), st.integers(0, 50)),
    st.tuples(st.just("phone"), st.sampled_from(LINES), st.sampled_from(["answer", "hangup", "reject", "dial", "busy", "auto"])),
    st.tuples(st.just("time"), st.sampled_from([0.0, 0.5, 1.0, 3.0, 9.0, 30.0])),
    st.tuples(st.just("register"), st.booleans()),
    st.tuples(st.just("restart"),),
)


def _headers(sim: Sim, action: str, a: int, b: int, word: str, flag: bool) -> list[tuple[str, object]]:
    ch, ch2 = _channel(sim, a), _channel(sim, b)
    line = LINES[a % len(LINES)]
    return {
        "QueueAdd": [("Queue", word or "support"), ("Interface", line), ("Paused", flag), ("Reason", word)],
        "QueueRemove": [("Queue", word or "support"), ("Interface", line)],
        "QueuePause": [("Interface", line), ("Paused", flag)] + ([("Queue", word)] if word else []),
        "QueuePenalty": [("Interface", line), ("Penalty", b - 5 if flag else word)] + ([("Queue", word)] if word else []),
        "Hangup": [("Channel", ch), ("Cause", 16 if flag else "")],
        "Redirect": [("Channel", ch), ("Context", "ucs-hold"), ("Exten", "s"), ("Priority", 1)]
        + ([("ExtraChannel", ch2), ("ExtraContext", "ucs-wait"), ("ExtraExten", "s"), ("ExtraPriority", 1)] if flag else []),
        "Bridge": [("Channel1", ch), ("Channel2", ch2)],
        "BlindTransfer": [("Channel", ch), ("Exten", "1003" if flag else word), ("Context", "internal")],
        "Atxfer": [("Channel", ch), ("Exten", "1003" if flag else word), ("Context", "internal")],
        "Setvar": [("Channel", ch), ("Variable", word or "X"), ("Value", "1")],
        "MuteAudio": [("Channel", ch), ("Direction", "in" if flag else word), ("State", "on")],
        "Originate": [("Channel", line if flag else f"Local/{word}@internal"), ("Context", "internal"), ("Exten", "1003"), ("Priority", 1), ("Async", "true"), ("Timeout", 5000)],
        "Status": [("Channel", ch)] if flag else [],
        "SIPshowpeer": [("Peer", word)],
        "Command": [("Command", "core show channels" if flag else word)],
        "Getvar": [("Channel", ch), ("Variable", "EXTEN")],
    }.get(action, [])


def _check(sim: Sim) -> None:
    for name, c in sim.channels.items():
        assert not c.gone and c.name == name
        if c.bridge is not None:
            assert c.bridge.id in sim.bridges and c in c.bridge.channels
    for b in sim.bridges.values():
        for c in b.channels:
            assert not c.gone and c.bridge is b, (b.id, c.name)
    for line in sim.lines.values():
        for c in line.channels:
            assert not c.gone, c.name
    for q in sim.queues.values():
        for e in q.entries:
            assert not e.chan.gone
        for m in q.avail:
            assert m.available and m.iface in q.members
        for m in q.members.values():
            assert m.penalty >= 0, (q.name, m.iface, m.penalty)  # app_queue refuses a negative QueuePenalty


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=40))
def test_random_use_keeps_the_pbx_consistent(steps: list[tuple[Any, ...]]) -> None:
    clock = Clock()
    sim = lab(clock)
    # Phones that answer, agents in the queues: calls get connected and
    # transfers, redirects and hangups meet live bridges.
    sim.phone("SIP/1001").set_behaviour(answer_after=1)
    sim.phone("SIP/1002").set_behaviour(answer_after=2, hangup_after=20)
    sim.phone("SIP/1003").set_behaviour(answer_after=1)
    sim.trunk().set_behaviour(answer_after=1)
    sim.queue_add("support", "SIP/1001", "Alice Agent")
    sim.queue_add("sales", "SIP/1002", "Bob Agent")
    server = AMIServer(sim)
    session = AMISession(server)
    transport = StringTransport()
    session.makeConnection(transport)
    session.dataReceived(format_message([("Action", "Login"), ("Username", "ucs"), ("Secret", "ucslab")]))
    for step in steps:
        kind = step[0]
        try:
            if kind == "action":
                _, action, a, b, word, flag = step
                if session.closing or transport.disconnecting:
                    continue
                session.dataReceived(format_message([("Action", action), *_headers(sim, action, a, b, word, flag)]))
            elif kind == "call":
                if sim.running:
                    sim.caller_calls(step[1], abandon_after=step[2] or None, hangup_after=step[2] % 7 or None)
            elif kind == "phone":
                phone = sim.phone(step[1])
                what = step[2]
                if what == "answer":
                    phone.answer()
                elif what == "hangup":
                    phone.hangup()
                elif what == "reject":
                    phone.reject()
                elif what == "dial":
                    phone.dial("1002")
                elif what == "busy":
                    phone.set_behaviour(busy=True)
                else:
                    phone.set_behaviour(answer_after=1, hangup_after=4)
            elif kind == "time":
                clock.advance(step[1])
            elif kind == "register":
                if step[1]:
                    sim.register("SIP/1004", "127.0.0.14", 5064)
                else:
                    sim.unregister("SIP/1004")
            elif kind == "restart" and sim.running:
                sim.restart()
        except SimError:
            pass
        _check(sim)
    clock.advance(3600)
    clock.advance(3600)
    _check(sim)
    errors: list[str] = []
    out = AMIParser(on_error=lambda reason, raw: errors.append(reason)).feed(transport.value())
    assert errors == [], "everything the simulator writes is well-formed AMI"
    assert out[0]["Message"] == "Authentication accepted"
    assert not [m for m in out if m.get("Message") == "Internal error in the simulator"]
