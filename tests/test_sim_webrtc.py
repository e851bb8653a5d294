"""The simulator's WebRTC lines (issue 18) over a real SIP WebSocket, with a real
WebRTC peer at each end (aiortc), without a browser: registration with digest
authentication and what the AMI shows for it, a call to the line (ringing,
answered, RTP both ways, hung up from either side, cancelled), a call placed from
the line, hold by re-INVITE, and what a client that is no SIP phone gets.

The browser's side of the same is tests/test_softphone_sim.py."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from sipclient import SIPClient
from twisted.internet import reactor, task
from twisted.internet.task import Clock

from ucs.sim import compare
from ucs.sim.lab import matrix_lab
from ucs.sim.media import MediaLoop, MediaPeer
from ucs.sim.sipmessage import SIPMessage, SIPParseError, parse
from ucs.sim.sipws import SIPWebSocketService

PASSWORD = "labwebrtc1"


class Rig:
    def __init__(self, clock: Any = reactor) -> None:
        self.sim = matrix_lab(clock, seed=None)
        self.events: list[dict[str, str]] = []
        self.sim.subscribe(lambda ev: self.events.append({"Event": ev.name, **ev.message()}))
        self.ws = SIPWebSocketService(self.sim, reactor)
        self.ws.startService()
        #: The browser's media: its own asyncio loop, as a browser is another process.
        self.far = MediaLoop(reactor)
        self.clients: list[SIPClient] = []

    async def client(self, user: str = "webrtc1", password: str = PASSWORD, **kw: Any) -> SIPClient:
        c = SIPClient(self.ws.url, user, password, **kw)
        self.clients.append(c)
        await c.ready
        return c

    def named(self, name: str, **fields: str) -> list[dict[str, str]]:
        return [e for e in self.events if e["Event"] == name and all(e.get(k) == v for k, v in fields.items())]

    async def until(self, test: Any, timeout: float = 15.0, what: str = "condition") -> Any:
        deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
        while not (value := test()):
            if reactor.seconds() > deadline:  # type: ignore[attr-defined]
                raise AssertionError(f"{what}: not true within {timeout} s")
            await task.deferLater(reactor, 0.02, lambda: None)
        return value

    async def stop(self) -> None:
        for c in self.clients:
            c.close()
        await self.ws.stopService()
        self.far.stop()


# -- the message format ------------------------------------------------------------------------------


def test_a_sip_message_parses_with_compact_headers_folding_and_its_body() -> None:
    raw = ("INVITE sip:2001@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\n"
           "v: SIP/2.0/WS b.invalid;branch=z9hG4bK2\r\nf: <sip:webrtc1@127.0.0.1>;tag=abc\r\nt: <sip:2001@127.0.0.1>\r\n"
           "i: 42@x\r\nCSeq: 7 INVITE\r\nSubject: a long\r\n  subject\r\nc: application/sdp\r\nl: 5\r\n\r\nv=0\r\nignored")
    m = parse(raw)
    assert (m.method, m.uri, m.cseq) == ("INVITE", "sip:2001@127.0.0.1", (7, "INVITE"))
    assert m.get_all("Via") == ["SIP/2.0/WSS a.invalid;branch=z9hG4bK1", "SIP/2.0/WS b.invalid;branch=z9hG4bK2"]
    assert (m.get("Call-ID"), m.get("Subject"), m.body) == ("42@x", "a long subject", "v=0\r\n")
    again = parse(m.serialize())
    assert (again.headers, again.body) == (m.headers, m.body)
    status = parse("SIP/2.0 180 Ringing\r\nFrom: a\r\nTo: b;tag=1\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n\r\n")
    assert (status.status, status.reason, status.is_request) == (180, "Ringing", False)


@pytest.mark.parametrize(("raw", "says"), [
    ("HELLO\r\n\r\n", "start line"),
    ("OPTIONS sip:a SIP/2.0\r\nCall-ID: 1\r\n", "empty line"),
    ("OPTIONS sip:a SIP/2.0\r\nnonsense\r\n\r\n", "Name: value"),
    ("OPTIONS sip:a SIP/2.0\r\nFrom: a\r\nTo: b\r\nCall-ID: 1\r\n\r\n", "CSeq"),
    ("OPTIONS sip:a SIP/2.0\r\nFrom: a\r\nTo: b\r\nCall-ID: 1\r\nCSeq: x\r\n\r\n", "CSeq"),
    ("OPTIONS sip:a SIP/2.0\r\nFrom: a\r\nTo: b\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 9\r\n\r\nab", "Content-Length 9"),
])
def test_what_is_not_a_sip_message_is_refused_saying_why(raw: str, says: str) -> None:
    with pytest.raises(SIPParseError, match=says):
        parse(raw)


def test_serialize_counts_the_body_in_bytes() -> None:
    m = SIPMessage(status=200, reason="OK").add("Call-ID", "1").add("From", "a").add("To", "b").add("CSeq", "1 BYE")
    m.body = "é"
    assert "Content-Length: 2\r\n" in m.serialize()


# -- registration ------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_register_is_challenged_a_wrong_password_refused_and_the_contact_shown_over_ami() -> None:
    rig = Rig()
    try:
        c = await rig.client()
        refused = await c.register(password="wrong")
        assert refused.status == 403
        assert rig.named("InvalidPassword", AccountID="webrtc1")
        assert not rig.named("PeerStatus") and not rig.sim.lines["PJSIP/webrtc1"].registered

        ok = await c.register(expires=600)
        assert ok.status == 200 and "expires=600" in ok.get("Contact")
        contact = c.contact.split(";")[0]
        assert rig.named("ChallengeSent", AccountID="webrtc1") and rig.named("SuccessfulAuth", AccountID="webrtc1")
        assert rig.named("PeerStatus", Peer="PJSIP/webrtc1", PeerStatus="Reachable", ChannelType="PJSIP")
        (status,) = rig.named("ContactStatus", AOR="webrtc1")
        assert status["ContactStatus"] == "NonQualified" and status["URI"].startswith(contact)
        assert rig.named("DeviceStateChange", Device="PJSIP/webrtc1", State="NOT_INUSE")
        assert rig.sim.devices["PJSIP/webrtc1"] == "NOT_INUSE"

        # A refresh keeps the contact (no new ContactStatus) and pushes the expiry on.
        line = rig.sim.lines["PJSIP/webrtc1"]
        before = line.reg_expires_at
        again = await c.register(expires=900)
        assert again.status == 200 and line.reg_expires_at > before
        assert len(rig.named("ContactStatus")) == 1
        # Too short an interval is refused with the minimum.
        short = await c.register(expires=5)
        assert short.status == 423 and short.get("Min-Expires") == "60"

        # The WebSocket goes: so does the contact, as res_pjsip's transport removes it.
        c.close()
        await rig.until(lambda: rig.named("ContactStatus", ContactStatus="Removed"), what="contact removed")
        assert rig.named("PeerStatus", Peer="PJSIP/webrtc1", PeerStatus="Unreachable")
        await rig.until(lambda: rig.sim.devices["PJSIP/webrtc1"] == "UNAVAILABLE", what="device unavailable")
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_a_registration_not_refreshed_expires_and_the_line_is_unreachable() -> None:
    clock = Clock()  # the PBX's time; the sockets and the media run on the reactor
    rig = Rig(clock)
    try:
        c = await rig.client()
        assert (await c.register(expires=120)).status == 200
        clock.advance(119)
        assert rig.sim.lines["PJSIP/webrtc1"].registered
        assert (await c.register(expires=120)).status == 200  # refreshed: another 120 s
        clock.advance(119)
        assert rig.sim.lines["PJSIP/webrtc1"].registered and not rig.named("ContactStatus", ContactStatus="Removed")
        clock.advance(2)
        assert rig.named("ContactStatus", ContactStatus="Removed") and rig.named("PeerStatus", PeerStatus="Unreachable")
        assert not rig.sim.lines["PJSIP/webrtc1"].reachable
        # A call to it now finds no one: the caller's Dial says so, and the browser hears nothing.
        caller = rig.sim.caller_calls("2100", "420777123456", "Jana Novak")
        clock.advance(1)
        assert caller.vars.get("DIALSTATUS") == "CHANUNAVAIL"
        ping = c.request("OPTIONS", "sip:127.0.0.1")
        c.send(ping)
        await c.next(call_id=ping.get("Call-ID"))
        assert not [m for m in c.inbox if m.method == "INVITE"]
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_unregister_and_strangers() -> None:
    rig = Rig()
    try:
        c = await rig.client()
        assert (await c.register()).status == 200
        bye = await c.register(expires=0)
        assert bye.status == 200 and not rig.sim.lines["PJSIP/webrtc1"].registered
        assert rig.named("ContactStatus", ContactStatus="Removed")
        # An endpoint that is not a WebRTC line (or none at all) is challenged, then refused.
        for user in ("2004", "nobody"):
            other = await rig.client(user=user, password="lab2004")
            assert (await other.register()).status == 403
        # A client without the sip subprotocol is refused at the handshake.
        with pytest.raises(ConnectionError):
            await rig.client(protocols=[])
        # Garbage is dropped; the endpoint still answers.
        c.proto.sendMessage("ça ne parle pas SIP".encode(), isBinary=False)
        c.proto.sendMessage(b"OPTIONS sip:x SIP/2.0\r\n\r\n", isBinary=False)
        ping = c.request("OPTIONS", "sip:127.0.0.1")
        c.send(ping)
        assert (await c.next(call_id=ping.get("Call-ID"))).status == 200
    finally:
        await rig.stop()


# -- calls to the line -------------------------------------------------------------------------------


async def _ringing(rig: Rig, c: SIPClient) -> tuple[SIPMessage, str]:
    invite = await c.next(method="INVITE")
    tag = "b" + invite.get("Call-ID")[:6]
    c.send(c.reply(invite, 180, "Ringing", to_tag=tag))
    return invite, tag


async def _answer(rig: Rig, c: SIPClient, invite: SIPMessage, tag: str) -> tuple[MediaPeer, SIPMessage]:
    async def answer() -> tuple[MediaPeer, str]:
        peer = MediaPeer()
        return peer, await peer.answer(invite.body)

    peer, sdp = await rig.far.run(answer())
    ok = c.reply(invite, 200, "OK", to_tag=tag, body=sdp)
    c.send(ok)
    await c.next(method="ACK", call_id=invite.get("Call-ID"))
    return peer, ok


async def _media_flows(rig: Rig, peer: MediaPeer) -> dict[str, Any]:
    async def both() -> Any:
        ours = await rig.far.run(peer.stats())
        (theirs,) = await rig.ws.phones.stats("PJSIP/webrtc1")
        return ours, theirs

    seen: list[Any] = []

    async def flowing() -> bool:
        seen[:] = await both()
        return seen[0]["packets_received"] > 10 and seen[1]["packets_received"] > 10

    deadline = reactor.seconds() + 15  # type: ignore[attr-defined]
    while not await flowing():
        assert reactor.seconds() < deadline, f"RTP both ways: {seen}"  # type: ignore[attr-defined]
        await task.deferLater(reactor, 0.1, lambda: None)
    return {"browser": seen[0], "sim": seen[1]}


def _states(rig: Rig, prefix: str) -> list[str]:
    return [e["ChannelState"] for e in rig.events if e["Event"] in ("Newchannel", "Newstate")
            and e.get("Channel", "").startswith(prefix)]


@pytest_twisted.ensureDeferred
async def test_a_queue_call_rings_the_browser_is_answered_talks_and_the_browser_hangs_up() -> None:
    rig = Rig()
    try:
        c = await rig.client()
        assert (await c.register()).status == 200
        rig.sim.queue_add("support", "PJSIP/webrtc1", "Web Agent")
        caller = rig.sim.caller_calls("5000", "420777123456", "Jana Novak")
        invite = await c.next(method="INVITE")
        assert "420777123456" in invite.get("From") and invite.get("Content-Type") == "application/sdp"
        assert "a=fingerprint:sha-256" in invite.body and "a=candidate" in invite.body
        assert "PCMU/8000" in invite.body and "opus" not in invite.body  # webrtc1 has allow=ulaw
        assert _states(rig, "PJSIP/webrtc1-") == ["0"], "Down until the browser says it rings"
        tag = "b1"
        c.send(c.reply(invite, 180, "Ringing", to_tag=tag))
        await rig.until(lambda: _states(rig, "PJSIP/webrtc1-")[-1:] == ["5"], what="ringing")
        await rig.until(lambda: rig.sim.devices["PJSIP/webrtc1"] == "RINGING", what="device ringing")
        peer, ok = await _answer(rig, c, invite, tag)
        await rig.until(lambda: rig.named("AgentConnect", Interface="PJSIP/webrtc1"), what="agent connected")
        assert _states(rig, "PJSIP/webrtc1-")[-1] == "6"
        flows = await _media_flows(rig, peer)
        assert flows["browser"]["dtls"] == "connected" and flows["sim"]["dtls"] == "connected"

        c.send(c.in_dialog(invite, ok, "BYE", ours=False))
        assert (await c.next(status=200, call_id=invite.get("Call-ID"))).get("CSeq").endswith("BYE")
        await rig.until(lambda: caller.gone, what="the caller hung up too")
        (hangup,) = [e for e in rig.named("Hangup") if e["Channel"].startswith("PJSIP/webrtc1-")]
        assert hangup["Cause"] == "16"
        (complete,) = rig.named("AgentComplete")
        assert complete["Reason"] == "agent"
        await rig.far.run(peer.close())
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_the_caller_hangs_up_a_talking_call_the_browser_gets_bye() -> None:
    rig = Rig()
    try:
        c = await rig.client()
        await c.register()
        caller = rig.sim.caller_calls("2100", "420777123456", "Jana Novak")
        invite, tag = await _ringing(rig, c)
        peer, _ok = await _answer(rig, c, invite, tag)
        await _media_flows(rig, peer)
        rig.sim.bye(caller)
        bye = await c.next(method="BYE", call_id=invite.get("Call-ID"))
        c.send(c.reply(bye, 200, "OK"))
        await rig.until(lambda: not rig.ws.phones.dialogs, what="the dialog over")
        (hangup,) = [e for e in rig.named("Hangup") if e["Channel"].startswith("PJSIP/webrtc1-")]
        assert hangup["Cause"] == "16"
        await rig.far.run(peer.close())
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_a_caller_who_gives_up_while_it_rings_cancels_the_invite() -> None:
    rig = Rig()
    try:
        c = await rig.client()
        await c.register()
        caller = rig.sim.caller_calls("2100", "420777123456", "Jana Novak")
        invite, tag = await _ringing(rig, c)
        await rig.until(lambda: _states(rig, "PJSIP/webrtc1-")[-1:] == ["5"], what="ringing")
        rig.sim.bye(caller)
        cancel = await c.next(method="CANCEL", call_id=invite.get("Call-ID"))
        assert cancel.get("Via").split("branch=")[1] == invite.get("Via").split("branch=")[1]
        c.send(c.reply(cancel, 200, "OK"))
        c.send(c.reply(invite, 487, "Request Terminated", to_tag=tag))
        ack = await c.next(method="ACK", call_id=invite.get("Call-ID"))
        assert ack.cseq == (invite.cseq[0], "ACK")
        await rig.until(lambda: not rig.ws.phones.dialogs, what="the dialog over")
        (dialend,) = [e for e in rig.named("DialEnd") if e.get("DestChannel", "").startswith("PJSIP/webrtc1-")]
        assert dialend["DialStatus"] == "CANCEL"
        assert [e["Cause"] for e in rig.named("Hangup") if e["Channel"].startswith("PJSIP/webrtc1-")] == ["16"]
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_a_busy_browser_refuses_and_the_caller_hears_busy() -> None:
    rig = Rig()
    try:
        c = await rig.client()
        await c.register()
        caller = rig.sim.caller_calls("2100", "420777123456", "Jana Novak")
        invite = await c.next(method="INVITE")
        c.send(c.reply(invite, 486, "Busy Here", to_tag="x"))
        await c.next(method="ACK", call_id=invite.get("Call-ID"))
        await rig.until(lambda: caller.gone, what="the caller's call over")
        (dialend,) = [e for e in rig.named("DialEnd") if e.get("DestChannel", "").startswith("PJSIP/webrtc1-")]
        assert dialend["DialStatus"] == "BUSY"
        assert [e["Cause"] for e in rig.named("Hangup") if e["Channel"].startswith("PJSIP/webrtc1-")] == ["17"]
    finally:
        await rig.stop()


# -- calls from the line -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_browser_calls_a_desk_phone_which_answers_then_hangs_up() -> None:
    rig = Rig()
    try:
        rig.sim.phone("PJSIP/2001").set_behaviour(answer_after=0.5)
        c = await rig.client()
        await c.register()

        async def offer() -> tuple[MediaPeer, str]:
            p = MediaPeer()
            return p, await p.offer()

        peer, sdp = await rig.far.run(offer())
        invite = c.request("INVITE", "sip:2001@127.0.0.1", to="<sip:2001@127.0.0.1>", body=sdp)
        c.send(invite)
        challenge = await c.next(status=401, call_id=invite.get("Call-ID"))
        c.send(c.authorize(invite, challenge))
        await c.next(status=100, call_id=invite.get("Call-ID"))
        await c.next(status=180, call_id=invite.get("Call-ID"))
        ok = await c.next(status=200, call_id=invite.get("Call-ID"), timeout=15)
        await rig.far.run(peer.accept(ok.body))
        c.send(c.in_dialog(invite, ok, "ACK", ours=True))
        mine = [e for e in rig.named("Newchannel") if e["Channel"].startswith("PJSIP/webrtc1-")]
        assert mine and mine[0]["Exten"] == "2001" and mine[0]["ChannelState"] == "4"
        dial = rig.named("DialBegin", DestChannel=rig.named("Newchannel")[-1]["Channel"]) or rig.named("DialBegin")
        assert dial[0]["Channel"] == mine[0]["Channel"]
        flows = await _media_flows(rig, peer)
        assert flows["sim"]["packets_sent"] > 0

        # Hold from the browser: a re-INVITE sendonly; the other party hears music.
        async def hold_offer(direction: str) -> str:
            sdp = str(peer.pc.localDescription.sdp)
            return sdp.replace("a=sendrecv", f"a={direction}")

        reinvite = c.in_dialog(invite, ok, "INVITE", ours=True)
        reinvite.add("Contact", f"<{c.contact}>").add("Content-Type", "application/sdp")
        reinvite.body = await rig.far.run(hold_offer("sendonly"))
        c.send(reinvite)
        held = await c.next(status=200, call_id=invite.get("Call-ID"))
        assert held.get("CSeq").endswith("INVITE") and "a=recvonly" in held.body
        await rig.until(lambda: rig.named("Hold", Channel=mine[0]["Channel"]), what="Hold")
        assert rig.named("MusicOnHoldStart")
        unhold = c.in_dialog(invite, ok, "INVITE", ours=True)
        unhold.add("Contact", f"<{c.contact}>").add("Content-Type", "application/sdp")
        unhold.body = await rig.far.run(hold_offer("sendrecv"))
        c.send(unhold)
        await c.next(status=200, call_id=invite.get("Call-ID"))
        await rig.until(lambda: rig.named("Unhold", Channel=mine[0]["Channel"]), what="Unhold")
        assert rig.named("MusicOnHoldStop")

        rig.sim.phone("PJSIP/2001").hangup()
        bye = await c.next(method="BYE", call_id=invite.get("Call-ID"))
        c.send(c.reply(bye, 200, "OK"))
        await rig.until(lambda: not rig.ws.phones.dialogs, what="the dialog over")
        await rig.far.run(peer.close())
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_the_browser_calls_a_number_that_does_not_exist_or_a_busy_phone() -> None:
    rig = Rig()
    try:
        rig.sim.phone("PJSIP/2002").set_behaviour(busy=True)
        c = await rig.client()
        await c.register()
        async def offer() -> tuple[MediaPeer, str]:
            p = MediaPeer()
            return p, await p.offer()

        for number, status in (("7777", 404), ("2002", 486)):
            peer, sdp = await rig.far.run(offer())
            invite = c.request("INVITE", f"sip:{number}@127.0.0.1", to=f"<sip:{number}@127.0.0.1>", body=sdp)
            c.send(invite)
            challenge = await c.next(status=401, call_id=invite.get("Call-ID"))
            c.send(c.authorize(invite, challenge))
            while (m := await c.next(call_id=invite.get("Call-ID"))).status < 200:
                pass
            assert m.status == status, (number, m.status, m.reason)
            await rig.far.run(peer.close())
        await rig.until(lambda: not rig.sim.channels_of("PJSIP/webrtc1"), what="no channel left")
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_the_browser_gives_up_while_the_extension_rings() -> None:
    rig = Rig()
    try:
        c = await rig.client()
        await c.register()

        async def offer() -> tuple[MediaPeer, str]:
            p = MediaPeer()
            return p, await p.offer()

        peer, sdp = await rig.far.run(offer())
        invite = c.request("INVITE", "sip:2003@127.0.0.1", to="<sip:2003@127.0.0.1>", body=sdp)
        c.send(invite)
        c.send(c.authorize(invite, await c.next(status=401, call_id=invite.get("Call-ID"))))
        await c.next(status=180, call_id=invite.get("Call-ID"))  # 2003 rings (it never answers by itself)
        called = await rig.until(lambda: rig.sim.channels_of("PJSIP/2003"), what="2003 called")
        cancel = SIPMessage(method="CANCEL", uri=invite.uri)
        for name in ("Via", "From", "To", "Call-ID"):
            cancel.add(name, invite.get(name))
        cancel.add("CSeq", f"{invite.cseq[0]} CANCEL")
        c.send(cancel)
        assert (await c.next(status=200, call_id=invite.get("Call-ID"))).get("CSeq").endswith("CANCEL")
        assert (await c.next(status=487, call_id=invite.get("Call-ID"))).get("CSeq").endswith("INVITE")
        await rig.until(lambda: not rig.sim.channels_of("PJSIP/webrtc1") and called[0].gone, what="both channels gone")
        (dialend,) = [e for e in rig.named("DialEnd") if e.get("DestChannel") == called[0].name]
        assert dialend["DialStatus"] == "CANCEL"
        await rig.far.run(peer.close())
        # Requests for calls that do not exist, and methods it does not take.
        for method, status in (("BYE", 481), ("CANCEL", 481), ("SUBSCRIBE", 405)):
            m = c.request(method, "sip:2003@127.0.0.1")
            c.send(m)
            assert (await c.next(call_id=m.get("Call-ID"))).status == status, method
    finally:
        await rig.stop()


@pytest_twisted.ensureDeferred
async def test_over_ami_a_webrtc_line_is_a_pjsip_desk_phone() -> None:
    """The same queue call, answered and hung up by the agent, once on the registering desk
    phone PJSIP/2004 (held to the captures by test_sim_matrix.py) and once on webrtc1 driven
    by a real SIP client: the significant AMI events are the same, stream by stream."""
    clock = Clock()
    desk = matrix_lab(clock, seed=None)
    desk_events: list[dict[str, str]] = []
    desk.subscribe(lambda ev: desk_events.append(ev.message()))
    desk.register("PJSIP/2004", "127.0.0.34", 5064)
    desk.queue_add("support", "PJSIP/2004", "Agent")
    desk.caller_calls("5000", "420777123456", "Jana Novak")
    clock.advance(1)
    desk.phone("PJSIP/2004").answer()
    clock.advance(2)
    desk.phone("PJSIP/2004").hangup()
    clock.advance(5)

    rig = Rig()
    try:
        c = await rig.client()
        await c.register()
        rig.sim.queue_add("support", "PJSIP/webrtc1", "Agent")
        caller = rig.sim.caller_calls("5000", "420777123456", "Jana Novak")
        invite, tag = await _ringing(rig, c)
        # It rings, and talks, longer than chan_pjsip's device state lags (as the desk phone did).
        await rig.until(lambda: rig.sim.devices["PJSIP/webrtc1"] == "RINGING", what="ringing")
        peer, ok = await _answer(rig, c, invite, tag)
        await rig.until(lambda: rig.sim.devices["PJSIP/webrtc1"] == "INUSE", what="in use")
        c.send(c.in_dialog(invite, ok, "BYE", ours=False))
        await rig.until(lambda: caller.gone and rig.sim.devices["PJSIP/webrtc1"] == "NOT_INUSE", what="over")
        await rig.far.run(peer.close())
        web = [{k: v.replace("webrtc1", "2004") for k, v in e.items()} for e in rig.events]
    finally:
        await rig.stop()
    problems = compare.diff(web, desk_events)
    assert not problems, "\n".join(problems)


def _event(key: int, end: bool, samples: int) -> bytes:
    return bytes([key, 0x8A if end else 0x0A]) + samples.to_bytes(2, "big")


def test_telephone_events_are_read_as_asterisk_reads_them() -> None:
    """What a phone's RTP carries for two keys, with its repeats, gives each key once: a
    begin at its first packet, an end (with the duration on the wire) at the first of
    its three end packets; a late packet of an ended key and a flash are no key; a key
    whose end was lost is ended by the next key."""
    from ucs.sim.media import RFC4733Reader

    keys: list[tuple[bool, str, int]] = []
    reader = RFC4733Reader(lambda end, key, ms: keys.append((end, key, ms)))
    seq = iter(range(100, 200))
    for n in (160, 320, 480, 640, 800):  # '5', 100 ms so far, then its end at 120 ms, three times
        reader.packet(next(seq), 8000, _event(5, False, n))
    for _ in range(3):
        reader.packet(next(seq), 8000, _event(5, True, 960))
    reader.packet(next(seq), 8000, _event(5, False, 960))  # late: its key already ended
    reader.packet(next(seq), 12000, _event(16, False, 160))  # a flash
    reader.packet(next(seq), 16000, _event(11, False, 160))  # '#', whose end never comes...
    reader.packet(next(seq), 16000, _event(11, False, 320))
    reader.packet(next(seq), 24000, _event(1, False, 160))  # ... ended by '1'
    assert keys == [(False, "5", 0), (True, "5", 120), (False, "#", 0), (True, "#", 40), (False, "1", 0)]
