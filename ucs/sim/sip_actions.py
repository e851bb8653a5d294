"""chan_sip's AMI actions on the simulated PBX: SIPpeers, SIPshowpeer and
SIPnotify, with the fields Asterisk 20's chan_sip sends.

Mixed into :class:`ucs.sim.actions.Actions`; PJSIP's are in :mod:`ucs.sim.pjsip`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ucs.sim.respond import ActionMessage, Handlers, variables

if TYPE_CHECKING:  # pragma: no cover
    from ucs.sim.server import AMISession


class SipActions(Handlers):
    """The chan_sip actions."""

    def a_sippeers(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self.aid_line(m)
        lines = sorted(self.sim.lines.values(), key=lambda ln: ln.peer)
        items = [
            f"Event: PeerEntry\r\n{aid}Channeltype: SIP\r\nObjectName: {ln.peer}\r\nChanObjectType: peer\r\n"
            f"IPaddress: {ln.ip or '-none-'}\r\nIPport: {ln.port}\r\nDynamic: {'yes' if ln.dynamic else 'no'}\r\n"
            f"AutoForcerport: yes\r\nForcerport: no\r\nAutoComedia: no\r\nComedia: no\r\nVideoSupport: no\r\n"
            f"TextSupport: no\r\nACL: no\r\nStatus: Unmonitored\r\nRealtimeDevice: no\r\nDescription: \r\n"
            f"Accountcode: \r\n\r\n"
            for ln in lines
            if ln.tech == "SIP" and (ln.reachable or not ln.dynamic)
        ]
        return self.event_list(m, "Peer status list will follow", "PeerlistComplete", items)

    def a_sipnotify(self, s: AMISession, m: ActionMessage) -> bytes:
        channel = m.get("channel")
        if not channel:
            return self.error(m, "SIPNotify requires a channel name")
        self.sim.sip_notify(channel, variables(m, strip=True))
        return self.ok(m, "Notify Sent")

    def a_sipshowpeer(self, s: AMISession, m: ActionMessage) -> bytes:
        peer = m.get("peer")
        if not peer:
            return self.error(m, "Peer: <name> missing.")
        ln = self.sim.lines.get(f"SIP/{peer}")
        if ln is None:
            return self.error(m, "Peer not found")
        sim = self.sim
        expire = -1
        if ln.dynamic and ln.registered and ln.reg_expires_at is not None:
            expire = max(0, int(ln.reg_expires_at - sim.now()))
        callerid = f'"{ln.display}" <{ln.number}>' if ln.display else (f"<{ln.number}>" if ln.number else "")
        return self.ok(
            m,
            None,
            ("Channeltype", "SIP"),
            ("ObjectName", ln.peer),
            ("ChanObjectType", "peer"),
            ("SecretExist", "Y" if ln.secret else "N"),
            ("RemoteSecretExist", "N"),
            ("MD5SecretExist", "N"),
            ("Context", ln.context),
            ("Language", ""),
            ("ToneZone", "<Not set>"),
            ("AMAflags", "Unknown"),
            ("CID-CallingPres", "Presentation Allowed, Not Screened"),
            ("Callgroup", ""),
            ("Pickupgroup", ""),
            ("Named Callgroup", ""),
            ("Named Pickupgroup", ""),
            ("MOHSuggest", ""),
            ("VoiceMailbox", ""),
            ("TransferMode", "open"),
            ("LastMsgsSent", -1 if ln.dynamic else 0),
            ("Maxforwards", 0),
            ("Call-limit", ln.call_limit),
            ("Busy-level", 0),
            ("MaxCallBR", "384 kbps"),
            ("Dynamic", "Y" if ln.dynamic else "N"),
            ("Callerid", callerid),
            ("RegExpire", f"{expire} seconds"),
            ("SIP-AuthInsecure", "no" if ln.dynamic else "port,invite"),
            ("SIP-Forcerport", "a"),
            ("SIP-Comedia", "N"),
            ("ACL", "N"),
            ("SIP-CanReinvite", "N"),
            ("SIP-DirectMedia", "N"),
            ("SIP-PromiscRedir", "N"),
            ("SIP-UserPhone", "N"),
            ("SIP-VideoSupport", "N"),
            ("SIP-TextSupport", "N"),
            ("SIP-T.38Support", "N"),
            ("SIP-T.38EC", "Unknown"),
            ("SIP-T.38MaxDtgrm", 4294967295),
            ("SIP-Sess-Timers", "Accept"),
            ("SIP-Sess-Refresh", "uas"),
            ("SIP-Sess-Expires", 1800),
            ("SIP-Sess-Min", 90),
            ("SIP-RTP-Engine", "asterisk"),
            ("SIP-Encryption", "N"),
            ("SIP-RTCP-Mux", "N"),
            ("SIP-DTMFmode", "rfc2833"),
            ("ToHost", ln.static_ip or ""),
            ("Address-IP", ln.ip if ln.reachable else "(null)"),
            ("Address-Port", ln.port if ln.reachable else 0),
            ("Default-addr-IP", "(null)"),
            ("Default-addr-port", 0),
            ("Default-Username", ln.peer if ln.dynamic else ""),
            ("Codecs", "(ulaw)"),
            ("Status", "Unmonitored"),
            ("SIP-Useragent", ln.useragent),
            ("Reg-Contact", ln.reg_contact),
            ("QualifyFreq", "60000 ms"),
            ("Parkinglot", ""),
            ("SIP-Use-Reason-Header", "N"),
            ("Description", ""),
        )
