"""The bar's softphone (issue 18) in real Chromium, where no media peer is needed: the
demo UCS (simulated PBX) for everything but SIP, and :mod:`sipws`, a tiny SIP-over-
WebSocket registrar on a real socket, as the WebRTC line's ``ws_url``, so that the bar's
own JsSIP registers, rings and reconnects for real and what it sent can be counted.

- the microphone permission refused: explained on the bar (en, cs), nothing registered;
- a registration Asterisk refuses: shown, with a Retry;
- the microphone and speaker lists, a choice kept, a wrong one refused with what is accepted;
- the ringing sound: the ring test plays the chosen sound; a call rings with it, stops when
  the caller gives up; UCS's click-to-dial (Call-Info answer-after=0) is answered, not rung;
- a second tab of the same agent does not register a second phone (its Answer answers in
  the tab that has it), and takes over when the first tab goes;
- a dropped WebSocket (a network change) is reconnected and registered again, and the
  browser's ``online`` event registers again at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from test_bar_browser import ARGS, UCS, Bar, in_browser_with, ucs  # noqa: F401 - the fixture
from twisted.internet import defer

from sipws import Registrar
from softphonekit import matching
from ucs import demo

FAKE_MEDIA = ["--use-fake-device-for-media-stream"]
#: Allowed without asking, as the lab does: a fake microphone and no prompt.
FAKE_UI = ["--use-fake-ui-for-media-stream"]


_open: list[Registrar] = []


@pytest.fixture(autouse=True)
def _registrars_stopped() -> Iterator[None]:
    """Each test's registrar stops listening after it, whatever happened."""
    yield
    while _open:
        pytest_twisted.blockon(defer.maybeDeferred(_open.pop().stop))


def on_webrtc(bar: Bar, *, working: bool = False) -> None:
    """Agent 1 logs in and picks the browser's own line (``working``: the agent works in
    another tab already, and this one joins it on that line at once)."""
    user, password = demo.user_of(1)
    bar.page.fill("[data-ref=loginUser]", user)
    bar.page.fill("[data-ref=loginPass]", password)
    bar.page.click("[data-ref=loginBtn]")
    if not working:
        bar.wait("onIdentify")
        bar.page.click("[data-act=pick-phone][data-arg=browser-1]")
    bar.wait("onReady")


def page(browser: Any, ucs: UCS, *, mic: bool = True, context: Any = None, query: str = "") -> Bar:  # noqa: F811
    """A demo page; ``mic``: the page may use the microphone (playwright's permission)."""
    bar = Bar.__new__(Bar)
    bar.context = context or browser.new_context(viewport={"width": 1280, "height": 900},
                                                 permissions=["microphone"] if mic else [])
    bar.page = bar.context.new_page()
    bar.errors = []
    bar.page.on("pageerror", lambda e: bar.errors.append(str(e)))
    bar.page.goto(f"{ucs.base}/demo/{query}")
    bar.wait("onCredentials")
    return bar


def run(ucs: UCS, fn: Any, *args: Any) -> Any:  # noqa: F811
    return ucs.run(fn, *args)


def registered(bar: Bar) -> None:
    bar.wait("onSoftphone", where="a.status === 'registered'", timeout=15_000)


