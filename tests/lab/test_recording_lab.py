"""Recording on the real Asterisk (issue 17): the agent starts and stops recording
from the bar (``call.record`` / ``call.stopRecord`` over the WebSocket), Asterisk's
MixMonitor writes the file where UCS told it to, ``MixMonitorStart`` and
``MixMonitorStop`` reach UCS, and the CDR says the call was recorded and names
the file; a recording still running when the customer hangs up ends with no
``MixMonitorStop`` (app_mixmonitor.c) and its file is complete too."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from labkit import Lab, LabUCS, Phones, phones_of
from test_matrix_lab import BOTH, CALLER_HUNG_UP, answered_queue_call, hung_up

from ucs.pbx.observer import PBXObserver


class MixMonitorEvents(PBXObserver):
    """The MixMonitor events the PBX model applied (``Channel.recording``)."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def channel_updated(self, ch: Any, msg: Any) -> None:
        if msg.get("Event", "").startswith("MixMonitor"):
            self.seen.append(dict(msg))


@pytest.mark.parametrize("driver", BOTH)
@pytest_twisted.ensureDeferred
async def test_record_from_the_bar(driver: str, lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    folder = lab.run / "recordings"
    control = ucs.server.get_call_control()
    control.record_directory = str(folder)
    ucs.server.get_recording_links().directory = str(folder)
    events = MixMonitorEvents()
    ucs.server.get_pbx().observers.append(events)

    a = phones_of(lab, driver)["a"]
    bar = await answered_queue_call(ucs, phones, a, talk_ms=9000)
    first = await bar.call("call.record")
    assert first["recording"] is True and first["recorded"] is True
    (rec,) = first["recordings"]
    assert rec["channel"].startswith(a.device + "-") and rec["id"].startswith("0x")
    await bar.event("call.change", where=lambda d: d.get("recording") is True)
    await ucs.until(lambda: (folder / rec["file"]).exists(), f"Asterisk writes {folder / rec['file']}")
    stopped = await bar.call("call.stopRecord")
    assert stopped["recording"] is False and stopped["recorded"] is True
    await bar.event("call.change", where=lambda d: d.get("recording") is False and d.get("recorded"))
    assert [e["Event"] for e in events.seen] == ["MixMonitorStart", "MixMonitorStop"]
    assert all(e["Channel"] == rec["channel"] for e in events.seen)

    # Again, and the customer hangs up while it records: no MixMonitorStop then.
    second = await bar.call("call.record")
    end = await hung_up(bar, CALLER_HUNG_UP)
    assert [e["Event"] for e in events.seen] == ["MixMonitorStart", "MixMonitorStop", "MixMonitorStart"]
    assert end["recorded"] is True and end["recording"] is False
    files = [r["file"] for r in second["recordings"]]
    cdr = await ucs.cdr(end["uniqueid"])
    assert cdr["data"]["recorded"] is True and [r["file"] for r in cdr["data"]["recordings"]] == files
    for name in files:
        # A WAV (its header at least: how much audio depends on what sipp sent).
        await ucs.until(lambda: (folder / name).exists() and (folder / name).stat().st_size >= 44, f"{name} written")
        assert (folder / name).read_bytes()[:4] == b"RIFF"
    print("recordings:", {p.name: p.stat().st_size for p in folder.iterdir()})
    link = await bar.call("recording.url", end["uniqueid"])
    assert link["file"] == files[-1] and link["url"].startswith("/recording/")
    assert ucs.server.get_recording_links().redeem(link["url"].rsplit("/", 1)[1]) == str(folder / files[-1])
    assert not [w for w in ucs.warnings if "MixMonitor" in w or "record" in w], ucs.warnings
