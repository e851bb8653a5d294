"""AMIProtocol on an in-memory transport and a Clock: what a caller of sendAction sees."""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from zope.interface import implementer
from zope.interface.verify import verifyObject

from ucs.ami import (
    AMIActionError,
    AMIConnectionLost,
    AMINotConnected,
    AMIProtocol,
    AMITimeoutError,
    EventListResult,
    HeaderInjectionError,
    IAMIController,
    counterIDs,
)

BANNER = b"Asterisk Call Manager/9.0.0\r\n"


@implementer(IAMIController)
class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, str]] = []
        self.lost: list[Failure] = []

    def eventReceived(self, message: dict[str, str]) -> None:
        self.events.append(message)

    def connectionLost(self, reason: Failure) -> None:
        self.lost.append(reason)


def result(d: Deferred):
    """The Deferred's result now (a Failure's exception raised), never waiting."""
    box: list = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def pending(d: Deferred) -> bool:
    return not d.called


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctl() -> Recorder:
    return Recorder()


@pytest.fixture
def proto(clock: Clock, ctl: Recorder) -> AMIProtocol:
    p = AMIProtocol(ctl, clock=clock, actionIDs=counterIDs("lab-"))
    p.makeConnection(StringTransport())
    p.dataReceived(BANNER)
    return p


def written(p: AMIProtocol) -> bytes:
    t: StringTransport = p.transport  # type: ignore[assignment]
    data = t.value()
    t.clear()
    return data


def test_controller_interface() -> None:
    verifyObject(IAMIController, Recorder())


def test_banner_signals_ready(clock: Clock) -> None:
    p = AMIProtocol(clock=clock)
    p.makeConnection(StringTransport())
    ready = p.whenReady()
    assert p.banner is None and pending(ready)
    p.dataReceived(b"Asterisk Call Man")
    assert pending(ready)
    p.dataReceived(b"ager/9.0.0\r\n")
    assert result(ready) == "Asterisk Call Manager/9.0.0" == p.banner
    assert result(p.whenReady()) == p.banner


def test_connection_lost_before_banner_fails_ready(clock: Clock) -> None:
    p = AMIProtocol(clock=clock)
    p.makeConnection(StringTransport())
    ready = p.whenReady()
    p.connectionLost(Failure(ConnectionLost()))
    with pytest.raises(AMIConnectionLost, match="before the banner"):
        result(ready)


def test_action_is_written_and_answered(proto: AMIProtocol) -> None:
    d = proto.sendAction("QueueAdd", {"Queue": "support", "Interface": "SIP/1001", "Paused": False, "Penalty": 0})
    assert written(proto) == (
        b"Action: QueueAdd\r\nActionID: lab-1\r\nQueue: support\r\nInterface: SIP/1001\r\n"
        b"Paused: false\r\nPenalty: 0\r\n\r\n"
    )
    assert pending(d)
    proto.dataReceived(b"Response: Success\r\nActionID: lab-1\r\nMessage: Added interface to queue\r\n\r\n")
    assert result(d) == {"Response": "Success", "ActionID": "lab-1", "Message": "Added interface to queue"}
    assert proto.pendingCount == 0


def test_default_action_ids_are_ucs_n(clock: Clock) -> None:
    p = AMIProtocol(clock=clock)
    p.makeConnection(StringTransport())
    p.sendAction("Ping")
    p.sendAction("Ping")
    assert written(p) == b"Action: Ping\r\nActionID: ucs-1\r\n\r\nAction: Ping\r\nActionID: ucs-2\r\n\r\n"


def test_answers_match_by_action_id_not_order(proto: AMIProtocol) -> None:
    a = proto.sendAction("Ping")
    b = proto.sendAction("CoreStatus")
    proto.dataReceived(b"Response: Success\r\nActionID: lab-2\r\nCoreCurrentCalls: 3\r\n\r\n")
    assert pending(a)
    assert result(b)["CoreCurrentCalls"] == "3"
    proto.dataReceived(b"Response: Success\r\nActionID: lab-1\r\nPing: Pong\r\n\r\n")
    assert result(a)["Ping"] == "Pong"


def test_error_response_fails_with_asterisk_message(proto: AMIProtocol) -> None:
    d = proto.sendAction("QueueAdd", {"Queue": "support", "Interface": "SIP/1001"})
    proto.dataReceived(b"Response: Error\r\nActionID: lab-1\r\nMessage: Unable to add interface: Already there\r\n\r\n")
    with pytest.raises(AMIActionError) as e:
        result(d)
    assert e.value.action == "QueueAdd"
    assert e.value.message == "Unable to add interface: Already there"
    assert e.value.response["Response"] == "Error"
    assert "QueueAdd" in str(e.value) and "Already there" in str(e.value)


