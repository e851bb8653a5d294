"""The agent bar's softphone against the real Asterisk (issue 18): Chromium registers as
the lab's ``PJSIP/webrtc1`` through the bar (the SIP account from UCS's directory, over
the bar's socket), a customer's call to 2100 rings in the browser, is answered there
(DTLS-SRTP), and the browser's RTP counters rise."""

from __future__ import annotations

import re
from typing import Any

import pytest_twisted
from labkit import CARRIER_IP, Lab, LabUCS, Phones, phones_of
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


# -- the softphone's calls, each action where it belongs -----------------------------------------

async def web_agent(ucs: LabUCS, lab: Lab) -> str:
    """``webagent`` on the lab's ``PJSIP/webrtc1`` (its only line), a member of support;
    the bar's page URL base."""
    d = ucs.server.get_directory()
    line = await d.add("lines", {"device": "PJSIP/webrtc1", "name": "This browser", "identifiers": ["browser-1"],
                                 "kind": "webrtc", "ws_url": f"ws://127.0.0.1:{lab.http_port}/ws",
                                 "sip_username": "webrtc1", "sip_password": "labwebrtc1"})
    support = next(q for q in d.queues.values() if q.asterisk_name == "support")
    await d.add("users", {"username": "webagent", "password": "lab-pass", "firstname": "Web", "lastname": "Agent",
                          "lines": [line.id], "locale": "en", "queues": {str(support.id): {"priorities": 0}}})
    return str(ucs.server.get_web_service().url.rstrip("/"))


_RFC4733 = re.compile(r"Got\s+RTP RFC2833 from\s+(\S+) .*?event ([0-9a-f]+), end 1")


def rfc4733_ended(lab: Lab) -> list[int]:
    """The telephone-events Asterisk's RTP debug saw end, in order (each once), from anyone
    but the customer (whose sipp echoes what Asterisk sends it)."""
    try:
        text = (lab.run / "log" / "messages").read_text(errors="replace")
    except OSError:
        return []
    events: list[int] = []
    for m in _RFC4733.finditer(text):
        if m.group(1).startswith(CARRIER_IP + ":"):
            continue
        event = int(m.group(2), 16)  # '#' is 0000000b
        if not events or events[-1] != event:
            events.append(event)
    return events


#: The softphone registered, without a call.
IDLE = "a.status === 'registered' && !a.call"


def blocking(fn: Any, *args: Any, **kw: Any) -> Any:
    return threads.blockingCallFromThread(reactor, fn, *args, **kw)


