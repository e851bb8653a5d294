"""The simulator is faithful where it matters: the same scenario played on
``ucs.sim`` and replayed from the real capture gives the same ``ucs-replay``
conclusions (identifiers and exact timings aside)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ucs.replay import replay
from ucs.sim.scenarios import play

CAPTURES = Path(__file__).resolve().parent / "data" / "ami-captures"
NAMES = sorted(json.loads((CAPTURES / "expected.json").read_text()))


def conclusions(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for call in replay(io.BytesIO(raw)):
        out.append({
            **{k: call[k] for k in (
                "direction", "caller_number", "called_number", "queue", "answered_by", "cause",
                "connected_number", "caller_name", "connected_name", "state",
            )},
            "journey": [(s["Device"], s["DeviceType"], s["Description"]) for s in call["journey"]],
            "legs": sorted((leg["device"], leg["cause"]) for leg in call["legs"] if leg["type"] != "local"),
            "transfers": [t.get("kind") for t in call["transfers"]],
        })
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest_twisted.ensureDeferred
async def test_sim_and_capture_replay_alike(name: str) -> None:
    result = await play(name, CAPTURES)
    real = conclusions((CAPTURES / f"{name}.ami").read_bytes())
    simulated = conclusions(result.raw)
    assert simulated == real
