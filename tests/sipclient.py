"""A browser's SIP stack in miniature, for testing the simulator's SIP WebSocket
without a browser: an autobahn WebSocket client with the ``sip`` subprotocol that
sends requests and waits for what comes back, and answers calls with aiortc (its
own asyncio loop: the far end of the simulator's media)."""

from __future__ import annotations

from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import defer, reactor, task

from ucs.sim.sipdialog import branch, token
from ucs.sim.sipmessage import SIPMessage, auth_params, parse, uri_of
from ucs.sim.webrtc import REALM, digest


class _Proto(WebSocketClientProtocol):
    def onOpen(self) -> None:
        self.factory.client._opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client.inbox.append(parse(payload))

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        self.factory.client.closed = True
        if not self.factory.client.ready.called:
            self.factory.client.ready.errback(ConnectionError(reason))


class SIPClient:
    #: This client's From tag.
    tag = token(4)

    def __init__(self, url: str, user: str, password: str, protocols: list[str] | None = None) -> None:
        self.url, self.user, self.password = url, user, password
        self.inbox: list[SIPMessage] = []
        self.closed = False
        self.proto: Any = None
        self.ready: defer.Deferred[Any] = defer.Deferred()
        self.contact = f"sip:{token(4)}@{token(4)}.invalid;transport=ws"
        self.reg_call_id = token() + "@test"
        self.cseq = 0
        factory = WebSocketClientFactory(url, protocols=["sip"] if protocols is None else protocols)
        factory.protocol = _Proto
        factory.client = self  # type: ignore[attr-defined]
        connectWS(factory)

    def _opened(self, proto: Any) -> None:
        self.proto = proto
        self.ready.callback(self)

    def send(self, msg: SIPMessage) -> None:
        self.proto.sendMessage(msg.serialize().encode(), isBinary=False)

    def close(self) -> None:
        if self.proto is not None:
            self.proto.dropConnection(abort=True)

    async def next(self, *, method: str = "", status: int = 0, call_id: str = "", timeout: float = 10.0) -> SIPMessage:
        """The first message received that fits (taken out of the inbox)."""
        deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
        while True:
            for m in self.inbox:
                if (not method or m.method == method) and (not status or m.status == status) \
                        and (not call_id or m.get("Call-ID") == call_id):
                    self.inbox.remove(m)
                    return m
            if reactor.seconds() > deadline:  # type: ignore[attr-defined]
                got = [(m.method or m.status, m.get("CSeq")) for m in self.inbox]
                raise AssertionError(f"no {method or status} within {timeout} s; received {got}")
            await task.deferLater(reactor, 0.01, lambda: None)

    def request(self, method: str, uri: str, *, to: str = "", call_id: str = "", body: str = "",
                extra: dict[str, str] | None = None) -> SIPMessage:
        self.cseq += 1
        me = f"<sip:{self.user}@127.0.0.1>"
        m = SIPMessage(method=method, uri=uri)
        m.add("Via", f"SIP/2.0/WSS {token(4)}.invalid;branch={branch()}")
        m.add("Max-Forwards", "69").add("To", to or me).add("From", f"{me};tag={self.tag}")
        m.add("Call-ID", call_id or token() + "@test").add("CSeq", f"{self.cseq} {method}")
        m.add("Contact", f"<{self.contact}>")
        for k, v in (extra or {}).items():
            m.add(k, v)
        if body:
            m.add("Content-Type", "application/sdp")
            m.body = body
        return m

    def authorize(self, m: SIPMessage, challenge: SIPMessage, password: str | None = None) -> SIPMessage:
        p = auth_params(challenge.get("WWW-Authenticate"))
        nc, cnonce = "00000001", token(4)
        response = digest(self.user, self.password if password is None else password, m.method, m.uri, p["nonce"],
                          "auth", nc, cnonce)
        self.cseq += 1
        m.set("CSeq", f"{self.cseq} {m.method}")
        m.set("Authorization", f'Digest username="{self.user}",realm="{REALM}",nonce="{p["nonce"]}",'
                               f'uri="{m.uri}",response="{response}",qop=auth,nc={nc},cnonce="{cnonce}"')
        return m

    async def register(self, expires: int = 600, password: str | None = None) -> SIPMessage:
        """REGISTER, answer the 401's challenge, and return the final response."""
        reg = self.request("REGISTER", "sip:127.0.0.1", call_id=self.reg_call_id,
                           extra={"Expires": str(expires), "User-Agent": "sipclient (tests)"})
        self.send(reg)
        challenge = await self.next(status=401, call_id=self.reg_call_id)
        self.send(self.authorize(reg, challenge, password))
        while True:
            m = await self.next(call_id=self.reg_call_id)
            if m.status >= 200:
                return m

    def reply(self, req: SIPMessage, status: int, reason: str, *, to_tag: str = "", body: str = "") -> SIPMessage:
        r = SIPMessage(status=status, reason=reason)
        for via in req.get_all("Via"):
            r.add("Via", via)
        to = req.get("To") + (f";tag={to_tag}" if to_tag and ";tag=" not in req.get("To") else "")
        r.add("From", req.get("From")).add("To", to).add("Call-ID", req.get("Call-ID")).add("CSeq", req.get("CSeq"))
        r.add("Contact", f"<{self.contact}>")
        if body:
            r.add("Content-Type", "application/sdp")
            r.body = body
        return r

    def in_dialog(self, invite: SIPMessage, final: SIPMessage, method: str, *, ours: bool) -> SIPMessage:
        """A request in the dialog of ``invite``: ``ours`` when this client sent the INVITE."""
        self.cseq += 1
        if ours:
            target, frm, to = uri_of(final.get("Contact")), invite.get("From"), final.get("To")
        else:
            target, frm, to = uri_of(invite.get("Contact")), final.get("To"), invite.get("From")
        m = SIPMessage(method=method, uri=target)
        m.add("Via", f"SIP/2.0/WSS {token(4)}.invalid;branch={branch()}")
        m.add("Max-Forwards", "69").add("From", frm).add("To", to).add("Call-ID", invite.get("Call-ID"))
        m.add("CSeq", f"{self.cseq if method != 'ACK' else invite.cseq[0]} {method}")
        return m
