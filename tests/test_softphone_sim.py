"""The agent bar's softphone against the simulated PBX (issue 18), in Chromium: the bar
registers the WebRTC line ``PJSIP/webrtc1`` over the simulator's SIP WebSocket (its
account from UCS's directory), a queue call rings in the browser, is answered there,
RTP flows both ways between the browser's WebRTC stack and the simulator's (aiortc:
ICE, DTLS-SRTP), the call is hung up from the browser or by the caller, and the CDR
says who answered and who hung up. Also: a wrong SIP password, a second tab of the
same agent, and a call placed from the bar (its Originate rings the browser first).

The same browser half runs against a real Asterisk in tests/lab/test_softphone_lab.py;
what the simulator's SIP side does on its own is tests/test_sim_webrtc.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_bar_browser import UCS, Bar, _start, in_browser_with
from test_bar_browser import pytestmark  # noqa: F401 - skipped without Chromium and Playwright
from twisted.internet import defer, reactor

import softphonekit
from ucs.constants import Cause
from ucs.sim.lab import demo_lab
from ucs.sim.service import SimService
from ucs.sim.webrtc import add_webrtc_line

SECRET = "sim-webrtc1-pass"
DEVICE = "PJSIP/webrtc1"
AGENT = ("webagent", "web-pass-1")

in_browser = in_browser_with(*softphonekit.MEDIA)


class SoftUCS(UCS):
    """The demo UCS whose simulated PBX has a WebRTC line, and an agent paired with it."""

    line_id: int

    @property
    def phones(self) -> Any:
        return self.server.get_demo_pbx().webrtc.phones

    def coro(self, fn: Any, *args: Any) -> Any:
        return self.run(lambda: defer.Deferred.fromCoroutine(fn(*args)))

    def my_channels(self) -> list[Any]:
        return self.sim.channels_of(DEVICE)

    def media(self) -> list[dict[str, Any]]:
        return self.run(self.phones.stats, DEVICE)  # type: ignore[no-any-return]

    def poll(self, fn: Any, what: str, timeout: float = 15.0) -> Any:
        """``fn()`` (in this thread: it may ask the reactor) until it is true."""
        deadline = time.monotonic() + timeout
        while not (value := fn()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not true within {timeout} s")
            time.sleep(0.1)
        return value

    def cdr(self) -> dict[str, Any]:
        """The stored CDR of the line's (only) call, once written."""
        store = self.server.get_store_proxy()
        found = self.poll(lambda: self.run(store.list_cdrs, devices=[DEVICE]), what="the CDR stored")
        assert len(found) == 1, found
        return found[0]  # type: ignore[no-any-return]


async def _setup(ucs: SoftUCS) -> None:
    d = ucs.server.get_directory()
    line = await d.add("lines", {"device": DEVICE, "name": "This browser", "identifiers": ["browser-1"],
                                 "kind": "webrtc", "ws_url": ucs.server.get_demo_pbx().webrtc.url,
                                 "sip_username": "webrtc1", "sip_password": SECRET})
    ucs.line_id = int(line.id)
    queues = {str(q.id): {"priorities": 0} for q in d.table("queues").values()}
    await d.add("users", {"username": AGENT[0], "password": AGENT[1], "firstname": "Web", "lastname": "Agent",
                          "lines": [line.id], "queues": queues, "locale": "en"})


@pytest.fixture
def ucs(tmp_path: Path) -> Iterator[SoftUCS]:
    sim = demo_lab(reactor, phones=2)
    add_webrtc_line(sim, DEVICE, "Web Agent", secret=SECRET, number="2100")
    sim.dialplan.add("internal", "2100", [("Dial", f"{DEVICE},20,tT"), ("Hangup", "")])
    svc = SimService(port=0, sim=sim, reactor=reactor, webrtc_port=0)
    server, web = pytest_twisted.blockon(defer.ensureDeferred(_start(tmp_path, demo_pbx=svc)))
    u = SoftUCS(server, web)
    try:
        pytest_twisted.blockon(defer.ensureDeferred(_setup(u)))
        yield u
    finally:
        pytest_twisted.blockon(server.service.stopService())


