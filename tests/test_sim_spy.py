"""ChanSpy in the simulated PBX, on a Clock (no sockets): listen, whisper and barge by
the Originate UCS sends, the spy hanging up first, a spy without ``E``, a wrong prefix.
The order of the events is Asterisk 20's (tests/lab/test_supervisor_lab.py)."""

from __future__ import annotations

from test_sim_model import make, run

from ucs.sim.pbx import Sim


def talking(sim: Sim, clock: object) -> str:
    """A customer's queue call answered on SIP/1001; the agent's channel name."""
    sim.queue_add("support", "SIP/1001", "Alice Agent")
    sim.caller_calls("5000")
    run(clock, 1)  # type: ignore[arg-type]
    sim.phone("SIP/1001").answer()
    run(clock, 1)  # type: ignore[arg-type]
    return next(c.name for c in sim.channels.values() if c.name.startswith("SIP/1001-"))


def spy(sim: Sim, clock: object, data: str) -> str:
    sim.originate("SIP/1003", application="ChanSpy", data=data, action_id="spy-1")
    run(clock, 0.5)  # type: ignore[arg-type]
    sim.phone("SIP/1003").answer()
    run(clock, 0.5)  # type: ignore[arg-type]
    return next(c.name for c in sim.channels.values() if c.name.startswith("SIP/1003-"))


def test_the_call_ends_first_then_the_spy_with_E() -> None:
    sim, clock, rec = make()
    agent = talking(sim, clock)
    spyer = spy(sim, clock, f"{agent},qwE")
    [start] = rec.of("ChanSpyStart")
    assert (start["SpyerChannel"], start["SpyerChannelState"], start["SpyeeChannel"]) == (spyer, "6", agent)
    assert start["SpyeeUniqueid"] == sim.find_channel(agent).uniqueid  # type: ignore[union-attr]
    assert [j.mode for j in sim.spies_of(sim.find_channel(agent))] == ["whisper"]  # type: ignore[arg-type]
    assert sim.find_channel(spyer).bridge is None  # type: ignore[union-attr]  # audiohooks, no bridge
    sim.hangup_channel(next(c for c in sim.channels.values() if c.name.startswith("SIP/carrier")))
    run(clock, 1)
    order = [(m["Event"], m.get("Channel") or m.get("SpyerChannel")) for m in rec.messages
             if m["Event"] in ("ChanSpyStop", "Hangup", "SoftHangupRequest") and spyer in (m.get("Channel"), m.get("SpyerChannel"))
             or m["Event"] == "Hangup" and m.get("Channel") == agent]
    assert order == [("ChanSpyStop", spyer), ("Hangup", agent), ("Hangup", spyer)]
    assert next(m for m in rec.of("Hangup") if m["Channel"] == spyer)["Cause"] == "16"
    assert not any(c.name.startswith("SIP/1003-") for c in sim.channels.values())


def test_the_supervisor_hangs_up_first_and_the_call_goes_on() -> None:
    sim, clock, rec = make()
    agent = talking(sim, clock)
    spyer = spy(sim, clock, f"{agent},qBE")
    assert [j.mode for j in sim.spies_of(sim.find_channel(agent))] == ["barge"]  # type: ignore[arg-type]
    sim.phone("SIP/1003").hangup()
    run(clock, 1)
    assert [m["SpyerChannel"] for m in rec.of("ChanSpyStop")] == [spyer]
    assert sim.find_channel(agent) is not None and sim.find_channel(agent).bridge is not None  # type: ignore[union-attr]


def test_without_E_the_spy_stays_and_a_wrong_prefix_spies_on_nothing() -> None:
    sim, clock, rec = make()
    agent = talking(sim, clock)
    spyer = spy(sim, clock, f"{agent},q")
    sim.hangup_channel(next(c for c in sim.channels.values() if c.name.startswith("SIP/carrier")))
    run(clock, 1)
    assert len(rec.of("ChanSpyStop")) == 1 and sim.find_channel(spyer) is not None
    sim.phone("SIP/1003").hangup()
    run(clock, 1)
    assert len(rec.of("ChanSpyStop")) == 1  # nothing spied on any more: no second stop
    spy(sim, clock, "SIP/9999-,q")
    assert len(rec.of("ChanSpyStart")) == 1
