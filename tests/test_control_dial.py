"""Click-to-dial (``CallControl.dial``) against the simulated PBX over TCP."""

from __future__ import annotations

import pytest
import pytest_twisted
from test_control_stack import ALICE, BOB, DAVE, started

from ucs.calls.call import INTERNAL, OUTGOING, Call, CallState, Cause
from ucs.calls.tracker import CallObserver
from ucs.calls.control import check_number
from ucs.directory.model import Line, Queue
from ucs.error import InvalidDataInput, InvalidState, PBXError

NUMBER = "0420777987654"


class Queues:
    """The part of the directory ``dial`` reads for campaigns."""

    def __init__(self) -> None:
        self.queues = {1: Queue(1, "Support", "support", type=1), 7: Queue(7, "Winter campaign", "winter", type=0)}
        self.callreasons: dict[int, object] = {}

    def line_by_device(self, device: str) -> Line | None:
        return None

    def queues_of(self, user: object) -> list[tuple[Queue, object]]:
        return [(self.queues[7], None)]


@pytest_twisted.ensureDeferred
async def test_click_to_dial_rings_the_agent_then_the_number() -> None:
    s = await started()
    try:
        call = await s.settle(s.control.dial(BOB, NUMBER))
        # The agent answered: the number is being dialled from the agent's channel.
        assert call.direction == OUTGOING and call.caller_number == "1002" and call.caller_name == "Bob Agent"
        agent = s.leg(call, "SIP/1002")
        assert agent.uniqueid == call.origin and agent.answered is not None
        await s.advance(1.5)
        assert call.state == CallState.CONNECTED and call.called_number == NUMBER
        trunk = s.leg(call, "SIP/carrier")
        assert call.connected_channel == trunk.channel
        (sim_agent,) = s.sim_device("SIP/1002")
        assert sim_agent.bridge is not None and sim_agent.bridge is s.sim_channel(trunk.uniqueid).bridge  # type: ignore[union-attr]
        await s.settle(s.control.hangup(BOB))
        done = s.ended.calls[call.uniqueid]
        # Ended from the agent's side, and the agent is the caller.
        assert done.cause == Cause.CALLER_HUNG_UP
        assert s.leg(done, "SIP/1002").cause == Cause.CALLER_HUNG_UP
        assert s.leg(done, "SIP/carrier").cause == Cause.CALLER_HUNG_UP
    finally:
        await s.stop()


class FirstSeen(CallObserver):
    """What the bar's first ``call.new`` is built from: the call as it is created."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def call_created(self, call: Call) -> None:
        self.seen.append((call.direction, call.called_number, call.number))


@pytest.mark.parametrize("number, direction", [(NUMBER, OUTGOING), ("1003", INTERNAL)])
@pytest_twisted.ensureDeferred
async def test_a_click_to_dial_call_says_whom_it_calls_while_the_agents_phone_rings(number: str, direction: str) -> None:
    """Asterisk names the dialled number only once the agent's phone answers; a CRM
    opening the customer's record at ``onCallNew`` must get it from the start."""
    s = await started()
    first = FirstSeen()
    s.tracker.observers.append(first)
    try:
        call = await s.settle(s.control.dial(BOB, number))
        assert first.seen[0] == (direction, number, number if direction == OUTGOING else "1002")
        assert call.called_number == number
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_far_end_hangs_up_a_click_to_dial_call() -> None:
    s = await started()
    try:
        s.sim.trunk().set_behaviour(answer_after=1.0, hangup_after=2.0)
        call = await s.settle(s.control.dial("SIP/1002", "0420 777-987 654"))
        await s.advance(4)
        done = s.ended.calls[call.uniqueid]
        assert done.called_number == NUMBER
        assert done.cause == Cause.CALLED_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_phone_that_answers_on_notify_has_click_to_dial_answered_for_it() -> None:
    s = await started()
    try:
        s.sim.phone("SIP/1001").set_behaviour(answer_after=None, remote_answer=True)
        call = await s.settle(s.control.dial(ALICE, NUMBER))
        assert s.leg(call, "SIP/1001").answered is not None
        await s.advance(1.5)
        assert call.state == CallState.CONNECTED
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_campaign_and_metadata_are_recorded_on_the_call() -> None:
    s = await started(directory=Queues())
    try:
        call = await s.settle(s.control.dial(BOB, NUMBER, 7, {"crm_id": "A-17", "tags": ["vip"]}))
        assert call.queue == "winter" and call.outbound_id == 7
        assert call.data == {"crm_id": "A-17", "tags": ["vip"], "outbound_id": 7}
        assert ("call.change", call) in s.events
        await s.settle(s.control.hangup(BOB))
        call = await s.settle(s.control.dial(BOB, NUMBER, "undefined", user=object()))  # type: ignore[arg-type]
        assert call.queue == "winter"
        await s.settle(s.control.hangup(BOB))
        call = await s.settle(s.control.dial(BOB, NUMBER, "directCall"))
        assert call.queue is None
        await s.settle(s.control.hangup(BOB))
        with pytest.raises(InvalidDataInput, match="queue 1 \\(Support\\) is an incoming queue"):
            await s.control.dial(BOB, NUMBER, 1)
        with pytest.raises(InvalidDataInput, match="queue 9 does not exist"):
            await s.control.dial(BOB, NUMBER, 9)
        with pytest.raises(InvalidDataInput, match="'someday' is not accepted"):
            await s.control.dial(BOB, NUMBER, "someday")
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_busy_number() -> None:
    s = await started()
    try:
        s.sim.trunk().set_behaviour(busy=True)
        call = await s.settle(s.control.dial(BOB, NUMBER))
        await s.advance(1)
        done = s.ended.calls[call.uniqueid]
        assert done.connected is None and done.cause == Cause.BUSY
        assert s.leg(done, "SIP/carrier").cause == Cause.BUSY
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_number_nobody_answers() -> None:
    s = await started()
    try:
        s.sim.trunk().set_behaviour(answer_after=None)
        call = await s.settle(s.control.dial(BOB, NUMBER))
        await s.advance(31)
        done = s.ended.calls[call.uniqueid]
        assert done.connected is None and done.cause == Cause.UNAVAILABLE
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_the_agent_does_not_answer_or_rejects() -> None:
    s = await started()
    try:
        s.sim.phone("SIP/1002").set_behaviour(answer_after=None)
        with pytest.raises(PBXError, match="SIP/1002 did not take the call to 0420777987654: it rang for 20 s"):
            await s.settle(s.control.dial(BOB, NUMBER))
        assert not s.sim_device("SIP/1002")
        s.sim.phone("SIP/1002").set_behaviour(busy=True)
        with pytest.raises(PBXError, match="rejected it \\(busy\\)"):
            await s.settle(s.control.dial(BOB, NUMBER))
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_originate_failure_reason_from_asterisk() -> None:
    s = await started()
    try:
        with pytest.raises(PBXError, match="Asterisk could not call SIP/1009 .*could not be called"):
            await s.settle(s.control.dial("SIP/1009", NUMBER), limit=1)
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_originate_failure_without_the_response_times_out() -> None:
    s = await started(filters=("!Event: OriginateResponse",))  # an AMI user whose events lack it
    try:
        with pytest.raises(PBXError, match="SIP/1009 answers the click-to-dial call to .* did not happen within 25 s"):
            await s.settle(s.control.dial("SIP/1009", NUMBER))
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_refused_dials() -> None:
    s = await started()
    try:
        with pytest.raises(InvalidState, match="SIP/1004 is UNAVAILABLE: the phone is not registered"):
            await s.control.dial(DAVE, NUMBER)
        with pytest.raises(InvalidDataInput) as e:
            await s.control.dial(BOB, "call me")
        assert "number" in e.value.message and "is not a phone number" in e.value.message["number"]
        call = await s.incoming("SIP/1002", "Bob Agent")
        with pytest.raises(InvalidState, match="there is already a call in progress on SIP/1002"):
            await s.control.dial(BOB, NUMBER)
        assert len(s.tracker.calls_of_device("SIP/1002")) == 1 and call.state == CallState.CONNECTED
    finally:
        await s.stop()