@pytest_twisted.ensureDeferred
async def test_a_queue_call_held_muted_keyed_and_hung_up_from_the_browser(lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """A support call rings the browser with its ringing sound and is answered there; mute
    turns the browser's microphone off and UCS shows it muted; DTMF goes in the call's RTP
    (Asterisk hears the digits from PJSIP/webrtc1); UCS's hold keeps the browser's call up
    without an "audio stopped" alarm; a caller whose audio stops is shown; the bar's socket
    to UCS is cut and comes back with the call still talking; the agent hangs up in the
    browser; the CDR is what a PJSIP desk phone's is (pj_queue_answered_agent_hangs_up)."""
    base = await web_agent(ucs, lab)
    tracker = ucs.server.get_call_tracker()
    hub = ucs.server.get_web_service().hub
    customer: list[Any] = []
    # What Asterisk reports of the keys on the AMI (UCS's own link drops DTMF events unread).
    watch = await softphonekit.AMIWatch().start("127.0.0.1", lab.ami_port, "ucs", "ucslab")

    def scenario() -> dict[str, Any]:
        with softphonekit.chromium() as browser:
            bar = softphonekit.registered_bar(browser, base, "webagent", "lab-pass")
            bar.page.evaluate("window.ucsOperator.softphoneSilence = 2")
            # The customer's phone echoes the browser's RTP back: audio both ways.
            customer.append(blocking(phones.start, "uac_call", CARRIER_IP, lab.sip_port, "-s", "5000", "-d", "90000",
                                     "-rtp_echo", name="customer-echo"))
            bar.wait("onSoftphone", where="a.status === 'ringing' && a.ringing === 'call'", timeout=15_000)
            bar.page.click("[data-act=answer]")
            call = bar.wait("onCallConnect")["args"][0]
            assert bar.call("softphone()")["ringing"] is None
            softphonekit.rising(bar)

            bar.call("mute()")
            bar.wait("onCallMute")
            assert bar.call("softphone()")["muted"] is True
            assert blocking(lambda: tracker.call_of(call["uniqueid"]).connected_muted) is True
            bar.call("mute()")
            bar.wait("onCallUnmute")
            assert bar.call("softphone()")["muted"] is False

            # Asterisk's RTP debug shows the RFC 4733 events it gets, and the AMI reports
            # each key on the browser's channel (what ucs.sim is held to: DTMFBegin, then
            # DTMFEnd with its duration on the wire, Direction Received).
            lab.cli("core set verbose 5")
            lab.cli("rtp set debug on")
            assert bar.call('dtmf("159#")') == {"sent": "159#", "via": "softphone"}
            blocking(ucs.until, lambda: rfc4733_ended(lab) == [1, 5, 9, 11], "Asterisk gets 1, 5, 9, # in the browser's RTP")
            lab.cli("rtp set debug off")
            blocking(ucs.until, lambda: len(watch.keys("PJSIP/webrtc1-")) >= 4, "four DTMFEnd on the browser's channel")
            keyed = blocking(lambda: [(e["Event"], e["Digit"]) for e in watch.events
                                      if e.get("Channel", "").startswith("PJSIP/webrtc1-") and e.get("Direction") == "Received"])
            ends = blocking(watch.keys, "PJSIP/webrtc1-")
            assert keyed == [(ev, d) for d in "159#" for ev in ("DTMFBegin", "DTMFEnd")], keyed
            assert all(100 <= int(e["DurationMs"]) <= 140 for e in ends), ends
            assert list(ends[0])[-3:] == ["Digit", "DurationMs", "Direction"]

            bar.call("tribute()")
            bar.wait("onCallHold")
            bar.page.wait_for_timeout(3500)  # longer than softphoneSilence: no RTP comes while held, on purpose
            info = bar.call("softphone()")
            assert info["status"] == "connected" and info["audio"] == "ok", info
            bar.call("unhold()")
            bar.wait("onCallResume")
            softphonekit.rising(bar)

            blocking(customer[0].signal, "STOP")  # the far end's audio stops, the call stays up
            bar.wait("onSoftphone", where="a.audio === 'lost'", timeout=10_000)
            assert "No sound from the other side" in bar.page.inner_text("[data-sp-problem=audio]")
            back = softphonekit.matching(bar, "onSoftphone", "a.audio === 'ok' && a.status === 'connected'")
            blocking(customer[0].signal, "CONT")
            bar.wait("onSoftphone", where="a.audio === 'ok' && a.status === 'connected'", count=back + 1)
            assert bar.page.query_selector("[data-sp-problem=audio]") is None

            # The bar's socket to UCS is cut: it reconnects, the call goes on in the browser.
            blocking(lambda: [c.transport.abort() for c in list(hub.connections)])
            bar.wait("onInfo", where="a === 'Connection to UCS restored'", timeout=20_000)
            assert bar.call("softphone()")["status"] == "connected"
            softphonekit.rising(bar)
            assert [c["uniqueid"] for c in bar.call("calls()")] == [call["uniqueid"]]

            idle = softphonekit.matching(bar, "onSoftphone", IDLE)
            bar.call("hangup()")
            end = bar.wait("onCallHangup")["args"][0]
            bar.wait("onSoftphone", where=IDLE, count=idle + 1)
            bar.close()
            return end

    try:
        end = await threads.deferToThread(scenario)
    finally:
        watch.stop()
    assert end["cause"] == 4
    cdr = await ucs.cdr(end["uniqueid"])
    assert {k: cdr[k] for k in ("direction", "caller_number", "queue", "answered_by", "cause")} == {
        "direction": "INCOMING", "caller_number": "420777123456", "queue": "support",
        "answered_by": "PJSIP/webrtc1", "cause": 4}
    journey = [s["Device"] for s in cdr["journey"]]
    assert [d for d in journey if d in ("SIP/carrier", "Queue:support", "PJSIP/webrtc1")] == \
        ["SIP/carrier", "Queue:support", "PJSIP/webrtc1"], journey
    assert await customer[0].done() is not None
    assert not [w for w in ucs.warnings if "webrtc" in w.lower()], ucs.warnings


@pytest_twisted.ensureDeferred
async def test_the_caller_hangs_up_then_the_agent_places_a_call(lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """A direct call to 2100 hung up by the caller ends the browser's call (cause 3); then
    the agent dials 2001 from the bar: UCS's Originate rings the browser, which answers
    by itself (no ring: the agent placed the call), and 2001 is called; the agent hangs up."""
    base = await web_agent(ucs, lab)
    desk = phones_of(lab, "pj")["a"]
    phones.phone(desk)  # 2001 answers

    def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        with softphonekit.chromium() as browser:
            bar = softphonekit.registered_bar(browser, base, "webagent", "lab-pass")
            idle = softphonekit.matching(bar, "onSoftphone", IDLE)
            blocking(phones.customer, "2100", 3000)
            bar.wait("onSoftphone", where="a.status === 'ringing'", timeout=15_000)
            bar.call("answer()")
            bar.wait("onCallConnect")
            first = bar.wait("onCallHangup", timeout=15_000)["args"][0]
            bar.wait("onSoftphone", where=IDLE, count=idle + 1)  # the caller's BYE ended the browser's call

            rings = len([e for e in bar.log() if e["name"] == "onSoftphone" and e["args"][0]["ringing"] == "call"])
            bar.page.fill("[data-ref=dialInput]", desk.number)
            bar.page.click("[data-ref=dialBtn]")
            bar.wait("onSoftphone", where="a.status === 'connected' && a.call && a.call.autoAnswered", timeout=15_000)
            bar.wait("onCallConnect", count=2, timeout=15_000)
            assert len([e for e in bar.log() if e["name"] == "onSoftphone" and e["args"][0]["ringing"] == "call"]) == rings
            softphonekit.rising(bar, received=False)
            bar.call("hangup()")
            second = bar.wait("onCallHangup", count=2)["args"][0]
            bar.close()
            return first, second

    first, second = await threads.deferToThread(scenario)
    assert first["cause"] == 3
    cdr = await ucs.cdr(first["uniqueid"])
    assert (cdr["caller_number"], cdr["answered_by"], cdr["cause"]) == ("420777123456", "PJSIP/webrtc1", 3)
    placed = await ucs.cdr(second["uniqueid"])
    assert placed["called_number"] == desk.number and placed["answered_by"] == desk.device, placed
    assert [s["Device"] for s in placed["journey"]][:1] == ["PJSIP/webrtc1"], placed["journey"]


@pytest_twisted.ensureDeferred
async def test_a_call_answered_in_the_browser_is_transferred_through_ucs(lab: Lab, phones: Phones, ucs: LabUCS) -> None:
    """Transfers go through UCS (Atxfer) as for a desk phone: the browser's agent, on a
    queue call, consults
    2001 (the caller on hold), 2001 answers, the agent finishes the transfer; the browser's
    call ends as transferred (cause 8) and the caller talks to 2001, as the desk phones'
    atxfer_complete shows."""
    base = await web_agent(ucs, lab)
    desk = phones_of(lab, "pj")["a"]
    bar_desk = await ucs.agent(desk, "AUX", "Lunch")  # the queue call goes to the browser; 2001 is consulted directly
    phones.phone(desk)

    def scenario() -> dict[str, Any]:
        with softphonekit.chromium() as browser:
            bar = softphonekit.registered_bar(browser, base, "webagent", "lab-pass")
            blocking(phones.customer, "5000", 20000)  # a queue call: Queue(support,t) lets the agent transfer
            bar.wait("onSoftphone", where="a.status === 'ringing'", timeout=15_000)
            bar.call("answer()")
            bar.wait("onCallConnect")
            bar.call(f'transfer("{desk.number}")')
            bar.wait("onCallHold")
            blocking(bar_desk.event, "call.connect")
            bar.call("finishTransfer()")
            end = bar.wait("onCallHangup", timeout=15_000)["args"][0]
            bar.until("window.ucsOperator.softphone().call === null")  # Asterisk hung the browser's leg up
            bar.close()
            return end

    end = await threads.deferToThread(scenario)
    assert end["cause"] == 8
    talk = await bar_desk.event("call.transfer", timeout=15)  # as bar_c's in the desk phones' atxfer_complete
    assert talk["uniqueid"] == end["uniqueid"] and talk["state"] == 3 and talk["caller_number"] == "420777123456"