@in_browser_with(*FAKE_MEDIA)
def test_a_refused_microphone_is_explained_and_nothing_registers(ucs: UCS, browser: Any) -> None:  # noqa: F811
    reg = _registrar(ucs)
    bar = page(browser, ucs, mic=False)
    on_webrtc(bar)
    bar.wait("onSoftphone", where="a.status === 'micDenied'", timeout=15_000)
    problem = bar.page.wait_for_selector("[data-sp-problem=micDenied]")
    text = problem.inner_text()
    assert "cannot use your microphone" in text and "Allow the microphone for this page" in text, text
    assert bar.page.inner_text("[data-sp=retry]") == "Retry"
    message = bar.wait("onMessage", where="a.group === 'softphone'")["args"][0]
    assert message["type"] == "error" and message["data"] == {"problem": "micDenied"}
    assert message["message"].startswith("The softphone cannot use your microphone")
    # In Czech too, once the agent switches the language.
    bar.page.click("[data-act=menu]")
    bar.page.click("[data-act=lang]")
    assert "Softphone nemůže použít váš mikrofon" in bar.page.inner_text("[data-sp-problem=micDenied]")
    assert bar.page.inner_text("[data-sp=retry]") == "Zkusit znovu"
    # Nothing registered: a queue call must not ring a phone that cannot speak.
    assert not run(ucs, reg.registers)
    assert bar.page.evaluate("!window.JsSIP")
    # Retry while it is still blocked: asked again, explained again.
    bar.page.click("[data-sp=retry]")
    bar.wait("onMessage", count=2, where="a.group === 'softphone'")
    # Allowed now (the browser's site settings): the softphone starts by itself.
    bar.context.grant_permissions(["microphone"], origin=ucs.base)
    registered(bar)
    assert len(run(ucs, reg.registers)) == 1
    assert not bar.page.query_selector("[data-sp-problem]")
    bar.close()


@in_browser_with(*FAKE_MEDIA, *FAKE_UI)
def test_a_refused_registration_is_shown_with_a_retry(ucs: UCS, browser: Any) -> None:  # noqa: F811
    reg = _registrar(ucs)
    reg.refuse = True  # Asterisk refuses the account (403)
    bar = page(browser, ucs)
    on_webrtc(bar)
    bar.wait("onSoftphone", where="a.status === 'failed' && a.problem === 'registration'", timeout=15_000)
    assert "could not register: Rejected" in bar.page.inner_text("[data-sp-problem=registration]")
    assert "softphone: registration failed (Rejected)" in bar.wait("onWarning")["args"][0]
    reg.refuse = False  # the administrator fixed the password
    bar.page.click("[data-sp=retry]")
    registered(bar)
    assert bar.page.query_selector("[data-sp-problem]") is None
    bar.close()


@in_browser_with(*FAKE_MEDIA, *FAKE_UI)
def test_the_microphone_and_speaker_are_chosen_from_the_browsers_devices(ucs: UCS, browser: Any) -> None:  # noqa: F811
    _registrar(ucs)
    bar = page(browser, ucs)
    on_webrtc(bar)
    registered(bar)
    devices = bar.call("audioDevices()")
    mics = [d for d in devices["microphones"] if d["id"] not in ("", "default")]
    assert mics and all(d["label"] for d in mics), devices  # labelled: the permission is there
    assert devices["microphone"] == "" and devices["canChooseSpeaker"] is True
    # The bar's own list offers the same microphones; choosing one there keeps it.
    options = bar.page.eval_on_selector_all("select[name=sp-mic] option", "os => os.map(o => o.value)")
    assert options == [""] + [d["id"] for d in mics], options
    bar.page.select_option("select[name=sp-mic]", mics[-1]["id"])
    bar.wait("onSoftphone", where=f"a.microphone === {mics[-1]['id']!r}")
    assert bar.page.evaluate("localStorage.getItem('ucsOperatorMicrophone')") == mics[-1]["id"]
    assert bar.call("audioDevices()")["microphone"] == mics[-1]["id"]
    # A device that is not there is refused, saying what is accepted.
    refused = bar.try_call('selectMicrophone("no-such-mic")')
    assert not refused["ok"] and "is not one of this browser's microphones" in refused["message"]
    assert "audioDevices()" in refused["message"]
    refused = bar.try_call('selectSpeaker("no-such-speaker")')
    assert not refused["ok"] and "speakers" in refused["message"]
    # Back to the browser's default.
    assert bar.call('selectMicrophone("")') == ""
    bar.close()