def test_numbers() -> None:
    assert check_number("0420 777-987.654") == "0420777987654"
    assert check_number("+420(777)987654") == "+420777987654"
    assert check_number("*72#") == "*72#"
    for bad in ("", "12a", "1+2", "++1", "1" * 33, 1234, None):
        with pytest.raises(InvalidDataInput):
            check_number(bad)
    with pytest.raises(InvalidDataInput) as e:
        check_number("x", "target")
    assert list(e.value.message) == ["target"]


@pytest_twisted.ensureDeferred
async def test_asterisk_refuses_the_originate() -> None:
    s = await started()
    try:
        actions = s.server.actions
        actions._handlers["originate"] = lambda session, m: actions.error(m, "Originate failed")
        with pytest.raises(PBXError, match="^Asterisk refused Originate: Originate failed$"):
            await s.settle(s.control.dial(BOB, NUMBER))
        assert not s.control._confirm and not s.control._originating
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_click_to_dial_on_a_webrtc_line_asks_the_browser_to_answer_by_itself() -> None:
    """The Originate of a WebRTC line's click-to-dial sets ``PJSIP_HEADER(add,Call-Info)``
    (``answer-after=0``) on the agent's leg, so the INVITE that rings the bar's softphone
    says the agent placed this call (tests/lab/test_softphone_lab.py: a real Asterisk
    carries it to the browser, which answers); a desk phone's Originate has no such header.
    What UCS sends is read on its way to the simulated Asterisk (which splits a Variable
    at every comma, unlike Asterisk: it cannot hold the function's name)."""
    s = await started()
    sent: list[tuple[str, dict[str, object]]] = []
    send = s.client.sendAction

    def spy(action: str, headers: dict[str, object] | None = None, **kw: object) -> object:
        sent.append((action, dict(headers or {})))
        return send(action, headers, **kw) if headers is not None else send(action, **kw)

    s.client.sendAction = spy  # type: ignore[method-assign]
    try:
        browser = Line(9, "SIP/1002", "This browser", kind="webrtc", ws_url="ws://127.0.0.1:8088/ws")
        await s.settle(s.control.dial(browser, NUMBER))
        await s.settle(s.control.hangup(browser))
        await s.settle(s.control.dial(ALICE, NUMBER))
        await s.settle(s.control.hangup(ALICE))
        originates = [h for a, h in sent if a == "Originate"]
        assert [o["Channel"] for o in originates] == ["SIP/1002", "SIP/1001"]
        assert "PJSIP_HEADER(add,Call-Info)=<sip:ucs.invalid>;answer-after=0" in originates[0]["Variable"]  # type: ignore[operator]
        assert not [v for v in originates[1]["Variable"] if "PJSIP_HEADER" in v]  # type: ignore[attr-defined]
    finally:
        await s.stop()
