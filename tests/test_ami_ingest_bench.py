"""``bench/ami_ingest.py``'s second part runs end to end: the whole server, fed
over TCP by ``bench/ami_replay.py``, processes every event of the capture and
finds the same calls as the offline ingest.  Speed is the bench's business,
never asserted here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "ami_ingest.py"


def test_server_part_processes_every_event(captures_dir: Path) -> None:
    capture = captures_dir / "load_mixed.ami"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--server-only", "--repeat", "1", "--capture", str(capture)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out

    processed = re.search(r"events of the stream processed: (\d+) of (\d+) \(.*\): all;", out)
    assert processed, out
    assert processed.group(1) == processed.group(2), out

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import ami_ingest
    finally:
        sys.path.remove(str(ROOT / "bench"))
    banner, body = ami_ingest.capture_body(str(capture))  # the stream as the replay sends it
    events, calls, _ = ami_ingest.ucs_round(ami_ingest.chunks(banner + b"\r\n" + body))
    assert int(processed.group(2)) == events

    summary = re.search(r"UCS server, socket to bus\s*: (\d+) events, (\d+) calls", out)
    assert summary, out
    assert (int(summary.group(1)), int(summary.group(2))) == (events, calls), out
    agents = re.search(r"agents at the end: (.*)", out)
    assert agents and agents.group(1).count("agent") == 3, out
