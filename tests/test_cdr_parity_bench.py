"""``bench/cdr_parity.py`` run small on the demo's simulator: every call gets
exactly one CDR that agrees with what happened on the PBX, none is left open,
and every agent ends where the PBX says it is.  A correctness check of the
whole server under mixed outcomes; the bench's timings are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "cdr_parity.py"


def test_one_cdr_per_call_none_open_agents_agree(tmp_path: Path) -> None:
    out = tmp_path / "parity.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--calls", "24", "--rate", "8", "--agents", "6", "--acw", "1",
         "--seed", "7", "--json", str(out)],
        capture_output=True, text=True, timeout=240, cwd=ROOT,
    )
    log = proc.stdout + proc.stderr
    assert out.exists(), log
    r = json.loads(out.read_text())

    assert r["generated"] == 24 and r["calls_on_pbx"] == 24, log
    assert r["cdrs_matched"] == 24 and r["missing"] == [] and r["extra"] == [], log
    assert r["duplicated_legs"] == [], log
    assert r["open_in_tracker"] == [] and r["open_cdrs"] == [], log
    assert r["mismatches"] == [], log
    assert r["agent_problems"] == [], log
    # The mix really had calls answered (hung up by either side) and calls nobody answered.
    labels = " | ".join(r["realized"])
    assert "caller hung up" in labels and "agent hung up" in labels and "not answered" in labels, log
    assert r["parity"] is True and proc.returncode == 0, log