@in_browser_with(*FAKE_MEDIA, *FAKE_UI)
def test_the_ring_test_and_a_ringing_call_play_the_chosen_sound(ucs: UCS, browser: Any) -> None:  # noqa: F811
    reg = _registrar(ucs)
    bar = page(browser, ucs)
    on_webrtc(bar)
    registered(bar)
    bar.page.select_option("select[name=sp-sound]", "christmas")
    assert bar.call("state()")["ringingSound"] == "christmas"
    bar.page.click("[data-sp=ring-test]")
    bar.wait("onSoftphone", where="a.ringing === 'test'")
    assert bar.page.get_attribute("[data-sp=ring-test]", "aria-pressed") == "true"
    stopped = matching(bar, "onSoftphone", "a.ringing === null")
    bar.call("stopRingingSoundTest()")
    bar.wait("onSoftphone", where="a.ringing === null", count=stopped + 1)
    assert bar.page.get_attribute("[data-sp=ring-test]", "aria-pressed") == "false"
    # A call rings in the browser with that sound, until the caller gives up.
    run(ucs, reg.ring)
    bar.wait("onSoftphone", where="a.status === 'ringing' && a.ringing === 'call' && a.call.remote === '420777123456'")
    assert any(r[0] == 180 for r in run(ucs, lambda: reg.responses)), "JsSIP sent 180 Ringing"
    idle = "a.status === 'registered' && a.ringing === null && !a.call"
    seen = matching(bar, "onSoftphone", idle)
    run(ucs, reg.cancel)
    bar.wait("onSoftphone", where=idle, count=seen + 1)
    # UCS's click-to-dial rings the browser with Call-Info answer-after=0: the agent placed
    # the call, so the softphone answers it at once, without a ring.
    before = len([e for e in bar.log() if e["name"] == "onSoftphone" and e["args"][0].get("ringing") == "call"])
    offer = bar.page.evaluate(OFFER)  # what a WebRTC peer (Asterisk's webrtc=yes endpoint) offers
    run(ucs, reg.ring, "<sip:ucs.invalid>;answer-after=0", offer)
    bar.wait("onSoftphone", where="a.call && a.call.autoAnswered")
    ucs.wait(lambda: any(r[0] == 200 and "INVITE" in r[2].get("cseq", "") for r in reg.responses),
             what="the browser answered the INVITE (200 OK)")
    after = len([e for e in bar.log() if e["name"] == "onSoftphone" and e["args"][0].get("ringing") == "call"])
    assert after == before, "the auto-answered call did not ring"
    bar.close()


@in_browser_with(*FAKE_MEDIA, *FAKE_UI)
def test_audio_input_constraints_and_the_chosen_microphone_are_the_calls(ucs: UCS, browser: Any) -> None:  # noqa: F811
    """Seed 002's ``audioInputConstraints`` and the microphone chosen reach the call's
    microphone track (its settings, as the browser applied them)."""
    reg = _registrar(ucs)
    bar = page(browser, ucs)
    bar.page.evaluate("window.ucsOperator.audioInputConstraints = "
                      "{echoCancellation: false, noiseSuppression: false, autoGainControl: false}")
    on_webrtc(bar)
    registered(bar)
    mics = [d for d in bar.call("audioDevices()")["microphones"] if d["id"] not in ("", "default")]
    bar.call(f"selectMicrophone({mics[-1]['id']!r})")
    run(ucs, reg.ring, "<sip:ucs.invalid>;answer-after=0", bar.page.evaluate(OFFER))
    bar.wait("onSoftphone", where="a.status === 'connected'", timeout=15_000)
    mic = bar.call("softphoneStats()")["microphone"]
    assert mic == {"deviceId": mics[-1]["id"], "echoCancellation": False, "noiseSuppression": False,
                   "autoGainControl": False}, mic
    # Another microphone chosen during the call: its track replaces the old one in the call.
    bar.call('selectMicrophone("")')
    now = bar.page.evaluate("""async (was) => {
        for (let i = 0; i < 100; i++) {
            const s = await window.ucsOperator.softphoneStats();
            if (s.microphone.deviceId !== was) return s.microphone;
            await new Promise(ok => setTimeout(ok, 50));
        }
        return null;
    }""", mics[-1]["id"])
    assert now is not None and now["echoCancellation"] is False, now
    bar.close()