def test_event_list_fires_once_at_complete(proto: AMIProtocol, ctl: Recorder) -> None:
    d = proto.sendAction("DeviceStateList")
    proto.dataReceived(
        b"Response: Success\r\nActionID: lab-1\r\nEventList: start\r\nMessage: Device State Changes will follow\r\n\r\n"
        b"Event: DeviceStateChange\r\nActionID: lab-1\r\nDevice: SIP/1001\r\nState: INUSE\r\n\r\n"
        b"Event: Newchannel\r\nChannel: SIP/carrier-00000001\r\n\r\n"
        b"Event: DeviceStateChange\r\nActionID: lab-1\r\nDevice: SIP/1002\r\nState: NOT_INUSE\r\n\r\n"
    )
    assert pending(d)
    # An unrelated event in between goes to the controller, list items do not.
    assert [e["Event"] for e in ctl.events] == ["Newchannel"]
    proto.dataReceived(b"Event: DeviceStateListComplete\r\nActionID: lab-1\r\nEventList: Complete\r\nListItems: 2\r\n\r\n")
    r = result(d)
    assert isinstance(r, EventListResult)
    assert r.response["Message"] == "Device State Changes will follow"
    assert [e["Device"] for e in r.events] == ["SIP/1001", "SIP/1002"]
    assert [e["Device"] for e in r] == ["SIP/1001", "SIP/1002"] and len(r) == 2
    assert r.complete["ListItems"] == "2"
    assert [e["Event"] for e in ctl.events] == ["Newchannel"]


def test_empty_event_list(proto: AMIProtocol) -> None:
    d = proto.sendAction("CoreShowChannels")
    proto.dataReceived(
        b"Response: Success\r\nActionID: lab-1\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
        b"Event: CoreShowChannelsComplete\r\nActionID: lab-1\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
    )
    r = result(d)
    assert r.events == [] and r.complete["ListItems"] == "0"


def test_async_originate_response_goes_to_controller(proto: AMIProtocol, ctl: Recorder) -> None:
    d = proto.sendAction("Originate", {"Channel": "SIP/1999", "Exten": "1002", "Async": True})
    assert b"Async: true\r\n" in written(proto)
    proto.dataReceived(b"Response: Success\r\nActionID: lab-1\r\nMessage: Originate successfully queued\r\n\r\n")
    assert result(d)["Message"] == "Originate successfully queued"
    proto.dataReceived(
        b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: lab-1\r\nResponse: Failure\r\n"
        b"Channel: SIP/1999\r\nReason: 0\r\n\r\n"
    )
    assert ctl.events == [
        {
            "Event": "OriginateResponse",
            "Privilege": "call,all",
            "ActionID": "lab-1",
            "Response": "Failure",
            "Channel": "SIP/1999",
            "Reason": "0",
        }
    ]


def test_old_follows_command_output(proto: AMIProtocol) -> None:
    d = proto.sendAction("Command", {"Command": "core show uptime"})
    proto.dataReceived(
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: lab-1\r\n"
        b"System uptime: 1 hour, 2 minutes\nLast reload: 3 minutes\n--END COMMAND--\r\n\r\n"
    )
    assert result(d)["Output"] == "System uptime: 1 hour, 2 minutes\nLast reload: 3 minutes"


def test_timeout_with_clock(proto: AMIProtocol, clock: Clock, ctl: Recorder) -> None:
    d = proto.sendAction("Ping")
    quick = proto.sendAction("Ping", timeout=2)
    clock.advance(1.9)
    assert pending(quick)
    clock.advance(0.1)
    with pytest.raises(AMITimeoutError, match=r"Ping \(ActionID lab-2\) within 2 s"):
        result(quick)
    clock.advance(7.9)
    assert pending(d)
    clock.advance(0.1)
    with pytest.raises(AMITimeoutError):
        result(d)
    # The late answer is dropped quietly: it is nobody's event.
    proto.dataReceived(b"Response: Success\r\nActionID: lab-1\r\nPing: Pong\r\n\r\n")
    assert ctl.events == [] and proto.pendingCount == 0
    assert clock.getDelayedCalls() == []


def test_answered_action_leaves_no_timer(proto: AMIProtocol, clock: Clock) -> None:
    proto.sendAction("Ping")
    proto.dataReceived(b"Response: Success\r\nActionID: lab-1\r\n\r\n")
    assert clock.getDelayedCalls() == []


def test_event_list_timeout_restarts_at_each_item(proto: AMIProtocol, clock: Clock) -> None:
    d = proto.sendAction("QueueStatus", timeout=5)
    clock.advance(4)
    proto.dataReceived(b"Response: Success\r\nActionID: lab-1\r\nEventList: start\r\n\r\n")
    for i in range(3):
        clock.advance(4)
        proto.dataReceived(b"Event: QueueMember\r\nActionID: lab-1\r\nName: x\r\n\r\n")
    assert pending(d)
    clock.advance(5)
    with pytest.raises(AMITimeoutError):
        result(d)