def _talking(ucs: SoftUCS, browser: Any) -> tuple[Bar, Any]:
    """The agent's bar registered, a queue call answered in it, RTP both ways: (bar, caller)."""
    bar = softphonekit.open_phone(browser, ucs.base, *AGENT)
    assert ucs.run(lambda: ucs.sim.lines[DEVICE].registered)
    callers: list[Any] = []

    def ring() -> None:
        callers.append(ucs.run(ucs.sim.caller_calls, "5000", "420777123456", "Jana Novak"))

    first, second = softphonekit.answer_and_talk(bar, ring, received=True)
    assert second["packetsReceived"] > first["packetsReceived"] > 0, "the browser hears the simulator's tone"
    assert second["packetsSent"] > first["packetsSent"] > 0
    assert second["dtls"] == "connected"
    # ... and the simulator's WebRTC peer counts the browser's packets.
    media = ucs.poll(lambda: [m for m in ucs.media() if m["packets_received"] > 20], what="RTP at the simulator")
    assert media[0]["dtls"] == "connected"
    # UCS saw it as any phone's queue call: ringing from the customer, then connected.
    log = bar.log()
    ringing = [e["args"][0] for e in log if e["name"] == "onCallRinging"]
    assert ringing and ringing[0]["caller_number"] == "420777123456"
    bar.wait("onCallConnect")
    return bar, callers[0]


@in_browser
def test_a_queue_call_rings_in_the_browser_is_answered_and_the_browser_hangs_up(ucs: SoftUCS, browser: Any) -> None:
    bar, caller = _talking(ucs, browser)
    (channel,) = ucs.run(ucs.my_channels)
    bar.page.evaluate("window.__ucsSessions[window.__ucsSessions.length - 1].terminate()")  # BYE from the browser
    ucs.wait(lambda: channel.gone and caller.gone, what="both channels gone")
    bar.wait("onSoftphone", where="a.status === 'registered'", count=2)
    bar.wait("onCallHangup")
    cdr = ucs.cdr()
    assert cdr["answered_by"] == DEVICE and cdr["queue"] == "support"
    assert cdr["caller_number"] == "420777123456" and cdr["connected"] is not None
    assert cdr["cause"] == Cause.CALLED_HUNG_UP
    assert ucs.wait(lambda: not ucs.phones.dialogs, what="no SIP dialog left")
    bar.close()


@in_browser
def test_hold_in_the_browser_then_the_caller_hangs_up(ucs: SoftUCS, browser: Any) -> None:
    bar, caller = _talking(ucs, browser)
    (channel,) = ucs.run(ucs.my_channels)
    events: list[tuple[str, str]] = []
    ucs.run(lambda: ucs.sim.subscribe(lambda ev: events.append((ev.name, ev.message().get("Channel", "")))))
    # The browser's SIP stack holds the call (a re-INVITE, sendonly): the channel reports
    # Hold, the caller hears music, and UCS tells the bar the call is held.
    bar.page.evaluate("window.__ucsSessions[window.__ucsSessions.length - 1].hold()")
    ucs.poll(lambda: ("Hold", channel.name) in events and ("MusicOnHoldStart", caller.name) in events, what="held")
    bar.wait("onCallHold")
    bar.page.evaluate("window.__ucsSessions[window.__ucsSessions.length - 1].unhold()")
    ucs.poll(lambda: ("Unhold", channel.name) in events and ("MusicOnHoldStop", caller.name) in events, what="unheld")
    bar.wait("onCallResume")
    before = bar.call("softphoneStats()")
    softphonekit._stats(bar, lambda s: s and s["packetsReceived"] > before["packetsReceived"] + 10)  # talking again

    ucs.run(ucs.sim.bye, caller)  # the customer hangs up: the simulator sends BYE to the browser
    bar.wait("onSoftphone", where="a.status === 'registered'", count=2)
    assert bar.call("softphone()")["call"] is None
    ucs.wait(lambda: not ucs.my_channels(), what="the line's channel gone")
    cdr = ucs.cdr()
    assert cdr["answered_by"] == DEVICE and cdr["cause"] == Cause.CALLER_HUNG_UP
    bar.close()


@in_browser
def test_the_bars_hangup_button_ends_the_softphones_call(ucs: SoftUCS, browser: Any) -> None:
    bar, caller = _talking(ucs, browser)
    bar.call("hangup()")  # through UCS (AMI Hangup): the simulator sends the browser BYE
    bar.wait("onSoftphone", where="a.status === 'registered'", count=2)
    ucs.wait(lambda: caller.gone, what="the caller's channel gone")
    assert ucs.cdr()["answered_by"] == DEVICE
    bar.close()


@in_browser
def test_a_caller_who_gives_up_while_the_browser_rings(ucs: SoftUCS, browser: Any) -> None:
    bar = softphonekit.open_phone(browser, ucs.base, *AGENT)
    caller = ucs.run(ucs.sim.caller_calls, "5000", "420777123456", "Jana Novak")
    bar.wait("onSoftphone", where="a.status === 'ringing'", timeout=15_000)
    ucs.run(ucs.sim.bye, caller)  # CANCEL to the browser
    bar.wait("onSoftphone", where="a.status === 'registered'", count=2)
    ucs.wait(lambda: not ucs.my_channels() and not ucs.phones.dialogs, what="the ringing call gone")
    cdr = ucs.cdr()
    assert cdr["answered_by"] is None and cdr["connected"] is None and cdr["cause"] == Cause.CALLER_HUNG_UP
    bar.close()


