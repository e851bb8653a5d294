"""Phones, trunks and their devices: lines, registration (chan_sip and
PJSIP), device states, SIP NOTIFY; :class:`Phone`, the handle tests and the
demo drive a phone with.
"""

from __future__ import annotations

from typing import Any

from ucs.sim.events import SimPart
from ucs.sim.model import PJSIP_PORT, SIP_DOMAIN, Behaviour, Channel, Line, SimError
from ucs.sim.wire import CALL, SYSTEM, clean


class Phone:
    """The control handle of a simulated phone (or of a trunk's far end)."""

    def __init__(self, sim: SimPart, line: Line) -> None:
        self._sim = sim
        self.line = line

    @property
    def device(self) -> str:
        return self.line.device

    @property
    def channels(self) -> list[Channel]:
        return list(self.line.channels)

    @property
    def ringing(self) -> Channel | None:
        for c in self.line.channels:
            if c.leg is not None and not c.leg.answered and not c.leg.ended:
                return c
        return None

    def set_behaviour(self, **how: Any) -> Phone:
        """How the phone handles calls from now on: the keywords are the fields
        of :class:`ucs.sim.model.Behaviour`, the ones left out take its defaults."""
        self.line.behaviour = Behaviour(**how)
        return self

    def answer(self) -> Channel:
        """Answer the call that is ringing on this phone now."""
        ch = self.ringing
        if ch is None:
            raise SimError(f"{self.device} has no ringing call to answer")
        self._sim._leg_answer(ch.leg)
        return ch

    def reject(self) -> None:
        """Decline the ringing call (486 Busy Here)."""
        ch = self.ringing
        if ch is None:
            raise SimError(f"{self.device} has no ringing call to reject")
        self._sim._leg_end(ch.leg, "BUSY", 17, rna=True)

    def decline(self) -> None:
        """Decline the ringing call (603 Decline) after it rang a while: chan_sip
        reports it to the caller as BUSY, chan_pjsip hangs up with cause 21
        and the caller sees NOANSWER (the matrix's ``ringall_decline_then_answer``)."""
        ch = self.ringing
        if ch is None:
            raise SimError(f"{self.device} has no ringing call to decline")
        assert ch.leg is not None
        self._sim._refused(ch.leg, "NOANSWER" if ch.tech == "PJSIP" else "BUSY", 21)

    def hangup(self, channel: Channel | None = None) -> None:
        """Hang up (send BYE on) the phone's call, or the given channel of it."""
        chans = [channel] if channel is not None else [c for c in self.line.channels if not c.gone]
        if not chans:
            raise SimError(f"{self.device} has no call to hang up")
        for c in chans:
            self._sim.bye(c)

    def dial(self, exten: str) -> Channel | None:
        """The user dials ``exten`` on this phone (runs the line's context);
        None when the PBX refuses it before any channel exists (no such
        extension)."""
        return self._sim.call_from_line(self.line, exten)

    def register(self, ip: str, port: int = 5060, useragent: str = "", expires: float = 3600) -> None:
        self._sim.register(self.device, ip, port, useragent=useragent, expires=expires)

    def unregister(self) -> None:
        self._sim.unregister(self.device)


