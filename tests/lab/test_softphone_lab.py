"""The agent bar's softphone against the real Asterisk (issue 18): Chromium registers as
the lab's ``PJSIP/webrtc1`` through the bar (the SIP account from UCS's directory, over
the bar's socket), a customer's call to 2100 rings in the browser, is answered there
(DTLS-SRTP), and the browser's RTP counters rise."""

from __future__ import annotations

import pytest_twisted
from labkit import Lab, LabUCS, Phones
from test_bar_browser import pytestmark  # noqa: F401 - skipped without Chromium and Playwright
from twisted.internet import reactor, threads

import softphonekit


@pytest_twisted.ensureDeferred
async def test_the_bar_is_the_phone(lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    d = ucs.server.get_directory()
    line = await d.add("lines", {"device": "PJSIP/webrtc1", "name": "This browser", "identifiers": ["browser-1"],
                                 "kind": "webrtc", "ws_url": f"ws://127.0.0.1:{lab.http_port}/ws",
                                 "sip_username": "webrtc1", "sip_password": "labwebrtc1"})
    await d.add("users", {"username": "webagent", "password": "lab-pass", "firstname": "Web", "lastname": "Agent",
                          "lines": [line.id], "locale": "en"})
    base = ucs.server.get_web_service().url.rstrip("/")

    registered: list[str] = []

    def ring() -> None:
        # Registered now: Asterisk has the browser's contact (over the WebSocket) for webrtc1.
        registered.extend(c for c in lab.cli("pjsip show contacts").splitlines() if "webrtc1/" in c)
        threads.blockingCallFromThread(reactor, phones.customer, "2100", 8000)

    seen = await threads.deferToThread(softphonekit.run, base, "webagent", "lab-pass", ring)
    assert seen["second"]["packetsSent"] > seen["first"]["packetsSent"] > 0
    assert seen["second"]["dtls"] == "connected"
    assert registered, "webrtc1 registered over the WebSocket"
    # UCS follows the call on the line too: the bar shows it ringing from the customer, then connected.
    ringing = [e["args"][0] for e in seen["log"] if e["name"] == "onCallRinging"]
    assert ringing and ringing[0]["caller_number"] == "420777123456"
    assert "onCallConnect" in [e["name"] for e in seen["log"]]
    assert not [w for w in ucs.warnings if "labwebrtc1" in w]
