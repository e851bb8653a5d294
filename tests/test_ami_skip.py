"""Dialplan noise dropped by the parser before decoding: nothing else changes."""

from pathlib import Path

from hypothesis import given, settings, strategies as st

from ucs.ami.message import AMIParser
from ucs.pbx.pbx import NOISE_EVENTS

CAPTURE = Path(__file__).resolve().parent / "data" / "ami-captures" / "atxfer_complete.ami"


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=1, max_value=300))
def test_skipping_noise_drops_only_noise(chunk: int) -> None:
    data = CAPTURE.read_bytes()
    everything = AMIParser().feed(data)
    parser = AMIParser(skip_events=NOISE_EVENTS)
    kept = [m for i in range(0, len(data), chunk) for m in parser.feed(data[i:i + chunk])]
    assert kept == [m for m in everything if m.get("Event") not in NOISE_EVENTS]
    assert parser.skipped == sum(1 for m in everything if m.get("Event") in NOISE_EVENTS) > 0
