"""PJSIP as Asterisk 20's res_pjsip shows it over AMI: the endpoint, contact,
AOR, auth and transport lists, and ``PJSIPNotify``.

Mixed into :class:`ucs.sim.actions.Actions`.  The field lists are those of the
matrix capture ``pj_registers_and_resync`` (Asterisk 20.21), values from the
lab's ``pjsip.conf`` (``../shared/asterisk/etc``).  Not simulated: qualify
(``ContactStatusDetail``), outbound registrations, identify lists.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ucs.sim.model import PJSIP_PORT, Line, SimError
from ucs.sim.respond import ActionMessage, Handlers, variables

if TYPE_CHECKING:  # pragma: no cover
    from ucs.sim.server import AMISession

#: ast_devstate_str: how res_pjsip spells a device state.
DEVSTATE_TEXT = {
    "UNKNOWN": "Unknown",
    "NOT_INUSE": "Not in use",
    "INUSE": "In use",
    "BUSY": "Busy",
    "INVALID": "Invalid",
    "UNAVAILABLE": "Unavailable",
    "RINGING": "Ringing",
    "RINGINUSE": "Ring+Inuse",
    "ONHOLD": "On Hold",
}

#: EndpointDetail after ObjectName, in the order res_pjsip sends it.
_ENDPOINT_DETAIL = (
    "RpidImmediate: false\r\n"
    "Webrtc: {webrtc}\r\n"
    "Ignore183WithoutSdp: false\r\n"
    "SendAoc: false\r\n"
    "DeviceStateBusyAt: 0\r\n"
    "T38UdptlMaxdatagram: 0\r\n"
    "CodecPrefsIncomingAnswer: prefer:pending, operation:intersect, keep:all, transcode:allow\r\n"
    "SecurityNegotiation: no\r\n"
    "DtlsRekey: 0\r\n"
    "RtpPortEnd: 0\r\n"
    "NamedPickupGroup: \r\n"
    "DirectMediaMethod: invite\r\n"
    "SendRpid: false\r\n"
    "PickupGroup: \r\n"
    "SdpSession: Asterisk\r\n"
    "DtlsVerify: No\r\n"
    "MessageContext: \r\n"
    "Tenantid: \r\n"
    "Mailboxes: \r\n"
    "RecordOnFeature: automixmon\r\n"
    "DtlsPrivateKey: \r\n"
    "DtlsFingerprint: SHA-256\r\n"
    "OverlapContext: \r\n"
    "OutgoingCallOfferPref: remote_merge\r\n"
    "RtpPortStart: 0\r\n"
    "FromDomain: \r\n"
    "TimersSessExpires: 1800\r\n"
    "NamedCallGroup: \r\n"
    "DtlsCipher: \r\n"
    "MediaEncryptionOptimistic: false\r\n"
    "SuppressQ850ReasonHeaders: false\r\n"
    "Aors: {name}\r\n"
    "IdentifyBy: username,ip\r\n"
    "CalleridPrivacy: allowed_not_screened\r\n"
    "MwiSubscribeReplacesUnsolicited: no\r\n"
    "CosAudio: 0\r\n"
    "FollowEarlyMediaFork: true\r\n"
    "Context: {context}\r\n"
    "RtpSymmetric: true\r\n"
    "Transport: {transport}\r\n"
    "MohSuggest: default\r\n"
    "T38Udptl: false\r\n"
    "FaxDetect: false\r\n"
    "T38BindUdptlToMediaAddress: false\r\n"
    "TosVideo: 0\r\n"
    "SrtpTag32: false\r\n"
    "ReferBlindProgress: true\r\n"
    "MaxAudioStreams: 1\r\n"
    "Bundle: false\r\n"
    "UseAvpf: false\r\n"
    "CallGroup: \r\n"
    "SendConnectedLine: yes\r\n"
    "FaxDetectTimeout: 0\r\n"
    "SdpOwner: -\r\n"
    "ForceRport: true\r\n"
    "CalleridTag: \r\n"
    "RtpTimeoutHold: 0\r\n"
    "SuppressMohOnSendonly: false\r\n"
    "UsePtime: false\r\n"
    "MediaAddress: \r\n"
    "VoicemailExtension: \r\n"
    "RtpTimeout: 0\r\n"
    "StirShaken: no\r\n"
    "SetVar: \r\n"
    "ContactAcl: \r\n"
    "PreferredCodecOnly: false\r\n"
    "GeolocOutgoingCallProfile: \r\n"
    "ForceAvp: false\r\n"
    "RecordOffFeature: automixmon\r\n"
    "FromUser: \r\n"
    "SendDiversion: true\r\n"
    "SendHistoryInfo: false\r\n"
    "T38UdptlIpv6: false\r\n"
    "ToneZone: \r\n"
    "Language: \r\n"
    "AllowSubscribe: true\r\n"
    "RtpIpv6: false\r\n"
    "Callerid: {callerid}\r\n"
    "MohPassthrough: false\r\n"
    "CosVideo: 0\r\n"
    "DtlsAutoGenerateCert: {dtls_auto}\r\n"
    "AsymmetricRtpCodec: false\r\n"
    "GeolocIncomingCallProfile: \r\n"
    "IceSupport: false\r\n"
    "AggregateMwi: true\r\n"
    "OneTouchRecording: false\r\n"
    "MwiFromUser: \r\n"
    "RedirectMethod: user\r\n"
    "Accountcode: \r\n"
    "CodecPrefsOutgoingAnswer: prefer:pending, operation:intersect, keep:all, transcode:allow\r\n"
    "Allow: (ulaw)\r\n"
    "RewriteContact: false\r\n"
    "UserEqPhone: false\r\n"
    "RtpEngine: asterisk\r\n"
    "FollowRedirectMethods: \r\n"
    "SubscribeContext: \r\n"
    "NotifyEarlyInuseRinging: false\r\n"
    "IncomingMwiMailbox: \r\n"
    "IncomingCallOfferPref: local\r\n"
    "AllowUnauthenticatedOptions: false\r\n"
    "Auth: {auth}\r\n"
    "DirectMediaGlareMitigation: none\r\n"
    "TrustIdInbound: false\r\n"
    "StirShakenProfile: \r\n"
    "BindRtpToMediaAddress: false\r\n"
    "DisableDirectMediaOnNat: false\r\n"
    "MediaEncryption: no\r\n"
    "MediaUseReceivedTransport: false\r\n"
    "AllowOverlap: true\r\n"
    "DtmfMode: rfc4733\r\n"
    "OutboundAuth: \r\n"
    "TosAudio: 0\r\n"
    "DtlsCertFile: \r\n"
    "DtlsCaPath: \r\n"
    "DtlsSetup: active\r\n"
    "ConnectedLineMethod: invite\r\n"
    "G726NonStandard: false\r\n"
    "100rel: yes\r\n"
    "Timers: yes\r\n"
    "DirectMedia: false\r\n"
    "Acl: \r\n"
    "TimersMinSe: 90\r\n"
    "TrustIdOutbound: false\r\n"
    "SubMinExpiry: 0\r\n"
    "RtcpMux: false\r\n"
    "MaxVideoStreams: 1\r\n"
    "AcceptMultipleSdpAnswers: false\r\n"
    "CodecPrefsIncomingOffer: prefer:pending, operation:intersect, keep:all, transcode:allow\r\n"
    "CodecPrefsOutgoingOffer: prefer:pending, operation:union, keep:all, transcode:allow\r\n"
    "TrustConnectedLine: yes\r\n"
    "SendPai: false\r\n"
    "RtpKeepalive: 0\r\n"
    "T38UdptlEc: none\r\n"
    "T38UdptlNat: false\r\n"
    "AllowTransfer: true\r\n"
    "DtlsCaFile: \r\n"
    "OutboundProxy: \r\n"
    "InbandProgress: false\r\n"
    "DeviceState: {devstate}\r\n"
    "ActiveChannels: {active}\r\n"
)

_AOR_FIELDS = (
    "MinimumExpiration: 60\r\nDefaultExpiration: 3600\r\nQualifyTimeout: 3.000000\r\nQualify2xxOnly: false\r\n"
    "Mailboxes: \r\nSupportPath: false\r\nRemoveUnavailable: false\r\nVoicemailExtension: \r\n"
)


def contact_id(line: Line) -> str:
    """res_pjsip names a registered contact ``<aor>;@<md5 of its URI>``."""
    return f"{line.peer};@{hashlib.md5(line.reg_contact.encode()).hexdigest()}"


def _contacts(line: Line) -> str:
    return f"{line.peer}/{line.reg_contact}," if line.reachable and line.reg_contact else ""


class PjsipActions(Handlers):
    """The PJSIP actions."""

    def _pjsip_lines(self) -> list[Line]:
        return sorted((ln for ln in self.sim.lines.values() if ln.tech == "PJSIP"), key=lambda ln: ln.peer)

    def _endpoint(self, m: ActionMessage, header: str = "endpoint") -> Line:
        name = m.get(header)
        if not name:
            raise SimError("Endpoint parameter missing.")
        name = name[6:] if name.lower().startswith("pjsip/") else name
        line = self.sim.lines.get(f"PJSIP/{name}")
        if line is None:
            raise SimError(f"Unable to retrieve endpoint {name}")
        return line

    def _active(self, line: Line) -> int:
        return len([c for c in line.channels if not c.gone])

    def _devstate(self, line: Line) -> str:
        return DEVSTATE_TEXT.get(self.sim.devices.get(line.device, "UNKNOWN"), "Unknown")

    def a_pjsipshowendpoints(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self.aid_line(m)
        items: list[str] = []
        lines = self._pjsip_lines()
        for ln in lines:
            items.append(
                f"Event: EndpointList\r\n{aid}ObjectType: endpoint\r\nObjectName: {ln.peer}\r\n"
                f"Transport: {ln.transport}\r\nAor: {ln.peer}\r\nAuths: {ln.peer + '-auth' if ln.secret else ''}\r\n"
                f"OutboundAuths: \r\nContacts: {_contacts(ln)}\r\nDeviceState: {self._devstate(ln)}\r\n"
                f"ActiveChannels: {self._active(ln)}\r\n\r\n"
            )
        return self.event_list(
            m, "A listing of Endpoints follows, presented as EndpointList events", "EndpointListComplete", items
        )

    def a_pjsipshowcontacts(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self.aid_line(m)
        items: list[str] = []
        # The contacts that registered; an AOR's static contact is not one.
        lines = [ln for ln in self._pjsip_lines() if ln.dynamic and ln.reachable]
        for ln in lines:
            expires = int(ln.reg_expires_at or 0)
            items.append(
                f"Event: ContactList\r\n{aid}ObjectType: contact\r\nObjectName: {contact_id(ln)}\r\n"
                f"ViaAddr: {ln.ip}\r\nQualifyTimeout: 3.000000\r\nQualify2xxOnly: false\r\nCallId: {ln.reg_callid}\r\n"
                f"RegServer: \r\nPruneOnBoot: no\r\nPath: \r\nEndpoint: {ln.peer}\r\nViaPort: {ln.port}\r\n"
                f"AuthenticateQualify: no\r\nUri: {ln.reg_contact}\r\nQualifyFrequency: 0\r\nUserAgent: {ln.useragent}\r\n"
                f"ExpirationTime: {expires}\r\nOutboundProxy: \r\nStatus: NonQualified\r\nRoundtripUsec: N/A\r\n\r\n"
            )
        return self.event_list(
            m, "A listing of Contacts follows, presented as ContactList events", "ContactListComplete", items
        )

    def a_pjsipshowregistrationsinbound(self, s: AMISession, m: ActionMessage) -> bytes:
        aid = self.aid_line(m)
        items: list[str] = []
        lines = self._pjsip_lines()
        for ln in lines:
            contacts = _contacts(ln)
            items.append(
                f"Event: InboundRegistrationDetail\r\n{aid}ObjectType: aor\r\nObjectName: {ln.peer}\r\n{_AOR_FIELDS}"
                f"MaxContacts: {ln.max_contacts}\r\nAuthenticateQualify: false\r\nContact: {contacts.rstrip(',')}\r\n"
                f"MaximumExpiration: 7200\r\nQualifyFrequency: 0\r\nRemoveExisting: {'true' if ln.dynamic else 'false'}\r\n"
                f"OutboundProxy: \r\nContacts: {contacts}\r\n\r\n"
            )
        return self.event_list(
            m, "Following are Events for each Inbound registration", "InboundRegistrationDetailComplete", items
        )

    def a_pjsipshowendpoint(self, s: AMISession, m: ActionMessage) -> bytes:
        ln = self._endpoint(m)
        aid = self.aid_line(m)
        name = ln.peer
        auth = f"{name}-auth" if ln.secret else ""
        callerid = f'"{ln.display}" <{ln.number}>' if ln.display else f"<{ln.number}>"
        detail = "".join(_ENDPOINT_DETAIL).format(
            webrtc="yes" if ln.transport == "" else "no",
            name=name,
            context=ln.context,
            transport=ln.transport,
            callerid=callerid,
            auth=auth,
            devstate=self._devstate(ln),
            active=self._active(ln),
            dtls_auto="Yes" if ln.transport == "" else "No",
        )
        items = [f"Event: EndpointDetail\r\n{aid}ObjectType: endpoint\r\nObjectName: {name}\r\n{detail}\r\n"]
        if auth:
            items.append(
                f"Event: AuthDetail\r\n{aid}ObjectType: auth\r\nObjectName: {auth}\r\nOauthSecret: \r\nPasswordDigest: \r\n"
                f"SupportedAlgorithmsUas: MD5\r\nRefreshToken: \r\nUsername: {name}\r\nMd5Cred: \r\nRealm: \r\n"
                f"AuthType: userpass\r\nPassword: {ln.secret}\r\nSupportedAlgorithmsUac: MD5\r\nNonceLifetime: 32\r\n"
                f"OauthClientid: \r\nEndpointName: {name}\r\n\r\n"
            )
        if ln.transport:
            items.append(
                f"Event: TransportDetail\r\n{aid}ObjectType: transport\r\nObjectName: {ln.transport}\r\n"
                "ExternalSignalingHostname: \r\nWebsocketWriteTimeout: 100\r\nCos: 0\r\nTcpKeepaliveEnable: false\r\n"
                "Protocol: udp\r\nSymmetricTransport: false\r\nDomain: \r\nVerifyServer: No\r\nLocalNet: \r\n"
                f"Bind: 127.0.0.1:{PJSIP_PORT}\r\nAllowWildcardCerts: No\r\nTcpKeepaliveIntervalTime: 1\r\n"
                "AsyncOperations: 1\r\nExternalMediaAddress: \r\nMethod: unspecified\r\nExternalSignalingAddress: \r\n"
                "RequireClientCert: No\r\nTcpKeepaliveIdleTime: 30\r\nTos: 0\r\nCaListPath: \r\nCipher: \r\n"
                "CertFile: \r\nExternalSignalingPort: 0\r\nPassword: \r\nAllowReload: false\r\nVerifyClient: No\r\n"
                f"TcpKeepaliveProbeCount: 5\r\nPrivKeyFile: \r\nCaListFile: \r\nEndpointName: {name}\r\n\r\n"
            )
        contacts = _contacts(ln)
        n = 1 if contacts else 0
        items.append(
            f"Event: AorDetail\r\n{aid}ObjectType: aor\r\nObjectName: {name}\r\n{_AOR_FIELDS}"
            f"MaxContacts: {ln.max_contacts}\r\nAuthenticateQualify: false\r\nContacts: {contacts}\r\n"
            f"MaximumExpiration: 7200\r\nQualifyFrequency: 0\r\nRemoveExisting: {'true' if ln.dynamic else 'false'}\r\n"
            f"OutboundProxy: \r\nTotalContacts: {n}\r\nContactsRegistered: {n if ln.dynamic else 0}\r\n"
            f"EndpointName: {name}\r\n\r\n"
        )
        return self.event_list(
            m, "Following are Events for each object associated with the Endpoint", "EndpointDetailComplete", items
        )

    def a_pjsipnotify(self, s: AMISession, m: ActionMessage) -> bytes:
        option, headers = m.get("option"), variables(m)
        if bool(option) == bool(m.get("variable")):
            raise SimError("PJSIPNotify requires either an Option or Variable(s).You must use only one of them.")
        ln = self._endpoint(m)
        if option:
            self.sim.pjsip_notify(ln.peer, option)
        else:  # each Variable is a header of the NOTIFY: Event=talk asks the phone to answer
            self.sim.pjsip_notify_headers(ln.peer, headers)
        return self.ok(m, "NOTIFY sent")
