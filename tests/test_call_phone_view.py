"""Each phone's view of a call (ucs.calls.view: the rule the live bar events and
``state`` share) and what its timer counts from, on the simulated PBX over TCP
with the PBX's clock advanced by the test (tests/test_control_stack.py's Stack):
the exact seconds are known, so the timestamps are checked to the second.

Issue 16: ringing counted the caller's wait in the queue, the consulted agent's
talking time began at the caller's first answer, hold showed the call's time; and
a bar reloading its state was given the whole call's state (the consulted agent
"on hold", a phone rung by a blind transfer "suspended").
"""

from __future__ import annotations

import pytest_twisted
from test_control_stack import ALICE, started

from ucs.calls.call import CallState
from ucs.calls.view import phone_state, phone_view, primary
from ucs.sim.lab import CUSTOMER


@pytest_twisted.ensureDeferred
async def test_ringing_counts_from_the_phones_ring_not_the_queue_wait() -> None:
    s = await started()
    try:
        s.sim.caller_calls("5000", CUSTOMER)  # nobody in the queue yet: the caller waits
        await s.advance(40)
        rung = s.clock.seconds()
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        await s.advance(0.5)
        (call,) = s.tracker.calls_of_device("SIP/1001")
        view = phone_view(call, "SIP/1001", s.clock.seconds())
        assert view is not None and view["state"] == CallState.RINGING
        assert rung <= view["ringing_since"] <= rung + 0.5  # not call.created, 40 s earlier
        assert view["created"] <= rung - 39
        assert view["answered_at"] is None and view["held_since"] is None
        await s.advance(1.5)  # the phone answers after 1 s
        view = phone_view(call, "SIP/1001", s.clock.seconds())
        assert view is not None and view["state"] == CallState.CONNECTED
        assert view["answered_at"] == s.leg(call, "SIP/1001").answered
        assert rung + 0.75 <= view["answered_at"] <= rung + 1.75
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_consulted_agent_talks_from_its_own_answer_and_the_holder_sees_the_hold() -> None:
    s = await started()
    try:
        call = await s.incoming()
        first_answer = call.connected
        assert first_answer is not None
        await s.advance(30)  # the caller and Alice talk for half a minute
        held_at = s.clock.seconds()
        await s.settle(s.control.transfer(ALICE, "1003"))
        await s.advance(0.25)
        carol = phone_view(call, "SIP/1003", s.clock.seconds())
        assert carol is not None and carol["state"] == CallState.RINGING  # the call is held, Carol's phone rings
        assert carol["ringing_since"] == s.leg(call, "SIP/1003").created >= held_at
        await s.advance(1.5)
        assert call.state == CallState.HELD
        # Carol answered the consultation: she talks (the call as a whole is on hold) …
        carol = phone_view(call, "SIP/1003", s.clock.seconds())
        assert carol is not None and carol["state"] == CallState.CONNECTED and carol["held_since"] is None
        assert carol["answered_at"] == s.leg(call, "SIP/1003").answered
        assert carol["answered_at"] >= first_answer + 30
        # … Alice holds the caller, since she asked for the transfer.
        alice = phone_view(call, "SIP/1001", s.clock.seconds())
        assert alice is not None and alice["state"] == CallState.HELD
        assert held_at <= alice["held_since"] <= held_at + 1 and alice["held_since"] == call.held_since
        assert alice["answered_at"] == s.leg(call, "SIP/1001").answered
        assert call.hold_parties == {"SIP/1001", "SIP/carrier"}
        # The same rule as the live events, which also know what was shown before.
        assert phone_state(call, "SIP/1003", prev=CallState.RINGING) == CallState.CONNECTED
        assert primary([alice]) is alice and primary([alice, carol]) is carol
        # Finished: the caller talks with Carol, whose time still runs from her answer.
        await s.settle(s.control.finish_transfer(ALICE))
        await s.advance(1)
        carol = phone_view(call, "SIP/1003", s.clock.seconds())
        assert carol is not None and carol["state"] == CallState.CONNECTED
        assert carol["answered_at"] == s.leg(call, "SIP/1003").answered and carol["held_since"] is None
        assert call.held_since is None and not call.hold_parties
        assert phone_view(call, "SIP/1001", s.clock.seconds()) is None  # Alice is out of it
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_phone_rung_by_a_blind_transfer_is_ringing() -> None:
    s = await started()
    try:
        call = await s.incoming()
        answered = call.connected
        assert answered is not None
        await s.advance(20)
        await s.settle(s.control.blind_transfer(ALICE, "1002"))
        await s.advance(0.25)
        bob = phone_view(call, "SIP/1002", s.clock.seconds())
        assert bob is not None and bob["state"] == CallState.RINGING, (call.state, bob and bob["state"])
        assert bob["ringing_since"] == s.leg(call, "SIP/1002").created > answered + 20
        assert bob["answered_at"] is None
    finally:
        await s.stop()
