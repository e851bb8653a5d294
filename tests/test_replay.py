"""ucs-replay on the real Asterisk 20 captures: what physically happened must come out."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ucs.replay import replay

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = ROOT / "tests" / "data" / "ami-captures"
EXPECTED = json.loads((CAPTURES / "expected.json").read_text())
FOREIGN = ROOT / "tests" / "data" / "foreign-ami"
FOREIGN_EXPECTED = json.loads((FOREIGN / "expected.json").read_text())


def run_replay(path: Path, *args: str) -> tuple[list[dict], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ucs.replay", *args, str(path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()], proc.stderr


@pytest.mark.parametrize(
    "folder, name",
    [(CAPTURES, n) for n in sorted(EXPECTED)] + [(FOREIGN, n) for n in sorted(FOREIGN_EXPECTED)],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
def test_capture_reconstructed(folder: Path, name: str) -> None:
    """Every real capture — the lab's matrix on chan_sip and PJSIP, and other
    people's Asterisk 11–13 logs with the options their PBX needs — comes out
    as what physically happened (the captures' expected.json)."""
    want = json.loads((folder / "expected.json").read_text())[name]
    calls, _ = run_replay(folder / f"{name}.ami", *want.get("replay_args", []))
    assert len(calls) == want["calls"]
    if not calls:
        return
    first = calls[0]
    for key in ("direction", "caller_number", "called_number", "queue", "answered_by", "cause"):
        if key in want:
            assert first[key] == want[key], key
    devices = iter(step["Device"] for step in first["journey"])
    assert all(any(d == w for d in devices) for w in want.get("journey_has", [])), first["journey"]
    for call in calls:
        for step in call["journey"]:
            assert set(step) == {"Device", "DeviceType", "Description", "Duration"}
            assert step["DeviceType"] in ("trunk", "queue", "line", "application")
            h, m, s = step["Duration"].split(":")
            assert len(h) >= 2 and len(m) == 2 and len(s) == 2


def test_calls_printed_in_order_of_creation() -> None:
    calls, _ = run_replay(CAPTURES / "resync_snapshot.ami")
    assert [c["created"] for c in calls] == sorted(c["created"] for c in calls)
    answered, abandoned = calls
    assert answered["answered_by"] == "SIP/1001" and answered["cause"] == 3
    assert abandoned["answered_by"] is None and abandoned["cause"] == 3
    assert abandoned["journey"][-1]["Device"] == "Queue:support"
    assert "abandoned" in abandoned["journey"][-1]["Description"]


def test_attended_transfer_details() -> None:
    (call,), _ = run_replay(CAPTURES / "atxfer_complete.ami")
    assert call["connected_number"] == "1003"
    assert call["caller_number_norm"] == "+420777123456"
    legs = {leg["device"]: leg for leg in call["legs"] if leg["type"] != "local"}
    assert legs["SIP/1001"]["cause"] == 8  # Alice transferred the customer away
    assert [s["Device"] for s in call["journey"]] == ["SIP/carrier", "Queue:support", "SIP/1001", "SIP/1003"]
    # The customer talked to Alice 5 s and to Carol after the transfer; the
    # capture's own clock (Queue's TalkTime) makes the trunk leg last 11 s.
    assert call["journey"][0]["Duration"] == "00:00:11"


def test_outgoing_click_to_dial() -> None:
    (call,), _ = run_replay(CAPTURES / "click_to_dial.ami")
    assert call["direction"] == "OUTGOING"
    assert call["called_number"] == "0420777987654"
    assert call["connected"] is not None and call["queue"] is None
    assert [s["DeviceType"] for s in call["journey"]] == ["line", "trunk"]


def test_load_mixed_counts_every_call() -> None:
    calls, _ = run_replay(CAPTURES / "load_mixed.ami")
    # 80 queue callers and 400 calls to the IVR number 6000
    assert len(calls) == 480
    queue_calls = [c for c in calls if c["queue"] == "support"]
    assert len(queue_calls) == 80
    assert len([c for c in queue_calls if c["answered_by"]]) == 3
    assert all(c["direction"] == "INCOMING" for c in calls)


def test_asterisk_11_stream_survives(tmp_path: Path) -> None:
    calls, _ = run_replay(ROOT / "tests" / "data" / "asterisk11_queue_call.ami")
    (call,) = calls
    assert call["queue"] == "support" and call["answered_by"] == "SIP/1001"
    assert [s["Device"] for s in call["journey"]] == ["SIP/carrier", "Queue:support", "SIP/1001"]


def test_garbage_and_truncated_input_exit_zero(tmp_path: Path) -> None:
    data = (CAPTURES / "queue_answered_caller_hangup.ami").read_bytes()
    junk = tmp_path / "junk.ami"
    junk.write_bytes(os.urandom(5000) + b"\r\n\r\nNot: a message\r\n\r\n" + data[: len(data) // 2])
    calls, stderr = run_replay(junk)
    assert all(isinstance(c["journey"], list) for c in calls)
    assert "skipped frame" in stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ucs.replay", str(tmp_path / "nope.ami")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr


class _Chunked(io.RawIOBase):
    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self._data, self._sizes, self._pos, self._i = data, sizes, 0, 0

    def read(self, n: int = -1) -> bytes:
        size = self._sizes[self._i % len(self._sizes)]
        self._i += 1
        chunk = self._data[self._pos:self._pos + size]
        self._pos += len(chunk)
        return chunk


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=20),
       name=st.sampled_from(["atxfer_complete", "blind_transfer_action", "resync_snapshot"]))
def test_any_chunking_gives_the_same_calls(sizes: list[int], name: str) -> None:
    data = (CAPTURES / f"{name}.ami").read_bytes()
    whole = list(replay(io.BytesIO(data)))
    chunked = list(replay(_Chunked(data, sizes)))  # type: ignore[arg-type]
    assert chunked == whole