@in_browser_with(*FAKE_MEDIA, *FAKE_UI)
def test_a_second_tab_does_not_register_a_second_phone(ucs: UCS, browser: Any) -> None:  # noqa: F811
    reg = _registrar(ucs)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["microphone"])
    first = page(browser, ucs, context=context)
    on_webrtc(first)
    registered(first)
    second = page(browser, ucs, context=context)
    on_webrtc(second, working=True)  # the same agent: UCS makes this tab READY on that line too
    assert second.call("state()")["device"]["kind"] == "webrtc"
    second.wait("onSoftphone", where="a.status === 'otherTab'", timeout=15_000)
    assert "another tab" in second.page.inner_text("[data-sp-problem=otherTab]")
    assert len(run(ucs, reg.registers)) == 1 and run(ucs, reg.connections) == 1
    # A call rings the phone (in the first tab); Answer in the second tab answers it there.
    run(ucs, reg.ring, "", first.page.evaluate(OFFER))
    first.wait("onSoftphone", where="a.status === 'ringing'")
    assert second.call("answer()") == {"answered": "softphone in another tab"}
    first.wait("onSoftphone", where="a.call && a.call.state === 'CONNECTED'", timeout=15_000)
    ucs.wait(lambda: any(r[0] == 200 and "INVITE" in r[2].get("cseq", "") for r in reg.responses),
             what="the first tab's browser answered the INVITE (200 OK)")
    # The first tab closes: the second registers the phone now.
    first.context = None  # the context is shared: close only the page
    first.page.close()
    registered(second)
    ucs.wait(lambda: len(reg.registered_connections()) == 1 and reg.connections() == 1, what="one phone")
    assert len(run(ucs, reg.registers)) >= 2
    context.close()


@in_browser_with(*FAKE_MEDIA, *FAKE_UI)
def test_a_dropped_connection_is_reconnected_and_registered_again(ucs: UCS, browser: Any) -> None:  # noqa: F811
    reg = _registrar(ucs)
    bar = page(browser, ucs)
    on_webrtc(bar)
    registered(bar)
    first = run(ucs, reg.registered_connections)
    again_at = matching(bar, "onSoftphone", "a.status === 'registered'") + 1
    run(ucs, reg.drop)
    bar.wait("onSoftphone", where="a.status === 'disconnected'")
    bar.wait("onSoftphone", where="a.status === 'registered'", count=again_at, timeout=20_000)
    again = run(ucs, reg.registered_connections)
    assert again and not again & first and len(run(ucs, reg.registers)) == 2
    # The browser's "online" event (Wi-Fi back, a laptop woken up): registered again at once,
    # not when the registration's 10 minutes run out.
    bar.context.set_offline(True)
    bar.context.set_offline(False)
    ucs.wait(lambda: len(reg.registers()) >= 3, what="a REGISTER right after the browser went online")
    registered(bar)
    bar.close()


#: An audio offer from another peer connection in the page, its candidates gathered.
OFFER = r"""async () => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver("audio");
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== "complete") {
        await new Promise(ok => { pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && ok(); setTimeout(ok, 3000); });
    }
    window.__offerPeer = pc;
    return pc.localDescription.sdp.replace(/\r?\n/g, "\r\n");
}"""


def _registrar(ucs: UCS) -> Registrar:  # noqa: F811
    """The registrar and agent 1's WebRTC line on it, made in the reactor's thread."""

    async def make() -> Registrar:
        reg = Registrar()
        d = ucs.server.get_directory()
        line = await d.add("lines", {"device": "PJSIP/webrtc1", "name": "This browser", "identifiers": ["browser-1"],
                                     "kind": "webrtc", "ws_url": reg.url, "sip_username": "webrtc1",
                                     "sip_password": "pw-webrtc1"})
        user = d.user_by_username(demo.user_of(1)[0])
        assert user is not None
        await d.edit("users", user.id, {"lines": [*user.lines, line.id]})
        _open.append(reg)
        return reg

    return ucs.run(lambda: defer.Deferred.fromCoroutine(make()))  # type: ignore[no-any-return]
