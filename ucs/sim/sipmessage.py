"""SIP messages (RFC 3261 §7) as text: parse one, serialize one.

The simulated PBX's WebRTC lines speak SIP over WebSocket (RFC 7118), where
each WebSocket message is exactly one SIP message, so there is no stream
framing here: a message is the start line, the headers (compact forms
expanded, folded lines joined) and a body as long as ``Content-Length``
says.  What a message means is for :mod:`ucs.sim.sipdialog` and
:mod:`ucs.sim.webrtc`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: RFC 3261 §7.3.3: the compact forms a browser's SIP stack may send.
COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
    "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event", "r": "Refer-To",
    "u": "Allow-Events", "x": "Session-Expires",
}
#: How the headers UCS's peers care about are spelled when written.
_CANONICAL = {name.lower(): name for name in (
    "Call-ID", "CSeq", "WWW-Authenticate", "Authorization", "Max-Forwards", "Record-Route", "User-Agent",
    "Content-Length", "Content-Type", "Allow", "Supported", "Expires", "Contact", "From", "To", "Via",
    "Route", "Server", "Event", "Session-Expires", "Min-Expires", "Reason", "Allow-Events",
)}
_REQUEST = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")
_STATUS = re.compile(r"^SIP/2\.0 ([1-6]\d\d) ?(.*)$")
MAX_MESSAGE = 64 * 1024


class SIPParseError(ValueError):
    """Not a SIP message; the text says what was wrong."""


def canonical(name: str) -> str:
    low = name.strip().lower()
    if low in COMPACT:
        return COMPACT[low]
    return _CANONICAL.get(low, "-".join(part.capitalize() for part in low.split("-")))


@dataclass
class SIPMessage:
    """A request (``method`` and ``uri`` set) or a response (``status`` set)."""

    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: str = ""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        name = canonical(name)
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        name = canonical(name)
        return [value for key, value in self.headers if key == name]

    def add(self, name: str, value: str) -> SIPMessage:
        self.headers.append((canonical(name), value))
        return self

    def set(self, name: str, value: str) -> SIPMessage:
        name = canonical(name)
        self.headers = [(k, v) for k, v in self.headers if k != name]
        self.headers.append((name, value))
        return self

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header."""
        number, _, method = self.get("CSeq").partition(" ")
        try:
            return int(number), method.strip().upper()
        except ValueError:
            raise SIPParseError(f"CSeq {self.get('CSeq')!r}: give a number and a method") from None

    def serialize(self) -> str:
        start = f"{self.method} {self.uri} SIP/2.0" if self.is_request else f"SIP/2.0 {self.status} {self.reason}"
        lines = [start] + [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + self.body


def parse(data: str | bytes) -> SIPMessage:
    """One SIP message; :class:`SIPParseError` when it is not one."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SIPParseError("a SIP message is UTF-8 text") from None
    if len(data) > MAX_MESSAGE:
        raise SIPParseError(f"a SIP message of {len(data)} characters: at most {MAX_MESSAGE} are accepted")
    head, sep, body = data.partition("\r\n\r\n")
    if not sep:
        head, sep, body = data.partition("\n\n")
    if not sep:
        raise SIPParseError("no empty line after the headers")
    lines = head.replace("\r\n", "\n").split("\n")
    msg = SIPMessage()
    first = lines[0].strip()
    if m := _REQUEST.match(first):
        msg.method, msg.uri = m.group(1).upper(), m.group(2)
    elif m := _STATUS.match(first):
        msg.status, msg.reason = int(m.group(1)), m.group(2)
    else:
        raise SIPParseError(f"start line {first[:80]!r}: expected 'METHOD uri SIP/2.0' or 'SIP/2.0 code reason'")
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and msg.headers:  # a folded header goes on
            key, value = msg.headers[-1]
            msg.headers[-1] = (key, value + " " + line.strip())
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise SIPParseError(f"header line {line[:80]!r}: expected 'Name: value'")
        msg.headers.append((canonical(key), value.strip()))
    length = msg.get("Content-Length")
    if length:
        try:
            n = int(length)
        except ValueError:
            raise SIPParseError(f"Content-Length {length!r}: give a number of bytes") from None
        raw = body.encode()
        if n > len(raw) or n < 0:
            raise SIPParseError(f"Content-Length {n} but the body has {len(raw)} bytes")
        body = raw[:n].decode("utf-8", "replace")
    msg.body = body
    for name in ("Call-ID", "CSeq", "From", "To"):
        if not msg.get(name):
            raise SIPParseError(f"no {name} header: a SIP message needs Call-ID, CSeq, From and To")
    msg.cseq  # noqa: B018 - checks it
    return msg


def param(value: str, name: str) -> str | None:
    """A header parameter: ``param('<sip:a@b>;tag=x', 'tag') == 'x'`` (outside the ``<>``)."""
    tail = value.rsplit(">", 1)[-1] if ">" in value else value
    for part in tail.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == name.lower():
            return val.strip()
    return None


def uri_of(value: str) -> str:
    """The URI of a name-addr (``"Bob" <sip:bob@h>;tag=1`` -> ``sip:bob@h``) or addr-spec."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0]
    return value.split(";", 1)[0].strip()


def user_of(uri: str) -> str:
    """``sip:webrtc1@host;transport=ws`` -> ``webrtc1``."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0] if "@" in rest else ""


def auth_params(value: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` Authorization header (lower-case keys)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SIPParseError(f"authorization scheme {scheme!r}: only Digest is accepted")
    out: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z-]+)\s*=\s*("([^"]*)"|[^,\s]+)', rest):
        out[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return out
