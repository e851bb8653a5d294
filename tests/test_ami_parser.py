"""The wire format against real Asterisk 20 captures, in any TCP chunking."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ucs.ami.message import (
    AMIParser,
    FrameError,
    HeaderInjectionError,
    format_action,
    format_message,
    parse_frame,
)
from ucs.ami.testing import capturesDir

CAPTURES = capturesDir()
ALL = sorted(CAPTURES.glob("*.ami")) if CAPTURES.exists() else []
SMALL = [p for p in ALL if p.stat().st_size < 200_000]
pytestmark = pytest.mark.skipif(not ALL, reason=f"no AMI captures in {CAPTURES}")

_whole: dict[str, tuple[str | None, list[dict[str, str]], list[tuple[str, bytes]]]] = {}


def whole(path) -> tuple[str | None, list[dict[str, str]], list[tuple[str, bytes]]]:
    if path.name not in _whole:
        errors: list[tuple[str, bytes]] = []
        parser = AMIParser(on_error=lambda r, raw: errors.append((r, raw)))
        messages = parser.feed(path.read_bytes())
        _whole[path.name] = (parser.banner, messages, errors)
    return _whole[path.name]


def chunked(data: bytes, sizes: list[int]) -> tuple[AMIParser, list[dict[str, str]], list]:
    errors: list = []
    parser = AMIParser(on_error=lambda r, raw: errors.append(r))
    out: list[dict[str, str]] = []
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.extend(parser.feed(data[pos : pos + n]))
        pos += n
        i += 1
    return parser, out, errors


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_capture_parses_whole_with_sane_counts(path) -> None:
    banner, messages, errors = whole(path)
    data = path.read_bytes()
    assert banner == "Asterisk Call Manager/9.0.0"
    assert errors == []
    # No Response: Follows in Asterisk 20: one message per blank line.
    assert len(messages) == data.count(b"\r\n\r\n")
    assert all("Event" in m or "Response" in m for m in messages)
    # Every ActionID in a response is one the client sent (lab-N).
    ids = {m["ActionID"] for m in messages if "Event" not in m and "ActionID" in m}
    assert ids and all(i.startswith("lab-") for i in ids)


def test_filtered_events_has_fewer_events() -> None:
    """The README: `Events: system,call,agent` gives 46 events instead of 98."""
    full = [m for m in whole(CAPTURES / "queue_answered_caller_hangup.ami")[1] if "Event" in m]
    filtered = [m for m in whole(CAPTURES / "filtered_events.ami")[1] if "Event" in m]
    assert (len(full), len(filtered)) == (98, 46)
    assert not any(m["Event"] in ("VarSet", "Newexten") for m in filtered)


def test_load_capture_event_count() -> None:
    messages = whole(CAPTURES / "load_mixed.ami")[1]
    assert sum("Event" in m for m in messages) == 11_790


@pytest.mark.parametrize("path", SMALL, ids=lambda p: p.stem)
def test_one_byte_at_a_time(path) -> None:
    banner, messages, _ = whole(path)
    parser, out, errors = chunked(path.read_bytes(), [1])
    assert (parser.banner, out, errors) == (banner, messages, [])
    assert parser.buffered == 0


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_random_chunkings_give_the_same_messages(path) -> None:
    # @given inside: pytest-twisted re-wraps a parametrized @given test once
    # per parameter and then deadlocks on its own greenlet.
    banner, messages, _ = whole(path)
    data = path.read_bytes()
    big = len(data) > 1_000_000

    @settings(max_examples=6 if big else 15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(sizes=st.lists(st.one_of(st.integers(1, 8), st.integers(1, 70_000)), min_size=1, max_size=40))
    def check(sizes: list[int]) -> None:
        if big:
            # The 4.9 MB load capture: keep tiny chunk sizes from making this slow.
            sizes = [max(s, 512) for s in sizes]
        parser, out, errors = chunked(data, sizes)
        assert parser.banner == banner
        assert out == messages
        assert errors == []
        assert parser.buffered == 0

    check()


def _delims(path) -> list[int]:
    data = path.read_bytes()
    out, i = [], data.find(b"\r\n\r\n")
    while i >= 0:
        out.append(i)
        i = data.find(b"\r\n\r\n", i + 1)
    return out


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 4000), max_size=12), seed=st.integers(0, 2**32))
def test_arbitrary_cut_points_in_one_capture(cuts, seed) -> None:
    """Splits exactly on and around CR LF CR LF are the interesting ones."""
    path = CAPTURES / "resync_snapshot.ami"
    data = path.read_bytes()
    rnd = random.Random(seed)
    delims = _delims(path)
    points = sorted({c for c in cuts} | {d + rnd.randint(0, 4) for d in rnd.sample(delims, 20)})
    parser = AMIParser()
    out = []
    prev = 0
    for p in points + [len(data)]:
        out.extend(parser.feed(data[prev:p]))
        prev = max(prev, p)
    assert out == whole(path)[1]


# -- the old Asterisk command output ------------------------------------------

OLD_COMMAND = (
    b"Asterisk Call Manager/1.1\r\n"
    b"Response: Follows\r\n"
    b"Privilege: Command\r\n"
    b"ActionID: ucs-7\r\n"
    b"Name/username              Host            Dyn Forcerport ACL Port     Status\n"
    b"1001                       127.0.0.11           N             5060     OK (1 ms)\n"
    b"System uptime: 2 hours, 4 minutes\n"
    b"\n"
    b"2 sip peers [Monitored: 1 online]\n"
    b"--END COMMAND--\r\n\r\n"
    b"Event: FullyBooted\r\nPrivilege: system,all\r\nStatus: Fully Booted\r\n\r\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_old_response_follows_command_output(size) -> None:
    parser, out, errors = chunked(OLD_COMMAND, [size])
    assert errors == []
    assert parser.banner == "Asterisk Call Manager/1.1"
    assert out[0] == {
        "Response": "Follows",
        "Privilege": "Command",
        "ActionID": "ucs-7",
        "Output": (
            "Name/username              Host            Dyn Forcerport ACL Port     Status\n"
            "1001                       127.0.0.11           N             5060     OK (1 ms)\n"
            "System uptime: 2 hours, 4 minutes\n"
            "\n"
            "2 sip peers [Monitored: 1 online]"
        ),
    }
    assert out[1]["Event"] == "FullyBooted"
    assert len(out) == 2


def test_old_response_follows_with_blank_line_frames_inside() -> None:
    """CLI output may contain CR LF CR LF: the frame still ends at --END COMMAND--."""
    data = (
        b"Response: Follows\r\nActionID: x\r\nline one\r\n\r\nline three\r\n--END COMMAND--\r\n\r\n"
        b"Response: Success\r\nActionID: y\r\n\r\n"
    )
    for size in (1, 5, len(data)):
        parser = AMIParser(expect_banner=False)
        out = []
        for i in range(0, len(data), size):
            out.extend(parser.feed(data[i : i + size]))
        assert [m["ActionID"] for m in out] == ["x", "y"]
        assert out[0]["Output"] == "line one\n\nline three"


def test_modern_command_output_lines_join() -> None:
    msg = parse_frame(b"Response: Success\r\nActionID: 1\r\nMessage: Command output follows\r\nOutput: a\r\nOutput: b: c")
    assert msg["Output"] == "a\nb: c"


def test_invalid_utf8_falls_back_per_line() -> None:
    msg = parse_frame("Event: Newchannel\r\nCallerIDName: Jiří\r\n".encode() + b"Exten: caf\xe9")
    assert msg["CallerIDName"] == "Jiří"
    assert msg["Exten"] == "café"


def test_frame_without_event_or_response_is_refused() -> None:
    with pytest.raises(FrameError, match="Event: or Response:"):
        parse_frame(b"Foo: bar\r\nBaz: 1")


# -- the way out: nothing with CR or LF gets written ---------------------------


@pytest.mark.parametrize(
    "headers, named",
    [
        ({"Channel": "SIP/1001\r\nAction: Hangup"}, "Channel"),
        ({"CallerID": "x\ny"}, "CallerID"),
        ({"Variable": ["A=1", "B=2\r"]}, "Variable"),
        ({"Bad\r\nName": "1"}, "Bad\\r\\nName"),
        ({"Bad Name": "1"}, "Bad Name"),
    ],
)
def test_format_refuses_line_breaks_naming_the_header(headers, named) -> None:
    with pytest.raises(HeaderInjectionError) as e:
        format_action("Originate", "ucs-1", headers)
    assert named in str(e.value)


def test_format_repeats_list_values_and_spells_booleans() -> None:
    assert format_message({"Action": "Originate", "Variable": ["A=1", "B=2"], "Async": True, "X": None}) == (
        b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\nAsync: true\r\n\r\n"
    )


def test_oversized_unterminated_frame_is_reported_once_and_skipped() -> None:
    errors: list[str] = []
    parser = AMIParser(on_error=lambda r, raw: errors.append(r), max_frame=1000, expect_banner=False)
    assert parser.feed(b"Event: Big\r\nData: ") == []
    for _ in range(50):
        assert parser.feed(b"x" * 300) == []
        assert parser.buffered <= 1000
    out = parser.feed(b"\r\n\r\nEvent: Small\r\n\r\n")
    assert out == [{"Event": "Small"}]
    assert len(errors) == 1 and "exceeds" in errors[0]
