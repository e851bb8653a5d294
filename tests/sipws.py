"""A tiny SIP-over-WebSocket registrar (RFC 7118) for the softphone's browser tests that
need no media peer: it answers ``REGISTER`` with 200 OK, keeps every request it got (with
the connection it came on), and can ring a registered browser with an ``INVITE`` (no SDP:
the browser's JsSIP rings, which is all these tests look at) and ``CANCEL`` it, or drop
the connections (a network cut). A real socket and the browser's real JsSIP, so what is
counted is what the bar really sent.

Runs on the reactor (pytest-twisted's); tests in a worker thread reach it with
``blockingCallFromThread``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import attrs
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor


@attrs.define
class Request:
    method: str
    uri: str
    headers: dict[str, str]
    conn: int


def parse(text: str) -> tuple[str, dict[str, str]]:
    """The start line and the headers (lower-case names; the first of each) of a SIP message."""
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return lines[0], headers


class _Proto(WebSocketServerProtocol):
    def onConnect(self, request: Any) -> str | None:
        return "sip" if "sip" in request.protocols else None

    def onOpen(self) -> None:
        self.factory.registrar._opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.registrar._message(self, payload.decode("utf-8", "replace"))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.registrar._closed(self)


class Registrar:
    """Listens on 127.0.0.1 (a free port); :attr:`url` is the ``ws_url`` of a WebRTC line."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.responses: list[tuple[int, str, dict[str, str]]] = []
        self.contacts: dict[int, str] = {}  # connection → the contact URI it registered
        self._conns: dict[int, _Proto] = {}
        self._ids = itertools.count(1)
        self._tags = itertools.count(1)
        factory = WebSocketServerFactory()
        factory.protocol = _Proto
        factory.registrar = self  # type: ignore[attr-defined]
        factory.setProtocolOptions(autoPingInterval=0)
        self._port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
        self.url = f"ws://127.0.0.1:{self._port.getHost().port}/ws"
        self._invite: dict[str, str] = {}
        #: REGISTER answered 403 Forbidden (a wrong password in the line's account).
        self.refuse = False

    # -- what the tests look at ----------------------------------------------------------

    def registers(self) -> list[Request]:
        return [r for r in self.requests if r.method == "REGISTER"]

    def connections(self) -> int:
        return len(self._conns)

    def registered_connections(self) -> set[int]:
        """The connections that registered and are still open."""
        return {c for c in self.contacts if c in self._conns}

    # -- what the tests do ---------------------------------------------------------------

    def ring(self, call_info: str = "", sdp: str = "") -> str:
        """An INVITE to the newest registered browser (without SDP, or with the offer
        ``sdp``); its Call-ID."""
        conn = max(self.registered_connections())
        contact = self.contacts[conn]
        call_id = f"ring{next(self._tags)}@127.0.0.1"
        branch = f"z9hG4bK{call_id.split('@')[0]}"
        self._invite = {"call_id": call_id, "branch": branch, "contact": contact, "conn": str(conn)}
        extra = f"Call-Info: {call_info}\r\n" if call_info else ""
        self._send(conn, f"INVITE {contact} SIP/2.0\r\n"
                         f"Via: SIP/2.0/WS 127.0.0.1;branch={branch}\r\nMax-Forwards: 70\r\n"
                         f"From: \"Jana Novak\" <sip:420777123456@127.0.0.1>;tag=caller1\r\nTo: <{contact}>\r\n"
                         f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:pbx@127.0.0.1;transport=ws>\r\n"
                         + (f"{extra}Content-Type: application/sdp\r\nContent-Length: {len(sdp.encode())}\r\n\r\n{sdp}"
                            if sdp else f"{extra}Content-Length: 0\r\n\r\n"))
        return call_id

    def cancel(self) -> None:
        """CANCEL the last INVITE (the caller gave up)."""
        i = self._invite
        self._send(int(i["conn"]), f"CANCEL {i['contact']} SIP/2.0\r\n"
                                   f"Via: SIP/2.0/WS 127.0.0.1;branch={i['branch']}\r\nMax-Forwards: 70\r\n"
                                   f"From: \"Jana Novak\" <sip:420777123456@127.0.0.1>;tag=caller1\r\nTo: <{i['contact']}>\r\n"
                                   f"Call-ID: {i['call_id']}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n")

    def drop(self) -> None:
        """Every connection cut, as a network change does."""
        for proto in list(self._conns.values()):
            proto.dropConnection(abort=True)

    def stop(self) -> Any:
        self.drop()
        return self._port.stopListening()

    # -- the protocol's calls ------------------------------------------------------------

    def _opened(self, proto: _Proto) -> None:
        proto.conn_id = next(self._ids)  # type: ignore[attr-defined]
        self._conns[proto.conn_id] = proto  # type: ignore[attr-defined]

    def _closed(self, proto: _Proto) -> None:
        self._conns.pop(getattr(proto, "conn_id", -1), None)

    def _send(self, conn: int, text: str) -> None:
        self._conns[conn].sendMessage(text.encode())

    def _message(self, proto: _Proto, text: str) -> None:
        if not text.strip():
            return  # a keep-alive
        start, headers = parse(text)
        conn: int = proto.conn_id  # type: ignore[attr-defined]
        if start.startswith("SIP/2.0 "):
            code = int(start.split()[1])
            self.responses.append((code, start, headers))
            if code == 200 and headers.get("cseq", "").endswith("INVITE"):
                self._ack(conn, headers)  # the browser answered: confirm, as a UAC does
            return
        method, uri = start.split()[:2]
        self.requests.append(Request(method, uri, headers, conn))
        if method == "REGISTER" and self.refuse:
            self._reply(conn, headers, "403 Forbidden")
        elif method == "REGISTER":
            contact = re.sub(r"^[^<]*<|>.*$", "", headers.get("contact", ""))
            expires = headers.get("expires", "600")
            if expires == "0" or "expires=0" in headers.get("contact", ""):
                self.contacts.pop(conn, None)
            else:
                self.contacts[conn] = contact
            self._reply(conn, headers, "200 OK", f"Contact: <{contact}>;expires={expires}\r\n")
        elif method in ("OPTIONS", "BYE", "INFO"):
            self._reply(conn, headers, "200 OK")
        elif method != "ACK":
            self._reply(conn, headers, "501 Not Implemented")

    def _ack(self, conn: int, ok: dict[str, str]) -> None:
        target = re.sub(r"^[^<]*<|>.*$", "", ok.get("contact", "")) or self._invite.get("contact", "")
        seq = ok.get("cseq", "1").split()[0]
        self._send(conn, f"ACK {target} SIP/2.0\r\nVia: SIP/2.0/WS 127.0.0.1;branch=z9hG4bKack{next(self._tags)}\r\n"
                         f"Max-Forwards: 70\r\nFrom: {ok.get('from', '')}\r\nTo: {ok.get('to', '')}\r\n"
                         f"Call-ID: {ok.get('call-id', '')}\r\nCSeq: {seq} ACK\r\nContent-Length: 0\r\n\r\n")

    def _reply(self, conn: int, req: dict[str, str], status: str, extra: str = "") -> None:
        to = req.get("to", "")
        if ";tag=" not in to:
            to += f";tag=ucs{next(self._tags)}"
        self._send(conn, f"SIP/2.0 {status}\r\nVia: {req.get('via', '')}\r\nFrom: {req.get('from', '')}\r\n"
                         f"To: {to}\r\nCall-ID: {req.get('call-id', '')}\r\nCSeq: {req.get('cseq', '')}\r\n"
                         f"{extra}Content-Length: 0\r\n\r\n")