@in_browser
def test_a_wrong_sip_password_is_refused_and_the_bar_says_so(ucs: SoftUCS, browser: Any) -> None:
    ucs.coro(ucs.server.get_directory().edit, "lines", ucs.line_id, {"sip_password": "not-the-password"})
    bar = softphonekit.open_phone(browser, ucs.base, *AGENT, registered=False)
    failed = bar.wait("onSoftphone", where="a.status === 'failed'", timeout=15_000)
    assert failed["args"][0]["status"] == "failed"
    assert not ucs.run(lambda: ucs.sim.lines[DEVICE].registered)
    assert bar.call("softphone()")["status"] == "failed"
    bar.close()


@in_browser
def test_a_second_tab_of_the_same_agent_does_not_register_a_second_phone(ucs: SoftUCS, browser: Any) -> None:
    bar = softphonekit.open_phone(browser, ucs.base, *AGENT)
    assert ucs.phones.registrations == 1
    # The same agent opens the CRM in a second tab (the same browser profile) and logs in.
    tab = Bar.__new__(Bar)
    tab.context, tab.page, tab.errors = bar.context, bar.context.new_page(), []
    tab.page.goto(f"{ucs.base}/demo/")
    tab.wait("onCredentials")
    tab.page.fill("[data-ref=loginUser]", AGENT[0])
    tab.page.fill("[data-ref=loginPass]", AGENT[1])
    tab.page.click("[data-ref=loginBtn]")
    tab.wait("onReady")  # already paired with the line: straight to READY
    # The tab knows the phone lives in the first tab (one Web Lock per line) and starts none.
    tab.wait("onSoftphone", where="a.status === 'otherTab'", timeout=15_000)
    assert ucs.phones.registrations == 1, "the second tab registered a second phone"
    bar.close()


@in_browser
def test_a_call_placed_from_the_bar_rings_the_browser_first_then_the_extension(ucs: SoftUCS, browser: Any) -> None:
    ucs.run(lambda: ucs.sim.phone("SIP/1001").set_behaviour(answer_after=0.5))
    bar = softphonekit.open_phone(browser, ucs.base, *AGENT)
    bar.page.evaluate("() => { window.__dialed = window.ucsOperator.dial('1001').then(c => c, e => ({error: e.message})); }")
    bar.wait("onSoftphone", where="a.status === 'ringing'", timeout=15_000)  # the Originate's first leg
    bar.call("answer()")
    bar.wait("onSoftphone", where="a.status === 'connected'", timeout=15_000)
    dialed = bar.page.evaluate("window.__dialed")
    assert "error" not in (dialed or {}), dialed
    ucs.wait(lambda: any(c.bridge is not None and any(o.name.startswith("SIP/1001-") for o in c.bridge.channels)
                         for c in ucs.my_channels()), what="the browser bridged with SIP/1001")
    stats = softphonekit._stats(bar, lambda s: s and s["packetsSent"] > 0 and s["packetsReceived"] > 0)
    assert stats["dtls"] == "connected"
    bar.wait("onCallConnect")
    bar.close()


@in_browser
def test_a_call_placed_by_the_browsers_sip_stack_reaches_an_extension(ucs: SoftUCS, browser: Any) -> None:
    """What the softphone's own outgoing calls will be: JsSIP's INVITE, challenged, then
    the line's dialplan dials 1001, which answers: the browser and 1001 talk."""
    ucs.run(lambda: ucs.sim.phone("SIP/1001").set_behaviour(answer_after=0.5))
    bar = softphonekit.open_phone(browser, ucs.base, *AGENT)
    bar.page.evaluate("""() => {
        const s = window.__ucsUA.call("sip:1001@127.0.0.1", {mediaConstraints: {audio: true, video: false}});
        window.__out = s;
    }""")
    bar.until("window.__out.isEstablished()", 15_000)
    (mine,) = ucs.run(ucs.my_channels)
    assert (mine.exten, mine.cid_num) == ("1001", "2100")
    ucs.wait(lambda: mine.bridge is not None and any(o.name.startswith("SIP/1001-") for o in mine.bridge.channels),
             what="the browser bridged with SIP/1001")
    stats = """window.__out.connection.getStats().then(r => {
        let sent = 0, received = 0;
        r.forEach(x => { if (x.type === "outbound-rtp") sent += x.packetsSent; if (x.type === "inbound-rtp") received += x.packetsReceived; });
        return {sent, received};
    })"""
    ucs.poll(lambda: (s := bar.page.evaluate(stats))["sent"] > 10 and s["received"] > 10, what="RTP both ways")
    # UCS follows it as the agent's outgoing call (the bar shows it), and the CDR has it.
    bar.wait("onCallConnect")
    bar.page.evaluate("window.__out.terminate()")
    ucs.wait(lambda: not ucs.my_channels() and not ucs.phones.dialogs, what="the call over")
    cdr = ucs.cdr()
    assert cdr["answered_by"] == "SIP/1001" and cdr["called_number"] == "1001"
    assert cdr["cause"] == Cause.CALLER_HUNG_UP
    bar.close()


