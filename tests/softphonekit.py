"""The softphone's browser half (issue 18), shared by the lab test (a real Asterisk) and
the simulator's: Chromium opens UCS's demo CRM page, the agent logs in and picks the
WebRTC line, the bar registers it, a call rings in the browser, is answered there
(``answer()``), and the RTP counters of ``getStats()`` rise while it talks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from test_bar_browser import ARGS, CHROMIUM, Bar

#: Chromium's media flags: a fake microphone, and no permission prompt.
MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


class _Base:
    def __init__(self, base: str) -> None:
        self.base = base


#: Keeps the browser's JsSIP user agent and its sessions where a test can reach them
#: (``window.__ucsUA``, ``window.__ucsSessions``): the bar keeps them to itself, and "the
#: browser hangs up / holds / places a call" is its SIP stack doing so.  Patched in as the
#: bar's JsSIP script loads, before the bar makes its user agent.
REACH_JSSIP = """
new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) {
        if (n.tagName !== "SCRIPT" || !n.hasAttribute("data-ucs-jssip")) continue;
        n.addEventListener("load", () => {
            const UA = window.JsSIP.UA, start = UA.prototype.start, emit = UA.prototype.emit;
            UA.prototype.start = function () { window.__ucsUA = this; return start.apply(this, arguments); };
            UA.prototype.emit = function (name, e) {
                if (name === "newRTCSession") (window.__ucsSessions = window.__ucsSessions || []).push(e.session);
                return emit.apply(this, arguments);
            };
        });
    }
}).observe(document, {childList: true, subtree: true});
"""


class PhoneBar(Bar):
    """The demo page with the bar, its JsSIP within the test's reach (:data:`REACH_JSSIP`)."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 760})
        self.context.add_init_script(REACH_JSSIP)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(f"{base}/demo/")
        self.wait("onCredentials")


def open_phone(browser: Any, base: str, username: str, password: str, *, registered: bool = True) -> Bar:
    """The demo CRM page with the bar, the agent logged in on the WebRTC line; with
    ``registered``, once the bar says its phone registered."""
    bar = PhoneBar(browser, base)
    bar.page.fill("[data-ref=loginUser]", username)
    bar.page.fill("[data-ref=loginPass]", password)
    bar.page.click("[data-ref=loginBtn]")
    bar.wait("onIdentify")
    bar.page.click("[data-act=pick-phone]")
    bar.wait("onReady")
    if registered:
        bar.wait("onSoftphone", where="a.status === 'registered'", timeout=15_000)
        assert bar.page.evaluate("!!window.JsSIP"), "JsSIP loaded for the WebRTC line"
    return bar


def answer_and_talk(bar: Bar, ring: Callable[[], None], *, received: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """``ring()`` calls the line; it rings in the browser, is answered there, and its RTP
    counters rise (sent, and with ``received`` also received): the stats before and after."""
    ring()
    bar.wait("onSoftphone", where="a.status === 'ringing'", timeout=15_000)
    bar.call("answer()")
    bar.wait("onSoftphone", where="a.status === 'connected'", timeout=15_000)
    first = _stats(bar, lambda s: s and s["packetsSent"] > 0 and (not received or s["packetsReceived"] > 0))
    time.sleep(1.5)
    second = _stats(bar, lambda s: s and s["packetsSent"] > first["packetsSent"]
                    and (not received or s["packetsReceived"] > first["packetsReceived"]))
    return first, second


def run(base: str, username: str, password: str, ring: Callable[[], None], *,
        received: bool = False) -> dict[str, Any]:
    """The whole scenario in this (non-reactor) thread; ``ring()`` makes the call to the
    WebRTC line. Returns what the bar saw: the stats before and after, its callbacks."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + MEDIA)
        try:
            bar = open_phone(browser, base, username, password)
            first, second = answer_and_talk(bar, ring, received=received)
            log = bar.log()
            bar.close()
            return {"first": first, "second": second, "log": log}
        finally:
            browser.close()


def _stats(bar: Bar, ok: Callable[[Any], Any], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = bar.call("softphoneStats()")
        if ok(stats):
            return stats  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"the softphone's RTP counters: {json.dumps(stats)}")
        time.sleep(0.2)


@contextmanager
def chromium(*extra: str) -> Iterator[Any]:
    """Chromium with a fake microphone that needs no permission prompt."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + MEDIA + list(extra))
        try:
            yield browser
        finally:
            browser.close()


def registered_bar(browser: Any, base: str, username: str, password: str) -> Bar:
    """The demo CRM page, the agent logged in on the WebRTC line, the softphone registered."""
    bar = Bar(browser, _Base(base))  # type: ignore[arg-type]
    bar.page.fill("[data-ref=loginUser]", username)
    bar.page.fill("[data-ref=loginPass]", password)
    bar.page.click("[data-ref=loginBtn]")
    bar.wait("onIdentify")
    bar.page.click("[data-act=pick-phone]")
    bar.wait("onReady")
    bar.wait("onSoftphone", where="a.status === 'registered'", timeout=15_000)
    return bar


def rising(bar: Bar, *, received: bool = True, timeout: float = 10.0) -> dict[str, Any]:
    """The call's RTP counters once they rose (sent, and ``received``) over a second."""
    first = _stats(bar, lambda s: s and s["packetsSent"] > 0 and (not received or s["packetsReceived"] > 0), timeout)
    return _stats(bar, lambda s: s and s["packetsSent"] > first["packetsSent"] + 20
                  and (not received or s["packetsReceived"] > first["packetsReceived"] + 20), timeout)


def matching(bar: Bar, name: str, where: str) -> int:
    """How many times callback ``name`` fired with a first argument ``a`` such that ``where``."""
    return int(bar.page.evaluate(f"window.ucsDemoLog.filter(e => e.name === {json.dumps(name)} && ((a) => {where})(e.args[0])).length"))



class AMIWatch:
    """A second AMI client on a real TCP socket (UCS's own :class:`ucs.ami.protocol.AMIProtocol`,
    nothing skipped), logged in with ``Events: dtmf``: what the PBX reports of the keys.
    UCS's link drops ``DTMFBegin``/``DTMFEnd`` unread (``ucs.pbx.pbx.NOISE_EVENTS``), so a
    test that asks what the PBX said about the keys asks here.  Reactor thread only."""

    def __init__(self) -> None:
        self.events: list[dict[str, str]] = []
        self.proto: Any = None

    def eventReceived(self, message: dict[str, str]) -> None:
        self.events.append(message)

    def connectionLost(self, reason: Any) -> None:
        pass

    async def start(self, host: str, port: int, username: str, secret: str) -> AMIWatch:
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        from ucs.ami.protocol import AMIProtocol

        self.proto = AMIProtocol(self, clock=reactor)  # type: ignore[arg-type]
        await connectProtocol(TCP4ClientEndpoint(reactor, host, port), self.proto)
        await self.proto.whenReady()
        await self.proto.sendAction("Login", {"Username": username, "Secret": secret, "Events": "dtmf"})
        return self

    def keys(self, channel_prefix: str, event: str = "DTMFEnd") -> list[dict[str, str]]:
        """``event``s received on the channels whose name starts with ``channel_prefix``."""
        return [e for e in self.events if e.get("Event") == event and e.get("Channel", "").startswith(channel_prefix)
                and e.get("Direction") == "Received"]

    def stop(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.loseConnection()
