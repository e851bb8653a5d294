"""The simulated PBX's WebRTC lines: what res_pjsip does for a browser that
registers over the WebSocket transport and calls or is called.

:class:`WebRTCPhones` is the far side of every PJSIP endpoint set up for WebRTC
(``add_webrtc_line``): the registrar (digest authentication, expiry, the
contact gone with its WebSocket), and each call as a :class:`ucs.sim.sipdialog.Dialog`
between the browser and the simulator's channel model, so the AMI shows a
WebRTC line exactly as it shows a desk phone: it is the line's ``driver``
(:class:`ucs.sim.model.Line`).  The media are a real WebRTC peer
(:mod:`ucs.sim.media`), so a browser's ICE, DTLS-SRTP and RTP are exercised.

Everything here runs in the reactor's thread; the media's answers come back
as Deferreds.  The WebSocket itself is :mod:`ucs.sim.sipws`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, gatherResults

from ucs.sim.media import MediaLoop, MediaPeer
from ucs.sim.model import Channel, Leg, Line, SimError
from ucs.sim.sipdialog import Dialog, DialogError, branch, token
from ucs.sim.sipmessage import SIPMessage, SIPParseError, auth_params, param, uri_of, user_of

log = logging.getLogger(__name__)

REALM = "asterisk"
SERVER = "Asterisk PBX 20.21.0 (ucs.sim)"
ALLOW = "OPTIONS, REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, INVITE, ACK, BYE, CANCEL, UPDATE, PRACK, MESSAGE, REFER"
#: res_pjsip's AOR limits: minimum_expiration, maximum_expiration, default_expiration.
MIN_EXPIRES, MAX_EXPIRES, DEFAULT_EXPIRES = 60, 7200, 3600

#: RFC 3398 §8.2.6.1, as chan_pjsip maps a called phone's final answer: SIP status ->
#: (Dial's DIALSTATUS, the hangup cause).
REFUSALS = {486: ("BUSY", 17), 600: ("BUSY", 17), 603: ("NOANSWER", 21), 404: ("NOANSWER", 1),
            480: ("NOANSWER", 18), 408: ("NOANSWER", 18)}
#: A call the browser placed ends before it is answered: the cause -> the final response.
FINAL_FOR_CAUSE = {17: (486, "Busy Here"), 21: (603, "Decline"), 1: (404, "Not Found"),
                   19: (480, "Temporarily Unavailable"), 18: (480, "Temporarily Unavailable"),
                   34: (503, "Service Unavailable")}


class SIPConnection(Protocol):
    """One browser's WebSocket, as :mod:`ucs.sim.sipws` gives it."""

    def send_sip(self, message: SIPMessage) -> None: ...

    def peer_address(self) -> tuple[str, int]: ...


@dataclass
class Contact:
    connection: SIPConnection
    uri: str


def add_webrtc_line(sim: Any, device: str, name: str, *, secret: str, number: str = "",
                    context: str = "internal") -> Any:
    """A PJSIP endpoint set up for WebRTC (``webrtc=yes``, the WebSocket transport, an
    AOR that takes contacts): it registers, with ``secret``, over :mod:`ucs.sim.sipws`."""
    phone = sim.add_line(device, name, dynamic=True, secret=secret, context=context)
    phone.line.transport, phone.line.max_contacts = "", 5
    if number:
        phone.line.number = number
    return phone


def is_webrtc(line: Line) -> bool:
    """A dynamic PJSIP endpoint on no fixed transport: what the lab's ``webrtc1`` is."""
    return line.tech == "PJSIP" and line.dynamic and line.transport == "" and not line.trunk


def digest(username: str, password: str, method: str, uri: str, nonce: str,
           qop: str = "", nc: str = "", cnonce: str = "") -> str:
    """RFC 2617's MD5 digest response (SIP's, RFC 3261 §22.4)."""
    def md5(text: str) -> str:
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    ha1, ha2 = md5(f"{username}:{REALM}:{password}"), md5(f"{method}:{uri}")
    if qop:
        return md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5(f"{ha1}:{nonce}:{ha2}")