#: The loudest 20 ms of a second at the simulator: Chromium's fake microphone beeps
#: (seen at about 0.4 of full scale); a muted track sends silence (seen at 0.0002).
SOUND, SILENCE = 0.01, 0.001


def _level(ucs: SoftUCS, test: Any, what: str) -> dict[str, Any]:
    """The simulator's media stats of the line's call, once ``test(stats)`` holds."""
    return ucs.poll(lambda: next((m for m in ucs.media() if test(m)), None), what=what)  # type: ignore[no-any-return]


@in_browser
def test_mute_in_the_bar_is_silence_at_the_far_end(ucs: SoftUCS, browser: Any) -> None:
    bar, _caller = _talking(ucs, browser)
    # Talking: the simulator hears the browser's microphone (the fake device's beeps).
    _level(ucs, lambda m: m["level"] > SOUND, "the simulator hears the browser's microphone")
    call = bar.call("calls()")[0]
    tracker = ucs.server.get_call_tracker()

    bar.call("mute()")
    bar.wait("onCallMute")
    assert bar.call("softphone()")["muted"] is True
    assert ucs.run(lambda: tracker.call_of(call["uniqueid"]).connected_muted) is True
    # The RTP goes on (the call is up), but what it carries is silence.
    muted = _level(ucs, lambda m: m["level"] < SILENCE, "the simulator hears silence from the muted browser")
    later = _level(ucs, lambda m: m["packets_received"] > muted["packets_received"] + 25 and m["level"] < SILENCE,
                   "RTP still flowing, silent")
    assert later["level"] < SILENCE

    bar.call("mute()")
    bar.wait("onCallUnmute")
    assert bar.call("softphone()")["muted"] is False
    assert ucs.run(lambda: tracker.call_of(call["uniqueid"]).connected_muted) is False
    _level(ucs, lambda m: m["level"] > SOUND, "the simulator hears the browser again")
    bar.close()


@in_browser
def test_the_bars_keys_reach_the_far_end_as_telephone_events(ucs: SoftUCS, browser: Any) -> None:
    """The simulator offers telephone-event/8000 as Asterisk does for ``webrtc1``
    (dtmf_mode rfc4733): the bar's dtmf() goes in the call's RTP, and the simulator
    reports each key on the line's channel over the AMI as Asterisk 20 does."""
    pbx = ucs.server.get_demo_pbx()
    watch = ucs.coro(softphonekit.AMIWatch().start, *pbx.address(), *pbx.credentials)
    try:
        bar, caller = _talking(ucs, browser)
        (channel,) = ucs.run(ucs.my_channels)
        assert bar.call('dtmf("159#")') == {"sent": "159#", "via": "softphone"}
        ends = ucs.poll(lambda: len(ucs.run(watch.keys, channel.name)) >= 4 and ucs.run(watch.keys, channel.name),
                        what="four DTMFEnd on the line's channel")
        assert [e["Digit"] for e in ends] == ["1", "5", "9", "#"]
        assert all(100 <= int(e["DurationMs"]) <= 140 for e in ends), ends  # insertDTMF's 120 ms, on the wire
        begins = ucs.run(watch.keys, channel.name, "DTMFBegin")
        assert [e["Digit"] for e in begins] == ["1", "5", "9", "#"]
        # Each key: DTMFBegin, then its DTMFEnd; the fields in Asterisk's order.
        keyed = [(e["Event"], e["Digit"]) for e in ucs.run(lambda: list(watch.events))
                 if e.get("Event", "").startswith("DTMF") and e.get("Channel") == channel.name]
        assert keyed == [(ev, d) for d in "159#" for ev in ("DTMFBegin", "DTMFEnd")]
        assert list(ends[0])[-3:] == ["Digit", "DurationMs", "Direction"]
        assert not ucs.run(watch.keys, caller.name), "no key from the caller's side"
        # The keypad's buttons go the same way.
        bar.page.click("[data-act=dtmf]")
        bar.page.click("[data-dtmf='*']")
        ucs.poll(lambda: [e["Digit"] for e in ucs.run(watch.keys, channel.name)][4:] == ["*"], what="* from the keypad")
        bar.close()
    finally:
        ucs.run(watch.stop)
