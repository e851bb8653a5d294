"""Hostile input: whatever arrives on the AMI socket, the protocol survives.

A stream of fuzzed frames — garbage, truncated frames, oversized headers,
invalid UTF-8, random bytes, frames without Event/Response, blank frames —
is mixed with valid events, answers to pending actions and the items of a
pending event list, then fed to a real AMIProtocol in random chunks.  Every
rejected frame must be logged exactly once, every valid frame must come
through unchanged and in order, nothing may raise, and the buffer must stay
under the frame limit.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from zope.interface import implementer

from ucs.ami import AMIProtocol, EventListResult, IAMIController, counterIDs

MAX_FRAME = 2048
BANNER = b"Asterisk Call Manager/9.0.0\r\n"
_NAME_CHARS = string.ascii_letters + string.digits + "-_"
_FORBIDDEN = (b"\r\n\r\n", b"Event", b"Response", b"--END COMMAND--")


@implementer(IAMIController)
class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, str]] = []

    def eventReceived(self, message: dict[str, str]) -> None:
        self.events.append(message)

    def connectionLost(self, reason: Failure) -> None:
        pass


@dataclass
class Stream:
    frames: list[bytes] = field(default_factory=list)
    #: (Seq, exact message or None when only Event and Seq are predictable)
    events: list[tuple[str, dict[str, str] | None]] = field(default_factory=list)
    answers: dict[str, dict[str, str]] = field(default_factory=dict)
    listItems: list[dict[str, str]] = field(default_factory=list)
    rejected: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def _text(rnd: random.Random, n: int) -> str:
    alphabet = string.printable.replace("\r", "").replace("\n", "").replace("\x0b", "").replace("\x0c", "") + "žščřáé€😀:"
    return "".join(rnd.choice(alphabet) for _ in range(n))


def _clean(raw: bytes) -> bool:
    return not any(bad in raw for bad in _FORBIDDEN)


def _headers(rnd: random.Random, seq: int, count: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(count):
        name = rnd.choice(string.ascii_letters) + "".join(rnd.choice(_NAME_CHARS) for _ in range(rnd.randint(0, 12)))
        if name.lower() in ("event", "response", "actionid", "seq", "output", "eventlist") or name in headers:
            continue
        headers[name] = _text(rnd, rnd.randint(0, 40))
    return headers


def _encode(msg: dict[str, str]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in msg.items()).encode("utf-8")


def build_stream(rnd: random.Random, n: int, pings: int) -> Stream:
    """``n`` frames: about half valid, the rest hostile; answers for ``pings`` Pings (lab-1...)
    and a QueueStatus list (ActionID ``lab-list``) scattered through it."""
    s = Stream()
    answerAt = {at: f"lab-{i}" for i, at in enumerate(rnd.sample(range(n), pings), 1)}
    listStart, listEnd = sorted(rnd.sample(range(n), 2))

    def add(kind: str, raw: bytes) -> None:
        s.frames.append(raw + b"\r\n\r\n")
        s.kinds[kind] = s.kinds.get(kind, 0) + 1

    for i in range(n):
        seq = str(i)
        if i in answerAt:
            aid = answerAt[i]
            msg = {"Response": "Success", "ActionID": aid, "Ping": "Pong", "Seq": seq}
            s.answers[aid] = msg
            add("answer", _encode(msg))
        if i == listStart:
            add("list", _encode({"Response": "Success", "ActionID": "lab-list", "EventList": "start"}))
        if listStart < i < listEnd and rnd.random() < 0.05:
            item = {"Event": "QueueMember", "ActionID": "lab-list", "Seq": seq, "Name": _text(rnd, 10)}
            s.listItems.append(item)
            add("list", _encode(item))
        if i == listEnd:
            add("list", _encode({"Event": "QueueStatusComplete", "ActionID": "lab-list", "EventList": "Complete"}))

        roll = rnd.random()
        tag = f"#R{i}#".encode()
        if roll < 0.45:
            msg = {"Event": f"Fuzz{rnd.randint(0, 9)}", "Seq": seq, **_headers(rnd, i, rnd.randint(0, 8))}
            s.events.append((seq, msg))
            add("valid", _encode(msg))
        elif roll < 0.50:
            # Invalid UTF-8 in a value: kept, read as Latin-1.
            value = bytes(rnd.randint(0xC0, 0xFF) for _ in range(rnd.randint(1, 6)))
            s.events.append((seq, {"Event": "Latin", "Seq": seq, "Name": value.decode("latin-1")}))
            add("latin1", b"Event: Latin\r\nSeq: " + seq.encode() + b"\r\nName: " + value)
        elif roll < 0.58:
            # Truncated after the useful part: still an event.
            full = _encode({"Event": "Cut", "Seq": seq, **_headers(rnd, i, 4)})
            head = len(f"Event: Cut\r\nSeq: {seq}\r\n")
            cut = full[: rnd.randint(head, len(full))].rstrip(b"\r\n")
            s.events.append((seq, None))
            add("truncated-event", cut)
        elif roll < 0.62:
            # Truncated inside its first line: not an event any more.
            add("truncated-head", tag + b"Eve"[: rnd.randint(0, 3)])
            s.rejected += 1
        elif roll < 0.70:
            raw = _encode(_headers(rnd, i, rnd.randint(1, 6)))
            raw = tag + b"X: 1\r\n" + raw
            if _clean(raw):
                add("no-event", raw.rstrip(b"\r\n"))
                s.rejected += 1
        elif roll < 0.78:
            raw = tag + _text(rnd, rnd.randint(1, 200)).encode("utf-8").replace(b":", b" ")
            if _clean(raw):
                add("garbage", raw.rstrip(b"\r\n"))
                s.rejected += 1
        elif roll < 0.86:
            raw = tag + bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 300)))
            if _clean(raw):
                add("random", raw.rstrip(b"\r\n"))
                s.rejected += 1
        elif roll < 0.90:
            raw = tag + b"\xff\xfe" + bytes(rnd.randint(0x80, 0xFF) for _ in range(20)) + b": \xc3\x28"
            add("bad-utf8", raw)
            s.rejected += 1
        elif roll < 0.95:
            # Over the frame limit (a well-formed event with a huge header).
            big = b"Event: Huge\r\nSeq: " + seq.encode() + b"\r\nData: " + b"x" * rnd.randint(MAX_FRAME, 3 * MAX_FRAME)
            add("huge", big)
            s.rejected += 1
        else:
            add("blank", rnd.choice([b" ", b"\t", b"  \t "]))
    return s


def run(stream: Stream, pings: int, rnd: random.Random) -> set[str]:
    ctl = Recorder()
    clock = Clock()
    proto = AMIProtocol(ctl, clock=clock, actionIDs=counterIDs("lab-"), maxFrame=MAX_FRAME)
    proto.makeConnection(StringTransport())
    proto.dataReceived(BANNER)
    results: dict[str, list[object]] = {}
    for i in range(1, pings + 1):
        d = proto.sendAction("Ping")
        results[f"lab-{i}"] = []
        d.addBoth(results[f"lab-{i}"].append)
    listIDs = iter(["lab-list"])
    proto._nextID = lambda: next(listIDs)  # the list action gets the ActionID the stream uses
    listResult: list[object] = []
    proto.sendAction("QueueStatus").addBoth(listResult.append)

    data = b"".join(stream.frames)
    with capturedLogs() as logs:
        pos = 0
        while pos < len(data):
            size = rnd.choice([1, 2, 3, rnd.randint(1, 64), rnd.randint(1, 4096), rnd.randint(1, 4096)])
            proto.dataReceived(data[pos : pos + size])
            pos += size
            assert proto.bufferedBytes <= MAX_FRAME

    dropped = [e for e in logs if (e.get("log_format") or "").startswith("Dropped an AMI frame")]
    assert len(dropped) == stream.rejected
    reasons = {
        "unterminated" if r.startswith("unterminated") else "oversize" if "exceeds" in r else "not-ami"
        for r in (e["reason"] for e in dropped)
    }
    assert not [e for e in logs if "log_failure" in e]
    # Rejected frames were logged in stream order, each once.
    tags = [e["start"][: e["start"].index(b"#", 2) + 1] for e in dropped if e["start"].startswith(b"#R")]
    assert len(tags) == len(set(tags))
    assert tags == sorted(tags, key=lambda t: int(t[2:-1]))

    got = ctl.events
    assert [m.get("Seq") for m in got] == [seq for seq, _ in stream.events]
    for message, (seq, exact) in zip(got, stream.events):
        if exact is not None:
            assert message == exact
        else:
            assert message["Event"] == "Cut" and message["Seq"] == seq

    for aid, box in results.items():
        assert box == [stream.answers[aid]]
    (lst,) = listResult
    assert isinstance(lst, EventListResult)
    assert lst.events == stream.listItems
    assert proto.pendingCount == 0
    return reasons


def test_ten_thousand_fuzzed_frames() -> None:
    rnd = random.Random(20261123)
    stream = build_stream(rnd, 10_000, pings=200)
    assert len(stream.frames) >= 10_000
    # Every kind of hostile frame is in there, many times.
    for kind in ("truncated-head", "no-event", "garbage", "random", "bad-utf8", "huge", "blank", "truncated-event", "latin1"):
        assert stream.kinds.get(kind, 0) > 100, kind
    reasons = run(stream, 200, rnd)
    # Oversized frames were caught both whole and while still arriving.
    assert reasons == {"not-ami", "oversize", "unterminated"}


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**63), n=st.integers(2, 400))
def test_fuzzed_streams(seed: int, n: int) -> None:
    rnd = random.Random(seed)
    pings = rnd.randint(0, 20)
    stream = build_stream(rnd, n, pings=min(pings, n))
    run(stream, min(pings, n), rnd)
