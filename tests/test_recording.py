"""Recording calls (issue 17): MixMonitor from the API and per queue, on the simulated
Asterisk over a real AMI link, the CDR, and fetching the file over HTTP with a ticket."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_control_api import Lines, session
from test_control_stack import BOB, Stack, started

from ucs.api.registry import Registry
from ucs.api.session import Session
from ucs.calls.control_api import register
from ucs.calls import recording_api
from ucs.calls.recording import local_path
from ucs.constants import SessionState
from ucs.directory.model import Queue, User
from ucs.error import InvalidState, NotFound, PermissionDenied


class QueueLines(Lines):
    def __init__(self, record: bool = False) -> None:
        super().__init__()
        self.queues = {5: Queue(5, "Support", "support", record=record)}

    def queue_by_asterisk_name(self, name: str) -> Queue | None:
        return next((q for q in self.queues.values() if q.asterisk_name == name), None)


async def rec_stack(tmp_path: Path, record: bool = False) -> tuple[Stack, Registry, recording_api.RecordingLinks]:
    s = await started(directory=QueueLines(record))
    s.control.record_directory = str(tmp_path)
    links = recording_api.RecordingLinks(s.clock, str(tmp_path), lifetime=60)
    registry = Registry()
    register(registry, s.control)
    recording_api.register(registry, s.control, links)
    return s, registry, links


@pytest_twisted.ensureDeferred
async def test_record_and_stop_from_the_api(tmp_path: Path) -> None:
    s, api, links = await rec_stack(tmp_path)
    try:
        me = session()

        def call(name: str, args: Any = None) -> Any:
            return s.settle(api.call(me, name, args))  # type: ignore[arg-type]

        with pytest.raises(InvalidState, match="there is no call on SIP/1001"):
            await call("call.record")
        incoming = await s.incoming()
        assert incoming.recorded is False
        with pytest.raises(InvalidState, match="not being recorded"):
            await call("call.stopRecord")
        out = await call("call.record")
        assert out["recording"] is True and out["recorded"] is True
        (rec,) = out["recordings"]
        assert rec["file"].startswith(f"ucs-{incoming.uniqueid}-") and rec["file"].endswith(".wav")
        assert rec["id"].startswith("0x") and rec["channel"].startswith("SIP/1001-")
        agent = s.sim_device("SIP/1001")[0]
        assert agent.vars["MIXMONITOR_FILENAME"] == f"{tmp_path}/{rec['file']}"
        assert ("call.change", incoming) in s.events
        with pytest.raises(InvalidState, match="already being recorded"):
            await call("call.record")
        await s.advance(3)
        out = await call("call.stopRecord")
        assert out["recording"] is False and out["recorded"] is True and out["recordings"][0]["stopped"] is not None
        wav = (tmp_path / rec["file"]).read_bytes()
        assert wav[:4] == b"RIFF" and wav[8:16] == b"WAVEfmt " and struct.unpack("<I", wav[40:44])[0] == 3 * 16000
        # Recording again, and the agent hangs up: the file is closed without a MixMonitorStop.
        await call("call.record")
        await call("call.hangup")
        await s.advance(0.5)
        done = s.ended.calls[incoming.uniqueid]
        assert done.recorded and not done.to_dict()["recording"] and len(done.recordings) == 2
        assert (tmp_path / done.recordings[1]["file"]).exists()

        # The link: for the agent whose phone was in the call, not for another agent.
        link = await call("recording.url", [incoming.uniqueid])
        assert link["file"] == done.recordings[1]["file"] and link["url"].startswith("/recording/")
        assert len(link["url"]) > len("/recording/") + 40
        assert links.redeem(link["url"].rsplit("/", 1)[1]) == str(tmp_path / link["file"])
        other = Session("s9", user=User(9, "bob"), state=SessionState.READY, line=BOB)
        with pytest.raises(PermissionDenied):
            await s.settle(api.call(other, "recording.url", [incoming.uniqueid]))
        with pytest.raises(NotFound, match="is not a recording of call"):
            await call("recording.url", [incoming.uniqueid, "../etc/passwd"])
        s.clock.advance(61)
        assert links.redeem(link["url"].rsplit("/", 1)[1]) is None
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_queue_that_records_its_calls(tmp_path: Path) -> None:
    s, api, _ = await rec_stack(tmp_path, record=True)
    try:
        incoming = await s.incoming()
        await s.advance(0.5)
        assert incoming.recording and incoming.recorded
        (rec,) = incoming.recordings
        assert rec["channel"].startswith("SIP/1001-")
        await s.settle(api.call(session(), "call.hangup"))
        await s.advance(0.5)
        assert (tmp_path / rec["file"]).exists()
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_queue_without_record_is_not_recorded(tmp_path: Path) -> None:
    s, _, _ = await rec_stack(tmp_path, record=False)
    try:
        incoming = await s.incoming()
        await s.advance(0.5)
        assert not incoming.recorded and incoming.recordings == []
    finally:
        await s.stop()


def test_local_path_refuses_anything_but_a_recording(tmp_path: Path) -> None:
    (tmp_path / "ucs-1.2-1.3-1.wav").write_bytes(b"RIFF")
    assert local_path(str(tmp_path), "ucs-1.2-1.3-1.wav") == str(tmp_path / "ucs-1.2-1.3-1.wav")
    for bad in ("../ucs-1.wav", "/etc/passwd", "ucs-1/../../x.wav", "ucs-..wav/..", "x.wav", "ucs-2.wav"):
        with pytest.raises(NotFound):
            local_path(str(tmp_path), bad)