class LinesMixin(SimPart):
    """Lines and devices, a part of :class:`ucs.sim.pbx.Sim`."""

    # --------------------------------------------------------------- devices

    def _set_dev(self, dev: str, state: str, force: bool = False) -> bool:
        if not force and self.devices.get(dev) == state:
            return False
        self.devices[dev] = state
        self._emit("DeviceStateChange", CALL, f"Device: {dev}\r\nState: {state}\r\n")
        return True

    def _line_state(self, line: Line) -> str:
        if not line.reachable:
            return "UNAVAILABLE"
        if line.trunk:
            return "NOT_INUSE"
        ringing = inuse = False
        for c in line.channels:
            if line.tech == "PJSIP":
                # chan_pjsip derives it from its channels' states: a channel
                # still Down (INVITE sent, no 180 yet) counts for nothing.
                if c.state == 5:
                    ringing = True
                elif c.state != 0:
                    inuse = True
            elif c.leg is not None and not c.leg.answered:
                ringing = True
            else:
                inuse = True
        if ringing:
            return "RINGINUSE" if inuse else "RINGING"
        return "INUSE" if inuse else "NOT_INUSE"

    #: Seconds chan_pjsip's device state lags behind its channels: it is
    #: computed by Asterisk's device-state thread from channel snapshots, so a
    #: call refused at once (486, 603) leaves no trace in it (pj_internal_busy).
    PJSIP_DEVSTATE_LAG = 0.1

    def _update_line(self, line: Line, force: bool = False, at_once: bool = False) -> None:
        if line.tech == "PJSIP" and not at_once:
            if line.dev_timer is None or not line.dev_timer.active():
                line.dev_timer = self._later(self.PJSIP_DEVSTATE_LAG, self._update_line, line, False, True)
            return
        state = self._line_state(line)
        if self._set_dev(line.device, state, force):
            self._device_changed(line.device, state)

    # ----------------------------------------------------------------- lines

    def add_line(
        self,
        device: str,
        name: str = "",
        ip: str | None = None,
        port: int = 5060,
        *,
        dynamic: bool = False,
        secret: str | None = None,
        context: str = "internal",
        call_limit: int | None = None,
    ) -> Phone:
        """A phone: ``add_line("SIP/1001", "Alice Agent", "127.0.0.11")`` (a chan_sip
        peer) or ``add_line("PJSIP/2001", "Erin Agent", "127.0.0.31")`` (a PJSIP
        endpoint whose AOR has a static contact; ``dynamic=True``: it registers)."""
        tech, peer = _peer(device)
        if dynamic and ip is not None:
            raise SimError(f"{device}: a dynamic peer gets its address when it registers; give no ip")
        if not dynamic and ip is None:
            raise SimError(f"{device}: a static peer needs an ip (or dynamic=True)")
        line = Line(
            peer,
            tech=tech,
            name=clean(name),
            ip=ip,
            port=port,
            dynamic=dynamic,
            secret=secret,
            context=context,
            call_limit=call_limit,
        )
        if tech == "PJSIP" and ip is not None:
            line.reg_contact = f"sip:{peer}@{ip}:{port}"
        self.lines[line.device] = line
        self.devices[line.device] = self._line_state(line)
        return Phone(self, line)

    def add_trunk(self, device: str, ip: str, port: int = 5060, *, context: str = "from-carrier") -> Phone:
        """The SIP trunk callers come from (and outbound calls go to)."""
        _tech, peer = _peer(device)
        line = Line(peer, ip=ip, port=port, context=context, trunk=True)
        self.lines[line.device] = line
        self.devices[line.device] = "NOT_INUSE"
        return Phone(self, line)

    def line(self, device: str) -> Line:
        try:
            if "/" in device:
                tech, _, peer = device.partition("/")
                return self.lines[f"{tech.upper()}/{peer}"]
            return self.lines.get(f"SIP/{device}") or self.lines[f"PJSIP/{device}"]
        except KeyError:
            raise SimError(f"no line {device!r}: the lines are {', '.join(self.lines) or 'none'}") from None

    def phone(self, device: str) -> Phone:
        return Phone(self, self.line(device))

    @property
    def pjsip(self) -> bool:
        """Whether res_pjsip is loaded: the PBX has PJSIP endpoints."""
        return any(line.tech == "PJSIP" for line in self.lines.values())

    def trunk(self, device: str = "SIP/carrier") -> Phone:
        return self.phone(device)

    def register(self, device: str, ip: str, port: int = 5060, *, useragent: str = "", expires: float = 3600,
                 contact: str | None = None) -> None:
        """A dynamic peer registers from ``ip:port`` (as the capture's desk phone);
        ``contact``: the PJSIP contact's URI when it is not ``sip:<peer>@ip:port``
        (a browser's ``sip:<random>@<random>.invalid;transport=ws``)."""
        line = self.line(device)
        if not line.dynamic:
            raise SimError(f"{device} is a static peer (host={line.ip}); only dynamic peers register")
        if line.tech == "PJSIP":
            self._pjsip_register(line, ip, port, useragent, expires, contact)
            return
        self.security_event(
            "ChallengeSent",
            f"Severity: Informational\r\nService: SIP\r\nEventVersion: 1\r\nAccountID: {line.peer}\r\n"
            f"SessionID: 0x{self.random.getrandbits(40):x}\r\nLocalAddress: IPV4/UDP/{SIP_DOMAIN}/5060\r\n"
            f"RemoteAddress: IPV4/UDP/{ip}/{port}\r\nChallenge: {self.random.getrandbits(32):08x}\r\n",
        )
        line.ip, line.port, line.registered = ip, port, True
        line.useragent = clean(useragent)
        line.reg_contact = f"sip:{line.peer}@{ip}:{port}"
        self._cancel(line.reg_timer)
        line.reg_expires_at = self.now() + expires
        line.reg_timer = self._later(expires, self._expire, line)
        self._emit(
            "PeerStatus",
            SYSTEM,
            f"ChannelType: SIP\r\nPeer: {line.device}\r\nPeerStatus: Registered\r\nAddress: {ip}:{port}\r\n",
        )
        self._update_line(line)

    def _pjsip_auth_events(self, line: Line) -> None:
        """res_pjsip challenges every REGISTER, then reports the digest accepted (over the
        WebSocket transport for a WebRTC endpoint, :mod:`ucs.sim.webrtc`)."""
        wire = "WS" if line.transport == "" else "UDP"
        for name, last in (("ChallengeSent", "Challenge: \r\n"), ("SuccessfulAuth", "UsingPassword: 1\r\n")):
            self.security_event(
                name,
                f"Severity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: {line.peer}\r\n"
                f"SessionID: {line.reg_callid}\r\nLocalAddress: IPV4/{wire}/{SIP_DOMAIN}/{PJSIP_PORT}\r\n"
                f"RemoteAddress: IPV4/{wire}/{line.ip}/{line.port}\r\n" + last,
            )

    def _contact_status(self, line: Line, status: str) -> None:
        self._emit(
            "ContactStatus",
            SYSTEM,
            f"URI: {line.reg_contact}\r\nContactStatus: {status}\r\nAOR: {line.peer}\r\n"
            f"EndpointName: {line.peer}\r\nRoundtripUsec: 0\r\n",
        )

    def refresh_registration(self, device: str, expires: float) -> None:
        """A registered PJSIP endpoint registers its contact again before it expires:
        the digest is challenged and accepted, the contact lives on (no ``ContactStatus``)."""
        line = self.line(device)
        if line.tech != "PJSIP" or not line.registered:
            raise SimError(f"{device} is not a registered PJSIP endpoint")
        self._pjsip_auth_events(line)
        self._cancel(line.reg_timer)
        line.reg_expires_at = self.now() + expires
        line.reg_timer = self._later(expires, self._expire, line)

    def _pjsip_register(self, line: Line, ip: str, port: int, useragent: str, expires: float,
                        contact: str | None = None) -> None:
        line.ip, line.port, line.registered = ip, port, True
        line.useragent = clean(useragent)
        line.reg_contact = contact or f"sip:{line.peer}@{ip}:{port}"
        line.reg_callid = f"{self.random.randint(1, 9)}-{self.random.randint(1000, 99999)}@{ip}"
        self._cancel(line.reg_timer)
        line.reg_expires_at = self.now() + expires
        line.reg_timer = self._later(expires, self._expire, line)
        self._pjsip_auth_events(line)
        self._emit("PeerStatus", SYSTEM, f"ChannelType: PJSIP\r\nPeer: {line.device}\r\nPeerStatus: Reachable\r\n")
        self._update_line(line, at_once=True)
        self._contact_status(line, "NonQualified")

    def _pjsip_unregister(self, line: Line, by_phone: bool) -> None:
        if by_phone:
            self._pjsip_auth_events(line)
        line.registered = False
        self._update_line(line, at_once=True)
        self._emit("PeerStatus", SYSTEM, f"ChannelType: PJSIP\r\nPeer: {line.device}\r\nPeerStatus: Unreachable\r\n")
        self._contact_status(line, "Removed")
        line.ip, line.port, line.reg_expires_at = None, 0, None

    def _expire(self, line: Line) -> None:
        line.reg_timer = None
        if line.registered:
            self._unregister(line)

    def unregister(self, device: str) -> None:
        line = self.line(device)
        if not line.dynamic or not line.registered:
            raise SimError(f"{device} is not registered")
        if line.tech == "PJSIP":
            self._cancel(line.reg_timer)
            line.reg_timer = None
            self._pjsip_unregister(line, by_phone=True)
            return
        self.security_event(
            "ChallengeSent",
            f"Severity: Informational\r\nService: SIP\r\nEventVersion: 1\r\nAccountID: {line.peer}\r\n"
            f"SessionID: 0x{self.random.getrandbits(40):x}\r\nLocalAddress: IPV4/UDP/{SIP_DOMAIN}/5060\r\n"
            f"RemoteAddress: IPV4/UDP/{line.ip}/{line.port}\r\nChallenge: {self.random.getrandbits(32):08x}\r\n",
        )
        self._cancel(line.reg_timer)
        line.reg_timer = None
        self._unregister(line)

    def _unregister(self, line: Line) -> None:
        if line.tech == "PJSIP":
            self._pjsip_unregister(line, by_phone=False)
            return
        line.registered = False
        line.ip, line.port, line.reg_expires_at = None, 0, None
        self._emit("PeerStatus", SYSTEM, f"ChannelType: SIP\r\nPeer: {line.device}\r\nPeerStatus: Unregistered\r\nCause: Expired\r\n")
        self._update_line(line)

    # ------------------------------------------ what a real phone behind a line says (Line.driver)

    def phone_ringing(self, leg: Any) -> None:
        """The phone a leg calls rings (its 180)."""
        self._ringing(leg)

    def phone_answered(self, leg: Any) -> None:
        """The phone a leg calls answers (its 200)."""
        self._leg_answer(leg)

    def phone_refused(self, leg: Any, status: str, cause: int, delay: float = 0.0) -> None:
        """The phone a leg calls refuses it (a final error): Dial's ``status``, the hangup ``cause``."""
        if delay:
            self._later(delay, self._refused, leg, status, cause, chan=leg.chan)
        else:
            self._refused(leg, status, cause)

    def contact_lost(self, device: str) -> None:
        """The registered contact of ``device`` is gone (its connection closed): as expired."""
        line = self.line(device)
        if line.registered and line.dynamic:
            self._cancel(line.reg_timer)
            line.reg_timer = None
            self._unregister(line)

    #: Seconds a phone takes to pick up after a SIP NOTIFY ``Event: talk``.
    REMOTE_ANSWER_DELAY = 0.1

    def sip_notify(self, peer: str, variables: dict[str, str]) -> None:
        """The AMI ``SIPnotify`` to ``peer`` (``1001`` or ``SIP/1001``); ``variables``
        are the NOTIFY's headers (``{"Event": "talk"}``).

        A phone whose behaviour has ``remote_answer`` answers its ringing call
        on ``Event: talk``; every other phone (and every other NOTIFY) is
        accepted and ignored, as a real phone answers 200 or 489 and Asterisk
        reports "Notify Sent" either way.  A peer that does not exist or is
        not registered has no address: Asterisk says so.
        """
        name = peer[4:] if peer.lower().startswith("sip/") else peer
        line = self.lines.get(f"SIP/{name}")
        if line is None or not line.reachable:
            raise SimError("Could not create address")
        event = next((v for k, v in variables.items() if k.lower() == "event"), "")
        if event.strip().lower() == "talk":
            self._remote_answer(line)

    def pjsip_notify(self, endpoint: str, option: str) -> None:
        """The AMI ``PJSIPNotify`` to ``endpoint`` (``2001`` or ``PJSIP/2001``) with a
        ``pjsip_notify.conf`` preset ``option``; the lab has one, ``talk``
        (``Event: talk``), which a phone with ``remote_answer`` obeys."""
        name = endpoint[6:] if endpoint.lower().startswith("pjsip/") else endpoint
        line = self.lines.get(f"PJSIP/{name}")
        if line is None:
            raise SimError(f"Unable to retrieve endpoint {name}")
        if option.strip().lower() != "talk":
            raise SimError(f"Unable to find notify type '{option}'")
        if line.reachable:
            self._remote_answer(line)

    def pjsip_notify_headers(self, endpoint: str, headers: dict[str, str]) -> None:
        """The AMI ``PJSIPNotify`` to ``endpoint`` with ``Variable`` headers (what UCS
        sends: ``Event=talk``): answered like :meth:`sip_notify`'s."""
        name = endpoint[6:] if endpoint.lower().startswith("pjsip/") else endpoint
        line = self.lines.get(f"PJSIP/{name}")
        if line is None:
            raise SimError(f"Unable to retrieve endpoint {name}")
        event = next((v for k, v in headers.items() if k.lower() == "event"), "")
        if event.strip().lower() == "talk" and line.reachable:
            self._remote_answer(line)

    def _remote_answer(self, line: Line) -> None:
        if line.trunk or not line.behaviour.remote_answer:
            return
        ch = Phone(self, line).ringing
        if ch is not None and ch.leg is not None:
            self._later(self.REMOTE_ANSWER_DELAY, self._leg_answer, ch.leg, chan=ch)


def _peer(device: str) -> tuple[str, str]:
    """``SIP/1001`` -> ("SIP", "1001"); ``PJSIP/2001`` -> ("PJSIP", "2001")."""
    tech = "PJSIP" if device.upper().startswith("PJSIP/") else "SIP"
    peer = device[len(tech) + 1 :] if device.upper().startswith(tech + "/") else device
    if not peer or "/" in peer or "-" in peer:
        raise SimError(f"line name {device!r}: use SIP/<peer> or PJSIP/<endpoint> such as SIP/1001")
    return tech, peer