def sdp_direction(sdp: str) -> str:
    m = re.search(r"^a=(sendrecv|sendonly|recvonly|inactive)\s*$", sdp, re.M)
    return m.group(1) if m else "sendrecv"


class WebRTCPhones:
    """res_pjsip for the simulator's WebRTC endpoints (the lines :func:`is_webrtc` says are)."""

    def __init__(self, sim: Any, reactor: Any, *, media: MediaLoop | None = None, host: str = "127.0.0.1") -> None:
        self.sim = sim
        self.reactor = reactor
        self.media = media if media is not None else MediaLoop(reactor)
        #: How the simulator names itself in its URIs (``host:port`` of the WebSocket once listening).
        self.host = host
        self.contacts: dict[str, Contact] = {}
        self.dialogs: dict[str, Dialog] = {}
        self._by_channel: dict[str, Dialog] = {}
        self._nonces: OrderedDict[str, None] = OrderedDict()
        self._placing: Dialog | None = None
        self._connections: dict[int, Any] = {}
        #: REGISTERs that made a new contact (not the refreshes of one).
        self.registrations = 0
        for line in sim.lines.values():
            if is_webrtc(line):
                line.driver = self

    def stop(self) -> Deferred[Any]:
        """Close every call's media, then the media's thread (the simulator is stopping)."""
        closing = [self.media.run(d.peer.close()) for d in self.dialogs.values() if d.peer is not None]
        for d in self.dialogs.values():
            d.peer = None
        done = gatherResults(closing, consumeErrors=True)
        done.addBoth(lambda _: self.media.stop())
        return done

    # --------------------------------------------------------------- messages in

    def opened(self, conn: SIPConnection) -> None:
        self._connections[id(conn)] = conn

    def received(self, conn: SIPConnection, msg: SIPMessage) -> None:
        """One SIP message from a browser.  Nothing it sends may break the simulator:
        a message that makes no sense gets an error response, never an exception."""
        try:
            if msg.is_request:
                self._request(conn, msg)
            else:
                self._response(conn, msg)
        except (SIPParseError, DialogError, SimError) as e:
            log.warning("ucs.sim WebRTC: %s %s: %s", msg.method or msg.status, msg.get("Call-ID"), e)
            if msg.is_request and msg.method != "ACK":
                conn.send_sip(self._reply(msg, 400, "Bad Request"))

    def closed(self, conn: SIPConnection) -> None:
        """The WebSocket went: its contacts are removed (res_pjsip's WebSocket transport
        does so), its calls end as if the phone hung up."""
        self._connections.pop(id(conn), None)
        for d in [d for d in self.dialogs.values() if d.connection is conn]:
            d.drop("connection closed")
            self._forget(d)
            if d.channel is not None and not d.channel.gone:
                self.sim.bye(d.channel)
        for device, contact in list(self.contacts.items()):
            if contact.connection is conn:
                del self.contacts[device]
                self.sim.contact_lost(device)

    def _request(self, conn: SIPConnection, msg: SIPMessage) -> None:
        method = msg.method
        if method == "REGISTER":
            self._register(conn, msg)
        elif method == "INVITE":
            d = self.dialogs.get(msg.get("Call-ID"))
            if d is not None and param(msg.get("To"), "tag"):
                self._reinvite(conn, d, msg)
            else:
                self._invite(conn, msg)
        elif method == "ACK":
            d = self.dialogs.get(msg.get("Call-ID"))
            if d is not None and d.may("ack"):
                d.fire("ack")
        elif method == "BYE":
            self._bye(conn, msg)
        elif method == "CANCEL":
            self._cancelled(conn, msg)
        elif method == "OPTIONS":
            conn.send_sip(self._reply(msg, 200, "OK").add("Allow", ALLOW))
        else:
            conn.send_sip(self._reply(msg, 405, "Method Not Allowed").add("Allow", ALLOW))

    # ---------------------------------------------------------------- registrar

    def _line_of(self, uri: str) -> Line | None:
        line = self.sim.lines.get(f"PJSIP/{user_of(uri)}")
        return line if line is not None and line.driver is self else None

    def _authenticate(self, conn: SIPConnection, msg: SIPMessage, line: Line | None, account: str) -> bool:
        """res_pjsip's digest: a request without credentials is challenged (401), wrong
        ones refused (403, and the ``InvalidPassword`` security event)."""
        header = msg.get("Authorization")
        if not header:
            conn.send_sip(self._challenge(msg))
            return False
        p = auth_params(header)
        nonce = p.get("nonce", "")
        if nonce not in self._nonces:
            conn.send_sip(self._challenge(msg, stale=True))
            return False
        expected = ""
        if line is not None and line.secret is not None and p.get("username") == line.peer:
            expected = digest(line.peer, line.secret, msg.method, p.get("uri", ""), nonce,
                              p.get("qop", ""), p.get("nc", ""), p.get("cnonce", ""))
        if not expected or not hmac.compare_digest(expected, p.get("response", "")):
            ip, port = conn.peer_address()
            self.sim.security_event(
                "InvalidPassword",
                f"Severity: Error\r\nService: PJSIP\r\nEventVersion: 2\r\nAccountID: {account}\r\n"
                f"SessionID: {msg.get('Call-ID')}\r\nLocalAddress: IPV4/WS/{self.host.replace(':', '/')}\r\n"
                f"RemoteAddress: IPV4/WS/{ip}/{port}\r\nChallenge: {nonce}\r\n"
                f"ReceivedChallenge: {nonce}\r\nReceivedHash: {p.get('response', '')}\r\n",
            )
            conn.send_sip(self._reply(msg, 403, "Forbidden"))
            return False
        return True

    def _challenge(self, msg: SIPMessage, stale: bool = False) -> SIPMessage:
        nonce = token(16)
        self._nonces[nonce] = None
        while len(self._nonces) > 256:
            self._nonces.popitem(last=False)
        value = f'Digest realm="{REALM}",nonce="{nonce}",opaque="{token(8)}",algorithm=MD5,qop="auth"'
        if stale:
            value += ",stale=true"
        return self._reply(msg, 401, "Unauthorized").add("WWW-Authenticate", value)

    def _register(self, conn: SIPConnection, msg: SIPMessage) -> None:
        aor = uri_of(msg.get("To"))
        line = self._line_of(aor)
        if not self._authenticate(conn, msg, line, user_of(aor)):
            return
        assert line is not None
        contact = msg.get("Contact")
        if not contact:  # a query of the bindings (RFC 3261 §10.2.3)
            ok = self._reply(msg, 200, "OK")
            mine = self.contacts.get(line.device)
            if mine is not None and line.registered and line.reg_expires_at is not None:
                left = max(0, int(line.reg_expires_at - self.sim.now()))
                ok.add("Contact", f"<{mine.uri}>;expires={left}")
            conn.send_sip(ok)
            return
        try:
            expires = int(param(contact, "expires") or msg.get("Expires") or DEFAULT_EXPIRES)
        except ValueError:
            conn.send_sip(self._reply(msg, 400, "Bad Request: Expires is a number of seconds"))
            return
        if contact.strip() == "*" or expires == 0:
            mine = self.contacts.get(line.device)
            if mine is not None and (contact.strip() == "*" or mine.uri == uri_of(contact)):
                del self.contacts[line.device]
                if line.registered:
                    self.sim.unregister(line.device)
            conn.send_sip(self._reply(msg, 200, "OK"))
            return
        if expires < MIN_EXPIRES:
            conn.send_sip(self._reply(msg, 423, "Interval Too Brief").add("Min-Expires", str(MIN_EXPIRES)))
            return
        expires = min(expires, MAX_EXPIRES)
        uri = uri_of(contact)
        mine = self.contacts.get(line.device)
        if mine is not None and mine.uri == uri and mine.connection is conn and line.registered:
            self.sim.refresh_registration(line.device, expires)
        else:
            ip, port = conn.peer_address()
            self.sim.register(line.device, ip, port, useragent=msg.get("User-Agent"), expires=expires, contact=uri)
            self.contacts[line.device] = Contact(conn, uri)
            self.registrations += 1
        ok = self._reply(msg, 200, "OK")
        ok.add("Contact", f"<{uri}>;expires={expires}").add("Expires", str(expires))
        conn.send_sip(ok)

    # ------------------------------------------------- the simulator calls the browser

    def invite(self, leg: Leg) -> None:
        """The sim's Dial/Queue/Originate rings the WebRTC line: INVITE its browser."""
        ch, line = leg.chan, leg.line
        assert line is not None
        contact = self.contacts.get(line.device)
        if contact is None or not line.registered:
            self.sim.phone_refused(leg, "CHANUNAVAIL", 20, delay=0.05)
            return
        caller = leg.caller
        num, name = (caller.cid_num, caller.cid_name) if caller is not None else (ch.conn_num, ch.conn_name)
        if leg.kind == "originate" or not num:
            num, name = ch.conn_num or num, ch.conn_name or name
        d = Dialog(outgoing=True, call_id=f"{token()}@{self.host}", local_tag=token(4),
                   remote_target=contact.uri,
                   local_uri=f'"{name}" <sip:{num or "anonymous"}@{self.host}>' if name
                   else f"<sip:{num or 'anonymous'}@{self.host}>",
                   remote_uri=f"<sip:{line.peer}@{self.host}>", channel=ch, leg=leg, invite_branch=branch())
        d.connection = contact.connection
        self.dialogs[d.call_id] = d
        self._by_channel[ch.name] = d

        async def offer() -> tuple[MediaPeer, str]:
            peer = MediaPeer(on_key=self._keys_of(d))
            return peer, await peer.offer()

        def send(result: tuple[MediaPeer, str]) -> None:
            d.peer, sdp = result
            if d.ended:
                self._close_media(d)
                return
            req = self._request_in(d, "INVITE", d.invite_cseq, d.invite_branch, with_tag=False)
            req.add("Allow", ALLOW).add("Supported", "replaces, norefersub")
            req.add("Content-Type", "application/sdp")
            req.body = sdp
            d.invite = req
            d.connection.send_sip(req)

        def failed(f: Any) -> None:
            log.error("ucs.sim WebRTC: no media offer for %s: %s", ch.name, f.getErrorMessage())
            d.drop("no offer")
            self._forget(d)
            if not leg.ended and not leg.answered:
                self.sim.phone_refused(leg, "CHANUNAVAIL", 47)

        self.media.run(offer()).addCallbacks(send, failed)

    def _response(self, conn: SIPConnection, msg: SIPMessage) -> None:
        d = self.dialogs.get(msg.get("Call-ID"))
        if d is None:
            return
        _n, method = msg.cseq
        status = msg.status
        if method == "BYE":
            if d.may("bye-answered"):
                d.fire("bye-answered")
                self._forget(d)
            return
        if method != "INVITE" or not d.outgoing:
            return
        tag = param(msg.get("To"), "tag")
        if status < 200:
            if status in (180, 183) and d.may("180"):
                d.fire("180")
                if d.leg is not None:
                    self.sim.phone_ringing(d.leg)
            elif d.may("1xx"):
                d.fire("1xx")
            return
        if status < 300:
            d.remote_tag = tag or d.remote_tag
            target = msg.get("Contact")
            if target:
                d.remote_target = uri_of(target)
            if not d.may("2xx"):
                return  # a retransmitted 200: it was answered already
            self._send(d, self._request_in(d, "ACK", d.invite_cseq, branch()))
            if d.fire("2xx") == "hanging-up":  # answered as the caller gave up: hang up at once
                self._send(d, self._request_in(d, "BYE", d.next_cseq(), branch()))
                return
            peer = d.peer
            self.media.run(peer.accept(msg.body)).addErrback(self._media_error, d)
            if d.leg is not None:
                self.sim.phone_answered(d.leg)
            return
        ack = self._request_in(d, "ACK", d.invite_cseq, d.invite_branch, with_tag=False)
        ack.set("To", msg.get("To"))
        self._send(d, ack)
        was = d.state
        if d.may("error"):
            d.fire("error")
        self._forget(d)
        if was != "cancelling" and d.leg is not None and not d.leg.ended:
            dialstatus, cause = REFUSALS.get(status, ("NOANSWER", 21))
            self.sim.phone_refused(d.leg, dialstatus, cause)

    # ------------------------------------------------- the browser calls out

    def _invite(self, conn: SIPConnection, msg: SIPMessage) -> None:
        frm = msg.get("From")
        line = self._line_of(uri_of(frm))
        if not self._authenticate(conn, msg, line, user_of(uri_of(frm))):
            return
        assert line is not None
        conn.send_sip(self._reply(msg, 100, "Trying"))
        if not line.registered:
            conn.send_sip(self._reply(msg, 403, "Forbidden: register first"))
            return
        n, _ = msg.cseq
        d = Dialog(outgoing=False, call_id=msg.get("Call-ID"), local_tag=token(4),
                   remote_target=uri_of(msg.get("Contact")) or uri_of(frm),
                   local_uri=msg.get("To"), remote_uri=frm.split(";tag=")[0], remote_tag=param(frm, "tag") or "",
                   invite=msg, invite_cseq=n)
        d.connection = conn
        self.dialogs[d.call_id] = d
        self._placing = d
        try:
            ch = self.sim.call_from_line(line, user_of(msg.uri))
        except SimError as e:  # the PBX is down (restarting)
            d.drop(str(e))
            self._forget(d)
            conn.send_sip(self._final(d, 503, "Service Unavailable"))
            return
        finally:
            self._placing = None
        if ch is None:
            d.fire("error")
            self._forget(d)
            conn.send_sip(self._final(d, 404, "Not Found"))
            return
        if d.ended:  # refused while the dialplan started
            return
        d.channel = ch
        self._by_channel[ch.name] = d

        async def answer() -> tuple[MediaPeer, str]:
            peer = MediaPeer(on_key=self._keys_of(d))
            return peer, await peer.answer(msg.body)

        def ready(result: tuple[MediaPeer, str]) -> None:
            d.peer, d.answer_sdp = result
            if d.ended:
                self._close_media(d)
            elif d.up_pending:
                self._answer_browser(d)

        def unusable(f: Any) -> None:  # an offer aiortc cannot answer: 488, as res_pjsip_session
            log.warning("ucs.sim WebRTC: the offer of %s: %s", d.call_id, f.getErrorMessage())
            if d.may("error"):
                d.fire("error")
                conn.send_sip(self._final(d, 488, "Not Acceptable Here"))
                self._end(d, by_phone=True)

        self.media.run(answer()).addCallbacks(ready, unusable)

    def _keys_of(self, d: Dialog) -> Any:
        """What a call's media peer calls (in the media thread) for each key the browser
        sends in the RTP: handed to the reactor's thread, to :meth:`_key`."""
        def on_key(end: bool, key: str, duration_ms: int) -> None:
            self.reactor.callFromThread(self._key, d, end, key, duration_ms)
        return on_key

    def _key(self, d: Dialog, end: bool, key: str, duration_ms: int) -> None:
        """A key from the browser (RFC 4733) reaches the line's channel as chan_pjsip's
        RTP gives it to the core: the channel reports it on the AMI."""
        ch = d.channel
        if ch is None or ch.gone or d.ended:
            return
        self.sim.phone_dtmf(ch, key, end=end, duration_ms=duration_ms)

    def _answer_browser(self, d: Dialog) -> None:
        d.up_pending = False
        if not d.may("2xx"):
            return
        d.fire("2xx")
        ok = self._final(d, 200, "OK")
        ok.add("Contact", f"<sip:asterisk@{self.host};transport=ws>").add("Allow", ALLOW)
        ok.add("Content-Type", "application/sdp")
        ok.body = d.answer_sdp or ""
        d.connection.send_sip(ok)

    def _cancelled(self, conn: SIPConnection, msg: SIPMessage) -> None:
        d = self.dialogs.get(msg.get("Call-ID"))
        conn.send_sip(self._reply(msg, 200 if d is not None else 481, "OK" if d is not None else "Call Does Not Exist"))
        if d is None or d.outgoing or not d.may("cancel"):
            return
        d.fire("cancel")
        conn.send_sip(self._final(d, 487, "Request Terminated"))
        self._end(d, by_phone=True)

    # ------------------------------------------------- either direction

    def _bye(self, conn: SIPConnection, msg: SIPMessage) -> None:
        d = self.dialogs.get(msg.get("Call-ID"))
        if d is None or not d.may("bye-received"):
            conn.send_sip(self._reply(msg, 481, "Call/Transaction Does Not Exist"))
            return
        d.fire("bye-received")
        conn.send_sip(self._reply(msg, 200, "OK"))
        self._end(d, by_phone=True)

    def _reinvite(self, conn: SIPConnection, d: Dialog, msg: SIPMessage) -> None:
        """Hold and unhold from the browser: chan_pjsip queues a hold (the ``Hold`` event,
        music to the other party) when the offer says sendonly or inactive."""
        if not d.established or d.peer is None or d.channel is None:
            conn.send_sip(self._reply(msg, 491, "Request Pending"))
            return
        hold = sdp_direction(msg.body) in ("sendonly", "inactive")

        def answered(sdp: str) -> None:
            ok = self._reply(msg, 200, "OK", to_tag=d.local_tag)
            ok.add("Contact", f"<sip:asterisk@{self.host};transport=ws>").add("Content-Type", "application/sdp")
            ok.body = sdp
            conn.send_sip(ok)
            ch = d.channel
            if hold != d.on_hold and ch is not None and not ch.gone:
                d.on_hold = hold
                self.sim.remote_hold(ch, hold)

        def failed(f: Any) -> None:
            log.warning("ucs.sim WebRTC: re-INVITE of %s: %s", d.call_id, f.getErrorMessage())
            conn.send_sip(self._reply(msg, 488, "Not Acceptable Here"))

        self.media.run(d.peer.reoffer(msg.body)).addCallbacks(answered, failed)

    def _end(self, d: Dialog, by_phone: bool) -> None:
        self._forget(d)
        ch = d.channel
        if by_phone and ch is not None and not ch.gone:
            self.sim.bye(ch)

    # ------------------------------------------------- the sim's hooks (Line.driver)

    def _dialog_of(self, ch: Channel) -> Dialog | None:
        d = self._by_channel.get(ch.name)
        if d is None and self._placing is not None and self._placing.channel is None:
            d = self._placing
            d.channel = ch
            self._by_channel[ch.name] = d
        return d

    def channel_ringing(self, ch: Channel) -> None:
        """The party a call the browser placed is calling rings: 180 to the browser."""
        d = self._dialog_of(ch)
        if d is not None and not d.outgoing and d.may("180"):
            d.fire("180")
            d.connection.send_sip(self._final(d, 180, "Ringing"))

    def channel_up(self, ch: Channel) -> None:
        """The line's channel is answered: for a call the browser placed, send its 200."""
        d = self._dialog_of(ch)
        if d is None or d.outgoing or d.ended:
            return
        if d.answer_sdp is None:
            d.up_pending = True
        else:
            self._answer_browser(d)

    def channel_gone(self, ch: Channel, cause: int) -> None:
        """The line's channel hung up in the simulator: CANCEL, BYE or a final answer."""
        d = self._dialog_of(ch)
        if d is None:
            return
        self._by_channel.pop(ch.name, None)
        if d.ended:
            self._forget(d)
            return
        if d.outgoing:
            if d.invite is None:  # the offer was not even made yet
                d.drop("gone before the INVITE")
            elif d.may("cancel"):
                d.fire("cancel")
                cancel = self._request_in(d, "CANCEL", d.invite_cseq, d.invite_branch, with_tag=False)
                cancel.add("Reason", f"Q.850;cause={cause}")
                self._send(d, cancel)
                return
            elif d.may("bye-sent"):
                d.fire("bye-sent")
                self._send(d, self._request_in(d, "BYE", d.next_cseq(), branch()))
                return
            self._forget(d)
            return
        if d.may("error"):
            d.fire("error")
            status, reason = FINAL_FOR_CAUSE.get(cause, (480, "Temporarily Unavailable"))
            d.connection.send_sip(self._final(d, status, reason))
            self._forget(d)
        elif d.may("bye-sent"):
            d.fire("bye-sent")
            self._send(d, self._request_in(d, "BYE", d.next_cseq(), branch()))

    # ---------------------------------------------------------------- helpers

    def stats(self, device: str | None = None) -> Deferred[list[dict[str, Any]]]:
        """A Deferred of the media statistics of the calls (of ``device``'s line) now up:
        ``[{"channel", "packets_received", "packets_sent", "dtls", ...}]``."""
        dialogs = [d for d in self.dialogs.values() if d.peer is not None and d.channel is not None
                   and (device is None or d.channel.peer_name == device)]

        def tag(stats: dict[str, Any], d: Dialog) -> dict[str, Any]:
            return {"channel": d.channel.name, "state": d.state, **stats}

        return gatherResults([self.media.run(d.peer.stats()).addCallback(tag, d) for d in dialogs])

    def _forget(self, d: Dialog) -> None:
        if self.dialogs.get(d.call_id) is d and d.state in ("ended",):
            del self.dialogs[d.call_id]
            self._close_media(d)
        if d.channel is not None and self._by_channel.get(d.channel.name) is d and d.ended:
            del self._by_channel[d.channel.name]

    def _close_media(self, d: Dialog) -> None:
        peer, d.peer = d.peer, None
        if peer is not None:
            self.media.run(peer.close()).addErrback(lambda f: None)

    def _media_error(self, f: Any, d: Dialog) -> None:
        log.error("ucs.sim WebRTC: media of %s: %s", d.call_id, f.getErrorMessage())

    def _send(self, d: Dialog, msg: SIPMessage) -> None:
        d.connection.send_sip(msg)

    def _request_in(self, d: Dialog, method: str, cseq: int, via_branch: str, with_tag: bool = True) -> SIPMessage:
        """A request of ours in dialog ``d`` (an outgoing INVITE's CANCEL and non-2xx ACK
        go before the dialog exists: ``with_tag=False`` and the INVITE's request URI)."""
        uri = d.remote_target
        if not with_tag and d.invite is not None and d.outgoing:
            uri = d.invite.uri
        req = SIPMessage(method=method, uri=uri)
        req.add("Via", f"SIP/2.0/WS {self.host};rport;branch={via_branch}")
        req.add("Max-Forwards", "70")
        req.add("From", f"{d.local_uri};tag={d.local_tag}")
        req.add("To", d.remote_uri + (f";tag={d.remote_tag}" if d.remote_tag and with_tag else ""))
        if method == "INVITE":
            req.add("Contact", f"<sip:asterisk@{self.host};transport=ws>")
        req.add("Call-ID", d.call_id).add("CSeq", f"{cseq} {method}").add("User-Agent", SERVER)
        return req

    def _final(self, d: Dialog, status: int, reason: str) -> SIPMessage:
        """A response to the browser's INVITE of dialog ``d``."""
        return self._reply(d.invite, status, reason, to_tag=d.local_tag if status > 100 else None)

    @staticmethod
    def _reply(msg: SIPMessage, status: int, reason: str, to_tag: str | None = None) -> SIPMessage:
        r = SIPMessage(status=status, reason=reason)
        for via in msg.get_all("Via"):
            r.add("Via", via)
        to = msg.get("To")
        if to_tag and param(to, "tag") is None:
            to += f";tag={to_tag}"
        r.add("From", msg.get("From")).add("To", to).add("Call-ID", msg.get("Call-ID")).add("CSeq", msg.get("CSeq"))
        r.add("Server", SERVER)
        return r