def test_no_timeout_when_infinite(proto: AMIProtocol, clock: Clock) -> None:
    d = proto.sendAction("Ping", timeout=float("inf"))
    assert clock.getDelayedCalls() == []
    clock.advance(10_000)
    assert pending(d)


def test_connection_lost_fails_everything_pending(proto: AMIProtocol, clock: Clock, ctl: Recorder) -> None:
    a = proto.sendAction("Ping")
    b = proto.sendAction("QueueStatus")
    proto.dataReceived(b"Response: Success\r\nActionID: lab-2\r\nEventList: start\r\n\r\n")
    proto.connectionLost(Failure(ConnectionLost("peer reset")))
    for d, name in ((a, "Ping"), (b, "QueueStatus")):
        with pytest.raises(AMIConnectionLost, match=f"answered {name}") as e:
            result(d)
        assert e.value.action == name
    assert len(ctl.lost) == 1 and ctl.lost[0].check(ConnectionLost)
    assert clock.getDelayedCalls() == []
    with pytest.raises(AMINotConnected):
        result(proto.sendAction("Ping"))


def test_cancel_forgets_the_action(proto: AMIProtocol, clock: Clock, ctl: Recorder) -> None:
    d = proto.sendAction("Ping")
    d.cancel()
    with pytest.raises(CancelledError):
        result(d)
    assert proto.pendingCount == 0 and clock.getDelayedCalls() == []
    proto.dataReceived(b"Response: Success\r\nActionID: lab-1\r\n\r\n")
    assert ctl.events == []


@pytest.mark.parametrize(
    "action, headers, named",
    [
        ("Originate", {"Channel": "SIP/1001", "CallerID": "Eve\r\nAction: Hangup"}, "'CallerID'"),
        ("Originate", {"Channel": "SIP/1001", "Data": "x\n"}, "'Data'"),
        ("Originate", {"Variable": ["A=1", "B=\r2"]}, "'Variable'"),
        ("Originate", {"Chan\r\nnel": "SIP/1001"}, "'Chan\\r\\nnel'"),
        ("Ping\r\nAction: Hangup", {}, "'Action'"),
    ],
)
def test_header_injection_refused_and_nothing_written(proto: AMIProtocol, clock: Clock, action, headers, named) -> None:
    d = proto.sendAction(action, headers)
    with pytest.raises(HeaderInjectionError) as e:
        result(d)
    assert named in str(e.value)
    assert written(proto) == b""
    assert proto.pendingCount == 0 and clock.getDelayedCalls() == []
    # The link is still usable.
    ok = proto.sendAction("Ping")
    assert written(proto).startswith(b"Action: Ping\r\n")
    assert pending(ok)


def test_action_id_header_cannot_be_overridden(proto: AMIProtocol) -> None:
    with pytest.raises(ValueError, match="ActionID"):
        result(proto.sendAction("Ping", {"ActionID": "mine"}))
    assert written(proto) == b""


def test_event_handler_exception_is_logged_and_dispatch_goes_on(clock: Clock) -> None:
    seen: list[str] = []

    @implementer(IAMIController)
    class Broken(Recorder):
        def eventReceived(self, message: dict[str, str]) -> None:
            seen.append(message["Event"])
            if message["Event"] == "Bad":
                raise RuntimeError("handler bug")

    p = AMIProtocol(Broken(), clock=clock)
    p.makeConnection(StringTransport())
    with capturedLogs() as logs:
        p.dataReceived(BANNER + b"Event: A\r\n\r\nEvent: Bad\r\n\r\nEvent: C\r\n\r\n")
    assert seen == ["A", "Bad", "C"]
    failures = [e for e in logs if "log_failure" in e]
    assert len(failures) == 1 and failures[0]["log_failure"].check(RuntimeError)


def test_garbage_frame_logged_once_and_link_survives(proto: AMIProtocol, ctl: Recorder) -> None:
    d = proto.sendAction("Ping")
    with capturedLogs() as logs:
        proto.dataReceived(b"this is not AMI\r\n\r\nEvent: Hangup\r\n\r\nResponse: Success\r\nActionID: lab-1\r\n\r\n")
    dropped = [e for e in logs if e.get("log_format", "").startswith("Dropped an AMI frame")]
    assert len(dropped) == 1 and "this is not AMI" in repr(dropped[0]["start"])
    assert [e["Event"] for e in ctl.events] == ["Hangup"]
    assert result(d)["Response"] == "Success"
