"""``ucs-replay FILE.ami``: what UCS makes of a raw AMI capture.

Support engineers run it on customers' AMI logs, so it goes through the real
parser, PBX model and call tracker, and it never ends in a traceback: a
malformed frame is reported on stderr and skipped, an event the model cannot
apply is counted and skipped.  Output: one JSON object per call, in order of
the call's creation (see DESIGN.md, "Stable surfaces").
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

from ucs.ami.message import AMIParser
from ucs.calls.call import Call
from ucs.calls.numbers import DeviceClassifier, NumberNormalizer
from ucs.calls.tracker import CallObserver, CallTracker
from ucs.pbx.pbx import NOISE_EVENTS, PBX
from ucs.pbx.wireclock import WireClock

CHUNK = 1 << 16


class _Collect(CallObserver):
    def __init__(self) -> None:
        self.ended: list[Call] = []

    def call_ended(self, call: Call) -> None:
        if not call.merged_into:  # a pickup's dialling is part of the call it picked up
            self.ended.append(call)


def replay(stream: BinaryIO, *, country_code: str = "420", dial_prefix: str = "",
           trunks: list[str] | None = None, lines: list[str] | None = None,
           errors: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the calls of an AMI byte stream as dictionaries, ended ones and
    those still up when the stream ends, in order of creation."""
    errors = errors if errors is not None else []
    clock = WireClock()
    pbx = PBX(clock)
    collected = _Collect()
    tracker = CallTracker(
        pbx, clock, DeviceClassifier(trunks or (), lines or ()), NumberNormalizer(country_code, dial_prefix),
        observers=[collected],
    )
    pbx.observers.append(tracker)
    parser = AMIParser(on_error=lambda reason, raw: errors.append(f"skipped frame: {reason}"),
                       skip_events=NOISE_EVENTS)
    failures = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        for msg in parser.feed(chunk):
            clock.observe(msg)
            try:
                pbx.feed(msg)
            except Exception as e:  # never a traceback on a customer's log
                failures += 1
                if failures <= 20:
                    errors.append(f"event {msg.get('Event')!r} could not be applied: {e!r}")
    calls = collected.ended + tracker.active_calls()
    calls.sort(key=lambda c: (c.created, c.id))
    now = clock.seconds()
    for call in calls:
        d = call.to_dict(now)
        if call.monitors:  # who monitored it (ChanSpy), as its CDR keeps it
            d["monitors"] = [dict(m) for m in call.monitors]
        yield {
            "uniqueid": d.pop("uniqueid"),
            "direction": d.pop("direction"),
            "caller_number": d.pop("caller_number"),
            "called_number": d.pop("called_number"),
            "queue": d.pop("queue"),
            "answered_by": d.pop("answered_by"),
            "cause": d.pop("cause"),
            "journey": d.pop("journey"),
            **d,
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ucs-replay",
        description="Replay a raw AMI capture through UCS's parser, PBX model and call "
        "tracker; print one JSON object per call.",
    )
    ap.add_argument("file", help="raw AMI bytes as Asterisk sent them ('-' for stdin)")
    ap.add_argument("--country-code", default="420", help="for E.164 normalisation (default 420)")
    ap.add_argument("--dial-prefix", default="", help="outside-line prefix to strip before normalising")
    ap.add_argument("--trunk", action="append", default=[], metavar="PATTERN",
                    help="device pattern that is a trunk, e.g. 'SIP/carrier*' (repeatable); "
                    "default: devices whose name is not all digits")
    ap.add_argument("--line", action="append", default=[], metavar="PATTERN",
                    help="device pattern that is a phone line, e.g. 'SIP/ddddd*' (repeatable; "
                    "checked before --trunk): phones whose names are not numbers; "
                    "the command-line twin of [calls] lines")
    args = ap.parse_args(argv)
    errors: list[str] = []
    try:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    except OSError as e:
        print(f"ucs-replay: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    with stream:
        out = sys.stdout
        for call in replay(stream, country_code=args.country_code, dial_prefix=args.dial_prefix,
                           trunks=args.trunk, lines=args.line, errors=errors):
            out.write(json.dumps(call, ensure_ascii=False) + "\n")
    for line in errors:
        print(f"ucs-replay: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
