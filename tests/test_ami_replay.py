"""Every recorded scenario, replayed by a fake Asterisk on a real TCP socket.

The fake server (ucs.ami.testing.ReplayFactory) sends the capture's bytes up
to each answer only once the client sent that ActionID.  The client is the
real AMIClient: it logs in exactly as recorded (MD5 where the lab did), the
test then sends the rest of the recorded actions, and each Deferred must get
exactly the answer Asterisk gave, while every event in between reaches the
listener and none of them leaks into an action's result.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from ucs.ami import AMIActionError, AMIClient, AMIListener, AMIProtocol, EventListResult, counterIDs
from ucs.ami.testing import Capture, ReplayFactory, capturesDir

CAPTURES = capturesDir()
NAMES = sorted(p.stem for p in CAPTURES.glob("*.actions")) if CAPTURES.exists() else []
pytestmark = pytest.mark.skipif(not NAMES, reason=f"no AMI captures in {CAPTURES}")


class Listener(AMIListener):
    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self.events: list[dict[str, str]] = []

    def connected(self, protocol: AMIProtocol) -> None:
        self.log.append(("connected", protocol))

    def eventReceived(self, message: dict[str, str]) -> None:
        self.events.append(message)

    def disconnected(self, reason: Failure) -> None:
        self.log.append(("disconnected", reason))


@dataclass
class Expected:
    answers: dict[str, object] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)


def expected_from(capture: Capture) -> Expected:
    """What a correct client must conclude, read straight off the capture."""
    out = Expected()
    lists: dict[str, tuple[dict[str, str], list[dict[str, str]]]] = {}
    for msg in capture.messages:
        assert msg is not None
        aid = msg.get("ActionID")
        if "Event" not in msg:
            assert aid is not None
            if msg["Response"] == "Error":
                out.answers[aid] = ("error", msg["Message"])
            elif msg.get("EventList") == "start":
                lists[aid] = (msg, [])
            else:
                out.answers[aid] = msg
        elif aid in lists:
            if msg.get("EventList") == "Complete":
                response, items = lists.pop(aid)
                out.answers[aid] = EventListResult(response, items, msg)
            else:
                lists[aid][1].append(msg)
        else:
            out.events.append(msg)
    assert not lists
    return out


async def replay(name: str) -> tuple[Capture, ReplayFactory, Listener, dict[str, object]]:
    capture = Capture.fromFile(CAPTURES / f"{name}.ami")
    assert capture.actions
    factory = ReplayFactory([capture])
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    listener = Listener()
    actions = capture.actions
    md5 = actions[0]["Action"] == "Challenge"
    loginAction = actions[1 if md5 else 0]
    client = AMIClient(
        TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port),
        loginAction["Username"],
        "ucslab",
        listener,
        clock=Clock(),  # never advanced: no keepalive, no timeouts, no retry
        events=loginAction["Events"],
        authType="md5" if md5 else "plain",
        actionIDs=lambda: counterIDs("lab-"),
    )
    answers: dict[str, object] = {}
    logs = capturedLogs()
    logged = logs.__enter__()
    try:
        client.startService()
        await client.whenUp()
        assert client.state == "up"
        for action in actions[2 if md5 else 1 :]:
            headers = {k: v for k, v in action.items() if k not in ("Action", "ActionID")}
            try:
                answers[action["ActionID"]] = await client.sendAction(action["Action"], headers)
            except AMIActionError as e:
                assert e.action == action["Action"]
                answers[action["ActionID"]] = ("error", e.message)
        # The capture ran out: the fake Asterisk closes, like the real one did.
        await factory.connections[0].whenLost()
    finally:
        await client.stopService()
        await port.stopListening()
        logs.__exit__(None, None, None)
    assert client.state == "down"
    # Real Asterisk output: no frame dropped, no handler traceback.
    assert not [e for e in logged if "log_failure" in e or (e.get("log_format") or "").startswith("Dropped")]
    return capture, factory, listener, answers


@pytest.mark.parametrize("name", NAMES)
@pytest_twisted.ensureDeferred
async def test_replay(name: str) -> None:
    capture, factory, listener, answers = await replay(name)
    expected = expected_from(capture)
    server = factory.connections[0]
    # The client sent exactly what the lab client sent, header for header.
    assert [list(a.items()) for a in server.received] == [list(a.items()) for a in capture.actions or []]
    login = {"lab-1", "lab-2"} if capture.actions and capture.actions[0]["Action"] == "Challenge" else {"lab-1"}
    assert answers == {k: v for k, v in expected.answers.items() if k not in login}
    assert listener.events == expected.events
    assert [kind for kind, _ in listener.log] == ["connected", "disconnected"]
    assert len(factory.connections) == 1


@pytest_twisted.ensureDeferred
async def test_resync_snapshot_in_detail() -> None:
    capture, factory, listener, answers = await replay("resync_snapshot")
    server = factory.connections[0]

    # MD5 login: Challenge, then the key md5(challenge + secret).
    challenge = next(m for m in capture.messages if m and m.get("ActionID") == "lab-1")["Challenge"]
    assert challenge == "149624602"
    login = server.received[1]
    assert login["Action"] == "Login" and "Secret" not in login
    assert login["Key"] == hashlib.md5(b"149624602ucslab").hexdigest() == "c633d1f736a547302fdc5a442a06ed83"

    def lst(aid: str) -> EventListResult:
        r = answers[aid]
        assert isinstance(r, EventListResult)
        return r

    assert answers["lab-6"] == ("error", "Unable to add interface: Already there")
    assert [e["ObjectName"] for e in lst("lab-10")] == ["1001", "1002", "1003", "carrier"]
    assert lst("lab-10").complete["Event"] == "PeerlistComplete"
    assert answers["lab-12"] == (
        "error",
        "Invalid/unknown command: PJSIPShowEndpoints. Use Action: ListCommands to show available commands.",
    )
    assert len(lst("lab-13")) == 10
    assert answers["lab-14"] == ("error", "No dialplan hints are available")
    assert [e["Queue"] for e in lst("lab-15")] == ["support", "sales"]
    queue_status = lst("lab-16")
    assert {e["Event"] for e in queue_status} == {"QueueParams", "QueueMember", "QueueEntry"}
    assert len(queue_status) == int(queue_status.complete["ListItems"]) == 6
    assert len(lst("lab-17")) == 3 and len(lst("lab-18")) == 1 and len(lst("lab-19")) == 3
    command = answers["lab-20"]
    assert isinstance(command, dict) and command["Output"].startswith("Asterisk UNKNOWN__and_probably_unsupported built by")
    assert isinstance(answers["lab-21"], dict) and answers["lab-21"]["Ping"] == "Pong"
    # Async Originate: queued now, the outcome arrives as an event for the layer above.
    assert isinstance(answers["lab-22"], dict) and answers["lab-22"]["Message"] == "Originate successfully queued"
    originated = [e for e in listener.events if e["Event"] == "OriginateResponse"]
    assert [(e["ActionID"], e["Response"], e["Channel"]) for e in originated] == [("lab-22", "Failure", "SIP/1999")]
    assert answers["lab-23"] == ("error", "Originate failed")
    assert answers["lab-24"] == ("error", "No such channel")
    # Hangup of a /regex/ channel answers with an event list.
    hung = lst("lab-25")
    assert [e["Channel"] for e in hung] == ["SIP/carrier-0000000d"]
    assert answers["lab-29"] == {"Response": "Goodbye", "ActionID": "lab-29", "Message": "Thanks for all the fish."}
    # No list item and no answer ever reached the listener.
    assert not [e for e in listener.events if e.get("ActionID") not in (None, "lab-22")]
    assert listener.events[0]["Event"] == "FullyBooted"
