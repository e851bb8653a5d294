"""The demo's own softphone (``[demo] softphone``, on by default): ``twistd ucs --demo``
has a WebRTC line and an agent for it, so anyone trying UCS can take a call in the
browser with no Asterisk and no desk phone. Its line's ``ws_url`` is the simulated
PBX's SIP WebSocket as it listens now, not what an earlier run stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_bar_browser import _start, in_browser_with
from test_bar_browser import pytestmark  # noqa: F401 - skipped without Chromium and Playwright
from test_softphone_sim import SoftUCS
from twisted.internet import defer

import softphonekit
from ucs import demo
from ucs.demo_pbx import SOFTPHONE_DEVICE, SOFTPHONE_NUMBER

in_browser = in_browser_with(*softphonekit.MEDIA)


@pytest.fixture
def ucs(tmp_path: Path) -> Iterator[SoftUCS]:
    """The demo as ``twistd ucs --demo`` runs it, with its SIP WebSocket on any free port."""
    server, web = pytest_twisted.blockon(defer.ensureDeferred(
        _start(tmp_path, demo={"softphone": True, "softphone_port": 0})))
    try:
        yield SoftUCS(server, web)
    finally:
        pytest_twisted.blockon(server.service.stopService())


@in_browser
def test_the_demos_softphone_agent_takes_a_call_in_the_browser(ucs: SoftUCS, browser: Any) -> None:
    line = next(ln for ln in ucs.server.get_directory().lines.values() if ln.device == SOFTPHONE_DEVICE)
    assert line.kind == "webrtc" and line.ws_url == ucs.server.get_demo_pbx().webrtc.url
    bar = softphonekit.open_phone(browser, ucs.base, *demo.SOFTPHONE_USER)
    assert ucs.run(lambda: ucs.sim.lines[SOFTPHONE_DEVICE].registered)

    def ring() -> None:  # a customer dials the softphone's number from outside
        ucs.run(ucs.sim.caller_calls, SOFTPHONE_NUMBER, "420777123456", "Jana Novak")

    first, second = softphonekit.answer_and_talk(bar, ring, received=True)
    assert second["packetsReceived"] > first["packetsReceived"] > 0, "the browser hears the simulated caller"
    assert second["packetsSent"] > first["packetsSent"] > 0
    ringing = [e["args"][0] for e in bar.log() if e["name"] == "onCallRinging"]
    assert ringing and ringing[0]["caller_number"] == "420777123456"
    bar.close()


@pytest_twisted.ensureDeferred
async def test_a_reused_demo_store_gets_the_softphones_new_address(tmp_path: Path) -> None:
    first, _ = await _start(tmp_path, demo={"softphone": True, "softphone_port": 0})
    d = first.get_directory()
    line = next(ln for ln in d.lines.values() if ln.device == SOFTPHONE_DEVICE)
    await d.edit("lines", line.id, {"ws_url": "ws://127.0.0.1:9/ws"})  # where an earlier run listened
    await first.service.stopService()
    again, _ = await _start(tmp_path, demo={"softphone": True, "softphone_port": 0})
    try:
        lines = [ln for ln in again.get_directory().lines.values() if ln.device == SOFTPHONE_DEVICE]
        assert len(lines) == 1 and lines[0].ws_url == again.get_demo_pbx().webrtc.url
        assert again.get_directory().user_by_username(demo.SOFTPHONE_USER[0]).lines == [lines[0].id]
    finally:
        await again.service.stopService()
